//! One module per subcommand: its clap `Args` and its `run`.
pub mod bench;
pub mod bench_decode;
pub mod check;
pub mod compile;
pub mod diff;
pub mod docs;
pub mod fidelity;
pub mod json_out;
pub mod matrix;
pub mod merge;
pub mod minimize;
pub mod policies;
pub mod record;
pub mod replay;
pub mod report;
pub mod stats;
pub mod stdout;
