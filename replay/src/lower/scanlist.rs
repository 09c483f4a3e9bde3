//! The list of a logged reclaim pass: `mm_vmscan_lru_shrink_inactive`'s `reclaim_flags` say
//! whether the kernel shrank the inactive anon or file list. A pass of the file list inside a
//! memcg episode becomes `Op::ReclaimScan` of that list whatever it freed (the kernel's
//! `nr_reclaimed` goes with it): the model's own reclaim op would pick lists by
//! `get_scan_count`, and the file list of a memcg holding a few pages of the workload's binary
//! is scanned by the kernel only at its lowest priorities. Anon passes keep their lowering
//! (`lower/memcg.rs`). It must never choose folios or the list the kernel did not log.
//!
//! Which memcg a pass reclaims: a memcg episode is its task's (`mm_vmscan_memcg_reclaim_begin`
//! … `_end` in the task's context), and the task may move to another CPU between them (59 of
//! k61-hotset-classic's 7,601 passes, 23 of them freeing, were logged on a CPU where no episode
//! had begun). Such a pass is the task's episode's, not global reclaim (which would scan the
//! root's lruvec, pages the kernel's memcg reclaim never looks at).

use std::collections::BTreeMap;

use mmreplay_reference::op::Op;

/// Remember (or forget, for a global episode) `pid`'s memcg episode.
pub(super) fn note_episode(by_task: &mut BTreeMap<i32, u32>, pid: i32, memcg: Option<u32>) {
    match memcg {
        Some(m) => {
            by_task.insert(pid, m);
        }
        None => {
            by_task.remove(&pid);
        }
    }
}

/// The memcg a pass of `pid` logged on a CPU reclaims: its task's episode's (wherever it
/// began), else the CPU's (an episode this lowering knows only by CPU), else `None` (global).
pub(super) fn episode_memcg(
    on_cpu: Option<u32>,
    by_task: &BTreeMap<i32, u32>,
    pid: i32,
) -> Option<u32> {
    by_task.get(&pid).copied().or(on_cpu)
}

/// The op of a memcg episode's pass of the file list.
pub(super) fn file_pass(cpu: u32, memcg: u32, nr_scanned: u64, nr_reclaimed: u64) -> Op {
    Op::ReclaimScan {
        cpu,
        nr_scanned: u32::try_from(nr_scanned).unwrap_or(u32::MAX),
        memcg,
        file: Some(true),
        nr_reclaimed: u32::try_from(nr_reclaimed).unwrap_or(u32::MAX),
    }
}

/// The reclaim op of a pass that freed `n` pages, in `memcg`'s episode or global reclaim.
pub(super) fn reclaim_op(cpu: u32, n: u64, memcg: Option<u32>) -> Op {
    let nr_to_reclaim = u32::try_from(n).unwrap_or(u32::MAX);
    match memcg {
        Some(memcg) => Op::ReclaimMemcg {
            cpu,
            nr_to_reclaim,
            memcg,
        },
        None => Op::Reclaim { cpu, nr_to_reclaim },
    }
}
