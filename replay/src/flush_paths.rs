//! Remote flush requests by kernel path (issue 22): which path of the capture's kernel sent
//! each logged `tlb_flush` reason 4 (`remote IPI send`, traced by `native_flush_tlb_multi` for
//! every `flush_tlb_multi` call), and which op of the model counted each predicted one
//! (`tlb_flush_remote`), side by side under one set of path names. `mmreplay flush-paths`
//! prints it; `replay/tests/fidelity_k61.rs` pins it.
//!
//! Observed: the sender's own events on its CPU name the path. Inside a memcg reclaim episode
//! (`mm_vmscan_memcg_reclaim_begin` .. `_end` of that task) the request is reclaim's batch
//! flush (`try_to_unmap_flush[_dirty]` → `arch_tlbbatch_flush`); the task's next own event
//! says which (`mm_vmscan_write_folio`: `try_to_unmap_flush_dirty` before `pageout`;
//! `mm_vmscan_lru_shrink_inactive`: `try_to_unmap_flush` at the end of `shrink_folio_list`), and
//! that pass's `nr_reclaimed` whether it freed anything (the model's `Op::ReclaimScan` vs
//! `Op::ReclaimMemcg`). Outside reclaim the task's last own event names it (a user page fault,
//! a syscall, `exit_mmap`, migration). A sender outside the recorded workload's process tree is
//! another process (the recorder's soft-dirty sampler writes `/proc/PID/clear_refs`, whose
//! `flush_tlb_mm` is logged in its own context).
//!
//! Predicted: the change of `tlb_flush_remote` across each applied op, by op kind (faults
//! also by their outcome). It must never change what the model or the observer count: it
//! only reads the records and the counters the `fidelity` loop already has.

use std::collections::{BTreeMap, HashMap, HashSet};

use mmreplay_parsers::kernels;
use mmreplay_parsers::record::{Event, Record, Vmscan};
use mmreplay_reference::op::{Op, OpOutcome};

use crate::observe::REASON_REMOTE_SEND_IPI;

/// A path's observed and predicted remote flush requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PathCount {
    pub observed: u64,
    pub predicted: u64,
}

/// Remote flush requests by path: the coarse rows both sides share, and each side's detail.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FlushPaths {
    /// Path → observed / predicted.
    pub paths: BTreeMap<String, PathCount>,
    /// Observed requests by path and what told it (e.g. the pass's `nr_reclaimed`, the fault's
    /// `error_code`).
    pub observed_detail: BTreeMap<String, u64>,
    /// Predicted requests by op kind (and fault outcome).
    pub predicted_detail: BTreeMap<String, u64>,
    /// The kernel's reclaim work by path: `path: what` → count (`try_to_unmap_one` kprobe
    /// hits, `mm_vmscan_write_folio`, `nr_reclaimed`).
    pub observed_work: BTreeMap<String, u64>,
    /// The model's reclaim work by op kind: `op: counter` → sum of the counter's changes
    /// (`swap_out`, `evictions`, `vmscan_activated`, `tlb_flush_local_shootdowns`), to tell
    /// where its unmaps and writebacks happen.
    pub predicted_work: BTreeMap<String, u64>,
}

/// Path names shared by both sides.
pub const RECLAIM_SCAN: &str = "reclaim: pass that freed nothing";
/// A `shrink_inactive_list` pass with `nr_reclaimed` > 0, or an episode whose kernel logged no
/// pass (6.1's MGLRU): the model's `Op::ReclaimMemcg` / `Op::Reclaim`.
pub const RECLAIM_FREE: &str = "reclaim: pass or episode that freed";
pub const FAULT: &str = "page fault";
/// A sender outside the recorded workload's process tree (the recorder's `clear_refs`).
pub const OTHER_PROCESS: &str = "another process (clear_refs)";
/// `migrate_pages` (compaction, NUMA): `try_to_migrate_one`'s flushes and the batch flush.
pub const MIGRATION: &str = "migration";

/// A remote send inside reclaim, waiting for the sender's next events.
#[derive(Clone, Copy)]
struct Pending {
    /// Which batch flush, once the next own event says it.
    dirty: Option<bool>,
}

