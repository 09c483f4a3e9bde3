//! `mmreplay fidelity`: does the model predict what the capture kernel did? Per capture, the
//! kernel's own policy runs under the kernel's profile (`mmreplay::kernel`), and every row of
//! `mmreplay::observe::COUNTERS` is shown predicted vs logged, plus the first time window where
//! the running counts part by more than the tolerance (±25%, ±1 below 10), with its ops.
//! Exit 0 (reports only), 2 on bad input or usage.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use mmreplay::input_report::{
    splice_text, FactSource, Filters, InputReport, LostTracker, SidecarFacts,
};
use mmreplay::kernel::KernelChoice;
use mmreplay::lower::{LowerOptions, Lowering};
use mmreplay::observe::{within_tolerance, Observed, COUNTERS};
use mmreplay::session::DEFAULT_CPUS;
use mmreplay::source::Source;
use mmreplay_candidates::registry;
use mmreplay_reference::counters::Counters;
use mmreplay_reference::op::Op;
use serde_json::{json, Value};

use super::replay::{kernel_for, workload_pid, BUNDLED_META};

/// Ops of the diverging window kept for the report.
const MAX_WINDOW_OPS: usize = 40;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Captures (any format `replay` reads). None: the bundled capture.
    pub traces: Vec<String>,
    /// One JSON object per capture, one per line (schema `docs/schema/mmreplay.schema.json`).
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// Only tasks with this comm and their descendants.
    #[arg(long)]
    pub comm: Option<String>,
    /// Fail on unparsable lines, lost or overwritten events and an assumed CPU count, instead
    /// of counting and reporting them.
    #[arg(long)]
    pub strict: bool,
    /// The capture's kernel (`6.1`, `6.18`, any MAJOR.MINOR). Default: the sidecar's release.
    #[arg(long, value_name = "VERSION")]
    pub kernel: Option<String>,
    /// Only the recorded workload and its descendants (`workload_pid` from the sidecar).
    #[arg(long, conflicts_with = "pid")]
    pub workload: bool,
    /// Only this process (pid or tgid) and its descendants.
    #[arg(long)]
    pub pid: Option<i32>,
    /// The policy the model runs (default: the kernel's own, e.g. `all` for 6.1 and 6.18).
    #[arg(long)]
    pub policy: Option<String>,
    /// CPUs of the captured machine (default: capture header, sidecar, else 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: Option<u32>,
    /// Length of the windows in which running counts are compared, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub window_ms: u64,
    /// Print how each counter is observed and predicted, then exit.
    #[arg(long)]
    pub explain: bool,
}

/// Counts of every row at one point: name → (observed, predicted).
type Counts = BTreeMap<&'static str, (Option<u64>, Option<u64>)>;

fn counts(o: &Observed, c: &Counters) -> Counts {
    COUNTERS
        .iter()
        .map(|r| (r.name, ((r.observed)(o), (r.predicted)(c))))
        .collect()
}

fn counts_json(c: &Counts) -> Value {
    let mut m = serde_json::Map::new();
    for (k, (o, p)) in c {
        m.insert((*k).to_string(), json!({ "observed": o, "predicted": p }));
    }
    Value::Object(m)
}

/// The first goal counter outside the tolerance, in table order.
fn diverging(c: &Counts) -> Option<(&'static str, u64, u64)> {
    COUNTERS
        .iter()
        .filter(|r| r.goal)
        .find_map(|r| match c.get(r.name) {
            Some((Some(o), Some(p))) if !within_tolerance(*o, *p) => Some((r.name, *o, *p)),
            _ => None,
        })
}

struct Window {
    start_ns: u64,
    end_ns: u64,
    ops: Vec<Op>,
    n_ops: u64,
}

