//! The kernel's own counts of MM work in a capture, for comparison with the reference model:
//! remote flush requests, IPI receipts, reclaimed pages and, where `record --probe` added
//! kprobe events, rmap visits, unmap visits and look-arounds.
//!
//! A counter is `None` when the capture cannot show it (its event was not recorded, or the
//! kernel has no such event), never an "observed 0": a 6.1 capture has no IPI send events, a
//! capture without `--probe` has no rmap counts. Which events a kernel logs comes from
//! `mmreplay_parsers::kernels` (one table for both capture kernels).
//!
//! What it must never do: lower anything, or know the model beyond the names of the counters
//! it is compared with ([`PREDICTED_BY`]).

use mmreplay_parsers::kernels::{self, IpiView, PROBE_COUNTERS, TLB_REASON_REMOTE_SEND_IPI};
use mmreplay_parsers::record::{Event, Vmscan};
use mmreplay_reference::counters::Counters;
use serde::Serialize;
use std::collections::BTreeMap;

/// Raw tallies, one record at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelTally {
    /// `tlb_flush` events of any reason, and those with reason `remote ipi send` (4).
    pub tlb_flush_events: u64,
    pub remote_flush_requests: u64,
    /// `call_function_entry` (vector 252) and `call_function_single_entry` (251).
    pub call_function_entry: u64,
    pub call_function_single_entry: u64,
    /// `ipi_send_*` / `csd_queue_cpu` events seen.
    pub ipi_send_events: u64,
    /// `vmscan` events of any kind.
    pub vmscan_events: u64,
    /// `*_reclaim_end` events and the sum of their `nr_reclaimed`.
    pub reclaim_end_events: u64,
    pub reclaimed: u64,
    /// Kprobe hits by event name.
    pub kprobe_hits: BTreeMap<String, u64>,
    /// Receipts after which the receiving CPU's next event was a scheduler event (see
    /// [`KernelTally::note_on_cpu`]), and scheduler events seen at all (without them no
    /// receipt can be attributed).
    pub receipts_sched: u64,
    pub sched_events: u64,
    /// Receipts per CPU not yet followed by another event on their CPU.
    #[serde(skip)]
    receipts_pending: Vec<u64>,
}

/// A scheduler event that a cross-CPU call can cause on its receiving CPU: the switch to a
/// task woken through `ttwu_queue_wakelist` (`sched_ttwu_pending` runs in the interrupt, the
/// switch follows on interrupt exit) or a task moved by the idle balance that a
/// `nohz_csd_func` kick raised (`kick_ilb`). Both arrive as `call_function_single` interrupts.
fn is_sched_event(ev: &Event) -> bool {
    match ev {
        Event::SchedSwitch { .. } | Event::SchedMigrateTask { .. } => true,
        Event::Other { name } => matches!(
            &**name,
            "sched_wakeup" | "sched_wakeup_new" | "sched_waking"
        ),
        _ => false,
    }
}

impl KernelTally {
    /// See every record of CPU `cpu` in order, filtered or not, to attribute IPI receipts by
    /// what the receiving CPU did next: a scheduler event first means a wake-up or idle-balance
    /// kick (the scheduler's use of the call-function interrupt, which the model does not
    /// run); anything else (a TLB flush, a kprobe of the callback, the interrupted task's own
    /// work) counts for MM. Back-to-back receipts share the verdict of the event that ends
    /// them. 6.1 logs no `*_exit` of these vectors, so "next event" is the best bound of the
    /// handler the capture gives; a wake-up that does not preempt a busy CPU counts for MM.
    pub fn note_on_cpu(&mut self, cpu: u32, ev: &Event) {
        let sched = is_sched_event(ev);
        if sched {
            self.sched_events += 1;
        }
        let i = cpu as usize;
        if i >= self.receipts_pending.len() {
            // CPUs are bounded by the lowering's `nr_cpus` check before this call.
            self.receipts_pending.resize(i + 1, 0);
        }
        if matches!(ev, Event::CallFunctionEntry { .. }) {
            self.receipts_pending[i] += 1;
            return;
        }
        let pending = std::mem::take(&mut self.receipts_pending[i]);
        if sched {
            self.receipts_sched += pending;
        }
    }

