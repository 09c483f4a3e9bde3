//! The lowering's tasks part: which task uses which model mm, and what each CPU runs. Task →
//! mm bookkeeping from `task_newtask` (CLONE_VM: threads, vfork), `sched_process_fork`
//! (dup_mmap: a new mm with a copy of the parent's VMAs), `sched_process_exec` and
//! `sched_process_exit`; user tasks first seen mid-capture get an mm (`Op::Exec` with no old
//! mm); `rss_stat`'s hashed `mm_id` regroups tasks that share an mm no event announced; and
//! `sched_switch` becomes `Op::Switch`, the residency the model's `mm_cpumask` follows (a
//! kernel thread runs lazily on the previous mm, a task outside the filter on a placeholder mm).
//!
//! Invariants: every live model mm has exactly one entry in `mms` (created by `new_mm`,
//! removed with the `Op::Exit` or torn down by the `Op::Exec` that ends it), and its `tasks`
//! count is the number of tids mapped to it; model mm ids are handed out in order and never
//! reused; `mms` is a `BTreeMap` because migration matching and memcg assignment iterate it in
//! id order (determinism). It must never emit an op for an mm it has not created, nor switch a
//! CPU to a task the filter rejected (that CPU runs the placeholder mm instead).

use std::collections::{BTreeMap, HashMap, HashSet};

use mmreplay_parsers::record::Record;
use mmreplay_reference::op::{MmId, Op};

use super::vmas::Vmas;
use super::Lowering;

/// `CLONE_VM`.
const CLONE_VM: u64 = 0x100;

/// One live model mm as the lowering knows it.
#[derive(Clone, Debug)]
pub(super) struct MmShadow {
    /// Tasks currently using this mm.
    pub tasks: u32,
    /// Its VMAs (`lower/vmas.rs`).
    pub vmas: Vmas,
    /// Lineage root (for file identities shared across fork, and the memcg of a process tree).
    pub root: u32,
}

/// Task → mm bookkeeping.
pub(super) struct Tasks {
    next_mm: u32,
    /// tid → mm.
    pub by_tid: HashMap<i32, MmId>,
    /// mm id → shadow; BTreeMap because migration matching iterates it.
    pub mms: BTreeMap<u32, MmShadow>,
    /// tids inside execve (enter seen, `sched_process_exec` not yet).
    pub in_exec: HashSet<i32>,
    /// Children announced by `task_newtask` with CLONE_VM (threads, vfork).
    vm_children: HashSet<i32>,
    /// `rss_stat` `mm_id` (a hashed `mm_struct` pointer) → model mm, learnt from `curr=1`
    /// events: tasks that report the same hashed mm share one address space. This groups the
    /// threads of processes older than the capture, which no fork/newtask event announces.
    pub mm_hash: HashMap<u64, MmId>,
    /// Placeholder mm for tasks outside the filter (so switching to them unloads the selected
    /// mm as the kernel would).
    pub outside_mm: Option<MmId>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            next_mm: 1,
            by_tid: HashMap::new(),
            mms: BTreeMap::new(),
            in_exec: HashSet::new(),
            vm_children: HashSet::new(),
            mm_hash: HashMap::new(),
            outside_mm: None,
        }
    }
}

impl Tasks {
    /// A new model mm with no task yet (`root`: the lineage it belongs to, else its own).
    pub fn new_mm(&mut self, root: Option<u32>) -> MmId {
        let id = self.next_mm;
        self.next_mm += 1;
        self.mms.insert(
            id,
            MmShadow {
                tasks: 0,
                vmas: Vmas::default(),
                root: root.unwrap_or(id),
            },
        );
        MmId(id)
    }

    /// One task fewer uses `m`.
    pub fn drop_task_ref(&mut self, m: MmId) {
        if let Some(s) = self.mms.get_mut(&m.0) {
            s.tasks = s.tasks.saturating_sub(1);
        }
    }

    /// One task more uses `m`.
    fn add_task_ref(&mut self, m: MmId) {
        if let Some(s) = self.mms.get_mut(&m.0) {
            s.tasks += 1;
        }
    }

    /// Set the number of tasks using `m`.
    pub fn set_tasks(&mut self, m: MmId, n: u32) {
        if let Some(s) = self.mms.get_mut(&m.0) {
            s.tasks = n;
        }
    }

