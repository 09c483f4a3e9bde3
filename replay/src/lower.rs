//! Lowering: trace `Record`s (what the kernel logged) into model `Op`s (what the reference model
//! and the candidates replay), with stable model identities (ARCHITECTURE.md, code map: `replay/`, mm-semantics
//! E.2).
//!
//! What it owns: task → mm bookkeeping (fork / exec / `task_newtask` CLONE_VM / exit), a shadow
//! of each mm's VMAs (paired syscall enter/exit per tid, applied only on success, plus inferred
//! VMAs for mappings older than the capture), CPU residency from `sched_switch`, migration
//! events matched to an mm, reclaim episodes, the `--pid` / `--comm` filter, and the observed
//! ground truth for the fidelity line (remote TLB flushes and TLB IPIs the kernel logged).
//!
//! What it must never do: contain model semantics (it never decides what a fault does, only
//! which mm and address it hits), drop a record silently (everything it cannot place is counted
//! by reason in [`LowerStats::unplaced`]), iterate a hash map into output, or panic on input.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use mmreplay_parsers::pte;
use mmreplay_parsers::record::{Event, Record, SysArgs, Syscall, Vmscan};
use mmreplay_reference::op::{
    map, prot, AccessKind, FileId, FileKind, FileRef, MigrateTarget, MmId, Op,
};
use serde::Serialize;

const PAGE: u64 = 4096;
const PMD: u64 = 2 << 20;
/// User address space limit on x86-64 with 4-level paging (`TASK_SIZE_MAX`).
const TASK_SIZE: u64 = 1 << 47;
/// `CLONE_VM`.
const CLONE_VM: u64 = 0x100;
/// Whether a `sched_switch` `next_comm` names a kernel thread (which runs lazily on the previous
/// mm). Kernel threads are not marked in the event, so this goes by the names the kernel gives
/// its own threads (per-CPU `name/N` threads, workqueues, reclaim and RCU threads).
fn looks_like_kernel_thread(comm: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"kworker/",
        b"ksoftirqd/",
        b"migration/",
        b"cpuhp/",
        b"idle_inject/",
        b"irq/",
        b"rcu_",
        b"rcuog/",
        b"rcuop/",
        b"kswapd",
        b"kcompactd",
        b"khugepaged",
        b"kdamond",
        b"kthreadd",
        b"ksmd",
        b"kauditd",
        b"khungtaskd",
        b"oom_reaper",
        b"kdevtmpfs",
        b"kblockd",
        b"kintegrityd",
        b"writeback",
        b"jbd2/",
        b"watchdog",
        b"swapper/",
        b"psimon",
        b"napi/",
        b"scsi_",
        b"ext4-",
        b"xfs",
        b"btrfs",
        b"zswap",
        b"pool_workqueue",
    ];
    PREFIXES.iter().any(|p| comm.starts_with(p))
}

/// Capture-time step between two `Op::Clock` ops (1 ms, about a jiffy).
pub const CLOCK_STEP_NS: u64 = 1_000_000;
/// `MFD_HUGETLB` (`include/uapi/linux/memfd.h`).
const MFD_HUGETLB: u64 = 4;
/// `MREMAP_FIXED`.
const MREMAP_FIXED: u64 = 2;

/// Lowering options.
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// Only replay this process (a pid or tgid) and its descendants.
    pub pid: Option<i32>,
    /// Only replay tasks with this comm and their descendants.
    pub comm: Option<String>,
    /// CPUs of the modelled machine; records from higher CPU numbers are unplaced.
    pub nr_cpus: u32,
    /// Processes older than the capture (`<trace>.procs.zst`), seeded before the first record
    /// (`lower/seed.rs`).
    pub procs: Option<std::sync::Arc<crate::procsnap::ProcSnap>>,
    /// `record --access` soft-dirty clears (`<trace>.access.json`), lowered at their times
    /// (`lower/access.rs`).
    pub access: Option<std::sync::Arc<crate::access::AccessLog>>,
}

pub use crate::observe::Observed;
use crate::observe::Observer;

/// Everything the lowering counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LowerStats {
    /// Records consumed.
    pub records: u64,
    /// Ops emitted.
    pub ops: u64,
    /// Records (or parts of them) that should have become ops but could not: reason → count.
    pub unplaced: BTreeMap<String, u64>,
    /// Records the lowering does not turn into ops by design (observations, bookkeeping):
    /// event name → count.
    pub not_lowered: BTreeMap<String, u64>,
    /// Notes on approximations taken (reason → count), e.g. syscalls applied without an exit.
    pub approximations: BTreeMap<String, u64>,
    /// Anonymous VMAs created around faults that hit no known VMA (mappings older than the
    /// capture).
    pub inferred_vmas: u64,
    /// Address spaces created for tasks first seen mid-capture.
    pub mms_first_seen: u64,
    /// Records skipped by `--pid` / `--comm`.
    pub filtered_out: u64,
    /// Records the filter kept, other than context switches (all of them without a filter):
    /// a filter that matched nothing is an error, not a report of zeros.
    pub matched: u64,
    /// Ground truth for the fidelity line.
    pub observed: Observed,
    /// The kernel's own counts (IPI receipts, kprobe hits, reclaimed pages), for
    /// `crate::kernel_counts`.
    pub kernel: crate::kernel_counts::KernelTally,
}

