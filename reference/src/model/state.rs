//! Internal model state: page tables, folios, MGLRU lists, CPUs and TLBs, files and swap.
//! Arena-indexed (`u32` slots) with free lists so the hot path does not allocate. Nothing here
//! is public API; the canonical view is `Snapshot`. It must never hold policy logic.

use std::cell::Cell;
use std::collections::VecDeque;

use crate::hash::FxHashMap;
use crate::op::{FileKind, FolioId, MmId};

pub(crate) const PAGE_SHIFT: u32 = 12;
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
pub(crate) const PMD_SHIFT: u32 = 21;
pub(crate) const PMD_SIZE: u64 = 1 << PMD_SHIFT;
pub(crate) const PUD_SHIFT: u32 = 30;
pub(crate) const PUD_SIZE: u64 = 1 << PUD_SHIFT;
pub(crate) const PTRS: usize = 512;
/// Highest user address (x86-64 4-level: 47 bits).
pub(crate) const TASK_SIZE: u64 = 1 << 47;
/// Slot used by PTEs mapping the shared zero page.
pub(crate) const ZERO_SLOT: u32 = u32::MAX;
/// Model pfns are folio slots plus this base (pfn 0.. are never used).
pub(crate) const PFN_BASE: u64 = 0x10_0000;
/// `HZ` worth of `Model::now_ns`: the `mm_cpumask` trim period (`should_trim_cpumask`).
pub(crate) const NSEC_PER_SEC: u64 = 1_000_000_000;
/// MGLRU constants (include/linux/mmzone.h).
pub(crate) const MAX_NR_GENS: u64 = 4;
pub(crate) const MIN_NR_GENS: u64 = 2;

#[inline]
pub(crate) fn pud_index(va: u64) -> u64 {
    va >> PUD_SHIFT
}
#[inline]
pub(crate) fn pmd_index(va: u64) -> usize {
    ((va >> PMD_SHIFT) & 511) as usize
}
#[inline]
pub(crate) fn pte_index(va: u64) -> usize {
    ((va >> PAGE_SHIFT) & 511) as usize
}

/// A present PTE (or hugetlb huge PTE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PresentPte {
    pub folio: u32,
    pub write: bool,
    pub young: bool,
    pub dirty: bool,
    pub soft_dirty: bool,
    /// Restored by remove_migration_pte and A not set since (for hw_a_sets_after_mig).
    pub mig_a: bool,
    /// Restored by remove_migration_pte and D not set since.
    pub mig_d: bool,
}

