//! Page faults and accesses (mm-semantics B.3, `mm/memory.c:handle_mm_fault` →
//! `handle_pte_fault`), plus GUP pins and extra references (B.11, slow-path semantics). It must
//! never flush TLBs except where the kernel does (`wp_page_copy`'s `ptep_clear_flush`).
//!
//! Note (checked against x86 `pgtable_types.h`): x86's `vm_page_prot` carries `_PAGE_ACCESSED`,
//! so PTEs installed by faults start YOUNG; only PTEs whose A bit was cleared later (aging,
//! migration restore) cost a hardware A-set.

use super::lru;
use super::state::*;
use super::tlb::HwAccess;
use super::{Hold, Loc, Model, ModelError};
use crate::invariant::Invariant;
use crate::op::{AccessKind, FaultClass, FileKind, HoldId, MmId, OpOutcome};
use crate::policy::Policy;

impl<P: Policy> Model<P> {
    /// Make sure `cpu` runs `mm` (a fault or access implies the task is on the CPU).
    pub(crate) fn ensure_running(&mut self, cpu: u32, mm: u32) {
        let cur = self.cpus.get(cpu as usize).map(|c| (c.loaded, c.lazy));
        if cur != Some((Some(mm), false)) {
            self.switch_to(cpu, Some(mm));
        }
    }

    pub(crate) fn op_fault(
        &mut self,
        cpu: u32,
        mm: MmId,
        va: u64,
        kind: AccessKind,
        traced: bool,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        if va >= TASK_SIZE {
            return Err(ModelError::BadRange {
                addr: va,
                len: 0,
                why: "address above TASK_SIZE",
            });
        }
        let va = va & !(PAGE_SIZE - 1);
        self.ensure_running(cpu, mm.0);
        if !traced && self.hw_access(cpu, mm.0, va, kind) == HwAccess::Ok {
            return Ok(OpOutcome::Done);
        }
        for _ in 0..3 {
            self.c.faults += 1;
            let class = match self.handle_mm_fault(cpu, mm.0, va, kind) {
                None => {
                    self.c.segv += 1;
                    return Ok(OpOutcome::Segv);
                }
                Some(c) => c,
            };
            if self.hw_access(cpu, mm.0, va, kind) == HwAccess::Ok {
                return Ok(OpOutcome::Fault(class));
            }
        }
        // The retried access still faults: treat as SIGSEGV (e.g. PROT_NONE after races).
        self.c.segv += 1;
        Ok(OpOutcome::Segv)
    }

    /// Account a new mapping of `slot` at `va` (`folio_add_*_rmap_pte`).
    pub(crate) fn add_rmap(&mut self, slot: u32, mm: u32, va: u64) {
        if slot == ZERO_SLOT {
            return;
        }
        let (anon, hugetlb) = match self.folios.get_mut(slot as usize) {
            Some(f) => {
                f.mapcount += 1;
                f.refcount += 1;
                if f.order == 0 {
                    f.rmap.push((mm, va));
                }
                (f.is_anon(), f.order > 0)
            }
            None => return,
        };
        // hugetlb pages are accounted by hugetlb_count_add, not rss; shared tables make
        // per-mm counts meaningless here.
        if hugetlb {
            return;
        }
        if let Some(m) = self.mms.get_mut(&mm) {
            m.rss[if anon { RSS_ANON } else { RSS_FILE }] += 1;
        }
    }

