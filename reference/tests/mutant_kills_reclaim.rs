//! Fast tests for mutants of `model/reclaim.rs` (MGLRU aging and eviction) that survived the
//! crate's other tests (`.ci/mutants ref-reclaim`, issue 20): each names the mutant it kills
//! and the kernel rule it holds the model to. Equivalent survivors are listed with the reason
//! in `reference/mutants-equivalent.md`.

use mmreplay_reference::engine::ReclaimStep;
use mmreplay_reference::op::{map, prot};
use mmreplay_reference::{
    AccessKind, Invariant, KernelProfile, MmId, Model, Op, Policy, Reference,
};

const A: u64 = 0x7000_0000;
const PAGE: u64 = 4096;

/// mm 1 exec'd on CPU 0 with 64 private anonymous pages at `A` (none touched), under `p`.
fn start_with<P: Policy>(p: P, nr_cpus: u32) -> Model<P> {
    let mut m = Model::new(
        KernelProfile {
            nr_cpus,
            full_check_every: 1,
            ..KernelProfile::default()
        },
        p,
    );
    apply(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
    );
    mmap(&mut m, 0, MmId(1), A);
    m
}

fn mmap<P: Policy>(m: &mut Model<P>, cpu: u32, mm: MmId, addr: u64) {
    apply(
        m,
        Op::Mmap {
            cpu,
            mm,
            addr,
            len: 64 * PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
    );
}

fn apply<P: Policy>(m: &mut Model<P>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

fn write<P: Policy>(m: &mut Model<P>, cpu: u32, mm: MmId, va: u64) {
    apply(
        m,
        Op::Access {
            cpu,
            mm,
            va,
            kind: AccessKind::Write,
        },
    );
}

fn no_violations<P: Policy>(m: &mut Model<P>) {
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

/// Kills `+= -> -=` on `rmap_vma_visits` in `try_to_unmap` (reclaim.rs:648), and holds the
/// other counts of one eviction (the rmap visit of `folio_referenced`, :563; `vmscan_scanned`).
/// Evicting one folio mapped once walks its rmap twice (`folio_referenced`, then
/// `try_to_unmap`), each walk visiting its one PTE, and `mm_vmscan_lru_shrink_inactive` reports
/// one page scanned and one reclaimed.
#[test]
fn evicting_one_mapped_folio_counts_two_rmap_walks_and_one_scanned_page() {
    let mut m = start_with(Reference, 2);
    write(&mut m, 0, MmId(1), A);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    let c = m.counters();
    assert_eq!(c.evictions, 1);
    assert_eq!(c.rmap_walks, 2);
    assert_eq!(c.rmap_vma_visits, 2, "one PTE visited per rmap walk");
    assert_eq!(c.vmscan_scanned, 1);
    assert_eq!(c.vmscan_reclaimed, 1);
    no_violations(&mut m);
}

/// The negative control of a broken flush order (`free_pages_before_flush`): reclaim skips
/// `try_to_unmap_flush_dirty` before `pageout`.
struct SkipFlushDirty;
impl Policy for SkipFlushDirty {
    fn free_pages_before_flush(&self) -> bool {
        true
    }
}

/// Kills `> -> <` in `pageout`'s I1 check (`tlb_dirty_refs > 0`, reclaim.rs:973): a dirty
/// folio cleaned for writeback while another CPU still holds a writable+dirty TLB entry for it
/// (its flush was batched by `TTU_BATCH_FLUSH` and, under this policy, not done before
/// `pageout`: `shrink_folio_list` calls `try_to_unmap_flush_dirty` first) is an I1 report.
#[test]
fn pageout_before_the_dirty_flush_reports_i1() {
    let mut m = start_with(SkipFlushDirty, 2);
    // CPU 0 caches a writable, dirty translation; CPU 1 reclaims (the flush is deferred:
    // another CPU is in the mm's cpumask).
    write(&mut m, 0, MmId(1), A);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    assert!(
        m.violations()
            .iter()
            .any(|v| v.invariant == Invariant::I1 && v.detail.contains("cleaned for writeback")),
        "{:#?}",
        m.violations()
    );
}

/// The same reclaim under the reference (which flushes first) cleans the folio silently.
#[test]
fn pageout_after_the_dirty_flush_is_clean() {
    let mut m = start_with(Reference, 2);
    write(&mut m, 0, MmId(1), A);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    assert_eq!(m.counters().evictions, 1);
    no_violations(&mut m);
}

/// Kills `+ -> *` in `inc_max_seq` (`max_seq + 1 - min_seq[t] >= MAX_NR_GENS`, reclaim.rs:450):
/// `inc_max_seq` first retires the oldest generation (`inc_min_seq`, moving its folios up) when
/// all `MAX_NR_GENS` (4) are in use. Memcg reclaim ages without touching another memcg's folios,
/// so the root memcg's old folio keeps the oldest generation busy: the LRU must still hold at
/// most 4 generations (the mutant lets a fifth one alias the oldest's list).
#[test]
fn aging_keeps_at_most_four_generations() {
    let mut m = start_with(Reference, 2);
    write(&mut m, 0, MmId(1), A);
    apply(
        &mut m,
        Op::Exec {
            cpu: 1,
            old: None,
            new: MmId(2),
        },
    );
    apply(
        &mut m,
        Op::SetMemcg {
            mm: MmId(2),
            memcg: 7,
        },
    );
    mmap(&mut m, 1, MmId(2), A);
    for i in 0..4 {
        // Each memcg reclaim ages twice before its new folio is old enough to evict.
        write(&mut m, 1, MmId(2), A + i * PAGE);
        apply(
            &mut m,
            Op::ReclaimMemcg {
                cpu: 1,
                nr_to_reclaim: 1,
                memcg: 7,
            },
        );
        assert!(m.snapshot().lru_nr_gens[0] <= 4, "round {i}");
    }
    assert!(m.counters().max_seq_incs >= 8);
    assert_eq!(m.snapshot().lru_nr_gens[0], 4);
    assert_eq!(m.counters().evictions, 4);
    assert!(
        m.pfn_at(MmId(1), A).is_some(),
        "the root memcg's folio stays"
    );
    no_violations(&mut m);
}

/// Kills `+ -> -` in `walk_mms`' step over a missing PUD (`((va >> PUD_SHIFT) + 1) <<
/// PUD_SHIFT`, reclaim.rs:492): `walk_pgd_range` skips an unpopulated PUD entry to the next
/// one (the mutant walks backwards: a loop or an underflow). Here the first VMA has no page
/// tables and the second, 62 GiB higher, has two young PTEs that the aging walk clears.
#[test]
fn aging_walk_skips_unpopulated_puds() {
    let mut m = start_with(Reference, 2);
    let hi = 64u64 << 30;
    mmap(&mut m, 0, MmId(1), hi);
    write(&mut m, 0, MmId(1), hi);
    write(&mut m, 0, MmId(1), hi + PAGE);
    let (r, script) = m.apply_recording(&Op::Reclaim {
        cpu: 1,
        nr_to_reclaim: 1,
    });
    assert!(r.is_ok(), "{r:?}");
    let steps = script.expect("a reclaim op records its rounds").steps;
    assert!(matches!(steps.first(), Some(ReclaimStep::Age)), "{steps:?}");
    assert_eq!(
        m.counters().a_cleared_pt_walk,
        2,
        "the walk reached the populated PUD"
    );
    no_violations(&mut m);
}

/// Kills `== -> !=` in `find_scripted`'s search (`x.live && x.id == f.id`, reclaim.rs:275): a
/// script's `slot_hint` is only a hint; a follower whose slot does not hold the folio finds
/// it by identity. A follower with the same history following the script with every hint
/// wrong must free the same folios and end in the same state as the recording model.
#[test]
fn imposed_reclaim_finds_victims_by_identity_when_the_hint_is_wrong() {
    let ops = |m: &mut Model<Reference>| {
        write(m, 0, MmId(1), A);
        write(m, 0, MmId(1), A + PAGE);
        write(m, 0, MmId(1), A + 2 * PAGE);
    };
    let mut leader = start_with(Reference, 2);
    let mut follower = start_with(Reference, 2);
    ops(&mut leader);
    ops(&mut follower);
    let op = Op::Reclaim {
        cpu: 1,
        nr_to_reclaim: 1,
    };
    let (r, script) = leader.apply_recording(&op);
    assert!(r.is_ok(), "{r:?}");
    let mut script = script.expect("a reclaim op records its rounds");
    let mut victims = 0;
    for step in &mut script.steps {
        if let ReclaimStep::Evict(ids) = step {
            for f in ids {
                // Shift every hint to a neighbour's slot (or past the end).
                f.slot_hint = f.slot_hint.wrapping_add(1);
                victims += u64::from(f.evicted);
            }
        }
    }
    assert_eq!(victims, 3);
    let (r, res) = follower.apply_imposed(&op, &script);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((res.skipped, res.extra), (0, 0), "{:?}", res.first_skip);
    assert_eq!(follower.counters().evictions, 3);
    assert_eq!(follower.state_hash(), leader.state_hash());
    no_violations(&mut follower);
}

/// Kills `+= -> *=` on `referenced` in `folio_referenced`'s VM_LOCKED branch (reclaim.rs:569):
/// `folio_referenced_one` stops at an mlocked VMA and reports VM_LOCKED, which
/// `folio_check_references` turns into keeping the folio (`FOLIOREF_ACTIVATE`) before any
/// unmap is tried. So each time reclaim isolates the mlocked page it walks the rmap once
/// (`folio_referenced`), never a second time (`try_to_unmap`), and frees nothing.
#[test]
fn mlocked_page_is_kept_without_trying_to_unmap_it() {
    let mut m = start_with(Reference, 2);
    let locked = 0x9000_0000;
    apply(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: locked,
            len: PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS | map::LOCKED,
            file: None,
            pgoff: 0,
        },
    );
    write(&mut m, 0, MmId(1), locked);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    let c = m.counters();
    assert_eq!(c.evictions, 0);
    assert!(c.vmscan_scanned > 0);
    assert_eq!(
        c.rmap_walks, c.vmscan_scanned,
        "one rmap walk per isolation"
    );
    assert!(m.pfn_at(MmId(1), locked).is_some());
    no_violations(&mut m);
}

/// Kills `+= -> *=` on `vmscan_ref_keep` in `count_vmscan` (reclaim.rs:813): a folio whose PTE
/// is young at its first reference check and that is not yet PG_referenced is kept
/// (`FOLIOREF_KEEP`, `nr_ref_keep`) and marked referenced. The pinned page survives the first
/// reclaim; CPU 1 then touches it (a TLB miss: the page walk sets the A bit again) and the
/// next reclaim's first eviction batch keeps it for that reference.
#[test]
fn young_page_at_its_first_reference_check_counts_a_ref_keep() {
    let mut m = start_with(Reference, 2);
    write(&mut m, 0, MmId(1), A);
    apply(
        &mut m,
        Op::Pin {
            cpu: 0,
            mm: MmId(1),
            va: A,
            write: false,
            hold: mmreplay_reference::HoldId(1),
        },
    );
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    let before = m.counters().vmscan_ref_keep;
    apply(
        &mut m,
        Op::Switch {
            cpu: 1,
            next: Some(MmId(1)),
        },
    );
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MmId(1),
            va: A,
            kind: AccessKind::Read,
        },
    );
    let (r, script) = m.apply_recording(&Op::Reclaim {
        cpu: 0,
        nr_to_reclaim: 1,
    });
    assert!(r.is_ok(), "{r:?}");
    let steps = script.expect("a reclaim op records its rounds").steps;
    match steps.first() {
        Some(ReclaimStep::Evict(ids)) => assert!(ids.iter().all(|f| !f.reclaim), "{ids:?}"),
        s => panic!("first round {s:?}"),
    }
    assert!(m.counters().vmscan_ref_keep > before);
    assert_eq!(m.counters().evictions, 0);
    no_violations(&mut m);
}
