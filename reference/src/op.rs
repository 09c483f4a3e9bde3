//! Model operations (`Op`) and the identities they name. The replay engine lowers trace records
//! into these; hand-written tests build them directly. This module must never know about trace
//! formats: numbers here are the kernel's ABI numbers (prot, mmap flags, madvise advice), not
//! any tracer's spelling.

use serde::{Deserialize, Serialize};

/// Model identity of an address space (`struct mm_struct`). Chosen by the caller (the lowering),
/// stable for the life of the mm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MmId(pub u32);

/// Model identity of a file (inode). Chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileId(pub u64);

/// Stable model identity of a folio, independent of its pfn (mm-semantics C.0): migration keeps
/// it, swap-out/swap-in keeps it, a re-read of an evicted file page keeps it, COW makes a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FolioId(pub u64);

/// Caller-chosen handle for a GUP pin (`FOLL_PIN`) or an extra reference (`FOLL_GET`, e.g. DIO),
/// so that a later `Unpin` / `PutRef` names the same folio even after the mapping changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HoldId(pub u64);

/// CPU number (0-based, `< KernelProfile::nr_cpus`).
pub type Cpu = u32;

/// The kind of a memory access (x86 page-fault error code: W=0x2, I/D=0x10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessKind {
    /// Load.
    Read,
    /// Store.
    Write,
    /// Instruction fetch.
    Exec,
}

impl AccessKind {
    /// From an x86 page-fault error code (`arch/x86/include/asm/trap_pf.h`).
    pub fn from_x86_error_code(code: u64) -> AccessKind {
        if code & 0x10 != 0 {
            AccessKind::Exec
        } else if code & 0x2 != 0 {
            AccessKind::Write
        } else {
            AccessKind::Read
        }
    }
}

/// What backs a file mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file with writeback (writenotify on shared writable mappings).
    Regular,
    /// tmpfs / shmem / SysV shm (no writenotify; swap-backed).
    Shmem,
    /// hugetlbfs (2 MiB pages; MAP_SHARED mappings of 1 GiB PUD-aligned ranges share PMD tables).
    Hugetlbfs,
}

/// A file named by an `mmap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileRef {
    /// Identity (the same id in two mmaps means the same inode).
    pub id: FileId,
    /// Backing kind.
    pub kind: FileKind,
}

/// Which folio to migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MigrateTarget {
    /// The folio mapped at `va` in `mm` (the trace's `set_migration_pte(addr, ..)` plus the mm
    /// of the task).
    Va {
        /// Address space.
        mm: MmId,
        /// Virtual address.
        va: u64,
    },
    /// A folio by the MODEL's pfn (see `Model::pfn_at`); trace pfns are not model pfns.
    Pfn(u64),
}

/// A step of a `migrate_pages` batch (see `Op::MigrateBatch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MigrateBatchStep {
    /// `mm_migrate_pages_start`: a batch opens.
    Start,
    /// A present PTE of an address space the model does not know (older than the capture,
    /// filtered out) was unmapped into the batch (`set_migration_pte` at an address no known
    /// mm maps). Its `mm_cpumask` is unknown: taken as every CPU (x86 since v6.14 keeps stale
    /// bits for up to a second).
    ForeignUnmap,
    /// `try_to_unmap_flush`: the batch's one flush (before the first folio is moved).
    Flush,
}

/// `PROT_*` (include/uapi/asm-generic/mman-common.h).
pub mod prot {
    /// PROT_READ.
    pub const READ: u32 = 0x1;
    /// PROT_WRITE.
    pub const WRITE: u32 = 0x2;
    /// PROT_EXEC.
    pub const EXEC: u32 = 0x4;
}

