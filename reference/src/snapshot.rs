//! `Snapshot`: the canonical, deterministic final state of a model (mm-semantics C.0): sorted,
//! named by stable identities (`MmId`, `FolioId`, `FileId`), never by pfn or arena slot. Its
//! `to_text` form (one fact per line) is what the differ diffs; `state_hash` is FNV-1a over that
//! text. It must never include transient or randomised data (TLB contents, slots, pfns).

use serde::{Deserialize, Serialize};

use crate::hash::{FnvWriter, FNV_OFFSET};
use crate::op::{FileId, FolioId, MmId};

/// State of one PTE (or hugetlb huge PTE) in the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PteState {
    /// Maps a folio.
    Present {
        /// Folio identity.
        folio: FolioId,
        /// Writable.
        write: bool,
        /// Accessed (A).
        young: bool,
        /// Dirty (D).
        dirty: bool,
        /// Soft-dirty.
        soft_dirty: bool,
    },
    /// Maps the shared zero page (read-only, special).
    Zero,
    /// Swap entry; `folio` is the identity of the swapped-out data (slot numbers differ).
    Swap {
        /// Identity of the data in the slot.
        folio: FolioId,
        /// x86 exclusive bit.
        exclusive: bool,
    },
    /// Migration entry (only visible if a snapshot is taken mid-migration, which the model
    /// never does; kept for completeness).
    Migration {
        /// Source folio.
        folio: FolioId,
        /// Write entry.
        write: bool,
    },
}

/// One mapped PTE.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PteSnap {
    /// Virtual address (page aligned; 2 MiB aligned for hugetlb).
    pub va: u64,
    /// Huge (hugetlb 2 MiB) entry.
    pub huge: bool,
    /// State.
    pub state: PteState,
}

/// One VMA.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VmaSnap {
    /// Start.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// `PROT_*`.
    pub prot: u32,
    /// MAP_SHARED.
    pub shared: bool,
    /// "anon", "file", "hugetlb".
    pub kind: String,
    /// Backing file.
    pub file: Option<FileId>,
    /// File offset in pages.
    pub pgoff: u64,
}

/// A hugetlb PMD table reachable from this mm (PUD index, sharers beyond the first).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PmdTableSnap {
    /// 1 GiB-aligned base address.
    pub va: u64,
    /// `pt_share_count`.
    pub pt_share_count: u32,
}

/// One address space.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MmSnap {
    /// Identity.
    pub id: MmId,
    /// VMAs by start.
    pub vmas: Vec<VmaSnap>,
    /// Non-empty PTEs by address.
    pub ptes: Vec<PteSnap>,
    /// hugetlb PMD tables by address.
    pub hugetlb_tables: Vec<PmdTableSnap>,
    /// mm_cpumask, sorted CPU numbers.
    pub cpumask: Vec<u32>,
    /// rss [file, anon, swapents].
    pub rss: [i64; 3],
    /// `mm->pgtables_bytes`-style count of reachable PMD tables.
    pub nr_pmds: i64,
}

/// One live folio.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FolioSnap {
    /// Identity.
    pub id: FolioId,
    /// "anon" or "file".
    pub kind: String,
    /// File and page index for file folios.
    pub file: Option<(FileId, u64)>,
    /// Order (0 or 9).
    pub order: u8,
    /// PageAnonExclusive.
    pub anon_exclusive: bool,
    /// PG_dirty.
    pub dirty: bool,
    /// PG_swapbacked (false: lazyfree).
    pub swapbacked: bool,
    /// In the swap cache.
    pub swapcache: bool,
    /// mapcount.
    pub mapcount: u32,
    /// refcount.
    pub refcount: u32,
    /// FOLL_PIN pins.
    pub pincount: u32,
    /// MGLRU generation as an age (`max_seq - seq`), `None` if not on an LRU.
    pub lru_age: Option<u64>,
    /// LRU type (0 anon, 1 file).
    pub lru_type: u8,
    /// PG_referenced.
    pub referenced: bool,
    /// PG_workingset.
    pub workingset: bool,
    /// Logical content version.
    pub content: u64,
}

/// One CPU.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CpuSnap {
    /// CPU number.
    pub cpu: u32,
    /// Loaded mm.
    pub loaded: Option<MmId>,
    /// Lazy TLB.
    pub lazy: bool,
}

