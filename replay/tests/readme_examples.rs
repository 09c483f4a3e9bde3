//! The README's examples are real CLI runs: every output block that starts with
//! `$ cargo run --release -- ARGS` is the start of what `mmreplay ARGS` prints today, the
//! "what to look at next" block is what the bundled replay ends with, and every flag the
//! command table names exists in that command's `--help`. A stale example fails here.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn readme() -> String {
    std::fs::read_to_string(format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The fenced blocks of a markdown text (without their fence lines).
fn blocks(md: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for l in md.lines() {
        if l.starts_with("```") {
            match cur.take() {
                Some(b) => out.push(b),
                None => cur = Some(Vec::new()),
            }
        } else if let Some(b) = cur.as_mut() {
            b.push(l.to_string());
        }
    }
    out
}

fn stdout(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).output().expect("run mmreplay");
    String::from_utf8(o.stdout).expect("utf-8")
}

#[test]
fn readme_output_blocks_are_what_the_binary_prints() {
    let md = readme();
    let mut checked = 0;
    for b in blocks(&md) {
        let Some(args) = b
            .first()
            .and_then(|l| l.strip_prefix("$ cargo run --release -- "))
        else {
            continue;
        };
        let args: Vec<&str> = args.split_whitespace().collect();
        let out = stdout(&args);
        let got: Vec<&str> = out.lines().collect();
        let want: Vec<&str> = b[1..].iter().map(String::as_str).collect();
        assert!(
            got.len() >= want.len(),
            "README block `{args:?}` is longer than the output"
        );
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w, g, "README block `{args:?}`, line {}", i + 1);
        }
        checked += 1;
        if args == ["replay"] {
            // The footer block shown earlier in the README ends this run's output.
            let footer = blocks(&md)
                .into_iter()
                .find(|b| b.first().is_some_and(|l| l == "what to look at next:"))
                .expect("footer block");
            let tail = &got[got.len() - footer.len()..];
            assert_eq!(footer, tail, "README footer block");
        }
    }
    assert!(checked >= 1, "no README output block found");
}

#[test]
fn readme_command_table_flags_exist() {
    let md = readme();
    let mut rows = 0;
    for l in md.lines().filter(|l| l.starts_with("| `mmreplay ")) {
        let cell = l.split('`').nth(1).expect("command cell");
        let cmd = cell.split_whitespace().nth(1).expect("subcommand");
        let help = stdout(&[cmd, "--help"]);
        assert!(help.contains("Usage: mmreplay"), "{cmd}: {help}");
        for flag in cell
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            assert!(
                help.contains(flag),
                "README names `{cmd} {flag}`, --help does not"
            );
        }
        rows += 1;
    }
    assert!(rows >= 13, "{rows} command rows");
}
