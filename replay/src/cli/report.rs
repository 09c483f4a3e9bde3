//! `mmreplay report TRACE... -o report.html [--json]`: one self-contained HTML page (inline
//! SVG, no network) per set of captures: verdicts, fidelity, counters over time per policy,
//! an access heatmap, per-process and per-VMA tables, the first diverging window (see
//! `mmreplay::html`). `--json` prints the same data. Exit 0: written; 2: bad input or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use mmreplay::engine::EngineConfig;
use mmreplay::html;
use mmreplay::session::{self, SessionOptions};
use mmreplay_candidates::contract::Mode;

use super::replay::ModeArg;
use mmreplay::atomic::write_atomic;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Captures (as `replay`), or litmus files. None: the bundled capture.
    pub traces: Vec<String>,
    /// The HTML file to write (atomically).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Print the report's data as JSON (one object per trace, one per line).
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// Policies side by side (`reference` is always first).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = mmreplay_candidates::registry::default_list()
    )]
    pub policies: Vec<String>,
    /// Replay mode (as `replay`).
    #[arg(long, value_enum, default_value = "lockstep")]
    pub mode: ModeArg,
    /// Only this process (pid or tgid) and its descendants.
    #[arg(long)]
    pub pid: Option<i32>,
    /// Only tasks with this comm and their descendants.
    #[arg(long)]
    pub comm: Option<String>,
    /// CPUs of the captured machine (default: from the capture header, else 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: Option<u32>,
    /// Fail on unparsable lines.
    #[arg(long)]
    pub strict: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.output.is_none() && !a.json {
        eprintln!("mmreplay report: give -o report.html, --json, or both");
        return Ok(ExitCode::from(2));
    }
    let o = SessionOptions {
        policies: a.policies.clone(),
        mode: match a.mode {
            ModeArg::Lockstep => Mode::Lockstep,
            ModeArg::Free => Mode::FreeRunning,
        },
        pid: a.pid,
        comm: a.comm.clone(),
        strict: a.strict,
        cpus: a.cpus,
        engine: EngineConfig::default(),
        locate: true,
        cpumask_mode: mmreplay_reference::profile::CpumaskMode::TrimByFlush,
        kernel: None,
        lru: None,
    };
    if let Err(e) = session::specs(&o.policies) {
        eprintln!("mmreplay report: error: {}", mmreplay::errors::chain(&e));
        return Ok(ExitCode::from(2));
    }
    let inputs: Vec<Option<&str>> = if a.traces.is_empty() {
        vec![None]
    } else {
        a.traces.iter().map(|t| Some(t.as_str())).collect()
    };
    let mut reports = Vec::new();
    for t in inputs {
        // Each capture is modelled as its own kernel, as `replay` and `fidelity` do.
        let mut o = o.clone();
        match super::replay::kernel_for(t, None) {
            Ok(k) => {
                o.cpumask_mode = k.profile(1).cpumask_mode;
                o.kernel = Some(k);
            }
            Err(e) => {
                eprintln!("mmreplay report: error: {}", mmreplay::errors::chain(&e));
                return Ok(ExitCode::from(2));
            }
        }
        match html::build(t, &o) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("mmreplay report: error: {}", mmreplay::errors::chain(&e));
                return Ok(ExitCode::from(2));
            }
        }
    }
    if a.json {
        for r in &reports {
            let v = serde_json::to_value(r)?;
            super::json_out::emit("report", v, a.pretty)?;
        }
    }
    if let Some(out) = &a.output {
        write_atomic(out, html::render(&reports).as_bytes())?;
        if !a.json {
            println!("wrote {} ({} traces)", out.display(), reports.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
