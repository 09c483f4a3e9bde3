//! The classic two-list LRU (a kernel without `CONFIG_LRU_GEN`, or with
//! `/sys/kernel/mm/lru_gen/enabled` 0): per-memcg lruvecs with an active and an inactive list
//! of anon and of file folios, and reclaim the way `mm/vmscan.c` of 6.1 and 6.18 does it:
//! `do_try_to_free_pages` priorities → `shrink_lruvec` (`get_scan_count`, rounds of
//! `SWAP_CLUSTER_MAX` per list, the proportional stop, the anon rebalance) →
//! `shrink_active_list` / `shrink_inactive_list` (`isolate_lru_folios` from the tail) →
//! `shrink_folio_list` with `folio_check_references` (the PG_referenced two-strike rule,
//! VM_EXEC file folios activated at first use). The unmap, swap-out, pageout and free steps are
//! the shared ones of `reclaim.rs`, with the batched flush rules of both kernels.
//!
//! A folio's place: `Folio::memcg` names its lruvec (charged at its first LRU add to the memcg
//! of the mm whose op allocated it; `Op::SetMemcg` moves the charge of the mm's folios, as
//! v1's `move_charge_at_immigrate` would). A regular-file folio is charged where
//! `__filemap_add_folio` charges it: to the memcg of the task that added it to the page cache
//! (`Op::PageCacheAdd`, paired by the lowering with the fault that logged the add); one the
//! capture never saw added was cached before by someone else and stays in the root's lruvec,
//! out of reach of the workload's memcg reclaim (shared libraries, the binary). `lru_type` is
//! its list type (`folio_is_file_lru`: not swap-backed), `seq` 1 when active and 0 when
//! inactive. Lists use lazy deletion like
//! `lru.rs`: an entry whose stamp no longer matches its folio is skipped.
//!
//! Departures, each a fidelity limit: no workingset refault detection (a refaulting folio
//! starts inactive, and refaults never force deactivation in `prepare_scan_control`), no
//! `skipped_deactivate` retry, no unevictable list (an mlocked folio is activated), swap is
//! never full, every reclaim is `may_swap` and `may_writepage` with swappiness 60, dirty file
//! folios are written by reclaim itself (no flusher threads), and writeback ends right after
//! the batch is put back (`folio_end_writeback` → `folio_rotate_reclaimable`: to the inactive
//! tail, so the next pass frees it). The lowering gives each reclaim op the kernel's own
//! `nr_reclaimed`; pages one op frees beyond it are credited against the next op, so the totals
//! follow the kernel's.
//!
//! Lockstep: each `shrink_inactive_list` batch is a `ReclaimStep::Evict`, each
//! `shrink_active_list` batch a `ReclaimStep::Deactivate`; a follower isolates the same folios
//! wherever its own lists hold them and takes the reference's decisions (see `reclaim.rs`).
//!
//! This module must never run when the profile's LRU is MGLRU (`Lru::classic` is `None`) and
//! never free a folio before the batched flush covering it (unless the policy's negative
//! control says so).

use std::collections::{BTreeMap, VecDeque};

use super::reclaim::note_skip;
use super::state::*;
use super::{Model, ModelError};
use crate::engine::{ImposeResult, ReclaimScript, ReclaimStep, ScriptFolio};
use crate::op::{FileKind, FolioId, MmId, Op, OpOutcome};
use crate::policy::Policy;
use crate::profile::{Base, KernelProfile, LruKind};

/// `SWAP_CLUSTER_MAX`.
const SWAP_CLUSTER_MAX: u64 = 32;
/// `DEF_PRIORITY`.
const DEF_PRIORITY: u32 = 12;
/// `vm_swappiness` (and memcg v1 `memory.swappiness`) default.
const SWAPPINESS: u64 = 60;
/// `MAX_SWAPPINESS` (200 in both kernels).
const MAX_SWAPPINESS: u64 = 200;
/// `PAGEVEC_SIZE` / folio batch: 6.18's `shrink_folio_list` flushes and frees when it fills.
const FREE_BATCH: usize = 31;

/// One lruvec (node × memcg).
#[derive(Default)]
pub(crate) struct Lruvec {
    /// `lists[type][active]` of (slot, stamp): front = head (`list_add`), back = tail
    /// (`lru_to_folio`).
    lists: [[VecDeque<(u32, u32)>; 2]; 2],
    /// Pages on each list (`lruvec_page_state(NR_LRU_BASE + lru)`).
    nr: [[u64; 2]; 2],
    /// `lruvec->anon_cost`, `file_cost` (`lru_note_cost`).
    cost: [u64; 2],
}

/// The classic LRU state: one lruvec per memcg (0 = root).
#[derive(Default)]
pub(crate) struct ClassicLru {
    lruvecs: BTreeMap<u32, Lruvec>,
    /// The memcg a folio added by the current op is charged to.
    charge: u32,
    /// Pages freed beyond what earlier reclaim ops asked for.
    credit: u64,
    /// List entries added since the last sweep of stale ones.
    adds: u64,
}

