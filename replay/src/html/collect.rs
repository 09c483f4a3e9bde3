//! What `mmreplay report` collects while the policies replay the capture once: the sampled
//! counters (a fixed budget of points, whatever the capture's length), the access heatmap
//! (a fixed number of columns; coarser granules past a fixed number of them) and the op-stream
//! side of the per-process and per-VMA tables (VMAs nobody maps any more are kept only while
//! they are among the busiest).
//!
//! None of them knows the op count in advance: each halves its resolution when it would
//! overflow its budget, so memory stays bounded on any capture and the page stays small. The
//! halving depends only on the op stream, so the same input gives the same report. Nothing
//! here may iterate a hash map into the output unsorted.

use std::collections::{BTreeMap, HashMap};

use mmreplay_reference::counters::Counters;
use mmreplay_reference::op::Op;

use super::{MAX_POINTS, MAX_VMAS, SERIES};

/// Values of the plotted counters ([`SERIES`]) at one point.
pub type Values = [u64; SERIES.len()];

/// The plotted counters of one model.
pub fn values(c: &Counters) -> Values {
    let mut v = [0u64; SERIES.len()];
    for (x, (name, _)) in v.iter_mut().zip(SERIES.iter()) {
        *x = c.get(name).unwrap_or(0);
    }
    v
}

/// Samples of every policy, decimated to at most [`MAX_POINTS`] (+ the first and last).
pub struct Sampler {
    /// Samples offered so far.
    calls: u64,
    /// Every `stride`-th sample is kept.
    stride: u64,
    /// Per policy: (sample number, ops applied, values).
    points: Vec<Vec<(u64, u64, Values)>>,
}

impl Sampler {
    pub fn new(policies: usize) -> Sampler {
        Sampler {
            calls: 0,
            stride: 1,
            points: vec![Vec::new(); policies],
        }
    }

    /// One sample: every model's (ops applied, counters).
    pub fn push(&mut self, all: &[(u64, &Counters)]) {
        self.calls += 1;
        if self.calls % self.stride != 0 {
            return;
        }
        for (p, (steps, c)) in self.points.iter_mut().zip(all) {
            p.push((self.calls, *steps, values(c)));
        }
        if self.points.iter().any(|p| p.len() as u64 > MAX_POINTS) {
            // Keep every other one: the stride doubles, the points so far follow it.
            self.stride *= 2;
            let s = self.stride;
            for p in &mut self.points {
                p.retain(|(k, ..)| k % s == 0);
            }
        }
    }

    /// Per policy: (ops applied, values), starting at (0, zeros), one point per distinct op
    /// count, ending at `last` (the session's final counters, after `finish`) unless a sample
    /// is already there.
    pub fn finish(self, last: &[(u64, Values)]) -> Vec<Vec<(u64, Values)>> {
        self.points
            .into_iter()
            .zip(last)
            .map(|(p, l)| {
                let mut out: Vec<(u64, Values)> = vec![(0, [0; SERIES.len()])];
                for (_, x, v) in p.into_iter().chain([(0, l.0, l.1)]) {
                    if out.last().map(|q| q.0) != Some(x) {
                        out.push((x, v));
                    }
                }
                out
            })
            .collect()
    }
}

/// A heatmap granule: (mm, va >> (16 + shift)).
pub type Granule = (u32, u64);
/// A heatmap cell of one granule: (column, count).
pub type Cell = (u16, u32);

/// Heatmap columns.
const COLS: u64 = super::HEAT_COLS;
/// Most distinct granules kept before they are made twice as large.
pub const MAX_GRANULES: usize = 1 << 15;

/// Largest granule shift: 64 KiB << 47 covers a 64-bit address space.
const MAX_SHIFT: u32 = 47;

/// Accesses and faults per (mm, granule) and column, columns and granules coarsened as needed.
pub struct HeatAcc {
    /// Ops per column (a power of two).
    pub ops_per_col: u64,
    /// Granule = 64 KiB << shift.
    pub shift: u32,
    /// (mm, va >> (16 + shift)) → (column, count), columns ascending.
    cells: HashMap<(u32, u64), Vec<(u16, u32)>>,
}

impl Default for HeatAcc {
    fn default() -> Self {
        HeatAcc {
            ops_per_col: 1,
            shift: 0,
            cells: HashMap::new(),
        }
    }
}

impl HeatAcc {
    /// An access or fault of op `i`.
    pub fn add(&mut self, i: u64, mm: u32, va: u64) {
        while i / self.ops_per_col >= COLS {
            self.ops_per_col *= 2;
            for v in self.cells.values_mut() {
                *v = merge(v.iter().map(|&(c, n)| (c / 2, n)));
            }
        }
        let col = u16::try_from(i / self.ops_per_col).unwrap_or(u16::MAX);
        let line = self.cells.entry((mm, va >> (16 + self.shift))).or_default();
        match line.last_mut() {
            Some((c, n)) if *c == col => *n = n.saturating_add(1),
            _ => line.push((col, 1)),
        }
        // Past MAX_SHIFT each mm is one granule: more mms than MAX_GRANULES stay (their
        // cells are bounded by the mms, as the models' own state is).
        if self.cells.len() > MAX_GRANULES && self.shift < MAX_SHIFT {
            self.shift += 1;
            let mut coarse: HashMap<(u32, u64), Vec<(u16, u32)>> = HashMap::new();
            for ((mm, g), v) in std::mem::take(&mut self.cells) {
                let e = coarse.entry((mm, g >> 1)).or_default();
                let mut both: Vec<(u16, u32)> = e.drain(..).chain(v).collect();
                both.sort_by_key(|(c, _)| *c);
                *e = merge(both.into_iter());
            }
            self.cells = coarse;
        }
    }

