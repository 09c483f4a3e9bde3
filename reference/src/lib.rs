//! `mmreplay-reference`: the executable reference model of Linux memory management.
//!
//! - [`Op`]: model operations (the replay engine lowers trace records into these).
//! - [`Model`]: state + semantics (mm-semantics.md A, B), generic over a [`Policy`] whose
//!   default methods are the reference behaviour at each decision point.
//! - [`Counters`], [`Snapshot`], [`Violation`]: what a run produces.
//! - [`Engine`]: object-safe wrapper to run models with different policies side by side.
//! - `testing` (feature `testing`): a proptest generator of valid op sequences.
//!
//! It must never do I/O or know about trace formats.

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod counters;
pub mod engine;
pub mod hash;
pub mod invariant;
pub mod model;
pub mod op;
pub mod policy;
pub mod profile;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;

pub use counters::Counters;
pub use engine::Engine;
pub use invariant::{Invariant, Violation};
pub use model::{Model, ModelError};
pub use op::{
    AccessKind, Cpu, FaultClass, FileId, FileKind, FileRef, FolioId, HoldId, MigrateTarget, MmId,
    Op, OpOutcome,
};
pub use policy::{
    AgeSource, Hook, LazyfreeCheck, MigAd, MigEntryCtx, MigRestoreCtx, Policy, Reference,
    UnshareCtx, YoungPteCtx,
};
pub use profile::{Base, CpumaskMode, KernelProfile};
pub use snapshot::Snapshot;
