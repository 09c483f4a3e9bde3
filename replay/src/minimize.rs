//! `mmreplay minimize`: delta debugging (ddmin) over the lowered op stream of one input,
//! until a chosen property still holds and no single op can be removed without losing it.
//! The result is a litmus file (`crate::litmus`) that `mmreplay check` runs as a regression
//! test.
//!
//! Removal is hierarchical, coarse to fine, each level a ddmin pass (chunks of units, halving
//! the chunk size down to one unit): whole processes (every op of one mm), whole VMAs (the
//! mmap that made a range and every later op inside it, in the mm and its forked children),
//! then the op stream itself (time windows of halving length down to single ops, repeated at
//! one op until nothing more goes). A candidate subset counts only when it is well formed:
//! neither model rejects one of its ops (an op on an unknown mm, an exit before the fork,
//! a CPU out of range, an unknown hold, ...) nor takes a SIGSEGV (an access outside every VMA);
//! ops the reference rejects or faults on in the full input are dropped before the search.
//!
//! Properties (`--property`): `verdict=diverged_within_contract|contract_breach` (the
//! differ's verdict of the candidate against the reference), `counter=NAME` (the counter
//! differs between them), `invariant=IN` (the candidate's model reports that invariant),
//! `fidelity=NAME:T` (the reference's prediction of an observed count is off from what the
//! capture logged on the kept ops by more than T; observations are attributed to the next op
//! the lowering emitted after them).
//!
//! It must never contain model semantics (models decide validity and verdicts), never depend
//! on time or thread scheduling for its result (the search order is fixed), and never report
//! a result it has not evaluated (the current subset always holds the property).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mmreplay_candidates::contract::{Mode, Subject};
use mmreplay_candidates::verdict::Verdict;
use mmreplay_reference::invariant::Invariant;
use mmreplay_reference::op::{MigrateTarget, Op};
use mmreplay_reference::profile::{CpumaskMode, KernelProfile};
use serde::Serialize;

use crate::engine::{self, EngineConfig, PolicyRun};
use crate::lower::{LowerOptions, LowerStats, Lowering, Observed};
use crate::session::Built;
use crate::source::{self, Source};

/// Observed counts a fidelity property can name, in [`OpObs`] order.
pub const FIDELITY_COUNTERS: [&str; 6] = [
    "remote_tlb_flushes",
    "ipis",
    "ipis_shootdown",
    "ipis_table_sync",
    "mig_restored_young",
    "mig_restored_dirty",
];

/// Observed counts attributed to one op (see [`FIDELITY_COUNTERS`]).
pub type OpObs = [u64; 6];

fn obs_array(o: &Observed) -> OpObs {
    [
        o.remote_tlb_flushes,
        o.ipis,
        o.ipis_shootdown,
        o.ipis_table_sync,
        o.mig_restored_young,
        o.mig_restored_dirty,
    ]
}

/// The reference model's prediction of observed count `i`.
fn predicted(i: usize, r: &PolicyRun) -> u64 {
    let c = &r.counters;
    match i {
        0 => c.tlb_flush_remote,
        1 => c.ipi_sends(),
        2 => c.ipi_sends_shootdown,
        3 => c.ipi_sends_table_sync,
        4 => c.mig_restored_young,
        _ => c.mig_restored_dirty,
    }
}

/// The counter name the litmus `# check` line uses for observed count `i`
/// (`ipis` has none: it is a sum).
fn predicted_counter(i: usize) -> Option<&'static str> {
    match i {
        0 => Some("tlb_flush_remote"),
        2 => Some("ipi_sends_shootdown"),
        3 => Some("ipi_sends_table_sync"),
        4 => Some("mig_restored_young"),
        5 => Some("mig_restored_dirty"),
        _ => None,
    }
}

/// What the minimised op stream must keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Property {
    /// The differ's verdict of the candidate (`diverged_within_contract`,
    /// `contract_breach`).
    Verdict(Verdict),
    /// This counter differs between the reference and the candidate.
    CounterDiffers(String),
    /// The candidate's model reports this invariant.
    Invariant(Invariant),
    /// |reference prediction - capture observation| of this count (index into
    /// [`FIDELITY_COUNTERS`]) is more than `threshold`.
    Fidelity {
        /// Index into [`FIDELITY_COUNTERS`].
        counter: usize,
        /// Allowed difference.
        threshold: u64,
    },
}

