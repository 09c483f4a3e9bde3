//! Invariant I4 (no stale TLB entry at an op boundary), checked incrementally: instead of
//! looking up the PTE of every cached TLB entry after each PTE-changing op, the check looks
//! only at the entries that may have become stale since the last check. It must return
//! exactly what the full scan (`Model::tlb_first_incoherent_full`) returns, for every scope,
//! and must never change model state other than its own bookkeeping.
//!
//! An entry is *coherent* when the page-table walk for it (`mms[mm].pgd[pud]` -> PMD entry
//! -> PTE, `pte_in_pmd_table`) yields a present PTE naming the same folio and, if the entry
//! is writable, a writable PTE. Kept invariant between checks: **every valid entry that is
//! not in the suspect set is coherent.** Coherence depends only on the entry and on that
//! walk, so it is kept as follows:
//! - An entry written (`tlb_insert`, the D-assist update) becomes a suspect.
//! - PTE tables and PMD tables are `Tracked` arenas with a second set of marks: every
//!   mutable access marks the table (the compiler enforces it: no `DerefMut`). At a check,
//!   each marked table is compared with a shadow copy of what I4 reads of it (per PTE: absent,
//!   or folio and write bit; per PMD entry: none, table slot, or the leaf's key), which yields
//!   exactly the entries that changed.
//! - A changed PTE in table `p` is mapped to its address through `p`'s parent (the PMD entry
//!   naming it, counted from the PMD diffs) and the parent table's owner (`pgd` entries): the
//!   TLB slots that address and its 2 MiB base hash to, on every CPU, become suspects. A
//!   table with no parent is unreachable (no walk reads it); a table with several parents,
//!   or a PMD table in several pgds, makes every entry a suspect.
//! - A changed PMD entry makes every entry of the mms owning that PMD table suspects.
//! - Any `pgd` change (`Pgd` remembers it; a new mm starts changed) or a change in the number
//!   of mms (an exit) makes every entry a suspect (and the owners are recomputed).
//!
//! At a check every suspect is walked: coherent or invalid ones leave the set, stale ones
//! stay (the full scan would find them again next time). The violation names the first stale
//! entry in scope in (CPU, slot) order, as the full scan does.

use super::state::*;
use super::Model;
use crate::invariant::Invariant;
use crate::policy::Policy;

/// No owner / several owners in `TlbCheck::pmd_owner`.
const OWNER_NONE: u64 = u64::MAX;
const OWNER_MANY: u64 = u64::MAX - 1;
/// `TlbCheck::parent` of a PTE table whose one remaining parent is not known.
const PARENT_UNKNOWN: u64 = u64::MAX;

/// Bookkeeping of the incremental I4 check (see the module doc).
#[derive(Default)]
pub(crate) struct TlbCheck {
    /// Per PTE table slot, per entry: what I4 reads (0: not present; else folio, write).
    pte_shadow: Vec<u64>,
    /// Per PMD table slot, per entry: 0 none, table, or leaf key.
    pmd_shadow: Vec<u64>,
    /// Per PTE table: PMD entries naming it, and the last one seen (t << 9 | i).
    parent_count: Vec<u32>,
    parent: Vec<u64>,
    /// Per PMD table: (mm << 32 | pud) of the one pgd naming it, or OWNER_*.
    pmd_owner: Vec<u64>,
    /// Number of mms at the last check.
    known_mms: usize,
    /// Every entry is a suspect.
    global: bool,
    /// Mms all of whose entries are suspects.
    mm_wide: Vec<u32>,
    /// (mm, va) whose walk changed at the PTE level.
    probes: Vec<(u32, u64)>,
    /// Suspect (cpu, slot) list and flags (cpu * tlb_len + slot).
    suspects: Vec<(u32, u32)>,
    flag: Vec<bool>,
    scratch: Vec<u32>,
}

#[inline]
fn pte_key(pte: &Pte) -> u64 {
    match pte {
        Pte::Present(p) => 1 + ((u64::from(p.folio) << 1) | u64::from(p.write)),
        _ => 0,
    }
}

#[inline]
fn pmd_key(e: &PmdEntry) -> u64 {
    match e {
        PmdEntry::None => 0,
        PmdEntry::Table(p) => (1u64 << 62) | u64::from(*p),
        PmdEntry::Leaf(pte) => (2u64 << 62) | pte_key(pte),
    }
}

