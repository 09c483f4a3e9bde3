//! Hand-computed scenarios for each candidate (numbers derived in the comments from the
//! model's rules, mm-semantics B.9, B.8, B.10 and C.1-C.3), checked against the reference run
//! side by side, plus each candidate's contract on the same run.

use mmreplay_candidates::ad_preserve::{self, AdPreserve};
use mmreplay_candidates::batched_unshare::{self, BatchedUnshare};
use mmreplay_candidates::contract::{Mode, Observed};
use mmreplay_candidates::lookaround::{self, LookAround};
use mmreplay_reference::op::{map, prot};
use mmreplay_reference::{
    AccessKind, Base, Counters, FileId, FileKind, FileRef, MigrateTarget, MmId, Model, Op, Policy,
    Reference, Snapshot,
};
use mmreplay_reference::{KernelProfile, Violation};

const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;
/// PMD (2 MiB) and PUD (1 GiB) aligned.
const BASE: u64 = 0x40_0000_0000;

fn run<P: Policy>(
    profile: &KernelProfile,
    policy: P,
    ops: &[Op],
) -> (Counters, Snapshot, Vec<Violation>) {
    let mut m = Model::new(profile.clone(), policy);
    for (i, op) in ops.iter().enumerate() {
        let r = m.apply(op);
        assert!(r.is_ok(), "op {i} {op:?} failed: {r:?}");
    }
    m.finish();
    (m.counters().clone(), m.snapshot(), m.violations().to_vec())
}

fn anon_mmap(mm: u32, addr: u64, pages: u64) -> Op {
    Op::Mmap {
        cpu: 0,
        mm: MmId(mm),
        addr,
        len: pages * PAGE,
        prot: prot::READ | prot::WRITE,
        flags: map::PRIVATE | map::ANONYMOUS,
        file: None,
        pgoff: 0,
    }
}

fn touch(mm: u32, va: u64, kind: AccessKind) -> Op {
    Op::Access {
        cpu: 0,
        mm: MmId(mm),
        va,
        kind,
    }
}

fn la_profile(base: Base) -> KernelProfile {
    KernelProfile {
        base,
        // Aging by page-table walk would clear every A bit before eviction looks at them.
        lru_gen_mm_walk: false,
        ..KernelProfile::default()
    }
}

/// 64 young dirty anon pages filling a 64-page VMA inside one PMD table, then one reclaim.
fn sixty_four_young() -> Vec<Op> {
    let mut ops = vec![
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        anon_mmap(1, BASE, 64),
    ];
    for i in 0..64 {
        ops.push(touch(1, BASE + i * PAGE, AccessKind::Write));
    }
    ops.push(Op::Reclaim {
        cpu: 0,
        nr_to_reclaim: 1,
    });
    ops
}

/// Look-around, v6.1 (K61): the reclaim pass that isolates the 64 folios walks 1 rmap instead
/// of 64.
///
/// Reference (model B.9.4): pass 1 isolates all 64 (one MIN_LRU_BATCH), 64 `folio_referenced`
/// walks find them young -> clear, keep (PG_referenced). Pass 2: 64 walks find them old ->
/// reclaim: 64 `try_to_unmap` walks, 64 evictions. rmap_walks = 64 + 64 + 64 = 192.
/// Candidate: pass 1, the first walk's look-around scans the 64-PTE window, clears all 64 A
/// bits and (folios isolated) sets PG_referenced; the other 63 are kept without a walk
/// (018ee47f1489 shortcut), the first is activated. Pass 2 isolates the 63: 63 walks find
/// them old, 63 unmaps, 63 evictions. rmap_walks = 1 + 63 + 63 = 127.
#[test]
fn lookaround_k61_64_young_ptes_one_walk() {
    let profile = la_profile(Base::K61);
    let ops = sixty_four_young();
    let (rc, rs, rv) = run(&profile, Reference, &ops);
    let (cc, cs, cv) = run(&profile, LookAround::new(Base::K61), &ops);
    assert!(rv.is_empty() && cv.is_empty(), "{rv:?} {cv:?}");
    println!(
        "lookaround K61: rmap_walks reference {} candidate {}; evictions {} vs {}",
        rc.rmap_walks, cc.rmap_walks, rc.evictions, cc.evictions
    );
    // Pass-1 walks: reference 64, candidate 1.
    assert_eq!(rc.rmap_walks - rc.evictions * 2, 64);
    assert_eq!(cc.rmap_walks - cc.evictions * 2, 1);
    assert_eq!((rc.rmap_walks, cc.rmap_walks), (192, 127));
    assert_eq!((rc.evictions, cc.evictions), (64, 63));
    assert_eq!(cc.lookaround_calls, 1);
    assert_eq!(cc.lookaround_ptes_scanned, 64);
    assert_eq!(cc.a_cleared_lookaround, 64);
    assert_eq!(rc.a_cleared_lookaround, 0);
    // No TLB flush or IPI from aging on x86: only the eviction's unmap flushes, same count.
    assert_eq!(rc.ipi_sends_shootdown, cc.ipi_sends_shootdown);
    let k = lookaround::contract(Mode::FreeRunning, 64);
    let b = k.check(
        Observed {
            counters: &rc,
            snapshot: &rs,
        },
        Observed {
            counters: &cc,
            snapshot: &cs,
        },
    );
    assert!(b.is_empty(), "{b:#?}");
}

