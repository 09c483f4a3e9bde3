//! The side-by-side engine: one record stream is lowered once and the same `Op` stream is
//! applied to N models (the reference and the chosen candidates), in chunks. With
//! `EngineConfig::parallel`, each chunk's round runs time-sliced on the rayon pool's threads
//! (`engine_sched.rs`): the models' ops in slices and the next chunk's lowering share one
//! queue, so 5 models keep 2 threads busy (one task per model capped the speedup at 5/3).
//! Every `hash_every` ops each model's state hash is recorded, so the differ can find the first
//! diverging step exactly by re-running only the last window step by step.
//!
//! Lockstep mode (`EngineConfig::lockstep`, mm-semantics C.0): the reference (the first model)
//! runs each chunk first and records what every `Reclaim` op did (`Engine::apply_recording`);
//! the candidates then run that chunk with the reference's reclaim rounds imposed
//! (`Engine::apply_imposed`), so they evict the same folios. The reference runs chunk k+1 while
//! the candidates run chunk k (and the lowering fills chunk k+2), all in one sliced round.
//! Migration targets need no imposing: they come from the trace (`Op::Migrate`).
//!
//! What it must never do: hold the whole op stream (chunks are bounded), contain model semantics
//! (models decide everything; ops the model rejects are counted by error kind), or make output
//! depend on thread scheduling (each model's ops are applied in order, by one thread at a time).

use std::collections::BTreeMap;

use mmreplay_candidates::BoxedEngine;
use mmreplay_parsers::record::Record;
use mmreplay_reference::counters::Counters;
use mmreplay_reference::engine::ReclaimScript;
use mmreplay_reference::invariant::Violation;
use mmreplay_reference::model::ModelError;
use mmreplay_reference::op::{Op, OpOutcome};
use mmreplay_reference::snapshot::Snapshot;
use mmreplay_reference::Engine;
use rayon::prelude::*;
use serde::Serialize;

use crate::engine_sched::{self, Job};
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
    /// Lockstep: impose the first model's (the reference's) reclaim rounds on the others.
    pub lockstep: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hash_every: 1024,
            chunk_ops: 32 * 1024,
            parallel: true,
            lockstep: false,
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
    /// Lockstep runs only, candidates only: how the reference's victims were imposed.
    pub lockstep: Option<LockstepCounts>,
}

/// How one candidate followed the reference's reclaim in a lockstep run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockstepCounts {
    /// `Reclaim` ops whose rounds were imposed.
    pub reclaim_ops: u64,
    /// Reclaim victims imposed (folios the reference freed).
    pub victims_imposed: u64,
    /// Imposed victims the candidate could not free.
    pub victims_skipped: u64,
    /// Folios the candidate freed where the reference's attempt failed.
    pub victims_extra: u64,
    /// The first skip: op index and reason.
    pub first_skip: Option<String>,
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

pub(crate) struct Slot {
    engine: BoxedEngine,
    /// (op name, error kind) → count; `PolicyRun::model_errors` names them `op:kind`.
    error_counts: BTreeMap<(&'static str, &'static str), u64>,
    /// (op name, suffix) → count; `PolicyRun::outcomes` names them `op_suffix`.
    outcome_counts: BTreeMap<(&'static str, &'static str), u64>,
    checkpoints: Vec<u64>,
    lockstep: Option<LockstepCounts>,
}

