//! Fast tests for mutants of `model/lru.rs` (the MGLRU list primitives) that survived the
//! crate's other tests (`.ci/mutants ref-lru`, issue 20): each names the mutant it kills and
//! the kernel rule it holds the model to. Survivors not killed here are listed with the
//! reason in `reference/mutants-equivalent.md`.

use mmreplay_reference::op::{madv, map, prot, FileId, FileKind, FileRef};
use mmreplay_reference::{AccessKind, KernelProfile, MmId, Model, Op, Reference};

const A: u64 = 0x7000_0000;
const LIB: u64 = 0x6000_0000;
const PAGE: u64 = 4096;

fn apply(m: &mut Model<Reference>, op: Op) {
    if let Err(e) = m.apply(&op) {
        panic!("op {op:?} failed: {e}");
    }
}

fn access(m: &mut Model<Reference>, cpu: u32, mm: MmId, va: u64, kind: AccessKind) {
    apply(m, Op::Access { cpu, mm, va, kind });
}

fn mmap(m: &mut Model<Reference>, cpu: u32, mm: MmId, addr: u64, file: Option<FileRef>) {
    let (p, flags) = match file {
        Some(_) => (prot::READ, map::PRIVATE),
        None => (prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS),
    };
    apply(
        m,
        Op::Mmap {
            cpu,
            mm,
            addr,
            len: 64 * PAGE,
            prot: p,
            flags,
            file,
            pgoff: 0,
        },
    );
}

/// The MGLRU age (`max_seq - folio seq`) of the folio mapped at `va` in `mm`.
fn lru_age(m: &Model<Reference>, mm: MmId, va: u64) -> Option<u64> {
    let id = m.folio_at(mm, va)?;
    m.snapshot()
        .folios
        .iter()
        .find(|f| f.id == id)
        .and_then(|f| f.lru_age)
}

/// MGLRU, 2 CPUs. mm 1 (root memcg) on CPU 0 has an anon page and a file page; mm 2 (memcg
/// 7) on CPU 1 then faults and reclaims one page at a time, four times: memcg reclaim ages
/// the shared generations without touching mm 1's folios, so the anon type ends with all
/// `MAX_NR_GENS` (4) generations in use.
fn four_generations() -> Model<Reference> {
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
            new: MmId(1),
        },
    );
    mmap(&mut m, 0, MmId(1), A, None);
    let lib = FileRef {
        id: FileId(4),
        kind: FileKind::Regular,
    };
    mmap(&mut m, 0, MmId(1), LIB, Some(lib));
    access(&mut m, 0, MmId(1), A, AccessKind::Write);
    access(&mut m, 0, MmId(1), LIB, AccessKind::Read);
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
        Op::SetMemcg {
            mm: MmId(2),
            memcg: 7,
        },
    );
    mmap(&mut m, 1, MmId(2), A, None);
    for i in 0..4 {
        access(&mut m, 1, MmId(2), A + i * PAGE, AccessKind::Write);
        apply(
            &mut m,
            Op::ReclaimMemcg {
                cpu: 1,
                nr_to_reclaim: 1,
                memcg: 7,
            },
        );
    }
    assert_eq!(m.snapshot().lru_nr_gens[0], 4);
    m
}

fn cold(m: &mut Model<Reference>, va: u64) {
    apply(
        m,
        Op::Madvise {
            cpu: 0,
            mm: MmId(1),
            addr: va,
            len: PAGE,
            advice: madv::COLD,
        },
    );
}

/// Kills `== -> !=` (lru.rs:54:17), `&& -> ||` (:54:22) and `+ -> *` (:55:14) in `add_folio`:
/// `lru_gen_add_folio` puts an inactive anon folio that is not in the swap cache in
/// `min_seq + 1` (so it is not the first to go), and any other inactive folio, a file one here,
/// in `min_seq`. MADV_COLD (`folio_deactivate`) re-adds a folio inactive.
#[test]
fn madv_cold_puts_anon_in_the_second_oldest_gen_and_file_in_the_oldest() {
    let mut m = four_generations();
    // A fresh anon page of mm 1 (youngest generation), then made cold.
    access(&mut m, 0, MmId(1), A + PAGE, AccessKind::Write);
    assert_eq!(lru_age(&m, MmId(1), A + PAGE), Some(0));
    cold(&mut m, A + PAGE);
    let gens = m.snapshot().lru_nr_gens;
    assert_eq!(
        lru_age(&m, MmId(1), A + PAGE),
        Some(gens[0] - 2),
        "anon: min_seq + 1 (gens {gens:?})"
    );
    cold(&mut m, LIB);
    assert!(gens[1] >= 2, "{gens:?}");
    assert_eq!(
        lru_age(&m, MmId(1), LIB),
        Some(gens[1] - 1),
        "file: min_seq (gens {gens:?})"
    );
    m.finish();
    assert!(m.violations().is_empty(), "{:#?}", m.violations());
}