#[derive(Clone, Debug)]
struct MmShadow {
    /// Tasks currently using this mm.
    tasks: u32,
    /// start → end of every VMA the model was told about.
    vmas: BTreeMap<u64, u64>,
    /// Program break as last seen (the model records the first one).
    brk: Option<u64>,
    /// Lineage root (for file identities shared across fork).
    root: u32,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    nr: Syscall,
    args: SysArgs,
    cpu: u32,
}

/// The lowering state machine. Feed records in time order with [`Lowering::push`], then call
/// [`Lowering::finish`].
pub struct Lowering {
    opts: LowerOptions,
    next_mm: u32,
    next_file: u64,
    /// tid → mm.
    tasks: HashMap<i32, MmId>,
    /// Tasks selected by the filter (only used when a filter is active).
    selected: HashSet<i32>,
    /// Tasks known NOT to be selected (their records are filtered out).
    rejected: HashSet<i32>,
    /// mm id → shadow; BTreeMap because migration matching iterates it.
    mms: BTreeMap<u32, MmShadow>,
    /// Pending syscall enter per tid.
    pending: HashMap<i32, Pending>,
    /// tids inside execve (enter seen, `sched_process_exec` not yet).
    in_exec: HashSet<i32>,
    /// Children announced by `task_newtask` with CLONE_VM (threads, vfork).
    vm_children: HashSet<i32>,
    /// (lineage root, fd, kind) → file id.
    files: HashMap<(u32, u64, u8), u64>,
    /// (length, kind) of the first private mapping of a file → file id (see `file_ref`).
    files_by_len: HashMap<(u64, u8), u64>,
    /// tids that just created a hugetlbfs inode (memfd MFD_HUGETLB, hugetlbfs open).
    hugetlb_hint: HashSet<i32>,
    /// Addresses with a migration entry set and not yet restored (one rmap walk logs one
    /// `set_migration_pte` per mapping; the model migrates the folio with all its mappings).
    mig_pending: BTreeSet<u64>,
    /// Per CPU: a `lru_shrink_inactive` was lowered since the last reclaim begin.
    reclaim_shrunk: Vec<bool>,
    /// Per CPU: the memcg of the memcg reclaim episode in progress (`None`: global reclaim).
    reclaim_memcg: Vec<Option<u32>>,
    /// Memcg of each process tree (by `MmShadow::root`) seen doing memcg reclaim: the kernel
    /// reclaims the charging task's cgroup, and children inherit their parent's.
    memcg_by_root: BTreeMap<u32, u32>,
    /// Mms already told their memcg (`Op::SetMemcg`).
    memcg_told: BTreeSet<u32>,
    /// What the kernel logged (flushes, IPIs by callback): see `crate::observe`.
    observer: Observer,
    /// Per CPU: a `migrate_pages` batch is open and not yet flushed (see `lower/batch.rs`).
    mig_batch_open: Vec<bool>,
    /// `rss_stat` `mm_id` (a hashed `mm_struct` pointer) → model mm, learnt from `curr=1`
    /// events: tasks that report the same hashed mm share one address space. This groups the
    /// threads of processes older than the capture, which no fork/newtask event announces.
    mm_hash: HashMap<u64, MmId>,
    /// Placeholder mm for tasks outside the filter (so switching to them unloads the selected
    /// mm as the kernel would).
    outside_mm: Option<MmId>,
    /// Time of the last `Op::Clock` emitted (the model's clock only needs ms resolution).
    last_clock_ns: Option<u64>,
    /// khugepaged records held back under a filter (`lower/thp.rs`).
    held_khugepaged: thp::HeldKhugepaged,
    /// Process-snapshot seeding (`lower/seed.rs`).
    seed: seed::Seed,
    /// Position in `opts.access` (`lower/access.rs`).
    access: access::AccessCursor,
    stats: LowerStats,
}