/// Observed side: fed every record, in order.
#[derive(Default)]
pub struct ObservedPaths {
    workload: Option<i32>,
    tree: HashSet<i32>,
    in_reclaim: HashSet<i32>,
    /// Per task: its last own event that can name a path.
    last: HashMap<i32, String>,
    pending: HashMap<i32, Vec<Pending>>,
    detail: BTreeMap<String, u64>,
    paths: BTreeMap<String, u64>,
    /// Per task: unmaps, writes, and unmaps while another CPU was in the workload's
    /// `mm_cpumask`, since its last pass event.
    pass_work: HashMap<i32, [u64; 3]>,
    /// The workload's `mm_cpumask` as the capture's own `sched_switch` events build it (6.1
    /// x86 `switch_mm_irqs_off`: a CPU joins when it switches to a workload task, leaves when
    /// it switches to another user task; a kernel thread or idle keeps it, lazily).
    wl_mask: u64,
    /// Per task: its episode logged a `shrink_inactive` pass.
    shrunk: HashMap<i32, bool>,
    work: BTreeMap<String, u64>,
}

impl ObservedPaths {
    /// `workload`: the recorded workload's pid (sidecar), whose process tree is the workload.
    pub fn new(workload: Option<i32>) -> Self {
        let mut s = ObservedPaths {
            workload,
            ..Default::default()
        };
        if let Some(w) = workload {
            s.tree.insert(w);
        }
        s
    }

    fn add(&mut self, path: &str, detail: String) {
        *self.paths.entry(path.to_string()).or_insert(0) += 1;
        *self.detail.entry(format!("{path}: {detail}")).or_insert(0) += 1;
    }

    fn in_tree(&self, r: &Record) -> bool {
        self.workload.is_none()
            || self.tree.contains(&r.pid)
            || r.tgid.is_some_and(|t| self.tree.contains(&t))
    }

    /// Count one record.
    pub fn see(&mut self, r: &Record) {
        let pid = r.pid;
        match &r.event {
            Event::TlbFlush { reason, .. } => {
                let code = reason.code.or_else(|| {
                    kernels::tlb_reason_code(&reason.text)
                        .or_else(|| kernels::tlb_reason_code(&reason.text.to_ascii_lowercase()))
                });
                if code != Some(REASON_REMOTE_SEND_IPI) {
                    return;
                }
                if !self.in_tree(r) {
                    let last = self.last.get(&pid).cloned().unwrap_or_default();
                    self.add(OTHER_PROCESS, format!("{} (last own event {last})", r.comm));
                } else if self.in_reclaim.contains(&pid) {
                    self.pending
                        .entry(pid)
                        .or_default()
                        .push(Pending { dirty: None });
                } else {
                    let last = self.last.get(&pid).cloned().unwrap_or_else(|| "-".into());
                    let path = if last.starts_with("page_fault") {
                        FAULT.to_string()
                    } else if let Some(s) = last.strip_prefix("sys_") {
                        s.split(' ').next().unwrap_or(s).to_string()
                    } else if last == "exit_mmap" {
                        "exit".to_string()
                    } else if matches!(
                        last.as_str(),
                        "mm_migrate_pages_start" | "set_migration_pte"
                    ) || last.starts_with("mm_compaction")
                    {
                        MIGRATION.to_string()
                    } else {
                        format!("other: after {last}")
                    };
                    self.add(&path, last);
                }
                return;
            }
            Event::SchedProcessFork {
                parent_pid,
                child_pid,
                ..
            } if self.tree.contains(parent_pid) => {
                self.tree.insert(*child_pid);
            }
            Event::TaskNewtask { pid: child, .. } if self.tree.contains(&pid) => {
                self.tree.insert(*child);
            }
            _ => {}
        }
        // The sender's next own event after a reclaim send.
        if let Some(p) = self.pending.get_mut(&pid) {
            match &r.event {
                Event::Vmscan(Vmscan::WriteFolio { .. }) => {
                    for x in p.iter_mut().filter(|x| x.dirty.is_none()) {
                        x.dirty = Some(true);
                    }
                }
                Event::Vmscan(Vmscan::LruShrinkInactive { nr_reclaimed, .. }) => {
                    let path = if *nr_reclaimed == 0 {
                        RECLAIM_SCAN
                    } else {
                        RECLAIM_FREE
                    };
                    for x in std::mem::take(p) {
                        let d = match x.dirty {
                            Some(true) => "try_to_unmap_flush_dirty before pageout",
                            _ => "try_to_unmap_flush at the end of shrink_folio_list",
                        };
                        self.add(path, d.to_string());
                    }
                }
                Event::Vmscan(Vmscan::DirectReclaimEnd { .. }) => {
                    for x in std::mem::take(p) {
                        let d = match x.dirty {
                            Some(true) => "try_to_unmap_flush_dirty before pageout",
                            _ => "try_to_unmap_flush",
                        };
                        self.add(
                            RECLAIM_FREE,
                            format!("{d}, episode without mm_vmscan_lru_shrink_inactive"),
                        );
                    }
                }
                Event::SchedSwitch { .. }
                | Event::SchedMigrateTask { .. }
                | Event::RssStat { .. }
                | Event::CallFunctionEntry { .. } => {}
                _ => {
                    for x in p.iter_mut().filter(|x| x.dirty.is_none()) {
                        x.dirty = Some(false);
                    }
                }
            }
        }
        match &r.event {
            Event::Vmscan(Vmscan::DirectReclaimBegin { .. }) => {
                self.in_reclaim.insert(pid);
            }
            Event::Vmscan(Vmscan::DirectReclaimEnd { .. }) => {
                self.in_reclaim.remove(&pid);
            }
            _ => {}
        }
        self.work(r);
        // Events that start a path; reclaim, LRU and rmap events are work nested in one (a
        // fault's charge reclaims, then the fault flushes).
        let name = match &r.event {
            Event::PageFault {
                user, error_code, ..
            } => Some(format!(
                "page_fault_{} error_code={error_code:#x}",
                if *user { "user" } else { "kernel" }
            )),
            Event::SysEnter { nr, .. } => Some(format!("sys_{}", nr.name())),
            Event::ExitMmap => Some("exit_mmap".into()),
            Event::SchedProcessExec { .. }
            | Event::MmMigratePagesStart { .. }
            | Event::SetMigrationPte { .. }
            | Event::Compaction { .. }
            | Event::Khugepaged { .. }
            | Event::CollapseHugePage { .. } => Some(r.event.name().to_string()),
            _ => None,
        };
        if let Some(n) = name {
            self.last.insert(pid, n);
        }
    }