/// What a lockstep model does with `Reclaim` ops.
pub(crate) enum Role<'a> {
    /// Free-running.
    Free,
    /// Record every `Reclaim` op's rounds (in op order; `None` for a rejected one).
    Record(&'a mut Vec<Option<ReclaimScript>>),
    /// Follow these recorded rounds, one per `Reclaim` op of the chunk, in order.
    Follow(&'a [Option<ReclaimScript>]),
}

impl Slot {
    fn apply_chunk(&mut self, ops: &[Op], hash_every: u64) {
        self.apply_chunk_as(ops, hash_every, &mut Role::Free, &mut 0)
    }

    /// Apply `ops` in `role`; `next_script` counts the `Follow` scripts consumed (a chunk may
    /// be applied in several slices, `engine_sched.rs`).
    pub(crate) fn apply_chunk_as(
        &mut self,
        ops: &[Op],
        hash_every: u64,
        role: &mut Role<'_>,
        next_script: &mut usize,
    ) {
        for op in ops {
            let reclaim = matches!(
                op,
                Op::Reclaim { .. } | Op::ReclaimMemcg { .. } | Op::ReclaimScan { .. }
            );
            let r = match role {
                Role::Record(out) if reclaim => {
                    let (r, script) = self.engine.apply_recording(op);
                    out.push(script);
                    r
                }
                Role::Follow(scripts) if reclaim => {
                    let script = scripts.get(*next_script).and_then(Option::as_ref);
                    *next_script += 1;
                    match script {
                        Some(script) => {
                            let step = self.engine.steps();
                            let (r, res) = self.engine.apply_imposed(op, script);
                            let c = self.lockstep.get_or_insert_with(Default::default);
                            c.reclaim_ops += 1;
                            c.victims_imposed += res.imposed;
                            c.victims_skipped += res.skipped;
                            c.victims_extra += res.extra;
                            if c.first_skip.is_none() {
                                c.first_skip = res.first_skip.map(|w| format!("op {step}: {w}"));
                            }
                            r
                        }
                        // The reference rejected this op: nothing to impose.
                        None => self.engine.apply(op),
                    }
                }
                _ => self.engine.apply(op),
            };
            // Counted under static keys (no allocation per op); named at the end.
            let key = match &r {
                Ok(OpOutcome::Segv) => Some((op.name(), "_segv")),
                Ok(OpOutcome::Ignored) => Some((op.name(), "_ignored")),
                Ok(OpOutcome::MigrationAborted) => Some(("migration_aborted", "")),
                Ok(_) => None,
                Err(e) => Some((op.name(), error_kind(e))),
            };
            if let Some(k) = key {
                let map = if r.is_ok() {
                    &mut self.outcome_counts
                } else {
                    &mut self.error_counts
                };
                *map.entry(k).or_insert(0) += 1;
            }
            if hash_every > 0 && self.engine.steps() % hash_every == 0 {
                self.checkpoints.push(self.engine.checkpoint_hash());
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
    progress: impl FnMut(u64),
) -> Result<TraceRun, E> {
    run_sampled(records, lower, engines, cfg, progress, &mut |_| {})
}

/// Every model's (ops applied, counters) after a chunk, for `mmreplay report`'s plots.
pub type Sample<'a> = [(u64, &'a Counters)];

/// [`run`], calling `sample` after every chunk with each model's step count and counters
/// (`cfg.chunk_ops` sets the sampling interval; in lockstep the reference is a chunk ahead).
pub fn run_sampled<E: Send>(
    records: impl Iterator<Item = Result<Record, E>> + Send,
    lower: LowerOptions,
    engines: Vec<BoxedEngine>,
    cfg: &EngineConfig,
    progress: impl FnMut(u64),
    sample: &mut dyn FnMut(&Sample<'_>),
) -> Result<TraceRun, E> {
    let watch = Watch {
        sample,
        ops: &mut |_, _| {},
        grow: false,
    };
    run_watched(records, lower, engines, cfg, progress, watch)
}

/// What a caller (`mmreplay report`) watches during the one replay, besides the result.
pub struct Watch<'a> {
    /// Called after every chunk with every model's step count and counters.
    pub sample: &'a mut dyn FnMut(&Sample<'_>),
    /// Called with every lowered chunk (index of its first op, its ops), in op order, on the
    /// lowering side (it overlaps the models' work on the previous chunk).
    pub ops: &'a mut (dyn FnMut(u64, &[Op]) + Send),
    /// Chunks grow with the ops lowered so far (`ops / GROW_DIV`, from [`GROW_MIN`] up to
    /// `cfg.chunk_ops`): a short capture still gets hundreds of samples, a long one's chunks
    /// stay large. The models' results do not depend on the chunk size.
    pub grow: bool,
}

/// Growing chunks: ops lowered so far divided by this.
pub const GROW_DIV: u64 = 512;
/// Growing chunks: the smallest.
pub const GROW_MIN: usize = 16;

/// The lowering side of the loop: the chunk size and the ops observer.
struct Feed<'a> {
    /// Ops lowered so far.
    n: u64,
    max: usize,
    grow: bool,
    ops: &'a mut (dyn FnMut(u64, &[Op]) + Send),
}

