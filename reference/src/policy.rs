//! The policy decision points (ARCHITECTURE.md, code map: `reference/`). Each `Policy` method's DEFAULT body is the
//! reference behaviour; a candidate (or a negative control) overrides one method in another
//! crate. Hooks receive a narrow view (a context struct or plain values), never the model, so a
//! policy can only change what the decision point lets it change. This module must never hold
//! model semantics outside the decision points.

use crate::counters::Counters;
use crate::model::lru;
use crate::model::state::{Folio, Lru, Pte, PAGE_SHIFT, ZERO_SLOT};

/// Which code path is testing-and-clearing a young bit (mm-semantics A.8 `a_tc` sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgeSource {
    /// `folio_referenced_one` on the PTE `page_vma_mapped_walk` found.
    RmapPte,
    /// `lru_gen_look_around` on a neighbour (or on the pvmw PTE itself, KNEW style).
    LookAround,
}

/// Decision point (1): `mm/rmap.c:folio_referenced_one` found a young PTE during reclaim. The
/// view is the PTE table (one PMD's worth of PTEs) holding that PTE, limited to the VMA.
pub struct YoungPteCtx<'a> {
    pub(crate) addr: u64,
    pub(crate) win_start: u64,
    pub(crate) win_end: u64,
    /// Virtual address of `ptes[0]`.
    pub(crate) base: u64,
    pub(crate) ptes: &'a mut [Pte; 512],
    pub(crate) folios: &'a mut crate::model::phash::Tracked<Folio>,
    pub(crate) lru: &'a mut Lru,
    pub(crate) c: &'a mut Counters,
}

