//! Transparent huge pages (anonymous, PMD-sized) and the page-table moves of mremap: the THP
//! fault (`do_huge_pmd_anonymous_page`, the huge zero page and its write fault
//! `do_huge_zero_wp_pmd`), PMD splits (`__split_huge_pmd` → `pmdp_invalidate`), khugepaged's
//! `collapse_huge_page` (`pmdp_collapse_flush` + `tlb_remove_table_sync_one`) and
//! `move_page_tables` (`move_huge_pmd`, `move_normal_pmd`, `move_ptes`), each with the TLB flush
//! the kernel (6.18, `mm/huge_memory.c`, `mm/khugepaged.c`, `mm/mremap.c`) does, through
//! `flush_tlb_mm_range` (x86 `flush_tlb_range` passes `freed_tables = true`, so lazy CPUs in
//! `mm_cpumask` are interrupted too).
//!
//! Representation (a stated approximation): a PMD-mapped THP is a PMD slot marked in
//! [`ThpState::pmds`] whose PTE table holds 512 present PTEs of 4 KiB folios. The marker is what
//! the kernel's PMD-level paths key on (split or not, `move_huge_pmd` or not); data, LRU and
//! rmap stay at 4 KiB granularity, so reclaim and migration of a THP are not modelled as one
//! folio (a marker whose 512 PTEs stop being present is dropped after the op, without a flush).
//! Deferred splits (the shrinker) and THP swap-out are not modelled.
//!
//! This module must never change a PTE outside the PMD a kernel THP path touches, nor flush
//! anything the kernel path it names does not flush.

use std::collections::BTreeMap;

use super::state::*;
use super::{Loc, Model, ModelError};
use crate::op::{madv, AccessKind, FaultClass, MmId, Op, OpOutcome};
use crate::policy::Policy;
use crate::profile::ThpMode;

/// What a marked PMD maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThpPmd {
    /// An anonymous THP (`do_huge_pmd_anonymous_page`, a collapse).
    Folio,
    /// The huge zero page (read fault with `use_zero_page`).
    HugeZero,
}

/// THP state of the model.
#[derive(Default)]
pub(crate) struct ThpState {
    /// PMD-mapped THPs by (mm, 2 MiB-aligned address).
    pub pmds: BTreeMap<(u32, u64), ThpPmd>,
    /// khugepaged's scan cursor per mm (`khugepaged_scan.address`): the next collapse looks
    /// from here, in address order, wrapping around.
    pub cursor: BTreeMap<u32, u64>,
}

/// Round `a` down to its PMD.
#[inline]
fn haddr(a: u64) -> u64 {
    a & !(PMD_SIZE - 1)
}

/// The page-aligned `[s, e)` of an op's range, or `None` when the op will reject it.
fn range_of(addr: u64, len: u64) -> Option<(u64, u64)> {
    let end = addr.checked_add(len)?.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
    let s = addr & !(PAGE_SIZE - 1);
    (len > 0 && s < end && end <= TASK_SIZE).then_some((s, end))
}

impl<P: Policy> Model<P> {
    /// `thp_vma_allowable_order(vma, PMD_ORDER)` for anonymous memory: the mode (`always`:
    /// unless VM_NOHUGEPAGE; `madvise`: only VM_HUGEPAGE) on a private anonymous VMA.
    pub(crate) fn thp_vma_allowed(&self, v: &Vma) -> bool {
        if v.kind != VmaKind::Anon || v.shared || v.file.is_some() {
            return false;
        }
        match self.profile.thp {
            ThpMode::Never => false,
            ThpMode::Madvise => v.hugepage,
            ThpMode::Always => !v.nohugepage,
        }
    }

    /// The PTE table under `mm`'s PMD of `h`, if the PMD points to one.
    fn thp_pte_table(&self, mm: u32, h: u64) -> Option<u32> {
        let t = *self.mms.get(&mm)?.pgd.get(&pud_index(h))?;
        match self.pmd_tables.get(t as usize)?.entries.get(pmd_index(h))? {
            PmdEntry::Table(p) => Some(*p),
            _ => None,
        }
    }

    /// Whether the PMD of `h` is still what its marker says: 512 present PTEs (all the zero
    /// page for a huge zero PMD, none of it otherwise).
    fn thp_intact(&self, mm: u32, h: u64, kind: ThpPmd) -> bool {
        let Some(p) = self.thp_pte_table(mm, h) else {
            return false;
        };
        let Some(tb) = self.pte_tables.get(p as usize) else {
            return false;
        };
        tb.ptes.iter().all(|e| match e {
            Pte::Present(x) => (x.folio == ZERO_SLOT) == (kind == ThpPmd::HugeZero),
            _ => false,
        })
    }

