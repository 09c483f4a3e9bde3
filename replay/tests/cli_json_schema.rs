//! Every command's `--json` output, from real runs on corpus captures, matches the published
//! schema (`docs/schema/mmreplay.schema.json`, which must be what `mmreplay docs` generates),
//! carries `schema_version` and `command`, is one object per line (`--pretty`: indented), and
//! has no key with a space or upper case. Negative controls: the validator rejects a missing
//! key, a wrong verdict spelling, a number as a string and an `nr_cpus` key.

use std::path::PathBuf;
use std::process::{Command, Output};

use mmreplay::json_schema::{bad_keys, schema, validate, SCHEMA_VERSION};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn root(p: &str) -> String {
    format!("{}/../{p}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mmreplay")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-schema-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

/// The JSON lines of a run that must succeed (exit 0 or 1).
fn lines(args: &[&str]) -> Vec<Value> {
    let o = run(args);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).expect("utf-8");
    let v: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l}")))
        .collect();
    assert!(!v.is_empty(), "{args:?}: no output");
    v
}

fn assert_valid(cmd: &str, v: &Value) {
    let s = schema();
    let errs = validate(&s, v);
    assert!(errs.is_empty(), "{cmd}: {errs:#?}");
    assert_eq!(v["schema_version"], SCHEMA_VERSION, "{cmd}");
    assert_eq!(v["command"], cmd);
    let bad = bad_keys(v);
    assert!(bad.is_empty(), "{cmd}: {bad:?}");
}

#[test]
fn published_schema_is_the_generated_one() {
    let o = run(&["docs", "--check", "--out", &root("docs")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{} (regenerate with `cargo run -- docs`)",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(root("docs/schema/mmreplay.schema.json")).expect("schema");
    let v: Value = serde_json::from_str(&text).expect("schema is JSON");
    assert_eq!(v, schema());
}

#[test]
fn every_command_json_matches_the_schema() {
    let cap = root("corpus/captures/fmt-pipe.trace.zst");
    let litmus = root("corpus/litmus/a-2014-dirty-tlb-munmap.litmus");
    let d = tmpdir("all");
    let mmr = d.join("t.mmr").display().to_string();
    let snap = d.join("snaps");
    let snap_s = snap.display().to_string();
    let min = d.join("min.litmus").display().to_string();
    let mdir = d.join("m").display().to_string();
    let runs: Vec<(&str, Vec<String>)> = vec![
        ("stats", vec!["stats".into(), cap.clone(), "--json".into()]),
        (
            "stats",
            vec![
                "stats".into(),
                root("corpus/paired/mmwork.perf.data.zst"),
                "--json".into(),
            ],
        ),
        (
            "replay",
            vec![
                "replay".into(),
                cap.clone(),
                "--json".into(),
                "--snapshot-out".into(),
                snap_s.clone(),
            ],
        ),
        (
            "replay",
            vec!["replay".into(), litmus.clone(), "--json".into()],
        ),
        (
            "fidelity",
            vec!["fidelity".into(), cap.clone(), "--json".into()],
        ),
        (
            "report",
            vec!["report".into(), cap.clone(), "--json".into()],
        ),
        (
            "compile",
            vec![
                "compile".into(),
                cap.clone(),
                "-o".into(),
                mmr.clone(),
                "--json".into(),
            ],
        ),
        (
            "replay",
            vec!["replay".into(), mmr.clone(), "--json".into()],
        ),
        ("policies", vec!["policies".into(), "--json".into()]),
        (
            "check",
            vec!["check".into(), litmus.clone(), "--json".into()],
        ),
        (
            "minimize",
            vec![
                "minimize".into(),
                litmus.clone(),
                "--policy".into(),
                "lookaround".into(),
                "-o".into(),
                min,
                "--json".into(),
            ],
        ),
        (
            "merge",
            vec![
                "matrix".into(),
                "--traces".into(),
                cap.clone(),
                "--policies".into(),
                "reference,lookaround".into(),
                "--out".into(),
                mdir.clone(),
                "--json".into(),
            ],
        ),
        ("merge", vec!["merge".into(), mdir, "--json".into()]),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (cmd, args) in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for v in lines(&args) {
            assert_valid(cmd, &v);
        }
        seen.insert(*cmd);
    }
    // diff of two snapshots the replay wrote: same (0) and different (1).
    let snaps: Vec<String> = std::fs::read_dir(&snap)
        .expect("snapshots")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    assert!(snaps.len() >= 2);
    for (a, b, code) in [(&snaps[0], &snaps[0], 0), (&snaps[0], &snaps[1], -1)] {
        let o = run(&["diff", a, b, "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).expect("diff json");
        assert_valid("diff", &v);
        let same = v["same"].as_bool().expect("same");
        assert_eq!(o.status.code(), Some(if same { 0 } else { 1 }));
        if code == 0 {
            assert!(same);
        }
    }
    seen.insert("diff");
    // Checked against the schema where they run anyway: `bench` (seconds of measuring) in
    // mmr_bench.rs, `record` (root and tracefs) in tests/tests/record_e2e.rs.
    seen.extend(["bench", "record"]);
    for c in mmreplay::json_schema::COMMANDS {
        assert!(seen.contains(c), "no real output of {c} checked");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn pretty_is_the_same_object_indented() {
    let cap = root("corpus/captures/fmt-pipe.trace.zst");
    let one = run(&["stats", &cap, "--json"]);
    let pretty = run(&["stats", &cap, "--json", "--pretty"]);
    let one_text = String::from_utf8(one.stdout).expect("utf-8");
    assert_eq!(one_text.lines().count(), 1, "one object per line");
    let pretty_text = String::from_utf8(pretty.stdout).expect("utf-8");
    assert!(pretty_text.lines().count() > 10);
    let a: Value = serde_json::from_str(&one_text).expect("json");
    let b: Value = serde_json::from_str(&pretty_text).expect("json");
    assert_eq!(a, b);
    // --pretty alone is a usage error.
    assert_eq!(run(&["stats", &cap, "--pretty"]).status.code(), Some(2));
}

#[test]
fn validator_rejects_what_the_schema_forbids() {
    let s = schema();
    let cap = root("corpus/captures/fmt-pipe.trace.zst");
    let good = lines(&["replay", &cap, "--json"]).remove(0);
    assert!(validate(&s, &good).is_empty());
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("input");
    assert!(!validate(&s, &missing).is_empty());
    let mut verdict = good.clone();
    verdict["verdicts"]["lookaround"] = "Same".into();
    assert!(!validate(&s, &verdict).is_empty());
    let mut outcome = good.clone();
    outcome["verdict_details"]["lookaround"]["verdict"] = serde_json::json!("diverged");
    assert!(!validate(&s, &outcome).is_empty());
    let mut string_number = good.clone();
    string_number["records"] = "9976".into();
    assert!(!validate(&s, &string_number).is_empty());
    let mut nr = good.clone();
    nr["input"]["nr_cpus"] = 2.into();
    assert!(!validate(&s, &nr).is_empty());
    let mut spaced = good;
    spaced["unplaced"]["lost events"] = 1.into();
    assert!(!bad_keys(&spaced).is_empty());
}