/// `MAP_*` flags (x86-64 values).
pub mod map {
    /// MAP_SHARED.
    pub const SHARED: u32 = 0x01;
    /// MAP_PRIVATE.
    pub const PRIVATE: u32 = 0x02;
    /// MAP_SHARED_VALIDATE (treated as MAP_SHARED).
    pub const SHARED_VALIDATE: u32 = 0x03;
    /// MAP_FIXED.
    pub const FIXED: u32 = 0x10;
    /// MAP_ANONYMOUS.
    pub const ANONYMOUS: u32 = 0x20;
    /// MAP_LOCKED (x86).
    pub const LOCKED: u32 = 0x2000;
    /// MAP_HUGETLB.
    pub const HUGETLB: u32 = 0x40000;
}

/// `MADV_*` advice numbers the model implements (others are ignored and reported as such).
pub mod madv {
    /// MADV_DONTNEED.
    pub const DONTNEED: u32 = 4;
    /// MADV_FREE.
    pub const FREE: u32 = 8;
    /// MADV_DONTFORK.
    pub const DONTFORK: u32 = 10;
    /// MADV_HUGEPAGE (sets VM_HUGEPAGE).
    pub const HUGEPAGE: u32 = 14;
    /// MADV_NOHUGEPAGE (sets VM_NOHUGEPAGE).
    pub const NOHUGEPAGE: u32 = 15;
    /// MADV_DOFORK.
    pub const DOFORK: u32 = 11;
    /// MADV_WIPEONFORK.
    pub const WIPEONFORK: u32 = 18;
    /// MADV_COLD.
    pub const COLD: u32 = 20;
    /// MADV_PAGEOUT.
    pub const PAGEOUT: u32 = 21;
}

