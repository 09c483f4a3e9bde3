//! `mmreplay compile TRACE -o T.mmr`: parse a capture once and store its records in the
//! versioned, checksummed compiled `.mmr` format (`mmreplay_parsers::mmr`), which `replay` reads
//! without re-parsing. The output is written atomically.

use std::path::PathBuf;
use std::process::ExitCode;

use mmreplay::source::Source;
use mmreplay_parsers::mmr::{portable_diagnostics, Header, Writer};

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
    /// Print one JSON object `{"trace", "format", "output", "records", "bytes", "cpus"}` on
    /// stdout instead of the summary line on stderr.
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let mut src = match Source::open(&a.trace, a.strict) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mmreplay compile: error: {}", mmreplay::errors::chain(&e));
            return Ok(ExitCode::from(2));
        }
    };
    // The file name only (the bytes must not depend on the directory) and the sidecar.
    let header = Header::for_capture(&a.trace, src.format(), src.nr_cpus());
    let mut w = Writer::create(&a.output, &header)?;
    loop {
        match src.next_record() {
            Ok(Some(r)) => w.push(r)?,
            Ok(None) => break,
            Err(e) => {
                eprintln!("mmreplay compile: error: {}", mmreplay::errors::chain(&e));
                return Ok(ExitCode::from(2));
            }
        }
    }
    // What the capture's reader saw (overwritten events, unparsed and skipped lines) travels
    // with the records, so `stats` and `replay` of the `.mmr` report the same input facts.
    let diag = src.diagnostics().unwrap_or_default();
    let n = w.finish(&portable_diagnostics(&a.trace, &diag))?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    if a.json {
        let v = serde_json::json!({
            "trace": a.trace,
            "format": header.format,
            "output": a.output.display().to_string(),
            "records": n,
            "bytes": size,
            "cpus": header.nr_cpus,
        });
        super::json_out::emit("compile", v, a.pretty)?;
        return Ok(ExitCode::SUCCESS);
    }
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
