//! `mmreplay replay`: replay captures through the reference model and candidate policies side
//! by side, print the counter table, the contract verdicts and the fidelity line (or `--json`).
//! Exit 0: all within contract; 1: a contract breach, an invariant violation or a candidate
//! that could not be compared; 2: bad input or usage.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use mmreplay::engine::EngineConfig;
use mmreplay::report::Report;
use mmreplay::session::{self, SessionOptions, SessionResult};
use mmreplay_candidates::contract::Mode;
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
        default_value = "reference,lookaround,ad-preserve,batched-unshare"
    )]
    pub policies: Vec<String>,
    /// Replay mode.
    #[arg(long, value_enum, default_value = "lockstep")]
    pub mode: ModeArg,
    /// Print the JSON self-report (one object per trace, one per line).
    #[arg(long)]
    pub json: bool,
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
    /// How the captured kernel maintains mm_cpumask: `trim` (x86 since v6.x: bits stay until
    /// a flush IPI finds the CPU gone) or `clear` (older: cleared at every switch).
    #[arg(long, value_enum, default_value = "trim")]
    pub cpumask: CpumaskArg,
    /// The capture kernel's LRU (default: from the capture's `.meta.json` sidecar, `kernel`
    /// `lru_gen_enabled` or a 6.18 `kernel_release`; else MGLRU).
    #[arg(long, value_enum)]
    pub lru: Option<LruArg>,
    /// Record state hashes every N ops to locate the first divergence (0: off).
    #[arg(long, default_value_t = 1024)]
    pub hash_every: u64,
}

/// Sidecar of the bundled capture (see `mmreplay::source::BUNDLED`).
const BUNDLED_META: &str =
    include_str!("../../../corpus/captures/threads-shootdown.trace.zst.meta.json");

/// `workload_pid` from the `.meta.json` sidecar of `trace` (`None`: the bundled capture).
fn workload_pid(trace: Option<&str>) -> anyhow::Result<i32> {
    let (name, text) = match trace {
        None => ("<bundled>.meta.json".to_string(), BUNDLED_META.to_string()),
        Some(t) => {
            let name = format!("{t}.meta.json");
            let text = std::fs::read_to_string(&name).with_context(|| {
                format!("--workload: cannot read {name} (the sidecar `mmreplay record` writes); use --pid instead")
            })?;
            (name, text)
        }
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--workload: {name}: not valid JSON"))?;
    v.get("workload_pid")
        .and_then(serde_json::Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
        .with_context(|| format!("--workload: {name}: expected a positive integer `workload_pid`"))
}

/// The LRU of the capture `trace`: `--lru`, else its sidecar (`mmreplay::kernel_lru`).
fn lru_for(arg: Option<LruArg>, trace: Option<&str>) -> mmreplay_reference::profile::LruKind {
    use mmreplay_reference::profile::LruKind;
    match (arg, trace) {
        (Some(LruArg::Classic), _) => LruKind::Classic,
        (Some(LruArg::Mglru), _) => LruKind::Mglru { min_ttl_ms: 0 },
        (None, None) => mmreplay::kernel_lru::from_sidecar(BUNDLED_META)
            .map_or(mmreplay::kernel_lru::DEFAULT, |x| x.0),
        (None, Some(t)) => mmreplay::kernel_lru::for_trace(t).0,
    }
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

/// Write `text` to `path` atomically (temp file + rename).
pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot rename into place", path.display()))?;
    Ok(())
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
        cpumask_mode: match a.cpumask {
            CpumaskArg::Trim => mmreplay_reference::profile::CpumaskMode::TrimByFlush,
            CpumaskArg::Clear => mmreplay_reference::profile::CpumaskMode::ClearOnSwitch,
        },
        lru: mmreplay::kernel_lru::DEFAULT,
    };
    // Validate the policy list before reading any input.
    if let Err(e) = session::specs(&opts.policies) {
        eprintln!("mmreplay replay: {e}");
        return Ok(ExitCode::from(2));
    }
    if let Some(d) = &a.snapshot_out {
        std::fs::create_dir_all(d)
            .with_context(|| format!("--snapshot-out {}: cannot create directory", d.display()))?;
    }
    let inputs: Vec<Option<String>> = if a.traces.is_empty() {
        vec![None]
    } else {
        a.traces.iter().cloned().map(Some).collect()
    };
    // Per-input options (`--workload` gives each input its own pid).
    let mut per_input = Vec::with_capacity(inputs.len());
    for t in &inputs {
        let mut o = opts.clone();
        o.lru = lru_for(a.lru, t.as_deref());
        if a.workload {
            match workload_pid(t.as_deref()) {
                Ok(p) => o.pid = Some(p),
                Err(e) => {
                    eprintln!("mmreplay replay: error: {e:#}");
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
    for (r, (_, o)) in results.into_iter().zip(&per_input) {
        let lru_name = match o.lru {
            mmreplay_reference::profile::LruKind::Classic => "classic",
            mmreplay_reference::profile::LruKind::Mglru { .. } => "mglru",
        };
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("mmreplay replay: error: {e}");
                code = 2;
                continue;
            }
        };
        let mode_name = match mode {
            Mode::Lockstep => "lockstep",
            Mode::FreeRunning => "free",
        };
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
            println!("{}", serde_json::to_string(&v)?);
        } else {
            print!("{}", rep.text());
            println!("kernel LRU modelled: {lru_name} (--lru to choose)");
        }
        if let Some(d) = &a.snapshot_out {
            for p in &r.run.policies {
                let file = d.join(format!("{}.{}.snap", stem(&r.trace), stem(&p.name)));
                write_atomic(&file, &p.snapshot.to_text())?;
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
        let breach = r
            .verdicts
            .iter()
            .any(|v| v.label() != "same" && v.label() != "diverged_within_contract");
        let violations = r.run.policies.iter().any(|p| p.violation_count > 0);
        if breach || violations {
            code = code.max(1);
        }
    }
    Ok(ExitCode::from(code))
}
