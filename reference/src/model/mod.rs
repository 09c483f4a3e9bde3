//! The reference model: `Model<P: Policy>` applies `Op`s to an executable model of Linux MM
//! state (mm-semantics A, B) and checks the invariants of section D after every op. Policies are
//! a type parameter (monomorphised, no dynamic dispatch on the hot path). It must never do I/O,
//! know trace formats, or panic on any op sequence (bad ops are `ModelError`s).

pub(crate) mod check;
pub(crate) mod classic;
pub(crate) mod fault;
pub(crate) mod hugetlb;
pub(crate) mod lru;
pub(crate) mod migrate;
pub(crate) mod phash;
pub(crate) mod reclaim;
pub(crate) mod softdirty;
pub(crate) mod state;
pub(crate) mod thp;
pub(crate) mod tlb;
pub(crate) mod tlbnotes;
pub(crate) mod vma;

use std::collections::BTreeMap;

use crate::counters::Counters;
use crate::hash::FxHashMap;
use crate::invariant::{Invariant, Violation};
use crate::op::{FileId, FolioId, HoldId, MmId, Op, OpOutcome};
use crate::policy::Policy;
use crate::profile::KernelProfile;
use crate::snapshot::Snapshot;
use state::*;

/// Most violations kept in memory (later ones are only counted).
const MAX_KEPT_VIOLATIONS: usize = 10_000;

/// An op the model cannot apply. The engine counts these; the model state is unchanged or
/// consistently partial (never corrupt).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The op names an mm that does not exist.
    #[error("unknown mm {0:?}")]
    UnknownMm(MmId),
    /// fork/exec would create an mm id that already exists.
    #[error("mm {0:?} already exists")]
    MmExists(MmId),
    /// CPU number out of range.
    #[error("cpu {cpu} out of range (profile has {nr_cpus} CPUs)")]
    BadCpu {
        /// CPU given.
        cpu: u32,
        /// Profile's CPU count.
        nr_cpus: u32,
    },
    /// Address range invalid (empty, overflowing, above TASK_SIZE, misaligned hugetlb).
    #[error("bad range {addr:#x}+{len:#x}: {why}")]
    BadRange {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// Why.
        why: &'static str,
    },
    /// Unknown pin/reference handle.
    #[error("unknown hold {0:?}")]
    UnknownHold(HoldId),
    /// Pin/reference handle already in use.
    #[error("hold {0:?} already in use")]
    HoldExists(HoldId),
    /// Nothing mapped (no folio) at this address.
    #[error("nothing mapped at {va:#x} in {mm:?}")]
    NotMapped {
        /// mm.
        mm: MmId,
        /// Address.
        va: u64,
    },
    /// No live folio at this model pfn.
    #[error("no folio at model pfn {0:#x}")]
    NoFolioAtPfn(u64),
    /// A file id reused with a different kind.
    #[error("file {0:?} already known with another kind")]
    FileKindMismatch(FileId),
    /// A mapping the model refuses (e.g. mremap of hugetlb).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// A pin or extra reference held on a folio.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold {
    pub slot: u32,
    pub pin: bool,
    pub write: bool,
}

/// Pending reclaim/migration TLB batch (`tlb_ubc`, `set_tlb_ubc_flush_pending`).
#[derive(Default)]
pub(crate) struct Ubc {
    pub pending: bool,
    pub writable: bool,
    pub cpumask: u64,
    pub mms: Vec<u32>,
}

/// An open `migrate_pages` batch: the union of the deferred mms' `mm_cpumask`s and the mms.
#[derive(Clone, Debug, Default)]
pub(crate) struct MigBatch {
    pub cpumask: u64,
    pub mms: Vec<u32>,
}