impl TlbCheck {
    /// Mark (cpu, slot) a suspect.
    #[inline]
    fn suspect(&mut self, tlb_len: usize, cpu: usize, i: usize) {
        let k = cpu * tlb_len + i;
        if self.flag.len() <= k {
            self.flag.resize(k + 1, false);
        }
        if let Some(f) = self.flag.get_mut(k) {
            if !*f {
                *f = true;
                self.suspects.push((cpu as u32, i as u32));
            }
        }
    }
}

impl<P: Policy> Model<P> {
    /// A TLB entry at (cpu, slot) was written: it is a suspect until the next check.
    #[inline]
    pub(crate) fn tlb_written(&mut self, cpu: usize, i: usize) {
        let n = self.cpus.first().map_or(0, |c| c.tlb.len());
        self.tlbcheck.suspect(n, cpu, i);
    }

    /// Whether the TLB entry is coherent with the page tables (what I4 requires).
    #[inline]
    pub(crate) fn tlb_entry_coherent(&self, e: &TlbEntry) -> bool {
        let va = e.vpn << PAGE_SHIFT;
        let t = self
            .mms
            .get(&e.mm)
            .and_then(|m| m.pgd.get(&pud_index(va)).copied());
        match t.and_then(|t| self.pte_in_pmd_table(t, va)) {
            Some(Pte::Present(p)) => p.folio == e.folio && (p.write || !e.writable),
            _ => false,
        }
    }

