//! Unit tests per operation against hand-computed expectations from the kernel rules
//! (mm-semantics B, C.3, D), plus negative controls that must trip their invariant.

use mmreplay_reference::op::{madv, map, prot};
use mmreplay_reference::snapshot::PteState;
use mmreplay_reference::{
    AccessKind, FaultClass, FileId, FileKind, FileRef, HoldId, Invariant, KernelProfile,
    LazyfreeCheck, MigAd, MigRestoreCtx, MigrateTarget, MmId, Model, Op, OpOutcome, Policy,
    Reference, UnshareCtx,
};

const A: u64 = 0x7000_0000;
const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;

fn profile(nr_cpus: u32) -> KernelProfile {
    KernelProfile {
        nr_cpus,
        full_check_every: 1,
        ..KernelProfile::default()
    }
}

fn ok<P: Policy>(m: &mut Model<P>, op: Op) -> OpOutcome {
    match m.apply(&op) {
        Ok(o) => o,
        Err(e) => panic!("op {op:?} failed: {e}"),
    }
}

fn start<P: Policy>(p: P, nr_cpus: u32) -> Model<P> {
    let mut m = Model::new(profile(nr_cpus), p);
    ok(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
    );
    m
}

fn mmap_anon<P: Policy>(m: &mut Model<P>, mm: u32, addr: u64, len: u64) {
    ok(
        m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(mm),
            addr,
            len,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
    );
}

fn touch<P: Policy>(m: &mut Model<P>, cpu: u32, mm: u32, va: u64, kind: AccessKind) -> OpOutcome {
    ok(
        m,
        Op::Access {
            cpu,
            mm: MmId(mm),
            va,
            kind,
        },
    )
}

fn pte<P: Policy>(m: &Model<P>, mm: u32, va: u64) -> Option<PteState> {
    let s = m.snapshot();
    let x = s.mms.iter().find(|x| x.id == MmId(mm))?;
    x.ptes.iter().find(|p| p.va == va).map(|p| p.state.clone())
}

fn folio<P: Policy>(m: &Model<P>, mm: u32, va: u64) -> mmreplay_reference::snapshot::FolioSnap {
    let id = m.folio_at(MmId(mm), va).expect("mapped");
    m.snapshot()
        .folios
        .into_iter()
        .find(|f| f.id == id)
        .expect("folio")
}

fn no_violations<P: Policy>(m: &mut Model<P>) {
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

#[test]
fn anon_read_maps_zero_page_then_write_allocates() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, 4 * PAGE);
    assert_eq!(
        touch(&mut m, 0, 1, A, AccessKind::Read),
        OpOutcome::Fault(FaultClass::AnonZero)
    );
    assert_eq!(pte(&m, 1, A), Some(PteState::Zero));
    assert_eq!(
        touch(&mut m, 0, 1, A, AccessKind::Write),
        OpOutcome::Fault(FaultClass::CowCopy)
    );
    let f = folio(&m, 1, A);
    assert!(f.anon_exclusive && f.mapcount == 1 && f.refcount == 1);
    assert_eq!(
        touch(&mut m, 0, 1, A + PAGE, AccessKind::Write),
        OpOutcome::Fault(FaultClass::AnonNew)
    );
    match pte(&m, 1, A + PAGE) {
        Some(PteState::Present {
            write,
            young,
            dirty,
            ..
        }) => assert!(write && young && dirty),
        other => panic!("{other:?}"),
    }
    // Replacing the zero page is a ptep_clear_flush: one local flush, no IPI (only CPU 0).
    assert_eq!(m.counters().tlb_flush_local, 1);
    assert_eq!(m.counters().ipi_sends_shootdown, 0);
    no_violations(&mut m);
}

#[test]
fn fork_write_protects_and_clears_pae_then_cow_copies() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    let before = m.counters().clone();
    ok(
        &mut m,
        Op::Fork {
            cpu: 0,
            parent: MmId(1),
            child: MmId(2),
        },
    );
    // Both PTEs read-only, PAE cleared, mapcount 2, child PTE old.
    match (pte(&m, 1, A), pte(&m, 2, A)) {
        (
            Some(PteState::Present {
                folio: p,
                write: pw,
                young: py,
                ..
            }),
            Some(PteState::Present {
                folio: c,
                write: cw,
                young: cy,
                ..
            }),
        ) => {
            assert_eq!(p, c);
            assert!(!pw && !cw);
            assert!(py && !cy);
        }
        other => panic!("{other:?}"),
    }
    let f = folio(&m, 1, A);
    assert!(!f.anon_exclusive);
    assert_eq!((f.mapcount, f.refcount), (2, 2));
    // dup_mmap ends with flush_tlb_mm(oldmm): CPU 0 runs the parent alone → local flush.
    assert_eq!(m.counters().tlb_flush_local, before.tlb_flush_local + 1);
    assert_eq!(m.counters().ipi_sends_shootdown, 0);

    // Write in the parent: copy, one flush (flush_tlb_page), no IPI (no other CPU runs mm1).
    let c0 = m.counters().clone();
    assert_eq!(
        touch(&mut m, 0, 1, A, AccessKind::Write),
        OpOutcome::Fault(FaultClass::CowCopy)
    );
    let c1 = m.counters().clone();
    assert_eq!(
        c1.tlb_flush_local + c1.tlb_flush_remote,
        c0.tlb_flush_local + c0.tlb_flush_remote + 1
    );
    assert_eq!(c1.ipi_sends_shootdown, c0.ipi_sends_shootdown);
    assert_ne!(m.folio_at(MmId(1), A), m.folio_at(MmId(2), A));
    let child = folio(&m, 2, A);
    assert_eq!(child.mapcount, 1);
    // Child's write: the folio is now mapped once with refcount 1 → reuse (wp_can_reuse_anon_folio).
    assert_eq!(
        touch(&mut m, 1, 2, A, AccessKind::Write),
        OpOutcome::Fault(FaultClass::CowReuse)
    );
    assert!(folio(&m, 2, A).anon_exclusive);
    no_violations(&mut m);
}

