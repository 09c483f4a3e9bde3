//! Fast tests written for mutants that survived the crate's other tests (`.ci/mutants`,
//! issue 20): each names the mutant it kills and the kernel rule it holds the model to.
//! Mutants judged equivalent are listed with the reason in `reference/mutants-equivalent.md`.

use mmreplay_reference::engine::ReclaimStep;
use mmreplay_reference::op::{map, prot, MigrateBatchStep};
use mmreplay_reference::profile::CpumaskMode;
use mmreplay_reference::{
    AccessKind, Invariant, KernelProfile, MmId, Model, Op, Policy, Reference,
};

const A: u64 = 0x7000_0000;
const PAGE: u64 = 4096;

fn start(nr_cpus: u32) -> Model<Reference> {
    start_with(Reference, nr_cpus)
}

/// mm 1 exec'd on CPU 0 with 64 private anonymous pages at `A`, under policy `p`.
fn start_with<P: Policy>(p: P, nr_cpus: u32) -> Model<P> {
    start_in(
        KernelProfile {
            nr_cpus,
            full_check_every: 1,
            ..KernelProfile::default()
        },
        p,
    )
}

fn start_in<P: Policy>(profile: KernelProfile, p: P) -> Model<P> {
    let mut m = Model::new(profile, p);
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
            len: 64 * PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
    );
    m
}

