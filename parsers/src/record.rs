//! Typed trace records: the single output type of every parser in this crate.
//!
//! Text parsers (ftrace, `trace-cmd report`, `perf script`) and binary readers (trace.dat,
//! perf.data) all produce the same `Record`s, so paired tests can compare them field by field.
//! A `Record` owns its data (no borrow of the input buffer): the tokenisers are zero-copy, but a
//! record must outlive the reorder window that merges per-CPU streams into time order.
//!
//! This module must never know about the replay model: it describes what the kernel logged, in
//! the kernel's own terms, nothing more.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// `task->comm`: at most 16 bytes (TASK_COMM_LEN), kept as raw bytes because the kernel does not
/// promise UTF-8. Longer input (a text tool may print more) is truncated to 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "CommFields")]
pub struct Comm {
    len: u8,
    bytes: [u8; 16],
}

/// [`Comm`]'s serialised fields, checked on the way in: a length over 16 (a corrupt `.mmr`)
/// is an error, never a comm whose `as_bytes` would slice out of bounds.
#[derive(Deserialize)]
struct CommFields {
    len: u8,
    bytes: [u8; 16],
}

impl TryFrom<CommFields> for Comm {
    type Error = String;
    fn try_from(c: CommFields) -> Result<Comm, String> {
        if usize::from(c.len) > Comm::MAX {
            return Err(format!("comm length {} over {}", c.len, Comm::MAX));
        }
        Ok(Comm {
            len: c.len,
            bytes: c.bytes,
        })
    }
}

impl Comm {
    pub const MAX: usize = 16;

    pub fn new(raw: &[u8]) -> Self {
        let n = raw.len().min(Self::MAX);
        // Assembled in a register rather than by a variable-length memcpy: the text readers
        // build one Comm per line and copy it on at once, and a 16-byte load right after a
        // byte-wise memcpy stalls on store forwarding.
        let mut v: u128 = 0;
        for (i, &c) in raw.iter().take(Self::MAX).enumerate() {
            v |= (c as u128) << (8 * i);
        }
        Comm {
            len: n as u8,
            bytes: v.to_le_bytes(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Lossy text form for reports (non-UTF-8 bytes become U+FFFD).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// One trace event with its context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Nanoseconds in the capture's clock. Text formats carry microseconds (value × 1000) or,
    /// for counter/tsc clocks, the raw integer.
    pub ts_ns: u64,
    pub cpu: u32,
    /// The thread id (`common_pid`; perf's `tid`).
    pub pid: i32,
    /// The thread-group id when the capture has it (`record-tgid`, perf `pid`).
    pub tgid: Option<i32>,
    pub comm: Comm,
    pub event: Event,
}

/// Interned event or field name. Cheap to clone; compared by content.
pub type Sym = Arc<str>;

/// `tlb:tlb_flush` reason codes (`include/trace/events/tlb.h`, `TLB_FLUSH_REASON`).
/// The text form differs by kernel version (`local mm shootdown` vs `local MM shootdown`), so the
/// record keeps both the number and the text as printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbReason {
    /// 0 task switch, 1 remote shootdown (receiver), 2 local shootdown, 3 local mm shootdown,
    /// 4 remote IPI send (sender), 5 remote wrong CPU. `None` when only text was available.
    pub code: Option<i32>,
    /// The reason text as the kernel (or a trace-cmd plugin) printed it; empty when unknown.
    #[serde(with = "crate::mmr::sym")]
    pub text: Sym,
}

/// Which function an IPI will run on its targets, classified from the `callback` symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpiKind {
    /// `flush_tlb_func`: a TLB shootdown.
    TlbShootdown,
    /// `tlb_remove_table_smp_sync`: a page-table sync broadcast.
    TableSync,
    /// A single-target smp_call_function (`generic_smp_call_function_single_interrupt`) whose
    /// callsite is a TLB flush path (`on_each_cpu_cond_mask` from `native_flush_tlb_multi`).
    /// Kept apart because the callback alone does not say what ran.
    CallFunctionSingle,
    /// Scheduler wakeups, irq work, anything else.
    Other,
    /// A generic function-call IPI sent by `smp_call_function` (every other CPU), whose
    /// callback names only the generic handler. On MM paths that is
    /// `tlb_remove_table_sync_one` (khugepaged collapse, hugetlb unshare, table-free fallback);
    /// `kick_all_cpus_sync` uses it too.
    SmpCallFunction,
}

/// The syscalls whose enter/exit events the model consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Syscall {
    Mmap,
    Munmap,
    Mprotect,
    Madvise,
    Mremap,
    Brk,
    Execve,
    Clone,
    Clone3,
    Fork,
    Vfork,
    Exit,
    ExitGroup,
    /// `memfd_create(uname, flags)`: `MFD_HUGETLB` (4) names a hugetlbfs file where the kernel
    /// logs no hugetlbfs events (6.1).
    MemfdCreate,
}

