//! THP paths and mremap's page-table moves, hand-computed from 6.18 (`mm/huge_memory.c`,
//! `mm/khugepaged.c`, `mm/mremap.c`, `mm/pgtable-generic.c`, `arch/x86/mm/tlb.c`). Two CPUs
//! both running mm 1 (CPU 1 is a second thread), so every `flush_tlb_mm_range` of mm 1 from
//! CPU 0 is one remote flush and one shootdown IPI to CPU 1. Each test fails if the flush (or
//! IPI) of the path it names is removed.

use mmreplay_reference::op::{madv, map, prot};
use mmreplay_reference::profile::{CpumaskMode, ThpMode};
use mmreplay_reference::{AccessKind, Counters, KernelProfile, MmId, Model, Op, Reference};

/// 1 GiB-aligned, so every 2 MiB step is a PMD.
const R: u64 = 0x4000_0000;
const PAGE: u64 = 4096;
const HP: u64 = 2 << 20;
const MM: MmId = MmId(1);

fn apply(m: &mut Model<Reference>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

fn model(thp: ThpMode) -> Model<Reference> {
    let profile = KernelProfile {
        nr_cpus: 2,
        cpumask_mode: CpumaskMode::TrimByFlush,
        full_check_every: 1,
        thp,
        ..KernelProfile::default()
    };
    let mut m = Model::new(profile, Reference);
    apply(&mut m, Op::Clock { now_ns: 0 });
    apply(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MM,
        },
    );
    m
}

fn mmap(m: &mut Model<Reference>, addr: u64, len: u64) {
    apply(
        m,
        Op::Mmap {
            cpu: 0,
            mm: MM,
            addr,
            len,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS | map::FIXED,
            file: None,
            pgoff: 0,
        },
    );
}

fn madvise(m: &mut Model<Reference>, addr: u64, len: u64, advice: u32) {
    apply(
        m,
        Op::Madvise {
            cpu: 0,
            mm: MM,
            addr,
            len,
            advice,
        },
    );
}

fn write(m: &mut Model<Reference>, cpu: u32, va: u64) {
    apply(
        m,
        Op::Access {
            cpu,
            mm: MM,
            va,
            kind: AccessKind::Write,
        },
    );
}

/// `len` bytes at `R` with MADV_HUGEPAGE, written once per 2 MiB from CPU 0 (THP faults),
/// then CPU 1 runs the mm too (it reads the first page).
fn thp_region(len: u64) -> Model<Reference> {
    let mut m = model(ThpMode::Madvise);
    mmap(&mut m, R, len);
    madvise(&mut m, R, len, madv::HUGEPAGE);
    let mut a = R;
    while a < R + len {
        write(&mut m, 0, a);
        a += HP;
    }
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MM,
            va: R,
            kind: AccessKind::Read,
        },
    );
    m
}

/// Counters added by `f`.
fn delta(m: &mut Model<Reference>, f: impl FnOnce(&mut Model<Reference>)) -> Counters {
    let before = m.counters().clone();
    f(m);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    let after = m.counters().clone();
    let mut d = Counters::default();
    for (name, v) in after.pairs() {
        let b = before.get(name).unwrap_or(0);
        match name {
            "tlb_flush_remote" => d.tlb_flush_remote = v - b,
            "ipi_sends_shootdown" => d.ipi_sends_shootdown = v - b,
            "ipi_sends_table_sync" => d.ipi_sends_table_sync = v - b,
            "ipi_targets_table_sync" => d.ipi_targets_table_sync = v - b,
            "faults" => d.faults = v - b,
            "thp_fault_alloc" => d.thp_fault_alloc = v - b,
            "thp_split_pmd" => d.thp_split_pmd = v - b,
            "thp_collapse_alloc" => d.thp_collapse_alloc = v - b,
            _ => {}
        }
    }
    d
}

#[test]
fn thp_fault_maps_the_whole_pmd_once() {
    let mut m = model(ThpMode::Madvise);
    mmap(&mut m, R, 2 * HP);
    madvise(&mut m, R, 2 * HP, madv::HUGEPAGE);
    let d = delta(&mut m, |m| {
        // One fault maps 2 MiB: the other 511 pages need none.
        for i in 0..512 {
            write(m, 0, R + i * PAGE);
        }
    });
    assert_eq!((d.faults, d.thp_fault_alloc), (1, 1));
    // Without MADV_HUGEPAGE (`madvise` mode) every page faults.
    let mut m = model(ThpMode::Madvise);
    mmap(&mut m, R, 2 * HP);
    let d = delta(&mut m, |m| {
        for i in 0..512 {
            write(m, 0, R + i * PAGE);
        }
    });
    assert_eq!((d.faults, d.thp_fault_alloc), (512, 0));
    // `always`: no madvise needed; a range smaller than the PMD never gets a THP.
    let mut m = model(ThpMode::Always);
    mmap(&mut m, R, HP);
    mmap(&mut m, R + 4 * HP, HP - PAGE);
    let d = delta(&mut m, |m| {
        write(m, 0, R);
        write(m, 0, R + PAGE);
        write(m, 0, R + 4 * HP);
        write(m, 0, R + 4 * HP + PAGE);
    });
    assert_eq!((d.faults, d.thp_fault_alloc), (3, 1));
}

