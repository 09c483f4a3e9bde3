//! `mmreplay-parsers`: every capture format this project reads, turned into one stream of typed
//! [`record::Record`]s in time order.
//!
//! What it owns: format sniffing, tokenising, payload decoding, x86-64 PTE decoding, the per-CPU
//! time merge. What it must never do: know about the replay model, or panic on any input.

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod atomic;
pub mod binary;
pub mod error;
pub mod fields;
pub mod input;
pub mod intern;
pub mod kernels;
pub mod merge;
pub mod mmr;
pub mod num;
pub mod pte;
pub mod reclaim_flags;
pub mod record;
pub mod source;
pub mod stats;
pub mod text;

pub use error::ParseError;
pub use input::{open, open_reader};
pub use record::{Comm, Event, Record};
pub use source::{Diagnostics, Format, Options, RecordSource};
pub use stats::{Filter, Stats};
