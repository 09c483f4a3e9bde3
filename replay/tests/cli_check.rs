//! `mmreplay check` and litmus files as `replay` inputs: one test per exit code (0 every
//! expectation holds, 1 one fails, 2 bad input), on the hand-written scenarios of
//! corpus/litmus/ and on copies with one expectation flipped or one line broken.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn litmus(name: &str) -> String {
    format!("{}/../corpus/litmus/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mmreplay")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-check-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

fn all_litmus() -> Vec<String> {
    let dir = litmus("");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus/litmus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "litmus"))
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn check_exits_0_when_every_expectation_holds() {
    let files = all_litmus();
    assert!(files.len() >= 6, "{files:?}");
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(String::as_str))
        .collect();
    let o = run(&args);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(out.matches(": ok (").count(), files.len(), "{out}");
    // This test binary is built with the negative controls: none is skipped, so their
    // violations and breaches were checked too.
    assert!(!out.contains("skipped"), "{out}");
}

#[test]
fn check_exits_1_when_an_expectation_fails() {
    let text = std::fs::read_to_string(litmus("c-hugetlb-fork-unshare.litmus")).expect("read");
    let flipped = text.replace(
        "# check batched-unshare: ipi_sends_table_sync == 1",
        "# check batched-unshare: ipi_sends_table_sync == 6",
    );
    assert_ne!(flipped, text);
    let d = tmpdir("fail");
    let f = d.join("flipped.litmus");
    std::fs::write(&f, flipped).expect("write");
    let o = run(&["check", &f.display().to_string(), "--json"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let failed = v["failed"].as_array().expect("failed");
    assert_eq!(failed.len(), 1, "{out}");
    assert!(
        failed[0]
            .as_str()
            .is_some_and(|m| m.contains("ipi_sends_table_sync = 1")),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn check_exits_2_on_bad_input() {
    let d = tmpdir("bad");
    let f = d.join("bad.litmus");
    std::fs::write(&f, "exec cpu=0 mm=1\nfrob cpu=0\n").expect("write");
    let o = run(&["check", &f.display().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // The one error style, on stderr: `mmreplay check: error: FILE:LINE: what`.
    assert!(
        err.starts_with("mmreplay check: error: ") && err.contains("bad.litmus:2: expected an op"),
        "{err}"
    );
    // A missing file is bad input too, and does not stop the other files being checked.
    let o = run(&[
        "check",
        "/nonexistent.litmus",
        &litmus("d-pinned-anon-fork.litmus"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("d-pinned-anon-fork.litmus: ok"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn replay_runs_a_litmus_file() {
    let o = run(&["replay", &litmus("c-hugetlb-fork-unshare.litmus"), "--json"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["format"], "litmus");
    assert_eq!(v["ops"], 13);
    assert_eq!(v["verdicts"]["batched-unshare"], "diverged_within_contract");
    assert_eq!(
        v["policies"]["reference"]["counters"]["ipi_sends_table_sync"],
        6
    );
}