    /// Columns used for `ops` ops.
    pub fn cols(&self, ops: u64) -> u64 {
        ops.div_ceil(self.ops_per_col).clamp(1, COLS)
    }

    /// Granules in (mm, address) order with their (column, count) lists.
    pub fn sorted(&self) -> Vec<(Granule, &[Cell])> {
        let mut g: Vec<(Granule, &[Cell])> =
            self.cells.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        g.sort_unstable_by_key(|(k, _)| *k);
        g
    }
}

/// Sum the counts of equal adjacent columns (the input is in column order).
fn merge(it: impl Iterator<Item = (u16, u32)>) -> Vec<(u16, u32)> {
    let mut out: Vec<(u16, u32)> = Vec::new();
    for (c, n) in it {
        match out.last_mut() {
            Some((lc, ln)) if *lc == c => *ln = ln.saturating_add(n),
            _ => out.push((c, n)),
        }
    }
    out
}

/// A VMA as the op stream made it.
#[derive(Clone, Debug)]
pub struct VmaAcc {
    pub mm: u32,
    pub start: u64,
    pub end: u64,
    pub kind: String,
    pub prot: u32,
    pub mapped_at: u64,
    pub unmapped_at: Option<u64>,
    pub accesses: u64,
    /// Address-space maps that still hold it (its mm's and forked children's).
    refs: u32,
}

/// One mm in the op stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmAcc {
    pub ops: u64,
    pub first_op: u64,
    pub last_op: u64,
    pub mmaps: u64,
    pub accesses: u64,
}

/// The op-stream side of the tables and the heatmap.
#[derive(Default)]
pub struct OpsAcc {
    pub heat: HeatAcc,
    pub mms: HashMap<u32, MmAcc>,
    /// Live VMAs (slots; `None` = free).
    slots: Vec<Option<VmaAcc>>,
    free: Vec<usize>,
    /// mm → start → slot.
    maps: HashMap<u32, BTreeMap<u64, usize>>,
    /// VMAs no map holds any more, the busiest (at most 2 × [`MAX_VMAS`] between trims).
    retired: Vec<VmaAcc>,
    /// mmaps seen.
    pub vmas_total: usize,
}

/// The busiest first; ties in op order.
fn vma_rank(v: &VmaAcc) -> (std::cmp::Reverse<u64>, u64) {
    (std::cmp::Reverse(v.accesses), v.mapped_at)
}

impl OpsAcc {
    /// Op number `i` of the stream.
    pub fn op(&mut self, i: u64, op: &Op) {
        if let Some(mm) = op.mm() {
            let e = self.mms.entry(mm.0).or_insert(MmAcc {
                first_op: i,
                ..MmAcc::default()
            });
            e.ops += 1;
            e.last_op = i;
        }
        match op {
            Op::Access { mm, va, .. } | Op::Fault { mm, va, .. } => {
                self.heat.add(i, mm.0, *va);
                self.mms.entry(mm.0).or_default().accesses += 1;
                let k = self
                    .maps
                    .get(&mm.0)
                    .and_then(|m| m.range(..=*va).next_back())
                    .map(|(_, k)| *k);
                if let Some(v) = k
                    .and_then(|k| self.slots.get_mut(k))
                    .and_then(Option::as_mut)
                    .filter(|v| *va < v.end)
                {
                    v.accesses += 1;
                }
            }
            Op::Mmap {
                mm,
                addr,
                len,
                prot,
                flags,
                file,
                ..
            } => {
                self.vmas_total += 1;
                if let Some(e) = self.mms.get_mut(&mm.0) {
                    e.mmaps += 1;
                }
                let kind = match file {
                    Some(f) => format!("{:?}", f.kind).to_lowercase(),
                    None => "anon".to_string(),
                };
                let shared = flags & mmreplay_reference::op::map::SHARED != 0;
                let v = VmaAcc {
                    mm: mm.0,
                    start: *addr,
                    end: addr.saturating_add(*len),
                    kind: if shared {
                        format!("{kind} shared")
                    } else {
                        kind
                    },
                    prot: *prot,
                    mapped_at: i,
                    unmapped_at: None,
                    accesses: 0,
                    refs: 1,
                };
                let k = match self.free.pop() {
                    Some(k) => {
                        if let Some(s) = self.slots.get_mut(k) {
                            *s = Some(v);
                        }
                        k
                    }
                    None => {
                        self.slots.push(Some(v));
                        self.slots.len() - 1
                    }
                };
                // A VMA mapped over another's start replaces it in this map.
                if let Some(old) = self.maps.entry(mm.0).or_default().insert(*addr, k) {
                    self.unref(old);
                }
            }
            Op::Munmap { mm, addr, len, .. } => {
                let end = addr.saturating_add(*len);
                let mut gone = Vec::new();
                if let Some(m) = self.maps.get_mut(&mm.0) {
                    let starts: Vec<u64> = m.range(*addr..end).map(|(s, _)| *s).collect();
                    gone.extend(starts.into_iter().filter_map(|s| m.remove(&s)));
                }
                for k in gone {
                    if let Some(v) = self.slots.get_mut(k).and_then(Option::as_mut) {
                        v.unmapped_at = Some(i);
                    }
                    self.unref(k);
                }
            }
            Op::Fork { parent, child, .. } => {
                let inherited = self.maps.get(&parent.0).cloned().unwrap_or_default();
                for k in inherited.values() {
                    if let Some(v) = self.slots.get_mut(*k).and_then(Option::as_mut) {
                        v.refs += 1;
                    }
                }
                if let Some(old) = self.maps.insert(child.0, inherited) {
                    old.into_values().for_each(|k| self.unref(k));
                }
            }
            Op::Exec { new, .. } => {
                if let Some(old) = self.maps.remove(&new.0) {
                    old.into_values().for_each(|k| self.unref(k));
                }
            }
            Op::Exit { mm, .. } => {
                if let Some(old) = self.maps.remove(&mm.0) {
                    old.into_values().for_each(|k| self.unref(k));
                }
            }
            _ => {}
        }
    }

