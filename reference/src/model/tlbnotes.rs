//! The exact incremental I4 check (no stale TLB entry at an op boundary): instead of looking
//! every valid TLB entry's PTE up again after each reclaim / migration op, look up only the
//! entries whose PTE may have changed since the last check, when that is cheaper.
//!
//! Why it is exact (its answer is always the full scan's, `check_tlb_coherent` message
//! included; debug builds, so every test, compute both and compare them):
//! - A TLB entry is filled only by the page walk (`hw_access`), from the PTE it just read, so it
//!   is coherent when it is made; a TLB hit only ever sets the entry's D bit.
//! - After a whole-model check that passed, every entry was coherent. An entry becomes stale
//!   only through a write to page-table memory. Every such write goes through one of two doors:
//!   - `Model::set` (one PTE or hugetlb leaf). It notes the PTE's (mm, va) when the write can
//!     break an entry cached from the old value: the old PTE was present, and the new one is not
//!     present, names another folio, or drops write permission. A/D-bit updates and fills of
//!     empty PTEs cost nothing. The (mm, va) comes from the PTE table's `owner`, set where the
//!     table is linked into a PMD (`locate_alloc`, `relink_pte_table`); a table without one, or
//!     a hugetlb leaf, makes the next check a full scan.
//!   - any other mutable access to the PTE-table or PMD-table arenas (zap, table free, THP
//!     split/collapse, MGLRU page-table walks), or a PGD / mm removal. Those arenas hand out
//!     mutable access only through `get_mut` / `push`, which set `touched` (the compiler
//!     enforces it: neither has `DerefMut`); PGD and mm removals set `full` where they happen.
//!     Either makes the next check a full scan.
//! - So at the next check, a stale entry is either at a noted (mm, va) or a full scan runs. The
//!   noted path probes each CPU's direct-mapped slots for the 4 KiB and 2 MiB translations of
//!   each note and reports the first stale entry in the full scan's order (CPU, slot).
//! - A check that found a stale entry leaves it in place, so the next check is a full scan
//!   again (it must report the entry again, as the full scan would). A check limited to one mm
//!   (`Some(mm)`, soft-dirty) always scans and leaves the notes alone.
//!
//! What it must never do: decide anything about the model's behaviour (it only chooses how the
//! same check is computed), or drop a note before a whole-model check has looked at it.

use super::state::*;
use super::Model;
use crate::hash::FxHashMap;

/// More notes than this between two checks: the next checks scan anyway.
const MAX_NOTES: usize = 2048;

/// What changed in the page tables since the last I4 checks. The rule it keeps: every stale
/// TLB entry's (mm, va) is noted, or its mm is in `dirty`, or `full` is set.
#[derive(Default)]
pub(crate) struct TlbNotes {
    /// Per mm: the vas of PTEs written in a way that can make a cached translation stale
    /// (a handful of mms; emptied lists are kept for their capacity).
    notes: Vec<(u32, Vec<u64>)>,
    nr_notes: usize,
    /// Index in `notes` of the mm noted last.
    last: usize,
    /// mms whose page tables changed in other ways (a non-empty table unlinked or relinked):
    /// a check of such an mm scans.
    dirty: Vec<u32>,
    /// Any mm's tables may have changed: every check scans until a whole-model one passes.
    pub full: bool,
}

impl TlbNotes {
    /// A PTE of table `owner` at index `i` was written dangerously (see the module doc).
    #[inline]
    pub fn note_pte(&mut self, owner: Option<(u32, u64)>, i: usize) {
        let Some((mm, base)) = owner else {
            self.full = true;
            return;
        };
        if self.full || (!self.dirty.is_empty() && self.dirty.contains(&mm)) {
            return;
        }
        if self.nr_notes >= MAX_NOTES {
            self.set_full();
            return;
        }
        let va = base + ((i as u64) << PAGE_SHIFT);
        self.nr_notes += 1;
        // Runs of writes come from one mm: try the last one used first.
        let k = match self.notes.get(self.last) {
            Some(n) if n.0 == mm => Some(self.last),
            _ => self.notes.iter().position(|n| n.0 == mm),
        };
        match k.and_then(|k| self.notes.get_mut(k).map(|n| (k, n))) {
            Some((k, n)) => {
                n.1.push(va);
                self.last = k;
            }
            None => {
                self.last = self.notes.len();
                self.notes.push((mm, vec![va]));
            }
        }
    }

