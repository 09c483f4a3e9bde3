//! Candidate 2: A/D preservation across migration (2e3468778dbe, mm-semantics C.2, B.8).
//! `mm/rmap.c:try_to_migrate_one` keeps `pte_young`/`pte_dirty` of the cleared PTE in the
//! migration entry (`make_migration_entry_young`/`_dirty`) when the entry has room for them
//! (`migration_entry_supports_ad()`, `KernelProfile::mig_ad_supported`);
//! `mm/migrate.c:remove_migration_pte` restores young as it was and dirty only if the
//! destination folio is dirty (`folio_test_dirty(folio) && is_migration_entry_dirty(entry)`).
//!
//! It must never set a bit when `mig_ad_supported` is false ("the A/D bits are dropped like
//! before"), never set dirty on a PTE whose folio is clean, and never touch anything but the
//! two bits (PFN, write, PAE, soft-dirty stay the model's business).

use mmreplay_reference::policy::{Hook, MigAd, MigEntryCtx, MigRestoreCtx, Policy};
use mmreplay_reference::profile::Base;

use crate::contract::{relations, rules, Contract, Mode, Rule};

/// A/D preservation as a `Policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdPreserve;

impl AdPreserve {
    /// `make_migration_entry_young/_dirty` under `migration_entry_supports_ad()`.
    pub fn entry_bits(ctx: &MigEntryCtx) -> MigAd {
        if !ctx.mig_ad_supported {
            return MigAd::default();
        }
        MigAd {
            young: ctx.young,
            dirty: ctx.dirty,
        }
    }

    /// `remove_migration_pte`: young iff the entry was young, dirty iff the entry was dirty AND
    /// the folio is dirty.
    pub fn restore_bits(ctx: &MigRestoreCtx) -> MigAd {
        if !ctx.mig_ad_supported {
            return MigAd::default();
        }
        MigAd {
            young: ctx.entry_young,
            dirty: ctx.entry_dirty && ctx.folio_dirty,
        }
    }
}

impl Policy for AdPreserve {
    fn hooks(&self) -> &[Hook] {
        &[Hook::MigrationEntryAd, Hook::MigrationRestoreAd]
    }

    fn name(&self) -> &'static str {
        "ad-preserve"
    }

    fn migration_entry_ad(&mut self, ctx: &MigEntryCtx) -> MigAd {
        AdPreserve::entry_bits(ctx)
    }

    fn migration_restore_ad(&mut self, ctx: &MigRestoreCtx) -> MigAd {
        AdPreserve::restore_bits(ctx)
    }
}

/// Contract of A/D preservation (mm-semantics C.2). Lockstep: restored PTEs may be younger
/// (candidate young wherever the reference is) and dirty only where the folio is dirty;
/// aging state downstream may differ; hardware A/D assists must not grow, restored-young/dirty
/// counts must not shrink; TLB flushes and IPIs may only grow (a PTE restored young is
/// flushed where the reference's old one needs none: `madvise_cold_or_pageout_pte_range`,
/// `set_tlb_ubc_flush_pending`); migration entries, mapcounts, content equal.
/// Soft-dirty: equal under KNEW; under K61 `pte_mkdirty` may leak soft-dirty (allowed, >=).
/// Free-running: the S tier.
///
/// Relations (any mode): restored-young/dirty PTEs are at most the restored PTEs, and none
/// at all when the profile has no room for A/D in migration entries.
pub fn contract(mode: Mode, base: Base, mig_ad_supported: bool) -> Contract {
    let f = u64::from(mig_ad_supported);
    let rel = relations(&[
        (
            "mig_restored_young",
            Rule::LessOrEqual,
            f,
            "mig_entries_removed",
        ),
        (
            "mig_restored_dirty",
            Rule::LessOrEqual,
            f,
            "mig_entries_removed",
        ),
    ]);
    match mode {
        Mode::FreeRunning => Contract {
            relations: rel,
            ..Contract::free_running("ad-preserve")
        },
        Mode::Lockstep => {
            let soft_dirty = match base {
                Base::K61 => Rule::GreaterOrEqual,
                Base::Knew => Rule::Equal,
            };
            Contract {
                candidate: "ad-preserve".into(),
                mode,
                relations: rel,
                counters: rules(&[
                    ("hw_a_sets", Rule::LessOrEqual),
                    ("hw_d_sets", Rule::LessOrEqual),
                    ("hw_a_sets_after_mig", Rule::LessOrEqual),
                    ("hw_d_sets_after_mig", Rule::LessOrEqual),
                    ("mig_restored_young", Rule::GreaterOrEqual),
                    ("mig_restored_dirty", Rule::GreaterOrEqual),
                    ("a_tc_*", Rule::Any),
                    ("a_cleared_*", Rule::Any),
                    ("a_bit_clears", Rule::Any),
                    ("gen_promote_*", Rule::Any),
                    // Only the reclaim decision is imposed: keep vs activate follows the
                    // candidate's own reference check (younger restored PTEs).
                    ("vmscan_ref_keep", Rule::Any),
                    ("vmscan_activated", Rule::Any),
                    // Reference checks that found no young PTE, and the page-table walk's Bloom
                    // skips, follow the A bits the policy leaves (`model/softdirty.rs`, `reclaim.rs`).
                    ("reclaim_unref_*", Rule::Any),
                    ("pt_walk_bloom_skips", Rule::Any),
                    // Younger restored PTEs change activations, so which oldest gens empty
                    // (and are retired) may differ even with imposed aging rounds.
                    ("min_seq_incs", Rule::Any),
                    ("tlb_flush_*", Rule::GreaterOrEqual),
                    // Shootdowns only: migration never touches hugetlb table sharing.
                    ("ipi_sends_shootdown", Rule::GreaterOrEqual),
                    ("ipi_targets_shootdown", Rule::GreaterOrEqual),
                    ("ipi_targets", Rule::GreaterOrEqual),
                ]),
                fields: rules(&[
                    ("pte.young", Rule::GreaterOrEqual),
                    ("pte.dirty", Rule::GreaterOrEqualIfFolioDirty),
                    ("pte.soft_dirty", soft_dirty),
                    ("folio.lru_age", Rule::Any),
                    ("folio.referenced", Rule::Any),
                    ("folio.workingset", Rule::Any),
                    ("lru.nr_gens", Rule::Any),
                ]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_rules() {
        let on = |entry_young, entry_dirty, folio_dirty| MigRestoreCtx {
            entry_young,
            entry_dirty,
            folio_dirty,
            mig_ad_supported: true,
        };
        assert_eq!(
            AdPreserve::restore_bits(&on(true, true, true)),
            MigAd {
                young: true,
                dirty: true
            }
        );
        // Dirty only if the folio is dirty.
        assert_eq!(
            AdPreserve::restore_bits(&on(true, true, false)),
            MigAd {
                young: true,
                dirty: false
            }
        );
        assert_eq!(
            AdPreserve::restore_bits(&on(false, false, true)),
            MigAd::default()
        );
        // Unsupported layout: dropped like before.
        let mut off = on(true, true, true);
        off.mig_ad_supported = false;
        assert_eq!(AdPreserve::restore_bits(&off), MigAd::default());
        let e = MigEntryCtx {
            young: true,
            dirty: true,
            mig_ad_supported: false,
        };
        assert_eq!(AdPreserve::entry_bits(&e), MigAd::default());
    }
}
