//! The perf.data fast path (parsers/src/binary/perf_fast.rs: our own walk of the data section)
//! against the linux-perf-data record-iterator path: identical `Record`s and counts on every
//! perf.data of corpus/paired/ (file mode with zstd COMPRESSED records, pipe mode), on a file
//! whose COMPRESSED records are unpacked into plain records (built here from the paired file, so
//! the uncompressed walk and FINISHED_ROUND ordering are covered too), and on the damo file of
//! the shared folder (behind MMREPLAY_SHARED_DIR).

use mmreplay_parsers::binary::perf::{read_perf, read_perf_crate_path};
use std::path::PathBuf;

fn paired_perf_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/paired");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("perf.data"))
        })
        .collect();
    v.sort();
    v
}

fn load(p: &std::path::Path) -> Vec<u8> {
    let raw = std::fs::read(p).unwrap();
    if mmreplay_parsers::source::is_zstd(&raw) {
        zstd::decode_all(&raw[..]).unwrap()
    } else {
        raw
    }
}

/// Both paths on `data`: same Records, same counts; returns the number of records. `fast`:
/// whether the fast path must have been taken (file mode) or not (pipe mode).
fn same(name: &str, data: &[u8], fast: bool) -> usize {
    let (fi, fr) = read_perf(data).unwrap_or_else(|e| panic!("{name}: fast path: {e}"));
    let (ci, cr) =
        read_perf_crate_path(data, None).unwrap_or_else(|e| panic!("{name}: crate: {e}"));
    assert_eq!(fi.fast_path, fast, "{name}: fast path taken?");
    assert!(
        !ci.fast_path,
        "{name}: crate path must not use the fast path"
    );
    assert_eq!(fr.len(), cr.len(), "{name}: record count");
    for (i, (a, b)) in fr.iter().zip(&cr).enumerate() {
        assert_eq!(a, b, "{name}: record {i} differs");
    }
    assert_eq!(
        (
            fi.samples,
            fi.skipped_samples,
            fi.comm_records,
            fi.lost_records
        ),
        (
            ci.samples,
            ci.skipped_samples,
            ci.comm_records,
            ci.lost_records
        ),
        "{name}: counts"
    );
    fr.len()
}

fn le64(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
}

/// Rewrites a file-mode perf.data whose data section holds PERF_RECORD_COMPRESSED (81) records
/// into one with the decompressed records inline (the feature table, right after the data
/// section, moves; its absolute offsets are shifted).
fn uncompress_data_section(d: &[u8]) -> Option<Vec<u8>> {
    let (off, size) = (le64(d, 40) as usize, le64(d, 48) as usize);
    // perf compresses with one zstd stream, flushed per record (frames stay open): decode with
    // one streaming context across the records.
    let mut dctx = zstd::zstd_safe::DCtx::create();
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    let mut p = off;
    while p < off + size {
        let ty = u32::from_le_bytes(d[p..p + 4].try_into().unwrap());
        let sz = u16::from_le_bytes(d[p + 6..p + 8].try_into().unwrap()) as usize;
        if ty == 81 {
            let mut input = zstd::zstd_safe::InBuffer::around(&d[p + 8..p + sz]);
            loop {
                let mut o = zstd::zstd_safe::OutBuffer::around(&mut buf[..]);
                dctx.decompress_stream(&mut o, &mut input).ok()?;
                let n = o.pos();
                out.extend_from_slice(&buf[..n]);
                if n < buf.len() && input.pos() == sz - 8 {
                    break;
                }
            }
        } else {
            out.extend_from_slice(&d[p..p + sz]);
        }
        p += sz;
    }
    let delta = out.len() as i64 - size as i64;
    let mut f = d[..off].to_vec();
    f[48..56].copy_from_slice(&(out.len() as u64).to_le_bytes());
    f.extend_from_slice(&out);
    let table = off + size;
    let nfeat: u32 = (0..4).map(|i| le64(d, 72 + 8 * i).count_ones()).sum();
    for i in 0..nfeat as usize {
        let at = table + 16 * i;
        let o = (le64(d, at) as i64 + delta) as u64;
        f.extend_from_slice(&o.to_le_bytes());
        f.extend_from_slice(&d[at + 8..at + 16]);
    }
    f.extend_from_slice(&d[table + 16 * nfeat as usize..]);
    Some(f)
}