    /// Turn what changed in the page tables since the last check into suspects.
    fn tlb_track_changes(&mut self) {
        let mut tc = std::mem::take(&mut self.tlbcheck);
        // 1. pgds and the set of mms.
        let mut pgd_changed = self.mms.len() != tc.known_mms;
        tc.known_mms = self.mms.len();
        for m in self.mms.values_mut() {
            pgd_changed |= m.pgd.take_changed();
        }
        if pgd_changed {
            tc.global = true;
            tc.pmd_owner.clear();
            tc.pmd_owner.resize(self.pmd_tables.len(), OWNER_NONE);
            for (&id, m) in self.mms.iter() {
                for (&pud, &t) in m.pgd.iter() {
                    if let Some(o) = tc.pmd_owner.get_mut(t as usize) {
                        // (A pud index that does not fit the encoding: treated as shared.)
                        *o = if *o == OWNER_NONE && pud <= 0xffff_ffff {
                            (u64::from(id) << 32) | (pud & 0xffff_ffff)
                        } else {
                            OWNER_MANY
                        };
                    }
                }
            }
        }
        // A PMD table allocated since the owners were computed is in no pgd (a pgd insert
        // would have recomputed them).
        if tc.pmd_owner.len() < self.pmd_tables.len() {
            tc.pmd_owner.resize(self.pmd_tables.len(), OWNER_NONE);
        }
        // 2. PMD tables: link/unlink PTE tables (parents); any change: the owners' entries.
        let mut dirty = std::mem::take(&mut tc.scratch);
        self.pmd_tables.take_dirty2(&mut dirty);
        let need = self.pmd_tables.len() * PTRS;
        if tc.pmd_shadow.len() < need {
            tc.pmd_shadow.resize(need, 0);
        }
        let npte = self.pte_tables.len();
        if tc.parent_count.len() < npte {
            tc.parent_count.resize(npte, 0);
            tc.parent.resize(npte, PARENT_UNKNOWN);
        }
        for &t in &dirty {
            let Some(tb) = self.pmd_tables.get(t as usize) else {
                continue;
            };
            let base = t as usize * PTRS;
            let mut any = false;
            for (i, e) in tb.entries.iter().enumerate() {
                let k = pmd_key(e);
                let Some(old) = tc.pmd_shadow.get_mut(base + i) else {
                    continue;
                };
                if *old == k {
                    continue;
                }
                any = true;
                let here = (u64::from(t) << 9) | i as u64;
                if *old >> 62 == 1 {
                    let p = (*old & 0xffff_ffff) as usize;
                    if let (Some(c), Some(par)) = (tc.parent_count.get_mut(p), tc.parent.get_mut(p))
                    {
                        *c = c.saturating_sub(1);
                        if *par == here {
                            *par = PARENT_UNKNOWN;
                        }
                    }
                }
                if k >> 62 == 1 {
                    let p = (k & 0xffff_ffff) as usize;
                    if tc.parent_count.len() <= p {
                        tc.parent_count.resize(p + 1, 0);
                        tc.parent.resize(p + 1, PARENT_UNKNOWN);
                    }
                    if let (Some(c), Some(par)) = (tc.parent_count.get_mut(p), tc.parent.get_mut(p))
                    {
                        *c += 1;
                        *par = here;
                    }
                }
                *old = k;
            }
            if any {
                match tc.pmd_owner.get(t as usize).copied().unwrap_or(OWNER_NONE) {
                    OWNER_NONE => {}
                    OWNER_MANY => tc.global = true,
                    o => {
                        let mm = (o >> 32) as u32;
                        if !tc.mm_wide.contains(&mm) {
                            tc.mm_wide.push(mm);
                        }
                    }
                }
            }
        }
        // 3. PTE tables: each changed PTE's address (through its one parent and owner).
        self.pte_tables.take_dirty2(&mut dirty);
        let need = self.pte_tables.len() * PTRS;
        if tc.pte_shadow.len() < need {
            tc.pte_shadow.resize(need, 0);
        }
        for &p in &dirty {
            let Some(tb) = self.pte_tables.get(p as usize) else {
                continue;
            };
            let base = p as usize * PTRS;
            for (idx, pte) in tb.ptes.iter().enumerate() {
                let k = pte_key(pte);
                let Some(old) = tc.pte_shadow.get_mut(base + idx) else {
                    continue;
                };
                if *old == k {
                    continue;
                }
                *old = k;
                if tc.global {
                    continue;
                }
                let count = tc.parent_count.get(p as usize).copied().unwrap_or(0);
                if count == 0 {
                    continue; // no walk reaches this table
                }
                let par = tc.parent.get(p as usize).copied().unwrap_or(PARENT_UNKNOWN);
                if count > 1 || par == PARENT_UNKNOWN {
                    tc.global = true;
                    continue;
                }
                let (t, i) = ((par >> 9) as usize, par & 511);
                match tc.pmd_owner.get(t).copied().unwrap_or(OWNER_NONE) {
                    OWNER_NONE => {}
                    OWNER_MANY => tc.global = true,
                    o => {
                        let mm = (o >> 32) as u32;
                        let pud = o & 0xffff_ffff;
                        let va =
                            (pud << PUD_SHIFT) | (i << PMD_SHIFT) | ((idx as u64) << PAGE_SHIFT);
                        tc.probes.push((mm, va));
                    }
                }
            }
        }
        tc.scratch = dirty;
        // 4. Suspects from the probes, the mm-wide marks and the global mark.
        let tlb_len = self.cpus.first().map_or(0, |c| c.tlb.len());
        if tc.global {
            for (ci, c) in self.cpus.iter().enumerate() {
                if c.nr_valid == 0 {
                    continue;
                }
                for (i, e) in c.tlb.iter().enumerate() {
                    if e.valid {
                        tc.suspect(tlb_len, ci, i);
                    }
                }
            }
        } else {
            for k in 0..tc.mm_wide.len() {
                let Some(&mm) = tc.mm_wide.get(k) else {
                    continue;
                };
                for (ci, c) in self.cpus.iter().enumerate() {
                    if c.nr_valid == 0 || c.mm_bits & mm_bit(mm) == 0 {
                        continue;
                    }
                    for (i, e) in c.tlb.iter().enumerate() {
                        if e.valid && e.mm == mm {
                            tc.suspect(tlb_len, ci, i);
                        }
                    }
                }
            }
            for k in 0..tc.probes.len() {
                let Some(&(mm, va)) = tc.probes.get(k) else {
                    continue;
                };
                let vpn = va >> PAGE_SHIFT;
                let hvpn = (va >> PMD_SHIFT) << (PMD_SHIFT - PAGE_SHIFT);
                for (ci, c) in self.cpus.iter().enumerate() {
                    if c.nr_valid == 0 || c.mm_bits & mm_bit(mm) == 0 {
                        continue;
                    }
                    for v in [vpn, hvpn] {
                        let i = Self::tlb_index(c, mm, v);
                        if c.tlb.get(i).is_some_and(|e| e.valid) {
                            tc.suspect(tlb_len, ci, i);
                        }
                    }
                }
            }
        }
        tc.global = false;
        tc.mm_wide.clear();
        tc.probes.clear();
        self.tlbcheck = tc;
    }

    /// I4 for the entries of `mm` (`None`: every mm), incrementally (see the module doc).
    pub(crate) fn check_tlb_coherent(&mut self, mm: Option<u32>) {
        let found = self.tlb_first_incoherent(mm);
        // Debug builds (the tests, the fuzz targets) also run the full scan and require the
        // same answer at every check.
        debug_assert_eq!(
            found,
            self.tlb_first_incoherent_full(mm),
            "incremental I4 differs from the full scan at step {}",
            self.step
        );
        if let Some(d) = found {
            self.violate(Invariant::I4, d);
        }
    }

