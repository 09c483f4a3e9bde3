//! A fresh-seed failure of `contracts_prop::free_running_contracts_hold` ("K61 lookaround"),
//! kept as a scenario: after a fork, reclaim swaps out a page both processes map (look-around
//! changes which page reclaim picks, so only the candidate swaps it out here). The parent's
//! write fault then swaps it in while the child's swap PTE still references the slot.
//! `do_wp_page` (6.1 and 6.18) tries `folio_free_swap`, which cannot free a slot still
//! referenced, so the folio keeps its swap-cache reference and is copied; reusing it (the
//! model's bug) made the child later read the parent's write.

use mmreplay_candidates::registry;
use mmreplay_reference::op::{AccessKind, FaultClass, HoldId, MmId, Op, OpOutcome};
use mmreplay_reference::{Base, KernelProfile};

#[test]
fn write_after_swapin_of_a_page_a_sibling_still_swaps_copies() {
    let profile = KernelProfile {
        base: Base::K61,
        ..KernelProfile::default()
    };
    let va = 0x401d_e000;
    let ops = [
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: 0x401c_0000,
            len: 0x4_0000,
            prot: 7,
            flags: 34,
            file: None,
            pgoff: 0,
        },
        Op::Access {
            cpu: 0,
            mm: MmId(1),
            va,
            kind: AccessKind::Write,
        },
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: 0x4010_0000,
            len: 0x4_0000,
            prot: 1,
            flags: 33,
            file: None,
            pgoff: 0,
        },
        Op::Pin {
            cpu: 0,
            mm: MmId(1),
            va: 0x4011_0000,
            write: false,
            hold: HoldId(1),
        },
        Op::Reclaim {
            cpu: 3,
            nr_to_reclaim: 1,
        },
        Op::Access {
            cpu: 0,
            mm: MmId(1),
            va: 0x4011_0000,
            kind: AccessKind::Read,
        },
        Op::Fork {
            cpu: 0,
            parent: MmId(1),
            child: MmId(2),
        },
        Op::Reclaim {
            cpu: 3,
            nr_to_reclaim: 5,
        },
        Op::Access {
            cpu: 0,
            mm: MmId(1),
            va,
            kind: AccessKind::Write,
        },
    ];
    for name in ["reference", "lookaround"] {
        let mut m = registry::parse(name).unwrap().build(&profile);
        let mut last = None;
        for op in &ops {
            last = Some(m.apply(op).unwrap());
        }
        m.finish();
        assert!(m.violations().is_empty(), "{name}: {:?}", m.violations());
        // The parent's write copies; the child keeps the content from before it.
        assert_eq!(last, Some(OpOutcome::Fault(FaultClass::CowCopy)), "{name}");
        let snap = m.snapshot().to_text();
        let pte = |mm: &str| {
            snap.lines()
                .find(|l| l.starts_with(&format!("{mm} pte 0x401de000")))
                .unwrap_or_default()
                .to_string()
        };
        assert_ne!(pte("mm1"), "", "{name}: {snap}");
        assert_ne!(pte("mm2"), "", "{name}: {snap}");
        let folio = |l: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("folio="))
                .map(str::to_string)
        };
        assert_ne!(
            folio(&pte("mm1")),
            folio(&pte("mm2")),
            "{name}: parent and child share the written page\n{snap}"
        );
    }
    // The scenario reaches the bug's path: the candidate swapped the page out and in.
    let mut c = registry::parse("lookaround").unwrap().build(&profile);
    for op in &ops {
        let _ = c.apply(op);
    }
    assert!(c.counters().swap_in >= 1, "{:?}", c.counters());
}