    /// Account removal of a mapping (`folio_remove_rmap_pte` + the mapping's reference).
    /// Returns true if the folio's refcount reached zero (caller frees it, after the flush).
    pub(crate) fn remove_rmap(&mut self, slot: u32, mm: u32, va: u64, drop_ref: bool) -> bool {
        if slot == ZERO_SLOT {
            return false;
        }
        let (anon, zero, hugetlb) = match self.folios.get_mut(slot as usize) {
            Some(f) => {
                f.mapcount = f.mapcount.saturating_sub(1);
                if drop_ref {
                    f.refcount = f.refcount.saturating_sub(1);
                }
                if let Some(p) = f.rmap.iter().position(|e| *e == (mm, va)) {
                    f.rmap.swap_remove(p);
                }
                (f.is_anon(), f.refcount == 0, f.order > 0)
            }
            None => return false,
        };
        if hugetlb {
            return zero;
        }
        if let Some(m) = self.mms.get_mut(&mm) {
            m.rss[if anon { RSS_ANON } else { RSS_FILE }] -= 1;
        }
        zero
    }

    pub(crate) fn new_anon_folio(&mut self, content: u64) -> u32 {
        let slot = self.alloc_folio(FolioKind::Anon, 0, content);
        if let Some(f) = self.folios.get_mut(slot as usize) {
            f.pae = true;
            f.swapbacked = true;
            // Fault-time LRU add sets PG_active under MGLRU (lru_gen_in_fault): max_seq.
            lru::add_new_folio(&mut self.lru, f, slot);
        }
        slot
    }

    /// Find or read the pagecache folio of (`file`, `index`) (`filemap_fault`).
    pub(crate) fn pagecache_get(&mut self, file: u64, index: u64, order: u8) -> Option<u32> {
        let fs = self.files.get(&file)?;
        if let Some(&s) = fs.pagecache.get(&index) {
            return Some(s);
        }
        let disk = fs.disk.get(&index).copied();
        let kind = fs.kind;
        // A regular file's folio is charged to whoever added it to the page cache.
        let charge = (kind == FileKind::Regular).then(|| self.pagecache_memcg(file, index));
        let slot = match disk {
            Some(d) => {
                if d.evicted {
                    self.c.refaults += 1;
                }
                self.alloc_folio_with_id(FolioKind::File { file, index }, order, d.content, d.id)
            }
            None => self.alloc_folio(FolioKind::File { file, index }, order, 0),
        };
        let id = self.folios.get(slot as usize).map(|f| f.id)?;
        if let Some(f) = self.folios.get_mut(slot as usize) {
            f.in_pagecache = true;
            f.refcount = 1;
            f.swapbacked = kind == FileKind::Shmem;
            if kind != FileKind::Hugetlbfs {
                lru::add_new_folio_in(&mut self.lru, f, slot, charge);
            }
        }
        let fs = self.files.get_mut(&file)?;
        fs.pagecache.insert(index, slot);
        let e = fs.disk.entry(index).or_insert(DiskPage {
            content: 0,
            id,
            evicted: false,
        });
        e.evicted = false;
        Some(slot)
    }

    /// `handle_mm_fault`; `None` means SIGSEGV.
    pub(crate) fn handle_mm_fault(
        &mut self,
        cpu: u32,
        mm: u32,
        va: u64,
        kind: AccessKind,
    ) -> Option<FaultClass> {
        let vma = self.find_vma(mm, va)?;
        let allowed = match kind {
            AccessKind::Read => vma.readable() || vma.writable() || vma.executable(),
            AccessKind::Write => vma.writable(),
            AccessKind::Exec => vma.executable(),
        };
        if !allowed || vma.prot == 0 {
            return None;
        }
        if vma.kind == VmaKind::Hugetlb {
            return self.hugetlb_fault(cpu, mm, &vma, va, kind);
        }
        if let Some(class) = self.thp_fault(cpu, mm, &vma, va, kind) {
            return Some(class);
        }
        let loc = self.locate_alloc(mm, va)?;
        let write = kind == AccessKind::Write;
        match self.get(loc) {
            Pte::None => Some(self.fault_none(mm, &vma, va, loc, write)),
            Pte::Present(p) => {
                if write && !p.write {
                    self.softdirty_write_fault(mm, va, p.folio);
                    Some(self.do_wp_page(cpu, mm, &vma, va, loc, p))
                } else {
                    self.c.flt_spurious += 1;
                    Some(FaultClass::Spurious)
                }
            }
            Pte::Swap {
                slot, exclusive, ..
            } => Some(self.do_swap_page(mm, &vma, va, loc, slot, exclusive, write)),
            Pte::Migration { .. } => {
                self.c.flt_migration_wait += 1;
                Some(FaultClass::MigrationWait)
            }
        }
    }

