//! The differ: compares each candidate run with the reference run under the candidate's
//! `Contract` (ARCHITECTURE.md, code map: `replay/`) and renders unified diffs of canonical snapshot texts.
//!
//! Per candidate a [`Comparison`]: its [`Verdict`] (`same`, `diverged_within_contract`,
//! `contract_breach`, `not_comparable`: `mmreplay_candidates::verdict`, the one spelling), the
//! first difference and the breaches. It must never decide what is allowed itself (the
//! contract does) and never print unbounded diffs (at most [`MAX_DIFF_LINES`] lines).

use std::fmt;

use mmreplay_candidates::contract::{Breach, Contract};
use mmreplay_candidates::verdict::Verdict;
use mmreplay_candidates::view::Val;
use mmreplay_candidates::view_diff::{DiffFact, ViewCompare};
use mmreplay_reference::snapshot::Snapshot;
use serde::Serialize;

use crate::engine::PolicyRun;

pub mod snapshot_text;

/// Most lines of a rendered diff.
pub const MAX_DIFF_LINES: usize = 60;

/// The first fact in which a candidate differs from the reference: after op `first_step`
/// (0-based; `None` when located only at the end, or only counters differ), `field` (a fact
/// such as `pte.young [mm1 0x1000]`, or `counter NAME`) with both values, and whether the
/// contract allows it. Shown after the verdict as `(first at op N: FIELD: reference R,
/// candidate C; allowed by the contract)` in the text report and `mmreplay report`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FirstDifference {
    pub first_step: Option<u64>,
    pub field: String,
    pub reference: String,
    pub candidate: String,
    pub allowed_by_contract: bool,
}

impl fmt::Display for FirstDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first_step {
            Some(st) => write!(f, "first at op {st}")?,
            None => f.write_str("at the end")?,
        }
        write!(
            f,
            ": {}: reference {}, candidate {}; {}",
            self.field,
            self.reference,
            self.candidate,
            if self.allowed_by_contract {
                "allowed by the contract"
            } else {
                "NOT allowed by the contract"
            }
        )
    }
}

/// How one candidate compares with the reference: its [`Verdict`] (the one spelling of
/// verdicts), what differs first, why the runs cannot be compared, and every breach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub candidate: String,
    pub verdict: Verdict,
    /// What differs first (`None` when nothing differs, or the runs are not comparable).
    pub first_difference: Option<FirstDifference>,
    /// Why the runs cannot be compared (verdict `not_comparable` only).
    pub not_comparable: Option<String>,
    /// Every contract breach on the final state and counters.
    pub breaches: Vec<Breach>,
}

impl Comparison {
    /// Judge a comparison: not comparable if there is a reason, else a breach if the contract
    /// lists any or the first difference is not allowed, else diverged if anything differs.
    fn judged(
        candidate: String,
        first_difference: Option<FirstDifference>,
        not_comparable: Option<String>,
        breaches: Vec<Breach>,
    ) -> Comparison {
        let verdict = match &first_difference {
            _ if not_comparable.is_some() => Verdict::NotComparable,
            _ if !breaches.is_empty() => Verdict::ContractBreach,
            None => Verdict::Same,
            Some(d) if !d.allowed_by_contract => Verdict::ContractBreach,
            Some(_) => Verdict::DivergedWithinContract,
        };
        Comparison {
            candidate,
            verdict,
            first_difference,
            not_comparable,
            breaches,
        }
    }

    /// What the report shows in parentheses after the verdict, if anything.
    pub fn detail(&self) -> Option<String> {
        match (&self.not_comparable, &self.first_difference) {
            (Some(reason), _) => Some(reason.clone()),
            (None, Some(d)) => Some(d.to_string()),
            (None, None) => None,
        }
    }
}

/// The first differing fact between two snapshots, as (field, reference, candidate), and
/// whether the contract allows every difference between them.
pub fn first_difference(
    contract: &Contract,
    a: &Snapshot,
    b: &Snapshot,
) -> Option<(String, String, String, bool)> {
    let vc = contract.compare_views(a, b);
    let allowed = vc.breaches.is_empty();
    shown(vc.first, allowed)
}

