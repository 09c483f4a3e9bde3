//! The MGLRU type of a shmem folio (`include/linux/mm_inline.h:lru_gen_add_folio`: `type =
//! folio_is_file_lru(folio)`, i.e. `!folio_test_swapbacked`): shmem is swap-backed, so it is
//! aged and evicted with anonymous memory (type 0), not with the page cache. Found by mutation
//! testing (issue 20): `lru.rs:17:28: replace && with || in folio_type` survived because the
//! model typed folios as `!(anon && swapbacked)`, which put shmem on the file type.

use mmreplay_reference::engine::ReclaimStep;
use mmreplay_reference::op::{map, prot, FileId, FileKind, FileRef};
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, Reference};

const ANON: u64 = 0x4000_0000;
const SHM: u64 = 0x5000_0000;
const LIB: u64 = 0x6000_0000;
const PAGE: u64 = 4096;
const MM: MmId = MmId(1);

fn apply(m: &mut Model<Reference>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

fn mmap(m: &mut Model<Reference>, addr: u64, p: u32, flags: u32, file: Option<FileRef>) {
    apply(
        m,
        Op::Mmap {
            cpu: 0,
            mm: MM,
            addr,
            len: 4 * PAGE,
            prot: p,
            flags: flags | map::FIXED,
            file,
            pgoff: 0,
        },
    );
}

fn write(m: &mut Model<Reference>, va: u64, kind: AccessKind) {
    apply(
        m,
        Op::Access {
            cpu: 0,
            mm: MM,
            va,
            kind,
        },
    );
}

/// MGLRU (the default profile), 2 CPUs, mm 1 on CPU 0 with one anon page, one shmem page
/// and one regular-file page faulted in at the same generation. The first eviction batch
/// takes the folios of one type from its oldest generation (`evict_folios` →
/// `isolate_folios`, ties going to the file type when both types' oldest generations are the
/// same age): the file page alone. Shmem, swap-backed, waits with the anon page, and the two
/// go in the next batch together.
#[test]
fn shmem_folios_are_evicted_with_anon_not_with_page_cache() {
    let mut m = Model::new(
        KernelProfile {
            nr_cpus: 2,
            full_check_every: 1,
            ..KernelProfile::default()
        },
        Reference,
    );
    apply(
        &mut m,
        Op::Exec {
            cpu: 0,
            old: None,
            new: MM,
        },
    );
    mmap(
        &mut m,
        ANON,
        prot::READ | prot::WRITE,
        map::PRIVATE | map::ANONYMOUS,
        None,
    );
    let shm = FileRef {
        id: FileId(5),
        kind: FileKind::Shmem,
    };
    mmap(
        &mut m,
        SHM,
        prot::READ | prot::WRITE,
        map::SHARED,
        Some(shm),
    );
    let lib = FileRef {
        id: FileId(6),
        kind: FileKind::Regular,
    };
    mmap(&mut m, LIB, prot::READ, map::PRIVATE, Some(lib));
    write(&mut m, ANON, AccessKind::Write);
    write(&mut m, SHM, AccessKind::Write);
    write(&mut m, LIB, AccessKind::Read);
    let (anon, shm, lib) = (
        m.folio_at(MM, ANON).expect("anon page mapped"),
        m.folio_at(MM, SHM).expect("shmem page mapped"),
        m.folio_at(MM, LIB).expect("file page mapped"),
    );
    let (r, script) = m.apply_recording(&Op::Reclaim {
        cpu: 1,
        nr_to_reclaim: 3,
    });
    assert!(r.is_ok(), "{r:?}");
    let batches: Vec<Vec<_>> = script
        .expect("a reclaim op records its rounds")
        .steps
        .iter()
        .filter_map(|s| match s {
            ReclaimStep::Evict(ids) => Some(ids.iter().map(|f| f.id).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(batches.first(), Some(&vec![lib]), "{batches:?}");
    let second = batches.get(1).cloned().unwrap_or_default();
    assert!(
        second.contains(&anon) && second.contains(&shm),
        "shmem and anon are one MGLRU type: {batches:?}"
    );
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}