/// One model operation. `cpu` is the CPU that performs it (the sender of any TLB flush IPI).
/// Addresses and lengths are rounded to pages by the model (start down, end up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A page fault the trace saw: `handle_mm_fault` then the retried access (B.3, B.0). The
    /// model decides anon-zero / anon-new / file / COW / swap-in / migration-wait from its state;
    /// a fault with nothing to do is counted as spurious.
    Fault {
        /// Faulting CPU.
        cpu: Cpu,
        /// Address space of the faulting task.
        mm: MmId,
        /// Faulting address.
        va: u64,
        /// Access kind.
        kind: AccessKind,
    },
    /// An explicit (sampled/synthetic) access through the CPU's TLB (B.0); faults are resolved
    /// as by `Fault` and the access retried.
    Access {
        /// Accessing CPU (should have `mm` loaded; the model switches it in if not).
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Address.
        va: u64,
        /// Access kind.
        kind: AccessKind,
    },
    /// fork: `child` (new id) becomes a copy of `parent` (`kernel/fork.c:dup_mmap`).
    Fork {
        /// CPU running the parent.
        cpu: Cpu,
        /// Parent mm.
        parent: MmId,
        /// New child mm id (must not exist yet).
        child: MmId,
    },
    /// execve: a new empty mm `new` replaces `old` (if known) for the task; `old` is torn down
    /// as by `Exit`, and `cpu` switches to `new`.
    Exec {
        /// CPU running the task.
        cpu: Cpu,
        /// The task's previous mm, if the lowering knows it.
        old: Option<MmId>,
        /// New mm id (must not exist yet).
        new: MmId,
    },
    /// Last user of `mm` gone: `exit_mmap` (fullmm gather, tables freed).
    Exit {
        /// CPU running the exiting task.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
    },
    /// A successful mmap at `addr` (the address the syscall returned); overlapping mappings are
    /// replaced (MAP_FIXED semantics). VMA kind comes from `flags` and `file`.
    Mmap {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Start address (result of the syscall).
        addr: u64,
        /// Length in bytes.
        len: u64,
        /// `PROT_*`.
        prot: u32,
        /// `MAP_*`.
        flags: u32,
        /// Backing file, `None` for anonymous (MAP_SHARED|MAP_ANONYMOUS gets a private shmem
        /// or hugetlbfs inode).
        file: Option<FileRef>,
        /// File offset in pages.
        pgoff: u64,
    },
    /// munmap.
    Munmap {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Start.
        addr: u64,
        /// Length in bytes.
        len: u64,
    },
    /// A successful mremap (MREMAP_MAYMOVE semantics: `new_addr` is where it ended up).
    Mremap {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Old start.
        old_addr: u64,
        /// Old length.
        old_len: u64,
        /// New start (== old_addr for in-place resize).
        new_addr: u64,
        /// New length.
        new_len: u64,
    },
    /// A successful brk: `brk` is the new program break. The first brk seen for an mm only
    /// records the break.
    Brk {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// New break.
        brk: u64,
    },
    /// mprotect.
    Mprotect {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// New `PROT_*`.
        prot: u32,
    },
    /// madvise with a kernel advice number (see [`madv`]); unimplemented advice is `Ignored`.
    Madvise {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// `MADV_*`.
        advice: u32,
    },
    /// Context switch on `cpu` to a task of `next`, or to a kernel thread (`None`: lazy TLB,
    /// the previous mm stays loaded).
    Switch {
        /// CPU.
        cpu: Cpu,
        /// Next user mm, `None` for a kernel thread.
        next: Option<MmId>,
    },
    /// Migrate one folio (`migrate_pages` → `try_to_migrate` → `remove_migration_ptes`).
    Migrate {
        /// CPU doing the migration.
        cpu: Cpu,
        /// Which folio.
        target: MigrateTarget,
    },
    /// A reclaim episode trying to free `nr_to_reclaim` pages (MGLRU aging + eviction).
    Reclaim {
        /// CPU running reclaim (kswapd or direct reclaim).
        cpu: Cpu,
        /// Target number of pages.
        nr_to_reclaim: u32,
    },
    /// Memory-cgroup reclaim (`try_to_free_mem_cgroup_pages`, e.g. a charge over
    /// `memory.limit_in_bytes`): as `Reclaim`, but only folios charged to `memcg` are isolated
    /// (oldest generation first) and only its mms are walked for aging. The model charges a
    /// folio to the memcg of the mm of its first mapping; generations are shared with the rest
    /// of the machine (one lruvec, not one per memcg).
    ReclaimMemcg {
        /// CPU running reclaim.
        cpu: Cpu,
        /// Target number of pages.
        nr_to_reclaim: u32,
        /// Memory cgroup (nonzero; see `SetMemcg`).
        memcg: u32,
    },
    /// One `shrink_inactive_list` pass of a memcg reclaim in progress that freed nothing in the
    /// kernel (`mm_vmscan_lru_shrink_inactive` with `nr_reclaimed=0`: it kept, activated, or
    /// unmapped and started writeback of what it isolated), or any pass of the file list. The
    /// classic LRU isolates `nr_scanned` pages from the inactive tail of `memcg`'s list `file`
    /// and shrinks them at this moment, as the kernel did, instead of inside the next pass that
    /// frees (later, after other CPUs may have joined or left `mm_cpumask`, and after more of
    /// the workload's faults). Pages the model frees here beyond the kernel's `nr_reclaimed`
    /// count against later targets. MGLRU: no effect.
    ReclaimScan {
        /// CPU running reclaim.
        cpu: Cpu,
        /// Pages the kernel's pass isolated (`nr_scanned`).
        nr_scanned: u32,
        /// Memory cgroup (nonzero; see `SetMemcg`).
        memcg: u32,
        /// The list the kernel's pass shrank (the event's `reclaim_flags`): `Some(true)` file,
        /// `Some(false)` anon, `None` unknown (then anon, or file when anon is empty).
        file: Option<bool>,
        /// Pages the kernel's pass freed (0 for a pass of the anon list: those that free are
        /// `ReclaimMemcg` targets).
        nr_reclaimed: u32,
    },
    /// The tasks of `mm` are in memory cgroup `memcg` (0 is the root). An mm forked from it, and
    /// the mm an exec gives its task, inherit it.
    SetMemcg {
        /// Address space.
        mm: MmId,
        /// Memory cgroup.
        memcg: u32,
    },
    /// GUP with FOLL_PIN (e.g. io_uring fixed buffer, RDMA) on the page at `va`.
    Pin {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Address.
        va: u64,
        /// FOLL_WRITE (the device will write to the page).
        write: bool,
        /// Handle for `Unpin`.
        hold: HoldId,
    },
    /// unpin_user_page (a write pin dirties the folio: `unpin_user_pages_dirty_lock`).
    Unpin {
        /// Handle from `Pin`.
        hold: HoldId,
    },
    /// GUP with FOLL_GET: an extra reference, e.g. O_DIRECT read into this page (6c8e2a256915).
    GetRef {
        /// CPU.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// Address.
        va: u64,
        /// Handle for `PutRef`.
        hold: HoldId,
    },
    /// Drop an extra reference; `write` means the I/O wrote data into the page (DIO read
    /// completion), which dirties it.
    PutRef {
        /// Handle from `GetRef`.
        hold: HoldId,
        /// The device wrote into the page.
        write: bool,
    },
    /// A step of one `migrate_pages` call on `cpu` (`mm/migrate.c:migrate_pages_batch`, 6.3+):
    /// the folios of a batch are unmapped with `TTU_BATCH_FLUSH`, the TLBs flushed once
    /// (`try_to_unmap_flush`), then the folios moved. Between `Start` and `Flush`, `Migrate`
    /// ops on `cpu` defer their flushes into the batch; without a batch each folio flushes on
    /// its own.
    MigrateBatch {
        /// CPU running `migrate_pages`.
        cpu: Cpu,
        /// Which step.
        step: MigrateBatchStep,
    },
    /// khugepaged's `collapse_huge_page` on `mm` got as far as `pmdp_collapse_flush` (the
    /// `huge_memory:mm_collapse_huge_page` event; `collapsed`: status `succeeded`). The model
    /// chooses the PMD (the trace does not name it), see `model/thp.rs`.
    ThpCollapse {
        /// CPU running khugepaged.
        cpu: Cpu,
        /// Address space.
        mm: MmId,
        /// The collapse succeeded (else the PTE table was put back after the flush).
        collapsed: bool,
    },
    /// `/proc/PID/clear_refs` 4 (`fs/proc/task_mmu.c:clear_refs_write`, CLEAR_REFS_SOFT_DIRTY),
    /// written by `mmreplay record --access` from `cpu`: every present PTE of `mm` is
    /// write-protected, then `flush_tlb_mm`. The next write to each page takes a write-protect
    /// fault (`do_wp_page`), which the trace shows: that is how the capture tells the model about
    /// writes between faults.
    ClearSoftDirty {
        /// CPU the recorder wrote from (the flush's sender).
        cpu: Cpu,
        /// Address space.
        mm: MmId,
    },
    /// `filemap:mm_filemap_add_to_page_cache` logged by a task of `mm` during its fault at `va`
    /// (`__filemap_add_folio`): page `index` of the file mapped at `va` (the faulted page or one
    /// read ahead with it) entered the page cache through this task, so `mem_cgroup_charge`
    /// charged it to the memcg of `mm`'s tasks. A regular-file folio no such op names was cached
    /// before, by someone else, and is charged to no memcg of the capture (the root's); see
    /// `model/classic.rs`. Ignored when `va` maps no regular file.
    PageCacheAdd {
        /// Address space of the task that added it.
        mm: MmId,
        /// The fault's address (names the file).
        va: u64,
        /// Page index in the file of the added page.
        index: u64,
    },
    /// The capture's clock advanced to `now_ns` (nanoseconds, any epoch; never goes back). Only
    /// time-based kernel rules read it: `mm_cpumask` trimming at most once a second per mm
    /// (`arch/x86/mm/tlb.c:should_trim_cpumask`).
    Clock {
        /// Current time in nanoseconds.
        now_ns: u64,
    },
}

