//! Address-space operations: mmap, munmap, mremap, brk, mprotect, madvise, fork, exec, exit,
//! and the zap/mmu_gather machinery they share (mm-semantics B.2, B.4-B.7;
//! `mm/memory.c:zap_pte_range`, `mm/mmu_gather.c:tlb_flush_mmu`, `kernel/fork.c:dup_mmap`,
//! `mm/memory.c:copy_present_ptes`, `mm/mprotect.c:change_pte_range`, `mm/madvise.c`).
//! It must never free a page before the flush that covers it unless the policy says so (that is
//! the I1 negative control), and never leave a stale TLB entry at the end of an op.

use super::lru;
use super::state::*;
use super::{Loc, Model, ModelError};
use crate::op::{madv, map, FileKind, FileRef, MmId, OpOutcome};
use crate::policy::{Policy, UnshareGather};

/// `struct mmu_gather` (include/asm-generic/tlb.h), reduced to what the model needs.
pub(crate) struct Gather {
    pub mm: u32,
    pub cpu: u32,
    pub start: u64,
    pub end: u64,
    pub fullmm: bool,
    pub freed_tables: bool,
    pub pages: Vec<u32>,
    pub pte_tables: Vec<u32>,
    pub pmd_tables: Vec<u32>,
    pub unshare: UnshareGather,
}

impl Gather {
    pub fn new(mm: u32, cpu: u32, fullmm: bool) -> Gather {
        Gather {
            mm,
            cpu,
            start: u64::MAX,
            end: 0,
            fullmm,
            freed_tables: false,
            pages: Vec::new(),
            pte_tables: Vec::new(),
            pmd_tables: Vec::new(),
            unshare: UnshareGather::default(),
        }
    }
    /// `tlb_remove_tlb_entry` / `tlb_flush_p?d_range`: extend the range to flush.
    pub fn extend(&mut self, s: u64, e: u64) {
        self.start = self.start.min(s);
        self.end = self.end.max(e);
    }
}

fn page_range(addr: u64, len: u64) -> Result<(u64, u64), ModelError> {
    let end = addr.checked_add(len).ok_or(ModelError::BadRange {
        addr,
        len,
        why: "range overflows",
    })?;
    let s = addr & !(PAGE_SIZE - 1);
    let e = end
        .checked_add(PAGE_SIZE - 1)
        .map(|x| x & !(PAGE_SIZE - 1))
        .unwrap_or(u64::MAX);
    if len == 0 || e > TASK_SIZE || s >= e {
        return Err(ModelError::BadRange {
            addr,
            len,
            why: "empty or above TASK_SIZE",
        });
    }
    Ok((s, e))
}

impl<P: Policy> Model<P> {
    // ----- mmu_gather -----

    /// `tlb_flush_mmu_tlbonly`: flush the gathered range (fullmm: everything).
    pub(crate) fn tlb_flush_tlbonly(&mut self, g: &mut Gather) {
        let any = g.start < g.end || g.freed_tables || g.unshare.unshared_tables;
        if !any {
            return;
        }
        let (s, e) = if g.fullmm || g.start >= g.end {
            (0, TASK_SIZE)
        } else {
            (g.start, g.end)
        };
        self.flush_tlb_mm_range(g.cpu, g.mm, s, e, g.freed_tables);
        g.start = u64::MAX;
        g.end = 0;
        g.unshare.unshared_tables = false;
    }

    fn release_pages(&mut self, g: &mut Gather) {
        let pages = std::mem::take(&mut g.pages);
        for &slot in &pages {
            // free_pages_and_swap_cache → free_swap_cache: an unmapped folio whose swap
            // entries are all gone leaves the swap cache.
            if self
                .folios
                .get(slot as usize)
                .is_some_and(|f| f.live && f.mapcount == 0 && f.swapcache.is_some())
            {
                self.folio_free_swap_if_unused(slot);
            }
            let zero = match self.folios.get_mut(slot as usize) {
                Some(f) if f.live => {
                    f.refcount = f.refcount.saturating_sub(1);
                    f.refcount == 0
                }
                _ => false,
            };
            if zero {
                self.free_folio(slot);
            }
        }
        g.pages = pages;
        g.pages.clear();
    }

    /// `tlb_flush_mmu`: flush, then release the gathered pages and tables (reference order;
    /// `Policy::free_pages_before_flush` inverts it for the I1 negative control).
    pub(crate) fn tlb_flush_mmu(&mut self, g: &mut Gather) {
        if self.policy.free_pages_before_flush() {
            self.release_pages(g);
            self.tlb_flush_tlbonly(g);
        } else {
            self.tlb_flush_tlbonly(g);
            self.release_pages(g);
        }
        // Gathered tables were unlinked by `free_pgtables`, which told the I4 notes what that
        // changed (`tlbnotes.rs`); freeing them changes no translation.
        for t in g.pte_tables.drain(..) {
            if let Some(tb) = self.pte_tables.get_mut_noted(t as usize) {
                tb.live = false;
            }
            self.free_pte.push(t);
            self.c.tables_freed += 1;
        }
        for t in g.pmd_tables.drain(..) {
            if let Some(tb) = self.pmd_tables.get_mut_noted(t as usize) {
                tb.live = false;
            }
            self.free_pmd.push(t);
            self.c.tables_freed += 1;
        }
    }

