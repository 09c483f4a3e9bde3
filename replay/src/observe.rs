//! What the capture kernel logged that the model predicts: TLB flushes by `tlb_flush` reason,
//! IPI sends and targets by callback (`flush_tlb_func`, `tlb_remove_table_smp_sync`),
//! migration entries and batches. The lowering feeds every record of the replayed tasks through
//! [`Observer::feed`], its one door to what the kernel logged (this module, `vmscan_obs` and
//! `kernel_counts` count; the lowering holds no count of its own); `mmreplay fidelity` and the
//! replay fidelity line compare these counts with the model's counters.
//!
//! What it must never do: produce ops or touch the model, or count an IPI twice (a call counted
//! from its `csd_queue_cpu` events is not counted again from the `ipi_send_cpu` that follows).

use std::collections::{BTreeMap, BTreeSet};

use mmreplay_parsers::kernels;
use mmreplay_parsers::pte;
use mmreplay_parsers::record::{Event, IpiKind, Record};

use crate::kernel_counts::KernelTally;
use mmreplay_reference::counters::Counters;
use serde::Serialize;

/// The events whose presence [`Observed::seen`] tracks (add a name here when a row needs to
/// know that an event kind was logged; at most 64).
pub const OBSERVED_EVENTS: &[&str] = &[
    "tlb_flush",
    "ipi_send_cpu",
    "ipi_send_cpumask",
    "csd_queue_cpu",
    "set_migration_pte",
    "remove_migration_pte",
    "mm_migrate_pages",
];

/// `tlb_flush` reasons (`include/linux/mm_types.h`, `enum tlb_flush_reason`).
pub const REASON_TASK_SWITCH: i32 = 0;
pub const REASON_REMOTE_SHOOTDOWN: i32 = 1;
pub const REASON_LOCAL_SHOOTDOWN: i32 = 2;
pub const REASON_LOCAL_MM_SHOOTDOWN: i32 = 3;
pub const REASON_REMOTE_SEND_IPI: i32 = kernels::TLB_REASON_REMOTE_SEND_IPI;
pub const REASON_REMOTE_WRONG_CPU: i32 = 5;

/// What the kernel logged that the fidelity line and `mmreplay fidelity` compare against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// `tlb_flush` events with reason 4 (`remote IPI send`): one per sender-side shootdown.
    pub remote_tlb_flushes: u64,
    /// IPI sends whose callback is a TLB shootdown (`flush_tlb_func`, or a single-target
    /// function call logged right after a `remote IPI send` flush on the same CPU) or a
    /// page-table sync.
    pub ipis: u64,
    /// Of which shootdowns (incl. single-target function calls from TLB paths).
    pub ipis_shootdown: u64,
    /// Of which table syncs (`tlb_remove_table_smp_sync`).
    pub ipis_table_sync: u64,
    /// Targets of those IPIs.
    pub ipi_targets: u64,
    /// Of which shootdown targets.
    pub ipi_targets_shootdown: u64,
    /// Of which table-sync targets.
    pub ipi_targets_table_sync: u64,
    /// `remove_migration_pte` events whose restored PTE was young / dirty.
    pub mig_restored_young: u64,
    pub mig_restored_dirty: u64,
    /// `set_migration_pte` events (migration entries installed, one per mapping).
    pub mig_entries_set: u64,
    /// `mm_migrate_pages` events (one per `migrate_pages` call).
    pub migrate_pages_calls: u64,
    /// `tlb_flush` events by reason code (text-only reasons mapped to their code; unknown
    /// text under -1).
    pub tlb_flush_by_reason: BTreeMap<i32, u64>,
    /// Events of [`OBSERVED_EVENTS`] seen at least once in the replayed records (bit i: the
    /// i-th name): what the capture logged. Only those are tracked, so other records cost
    /// nothing here.
    pub seen: u64,
    /// Events the capture had enabled (its sidecar's `events_enabled`, without the system),
    /// so that "enabled but none happened" reads 0 and "not enabled" reads unknown.
    pub enabled: BTreeSet<String>,
    /// The kernel's per-LRU reclaim events, summed (`vmscan_obs`).
    pub vmscan: crate::vmscan_obs::VmscanObserved,
}

