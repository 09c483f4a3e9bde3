//! `mmreplay matrix`: captures × policy specs (× parameter sweeps) as cells, run with rayon on
//! this machine, or only this shard's cells (`--shard I/N`, `--shard auto` in a Slurm array or a
//! Kubernetes Indexed Job). Each finished cell is written atomically under `--out DIR/cells/`;
//! cells already there are skipped, so a re-run after a kill redoes only the cells in flight.
//! When every cell of the matrix is present at the end, prints the merged comparison (as
//! `mmreplay merge DIR` would). Exit 0: this run's cells are done; 2: bad usage or a cell that
//! could not run (the others are still written).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use mmreplay::matrix::{self, CellOptions, Manifest, Shard};
use mmreplay::session::SessionOptions;
use rayon::prelude::*;

use super::replay::ModeArg;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  mmreplay matrix --traces 'corpus/captures/*.trace.zst' --policies reference,lookaround,ad-preserve \\
      --sweep lookaround:window=8,16,32,63 --out runs/m1
  mmreplay matrix ... --out runs/m1 --shard auto      # in a Slurm array or Kubernetes Indexed Job
  mmreplay merge runs/m1 --csv > m1.csv

Shards: --shard I/N runs shard I (0-based) of N. `auto` reads SLURM_ARRAY_TASK_ID (minus
SLURM_ARRAY_TASK_MIN) of SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX of MMREPLAY_SHARD_COUNT.
Cells are balanced across shards by capture size. See docs/cluster.md.")]
pub struct Args {
    /// Captures: paths or glob patterns (quoted, expanded here: `corpus/captures/*.trace.zst`).
    #[arg(long, required = true, num_args = 1..)]
    pub traces: Vec<String>,
    /// Policy specs (comma or space separated; `reference` is always a cell; parameters as
    /// `lookaround:window=32`; see `mmreplay policies`).
    #[arg(long, num_args = 1.., default_value = "reference")]
    pub policies: Vec<String>,
    /// A parameter sweep, one cell per value: `POLICY:PARAM=V1,V2,...` (repeatable).
    #[arg(long)]
    pub sweep: Vec<String>,
    /// Replay mode of every cell.
    #[arg(long, value_enum, default_value = "lockstep")]
    pub mode: ModeArg,
    /// Scope each capture to its recorded workload (`replay --workload`).
    #[arg(long)]
    pub workload: bool,
    /// Directory for the manifest and one JSON file per cell (created; re-runs skip done
    /// cells). Without it, a private temporary directory is used and removed.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only this shard's cells: `I/N` (0-based) or `auto` (from the scheduler's
    /// environment).
    #[arg(long)]
    pub shard: Option<String>,
    /// Cells replayed at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only print the cell list (id, shard, capture bytes) and exit.
    #[arg(long)]
    pub list: bool,
    /// Print the merged comparison as one JSON object.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the merged comparison as CSV (one row per cell).
    #[arg(long)]
    pub csv: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("mmreplay matrix: error: {e}");
        Ok(ExitCode::from(2))
    };
    let env = |k: &str| std::env::var(k).ok();
    let shard = match a
        .shard
        .as_deref()
        .map(|s| Shard::parse(s, &env))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let policies = match matrix::policy_list(&a.policies, &a.sweep) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let traces = match matrix::expand_traces(&a.traces) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let cells = match matrix::cells(&traces, &policies) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let options = CellOptions {
        mode: match a.mode {
            ModeArg::Lockstep => "lockstep".into(),
            ModeArg::Free => "free".into(),
        },
        workload: a.workload,
    };
    let manifest = Manifest {
        schema: matrix::SCHEMA.into(),
        options: options.clone(),
        cells: cells.clone(),
    };
    let shard = shard.unwrap_or(Shard::ALL);
    let owner = matrix::assign(&cells, shard.count);
    if a.list {
        for (c, s) in cells.iter().zip(&owner) {
            println!("{}\tshard {}\t{} bytes", c.id, s, c.trace_bytes);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let temp_dir;
    let dir = match &a.out {
        Some(d) => d.clone(),
        None => {
            if shard != Shard::ALL {
                return fail(&"--shard needs --out DIR (a directory every shard shares)");
            }
            temp_dir = TempDir::new()?;
            temp_dir.0.clone()
        }
    };
    if let Err(e) = matrix::prepare(&dir, &manifest) {
        return fail(&e);
    }
    let mine: Vec<&matrix::Cell> = cells
        .iter()
        .zip(&owner)
        .filter(|(_, s)| **s == shard.index)
        .map(|(c, _)| c)
        .collect();
    matrix::remove_stale_temps(&dir, &mine);
    let mut todo = Vec::new();
    for c in &mine {
        match matrix::read_cell(&dir, c) {
            Ok(Some(_)) => {}
            Ok(None) => todo.push(*c),
            Err(e) => return fail(&e),
        }
    }
    let done_before = mine.len() - todo.len();
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(todo.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "cells {pos}/{len} [{bar:30}] {elapsed} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let base = SessionOptions::default();
    let failed = AtomicUsize::new(0);
    let work = || {
        todo.par_iter().for_each(|c| {
            bar.set_message(c.id.clone());
            let r = matrix::run_cell(c, &options, &base).and_then(|r| matrix::write_cell(&dir, &r));
            if let Err(e) = r {
                bar.suspend(|| eprintln!("mmreplay matrix: error: {e}"));
                failed.fetch_add(1, Ordering::Relaxed);
            }
            bar.inc(1);
        })
    };
    match a.jobs {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()?
            .install(work),
        None => work(),
    }
    bar.finish_and_clear();
    let failed = failed.into_inner();
    eprintln!(
        "mmreplay matrix: shard {}/{}: {} cells ({} ran, {} already done, {} failed) of {} in {}",
        shard.index,
        shard.count,
        mine.len(),
        todo.len() - failed,
        done_before,
        failed,
        cells.len(),
        dir.display()
    );
    if failed > 0 {
        return Ok(ExitCode::from(2));
    }
    // The merged view once every cell is there (always so unsharded; for the last shard to
    // finish otherwise).
    if let Ok((m, results)) = matrix::merge(&dir) {
        super::merge::print(&m, &results, a.json, a.csv)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let d = std::env::temp_dir().join(format!("mmreplay-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&d)
            .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", d.display()))?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
