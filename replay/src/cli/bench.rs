//! `mmreplay bench [TRACE]`: replay throughput and streaming memory, with baselines printed
//! beside them in the same run (ARCHITECTURE.md, code map: `replay/`). Measures: parse (text) vs read (compiled
//! `.mmr`), lowering alone, each policy alone on one thread (ops/s), all policies on 1 vs 2
//! threads, and peak RSS (VmHWM) of a streaming replay of the capture once vs concatenated 10
//! times (each in a child process, so the peaks are independent).
//!
//! It must never be used as a test (timings are printed, not asserted).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use mmreplay::engine::{self, EngineConfig};
use mmreplay::lower::LowerOptions;
use mmreplay::session::{self, DEFAULT_CPUS};
use mmreplay::source::{Source, BUNDLED};
use mmreplay_parsers::mmr::{portable_diagnostics, Header, Writer};
use mmreplay_parsers::record::Record;
use mmreplay_reference::op::Op;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Capture to measure (default: the bundled one).
    pub trace: Option<String>,
    /// Policies.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = mmreplay_candidates::registry::default_list()
    )]
    pub policies: Vec<String>,
    /// Internal: stream the capture this many times through a replay and print VmHWM.
    #[arg(long, hide = true)]
    pub rss_child: Option<u32>,
    /// Only compare delivering the records from the text capture vs from its compiled `.mmr`.
    #[arg(long)]
    pub io_only: bool,
    /// Runs of the text vs `.mmr` comparison (best and spread are printed).
    #[arg(long, default_value_t = 3)]
    pub io_runs: u32,
    /// Runs of each policy alone and of the 1- vs 2-thread comparison (medians are the
    /// figures; every run is in `--json`).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Print one JSON object (figures, goals) on stdout; the text goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a goal fails.
    #[arg(long)]
    pub check: bool,
    /// Override a goal's target: `NAME=TARGET` (`ops_per_s`, `ops_per_s.POLICY`,
    /// `parallel_speedup`, `mmr_cpu_speedup`, `mmr_size_ratio`, `rss_x10_over_x1`,
    /// `decode_speedup`, `decode_rss_ratio`, `text_mb_per_s`).
    #[arg(long, value_name = "NAME=TARGET")]
    pub goal: Vec<String>,
    /// Only the decode goals: `mmreplay stats TRACE` vs `perf script` / `trace-cmd report` /
    /// `wc -l` on the same file (for captures too large to hold in memory, which the replay
    /// figures do).
    #[arg(long, requires = "trace")]
    pub decode_only: bool,
}

/// CPU time of this process (user + system, all threads), in seconds.
fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct we pass; a zeroed rusage is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// One timed pass delivering every record of a source, as `replay` consumes them.
struct Delivery {
    records: u64,
    /// A fold over every record, so the two inputs can be checked to deliver the same stream
    /// and the loop cannot be optimised away.
    fold: u64,
    wall: f64,
    cpu: f64,
}

fn deliver(open: &dyn Fn() -> anyhow::Result<Source>) -> anyhow::Result<Delivery> {
    let (w0, c0) = (Instant::now(), cpu_s());
    let mut src = open()?;
    let (mut records, mut fold) = (0u64, 0u64);
    // By batches, as `stats` reads (RecordSource::next_batch).
    let mut batch = Vec::with_capacity(mmreplay_parsers::stats::BATCH);
    loop {
        batch.clear();
        let got = src.next_batch(&mut batch, mmreplay_parsers::stats::BATCH);
        for r in &batch {
            records += 1;
            fold = fold.rotate_left(7)
                ^ r.ts_ns
                ^ (u64::from(r.cpu) << 48)
                ^ (r.pid as u64)
                ^ (r.event.name().len() as u64);
        }
        if got? == 0 {
            break;
        }
    }
    drop(src);
    Ok(Delivery {
        records,
        fold,
        wall: w0.elapsed().as_secs_f64(),
        cpu: cpu_s() - c0,
    })
}