    /// `tlb_finish_mmu`.
    pub(crate) fn tlb_finish_mmu(&mut self, g: &mut Gather) {
        self.tlb_flush_mmu(g);
        if g.unshare.fully_unshared_tables || g.unshare.unsynced_full > 0 {
            // 8ce720d5bd91's VM_WARN_ON_ONCE: an exclusive-again table was never synced.
            self.report_unsynced(g);
        }
    }

    /// Non-empty PTE locations in `[s, e)` of `mm`, skipping absent tables (hugetlb leaves
    /// included).
    pub(crate) fn collect_ptes(&self, mm: u32, s: u64, e: u64, out: &mut Vec<(u64, Loc)>) {
        out.clear();
        let Some(m) = self.mms.get(&mm) else { return };
        let mut va = s;
        while va < e {
            let Some(&t) = m.pgd.get(&pud_index(va)) else {
                // Jump straight to the next populated PUD slot (the pgd holds a handful), so
                // whole-address-space walks (snapshot, full check) do not probe 2^17 slots.
                let cur = pud_index(va);
                match m.pgd.keys().copied().filter(|&k| k > cur).min() {
                    Some(k) => va = k << PUD_SHIFT,
                    None => break,
                }
                continue;
            };
            let Some(pt) = self.pmd_tables.get(t as usize) else {
                break;
            };
            let next_pmd = ((va >> PMD_SHIFT) + 1) << PMD_SHIFT;
            match pt.entries.get(pmd_index(va)).copied().unwrap_or_default() {
                PmdEntry::None => va = next_pmd,
                PmdEntry::Leaf(p) => {
                    if p != Pte::None {
                        out.push((va & !(PMD_SIZE - 1), Loc::Huge(t, pmd_index(va))));
                    }
                    va = next_pmd;
                }
                PmdEntry::Table(p) => {
                    let stop = next_pmd.min(e);
                    if let Some(tb) = self.pte_tables.get(p as usize) {
                        while va < stop {
                            let i = pte_index(va);
                            if tb.ptes.get(i).is_some_and(|x| *x != Pte::None) {
                                out.push((va, Loc::Pte(p, i)));
                            }
                            va += PAGE_SIZE;
                        }
                    }
                    va = stop;
                }
            }
        }
    }

    /// Drop one swap-entry reference (`free_swap_and_cache`).
    pub(crate) fn swap_put(&mut self, s: u32) {
        let Some(x) = self.swap.get_mut(s as usize) else {
            return;
        };
        x.count = x.count.saturating_sub(1);
        if x.count > 0 {
            return;
        }
        let cached = x.cached.take();
        x.live = false;
        self.free_swap.push(s);
        if let Some(slot) = cached {
            let zero = match self.folios.get_mut(slot as usize) {
                Some(f) if f.live => {
                    f.swapcache = None;
                    f.refcount = f.refcount.saturating_sub(1);
                    if f.mapcount > 0 {
                        // Still mapped: the folio is now the only copy.
                        f.dirty = true;
                    }
                    f.refcount == 0
                }
                _ => false,
            };
            if zero {
                self.free_folio(slot);
            }
        }
    }

    /// `zap_pte_range` over `[s, e)` of one non-hugetlb VMA (B.5).
    pub(crate) fn zap_range(&mut self, g: &mut Gather, s: u64, e: u64) {
        let mm = g.mm;
        self.flush_batched_pending(g.cpu, mm);
        let mut locs = std::mem::take(&mut self.scratch_locs);
        self.collect_ptes(mm, s, e, &mut locs);
        let mut force_flush = false;
        let mut cur_table = None;
        for &(va, loc) in &locs {
            let table = match loc {
                Loc::Pte(t, _) | Loc::Huge(t, _) => t,
            };
            if cur_table != Some(table) {
                // PTL dropped between tables: flush first if a dirty shared PTE was zapped.
                if force_flush {
                    self.tlb_flush_mmu(g);
                    force_flush = false;
                }
                cur_table = Some(table);
            }
            let pte = self.get(loc);
            self.set(loc, Pte::None);
            match pte {
                Pte::Present(p) => {
                    g.extend(va, va + PAGE_SIZE);
                    if p.folio == ZERO_SLOT {
                        continue;
                    }
                    let anon = self
                        .folios
                        .get(p.folio as usize)
                        .is_some_and(|f| f.is_anon());
                    if !anon {
                        if let Some(f) = self.folios.get_mut(p.folio as usize) {
                            if p.dirty {
                                // folio_mark_dirty + force_flush (S3 fix, zap_present_folio_ptes).
                                f.dirty = true;
                                force_flush = true;
                            }
                            if p.young {
                                f.referenced = true;
                            }
                        }
                    }
                    self.remove_rmap(p.folio, mm, va, false);
                    g.pages.push(p.folio);
                }
                Pte::Swap { slot, .. } => {
                    self.swap_put(slot);
                    if let Some(m) = self.mms.get_mut(&mm) {
                        m.rss[RSS_SWAP] -= 1;
                    }
                }
                Pte::Migration { .. } | Pte::None => {}
            }
        }
        self.scratch_locs = locs;
        if force_flush {
            self.tlb_flush_mmu(g);
        }
    }

