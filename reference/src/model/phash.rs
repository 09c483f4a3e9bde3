//! The incremental progress hash: `Model::checkpoint_hash` returns the value of
//! `Snapshot::progress_hash` (the engine's checkpoints that locate the first diverging step)
//! at a cost proportional to what changed since the last checkpoint plus one pass over the
//! PMD tables, instead of a walk over every PTE and folio of the state.
//!
//! How it stays exact (it must never return anything but the full computation's value;
//! `Model::progress_hash` is that full computation and `reference/tests/prop.rs` compares the
//! two after every op of random op sequences, broken policies included):
//! - The folio, swap-slot and PTE-table arenas are [`Tracked`]: the only mutable access to an
//!   element (`get_mut`, `iter_mut`, `push`) marks it dirty, so no write can bypass the mark
//!   (the compiler enforces it: `Tracked` has no `DerefMut`).
//! - A folio's word depends only on its own fields (`FolioKey` without the LRU age); the age
//!   (`max_seq - seq`) is applied per group at the checkpoint: folios are summed per `seq`
//!   (a handful of generations), so aging never touches folios.
//! - A swap slot's word depends only on its own fields.
//! - A PTE table's (count, sum) depends on its entries and on the identities (`FolioId`) of
//!   the folios and swap slots they name. Entries are tracked; an identity changes only when
//!   a slot is reused. A swap slot is freed only at `count == 0`; a folio slot freed while its
//!   mapcount or rmap still names a mapping (which only a broken model does, and I7 reports)
//!   marks every table dirty (`all_tables`), so a PTE left pointing at a reused slot is
//!   rehashed with the new identity as the full walk would.
//! - Hugetlb leaves live in PMD tables and are hashed at each checkpoint (the PMD tables are
//!   walked anyway to find the PTE tables' addresses).

use super::state::*;
use super::Model;
use crate::policy::Policy;
use crate::snapshot::ProgressHasher;

/// An arena whose elements are marked dirty on every mutable access (see the module doc).
pub(crate) struct Tracked<T> {
    v: Vec<T>,
    marked: Vec<bool>,
    dirty: Vec<u32>,
    /// Every element may have changed (`PHash::all_tables`).
    all: bool,
    /// A mutable access other than `get_mut_noted` since `take_touched` (`tlbnotes.rs`).
    touched: bool,
}

impl<T> Default for Tracked<T> {
    fn default() -> Self {
        Tracked {
            v: Vec::new(),
            marked: Vec::new(),
            dirty: Vec::new(),
            all: false,
            touched: false,
        }
    }
}

impl<T> std::ops::Deref for Tracked<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        &self.v
    }
}

impl<T> Tracked<T> {
    #[inline]
    fn mark(&mut self, i: usize) {
        if let Some(m) = self.marked.get_mut(i) {
            if !*m {
                *m = true;
                self.dirty.push(i as u32);
            }
        }
    }
    /// The element, marked dirty.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.mark(i);
        self.touched = true;
        self.v.get_mut(i)
    }
    /// The element, marked dirty, for a write whose I4 effect the caller notes itself
    /// (`Model::set`, table allocation; `tlbnotes.rs`).
    #[inline]
    pub fn get_mut_noted(&mut self, i: usize) -> Option<&mut T> {
        self.mark(i);
        self.v.get_mut(i)
    }
    /// Any `get_mut` since the last call? (`tlbnotes.rs`: the next I4 check scans.)
    pub fn take_touched(&mut self) -> bool {
        std::mem::take(&mut self.touched)
    }
    /// Append (the new element is dirty).
    pub fn push(&mut self, x: T) {
        self.v.push(x);
        self.marked.push(false);
        self.mark(self.v.len() - 1);
    }
    /// Hand every dirty index (each once) to `f` and clear the marks; `all`: every index.
    fn drain_dirty(&mut self, mut f: impl FnMut(usize, &T)) {
        if self.all {
            for (i, x) in self.v.iter().enumerate() {
                f(i, x);
            }
            self.marked.fill(false);
            self.dirty.clear();
            self.all = false;
            return;
        }
        for i in self.dirty.drain(..) {
            let i = i as usize;
            if let (Some(x), Some(m)) = (self.v.get(i), self.marked.get_mut(i)) {
                *m = false;
                f(i, x);
            }
        }
    }
}

