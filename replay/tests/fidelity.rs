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
        // The 6.1 guest captures need the 6.1 kernel profile (issue 22), which this 6.18 model
        // does not have yet; replay/tests/k61.rs checks their observed side.
        .filter(|p| !p.contains("/k61-"))
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