/// The executable model, generic over the policy.
pub struct Model<P: Policy> {
    pub(crate) policy: P,
    pub(crate) profile: KernelProfile,
    pub(crate) c: Counters,
    pub(crate) step: u64,
    pub(crate) violations: Vec<Violation>,
    pub(crate) violation_count: u64,
    pub(crate) mms: FxHashMap<u32, Mm>,
    pub(crate) pmd_tables: tlbnotes::Touched<PmdTable>,
    pub(crate) free_pmd: Vec<u32>,
    pub(crate) pte_tables: phash::Tracked<PteTable>,
    pub(crate) free_pte: Vec<u32>,
    pub(crate) folios: phash::Tracked<Folio>,
    pub(crate) free_folios: Vec<u32>,
    pub(crate) next_folio_id: u64,
    pub(crate) lru: Lru,
    pub(crate) cpus: Vec<CpuState>,
    pub(crate) files: FxHashMap<u64, FileState>,
    pub(crate) next_anon_file: u64,
    pub(crate) swap: phash::Tracked<SwapSlot>,
    pub(crate) free_swap: Vec<u32>,
    pub(crate) holds: FxHashMap<u64, Hold>,
    pub(crate) pinned: Vec<u32>,
    pub(crate) ubc: Ubc,
    /// Open `migrate_pages` batches by CPU (`Op::MigrateBatch`): the union of the deferred
    /// mms' `mm_cpumask`s, flushed once at `MigrateBatchStep::Flush`.
    pub(crate) mig_batches: Vec<Option<MigBatch>>,
    /// Scratch buffer reused by rmap walks (avoid per-op allocation).
    pub(crate) scratch: Vec<(u32, u64)>,
    /// Scratch buffer of PTE locations (avoid per-op allocation).
    pub(crate) scratch_locs: Vec<(u64, Loc)>,
    /// Capture time in ns, set by `Op::Clock` (0 until the first one).
    pub(crate) now_ns: u64,
    /// The memcg an `Op::ReclaimMemcg` in progress is confined to (`None`: global reclaim).
    pub(crate) reclaim_scope: Option<u32>,
    /// PMD-mapped THPs and khugepaged's cursor (`thp.rs`).
    pub(crate) thp: thp::ThpState,
    /// PTEs write-protected by soft-dirty clears (`softdirty.rs`; counting only).
    pub(crate) softdirty: softdirty::SoftDirty,
    /// Caches of the incremental progress hash (`phash.rs`).
    pub(crate) phash: phash::PHash,
    /// Page-table writes since the last I4 check (`tlbnotes.rs`).
    pub(crate) tlbnotes: tlbnotes::TlbNotes,
}

/// Where a PTE lives: a PTE table slot, or a hugetlb leaf in a PMD table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    Pte(u32, usize),
    Huge(u32, usize),
}

impl<P: Policy> Model<P> {
    /// A model with no mms, all CPUs idle.
    pub fn new(profile: KernelProfile, policy: P) -> Model<P> {
        let mut profile = profile;
        profile.nr_cpus = profile.nr_cpus.clamp(1, 64);
        profile.tlb_entries = profile.tlb_entries.clamp(1, 4096).next_power_of_two();
        let nr_cpus = profile.nr_cpus as usize;
        let cpus = (0..profile.nr_cpus)
            .map(|_| CpuState {
                loaded: None,
                lazy: false,
                tlb: vec![TlbEntry::default(); profile.tlb_entries as usize],
                nr_valid: 0,
                mm_bits: 0,
            })
            .collect();
        let lru = classic::new_lru(&profile);
        Model {
            policy,
            profile,
            c: Counters::default(),
            step: 0,
            violations: Vec::new(),
            violation_count: 0,
            mms: FxHashMap::default(),
            pmd_tables: Default::default(),
            free_pmd: Vec::new(),
            pte_tables: Default::default(),
            free_pte: Vec::new(),
            folios: Default::default(),
            free_folios: Vec::new(),
            next_folio_id: 1,
            lru,
            cpus,
            files: FxHashMap::default(),
            next_anon_file: 1 << 63,
            swap: Default::default(),
            free_swap: Vec::new(),
            holds: FxHashMap::default(),
            pinned: Vec::new(),
            ubc: Ubc::default(),
            mig_batches: vec![None; nr_cpus],
            scratch: Vec::new(),
            scratch_locs: Vec::new(),
            reclaim_scope: None,
            now_ns: 0,
            thp: thp::ThpState::default(),
            softdirty: softdirty::SoftDirty::default(),
            phash: phash::PHash::default(),
            tlbnotes: tlbnotes::TlbNotes::default(),
        }
    }

    /// Apply one op; invariants are checked as it runs and after it. Every call (also a
    /// failing one) advances the step counter, so `Violation::step` is the op's index.
    pub fn apply(&mut self, op: &Op) -> Result<OpOutcome, ModelError> {
        self.thp_before_op(op);
        let r = self.dispatch(op);
        self.thp_after_op(op);
        self.after_op();
        self.step += 1;
        r
    }

