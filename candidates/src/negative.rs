//! Negative controls: deliberately broken policies that the harness MUST catch (ARCHITECTURE.md
//! §6). Test-only (`cfg(test)` or the `negative-controls` feature), never offered through the
//! registry. Each names the bug it reintroduces and what must fire: an invariant of
//! mm-semantics D, or a contract breach. It must never be reachable from user input.

use mmreplay_reference::policy::{
    AgeSource, Hook, LazyfreeCheck, MigAd, MigEntryCtx, MigRestoreCtx, Policy, UnshareCtx,
    YoungPteCtx,
};

use crate::lookaround::LookAround;

/// hugetlb unshare with no table sync at all: the code before 1013af4f585f ("mm/hugetlb: fix
/// huge_pmd_unshare() vs GUP-fast race"). Must trip I3 when a table becomes exclusive.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSyncUnshare;

impl Policy for NoSyncUnshare {
    fn hooks(&self) -> &[Hook] {
        &[Hook::PmdUnshare, Hook::UnshareFlush]
    }

    fn name(&self) -> &'static str {
        "neg-no-sync-unshare"
    }
    fn pmd_unshare(&mut self, ctx: &mut UnshareCtx<'_>) {
        let _ = ctx;
    }
    fn unshare_flush(&mut self, ctx: &mut UnshareCtx<'_>) {
        let _ = ctx;
    }
}

/// Free unmapped pages before the TLB flush that covers them: the 2014 zap/dirty-bit race
/// (mm-semantics D.I1, S3). Must trip I1.
#[derive(Clone, Copy, Debug, Default)]
pub struct FreeBeforeFlush;

impl Policy for FreeBeforeFlush {
    fn hooks(&self) -> &[Hook] {
        &[Hook::FreePagesBeforeFlush]
    }

    fn name(&self) -> &'static str {
        "neg-free-before-flush"
    }
    fn free_pages_before_flush(&self) -> bool {
        true
    }
}

/// MADV_FREE discard that ignores extra references (the bug 6c8e2a256915 fixed: an O_DIRECT
/// read into a lazyfree page is lost). Must trip I5.
#[derive(Clone, Copy, Debug, Default)]
pub struct LazyfreeIgnoreRefs;

impl Policy for LazyfreeIgnoreRefs {
    fn hooks(&self) -> &[Hook] {
        &[Hook::LazyfreeMayDiscard]
    }

    fn name(&self) -> &'static str {
        "neg-lazyfree-ignore-refs"
    }
    fn lazyfree_may_discard(&mut self, c: &LazyfreeCheck) -> bool {
        !c.dirty
    }
}

/// A/D restore that marks every restored PTE dirty, even on a clean folio (`pte_mkdirty`
/// without the `folio_test_dirty` check). Must breach the A/D contract (`pte.dirty`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DirtyOnCleanRestore;

impl Policy for DirtyOnCleanRestore {
    fn hooks(&self) -> &[Hook] {
        &[Hook::MigrationEntryAd, Hook::MigrationRestoreAd]
    }

    fn name(&self) -> &'static str {
        "neg-dirty-on-clean-restore"
    }
    fn migration_entry_ad(&mut self, ctx: &MigEntryCtx) -> MigAd {
        MigAd {
            young: ctx.young,
            dirty: ctx.dirty,
        }
    }
    fn migration_restore_ad(&mut self, ctx: &MigRestoreCtx) -> MigAd {
        MigAd {
            young: ctx.entry_young,
            dirty: true,
        }
    }
}

/// Look-around that promotes young neighbours without clearing their A bits (so the next
/// scan counts the same access again). Must breach the look-around contract
/// (`gen_promote_lookaround <= a_cleared_lookaround`).
#[derive(Clone, Copy, Debug)]
pub struct PromoteWithoutClear(pub LookAround);

impl Policy for PromoteWithoutClear {
    fn hooks(&self) -> &[Hook] {
        &[Hook::RmapYoungPte, Hook::MglruIsolatedReferenced]
    }

    fn name(&self) -> &'static str {
        "neg-promote-without-clear"
    }
    fn rmap_young_pte(&mut self, ctx: &mut YoungPteCtx<'_>) -> bool {
        let addr = ctx.addr();
        let (ws, we) = ctx.window();
        ctx.note_lookaround_call();
        let (s, e) = self.0.scan_range(addr, ws, we);
        let mut va = s;
        while va < e {
            if va != addr && ctx.scan(va) {
                ctx.promote(va);
            }
            va += 4096;
        }
        ctx.test_and_clear_young(addr, AgeSource::RmapPte)
    }
    fn mglru_isolated_referenced(&self) -> bool {
        self.0.mglru_isolated_referenced()
    }
}
