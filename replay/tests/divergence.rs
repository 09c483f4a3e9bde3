//! The first diverging op found from sparse state-hash checkpoints plus a step-by-step re-run of
//! the last window must not depend on the window size (exactness), on a real
//! capture where A/D preservation changes restored PTE bits.

use mmreplay::differ::Outcome;
use mmreplay::engine::EngineConfig;
use mmreplay::session::{self, SessionOptions};

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
    match &v.outcome {
        Outcome::Diverged {
            first_step, field, ..
        } => (*first_step, field.clone(), v.label().to_string()),
        other => panic!("expected a divergence, got {other:?}"),
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
