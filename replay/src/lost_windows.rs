//! Where a capture lost events, as time windows per CPU that fidelity must not compare: the
//! kernel's own counts (flushes, IPIs, reclaim events) inside such a window are short by the
//! lost events, while the model, fed the records around it, predicts them all.
//!
//! A lost-events marker (`CPU:N [LOST M EVENTS]`, a ring-buffer page flagged "missed events",
//! perf's `PERF_RECORD_LOST`) sits between the last record the CPU kept before the loss and
//! the first one after it, so the window runs from the CPU's previous record (the capture's
//! first record when it had none) to its next record (the capture's last record when none
//! follows). Windows of one CPU that touch are merged.
//!
//! Fed every record of a run by `input_report::LostTracker`; reported under `input.lost`
//! (`not_comparable_for_fidelity`) and on the `lost:` text lines, and `fidelity` marks a
//! first divergence found in such a window. It must never change what the model is fed.

use std::fmt::Write as _;

use serde::Serialize;

/// Windows listed one by one; later ones are counted in `windows_total` and `span_ns`.
pub const MAX_LISTED: usize = 32;
/// CPUs tracked one by one; a marker on a higher CPU number opens a window over the whole
/// capture on that CPU (memory stays bounded on hostile CPU numbers).
const MAX_CPUS: usize = 4096;

/// One time window of one CPU in which events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LostSpan {
    pub cpu: u32,
    /// The CPU's last record before the loss (trace clock, ns).
    pub from_ns: u64,
    /// The CPU's first record after the loss.
    pub to_ns: u64,
    /// Events the markers of the window say were lost (`None`: a marker did not say).
    pub events: Option<u64>,
}

impl LostSpan {
    /// Whether `[from_ns, to_ns]` (absolute trace time) overlaps this window.
    pub fn overlaps(&self, from_ns: u64, to_ns: u64) -> bool {
        self.from_ns <= to_ns && from_ns <= self.to_ns
    }
}

/// The windows of a run that are not comparable for fidelity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NotComparable {
    /// The first [`MAX_LISTED`] windows, in the order they closed.
    pub windows: Vec<LostSpan>,
    /// Every window, listed or not.
    pub windows_total: u64,
    /// Summed length of every window (ns; windows of different CPUs may overlap in time).
    pub span_ns: u64,
}

impl NotComparable {
    pub fn is_empty(&self) -> bool {
        self.windows_total == 0
    }

    /// Whether the absolute time range `[from_ns, to_ns]` overlaps a listed window, or any
    /// window when some were not listed (it cannot be ruled out then).
    pub fn overlaps(&self, from_ns: u64, to_ns: u64) -> bool {
        self.windows_total > self.windows.len() as u64
            || self.windows.iter().any(|w| w.overlaps(from_ns, to_ns))
    }

    /// The text line (ends with a newline), empty when nothing was lost.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.is_empty() {
            return s;
        }
        let listed: Vec<String> = self
            .windows
            .iter()
            .take(4)
            .map(|w| {
                format!(
                    "cpu{} {:.6}-{:.6} s ({} lost)",
                    w.cpu,
                    w.from_ns as f64 / 1e9,
                    w.to_ns as f64 / 1e9,
                    w.events
                        .map_or_else(|| "? events".to_string(), |n| format!("{n} events"))
                )
            })
            .collect();
        let more = self.windows_total.saturating_sub(listed.len() as u64);
        let _ = writeln!(
            s,
            "  not comparable for fidelity: {} windows, {:.6} s in all: {}{}",
            self.windows_total,
            self.span_ns as f64 / 1e9,
            listed.join(", "),
            if more > 0 {
                format!(", {more} more")
            } else {
                String::new()
            }
        );
        s
    }
}

/// `fidelity`'s first divergence (`window_ms` relative to the capture's first record at
/// `base_ns`): gains `"lost_events_in_window": true` when its window overlaps a lost window.
pub fn mark_divergence(d: &mut serde_json::Value, base_ns: u64, nc: &NotComparable) {
    let ms = |i: usize| d["window_ms"][i].as_f64().map(|m| (m * 1e6) as u64);
    let (Some(from), Some(to)) = (ms(0), ms(1)) else {
        return;
    };
    if nc.overlaps(base_ns.saturating_add(from), base_ns.saturating_add(to)) {
        if let Some(m) = d.as_object_mut() {
            m.insert(
                "lost_events_in_window".into(),
                serde_json::Value::Bool(true),
            );
        }
    }
}