impl Observed {
    /// Whether the capture holds `mm_vmscan_lru_shrink_inactive` events. Enabled is not
    /// enough: 6.1's MGLRU reclaims without logging them (kernels.md), so "enabled, none seen"
    /// is unknown there, not 0.
    pub fn vmscan_seen(&self) -> bool {
        self.vmscan.shrink_inactive_events > 0
    }

    /// Whether the capture logged (or had enabled) any of `events` (names of
    /// [`OBSERVED_EVENTS`]; any other name counts only through `enabled`).
    pub fn logged(&self, events: &[&str]) -> bool {
        events.iter().any(|e| {
            let bit = OBSERVED_EVENTS.iter().position(|n| n == e);
            bit.is_some_and(|b| self.seen & (1u64 << b) != 0) || self.enabled.contains(*e)
        })
    }

    /// Whether IPI sends are observable at all (`ipi_send_*` from ~v6.4, `csd_queue_cpu` from
    /// v6.5; 6.1 logs neither).
    pub fn ipis_logged(&self) -> bool {
        self.logged(&["ipi_send_cpu", "ipi_send_cpumask", "csd_queue_cpu"])
    }

    /// `tlb_flush` events with `reason`, if `tlb_flush` was logged.
    pub fn flushes(&self, reason: i32) -> Option<u64> {
        self.logged(&["tlb_flush"])
            .then(|| self.tlb_flush_by_reason.get(&reason).copied().unwrap_or(0))
    }

    /// Record the sidecar's `events_enabled` (`system:name` strings).
    pub fn set_enabled<'a>(&mut self, events: impl IntoIterator<Item = &'a str>) {
        for e in events {
            let name = e.rsplit(':').next().unwrap_or(e);
            self.enabled.insert(name.to_string());
        }
    }
}

/// Reason code of a `tlb_flush` (the number when printed, else from the text, whose case
/// differs between 6.1 and 6.18: `kernels::tlb_reason_code`, the table `kernel_counts` reads
/// too, then in lower case as 6.1 prints it); unknown text is -1.
fn reason_code(code: Option<i32>, text: &str) -> i32 {
    code.or_else(|| kernels::tlb_reason_code(text))
        .or_else(|| kernels::tlb_reason_code(&text.to_ascii_lowercase()))
        .unwrap_or(-1)
}

/// Per-CPU state that pairs an IPI with the flush or csd logged just before it.
#[derive(Clone, Debug)]
pub struct Observer {
    /// Per CPU: the last record on it was a `tlb_flush` with reason `remote IPI send`, so a
    /// single-target function-call IPI right after it is that flush's shootdown
    /// (`native_flush_tlb_multi` traces the flush, then `on_each_cpu_cond_mask` sends).
    remote_send_armed: Vec<bool>,
    /// Per CPU: the last record on it was a `csd_queue_cpu` whose function is a TLB shootdown
    /// or a page-table sync. That call is counted from its csds (one send, one target per
    /// csd queued in a row), so the IPI that may follow (named only by the generic handler,
    /// or not sent at all when the target idles polling) is not counted again.
    csd_armed: Vec<Option<IpiKind>>,
}

/// What was armed on a CPU before the current record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Armed {
    remote_send: bool,
    csd: Option<IpiKind>,
}

impl Observer {
    pub fn new(nr_cpus: usize) -> Observer {
        Observer {
            remote_send_armed: vec![false; nr_cpus],
            csd_armed: vec![None; nr_cpus],
        }
    }

    /// Disarm `cpu` (every record on it does, replayed or not) and return what was armed.
    pub fn take(&mut self, cpu: u32) -> Armed {
        Armed {
            remote_send: self
                .remote_send_armed
                .get_mut(cpu as usize)
                .map(std::mem::take)
                .unwrap_or(false),
            csd: self
                .csd_armed
                .get_mut(cpu as usize)
                .and_then(std::mem::take),
        }
    }