/// Current mainline (KNEW): look-around needs the neighbours on an LRU (`walk_update_folio`
/// two-strike); the 63 neighbours are isolated in the same batch, so it scans but cannot help:
/// the same 192 rmap walks as the reference. This documents the difference between the two.
#[test]
fn lookaround_knew_isolated_neighbours_no_saving() {
    let profile = la_profile(Base::Knew);
    let ops = sixty_four_young();
    let (rc, _, rv) = run(&profile, Reference, &ops);
    let (cc, _, cv) = run(&profile, LookAround::new(Base::Knew), &ops);
    assert!(rv.is_empty() && cv.is_empty(), "{rv:?} {cv:?}");
    println!(
        "lookaround KNEW: rmap_walks reference {} candidate {}; lookaround calls {}",
        rc.rmap_walks, cc.rmap_walks, cc.lookaround_calls
    );
    assert_eq!(rc.rmap_walks, cc.rmap_walks);
    assert_eq!(cc.lookaround_calls, 64);
    assert_eq!(cc.gen_promote_lookaround, 0);
}

fn one_page_migration(kind: AccessKind) -> Vec<Op> {
    vec![
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        anon_mmap(1, BASE, 1),
        touch(1, BASE, kind),
        Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Va {
                mm: MmId(1),
                va: BASE,
            },
        },
    ]
}

fn pte_ad(s: &Snapshot, va: u64) -> Option<(bool, bool)> {
    s.mms
        .iter()
        .flat_map(|m| m.ptes.iter())
        .find(|p| p.va == va)
        .and_then(|p| match p.state {
            mmreplay_reference::snapshot::PteState::Present { young, dirty, .. } => {
                Some((young, dirty))
            }
            _ => None,
        })
}

/// A/D preservation: a migrated young dirty page comes back young and dirty (reference: old
/// and clean); a read then a write after migration cost the reference one hardware A set and
/// one D set, the candidate none.
#[test]
fn ad_preserve_young_dirty_roundtrip() {
    let profile = KernelProfile::default();
    let mut ops = one_page_migration(AccessKind::Write);
    let (rc0, rs0, _) = run(&profile, Reference, &ops);
    let (cc0, cs0, _) = run(&profile, AdPreserve, &ops);
    assert_eq!(pte_ad(&rs0, BASE), Some((false, false)));
    assert_eq!(pte_ad(&cs0, BASE), Some((true, true)));
    assert_eq!((rc0.mig_restored_young, rc0.mig_restored_dirty), (0, 0));
    assert_eq!((cc0.mig_restored_young, cc0.mig_restored_dirty), (1, 1));
    ops.push(touch(1, BASE, AccessKind::Read));
    ops.push(touch(1, BASE, AccessKind::Write));
    let (rc, rs, rv) = run(&profile, Reference, &ops);
    let (cc, cs, cv) = run(&profile, AdPreserve, &ops);
    assert!(rv.is_empty() && cv.is_empty(), "{rv:?} {cv:?}");
    println!(
        "ad-preserve: hw_a_sets_after_mig {} -> {}, hw_d_sets_after_mig {} -> {}",
        rc.hw_a_sets_after_mig,
        cc.hw_a_sets_after_mig,
        rc.hw_d_sets_after_mig,
        cc.hw_d_sets_after_mig
    );
    assert_eq!((rc.hw_a_sets_after_mig, cc.hw_a_sets_after_mig), (1, 0));
    assert_eq!((rc.hw_d_sets_after_mig, cc.hw_d_sets_after_mig), (1, 0));
    assert_eq!(rc.hw_a_sets, cc.hw_a_sets + 1);
    assert_eq!(rc.hw_d_sets, cc.hw_d_sets + 1);
    // Flushes and IPIs: equal.
    assert_eq!(
        rc.tlb_flush_local + rc.tlb_flush_remote,
        cc.tlb_flush_local + cc.tlb_flush_remote
    );
    // Lockstep contract (no reclaim: same choices) holds.
    let k = ad_preserve::contract(Mode::Lockstep, profile.base, profile.mig_ad_supported);
    let b = k.check(
        Observed {
            counters: &rc,
            snapshot: &rs,
        },
        Observed {
            counters: &cc,
            snapshot: &cs,
        },
    );
    assert!(b.is_empty(), "{b:#?}");
}

