//! hugetlb faults, fork copy, unmap and mprotect with PMD table sharing and unsharing
//! (mm-semantics B.10; `mm/hugetlb.c:huge_pmd_share`, `huge_pmd_unshare`,
//! `copy_hugetlb_page_range`, `__unmap_hugepage_range`, `hugetlb_change_protection`). The
//! table-sync decision is the policy's (`Policy::pmd_unshare` / `unshare_flush`); this module
//! must never send or skip a table sync on its own.

use super::state::*;
use super::vma::Gather;
use super::Model;
use crate::invariant::Invariant;
use crate::op::{AccessKind, FaultClass};
use crate::policy::{Policy, UnshareCtx};

impl<P: Policy> Model<P> {
    /// `want_pmd_share`: MAP_SHARED hugetlb VMA covering the whole 1 GiB PUD range of `va`.
    fn want_pmd_share(v: &Vma, va: u64) -> bool {
        let base = va & !(PUD_SIZE - 1);
        v.kind == VmaKind::Hugetlb && v.shared && v.start <= base && base + PUD_SIZE <= v.end
    }

    /// `huge_pmd_share`: find another mapper's PMD table for the same file range
    /// (`page_table_shareable`: same prot and sharing, same PUD-relative alignment).
    fn huge_pmd_share(&mut self, mm: u32, v: &Vma, va: u64) -> Option<u32> {
        let base = va & !(PUD_SIZE - 1);
        let file = v.file?;
        let file_idx = v.file_index(base);
        let mappers: Vec<u32> = self
            .files
            .get(&file)?
            .mappers
            .iter()
            .map(|(m, _)| *m)
            .collect();
        for m2 in mappers {
            if m2 == mm {
                continue;
            }
            let Some(mm2) = self.mms.get(&m2) else {
                continue;
            };
            for sv in mm2.vmas.values() {
                if sv.file != Some(file) || !sv.shared || sv.prot != v.prot || file_idx < sv.pgoff {
                    continue;
                }
                let Some(saddr) = (file_idx - sv.pgoff)
                    .checked_mul(PAGE_SIZE)
                    .and_then(|off| sv.start.checked_add(off))
                else {
                    continue;
                };
                if saddr % PUD_SIZE != 0
                    || saddr < sv.start
                    || saddr.saturating_add(PUD_SIZE) > sv.end
                {
                    continue;
                }
                if let Some(&t) = mm2.pgd.get(&pud_index(saddr)) {
                    if self
                        .pmd_tables
                        .get(t as usize)
                        .is_some_and(|x| x.hugetlb && x.live)
                    {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    /// `huge_pte_alloc`: the PMD table for `va`, shared when possible.
    fn huge_pte_alloc(&mut self, mm: u32, v: &Vma, va: u64) -> Option<u32> {
        let pud = pud_index(va);
        if let Some(&t) = self.mms.get(&mm)?.pgd.get(&pud) {
            return Some(t);
        }
        let shared = if Self::want_pmd_share(v, va) {
            self.huge_pmd_share(mm, v, va)
        } else {
            None
        };
        let t = match shared {
            Some(t) => {
                if let Some(x) = self.pmd_tables.get_mut(t as usize) {
                    x.pts += 1;
                }
                self.c.pmd_shares += 1;
                t
            }
            None => self.alloc_pmd_table(true),
        };
        let m = self.mms.get_mut(&mm)?;
        m.pgd.insert(pud, t);
        m.nr_pmds += 1;
        Some(t)
    }

    /// `hugetlb_fault` → `hugetlb_no_page` / `hugetlb_wp`.
    pub(crate) fn hugetlb_fault(
        &mut self,
        cpu: u32,
        mm: u32,
        v: &Vma,
        va: u64,
        kind: AccessKind,
    ) -> Option<FaultClass> {
        let va2 = va & !(PMD_SIZE - 1);
        let t = self.huge_pte_alloc(mm, v, va2)?;
        let i = pmd_index(va2);
        let loc = super::Loc::Huge(t, i);
        let cur = match self.pmd_tables.get(t as usize)?.entries.get(i)? {
            PmdEntry::Leaf(p) => *p,
            _ => Pte::None,
        };
        let write = kind == AccessKind::Write;
        self.c.flt_hugetlb += 1;
        let file = v.file?;
        let hidx = v.file_index(va2) >> 9;
        match cur {
            Pte::Present(p) => {
                if write && !p.write {
                    // hugetlb_wp on a private mapping: reuse an exclusive anon folio, else copy.
                    let reuse = self
                        .folios
                        .get(p.folio as usize)
                        .is_some_and(|f| f.is_anon() && f.mapcount == 1);
                    if reuse {
                        let mut q = p;
                        q.write = true;
                        q.dirty = true;
                        self.set(loc, Pte::Present(q));
                        if let Some(f) = self.folios.get_mut(p.folio as usize) {
                            f.pae = true;
                        }
                    } else {
                        let content = self.folios.get(p.folio as usize).map_or(0, |f| f.content);
                        let slot = self.alloc_folio(FolioKind::Anon, 9, content);
                        if let Some(f) = self.folios.get_mut(slot as usize) {
                            f.pae = true;
                        }
                        self.set(loc, Pte::None);
                        self.flush_tlb_mm_range(cpu, mm, va2, va2 + PMD_SIZE, false);
                        let freed = self.remove_rmap(p.folio, mm, va2, true);
                        self.install(loc, mm, va2, slot, true, true);
                        if freed {
                            self.free_folio(p.folio);
                        }
                    }
                }
            }
            _ => {
                let pc = self.pagecache_get(file, hidx, 9)?;
                if v.shared {
                    let w = v.writable();
                    self.install(loc, mm, va2, pc, w, w);
                    if w {
                        if let Some(f) = self.folios.get_mut(pc as usize) {
                            f.dirty = true;
                        }
                    }
                } else if write {
                    let content = self.folios.get(pc as usize).map_or(0, |f| f.content);
                    let slot = self.alloc_folio(FolioKind::Anon, 9, content);
                    if let Some(f) = self.folios.get_mut(slot as usize) {
                        f.pae = true;
                    }
                    self.install(loc, mm, va2, slot, true, true);
                } else {
                    self.install(loc, mm, va2, pc, false, false);
                }
            }
        }
        Some(FaultClass::Hugetlb)
    }

    /// `copy_hugetlb_page_range`: share PMD tables where possible (skip the copy: entries are
    /// already visible), else copy huge PTEs with the COW write-protect rule.
    pub(crate) fn copy_hugetlb_page_range(&mut self, parent: u32, child: u32, v: &Vma) {
        let mut base = v.start & !(PUD_SIZE - 1);
        while base < v.end {
            let pud = pud_index(base);
            let ptab = self.mms.get(&parent).and_then(|m| m.pgd.get(&pud).copied());
            if let Some(pt) = ptab {
                let whole = Self::want_pmd_share(v, base);
                if whole {
                    if let Some(x) = self.pmd_tables.get_mut(pt as usize) {
                        x.pts += 1;
                    }
                    if let Some(m) = self.mms.get_mut(&child) {
                        m.pgd.insert(pud, pt);
                        m.nr_pmds += 1;
                    }
                    self.c.pmd_shares += 1;
                } else {
                    let lo = v.start.max(base);
                    let hi = v.end.min(base + PUD_SIZE);
                    let mut a = lo;
                    while a < hi {
                        let i = pmd_index(a);
                        let e = self
                            .pmd_tables
                            .get(pt as usize)
                            .and_then(|x| x.entries.get(i).copied());
                        if let Some(PmdEntry::Leaf(Pte::Present(mut p))) = e {
                            if let Some(ct) = self.huge_pte_alloc(child, v, a) {
                                if !v.shared && p.write {
                                    p.write = false;
                                    if let Some(x) = self
                                        .pmd_tables
                                        .get_mut(pt as usize)
                                        .and_then(|x| x.entries.get_mut(i))
                                    {
                                        *x = PmdEntry::Leaf(Pte::Present(p));
                                    }
                                }
                                if let Some(f) = self.folios.get_mut(p.folio as usize) {
                                    if f.is_anon() {
                                        f.pae = false;
                                    }
                                }
                                self.set(super::Loc::Huge(ct, i), Pte::Present(p));
                                self.add_rmap(p.folio, child, a);
                            }
                        }
                        a += PMD_SIZE;
                    }
                }
            }
            base += PUD_SIZE;
        }
    }

    /// `huge_pmd_unshare` (success path): drop this mm's PUD link to shared table `t`.
    fn huge_pmd_unshare(&mut self, g: &mut Gather, pud: u64, t: u32) {
        if let Some(m) = self.mms.get_mut(&g.mm) {
            m.pgd.remove(&pud);
            m.nr_pmds -= 1;
        }
        let after = match self.pmd_tables.get_mut(t as usize) {
            Some(x) => {
                x.pts = x.pts.saturating_sub(1);
                x.pts
            }
            None => 0,
        };
        self.c.pmd_unshares += 1;
        let base = pud << PUD_SHIFT;
        g.extend(base, base + PUD_SIZE);
        g.unshare.unshared_tables = true;
        if after == 0 {
            self.c.pmd_full_unshares += 1;
            g.unshare.unsynced_full += 1;
        }
        let mut ctx = UnshareCtx {
            pts_after: after,
            gather: &mut g.unshare,
            c: &mut self.c,
            rcu_table_free: self.profile.rcu_table_free,
            nr_cpus: self.profile.nr_cpus,
        };
        self.policy.pmd_unshare(&mut ctx);
    }

    /// `huge_pmd_unshare_flush` at the end of an unsharing range: the model flushes the TLB
    /// (`tlb_flush_mmu_tlbonly`), then the policy decides the table sync; then the i_mmap
    /// lock is released, which is the I3 checkpoint.
    fn unshare_flush(&mut self, g: &mut Gather, last_pts: u32) {
        self.tlb_flush_tlbonly(g);
        self.c.unshare_flush_batches += 1;
        let mut ctx = UnshareCtx {
            pts_after: last_pts,
            gather: &mut g.unshare,
            c: &mut self.c,
            rcu_table_free: self.profile.rcu_table_free,
            nr_cpus: self.profile.nr_cpus,
        };
        self.policy.unshare_flush(&mut ctx);
        self.report_unsynced(g);
    }

    /// I3 checkpoint: a table that became exclusive (pt_share_count → 0) while another mm
    /// still maps it must have been synced (all GUP-fast walkers out) before the lock drop.
    pub(crate) fn report_unsynced(&mut self, g: &mut Gather) {
        if g.unshare.unsynced_full > 0 {
            let n = g.unshare.unsynced_full;
            self.violate(
                Invariant::I3,
                format!(
                    "mm{}: {n} hugetlb PMD table(s) reached pt_share_count 0 without a table sync \
                     before the i_mmap lock was released",
                    g.mm
                ),
            );
        } else if g.unshare.fully_unshared_tables {
            self.violate(
                Invariant::I3,
                format!(
                    "mm{}: tlb_finish_mmu saw fully_unshared_tables still set",
                    g.mm
                ),
            );
        }
        g.unshare.unsynced_full = 0;
        g.unshare.fully_unshared_tables = false;
    }

    /// `__unmap_hugepage_range` over `[s, e)` of hugetlb VMA `v`.
    pub(crate) fn unmap_hugepage_range(&mut self, g: &mut Gather, v: &Vma, s: u64, e: u64) {
        let mm = g.mm;
        let mut unshared = false;
        let mut last_pts = 0;
        let mut base = s & !(PUD_SIZE - 1);
        while base < e {
            let pud = pud_index(base);
            let Some(t) = self.mms.get(&mm).and_then(|m| m.pgd.get(&pud).copied()) else {
                base += PUD_SIZE;
                continue;
            };
            let pts = self.pmd_tables.get(t as usize).map_or(0, |x| x.pts);
            if pts > 0 && v.shared {
                self.huge_pmd_unshare(g, pud, t);
                last_pts = pts - 1;
                unshared = true;
                base += PUD_SIZE;
                continue;
            }
            let lo = s.max(base);
            let hi = e.min(base + PUD_SIZE);
            let mut a = lo & !(PMD_SIZE - 1);
            while a < hi {
                let i = pmd_index(a);
                let ent = self
                    .pmd_tables
                    .get(t as usize)
                    .and_then(|x| x.entries.get(i).copied());
                if let Some(PmdEntry::Leaf(Pte::Present(p))) = ent {
                    self.set(super::Loc::Huge(t, i), Pte::None);
                    g.extend(a, a + PMD_SIZE);
                    if p.dirty {
                        if let Some(f) = self.folios.get_mut(p.folio as usize) {
                            f.dirty = true;
                        }
                    }
                    self.remove_rmap(p.folio, mm, a, false);
                    g.pages.push(p.folio);
                }
                a += PMD_SIZE;
            }
            base += PUD_SIZE;
        }
        if unshared {
            self.unshare_flush(g, last_pts);
        }
    }

    /// `hugetlb_change_protection`: unshare shared tables in the range, write-protect leaves.
    pub(crate) fn hugetlb_change_protection(&mut self, g: &mut Gather, v: &Vma) {
        let mm = g.mm;
        let mut unshared = false;
        let mut last_pts = 0;
        let mut base = v.start & !(PUD_SIZE - 1);
        while base < v.end {
            let pud = pud_index(base);
            let Some(t) = self.mms.get(&mm).and_then(|m| m.pgd.get(&pud).copied()) else {
                base += PUD_SIZE;
                continue;
            };
            let pts = self.pmd_tables.get(t as usize).map_or(0, |x| x.pts);
            if pts > 0 {
                self.huge_pmd_unshare(g, pud, t);
                last_pts = pts - 1;
                unshared = true;
                base += PUD_SIZE;
                continue;
            }
            let lo = v.start.max(base);
            let hi = v.end.min(base + PUD_SIZE);
            let mut a = lo & !(PMD_SIZE - 1);
            while a < hi {
                let i = pmd_index(a);
                if let Some(PmdEntry::Leaf(Pte::Present(mut p))) = self
                    .pmd_tables
                    .get(t as usize)
                    .and_then(|x| x.entries.get(i).copied())
                {
                    if p.write && (!v.writable() || v.prot == 0) {
                        p.write = false;
                        self.set(super::Loc::Huge(t, i), Pte::Present(p));
                        g.extend(a, a + PMD_SIZE);
                    } else if v.prot == 0 {
                        g.extend(a, a + PMD_SIZE);
                    }
                }
                a += PMD_SIZE;
            }
            base += PUD_SIZE;
        }
        if unshared {
            self.unshare_flush(g, last_pts);
        }
    }
}