    fn dispatch(&mut self, op: &Op) -> Result<OpOutcome, ModelError> {
        if self.lru.classic.is_some() {
            self.classic_charge(op);
        }
        match *op {
            Op::Fault { cpu, mm, va, kind } => self.op_fault(cpu, mm, va, kind, true),
            Op::Access { cpu, mm, va, kind } => self.op_fault(cpu, mm, va, kind, false),
            Op::Fork { cpu, parent, child } => {
                self.note_mm_origin(child, self.is_preexisting(parent));
                self.op_fork(cpu, parent, child)
            }
            Op::Exec { cpu, old, new } => {
                self.note_mm_origin(new, old.is_none());
                self.op_exec(cpu, old, new)
            }
            Op::Exit { cpu, mm } => self.op_exit(cpu, mm),
            Op::Mmap {
                cpu,
                mm,
                addr,
                len,
                prot,
                flags,
                file,
                pgoff,
            } => self.op_mmap(cpu, mm, addr, len, prot, flags, file, pgoff),
            Op::Munmap { cpu, mm, addr, len } => self.op_munmap(cpu, mm, addr, len),
            Op::Mremap {
                cpu,
                mm,
                old_addr,
                old_len,
                new_addr,
                new_len,
            } => self.op_mremap(cpu, mm, old_addr, old_len, new_addr, new_len),
            Op::Brk { cpu, mm, brk } => self.op_brk(cpu, mm, brk),
            Op::Mprotect {
                cpu,
                mm,
                addr,
                len,
                prot,
            } => self.op_mprotect(cpu, mm, addr, len, prot),
            Op::Madvise {
                cpu,
                mm,
                addr,
                len,
                advice,
            } => self.op_madvise(cpu, mm, addr, len, advice),
            Op::Switch { cpu, next } => self.op_switch(cpu, next),
            Op::Migrate { cpu, target } => self.op_migrate(cpu, target),
            Op::Reclaim { cpu, nr_to_reclaim } => self.op_reclaim(cpu, nr_to_reclaim),
            Op::ReclaimMemcg {
                cpu,
                nr_to_reclaim,
                memcg,
            } => {
                self.reclaim_scope = Some(memcg);
                let r = self.op_reclaim(cpu, nr_to_reclaim);
                self.reclaim_scope = None;
                r
            }
            Op::ReclaimScan {
                cpu,
                nr_scanned,
                memcg,
                file,
                nr_reclaimed,
            } => {
                let pass = reclaim::ScanPass {
                    nr_scanned,
                    memcg,
                    file,
                    nr_reclaimed,
                };
                self.reclaim_scan(cpu, pass, None)
            }
            Op::SetMemcg { mm, memcg } => {
                self.check_mm(mm)?;
                if let Some(m) = self.mms.get_mut(&mm.0) {
                    m.memcg = memcg;
                }
                self.classic_recharge(mm.0, memcg);
                Ok(OpOutcome::Done)
            }
            Op::Pin {
                cpu,
                mm,
                va,
                write,
                hold,
            } => self.op_hold(cpu, mm, va, write, hold, true),
            Op::GetRef { cpu, mm, va, hold } => self.op_hold(cpu, mm, va, true, hold, false),
            Op::Unpin { hold } => self.op_release(hold, false),
            Op::PutRef { hold, write } => self.op_release(hold, write),
            Op::MigrateBatch { cpu, step } => self.op_migrate_batch(cpu, step),
            Op::ThpCollapse { cpu, mm, collapsed } => self.op_thp_collapse(cpu, mm, collapsed),
            Op::ClearSoftDirty { cpu, mm } => self.op_clear_soft_dirty(cpu, mm),
            Op::PageCacheAdd { mm, va, index } => self.op_pagecache_add(mm, va, index),
            Op::Clock { now_ns } => {
                // Monotonic: a capture merged from per-CPU buffers may step back slightly.
                self.now_ns = self.now_ns.max(now_ns);
                Ok(OpOutcome::Done)
            }
        }
    }

    /// Violations found so far (at most 10 000 kept; see `violation_count`).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Number of violations found (including those not kept).
    pub fn violation_count(&self) -> u64 {
        self.violation_count
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.c
    }

    /// Ops applied so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The kernel profile (after clamping `nr_cpus` to 1..=64).
    pub fn profile(&self) -> &KernelProfile {
        &self.profile
    }

    /// Whether `mm` exists.
    pub fn has_mm(&self, mm: MmId) -> bool {
        self.mms.contains_key(&mm.0)
    }

    /// Existing mm ids, sorted.
    pub fn mm_ids(&self) -> Vec<MmId> {
        let mut v: Vec<MmId> = self.mms.keys().map(|k| MmId(*k)).collect();
        v.sort();
        v
    }