    /// The kernel's reclaim work (`try_to_unmap_one` kprobe hits, `mm_vmscan_write_folio`,
    /// `nr_reclaimed`) by the path that did it, as `observed_work`.
    fn work(&mut self, r: &Record) {
        let pid = r.pid;
        if let (
            Event::SchedSwitch {
                next_pid,
                next_comm,
                ..
            },
            Some(_),
        ) = (&r.event, self.workload)
        {
            let bit = 1u64 << r.cpu.min(63);
            if self.tree.contains(next_pid) {
                self.wl_mask |= bit;
            } else if !kernel_thread(*next_pid, &next_comm.to_string_lossy()) {
                self.wl_mask &= !bit;
            }
            return;
        }
        let what = match &r.event {
            Event::Kprobe { name } if &**name == "try_to_unmap_one" => "try_to_unmap_one",
            Event::Vmscan(Vmscan::WriteFolio { .. }) => "mm_vmscan_write_folio",
            Event::Vmscan(Vmscan::LruShrinkInactive { nr_reclaimed, .. }) => {
                let path = if *nr_reclaimed == 0 {
                    RECLAIM_SCAN
                } else {
                    RECLAIM_FREE
                };
                let w = self.pass_work.remove(&pid).unwrap_or_default();
                self.add_work(path, &w, *nr_reclaimed);
                self.shrunk.insert(pid, true);
                return;
            }
            Event::Vmscan(Vmscan::DirectReclaimEnd { nr_reclaimed, .. }) => {
                let w = self.pass_work.remove(&pid).unwrap_or_default();
                let shrunk = std::mem::take(self.shrunk.entry(pid).or_default());
                self.add_work(RECLAIM_FREE, &w, if shrunk { 0 } else { *nr_reclaimed });
                return;
            }
            Event::Vmscan(Vmscan::DirectReclaimBegin { .. }) => {
                self.shrunk.insert(pid, false);
                return;
            }
            _ => return,
        };
        let other_in_mask = self.wl_mask & !(1u64 << r.cpu.min(63)) != 0;
        let w = self.pass_work.entry(pid).or_default();
        if what == "try_to_unmap_one" {
            w[0] += 1;
            // should_defer_flush: the unmap defers its flush, and the pageout after it asks
            // for a remote one (try_to_unmap_flush_dirty).
            w[2] += u64::from(other_in_mask);
        } else {
            w[1] += 1;
        }
        if !self.in_reclaim.contains(&pid) {
            // kswapd or another path outside a direct reclaim episode.
            let w = self.pass_work.remove(&pid).unwrap_or_default();
            self.add_work("outside a direct reclaim episode", &w, 0);
        }
    }

    fn add_work(&mut self, path: &str, w: &[u64; 3], reclaimed: u64) {
        for (k, n) in [
            ("try_to_unmap_one", w[0]),
            ("mm_vmscan_write_folio", w[1]),
            ("nr_reclaimed", reclaimed),
            ("try_to_unmap_one while another CPU is in mm_cpumask", w[2]),
        ] {
            if n > 0 {
                *self.work.entry(format!("{path}: {k}")).or_insert(0) += n;
            }
        }
    }