#[test]
fn fast_path_equals_crate_path_on_paired_perf_data() {
    let files = paired_perf_files();
    assert!(files.len() >= 2, "expected the paired perf.data files");
    for p in files {
        let name = p.display().to_string();
        let d = load(&p);
        // Both modes take our walk (pipe mode too, since perf_layout reads HEADER_* records).
        let n = same(&name, &d, true);
        assert!(n > 100, "{name}: only {n} records");
    }
}

#[test]
fn fast_path_equals_crate_path_without_compression() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/paired/mmwork.perf.data.zst");
    let d = load(&p);
    assert_eq!(le64(&d, 8), 104, "file mode expected");
    let plain = uncompress_data_section(&d).expect("decompressing the paired file");
    assert_ne!(
        plain.len(),
        d.len(),
        "the paired file should hold COMPRESSED records"
    );
    let n = same("uncompressed mmwork.perf.data", &plain, true);
    assert_eq!(n, same("mmwork.perf.data", &d, true));
}

#[test]
fn fast_path_equals_crate_path_on_damo() {
    let Some(dir) = std::env::var_os("MMREPLAY_SHARED_DIR") else {
        eprintln!("note: MMREPLAY_SHARED_DIR unset, skipping the damo perf.data fast-path test");
        return;
    };
    let p = PathBuf::from(dir).join("external/awslabs__damo/tests/report/perf.data");
    assert!(
        p.is_file(),
        "MMREPLAY_SHARED_DIR is set but {} is missing",
        p.display()
    );
    assert_eq!(same("damo perf.data", &load(&p), true), 10_260);
}

#[test]
fn huge_auxtrace_size_is_an_error_on_both_paths() {
    // linux-perf-data sizes a buffer from an AUXTRACE record's `size` before reading the AUX
    // data: perf.rs must refuse sizes beyond the file (fuzz_binary found a 1.6 TB allocation).
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/paired/mmwork.perf.data.zst");
    let mut d = uncompress_data_section(&load(&p)).unwrap();
    let off = le64(&d, 40) as usize;
    // Find the first record with a body of at least 8 bytes and make it an AUXTRACE (71).
    let mut at = off;
    while u16::from_le_bytes([d[at + 6], d[at + 7]]) < 16 {
        at += u16::from_le_bytes([d[at + 6], d[at + 7]]) as usize;
    }
    d[at..at + 4].copy_from_slice(&71u32.to_le_bytes());
    d[at + 8..at + 16].copy_from_slice(&0x0000_0174_0000_0000u64.to_le_bytes());
    // Our walk: damage at that record (every record before it kept), an error with --strict.
    let (info, recs) = read_perf(&d).expect("the records before the AUXTRACE record are kept");
    let dmg = info.damage.expect("damage reported");
    assert_eq!(dmg.offset, at as u64, "{dmg:?}");
    assert!(dmg.reason.contains("AUXTRACE"), "{dmg:?}");
    let (_, full) = read_perf(&uncompress_data_section(&load(&p)).unwrap()).unwrap();
    assert!(recs.len() < full.len());
    let e = mmreplay_parsers::binary::perf::read_perf_checked(&d, None, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("AUXTRACE") && e.contains(&format!("byte {at}")),
        "{e}"
    );
    let e = read_perf_crate_path(&d, None)
        .expect_err("crate")
        .to_string();
    assert!(e.contains("AUXTRACE"), "crate: {e}");
}