/// Canonical final state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// Address spaces sorted by id.
    pub mms: Vec<MmSnap>,
    /// Live folios sorted by id.
    pub folios: Vec<FolioSnap>,
    /// Swapped-out data: (identity, content) sorted by identity.
    pub swap: Vec<(FolioId, u64)>,
    /// CPUs.
    pub cpus: Vec<CpuSnap>,
    /// MGLRU `max_seq - min_seq[anon]`, `max_seq - min_seq[file]` (generations in use).
    pub lru_nr_gens: [u64; 2],
}

fn b(v: bool) -> u8 {
    u8::from(v)
}

impl Snapshot {
    /// Write the canonical text form (one fact per line, stable order) to `w`.
    pub fn write_text<W: std::fmt::Write>(&self, w: &mut W) -> std::fmt::Result {
        writeln!(
            w,
            "lru nr_gens anon={} file={}",
            self.lru_nr_gens[0], self.lru_nr_gens[1]
        )?;
        for c in &self.cpus {
            match c.loaded {
                Some(m) => writeln!(w, "cpu {} loaded=mm{} lazy={}", c.cpu, m.0, b(c.lazy))?,
                None => writeln!(w, "cpu {} loaded=- lazy={}", c.cpu, b(c.lazy))?,
            }
        }
        for m in &self.mms {
            let id = m.id.0;
            let mask: Vec<String> = m.cpumask.iter().map(|c| c.to_string()).collect();
            writeln!(
                w,
                "mm{id} cpumask=[{}] rss_file={} rss_anon={} rss_swap={} nr_pmds={}",
                mask.join(","),
                m.rss[0],
                m.rss[1],
                m.rss[2],
                m.nr_pmds
            )?;
            for v in &m.vmas {
                let p = |bit: u32, ch: char| if v.prot & bit != 0 { ch } else { '-' };
                write!(
                    w,
                    "mm{id} vma {:#x}-{:#x} {}{}{}{} {}",
                    v.start,
                    v.end,
                    p(1, 'r'),
                    p(2, 'w'),
                    p(4, 'x'),
                    if v.shared { 's' } else { 'p' },
                    v.kind
                )?;
                if let Some(f) = v.file {
                    write!(w, " file={} pgoff={}", f.0, v.pgoff)?;
                }
                writeln!(w)?;
            }
            for t in &m.hugetlb_tables {
                writeln!(
                    w,
                    "mm{id} pmd_table {:#x} pt_share_count={}",
                    t.va, t.pt_share_count
                )?;
            }
            for p in &m.ptes {
                let h = if p.huge { " huge" } else { "" };
                match &p.state {
                    PteState::Present {
                        folio,
                        write,
                        young,
                        dirty,
                        soft_dirty,
                    } => writeln!(
                        w,
                        "mm{id} pte {:#x}{h} folio={} w={} a={} d={} sd={}",
                        p.va,
                        folio.0,
                        b(*write),
                        b(*young),
                        b(*dirty),
                        b(*soft_dirty)
                    )?,
                    PteState::Zero => writeln!(w, "mm{id} pte {:#x}{h} zero", p.va)?,
                    PteState::Swap { folio, exclusive } => writeln!(
                        w,
                        "mm{id} pte {:#x}{h} swap folio={} excl={}",
                        p.va,
                        folio.0,
                        b(*exclusive)
                    )?,
                    PteState::Migration { folio, write } => writeln!(
                        w,
                        "mm{id} pte {:#x}{h} migration folio={} w={}",
                        p.va,
                        folio.0,
                        b(*write)
                    )?,
                }
            }
        }
        for f in &self.folios {
            write!(w, "folio {} {} order={}", f.id.0, f.kind, f.order)?;
            if let Some((file, idx)) = f.file {
                write!(w, " file={}:{}", file.0, idx)?;
            }
            write!(
                w,
                " pae={} dirty={} swapbacked={} swapcache={} map={} ref={} pin={}",
                b(f.anon_exclusive),
                b(f.dirty),
                b(f.swapbacked),
                b(f.swapcache),
                f.mapcount,
                f.refcount,
                f.pincount
            )?;
            match f.lru_age {
                Some(a) => write!(w, " lru={}:{}", f.lru_type, a)?,
                None => write!(w, " lru=-")?,
            }
            writeln!(
                w,
                " referenced={} workingset={} content={:#x}",
                b(f.referenced),
                b(f.workingset),
                f.content
            )?;
        }
        for (id, content) in &self.swap {
            writeln!(w, "swap folio={} content={:#x}", id.0, content)?;
        }
        Ok(())
    }