    /// Whether `m` is the last user of its mm.
    fn last_user(&self, m: MmId) -> bool {
        self.mms.get(&m.0).is_some_and(|s| s.tasks <= 1)
    }

    /// The live model mm `hash` (an `rss_stat` / collapse `mm` pointer hash) was bound to.
    pub fn by_hash(&self, hash: u64) -> Option<MmId> {
        self.mm_hash
            .get(&hash)
            .copied()
            .filter(|m| self.mms.contains_key(&m.0))
    }

    /// Lineage root of `m` (its own id when unknown).
    pub fn root(&self, m: MmId) -> u32 {
        self.mms.get(&m.0).map_or(m.0, |s| s.root)
    }

    /// The VMAs of a live mm.
    pub fn vmas(&self, m: MmId) -> Option<&Vmas> {
        self.mms.get(&m.0).map(|s| &s.vmas)
    }

    /// The VMAs of a live mm, to change with the op that tells the model.
    pub fn vmas_mut(&mut self, m: MmId) -> Option<&mut Vmas> {
        self.mms.get_mut(&m.0).map(|s| &mut s.vmas)
    }
}

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

impl Lowering {
    /// The mm of `pid`, creating one (an `Exec` with no old mm) for a user task first seen
    /// mid-capture.
    pub(super) fn mm_of(&mut self, pid: i32, cpu: u32, out: &mut Vec<Op>) -> Option<MmId> {
        if pid <= 0 {
            return None;
        }
        if let Some(m) = self.tasks.by_tid.get(&pid) {
            return Some(*m);
        }
        let m = self.tasks.new_mm(None);
        self.tasks.set_tasks(m, 1);
        self.tasks.by_tid.insert(pid, m);
        self.stats.mms_first_seen += 1;
        self.exec_fresh(cpu, m, out);
        Some(m)
    }

    /// The placeholder mm of tasks outside the filter or unknown to the model.
    fn outside(&mut self, cpu: u32, out: &mut Vec<Op>) -> MmId {
        if let Some(m) = self.tasks.outside_mm {
            return m;
        }
        let m = self.tasks.new_mm(None);
        self.tasks.outside_mm = Some(m);
        self.exec_fresh(cpu, m, out);
        m
    }

    /// Tell the model about an mm whose history the capture does not show (`Op::Exec` with no
    /// old mm).
    pub(super) fn exec_fresh(&mut self, cpu: u32, m: MmId, out: &mut Vec<Op>) {
        self.emit(
            out,
            Op::Exec {
                cpu,
                old: None,
                new: m,
            },
        );
    }

