//! `all`: the three candidates together in one model (look-around, A/D preservation, batched
//! unshare). Each decision point is delegated to the candidate that owns it; the others keep
//! the reference behaviour. It must never add behaviour of its own.

use mmreplay_reference::policy::{
    LazyfreeCheck, MigAd, MigEntryCtx, MigRestoreCtx, Policy, UnshareCtx, YoungPteCtx,
};
use mmreplay_reference::profile::Base;

use crate::ad_preserve::AdPreserve;
use crate::batched_unshare::BatchedUnshare;
use crate::contract::{rules, Contract, Mode, Rule};
use crate::lookaround::LookAround;
use crate::{ad_preserve, batched_unshare, lookaround};

/// All candidates at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct All {
    /// Look-around part.
    pub lookaround: LookAround,
    /// A/D part.
    pub ad: AdPreserve,
    /// Unshare part.
    pub unshare: BatchedUnshare,
}

impl Policy for All {
    fn name(&self) -> &'static str {
        "all"
    }
    fn rmap_young_pte(&mut self, ctx: &mut YoungPteCtx<'_>) -> bool {
        self.lookaround.rmap_young_pte(ctx)
    }
    fn migration_entry_ad(&mut self, ctx: &MigEntryCtx) -> MigAd {
        self.ad.migration_entry_ad(ctx)
    }
    fn migration_restore_ad(&mut self, ctx: &MigRestoreCtx) -> MigAd {
        self.ad.migration_restore_ad(ctx)
    }
    fn pmd_unshare(&mut self, ctx: &mut UnshareCtx<'_>) {
        self.unshare.pmd_unshare(ctx)
    }
    fn unshare_flush(&mut self, ctx: &mut UnshareCtx<'_>) {
        self.unshare.unshare_flush(ctx)
    }
    fn free_pages_before_flush(&self) -> bool {
        self.lookaround.free_pages_before_flush()
    }
    fn lazyfree_may_discard(&mut self, c: &LazyfreeCheck) -> bool {
        self.lookaround.lazyfree_may_discard(c)
    }
    fn mglru_isolated_referenced(&self) -> bool {
        self.lookaround.mglru_isolated_referenced()
    }
}

/// Contract of `all`: the union of the three contracts' allowances (a field or counter that
/// one part may change is not held to another part's stricter rule).
pub fn contract(mode: Mode, base: Base, window: u32, mig_ad_supported: bool) -> Contract {
    let mut rel = lookaround::contract(mode, window).relations;
    rel.extend(ad_preserve::contract(mode, base, mig_ad_supported).relations);
    rel.extend(batched_unshare::contract(mode).relations);
    match mode {
        Mode::FreeRunning => Contract {
            relations: rel,
            ..Contract::free_running("all")
        },
        Mode::Lockstep => {
            let soft_dirty = match base {
                Base::K61 => Rule::GreaterOrEqual,
                Base::Knew => Rule::Equal,
            };
            Contract {
                candidate: "all".into(),
                mode,
                relations: rel,
                counters: rules(&[
                    ("rmap_walks", Rule::LessOrEqual),
                    ("rmap_vma_visits", Rule::LessOrEqual),
                    ("a_tc_*", Rule::Any),
                    ("a_cleared_*", Rule::Any),
                    ("a_bit_clears", Rule::Any),
                    ("lookaround_*", Rule::GreaterOrEqual),
                    ("gen_promote_*", Rule::Any),
                    // Reference checks that found no young PTE, and the page-table walk's Bloom
                    // skips, follow the A bits the policy leaves (`model/softdirty.rs`, `reclaim.rs`).
                    ("reclaim_unref_*", Rule::Any),
                    ("pt_walk_bloom_skips", Rule::Any),
                    ("min_seq_incs", Rule::Any),
                    ("hw_a_sets", Rule::Any),
                    ("scanned", Rule::Any),
                    ("kept", Rule::Any),
                    ("vmscan_scanned", Rule::Any),
                    ("vmscan_ref_keep", Rule::Any),
                    ("vmscan_activated", Rule::Any),
                    ("hw_d_sets", Rule::LessOrEqual),
                    ("hw_a_sets_after_mig", Rule::LessOrEqual),
                    ("hw_d_sets_after_mig", Rule::LessOrEqual),
                    ("mig_restored_young", Rule::GreaterOrEqual),
                    ("mig_restored_dirty", Rule::GreaterOrEqual),
                    ("ipi_sends_table_sync", Rule::LessOrEqual),
                    ("unshare_table_syncs", Rule::LessOrEqual),
                    ("ipi_targets_table_sync", Rule::LessOrEqual),
                    ("ipi_targets", Rule::Any), // table-sync targets drop, shootdown targets may grow
                    // Look-around flushes less (an A bit cleared without a flush is not
                    // flushed again), A/D preservation more (restored young PTEs are).
                    ("tlb_flush_*", Rule::Any),
                    ("tlb_fills", Rule::Any),
                    ("ipi_sends_shootdown", Rule::Any),
                    ("ipi_targets_shootdown", Rule::Any),
                ]),
                fields: rules(&[
                    ("pte.young", Rule::Any),
                    ("pte.dirty", Rule::GreaterOrEqualIfFolioDirty),
                    ("pte.soft_dirty", soft_dirty),
                    ("folio.lru_age", Rule::Any),
                    ("folio.referenced", Rule::Any),
                    ("folio.workingset", Rule::Any),
                    ("lru.nr_gens", Rule::Any),
                    ("folio.dirty", Rule::GreaterOrEqual),
                ]),
            }
        }
    }
}
