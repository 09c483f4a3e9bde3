//! One replay session on one trace: open the input, build the reference and candidate models
//! from the candidates registry, run the engine, then for every candidate that diverges re-run
//! the diverging window step by step to find the first diverging op exactly, and produce the
//! verdicts and trimmed diffs. The CLI and the benchmarks call this; it prints nothing.
//!
//! It must never decide what a contract allows (the candidates crate does) or hold the op
//! stream in memory (re-runs re-read the input).

use std::collections::BTreeMap;

use mmreplay_candidates::contract::Mode;
use mmreplay_candidates::registry::{self, PolicySpec};
use mmreplay_candidates::BoxedEngine;
use mmreplay_reference::op::Op;
use mmreplay_reference::profile::{CpumaskMode, KernelProfile, LruKind};

use crate::differ::{self, Comparison};
use crate::engine::{self, EngineConfig, TraceRun};
use crate::input_report::{FactSource, Filters, InputReport, LostTracker, SidecarFacts};
use crate::lower::{LowerOptions, Lowering};
use crate::source::{Source, SourceError};

/// CPUs assumed when the input does not say and `--cpus` is not given.
pub const DEFAULT_CPUS: u32 = 8;

/// Options of a session.
/// Ops between state-hash comparisons in the first re-run that locates a divergence.
const LOCATE_STRIDE: u64 = 32;

/// A located first diverging op and both snapshots right after it.
type Located = (
    u64,
    mmreplay_reference::snapshot::Snapshot,
    mmreplay_reference::snapshot::Snapshot,
);

/// Ops around a located first diverging op, with their indices.
pub type WindowOps = Vec<(u64, Op)>;

/// Ops kept before a located first diverging op ([`SessionResult::windows`]).
pub const WINDOW_BEFORE: u64 = 12;
/// Ops kept after it.
pub const WINDOW_AFTER: u64 = 3;

#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Policy specs, reference first (added if missing).
    pub policies: Vec<String>,
    pub mode: Mode,
    pub pid: Option<i32>,
    pub comm: Option<String>,
    /// Parser strict mode.
    pub strict: bool,
    /// Override the CPU count.
    pub cpus: Option<u32>,
    pub engine: EngineConfig,
    /// Locate the first diverging op exactly (re-runs the diverging window).
    pub locate: bool,
    /// `mm_cpumask` maintenance of the captured kernel (recent x86 trims lazily by flush).
    pub cpumask_mode: CpumaskMode,
    /// The capture's kernel (`crate::kernel`): the profile's mechanics follow it, except
    /// `cpumask_mode` above. `None`: the default profile.
    pub kernel: Option<crate::kernel::KernelChoice>,
    /// `--lru`: overrides the LRU of the kernel profile (`None`: the kernel's own).
    pub lru: Option<LruKind>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            policies: vec!["reference".into()],
            mode: Mode::FreeRunning,
            pid: None,
            comm: None,
            strict: false,
            cpus: None,
            engine: EngineConfig::default(),
            locate: true,
            cpumask_mode: CpumaskMode::TrimByFlush,
            kernel: None,
            lru: None,
        }
    }
}

