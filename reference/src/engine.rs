//! `Engine`: an object-safe view of `Model<P>` for any policy, so the replay engine can run N
//! models with different policies side by side (`Box<dyn Engine + Send>`): one dynamic call per
//! op, the policy statically dispatched inside. It must never add semantics of its own.
//!
//! Lockstep support (mm-semantics C.0): the reference records what each `Reclaim` op did as a
//! [`ReclaimScript`] (`apply_recording`) and a candidate replays it (`apply_imposed`), so both
//! evict the same folios. The types live here because they are the interface between models;
//! what they mean is `model/reclaim.rs`'s business.

use crate::counters::Counters;
use crate::invariant::Violation;
use crate::model::{Model, ModelError};
use crate::op::{FolioId, Op, OpOutcome};
use crate::policy::Policy;
use crate::snapshot::Snapshot;

/// One folio of an eviction batch, as the reference isolated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptFolio {
    /// Stable identity (the same folio in every lockstep model).
    pub id: FolioId,
    /// Slot in the recording model: a hint only, checked against `id` before use.
    pub slot_hint: u32,
    /// Whether the reference decided to reclaim it (`shrink_folio_list` went past the
    /// reference check to unmap and free it), whether or not that then succeeded.
    pub reclaim: bool,
    /// Whether the reference freed it (a reclaim victim).
    pub evicted: bool,
    /// Classic LRU: the reference's `folio_check_references` said `FOLIOREF_RECLAIM_CLEAN`
    /// (reclaim only if clean; a dirty folio is kept, not written).
    pub clean_only: bool,
}

/// One round of `Model::op_reclaim`'s loop (`mm/vmscan.c:lru_gen_shrink_lruvec` →
/// `try_to_shrink_lruvec`), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReclaimStep {
    /// `try_to_inc_max_seq`: aging (page-table walk if the profile enables it), a new gen.
    Age,
    /// A last round that found no folio on any LRU and gave up (it only retired empty gens).
    GiveUp,
    /// `evict_folios`: the folios `isolate_folios` took from the oldest gen, in isolation
    /// order, and which of them `shrink_folio_list` freed.
    Evict(Vec<ScriptFolio>),
    /// Classic LRU `shrink_active_list`: the folios isolated from an active list, in order;
    /// `reclaim` says the reference deactivated it (else it rotated back to the active list).
    Deactivate(Vec<ScriptFolio>),
}

/// What one `Reclaim` op did in the reference: its rounds in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReclaimScript {
    /// Rounds in order.
    pub steps: Vec<ReclaimStep>,
}

impl ReclaimScript {
    /// The victims (folios the reference freed), in eviction order.
    pub fn victims(&self) -> impl Iterator<Item = FolioId> + '_ {
        self.steps
            .iter()
            .flat_map(|s| match s {
                ReclaimStep::Age | ReclaimStep::GiveUp | ReclaimStep::Deactivate(_) => [].iter(),
                ReclaimStep::Evict(b) => b.iter(),
            })
            .filter(|f| f.evicted)
            .map(|f| f.id)
    }
}

/// How a candidate followed an imposed [`ReclaimScript`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImposeResult {
    /// Victims imposed (folios the reference freed).
    pub imposed: u64,
    /// Imposed victims the candidate could not free (kept instead).
    pub skipped: u64,
    /// Folios the candidate freed although the reference's attempt to free them failed
    /// (e.g. a lazyfree discard the reference aborted).
    pub extra: u64,
    /// Why the first skip happened (`folio 17: not on an LRU`), if any.
    pub first_skip: Option<String>,
}

/// Object-safe model interface.
pub trait Engine {
    /// Policy name.
    fn policy_name(&self) -> &'static str;
    /// `Model::apply`.
    fn apply(&mut self, op: &Op) -> Result<OpOutcome, ModelError>;
    /// `Model::counters`.
    fn counters(&self) -> &Counters;
    /// `Model::violations`.
    fn violations(&self) -> &[Violation];
    /// `Model::violation_count`.
    fn violation_count(&self) -> u64;
    /// `Model::snapshot`.
    fn snapshot(&self) -> Snapshot;
    /// `Model::state_hash`.
    fn state_hash(&self) -> u64;
    /// `Model::progress_hash`: cheap, for comparisons within one run.
    fn progress_hash(&self) -> u64;
    /// `Model::checkpoint_hash`: the same value, incrementally (what checkpoints use).
    fn checkpoint_hash(&mut self) -> u64;
    /// `Model::finish` (full invariant scan).
    fn finish(&mut self);
    /// `Model::steps`.
    fn steps(&self) -> u64;
    /// `Model::apply_recording`: apply `op`; for a `Reclaim` op also return what it did.
    fn apply_recording(
        &mut self,
        op: &Op,
    ) -> (Result<OpOutcome, ModelError>, Option<ReclaimScript>);
    /// `Model::apply_imposed`: apply `op`; a `Reclaim` op follows `script` instead of
    /// choosing its own victims.
    fn apply_imposed(
        &mut self,
        op: &Op,
        script: &ReclaimScript,
    ) -> (Result<OpOutcome, ModelError>, ImposeResult);
}

impl<P: Policy> Engine for Model<P> {
    fn policy_name(&self) -> &'static str {
        self.policy().name()
    }
    fn apply(&mut self, op: &Op) -> Result<OpOutcome, ModelError> {
        Model::apply(self, op)
    }
    fn counters(&self) -> &Counters {
        Model::counters(self)
    }
    fn violations(&self) -> &[Violation] {
        Model::violations(self)
    }
    fn violation_count(&self) -> u64 {
        Model::violation_count(self)
    }
    fn snapshot(&self) -> Snapshot {
        Model::snapshot(self)
    }
    fn state_hash(&self) -> u64 {
        Model::state_hash(self)
    }
    fn progress_hash(&self) -> u64 {
        Model::progress_hash(self)
    }
    fn checkpoint_hash(&mut self) -> u64 {
        Model::checkpoint_hash(self)
    }
    fn finish(&mut self) {
        Model::finish(self)
    }
    fn steps(&self) -> u64 {
        Model::steps(self)
    }
    fn apply_recording(
        &mut self,
        op: &Op,
    ) -> (Result<OpOutcome, ModelError>, Option<ReclaimScript>) {
        Model::apply_recording(self, op)
    }
    fn apply_imposed(
        &mut self,
        op: &Op,
        script: &ReclaimScript,
    ) -> (Result<OpOutcome, ModelError>, ImposeResult) {
        Model::apply_imposed(self, op, script)
    }
}
