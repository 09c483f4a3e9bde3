//! The binary readers stream: the records pulled through `input::open` (a mapped file, or a
//! `.zst` spilled to a mapped temporary file) are exactly those of the whole-capture API on the
//! real paired captures; per-CPU buffering does not depend on the capture's length; and every
//! length read from a file is checked against the bytes present or a documented cap, with an
//! error naming the byte offset.

use std::path::PathBuf;
use std::sync::Arc;

use mmreplay_parsers::binary::tracedat::TraceDat;
use mmreplay_parsers::binary::{
    read_bytes, unzstd, Backing, BinaryError, BinaryStream, ReadOptions,
};
use mmreplay_parsers::{open, Options, Record};

fn paired(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/paired")
        .join(name);
    assert!(p.is_file(), "missing paired corpus file {}", p.display());
    p
}

fn raw(name: &str) -> Vec<u8> {
    unzstd(&std::fs::read(paired(name)).unwrap()).unwrap()
}

fn via_open(path: &str) -> Vec<Record> {
    let mut src = open(path, &Options::default()).unwrap();
    let mut v = Vec::new();
    while let Some(r) = src.next_record().unwrap() {
        v.push(r);
    }
    v
}

const CAPTURES: [&str; 4] = [
    "mmwork.v6.dat.zst",
    "mmwork.v7.dat.zst",
    "mmwork.perf.data.zst",
    "mmwork.pipe.perf.data.zst",
];

