//! `mmreplay flush-paths` (hidden, a maintainer's tool for issue 22): remote flush requests by
//! kernel path, logged vs predicted, per capture (`mmreplay::flush_paths`).

use std::process::ExitCode;

use super::replay::kernel_for;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Captures (any format `replay` reads).
    #[arg(required = true)]
    pub traces: Vec<String>,
    /// One JSON object per capture, one per line.
    #[arg(long)]
    pub json: bool,
    /// The capture's kernel (`6.1`, `6.18`). Default: the sidecar's release.
    #[arg(long, value_name = "VERSION")]
    pub kernel: Option<String>,
    /// CPUs of the captured machine (default: capture header, sidecar, else 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: Option<u32>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    for t in &a.traces {
        let kernel = kernel_for(Some(t), a.kernel.as_deref())?;
        let f = mmreplay::flush_paths::run(t, &kernel, a.cpus)?;
        if a.json {
            let v = serde_json::json!({ "trace": t, "kernel": kernel.profile, "flush_paths": f });
            println!("{v}");
            continue;
        }
        println!("{t} (kernel {})", kernel.profile);
        println!("  {:<44} {:>9} {:>9}", "path", "observed", "predicted");
        let (mut o, mut p) = (0, 0);
        for (k, c) in &f.paths {
            println!("  {k:<44} {:>9} {:>9}", c.observed, c.predicted);
            o += c.observed;
            p += c.predicted;
        }
        println!("  {:<44} {o:>9} {p:>9}", "total");
        println!("  observed, by what told the path:");
        for (k, n) in &f.observed_detail {
            println!("    {n:>7}  {k}");
        }
        println!("  predicted, by op:");
        for (k, n) in &f.predicted_detail {
            println!("    {n:>7}  {k}");
        }
        println!("  the kernel's reclaim work, by path:");
        for (k, n) in &f.observed_work {
            println!("    {n:>7}  {k}");
        }
        println!("  the model's reclaim work, by path:");
        for (k, n) in &f.predicted_work {
            println!("    {n:>7}  {k}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
