//! The side-by-side engine: one record stream is lowered once and the same `Op` stream is
//! applied to N models (the reference and the chosen candidates), in chunks, with rayon across
//! the models. Every `hash_every` ops each model's state hash is recorded, so the differ can find
//! the first diverging step exactly by re-running only the last window step by step.
//!
//! What it must never do: hold the whole op stream (chunks are bounded), contain model semantics
//! (models decide everything; ops the model rejects are counted by error kind), or make output
//! depend on thread scheduling (each model is applied sequentially; only models run in parallel).

use std::collections::BTreeMap;

use mmreplay_candidates::BoxedEngine;
use mmreplay_parsers::record::Record;
use mmreplay_reference::counters::Counters;
use mmreplay_reference::invariant::Violation;
use mmreplay_reference::model::ModelError;
use mmreplay_reference::op::{Op, OpOutcome};
use mmreplay_reference::snapshot::Snapshot;
use mmreplay_reference::Engine;
use rayon::prelude::*;

use crate::lower::{LowerOptions, LowerStats, Lowering};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Record every model's state hash after every this many ops (0: never).
    pub hash_every: u64,
    /// Ops per chunk (bounded memory; each chunk is applied to all models in parallel).
    pub chunk_ops: usize,
    /// Run the models in parallel (rayon) rather than one after the other.
    pub parallel: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hash_every: 1024,
            chunk_ops: 32 * 1024,
            parallel: true,
        }
    }
}

/// Result of one policy on one trace.
#[derive(Clone, Debug)]
pub struct PolicyRun {
    /// Policy (registry) name.
    pub name: String,
    pub counters: Counters,
    /// Violations kept by the model (at most 10 000).
    pub violations: Vec<Violation>,
    /// Violations found, including those not kept.
    pub violation_count: u64,
    /// Ops the model rejected, by error kind.
    pub model_errors: BTreeMap<String, u64>,
    /// Outcomes of accepted ops that did nothing (`segv`, `ignored`, `migration_aborted`).
    pub outcomes: BTreeMap<String, u64>,
    /// Final canonical snapshot.
    pub snapshot: Snapshot,
    /// Its FNV-1a hash.
    pub snapshot_hash: u64,
    /// State hash after every `hash_every` ops (index i: after (i+1)*hash_every ops).
    pub checkpoints: Vec<u64>,
}

/// Result of one trace.
#[derive(Clone, Debug)]
pub struct TraceRun {
    /// What the lowering counted.
    pub lower: LowerStats,
    /// One per policy, in the order given.
    pub policies: Vec<PolicyRun>,
}

/// Stable name of a model error kind (for counting).
pub fn error_kind(e: &ModelError) -> &'static str {
    match e {
        ModelError::UnknownMm(_) => "unknown_mm",
        ModelError::MmExists(_) => "mm_exists",
        ModelError::BadCpu { .. } => "bad_cpu",
        ModelError::BadRange { .. } => "bad_range",
        ModelError::UnknownHold(_) => "unknown_hold",
        ModelError::HoldExists(_) => "hold_exists",
        ModelError::NotMapped { .. } => "not_mapped",
        ModelError::NoFolioAtPfn(_) => "no_folio_at_pfn",
        ModelError::FileKindMismatch(_) => "file_kind_mismatch",
        ModelError::Unsupported(_) => "unsupported",
    }
}

struct Slot {
    engine: BoxedEngine,
    errors: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    checkpoints: Vec<u64>,
}

impl Slot {
    fn apply_chunk(&mut self, ops: &[Op], hash_every: u64) {
        for op in ops {
            match self.engine.apply(op) {
                Ok(OpOutcome::Segv) => {
                    *self
                        .outcomes
                        .entry(format!("{}_segv", op.name()))
                        .or_insert(0) += 1
                }
                Ok(OpOutcome::Ignored) => {
                    *self
                        .outcomes
                        .entry(format!("{}_ignored", op.name()))
                        .or_insert(0) += 1
                }
                Ok(OpOutcome::MigrationAborted) => {
                    *self
                        .outcomes
                        .entry("migration_aborted".to_string())
                        .or_insert(0) += 1
                }
                Ok(_) => {}
                Err(e) => {
                    *self
                        .errors
                        .entry(format!("{}:{}", op.name(), error_kind(&e)))
                        .or_insert(0) += 1
                }
            }
            if hash_every > 0 && self.engine.steps() % hash_every == 0 {
                self.checkpoints.push(self.engine.progress_hash());
            }
        }
    }
}