#[test]
fn huge_zero_page_write_fault_flushes_the_pmd() {
    let mut m = model(ThpMode::Madvise);
    mmap(&mut m, R, HP);
    madvise(&mut m, R, HP, madv::HUGEPAGE);
    apply(
        &mut m,
        Op::Access {
            cpu: 0,
            mm: MM,
            va: R,
            kind: AccessKind::Read,
        },
    );
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MM,
            va: R + PAGE,
            kind: AccessKind::Read,
        },
    );
    // do_huge_zero_wp_pmd: pmdp_huge_clear_flush, then a THP.
    let d = delta(&mut m, |m| write(m, 0, R + 8 * PAGE));
    assert_eq!((d.tlb_flush_remote, d.ipi_sends_shootdown), (1, 1));
    assert_eq!((d.faults, d.thp_fault_alloc), (1, 1));
}

#[test]
fn partial_mprotect_splits_the_pmd_first() {
    let mut m = thp_region(2 * HP);
    // __split_huge_pmd (pmdp_invalidate → flush) + change_pte_range's flush of one page.
    let d = delta(&mut m, |m| {
        apply(
            m,
            Op::Mprotect {
                cpu: 0,
                mm: MM,
                addr: R + HP / 2,
                len: PAGE,
                prot: prot::READ,
            },
        )
    });
    assert_eq!(
        (d.thp_split_pmd, d.tlb_flush_remote, d.ipi_sends_shootdown),
        (1, 2, 2)
    );
    // The whole second THP: change_huge_pmd, no split, one flush (the mmu_gather's).
    let d = delta(&mut m, |m| {
        apply(
            m,
            Op::Mprotect {
                cpu: 0,
                mm: MM,
                addr: R + HP,
                len: HP,
                prot: prot::READ,
            },
        )
    });
    assert_eq!((d.thp_split_pmd, d.tlb_flush_remote), (0, 1));
}

#[test]
fn partial_munmap_and_dontneed_split_whole_ones_do_not() {
    let mut m = thp_region(4 * HP);
    // munmap of 64 KiB inside THP 0: vma_adjust_trans_huge splits, then the zap flushes.
    let d = delta(&mut m, |m| {
        apply(
            m,
            Op::Munmap {
                cpu: 0,
                mm: MM,
                addr: R + HP / 2,
                len: 64 << 10,
            },
        )
    });
    assert_eq!((d.thp_split_pmd, d.tlb_flush_remote), (1, 2));
    // MADV_DONTNEED of 64 KiB inside THP 1: zap_pmd_range splits the partly covered PMD.
    let d = delta(&mut m, |m| {
        madvise(m, R + HP + HP / 2, 64 << 10, madv::DONTNEED)
    });
    assert_eq!((d.thp_split_pmd, d.tlb_flush_remote), (1, 2));
    // munmap of the whole THP 2: zap_huge_pmd, one mmu_gather flush.
    let d = delta(&mut m, |m| {
        apply(
            m,
            Op::Munmap {
                cpu: 0,
                mm: MM,
                addr: R + 2 * HP,
                len: HP,
            },
        )
    });
    assert_eq!((d.thp_split_pmd, d.tlb_flush_remote), (0, 1));
    // A split THP stays split: a second cut of THP 0 flushes only for its zap.
    let d = delta(&mut m, |m| {
        apply(
            m,
            Op::Munmap {
                cpu: 0,
                mm: MM,
                addr: R + HP / 4,
                len: PAGE,
            },
        )
    });
    assert_eq!((d.thp_split_pmd, d.tlb_flush_remote), (0, 1));
}

/// 4 MiB of 4 KiB pages at `R` (MADV_NOHUGEPAGE), written from CPU 0, CPU 1 running the mm,
/// then MADV_HUGEPAGE: what khugepaged collapses.
fn small_pages_region() -> Model<Reference> {
    let mut m = model(ThpMode::Madvise);
    mmap(&mut m, R, 2 * HP);
    madvise(&mut m, R, 2 * HP, madv::NOHUGEPAGE);
    for i in 0..(2 * HP / PAGE) {
        write(&mut m, 0, R + i * PAGE);
    }
    write(&mut m, 1, R);
    madvise(&mut m, R, 2 * HP, madv::HUGEPAGE);
    m
}

