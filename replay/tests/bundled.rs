//! The first run (`mmreplay replay` with no input, the README's first command) replays the two
//! bundled captures: `tour` (6.18, classic LRU) and `k61-reclaim-mglru` (6.1, MGLRU on, from its
//! built-in sidecar). Every candidate must show its effect on one of them (issue 18): on a
//! 6.18 capture look-around cannot act (no MGLRU), so it needs the 6.1 one.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run mmreplay")
}

#[test]
fn the_default_run_shows_every_candidate_diverging() {
    let o = run(&["replay", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let traces: Vec<&str> = reports.iter().filter_map(|r| r["trace"].as_str()).collect();
    assert_eq!(
        traces,
        [
            "<bundled:corpus/captures/tour.trace.zst>",
            "<bundled:corpus/captures/k61-reclaim-mglru.trace.zst>"
        ]
    );
    // The second capture is modelled as its kernel: MGLRU on (lru_gen enabled in its sidecar).
    assert_eq!(reports[0]["lru"], "classic");
    assert_eq!(reports[1]["lru"], "mglru");
    for cand in ["lookaround", "ad-preserve", "batched-unshare"] {
        let labels: Vec<String> = reports
            .iter()
            .filter_map(|r| r["verdicts"][cand].as_str().map(str::to_string))
            .collect();
        assert_eq!(labels.len(), 2, "{cand}: {labels:?}");
        assert!(
            labels.iter().any(|l| l == "diverged_within_contract"),
            "{cand} diverges on no bundled capture: {labels:?}"
        );
    }
}

#[test]
fn the_default_text_ends_with_one_footer_naming_the_mglru_capture() {
    let o = run(&["replay"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("what to look at next:").count(), 1, "{out}");
    let footer = out
        .split("what to look at next:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        footer.contains(
            "mmreplay minimize corpus/captures/k61-reclaim-mglru.trace.zst --policy lookaround"
        ),
        "{footer}"
    );
    // Both reports come before the footer, tour first.
    let tour = out.find("trace: <bundled:corpus/captures/tour.trace.zst>");
    let k61 = out.find("trace: <bundled:corpus/captures/k61-reclaim-mglru.trace.zst>");
    assert!(tour.is_some() && tour < k61, "{out}");
    assert!(k61 < out.find("what to look at next:"));
    // Readable on a 100-column terminal.
    for l in footer.lines() {
        assert!(l.chars().count() <= 100, "wide footer line: {l}");
    }
}