    /// Drop the markers of `mm` (exit, exec) or those no longer intact (`None`: all mms).
    fn thp_revalidate(&mut self, mm: Option<u32>, drop_all_of_mm: bool) {
        let keys: Vec<((u32, u64), ThpPmd)> = match mm {
            Some(m) => self
                .thp
                .pmds
                .range((m, 0)..(m.saturating_add(1), 0))
                .map(|(k, v)| (*k, *v))
                .collect(),
            None => self.thp.pmds.iter().map(|(k, v)| (*k, *v)).collect(),
        };
        for ((m, h), kind) in keys {
            if drop_all_of_mm || !self.mms.contains_key(&m) || !self.thp_intact(m, h, kind) {
                self.thp.pmds.remove(&(m, h));
            }
        }
        if drop_all_of_mm {
            if let Some(m) = mm {
                self.thp.cursor.remove(&m);
            }
        }
    }

    /// `__split_huge_pmd` of the PMD containing `va`, if it is THP-mapped: `pmdp_invalidate`
    /// (anon) or `pmdp_huge_clear_flush` (huge zero page), both `flush_pmd_tlb_range` of the
    /// whole PMD, then the 512 PTEs (already the model's representation).
    pub(crate) fn thp_split_pmd(&mut self, cpu: u32, mm: u32, va: u64) {
        let h = haddr(va);
        if self.thp.pmds.remove(&(mm, h)).is_none() {
            return;
        }
        self.c.thp_split_pmd += 1;
        self.flush_tlb_mm_range(cpu, mm, h, h + PMD_SIZE, true);
    }

    /// Split the THPs a range operation cuts (`vma_adjust_trans_huge` at a VMA split,
    /// `zap_pmd_range` / `change_pmd_range` on a partly covered PMD) and forget those it zaps
    /// whole (`zap_huge_pmd`: the flush is the operation's own `mmu_gather` flush).
    fn thp_cut_range(&mut self, cpu: u32, mm: u32, s: u64, e: u64, zaps: bool) {
        if s % PMD_SIZE != 0 {
            self.thp_split_pmd(cpu, mm, s);
        }
        if e % PMD_SIZE != 0 {
            self.thp_split_pmd(cpu, mm, e);
        }
        if zaps {
            let inside: Vec<(u32, u64)> = self
                .thp
                .pmds
                .range((mm, s)..(mm, e))
                .map(|(k, _)| *k)
                .filter(|(_, h)| *h + PMD_SIZE <= e)
                .collect();
            for k in inside {
                self.thp.pmds.remove(&k);
            }
        }
    }