/// The LRU for `p`: MGLRU generations, or the classic lists (`max_seq` 1, `min_seq` 0, so a
/// snapshot's `lru_age` is 0 for active and 1 for inactive folios).
pub(crate) fn new_lru(p: &KernelProfile) -> Lru {
    let mut l = Lru::new();
    if p.lru == LruKind::Classic {
        l.max_seq = 1;
        l.min_seq = [0, 0];
        l.classic = Some(Box::default());
    }
    l
}

/// `folio_is_file_lru`: 0 = anon list, 1 = file list.
#[inline]
fn lru_type(f: &Folio) -> usize {
    usize::from(!f.swapbacked)
}

/// `lruvec_add_folio` (head) or `lruvec_add_folio_tail`.
pub(crate) fn add(c: &mut ClassicLru, f: &mut Folio, slot: u32, active: bool, tail: bool) {
    let t = lru_type(f);
    f.lru_type = t as u8;
    f.seq = u64::from(active);
    f.on_lru = true;
    f.stamp = f.stamp.wrapping_add(1);
    let lv = c.lruvecs.entry(f.memcg).or_default();
    let a = usize::from(active);
    if tail {
        lv.lists[t][a].push_back((slot, f.stamp));
    } else {
        lv.lists[t][a].push_front((slot, f.stamp));
    }
    lv.nr[t][a] += f.nr_pages();
    c.adds += 1;
}

/// A folio's first LRU add: charged to the current op's memcg, inactive
/// (`folio_add_lru`: new anon folios start inactive since v5.9, page cache too).
pub(crate) fn add_new(c: &mut ClassicLru, f: &mut Folio, slot: u32) {
    f.memcg = c.charge;
    add(c, f, slot, false, false);
}

/// A folio's first LRU add, charged to `memcg` (a page-cache folio: see
/// [`Model::pagecache_memcg`]).
pub(crate) fn add_charged(c: &mut ClassicLru, f: &mut Folio, slot: u32, memcg: u32) {
    f.memcg = memcg;
    add(c, f, slot, false, false);
}

/// `lruvec_del_folio` (lazy: the stale entry is skipped later).
pub(crate) fn del(c: &mut ClassicLru, f: &mut Folio) {
    if !f.on_lru {
        return;
    }
    if let Some(lv) = c.lruvecs.get_mut(&f.memcg) {
        let t = usize::from(f.lru_type & 1);
        let a = usize::from(f.seq != 0);
        lv.nr[t][a] = lv.nr[t][a].saturating_sub(f.nr_pages());
    }
    f.on_lru = false;
    f.stamp = f.stamp.wrapping_add(1);
}

/// `inactive_is_low`: the inactive list is below `active / inactive_ratio`.
fn inactive_is_low(nr: &[[u64; 2]; 2], t: usize) -> bool {
    let (inactive, active) = (nr[t][0], nr[t][1]);
    let gb = (inactive + active) >> (30 - PAGE_SHIFT);
    let ratio = if gb > 0 { (10 * gb).isqrt() } else { 1 };
    inactive * ratio < active
}

/// `get_scan_count`'s `scan_balance`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Balance {
    Equal,
    Fract,
    File,
}

/// What `shrink_folio_list` did with one isolated list.
#[derive(Default)]
struct Pass {
    reclaimed: u64,
    ref_keep: u64,
    activated: u64,
    pageout: u64,
    /// Slots that reached the unmap/free path (of which `FOLIOREF_RECLAIM_CLEAN`), and slots
    /// freed.
    tried: Vec<u32>,
    clean_only: Vec<u32>,
    freed: Vec<u32>,
    /// Imposed victims that could not be freed: (folio id, why).
    skipped: Vec<(u64, &'static str)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Refs {
    Activate,
    Keep,
    ReclaimClean,
    Reclaim,
}

impl<P: Policy> Model<P> {
    /// Drop stale list entries (lazy deletion leaves one per del; lists of exited processes'
    /// memcgs are never scanned again) once adds since the last sweep exceed twice the pages
    /// on the lists: amortised O(1) per add, memory bounded by the live folios.
    fn classic_sweep(&mut self) {
        let Model { folios, lru, .. } = self;
        let Some(c) = lru.classic.as_deref_mut() else {
            return;
        };
        let live: u64 = c
            .lruvecs
            .values()
            .flat_map(|lv| lv.nr.iter().flatten())
            .sum();
        if c.adds <= 2 * live + 4096 {
            return;
        }
        c.adds = 0;
        for lv in c.lruvecs.values_mut() {
            for l in lv.lists.iter_mut().flatten() {
                l.retain(|&(slot, stamp)| {
                    folios
                        .get(slot as usize)
                        .is_some_and(|f| f.live && f.on_lru && f.stamp == stamp)
                });
                l.shrink_to_fit();
            }
        }
        c.lruvecs
            .retain(|_, lv| lv.lists.iter().flatten().any(|l| !l.is_empty()));
    }