/// Per CPU: the last record's time and the window left open by a marker.
#[derive(Clone, Copy, Debug, Default)]
struct CpuTrack {
    last_ns: Option<u64>,
    /// A marker was seen; the window closes at the CPU's next record.
    open: Option<LostSpan>,
}

/// Builds [`NotComparable`] from a run's record stream.
#[derive(Debug, Default)]
pub struct LostWindows {
    cpus: Vec<CpuTrack>,
    /// Open windows of CPUs past [`MAX_CPUS`], closed at the end.
    far: Vec<LostSpan>,
    first_ns: Option<u64>,
    last_ns: u64,
    out: NotComparable,
    /// Per CPU, the last closed window (to merge a window that starts where it ended).
    last_closed: Vec<Option<usize>>,
}

impl LostWindows {
    /// A record that is not a lost-events marker.
    #[inline]
    pub fn record(&mut self, cpu: u32, ts_ns: u64) {
        self.first_ns.get_or_insert(ts_ns);
        self.last_ns = self.last_ns.max(ts_ns);
        let ci = cpu as usize;
        if ci >= MAX_CPUS {
            return;
        }
        if self.cpus.len() <= ci {
            self.cpus.resize(ci + 1, CpuTrack::default());
        }
        let Some(c) = self.cpus.get_mut(ci) else {
            return;
        };
        c.last_ns = Some(ts_ns);
        if let Some(mut w) = c.open.take() {
            // The marker time when this record is older (text markers carry the newest time
            // of any CPU).
            w.to_ns = ts_ns.max(w.to_ns).max(w.from_ns);
            self.close(w);
        }
    }

    /// A lost-events marker on `cpu` at `ts_ns`, saying `count` events (or not).
    #[cold]
    pub fn marker(&mut self, cpu: u32, ts_ns: u64, count: Option<u64>) {
        let first = *self.first_ns.get_or_insert(ts_ns);
        self.last_ns = self.last_ns.max(ts_ns);
        let add = |w: &mut LostSpan| {
            w.events = match (w.events, count) {
                (Some(a), Some(b)) => Some(a.saturating_add(b)),
                _ => None,
            };
        };
        if cpu as usize >= MAX_CPUS {
            let n = self.far.len();
            match self.far.iter_mut().find(|w| w.cpu == cpu) {
                Some(w) => add(w),
                None if n < MAX_LISTED => self.far.push(LostSpan {
                    cpu,
                    from_ns: first,
                    to_ns: first,
                    events: count,
                }),
                None => {}
            }
            return;
        }
        if self.cpus.len() <= cpu as usize {
            self.cpus.resize(cpu as usize + 1, CpuTrack::default());
        }
        let Some(c) = self.cpus.get_mut(cpu as usize) else {
            return;
        };
        match &mut c.open {
            // A second marker before the CPU logged anything again: the same window.
            Some(w) => add(w),
            None => {
                c.open = Some(LostSpan {
                    cpu,
                    from_ns: c.last_ns.unwrap_or(first),
                    to_ns: ts_ns,
                    events: count,
                })
            }
        }
    }

    fn close(&mut self, w: LostSpan) {
        let ci = w.cpu as usize;
        if self.last_closed.len() <= ci && ci < MAX_CPUS {
            self.last_closed.resize(ci + 1, None);
        }
        // Merge with the CPU's previous window when it ends where this one starts.
        if let Some(Some(i)) = self.last_closed.get(ci).copied() {
            if let Some(prev) = self.out.windows.get_mut(i) {
                if prev.to_ns >= w.from_ns {
                    self.out.span_ns = self
                        .out
                        .span_ns
                        .saturating_add(w.to_ns.saturating_sub(prev.to_ns));
                    prev.to_ns = prev.to_ns.max(w.to_ns);
                    prev.events = match (prev.events, w.events) {
                        (Some(a), Some(b)) => Some(a.saturating_add(b)),
                        _ => None,
                    };
                    return;
                }
            }
        }
        self.out.windows_total += 1;
        self.out.span_ns = self
            .out
            .span_ns
            .saturating_add(w.to_ns.saturating_sub(w.from_ns));
        if self.out.windows.len() < MAX_LISTED {
            self.out.windows.push(w);
            if let Some(slot) = self.last_closed.get_mut(ci) {
                *slot = Some(self.out.windows.len() - 1);
            }
        } else if let Some(slot) = self.last_closed.get_mut(ci) {
            *slot = None;
        }
    }