    /// The lowering's one door to what the kernel logged: count what a replayed record shows
    /// in `o` (flushes, IPIs, migration entries, vmscan sums: `crate::vmscan_obs`) and in `k`
    /// (the kernel's own counts: `crate::kernel_counts`). `armed`: from [`Observer::take`] on
    /// its CPU.
    pub fn feed(&mut self, o: &mut Observed, k: &mut KernelTally, r: &Record, armed: Armed) {
        self.observe(o, r, armed);
        k.observe(&r.event);
        if let Event::Vmscan(v) = &r.event {
            o.vmscan.note(v);
        }
    }

    /// Count what a replayed record shows in `o` (`armed`: from [`Observer::take`] on its CPU).
    fn observe(&mut self, o: &mut Observed, r: &Record, armed: Armed) {
        let cpu = r.cpu as usize;
        match &r.event {
            Event::TlbFlush { reason, .. } => {
                let code = reason_code(reason.code, &reason.text);
                *o.tlb_flush_by_reason.entry(code).or_insert(0) += 1;
                if code == REASON_REMOTE_SEND_IPI {
                    o.remote_tlb_flushes += 1;
                    if let Some(a) = self.remote_send_armed.get_mut(cpu) {
                        *a = true;
                    }
                }
            }
            Event::IpiSendCpu { kind, .. } => {
                let kind = match kind {
                    // Already counted from its csd.
                    _ if armed.csd.is_some() => IpiKind::Other,
                    IpiKind::CallFunctionSingle if armed.remote_send => IpiKind::TlbShootdown,
                    IpiKind::CallFunctionSingle => IpiKind::Other,
                    // smp_call_function with the generic handler: tlb_remove_table_sync_one
                    // on every MM path (a capture without csd events names nothing better).
                    IpiKind::SmpCallFunction => IpiKind::TableSync,
                    k => *k,
                };
                ipi(o, kind, 1);
            }
            Event::CsdQueueCpu { kind, .. } => {
                if matches!(kind, IpiKind::TableSync | IpiKind::TlbShootdown) {
                    if armed.csd == Some(*kind) {
                        // Another target of the same call.
                        target(o, *kind, 1);
                    } else {
                        ipi(o, *kind, 1);
                    }
                    if let Some(a) = self.csd_armed.get_mut(cpu) {
                        *a = Some(*kind);
                    }
                }
            }
            Event::IpiSendCpumask { kind, targets, .. } => {
                let kind = match kind {
                    _ if armed.csd.is_some() => IpiKind::Other,
                    // send_call_function_ipi_mask names the generic handler too.
                    IpiKind::CallFunctionSingle if armed.remote_send => IpiKind::TlbShootdown,
                    IpiKind::SmpCallFunction => IpiKind::TableSync,
                    k => *k,
                };
                ipi(o, kind, u64::from(*targets));
            }
            Event::SetMigrationPte { .. } => o.mig_entries_set += 1,
            Event::RemoveMigrationPte { pte: raw, .. } => {
                let (young, dirty) = pte::restored_young_dirty(*raw);
                o.mig_restored_young += u64::from(young);
                o.mig_restored_dirty += u64::from(dirty);
            }
            Event::MmMigratePages { .. } => o.migrate_pages_calls += 1,
            _ => return,
        }
        let name = r.event.name();
        if let Some(b) = OBSERVED_EVENTS.iter().position(|n| *n == name) {
            o.seen |= 1u64 << b;
        }
    }
}

fn target(o: &mut Observed, kind: IpiKind, n: u64) {
    o.ipi_targets += n;
    match kind {
        IpiKind::TlbShootdown => o.ipi_targets_shootdown += n,
        IpiKind::TableSync => o.ipi_targets_table_sync += n,
        IpiKind::CallFunctionSingle | IpiKind::Other | IpiKind::SmpCallFunction => {}
    }
}

