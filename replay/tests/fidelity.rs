//! Fidelity regression over every real capture in corpus/captures: the reference model's
//! predicted remote TLB flushes against the `tlb_flush` "remote IPI send" events the capture
//! kernel logged, scoped to the recorded workload (`mmreplay replay --workload`, the pid from
//! the capture's `.meta.json` sidecar).
//!
//! Why the workload: the captures also hold processes older than the capture (concurrent
//! builds), whose mm_cpumask at the start is unknown to the model; the workload is followed
//! from its exec, so the model knows everything that decides its flushes.
//!
//! The goal of issue 5 is ±25% on remote flushes; counts below 10 must agree within 1.
//! `compaction` is the one known exception, pinned here with its cause so that a fix shows up:
//! the workload's compaction migrates pages of processes the lowering never saw mapped
//! (`set_migration_pte_no_mm_maps_address`), so their flushes cannot be predicted.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn captures() -> Vec<String> {
    let dir = format!("{}/../corpus/captures", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus/captures")
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".trace.zst"))
        .collect();
    v.sort();
    v
}

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

fn num(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = v;
    for k in path {
        v = &v[*k];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

#[test]
fn workload_remote_flushes_match_the_capture_kernel() {
    let all = captures();
    assert!(
        all.len() >= 10,
        "corpus/captures has {} captures",
        all.len()
    );
    let mut checked = 0;
    for trace in &all {
        let r = workload_report(trace);
        let obs = num(&r, &["fidelity", "remote_tlb_flushes", "observed"]);
        let pred = num(&r, &["fidelity", "remote_tlb_flushes", "predicted"]);
        assert!(
            num(&r, &["filtered_out"]) > 0,
            "{trace}: --workload filtered nothing"
        );
        if trace.ends_with("/compaction.trace.zst") {
            let unplaced = num(&r, &["unplaced", "set_migration_pte_no_mm_maps_address"]);
            assert!(
                obs > 1000 && pred * 10 < obs && unplaced > 10_000,
                "compaction: the known gap changed (predicted {pred}, observed {obs}, \
                 unplaced migrations {unplaced}): update this test and the corpus README"
            );
            continue;
        }
        if trace.ends_with("/compaction-procs.trace.zst") {
            compaction_with_snapshot(trace, &r, pred, obs);
            continue;
        }
        if obs >= 10 {
            let lo = obs - obs / 4;
            let hi = obs + obs / 4;
            assert!(
                (lo..=hi).contains(&pred),
                "{trace}: remote TLB flushes predicted {pred}, observed {obs} (outside ±25%)"
            );
        } else {
            assert!(
                pred.abs_diff(obs) <= 1,
                "{trace}: remote TLB flushes predicted {pred}, observed {obs}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 10);
}

/// Exit code and stderr of `mmreplay ARGS`.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(BIN).args(args).output().expect("run mmreplay");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn workload_needs_the_sidecar_and_excludes_pid() {
    let dir = std::env::temp_dir().join(format!("mmreplay-fidelity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmpdir");
    let copy = dir.join("no-sidecar.trace.zst");
    let copy = copy.to_string_lossy();
    let src = format!(
        "{}/../corpus/captures/fmt-noirq.trace.zst",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(&src, &*copy).expect("copy capture");
    let (code, err) = run(&["replay", &copy, "--workload"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no-sidecar.trace.zst.meta.json") && err.contains("--pid"),
        "{err}"
    );
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

/// `compaction-procs` (issue 13 item 4): the compaction capture made with a process snapshot
/// (`.procs.zst`). The snapshot places the migrations of older processes' pages (> 90% of
/// them); the prediction then overshoots because the model flushes once per migrated folio
/// where 6.18 flushes once per `migrate_pages` batch (`TTU_BATCH_FLUSH`, issue 13 item 1):
/// pinned here so that fix shows.
fn compaction_with_snapshot(trace: &str, r: &serde_json::Value, pred: u64, obs: u64) {
    let migrations = migrations_in(trace);
    let unplaced = r["unplaced"]["set_migration_pte_no_mm_maps_address"]
        .as_u64()
        .unwrap_or(0);
    assert!(num(r, &["approximations", "procsnap_mms_seeded"]) > 10);
    assert!(
        migrations > 1000 && unplaced * 10 < migrations,
        "compaction-procs: {unplaced} of {migrations} migrations unplaced with the snapshot"
    );
    assert!(
        obs > 100 && pred > 4 * obs,
        "compaction-procs: the known per-folio vs per-batch gap changed (predicted {pred}, \
         observed {obs}): update this test and the corpus README"
    );
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
    let r = workload_report(&t.to_string_lossy());
    std::fs::remove_dir_all(&dir).ok();
    let migrations = migrations_in(&src);
    let unplaced = num(&r, &["unplaced", "set_migration_pte_no_mm_maps_address"]);
    assert!(r["approximations"]["procsnap_mms_seeded"].is_null());
    assert!(
        unplaced * 10 > migrations * 9,
        "{unplaced} of {migrations} unplaced without the snapshot"
    );
    assert_eq!(num(&r, &["fidelity", "remote_tlb_flushes", "predicted"]), 0);
}
