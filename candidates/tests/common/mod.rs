//! Op sequences shared by several test files of this crate (each test binary includes the
//! module with `mod common;`).

use mmreplay_reference::op::{madv, map, prot};
use mmreplay_reference::{
    AccessKind, Base, FileId, FileKind, FileRef, HoldId, KernelProfile, MmId, Op,
};

/// Address of the scenario's mapping.
pub const BASE: u64 = 0x40_0000_0000;
const PAGE: u64 = 4096;

/// The look-around promotion control: a private file mapping whose 64 pages are read (file
/// folios), page 0 then written (a COW anon folio), and a one-page reclaim. Eviction isolates
/// the file folios; the anon neighbour stays on its LRU, so look-around clears its A bit and
/// promotes it. KNEW profile without page-table walks, so only rmap walks age.
pub fn promote_control() -> (KernelProfile, Vec<Op>) {
    let p = KernelProfile {
        base: Base::Knew,
        lru_gen_mm_walk: false,
        ..KernelProfile::default()
    };
    let access = |va: u64, kind: AccessKind| Op::Access {
        cpu: 0,
        mm: MmId(1),
        va,
        kind,
    };
    let mut ops = vec![
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: BASE,
            len: 64 * PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE,
            file: Some(FileRef {
                id: FileId(3),
                kind: FileKind::Regular,
            }),
            pgoff: 0,
        },
    ];
    for i in 0..64 {
        ops.push(access(BASE + i * PAGE, AccessKind::Read));
    }
    ops.push(access(BASE, AccessKind::Write));
    ops.push(Op::Reclaim {
        cpu: 0,
        nr_to_reclaim: 1,
    });
    (p, ops)
}

/// 6c8e2a256915: one anon page written, MADV_FREE'd, then an O_DIRECT-style extra reference
/// (`GetRef`) taken before a one-page reclaim. The reference must abort the lazyfree discard.
pub fn lazyfree_with_extra_ref() -> Vec<Op> {
    vec![
        Op::Exec {
            cpu: 0,
            old: None,
            new: MmId(1),
        },
        Op::Mmap {
            cpu: 0,
            mm: MmId(1),
            addr: BASE,
            len: PAGE,
            prot: prot::READ | prot::WRITE,
            flags: map::PRIVATE | map::ANONYMOUS,
            file: None,
            pgoff: 0,
        },
        Op::Access {
            cpu: 0,
            mm: MmId(1),
            va: BASE,
            kind: AccessKind::Write,
        },
        Op::Madvise {
            cpu: 0,
            mm: MmId(1),
            addr: BASE,
            len: PAGE,
            advice: madv::FREE,
        },
        Op::GetRef {
            cpu: 0,
            mm: MmId(1),
            va: BASE,
            hold: HoldId(1),
        },
        Op::Reclaim {
            cpu: 0,
            nr_to_reclaim: 1,
        },
    ]
}