    /// Every check scans until a whole-model one passes; the notes are not needed until then.
    pub fn set_full(&mut self) {
        self.full = true;
        self.clear_notes();
    }

    fn clear_notes(&mut self) {
        for n in &mut self.notes {
            n.1.clear();
        }
        self.nr_notes = 0;
    }

    fn drop_mm_notes(&mut self, mm: u32) {
        if let Some(n) = self.notes.iter_mut().find(|n| n.0 == mm) {
            self.nr_notes -= n.1.len();
            n.1.clear();
        }
    }

    /// `mm`'s page tables changed other than through `Model::set`: its checks scan (its notes
    /// are not needed until one passes).
    pub fn dirty_mm(&mut self, mm: u32) {
        if !self.dirty.contains(&mm) {
            self.dirty.push(mm);
        }
        self.drop_mm_notes(mm);
    }

    /// `mm` has no TLB entry left on any CPU (`cpus_forget_mm`): nothing of it can be stale.
    pub fn forget_mm(&mut self, mm: u32) {
        self.dirty.retain(|&d| d != mm);
        self.drop_mm_notes(mm);
    }

    /// How many notes a check of `mm` (`None`: every mm) must look at, or `None` if it must
    /// scan.
    pub fn plan(&self, mm: Option<u32>) -> Option<usize> {
        if self.full {
            return None;
        }
        match mm {
            None if !self.dirty.is_empty() => None,
            None => Some(self.nr_notes),
            Some(m) if self.dirty.contains(&m) => None,
            Some(m) => Some(self.notes_of(m).len()),
        }
    }

    /// The noted vas of `mm`.
    pub fn notes_of(&self, mm: u32) -> &[u64] {
        self.notes
            .iter()
            .find(|n| n.0 == mm)
            .map_or(&[], |n| n.1.as_slice())
    }

    /// Every (mm, noted vas).
    pub fn all(&self) -> impl Iterator<Item = (u32, &[u64])> {
        self.notes.iter().map(|n| (n.0, n.1.as_slice()))
    }

    /// A check of `mm` (`None`: every mm) is done: what it verified is dropped; a stale entry
    /// it found stays stale until flushed, so its mm (every mm) is scanned next time.
    pub fn checked(&mut self, mm: Option<u32>, failed: bool) {
        match (mm, failed) {
            (None, false) => {
                self.clear_notes();
                self.dirty.clear();
                self.full = false;
            }
            (None, true) => self.set_full(),
            (Some(m), false) => self.forget_mm(m),
            (Some(m), true) => self.dirty_mm(m),
        }
    }
}

/// Can a TLB entry cached from `old` be stale once the PTE holds `new`? (The check's test is
/// "present, same folio, writable if the entry is", so only these transitions can break it.)
#[inline]
pub(crate) fn breaks_cached(old: Pte, new: Pte) -> bool {
    match (old, new) {
        (Pte::Present(o), Pte::Present(n)) => o.folio != n.folio || (o.write && !n.write),
        (Pte::Present(_), _) => true,
        _ => false,
    }
}

/// An arena (the PMD tables) whose every mutable access, except the ones `Model::set` and
/// table allocation account for, marks it `touched` (see the module doc).
pub(crate) struct Touched<T> {
    v: Vec<T>,
    touched: bool,
}

impl<T> Default for Touched<T> {
    fn default() -> Self {
        Touched {
            v: Vec::new(),
            touched: false,
        }
    }
}

impl<T> std::ops::Deref for Touched<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        &self.v
    }
}

