//! Property tests over random valid op sequences (feature `testing` generator): the reference
//! policy never trips an invariant, runs are deterministic, snapshots survive serde.

#![cfg(feature = "testing")]

use mmreplay_reference::testing::{arb_ops_with, GenConfig};
use mmreplay_reference::{KernelProfile, Model, Op, Reference, Snapshot};
use proptest::prelude::*;

fn run(ops: &[Op], profile: &KernelProfile) -> Model<Reference> {
    let mut m = Model::new(profile.clone(), Reference);
    for op in ops {
        let _ = m.apply(op);
    }
    m.finish();
    m
}

fn profile() -> KernelProfile {
    KernelProfile {
        nr_cpus: 4,
        full_check_every: 1,
        tlb_entries: 16,
        ..KernelProfile::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn reference_never_violates(ops in arb_ops_with(GenConfig { nr_cpus: 4, max_mms: 4 }, 200)) {
        let m = run(&ops, &profile());
        prop_assert!(m.violations().is_empty(), "violations: {:#?}", m.violations());
    }

    #[test]
    fn deterministic_and_serde_roundtrip(ops in arb_ops_with(GenConfig { nr_cpus: 4, max_mms: 4 }, 150)) {
        let a = run(&ops, &profile());
        let b = run(&ops, &profile());
        let (sa, sb) = (a.snapshot(), b.snapshot());
        prop_assert_eq!(&sa, &sb);
        prop_assert_eq!(sa.to_text(), sb.to_text());
        prop_assert_eq!(a.state_hash(), b.state_hash());
        prop_assert_eq!(a.counters(), b.counters());
        let json = serde_json::to_string(&sa).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &sa);
        prop_assert_eq!(back.state_hash(), sa.state_hash());
        let ops_json = serde_json::to_string(&ops).unwrap();
        let ops_back: Vec<Op> = serde_json::from_str(&ops_json).unwrap();
        prop_assert_eq!(ops_back, ops);
    }

    #[test]
    fn profiles_k61_trim_no_rcu_never_violate(ops in arb_ops_with(GenConfig { nr_cpus: 3, max_mms: 3 }, 150)) {
        let p = KernelProfile {
            base: mmreplay_reference::Base::K61,
            nr_cpus: 3,
            cpumask_mode: mmreplay_reference::CpumaskMode::TrimByFlush,
            rcu_table_free: false,
            lru_gen_mm_walk: false,
            full_check_every: 1,
            ..KernelProfile::default()
        };
        let m = run(&ops, &p);
        prop_assert!(m.violations().is_empty(), "violations: {:#?}", m.violations());
    }
}
