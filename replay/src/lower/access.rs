//! Lowering `record --access` samples (`<trace>.access.json`, see `crate::access`): each
//! soft-dirty clear becomes `Op::ClearSoftDirty` on the mm of its process, placed before the
//! first record at or after its time (both `CLOCK_MONOTONIC`, trace clock `mono`). The writes
//! between faults then reach the model as the write-protect faults the capture holds. It must
//! never invent an access: a clear only write-protects, and a clear it cannot place (process
//! unknown or filtered out, CPU out of range) is counted by reason.

use mmreplay_reference::op::{MmId, Op};

use super::Lowering;

/// How far the lowering got through the access log.
#[derive(Default)]
pub(super) struct AccessCursor {
    pub next: usize,
}

impl Lowering {
    /// Emit every clear due at `ts_ns` (a record's time).
    pub(super) fn access_clears(&mut self, ts_ns: u64, out: &mut Vec<Op>) {
        let Some(log) = self.opts.access.clone() else {
            return;
        };
        while let Some(c) = log.clears.get(self.access.next) {
            if c.t_ns > ts_ns {
                break;
            }
            self.access.next += 1;
            if c.cpu >= self.opts.nr_cpus.max(1) {
                self.unplaced("soft_dirty_clear_cpu_out_of_range");
                continue;
            }
            let mm: Option<MmId> = self.tasks.by_tid.get(&c.pid).copied();
            match mm {
                Some(mm) if Some(mm) != self.tasks.outside_mm => {
                    // What the clears can show: the first write per page per interval; reads
                    // and later writes stay invisible (`crate::access`).
                    self.stats
                        .approximations
                        .insert("access_sampling_interval_ms".into(), log.interval_ms);
                    self.approx("soft_dirty_clears");
                    self.emit(out, Op::ClearSoftDirty { cpu: c.cpu, mm });
                }
                _ if self.filter.rejects(c.pid) => {
                    self.stats.filtered_out += 1;
                }
                _ => self.unplaced("soft_dirty_clear_unknown_process"),
            }
        }
    }

    /// Clears after the last record changed nothing the capture shows: counted.
    pub(super) fn access_finish(&mut self) {
        let left = self
            .opts
            .access
            .as_ref()
            .map_or(0, |l| l.clears.len().saturating_sub(self.access.next));
        if left > 0 {
            *self
                .stats
                .approximations
                .entry("soft_dirty_clears_after_last_record".into())
                .or_insert(0) += left as u64;
            self.access.next += left;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mmreplay_parsers::record::{Comm, Event, Record};
    use mmreplay_reference::op::{MmId, Op};

    use super::super::{LowerOptions, LowerStats, Lowering};
    use crate::access::{AccessLog, Clear, METHOD, VERSION};

    fn fault(ts_ns: u64, pid: i32, addr: u64) -> Record {
        Record {
            ts_ns,
            cpu: 0,
            pid,
            tgid: None,
            comm: Comm::new(b"w"),
            event: Event::PageFault {
                user: true,
                address: addr,
                ip: 0,
                error_code: 0x7,
            },
        }
    }

    fn clear(t_ns: u64, cpu: u32, pid: i32) -> Clear {
        Clear {
            t_ns,
            cpu,
            pid,
            soft_dirty_pages: 1,
        }
    }

    fn lower(clears: Vec<Clear>, recs: &[Record], pid: Option<i32>) -> (Vec<Op>, LowerStats) {
        let log = AccessLog {
            version: VERSION,
            method: METHOD.into(),
            interval_ms: 100,
            clock: "mono".into(),
            clears,
            skipped: 0,
        };
        let mut l = Lowering::new(LowerOptions {
            nr_cpus: 2,
            pid,
            access: Some(Arc::new(log)),
            ..LowerOptions::default()
        });
        let mut ops = Vec::new();
        for r in recs {
            l.push(r, &mut ops);
        }
        l.finish(&mut ops);
        ops.retain(|o| !matches!(o, Op::Clock { .. }));
        (ops, l.into_stats())
    }

    #[test]
    fn clears_land_before_the_first_record_at_or_after_their_time() {
        let recs = [
            fault(1_000, 10, 0x7f00_0000_1000),
            fault(2_000, 10, 0x7f00_0000_1000),
            fault(3_000, 10, 0x7f00_0000_1000),
        ];
        // Before pid 10 acted: unknown; at 1,500 and 2,000: before the second fault (one from
        // CPU 1, the recorder's); after the last record: counted.
        let (ops, st) = lower(
            vec![
                clear(500, 0, 10),
                clear(1_500, 1, 10),
                clear(2_000, 0, 10),
                clear(2_500, 7, 10),
                clear(9_000, 0, 10),
            ],
            &recs,
            None,
        );
        let names: Vec<&str> = ops.iter().map(Op::name).collect();
        assert_eq!(
            names,
            [
                "exec",
                "mmap",
                "fault",
                "clear_soft_dirty",
                "clear_soft_dirty",
                "fault",
                "fault"
            ]
        );
        assert_eq!(
            ops[3],
            Op::ClearSoftDirty {
                cpu: 1,
                mm: MmId(1)
            }
        );
        assert_eq!(st.approximations.get("soft_dirty_clears"), Some(&2));
        assert_eq!(
            st.approximations.get("soft_dirty_clears_after_last_record"),
            Some(&1)
        );
        assert_eq!(
            st.unplaced.get("soft_dirty_clear_unknown_process"),
            Some(&1)
        );
        assert_eq!(
            st.unplaced.get("soft_dirty_clear_cpu_out_of_range"),
            Some(&1)
        );
    }

    #[test]
    fn clears_of_filtered_out_processes_are_counted_not_lowered() {
        let recs = [
            fault(1_000, 10, 0x7f00_0000_1000),
            fault(1_000, 11, 0x7f00_0000_1000),
            fault(3_000, 10, 0x7f00_0000_1000),
        ];
        let (ops, st) = lower(
            vec![clear(2_000, 0, 11), clear(2_000, 0, 10)],
            &recs,
            Some(10),
        );
        assert_eq!(
            ops.iter()
                .filter(|o| o.name() == "clear_soft_dirty")
                .count(),
            1
        );
        assert_eq!(st.filtered_out, 2, "pid 11's fault and its clear");
        assert!(st.unplaced.is_empty(), "{:?}", st.unplaced);
    }
}
