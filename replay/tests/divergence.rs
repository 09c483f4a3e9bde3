//! The first diverging op found from sparse state-hash checkpoints plus a step-by-step re-run of
//! the last window must not depend on the window size (exactness), on a real
//! capture where A/D preservation changes restored PTE bits. Lockstep on the real reclaim
//! capture: every candidate follows the reference's reclaim victims (none skipped), keeps its
//! lockstep contract, and the result does not depend on chunking or parallelism.

use mmreplay::engine::EngineConfig;
use mmreplay::report::Report;
use mmreplay::session::{self, SessionOptions, SessionResult};
use mmreplay_candidates::contract::Mode;

fn capture() -> String {
    format!(
        "{}/../corpus/captures/compaction.trace.zst",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn first_step(hash_every: u64) -> (Option<u64>, String, String) {
    let o = SessionOptions {
        policies: vec!["reference".into(), "ad-preserve".into()],
        engine: EngineConfig {
            hash_every,
            ..EngineConfig::default()
        },
        ..SessionOptions::default()
    };
    let r = session::run(Some(&capture()), &o, |_, _| {}).expect("replay");
    let v = r.verdicts.first().expect("one candidate");
    match &v.first_difference {
        Some(d) => (d.first_step, d.field.clone(), v.verdict.to_string()),
        None => panic!("expected a divergence, got {v:?}"),
    }
}

#[test]
fn sparse_checkpoints_locate_the_same_first_step_as_every_step() {
    // Different window sizes put the divergence at different offsets inside a window; the
    // step-by-step re-run must land on the same op every time.
    let exact = first_step(1024);
    let sparse = first_step(4096);
    let odd = first_step(777);
    assert!(exact.0.is_some(), "{exact:?}");
    assert_eq!(sparse, exact);
    assert_eq!(odd, exact);
    assert_eq!(
        exact.2, "diverged_within_contract",
        "A/D preservation stays within its contract"
    );
}

fn reclaim_capture() -> String {
    format!(
        "{}/../corpus/captures/reclaim-swap.trace.zst",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn replay(mode: Mode, engine: EngineConfig) -> SessionResult {
    let o = SessionOptions {
        policies: ["reference", "lookaround", "ad-preserve", "batched-unshare"]
            .map(String::from)
            .to_vec(),
        mode,
        engine,
        // Under MGLRU, where look-around acts (the classic LRU has no look-around), so that
        // imposing victims is exercised with a candidate whose own choices differ.
        lru: Some(mmreplay_reference::profile::LruKind::Mglru { min_ttl_ms: 0 }),
        ..SessionOptions::default()
    };
    session::run(Some(&reclaim_capture()), &o, |_, _| {}).expect("replay")
}

fn json(r: &SessionResult, mode: &str) -> String {
    Report {
        trace: &r.trace,
        format: &r.format,
        mode,
        nr_cpus: r.nr_cpus,
        run: &r.run,
        verdicts: &r.verdicts,
        diffs: &r.diffs,
    }
    .json()
    .to_string()
}

#[test]
fn lockstep_imposes_reference_victims_on_the_reclaim_capture() {
    let r = replay(Mode::Lockstep, EngineConfig::default());
    let reference = r.run.policies.first().expect("reference");
    assert!(
        reference.counters.evictions > 1000,
        "the capture must reclaim"
    );
    assert!(reference.lockstep.is_none());
    for (p, v) in r.run.policies.iter().skip(1).zip(&r.verdicts) {
        let l = p
            .lockstep
            .as_ref()
            .expect("lockstep counts on every candidate");
        println!("{}: {l:?} -> {}", p.name, v.verdict);
        assert!(l.reclaim_ops > 0 && l.victims_imposed > 0, "{l:?}");
        assert_eq!((l.victims_skipped, l.victims_extra), (0, 0), "{}", p.name);
        assert_eq!(p.counters.evictions, reference.counters.evictions);
        assert_eq!(p.counters.max_seq_incs, reference.counters.max_seq_incs);
        assert!(v.verdict.within_contract(), "{}: {v:?}", p.name);
    }
    // Look-around really ran under the imposed victims: its A-bit tests differ.
    let la = r.run.policies.get(1).expect("lookaround");
    assert!(la.counters.a_tc_lookaround > 0);
    assert_ne!(la.counters.a_tc_rmap_pte, reference.counters.a_tc_rmap_pte);
    assert!(json(&r, "lockstep").contains("\"victims_imposed\""));
}

#[test]
fn lockstep_result_does_not_depend_on_chunking_or_threads() {
    let base = replay(Mode::Lockstep, EngineConfig::default());
    let small = replay(
        Mode::Lockstep,
        EngineConfig {
            chunk_ops: 1000,
            parallel: false,
            ..EngineConfig::default()
        },
    );
    assert_eq!(json(&base, "lockstep"), json(&small, "lockstep"));
}

#[test]
fn free_running_report_has_no_lockstep_counts() {
    let r = replay(Mode::FreeRunning, EngineConfig::default());
    assert!(r.run.policies.iter().all(|p| p.lockstep.is_none()));
    assert!(!json(&r, "free").contains("lockstep"));
}