fn apply<P: Policy>(m: &mut Model<P>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

fn touch<P: Policy>(m: &mut Model<P>, va: u64, kind: AccessKind) {
    apply(
        m,
        Op::Access {
            cpu: 0,
            mm: MmId(1),
            va,
            kind,
        },
    );
}

fn no_violations(m: &mut Model<Reference>) {
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

/// Kills `tlb_index -> 0` and the `^`/`>>` mutants that send every (mm, page) to one slot:
/// the TLB holds several translations at once, so re-reading pages whose translations are
/// cached walks no page table (B.0: a TLB hit neither walks nor sets A).
#[test]
fn tlb_keeps_several_translations_at_once() {
    let mut m = start(1);
    let pages = [0u64, 1, 2, 3];
    for p in pages {
        touch(&mut m, A + p * PAGE, AccessKind::Write);
    }
    for p in pages {
        touch(&mut m, A + p * PAGE, AccessKind::Read);
    }
    let fills = m.counters().tlb_fills;
    for p in pages {
        touch(&mut m, A + p * PAGE, AccessKind::Read);
    }
    assert_eq!(
        m.counters().tlb_fills,
        fills,
        "a second pass over 4 cached pages refilled the TLB"
    );
    no_violations(&mut m);
}

/// Kills `reclaimed < target` -> `<=` in `reclaim` (MGLRU): `try_to_shrink_lruvec` stops as
/// soon as `sc->nr_reclaimed >= nr_to_reclaim`; a reclaim that met its target takes no further
/// round (here the mutant's extra round finds the LRU empty and records a GiveUp).
#[test]
fn mglru_reclaim_stops_once_its_target_is_freed() {
    let mut m = start(2);
    touch(&mut m, A, AccessKind::Write);
    let (r, script) = m.apply_recording(&Op::Reclaim {
        cpu: 1,
        nr_to_reclaim: 1,
    });
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(m.counters().evictions, 1);
    let script = script.expect("a reclaim op records its rounds");
    assert!(
        matches!(script.steps.last(), Some(ReclaimStep::Evict(_))),
        "rounds after the target was met: {:?}",
        script.steps
    );
    no_violations(&mut m);
}

/// Kills `retire_empty_gens` -> `()`: `try_to_inc_min_seq` retires oldest generations that
/// hold no folio, down to `MIN_NR_GENS`, at each eviction round; an LRU emptied by reclaim
/// keeps no stale generations once reclaim has looked at it again.
#[test]
fn mglru_retires_empty_oldest_generations() {
    let mut m = start(2);
    touch(&mut m, A, AccessKind::Write);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    assert_eq!(m.counters().evictions, 1);
    // Nothing is on an LRU now: this reclaim only retires empty gens and gives up.
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    // Snapshot `lru_nr_gens` is max_seq - min_seq + 1: MIN_NR_GENS (2) generations left.
    assert_eq!(m.snapshot().lru_nr_gens, [2, 2]);
    no_violations(&mut m);
}

/// Kills `>> -> <<` in `tlb_find`'s huge-page lookup (`hvpn`): a 2 MiB hugetlb translation is
/// one TLB entry, so any address inside the huge page hits it once cached.
#[test]
fn tlb_hits_a_cached_huge_page_translation() {
    let mut m = start(1);
    let base = 4u64 << 30;
    apply(
        &mut m,
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: base,
            len: 1 << 30,
            prot: prot::READ | prot::WRITE,
            flags: map::SHARED | map::ANONYMOUS | map::HUGETLB,
            file: None,
            pgoff: 0,
        },
    );
    touch(&mut m, base, AccessKind::Write);
    touch(&mut m, base, AccessKind::Read);
    let fills = m.counters().tlb_fills;
    for off in [0, PAGE, 100 * PAGE, (2 << 20) - PAGE] {
        touch(&mut m, base + off, AccessKind::Read);
    }
    assert_eq!(
        m.counters().tlb_fills,
        fills,
        "reads inside one cached 2 MiB page refilled the TLB"
    );
    no_violations(&mut m);
}

/// Kills `rounds < 32` -> `<=` in `reclaim` (MGLRU): a reclaim whose target cannot be met
/// (the only folio is pinned: `folio_maybe_dma_pinned`, kept by `shrink_folio_list`) gives up
/// after the model's bound of 32 rounds (aging and eviction rounds alike), not 33.
#[test]
fn mglru_reclaim_that_cannot_meet_its_target_stops_after_32_rounds() {
    let mut m = start(2);
    touch(&mut m, A, AccessKind::Write);
    apply(
        &mut m,
        Op::Pin {
            cpu: 0,
            mm: MmId(1),
            va: A,
            write: false,
            hold: mmreplay_reference::HoldId(1),
        },
    );
    let (r, script) = m.apply_recording(&Op::Reclaim {
        cpu: 1,
        nr_to_reclaim: 1,
    });
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(m.counters().evictions, 0);
    let steps = script.expect("a reclaim op records its rounds").steps;
    assert_eq!(steps.len(), 32, "{steps:?}");
}

/// Kills `& -> |` and `& -> ^` in `count_batch_flush`'s first test (`tlb.rs:336:17`,
/// `mask & (1 << sender) != 0 && ...`): `arch_tlbbatch_flush` runs
/// `flush_tlb_func` on the sender (TLB_LOCAL_SHOOTDOWN) only when the sender is in the
/// batch's cpumask. Reclaim on a CPU that never ran the mm defers the unmap's flush
/// (`should_defer_flush`: CPU 0 may cache it) and flushes the batch with one IPI to CPU 0 and
/// no local flush.
#[test]
fn batch_flush_from_a_cpu_outside_the_mask_is_remote_only() {
    let mut m = start(2);
    touch(&mut m, A, AccessKind::Write);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    let c = m.counters();
    assert_eq!(c.evictions, 1);
    assert_eq!(
        (
            c.tlb_flush_local_shootdowns,
            c.tlb_flush_local,
            c.tlb_flush_remote,
            c.ipi_sends_shootdown,
            c.ipi_targets_shootdown,
            c.tlb_flush_full
        ),
        (0, 0, 1, 1, 1, 1),
        "(local shootdowns, local, remote, IPI sends, IPI targets, full) of one batch flush"
    );
    no_violations(&mut m);
}

/// The negative control of I1: pages freed before the TLB flush (`free_pages_before_flush`).
struct FreeBeforeFlush;
impl Policy for FreeBeforeFlush {
    fn free_pages_before_flush(&self) -> bool {
        true
    }
}

/// Kills `&& -> ||` in `tlb_drop_folio` (`e.valid && e.folio == slot`): after an I1 report
/// the model drops the stale entries of the freed folio only, so the bug is reported once;
/// every other cached translation stays (the mutant empties every CPU's TLB, and the next
/// read of another cached page walks the page table again).
#[test]
fn i1_report_drops_only_the_freed_folios_translations() {
    let mut m = start_with(FreeBeforeFlush, 1);
    touch(&mut m, A, AccessKind::Write);
    touch(&mut m, A + PAGE, AccessKind::Write);
    apply(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
        },
    );
    let i1 = m
        .violations()
        .iter()
        .filter(|v| v.invariant == Invariant::I1)
        .count();
    assert_eq!(i1, 1, "{:#?}", m.violations());
    let fills = m.counters().tlb_fills;
    touch(&mut m, A + PAGE, AccessKind::Read);
    assert_eq!(
        m.counters().tlb_fills,
        fills,
        "the translation of the page still mapped was dropped with the freed one"
    );
}