fn ipi(o: &mut Observed, kind: IpiKind, targets: u64) {
    match kind {
        IpiKind::TlbShootdown => {
            o.ipis += 1;
            o.ipis_shootdown += 1;
        }
        IpiKind::TableSync => {
            o.ipis += 1;
            o.ipis_table_sync += 1;
        }
        IpiKind::CallFunctionSingle | IpiKind::Other | IpiKind::SmpCallFunction => return,
    }
    target(o, kind, targets);
}

/// One row of the fidelity table: a count the kernel logs and the model predicts.
pub struct CounterRow {
    /// Stable name (JSON key under `counters`).
    pub name: &'static str,
    /// What the kernel logged, `None` when the capture did not log that kind of event.
    pub observed: fn(&Observed) -> Option<u64>,
    /// What the model predicts (the kernel's own policy under its profile), `None` when the
    /// model does not predict it.
    pub predicted: fn(&Counters) -> Option<u64>,
    /// How each side is counted (`mmreplay fidelity --explain`).
    pub how: &'static str,
    /// Part of the fidelity goal (±25%, ±1 below 10): the first diverging window is looked
    /// for among these rows only.
    pub goal: bool,
}

/// The fidelity table. Add a row here to compare another count; keep names stable.
pub const COUNTERS: &[CounterRow] = &[
    CounterRow {
        name: "vmscan_scanned",
        observed: |o| o.vmscan_seen().then_some(o.vmscan.scanned),
        predicted: |c| Some(c.vmscan_scanned),
        how: "mm_vmscan_lru_shrink_inactive nr_scanned, summed, vs the model's shrink_inactive_list \
              (classic LRU) or oldest-generation isolation (MGLRU)",
        goal: false,
    },
    CounterRow {
        name: "vmscan_reclaimed",
        observed: |o| o.vmscan_seen().then_some(o.vmscan.reclaimed),
        predicted: |c| Some(c.vmscan_reclaimed),
        how: "mm_vmscan_lru_shrink_inactive nr_reclaimed vs folios the model's shrink_folio_list freed",
        goal: false,
    },
    CounterRow {
        name: "vmscan_ref_keep",
        observed: |o| o.vmscan_seen().then_some(o.vmscan.ref_keep),
        predicted: |c| Some(c.vmscan_ref_keep),
        how: "nr_ref_keep: kept by folio_check_references (referenced once, PG_referenced set)",
        goal: false,
    },
    CounterRow {
        name: "vmscan_activated",
        observed: |o| o.vmscan_seen().then_some(o.vmscan.activated),
        predicted: |c| Some(c.vmscan_activated),
        how: "nr_activate_anon + nr_activate_file: activated by folio_check_references",
        goal: false,
    },
    CounterRow {
        name: "remote_tlb_flushes",
        observed: |o| o.flushes(REASON_REMOTE_SEND_IPI),
        predicted: |c| Some(c.tlb_flush_remote),
        how: "tlb_flush reason 4 (native_flush_tlb_multi, before lazy CPUs are skipped) vs \
              flush_tlb_mm_range/arch_tlbbatch_flush calls with another CPU in the mask",
        goal: true,
    },
    CounterRow {
        name: "ipi_sends",
        observed: |o| o.ipis_logged().then_some(o.ipis),
        predicted: |c| Some(c.ipi_sends()),
        how: "smp_call_function_many_cond calls running flush_tlb_func or \
              tlb_remove_table_smp_sync on at least one other CPU",
        goal: true,
    },
    CounterRow {
        name: "ipi_sends:flush_tlb_func",
        observed: |o| o.ipis_logged().then_some(o.ipis_shootdown),
        predicted: |c| Some(c.ipi_sends_shootdown),
        how: "csd_queue_cpu func=flush_tlb_func, or the single-target IPI after a reason-4 \
              tlb_flush on the same CPU",
        goal: true,
    },
    CounterRow {
        name: "ipi_sends:tlb_remove_table_smp_sync",
        observed: |o| o.ipis_logged().then_some(o.ipis_table_sync),
        predicted: |c| Some(c.ipi_sends_table_sync),
        how: "tlb_remove_table_sync_one (khugepaged collapse, hugetlb unshare, table-free \
              fallback)",
        goal: true,
    },
    CounterRow {
        name: "ipi_targets",
        observed: |o| o.ipis_logged().then_some(o.ipi_targets),
        predicted: |c| Some(c.ipi_targets),
        how: "CPUs those calls queued work on",
        goal: true,
    },
    CounterRow {
        name: "ipi_targets:flush_tlb_func",
        observed: |o| o.ipis_logged().then_some(o.ipi_targets_shootdown),
        predicted: |c| Some(c.ipi_targets_shootdown),
        how: "CPUs that passed should_flush_tlb",
        goal: true,
    },
    CounterRow {
        name: "ipi_targets:tlb_remove_table_smp_sync",
        observed: |o| o.ipis_logged().then_some(o.ipi_targets_table_sync),
        predicted: |c| Some(c.ipi_targets_table_sync),
        how: "every other online CPU",
        goal: true,
    },
    CounterRow {
        name: "tlb_flush:local_mm_shootdown",
        observed: |o| o.flushes(REASON_LOCAL_MM_SHOOTDOWN),
        predicted: |c| Some(c.tlb_flush_local_mm_shootdowns),
        how: "tlb_flush reason 3 vs flush_tlb_func runs on a sender running the mm (lower bound \
              on the kernel side: a CPU already up to date logs nothing)",
        goal: false,
    },
    CounterRow {
        name: "tlb_flush:local_shootdown",
        observed: |o| o.flushes(REASON_LOCAL_SHOOTDOWN),
        predicted: |c| Some(c.tlb_flush_local_shootdowns),
        how: "tlb_flush reason 2 vs arch_tlbbatch_flush runs on the sender (reclaim, migration)",
        goal: false,
    },
    CounterRow {
        name: "tlb_flush:remote_wrong_cpu",
        observed: |o| o.flushes(REASON_REMOTE_WRONG_CPU),
        predicted: |c| Some(c.tlb_flush_remote_wrong_cpu),
        how: "tlb_flush reason 5 vs CPUs trimmed from mm_cpumask by a flush (6.14+)",
        goal: false,
    },
    CounterRow {
        name: "tlb_flush:remote_shootdown",
        observed: |o| o.flushes(REASON_REMOTE_SHOOTDOWN),
        predicted: |_| None,
        how: "tlb_flush reason 1 (receivers that flushed); not predicted: the model does not \
              track each CPU's tlb_gen, so it cannot tell an up-to-date receiver",
        goal: false,
    },
    CounterRow {
        name: "tlb_flush:task_switch",
        observed: |o| o.flushes(REASON_TASK_SWITCH),
        predicted: |_| None,
        how: "tlb_flush reason 0 (switch_mm_irqs_off); not predicted",
        goal: false,
    },
    CounterRow {
        name: "migration_entries_set",
        observed: |o| {
            o.logged(&["set_migration_pte"])
                .then_some(o.mig_entries_set)
        },
        predicted: |c| Some(c.mig_entries_set),
        how: "set_migration_pte events vs migration entries the model installed",
        goal: false,
    },
    CounterRow {
        name: "migration_restored_young",
        observed: |o| {
            o.logged(&["remove_migration_pte"])
                .then_some(o.mig_restored_young)
        },
        predicted: |c| Some(c.mig_restored_young),
        how: "remove_migration_pte with _PAGE_ACCESSED",
        goal: false,
    },
    CounterRow {
        name: "migration_restored_dirty",
        observed: |o| {
            o.logged(&["remove_migration_pte"])
                .then_some(o.mig_restored_dirty)
        },
        predicted: |c| Some(c.mig_restored_dirty),
        how: "remove_migration_pte with _PAGE_DIRTY",
        goal: false,
    },
];

/// The fidelity goal: within ±25%, or within 1 when the kernel logged fewer than 10.
pub fn within_tolerance(observed: u64, predicted: u64) -> bool {
    if observed < 10 {
        predicted.abs_diff(observed) <= 1
    } else {
        predicted.abs_diff(observed) * 4 <= observed
    }
}
