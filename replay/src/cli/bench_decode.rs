//! The decode goals of `mmreplay bench TRACE` (issue 15 items 3 and 6): `mmreplay stats TRACE`
//! timed beside the tool it replaces on the same file in the same run: `perf script` for a
//! perf.data, `trace-cmd report` for a trace.dat (when installed), `wc -l` for uncompressed
//! text. Each command runs as a child process, alternating (mmreplay, baseline, mmreplay, ...),
//! measured by the kernel's own accounting of the finished child (`wait4`: user + system CPU
//! time, peak RSS), so a shared machine's load shows as wall time, not as CPU time. Figures:
//! events/s and MB/s on CPU time, the pairwise CPU-time ratio (median), peak RSS of both.
//!
//! It must never be used as a test (timings are printed, not asserted) and never reads the
//! capture itself: the children do.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

/// What one finished child used.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ProcRun {
    /// User + system CPU seconds.
    pub cpu_s: f64,
    pub wall_s: f64,
    /// Peak resident set (`ru_maxrss`), KiB.
    pub peak_rss_kb: u64,
}

/// One command's runs and their medians.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcFigures {
    /// The command line (the capture's path as given).
    pub command: String,
    pub runs: Vec<ProcRun>,
    /// Medians of `runs`.
    pub cpu_s: f64,
    pub wall_s: f64,
    pub peak_rss_kb: u64,
}

/// The decode figures of one capture (`decode` in `bench --json`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DecodeFigures {
    pub trace: String,
    /// The format `mmreplay stats` read it as.
    pub format: String,
    /// Bytes of the file as stored.
    pub bytes: u64,
    /// Records `mmreplay stats` counted.
    pub records: u64,
    pub mmreplay: ProcFigures,
    /// `perf script`, `trace-cmd report` or `wc -l` on the same file; null when none applies
    /// or the tool is not installed (`baseline_missing` says why).
    pub baseline: Option<ProcFigures>,
    pub baseline_missing: Option<String>,
    /// Records per CPU second: mmreplay, and the baseline on the same records.
    pub events_per_s: f64,
    pub baseline_events_per_s: Option<f64>,
    /// Baseline CPU time over mmreplay's, pair by pair: median, smallest, largest.
    pub speedup: Option<f64>,
    pub speedup_min: Option<f64>,
    pub speedup_max: Option<f64>,
    /// Text only: MB (10^6 bytes) of the file per CPU second, mmreplay and `wc -l`.
    pub mb_per_s: Option<f64>,
    pub baseline_mb_per_s: Option<f64>,
    /// mmreplay's median peak RSS over the baseline's.
    pub rss_ratio: Option<f64>,
}