/// Kills `< -> <=` (the loop's `va < t`) and the first `&& -> ||` of the slot probe
/// (`e.valid && e.huge == huge && ...`) in `tlb_drop_range`'s small-range path: a ranged
/// flush (`flush_tlb_mm_range` of one page) drops that page's translation only, not the next
/// page's (the loop's end is exclusive), nor a 4 KiB translation of the 2 MiB base page that
/// the huge-entry probe looks at.
#[test]
fn ranged_flush_keeps_the_translations_around_the_range() {
    let mut m = start(1);
    for p in 0..3 {
        touch(&mut m, A + p * PAGE, AccessKind::Write);
    }
    apply(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A + PAGE,
            len: PAGE,
        },
    );
    let fills = m.counters().tlb_fills;
    touch(&mut m, A, AccessKind::Read);
    touch(&mut m, A + 2 * PAGE, AccessKind::Read);
    assert_eq!(
        m.counters().tlb_fills,
        fills,
        "a one-page flush dropped the translations of the pages on either side"
    );
    no_violations(&mut m);
}

/// Kills `> -> >=` in `tlb_drop_range`'s one-pass path (`va + size > s`), taken when a ranged
/// flush covers more pages than the TLB has entries (here 20 pages, 16 entries, under the
/// 33-page `tlb_single_page_flush_ceiling`): the page that ends where the range starts keeps
/// its translation. Also kills `+= -> *=` on `tlb_flush_pages` in `flush_tlb_mm_range` (the
/// flush counts its 20 pages).
#[test]
fn wide_ranged_flush_keeps_the_page_before_the_range() {
    let mut m = start_in(
        KernelProfile {
            nr_cpus: 1,
            full_check_every: 1,
            tlb_entries: 16,
            ..KernelProfile::default()
        },
        Reference,
    );
    for p in 1..=20 {
        touch(&mut m, A + p * PAGE, AccessKind::Write);
    }
    touch(&mut m, A, AccessKind::Write);
    apply(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A + PAGE,
            len: 20 * PAGE,
        },
    );
    assert_eq!(m.counters().tlb_flush_pages, 20, "one 20-page ranged flush");
    let fills = m.counters().tlb_fills;
    touch(&mut m, A, AccessKind::Read);
    assert_eq!(
        m.counters().tlb_fills,
        fills,
        "a flush of the 20 pages after it dropped the page's translation"
    );
    no_violations(&mut m);
}