    /// Before an op: the memcg its new folios are charged to (the faulting or forking mm's).
    pub(super) fn classic_charge(&mut self, op: &Op) {
        self.classic_sweep();
        let mm = match *op {
            Op::Fault { mm, .. } | Op::Access { mm, .. } => mm.0,
            Op::Fork { parent, .. } => parent.0,
            _ => return,
        };
        let memcg = self.mms.get(&mm).map_or(0, |m| m.memcg);
        if let Some(c) = self.lru.classic.as_deref_mut() {
            c.charge = memcg;
        }
    }

    /// The memcg a regular-file folio (`file`, `index`) is charged to: that of the mm whose task
    /// added it to the page cache (`Op::PageCacheAdd`), else the root's (cached before the
    /// capture or by a task outside it).
    pub(crate) fn pagecache_memcg(&self, file: u64, index: u64) -> u32 {
        self.lru
            .pagecache_charge
            .get(&(file, index))
            .and_then(|mm| self.mms.get(mm))
            .map_or(0, |m| m.memcg)
    }

    /// `Op::PageCacheAdd`: page `index` of the regular file `mm` maps at `va` was added to the
    /// page cache by `mm`'s task (`__filemap_add_folio` → `mem_cgroup_charge`). Remembered for
    /// the folio's charge, and a folio already in the model's page cache (the fault that logged
    /// the add created it a moment ago) moves to that memcg's lruvec now.
    pub(super) fn op_pagecache_add(
        &mut self,
        mm: MmId,
        va: u64,
        index: u64,
    ) -> Result<OpOutcome, ModelError> {
        self.check_mm(mm)?;
        let Some(file) = self.find_vma(mm.0, va).and_then(|v| v.file) else {
            return Ok(OpOutcome::Done);
        };
        let Some(fs) = self.files.get(&file) else {
            return Ok(OpOutcome::Done);
        };
        if fs.kind != FileKind::Regular {
            return Ok(OpOutcome::Done);
        }
        let slot = fs.pagecache.get(&index).copied();
        self.lru.pagecache_charge.insert((file, index), mm.0);
        self.c.pagecache_adds_charged += 1;
        let memcg = self.pagecache_memcg(file, index);
        let (Some(slot), Some(c)) = (slot, self.lru.classic.as_deref_mut()) else {
            return Ok(OpOutcome::Done);
        };
        if let Some(f) = self.folios.get_mut(slot as usize) {
            if f.live && f.on_lru && f.memcg != memcg {
                let active = f.seq != 0;
                del(c, f);
                f.memcg = memcg;
                add(c, f, slot, active, false);
            }
        }
        Ok(OpOutcome::Done)
    }

    /// `Op::SetMemcg`: folios charged to `mm` (a regular file's: added to the page cache by its
    /// task; others: first mapped by it) move to `memcg`'s lruvec, keeping their list order (the
    /// model learns a memcg only at its first reclaim episode).
    pub(super) fn classic_recharge(&mut self, mm: u32, memcg: u32) {
        let Some(c) = self.lru.classic.as_deref_mut() else {
            return;
        };
        let others: Vec<u32> = c.lruvecs.keys().copied().filter(|k| *k != memcg).collect();
        for k in others {
            for t in 0..2 {
                for a in 0..2 {
                    let Some(lv) = c.lruvecs.get_mut(&k) else {
                        continue;
                    };
                    let list = std::mem::take(&mut lv.lists[t][a]);
                    let mut stay = VecDeque::with_capacity(list.len());
                    let mut moved: Vec<(u32, u32, u64)> = Vec::new();
                    for (slot, stamp) in list {
                        let Some(f) = self.folios.get_mut(slot as usize) else {
                            continue;
                        };
                        if !(f.live && f.on_lru && f.stamp == stamp) {
                            continue; // stale entry: dropped here
                        }
                        let owner = match f.kind {
                            FolioKind::File { file, index } if !f.swapbacked => {
                                self.lru.pagecache_charge.get(&(file, index)).copied()
                            }
                            _ => f.rmap.first().map(|e| e.0),
                        };
                        if owner == Some(mm) {
                            f.memcg = memcg;
                            moved.push((slot, stamp, f.nr_pages()));
                        } else {
                            stay.push_back((slot, stamp));
                        }
                    }
                    lv.lists[t][a] = stay;
                    for &(_, _, n) in &moved {
                        lv.nr[t][a] = lv.nr[t][a].saturating_sub(n);
                    }
                    let dst = c.lruvecs.entry(memcg).or_default();
                    for (slot, stamp, n) in moved {
                        dst.lists[t][a].push_back((slot, stamp));
                        dst.nr[t][a] += n;
                    }
                }
            }
        }
    }

