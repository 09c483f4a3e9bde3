//! `mmreplay merge DIR`: check that every cell of the matrix in DIR is present and print the
//! comparison as a table, `--json` or `--csv`, in the manifest's cell order. The output holds no
//! timings or host names: a sharded and an unsharded run of one matrix merge to the same bytes.
//! Exit 0: complete; 1: cells missing (named on stderr); 2: not a matrix directory or a bad
//! cell file.

use std::path::PathBuf;
use std::process::ExitCode;

use mmreplay::matrix::{self, CellResult, Manifest, MatrixError};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `--out` directory of `mmreplay matrix` (every shard's).
    pub dir: PathBuf,
    /// One JSON object: `{"schema", "options", "cells": [{"trace", "policy", "verdict",
    /// "counters": {...}, ...}]}`.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV: one row per cell, counters and verdict as columns (for pandas/polars).
    #[arg(long)]
    pub csv: bool,
}

/// Print the merged comparison; a closed stdout (`| head`) ends quietly, a failing one is an
/// error.
pub fn print(m: &Manifest, cells: &[CellResult], json: bool, csv: bool) -> anyhow::Result<()> {
    let text = if json {
        // The matrix JSON with the envelope every command's JSON has.
        let raw = matrix::render_json(m, cells);
        match serde_json::from_str::<serde_json::Value>(&raw) {
            Ok(mut v) => {
                mmreplay::json_schema::envelope("merge", &mut v);
                let mut s = serde_json::to_string(&v).unwrap_or(raw);
                s.push('\n');
                s
            }
            Err(_) => raw,
        }
    } else if csv {
        matrix::render_csv(cells)
    } else {
        matrix::render_text(cells)
    };
    super::stdout::write_all(text.as_bytes())
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    match matrix::merge(&a.dir) {
        Ok((m, cells)) => {
            print(&m, &cells, a.json, a.csv)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ MatrixError::Missing { .. }) => {
            eprintln!("mmreplay merge: error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("mmreplay merge: error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