impl Property {
    /// Parse `--property`.
    pub fn parse(s: &str) -> Result<Property, String> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("--property {s}: expected KIND=VALUE"))?;
        match k {
            "verdict" => match v.parse::<Verdict>() {
                Ok(v @ (Verdict::DivergedWithinContract | Verdict::ContractBreach)) => {
                    Ok(Property::Verdict(v))
                }
                _ => Err(format!(
                    "--property verdict={v}: expected diverged_within_contract or contract_breach"
                )),
            },
            "counter" => {
                if mmreplay_reference::Counters::default().get(v).is_none() {
                    return Err(format!("--property counter={v}: not a counter name"));
                }
                Ok(Property::CounterDiffers(v.to_string()))
            }
            "invariant" => [
                Invariant::I1,
                Invariant::I2,
                Invariant::I3,
                Invariant::I4,
                Invariant::I5,
                Invariant::I7,
            ]
            .iter()
            .find(|i| i.name() == v)
            .map(|i| Property::Invariant(*i))
            .ok_or_else(|| format!("--property invariant={v}: expected one of I1 I2 I3 I4 I5 I7")),
            "fidelity" => {
                let (c, t) = v.split_once(':').unwrap_or((v, "0"));
                let counter = FIDELITY_COUNTERS
                    .iter()
                    .position(|x| *x == c)
                    .ok_or_else(|| {
                        format!(
                            "--property fidelity={v}: expected COUNTER:T with COUNTER one of {}",
                            FIDELITY_COUNTERS.join(" ")
                        )
                    })?;
                let threshold = t
                    .parse()
                    .map_err(|_| format!("--property fidelity={v}: T must be a number"))?;
                Ok(Property::Fidelity { counter, threshold })
            }
            _ => Err(format!(
                "--property {s}: expected verdict=, counter=, invariant= or fidelity="
            )),
        }
    }

    /// `--property` text of this property.
    pub fn spec(&self) -> String {
        match self {
            Property::Verdict(l) => format!("verdict={l}"),
            Property::CounterDiffers(c) => format!("counter={c}"),
            Property::Invariant(i) => format!("invariant={}", i.name()),
            Property::Fidelity { counter, threshold } => format!(
                "fidelity={}:{threshold}",
                FIDELITY_COUNTERS.get(*counter).copied().unwrap_or("?")
            ),
        }
    }

    /// One sentence for the litmus header.
    pub fn describe(&self, policy: &str) -> String {
        match self {
            Property::Verdict(l) => format!("the verdict of {policy} against the reference is {l}"),
            Property::CounterDiffers(c) => {
                format!("counter {c} differs between {policy} and the reference")
            }
            Property::Invariant(i) => format!("invariant {} fires under {policy}", i.name()),
            Property::Fidelity { counter, threshold } => format!(
                "the reference's {} is off from the capture's by more than {threshold}",
                FIDELITY_COUNTERS.get(*counter).copied().unwrap_or("?")
            ),
        }
    }
}

/// An input lowered into memory.
pub struct Input {
    /// Name as given.
    pub name: String,
    /// Every op, in order.
    pub ops: Vec<Op>,
    /// Observed counts attributed to each op (zeros for a litmus file).
    pub observed: Vec<OpObs>,
    /// The profile the replay uses.
    pub profile: KernelProfile,
}

/// How to lower an input (as `replay` would).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--pid`.
    pub pid: Option<i32>,
    /// `--comm`.
    pub comm: Option<String>,
    /// `--cpus`.
    pub cpus: Option<u32>,
    /// `--strict`.
    pub strict: bool,
    /// `--cpumask clear` (default: trim, as `replay`).
    pub cpumask_clear: bool,
}

