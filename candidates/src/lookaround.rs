//! Candidate 1: MGLRU look-around (`mm/vmscan.c:lru_gen_look_around`, 018ee47f1489,
//! mm-semantics C.1). When the reclaim rmap walk (`mm/rmap.c:folio_referenced_one`) finds a
//! young PTE, also scan the neighbouring PTEs in the same PTE table (one PMD's worth) and VMA,
//! clear the young ones and promote their folios, so that `sort_folio` later moves them without
//! an rmap walk.
//!
//! Two kernel generations are offered through [`Base`] (from the `KernelProfile`):
//! - `K61` (v6.1, the code of 018ee47f1489): the window includes the rmap PTE, and the
//!   rmap walk's own `ptep_clear_flush_young_notify` then finds it old; young neighbours are
//!   promoted straight to `max_seq` (`folio_update_gen`, K61 rule: an isolated folio only gets
//!   PG_referenced, which makes `shrink_folio_list` keep it without an rmap walk).
//! - `Knew` (current mainline): look-around clears the rmap PTE itself
//!   (`ptep_clear_young_notify(pvmw->pte)` first) and promotes through `walk_update_folio`, the
//!   two-strike rule (first strike only sets PG_referenced; a folio already referenced or in the
//!   working set moves to `max_seq`).
//!
//! The window follows the kernel: `[max(addr & PMD_MASK, vma.start), min(addr | ~PMD_MASK,
//! vma.end - 1) + 1)` (the model hands it over as `YoungPteCtx::window`), cut to
//! `MIN_LRU_BATCH` = 64 pages (`BITS_PER_LONG - 1` = 63 neighbours) around `addr`; the `window`
//! parameter replaces `MIN_LRU_BATCH` for what-if studies. Not modelled: VM_SEQ_READ /
//! VM_RAND_READ (the model has no MADV_SEQUENTIAL/MADV_RANDOM VMA flags), PTL contention
//! (`spin_is_contended`), the Bloom-filter feedback to the page-table walk, memcg and node
//! checks (the model has one lruvec).
//!
//! It must never touch a PTE outside the window the model passes, never flush a TLB (x86 does
//! not flush on a young clear), and never change presence, permissions, pfn or content.

use mmreplay_reference::policy::{AgeSource, Hook, Policy, YoungPteCtx};
use mmreplay_reference::profile::Base;

use crate::contract::{relations, rules, Contract, Mode, Rule};

/// `MIN_LRU_BATCH` (= `BITS_PER_LONG` on 64-bit): pages in the kernel's look-around window.
pub const MIN_LRU_BATCH: u32 = 64;

const PAGE_SIZE: u64 = 4096;

/// MGLRU look-around as a `Policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookAround {
    /// Window size in pages, including the rmap PTE (kernel: `MIN_LRU_BATCH` = 64).
    pub window: u32,
    /// Which kernel generation's look-around to follow.
    pub base: Base,
}

impl LookAround {
    /// Look-around with the kernel's window for `base`.
    pub fn new(base: Base) -> LookAround {
        LookAround {
            window: MIN_LRU_BATCH,
            base,
        }
    }

    /// The scan range for a young PTE at `addr` inside `[start, end)` (the VMA part of the PMD
    /// table): at most `window` pages containing `addr`, placed as `lru_gen_look_around` does.
    pub fn scan_range(&self, addr: u64, start: u64, end: u64) -> (u64, u64) {
        let w = u64::from(self.window.max(1)) * PAGE_SIZE;
        if end.saturating_sub(start) <= w {
            return (start, end);
        }
        if addr - start < w / 2 {
            (start, start + w)
        } else if end - addr < w / 2 {
            (end - w, end)
        } else {
            (addr - w / 2, addr - w / 2 + w)
        }
    }

    /// Scan `[start, end)`, clear the young PTEs whose folios are on an LRU and promote those
    /// folios; returns how many were young.
    fn look_around(&self, ctx: &mut YoungPteCtx<'_>, start: u64, end: u64) -> u32 {
        let mut young = 0;
        let mut va = start;
        while va < end {
            // scan() counts the PTE and checks present, not the zero page, young, folio on an
            // LRU. K61's get_pfn_folio has no LRU check: an isolated folio is still cleared
            // and gets PG_referenced (`folio_lru_gen() < 0 => folio_set_referenced`).
            let candidate = ctx.scan(va) || (self.base == Base::K61 && ctx.is_young(va));
            if candidate && ctx.test_and_clear_young(va, AgeSource::LookAround) {
                young += 1;
                ctx.transfer_dirty(va);
                match self.base {
                    Base::K61 => {
                        ctx.promote(va);
                    }
                    Base::Knew => {
                        ctx.promote_two_strike(va);
                    }
                }
            }
            va += PAGE_SIZE;
        }
        young
    }
}

impl Policy for LookAround {
    fn hooks(&self) -> &[Hook] {
        &[Hook::RmapYoungPte, Hook::MglruIsolatedReferenced]
    }

