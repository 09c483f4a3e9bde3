//! What the kernel's own vmscan events say reclaim did (`mm_vmscan_lru_isolate`,
//! `mm_vmscan_lru_shrink_inactive`, `mm_vmscan_lru_shrink_active`), summed per capture, for the
//! comparison with the reference model's `vmscan_*` counters (`replay --json` fidelity keys
//! `vmscan_scanned`, `vmscan_reclaimed`, `vmscan_ref_keep`, `vmscan_activated`). The classic
//! LRU logs all three on 6.1 and 6.18; 6.18's MGLRU logs the first two; 6.1's MGLRU none.
//! It must never feed the model: it only counts.

use mmreplay_parsers::record::Vmscan;
use serde::Serialize;

/// Sums of the vmscan events of one capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VmscanObserved {
    /// `lru_shrink_inactive` events.
    pub shrink_inactive_events: u64,
    /// Their `nr_scanned`, `nr_reclaimed`, `nr_ref_keep`, `nr_activate_anon + _file`.
    pub scanned: u64,
    pub reclaimed: u64,
    pub ref_keep: u64,
    pub activated: u64,
    /// `lru_shrink_active` events and their `nr_taken`, `nr_deactivated`, `nr_referenced`.
    pub shrink_active_events: u64,
    pub active_taken: u64,
    pub deactivated: u64,
    pub rotated: u64,
    /// `lru_isolate` events and their `nr_taken`.
    pub isolate_events: u64,
    pub isolated: u64,
}

impl VmscanObserved {
    /// Count one vmscan event.
    pub fn note(&mut self, v: &Vmscan) {
        match *v {
            Vmscan::LruShrinkInactive {
                nr_scanned,
                nr_reclaimed,
                nr_ref_keep,
                nr_activate,
                ..
            } => {
                self.shrink_inactive_events += 1;
                self.scanned += nr_scanned;
                self.reclaimed += nr_reclaimed;
                self.ref_keep += nr_ref_keep;
                self.activated += nr_activate;
            }
            Vmscan::LruShrinkActive {
                nr_taken,
                nr_deactivated,
                nr_referenced,
                ..
            } => {
                self.shrink_active_events += 1;
                self.active_taken += nr_taken;
                self.deactivated += nr_deactivated;
                self.rotated += nr_referenced;
            }
            Vmscan::LruIsolate { nr_taken, .. } => {
                self.isolate_events += 1;
                self.isolated += nr_taken;
            }
            _ => {}
        }
    }

    /// Whether the capture logged any per-LRU reclaim event.
    pub fn any(&self) -> bool {
        self.shrink_inactive_events + self.shrink_active_events + self.isolate_events > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_shrink_events() {
        let mut o = VmscanObserved::default();
        o.note(&Vmscan::LruShrinkInactive {
            nid: 0,
            nr_scanned: 32,
            nr_reclaimed: 10,
            priority: 3,
            nr_ref_keep: 20,
            nr_activate: 2,
            file: Some(false),
        });
        o.note(&Vmscan::LruShrinkActive {
            nid: 0,
            nr_taken: 32,
            nr_active: 1,
            nr_deactivated: 31,
            nr_referenced: 1,
        });
        assert_eq!(
            (o.scanned, o.reclaimed, o.ref_keep, o.activated),
            (32, 10, 20, 2)
        );
        assert_eq!((o.active_taken, o.deactivated, o.rotated), (32, 31, 1));
        assert!(o.any());
    }
}