/// Migration entry kind (`SWP_MIGRATION_{READ,READ_EXCLUSIVE,WRITE}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MigKind {
    Read,
    ReadExclusive,
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Pte {
    #[default]
    None,
    Present(PresentPte),
    Swap {
        slot: u32,
        exclusive: bool,
        soft_dirty: bool,
    },
    Migration {
        folio: u32,
        kind: MigKind,
        young: bool,
        dirty: bool,
        soft_dirty: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum PmdEntry {
    #[default]
    None,
    Table(u32),
    /// hugetlb 2 MiB leaf (a "huge pte").
    Leaf(Pte),
}

pub(crate) struct PteTable {
    pub ptes: Box<[Pte; PTRS]>,
    pub live: bool,
    /// (mm, 2 MiB-aligned va) the table is linked at, for the incremental I4 check's notes
    /// (`tlbnotes.rs`); `None`: unknown (a write the check must see forces a full scan).
    pub owner: Option<(u32, u64)>,
}

pub(crate) struct PmdTable {
    pub entries: Box<[PmdEntry; PTRS]>,
    /// `pt_share_count`: sharers beyond the first (hugetlb only).
    pub pts: u32,
    pub hugetlb: bool,
    pub live: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VmaKind {
    /// Private anonymous (incl. brk).
    Anon,
    /// File mapping (private or shared), incl. shmem.
    File,
    /// hugetlbfs mapping (2 MiB pages).
    Hugetlb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub shared: bool,
    pub kind: VmaKind,
    pub file: Option<u64>,
    /// File offset of `start`, in pages.
    pub pgoff: u64,
    pub locked: bool,
    pub dontcopy: bool,
    pub wipeonfork: bool,
    /// Mapping created by brk.
    pub heap: bool,
    /// VM_HUGEPAGE (madvise(MADV_HUGEPAGE)).
    pub hugepage: bool,
    /// VM_NOHUGEPAGE (madvise(MADV_NOHUGEPAGE)).
    pub nohugepage: bool,
}

impl Vma {
    #[inline]
    pub fn readable(&self) -> bool {
        self.prot & crate::op::prot::READ != 0
    }
    #[inline]
    pub fn writable(&self) -> bool {
        self.prot & crate::op::prot::WRITE != 0
    }
    #[inline]
    pub fn executable(&self) -> bool {
        self.prot & crate::op::prot::EXEC != 0
    }
    /// `is_cow_mapping`: private and may be written.
    #[inline]
    pub fn is_cow(&self) -> bool {
        !self.shared
    }
    /// Page index in the file for `va`.
    #[inline]
    pub fn file_index(&self, va: u64) -> u64 {
        self.pgoff
            .wrapping_add(va.wrapping_sub(self.start) >> PAGE_SHIFT)
    }
}

/// Entries of the VMA lookup cache (direct-mapped by address; power of two).
const VMA_CACHE: usize = 64;

/// The VMA tree (`mm->mm_mt`): VMAs sorted by start in one contiguous vector (binary search;
/// an mm has at most a few hundred VMAs, so shifting on insert is cheaper than tree nodes),
/// with a small direct-mapped lookup cache (like the pre-6.1 per-thread `vmacache`, which also
/// had several entries hashed by address). Every mutating access clears the cache, so a hit
/// always returns the VMA the search would.
pub(crate) struct VmaTree {
    /// (start, VMA), sorted by start, unique starts.
    map: Vec<(u64, Vma)>,
    cache: [Cell<Option<Vma>>; VMA_CACHE],
    /// Some cache entry may be filled (lets runs of mutations skip re-clearing it).
    cached: Cell<bool>,
}

impl Default for VmaTree {
    fn default() -> Self {
        VmaTree {
            map: Vec::new(),
            cache: std::array::from_fn(|_| Cell::new(None)),
            cached: Cell::new(false),
        }
    }
}

impl VmaTree {
    #[inline]
    fn cache_slot(va: u64) -> usize {
        let vpn = va >> PAGE_SHIFT;
        (vpn.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize & (VMA_CACHE - 1)
    }
    #[inline]
    fn invalidate(&self) {
        if self.cached.replace(false) {
            for c in &self.cache {
                c.set(None);
            }
        }
    }
    /// Index range of the entries whose start lies in `r`.
    fn bounds<R: std::ops::RangeBounds<u64>>(&self, r: &R) -> (usize, usize) {
        use std::ops::Bound;
        let lo = match r.start_bound() {
            Bound::Included(&s) => self.map.partition_point(|(k, _)| *k < s),
            Bound::Excluded(&s) => self.map.partition_point(|(k, _)| *k <= s),
            Bound::Unbounded => 0,
        };
        let hi = match r.end_bound() {
            Bound::Included(&e) => self.map.partition_point(|(k, _)| *k <= e),
            Bound::Excluded(&e) => self.map.partition_point(|(k, _)| *k < e),
            Bound::Unbounded => self.map.len(),
        };
        (lo, hi.max(lo))
    }
    /// The VMA containing `va`.
    #[inline]
    pub fn find(&self, va: u64) -> Option<Vma> {
        let c = self.cache.get(Self::cache_slot(va))?;
        if let Some(v) = c.get() {
            if v.start <= va && va < v.end {
                return Some(v);
            }
        }
        let i = self.map.partition_point(|(k, _)| *k <= va);
        let (_, v) = self.map.get(i.checked_sub(1)?)?;
        if va < v.end {
            c.set(Some(*v));
            self.cached.set(true);
            Some(*v)
        } else {
            None
        }
    }
    pub fn insert(&mut self, k: u64, v: Vma) -> Option<Vma> {
        self.invalidate();
        match self.map.binary_search_by_key(&k, |(s, _)| *s) {
            Ok(i) => self.map.get_mut(i).map(|e| std::mem::replace(&mut e.1, v)),
            Err(i) => {
                self.map.insert(i, (k, v));
                None
            }
        }
    }
    pub fn remove(&mut self, k: &u64) -> Option<Vma> {
        self.invalidate();
        let i = self.map.binary_search_by_key(k, |(s, _)| *s).ok()?;
        Some(self.map.remove(i).1)
    }
    pub fn get_mut(&mut self, k: &u64) -> Option<&mut Vma> {
        self.invalidate();
        let i = self.map.binary_search_by_key(k, |(s, _)| *s).ok()?;
        self.map.get_mut(i).map(|e| &mut e.1)
    }
    pub fn range_mut<R: std::ops::RangeBounds<u64>>(
        &mut self,
        r: R,
    ) -> impl DoubleEndedIterator<Item = (&u64, &mut Vma)> {
        self.invalidate();
        let (lo, hi) = self.bounds(&r);
        self.map
            .get_mut(lo..hi)
            .unwrap_or_default()
            .iter_mut()
            .map(|(k, v)| (&*k, v))
    }
    pub fn clear(&mut self) {
        self.invalidate();
        self.map.clear();
    }
    pub fn range<R: std::ops::RangeBounds<u64>>(
        &self,
        r: R,
    ) -> impl DoubleEndedIterator<Item = (&u64, &Vma)> {
        let (lo, hi) = self.bounds(&r);
        self.map
            .get(lo..hi)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| (k, v))
    }
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Vma> {
        self.map.iter().map(|(_, v)| v)
    }
}

pub(crate) struct Mm {
    pub id: MmId,
    pub vmas: VmaTree,
    /// PUD index -> PMD table (`Pgd` tells the I4 notes when an entry goes; `tlbnotes.rs`).
    pub pgd: super::tlbnotes::Pgd,
    /// mm_cpumask as a bitmask (nr_cpus <= 64).
    pub cpumask: u64,
    /// rss: [FILE, ANON, SWAPENTS, SHMEM-less simplification: hugetlb counted as FILE].
    pub rss: [i64; 3],
    pub nr_pmds: i64,
    pub brk: Option<(u64, u64)>,
    /// `lru_gen_used_bitmap`: set on switch_mm, cleared by the MGLRU walk.
    pub used: bool,
    /// `mm->context.next_trim_cpumask` in ns of `Model::now_ns` (`should_trim_cpumask`).
    pub next_trim_ns: u64,
    /// Memory cgroup of its tasks (0: root), `Op::SetMemcg`.
    pub memcg: u32,
}

pub(crate) const RSS_FILE: usize = 0;
pub(crate) const RSS_ANON: usize = 1;
pub(crate) const RSS_SWAP: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FolioKind {
    Anon,
    File { file: u64, index: u64 },
}

pub(crate) struct Folio {
    pub live: bool,
    pub id: FolioId,
    pub kind: FolioKind,
    /// 0 or 9 (hugetlb).
    pub order: u8,
    pub pae: bool,
    pub dirty: bool,
    pub swapbacked: bool,
    pub swapcache: Option<u32>,
    pub in_pagecache: bool,
    pub mapcount: u32,
    pub refcount: u32,
    pub pincount: u32,
    pub extra: u32,
    /// Extra references that will write (DIO reads in flight).
    pub extra_writers: u32,
    pub on_lru: bool,
    pub lru_type: u8,
    pub seq: u64,
    pub stamp: u32,
    pub refs: u8,
    pub referenced: bool,
    pub workingset: bool,
    pub locked: bool,
    pub content: u64,
    /// Reverse map: (mm, va) of every PTE (present) mapping this folio.
    pub rmap: Vec<(u32, u64)>,
    /// TLB entries (all CPUs) translating to this folio, and how many are writable+dirty.
    pub tlb_refs: u32,
    pub tlb_dirty_refs: u32,
    /// Dropped from its mapping by a lazyfree discard while someone else held a reference.
    pub lazy_discarded: bool,
    /// Classic LRU: the memcg whose lruvec holds the folio (charged at its first LRU add).
    pub memcg: u32,
}

impl Folio {
    pub fn blank() -> Folio {
        Folio {
            live: false,
            id: FolioId(0),
            kind: FolioKind::Anon,
            order: 0,
            pae: false,
            dirty: false,
            swapbacked: true,
            swapcache: None,
            in_pagecache: false,
            mapcount: 0,
            refcount: 0,
            pincount: 0,
            extra: 0,
            extra_writers: 0,
            on_lru: false,
            lru_type: 0,
            seq: 0,
            stamp: 0,
            refs: 0,
            referenced: false,
            workingset: false,
            locked: false,
            content: 0,
            rmap: Vec::new(),
            tlb_refs: 0,
            tlb_dirty_refs: 0,
            lazy_discarded: false,
            memcg: 0,
        }
    }
    #[inline]
    pub fn is_anon(&self) -> bool {
        matches!(self.kind, FolioKind::Anon)
    }
    #[inline]
    pub fn nr_pages(&self) -> u64 {
        1u64 << self.order
    }
}

/// MGLRU state of the single modelled lruvec (node × memcg).
pub(crate) struct Lru {
    pub max_seq: u64,
    pub min_seq: [u64; 2],
    /// `lists[gen][type]` of (slot, stamp); entries whose stamp no longer matches the folio are
    /// stale (lazy deletion) and skipped.
    pub lists: [[VecDeque<(u32, u32)>; 2]; 4],
    pub nr: [[i64; 2]; 4],
    /// MGLRU's two Bloom filters of PMDs worth walking (`lruvec->mm_state.filters`, indexed by
    /// `seq % 2`; `None`: never reset, which walks every PMD), kept exactly (by PTE-table slot)
    /// where the kernel's are probabilistic: see `reclaim.rs:walk_mms`.
    pub bloom: [Option<std::collections::HashSet<u32, crate::hash::FxBuild>>; 2],
    /// The classic two-list LRU, when the profile says so (`seq` is then 1 for an active
    /// folio, 0 for an inactive one, and `max_seq` stays 1). See `classic.rs`.
    pub classic: Option<Box<super::classic::ClassicLru>>,
    /// (file, index) → the mm whose task added the page to the page cache (`Op::PageCacheAdd`):
    /// the memcg charge of a regular-file folio (`classic.rs:pagecache_memcg`).
    pub pagecache_charge: FxHashMap<(u64, u64), u32>,
}

impl Lru {
    pub fn new() -> Lru {
        Lru {
            max_seq: MIN_NR_GENS + 1,
            min_seq: [MIN_NR_GENS, MIN_NR_GENS],
            lists: Default::default(),
            nr: [[0; 2]; 4],
            bloom: [None, None],
            classic: None,
            pagecache_charge: FxHashMap::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TlbEntry {
    pub valid: bool,
    pub mm: u32,
    /// vpn of the page, or of the 2 MiB base for huge entries.
    pub vpn: u64,
    pub huge: bool,
    pub folio: u32,
    pub writable: bool,
    pub dirty: bool,
}

pub(crate) struct CpuState {
    pub loaded: Option<u32>,
    pub lazy: bool,
    /// Direct-mapped, power-of-two sized.
    pub tlb: Vec<TlbEntry>,
    /// Valid entries in `tlb` (lets full scans be skipped on empty TLBs).
    pub nr_valid: u32,
    /// Conservative filter of the mms with entries here: bit `mm % 64` is set on insert and
    /// only cleared when the TLB empties, so a clear bit proves "no entry of that mm".
    pub mm_bits: u64,
}

/// `CpuState::mm_bits` bit of `mm`.
#[inline]
pub(crate) fn mm_bit(mm: u32) -> u64 {
    1u64 << (mm & 63)
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct DiskPage {
    pub content: u64,
    pub id: FolioId,
    pub evicted: bool,
}

pub(crate) struct FileState {
    pub kind: FileKind,
    pub pagecache: FxHashMap<u64, u32>,
    pub disk: FxHashMap<u64, DiskPage>,
    /// (mm, number of VMAs of that mm mapping this file): the i_mmap tree, coarsely.
    pub mappers: Vec<(u32, u32)>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SwapSlot {
    pub live: bool,
    /// swap_map count: PTEs referencing the slot.
    pub count: u32,
    pub content: u64,
    pub id: FolioId,
    /// Folio in the swap cache for this slot, if any.
    pub cached: Option<u32>,
    /// The folio was evicted (for refault accounting).
    pub evicted: bool,
}
