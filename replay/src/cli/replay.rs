//! `mmreplay replay`: replay captures through the reference model and candidate policies side
//! by side, print the counter table, the contract verdicts and the fidelity line (or `--json`).
//! Exit 0: all within contract; 1: a contract breach, an invariant violation or a candidate
//! that could not be compared; 2: bad input or usage.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use mmreplay::engine::EngineConfig;
use mmreplay::kernel::{KernelChoice, KernelError};
use mmreplay::report::Report;
use mmreplay::session::{self, SessionOptions, SessionResult};
use mmreplay_candidates::contract::Mode;
use mmreplay_candidates::verdict::Verdict;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// The reference's reclaim rounds (aging points and victims) are imposed on every
    /// candidate, which is judged by its stricter lockstep contract; a candidate that cannot
    /// evict an imposed victim is reported not comparable (the default: only costs differ).
    Lockstep,
    /// Each policy picks its own victims; candidates are judged by their free-running
    /// contracts (outcomes such as evictions and refaults may differ).
    Free,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CpumaskArg {
    /// `should_trim_cpumask`: bits stay, a flush to a CPU that left trims it.
    Trim,
    /// The bit of the previous mm is cleared at every switch.
    Clear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LruArg {
    /// The two-list active/inactive LRU (kernels without CONFIG_LRU_GEN, or lru_gen off).
    Classic,
    /// The multi-gen LRU.
    Mglru,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Captures (ftrace text, trace-cmd report, perf script, trace.dat, perf.data, zstd or
    /// not, or compiled .mmr). None: the small real capture bundled in the binary.
    pub traces: Vec<String>,
    /// Policies to replay side by side (comma separated; `reference` is always first).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = mmreplay_candidates::registry::default_list()
    )]
    pub policies: Vec<String>,
    /// Replay mode.
    #[arg(long, value_enum, default_value = "lockstep")]
    pub mode: ModeArg,
    /// Print the JSON self-report (one object per trace, one per line; schema
    /// `docs/schema/mmreplay.schema.json`).
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people (still one object per trace).
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// Write each policy's final canonical snapshot to DIR/<trace>.<policy>.snap.
    #[arg(long, value_name = "DIR")]
    pub snapshot_out: Option<PathBuf>,
    /// Only replay this process (pid or tgid) and its descendants.
    #[arg(long, conflicts_with = "workload")]
    pub pid: Option<i32>,
    /// Only replay the recorded workload and its descendants: `--pid` from the capture's
    /// `.meta.json` sidecar (`workload_pid`, written by `mmreplay record`). Captures hold
    /// other processes too, some older than the capture, whose mm_cpumask state the model
    /// cannot know; the workload's own fidelity line is the one to trust.
    #[arg(long)]
    pub workload: bool,
    /// Only replay tasks with this comm and their descendants.
    #[arg(long)]
    pub comm: Option<String>,
    /// Fail on unparsable lines, and treat records the lowering cannot place as bad input.
    #[arg(long)]
    pub strict: bool,
    /// CPUs of the captured machine (default: from the capture header, else 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: Option<u32>,
    /// How the captured kernel maintains mm_cpumask: `trim` (x86 since v6.14: bits stay until
    /// a flush IPI finds the CPU gone) or `clear` (older: cleared at every switch). Default:
    /// what the capture's kernel does (see `--kernel`).
    #[arg(long, value_enum)]
    pub cpumask: Option<CpumaskArg>,
    /// The kernel whose mechanics the model follows (`6.1`, `6.18`, any MAJOR.MINOR). Default:
    /// the release in the capture's `.meta.json` sidecar, else 6.18.
    #[arg(long, value_name = "VERSION")]
    pub kernel: Option<String>,
    /// The capture kernel's LRU (default: from the capture's kernel, see `--kernel`: MGLRU when
    /// its sidecar says `lru_gen` was enabled, else the classic two-list LRU).
    #[arg(long, value_enum)]
    pub lru: Option<LruArg>,
    /// Record state hashes every N ops to locate the first divergence (0: off).
    #[arg(long, default_value_t = 1024)]
    pub hash_every: u64,
}

/// Sidecar of the bundled capture (see `mmreplay::source::BUNDLED`).
pub use mmreplay::source::BUNDLED_META;

/// `workload_pid` from the `.meta.json` sidecar of `trace` (`None`: the bundled capture).
pub fn workload_pid(trace: Option<&str>) -> anyhow::Result<i32> {
    match trace {
        None => mmreplay::sidecar::workload_pid_of("<bundled>.meta.json", BUNDLED_META),
        Some(t) => match mmreplay::source::bundled_extra(t) {
            Some((_, meta)) => mmreplay::sidecar::workload_pid_of(&format!("{t}.meta.json"), meta),
            None => mmreplay::sidecar::workload_pid(t),
        },
    }
}