#[test]
fn cow_in_multithreaded_mm_sends_ipi() {
    let mut m = start(Reference, 3);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Fork {
            cpu: 0,
            parent: MmId(1),
            child: MmId(2),
        },
    );
    // A second thread of mm1 runs on CPU 1 and caches the page.
    touch(&mut m, 1, 1, A, AccessKind::Read);
    let c0 = m.counters().clone();
    touch(&mut m, 0, 1, A, AccessKind::Write);
    let c1 = m.counters();
    assert_eq!(c1.tlb_flush_remote, c0.tlb_flush_remote + 1);
    assert_eq!(c1.ipi_sends_shootdown, c0.ipi_sends_shootdown + 1);
    assert_eq!(c1.ipi_targets_shootdown, c0.ipi_targets_shootdown + 1);
    no_violations(&mut m);
}

#[test]
fn fork_copies_pinned_exclusive_page() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Pin {
            cpu: 0,
            mm: MmId(1),
            va: A,
            write: true,
            hold: HoldId(7),
        },
    );
    ok(
        &mut m,
        Op::Fork {
            cpu: 0,
            parent: MmId(1),
            child: MmId(2),
        },
    );
    assert_eq!(m.counters().fork_pinned_copies, 1);
    assert_ne!(m.folio_at(MmId(1), A), m.folio_at(MmId(2), A));
    let p = folio(&m, 1, A);
    assert!(p.anon_exclusive && p.pincount == 1);
    // The parent keeps its writable PTE (no COW needed for an exclusive pinned page).
    assert!(matches!(
        pte(&m, 1, A),
        Some(PteState::Present { write: true, .. })
    ));
    ok(&mut m, Op::Unpin { hold: HoldId(7) });
    no_violations(&mut m);
}

#[test]
fn read_pin_on_shared_anon_page_unshares_first() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Fork {
            cpu: 0,
            parent: MmId(1),
            child: MmId(2),
        },
    );
    ok(
        &mut m,
        Op::Pin {
            cpu: 0,
            mm: MmId(1),
            va: A,
            write: false,
            hold: HoldId(1),
        },
    );
    let f = folio(&m, 1, A);
    assert!(f.anon_exclusive && f.pincount == 1 && f.mapcount == 1);
    no_violations(&mut m);
}

#[test]
fn munmap_ipis_follow_cpumask_and_lazy_rules() {
    let mut m = start(Reference, 4);
    mmap_anon(&mut m, 1, A, 8 * PAGE);
    for cpu in 0..3 {
        touch(&mut m, cpu, 1, A + u64::from(cpu) * PAGE, AccessKind::Write);
    }
    // CPU 2 goes idle (lazy TLB: still in mm_cpumask, still caches).
    ok(&mut m, Op::Switch { cpu: 2, next: None });
    // MADV_DONTNEED frees no tables: lazy CPU 2 is skipped, CPU 1 gets the IPI.
    let c0 = m.counters().clone();
    ok(
        &mut m,
        Op::Madvise {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 8 * PAGE,
            advice: madv::DONTNEED,
        },
    );
    let c1 = m.counters().clone();
    assert_eq!(c1.ipi_sends_shootdown - c0.ipi_sends_shootdown, 1);
    assert_eq!(c1.ipi_targets_shootdown - c0.ipi_targets_shootdown, 1);
    // munmap of the whole VMA frees the PTE table: freed_tables → lazy CPU 2 included.
    touch(&mut m, 1, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 8 * PAGE,
        },
    );
    let c2 = m.counters().clone();
    assert_eq!(c2.ipi_sends_shootdown - c1.ipi_sends_shootdown, 1);
    assert_eq!(c2.ipi_targets_shootdown - c1.ipi_targets_shootdown, 2);
    assert!(c2.tables_freed > c1.tables_freed);
    no_violations(&mut m);
}

