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
    pub fn progress_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = crate::hash::FxHasher::default();
        self.hash(&mut h);
        h.finish()
    }

    /// FNV-1a 64 over the canonical text (fixed, process independent).
    pub fn state_hash(&self) -> u64 {
        let mut h = FnvWriter(FNV_OFFSET);
        let _ = self.write_text(&mut h);
        h.0
    }
}