impl<T> Touched<T> {
    /// The element; the next I4 check scans every TLB entry.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.touched = true;
        self.v.get_mut(i)
    }
    /// The element, for a write the caller notes itself (`Model::set`, table allocation).
    #[inline]
    pub fn get_mut_noted(&mut self, i: usize) -> Option<&mut T> {
        self.v.get_mut(i)
    }
    /// Append (a new, unlinked table: nothing can be cached from it).
    pub fn push(&mut self, x: T) {
        self.v.push(x);
    }
    /// Touched since the last call?
    pub fn take_touched(&mut self) -> bool {
        std::mem::take(&mut self.touched)
    }
}

/// An mm's PGD (PUD index -> PMD table) that records whether an entry was dropped or replaced
/// since the last I4 check of its mm: its only mutable doors are `insert` and `remove`.
#[derive(Default)]
pub(crate) struct Pgd {
    map: FxHashMap<u64, u32>,
    changed: bool,
}

impl std::ops::Deref for Pgd {
    type Target = FxHashMap<u64, u32>;
    #[inline]
    fn deref(&self) -> &FxHashMap<u64, u32> {
        &self.map
    }
}

impl Pgd {
    /// Link PMD table `t` at `pud` (replacing a table there counts as a change).
    pub fn insert(&mut self, pud: u64, t: u32) {
        if self.map.insert(pud, t).is_some() {
            self.changed = true;
        }
    }
    pub fn remove(&mut self, pud: &u64) -> Option<u32> {
        let r = self.map.remove(pud);
        self.changed |= r.is_some();
        r
    }
    /// Changed since the last call?
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

impl<P: crate::policy::Policy> super::Model<P> {
    /// Before an I4 check of `mm` (`None`: every mm): mms whose PGD lost or replaced an entry
    /// are dirty (their checks scan).
    pub(crate) fn tlbnotes_collect_pgd(&mut self, mm: Option<u32>) {
        let Model { mms, tlbnotes, .. } = self;
        match mm {
            Some(m) => {
                if mms.get_mut(&m).is_some_and(|x| x.pgd.take_changed()) {
                    tlbnotes.dirty_mm(m);
                }
            }
            None => {
                for (&id, x) in mms.iter_mut() {
                    if x.pgd.take_changed() {
                        tlbnotes.dirty_mm(id);
                    }
                }
            }
        }
    }

    /// Every PTE of table `p` is `None` (or there is no such table).
    pub(crate) fn pte_table_empty(&self, p: u32) -> bool {
        self.pte_tables
            .get(p as usize)
            .is_none_or(|t| t.ptes.iter().all(|x| *x == Pte::None))
    }
}

/// Test-only entry points: the incremental check beside the full scan, and page tables broken
/// behind the TLB's back (a deliberately broken model: changes without a flush).
#[cfg(feature = "testing")]
impl<P: crate::policy::Policy> Model<P> {
    /// For every scope (all mms, then each mm by id): (the check's answer, taking the noted
    /// path whenever the notes allow; the full scan's answer; whether the noted path answered).
    /// Runs the checks (their bookkeeping included), as the model's own checks would.
    pub fn i4_incremental_and_full(&mut self) -> Vec<(Option<String>, Option<String>, bool)> {
        let mut ids: Vec<u32> = self.mms.keys().copied().collect();
        ids.sort_unstable();
        std::iter::once(None)
            .chain(ids.into_iter().map(Some))
            .map(|s| {
                let full = self.tlb_scan(s);
                let (inc, noted) = self.i4_check(s, true);
                (inc, full, noted)
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

    /// Change the page tables for (`mm`, `va`) without any TLB flush, as a model with a
    /// missing flush would, through the model's own write paths: `how` 0 clears the PTE, 1
    /// write-protects it, 2 points it at another folio slot, 3 clears the PMD entry above it,
    /// 4 drops the pgd entry. Returns whether anything changed (the address must be mapped).
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
