//! `mmreplay`: lowering of trace records to model operations, the side-by-side engine, the
//! differ and reports (the compiled `.mmr` format is the parsers' `mmr`; `record` lives in
//! `mmreplay-record`). It must never contain model semantics: those live in
//! `mmreplay-reference` and `mmreplay-candidates`.

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod differ;
pub mod engine;
pub(crate) mod engine_sched;
pub mod errors;
pub mod flush_paths;
pub mod html;
pub mod input_report;
pub mod json_schema;
pub mod kernel;
pub mod kernel_counts;
pub mod kernel_lru;
pub mod lost_windows;
pub mod lower;
pub mod matrix;
pub mod minimize;
pub mod observe;
pub mod report;
pub mod session;
pub mod sidecar;
pub mod source;
pub mod unsampled;
pub mod vmscan_obs;

// Formats `record` writes and replay reads (the `--access` log, the process snapshot), and the
// one atomic writer, under the paths the lowering and the CLI use.
pub use mmreplay_parsers::atomic;
pub use mmreplay_record::{access, procsnap};
// The litmus language (`mmreplay-litmus`), under the path the CLI, `minimize` and the tests use.
pub use mmreplay_litmus as litmus;