/// Kills, in `count_foreign_flush` (`ptep_clear_flush` of a PTE in an mm the model does not
/// know, outside a migration batch), `& -> |` in `others = mask & !(1 << sender)` (one CPU:
/// no other CPU, so no remote flush at all), `& -> |` in the target filter (the sender is not
/// its own IPI target), `+= -> *=` on `tlb_flush_pages` (one page), and `all_cpus_mask -> 1`
/// (the unknown mm's cpumask is taken as every CPU, so CPU 1 is interrupted).
#[test]
fn foreign_unmap_flushes_one_page_on_every_other_cpu() {
    let mut one = start(1);
    let before = one.counters().clone();
    apply(
        &mut one,
        Op::MigrateBatch {
            cpu: 0,
            step: MigrateBatchStep::ForeignUnmap,
        },
    );
    assert_eq!(one.counters(), &before, "one CPU: nobody else to flush");

    let mut m = start(2);
    let before = m.counters().clone();
    apply(
        &mut m,
        Op::MigrateBatch {
            cpu: 0,
            step: MigrateBatchStep::ForeignUnmap,
        },
    );
    let c = m.counters();
    assert_eq!(
        (
            c.tlb_flush_remote - before.tlb_flush_remote,
            c.ipi_sends_shootdown - before.ipi_sends_shootdown,
            c.ipi_targets_shootdown - before.ipi_targets_shootdown,
            c.tlb_flush_pages - before.tlb_flush_pages,
            c.tlb_flush_local_mm_shootdowns - before.tlb_flush_local_mm_shootdowns,
        ),
        (1, 1, 1, 1, 0),
        "(remote, IPI sends, IPI targets, pages, local) of one foreign PTE flush from CPU 0"
    );
    no_violations(&mut m);
}

/// Kills `& -> ^` in `flush_tlb_mm_range`'s local-shootdown test (`others != 0 ||
/// mask & (1 << sender) != 0`): a flush by the only CPU running the mm takes the local path,
/// and `flush_tlb_func` on the sender counts `TLB_LOCAL_MM_SHOOTDOWN` there too (the mutant
/// counts it only when another CPU is in the mask).
#[test]
fn local_only_flush_counts_one_local_mm_shootdown() {
    let mut m = start(1);
    touch(&mut m, A, AccessKind::Write);
    let before = m.counters().clone();
    apply(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
        },
    );
    let c = m.counters();
    assert_eq!(
        (
            c.tlb_flush_local - before.tlb_flush_local,
            c.tlb_flush_local_mm_shootdowns - before.tlb_flush_local_mm_shootdowns,
            c.tlb_flush_remote - before.tlb_flush_remote,
        ),
        (1, 1, 0),
        "(local, local MM shootdowns, remote) of a one-CPU munmap"
    );
    no_violations(&mut m);
}

/// Kills `& -> ^` in `flush_tlb_mm_range`'s `SCF_RUN_LOCAL` test (`mask & (1 << sender)`,
/// `TrimByFlush`): a flush sent, with the cpumask trim due, by a CPU that neither runs the mm
/// nor is in its `mm_cpumask` interrupts CPU 0 and trims nobody: `flush_tlb_multi` runs
/// `flush_tlb_func` only on the CPUs of the mask, so the sender takes no
/// `TLB_REMOTE_WRONG_CPU` (the mutant counts one for it).
#[test]
fn trim_flush_from_a_cpu_outside_the_mask_trims_nobody() {
    let mut m = start_in(
        KernelProfile {
            nr_cpus: 2,
            cpumask_mode: CpumaskMode::TrimByFlush,
            full_check_every: 1,
            ..KernelProfile::default()
        },
        Reference,
    );
    touch(&mut m, A, AccessKind::Write);
    // should_trim_cpumask is due a second after the mm was created.
    apply(
        &mut m,
        Op::Clock {
            now_ns: 2_000_000_000,
        },
    );
    apply(
        &mut m,
        Op::Munmap {
            cpu: 1,
            mm: MmId(1),
            addr: A,
            len: PAGE,
        },
    );
    let c = m.counters();
    assert_eq!(
        (
            c.tlb_flush_remote,
            c.ipi_targets_shootdown,
            c.tlb_flush_remote_wrong_cpu
        ),
        (1, 1, 0),
        "(remote, IPI targets, wrong-CPU trims) of CPU 1's flush of CPU 0's mm"
    );
    no_violations(&mut m);
}

