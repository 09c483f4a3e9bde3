//! Test support (feature `testing`): a proptest strategy generating random VALID op sequences
//! over a few mms and CPUs, for this crate's property tests and other crates' contract tests.
//! It must never be needed by production code.

use proptest::prelude::*;

use crate::op::{
    map, prot, AccessKind, FileId, FileKind, FileRef, HoldId, MigrateTarget, MmId, Op,
};

/// Base of the address window the generator uses (1 GiB aligned).
pub const BASE: u64 = 0x4000_0000;

/// The ops that give `mm` a running task on `cpu` and a private anonymous read-write mapping
/// of `len` bytes at `addr`, then write its first page: the setup most scenario tests start from.
pub fn anon_written(cpu: u32, mm: MmId, addr: u64, len: u64) -> Vec<Op> {
    vec![
        Op::Exec {
            cpu,
            old: None,
            new: mm,
        },
        Op::Switch {
            cpu,
            next: Some(mm),
        },
        Op::Mmap {
            cpu,
            mm,
            addr,
            len,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
        Op::Access {
            cpu,
            mm,
            va: addr,
            kind: AccessKind::Write,
        },
    ]
}
/// Pages in each generated mapping slot.
pub const SLOT_PAGES: u64 = 64;
/// Number of mapping slots (each `SLOT_PAGES` pages).
pub const SLOTS: u64 = 8;

/// Shape of a generated sequence.
#[derive(Clone, Copy, Debug)]
pub struct GenConfig {
    /// CPUs used (must be <= the profile's `nr_cpus`).
    pub nr_cpus: u32,
    /// Maximum number of mms alive at once.
    pub max_mms: u32,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            nr_cpus: 4,
            max_mms: 4,
        }
    }
}

/// A raw choice; `lower_choices` turns a list of them into a valid op sequence by tracking
/// which mms and holds exist.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Choice {
    /// Access or fault.
    Touch {
        /// Which live mm (index modulo count).
        mm: u8,
        /// CPU.
        cpu: u8,
        /// Slot and page.
        slot: u8,
        /// Page within slot.
        page: u8,
        /// 0 read, 1 write, 2 exec.
        kind: u8,
        /// Fault op (true) or access op.
        fault: bool,
    },
    /// mmap a slot (anon private, anon shared, file private, file shared).
    Map {
        /// mm index.
        mm: u8,
        /// Slot.
        slot: u8,
        /// Mapping flavour.
        flavour: u8,
        /// Writable.
        write: bool,
    },
    /// munmap part of a slot.
    Unmap {
        /// mm index.
        mm: u8,
        /// Slot.
        slot: u8,
        /// First page.
        page: u8,
        /// Pages.
        n: u8,
    },
    /// mprotect part of a slot.
    Protect {
        /// mm index.
        mm: u8,
        /// Slot.
        slot: u8,
        /// First page.
        page: u8,
        /// Pages.
        n: u8,
        /// 0: read-only, 1: read-write, 2: none.
        p: u8,
    },
    /// madvise part of a slot.
    Advise {
        /// mm index.
        mm: u8,
        /// Slot.
        slot: u8,
        /// First page.
        page: u8,
        /// Pages.
        n: u8,
        /// 0 DONTNEED, 1 FREE, 2 COLD, 3 PAGEOUT.
        a: u8,
    },
    /// fork.
    Fork {
        /// Parent index.
        mm: u8,
    },
    /// exit.
    Exit {
        /// mm index.
        mm: u8,
    },
    /// Context switch (None: kernel thread).
    Switch {
        /// CPU.
        cpu: u8,
        /// mm index, or kernel thread when >= 200.
        mm: u8,
    },
    /// Migrate the folio at a page.
    Migrate {
        /// mm index.
        mm: u8,
        /// Slot.
        slot: u8,
        /// Page.
        page: u8,
    },
    /// Reclaim episode.
    Reclaim {
        /// Pages to reclaim.
        n: u8,
    },
    /// Pin or get an extra reference.
    Hold {
        /// mm index.
        mm: u8,
        /// Slot.
        slot: u8,
        /// Page.
        page: u8,
        /// Pin (true) or FOLL_GET.
        pin: bool,
    },
    /// Release the oldest hold.
    Release {
        /// Write data on release.
        write: bool,
    },
    /// mremap a slot to another slot.
    Move {
        /// mm index.
        mm: u8,
        /// From slot.
        from: u8,
        /// To slot.
        to: u8,
    },
}