/// A first differing fact as (field, reference, candidate, `allowed`).
fn shown(first: Option<DiffFact>, allowed: bool) -> Option<(String, String, String, bool)> {
    let show = |v: Option<Val>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
    first.map(|f| {
        (
            format!("{} [{}]", f.class, f.key),
            show(f.reference),
            show(f.candidate),
            allowed,
        )
    })
}

/// A unified diff of two snapshots' canonical texts (at most [`MAX_DIFF_LINES`] lines, then
/// "... N more lines"), ending with how many lines differ. Only the parts that differ are
/// rendered ([`snapshot_text`]: the text of a whole-machine state is hundreds of MB); empty
/// when the snapshots are equal.
pub fn snapshot_diff(a: &Snapshot, b: &Snapshot, a_name: &str, b_name: &str) -> String {
    if a == b {
        return String::new();
    }
    let d = snapshot_text::diff(a, b, MAX_DIFF_LINES.saturating_sub(2));
    if d.removed + d.added == 0 {
        return String::new();
    }
    let mut s = format!("--- {a_name}\n+++ {b_name}\n");
    for l in &d.lines {
        s.push_str(l);
        s.push('\n');
    }
    if d.more > 0 {
        s.push_str(&format!("... {} more lines\n", d.more));
    }
    s.push_str(&format!(
        "{} lines differ: {} only in {a_name}, {} only in {b_name}\n",
        d.removed + d.added,
        d.removed,
        d.added
    ));
    s
}

/// The first checkpoint index at which two runs' state hashes differ (or the number of
/// common checkpoints if only the final state differs), `None` if nothing differs.
pub fn first_diverging_window(a: &PolicyRun, b: &PolicyRun) -> Option<usize> {
    let common = a.checkpoints.len().min(b.checkpoints.len());
    for i in 0..common {
        if a.checkpoints.get(i) != b.checkpoints.get(i) {
            return Some(i);
        }
    }
    (a.snapshot_hash != b.snapshot_hash || a.checkpoints.len() != b.checkpoints.len())
        .then_some(common)
}

