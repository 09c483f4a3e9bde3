//! Issue 20 item 4: a capture that lost events gets its lost windows marked as not comparable
//! for fidelity, in `replay --json` (`input.lost.not_comparable_for_fidelity`) and text, and
//! `fidelity` marks a first divergence inside one. Real capture: `pipe-lost-load` (the
//! recorder's `trace_pipe` path lost 187,269 events under load).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn cap(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (String, i32) {
    let o = Command::new(BIN).args(args).output().expect("run mmreplay");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[test]
fn lost_events_mark_their_windows_not_comparable() {
    let lossy = cap("pipe-lost-load.trace.zst");
    let (out, code) = run(&["replay", &lossy, "--policies", "reference", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let lost = &v["input"]["lost"];
    let nc = &lost["not_comparable_for_fidelity"];
    let windows = nc["windows"].as_array().expect("windows listed");
    assert!(!windows.is_empty());
    assert!(nc["windows_total"].as_u64() >= Some(windows.len() as u64));
    // Every marker lies inside a window of its CPU, and each window holds a marker.
    let markers = lost["windows"].as_array().expect("markers");
    let inside = |m: &Value, w: &Value| {
        m["cpu"] == w["cpu"]
            && w["from_ns"].as_u64() <= m["at_ns"].as_u64()
            && m["at_ns"].as_u64() <= w["to_ns"].as_u64()
    };
    for m in markers {
        assert!(windows.iter().any(|w| inside(m, w)), "marker {m} outside");
    }
    for w in windows {
        assert!(
            markers.iter().any(|m| inside(m, w)),
            "window {w} holds none"
        );
        assert!(w["from_ns"].as_u64() <= w["to_ns"].as_u64());
    }
    let stated: u64 = windows.iter().filter_map(|w| w["events"].as_u64()).sum();
    assert_eq!(Some(stated), lost["events"].as_u64());

    let (text, _) = run(&["replay", &lossy, "--policies", "reference"]);
    assert!(
        text.contains(&format!(
            "  not comparable for fidelity: {} windows",
            nc["windows_total"]
        )),
        "{text}"
    );
    // The first divergence of this capture falls in a lost window.
    let (fid, _) = run(&["fidelity", &lossy, "--json"]);
    let f: Value = serde_json::from_str(&fid).expect("fidelity json");
    assert_eq!(
        f["first_divergence"]["lost_events_in_window"], true,
        "{fid}"
    );

    // Negative control: a capture without lost events has no such key and no such line.
    let clean = cap("fmt-pipe.trace.zst");
    let (out, _) = run(&["replay", &clean, "--policies", "reference", "--json"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert!(v["input"]["lost"]
        .get("not_comparable_for_fidelity")
        .is_none());
    let (text, _) = run(&["replay", &clean, "--policies", "reference"]);
    assert!(!text.contains("not comparable for fidelity"));
}