impl Feed<'_> {
    fn fill<E>(
        &mut self,
        records: &mut impl Iterator<Item = Result<Record, E>>,
        lowering: &mut Lowering,
        out: &mut Vec<Op>,
        ended: &mut bool,
        err: &mut Option<E>,
    ) {
        let chunk = if self.grow {
            usize::try_from(self.n / GROW_DIV)
                .unwrap_or(usize::MAX)
                .clamp(GROW_MIN.min(self.max), self.max)
        } else {
            self.max
        };
        fill(records, lowering, out, chunk, ended, err);
        (self.ops)(self.n, out);
        self.n += out.len() as u64;
    }
}

/// [`run_sampled`] with an ops observer and growing chunks ([`Watch`]).
pub fn run_watched<E: Send>(
    records: impl Iterator<Item = Result<Record, E>> + Send,
    lower: LowerOptions,
    engines: Vec<BoxedEngine>,
    cfg: &EngineConfig,
    mut progress: impl FnMut(u64),
    watch: Watch<'_>,
) -> Result<TraceRun, E> {
    let sample = watch.sample;
    let mut feed = Feed {
        n: 0,
        max: cfg.chunk_ops.max(1),
        grow: watch.grow,
        ops: watch.ops,
    };
    let mut lowering = Lowering::new(lower);
    let mut slots: Vec<Slot> = engines
        .into_iter()
        .enumerate()
        .map(|(i, engine)| Slot {
            engine,
            error_counts: BTreeMap::new(),
            outcome_counts: BTreeMap::new(),
            checkpoints: Vec::new(),
            lockstep: (cfg.lockstep && i > 0).then(LockstepCounts::default),
        })
        .collect();
    let chunk = cfg.chunk_ops.max(1);
    if cfg.lockstep && slots.len() > 1 {
        run_lockstep(
            records,
            &mut lowering,
            &mut slots,
            cfg,
            &mut progress,
            sample,
            &mut feed,
        )?;
        return Ok(TraceRun {
            lower: lowering.into_stats(),
            policies: finish_all(slots),
        });
    }
    let mut cur: Vec<Op> = Vec::with_capacity(chunk + 64);
    let mut records = records.fuse();
    let mut ended = false;
    // Fill the first chunk, then overlap: lower chunk k+1 while the models apply chunk k.
    let mut pending_err: Option<E> = None;
    feed.fill(
        &mut records,
        &mut lowering,
        &mut cur,
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
            // Time-sliced on the pool's threads, the next chunk's lowering among the pieces
            // (`engine_sched.rs`).
            let mut next_ended = ended;
            let mut next_err = None;
            let fill: Option<Box<dyn FnOnce() + Send + '_>> = (!next_ended).then(|| {
                let (records, lowering, next) = (&mut records, &mut lowering, &mut next);
                let (feed, next_ended, next_err) = (&mut feed, &mut next_ended, &mut next_err);
                Box::new(move || feed.fill(records, lowering, next, next_ended, next_err))
                    as Box<dyn FnOnce() + Send + '_>
            });
            let jobs = slots
                .iter_mut()
                .map(|s| Job::new(s, ops, Role::Free))
                .collect();
            engine_sched::run_round(jobs, fill, hash_every);
            ended = next_ended;
            pending_err = next_err;
        } else {
            for s in &mut slots {
                s.apply_chunk(ops, hash_every);
            }
            if !ended {
                feed.fill(
                    &mut records,
                    &mut lowering,
                    &mut next,
                    &mut ended,
                    &mut pending_err,
                );
            }
        }
        progress(lowering.stats().records);
        sample(&take_sample(&slots));
        cur = next;
    }
    Ok(TraceRun {
        lower: lowering.into_stats(),
        policies: finish_all(slots),
    })
}

fn take_sample(slots: &[Slot]) -> Vec<(u64, &Counters)> {
    slots
        .iter()
        .map(|s| (s.engine.steps(), s.engine.counters()))
        .collect()
}

