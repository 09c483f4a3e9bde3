//! CLI tests of `mmreplay replay`, `diff`, `compile` and `bench`: run the built binary on real
//! captures from corpus/captures/ (and on /work/shared samples when MMREPLAY_SHARED_DIR is set),
//! check outputs, JSON keys and exit codes (0 within contract, 1 breach/violation, 2 bad input).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mmreplay")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

#[test]
fn replay_without_trace_reports_the_bundled_capture_deterministically() {
    let a = run(&["replay"]);
    assert!(
        code(&a) == 0 || code(&a) == 1,
        "exit {}: {}",
        code(&a),
        stderr(&a)
    );
    let out = stdout(&a);
    for needle in [
        "<bundled:",
        "reference",
        "lookaround",
        "ad-preserve",
        "batched-unshare",
        "faults",
        "TLB flushes remote",
        "IPI sends shootdown",
        "rmap walks",
        "invariant violations",
        "verdict lookaround:",
        "fidelity",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // The bundled capture has faults: the model must have seen them.
    let faults = out
        .lines()
        .find(|l| l.starts_with("faults"))
        .expect("faults row");
    assert!(
        faults
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 1000),
        "{faults}"
    );
    let b = run(&["replay"]);
    assert_eq!(
        a.stdout, b.stdout,
        "same input and options must give byte-identical output"
    );
}

