//! The `mmreplay` command line. Thin: every subcommand lives in `cli/`.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(
    name = "mmreplay",
    version,
    about = "Trace replay and differential testing for Linux MM policies"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse a capture and report what it contains.
    Stats(cli::stats::Args),
    /// Capture a workload's MM events with ftrace (needs root).
    Record(cli::record::Args),
    /// Replay captures through the reference model and candidate policies side by side.
    Replay(cli::replay::Args),
    /// Unified diff of two snapshots written by `replay --snapshot-out`.
    Diff(cli::diff::Args),
    /// Compile a capture into the fast, checksummed `.mmr` record format.
    Compile(cli::compile::Args),
    /// Measure replay throughput and streaming memory on a capture.
    Bench(cli::bench::Args),
    /// Predicted vs logged flushes and IPIs per capture, as the capture's kernel.
    Fidelity(cli::fidelity::Args),
}

/// Fix glibc's mmap threshold. By default glibc raises it each time a large block is freed
/// (up to 32 MiB), after which the parser's and engine's per-chunk buffers come from the heap
/// and fragment it: streaming the same capture 10 times then peaked at 1.6x the RSS of once.
/// With a fixed threshold large buffers are mmapped and returned on free (1.27x, and a lower
/// peak for a single pass; `mmreplay bench` prints both).
fn fix_malloc_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn main() -> ExitCode {
    fix_malloc_mmap_threshold();
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
        Cmd::Record(a) => cli::record::run(a),
        Cmd::Replay(a) => cli::replay::run(a),
        Cmd::Diff(a) => cli::diff::run(a),
        Cmd::Compile(a) => cli::compile::run(a),
        Cmd::Bench(a) => cli::bench::run(a),
        Cmd::Fidelity(a) => cli::fidelity::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mmreplay: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