    pub fn observe(&mut self, ev: &Event) {
        match ev {
            Event::TlbFlush { reason, .. } => {
                self.tlb_flush_events += 1;
                let code = reason
                    .code
                    .or_else(|| kernels::tlb_reason_code(&reason.text));
                if code == Some(TLB_REASON_REMOTE_SEND_IPI) {
                    self.remote_flush_requests += 1;
                }
            }
            Event::CallFunctionEntry { single: false, .. } => self.call_function_entry += 1,
            Event::CallFunctionEntry { single: true, .. } => self.call_function_single_entry += 1,
            Event::IpiSendCpu { .. } | Event::IpiSendCpumask { .. } | Event::CsdQueueCpu { .. } => {
                self.ipi_send_events += 1
            }
            Event::Vmscan(v) => {
                self.vmscan_events += 1;
                if let Vmscan::DirectReclaimEnd { nr_reclaimed, .. } = v {
                    self.reclaim_end_events += 1;
                    self.reclaimed += nr_reclaimed;
                }
            }
            Event::Kprobe { name } => {
                *self.kprobe_hits.entry(name.to_string()).or_insert(0) += 1;
            }
            _ => {}
        }
    }

    /// The observed counters. `enabled` is the capture's `events_enabled` (`system:event`,
    /// from its sidecar) when known: a counter is observed exactly when its event was
    /// recorded. Without it, a counter is observed only when the capture shows its events were
    /// recorded: one occurred, or (kprobes) another probe of the same `PROBE_SETS` set hit, or
    /// (reclaimed) some `vmscan` event occurred.
    pub fn observed(&self, enabled: Option<&[String]>) -> ObservedCounts {
        let has = |names: &[&str], seen: bool| -> bool {
            match enabled {
                Some(list) => list.iter().any(|e| {
                    let ev = e.split_once(':').map_or(e.as_str(), |(_, n)| n);
                    names.iter().any(|n| e == n || ev == *n)
                }),
                None => seen,
            }
        };
        let when = |present: bool, v: u64| present.then_some(v);
        let receipts = self.call_function_entry + self.call_function_single_entry;
        let receipts_recorded = has(
            &["call_function_entry", "call_function_single_entry"],
            receipts > 0,
        );
        let attributable = receipts_recorded && has(&["sched_switch"], self.sched_events > 0);
        let ipi_view = match enabled {
            Some(list) => IpiView::from_enabled(list.iter().map(String::as_str)),
            None if self.ipi_send_events > 0 => IpiView::Sends,
            None if receipts > 0 => IpiView::Receipts,
            None => IpiView::None,
        };
        let probe = |func: &str| {
            let n = self.kprobe_hits.get(func).copied().unwrap_or(0);
            let set_hit = kernels::PROBE_SETS.iter().any(|(_, set)| {
                set.contains(&func)
                    && set
                        .iter()
                        .any(|f| self.kprobe_hits.get(*f).is_some_and(|&h| h > 0))
            });
            when(has(&[func], set_hit), n)
        };
        let by_counter = |counter: &str| {
            PROBE_COUNTERS
                .iter()
                .find(|(c, _)| *c == counter)
                .and_then(|(_, f)| probe(f))
        };
        ObservedCounts {
            ipi_view,
            remote_flush_requests: when(
                has(&["tlb_flush"], self.tlb_flush_events > 0),
                self.remote_flush_requests,
            ),
            ipi_receipts: when(receipts_recorded, receipts),
            ipi_receipts_sched: when(attributable, self.receipts_sched),
            ipi_receipts_mm: when(attributable, receipts.saturating_sub(self.receipts_sched)),
            reclaimed: when(
                has(
                    &[
                        "mm_vmscan_direct_reclaim_end",
                        "mm_vmscan_memcg_reclaim_end",
                    ],
                    self.vmscan_events > 0,
                ),
                self.reclaimed,
            ),
            rmap_referenced_visits: by_counter("rmap_referenced_visits"),
            lookarounds: by_counter("lookarounds"),
            rmap_unmap_visits: by_counter("rmap_unmap_visits"),
            tlb_receipts: by_counter("tlb_receipts"),
            table_sync_receipts: by_counter("table_sync_receipts"),
        }
    }
}