    /// Canonical text form for unified diffs.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    /// A cheap 64-bit hash of the same state, over the fields rather than the text: for
    /// comparisons inside one run (the engine's checkpoints that locate the first diverging
    /// step), where formatting the canonical text dominated the replay profile. Reports and
    /// snapshots use [`Snapshot::state_hash`], which is the stable one.
    ///
    /// `Model::progress_hash` computes the same value straight from the model's arenas,
    /// without building a snapshot; both feed the same facts ([`ProgressHasher`], [`FolioKey`],
    /// [`VmaKey`]) in the same order, and a test checks they agree.
    pub fn progress_hash(&self) -> u64 {
        let mut h = ProgressHasher::new(self.lru_nr_gens);
        for c in &self.cpus {
            h.cpu(c);
        }
        for m in &self.mms {
            let mask = m
                .cpumask
                .iter()
                .filter(|c| **c < 64)
                .fold(0u64, |a, c| a | (1u64 << c));
            h.mm(m.id, m.rss, m.nr_pmds, mask);
            for v in &m.vmas {
                h.vma(&v.key());
            }
            for t in &m.hugetlb_tables {
                h.hugetlb_table(t);
            }
            // PTEs by 2 MiB region (one PTE table or one huge leaf), as the model keeps them.
            let mut group: Option<(u64, u64, u64)> = None;
            for p in &m.ptes {
                let base = p.va & !(PTE_GROUP_SIZE - 1);
                let w = ProgressHasher::pte_word(p.va - base, &p.state, p.huge);
                group = match group {
                    Some((b, n, s)) if b == base => Some((b, n + 1, s.wrapping_add(w))),
                    Some((b, n, s)) => {
                        h.pte_group(b, n, s);
                        Some((base, 1, w))
                    }
                    None => Some((base, 1, w)),
                };
            }
            if let Some((b, n, s)) = group {
                h.pte_group(b, n, s);
            }
        }
        let mut groups: std::collections::BTreeMap<Option<u64>, (u64, u64)> = Default::default();
        for f in &self.folios {
            let k = f.key();
            let e = groups.entry(k.lru_age).or_default();
            e.0 += 1;
            e.1 = e.1.wrapping_add(ProgressHasher::folio_word(&k));
        }
        for (age, (n, s)) in groups {
            h.folio_group(age, n, s);
        }
        for (id, content) in &self.swap {
            h.swap(*id, *content);
        }
        h.finish()
    }

    /// FNV-1a 64 over the canonical text (fixed, process independent).
    pub fn state_hash(&self) -> u64 {
        let mut h = FnvWriter(FNV_OFFSET);
        let _ = self.write_text(&mut h);
        h.0
    }
}

/// The hashed facts of a [`FolioSnap`], borrowing its kind (field order and types as in
/// `FolioSnap`, so the derived hashes agree; the fields mean what `FolioSnap`'s do). Built
/// from the model without allocating.
#[allow(missing_docs)]
#[derive(Hash)]
pub struct FolioKey<'a> {
    pub id: FolioId,
    pub kind: &'a str,
    pub file: Option<(FileId, u64)>,
    pub order: u8,
    pub anon_exclusive: bool,
    pub dirty: bool,
    pub swapbacked: bool,
    pub swapcache: bool,
    pub mapcount: u32,
    pub refcount: u32,
    pub pincount: u32,
    pub lru_age: Option<u64>,
    pub lru_type: u8,
    pub referenced: bool,
    pub workingset: bool,
    pub content: u64,
}

impl FolioSnap {
    /// Its hashed facts.
    pub fn key(&self) -> FolioKey<'_> {
        FolioKey {
            id: self.id,
            kind: &self.kind,
            file: self.file,
            order: self.order,
            anon_exclusive: self.anon_exclusive,
            dirty: self.dirty,
            swapbacked: self.swapbacked,
            swapcache: self.swapcache,
            mapcount: self.mapcount,
            refcount: self.refcount,
            pincount: self.pincount,
            lru_age: self.lru_age,
            lru_type: self.lru_type,
            referenced: self.referenced,
            workingset: self.workingset,
            content: self.content,
        }
    }
}