impl YoungPteCtx<'_> {
    /// Address of the PTE the rmap walk found (page aligned).
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// `[start, end)`: the part of the VMA inside the PMD table holding `addr()`. Look-around
    /// must stay inside it (mm-semantics C.1).
    pub fn window(&self) -> (u64, u64) {
        (self.win_start, self.win_end)
    }

    /// Current `max_seq` of the lruvec.
    pub fn max_seq(&self) -> u64 {
        self.lru.max_seq
    }

    fn idx(&self, va: u64) -> Option<usize> {
        if va < self.win_start || va >= self.win_end {
            return None;
        }
        Some(((va - self.base) >> PAGE_SHIFT) as usize)
    }

    fn present(&self, va: u64) -> Option<(usize, crate::model::state::PresentPte)> {
        let i = self.idx(va)?;
        match self.ptes.get(i) {
            Some(Pte::Present(p)) if p.folio != ZERO_SLOT => Some((i, *p)),
            _ => None,
        }
    }

    /// Whether `va` (inside the window) maps a real folio with a young PTE. Not counted.
    pub fn is_young(&self, va: u64) -> bool {
        self.present(va).is_some_and(|(_, p)| p.young)
    }

    /// Look-around's per-PTE scan step (`lookaround_ptes_scanned += 1`): true if `va` is
    /// present, not the zero page, young, and its folio is on an LRU gen.
    pub fn scan(&mut self, va: u64) -> bool {
        self.c.lookaround_ptes_scanned += 1;
        match self.present(va) {
            Some((_, p)) => {
                p.young
                    && self
                        .folios
                        .get(p.folio as usize)
                        .is_some_and(|f| f.live && f.on_lru)
            }
            None => false,
        }
    }

    /// `ptep_test_and_clear_young` (no TLB flush on x86, `arch/x86/mm/pgtable.c`): counts the
    /// attempt under `src`, returns whether the PTE was young.
    pub fn test_and_clear_young(&mut self, va: u64, src: AgeSource) -> bool {
        match src {
            AgeSource::RmapPte => self.c.a_tc_rmap_pte += 1,
            AgeSource::LookAround => self.c.a_tc_lookaround += 1,
        }
        let Some((i, mut p)) = self.present(va) else {
            return false;
        };
        if !p.young {
            return false;
        }
        p.young = false;
        if let Some(slot) = self.ptes.get_mut(i) {
            *slot = Pte::Present(p);
        }
        self.c.a_bit_clears += 1;
        match src {
            AgeSource::RmapPte => self.c.a_cleared_rmap_pte += 1,
            AgeSource::LookAround => self.c.a_cleared_lookaround += 1,
        }
        true
    }

    /// Whether the PTE at `va` is dirty.
    pub fn pte_dirty(&self, va: u64) -> bool {
        self.present(va).is_some_and(|(_, p)| p.dirty)
    }

    /// Look-around's dirty transfer (`folio_mark_dirty` when the PTE is dirty, except for anon
    /// swap-backed folios outside the swap cache). Returns whether the folio became dirty.
    pub fn transfer_dirty(&mut self, va: u64) -> bool {
        let Some((_, p)) = self.present(va) else {
            return false;
        };
        if !p.dirty {
            return false;
        }
        let Some(f) = self.folios.get_mut(p.folio as usize) else {
            return false;
        };
        if f.dirty || (f.is_anon() && f.swapbacked && f.swapcache.is_none()) {
            return false;
        }
        f.dirty = true;
        true
    }

    /// Count one `lru_gen_look_around` invocation.
    pub fn note_lookaround_call(&mut self) {
        self.c.lookaround_calls += 1;
    }

    /// `folio_update_gen(folio, gen(max_seq))` for the folio mapped at `va`
    /// (`mm/vmscan.c`, K61 rule): an isolated folio only gets PG_referenced; a folio on an LRU
    /// moves to `max_seq`. Counts `gen_promote_lookaround`. Returns whether it was promoted.
    pub fn promote(&mut self, va: u64) -> bool {
        let Some((_, p)) = self.present(va) else {
            return false;
        };
        let slot = p.folio;
        let max = self.lru.max_seq;
        let Some(f) = self.folios.get_mut(slot as usize) else {
            return false;
        };
        if !f.live {
            return false;
        }
        if !f.on_lru {
            f.referenced = true;
            return false;
        }
        if f.seq == max {
            return false;
        }
        lru::move_to_seq(self.lru, f, slot, max);
        f.refs = 0;
        self.c.gen_promote_lookaround += 1;
        true
    }

    /// `walk_update_folio` / `folio_update_gen` for the folio mapped at `va`, KNEW two-strike
    /// rule (mm-semantics B.9.2; added for the look-around candidate): a folio with neither
    /// PG_referenced nor PG_workingset only gets PG_referenced (first strike); otherwise an
    /// on-LRU folio moves to `max_seq`, gets PG_workingset and loses PG_referenced and refs.
    /// Counts `gen_promote_lookaround` when it moves. Returns whether it moved.
    pub fn promote_two_strike(&mut self, va: u64) -> bool {
        let Some((_, p)) = self.present(va) else {
            return false;
        };
        let slot = p.folio;
        let max = self.lru.max_seq;
        let Some(f) = self.folios.get_mut(slot as usize) else {
            return false;
        };
        if !f.live {
            return false;
        }
        if !f.referenced && !f.workingset {
            f.referenced = true;
            return false;
        }
        if !f.on_lru {
            return false;
        }
        f.referenced = false;
        f.workingset = true;
        f.refs = 0;
        if f.seq == max {
            return false;
        }
        lru::move_to_seq(self.lru, f, slot, max);
        self.c.gen_promote_lookaround += 1;
        true
    }
}

/// Input of decision point (2a): the PTE value `try_to_migrate_one` cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigEntryCtx {
    /// `pte_young(pteval)`.
    pub young: bool,
    /// `pte_dirty(pteval)`.
    pub dirty: bool,
    /// `migration_entry_supports_ad()` (from `KernelProfile`).
    pub mig_ad_supported: bool,
}

/// Input of decision point (2b): `remove_migration_pte` restoring a PTE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigRestoreCtx {
    /// `is_migration_entry_young(entry)`.
    pub entry_young: bool,
    /// `is_migration_entry_dirty(entry)`.
    pub entry_dirty: bool,
    /// `folio_test_dirty(dst)`.
    pub folio_dirty: bool,
    /// `migration_entry_supports_ad()`.
    pub mig_ad_supported: bool,
}

