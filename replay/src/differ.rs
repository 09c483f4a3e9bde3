//! The differ: compares each candidate run with the reference run under the candidate's
//! `Contract` (ARCHITECTURE.md, code map: `replay/`) and renders unified diffs of canonical snapshot texts.
//!
//! Outcome per candidate: `Same`, `Diverged { first_step, field, .. }` or
//! `NotComparable { reason }`; the verdict string is one of `same`, `diverged_within_contract`,
//! `contract_breach`, `not_comparable`. It must never decide what is allowed itself (the
//! contract does) and never print unbounded diffs (at most [`MAX_DIFF_LINES`] lines).

use mmreplay_candidates::contract::{Breach, Contract};
use mmreplay_candidates::view::{FieldView, Val};
use mmreplay_reference::snapshot::Snapshot;
use serde::Serialize;

use crate::engine::PolicyRun;

/// Most lines of a rendered diff.
pub const MAX_DIFF_LINES: usize = 60;

/// How a candidate compares with the reference. In JSON: `{"kind": "same" | "diverged" |
/// "not_comparable", ...fields}`, snake_case like every other key and verdict spelling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Same counters and the same state at every checkpoint and at the end.
    Same,
    /// Something differs. `first_step` is the 0-based op index after which the states first
    /// differ (`None` when only counters differ); `field` names the first differing fact
    /// (`pte.young [mm1 0x1000]`) or counter.
    Diverged {
        first_step: Option<u64>,
        field: String,
        reference: String,
        candidate: String,
        allowed_by_contract: bool,
    },
    /// The runs cannot be compared.
    NotComparable { reason: String },
}

/// Verdict for one candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub candidate: String,
    pub outcome: Outcome,
    /// Every contract breach on the final state and counters.
    pub breaches: Vec<Breach>,
}

