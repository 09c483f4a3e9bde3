//! Migration flush batching, hand-computed from `mm/migrate.c` (6.3+, 7e12beb8ca2a) and
//! `arch/x86/mm/tlb.c`: `migrate_pages_batch` unmaps every folio of a batch with
//! `TTU_BATCH_FLUSH` (`should_defer_flush`: another CPU in `mm_cpumask`), then
//! `try_to_unmap_flush` flushes once (`arch_tlbbatch_flush`, `info->mm == NULL`: every non-lazy
//! CPU of the union mask) before moving them. 6.1 flushes each PTE as it is cleared.

use mmreplay_reference::op::{map, prot, MigrateBatchStep, MigrateTarget};
use mmreplay_reference::profile::{Base, CpumaskMode};
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, Reference};

const A: u64 = 0x7000_0000;
const PAGE: u64 = 4096;

fn apply(m: &mut Model<Reference>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

/// mm1 runs on CPUs 0 and 1 (two threads) and has written 4 pages.
fn setup(base: Base) -> Model<Reference> {
    let profile = KernelProfile {
        nr_cpus: 2,
        base,
        cpumask_mode: CpumaskMode::TrimByFlush,
        full_check_every: 1,
        ..KernelProfile::default()
    };
    let mut m = Model::new(profile, Reference);
    apply(&mut m, Op::Clock { now_ns: 0 });
    apply(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
    );
    apply(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 4 * PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
    );
    for cpu in 0..2 {
        for i in 0..4 {
            apply(
                &mut m,
                Op::Access {
                    cpu,
                    mm: MmId(1),
                    va: A + i * PAGE,
                    kind: AccessKind::Write,
                },
            );
        }
    }
    m
}

fn migrate(m: &mut Model<Reference>, i: u64) {
    apply(
        m,
        Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Va {
                mm: MmId(1),
                va: A + i * PAGE,
            },
        },
    );
}

fn step(m: &mut Model<Reference>, step: MigrateBatchStep) {
    apply(m, Op::MigrateBatch { cpu: 0, step });
}

#[test]
fn one_flush_per_batch() {
    let mut m = setup(Base::Knew);
    let before = m.counters().clone();
    step(&mut m, MigrateBatchStep::Start);
    for i in 0..4 {
        migrate(&mut m, i);
    }
    // Nothing is flushed before try_to_unmap_flush.
    assert_eq!(m.counters().tlb_flush_remote, before.tlb_flush_remote);
    step(&mut m, MigrateBatchStep::Flush);
    let c = m.counters();
    assert_eq!(c.migrations - before.migrations, 4);
    assert_eq!(c.tlb_flush_remote - before.tlb_flush_remote, 1);
    assert_eq!(c.ipi_sends_shootdown - before.ipi_sends_shootdown, 1);
    assert_eq!(c.ipi_targets_shootdown - before.ipi_targets_shootdown, 1);
    assert_eq!(m.violation_count(), 0, "{:?}", m.violations());
    // A second Flush has nothing left to flush.
    step(&mut m, MigrateBatchStep::Flush);
    assert_eq!(m.counters().tlb_flush_remote - before.tlb_flush_remote, 1);
}

#[test]
fn without_batch_boundaries_each_folio_flushes() {
    for base in [Base::Knew, Base::K61] {
        let mut m = setup(base);
        let before = m.counters().clone();
        for i in 0..4 {
            migrate(&mut m, i);
        }
        let c = m.counters();
        assert_eq!(c.tlb_flush_remote - before.tlb_flush_remote, 4, "{base:?}");
        assert_eq!(m.violation_count(), 0, "{:?}", m.violations());
    }
}

#[test]
fn k61_ignores_batch_boundaries() {
    // 6.1: try_to_migrate(folio, 0) flushes each PTE (ptep_clear_flush).
    let mut m = setup(Base::K61);
    let before = m.counters().clone();
    step(&mut m, MigrateBatchStep::Start);
    for i in 0..4 {
        migrate(&mut m, i);
    }
    step(&mut m, MigrateBatchStep::Flush);
    assert_eq!(m.counters().tlb_flush_remote - before.tlb_flush_remote, 4);
}

#[test]
fn foreign_unmaps_join_the_batch_and_lazy_cpus_get_no_ipi() {
    let mut m = setup(Base::Knew);
    let before = m.counters().clone();
    step(&mut m, MigrateBatchStep::Start);
    step(&mut m, MigrateBatchStep::ForeignUnmap);
    step(&mut m, MigrateBatchStep::ForeignUnmap);
    migrate(&mut m, 0);
    // CPU 1 runs a kernel thread (lazy TLB) when the batch is flushed.
    apply(&mut m, Op::Switch { cpu: 1, next: None });
    step(&mut m, MigrateBatchStep::Flush);
    let c = m.counters();
    assert_eq!(c.tlb_flush_remote - before.tlb_flush_remote, 1);
    assert_eq!(c.ipi_sends_shootdown - before.ipi_sends_shootdown, 0);
    // Outside a batch an unknown mm's PTE is flushed at once.
    step(&mut m, MigrateBatchStep::ForeignUnmap);
    assert_eq!(m.counters().tlb_flush_remote - before.tlb_flush_remote, 2);
}
