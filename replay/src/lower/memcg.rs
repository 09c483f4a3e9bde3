//! The lowering's memcg part: reclaim episodes per CPU (`mm_vmscan_kswapd_wake` /
//! `*_reclaim_begin` … `*_reclaim_end`) and the memory cgroups they reclaim. The kernel's own
//! `nr_reclaimed` per `mm_vmscan_lru_shrink_inactive` becomes one reclaim op (or the episode's
//! total at its end when no per-LRU event was logged); a pass of a memcg episode that freed
//! nothing becomes `Op::ReclaimScan` of its `nr_scanned` (the classic LRU does that pass's
//! keeping, activating and writeback at its moment); a memcg episode
//! (`mm_vmscan_memcg_reclaim_begin`) reclaims the reclaiming task's process tree, told to the
//! model once per mm with `Op::SetMemcg` (later forks inherit it in the model).
//!
//! Invariants: an episode's pages are lowered once (per shrink, or as the end's total, never
//! both); memcg ids are handed out in order of first reclaim per process tree and never
//! change; every mm of a tree is told its memcg at most once, in mm id order (determinism).
//! It must never decide what reclaim frees or which folios (the model does): only how many the
//! kernel said and in which memcg.

use std::collections::{BTreeMap, BTreeSet};

use mmreplay_parsers::record::{Event, Vmscan};
use mmreplay_reference::op::{MmId, Op};

use super::Lowering;

/// Reclaim episodes in progress and memcg assignments.
pub(super) struct Memcg {
    /// Per CPU: a `lru_shrink_inactive` was lowered since the last reclaim begin.
    reclaim_shrunk: Vec<bool>,
    /// Per CPU: the memcg of the memcg reclaim episode in progress (`None`: global reclaim).
    reclaim_memcg: Vec<Option<u32>>,
    /// Per task: the memcg of its memcg reclaim episode in progress. The episode is the
    /// task's (`try_to_free_mem_cgroup_pages` in its context): a pass logged after the task
    /// moved to another CPU is still that memcg's (lower/scanlist.rs).
    episode_by_task: BTreeMap<i32, u32>,
    /// Memcg of each process tree (by `MmShadow::root`) seen doing memcg reclaim: the kernel
    /// reclaims the charging task's cgroup, and children inherit their parent's.
    memcg_by_root: BTreeMap<u32, u32>,
    /// Mms already told their memcg (`Op::SetMemcg`).
    memcg_told: BTreeSet<u32>,
}

impl Memcg {
    pub fn new(nr_cpus: usize) -> Memcg {
        Memcg {
            reclaim_shrunk: vec![false; nr_cpus],
            reclaim_memcg: vec![None; nr_cpus],
            episode_by_task: BTreeMap::new(),
            memcg_by_root: BTreeMap::new(),
            memcg_told: BTreeSet::new(),
        }
    }

    /// The reclaim op for `n` pages in the episode running on `cpu`.
    fn reclaim_op(&self, cpu: u32, n: u64) -> Op {
        let nr_to_reclaim = u32::try_from(n).unwrap_or(u32::MAX);
        match self.reclaim_memcg.get(cpu as usize).copied().flatten() {
            Some(memcg) => Op::ReclaimMemcg {
                cpu,
                nr_to_reclaim,
                memcg,
            },
            None => Op::Reclaim { cpu, nr_to_reclaim },
        }
    }

    fn set_shrunk(&mut self, cpu: usize, v: bool) {
        if let Some(s) = self.reclaim_shrunk.get_mut(cpu) {
            *s = v;
        }
    }

    fn set_memcg(&mut self, cpu: usize, memcg: Option<u32>) {
        if let Some(s) = self.reclaim_memcg.get_mut(cpu) {
            *s = memcg;
        }
    }
}