    /// Closes the windows still open at the capture's last record.
    pub fn finish(mut self) -> NotComparable {
        let end = self.last_ns;
        let open: Vec<LostSpan> = self
            .cpus
            .iter_mut()
            .filter_map(|c| c.open.take())
            .chain(std::mem::take(&mut self.far))
            .collect();
        for mut w in open {
            w.to_ns = end.max(w.from_ns);
            self.close(w);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_runs_from_the_cpus_previous_record_to_its_next() {
        let mut t = LostWindows::default();
        t.record(0, 100);
        t.record(1, 150);
        t.record(0, 200);
        // Text markers carry the newest time seen on any CPU, not the CPU's own.
        t.marker(0, 250, Some(7));
        t.record(1, 300);
        t.record(0, 400);
        t.record(0, 500);
        let nc = t.finish();
        assert_eq!(
            nc.windows,
            vec![LostSpan {
                cpu: 0,
                from_ns: 200,
                to_ns: 400,
                events: Some(7)
            }]
        );
        assert_eq!((nc.windows_total, nc.span_ns), (1, 200));
        assert!(nc.overlaps(390, 450) && nc.overlaps(0, 200) && !nc.overlaps(401, 600));
        // Another CPU's records neither open nor close it.
        assert!(!nc.overlaps(150, 199));
    }

    #[test]
    fn open_at_the_end_closes_at_the_last_record_and_first_marker_starts_at_the_first() {
        let mut t = LostWindows::default();
        t.record(1, 1_000);
        t.marker(0, 2_000, None);
        t.marker(0, 2_500, Some(3));
        t.record(1, 9_000);
        let nc = t.finish();
        assert_eq!(
            nc.windows,
            vec![LostSpan {
                cpu: 0,
                from_ns: 1_000,
                to_ns: 9_000,
                events: None
            }]
        );
        assert!(nc
            .text()
            .contains("cpu0 0.000001-0.000009 s (? events lost)"));
    }

    #[test]
    fn touching_windows_merge_and_the_list_is_bounded() {
        let mut t = LostWindows::default();
        t.record(0, 0);
        t.marker(0, 10, Some(1));
        t.marker(0, 10, Some(1));
        t.record(0, 20);
        // Lost again before anything else on cpu0: starts at 20, where the first ended.
        t.marker(0, 20, Some(2));
        t.record(0, 30);
        let mut ts = 100;
        for _ in 0..(MAX_LISTED + 5) {
            t.record(2, ts);
            t.marker(2, ts + 1, Some(1));
            t.record(2, ts + 10);
            ts += 100;
        }
        let nc = t.finish();
        assert_eq!(nc.windows[0].to_ns, 30);
        assert_eq!(nc.windows[0].events, Some(4));
        assert_eq!(nc.windows.len(), MAX_LISTED);
        assert_eq!(nc.windows_total, 1 + MAX_LISTED as u64 + 5);
        assert_eq!(nc.span_ns, 30 + 10 * (MAX_LISTED as u64 + 5));
        // Past the list, any range may hold a window.
        assert!(nc.overlaps(1 << 40, 1 << 41));
        assert!(nc
            .text()
            .contains(&format!("{} more", nc.windows_total - 4)));
    }

    #[test]
    fn a_divergence_in_a_lost_window_is_marked() {
        let mut t = LostWindows::default();
        t.record(0, 1_000_000_000);
        t.record(0, 1_004_000_000);
        t.marker(0, 1_005_000_000, Some(9));
        t.record(0, 1_006_000_000);
        let nc = t.finish();
        let mut d = serde_json::json!({ "window_ms": [0.0, 3.0] });
        mark_divergence(&mut d, 1_000_000_000, &nc);
        assert!(d.get("lost_events_in_window").is_none());
        let mut d = serde_json::json!({ "window_ms": [5.0, 10.0] });
        mark_divergence(&mut d, 1_000_000_000, &nc);
        assert_eq!(d["lost_events_in_window"], true);
    }

    #[test]
    fn nothing_lost_is_empty_and_prints_nothing() {
        let mut t = LostWindows::default();
        t.record(0, 5);
        t.record(1, 7);
        let nc = t.finish();
        assert!(nc.is_empty() && nc.text().is_empty() && !nc.overlaps(0, u64::MAX));
    }

    #[test]
    fn hostile_cpu_numbers_stay_bounded() {
        let mut t = LostWindows::default();
        t.record(0, 1);
        for cpu in (u32::MAX - 100)..u32::MAX {
            t.marker(cpu, 5, Some(1));
            t.record(cpu, 6);
        }
        let nc = t.finish();
        assert_eq!(nc.windows_total, MAX_LISTED as u64);
        let mut t = LostWindows::default();
        t.record(u32::MAX, 1);
        t.marker(u32::MAX - 1, 2, None);
        assert!(t.cpus.is_empty());
    }
}
