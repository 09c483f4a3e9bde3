//! Reclaim: MGLRU aging (`mm/vmscan.c:try_to_inc_max_seq`, `walk_pte_range`, `inc_max_seq`)
//! and eviction (`evict_folios`, `shrink_folio_list`), the reference check
//! (`mm/rmap.c:folio_referenced`/`folio_referenced_one`, decision point 1) and unmapping
//! (`mm/rmap.c:try_to_unmap_one` with `TTU_BATCH_FLUSH`, swap-out, lazyfree discard). It must
//! never free a folio before the batched flush covering it (unless the policy's negative
//! control says so) and never clean a folio while a dirty stale TLB entry maps it.
//!
//! Lockstep (mm-semantics C.0): `apply_recording` writes down each `Reclaim` op's rounds (aging
//! steps and eviction batches, with which folios were freed) as a [`ReclaimScript`];
//! `apply_imposed` makes another model follow it. "Same victims" means what it means in
//! `evict_folios`: the same folios are isolated in the same order, `shrink_folio_list` runs on
//! them (so `folio_referenced` and the policy's rmap hook, e.g. look-around clearing A bits and
//! promoting neighbours, still run), but the keep-or-reclaim decision after the reference check
//! is the reference's; unmapping and freeing then run as the follower's own code. The
//! aging rounds (`inc_max_seq`, page-table walk) happen at the same points; retiring empty
//! oldest gens (`try_to_inc_min_seq`) follows the follower's own LRU. An imposed victim the
//! follower cannot free (not live or not on an LRU, `try_to_unmap` refused, extra references
//! or still dirty at `__remove_mapping`) is put back and counted as skipped in
//! [`ImposeResult`], never silently dropped. A folio the reference decided to keep is never
//! freed; one the reference tried and failed to free but the follower freed is counted as
//! extra (the contract then judges the different residency).

use super::lru;
use super::state::*;
use super::{Model, ModelError};
use crate::engine::{ImposeResult, ReclaimScript, ReclaimStep, ScriptFolio};
use crate::invariant::Invariant;
use crate::op::{Op, OpOutcome};
use crate::policy::{LazyfreeCheck, Policy, YoungPteCtx};

/// Folios isolated per eviction batch (`MIN_LRU_BATCH`).
const EVICT_BATCH: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Activate,
    Keep,
    Reclaim,
}

/// What `shrink_isolated` did with a list.
#[derive(Default)]
struct Shrunk {
    /// Pages freed.
    reclaimed: u64,
    /// Slots freed (in list order).
    freed: Vec<u32>,
    /// Slots that reached the unmap/free path (verdict "reclaim").
    tried: Vec<u32>,
    /// Imposed victims that could not be freed: (folio id, why).
    skipped: Vec<(u64, &'static str)>,
    /// Pages kept because referenced (`nr_ref_keep`) and activated (`nr_activate`).
    ref_keep: u64,
    activated: u64,
}

/// One logged `shrink_inactive_list` pass of `Op::ReclaimScan`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanPass {
    /// Pages the kernel's pass isolated.
    pub nr_scanned: u32,
    /// Memory cgroup reclaimed.
    pub memcg: u32,
    /// The kernel's list (`Some(true)` file), `None` unknown.
    pub file: Option<bool>,
    /// Pages the kernel's pass freed.
    pub nr_reclaimed: u32,
}

impl<P: Policy> Model<P> {
    /// Apply `op` like `apply`; for a `Reclaim` op also return its rounds (what a lockstep
    /// follower must repeat). `None` for other ops and for a rejected `Reclaim`.
    pub fn apply_recording(
        &mut self,
        op: &Op,
    ) -> (Result<OpOutcome, ModelError>, Option<ReclaimScript>) {
        let mut script = ReclaimScript::default();
        if let Op::ReclaimScan {
            cpu,
            nr_scanned,
            memcg,
            file,
            nr_reclaimed,
        } = *op
        {
            let pass = ScanPass {
                nr_scanned,
                memcg,
                file,
                nr_reclaimed,
            };
            let r = self.reclaim_scan(cpu, pass, Some(&mut script));
            self.after_op();
            self.step += 1;
            let script = r.is_ok().then_some(script);
            return (r, script);
        }
        let Some((cpu, nr_to_reclaim, scope)) = reclaim_of(op) else {
            return (self.apply(op), None);
        };
        self.reclaim_scope = scope;
        let r = self.reclaim(cpu, nr_to_reclaim, Some(&mut script));
        self.reclaim_scope = None;
        self.after_op();
        self.step += 1;
        let script = r.is_ok().then_some(script);
        (r, script)
    }

    /// Apply `op` like `apply`, except that a `Reclaim` op follows `script` (recorded by
    /// another model on the same op) instead of choosing its own victims; see the module doc.
    pub fn apply_imposed(
        &mut self,
        op: &Op,
        script: &ReclaimScript,
    ) -> (Result<OpOutcome, ModelError>, ImposeResult) {
        let Some((cpu, _, scope)) = reclaim_of(op) else {
            return (self.apply(op), ImposeResult::default());
        };
        let mut res = ImposeResult::default();
        // The scope matters to the follower's aging walks; its victims come from the script.
        self.reclaim_scope = scope;
        let r = self.reclaim_imposed(cpu, script, &mut res);
        self.reclaim_scope = None;
        self.after_op();
        self.step += 1;
        (r, res)
    }

