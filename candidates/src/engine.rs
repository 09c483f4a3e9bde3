//! `NamedEngine`: a model behind `mmreplay_reference::Engine` (the object-safe wrapper the
//! reference crate provides) plus the display name of its registry spec
//! (`lookaround:window=32`), which a `&'static str` policy name cannot carry. Derefs to the
//! engine, so the replay engine calls `e.apply(&op)` with one dynamic call per op. It must
//! never add semantics.

use std::ops::{Deref, DerefMut};

use mmreplay_reference::Engine;

/// A named, boxed engine that can move to a worker thread.
pub struct NamedEngine {
    name: String,
    engine: Box<dyn Engine + Send>,
}

impl NamedEngine {
    /// Wrap `engine` under `name`.
    pub fn new(name: impl Into<String>, engine: Box<dyn Engine + Send>) -> NamedEngine {
        NamedEngine {
            name: name.into(),
            engine,
        }
    }

    /// Display name (the canonical registry spec).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The boxed engine.
    pub fn into_inner(self) -> Box<dyn Engine + Send> {
        self.engine
    }
}

impl Deref for NamedEngine {
    type Target = dyn Engine + Send;
    fn deref(&self) -> &Self::Target {
        &*self.engine
    }
}

impl DerefMut for NamedEngine {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.engine
    }
}

impl std::fmt::Debug for NamedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedEngine")
            .field("name", &self.name)
            .field("policy", &self.engine.policy_name())
            .field("steps", &self.engine.steps())
            .finish()
    }
}