    /// `do_try_to_free_pages` for one reclaim op: priorities from `DEF_PRIORITY` down, each
    /// shrinking the lruvecs in scope (the memcg's, or every one for global reclaim), until
    /// `nr_to_reclaim` pages (less the credit of earlier overshoot) are freed.
    pub(super) fn classic_reclaim(
        &mut self,
        cpu: u32,
        nr_to_reclaim: u32,
        mut rec: Option<&mut ReclaimScript>,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        let (target, memcgs) = {
            let Some(c) = self.lru.classic.as_deref_mut() else {
                return Ok(OpOutcome::Done);
            };
            let want = u64::from(nr_to_reclaim);
            let target = want.saturating_sub(c.credit);
            c.credit = c.credit.saturating_sub(want);
            let memcgs: Vec<u32> = match self.reclaim_scope {
                Some(m) => vec![m],
                None => c.lruvecs.keys().copied().collect(),
            };
            (target, memcgs)
        };
        let mut reclaimed = 0u64;
        if target > 0 {
            'prio: for priority in (0..=DEF_PRIORITY).rev() {
                for &m in &memcgs {
                    let left = target - reclaimed;
                    reclaimed += self.shrink_lruvec(cpu, m, priority, left, rec.as_deref_mut());
                    if reclaimed >= target {
                        break 'prio;
                    }
                }
            }
        }
        if let Some(c) = self.lru.classic.as_deref_mut() {
            c.credit += reclaimed.saturating_sub(target);
        }
        self.check_tlb_coherent(None);
        Ok(OpOutcome::Done)
    }

    /// A logged pass (`Op::ReclaimScan`): `shrink_inactive_list` of `nr_scanned` pages on
    /// `memcg`'s inactive list of the kernel's pass (its `reclaim_flags`; when unknown, anon,
    /// or file when anon is empty, as `for_each_evictable_lru` takes anon first). What the
    /// model frees beyond the kernel's `nr_reclaimed` is credit against the next targets, as
    /// an overshoot is; what it frees short of it uses up credit.
    pub(super) fn classic_scan_pass(
        &mut self,
        cpu: u32,
        pass: super::reclaim::ScanPass,
        rec: Option<&mut ReclaimScript>,
    ) {
        let memcg = pass.memcg;
        let Some(nr) = self
            .lru
            .classic
            .as_ref()
            .and_then(|c| c.lruvecs.get(&memcg))
            .map(|lv| lv.nr)
        else {
            return;
        };
        let t = match pass.file {
            Some(file) => usize::from(file),
            None => usize::from(nr[0][0] == 0 && nr[1][0] > 0),
        };
        let freed = self.shrink_inactive_list(cpu, memcg, u64::from(pass.nr_scanned), t, rec);
        if let Some(c) = self.lru.classic.as_deref_mut() {
            let kernel = u64::from(pass.nr_reclaimed);
            c.credit = (c.credit + freed).saturating_sub(kernel);
        }
    }

    /// `shrink_lruvec` at `priority`. Returns pages freed.
    fn shrink_lruvec(
        &mut self,
        cpu: u32,
        memcg: u32,
        priority: u32,
        nr_to_reclaim: u64,
        mut rec: Option<&mut ReclaimScript>,
    ) -> u64 {
        let Some((size, cost)) = self
            .lru
            .classic
            .as_ref()
            .and_then(|c| c.lruvecs.get(&memcg))
            .map(|lv| (lv.nr, lv.cost))
        else {
            return 0;
        };
        // prepare_scan_control (refault-driven deactivation is not modelled).
        let may_deactivate = [inactive_is_low(&size, 0), inactive_is_low(&size, 1)];
        let cache_trim = (size[1][0] >> priority) != 0 && !may_deactivate[1];
        // get_scan_count (swap is never full; swappiness 60).
        let balance = if priority == 0 {
            Balance::Equal
        } else if cache_trim {
            Balance::File
        } else {
            Balance::Fract
        };
        let fraction = pressure_balance(cost);
        let denominator = fraction[0] + fraction[1];
        let mut nr = [0u64; 4];
        for (lru, n) in nr.iter_mut().enumerate() {
            let (t, a) = (lru / 2, lru % 2);
            let scan = size[t][a] >> priority;
            *n = match balance {
                Balance::Equal => scan,
                Balance::Fract => (scan * fraction[t]).checked_div(denominator).unwrap_or(0),
                Balance::File => {
                    if t == 1 {
                        scan
                    } else {
                        0
                    }
                }
            };
        }
        let targets = nr;
        let proportional = self.reclaim_scope.is_none() && priority == DEF_PRIORITY;
        let mut reclaimed = 0u64;
        // Order of for_each_evictable_lru: inactive anon, active anon, inactive file, active
        // file (index = type * 2 + active).
        while nr[0] != 0 || nr[3] != 0 || nr[2] != 0 {
            for lru in 0..4 {
                let Some(left) = nr.get_mut(lru).filter(|x| **x != 0) else {
                    continue;
                };
                let n = (*left).min(SWAP_CLUSTER_MAX);
                *left -= n;
                let t = lru / 2;
                if lru % 2 == 1 {
                    if may_deactivate[t] {
                        self.shrink_active_list(memcg, n, t, rec.as_deref_mut());
                    }
                } else {
                    reclaimed += self.shrink_inactive_list(cpu, memcg, n, t, rec.as_deref_mut());
                }
            }
            if reclaimed < nr_to_reclaim || proportional {
                continue;
            }
            // Reclaimed enough: scan the other type only in proportion to what was asked.
            let nr_file = nr[2] + nr[3];
            let nr_anon = nr[0] + nr[1];
            if nr_file == 0 || nr_anon == 0 {
                break;
            }
            let (stop, other, pct) = if nr_file > nr_anon {
                (0, 2, nr_anon * 100 / (targets[0] + targets[1] + 1))
            } else {
                (2, 0, nr_file * 100 / (targets[2] + targets[3] + 1))
            };
            nr[stop] = 0;
            nr[stop + 1] = 0;
            for l in [other, other + 1] {
                let scanned = targets[l] - nr[l];
                nr[l] = targets[l] * (100 - pct.min(100)) / 100;
                nr[l] -= nr[l].min(scanned);
            }
        }
        // Rebalance the anon lists even if no anon was scanned (can_age_anon_pages: swap).
        let size = self
            .lru
            .classic
            .as_ref()
            .and_then(|c| c.lruvecs.get(&memcg))
            .map_or([[0; 2]; 2], |lv| lv.nr);
        if inactive_is_low(&size, 0) {
            self.shrink_active_list(memcg, SWAP_CLUSTER_MAX, 0, rec);
        }
        reclaimed
    }