/// Final state of every model (full invariant scan, snapshot).
fn finish_all(mut slots: Vec<Slot>) -> Vec<PolicyRun> {
    slots.par_iter_mut().for_each(|s| s.engine.finish());
    // One snapshot at a time, each model dropped as soon as its snapshot is taken: holding
    // every model and every final snapshot at once was the peak of a whole-machine run (5
    // models and 5 snapshots of a 100 M-record capture). The hashes run in parallel after.
    let mut runs: Vec<PolicyRun> = slots
        .into_iter()
        .map(|mut s| {
            let snapshot = s.engine.snapshot();
            PolicyRun {
                name: s.engine.name().to_string(),
                counters: s.engine.counters().clone(),
                violations: s.engine.violations().to_vec(),
                violation_count: s.engine.violation_count(),
                model_errors: std::mem::take(&mut s.error_counts)
                    .into_iter()
                    .map(|((op, kind), n)| (format!("{op}:{kind}"), n))
                    .collect(),
                outcomes: std::mem::take(&mut s.outcome_counts)
                    .into_iter()
                    .map(|((a, b), n)| (format!("{a}{b}"), n))
                    .collect(),
                snapshot_hash: 0,
                snapshot,
                checkpoints: std::mem::take(&mut s.checkpoints),
                lockstep: s.lockstep.take(),
            }
        })
        .collect();
    runs.par_iter_mut()
        .for_each(|r| r.snapshot_hash = r.snapshot.state_hash());
    runs
}

/// The lockstep loop: the reference (`slots[0]`) runs chunk k+1 and the lowering fills chunk
/// k+2 while the candidates run chunk k with the reference's reclaim rounds of chunk k.
fn run_lockstep<E: Send>(
    records: impl Iterator<Item = Result<Record, E>> + Send,
    lowering: &mut Lowering,
    slots: &mut [Slot],
    cfg: &EngineConfig,
    progress: &mut impl FnMut(u64),
    sample: &mut dyn FnMut(&Sample<'_>),
    feed: &mut Feed<'_>,
) -> Result<(), E> {
    let chunk = cfg.chunk_ops.max(1);
    let hash_every = cfg.hash_every;
    let mut records = records.fuse();
    let mut ended = false;
    let mut err: Option<E> = None;
    let Some((reference, candidates)) = slots.split_first_mut() else {
        return Ok(());
    };
    // cur: chunk the reference has run (scripts ready); next: lowered, not yet run.
    let mut cur: Vec<Op> = Vec::with_capacity(chunk + 64);
    feed.fill(&mut records, lowering, &mut cur, &mut ended, &mut err);
    if let Some(e) = err.take() {
        return Err(e);
    }
    let mut cur_scripts: Vec<Option<ReclaimScript>> = Vec::new();
    reference.apply_chunk_as(
        &cur,
        hash_every,
        &mut Role::Record(&mut cur_scripts),
        &mut 0,
    );
    let mut next: Vec<Op> = Vec::with_capacity(chunk + 64);
    if !ended {
        feed.fill(&mut records, lowering, &mut next, &mut ended, &mut err);
    }
    loop {
        if let Some(e) = err.take() {
            return Err(e);
        }
        if cur.is_empty() && next.is_empty() && ended {
            break;
        }
        let mut next_scripts: Vec<Option<ReclaimScript>> = Vec::new();
        let mut after: Vec<Op> = Vec::with_capacity(chunk + 64);
        let (ops, scripts) = (&cur, &cur_scripts);
        if cfg.parallel {
            // Time-sliced on the pool's threads (`engine_sched.rs`): the lowering of chunk
            // k+2, the reference's slices of chunk k+1 and the candidates' slices of chunk k.
            let mut after_ended = ended;
            let mut after_err = None;
            let fill: Option<Box<dyn FnOnce() + Send + '_>> = (!after_ended).then(|| {
                let (records, lowering, after) = (&mut records, &mut *lowering, &mut after);
                let (feed, after_ended, after_err) = (&mut *feed, &mut after_ended, &mut after_err);
                Box::new(move || feed.fill(records, lowering, after, after_ended, after_err))
                    as Box<dyn FnOnce() + Send + '_>
            });
            let jobs = std::iter::once(Job::new(
                &mut *reference,
                &next,
                Role::Record(&mut next_scripts),
            ))
            .chain(
                candidates
                    .iter_mut()
                    .map(|s| Job::new(s, ops, Role::Follow(scripts))),
            )
            .collect();
            engine_sched::run_round(jobs, fill, hash_every);
            ended = after_ended;
            err = after_err;
        } else {
            for s in candidates.iter_mut() {
                s.apply_chunk_as(ops, hash_every, &mut Role::Follow(scripts), &mut 0);
            }
            reference.apply_chunk_as(
                &next,
                hash_every,
                &mut Role::Record(&mut next_scripts),
                &mut 0,
            );
            if !ended {
                feed.fill(&mut records, lowering, &mut after, &mut ended, &mut err);
            }
        }
        progress(lowering.stats().records);
        let all: Vec<(u64, &Counters)> = std::iter::once(&*reference)
            .chain(candidates.iter())
            .map(|s| (s.engine.steps(), s.engine.counters()))
            .collect();
        sample(&all);
        cur = std::mem::replace(&mut next, after);
        cur_scripts = next_scripts;
    }
    Ok(())
}

