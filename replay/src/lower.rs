//! Lowering: trace `Record`s (what the kernel logged) into model `Op`s (what the reference model
//! and the candidates replay), with stable model identities (ARCHITECTURE.md, code map:
//! `replay/`, mm-semantics E.2).
//!
//! [`Lowering::push`] is a dispatcher over parts, each a module with its own state and the
//! invariants it keeps stated at its top:
//! - `lower/filter.rs`: which tasks `--pid` / `--comm` select;
//! - `lower/tasks.rs`: task → mm bookkeeping (fork / exec / CLONE_VM / exit, `rss_stat`
//!   grouping) and CPU residency from `sched_switch` (what `mm_cpumask` follows);
//! - `lower/vmas.rs`: the shadow of each mm's VMAs, and faults (with VMAs inferred for
//!   mappings older than the capture);
//! - `lower/syscalls.rs`: mm syscalls paired enter → exit per tid, file identities;
//! - `lower/memcg.rs`: reclaim episodes and the memcgs they reclaim;
//! - `lower/batch.rs`: migration entries matched to an mm, `migrate_pages` batch boundaries;
//! - `lower/pagecache.rs`: page-cache adds paired with the fault that made them (memcg charge);
//! - `lower/thp.rs`: khugepaged collapses; `lower/seed.rs`: the process snapshot;
//!   `lower/access.rs`: `record --access` soft-dirty clears;
//! - observe: what the kernel logged (the input to fidelity) goes through one door,
//!   `crate::observe::Observer::feed` (`observe.rs`, `vmscan_obs.rs`, `kernel_counts.rs` hold
//!   the counts); the lowering keeps no count of its own beyond [`LowerStats`].
//!
//! What it must never do: contain model semantics (it never decides what a fault does, only
//! which mm and address it hits), drop a record silently (everything it cannot place is counted
//! by reason in [`LowerStats::unplaced`]), iterate a hash map into output, or panic on input.

use std::collections::BTreeMap;

use mmreplay_parsers::record::{Event, Record};
use mmreplay_reference::op::Op;
use serde::Serialize;

use crate::observe::Observer;

const PAGE: u64 = 4096;
const PMD: u64 = 2 << 20;
/// User address space limit on x86-64 with 4-level paging (`TASK_SIZE_MAX`).
const TASK_SIZE: u64 = 1 << 47;

/// Capture-time step between two `Op::Clock` ops (1 ms, about a jiffy).
pub const CLOCK_STEP_NS: u64 = 1_000_000;
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

/// The lowering state machine. Feed records in time order with [`Lowering::push`], then call
/// [`Lowering::finish`].
pub struct Lowering {
    opts: LowerOptions,
    /// `--pid` / `--comm` (`lower/filter.rs`).
    filter: filter::Filter,
    /// Task → mm, live mms with their VMA shadows (`lower/tasks.rs`, `lower/vmas.rs`).
    tasks: tasks::Tasks,
    /// Syscalls in flight, file identities (`lower/syscalls.rs`).
    syscalls: syscalls::Syscalls,
    /// Reclaim episodes and memcgs (`lower/memcg.rs`).
    memcg: memcg::Memcg,
    /// Migration entries and batches in flight (`lower/batch.rs`).
    migrate: batch::Migration,
    /// What the kernel logged (flushes, IPIs by callback): see `crate::observe`.
    observer: Observer,
    /// Time of the last `Op::Clock` emitted (the model's clock only needs ms resolution).
    last_clock_ns: Option<u64>,
    /// khugepaged records held back under a filter (`lower/thp.rs`).
    held_khugepaged: thp::HeldKhugepaged,
    /// Process-snapshot seeding (`lower/seed.rs`).
    seed: seed::Seed,
    /// Position in `opts.access` (`lower/access.rs`).
    access: access::AccessCursor,
    /// Each task's last fault, for page-cache adds (`lower/pagecache.rs`).
    pagecache: pagecache::PageCache,
    stats: LowerStats,
}

impl Lowering {
    pub fn new(opts: LowerOptions) -> Lowering {
        let n = opts.nr_cpus.max(1) as usize;
        Lowering {
            filter: filter::Filter::new(opts.pid, opts.comm.clone()),
            opts,
            tasks: tasks::Tasks::default(),
            syscalls: syscalls::Syscalls::default(),
            memcg: memcg::Memcg::new(n),
            migrate: batch::Migration::new(n),
            observer: Observer::new(n),
            last_clock_ns: None,
            held_khugepaged: thp::HeldKhugepaged::default(),
            seed: seed::Seed::default(),
            access: access::AccessCursor::default(),
            pagecache: pagecache::PageCache::default(),
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
        // Before any filter: a receipt is attributed by what its CPU did next, whoever ran.
        self.stats.kernel.note_on_cpu(cpu, &r.event);
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
        if !self.filter.is_selected(r) {
            self.stats.filtered_out += 1;
            return;
        }
        self.stats.matched += 1;
        let s = &mut self.stats;
        self.observer.feed(&mut s.observed, &mut s.kernel, r, armed);
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
                self.pagecache.forget(r.pid);
                self.sys_enter(r, *nr, args, out)
            }
            Event::SysExit { nr, ret } => self.sys_exit(r, *nr, *ret, out),
            Event::TaskNewtask { pid, clone_flags } => self.task_newtask(r, *pid, *clone_flags),
            Event::SchedProcessFork { child_pid, .. } => self.fork(r, *child_pid, out),
            Event::SchedProcessExec { pid, .. } => self.exec(r, *pid, out),
            Event::SchedProcessExit { pid } => {
                self.pagecache.forget(*pid);
                self.exit(r, *pid, out)
            }
            Event::Filemap {
                add: true, index, ..
            } => self.filemap_add(r, *index, out),
            Event::SetMigrationPte { addr, pte: raw, .. } => {
                self.set_migration(r, *addr, *raw, out)
            }
            Event::RemoveMigrationPte { addr, .. } => self.remove_migration(cpu, *addr, out),
            Event::MmMigratePagesStart { .. } => self.migrate_pages_start(cpu, out),
            Event::MmMigratePages { .. } => self.migrate_pages_end(cpu, out),
            Event::Vmscan(v) => self.vmscan(r.pid, cpu, v, out),
            Event::TlbFlush { .. } => self.not_lowered("tlb_flush"),
            Event::IpiSendCpu { .. } => self.not_lowered("ipi_send_cpu"),
            Event::CsdQueueCpu { .. } => self.not_lowered("csd_queue_cpu"),
            Event::IpiSendCpumask { .. } => self.not_lowered("ipi_send_cpumask"),
            Event::Hugetlbfs { name } => {
                if name.contains("alloc_inode") || name.contains("setattr") {
                    self.syscalls.hugetlb_hint(r.pid);
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
        self.resolve_all_pending(out);
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
}

mod access;
mod batch;
mod filter;
mod memcg;
mod pagecache;
mod scanlist;
mod seed;
mod syscalls;
mod tasks;
#[cfg(test)]
mod tests;
mod thp;
mod vmas;
