//! `Op::ReclaimScan`: a logged `shrink_inactive_list` pass that freed nothing (6.1/6.18
//! `mm_vmscan_lru_shrink_inactive` with `nr_reclaimed=0`) does its keeping, unmapping and
//! writeback at its own moment in the classic LRU; the next pass that frees takes the folios
//! written back without unmapping anything (the kernel's `folio_end_writeback` ->
//! `folio_rotate_reclaimable` put them at the inactive tail). On k61-hotset-classic 91% of the
//! kernel's `try_to_unmap_one` calls are in such passes.

use mmreplay_reference::op::prot;
use mmreplay_reference::profile::LruKind;
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, OpOutcome, Reference};

mod common;

const ANON: u64 = 0x4000_0000;
const PAGE: u64 = 4096;
const MM: MmId = MmId(1);

fn apply(m: &mut Model<Reference>, op: Op) -> OpOutcome {
    match m.apply(&op) {
        Ok(o) => o,
        Err(e) => panic!("op {op:?} failed: {e}"),
    }
}

/// One mm of memcg 1 with 8 anon pages written once.
fn workload(lru: LruKind) -> Model<Reference> {
    let profile = KernelProfile {
        nr_cpus: 2,
        full_check_every: 1,
        lru,
        ..KernelProfile::default()
    };
    let mut m = Model::new(profile, Reference);
    apply(&mut m, common::exec(0, MM));
    apply(&mut m, common::anon_fixed(0, MM, ANON, 8 * PAGE));
    for i in 0..8 {
        apply(
            &mut m,
            Op::Fault {
                cpu: 0,
                mm: MM,
                va: ANON + i * PAGE,
                kind: AccessKind::Write,
            },
        );
    }
    apply(&mut m, Op::SetMemcg { mm: MM, memcg: 1 });
    m
}

const SCAN: Op = Op::ReclaimScan {
    cpu: 0,
    nr_scanned: 8,
    memcg: 1,
    file: None,
    nr_reclaimed: 0,
};

/// (scanned, ref_keep, pageouts, reclaimed, rmap unmap walks).
fn figures(m: &Model<Reference>) -> [u64; 5] {
    let c = m.counters();
    [
        c.vmscan_scanned,
        c.vmscan_ref_keep,
        c.vmscan_pageout,
        c.vmscan_reclaimed,
        c.rmap_walks,
    ]
}

#[test]
fn a_scan_pass_keeps_then_writes_back_and_the_freeing_pass_unmaps_nothing() {
    let mut m = workload(LruKind::Classic);
    // First look: every page was referenced by its fault (folio_check_references: keep).
    apply(&mut m, SCAN);
    let [scanned, keep, pageout, reclaimed, _] = figures(&m);
    assert_eq!((scanned, keep, pageout, reclaimed), (8, 8, 0, 0));
    // Second look: unreferenced, so add_to_swap, try_to_unmap, pageout; kept under writeback.
    apply(&mut m, SCAN);
    let [scanned, keep, pageout, reclaimed, walks] = figures(&m);
    assert_eq!((scanned, keep, pageout, reclaimed), (16, 8, 8, 0));
    assert!((0..8).all(|i| m.folio_at(MM, ANON + i * PAGE).is_none()));
    // The freeing pass frees the written folios from the tail, with no further unmap walk.
    apply(
        &mut m,
        Op::ReclaimMemcg {
            cpu: 0,
            nr_to_reclaim: 8,
            memcg: 1,
        },
    );
    let [_, _, pageout2, reclaimed, walks2] = figures(&m);
    assert_eq!((pageout2, reclaimed), (8, 8));
    assert_eq!(
        walks2, walks,
        "unmapped already: no rmap walk, no try_to_unmap"
    );
    assert!(m.violations().is_empty(), "{:?}", m.violations());

    // Control: without the scan passes the reclaim op keeps, unmaps and writes back itself.
    let mut m = workload(LruKind::Classic);
    apply(
        &mut m,
        Op::ReclaimMemcg {
            cpu: 0,
            nr_to_reclaim: 8,
            memcg: 1,
        },
    );
    let [_, keep, pageout, _, walks] = figures(&m);
    assert_eq!(keep, 8);
    assert!(pageout > 0 && walks > 0, "{pageout} {walks}");
}

#[test]
fn a_scan_pass_does_nothing_under_mglru_and_is_followed_in_lockstep() {
    let mut m = workload(LruKind::Mglru { min_ttl_ms: 0 });
    let before = figures(&m);
    apply(&mut m, SCAN);
    assert_eq!(figures(&m), before);

    // A lockstep follower repeats the recorded pass on its own model.
    let mut lead = workload(LruKind::Classic);
    let mut follow = workload(LruKind::Classic);
    for _ in 0..2 {
        let (r, script) = lead.apply_recording(&SCAN);
        assert!(r.is_ok());
        let Some(script) = script else {
            panic!("no script recorded");
        };
        let (r, res) = follow.apply_imposed(&SCAN, &script);
        assert!(r.is_ok());
        assert_eq!(res.skipped, 0);
    }
    assert_eq!(figures(&lead), figures(&follow));
    assert_eq!(figures(&follow)[2], 8);
}

