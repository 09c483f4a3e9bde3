//! `mmreplay stats`: the parser's public self-report.
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Capture file (`-` for stdin).
    pub file: String,
}

pub fn run(_a: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("stats: not implemented yet")
}
