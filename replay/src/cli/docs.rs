//! `mmreplay docs`: the generated documentation: `docs/cli.md` (every subcommand, argument,
//! default and exit status, rendered from the clap definitions) and
//! `docs/schema/mmreplay.schema.json` (`mmreplay::json_schema::schema`). `--check` exits 1
//! when the files on disk differ from what this binary generates, so stale docs fail a test.
//!
//! Also the one table of exit statuses per command, shown under every `--help`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit statuses per command (shown by `--help` and in `docs/cli.md`).
pub const EXIT_CODES: &[(&str, &str)] = &[
    ("stats", "0 reported; 2 bad input or usage, an empty capture, a --pid/--comm filter that matches nothing, or a --strict failure"),
    ("record", "0 captured and the workload exited 0; 1 the workload failed (capture kept); 2 tracefs or usage trouble; 130 interrupted (capture kept, tracefs restored)"),
    ("replay", "0 every candidate within its contract; 1 a contract breach, an invariant violation or a candidate not comparable; 2 bad input or usage, an empty capture, a filter that matches nothing, or a --strict failure"),
    ("diff", "0 the snapshots are the same; 1 they differ; 2 trouble (a file cannot be read or is not a snapshot), as diff(1)"),
    ("compile", "0 compiled; 2 bad input or usage"),
    ("bench", "0 measured; 2 bad input or usage"),
    ("matrix", "0 this run's cells are done; 2 bad usage or a cell that could not run (the others are still written)"),
    ("merge", "0 complete; 1 cells missing (named on stderr); 2 not a matrix directory or a bad cell file"),
    ("policies", "0 listed"),
    ("check", "0 every expectation holds; 1 one does not; 2 a file cannot be read or parsed"),
    ("minimize", "0 a scenario was written; 2 bad input or usage, or nothing to minimise"),
    ("report", "0 written; 2 bad input or usage"),
    ("fidelity", "0 reported (a gap is a finding, not a failure); 2 bad input or usage, an empty capture, a filter that matches nothing, or a --strict failure"),
    ("docs", "0 written (or, with --check, up to date); 1 --check found a stale file"),
];

/// The `Exit status:` paragraph of `cmd`.
pub fn exit_help(cmd: &str) -> Option<String> {
    EXIT_CODES
        .iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, t)| format!("Exit status: {t}."))
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write into (`DIR/cli.md`, `DIR/schema/mmreplay.schema.json`).
    #[arg(long, default_value = "docs", value_name = "DIR")]
    pub out: PathBuf,
    /// Write nothing; exit 1 when a file differs from what this binary generates.
    #[arg(long)]
    pub check: bool,
}

/// The files `docs` generates, relative to `--out`.
pub fn files(cmd: &clap::Command) -> Vec<(PathBuf, String)> {
    let mut schema =
        serde_json::to_string_pretty(&mmreplay::json_schema::schema()).unwrap_or_default();
    schema.push('\n');
    vec![
        (PathBuf::from("cli.md"), markdown(cmd)),
        (PathBuf::from("schema/mmreplay.schema.json"), schema),
    ]
}

pub fn run(a: Args, cmd: &clap::Command) -> anyhow::Result<ExitCode> {
    let mut stale = Vec::new();
    for (rel, text) in files(cmd) {
        let path = a.out.join(&rel);
        if a.check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        } else {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            mmreplay::atomic::write_atomic(&path, text.as_bytes())?;
        }
    }
    if !stale.is_empty() {
        eprintln!(
            "mmreplay docs: stale: {} (regenerate with `cargo run -- docs`)",
            stale.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `docs/cli.md` from the clap definitions.
pub fn markdown(cmd: &clap::Command) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# mmreplay command line\n");
    let _ = writeln!(
        s,
        "Generated from the clap definitions by `cargo run -- docs` (a test fails when this file is stale; do not edit it by hand).\n"
    );
    if let Some(a) = cmd.get_about() {
        let _ = writeln!(s, "{a}\n");
    }
    let _ = writeln!(
        s,
        "Errors are one line: `mmreplay CMD: error: FILE[:LINE|@BYTE]: what, because: cause`. `--json` prints one object per line with `schema_version` and `command` (schema: `docs/schema/mmreplay.schema.json`); `--pretty` indents it. Counter and approximation keys are explained in `docs/glossary.md`.\n"
    );
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = sub.get_name();
        let _ = writeln!(s, "## `mmreplay {name}`\n");
        if let Some(a) = sub.get_long_about().or(sub.get_about()) {
            let _ = writeln!(s, "{a}\n");
        }
        let mut sub = sub.clone().bin_name(format!("mmreplay {name}"));
        let usage = sub.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ");
        let _ = writeln!(s, "```\n{usage}\n```\n");
        let args: Vec<&clap::Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_id() != "help")
            .collect();
        if !args.is_empty() {
            let _ = writeln!(s, "| argument | meaning |\n|---|---|");
            for a in args {
                let _ = writeln!(s, "| {} | {} |", arg_name(a), arg_help(a));
            }
            s.push('\n');
        }
        if let Some(e) = exit_help(name) {
            let _ = writeln!(s, "{e}\n");
        }
    }
    let _ = writeln!(
        s,
        "## Policies\n\n`--policies` / `--policy` take these names, with parameters as `NAME:PARAM=N` (`mmreplay policies` lists the same).\n\n| policy | what it models | parameters |\n|---|---|---|"
    );
    for p in mmreplay_candidates::registry::POLICIES {
        let params: Vec<String> = p
            .params()
            .iter()
            .map(|d| {
                format!(
                    "`{}:{}=N`: {} (N in {}..={}, default {})",
                    p.name, d.name, d.help, d.min, d.max, d.default
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | {} |",
            p.name,
            p.summary,
            if params.is_empty() {
                "none".to_string()
            } else {
                params.join("; ")
            }
        );
    }
    s
}

fn arg_name(a: &clap::Arg) -> String {
    let values = a
        .get_value_names()
        .map(|v| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
    let takes = a.get_num_args().is_none_or(|n| n.takes_values());
    let mut names = Vec::new();
    if let Some(c) = a.get_short() {
        names.push(format!("-{c}"));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("--{l}"));
    }
    let flag = matches!(
        a.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse | clap::ArgAction::Count
    );
    let cell = if names.is_empty() {
        format!("`{values}`")
    } else if flag || !takes {
        format!("`{}`", names.join(", "))
    } else {
        format!("`{} {values}`", names.join(", "))
    };
    cell.replace('|', "\\|")
}

fn arg_help(a: &clap::Arg) -> String {
    let mut h = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default()
        .replace('\n', " ")
        .replace('|', "\\|");
    if !h.is_empty() && !h.ends_with('.') {
        h.push('.');
    }
    let pv: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if !pv.is_empty() && !matches!(a.get_action(), clap::ArgAction::SetTrue) {
        let _ = write!(h, " Values: {}.", pv.join(", "));
    }
    let d: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !d.is_empty() && !matches!(a.get_action(), clap::ArgAction::SetTrue) {
        let _ = write!(h, " Default: `{}`.", d.join(","));
    }
    h.trim().to_string()
}