/// What the capture shows of the kernel's work; `None`: not observable in this capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ObservedCounts {
    /// Which IPI information the capture holds (sends, receipts, none).
    pub ipi_view: IpiView,
    /// `tlb_flush` reason `remote ipi send` (4): `native_flush_tlb_multi` calls, before lazy
    /// CPUs are filtered out.
    pub remote_flush_requests: Option<u64>,
    /// `call_function_entry` + `call_function_single_entry`: interrupts received (one can
    /// drain several queued calls; an idle-polling target gets none).
    pub ipi_receipts: Option<u64>,
    /// The receipts whose receiving CPU switched task or moved one next: remote wake-ups and
    /// idle-balance kicks, the scheduler's calls (`ttwu_queue_wakelist`, `kick_ilb`). Not
    /// modelled; `None` when the capture has no `sched_switch` events to tell.
    pub ipi_receipts_sched: Option<u64>,
    /// `ipi_receipts` less `ipi_receipts_sched`: the receipts the model's IPIs stand for.
    pub ipi_receipts_mm: Option<u64>,
    /// Sum of `nr_reclaimed` of the direct and memcg reclaim episodes (kswapd's not included).
    pub reclaimed: Option<u64>,
    /// Kprobe `folio_referenced_one` hits: rmap visits of a (folio, VMA) by `folio_referenced`.
    pub rmap_referenced_visits: Option<u64>,
    /// Kprobe `try_to_unmap_one` hits.
    pub rmap_unmap_visits: Option<u64>,
    /// Kprobe `lru_gen_look_around` hits.
    pub lookarounds: Option<u64>,
    /// Kprobe `flush_tlb_func` hits on a CPU other than the flush's initiator (`record
    /// --probe ipi` filters the rest out): shootdown calls received, the TLB part of
    /// `ipi_receipts`, one per call even when one interrupt drains several.
    pub tlb_receipts: Option<u64>,
    /// Kprobe `tlb_remove_table_smp_sync` hits: table-sync calls received.
    pub table_sync_receipts: Option<u64>,
}

/// The reference-model counter each observed count is compared with, before any kernel
/// profile (the fidelity work owns refining these). `ipi_receipts` is compared with IPI
/// targets: one interrupt per target, though the kernel may drain several calls with one.
pub const PREDICTED_BY: &[(&str, &str)] = &[
    ("remote_flush_requests", "tlb_flush_remote"),
    ("ipi_receipts", "ipi_targets"),
    ("ipi_receipts_mm", "ipi_targets"),
    ("reclaimed", "evictions"),
    ("rmap_referenced_visits", "a_tc_rmap_pte"),
    ("rmap_unmap_visits", "evictions"),
    ("lookarounds", "lookaround_calls"),
    ("tlb_receipts", "ipi_targets_shootdown"),
    ("table_sync_receipts", "ipi_targets_table_sync"),
];

/// Observed counts the model does not predict, with why: shown beside the compared ones.
pub const NOT_MODELLED: &[(&str, &str)] = &[(
    "ipi_receipts_sched",
    "scheduler wake-ups and idle-balance kicks",
)];

/// Counters the text line names only when the capture shows them.
const SHOWN_WHEN_OBSERVED: &[&str] = &["tlb_receipts", "table_sync_receipts", "ipi_receipts_mm"];

impl ObservedCounts {
    /// Forget what a filtered run cannot attribute: receipts (interrupts and the calls they
    /// run) are logged in whatever task the interrupt hit, not in the task that asked.
    pub fn forget_receipts(&mut self) {
        self.ipi_receipts = None;
        self.ipi_receipts_sched = None;
        self.ipi_receipts_mm = None;
        self.tlb_receipts = None;
        self.table_sync_receipts = None;
    }

    /// `(name, observed)` in the stable order of [`PREDICTED_BY`], then [`NOT_MODELLED`].
    pub fn pairs(&self) -> [(&'static str, Option<u64>); 10] {
        [
            ("remote_flush_requests", self.remote_flush_requests),
            ("ipi_receipts", self.ipi_receipts),
            ("ipi_receipts_mm", self.ipi_receipts_mm),
            ("reclaimed", self.reclaimed),
            ("rmap_referenced_visits", self.rmap_referenced_visits),
            ("rmap_unmap_visits", self.rmap_unmap_visits),
            ("lookarounds", self.lookarounds),
            ("tlb_receipts", self.tlb_receipts),
            ("table_sync_receipts", self.table_sync_receipts),
            ("ipi_receipts_sched", self.ipi_receipts_sched),
        ]
    }

    /// The `--json` object: `{"ipi_view": ..., NAME: {"observed", "predicted", "model_counter"}}`
    /// for every counter, `observed` null when the capture cannot show it.
    pub fn json(&self, predicted: Option<&Counters>) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("ipi_view".into(), serde_json::json!(self.ipi_view));
        for (name, obs) in self.pairs() {
            let model = PREDICTED_BY
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| *c);
            let pred = model.and_then(|c| predicted.and_then(|p| p.get(c)));
            m.insert(
                name.into(),
                serde_json::json!({ "observed": obs, "predicted": pred, "model_counter": model }),
            );
        }
        serde_json::Value::Object(m)
    }
}