/// The streaming door (`input::open`: spilled `.zst`, and the same bytes mapped as a plain
/// file) gives the whole-capture API's records, in the same order.
#[test]
fn streaming_gives_the_whole_capture_records() {
    let dir = std::env::temp_dir().join(format!("mmreplay-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in CAPTURES {
        let data = raw(name);
        let whole = read_bytes(&data).unwrap().records;
        assert!(whole.len() > 500, "{name}: {} records", whole.len());
        let zst = via_open(paired(name).to_str().unwrap());
        assert!(
            zst == whole,
            "{name}: streamed .zst differs from read_bytes"
        );
        let plain = dir.join(name.trim_end_matches(".zst"));
        std::fs::write(&plain, &data).unwrap();
        let mapped = via_open(plain.to_str().unwrap());
        assert!(mapped == whole, "{name}: streamed mapped file differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A v6 trace.dat whose per-CPU data is the real capture's data repeated `k` times (the
/// flyrecord table rewritten to point at it).
fn v6_repeated(k: usize) -> Vec<u8> {
    let data = raw("mmwork.v6.dat.zst");
    let td = TraceDat::parse(&data).unwrap();
    let buffers: Vec<_> = td
        .info
        .buffers
        .iter()
        .filter(|b| b.cpus.iter().any(|c| c.2 > 0))
        .collect();
    assert_eq!(buffers.len(), 1, "one buffer with data");
    let cpus = buffers[0].cpus.clone();
    let first = cpus.iter().filter(|c| c.2 > 0).map(|c| c.1).min().unwrap() as usize;
    // Its flyrecord table: the `flyrecord\0` tag whose CPU entries are these.
    let entry = |at: usize| -> (u64, u64) {
        let g = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
        (g(at), g(at + 8))
    };
    let tag = (0..first)
        .filter(|&i| data[i..].starts_with(b"flyrecord\0"))
        .find(|&i| {
            cpus.iter()
                .enumerate()
                .all(|(j, c)| entry(i + 10 + j * 16) == (c.1, c.2))
        })
        .expect("the buffer's flyrecord table");
    let mut out = data[..first].to_vec();
    let mut at = first as u64;
    for (i, &(_, off, size)) in cpus.iter().enumerate() {
        if size == 0 {
            continue;
        }
        let e = tag + 10 + i * 16;
        out[e..e + 8].copy_from_slice(&at.to_le_bytes());
        out[e + 8..e + 16].copy_from_slice(&(size * k as u64).to_le_bytes());
        at += size * k as u64;
        let _ = off;
    }
    for &(_, off, size) in cpus.iter().filter(|c| c.2 > 0) {
        let d = &data[off as usize..(off + size) as usize];
        for _ in 0..k {
            out.extend_from_slice(d);
        }
    }
    out
}

/// Records held by the reader at any time are bounded by a page per CPU, whatever the length:
/// the same bound on a capture and on one 8 times longer (the whole-capture reader held them
/// all). Counted by the reader itself (`buffered`), not timed.
#[test]
fn trace_dat_buffering_does_not_grow_with_the_capture() {
    let max_held = |k: usize| {
        let bytes = Arc::new(Backing::from_vec(v6_repeated(k)));
        let mut s = BinaryStream::open(bytes, &ReadOptions::default()).unwrap();
        let (mut n, mut held) = (0usize, 0usize);
        while s.next_record().unwrap().is_some() {
            n += 1;
            held = held.max(s.buffered());
        }
        (n, held)
    };
    let (n1, h1) = max_held(1);
    let (n8, h8) = max_held(8);
    assert_eq!(n8, 8 * n1);
    // A 4096-byte page holds at most 4096 / 8 records; two CPUs.
    assert!(h8 <= 2 * 512, "held {h8} records");
    assert_eq!(h1, h8, "buffering grew with the capture: {h1} -> {h8}");
    assert!(h8 * 20 < n8, "held {h8} of {n8} records");
}

/// The real pipe-mode perf.data with its record stream repeated `k` times, a FINISHED_ROUND
/// after each copy (as perf writes one after each pass over its ring buffers).
fn perf_pipe_repeated(k: usize) -> Vec<u8> {
    let data = raw("mmwork.pipe.perf.data.zst");
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let mut pos = 16;
    // Metadata records (perf's own types, from 64) come first; the tracing data follows its
    // HEADER_TRACING_DATA record, outside the record's size.
    loop {
        let (ty, size) = (
            u32_at(pos),
            usize::from(u16::from_le_bytes([data[pos + 6], data[pos + 7]])),
        );
        if ty < 64 {
            break;
        }
        pos += size
            + if ty == 66 {
                u32_at(pos + 8) as usize
            } else {
                0
            };
    }
    let mut out = data[..pos].to_vec();
    for _ in 0..k {
        out.extend_from_slice(&data[pos..]);
        out.extend(68u32.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(8u16.to_le_bytes());
    }
    out
}

/// perf.data: the reader holds the records of a round or two (FINISHED_ROUND), not the file:
/// the same most-held on a stream and one 4 times longer.
#[test]
fn perf_data_buffering_is_a_round_not_the_file() {
    let max_held = |k: usize| {
        let bytes = Arc::new(Backing::from_vec(perf_pipe_repeated(k)));
        let mut s = BinaryStream::open(bytes, &ReadOptions::default()).unwrap();
        let (mut n, mut held) = (0usize, 0usize);
        while s.next_record().unwrap().is_some() {
            n += 1;
            held = held.max(s.buffered());
        }
        (n, held)
    };
    let (n2, h2) = max_held(2);
    let (n8, h8) = max_held(8);
    assert_eq!(n8, 4 * n2);
    assert!(n2 > 1000, "{n2}");
    assert_eq!(h2, h8, "buffering grew with the stream: {h2} -> {h8}");
    assert!(h8 * 3 < n8, "held {h8} of {n8} records at once");
}

fn v7_chunk_header() -> (Vec<u8>, usize) {
    let data = raw("mmwork.v7.dat.zst");
    let td = TraceDat::parse(&data).unwrap();
    assert_eq!(td.info.compression.as_deref(), Some("zstd"));
    let off = td.info.buffers[0].cpus[0].1 as usize;
    (data, off)
}

/// A chunk that declares more than the cap is refused before any allocation, naming the byte
/// offset of its data.
#[test]
fn huge_chunk_size_hits_the_cap_with_its_offset() {
    let (mut data, off) = v7_chunk_header();
    // off: u32 chunk count, then the first chunk's u32 csize, u32 uncompressed size.
    data[off + 8..off + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_bytes(&data).unwrap_err();
    match &e {
        BinaryError::TooLarge {
            offset, size, cap, ..
        } => {
            assert_eq!(*offset, off as u64 + 12);
            assert_eq!(*size, u64::from(u32::MAX));
            assert_eq!(*cap, mmreplay_parsers::binary::MAX_CHUNK_BYTES);
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(e.to_string().contains(&format!("byte {}", off + 12)), "{e}");
}

/// A chunk whose compressed size runs past the file: a truncation error naming the offset and
/// the bytes left, never a read past the end.
#[test]
fn truncated_chunk_names_its_offset() {
    let (mut data, off) = v7_chunk_header();
    data[off + 4..off + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_bytes(&data).unwrap_err();
    assert!(
        matches!(e, BinaryError::Truncated { offset, need, have, .. }
            if offset == off as u64 + 12 && need == u64::from(u32::MAX)
                && have == (data.len() - off - 12) as u64),
        "{e}"
    );
}

/// A zstd chunk that decompresses to less than it declares is an error at its offset.
#[test]
fn chunk_shorter_than_declared_is_an_error() {
    let (mut data, off) = v7_chunk_header();
    let usz = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap());
    data[off + 8..off + 12].copy_from_slice(&(usz + 4096).to_le_bytes());
    let e = read_bytes(&data).unwrap_err();
    assert!(
        matches!(e, BinaryError::Decompress { offset, .. } if offset == off as u64 + 12),
        "{e}"
    );
}