#[test]
fn mprotect_flushes_when_the_pte_write_bit_changes() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, 2 * PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    let c0 = m.counters().clone();
    ok(
        &mut m,
        Op::Mprotect {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 2 * PAGE,
            prot: prot::READ,
        },
    );
    let c1 = m.counters().clone();
    assert_eq!(c1.tlb_flush_local, c0.tlb_flush_local + 1);
    assert!(matches!(
        pte(&m, 1, A),
        Some(PteState::Present { write: false, .. })
    ));
    ok(
        &mut m,
        Op::Mprotect {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 2 * PAGE,
            prot: prot::READ | prot::WRITE,
        },
    );
    let c2 = m.counters().clone();
    // x86 pte_flags_need_flush: _PAGE_RW is flush_on_change, so the upgrade flushes too.
    assert_eq!(c2.tlb_flush_local, c1.tlb_flush_local + 1);
    // can_change_pte_writable: exclusive anon → writable again without a fault.
    assert!(matches!(
        pte(&m, 1, A),
        Some(PteState::Present { write: true, .. })
    ));
    assert_eq!(
        touch(&mut m, 0, 1, A + PAGE, AccessKind::Exec),
        OpOutcome::Segv
    );
    // Same protection again: no PTE flag changes, no flush.
    let c3 = m.counters().clone();
    ok(
        &mut m,
        Op::Mprotect {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 2 * PAGE,
            prot: prot::READ | prot::WRITE,
        },
    );
    assert_eq!(m.counters().tlb_flush_local, c3.tlb_flush_local);
    no_violations(&mut m);
}

#[test]
fn reclaim_swaps_out_and_swap_in_refaults_with_same_identity() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, 4 * PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    let id = m.folio_at(MmId(1), A).unwrap();
    let content = folio(&m, 1, A).content;
    // Aging clears the A bit (page-table walk); a later rmap walk finds it old → evict.
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    let c = m.counters().clone();
    assert_eq!(c.evictions, 1, "{c:?}");
    assert_eq!(c.swap_out, 1);
    assert!(c.rmap_walks >= 2 && c.a_cleared_pt_walk >= 1);
    assert!(matches!(
        pte(&m, 1, A),
        Some(PteState::Swap {
            exclusive: true,
            ..
        })
    ));
    assert_eq!(
        touch(&mut m, 0, 1, A, AccessKind::Read),
        OpOutcome::Fault(FaultClass::SwapIn)
    );
    assert_eq!(m.folio_at(MmId(1), A), Some(id));
    assert_eq!(folio(&m, 1, A).content, content);
    assert_eq!(m.counters().refaults, 1);
    assert!(folio(&m, 1, A).anon_exclusive);
    no_violations(&mut m);
}

#[test]
fn dirty_shared_file_page_written_back_before_eviction() {
    let mut m = start(Reference, 2);
    let f = FileRef {
        id: FileId(9),
        kind: FileKind::Regular,
    };
    ok(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
            prot: 3,
            flags: map::SHARED,
            file: Some(f),
            pgoff: 0,
        },
    );
    assert_eq!(
        touch(&mut m, 0, 1, A, AccessKind::Write),
        OpOutcome::Fault(FaultClass::FileWriteShared)
    );
    let content = folio(&m, 1, A).content;
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    assert_eq!(m.counters().writeback, 1);
    assert_eq!(m.counters().evictions, 1);
    // Re-read: same identity, the written content came back from "disk", refault counted.
    assert_eq!(
        touch(&mut m, 0, 1, A, AccessKind::Read),
        OpOutcome::Fault(FaultClass::FileRead)
    );
    assert_eq!(folio(&m, 1, A).content, content);
    assert_eq!(m.counters().refaults, 1);
    no_violations(&mut m);
}

#[test]
fn young_pte_is_activated_not_evicted() {
    let p = KernelProfile {
        lru_gen_mm_walk: false,
        ..profile(2)
    };
    let mut m2 = Model::new(p, Reference);
    ok(
        &mut m2,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
    );
    mmap_anon(&mut m2, 1, A, PAGE);
    touch(&mut m2, 0, 1, A, AccessKind::Write);
    ok(
        &mut m2,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    let c = m2.counters();
    // Without page-table walks, the rmap walk is the only A-bit consumer: first pass clears it
    // and keeps the folio (one referencing PTE, PG_referenced was clear).
    assert!(c.a_cleared_rmap_pte >= 1, "{c:?}");
    assert!(c.rmap_walks >= 1);
    no_violations(&mut m2);
}

#[test]
fn madv_free_discards_clean_lazyfree_and_aborts_on_redirty() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, 2 * PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    touch(&mut m, 0, 1, A + PAGE, AccessKind::Write);
    ok(
        &mut m,
        Op::Madvise {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 2 * PAGE,
            advice: madv::FREE,
        },
    );
    assert!(!folio(&m, 1, A).swapbacked);
    // Redirty the second page: reclaim must keep it.
    touch(&mut m, 0, 1, A + PAGE, AccessKind::Write);
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 4,
        },
    );
    let c = m.counters();
    assert_eq!(c.lazyfree_discard, 1, "{c:?}");
    assert_eq!(c.lazyfree_abort, 1);
    assert_eq!(pte(&m, 1, A), None);
    assert_eq!(
        touch(&mut m, 0, 1, A, AccessKind::Read),
        OpOutcome::Fault(FaultClass::AnonZero)
    );
    no_violations(&mut m);
}

