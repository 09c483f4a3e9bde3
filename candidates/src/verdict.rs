//! The one verdict of a candidate against the reference under its contract, with one spelling
//! everywhere it is shown: the replay's text report and JSON (`verdicts`,
//! `verdict_details.*.verdict`), the corpus snapshots, `matrix` cells, `minimize
//! --property verdict=` and the litmus language's expectations all print and parse
//! [`Verdict`] through its `Display` / `FromStr` / serde form (`same`,
//! `diverged_within_contract`, `contract_breach`, `not_comparable`).
//!
//! It must never decide a verdict itself: the differ (`mmreplay::differ`) does, from the
//! contract's breaches and the first difference.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A candidate's verdict against the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same counters and the same state at every checkpoint and at the end.
    Same,
    /// Something differs, and the candidate's contract allows every difference.
    DivergedWithinContract,
    /// The contract is breached (a counter, a snapshot field class or a relation).
    ContractBreach,
    /// The runs cannot be compared (no contract known, model errors differ, a lockstep victim
    /// the candidate could not free).
    NotComparable,
}

impl Verdict {
    /// Every verdict, in this order (the JSON schema's `enum`).
    pub const ALL: [Verdict; 4] = [
        Verdict::Same,
        Verdict::DivergedWithinContract,
        Verdict::ContractBreach,
        Verdict::NotComparable,
    ];

    /// The one spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::DivergedWithinContract => "diverged_within_contract",
            Verdict::ContractBreach => "contract_breach",
            Verdict::NotComparable => "not_comparable",
        }
    }

    /// Whether the candidate stays within its contract (exit status 0 of `replay`).
    pub fn within_contract(self) -> bool {
        matches!(self, Verdict::Same | Verdict::DivergedWithinContract)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown verdict `{0}` (expected same, diverged_within_contract, contract_breach or not_comparable)")]
pub struct UnknownVerdict(pub String);

impl FromStr for Verdict {
    type Err = UnknownVerdict;

    fn from_str(s: &str) -> Result<Verdict, UnknownVerdict> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVerdict(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_are_one_spelling() {
        for v in Verdict::ALL {
            let shown = v.to_string();
            assert_eq!(shown.parse::<Verdict>(), Ok(v));
        }
        assert!("within-contract".parse::<Verdict>().is_err());
        assert!(Verdict::DivergedWithinContract.within_contract());
        assert!(!Verdict::ContractBreach.within_contract());
        assert!(!Verdict::NotComparable.within_contract());
    }
}