/// The `fidelity.kernel_counts` object of `replay --json`, from the records alone (so a
/// capture, its `.mmr` and its text on stdin report the same). A filtered run (`--pid`,
/// `--workload`) cannot attribute IPI receipts (logged in whatever task the interrupt hit), so
/// they are not observable there.
pub fn report_json(
    lower: &crate::lower::LowerStats,
    reference: Option<&Counters>,
) -> serde_json::Value {
    let mut o = lower.kernel.observed(None);
    if lower.filtered_out > 0 {
        o.forget_receipts();
    }
    o.json(reference)
}

/// The capture shows IPI receipts and no IPI send events: a kernel before the `ipi_send_*` /
/// `csd_*` events (6.1), whose sends cannot be observed.
pub fn receipts_only(lower: &crate::lower::LowerStats) -> bool {
    let k = &lower.kernel;
    k.ipi_send_events == 0 && k.call_function_entry + k.call_function_single_entry > 0
}

/// One line for the text report: `kernel's own counts: NAME predicted P / observed O, ...`,
/// with `not in capture` for what the capture cannot show.
pub fn report_text(lower: &crate::lower::LowerStats, reference: Option<&Counters>) -> String {
    let j = report_json(lower, reference);
    let mut parts = Vec::new();
    for (name, _) in PREDICTED_BY {
        let e = &j[*name];
        let pred = e["predicted"].as_u64().unwrap_or(0);
        parts.push(match e["observed"].as_u64() {
            Some(o) => format!("{name} predicted {pred} / observed {o}"),
            // Receipts by callback exist only in captures made with `--probe ipi`: not
            // listed elsewhere, to keep the line short.
            None if SHOWN_WHEN_OBSERVED.contains(name) => continue,
            None => format!("{name} not in capture"),
        });
    }
    format!(
        "kernel's own counts (IPIs as {}): {}",
        j["ipi_view"].as_str().unwrap_or("?"),
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmreplay_parsers::record::{Sym, TlbReason};

    fn tlb(code: Option<i32>, text: &str) -> Event {
        Event::TlbFlush {
            pages: -1,
            reason: TlbReason {
                code,
                text: Sym::from(text),
            },
        }
    }

    fn tally() -> KernelTally {
        let mut t = KernelTally::default();
        for ev in [
            tlb(Some(4), "remote ipi send"),
            tlb(None, "remote IPI send"),
            tlb(Some(3), "local mm shootdown"),
            Event::CallFunctionEntry {
                single: true,
                vector: 251,
            },
            Event::CallFunctionEntry {
                single: false,
                vector: 252,
            },
            Event::CallFunctionEntry {
                single: true,
                vector: 251,
            },
            Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 30,
                memcg: true,
            }),
            Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 2,
                memcg: false,
            }),
            Event::Kprobe {
                name: Sym::from("folio_referenced_one"),
            },
            Event::Kprobe {
                name: Sym::from("try_to_unmap_one"),
            },
            Event::Kprobe {
                name: Sym::from("folio_referenced_one"),
            },
            Event::Kprobe {
                name: Sym::from("flush_tlb_func"),
            },
        ] {
            t.observe(&ev);
        }
        t
    }

    #[test]
    fn counts_from_a_6_1_capture() {
        let enabled: Vec<String> = [
            "tlb:tlb_flush",
            "irq_vectors:call_function_entry",
            "irq_vectors:call_function_single_entry",
            "vmscan:mm_vmscan_memcg_reclaim_end",
            "mmreplay:folio_referenced_one",
            "mmreplay:lru_gen_look_around",
            "mmreplay:try_to_unmap_one",
        ]
        .map(String::from)
        .to_vec();
        let o = tally().observed(Some(&enabled));
        assert_eq!(o.ipi_view, IpiView::Receipts);
        assert_eq!(o.remote_flush_requests, Some(2));
        assert_eq!(o.ipi_receipts, Some(3));
        assert_eq!(o.reclaimed, Some(32));
        assert_eq!(o.rmap_referenced_visits, Some(2));
        assert_eq!(o.rmap_unmap_visits, Some(1));
        // Enabled, never hit (MGLRU off): a real observed 0.
        assert_eq!(o.lookarounds, Some(0));
        // The ipi set was not probed: its receipts are unknown, not 0.
        assert_eq!(o.tlb_receipts, None);
        assert_eq!(o.table_sync_receipts, None);
        let mut with_ipi = enabled.clone();
        with_ipi.push("mmreplay:flush_tlb_func".into());
        with_ipi.push("mmreplay:tlb_remove_table_smp_sync".into());
        let o = tally().observed(Some(&with_ipi));
        assert_eq!(o.tlb_receipts, Some(1));
        assert_eq!(o.table_sync_receipts, Some(0));
    }

    #[test]
    fn never_observed_zero_for_what_was_not_recorded() {
        // A 6.18 capture: IPI sends, no receipts, no probes.
        let enabled: Vec<String> = ["tlb:tlb_flush", "ipi:ipi_send_cpu"]
            .map(String::from)
            .to_vec();
        let o = KernelTally::default().observed(Some(&enabled));
        assert_eq!(o.ipi_view, IpiView::Sends);
        assert_eq!(o.remote_flush_requests, Some(0));
        assert_eq!(o.ipi_receipts, None);
        assert_eq!(o.reclaimed, None);
        assert_eq!(o.rmap_referenced_visits, None);
        assert_eq!(o.lookarounds, None);
        // No sidecar: what the records show was recorded. The rmap set was probed (other
        // members hit), so its look-around probe is a real 0; vmscan events were recorded.
        let o = tally().observed(None);
        assert_eq!(o.ipi_receipts, Some(3));
        assert_eq!(o.lookarounds, Some(0));
        assert_eq!(o.rmap_unmap_visits, Some(1));
        assert_eq!(o.reclaimed, Some(32));
        assert_eq!(
            KernelTally::default().observed(None),
            ObservedCounts::default()
        );
        let j = o.json(Some(&Counters {
            evictions: 7,
            ..Counters::default()
        }));
        assert_eq!(j["lookarounds"]["observed"], 0);
        assert_eq!(
            KernelTally::default().observed(None).json(None)["lookarounds"]["observed"],
            serde_json::Value::Null
        );
        assert_eq!(j["reclaimed"]["predicted"], 7);
        assert_eq!(j["reclaimed"]["model_counter"], "evictions");
        assert_eq!(j["ipi_view"], "receipts");
        // Every model counter named exists.
        for (_, c) in PREDICTED_BY {
            assert!(Counters::NAMES.contains(c), "{c}");
        }
    }

    fn switch() -> Event {
        Event::SchedSwitch {
            prev_pid: 0,
            prev_state: Sym::from("R"),
            next_pid: 7,
            next_comm: Default::default(),
        }
    }

    #[test]
    fn receipts_split_by_what_their_cpu_did_next() {
        let receipt = Event::CallFunctionEntry {
            single: true,
            vector: 251,
        };
        let mut t = KernelTally::default();
        for (cpu, ev) in [
            // CPU 0: a wake-up (the switch follows the interrupt).
            (0, receipt.clone()),
            // Another CPU's events do not end CPU 0's handler.
            (1, tlb(Some(3), "local mm shootdown")),
            (0, switch()),
            // CPU 1: two receipts drained, then a shootdown: both MM.
            (1, receipt.clone()),
            (1, receipt.clone()),
            (1, tlb(Some(1), "remote shootdown")),
            // CPU 0: a receipt the capture ends on counts for MM.
            (0, receipt.clone()),
        ] {
            t.note_on_cpu(cpu, &ev);
            t.observe(&ev);
        }
        let o = t.observed(None);
        assert_eq!(o.ipi_receipts, Some(4));
        assert_eq!(o.ipi_receipts_sched, Some(1));
        assert_eq!(o.ipi_receipts_mm, Some(3));
        let j = o.json(Some(&Counters::default()));
        assert!(j["ipi_receipts_sched"]["predicted"].is_null());
        assert_eq!(j["ipi_receipts_mm"]["model_counter"], "ipi_targets");

        // Negative control: without scheduler events nothing can be attributed, so neither
        // part is claimed (not "0 scheduler receipts").
        let mut t = KernelTally::default();
        for ev in [receipt.clone(), tlb(Some(1), "remote shootdown")] {
            t.note_on_cpu(0, &ev);
            t.observe(&ev);
        }
        let o = t.observed(None);
        assert_eq!(o.ipi_receipts, Some(1));
        assert_eq!(o.ipi_receipts_sched, None);
        assert_eq!(o.ipi_receipts_mm, None);
        let enabled: Vec<String> = ["irq_vectors:call_function_single_entry"]
            .map(String::from)
            .to_vec();
        assert_eq!(t.observed(Some(&enabled)).ipi_receipts_mm, None);
        let mut filtered = t.observed(None);
        filtered.forget_receipts();
        assert_eq!(
            (filtered.ipi_receipts, filtered.ipi_receipts_mm),
            (None, None)
        );
    }
}
