//! One CLI test per problem of issue 19 ("nothing silent, one error style, facts travel with
//! the capture"), each on real captures from corpus/captures/ run through the built binary.
//! Inputs that must be damaged (an unparsable line, a malformed field, a cut file, random
//! bytes) are made in a temporary directory from a real capture; none is a capture.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn cap(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mmreplay")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", out(o), err(o)))
}

fn meta(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(cap(&format!("{name}.meta.json"))).unwrap())
        .unwrap()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-i19-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

/// The text of a real capture with `extra` inserted after line `after`, written (with the
/// capture's sidecar) into `dir`.
fn damaged_copy(dir: &Path, name: &str, after: usize, extra: &str) -> String {
    let mut text = String::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(cap(name)).unwrap())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(after, extra);
    let p = dir.join(name.trim_end_matches(".zst"));
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    std::fs::copy(
        cap(&format!("{name}.meta.json")),
        format!("{}.meta.json", p.display()),
    )
    .unwrap();
    p.display().to_string()
}

/// Replay once with few policies (the tests are about the input, not the candidates).
fn replay(args: &[&str]) -> Output {
    let mut a = vec!["replay"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--policies", "reference,ad-preserve"]);
    run(&a)
}

#[test]
fn replay_reports_lost_events_per_cpu_and_window() {
    let c = cap("pipe-lost-load.trace.zst");
    let m = meta("pipe-lost-load.trace.zst");
    let stated = m["lost_events"].as_u64().unwrap();
    let markers = m["lost_markers"].as_u64().unwrap();
    assert!(stated > 0 && markers > 0);
    let o = replay(&[&c]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let t = out(&o);
    assert!(
        t.contains(&format!("lost: {stated} events in {markers} markers")),
        "{t}"
    );
    assert!(t.contains("  cpu0: ") && t.contains("  cpu1: "), "{t}");
    let v = json(&replay(&[&c, "--json"]));
    let lost = &v["input"]["lost"];
    assert_eq!(lost["events"], stated);
    assert_eq!(lost["markers"], markers);
    let per_cpu: u64 = lost["per_cpu"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["events"].as_u64().unwrap())
        .sum();
    assert_eq!(per_cpu, stated);
    assert_eq!(lost["windows"].as_array().unwrap().len() as u64, markers);
    // The sidecar's per-CPU ring-buffer overrun travels with it.
    assert_eq!(
        lost["overrun_per_cpu"]["0"],
        m["per_cpu_stats"]["cpu0"]["overrun"]
    );
}

#[test]
fn replay_reports_overwritten_events() {
    let m = meta("fmt-overrun.trace.zst");
    let lost = m["entries_written"].as_u64().unwrap() - m["entries_in_buffer"].as_u64().unwrap();
    let o = replay(&[&cap("fmt-overrun.trace.zst")]);
    assert!(
        out(&o).contains(&format!("lost: {lost} overwritten before the read")),
        "{}",
        out(&o)
    );
    let v = json(&replay(&[&cap("fmt-overrun.trace.zst"), "--json"]));
    assert_eq!(v["input"]["lost"]["overwritten"], lost);
    // A capture that lost nothing says so.
    assert!(out(&replay(&[&cap("fmt-pipe.trace.zst")])).contains("lost: none"));
}

#[test]
fn strict_refuses_lost_events_in_every_command() {
    let c = cap("pipe-lost-load.trace.zst");
    for args in [
        vec!["replay", c.as_str(), "--strict"],
        vec!["fidelity", c.as_str(), "--strict"],
        vec!["stats", c.as_str(), "--strict"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", out(&o));
        assert!(
            err(&o).contains("--strict") && err(&o).contains("lost"),
            "{}",
            err(&o)
        );
    }
    // Without --strict the same capture replays (counted and reported).
    assert_eq!(code(&replay(&[&c])), 0);
}

#[test]
fn replay_reports_unparsed_lines_as_stats_does() {
    let d = tmpdir("unparsed");
    let p = damaged_copy(&d, "fmt-pipe.trace.zst", 10, "this is not an ftrace line");
    let s = json(&run(&["stats", &p, "--json"]));
    assert_eq!(s["unparsed_lines"], 1);
    let v = json(&replay(&[&p, "--json"]));
    assert_eq!(v["input"]["parse"]["unparsed_lines"], s["unparsed_lines"]);
    assert!(out(&replay(&[&p])).contains("1 unparsed"));
    let o = replay(&[&p, "--strict"]);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains(":11"), "names the line: {}", err(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn malformed_field_values_are_counted_or_refused() {
    let d = tmpdir("fields");
    let bad = "           <...>-4160    [000] d....  1524.051851: page_fault_user: address=0xZZQ ip=hello error_code=0x6";
    let p = damaged_copy(&d, "fmt-pipe.trace.zst", 6, bad);
    let s = json(&run(&["stats", &p, "--json"]));
    assert_eq!(s["unparsed_payload_by_event"]["page_fault_user"], 1);
    let v = json(&replay(&[&p, "--json"]));
    assert_eq!(
        v["input"]["parse"]["unparsed_payload_by_event"]["page_fault_user"],
        1
    );
    for cmd in ["stats", "replay"] {
        let o = run(&[cmd, &p, "--strict"]);
        assert_eq!(code(&o), 2, "{cmd} accepted 0xZZQ");
        let e = err(&o);
        assert!(e.contains("page_fault_user") && e.contains(":7"), "{e}");
    }
    // A well-formed fault on the same line number is a fault, strict or not.
    let ok = bad
        .replace("0xZZQ", "0x7fd890000040")
        .replace("hello", "0x7fd8959a65cf");
    let p = damaged_copy(&d, "fmt-pipe.trace.zst", 6, &ok);
    assert_eq!(code(&run(&["stats", &p, "--strict"])), 0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn empty_capture_is_an_error() {
    let d = tmpdir("empty");
    // The header lines of a real capture, without a single event.
    let mut text = String::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(cap("fmt-overrun.trace.zst")).unwrap())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let header: String = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = d.join("header-only.txt");
    std::fs::write(&p, header).unwrap();
    let p = p.display().to_string();
    for cmd in ["replay", "stats", "fidelity"] {
        let o = run(&[cmd, &p]);
        assert_eq!(code(&o), 2, "{cmd}: {}", out(&o));
        assert!(err(&o).contains("no records"), "{cmd}: {}", err(&o));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn filter_matching_nothing_is_an_error() {
    let c = cap("fmt-pipe.trace.zst");
    for args in [
        vec!["replay", c.as_str(), "--pid", "999999"],
        vec!["replay", c.as_str(), "--comm", "nosuch"],
        vec!["stats", c.as_str(), "--pid", "999999"],
        vec!["stats", c.as_str(), "--comm", "nosuch"],
        vec!["fidelity", c.as_str(), "--pid", "999999"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", out(&o));
        assert!(err(&o).contains("matched no record"), "{}", err(&o));
    }
    // A filter that matches is recorded in the JSON.
    let pid = meta("fmt-pipe.trace.zst")["workload_pid"].as_i64().unwrap();
    let v = json(&replay(&[&c, "--workload", "--json"]));
    assert_eq!(v["filters"]["pid"], pid);
    assert_eq!(v["filters"]["workload"], true);
    assert!(v["input"]["matched"].as_u64().unwrap() > 0);
}

#[test]
fn lockstep_note_says_where_evictions_come_from() {
    let d = tmpdir("pageout");
    let p = d.join("pageout.litmus");
    std::fs::write(
        &p,
        "# HAND-WRITTEN litmus scenario: MADV_PAGEOUT evicts without a reclaim op.\n\
         # profile: cpus=2\n\
         exec cpu=0 mm=1\n\
         mmap cpu=0 mm=1 addr=0x7f0000000000 len=16k prot=rw flags=private|anonymous\n\
         access cpu=0 mm=1 va=0x7f0000000000 kind=write\n\
         access cpu=0 mm=1 va=0x7f0000001000 kind=write\n\
         madvise cpu=0 mm=1 addr=0x7f0000000000 len=16k advice=pageout\n",
    )
    .unwrap();
    let o = run(&["replay", &p.display().to_string()]);
    let t = out(&o);
    let evictions = t
        .lines()
        .find(|l| l.starts_with("evictions"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("evictions row");
    assert!(evictions > 0, "{t}");
    assert!(!t.contains("no reclaim op in this capture"), "{t}");
    assert!(
        t.contains(&format!(
            "its {evictions} evictions are MADV_PAGEOUT victims"
        )),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn cpu_count_and_clock_come_from_the_sidecar() {
    let c = cap("fmt-pipe.trace.zst");
    let m = meta("fmt-pipe.trace.zst");
    let cpus = m["cpus"].as_u64().unwrap();
    assert_eq!(m["source"], "trace_pipe", "a pipe capture: no #P: header");
    for extra in [&[][..], &["--kernel", "6.1"][..]] {
        let mut a = vec![c.as_str(), "--json"];
        a.extend_from_slice(extra);
        let v = json(&replay(&a));
        assert_eq!(v["cpus"], cpus, "{extra:?}");
        assert_eq!(v["input"]["cpus_source"], "sidecar");
        let ks = if extra.is_empty() {
            "sidecar"
        } else {
            "option"
        };
        assert_eq!(v["input"]["kernel_source"], ks, "{extra:?}");
        assert_eq!(v["input"]["clock"], m["trace_clock"]);
        assert!(v["approximations"]["nr_cpus_assumed"].is_null());
        let mut f = vec!["fidelity", c.as_str(), "--json"];
        f.extend_from_slice(extra);
        assert_eq!(json(&run(&f))["cpus"], cpus, "fidelity {extra:?}");
    }
    // Standard input has no sidecar: the assumed count is said, and --strict refuses it.
    let stdin_run = |strict: bool| {
        let mut child = Command::new(BIN)
            .args(["replay", "-", "--json", "--policies", "reference"])
            .args(if strict { &["--strict"][..] } else { &[][..] })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let data = std::fs::read(&c).unwrap();
        let mut sin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = sin.write_all(&data);
        });
        let o = child.wait_with_output().unwrap();
        let _ = writer.join();
        o
    };
    let o = stdin_run(false);
    let v = json(&o);
    assert_eq!(v["input"]["cpus_source"], "assumed");
    assert_eq!(v["input"]["kernel_source"], "assumed");
    assert_eq!(v["approximations"]["nr_cpus_assumed"], v["cpus"]);
    let o = stdin_run(true);
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("CPU count"), "{}", err(&o));
    assert!(err(&o).contains("kernel"), "{}", err(&o));
}

/// Every failure is one line `mmreplay CMD: error: FILE...`, with the cause.
fn one_error_line(o: &Output, cmd: &str) -> String {
    assert_eq!(code(o), 2, "{cmd}: {}", out(o));
    let e = err(o);
    assert_eq!(e.lines().count(), 1, "{cmd}: {e}");
    assert!(e.starts_with(&format!("mmreplay {cmd}: error: ")), "{e}");
    e
}

#[test]
fn binary_garbage_is_shown_as_hex() {
    let d = tmpdir("garbage");
    // Deterministic non-text bytes (an LCG), not a capture.
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..3000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let p = d.join("random.bin");
    std::fs::write(&p, &bytes).unwrap();
    let p = p.display().to_string();
    let mmr = d.join("x.mmr").display().to_string();
    for (cmd, args) in [
        ("replay", vec!["replay", p.as_str()]),
        ("stats", vec!["stats", p.as_str()]),
        ("compile", vec!["compile", p.as_str(), "-o", mmr.as_str()]),
    ] {
        let e = one_error_line(&run(&args), cmd);
        assert!(e.contains("<binary: "), "{e}");
        assert!(!e.contains('\u{FFFD}'), "mojibake: {e}");
        assert!(e.len() < 600, "{} bytes: {e}", e.len());
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn directory_that_is_not_a_raw_capture_is_named() {
    let d = tmpdir("adir");
    let p = d.display().to_string();
    for cmd in ["replay", "stats"] {
        let e = one_error_line(&run(&[cmd, &p]), cmd);
        assert!(e.contains("not a raw capture"), "{e}");
        assert!(!e.contains("truncated or corrupt"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `record` and `check` (a per-file error, the other files still checked) say errors in the
/// one style too, file first, cause after `because:`.
#[test]
fn record_and_check_errors_name_the_file_first() {
    let d = tmpdir("style");
    // A tracefs root that does not exist: refused (as root: it cannot be mounted there; as a
    // user: record needs root), naming the path first either way.
    let root = d.join("no-tracefs").display().to_string();
    let e = one_error_line(
        &run(&["record", "--tracefs", &root, "--", "true"]),
        "record",
    );
    assert!(
        e.starts_with(&format!("mmreplay record: error: {root}: ")),
        "{e}"
    );
    let missing = d.join("missing.litmus").display().to_string();
    let o = run(&["check", &missing]);
    assert_eq!(code(&o), 2);
    let e = err(&o);
    assert_eq!(
        e.trim_end(),
        format!(
            "mmreplay check: error: {missing}: cannot read, because: No such file or directory \
             (os error 2)"
        ),
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_command_keeps_the_cause() {
    let d = tmpdir("cut");
    let whole = std::fs::read(cap("fmt-pipe.trace.zst")).unwrap();
    let p = d.join("cut.trace.zst");
    std::fs::write(&p, &whole[..whole.len() / 2]).unwrap();
    let p = p.display().to_string();
    let mmr = d.join("x.mmr").display().to_string();
    for (cmd, args) in [
        ("stats", vec!["stats", p.as_str()]),
        ("replay", vec!["replay", p.as_str()]),
        ("compile", vec!["compile", p.as_str(), "-o", mmr.as_str()]),
        ("fidelity", vec!["fidelity", p.as_str()]),
    ] {
        let e = one_error_line(&run(&args), cmd);
        assert!(e.contains(&p), "{e}");
        assert!(e.contains("because: incomplete frame"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn exit_codes_are_documented_per_command() {
    let help = out(&run(&["--help"]));
    let cmds: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(cmds.len() >= 13, "{cmds:?}");
    for c in cmds {
        let h = out(&run(&[c, "--help"]));
        assert!(h.contains("Exit status: 0"), "{c} --help: {h}");
    }
    assert!(out(&run(&["diff", "--help"]))
        .contains("0 the snapshots are the same; 1 they differ; 2 trouble"));
}

#[test]
fn json_uses_one_name_per_fact() {
    let c = cap("fmt-pipe.trace.zst");
    let r = json(&replay(&[&c, "--json"]));
    let s = json(&run(&["stats", &c, "--json"]));
    let f = json(&run(&["fidelity", &c, "--json"]));
    for v in [&r, &f] {
        assert!(v.get("nr_cpus").is_none() && v["cpus"].is_u64());
        assert!(v["kernel"].get("nr_cpus").is_none());
        assert_eq!(v["filters"]["pid"], Value::Null);
    }
    assert_eq!(r["format"], s["format"], "one format name");
    // One verdict spelling: the details carry the verdict itself, as `verdicts` does.
    assert_eq!(r["verdict_details"]["ad-preserve"]["verdict"], "same");
    assert_eq!(r["verdicts"]["ad-preserve"], "same");
    assert_eq!(
        r["verdict_details"]["ad-preserve"]["first_difference"],
        Value::Null
    );
    // The profile the model ran with is recorded, in the same spelling as `lru`.
    for v in [&r, &f] {
        assert_eq!(v["kernel"]["mechanics"]["cpus"], v["cpus"]);
        assert_eq!(v["kernel"]["mechanics"]["lru"], "classic");
    }
    assert_eq!(r["lru"], "classic");
    for k in s["tlb_flush_by_reason"].as_object().unwrap().keys() {
        assert!(!k.contains(' '), "{k}");
    }
    assert_eq!(r["schema_version"], s["schema_version"]);
    assert_eq!(r["schema_version"], f["schema_version"]);
}

#[test]
fn cli_docs_are_generated_and_checked() {
    let docs = format!("{}/../docs", env!("CARGO_MANIFEST_DIR"));
    assert_eq!(code(&run(&["docs", "--check", "--out", &docs])), 0);
    let md = std::fs::read_to_string(format!("{docs}/cli.md")).unwrap();
    // The flags the issue found undocumented are there, with policy parameters.
    for needle in [
        "`--tgid`",
        "`--follow`",
        "`--from FROM`",
        "`--raw`",
        "`--clock CLOCK`",
        "`--cpus CPUS`",
        "`--cpumask CPUMASK`",
        "`--hash-every HASH_EVERY`",
        "`lookaround:window=N`",
    ] {
        assert!(md.contains(needle), "docs/cli.md lacks {needle}");
    }
    // Negative control: a stale copy fails the check.
    let d = tmpdir("docs");
    assert_eq!(code(&run(&["docs", "--out", &d.display().to_string()])), 0);
    std::fs::write(d.join("cli.md"), md.replace("--tgid", "--tgidx")).unwrap();
    let o = run(&["docs", "--check", "--out", &d.display().to_string()]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("cli.md"));
    let _ = std::fs::remove_dir_all(&d);
}