    fn vma_overlaps(&self, mm: u32, s: u64, e: u64) -> bool {
        self.mms.get(&mm).is_some_and(|m| {
            m.vmas
                .range(..e)
                .next_back()
                .is_some_and(|(_, v)| v.end > s)
        })
    }

    /// `free_pgtables`: free PTE tables and (private) PMD tables in `[s, e)` no VMA covers.
    pub(crate) fn free_pgtables(&mut self, g: &mut Gather, s: u64, e: u64) {
        let mm = g.mm;
        let first = pud_index(s);
        let last = pud_index(e.saturating_sub(1));
        // Visit only populated PUD slots (exit covers the whole address space).
        let mut puds: Vec<(u64, u32)> = match self.mms.get(&mm) {
            Some(m) => m
                .pgd
                .iter()
                .filter(|(k, _)| **k >= first && **k <= last)
                .map(|(k, t)| (*k, *t))
                .collect(),
            None => return,
        };
        puds.sort_unstable();
        for (pud, t) in puds {
            let base = pud << PUD_SHIFT;
            let shared = self.pmd_tables.get(t as usize).is_some_and(|x| x.pts > 0);
            if !shared {
                let lo = s.max(base);
                let hi = e.min(base + PUD_SIZE);
                let mut a = lo & !(PMD_SIZE - 1);
                while a < hi {
                    let i = pmd_index(a);
                    let entry = self
                        .pmd_tables
                        .get(t as usize)
                        .and_then(|x| x.entries.get(i).copied());
                    let removable = match entry {
                        Some(PmdEntry::Table(_)) | Some(PmdEntry::Leaf(Pte::None)) => {
                            !self.vma_overlaps(mm, a, a + PMD_SIZE)
                        }
                        _ => false,
                    };
                    if removable {
                        if let Some(PmdEntry::Table(p)) = entry {
                            g.pte_tables.push(p);
                            g.freed_tables = true;
                            g.extend(a, a + PMD_SIZE);
                        }
                        // Unlinking an empty PTE table changes no translation (its PTEs were
                        // cleared through `Model::set`, which noted them); a non-empty one makes
                        // mm's I4 checks scan (`tlbnotes.rs`).
                        if let Some(PmdEntry::Table(p)) = entry {
                            if !self.pte_table_empty(p) {
                                self.tlbnotes.dirty_mm(mm);
                            }
                        }
                        if let Some(x) = self
                            .pmd_tables
                            .get_mut_noted(t as usize)
                            .and_then(|x| x.entries.get_mut(i))
                        {
                            *x = PmdEntry::None;
                        }
                    }
                    a += PMD_SIZE;
                }
            }
            if !self.vma_overlaps(mm, base, base + PUD_SIZE) {
                if let Some(m) = self.mms.get_mut(&mm) {
                    m.pgd.remove(&pud);
                    m.nr_pmds -= 1;
                }

                if !shared {
                    g.pmd_tables.push(t);
                    g.freed_tables = true;
                } else if let Some(x) = self.pmd_tables.get_mut(t as usize) {
                    // Should not happen (shared tables are unshared first); keep counts sane.
                    x.pts = x.pts.saturating_sub(1);
                }
            }
        }
    }

    // ----- VMA tree -----

    pub(crate) fn split_at(&mut self, mm: u32, addr: u64) {
        let Some(m) = self.mms.get_mut(&mm) else {
            return;
        };
        let Some((&start, v)) = m.vmas.range(..addr).next_back() else {
            return;
        };
        if v.end <= addr || start == addr {
            return;
        }
        let mut lo = *v;
        let mut hi = *v;
        lo.end = addr;
        hi.start = addr;
        hi.pgoff = v.pgoff.wrapping_add((addr - v.start) >> PAGE_SHIFT);
        m.vmas.insert(start, lo);
        m.vmas.insert(addr, hi);
        if let Some(f) = hi.file {
            self.note_mapper(f, mm, 1);
        }
    }

