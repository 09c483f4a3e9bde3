//! Soft-dirty clears (`Op::ClearSoftDirty`): `/proc/PID/clear_refs` 4 as `mmreplay record
//! --access` writes it, so that the writes a capture shows as write-protect faults land on
//! write-protected PTEs here too and go through `do_wp_page`, which sets the A bit as the
//! kernel does. It must never touch A bits or the LRU: the kernel's clear does not.

use super::state::*;
use super::{Loc, Model, ModelError};
use crate::hash::FxHashMap;
use crate::op::{MmId, OpOutcome};
use crate::policy::Policy;

/// PTEs a clear write-protected and no fault has made writable again: `(mm, va)` → folio slot.
/// Only for counting `softdirty_write_faults`; never read by a kernel rule.
#[derive(Default)]
pub(crate) struct SoftDirty {
    wp: FxHashMap<(u32, u64), u32>,
    /// Mms a clear has reached: their writes between faults are in the capture.
    sampled: std::collections::HashSet<u32, crate::hash::FxBuild>,
    /// Mms older than the capture: created without a parent (`Op::Exec` with no old mm: a
    /// task first seen mid-capture or seeded from the process snapshot) and their forks.
    /// Their pages' accesses before the capture are unknown.
    preexisting: std::collections::HashSet<u32, crate::hash::FxBuild>,
}

impl<P: Policy> Model<P> {
    /// `fs/proc/task_mmu.c:clear_refs_write` (CLEAR_REFS_SOFT_DIRTY): `clear_soft_dirty` on
    /// every present PTE (`pte_wrprotect`; a pinned COW page is skipped, `pte_is_pinned`), then
    /// `flush_tlb_mm` (x86: `flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL, 0, true)`, so lazy CPUs
    /// are flushed too). hugetlb VMAs have no `hugetlb_entry` in `clear_refs_walk_ops`: skipped.
    pub(crate) fn op_clear_soft_dirty(
        &mut self,
        cpu: u32,
        mm: MmId,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        self.c.softdirty_clears += 1;
        self.softdirty.sampled.insert(mm.0);
        let vmas: Vec<Vma> = self
            .mms
            .get(&mm.0)
            .map(|m| m.vmas.values().copied().collect())
            .unwrap_or_default();
        for v in &vmas {
            if v.kind == VmaKind::Hugetlb {
                continue;
            }
            let mut locs = std::mem::take(&mut self.scratch_locs);
            self.collect_ptes(mm.0, v.start, v.end, &mut locs);
            for &(va, loc) in &locs {
                if !matches!(loc, Loc::Pte(..)) {
                    continue;
                }
                let mut p = match self.get(loc) {
                    Pte::Present(p) => p,
                    // pte_swp_clear_soft_dirty.
                    Pte::Swap {
                        slot,
                        exclusive,
                        soft_dirty: true,
                    } => {
                        let q = Pte::Swap {
                            slot,
                            exclusive,
                            soft_dirty: false,
                        };
                        self.set(loc, q);
                        continue;
                    }
                    _ => continue,
                };
                let pinned = p.write
                    && v.is_cow()
                    && self
                        .folios
                        .get(p.folio as usize)
                        .is_some_and(|f| f.pincount > 0);
                if pinned {
                    continue;
                }
                let was_writable = p.write;
                p.write = false;
                p.soft_dirty = false;
                self.set(loc, Pte::Present(p));
                if was_writable {
                    self.softdirty.wp.insert((mm.0, va), p.folio);
                    self.c.softdirty_wrprotected += 1;
                }
            }
            self.scratch_locs = locs;
        }
        self.flush_tlb_mm_range(cpu, mm.0, 0, TASK_SIZE, true);
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    /// A reclaim reference check (`folio_referenced`) of a mapped folio found no young PTE: the
    /// folio is reclaimed or demoted for want of an access, which the capture shows only as a
    /// fault. Counted by whether any of its mappers was under `record --access` sampling
    /// (writes between faults visible, at the sampling interval) or not (no access after a
    /// fault visible): the decisions that depend on what the capture does not contain.
    pub(crate) fn count_unreferenced(&mut self, rmap: &[(u32, u64)]) {
        if rmap
            .iter()
            .any(|(mm, _)| self.softdirty.sampled.contains(mm))
        {
            self.c.reclaim_unref_sampled += 1;
        } else {
            self.c.reclaim_unref_unsampled += 1;
        }
        if rmap
            .iter()
            .any(|(mm, _)| self.softdirty.preexisting.contains(mm))
        {
            self.c.reclaim_unref_preexisting += 1;
        }
    }

    /// Before `Op::Exec` / `Op::Fork`: an exec with no old mm makes an mm older than the
    /// capture, and so does a fork of one (it shares its parent's pages). Only for counting.
    pub(crate) fn note_mm_origin(&mut self, mm: MmId, preexisting: bool) {
        if preexisting {
            self.softdirty.preexisting.insert(mm.0);
        } else {
            self.softdirty.preexisting.remove(&mm.0);
        }
    }

    /// Whether `mm` is older than the capture (see [`Self::note_mm_origin`]).
    pub(crate) fn is_preexisting(&self, mm: MmId) -> bool {
        self.softdirty.preexisting.contains(&mm.0)
    }

    /// A write fault on a read-only present PTE: count it when a clear write-protected it.
    pub(crate) fn softdirty_write_fault(&mut self, mm: u32, va: u64, folio: u32) {
        if self.softdirty.wp.remove(&(mm, va)) == Some(folio) {
            self.c.softdirty_write_faults += 1;
        }
    }
}