/// Replay ops that need no lowering (a litmus file, a minimised op list) through `engines`:
/// the whole list is one chunk, so in lockstep the reference records every reclaim round
/// before the candidates follow them. `lower` is reported as given.
pub fn run_ops(
    ops: &[Op],
    lower: LowerStats,
    engines: Vec<BoxedEngine>,
    cfg: &EngineConfig,
) -> TraceRun {
    let mut slots: Vec<Slot> = engines
        .into_iter()
        .enumerate()
        .map(|(i, engine)| Slot {
            engine,
            error_counts: BTreeMap::new(),
            outcome_counts: BTreeMap::new(),
            checkpoints: Vec::new(),
            lockstep: (cfg.lockstep && i > 0).then(LockstepCounts::default),
        })
        .collect();
    if let Some((reference, candidates)) = slots.split_first_mut() {
        if cfg.lockstep {
            let mut scripts = Vec::new();
            reference.apply_chunk_as(ops, cfg.hash_every, &mut Role::Record(&mut scripts), &mut 0);
            for c in candidates {
                c.apply_chunk_as(ops, cfg.hash_every, &mut Role::Follow(&scripts), &mut 0);
            }
        } else {
            for s in std::iter::once(reference).chain(candidates) {
                s.apply_chunk(ops, cfg.hash_every);
            }
        }
    }
    TraceRun {
        lower,
        policies: finish_all(slots),
    }
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

/// Whether op `i` is a comparison point: from `skip` on, after every `every`-th op.
fn due(i: u64, skip: u64, every: u64) -> bool {
    i >= skip && (i - skip + 1) % every.max(1) == 0
}

/// The first step after which `a` and `b` differ, by replaying `ops` step by step from a state
/// where they were equal. `skip` ops are applied to both first without comparing (the part
/// before the last equal checkpoint); from there the states are compared after every
/// `every`-th op (1: every op, the exact answer). Returns the 0-based op index of the first
/// comparison that differs and both snapshots right after it, or `None` if none differs.
pub fn first_divergence(
    ops: impl Iterator<Item = Op>,
    a: &mut dyn Engine,
    b: &mut dyn Engine,
    skip: u64,
    every: u64,
) -> Option<(u64, Snapshot, Snapshot)> {
    for (i, op) in ops.enumerate() {
        let i = i as u64;
        let _ = a.apply(&op);
        let _ = b.apply(&op);
        if due(i, skip, every) && a.checkpoint_hash() != b.checkpoint_hash() {
            return Some((i, a.snapshot(), b.snapshot()));
        }
    }
    None
}

/// [`first_divergence`] for a lockstep run: `reference`'s reclaim rounds are imposed on
/// `candidate` op by op, as `run` does with `EngineConfig::lockstep`.
pub fn first_divergence_lockstep(
    ops: impl Iterator<Item = Op>,
    reference: &mut dyn Engine,
    candidate: &mut dyn Engine,
    skip: u64,
    every: u64,
) -> Option<(u64, Snapshot, Snapshot)> {
    for (i, op) in ops.enumerate() {
        let i = i as u64;
        let (_, script) = reference.apply_recording(&op);
        let _ = match &script {
            Some(s) => candidate.apply_imposed(&op, s).0,
            None => candidate.apply(&op),
        };
        if due(i, skip, every) && reference.checkpoint_hash() != candidate.checkpoint_hash() {
            return Some((i, reference.snapshot(), candidate.snapshot()));
        }
    }
    None
}