/// Errors of `minimize`.
#[derive(Debug, thiserror::Error)]
pub enum MinimizeError {
    /// The input could not be read.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// A litmus input could not be read.
    #[error(transparent)]
    Litmus(#[from] crate::litmus::LitmusError),
    /// Nothing to minimise, or the property cannot be kept.
    #[error("{0}")]
    Property(String),
    /// A file beside the input (the process snapshot) could not be read.
    #[error("{0}")]
    Input(String),
}

/// Lower `path` (`None`: the bundled capture) into memory (a litmus file is read as it is).
pub fn load(path: Option<&str>, o: &LoadOptions) -> Result<Input, MinimizeError> {
    if let Some(path) = path.filter(|p| source::is_litmus(p)) {
        let f = crate::litmus::load(std::path::Path::new(path))?;
        let mut profile = f.profile.clone();
        if let Some(n) = o.cpus {
            profile.nr_cpus = n.clamp(1, 64);
        }
        let ops: Vec<Op> = f.ops.into_iter().map(|l| l.op).collect();
        return Ok(Input {
            name: path.to_string(),
            observed: vec![[0; 6]; ops.len()],
            ops,
            profile,
        });
    }
    let mut src = Source::open_opt(path, o.strict)?;
    let nr_cpus = o
        .cpus
        .or(src.nr_cpus())
        .unwrap_or(crate::session::DEFAULT_CPUS)
        .clamp(1, 64);
    // The capture's kernel, as `replay` models it (mechanics and LRU from its sidecar; the
    // bundled capture's is built in).
    let kernel = match path {
        Some(p) => crate::kernel::KernelChoice::choose(Some(p), None),
        None => serde_json::from_str::<serde_json::Value>(crate::source::BUNDLED_META)
            .ok()
            .as_ref()
            .and_then(crate::kernel::KernelChoice::from_meta)
            .map_or_else(|| crate::kernel::KernelChoice::choose(None, None), Ok),
    }
    .map_err(|e| MinimizeError::Input(e.to_string()))?;
    let mut profile = kernel.profile(nr_cpus);
    if o.cpumask_clear {
        profile.cpumask_mode = CpumaskMode::ClearOnSwitch;
    }
    let mut lowering = Lowering::new(LowerOptions {
        pid: o.pid,
        comm: o.comm.clone(),
        nr_cpus,
        procs: crate::session::procs_for(path).map_err(|e| MinimizeError::Input(e.to_string()))?,
        access: crate::session::access_for(path)
            .map_err(|e| MinimizeError::Input(e.to_string()))?,
    });
    let mut ops = Vec::new();
    let mut observed: Vec<OpObs> = Vec::new();
    let mut pending: OpObs = [0; 6];
    let mut last = obs_array(&lowering.stats().observed);
    let mut note = |lowering: &Lowering, ops: &Vec<Op>, observed: &mut Vec<OpObs>| {
        let now = obs_array(&lowering.stats().observed);
        for (p, (n, l)) in pending.iter_mut().zip(now.iter().zip(last.iter())) {
            *p += n.saturating_sub(*l);
        }
        last = now;
        // Observations go to the next op emitted after them (a syscall's op is emitted at
        // its exit, after the flushes and IPIs it caused).
        while observed.len() < ops.len() {
            observed.push(std::mem::take(&mut pending));
        }
    };
    while let Some(r) = src.next_record()? {
        lowering.push(&r, &mut ops);
        note(&lowering, &ops, &mut observed);
    }
    lowering.finish(&mut ops);
    note(&lowering, &ops, &mut observed);
    // Observations after the last op belong to it.
    if let Some(l) = observed.last_mut() {
        for (a, b) in l.iter_mut().zip(pending.iter()) {
            *a += b;
        }
    }
    Ok(Input {
        name: src.name().to_string(),
        ops,
        observed,
        profile,
    })
}

/// What a finished (or interrupted) minimisation produced.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The input.
    pub trace: String,
    /// The candidate policy.
    pub policy: String,
    /// The property kept (`--property` form).
    pub property: String,
    /// Ops of the input after lowering.
    pub ops_before: usize,
    /// Ops left after dropping those the reference rejects or faults on.
    pub ops_valid: usize,
    /// Ops in the result.
    pub ops_after: usize,
    /// Property evaluations.
    pub tests: u64,
    /// Stopped early (Ctrl-C): the result holds the property but may not be 1-minimal.
    pub interrupted: bool,
    /// Wall time.
    pub seconds: f64,
    /// Indices (into the input's ops) of the kept ops.
    #[serde(skip)]
    pub kept: Vec<usize>,
}

/// Everything one evaluation looks at.
struct Eval {
    valid: bool,
    reference: PolicyRun,
    candidate: PolicyRun,
    verdict: Verdict,
    breach_field: Option<String>,
}

/// The search: the input, how to build the models, the mode.
pub struct Minimizer<'a> {
    input: &'a Input,
    /// The ops being minimised: the input's, with reclaim sizes the search has shrunk.
    ops: Vec<Op>,
    build: &'a dyn Fn() -> Vec<Built>,
    mode: Mode,
    tests: u64,
}

