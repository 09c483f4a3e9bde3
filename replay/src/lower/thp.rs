//! Lowering of the events that show transparent huge pages: `huge_memory:mm_collapse_huge_page`
//! (khugepaged's `collapse_huge_page`) becomes `Op::ThpCollapse` on the mm its hashed pointer
//! names. THP faults, splits and PMD moves have no event of their own in 6.18: the model infers
//! them from page faults and the mm syscalls (`reference/src/model/thp.rs`).
//!
//! Under `--pid`/`--workload`, khugepaged (a kernel thread) is outside the selection, yet its
//! collapses of a selected mm flush that mm: its flush and IPI records are held back until its
//! next `mm_collapse_huge_page` says which mm it worked on, then lowered (observed) with the
//! collapse if that mm is selected, or dropped as filtered out. It must never place a collapse
//! on an mm it cannot name.

use mmreplay_parsers::record::{Event, Record};
use mmreplay_reference::op::Op;

use super::Lowering;

/// Statuses of `mm_collapse_huge_page` that `collapse_huge_page` reports after
/// `pmdp_collapse_flush` and `tlb_remove_table_sync_one` ran (`__collapse_huge_page_isolate`
/// and `__collapse_huge_page_copy` failures, 6.18 `mm/khugepaged.c`); every other failure
/// happens before them (allocation, VMA or PMD revalidation, swap-in).
const FAILED_AFTER_FLUSH: &[&str] = &[
    "failed",
    "exceed_none_pte",
    "exceed_shared_pte",
    "pte_non_present",
    "pte_uffd_wp",
    "lack_referenced_page",
    "page_null",
    "not_suitable_page_count",
    "page_locked",
    "could_not_delete_page_from_lru",
    "copy_poisoned_page",
];

/// Most khugepaged flush/IPI records held back between two collapses (a collapse logs a few);
/// beyond it the oldest are dropped as filtered out.
const HELD_MAX: usize = 256;

/// khugepaged records held back under a filter (see the module doc).
#[derive(Default)]
pub(super) struct HeldKhugepaged {
    records: Vec<Record>,
    /// Re-lowering held records: do not hold them again.
    replaying: bool,
}

fn is_khugepaged(r: &Record) -> bool {
    r.comm.as_bytes() == b"khugepaged"
}

impl Lowering {
    /// `mm_collapse_huge_page` → `Op::ThpCollapse` when the collapse got to its flush.
    pub(super) fn collapse_huge_page(
        &mut self,
        r: &Record,
        mm: u64,
        status: &str,
        out: &mut Vec<Op>,
    ) {
        let collapsed = status == "succeeded";
        if !collapsed && !FAILED_AFTER_FLUSH.contains(&status) {
            self.not_lowered("mm_collapse_huge_page_before_flush");
            return;
        }
        let Some(m) = self.tasks.by_hash(mm) else {
            // A binary capture logs the raw pointer, which no `rss_stat` mm_id (a hash) matches.
            self.unplaced("mm_collapse_huge_page_mm_unknown");
            return;
        };
        // The event names no address: the model picks the PMD (its khugepaged scan cursor).
        self.approx("thp_collapse_pmd_chosen_by_model");
        self.emit(
            out,
            Op::ThpCollapse {
                cpu: r.cpu,
                mm: m,
                collapsed,
            },
        );
    }