impl Syscall {
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Mmap => "mmap",
            Syscall::Munmap => "munmap",
            Syscall::Mprotect => "mprotect",
            Syscall::Madvise => "madvise",
            Syscall::Mremap => "mremap",
            Syscall::Brk => "brk",
            Syscall::Execve => "execve",
            Syscall::Clone => "clone",
            Syscall::Clone3 => "clone3",
            Syscall::Fork => "fork",
            Syscall::Vfork => "vfork",
            Syscall::Exit => "exit",
            Syscall::ExitGroup => "exit_group",
            Syscall::MemfdCreate => "memfd_create",
        }
    }

    pub fn from_name(s: &str) -> Option<Syscall> {
        Some(match s {
            "mmap" => Syscall::Mmap,
            "munmap" => Syscall::Munmap,
            "mprotect" => Syscall::Mprotect,
            "madvise" => Syscall::Madvise,
            "mremap" => Syscall::Mremap,
            "brk" => Syscall::Brk,
            "execve" => Syscall::Execve,
            "clone" => Syscall::Clone,
            "clone3" => Syscall::Clone3,
            "fork" => Syscall::Fork,
            "vfork" => Syscall::Vfork,
            "exit" => Syscall::Exit,
            "exit_group" => Syscall::ExitGroup,
            "memfd_create" => Syscall::MemfdCreate,
            _ => return None,
        })
    }
}

/// Arguments of a `sys_enter_*` event, in the kernel's argument order. Unused slots are 0.
/// mmap: addr, len, prot, flags, fd, off. munmap: addr, len. mprotect: start, len, prot.
/// madvise: start, len_in, behavior. mremap: addr, old_len, new_len, flags, new_addr. brk: brk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysArgs(pub [u64; 6]);

/// The vmscan events the model uses, with the fields it needs. Everything else from the
/// `vmscan` system is `Event::Other`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vmscan {
    KswapdWake {
        nid: i32,
        order: i32,
    },
    KswapdSleep {
        nid: i32,
    },
    WakeupKswapd {
        nid: i32,
        order: i32,
    },
    DirectReclaimBegin {
        order: i32,
        memcg: bool,
    },
    DirectReclaimEnd {
        nr_reclaimed: u64,
        memcg: bool,
    },
    LruIsolate {
        nr_requested: u64,
        nr_scanned: u64,
        nr_taken: u64,
        #[serde(with = "crate::mmr::sym")]
        lru: Sym,
    },
    LruShrinkInactive {
        nid: i32,
        nr_scanned: u64,
        nr_reclaimed: u64,
        priority: i32,
        /// `nr_ref_keep`, `nr_activate_anon` + `nr_activate_file` (`nr_activate0/1`).
        nr_ref_keep: u64,
        nr_activate: u64,
        /// The list the pass shrank, from `reclaim_flags` (`trace_reclaim_flags(file)`, the
        /// text's `flags=`): `Some(true)` `RECLAIM_WB_FILE`, `Some(false)` `RECLAIM_WB_ANON`,
        /// `None` when the event did not say (a format without the field, or neither bit).
        file: Option<bool>,
    },
    LruShrinkActive {
        nid: i32,
        nr_taken: u64,
        nr_active: u64,
        nr_deactivated: u64,
        /// `nr_referenced` (the kernel's `nr_rotated`).
        nr_referenced: u64,
    },
    WriteFolio {
        pfn: u64,
    },
    /// Any other `mm_vmscan_*` event: name only (without the `mm_vmscan_` prefix).
    Other {
        #[serde(with = "crate::mmr::sym")]
        name: Sym,
    },
}

