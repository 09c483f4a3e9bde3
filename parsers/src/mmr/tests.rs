//! The `.mmr` codec's own tests: every variant round-trips, the encoding is pinned, corrupt and
//! cut files are errors naming the file and offset, the diagnostics travel.

use super::*;
use crate::record::{IpiKind, Sym, SysArgs, Syscall, TlbReason, Vmscan};

fn sym(s: &str) -> Sym {
    Sym::from(s)
}

/// One record of every `Event` (and `Vmscan`) variant, with varied context, strings that
/// repeat and differ, timestamps that sometimes go backwards and extreme field values.
fn rec(i: u64) -> Record {
    let names = ["alpha", "beta", "", "mm_vmscan_x", "ü-non-ascii"];
    let s = |k: u64| sym(names[((i + k) % names.len() as u64) as usize]);
    let comm = Comm::new(format!("task-{}", i % 7).as_bytes());
    let event = match i % 40 {
        0 => Event::PageFault {
            user: i % 2 == 0,
            address: 0x7f00_0000_0000 + 0x1000 * i,
            ip: u64::MAX - i,
            error_code: 6,
        },
        1 => Event::TlbFlush {
            pages: -1,
            reason: TlbReason {
                code: Some(3),
                text: s(0),
            },
        },
        2 => Event::TlbFlush {
            pages: 42,
            reason: TlbReason {
                code: None,
                text: s(1),
            },
        },
        3 => Event::IpiSendCpu {
            target: 1,
            kind: IpiKind::TlbShootdown,
        },
        4 => Event::IpiSendCpumask {
            mask: u128::MAX - u128::from(i),
            targets: 127,
            kind: IpiKind::Other,
        },
        5 => Event::SetMigrationPte {
            addr: i,
            pte: u64::MAX,
            order: 9,
        },
        6 => Event::RemoveMigrationPte {
            addr: i,
            pte: 0x8000_0000_0000_0867,
            order: 0,
        },
        7 => Event::MmMigratePages {
            succeeded: i,
            failed: 1,
            mode: s(2),
            reason: s(3),
        },
        8 => Event::MmMigratePagesStart {
            mode: s(4),
            reason: s(0),
        },
        9 => Event::MmLruInsertion {
            pfn: i,
            lru: -3,
            flags: s(1),
        },
        10 => Event::MmLruActivate { pfn: i },
        11 => Event::Vmscan(Vmscan::KswapdWake { nid: 0, order: 3 }),
        12 => Event::Vmscan(Vmscan::KswapdSleep { nid: 1 }),
        13 => Event::Vmscan(Vmscan::WakeupKswapd { nid: 0, order: -1 }),
        14 => Event::Vmscan(Vmscan::DirectReclaimBegin {
            order: 2,
            memcg: true,
        }),
        15 => Event::Vmscan(Vmscan::DirectReclaimEnd {
            nr_reclaimed: 32,
            memcg: false,
        }),
        16 => Event::Vmscan(Vmscan::LruIsolate {
            nr_requested: 32,
            nr_scanned: 40,
            nr_taken: 31,
            lru: s(2),
        }),
        17 => Event::Vmscan(Vmscan::LruShrinkInactive {
            nid: 0,
            nr_scanned: 1,
            nr_reclaimed: 2,
            priority: 12,
            nr_ref_keep: 3,
            nr_activate: 4,
            file: Some(true),
        }),
        18 => Event::Vmscan(Vmscan::LruShrinkActive {
            nid: 0,
            nr_taken: 1,
            nr_active: 2,
            nr_deactivated: 3,
            nr_referenced: 4,
        }),
        19 => Event::Vmscan(Vmscan::WriteFolio { pfn: i }),
        20 => Event::Vmscan(Vmscan::Other { name: s(3) }),
        21 => Event::Compaction { name: s(4) },
        22 => Event::SysEnter {
            nr: Syscall::Mremap,
            args: SysArgs([1, 2, 3, 4, 5, u64::MAX]),
        },
        23 => Event::SysExit {
            nr: Syscall::ExitGroup,
            ret: i64::MIN,
        },
        24 => Event::SchedProcessFork {
            parent_pid: 1,
            child_pid: i as i32,
            child_comm: Comm::new(b"sixteen-bytes-xx"),
        },
        25 => Event::SchedProcessExec {
            pid: 5,
            old_pid: -5,
        },
        26 => Event::SchedProcessExit { pid: 9 },
        27 => Event::SchedSwitch {
            prev_pid: 1,
            prev_state: s(0),
            next_pid: 0,
            next_comm: Comm::new(&[0xff, 0x00, 0x80]),
        },
        28 => Event::SchedMigrateTask {
            pid: 3,
            orig_cpu: 0,
            dest_cpu: 1,
        },
        29 => Event::TaskNewtask {
            pid: 4,
            clone_flags: 0x100,
        },
        30 => Event::ExitMmap,
        31 => Event::RssStat {
            mm_id: i,
            curr: true,
            member: s(1),
            size: -4096,
        },
        32 => Event::Filemap {
            add: false,
            pfn: 1,
            ino: 2,
            index: 3,
            order: 4,
        },
        33 => Event::Hugetlbfs { name: s(2) },
        34 => Event::Khugepaged { name: s(3) },
        35 => Event::CsdQueueCpu {
            target: (i % 5) as u32,
            kind: IpiKind::TableSync,
        },
        36 => Event::CollapseHugePage {
            mm: 0xedc4_9cd8,
            status: s(1),
        },
        37 => Event::CallFunctionEntry {
            single: i % 2 == 0,
            vector: if i % 2 == 0 { 251 } else { 252 },
        },
        38 => Event::Kprobe { name: s(1) },
        _ => match i % 3 {
            0 => Event::DamonAggregated {
                target_id: 1,
                nr_regions: 2,
                start: 3,
                end: 4,
                nr_accesses: 5,
                age: if i % 2 == 0 { Some(6) } else { None },
            },
            1 => Event::Lost { count: Some(i) },
            _ => Event::Other { name: s(4) },
        },
    };
    Record {
        // Mostly increasing, sometimes backwards (the deltas wrap).
        ts_ns: if i % 11 == 5 {
            i * 1000 - 777
        } else {
            i * 1000 + 5
        },
        cpu: (i % 3) as u32,
        pid: 100 + (i % 13) as i32,
        tgid: if i % 4 == 0 { None } else { Some(-(i as i32)) },
        comm,
        event,
    }
}

