//! The `mmreplay` command line. Thin: every subcommand lives in `cli/`.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(name = "mmreplay", version, about = "Trace replay and differential testing for Linux MM policies")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse a capture and report what it contains.
    Stats(cli::stats::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap uses 0 for --help/--version and 2 for usage errors, as ARCHITECTURE.md §7 asks.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let result = match cli.cmd {
        Cmd::Stats(a) => cli::stats::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mmreplay: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
