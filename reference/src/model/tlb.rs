//! CPUs, TLBs and IPIs: the hardware access model (mm-semantics B.0), `flush_tlb_mm_range` /
//! `native_flush_tlb_multi` IPI targeting (B.1, `arch/x86/mm/tlb.c`), the reclaim/migration
//! batch (`tlb_ubc`, `arch_tlbbatch_flush`) and context switches (`switch_mm_irqs_off`, lazy
//! TLB). It must never change page-table state except the A/D bits the hardware sets.

use super::state::*;
use super::{Loc, Model};
use crate::invariant::Invariant;
use crate::op::{AccessKind, MmId, OpOutcome};
use crate::policy::Policy;
use crate::profile::CpumaskMode;

/// Result of a hardware access attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HwAccess {
    Ok,
    /// Needs `handle_mm_fault`.
    Fault,
}

impl<P: Policy> Model<P> {
    /// Direct-mapped TLB slot for (mm, vpn): the model's TLB is a small direct-mapped cache
    /// (only staleness matters, not hit rates), so lookups and inserts are O(1).
    #[inline]
    fn tlb_index(c: &CpuState, mm: u32, vpn: u64) -> usize {
        let h = (vpn ^ (u64::from(mm) << 20)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        (h as usize) & (c.tlb.len() - 1)
    }

    fn tlb_find(&self, cpu: usize, mm: u32, va: u64) -> Option<usize> {
        let c = self.cpus.get(cpu)?;
        let vpn = va >> PAGE_SHIFT;
        let i = Self::tlb_index(c, mm, vpn);
        if c.tlb
            .get(i)
            .is_some_and(|e| e.valid && !e.huge && e.mm == mm && e.vpn == vpn)
        {
            return Some(i);
        }
        let hvpn = (va >> PMD_SHIFT) << (PMD_SHIFT - PAGE_SHIFT);
        let j = Self::tlb_index(c, mm, hvpn);
        c.tlb
            .get(j)
            .is_some_and(|e| e.valid && e.huge && e.mm == mm && e.vpn == hvpn)
            .then_some(j)
    }

    fn tlb_entry_ref(&mut self, e: &TlbEntry, delta: i32) {
        if let Some(f) = self.folios.get_mut(e.folio as usize) {
            if delta > 0 {
                f.tlb_refs += 1;
                if e.writable && e.dirty {
                    f.tlb_dirty_refs += 1;
                }
            } else {
                f.tlb_refs = f.tlb_refs.saturating_sub(1);
                if e.writable && e.dirty {
                    f.tlb_dirty_refs = f.tlb_dirty_refs.saturating_sub(1);
                }
            }
        }
    }

    fn tlb_invalidate(&mut self, cpu: usize, i: usize) {
        let Some(e) = self.cpus.get(cpu).and_then(|c| c.tlb.get(i)).copied() else {
            return;
        };
        if !e.valid {
            return;
        }
        self.tlb_entry_ref(&e, -1);
        if let Some(c) = self.cpus.get_mut(cpu) {
            if let Some(slot) = c.tlb.get_mut(i) {
                slot.valid = false;
            }
            c.nr_valid = c.nr_valid.saturating_sub(1);
            if c.nr_valid == 0 {
                c.mm_bits = 0;
            }
        }
    }

    fn tlb_insert(&mut self, cpu: usize, e: TlbEntry) {
        let Some(c) = self.cpus.get(cpu) else { return };
        let i = Self::tlb_index(c, e.mm, e.vpn);
        self.tlb_invalidate(cpu, i);
        self.tlb_entry_ref(&e, 1);
        if let Some(c) = self.cpus.get_mut(cpu) {
            if let Some(slot) = c.tlb.get_mut(i) {
                *slot = e;
                c.nr_valid += 1;
                c.mm_bits |= mm_bit(e.mm);
            }
        }
    }

    /// Drop every TLB entry translating to `slot` (used after an I1 report).
    pub(crate) fn tlb_drop_folio(&mut self, slot: u32) {
        for cpu in 0..self.cpus.len() {
            let n = self.cpus.get(cpu).map_or(0, |c| c.tlb.len());
            for i in 0..n {
                let hit = self
                    .cpus
                    .get(cpu)
                    .and_then(|c| c.tlb.get(i))
                    .is_some_and(|e| e.valid && e.folio == slot);
                if hit {
                    self.tlb_invalidate(cpu, i);
                }
            }
        }
    }

    /// Drop `cpu`'s entries of `mm` in `[start, end)` (`None`: all of the mm).
    fn tlb_drop_range(&mut self, cpu: usize, mm: u32, range: Option<(u64, u64)>) {
        let n = match self.cpus.get(cpu) {
            Some(c) if c.nr_valid > 0 && c.mm_bits & mm_bit(mm) != 0 => c.tlb.len(),
            _ => return,
        };
        if let Some((s, t)) = range {
            let pages = t.saturating_sub(s) >> PAGE_SHIFT;
            if pages <= n as u64 {
                // Small range: probe the slots the range's pages (and 2 MiB bases) map to.
                let mut va = s;
                while va < t {
                    let vpn = va >> PAGE_SHIFT;
                    let hvpn = (va >> PMD_SHIFT) << (PMD_SHIFT - PAGE_SHIFT);
                    for (v, huge) in [(vpn, false), (hvpn, true)] {
                        let hit = self.cpus.get(cpu).and_then(|c| {
                            let i = Self::tlb_index(c, mm, v);
                            c.tlb
                                .get(i)
                                .is_some_and(|e| {
                                    e.valid && e.huge == huge && e.mm == mm && e.vpn == v
                                })
                                .then_some(i)
                        });
                        if let Some(i) = hit {
                            self.tlb_invalidate(cpu, i);
                        }
                    }
                    va += PAGE_SIZE;
                }
                return;
            }
        }
        // One pass over the CPU's entries, dropping matches in place (same effect as
        // `tlb_invalidate` on each, without re-indexing per entry).
        let Model { cpus, folios, .. } = self;
        let Some(c) = cpus.get_mut(cpu) else { return };
        let mut dropped = 0u32;
        for e in c.tlb.iter_mut() {
            if !e.valid || e.mm != mm {
                continue;
            }
            let hit = match range {
                None => true,
                Some((s, t)) => {
                    let va = e.vpn << PAGE_SHIFT;
                    let size = if e.huge { PMD_SIZE } else { PAGE_SIZE };
                    va < t && va + size > s
                }
            };
            if hit {
                if let Some(f) = folios.get_mut(e.folio as usize) {
                    f.tlb_refs = f.tlb_refs.saturating_sub(1);
                    if e.writable && e.dirty {
                        f.tlb_dirty_refs = f.tlb_dirty_refs.saturating_sub(1);
                    }
                }
                e.valid = false;
                dropped += 1;
            }
        }
        c.nr_valid = c.nr_valid.saturating_sub(dropped);
        if c.nr_valid == 0 {
            c.mm_bits = 0;
        }
    }

    /// `arch/x86/mm/tlb.c:flush_tlb_mm_range` from `sender` (B.1): a local flush, or
    /// `native_flush_tlb_multi` with `should_flush_tlb` targeting (lazy CPUs only when tables
    /// were freed). Every CPU's cached entries for the range are dropped: CPUs skipped because
    /// they are lazy catch up through `tlb_gen` before they can use them again.
    pub(crate) fn flush_tlb_mm_range(
        &mut self,
        sender: u32,
        mm: u32,
        start: u64,
        end: u64,
        freed_tables: bool,
    ) {
        let pages = end.saturating_sub(start) >> PAGE_SHIFT;
        let full = pages > self.profile.flush_ceiling_pages;
        let Some(mask) = self.mms.get(&mm).map(|m| m.cpumask) else {
            return;
        };
        let others = mask & !(1u64 << sender);
        let sender_loaded = self.cpus.get(sender as usize).and_then(|c| c.loaded) == Some(mm);
        let sender_lazy = self.cpus.get(sender as usize).is_some_and(|c| c.lazy);
        if sender_loaded && !sender_lazy && (others != 0 || mask & (1u64 << sender) != 0) {
            // flush_tlb_func on the sender (local-only path, or SCF_RUN_LOCAL when
            // should_flush_tlb passes for it): TLB_LOCAL_MM_SHOOTDOWN.
            self.c.tlb_flush_local_mm_shootdowns += 1;
        }
        if others != 0 {
            // flush_tlb_multi (NR_TLB_REMOTE_FLUSH, TLB_REMOTE_SEND_IPI), counted even when
            // should_flush_tlb leaves no CPU to interrupt.
            self.c.tlb_flush_remote += 1;
            let trim_mode = self.profile.cpumask_mode == CpumaskMode::TrimByFlush;
            // info->trim_cpumask = should_trim_cpumask(mm), evaluated on every multi flush.
            let trim = trim_mode && self.should_trim_cpumask(mm);
            let mut targets = 0u64;
            let mut trimmed = 0u64;
            if trim_mode && (freed_tables || trim) && !sender_loaded {
                // SCF_RUN_LOCAL: the sender runs flush_tlb_func too and, not running the mm,
                // takes the TLB_REMOTE_WRONG_CPU path and clears its own bit.
                let sender_lazy = self.cpus.get(sender as usize).is_some_and(|c| c.lazy);
                if mask & (1u64 << sender) != 0 && (freed_tables || !sender_lazy) {
                    trimmed |= 1u64 << sender;
                }
            }
            for cpu in 0..self.cpus.len() {
                if others & (1u64 << cpu) == 0 {
                    continue;
                }
                let Some(c) = self.cpus.get(cpu) else {
                    continue;
                };
                let runs = c.loaded == Some(mm);
                if freed_tables {
                    // on_each_cpu_mask: every CPU in mm_cpumask, lazy or not.
                    targets += 1;
                    if runs && c.lazy {
                        // Lazy receiver of a freed-tables flush: leave_mm (switch to init_mm).
                        // Since v6.12 switch_mm_irqs_off keeps prev's mm_cpumask bit.
                        if let Some(c) = self.cpus.get_mut(cpu) {
                            c.loaded = None;
                            c.lazy = false;
                        }
                        self.tlb_drop_range(cpu, mm, None);
                        if !trim_mode {
                            trimmed |= 1u64 << cpu;
                        }
                    } else if !runs {
                        trimmed |= 1u64 << cpu;
                    }
                } else if trim_mode {
                    // should_flush_tlb: never a lazy CPU; a CPU running the mm; a CPU left in
                    // the mask only when the trim is due (it then takes TLB_REMOTE_WRONG_CPU).
                    if !c.lazy && (runs || trim) {
                        targets += 1;
                        if !runs {
                            trimmed |= 1u64 << cpu;
                        }
                    }
                } else if runs && !c.lazy {
                    targets += 1;
                } else if !runs {
                    // TrimByFlush: the IPI reaches a CPU that no longer runs the mm
                    // (TLB_REMOTE_WRONG_CPU) and trims it from mm_cpumask.
                    targets += 1;
                    trimmed |= 1u64 << cpu;
                }
            }
            if targets > 0 {
                self.c.ipi_sends_shootdown += 1;
                self.c.ipi_targets_shootdown += targets;
                self.c.ipi_targets += targets;
            }
            if trimmed != 0 {
                if trim_mode {
                    self.c.tlb_flush_remote_wrong_cpu += u64::from(trimmed.count_ones());
                }
                if let Some(m) = self.mms.get_mut(&mm) {
                    m.cpumask &= !trimmed;
                }
            }
        } else if sender_loaded {
            self.c.tlb_flush_local += 1;
        } else {
            // Nobody runs the mm: x86 does no flush at all (the next switch_mm catches up).
        }
        if full {
            self.c.tlb_flush_full += 1;
        } else {
            self.c.tlb_flush_pages += pages;
        }
        let range = if full { None } else { Some((start, end)) };
        // Entries of `mm` only live on CPUs in its (pre-trim) mm_cpumask: inserts happen on a
        // CPU running the mm, and switching away drops them.
        for cpu in 0..self.cpus.len() {
            if mask & (1u64 << cpu) != 0 {
                self.tlb_drop_range(cpu, mm, range);
            }
        }
    }

    /// `arch/x86/mm/tlb.c:should_trim_cpumask`: true at most once per second per mm (from
    /// `Op::Clock` time; `time_after` is strict), re-arming the next trim a second later.
    fn should_trim_cpumask(&mut self, mm: u32) -> bool {
        let now = self.now_ns;
        match self.mms.get_mut(&mm) {
            Some(m) if now > m.next_trim_ns => {
                m.next_trim_ns = now.saturating_add(NSEC_PER_SEC);
                true
            }
            _ => false,
        }
    }

    /// `set_tlb_ubc_flush_pending`: defer the flush for `mm` into the reclaim/migration batch.
    pub(crate) fn ubc_add(&mut self, mm: u32, writable: bool) {
        let mask = self.mms.get(&mm).map_or(0, |m| m.cpumask);
        self.ubc.pending = true;
        self.ubc.writable |= writable;
        self.ubc.cpumask |= mask;
        if !self.ubc.mms.contains(&mm) {
            self.ubc.mms.push(mm);
        }
    }

    /// `should_defer_flush`: batch only when other CPUs may cache the mm.
    pub(crate) fn should_defer_flush(&self, sender: u32, mm: u32) -> bool {
        self.mms
            .get(&mm)
            .is_some_and(|m| m.cpumask & !(1u64 << sender) != 0)
    }

    /// `arch_tlbbatch_flush(batch)` from `sender` over `mask` (the union of the batched mms'
    /// `mm_cpumask`s), counting only: `flush_tlb_multi` with `info->mm == NULL`, so
    /// `should_flush_tlb` skips only lazy CPUs (a CPU running another mm is flushed too, and
    /// `flush_tlb_func` never trims for a NULL mm); the sender alone flushes locally.
    fn count_batch_flush(&mut self, sender: u32, mask: u64) {
        let others = mask & !(1u64 << sender);
        if mask & (1u64 << sender) != 0 && self.cpus.get(sender as usize).is_some_and(|c| !c.lazy) {
            // flush_tlb_func with f->mm == NULL on the sender: TLB_LOCAL_SHOOTDOWN.
            self.c.tlb_flush_local_shootdowns += 1;
        }
        if others != 0 {
            self.c.tlb_flush_remote += 1;
            let mut targets = 0u64;
            for cpu in 0..self.cpus.len() {
                if others & (1u64 << cpu) == 0 {
                    continue;
                }
                if let Some(c) = self.cpus.get(cpu) {
                    if !(c.lazy) {
                        targets += 1;
                    }
                }
            }
            if targets > 0 {
                self.c.ipi_sends_shootdown += 1;
                self.c.ipi_targets_shootdown += targets;
                self.c.ipi_targets += targets;
            }
        } else if mask & (1u64 << sender) != 0 {
            self.c.tlb_flush_local += 1;
        }
        self.c.tlb_flush_full += 1;
    }

    /// `ptep_clear_flush` → `flush_tlb_mm_range` of one PTE in an mm the model does not know,
    /// taken to be in `mask`: the migrating CPU runs its own task's mm, not that one, so there
    /// is no local flush (`flush_tlb_mm_range` flushes locally only the loaded mm), only the
    /// remote request, with IPIs to the non-lazy CPUs (unknown: which of them run that mm).
    fn count_foreign_flush(&mut self, sender: u32, mask: u64) {
        let others = mask & !(1u64 << sender);
        if others == 0 {
            return;
        }
        self.c.tlb_flush_remote += 1;
        let targets = (0..self.cpus.len())
            .filter(|&c| others & (1u64 << c) != 0)
            .filter(|&c| self.cpus.get(c).is_some_and(|c| !c.lazy))
            .count() as u64;
        if targets > 0 {
            self.c.ipi_sends_shootdown += 1;
            self.c.ipi_targets_shootdown += targets;
            self.c.ipi_targets += targets;
        }
        self.c.tlb_flush_pages += 1;
    }

    /// Every modelled CPU.
    fn all_cpus_mask(&self) -> u64 {
        match self.cpus.len() {
            n if n >= 64 => u64::MAX,
            n => (1u64 << n) - 1,
        }
    }

    /// Whether a `migrate_pages` batch is open on `cpu` (`Op::MigrateBatch`).
    pub(crate) fn mig_batch_open(&self, cpu: u32) -> bool {
        self.mig_batches
            .get(cpu as usize)
            .is_some_and(Option::is_some)
    }

    /// `try_to_migrate_one` with `TTU_BATCH_FLUSH` and `should_defer_flush` true:
    /// `set_tlb_ubc_flush_pending` adds `mm_cpumask(mm)` to the batch. The model drops the
    /// page's cached translations now (it completes each folio's move within its op, and the
    /// kernel's one flush precedes every move of the batch); the flush is counted at
    /// `MigrateBatchStep::Flush`.
    pub(crate) fn mig_batch_defer(&mut self, cpu: u32, mm: u32, va: Option<u64>) {
        let mask = self.mms.get(&mm).map_or(0, |m| m.cpumask);
        if let Some(Some(b)) = self.mig_batches.get_mut(cpu as usize) {
            b.cpumask |= mask;
            if !b.mms.contains(&mm) {
                b.mms.push(mm);
            }
        }
        if let Some(va) = va {
            for c in 0..self.cpus.len() {
                if mask & (1u64 << c) != 0 {
                    self.tlb_drop_range(c, mm, Some((va, va + PAGE_SIZE)));
                }
            }
        }
    }

    /// `Op::MigrateBatch`: open a batch, add an unknown mm's unmap to it, or flush it.
    pub(crate) fn op_migrate_batch(
        &mut self,
        cpu: u32,
        step: crate::op::MigrateBatchStep,
    ) -> Result<OpOutcome, super::ModelError> {
        use crate::op::MigrateBatchStep;
        self.check_cpu(cpu)?;
        let batched = self.profile.base == crate::profile::Base::Knew;
        match step {
            MigrateBatchStep::Start => {
                // A batch whose flush the trace did not show is flushed first.
                self.mig_batch_flush(cpu);
                if batched {
                    if let Some(b) = self.mig_batches.get_mut(cpu as usize) {
                        *b = Some(super::MigBatch::default());
                    }
                }
            }
            MigrateBatchStep::ForeignUnmap => {
                let all = self.all_cpus_mask();
                match self.mig_batches.get_mut(cpu as usize) {
                    Some(Some(b)) => b.cpumask |= all,
                    // 6.1, or a synchronous retry (try_to_migrate(src, 0)): ptep_clear_flush
                    // flushes this PTE at once.
                    _ => self.count_foreign_flush(cpu, all),
                }
            }
            MigrateBatchStep::Flush => self.mig_batch_flush(cpu),
        }
        Ok(OpOutcome::Done)
    }

    /// `try_to_unmap_flush` at the end of a `migrate_pages_batch` unmap phase.
    fn mig_batch_flush(&mut self, cpu: u32) {
        let batch = self
            .mig_batches
            .get_mut(cpu as usize)
            .and_then(Option::take);
        let Some(b) = batch.filter(|b| b.cpumask != 0) else {
            return;
        };
        self.count_batch_flush(cpu, b.cpumask);
        // A full flush (TLB_FLUSH_ALL): every cached translation of the batched mms goes.
        for &mm in &b.mms {
            let cur = self.mms.get(&mm).map_or(0, |m| m.cpumask);
            for c in 0..self.cpus.len() {
                if (b.cpumask | cur) & (1u64 << c) != 0 {
                    self.tlb_drop_range(c, mm, None);
                }
            }
        }
    }

    /// `try_to_unmap_flush` → `arch_tlbbatch_flush`: one full flush of the batch's cpumask.
    pub(crate) fn ubc_flush(&mut self, sender: u32) {
        if !self.ubc.pending {
            return;
        }
        self.count_batch_flush(sender, self.ubc.cpumask);
        let mms = std::mem::take(&mut self.ubc.mms);
        let mask = self.ubc.cpumask;
        for &mm in &mms {
            let cur = self.mms.get(&mm).map_or(0, |m| m.cpumask);
            for cpu in 0..self.cpus.len() {
                if (mask | cur) & (1u64 << cpu) != 0 {
                    self.tlb_drop_range(cpu, mm, None);
                }
            }
        }
        self.ubc.mms = mms;
        self.ubc.mms.clear();
        self.ubc.pending = false;
        self.ubc.writable = false;
        self.ubc.cpumask = 0;
    }

    /// `try_to_unmap_flush_dirty`: flush the batch only if a writable PTE was batched.
    pub(crate) fn ubc_flush_dirty(&mut self, sender: u32) {
        if self.ubc.writable {
            self.ubc_flush(sender);
        }
    }

    /// `flush_tlb_batched_pending`: a PTL holder about to change PTEs of `mm` first flushes an
    /// outstanding reclaim batch covering it.
    pub(crate) fn flush_batched_pending(&mut self, sender: u32, mm: u32) {
        if self.ubc.pending && self.ubc.mms.contains(&mm) {
            self.ubc_flush(sender);
        }
    }

    /// Context switch (`switch_mm_irqs_off`; kernel thread → lazy TLB).
    pub(crate) fn op_switch(
        &mut self,
        cpu: u32,
        next: Option<MmId>,
    ) -> Result<OpOutcome, super::ModelError> {
        self.check_cpu(cpu)?;
        if let Some(n) = next {
            self.check_mm(n)?;
        }
        self.switch_to(cpu, next.map(|m| m.0));
        Ok(OpOutcome::Done)
    }

    pub(crate) fn switch_to(&mut self, cpu: u32, next: Option<u32>) {
        let ci = cpu as usize;
        let Some(c) = self.cpus.get(ci) else { return };
        let prev = c.loaded;
        match next {
            None => {
                // Kernel thread: keep the user mm loaded, lazily.
                if let Some(c) = self.cpus.get_mut(ci) {
                    if c.loaded.is_some() {
                        c.lazy = true;
                    }
                }
            }
            Some(n) => {
                if prev != Some(n) {
                    if let Some(p) = prev {
                        // Leaving `p`: its entries can no longer be used (ASID switch + tlb_gen
                        // catch-up on return); drop them so stale translations are never
                        // counted against a CPU that cannot use them.
                        self.tlb_drop_range(ci, p, None);
                        if self.profile.cpumask_mode == crate::profile::CpumaskMode::ClearOnSwitch {
                            if let Some(m) = self.mms.get_mut(&p) {
                                m.cpumask &= !(1u64 << cpu);
                            }
                        }
                    }
                }
                if let Some(m) = self.mms.get_mut(&n) {
                    m.cpumask |= 1u64 << cpu;
                    m.used = true;
                }
                if let Some(c) = self.cpus.get_mut(ci) {
                    c.loaded = Some(n);
                    c.lazy = false;
                }
            }
        }
    }

    /// Forget every CPU's use of a dying mm (after exit_mmap's final flush).
    pub(crate) fn cpus_forget_mm(&mut self, mm: u32) {
        for cpu in 0..self.cpus.len() {
            self.tlb_drop_range(cpu, mm, None);
            if let Some(c) = self.cpus.get_mut(cpu) {
                if c.loaded == Some(mm) {
                    c.loaded = None;
                    c.lazy = false;
                }
            }
        }
    }

    /// B.0 hardware access on `cpu` (mm already loaded): TLB hit, D-assist on the CURRENT PTE,
    /// or a page walk that sets A (and D for writes) and fills the TLB.
    pub(crate) fn hw_access(&mut self, cpu: u32, mm: u32, va: u64, kind: AccessKind) -> HwAccess {
        let ci = cpu as usize;
        if let Some(i) = self.tlb_find(ci, mm, va) {
            let Some(e) = self.cpus.get(ci).and_then(|c| c.tlb.get(i)).copied() else {
                return HwAccess::Fault;
            };
            let exec_ok = true;
            match kind {
                AccessKind::Write if !e.writable => {
                    self.tlb_invalidate(ci, i);
                    // fall through to a walk below
                }
                AccessKind::Write if !e.dirty => {
                    // D-assist: re-walk the current PTE (race #2 of S3).
                    let loc = self.locate(mm, va);
                    let cur = loc.map(|l| (l, self.get(l)));
                    match cur {
                        Some((l, Pte::Present(mut p))) if p.write && p.folio == e.folio => {
                            if !p.dirty {
                                p.dirty = true;
                                self.c.hw_d_sets += 1;
                                if p.mig_d {
                                    self.c.hw_d_sets_after_mig += 1;
                                }
                                p.mig_d = false;
                                self.set(l, Pte::Present(p));
                            }
                            self.tlb_entry_ref(&e, -1);
                            let mut e2 = e;
                            e2.dirty = true;
                            self.tlb_entry_ref(&e2, 1);
                            if let Some(s) = self.cpus.get_mut(ci).and_then(|c| c.tlb.get_mut(i)) {
                                *s = e2;
                            }
                            self.write_content(e.folio);
                            return HwAccess::Ok;
                        }
                        _ => {
                            self.tlb_invalidate(ci, i);
                            return HwAccess::Fault;
                        }
                    }
                }
                _ if exec_ok => {
                    // Hit: the data access goes to e.folio even if the PTE changed meanwhile
                    // (legal only inside a flush window: I4 checks that at op boundaries).
                    if kind == AccessKind::Write {
                        self.write_content(e.folio);
                    }
                    return HwAccess::Ok;
                }
                _ => {}
            }
        }
        // Page walk (one mm lookup for the page tables and the VMA).
        let Some(m) = self.mms.get(&mm) else {
            return HwAccess::Fault;
        };
        let Some(loc) = self.locate_in(m, va) else {
            return HwAccess::Fault;
        };
        let Pte::Present(mut p) = self.get(loc) else {
            return HwAccess::Fault;
        };
        if kind == AccessKind::Write && !p.write {
            return HwAccess::Fault;
        }
        // PROT_NONE PTEs are not present to the hardware (x86 _PAGE_PROTNONE); NX for exec.
        match m.vmas.find(va) {
            Some(v) if v.prot != 0 && (kind != AccessKind::Exec || v.executable()) => {}
            _ => return HwAccess::Fault,
        }
        let mut changed = false;
        if !p.young {
            p.young = true;
            self.c.hw_a_sets += 1;
            if p.mig_a {
                self.c.hw_a_sets_after_mig += 1;
            }
            changed = true;
        }
        p.mig_a = false;
        if kind == AccessKind::Write && !p.dirty {
            p.dirty = true;
            self.c.hw_d_sets += 1;
            if p.mig_d {
                self.c.hw_d_sets_after_mig += 1;
            }
            changed = true;
        }
        if kind == AccessKind::Write {
            p.mig_d = false;
        }
        if changed {
            self.set(loc, Pte::Present(p));
        }
        self.c.tlb_fills += 1;
        let huge = matches!(loc, Loc::Huge(..));
        let vpn = if huge {
            (va >> PMD_SHIFT) << (PMD_SHIFT - PAGE_SHIFT)
        } else {
            va >> PAGE_SHIFT
        };
        if p.folio != ZERO_SLOT {
            self.tlb_insert(
                ci,
                TlbEntry {
                    valid: true,
                    mm,
                    vpn,
                    huge,
                    folio: p.folio,
                    writable: p.write,
                    dirty: p.dirty,
                },
            );
            if kind == AccessKind::Write {
                self.write_content(p.folio);
            }
        }
        HwAccess::Ok
    }

    /// I4 checkpoint: every TLB entry of `mm` (`None`: of every mm) must still match its PTE
    /// (same folio, not more writable), since no flush is pending at op boundaries. Looks only
    /// at the noted PTEs when that is cheaper (`tlbnotes.rs` says why that is exact); debug
    /// builds also run the full scan and compare.
    pub(crate) fn check_tlb_coherent(&mut self, mm: Option<u32>) {
        let (bad, _) = self.i4_check(mm, false);
        if let Some(d) = bad {
            self.violate(Invariant::I4, d);
        }
    }

    /// The I4 check of `mm` (`None`: every mm): the first stale entry, and whether the noted
    /// path answered. `prefer_noted`: take it whenever the notes allow (tests), not only
    /// when it is cheaper.
    pub(crate) fn i4_check(
        &mut self,
        mm: Option<u32>,
        prefer_noted: bool,
    ) -> (Option<String>, bool) {
        // Arena writes outside `Model::set` and the mm-aware doors: any mm may have changed.
        if self.pte_tables.take_touched() | self.pmd_tables.take_touched() {
            self.tlbnotes.set_full();
        }
        self.tlbnotes_collect_pgd(mm);
        // Cost model: the scan reads every slot of each CPU holding entries and walks the page
        // tables for each valid one; the noted check probes 2 slots per note per CPU.
        let (mut active, mut scan_cost) = (0usize, 0usize);
        for c in self.cpus.iter().filter(|c| c.nr_valid > 0) {
            active += 1;
            scan_cost += c.tlb.len() + 4 * c.nr_valid as usize;
        }
        let noted = self
            .tlbnotes
            .plan(mm)
            .is_some_and(|n| prefer_noted || n * 2 * active <= scan_cost);
        let bad = if noted {
            let b = self.tlb_noted(mm);
            debug_assert_eq!(b, self.tlb_scan(mm), "incremental I4 check != full scan");
            b
        } else {
            self.tlb_scan(mm)
        };
        self.tlbnotes.checked(mm, bad.is_some());
        (bad, noted)
    }

    /// Does TLB entry `e` still match its PTE?
    #[inline]
    fn tlb_entry_coherent(&self, e: &TlbEntry, table: Option<u32>) -> bool {
        let va = e.vpn << PAGE_SHIFT;
        match table.and_then(|t| self.pte_in_pmd_table(t, va)) {
            Some(Pte::Present(p)) => p.folio == e.folio && (p.write || !e.writable),
            _ => false,
        }
    }

    fn stale_message(ci: usize, e: &TlbEntry) -> String {
        format!(
            "cpu {ci} caches mm{} {:#x} -> folio slot {} (w={}) after the op's flushes",
            e.mm,
            e.vpn << PAGE_SHIFT,
            e.folio,
            e.writable
        )
    }

    /// The full scan: the first stale entry (CPU order, then slot order) of `mm` (or of any mm).
    pub(crate) fn tlb_scan(&self, mm: Option<u32>) -> Option<String> {
        // Memo of recent (mm, pud) -> PMD table lookups (entries are scattered by the TLB hash,
        // but come from a handful of (mm, pud) pairs).
        let mut memo = [(u32::MAX, u64::MAX, None::<u32>); 8];
        let mut memo_next = 0usize;
        for (ci, c) in self.cpus.iter().enumerate() {
            if c.nr_valid == 0 || mm.is_some_and(|m| c.mm_bits & mm_bit(m) == 0) {
                continue;
            }
            for e in &c.tlb {
                if !e.valid || mm.is_some_and(|m| m != e.mm) {
                    continue;
                }
                let pud = pud_index(e.vpn << PAGE_SHIFT);
                let table = match memo.iter().find(|(m, p, _)| *m == e.mm && *p == pud) {
                    Some(&(_, _, t)) => t,
                    None => {
                        let t = self.mms.get(&e.mm).and_then(|m| m.pgd.get(&pud).copied());
                        if let Some(x) = memo.get_mut(memo_next % 8) {
                            *x = (e.mm, pud, t);
                        }
                        memo_next += 1;
                        t
                    }
                };
                if !self.tlb_entry_coherent(e, table) {
                    return Some(Self::stale_message(ci, e));
                }
            }
        }
        None
    }

    /// The noted check: the entries that can translate a noted (mm, va), 4 KiB or 2 MiB; the
    /// first stale one in the full scan's order.
    fn tlb_noted(&self, only: Option<u32>) -> Option<String> {
        let mut first: Option<(usize, usize)> = None;
        let mut one = only.map(|m| (m, self.tlbnotes.notes_of(m)));
        let mut all = self.tlbnotes.all();
        let mut next = || match only {
            Some(_) => one.take(),
            None => all.next(),
        };
        while let Some((mm, vas)) = next() {
            if vas.is_empty() {
                continue;
            }
            let table_of = |va: u64| {
                self.mms
                    .get(&mm)
                    .and_then(|m| m.pgd.get(&pud_index(va)).copied())
            };
            for &va in vas {
                let vpns = [
                    (va >> PAGE_SHIFT, false),
                    ((va >> PMD_SHIFT) << (PMD_SHIFT - PAGE_SHIFT), true),
                ];
                for (ci, c) in self.cpus.iter().enumerate() {
                    if c.nr_valid == 0 || c.mm_bits & mm_bit(mm) == 0 {
                        continue;
                    }
                    if first.is_some_and(|(fc, _)| fc < ci) {
                        break;
                    }
                    for (vpn, huge) in vpns {
                        let i = Self::tlb_index(c, mm, vpn);
                        let Some(e) = c.tlb.get(i) else { continue };
                        if !(e.valid && e.mm == mm && e.vpn == vpn && e.huge == huge) {
                            continue;
                        }
                        if first.is_some_and(|f| f <= (ci, i)) {
                            continue;
                        }
                        if !self.tlb_entry_coherent(e, table_of(va)) {
                            first = Some((ci, i));
                        }
                    }
                }
            }
        }
        let (ci, i) = first?;
        let e = self.cpus.get(ci).and_then(|c| c.tlb.get(i))?;
        Some(Self::stale_message(ci, e))
    }
}