impl Lowering {
    /// A memcg reclaim episode begins in `pid`'s context: its process tree is one memcg (told
    /// to the model once per mm; later forks inherit it in the model).
    fn memcg_episode(&mut self, pid: i32, cpu: u32, out: &mut Vec<Op>) -> Option<u32> {
        let m = self.mm_of(pid, cpu, out)?;
        let root = self.tasks.root(m);
        let mc = &mut self.memcg;
        let next = u32::try_from(mc.memcg_by_root.len() + 1).unwrap_or(u32::MAX);
        let memcg = *mc.memcg_by_root.entry(root).or_insert(next);
        let tree: Vec<u32> = self
            .tasks
            .mms
            .iter()
            .filter(|(id, s)| s.root == root && !mc.memcg_told.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in tree {
            self.memcg.memcg_told.insert(id);
            self.emit(
                out,
                Op::SetMemcg {
                    mm: MmId(id),
                    memcg,
                },
            );
        }
        Some(memcg)
    }

    /// A `vmscan` event of a selected task.
    pub(super) fn vmscan(&mut self, pid: i32, cpu: u32, v: &Vmscan, out: &mut Vec<Op>) {
        let idx = cpu as usize;
        match v {
            Vmscan::KswapdWake { .. } | Vmscan::DirectReclaimBegin { .. } => {
                self.memcg.set_shrunk(idx, false);
                let memcg = match v {
                    Vmscan::DirectReclaimBegin { memcg: true, .. } => {
                        let m = self.memcg_episode(pid, cpu, out);
                        if m.is_none() {
                            self.approx("memcg_reclaim_by_kernel_task_taken_as_global");
                        }
                        m
                    }
                    _ => None,
                };
                self.memcg.set_memcg(idx, memcg);
                super::scanlist::note_episode(&mut self.memcg.episode_by_task, pid, memcg);
                self.not_lowered("vmscan_episode_begin");
            }
            Vmscan::LruShrinkInactive {
                nr_reclaimed,
                nr_scanned,
                file,
                ..
            } => {
                self.memcg.set_shrunk(idx, true);
                let on_cpu = self.memcg.reclaim_memcg.get(idx).copied().flatten();
                let memcg =
                    super::scanlist::episode_memcg(on_cpu, &self.memcg.episode_by_task, pid);
                if on_cpu.is_none() && memcg.is_some() {
                    self.approx("memcg_reclaim_pass_after_task_migrated");
                }
                if let (Some(memcg), Some(true), true) = (memcg, *file, *nr_scanned > 0) {
                    // A pass of the file list (its reclaim_flags): the model shrinks that list
                    // now, with the kernel's nr_reclaimed, instead of choosing lists itself in
                    // a reclaim op (lower/scanlist.rs).
                    let op = super::scanlist::file_pass(cpu, memcg, *nr_scanned, *nr_reclaimed);
                    self.emit(out, op);
                } else if *nr_reclaimed > 0 {
                    let op = super::scanlist::reclaim_op(cpu, *nr_reclaimed, memcg);
                    self.emit(out, op);
                } else if let (Some(memcg), true) = (memcg, *nr_scanned > 0) {
                    // A pass that only kept, activated or started writeback: the model does its
                    // work now (its unmaps see this moment's mm_cpumask), not in the next pass
                    // that frees.
                    let nr_scanned = u32::try_from(*nr_scanned).unwrap_or(u32::MAX);
                    self.emit(
                        out,
                        Op::ReclaimScan {
                            cpu,
                            nr_scanned,
                            memcg,
                            file: *file,
                            nr_reclaimed: 0,
                        },
                    );
                } else {
                    self.not_lowered("mm_vmscan_lru_shrink_inactive_nothing_reclaimed");
                }
            }
            Vmscan::DirectReclaimEnd { nr_reclaimed, .. } => {
                let shrunk = self.memcg.reclaim_shrunk.get(idx).copied().unwrap_or(false);
                if !shrunk && *nr_reclaimed > 0 {
                    // No per-LRU event inside the episode: the episode's total is the target.
                    let op = self.memcg.reclaim_op(cpu, *nr_reclaimed);
                    self.emit(out, op);
                } else {
                    self.not_lowered("vmscan_episode_end");
                }
                self.memcg.set_shrunk(idx, false);
                self.memcg.set_memcg(idx, None);
                self.memcg.episode_by_task.remove(&pid);
            }
            other => {
                let name = Event::Vmscan(other.clone()).name().to_string();
                self.not_lowered(&name);
            }
        }
    }
}
