//! One module per subcommand: its clap `Args` and its `run`.
pub mod bench;
pub mod compile;
pub mod diff;
pub mod fidelity;
pub mod record;
pub mod replay;
pub mod stats;