    /// `Op::ReclaimScan`: one `shrink_inactive_list` pass of `nr_scanned` pages in `memcg`
    /// (classic LRU; MGLRU logs no such pass and ignores it). `rec`: write it down for a
    /// lockstep follower.
    pub(crate) fn reclaim_scan(
        &mut self,
        cpu: u32,
        pass: ScanPass,
        rec: Option<&mut ReclaimScript>,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        if self.lru.classic.is_none() {
            return Ok(OpOutcome::Done);
        }
        self.reclaim_scope = Some(pass.memcg);
        self.classic_scan_pass(cpu, pass, rec);
        self.reclaim_scope = None;
        self.check_tlb_coherent(None);
        Ok(OpOutcome::Done)
    }

    pub(crate) fn op_reclaim(
        &mut self,
        cpu: u32,
        nr_to_reclaim: u32,
    ) -> Result<OpOutcome, ModelError> {
        self.reclaim(cpu, nr_to_reclaim, None)
    }

    /// `try_to_inc_min_seq` for both types: retire empty oldest gens.
    fn retire_empty_gens(&mut self) {
        for t in 0..2 {
            while lru::can_inc_min_seq(&self.lru, t)
                && lru::oldest_is_empty(&mut self.lru, &self.folios, t)
            {
                if let Some(m) = self.lru.min_seq.get_mut(t) {
                    *m += 1;
                    self.c.min_seq_incs += 1;
                }
            }
        }
    }

    /// `lru_gen_shrink_lruvec`: age and evict until `nr_to_reclaim` pages are freed (at most 32
    /// rounds). `rec`: write the rounds down for a lockstep follower.
    fn reclaim(
        &mut self,
        cpu: u32,
        nr_to_reclaim: u32,
        mut rec: Option<&mut ReclaimScript>,
    ) -> Result<OpOutcome, ModelError> {
        if self.lru.classic.is_some() {
            return self.classic_reclaim(cpu, nr_to_reclaim, rec);
        }
        self.check_cpu(cpu)?;
        let target = u64::from(nr_to_reclaim);
        let mut reclaimed = 0u64;
        let mut rounds = 0;
        let mut batch: Vec<u32> = Vec::with_capacity(EVICT_BATCH);
        while reclaimed < target && rounds < 32 {
            rounds += 1;
            self.retire_empty_gens();
            batch.clear();
            if let Some(memcg) = self.reclaim_scope {
                // The memcg's own lruvec: its oldest generation holding its folios, aged first
                // when that is one of the two youngest (`should_run_aging`).
                let oldest = [
                    self.memcg_oldest_seq(0, memcg),
                    self.memcg_oldest_seq(1, memcg),
                ];
                let (t, seq) = match oldest {
                    [None, None] => {
                        if let Some(r) = rec.as_deref_mut() {
                            r.steps.push(ReclaimStep::GiveUp);
                        }
                        break;
                    }
                    [Some(a), None] => (0, a),
                    [None, Some(b)] => (1, b),
                    [Some(a), Some(b)] => {
                        if a < b {
                            (0, a)
                        } else {
                            (1, b)
                        }
                    }
                };
                if self.lru.max_seq + 1 - seq <= MIN_NR_GENS {
                    if let Some(r) = rec.as_deref_mut() {
                        r.steps.push(ReclaimStep::Age);
                    }
                    self.inc_max_seq();
                    continue;
                }
                let clear_referenced = self.policy.mglru_isolated_referenced();
                self.isolate_memcg(t, seq, memcg, clear_referenced, &mut batch);
            } else {
                let empty = [
                    lru::oldest_is_empty(&mut self.lru, &self.folios, 0),
                    lru::oldest_is_empty(&mut self.lru, &self.folios, 1),
                ];
                if empty[0] && empty[1] {
                    // Nothing evictable in the oldest gens: age (or give up if nothing is on LRU).
                    let any = self.lru.nr.iter().any(|r| r.iter().any(|n| *n > 0));
                    if !any {
                        if let Some(r) = rec.as_deref_mut() {
                            r.steps.push(ReclaimStep::GiveUp);
                        }
                        break;
                    }
                    if let Some(r) = rec.as_deref_mut() {
                        r.steps.push(ReclaimStep::Age);
                    }
                    self.inc_max_seq();
                    continue;
                }
                // Type to scan: the one whose oldest gen is older; ties go to file.
                let t = if empty[1] {
                    0
                } else if empty[0] {
                    1
                } else if self.lru.min_seq[0] < self.lru.min_seq[1] {
                    0
                } else {
                    1
                };
                let nr_gens = self.lru.max_seq + 1 - self.lru.min_seq[t];
                if nr_gens <= MIN_NR_GENS {
                    // should_run_aging.
                    if let Some(r) = rec.as_deref_mut() {
                        r.steps.push(ReclaimStep::Age);
                    }
                    self.inc_max_seq();
                    continue;
                }
                let clear_referenced = self.policy.mglru_isolated_referenced();
                let min = self.lru.min_seq[t];
                let g = lru::gen(min);
                while batch.len() < EVICT_BATCH {
                    let Some((slot, stamp)) = self.lru.lists[g][t].pop_front() else {
                        break;
                    };
                    let Some(f) = self.folios.get_mut(slot as usize) else {
                        continue;
                    };
                    if !(f.live
                        && f.on_lru
                        && f.stamp == stamp
                        && f.lru_type as usize == t
                        && f.seq == min)
                    {
                        continue;
                    }
                    // isolate_folio.
                    lru::del_folio(&mut self.lru, f);
                    f.refcount += 1;
                    if clear_referenced {
                        // v6.1 isolate_folio: folio_clear_referenced (policy hook).
                        f.referenced = false;
                    }
                    batch.push(slot);
                }
            }
            // Identities before shrinking: freed slots may be reused.
            let ids: Option<Vec<ScriptFolio>> = rec.is_some().then(|| {
                batch
                    .iter()
                    .map(|&slot| ScriptFolio {
                        id: self
                            .folios
                            .get(slot as usize)
                            .map_or(crate::op::FolioId(0), |f| f.id),
                        slot_hint: slot,
                        reclaim: false,
                        evicted: false,
                        clean_only: false,
                    })
                    .collect()
            });
            let done = self.shrink_isolated(cpu, &batch, false, None);
            reclaimed += done.reclaimed;
            self.count_vmscan(batch.len(), &done);
            if let (Some(r), Some(mut ids)) = (rec.as_deref_mut(), ids) {
                for f in &mut ids {
                    f.reclaim = done.tried.contains(&f.slot_hint);
                    f.evicted = done.freed.contains(&f.slot_hint);
                }
                r.steps.push(ReclaimStep::Evict(ids));
            }
        }
        self.check_tlb_coherent(None);
        Ok(OpOutcome::Done)
    }