    /// Model pfn of the folio mapped (present) at `va` in `mm`.
    pub fn pfn_at(&self, mm: MmId, va: u64) -> Option<u64> {
        match self.pte_at(mm.0, va)? {
            Pte::Present(p) if p.folio != ZERO_SLOT => Some(PFN_BASE + u64::from(p.folio)),
            _ => None,
        }
    }

    /// Identity of the folio mapped (present) at `va` in `mm`.
    pub fn folio_at(&self, mm: MmId, va: u64) -> Option<FolioId> {
        match self.pte_at(mm.0, va)? {
            Pte::Present(p) => self.folios.get(p.folio as usize).map(|f| f.id),
            _ => None,
        }
    }

    /// Run the full (non-incremental) invariant scan now (I7 accounting, I2, I4 over all
    /// TLBs). Call at the end of a replay.
    pub fn finish(&mut self) {
        self.full_check();
    }

    /// Canonical snapshot of the current state.
    pub fn snapshot(&self) -> Snapshot {
        self.build_snapshot()
    }

    /// FNV-1a hash of the canonical snapshot text, computed without building the text.
    /// Cost is proportional to the state size (use it every N steps, not every step).
    pub fn state_hash(&self) -> u64 {
        self.build_snapshot().state_hash()
    }

    /// A cheap hash of the same state ([`Snapshot::progress_hash`]): equal states give equal
    /// values within one build; use it to compare models inside a run, `state_hash` in reports.
    pub fn progress_hash(&self) -> u64 {
        check::progress_hash(self)
    }

    /// [`progress_hash`](Self::progress_hash), computed incrementally: cost proportional to
    /// the folios, swap slots and PTE tables changed since the last call plus the PMD tables
    /// (`model/phash.rs` says why it is always the same value). What the engine's checkpoints
    /// use.
    pub fn checkpoint_hash(&mut self) -> u64 {
        self.checkpoint_hash_incremental()
    }

    // ----- internal helpers shared by the op modules -----

    pub(crate) fn violate(&mut self, invariant: Invariant, detail: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_KEPT_VIOLATIONS {
            self.violations.push(Violation {
                step: self.step,
                invariant,
                detail,
            });
        }
    }

    pub(crate) fn check_cpu(&self, cpu: u32) -> Result<(), ModelError> {
        if cpu < self.profile.nr_cpus {
            Ok(())
        } else {
            Err(ModelError::BadCpu {
                cpu,
                nr_cpus: self.profile.nr_cpus,
            })
        }
    }

    pub(crate) fn check_mm(&self, mm: MmId) -> Result<(), ModelError> {
        if self.mms.contains_key(&mm.0) {
            Ok(())
        } else {
            Err(ModelError::UnknownMm(mm))
        }
    }

    pub(crate) fn find_vma(&self, mm: u32, va: u64) -> Option<Vma> {
        self.mms.get(&mm)?.vmas.find(va)
    }

    pub(crate) fn locate(&self, mm: u32, va: u64) -> Option<Loc> {
        self.locate_in(self.mms.get(&mm)?, va)
    }

    /// `locate` for an mm already looked up.
    #[inline]
    pub(crate) fn locate_in(&self, m: &Mm, va: u64) -> Option<Loc> {
        let t = *m.pgd.get(&pud_index(va))?;
        let pt = self.pmd_tables.get(t as usize)?;
        match pt.entries.get(pmd_index(va))? {
            PmdEntry::None => None,
            PmdEntry::Table(p) => Some(Loc::Pte(*p, pte_index(va))),
            PmdEntry::Leaf(_) => Some(Loc::Huge(t, pmd_index(va))),
        }
    }

    /// The PTE for `va` below PMD table `t` (the lower half of `locate` + `get`).
    #[inline]
    pub(crate) fn pte_in_pmd_table(&self, t: u32, va: u64) -> Option<Pte> {
        let pt = self.pmd_tables.get(t as usize)?;
        match pt.entries.get(pmd_index(va))? {
            PmdEntry::None => None,
            PmdEntry::Table(p) => Some(
                self.pte_tables
                    .get(*p as usize)
                    .and_then(|tb| tb.ptes.get(pte_index(va)).copied())
                    .unwrap_or_default(),
            ),
            PmdEntry::Leaf(l) => Some(*l),
        }
    }

