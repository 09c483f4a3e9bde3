//! Negative controls (feature `negative-controls`): each deliberately broken policy must be
//! reported by the harness, at the right step with the right invariant, or as a contract
//! breach naming the field. The same ops under the reference (and the real candidate) must
//! stay clean, so each test also shows the report is caused by the bug.

use mmreplay_candidates::ad_preserve::{self, AdPreserve};
use mmreplay_candidates::contract::{Mode, Observed, Subject};
use mmreplay_candidates::lookaround::{self, LookAround};
use mmreplay_candidates::negative::{
    DirtyOnCleanRestore, FreeBeforeFlush, LazyfreeIgnoreRefs, NoSyncUnshare, PromoteWithoutClear,
};
use mmreplay_reference::op::{map, prot};
use mmreplay_reference::{
    AccessKind, Base, Counters, FileId, FileKind, FileRef, Invariant, KernelProfile, MigrateTarget,
    MmId, Model, Op, Policy, Reference, Snapshot, Violation,
};

mod common;

const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;
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
        // The incremental checkpoint hash stays exact in broken models too (phash.rs).
        assert_eq!(m.checkpoint_hash(), m.progress_hash(), "op {i} {op:?}");
    }
    m.finish();
    (m.counters().clone(), m.snapshot(), m.violations().to_vec())
}

fn exec(mm: u32) -> Op {
    Op::Exec {
        cpu: 0,
        old: None,
        new: MmId(mm),
    }
}

fn access(cpu: u32, va: u64, kind: AccessKind) -> Op {
    Op::Access {
        cpu,
        mm: MmId(1),
        va,
        kind,
    }
}

fn anon(pages: u64) -> Op {
    Op::Mmap {
        cpu: 0,
        mm: MmId(1),
        addr: BASE,
        len: pages * PAGE,
        prot: prot::READ | prot::WRITE,
        flags: map::PRIVATE | map::ANONYMOUS,
        file: None,
        pgoff: 0,
    }
}

/// Steps and invariants of the violations, for messages.
fn summary(v: &[Violation]) -> Vec<(u64, Invariant)> {
    v.iter().map(|x| (x.step, x.invariant)).collect()
}

/// Pre-1013af4f585f: a table goes exclusive (pt_share_count 1 -> 0) at the child's exit with
/// no table sync: I3 at the exit step.
#[test]
fn no_sync_unshare_trips_i3() {
    let ops = vec![
        exec(1),
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: BASE,
            len: 2 * GIB,
            prot: prot::READ | prot::WRITE,
            flags: map::SHARED,
            file: Some(FileRef {
                id: FileId(5),
                kind: FileKind::Hugetlbfs,
            }),
            pgoff: 0,
        },
        access(0, BASE, AccessKind::Write),
        access(0, BASE + GIB, AccessKind::Write),
        Op::Fork {
            cpu: 0,
            parent: MmId(1),
            child: MmId(2),
        },
        Op::Exit {
            cpu: 0,
            mm: MmId(2),
        },
    ];
    let p = KernelProfile::default();
    let (_, _, rv) = run(&p, Reference, &ops);
    assert!(rv.is_empty(), "{rv:?}");
    let (_, _, nv) = run(&p, NoSyncUnshare, &ops);
    println!("no-sync-unshare: {:?}", summary(&nv));
    assert!(
        nv.iter()
            .any(|v| v.invariant == Invariant::I3 && v.step == 5),
        "expected I3 at step 5 (exit), got {nv:?}"
    );
}

/// The 2014 race: CPU1 holds a writable dirty TLB entry; CPU0 munmaps and frees the page
/// before flushing: I1 at the munmap step.
#[test]
fn free_before_flush_trips_i1() {
    let ops = vec![
        exec(1),
        anon(4),
        Op::Switch {
            cpu: 1,
            next: Some(MmId(1)),
        },
        access(1, BASE, AccessKind::Write),
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: BASE,
            len: 4 * PAGE,
        },
    ];
    let p = KernelProfile::default();
    let (_, _, rv) = run(&p, Reference, &ops);
    assert!(rv.is_empty(), "{rv:?}");
    let (_, _, nv) = run(&p, FreeBeforeFlush, &ops);
    println!("free-before-flush: {:?}", summary(&nv));
    assert!(
        nv.iter()
            .any(|v| v.invariant == Invariant::I1 && v.step == 4),
        "expected I1 at step 4 (munmap), got {nv:?}"
    );
}

