//! `mmreplay matrix` / `merge` end to end, as a cluster would run them: the corpus × policies ×
//! a look-around window sweep, once unsharded and once as 4 shards in parallel processes that
//! find their index in the scheduler's environment (two as a Slurm array, two as a Kubernetes
//! Indexed Job). One shard is killed (SIGKILL) after its first cell, the merge must then name the
//! missing cells and fail; the shard is re-run, skips the cells it had finished, and the merged
//! JSON and CSV must equal the unsharded run's byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn traces() -> Vec<String> {
    [
        "threads-shootdown.trace.zst",
        "hugetlb-share-conc.trace.zst",
        "gcc-hello.trace.zst",
        "madv-mprotect.trace.zst",
        "fmt-tgid.trace.zst",
    ]
    .iter()
    .map(|t| corpus(t))
    .collect()
}

fn matrix_args(out: &Path) -> Vec<String> {
    let mut v = vec!["matrix".to_string(), "--traces".into()];
    v.extend(traces());
    v.extend(
        [
            "--policies",
            "reference,lookaround,ad-preserve,batched-unshare",
            "--sweep",
            "lookaround:window=8,16",
            "--out",
        ]
        .map(String::from),
    );
    v.push(out.display().to_string());
    v
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-matrix-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The environment a scheduler would give shard `i` of 4.
fn scheduler_env(cmd: &mut Command, i: usize) {
    for k in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "MMREPLAY_SHARD_COUNT",
    ] {
        cmd.env_remove(k);
    }
    if i < 2 {
        // A Slurm array `--array=1-4`: ids from 1.
        cmd.env("SLURM_ARRAY_TASK_ID", (i + 1).to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "4");
    } else {
        cmd.env("JOB_COMPLETION_INDEX", i.to_string())
            .env("MMREPLAY_SHARD_COUNT", "4");
    }
}