    /// Before an op: the PMD splits its range causes (the op then runs on 4 KiB PTEs).
    pub(crate) fn thp_before_op(&mut self, op: &Op) {
        if self.thp.pmds.is_empty() {
            return;
        }
        let (cpu, mm) = match *op {
            Op::Munmap { cpu, mm, .. }
            | Op::Mmap { cpu, mm, .. }
            | Op::Mprotect { cpu, mm, .. }
            | Op::Madvise { cpu, mm, .. }
            | Op::Mremap { cpu, mm, .. } => (cpu, mm.0),
            _ => return,
        };
        if self.check_cpu(cpu).is_err() || !self.mms.contains_key(&mm) {
            return;
        }
        match *op {
            Op::Munmap { addr, len, .. } | Op::Mmap { addr, len, .. } => {
                if let Some((s, e)) = range_of(addr, len) {
                    self.thp_cut_range(cpu, mm, s, e, true);
                }
            }
            Op::Mprotect {
                addr, len, prot, ..
            } => {
                let Some((s, e)) = range_of(addr, len) else {
                    return;
                };
                // mprotect_fixup splits a VMA only when its flags change.
                for b in [s, e] {
                    if b % PMD_SIZE != 0 && self.find_vma(mm, b).is_some_and(|v| v.prot != prot) {
                        self.thp_split_pmd(cpu, mm, b);
                    }
                }
            }
            Op::Madvise {
                addr, len, advice, ..
            } => {
                let Some((s, e)) = range_of(addr, len) else {
                    return;
                };
                match advice {
                    // zap_pmd_range: a partly covered THP is split, a whole one zapped.
                    madv::DONTNEED => self.thp_cut_range(cpu, mm, s, e, true),
                    // madvise_free_huge_pmd / madvise_cold_or_pageout_pte_range split the folio
                    // of a partly covered THP; a whole one stays PMD-mapped (MADV_FREE) or is
                    // reclaimed as a folio (not modelled: it is split here).
                    madv::FREE => self.thp_cut_range(cpu, mm, s, e, false),
                    madv::COLD | madv::PAGEOUT => self.thp_cut_range(cpu, mm, s, e, true),
                    // VMA flag changes split the VMA (vma_adjust_trans_huge).
                    madv::DONTFORK | madv::DOFORK | madv::WIPEONFORK => {
                        self.thp_cut_range(cpu, mm, s, e, false)
                    }
                    madv::HUGEPAGE | madv::NOHUGEPAGE => {
                        let huge = advice == madv::HUGEPAGE;
                        for b in [s, e] {
                            let changes = self.find_vma(mm, b).is_some_and(|v| {
                                if huge {
                                    !v.hugepage
                                } else {
                                    !v.nohugepage
                                }
                            });
                            if changes && b % PMD_SIZE != 0 {
                                self.thp_split_pmd(cpu, mm, b);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Op::Mremap {
                old_addr,
                old_len,
                new_addr,
                new_len,
                ..
            } => {
                let (Some((os, oe)), Some((ns, ne))) =
                    (range_of(old_addr, old_len), range_of(new_addr, new_len))
                else {
                    return;
                };
                if ns == os {
                    if ne < oe {
                        self.thp_cut_range(cpu, mm, ne, oe, true);
                    }
                } else {
                    // MREMAP_FIXED unmaps the destination first; a shrinking move unmaps the
                    // tail of the source. The moved part splits in move_page_tables.
                    self.thp_cut_range(cpu, mm, ns, ne, true);
                    let moved = (oe - os).min(ne - ns);
                    if oe > os + moved {
                        self.thp_cut_range(cpu, mm, os + moved, oe, true);
                    }
                }
            }
            _ => {}
        }
    }

    /// After an op: markers follow forks, die with their mm, and are dropped where other
    /// paths (reclaim, migration, zaps) left the PMD without its 512 PTEs.
    pub(crate) fn thp_after_op(&mut self, op: &Op) {
        if self.thp.pmds.is_empty() {
            return;
        }
        match *op {
            Op::Fork { parent, child, .. } => {
                // copy_huge_pmd: the child maps the same THP with a PMD (write-protected in both).
                let theirs: Vec<((u32, u64), ThpPmd)> = self
                    .thp
                    .pmds
                    .range((parent.0, 0)..(parent.0.saturating_add(1), 0))
                    .map(|(k, v)| (*k, *v))
                    .collect();
                for ((_, h), kind) in theirs {
                    if self.thp_intact(child.0, h, kind) {
                        self.thp.pmds.insert((child.0, h), kind);
                    }
                }
            }
            Op::Exit { mm, .. } => self.thp_revalidate(Some(mm.0), true),
            Op::Exec { old: Some(o), .. } => self.thp_revalidate(Some(o.0), true),
            Op::Munmap { mm, .. }
            | Op::Mmap { mm, .. }
            | Op::Mprotect { mm, .. }
            | Op::Madvise { mm, .. }
            | Op::Mremap { mm, .. }
            | Op::Brk { mm, .. } => self.thp_revalidate(Some(mm.0), false),
            Op::Migrate { .. } | Op::Reclaim { .. } | Op::ReclaimMemcg { .. } => {
                self.thp_revalidate(None, false)
            }
            _ => {}
        }
    }

    /// madvise(MADV_HUGEPAGE / MADV_NOHUGEPAGE): set VM_HUGEPAGE / VM_NOHUGEPAGE on the VMAs
    /// of `[s, e)` (`hugepage_madvise`), splitting them at the range ends.
    pub(crate) fn thp_madvise(&mut self, mm: u32, s: u64, e: u64, advice: u32) {
        self.split_at(mm, s);
        self.split_at(mm, e);
        if let Some(m) = self.mms.get_mut(&mm) {
            for (_, v) in m.vmas.range_mut(s..e) {
                if advice == madv::HUGEPAGE {
                    v.hugepage = true;
                    v.nohugepage = false;
                } else {
                    v.hugepage = false;
                    v.nohugepage = true;
                }
            }
        }
    }

    /// Map 512 fresh anonymous 4 KiB folios (or keep present ones, `keep`) over the PMD of `h`:
    /// a THP's pages. PTEs are writable if the VMA is, dirty and young (`maybe_pmd_mkwrite(
    /// pmd_mkdirty(folio_mk_pmd(..)))`; x86 `vm_page_prot` has `_PAGE_ACCESSED`).
    fn thp_populate(&mut self, mm: u32, v: &Vma, h: u64) {
        let write = v.writable();
        for i in 0..PTRS as u64 {
            let va = h + i * PAGE_SIZE;
            let Some(loc) = self.locate_alloc(mm, va) else {
                continue;
            };
            match self.get(loc) {
                Pte::Present(mut p) if p.folio != ZERO_SLOT => {
                    p.write = write;
                    p.dirty = true;
                    p.young = true;
                    self.set(loc, Pte::Present(p));
                    if let Some(f) = self.folios.get_mut(p.folio as usize) {
                        f.pae = true;
                    }
                }
                _ => {
                    let slot = self.new_anon_folio(0);
                    self.install(loc, mm, va, slot, write, true);
                }
            }
        }
    }

    /// The THP fault (`__handle_mm_fault` → `create_huge_pmd` / `wp_huge_pmd`), or `None`
    /// for the 4 KiB path. Only on a PMD with nothing below it (`pmd_none`) whose 2 MiB lie
    /// inside a THP-allowed VMA (`thp_vma_suitable_order`); the allocation is taken to
    /// succeed (the capture cannot show a fallback).
    pub(crate) fn thp_fault(
        &mut self,
        cpu: u32,
        mm: u32,
        v: &Vma,
        va: u64,
        kind: AccessKind,
    ) -> Option<FaultClass> {
        if self.profile.thp == ThpMode::Never {
            return None;
        }
        let h = haddr(va);
        if h < v.start || h + PMD_SIZE > v.end || !self.thp_vma_allowed(v) {
            return None;
        }
        let write = kind == AccessKind::Write;
        match self.thp.pmds.get(&(mm, h)).copied() {
            Some(ThpPmd::HugeZero) if write => {
                // do_huge_zero_wp_pmd: a THP replaces the huge zero page
                // (pmdp_huge_clear_flush → flush_pmd_tlb_range).
                self.flush_tlb_mm_range(cpu, mm, h, h + PMD_SIZE, true);
                for i in 0..PTRS as u64 {
                    if let Some(loc) = self.locate(mm, h + i * PAGE_SIZE) {
                        self.set(loc, Pte::None);
                    }
                }
                self.thp_populate(mm, v, h);
                self.thp.pmds.insert((mm, h), ThpPmd::Folio);
                self.c.thp_fault_alloc += 1;
                self.c.flt_anon_new += 1;
                return Some(FaultClass::AnonNew);
            }
            Some(_) => return None,
            None => {}
        }
        if self.locate(mm, va).is_some() {
            return None;
        }
        if !write && self.profile.thp_use_zero_page {
            // do_huge_pmd_anonymous_page read: the huge zero page, read-only.
            for i in 0..PTRS as u64 {
                if let Some(loc) = self.locate_alloc(mm, h + i * PAGE_SIZE) {
                    self.set(
                        loc,
                        Pte::Present(PresentPte {
                            folio: ZERO_SLOT,
                            write: false,
                            young: true,
                            dirty: false,
                            soft_dirty: true,
                            mig_a: false,
                            mig_d: false,
                        }),
                    );
                }
            }
            self.thp.pmds.insert((mm, h), ThpPmd::HugeZero);
            self.c.flt_anon_zero += 1;
            return Some(FaultClass::AnonZero);
        }
        self.thp_populate(mm, v, h);
        self.thp.pmds.insert((mm, h), ThpPmd::Folio);
        self.c.thp_fault_alloc += 1;
        self.c.flt_anon_new += 1;
        Some(FaultClass::AnonNew)
    }

    /// Whether khugepaged could collapse the PMD of `h` (`hpage_collapse_scan_pmd` +
    /// `hugepage_vma_revalidate`, simplified): a PTE table of present or empty PTEs, at least
    /// one mapping an exclusive anonymous folio, none swapped or migrating.
    fn thp_collapsible(&self, mm: u32, h: u64) -> bool {
        let Some(p) = self.thp_pte_table(mm, h) else {
            return false;
        };
        let Some(tb) = self.pte_tables.get(p as usize) else {
            return false;
        };
        let mut mapped = 0;
        for e in tb.ptes.iter() {
            match e {
                Pte::None => {}
                Pte::Present(x) if x.folio == ZERO_SLOT => {}
                Pte::Present(x) => match self.folios.get(x.folio as usize) {
                    Some(f) if f.is_anon() && f.mapcount == 1 && f.order == 0 => mapped += 1,
                    _ => return false,
                },
                _ => return false,
            }
        }
        mapped > 0
    }

    /// The PMD khugepaged collapses next in `mm`: the first collapsible one at or after the
    /// scan cursor, in address order, wrapping around.
    fn thp_collapse_target(&self, mm: u32) -> Option<(u64, Vma)> {
        let m = self.mms.get(&mm)?;
        let cursor = self.thp.cursor.get(&mm).copied().unwrap_or(0);
        let mut first: Option<(u64, Vma)> = None;
        for v in m.vmas.values() {
            if !self.thp_vma_allowed(v) {
                continue;
            }
            let mut h = (v.start + PMD_SIZE - 1) & !(PMD_SIZE - 1);
            while h + PMD_SIZE <= v.end {
                if !self.thp.pmds.contains_key(&(mm, h)) && self.thp_collapsible(mm, h) {
                    if h >= cursor {
                        return Some((h, *v));
                    }
                    if first.is_none() {
                        first = Some((h, *v));
                    }
                }
                h += PMD_SIZE;
            }
        }
        first
    }

    /// khugepaged's `collapse_huge_page` on `mm`, which the capture says reached
    /// `pmdp_collapse_flush` (`collapsed`: it also succeeded; otherwise the isolation or copy
    /// failed and the PTE table was put back). `pmdp_collapse_flush` is `flush_tlb_range` of
    /// the PMD, then `tlb_remove_table_sync_one` sends the `tlb_remove_table_smp_sync` IPI to
    /// every other online CPU (`smp_call_function`). The trace does not say which PMD: the
    /// model takes the next collapsible one from its scan cursor (`Ignored` when there is
    /// none: the flush and the IPI are still counted, the kernel did them).
    pub(crate) fn op_thp_collapse(
        &mut self,
        cpu: u32,
        mm: MmId,
        collapsed: bool,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        let target = self.thp_collapse_target(mm.0);
        let h = target.map_or_else(
            || self.thp.cursor.get(&mm.0).copied().unwrap_or(0),
            |(h, _)| h,
        );
        self.flush_tlb_mm_range(cpu, mm.0, h, h + PMD_SIZE, true);
        if self.profile.rcu_table_free {
            let t = u64::from(self.profile.nr_cpus.saturating_sub(1));
            self.c.ipi_sends_table_sync += 1;
            self.c.ipi_targets_table_sync += t;
            self.c.ipi_targets += t;
        }
        let Some((h, v)) = target else {
            return Ok(OpOutcome::Ignored);
        };
        if collapsed {
            // __collapse_huge_page_copy: the zero page and empty PTEs become zeroed subpages;
            // the present folios keep their identity and data (the kernel copies them into one
            // new folio: a stated approximation).
            for i in 0..PTRS as u64 {
                if let Some(loc) = self.locate(mm.0, h + i * PAGE_SIZE) {
                    if matches!(self.get(loc), Pte::Present(p) if p.folio == ZERO_SLOT) {
                        self.set(loc, Pte::None);
                    }
                }
            }
            self.thp_populate(mm.0, &v, h);
            self.thp.pmds.insert((mm.0, h), ThpPmd::Folio);
            self.c.thp_collapse_alloc += 1;
        }
        self.thp.cursor.insert(mm.0, h + PMD_SIZE);
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    /// Move the PTE at `loc` (old address `va`) to `nva`, fixing the folio's rmap.
    fn move_one_pte(&mut self, mm: u32, va: u64, loc: Loc, nva: u64) -> bool {
        let pte = self.get(loc);
        if pte == Pte::None {
            return false;
        }
        self.set(loc, Pte::None);
        if let Some(nl) = self.locate_alloc(mm, nva) {
            self.set(nl, pte);
        }
        if let Pte::Present(p) = pte {
            if let Some(f) = self.folios.get_mut(p.folio as usize) {
                if let Some(e) = f.rmap.iter_mut().find(|e| **e == (mm, va)) {
                    e.1 = nva;
                }
            }
            return true;
        }
        false
    }

    /// `mm/mremap.c:move_page_tables` of `[os, os + len)` to `ns` (VMAs already moved), per
    /// extent: `move_huge_pmd` for a whole THP (one `flush_pmd_tlb_range`), a split then
    /// `move_ptes` for part of one, `move_normal_pmd` for a whole PTE table when both sides
    /// are PMD-aligned (the table is relinked; one `flush_tlb_range` of the PMD), else
    /// `move_ptes` (one `flush_tlb_range` of the extent if it moved a present PTE). The
    /// PUD-level moves do not arise in the model (no 1 GiB-aligned moves of whole tables).
    pub(crate) fn move_page_tables(&mut self, cpu: u32, mm: u32, os: u64, ns: u64, len: u64) {
        let end = os + len;
        let mut old = os;
        let mut new = ns;
        while old < end {
            let extent = (haddr(old) + PMD_SIZE - old)
                .min(end - old)
                .min(haddr(new) + PMD_SIZE - new);
            let step = extent;
            let Some(p) = self.thp_pte_table(mm, old) else {
                // get_old_pmd: nothing mapped here (hugetlb leaves never reach this path).
                old += step;
                new += step;
                continue;
            };
            let marked = self.thp.pmds.contains_key(&(mm, haddr(old)));
            if marked && extent == PMD_SIZE && self.locate(mm, new).is_none() {
                // move_huge_pmd: the PMD moves, flushed because it was present.
                let kind = self.thp.pmds.remove(&(mm, old)).unwrap_or(ThpPmd::Folio);
                self.relink_pte_table(mm, old, new, p);
                self.thp.pmds.insert((mm, new), kind);
                self.flush_tlb_mm_range(cpu, mm, old, old + PMD_SIZE, true);
            } else if !marked && extent == PMD_SIZE && self.locate(mm, new).is_none() {
                // move_normal_pmd: flushes the old PMD range unconditionally.
                self.relink_pte_table(mm, old, new, p);
                self.flush_tlb_mm_range(cpu, mm, old, old + PMD_SIZE, true);
            } else {
                if marked {
                    self.thp_split_pmd(cpu, mm, old);
                }
                // move_ptes.
                let mut any_present = false;
                let mut va = old;
                while va < old + extent {
                    if let Some(loc) = self.locate(mm, va) {
                        any_present |= self.move_one_pte(mm, va, loc, va - old + new);
                    }
                    va += PAGE_SIZE;
                }
                if any_present {
                    self.flush_tlb_mm_range(cpu, mm, old, old + extent, true);
                }
            }
            old += step;
            new += step;
        }
    }

    /// Point the PMD of `new` at PTE table `p`, clear the PMD of `old`, and fix the rmap of
    /// every present PTE in it.
    fn relink_pte_table(&mut self, mm: u32, old: u64, new: u64, p: u32) {
        let Some(t_old) = self
            .mms
            .get(&mm)
            .and_then(|m| m.pgd.get(&pud_index(old)).copied())
        else {
            return;
        };
        // mm's private tables change shape: only mm's I4 checks scan (`tlbnotes.rs`).
        self.tlbnotes.dirty_mm(mm);
        if let Some(x) = self
            .pmd_tables
            .get_mut_noted(t_old as usize)
            .and_then(|x| x.entries.get_mut(pmd_index(old)))
        {
            *x = PmdEntry::None;
        }
        let t_new = match self
            .mms
            .get(&mm)
            .and_then(|m| m.pgd.get(&pud_index(new)).copied())
        {
            Some(t) => t,
            None => {
                let t = self.alloc_pmd_table(false);
                if let Some(m) = self.mms.get_mut(&mm) {
                    m.pgd.insert(pud_index(new), t);
                    m.nr_pmds += 1;
                }
                t
            }
        };
        if let Some(x) = self
            .pmd_tables
            .get_mut_noted(t_new as usize)
            .and_then(|x| x.entries.get_mut(pmd_index(new)))
        {
            *x = PmdEntry::Table(p);
        }
        // The table's PTEs now translate `new` (the I4 notes name them by it; `tlbnotes.rs`).
        if let Some(tb) = self.pte_tables.get_mut_noted(p as usize) {
            tb.owner = Some((mm, haddr(new)));
        }
        for i in 0..PTRS {
            let pte = self
                .pte_tables
                .get(p as usize)
                .and_then(|tb| tb.ptes.get(i).copied());
            if let Some(Pte::Present(x)) = pte {
                let va = haddr(old) + (i as u64) * PAGE_SIZE;
                let nva = haddr(new) + (i as u64) * PAGE_SIZE;
                if let Some(f) = self.folios.get_mut(x.folio as usize) {
                    if let Some(e) = f.rmap.iter_mut().find(|e| **e == (mm, va)) {
                        e.1 = nva;
                    }
                }
            }
        }
    }
}