    /// Requests still waiting for their pass at the end count as reclaim outside a pass.
    fn finish(&mut self) {
        let left: usize = self.pending.values().map(Vec::len).sum();
        self.pending.clear();
        for _ in 0..left {
            self.add(
                "reclaim: outside a shrink_inactive pass",
                "the capture ended first".into(),
            );
        }
    }
}

/// A task that runs no user mm (idle, kernel threads), by the names the captures' kernels
/// give them: switching to one keeps the previous mm loaded, lazily.
fn kernel_thread(pid: i32, comm: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "swapper",
        "kworker",
        "rcu_",
        "ksoftirqd",
        "kswapd",
        "migration",
        "cpuhp",
        "kthreadd",
        "khugepaged",
        "kcompactd",
        "oom_reaper",
        "watchdog",
        "irq/",
        "jbd2",
        "kblockd",
        "kdevtmpfs",
        "kauditd",
        "khungtaskd",
        "writeback",
        "scsi_",
        "idle_inject",
    ];
    pid == 0 || PREFIXES.iter().any(|p| comm.starts_with(p))
}

/// The shared path of a model op.
fn op_path(op: &Op) -> &'static str {
    match op {
        Op::ReclaimScan { .. } => RECLAIM_SCAN,
        Op::Reclaim { .. } | Op::ReclaimMemcg { .. } => RECLAIM_FREE,
        Op::Fault { .. } | Op::Access { .. } => FAULT,
        Op::ClearSoftDirty { .. } => OTHER_PROCESS,
        Op::Exit { .. } => "exit",
        Op::Migrate { .. } | Op::MigrateBatch { .. } => MIGRATION,
        o => o.name(),
    }
}

/// Predicted side: fed every applied op with `tlb_flush_remote` before and after it.
#[derive(Default)]
pub struct PredictedPaths {
    detail: BTreeMap<String, u64>,
    paths: BTreeMap<String, u64>,
    work: BTreeMap<String, u64>,
}

