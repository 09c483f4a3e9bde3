//! Invariant checks that are not tied to one code path (I2 after every op, the periodic and
//! final full scan for I4 and I7) and the canonical snapshot builder. It must never mutate
//! model state other than recording violations.

use super::state::*;
use super::{Loc, Model};
use crate::invariant::Invariant;
use crate::policy::Policy;
use crate::snapshot::*;

impl<P: Policy> Model<P> {
    /// Cheap checks after every op.
    pub(crate) fn after_op(&mut self) {
        // I2: a pinned anon folio must be exclusive.
        let mut i = 0;
        while i < self.pinned.len() {
            let slot = self.pinned[i];
            let bad = self
                .folios
                .get(slot as usize)
                .filter(|f| f.live && f.pincount > 0 && f.is_anon() && !f.pae)
                .map(|f| f.id.0);
            if let Some(id) = bad {
                self.violate(
                    Invariant::I2,
                    format!("pinned anon folio {id} is not PageAnonExclusive (maybe shared)"),
                );
                // Report once per pinned folio.
                self.pinned.swap_remove(i);
                continue;
            }
            i += 1;
        }
        let n = self.profile.full_check_every;
        if n > 0 && (self.step + 1) % n == 0 {
            self.full_check();
        }
    }

    /// Full scan: I4 (no stale TLB entry at an op boundary), I7 (mapcount, refcount, rss,
    /// nr_pmds, swap counts, no leftover migration entries).
    pub(crate) fn full_check(&mut self) {
        self.check_tlb_coherent(None);
        let mut mapcount = vec![0u32; self.folios.len()];
        let mut swapcount = vec![0u32; self.swap.len()];
        let mut problems: Vec<String> = Vec::new();
        let mut locs = std::mem::take(&mut self.scratch_locs);
        let mut seen_huge_tables: Vec<u32> = Vec::new();
        for (id, m) in self.sorted_mms() {
            let mut rss = [0i64; 3];
            self.collect_ptes(id, 0, TASK_SIZE, &mut locs);
            for &(va, loc) in &locs {
                let huge_table = match loc {
                    Loc::Huge(t, _) => Some(t),
                    Loc::Pte(..) => None,
                };
                let counted_before = huge_table.is_some_and(|t| seen_huge_tables.contains(&t));
                match self.get(loc) {
                    Pte::Present(p) if p.folio != ZERO_SLOT => {
                        let Some(f) = self.folios.get(p.folio as usize) else {
                            continue;
                        };
                        if !f.live {
                            problems.push(format!("mm{id} {va:#x} maps a freed folio slot"));
                            continue;
                        }
                        if !counted_before {
                            if let Some(c) = mapcount.get_mut(p.folio as usize) {
                                *c += 1;
                            }
                        }
                        if f.order == 0 {
                            rss[if f.is_anon() { RSS_ANON } else { RSS_FILE }] += 1;
                        }
                    }
                    Pte::Swap { slot, .. } => {
                        rss[RSS_SWAP] += 1;
                        if let Some(c) = swapcount.get_mut(slot as usize) {
                            *c += 1;
                        }
                    }
                    Pte::Migration { .. } => {
                        problems.push(format!("mm{id} {va:#x}: migration entry left behind"))
                    }
                    _ => {}
                }
            }
            for t in m.pgd.values() {
                if self.pmd_tables.get(*t as usize).is_some_and(|x| x.hugetlb)
                    && !seen_huge_tables.contains(t)
                {
                    seen_huge_tables.push(*t);
                }
            }
            if rss != m.rss {
                problems.push(format!(
                    "mm{id}: rss {:?} but page tables hold {:?}",
                    m.rss, rss
                ));
            }
            if m.nr_pmds != m.pgd.len() as i64 {
                problems.push(format!(
                    "mm{id}: nr_pmds {} but {} PMD tables reachable",
                    m.nr_pmds,
                    m.pgd.len()
                ));
            }
        }
        self.scratch_locs = locs;
        for (slot, f) in self.folios.iter().enumerate() {
            if !f.live {
                continue;
            }
            let mc = mapcount.get(slot).copied().unwrap_or(0);
            if mc != f.mapcount {
                problems.push(format!(
                    "folio {}: mapcount {} but {} mappings",
                    f.id.0, f.mapcount, mc
                ));
            }
            let expect = f.mapcount
                + u32::from(f.in_pagecache)
                + u32::from(f.swapcache.is_some())
                + f.extra
                + f.pincount;
            if f.refcount != expect {
                problems.push(format!(
                    "folio {}: refcount {} but expected {}",
                    f.id.0, f.refcount, expect
                ));
            }
            if f.locked {
                problems.push(format!("folio {} still locked after the op", f.id.0));
            }
            if f.pincount > 0 && f.is_anon() && !f.pae {
                problems.push(format!("folio {}: pinned but not exclusive", f.id.0));
            }
        }
        for (s, x) in self.swap.iter().enumerate() {
            if x.live && swapcount.get(s).copied().unwrap_or(0) != x.count {
                problems.push(format!(
                    "swap slot of folio {}: count {} but {} swap PTEs",
                    x.id.0,
                    x.count,
                    swapcount.get(s).copied().unwrap_or(0)
                ));
            }
        }
        for (ci, c) in self.cpus.iter().enumerate() {
            let n = c.tlb.iter().filter(|e| e.valid).count() as u32;
            if n != c.nr_valid {
                problems.push(format!(
                    "cpu {ci}: TLB holds {n} entries but counts {}",
                    c.nr_valid
                ));
            }
            for e in c.tlb.iter().filter(|e| e.valid) {
                if self
                    .mms
                    .get(&e.mm)
                    .is_none_or(|m| m.cpumask & (1u64 << ci) == 0)
                {
                    problems.push(format!(
                        "cpu {ci}: TLB entry of mm{} outside its mm_cpumask",
                        e.mm
                    ));
                }
            }
        }
        for p in problems.into_iter().take(100) {
            self.violate(Invariant::I7, p);
        }
    }
}

