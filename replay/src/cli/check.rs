//! `mmreplay check FILE.litmus...`: run each litmus scenario under every policy it names and
//! check the expectations written in it (`# expect`, `# check`), so a minimised scenario is a
//! regression test without writing Rust. Exit 0: every expectation holds; 1: one does not;
//! 2: a file cannot be read or parsed, names an unknown policy, or the model refuses one of its
//! ops. Negative controls (`negative:NAME`) exist only in test builds: in a release build
//! their expectations are listed as skipped, never counted as held.

use std::path::PathBuf;
use std::process::ExitCode;

use mmreplay::litmus;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Litmus files (`corpus/litmus/*.litmus`, or the output of `mmreplay minimize`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut code = 0u8;
    for path in &a.files {
        let name = path.display().to_string();
        let checked = litmus::load(path)
            .map_err(|e| e.to_string())
            .and_then(|f| litmus::check_file(&f).map(|c| (f, c)));
        let (f, c) = match checked {
            Ok(x) => x,
            Err(e) => {
                if a.json {
                    super::json_out::emit(
                        "check",
                        serde_json::json!({ "file": name, "error": e }),
                        a.pretty,
                    )?;
                } else {
                    // The one error style (`LitmusError` names the file first); the other
                    // files are still checked.
                    eprintln!("{}", mmreplay::errors::line("check", &e));
                }
                code = 2;
                continue;
            }
        };
        if !c.failed.is_empty() {
            code = code.max(1);
        }
        if a.json {
            let failed: Vec<String> = c.failed.iter().map(|m| m.to_string()).collect();
            let skipped: Vec<String> = c.skipped.iter().map(|(_, why)| why.clone()).collect();
            super::json_out::emit(
                "check",
                serde_json::json!({
                    "file": name,
                    "ops": f.ops.len(),
                    "held": c.held,
                    "failed": failed,
                    "skipped": skipped,
                }),
                a.pretty,
            )?;
            continue;
        }
        let status = if c.failed.is_empty() { "ok" } else { "FAILED" };
        println!(
            "{name}: {status} ({} ops; {} held, {} failed)",
            f.ops.len(),
            c.held,
            c.failed.len()
        );
        for m in &c.failed {
            println!("  {m}");
        }
        for (_, why) in &c.skipped {
            println!("  skipped: {why}");
        }
    }
    Ok(ExitCode::from(code))
}