    /// Where and how folio `slot` is mapped at (`mm`, `va`), if the page table still maps it
    /// there: an rmap entry names a mapping, but a walk (`try_to_unmap_one`,
    /// `try_to_migrate_one`) must re-check the PTE (`page_vma_mapped_walk`).
    pub(crate) fn mapped_at(&self, slot: u32, mm: u32, va: u64) -> Option<(Loc, PresentPte)> {
        let loc = self.locate(mm, va)?;
        match self.get(loc) {
            Pte::Present(p) if p.folio == slot => Some((loc, p)),
            _ => None,
        }
    }

    pub(crate) fn get(&self, loc: Loc) -> Pte {
        match loc {
            Loc::Pte(t, i) => self
                .pte_tables
                .get(t as usize)
                .and_then(|tb| tb.ptes.get(i).copied())
                .unwrap_or_default(),
            Loc::Huge(t, i) => match self
                .pmd_tables
                .get(t as usize)
                .and_then(|tb| tb.entries.get(i))
            {
                Some(PmdEntry::Leaf(p)) => *p,
                _ => Pte::None,
            },
        }
    }

    pub(crate) fn set(&mut self, loc: Loc, pte: Pte) {
        // The I4 notes (`tlbnotes.rs`): a write that can leave a cached translation stale is
        // noted here, the one door for single-PTE writes.
        match loc {
            Loc::Pte(t, i) => {
                if let Some(tb) = self.pte_tables.get_mut_noted(t as usize) {
                    if let Some(p) = tb.ptes.get_mut(i) {
                        let old = std::mem::replace(p, pte);
                        if tlbnotes::breaks_cached(old, pte) {
                            self.tlbnotes.note_pte(tb.owner, i);
                        }
                    }
                }
            }
            Loc::Huge(t, i) => {
                if let Some(e) = self
                    .pmd_tables
                    .get_mut_noted(t as usize)
                    .and_then(|tb| tb.entries.get_mut(i))
                {
                    let old = std::mem::replace(e, PmdEntry::Leaf(pte));
                    let breaks = match old {
                        PmdEntry::None => false,
                        PmdEntry::Leaf(o) => tlbnotes::breaks_cached(o, pte),
                        // A PTE table replaced by a leaf: its 4 KiB translations are gone.
                        PmdEntry::Table(_) => true,
                    };
                    if breaks {
                        // Hugetlb leaves may sit in shared PMD tables: no single owner.
                        self.tlbnotes.set_full();
                    }
                }
            }
        }
    }

    pub(crate) fn pte_at(&self, mm: u32, va: u64) -> Option<Pte> {
        self.locate(mm, va).map(|l| self.get(l))
    }

    pub(crate) fn alloc_pmd_table(&mut self, hugetlb: bool) -> u32 {
        if let Some(t) = self.free_pmd.pop() {
            // Unlinked since it was freed (the free forced a full I4 scan): no note needed.
            if let Some(tb) = self.pmd_tables.get_mut_noted(t as usize) {
                tb.entries.fill(PmdEntry::None);
                tb.pts = 0;
                tb.hugetlb = hugetlb;
                tb.live = true;
                return t;
            }
        }
        self.pmd_tables.push(PmdTable {
            entries: Box::new([PmdEntry::None; PTRS]),
            pts: 0,
            hugetlb,
            live: true,
        });
        (self.pmd_tables.len() - 1) as u32
    }

    pub(crate) fn alloc_pte_table(&mut self) -> u32 {
        if let Some(t) = self.free_pte.pop() {
            // Unlinked since it was freed (the free forced a full I4 scan): no note needed.
            if let Some(tb) = self.pte_tables.get_mut_noted(t as usize) {
                tb.ptes.fill(Pte::None);
                tb.live = true;
                tb.owner = None;
                return t;
            }
        }
        self.pte_tables.push(PteTable {
            ptes: Box::new([Pte::None; PTRS]),
            live: true,
            owner: None,
        });
        (self.pte_tables.len() - 1) as u32
    }

