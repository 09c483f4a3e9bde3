//! CLI tests of the compiled `.mmr` format (version 5: compressed, directory-independent,
//! carrying the capture's sidecar and its parse diagnostics) and of `bench`'s goals (`--json`, `--check`, `--goal`).
//! Small corpus captures only: these run the debug-profile binary in CI.

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
    let d = std::env::temp_dir().join(format!("mmreplay-mmr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn compile(src: &str, out: &Path) {
    let o = run(&["compile", src, "-o", s(out)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// `--json` output without the keys that name the input (path and format differ by design).
/// Everything the text reader saw (lines, skipped headers, unparsed lines, the overwritten
/// count of the trace header) travels in the `.mmr`, so the `input` object must be equal.
fn json_without_source(o: &Output) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(stdout(o).trim()).expect("json");
    if let Some(m) = v.as_object_mut() {
        m.remove("trace");
        m.remove("format");
    }
    v
}

/// A compiled capture replays exactly as its text: counters, verdicts, snapshots, fidelity,
/// the input facts (fmt-overrun's 10,327 overwritten events, skipped and unparsed lines), and
/// the kernel profile and LRU its sidecar chose (the 6.1 capture would replay as 6.18
/// with classic defaults if the sidecar were lost), also with `--workload`.
#[test]
fn mmr_replays_like_its_text_with_the_sidecar_it_carries() {
    let d = tmpdir("rt");
    for cap in [
        "k61-hugetlb-fork.trace.zst",
        "fmt-overrun.trace.zst",
        "hugetlb-share-conc.trace.zst",
    ] {
        let src = corpus(cap);
        let out = d.join(format!("{cap}.mmr"));
        compile(&src, &out);
        // No sidecar beside the compiled file: what it knows, it carries.
        assert!(!Path::new(&format!("{}.meta.json", s(&out))).exists());
        let size = std::fs::metadata(&out).expect("mmr").len();
        let text = std::fs::metadata(&src).expect("capture").len();
        assert!(
            size <= text,
            "{cap}: .mmr is {size} bytes, the zstd text {text}"
        );
        for extra in [&[][..], &["--workload"][..]] {
            let mut a = vec!["replay", "--json"];
            a.extend_from_slice(extra);
            let t = run(&[a.as_slice(), &[src.as_str()]].concat());
            let c = run(&[a.as_slice(), &[s(&out)]].concat());
            assert_eq!(code(&t), 0, "{cap} {extra:?}: {}", stderr(&t));
            assert_eq!(code(&c), 0, "{cap} {extra:?}: {}", stderr(&c));
            assert_eq!(
                json_without_source(&t),
                json_without_source(&c),
                "{cap} {extra:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The same capture compiled from two directories gives the same bytes, and neither
/// directory's name is inside.
#[test]
fn mmr_bytes_do_not_depend_on_the_directory() {
    let d = tmpdir("dirs");
    let cap = "fmt-tgid.trace.zst";
    let mut outs = Vec::new();
    for sub in ["first-place", "elsewhere-entirely"] {
        let dir = d.join(sub);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let src = dir.join(cap);
        std::fs::copy(corpus(cap), &src).expect("copy capture");
        std::fs::copy(
            corpus(&format!("{cap}.meta.json")),
            dir.join(format!("{cap}.meta.json")),
        )
        .expect("copy sidecar");
        let out = dir.join("out.mmr");
        compile(s(&src), &out);
        let bytes = std::fs::read(&out).expect("read");
        assert!(
            !bytes.windows(sub.len()).any(|w| w == sub.as_bytes()),
            "{sub} is inside the compiled file"
        );
        outs.push(bytes);
    }
    assert!(
        outs[0] == outs[1],
        "compiled bytes differ between directories"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `stats` reads a compiled file: the same records and event counts as from the text.
#[test]
fn stats_reads_mmr() {
    let d = tmpdir("stats");
    for cap in ["fmt-tgid.trace.zst", "fmt-overrun.trace.zst"] {
        let src = corpus(cap);
        let out = d.join(format!("{cap}.mmr"));
        compile(&src, &out);
        let t = run(&["stats", "--json", &src]);
        let c = run(&["stats", "--json", s(&out)]);
        assert_eq!(code(&t), 0, "{}", stderr(&t));
        assert_eq!(code(&c), 0, "{}", stderr(&c));
        let mut t: serde_json::Value = serde_json::from_str(&stdout(&t)).expect("json");
        let mut c: serde_json::Value = serde_json::from_str(&stdout(&c)).expect("json");
        assert!(t["records"].as_u64().is_some_and(|n| n > 0));
        assert!(c["format"]
            .as_str()
            .is_some_and(|f| f.starts_with("compiled")));
        // Everything but the format name: records, events, and the diagnostics of the text
        // (lines, skipped lines, overwritten events) the `.mmr` carries.
        for v in [&mut t, &mut c] {
            v.as_object_mut().expect("object").remove("format");
        }
        assert_eq!(t, c, "{cap}");
        if cap == "fmt-overrun.trace.zst" {
            // 12071 written, 1744 kept (its `trace` header).
            assert_eq!(c["lost"]["overwritten"], 10327, "{c}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A compiled file of an older version is refused with a message that says to recompile.
#[test]
fn old_mmr_version_is_a_clear_error() {
    let d = tmpdir("old");
    let out = d.join("t.mmr");
    compile(&corpus("fmt-overrun.trace.zst"), &out);
    let mut bytes = std::fs::read(&out).expect("read");
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let old = d.join("old.mmr");
    std::fs::write(&old, &bytes).expect("write");
    let o = run(&["replay", s(&old)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("old.mmr") && e.contains("version 3") && e.contains("recompile"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

fn bench(extra: &[&str]) -> Output {
    let cap = corpus("fmt-overrun.trace.zst");
    let mut a = vec![
        "bench",
        "--json",
        "--check",
        "--runs",
        "2",
        "--io-runs",
        "1",
        "--policies",
        "reference,lookaround",
    ];
    a.extend_from_slice(extra);
    a.push(&cap);
    run(&a)
}

/// `bench --json` has the documented keys; `--check` exits 0 when every goal passes and 1
/// when one fails (goals overridden so the outcome does not depend on this machine).
#[test]
fn bench_json_keys_and_check_exit_code() {
    let lenient = [
        "--goal",
        "ops_per_s=0",
        "--goal",
        "parallel_speedup=0",
        "--goal",
        "mmr_cpu_speedup=0",
        "--goal",
        "mmr_size_ratio=1e9",
        "--goal",
        "rss_x10_over_x1=1e9",
    ];
    let o = bench(&lenient);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    let errs = mmreplay::json_schema::validate(&mmreplay::json_schema::schema(), &v);
    assert!(errs.is_empty(), "bench --json against the schema: {errs:?}");
    assert_eq!(v["command"], "bench");
    for p in ["reference", "lookaround"] {
        let r = v["policies"][p]["ops_per_s"].as_f64();
        assert!(r.is_some_and(|r| r > 0.0), "policies.{p}.ops_per_s: {v}");
    }
    assert!(v["parallel"]["speedup"].as_f64().is_some_and(|x| x > 0.0));
    assert_eq!(v["parallel"]["speedups"].as_array().map(Vec::len), Some(2));
    assert!(v["rss"]["x1_kb"].as_u64().is_some_and(|x| x > 0));
    assert!(v["mmr"]["mmr_bytes"].as_u64().is_some_and(|x| x > 0));
    let goals = v["goals"].as_array().expect("goals");
    assert_eq!(goals.len(), 2 + 4, "one per policy + 4: {v}");
    assert!(goals.iter().all(|g| g["pass"] == true), "{v}");
    // The text lines went to stderr, one per goal with its verdict.
    assert!(stderr(&o).contains("parallel_speedup") && stderr(&o).contains("pass"));

    // One goal made impossible: --check exits 1 and names it as failed.
    let mut strict = lenient.to_vec();
    strict.extend(["--goal", "mmr_size_ratio=0"]);
    let o = bench(&strict);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json");
    let failed: Vec<&str> = v["goals"]
        .as_array()
        .expect("goals")
        .iter()
        .filter(|g| g["pass"] == false)
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(failed, ["mmr_size_ratio"]);
    assert!(stderr(&o).contains("FAIL"));

    // An unknown goal is a usage error.
    let o = bench(&["--goal", "nosuch=1"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("nosuch"), "{}", stderr(&o));
}