    /// `sched_switch` → `Op::Switch` (always lowered: residency matters whoever runs).
    pub(super) fn switch(&mut self, cpu: u32, next_pid: i32, next_comm: &[u8], out: &mut Vec<Op>) {
        let next = if next_pid <= 0 {
            None
        } else if let Some(m) = self.tasks.by_tid.get(&next_pid) {
            Some(*m)
        } else if looks_like_kernel_thread(next_comm) {
            // The CPU keeps its previous mm (lazy TLB: enter_lazy_tlb), also when the filter
            // rejected the thread for a record it logged (a kworker's tlb_flush, rcu_preempt's
            // IPI receipt): it has no user mm, so the workload's mm_cpumask bit stays.
            None
        } else if self.filter.rejects(next_pid) {
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

    /// `task_newtask`: a CLONE_VM child shares its parent's mm from here on.
    pub(super) fn task_newtask(&mut self, r: &Record, pid: i32, clone_flags: u64) {
        if clone_flags & CLONE_VM != 0 {
            self.tasks.vm_children.insert(pid);
            if let Some(m) = self.tasks.by_tid.get(&r.pid).copied() {
                self.tasks.by_tid.insert(pid, m);
                self.tasks.add_task_ref(m);
            } else {
                // A kernel thread (kthreadd) or a parent first seen here: the child
                // gets an mm on its first user event.
                self.not_lowered("task_newtask");
            }
        } else {
            self.not_lowered("task_newtask");
        }
        self.filter.select_child(pid);
    }

    /// `sched_process_fork`: a new mm with a copy of the parent's VMAs (dup_mmap), unless
    /// `task_newtask` announced a CLONE_VM child.
    pub(super) fn fork(&mut self, r: &Record, child_pid: i32, out: &mut Vec<Op>) {
        let cpu = r.cpu;
        self.filter.select_child(child_pid);
        if self.tasks.vm_children.remove(&child_pid) {
            // Thread or vfork child: already attached by task_newtask.
            return;
        }
        let Some(parent) = self.mm_of(r.pid, cpu, out) else {
            self.unplaced("fork_from_kernel_task");
            return;
        };
        let root = self.tasks.mms.get(&parent.0).map(|s| s.root);
        let child = self.tasks.new_mm(root);
        // The child starts with a copy of the parent's VMAs (dup_mmap).
        let vmas = self.tasks.vmas(parent).cloned().unwrap_or_default();
        if let Some(s) = self.tasks.mms.get_mut(&child.0) {
            s.vmas = vmas;
            s.tasks = 1;
        }
        if let Some(old) = self.tasks.by_tid.insert(child_pid, child) {
            self.tasks.drop_task_ref(old);
        }
        self.emit(out, Op::Fork { cpu, parent, child });
    }

    /// `sched_process_exec`: a new mm; the old one is torn down if this task was its last
    /// user (a vfork parent keeps it).
    pub(super) fn exec(&mut self, r: &Record, pid: i32, out: &mut Vec<Op>) {
        let pid = if pid > 0 { pid } else { r.pid };
        self.syscalls.forget(pid);
        self.tasks.in_exec.remove(&pid);
        let old = self.tasks.by_tid.get(&pid).copied();
        let old_torn = match old {
            Some(m) => {
                if self.tasks.last_user(m) {
                    self.tasks.mms.remove(&m.0);
                    Some(m)
                } else {
                    self.tasks.drop_task_ref(m);
                    None
                }
            }
            None => None,
        };
        let new = self.tasks.new_mm(None);
        self.tasks.set_tasks(new, 1);
        self.tasks.by_tid.insert(pid, new);
        self.emit(
            out,
            Op::Exec {
                cpu: r.cpu,
                old: old_torn,
                new,
            },
        );
    }

    /// `sched_process_exit`: the mm ends with its last task.
    pub(super) fn exit(&mut self, r: &Record, pid: i32, out: &mut Vec<Op>) {
        let pid = if pid > 0 { pid } else { r.pid };
        self.resolve_pending(pid, out);
        self.tasks.in_exec.remove(&pid);
        if let Some(m) = self.tasks.by_tid.remove(&pid) {
            if self.tasks.last_user(m) {
                self.tasks.mms.remove(&m.0);
                self.emit(out, Op::Exit { cpu: r.cpu, mm: m });
            } else {
                self.tasks.drop_task_ref(m);
            }
        } else {
            self.not_lowered("sched_process_exit");
        }
    }

    /// Learn or apply the hashed-mm grouping of a `curr=1` `rss_stat` event.
    pub(super) fn rss_stat(&mut self, r: &Record, hash: u64, out: &mut Vec<Op>) {
        // Inside execve, `exec_mmap` makes the new mm current before `sched_process_exec`:
        // its `curr=1` events would bind the new mm's hash to the old model mm (a vfork
        // parent's, say) and regroup the task back into it after the exec.
        if r.pid <= 0 || hash == 0 || self.tasks.in_exec.contains(&r.pid) {
            return;
        }
        let known = self.tasks.by_hash(hash);
        match (self.tasks.by_tid.get(&r.pid).copied(), known) {
            (Some(mine), Some(theirs)) if mine != theirs => {
                // This task was given its own mm when first seen; the kernel says it shares
                // `theirs`. Move it (its private mm keeps what it did so far).
                self.tasks.drop_task_ref(mine);
                let orphan = self.tasks.mms.get(&mine.0).is_some_and(|s| s.tasks == 0);
                if orphan {
                    self.tasks.mms.remove(&mine.0);
                    self.emit(
                        out,
                        Op::Exit {
                            cpu: r.cpu,
                            mm: mine,
                        },
                    );
                }
                self.tasks.by_tid.insert(r.pid, theirs);
                self.tasks.add_task_ref(theirs);
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
                self.tasks.mm_hash.insert(hash, mine);
            }
            (None, Some(theirs)) => {
                self.tasks.by_tid.insert(r.pid, theirs);
                self.tasks.add_task_ref(theirs);
                self.approx("task_grouped_by_rss_stat_mm_id");
            }
            // Not a user event by itself (an exiting task may still account): wait for one.
            (None, None) | (Some(_), Some(_)) => {}
        }
    }
}