/// A typed MM event. Names follow the kernel's tracepoint names (without the system).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// `exceptions:page_fault_user` / `page_fault_kernel` (x86).
    PageFault {
        user: bool,
        address: u64,
        ip: u64,
        error_code: u64,
    },
    /// `tlb:tlb_flush`. `pages` is -1 for a full flush.
    TlbFlush { pages: i64, reason: TlbReason },
    /// `ipi:ipi_send_cpu`.
    IpiSendCpu { target: u32, kind: IpiKind },
    /// `ipi:ipi_send_cpumask`: `targets` is the popcount, `mask` the CPUs (lowest 128).
    IpiSendCpumask {
        mask: u128,
        targets: u32,
        kind: IpiKind,
    },
    /// `migrate:set_migration_pte`: raw swap-format PTE (decode with `crate::pte`).
    SetMigrationPte { addr: u64, pte: u64, order: u32 },
    /// `migrate:remove_migration_pte`: raw restored PTE.
    RemoveMigrationPte { addr: u64, pte: u64, order: u32 },
    /// `migrate:mm_migrate_pages`.
    MmMigratePages {
        succeeded: u64,
        failed: u64,
        #[serde(with = "crate::mmr::sym")]
        mode: Sym,
        #[serde(with = "crate::mmr::sym")]
        reason: Sym,
    },
    /// `migrate:mm_migrate_pages_start`.
    MmMigratePagesStart {
        #[serde(with = "crate::mmr::sym")]
        mode: Sym,
        #[serde(with = "crate::mmr::sym")]
        reason: Sym,
    },
    /// `pagemap:mm_lru_insertion`.
    MmLruInsertion {
        pfn: u64,
        lru: i32,
        #[serde(with = "crate::mmr::sym")]
        flags: Sym,
    },
    /// `pagemap:mm_lru_activate`.
    MmLruActivate { pfn: u64 },
    /// The `vmscan:mm_vmscan_*` family.
    Vmscan(Vmscan),
    /// `compaction:mm_compaction_*`: name without the `mm_compaction_` prefix.
    Compaction {
        #[serde(with = "crate::mmr::sym")]
        name: Sym,
    },
    /// `syscalls:sys_enter_*` (ftrace text `sys_mmap(addr: ...)` is normalised to this).
    SysEnter { nr: Syscall, args: SysArgs },
    /// `syscalls:sys_exit_*` (ftrace text `sys_mmap -> 0x...`).
    SysExit { nr: Syscall, ret: i64 },
    /// `sched:sched_process_fork`.
    SchedProcessFork {
        parent_pid: i32,
        child_pid: i32,
        child_comm: Comm,
    },
    /// `sched:sched_process_exec`.
    SchedProcessExec { pid: i32, old_pid: i32 },
    /// `sched:sched_process_exit`.
    SchedProcessExit { pid: i32 },
    /// `sched:sched_switch`. `prev_state` as printed (`R`, `S`, `D`, `R+`, ...).
    SchedSwitch {
        prev_pid: i32,
        #[serde(with = "crate::mmr::sym")]
        prev_state: Sym,
        next_pid: i32,
        next_comm: Comm,
    },
    /// `sched:sched_migrate_task`.
    SchedMigrateTask {
        pid: i32,
        orig_cpu: u32,
        dest_cpu: u32,
    },
    /// `task:task_newtask`. `clone_flags & CLONE_VM (0x100)` means a thread sharing the mm.
    TaskNewtask { pid: i32, clone_flags: u64 },
    /// `mmap:exit_mmap`.
    ExitMmap,
    /// `kmem:rss_stat`.
    RssStat {
        mm_id: u64,
        curr: bool,
        #[serde(with = "crate::mmr::sym")]
        member: Sym,
        size: i64,
    },
    /// `filemap:mm_filemap_*`: add (true) or delete (false) of a pagecache folio.
    Filemap {
        add: bool,
        pfn: u64,
        ino: u64,
        index: u64,
        order: u32,
    },
    /// `hugetlbfs:hugetlbfs_*`: name without the `hugetlbfs_` prefix.
    Hugetlbfs {
        #[serde(with = "crate::mmr::sym")]
        name: Sym,
    },
    /// `huge_memory:mm_khugepaged_*` and friends: full event name.
    Khugepaged {
        #[serde(with = "crate::mmr::sym")]
        name: Sym,
    },
    /// `huge_memory:mm_collapse_huge_page`: `collapse_huge_page` (khugepaged or MADV_COLLAPSE)
    /// ended on `mm` with `status` (`succeeded`, `page_locked`, ...). `mm` is the `%p`-hashed
    /// pointer in text (the same value as `rss_stat`'s `mm_id`) and the raw pointer in binary.
    CollapseHugePage {
        mm: u64,
        #[serde(with = "crate::mmr::sym")]
        status: Sym,
    },
    /// `damon:damon_aggregated`. `age` is absent before 5.15.
    DamonAggregated {
        target_id: u64,
        nr_regions: u32,
        start: u64,
        end: u64,
        nr_accesses: u32,
        age: Option<u32>,
    },
    /// A lost-events marker (`CPU:n [LOST k EVENTS]`, `[k EVENTS DROPPED]`, a missed-events page).
    Lost { count: Option<u64> },
    /// Any event without a typed decoder: counted by name, never dropped silently.
    Other {
        #[serde(with = "crate::mmr::sym")]
        name: Sym,
    },
    /// `csd:csd_queue_cpu`: a cross-CPU function call queued for `target`, `kind` classified
    /// from its `func`. It names the function where the `ipi_send_cpu` that may follow names
    /// only the generic handler (`smp_call_function` to one CPU, e.g.
    /// `tlb_remove_table_sync_one` on a 2-CPU machine).
    CsdQueueCpu { target: u32, kind: IpiKind },
    /// `irq_vectors:call_function_entry` (vector 252, `single: false`) or
    /// `call_function_single_entry` (251): a cross-CPU function call IPI *received*, once per
    /// interrupt (kernels.md). The only IPI view a 6.1 capture has.
    CallFunctionEntry { single: bool, vector: u32 },
    /// A hit of a kprobe event (`mmreplay record --probe`): `name` is the event's name, which
    /// the recorder makes the probed function's (`folio_referenced_one`).
    Kprobe {
        #[serde(with = "crate::mmr::sym")]
        name: Sym,
    },
}