    fn fault_none(&mut self, mm: u32, vma: &Vma, va: u64, loc: Loc, write: bool) -> FaultClass {
        match (vma.kind, vma.file) {
            (VmaKind::Anon, _) | (_, None) => {
                if !write {
                    // do_anonymous_page read: the zero page, read-only, special.
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
                    self.c.flt_anon_zero += 1;
                    return FaultClass::AnonZero;
                }
                let slot = self.new_anon_folio(0);
                self.install(loc, mm, va, slot, true, true);
                self.c.flt_anon_new += 1;
                FaultClass::AnonNew
            }
            (_, Some(file)) => {
                let index = vma.file_index(va);
                let Some(pc) = self.pagecache_get(file, index, 0) else {
                    return FaultClass::Spurious;
                };
                if write && !vma.shared {
                    // do_cow_fault: private copy of the pagecache page.
                    let content = self.folios.get(pc as usize).map_or(0, |f| f.content);
                    let slot = self.new_anon_folio(content);
                    self.install(loc, mm, va, slot, true, true);
                    self.c.flt_file_cow += 1;
                    return FaultClass::FileCow;
                }
                if write {
                    // do_shared_fault: page_mkwrite, writable + dirty, folio dirty.
                    self.install(loc, mm, va, pc, true, true);
                    if let Some(f) = self.folios.get_mut(pc as usize) {
                        f.dirty = true;
                    }
                    self.c.flt_file_write_shared += 1;
                    return FaultClass::FileWriteShared;
                }
                self.fault_around(mm, vma, va);
                // Shared shmem without writenotify maps writable (and clean) on read.
                let kind = self.files.get(&file).map(|f| f.kind);
                let w = vma.shared && vma.writable() && kind == Some(FileKind::Shmem);
                self.install(loc, mm, va, pc, w, false);
                self.c.flt_file_read += 1;
                FaultClass::FileRead
            }
        }
    }

    /// `do_fault_around`: map already-cached pages near `va` (same VMA, same PMD table).
    fn fault_around(&mut self, mm: u32, vma: &Vma, va: u64) {
        let n = u64::from(self.profile.fault_around_pages.max(1));
        let span = n * PAGE_SIZE;
        let start = (va & !(span - 1)).max(vma.start).max(va & !(PMD_SIZE - 1));
        let end = ((va & !(span - 1)) + span)
            .min(vma.end)
            .min((va & !(PMD_SIZE - 1)) + PMD_SIZE);
        let Some(file) = vma.file else { return };
        let mut a = start;
        while a < end {
            if a != va {
                let idx = vma.file_index(a);
                let cached = self
                    .files
                    .get(&file)
                    .and_then(|f| f.pagecache.get(&idx).copied());
                if let Some(pc) = cached {
                    if let Some(loc) = self.locate(mm, a) {
                        if self.get(loc) == Pte::None {
                            let kind = self.files.get(&file).map(|f| f.kind);
                            let w = vma.shared && vma.writable() && kind == Some(FileKind::Shmem);
                            self.install(loc, mm, a, pc, w, false);
                            self.c.fault_around_mapped += 1;
                        }
                    }
                }
            }
            a += PAGE_SIZE;
        }
    }

