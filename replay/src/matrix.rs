//! Policy matrices: captures × policy specs (with parameter sweeps) as one deterministic list
//! of cells, sharded for cluster array jobs (Slurm arrays, Kubernetes Indexed Jobs), each cell
//! written atomically as one JSON file, and the merge that checks every cell is there and renders
//! the comparison as a table, JSON or CSV.
//!
//! Why cells are files: a scheduler already knows how to run N copies of one command; a shard
//! only needs to know which cells are its own (a pure function of the cell list and N, balanced
//! by capture size) and to leave each finished cell where a re-run sees it. A killed node loses
//! the cells in flight and nothing else; no coordinator runs anywhere.
//!
//! It must never put timings, host names or absolute paths of the machine into a cell or the
//! merged output: two runs of the same matrix, sharded or not, compare equal byte for byte.
//! It must never decide verdicts itself: each cell is one `session::run` of the reference and
//! one candidate, judged by the candidate's contract as `mmreplay replay` judges it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use mmreplay_candidates::contract::Mode;
use mmreplay_candidates::registry::{self, PolicySpec};
use serde::{Deserialize, Serialize};

use crate::session::{self, SessionOptions};

/// Version of the cell and manifest files; a different version is refused, not guessed at.
pub const SCHEMA: &str = "mmreplay-matrix/1";

/// Errors of building, running or merging a matrix. Each names the file or argument at fault.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("--traces {pattern}: matches no file")]
    NoMatch { pattern: String },
    #[error("--traces {pattern}: bad pattern: {msg}")]
    BadPattern { pattern: String, msg: String },
    #[error("{path}: cannot read, because: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot write, because: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] crate::atomic::WriteError),
    #[error("--policies {spec}: {msg}")]
    Policy { spec: String, msg: String },
    #[error("--sweep {spec}: {msg}")]
    Sweep { spec: String, msg: String },
    #[error("--shard {spec}: {msg}")]
    Shard { spec: String, msg: String },
    #[error("{path}: {msg}")]
    BadFile { path: String, msg: String },
    #[error(
        "{dir}: holds a different matrix (its matrix.json lists other cells or options); \
         use a new --out directory or remove it"
    )]
    OtherMatrix { dir: String },
    #[error("{dir}: {n} of {total} cells missing: {}{}", .names.join(", "), if *.n > .names.len() { ", ..." } else { "" })]
    Missing {
        dir: String,
        n: usize,
        total: usize,
        names: Vec<String>,
    },
    #[error("cell {id}: {msg}")]
    Cell { id: String, msg: String },
}

/// One cell: one capture replayed with the reference and one policy spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// File-name-safe identity: capture stem, capture hash, policy spec.
    pub id: String,
    /// The capture as named on the command line (display only; identity is the hash).
    pub trace: String,
    /// Content hash of the capture (16 hex digits).
    pub trace_hash: String,
    /// Size of the capture in bytes (the shard balance weight).
    pub trace_bytes: u64,
    /// The full policy spec, every parameter spelled out (`lookaround:window=64`).
    pub policy: String,
}

/// Options every cell of a matrix shares (recorded in the manifest and every cell).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellOptions {
    /// `lockstep` or `free`.
    pub mode: String,
    /// Scope each capture to its recorded workload (`replay --workload`).
    pub workload: bool,
}

/// The manifest: every cell of the matrix, in order, and the shared options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub options: CellOptions,
    pub cells: Vec<Cell>,
}

/// What one cell produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellResult {
    pub schema: String,
    pub id: String,
    pub trace: String,
    pub trace_hash: String,
    pub policy: String,
    pub options: CellOptions,
    /// `reference` for the reference's own cell, else the replay verdict label.
    pub verdict: String,
    /// The policy's model counters at the end of the replay.
    pub counters: BTreeMap<String, u64>,
    pub violation_count: u64,
    pub model_errors: u64,
    pub ops: u64,
}