const FILE: u64 = 0x5000_0000;

/// `workload` plus 4 pages of a regular file the workload's task read in (charged to memcg 1
/// by `Op::PageCacheAdd`), mapped read-only.
fn workload_with_file() -> Model<Reference> {
    workload_with_file_prot(prot::READ, AccessKind::Read)
}

fn workload_with_file_prot(p: u32, kind: AccessKind) -> Model<Reference> {
    let mut m = workload(LruKind::Classic);
    apply(&mut m, common::file_fixed(0, MM, FILE, 4 * PAGE, p, 7));
    for i in 0..4 {
        let va = FILE + i * PAGE;
        apply(
            &mut m,
            Op::Fault {
                cpu: 0,
                mm: MM,
                va,
                kind,
            },
        );
        apply(
            &mut m,
            Op::PageCacheAdd {
                mm: MM,
                va,
                index: i,
            },
        );
    }
    m
}

/// The pass's list comes from the event's `reclaim_flags`: a file pass scans the file list
/// even while the anon list is full (the old guess took anon), an anon pass the anon list,
/// and the kernel's `nr_reclaimed` of a file pass is not credited twice.
#[test]
fn a_scan_pass_shrinks_the_list_the_kernel_named() {
    let pass = |file: Option<bool>, nr_reclaimed: u32| Op::ReclaimScan {
        cpu: 0,
        nr_scanned: 4,
        memcg: 1,
        file,
        nr_reclaimed,
    };
    let mut m = workload_with_file();
    let mapped = |m: &Model<Reference>, base: u64, n: u64| {
        (0..n)
            .filter(|i| m.folio_at(MM, base + i * PAGE).is_some())
            .count()
    };
    // First look at the file pages: each referenced once by a read fault of a VMA without
    // VM_EXEC: kept (folio_check_references), none activated.
    apply(&mut m, pass(Some(true), 0));
    let c = m.counters();
    assert_eq!((c.vmscan_scanned, c.vmscan_ref_keep), (4, 4));
    assert_eq!(c.vmscan_activated, 0);
    // Second look: unreferenced clean file pages are unmapped and freed; anon untouched.
    apply(&mut m, pass(Some(true), 4));
    assert_eq!(m.counters().vmscan_reclaimed, 4);
    assert_eq!(mapped(&m, FILE, 4), 0);
    assert_eq!(mapped(&m, ANON, 8), 8);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    // Credit: what the model freed beyond the kernel's nr_reclaimed counts against the next
    // reclaim op. Anon pages unmapped and written back by two anon passes wait at the tail.
    let after = |kernel_freed: u32| {
        let mut m = workload_with_file();
        apply(&mut m, pass(Some(true), 0));
        apply(&mut m, pass(Some(true), kernel_freed));
        for _ in 0..2 {
            apply(&mut m, SCAN);
        }
        let before = m.counters().vmscan_reclaimed;
        apply(
            &mut m,
            Op::ReclaimMemcg {
                cpu: 0,
                nr_to_reclaim: 4,
                memcg: 1,
            },
        );
        m.counters().vmscan_reclaimed - before
    };
    assert!(after(4) >= 4, "the kernel freed them too: no credit");
    assert_eq!(
        after(0),
        0,
        "4 freed ahead of the kernel: the next target is met"
    );

    // An anon pass (and the old guess, `None`, while anon pages exist) scans anon only.
    for file in [Some(false), None] {
        let mut m = workload_with_file();
        apply(&mut m, pass(file, 0));
        apply(&mut m, pass(file, 0));
        // Two looks at 4 of the 8 anon pages each: all kept (referenced by their fault).
        assert_eq!(m.counters().vmscan_ref_keep, 8, "{file:?}");
        apply(&mut m, pass(file, 0));
        assert_eq!(mapped(&m, FILE, 4), 4, "{file:?}");
        assert_eq!(mapped(&m, ANON, 8), 4, "{file:?}");
    }
}

/// A file pass over an exec'd binary's text: `folio_check_references` (6.1 and 6.18
/// mm/vmscan.c) activates a referenced file folio of a VM_EXEC mapping at its first look, where
/// a read-only mapping's is only kept (above). The kernel's file activations on reclaim-swap,
/// tour and k61-reclaim-classic are of this kind (the workload binary's pages).
#[test]
fn a_file_pass_activates_referenced_exec_pages_at_first_look() {
    let mut m = workload_with_file_prot(prot::READ | prot::WRITE | prot::EXEC, AccessKind::Exec);
    apply(
        &mut m,
        Op::ReclaimScan {
            cpu: 0,
            nr_scanned: 4,
            memcg: 1,
            file: Some(true),
            nr_reclaimed: 0,
        },
    );
    let c = m.counters();
    assert_eq!(
        (c.vmscan_scanned, c.vmscan_activated, c.vmscan_ref_keep),
        (4, 4, 0)
    );
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}
