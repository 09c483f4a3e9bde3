//! Issue 14 item 4: a reclaim reference check that finds a page unreferenced in a process older
//! than the capture (an mm made by `Op::Exec` with no old mm: a task first seen mid-capture or
//! seeded from the process snapshot, and its forks) is counted apart
//! (`reclaim_unref_preexisting`): what that process did before the capture is unknown. The
//! capture's own processes (an exec of a known task, and its forks) are not counted.

use mmreplay_reference::op::{map, prot};
use mmreplay_reference::profile::LruKind;
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, OpOutcome, Reference};

const A: u64 = 0x4000_0000;
const PAGE: u64 = 4096;

fn apply(m: &mut Model<Reference>, op: Op) -> OpOutcome {
    match m.apply(&op) {
        Ok(o) => o,
        Err(e) => panic!("op {op:?} failed: {e}"),
    }
}

/// Four written anon pages in `mm`, then global reclaim of everything: the counters.
fn reclaim_in(setup: &[Op], mm: MmId) -> mmreplay_reference::Counters {
    let profile = KernelProfile {
        nr_cpus: 2,
        lru: LruKind::Classic,
        full_check_every: 1,
        ..KernelProfile::default()
    };
    let mut m = Model::new(profile, Reference);
    for op in setup {
        apply(&mut m, op.clone());
    }
    apply(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm,
            addr: A,
            len: 4 * PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS | map::FIXED,
            file: None,
            pgoff: 0,
        },
    );
    for i in 0..4 {
        apply(
            &mut m,
            Op::Fault {
                cpu: 0,
                mm,
                va: A + i * PAGE,
                kind: AccessKind::Write,
            },
        );
    }
    for _ in 0..4 {
        apply(
            &mut m,
            Op::Reclaim {
                cpu: 0,
                nr_to_reclaim: 64,
            },
        );
    }
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    m.counters().clone()
}

#[test]
fn unreferenced_pages_of_processes_older_than_the_capture_are_counted_apart() {
    let first_seen = Op::Exec {
        cpu: 0,
        old: None,
        new: MmId(1),
    };
    let fork = Op::Fork {
        cpu: 0,
        parent: MmId(1),
        child: MmId(2),
    };
    let exec = Op::Exec {
        cpu: 0,
        old: Some(MmId(2)),
        new: MmId(3),
    };
    // The first-seen task's mm, and a fork of it: older than the capture.
    for (setup, mm) in [
        (vec![first_seen.clone()], MmId(1)),
        (vec![first_seen.clone(), fork.clone()], MmId(2)),
    ] {
        let c = reclaim_in(&setup, mm);
        assert!(c.reclaim_unref_unsampled > 0, "{c:?}");
        assert_eq!(
            c.reclaim_unref_preexisting, c.reclaim_unref_unsampled,
            "{mm:?}"
        );
    }
    // The exec'd program is the capture's own: none of its checks count.
    let c = reclaim_in(&[first_seen, fork, exec], MmId(3));
    assert!(c.reclaim_unref_unsampled > 0, "{c:?}");
    assert_eq!(c.reclaim_unref_preexisting, 0);
}