impl Choice {
    /// The choice with every field brought into the range `choice()` draws from (slots and
    /// pages in range, kinds, flavours and protections by modulo, counts at least 1). For
    /// sources of arbitrary bytes (the `ops` fuzz target), so they explore what the property
    /// tests explore.
    pub fn clamped(self) -> Choice {
        let s = |x: u8| x % SLOTS as u8;
        let p = |x: u8| x % SLOT_PAGES as u8;
        let n31 = |n: u8| 1 + n % 31;
        match self {
            Choice::Touch {
                mm,
                cpu,
                slot,
                page,
                kind,
                fault,
            } => Choice::Touch {
                mm,
                cpu,
                slot: s(slot),
                page: p(page),
                kind: kind % 3,
                fault,
            },
            Choice::Map {
                mm,
                slot,
                flavour,
                write,
            } => Choice::Map {
                mm,
                slot: s(slot),
                flavour: flavour % 4,
                write,
            },
            Choice::Unmap { mm, slot, page, n } => Choice::Unmap {
                mm,
                slot: s(slot),
                page: p(page),
                n: n31(n),
            },
            Choice::Protect {
                mm,
                slot,
                page,
                n,
                p: pr,
            } => Choice::Protect {
                mm,
                slot: s(slot),
                page: p(page),
                n: n31(n),
                p: pr % 3,
            },
            Choice::Advise {
                mm,
                slot,
                page,
                n,
                a,
            } => Choice::Advise {
                mm,
                slot: s(slot),
                page: p(page),
                n: n31(n),
                a: a % 4,
            },
            Choice::Migrate { mm, slot, page } => Choice::Migrate {
                mm,
                slot: s(slot),
                page: p(page),
            },
            Choice::Reclaim { n } => Choice::Reclaim { n: 1 + n % 63 },
            Choice::Hold {
                mm,
                slot,
                page,
                pin,
            } => Choice::Hold {
                mm,
                slot: s(slot),
                page: p(page),
                pin,
            },
            Choice::Move { mm, from, to } => Choice::Move {
                mm,
                from: s(from),
                to: s(to),
            },
            c @ (Choice::Fork { .. }
            | Choice::Exit { .. }
            | Choice::Switch { .. }
            | Choice::Release { .. }) => c,
        }
    }
}

fn choice() -> impl Strategy<Value = Choice> {
    let b = any::<u8>;
    prop_oneof![
        30 => (b(), b(), 0..SLOTS as u8, 0..SLOT_PAGES as u8, 0u8..3, any::<bool>())
            .prop_map(|(mm, cpu, slot, page, kind, fault)| Choice::Touch { mm, cpu, slot, page, kind, fault }),
        6 => (b(), 0..SLOTS as u8, 0u8..4, any::<bool>()).prop_map(|(mm, slot, flavour, write)| Choice::Map { mm, slot, flavour, write }),
        2 => (b(), 0..SLOTS as u8, 0..SLOT_PAGES as u8, 1u8..32).prop_map(|(mm, slot, page, n)| Choice::Unmap { mm, slot, page, n }),
        2 => (b(), 0..SLOTS as u8, 0..SLOT_PAGES as u8, 1u8..32, 0u8..3).prop_map(|(mm, slot, page, n, p)| Choice::Protect { mm, slot, page, n, p }),
        3 => (b(), 0..SLOTS as u8, 0..SLOT_PAGES as u8, 1u8..32, 0u8..4).prop_map(|(mm, slot, page, n, a)| Choice::Advise { mm, slot, page, n, a }),
        2 => b().prop_map(|mm| Choice::Fork { mm }),
        1 => b().prop_map(|mm| Choice::Exit { mm }),
        4 => (b(), b()).prop_map(|(cpu, mm)| Choice::Switch { cpu, mm }),
        2 => (b(), 0..SLOTS as u8, 0..SLOT_PAGES as u8).prop_map(|(mm, slot, page)| Choice::Migrate { mm, slot, page }),
        2 => (1u8..64).prop_map(|n| Choice::Reclaim { n }),
        1 => (b(), 0..SLOTS as u8, 0..SLOT_PAGES as u8, any::<bool>()).prop_map(|(mm, slot, page, pin)| Choice::Hold { mm, slot, page, pin }),
        1 => any::<bool>().prop_map(|write| Choice::Release { write }),
        1 => (b(), 0..SLOTS as u8, 0..SLOTS as u8).prop_map(|(mm, from, to)| Choice::Move { mm, from, to }),
    ]
}

