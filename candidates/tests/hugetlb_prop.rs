//! Property test over hugetlb PMD-sharing workloads, which the reference generator does not
//! produce: random fork / attach (a second mmap of the same hugetlbfs file) / exit / munmap /
//! mprotect / touch over a 4 GiB MAP_SHARED hugetlb mapping (4 shareable PMD tables).
//! Checks: batched-unshare's (and `all`'s) lockstep contract holds and adds no violation;
//! table-sync IPIs never exceed the reference's; and the no-sync negative control trips I3
//! whenever the reference took a table to pt_share_count 0 (pmd_full_unshares > 0).

use mmreplay_candidates::contract::{Mode, Observed};
use mmreplay_candidates::negative::NoSyncUnshare;
use mmreplay_candidates::registry;
use mmreplay_reference::op::{map, prot};
use mmreplay_reference::{
    AccessKind, FileId, FileKind, FileRef, Invariant, KernelProfile, MmId, Model, Op, Reference,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const BASE: u64 = 0x40_0000_0000;
const G: u64 = 4;

#[derive(Clone, Debug)]
enum Hc {
    Fork(u8, u8),
    Attach(u8),
    Exit(u8),
    Unmap(u8, u8, u8, u8),
    Mprotect(u8, u8, u8, u8, bool),
    Touch(u8, u8, u8, u16, bool),
}

fn hc() -> impl Strategy<Value = Hc> {
    prop_oneof![
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Hc::Fork(a, b)),
        1 => any::<u8>().prop_map(Hc::Attach),
        2 => any::<u8>().prop_map(Hc::Exit),
        2 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c, d)| Hc::Unmap(a, b, c, d)),
        1 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(a, b, c, d, e)| Hc::Mprotect(a, b, c, d, e)),
        3 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>(), any::<bool>())
            .prop_map(|(a, b, c, d, e)| Hc::Touch(a, b, c, d, e)),
    ]
}

fn file() -> Option<FileRef> {
    Some(FileRef {
        id: FileId(42),
        kind: FileKind::Hugetlbfs,
    })
}

fn map_and_touch(ops: &mut Vec<Op>, mm: u32, cpu: u32) {
    ops.push(Op::Mmap {
        cpu,
        mm: MmId(mm),
        addr: BASE,
        len: G * GIB,
        prot: prot::READ | prot::WRITE,
        flags: map::SHARED,
        file: file(),
        pgoff: 0,
    });
    for i in 0..G {
        ops.push(Op::Access {
            cpu,
            mm: MmId(mm),
            va: BASE + i * GIB,
            kind: AccessKind::Read,
        });
    }
}

