//! Fidelity regression over every real capture in corpus/captures: `mmreplay fidelity` runs the
//! capture kernel's own policy under its profile (6.18 here: batched migration flushes, lazy
//! `mm_cpumask` trimming, A/D preservation, batched hugetlb unshare) and compares, per capture,
//! the predicted remote TLB flushes and IPI sends per callback with what the kernel logged.
//!
//! Goal (issue 13): within ±25%, or within 1 where the kernel logged fewer than 10, for remote
//! flushes and for IPI sends of each callback, on every capture. Scoped to the recorded workload
//! (`--workload`) every capture meets it. Over the whole capture (every process, some older than
//! the capture) four captures stay outside; each is pinned below with the kernel mechanism that
//! causes it, so that a fix shows.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

/// The goal rows (`mmreplay::observe::COUNTERS` names).
const GOAL: &[&str] = &[
    "remote_tlb_flushes",
    "ipi_sends:flush_tlb_func",
    "ipi_sends:tlb_remove_table_smp_sync",
];

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn captures() -> Vec<String> {
    let dir = format!("{}/../corpus/captures", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus/captures")
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".trace.zst"))
        // The 6.1 guest captures: replay/tests/fidelity_k61.rs pins every figure of theirs
        // with its cause (the goal rows here are IPI sends, which 6.1 does not log).
        .filter(|p| !p.contains("/k61-"))
        .collect();
    v.sort();
    v
}

