//! One round of the side-by-side engine on the current rayon pool's threads, time-sliced: each
//! model's share of the round (its ops of the chunk) is cut into slices of consecutive ops, and
//! the threads take the next piece of work from one queue: the lowering of the next chunk (one
//! piece, queued first) and the models' slices, round robin.
//!
//! Why: with "one task per model", 5 equal models on 2 threads finish a chunk after 3
//! model-lengths (a speedup of at most 5/3 = 1.67), and the lowering takes a thread of its
//! own meanwhile. A model's ops must run in order, but nothing ties a model to a thread: with
//! slices both threads stay busy until the last slice of the round, so a round takes about
//! (lowering + all the models' work) / threads plus one slice.
//!
//! What it must never do: apply a model's ops out of order, apply an op twice, or let two
//! threads touch one model at once (a job is owned by whichever thread popped it from the
//! queue and pushed back only after its slice). A model therefore sees exactly its ops in
//! order, with the same reclaim scripts, as in a sequential loop: results, checkpoints and
//! samples do not depend on the schedule or the number of threads.

use std::collections::VecDeque;
use std::sync::Mutex;

use mmreplay_reference::op::Op;

use crate::engine::{Role, Slot};

/// Ops per slice: small enough that the round's tail (one slice on one thread) is a few
/// percent of a 32k-op chunk, large enough that a model moves between cores rarely.
pub const SLICE_OPS: usize = 2048;

/// One model's work in a round.
pub(crate) struct Job<'a> {
    pub slot: &'a mut Slot,
    pub ops: &'a [Op],
    pub role: Role<'a>,
    /// Ops of `ops` applied so far.
    pub pos: usize,
    /// `Role::Follow`: scripts consumed so far.
    pub next_script: usize,
}

impl<'a> Job<'a> {
    pub fn new(slot: &'a mut Slot, ops: &'a [Op], role: Role<'a>) -> Self {
        Job {
            slot,
            ops,
            role,
            pos: 0,
            next_script: 0,
        }
    }
}

enum Piece<'a, 'f> {
    /// The lowering of the next chunk.
    Fill(Box<dyn FnOnce() + Send + 'f>),
    Slice(Job<'a>),
}

/// Run `fill` (if any) and every job to its end on the current rayon pool's threads, `hash_every`
/// as in `Slot::apply_chunk_as`. On one thread each job runs whole, in order (no switching).
pub(crate) fn run_round<'a, 'f>(
    jobs: Vec<Job<'a>>,
    fill: Option<Box<dyn FnOnce() + Send + 'f>>,
    hash_every: u64,
) {
    let threads = rayon::current_num_threads().max(1);
    let slice = if threads == 1 { usize::MAX } else { SLICE_OPS };
    let queue: Mutex<VecDeque<Piece<'a, 'f>>> = Mutex::new(
        fill.map(Piece::Fill)
            .into_iter()
            .chain(jobs.into_iter().map(Piece::Slice))
            .collect(),
    );
    let worker = || loop {
        // A poisoned lock means another worker panicked: stop taking work (rayon re-raises).
        let next = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => None,
        };
        match next {
            None => break,
            Some(Piece::Fill(f)) => f(),
            Some(Piece::Slice(mut job)) => {
                let end = job.pos.saturating_add(slice).min(job.ops.len());
                let ops = job.ops.get(job.pos..end).unwrap_or(&[]);
                job.slot
                    .apply_chunk_as(ops, hash_every, &mut job.role, &mut job.next_script);
                job.pos = end;
                if end < job.ops.len() {
                    match queue.lock() {
                        Ok(mut q) => q.push_back(Piece::Slice(job)),
                        Err(_) => break,
                    }
                }
            }
        }
    };
    if threads == 1 {
        worker();
        return;
    }
    rayon::scope(|s| {
        for _ in 1..threads {
            s.spawn(|_| worker());
        }
        worker();
    });
}

#[cfg(test)]
mod tests {
    use crate::engine::{self, EngineConfig, TraceRun};
    use crate::lower::LowerOptions;
    use crate::session::{self, DEFAULT_CPUS};
    use crate::source::Source;
    use mmreplay_reference::profile::LruKind;

    fn replay(threads: usize, parallel: bool, lockstep: bool) -> TraceRun {
        let names: Vec<String> = mmreplay_candidates::registry::default_list()
            .split(',')
            .map(String::from)
            .collect();
        let specs = session::specs(&names).unwrap();
        let engines = session::build_lru(&specs, DEFAULT_CPUS, LruKind::Mglru { min_ttl_ms: 0 });
        // Chunks that are not a multiple of the slice, so slices end mid-chunk.
        let cfg = EngineConfig {
            chunk_ops: 5000,
            hash_every: 512,
            parallel,
            lockstep,
        };
        let lower = LowerOptions {
            nr_cpus: DEFAULT_CPUS,
            ..LowerOptions::default()
        };
        let src = Source::bundled(false).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| engine::run(src, lower, engines, &cfg, |_| {}).unwrap())
    }

    fn facts(r: &TraceRun) -> Vec<String> {
        r.policies
            .iter()
            .map(|p| {
                format!(
                    "{} {} {:?} {:?} {:?} {:?} {} {:?}",
                    p.name,
                    p.snapshot_hash,
                    p.checkpoints,
                    p.counters,
                    p.model_errors,
                    p.outcomes,
                    p.violation_count,
                    p.lockstep
                )
            })
            .collect()
    }

    /// Time-sliced rounds on 1 and 2 threads give every model (all five policies, free and
    /// lockstep) exactly the sequential loop's results: checkpoints, counters, final state and
    /// the imposed reclaim (fails if a slice were skipped, repeated or reordered, a model shared
    /// between threads, or a Follow slice restarted its scripts).
    #[test]
    fn sliced_rounds_equal_the_sequential_loop() {
        for lockstep in [false, true] {
            let want = facts(&replay(1, false, lockstep));
            assert!(want.len() > 1);
            for threads in [1, 2] {
                let got = facts(&replay(threads, true, lockstep));
                assert_eq!(got, want, "{threads} threads, lockstep {lockstep}");
            }
        }
    }
}