impl Event {
    /// The kernel tracepoint name of this event (no system prefix), as `stats` reports it.
    pub fn name(&self) -> &str {
        match self {
            Event::PageFault { user: true, .. } => "page_fault_user",
            Event::PageFault { user: false, .. } => "page_fault_kernel",
            Event::TlbFlush { .. } => "tlb_flush",
            Event::IpiSendCpu { .. } => "ipi_send_cpu",
            Event::IpiSendCpumask { .. } => "ipi_send_cpumask",
            Event::CsdQueueCpu { .. } => "csd_queue_cpu",
            Event::CallFunctionEntry { single: false, .. } => "call_function_entry",
            Event::CallFunctionEntry { single: true, .. } => "call_function_single_entry",
            Event::Kprobe { name } => name,
            Event::SetMigrationPte { .. } => "set_migration_pte",
            Event::RemoveMigrationPte { .. } => "remove_migration_pte",
            Event::MmMigratePages { .. } => "mm_migrate_pages",
            Event::MmMigratePagesStart { .. } => "mm_migrate_pages_start",
            Event::MmLruInsertion { .. } => "mm_lru_insertion",
            Event::MmLruActivate { .. } => "mm_lru_activate",
            Event::Vmscan(v) => match v {
                Vmscan::KswapdWake { .. } => "mm_vmscan_kswapd_wake",
                Vmscan::KswapdSleep { .. } => "mm_vmscan_kswapd_sleep",
                Vmscan::WakeupKswapd { .. } => "mm_vmscan_wakeup_kswapd",
                Vmscan::DirectReclaimBegin { memcg: false, .. } => "mm_vmscan_direct_reclaim_begin",
                Vmscan::DirectReclaimBegin { memcg: true, .. } => "mm_vmscan_memcg_reclaim_begin",
                Vmscan::DirectReclaimEnd { memcg: false, .. } => "mm_vmscan_direct_reclaim_end",
                Vmscan::DirectReclaimEnd { memcg: true, .. } => "mm_vmscan_memcg_reclaim_end",
                Vmscan::LruIsolate { .. } => "mm_vmscan_lru_isolate",
                Vmscan::LruShrinkInactive { .. } => "mm_vmscan_lru_shrink_inactive",
                Vmscan::LruShrinkActive { .. } => "mm_vmscan_lru_shrink_active",
                Vmscan::WriteFolio { .. } => "mm_vmscan_write_folio",
                Vmscan::Other { name } => name,
            },
            Event::Compaction { name } => name,
            Event::SysEnter { nr, .. } => sys_enter_name(*nr),
            Event::SysExit { nr, .. } => sys_exit_name(*nr),
            Event::SchedProcessFork { .. } => "sched_process_fork",
            Event::SchedProcessExec { .. } => "sched_process_exec",
            Event::SchedProcessExit { .. } => "sched_process_exit",
            Event::SchedSwitch { .. } => "sched_switch",
            Event::SchedMigrateTask { .. } => "sched_migrate_task",
            Event::TaskNewtask { .. } => "task_newtask",
            Event::ExitMmap => "exit_mmap",
            Event::RssStat { .. } => "rss_stat",
            Event::Filemap { add: true, .. } => "mm_filemap_add_to_page_cache",
            Event::Filemap { add: false, .. } => "mm_filemap_delete_from_page_cache",
            Event::Hugetlbfs { name } => name,
            Event::Khugepaged { name } => name,
            Event::CollapseHugePage { .. } => "mm_collapse_huge_page",
            Event::DamonAggregated { .. } => "damon_aggregated",
            Event::Lost { .. } => "lost",
            Event::Other { name } => name,
        }
    }
}