    /// `isolate_lru_folios`: up to `nr_to_scan` pages from the tail of `memcg`'s list
    /// (`t`, `active`). Returns pages scanned.
    fn isolate_lru_folios(
        &mut self,
        memcg: u32,
        t: usize,
        active: bool,
        nr_to_scan: u64,
        out: &mut Vec<u32>,
    ) -> u64 {
        let Some(c) = self.lru.classic.as_deref_mut() else {
            return 0;
        };
        let Some(lv) = c.lruvecs.get_mut(&memcg) else {
            return 0;
        };
        let a = usize::from(active);
        let mut scanned = 0;
        while scanned < nr_to_scan {
            let Some((slot, stamp)) = lv.lists[t][a].pop_back() else {
                break;
            };
            let Some(f) = self.folios.get_mut(slot as usize) else {
                continue;
            };
            if !(f.live && f.on_lru && f.stamp == stamp) {
                continue; // stale entry (lazy deletion)
            }
            let n = f.nr_pages();
            scanned += n;
            lv.nr[t][a] = lv.nr[t][a].saturating_sub(n);
            f.on_lru = false;
            f.stamp = f.stamp.wrapping_add(1);
            f.refcount += 1;
            out.push(slot);
        }
        scanned
    }

    /// Identities of an isolated list, before shrinking (freed slots may be reused).
    fn script_ids(&self, list: &[u32]) -> Vec<ScriptFolio> {
        list.iter()
            .map(|&slot| ScriptFolio {
                id: self.folios.get(slot as usize).map_or(FolioId(0), |f| f.id),
                slot_hint: slot,
                reclaim: false,
                evicted: false,
                clean_only: false,
            })
            .collect()
    }

    /// `shrink_inactive_list`. Returns pages freed.
    fn shrink_inactive_list(
        &mut self,
        cpu: u32,
        memcg: u32,
        nr_to_scan: u64,
        t: usize,
        rec: Option<&mut ReclaimScript>,
    ) -> u64 {
        let mut iso = Vec::new();
        let scanned = self.isolate_lru_folios(memcg, t, false, nr_to_scan, &mut iso);
        if iso.is_empty() {
            return 0;
        }
        let ids = rec.is_some().then(|| self.script_ids(&iso));
        let pass = self.classic_shrink_folio_list(cpu, &iso, None);
        self.note_inactive_pass(memcg, t, scanned, &pass);
        if let (Some(r), Some(mut ids)) = (rec, ids) {
            for f in &mut ids {
                f.reclaim = pass.tried.contains(&f.slot_hint);
                f.clean_only = pass.clean_only.contains(&f.slot_hint);
                f.evicted = pass.freed.contains(&f.slot_hint);
            }
            r.steps.push(ReclaimStep::Evict(ids));
        }
        pass.reclaimed
    }

    /// Counters and `lru_note_cost` of one `shrink_inactive_list` pass.
    fn note_inactive_pass(&mut self, memcg: u32, t: usize, scanned: u64, pass: &Pass) {
        self.c.vmscan_scanned += scanned;
        self.c.vmscan_reclaimed += pass.reclaimed;
        self.c.vmscan_ref_keep += pass.ref_keep;
        self.c.vmscan_activated += pass.activated;
        self.c.vmscan_pageout += pass.pageout;
        self.c.scanned += scanned;
        let cost = pass.pageout * SWAP_CLUSTER_MAX + scanned.saturating_sub(pass.reclaimed);
        self.note_cost(memcg, t, cost);
    }