impl Op {
    /// The address space the op acts on: the addressed mm, a fork's child, an exec's new mm, a
    /// migration's mm by address. `None` for ops that name no mm (switch, clock, reclaim,
    /// releases of a hold, migration by pfn).
    pub fn mm(&self) -> Option<MmId> {
        match self {
            Op::Fault { mm, .. }
            | Op::Access { mm, .. }
            | Op::Exit { mm, .. }
            | Op::Mmap { mm, .. }
            | Op::Munmap { mm, .. }
            | Op::Mremap { mm, .. }
            | Op::Brk { mm, .. }
            | Op::Mprotect { mm, .. }
            | Op::Madvise { mm, .. }
            | Op::SetMemcg { mm, .. }
            | Op::Pin { mm, .. }
            | Op::GetRef { mm, .. }
            | Op::ThpCollapse { mm, .. }
            | Op::ClearSoftDirty { mm, .. }
            | Op::PageCacheAdd { mm, .. } => Some(*mm),
            Op::Fork { child, .. } => Some(*child),
            Op::Exec { new, .. } => Some(*new),
            Op::Migrate {
                target: MigrateTarget::Va { mm, .. },
                ..
            } => Some(*mm),
            _ => None,
        }
    }

    /// Short kind name (stable, for reports and error messages).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Fault { .. } => "fault",
            Op::Access { .. } => "access",
            Op::Fork { .. } => "fork",
            Op::Exec { .. } => "exec",
            Op::Exit { .. } => "exit",
            Op::Mmap { .. } => "mmap",
            Op::Munmap { .. } => "munmap",
            Op::Mremap { .. } => "mremap",
            Op::Brk { .. } => "brk",
            Op::Mprotect { .. } => "mprotect",
            Op::Madvise { .. } => "madvise",
            Op::Switch { .. } => "switch",
            Op::Migrate { .. } => "migrate",
            Op::Reclaim { .. } => "reclaim",
            Op::ReclaimMemcg { .. } => "reclaim_memcg",
            Op::ReclaimScan { .. } => "reclaim_scan",
            Op::SetMemcg { .. } => "set_memcg",
            Op::Pin { .. } => "pin",
            Op::Unpin { .. } => "unpin",
            Op::GetRef { .. } => "get_ref",
            Op::PutRef { .. } => "put_ref",
            Op::Clock { .. } => "clock",
            Op::PageCacheAdd { .. } => "pagecache_add",
            Op::MigrateBatch { .. } => "migrate_batch",
            Op::ThpCollapse { .. } => "thp_collapse",
            Op::ClearSoftDirty { .. } => "clear_soft_dirty",
        }
    }
}