/// This process's part of a matrix: shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole matrix.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// `I/N` (0-based I, as Slurm array and Kubernetes completion indices are) or `auto`.
    pub fn parse(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, MatrixError> {
        let bad = |msg: String| MatrixError::Shard {
            spec: spec.to_string(),
            msg,
        };
        if spec == "auto" {
            return Shard::from_env(env).map_err(bad);
        }
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| bad("expected I/N (0-based shard index I of N) or `auto`".into()))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| bad(format!("shard index `{i}` is not a number")))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad(format!("shard count `{n}` is not a number")))?;
        Shard::new(index, count).map_err(bad)
    }

    fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 {
            return Err("shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the count {count} (indices are 0-based)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// From a scheduler's environment: a Slurm array (`SLURM_ARRAY_TASK_ID` minus
    /// `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job
    /// (`JOB_COMPLETION_INDEX`, of `MMREPLAY_SHARD_COUNT`, which the Job manifest sets to its
    /// `completions`: Kubernetes does not put the count into the environment itself).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let num = |k: &str| -> Result<Option<usize>, String> {
            match env(k) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{k}={v} is not a number")),
            }
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let count = num("SLURM_ARRAY_TASK_COUNT")?
                .ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id.checked_sub(min).ok_or(format!(
                "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
            ))?;
            return Shard::new(index, count);
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = num("MMREPLAY_SHARD_COUNT")?.ok_or(
                "JOB_COMPLETION_INDEX is set but MMREPLAY_SHARD_COUNT is not \
                 (set it to the Job's completions in the manifest)",
            )?;
            return Shard::new(index, count);
        }
        Err("neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set".into())
    }
}

/// Expand `--traces` patterns: a pattern with `*`, `?` or `[` is a glob, anything else a path.
/// Matches are sorted per pattern; a pattern that matches nothing is an error.
pub fn expand_traces(patterns: &[String]) -> Result<Vec<String>, MatrixError> {
    let mut out = Vec::new();
    for p in patterns {
        if !p.contains(['*', '?', '[']) {
            out.push(p.clone());
            continue;
        }
        let paths = glob::glob(p).map_err(|e| MatrixError::BadPattern {
            pattern: p.clone(),
            msg: e.to_string(),
        })?;
        let mut found: Vec<String> = paths
            .filter_map(Result::ok)
            .filter(|pb| pb.is_file())
            .map(|pb| pb.to_string_lossy().into_owned())
            .filter(|s| !s.ends_with(".meta.json"))
            .collect();
        if found.is_empty() {
            return Err(MatrixError::NoMatch { pattern: p.clone() });
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Split a `--policies` value into specs. Specs are comma separated, but a spec's own
/// parameters are too (`lookaround:window=8,x=1`): a piece with `=` and no `:` belongs to the
/// spec before it.
pub fn split_specs(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        for piece in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match out.last_mut() {
                Some(prev) if piece.contains('=') && !piece.contains(':') && prev.contains(':') => {
                    prev.push(',');
                    prev.push_str(piece);
                }
                _ => out.push(piece.to_string()),
            }
        }
    }
    out
}

/// Expand one `--sweep POLICY:PARAM=V1,V2,...` into one spec per value.
pub fn expand_sweep(sweep: &str) -> Result<Vec<PolicySpec>, MatrixError> {
    let bad = |msg: String| MatrixError::Sweep {
        spec: sweep.to_string(),
        msg,
    };
    let (policy, rest) = sweep
        .split_once(':')
        .ok_or_else(|| bad("expected POLICY:PARAM=V1,V2,...".into()))?;
    let (param, values) = rest
        .split_once('=')
        .ok_or_else(|| bad("expected POLICY:PARAM=V1,V2,...".into()))?;
    let values: Vec<&str> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(bad("no values to sweep".into()));
    }
    values
        .iter()
        .map(|v| {
            registry::parse(&format!("{}:{}={v}", policy.trim(), param.trim()))
                .map_err(|e| bad(e.to_string()))
        })
        .collect()
}

/// The policy list of a matrix: `reference` first, then `--policies`, then every sweep value;
/// duplicates (the same full spec) once.
pub fn policy_list(policies: &[String], sweeps: &[String]) -> Result<Vec<PolicySpec>, MatrixError> {
    let mut specs: Vec<PolicySpec> = Vec::new();
    let push = |s: PolicySpec, specs: &mut Vec<PolicySpec>| {
        if !specs.iter().any(|x| x.full_name() == s.full_name()) {
            specs.push(s);
        }
    };
    push(
        registry::parse("reference").map_err(|e| MatrixError::Policy {
            spec: "reference".into(),
            msg: e.to_string(),
        })?,
        &mut specs,
    );
    for p in split_specs(policies) {
        let s = registry::parse(&p).map_err(|e| MatrixError::Policy {
            spec: p.clone(),
            msg: e.to_string(),
        })?;
        push(s, &mut specs);
    }
    for sw in sweeps {
        for s in expand_sweep(sw)? {
            push(s, &mut specs);
        }
    }
    Ok(specs)
}