#[test]
fn madv_free_with_dio_reference_is_not_discarded() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Madvise {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
            advice: madv::FREE,
        },
    );
    ok(
        &mut m,
        Op::GetRef {
            cpu: 0,
            mm: MmId(1),
            va: A,
            hold: HoldId(3),
        },
    );
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 4,
        },
    );
    assert_eq!(m.counters().lazyfree_discard, 0);
    assert_eq!(m.counters().lazyfree_abort, 1);
    ok(
        &mut m,
        Op::PutRef {
            hold: HoldId(3),
            write: true,
        },
    );
    no_violations(&mut m);
}

#[test]
fn migration_reference_restores_old_clean_and_counts_hw_sets_after() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    let id = m.folio_at(MmId(1), A);
    let pfn = m.pfn_at(MmId(1), A).unwrap();
    assert_eq!(
        ok(
            &mut m,
            Op::Migrate {
                cpu: 1,
                target: MigrateTarget::Pfn(pfn)
            }
        ),
        OpOutcome::Done
    );
    assert_ne!(m.pfn_at(MmId(1), A), Some(pfn));
    assert_eq!(m.folio_at(MmId(1), A), id);
    match pte(&m, 1, A) {
        Some(PteState::Present {
            write,
            young,
            dirty,
            ..
        }) => assert!(write && !young && !dirty),
        other => panic!("{other:?}"),
    }
    let f = folio(&m, 1, A);
    assert!(f.dirty && f.anon_exclusive);
    let c = m.counters().clone();
    assert_eq!(
        (
            c.mig_entries_set,
            c.mig_entries_removed,
            c.mig_restored_young
        ),
        (1, 1, 0)
    );
    touch(&mut m, 0, 1, A, AccessKind::Write);
    assert_eq!(m.counters().hw_a_sets_after_mig, 1);
    assert_eq!(m.counters().hw_d_sets_after_mig, 1);
    no_violations(&mut m);
}

#[test]
fn migration_of_pinned_page_aborts() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Pin {
            cpu: 0,
            mm: MmId(1),
            va: A,
            write: false,
            hold: HoldId(1),
        },
    );
    let pfn = m.pfn_at(MmId(1), A);
    let r = ok(
        &mut m,
        Op::Migrate {
            cpu: 1,
            target: MigrateTarget::Va { mm: MmId(1), va: A },
        },
    );
    assert_eq!(r, OpOutcome::MigrationAborted);
    assert_eq!(m.pfn_at(MmId(1), A), pfn);
    no_violations(&mut m);
}

#[test]
fn bad_ops_are_errors_not_panics() {
    let mut m = start(Reference, 2);
    assert!(m
        .apply(&Op::Munmap {
            cpu: 0,
            mm: MmId(42),
            addr: A,
            len: PAGE
        })
        .is_err());
    assert!(m
        .apply(&Op::Fault {
            cpu: 9,
            mm: MmId(1),
            va: A,
            kind: AccessKind::Read
        })
        .is_err());
    assert!(m
        .apply(&Op::Fork {
            cpu: 0,
            parent: MmId(1),
            child: MmId(1)
        })
        .is_err());
    assert!(m.apply(&Op::Unpin { hold: HoldId(5) }).is_err());
    assert!(m
        .apply(&Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: u64::MAX - 10,
            len: 100
        })
        .is_err());
    assert!(m
        .apply(&Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Pfn(3)
        })
        .is_err());
    assert_eq!(m.steps(), 7);
    assert_eq!(touch(&mut m, 0, 1, A, AccessKind::Read), OpOutcome::Segv);
    no_violations(&mut m);
}

// ----- hugetlb PMD sharing: mm-semantics C.3 worked case -----

/// Batched unshare (8ce720d5bd91, V2) as a test-local policy.
struct Batched;
impl Policy for Batched {
    fn name(&self) -> &'static str {
        "batched"
    }
    fn pmd_unshare(&mut self, ctx: &mut UnshareCtx<'_>) {
        if ctx.share_count_after() == 0 {
            ctx.set_fully_unshared_tables(true);
        }
    }
    fn unshare_flush(&mut self, ctx: &mut UnshareCtx<'_>) {
        if ctx.fully_unshared_tables() {
            ctx.table_sync_ipi();
            ctx.set_fully_unshared_tables(false);
        }
    }
}