/// Compare a candidate with the reference on final state and counters. `step` is the located
/// first diverging step with the snapshots right after it, when the caller re-ran the window.
pub fn compare(
    contract: Option<&Contract>,
    reference: &PolicyRun,
    candidate: &PolicyRun,
    step: Option<(u64, &Snapshot, &Snapshot)>,
) -> Comparison {
    let name = candidate.name.clone();
    let Some(contract) = contract else {
        let reason = format!("no contract known for {name:?}");
        return Comparison::judged(name, None, Some(reason), Vec::new());
    };
    if reference.model_errors != candidate.model_errors {
        let reason = format!(
            "the models rejected different ops (reference {:?}, candidate {:?})",
            reference.model_errors, candidate.model_errors
        );
        return Comparison::judged(name, None, Some(reason), Vec::new());
    }
    // The same breaches as `Contract::check`; the final states' differences are walked once
    // (`compare_views`: only the entities that differ get views) and reused for the first
    // difference below.
    let ViewCompare {
        breaches: view_breaches,
        first: final_first,
    } = contract.compare_views(&reference.snapshot, &candidate.snapshot);
    let final_allowed = view_breaches.is_empty();
    let mut breaches = contract.check_counters(&reference.counters, &candidate.counters);
    breaches.extend(contract.check_relations(&candidate.counters));
    breaches.extend(view_breaches);
    if let Some(l) = candidate
        .lockstep
        .as_ref()
        .filter(|l| l.victims_skipped > 0)
    {
        // Lockstep's premise (same victims) failed: judging by the lockstep contract would
        // blame the policy for the harness's failure to impose. The breaches stay listed.
        let reason = format!(
            "lockstep: {} of the reference's {} reclaim victims could not be evicted in the candidate (first at {})",
            l.victims_skipped,
            l.victims_imposed,
            l.first_skip.as_deref().unwrap_or("?")
        );
        return Comparison::judged(name, None, Some(reason), breaches);
    }
    let states_differ = reference.snapshot_hash != candidate.snapshot_hash
        || reference.checkpoints != candidate.checkpoints;
    let diff = if let Some((s, a, b)) = step {
        first_difference(contract, a, b).map(|(field, r, c, allowed)| FirstDifference {
            first_step: Some(s),
            field,
            reference: r,
            candidate: c,
            allowed_by_contract: allowed,
        })
    } else if states_differ {
        match shown(final_first, final_allowed) {
            Some((field, r, c, allowed)) => Some(FirstDifference {
                first_step: None,
                field,
                reference: r,
                candidate: c,
                allowed_by_contract: allowed,
            }),
            // Equal at the end but not at some checkpoint, and the window was not re-run.
            None => Some(FirstDifference {
                first_step: None,
                field: "state (intermediate checkpoint)".to_string(),
                reference: String::new(),
                candidate: String::new(),
                allowed_by_contract: true,
            }),
        }
    } else {
        None
    };
    let diff = match diff {
        None if reference.counters != candidate.counters => {
            // Name the first counter the contract forbids to differ, else the first that differs.
            let counter_breaches =
                contract.check_counters(&reference.counters, &candidate.counters);
            match counter_breaches.first() {
                Some(b) => Some(FirstDifference {
                    first_step: None,
                    field: format!("counter {}", b.field),
                    reference: b.reference.clone(),
                    candidate: b.candidate.clone(),
                    allowed_by_contract: false,
                }),
                None => {
                    let (n, r, c) = reference
                        .counters
                        .pairs()
                        .into_iter()
                        .zip(candidate.counters.pairs())
                        .find(|((_, r), (_, c))| r != c)
                        .map(|((n, r), (_, c))| (n, r, c))
                        .unwrap_or(("counters", 0, 0));
                    Some(FirstDifference {
                        first_step: None,
                        field: format!("counter {n}"),
                        reference: r.to_string(),
                        candidate: c.to_string(),
                        allowed_by_contract: true,
                    })
                }
            }
        }
        d => d,
    };
    Comparison::judged(name, diff, None, breaches)
}