    /// One map no longer holds slot `k`; the last one retires it.
    fn unref(&mut self, k: usize) {
        let Some(slot) = self.slots.get_mut(k) else {
            return;
        };
        let done = match slot.as_mut() {
            Some(v) => {
                v.refs = v.refs.saturating_sub(1);
                v.refs == 0
            }
            None => false,
        };
        if !done {
            return;
        }
        if let Some(v) = slot.take() {
            self.free.push(k);
            self.retired.push(v);
            if self.retired.len() > 2 * MAX_VMAS {
                self.retired.sort_by_key(vma_rank);
                self.retired.truncate(MAX_VMAS);
            }
        }
    }

    /// The [`MAX_VMAS`] busiest VMAs, live or not (ties in op order).
    pub fn top_vmas(&self) -> Vec<VmaAcc> {
        let mut all: Vec<VmaAcc> = self
            .slots
            .iter()
            .flatten()
            .chain(&self.retired)
            .cloned()
            .collect();
        all.sort_by_key(vma_rank);
        all.truncate(MAX_VMAS);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_keeps_a_bounded_evenly_spaced_set() {
        let c = Counters::default();
        let mut s = Sampler::new(2);
        for k in 1..=10_000u64 {
            s.push(&[(k * 10, &c), (k * 10, &c)]);
        }
        let p = s.finish(&[(100_005, [0; SERIES.len()]), (100_005, [0; SERIES.len()])]);
        for line in &p {
            assert!(line.len() as u64 <= MAX_POINTS + 2, "{}", line.len());
            assert!(line.len() as u64 > MAX_POINTS / 2, "{}", line.len());
            assert_eq!(line.first().map(|x| x.0), Some(0));
            assert_eq!(line.last().map(|x| x.0), Some(100_005));
            // Evenly spaced: every gap but the last is the same.
            let gaps: Vec<u64> = line.windows(2).map(|w| w[1].0 - w[0].0).collect();
            let inner = &gaps[1..gaps.len() - 1];
            assert!(inner.iter().all(|g| *g == inner[0]), "{inner:?}");
        }
    }

    #[test]
    fn heatmap_columns_and_granules_stay_bounded() {
        let mut h = HeatAcc::default();
        let n = 1_000_000u64;
        for i in 0..n {
            // A new granule every op: far more than MAX_GRANULES.
            h.add(i, (i % 3) as u32, i << 16);
        }
        assert!(h.cols(n) <= COLS && h.cols(n) > COLS / 2, "{}", h.cols(n));
        let g = h.sorted();
        assert!(g.len() <= MAX_GRANULES, "{}", g.len());
        assert!(h.shift > 0);
        // No access is lost by coarsening.
        let total: u64 = g
            .iter()
            .flat_map(|(_, v)| v.iter().map(|(_, n)| u64::from(*n)))
            .sum();
        assert_eq!(total, n);
        assert!(g.iter().all(|(_, v)| v.windows(2).all(|w| w[0].0 < w[1].0)));
    }

    #[test]
    fn more_mms_than_granules_stop_coarsening_at_one_granule_per_mm() {
        let mut h = HeatAcc::default();
        let mms = MAX_GRANULES as u32 + 100;
        for mm in 0..mms {
            h.add(
                u64::from(mm),
                mm,
                0x7fff_0000_0000 + u64::from(mm % 7) * (1 << 40),
            );
        }
        assert_eq!(h.shift, MAX_SHIFT);
        assert_eq!(h.sorted().len(), mms as usize);
    }
}