/// Lower `records` and replay them through `engines` side by side. `progress` is called after
/// every chunk with the number of records consumed so far.
pub fn run<E: Send>(
    records: impl Iterator<Item = Result<Record, E>> + Send,
    lower: LowerOptions,
    engines: Vec<BoxedEngine>,
    cfg: &EngineConfig,
    mut progress: impl FnMut(u64),
) -> Result<TraceRun, E> {
    let mut lowering = Lowering::new(lower);
    let mut slots: Vec<Slot> = engines
        .into_iter()
        .map(|engine| Slot {
            engine,
            errors: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            checkpoints: Vec::new(),
        })
        .collect();
    let chunk = cfg.chunk_ops.max(1);
    let mut cur: Vec<Op> = Vec::with_capacity(chunk + 64);
    let mut records = records.fuse();
    let mut ended = false;
    // Fill the first chunk, then overlap: lower chunk k+1 while the models apply chunk k.
    let mut pending_err: Option<E> = None;
    fill(
        &mut records,
        &mut lowering,
        &mut cur,
        chunk,
        &mut ended,
        &mut pending_err,
    );
    loop {
        if let Some(e) = pending_err.take() {
            return Err(e);
        }
        if cur.is_empty() && ended {
            break;
        }
        let mut next: Vec<Op> = Vec::with_capacity(chunk + 64);
        let hash_every = cfg.hash_every;
        let ops = &cur;
        if cfg.parallel {
            let mut next_ended = ended;
            let mut next_err = None;
            rayon::join(
                || {
                    slots
                        .par_iter_mut()
                        .for_each(|s| s.apply_chunk(ops, hash_every))
                },
                || {
                    if !next_ended {
                        fill(
                            &mut records,
                            &mut lowering,
                            &mut next,
                            chunk,
                            &mut next_ended,
                            &mut next_err,
                        )
                    }
                },
            );
            ended = next_ended;
            pending_err = next_err;
        } else {
            for s in &mut slots {
                s.apply_chunk(ops, hash_every);
            }
            if !ended {
                fill(
                    &mut records,
                    &mut lowering,
                    &mut next,
                    chunk,
                    &mut ended,
                    &mut pending_err,
                );
            }
        }
        progress(lowering.stats().records);
        cur = next;
    }
    let policies = slots
        .par_iter_mut()
        .map(|s| {
            s.engine.finish();
            let snapshot = s.engine.snapshot();
            PolicyRun {
                name: s.engine.name().to_string(),
                counters: s.engine.counters().clone(),
                violations: s.engine.violations().to_vec(),
                violation_count: s.engine.violation_count(),
                model_errors: std::mem::take(&mut s.errors),
                outcomes: std::mem::take(&mut s.outcomes),
                snapshot_hash: snapshot.state_hash(),
                snapshot,
                checkpoints: std::mem::take(&mut s.checkpoints),
            }
        })
        .collect();
    Ok(TraceRun {
        lower: lowering.into_stats(),
        policies,
    })
}

/// Lower records into `out` until it holds `chunk` ops or the input ends (then `finish`).
fn fill<E>(
    records: &mut impl Iterator<Item = Result<Record, E>>,
    lowering: &mut Lowering,
    out: &mut Vec<Op>,
    chunk: usize,
    ended: &mut bool,
    err: &mut Option<E>,
) {
    while out.len() < chunk {
        match records.next() {
            Some(Ok(r)) => lowering.push(&r, out),
            Some(Err(e)) => {
                *err = Some(e);
                *ended = true;
                return;
            }
            None => {
                lowering.finish(out);
                *ended = true;
                return;
            }
        }
    }
}

/// Lower only (the baseline the throughput benchmark prints beside replay): returns stats.
pub fn lower_only<E>(
    records: impl Iterator<Item = Result<Record, E>>,
    lower: LowerOptions,
) -> Result<LowerStats, E> {
    let mut lowering = Lowering::new(lower);
    let mut buf = Vec::with_capacity(1024);
    for r in records {
        lowering.push(&r?, &mut buf);
        buf.clear();
    }
    lowering.finish(&mut buf);
    Ok(lowering.into_stats())
}

/// Lower a whole record stream into a vector of ops (tests and benchmarks on small inputs).
pub fn lower_all<E>(
    records: impl Iterator<Item = Result<Record, E>>,
    lower: LowerOptions,
) -> Result<(Vec<Op>, LowerStats), E> {
    let mut lowering = Lowering::new(lower);
    let mut ops = Vec::new();
    for r in records {
        lowering.push(&r?, &mut ops);
    }
    lowering.finish(&mut ops);
    Ok((ops, lowering.into_stats()))
}

/// The first step after which `a` and `b` differ, by replaying `ops` step by step from a state
/// where they were equal. `skip` ops are applied to both first without comparing (the part
/// before the last equal checkpoint). Returns the 0-based op index and both snapshots right
/// after it, or `None` if they never differ.
pub fn first_divergence(
    ops: impl Iterator<Item = Op>,
    a: &mut dyn Engine,
    b: &mut dyn Engine,
    skip: u64,
) -> Option<(u64, Snapshot, Snapshot)> {
    for (i, op) in ops.enumerate() {
        let i = i as u64;
        let _ = a.apply(&op);
        let _ = b.apply(&op);
        if i >= skip && a.progress_hash() != b.progress_hash() {
            return Some((i, a.snapshot(), b.snapshot()));
        }
    }
    None
}
