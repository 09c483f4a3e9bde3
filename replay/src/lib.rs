//! `mmreplay`: lowering of trace records to model operations, the side-by-side engine, the
//! differ, reports and `record` (the compiled `.mmr` format is the parsers' `mmr`). It must never contain model
//! semantics: those live in `mmreplay-reference` and `mmreplay-candidates`.

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod atomic;
pub mod differ;
pub mod engine;
pub mod errors;
pub mod html;
pub mod input_report;
pub mod json_schema;
pub mod kernel;
pub mod kernel_counts;
pub mod kernel_lru;
pub mod litmus;
pub mod lower;
pub mod matrix;
pub mod minimize;
pub mod observe;
pub mod procsnap;
pub mod record;
pub mod record_instance;
pub mod record_stream;
pub mod report;
pub mod session;
pub mod sidecar;
pub mod source;
pub mod sysinfo;
pub mod tracedat_write;
pub mod vmscan_obs;
