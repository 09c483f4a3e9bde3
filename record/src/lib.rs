//! `mmreplay-record`: `mmreplay record`'s machinery. It captures a workload's MM events from
//! tracefs (an instance of its own, its ring buffers streamed to disk while the workload runs)
//! into a trace.dat v7, zstd text or a raw page directory, plus the provenance sidecar
//! (`.meta.json`), the process snapshot (`.procs.zst`) and the `--access` log. The `mmreplay`
//! binary only parses arguments and prints ([`capture::run`] does the rest).
//!
//! It must never parse event payloads or trace formats (that is `mmreplay-parsers`, whose
//! header and lost-event parsers it reuses), contain model semantics, print (it hands its notes
//! to the caller), or leave tracefs changed.

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod capture;
pub mod dat;
pub mod instance;
pub mod procsnap;
pub mod signals;
pub mod stream;
pub mod sysinfo;
pub mod tracedat_write;
pub mod tracefs;

pub use mmreplay_parsers::atomic;
