//! The `mmreplay` command line. Thin: every subcommand lives in `cli/`.

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
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
    /// Run captures × policies (× parameter sweeps) as cells, sharded for cluster arrays.
    Matrix(cli::matrix::Args),
    /// Check a matrix directory is complete and print its comparison (table, JSON, CSV).
    Merge(cli::merge::Args),
    /// List the policies, what they model and their parameters.
    Policies(cli::policies::Args),
    /// Check the expectations written in litmus files (exit 1 when one fails).
    Check(cli::check::Args),
    /// Reduce a capture to a small litmus scenario that keeps a divergence.
    Minimize(cli::minimize::Args),
    /// Write a self-contained HTML report (plots, heatmap, tables, first divergence).
    Report(cli::report::Args),
    /// Predicted vs logged flushes and IPIs per capture, as the capture's kernel.
    Fidelity(cli::fidelity::Args),
    /// Regenerate docs/cli.md and the JSON schema (`--check`: exit 1 when stale).
    Docs(cli::docs::Args),
    /// Remote flush requests by kernel path, logged vs predicted (issue 22; maintainers).
    #[command(hide = true)]
    FlushPaths(cli::flush_paths::Args),
}

impl Cmd {
    /// The subcommand's name, for the `mmreplay CMD: error:` prefix of every message.
    fn name(&self) -> &'static str {
        match self {
            Cmd::Stats(_) => "stats",
            Cmd::Record(_) => "record",
            Cmd::Replay(_) => "replay",
            Cmd::Diff(_) => "diff",
            Cmd::Compile(_) => "compile",
            Cmd::Bench(_) => "bench",
            Cmd::Matrix(_) => "matrix",
            Cmd::Merge(_) => "merge",
            Cmd::Policies(_) => "policies",
            Cmd::Check(_) => "check",
            Cmd::Minimize(_) => "minimize",
            Cmd::Report(_) => "report",
            Cmd::Fidelity(_) => "fidelity",
            Cmd::Docs(_) => "docs",
            Cmd::FlushPaths(_) => "flush-paths",
        }
    }
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

/// Writing to a closed pipe (`mmreplay diff A B | head`) ends the process quietly, as it does
/// for other Unix tools. Rust ignores SIGPIPE by default, which turns the write into an error
/// that `print!` answers with a panic (exit 101).
fn default_sigpipe() {
    // SAFETY: resetting a signal disposition to its default; called before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The command line with each subcommand's exit statuses under its `--help`
/// (`cli::docs::EXIT_CODES`).
fn command() -> clap::Command {
    let mut c = Cli::command();
    for (name, _) in cli::docs::EXIT_CODES {
        if let Some(h) = cli::docs::exit_help(name) {
            c = c.mut_subcommand(*name, |s| s.after_help(h));
        }
    }
    c
}

fn main() -> ExitCode {
    fix_malloc_mmap_threshold();
    default_sigpipe();
    let command = command();
    let parsed = command
        .clone()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap uses 0 for --help/--version and 2 for usage errors, as docs/cli.md documents per command.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let name = cli.cmd.name();
    cli::stdout::exit_on_print_failure(name);
    let result = match cli.cmd {
        Cmd::Stats(a) => cli::stats::run(a),
        Cmd::Record(a) => cli::record::run(a),
        Cmd::Replay(a) => cli::replay::run(a),
        Cmd::Diff(a) => cli::diff::run(a),
        Cmd::Compile(a) => cli::compile::run(a),
        Cmd::Bench(a) => cli::bench::run(a),
        Cmd::Matrix(a) => cli::matrix::run(a),
        Cmd::Merge(a) => cli::merge::run(a),
        Cmd::Policies(a) => cli::policies::run(a),
        Cmd::Check(a) => cli::check::run(a),
        Cmd::Minimize(a) => cli::minimize::run(a),
        Cmd::Report(a) => cli::report::run(a),
        Cmd::Fidelity(a) => cli::fidelity::run(a),
        Cmd::Docs(a) => cli::docs::run(a, &command),
        Cmd::FlushPaths(a) => cli::flush_paths::run(a),
    };
    // What `print!` left in stdout's buffer is written now: a failure is an error, not exit 0.
    let result = result.and_then(|code| cli::stdout::flush().map(|()| code));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "mmreplay {name}: error: {}",
                mmreplay::errors::chain_anyhow(&e)
            );
            ExitCode::from(2)
        }
    }
}
