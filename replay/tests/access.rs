//! `record --access` captures (`<trace>.access.json`, `replay/src/access.rs`) through replay:
//! the soft-dirty clears are lowered at their times, the write-protect faults they cause reach
//! the model as writes between faults, and replay says how many reclaim decisions depended on
//! accesses the capture could not show. Each figure is checked against the same capture with
//! its access log taken away, so a lowering that dropped the clears fails here.

use std::path::{Path, PathBuf};

use mmreplay::session::{self, SessionOptions};
use mmreplay_candidates::contract::Mode;
use mmreplay_reference::counters::Counters;

const CAPTURE: &str = "k61-hotset-mglru.trace.zst";

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/captures")
        .join(name)
}

/// (the kernel's remote flush requests, the reference's counters, approximations) of `path`.
fn run(path: &Path) -> (u64, Counters, std::collections::BTreeMap<String, u64>) {
    let p = path.to_string_lossy().into_owned();
    // The capture kernel's mechanics (6.1, MGLRU on) from the sidecar, as `replay` does.
    let kernel = match mmreplay::kernel::KernelChoice::choose(Some(&p), None) {
        Ok(k) => k,
        Err(e) => panic!("{p}: {e}"),
    };
    let o = SessionOptions {
        policies: vec!["reference".into()],
        mode: Mode::FreeRunning,
        locate: false,
        cpumask_mode: kernel.profile(1).cpumask_mode,
        kernel: Some(kernel),
        ..SessionOptions::default()
    };
    let r = match session::run(Some(&p), &o, |_, _| {}) {
        Ok(r) => r,
        Err(e) => panic!("{p}: {e}"),
    };
    let c = match r.run.policies.first() {
        Some(x) => x.counters.clone(),
        None => panic!("{p}: no reference"),
    };
    (
        r.run.lower.observed.remote_tlb_flushes,
        c,
        r.run.lower.approximations.clone(),
    )
}

/// The capture and its sidecar, without the access log, in a fresh directory.
fn without_access_log() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-access-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for f in [CAPTURE.to_string(), format!("{CAPTURE}.meta.json")] {
        std::fs::copy(corpus(&f), d.join(&f)).unwrap();
    }
    d.join(CAPTURE)
}

#[test]
fn clears_are_lowered_and_reclaim_decisions_are_attributed() {
    let (obs, with, approx) = run(&corpus(CAPTURE));
    let plain = without_access_log();
    let (obs2, without, approx2) = run(&plain);
    let _ = std::fs::remove_dir_all(plain.parent().unwrap());
    println!(
        "remote flush requests: kernel {obs}, model {} with the clears, {} without; \
         unreferenced reclaim checks: sampled {} / unsampled {} (without the log: {} / {})",
        with.tlb_flush_remote,
        without.tlb_flush_remote,
        with.reclaim_unref_sampled,
        with.reclaim_unref_unsampled,
        without.reclaim_unref_sampled,
        without.reclaim_unref_unsampled
    );
    assert_eq!(obs, obs2);
    // Every clear of the log (191, one process, 500 ms apart nominally) is an op.
    assert_eq!(approx.get("soft_dirty_clears"), Some(&191));
    assert_eq!(approx.get("access_sampling_interval_ms"), Some(&500));
    assert_eq!(with.softdirty_clears, 191);
    assert!(!approx2.contains_key("soft_dirty_clears"));
    assert_eq!(without.softdirty_clears, 0);
    // The writes the clears exposed are write-protect faults on PTEs the clears protected.
    assert!(with.softdirty_write_faults > 100_000, "{with:?}");
    assert_eq!(without.softdirty_write_faults, 0);
    // Each clear's flush_tlb_mm is a remote flush request the kernel logged: with the clears
    // the model is within 30% of the kernel, without them it is off by more than 2x.
    assert!(
        with.tlb_flush_remote * 10 >= obs * 7 && with.tlb_flush_remote * 10 <= obs * 13,
        "{} vs {obs}",
        with.tlb_flush_remote
    );
    assert!(
        without.tlb_flush_remote > 2 * obs,
        "{}",
        without.tlb_flush_remote
    );
    // "Where the model cannot know": with the log, almost every reclaim check that found no
    // access was on a sampled process (writes visible, reads not); without it, all were blind.
    assert!(with.reclaim_unref_sampled > 40_000, "{with:?}");
    assert!(with.reclaim_unref_unsampled < 100, "{with:?}");
    assert_eq!(without.reclaim_unref_sampled, 0);
    assert_eq!(
        without.reclaim_unref_unsampled,
        with.reclaim_unref_sampled + with.reclaim_unref_unsampled
    );
}
