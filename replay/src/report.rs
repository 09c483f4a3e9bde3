//! Reports of a replay: the text table (policies as columns), verdicts, the fidelity line, and
//! the `--json` self-report whose keys are fixed by ARCHITECTURE.md, code map: `replay/` (`trace`, `ops`,
//! `unplaced`, `policies`, `verdicts`, `fidelity`).
//!
//! It must never iterate a hash map (output is byte-identical for the same input and options)
//! and never rename a JSON key: scripts depend on them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use crate::differ::Comparison;
use crate::engine::{PolicyRun, TraceRun};

/// Violations listed per policy in JSON and text (all are counted).
pub const MAX_LISTED_VIOLATIONS: usize = 100;

/// Everything a report shows about one trace.
pub struct Report<'a> {
    pub trace: &'a str,
    pub format: &'a str,
    pub mode: &'a str,
    pub nr_cpus: u32,
    pub run: &'a TraceRun,
    pub verdicts: &'a [Comparison],
    /// Per diverged candidate: the trimmed unified diff of the snapshots at the first
    /// diverging step (or at the end).
    pub diffs: &'a BTreeMap<String, String>,
}

/// The fidelity numbers: what the reference model predicts vs what the capture logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fidelity {
    pub remote_observed: u64,
    pub remote_predicted: u64,
    pub ipis_observed: u64,
    pub ipis_predicted: u64,
}

