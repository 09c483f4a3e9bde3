//! Bad-input behaviour of the text readers: every case gives a clear error (file, line, byte
//! offset, what was expected) or a counted unparsed line, never a panic. Inputs are built in the
//! test (synthetic lines, clearly not captures).

use mmreplay_parsers::stats::{collect, Filter};
use mmreplay_parsers::{input, Event, Format, Options, ParseError, Record, Stats};
use std::io::{Cursor, Read};

const L1: &str = "      capture.sh-15250   [000] d....  1439.231584: page_fault_user: address=0x5585b85fc0c8 ip=0x7f12bbe01109 error_code=0x6\n";
const L2: &str = "      capture.sh-15250   [000] ...1.  1439.232001: tlb_flush: pages:-1 reason:remote IPI send (4)\n";
const L3: &str = "          <idle>-0       [001] d.h1.  1439.232022: tlb_flush: pages:0 reason:remote wrong CPU (5)\n";

fn reader(
    bytes: Vec<u8>,
    opts: &Options,
) -> Result<Box<dyn input::RecordSource + Send>, ParseError> {
    let r: Box<dyn Read + Send> = Box::new(Cursor::new(bytes));
    input::open_reader("test.trace", r, opts)
}

fn stats_of(bytes: Vec<u8>, opts: &Options) -> Result<Stats, ParseError> {
    let mut src = reader(bytes, opts)?;
    collect(src.as_mut(), Filter::default())
}

fn records(bytes: Vec<u8>) -> Vec<Record> {
    let mut src = reader(bytes, &Options::default()).expect("open");
    let mut v = vec![];
    while let Some(r) = src.next_record().expect("record") {
        v.push(r);
    }
    v
}

