//! Lockstep reclaim (mm-semantics C.0): the reference records each `Reclaim` op's rounds
//! (`Engine::apply_recording`) and a candidate follows them (`Engine::apply_imposed`).
//!
//! Checks: on op sequences where look-around free-running evicts different folios from the
//! reference, lockstep evicts exactly the reference's folios after every `Reclaim` op while the
//! A-bit and walk counters still differ; a negative control whose bug sits on the eviction path
//! (lazyfree discard ignoring extra references) still trips its invariant in lockstep, and
//! look-around's promote-without-clear still breaches the lockstep contract.

use std::collections::BTreeSet;

use mmreplay_candidates::contract::{Mode, Observed, Subject};
use mmreplay_candidates::lookaround::{self, LookAround};
use mmreplay_candidates::negative::{LazyfreeIgnoreRefs, PromoteWithoutClear};
use mmreplay_candidates::registry;
use mmreplay_reference::engine::ReclaimScript;
use mmreplay_reference::profile::LruKind;
use mmreplay_reference::testing::{random_ops, random_ops_local, GenConfig};
use mmreplay_reference::{
    Base, Engine, FolioId, Invariant, KernelProfile, Model, Op, Policy, Reference,
};

mod common;

/// Live folio identities (evicted folios are absent).
fn resident(e: &dyn Engine) -> BTreeSet<FolioId> {
    e.snapshot().folios.iter().map(|f| f.id).collect()
}

/// Victims of every `Reclaim` op when each model chooses its own (free-running).
fn free_victims(e: &mut dyn Engine, ops: &[Op]) -> Vec<Vec<FolioId>> {
    ops.iter()
        .filter_map(|op| e.apply_recording(op).1)
        .map(|s| s.victims().collect())
        .collect()
}

struct Sweep {
    seeds: u64,
    free_differs: u64,
    reclaim_ops: u64,
    victims: u64,
    la_tc_in_lockstep: u64,
}

/// For each seed: free-running victims of reference and look-around, then a lockstep run in
/// which the residency must match the reference's after every `Reclaim` op.
fn sweep(profile: &KernelProfile, local: bool) -> Sweep {
    let mut out = Sweep {
        seeds: 0,
        free_differs: 0,
        reclaim_ops: 0,
        victims: 0,
        la_tc_in_lockstep: 0,
    };
    let build = |name: &str| match registry::parse(name) {
        Ok(s) => s.build(profile),
        Err(e) => panic!("{name}: {e}"),
    };
    let cfg = GenConfig {
        nr_cpus: 4,
        max_mms: 4,
    };
    for seed in 1..=40u64 {
        let ops = if local {
            random_ops_local(cfg, 600, seed)
        } else {
            random_ops(cfg, 400, seed)
        };
        out.seeds += 1;
        let (mut r, mut c) = (build("reference"), build("lookaround"));
        if free_victims(&mut *r, &ops) != free_victims(&mut *c, &ops) {
            out.free_differs += 1;
        }
        let (mut r, mut c) = (build("reference"), build("lookaround"));
        for (i, op) in ops.iter().enumerate() {
            let (a, script): (_, Option<ReclaimScript>) = r.apply_recording(op);
            let b = match &script {
                Some(s) => {
                    let (b, res) = c.apply_imposed(op, s);
                    assert_eq!(
                        (res.skipped, res.extra),
                        (0, 0),
                        "seed {seed} op {i}: {res:?}"
                    );
                    out.reclaim_ops += 1;
                    out.victims += res.imposed;
                    b
                }
                None => c.apply(op),
            };
            assert_eq!(a.is_ok(), b.is_ok(), "seed {seed} op {i} {op:?}");
            if script.is_some() {
                assert_eq!(
                    resident(&*r),
                    resident(&*c),
                    "seed {seed}: residency differs after reclaim op {i}"
                );
            }
        }
        assert_eq!(
            r.counters().evictions,
            c.counters().evictions,
            "seed {seed}"
        );
        out.la_tc_in_lockstep += c.counters().a_tc_lookaround;
        assert_eq!(r.counters().a_tc_lookaround, 0);
    }
    out
}

#[test]
fn lockstep_imposes_the_reference_victims_on_lookaround() {
    let mut differs = 0;
    for profile in [
        KernelProfile::default(),
        KernelProfile {
            base: Base::K61,
            ..KernelProfile::default()
        },
        classic(),
        KernelProfile {
            base: Base::K61,
            ..classic()
        },
    ] {
        for local in [false, true] {
            let s = sweep(&profile, local);
            println!(
                "{:?} {:?} local={local}: {} seeds, free-running victims differ on {}, lockstep: {} reclaim ops, {} victims imposed, {} look-around A tests",
                profile.base, profile.lru, s.seeds, s.free_differs, s.reclaim_ops, s.victims, s.la_tc_in_lockstep
            );
            assert!(
                s.victims > 0,
                "no victims: the sweep does not exercise reclaim"
            );
            // Look-around exists only in MGLRU (`lru_gen_look_around` runs under
            // `lru_gen_enabled()`): under the classic LRU it must never run.
            match profile.lru {
                LruKind::Classic => assert_eq!(
                    s.la_tc_in_lockstep, 0,
                    "look-around ran under the classic LRU"
                ),
                LruKind::Mglru { .. } => {
                    assert!(s.la_tc_in_lockstep > 0, "look-around never ran in lockstep")
                }
            }
            differs += s.free_differs;
        }
    }
    assert!(
        differs > 0,
        "no seed where free-running look-around evicts other folios: the test shows nothing"
    );
}