    /// `set_pte_at` of a new present PTE (young: x86 `vm_page_prot` has `_PAGE_ACCESSED`).
    pub(crate) fn install(
        &mut self,
        loc: Loc,
        mm: u32,
        va: u64,
        slot: u32,
        write: bool,
        dirty: bool,
    ) {
        self.set(
            loc,
            Pte::Present(PresentPte {
                folio: slot,
                write,
                young: true,
                dirty,
                soft_dirty: true,
                mig_a: false,
                mig_d: false,
            }),
        );
        self.add_rmap(slot, mm, va);
    }

    /// `do_wp_page`: write fault on a present read-only PTE.
    fn do_wp_page(
        &mut self,
        cpu: u32,
        mm: u32,
        vma: &Vma,
        va: u64,
        loc: Loc,
        p: PresentPte,
    ) -> FaultClass {
        if vma.shared {
            // wp_page_shared: page_mkwrite, then write + dirty.
            let mut q = p;
            q.write = true;
            q.dirty = true;
            q.young = true;
            // x86 pte_mkdirty also sets _PAGE_SOFT_DIRTY.
            q.soft_dirty = true;
            self.set(loc, Pte::Present(q));
            if let Some(f) = self.folios.get_mut(p.folio as usize) {
                f.dirty = true;
            }
            self.c.flt_file_write_shared += 1;
            return FaultClass::FileWriteShared;
        }
        let (anon, pae, hopeful) = match self.folios.get(p.folio as usize) {
            Some(f) if p.folio != ZERO_SLOT => {
                let sc = u32::from(f.swapcache.is_some());
                (f.is_anon(), f.pae, f.refcount == 1 + sc && f.mapcount == 1)
            }
            _ => (false, false, false),
        };
        // do_wp_page without PAE: `folio_ref_count > 1 + folio_test_swapcache` copies; else
        // folio_free_swap, and reuse only if our mapping's is then the only reference. A swap
        // PTE elsewhere (a forked sibling's, the slot's count > 0) keeps the swap cache and
        // its reference, so the folio is copied: reusing it would let the sibling fault in
        // this process's writes.
        if anon && !pae && hopeful {
            self.folio_free_swap_if_unused(p.folio);
        }
        let reusable = hopeful
            && self
                .folios
                .get(p.folio as usize)
                .is_some_and(|f| f.swapcache.is_none() && f.refcount == 1 && f.mapcount == 1);
        if anon && (pae || reusable) {
            // wp_page_reuse (PAE set, or wp_can_reuse_anon_folio: folio_move_anon_rmap + PAE).
            self.folio_free_swap_if_unused(p.folio);
            if let Some(f) = self.folios.get_mut(p.folio as usize) {
                f.pae = true;
            }
            let mut q = p;
            q.write = true;
            q.dirty = true;
            q.young = true;
            q.soft_dirty = true;
            self.set(loc, Pte::Present(q));
            self.c.flt_cow_reuse += 1;
            return FaultClass::CowReuse;
        }
        // wp_page_copy: new exclusive folio, ptep_clear_flush_notify, install, drop old.
        let content = if p.folio == ZERO_SLOT {
            0
        } else {
            self.folios.get(p.folio as usize).map_or(0, |f| f.content)
        };
        let slot = self.new_anon_folio(content);
        self.set(loc, Pte::None);
        self.flush_tlb_mm_range(cpu, mm, va, va + PAGE_SIZE, false);
        let freed = self.remove_rmap(p.folio, mm, va, true);
        self.install(loc, mm, va, slot, true, true);
        if freed {
            self.free_folio(p.folio);
        }
        self.c.flt_cow_copy += 1;
        FaultClass::CowCopy
    }

    /// `folio_free_swap`: drop the swap-cache copy when no swap PTE references the slot any more
    /// (the folio becomes the only copy: dirty).
    pub(crate) fn folio_free_swap_if_unused(&mut self, slot: u32) {
        let Some(s) = self.folios.get(slot as usize).and_then(|f| f.swapcache) else {
            return;
        };
        let unused = self.swap.get(s as usize).is_some_and(|x| x.count == 0);
        if unused {
            if let Some(x) = self.swap.get_mut(s as usize) {
                x.live = false;
                x.cached = None;
            }
            self.free_swap.push(s);
            if let Some(f) = self.folios.get_mut(slot as usize) {
                f.swapcache = None;
                f.dirty = true;
                f.refcount = f.refcount.saturating_sub(1);
            }
        }
    }