/// Kills `<< -> >>` in `flush_tlb_mm_range`'s lazy freed-tables branch (`trimmed |= 1 << cpu`,
/// `ClearOnSwitch`): a CPU that runs the mm lazily (a kernel thread after a user thread of
/// mm1) gets the freed-tables IPI, `leave_mm`s, and before v6.12 its `switch_mm_irqs_off` to
/// init_mm clears its `mm_cpumask` bit, so the next flush does not interrupt it (for CPU 1 the
/// mutant's `1 >> 1` trims nobody).
#[test]
fn lazy_cpu_leaves_the_mask_on_a_freed_tables_flush() {
    let mut m = start(2);
    touch(&mut m, A, AccessKind::Write);
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MmId(1),
            va: A,
            kind: AccessKind::Read,
        },
    );
    apply(&mut m, Op::Switch { cpu: 1, next: None });
    let before = m.counters().clone();
    // munmap of the whole VMA frees its PTE table (freed_tables: on_each_cpu_mask).
    apply(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: 64 * PAGE,
        },
    );
    let c = m.counters();
    assert!(c.tables_freed > before.tables_freed);
    assert_eq!(c.ipi_targets_shootdown - before.ipi_targets_shootdown, 1);
    let mask = m
        .snapshot()
        .mms
        .into_iter()
        .find(|x| x.id == MmId(1))
        .map(|x| x.cpumask);
    assert_eq!(mask, Some(vec![0]), "CPU 1 left mm1's cpumask");
    no_violations(&mut m);
}

/// Kills `should_defer_flush -> true`: reclaim batches an unmap's flush (`TTU_BATCH_FLUSH`)
/// only when another CPU may cache the mm; with the mm on the reclaiming CPU alone,
/// `try_to_unmap_one` flushes the one page at once (`ptep_clear_flush`: a ranged local flush,
/// not the batch's full `arch_tlbbatch_flush`).
#[test]
fn reclaim_with_no_other_cpu_in_the_mask_flushes_the_page_at_once() {
    let mut m = start(1);
    touch(&mut m, A, AccessKind::Write);
    let before = m.counters().clone();
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 0,
            nr_to_reclaim: 1,
        },
    );
    let c = m.counters();
    assert_eq!(c.evictions - before.evictions, 1);
    assert_eq!(
        (
            c.tlb_flush_local_mm_shootdowns - before.tlb_flush_local_mm_shootdowns,
            c.tlb_flush_local_shootdowns - before.tlb_flush_local_shootdowns,
            c.tlb_flush_pages - before.tlb_flush_pages,
            c.tlb_flush_full - before.tlb_flush_full,
        ),
        (1, 0, 1, 0),
        "(local MM shootdowns, batch local shootdowns, pages, full) of reclaim's unmap"
    );
    no_violations(&mut m);
}

/// Kills `+= -> *=` on `tlb_flush_remote_wrong_cpu` in `flush_tlb_mm_range` (`TrimByFlush`):
/// CPU 1 ran mm1 and switched to mm2, keeping its bit (v6.12+); once the trim is due, CPU 0's
/// flush interrupts it, it takes `TLB_REMOTE_WRONG_CPU` (counted once) and leaves the mask.
#[test]
fn due_trim_counts_the_wrong_cpu_it_trims() {
    let mut m = start_in(
        KernelProfile {
            nr_cpus: 2,
            cpumask_mode: CpumaskMode::TrimByFlush,
            full_check_every: 1,
            ..KernelProfile::default()
        },
        Reference,
    );
    touch(&mut m, A, AccessKind::Write);
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MmId(1),
            va: A,
            kind: AccessKind::Read,
        },
    );
    apply(
        &mut m,
        Op::Exec {
            cpu: 1,
            old: None,
            new: MmId(2),
        },
    );
    apply(
        &mut m,
        Op::Clock {
            now_ns: 2_000_000_000,
        },
    );
    apply(
        &mut m,
        Op::Munmap {
            cpu: 0,
            mm: MmId(1),
            addr: A,
            len: PAGE,
        },
    );
    let c = m.counters();
    assert_eq!(
        (c.ipi_targets_shootdown, c.tlb_flush_remote_wrong_cpu),
        (1, 1),
        "(IPI targets, wrong-CPU trims) of the flush that trims CPU 1"
    );
    no_violations(&mut m);
}