/// The reclaim-work counters `PredictedPaths::work` sums by op.
fn work_of(c: &mmreplay_reference::counters::Counters) -> [(&'static str, u64); 4] {
    [
        ("swap_out", c.swap_out),
        ("evictions", c.evictions),
        ("vmscan_activated", c.vmscan_activated),
        ("tlb_flush_local_shootdowns", c.tlb_flush_local_shootdowns),
    ]
}

impl PredictedPaths {
    /// Count `op`'s remote flush requests (`after - before`).
    pub fn see(&mut self, op: &Op, outcome: Option<&OpOutcome>, before: u64, after: u64) {
        let n = after.saturating_sub(before);
        if n == 0 {
            return;
        }
        let path = op_path(op);
        *self.paths.entry(path.to_string()).or_insert(0) += n;
        let d = match outcome {
            Some(OpOutcome::Fault(c)) => format!("{path}: {} {c:?}", op.name()),
            _ => format!("{path}: {}", op.name()),
        };
        *self.detail.entry(d).or_insert(0) += n;
    }

    /// Sum the reclaim-work counters' changes across `op`.
    pub fn work(
        &mut self,
        op: &Op,
        before: &[(&'static str, u64); 4],
        after: &[(&'static str, u64); 4],
    ) {
        for ((k, b), (_, a)) in before.iter().zip(after) {
            if a > b {
                *self
                    .work
                    .entry(format!("{}: {k}", op_path(op)))
                    .or_insert(0) += a - b;
            }
        }
    }
}

/// Both sides together.
pub fn combine(mut o: ObservedPaths, p: PredictedPaths) -> FlushPaths {
    o.finish();
    let mut paths: BTreeMap<String, PathCount> = BTreeMap::new();
    for (k, v) in &o.paths {
        paths.entry(k.clone()).or_default().observed = *v;
    }
    for (k, v) in &p.paths {
        paths.entry(k.clone()).or_default().predicted = *v;
    }
    FlushPaths {
        paths,
        observed_detail: o.detail,
        observed_work: o.work,
        predicted_detail: p.detail,
        predicted_work: p.work,
    }
}

/// Replay `trace` as `kernel` with the kernel's own policy (as `mmreplay fidelity` does, whole
/// capture) and attribute every logged and predicted remote flush request.
pub fn run(
    trace: &str,
    kernel: &crate::kernel::KernelChoice,
    cpus: Option<u32>,
) -> anyhow::Result<FlushPaths> {
    let mut src = crate::source::Source::open_opt(Some(trace), false)?;
    let nr_cpus = cpus
        .or(src.nr_cpus())
        .or(kernel.nr_cpus)
        .unwrap_or(crate::session::DEFAULT_CPUS)
        .clamp(1, 64);
    let profile = kernel.profile(nr_cpus);
    let spec = mmreplay_candidates::registry::parse(&kernel.own_policy)
        .map_err(|e| anyhow::anyhow!("policy {}: {e}", kernel.own_policy))?;
    let mut engine = spec.build(&profile);
    let mut low = crate::lower::Lowering::new(crate::lower::LowerOptions {
        pid: None,
        comm: None,
        nr_cpus,
        procs: crate::session::procs_for(Some(trace))?,
        access: crate::session::access_for(Some(trace))?,
    });
    let workload = crate::sidecar::workload_pid(trace).ok();
    let mut obs = ObservedPaths::new(workload);
    let mut pred = PredictedPaths::default();
    let mut ops: Vec<Op> = Vec::new();
    let mut apply = |engine: &mut mmreplay_candidates::registry::BoxedEngine, ops: &mut Vec<Op>| {
        for op in ops.drain(..) {
            let before = engine.counters().tlb_flush_remote;
            let w = work_of(engine.counters());
            let outcome = engine.apply(&op).ok();
            pred.see(
                &op,
                outcome.as_ref(),
                before,
                engine.counters().tlb_flush_remote,
            );
            pred.work(&op, &w, &work_of(engine.counters()));
        }
    };
    while let Some(r) = src.next_record()? {
        obs.see(&r);
        low.push(&r, &mut ops);
        apply(&mut engine, &mut ops);
    }
    low.finish(&mut ops);
    apply(&mut engine, &mut ops);
    Ok(combine(obs, pred))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmreplay_parsers::record::{Comm, SysArgs, Syscall, TlbReason};

    fn rec(pid: i32, event: Event) -> Record {
        Record {
            ts_ns: 0,
            cpu: 0,
            pid,
            tgid: None,
            comm: Comm::new(b"t"),
            event,
        }
    }

    fn send() -> Event {
        Event::TlbFlush {
            pages: -1,
            reason: TlbReason {
                code: None,
                text: "remote ipi send".into(),
            },
        }
    }

    #[test]
    fn reclaim_sends_take_their_pass_and_batch_flush() {
        let mut o = ObservedPaths::new(Some(7));
        let begin = Event::Vmscan(Vmscan::DirectReclaimBegin {
            order: 0,
            memcg: true,
        });
        let pass = |nr_reclaimed| {
            Event::Vmscan(Vmscan::LruShrinkInactive {
                nid: 0,
                nr_scanned: 32,
                nr_reclaimed,
                priority: 12,
                nr_ref_keep: 0,
                nr_activate: 0,
                file: Some(false),
            })
        };
        o.see(&rec(7, begin));
        o.see(&rec(7, send()));
        o.see(&rec(7, Event::Vmscan(Vmscan::WriteFolio { pfn: 1 })));
        o.see(&rec(7, pass(0)));
        o.see(&rec(7, send()));
        o.see(&rec(7, pass(5)));
        o.see(&rec(
            7,
            Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 5,
                memcg: true,
            }),
        ));
        // Outside reclaim: the last own event; another process: by comm.
        o.see(&rec(
            7,
            Event::PageFault {
                user: true,
                address: 0x1000,
                ip: 0,
                error_code: 7,
            },
        ));
        o.see(&rec(7, send()));
        o.see(&rec(
            7,
            Event::SysEnter {
                nr: Syscall::Munmap,
                args: SysArgs([0; 6]),
            },
        ));
        o.see(&rec(7, send()));
        o.see(&rec(9, send()));
        let f = combine(o, PredictedPaths::default());
        let obs = |k: &str| f.paths.get(k).map_or(0, |c| c.observed);
        assert_eq!(obs(RECLAIM_SCAN), 1);
        assert_eq!(obs(RECLAIM_FREE), 1);
        assert_eq!(obs(FAULT), 1);
        assert_eq!(obs("munmap"), 1);
        assert_eq!(obs(OTHER_PROCESS), 1);
        assert_eq!(
            f.observed_detail.get(&format!(
                "{RECLAIM_SCAN}: try_to_unmap_flush_dirty before pageout"
            )),
            Some(&1)
        );
        assert_eq!(
            f.observed_detail.get(&format!(
                "{RECLAIM_FREE}: try_to_unmap_flush at the end of shrink_folio_list"
            )),
            Some(&1)
        );
    }
}