/// V0: no sync at all (negative control, must trip I3).
struct NoSync;
impl Policy for NoSync {
    fn pmd_unshare(&mut self, _ctx: &mut UnshareCtx<'_>) {}
}

/// Fork K children of a parent mapping G GiB of MAP_SHARED hugetlb, then let them exit.
fn fork_exit_hugetlb<P: Policy>(p: P, k: u32, g: u64) -> Model<P> {
    let mut m = start(p, 4);
    let base = 4 * GIB;
    ok(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: base,
            len: g * GIB,
            prot: 3,
            flags: map::SHARED | map::ANONYMOUS | map::HUGETLB,
            file: None,
            pgoff: 0,
        },
    );
    for i in 0..g {
        assert_eq!(
            touch(&mut m, 0, 1, base + i * GIB, AccessKind::Write),
            OpOutcome::Fault(FaultClass::Hugetlb)
        );
    }
    for c in 0..k {
        ok(
            &mut m,
            Op::Fork {
                cpu: 0,
                parent: MmId(1),
                child: MmId(10 + c),
            },
        );
    }
    assert_eq!(m.counters().pmd_shares, u64::from(k) * g);
    let s = m.snapshot();
    let parent = s.mms.iter().find(|x| x.id == MmId(1)).unwrap();
    assert!(parent.hugetlb_tables.iter().all(|t| t.pt_share_count == k));
    // A child sees the parent's data through the shared table without faulting.
    let f0 = m.counters().faults;
    touch(&mut m, 1, 10, base, AccessKind::Read);
    assert_eq!(m.counters().faults, f0);
    for c in 0..k {
        ok(
            &mut m,
            Op::Exit {
                cpu: 1,
                mm: MmId(10 + c),
            },
        );
    }
    assert_eq!(m.counters().pmd_unshares, u64::from(k) * g);
    let s = m.snapshot();
    let parent = s.mms.iter().find(|x| x.id == MmId(1)).unwrap();
    assert!(parent.hugetlb_tables.iter().all(|t| t.pt_share_count == 0));
    m
}

#[test]
fn c3_reference_sends_k_times_g_table_sync_ipis() {
    let (k, g) = (3, 2);
    let mut m = fork_exit_hugetlb(Reference, k, g);
    let c = m.counters();
    assert_eq!(c.ipi_sends_table_sync, u64::from(k) * g);
    assert_eq!(c.ipi_targets_table_sync, u64::from(k) * g * 3);
    no_violations(&mut m);
}

#[test]
fn c3_batched_sends_one_table_sync_ipi() {
    let mut m = fork_exit_hugetlb(Batched, 3, 2);
    assert_eq!(m.counters().ipi_sends_table_sync, 1);
    assert_eq!(m.counters().pmd_unshares, 6);
    no_violations(&mut m);
}

#[test]
fn c3_three_sharers_one_munmaps() {
    // Reference G syncs, batched 0 (pt_share_count stays >= 1).
    fn run<P: Policy>(p: P) -> Model<P> {
        let mut m = start(p, 4);
        let base = 4 * GIB;
        ok(
            &mut m,
            Op::Mmap {
                cpu: 0,
                mm: MmId(1),
                addr: base,
                len: 2 * GIB,
                prot: 3,
                flags: map::SHARED | map::ANONYMOUS | map::HUGETLB,
                file: None,
                pgoff: 0,
            },
        );
        touch(&mut m, 0, 1, base, AccessKind::Write);
        touch(&mut m, 0, 1, base + GIB, AccessKind::Write);
        ok(
            &mut m,
            Op::Fork {
                cpu: 0,
                parent: MmId(1),
                child: MmId(2),
            },
        );
        ok(
            &mut m,
            Op::Fork {
                cpu: 0,
                parent: MmId(1),
                child: MmId(3),
            },
        );
        ok(
            &mut m,
            Op::Munmap {
                cpu: 1,
                mm: MmId(2),
                addr: base,
                len: 2 * GIB,
            },
        );
        m
    }
    let mut r = run(Reference);
    assert_eq!(r.counters().ipi_sends_table_sync, 2);
    let mut b = run(Batched);
    assert_eq!(b.counters().ipi_sends_table_sync, 0);
    assert_eq!(r.snapshot().mms, b.snapshot().mms);
    no_violations(&mut r);
    no_violations(&mut b);
}

#[test]
fn negative_control_no_unshare_sync_trips_i3() {
    let m = fork_exit_hugetlb(NoSync, 3, 2);
    assert_eq!(m.counters().ipi_sends_table_sync, 0);
    assert!(
        m.violations().iter().any(|v| v.invariant == Invariant::I3),
        "{:#?}",
        m.violations()
    );
}

// ----- other negative controls -----

struct FreeBeforeFlush;
impl Policy for FreeBeforeFlush {
    fn free_pages_before_flush(&self) -> bool {
        true
    }
}