/// Errors of a session: bad policy list or bad input.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("--policies: {0}")]
    Policy(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Litmus(#[from] crate::litmus::LitmusError),
    #[error(transparent)]
    ProcSnap(#[from] crate::procsnap::ProcSnapError),
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    #[error("{0}: no records, because: the capture is empty (nothing to replay)")]
    Empty(String),
    #[error("{trace}: {filter} matched no record, because: no task of the capture has that {what} ({records} records read, {filtered_out} filtered out)")]
    NoMatch {
        trace: String,
        filter: String,
        what: &'static str,
        records: u64,
        filtered_out: u64,
    },
    #[error("{trace}: --strict: {what}")]
    Strict { trace: String, what: String },
}

/// What a session produced.
pub struct SessionResult {
    pub trace: String,
    pub format: String,
    pub nr_cpus: u32,
    pub run: TraceRun,
    pub verdicts: Vec<Comparison>,
    pub diffs: BTreeMap<String, String>,
    /// What the run read and assumed about its input (lost events, unparsed lines, filters).
    pub input: InputReport,
    /// Per candidate whose first diverging op was located by re-reading the input: the ops
    /// around it ([`WINDOW_BEFORE`] before, [`WINDOW_AFTER`] after), with their indices, kept
    /// by that re-run (`mmreplay report` shows them without reading the input again).
    pub windows: BTreeMap<String, WindowOps>,
}

/// The LRU a session models: `--lru`, else the capture kernel's (MGLRU when its sidecar says
/// `lru_gen` was enabled), else `kernel_lru::DEFAULT` (the classic LRU).
pub fn effective_lru(o: &SessionOptions) -> LruKind {
    o.lru
        .or_else(|| o.kernel.as_ref().map(|k| k.profile(1).lru))
        .unwrap_or(crate::kernel_lru::DEFAULT)
}

/// The process snapshot `mmreplay record` wrote next to the trace (`TRACE.procs.zst`), if there
/// is one: every lowering of that input (replay, re-runs, report, minimize, fidelity) seeds
/// the processes older than the capture from it.
pub fn procs_for(
    input: Option<&str>,
) -> Result<Option<std::sync::Arc<crate::procsnap::ProcSnap>>, SessionError> {
    match input.map(|p| crate::procsnap::path_for(std::path::Path::new(p))) {
        Some(sp) if sp.exists() => Ok(Some(std::sync::Arc::new(crate::procsnap::load(&sp)?))),
        _ => Ok(None),
    }
}

/// The `record --access` log next to the trace (`TRACE.access.json`), if there is one: every
/// lowering of that input lowers its soft-dirty clears (`lower/access.rs`).
pub fn access_for(
    input: Option<&str>,
) -> Result<Option<std::sync::Arc<crate::access::AccessLog>>, SessionError> {
    match input.map(|p| crate::access::path_for(std::path::Path::new(p))) {
        Some(ap) if ap.exists() => Ok(Some(std::sync::Arc::new(crate::access::load(&ap)?))),
        _ => Ok(None),
    }
}

/// Parse the policy list, putting `reference` first.
pub fn specs(list: &[String]) -> Result<Vec<PolicySpec>, SessionError> {
    let mut names: Vec<&str> = list
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if names.first() != Some(&"reference") {
        names.retain(|n| *n != "reference");
        names.insert(0, "reference");
    }
    registry::parse_list(&names).map_err(|e| SessionError::Policy(e.to_string()))
}

/// A streaming op iterator over an input (for re-runs).
struct OpStream {
    src: Source,
    lowering: Lowering,
    buf: std::collections::VecDeque<Op>,
    scratch: Vec<Op>,
    done: bool,
    /// Ops handed out so far.
    n: u64,
    /// The last ops handed out (at most `WINDOW_BEFORE + 1`), from `keep_from - WINDOW_BEFORE`
    /// on only: nothing is cloned before the window a re-run compares in.
    recent: std::collections::VecDeque<(u64, Op)>,
    keep_from: u64,
}

impl OpStream {
    /// The ops around op `i` (just handed out): the kept ones before it and the next few.
    fn window(&mut self, i: u64) -> WindowOps {
        let mut w: WindowOps = self
            .recent
            .drain(..)
            .filter(|(k, _)| k + WINDOW_BEFORE >= i)
            .collect();
        for _ in 0..WINDOW_AFTER {
            let k = self.n;
            match self.next() {
                Some(op) => w.push((k, op)),
                None => break,
            }
        }
        w
    }
}

impl Iterator for OpStream {
    type Item = Op;
    fn next(&mut self) -> Option<Op> {
        loop {
            if let Some(op) = self.buf.pop_front() {
                if self.n + WINDOW_BEFORE >= self.keep_from {
                    if self.recent.len() as u64 > WINDOW_BEFORE {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((self.n, op.clone()));
                }
                self.n += 1;
                return Some(op);
            }
            if self.done {
                return None;
            }
            match self.src.next_record() {
                Ok(Some(r)) => self.lowering.push(&r, &mut self.scratch),
                // The first pass read the same input successfully; an error now ends the stream.
                Ok(None) | Err(_) => {
                    self.lowering.finish(&mut self.scratch);
                    self.done = true;
                }
            }
            self.buf.extend(self.scratch.drain(..));
        }
    }
}

/// Replay one input (`None`: the bundled capture).
pub fn run(
    input: Option<&str>,
    o: &SessionOptions,
    progress: impl FnMut(&Source, u64) + Send,
) -> Result<SessionResult, SessionError> {
    let watch = engine::Watch {
        sample: &mut |_| {},
        ops: &mut |_, _| {},
        grow: false,
    };
    run_watched(input, o, progress, watch)
}

/// [`run`], with `watch` seeing the one replay's samples and ops (`mmreplay report`). A litmus
/// file is replayed as [`run_litmus`] does; `watch` is not called for it.
pub fn run_watched(
    input: Option<&str>,
    o: &SessionOptions,
    progress: impl FnMut(&Source, u64) + Send,
    watch: engine::Watch<'_>,
) -> Result<SessionResult, SessionError> {
    if let Some(path) = input.filter(|p| crate::source::is_litmus(p)) {
        return run_litmus(path, o);
    }
    let specs = specs(&o.policies)?;
    let src = Source::open_opt(input, o.strict)?;
    let nr_cpus = o
        .cpus
        .or(src.nr_cpus())
        .or(o.kernel.as_ref().and_then(|k| k.nr_cpus))
        .unwrap_or(DEFAULT_CPUS)
        .clamp(1, 64);
    // A capture that does not state its CPU count (a perf pipe stream without HEADER_NRCPUS,
    // simpleperf, text without `#P:`, no sidecar) is modelled with DEFAULT_CPUS: said in the
    // report, never silently (`approximations: nr_cpus_assumed=N`, text and JSON).
    let assumed_cpus = (o.cpus.is_none()
        && src.nr_cpus().is_none()
        && o.kernel.as_ref().and_then(|k| k.nr_cpus).is_none())
    .then_some(nr_cpus);
    let cpus_source = if o.cpus.is_some() {
        FactSource::Option
    } else if src.nr_cpus().is_some() {
        FactSource::Capture
    } else if assumed_cpus.is_none() {
        FactSource::Sidecar
    } else {
        FactSource::Assumed
    };
    let mut lost = LostTracker::default();
    let profile = profile_for(o, nr_cpus);
    let procs = procs_for(input)?;
    let lower = LowerOptions {
        pid: o.pid,
        comm: o.comm.clone(),
        nr_cpus,
        procs,
        access: access_for(input)?,
    };
    let trace = src.name().to_string();
    let format = src.format().to_string();
    let engines = registry::build_all(&specs, &profile);
    let mut progress = progress;
    let (run, diag) = {
        let mut src = src;
        let mut n = 0u64;
        let it = std::iter::from_fn(|| {
            n += 1;
            if n % 65536 == 0 {
                progress(&src, n);
            }
            let r = src.next_record().transpose();
            if let Some(Ok(r)) = &r {
                lost.see(r);
            }
            r
        });
        let cfg = EngineConfig {
            lockstep: o.mode == Mode::Lockstep,
            ..o.engine.clone()
        };
        let mut run = engine::run_watched(it, lower.clone(), engines, &cfg, |_| {}, watch)?;
        if let Some(n) = assumed_cpus {
            run.lower
                .approximations
                .insert("nr_cpus_assumed".into(), u64::from(n));
        }
        (run, src.diagnostics())
    };
    let mut input_report = InputReport::new(
        (nr_cpus, cpus_source),
        SidecarFacts::of(input),
        Filters {
            pid: o.pid,
            comm: o.comm.clone(),
            workload: false,
        },
        lost.finish(),
        diag.as_ref(),
    );
    if let Some(k) = &o.kernel {
        input_report.kernel = Some(k.profile.clone());
        input_report.kernel_source = crate::input_report::kernel_source(k);
    }
    input_report.filtered_out = run.lower.filtered_out;
    input_report.matched = run.lower.matched;
    check_input(&trace, &run.lower, &input_report, o.strict)?;
    let mut verdicts = Vec::new();
    let mut diffs = BTreeMap::new();
    let mut windows = BTreeMap::new();
    let Some(reference) = run.policies.first() else {
        return Ok(SessionResult {
            trace,
            format,
            nr_cpus,
            run,
            verdicts,
            diffs,
            input: input_report,
            windows,
        });
    };
    for (i, cand) in run.policies.iter().enumerate().skip(1) {
        let Some(spec) = specs.get(i) else { continue };
        let contract = spec.contract(o.mode, &profile);
        let window = differ::first_diverging_window(reference, cand);
        // Locating re-reads the input, which standard input cannot do.
        let rereadable = input != Some("-");
        // Re-run the reference and this candidate from the start, comparing state hashes every
        // `every` ops from op `skip` on.
        let rerun = |skip: u64, every: u64| -> Result<Option<(Located, WindowOps)>, SessionError> {
            let src = Source::open_opt(input, o.strict)?;
            let mut ops = OpStream {
                src,
                lowering: Lowering::new(lower.clone()),
                buf: Default::default(),
                scratch: Vec::new(),
                done: false,
                n: 0,
                recent: Default::default(),
                keep_from: skip,
            };
            let pair: Vec<PolicySpec> = specs
                .first()
                .cloned()
                .into_iter()
                .chain([spec.clone()])
                .collect();
            let mut e = registry::build_all(&pair, &profile);
            let found = match (e.pop(), e.pop()) {
                (Some(mut c), Some(mut r)) if o.mode == Mode::Lockstep => {
                    engine::first_divergence_lockstep(&mut ops, &mut *r, &mut *c, skip, every)
                }
                (Some(mut c), Some(mut r)) => {
                    engine::first_divergence(&mut ops, &mut *r, &mut *c, skip, every)
                }
                _ => None,
            };
            Ok(found.map(|l| {
                let w = ops.window(l.0);
                (l, w)
            }))
        };
        let located = match (window, o.locate && rereadable, o.engine.hash_every) {
            (Some(w), true, n) if n > 0 => {
                let skip = w as u64 * n;
                // Hashing a large state at every op of the window cost more than the replay:
                // first every LOCATE_STRIDE ops, then op by op in the stride that differed.
                let stride = LOCATE_STRIDE.min(n);
                match rerun(skip, stride)? {
                    Some(found) if stride == 1 => Some(found),
                    Some(((i, ..), _)) => rerun(skip.max((i + 1).saturating_sub(stride)), 1)?,
                    None => rerun(skip, 1)?,
                }
            }
            _ => None,
        };
        let located = located.map(|(l, w)| {
            windows.insert(cand.name.clone(), w);
            l
        });
        let v = differ::compare(
            Some(&contract),
            reference,
            cand,
            located.as_ref().map(|(s, a, b)| (*s, a, b)),
        );
        let (a, b) = match &located {
            Some((_, a, b)) => (a, b),
            None => (&reference.snapshot, &cand.snapshot),
        };
        let d = differ::snapshot_diff(a, b, &reference.name, &cand.name);
        if !d.is_empty() {
            diffs.insert(cand.name.clone(), d);
        }
        verdicts.push(v);
    }
    Ok(SessionResult {
        trace,
        format,
        nr_cpus,
        run,
        verdicts,
        diffs,
        input: input_report,
        windows,
    })
}

/// An empty capture and a filter that matches nothing are errors (there is nothing to say about
/// them that a report of zeros would not hide); under `--strict` so is every tolerance the
/// input needed (`InputReport::problems`).
pub fn check_input(
    trace: &str,
    l: &crate::lower::LowerStats,
    input: &InputReport,
    strict: bool,
) -> Result<(), SessionError> {
    let real = l.records.saturating_sub(input.lost.markers);
    if real == 0 {
        return Err(SessionError::Empty(trace.to_string()));
    }
    if input.filters.any() && input.matched == 0 {
        return Err(SessionError::NoMatch {
            trace: trace.to_string(),
            filter: input.filters.describe(),
            what: match (input.filters.pid, &input.filters.comm) {
                (Some(_), Some(_)) => "pid and comm",
                (Some(_), None) => "pid",
                _ => "comm",
            },
            records: l.records,
            filtered_out: l.filtered_out,
        });
    }
    if strict {
        let p = input.problems();
        if !p.is_empty() {
            return Err(SessionError::Strict {
                trace: trace.to_string(),
                what: format!(
                    "{} (without --strict these are counted and reported)",
                    p.join("; ")
                ),
            });
        }
    }
    Ok(())
}

/// The kernel profile a session with options `o` models a capture of `nr_cpus` CPUs with:
/// the capture kernel's (else the defaults), `o.cpumask_mode`, the [`effective_lru`].
pub fn profile_for(o: &SessionOptions, nr_cpus: u32) -> KernelProfile {
    let profile = match &o.kernel {
        Some(k) => KernelProfile {
            cpumask_mode: o.cpumask_mode,
            ..k.profile(nr_cpus)
        },
        None => profile(nr_cpus, o.cpumask_mode),
    };
    KernelProfile {
        lru: effective_lru(o),
        ..profile
    }
}

/// The kernel profile a replay uses: defaults, the capture's CPU count and cpumask mode.
pub fn profile(nr_cpus: u32, cpumask_mode: CpumaskMode) -> KernelProfile {
    KernelProfile {
        nr_cpus,
        cpumask_mode,
        ..KernelProfile::default()
    }
}

/// Engines for `specs` with the default session profile (benches).
pub fn build(specs: &[PolicySpec], nr_cpus: u32) -> Vec<BoxedEngine> {
    build_lru(specs, nr_cpus, crate::kernel_lru::DEFAULT)
}

/// Engines for `specs` with the default session profile and the given LRU.
pub fn build_lru(specs: &[PolicySpec], nr_cpus: u32, lru: LruKind) -> Vec<BoxedEngine> {
    let p = KernelProfile {
        lru,
        ..profile(nr_cpus, SessionOptions::default().cpumask_mode)
    };
    registry::build_all(specs, &p)
}

/// A policy to run on an in-memory op list: its engine and the contract it is judged by
/// (`None`: reported not comparable).
pub type Built = (BoxedEngine, Option<mmreplay_candidates::contract::Contract>);

/// [`run`] for ops that need no lowering (a litmus file, a minimised op list): `build` makes
/// the reference (first) and the candidates afresh; it is called again for each located
/// divergence. `lower` is reported as given (its `ops` is set to the list's length).
pub fn run_ops(
    trace: &str,
    format: &str,
    ops: &[Op],
    mut lower: crate::lower::LowerStats,
    profile: &KernelProfile,
    o: &SessionOptions,
    build: &dyn Fn() -> Vec<Built>,
) -> SessionResult {
    lower.ops = ops.len() as u64;
    let (engines, contracts): (Vec<BoxedEngine>, Vec<_>) = build().into_iter().unzip();
    let cfg = EngineConfig {
        lockstep: o.mode == Mode::Lockstep,
        ..o.engine.clone()
    };
    let run = engine::run_ops(ops, lower, engines, &cfg);
    let mut verdicts = Vec::new();
    let mut diffs = BTreeMap::new();
    if let Some(reference) = run.policies.first() {
        for (i, cand) in run.policies.iter().enumerate().skip(1) {
            let contract = contracts.get(i).cloned().flatten();
            let diverged = differ::first_diverging_window(reference, cand).is_some();
            let located = if diverged && o.locate {
                let mut e = build();
                let c = (i < e.len()).then(|| e.swap_remove(i));
                match (c, e.into_iter().next()) {
                    (Some((mut c, _)), Some((mut r, _))) => {
                        let it = ops.iter().cloned();
                        if o.mode == Mode::Lockstep {
                            engine::first_divergence_lockstep(it, &mut *r, &mut *c, 0, 1)
                        } else {
                            engine::first_divergence(it, &mut *r, &mut *c, 0, 1)
                        }
                    }
                    _ => None,
                }
            } else {
                None
            };
            let v = differ::compare(
                contract.as_ref(),
                reference,
                cand,
                located.as_ref().map(|(s, a, b)| (*s, a, b)),
            );
            let (a, b) = match &located {
                Some((_, a, b)) => (a, b),
                None => (&reference.snapshot, &cand.snapshot),
            };
            let d = differ::snapshot_diff(a, b, &reference.name, &cand.name);
            if !d.is_empty() {
                diffs.insert(cand.name.clone(), d);
            }
            verdicts.push(v);
        }
    }
    SessionResult {
        trace: trace.to_string(),
        format: format.to_string(),
        nr_cpus: profile.nr_cpus,
        run,
        verdicts,
        diffs,
        input: InputReport {
            cpus: profile.nr_cpus,
            cpus_source: FactSource::Capture,
            clock_source: FactSource::Unknown,
            ..InputReport::default()
        },
        windows: BTreeMap::new(),
    }
}

/// Replay a litmus file (`corpus/litmus/*.litmus`) through `o.policies`: its ops under its own
/// `# profile:` (`--cpus` overrides the CPU count). Its expectations are `mmreplay check`'s.
pub fn run_litmus(path: &str, o: &SessionOptions) -> Result<SessionResult, SessionError> {
    let specs = specs(&o.policies)?;
    let f = crate::litmus::load(std::path::Path::new(path))?;
    let mut profile = f.profile.clone();
    if let Some(n) = o.cpus {
        profile.nr_cpus = n.clamp(1, 64);
    }
    let ops: Vec<Op> = f.ops.iter().map(|l| l.op.clone()).collect();
    let build = || -> Vec<Built> {
        specs
            .iter()
            .map(|s| (s.build(&profile), Some(s.contract(o.mode, &profile))))
            .collect()
    };
    Ok(run_ops(
        path,
        "litmus",
        &ops,
        crate::lower::LowerStats::default(),
        &profile,
        o,
        &build,
    ))
}
