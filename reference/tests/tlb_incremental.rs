//! The incremental I4 check (`model/tlbnotes.rs`) against the full scan of every TLB entry:
//! every few ops of random op sequences (so notes pile up across ops and the model's own
//! checks), under both LRUs, with and without a deliberately broken model (page tables changed
//! behind the TLB's back, at the PTE, PMD and pgd levels), both must name the same stale entry
//! (or none) for every scope, and the noted path must have answered some of them.

#![cfg(feature = "testing")]

use mmreplay_reference::profile::LruKind;
use mmreplay_reference::testing::{anon_written, arb_ops_with, GenConfig, BASE, SLOTS, SLOT_PAGES};
use mmreplay_reference::{KernelProfile, Model, Reference};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn profile(lru: LruKind) -> KernelProfile {
    KernelProfile {
        nr_cpus: 4,
        tlb_entries: 16,
        lru,
        ..KernelProfile::default()
    }
}

const LRUS: [LruKind; 2] = [LruKind::Mglru { min_ttl_ms: 0 }, LruKind::Classic];

/// Compare every this many ops (the model's own checks run in between).
const EVERY: usize = 3;

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), .. ProptestConfig::default() })]

    /// A correct model: the two agree after every op (and find nothing).
    #[test]
    fn incremental_i4_equals_full_scan(ops in arb_ops_with(GenConfig { nr_cpus: 4, max_mms: 4 }, 200)) {
        for lru in LRUS {
            let mut m = Model::new(profile(lru), Reference);
            for (i, op) in ops.iter().enumerate() {
                let _ = m.apply(op);
                if i % EVERY != EVERY - 1 {
                    continue;
                }
                for (inc, full, _) in m.i4_incremental_and_full() {
                    prop_assert_eq!(&inc, &full, "after op {} {:?}", i, op);
                }
            }
            prop_assert!(m.violations().is_empty(), "{:#?}", m.violations());
        }
    }

    /// A broken model (page tables changed without a flush, at random points and levels):
    /// the two still agree after every op, and the breakage is found whenever the full scan
    /// finds it.
    #[test]
    fn incremental_i4_equals_full_scan_on_a_broken_model(
        ops in arb_ops_with(GenConfig { nr_cpus: 4, max_mms: 4 }, 200),
        breaks in proptest::collection::vec((0usize..100, any::<bool>(), 1u32..5, 0u64..SLOTS * SLOT_PAGES, 0u8..5), 1..6),
    ) {
        for lru in LRUS {
            let mut m = Model::new(profile(lru), Reference);
            let mut broke = false;
            for (i, op) in ops.iter().enumerate() {
                let _ = m.apply(op);
                for &(at, cached, mm, page, how) in &breaks {
                    if at != i {
                        continue;
                    }
                    // Mostly an address the TLB caches (else the breakage is invisible to I4).
                    let (mm, va) = match m.tlb_cached() {
                        c if cached && !c.is_empty() => c[page as usize % c.len()],
                        _ => (mm, BASE + page * 4096),
                    };
                    broke |= m.break_tlb_behind_its_back(mm, va, how);
                }
                if i % EVERY != EVERY - 1 {
                    continue;
                }
                for (inc, full, _) in m.i4_incremental_and_full() {
                    prop_assert_eq!(&inc, &full, "after op {} {:?}", i, op);
                }
            }
            if !broke {
                prop_assert!(m.violations().is_empty());
            }
        }
    }
}

/// Negative control: a model that write-protects a PTE the TLB caches as writable, without a
/// flush, trips I4 through the incremental check at the next PTE-changing op (here the
/// write-protecting clear of soft-dirty bits, which checks I4 for its mm).
#[test]
fn a_broken_model_trips_i4() {
    use mmreplay_reference::op::{MmId, Op};
    let mut m = Model::new(profile(LRUS[0]), Reference);
    let (cpu, mm) = (0u32, MmId(1));
    let va = BASE;
    let ops = anon_written(cpu, mm, BASE, 1 << 21);
    for op in &ops {
        let _ = m.apply(op);
    }
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
    assert!(m.break_tlb_behind_its_back(1, va, 1));
    let _ = m.apply(&Op::Munmap {
        cpu,
        mm,
        addr: va + (1 << 20),
        len: 4096,
    });
    let v = m.violations();
    assert!(
        v.iter()
            .any(|v| v.invariant == mmreplay_reference::invariant::Invariant::I4),
        "{v:#?}"
    );
}

/// The noted path is the one that answers after a single PTE write (else the optimisation
/// would be dead code), and it finds the stale entry the write left: a negative control for
/// the noted path itself.
#[test]
fn the_noted_path_answers_and_finds_a_stale_entry() {
    use mmreplay_reference::op::MmId;
    let mut m = Model::new(profile(LRUS[0]), Reference);
    let (cpu, mm) = (0u32, MmId(1));
    let ops = anon_written(cpu, mm, BASE, 1 << 21);
    for op in &ops {
        let _ = m.apply(op);
    }
    // A clean state: every scope agrees there is nothing stale.
    for (inc, full, _) in m.i4_incremental_and_full() {
        assert_eq!((inc, full), (None, None));
    }
    // Write-protect the cached PTE without a flush: only the note knows.
    assert!(m.break_tlb_behind_its_back(1, BASE, 1));
    let answers = m.i4_incremental_and_full();
    let (inc, full, noted) = answers.first().cloned().unwrap_or_default();
    assert!(noted, "the whole-model check scanned: {answers:?}");
    assert!(full.is_some(), "the full scan missed the stale entry");
    assert_eq!(inc, full);
}
