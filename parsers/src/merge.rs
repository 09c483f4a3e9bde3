//! Time ordering: merges per-CPU streams (interleaved in one text file or coming from several
//! readers) into one time-ordered stream with a bounded reorder window.
//!
//! Records are held in a sorted buffer of at most `window` records (or spanning at most
//! `window` ns). A record older than one already released cannot be placed any more: it is
//! released immediately, counted in `out_of_order` with the worst lag, never silently moved.
//! Must never buffer without bound (memory is O(window)).

use crate::record::Record;
use std::collections::VecDeque;

/// How far back the merger can reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Hold at most this many records.
    Count(usize),
    /// Hold records until the newest is more than this many ns ahead of them.
    TimeNs(u64),
}

impl Default for Window {
    fn default() -> Self {
        Window::Count(4096)
    }
}

/// The bounded reorder buffer.
#[derive(Debug, Default)]
pub struct Reorder {
    window: Window,
    buf: VecDeque<Record>,
    /// Records that are ready to be taken, in release order.
    ready: VecDeque<Record>,
    last_out: Option<u64>,
    /// Records that arrived later than the window allows.
    pub out_of_order: u64,
    /// The largest such lag (ns) behind the last released timestamp.
    pub max_lag_ns: u64,
}

impl Reorder {
    pub fn new(window: Window) -> Self {
        Reorder {
            window,
            ..Default::default()
        }
    }

    /// Adds a record. Take released records with [`Reorder::pop`].
    #[inline]
    pub fn push(&mut self, r: Record) {
        // A release [`Reorder::pop`] has not taken yet (see `Window::Count` below) happens
        // now, before anything else, as it did when it was due.
        if let Window::Count(n) = self.window {
            while self.buf.len() > n.max(1) {
                self.release_front();
            }
        }
        if let Some(last) = self.last_out {
            if r.ts_ns < last {
                self.out_of_order += 1;
                self.max_lag_ns = self.max_lag_ns.max(last - r.ts_ns);
                self.ready.push_back(r);
                return;
            }
        }
        let ts = r.ts_ns;
        match self.buf.back() {
            Some(b) if b.ts_ns > ts => {
                // Stable: after every record with the same timestamp.
                let at = self.buf.partition_point(|x| x.ts_ns <= ts);
                self.buf.insert(at, r);
            }
            _ => self.buf.push_back(r),
        }
        match self.window {
            // The (at most one) record this push makes due stays at the front of `buf` until
            // `pop` or the next `push` releases it: `pop` hands it out without a move through
            // `ready` (records are about 100 bytes and pass here once each).
            Window::Count(_) => {}
            Window::TimeNs(w) => {
                let newest = self.buf.back().map_or(0, |b| b.ts_ns);
                while self
                    .buf
                    .front()
                    .is_some_and(|f| newest.saturating_sub(f.ts_ns) > w)
                {
                    self.release_front();
                }
            }
        }
    }

    #[inline]
    fn release_front(&mut self) {
        if let Some(f) = self.buf.pop_front() {
            self.last_out = Some(self.last_out.map_or(f.ts_ns, |l| l.max(f.ts_ns)));
            self.ready.push_back(f);
        }
    }