fn sys_enter_name(nr: Syscall) -> &'static str {
    match nr {
        Syscall::Mmap => "sys_enter_mmap",
        Syscall::Munmap => "sys_enter_munmap",
        Syscall::Mprotect => "sys_enter_mprotect",
        Syscall::Madvise => "sys_enter_madvise",
        Syscall::Mremap => "sys_enter_mremap",
        Syscall::Brk => "sys_enter_brk",
        Syscall::Execve => "sys_enter_execve",
        Syscall::Clone => "sys_enter_clone",
        Syscall::Clone3 => "sys_enter_clone3",
        Syscall::Fork => "sys_enter_fork",
        Syscall::Vfork => "sys_enter_vfork",
        Syscall::Exit => "sys_enter_exit",
        Syscall::ExitGroup => "sys_enter_exit_group",
        Syscall::MemfdCreate => "sys_enter_memfd_create",
    }
}

fn sys_exit_name(nr: Syscall) -> &'static str {
    match nr {
        Syscall::Mmap => "sys_exit_mmap",
        Syscall::Munmap => "sys_exit_munmap",
        Syscall::Mprotect => "sys_exit_mprotect",
        Syscall::Madvise => "sys_exit_madvise",
        Syscall::Mremap => "sys_exit_mremap",
        Syscall::Brk => "sys_exit_brk",
        Syscall::Execve => "sys_exit_execve",
        Syscall::Clone => "sys_exit_clone",
        Syscall::Clone3 => "sys_exit_clone3",
        Syscall::Fork => "sys_exit_fork",
        Syscall::Vfork => "sys_exit_vfork",
        Syscall::Exit => "sys_exit_exit",
        Syscall::ExitGroup => "sys_exit_exit_group",
        Syscall::MemfdCreate => "sys_exit_memfd_create",
    }
}
