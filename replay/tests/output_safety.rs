//! Output safety: every file `mmreplay` writes (`compile`'s .mmr, `replay --snapshot-out`,
//! `report`, `minimize`, `matrix` cells) goes through a temporary file and a rename, so a full
//! disk or a read-only directory gives a clear error (exit 2, the path and the OS's reason) and
//! leaves the old file byte for byte as it was, with no temporary file behind.
//!
//! The full disk and the read-only directory are a small tmpfs mounted in a private user and
//! mount namespace (`unshare -rm`): nothing changes outside the test, and it needs no root.
//! Each command first runs into a normal directory (the positive control: it does write there).

use std::path::{Path, PathBuf};
use std::process::Command;

const MM: &str = env!("CARGO_BIN_EXE_mmreplay");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-outsafe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// A real capture's first 4000 lines (tour: faults, forks, a few flushes).
fn input(dir: &Path) -> PathBuf {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/captures/tour.trace.zst");
    let bytes =
        zstd::decode_all(std::fs::File::open(&cap).expect("tour capture")).expect("decompress");
    let text: Vec<&[u8]> = bytes.split(|&b| b == b'\n').take(4000).collect();
    let p = dir.join("cap.trace");
    std::fs::write(&p, text.join(&b'\n')).expect("write input");
    p
}

/// One command: its name, the files it writes (relative to the output directory) and its
/// arguments, with `{D}` for the output directory and `{IN}` for the input.
struct Cmd {
    name: &'static str,
    outputs: &'static [&'static str],
    args: &'static [&'static str],
}

const CMDS: &[Cmd] = &[
    Cmd {
        name: "compile",
        outputs: &["out.mmr"],
        args: &["compile", "{IN}", "-o", "{D}/out.mmr"],
    },
    Cmd {
        name: "snapshot",
        outputs: &["cap.trace.reference.snap"],
        args: &[
            "replay",
            "{IN}",
            "--policies",
            "reference",
            "--snapshot-out",
            "{D}",
        ],
    },
    Cmd {
        name: "report",
        outputs: &["report.html"],
        args: &[
            "report",
            "{IN}",
            "--policies",
            "reference",
            "-o",
            "{D}/report.html",
        ],
    },
    Cmd {
        name: "minimize",
        outputs: &["min.litmus"],
        args: &[
            "minimize",
            "{LITMUS}",
            "--policy",
            "ad-preserve",
            "-o",
            "{D}/min.litmus",
        ],
    },
    Cmd {
        name: "matrix",
        outputs: &[],
        args: &[
            "matrix",
            "--traces",
            "{IN}",
            "--policies",
            "reference",
            "--out",
            "{D}/cells",
        ],
    },
];

fn litmus() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/litmus/e-migrate-young-dirty.litmus")
        .display()
        .to_string()
}

