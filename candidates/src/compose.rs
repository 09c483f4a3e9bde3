//! Composition of policies: one `Policy` made of several, each decision point delegated to
//! the one part that declares it (`Policy::hooks`), the reference behaviour for the rest. The
//! registry's `all` is the composition of every candidate, so a new candidate joins it through
//! its registry line alone, with no delegation code written per combination. It must never add
//! behaviour of its own, and never let two parts claim the same decision point (there is no
//! single meaning for "both decide": that is refused when the composition is built).

use mmreplay_reference::policy::{
    Hook, LazyfreeCheck, MigAd, MigEntryCtx, MigRestoreCtx, Policy, Reference, UnshareCtx,
    YoungPteCtx,
};

/// A boxed part of a composition.
pub type Part = Box<dyn Policy + Send>;

/// Several policies as one.
pub struct Compose {
    name: &'static str,
    parts: Vec<Part>,
    /// `owner[h]`: index into `parts` of the part that decides hook `h`.
    owner: [Option<usize>; Hook::ALL.len()],
    hooks: Vec<Hook>,
    conflicts: Vec<ComposeError>,
}

/// Two parts declared the same decision point.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("policies `{first}` and `{second}` both change decision point {hook:?}: they cannot be composed")]
pub struct ComposeError {
    /// The decision point.
    pub hook: Hook,
    /// The part that claimed it first.
    pub first: &'static str,
    /// The part that claimed it again.
    pub second: &'static str,
}

/// Index of `h` in `Hook::ALL` (the variants are declared in that order).
fn slot(h: Hook) -> usize {
    h as usize
}

impl Compose {
    /// Compose `parts` under `name`. A hook claimed by two parts goes to the first, and the
    /// clash is kept in [`Compose::conflicts`] (the registry refuses such a composite).
    pub fn new(name: &'static str, parts: Vec<Part>) -> Compose {
        let mut owner = [None; Hook::ALL.len()];
        let mut conflicts = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            for &h in p.hooks() {
                match owner[slot(h)] {
                    Some(j) => conflicts.push(ComposeError {
                        hook: h,
                        first: parts.get(j).map_or("?", |f: &Part| f.name()),
                        second: p.name(),
                    }),
                    None => owner[slot(h)] = Some(i),
                }
            }
        }
        // The composition's own hook list, so that it can be composed further.
        let hooks = Hook::ALL
            .into_iter()
            .filter(|h| owner[slot(*h)].is_some())
            .collect();
        Compose {
            name,
            parts,
            owner,
            hooks,
            conflicts,
        }
    }

    /// `new`, refusing any hook claimed twice.
    pub fn try_new(name: &'static str, parts: Vec<Part>) -> Result<Compose, ComposeError> {
        let c = Compose::new(name, parts);
        match c.conflicts.first() {
            Some(e) => Err(e.clone()),
            None => Ok(c),
        }
    }

    /// Hooks two parts claimed (empty for a valid composition).
    pub fn conflicts(&self) -> &[ComposeError] {
        &self.conflicts
    }

    /// The names of the parts, in order.
    pub fn part_names(&self) -> Vec<&'static str> {
        self.parts.iter().map(|p| p.name()).collect()
    }

    fn part(&mut self, h: Hook) -> Option<&mut Part> {
        let i = self.owner[slot(h)]?;
        self.parts.get_mut(i)
    }

    fn part_ref(&self, h: Hook) -> Option<&Part> {
        let i = self.owner[slot(h)]?;
        self.parts.get(i)
    }
}

impl Policy for Compose {
    fn name(&self) -> &'static str {
        self.name
    }
    fn hooks(&self) -> &[Hook] {
        &self.hooks
    }
    fn rmap_young_pte(&mut self, ctx: &mut YoungPteCtx<'_>) -> bool {
        match self.part(Hook::RmapYoungPte) {
            Some(p) => p.rmap_young_pte(ctx),
            None => Reference.rmap_young_pte(ctx),
        }
    }
    fn migration_entry_ad(&mut self, ctx: &MigEntryCtx) -> MigAd {
        match self.part(Hook::MigrationEntryAd) {
            Some(p) => p.migration_entry_ad(ctx),
            None => Reference.migration_entry_ad(ctx),
        }
    }
    fn migration_restore_ad(&mut self, ctx: &MigRestoreCtx) -> MigAd {
        match self.part(Hook::MigrationRestoreAd) {
            Some(p) => p.migration_restore_ad(ctx),
            None => Reference.migration_restore_ad(ctx),
        }
    }
    fn pmd_unshare(&mut self, ctx: &mut UnshareCtx<'_>) {
        match self.part(Hook::PmdUnshare) {
            Some(p) => p.pmd_unshare(ctx),
            None => Reference.pmd_unshare(ctx),
        }
    }
    fn unshare_flush(&mut self, ctx: &mut UnshareCtx<'_>) {
        match self.part(Hook::UnshareFlush) {
            Some(p) => p.unshare_flush(ctx),
            None => Reference.unshare_flush(ctx),
        }
    }
    fn free_pages_before_flush(&self) -> bool {
        match self.part_ref(Hook::FreePagesBeforeFlush) {
            Some(p) => p.free_pages_before_flush(),
            None => Reference.free_pages_before_flush(),
        }
    }
    fn lazyfree_may_discard(&mut self, c: &LazyfreeCheck) -> bool {
        match self.part(Hook::LazyfreeMayDiscard) {
            Some(p) => p.lazyfree_may_discard(c),
            None => Reference.lazyfree_may_discard(c),
        }
    }
    fn mglru_isolated_referenced(&self) -> bool {
        match self.part_ref(Hook::MglruIsolatedReferenced) {
            Some(p) => p.mglru_isolated_referenced(),
            None => Reference.mglru_isolated_referenced(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ad_preserve::AdPreserve;
    use crate::batched_unshare::BatchedUnshare;
    use crate::lookaround::LookAround;
    use crate::negative::PromoteWithoutClear;
    use mmreplay_reference::profile::Base;

    #[test]
    fn hooks_go_to_their_owner_and_clashes_are_refused() {
        let c = Compose::try_new(
            "x",
            vec![
                Box::new(LookAround::new(Base::Knew)),
                Box::new(AdPreserve),
                Box::new(BatchedUnshare),
            ],
        )
        .expect("disjoint hooks compose");
        assert_eq!(
            c.part_names(),
            ["lookaround", "ad-preserve", "batched-unshare"]
        );
        assert_eq!(c.hooks().len(), 6);
        assert!(!c.hooks().contains(&Hook::FreePagesBeforeFlush));
        // LookAround::new(K61) answers true here, the reference false: the owner decides.
        let k61 =
            Compose::try_new("y", vec![Box::new(LookAround::new(Base::K61))]).expect("one part");
        assert!(k61.mglru_isolated_referenced());
        let none = Compose::try_new("z", vec![Box::new(AdPreserve)]).expect("one part");
        assert!(!none.mglru_isolated_referenced());
        let clash = Compose::try_new(
            "bad",
            vec![
                Box::new(LookAround::new(Base::Knew)),
                Box::new(PromoteWithoutClear(LookAround::new(Base::Knew))),
            ],
        );
        assert!(matches!(
            clash,
            Err(ComposeError {
                hook: Hook::RmapYoungPte,
                ..
            })
        ));
    }
}