/// Content hash of a capture: FNV-1a folded over 64-bit little-endian words, then the length.
/// Streams the file (bounded memory).
pub fn trace_hash(path: &str) -> Result<(String, u64), MatrixError> {
    let err = |source| MatrixError::Read {
        path: path.to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h: u64 = mmreplay_reference::hash::FNV_OFFSET;
    let mut buf = vec![0u8; 1 << 16];
    let mut len: u64 = 0;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        tail.extend_from_slice(&buf[..n]);
        let whole = tail.len() / 8 * 8;
        for w in tail[..whole].chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            h ^= u64::from_le_bytes(a);
            h = h.wrapping_mul(mmreplay_reference::hash::FNV_PRIME);
        }
        tail.drain(..whole);
    }
    h = mmreplay_reference::hash::fnv1a(h, &tail);
    h = mmreplay_reference::hash::fnv1a(h, &len.to_le_bytes());
    Ok((format!("{h:016x}"), len))
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '=' => c,
            _ => '+',
        })
        .collect()
}

/// The cells of a matrix, in a stable order: captures as listed (duplicate contents once),
/// then policies as listed.
pub fn cells(traces: &[String], policies: &[PolicySpec]) -> Result<Vec<Cell>, MatrixError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for t in traces {
        let (hash, bytes) = trace_hash(t)?;
        if !seen.insert(hash.clone()) {
            continue;
        }
        let stem = Path::new(t)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for p in policies {
            let policy = p.full_name();
            out.push(Cell {
                id: format!("{}-{}--{}", safe(&stem), &hash[..12], safe(&policy)),
                trace: t.clone(),
                trace_hash: hash.clone(),
                trace_bytes: bytes,
                policy,
            });
        }
    }
    Ok(out)
}

/// Which shard runs each cell: longest-processing-time first by capture size (a cell costs
/// about its capture's size whatever the policy), to the least loaded shard, ties to the lower
/// shard. A pure function of the cell list, so every shard computes the same assignment.
pub fn assign(cells: &[Cell], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| {
        cells[b]
            .trace_bytes
            .cmp(&cells[a].trace_bytes)
            .then_with(|| a.cmp(&b))
    });
    let mut load = vec![0u64; count];
    let mut out = vec![0usize; cells.len()];
    for i in order {
        let (s, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(s, l)| (**l, *s))
            .unwrap_or((0, &0));
        out[i] = s;
        load[s] += cells[i].trace_bytes.max(1);
    }
    out
}

fn cell_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("cells").join(format!("{id}.json"))
}

