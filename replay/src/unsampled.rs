//! Verdicts that depend on what the capture cannot show (issue 14, item 4).
//!
//! The model sees an access only as a fault (or, under `record --access`, as the first write
//! per page per sampling interval). A reclaim reference check (`folio_referenced`) that finds
//! a mapped page unreferenced decides to reclaim or demote it for want of an access the capture
//! may simply not hold: a page of a process older than the capture or outside the sampling,
//! touched since its fault (`reclaim_unref_unsampled`), or a sampled page read, or written
//! between two samples (`reclaim_unref_sampled`); of both, `reclaim_unref_preexisting` counts
//! those where a mapper is a process older than the capture. A candidate verdict that is not `same`, whose
//! runs made different reclaim decisions (scanned, kept, evicted, refaulted, A bits cleared, rmap
//! walks, look-arounds, generation promotions), and where such a decision rested on a missing
//! access in either run, is marked `depends_on_unsampled`, with the figures. A divergence the
//! reclaim decisions take no part in (an IPI count, a migrated PTE's A bit) is not marked.
//!
//! It must never change a verdict itself (the contract decides it); it only says how far the
//! verdict's evidence reaches.

use mmreplay_reference::counters::Counters;
use serde::Serialize;

/// The reclaim decisions of a pair of runs that rested on missing access information: the
/// larger of the reference's and the candidate's counts of each kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Unsampled {
    /// Reference checks that found a page unreferenced in an mm without access sampling.
    pub reclaim_unref_unsampled: u64,
    /// Reference checks that found a page unreferenced in an access-sampled mm (reads, and
    /// writes within one sampling interval, are not in the capture).
    pub reclaim_unref_sampled: u64,
    /// Of both, the checks where a mapper is a process older than the capture (first seen
    /// mid-capture or seeded from the process snapshot, or a fork of one): its accesses before
    /// the capture are unknown as well.
    pub reclaim_unref_preexisting: u64,
    /// Whether the two runs' reclaim decisions differ at all (see [`reclaim_decisions`]).
    #[serde(skip)]
    pub reclaim_differs: bool,
}

/// The counters of reclaim decisions an unseen access could change.
fn reclaim_decisions(c: &Counters) -> [u64; 10] {
    [
        c.scanned,
        c.kept,
        c.evictions,
        c.refaults,
        c.rmap_walks,
        c.a_bit_clears,
        c.lookaround_calls,
        c.gen_promote_lookaround,
        c.gen_promote_ptwalk,
        c.gen_promote_activate,
    ]
}

impl Unsampled {
    /// The figures of a reference run and a candidate run.
    pub fn of(reference: &Counters, candidate: &Counters) -> Self {
        Unsampled {
            reclaim_unref_unsampled: reference
                .reclaim_unref_unsampled
                .max(candidate.reclaim_unref_unsampled),
            reclaim_unref_sampled: reference
                .reclaim_unref_sampled
                .max(candidate.reclaim_unref_sampled),
            reclaim_unref_preexisting: reference
                .reclaim_unref_preexisting
                .max(candidate.reclaim_unref_preexisting),
            reclaim_differs: reclaim_decisions(reference) != reclaim_decisions(candidate),
        }
    }

    /// Whether a verdict labelled `label` (`Verdict::label`) depends on these decisions: it
    /// says the runs differ (`diverged_within_contract`, `contract_breach`), their reclaim
    /// decisions differ, and at least one reclaim decision rested on an access the capture may
    /// not show. `same` and
    /// `not_comparable` say nothing that missing accesses could overturn in this direction.
    pub fn marks(&self, label: &str) -> bool {
        matches!(label, "diverged_within_contract" | "contract_breach")
            && self.reclaim_differs
            && self.reclaim_unref_unsampled + self.reclaim_unref_sampled > 0
    }

    /// The text report's line under a marked verdict.
    pub fn text(&self) -> String {
        format!(
            "depends on accesses the capture does not show: {} reclaim checks found a page \
             unreferenced in a process without access sampling (older than the capture, or \
             not sampled), {} in a sampled one (reads and writes between samples unseen); {} \
             of them in a process older than the capture (its earlier accesses unknown)",
            self.reclaim_unref_unsampled,
            self.reclaim_unref_sampled,
            self.reclaim_unref_preexisting
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differing_verdicts_with_unseen_decisions_are_marked() {
        let mut r = Counters::default();
        let mut c = Counters::default();
        r.reclaim_unref_unsampled = 5;
        c.reclaim_unref_unsampled = 7;
        c.reclaim_unref_sampled = 2;
        r.reclaim_unref_preexisting = 3;
        // Same reclaim decisions: the divergence lies elsewhere (an IPI count), not marked.
        assert!(!Unsampled::of(&r, &c).marks("diverged_within_contract"));
        c.evictions = 1;
        let u = Unsampled::of(&r, &c);
        assert_eq!(u.reclaim_unref_unsampled, 7);
        assert_eq!(u.reclaim_unref_sampled, 2);
        assert!(u.marks("diverged_within_contract"));
        assert!(u.marks("contract_breach"));
        assert!(!u.marks("same"));
        assert!(!u.marks("not_comparable"));
        let none = Unsampled::of(&Counters::default(), &Counters::default());
        assert!(!none.marks("diverged_within_contract"));
        assert!(u.text().contains("7 reclaim checks"));
        assert_eq!(u.reclaim_unref_preexisting, 3);
        assert!(u
            .text()
            .contains("3 of them in a process older than the capture"));
    }
}
