//! Candidate 3: batched hugetlb unshare IPIs (8ce720d5bd91, mm-semantics C.3, B.10), on top of
//! the 1013af4f585f fix the reference (V1) follows. `mm/hugetlb.c:huge_pmd_unshare` no longer
//! calls `tlb_remove_table_sync_one()` per table; it records `tlb->unshared_tables` and, when
//! `pt_share_count` reached 0, `tlb->fully_unshared_tables` (`tlb_unshare_pmd_ptdesc`,
//! `include/asm-generic/tlb.h`). `huge_pmd_unshare_flush` then sends ONE table-sync broadcast
//! per flush if any table became exclusive, and none while other sharers remain: the last
//! sharer always syncs ("The shared PMD tables cannot become exclusive (fully unshared) before
//! an IPI will be broadcasted by the last sharer").
//!
//! It must never skip the sync when a table became exclusive in the batch (that is the
//! pre-1013af4f585f bug, I3), and never leave `fully_unshared_tables` set past the flush.

use mmreplay_reference::policy::{Hook, Policy, UnshareCtx};

use crate::contract::{relations, rules, Contract, Mode, Rule};

/// Batched unshare (V2) as a `Policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchedUnshare;

impl Policy for BatchedUnshare {
    fn hooks(&self) -> &[Hook] {
        &[Hook::PmdUnshare, Hook::UnshareFlush]
    }

    fn name(&self) -> &'static str {
        "batched-unshare"
    }

    /// `tlb_unshare_pmd_ptdesc`: remember the unshare; no IPI here.
    fn pmd_unshare(&mut self, ctx: &mut UnshareCtx<'_>) {
        ctx.set_unshared_tables(true);
        if ctx.share_count_after() == 0 {
            ctx.set_fully_unshared_tables(true);
        }
    }

    /// `huge_pmd_unshare_flush` (the range TLB flush was done by the model): one sync IPI if a
    /// table became exclusive in this batch.
    fn unshare_flush(&mut self, ctx: &mut UnshareCtx<'_>) {
        if ctx.fully_unshared_tables() {
            ctx.table_sync_ipi();
            ctx.set_fully_unshared_tables(false);
        }
        ctx.set_unshared_tables(false);
    }
}

/// Contract of batched unshare (mm-semantics C.3), the same in both modes because the policy
/// changes no reclaim or migration choice: all page-table state, share counts, mappings and
/// every other counter equal; table-sync IPIs and their targets candidate <= reference.
/// Relations: at most one unshare sync per `huge_pmd_unshare_flush`, and only for batches where
/// a table became exclusive (`unshare_table_syncs <= pmd_full_unshares`). They count the
/// unshare path's syncs alone: khugepaged's collapse sends table syncs of its own.
pub fn contract(mode: Mode) -> Contract {
    Contract {
        relations: relations(&[
            (
                "unshare_table_syncs",
                Rule::LessOrEqual,
                1,
                "unshare_flush_batches",
            ),
            (
                "unshare_table_syncs",
                Rule::LessOrEqual,
                1,
                "pmd_full_unshares",
            ),
        ]),
        candidate: "batched-unshare".into(),
        mode,
        counters: rules(&[
            ("ipi_sends_table_sync", Rule::LessOrEqual),
            ("unshare_table_syncs", Rule::LessOrEqual),
            ("ipi_targets_table_sync", Rule::LessOrEqual),
            ("ipi_targets", Rule::LessOrEqual),
        ]),
        fields: vec![],
    }
}