impl<'a> Minimizer<'a> {
    /// `build` returns the reference then the candidate, afresh at every call.
    pub fn new(input: &'a Input, build: &'a dyn Fn() -> Vec<Built>, mode: Mode) -> Self {
        Minimizer {
            input,
            ops: input.ops.clone(),
            build,
            mode,
            tests: 0,
        }
    }

    fn eval(&mut self, idx: &[usize]) -> Option<Eval> {
        self.tests += 1;
        let ops: Vec<Op> = idx
            .iter()
            .filter_map(|&i| self.ops.get(i).cloned())
            .collect();
        let (engines, contracts): (Vec<_>, Vec<_>) = (self.build)().into_iter().unzip();
        let cfg = EngineConfig {
            hash_every: 0,
            parallel: false,
            lockstep: self.mode == Mode::Lockstep,
            ..EngineConfig::default()
        };
        let run = engine::run_ops(&ops, LowerStats::default(), engines, &cfg);
        let mut it = run.policies.into_iter();
        let (reference, candidate) = (it.next()?, it.next()?);
        let contract = contracts.into_iter().nth(1).flatten();
        let valid = [&reference, &candidate]
            .iter()
            .all(|p| p.model_errors.is_empty() && !p.outcomes.keys().any(|k| k.ends_with("_segv")));
        let v = crate::differ::compare(contract.as_ref(), &reference, &candidate, None);
        let breach_field = v.breaches.first().map(|b| match b.subject {
            // `# expect P: breach FIELD` takes one word; a relation matches by prefix.
            Subject::Relation => b
                .field
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            _ => b.field.clone(),
        });
        Some(Eval {
            valid,
            verdict: v.verdict,
            breach_field,
            reference,
            candidate,
        })
    }

    fn holds(&self, p: &Property, e: &Eval, idx: &[usize]) -> bool {
        match p {
            Property::Verdict(l) => e.verdict == *l,
            Property::CounterDiffers(c) => {
                e.reference.counters.get(c) != e.candidate.counters.get(c)
            }
            Property::Invariant(i) => e.candidate.violations.iter().any(|v| v.invariant == *i),
            Property::Fidelity { counter, threshold } => {
                let obs: u64 = idx
                    .iter()
                    .filter_map(|&i| self.input.observed.get(i))
                    .filter_map(|o| o.get(*counter))
                    .sum();
                predicted(*counter, &e.reference).abs_diff(obs) > *threshold
            }
        }
    }

    fn test(&mut self, p: &Property, idx: &[usize]) -> bool {
        match self.eval(idx) {
            Some(e) => e.valid && self.holds(p, &e, idx),
            None => false,
        }
    }

    /// Ops of the input the reference alone rejects or faults on (replayed one by one).
    fn unusable(&self) -> Vec<bool> {
        let mut out = vec![false; self.ops.len()];
        let Some((mut r, _)) = (self.build)().into_iter().next() else {
            return out;
        };
        for (i, op) in self.ops.iter().enumerate() {
            let bad = !matches!(
                r.apply(op),
                Ok(o) if o != mmreplay_reference::op::OpOutcome::Segv
            );
            if let Some(b) = out.get_mut(i) {
                *b = bad;
            }
        }
        out
    }

