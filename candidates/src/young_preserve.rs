//! Candidate: the young half of A/D preservation across migration. `mm/rmap.c:
//! try_to_migrate_one` keeps `pte_young` of the cleared PTE in the migration entry
//! (`make_migration_entry_young`) when the entry has room for it
//! (`migration_entry_supports_ad()`, `KernelProfile::mig_ad_supported`), and
//! `mm/migrate.c:remove_migration_pte` restores the PTE young as it was
//! (`if (!is_migration_entry_young(entry)) pte = pte_mkold(pte)`): the young part of
//! 2e3468778dbe ("mm: remember young/dirty bit for page migrations"), whose message names the
//! cost it removes ("x86_64 needs a few hundreds nanoseconds to set the bit"). The dirty bit
//! stays as before that commit: the restored PTE is clean, the dirtiness having gone to the
//! folio at unmap (`folio_mark_dirty` in `try_to_migrate_one`), so the first write after
//! migration still takes a hardware D-bit assist. Keeping only the accessed bit across a
//! migration entry is what Andrea Arcangeli's a567f6569380 ("mm: THP: preserved young bit in
//! the THP split", aa.git) asked of the swap-entry format before 2e3468778dbe did both.
//!
//! What it shows next to `ad-preserve` (both A and D): how much of the hardware-assist saving
//! is the A bit alone. It must never set a bit when `mig_ad_supported` is false, never set
//! dirty, and never touch anything but the young bit.

use mmreplay_reference::policy::{Hook, MigAd, MigEntryCtx, MigRestoreCtx, Policy};
use mmreplay_reference::profile::Base;

use crate::ad_preserve::{self, AdPreserve};
use crate::contract::{Contract, Mode};

/// Young-bit preservation as a `Policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct YoungPreserve;

impl Policy for YoungPreserve {
    fn hooks(&self) -> &[Hook] {
        &[Hook::MigrationEntryAd, Hook::MigrationRestoreAd]
    }

    fn name(&self) -> &'static str {
        "young-preserve"
    }

    /// `make_migration_entry_young` only (same rule as `ad-preserve`'s, dirty dropped).
    fn migration_entry_ad(&mut self, ctx: &MigEntryCtx) -> MigAd {
        MigAd {
            young: AdPreserve::entry_bits(ctx).young,
            dirty: false,
        }
    }

    /// `remove_migration_pte`: young iff the entry was young; always clean.
    fn migration_restore_ad(&mut self, ctx: &MigRestoreCtx) -> MigAd {
        MigAd {
            young: AdPreserve::restore_bits(ctx).young,
            dirty: false,
        }
    }
}

/// Contract of young-bit preservation: `ad-preserve`'s (under the current kernel's rules: no
/// `pte_mkdirty`, so no soft-dirty leak) without any rule that lets a dirty bit, a dirty
/// restore or a hardware D assist differ, so those must be equal. Lockstep: restored PTEs may
/// be younger, aging state downstream may differ, hardware A assists must not grow,
/// restored-young counts must not shrink, TLB flushes and IPIs may only grow (a PTE restored
/// young is flushed where the reference's old one needs none). Free-running: the S tier.
///
/// Relation (any mode): restored-young PTEs are at most the restored PTEs, and none at all
/// when the profile has no room for A/D in migration entries.
pub fn contract(mode: Mode, mig_ad_supported: bool) -> Contract {
    let dirty = |name: &str| name.contains("dirty") || name.starts_with("hw_d_");
    let mut k = ad_preserve::contract(mode, Base::Knew, mig_ad_supported);
    k.candidate = "young-preserve".into();
    k.relations.retain(|r| !dirty(r.left.as_str()));
    if mode == Mode::Lockstep {
        k.counters.retain(|(name, _)| !dirty(name.as_str()));
        k.fields.retain(|(name, _)| !dirty(name.as_str()));
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Rule;

    #[test]
    fn keeps_young_never_dirty() {
        let mut p = YoungPreserve;
        let restore = |entry_young, mig_ad_supported| MigRestoreCtx {
            entry_young,
            entry_dirty: true,
            folio_dirty: true,
            mig_ad_supported,
        };
        assert_eq!(
            p.migration_restore_ad(&restore(true, true)),
            MigAd {
                young: true,
                dirty: false
            }
        );
        assert_eq!(
            p.migration_restore_ad(&restore(false, true)),
            MigAd::default()
        );
        // No room in the entry: dropped like before 2e3468778dbe.
        assert_eq!(
            p.migration_restore_ad(&restore(true, false)),
            MigAd::default()
        );
        let entry = |mig_ad_supported| MigEntryCtx {
            young: true,
            dirty: true,
            mig_ad_supported,
        };
        assert_eq!(
            p.migration_entry_ad(&entry(true)),
            MigAd {
                young: true,
                dirty: false
            }
        );
        assert_eq!(p.migration_entry_ad(&entry(false)), MigAd::default());
        // The contract keeps the dirty side equal to the reference.
        let k = contract(Mode::Lockstep, true);
        assert_eq!(k.field_rule("pte.dirty"), Rule::Equal);
        assert_eq!(k.counter_rule("mig_restored_dirty"), Rule::Equal);
        assert_eq!(k.counter_rule("hw_d_sets_after_mig"), Rule::Equal);
        assert_eq!(k.field_rule("pte.soft_dirty"), Rule::Equal);
        assert_eq!(k.field_rule("pte.young"), Rule::GreaterOrEqual);
        assert_eq!(k.counter_rule("hw_a_sets_after_mig"), Rule::LessOrEqual);
        assert_eq!(k.relations.len(), 1);
        assert_eq!(contract(Mode::FreeRunning, true).relations.len(), 1);
    }
}
