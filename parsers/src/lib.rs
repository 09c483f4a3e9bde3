//! `mmreplay-parsers`: every capture format this project reads, turned into one stream of typed
//! [`record::Record`]s in time order.
//!
//! What it owns: format sniffing, tokenising, payload decoding, x86-64 PTE decoding, the per-CPU
//! time merge. What it must never do: know about the replay model, or panic on any input.

pub mod record;

pub use record::{Comm, Event, Record};