/// The incremental parts of the progress hash (see the module doc).
#[derive(Default)]
pub(crate) struct PHash {
    /// Per folio slot: (seq group, word) it contributes; `None`: nothing (not live).
    folio_word: Vec<Option<(Option<u64>, u64)>>,
    /// Per `seq` (`None`: off the LRU): (folios, sum of words).
    folio_groups: Vec<(Option<u64>, u64, u64)>,
    /// Per swap slot: the word it contributes (0: none).
    swap_word: Vec<u64>,
    swap_sum: u64,
    /// Per PTE table slot: (non-empty entries, sum of their words at offset 0 of the group).
    table: Vec<(u64, u64)>,
    /// Rehash every PTE table at the next checkpoint (a folio slot freed while mapped).
    pub all_tables: bool,
}

fn group_add(groups: &mut Vec<(Option<u64>, u64, u64)>, key: Option<u64>, n: i64, w: u64) {
    match groups.iter_mut().find(|g| g.0 == key) {
        Some(g) => {
            g.1 = g.1.wrapping_add_signed(n);
            g.2 = if n > 0 {
                g.2.wrapping_add(w)
            } else {
                g.2.wrapping_sub(w)
            };
        }
        None => groups.push((key, n as u64, if n > 0 { w } else { 0u64.wrapping_sub(w) })),
    }
    groups.retain(|g| g.1 != 0);
}

/// The word of one PTE at `offset` into its group, as the snapshot names it.
#[inline]
fn word<P: Policy>(m: &Model<P>, offset: u64, pte: Pte, huge: bool) -> Option<u64> {
    let state = super::check::pte_state(m, pte)?;
    Some(ProgressHasher::pte_word(offset, &state, huge))
}

/// (non-empty entries, sum of words) of PTE table `t`.
fn table_fact<P: Policy>(m: &Model<P>, t: &PteTable) -> (u64, u64) {
    let (mut n, mut s) = (0u64, 0u64);
    for (i, pte) in t.ptes.iter().enumerate() {
        if let Some(w) = word(m, (i as u64) << PAGE_SHIFT, *pte, false) {
            n += 1;
            s = s.wrapping_add(w);
        }
    }
    (n, s)
}

/// The folio's (seq group, word), `None` when it is not live.
fn folio_fact(f: &Folio) -> Option<(Option<u64>, u64)> {
    if !f.live {
        return None;
    }
    let k = super::check::folio_key_no_age(f);
    Some((f.on_lru.then_some(f.seq), ProgressHasher::folio_word(&k)))
}

fn swap_fact(x: &SwapSlot) -> u64 {
    if x.live && x.cached.is_none() {
        ProgressHasher::swap_word(x.id, x.content)
    } else {
        0
    }
}

/// Feed `h` everything but the folio and swap sums: CPUs, then per mm (by id) its header,
/// VMAs, hugetlb tables and PTE groups, the PTE tables' (count, sum) given by `table`.
fn hash_mms<P: Policy>(
    m: &Model<P>,
    h: &mut ProgressHasher,
    mut table: impl FnMut(u32) -> (u64, u64),
) {
    for c in super::check::cpu_snaps(m) {
        h.cpu(&c);
    }
    let mut ids: Vec<u32> = m.mms.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let Some(mm) = m.mms.get(&id) else { continue };
        h.mm(mm.id, mm.rss, mm.nr_pmds, mm.cpumask);
        for v in mm.vmas.values() {
            h.vma(&super::check::vma_key(v));
        }
        for t in super::check::hugetlb_tables(m, mm) {
            h.hugetlb_table(&t);
        }
        for (&pud, &t) in mm.pgd.iter() {
            // The snapshot walks user addresses only (`collect_ptes` over [0, TASK_SIZE)).
            if pud >= TASK_SIZE >> PUD_SHIFT {
                continue;
            }
            let Some(pt) = m.pmd_tables.get(t as usize) else {
                continue;
            };
            for (i, e) in pt.entries.iter().enumerate() {
                let base = pud << PUD_SHIFT | (i as u64) << PMD_SHIFT;
                match *e {
                    PmdEntry::None => {}
                    PmdEntry::Leaf(p) => {
                        if let Some(w) = word(m, 0, p, true) {
                            h.pte_group(base, 1, w);
                        }
                    }
                    PmdEntry::Table(p) => {
                        let (n, s) = table(p);
                        if n > 0 {
                            h.pte_group(base, n, s);
                        }
                    }
                }
            }
        }
    }
}