    /// `do_swap_page`.
    #[allow(clippy::too_many_arguments)]
    fn do_swap_page(
        &mut self,
        mm: u32,
        vma: &Vma,
        va: u64,
        loc: Loc,
        s: u32,
        exclusive: bool,
        write: bool,
    ) -> FaultClass {
        let Some(sw) = self.swap.get(s as usize).copied() else {
            return FaultClass::Spurious;
        };
        let slot = match sw.cached {
            Some(f) => f,
            None => {
                let slot = self.alloc_folio_with_id(FolioKind::Anon, 0, sw.content, sw.id);
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.swapbacked = true;
                    f.swapcache = Some(s);
                    f.refcount = 1;
                    lru::add_new_folio(&mut self.lru, f, slot);
                }
                if let Some(x) = self.swap.get_mut(s as usize) {
                    x.cached = Some(slot);
                    if x.evicted {
                        self.c.refaults += 1;
                        x.evicted = false;
                    }
                }
                self.c.swap_in += 1;
                slot
            }
        };
        let last_ref = sw.count <= 1;
        let mapped_elsewhere = self
            .folios
            .get(slot as usize)
            .is_some_and(|f| f.mapcount > 0);
        let excl = exclusive || (last_ref && !mapped_elsewhere);
        if let Some(x) = self.swap.get_mut(s as usize) {
            x.count = x.count.saturating_sub(1);
        }
        if let Some(m) = self.mms.get_mut(&mm) {
            m.rss[RSS_SWAP] -= 1;
        }
        if excl {
            if let Some(f) = self.folios.get_mut(slot as usize) {
                f.pae = true;
            }
        }
        let w = write && excl && vma.writable();
        if w {
            self.folio_free_swap_if_unused(slot);
        }
        self.install(loc, mm, va, slot, w, w);
        self.c.flt_swapin += 1;
        FaultClass::SwapIn
    }

    /// GUP slow path for `Pin` (FOLL_PIN) / `GetRef` (FOLL_GET): fault in as needed, unshare
    /// (COW) when pinning a possibly shared anon page (`gup_must_unshare`), then take the
    /// reference.
    pub(crate) fn op_hold(
        &mut self,
        cpu: u32,
        mm: MmId,
        va: u64,
        write: bool,
        hold: HoldId,
        pin: bool,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        self.check_mm(mm)?;
        if self.holds.contains_key(&hold.0) {
            return Err(ModelError::HoldExists(hold));
        }
        let va = va & !(PAGE_SIZE - 1);
        self.ensure_running(cpu, mm.0);
        let kind = if write {
            AccessKind::Write
        } else {
            AccessKind::Read
        };
        let mut slot = None;
        for _ in 0..3 {
            match self.pte_at(mm.0, va) {
                Some(Pte::Present(p)) if p.folio != ZERO_SLOT && (p.write || !write) => {
                    let f = self.folios.get(p.folio as usize);
                    let must_unshare = pin && f.is_some_and(|f| f.is_anon() && !f.pae);
                    if !must_unshare {
                        slot = Some(p.folio);
                        break;
                    }
                    // FAULT_FLAG_UNSHARE: break COW so the pin lands on an exclusive page.
                    let vma = self.find_vma(mm.0, va);
                    if let (Some(v), Some(loc)) = (vma, self.locate(mm.0, va)) {
                        self.c.faults += 1;
                        if v.writable() {
                            self.do_wp_page(cpu, mm.0, &v, va, loc, p);
                            continue;
                        }
                        // Read-only private mapping: copy and keep it read-only.
                        self.do_wp_page(cpu, mm.0, &v, va, loc, p);
                        if let Some(Pte::Present(mut q)) = self.pte_at(mm.0, va) {
                            q.write = false;
                            self.set(loc, Pte::Present(q));
                        }
                        continue;
                    }
                    break;
                }
                _ => {
                    self.c.faults += 1;
                    if self.handle_mm_fault(cpu, mm.0, va, kind).is_none() {
                        self.c.segv += 1;
                        return Ok(OpOutcome::Segv);
                    }
                    if !write {
                        // A read fault on anon maps the zero page; GUP uses FOLL_WRITE-less
                        // semantics but pins need a real page: fault it as a write-less unshare.
                        if let Some(Pte::Present(p)) = self.pte_at(mm.0, va) {
                            if p.folio == ZERO_SLOT {
                                let vma = self.find_vma(mm.0, va);
                                if let (Some(v), Some(loc)) = (vma, self.locate(mm.0, va)) {
                                    self.do_wp_page(cpu, mm.0, &v, va, loc, p);
                                    if !v.writable() {
                                        if let Some(Pte::Present(mut q)) = self.pte_at(mm.0, va) {
                                            q.write = false;
                                            self.set(loc, Pte::Present(q));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let Some(slot) = slot else {
            return Err(ModelError::NotMapped { mm, va });
        };
        if let Some(f) = self.folios.get_mut(slot as usize) {
            f.refcount += 1;
            if pin {
                f.pincount += 1;
            } else {
                f.extra += 1;
                if write {
                    f.extra_writers += 1;
                }
            }
        }
        if pin {
            self.c.pins += 1;
            if !self.pinned.contains(&slot) {
                self.pinned.push(slot);
            }
        } else {
            self.c.extra_refs += 1;
        }
        self.holds.insert(hold.0, Hold { slot, pin, write });
        Ok(OpOutcome::Done)
    }

    /// Drop a pin (`unpin_user_pages_dirty_lock` for write pins) or an extra reference (DIO
    /// completion writes the data first if `write`).
    pub(crate) fn op_release(
        &mut self,
        hold: HoldId,
        write: bool,
    ) -> Result<OpOutcome, ModelError> {
        let h = self
            .holds
            .remove(&hold.0)
            .ok_or(ModelError::UnknownHold(hold))?;
        let writes = write || (h.pin && h.write);
        if writes {
            self.write_content(h.slot);
        }
        let (gone, id, orphan) = match self.folios.get_mut(h.slot as usize) {
            Some(f) => {
                if writes {
                    f.dirty = true;
                }
                f.refcount = f.refcount.saturating_sub(1);
                if h.pin {
                    f.pincount = f.pincount.saturating_sub(1);
                } else {
                    f.extra = f.extra.saturating_sub(1);
                    if h.write {
                        f.extra_writers = f.extra_writers.saturating_sub(1);
                    }
                }
                // Only a lazyfree discard makes the kernel lose such a write; a user who unmaps
                // a DIO buffer mid-flight loses it by choice.
                let orphan =
                    f.lazy_discarded && f.mapcount == 0 && !f.in_pagecache && f.swapcache.is_none();
                (f.refcount == 0, f.id, orphan)
            }
            None => (false, crate::op::FolioId(0), false),
        };
        if h.pin {
            let still = self
                .folios
                .get(h.slot as usize)
                .is_some_and(|f| f.pincount > 0);
            if !still {
                self.pinned.retain(|s| *s != h.slot);
            }
        }
        if writes && orphan {
            // The I/O wrote into a page nothing maps or caches any more: the data is lost
            // (mm-semantics D, I5's violating sequence step 4).
            self.violate(
                Invariant::I5,
                format!(
                    "I/O completed into folio {} after it was discarded from every mapping",
                    id.0
                ),
            );
        }
        if gone {
            self.free_folio(h.slot);
        }
        Ok(OpOutcome::Done)
    }
}