fn header() -> Header {
    Header {
        source: "x".into(),
        format: "ftrace".into(),
        nr_cpus: Some(2),
        sidecar: Some("{\"workload_pid\": 7}".into()),
    }
}

fn diag() -> Diagnostics {
    let mut d = Diagnostics {
        lines: 12071,
        unparsed_lines: 2,
        overwritten_events: 10327,
        first_unparsed: vec!["x:3 (byte 99): no_anchor".into()],
        ..Default::default()
    };
    d.unparsed_by_kind.insert("no_anchor".into(), 2);
    d.skipped_by_kind.insert("header".into(), 11);
    d.skipped_lines = 11;
    d
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmr-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_records(path: &Path, recs: impl IntoIterator<Item = Record>) -> u64 {
    let mut w = Writer::create(path, &header()).unwrap();
    for r in recs {
        w.push(r).unwrap();
    }
    w.finish(&diag()).unwrap()
}

fn write(path: &Path, n: u64) {
    assert_eq!(write_records(path, (0..n).map(rec)), n);
}

fn read_all(name: &str, bytes: &[u8]) -> Result<Vec<Record>, MmrError> {
    let mut r = Reader::new(name, bytes)?;
    let mut v = Vec::new();
    while let Some(x) = r.next_record()? {
        v.push(x);
    }
    Ok(v)
}

/// A complete file around hand-made chunk payloads (correct framing and checksums).
fn frame(version: u32, chunks: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let h = bincode::serde::encode_to_vec(header(), cfg()).unwrap();
    let mut f = MAGIC.to_vec();
    f.extend(version.to_le_bytes());
    f.extend((h.len() as u32).to_le_bytes());
    f.extend(&h);
    let (mut total, mut sum) = (0u64, FNV_OFFSET);
    for (count, plain) in chunks {
        let payload = &zstd::bulk::compress(plain, ZSTD_LEVEL).unwrap();
        let c = checksum64(payload);
        f.push(1);
        f.extend(count.to_le_bytes());
        f.extend((payload.len() as u32).to_le_bytes());
        f.extend((plain.len() as u32).to_le_bytes());
        f.extend(c.to_le_bytes());
        f.extend(payload);
        total += u64::from(*count);
        sum = fnv1a64(sum, &c.to_le_bytes());
    }
    let d = serde_json::to_vec(&Diagnostics::default()).unwrap();
    f.push(2);
    f.extend((d.len() as u32).to_le_bytes());
    f.extend(&d);
    sum = fnv1a64(sum, &d);
    f.push(0);
    f.extend(total.to_le_bytes());
    f.extend(sum.to_le_bytes());
    f
}

/// One chunk payload encoded the way the writer does, from explicit tables.
fn payload(comms: &[&[u8]], ctxs: &[Ctx], records: &[Packed]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_chunk(&mut out, &mut Vec::new(), comms, ctxs, records).unwrap();
    out
}

fn ctx0() -> Ctx {
    Ctx {
        cpu: 0,
        pid: 1,
        tgid: None,
        comm: 0,
    }
}

fn packed(event: Event, ctx: u32) -> Packed {
    Packed { dts: 1, ctx, event }
}

#[test]
fn checksum_sees_every_single_bit_flip() {
    let data: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let base = checksum64(&data);
    for i in 0..data.len() {
        for b in 0..8 {
            let mut d = data.clone();
            d[i] ^= 1 << b;
            assert_ne!(checksum64(&d), base, "flip byte {i} bit {b}");
        }
    }
    assert_ne!(checksum64(&data[..199]), base);
}

/// Every variant, written by serde + bincode and read back by bincode's own decoder, across
/// several chunks (each with its own comm and context tables); the diagnostics come back
/// at the end, and only there.
#[test]
fn every_event_variant_round_trips_across_chunks() {
    let d = tmpdir("rt");
    let p = d.join("a.mmr");
    let n = CHUNK_RECORDS as u64 * 2 + 37;
    write(&p, n);
    let mut r = Reader::open(&p).unwrap();
    assert_eq!(r.header(), &header());
    assert_eq!(RecordSource::diagnostics(&r), Diagnostics::default());
    let mut i = 0;
    while let Some(x) = r.next_record().unwrap() {
        assert_eq!(x, rec(i), "record {i}");
        i += 1;
    }
    assert_eq!(i, n);
    // The end is sticky.
    assert!(r.next_record().unwrap().is_none());
    assert_eq!(RecordSource::diagnostics(&r), diag());
    assert_eq!(r.stated_cpus(), Some(2));
    assert_eq!(r.format_name(), "compiled (ftrace)");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The bytes of one record of every variant, hashed: `Event`'s serde derive is the format, so
/// a reordered variant or field changes these bytes and old files would decode wrongly.
/// When this fails: bump [`VERSION`] (old files are then refused with "recompile") and
/// update the hash.
#[test]
fn the_encoding_of_every_variant_is_pinned() {
    let recs: Vec<Packed> = (0..40)
        .map(|i| Packed {
            dts: i,
            ctx: 0,
            event: rec(i).event,
        })
        .collect();
    let bytes = payload(&[b"c"], &[ctx0()], &recs);
    assert_eq!(
        (VERSION, bytes.len(), fnv1a64(FNV_OFFSET, &bytes)),
        (6, 392, 0xe6123718da72d6c9),
        "Event's encoding changed: bump mmr::VERSION and pin the new bytes"
    );
}

/// Strings are stored once per chunk, not once per field; outside a chunk (JSON) a `Sym` field
/// is its text.
#[test]
fn the_string_table_holds_each_string_once_per_chunk() {
    let recs: Vec<Record> = (0..100u64)
        .map(|i| Record {
            event: Event::Other {
                name: sym("a_rather_long_event_name_that_repeats"),
            },
            ..rec(i)
        })
        .collect();
    let packed: Vec<Packed> = recs
        .iter()
        .map(|r| Packed {
            dts: 1,
            ctx: 0,
            event: r.event.clone(),
        })
        .collect();
    let plain = payload(&[b"c"], &[ctx0()], &packed);
    let needle = b"a_rather_long_event_name_that_repeats";
    let hits = plain.windows(needle.len()).filter(|w| w == needle).count();
    assert_eq!(hits, 1);
    let json = serde_json::to_string(&recs[0].event).unwrap();
    assert_eq!(
        json,
        r#"{"Other":{"name":"a_rather_long_event_name_that_repeats"}}"#
    );
    let back: Event = serde_json::from_str(&json).unwrap();
    assert_eq!(back, recs[0].event);
    let d = tmpdir("tab");
    let p = d.join("a.mmr");
    write_records(&p, recs.clone());
    assert_eq!(
        read_all("a.mmr", &std::fs::read(&p).unwrap()).unwrap(),
        recs
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// A file opened through the crate's one `open`: sniffed by its magic, read as `Format::Mmr`.
#[test]
fn open_sniffs_a_compiled_file() {
    let d = tmpdir("open");
    let p = d.join("a.mmr");
    write(&p, 100);
    let mut src = crate::open(p.to_str().unwrap(), &crate::Options::default()).unwrap();
    assert_eq!(src.format(), crate::Format::Mmr);
    let mut n = 0;
    while let Some(r) = src.next_record().unwrap() {
        assert_eq!(r, rec(n));
        n += 1;
    }
    assert_eq!(n, 100);
    assert_eq!(src.diagnostics(), diag());
    std::fs::remove_dir_all(&d).unwrap();
}

/// Every single-bit flip after the (unchecksummed) header is an error, never a panic and never
/// a silently different record stream or different diagnostics.
#[test]
fn every_bit_flip_in_chunks_and_end_marker_is_an_error() {
    let d = tmpdir("flip");
    let p = d.join("a.mmr");
    write(&p, 40);
    let good = std::fs::read(&p).unwrap();
    let body = {
        let hlen = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
        16 + hlen
    };
    for i in body..good.len() {
        for b in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << b;
            let res = read_all("bad.mmr", &bad);
            let e = res.expect_err(&format!("flip of byte {i} bit {b} accepted"));
            assert!(e.to_string().contains("bad.mmr"), "{e}");
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn truncation_anywhere_is_an_error() {
    let d = tmpdir("cut");
    let p = d.join("a.mmr");
    write(&p, 300);
    let good = std::fs::read(&p).unwrap();
    assert_eq!(read_all("t.mmr", &good).unwrap().len(), 300);
    for cut in 0..good.len() {
        let res = read_all("t.mmr", &good[..cut]);
        assert!(res.is_err(), "cut at {cut} accepted");
    }
    let e = read_all("t.mmr", &good[..good.len() - 3]).unwrap_err();
    assert!(matches!(e, MmrError::Truncated { .. }), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_old_version_asks_for_a_recompile() {
    for old in [1, 4] {
        let f = frame(old, &[]);
        let e = Reader::new("old.mmr", &f[..]).err().unwrap();
        assert!(
            matches!(e, MmrError::Version { found, expected: VERSION, .. } if found == old),
            "{e}"
        );
        assert!(e.to_string().contains("old.mmr") && e.to_string().contains("recompile"));
    }
    // And the hand-made framing itself is right: the current version reads.
    let ok = frame(VERSION, &[(0, payload(&[], &[], &[]))]);
    assert_eq!(read_all("ok.mmr", &ok).unwrap(), vec![]);
}

fn expect_corrupt(bytes: &[u8], needles: &[&str]) {
    let e = read_all("c.mmr", bytes).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, MmrError::Corrupt { .. }), "{m}");
    assert!(m.contains("c.mmr") && m.contains("byte "), "{m}");
    for n in needles {
        assert!(m.contains(n), "{m} lacks {n:?}");
    }
}

#[test]
fn bad_table_indices_are_errors_naming_file_and_offset() {
    let ok_ev = || Event::Compaction { name: sym("x") };
    // Context index past the table; the record before it is still delivered, then the error,
    // then it stays failed.
    let f = frame(
        VERSION,
        &[(
            2,
            payload(
                &[b"c"],
                &[ctx0()],
                &[packed(ok_ev(), 0), packed(ok_ev(), 3)],
            ),
        )],
    );
    expect_corrupt(&f, &["record 1", "context 3", "context table has 1"]);
    let mut r = Reader::new("c.mmr", &f[..]).unwrap();
    assert!(r.next_record().unwrap().is_some());
    assert!(r.next_record().is_err());
    assert!(r.next_record().is_err());
    let bad_ctx = Ctx { comm: 9, ..ctx0() };
    let f = frame(
        VERSION,
        &[(1, payload(&[b"c"], &[bad_ctx], &[packed(ok_ev(), 0)]))],
    );
    expect_corrupt(&f, &["context 0 refers to comm 9"]);
    // A string index past the chunk's table (its one string is index 0).
    let mut p = payload(&[b"c"], &[ctx0()], &[packed(ok_ev(), 0)]);
    assert_eq!(p.last(), Some(&0));
    *p.last_mut().unwrap() = 7;
    expect_corrupt(
        &frame(VERSION, &[(1, p)]),
        &[
            "does not decode",
            "string 7, the chunk's string table has 1",
        ],
    );
    // A comm longer than TASK_COMM_LEN, in the table and inside an event.
    let f = frame(
        VERSION,
        &[(1, payload(&[&[b'a'; 17]], &[ctx0()], &[packed(ok_ev(), 0)]))],
    );
    expect_corrupt(&f, &["comm 0 is 17 bytes"]);
    let sw = Event::SchedSwitch {
        prev_pid: 1,
        prev_state: sym("R"),
        next_pid: 2,
        next_comm: Comm::new(b"ok"),
    };
    let mut p = payload(&[b"c"], &[ctx0()], &[packed(sw, 0)]);
    // The comm's length byte (2) sits just before its 16 bytes at the end of the payload.
    let at = p.len() - 17;
    assert_eq!(p[at], 2);
    p[at] = 200;
    expect_corrupt(&frame(VERSION, &[(1, p)]), &["comm length 200 over 16"]);
}

#[test]
fn lying_lengths_and_counts_are_errors_not_aborts() {
    let ok = || Event::ExitMmap;
    // The chunk header's count disagrees with the payload.
    let f = frame(
        VERSION,
        &[(2, payload(&[b"c"], &[ctx0()], &[packed(ok(), 0)]))],
    );
    expect_corrupt(&f, &["holds 1 records, its header says 2"]);
    // A comm table claiming 2^60 entries (checksum correct): must not preallocate.
    let huge = bincode::encode_to_vec(1u64 << 60, cfg()).unwrap();
    let f = frame(VERSION, &[(0, huge)]);
    expect_corrupt(&f, &["does not decode"]);
    // More records than a chunk may hold.
    let mut many = payload(&[], &[], &[]);
    // Replace the empty record sequence's length (a varint 0).
    let zero = bincode::encode_to_vec(0u64, cfg()).unwrap();
    many.truncate(many.len() - zero.len());
    many.extend(bincode::encode_to_vec(CHUNK_RECORDS as u64 + 1, cfg()).unwrap());
    let f = frame(VERSION, &[(1, many)]);
    expect_corrupt(&f, &["does not decode", "more than"]);
    // Trailing bytes after the records.
    let mut tail = payload(&[b"c"], &[ctx0()], &[packed(ok(), 0)]);
    tail.push(0);
    let f = frame(VERSION, &[(1, tail)]);
    expect_corrupt(&f, &["1 trailing bytes"]);
    // An unknown variant index of `Event`.
    let mut bad = payload(&[b"c"], &[ctx0()], &[packed(ok(), 0)]);
    *bad.last_mut().unwrap() = 200;
    expect_corrupt(&frame(VERSION, &[(1, bad)]), &["does not decode"]);
}

/// The diagnostics block is required, once, after the chunks; its bytes are checksummed.
#[test]
fn the_diagnostics_block_is_checked() {
    let good = frame(
        VERSION,
        &[(
            1,
            payload(&[b"c"], &[ctx0()], &[packed(Event::ExitMmap, 0)]),
        )],
    );
    assert_eq!(read_all("c.mmr", &good).unwrap().len(), 1);
    // Without it (the end marker's checksum then also differs: the reader says what is missing
    // whichever it checks first).
    let end = good.len() - 17;
    let block = 5 + serde_json::to_vec(&Diagnostics::default()).unwrap().len();
    let mut none = good[..end - block].to_vec();
    none.extend(&good[end..]);
    assert!(read_all("c.mmr", &none).is_err());
    // Twice.
    let mut twice = good[..end].to_vec();
    twice.extend(&good[end - block..]);
    expect_corrupt(&twice, &["a second diagnostics block"]);
}

/// A capture's directory does not reach the stored diagnostics.
#[test]
fn portable_diagnostics_name_the_file_only() {
    let mut d = Diagnostics::default();
    d.first_unparsed
        .push("/some/dir/x.trace:3 (byte 7): no_anchor".into());
    d.first_unparsed.push("other".into());
    let p = portable_diagnostics("/some/dir/x.trace", &d);
    assert_eq!(p.first_unparsed, ["x.trace:3 (byte 7): no_anchor", "other"]);
}

#[test]
fn dropping_a_reader_midway_stops_its_decoder() {
    let d = tmpdir("drop");
    let p = d.join("a.mmr");
    write(&p, CHUNK_RECORDS as u64 * 5);
    for _ in 0..20 {
        let mut r = Reader::open(&p).unwrap();
        assert_eq!(r.next_record().unwrap(), Some(rec(0)));
        drop(r); // joins the decoder thread: must not hang
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn unfinished_writer_leaves_no_file() {
    let d = tmpdir("unfin");
    let p = d.join("a.mmr");
    {
        let mut w = Writer::create(&p, &header()).unwrap();
        w.push(rec(0)).unwrap();
    }
    assert!(!p.exists());
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    std::fs::remove_dir_all(&d).unwrap();
}

/// `next_batch` gives the records `next_record` gives, in order, whatever the batch size and
/// across chunk boundaries; on a cut file, the records before the error and then an error.
#[test]
fn next_batch_matches_next_record() {
    let d = tmpdir("batch");
    let p = d.join("a.mmr");
    let n = CHUNK_RECORDS as u64 * 2 + 37;
    write(&p, n);
    let good = std::fs::read(&p).unwrap();
    let want = read_all("b.mmr", &good).unwrap();
    for bytes in [&good[..], &good[..good.len() * 2 / 3]] {
        let one = read_all("b.mmr", bytes);
        for max in [1, 5, 256, CHUNK_RECORDS + 1] {
            let mut r = match Reader::new("b.mmr", bytes) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
            let (mut got, mut batch) = (Vec::new(), Vec::new());
            let end = loop {
                batch.clear();
                let res = r.next_batch(&mut batch, max);
                assert!(batch.len() <= max);
                got.append(&mut batch);
                match res {
                    Ok(0) => break None,
                    Ok(_) => {}
                    Err(e) => break Some(e.to_string()),
                }
            };
            match &one {
                Ok(v) => {
                    assert_eq!(end, None, "max={max}");
                    assert!(got == *v && got == want, "max={max}: records differ");
                }
                Err(e) => {
                    assert_eq!(end.as_deref(), Some(e.to_string().as_str()), "max={max}");
                    assert!(got.len() < want.len() && got[..] == want[..got.len()]);
                }
            }
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}