/// The default profile with the classic two-list LRU.
fn classic() -> KernelProfile {
    KernelProfile {
        lru: LruKind::Classic,
        ..KernelProfile::default()
    }
}

/// Run `ops` with the reference leading and a `P` model following its reclaim rounds.
fn lockstep<P: Policy>(
    profile: &KernelProfile,
    policy: P,
    ops: &[Op],
) -> (Model<Reference>, Model<P>, u64) {
    let mut r = Model::new(profile.clone(), Reference);
    let mut c = Model::new(profile.clone(), policy);
    let mut extra = 0;
    for (i, op) in ops.iter().enumerate() {
        let (a, script) = r.apply_recording(op);
        assert!(a.is_ok(), "op {i} {op:?}: {a:?}");
        let b = match &script {
            Some(s) => {
                let (b, res) = c.apply_imposed(op, s);
                extra += res.extra;
                b
            }
            None => c.apply(op),
        };
        assert!(b.is_ok(), "op {i} {op:?}: {b:?}");
    }
    r.finish();
    c.finish();
    (r, c, extra)
}

/// 6c8e2a256915 in lockstep: the reference tries to free the lazyfree folio and aborts (an
/// O_DIRECT reference is held); the follower, imposed the same attempt, discards it and trips
/// I5 at the reclaim step. Imposing the reference's *decision* (not its outcome: the
/// reference freed nothing) keeps the buggy path reachable.
#[test]
fn lazyfree_negative_control_still_trips_i5_in_lockstep() {
    let ops = common::lazyfree_with_extra_ref();
    for p in [KernelProfile::default(), classic()] {
        lazyfree_control_in(&p, &ops);
    }
}

fn lazyfree_control_in(p: &KernelProfile, ops: &[Op]) {
    let (r, c, extra) = lockstep(p, LazyfreeIgnoreRefs, ops);
    assert!(r.violations().is_empty(), "{:?}", r.violations());
    assert_eq!(r.counters().lazyfree_abort, 1);
    assert!(
        c.violations()
            .iter()
            .any(|v| v.invariant == Invariant::I5 && v.step == 5),
        "expected I5 at step 5, got {:?}",
        c.violations()
    );
    assert_eq!(
        (r.counters().lazyfree_discard, c.counters().lazyfree_discard),
        (0, 1)
    );
    // The folio stays allocated (the extra reference holds it), so nothing was freed that
    // the reference did not free.
    assert_eq!(extra, 0);
    // The real reference as follower: no violation, no discard.
    let (_, good, extra) = lockstep(p, Reference, ops);
    assert!(good.violations().is_empty());
    assert_eq!((good.counters().lazyfree_discard, extra), (0, 0));
}

/// Look-around's promote-without-clear negative control, in lockstep: the lockstep contract
/// relation `gen_promote_lookaround <= a_cleared_lookaround` breaks; the real look-around on
/// the same ops keeps the whole lockstep contract, with the same residency as the reference.
#[test]
fn promote_without_clear_breaches_the_lockstep_contract() {
    let (p, ops) = common::promote_control();
    let k = lookaround::contract(Mode::Lockstep, 64);
    let (r, good, _) = lockstep(&p, LookAround::new(Base::Knew), &ops);
    let (rs, gs) = (r.snapshot(), good.snapshot());
    assert!(r.counters().evictions > 0, "the scenario must evict");
    let reference = Observed {
        counters: r.counters(),
        snapshot: &rs,
    };
    let ok = k.check(
        reference,
        Observed {
            counters: good.counters(),
            snapshot: &gs,
        },
    );
    assert!(ok.is_empty(), "{ok:#?}");
    // Look-around ran (KNEW's first strike only sets PG_referenced, so no promotion yet);
    // the victims were the reference's.
    assert!(good.counters().a_cleared_lookaround > 0);
    assert_eq!(good.counters().evictions, r.counters().evictions);
    assert_eq!(
        gs.folios.iter().map(|f| f.id).collect::<Vec<_>>(),
        rs.folios.iter().map(|f| f.id).collect::<Vec<_>>()
    );
    let (_, bad, _) = lockstep(&p, PromoteWithoutClear(LookAround::new(Base::Knew)), &ops);
    let bs = bad.snapshot();
    let b = k.check(
        reference,
        Observed {
            counters: bad.counters(),
            snapshot: &bs,
        },
    );
    assert!(
        b.iter()
            .any(|x| x.subject == Subject::Relation
                && x.field.starts_with("gen_promote_lookaround <=")),
        "expected the promote/clear relation to break, got {b:#?}"
    );
}