#[test]
fn replay_json_has_the_documented_keys() {
    let o = run(&["replay", "--json", &corpus("fmt-tgid.trace.zst")]);
    assert!(code(&o) == 0 || code(&o) == 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    for k in [
        "trace", "ops", "unplaced", "policies", "verdicts", "fidelity",
    ] {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    assert!(v["ops"].as_u64().is_some_and(|n| n > 0));
    let r = &v["policies"]["reference"];
    assert!(r["counters"]["faults"].as_u64().is_some_and(|n| n > 0));
    for c in [
        "tlb_flush_local",
        "tlb_flush_remote",
        "ipi_sends_shootdown",
        "ipi_sends_table_sync",
        "ipi_targets",
        "rmap_walks",
        "a_bit_clears",
        "hw_a_sets",
        "hw_d_sets",
        "hw_a_sets_after_mig",
        "mig_entries_set",
        "mig_restored_young",
        "mig_restored_dirty",
        "evictions",
        "refaults",
        "pmd_shares",
        "pmd_unshares",
    ] {
        assert!(r["counters"][c].is_u64(), "counter {c}");
    }
    assert!(r["violations"].is_array());
    assert_eq!(r["snapshot_hash"].as_str().map(str::len), Some(16));
    // Every report records the full policy spec, defaults spelled out.
    assert_eq!(r["spec"], "reference");
    assert_eq!(v["policies"]["lookaround"]["spec"], "lookaround:window=64");
    for cand in ["lookaround", "ad-preserve", "batched-unshare"] {
        let verdict = v["verdicts"][cand].as_str().expect("verdict string");
        assert!(
            [
                "same",
                "diverged_within_contract",
                "contract_breach",
                "not_comparable"
            ]
            .contains(&verdict),
            "{verdict}"
        );
    }
    for k in ["remote_tlb_flushes", "ipis"] {
        assert!(
            v["fidelity"][k]["observed"].is_u64() && v["fidelity"][k]["predicted"].is_u64(),
            "fidelity {k}"
        );
    }
    // This capture logged remote-IPI-send flushes.
    assert!(v["fidelity"]["remote_tlb_flushes"]["observed"]
        .as_u64()
        .is_some_and(|n| n > 0));
}

#[test]
fn bad_inputs_exit_2_naming_the_file() {
    let missing = run(&["replay", "/nonexistent/x.trace"]);
    assert_eq!(code(&missing), 2);
    assert!(
        stderr(&missing).contains("/nonexistent/x.trace"),
        "{}",
        stderr(&missing)
    );

    let d = tmpdir("bad");
    let junk = d.join("junk.trace");
    std::fs::write(&junk, b"\x00\x01\x02 this is not a trace\n").expect("write");
    let o = run(&["replay", junk.to_str().expect("utf8")]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("junk.trace"), "{}", stderr(&o));

    let o = run(&[
        "replay",
        "--policies",
        "reference,nosuch",
        &corpus("fmt-noirq.trace.zst"),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("nosuch"), "{}", stderr(&o));

    let o = run(&["replay", "--mode", "sideways"]);
    assert_eq!(code(&o), 2);
    let o = run(&["replay", "--cpus", "0"]);
    assert_eq!(code(&o), 2);
    let o = run(&["frobnicate"]);
    assert_eq!(code(&o), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn snapshot_out_and_diff() {
    let d = tmpdir("snap");
    let ds = d.to_str().expect("utf8");
    let o = run(&[
        "replay",
        "--policies",
        "reference,ad-preserve",
        "--snapshot-out",
        ds,
        &corpus("compaction.trace.zst"),
    ]);
    assert!(code(&o) == 0 || code(&o) == 1, "{}", stderr(&o));
    let r = d.join("compaction.trace.zst.reference.snap");
    let c = d.join("compaction.trace.zst.ad-preserve.snap");
    assert!(
        r.exists() && c.exists(),
        "{:?}",
        std::fs::read_dir(&d).map(|x| x.count())
    );
    // Same file: exit 0, no output.
    let same = run(&["diff", r.to_str().expect("utf8"), r.to_str().expect("utf8")]);
    assert_eq!(code(&same), 0);
    assert!(stdout(&same).is_empty());
    // A/D preservation keeps young/dirty bits the reference drops: the snapshots differ.
    let diff = run(&["diff", r.to_str().expect("utf8"), c.to_str().expect("utf8")]);
    assert_eq!(code(&diff), 1, "{}", stderr(&diff));
    let text = stdout(&diff);
    assert!(
        text.starts_with("--- ") && text.contains("\n+++ ") && text.contains("\n@@ "),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('-') && l.contains(" a=0 ")),
        "{text}"
    );
    // Not a snapshot / missing: exit 2 naming the file.
    let junk = d.join("junk.snap");
    std::fs::write(&junk, "hello\n").expect("write");
    let bad = run(&[
        "diff",
        r.to_str().expect("utf8"),
        junk.to_str().expect("utf8"),
    ]);
    assert_eq!(code(&bad), 2);
    assert!(stderr(&bad).contains("junk.snap"), "{}", stderr(&bad));
    let missing = run(&["diff", "/nonexistent/a.snap", r.to_str().expect("utf8")]);
    assert_eq!(code(&missing), 2);
    assert!(stderr(&missing).contains("/nonexistent/a.snap"));
    let _ = std::fs::remove_dir_all(&d);
}

fn json_without_source(o: &Output) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(stdout(o).trim()).expect("json");
    if let Some(m) = v.as_object_mut() {
        m.remove("trace");
        m.remove("format");
        // What each input says about itself (lines, sidecar, CPU count source) differs by
        // form; the replay itself must not.
        m.remove("input");
        m.remove("kernel");
    }
    v
}

#[test]
fn compile_then_replay_gives_the_same_report_and_corruption_is_caught() {
    let d = tmpdir("compile");
    let out = d.join("t.mmr");
    let src = corpus("fmt-tgid.trace.zst");
    let o = run(&["compile", &src, "-o", out.to_str().expect("utf8")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("compiled "), "{}", stderr(&o));
    let text = run(&["replay", "--json", &src]);
    let comp = run(&["replay", "--json", out.to_str().expect("utf8")]);
    assert_eq!(code(&text), code(&comp));
    assert_eq!(json_without_source(&text), json_without_source(&comp));

    // Flip one byte in the middle: checksum error naming the file, exit 2.
    let mut bytes = std::fs::read(&out).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let bad = d.join("bad.mmr");
    std::fs::write(&bad, &bytes).expect("write");
    let o = run(&["replay", bad.to_str().expect("utf8")]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.mmr"), "{}", stderr(&o));
    // Truncated.
    let cut = d.join("cut.mmr");
    std::fs::write(&cut, &bytes[..40]).expect("write");
    let o = run(&["replay", cut.to_str().expect("utf8")]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("cut.mmr") && stderr(&o).contains("truncated"),
        "{}",
        stderr(&o)
    );
    // Missing input to compile.
    let o = run(&[
        "compile",
        "/nonexistent/in.trace",
        "-o",
        d.join("x.mmr").to_str().expect("utf8"),
    ]);
    assert_eq!(code(&o), 2);
    assert!(!d.join("x.mmr").exists(), "no output file on failure");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn pid_and_comm_filters_reduce_the_replay() {
    let src = corpus("threads-shootdown.trace.zst");
    let all: serde_json::Value = serde_json::from_str(
        stdout(&run(&["replay", "--json", "--policies", "reference", &src])).trim(),
    )
    .expect("json");
    let one: serde_json::Value = serde_json::from_str(
        stdout(&run(&[
            "replay",
            "--json",
            "--policies",
            "reference",
            "--comm",
            "threads_shootdo",
            &src,
        ]))
        .trim(),
    )
    .expect("json");
    let f = |v: &serde_json::Value| {
        v["policies"]["reference"]["counters"]["faults"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        f(&one) > 0 && f(&one) < f(&all),
        "{} vs {}",
        f(&one),
        f(&all)
    );
    assert!(one["filtered_out"].as_u64().is_some_and(|n| n > 0));
    // A filter that matches nothing is an error, not a report of zeros (issue 19).
    let none = run(&[
        "replay",
        "--json",
        "--policies",
        "reference",
        "--pid",
        "999999",
        &src,
    ]);
    assert_eq!(code(&none), 2);
    assert!(
        stderr(&none).contains("matched no record"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn bench_prints_measurements_and_baselines() {
    let o = run(&[
        "bench",
        "--policies",
        "reference,lookaround",
        &corpus("fmt-noirq.trace.zst"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "deliver all records",
        ".mmr vs text",
        "lowering alone",
        "1 thread:",
        "2 threads",
        "streaming replay x1:",
        "streaming replay x10:",
        "goals:",
        "rss_x10_over_x1",
    ] {
        assert!(out.contains(needle), "missing {needle:?}:\n{out}");
    }
}

#[test]
fn shared_samples_replay_when_available() {
    let Some(dir) = std::env::var_os("MMREPLAY_SHARED_DIR") else {
        eprintln!("note: MMREPLAY_SHARED_DIR not set, skipping the shared-sample replay test");
        return;
    };
    for (name, min_faults) in [
        ("fork-exit-hugetlb-2.trace.zst", 600u64),
        ("threads-shootdown.trace.zst", 80_000),
    ] {
        let p = Path::new(&dir).join("samples").join(name);
        assert!(
            p.exists(),
            "MMREPLAY_SHARED_DIR is set but {} is missing",
            p.display()
        );
        let o = run(&["replay", "--json", p.to_str().expect("utf8")]);
        assert!(code(&o) == 0 || code(&o) == 1, "{}: {}", name, stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
        assert!(
            v["policies"]["reference"]["counters"]["faults"]
                .as_u64()
                .is_some_and(|n| n >= min_faults),
            "{name}"
        );
        assert!(
            v["fidelity"]["remote_tlb_flushes"]["observed"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{name}"
        );
    }
}

/// `replay` opens what the parsers open: a `record --raw` directory gives the same report as the
/// same instance's `trace` text, and standard input (`-`) the same report as the file.
#[test]
fn raw_directory_and_stdin_replay_like_their_text() {
    let paired = |n: &str| format!("{}/../corpus/paired/{n}", env!("CARGO_MANIFEST_DIR"));
    let args = |t: &str| {
        // No --cpus: each input must yield its own CPU count (raw: per_cpu/, text: header).
        vec!["replay".to_string(), t.to_string(), "--json".into()]
    };
    let go = |a: Vec<String>| {
        let o = Command::new(BIN).args(&a).output().expect("run mmreplay");
        assert_eq!(code(&o), 0, "{a:?}: {}", stderr(&o));
        json_without_source(&o)
    };
    let raw = go(args(&paired("raw")));
    let text = go(args(&paired("raw.trace.txt.zst")));
    assert_eq!(raw, text);
    assert!(raw["records"].as_u64().unwrap_or(0) > 100, "{raw}");
    assert_eq!(raw["cpus"], 2, "{raw}");

    let file = corpus("fmt-noirq.trace.zst");
    let bytes = std::fs::read(&file).expect("capture");
    let mut child = Command::new(BIN)
        .args(args("-"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mmreplay");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&bytes).expect("write stdin");
    }
    let o = child.wait_with_output().expect("wait");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json_without_source(&o), go(args(&file)));
}

/// `mmreplay diff A B | head`: a reader that goes away ends the process quietly (SIGPIPE, as
/// for other Unix tools), never with a panic; a diff that runs to the end exits 1 (`diff(1)`).
#[test]
fn closed_stdout_pipe_is_not_a_panic() {
    use std::io::Read as _;
    use std::os::unix::process::ExitStatusExt as _;
    let d = tmpdir("pipe");
    let mk = |name: &str, tag: &str| {
        let mut s = String::from("lru nr_gens 4\n");
        // 3,000 differing lines: ~150 KB of diff, more than a pipe buffer holds.
        for i in 0..3_000 {
            s.push_str(&format!("pte mm1 {i:#x} {tag}\n"));
        }
        let p = d.join(name);
        std::fs::write(&p, s).unwrap();
        p.display().to_string()
    };
    let (a, b) = (mk("a.snap", "young"), mk("b.snap", "old"));
    let mut child = Command::new(BIN)
        .args(["diff", &a, &b])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    out.read_exact(&mut first).unwrap();
    drop(out); // the `head` that has seen enough
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(o.status.code(), Some(101), "{err}");
    assert!(
        o.status.signal() == Some(libc_sigpipe()) || o.status.code() == Some(1),
        "{:?}: {err}",
        o.status
    );
    let full = run(&["diff", &a, &b]);
    assert_eq!(code(&full), 1, "different snapshots: exit 1");
    let _ = std::fs::remove_dir_all(&d);
}

fn libc_sigpipe() -> i32 {
    13
}

/// Every command's errors start `mmreplay CMD: error:`.
#[test]
fn errors_name_the_command() {
    for args in [
        &["replay", "/nonexistent.trace"][..],
        &["stats", "/nonexistent.trace"][..],
        &["compile", "/nonexistent.trace", "-o", "/tmp/x.mmr"][..],
        &["diff", "/nonexistent.a", "/nonexistent.b"][..],
        &["merge", "/nonexistent-dir"][..],
    ] {
        let o = run(args);
        assert_eq!(code(&o), 2, "{args:?}");
        let prefix = format!("mmreplay {}: error: ", args[0]);
        assert!(stderr(&o).starts_with(&prefix), "{args:?}: {}", stderr(&o));
    }
}
