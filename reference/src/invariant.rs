//! Invariants (mm-semantics D) and the violation record. The checks themselves live in the
//! model; this module only names them. It must never decide policy.

use serde::{Deserialize, Serialize};

/// An invariant of mm-semantics section D.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Invariant {
    /// No dirty data lost: no folio freed or cleaned while a stale (dirty) TLB entry maps it.
    I1,
    /// No pin on a possibly shared anon page: `pincount > 0 ⇒ PageAnonExclusive`.
    I2,
    /// No lockless walker reaches a PMD table that became exclusive (pt_share_count → 0) without
    /// a table sync before the unsharer's locks are released.
    I3,
    /// TLB staleness only inside a pending-flush window.
    I4,
    /// MADV_FREE discards only clean folios without extra references.
    I5,
    /// Accounting (mapcount, refcount, rss, nr_pmds) and migration consistency.
    I7,
}

impl Invariant {
    /// Stable name ("I1", ...).
    pub fn name(self) -> &'static str {
        match self {
            Invariant::I1 => "I1",
            Invariant::I2 => "I2",
            Invariant::I3 => "I3",
            Invariant::I4 => "I4",
            Invariant::I5 => "I5",
            Invariant::I7 => "I7",
        }
    }
}

/// One invariant violation: the op index (`step`, 0-based count of `apply` calls before this
/// one), the invariant, and a human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Index of the op during which it was detected (`u64::MAX` for the final full check is
    /// never used: the final check reports the number of ops applied).
    pub step: u64,
    /// Which invariant.
    pub invariant: Invariant,
    /// What was wrong.
    pub detail: String,
}