    /// Run the search. `property: None` takes the candidate's verdict on the input (or its
    /// first invariant). `progress(phase, size, tests)` is called after every evaluation;
    /// `stop()` true ends the search with the best subset so far.
    pub fn run(
        &mut self,
        policy: &str,
        property: Option<Property>,
        progress: &mut dyn FnMut(&str, usize, u64),
        stop: &dyn Fn() -> bool,
    ) -> Result<(Outcome, Property), MinimizeError> {
        let started = std::time::Instant::now();
        let n = self.ops.len();
        let bad = self.unusable();
        let base: Vec<usize> = (0..n)
            .filter(|&i| !bad.get(i).copied().unwrap_or(true))
            .collect();
        let e = self.eval(&base).ok_or_else(|| {
            MinimizeError::Property("no reference and candidate to compare".into())
        })?;
        let property = match property {
            Some(p) => p,
            None => match e.verdict {
                Verdict::DivergedWithinContract | Verdict::ContractBreach => {
                    Property::Verdict(e.verdict)
                }
                _ => match e.candidate.violations.first() {
                    Some(v) => Property::Invariant(v.invariant),
                    None => {
                        return Err(MinimizeError::Property(format!(
                            "{}: {policy} is `{}` against the reference on this input and trips no invariant: nothing to minimise (give --property)",
                            self.input.name, e.verdict
                        )))
                    }
                },
            },
        };
        if !e.valid {
            return Err(MinimizeError::Property(format!(
                "{}: the models still reject ops after dropping the {} the reference rejects: cannot keep the stream well formed",
                self.input.name,
                n - base.len()
            )));
        }
        if !self.holds(&property, &e, &base) {
            return Err(MinimizeError::Property(format!(
                "{}: the property `{}` does not hold on the input ({} ops usable of {n}; verdict {})",
                self.input.name,
                property.spec(),
                base.len(),
                e.verdict
            )));
        }
        let mut cur = base.clone();
        let mut interrupted = false;
        // Processes, then VMAs, then the ops themselves.
        for level in 0..3 {
            let units: Vec<Vec<usize>> = match level {
                0 => self.process_units(&cur),
                1 => self.vma_units(&cur),
                _ => cur.iter().map(|&i| vec![i]).collect(),
            };
            let phase = ["processes", "VMAs", "ops"][level];
            if units.len() < 2 && level < 2 {
                continue;
            }
            match self.ddmin(
                phase,
                &property,
                &mut cur,
                units,
                level == 2,
                progress,
                stop,
            ) {
                Ok(()) => {}
                Err(()) => {
                    interrupted = true;
                    break;
                }
            }
        }
        // Then smaller reclaim requests: a reclaim that must free fewer pages needs fewer
        // pages faulted in before it, so after each shrink the single-op pass runs again
        // (the MGLRU look-around divergence of k61-reclaim-mglru kept 70 faults behind two
        // reclaims of 68 and 74 pages). Not for a fidelity property: its observations belong
        // to the ops as captured.
        let shrinkable = !matches!(property, Property::Fidelity { .. });
        let mut rounds = 0;
        while shrinkable && !interrupted && rounds < 4 {
            rounds += 1;
            // A shrink is kept only when it lets ops go: otherwise the result stays the
            // input's own ops.
            let (saved, before) = (self.ops.clone(), cur.len());
            match self.shrink_reclaims(&property, &cur, progress, stop) {
                Ok(0) => break,
                Ok(_) => {}
                Err(()) => {
                    self.ops = saved;
                    interrupted = true;
                    break;
                }
            }
            let units = cur.iter().map(|&i| vec![i]).collect();
            if self
                .ddmin("ops", &property, &mut cur, units, true, progress, stop)
                .is_err()
            {
                interrupted = true;
            }
            if cur.len() == before && !interrupted {
                self.ops = saved;
                break;
            }
        }
        let out = Outcome {
            trace: self.input.name.clone(),
            policy: policy.to_string(),
            property: property.spec(),
            ops_before: n,
            ops_valid: base.len(),
            ops_after: cur.len(),
            tests: self.tests,
            interrupted,
            seconds: started.elapsed().as_secs_f64(),
            kept: cur,
        };
        Ok((out, property))
    }

    /// Remove chunks of `units` (halving the chunk size down to one unit) while the property
    /// holds; `repeat`: at one unit, pass again until nothing goes (1-minimal). `Err`: stopped.
    #[allow(clippy::too_many_arguments)]
    fn ddmin(
        &mut self,
        phase: &str,
        p: &Property,
        cur: &mut Vec<usize>,
        mut units: Vec<Vec<usize>>,
        repeat: bool,
        progress: &mut dyn FnMut(&str, usize, u64),
        stop: &dyn Fn() -> bool,
    ) -> Result<(), ()> {
        let mut k = (units.len() / 2).max(1);
        loop {
            let mut changed = false;
            let mut i = 0;
            while i < units.len() {
                if stop() {
                    return Err(());
                }
                let end = (i + k).min(units.len());
                let drop: std::collections::BTreeSet<usize> = units
                    .get(i..end)
                    .unwrap_or(&[])
                    .iter()
                    .flatten()
                    .copied()
                    .collect();
                let trial: Vec<usize> = cur.iter().copied().filter(|x| !drop.contains(x)).collect();
                if trial.len() < cur.len() && self.test(p, &trial) {
                    *cur = trial;
                    units.drain(i..end);
                    changed = true;
                } else {
                    i += k;
                }
                progress(phase, cur.len(), self.tests);
            }
            if k > 1 {
                k /= 2;
            } else if !(repeat && changed) {
                return Ok(());
            }
        }
    }