/// Runs `cmd` to its end with stdout and stderr thrown away; the kernel's accounting of it.
fn measure(cmd: &mut Command) -> anyhow::Result<ProcRun> {
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 only writes the two out-pointers.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break r;
        }
    };
    let wall_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        r == pid,
        "waiting for {cmd:?}: {}",
        std::io::Error::last_os_error()
    );
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (wait status {status:#x})"
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok(ProcRun {
        cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
        wall_s,
        peak_rss_kb: ru.ru_maxrss.max(0) as u64,
    })
}

/// Median of `xs` (the upper one of an even count); 0 for none.
fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn figures(command: String, runs: Vec<ProcRun>) -> ProcFigures {
    ProcFigures {
        command,
        cpu_s: median(runs.iter().map(|r| r.cpu_s)),
        wall_s: median(runs.iter().map(|r| r.wall_s)),
        peak_rss_kb: median(runs.iter().map(|r| r.peak_rss_kb as f64)) as u64,
        runs,
    }
}

/// Whether `tool` is an executable file on `PATH` (`trace-cmd --version` exits non-zero, so
/// running it says nothing).
fn installed(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The tool `mmreplay stats` replaces for `format`, as a command line over `trace`; or why none.
fn baseline_for(format: &str, trace: &str, zstd: bool) -> Result<Vec<String>, String> {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match format {
        "perf.data" if zstd => Err("an outer zstd layer: perf script cannot read it".into()),
        "perf.data" if installed("perf") => Ok(v(&["perf", "script", "-i", trace])),
        "perf.data" => Err("perf is not installed".into()),
        "trace.dat" if zstd => Err("an outer zstd layer: trace-cmd cannot read it".into()),
        "trace.dat" if installed("trace-cmd") => Ok(v(&["trace-cmd", "report", trace])),
        "trace.dat" => Err("trace-cmd is not installed".into()),
        "ftrace" | "trace-cmd" | "perf-script" if zstd => {
            Err("zstd-compressed text: MB/s is measured on plain text only".into())
        }
        "ftrace" | "trace-cmd" | "perf-script" => Ok(v(&["wc", "-l", trace])),
        other => Err(format!("no baseline tool for {other}")),
    }
}

/// Measures `trace`'s decode, `runs` pairs; `say` prints a line (stdout or stderr).
pub fn measure_decode(
    exe: &Path,
    trace: &str,
    runs: u32,
    say: &dyn Fn(String),
) -> anyhow::Result<DecodeFigures> {
    let bytes = std::fs::metadata(trace)
        .with_context(|| format!("{trace}: cannot read"))?
        .len();
    let zstd = {
        use std::io::Read as _;
        let mut head = [0u8; 4];
        std::fs::File::open(trace)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && head == mmreplay_parsers::binary::ZSTD_MAGIC
    };
    // One untimed run that says what the file is (and warms the page cache for both tools).
    let out = Command::new(exe)
        .args(["stats", "--json", trace])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running mmreplay stats")?;
    anyhow::ensure!(
        out.status.success(),
        "{trace}: mmreplay stats failed ({})",
        out.status
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading mmreplay stats --json")?;
    let format = v["format"].as_str().unwrap_or("unknown").to_string();
    let records = v["records"].as_u64().unwrap_or(0);
    let base = baseline_for(&format, trace, zstd);
    let mm_cmd = format!("{} stats {trace}", exe.display());
    say(format!(
        "decode: {trace} ({format}, {bytes} bytes, {records} records): `mmreplay stats` vs {}, {runs} pairs, CPU time (user+sys) and peak RSS of each child",
        match &base {
            Ok(b) => format!("`{}`", b.join(" ")),
            Err(why) => format!("no baseline ({why})"),
        }
    ));
    if let Ok(b) = &base {
        // Warm the baseline's reads too, so neither side pays the first read from disk.
        let _ = measure(Command::new(&b[0]).args(&b[1..]));
    }
    let (mut mm, mut bl) = (Vec::new(), Vec::new());
    for i in 0..runs.max(1) {
        let m = measure(Command::new(exe).args(["stats", trace]))?;
        let line = match &base {
            Ok(b) => {
                let r = measure(Command::new(&b[0]).args(&b[1..]))?;
                bl.push(r);
                format!(
                    " | {} {:.3}s cpu {:.3}s wall {} KiB = {:.1}x cpu",
                    b[0],
                    r.cpu_s,
                    r.wall_s,
                    r.peak_rss_kb,
                    r.cpu_s / m.cpu_s.max(1e-9)
                )
            }
            Err(_) => String::new(),
        };
        say(format!(
            "  run {}: mmreplay {:.3}s cpu {:.3}s wall {} KiB{line}",
            i + 1,
            m.cpu_s,
            m.wall_s,
            m.peak_rss_kb
        ));
        mm.push(m);
    }
    let ratios: Vec<f64> = bl
        .iter()
        .zip(&mm)
        .map(|(b, m)| b.cpu_s / m.cpu_s.max(1e-9))
        .collect();
    let mmf = figures(mm_cmd, mm);
    let text = matches!(format.as_str(), "ftrace" | "trace-cmd" | "perf-script");
    let mb = |cpu: f64| bytes as f64 / 1e6 / cpu.max(1e-9);
    let mut d = DecodeFigures {
        trace: trace.to_string(),
        format,
        bytes,
        records,
        events_per_s: records as f64 / mmf.cpu_s.max(1e-9),
        mb_per_s: text.then(|| mb(mmf.cpu_s)),
        ..DecodeFigures::default()
    };
    match base {
        Ok(b) => {
            let bf = figures(b.join(" "), bl);
            d.speedup = Some(median(ratios.iter().copied()));
            d.speedup_min = ratios.iter().copied().reduce(f64::min);
            d.speedup_max = ratios.iter().copied().reduce(f64::max);
            d.baseline_events_per_s = Some(records as f64 / bf.cpu_s.max(1e-9));
            d.baseline_mb_per_s = text.then(|| mb(bf.cpu_s));
            d.rss_ratio = Some(mmf.peak_rss_kb as f64 / bf.peak_rss_kb.max(1) as f64);
            say(format!(
                "  median: mmreplay {:.3}s cpu, {:.2} M events/s{}, peak {} KiB | {} {:.3}s cpu, {:.2} M events/s{}, peak {} KiB | {:.1}x cpu (pairs: {:.1}x..{:.1}x), RSS {:.2}x",
                mmf.cpu_s,
                d.events_per_s / 1e6,
                d.mb_per_s.map_or(String::new(), |m| format!(", {m:.0} MB/s")),
                mmf.peak_rss_kb,
                b[0],
                bf.cpu_s,
                d.baseline_events_per_s.unwrap_or(0.0) / 1e6,
                d.baseline_mb_per_s.map_or(String::new(), |m| format!(", {m:.0} MB/s")),
                bf.peak_rss_kb,
                d.speedup.unwrap_or(0.0),
                d.speedup_min.unwrap_or(0.0),
                d.speedup_max.unwrap_or(0.0),
                d.rss_ratio.unwrap_or(0.0),
            ));
            d.baseline = Some(bf);
        }
        Err(why) => {
            say(format!(
                "  median: mmreplay {:.3}s cpu, {:.2} M events/s, peak {} KiB (no baseline: {why})",
                mmf.cpu_s,
                d.events_per_s / 1e6,
                mmf.peak_rss_kb
            ));
            d.baseline_missing = Some(why);
        }
    }
    d.mmreplay = mmf;
    Ok(d)
}

/// The goals of one decode measurement: `(name, figure)`, named by the baseline
/// (`decode_speedup.perf_script`, `decode_rss_ratio.trace_cmd_report`, `text_mb_per_s`).
pub fn goal_figures(d: &DecodeFigures) -> Vec<(String, f64)> {
    let mut v = Vec::new();
    let Some(b) = &d.baseline else {
        return v;
    };
    let tool = match b.command.split_whitespace().next().unwrap_or("") {
        "perf" => "perf_script",
        "trace-cmd" => "trace_cmd_report",
        _ => "wc_l",
    };
    if tool == "wc_l" {
        if let Some(m) = d.mb_per_s {
            v.push(("text_mb_per_s".to_string(), m));
        }
        return v;
    }
    if let Some(s) = d.speedup {
        v.push((format!("decode_speedup.{tool}"), s));
    }
    if let Some(r) = d.rss_ratio {
        v.push((format!("decode_rss_ratio.{tool}"), r));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_by_its_own_accounting() {
        // A child that burns CPU: its CPU time is seen, a sleeping one's is not.
        let busy = measure(
            Command::new("sh").args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]),
        )
        .unwrap();
        let idle = measure(Command::new("sleep").arg("0.2")).unwrap();
        assert!(busy.cpu_s > idle.cpu_s, "{busy:?} vs {idle:?}");
        assert!(idle.wall_s >= 0.2, "{idle:?}");
        assert!(busy.peak_rss_kb > 0);
        assert!(measure(&mut Command::new("false")).is_err());
    }

    #[test]
    fn baselines_by_format() {
        assert_eq!(
            baseline_for("ftrace", "x.trace", false).unwrap(),
            ["wc", "-l", "x.trace"]
        );
        assert!(baseline_for("ftrace", "x.trace.zst", true).is_err());
        assert!(baseline_for("raw-dir", "d", false).is_err());
        assert!(installed("sh"));
        assert!(!installed("mmreplay-no-such-tool"));
        let d = DecodeFigures {
            baseline: Some(ProcFigures {
                command: "trace-cmd report x".into(),
                ..ProcFigures::default()
            }),
            speedup: Some(21.0),
            rss_ratio: Some(0.5),
            ..DecodeFigures::default()
        };
        assert_eq!(
            goal_figures(&d),
            vec![
                ("decode_speedup.trace_cmd_report".to_string(), 21.0),
                ("decode_rss_ratio.trace_cmd_report".to_string(), 0.5)
            ]
        );
    }

    /// `decode` of `bench --json`, with and without a baseline, matches `$defs/bench_decode`.
    #[test]
    fn json_matches_the_schema() {
        let schema = mmreplay::json_schema::schema();
        let def = serde_json::json!({ "$defs": schema["$defs"], "$ref": "#/$defs/bench_decode" });
        let run = ProcRun {
            cpu_s: 1.5,
            wall_s: 2.0,
            peak_rss_kb: 30_000,
        };
        let with = DecodeFigures {
            trace: "x.perf.data".into(),
            format: "perf.data".into(),
            bytes: 10,
            records: 5,
            mmreplay: figures("mmreplay stats x".into(), vec![run]),
            baseline: Some(figures("perf script -i x".into(), vec![run])),
            events_per_s: 3.3,
            baseline_events_per_s: Some(1.0),
            speedup: Some(4.0),
            speedup_min: Some(3.0),
            speedup_max: Some(5.0),
            rss_ratio: Some(0.1),
            ..DecodeFigures::default()
        };
        let without = DecodeFigures {
            baseline_missing: Some("perf is not installed".into()),
            ..DecodeFigures::default()
        };
        for d in [with, without] {
            let v = serde_json::to_value(&d).unwrap();
            let errs = mmreplay::json_schema::validate(&def, &v);
            assert!(errs.is_empty(), "{errs:?}");
        }
        // A key the schema does not know is refused (the check can fail).
        let mut v = serde_json::to_value(DecodeFigures::default()).unwrap();
        v["surprise"] = serde_json::json!(1);
        assert!(!mmreplay::json_schema::validate(&def, &v).is_empty());
    }
}