pub(super) fn vma_key(v: &Vma) -> VmaKey<'static> {
    VmaKey {
        start: v.start,
        end: v.end,
        prot: v.prot,
        shared: v.shared,
        kind: match v.kind {
            VmaKind::Anon => "anon",
            VmaKind::File => "file",
            VmaKind::Hugetlb => "hugetlb",
        },
        file: v.file.map(crate::op::FileId),
        pgoff: v.pgoff,
    }
}

pub(super) fn hugetlb_tables<'a, P: Policy>(
    m: &'a Model<P>,
    mm: &'a Mm,
) -> impl Iterator<Item = PmdTableSnap> + 'a {
    mm.pgd.iter().filter_map(|(pud, t)| {
        let x = m.pmd_tables.get(*t as usize)?;
        x.hugetlb.then_some(PmdTableSnap {
            va: pud << PUD_SHIFT,
            pt_share_count: x.pts,
        })
    })
}

fn pte_snap<P: Policy>(m: &Model<P>, va: u64, loc: Loc) -> Option<PteSnap> {
    let huge = matches!(loc, Loc::Huge(..));
    let state = pte_state(m, m.get(loc))?;
    Some(PteSnap { va, huge, state })
}

fn folio_key<P: Policy>(m: &Model<P>, f: &Folio) -> FolioKey<'static> {
    FolioKey {
        lru_age: f.on_lru.then(|| m.lru.max_seq.saturating_sub(f.seq)),
        ..folio_key_no_age(f)
    }
}

pub(super) fn cpu_snaps<P: Policy>(m: &Model<P>) -> impl Iterator<Item = CpuSnap> + '_ {
    m.cpus.iter().enumerate().map(|(i, c)| CpuSnap {
        cpu: i as u32,
        loaded: c.loaded.and_then(|l| m.mms.get(&l).map(|x| x.id)),
        lazy: c.lazy,
    })
}

pub(super) fn lru_nr_gens<P: Policy>(m: &Model<P>) -> [u64; 2] {
    [
        m.lru.max_seq + 1 - m.lru.min_seq[0],
        m.lru.max_seq + 1 - m.lru.min_seq[1],
    ]
}