/// The capture's kernel (`None`: the bundled capture, whose sidecar is built in).
pub fn kernel_for(trace: Option<&str>, forced: Option<&str>) -> Result<KernelChoice, KernelError> {
    let builtin = match trace {
        None => Some(BUNDLED_META),
        Some(t) => mmreplay::source::bundled_extra(t).map(|(_, meta)| meta),
    };
    match (trace, builtin) {
        (Some(t), None) => KernelChoice::choose(Some(t), forced),
        (_, builtin) => {
            let meta: Option<serde_json::Value> =
                builtin.and_then(|m| serde_json::from_str(m).ok());
            match (forced, meta.as_ref().and_then(KernelChoice::from_meta)) {
                (None, Some(k)) => Ok(k),
                _ => KernelChoice::choose(None, forced),
            }
        }
    }
}

/// `--lru`: an override of the LRU the capture's kernel profile chooses.
fn lru_for(arg: Option<LruArg>) -> Option<mmreplay_reference::profile::LruKind> {
    use mmreplay_reference::profile::LruKind;
    arg.map(|a| match a {
        LruArg::Classic => LruKind::Classic,
        LruArg::Mglru => LruKind::Mglru { min_ttl_ms: 0 },
    })
}

fn stem(trace: &str) -> String {
    let name = Path::new(trace)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundled".into());
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_matches('_').to_string();
    if name.is_empty() {
        "bundled".into()
    } else {
        name
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mode = match a.mode {
        ModeArg::Lockstep => Mode::Lockstep,
        ModeArg::Free => Mode::FreeRunning,
    };
    let opts = SessionOptions {
        policies: a.policies.clone(),
        mode,
        pid: a.pid,
        comm: a.comm.clone(),
        strict: a.strict,
        cpus: a.cpus,
        engine: EngineConfig {
            hash_every: a.hash_every,
            ..EngineConfig::default()
        },
        locate: a.hash_every > 0,
        cpumask_mode: SessionOptions::default().cpumask_mode,
        kernel: None,
        lru: None,
    };
    let cpumask = a.cpumask.map(|c| match c {
        CpumaskArg::Trim => mmreplay_reference::profile::CpumaskMode::TrimByFlush,
        CpumaskArg::Clear => mmreplay_reference::profile::CpumaskMode::ClearOnSwitch,
    });
    // Validate the policy list before reading any input.
    if let Err(e) = session::specs(&opts.policies) {
        eprintln!("mmreplay replay: error: {}", mmreplay::errors::chain(&e));
        return Ok(ExitCode::from(2));
    }
    if let Some(d) = &a.snapshot_out {
        std::fs::create_dir_all(d)
            .with_context(|| format!("--snapshot-out {}: cannot create directory", d.display()))?;
    }
    let inputs: Vec<Option<String>> = if a.traces.is_empty() {
        // The bundled captures: tour (6.18), then a 6.1 MGLRU capture for look-around.
        mmreplay::source::default_inputs()
    } else {
        a.traces.iter().cloned().map(Some).collect()
    };
    // Per-input options (`--workload` gives each input its own pid).
    let mut per_input = Vec::with_capacity(inputs.len());
    for t in &inputs {
        let mut o = opts.clone();
        match kernel_for(t.as_deref(), a.kernel.as_deref()) {
            Ok(k) => {
                o.cpumask_mode = cpumask.unwrap_or(k.profile(1).cpumask_mode);
                o.kernel = Some(k);
            }
            Err(e) => {
                eprintln!("mmreplay replay: error: {}", mmreplay::errors::chain(&e));
                return Ok(ExitCode::from(2));
            }
        }
        o.lru = lru_for(a.lru);
        if a.workload {
            match workload_pid(t.as_deref()) {
                Ok(p) => o.pid = Some(p),
                Err(e) => {
                    eprintln!(
                        "mmreplay replay: error: {}",
                        mmreplay::errors::chain_anyhow(&e)
                    );
                    return Ok(ExitCode::from(2));
                }
            }
        }
        per_input.push((t.clone(), o));
    }
    let show_progress = std::io::stderr().is_terminal() && !a.json;
    let results: Vec<Result<SessionResult, session::SessionError>> = per_input
        .par_iter()
        .map(|(t, opts)| {
            let started = std::time::Instant::now();
            let mut bar: Option<indicatif::ProgressBar> = None;
            session::run(t.as_deref(), opts, |src, _n| {
                if !show_progress || started.elapsed().as_secs_f64() < 1.0 {
                    return;
                }
                let (done, total) = src.progress();
                let b = bar.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::new(total.unwrap_or(0));
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    b.set_message(src.name().to_string());
                    b
                });
                b.set_position(done);
            })
            .inspect(|_| {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
            })
        })
        .collect();
    let mut code = 0u8;
    // The default run's verdicts per bundled capture, for the footer.
    let mut defaults: Vec<Vec<mmreplay::differ::Comparison>> = Vec::new();
    for (r, (_, o)) in results.into_iter().zip(&per_input) {
        let lru_name = match session::effective_lru(o) {
            mmreplay_reference::profile::LruKind::Classic => "classic",
            mmreplay_reference::profile::LruKind::Mglru { .. } => "mglru",
        };
        let mut r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("mmreplay replay: error: {}", mmreplay::errors::chain(&e));
                code = 2;
                continue;
            }
        };
        let mode_name = match mode {
            Mode::Lockstep => "lockstep",
            Mode::FreeRunning => "free",
        };
        r.input.filters.workload = a.workload;
        let rep = Report {
            trace: &r.trace,
            format: &r.format,
            mode: mode_name,
            nr_cpus: r.nr_cpus,
            run: &r.run,
            verdicts: &r.verdicts,
            diffs: &r.diffs,
        };
        if a.json {
            let mut v = rep.json();
            if let Some(m) = v.as_object_mut() {
                m.insert("lru".into(), serde_json::json!(lru_name));
            }
            crate::cli::json_out::replay_json(&mut v, &r.input, o);
            crate::cli::json_out::print(&v, a.pretty)?;
        } else {
            print!(
                "{}",
                mmreplay::input_report::splice_text(&rep.text(), &r.input.text())
            );
            println!("kernel LRU modelled: {lru_name} (--lru to choose)");
            if a.traces.is_empty() {
                defaults.push(r.verdicts.clone());
            }
        }
        if let Some(d) = &a.snapshot_out {
            for p in &r.run.policies {
                let file = d.join(format!("{}.{}.snap", stem(&r.trace), stem(&p.name)));
                mmreplay::atomic::write_atomic(&file, p.snapshot.to_text().as_bytes())?;
            }
        }
        if a.strict && !r.run.lower.unplaced.is_empty() {
            let n: u64 = r.run.lower.unplaced.values().sum();
            eprintln!(
                "mmreplay replay: {}: --strict: {n} records could not be placed (see `unplaced`)",
                r.trace
            );
            code = code.max(2);
        }
        let breach = r.verdicts.iter().any(|v| !v.verdict.within_contract());
        let violations = r.run.policies.iter().any(|p| p.violation_count > 0);
        if breach || violations {
            code = code.max(1);
        }
    }
    if !defaults.is_empty() && !a.json {
        print!("{}", what_next(&defaults));
    }
    Ok(ExitCode::from(code))
}