/// Young/dirty bits (of a migration entry, or of a restored PTE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MigAd {
    /// Young / accessed.
    pub young: bool,
    /// Dirty.
    pub dirty: bool,
}

/// mmu_gather bits of 8ce720d5bd91 that unsharing sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UnshareGather {
    pub unshared_tables: bool,
    pub fully_unshared_tables: bool,
    /// Tables that reached pt_share_count == 0 since the last table sync (I3 bookkeeping).
    pub unsynced_full: u32,
}

/// Decision point (3): a hugetlb PMD table was unshared (`mm/hugetlb.c:huge_pmd_unshare`) or
/// the unsharing range ends (`huge_pmd_unshare_flush`, the point the i_mmap lock is dropped).
pub struct UnshareCtx<'a> {
    pub(crate) pts_after: u32,
    pub(crate) gather: &'a mut UnshareGather,
    pub(crate) c: &'a mut Counters,
    pub(crate) rcu_table_free: bool,
    pub(crate) nr_cpus: u32,
}

impl UnshareCtx<'_> {
    /// `pt_share_count` of the table after this unshare (0: now exclusive to one sharer). In
    /// `unshare_flush` it is the value after the last unshare of the range.
    pub fn share_count_after(&self) -> u32 {
        self.pts_after
    }

    /// `mm/mmu_gather.c:tlb_remove_table_sync_one`: with RCU table free, an IPI broadcast to all
    /// online CPUs but self (`ipi_sends_table_sync += 1`, targets `nr_cpus - 1`); without it a
    /// NOP (the preceding flush must do the job). Ends the I3 window for every table unshared
    /// so far.
    pub fn table_sync_ipi(&mut self) {
        if self.rcu_table_free {
            let t = u64::from(self.nr_cpus.saturating_sub(1));
            self.c.ipi_sends_table_sync += 1;
            self.c.unshare_table_syncs += 1;
            self.c.ipi_targets_table_sync += t;
            self.c.ipi_targets += t;
        }
        self.gather.unsynced_full = 0;
    }

    /// `tlb->unshared_tables`.
    pub fn unshared_tables(&self) -> bool {
        self.gather.unshared_tables
    }
    /// Set `tlb->unshared_tables`.
    pub fn set_unshared_tables(&mut self, v: bool) {
        self.gather.unshared_tables = v;
    }
    /// `tlb->fully_unshared_tables`.
    pub fn fully_unshared_tables(&self) -> bool {
        self.gather.fully_unshared_tables
    }
    /// Set `tlb->fully_unshared_tables`.
    pub fn set_fully_unshared_tables(&mut self, v: bool) {
        self.gather.fully_unshared_tables = v;
    }
}

/// Input of the lazyfree discard check in `mm/rmap.c:try_to_unmap_one` (6c8e2a256915), taken
/// after the PTE was cleared but before the rmap is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LazyfreeCheck {
    /// `folio_ref_count` (includes the isolation reference and every mapping).
    pub refcount: u32,
    /// `folio_mapcount` (includes the mapping being unmapped).
    pub mapcount: u32,
    /// `folio_test_dirty`.
    pub dirty: bool,
    /// FOLL_PIN pins.
    pub pincount: u32,
}

/// One decision point of [`Policy`]: what a policy declares it overrides
/// ([`Policy::hooks`]), so policies can be composed (each decision point delegated to the one
/// policy that changes it) without a hand-written delegation per combination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// [`Policy::rmap_young_pte`].
    RmapYoungPte,
    /// [`Policy::migration_entry_ad`].
    MigrationEntryAd,
    /// [`Policy::migration_restore_ad`].
    MigrationRestoreAd,
    /// [`Policy::pmd_unshare`].
    PmdUnshare,
    /// [`Policy::unshare_flush`].
    UnshareFlush,
    /// [`Policy::free_pages_before_flush`].
    FreePagesBeforeFlush,
    /// [`Policy::lazyfree_may_discard`].
    LazyfreeMayDiscard,
    /// [`Policy::mglru_isolated_referenced`].
    MglruIsolatedReferenced,
}