/// Unified diff (context 3) of two canonical texts: the first differing region only, at most
/// [`MAX_DIFF_LINES`] lines, with a "... N more lines" note. Empty if equal.
pub fn unified_diff(a: &str, b: &str, a_name: &str, b_name: &str) -> String {
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_secs(5))
        .diff_lines(a, b);
    let mut ud = diff.unified_diff();
    ud.context_radius(3).header(a_name, b_name);
    let mut out = Vec::new();
    let mut total = 0usize;
    for (i, hunk) in ud.iter_hunks().enumerate() {
        let text = hunk.to_string();
        if i == 0 {
            out.push(format!("--- {a_name}"));
            out.push(format!("+++ {b_name}"));
            out.extend(text.lines().map(str::to_string));
        } else {
            total += text.lines().count();
        }
    }
    if out.is_empty() {
        return String::new();
    }
    let extra = out.len().saturating_sub(MAX_DIFF_LINES);
    out.truncate(MAX_DIFF_LINES);
    let more = extra + total;
    let mut s = out.join("\n");
    s.push('\n');
    if more > 0 {
        s.push_str(&format!("... {more} more lines\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmreplay_candidates::contract::{rules, Mode, Rule};
    use mmreplay_reference::counters::Counters;
    use std::collections::BTreeMap;

    fn run(name: &str, c: Counters) -> PolicyRun {
        let snapshot = Snapshot {
            mms: vec![],
            folios: vec![],
            swap: vec![],
            cpus: vec![],
            lru_nr_gens: [0, 0],
        };
        PolicyRun {
            name: name.into(),
            counters: c,
            violations: vec![],
            violation_count: 0,
            model_errors: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            snapshot_hash: snapshot.state_hash(),
            snapshot,
            checkpoints: vec![1, 2, 3],
            lockstep: None,
        }
    }

    fn contract() -> Contract {
        Contract {
            candidate: "c".into(),
            mode: Mode::Lockstep,
            counters: rules(&[("rmap_walks", Rule::LessOrEqual)]),
            fields: vec![],
            relations: vec![],
        }
    }

    #[test]
    fn verdicts_follow_the_contract() {
        let k = contract();
        let base = Counters {
            rmap_walks: 10,
            faults: 5,
            ..Counters::default()
        };
        let r = run("reference", base.clone());
        assert_eq!(
            compare(Some(&k), &r, &run("c", base.clone()), None)
                .verdict
                .as_str(),
            "same"
        );
        let fewer = Counters {
            rmap_walks: 7,
            ..base.clone()
        };
        let v = compare(Some(&k), &r, &run("c", fewer), None);
        assert_eq!(v.verdict.as_str(), "diverged_within_contract");
        assert!(
            matches!(&v.first_difference, Some(FirstDifference { field, allowed_by_contract: true, .. }) if field == "counter rmap_walks")
        );
        let more = Counters {
            rmap_walks: 11,
            faults: 6,
            ..base.clone()
        };
        let v = compare(Some(&k), &r, &run("c", more), None);
        assert_eq!(v.verdict.as_str(), "contract_breach");
        assert!(
            matches!(&v.first_difference, Some(FirstDifference { field, allowed_by_contract: false, .. }) if field == "counter faults"),
            "{v:?}"
        );
        assert_eq!(v.breaches.len(), 2);
        let mut odd = run("c", base.clone());
        odd.model_errors.insert("migrate:not_mapped".into(), 1);
        assert_eq!(
            compare(Some(&k), &r, &odd, None).verdict.as_str(),
            "not_comparable"
        );
        assert_eq!(
            compare(None, &r, &run("c", base), None).verdict.as_str(),
            "not_comparable"
        );
    }

    #[test]
    fn skipped_imposed_victims_make_lockstep_not_comparable() {
        let k = contract();
        let r = run("reference", Counters::default());
        let mut c = run("c", Counters::default());
        c.lockstep = Some(crate::engine::LockstepCounts {
            reclaim_ops: 3,
            victims_imposed: 10,
            ..Default::default()
        });
        assert_eq!(compare(Some(&k), &r, &c, None).verdict.as_str(), "same");
        if let Some(l) = c.lockstep.as_mut() {
            l.victims_skipped = 2;
            l.first_skip = Some("op 7: folio 4: not on an LRU".into());
        }
        let v = compare(Some(&k), &r, &c, None);
        assert_eq!(v.verdict.as_str(), "not_comparable");
        assert!(
            matches!(&v.not_comparable, Some(reason) if reason.contains("2 of the reference's 10") && reason.contains("op 7: folio 4")),
            "{v:?}"
        );
    }

    #[test]
    fn diff_is_trimmed_with_note() {
        let a: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let b: String = (0..200)
            .map(|i| {
                if i % 2 == 0 {
                    format!("line {i}\n")
                } else {
                    format!("LINE {i}\n")
                }
            })
            .collect();
        let d = unified_diff(&a, &b, "reference", "candidate");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), MAX_DIFF_LINES + 1, "{d}");
        assert!(
            lines
                .last()
                .is_some_and(|l| l.starts_with("... ") && l.ends_with(" more lines")),
            "{d}"
        );
        assert!(d.starts_with("--- reference\n+++ candidate\n@@"));
    }

    #[test]
    fn equal_texts_give_empty_diff() {
        assert_eq!(unified_diff("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn small_diff_has_context_three() {
        let a: String = (0..20).map(|i| format!("l{i}\n")).collect();
        let b = a.replace("l10\n", "changed\n");
        let d = unified_diff(&a, &b, "a", "b");
        assert!(d.contains("-l10\n+changed\n"), "{d}");
        assert!(d.contains(" l7\n") && !d.contains(" l6\n"), "{d}");
        assert!(!d.contains("more lines"));
    }

    #[test]
    fn verdicts_serialize_as_they_display() {
        for v in Verdict::ALL {
            assert_eq!(
                serde_json::to_value(v).ok(),
                Some(serde_json::Value::String(v.to_string()))
            );
        }
    }
}