    /// Find or allocate the PTE slot for a non-hugetlb `va` (`__handle_mm_fault` allocating
    /// pud/pmd/pte levels).
    pub(crate) fn locate_alloc(&mut self, mm: u32, va: u64) -> Option<Loc> {
        let pud = pud_index(va);
        let existing = self.mms.get(&mm)?.pgd.get(&pud).copied();
        let t = match existing {
            Some(t) => t,
            None => {
                let t = self.alloc_pmd_table(false);
                let m = self.mms.get_mut(&mm)?;
                m.pgd.insert(pud, t);
                m.nr_pmds += 1;
                t
            }
        };
        let e = self
            .pmd_tables
            .get(t as usize)?
            .entries
            .get(pmd_index(va))
            .copied()?;
        match e {
            PmdEntry::Table(p) => Some(Loc::Pte(p, pte_index(va))),
            PmdEntry::Leaf(_) => Some(Loc::Huge(t, pmd_index(va))),
            PmdEntry::None => {
                let p = self.alloc_pte_table();
                // An empty slot gets an empty table: nothing cached can go stale.
                if let Some(slot) = self
                    .pmd_tables
                    .get_mut_noted(t as usize)?
                    .entries
                    .get_mut(pmd_index(va))
                {
                    *slot = PmdEntry::Table(p);
                }
                if let Some(tb) = self.pte_tables.get_mut_noted(p as usize) {
                    tb.owner = Some((mm, va & !(PMD_SIZE - 1)));
                }
                Some(Loc::Pte(p, pte_index(va)))
            }
        }
    }

    pub(crate) fn alloc_folio(&mut self, kind: FolioKind, order: u8, content: u64) -> u32 {
        let id = FolioId(self.next_folio_id);
        self.next_folio_id += 1;
        self.alloc_folio_with_id(kind, order, content, id)
    }

    pub(crate) fn alloc_folio_with_id(
        &mut self,
        kind: FolioKind,
        order: u8,
        content: u64,
        id: FolioId,
    ) -> u32 {
        let slot = match self.free_folios.pop() {
            Some(s) => s,
            None => {
                self.folios.push(Folio::blank());
                (self.folios.len() - 1) as u32
            }
        };
        if let Some(f) = self.folios.get_mut(slot as usize) {
            let mut rmap = std::mem::take(&mut f.rmap);
            rmap.clear();
            let stamp = f.stamp;
            *f = Folio::blank();
            f.rmap = rmap;
            f.stamp = stamp.wrapping_add(1);
            f.live = true;
            f.id = id;
            f.kind = kind;
            f.order = order;
            f.content = content;
        }
        slot
    }

    /// Return a folio to the allocator. I1: no TLB entry may still translate to it.
    pub(crate) fn free_folio(&mut self, slot: u32) {
        let Some(f) = self.folios.get_mut(slot as usize) else {
            return;
        };
        if !f.live {
            return;
        }
        lru::del_folio(&mut self.lru, f);
        if f.mapcount != 0 || !f.rmap.is_empty() {
            // A PTE may still name this slot: its table's cached hash would keep the old
            // identity once the slot is reused (phash.rs).
            self.phash.all_tables = true;
        }
        let (tlb_refs, dirty_refs, id) = (f.tlb_refs, f.tlb_dirty_refs, f.id);
        f.live = false;
        f.rmap.clear();
        if tlb_refs > 0 {
            self.violate(
                Invariant::I1,
                format!(
                    "folio {} freed while {} TLB entries ({} writable+dirty) still translate to it",
                    id.0, tlb_refs, dirty_refs
                ),
            );
            // The stale entries now point at a free page; drop them so one bug is reported once.
            self.tlb_drop_folio(slot);
        }
        self.free_folios.push(slot);
    }

    /// A write to the folio's data: new content version (mm-semantics C.0 content tokens).
    pub(crate) fn write_content(&mut self, slot: u32) {
        let step = self.step;
        if let Some(f) = self.folios.get_mut(slot as usize) {
            f.content =
                crate::hash::fnv1a(f.content ^ 0x9e37_79b9_7f4a_7c15, &step.to_le_bytes()) | 1;
        }
    }

    pub(crate) fn note_mapper(&mut self, file: u64, mm: u32, delta: i32) {
        if let Some(fs) = self.files.get_mut(&file) {
            if let Some(pos) = fs.mappers.iter().position(|(m, _)| *m == mm) {
                if let Some(e) = fs.mappers.get_mut(pos) {
                    let n = i64::from(e.1) + i64::from(delta);
                    if n <= 0 {
                        fs.mappers.remove(pos);
                    } else {
                        e.1 = n as u32;
                    }
                }
            } else if delta > 0 {
                fs.mappers.push((mm, delta as u32));
            }
        }
    }

    /// The snapshot builder.
    fn build_snapshot(&self) -> Snapshot {
        check::snapshot(self)
    }

    /// Sorted view used by snapshot and checks.
    pub(crate) fn sorted_mms(&self) -> BTreeMap<u32, &Mm> {
        self.mms.iter().map(|(k, v)| (*k, v)).collect()
    }
}