#[test]
fn khugepaged_collapse_flushes_and_syncs() {
    let mut m = small_pages_region();
    // khugepaged on CPU 0 (a kernel thread: lazy, mm 1 stays loaded).
    apply(&mut m, Op::Switch { cpu: 0, next: None });
    let collapse = |m: &mut Model<Reference>| {
        apply(
            m,
            Op::ThpCollapse {
                cpu: 0,
                mm: MM,
                collapsed: true,
            },
        )
    };
    // pmdp_collapse_flush (flush_tlb_range: CPU 1 runs the mm) + tlb_remove_table_sync_one
    // (smp_call_function: every other online CPU).
    let d = delta(&mut m, collapse);
    assert_eq!(
        (
            d.tlb_flush_remote,
            d.ipi_sends_shootdown,
            d.ipi_sends_table_sync,
            d.ipi_targets_table_sync,
            d.thp_collapse_alloc
        ),
        (1, 1, 1, 1, 1)
    );
    // The second PMD next (scan cursor), then nothing is left to collapse: the kernel's
    // flush and sync are still counted, the op is Ignored.
    let d = delta(&mut m, collapse);
    assert_eq!((d.thp_collapse_alloc, d.ipi_sends_table_sync), (1, 1));
    let r = m.apply(&Op::ThpCollapse {
        cpu: 0,
        mm: MM,
        collapsed: true,
    });
    assert_eq!(r, Ok(mmreplay_reference::op::OpOutcome::Ignored));
    // Collapsed PMDs are THPs: a partial munmap splits one.
    let d = delta(&mut m, |m| {
        apply(
            m,
            Op::Munmap {
                cpu: 0,
                mm: MM,
                addr: R + PAGE,
                len: PAGE,
            },
        )
    });
    assert_eq!(d.thp_split_pmd, 1);
}

#[test]
fn failed_collapse_still_flushed_and_synced() {
    let mut m = small_pages_region();
    let d = delta(&mut m, |m| {
        apply(
            m,
            Op::ThpCollapse {
                cpu: 0,
                mm: MM,
                collapsed: false,
            },
        )
    });
    assert_eq!(
        (
            d.tlb_flush_remote,
            d.ipi_sends_table_sync,
            d.thp_collapse_alloc
        ),
        (1, 1, 0)
    );
}

fn mremap(m: &mut Model<Reference>, old: u64, len: u64, new: u64) {
    apply(
        m,
        Op::Mremap {
            cpu: 0,
            mm: MM,
            old_addr: old,
            old_len: len,
            new_addr: new,
            new_len: len,
        },
    );
}

#[test]
fn mremap_moves_a_whole_thp_with_one_flush() {
    let mut m = thp_region(2 * HP);
    let dst = R + 16 * HP;
    // move_huge_pmd: one flush_pmd_tlb_range; the PMD stays huge at its new place.
    let d = delta(&mut m, |m| mremap(m, R + HP, HP, dst));
    assert_eq!((d.tlb_flush_remote, d.thp_split_pmd), (1, 0));
    let d = delta(&mut m, |m| {
        write(m, 0, dst + 7 * PAGE);
        apply(
            m,
            Op::Munmap {
                cpu: 0,
                mm: MM,
                addr: dst + PAGE,
                len: PAGE,
            },
        )
    });
    // Data moved with it (no fault), and it is still a THP (the partial munmap splits it).
    assert_eq!((d.faults, d.thp_split_pmd), (0, 1));
}

#[test]
fn mremap_moves_page_tables_per_pmd() {
    // 4 MiB of 4 KiB pages, PMD-aligned on both sides: two move_normal_pmd, one flush each.
    let mut m = small_pages_region();
    madvise(&mut m, R, 2 * HP, madv::NOHUGEPAGE);
    let d = delta(&mut m, |m| mremap(m, R, 2 * HP, R + 16 * HP));
    assert_eq!(d.tlb_flush_remote, 2);
    // The pages went with their tables.
    let d = delta(&mut m, |m| write(m, 0, R + 16 * HP + HP + 5 * PAGE));
    assert_eq!(d.faults, 0);
}

#[test]
fn mremap_of_part_of_a_thp_splits_then_moves_ptes() {
    let mut m = thp_region(HP);
    // 1 MiB from the middle: extent < PMD → split_huge_pmd, then move_ptes (one flush).
    let d = delta(&mut m, |m| mremap(m, R + HP / 4, HP / 2, R + 16 * HP));
    assert_eq!((d.thp_split_pmd, d.tlb_flush_remote), (1, 2));
}