#[test]
fn negative_control_free_before_flush_trips_i1() {
    let mut m = start(FreeBeforeFlush, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    touch(&mut m, 1, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
        },
    );
    assert!(
        m.violations().iter().any(|v| v.invariant == Invariant::I1),
        "{:#?}",
        m.violations()
    );
    // The same sequence under the reference is clean.
    let mut r = start(Reference, 2);
    mmap_anon(&mut r, 1, A, PAGE);
    touch(&mut r, 0, 1, A, AccessKind::Write);
    touch(&mut r, 1, 1, A, AccessKind::Write);
    ok(
        &mut r,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
        },
    );
    no_violations(&mut r);
}

#[test]
fn negative_control_free_before_flush_in_reclaim_trips_i1() {
    let mut m = start(FreeBeforeFlush, 2);
    let f = FileRef {
        id: FileId(1),
        kind: FileKind::Regular,
    };
    ok(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
            prot: 3,
            flags: map::SHARED,
            file: Some(f),
            pgoff: 0,
        },
    );
    touch(&mut m, 0, 1, A, AccessKind::Write);
    touch(&mut m, 1, 1, A, AccessKind::Write);
    // Reclaim on CPU 1 with CPU 0 also running the mm: the unmap flush is batched.
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    assert!(
        m.violations().iter().any(|v| v.invariant == Invariant::I1),
        "{:#?}",
        m.violations()
    );
}

struct DiscardAlways;
impl Policy for DiscardAlways {
    fn lazyfree_may_discard(&mut self, _c: &LazyfreeCheck) -> bool {
        true
    }
}

#[test]
fn negative_control_lazyfree_ignoring_extra_refs_trips_i5() {
    let mut m = start(DiscardAlways, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Madvise {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
            advice: madv::FREE,
        },
    );
    ok(
        &mut m,
        Op::GetRef {
            cpu: 0,
            mm: MmId(1),
            va: A,
            hold: HoldId(3),
        },
    );
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 4,
        },
    );
    assert_eq!(m.counters().lazyfree_discard, 1);
    ok(
        &mut m,
        Op::PutRef {
            hold: HoldId(3),
            write: true,
        },
    );
    assert!(
        m.violations().iter().any(|v| v.invariant == Invariant::I5),
        "{:#?}",
        m.violations()
    );
}

struct DirtyRestore;
impl Policy for DirtyRestore {
    fn migration_restore_ad(&mut self, c: &MigRestoreCtx) -> MigAd {
        MigAd {
            young: c.entry_young,
            dirty: true,
        }
    }
}

#[test]
fn negative_control_dirty_restore_on_clean_folio_trips_i7() {
    let mut m = start(DirtyRestore, 2);
    let f = FileRef {
        id: FileId(1),
        kind: FileKind::Regular,
    };
    ok(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
            prot: 1,
            flags: map::PRIVATE,
            file: Some(f),
            pgoff: 0,
        },
    );
    touch(&mut m, 0, 1, A, AccessKind::Read);
    ok(
        &mut m,
        Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Va { mm: MmId(1), va: A },
        },
    );
    assert!(
        m.violations().iter().any(|v| v.invariant == Invariant::I7),
        "{:#?}",
        m.violations()
    );
}

#[test]
fn counters_pairs_are_stable_and_named() {
    let m = start(Reference, 2);
    let names: Vec<&str> = m.counters().pairs().iter().map(|(n, _)| *n).collect();
    for want in [
        "faults",
        "tlb_flush_local",
        "tlb_flush_remote",
        "ipi_sends_shootdown",
        "ipi_sends_table_sync",
        "ipi_targets",
        "rmap_walks",
        "a_bit_clears",
        "hw_a_sets",
        "hw_d_sets",
        "hw_a_sets_after_mig",
        "mig_entries_set",
        "mig_restored_young",
        "mig_restored_dirty",
        "evictions",
        "refaults",
        "pmd_shares",
        "pmd_unshares",
    ] {
        assert!(names.contains(&want), "{want}");
    }
    assert_eq!(names, mmreplay_reference::Counters::NAMES);
    assert_eq!(m.counters().get("execs"), Some(1));
}

#[test]
fn snapshot_text_and_hash_are_canonical() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, 2 * PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    let s = m.snapshot();
    let t = s.to_text();
    assert!(t.contains("mm1 vma 0x70000000-0x70002000 rw-p anon"), "{t}");
    assert!(t.contains("mm1 pte 0x70000000 folio=1 w=1 a=1 d=1"), "{t}");
    assert_eq!(s.state_hash(), m.state_hash());
    touch(&mut m, 0, 1, A + PAGE, AccessKind::Write);
    assert_ne!(s.state_hash(), m.state_hash());
}

#[test]
fn engine_trait_objects_run_side_by_side() {
    use mmreplay_reference::Engine;
    let mut engines: Vec<Box<dyn Engine + Send>> = vec![
        Box::new(Model::new(profile(2), Reference)),
        Box::new(Model::new(profile(2), Batched)),
    ];
    let ops = [
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
            prot: 3,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
        Op::Access {
            cpu: 0,
            mm: MmId(1),
            va: A,
            kind: AccessKind::Write,
        },
    ];
    for e in engines.iter_mut() {
        for op in &ops {
            e.apply(op).unwrap();
        }
        e.finish();
    }
    assert_eq!(engines[0].policy_name(), "reference");
    assert_eq!(engines[1].policy_name(), "batched");
    assert_eq!(engines[0].state_hash(), engines[1].state_hash());
    assert_eq!(engines[0].counters(), engines[1].counters());
    assert_eq!(engines[0].steps(), 3);
}