impl Verdict {
    /// The JSON verdict string.
    pub fn label(&self) -> &'static str {
        match &self.outcome {
            Outcome::NotComparable { .. } => "not_comparable",
            _ if !self.breaches.is_empty() => "contract_breach",
            Outcome::Same => "same",
            Outcome::Diverged {
                allowed_by_contract: false,
                ..
            } => "contract_breach",
            Outcome::Diverged { .. } => "diverged_within_contract",
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
    let rv = FieldView::of(a);
    let cv = FieldView::of(b);
    let allowed = contract.check_views(&rv, &cv).is_empty();
    first_difference_in(&rv, &cv, allowed)
}

/// [`first_difference`] over views already built (`allowed`: the contract's view check found
/// nothing).
fn first_difference_in(
    rv: &FieldView,
    cv: &FieldView,
    allowed: bool,
) -> Option<(String, String, String, bool)> {
    let show = |v: Option<&Val>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
    // Merge-walk for the first key whose values differ.
    let mut keys: Vec<&(&'static str, String)> = Vec::new();
    for (k, v) in &rv.facts {
        if cv.facts.get(k) != Some(v) {
            keys.push(k);
            break;
        }
    }
    for (k, v) in &cv.facts {
        if rv.facts.get(k) != Some(v) {
            keys.push(k);
            break;
        }
    }
    let k = keys.into_iter().min()?;
    Some((
        format!("{} [{}]", k.0, k.1),
        show(rv.facts.get(k)),
        show(cv.facts.get(k)),
        allowed,
    ))
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
) -> Verdict {
    let name = candidate.name.clone();
    let Some(contract) = contract else {
        return Verdict {
            candidate: name.clone(),
            outcome: Outcome::NotComparable {
                reason: format!("no contract known for {name:?}"),
            },
            breaches: Vec::new(),
        };
    };
    if reference.model_errors != candidate.model_errors {
        return Verdict {
            candidate: name,
            outcome: Outcome::NotComparable {
                reason: format!(
                    "the models rejected different ops (reference {:?}, candidate {:?})",
                    reference.model_errors, candidate.model_errors
                ),
            },
            breaches: Vec::new(),
        };
    }
    // The same breaches as `Contract::check`, with the final views built once and reused for
    // the first difference below.
    let rv = FieldView::of(&reference.snapshot);
    let cv = FieldView::of(&candidate.snapshot);
    let view_breaches = contract.check_views(&rv, &cv);
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
        return Verdict {
            candidate: name,
            outcome: Outcome::NotComparable {
                reason: format!(
                    "lockstep: {} of the reference's {} reclaim victims could not be evicted in the candidate (first at {})",
                    l.victims_skipped,
                    l.victims_imposed,
                    l.first_skip.as_deref().unwrap_or("?")
                ),
            },
            breaches,
        };
    }
    let states_differ = reference.snapshot_hash != candidate.snapshot_hash
        || reference.checkpoints != candidate.checkpoints;
    let outcome = if let Some((s, a, b)) = step {
        match first_difference(contract, a, b) {
            Some((field, r, c, allowed)) => Outcome::Diverged {
                first_step: Some(s),
                field,
                reference: r,
                candidate: c,
                allowed_by_contract: allowed,
            },
            None => Outcome::Same,
        }
    } else if states_differ {
        match first_difference_in(&rv, &cv, final_allowed) {
            Some((field, r, c, allowed)) => Outcome::Diverged {
                first_step: None,
                field,
                reference: r,
                candidate: c,
                allowed_by_contract: allowed,
            },
            // Equal at the end but not at some checkpoint, and the window was not re-run.
            None => Outcome::Diverged {
                first_step: None,
                field: "state (intermediate checkpoint)".to_string(),
                reference: String::new(),
                candidate: String::new(),
                allowed_by_contract: true,
            },
        }
    } else {
        Outcome::Same
    };
    let outcome = match outcome {
        Outcome::Same if reference.counters != candidate.counters => {
            // Name the first counter the contract forbids to differ, else the first that differs.
            let counter_breaches =
                contract.check_counters(&reference.counters, &candidate.counters);
            match counter_breaches.first() {
                Some(b) => Outcome::Diverged {
                    first_step: None,
                    field: format!("counter {}", b.field),
                    reference: b.reference.clone(),
                    candidate: b.candidate.clone(),
                    allowed_by_contract: false,
                },
                None => {
                    let (n, r, c) = reference
                        .counters
                        .pairs()
                        .into_iter()
                        .zip(candidate.counters.pairs())
                        .find(|((_, r), (_, c))| r != c)
                        .map(|((n, r), (_, c))| (n, r, c))
                        .unwrap_or(("counters", 0, 0));
                    Outcome::Diverged {
                        first_step: None,
                        field: format!("counter {n}"),
                        reference: r.to_string(),
                        candidate: c.to_string(),
                        allowed_by_contract: true,
                    }
                }
            }
        }
        o => o,
    };
    Verdict {
        candidate: name,
        outcome,
        breaches,
    }
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
            compare(Some(&k), &r, &run("c", base.clone()), None).label(),
            "same"
        );
        let fewer = Counters {
            rmap_walks: 7,
            ..base.clone()
        };
        let v = compare(Some(&k), &r, &run("c", fewer), None);
        assert_eq!(v.label(), "diverged_within_contract");
        assert!(
            matches!(&v.outcome, Outcome::Diverged { field, allowed_by_contract: true, .. } if field == "counter rmap_walks")
        );
        let more = Counters {
            rmap_walks: 11,
            faults: 6,
            ..base.clone()
        };
        let v = compare(Some(&k), &r, &run("c", more), None);
        assert_eq!(v.label(), "contract_breach");
        assert!(
            matches!(&v.outcome, Outcome::Diverged { field, allowed_by_contract: false, .. } if field == "counter faults"),
            "{v:?}"
        );
        assert_eq!(v.breaches.len(), 2);
        let mut odd = run("c", base.clone());
        odd.model_errors.insert("migrate:not_mapped".into(), 1);
        assert_eq!(compare(Some(&k), &r, &odd, None).label(), "not_comparable");
        assert_eq!(
            compare(None, &r, &run("c", base), None).label(),
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
        assert_eq!(compare(Some(&k), &r, &c, None).label(), "same");
        if let Some(l) = c.lockstep.as_mut() {
            l.victims_skipped = 2;
            l.first_skip = Some("op 7: folio 4: not on an LRU".into());
        }
        let v = compare(Some(&k), &r, &c, None);
        assert_eq!(v.label(), "not_comparable");
        assert!(
            matches!(&v.outcome, Outcome::NotComparable { reason } if reason.contains("2 of the reference's 10") && reason.contains("op 7: folio 4")),
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
}