/// 6c8e2a256915: MADV_FREE, then an O_DIRECT read takes an extra reference, then reclaim.
/// The reference aborts the discard; ignoring the reference count trips I5 at the reclaim.
#[test]
fn lazyfree_ignoring_refs_trips_i5() {
    let ops = common::lazyfree_with_extra_ref();
    let p = KernelProfile::default();
    let (rc, _, rv) = run(&p, Reference, &ops);
    assert!(rv.is_empty(), "{rv:?}");
    assert_eq!(rc.lazyfree_discard, 0);
    let (nc, _, nv) = run(&p, LazyfreeIgnoreRefs, &ops);
    println!("lazyfree-ignore-refs: {:?}", summary(&nv));
    assert_eq!(nc.lazyfree_discard, 1);
    assert!(
        nv.iter()
            .any(|v| v.invariant == Invariant::I5 && v.step == 5),
        "expected I5 at step 5 (reclaim), got {nv:?}"
    );
}

fn file_read_migration() -> Vec<Op> {
    vec![
        exec(1),
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
        access(0, BASE, AccessKind::Read),
        Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Va {
                mm: MmId(1),
                va: BASE,
            },
        },
    ]
}

/// Restoring dirty on a clean file folio breaches the A/D contract on `pte.dirty` at that
/// page; the real candidate on the same ops does not.
#[test]
fn dirty_on_clean_restore_breaches_ad_contract() {
    let p = KernelProfile::default();
    let ops = file_read_migration();
    let (rc, rs, _) = run(&p, Reference, &ops);
    let k = ad_preserve::contract(Mode::Lockstep, p.base, p.mig_ad_supported);
    let reference = Observed {
        counters: &rc,
        snapshot: &rs,
    };
    let (gc, gs, _) = run(&p, AdPreserve, &ops);
    let good = k.check(
        reference,
        Observed {
            counters: &gc,
            snapshot: &gs,
        },
    );
    assert!(good.is_empty(), "{good:#?}");
    let (nc, ns, _) = run(&p, DirtyOnCleanRestore, &ops);
    let b = k.check(
        reference,
        Observed {
            counters: &nc,
            snapshot: &ns,
        },
    );
    for x in &b {
        println!("dirty-on-clean-restore: {x}");
    }
    let key = format!("mm1 {BASE:#x}");
    assert!(
        b.iter()
            .any(|x| x.subject == Subject::Field && x.field == "pte.dirty" && x.key == key),
        "expected a pte.dirty breach at {key}, got {b:#?}"
    );
}

/// A private file mapping: 64 pages read (file folios), page 0 then written (COW anon folio).
/// Eviction isolates the file folios; the anon neighbour stays on its LRU, so look-around
/// promotes it. Promoting without clearing A breaches the relation
/// `gen_promote_lookaround <= a_cleared_lookaround`.
#[test]
fn promote_without_clear_breaches_lookaround_contract() {
    let (p, ops) = common::promote_control();
    let (rc, rs, _) = run(&p, Reference, &ops);
    let k = lookaround::contract(Mode::FreeRunning, 64);
    let reference = Observed {
        counters: &rc,
        snapshot: &rs,
    };
    let (gc, gs, gv) = run(&p, LookAround::new(Base::Knew), &ops);
    assert!(gv.is_empty(), "{gv:?}");
    let good = k.check(
        reference,
        Observed {
            counters: &gc,
            snapshot: &gs,
        },
    );
    assert!(good.is_empty(), "{good:#?}");
    let (nc, ns, _) = run(&p, PromoteWithoutClear(LookAround::new(Base::Knew)), &ops);
    println!(
        "promote-without-clear: gen_promote_lookaround {} a_cleared_lookaround {}",
        nc.gen_promote_lookaround, nc.a_cleared_lookaround
    );
    let b = k.check(
        reference,
        Observed {
            counters: &nc,
            snapshot: &ns,
        },
    );
    for x in &b {
        println!("promote-without-clear: {x}");
    }
    assert!(
        b.iter()
            .any(|x| x.subject == Subject::Relation
                && x.field.starts_with("gen_promote_lookaround <=")),
        "expected the promote/clear relation to break, got {b:#?}"
    );
}

/// The free-running contract (S tier only) still catches a lost or extra write: the same
/// ops plus one more store give a different content token for that page.
#[test]
fn free_running_contract_catches_content_difference() {
    let p = KernelProfile::default();
    let ops = vec![exec(1), anon(2), access(0, BASE, AccessKind::Write)];
    let mut more = ops.clone();
    more.push(access(0, BASE, AccessKind::Write));
    let (rc, rs, _) = run(&p, Reference, &ops);
    let (cc, cs, _) = run(&p, Reference, &more);
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
    let key = format!("mm1 {BASE:#x}");
    assert!(
        b.iter().any(|x| x.field == "page.content" && x.key == key),
        "expected a page.content breach at {key}, got {b:#?}"
    );
    // Counters may differ freely in free-running mode: only fields are reported.
    assert!(b.iter().all(|x| x.subject == Subject::Field), "{b:#?}");
}