    /// `lru_note_cost`: add `cost` to the type's cost; halve both when they exceed a quarter
    /// of the lruvec's pages.
    fn note_cost(&mut self, memcg: u32, t: usize, cost: u64) {
        if cost == 0 {
            return;
        }
        let Some(lv) = self
            .lru
            .classic
            .as_deref_mut()
            .and_then(|c| c.lruvecs.get_mut(&memcg))
        else {
            return;
        };
        lv.cost[t] += cost;
        let size: u64 = lv.nr.iter().flatten().sum();
        if lv.cost[0] + lv.cost[1] > size / 4 {
            lv.cost[0] /= 2;
            lv.cost[1] /= 2;
        }
    }

    /// `shrink_active_list`: deactivate the tail of the active list, except referenced
    /// VM_EXEC file folios, which rotate.
    fn shrink_active_list(
        &mut self,
        memcg: u32,
        nr_to_scan: u64,
        t: usize,
        rec: Option<&mut ReclaimScript>,
    ) {
        let mut iso = Vec::new();
        self.isolate_lru_folios(memcg, t, true, nr_to_scan, &mut iso);
        if iso.is_empty() {
            return;
        }
        let mut ids = rec.is_some().then(|| self.script_ids(&iso));
        let deactivated = self.shrink_active_isolated(memcg, t, &iso, None);
        if let (Some(r), Some(ids)) = (rec, ids.as_mut()) {
            for (f, d) in ids.iter_mut().zip(&deactivated) {
                f.reclaim = *d;
            }
            r.steps.push(ReclaimStep::Deactivate(std::mem::take(ids)));
        }
    }

