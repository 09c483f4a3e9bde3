//! Micro-benchmark: model ops/s on a random op mix (one core), beside baselines measured in the
//! same run: (a) iterating over the ops doing only a trivial match (the cost of feeding ops),
//! (b) generating the ops; and the engine loop with checkpoint hashes, incremental vs full walk.
//! Run: `cargo bench -p mmreplay-reference --features testing`.

use std::hint::black_box;
use std::time::Instant;

use mmreplay_reference::testing::{random_ops, random_ops_local, GenConfig};
use mmreplay_reference::{KernelProfile, Model, Op, Reference};

fn main() {
    let n: usize = std::env::var("OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let cfg = GenConfig {
        nr_cpus: 4,
        max_mms: 4,
    };
    let only = std::env::var("MIX").ok();
    for mix in ["local", "harsh"] {
        if only.as_deref().is_some_and(|o| o != mix) {
            continue;
        }
        println!("== mix: {mix} ==");
        run(mix, cfg, n);
    }
}

fn run(mix: &str, cfg: GenConfig, n: usize) {
    let t0 = Instant::now();
    let ops = if mix == "local" {
        random_ops_local(cfg, n, 0x1234_5678)
    } else {
        random_ops(cfg, n, 0x1234_5678)
    };
    let gen_s = t0.elapsed().as_secs_f64();

    // Baseline: walk the ops with a trivial per-op match.
    let t1 = Instant::now();
    let mut acc = 0u64;
    for op in &ops {
        acc = acc.wrapping_add(match op {
            Op::Access { va, .. } | Op::Fault { va, .. } => *va,
            _ => 1,
        });
    }
    black_box(acc);
    let base_s = t1.elapsed().as_secs_f64();

    let mut best = f64::MAX;
    let mut errors = 0u64;
    let mut model = None;
    for _ in 0..3 {
        let mut m = Model::new(KernelProfile::default(), Reference);
        errors = 0;
        let t = Instant::now();
        for op in &ops {
            if m.apply(op).is_err() {
                errors += 1;
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
        model = Some(m);
    }
    // The replay engine's loop: apply, and a checkpoint hash every 1024 ops, incremental
    // (`checkpoint_hash`, what the engine uses) vs the full walk (`progress_hash`), same run.
    let mut with_ckpt = [f64::MAX; 2];
    for _ in 0..3 {
        for (k, incremental) in [(0usize, true), (1, false)] {
            let mut m = Model::new(KernelProfile::default(), Reference);
            let mut h = 0u64;
            let t = Instant::now();
            for (i, op) in ops.iter().enumerate() {
                let _ = m.apply(op);
                if (i + 1) % 1024 == 0 {
                    h ^= if incremental {
                        m.checkpoint_hash()
                    } else {
                        m.progress_hash()
                    };
                }
            }
            black_box(h);
            with_ckpt[k] = with_ckpt[k].min(t.elapsed().as_secs_f64());
        }
    }
    let len = ops.len() as f64;
    println!("ops in mix:               {}", ops.len());
    println!(
        "apply + checkpoint/1024:  {:>8.1} M ops/s incremental, {:>8.1} M ops/s full walk (best of 3)",
        len / with_ckpt[0] / 1e6,
        len / with_ckpt[1] / 1e6
    );
    println!(
        "generate ops:             {:>8.1} M ops/s",
        len / gen_s / 1e6
    );
    println!(
        "baseline (iterate+match): {:>8.1} M ops/s",
        len / base_s / 1e6
    );
    println!(
        "reference model apply:    {:>8.1} M ops/s (best of 3)",
        len / best / 1e6
    );
    println!("op errors (counted):      {errors}");
    // Per-op-kind cost breakdown (timer overhead included; indicative only).
    let mut m = Model::new(KernelProfile::default(), Reference);
    let mut per: std::collections::BTreeMap<&'static str, (u64, f64)> = Default::default();
    for op in &ops {
        let t = Instant::now();
        let _ = m.apply(op);
        let e = per.entry(op.name()).or_default();
        e.0 += 1;
        e.1 += t.elapsed().as_secs_f64();
    }
    for (k, (n, s)) in &per {
        println!(
            "  {k:<10} n={n:<9} mean={:>8.0} ns  share={:>5.1}%",
            s / *n as f64 * 1e9,
            s / best * 100.0
        );
    }
    if let Some(mut m) = model {
        // Cost of the replay engine's periodic checkpoint hash on the final state.
        let t = Instant::now();
        let reps = 20;
        let mut h = 0u64;
        for _ in 0..reps {
            h ^= black_box(&m).state_hash();
        }
        black_box(h);
        println!(
            "state_hash (final state):  {:>8.1} us/call",
            t.elapsed().as_secs_f64() / f64::from(reps) * 1e6
        );
        let t = Instant::now();
        let mut h = 0u64;
        for _ in 0..reps {
            h ^= black_box(&m).progress_hash();
        }
        black_box(h);
        println!(
            "progress_hash full walk:   {:>8.1} us/call",
            t.elapsed().as_secs_f64() / f64::from(reps) * 1e6
        );
        let t = Instant::now();
        for _ in 0..reps {
            h ^= black_box(&mut m).checkpoint_hash();
        }
        black_box(h);
        println!(
            "checkpoint_hash, nothing changed: {:>8.1} us/call",
            t.elapsed().as_secs_f64() / f64::from(reps) * 1e6
        );
        m.finish();
        println!("violations:               {}", m.violation_count());
        for (k, v) in m.counters().pairs() {
            if v != 0 {
                println!("  {k:<28} {v}");
            }
        }
    }
}
