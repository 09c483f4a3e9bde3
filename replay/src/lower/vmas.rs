//! The lowering's VMA part: a shadow of each mm's VMAs (start → end) and program break, the
//! second VMA model beside the reference's. It exists only to place records: which mm maps an
//! address a migration entry names (`lower/batch.rs`), and whether a fault hits a mapping the
//! model was told about or one older than the capture, which it infers here (a 2 MiB-aligned
//! anonymous region clipped to the gap between known VMAs, `Op::Mmap` with `MAP_FIXED`).
//!
//! Invariants: the shadow changes only together with the op that tells the model the same
//! thing (a successful mmap/munmap/mremap/brk, an inferred VMA, a seeded VMA, fork's copy), so
//! it never holds a VMA the model has not been given; ranges never overlap (every insert first
//! removes what it covers, splitting straddling VMAs); lengths are whole pages. It must never
//! decide semantics the model owns (merging, protections, what a fault does): it keeps ranges
//! only.

use std::collections::BTreeMap;

use mmreplay_parsers::record::Record;
use mmreplay_reference::op::{map, prot, AccessKind, Op};

use super::{Lowering, PAGE, PMD, TASK_SIZE};

/// One mm's VMAs as the lowering knows them.
#[derive(Clone, Debug, Default)]
pub(super) struct Vmas {
    /// start → end of every VMA the model was told about.
    map: BTreeMap<u64, u64>,
    /// Program break as last seen (the model records the first one).
    brk: Option<u64>,
}

impl Vmas {
    /// Whether a VMA covers `va`.
    pub fn covers(&self, va: u64) -> bool {
        self.map
            .range(..=va)
            .next_back()
            .is_some_and(|(_, end)| va < *end)
    }

    /// A VMA the model was given as is (a seeded one).
    pub fn insert(&mut self, start: u64, end: u64) {
        self.map.insert(start, end);
    }

    /// A successful `mmap` of `len` bytes at `addr`.
    pub fn mmap(&mut self, addr: u64, len: u64) {
        remove_range(&mut self.map, addr, round_up(len));
        if len > 0 {
            self.map.insert(addr, addr.saturating_add(round_up(len)));
        }
    }

    /// A `munmap` of `len` bytes at `addr`.
    pub fn munmap(&mut self, addr: u64, len: u64) {
        remove_range(&mut self.map, addr, round_up(len));
    }

    /// A successful `mremap` of `[old, old+old_len)` to `[new, new+new_len)`.
    pub fn mremap(&mut self, old: u64, old_len: u64, new: u64, new_len: u64) {
        remove_range(&mut self.map, old, round_up(old_len));
        remove_range(&mut self.map, new, round_up(new_len));
        if new_len > 0 {
            self.map.insert(new, new.saturating_add(round_up(new_len)));
        }
    }

    /// A successful `brk` returning `brk`.
    pub fn brk(&mut self, brk: u64) {
        match self.brk {
            None => self.brk = Some(brk),
            Some(old) if brk > old => {
                // The heap grows from the first break the model saw.
                self.map.insert(old, round_up(brk));
                self.brk = Some(brk);
                merge_heap(&mut self.map, old);
            }
            Some(old) if brk < old => {
                remove_range(&mut self.map, round_up(brk), round_up(old) - round_up(brk));
                self.brk = Some(brk);
            }
            Some(_) => {}
        }
    }

    /// Infer the VMA of a fault at `va` no known VMA covers: inserted and returned.
    fn infer(&mut self, va: u64) -> (u64, u64) {
        let (start, end) = inferred_range(&self.map, va);
        self.map.insert(start, end);
        (start, end)
    }
}

impl Lowering {
    /// A page fault: on the faulting task's mm, after inferring its VMA if the fault hit a
    /// mapping older than the capture.
    pub(super) fn fault(
        &mut self,
        r: &Record,
        user: bool,
        address: u64,
        error_code: u64,
        out: &mut Vec<Op>,
    ) {
        if address >= TASK_SIZE {
            self.unplaced(if user {
                "fault_above_task_size"
            } else {
                "kernel_fault_kernel_address"
            });
            return;
        }
        if r.pid <= 0 {
            self.unplaced("fault_in_idle_task");
            return;
        }
        let Some(mm) = self.mm_of(r.pid, r.cpu, out) else {
            self.unplaced("fault_without_mm");
            return;
        };
        let va = address & !(PAGE - 1);
        let inferred = match self.tasks.vmas_mut(mm) {
            Some(v) if !v.covers(va) => Some(v.infer(va)),
            _ => None,
        };
        if let Some((start, end)) = inferred {
            self.stats.inferred_vmas += 1;
            self.emit(
                out,
                Op::Mmap {
                    cpu: r.cpu,
                    mm,
                    addr: start,
                    len: end - start,
                    prot: prot::READ | prot::WRITE | prot::EXEC,
                    flags: map::PRIVATE | map::ANONYMOUS | map::FIXED,
                    file: None,
                    pgoff: 0,
                },
            );
        }
        let kind = AccessKind::from_x86_error_code(error_code);
        self.pagecache.fault(r.pid, mm, address);
        self.emit(
            out,
            Op::Fault {
                cpu: r.cpu,
                mm,
                va: address,
                kind,
            },
        );
    }
}

fn round_up(len: u64) -> u64 {
    len.saturating_add(PAGE - 1) & !(PAGE - 1)
}

/// The 2 MiB-aligned region around `va`, clipped to the gap between known VMAs.
pub(super) fn inferred_range(vmas: &BTreeMap<u64, u64>, va: u64) -> (u64, u64) {
    let mut start = va & !(PMD - 1);
    let mut end = start.saturating_add(PMD).min(TASK_SIZE);
    if let Some((_, pend)) = vmas.range(..=va).next_back() {
        start = start.max(*pend);
    }
    if let Some((nstart, _)) = vmas.range(va + 1..).next() {
        end = end.min(*nstart);
    }
    if start > va || end <= va {
        // Cannot happen when `va` is in a gap; keep one page as a safe fallback.
        return (va, va + PAGE);
    }
    (start, end)
}

/// Remove `[addr, addr+len)` from the shadow, splitting VMAs that straddle it.
pub(super) fn remove_range(vmas: &mut BTreeMap<u64, u64>, addr: u64, len: u64) {
    if len == 0 {
        return;
    }
    let end = addr.saturating_add(len);
    let mut hit: Vec<(u64, u64)> = Vec::new();
    if let Some((s, e)) = vmas.range(..addr).next_back() {
        if *e > addr {
            hit.push((*s, *e));
        }
    }
    hit.extend(vmas.range(addr..end).map(|(s, e)| (*s, *e)));
    for (s, e) in hit {
        vmas.remove(&s);
        if s < addr {
            vmas.insert(s, addr);
        }
        if e > end {
            vmas.insert(end, e);
        }
    }
}

/// Join the heap VMA starting at `start` with a following adjacent one (brk growth).
fn merge_heap(vmas: &mut BTreeMap<u64, u64>, start: u64) {
    let Some(end) = vmas.get(&start).copied() else {
        return;
    };
    if let Some(next_end) = vmas.get(&end).copied() {
        vmas.remove(&end);
        vmas.insert(start, next_end);
    }
}
