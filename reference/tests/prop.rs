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

/// Case count: `PROPTEST_CASES` overrides the default (for longer bug hunts).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
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
    #![proptest_config(ProptestConfig { cases: cases(64), .. ProptestConfig::default() })]

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
        // The arena walk and the snapshot must feed the progress hash the same facts.
        prop_assert_eq!(a.progress_hash(), sa.progress_hash());
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
    fn checkpoint_hash_is_the_full_progress_hash(
        ops in arb_ops_with(GenConfig { nr_cpus: 4, max_mms: 4 }, 200),
        every in 1usize..8,
    ) {
        // The incremental hash (model/phash.rs) after runs of 1..8 ops between checkpoints
        // must equal the walk over the whole state, and the snapshot's, for both LRUs.
        for lru in [mmreplay_reference::profile::LruKind::Mglru { min_ttl_ms: 0 }, mmreplay_reference::profile::LruKind::Classic] {
            let mut m = Model::new(KernelProfile { lru, ..profile() }, Reference);
            for (i, op) in ops.iter().enumerate() {
                let _ = m.apply(op);
                if i % every == 0 {
                    prop_assert_eq!(m.checkpoint_hash(), m.progress_hash(), "after op {} {:?}", i, op);
                }
            }
            prop_assert_eq!(m.checkpoint_hash(), m.snapshot().progress_hash());
        }
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

    #[test]
    fn classic_lru_never_violates_and_hashes_agree(ops in arb_ops_with(GenConfig { nr_cpus: 4, max_mms: 4 }, 200)) {
        for base in [mmreplay_reference::Base::Knew, mmreplay_reference::Base::K61] {
            let p = KernelProfile {
                base,
                lru: mmreplay_reference::profile::LruKind::Classic,
                ..profile()
            };
            let m = run(&ops, &p);
            prop_assert!(m.violations().is_empty(), "violations: {:#?}", m.violations());
            prop_assert_eq!(m.progress_hash(), m.snapshot().progress_hash());
            let again = run(&ops, &p);
            prop_assert_eq!(m.state_hash(), again.state_hash());
        }
    }
}