    /// The first stale entry in scope, as `tlb_first_incoherent_full` names it.
    pub(crate) fn tlb_first_incoherent(&mut self, mm: Option<u32>) -> Option<String> {
        self.tlb_track_changes();
        let mut tc = std::mem::take(&mut self.tlbcheck);
        let tlb_len = self.cpus.first().map_or(0, |c| c.tlb.len());
        let mut first: Option<(u32, u32)> = None;
        let mut suspects = std::mem::take(&mut tc.suspects);
        suspects.retain(|&(ci, i)| {
            let e = self
                .cpus
                .get(ci as usize)
                .and_then(|c| c.tlb.get(i as usize));
            let stale = e.is_some_and(|e| e.valid && !self.tlb_entry_coherent(e));
            if !stale {
                if let Some(f) = tc.flag.get_mut(ci as usize * tlb_len + i as usize) {
                    *f = false;
                }
                return false;
            }
            let in_scope = e.is_some_and(|e| mm.is_none_or(|m| m == e.mm));
            if in_scope && first.is_none_or(|f| (ci, i) < f) {
                first = Some((ci, i));
            }
            true
        });
        tc.suspects = suspects;
        self.tlbcheck = tc;
        let (ci, i) = first?;
        let e = self.cpus.get(ci as usize)?.tlb.get(i as usize)?;
        Some(stale_message(ci as usize, e))
    }
}

/// Test-only entry points: compare the incremental check with the full scan, and break the
/// page tables behind the TLB's back (a deliberately broken model).
#[cfg(feature = "testing")]
impl<P: Policy> Model<P> {
    /// (incremental, full scan) I4 answers for every scope: all mms, then each mm by id.
    pub fn i4_incremental_and_full(&mut self) -> Vec<(Option<String>, Option<String>)> {
        let mut ids: Vec<u32> = self.mms.keys().copied().collect();
        ids.sort_unstable();
        std::iter::once(None)
            .chain(ids.into_iter().map(Some))
            .map(|s| {
                (
                    self.tlb_first_incoherent(s),
                    self.tlb_first_incoherent_full(s),
                )
            })
            .collect()
    }

    /// (mm, address) of every valid TLB entry, in (CPU, slot) order.
    pub fn tlb_cached(&self) -> Vec<(u32, u64)> {
        self.cpus
            .iter()
            .flat_map(|c| c.tlb.iter().filter(|e| e.valid))
            .map(|e| (e.mm, e.vpn << PAGE_SHIFT))
            .collect()
    }

    /// Change the page tables for (`mm`, `va`) without any TLB flush, as a broken model
    /// would: `how` 0 clears the PTE, 1 write-protects it, 2 points it at another folio slot,
    /// 3 clears the PMD entry above it, 4 drops the pgd entry. Returns whether anything
    /// changed (the address must be mapped).
    pub fn break_tlb_behind_its_back(&mut self, mm: u32, va: u64, how: u8) -> bool {
        let Some(loc) = self.locate(mm, va) else {
            return false;
        };
        match how % 5 {
            0 => self.set(loc, Pte::None),
            1 | 2 => {
                let Pte::Present(mut p) = self.get(loc) else {
                    return false;
                };
                if how % 5 == 1 {
                    p.write = false;
                } else {
                    p.folio = p.folio.wrapping_add(1);
                }
                self.set(loc, Pte::Present(p));
            }
            3 => {
                let Some(t) = self
                    .mms
                    .get(&mm)
                    .and_then(|m| m.pgd.get(&pud_index(va)).copied())
                else {
                    return false;
                };
                if let Some(e) = self
                    .pmd_tables
                    .get_mut(t as usize)
                    .and_then(|tb| tb.entries.get_mut(pmd_index(va)))
                {
                    *e = PmdEntry::None;
                }
            }
            _ => {
                if let Some(m) = self.mms.get_mut(&mm) {
                    m.pgd.remove(&pud_index(va));
                }
            }
        }
        true
    }
}

/// The I4 violation text for a stale entry.
pub(crate) fn stale_message(ci: usize, e: &TlbEntry) -> String {
    format!(
        "cpu {ci} caches mm{} {:#x} -> folio slot {} (w={}) after the op's flushes",
        e.mm,
        e.vpn << PAGE_SHIFT,
        e.folio,
        e.writable
    )
}