/// Deliver all records and lower them to ops (what `replay` does before any policy runs).
fn deliver_lowered(
    open: &dyn Fn() -> anyhow::Result<Source>,
    nr_cpus: u32,
) -> anyhow::Result<Delivery> {
    let (w0, c0) = (Instant::now(), cpu_s());
    let src = open()?;
    let lower = LowerOptions {
        nr_cpus,
        ..LowerOptions::default()
    };
    let (ops, stats) = engine::lower_all(src, lower)?;
    let fold = ops.len() as u64;
    drop(ops);
    Ok(Delivery {
        records: stats.records,
        fold,
        wall: w0.elapsed().as_secs_f64(),
        cpu: cpu_s() - c0,
    })
}

/// (best, worst) of `xs`.
fn best_worst(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    xs.fold((f64::INFINITY, 0.0f64), |(b, w), x| (b.min(x), w.max(x)))
}

/// Deliver all records from the capture and from its compiled `.mmr` (compiled here, to a
/// temp dir), `runs` times each, interleaved; print each run, best-of, spread and ratios.
/// What [`compare_text_mmr`] measured.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MmrFigures {
    /// Bytes of the capture (as stored, e.g. zstd text).
    pub text_bytes: u64,
    /// Bytes of its compiled `.mmr`.
    pub mmr_bytes: u64,
    /// Best CPU seconds to deliver every record from the capture.
    pub text_cpu_s: f64,
    /// Best CPU seconds to deliver every record from the `.mmr`.
    pub mmr_cpu_s: f64,
    /// Best wall seconds, capture and `.mmr`.
    pub text_wall_s: f64,
    pub mmr_wall_s: f64,
}