impl From<FolioKey<'_>> for FolioSnap {
    fn from(k: FolioKey<'_>) -> Self {
        FolioSnap {
            id: k.id,
            kind: k.kind.to_string(),
            file: k.file,
            order: k.order,
            anon_exclusive: k.anon_exclusive,
            dirty: k.dirty,
            swapbacked: k.swapbacked,
            swapcache: k.swapcache,
            mapcount: k.mapcount,
            refcount: k.refcount,
            pincount: k.pincount,
            lru_age: k.lru_age,
            lru_type: k.lru_type,
            referenced: k.referenced,
            workingset: k.workingset,
            content: k.content,
        }
    }
}

/// The hashed facts of a [`VmaSnap`] (as [`FolioKey`] is for folios).
#[allow(missing_docs)]
#[derive(Hash)]
pub struct VmaKey<'a> {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub shared: bool,
    pub kind: &'a str,
    pub file: Option<FileId>,
    pub pgoff: u64,
}

impl VmaSnap {
    /// Its hashed facts.
    pub fn key(&self) -> VmaKey<'_> {
        VmaKey {
            start: self.start,
            end: self.end,
            prot: self.prot,
            shared: self.shared,
            kind: &self.kind,
            file: self.file,
            pgoff: self.pgoff,
        }
    }
}

impl From<VmaKey<'_>> for VmaSnap {
    fn from(k: VmaKey<'_>) -> Self {
        VmaSnap {
            start: k.start,
            end: k.end,
            prot: k.prot,
            shared: k.shared,
            kind: k.kind.to_string(),
            file: k.file,
            pgoff: k.pgoff,
        }
    }
}

/// Bytes of address space one PTE group covers: a PTE table's 2 MiB (or one hugetlb leaf).
pub const PTE_GROUP_SIZE: u64 = 1 << 21;

/// Combines snapshot facts into the progress hash. Ordered facts (CPUs, mms by id, each mm's
/// VMAs by address) go through one running hasher; the rest are sums of per-fact words, so a
/// model can keep them incrementally (`model/phash.rs`): PTEs are summed per 2 MiB group
/// (a PTE table, or a hugetlb leaf) and the groups per mm; folios are summed per LRU age (so
/// a generation change re-mixes a handful of group sums, not every folio); swap slots, and
/// hugetlb tables per mm, are plain sums. Equal snapshots give equal values; a sum can only
/// collide by chance (64-bit words, mixed before summing).
pub struct ProgressHasher {
    ordered: crate::hash::FxHasher,
    folios: u64,
    swap: u64,
    tables: u64,
    ptes: u64,
}

fn fx_one<T: std::hash::Hash>(t: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::FxHasher::default();
    t.hash(&mut h);
    // Spread the low bits: sums of Fx outputs would otherwise cancel too easily.
    h.finish().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995
}

/// A group (key, number of members, sum of member words) as one word to be summed.
fn mix_group(tag: u64, key: u64, n: u64, sum: u64) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::FxHasher::default();
    h.write_u64(tag);
    h.write_u64(key);
    h.write_u64(n);
    h.write_u64(sum);
    // A second round: the group sum is itself a sum, keep it from cancelling linearly.
    let x = h.finish();
    (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (x >> 32)
}

