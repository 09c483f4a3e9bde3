//! `mm_cpumask` trimming on recent x86 (`CpumaskMode::TrimByFlush`), hand-computed from
//! `arch/x86/mm/tlb.c`: `flush_tlb_mm_range` calls `flush_tlb_multi` whenever another CPU is in
//! the mask; `should_flush_tlb` interrupts a CPU that no longer runs the mm only when
//! `should_trim_cpumask` is due (at most once a second per mm, first due one second after the
//! mm was created); that CPU then clears its bit (`flush_tlb_func`, `TLB_REMOTE_WRONG_CPU`).
//! Freed-tables flushes go to every CPU in the mask (`on_each_cpu_mask`) whatever the time.

use mmreplay_reference::op::{madv, map, prot};
use mmreplay_reference::profile::CpumaskMode;
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, Reference};

const A: u64 = 0x7000_0000;
const PAGE: u64 = 4096;
const MS: u64 = 1_000_000;

fn apply(m: &mut Model<Reference>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

fn cpumask(m: &Model<Reference>, mm: u32) -> Vec<u32> {
    m.snapshot()
        .mms
        .into_iter()
        .find(|x| x.id == MmId(mm))
        .map(|x| x.cpumask)
        .unwrap_or_default()
}

/// Two CPUs at t = 0: mm1 runs on CPU 0 and (a thread) on CPU 1, then CPU 1 switches to mm2.
fn setup() -> Model<Reference> {
    let profile = KernelProfile {
        nr_cpus: 2,
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
            len: 16 * PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
    );
    for cpu in 0..2 {
        apply(
            &mut m,
            Op::Access {
                cpu,
                mm: MmId(1),
                va: A + 15 * PAGE,
                kind: AccessKind::Write,
            },
        );
    }
    // CPU 1 switches to another process: v6.12+ keeps its bit in mm1's cpumask.
    apply(
        &mut m,
        Op::Exec {
            cpu: 1,
            old: None,
            new: MmId(2),
        },
    );
    assert_eq!(cpumask(&m, 1), [0, 1]);
    m
}

/// At `t_ns`, CPU 0 writes page `i` of mm1 then zaps it (MADV_DONTNEED frees no table): one
/// `flush_tlb_mm_range` of one page. Returns (remote flush calls, IPI sends, IPI targets,
/// local flushes) it added.
fn zap_at(m: &mut Model<Reference>, t_ns: u64, i: u64) -> (u64, u64, u64, u64) {
    apply(m, Op::Clock { now_ns: t_ns });
    let va = A + i * PAGE;
    apply(
        m,
        Op::Access {
            cpu: 0,
            mm: MmId(1),
            va,
            kind: AccessKind::Write,
        },
    );
    let c0 = m.counters().clone();
    apply(
        m,
        Op::Madvise {
            cpu: 0,
            mm: MmId(1),
            addr: va,
            len: PAGE,
            advice: madv::DONTNEED,
        },
    );
    let c1 = m.counters();
    (
        c1.tlb_flush_remote - c0.tlb_flush_remote,
        c1.ipi_sends_shootdown - c0.ipi_sends_shootdown,
        c1.ipi_targets_shootdown - c0.ipi_targets_shootdown,
        c1.tlb_flush_local - c0.tlb_flush_local,
    )
}

#[test]
fn wrong_cpu_is_trimmed_once_the_second_is_up() {
    let mut m = setup();
    // Within the first second: flush_tlb_multi is called (CPU 1 is in the mask) but
    // should_flush_tlb skips CPU 1 (not running mm1, trim not due): no IPI.
    assert_eq!(zap_at(&mut m, 100 * MS, 0), (1, 0, 0, 0));
    assert_eq!(cpumask(&m, 1), [0, 1]);
    assert_eq!(zap_at(&mut m, 200 * MS, 1), (1, 0, 0, 0));
    assert_eq!(cpumask(&m, 1), [0, 1]);
    // Exactly at the deadline time_after() is still false.
    assert_eq!(zap_at(&mut m, 1000 * MS, 2), (1, 0, 0, 0));
    // After it: the trim is due, one IPI to CPU 1, which clears its bit.
    assert_eq!(zap_at(&mut m, 1500 * MS, 3), (1, 1, 1, 0));
    assert_eq!(cpumask(&m, 1), [0]);
    // Only CPU 0 left: a local flush, no flush_tlb_multi.
    assert_eq!(zap_at(&mut m, 1600 * MS, 4), (0, 0, 0, 1));
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

#[test]
fn trim_rearms_for_a_second_and_running_cpus_always_get_the_ipi() {
    let mut m = setup();
    // First flush after the deadline trims CPU 1 and re-arms the trim for 2.1 s.
    assert_eq!(zap_at(&mut m, 1100 * MS, 0), (1, 1, 1, 0));
    assert_eq!(cpumask(&m, 1), [0]);
    // CPU 1 comes back to mm1 (a thread runs there again): its bit is set again.
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MmId(1),
            va: A + 15 * PAGE,
            kind: AccessKind::Read,
        },
    );
    assert_eq!(cpumask(&m, 1), [0, 1]);
    // CPU 1 runs mm1: it always gets the IPI.
    assert_eq!(zap_at(&mut m, 1200 * MS, 1), (1, 1, 1, 0));
    apply(
        &mut m,
        Op::Switch {
            cpu: 1,
            next: Some(MmId(2)),
        },
    );
    // Next trim due after 2.1 s (re-armed at 1.1 s): none at 2.0 s, one at 2.2 s.
    assert_eq!(zap_at(&mut m, 2000 * MS, 2), (1, 0, 0, 0));
    assert_eq!(cpumask(&m, 1), [0, 1]);
    assert_eq!(zap_at(&mut m, 2200 * MS, 3), (1, 1, 1, 0));
    assert_eq!(cpumask(&m, 1), [0]);
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

#[test]
fn freed_tables_flush_reaches_every_cpu_in_the_mask_at_any_time() {
    let mut m = setup();
    apply(&mut m, Op::Clock { now_ns: 100 * MS });
    let c0 = m.counters().clone();
    // munmap of the whole VMA frees its PTE table: on_each_cpu_mask to CPU 1, which no
    // longer runs mm1 and clears its bit, before the once-a-second trim is due.
    apply(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 16 * PAGE,
        },
    );
    let c1 = m.counters();
    assert!(c1.tables_freed > c0.tables_freed);
    assert_eq!(c1.tlb_flush_remote - c0.tlb_flush_remote, 1);
    assert_eq!(c1.ipi_sends_shootdown - c0.ipi_sends_shootdown, 1);
    assert_eq!(c1.ipi_targets_shootdown - c0.ipi_targets_shootdown, 1);
    assert_eq!(cpumask(&m, 1), [0]);
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}