/// Kills `<< -> >>` in `count_batch_flush`'s first test (`mask & (1 << sender)`, where
/// `1 >> 1` is 0): reclaim on CPU 1, which runs the mm with CPU 0, flushes its batch with
/// `flush_tlb_func` on itself (TLB_LOCAL_SHOOTDOWN) and one IPI to CPU 0.
#[test]
fn batch_flush_from_a_cpu_in_the_mask_also_flushes_locally() {
    let mut m = start(2);
    touch(&mut m, A, AccessKind::Write);
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MmId(1),
            va: A,
            kind: AccessKind::Read,
        },
    );
    let before = m.counters().clone();
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 1,
        },
    );
    let c = m.counters();
    assert_eq!(c.evictions - before.evictions, 1);
    assert_eq!(
        (
            c.tlb_flush_local_shootdowns - before.tlb_flush_local_shootdowns,
            c.tlb_flush_remote - before.tlb_flush_remote,
            c.ipi_targets_shootdown - before.ipi_targets_shootdown,
        ),
        (1, 1, 1),
        "(local shootdowns, remote, IPI targets) of one batch flush from CPU 1"
    );
    no_violations(&mut m);
}

/// Kills the D-assist mutants of `hw_access` (`tlb.rs:595:38` guard `!e.dirty -> false`,
/// `tlb.rs:600:78` `p.folio == e.folio -> !=`): a write that hits a cached writable but clean
/// translation makes the CPU re-walk the current PTE and set D there (B.0, "D-assist"), with
/// no fault and no new TLB fill. Migration restores the PTE writable, old and clean
/// (`remove_migration_pte` without the A/D bits), and a read caches it that way.
#[test]
fn write_hit_on_a_clean_writable_translation_sets_d_without_a_fault() {
    use mmreplay_reference::MigrateTarget;
    let mut m = start(1);
    touch(&mut m, A, AccessKind::Write);
    let pfn = m.pfn_at(MmId(1), A).expect("mapped");
    apply(
        &mut m,
        Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Pfn(pfn),
        },
    );
    touch(&mut m, A, AccessKind::Read);
    let before = m.counters().clone();
    touch(&mut m, A, AccessKind::Write);
    let c = m.counters();
    assert_eq!(
        (
            c.faults - before.faults,
            c.tlb_fills - before.tlb_fills,
            c.hw_d_sets - before.hw_d_sets,
        ),
        (0, 0, 1),
        "(faults, TLB fills, hardware D sets) of the write"
    );
    no_violations(&mut m);
}

/// Kills `!= -> ==` in `mig_batch_flush`'s per-CPU test (`(b.cpumask | cur) & (1 << c) != 0`):
/// a migration batch's flush is `arch_tlbbatch_flush`, a full flush (TLB_FLUSH_ALL) on every
/// CPU of the batch's mask, so CPU 0's cached translation of a page the batch did not touch
/// is gone too and the next read of it walks the page table again.
#[test]
fn migration_batch_flush_is_a_full_flush_of_the_masks_cpus() {
    use mmreplay_reference::MigrateTarget;
    let mut m = start(2);
    touch(&mut m, A, AccessKind::Write);
    touch(&mut m, A + PAGE, AccessKind::Write);
    apply(
        &mut m,
        Op::Access {
            cpu: 1,
            mm: MmId(1),
            va: A,
            kind: AccessKind::Read,
        },
    );
    let step = |m: &mut Model<Reference>, step| apply(m, Op::MigrateBatch { cpu: 0, step });
    step(&mut m, MigrateBatchStep::Start);
    apply(
        &mut m,
        Op::Migrate {
            cpu: 0,
            target: MigrateTarget::Va { mm: MmId(1), va: A },
        },
    );
    step(&mut m, MigrateBatchStep::Flush);
    let fills = m.counters().tlb_fills;
    touch(&mut m, A + PAGE, AccessKind::Read);
    assert_eq!(
        m.counters().tlb_fills - fills,
        1,
        "a translation cached on CPU 0 survived the batch's full flush"
    );
    no_violations(&mut m);
}