/// The footer of the default run (the bundled captures, in `default_inputs` order): where to
/// look next.
fn what_next(runs: &[Vec<mmreplay::differ::Comparison>]) -> String {
    let diverged = runs
        .first()
        .and_then(|v| v.iter().find(|v| v.verdict != Verdict::Same))
        .map_or("batched-unshare", |v| v.candidate.as_str());
    let rows = [
        (
            "mmreplay report -o report.html".to_string(),
            "this replay as one HTML page: counters over time, access heatmap, first diverging ops"
                .to_string(),
        ),
        (
            format!("mmreplay minimize --policy {diverged} -o min.litmus"),
            format!(
                "the few ops that still make {diverged} differ (then: mmreplay check min.litmus)"
            ),
        ),
        (
            "mmreplay fidelity".to_string(),
            "how far the reference model's predictions are from what the kernel logged".to_string(),
        ),
    ];
    let mut rows = rows.to_vec();
    // Look-around acts only on the second bundled capture (6.1, MGLRU on): its minimisation
    // names that capture's path, since `minimize` without one takes the first.
    if runs.get(1).is_some_and(|v| {
        v.iter()
            .any(|v| v.candidate == "lookaround" && v.verdict != Verdict::Same)
    }) {
        rows.insert(
            2,
            (
                "mmreplay minimize corpus/captures/k61-reclaim-mglru.trace.zst --policy lookaround -o la.litmus"
                    .to_string(),
                "the same for look-around, on the 6.1 MGLRU capture".to_string(),
            ),
        );
    }
    // Each command on its own line, what it shows under it: the look-around row's path is
    // too long for two columns.
    let mut s = String::from("\nwhat to look at next:\n");
    for (c, d) in rows {
        s.push_str(&format!("  {c}\n      {d}\n"));
    }
    s.push_str("  (each also takes a capture path; `mmreplay record -- CMD` makes one)\n");
    s
}