fn compare_text_mmr(trace: Option<&str>, name: &str, runs: u32) -> anyhow::Result<MmrFigures> {
    let dir = std::env::temp_dir().join(format!("mmreplay-bench-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mmr = dir.join("bench.mmr").display().to_string();
    let res = (|| -> anyhow::Result<MmrFigures> {
        let mut src = Source::open_opt(trace, false)?;
        let mut w = Writer::create(
            Path::new(&mmr),
            &Header::for_capture(name, src.format(), src.nr_cpus()),
        )?;
        while let Some(r) = src.next_record()? {
            w.push(r)?;
        }
        w.finish(&portable_diagnostics(
            name,
            &src.diagnostics().unwrap_or_default(),
        ))?;
        let text_size = match trace {
            Some(t) => std::fs::metadata(t).map(|m| m.len()).unwrap_or(0),
            None => BUNDLED.len() as u64,
        };
        let mmr_size = std::fs::metadata(&mmr).map(|m| m.len()).unwrap_or(0);
        println!(
            "deliver all records: text capture ({text_size} bytes) vs compiled .mmr ({mmr_size} bytes), {runs} runs each, interleaved"
        );
        let (mut text, mut comp) = (Vec::new(), Vec::new());
        for i in 0..runs.max(1) {
            let t = deliver(&|| Ok(Source::open_opt(trace, false)?))?;
            let c = deliver(&|| Ok(Source::open(&mmr, false)?))?;
            if (t.records, t.fold) != (c.records, c.fold) {
                anyhow::bail!(
                    "{mmr}: delivers {} records (fold {:#x}), the text capture {} (fold {:#x})",
                    c.records,
                    c.fold,
                    t.records,
                    t.fold
                );
            }
            println!(
                "  run {}: text {:.4}s wall {:.4}s cpu | .mmr {:.4}s wall {:.4}s cpu ({} records)",
                i + 1,
                t.wall,
                t.cpu,
                c.wall,
                c.cpu,
                c.records
            );
            text.push(t);
            comp.push(c);
        }
        let n = comp.first().map_or(0, |c| c.records);
        let (tw, tw_max) = best_worst(text.iter().map(|d| d.wall));
        let (tc, tc_max) = best_worst(text.iter().map(|d| d.cpu));
        let (cw, cw_max) = best_worst(comp.iter().map(|d| d.wall));
        let (cc, cc_max) = best_worst(comp.iter().map(|d| d.cpu));
        println!(
            "  text: wall best {tw:.4}s (spread {:.4}s, {}), cpu best {tc:.4}s (spread {:.4}s)",
            tw_max - tw,
            rate(n, tw),
            tc_max - tc
        );
        println!(
            "  .mmr: wall best {cw:.4}s (spread {:.4}s, {}), cpu best {cc:.4}s (spread {:.4}s)",
            cw_max - cw,
            rate(n, cw),
            cc_max - cc
        );
        println!(
            "  .mmr vs text: {:.1}x wall, {:.1}x cpu (best of {runs})",
            tw / cw.max(1e-9),
            tc / cc.max(1e-9)
        );
        let figures = MmrFigures {
            text_bytes: text_size,
            mmr_bytes: mmr_size,
            text_cpu_s: tc,
            mmr_cpu_s: cc,
            text_wall_s: tw,
            mmr_wall_s: cw,
        };
        // What the replay engine consumes: the records lowered to ops.
        let nr_cpus = Source::open(&mmr, false)?.nr_cpus().unwrap_or(DEFAULT_CPUS);
        let (mut lt, mut lc) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(1) {
            lt.push(deliver_lowered(
                &|| Ok(Source::open_opt(trace, false)?),
                nr_cpus,
            )?);
            lc.push(deliver_lowered(
                &|| Ok(Source::open(&mmr, false)?),
                nr_cpus,
            )?);
        }
        let (ltw, _) = best_worst(lt.iter().map(|d| d.wall));
        let (ltc, _) = best_worst(lt.iter().map(|d| d.cpu));
        let (lcw, _) = best_worst(lc.iter().map(|d| d.wall));
        let (lcc, _) = best_worst(lc.iter().map(|d| d.cpu));
        let ops = lc.first().map_or(0, |d| d.fold);
        println!(
            "  records + lowering ({ops} ops): text {ltw:.4}s wall {ltc:.4}s cpu | .mmr {lcw:.4}s wall {lcc:.4}s cpu = {:.1}x wall, {:.1}x cpu (lowering alone is about {:.4}s cpu)",
            ltw / lcw.max(1e-9),
            ltc / lcc.max(1e-9),
            (lcc - cc).max(0.0)
        );
        Ok(figures)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn read_all(path: Option<&str>) -> anyhow::Result<(Vec<Record>, Option<u32>)> {
    let mut src = Source::open_opt(path, false)?;
    let cpus = src.nr_cpus();
    let mut v = Vec::new();
    while let Some(r) = src.next_record()? {
        v.push(r);
    }
    Ok((v, cpus))
}

fn rss_child(path: Option<&str>, repeat: u32, policies: &[String]) -> anyhow::Result<ExitCode> {
    let specs = session::specs(policies)?;
    let first = Source::open_opt(path, false)?;
    let nr_cpus = first.nr_cpus().unwrap_or(DEFAULT_CPUS);
    let lru = bench_lru(path);
    drop(first);
    // Each copy is opened only when the previous one is exhausted: the concatenation is
    // streamed, never materialised, and at most one parser is alive at a time.
    let mut left = repeat;
    let mut cur: Option<Source> = None;
    let mut open_err = None;
    let it = std::iter::from_fn(move || loop {
        if let Some(src) = cur.as_mut() {
            match src.next_record() {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => cur = None,
                Err(e) => return Some(Err(e)),
            }
        }
        if left == 0 {
            return open_err.take().map(Err);
        }
        left -= 1;
        match Source::open_opt(path, false) {
            Ok(s) => cur = Some(s),
            Err(e) => {
                open_err = Some(e);
                left = 0;
            }
        }
    });
    let engines = session::build_lru(&specs, nr_cpus, lru);
    let lower = LowerOptions {
        nr_cpus,
        ..LowerOptions::default()
    };
    let run = engine::run(it, lower, engines, &EngineConfig::default(), |_| {})?;
    println!("{} {} {}", repeat, run.lower.ops, vm_hwm_kb());
    Ok(ExitCode::SUCCESS)
}

/// The capture's LRU from its sidecar (as `replay` picks it without `--lru`).
fn bench_lru(path: Option<&str>) -> mmreplay_reference::profile::LruKind {
    path.map_or(mmreplay::kernel_lru::DEFAULT, |t| {
        mmreplay::kernel_lru::for_trace(t).0
    })
}

fn rate(n: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "inf".into();
    }
    let r = n as f64 / secs;
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.1} k/s", r / 1e3)
    }
}

/// Median of `xs` (the upper one of an even count); 0 for none.
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One policy alone on one thread.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyFigures {
    /// Ops per second of the median run.
    pub ops_per_s: f64,
    /// Seconds of each run.
    pub runs_s: Vec<f64>,
}

/// All policies on 1 thread vs on 2.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ParallelFigures {
    /// Seconds of each run on 1 thread and on 2 (run i of both is one pair).
    pub threads_1_s: Vec<f64>,
    pub threads_2_s: Vec<f64>,
    /// 1-thread over 2-thread time of each pair.
    pub speedups: Vec<f64>,
    /// Median of `speedups`.
    pub speedup: f64,
    /// Smallest and largest of `speedups`.
    pub speedup_min: f64,
    pub speedup_max: f64,
}

/// Peak RSS of a streaming replay of the capture once and concatenated 10 times.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RssFigures {
    pub x1_kb: u64,
    pub x10_kb: u64,
    /// `x10_kb / x1_kb`.
    pub ratio: f64,
}

