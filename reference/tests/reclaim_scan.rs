//! `Op::ReclaimScan`: a logged `shrink_inactive_list` pass that freed nothing (6.1/6.18
//! `mm_vmscan_lru_shrink_inactive` with `nr_reclaimed=0`) does its keeping, unmapping and
//! writeback at its own moment in the classic LRU; the next pass that frees takes the folios
//! written back without unmapping anything (the kernel's `folio_end_writeback` ->
//! `folio_rotate_reclaimable` put them at the inactive tail). On k61-hotset-classic 91% of the
//! kernel's `try_to_unmap_one` calls are in such passes.

use mmreplay_reference::op::{map, prot};
use mmreplay_reference::profile::LruKind;
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, OpOutcome, Reference};

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
    apply(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MM,
        },
    );
    apply(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MM,
            addr: ANON,
            len: 8 * PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS | map::FIXED,
            file: None,
            pgoff: 0,
        },
    );
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
