//! `mmreplay bench [TRACE]`: replay throughput and streaming memory, with baselines printed
//! beside them in the same run (ARCHITECTURE.md §8). Measures: parse (text) vs read (compiled
//! `.mmr`), lowering alone, each policy alone on one thread (ops/s), all policies on 1 vs 2
//! threads, and peak RSS (VmHWM) of a streaming replay of the capture once vs concatenated 10
//! times (each in a child process, so the peaks are independent).
//!
//! It must never be used as a test (timings are printed, not asserted).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use mmreplay::corpus::{CompiledHeader, Writer};
use mmreplay::engine::{self, EngineConfig};
use mmreplay::lower::LowerOptions;
use mmreplay::session::{self, DEFAULT_CPUS};
use mmreplay::source::{Source, BUNDLED};
use mmreplay_parsers::record::Record;
use mmreplay_reference::op::Op;
use rayon::prelude::*;

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
    while let Some(r) = src.next_record()? {
        records += 1;
        fold = fold.rotate_left(7)
            ^ r.ts_ns
            ^ (u64::from(r.cpu) << 48)
            ^ (r.pid as u64)
            ^ (r.event.name().len() as u64);
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
fn compare_text_mmr(trace: Option<&str>, name: &str, runs: u32) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("mmreplay-bench-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mmr = dir.join("bench.mmr").display().to_string();
    let res = (|| -> anyhow::Result<()> {
        let mut src = Source::open_opt(trace, false)?;
        let mut w = Writer::create(
            Path::new(&mmr),
            &CompiledHeader {
                source: name.to_string(),
                format: src.format().to_string(),
                nr_cpus: src.nr_cpus(),
            },
        )?;
        while let Some(r) = src.next_record()? {
            w.push(r)?;
        }
        w.finish()?;
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
            "  .mmr vs text: {:.1}x wall, {:.1}x cpu (best of {runs}; goal >= 5x)",
            tw / cw.max(1e-9),
            tc / cc.max(1e-9)
        );
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
        Ok(())
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

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if let Some(n) = a.rss_child {
        return rss_child(a.trace.as_deref(), n, &a.policies);
    }
    let name = a.trace.clone().unwrap_or_else(|| "<bundled>".into());
    if a.io_only {
        println!("bench: {name}");
        compare_text_mmr(a.trace.as_deref(), &name, a.io_runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let specs = session::specs(&a.policies)?;
    println!("bench: {name}");

    // 1. Parse (text) vs read (compiled).
    let t = Instant::now();
    let (records, cpus) = read_all(a.trace.as_deref())?;
    let parse_s = t.elapsed().as_secs_f64();
    let nr_cpus = cpus.unwrap_or(DEFAULT_CPUS);
    let lru = bench_lru(a.trace.as_deref());
    let dir = std::env::temp_dir().join(format!("mmreplay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mmr = dir.join("bench.mmr");
    let mut w = Writer::create(
        &mmr,
        &CompiledHeader {
            source: name.clone(),
            format: "bench".into(),
            nr_cpus: cpus,
        },
    )?;
    for r in &records {
        w.push(r.clone())?;
    }
    w.finish()?;
    let t = Instant::now();
    let mut src = Source::open(&mmr.display().to_string(), false)?;
    let mut n = 0u64;
    while src.next_record()?.is_some() {
        n += 1;
    }
    let read_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "records: {} ; parse capture {:.3}s ({}) vs read compiled .mmr {:.3}s ({}) = {:.1}x",
        records.len(),
        parse_s,
        rate(records.len() as u64, parse_s),
        read_s,
        rate(n, read_s),
        parse_s / read_s.max(1e-9)
    );

    // 1b. The same, end to end as `replay` sees it: text vs .mmr, best of several runs.
    compare_text_mmr(a.trace.as_deref(), &name, a.io_runs)?;

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
        lower,
    )?;
    let lower_s = t.elapsed().as_secs_f64();
    println!(
        "lowering alone: {} records -> {} ops in {:.3}s ({} ops)",
        stats.records,
        ops.len(),
        lower_s,
        rate(ops.len() as u64, lower_s)
    );
    let nops = ops.len() as u64;

    // 3. Each policy alone, one thread (pure apply over an in-memory op vector).
    let apply = |e: &mut (dyn mmreplay_reference::Engine + Send), ops: &[Op]| {
        for op in ops {
            let _ = e.apply(op);
        }
    };
    let mut single_total = 0.0;
    for spec in &specs {
        let mut e = session::build_lru(std::slice::from_ref(spec), nr_cpus, lru);
        let Some(e) = e.first_mut() else { continue };
        let t = Instant::now();
        apply(&mut **e, &ops);
        let s = t.elapsed().as_secs_f64();
        single_total += s;
        println!("  {:<16} 1 thread: {:.3}s  {}", e.name(), s, rate(nops, s));
    }

    // 4. All policies: one after the other on one thread vs in parallel on two.
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let mut engines = session::build_lru(&specs, nr_cpus, lru);
        let t = Instant::now();
        pool.install(|| engines.par_iter_mut().for_each(|e| apply(&mut **e, &ops)));
        let s = t.elapsed().as_secs_f64();
        println!(
            "all {} policies, {threads} thread(s): {:.3}s, {} policy-ops ({:.2}x the sum of single runs {:.3}s)",
            specs.len(),
            s,
            rate(nops * specs.len() as u64, s),
            single_total / s.max(1e-9),
            single_total
        );
    }

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
                println!("streaming replay x{repeat}: {ops} ops, peak RSS (VmHWM) {kb} kB");
                peaks.push(*kb);
            }
            _ => println!(
                "streaming replay x{repeat}: child failed: {} {}",
                line,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }
    if let [one, ten] = peaks.as_slice() {
        println!(
            "peak RSS x10 / x1 = {:.2} (goal < 1.5)",
            *ten as f64 / (*one).max(1) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}
