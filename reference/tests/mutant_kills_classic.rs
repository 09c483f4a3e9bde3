//! Fast tests for mutants of `model/classic.rs` (the classic active/inactive LRU) that survived
//! the crate's other tests (`.ci/mutants ref-classic`, issue 20): each names the mutant it
//! kills and the kernel rule it holds the model to. Survivors not killed here are listed with
//! the reason in `reference/mutants-equivalent.md`.

use mmreplay_reference::engine::ReclaimStep;
use mmreplay_reference::op::prot;
use mmreplay_reference::profile::LruKind;
use mmreplay_reference::{AccessKind, HoldId, KernelProfile, MmId, Model, Op, Reference};

mod common;

const LIB: u64 = 0x7f00_0000_0000;
const ANON: u64 = 0x4000_0000;
const PAGE: u64 = 4096;
const MM: MmId = MmId(1);

fn apply(m: &mut Model<Reference>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

/// Classic LRU, 2 CPUs: mm 1 on CPU 0 with `nfile` pages of a regular file (read-only,
/// private) and `nanon` anonymous pages, all faulted in from CPU 0.
fn classic(nfile: u64, nanon: u64) -> Model<Reference> {
    classic_with(nfile, prot::READ, nanon)
}

/// [`classic`] with the file mapped with `file_prot`.
fn classic_with(nfile: u64, file_prot: u32, nanon: u64) -> Model<Reference> {
    let profile = KernelProfile {
        nr_cpus: 2,
        full_check_every: 1,
        lru: LruKind::Classic,
        ..KernelProfile::default()
    };
    let mut m = Model::new(profile, Reference);
    apply(&mut m, common::exec(0, MM));
    apply(
        &mut m,
        common::file_fixed(0, MM, LIB, nfile * PAGE, file_prot, 3),
    );
    apply(&mut m, common::anon_fixed(0, MM, ANON, nanon * PAGE));
    for i in 0..nfile {
        fault(&mut m, LIB + i * PAGE, AccessKind::Read);
    }
    for i in 0..nanon {
        fault(&mut m, ANON + i * PAGE, AccessKind::Write);
    }
    m
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

fn resident(m: &Model<Reference>, base: u64, n: u64) -> usize {
    (0..n)
        .filter(|i| m.pfn_at(MM, base + i * PAGE).is_some())
        .count()
}

/// Re-reference every resident anon page from CPU 1 (a TLB miss there: the page walk sets
/// the A bit that the last reclaim's `folio_referenced` cleared), then leave CPU 1 again.
fn rereference_anon(m: &mut Model<Reference>, nanon: u64) {
    rereference(m, ANON, nanon);
}

/// [`rereference_anon`] for the `n` pages at `base`.
fn rereference(m: &mut Model<Reference>, base: u64, n: u64) {
    apply(
        m,
        Op::Switch {
            cpu: 1,
            next: Some(MM),
        },
    );
    for i in 0..n {
        let va = base + i * PAGE;
        if m.pfn_at(MM, va).is_some() {
            apply(
                m,
                Op::Access {
                    cpu: 1,
                    mm: MM,
                    va,
                    kind: AccessKind::Read,
                },
            );
        }
    }
    apply(m, Op::Switch { cpu: 1, next: None });
}

/// Kills `== -> !=` in `get_scan_count`'s `SCAN_FILE` balance (`if t == 1 { scan }`,
/// classic.rs:416): with enough inactive page cache (`sc->cache_trim_mode`) the kernel
/// reclaims file pages only and leaves the anonymous working set alone. 64 clean file pages
/// and 64 anon pages: reclaim frees page cache and swaps nothing out (the mutant scans anon
/// only, and the second look at an anon page already marked referenced reclaims it).
#[test]
fn cache_trim_reclaims_page_cache_and_leaves_anon_alone() {
    let mut m = classic(64, 64);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 8,
        },
    );
    let c = m.counters();
    assert!(c.evictions >= 8, "evictions {}", c.evictions);
    assert_eq!(c.swap_out, 0);
    assert_eq!(resident(&m, ANON, 64), 64);
    assert_eq!(resident(&m, LIB, 64), 64 - c.evictions as usize);
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

/// Anon pages referenced twice (a second PTE reference after the first reclaim marked them)
/// are activated; a later reclaim, finding the inactive anon list low, deactivates them.
/// Returns the model after `rounds` recorded reclaims of 32 pages and their scripts.
fn activate_then_reclaim(rounds: usize) -> (Model<Reference>, Vec<Vec<ReclaimStep>>) {
    let mut m = classic(8, 64);
    let mut scripts = Vec::new();
    for r in 0..rounds {
        if r == 1 {
            rereference_anon(&mut m, 64);
        }
        let (res, script) = m.apply_recording(&Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 32,
        });
        assert!(res.is_ok(), "{res:?}");
        scripts.push(script.expect("a reclaim op records its rounds").steps);
    }
    (m, scripts)
}