    /// Next released record, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<Record> {
        if let Some(r) = self.ready.pop_front() {
            return Some(r);
        }
        // The release `push` left due (records in `ready` were released before it).
        match self.window {
            Window::Count(n) if self.buf.len() > n.max(1) => {
                let f = self.buf.pop_front()?;
                self.last_out = Some(self.last_out.map_or(f.ts_ns, |l| l.max(f.ts_ns)));
                Some(f)
            }
            _ => None,
        }
    }

    /// End of input: releases everything still held.
    pub fn finish(&mut self) {
        while !self.buf.is_empty() {
            self.release_front();
        }
    }

    /// Timestamp of the newest record seen (used to stamp lost-event markers).
    pub fn newest_ts(&self) -> Option<u64> {
        self.buf.back().map(|b| b.ts_ns).or(self.last_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Comm, Event};

    fn rec(ts: u64, cpu: u32) -> Record {
        Record {
            ts_ns: ts,
            cpu,
            pid: 1,
            tgid: None,
            comm: Comm::new(b"x"),
            event: Event::ExitMmap,
        }
    }

    fn drain(r: &mut Reorder) -> Vec<(u64, u32)> {
        let mut v = vec![];
        while let Some(x) = r.pop() {
            v.push((x.ts_ns, x.cpu));
        }
        v
    }

    #[test]
    fn reorders_inside_window_stably() {
        let mut r = Reorder::new(Window::Count(3));
        for (ts, cpu) in [(10, 0), (30, 0), (20, 1), (20, 2), (40, 0), (50, 1)] {
            r.push(rec(ts, cpu));
        }
        r.finish();
        assert_eq!(
            drain(&mut r),
            vec![(10, 0), (20, 1), (20, 2), (30, 0), (40, 0), (50, 1)]
        );
        assert_eq!(r.out_of_order, 0);
    }

    #[test]
    fn late_records_are_counted_not_hidden() {
        let mut r = Reorder::new(Window::Count(2));
        for ts in [100, 200, 300, 400, 150, 500] {
            r.push(rec(ts, 0));
        }
        r.finish();
        let out: Vec<u64> = drain(&mut r).into_iter().map(|x| x.0).collect();
        assert_eq!(out.len(), 6, "nothing dropped");
        assert_eq!(r.out_of_order, 1);
        assert_eq!(r.max_lag_ns, 50);
        assert!(out.contains(&150));
    }

    /// The eager release rule `Reorder` implemented before releases were deferred to `pop`:
    /// the reference the deferred one must match record for record.
    fn eager(window: usize, input: &[(u64, u32)]) -> (Vec<(u64, u32)>, u64, u64) {
        let mut buf: Vec<(u64, u32)> = vec![];
        let mut out: Vec<(u64, u32)> = vec![];
        let (mut last, mut ooo, mut lag) = (None::<u64>, 0u64, 0u64);
        for &(ts, cpu) in input {
            if let Some(l) = last.filter(|&l| ts < l) {
                ooo += 1;
                lag = lag.max(l - ts);
                out.push((ts, cpu));
                continue;
            }
            let at = buf.partition_point(|x| x.0 <= ts);
            buf.insert(at, (ts, cpu));
            while buf.len() > window {
                let f = buf.remove(0);
                last = Some(last.map_or(f.0, |l: u64| l.max(f.0)));
                out.push(f);
            }
        }
        out.extend(buf);
        (out, ooo, lag)
    }

    #[test]
    fn deferred_release_matches_the_eager_rule() {
        // A small LCG: timestamps mostly rising with jitter, some far back (late records).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        for window in [1usize, 2, 3, 8] {
            for pop_every in [1usize, 2, 5, 1000] {
                let input: Vec<(u64, u32)> = (0..500u64)
                    .map(|i| {
                        let j = next() % 40;
                        let ts = if j == 0 { i * 10 / 2 } else { i * 10 + j };
                        (ts, (next() % 4) as u32)
                    })
                    .collect();
                let mut r = Reorder::new(Window::Count(window));
                let mut got = vec![];
                for (i, &(ts, cpu)) in input.iter().enumerate() {
                    r.push(rec(ts, cpu));
                    if i % pop_every == 0 {
                        got.extend(drain(&mut r));
                    }
                }
                r.finish();
                got.extend(drain(&mut r));
                let (want, ooo, lag) = eager(window, &input);
                assert_eq!(got, want, "window {window}, pop every {pop_every}");
                assert_eq!((r.out_of_order, r.max_lag_ns), (ooo, lag));
                assert!(ooo > 0, "the input has late records");
            }
        }
    }

    #[test]
    fn time_window() {
        let mut r = Reorder::new(Window::TimeNs(100));
        r.push(rec(1000, 0));
        r.push(rec(1050, 0));
        assert!(r.pop().is_none(), "still inside the window");
        r.push(rec(1020, 1));
        r.push(rec(1200, 0));
        let got = drain(&mut r);
        assert_eq!(got, vec![(1000, 0), (1020, 1), (1050, 0)]);
        r.push(rec(900, 1));
        assert_eq!(r.out_of_order, 1);
        assert_eq!(r.max_lag_ns, 150);
    }
}