#[test]
fn trim_by_flush_ipis_wrong_cpu_once_then_trims() {
    let p = KernelProfile {
        cpumask_mode: mmreplay_reference::CpumaskMode::TrimByFlush,
        ..profile(2)
    };
    let mut m = Model::new(p, Reference);
    ok(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
    );
    ok(
        &mut m,
        Op::Exec {
            cpu: 1,
            old: None,
            new: MmId(2),
        },
    );
    mmap_anon(&mut m, 1, A, 2 * PAGE);
    touch(&mut m, 1, 1, A, AccessKind::Write); // CPU 1 runs mm1 ...
    ok(
        &mut m,
        Op::Switch {
            cpu: 1,
            next: Some(MmId(2)),
        },
    ); // ... then leaves it (bit stays)
    touch(&mut m, 0, 1, A + PAGE, AccessKind::Write);
    // should_trim_cpumask is due only a second after mm creation (t = 0): see
    // tests/cpumask_trim.rs for the flushes before that.
    ok(
        &mut m,
        Op::Clock {
            now_ns: 1_500_000_000,
        },
    );
    let c0 = m.counters().clone();
    ok(
        &mut m,
        Op::Mprotect {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 2 * PAGE,
            prot: prot::READ,
        },
    );
    let c1 = m.counters().clone();
    assert_eq!(
        c1.ipi_sends_shootdown - c0.ipi_sends_shootdown,
        1,
        "TLB_REMOTE_WRONG_CPU IPI"
    );
    ok(
        &mut m,
        Op::Mprotect {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 2 * PAGE,
            prot: 0,
        },
    );
    let c2 = m.counters().clone();
    assert_eq!(
        c2.ipi_sends_shootdown, c1.ipi_sends_shootdown,
        "CPU 1 was trimmed"
    );
    assert_eq!(c2.tlb_flush_local, c1.tlb_flush_local + 1);
    no_violations(&mut m);
}

#[test]
fn exec_replaces_mm_and_tears_down_old() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, PAGE);
    touch(&mut m, 0, 1, A, AccessKind::Write);
    ok(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: Some(MmId(1)),
            new: MmId(5),
        },
    );
    assert!(!m.has_mm(MmId(1)));
    assert_eq!(m.mm_ids(), vec![MmId(5)]);
    assert!(m.snapshot().folios.is_empty());
    assert_eq!(m.snapshot().cpus[0].loaded, Some(MmId(5)));
    no_violations(&mut m);
}

#[test]
fn mremap_moves_ptes_and_rmap() {
    let mut m = start(Reference, 2);
    mmap_anon(&mut m, 1, A, 2 * PAGE);
    touch(&mut m, 0, 1, A + PAGE, AccessKind::Write);
    let id = m.folio_at(MmId(1), A + PAGE);
    let b = A + 0x100_0000;
    ok(
        &mut m,
        Op::Mremap {
            cpu: 0,
            mm: MmId(1),
            old_addr: A,
            old_len: 2 * PAGE,
            new_addr: b,
            new_len: 4 * PAGE,
        },
    );
    assert_eq!(m.folio_at(MmId(1), b + PAGE), id);
    assert_eq!(pte(&m, 1, A + PAGE), None);
    assert_eq!(touch(&mut m, 0, 1, A, AccessKind::Read), OpOutcome::Segv);
    // The moved page is still found by rmap: reclaim can swap it out.
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    assert!(matches!(pte(&m, 1, b + PAGE), Some(PteState::Swap { .. })));
    no_violations(&mut m);
}

#[test]
fn brk_grows_and_shrinks_heap() {
    let mut m = start(Reference, 2);
    ok(
        &mut m,
        Op::Brk {
            cpu: 0,
            mm: MmId(1),
            brk: A,
        },
    );
    ok(
        &mut m,
        Op::Brk {
            cpu: 0,
            mm: MmId(1),
            brk: A + 3 * PAGE + 5,
        },
    );
    assert_eq!(
        touch(&mut m, 0, 1, A + 3 * PAGE, AccessKind::Write),
        OpOutcome::Fault(FaultClass::AnonNew)
    );
    ok(
        &mut m,
        Op::Brk {
            cpu: 0,
            mm: MmId(1),
            brk: A + PAGE,
        },
    );
    assert_eq!(pte(&m, 1, A + 3 * PAGE), None);
    assert_eq!(
        touch(&mut m, 0, 1, A + 3 * PAGE, AccessKind::Read),
        OpOutcome::Segv
    );
    let s = m.snapshot();
    assert_eq!(s.mms[0].vmas.len(), 1);
    assert_eq!(s.mms[0].vmas[0].end, A + PAGE);
    no_violations(&mut m);
}