/// What an applied operation did (for tests and reports; the model state is the real result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutcome {
    /// Applied.
    Done,
    /// A fault/access resolved as this class.
    Fault(FaultClass),
    /// The access hit no VMA or was not permitted: SIGSEGV, state unchanged.
    Segv,
    /// Valid but outside the model (e.g. unimplemented madvise advice); state unchanged.
    Ignored,
    /// Migration did not happen (pinned, unmapped, not migratable); state restored.
    MigrationAborted,
}

/// How `handle_mm_fault` resolved a fault (counted in `Counters::flt_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultClass {
    /// Nothing to do (PTE already allowed the access).
    Spurious,
    /// Read fault on anon: zero page mapped.
    AnonZero,
    /// Write fault on anon: new folio (`do_anonymous_page`).
    AnonNew,
    /// File read fault (`do_read_fault`).
    FileRead,
    /// Private file write fault (`do_cow_fault`).
    FileCow,
    /// Shared file write fault (`do_shared_fault` / `wp_page_shared`).
    FileWriteShared,
    /// COW with copy (`wp_page_copy`).
    CowCopy,
    /// Write fault reusing an exclusive anon folio (`wp_page_reuse`).
    CowReuse,
    /// Swap-in (`do_swap_page`).
    SwapIn,
    /// Migration entry: wait (the model completes migrations within one op, so this is rare).
    MigrationWait,
    /// hugetlb fault (`hugetlb_fault`).
    Hugetlb,
}