    /// Under a filter: hold or release khugepaged's records. Returns true when `r` was taken
    /// care of here.
    pub(super) fn hold_khugepaged(&mut self, r: &Record, out: &mut Vec<Op>) -> bool {
        if !self.filter.active() || self.held_khugepaged.replaying || !is_khugepaged(r) {
            return false;
        }
        if self.filter.is_selected(r) {
            return false;
        }
        match &r.event {
            Event::TlbFlush { .. }
            | Event::CsdQueueCpu { .. }
            | Event::IpiSendCpu { .. }
            | Event::IpiSendCpumask { .. } => {
                if self.held_khugepaged.records.len() >= HELD_MAX {
                    self.held_khugepaged.records.remove(0);
                    self.stats.filtered_out += 1;
                }
                self.held_khugepaged.records.push(r.clone());
                true
            }
            Event::CollapseHugePage { mm, .. } => {
                let held = std::mem::take(&mut self.held_khugepaged.records);
                let selected = self.tasks.by_hash(*mm).is_some();
                if !selected {
                    self.stats.filtered_out += held.len() as u64 + 1;
                    return true;
                }
                // Lower them as the selected mm's: this collapse worked on it.
                self.held_khugepaged.replaying = true;
                let was_rejected = self.filter.select_for_now(r.pid);
                for h in held.iter().chain(std::iter::once(r)) {
                    // `push` counts each record again.
                    self.stats.records = self.stats.records.saturating_sub(1);
                    self.push(h, out);
                }
                self.filter.restore(r.pid, was_rejected);
                self.held_khugepaged.replaying = false;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LowerOptions, LowerStats, Lowering};
    use mmreplay_parsers::record::{Comm, Event, IpiKind, Record, TlbReason};
    use mmreplay_reference::op::{MmId, Op};
    use std::sync::Arc;

    fn rec(cpu: u32, pid: i32, comm: &[u8], event: Event) -> Record {
        Record {
            ts_ns: 0,
            cpu,
            pid,
            tgid: None,
            comm: Comm::new(comm),
            event,
        }
    }

    /// Task 40 faults (its own mm) and its `rss_stat` names the hashed mm `0xabc`.
    fn workload() -> Vec<Record> {
        vec![
            rec(
                1,
                40,
                b"w",
                Event::PageFault {
                    user: true,
                    address: 0x1000,
                    ip: 0,
                    error_code: 0x6,
                },
            ),
            rec(
                1,
                40,
                b"w",
                Event::RssStat {
                    mm_id: 0xabc,
                    curr: true,
                    member: Arc::from("MM_ANONPAGES"),
                    size: 4096,
                },
            ),
        ]
    }

    /// What khugepaged (pid 41, CPU 0) logs for one collapse reaching its flush: the
    /// shootdown of `flush_tlb_range`, the `tlb_remove_table_smp_sync` call, the result.
    fn collapse(mm: u64, status: &str) -> Vec<Record> {
        let k = |event| rec(0, 41, b"khugepaged", event);
        vec![
            k(Event::TlbFlush {
                pages: -1,
                reason: TlbReason {
                    code: Some(4),
                    text: Arc::from("remote IPI send"),
                },
            }),
            k(Event::CsdQueueCpu {
                target: 1,
                kind: IpiKind::TlbShootdown,
            }),
            k(Event::CsdQueueCpu {
                target: 1,
                kind: IpiKind::TableSync,
            }),
            k(Event::CollapseHugePage {
                mm,
                status: Arc::from(status),
            }),
        ]
    }

    fn lower(records: &[Record], opts: LowerOptions) -> (Vec<Op>, LowerStats) {
        let mut l = Lowering::new(opts);
        let mut ops = Vec::new();
        for r in records {
            l.push(r, &mut ops);
        }
        l.finish(&mut ops);
        ops.retain(|o| !matches!(o, Op::Clock { .. } | Op::Switch { .. }));
        (ops, l.into_stats())
    }

    fn collapses(ops: &[Op]) -> Vec<(MmId, bool)> {
        ops.iter()
            .filter_map(|o| match o {
                Op::ThpCollapse { mm, collapsed, .. } => Some((*mm, *collapsed)),
                _ => None,
            })
            .collect()
    }

    fn opts(pid: Option<i32>) -> LowerOptions {
        LowerOptions {
            nr_cpus: 2,
            pid,
            ..LowerOptions::default()
        }
    }

    #[test]
    fn collapse_is_placed_on_the_mm_its_hash_names() {
        let mut recs = workload();
        recs.extend(collapse(0xabc, "succeeded"));
        // Failed after pmdp_collapse_flush (isolation): flushed and synced, not collapsed.
        recs.extend(collapse(0xabc, "page_locked"));
        // Failed before it (allocation): nothing happened to the page tables.
        recs.extend(collapse(0xabc, "alloc_huge_page_failed"));
        // An mm no rss_stat named (or a binary capture's raw pointer).
        recs.extend(collapse(0xdef, "succeeded"));
        let (ops, st) = lower(&recs, opts(None));
        let mm = ops.iter().find_map(|o| match o {
            Op::Fault { mm, .. } => Some(*mm),
            _ => None,
        });
        let mm = mm.expect("the fault's mm");
        assert_eq!(collapses(&ops), [(mm, true), (mm, false)]);
        assert_eq!(
            st.unplaced.get("mm_collapse_huge_page_mm_unknown"),
            Some(&1)
        );
        assert_eq!(
            st.approximations.get("thp_collapse_pmd_chosen_by_model"),
            Some(&2)
        );
        // Every khugepaged flush and sync the capture logged is observed.
        assert_eq!(st.observed.remote_tlb_flushes, 4);
        assert_eq!(st.observed.ipis_table_sync, 4);
    }

    #[test]
    fn under_a_filter_khugepaged_counts_only_for_the_selected_mm() {
        let mut recs = workload();
        recs.extend(collapse(0xabc, "succeeded"));
        // Another process's collapse: its flush and sync are not the workload's.
        recs.extend(collapse(0xdef, "succeeded"));
        let (ops, st) = lower(&recs, opts(Some(40)));
        assert_eq!(collapses(&ops).len(), 1, "{ops:?}");
        assert_eq!(st.observed.remote_tlb_flushes, 1);
        assert_eq!(st.observed.ipis_shootdown, 1);
        assert_eq!(st.observed.ipis_table_sync, 1);
        assert_eq!(st.filtered_out, 4);
        assert_eq!(st.records, recs.len() as u64);
    }
}
