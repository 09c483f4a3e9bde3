//! `mmreplay compile TRACE -o T.mmr`: parse a capture once and store its records in the
//! versioned, checksummed compiled corpus format (`mmreplay::corpus`), which `replay` reads
//! without re-parsing. The output is written atomically.

use std::path::PathBuf;
use std::process::ExitCode;

use mmreplay::corpus::{CompiledHeader, Writer};
use mmreplay::source::Source;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capture to compile (any format `replay` reads).
    pub trace: String,
    /// Output file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Fail on unparsable lines.
    #[arg(long)]
    pub strict: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let mut src = match Source::open(&a.trace, a.strict) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mmreplay compile: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // The file name only (the bytes must not depend on the directory) and the sidecar.
    let header = CompiledHeader::for_capture(&a.trace, src.format(), src.nr_cpus());
    let mut w = Writer::create(&a.output, &header)?;
    loop {
        match src.next_record() {
            Ok(Some(r)) => w.push(r)?,
            Ok(None) => break,
            Err(e) => {
                eprintln!("mmreplay compile: error: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let n = w.finish()?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "compiled {} records from {} ({}) into {} ({} bytes) in {:.2}s",
        n,
        a.trace,
        header.format,
        a.output.display(),
        size,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