/// One capture's fidelity report.
fn one(trace: Option<&str>, a: &Args) -> anyhow::Result<(Value, InputReport)> {
    let kernel: KernelChoice = kernel_for(trace, a.kernel.as_deref())?;
    let pid = if a.workload {
        Some(workload_pid(trace)?)
    } else {
        a.pid
    };
    let mut src = Source::open_opt(trace, a.strict)?;
    let nr_cpus = a
        .cpus
        .or(src.nr_cpus())
        .or(kernel.nr_cpus)
        .unwrap_or(DEFAULT_CPUS)
        .clamp(1, 64);
    let cpus_source = if a.cpus.is_some() {
        FactSource::Option
    } else if src.nr_cpus().is_some() {
        FactSource::Capture
    } else if kernel.nr_cpus.is_some() {
        FactSource::Sidecar
    } else {
        FactSource::Assumed
    };
    let mut lost = LostTracker::default();
    let profile = kernel.profile(nr_cpus);
    let policy = a
        .policy
        .clone()
        .unwrap_or_else(|| kernel.own_policy.clone());
    let spec = registry::parse(&policy).map_err(|e| anyhow::anyhow!("--policy: {e}"))?;
    let mut engine = spec.build(&profile);
    let mut low = Lowering::new(LowerOptions {
        pid,
        comm: a.comm.clone(),
        nr_cpus,
        procs: mmreplay::session::procs_for(trace)?,
        access: mmreplay::session::access_for(trace)?,
    });
    let meta: Option<Value> = match trace {
        Some(t) => mmreplay::source::sidecar_text(t).and_then(|s| serde_json::from_str(&s).ok()),
        None => serde_json::from_str(BUNDLED_META).ok(),
    };
    if let Some(ev) = meta
        .as_ref()
        .and_then(|m| m.get("events_enabled"))
        .and_then(Value::as_array)
    {
        low.observed_mut()
            .set_enabled(ev.iter().filter_map(Value::as_str));
    }
    let window_ns = a.window_ms.max(1) * 1_000_000;
    let mut first_ts: Option<u64> = None;
    let mut win = Window {
        start_ns: 0,
        end_ns: window_ns,
        ops: Vec::new(),
        n_ops: 0,
    };
    let mut first_div: Option<Value> = None;
    let mut rejected = 0u64;
    let mut ops: Vec<Op> = Vec::new();
    let check = |low: &Lowering, c: &Counters, win: &Window, first: &mut Option<Value>| {
        if first.is_some() {
            return;
        }
        let now = counts(&low.stats().observed, c);
        if let Some((name, o, p)) = diverging(&now) {
            *first = Some(json!({
                "window_ms": [win.start_ns as f64 / 1e6, win.end_ns as f64 / 1e6],
                "counter": name,
                "observed": o,
                "predicted": p,
                "counters": counts_json(&now),
                "ops_in_window": win.n_ops,
                // In the litmus op language (`exec cpu=0 mm=1`): readable, and keys stay
                // snake_case (the model's `Op` serialises as `{"Exec": ...}`).
                "ops": win.ops.iter().map(mmreplay::litmus::format_op).collect::<Vec<_>>(),
            }));
        }
    };
    while let Some(r) = src.next_record()? {
        lost.see(&r);
        let base = *first_ts.get_or_insert(r.ts_ns);
        let rel = r.ts_ns.saturating_sub(base);
        while rel >= win.end_ns {
            check(&low, engine.counters(), &win, &mut first_div);
            win.start_ns = win.end_ns;
            win.end_ns += window_ns;
            win.ops.clear();
            win.n_ops = 0;
        }
        low.push(&r, &mut ops);
        for op in ops.drain(..) {
            if engine.apply(&op).is_err() {
                rejected += 1;
            }
            // Context switches and clock ticks are counted, not listed.
            let listed = !matches!(op, Op::Clock { .. } | Op::Switch { .. });
            if win.ops.len() < MAX_WINDOW_OPS && listed {
                win.ops.push(op);
            }
            win.n_ops += 1;
        }
    }
    low.finish(&mut ops);
    for op in ops.drain(..) {
        if engine.apply(&op).is_err() {
            rejected += 1;
        }
        win.n_ops += 1;
    }
    check(&low, engine.counters(), &win, &mut first_div);
    engine.finish();
    let stats = low.into_stats();
    let mut input = InputReport::new(
        (nr_cpus, cpus_source),
        SidecarFacts::of(trace),
        Filters {
            pid,
            comm: a.comm.clone(),
            workload: a.workload,
        },
        lost.finish(),
        src.diagnostics().as_ref(),
    );
    input.kernel = Some(kernel.profile.clone());
    input.kernel_source = mmreplay::input_report::kernel_source(&kernel);
    input.filtered_out = stats.filtered_out;
    input.matched = stats.matched;
    let name = src.name().to_string();
    mmreplay::session::check_input(&name, &stats, &input, a.strict)?;
    if let (Some(d), Some(base)) = (first_div.as_mut(), first_ts) {
        mmreplay::lost_windows::mark_divergence(d, base, &input.lost.not_comparable_for_fidelity);
    }
    let mut approximations = stats.approximations.clone();
    if cpus_source == FactSource::Assumed {
        approximations.insert("nr_cpus_assumed".into(), u64::from(nr_cpus));
    }
    let total = counts(&stats.observed, engine.counters());
    let outside: Vec<&str> = COUNTERS
        .iter()
        .filter(
            |r| matches!(total.get(r.name), Some((Some(o), Some(p))) if !within_tolerance(*o, *p)),
        )
        .map(|r| r.name)
        .collect();
    let mut counters = counts_json(&total);
    // The kernel's own counts (6.1 IPI receipts, kprobe rmap/unmap/look-around hits, reclaimed
    // pages): `kernel_counts`, null where the capture cannot show them. A filtered run cannot
    // attribute IPI receipts (logged in whatever task the interrupt hit).
    // The sidecar's `events_enabled` says what was recorded: a probe enabled but never hit
    // (no remote flush_tlb_func call at all) is an observed 0, not unknown.
    let enabled: Option<Vec<String>> = meta
        .as_ref()
        .and_then(|m| m.get("events_enabled"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    let mut kc = stats.kernel.observed(enabled.as_deref());
    if stats.filtered_out > 0 {
        kc.forget_receipts();
    }
    if let (Some(m), Value::Object(extra)) =
        (counters.as_object_mut(), kc.json(Some(engine.counters())))
    {
        for (name, v) in extra {
            if name != "ipi_view" {
                m.insert(
                    name,
                    json!({ "observed": v["observed"], "predicted": v["predicted"] }),
                );
            }
        }
    }
    let mut k = serde_json::to_value(&kernel)?;
    if let Some(m) = k.as_object_mut() {
        m.insert("mechanics".into(), serde_json::to_value(&profile)?);
    }
    let mut v = json!({
        "trace": src.name(),
        "kernel": k,
        "policy": spec.name(),
        "cpus": nr_cpus,
        "workload_pid": pid,
        "records": stats.records,
        "ops": stats.ops,
        "ops_rejected": rejected,
        "filtered_out": stats.filtered_out,
        "unplaced": stats.unplaced,
        "approximations": approximations,
        "input": input,
        "filters": input.filters,
        "counters": counters,
        "outside_tolerance": outside,
        "first_divergence": first_div,
    });
    mmreplay::json_schema::envelope("fidelity", &mut v);
    Ok((v, input))
}

fn cell(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".to_string(), |n| n.to_string())
}

fn text(v: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let k = &v["kernel"];
    let _ = writeln!(
        s,
        "trace: {} (kernel {} from {}{}; policy {}; {} CPUs{})",
        v["trace"].as_str().unwrap_or("?"),
        k["profile"].as_str().unwrap_or("?"),
        k["source"].as_str().unwrap_or("?"),
        k["release"]
            .as_str()
            .map_or(String::new(), |r| format!(", release {r}")),
        v["policy"].as_str().unwrap_or("?"),
        v["cpus"],
        v["workload_pid"]
            .as_i64()
            .map_or(String::new(), |p| format!("; workload pid {p}")),
    );
    let _ = writeln!(
        s,
        "{:40} {:>10} {:>10} {:>8}  within ±25% (±1 below 10)",
        "counter", "observed", "predicted", "ratio"
    );
    for r in COUNTERS {
        let c = &v["counters"][r.name];
        let (o, p) = (c["observed"].as_u64(), c["predicted"].as_u64());
        let (ratio, ok) = match (o, p) {
            (Some(o), Some(p)) => (
                mmreplay::report::ratio(p, o),
                if within_tolerance(o, p) { "yes" } else { "NO" },
            ),
            (Some(_), None) => ("-".to_string(), "not predicted"),
            _ => ("-".to_string(), "not logged"),
        };
        let _ = writeln!(
            s,
            "{:40} {:>10} {:>10} {:>8}  {}",
            r.name,
            cell(&c["observed"]),
            cell(&c["predicted"]),
            ratio,
            ok
        );
    }
    // The kernel's own counts (`kernel_counts`), where the capture shows them.
    for name in mmreplay::kernel_counts::PREDICTED_BY
        .iter()
        .map(|(n, _)| *n)
    {
        let c = &v["counters"][name];
        if let (Some(o), Some(p)) = (c["observed"].as_u64(), c["predicted"].as_u64()) {
            let sched = v["counters"]["ipi_receipts_sched"]["observed"].as_u64();
            let ok = match sched {
                // All receipts include the scheduler's, which the model does not run: the
                // like-for-like figure is the next line's.
                Some(n) if name == "ipi_receipts" && n > 0 && !within_tolerance(o, p) => {
                    format!("- ({n} are the scheduler's: see ipi_receipts_mm)")
                }
                _ if within_tolerance(o, p) => "yes".to_string(),
                _ => "NO".to_string(),
            };
            let _ = writeln!(
                s,
                "{:40} {:>10} {:>10} {:>8}  {}",
                name,
                o,
                p,
                mmreplay::report::ratio(p, o),
                ok
            );
        }
    }
    for (name, why) in mmreplay::kernel_counts::NOT_MODELLED {
        if let Some(o) = v["counters"][*name]["observed"].as_u64() {
            let _ = writeln!(
                s,
                "{:40} {:>10} {:>10} {:>8}  not modelled: {}",
                name, o, "-", "-", why
            );
        }
    }
    match v["first_divergence"].as_object() {
        None => {
            let _ = writeln!(
                s,
                "first divergence: none (running counts stay within tolerance)"
            );
        }
        Some(d) => {
            let w = &d["window_ms"];
            let _ = writeln!(
                s,
                "first divergence: window {:.0}-{:.0} ms: {} observed {} predicted {} ({} ops in the window; the first, without switches:)",
                w[0].as_f64().unwrap_or(0.0),
                w[1].as_f64().unwrap_or(0.0),
                d["counter"].as_str().unwrap_or("?"),
                cell(&d["observed"]),
                cell(&d["predicted"]),
                d["ops_in_window"],
            );
            if d.get("lost_events_in_window").is_some() {
                let _ = writeln!(
                    s,
                    "  (not comparable: events were lost in this window, see `lost:` above)"
                );
            }
            for op in d["ops"].as_array().into_iter().flatten().take(12) {
                let _ = writeln!(s, "  {}", op.as_str().unwrap_or("?"));
            }
        }
    }
    s
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.explain {
        for r in COUNTERS {
            println!("{}: {}", r.name, r.how);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let inputs: Vec<Option<String>> = if a.traces.is_empty() {
        vec![None]
    } else {
        a.traces.iter().cloned().map(Some).collect()
    };
    let mut code = 0u8;
    let mut out = std::io::stdout().lock();
    for t in &inputs {
        let printed = match one(t.as_deref(), &a) {
            Ok((v, _)) if a.json && a.pretty => {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)
            }
            Ok((v, _)) if a.json => writeln!(out, "{}", serde_json::to_string(&v)?),
            Ok((v, input)) => writeln!(out, "{}", splice_text(&text(&v), &input.text())),
            Err(e) => {
                eprintln!(
                    "mmreplay fidelity: error: {}",
                    mmreplay::errors::chain_anyhow(&e)
                );
                code = 2;
                Ok(())
            }
        };
        // A closed pipe (`| head`) ends the output quietly; a failing stdout is an error.
        match printed {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(anyhow::Error::new(e).context("<stdout>: cannot write")),
            Ok(()) => {}
        }
    }
    Ok(ExitCode::from(code))
}