#[test]
fn empty_and_blank_inputs_are_clear_errors() {
    for input in [&b""[..], b"\n\n  \n"] {
        let err = stats_of(input.to_vec(), &Options::default()).unwrap_err();
        assert!(matches!(err, ParseError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("test.trace: empty input"), "{err}");
    }
}

#[test]
fn binary_garbage_is_unrecognised() {
    let mut x: u64 = 12345;
    let garbage: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let err = stats_of(garbage, &Options::default()).unwrap_err();
    assert!(matches!(err, ParseError::Unrecognised { .. }), "{err}");
    assert!(err.to_string().contains("unrecognised format"), "{err}");
}

#[test]
fn binary_magics_are_sniffed() {
    assert_eq!(
        input::sniff("x", b"\x17\x08Dtracing6\0").unwrap(),
        Format::TraceDat
    );
    assert_eq!(
        input::sniff("x", b"PERFILE2\x68\0\0\0").unwrap(),
        Format::PerfData
    );
    assert_eq!(input::sniff("x", L1.as_bytes()).unwrap(), Format::Ftrace);
    assert_eq!(input::sniff("x", b"cpus=2\n").unwrap(), Format::TraceCmd);
    let perf = b"       kdamond.0  4452 [000] 82820.952659: damon:damon_aggregated: target_id=1 nr_regions=8 1-2: 0\n";
    assert_eq!(input::sniff("x", perf).unwrap(), Format::PerfScript);
}

#[test]
fn zstd_is_transparent_and_truncation_is_reported() {
    let text: String = (0..20_000)
        .map(|i| if i % 2 == 0 { L1 } else { L2 })
        .collect();
    let z = zstd::encode_all(text.as_bytes(), 3).unwrap();
    let s = stats_of(z.clone(), &Options::default()).unwrap();
    assert_eq!(s.records, 20_000);
    assert_eq!(s.events.get("tlb_flush"), Some(&10_000));
    let cut = z[..z.len() / 2].to_vec();
    let err = stats_of(cut, &Options::default()).unwrap_err();
    assert!(matches!(err, ParseError::Read { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("test.trace")
            && msg.contains("truncated")
            && msg.contains("of the decompressed zstd stream"),
        "{msg}"
    );
}

/// A stream that gives `data` and then fails with EIO (a bad disk, a dropped NFS mount).
struct FailsAfter {
    data: Cursor<Vec<u8>>,
}

impl Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.data.read(buf)? {
            0 => Err(std::io::Error::from_raw_os_error(5)),
            n => Ok(n),
        }
    }
}

/// EIO on a plain file names the exact byte the read failed at, as a file offset, and does
/// not guess "truncated" (the input did not end; the device failed). The same failure under
/// zstd names the decompressed offset, still without "truncated".
#[test]
fn read_error_names_exact_offset_and_says_truncated_only_when_input_ended() {
    let text: String = (0..30_000).map(|_| L1).collect();
    let n = text.len();
    let r: Box<dyn Read + Send> = Box::new(FailsAfter {
        data: Cursor::new(text.clone().into_bytes()),
    });
    let err = match input::open_reader("eio.trace", r, &Options::default()) {
        Ok(mut src) => collect(src.as_mut(), Filter::default()).unwrap_err(),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert_eq!(msg, format!("eio.trace: read failed at byte {n}"), "{msg}");

    let z = zstd::encode_all(text.as_bytes(), 3).unwrap();
    let r: Box<dyn Read + Send> = Box::new(FailsAfter {
        data: Cursor::new(z),
    });
    let err = match input::open_reader("eio.trace.zst", r, &Options::default()) {
        Ok(mut src) => collect(src.as_mut(), Filter::default()).unwrap_err(),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(
        msg.starts_with("eio.trace.zst: read failed at byte ")
            && msg.ends_with(" of the decompressed zstd stream"),
        "{msg}"
    );
    assert!(!msg.contains("truncated"), "{msg}");
}

#[test]
fn non_utf8_comm_is_kept_as_bytes() {
    let mut line = b"  ab\xff\xfecd-77 [001] d..2. 5.000001: tlb_flush: pages:1 reason:local MM shootdown (3)\n".to_vec();
    line.extend_from_slice(L3.as_bytes());
    let r = records(line);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].comm.as_bytes(), b"ab\xff\xfecd");
    assert_eq!(r[0].pid, 77);
}

#[test]
fn ten_megabyte_line_is_counted_not_fatal() {
    let mut input = L1.as_bytes().to_vec();
    input.extend(std::iter::repeat_n(b'x', 10 << 20));
    input.push(b'\n');
    input.extend_from_slice(L2.as_bytes());
    let s = stats_of(input.clone(), &Options::default()).unwrap();
    assert_eq!(s.records, 2);
    assert_eq!(s.unparsed_lines, 1);
    assert_eq!(s.unparsed_by_kind.get("line_too_long"), Some(&1));
    let err = stats_of(
        input,
        &Options {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("test.trace:2 (byte {})", L1.len())),
        "{msg}"
    );
    assert!(msg.contains("line_too_long"), "{msg}");
}

#[test]
fn files_go_through_mmap_and_zstd_paths_alike() {
    let dir = std::env::temp_dir().join(format!("mmreplay-parsers-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = L1.as_bytes().to_vec();
    text.extend(std::iter::repeat_n(b'y', 3 << 20));
    text.push(b'\n');
    text.extend_from_slice(L2.as_bytes());
    text.extend_from_slice(&L3.as_bytes()[..50]); // truncated last line, no newline
    let plain = dir.join("t.trace");
    let zst = dir.join("t.trace.zst");
    std::fs::write(&plain, &text).unwrap();
    std::fs::write(&zst, zstd::encode_all(&text[..], 1).unwrap()).unwrap();
    let mut got = vec![];
    for p in [&plain, &zst] {
        let mut src = input::open(p.to_str().unwrap(), &Options::default()).unwrap();
        let s = collect(src.as_mut(), Filter::default()).unwrap();
        assert_eq!((s.records, s.unparsed_lines), (2, 2), "{}", p.display());
        assert_eq!(s.unparsed_by_kind.get("line_too_long"), Some(&1));
        got.push(s);
    }
    assert_eq!(got[0].events, got[1].events);
    let missing = dir.join("nope.trace");
    let err = input::open(missing.to_str().unwrap(), &Options::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope.trace: cannot open"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strict_fails_on_first_bad_line_with_position() {
    let input = format!("{L1}{L2}this is not a trace line\n{L3}");
    let s = stats_of(input.clone().into_bytes(), &Options::default()).unwrap();
    assert_eq!((s.records, s.unparsed_lines), (3, 1));
    assert_eq!(s.unparsed_by_kind.get("no_anchor"), Some(&1));
    assert!(
        s.first_unparsed[0].contains("test.trace:3"),
        "{:?}",
        s.first_unparsed
    );
    let err = stats_of(
        input.into_bytes(),
        &Options {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    let want = format!(
        "test.trace:3 (byte {}): no_anchor: expected `comm-pid [cpu]`",
        L1.len() + L2.len()
    );
    assert!(msg.starts_with(&want), "{msg}");
}

#[test]
fn bad_payload_of_typed_event_is_counted_by_event() {
    let bad = "      capture.sh-15250   [000] ...1.  1439.232002: tlb_flush: pages:many reason:?\n";
    let input = format!("{L1}{bad}{L2}");
    let s = stats_of(input.clone().into_bytes(), &Options::default()).unwrap();
    assert_eq!(s.unparsed_payload_by_event.get("tlb_flush"), Some(&1));
    assert_eq!(s.unparsed_lines, 1);
    assert_eq!(s.events.get("tlb_flush"), Some(&1));
    let err = stats_of(
        input.into_bytes(),
        &Options {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ParseError::Payload { .. }), "{err}");
    assert!(err.to_string().contains("test.trace:2"), "{err}");
}

#[test]
fn lost_markers_and_skips() {
    let input = format!(
        "# tracer: nop\n{L1}CPU:1 [LOST 42 EVENTS]\n##### CPU 1 buffer started ####\n{L3} => do_syscall_64\n{L2}"
    );
    let s = stats_of(input.into_bytes(), &Options::default()).unwrap();
    assert_eq!((s.records, s.lost_markers, s.lost_events), (3, 1, 42));
    assert_eq!(s.skipped_by_kind.get("buffer_started"), Some(&1));
    assert_eq!(s.skipped_by_kind.get("stack_trace"), Some(&1));
    assert_eq!(s.skipped_by_kind.get("header"), Some(&1));
    assert_eq!(s.unparsed_lines, 0);
    let tc = "cpus=2\n  bash-1 [000]  1.000001: tlb_flush: pages=1 reason= (4)\nCPU:0 [EVENTS DROPPED]\nCPU:1 [5 EVENTS DROPPED]\n";
    let s = stats_of(tc.as_bytes().to_vec(), &Options::default()).unwrap();
    assert_eq!(
        (
            s.format.as_str(),
            s.lost_markers,
            s.lost_events,
            s.lost_markers_without_count
        ),
        ("trace-cmd", 2, 5, 1)
    );
    assert_eq!(
        s.tlb_flush_by_reason.get("remote IPI send"),
        Some(&1),
        "plugin's empty name mapped from code 4"
    );
}

#[test]
fn truncated_last_line_without_newline() {
    let input = format!("{L1}{}", &L2[..60]);
    let s = stats_of(input.into_bytes(), &Options::default()).unwrap();
    assert_eq!((s.records, s.unparsed_lines), (1, 1));
}

#[test]
fn wrong_format_override_counts_instead_of_panicking() {
    let input = format!("{L1}{L2}");
    let s = stats_of(
        input.into_bytes(),
        &Options {
            format: Some(Format::PerfScript),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((s.records, s.unparsed_lines), (0, 2));
}

#[test]
fn out_of_order_beyond_window_is_reported() {
    let mk = |ts: u32| {
        format!(
            "  a-1 [000] .... {}.{:06}: exit_mmap: x\n",
            ts / 1_000_000,
            ts % 1_000_000
        )
    };
    let mut input = String::new();
    for t in 0..100 {
        input.push_str(&mk(1000 + t * 10));
    }
    // 95 records behind the newest: reordered by the default window, late for a window of 8.
    input.push_str(&mk(1005));
    let s = stats_of(input.clone().into_bytes(), &Options::default()).unwrap();
    assert_eq!(
        s.out_of_order, 0,
        "inside the default window it is reordered"
    );
    let opts = Options {
        window: mmreplay_parsers::merge::Window::Count(8),
        ..Default::default()
    };
    let s = stats_of(input.into_bytes(), &opts).unwrap();
    assert_eq!(s.out_of_order, 1);
    assert_eq!(s.max_lag_ns, (1000 + 91 * 10 - 1005) as u64 * 1000);
}

#[test]
fn filters_by_pid_and_comm() {
    let input = format!("{L1}{L2}{L3}");
    let mut src = reader(input.clone().into_bytes(), &Options::default()).unwrap();
    let s = collect(
        src.as_mut(),
        Filter {
            pid: Some(0),
            comm: None,
        },
    )
    .unwrap();
    assert_eq!((s.records, s.tasks), (1, 1));
    let mut src = reader(input.into_bytes(), &Options::default()).unwrap();
    let s = collect(
        src.as_mut(),
        Filter {
            pid: None,
            comm: Some(b"capture.sh".to_vec()),
        },
    )
    .unwrap();
    assert_eq!(s.records, 2);
    assert_eq!(s.events.get("page_fault_user"), Some(&1));
}

#[test]
fn records_are_typed() {
    let r = records(format!("{L1}{L2}").into_bytes());
    assert!(matches!(
        r[0].event,
        Event::PageFault {
            user: true,
            address: 0x5585b85fc0c8,
            ip: 0x7f12bbe01109,
            error_code: 6
        }
    ));
    assert!(matches!(&r[1].event, Event::TlbFlush { pages: -1, reason } if reason.code == Some(4)));
}

mod props {
    use super::*;
    use mmreplay_parsers::text::{ftrace, Line};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = stats_of(data, &Options::default());
        }

        #[test]
        fn generated_lines_round_trip(
            comm in "[a-zA-Z0-9/:<>._()\\[\\] -]{0,14}[a-zA-Z0-9]",
            pid in 0i32..4_194_304,
            tgid in proptest::option::of(0i32..4_194_304),
            cpu in 0u32..1024,
            sec in 0u64..10_000_000,
            usec in 0u64..1_000_000,
            flags in proptest::option::of("[dDbX.][Nnp.][hHsZz.][0-9a-f.][0-9a-f.]?"),
        ) {
            let tg = match tgid { Some(t) => format!("({t:>7}) "), None => String::new() };
            let fl = flags.map(|f| format!("{f} ")).unwrap_or_default();
            let line = format!("{comm:>16}-{pid:<7} {tg}[{cpu:03}] {fl}{sec:>5}.{usec:06}: tlb_flush: pages:1 reason:x (0)");
            let Ok(Line::Event(e)) = ftrace::parse_line(line.as_bytes()) else {
                panic!("did not parse: {line:?}");
            };
            prop_assert_eq!(e.comm, comm.trim_start().as_bytes());
            prop_assert_eq!((e.pid, e.tgid, e.cpu), (pid, tgid, cpu));
            prop_assert_eq!(e.ts_ns, sec * 1_000_000_000 + usec * 1000);
            prop_assert_eq!(e.name, &b"tlb_flush"[..]);
        }
    }
}

/// Layout variants named in trace-formats.md §1.1/§1.4/§3.1 (synthetic lines in those layouts).
#[test]
fn layout_variants() {
    // trace-cmd >= 3.3 prints latency flags; 5-wide pid; event padded to 20; plugin payloads.
    let tc = "cpus=2\n          <idle>-0     [002] d..2.  2084.021659: sched_switch:         swapper/2:0 [120] R ==> kworker/2:1:2923 [120]\n           bash-1977  [001] ....  2084.021700: tlb_flush:            pages=1 reason=remote shootdown (1)\n";
    let s = stats_of(tc.as_bytes().to_vec(), &Options::default()).unwrap();
    assert_eq!(
        (s.format.as_str(), s.records, s.unparsed_lines),
        ("trace-cmd", 2, 0)
    );
    assert_eq!(s.tlb_flush_by_reason.get("remote shootdown"), Some(&1));
    // perf script: pid/tid, --ns timestamps, 7-wide, comm with spaces, period column.
    let perf = "  Web Content  4452/4460  [003] 100.000000001:   tlb:tlb_flush: pages:-1 reason:remote IPI send (4)\n perf 47118 [011] 51499.088689:          1 page-faults: \n\t    29ebc cmd_record (/usr/bin/perf)\n\n";
    let r = records(perf.as_bytes().to_vec());
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].pid, r[0].tgid, r[0].ts_ns),
        (4460, Some(4452), 100_000_000_001)
    );
    assert_eq!(r[0].comm.as_bytes(), b"Web Content");
    assert_eq!(r[1].event.name(), "page-faults");
    // Kernel text without the irq-info column, with record-tgid, and a raw (x86-tsc) clock.
    let k = "  a-1 (      1) [000] 123456789012: exit_mmap: mt_mod 0000, DESTROY\n  b-2 (-------) [001]   5.000001: exit_mmap: x\n";
    let r = records(k.as_bytes().to_vec());
    assert_eq!(
        (r[0].tgid, r[1].tgid),
        (None, Some(1)),
        "time-ordered: raw 5000001000 ns first"
    );
    assert_eq!(r[1].ts_ns, 123_456_789_012);
}

/// Every record, in order, and then the error (if any) from `next_record` one at a time.
fn one_by_one(bytes: Vec<u8>, opts: &Options) -> (Vec<Record>, Option<String>) {
    let mut src = reader(bytes, opts).expect("open");
    let mut v = vec![];
    loop {
        match src.next_record() {
            Ok(Some(r)) => v.push(r),
            Ok(None) => return (v, None),
            Err(e) => return (v, Some(e.to_string())),
        }
    }
}

/// The same through `next_batch` of at most `max` records into one reused buffer.
fn by_batches(bytes: Vec<u8>, opts: &Options, max: usize) -> (Vec<Record>, Option<String>) {
    let mut src = reader(bytes, opts).expect("open");
    let (mut v, mut batch) = (vec![], vec![]);
    loop {
        batch.clear();
        let got = src.next_batch(&mut batch, max);
        assert!(batch.len() <= max, "{} > {max}", batch.len());
        v.append(&mut batch);
        match got {
            Ok(0) => return (v, None),
            Ok(n) => assert!(n <= max),
            Err(e) => return (v, Some(e.to_string())),
        }
    }
}

/// `next_batch` (the stats / lowering hot path) gives the same records in the same order as
/// `next_record`, whatever the batch size, across the reorder window (timestamps going back),
/// unparsed lines, and a `--strict` error after records were released: the records before the
/// error, then the same error.
#[test]
fn next_batch_gives_what_next_record_gives() {
    let mut text = String::new();
    for i in 0..6000u64 {
        // Every third line 3 µs in the past: the reorder window moves it.
        let us = 100_000 + i * 2 - if i % 3 == 0 { 3 } else { 0 };
        let cpu = i % 4;
        text.push_str(&format!(
            "      capture.sh-15250   [{cpu:03}] d....  1439.{us:06}: page_fault_user: address=0x{:x} ip=0x7f12bbe01109 error_code=0x6\n",
            0x5585b85fc000u64 + i * 8
        ));
        if i == 5000 {
            text.push_str("this is not a trace line\n");
        }
    }
    for strict in [false, true] {
        let opts = Options {
            strict,
            ..Default::default()
        };
        let want = one_by_one(text.clone().into_bytes(), &opts);
        assert!(want.0.len() > 100, "{}", want.0.len());
        assert_eq!(want.1.is_some(), strict, "{:?}", want.1);
        for max in [1, 7, 256, 100_000] {
            let got = by_batches(text.clone().into_bytes(), &opts, max);
            assert_eq!(got.1, want.1, "strict={strict} max={max}");
            assert_eq!(got.0.len(), want.0.len(), "strict={strict} max={max}");
            assert!(got.0 == want.0, "strict={strict} max={max}: records differ");
        }
    }
}