#[test]
fn migration_batches_flush_on_knew_and_flushes_per_pte_on_k61() {
    fn run(base: mmreplay_reference::Base) -> mmreplay_reference::Counters {
        let p = KernelProfile { base, ..profile(3) };
        let mut m = Model::new(p, Reference);
        ok(
            &mut m,
            Op::Exec {
                cpu: 0,
                old: None,
                new: MmId(1),
            },
        );
        mmap_anon(&mut m, 1, A, PAGE);
        touch(&mut m, 0, 1, A, AccessKind::Write);
        touch(&mut m, 1, 1, A, AccessKind::Read);
        ok(
            &mut m,
            Op::Migrate {
                cpu: 2,
                target: MigrateTarget::Va { mm: MmId(1), va: A },
            },
        );
        m.finish();
        assert!(m.violations().is_empty());
        m.counters().clone()
    }
    let knew = run(mmreplay_reference::Base::Knew);
    let k61 = run(mmreplay_reference::Base::K61);
    // Both: one remote flush reaching CPUs 0 and 1; KNEW's is the full batch flush.
    assert_eq!((knew.tlb_flush_remote, knew.ipi_targets_shootdown), (1, 2));
    assert_eq!((k61.tlb_flush_remote, k61.ipi_targets_shootdown), (1, 2));
    assert_eq!(knew.tlb_flush_full, 1);
    assert_eq!(k61.tlb_flush_full, 0);
}

/// The engine's cheap checkpoint hash follows the canonical one: equal states give equal
/// values, and a state change that the canonical hash sees (here: an A bit and a new folio)
/// changes it too.
#[test]
fn progress_hash_tracks_state_hash() {
    let mut a = start(Reference, 2);
    let mut b = start(Reference, 2);
    mmap_anon(&mut a, 1, A, 4 * PAGE);
    mmap_anon(&mut b, 1, A, 4 * PAGE);
    touch(&mut a, 0, 1, A, AccessKind::Write);
    touch(&mut b, 0, 1, A, AccessKind::Write);
    assert_eq!(a.state_hash(), b.state_hash());
    assert_eq!(a.progress_hash(), b.progress_hash());
    touch(&mut b, 0, 1, A + PAGE, AccessKind::Write);
    assert_ne!(a.state_hash(), b.state_hash());
    assert_ne!(a.progress_hash(), b.progress_hash());
    assert_eq!(
        a.progress_hash(),
        a.snapshot().progress_hash(),
        "Model::progress_hash must be the snapshot's"
    );
}

/// Memcg reclaim (`try_to_free_mem_cgroup_pages`) evicts only folios charged to that memcg,
/// and its children inherit the memcg at fork; global reclaim may take anyone's.
#[test]
fn memcg_reclaim_takes_only_its_own_folios() {
    let mut m = start(Reference, 2);
    // mm1: outside any memcg; mm2 (exec'd, then set into memcg 7): the limited workload.
    ok(
        &mut m,
        Op::Exec {
            cpu: 1,
            old: None,
            new: MmId(2),
        },
    );
    ok(
        &mut m,
        Op::SetMemcg {
            mm: MmId(2),
            memcg: 7,
        },
    );
    mmap_anon(&mut m, 1, A, 8 * PAGE);
    mmap_anon(&mut m, 2, A, 8 * PAGE);
    for i in 0..8 {
        touch(&mut m, 0, 1, A + i * PAGE, AccessKind::Write);
        touch(&mut m, 1, 2, A + i * PAGE, AccessKind::Write);
    }
    // A child of mm2 inherits memcg 7.
    ok(
        &mut m,
        Op::Fork {
            cpu: 1,
            parent: MmId(2),
            child: MmId(3),
        },
    );
    ok(
        &mut m,
        Op::ReclaimMemcg {
            cpu: 1,
            nr_to_reclaim: 4,
            memcg: 7,
        },
    );
    let swapped = |m: &Model<Reference>, mm: u32| {
        (0..8)
            .filter(|i| matches!(pte(m, mm, A + i * PAGE), Some(PteState::Swap { .. })))
            .count()
    };
    assert!(m.counters().evictions >= 4, "{:?}", m.counters());
    assert_eq!(
        swapped(&m, 1),
        0,
        "memcg reclaim took a folio of another memcg"
    );
    assert!(swapped(&m, 2) >= 4);
    // mm3 (forked after SetMemcg) is charged to memcg 7 too: its pages are mm2's COW-shared
    // folios, so they go with them.
    ok(
        &mut m,
        Op::ReclaimMemcg {
            cpu: 1,
            nr_to_reclaim: 64,
            memcg: 9,
        },
    );
    assert_eq!(swapped(&m, 1), 0, "an empty memcg reclaims nothing");
    ok(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 64,
        },
    );
    assert!(swapped(&m, 1) > 0, "global reclaim takes from every memcg");
    no_violations(&mut m);
}
