//! Issue 19's closure audit: the problems the earlier tests (`cli_issue19.rs`, `cli_replay.rs`,
//! `cli_json_schema.rs`, `mmr_bench.rs`, `readme_examples.rs`, `cli_glossary.rs`,
//! tests/tests/record_e2e.rs) did not pin yet, each run through the built binary.
//! Inputs that must be damaged are made in a temporary directory; none is a capture.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mmreplay")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-i19a-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

/// A file the binary readers cannot read (the raw capture's ring-buffer file, here
/// `/proc/self/mem`, which fails with EIO at offset 0) is named first, the OS cause after
/// `because:` (the one style), not `FILE: CAUSE` glued inside another message.
#[test]
fn unreadable_file_inside_a_raw_capture_is_named_in_the_one_style() {
    let d = tmpdir("rawio");
    std::fs::create_dir_all(d.join("events")).unwrap();
    std::fs::create_dir_all(d.join("per_cpu/cpu0")).unwrap();
    // The real header_page of the paired raw capture (corpus/paired/raw).
    std::fs::copy(
        format!(
            "{}/../corpus/paired/raw/events/header_page",
            env!("CARGO_MANIFEST_DIR")
        ),
        d.join("events/header_page"),
    )
    .unwrap();
    let ring = d.join("per_cpu/cpu0/trace_pipe_raw");
    std::os::unix::fs::symlink("/proc/self/mem", &ring).unwrap();
    let p = d.display().to_string();
    for cmd in ["stats", "replay"] {
        let o = run(&[cmd, &p]);
        assert_eq!(code(&o), 2, "{cmd}: {}", err(&o));
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with(&format!("mmreplay {cmd}: error: {p}")), "{e}");
        assert!(
            e.contains(&format!(
                "{}: cannot read, because: Input/output error",
                ring.display()
            )),
            "{e}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `--kallsyms FILE` that does not exist: the file first, the option in the message.
#[test]
fn missing_kallsyms_file_is_named_first() {
    let d = tmpdir("kallsyms");
    let k = d.join("nosuch.kallsyms").display().to_string();
    let cap = format!(
        "{}/../corpus/captures/fmt-pipe.trace.zst",
        env!("CARGO_MANIFEST_DIR")
    );
    let o = run(&["stats", &cap, "--kallsyms", &k]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        err(&o).trim_end(),
        format!(
            "mmreplay stats: error: {k}: cannot read (--kallsyms), because: No such file or \
             directory (os error 2)"
        )
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A closed pipe on stdout (`mmreplay CMD | head` where head has gone) is no panic for any
/// command that prints (only `diff` was tested): the reader is gone before the first write.
#[test]
fn closed_stdout_is_not_a_panic_for_any_command() {
    let cap = format!(
        "{}/../corpus/captures/fmt-pipe.trace.zst",
        env!("CARGO_MANIFEST_DIR")
    );
    for args in [
        vec!["stats", cap.as_str()],
        vec!["stats", cap.as_str(), "--json"],
        vec![
            "replay",
            cap.as_str(),
            "--policies",
            "reference,ad-preserve",
        ],
        vec!["fidelity", cap.as_str()],
        vec!["policies"],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let e = err(&o);
        assert!(!e.contains("panicked"), "{args:?}: {e}");
        assert_ne!(o.status.code(), Some(101), "{args:?}: {e}");
        if o.status.code() == Some(2) {
            assert!(
                e.starts_with(&format!("mmreplay {}: error: <stdout>: ", args[0])),
                "{args:?}: {e}"
            );
        }
    }
}