    /// The slot of live folio `f` (the hint if it still holds that folio, else a search).
    pub(super) fn find_scripted(&self, f: &ScriptFolio) -> Option<u32> {
        let holds = |slot: u32| {
            self.folios
                .get(slot as usize)
                .is_some_and(|x| x.live && x.id == f.id)
        };
        if holds(f.slot_hint) {
            return Some(f.slot_hint);
        }
        self.folios
            .iter()
            .position(|x| x.live && x.id == f.id)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Follow a recorded reclaim (see the module doc).
    fn reclaim_imposed(
        &mut self,
        cpu: u32,
        script: &ReclaimScript,
        res: &mut ImposeResult,
    ) -> Result<OpOutcome, ModelError> {
        if self.lru.classic.is_some() {
            return self.classic_reclaim_imposed(cpu, script, res);
        }
        self.check_cpu(cpu)?;
        let mut iso: Vec<u32> = Vec::with_capacity(EVICT_BATCH);
        let mut decided: Vec<ScriptFolio> = Vec::with_capacity(EVICT_BATCH);
        for step in &script.steps {
            self.retire_empty_gens();
            let batch = match step {
                ReclaimStep::Age => {
                    self.inc_max_seq();
                    continue;
                }
                ReclaimStep::GiveUp | ReclaimStep::Deactivate(_) => continue,
                ReclaimStep::Evict(b) => b,
            };
            iso.clear();
            decided.clear();
            let clear_referenced = self.policy.mglru_isolated_referenced();
            for sf in batch {
                res.imposed += u64::from(sf.evicted);
                let slot = self.find_scripted(sf);
                let f = slot.and_then(|s| self.folios.get_mut(s as usize));
                match (slot, f) {
                    (Some(slot), Some(f)) if f.on_lru => {
                        // isolate_folio, wherever the follower's aging put it.
                        lru::del_folio(&mut self.lru, f);
                        f.refcount += 1;
                        if clear_referenced {
                            f.referenced = false;
                        }
                        iso.push(slot);
                        decided.push(*sf);
                    }
                    (found, _) if sf.evicted => {
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
            let done = self.shrink_isolated(cpu, &iso, false, Some(&decided));
            self.count_vmscan(iso.len(), &done);
            for (id, why) in done.skipped {
                note_skip(res, id, why);
            }
            for slot in &done.freed {
                let i = iso.iter().position(|s| s == slot);
                if i.and_then(|i| decided.get(i)).is_some_and(|d| !d.evicted) {
                    res.extra += 1;
                }
            }
        }
        self.check_tlb_coherent(None);
        Ok(OpOutcome::Done)
    }

    /// The memcg a folio is charged to: a regular file's, that of the task that added it to the
    /// page cache (`classic.rs:pagecache_memcg`); others, that of the mm of their first mapping
    /// (unmapped anon and swap cache count as the root's).
    fn charged_memcg(&self, f: &Folio) -> u32 {
        if let FolioKind::File { file, index } = f.kind {
            if !f.swapbacked {
                return self.pagecache_memcg(file, index);
            }
        }
        f.rmap
            .first()
            .and_then(|(mm, _)| self.mms.get(mm))
            .map_or(0, |m| m.memcg)
    }

    /// Whether list entry (slot, stamp) of type `t` is a live folio of generation `seq`.
    fn entry_live(&self, slot: u32, stamp: u32, t: usize, seq: u64) -> Option<&Folio> {
        self.folios.get(slot as usize).filter(|f| {
            f.live && f.on_lru && f.stamp == stamp && f.lru_type as usize == t && f.seq == seq
        })
    }

    /// The oldest generation holding a folio of type `t` charged to `memcg`: where that
    /// memcg's own lruvec would have its `min_seq`.
    fn memcg_oldest_seq(&self, t: usize, memcg: u32) -> Option<u64> {
        (self.lru.min_seq[t]..=self.lru.max_seq).find(|&seq| {
            self.lru
                .lists
                .get(lru::gen(seq))
                .and_then(|r| r.get(t))
                .is_some_and(|l| {
                    l.iter().any(|&(slot, stamp)| {
                        self.entry_live(slot, stamp, t, seq)
                            .is_some_and(|f| self.charged_memcg(f) == memcg)
                    })
                })
        })
    }

    /// `isolate_folios` for memcg reclaim: up to a batch of `memcg`'s folios of type `t` from
    /// generation `seq`, in list order, leaving other memcgs' folios in place.
    fn isolate_memcg(
        &mut self,
        t: usize,
        seq: u64,
        memcg: u32,
        clear_referenced: bool,
        batch: &mut Vec<u32>,
    ) {
        let g = lru::gen(seq);
        // Other memcgs' entries passed over, put back in front in their order afterwards:
        // the scan costs what it passes, not the whole list.
        let mut passed: Vec<(u32, u32)> = Vec::new();
        while batch.len() < EVICT_BATCH {
            let Some((slot, stamp)) = self
                .lru
                .lists
                .get_mut(g)
                .and_then(|r| r.get_mut(t))
                .and_then(|l| l.pop_front())
            else {
                break;
            };
            let Some(f) = self.entry_live(slot, stamp, t, seq) else {
                continue; // stale entry (lazy deletion)
            };
            if self.charged_memcg(f) != memcg {
                passed.push((slot, stamp));
                continue;
            }
            if let Some(f) = self.folios.get_mut(slot as usize) {
                lru::del_folio(&mut self.lru, f);
                f.refcount += 1;
                if clear_referenced {
                    f.referenced = false;
                }
            }
            batch.push(slot);
        }
        if let Some(list) = self.lru.lists.get_mut(g).and_then(|r| r.get_mut(t)) {
            for e in passed.into_iter().rev() {
                list.push_front(e);
            }
        }
    }

    /// `try_to_inc_max_seq` + `inc_max_seq`: page-table walk aging (if enabled), then a new
    /// generation; the oldest is retired first when all four are in use.
    fn inc_max_seq(&mut self) {
        if self.profile.lru_gen_mm_walk {
            // iterate_mm_list: the first walker of max_seq resets the filter of max_seq + 1.
            let next = ((self.lru.max_seq + 1) % 2) as usize;
            self.lru.bloom[next] = Some(Default::default());
            self.walk_mms();
        }
        for t in 0..2 {
            if self.lru.max_seq + 1 - self.lru.min_seq[t] >= MAX_NR_GENS {
                lru::inc_min_seq(&mut self.lru, &mut self.folios, t);
                self.c.min_seq_incs += 1;
            }
        }
        self.lru.max_seq += 1;
        self.c.max_seq_incs += 1;
    }

    /// `walk_mm` → `walk_pte_range` over mms used since the last walk: clear young PTEs,
    /// transfer dirty bits, promote folios to `max_seq` (no TLB flush on x86).
    fn walk_mms(&mut self) {
        // Memcg reclaim walks only that memcg's mms (`lru_gen_mm_list` is per memcg).
        let scope = self.reclaim_scope;
        let mut ids: Vec<u32> = self
            .mms
            .iter()
            .filter(|(_, m)| m.used && scope.is_none_or(|s| m.memcg == s))
            .map(|(k, _)| *k)
            .collect();
        ids.sort_unstable();
        let max = self.lru.max_seq;
        let Model {
            mms,
            pmd_tables,
            pte_tables,
            folios,
            lru,
            c,
            ..
        } = self;
        for id in ids {
            let Some(m) = mms.get_mut(&id) else { continue };
            // In VMA then address order, visiting only populated PMD slots (the same PTEs, in
            // the same order, as a walk of every address in each VMA).
            for v in m.vmas.values() {
                if v.kind == VmaKind::Hugetlb || v.locked {
                    continue;
                }
                let mut va = v.start;
                while va < v.end {
                    let Some(&t) = m.pgd.get(&pud_index(va)) else {
                        va = ((va >> PUD_SHIFT) + 1) << PUD_SHIFT;
                        continue;
                    };
                    let Some(pt) = pmd_tables.get(t as usize) else {
                        break;
                    };
                    let next_pmd = ((va >> PMD_SHIFT) + 1) << PMD_SHIFT;
                    let stop = next_pmd.min(v.end);
                    let pi = pmd_index(va);
                    let entry = pt.entries.get(pi).copied().unwrap_or_default();
                    match entry {
                        PmdEntry::None => {}
                        PmdEntry::Leaf(_) => {
                            let leaf = pmd_tables
                                .get_mut(t as usize)
                                .and_then(|x| x.entries.get_mut(pi));
                            if let Some(PmdEntry::Leaf(Pte::Present(pp))) = leaf {
                                age_walked_pte(pp, max, folios, lru, c);
                            }
                        }
                        PmdEntry::Table(p) => {
                            // walk_pmd_range: a PTE table is walked only if the Bloom filter
                            // of max_seq holds its PMD (a previous walk found it dense in young
                            // PTEs, or look-around did); walk_pte_range's young density
                            // (`suitable_to_scan`) carries it over to max_seq + 1.
                            let cur = (max % 2) as usize;
                            let wanted = lru.bloom[cur].as_ref().is_none_or(|f| f.contains(&p));
                            if let (true, Some(tb)) = (wanted, pte_tables.get_mut(p as usize)) {
                                let (i0, i1) = (pte_index(va), pte_index(stop - 1) + 1);
                                let young_before = c.a_cleared_pt_walk;
                                for pte in tb.ptes.get_mut(i0..i1).into_iter().flatten() {
                                    if let Pte::Present(pp) = pte {
                                        age_walked_pte(pp, max, folios, lru, c);
                                    }
                                }
                                let young = c.a_cleared_pt_walk - young_before;
                                if suitable_to_scan((i1 - i0) as u64, young) {
                                    if let Some(f) = lru.bloom[1 - cur].as_mut() {
                                        f.insert(p);
                                    }
                                }
                            } else {
                                c.pt_walk_bloom_skips += 1;
                            }
                        }
                    }
                    va = stop;
                }
            }
            m.used = false;
        }
    }

    /// `folio_referenced`: rmap walk, decision point (1) for young PTEs. Returns the number of
    /// referencing PTEs.
    pub(super) fn folio_referenced(&mut self, slot: u32) -> u32 {
        let mapped = self
            .folios
            .get(slot as usize)
            .is_some_and(|f| f.mapcount > 0);
        if !mapped {
            return 0;
        }
        self.c.rmap_walks += 1;
        let mut list = std::mem::take(&mut self.scratch);
        list.clear();
        if let Some(f) = self.folios.get(slot as usize) {
            list.extend_from_slice(&f.rmap);
        }
        let mut referenced = 0;
        for &(mm, va) in &list {
            self.c.rmap_vma_visits += 1;
            let Some(v) = self.find_vma(mm, va) else {
                continue;
            };
            if v.locked {
                // VM_LOCKED: mlock and stop (treated as referenced so it is kept).
                referenced += 1;
                break;
            }
            let Some(super::Loc::Pte(t, i)) = self.locate(mm, va) else {
                continue;
            };
            let young = match self.get(super::Loc::Pte(t, i)) {
                Pte::Present(p) if p.folio == slot => p.young,
                _ => continue,
            };
            if !young {
                self.c.a_tc_rmap_pte += 1;
                continue;
            }
            let base = va & !(PMD_SIZE - 1);
            let win_start = v.start.max(base);
            let win_end = v.end.min(base + PMD_SIZE);
            // `folio_referenced_one`: look-around (`lru_gen_look_around`) runs only when MGLRU
            // is on (`lru_gen_enabled()`); the classic LRU clears just this PTE's A bit, so no
            // policy hook applies there.
            let classic = self.profile.lru == crate::profile::LruKind::Classic;
            let Model {
                policy,
                pte_tables,
                folios,
                lru,
                c,
                ..
            } = self;
            let Some(tb) = pte_tables.get_mut(t as usize) else {
                continue;
            };
            let mut ctx = YoungPteCtx {
                addr: va,
                win_start,
                win_end,
                base,
                ptes: &mut tb.ptes,
                folios,
                lru,
                c,
            };
            let la_before = (ctx.c.lookaround_ptes_scanned, ctx.c.a_cleared_lookaround);
            let young = if classic {
                ctx.test_and_clear_young(va, crate::AgeSource::RmapPte)
            } else {
                policy.rmap_young_pte(&mut ctx)
            };
            // lru_gen_look_around: "feedback from rmap walkers to page table walkers".
            let scanned = c.lookaround_ptes_scanned - la_before.0;
            let la_young = c.a_cleared_lookaround - la_before.1;
            if scanned > 0 && suitable_to_scan(scanned, la_young) {
                let cur = (lru.max_seq % 2) as usize;
                if let Some(f) = lru.bloom[cur].as_mut() {
                    f.insert(t);
                }
            }
            if young {
                referenced += 1;
            }
        }
        if referenced == 0 {
            self.count_unreferenced(&list);
        }
        self.scratch = list;
        referenced
    }

    /// `try_to_unmap` (`try_to_unmap_one` per mapping, `TTU_BATCH_FLUSH`). Returns whether the
    /// folio ended up unmapped.
    pub(super) fn try_to_unmap(&mut self, cpu: u32, slot: u32) -> bool {
        self.c.rmap_walks += 1;
        let mut list = std::mem::take(&mut self.scratch);
        list.clear();
        if let Some(f) = self.folios.get(slot as usize) {
            list.extend_from_slice(&f.rmap);
        }
        let mut ok = true;
        for &(mm, va) in &list {
            self.c.rmap_vma_visits += 1;
            if self.find_vma(mm, va).is_some_and(|v| v.locked) {
                ok = false;
                break;
            }
            let Some((loc, p)) = self.mapped_at(slot, mm, va) else {
                continue;
            };
            let (anon, swapbacked, pae, pinned) = match self.folios.get(slot as usize) {
                Some(f) => (f.is_anon(), f.swapbacked, f.pae, f.pincount > 0),
                None => break,
            };
            if anon && swapbacked && pae && pinned {
                // folio_try_share_anon_rmap_pte: -EBUSY, keep the PTE.
                ok = false;
                break;
            }
            self.set(loc, Pte::None);
            if self.should_defer_flush(cpu, mm) {
                // The kernel passes pte_dirty(pteval) (set_tlb_ubc_flush_pending): a dirty PTE
                // write-protected by a soft-dirty clear, fork or mprotect also counts as
                // writable. The model passes the write bit; with the kernel's rule the
                // access-sampled k61-hotset captures predict too many remote flushes (classic
                // 482 of 260 logged, MGLRU 963 of 328): the model still unmaps and writes back
                // at other moments than the kernel (replay/tests/fidelity_k61.rs, issue 22).
                self.ubc_add(mm, p.write);
            } else {
                self.flush_tlb_mm_range(cpu, mm, va, va + PAGE_SIZE, false);
            }
            if p.dirty {
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.dirty = true;
                }
            }
            if anon && !swapbacked {
                // Lazyfree (6c8e2a256915): discard only if clean and no extra references.
                let chk = match self.folios.get(slot as usize) {
                    Some(f) => LazyfreeCheck {
                        refcount: f.refcount,
                        mapcount: f.mapcount,
                        dirty: f.dirty,
                        pincount: f.pincount,
                    },
                    None => break,
                };
                if self.policy.lazyfree_may_discard(&chk) {
                    let extra = self
                        .folios
                        .get(slot as usize)
                        .map_or(0, |f| f.extra + f.pincount);
                    if chk.refcount != 1 + chk.mapcount || chk.dirty || extra > 0 {
                        let id = self.folios.get(slot as usize).map_or(0, |f| f.id.0);
                        self.violate(
                            Invariant::I5,
                            format!(
                                "lazyfree folio {id} discarded with refcount {} mapcount {} dirty {} ({} extra refs/pins)",
                                chk.refcount, chk.mapcount, chk.dirty, extra
                            ),
                        );
                    }
                    if let Some(f) = self.folios.get_mut(slot as usize) {
                        f.lazy_discarded = true;
                    }
                    self.remove_rmap(slot, mm, va, true);
                    self.c.lazyfree_discard += 1;
                    continue;
                }
                // Abort: restore the PTE, make the folio swap-backed again.
                self.set(loc, Pte::Present(p));
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.swapbacked = true;
                }
                self.c.lazyfree_abort += 1;
                ok = false;
                break;
            }
            if anon {
                let Some(s) = self.folios.get(slot as usize).and_then(|f| f.swapcache) else {
                    self.set(loc, Pte::Present(p));
                    ok = false;
                    break;
                };
                self.set(
                    loc,
                    Pte::Swap {
                        slot: s,
                        exclusive: pae,
                        soft_dirty: p.soft_dirty,
                    },
                );
                if let Some(x) = self.swap.get_mut(s as usize) {
                    x.count += 1;
                }
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.pae = false;
                }
                if let Some(m) = self.mms.get_mut(&mm) {
                    m.rss[RSS_SWAP] += 1;
                }
            }
            self.remove_rmap(slot, mm, va, true);
        }
        self.scratch = list;
        ok && self
            .folios
            .get(slot as usize)
            .is_some_and(|f| f.mapcount == 0)
    }

    /// Put an isolated folio back (`folio_putback_lru`).
    fn putback(&mut self, slot: u32, active: bool) {
        if let Some(f) = self.folios.get_mut(slot as usize) {
            if f.live {
                f.refcount = f.refcount.saturating_sub(1);
                lru::add_folio(&mut self.lru, f, slot, active);
                if active {
                    self.c.gen_promote_activate += 1;
                }
                self.c.kept += 1;
            }
        }
    }

    /// `add_to_swap`: an anon swap-backed folio enters the swap cache, dirty.
    pub(super) fn add_to_swap(&mut self, slot: u32) {
        let content = self.folios.get(slot as usize).map_or(0, |f| f.content);
        let id = self
            .folios
            .get(slot as usize)
            .map_or(crate::op::FolioId(0), |f| f.id);
        let s = match self.free_swap.pop() {
            Some(s) => s,
            None => {
                self.swap.push(SwapSlot {
                    live: false,
                    count: 0,
                    content: 0,
                    id,
                    cached: None,
                    evicted: false,
                });
                (self.swap.len() - 1) as u32
            }
        };
        if let Some(x) = self.swap.get_mut(s as usize) {
            *x = SwapSlot {
                live: true,
                count: 0,
                content,
                id,
                cached: Some(slot),
                evicted: false,
            };
        }
        if let Some(f) = self.folios.get_mut(slot as usize) {
            f.swapcache = Some(s);
            f.dirty = true;
            f.refcount += 1;
        }
    }

    /// The `mm_vmscan_lru_shrink_inactive` figures of one MGLRU eviction batch (6.18's MGLRU
    /// logs them too).
    fn count_vmscan(&mut self, isolated: usize, done: &Shrunk) {
        self.c.vmscan_scanned += isolated as u64;
        self.c.vmscan_reclaimed += done.reclaimed;
        self.c.vmscan_ref_keep += done.ref_keep;
        self.c.vmscan_activated += done.activated;
    }

    /// `shrink_folio_list` for already-isolated folios (each holds an isolation reference).
    /// `imposed[i]`: the reference's decision for `list[i]` (reclaim or keep) replacing this
    /// model's own; the reference check and the policy's rmap hook still run.
    fn shrink_isolated(
        &mut self,
        cpu: u32,
        list: &[u32],
        ignore_refs: bool,
        imposed: Option<&[ScriptFolio]>,
    ) -> Shrunk {
        let mut out = Shrunk::default();
        let mut to_free: Vec<u32> = Vec::new();
        let mut pending: Vec<u32> = Vec::new();
        for (i, &slot) in list.iter().enumerate() {
            let Some(f) = self.folios.get(slot as usize) else {
                continue;
            };
            if !f.live {
                continue;
            }
            let id = f.id.0;
            let forced = imposed.and_then(|v| v.get(i));
            self.c.scanned += 1;
            // 018ee47f1489: "page_update_gen() tried to promote this page?" -> keep_locked,
            // no rmap walk (policy hook; the reference never takes this path).
            let shortcut = !ignore_refs
                && self.policy.mglru_isolated_referenced()
                && self
                    .folios
                    .get(slot as usize)
                    .is_some_and(|f| f.mapcount > 0 && f.referenced);
            let own = if shortcut {
                Verdict::Keep
            } else if ignore_refs {
                Verdict::Reclaim
            } else {
                let refs = self.folio_referenced(slot);
                match self.folios.get_mut(slot as usize) {
                    Some(f) if refs > 0 => {
                        let was = std::mem::replace(&mut f.referenced, true);
                        if was || refs > 1 {
                            Verdict::Activate
                        } else {
                            Verdict::Keep
                        }
                    }
                    Some(f) => {
                        f.referenced = false;
                        Verdict::Reclaim
                    }
                    None => continue,
                }
            };
            let verdict = match forced {
                None => own,
                Some(d) if d.reclaim => Verdict::Reclaim,
                Some(_) if own == Verdict::Reclaim => Verdict::Keep,
                Some(_) => own,
            };
            // An imposed victim: the reference freed it, so failing to is a skip.
            let forced = forced.is_some_and(|d| d.evicted);
            match verdict {
                Verdict::Activate => {
                    out.activated += 1;
                    self.putback(slot, true);
                    continue;
                }
                Verdict::Keep => {
                    out.ref_keep += 1;
                    self.putback(slot, false);
                    continue;
                }
                Verdict::Reclaim => out.tried.push(slot),
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
                self.putback(slot, true);
                if forced {
                    out.skipped.push((
                        id,
                        "try_to_unmap failed (mlocked, pinned or lazyfree abort)",
                    ));
                }
                continue;
            }
            let dirty = self.folios.get(slot as usize).is_some_and(|f| f.dirty);
            if dirty {
                let Some(f) = self.folios.get(slot as usize) else {
                    continue;
                };
                let lazy = f.is_anon() && !f.swapbacked;
                if !lazy {
                    // try_to_unmap_flush_dirty before pageout (I1).
                    if !self.policy.free_pages_before_flush() {
                        self.ubc_flush_dirty(cpu);
                    }
                    self.pageout(slot);
                }
            }
            // __remove_mapping: refcount must be exactly isolation + cache reference.
            let Some(f) = self.folios.get(slot as usize) else {
                continue;
            };
            let cache = u32::from(f.in_pagecache) + u32::from(f.swapcache.is_some());
            if f.mapcount > 0 || f.refcount != 1 + cache || f.dirty {
                self.putback(slot, false);
                if forced {
                    out.skipped
                        .push((id, "still mapped, dirty or referenced at __remove_mapping"));
                }
                continue;
            }
            self.remove_from_cache(slot);
            to_free.push(slot);
            pending.push(slot);
            if self.free_batch_full(&pending) {
                out.reclaimed += self.free_reclaimed(cpu, &mut pending);
            }
        }
        out.reclaimed += self.free_reclaimed(cpu, &mut pending);
        out.freed = to_free;
        out
    }

    /// `shrink_folio_list` entry for MADV_PAGEOUT victims (not yet isolated).
    pub(crate) fn shrink_folio_list(&mut self, cpu: u32, victims: &[u32], ignore_refs: bool) {
        let mut iso = Vec::with_capacity(victims.len());
        for &slot in victims {
            if let Some(f) = self.folios.get_mut(slot as usize) {
                if f.live && f.on_lru {
                    lru::del_folio(&mut self.lru, f);
                    f.refcount += 1;
                    iso.push(slot);
                }
            }
        }
        self.shrink_isolated(cpu, &iso, ignore_refs, None);
    }

    /// `pageout`: write the data (swap slot or file), folio clean. I1: no writable+dirty TLB
    /// entry may still translate to the folio at the dirty → clean transition.
    pub(super) fn pageout(&mut self, slot: u32) {
        let Some(f) = self.folios.get(slot as usize) else {
            return;
        };
        let (content, kind, swapcache) = (f.content, f.kind, f.swapcache);
        if f.tlb_dirty_refs > 0 {
            let d = format!(
                "folio {} cleaned for writeback while {} writable+dirty TLB entries still map it",
                f.id.0, f.tlb_dirty_refs
            );
            self.violate(Invariant::I1, d);
        }
        match (kind, swapcache) {
            (_, Some(s)) => {
                if let Some(x) = self.swap.get_mut(s as usize) {
                    x.content = content;
                }
                self.c.swap_out += 1;
            }
            (FolioKind::File { file, index }, None) => {
                if let Some(fs) = self.files.get_mut(&file) {
                    if let Some(d) = fs.disk.get_mut(&index) {
                        d.content = content;
                    }
                }
                self.c.writeback += 1;
            }
            (FolioKind::Anon, None) => {}
        }
        if let Some(f) = self.folios.get_mut(slot as usize) {
            f.dirty = false;
        }
    }

    /// `__remove_mapping`: drop the page-cache / swap-cache reference, leave a shadow.
    pub(super) fn remove_from_cache(&mut self, slot: u32) {
        let Some(f) = self.folios.get_mut(slot as usize) else {
            return;
        };
        let kind = f.kind;
        let sc = f.swapcache.take();
        let pc = std::mem::replace(&mut f.in_pagecache, false);
        if let Some(s) = sc {
            f.refcount = f.refcount.saturating_sub(1);
            if let Some(x) = self.swap.get_mut(s as usize) {
                x.cached = None;
                x.evicted = true;
                if x.count == 0 {
                    x.live = false;
                    self.free_swap.push(s);
                }
            }
        }
        if pc {
            if let Some(f) = self.folios.get_mut(slot as usize) {
                f.refcount = f.refcount.saturating_sub(1);
            }
            if let FolioKind::File { file, index } = kind {
                if let Some(fs) = self.files.get_mut(&file) {
                    fs.pagecache.remove(&index);
                    if let Some(d) = fs.disk.get_mut(&index) {
                        d.evicted = true;
                    }
                }
            }
        }
    }
}

/// `suitable_to_scan`: at least one young PTE per cache line of PTEs on average (x86: 64-byte
/// lines of 8-byte PTEs, `clamp(64 / 8, 2, 8)` = 8).
fn suitable_to_scan(total: u64, young: u64) -> bool {
    young * 8 >= total
}

/// One present PTE seen by `walk_pte_range`: clear A, transfer D to the folio, promote it to
/// `max_seq` (or mark it referenced if isolated).
#[inline]
fn age_walked_pte(
    pp: &mut PresentPte,
    max: u64,
    folios: &mut super::phash::Tracked<Folio>,
    lru: &mut Lru,
    c: &mut crate::counters::Counters,
) {
    if !pp.young || pp.folio == ZERO_SLOT {
        return;
    }
    c.a_tc_pt_walk += 1;
    c.a_cleared_pt_walk += 1;
    c.a_bit_clears += 1;
    pp.young = false;
    let slot = pp.folio;
    let Some(f) = folios.get_mut(slot as usize) else {
        return;
    };
    if pp.dirty && !f.dirty && !(f.is_anon() && f.swapbacked && f.swapcache.is_none()) {
        f.dirty = true;
    }
    if !f.on_lru {
        f.referenced = true;
    } else if f.seq != max {
        lru::move_to_seq(lru, f, slot, max);
        f.refs = 0;
        c.gen_promote_ptwalk += 1;
    }
}

/// Count a skipped imposed victim, keeping the first reason.
pub(super) fn note_skip(res: &mut ImposeResult, id: u64, why: &str) {
    res.skipped += 1;
    if res.first_skip.is_none() {
        res.first_skip = Some(format!("folio {id}: {why}"));
    }
}

/// (cpu, pages, memcg scope) of a reclaim op.
fn reclaim_of(op: &Op) -> Option<(u32, u32, Option<u32>)> {
    match *op {
        Op::Reclaim { cpu, nr_to_reclaim } => Some((cpu, nr_to_reclaim, None)),
        Op::ReclaimMemcg {
            cpu,
            nr_to_reclaim,
            memcg,
        } => Some((cpu, nr_to_reclaim, Some(memcg))),
        // Followed like any recorded reclaim (its script holds the one pass).
        Op::ReclaimScan { cpu, memcg, .. } => Some((cpu, 0, Some(memcg))),
        _ => None,
    }
}