fn fidelity(args: &[&str]) -> Value {
    let o = Command::new(BIN)
        .arg("fidelity")
        .args(args)
        .arg("--json")
        .output()
        .expect("run mmreplay");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

/// (observed, predicted) of `counter`; observed `None` when the capture did not log it.
fn pair(v: &Value, counter: &str) -> (Option<u64>, u64) {
    let c = &v["counters"][counter];
    let p = c["predicted"]
        .as_u64()
        .unwrap_or_else(|| panic!("{counter}: no prediction in {v}"));
    (c["observed"].as_u64(), p)
}

fn within(o: u64, p: u64) -> bool {
    if o < 10 {
        p.abs_diff(o) <= 1
    } else {
        p.abs_diff(o) * 4 <= o
    }
}

#[test]
fn workload_flushes_and_ipis_per_callback_match_the_capture_kernel() {
    let all = captures();
    assert!(
        all.len() >= 13,
        "corpus/captures has {} captures",
        all.len()
    );
    for trace in &all {
        let v = fidelity(&[trace, "--workload"]);
        assert_eq!(v["kernel"]["profile"], "6.18", "{trace}");
        assert_eq!(v["policy"], "all", "{trace}");
        assert!(
            v["filtered_out"].as_u64() > Some(0),
            "{trace}: nothing filtered"
        );
        for c in GOAL {
            let (o, p) = pair(&v, c);
            let o = o.unwrap_or_else(|| panic!("{trace}: {c} not logged"));
            assert!(
                within(o, p),
                "{trace}: {c} predicted {p}, observed {o} (outside ±25% / ±1)"
            );
        }
    }
}

#[test]
fn compaction_flushes_once_per_migrate_pages_batch() {
    // 2,041 migrate_pages calls; the kernel logged 1,576 remote flushes. One flush per folio
    // (the model before batching, and what 6.1 does) predicted far more or, with the other
    // processes' pages unplaced, far fewer.
    let trace = corpus("compaction.trace.zst");
    let v = fidelity(&[&trace]);
    let (o, p) = pair(&v, "remote_tlb_flushes");
    assert_eq!(o, Some(1576));
    assert!(within(1576, p), "6.18 profile: predicted {p}");
    let (o, p) = pair(&v, "ipi_sends:flush_tlb_func");
    assert!(
        within(o.unwrap_or(0), p),
        "IPIs observed {o:?} predicted {p}"
    );
    // The batch flush's local share (flush_tlb_func with mm == NULL, reason 2) and the
    // single-page flushes of the compactor's own pages (reason 3) are predicted too.
    for c in ["tlb_flush:local_shootdown", "tlb_flush:local_mm_shootdown"] {
        let (o, p) = pair(&v, c);
        let o = o.unwrap_or_else(|| panic!("{c} not logged"));
        assert!(o > 1000 && within(o, p), "{c}: observed {o} predicted {p}");
    }
    // The same capture replayed as 6.1 (per-PTE flushes, cpumask cleared at switch) is another
    // kernel: its prediction must differ.
    let v61 = fidelity(&[&trace, "--kernel", "6.1"]);
    assert_eq!(v61["kernel"]["profile"], "6.1");
    assert_eq!(v61["kernel"]["source"], "option");
    assert_eq!(v61["kernel"]["mechanics"]["base"], "k61");
    let (_, p61) = pair(&v61, "remote_tlb_flushes");
    assert_ne!(p61, p, "the kernel profile changes nothing");
}

/// Whole captures (every process): the ones outside the goal, each with its cause. Pinned
/// exactly; when a fix moves one, update the figure here and in corpus/README.md.
#[test]
fn whole_capture_gaps_are_known() {
    // (capture, counter, observed, predicted, mechanism)
    let pinned: &[(&str, &str, u64, u64, &str)] = &[
        (
            "fmt-lost-pipe",
            "remote_tlb_flushes",
            0,
            102,
            "the workload's execve was among 42,608 lost events: the model keeps the forked \
             recorder mm, whose mm_cpumask holds the other CPU, so every flush goes remote",
        ),
        (
            "compaction-procs",
            "remote_tlb_flushes",
            383,
            224,
            "not yet explained: IPI sends agree (208 logged, 210 predicted), so the missing \
             remote flush requests are ones whose every target CPU was skipped (lazy or no \
             longer in mm_cpumask); the kernel traces `remote IPI send` before \
             should_flush_tlb filters them, the model only for the mms it knows",
        ),
        (
            "fmt-pipe",
            "remote_tlb_flushes",
            27,
            0,
            "rustc threads older than the capture: their mm_cpumask (stale bits kept by \
             should_trim_cpumask) is unknown, the model sees them on one CPU",
        ),
        (
            "madv-mprotect",
            "remote_tlb_flushes",
            7,
            0,
            "an lto thread older than the capture: zero-page COW flushes (wp_page_copy) go \
             remote through stale mm_cpumask bits the model cannot know",
        ),
        (
            "pipe-lost-load",
            "remote_tlb_flushes",
            46,
            31,
            "187,269 events lost from trace_pipe under load (sched_switch, munmap and exec of \
             the rust build's lto/opt processes among them), whose mm_cpumask the model rebuilds \
             only from what survived",
        ),
        (
            "gcc-hello",
            "remote_tlb_flushes",
            6,
            9,
            "the same lto process: its mm_cpumask history before the capture is unknown",
        ),
    ];
    let mut bad = Vec::new();
    for trace in captures() {
        let name = trace
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".trace.zst"))
            .unwrap_or_default()
            .to_string();
        let v = fidelity(&[&trace]);
        for c in GOAL {
            let (o, p) = pair(&v, c);
            let Some(o) = o else { continue };
            match pinned.iter().find(|x| x.0 == name && x.1 == *c) {
                Some((_, _, po, pp, why)) if (o, p) != (*po, *pp) => bad.push(format!(
                    "{name}: {c} now observed {o} predicted {p} (pinned {po}/{pp}: {why})"
                )),
                None if !within(o, p) => bad.push(format!(
                    "{name}: {c} predicted {p}, observed {o} (outside ±25% / ±1)"
                )),
                _ => {}
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn json_is_one_object_per_capture_with_null_for_what_was_not_logged() {
    let dir = std::env::temp_dir().join(format!("mmreplay-fidelity-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmpdir");
    // fmt-noirq has no IPI events; without its sidecar nothing says they were enabled.
    let copy = dir.join("noirq.trace.zst");
    std::fs::copy(corpus("fmt-noirq.trace.zst"), &copy).expect("copy capture");
    let copy = copy.to_string_lossy().into_owned();
    let v = fidelity(&[&copy]);
    assert!(v["counters"]["ipi_sends"]["observed"].is_null(), "{v}");
    assert!(v["counters"]["ipi_sends"]["predicted"].is_u64(), "{v}");
    assert!(
        v["counters"]["remote_tlb_flushes"]["observed"].is_u64(),
        "{v}"
    );
    assert_eq!(v["kernel"]["source"], "default");
    // A sidecar naming a 6.1 kernel selects its mechanics; --kernel overrides it.
    std::fs::write(
        format!("{copy}.meta.json"),
        r#"{"kernel_release": "6.18.44", "cpus": 2,
            "kernel": {"release": "6.1.0-37-amd64", "lru_gen_enabled": "0x0007",
                       "lru_gen_min_ttl_ms": 0, "thp_enabled": "always",
                       "tlb_single_page_flush_ceiling": 33, "nr_cpus": 2}}"#,
    )
    .expect("write sidecar");
    let v = fidelity(&[&copy]);
    assert_eq!(v["kernel"]["profile"], "6.1");
    assert_eq!(v["kernel"]["source"], "sidecar");
    assert_eq!(v["kernel"]["mechanics"]["cpumask_mode"], "clear_on_switch");
    assert_eq!(v["kernel"]["lru_gen_enabled"], "0x0007");
    let v = fidelity(&[&copy, "--kernel", "6.18"]);
    assert_eq!(v["kernel"]["mechanics"]["cpumask_mode"], "trim_by_flush");
    // Several captures: one object per line.
    let o = Command::new(BIN)
        .args(["fidelity", "--json", &copy, &corpus("fmt-follow.trace.zst")])
        .output()
        .expect("run");
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    let bad = Command::new(BIN)
        .args(["fidelity", &copy, "--kernel", "six"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("MAJOR.MINOR"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn first_divergence_names_the_window_and_its_ops() {
    // Whole madv-mprotect: the lto thread's remote flushes part from the model's early on.
    let v = fidelity(&[&corpus("madv-mprotect.trace.zst")]);
    let d = &v["first_divergence"];
    assert_eq!(d["counter"], "remote_tlb_flushes", "{v}");
    let w = d["window_ms"].as_array().expect("window");
    assert!(w[0].as_f64() < w[1].as_f64());
    assert!(d["ops_in_window"].as_u64() > Some(0));
    assert!(!d["ops"].as_array().expect("ops").is_empty());
    // Scoped to the workload, the running counts never part.
    let v = fidelity(&[&corpus("threads-shootdown.trace.zst"), "--workload"]);
    assert!(v["first_divergence"].is_null(), "{v}");
    assert!(v["counters"]["remote_tlb_flushes"]["observed"].as_u64() > Some(100));
}

#[test]
fn workload_needs_the_sidecar_and_excludes_pid() {
    let dir = std::env::temp_dir().join(format!("mmreplay-fidelity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmpdir");
    let copy = dir.join("no-sidecar.trace.zst");
    let copy = copy.to_string_lossy();
    let src = corpus("fmt-noirq.trace.zst");
    std::fs::copy(&src, &*copy).expect("copy capture");
    let run = |args: &[&str]| {
        let o = Command::new(BIN).args(args).output().expect("run mmreplay");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["replay", &copy, "--workload"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no-sidecar.trace.zst.meta.json") && err.contains("--pid"),
        "{err}"
    );
    let (code, err) = run(&["fidelity", &copy, "--workload"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no-sidecar.trace.zst.meta.json"), "{err}");
    std::fs::write(format!("{copy}.meta.json"), "{\"workload_pid\": -3}").expect("write sidecar");
    let (code, err) = run(&["replay", &copy, "--workload"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("workload_pid"), "{err}");
    let (code, err) = run(&["replay", &src, "--workload", "--pid", "1"]);
    assert_eq!(code, Some(2), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// THP split, khugepaged collapse and mremap of THP regions (`thp-paths`, issue 13 item 3):
/// remote flushes and IPI sends within ±25% of what the kernel logged for the workload (its
/// own and khugepaged's for its mm), and one table-sync IPI per `tlb_remove_table_smp_sync`
/// call khugepaged made (`collapse_huge_page`'s `tlb_remove_table_sync_one`; all its
/// collapses in this capture are of the workload's mm, the other processes' calls are not).
#[test]
fn thp_paths_flushes_and_ipis_match_the_capture_kernel() {
    let trace = format!(
        "{}/../corpus/captures/thp-paths.trace.zst",
        env!("CARGO_MANIFEST_DIR")
    );
    let r = workload_report(&trace);
    for what in ["remote_tlb_flushes", "ipis"] {
        let obs = num(&r, &["fidelity", what, "observed"]);
        let pred = num(&r, &["fidelity", what, "predicted"]);
        assert!(obs >= 10, "{what}: observed {obs}");
        assert!(
            (obs - obs / 4..=obs + obs / 4).contains(&pred),
            "thp-paths: {what} predicted {pred}, observed {obs} (outside ±25%)"
        );
    }
    let text = zstd::decode_all(std::fs::File::open(&trace).expect("capture")).expect("zstd");
    let syncs = String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.trim_start().starts_with("khugepaged-"))
        .filter(|l| l.contains("csd_queue_cpu") && l.contains("func=tlb_remove_table_smp_sync"))
        .count() as u64;
    let c = &r["policies"]["reference"]["counters"];
    assert!(syncs > 0);
    assert_eq!(num(c, &["ipi_sends_table_sync"]), syncs);
    // Every collapse was placed, and the model went down the THP paths.
    assert!(r["unplaced"]["mm_collapse_huge_page_mm_unknown"].is_null());
    assert!(num(c, &["thp_fault_alloc"]) > 0 && num(c, &["thp_split_pmd"]) > 0);
    assert_eq!(num(c, &["thp_collapse_alloc"]), syncs);
}

/// `set_migration_pte` events in a capture.
fn migrations_in(trace: &str) -> u64 {
    let text = zstd::decode_all(std::fs::File::open(trace).expect("capture")).expect("zstd");
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.contains("set_migration_pte:"))
        .count() as u64
}

/// The same capture without its process snapshot: the older processes' pages are unknown and
/// their migrations unplaced (what every capture made before `record` took snapshots shows).
#[test]
fn compaction_without_the_snapshot_cannot_place_older_pages() {
    let src = format!(
        "{}/../corpus/captures/compaction-procs.trace.zst",
        env!("CARGO_MANIFEST_DIR")
    );
    let dir = std::env::temp_dir().join(format!("fidelity-nosnap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let t = dir.join("compaction-procs.trace.zst");
    std::fs::copy(&src, &t).expect("copy capture");
    std::fs::copy(
        format!("{src}.meta.json"),
        dir.join("compaction-procs.trace.zst.meta.json"),
    )
    .expect("copy sidecar");
    let without = workload_report(&t.to_string_lossy());
    std::fs::remove_dir_all(&dir).ok();
    let with = workload_report(&src);
    let migrations = migrations_in(&src);
    // A migration entry whose mm the model does not know is flushed as if every CPU were in
    // its mm_cpumask (the batch flush is one IPI anyway); the snapshot makes them known.
    let unknown = |r: &serde_json::Value| {
        r["approximations"]["set_migration_pte_of_unknown_mm_flushed_as_every_cpu"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(without["approximations"]["procsnap_mms_seeded"].is_null());
    assert!(num(&with, &["approximations", "procsnap_mms_seeded"]) > 10);
    assert!(
        unknown(&without) * 10 > migrations * 9,
        "{} of {migrations} of unknown mms without the snapshot",
        unknown(&without)
    );
    assert!(
        unknown(&with) * 10 < migrations,
        "{} of {migrations} of unknown mms with the snapshot",
        unknown(&with)
    );
}

/// `mmreplay replay TRACE --policies reference --workload --json`, one report.
fn workload_report(trace: &str) -> serde_json::Value {
    let o = Command::new(BIN)
        .args([
            "replay",
            trace,
            "--policies",
            "reference",
            "--workload",
            "--json",
        ])
        .output()
        .expect("run mmreplay");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{trace}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON report")
}

/// The number at `path` in `v` (the test fails naming the path when it is missing).
fn num(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = v;
    for k in path {
        v = &v[*k];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// `mmreplay fidelity` carries the vmscan totals and the kernel's own counts (kprobe hits,
/// receipts, reclaimed pages) where the capture logged them, and null where it did not: 6.1's
/// MGLRU logs no `mm_vmscan_lru_shrink_inactive`; 6.18's capture has no kprobes.
#[test]
fn vmscan_and_kernel_counts_are_fidelity_counters() {
    let mglru = fidelity(&[&corpus("k61-reclaim-mglru.trace.zst")]);
    assert_eq!(mglru["kernel"]["profile"], "6.1");
    for c in [
        "rmap_referenced_visits",
        "rmap_unmap_visits",
        "lookarounds",
        "reclaimed",
    ] {
        let (o, _) = pair(&mglru, c);
        assert!(o.is_some_and(|o| o > 0), "k61-reclaim-mglru: {c} {o:?}");
    }
    assert!(pair(&mglru, "vmscan_scanned").0.is_none());
    let swap = fidelity(&[&corpus("reclaim-swap.trace.zst")]);
    let (o, p) = pair(&swap, "vmscan_reclaimed");
    assert!(o.is_some_and(|o| within(o, p)), "{o:?} vs {p}");
    assert!(pair(&swap, "lookarounds").0.is_none());
}