impl Lowering {
    pub fn new(opts: LowerOptions) -> Lowering {
        let n = opts.nr_cpus.max(1) as usize;
        Lowering {
            opts,
            next_mm: 1,
            next_file: 1,
            tasks: HashMap::new(),
            selected: HashSet::new(),
            rejected: HashSet::new(),
            mms: BTreeMap::new(),
            pending: HashMap::new(),
            in_exec: HashSet::new(),
            vm_children: HashSet::new(),
            files: HashMap::new(),
            files_by_len: HashMap::new(),
            hugetlb_hint: HashSet::new(),
            mig_pending: BTreeSet::new(),
            reclaim_shrunk: vec![false; n],
            observer: Observer::new(n),
            mig_batch_open: vec![false; n],
            reclaim_memcg: vec![None; n],
            memcg_by_root: BTreeMap::new(),
            memcg_told: BTreeSet::new(),
            mm_hash: HashMap::new(),
            outside_mm: None,
            last_clock_ns: None,
            held_khugepaged: thp::HeldKhugepaged::default(),
            seed: seed::Seed::default(),
            access: access::AccessCursor::default(),
            stats: LowerStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &LowerStats {
        &self.stats
    }

    fn unplaced(&mut self, reason: &str) {
        *self.stats.unplaced.entry(reason.to_string()).or_insert(0) += 1;
    }

    fn not_lowered(&mut self, name: &str) {
        *self.stats.not_lowered.entry(name.to_string()).or_insert(0) += 1;
    }

    fn approx(&mut self, what: &str) {
        *self
            .stats
            .approximations
            .entry(what.to_string())
            .or_insert(0) += 1;
    }

    fn emit(&mut self, out: &mut Vec<Op>, op: Op) {
        self.stats.ops += 1;
        out.push(op);
    }

    fn filtering(&self) -> bool {
        self.opts.pid.is_some() || self.opts.comm.is_some()
    }

    /// Whether records of this task are replayed. Decided on first sight and inherited by
    /// children (see fork/newtask handling).
    fn is_selected(&mut self, r: &Record) -> bool {
        if !self.filtering() || r.pid == 0 {
            return true;
        }
        if self.selected.contains(&r.pid) {
            return true;
        }
        if self.rejected.contains(&r.pid) {
            return false;
        }
        let by_pid = self
            .opts
            .pid
            .is_some_and(|p| p == r.pid || r.tgid == Some(p));
        let by_comm = self
            .opts
            .comm
            .as_deref()
            .is_some_and(|c| c.as_bytes() == r.comm.as_bytes());
        if by_pid || by_comm {
            self.selected.insert(r.pid);
            true
        } else {
            self.rejected.insert(r.pid);
            false
        }
    }

    fn new_mm(&mut self, root: Option<u32>) -> MmId {
        let id = self.next_mm;
        self.next_mm += 1;
        self.mms.insert(
            id,
            MmShadow {
                tasks: 0,
                vmas: BTreeMap::new(),
                brk: None,
                root: root.unwrap_or(id),
            },
        );
        MmId(id)
    }

    /// The mm of `pid`, creating one (an `Exec` with no old mm) for a user task first seen
    /// mid-capture.
    fn mm_of(&mut self, pid: i32, cpu: u32, out: &mut Vec<Op>) -> Option<MmId> {
        if pid <= 0 {
            return None;
        }
        if let Some(m) = self.tasks.get(&pid) {
            return Some(*m);
        }
        let m = self.new_mm(None);
        if let Some(s) = self.mms.get_mut(&m.0) {
            s.tasks = 1;
        }
        self.tasks.insert(pid, m);
        self.stats.mms_first_seen += 1;
        self.emit(
            out,
            Op::Exec {
                cpu,
                old: None,
                new: m,
            },
        );
        Some(m)
    }

    fn outside(&mut self, cpu: u32, out: &mut Vec<Op>) -> MmId {
        if let Some(m) = self.outside_mm {
            return m;
        }
        let m = self.new_mm(None);
        self.outside_mm = Some(m);
        self.emit(
            out,
            Op::Exec {
                cpu,
                old: None,
                new: m,
            },
        );
        m
    }

    /// Lower one record, appending ops to `out`.
    pub fn push(&mut self, r: &Record, out: &mut Vec<Op>) {
        self.stats.records += 1;
        self.clock(r.ts_ns, out);
        self.seed_processes(out);
        self.access_clears(r.ts_ns, out);
        let cpu = r.cpu;
        if cpu >= self.opts.nr_cpus.max(1) {
            self.unplaced("cpu_out_of_range");
            return;
        }
        let armed = self.observer.take(cpu);
        // sched_switch is always lowered (residency matters whoever runs), with tasks outside
        // the filter mapped to a placeholder mm.
        if let Event::SchedSwitch {
            next_pid,
            next_comm,
            ..
        } = &r.event
        {
            self.switch(cpu, *next_pid, next_comm.as_bytes(), out);
            return;
        }
        if self.hold_khugepaged(r, out) {
            return;
        }
        if !self.is_selected(r) {
            self.stats.filtered_out += 1;
            return;
        }
        self.stats.matched += 1;
        self.observer.observe(&mut self.stats.observed, r, armed);
        self.stats.kernel.observe(&r.event);
        match &r.event {
            Event::PageFault {
                user,
                address,
                error_code,
                ..
            } => {
                self.resolve_pending(r.pid, out);
                self.fault(r, *user, *address, *error_code, out);
            }
            Event::SysEnter { nr, args } => {
                self.resolve_pending(r.pid, out);
                match nr {
                    Syscall::Mmap
                    | Syscall::Munmap
                    | Syscall::Mremap
                    | Syscall::Brk
                    | Syscall::Mprotect
                    | Syscall::Madvise => {
                        self.pending.insert(
                            r.pid,
                            Pending {
                                nr: *nr,
                                args: *args,
                                cpu,
                            },
                        );
                    }
                    Syscall::Execve => {
                        self.in_exec.insert(r.pid);
                        self.not_lowered("sys_enter_execve");
                    }
                    // memfd_create(MFD_HUGETLB): the next 2 MiB aligned shared mapping is that
                    // file (`file_ref`), as a hugetlbfs inode event says on kernels that log one.
                    Syscall::MemfdCreate if args.0[1] & MFD_HUGETLB != 0 => {
                        self.hugetlb_hint.insert(r.pid);
                        self.approx("hugetlb_file_from_memfd_create_flags");
                        self.not_lowered("sys_enter_memfd_create");
                    }
                    _ => self.not_lowered(r.event.name()),
                }
            }
            Event::SysExit { nr, ret } => self.sys_exit(r, *nr, *ret, out),
            Event::TaskNewtask { pid, clone_flags } => {
                if clone_flags & CLONE_VM != 0 {
                    self.vm_children.insert(*pid);
                    if let Some(m) = self.tasks.get(&r.pid).copied() {
                        self.tasks.insert(*pid, m);
                        if let Some(s) = self.mms.get_mut(&m.0) {
                            s.tasks += 1;
                        }
                    } else {
                        // A kernel thread (kthreadd) or a parent first seen here: the child
                        // gets an mm on its first user event.
                        self.not_lowered("task_newtask");
                    }
                } else {
                    self.not_lowered("task_newtask");
                }
                if self.filtering() {
                    self.selected.insert(*pid);
                }
            }
            Event::SchedProcessFork { child_pid, .. } => {
                if self.filtering() {
                    self.selected.insert(*child_pid);
                }
                if self.vm_children.remove(child_pid) {
                    // Thread or vfork child: already attached by task_newtask.
                    return;
                }
                let Some(parent) = self.mm_of(r.pid, cpu, out) else {
                    self.unplaced("fork_from_kernel_task");
                    return;
                };
                let root = self.mms.get(&parent.0).map(|s| s.root);
                let child = self.new_mm(root);
                // The child starts with a copy of the parent's VMAs (dup_mmap).
                let (vmas, brk) = match self.mms.get(&parent.0) {
                    Some(s) => (s.vmas.clone(), s.brk),
                    None => (BTreeMap::new(), None),
                };
                if let Some(s) = self.mms.get_mut(&child.0) {
                    s.vmas = vmas;
                    s.brk = brk;
                    s.tasks = 1;
                }
                if let Some(old) = self.tasks.insert(*child_pid, child) {
                    self.drop_task_ref(old);
                }
                self.emit(out, Op::Fork { cpu, parent, child });
            }
            Event::SchedProcessExec { pid, .. } => {
                let pid = if *pid > 0 { *pid } else { r.pid };
                self.pending.remove(&pid);
                self.in_exec.remove(&pid);
                let old = self.tasks.get(&pid).copied();
                // exec tears the old mm down only if this task was its last user (a vfork
                // parent keeps it).
                let old_torn = match old {
                    Some(m) => {
                        let last = self.mms.get(&m.0).is_some_and(|s| s.tasks <= 1);
                        if last {
                            self.mms.remove(&m.0);
                            Some(m)
                        } else {
                            self.drop_task_ref(m);
                            None
                        }
                    }
                    None => None,
                };
                let new = self.new_mm(None);
                if let Some(s) = self.mms.get_mut(&new.0) {
                    s.tasks = 1;
                }
                self.tasks.insert(pid, new);
                self.emit(
                    out,
                    Op::Exec {
                        cpu,
                        old: old_torn,
                        new,
                    },
                );
            }
            Event::SchedProcessExit { pid } => {
                let pid = if *pid > 0 { *pid } else { r.pid };
                self.resolve_pending(pid, out);
                self.in_exec.remove(&pid);
                if let Some(m) = self.tasks.remove(&pid) {
                    let last = self.mms.get(&m.0).is_some_and(|s| s.tasks <= 1);
                    if last {
                        self.mms.remove(&m.0);
                        self.emit(out, Op::Exit { cpu, mm: m });
                    } else {
                        self.drop_task_ref(m);
                    }
                } else {
                    self.not_lowered("sched_process_exit");
                }
            }
            Event::SetMigrationPte { addr, pte: raw, .. } => {
                self.set_migration(r, *addr, *raw, out)
            }
            Event::RemoveMigrationPte { addr, .. } => {
                self.mig_pending.remove(&(addr & !(PAGE - 1)));
                self.migrate_flush_due(cpu, out);
                self.not_lowered("remove_migration_pte");
            }
            Event::MmMigratePagesStart { .. } => self.migrate_pages_start(cpu, out),
            Event::MmMigratePages { .. } => {
                self.mig_pending.clear();
                self.migrate_flush_due(cpu, out);
                self.not_lowered("mm_migrate_pages");
            }
            Event::Vmscan(v) => self.vmscan(r.pid, cpu, v, out),
            Event::TlbFlush { .. } => self.not_lowered("tlb_flush"),
            Event::IpiSendCpu { .. } => self.not_lowered("ipi_send_cpu"),
            Event::CsdQueueCpu { .. } => self.not_lowered("csd_queue_cpu"),
            Event::IpiSendCpumask { .. } => self.not_lowered("ipi_send_cpumask"),
            Event::Hugetlbfs { name } => {
                if name.contains("alloc_inode") || name.contains("setattr") {
                    self.hugetlb_hint.insert(r.pid);
                }
                self.not_lowered(name);
            }
            Event::CollapseHugePage { mm, status } => self.collapse_huge_page(r, *mm, status, out),
            Event::RssStat {
                mm_id, curr: true, ..
            } => {
                self.rss_stat(r, *mm_id, out);
                self.not_lowered("rss_stat");
            }
            Event::Lost { count } => {
                self.unplaced("lost_events_marker");
                if let Some(n) = count {
                    *self
                        .stats
                        .unplaced
                        .entry("lost_events".to_string())
                        .or_insert(0) += n;
                }
            }
            other => {
                let name = other.name().to_string();
                self.not_lowered(&name);
            }
        }
    }

    /// End of input: resolve syscalls still waiting for their exit.
    pub fn finish(&mut self, out: &mut Vec<Op>) {
        let mut tids: Vec<i32> = self.pending.keys().copied().collect();
        tids.sort_unstable();
        for t in tids {
            self.resolve_pending(t, out);
        }
        self.access_finish();
    }

    /// What the kernel logged so far (`mmreplay fidelity` adds the sidecar's enabled events).
    pub fn observed_mut(&mut self) -> &mut Observed {
        &mut self.stats.observed
    }

    /// Take the counters (after `finish`).
    pub fn into_stats(self) -> LowerStats {
        self.stats
    }

    /// Learn or apply the hashed-mm grouping of a `curr=1` `rss_stat` event.
    fn rss_stat(&mut self, r: &Record, hash: u64, out: &mut Vec<Op>) {
        // Inside execve, `exec_mmap` makes the new mm current before `sched_process_exec`:
        // its `curr=1` events would bind the new mm's hash to the old model mm (a vfork
        // parent's, say) and regroup the task back into it after the exec.
        if r.pid <= 0 || hash == 0 || self.in_exec.contains(&r.pid) {
            return;
        }
        let known = self
            .mm_hash
            .get(&hash)
            .copied()
            .filter(|m| self.mms.contains_key(&m.0));
        match (self.tasks.get(&r.pid).copied(), known) {
            (Some(mine), Some(theirs)) if mine != theirs => {
                // This task was given its own mm when first seen; the kernel says it shares
                // `theirs`. Move it (its private mm keeps what it did so far).
                self.drop_task_ref(mine);
                let orphan = self.mms.get(&mine.0).is_some_and(|s| s.tasks == 0);
                if orphan {
                    self.mms.remove(&mine.0);
                    self.emit(
                        out,
                        Op::Exit {
                            cpu: r.cpu,
                            mm: mine,
                        },
                    );
                }
                self.tasks.insert(r.pid, theirs);
                if let Some(s) = self.mms.get_mut(&theirs.0) {
                    s.tasks += 1;
                }
                self.approx("task_regrouped_by_rss_stat_mm_id");
                self.emit(
                    out,
                    Op::Switch {
                        cpu: r.cpu,
                        next: Some(theirs),
                    },
                );
            }
            (Some(mine), None) => {
                self.mm_hash.insert(hash, mine);
            }
            (None, Some(theirs)) => {
                self.tasks.insert(r.pid, theirs);
                if let Some(s) = self.mms.get_mut(&theirs.0) {
                    s.tasks += 1;
                }
                self.approx("task_grouped_by_rss_stat_mm_id");
            }
            // Not a user event by itself (an exiting task may still account): wait for one.
            (None, None) | (Some(_), Some(_)) => {}
        }
    }

    fn drop_task_ref(&mut self, m: MmId) {
        if let Some(s) = self.mms.get_mut(&m.0) {
            s.tasks = s.tasks.saturating_sub(1);
        }
    }

    /// Feed the model's clock (`Op::Clock`) when the capture time moved on by at least
    /// [`CLOCK_STEP_NS`] since the last one: the model needs time only for once-a-second rules
    /// (`should_trim_cpumask`), so a 1 ms resolution keeps the op count small. Records older
    /// than the last clock (per-CPU buffers merge slightly out of order) emit nothing.
    fn clock(&mut self, ts_ns: u64, out: &mut Vec<Op>) {
        let due = match self.last_clock_ns {
            None => true,
            Some(last) => ts_ns >= last.saturating_add(CLOCK_STEP_NS),
        };
        if due {
            self.last_clock_ns = Some(ts_ns);
            self.emit(out, Op::Clock { now_ns: ts_ns });
        }
    }

    fn switch(&mut self, cpu: u32, next_pid: i32, next_comm: &[u8], out: &mut Vec<Op>) {
        let next = if next_pid <= 0 {
            None
        } else if let Some(m) = self.tasks.get(&next_pid) {
            Some(*m)
        } else if looks_like_kernel_thread(next_comm) {
            // The CPU keeps its previous mm (lazy TLB: enter_lazy_tlb), also when the filter
            // rejected the thread for a record it logged (a kworker's tlb_flush, rcu_preempt's
            // IPI receipt): it has no user mm, so the workload's mm_cpumask bit stays.
            None
        } else if self.filtering() && self.rejected.contains(&next_pid) {
            Some(self.outside(cpu, out))
        } else {
            // A user task not seen acting yet (older than the capture): it runs an mm the
            // model does not know, so the CPU is neither lazy nor running a modelled mm, and
            // a trimming flush IPI reaches it (`should_flush_tlb`). Its first user event gives
            // it its own mm.
            self.approx("switch_to_user_task_not_seen_yet");
            Some(self.outside(cpu, out))
        };
        self.emit(out, Op::Switch { cpu, next });
    }

    fn fault(&mut self, r: &Record, user: bool, address: u64, error_code: u64, out: &mut Vec<Op>) {
        if address >= TASK_SIZE {
            self.unplaced(if user {
                "fault_above_task_size"
            } else {
                "kernel_fault_kernel_address"
            });
            return;
        }
        if r.pid <= 0 {
            self.unplaced("fault_in_idle_task");
            return;
        }
        let Some(mm) = self.mm_of(r.pid, r.cpu, out) else {
            self.unplaced("fault_without_mm");
            return;
        };
        let va = address & !(PAGE - 1);
        let known = self.mms.get(&mm.0).is_some_and(|s| covers(&s.vmas, va));
        if !known {
            if let Some((start, end)) = self.mms.get(&mm.0).map(|s| inferred_range(&s.vmas, va)) {
                if let Some(s) = self.mms.get_mut(&mm.0) {
                    s.vmas.insert(start, end);
                }
                self.stats.inferred_vmas += 1;
                self.emit(
                    out,
                    Op::Mmap {
                        cpu: r.cpu,
                        mm,
                        addr: start,
                        len: end - start,
                        prot: prot::READ | prot::WRITE | prot::EXEC,
                        flags: map::PRIVATE | map::ANONYMOUS | map::FIXED,
                        file: None,
                        pgoff: 0,
                    },
                );
            }
        }
        let kind = AccessKind::from_x86_error_code(error_code);
        self.emit(
            out,
            Op::Fault {
                cpu: r.cpu,
                mm,
                va: address,
                kind,
            },
        );
    }

    fn resolve_pending(&mut self, tid: i32, out: &mut Vec<Op>) {
        let Some(p) = self.pending.remove(&tid) else {
            return;
        };
        // The thread went on without a logged exit: the syscall returned, result unknown.
        match p.nr {
            Syscall::Munmap | Syscall::Mprotect | Syscall::Madvise => {
                self.approx(&format!("{}_applied_without_exit", p.nr.name()));
                self.apply_syscall(tid, p, None, out);
            }
            Syscall::Mmap if p.args.0[3] & u64::from(map::FIXED) != 0 => {
                self.approx("mmap_fixed_applied_without_exit");
                self.apply_syscall(tid, p, Some(p.args.0[0] as i64), out);
            }
            Syscall::Mremap if p.args.0[3] & MREMAP_FIXED != 0 => {
                self.approx("mremap_fixed_applied_without_exit");
                self.apply_syscall(tid, p, Some(p.args.0[4] as i64), out);
            }
            other => self.unplaced(&format!("{}_without_exit", other.name())),
        }
    }

    fn sys_exit(&mut self, r: &Record, nr: Syscall, ret: i64, out: &mut Vec<Op>) {
        if nr == Syscall::Execve {
            // A failed execve keeps the old mm (a successful one already saw sched_process_exec).
            self.in_exec.remove(&r.pid);
        }
        match self.pending.get(&r.pid) {
            Some(p) if p.nr == nr => {
                let p = *p;
                self.pending.remove(&r.pid);
                // mm-semantics E.2: success is ret >= 0; for mmap/mremap/brk the return is an
                // address, so only -4095..=-1 is an error.
                if (-4095..=-1).contains(&ret) {
                    self.not_lowered(&format!("{}_failed", nr.name()));
                } else {
                    self.apply_syscall(r.pid, p, Some(ret), out);
                }
            }
            _ => match nr {
                Syscall::Mmap
                | Syscall::Munmap
                | Syscall::Mremap
                | Syscall::Brk
                | Syscall::Mprotect
                | Syscall::Madvise => {
                    self.unplaced(&format!("sys_exit_{}_without_enter", nr.name()))
                }
                _ => self.not_lowered(&format!("sys_exit_{}", nr.name())),
            },
        }
    }

    /// File identity and kind of a successful `mmap(addr, len, prot, flags, fd, off)` (`a`)
    /// that returned `addr`.
    fn file_ref(&mut self, tid: i32, mm: MmId, a: &[u64; 6], addr: u64) -> FileRef {
        let (len, flags, fd, off) = (a[1], a[3], a[4], a[5]);
        let root = self.mms.get(&mm.0).map_or(mm.0, |s| s.root);
        let shared =
            flags & 0x3 == u64::from(map::SHARED) || flags & 0x3 == u64::from(map::SHARED_VALIDATE);
        let kind = if flags & u64::from(map::HUGETLB) != 0 {
            FileKind::Hugetlbfs
        } else if shared && self.hugetlb_hint.contains(&tid) && len % PMD == 0 && addr % PMD == 0 {
            // memfd_create(MFD_HUGETLB) + mmap(fd): the trace shows the hugetlbfs inode being
            // created by this task, not the fd; a 2 MiB aligned shared mapping right after it
            // is taken to be that file.
            self.hugetlb_hint.remove(&tid);
            self.approx("hugetlbfs_file_inferred_from_inode_event");
            FileKind::Hugetlbfs
        } else {
            FileKind::Regular
        };
        let k = kind_code(kind);
        // The trace names fds, not inodes, and fd numbers are reused (ld.so maps every
        // library through fd 3). A non-fixed mapping at offset 0 opens a new identity; the
        // fixed segment mappings that follow on the same fd share it. A private file mapping
        // opened that way is keyed by its length, so every exec of the same binary or library
        // shares one page cache (as the kernel does) instead of growing a new one per process.
        let fresh = off == 0 && flags & u64::from(map::FIXED) == 0;
        let id = match self.files.get(&(root, fd, k)) {
            Some(id) if !fresh => *id,
            _ => {
                let id = match (shared, self.files_by_len.get(&(len, k))) {
                    (false, Some(id)) => *id,
                    _ => {
                        let id = self.next_file;
                        self.next_file += 1;
                        if !shared {
                            self.files_by_len.insert((len, k), id);
                        }
                        id
                    }
                };
                self.files.insert((root, fd, k), id);
                id
            }
        };
        FileRef {
            id: FileId(id),
            kind,
        }
    }

    fn apply_syscall(&mut self, tid: i32, p: Pending, ret: Option<i64>, out: &mut Vec<Op>) {
        let Some(mm) = self.mm_of(tid, p.cpu, out) else {
            self.unplaced("syscall_without_mm");
            return;
        };
        let a = p.args.0;
        let cpu = p.cpu;
        match p.nr {
            Syscall::Mmap => {
                let Some(addr) = ret.map(|r| r as u64) else {
                    return;
                };
                let len = a[1];
                let flags = a[3];
                let fd = a[4];
                let fd_none = fd as u32 == u32::MAX || fd as i64 == -1;
                let anon = flags & u64::from(map::ANONYMOUS) != 0 || fd_none;
                let file = if anon {
                    None
                } else {
                    Some(self.file_ref(tid, mm, &a, addr))
                };
                if let Some(s) = self.mms.get_mut(&mm.0) {
                    remove_range(&mut s.vmas, addr, round_up(len));
                    if len > 0 {
                        s.vmas.insert(addr, addr.saturating_add(round_up(len)));
                    }
                }
                self.emit(
                    out,
                    Op::Mmap {
                        cpu,
                        mm,
                        addr,
                        len,
                        prot: a[2] as u32,
                        flags: flags as u32,
                        file,
                        pgoff: a[5] >> 12,
                    },
                );
            }
            Syscall::Munmap => {
                if let Some(s) = self.mms.get_mut(&mm.0) {
                    remove_range(&mut s.vmas, a[0], round_up(a[1]));
                }
                self.emit(
                    out,
                    Op::Munmap {
                        cpu,
                        mm,
                        addr: a[0],
                        len: a[1],
                    },
                );
            }
            Syscall::Mremap => {
                let Some(new_addr) = ret.map(|r| r as u64) else {
                    return;
                };
                if let Some(s) = self.mms.get_mut(&mm.0) {
                    remove_range(&mut s.vmas, a[0], round_up(a[1]));
                    remove_range(&mut s.vmas, new_addr, round_up(a[2]));
                    if a[2] > 0 {
                        s.vmas
                            .insert(new_addr, new_addr.saturating_add(round_up(a[2])));
                    }
                }
                self.emit(
                    out,
                    Op::Mremap {
                        cpu,
                        mm,
                        old_addr: a[0],
                        old_len: a[1],
                        new_addr,
                        new_len: a[2],
                    },
                );
            }
            Syscall::Brk => {
                let Some(brk) = ret.map(|r| r as u64) else {
                    return;
                };
                if let Some(s) = self.mms.get_mut(&mm.0) {
                    match s.brk {
                        None => s.brk = Some(brk),
                        Some(old) if brk > old => {
                            // The heap grows from the first break the model saw.
                            s.vmas.insert(old, round_up(brk));
                            s.brk = Some(brk);
                            merge_heap(&mut s.vmas, old);
                        }
                        Some(old) if brk < old => {
                            remove_range(&mut s.vmas, round_up(brk), round_up(old) - round_up(brk));
                            s.brk = Some(brk);
                        }
                        Some(_) => {}
                    }
                }
                self.emit(out, Op::Brk { cpu, mm, brk });
            }
            Syscall::Mprotect => {
                self.emit(
                    out,
                    Op::Mprotect {
                        cpu,
                        mm,
                        addr: a[0],
                        len: a[1],
                        prot: a[2] as u32,
                    },
                );
            }
            Syscall::Madvise => {
                self.emit(
                    out,
                    Op::Madvise {
                        cpu,
                        mm,
                        addr: a[0],
                        len: a[1],
                        advice: a[2] as u32,
                    },
                );
            }
            other => self.not_lowered(&format!("sys_{}", other.name())),
        }
    }

    fn set_migration(&mut self, r: &Record, addr: u64, raw: u64, out: &mut Vec<Op>) {
        if !matches!(pte::decode(raw), pte::Pte::Swap(_)) {
            self.unplaced("set_migration_pte_not_a_swap_entry");
            return;
        }
        let va = addr & !(PAGE - 1);
        if !self.mig_pending.insert(va) {
            // Another mapping of a folio whose migration is already lowered (the rmap walk logs
            // one event per mapping; the model migrates the folio with all its mappings).
            self.approx("set_migration_pte_same_address_in_batch");
            return;
        }
        // A page the process snapshot saw at this pfn: its mm (lower/seed.rs).
        if let Some(mm) = self.seeded_mm_of_migration(raw, va) {
            self.emit(
                out,
                Op::Migrate {
                    cpu: r.cpu,
                    target: MigrateTarget::Va { mm, va },
                },
            );
            return;
        }
        // Prefer the mm of the task running on this CPU (the migrating task's own pages, NUMA
        // hinting faults), then any mm with a VMA covering the address (kcompactd, rmap walks
        // across mms), lowest id first for determinism.
        let own = self
            .tasks
            .get(&r.pid)
            .copied()
            .filter(|m| self.mms.get(&m.0).is_some_and(|s| covers(&s.vmas, va)));
        let mm = own.or_else(|| {
            self.mms
                .iter()
                .find(|(id, s)| Some(MmId(**id)) != self.outside_mm && covers(&s.vmas, va))
                .map(|(id, _)| MmId(*id))
        });
        match mm {
            Some(mm) => self.emit(
                out,
                Op::Migrate {
                    cpu: r.cpu,
                    target: MigrateTarget::Va { mm, va },
                },
            ),
            None => self.migrate_foreign_unmap(r.cpu, out),
        }
    }

    /// The reclaim op for `n` pages in the episode running on CPU `idx`.
    fn reclaim_op(&self, cpu: u32, n: u64) -> Op {
        let nr_to_reclaim = u32::try_from(n).unwrap_or(u32::MAX);
        match self.reclaim_memcg.get(cpu as usize).copied().flatten() {
            Some(memcg) => Op::ReclaimMemcg {
                cpu,
                nr_to_reclaim,
                memcg,
            },
            None => Op::Reclaim { cpu, nr_to_reclaim },
        }
    }

    /// A memcg reclaim episode begins in `pid`'s context: its process tree is one memcg (told
    /// to the model once per mm; later forks inherit it in the model).
    fn memcg_episode(&mut self, pid: i32, cpu: u32, out: &mut Vec<Op>) -> Option<u32> {
        let m = self.mm_of(pid, cpu, out)?;
        let root = self.mms.get(&m.0).map_or(m.0, |s| s.root);
        let next = u32::try_from(self.memcg_by_root.len() + 1).unwrap_or(u32::MAX);
        let memcg = *self.memcg_by_root.entry(root).or_insert(next);
        let tree: Vec<u32> = self
            .mms
            .iter()
            .filter(|(id, s)| s.root == root && !self.memcg_told.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in tree {
            self.memcg_told.insert(id);
            self.emit(
                out,
                Op::SetMemcg {
                    mm: MmId(id),
                    memcg,
                },
            );
        }
        Some(memcg)
    }

    fn vmscan(&mut self, pid: i32, cpu: u32, v: &Vmscan, out: &mut Vec<Op>) {
        self.stats.observed.vmscan.note(v);
        let idx = cpu as usize;
        match v {
            Vmscan::KswapdWake { .. } | Vmscan::DirectReclaimBegin { .. } => {
                if let Some(s) = self.reclaim_shrunk.get_mut(idx) {
                    *s = false;
                }
                let memcg = match v {
                    Vmscan::DirectReclaimBegin { memcg: true, .. } => {
                        let m = self.memcg_episode(pid, cpu, out);
                        if m.is_none() {
                            self.approx("memcg_reclaim_by_kernel_task_taken_as_global");
                        }
                        m
                    }
                    _ => None,
                };
                if let Some(s) = self.reclaim_memcg.get_mut(idx) {
                    *s = memcg;
                }
                self.not_lowered("vmscan_episode_begin");
            }
            Vmscan::LruShrinkInactive { nr_reclaimed, .. } => {
                if let Some(s) = self.reclaim_shrunk.get_mut(idx) {
                    *s = true;
                }
                if *nr_reclaimed > 0 {
                    let op = self.reclaim_op(cpu, *nr_reclaimed);
                    self.emit(out, op);
                } else {
                    self.not_lowered("mm_vmscan_lru_shrink_inactive_nothing_reclaimed");
                }
            }
            Vmscan::DirectReclaimEnd { nr_reclaimed, .. } => {
                let shrunk = self.reclaim_shrunk.get(idx).copied().unwrap_or(false);
                if !shrunk && *nr_reclaimed > 0 {
                    // No per-LRU event inside the episode: the episode's total is the target.
                    let op = self.reclaim_op(cpu, *nr_reclaimed);
                    self.emit(out, op);
                } else {
                    self.not_lowered("vmscan_episode_end");
                }
                if let Some(s) = self.reclaim_shrunk.get_mut(idx) {
                    *s = false;
                }
                if let Some(s) = self.reclaim_memcg.get_mut(idx) {
                    *s = None;
                }
            }
            other => {
                let name = Event::Vmscan(other.clone()).name().to_string();
                self.not_lowered(&name);
            }
        }
    }
}

fn kind_code(k: FileKind) -> u8 {
    match k {
        FileKind::Regular => 0,
        FileKind::Shmem => 1,
        FileKind::Hugetlbfs => 2,
    }
}

fn round_up(len: u64) -> u64 {
    len.saturating_add(PAGE - 1) & !(PAGE - 1)
}

fn covers(vmas: &BTreeMap<u64, u64>, va: u64) -> bool {
    vmas.range(..=va)
        .next_back()
        .is_some_and(|(_, end)| va < *end)
}

/// The 2 MiB-aligned region around `va`, clipped to the gap between known VMAs.
fn inferred_range(vmas: &BTreeMap<u64, u64>, va: u64) -> (u64, u64) {
    let mut start = va & !(PMD - 1);
    let mut end = start.saturating_add(PMD).min(TASK_SIZE);
    if let Some((_, pend)) = vmas.range(..=va).next_back() {
        start = start.max(*pend);
    }
    if let Some((nstart, _)) = vmas.range(va + 1..).next() {
        end = end.min(*nstart);
    }
    if start > va || end <= va {
        // Cannot happen when `va` is in a gap; keep one page as a safe fallback.
        return (va, va + PAGE);
    }
    (start, end)
}

/// Remove `[addr, addr+len)` from the shadow, splitting VMAs that straddle it.
fn remove_range(vmas: &mut BTreeMap<u64, u64>, addr: u64, len: u64) {
    if len == 0 {
        return;
    }
    let end = addr.saturating_add(len);
    let mut hit: Vec<(u64, u64)> = Vec::new();
    if let Some((s, e)) = vmas.range(..addr).next_back() {
        if *e > addr {
            hit.push((*s, *e));
        }
    }
    hit.extend(vmas.range(addr..end).map(|(s, e)| (*s, *e)));
    for (s, e) in hit {
        vmas.remove(&s);
        if s < addr {
            vmas.insert(s, addr);
        }
        if e > end {
            vmas.insert(end, e);
        }
    }
}

/// Join the heap VMA starting at `start` with a following adjacent one (brk growth).
fn merge_heap(vmas: &mut BTreeMap<u64, u64>, start: u64) {
    let Some(end) = vmas.get(&start).copied() else {
        return;
    };
    if let Some(next_end) = vmas.get(&end).copied() {
        vmas.remove(&end);
        vmas.insert(start, next_end);
    }
}

mod access;
mod batch;
mod seed;
#[cfg(test)]
mod tests;
mod thp;