/// Feed `h` the folio groups, aged: `groups` by `seq`, merged by age (ages saturate at 0).
fn hash_folio_groups(
    max_seq: u64,
    groups: impl Iterator<Item = (Option<u64>, u64, u64)>,
    h: &mut ProgressHasher,
) {
    let mut by_age: Vec<(Option<u64>, u64, u64)> = Vec::with_capacity(8);
    for (seq, n, s) in groups {
        let age = seq.map(|q| max_seq.saturating_sub(q));
        match by_age.iter_mut().find(|g| g.0 == age) {
            Some(g) => {
                g.1 += n;
                g.2 = g.2.wrapping_add(s);
            }
            None => by_age.push((age, n, s)),
        }
    }
    for (age, n, s) in by_age {
        if n > 0 {
            h.folio_group(age, n, s);
        }
    }
}

impl<P: Policy> Model<P> {
    /// The progress hash from scratch (no cache): what `checkpoint_hash` must equal.
    pub(crate) fn progress_hash_full(&self) -> u64 {
        let mut h = ProgressHasher::new(super::check::lru_nr_gens(self));
        hash_mms(self, &mut h, |p| {
            self.pte_tables
                .get(p as usize)
                .map_or((0, 0), |t| table_fact(self, t))
        });
        let mut groups: Vec<(Option<u64>, u64, u64)> = Vec::new();
        for f in self.folios.iter() {
            if let Some((k, w)) = folio_fact(f) {
                match groups.iter_mut().find(|g| g.0 == k) {
                    Some(g) => {
                        g.1 += 1;
                        g.2 = g.2.wrapping_add(w);
                    }
                    None => groups.push((k, 1, w)),
                }
            }
        }
        hash_folio_groups(self.lru.max_seq, groups.into_iter(), &mut h);
        let swap = self
            .swap
            .iter()
            .fold(0u64, |a, x| a.wrapping_add(swap_fact(x)));
        h.swap_sum(swap);
        h.finish()
    }

    /// The progress hash, bringing the caches up to date first (see the module doc).
    pub(crate) fn checkpoint_hash_incremental(&mut self) -> u64 {
        let mut ph = std::mem::take(&mut self.phash);
        // Folios.
        ph.folio_word.resize(self.folios.len(), None);
        let mut folios = std::mem::take(&mut self.folios);
        folios.drain_dirty(|i, f| {
            let Some(cache) = ph.folio_word.get_mut(i) else {
                return;
            };
            if let Some((k, w)) = cache.take() {
                group_add(&mut ph.folio_groups, k, -1, w);
            }
            if let Some((k, w)) = folio_fact(f) {
                group_add(&mut ph.folio_groups, k, 1, w);
                *cache = Some((k, w));
            }
        });
        self.folios = folios;
        // Swap slots.
        ph.swap_word.resize(self.swap.len(), 0);
        let mut swap = std::mem::take(&mut self.swap);
        swap.drain_dirty(|i, x| {
            if let Some(c) = ph.swap_word.get_mut(i) {
                ph.swap_sum = ph.swap_sum.wrapping_sub(*c);
                *c = swap_fact(x);
                ph.swap_sum = ph.swap_sum.wrapping_add(*c);
            }
        });
        self.swap = swap;
        // PTE tables (their words name folio and swap identities: after both are current).
        ph.table.resize(self.pte_tables.len(), (0, 0));
        let mut tables = std::mem::take(&mut self.pte_tables);
        if std::mem::take(&mut ph.all_tables) {
            tables.all = true;
        }
        {
            let me = &*self;
            tables.drain_dirty(|i, t| {
                if let Some(c) = ph.table.get_mut(i) {
                    *c = table_fact(me, t);
                }
            });
        }
        self.pte_tables = tables;
        let mut h = ProgressHasher::new(super::check::lru_nr_gens(self));
        hash_mms(self, &mut h, |p| {
            ph.table.get(p as usize).copied().unwrap_or((0, 0))
        });
        hash_folio_groups(self.lru.max_seq, ph.folio_groups.iter().copied(), &mut h);
        h.swap_sum(ph.swap_sum);
        self.phash = ph;
        h.finish()
    }
}