impl Hook {
    /// Every decision point, in trait order.
    pub const ALL: [Hook; 8] = [
        Hook::RmapYoungPte,
        Hook::MigrationEntryAd,
        Hook::MigrationRestoreAd,
        Hook::PmdUnshare,
        Hook::UnshareFlush,
        Hook::FreePagesBeforeFlush,
        Hook::LazyfreeMayDiscard,
        Hook::MglruIsolatedReferenced,
    ];
}

/// A policy: the decision points with the reference behaviour as default bodies.
pub trait Policy {
    /// Policy name for reports.
    fn name(&self) -> &'static str {
        "reference"
    }

    /// The decision points this policy overrides (every method it implements besides `name`
    /// and `hooks`). A composition of policies delegates each listed hook to this policy and
    /// keeps the reference behaviour for the rest, so a hook overridden but not listed is
    /// silently dropped when composed: list every one. Reference: none.
    fn hooks(&self) -> &[Hook] {
        &[]
    }

    /// (1) The reclaim rmap walk (`folio_referenced_one`) found a YOUNG PTE at `ctx.addr()`
    /// (old PTEs are counted as plain `a_tc_rmap_pte` attempts by the model). Return whether
    /// the reference counts (`referenced++`).
    /// Reference: `ptep_clear_flush_young_notify` on that PTE only (no flush on x86).
    fn rmap_young_pte(&mut self, ctx: &mut YoungPteCtx<'_>) -> bool {
        let a = ctx.addr();
        ctx.test_and_clear_young(a, AgeSource::RmapPte)
    }

    /// (2a) `try_to_migrate_one` builds a migration entry: which A/D bits it keeps.
    /// Reference (before 2e3468778dbe): none.
    fn migration_entry_ad(&mut self, ctx: &MigEntryCtx) -> MigAd {
        let _ = ctx;
        MigAd::default()
    }

    /// (2b) `remove_migration_pte` restores a PTE: its young/dirty bits.
    /// Reference: `pte_mkold(mk_pte(..))`, clean.
    fn migration_restore_ad(&mut self, ctx: &MigRestoreCtx) -> MigAd {
        let _ = ctx;
        MigAd::default()
    }

    /// (3a) `huge_pmd_unshare` just unshared one PMD table (`pt_share_count` already
    /// decremented). Reference V1 (1013af4f585f): one table-sync IPI per unshared table.
    fn pmd_unshare(&mut self, ctx: &mut UnshareCtx<'_>) {
        ctx.table_sync_ipi();
    }

    /// (3b) End of an unsharing range (`huge_pmd_unshare_flush`; the TLB flush of the range
    /// was already done by the model), right before the locks are released. Reference V1:
    /// nothing more.
    fn unshare_flush(&mut self, ctx: &mut UnshareCtx<'_>) {
        let _ = ctx;
    }

    /// Whether unmapped pages are freed BEFORE the TLB flush that covers them (zap and reclaim
    /// paths). Reference: false (`tlb_flush_mmu`: flush, then free; the S3 rule).
    fn free_pages_before_flush(&self) -> bool {
        false
    }

    /// Whether reclaim may discard a lazyfree (MADV_FREE) folio instead of restoring it.
    /// Reference (6c8e2a256915): `ref_count == 1 + map_count && !dirty`.
    fn lazyfree_may_discard(&mut self, c: &LazyfreeCheck) -> bool {
        c.refcount == 1 + c.mapcount && !c.dirty
    }

    /// v6.1 MGLRU with look-around (018ee47f1489, `mm/vmscan.c`): `isolate_folio` clears
    /// PG_referenced, and `shrink_folio_list` keeps a mapped folio whose PG_referenced was set
    /// while it was isolated ("page_update_gen() tried to promote this page?", by look-around
    /// or the page-table walk) without calling `folio_referenced`. Reference: false (no
    /// shortcut; PG_referenced survives isolation). Added for the look-around candidate.
    fn mglru_isolated_referenced(&self) -> bool {
        false
    }
}

/// The reference policy: every decision point at its default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reference;

impl Policy for Reference {}
