//! K-way merge of per-CPU (per-buffer) record streams, each already in time order, into one
//! stream ordered by timestamp. Ties go to the earlier stream (lower CPU), as trace-cmd does.
//! It must never reorder records within a stream.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::record::Record;

/// Merges streams of any item type by `ts`, handing each item to `sink` in order.
pub fn merge_by<T>(mut streams: Vec<Vec<T>>, ts: impl Fn(&T) -> u64, mut sink: impl FnMut(T)) {
    streams.retain(|s| !s.is_empty());
    if streams.len() == 1 {
        streams.into_iter().flatten().for_each(sink);
        return;
    }
    let mut iters: Vec<std::vec::IntoIter<T>> = streams.into_iter().map(Vec::into_iter).collect();
    let mut heads: Vec<Option<T>> = iters.iter_mut().map(Iterator::next).collect();
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|r| Reverse((ts(r), i))))
        .collect();
    while let Some(Reverse((_, i))) = heap.pop() {
        let (Some(slot), Some(it)) = (heads.get_mut(i), iters.get_mut(i)) else {
            continue;
        };
        if let Some(r) = slot.take() {
            sink(r);
        }
        *slot = it.next();
        if let Some(r) = slot.as_ref() {
            heap.push(Reverse((ts(r), i)));
        }
    }
}

/// Merges record streams into one time-ordered vector.
pub fn merge_streams(streams: Vec<Vec<Record>>) -> Vec<Record> {
    let mut out = Vec::with_capacity(streams.iter().map(Vec::len).sum());
    merge_by(streams, |r| r.ts_ns, |r| out.push(r));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Comm, Event};

    fn r(ts: u64, cpu: u32) -> Record {
        Record {
            ts_ns: ts,
            cpu,
            pid: 0,
            tgid: None,
            comm: Comm::default(),
            event: Event::ExitMmap,
        }
    }

    #[test]
    fn merges_by_time_ties_to_lower_stream() {
        let m = merge_streams(vec![
            vec![r(1, 0), r(5, 0)],
            vec![r(1, 1), r(2, 1), r(9, 1)],
            vec![],
        ]);
        let got: Vec<(u64, u32)> = m.iter().map(|r| (r.ts_ns, r.cpu)).collect();
        assert_eq!(got, vec![(1, 0), (1, 1), (2, 1), (5, 0), (9, 1)]);
    }
}