impl Report<'_> {
    fn reference(&self) -> Option<&PolicyRun> {
        self.run.policies.first()
    }

    /// The reclaim decisions of the reference and `candidate` that rested on accesses the
    /// capture may not show.
    fn unsampled(&self, candidate: &str) -> crate::unsampled::Unsampled {
        let cand = self.run.policies.iter().find(|p| p.name == candidate);
        match (self.reference(), cand) {
            (Some(r), Some(c)) => crate::unsampled::Unsampled::of(&r.counters, &c.counters),
            _ => crate::unsampled::Unsampled::default(),
        }
    }

    /// Fidelity from the first policy (the reference).
    pub fn fidelity(&self) -> Fidelity {
        let o = &self.run.lower.observed;
        let (rp, ip) = self.reference().map_or((0, 0), |r| {
            (r.counters.tlb_flush_remote, r.counters.ipi_sends())
        });
        Fidelity {
            remote_observed: o.remote_tlb_flushes,
            remote_predicted: rp,
            ipis_observed: o.ipis,
            ipis_predicted: ip,
        }
    }

    /// `{"observed", "predicted"}` of one vmscan figure: the capture's event sums vs the
    /// reference model's counter.
    fn vmscan_pair(
        &self,
        obs: impl Fn(&crate::vmscan_obs::VmscanObserved) -> u64,
        pred: impl Fn(&mmreplay_reference::counters::Counters) -> u64,
    ) -> Value {
        let p = self.reference().map_or(0, |r| pred(&r.counters));
        json!({ "observed": obs(&self.run.lower.observed.vmscan), "predicted": p })
    }

    /// The `--json` object.
    pub fn json(&self) -> Value {
        let mut policies = serde_json::Map::new();
        for p in &self.run.policies {
            let listed: Vec<_> = p.violations.iter().take(MAX_LISTED_VIOLATIONS).collect();
            // The full spec (every parameter, defaults spelled out) says exactly what ran.
            let spec = mmreplay_candidates::registry::parse(&p.name)
                .map(|s| s.full_name())
                .unwrap_or_else(|_| p.name.clone());
            let mut entry = json!({
                "spec": spec,
                "counters": p.counters,
                "violations": listed,
                "violation_count": p.violation_count,
                "snapshot_hash": format!("{:016x}", p.snapshot_hash),
                "model_errors": p.model_errors,
            });
            // Lockstep runs only (free-running reports keep their exact shape).
            if let (Some(l), Some(m)) = (&p.lockstep, entry.as_object_mut()) {
                m.insert("lockstep".into(), json!(l));
            }
            policies.insert(p.name.clone(), entry);
        }
        let mut verdicts = serde_json::Map::new();
        let mut details = serde_json::Map::new();
        for v in self.verdicts {
            verdicts.insert(v.candidate.clone(), json!(v.verdict));
            details.insert(v.candidate.clone(), json!({ "verdict": v.verdict, "first_difference": v.first_difference, "not_comparable": v.not_comparable, "breaches": v.breaches.iter().take(MAX_LISTED_VIOLATIONS).map(|b| b.to_string()).collect::<Vec<_>>(), "breach_count": v.breaches.len() }));
            // Issue 14 item 4: how far the verdict's evidence reaches (`unsampled.rs`).
            if let Some(d) = details.get_mut(&v.candidate).and_then(Value::as_object_mut) {
                let u = self.unsampled(&v.candidate);
                d.insert(
                    "depends_on_unsampled".into(),
                    json!(u.marks(v.verdict.as_str())),
                );
                d.insert("unsampled".into(), json!(u));
            }
        }
        let f = self.fidelity();
        let l = &self.run.lower;
        json!({
            "trace": self.trace,
            "format": self.format,
            "mode": self.mode,
            "nr_cpus": self.nr_cpus,
            "records": l.records,
            "ops": l.ops,
            "unplaced": l.unplaced,
            "inferred_vmas": l.inferred_vmas,
            "mms_first_seen": l.mms_first_seen,
            "filtered_out": l.filtered_out,
            "approximations": l.approximations,
            "policies": policies,
            "verdicts": verdicts,
            "verdict_details": details,
            "fidelity": {
                "remote_tlb_flushes": { "observed": f.remote_observed, "predicted": f.remote_predicted },
                // A kernel that logs only IPI receipts (6.1) cannot show sends: null, not 0.
                "ipis": { "observed": (!crate::kernel_counts::receipts_only(l)).then_some(f.ipis_observed), "predicted": f.ipis_predicted },
                "kernel_counts": crate::kernel_counts::report_json(l, self.reference().map(|r| &r.counters)),
                "vmscan_scanned": self.vmscan_pair(|o| o.scanned, |c| c.vmscan_scanned),
                "vmscan_reclaimed": self.vmscan_pair(|o| o.reclaimed, |c| c.vmscan_reclaimed),
                "vmscan_ref_keep": self.vmscan_pair(|o| o.ref_keep, |c| c.vmscan_ref_keep),
                "vmscan_activated": self.vmscan_pair(|o| o.activated, |c| c.vmscan_activated),
            },
        })
    }

    /// The text report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let l = &self.run.lower;
        let _ = writeln!(
            s,
            "trace: {} ({}, {} CPUs, mode {})",
            self.trace, self.format, self.nr_cpus, self.mode
        );
        let _ = writeln!(
            s,
            "lowering: {} records -> {} ops; {} inferred VMAs; {} mms first seen mid-capture; {} records filtered out",
            l.records, l.ops, l.inferred_vmas, l.mms_first_seen, l.filtered_out
        );
        if l.unplaced.is_empty() {
            let _ = writeln!(s, "unplaced: none");
        } else {
            let u: Vec<String> = l.unplaced.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "unplaced: {}", u.join(", "));
        }
        if !l.approximations.is_empty() {
            let u: Vec<String> = l
                .approximations
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "approximations: {}", u.join(", "));
        }
        s.push('\n');
        type Row = (&'static str, fn(&PolicyRun) -> u64);
        let rows: &[Row] = &[
            ("faults", |p| p.counters.faults),
            ("TLB flushes local", |p| p.counters.tlb_flush_local),
            ("TLB flushes remote", |p| p.counters.tlb_flush_remote),
            ("IPI sends shootdown", |p| p.counters.ipi_sends_shootdown),
            ("IPI sends table sync", |p| p.counters.ipi_sends_table_sync),
            ("IPI targets shootdown", |p| {
                p.counters.ipi_targets_shootdown
            }),
            ("IPI targets table sync", |p| {
                p.counters.ipi_targets_table_sync
            }),
            ("rmap walks", |p| p.counters.rmap_walks),
            ("A-bit clears", |p| p.counters.a_bit_clears),
            ("hardware A sets", |p| p.counters.hw_a_sets),
            ("hardware D sets", |p| p.counters.hw_d_sets),
            ("hw A sets after migration", |p| {
                p.counters.hw_a_sets_after_mig
            }),
            ("migrations", |p| p.counters.migrations),
            ("migration restored young", |p| {
                p.counters.mig_restored_young
            }),
            ("migration restored dirty", |p| {
                p.counters.mig_restored_dirty
            }),
            ("evictions", |p| p.counters.evictions),
            ("refaults", |p| p.counters.refaults),
            ("PMD table shares", |p| p.counters.pmd_shares),
            ("PMD table unshares", |p| p.counters.pmd_unshares),
            ("invariant violations", |p| p.violation_count),
            ("ops rejected by model", |p| p.model_errors.values().sum()),
        ];
        let width = 26usize;
        let mut header = format!("{:width$}", "");
        for p in &self.run.policies {
            let _ = write!(header, " {:>16}", p.name);
        }
        let _ = writeln!(s, "{}", header.trim_end());
        for (label, f) in rows {
            let mut line = format!("{label:width$}");
            for p in &self.run.policies {
                let _ = write!(line, " {:>16}", f(p));
            }
            let _ = writeln!(s, "{line}");
        }
        for p in &self.run.policies {
            if !p.model_errors.is_empty() {
                let u: Vec<String> = p
                    .model_errors
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let _ = writeln!(s, "{}: ops rejected: {}", p.name, u.join(", "));
            }
            for v in p.violations.iter().take(5) {
                let _ = writeln!(
                    s,
                    "{}: violation {} at step {}: {}",
                    p.name,
                    v.invariant.name(),
                    v.step,
                    v.detail
                );
            }
            if p.violation_count > 5 {
                let _ = writeln!(
                    s,
                    "{}: ... {} more violations",
                    p.name,
                    p.violation_count - 5
                );
            }
        }
        s.push('\n');
        let imposed_any = self
            .run
            .policies
            .iter()
            .any(|p| p.lockstep.as_ref().is_some_and(|l| l.reclaim_ops > 0));
        if self.mode == "lockstep" && !imposed_any && self.run.policies.len() > 1 {
            // Evictions without an imposed round are MADV_PAGEOUT's: its victims come from the
            // trace in both modes, so there is nothing to impose (not "no reclaim").
            match self.reference().map_or(0, |r| r.counters.evictions) {
                0 => s.push_str("lockstep: no reclaim op in this capture, nothing to impose\n"),
                n => {
                    let _ = writeln!(s, "lockstep: no reclaim round to impose (the reference ran no reclaim op); its {n} evictions are MADV_PAGEOUT victims, which the trace names for every policy");
                }
            }
        }
        for p in &self.run.policies {
            if let Some(l) = p.lockstep.as_ref().filter(|l| l.reclaim_ops > 0) {
                let _ = write!(
                    s,
                    "lockstep {}: reference reclaim imposed on {} ops: {} victims imposed, {} skipped, {} extra",
                    p.name, l.reclaim_ops, l.victims_imposed, l.victims_skipped, l.victims_extra
                );
                if let Some(w) = &l.first_skip {
                    let _ = write!(s, " (first at {w})");
                }
                s.push('\n');
            }
        }
        if self.verdicts.is_empty() {
            let _ = writeln!(s, "verdicts: no candidates");
        }
        for v in self.verdicts {
            let _ = write!(s, "verdict {}: {}", v.candidate, v.verdict);
            if let Some(d) = v.detail() {
                let _ = write!(s, " ({d})");
            }
            s.push('\n');
            let u = self.unsampled(&v.candidate);
            if u.marks(v.verdict.as_str()) {
                let _ = writeln!(s, "  {}", u.text());
            }
            for b in v.breaches.iter().take(10) {
                let _ = writeln!(s, "  breach: {b}");
            }
            if v.breaches.len() > 10 {
                let _ = writeln!(s, "  ... {} more breaches", v.breaches.len() - 10);
            }
            if let Some(d) = self.diffs.get(&v.candidate) {
                for line in d.lines() {
                    let _ = writeln!(s, "  {line}");
                }
            }
        }
        let f = self.fidelity();
        let ipis_observed = if crate::kernel_counts::receipts_only(&self.run.lower) {
            "not logged by this kernel (receipts only)".to_string()
        } else {
            format!(
                "{} ({})",
                f.ipis_observed,
                ratio(f.ipis_predicted, f.ipis_observed)
            )
        };
        let _ = writeln!(
            s,
            "\nfidelity (reference model vs capture): remote TLB flushes predicted {} / observed {} ({}); TLB+table-sync IPI sends predicted {} / observed {}",
            f.remote_predicted,
            f.remote_observed,
            ratio(f.remote_predicted, f.remote_observed),
            f.ipis_predicted,
            ipis_observed
        );
        let _ = writeln!(
            s,
            "{}",
            crate::kernel_counts::report_text(l, self.reference().map(|r| &r.counters))
        );
        if self.run.lower.filtered_out == 0 && self.run.lower.mms_first_seen > 0 {
            let _ = writeln!(
                s,
                "  (every process in the capture: {} address spaces were first seen mid-capture, their mm_cpumask history unknown to the model; --workload or --pid scopes the replay to one process tree)",
                self.run.lower.mms_first_seen
            );
        }
        s
    }
}

/// `predicted / observed` as a percentage of the observed count, or `n/a`.
pub fn ratio(pred: u64, obs: u64) -> String {
    if obs == 0 {
        if pred == 0 {
            "both 0".to_string()
        } else {
            "n/a: none observed".to_string()
        }
    } else {
        format!("{:.0}%", pred as f64 * 100.0 / obs as f64)
    }
}