impl ProgressHasher {
    /// Start with the MGLRU generation counts.
    pub fn new(lru_nr_gens: [u64; 2]) -> Self {
        use std::hash::Hash;
        let mut ordered = crate::hash::FxHasher::default();
        lru_nr_gens.hash(&mut ordered);
        ProgressHasher {
            ordered,
            folios: 0,
            swap: 0,
            tables: 0,
            ptes: 0,
        }
    }
    /// One CPU, in CPU order.
    pub fn cpu(&mut self, c: &CpuSnap) {
        use std::hash::Hash;
        c.hash(&mut self.ordered);
    }
    /// Start an mm (mms in id order); its VMAs, hugetlb tables and PTE groups follow.
    pub fn mm(&mut self, id: MmId, rss: [i64; 3], nr_pmds: i64, cpumask: u64) {
        use std::hash::Hash;
        self.flush_mm();
        (0xfeu8, id, rss, nr_pmds, cpumask).hash(&mut self.ordered);
    }
    /// A VMA of the current mm, by start.
    pub fn vma(&mut self, v: &VmaKey<'_>) {
        use std::hash::Hash;
        (0xf1u8, v).hash(&mut self.ordered);
    }
    /// A hugetlb PMD table of the current mm, any order.
    pub fn hugetlb_table(&mut self, t: &PmdTableSnap) {
        self.tables = self.tables.wrapping_add(fx_one(t));
    }
    /// The word of one PTE at `offset` bytes into its 2 MiB group. Packed into words by hand:
    /// the derived `Hash` fed nine small writes per PTE.
    pub fn pte_word(offset: u64, state: &PteState, huge: bool) -> u64 {
        use std::hash::Hasher;
        let b = u64::from;
        let (tag, folio, bits) = match *state {
            PteState::Present {
                folio,
                write,
                young,
                dirty,
                soft_dirty,
            } => (
                1u64,
                folio.0,
                b(write) | b(young) << 1 | b(dirty) << 2 | b(soft_dirty) << 3,
            ),
            PteState::Zero => (2, 0, 0),
            PteState::Swap { folio, exclusive } => (3, folio.0, b(exclusive)),
            PteState::Migration { folio, write } => (4, folio.0, b(write)),
        };
        let mut h = crate::hash::FxHasher::default();
        h.write_u64(folio);
        h.write_u64(offset << 12 | tag << 8 | bits << 1 | b(huge));
        h.finish().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995
    }
    /// The PTEs of the current mm in the 2 MiB group at `base`: `n` of them (n > 0) whose
    /// [`pte_word`](Self::pte_word)s sum to `sum`. Groups in any order.
    pub fn pte_group(&mut self, base: u64, n: u64, sum: u64) {
        self.ptes = self.ptes.wrapping_add(mix_group(0xf2, base, n, sum));
    }
    /// The word of a live folio, without its LRU age (which groups it).
    pub fn folio_word(f: &FolioKey<'_>) -> u64 {
        use std::hash::Hasher;
        let b = u64::from;
        let kind = f.kind.as_bytes();
        let flags = b(f.anon_exclusive)
            | b(f.dirty) << 1
            | b(f.swapbacked) << 2
            | b(f.swapcache) << 3
            | b(f.referenced) << 4
            | b(f.workingset) << 5
            | b(f.file.is_some()) << 6;
        let mut h = crate::hash::FxHasher::default();
        h.write_u64(f.id.0);
        h.write_u64(f.content);
        h.write_u64(u64::from(f.mapcount) | u64::from(f.refcount) << 32);
        h.write_u64(
            u64::from(f.pincount)
                | u64::from(f.order) << 32
                | u64::from(f.lru_type) << 40
                | flags << 48
                | u64::from(kind.first().copied().unwrap_or(0)) << 56,
        );
        h.write_u64(kind.len() as u64);
        if let Some((file, index)) = f.file {
            h.write_u64(file.0);
            h.write_u64(index);
        }
        h.finish().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995
    }
    /// The live folios of one LRU age (`None`: not on an LRU): `n` of them (n > 0) whose
    /// [`folio_word`](Self::folio_word)s sum to `sum`. Each age once, in any order.
    pub fn folio_group(&mut self, age: Option<u64>, n: u64, sum: u64) {
        let key = age.map_or(u64::MAX, |a| a.min(u64::MAX - 1));
        self.folios = self.folios.wrapping_add(mix_group(0xf6, key, n, sum));
    }
    /// A swapped-out page, any order.
    pub fn swap(&mut self, id: FolioId, content: u64) {
        self.swap = self.swap.wrapping_add(Self::swap_word(id, content));
    }
    /// The word [`swap`](Self::swap) adds.
    pub fn swap_word(id: FolioId, content: u64) -> u64 {
        fx_one(&(id, content))
    }
    /// Swap words summed elsewhere (in any order), as if each had been given to `swap`.
    pub fn swap_sum(&mut self, sum: u64) {
        self.swap = self.swap.wrapping_add(sum);
    }
    fn flush_mm(&mut self) {
        use std::hash::Hash;
        if self.tables != 0 {
            (0xf3u8, self.tables).hash(&mut self.ordered);
            self.tables = 0;
        }
        if self.ptes != 0 {
            (0xf5u8, self.ptes).hash(&mut self.ordered);
            self.ptes = 0;
        }
    }
    /// The hash.
    pub fn finish(mut self) -> u64 {
        use std::hash::{Hash, Hasher};
        self.flush_mm();
        (0xf4u8, self.folios, self.swap).hash(&mut self.ordered);
        self.ordered.finish()
    }
}