fn lower(cs: &[Hc]) -> Vec<Op> {
    let mut ops = vec![Op::Exec {
        cpu: 0,
        old: None,
        new: MmId(1),
    }];
    map_and_touch(&mut ops, 1, 0);
    let mut live: Vec<u32> = vec![1];
    let mut next = 2u32;
    let pick = |live: &[u32], i: u8| live.get(usize::from(i) % live.len().max(1)).copied();
    let range = |a: u8, n: u8| {
        let s = u64::from(a) % G;
        let n = 1 + u64::from(n) % (G - s);
        (BASE + s * GIB, n * GIB)
    };
    for c in cs {
        match *c {
            Hc::Fork(p, cpu) => {
                if let Some(parent) = pick(&live, p) {
                    if live.len() < 6 {
                        ops.push(Op::Fork {
                            cpu: u32::from(cpu % 4),
                            parent: MmId(parent),
                            child: MmId(next),
                        });
                        live.push(next);
                        next += 1;
                    }
                }
            }
            Hc::Attach(cpu) => {
                if live.len() < 6 {
                    let cpu = u32::from(cpu % 4);
                    ops.push(Op::Exec {
                        cpu,
                        old: None,
                        new: MmId(next),
                    });
                    map_and_touch(&mut ops, next, cpu);
                    live.push(next);
                    next += 1;
                }
            }
            Hc::Exit(i) => {
                if let Some(m) = pick(&live, i) {
                    ops.push(Op::Exit {
                        cpu: 0,
                        mm: MmId(m),
                    });
                    live.retain(|x| *x != m);
                }
            }
            Hc::Unmap(i, a, n, cpu) => {
                if let Some(m) = pick(&live, i) {
                    let (addr, len) = range(a, n);
                    ops.push(Op::Munmap {
                        cpu: u32::from(cpu % 4),
                        mm: MmId(m),
                        addr,
                        len,
                    });
                }
            }
            Hc::Mprotect(i, a, n, cpu, ro) => {
                if let Some(m) = pick(&live, i) {
                    let (addr, len) = range(a, n);
                    let p = if ro {
                        prot::READ
                    } else {
                        prot::READ | prot::WRITE
                    };
                    ops.push(Op::Mprotect {
                        cpu: u32::from(cpu % 4),
                        mm: MmId(m),
                        addr,
                        len,
                        prot: p,
                    });
                }
            }
            Hc::Touch(i, cpu, g, page, write) => {
                if let Some(m) = pick(&live, i) {
                    ops.push(Op::Access {
                        cpu: u32::from(cpu % 4),
                        mm: MmId(m),
                        va: BASE + u64::from(g) % G * GIB + u64::from(page % 512) * (2 << 20),
                        kind: if write {
                            AccessKind::Write
                        } else {
                            AccessKind::Read
                        },
                    });
                }
            }
        }
    }
    for m in live {
        ops.push(Op::Exit {
            cpu: 0,
            mm: MmId(m),
        });
    }
    ops
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn unshare_contracts_and_no_sync_control(cs in proptest::collection::vec(hc(), 0..40)) {
        let ops = lower(&cs);
        let profile = KernelProfile::default();
        let mut r = Model::new(profile.clone(), Reference);
        for op in &ops {
            let _ = r.apply(op);
        }
        r.finish();
        prop_assert!(r.violations().is_empty(), "reference: {:?}", r.violations());
        let rs = r.snapshot();
        for name in ["batched-unshare", "all"] {
            let spec = registry::parse(name).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut c = spec.build(&profile);
            for op in &ops {
                let _ = c.apply(op);
            }
            c.finish();
            prop_assert!(c.violations().is_empty(), "{}: {:?}", name, c.violations());
            prop_assert!(c.counters().ipi_sends_table_sync <= r.counters().ipi_sends_table_sync);
            let cs = c.snapshot();
            let b = spec.contract(Mode::Lockstep, &profile).check(
                Observed { counters: r.counters(), snapshot: &rs },
                Observed { counters: c.counters(), snapshot: &cs },
            );
            prop_assert!(b.is_empty(), "{}: {:#?}", name, b);
        }
        let mut n = Model::new(profile.clone(), NoSyncUnshare);
        for op in &ops {
            let _ = n.apply(op);
        }
        n.finish();
        let i3 = n.violations().iter().filter(|v| v.invariant == Invariant::I3).count();
        if r.counters().pmd_full_unshares > 0 {
            prop_assert!(i3 > 0, "no-sync control not caught: {} full unshares", r.counters().pmd_full_unshares);
        } else {
            prop_assert_eq!(i3, 0);
        }
    }
}

/// The generator really produces sharing and full unshares (not a vacuous property).
#[test]
fn generator_produces_full_unshares() {
    let cs = vec![
        Hc::Fork(0, 0),
        Hc::Fork(0, 1),
        Hc::Exit(1),
        Hc::Unmap(0, 0, 1, 2),
        Hc::Exit(0),
    ];
    let ops = lower(&cs);
    let mut r = Model::new(KernelProfile::default(), Reference);
    for op in &ops {
        let _ = r.apply(op);
    }
    let c = r.counters();
    println!(
        "hugetlb generator sample: pmd_shares {} pmd_unshares {} full {} table syncs {}",
        c.pmd_shares, c.pmd_unshares, c.pmd_full_unshares, c.ipi_sends_table_sync
    );
    assert!(c.pmd_shares >= 2 * G && c.pmd_full_unshares > 0);
}
