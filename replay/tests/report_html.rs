//! `mmreplay report`: the page is self-contained (no network reference), deterministic, holds
//! one line per policy for every plotted counter, and `--json` gives the same data. The
//! browser test (ignored unless run with `--ignored`: it needs /usr/bin/chromium; `.ci/run`
//! installs and runs it) loads the page of a corpus capture in headless Chromium, fails on
//! any console message or uncaught error, reads the DOM after the inline script ran, checks
//! the drawn series by name and policy, and takes a screenshot that must not be blank.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");
/// The policies `report` replays by default: the registry's list (a new candidate gets its
/// lines as soon as its registry line exists).
fn policies() -> Vec<&'static str> {
    mmreplay_candidates::registry::default_list()
        .split(',')
        .collect()
}

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

fn report(trace: &str, out: &Path) -> String {
    let o = Command::new(BIN)
        .args(["report", trace, "-o", &out.display().to_string()])
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(out).expect("report written")
}

#[test]
fn report_is_self_contained_deterministic_and_complete() {
    let d = tmpdir("static");
    let trace = corpus("hugetlb-share-conc.trace.zst");
    let a = report(&trace, &d.join("a.html"));
    let b = report(&trace, &d.join("b.html"));
    assert_eq!(a, b, "same input, same page");
    for bad in ["http:", "https:", "src=", "href=", "@import", "url("] {
        assert!(!a.contains(bad), "the page references `{bad}`");
    }
    for (counter, _) in mmreplay::html::SERIES {
        for p in policies() {
            let needle = format!("data-series=\"{counter}\" data-policy=\"{p}\"");
            assert!(a.contains(&needle), "no line {needle}");
        }
    }
    assert!(a.contains("data-heatmap="));
    // The input facts the text report prints (cpus, kernel, clock with their sources; lines,
    // unparsed, skipped; lost and overwritten events; filters) are on the page, line for line.
    let text = Command::new(BIN)
        .args(["replay", &trace])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let facts: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("input: ") || l.starts_with("lost: ") || l.starts_with("filter: ")
        })
        .collect();
    assert!(facts.len() >= 2, "{text}");
    for f in facts {
        assert!(a.contains(f), "the page lacks the text report's line {f:?}");
    }
    assert!(a.contains("data-verdict=\"batched-unshare\""));
    assert!(a.contains("diverged_within_contract"));
    // The batched-unshare divergence is located: its window shows the ops around it.
    assert!(
        a.contains("data-window=\"batched-unshare\""),
        "no diverging window"
    );

    // --json carries the same data.
    let o = Command::new(BIN)
        .args(["report", &trace, "--json"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("json");
    assert_eq!(
        v["policies"].as_array().map(Vec::len),
        Some(policies().len())
    );
    let series = v["series"].as_array().expect("series");
    assert_eq!(series.len(), mmreplay::html::SERIES.len());
    let table_sync = series
        .iter()
        .find(|s| s["counter"] == "ipi_sends_table_sync")
        .expect("table sync series");
    // The last point of each line is the final counter: reference 6, batched-unshare 1.
    let last = |i: usize| {
        table_sync["points"][i]
            .as_array()
            .and_then(|p| p.last())
            .cloned()
    };
    assert_eq!(last(0).map(|p| p[1].clone()), Some(serde_json::json!(6)));
    assert_eq!(last(3).map(|p| p[1].clone()), Some(serde_json::json!(1)));
    assert!(series.iter().all(|s| s["points"][0]
        .as_array()
        .is_some_and(|p| p.len() as u64 <= mmreplay::html::MAX_POINTS + 2)));
    let windows = v["windows"].as_array().expect("windows");
    // Only counters differ for batched-unshare: its window is where one first does.
    assert!(windows.iter().any(|w| w["candidate"] == "batched-unshare"
        && w["kind"] == "counters"
        && w["ops"].as_array().is_some_and(|o| !o.is_empty())));
    let _ = std::fs::remove_dir_all(&d);
}

/// The plots and the counters table come from the same one replay: every line ends at the
/// table's final value (a separate sampled replay with the default kernel profile once drew
/// 12 327 evictions over a table of 10 332 on the tour; 6.18's reclaim on reclaim-swap), and
/// the heatmap holds every access and fault of the op stream, in at most HEAT_COLS columns.
#[test]
fn report_series_end_at_the_counters_table() {
    let trace = corpus("reclaim-swap.trace.zst");
    let o = Command::new(BIN)
        .args(["report", &trace, "--json"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("json");
    let counters = v["counters"].as_array().expect("counters");
    let ops = v["ops"].as_u64().expect("ops");
    for s in v["series"].as_array().expect("series") {
        let table = counters
            .iter()
            .find(|c| c[0] == s["counter"])
            .map(|c| c[1].clone())
            .expect("counter in the table");
        let ends: Vec<serde_json::Value> = s["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| p.as_array().and_then(|p| p.last()).expect("a point")[1].clone())
            .collect();
        assert_eq!(serde_json::Value::from(ends), table, "{}", s["counter"]);
        for p in s["points"].as_array().expect("points") {
            let p = p.as_array().expect("line");
            assert!(p.len() as u64 <= mmreplay::html::MAX_POINTS + 2);
            assert_eq!(p.last().map(|x| x[0].clone()), Some(ops.into()));
        }
    }
    let h = &v["heatmap"];
    let cells: u64 = h["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .flat_map(|r| r.as_array().expect("row").iter())
        .map(|c| c.as_u64().expect("count"))
        .sum();
    let accesses: u64 = v["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| p["accesses"].as_u64().expect("accesses"))
        .sum();
    assert!(v["processes_total"].as_u64() <= Some(mmreplay::html::MAX_PROCESSES as u64));
    assert_eq!(cells, accesses, "every access in one cell");
    assert!(h["cols"].as_u64() <= Some(mmreplay::html::HEAT_COLS));
    assert!(h["cols"]
        .as_u64()
        .zip(h["ops_per_col"].as_u64())
        .is_some_and(|(c, n)| c * n >= ops));
}

#[test]
fn report_bad_input_exits_2() {
    let o = Command::new(BIN)
        .args(["report", "/nonexistent.trace", "-o", "/tmp/never.html"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(!Path::new("/tmp/never.html").exists());
}

fn chromium(args: &[&str]) -> (String, String) {
    // One profile per browser: tests run in parallel threads of one process, and a second
    // chromium on a profile in use hands its work to the first and prints nothing.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let profile = tmpdir(&format!("chromium-profile-{n}"));
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .output()
        .expect("chromium runs (is it installed?)");
    let _ = std::fs::remove_dir_all(&profile);
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs chromium"]
fn report_renders_in_headless_chromium() {
    let d = tmpdir("chromium");
    let page = d.join("report.html");
    report(&corpus("reclaim-swap.trace.zst"), &page);
    let url = format!("file://{}", page.display());
    let (dom, log) = chromium(&["--dump-dom", &url]);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console output: {console:#?}");
    // The inline script ran and found one line per policy for every chart.
    let expected = mmreplay::html::SERIES.len() * policies().len();
    assert!(
        dom.contains(&format!("data-ok=\"1\" data-series=\"{expected}\"")),
        "status: {:?}",
        dom.split("id=\"status\"")
            .nth(1)
            .map(|s| s.chars().take(120).collect::<String>())
    );
    for p in policies() {
        assert!(dom.contains(&format!("data-series=\"evictions\" data-policy=\"{p}\"")));
    }
    assert!(dom.contains("data-verdict=\"lookaround\""));
    // A screenshot that is not blank: the PNG of a page with plots and a heatmap is far
    // larger than that of an empty page.
    let shot = d.join("shot.png");
    let _ = chromium(&[
        "--window-size=1400,2400",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let blank = d.join("blank.html");
    std::fs::write(&blank, "<html><body></body></html>").expect("write");
    let blank_shot = d.join("blank.png");
    let _ = chromium(&[
        "--window-size=1400,2400",
        &format!("--screenshot={}", blank_shot.display()),
        &format!("file://{}", blank.display()),
    ]);
    let blank_len = std::fs::metadata(&blank_shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        png.len() as u64 > 10 * blank_len.max(1),
        "screenshot {} bytes vs blank {blank_len}",
        png.len()
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Every label of every chart lies inside its SVG, measured by the browser (`getBBox`, counted
/// by the page's script into `data-clipped`), for maxima of every magnitude: the 100 M-record
/// capture's 266,809 was drawn as "66809" with its first digit cut off by the left edge. The
/// page is a corpus capture's report with each series scaled to a larger maximum.
#[test]
#[ignore = "needs chromium"]
fn large_axis_labels_are_not_clipped_in_headless_chromium() {
    let d = tmpdir("chromium-labels");
    let o = mmreplay::session::SessionOptions {
        policies: policies().iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let mut t =
        mmreplay::html::build(Some(&corpus("reclaim-swap.trace.zst")), &o).expect("report built");
    let maxima = [266_809u64, 9_999_999, 123_456_789_012, u64::MAX / 3];
    for (k, s) in t.series.iter_mut().enumerate() {
        let want = maxima[k % maxima.len()];
        let max = s
            .points
            .iter()
            .flatten()
            .map(|p| p.1)
            .max()
            .unwrap_or(0)
            .max(1);
        for (_, y) in s.points.iter_mut().flatten() {
            *y = ((u128::from(*y) * u128::from(want)) / u128::from(max)) as u64;
        }
        s.points[0].push((t.ops, want));
    }
    let page = d.join("labels.html");
    std::fs::write(&page, mmreplay::html::render(&[t])).expect("write");
    let (dom, log) = chromium(&["--dump-dom", &format!("file://{}", page.display())]);
    assert!(
        !log.lines()
            .any(|l| l.contains("CONSOLE") || l.contains("Uncaught")),
        "{log}"
    );
    let status: String = dom
        .split("id=\"status\"")
        .nth(1)
        .map(|s| s.chars().take(160).collect())
        .unwrap_or_default();
    assert!(status.contains("data-clipped=\"0\""), "status: {status:?}");
    assert!(status.contains("data-ok=\"1\""), "status: {status:?}");
    assert!(
        dom.contains(">267k<title>266809</title>"),
        "the six-digit label"
    );
    let _ = std::fs::remove_dir_all(&d);
}
