//! `mmreplay-candidates`: policy variants that replay side by side with the reference model,
//! each with its equivalence contract, plus test-only negative controls. It must never change
//! model code outside the decision points of `mmreplay_reference::policy::Policy`.
//!
//! Candidates (mm-semantics C.1-C.3):
//! - [`lookaround`]: MGLRU look-around, `mm/vmscan.c:lru_gen_look_around`, commit
//!   018ee47f1489 ("mm: multi-gen LRU: exploit locality in rmap"); v6.1 and current
//!   (two-strike) promotion, chosen by `KernelProfile::base`.
//! - [`ad_preserve`]: A/D bits kept in migration entries, `mm/rmap.c:try_to_migrate_one` and
//!   `mm/migrate.c:remove_migration_pte`, commit 2e3468778dbe ("mm: remember young/dirty bit for
//!   page migrations").
//! - [`batched_unshare`]: one hugetlb unshare table-sync IPI per mmu_gather flush,
//!   `mm/hugetlb.c:huge_pmd_unshare` and `include/asm-generic/tlb.h`, commit 8ce720d5bd91, on
//!   top of the reference's 1013af4f585f ("mm/hugetlb: fix huge_pmd_unshare() vs GUP-fast
//!   race").
//! - `all`: every candidate together ([`compose`]): each decision point goes to the candidate
//!   that declares it, and the contract is the union of theirs.
//!
//! Negative controls ([`negative`], feature `negative-controls`) reintroduce known bugs: no
//! unshare sync (pre-1013af4f585f, I3), pages freed before the TLB flush (2014, I1), MADV_FREE
//! discard ignoring extra references (pre-6c8e2a256915, I5), dirty restored on a clean folio
//! and look-around promotion without clearing A (contract breaches).
//!
//! # Using it
//! ```
//! use mmreplay_candidates::registry;
//! use mmreplay_candidates::contract::{Mode, Observed};
//! use mmreplay_reference::profile::KernelProfile;
//!
//! let profile = KernelProfile::default();
//! let specs = registry::parse_list(&["reference", "lookaround:window=32"]).unwrap();
//! let mut engines = registry::build_all(&specs, &profile);
//! // for op in ops { for e in engines.iter_mut() { e.apply(&op); } }
//! let (r, c) = (&engines[0], &engines[1]);
//! let (rs, cs) = (r.snapshot(), c.snapshot());
//! let contract = specs[1].contract(Mode::FreeRunning, &profile);
//! let breaches = contract.check(
//!     Observed { counters: r.counters(), snapshot: &rs },
//!     Observed { counters: c.counters(), snapshot: &cs },
//! );
//! assert!(breaches.is_empty());
//! ```
//!
//! # Adding a policy (one module, one registry line)
//! 1. Write `src/my_policy.rs`: a type implementing `mmreplay_reference::policy::Policy` that
//!    overrides only the decision points it changes (the defaults are the reference), and a
//!    `pub fn contract(mode: Mode, ...) -> Contract` listing, as data, which counters and
//!    snapshot field classes may differ from the reference and in which direction (anything
//!    not listed must be equal); add candidate-internal `relations` where a rule needs two
//!    counters. Cite the kernel function and commit in the module doc.
//!    List the decision points it overrides in `Policy::hooks`.
//! 2. Add `pub mod my_policy;` below and one `candidate! { name, summary, params, new,
//!    contract }` line to `registry::POLICIES`. Nothing else: the CLI default list, `all` (and
//!    its contract, the union of the candidates'), `mmreplay policies`, the corpus snapshots
//!    and the property tests follow the registry.
//! 3. Add a scenario test with hand-computed numbers in `tests/`, and make sure the property
//!    test (`tests/contracts_prop.rs`) covers it (it iterates over the registry).

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod ad_preserve;
pub mod batched_unshare;
pub mod compose;
pub mod contract;
pub mod engine;
pub mod lookaround;
#[cfg(any(test, feature = "negative-controls"))]
pub mod negative;
pub mod registry;
pub mod verdict;
pub mod view;
pub mod view_diff;
pub mod young_preserve;

pub use contract::{Breach, Contract, Mode, Observed, Rule};
pub use engine::NamedEngine;
pub use registry::{parse, parse_list, BoxedEngine, PolicySpec, RegistryError};
pub use verdict::Verdict;