fn argv(c: &Cmd, d: &Path, inp: &Path) -> Vec<String> {
    c.args
        .iter()
        .map(|a| {
            a.replace("{D}", &d.display().to_string())
                .replace("{IN}", &inp.display().to_string())
                .replace("{LITMUS}", &litmus())
        })
        .collect()
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs every command into a tmpfs made full (`mode` "full") or read-only ("ro") in a private
/// namespace, after putting an old version of each output there. Returns, per command, its exit
/// code and stderr, and the directory listing and old files as they were afterwards.
fn run_in_namespace(mode: &str) {
    let base = scratch(mode);
    let inp = input(&base);
    let d = base.join("mnt");
    let res = base.join("res");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(&res).unwrap();

    // Positive control: each command writes its outputs into a normal directory.
    let ok_dir = base.join("ok");
    std::fs::create_dir_all(&ok_dir).unwrap();
    for c in CMDS {
        let out = Command::new(MM)
            .args(argv(c, &ok_dir, &inp))
            .output()
            .expect("run mmreplay");
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{}: control run failed: {}",
            c.name,
            String::from_utf8_lossy(&out.stderr)
        );
        if c.outputs.is_empty() {
            // matrix: one cell file per (capture, policy).
            let cells = std::fs::read_dir(ok_dir.join("cells")).map_or(0, |d| d.count());
            assert!(cells > 0, "{}: control run wrote no cell", c.name);
        }
        for o in c.outputs {
            let p = ok_dir.join(o);
            assert!(
                std::fs::metadata(&p).is_ok_and(|m| m.len() > 0),
                "{}: control run wrote no {o}",
                c.name
            );
        }
    }

    let mut script = String::from("set -u\n");
    script += &format!(
        "mount -t tmpfs -o size=512k tmpfs {} || exit 90\n",
        sh_quote(&d.display().to_string())
    );
    for c in CMDS {
        for o in c.outputs {
            script += &format!(
                "printf 'OLD {o}\\n' > {}/{o}\n",
                sh_quote(&d.display().to_string())
            );
        }
    }
    let dq = sh_quote(&d.display().to_string());
    script += &format!("mkdir {dq}/cells\n");
    match mode {
        // Fill what is left; the old files stay.
        "full" => script += &format!("dd if=/dev/zero of={dq}/filler bs=4096 2>/dev/null\n"),
        _ => script += &format!("mount -o remount,ro {dq} || exit 91\n"),
    }
    for c in CMDS {
        let args: Vec<String> = argv(c, &d, &inp).iter().map(|a| sh_quote(a)).collect();
        let r = sh_quote(&res.join(c.name).display().to_string());
        script += &format!(
            "{} {} >{r}.out 2>{r}.err; echo $? >{r}.rc\n",
            sh_quote(MM),
            args.join(" ")
        );
    }
    script += &format!(
        "ls -a {dq} > {}\n",
        sh_quote(&res.join("ls").display().to_string())
    );
    // Files only: matrix may have made its (empty) cell directory before the write failed.
    script += &format!(
        "find {dq}/cells -type f > {}\n",
        sh_quote(&res.join("cells.ls").display().to_string())
    );
    for c in CMDS {
        for o in c.outputs {
            script += &format!(
                "cp {dq}/{o} {}\n",
                sh_quote(&res.join(format!("old.{o}")).display().to_string())
            );
        }
    }
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) runs");
    assert!(
        out.status.success(),
        "namespace script failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let reason = if mode == "full" {
        "No space left on device"
    } else {
        "Read-only file system"
    };
    let listing = std::fs::read_to_string(res.join("ls")).unwrap();
    for c in CMDS {
        let rc = std::fs::read_to_string(res.join(format!("{}.rc", c.name))).unwrap();
        let err = std::fs::read_to_string(res.join(format!("{}.err", c.name))).unwrap();
        assert_eq!(
            rc.trim(),
            "2",
            "{} ({mode}): exit code {rc}, stderr {err}",
            c.name
        );
        assert!(
            err.contains(reason) && err.contains(&d.display().to_string()),
            "{} ({mode}): the error should name the path and say {reason:?}: {err}",
            c.name
        );
        assert!(!err.contains("panicked"), "{} ({mode}): {err}", c.name);
        for o in c.outputs {
            let old = std::fs::read_to_string(res.join(format!("old.{o}"))).unwrap();
            assert_eq!(
                old,
                format!("OLD {o}\n"),
                "{} ({mode}): {o} changed",
                c.name
            );
        }
    }
    let cells = std::fs::read_to_string(res.join("cells.ls")).unwrap();
    assert!(
        cells.trim().is_empty(),
        "{mode}: matrix left files: {cells}"
    );
    let leftovers: Vec<&str> = listing.lines().filter(|l| l.contains(".tmp")).collect();
    assert!(
        leftovers.is_empty(),
        "{mode}: temporary files left: {leftovers:?}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn full_disk_gives_a_clear_error_and_keeps_old_outputs() {
    run_in_namespace("full");
}

#[test]
fn read_only_directory_gives_a_clear_error_and_keeps_old_outputs() {
    run_in_namespace("ro");
}

/// Standard output on a full device (`> /dev/full`): the usual error line and exit 2, for the
/// commands that print with `print!` (a panic before), write once (output lost with exit 0
/// before: `policies`, `fidelity`, `merge`) or stream.
#[test]
fn full_stdout_is_an_error_not_a_panic_or_a_silent_success() {
    let base = scratch("stdout");
    let inp = input(&base);
    let inp = inp.display().to_string();
    let lit = litmus();
    let cases: &[&[&str]] = &[
        &["stats", &inp],
        &["stats", &inp, "--json"],
        &["replay", &inp, "--policies", "reference"],
        &["replay", &inp, "--policies", "reference", "--json"],
        &["policies"],
        &["policies", "--json"],
        &["fidelity", &inp],
        &["check", &lit],
        &["report", &inp, "--policies", "reference", "--json"],
    ];
    for args in cases {
        let full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = Command::new(MM)
            .args(*args)
            .stdout(full)
            .output()
            .expect("run mmreplay");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("error: <stdout>: cannot write, because: ")
                && err.contains("No space left on device"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
