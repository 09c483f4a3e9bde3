//! `mmreplay policies`: the policy registry as users see it: every policy, what it models (with
//! the kernel commit), and its parameters with ranges and defaults (`--json` for scripts).

use std::process::ExitCode;

use mmreplay_candidates::registry::POLICIES;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object: `{"policies": [{"name", "summary", "params": [{"name", "min", "max",
    /// "default", "help"}]}]}`.
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.json {
        let v: Vec<serde_json::Value> = POLICIES
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "summary": p.summary,
                    "params": p.params().iter().map(|d| serde_json::json!({
                        "name": d.name, "min": d.min, "max": d.max,
                        "default": d.default, "help": d.help,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        super::json_out::emit("policies", serde_json::json!({ "policies": v }), a.pretty)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut s = String::new();
    for p in POLICIES {
        s.push_str(&format!("{:<16} {}\n", p.name, p.summary));
        for d in p.params() {
            s.push_str(&format!(
                "  {}:{}=N  {} (N in {}..={}, default {})\n",
                p.name, d.name, d.help, d.min, d.max, d.default
            ));
        }
    }
    s.push_str("\nA spec is NAME or NAME:PARAM=N[,PARAM=N]; `mmreplay matrix --sweep NAME:PARAM=N1,N2,...` sweeps one.\n");
    super::stdout::write_all(s.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