/// A goal of issue 15 with this run's figure.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    /// Stable name (`--goal NAME=TARGET` overrides its target).
    pub name: String,
    /// The figure measured.
    pub figure: f64,
    /// `>=` or `<=`.
    pub op: &'static str,
    pub target: f64,
    pub pass: bool,
}

/// Everything one `bench` run measured (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub trace: String,
    pub records: u64,
    pub ops: u64,
    /// Load average (1, 5, 15 min) when the run started: the machine may be shared.
    pub loadavg: Option<[f64; 3]>,
    pub runs: u32,
    pub policies: std::collections::BTreeMap<String, PolicyFigures>,
    pub parallel: ParallelFigures,
    pub mmr: MmrFigures,
    pub rss: RssFigures,
    pub goals: Vec<Goal>,
    /// `mmreplay stats` beside `perf script` / `trace-cmd report` / `wc -l` (null without a
    /// capture).
    pub decode: Option<super::bench_decode::DecodeFigures>,
}

/// `bench --decode-only --json`.
#[derive(Clone, Debug, Serialize)]
pub struct DecodeReport {
    pub trace: String,
    pub loadavg: Option<[f64; 3]>,
    pub runs: u32,
    pub decode: super::bench_decode::DecodeFigures,
    pub goals: Vec<Goal>,
}

fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The goals (issue 15) and their default targets: (name, op, target).
pub const GOALS: &[(&str, &str, f64)] = &[
    // Per policy: `ops_per_s.POLICY`.
    ("ops_per_s", ">=", 10e6),
    ("parallel_speedup", ">=", 1.8),
    ("mmr_cpu_speedup", ">=", 5.0),
    ("mmr_size_ratio", "<=", 1.0),
    ("rss_x10_over_x1", "<", 1.5),
    // Per baseline tool: `decode_speedup.perf_script`, `decode_speedup.trace_cmd_report`
    // (CPU time, median of pairs) and the peak RSS ratio; text decode in MB/s on one core.
    ("decode_speedup", ">=", 20.0),
    ("decode_rss_ratio", "<", 1.0),
    ("text_mb_per_s", ">=", 1000.0),
];

/// `--goal NAME=TARGET` overrides, checked against the goal names.
fn parse_overrides(xs: &[String]) -> anyhow::Result<Vec<(String, f64)>> {
    xs.iter()
        .map(|x| {
            let (k, v) = x
                .split_once('=')
                .with_context(|| format!("--goal {x}: expected NAME=TARGET"))?;
            let v: f64 = v
                .parse()
                .with_context(|| format!("--goal {x}: {v:?} is not a number"))?;
            let base = k.split_once('.').map_or(k, |(b, _)| b);
            anyhow::ensure!(
                GOALS.iter().any(|g| g.0 == base),
                "--goal {x}: no goal {k:?} (goals: {})",
                GOALS.iter().map(|g| g.0).collect::<Vec<_>>().join(", ")
            );
            Ok((k.to_string(), v))
        })
        .collect()
}