fn slot_addr(slot: u8, page: u8) -> u64 {
    BASE + u64::from(slot) * SLOT_PAGES * 4096 + u64::from(page) * 4096
}

/// Turn choices into a valid op sequence: mm ids exist when used, fork children are new,
/// holds are released at most once, migrations target mapped pages only through `Va` (the
/// model returns `NotMapped` for unmapped ones, which the generator avoids by construction only
/// loosely: such errors are legal outcomes and are counted, not failures).
pub fn lower_choices(cfg: GenConfig, choices: &[Choice]) -> Vec<Op> {
    let nr_cpus = cfg.nr_cpus.max(1);
    let mut ops = Vec::with_capacity(choices.len() + 2);
    let mut live: Vec<u32> = vec![1];
    let mut next_mm = 2u32;
    let mut holds: Vec<u64> = Vec::new();
    let mut next_hold = 1u64;
    ops.push(Op::Exec {
        cpu: 0,
        old: None,
        new: MmId(1),
    });
    let pick = |live: &Vec<u32>, i: u8| -> Option<MmId> {
        if live.is_empty() {
            None
        } else {
            live.get(usize::from(i) % live.len()).map(|m| MmId(*m))
        }
    };
    for c in choices {
        if live.is_empty() {
            ops.push(Op::Exec {
                cpu: 0,
                old: None,
                new: MmId(next_mm),
            });
            live.push(next_mm);
            next_mm += 1;
        }
        match *c {
            Choice::Touch {
                mm,
                cpu,
                slot,
                page,
                kind,
                fault,
            } => {
                let Some(mm) = pick(&live, mm) else { continue };
                let kind = match kind {
                    0 => AccessKind::Read,
                    1 => AccessKind::Write,
                    _ => AccessKind::Exec,
                };
                let cpu = u32::from(cpu) % nr_cpus;
                let va = slot_addr(slot, page);
                ops.push(if fault {
                    Op::Fault { cpu, mm, va, kind }
                } else {
                    Op::Access { cpu, mm, va, kind }
                });
            }
            Choice::Map {
                mm,
                slot,
                flavour,
                write,
            } => {
                let Some(mm) = pick(&live, mm) else { continue };
                let p = prot::READ
                    | if write { prot::WRITE } else { 0 }
                    | if flavour == 0 { prot::EXEC } else { 0 };
                let (flags, file) = match flavour {
                    0 => (map::PRIVATE | map::ANONYMOUS, None),
                    1 => (map::SHARED | map::ANONYMOUS, None),
                    2 => (
                        map::PRIVATE,
                        Some(FileRef {
                            id: FileId(u64::from(slot) % 3),
                            kind: FileKind::Regular,
                        }),
                    ),
                    _ => (
                        map::SHARED,
                        Some(FileRef {
                            id: FileId(u64::from(slot) % 3),
                            kind: FileKind::Regular,
                        }),
                    ),
                };
                ops.push(Op::Mmap {
                    cpu: 0,
                    mm,
                    addr: slot_addr(slot, 0),
                    len: SLOT_PAGES * 4096,
                    prot: p,
                    flags,
                    file,
                    pgoff: 0,
                });
            }
            Choice::Unmap { mm, slot, page, n } => {
                let Some(mm) = pick(&live, mm) else { continue };
                ops.push(Op::Munmap {
                    cpu: 1 % nr_cpus,
                    mm,
                    addr: slot_addr(slot, page),
                    len: u64::from(n) * 4096,
                });
            }
            Choice::Protect {
                mm,
                slot,
                page,
                n,
                p,
            } => {
                let Some(mm) = pick(&live, mm) else { continue };
                let prot = match p {
                    0 => prot::READ,
                    1 => prot::READ | prot::WRITE,
                    _ => 0,
                };
                ops.push(Op::Mprotect {
                    cpu: 0,
                    mm,
                    addr: slot_addr(slot, page),
                    len: u64::from(n) * 4096,
                    prot,
                });
            }
            Choice::Advise {
                mm,
                slot,
                page,
                n,
                a,
            } => {
                let Some(mm) = pick(&live, mm) else { continue };
                let advice = [4, 8, 20, 21][usize::from(a % 4)];
                ops.push(Op::Madvise {
                    cpu: 0,
                    mm,
                    addr: slot_addr(slot, page),
                    len: u64::from(n) * 4096,
                    advice,
                });
            }
            Choice::Fork { mm } => {
                if live.len() as u32 >= cfg.max_mms {
                    continue;
                }
                let Some(parent) = pick(&live, mm) else {
                    continue;
                };
                ops.push(Op::Fork {
                    cpu: 0,
                    parent,
                    child: MmId(next_mm),
                });
                live.push(next_mm);
                next_mm += 1;
            }
            Choice::Exit { mm } => {
                if live.len() <= 1 {
                    continue;
                }
                let i = usize::from(mm) % live.len();
                let id = live.remove(i);
                ops.push(Op::Exit {
                    cpu: 0,
                    mm: MmId(id),
                });
            }
            Choice::Switch { cpu, mm } => {
                let cpu = u32::from(cpu) % nr_cpus;
                let next = if mm >= 200 { None } else { pick(&live, mm) };
                ops.push(Op::Switch { cpu, next });
            }
            Choice::Migrate { mm, slot, page } => {
                let Some(mm) = pick(&live, mm) else { continue };
                ops.push(Op::Migrate {
                    cpu: 1 % nr_cpus,
                    target: MigrateTarget::Va {
                        mm,
                        va: slot_addr(slot, page),
                    },
                });
            }
            // One in four episodes is memcg reclaim of a live mm's memcg (children forked
            // later inherit it).
            Choice::Reclaim { n } if n % 4 == 0 && !live.is_empty() => {
                if let Some(mm) = pick(&live, n / 4) {
                    ops.push(Op::SetMemcg { mm, memcg: 1 });
                }
                ops.push(Op::ReclaimMemcg {
                    cpu: (nr_cpus - 1),
                    nr_to_reclaim: u32::from(n),
                    memcg: 1,
                });
            }
            Choice::Reclaim { n } => ops.push(Op::Reclaim {
                cpu: (nr_cpus - 1),
                nr_to_reclaim: u32::from(n),
            }),
            Choice::Hold {
                mm,
                slot,
                page,
                pin,
            } => {
                let Some(mm) = pick(&live, mm) else { continue };
                let hold = HoldId(next_hold);
                next_hold += 1;
                holds.push(hold.0);
                let va = slot_addr(slot, page);
                ops.push(if pin {
                    Op::Pin {
                        cpu: 0,
                        mm,
                        va,
                        write: false,
                        hold,
                    }
                } else {
                    Op::GetRef {
                        cpu: 0,
                        mm,
                        va,
                        hold,
                    }
                });
            }
            Choice::Release { write } => {
                if holds.is_empty() {
                    continue;
                }
                let h = HoldId(holds.remove(0));
                // Which kind it was is not tracked here: Unpin and PutRef both release; the model
                // errors (UnknownHold) are avoided by using PutRef for every hold kind? No: use
                // the matching op by parity of the id is not reliable, so emit PutRef with write
                // only for extra refs; the model treats PutRef on a pin as a release too.
                ops.push(Op::PutRef { hold: h, write });
            }
            Choice::Move { mm, from, to } => {
                if from == to {
                    continue;
                }
                let Some(mm) = pick(&live, mm) else { continue };
                ops.push(Op::Mremap {
                    cpu: 0,
                    mm,
                    old_addr: slot_addr(from, 0),
                    old_len: SLOT_PAGES * 4096,
                    new_addr: slot_addr(to, 0),
                    new_len: SLOT_PAGES * 4096,
                });
            }
        }
    }
    ops
}