    /// Split at `s` and `e`, remove and return the VMAs inside `[s, e)`.
    fn detach_vmas(&mut self, mm: u32, s: u64, e: u64) -> Vec<Vma> {
        self.split_at(mm, s);
        self.split_at(mm, e);
        let Some(m) = self.mms.get_mut(&mm) else {
            return Vec::new();
        };
        let keys: Vec<u64> = m.vmas.range(s..e).map(|(k, _)| *k).collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = m.vmas.remove(&k) {
                out.push(v);
            }
        }
        for v in &out {
            if let Some(f) = v.file {
                self.note_mapper(f, mm, -1);
            }
        }
        out
    }

    /// Unmap `[s, e)` (munmap, MAP_FIXED replacement, mremap shrink).
    pub(crate) fn do_munmap(&mut self, cpu: u32, mm: u32, s: u64, e: u64) {
        let vmas = self.detach_vmas(mm, s, e);
        if vmas.is_empty() {
            return;
        }
        let mut g = Gather::new(mm, cpu, false);
        for v in &vmas {
            if v.kind == VmaKind::Hugetlb {
                self.unmap_hugepage_range(&mut g, v, v.start, v.end);
            } else {
                self.zap_range(&mut g, v.start, v.end);
            }
        }
        let lo = vmas.first().map_or(s, |v| v.start);
        let hi = vmas.last().map_or(e, |v| v.end);
        self.free_pgtables(&mut g, lo, hi);
        self.tlb_finish_mmu(&mut g);
    }

    pub(crate) fn op_munmap(
        &mut self,
        cpu: u32,
        mm: MmId,
        addr: u64,
        len: u64,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        let (s, e) = page_range(addr, len)?;
        self.do_munmap(cpu, mm.0, s, e);
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    fn register_file(&mut self, fr: FileRef) -> Result<u64, ModelError> {
        match self.files.get(&fr.id.0) {
            Some(f) if f.kind != fr.kind => Err(ModelError::FileKindMismatch(fr.id)),
            Some(_) => Ok(fr.id.0),
            None => {
                self.files.insert(
                    fr.id.0,
                    FileState {
                        kind: fr.kind,
                        pagecache: Default::default(),
                        disk: Default::default(),
                        mappers: Vec::new(),
                    },
                );
                Ok(fr.id.0)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn op_mmap(
        &mut self,
        cpu: u32,
        mm: MmId,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        file: Option<FileRef>,
        pgoff: u64,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        let hugetlb =
            flags & map::HUGETLB != 0 || file.is_some_and(|f| f.kind == FileKind::Hugetlbfs);
        let (s, mut e) = page_range(addr, len)?;
        if hugetlb {
            if s % PMD_SIZE != 0 {
                return Err(ModelError::BadRange {
                    addr,
                    len,
                    why: "hugetlb mapping not 2 MiB aligned",
                });
            }
            e = e
                .checked_add(PMD_SIZE - 1)
                .map_or(u64::MAX, |x| x & !(PMD_SIZE - 1));
            if e > TASK_SIZE {
                return Err(ModelError::BadRange {
                    addr,
                    len,
                    why: "above TASK_SIZE",
                });
            }
        }
        let shared = flags & 0x3 == map::SHARED || flags & 0x3 == map::SHARED_VALIDATE;
        let file_id = match file {
            Some(fr) => {
                let kind = if hugetlb {
                    FileKind::Hugetlbfs
                } else {
                    fr.kind
                };
                Some(self.register_file(FileRef { id: fr.id, kind })?)
            }
            None if shared || hugetlb => {
                // MAP_ANONYMOUS|MAP_SHARED (shmem_zero_setup) or MAP_HUGETLB: an internal inode.
                let id = self.next_anon_file;
                self.next_anon_file += 1;
                let kind = if hugetlb {
                    FileKind::Hugetlbfs
                } else {
                    FileKind::Shmem
                };
                Some(self.register_file(FileRef {
                    id: crate::op::FileId(id),
                    kind,
                })?)
            }
            None => None,
        };
        self.do_munmap(cpu, mm.0, s, e);
        let kind = if hugetlb {
            VmaKind::Hugetlb
        } else if file_id.is_some() {
            VmaKind::File
        } else {
            VmaKind::Anon
        };
        let v = Vma {
            start: s,
            end: e,
            prot,
            shared,
            kind,
            file: file_id,
            pgoff: if file.is_some() { pgoff } else { 0 },
            locked: flags & map::LOCKED != 0,
            dontcopy: false,
            wipeonfork: false,
            heap: false,
            hugepage: false,
            nohugepage: false,
        };
        if let Some(m) = self.mms.get_mut(&mm.0) {
            m.vmas.insert(s, v);
        }
        if let Some(f) = file_id {
            self.note_mapper(f, mm.0, 1);
        }
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    pub(crate) fn op_brk(&mut self, cpu: u32, mm: MmId, brk: u64) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        if brk >= TASK_SIZE {
            return Err(ModelError::BadRange {
                addr: brk,
                len: 0,
                why: "brk above TASK_SIZE",
            });
        }
        let up = |x: u64| (x + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let Some(m) = self.mms.get_mut(&mm.0) else {
            return Err(ModelError::UnknownMm(mm));
        };
        let Some((start, cur)) = m.brk else {
            m.brk = Some((brk, brk));
            return Ok(OpOutcome::Done);
        };
        if brk < start {
            return Ok(OpOutcome::Ignored);
        }
        let (old_end, new_end) = (up(cur), up(brk));
        m.brk = Some((start, brk));
        if new_end > old_end {
            // Extend the heap VMA in place when it ends at the old break (vma_expand).
            let extend = m
                .vmas
                .range(..old_end)
                .next_back()
                .filter(|(_, v)| v.end == old_end && v.heap)
                .map(|(k, _)| *k);
            let overl = m
                .vmas
                .range(..new_end)
                .next_back()
                .is_some_and(|(_, v)| v.end > old_end);
            if overl {
                return Ok(OpOutcome::Ignored);
            }
            match extend.and_then(|k| m.vmas.get_mut(&k)) {
                Some(v) => v.end = new_end,
                None => {
                    m.vmas.insert(
                        old_end,
                        Vma {
                            start: old_end,
                            end: new_end,
                            prot: crate::op::prot::READ | crate::op::prot::WRITE,
                            shared: false,
                            kind: VmaKind::Anon,
                            file: None,
                            pgoff: 0,
                            locked: false,
                            dontcopy: false,
                            wipeonfork: false,
                            heap: true,
                            hugepage: false,
                            nohugepage: false,
                        },
                    );
                }
            }
        } else if new_end < old_end {
            self.do_munmap(cpu, mm.0, new_end, old_end);
        }
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    pub(crate) fn op_mremap(
        &mut self,
        cpu: u32,
        mm: MmId,
        old_addr: u64,
        old_len: u64,
        new_addr: u64,
        new_len: u64,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        let (os, oe) = page_range(old_addr, old_len)?;
        let (ns, ne) = page_range(new_addr, new_len)?;
        let Some(v) = self.find_vma(mm.0, os) else {
            return Ok(OpOutcome::Ignored);
        };
        if v.kind == VmaKind::Hugetlb {
            return Err(ModelError::Unsupported("mremap of a hugetlb mapping"));
        }
        if oe > v.end {
            return Ok(OpOutcome::Ignored);
        }
        if ns == os {
            if ne < oe {
                self.do_munmap(cpu, mm.0, ne, oe);
            } else if ne > oe {
                if self.vma_overlaps(mm.0, oe, ne) {
                    return Ok(OpOutcome::Ignored);
                }
                self.split_at(mm.0, os);
                self.split_at(mm.0, oe);
                if let Some(m) = self.mms.get_mut(&mm.0) {
                    if let Some(x) = m.vmas.get_mut(&os) {
                        x.end = ne;
                    }
                }
            }
            self.check_tlb_coherent(Some(mm.0));
            return Ok(OpOutcome::Done);
        }
        // Move: the destination is cleared first (MREMAP_FIXED semantics), then PTEs move
        // (`move_page_tables`, flushed per moved PMD or extent), then the rest of the old range goes.
        let moved = (oe - os).min(ne - ns);
        if ns < oe && os < ne {
            return Err(ModelError::BadRange {
                addr: new_addr,
                len: new_len,
                why: "mremap destination overlaps source",
            });
        }
        self.do_munmap(cpu, mm.0, ns, ne);
        self.split_at(mm.0, os);
        self.split_at(mm.0, os + moved);
        let Some(src) = self.mms.get_mut(&mm.0).and_then(|m| m.vmas.remove(&os)) else {
            return Ok(OpOutcome::Ignored);
        };
        let mut dst = src;
        dst.start = ns;
        dst.end = ns + moved;
        if let Some(m) = self.mms.get_mut(&mm.0) {
            m.vmas.insert(ns, dst);
        }
        // move_page_tables flushes per moved PMD or PTE extent (thp.rs); unmapping the old
        // range afterwards (unmap_source_vma) frees the tables left there.
        self.move_page_tables(cpu, mm.0, os, ns, moved);
        let mut g = Gather::new(mm.0, cpu, false);
        if ne - ns > moved {
            if let Some(m) = self.mms.get_mut(&mm.0) {
                if let Some(x) = m.vmas.get_mut(&ns) {
                    x.end = ne;
                }
            }
        }
        self.free_pgtables(&mut g, os, os + moved);
        self.tlb_finish_mmu(&mut g);
        if oe > os + moved {
            self.do_munmap(cpu, mm.0, os + moved, oe);
        }
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    pub(crate) fn op_mprotect(
        &mut self,
        cpu: u32,
        mm: MmId,
        addr: u64,
        len: u64,
        prot: u32,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        let (s, e) = page_range(addr, len)?;
        self.split_at(mm.0, s);
        self.split_at(mm.0, e);
        let vmas: Vec<Vma> = match self.mms.get_mut(&mm.0) {
            Some(m) => m
                .vmas
                .range_mut(s..e)
                .map(|(_, v)| {
                    v.prot = prot;
                    *v
                })
                .collect(),
            None => Vec::new(),
        };
        let mut g = Gather::new(mm.0, cpu, false);
        for v in &vmas {
            if v.kind == VmaKind::Hugetlb {
                self.hugetlb_change_protection(&mut g, v);
                continue;
            }
            let mut locs = std::mem::take(&mut self.scratch_locs);
            self.collect_ptes(mm.0, v.start, v.end, &mut locs);
            for &(va, loc) in &locs {
                let Pte::Present(mut p) = self.get(loc) else {
                    continue;
                };
                let old = p;
                let wants_write = v.writable();
                if !wants_write || prot == 0 {
                    p.write = false;
                } else if !p.write && p.folio != ZERO_SLOT {
                    // can_change_pte_writable: private needs PAE, shared needs the PTE dirty.
                    let ok = match self.folios.get(p.folio as usize) {
                        Some(f) if !v.shared => f.is_anon() && f.pae,
                        Some(_) => p.dirty,
                        None => false,
                    };
                    if ok {
                        p.write = true;
                    }
                }
                // x86 pte_needs_flush (`pte_flags_need_flush`): _PAGE_RW is in
                // `flush_on_change`, so making a present PTE writable flushes too; PROT_NONE
                // clears _PAGE_PRESENT (`flush_on_clear`).
                if old.write != p.write || prot == 0 {
                    g.extend(va, va + PAGE_SIZE);
                }
                if p != old {
                    self.set(loc, Pte::Present(p));
                }
            }
            self.scratch_locs = locs;
        }
        self.tlb_finish_mmu(&mut g);
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    pub(crate) fn op_madvise(
        &mut self,
        cpu: u32,
        mm: MmId,
        addr: u64,
        len: u64,
        advice: u32,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        let (s, e) = page_range(addr, len)?;
        match advice {
            madv::DONTNEED => {
                let vmas = self.vmas_in(mm.0, s, e);
                let mut g = Gather::new(mm.0, cpu, false);
                for v in &vmas {
                    let (a, b) = (s.max(v.start), e.min(v.end));
                    if v.kind == VmaKind::Hugetlb {
                        let (a, b) = (a & !(PMD_SIZE - 1), (b + PMD_SIZE - 1) & !(PMD_SIZE - 1));
                        self.unmap_hugepage_range(&mut g, v, a, b);
                    } else {
                        self.zap_range(&mut g, a, b);
                    }
                }
                self.tlb_finish_mmu(&mut g);
            }
            madv::FREE => self.madvise_free(cpu, mm.0, s, e),
            madv::COLD | madv::PAGEOUT => {
                self.madvise_cold(cpu, mm.0, s, e, advice == madv::PAGEOUT)
            }
            madv::HUGEPAGE | madv::NOHUGEPAGE => self.thp_madvise(mm.0, s, e, advice),
            madv::DONTFORK | madv::DOFORK | madv::WIPEONFORK => {
                self.split_at(mm.0, s);
                self.split_at(mm.0, e);
                if let Some(m) = self.mms.get_mut(&mm.0) {
                    for (_, v) in m.vmas.range_mut(s..e) {
                        match advice {
                            madv::DONTFORK => v.dontcopy = true,
                            madv::DOFORK => v.dontcopy = false,
                            _ => {
                                if v.kind == VmaKind::Anon {
                                    v.wipeonfork = true;
                                }
                            }
                        }
                    }
                }
            }
            _ => return Ok(OpOutcome::Ignored),
        }
        self.check_tlb_coherent(Some(mm.0));
        Ok(OpOutcome::Done)
    }

    fn vmas_in(&self, mm: u32, s: u64, e: u64) -> Vec<Vma> {
        let Some(m) = self.mms.get(&mm) else {
            return Vec::new();
        };
        let mut out: Vec<Vma> = Vec::new();
        if let Some((_, v)) = m.vmas.range(..s).next_back() {
            if v.end > s {
                out.push(*v);
            }
        }
        out.extend(m.vmas.range(s..e).map(|(_, v)| *v));
        out
    }

    /// `madvise_free_pte_range` (B.7).
    fn madvise_free(&mut self, cpu: u32, mm: u32, s: u64, e: u64) {
        let vmas = self.vmas_in(mm, s, e);
        let mut g = Gather::new(mm, cpu, false);
        self.flush_batched_pending(cpu, mm);
        for v in &vmas {
            if v.kind != VmaKind::Anon {
                continue;
            }
            let mut locs = std::mem::take(&mut self.scratch_locs);
            self.collect_ptes(mm, s.max(v.start), e.min(v.end), &mut locs);
            for &(va, loc) in &locs {
                match self.get(loc) {
                    Pte::Swap { slot, .. } => {
                        self.set(loc, Pte::None);
                        self.swap_put(slot);
                        if let Some(m) = self.mms.get_mut(&mm) {
                            m.rss[RSS_SWAP] -= 1;
                        }
                    }
                    Pte::Present(mut p) if p.folio != ZERO_SLOT => {
                        let shared = self
                            .folios
                            .get(p.folio as usize)
                            .is_none_or(|f| f.mapcount != 1 || !f.is_anon());
                        if shared {
                            continue;
                        }
                        self.folio_free_swap_if_unused(p.folio);
                        let slot = p.folio;
                        if let Some(f) = self.folios.get_mut(slot as usize) {
                            f.dirty = false;
                        }
                        if p.young || p.dirty {
                            p.young = false;
                            p.dirty = false;
                            self.set(loc, Pte::Present(p));
                            g.extend(va, va + PAGE_SIZE);
                        }
                        // folio_mark_lazyfree: !swapbacked, onto the file LRU type.
                        if let Some(f) = self.folios.get_mut(slot as usize) {
                            if f.swapbacked && f.swapcache.is_none() {
                                let was = f.on_lru;
                                lru::del_folio(&mut self.lru, f);
                                f.swapbacked = false;
                                f.referenced = false;
                                if was {
                                    lru::add_folio(&mut self.lru, f, slot, false);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            self.scratch_locs = locs;
        }
        self.tlb_finish_mmu(&mut g);
    }

    /// `madvise_cold_or_pageout_pte_range` (B.7).
    fn madvise_cold(&mut self, cpu: u32, mm: u32, s: u64, e: u64, pageout: bool) {
        let vmas = self.vmas_in(mm, s, e);
        let mut g = Gather::new(mm, cpu, false);
        let mut victims: Vec<u32> = Vec::new();
        for v in &vmas {
            if v.kind == VmaKind::Hugetlb || v.locked {
                continue;
            }
            let mut locs = std::mem::take(&mut self.scratch_locs);
            self.collect_ptes(mm, s.max(v.start), e.min(v.end), &mut locs);
            for &(va, loc) in &locs {
                let Pte::Present(mut p) = self.get(loc) else {
                    continue;
                };
                if p.folio == ZERO_SLOT {
                    continue;
                }
                let ok = self
                    .folios
                    .get(p.folio as usize)
                    .is_some_and(|f| f.mapcount == 1 && f.live);
                if !ok {
                    continue;
                }
                self.c.a_tc_other += 1;
                if p.young {
                    p.young = false;
                    self.set(loc, Pte::Present(p));
                    self.c.a_cleared_other += 1;
                    self.c.a_bit_clears += 1;
                    g.extend(va, va + PAGE_SIZE);
                }
                let slot = p.folio;
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.referenced = false;
                    if pageout {
                        victims.push(slot);
                    } else if f.on_lru {
                        // folio_deactivate → lru_gen_add_folio(non-active).
                        lru::del_folio(&mut self.lru, f);
                        lru::add_folio(&mut self.lru, f, slot, false);
                    }
                }
            }
            self.scratch_locs = locs;
        }
        self.tlb_finish_mmu(&mut g);
        if pageout && !victims.is_empty() {
            // reclaim_pages → shrink_folio_list(ignore_references = true).
            self.shrink_folio_list(cpu, &victims, true);
        }
    }

    // ----- fork / exec / exit -----

    fn new_mm(&mut self, id: MmId) -> Result<(), ModelError> {
        if self.mms.contains_key(&id.0) {
            return Err(ModelError::MmExists(id));
        }
        self.mms.insert(
            id.0,
            Mm {
                id,
                vmas: Default::default(),
                pgd: Default::default(),
                cpumask: 0,
                rss: [0; 3],
                nr_pmds: 0,
                brk: None,
                used: false,
                // init_new_context: next_trim_cpumask = jiffies + HZ.
                next_trim_ns: self.now_ns.saturating_add(NSEC_PER_SEC),
                memcg: 0,
            },
        );
        Ok(())
    }

    /// Whether any of `locs` maps an anon folio, a swap entry or a migration entry of an anon
    /// folio (a stand-in for the VMA having an `anon_vma`).
    fn maps_anon(&self, locs: &[(u64, Loc)]) -> bool {
        locs.iter().any(|&(_, loc)| match self.get(loc) {
            Pte::Present(p) => {
                p.folio != ZERO_SLOT
                    && self
                        .folios
                        .get(p.folio as usize)
                        .is_some_and(|f| f.is_anon())
            }
            Pte::Swap { .. } => true,
            Pte::Migration { folio, .. } => {
                self.folios.get(folio as usize).is_some_and(|f| f.is_anon())
            }
            Pte::None => false,
        })
    }

    /// `dup_mmap` + `copy_page_range` (B.4).
    pub(crate) fn op_fork(
        &mut self,
        cpu: u32,
        parent: MmId,
        child: MmId,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(parent)?;
        self.new_mm(child)?;
        self.c.forks += 1;
        let (p, c) = (parent.0, child.0);
        let brk = self.mms.get(&p).and_then(|m| m.brk);
        let memcg = self.mms.get(&p).map_or(0, |m| m.memcg);
        let vmas: Vec<Vma> = self
            .mms
            .get(&p)
            .map(|m| m.vmas.values().copied().collect())
            .unwrap_or_default();
        if let Some(m) = self.mms.get_mut(&c) {
            m.brk = brk;
            // The child task starts in its parent's cgroup.
            m.memcg = memcg;
        }
        // A reclaim batch for the parent must not cover PTEs we are about to copy.
        self.flush_batched_pending(cpu, p);
        for v in &vmas {
            if v.dontcopy {
                continue;
            }
            if let Some(m) = self.mms.get_mut(&c) {
                m.vmas.insert(v.start, *v);
            }
            if let Some(f) = v.file {
                self.note_mapper(f, c, 1);
            }
            if v.wipeonfork {
                continue;
            }
            if v.kind == VmaKind::Hugetlb {
                self.copy_hugetlb_page_range(p, c, v);
                continue;
            }
            if v.shared {
                // vma_needs_copy: shared file mappings fault in lazily in the child.
                continue;
            }
            let mut locs = std::mem::take(&mut self.scratch_locs);
            self.collect_ptes(p, v.start, v.end, &mut locs);
            if v.file.is_some() && !self.maps_anon(&locs) {
                // vma_needs_copy: a private file mapping without anon pages (no anon_vma) is
                // not copied either; the child faults its file pages in. The model has no
                // anon_vma, so "maps an anon folio or swap entry now" stands in for it.
                self.scratch_locs = locs;
                continue;
            }
            for &(va, loc) in &locs {
                let pte = self.get(loc);
                match pte {
                    Pte::Present(mut pp) => {
                        let anon_pinned = pp.folio != ZERO_SLOT
                            && self
                                .folios
                                .get(pp.folio as usize)
                                .is_some_and(|f| f.is_anon() && f.pae && f.pincount > 0);
                        let Some(cl) = self.locate_alloc(c, va) else {
                            continue;
                        };
                        if anon_pinned {
                            // folio_try_dup_anon_rmap_ptes failed: copy_present_page (I2).
                            let content =
                                self.folios.get(pp.folio as usize).map_or(0, |f| f.content);
                            let slot = self.alloc_folio(FolioKind::Anon, 0, content);
                            if let Some(f) = self.folios.get_mut(slot as usize) {
                                f.pae = true;
                                lru::add_new_folio(&mut self.lru, f, slot);
                            }
                            self.install(cl, c, va, slot, v.writable(), true);
                            self.c.fork_pinned_copies += 1;
                            continue;
                        }
                        if pp.folio != ZERO_SLOT {
                            if let Some(f) = self.folios.get_mut(pp.folio as usize) {
                                if f.is_anon() {
                                    f.pae = false;
                                }
                            }
                        }
                        if v.is_cow() && pp.write {
                            pp.write = false;
                            self.set(loc, Pte::Present(pp));
                        }
                        let mut cp = pp;
                        cp.young = false;
                        cp.mig_a = false;
                        cp.mig_d = false;
                        self.set(cl, Pte::Present(cp));
                        self.add_rmap(pp.folio, c, va);
                    }
                    Pte::Swap {
                        slot, soft_dirty, ..
                    } => {
                        if let Some(x) = self.swap.get_mut(slot as usize) {
                            x.count += 1;
                        }
                        let sw = Pte::Swap {
                            slot,
                            exclusive: false,
                            soft_dirty,
                        };
                        self.set(loc, sw);
                        if let Some(cl) = self.locate_alloc(c, va) {
                            self.set(cl, sw);
                        }
                        if let Some(m) = self.mms.get_mut(&c) {
                            m.rss[RSS_SWAP] += 1;
                        }
                    }
                    _ => {}
                }
            }
            self.scratch_locs = locs;
        }
        // dup_mmap tail: flush_tlb_mm(oldmm) = full flush with freed_tables (x86).
        self.flush_tlb_mm_range(cpu, p, 0, TASK_SIZE, true);
        self.check_tlb_coherent(Some(p));
        Ok(OpOutcome::Done)
    }

    /// `exit_mmap`: fullmm gather, unmap everything, free all tables.
    pub(crate) fn exit_mmap(&mut self, cpu: u32, mm: u32) {
        let vmas: Vec<Vma> = self
            .mms
            .get(&mm)
            .map(|m| m.vmas.values().copied().collect())
            .unwrap_or_default();
        let mut g = Gather::new(mm, cpu, true);
        self.flush_batched_pending(cpu, mm);
        for v in &vmas {
            if v.kind == VmaKind::Hugetlb {
                self.unmap_hugepage_range(&mut g, v, v.start, v.end);
            } else {
                self.zap_range(&mut g, v.start, v.end);
            }
            if let Some(f) = v.file {
                self.note_mapper(f, mm, -1);
            }
        }
        if let Some(m) = self.mms.get_mut(&mm) {
            m.vmas.clear();
        }
        self.free_pgtables(&mut g, 0, TASK_SIZE);
        self.tlb_finish_mmu(&mut g);
        self.cpus_forget_mm(mm);
        self.mms.remove(&mm);
        // `cpus_forget_mm` dropped every TLB entry of mm: nothing of it can be stale.
        self.tlbnotes.forget_mm(mm);
    }

    pub(crate) fn op_exit(&mut self, cpu: u32, mm: MmId) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        self.c.exits += 1;
        self.exit_mmap(cpu, mm.0);
        Ok(OpOutcome::Done)
    }

    pub(crate) fn op_exec(
        &mut self,
        cpu: u32,
        old: Option<MmId>,
        new: MmId,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        if let Some(o) = old {
            self.check_mm(o)?;
        }
        self.new_mm(new)?;
        self.c.execs += 1;
        // The task keeps its cgroup across exec.
        let memcg = old.and_then(|o| self.mms.get(&o.0)).map_or(0, |m| m.memcg);
        if let Some(m) = self.mms.get_mut(&new.0) {
            m.memcg = memcg;
        }
        // exec_mmap: activate_mm(new) first, then mmput(old) → exit_mmap.
        self.switch_to(cpu, Some(new.0));
        if let Some(o) = old {
            self.exit_mmap(cpu, o.0);
        }
        Ok(OpOutcome::Done)
    }
}