fn shard_cmd(out: &Path, i: usize) -> Command {
    let mut c = Command::new(BIN);
    c.args(matrix_args(out))
        .args(["--shard", "auto", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    scheduler_env(&mut c, i);
    c
}

#[test]
fn sharded_killed_and_rerun_equals_unsharded() {
    let u = tmpdir("unsharded");
    let whole = ok(&Command::new(BIN)
        .args(matrix_args(&u))
        .arg("--json")
        .output()
        .unwrap());
    let merged_u = ok(&Command::new(BIN)
        .args(["merge", u.to_str().unwrap(), "--json"])
        .output()
        .unwrap());
    assert_eq!(whole, merged_u, "matrix prints what merge prints");
    let v: serde_json::Value = serde_json::from_str(&whole).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 5 * 6, "5 captures × 6 policy specs");
    assert!(cells.iter().any(|c| c["policy"] == "lookaround:window=8"));
    assert!(cells.iter().any(|c| c["policy"] == "lookaround:window=64"));
    // The table is the data: the batched-unshare cell on the hugetlb capture diverges.
    assert!(cells.iter().any(|c| c["policy"] == "batched-unshare"
        && c["trace"].as_str().unwrap().contains("hugetlb-share-conc")
        && c["verdict"] == "diverged_within_contract"));
    for key in ["\"seconds\"", "\"elapsed", "\"host", "\"date"] {
        assert!(
            !whole.contains(key),
            "no timings or hosts in the output: {key}"
        );
    }

    // Which cells shard 1 owns (every shard computes the same assignment).
    let s = tmpdir("sharded");
    let list = ok(&shard_cmd(&s, 1).arg("--list").output().unwrap());
    let mine: Vec<String> = list
        .lines()
        .filter(|l| l.split('\t').nth(1) == Some("shard 1"))
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert!(mine.len() >= 3, "shard 1 owns {} cells: {list}", mine.len());

    // Four shards at once; shard 1 is killed right after its first cell lands.
    let mut kids: Vec<_> = (0..4).map(|i| shard_cmd(&s, i).spawn().unwrap()).collect();
    let cell_file = |id: &str| s.join("cells").join(format!("{id}.json"));
    let t0 = Instant::now();
    while !mine.iter().any(|id| cell_file(id).exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "shard 1 wrote no cell"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    kids[1].kill().unwrap();
    for k in &mut kids {
        k.wait().unwrap();
    }
    let done = mine.iter().filter(|id| cell_file(id).exists()).count();
    assert!(
        done < mine.len(),
        "shard 1 finished all {} cells before the kill; the test needs slower cells",
        mine.len()
    );
    let partial = Command::new(BIN)
        .args(["merge", s.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(partial.status.code(), Some(1), "an incomplete matrix fails");
    let err = String::from_utf8_lossy(&partial.stderr);
    assert!(
        err.contains(&format!("{} of 30 cells missing", mine.len() - done)),
        "{err}"
    );

    // The re-run of shard 1 skips what it had finished.
    let rerun = shard_cmd(&s, 1).output().unwrap();
    ok(&rerun);
    let err = String::from_utf8_lossy(&rerun.stderr);
    assert!(err.contains(&format!("{done} already done")), "{err}");
    let left: Vec<_> = std::fs::read_dir(s.join("cells"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");

    let merged_s = ok(&Command::new(BIN)
        .args(["merge", s.to_str().unwrap(), "--json"])
        .output()
        .unwrap());
    assert_eq!(merged_s, merged_u, "sharded = unsharded, byte for byte");
    let csv = |d: &Path| {
        ok(&Command::new(BIN)
            .args(["merge", d.to_str().unwrap(), "--csv"])
            .output()
            .unwrap())
    };
    let csv_s = csv(&s);
    assert_eq!(csv_s, csv(&u));
    assert_eq!(csv_s.lines().count(), 31, "header + one row per cell");
    assert!(csv_s.starts_with("trace,trace_hash,policy,verdict,"));
    let _ = std::fs::remove_dir_all(&u);
    let _ = std::fs::remove_dir_all(&s);
}

#[test]
fn usage_errors_exit_2_and_name_the_cause() {
    let d = tmpdir("usage");
    let run = |args: &[&str]| {
        let o = Command::new(BIN).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let t = corpus("fmt-tgid.trace.zst");
    let out = d.to_str().unwrap();
    let (c, e) = run(&[
        "matrix",
        "--traces",
        &t,
        "--sweep",
        "lookaround:window=0",
        "--out",
        out,
    ]);
    assert_eq!(c, Some(2));
    assert!(e.contains("--sweep lookaround:window=0"), "{e}");
    let (c, e) = run(&["matrix", "--traces", "/nonexistent/*.zst", "--out", out]);
    assert_eq!(c, Some(2));
    assert!(e.contains("matches no file"), "{e}");
    let (c, e) = run(&["matrix", "--traces", &t, "--shard", "4/4", "--out", out]);
    assert_eq!(c, Some(2));
    assert!(e.contains("0-based"), "{e}");
    let (c, e) = run(&["matrix", "--traces", &t, "--shard", "0/2"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("--out"), "{e}");
    // A directory holding another matrix is refused, not mixed.
    ok(&Command::new(BIN)
        .args(["matrix", "--traces", &t, "--out", out])
        .output()
        .unwrap());
    let (c, e) = run(&[
        "matrix",
        "--traces",
        &t,
        "--policies",
        "lookaround",
        "--out",
        out,
    ]);
    assert_eq!(c, Some(2));
    assert!(e.contains("different matrix"), "{e}");
    let (c, e) = run(&["merge", "/nonexistent-dir"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("matrix.json"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn policies_lists_parameters() {
    let o = ok(&Command::new(BIN)
        .args(["policies", "--json"])
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let la = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "lookaround")
        .unwrap();
    assert_eq!(la["params"][0]["name"], "window");
    assert_eq!(la["params"][0]["default"], 64);
}

/// The commands docs/cluster.md gives for a Slurm array and a Kubernetes Indexed Job run as
/// written (paths pointed at the corpus, `--list` added so nothing is replayed), in the
/// environment each scheduler sets, so the documented examples cannot go stale.
#[test]
fn cluster_doc_commands_run_as_documented() {
    let doc = std::fs::read_to_string(format!("{}/../docs/cluster.md", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let captures = format!("{}/../corpus/captures", env!("CARGO_MANIFEST_DIR"));
    let out = tmpdir("doc");
    // Slurm: the `exec ./mmreplay matrix \` continuation lines of the batch script.
    let start = doc
        .find("exec ./mmreplay matrix")
        .expect("Slurm script in the doc");
    let mut line = String::new();
    for l in doc[start..].lines() {
        line.push_str(l.trim_end_matches('\\').trim());
        line.push(' ');
        if !l.ends_with('\\') {
            break;
        }
    }
    let slurm: Vec<String> = line
        .split_whitespace()
        .skip(2)
        .map(|w| {
            w.trim_matches('\'')
                .trim_matches('"')
                .replace("captures/", &format!("{captures}/"))
                .replace("runs/m1", out.to_str().unwrap())
                .replace("$SLURM_CPUS_PER_TASK", "1")
        })
        .collect();
    let o = Command::new(BIN)
        .args(&slurm)
        .arg("--list")
        .env("SLURM_ARRAY_TASK_ID", "3")
        .env("SLURM_ARRAY_TASK_MIN", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "16")
        .output()
        .unwrap();
    let list = ok(&o);
    assert!(list.contains("lookaround+window=63"), "{slurm:?}: {list}");
    // Kubernetes: the container's `command:` flow sequence.
    let start = doc.find("command: [").expect("Job manifest in the doc") + "command: ".len();
    let end = start + doc[start..].find(']').unwrap() + 1;
    let words: Vec<String> = serde_json::from_str(&doc[start..end].replace('\n', " ")).unwrap();
    let k8s: Vec<String> = words
        .iter()
        .skip(1)
        .map(|w| {
            w.replace("/data/captures", &captures)
                .replace("/data/runs/m1", out.to_str().unwrap())
        })
        .collect();
    let count = doc
        .split("name: MMREPLAY_SHARD_COUNT")
        .nth(1)
        .and_then(|r| r.split('"').nth(1))
        .expect("MMREPLAY_SHARD_COUNT in the manifest");
    assert!(doc.contains(&format!("completions: {count}")));
    let o = Command::new(BIN)
        .args(&k8s)
        .arg("--list")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env("JOB_COMPLETION_INDEX", "15")
        .env("MMREPLAY_SHARD_COUNT", count)
        .output()
        .unwrap();
    assert_eq!(ok(&o), list, "both examples describe the same matrix");
    let _ = std::fs::remove_dir_all(&out);
}

/// Every cell models its capture's own kernel, as `replay` does: look-around diverges on the
/// 6.1 capture recorded with MGLRU on (it exists only in MGLRU).
#[test]
fn cells_model_the_captures_kernel() {
    let o = ok(&Command::new(BIN)
        .args([
            "matrix",
            "--traces",
            &corpus("k61-reclaim-mglru.trace.zst"),
            "--policies",
            "lookaround",
            "--json",
        ])
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    let la = v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["policy"] == "lookaround:window=64")
        .unwrap();
    assert_eq!(la["verdict"], "diverged_within_contract", "{la}");
}
