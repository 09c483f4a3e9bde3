//! The memcg charge of a regular-file page (`mm/filemap.c:__filemap_add_folio` →
//! `mem_cgroup_charge`): the task that adds the page to the page cache pays for it, not the
//! process that maps it. The capture says who added what (`mm_filemap_add_to_page_cache`,
//! lowered as `Op::PageCacheAdd`); a file page nobody in the capture added was cached before
//! (a shared library) and is not the workload's memcg's to reclaim. Both LRUs.

use mmreplay_reference::op::prot;
use mmreplay_reference::profile::{CpumaskMode, LruKind};
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, OpOutcome, Reference};

mod common;

const LIB: u64 = 0x7f00_0000_0000;
const ANON: u64 = 0x4000_0000;
const PAGE: u64 = 4096;
const MM: MmId = MmId(1);

fn apply(m: &mut Model<Reference>, op: Op) -> OpOutcome {
    match m.apply(&op) {
        Ok(o) => o,
        Err(e) => panic!("op {op:?} failed: {e}"),
    }
}

fn fault(m: &mut Model<Reference>, va: u64, kind: AccessKind) {
    apply(
        m,
        Op::Fault {
            cpu: 0,
            mm: MM,
            va,
            kind,
        },
    );
}

/// A model under `profile` with one mm that maps 8 pages of a regular file (read-only,
/// private) at `LIB`.
fn with_file_mapping(profile: KernelProfile) -> Model<Reference> {
    let mut m = Model::new(profile, Reference);
    apply(&mut m, common::exec(0, MM));
    apply(
        &mut m,
        common::file_fixed(0, MM, LIB, 8 * PAGE, prot::READ, 3),
    );
    m
}

/// An mm with 8 pages of a regular file (read-only, private) and 8 anon pages, all faulted;
/// `added` says which file pages its task added to the page cache. Then its memcg (1) reclaims
/// everything it can: returns the file pages still resident.
fn resident_after_memcg_reclaim(lru: LruKind, added: &[u64]) -> (Vec<u64>, u64) {
    let profile = KernelProfile {
        nr_cpus: 2,
        cpumask_mode: CpumaskMode::TrimByFlush,
        full_check_every: 1,
        lru,
        ..KernelProfile::default()
    };
    let mut m = with_file_mapping(profile);
    apply(&mut m, common::anon_fixed(0, MM, ANON, 8 * PAGE));
    for i in 0..8 {
        fault(&mut m, LIB + i * PAGE, AccessKind::Read);
        if added.contains(&i) {
            // The lowering pairs the add with the fault that logged it: the fault's address
            // names the file, the add its page index.
            apply(
                &mut m,
                Op::PageCacheAdd {
                    mm: MM,
                    va: LIB + i * PAGE,
                    index: i,
                },
            );
        }
        fault(&mut m, ANON + i * PAGE, AccessKind::Write);
    }
    // The memcg is learnt at its first reclaim episode, after the adds.
    apply(&mut m, Op::SetMemcg { mm: MM, memcg: 1 });
    for _ in 0..8 {
        apply(
            &mut m,
            Op::ReclaimMemcg {
                cpu: 0,
                nr_to_reclaim: 64,
                memcg: 1,
            },
        );
    }
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    let resident = (0..8)
        .filter(|i| m.folio_at(MM, LIB + i * PAGE).is_some())
        .collect();
    (resident, m.counters().pagecache_adds_charged)
}

#[test]
fn memcg_reclaim_takes_only_the_file_pages_its_tasks_added() {
    for lru in [LruKind::Classic, LruKind::Mglru { min_ttl_ms: 0 }] {
        // Pages 0-3 read in by the workload, 4-7 cached before (someone else's charge).
        let (resident, charged) = resident_after_memcg_reclaim(lru, &[0, 1, 2, 3]);
        assert_eq!(charged, 4, "{lru:?}");
        assert_eq!(resident, vec![4, 5, 6, 7], "{lru:?}");
        // Negative control: without the adds, no file page is the memcg's.
        let (resident, charged) = resident_after_memcg_reclaim(lru, &[]);
        assert_eq!(charged, 0);
        assert_eq!(resident, (0..8).collect::<Vec<_>>(), "{lru:?}");
    }
}

/// An add naming a page the model has not faulted yet (read ahead with the faulted one) is
/// charged when the page is faulted in later.
#[test]
fn a_page_read_ahead_is_charged_when_faulted_later() {
    let profile = KernelProfile {
        nr_cpus: 2,
        lru: LruKind::Classic,
        full_check_every: 1,
        ..KernelProfile::default()
    };
    let mut m = with_file_mapping(profile);
    fault(&mut m, LIB, AccessKind::Read);
    // The fault at page 0 read pages 0-3 in.
    for index in 0..4 {
        apply(
            &mut m,
            Op::PageCacheAdd {
                mm: MM,
                va: LIB,
                index,
            },
        );
    }
    for i in 1..8 {
        fault(&mut m, LIB + i * PAGE, AccessKind::Read);
    }
    apply(&mut m, Op::SetMemcg { mm: MM, memcg: 1 });
    for _ in 0..8 {
        apply(
            &mut m,
            Op::ReclaimMemcg {
                cpu: 0,
                nr_to_reclaim: 64,
                memcg: 1,
            },
        );
    }
    let resident: Vec<u64> = (0..8)
        .filter(|i| m.folio_at(MM, LIB + i * PAGE).is_some())
        .collect();
    assert_eq!(resident, vec![4, 5, 6, 7]);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}
