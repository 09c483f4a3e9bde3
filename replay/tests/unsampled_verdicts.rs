//! Issue 14, item 4: a verdict that says the runs differ and rests on reclaim decisions about
//! pages whose accesses the capture may not show is marked, in text and JSON
//! (`verdict_details.*.depends_on_unsampled` and `unsampled`, `replay/src/unsampled.rs`); a
//! verdict with no such decision is not.

use std::process::Command;

use mmreplay::json_schema::{schema, validate};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn replay(capture: &str, policies: &str, json: bool) -> String {
    let mut c = Command::new(BIN);
    c.args([
        "replay",
        &corpus(capture),
        "--policies",
        policies,
        "--mode",
        "free",
    ]);
    if json {
        c.arg("--json");
    }
    let o = c.output().expect("run mmreplay");
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{capture}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8")
}

fn json(capture: &str, policies: &str) -> Value {
    let v: Value = serde_json::from_str(replay(capture, policies, true).trim()).expect("json");
    let errs = validate(&schema(), &v);
    assert!(errs.is_empty(), "{capture}: {errs:#?}");
    v
}

/// Look-around under MGLRU on the access-sampled 6.1 capture: its verdict differs from the
/// reference and its reclaim found pages unreferenced, almost all of them in the sampled
/// workload (reads and writes within one interval unseen), a few in unsampled processes.
#[test]
fn a_reclaim_verdict_on_a_sampled_capture_is_marked() {
    let cap = "k61-hotset-mglru.trace.zst";
    let v = json(cap, "reference,lookaround");
    let label = v["verdicts"]["lookaround"].as_str().unwrap_or("");
    assert!(
        label == "diverged_within_contract" || label == "contract_breach",
        "{label}"
    );
    let d = &v["verdict_details"]["lookaround"];
    assert_eq!(d["depends_on_unsampled"], true, "{d}");
    let sampled = d["unsampled"]["reclaim_unref_sampled"]
        .as_u64()
        .unwrap_or(0);
    let unsampled = d["unsampled"]["reclaim_unref_unsampled"]
        .as_u64()
        .unwrap_or(0);
    assert!(sampled > 10_000, "{d}");
    // The figures are the larger of the two runs' counters.
    let r = &v["policies"]["reference"]["counters"];
    let c = &v["policies"]["lookaround"]["counters"];
    let max = |k: &str| r[k].as_u64().max(c[k].as_u64()).unwrap_or(0);
    assert_eq!(sampled, max("reclaim_unref_sampled"));
    assert_eq!(unsampled, max("reclaim_unref_unsampled"));
    let text = replay(cap, "reference,lookaround", false);
    assert!(
        text.contains("depends on accesses the capture does not show"),
        "{text}"
    );
}

/// A/D preservation on compaction: the verdict differs, but no reclaim ran, so nothing in it
/// rests on unseen accesses (the negative control of the mark).
#[test]
fn a_verdict_without_reclaim_decisions_is_not_marked() {
    let cap = "k61-compaction.trace.zst";
    let v = json(cap, "reference,ad-preserve");
    let label = v["verdicts"]["ad-preserve"].as_str().unwrap_or("");
    assert_ne!(label, "same");
    let d = &v["verdict_details"]["ad-preserve"];
    assert_eq!(d["depends_on_unsampled"], false, "{d}");
    assert_eq!(d["unsampled"]["reclaim_unref_unsampled"], 0);
    assert_eq!(d["unsampled"]["reclaim_unref_sampled"], 0);
    let text = replay(cap, "reference,ad-preserve", false);
    assert!(!text.contains("depends on accesses"), "{text}");
}

/// Batched unshare on the tour: reclaim ran and found unreferenced pages the capture cannot
/// vouch for, but the candidate's reclaim decisions are the reference's; its divergence (table-
/// sync IPIs) cannot rest on unseen accesses, so it is not marked.
#[test]
fn a_divergence_outside_reclaim_is_not_marked() {
    let cap = "tour.trace.zst";
    let v = json(cap, "reference,batched-unshare");
    assert_eq!(v["verdicts"]["batched-unshare"], "diverged_within_contract");
    let d = &v["verdict_details"]["batched-unshare"];
    assert!(
        d["unsampled"]["reclaim_unref_unsampled"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{d}"
    );
    assert_eq!(d["depends_on_unsampled"], false, "{d}");
}