    /// The ops of a result, as the search left them (reclaim sizes possibly shrunk).
    pub fn kept_ops(&self, out: &Outcome) -> Vec<Op> {
        out.kept
            .iter()
            .filter_map(|&i| self.ops.get(i).cloned())
            .collect()
    }

    /// For each kept reclaim op, the smallest `nr_to_reclaim` (bisected between 1 and its
    /// current value) that keeps the property. Returns how many ops shrank. `Err`: stopped.
    fn shrink_reclaims(
        &mut self,
        p: &Property,
        cur: &[usize],
        progress: &mut dyn FnMut(&str, usize, u64),
        stop: &dyn Fn() -> bool,
    ) -> Result<usize, ()> {
        fn nr(op: &Op) -> Option<u32> {
            match op {
                Op::Reclaim { nr_to_reclaim, .. } | Op::ReclaimMemcg { nr_to_reclaim, .. } => {
                    Some(*nr_to_reclaim)
                }
                _ => None,
            }
        }
        fn set(op: &mut Op, v: u32) {
            if let Op::Reclaim { nr_to_reclaim, .. } | Op::ReclaimMemcg { nr_to_reclaim, .. } = op {
                *nr_to_reclaim = v;
            }
        }
        let mut shrunk = 0;
        for &i in cur {
            let Some(orig) = self.ops.get(i).and_then(nr) else {
                continue;
            };
            // Invariant: `hi` keeps the property; `lo` does not (or is 0).
            let (mut lo, mut hi) = (0u32, orig);
            while hi - lo > 1 {
                if stop() {
                    return Err(());
                }
                let mid = if lo == 0 { 1 } else { lo + (hi - lo) / 2 };
                if let Some(op) = self.ops.get_mut(i) {
                    set(op, mid);
                }
                if self.test(p, cur) {
                    hi = mid;
                } else {
                    lo = mid;
                }
                progress("reclaim sizes", cur.len(), self.tests);
            }
            if let Some(op) = self.ops.get_mut(i) {
                set(op, hi);
            }
            shrunk += usize::from(hi < orig);
        }
        Ok(shrunk)
    }

    /// One unit per mm: every op of that mm (its exec or the fork that made it, its switches,
    /// its holds' releases). Ops of no mm (reclaim, clock, migrate by pfn) are in none.
    fn process_units(&self, cur: &[usize]) -> Vec<Vec<usize>> {
        let mut holds: BTreeMap<u64, u32> = BTreeMap::new();
        let mut by_mm: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &i in cur {
            let Some(op) = self.ops.get(i) else {
                continue;
            };
            let mm = match op {
                Op::Pin { mm, hold, .. } | Op::GetRef { mm, hold, .. } => {
                    holds.insert(hold.0, mm.0);
                    Some(mm.0)
                }
                Op::Unpin { hold } | Op::PutRef { hold, .. } => holds.get(&hold.0).copied(),
                Op::Switch { next, .. } => next.map(|m| m.0),
                other => other.mm().map(|m| m.0),
            };
            if let Some(m) = mm {
                by_mm.entry(m).or_default().push(i);
            }
        }
        by_mm.into_values().collect()
    }