/// Strategy: random valid op sequences of up to `max_len` choices with the default config.
pub fn arb_ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    arb_ops_with(GenConfig::default(), max_len)
}

/// Strategy with an explicit config.
pub fn arb_ops_with(cfg: GenConfig, max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(choice(), 0..max_len.max(1))
        .prop_map(move |cs| lower_choices(cfg, &cs))
}

/// Deterministic pseudo-random op sequence (no proptest runner), for benchmarks.
pub fn random_ops(cfg: GenConfig, n: usize, seed: u64) -> Vec<Op> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut choices = Vec::with_capacity(n);
    for _ in 0..n {
        let r = next();
        let b = |k: u32| ((r >> k) & 0xff) as u8;
        let sel = r % 100;
        let c = if sel < 85 {
            Choice::Touch {
                mm: b(8),
                cpu: b(16),
                slot: b(24) % SLOTS as u8,
                page: b(32) % SLOT_PAGES as u8,
                kind: b(40) % 2,
                fault: false,
            }
        } else if sel < 88 {
            Choice::Map {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                flavour: b(24) % 4,
                write: true,
            }
        } else if sel < 90 {
            Choice::Unmap {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                page: b(24) % SLOT_PAGES as u8,
                n: 1 + b(32) % 16,
            }
        } else if sel < 93 {
            Choice::Switch {
                cpu: b(8),
                mm: b(16),
            }
        } else if sel < 95 {
            Choice::Advise {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                page: b(24) % SLOT_PAGES as u8,
                n: 1 + b(32) % 16,
                a: b(40) % 4,
            }
        } else if sel < 96 {
            Choice::Fork { mm: b(8) }
        } else if sel < 97 {
            Choice::Exit { mm: b(8) }
        } else if sel < 98 {
            Choice::Migrate {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                page: b(24) % SLOT_PAGES as u8,
            }
        } else if sel < 99 {
            Choice::Reclaim { n: 1 + b(8) % 32 }
        } else {
            Choice::Protect {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                page: b(24) % SLOT_PAGES as u8,
                n: 1 + b(32) % 16,
                p: b(40) % 2,
            }
        };
        choices.push(c);
    }
    lower_choices(cfg, &choices)
}