    /// The body of `shrink_active_list` for isolated folios; `imposed[i].reclaim`: the
    /// reference deactivated `list[i]`. Returns, per folio, whether it was deactivated.
    fn shrink_active_isolated(
        &mut self,
        memcg: u32,
        t: usize,
        list: &[u32],
        imposed: Option<&[ScriptFolio]>,
    ) -> Vec<bool> {
        let mut out = Vec::with_capacity(list.len());
        let mut rotated = 0;
        for (i, &slot) in list.iter().enumerate() {
            if !self.folios.get(slot as usize).is_some_and(|f| f.live) {
                out.push(false);
                continue;
            }
            self.c.vmscan_active_scanned += 1;
            let refs = self.folio_referenced(slot);
            let file = self
                .folios
                .get(slot as usize)
                .is_some_and(|f| lru_type(f) == 1);
            let own_keep = refs > 0 && file && self.rmap_flags(slot).0;
            let keep = match imposed.and_then(|v| v.get(i)) {
                Some(d) => !d.reclaim,
                None => own_keep,
            };
            if keep {
                rotated += 1;
                self.classic_putback(slot, true, false);
            } else {
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.workingset = true;
                }
                self.c.vmscan_deactivated += 1;
                self.classic_putback(slot, false, false);
            }
            out.push(!keep);
        }
        self.c.vmscan_rotated += rotated;
        self.note_cost(memcg, t, rotated);
        out
    }

    /// (VM_EXEC, VM_LOCKED) of the VMAs mapping `slot` (`folio_referenced`'s `vm_flags`).
    fn rmap_flags(&self, slot: u32) -> (bool, bool) {
        let Some(f) = self.folios.get(slot as usize) else {
            return (false, false);
        };
        let (mut exec, mut locked) = (false, false);
        for &(mm, va) in &f.rmap {
            if let Some(v) = self.find_vma(mm, va) {
                exec |= v.executable();
                locked |= v.locked;
            }
        }
        (exec, locked)
    }

    /// Put an isolated folio back: `active`, at the head or the tail of its list.
    fn classic_putback(&mut self, slot: u32, active: bool, tail: bool) {
        let Model { folios, lru, .. } = self;
        let (Some(f), Some(c)) = (folios.get_mut(slot as usize), lru.classic.as_deref_mut()) else {
            return;
        };
        if f.live {
            f.refcount = f.refcount.saturating_sub(1);
            add(c, f, slot, active, tail);
        }
    }

    /// `folio_check_references` (6.1 and 6.18 without MGLRU).
    fn folio_check_references(&mut self, slot: u32) -> Refs {
        let refs = self.folio_referenced(slot);
        let (exec, locked) = if refs > 0 {
            self.rmap_flags(slot)
        } else {
            (false, false)
        };
        let Some(f) = self.folios.get_mut(slot as usize) else {
            return Refs::Keep;
        };
        let file = lru_type(f) == 1;
        let referenced_folio = std::mem::replace(&mut f.referenced, false);
        if locked {
            return Refs::Activate;
        }
        if refs > 0 {
            // Mapped folios start with a PTE reference from their fault: look twice.
            f.referenced = true;
            if referenced_folio || refs > 1 || (exec && file) {
                return Refs::Activate;
            }
            return Refs::Keep;
        }
        if referenced_folio && file {
            return Refs::ReclaimClean;
        }
        Refs::Reclaim
    }

    /// `shrink_folio_list` for isolated folios (each holds an isolation reference);
    /// `imposed[i]`: the reference's decision for `list[i]`.
    fn classic_shrink_folio_list(
        &mut self,
        cpu: u32,
        list: &[u32],
        imposed: Option<&[ScriptFolio]>,
    ) -> Pass {
        let mut out = Pass::default();
        let mut pending: Vec<u32> = Vec::new();
        for (i, &slot) in list.iter().enumerate() {
            let Some(f) = self.folios.get(slot as usize) else {
                continue;
            };
            if !f.live {
                continue;
            }
            let id = f.id.0;
            let n = f.nr_pages();
            let forced = imposed.and_then(|v| v.get(i));
            let own = self.folio_check_references(slot);
            let verdict = match forced {
                None => own,
                Some(d) if d.reclaim => {
                    if d.clean_only {
                        Refs::ReclaimClean
                    } else {
                        Refs::Reclaim
                    }
                }
                Some(_) if matches!(own, Refs::Reclaim | Refs::ReclaimClean) => Refs::Keep,
                Some(_) => own,
            };
            let forced = forced.is_some_and(|d| d.evicted);
            match verdict {
                Refs::Activate => {
                    out.activated += n;
                    self.classic_putback(slot, true, false);
                    continue;
                }
                Refs::Keep => {
                    out.ref_keep += n;
                    self.classic_putback(slot, false, false);
                    continue;
                }
                Refs::ReclaimClean | Refs::Reclaim => out.tried.push(slot),
            }
            if verdict == Refs::ReclaimClean {
                out.clean_only.push(slot);
            }
            let (anon, swapbacked, has_swap) = match self.folios.get(slot as usize) {
                Some(f) => (f.is_anon(), f.swapbacked, f.swapcache.is_some()),
                None => continue,
            };
            if anon && swapbacked && !has_swap {
                self.add_to_swap(slot);
            }
            let mapped = self
                .folios
                .get(slot as usize)
                .is_some_and(|f| f.mapcount > 0);
            if mapped && !self.try_to_unmap(cpu, slot) {
                self.c.vmscan_unmap_fail += n;
                out.activated += n;
                self.classic_putback(slot, true, false);
                if forced {
                    out.skipped.push((
                        id,
                        "try_to_unmap failed (mlocked, pinned or lazyfree abort)",
                    ));
                }
                continue;
            }
            let (dirty, lazy) = match self.folios.get(slot as usize) {
                Some(f) => (f.dirty, f.is_anon() && !f.swapbacked),
                None => continue,
            };
            if dirty && !lazy {
                if verdict == Refs::ReclaimClean {
                    self.classic_putback(slot, false, false);
                    if forced {
                        out.skipped.push((id, "dirty, referenced file folio kept"));
                    }
                    continue;
                }
                // try_to_unmap_flush_dirty before pageout (I1), then async writeback: the
                // folio is kept; folio_end_writeback rotates it to the inactive tail.
                if !self.policy.free_pages_before_flush() {
                    self.ubc_flush_dirty(cpu);
                }
                self.pageout(slot);
                out.pageout += n;
                self.classic_putback(slot, false, true);
                if forced {
                    out.skipped
                        .push((id, "written back, freed by a later pass"));
                }
                continue;
            }
            // __remove_mapping: refcount must be exactly isolation + cache reference.
            let Some(f) = self.folios.get(slot as usize) else {
                continue;
            };
            let cache = u32::from(f.in_pagecache) + u32::from(f.swapcache.is_some());
            if f.mapcount > 0 || f.refcount != 1 + cache || f.dirty {
                self.classic_putback(slot, false, false);
                if forced {
                    out.skipped
                        .push((id, "still mapped, dirty or referenced at __remove_mapping"));
                }
                continue;
            }
            self.remove_from_cache(slot);
            out.freed.push(slot);
            pending.push(slot);
            if self.free_batch_full(&pending) {
                out.reclaimed += self.free_reclaimed(cpu, &mut pending);
            }
        }
        out.reclaimed += self.free_reclaimed(cpu, &mut pending);
        out
    }

    /// Whether `shrink_folio_list` flushes and frees now: 6.18 when the free batch fills
    /// (31 folios), 6.1 before freeing a large folio.
    pub(super) fn free_batch_full(&self, pending: &[u32]) -> bool {
        match self.profile.base {
            Base::Knew => pending.len() >= FREE_BATCH,
            Base::K61 => pending
                .last()
                .and_then(|&s| self.folios.get(s as usize))
                .is_some_and(|f| f.order > 0),
        }
    }

    /// `try_to_unmap_flush` and free the pending folios (in the other order under the
    /// policy's negative control). Returns pages freed.
    pub(super) fn free_reclaimed(&mut self, cpu: u32, pending: &mut Vec<u32>) -> u64 {
        let early = self.policy.free_pages_before_flush();
        if !early {
            self.ubc_flush(cpu);
        }
        let mut freed = 0;
        for slot in pending.drain(..) {
            let n = self.folios.get(slot as usize).map_or(0, |f| f.nr_pages());
            if let Some(f) = self.folios.get_mut(slot as usize) {
                f.refcount = 0;
            }
            self.free_folio(slot);
            self.c.evictions += n;
            freed += n;
        }
        if early {
            self.ubc_flush(cpu);
        }
        freed
    }

    /// Isolate the scripted folios of one batch wherever this model's lists hold them.
    fn isolate_scripted(
        &mut self,
        batch: &[ScriptFolio],
        iso: &mut Vec<u32>,
        decided: &mut Vec<ScriptFolio>,
        res: &mut ImposeResult,
    ) {
        for sf in batch {
            res.imposed += u64::from(sf.evicted);
            let slot = self.find_scripted(sf);
            let Model { folios, lru, .. } = self;
            let f = slot.and_then(|s| folios.get_mut(s as usize));
            match (slot, f, lru.classic.as_deref_mut()) {
                (Some(slot), Some(f), Some(c)) if f.on_lru => {
                    del(c, f);
                    f.refcount += 1;
                    iso.push(slot);
                    decided.push(*sf);
                }
                (found, _, _) if sf.evicted => {
                    let why = if found.is_some() {
                        "not on an LRU"
                    } else {
                        "no live folio with this id"
                    };
                    note_skip(res, sf.id.0, why);
                }
                _ => {}
            }
        }
    }

    /// Follow a recorded classic reclaim (see the module doc).
    pub(super) fn classic_reclaim_imposed(
        &mut self,
        cpu: u32,
        script: &ReclaimScript,
        res: &mut ImposeResult,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        let mut iso: Vec<u32> = Vec::new();
        let mut decided: Vec<ScriptFolio> = Vec::new();
        for step in &script.steps {
            iso.clear();
            decided.clear();
            match step {
                ReclaimStep::Age | ReclaimStep::GiveUp => {}
                ReclaimStep::Deactivate(b) => {
                    self.isolate_scripted(b, &mut iso, &mut decided, res);
                    let memcg = iso
                        .first()
                        .and_then(|&s| self.folios.get(s as usize))
                        .map_or(0, |f| f.memcg);
                    let t = iso
                        .first()
                        .and_then(|&s| self.folios.get(s as usize))
                        .map_or(0, lru_type);
                    self.shrink_active_isolated(memcg, t, &iso, Some(&decided));
                }
                ReclaimStep::Evict(b) => {
                    self.isolate_scripted(b, &mut iso, &mut decided, res);
                    let head = iso.first().and_then(|&s| self.folios.get(s as usize));
                    let (memcg, t) = head.map_or((0, 0), |f| (f.memcg, lru_type(f)));
                    let scanned = iso
                        .iter()
                        .filter_map(|&s| self.folios.get(s as usize))
                        .map(Folio::nr_pages)
                        .sum();
                    let pass = self.classic_shrink_folio_list(cpu, &iso, Some(&decided));
                    self.note_inactive_pass(memcg, t, scanned, &pass);
                    for &(id, why) in &pass.skipped {
                        note_skip(res, id, why);
                    }
                    for slot in &pass.freed {
                        let i = iso.iter().position(|s| s == slot);
                        if i.and_then(|i| decided.get(i)).is_some_and(|d| !d.evicted) {
                            res.extra += 1;
                        }
                    }
                }
            }
        }
        self.check_tlb_coherent(None);
        Ok(OpOutcome::Done)
    }
}