    fn name(&self) -> &'static str {
        "lookaround"
    }

    /// v6.1 only: the `shrink_folio_list` shortcut 018ee47f1489 added with look-around (keep a
    /// mapped folio that look-around marked PG_referenced while it was isolated).
    fn mglru_isolated_referenced(&self) -> bool {
        self.base == Base::K61
    }

    fn rmap_young_pte(&mut self, ctx: &mut YoungPteCtx<'_>) -> bool {
        let addr = ctx.addr();
        let (ws, we) = ctx.window();
        ctx.note_lookaround_call();
        match self.base {
            Base::K61 => {
                // v6.1 folio_referenced_one: lru_gen_look_around(&pvmw) (which also clears the
                // rmap PTE, in the window) then ptep_clear_flush_young_notify on the rmap PTE,
                // which then finds it old.
                let (s, e) = self.scan_range(addr, ws, we);
                self.look_around(ctx, s, e);
                ctx.test_and_clear_young(addr, AgeSource::RmapPte);
                true
            }
            Base::Knew => {
                // Current lru_gen_look_around: clear the rmap PTE first; a VMA part of one page
                // has no neighbours.
                if !ctx.test_and_clear_young(addr, AgeSource::LookAround) {
                    return false;
                }
                if we.saturating_sub(ws) > PAGE_SIZE {
                    let (s, e) = self.scan_range(addr, ws, we);
                    self.look_around(ctx, s, e);
                }
                true
            }
        }
    }
}

/// Contract of look-around (mm-semantics C.1). Lockstep: only A bits, generations, refs,
/// PG_referenced/workingset may differ, the folio dirty flag may be set earlier (never lost),
/// rmap walks must not grow; TLB flushes, fills and IPIs may only drop: clearing a neighbour's
/// A bit does not flush (x86), and a PTE found old later needs none where the reference
/// flushed a young one (`madvise_cold_or_pageout_pte_range`, and `set_tlb_ubc_flush_pending`
/// skipping a non-accessed PTE at unmap).
/// Free-running: the S tier.
///
/// Relations (any mode): look-around promotes only folios whose A bit it cleared
/// (`gen_promote_lookaround <= a_cleared_lookaround`) and never scans more than `window` PTEs
/// per call (`lookaround_ptes_scanned <= window x lookaround_calls`).
pub fn contract(mode: Mode, window: u32) -> Contract {
    let rel = relations(&[
        (
            "gen_promote_lookaround",
            Rule::LessOrEqual,
            1,
            "a_cleared_lookaround",
        ),
        (
            "lookaround_ptes_scanned",
            Rule::LessOrEqual,
            u64::from(window),
            "lookaround_calls",
        ),
    ]);
    match mode {
        Mode::FreeRunning => Contract {
            relations: rel,
            ..Contract::free_running("lookaround")
        },
        Mode::Lockstep => Contract {
            relations: rel,
            candidate: "lookaround".into(),
            mode,
            counters: rules(&[
                ("rmap_walks", Rule::LessOrEqual),
                ("rmap_vma_visits", Rule::LessOrEqual),
                ("a_tc_*", Rule::Any),
                ("a_cleared_*", Rule::Any),
                ("a_bit_clears", Rule::Any),
                ("lookaround_*", Rule::GreaterOrEqual),
                ("gen_promote_*", Rule::Any),
                // Aging rounds are imposed (max_seq_incs equal), but an oldest gen whose folios
                // look-around promoted empties, and is retired, earlier (lru.nr_gens: any).
                ("min_seq_incs", Rule::Any),
                // Cleared neighbours are re-set by the next page walk (C.1 table: up).
                ("hw_a_sets", Rule::Any),
                // sort_folio moves promoted folios without isolating them.
                ("scanned", Rule::Any),
                ("kept", Rule::Any),
                // Keep vs activate follows look-around's promotions (only the reclaim
                // decision is imposed).
                ("vmscan_scanned", Rule::Any),
                ("vmscan_ref_keep", Rule::Any),
                ("vmscan_activated", Rule::Any),
                // Reference checks that found no young PTE, and the page-table walk's Bloom
                // skips, follow the A bits the policy leaves (`model/softdirty.rs`, `reclaim.rs`).
                ("reclaim_unref_*", Rule::Any),
                ("pt_walk_bloom_skips", Rule::Any),
                ("tlb_flush_*", Rule::LessOrEqual),
                ("tlb_fills", Rule::LessOrEqual),
                // Shootdowns only: look-around never touches hugetlb table sharing.
                ("ipi_sends_shootdown", Rule::LessOrEqual),
                ("ipi_targets_shootdown", Rule::LessOrEqual),
                ("ipi_targets", Rule::LessOrEqual),
            ]),
            fields: rules(&[
                ("pte.young", Rule::Any),
                ("folio.lru_age", Rule::Any),
                ("folio.referenced", Rule::Any),
                ("folio.workingset", Rule::Any),
                ("lru.nr_gens", Rule::Any),
                // Look-around's dirty transfer may only add to the logical-dirty set.
                ("folio.dirty", Rule::GreaterOrEqual),
            ]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_placement_follows_lru_gen_look_around() {
        let la = LookAround::new(Base::Knew);
        let p = PAGE_SIZE;
        // Small VMA part: the whole of it.
        assert_eq!(la.scan_range(0x1000, 0, 10 * p), (0, 10 * p));
        // addr near the start: [start, start + 64p).
        assert_eq!(la.scan_range(5 * p, 0, 512 * p), (0, 64 * p));
        // addr near the end: [end - 64p, end).
        assert_eq!(la.scan_range(500 * p, 0, 512 * p), (448 * p, 512 * p));
        // Middle: [addr - 32p, addr + 32p).
        assert_eq!(la.scan_range(200 * p, 0, 512 * p), (168 * p, 232 * p));
        let small = LookAround {
            window: 8,
            base: Base::K61,
        };
        assert_eq!(small.scan_range(200 * p, 0, 512 * p), (196 * p, 204 * p));
    }
}