/// Arbitrary (mostly invalid) ops: the model must never panic, and every op advances `steps`.
fn wild_op() -> impl Strategy<Value = Op> {
    use mmreplay_reference::{AccessKind, FileId, FileKind, FileRef, HoldId, MigrateTarget, MmId};
    let mm = (0u32..4).prop_map(MmId);
    let cpu = 0u32..6;
    let va = prop_oneof![
        any::<u64>(),
        (0u64..0x4000).prop_map(|p| 0x4000_0000 + p * 4096),
        Just(u64::MAX)
    ];
    let len = prop_oneof![
        any::<u64>(),
        (0u64..600).prop_map(|p| p * 4096),
        Just(1u64 << 31)
    ];
    let kind = prop_oneof![
        Just(AccessKind::Read),
        Just(AccessKind::Write),
        Just(AccessKind::Exec)
    ];
    let fkind = prop_oneof![
        Just(FileKind::Regular),
        Just(FileKind::Shmem),
        Just(FileKind::Hugetlbfs)
    ];
    let file = proptest::option::of((0u64..3, fkind).prop_map(|(i, k)| FileRef {
        id: FileId(i),
        kind: k,
    }));
    prop_oneof![
        (cpu.clone(), mm.clone(), va.clone(), kind.clone())
            .prop_map(|(cpu, mm, va, kind)| Op::Fault { cpu, mm, va, kind }),
        (cpu.clone(), mm.clone(), va.clone(), kind).prop_map(|(cpu, mm, va, kind)| Op::Access {
            cpu,
            mm,
            va,
            kind
        }),
        (cpu.clone(), mm.clone(), mm.clone()).prop_map(|(cpu, parent, child)| Op::Fork {
            cpu,
            parent,
            child
        }),
        (cpu.clone(), proptest::option::of(mm.clone()), mm.clone())
            .prop_map(|(cpu, old, new)| Op::Exec { cpu, old, new }),
        (cpu.clone(), mm.clone()).prop_map(|(cpu, mm)| Op::Exit { cpu, mm }),
        (
            cpu.clone(),
            mm.clone(),
            va.clone(),
            len.clone(),
            0u32..8,
            any::<u32>(),
            file,
            any::<u64>()
        )
            .prop_map(|(cpu, mm, addr, len, prot, flags, file, pgoff)| Op::Mmap {
                cpu,
                mm,
                addr,
                len,
                prot,
                flags,
                file,
                pgoff
            }),
        (cpu.clone(), mm.clone(), va.clone(), len.clone())
            .prop_map(|(cpu, mm, addr, len)| Op::Munmap { cpu, mm, addr, len }),
        (
            cpu.clone(),
            mm.clone(),
            va.clone(),
            len.clone(),
            va.clone(),
            len.clone()
        )
            .prop_map(
                |(cpu, mm, old_addr, old_len, new_addr, new_len)| Op::Mremap {
                    cpu,
                    mm,
                    old_addr,
                    old_len,
                    new_addr,
                    new_len
                }
            ),
        (cpu.clone(), mm.clone(), va.clone()).prop_map(|(cpu, mm, brk)| Op::Brk { cpu, mm, brk }),
        (cpu.clone(), mm.clone(), va.clone(), len.clone(), 0u32..8).prop_map(
            |(cpu, mm, addr, len, prot)| Op::Mprotect {
                cpu,
                mm,
                addr,
                len,
                prot
            }
        ),
        (cpu.clone(), mm.clone(), va.clone(), len.clone(), 0u32..25).prop_map(
            |(cpu, mm, addr, len, advice)| Op::Madvise {
                cpu,
                mm,
                addr,
                len,
                advice
            }
        ),
        (cpu.clone(), proptest::option::of(mm.clone()))
            .prop_map(|(cpu, next)| Op::Switch { cpu, next }),
        (cpu.clone(), mm.clone(), va.clone()).prop_map(|(cpu, mm, va)| Op::Migrate {
            cpu,
            target: MigrateTarget::Va { mm, va }
        }),
        (cpu.clone(), any::<u64>()).prop_map(|(cpu, p)| Op::Migrate {
            cpu,
            target: MigrateTarget::Pfn(p % 0x10_0100)
        }),
        (cpu.clone(), 0u32..100).prop_map(|(cpu, n)| Op::Reclaim {
            cpu,
            nr_to_reclaim: n
        }),
        (cpu.clone(), mm.clone(), va.clone(), any::<bool>(), 0u64..4).prop_map(
            |(cpu, mm, va, write, h)| Op::Pin {
                cpu,
                mm,
                va,
                write,
                hold: HoldId(h)
            }
        ),
        (cpu, mm, va, 0u64..4).prop_map(|(cpu, mm, va, h)| Op::GetRef {
            cpu,
            mm,
            va,
            hold: HoldId(h)
        }),
        (0u64..4).prop_map(|h| Op::Unpin { hold: HoldId(h) }),
        (0u64..4, any::<bool>()).prop_map(|(h, write)| Op::PutRef {
            hold: HoldId(h),
            write
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_ops_never_panic(ops in proptest::collection::vec(wild_op(), 0..80)) {
        let mut m = Model::new(KernelProfile { nr_cpus: 4, full_check_every: 1, ..KernelProfile::default() }, Reference);
        for op in &ops {
            let _ = m.apply(op);
        }
        m.finish();
        prop_assert_eq!(m.steps(), ops.len() as u64);
        // Garbage in must not corrupt accounting either.
        prop_assert!(m.violations().is_empty(), "violations: {:#?}", m.violations());
    }
}

/// `Choice::clamped` (the fuzz target's way into the generator) brings every field into the
/// generator's ranges and leaves in-range choices as they are.
#[test]
fn clamped_choices_are_in_the_generators_ranges() {
    use mmreplay_reference::testing::{Choice, SLOTS, SLOT_PAGES};
    let c = Choice::Touch {
        mm: 9,
        cpu: 200,
        slot: 255,
        page: 255,
        kind: 7,
        fault: true,
    }
    .clamped();
    match c {
        Choice::Touch {
            slot,
            page,
            kind,
            mm,
            cpu,
            ..
        } => {
            assert!(u64::from(slot) < SLOTS && u64::from(page) < SLOT_PAGES && kind < 3);
            assert_eq!((mm, cpu), (9, 200));
        }
        other => panic!("{other:?}"),
    }
    match (Choice::Reclaim { n: 0 }).clamped() {
        Choice::Reclaim { n } => assert_eq!(n, 1),
        other => panic!("{other:?}"),
    }
    match (Choice::Unmap {
        mm: 0,
        slot: 1,
        page: 2,
        n: 3,
    })
    .clamped()
    {
        Choice::Unmap { slot, page, n, .. } => assert_eq!((slot, page, n), (1, 2, 4)),
        other => panic!("{other:?}"),
    }
}