/// `calculate_pressure_balance` with swappiness 60: `[anon, file]` fractions.
fn pressure_balance(cost: [u64; 2]) -> [u64; 2] {
    let total = cost[0] + cost[1];
    let anon_cost = total + cost[0];
    let file_cost = total + cost[1];
    let total = anon_cost + file_cost;
    let ap = SWAPPINESS * (total + 1) / (anon_cost + 1);
    let fp = (MAX_SWAPPINESS - SWAPPINESS) * (total + 1) / (file_cost + 1);
    [ap, fp]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_ratio_follows_the_kernel_table() {
        // Under 1 GiB: ratio 1.
        assert!(inactive_is_low(&[[10, 11], [0, 0]], 0));
        assert!(!inactive_is_low(&[[11, 11], [0, 0]], 0));
        // 1 GiB (262144 pages): ratio int_sqrt(10) = 3.
        let (i, a) = (70_000u64, 192_144u64);
        assert!(!inactive_is_low(&[[i, a], [0, 0]], 0));
        let (i, a) = (50_000u64, 212_144u64);
        assert!(inactive_is_low(&[[i, a], [0, 0]], 0));
    }

    #[test]
    fn pressure_balance_is_the_kernels() {
        // No cost history: 60 : 140 of the pressure.
        assert_eq!(pressure_balance([0, 0]), [60, 140]);
        // Anon expensive: its fraction falls.
        let [a, f] = pressure_balance([1000, 0]);
        assert!(a * 140 < f * 60, "{a} {f}");
    }
}