/// Without room for A/D in the entry (`mig_ad_supported = false`) nothing is kept; a page
/// only read (clean file folio) is restored young but clean.
#[test]
fn ad_preserve_clean_and_unsupported() {
    let profile = KernelProfile::default();
    let off = KernelProfile {
        mig_ad_supported: false,
        ..KernelProfile::default()
    };
    let (c, s, v) = run(&off, AdPreserve, &one_page_migration(AccessKind::Write));
    assert!(v.is_empty(), "{v:?}");
    assert_eq!(pte_ad(&s, BASE), Some((false, false)));
    assert_eq!((c.mig_restored_young, c.mig_restored_dirty), (0, 0));
    let file_ops = file_read_migration();
    let (c, s, v) = run(&profile, AdPreserve, &file_ops);
    assert!(v.is_empty(), "{v:?}");
    assert_eq!(pte_ad(&s, BASE), Some((true, false)));
    assert_eq!((c.mig_restored_young, c.mig_restored_dirty), (1, 0));
}

/// A shared file page read once (young, clean folio), then migrated.
pub fn file_read_migration() -> Vec<Op> {
    vec![
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: BASE,
            len: PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::SHARED,
            file: Some(FileRef {
                id: FileId(9),
                kind: FileKind::Regular,
            }),
            pgoff: 0,
        },
        touch(1, BASE, AccessKind::Read),
        Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Va {
                mm: MmId(1),
                va: BASE,
            },
        },
    ]
}

/// Parent maps G GiB of shared hugetlb (one PMD table per GiB) and touches each GiB.
fn hugetlb_parent(g: u64) -> Vec<Op> {
    let mut ops = vec![
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: BASE,
            len: g * GIB,
            prot: prot::READ | prot::WRITE,
            flags: map::SHARED,
            file: Some(FileRef {
                id: FileId(77),
                kind: FileKind::Hugetlbfs,
            }),
            pgoff: 0,
        },
    ];
    for i in 0..g {
        ops.push(touch(1, BASE + i * GIB, AccessKind::Write));
    }
    ops
}

fn fork(child: u32) -> Op {
    Op::Fork {
        cpu: 0,
        parent: MmId(1),
        child: MmId(child),
    }
}

fn bu_compare(ops: &[Op]) -> (Counters, Counters) {
    let profile = KernelProfile::default();
    let (rc, rs, rv) = run(&profile, Reference, ops);
    let (cc, cs, cv) = run(&profile, BatchedUnshare, ops);
    assert!(rv.is_empty() && cv.is_empty(), "{rv:?} {cv:?}");
    let k = batched_unshare::contract(Mode::Lockstep);
    let b = k.check(
        Observed {
            counters: &rc,
            snapshot: &rs,
        },
        Observed {
            counters: &cc,
            snapshot: &cs,
        },
    );
    assert!(b.is_empty(), "{b:#?}");
    assert_eq!(rc.pmd_unshares, cc.pmd_unshares);
    (rc, cc)
}

/// fork K children over G shared tables, children exit one by one, then the parent:
/// reference K x G table syncs (one per unshare), candidate 1 (only the last child's exit
/// takes pt_share_count 1 -> 0), which is <= K. Targets: nr_cpus - 1 = 3 per sync.
#[test]
fn batched_unshare_fork_k_children_exit() {
    let (k, g) = (3u64, 4u64);
    let mut ops = hugetlb_parent(g);
    for c in 0..k {
        ops.push(fork(2 + c as u32));
    }
    for c in 0..k {
        ops.push(Op::Exit {
            cpu: 0,
            mm: MmId(2 + c as u32),
        });
    }
    ops.push(Op::Exit {
        cpu: 0,
        mm: MmId(1),
    });
    let (rc, cc) = bu_compare(&ops);
    println!(
        "batched-unshare fork {k} x {g}: table-sync IPIs reference {} candidate {}",
        rc.ipi_sends_table_sync, cc.ipi_sends_table_sync
    );
    assert_eq!(rc.pmd_unshares, k * g);
    assert_eq!(rc.ipi_sends_table_sync, k * g);
    assert_eq!(cc.ipi_sends_table_sync, 1);
    assert!(cc.ipi_sends_table_sync <= k);
    assert_eq!(rc.ipi_targets_table_sync, k * g * 3);
    assert_eq!(cc.ipi_targets_table_sync, 3);
}

/// Three sharers (parent + 2 children, pt_share_count 2), one child munmaps the whole range:
/// G unshares, each 2 -> 1: reference G syncs, candidate 0.
#[test]
fn batched_unshare_three_sharers_one_unmaps() {
    let g = 3u64;
    let mut ops = hugetlb_parent(g);
    ops.push(fork(2));
    ops.push(fork(3));
    ops.push(Op::Munmap {
        cpu: 0,
        mm: MmId(2),
        addr: BASE,
        len: g * GIB,
    });
    let (rc, cc) = bu_compare(&ops);
    println!(
        "batched-unshare 3 sharers, G={g}: table-sync IPIs reference {} candidate {}",
        rc.ipi_sends_table_sync, cc.ipi_sends_table_sync
    );
    assert_eq!(rc.pmd_unshares, g);
    assert_eq!(rc.ipi_sends_table_sync, g);
    assert_eq!(cc.ipi_sends_table_sync, 0);
    assert_eq!(cc.pmd_full_unshares, 0);
}