/// Deterministic access-heavy op sequence with locality, closer to a replayed trace: each CPU
/// mostly keeps running one mm and touches a small working set of its pages (so most accesses
/// hit the TLB or fault on a page nearby); the rest of the mix is the same kinds as
/// `random_ops` at low rates.
pub fn random_ops_local(cfg: GenConfig, n: usize, seed: u64) -> Vec<Op> {
    let nr_cpus = cfg.nr_cpus.max(1);
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut choices = Vec::with_capacity(n);
    // Every mm starts with all slots mapped anon (flavour 0) so accesses mostly succeed.
    for mm in 0..cfg.max_mms as u8 {
        for slot in 0..SLOTS as u8 {
            choices.push(Choice::Map {
                mm,
                slot,
                flavour: if slot % 4 == 3 { 2 } else { 0 },
                write: true,
            });
        }
    }
    for _ in 1..cfg.max_mms {
        choices.push(Choice::Fork { mm: 0 });
    }
    let mut running: Vec<u8> = (0..nr_cpus as u8).collect();
    for _ in 0..n {
        let r = next();
        let b = |k: u32| ((r >> k) & 0xff) as u8;
        let sel = r % 1000;
        let c = if sel < 970 {
            let cpu = b(8) % nr_cpus as u8;
            let mm = running.get(usize::from(cpu)).copied().unwrap_or(0);
            // Working set: 2 slots x 16 pages per mm.
            Choice::Touch {
                mm,
                cpu,
                slot: (mm % 4) * 2 + b(16) % 2,
                page: b(24) % 16,
                kind: u8::from(b(32) % 4 == 0),
                fault: false,
            }
        } else if sel < 990 {
            let cpu = b(8) % nr_cpus as u8;
            let mm = b(16);
            if let Some(x) = running.get_mut(usize::from(cpu)) {
                *x = mm;
            }
            Choice::Switch { cpu, mm }
        } else if sel < 994 {
            Choice::Advise {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                page: b(24) % SLOT_PAGES as u8,
                n: 1 + b(32) % 8,
                a: 2,
            }
        } else if sel < 996 {
            Choice::Migrate {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                page: b(24) % 16,
            }
        } else if sel < 998 {
            Choice::Protect {
                mm: b(8),
                slot: b(16) % SLOTS as u8,
                page: b(24) % 16,
                n: 1 + b(32) % 4,
                p: 1,
            }
        } else {
            Choice::Reclaim { n: 1 + b(8) % 8 }
        };
        choices.push(c);
    }
    lower_choices(cfg, &choices)
}