/// The canonical snapshot (mm-semantics C.0).
pub(crate) fn snapshot<P: Policy>(m: &Model<P>) -> Snapshot {
    let mut locs = Vec::new();
    let mut mms = Vec::new();
    for (id, mm) in m.sorted_mms() {
        let vmas = mm.vmas.values().map(|v| vma_key(v).into()).collect();
        let mut hugetlb_tables: Vec<PmdTableSnap> = hugetlb_tables(m, mm).collect();
        hugetlb_tables.sort_by_key(|t| t.va);
        m.collect_ptes(id, 0, TASK_SIZE, &mut locs);
        let ptes = locs
            .iter()
            .filter_map(|&(va, loc)| pte_snap(m, va, loc))
            .collect();
        let cpumask = (0..64u32)
            .filter(|c| mm.cpumask & (1u64 << c) != 0)
            .collect();
        mms.push(MmSnap {
            id: mm.id,
            vmas,
            ptes,
            hugetlb_tables,
            cpumask,
            rss: mm.rss,
            nr_pmds: mm.nr_pmds,
        });
    }
    let mut folios: Vec<FolioSnap> = m
        .folios
        .iter()
        .filter(|f| f.live)
        .map(|f| folio_key(m, f).into())
        .collect();
    folios.sort_by_key(|f| f.id);
    let mut swap: Vec<(crate::op::FolioId, u64)> = m
        .swap
        .iter()
        .filter(|x| x.live && x.cached.is_none())
        .map(|x| (x.id, x.content))
        .collect();
    swap.sort();
    Snapshot {
        mms,
        folios,
        swap,
        cpus: cpu_snaps(m).collect(),
        lru_nr_gens: lru_nr_gens(m),
    }
}

/// A folio's hashed facts without its LRU age (the progress hash groups folios by age).
pub(super) fn folio_key_no_age(f: &Folio) -> FolioKey<'static> {
    FolioKey {
        id: f.id,
        kind: if f.is_anon() { "anon" } else { "file" },
        file: match f.kind {
            FolioKind::File { file, index } => Some((crate::op::FileId(file), index)),
            FolioKind::Anon => None,
        },
        order: f.order,
        anon_exclusive: f.is_anon() && f.pae,
        dirty: f.dirty,
        swapbacked: f.swapbacked,
        swapcache: f.swapcache.is_some(),
        mapcount: f.mapcount,
        refcount: f.refcount,
        pincount: f.pincount,
        lru_age: None,
        lru_type: f.lru_type,
        referenced: f.referenced,
        workingset: f.workingset,
        content: f.content,
    }
}

/// [`Snapshot::progress_hash`] of [`snapshot`], computed from the arenas without building
/// the snapshot and without the incremental caches (`phash.rs`).
pub(crate) fn progress_hash<P: Policy>(m: &Model<P>) -> u64 {
    m.progress_hash_full()
}

/// What a snapshot (and the progress hash) records of one PTE: folio ids instead of arena
/// slots; `None` for an empty PTE.
pub(crate) fn pte_state<P: Policy>(m: &Model<P>, pte: Pte) -> Option<PteState> {
    let fid = |slot: u32| {
        m.folios
            .get(slot as usize)
            .map_or(crate::op::FolioId(0), |f| f.id)
    };
    Some(match pte {
        Pte::None => return None,
        Pte::Present(p) if p.folio == ZERO_SLOT => PteState::Zero,
        Pte::Present(p) => PteState::Present {
            folio: fid(p.folio),
            write: p.write,
            young: p.young,
            dirty: p.dirty,
            soft_dirty: p.soft_dirty,
        },
        Pte::Swap {
            slot, exclusive, ..
        } => PteState::Swap {
            folio: m
                .swap
                .get(slot as usize)
                .map_or(crate::op::FolioId(0), |x| x.id),
            exclusive,
        },
        Pte::Migration { folio, kind, .. } => PteState::Migration {
            folio: fid(folio),
            write: kind == MigKind::Write,
        },
    })
}
