//! `Op::ClearSoftDirty` (`record --access`, `fs/proc/task_mmu.c:clear_refs_write` with
//! CLEAR_REFS_SOFT_DIRTY), hand-computed from 6.1/6.18: every present PTE write-protected and
//! its soft-dirty bit cleared, one `flush_tlb_mm`, and the next write faults through
//! `do_wp_page` (`wp_page_reuse`), which makes the PTE young, dirty, soft-dirty and writable.
//! The last test shows why the capture needs it: the write it reveals is what keeps a hot page
//! from eviction under the classic LRU (`folio_check_references`).

use mmreplay_reference::profile::{CpumaskMode, LruKind};
use mmreplay_reference::snapshot::PteState;
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, OpOutcome, Reference};

mod common;

const R: u64 = 0x4000_0000;
const PAGE: u64 = 4096;
const MM: MmId = MmId(1);

fn apply(m: &mut Model<Reference>, op: Op) -> OpOutcome {
    match m.apply(&op) {
        Ok(o) => o,
        Err(e) => panic!("op {op:?} failed: {e}"),
    }
}

fn model(lru: LruKind) -> Model<Reference> {
    let profile = KernelProfile {
        nr_cpus: 2,
        cpumask_mode: CpumaskMode::TrimByFlush,
        full_check_every: 1,
        lru,
        ..KernelProfile::default()
    };
    let mut m = Model::new(profile, Reference);
    apply(&mut m, Op::Clock { now_ns: 0 });
    apply(&mut m, common::exec(0, MM));
    apply(&mut m, common::anon_fixed(0, MM, R, 8 * PAGE));
    m
}

fn write(m: &mut Model<Reference>, va: u64) -> OpOutcome {
    apply(
        m,
        Op::Fault {
            cpu: 0,
            mm: MM,
            va,
            kind: AccessKind::Write,
        },
    )
}

/// (write, young, soft_dirty) of the PTE at `va`.
fn pte(m: &Model<Reference>, va: u64) -> Option<(bool, bool, bool)> {
    let s = m.snapshot();
    let mm = s.mms.iter().find(|x| x.id == MM)?;
    mm.ptes
        .iter()
        .find(|p| p.va == va)
        .and_then(|p| match p.state {
            PteState::Present {
                write,
                young,
                soft_dirty,
                ..
            } => Some((write, young, soft_dirty)),
            _ => None,
        })
}

#[test]
fn clear_write_protects_flushes_and_the_next_write_reuses() {
    let mut m = model(LruKind::Classic);
    write(&mut m, R);
    write(&mut m, R + PAGE);
    assert_eq!(pte(&m, R), Some((true, true, true)));
    // The recorder writes from CPU 1, which does not run the mm: one remote flush.
    let before = m.counters().clone();
    apply(&mut m, Op::ClearSoftDirty { cpu: 1, mm: MM });
    let c = m.counters();
    assert_eq!(c.softdirty_clears, 1);
    assert_eq!(c.softdirty_wrprotected, 2);
    assert_eq!(c.tlb_flush_remote, before.tlb_flush_remote + 1);
    assert_eq!(c.ipi_sends_shootdown, before.ipi_sends_shootdown + 1);
    // Write-protected and soft-clean; the A bit is untouched.
    assert_eq!(pte(&m, R), Some((false, true, false)));
    // The next write faults (the trace shows it) and reuses the exclusive folio.
    let o = write(&mut m, R);
    assert!(
        matches!(
            o,
            OpOutcome::Fault(mmreplay_reference::FaultClass::CowReuse)
        ),
        "{o:?}"
    );
    assert_eq!(pte(&m, R), Some((true, true, true)));
    assert_eq!(m.counters().softdirty_write_faults, 1);
    assert_eq!(pte(&m, R + PAGE), Some((false, true, false)));
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[test]
fn only_writes_after_a_clear_count_as_sampled() {
    let mut m = model(LruKind::Classic);
    write(&mut m, R);
    apply(&mut m, Op::ClearSoftDirty { cpu: 0, mm: MM });
    // A second clear finds the PTE read-only already; the write after it is still the first
    // since the first clear.
    apply(&mut m, Op::ClearSoftDirty { cpu: 0, mm: MM });
    assert_eq!(m.counters().softdirty_wrprotected, 1);
    write(&mut m, R);
    assert_eq!(m.counters().softdirty_write_faults, 1);
    // A COW write fault after fork write-protected the PTE is not a sampled write.
    apply(
        &mut m,
        Op::Fork {
            cpu: 0,
            parent: MM,
            child: MmId(2),
        },
    );
    write(&mut m, R);
    assert_eq!(m.counters().softdirty_write_faults, 1);
    assert!(m.counters().flt_cow_copy + m.counters().flt_cow_reuse >= 2);
}