/// Kills `shrink_active_isolated -> vec![]` (classic.rs:627): `shrink_active_list` moves every
/// folio it takes off the active list to the inactive list except referenced VM_EXEC file
/// folios, which rotate; the recorded `Deactivate` step says so for each folio (a lockstep
/// follower deactivates exactly those). Here every folio is anon: all deactivated.
#[test]
fn shrink_active_list_records_every_anon_folio_as_deactivated() {
    let (mut m, scripts) = activate_then_reclaim(3);
    assert!(m.counters().vmscan_activated > 0);
    let mut recorded = 0u64;
    for steps in &scripts {
        for s in steps {
            if let ReclaimStep::Deactivate(ids) = s {
                assert!(ids.iter().all(|f| f.reclaim), "{ids:?}");
                recorded += ids.len() as u64;
            }
        }
    }
    assert!(recorded > 0, "no shrink_active_list pass");
    assert_eq!(recorded, m.counters().vmscan_deactivated);
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

/// The same reclaims followed in lockstep by a second model with the same history end in the
/// same state with nothing skipped or extra: the script carries every decision of the classic
/// LRU (isolation order, references, activation, deactivation).
#[test]
fn classic_lockstep_follower_ends_in_the_recorders_state() {
    let mut leader = classic(8, 64);
    let mut follower = classic(8, 64);
    for r in 0..4 {
        if r == 1 {
            rereference_anon(&mut leader, 64);
            rereference_anon(&mut follower, 64);
        }
        let op = Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 32,
        };
        let (res, script) = leader.apply_recording(&op);
        assert!(res.is_ok(), "{res:?}");
        let script = script.expect("a reclaim op records its rounds");
        let (res, imp) = follower.apply_imposed(&op, &script);
        assert!(res.is_ok(), "{res:?}");
        assert_eq!((imp.skipped, imp.extra), (0, 0), "{:?}", imp.first_skip);
        assert_eq!(follower.state_hash(), leader.state_hash(), "round {r}");
    }
    assert!(leader.counters().vmscan_deactivated > 0);
    assert_eq!(follower.counters(), leader.counters());
}

/// Kills `+= -> *=` on `vmscan_rotated` in `shrink_active_isolated` (classic.rs:652):
/// `shrink_active_list` keeps referenced VM_EXEC file folios on the active list (`nr_rotated`,
/// "give them one more trip around the active list"). Executable file pages are activated at
/// their first reference (`folio_check_references`); referenced again, they fill the active
/// list while the inactive file list is empty (low), so the next reclaim rotates them.
#[test]
fn referenced_executable_file_folios_rotate_on_the_active_list() {
    let mut m = classic_with(8, prot::READ | prot::EXEC, 4);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 32,
        },
    );
    assert_eq!(
        m.counters().vmscan_activated,
        8,
        "exec file pages activated at once"
    );
    rereference(&mut m, LIB, 8);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 32,
        },
    );
    let c = m.counters();
    assert!(c.vmscan_rotated > 0, "rotated {}", c.vmscan_rotated);
    assert_eq!(
        c.vmscan_deactivated + c.vmscan_rotated,
        c.vmscan_active_scanned
    );
    assert_eq!(resident(&m, LIB, 8), 8, "rotated pages stay");
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

/// Kills `+= -> *=` on `vmscan_unmap_fail` and on `activated` in `classic_shrink_folio_list`
/// (classic.rs:781-782): an anon page pinned with FOLL_PIN cannot be unmapped
/// (`try_to_unmap_one`: `page_try_share_anon_rmap` fails on a maybe-DMA-pinned exclusive
/// page): `nr_unmap_fail`, and the folio is activated (`nr_activate`) and stays mapped.
#[test]
fn pinned_page_counts_an_unmap_failure() {
    let mut m = classic(8, 4);
    apply(
        &mut m,
        Op::Pin {
            cpu: 0,
            mm: MM,
            va: ANON,
            write: false,
            hold: HoldId(1),
        },
    );
    for _ in 0..3 {
        apply(
            &mut m,
            Op::Reclaim {
                cpu: 1,
                nr_to_reclaim: 32,
            },
        );
    }
    let c = m.counters();
    assert_eq!(c.vmscan_unmap_fail, 1);
    // `activate_locked`: the failed folio counts in `nr_activate` too (classic.rs:782).
    assert!(c.vmscan_activated >= c.vmscan_unmap_fail);
    assert_eq!(resident(&m, ANON, 4), 1, "only the pinned page stays");
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}

/// Kills `>= -> <` in `lru::add_at`'s classic branch (`seq >= 1` is PG_active, lru.rs:24):
/// `migrate_folio` copies PG_active to the new folio (`folio_migrate_flags`), so an active
/// folio stays on the active list after migration. Executable file pages are active after
/// their first reference.
#[test]
fn migrated_active_folio_stays_active() {
    let mut m = classic_with(8, prot::READ | prot::EXEC, 4);
    apply(
        &mut m,
        Op::Reclaim {
            cpu: 1,
            nr_to_reclaim: 32,
        },
    );
    let age = |m: &Model<Reference>| {
        let id = m.folio_at(MM, LIB).expect("mapped");
        m.snapshot()
            .folios
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.lru_age)
    };
    let before = age(&m);
    apply(
        &mut m,
        Op::Migrate {
            cpu: 0,
            target: mmreplay_reference::MigrateTarget::Va { mm: MM, va: LIB },
        },
    );
    assert_eq!(m.counters().migrations, 1);
    assert_eq!(age(&m), before);
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}