    /// One unit per mmap: the mmap and every later op addressed inside its range, in its mm
    /// and in mms forked from it after it (a forked child inherits the VMA).
    fn vma_units(&self, cur: &[usize]) -> Vec<Vec<usize>> {
        // Per mm: start -> (end, unit).
        let mut maps: BTreeMap<u32, BTreeMap<u64, (u64, usize)>> = BTreeMap::new();
        let mut units: Vec<Vec<usize>> = Vec::new();
        let find = |maps: &BTreeMap<u32, BTreeMap<u64, (u64, usize)>>, mm: u32, va: u64| {
            maps.get(&mm).and_then(|m| {
                m.range(..=va)
                    .next_back()
                    .filter(|(_, (end, _))| va < *end)
                    .map(|(_, (_, u))| *u)
            })
        };
        for &i in cur {
            let Some(op) = self.ops.get(i) else {
                continue;
            };
            let unit = match op {
                Op::Mmap { mm, addr, len, .. } => {
                    let u = units.len();
                    units.push(Vec::new());
                    let m = maps.entry(mm.0).or_default();
                    let end = addr.saturating_add(*len);
                    // A new mapping replaces what it overlaps (MAP_FIXED): keep lookups sane.
                    let over: Vec<u64> = m
                        .range(..end)
                        .filter(|(s, (e, _))| **s < end && *e > *addr)
                        .map(|(s, _)| *s)
                        .collect();
                    for s in over {
                        m.remove(&s);
                    }
                    m.insert(*addr, (end, u));
                    Some(u)
                }
                Op::Fork { parent, child, .. } => {
                    let inherited = maps.get(&parent.0).cloned().unwrap_or_default();
                    maps.insert(child.0, inherited);
                    None
                }
                Op::Exec { new, .. } => {
                    maps.remove(&new.0);
                    None
                }
                Op::Fault { mm, va, .. }
                | Op::Access { mm, va, .. }
                | Op::Pin { mm, va, .. }
                | Op::GetRef { mm, va, .. }
                | Op::Migrate {
                    target: MigrateTarget::Va { mm, va },
                    ..
                } => find(&maps, mm.0, *va),
                Op::Munmap { mm, addr, .. }
                | Op::Mprotect { mm, addr, .. }
                | Op::Madvise { mm, addr, .. } => find(&maps, mm.0, *addr),
                Op::Mremap { mm, old_addr, .. } => find(&maps, mm.0, *old_addr),
                _ => None,
            };
            if let Some(u) = unit.and_then(|u| units.get_mut(u)) {
                u.push(i);
            }
        }
        units.retain(|u| !u.is_empty());
        units
    }
}

/// The minimised scenario as a litmus file: a header naming the input, the policy and the
/// property kept, the profile and mode, expectations that `mmreplay check` verifies, then the
/// ops. Deterministic (no times, no paths beyond the input name as given).
pub fn to_litmus(
    m: &mut Minimizer<'_>,
    out: &Outcome,
    property: &Property,
    policy: &str,
) -> String {
    let input = m.input;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# MINIMIZED by `mmreplay minimize` (not hand-written, not a capture): reduced from"
    );
    let _ = writeln!(
        s,
        "# {} ({} ops after lowering, {} usable) to {} ops.",
        input.name, out.ops_before, out.ops_valid, out.ops_after
    );
    let _ = writeln!(
        s,
        "# Property kept (--property {}): {}.",
        property.spec(),
        property.describe(policy)
    );
    if out.interrupted {
        let _ = writeln!(
            s,
            "# Interrupted: the property holds, but single ops may still be removable."
        );
    }
    let _ = writeln!(s, "{}", crate::litmus::format_profile(&input.profile));
    let _ = writeln!(
        s,
        "# mode: {}",
        match m.mode {
            Mode::Lockstep => "lockstep",
            Mode::FreeRunning => "free-running",
        }
    );
    if let Some(e) = m.eval(&out.kept) {
        if e.reference.violations.is_empty() {
            let _ = writeln!(s, "# expect reference: clean");
        }
        match property {
            Property::Verdict(Verdict::ContractBreach) => {
                if let Some(f) = &e.breach_field {
                    let _ = writeln!(s, "# expect {policy}: {} {f}", Verdict::ContractBreach);
                }
            }
            Property::Verdict(v) => {
                let _ = writeln!(s, "# expect {policy}: {v}");
            }
            Property::CounterDiffers(c) => {
                let _ = writeln!(s, "# check {policy}: {c} != reference");
            }
            Property::Invariant(i) => {
                if let Some(v) = e.candidate.violations.iter().find(|v| v.invariant == *i) {
                    let _ = writeln!(
                        s,
                        "# expect {policy}: violation {} step {}",
                        i.name(),
                        v.step
                    );
                }
            }
            Property::Fidelity { counter, .. } => {
                let obs: u64 = out
                    .kept
                    .iter()
                    .filter_map(|&i| input.observed.get(i))
                    .filter_map(|o| o.get(*counter))
                    .sum();
                let pred = predicted(*counter, &e.reference);
                let _ = writeln!(
                    s,
                    "# The capture logged {obs} {} on these ops; the reference predicts {pred}.",
                    FIDELITY_COUNTERS.get(*counter).copied().unwrap_or("?")
                );
                if let Some(c) = predicted_counter(*counter) {
                    let _ = writeln!(s, "# check reference: {c} == {pred}");
                }
            }
        }
    }
    for &i in &out.kept {
        if let Some(op) = m.ops.get(i) {
            let _ = writeln!(s, "{}", crate::litmus::format_op(op));
        }
    }
    s
}