/// Create `dir` and write the manifest, or check that the one there is the same matrix.
pub fn prepare(dir: &Path, manifest: &Manifest) -> Result<(), MatrixError> {
    let cells = dir.join("cells");
    std::fs::create_dir_all(&cells).map_err(|source| MatrixError::Write {
        path: cells.display().to_string(),
        source,
    })?;
    let path = dir.join("matrix.json");
    let text = manifest_text(manifest);
    match std::fs::read_to_string(&path) {
        Ok(old) if old == text => Ok(()),
        Ok(_) => Err(MatrixError::OtherMatrix {
            dir: dir.display().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(crate::atomic::write_atomic(&path, text.as_bytes())?)
        }
        Err(source) => Err(MatrixError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn manifest_text(m: &Manifest) -> String {
    let mut s = serde_json::to_string_pretty(m).unwrap_or_default();
    s.push('\n');
    s
}

/// Read a cell file; `None` when it is absent. A cell that exists but is not this cell
/// (another schema, capture or policy) is an error naming the file.
pub fn read_cell(dir: &Path, cell: &Cell) -> Result<Option<CellResult>, MatrixError> {
    let path = cell_path(dir, &cell.id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MatrixError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let bad = |msg: String| MatrixError::BadFile {
        path: path.display().to_string(),
        msg,
    };
    let r: CellResult =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a matrix cell: {e}")))?;
    if r.schema != SCHEMA {
        return Err(bad(format!("schema {}, expected {SCHEMA}", r.schema)));
    }
    if r.id != cell.id || r.trace_hash != cell.trace_hash || r.policy != cell.policy {
        return Err(bad(format!(
            "holds cell {} ({} × {}), expected {}",
            r.id, r.trace_hash, r.policy, cell.id
        )));
    }
    Ok(Some(r))
}

/// Replay one cell: the reference and (unless it is the reference's own cell) one policy.
pub fn run_cell(
    cell: &Cell,
    options: &CellOptions,
    base: &SessionOptions,
) -> Result<CellResult, MatrixError> {
    let fail = |msg: String| MatrixError::Cell {
        id: cell.id.clone(),
        msg,
    };
    let mut o = base.clone();
    o.mode = if options.mode == "free" {
        Mode::FreeRunning
    } else {
        Mode::Lockstep
    };
    let is_reference = cell.policy == "reference";
    o.policies = if is_reference {
        vec!["reference".into()]
    } else {
        vec!["reference".into(), cell.policy.clone()]
    };
    // Each capture is modelled as its own kernel (mechanics and LRU from its sidecar), as
    // `replay` does.
    let kernel = crate::kernel::KernelChoice::choose(Some(&cell.trace), None)
        .map_err(|e| fail(e.to_string()))?;
    o.cpumask_mode = kernel.profile(1).cpumask_mode;
    o.kernel = Some(kernel);
    if options.workload {
        o.pid =
            Some(crate::sidecar::workload_pid(&cell.trace).map_err(|e| fail(format!("{e:#}")))?);
    }
    let r = session::run(Some(&cell.trace), &o, |_, _| {}).map_err(|e| fail(e.to_string()))?;
    let run = if is_reference {
        r.run.policies.first()
    } else {
        r.run.policies.get(1)
    }
    .ok_or_else(|| fail("the replay produced no run for this policy".into()))?;
    let verdict = if is_reference {
        "reference".to_string()
    } else {
        r.verdicts
            .first()
            .map(|v| v.verdict.to_string())
            .ok_or_else(|| fail("the replay produced no verdict".into()))?
    };
    Ok(CellResult {
        schema: SCHEMA.into(),
        id: cell.id.clone(),
        trace: cell.trace.clone(),
        trace_hash: cell.trace_hash.clone(),
        policy: cell.policy.clone(),
        options: options.clone(),
        verdict,
        counters: run
            .counters
            .pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        violation_count: run.violation_count,
        model_errors: run.model_errors.values().sum(),
        ops: r.run.lower.ops,
    })
}

/// Write a finished cell.
pub fn write_cell(dir: &Path, r: &CellResult) -> Result<(), MatrixError> {
    let mut text = serde_json::to_string_pretty(r).unwrap_or_default();
    text.push('\n');
    Ok(crate::atomic::write_atomic(
        &cell_path(dir, &r.id),
        text.as_bytes(),
    )?)
}

/// Remove temporary files a killed run of these cells left behind.
pub fn remove_stale_temps(dir: &Path, cells: &[&Cell]) {
    let Ok(rd) = std::fs::read_dir(dir.join("cells")) else {
        return;
    };
    // `.ID.json.tmp-PID` (`atomic::tmp_path`).
    let prefixes: BTreeSet<String> = cells
        .iter()
        .map(|c| format!(".{}.json.tmp-", c.id))
        .collect();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(p) = name.find(".json.tmp-") {
            if prefixes.contains(&name[..p + ".json.tmp-".len()]) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Read the manifest of `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, MatrixError> {
    let path = dir.join("matrix.json");
    let text = std::fs::read_to_string(&path).map_err(|source| MatrixError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| MatrixError::BadFile {
        path: path.display().to_string(),
        msg: format!("not a matrix manifest: {e}"),
    })?;
    if m.schema != SCHEMA {
        return Err(MatrixError::BadFile {
            path: path.display().to_string(),
            msg: format!("schema {}, expected {SCHEMA}", m.schema),
        });
    }
    Ok(m)
}

/// Every cell of `dir`'s matrix, in manifest order; an error naming the missing ones.
pub fn merge(dir: &Path) -> Result<(Manifest, Vec<CellResult>), MatrixError> {
    let m = read_manifest(dir)?;
    let mut out = Vec::with_capacity(m.cells.len());
    let mut missing = Vec::new();
    for c in &m.cells {
        match read_cell(dir, c)? {
            Some(r) => out.push(r),
            None => missing.push(c.id.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(MatrixError::Missing {
            dir: dir.display().to_string(),
            n: missing.len(),
            total: m.cells.len(),
            names: missing.into_iter().take(20).collect(),
        });
    }
    Ok((m, out))
}

/// The merged comparison as one JSON object: `{"schema", "options", "cells": [...]}`.
pub fn render_json(m: &Manifest, cells: &[CellResult]) -> String {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| {
            serde_json::json!({
                "trace": c.trace,
                "trace_hash": c.trace_hash,
                "policy": c.policy,
                "verdict": c.verdict,
                "violation_count": c.violation_count,
                "model_errors": c.model_errors,
                "ops": c.ops,
                "counters": c.counters,
            })
        })
        .collect();
    let v = serde_json::json!({
        "schema": SCHEMA,
        "options": m.options,
        "cells": cells,
    });
    let mut s = serde_json::to_string(&v).unwrap_or_default();
    s.push('\n');
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per cell: identity, verdict, then every counter as a column.
pub fn render_csv(cells: &[CellResult]) -> String {
    let names: BTreeSet<&str> = cells
        .iter()
        .flat_map(|c| c.counters.keys().map(String::as_str))
        .collect();
    let mut s = String::from("trace,trace_hash,policy,verdict,violation_count,model_errors,ops");
    for n in &names {
        s.push(',');
        s.push_str(n);
    }
    s.push('\n');
    for c in cells {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{}",
            csv_field(&c.trace),
            c.trace_hash,
            csv_field(&c.policy),
            c.verdict,
            c.violation_count,
            c.model_errors,
            c.ops
        );
        for n in &names {
            let _ = write!(s, ",{}", c.counters.get(*n).copied().unwrap_or(0));
        }
        s.push('\n');
    }
    s
}

/// Counters shown in the text table (the full set is in `--json` and `--csv`).
pub const TABLE_COUNTERS: &[(&str, &str)] = &[
    ("tlb_flush_remote", "remote flushes"),
    ("ipi_targets", "IPI targets"),
    ("rmap_walks", "rmap walks"),
    ("a_tc_rmap_pte", "rmap PTE checks"),
    ("evictions", "evictions"),
    ("refaults", "refaults"),
    ("hw_a_sets_after_mig", "A sets after mig"),
];

/// The merged comparison as a text table, one row per cell.
pub fn render_text(cells: &[CellResult]) -> String {
    let mut rows: Vec<Vec<String>> = vec![["trace", "policy", "verdict"]
        .iter()
        .map(|s| s.to_string())
        .chain(TABLE_COUNTERS.iter().map(|(_, h)| h.to_string()))
        .collect()];
    for c in cells {
        let trace = Path::new(&c.trace)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| c.trace.clone());
        let mut r = vec![trace, c.policy.clone(), c.verdict.clone()];
        for (k, _) in TABLE_COUNTERS {
            r.push(c.counters.get(*k).copied().unwrap_or(0).to_string());
        }
        rows.push(r);
    }
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &rows {
        for (i, f) in r.iter().enumerate() {
            if i < 3 {
                let _ = write!(s, "{f:<w$}  ", w = widths[i]);
            } else {
                let _ = write!(s, "{f:>w$}  ", w = widths[i]);
            }
        }
        let t = s.trim_end().len();
        s.truncate(t);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(id: &str, bytes: u64) -> Cell {
        Cell {
            id: id.into(),
            trace: id.into(),
            trace_hash: "0".repeat(16),
            trace_bytes: bytes,
            policy: "reference".into(),
        }
    }

    /// The temporary name a killed run leaves is the one `write_atomic` makes; only the cells
    /// given are cleaned.
    #[test]
    fn stale_temps_of_own_cells_are_removed() {
        let dir = std::env::temp_dir().join(format!("mmreplay-mstale-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cells")).unwrap();
        let mine = dir.join("cells").join("a.json");
        let theirs = dir.join("cells").join("b.json");
        for p in [&mine, &theirs] {
            std::fs::write(crate::atomic::tmp_path(p), b"half").unwrap();
        }
        let a = cell("a", 1);
        remove_stale_temps(&dir, &[&a]);
        assert!(!crate::atomic::tmp_path(&mine).exists());
        assert!(crate::atomic::tmp_path(&theirs).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shard_parse_and_env() {
        let none = |_: &str| None;
        assert_eq!(
            Shard::parse("1/4", &none).unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert!(Shard::parse("4/4", &none).is_err());
        assert!(Shard::parse("0/0", &none).is_err());
        assert!(Shard::parse("x/2", &none).is_err());
        assert!(Shard::parse("auto", &none).is_err());
        let slurm = |k: &str| match k {
            "SLURM_ARRAY_TASK_ID" => Some("7".to_string()),
            "SLURM_ARRAY_TASK_MIN" => Some("5".to_string()),
            "SLURM_ARRAY_TASK_COUNT" => Some("4".to_string()),
            _ => None,
        };
        assert_eq!(
            Shard::parse("auto", &slurm).unwrap(),
            Shard { index: 2, count: 4 }
        );
        let k8s = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("3".to_string()),
            "MMREPLAY_SHARD_COUNT" => Some("4".to_string()),
            _ => None,
        };
        assert_eq!(
            Shard::parse("auto", &k8s).unwrap(),
            Shard { index: 3, count: 4 }
        );
        let k8s_no_count = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "0".to_string());
        let e = Shard::parse("auto", &k8s_no_count).unwrap_err().to_string();
        assert!(e.contains("MMREPLAY_SHARD_COUNT"), "{e}");
    }

    #[test]
    fn assignment_balances_by_size_and_is_total() {
        let cells: Vec<Cell> = [100, 90, 10, 10, 10, 10, 10, 10, 10, 10]
            .iter()
            .enumerate()
            .map(|(i, b)| cell(&format!("c{i}"), *b))
            .collect();
        let a = assign(&cells, 2);
        let load = |s: usize| -> u64 {
            cells
                .iter()
                .zip(&a)
                .filter(|(_, x)| **x == s)
                .map(|(c, _)| c.trace_bytes)
                .sum()
        };
        // By count the halves would be 5/5 cells; by size they are 140/130.
        assert_eq!(load(0) + load(1), 270);
        assert!(
            load(0).abs_diff(load(1)) <= 10,
            "{} vs {}",
            load(0),
            load(1)
        );
        assert_eq!(a, assign(&cells, 2), "deterministic");
        assert!(assign(&cells, 3).iter().all(|s| *s < 3));
    }

    #[test]
    fn specs_split_keeps_parameters_together() {
        let v = split_specs(&["reference,lookaround:window=8,ad-preserve".into()]);
        assert_eq!(v, ["reference", "lookaround:window=8", "ad-preserve"]);
        let v = split_specs(&["lookaround:window=8,window=9".into(), "all".into()]);
        assert_eq!(v, ["lookaround:window=8,window=9", "all"]);
    }

    #[test]
    fn sweep_expands_and_validates() {
        let s = expand_sweep("lookaround:window=8,16,63").unwrap();
        let names: Vec<String> = s.iter().map(|p| p.full_name()).collect();
        assert_eq!(
            names,
            [
                "lookaround:window=8",
                "lookaround:window=16",
                "lookaround:window=63"
            ]
        );
        assert!(expand_sweep("lookaround:window=0").is_err());
        assert!(expand_sweep("lookaround:nosuch=1").is_err());
        assert!(expand_sweep("lookaround").is_err());
        let l = policy_list(&["lookaround".into()], &["lookaround:window=64,8".into()]).unwrap();
        let names: Vec<String> = l.iter().map(|p| p.full_name()).collect();
        assert_eq!(
            names,
            ["reference", "lookaround:window=64", "lookaround:window=8"],
            "the default window given twice is one cell"
        );
    }

    #[test]
    fn csv_quotes_fields_with_commas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("a\"b,"), "\"a\"\"b,\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