fn goal(name: String, figure: f64, overrides: &[(String, f64)]) -> Goal {
    let base = name.split_once('.').map_or(name.as_str(), |(b, _)| b);
    let (op, default) = GOALS
        .iter()
        .find(|g| g.0 == base)
        .map_or((">=", 0.0), |g| (g.1, g.2));
    // The most specific override wins: `ops_per_s.reference` over `ops_per_s`.
    let target = overrides
        .iter()
        .rev()
        .find(|(k, _)| *k == name)
        .or_else(|| overrides.iter().rev().find(|(k, _)| k == base))
        .map_or(default, |(_, v)| *v);
    let pass = match op {
        ">=" => figure >= target,
        "<=" => figure <= target,
        _ => figure < target,
    };
    Goal {
        name,
        figure,
        op,
        target,
        pass,
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if let Some(n) = a.rss_child {
        return rss_child(a.trace.as_deref(), n, &a.policies);
    }
    let overrides = parse_overrides(&a.goal)?;
    let name = a.trace.clone().unwrap_or_else(|| "<bundled>".into());
    if a.io_only {
        println!("bench: {name}");
        compare_text_mmr(a.trace.as_deref(), &name, a.io_runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.decode_only {
        return run_decode_only(&a, &overrides);
    }
    let specs = session::specs(&a.policies)?;
    let load = loadavg();
    let runs = a.runs.max(1);
    // With --json, the human-readable lines go to stderr so stdout is one JSON object.
    macro_rules! say {
        ($($t:tt)*) => {
            if a.json { eprintln!($($t)*) } else { println!($($t)*) }
        };
    }
    say!(
        "bench: {name} (load average {})",
        load.map_or("unknown".into(), |l| format!("{} {} {}", l[0], l[1], l[2]))
    );

    let (records, cpus) = read_all(a.trace.as_deref())?;
    let nr_cpus = cpus.unwrap_or(DEFAULT_CPUS);
    let lru = bench_lru(a.trace.as_deref());
    say!("records: {}", records.len());

    // 1. Delivering the records: the capture vs its compiled `.mmr`, best of several runs.
    let mmr = if a.json {
        // compare_text_mmr prints its per-run lines to stdout; keep stdout JSON only.
        let g = gag_stdout();
        let r = compare_text_mmr(a.trace.as_deref(), &name, a.io_runs);
        drop(g);
        r?
    } else {
        compare_text_mmr(a.trace.as_deref(), &name, a.io_runs)?
    };

    // 2. Lowering alone (baseline for replay).
    let lower = LowerOptions {
        nr_cpus,
        ..LowerOptions::default()
    };
    let t = Instant::now();
    let (ops, stats) = engine::lower_all(
        records
            .iter()
            .cloned()
            .map(Ok::<_, std::convert::Infallible>),
        lower.clone(),
    )?;
    let lower_s = t.elapsed().as_secs_f64();
    say!(
        "lowering alone: {} records -> {} ops in {:.3}s ({} ops)",
        stats.records,
        ops.len(),
        lower_s,
        rate(ops.len() as u64, lower_s)
    );
    let nops = ops.len() as u64;

    // 3. Each policy alone, one thread (pure apply over an in-memory op vector), `runs` times.
    let apply = |e: &mut (dyn mmreplay_reference::Engine + Send), ops: &[Op]| {
        for op in ops {
            let _ = e.apply(op);
        }
    };
    let mut policies = std::collections::BTreeMap::new();
    for spec in &specs {
        let mut runs_s = Vec::new();
        let mut pname = String::new();
        for _ in 0..runs {
            let mut e = session::build_lru(std::slice::from_ref(spec), nr_cpus, lru);
            let Some(e) = e.first_mut() else { continue };
            pname = e.name().to_string();
            let t = Instant::now();
            apply(&mut **e, &ops);
            runs_s.push(t.elapsed().as_secs_f64());
        }
        let med = median(&runs_s);
        let (best, worst) = best_worst(runs_s.iter().copied());
        say!(
            "  {:<16} 1 thread: median {:.4}s  {} (best {}, worst {}, {runs} runs)",
            pname,
            med,
            rate(nops, med),
            rate(nops, best),
            rate(nops, worst)
        );
        policies.insert(
            pname,
            PolicyFigures {
                ops_per_s: nops as f64 / med.max(1e-12),
                runs_s,
            },
        );
    }

    // 4. All policies through the engine `replay` runs (lowering included, lockstep, its
    //    default chunking and checkpoints), on a pool of one thread vs two, in pairs.
    let pools = [1usize, 2].map(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build());
    let [Ok(p1), Ok(p2)] = pools else {
        anyhow::bail!("cannot start the rayon thread pools");
    };
    let engine_cfg = engine::EngineConfig {
        lockstep: true,
        ..engine::EngineConfig::default()
    };
    let mut par = ParallelFigures::default();
    let mut hashes: Vec<Vec<u64>> = Vec::new();
    for _ in 0..runs {
        for (pool, out) in [(&p1, &mut par.threads_1_s), (&p2, &mut par.threads_2_s)] {
            let engines = session::build_lru(&specs, nr_cpus, lru);
            let t = Instant::now();
            let run = pool.install(|| {
                engine::run(
                    records
                        .iter()
                        .cloned()
                        .map(Ok::<_, std::convert::Infallible>),
                    lower.clone(),
                    engines,
                    &engine_cfg,
                    |_| {},
                )
            })?;
            out.push(t.elapsed().as_secs_f64());
            hashes.push(run.policies.iter().map(|p| p.snapshot_hash).collect());
        }
    }
    // The thread count must not change a result (engine_sched.rs): say so if it ever did.
    if hashes.windows(2).any(|w| w[0] != w[1]) {
        anyhow::bail!("bench: the 1- and 2-thread replays ended in different states");
    }
    par.speedups = par
        .threads_1_s
        .iter()
        .zip(&par.threads_2_s)
        .map(|(one, two)| one / two.max(1e-12))
        .collect();
    par.speedup = median(&par.speedups);
    (par.speedup_min, par.speedup_max) = best_worst(par.speedups.iter().copied());
    say!(
        "all {} policies, engine (lockstep, lowering included), 1 thread: median {:.4}s, {} policy-ops",
        specs.len(),
        median(&par.threads_1_s),
        rate(nops * specs.len() as u64, median(&par.threads_1_s))
    );
    say!(
        "all {} policies, engine (lockstep, lowering included), 2 threads: median {:.4}s, {} policy-ops",
        specs.len(),
        median(&par.threads_2_s),
        rate(nops * specs.len() as u64, median(&par.threads_2_s))
    );

    // 5. Streaming memory: the capture once vs concatenated 10 times, each in a child process.
    let exe = std::env::current_exe().context("cannot find the mmreplay binary")?;
    let mut peaks = Vec::new();
    for repeat in [1u32, 10] {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("bench")
            .arg("--rss-child")
            .arg(repeat.to_string())
            .arg("--policies")
            .arg(a.policies.join(","));
        if let Some(t) = &a.trace {
            cmd.arg(t);
        }
        let out = cmd.output().context("running the RSS child")?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        match f.as_slice() {
            [_, ops, kb] => {
                say!("streaming replay x{repeat}: {ops} ops, peak RSS (VmHWM) {kb} kB");
                peaks.push(*kb);
            }
            _ => anyhow::bail!(
                "streaming replay x{repeat}: the child failed: {} {}",
                line,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }
    let rss = match peaks.as_slice() {
        [one, ten] => RssFigures {
            x1_kb: *one,
            x10_kb: *ten,
            ratio: *ten as f64 / (*one).max(1) as f64,
        },
        _ => RssFigures::default(),
    };

    // 6. Decoding the capture beside the tool it replaces (children, after the rest).
    let decode = match &a.trace {
        Some(t) => Some(super::bench_decode::measure_decode(&exe, t, runs, &|l| {
            say!("{l}")
        })?),
        None => None,
    };

    // 7. The goals, one figure each.
    let mut goals = Vec::new();
    for (p, f) in &policies {
        goals.push(goal(format!("ops_per_s.{p}"), f.ops_per_s, &overrides));
    }
    goals.push(goal("parallel_speedup".into(), par.speedup, &overrides));
    goals.push(goal(
        "mmr_cpu_speedup".into(),
        mmr.text_cpu_s / mmr.mmr_cpu_s.max(1e-12),
        &overrides,
    ));
    goals.push(goal(
        "mmr_size_ratio".into(),
        mmr.mmr_bytes as f64 / (mmr.text_bytes.max(1)) as f64,
        &overrides,
    ));
    goals.push(goal("rss_x10_over_x1".into(), rss.ratio, &overrides));
    for (n, f) in decode.iter().flat_map(super::bench_decode::goal_figures) {
        goals.push(goal(n, f, &overrides));
    }
    let failed = goals.iter().filter(|g| !g.pass).count();
    print_goals(&goals, a.json);
    let extra = match (par.speedup_min, par.speedup_max) {
        (lo, hi) if runs > 1 => format!(" (parallel speedup min {lo:.2}, max {hi:.2})"),
        _ => String::new(),
    };
    say!(
        "{} of {} goals pass{extra}",
        goals.len() - failed,
        goals.len()
    );
    if a.json {
        let report = BenchReport {
            trace: name,
            records: records.len() as u64,
            ops: nops,
            loadavg: load,
            runs,
            policies,
            parallel: par,
            mmr,
            rss,
            goals,
            decode,
        };
        let v = serde_json::to_value(&report).context("serialising the bench report")?;
        super::json_out::emit("bench", v, false)?;
    }
    Ok(if a.check && failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `bench --decode-only TRACE`: the decode goals alone.
fn run_decode_only(a: &Args, overrides: &[(String, f64)]) -> anyhow::Result<ExitCode> {
    let trace = a.trace.clone().unwrap_or_default();
    let load = loadavg();
    let say = |l: String| {
        if a.json {
            eprintln!("{l}")
        } else {
            println!("{l}")
        }
    };
    say(format!(
        "bench: {trace} (load average {})",
        load.map_or("unknown".into(), |l| format!("{} {} {}", l[0], l[1], l[2]))
    ));
    let exe = std::env::current_exe().context("cannot find the mmreplay binary")?;
    let decode = super::bench_decode::measure_decode(&exe, &trace, a.runs.max(1), &say)?;
    let goals: Vec<Goal> = super::bench_decode::goal_figures(&decode)
        .into_iter()
        .map(|(n, f)| goal(n, f, overrides))
        .collect();
    let failed = goals.iter().filter(|g| !g.pass).count();
    print_goals(&goals, a.json);
    say(format!(
        "{} of {} goals pass",
        goals.len() - failed,
        goals.len()
    ));
    if a.json {
        let report = DecodeReport {
            trace,
            loadavg: load,
            runs: a.runs.max(1),
            decode,
            goals,
        };
        println!(
            "{}",
            serde_json::to_string(&report).context("serialising the bench report")?
        );
    }
    Ok(if a.check && failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The goal table (stderr with `--json`).
fn print_goals(goals: &[Goal], json: bool) {
    macro_rules! say {
        ($($t:tt)*) => {
            if json { eprintln!($($t)*) } else { println!($($t)*) }
        };
    }
    say!("goals:");
    for g in goals {
        let fig = if g.figure >= 1e5 {
            format!("{:.2} M", g.figure / 1e6)
        } else {
            format!("{:.3}", g.figure)
        };
        let target = if g.target >= 1e5 {
            format!("{:.2} M", g.target / 1e6)
        } else {
            format!("{}", g.target)
        };
        say!(
            "  {:<28} {:>10}  goal {} {:<8} {}",
            g.name,
            fig,
            g.op,
            target,
            if g.pass { "pass" } else { "FAIL" }
        );
    }
}

/// Redirects this process's stdout to /dev/null until dropped (so `--json` keeps stdout to
/// the one JSON object while helpers print their per-run lines).
struct Gag(Option<i32>);

fn gag_stdout() -> Gag {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // SAFETY: dup/open/dup2 on valid descriptors; the saved descriptor is restored on drop.
    unsafe {
        let saved = libc::dup(1);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if saved < 0 || null < 0 {
            return Gag(None);
        }
        libc::dup2(null, 1);
        libc::close(null);
        Gag(Some(saved))
    }
}

impl Drop for Gag {
    fn drop(&mut self) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        if let Some(saved) = self.0 {
            // SAFETY: `saved` is the descriptor dup'ed in gag_stdout.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}
