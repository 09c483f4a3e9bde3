//! Time-sliced replay of several models over one in-memory op stream on a fixed number of
//! threads: each model's replay is cut into slices of consecutive ops, and the threads take
//! the next slice of whichever model is waiting longest (round robin through one queue).
//!
//! Why: with "one task per policy", 5 equal models on 2 threads finish after 3 model-lengths
//! (a speedup of at most 5/3 = 1.67). A model's ops must run in order, but nothing ties a
//! model to a thread: with slices, both threads stay busy until the last slice of the last
//! model, so the makespan is about 5/2 model-lengths plus one slice (McNaughton's bound for
//! preemptive scheduling, max(longest model, total / threads)).
//!
//! What it must never do: apply a model's ops out of order, apply one op twice, or let two
//! threads touch one model at once (a model is owned by whichever thread popped it from the
//! queue; it is pushed back only after its slice). Results therefore do not depend on the
//! schedule: each model sees exactly `ops` in order, as in a sequential loop.

use std::collections::VecDeque;
use std::sync::Mutex;

use mmreplay_reference::op::Op;
use mmreplay_reference::Engine;

/// Apply `ops` in order to every engine, `threads` threads taking slices of `slice` ops.
/// Ops the model rejects are ignored, as in the bench's sequential loop.
pub fn apply_sliced<E>(engines: &mut [E], ops: &[Op], slice: usize, threads: usize)
where
    E: std::ops::DerefMut + Send,
    E::Target: Engine,
{
    let slice = slice.max(1);
    let queue: Mutex<VecDeque<(&mut E, usize)>> =
        Mutex::new(engines.iter_mut().map(|e| (e, 0usize)).collect());
    let worker = || loop {
        // A poisoned lock means another worker panicked: stop taking work (scope re-raises).
        let next = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => None,
        };
        let Some((e, pos)) = next else { break };
        let end = (pos + slice).min(ops.len());
        for op in ops.get(pos..end).unwrap_or(&[]) {
            let _ = e.apply(op);
        }
        if end < ops.len() {
            match queue.lock() {
                Ok(mut q) => q.push_back((e, end)),
                Err(_) => break,
            }
        }
    };
    let threads = threads.max(1);
    if threads == 1 {
        worker();
        return;
    }
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
}

/// The slice length [`apply_sliced`] uses for `n` ops: about 64 slices per model (so the tail,
/// one slice on one thread, is under 2% of a model), at least 4096 ops (so a model's working
/// set moves between cores rarely).
pub fn default_slice(n: usize) -> usize {
    (n / 64).max(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::LowerOptions;
    use crate::session::{self, DEFAULT_CPUS};
    use crate::source::Source;
    use mmreplay_reference::profile::LruKind;

    /// Sliced on 1 and 2 threads with small, uneven slices gives every model (all five
    /// policies) the state of a plain sequential loop over the bundled capture (fails if a
    /// slice were skipped, repeated or reordered, or a model shared between threads).
    #[test]
    fn sliced_equals_sequential() {
        let src = Source::bundled(false).unwrap();
        let lower = LowerOptions {
            nr_cpus: DEFAULT_CPUS,
            ..LowerOptions::default()
        };
        let (ops, _) = crate::engine::lower_all(src, lower).unwrap();
        let ops = &ops[..ops.len().min(20_000)];
        let names: Vec<String> = mmreplay_candidates::registry::default_list()
            .split(',')
            .map(String::from)
            .collect();
        let specs = session::specs(&names).unwrap();
        let build = || session::build_lru(&specs, DEFAULT_CPUS, LruKind::Mglru { min_ttl_ms: 0 });
        let mut seq = build();
        for e in seq.iter_mut() {
            for op in ops {
                let _ = e.apply(op);
            }
        }
        let want: Vec<u64> = seq.iter().map(|e| e.snapshot().state_hash()).collect();
        for threads in [1, 2] {
            let mut par = build();
            apply_sliced(&mut par, ops, 997, threads);
            let got: Vec<u64> = par.iter().map(|e| e.snapshot().state_hash()).collect();
            assert_eq!(got, want, "{threads} threads");
            assert!(par.iter().all(|e| e.steps() == ops.len() as u64));
        }
    }
}
