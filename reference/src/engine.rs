//! `Engine`: an object-safe view of `Model<P>` for any policy, so the replay engine can run N
//! models with different policies side by side (`Box<dyn Engine + Send>`): one dynamic call per
//! op, the policy statically dispatched inside. It must never add semantics of its own.

use crate::counters::Counters;
use crate::invariant::Violation;
use crate::model::{Model, ModelError};
use crate::op::{Op, OpOutcome};
use crate::policy::Policy;
use crate::snapshot::Snapshot;

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
    /// `Model::finish` (full invariant scan).
    fn finish(&mut self);
    /// `Model::steps`.
    fn steps(&self) -> u64;
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
    fn finish(&mut self) {
        Model::finish(self)
    }
    fn steps(&self) -> u64 {
        Model::steps(self)
    }
}
