//! `mmreplay minimize TRACE --policy P [--property PROP] -o OUT.litmus [--json]`: reduce the
//! lowered op stream of one input to a small litmus scenario that keeps a divergence, an
//! invariant violation or a fidelity gap (see `mmreplay::minimize`). Progress on stderr when
//! it is a terminal; Ctrl-C stops the search and writes the best result so far. Exit 0: a
//! scenario was written; 2: bad input or usage, or nothing to minimise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use mmreplay::minimize::{self, LoadOptions, Minimizer, Property};
use mmreplay::session::Built;
use mmreplay_candidates::contract::Mode;
use mmreplay_candidates::NamedEngine;

use super::replay::ModeArg;
use mmreplay::atomic::write_atomic;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capture (any format `replay` reads) or litmus file. None: the bundled capture.
    pub trace: Option<String>,
    /// The candidate policy whose divergence (or violation) to keep.
    #[arg(long)]
    pub policy: String,
    /// What it is compared with (only the reference model today).
    #[arg(long, default_value = "reference", value_parser = ["reference"])]
    pub against: String,
    /// What must still hold: verdict=diverged_within_contract|contract_breach,
    /// counter=NAME, invariant=IN, fidelity=COUNT:T. Default: the candidate's verdict on the
    /// input (or its first invariant violation).
    #[arg(long)]
    pub property: Option<String>,
    /// The litmus file to write (atomically).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Print a JSON summary (ops_before, ops_after, seconds, property, ...).
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
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

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let property = match a.property.as_deref().map(Property::parse).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mmreplay minimize: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mode = match a.mode {
        ModeArg::Lockstep => Mode::Lockstep,
        ModeArg::Free => Mode::FreeRunning,
    };
    let input = match minimize::load(
        a.trace.as_deref(),
        &LoadOptions {
            pid: a.pid,
            comm: a.comm.clone(),
            cpus: a.cpus,
            strict: a.strict,
            cpumask_clear: false,
        },
    ) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("mmreplay minimize: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let profile = input.profile.clone();
    let specs = [a.against.as_str(), a.policy.as_str()];
    // Build once up front so a bad policy is a usage error, not a failed search.
    for s in specs {
        if let Err(e) = mmreplay::litmus::build_policy(s, &profile, mode) {
            eprintln!("mmreplay minimize: --policy {s}: {e}");
            return Ok(ExitCode::from(2));
        }
    }
    let build = || -> Vec<Built> {
        specs
            .iter()
            .filter_map(|s| {
                mmreplay::litmus::build_policy(s, &profile, mode)
                    .ok()
                    .map(|(e, c)| (NamedEngine::new(*s, e), c))
            })
            .collect()
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let bar = if std::io::stderr().is_terminal() && !a.json {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut m = Minimizer::new(&input, &build, mode);
    let mut progress = |phase: &str, size: usize, tests: u64| {
        if tests % 8 == 0 {
            bar.set_message(format!("{phase}: {size} ops ({tests} tests)"));
            bar.tick();
        }
    };
    let stop = || INTERRUPTED.load(Ordering::SeqCst);
    let result = m.run(&a.policy, property, &mut progress, &stop);
    bar.finish_and_clear();
    let (out, property) = match result {
        Ok(x) => x,
        Err(e) => {
            eprintln!("mmreplay minimize: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let text = minimize::to_litmus(&mut m, &out, &property, &a.policy);
    write_atomic(&a.output, text.as_bytes())?;
    if a.json {
        let mut v = serde_json::to_value(&out)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("output".into(), a.output.display().to_string().into());
        }
        super::json_out::emit("minimize", v, a.pretty)?;
    } else {
        println!(
            "{}: {} ops -> {} ops in {:.1} s ({} tests), property {}{}; wrote {}",
            out.trace,
            out.ops_before,
            out.ops_after,
            out.seconds,
            out.tests,
            out.property,
            if out.interrupted {
                " (interrupted: best so far)"
            } else {
                ""
            },
            a.output.display()
        );
        println!("check it: mmreplay check {}", a.output.display());
    }
    Ok(ExitCode::SUCCESS)
}
