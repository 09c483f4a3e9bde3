//! perf.data from every producer, each file built here byte by byte from the format documents
//! (tools/perf/Documentation/perf.data-file-format.txt, tools/perf/util/header.c,
//! include/uapi/linux/perf_event.h; simpleperf doc/record_file_format.md and record.h), decoded
//! with the tracepoint counts written into it:
//! - perf 3.x file mode: VER0 attrs (`attr.size` 0), the legacy `event_types` section, "0.5"
//!   tracing data (no saved_cmdlines);
//! - modern perf file mode: VER8 attrs, EVENT_DESC, NRCPUS, COMPRESSED and COMPRESSED2 records;
//! - perf pipe mode: HEADER_ATTR (VER5), HEADER_EVENT_TYPE, HEADER_TRACING_DATA (data after the
//!   record), HEADER_BUILD_ID, HEADER_FEATURE, AUXTRACE_INFO and AUXTRACE records whose AUX
//!   payload (outside the record size) must be stepped over, with and without a CPU count;
//! - simpleperf: feature bits 128/129 (FILE, META_INFO), the tracing data in a
//!   SIMPLE_PERF_RECORD_TRACING_DATA record of the data section, larger than 64 KiB so that its
//!   size is split in `size1 << 16 | size0`.
//!
//! The damage rule: a stream that breaks (bytes after the last record, a record past the end)
//! keeps every record before the break, reports its byte offset and the bytes not read, and
//! `strict` makes it an error naming that byte. When /usr/bin/perf is installed, `perf script`
//! must read the same files with the same sample counts (the writer follows perf's reading).

use mmreplay_parsers::binary::perf::{read_perf_checked, PerfInfo};
use mmreplay_parsers::binary::perf_layout::Producer;
use mmreplay_parsers::Record;
use std::collections::BTreeMap;

// ---- tracing data (tools/perf/util/trace-event-info.c, trace-cmd.dat.v6 layout) ----------

const SWITCH_ID: u64 = 316;
const WAKEUP_ID: u64 = 318;

const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";
const HEADER_EVENT: &str = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n";
const COMMON: &str = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n";

fn switch_format() -> String {
    format!("name: sched_switch\nID: {SWITCH_ID}\nformat:\n{COMMON}\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;\n\nprint fmt: \"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d\", REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), \"|\", {{ 0x00000001, \"S\" }}, {{ 0x00000002, \"D\" }}) : \"R\", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? \"+\" : \"\", REC->next_comm, REC->next_pid, REC->next_prio\n")
}

fn wakeup_format() -> String {
    format!("name: sched_wakeup\nID: {WAKEUP_ID}\nformat:\n{COMMON}\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n\tfield:int target_cpu;\toffset:32;\tsize:4;\tsigned:1;\n\nprint fmt: \"comm=%s pid=%d prio=%d target_cpu=%03d\", REC->comm, REC->pid, REC->prio, REC->target_cpu\n")
}

/// perf's tracing data: `version` "0.6" (with saved_cmdlines) or "0.5" (perf 3.x, without);
/// `kallsyms_pad` bytes of kallsyms text make it as large as a test needs.
fn tracing_data(version: &str, kallsyms_pad: usize) -> Vec<u8> {
    let mut t = b"\x17\x08\x44tracing".to_vec();
    t.extend(version.as_bytes());
    t.push(0);
    t.push(0); // little-endian
    t.push(8); // long size
    t.extend(4096u32.to_le_bytes());
    t.extend(b"header_page\0");
    t.extend((HEADER_PAGE.len() as u64).to_le_bytes());
    t.extend(HEADER_PAGE.as_bytes());
    t.extend(b"header_event\0");
    t.extend((HEADER_EVENT.len() as u64).to_le_bytes());
    t.extend(HEADER_EVENT.as_bytes());
    t.extend(0u32.to_le_bytes()); // ftrace formats
    t.extend(1u32.to_le_bytes()); // systems
    t.extend(b"sched\0");
    t.extend(2u32.to_le_bytes());
    for f in [switch_format(), wakeup_format()] {
        t.extend((f.len() as u64).to_le_bytes());
        t.extend(f.as_bytes());
    }
    let mut ks = String::new();
    let mut i = 0u64;
    while ks.len() < kallsyms_pad {
        ks.push_str(&format!("ffffffff8100{i:04x} T padding_symbol_{i}\n"));
        i += 1;
    }
    t.extend((ks.len() as u32).to_le_bytes());
    t.extend(ks.as_bytes());
    t.extend(0u32.to_le_bytes()); // printk
    if version != "0.5" {
        let c = "100 worker\n";
        t.extend((c.len() as u64).to_le_bytes());
        t.extend(c.as_bytes());
    }
    t
}

// ---- perf_event_attr of every ABI size (include/uapi/linux/perf_event.h) --------------------

const SAMPLE_TID: u64 = 1 << 1;
const SAMPLE_TIME: u64 = 1 << 2;
const SAMPLE_CPU: u64 = 1 << 7;
const SAMPLE_PERIOD: u64 = 1 << 8;
const SAMPLE_RAW: u64 = 1 << 10;
const SAMPLE_IDENTIFIER: u64 = 1 << 16;
const SAMPLE_TYPE: u64 =
    SAMPLE_IDENTIFIER | SAMPLE_TID | SAMPLE_TIME | SAMPLE_CPU | SAMPLE_PERIOD | SAMPLE_RAW;
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// PERF_ATTR_SIZE_VER0..VER8.
const VER0: usize = 64;
const VER5: usize = 112;
const VER7: usize = 128;
const VER8: usize = 136;

/// A tracepoint attr of `abi` bytes; `size_field` is what `attr.size` says (0 in perf 3.x files
/// meaning VER0).
fn attr(config: u64, abi: usize, size_field: u32) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend(PERF_TYPE_TRACEPOINT.to_le_bytes());
    a.extend(size_field.to_le_bytes());
    a.extend(config.to_le_bytes());
    a.extend(1u64.to_le_bytes()); // sample_period
    a.extend(SAMPLE_TYPE.to_le_bytes());
    a.extend(0u64.to_le_bytes()); // read_format
    a.extend(((1u64 << 1) | (1 << 9)).to_le_bytes()); // inherit, comm
    a.resize(abi, 0);
    a
}

// ---- records ---------------------------------------------------------------------------------

fn rec(ty: u32, misc: u16, body: &[u8]) -> Vec<u8> {
    assert_eq!(body.len() % 8, 0, "records are 8-byte aligned");
    let mut r = Vec::new();
    r.extend(ty.to_le_bytes());
    r.extend(misc.to_le_bytes());
    r.extend(u16::try_from(8 + body.len()).unwrap().to_le_bytes());
    r.extend(body);
    r
}

/// What the test writes and then expects back.
#[derive(Clone, Copy)]
struct Ev {
    id: u64,
    tid: u32,
    cpu: u32,
    ts: u64,
    switch: bool,
}

fn events() -> Vec<Ev> {
    // Two CPUs, interleaved times, 9 sched_switch and 4 sched_wakeup.
    (0..13u64)
        .map(|i| Ev {
            id: if i % 3 == 1 { 2 } else { 1 },
            tid: 100 + (i % 2) as u32,
            cpu: (i % 2) as u32,
            ts: 1_000_000 + i * 1000,
            switch: i % 3 != 1,
        })
        .collect()
}

const SWITCHES: u64 = 9;
const WAKEUPS: u64 = 4;

/// PERF_RECORD_SAMPLE with IDENTIFIER, TID, TIME, CPU, PERIOD, RAW (in that order).
fn sample(e: &Ev) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend((if e.switch { SWITCH_ID } else { WAKEUP_ID } as u16).to_le_bytes());
    raw.extend([0u8, 0]);
    raw.extend((e.tid as i32).to_le_bytes());
    if e.switch {
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"worker");
        raw.extend(comm);
        raw.extend((e.tid as i32).to_le_bytes());
        raw.extend(120i32.to_le_bytes());
        raw.extend(1i64.to_le_bytes());
        raw.extend([0u8; 16]); // next_comm "" (idle)
        raw.extend(0i32.to_le_bytes());
        raw.extend(120i32.to_le_bytes());
    } else {
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"worker");
        raw.extend(comm);
        raw.extend(((e.tid + 1) as i32).to_le_bytes());
        raw.extend(120i32.to_le_bytes());
        raw.extend((e.cpu as i32).to_le_bytes());
    }
    // u32 size + data, padded so the record stays 8-aligned (perf_output_sample).
    while (4 + raw.len()) % 8 != 0 {
        raw.push(0);
    }
    let mut b = Vec::new();
    b.extend(e.id.to_le_bytes());
    b.extend(e.tid.to_le_bytes());
    b.extend(e.tid.to_le_bytes());
    b.extend(e.ts.to_le_bytes());
    b.extend(e.cpu.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend((raw.len() as u32).to_le_bytes());
    b.extend(raw);
    rec(9, 1, &b)
}

fn comm_record(tid: u32, name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(tid.to_le_bytes());
    b.extend(tid.to_le_bytes());
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    while n.len() % 8 != 0 {
        n.push(0);
    }
    b.extend(n);
    rec(3, 0, &b)
}

const FINISHED_ROUND: u32 = 68;

/// The record stream every producer here writes: COMMs, samples in two rounds.
fn stream(split_rounds: bool) -> Vec<u8> {
    let mut s = comm_record(100, "worker");
    s.extend(comm_record(101, "worker"));
    let ev = events();
    for (i, e) in ev.iter().enumerate() {
        s.extend(sample(e));
        if split_rounds && i == 6 {
            s.extend(rec(FINISHED_ROUND, 0, &[]));
        }
    }
    if split_rounds {
        s.extend(rec(FINISHED_ROUND, 0, &[]));
    }
    s
}

// ---- file mode (perf_file_header) -----------------------------------------------------------

struct FileSpec {
    /// (attr bytes, ids) per attr.
    attrs: Vec<(Vec<u8>, Vec<u64>)>,
    attr_size: usize,
    event_types: Vec<u8>,
    data: Vec<u8>,
    /// (feature bit, body), in bit order.
    features: Vec<(u32, Vec<u8>)>,
    /// simpleperf writes the ids before the attrs (record_file_format.h).
    ids_first: bool,
}

fn file(spec: &FileSpec) -> Vec<u8> {
    let mut out = vec![0u8; 104];
    let mut id_sections = Vec::new();
    let write_ids = |out: &mut Vec<u8>, id_sections: &mut Vec<(u64, u64)>| {
        for (_, ids) in &spec.attrs {
            id_sections.push((out.len() as u64, 8 * ids.len() as u64));
            for i in ids {
                out.extend(i.to_le_bytes());
            }
        }
    };
    if spec.ids_first {
        write_ids(&mut out, &mut id_sections);
    }
    let attrs_at = out.len() as u64;
    let mut attr_entries = Vec::new();
    for (i, (a, _)) in spec.attrs.iter().enumerate() {
        let mut e = a.clone();
        assert!(e.len() + 16 <= spec.attr_size);
        e.resize(spec.attr_size - 16, 0);
        attr_entries.push(e);
        let _ = i;
    }
    // Placeholder for the ids sections; patched once they are placed.
    for e in &attr_entries {
        out.extend(e);
        out.extend([0u8; 16]);
    }
    let attrs_size = out.len() as u64 - attrs_at;
    if !spec.ids_first {
        write_ids(&mut out, &mut id_sections);
    }
    for (i, (off, size)) in id_sections.iter().enumerate() {
        let at = attrs_at as usize + i * spec.attr_size + spec.attr_size - 16;
        out[at..at + 8].copy_from_slice(&off.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
    }
    let et_at = out.len() as u64;
    out.extend(&spec.event_types);
    let data_at = out.len() as u64;
    out.extend(&spec.data);
    let table = out.len();
    out.resize(table + 16 * spec.features.len(), 0);
    let mut bits = [0u64; 4];
    for (k, (f, body)) in spec.features.iter().enumerate() {
        bits[(*f / 64) as usize] |= 1 << (f % 64);
        let off = out.len() as u64;
        out.extend(body);
        let at = table + 16 * k;
        out[at..at + 8].copy_from_slice(&off.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(body.len() as u64).to_le_bytes());
    }
    let mut h = Vec::new();
    h.extend(b"PERFILE2");
    for v in [
        104u64,
        spec.attr_size as u64,
        attrs_at,
        attrs_size,
        data_at,
        spec.data.len() as u64,
        et_at,
        spec.event_types.len() as u64,
        bits[0],
        bits[1],
        bits[2],
        bits[3],
    ] {
        h.extend(v.to_le_bytes());
    }
    out[..104].copy_from_slice(&h);
    out
}

/// perf_header_string: u32 length (padded to 8, with the NUL) + the text.
fn header_string(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    while b.len() % 8 != 0 {
        b.push(0);
    }
    let mut out = (b.len() as u32).to_le_bytes().to_vec();
    out.extend(b);
    out
}

fn nrcpus(avail: u32, online: u32) -> Vec<u8> {
    let mut b = avail.to_le_bytes().to_vec();
    b.extend(online.to_le_bytes());
    b
}

/// HEADER_EVENT_DESC naming both attrs.
fn event_desc(attrs: &[(Vec<u8>, Vec<u64>)], names: &[&str]) -> Vec<u8> {
    let mut b = (attrs.len() as u32).to_le_bytes().to_vec();
    b.extend((attrs[0].0.len() as u32).to_le_bytes());
    for ((a, ids), n) in attrs.iter().zip(names) {
        b.extend(a);
        b.extend((ids.len() as u32).to_le_bytes());
        b.extend(header_string(n));
        for i in ids {
            b.extend(i.to_le_bytes());
        }
    }
    b
}

const HEADER_TRACING_DATA: u32 = 1;
const HEADER_VERSION: u32 = 5;
const HEADER_NRCPUS: u32 = 7;
const HEADER_EVENT_DESC: u32 = 12;
const HEADER_COMPRESSED: u32 = 27;

fn two_attrs(abi: usize, size_field: u32) -> Vec<(Vec<u8>, Vec<u64>)> {
    vec![
        (attr(SWITCH_ID, abi, size_field), vec![1]),
        (attr(WAKEUP_ID, abi, size_field), vec![2]),
    ]
}

/// perf 3.x: VER0 attrs whose size field is 0, and the event_types section
/// (`{u64 event_id; char name[64]}` per tracepoint) whose names, read as attr entries, give
/// "ids sections" made of ASCII.
fn perf3_file() -> Vec<u8> {
    let attrs = two_attrs(VER0, 0);
    let mut et = Vec::new();
    for (id, name) in [
        (SWITCH_ID, "sched:sched_switch"),
        (WAKEUP_ID, "sched:sched_wakeup"),
    ] {
        et.extend(id.to_le_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(64, 0);
        et.extend(n);
    }
    file(&FileSpec {
        attrs,
        attr_size: VER0 + 16,
        event_types: et,
        data: stream(true),
        features: vec![
            (HEADER_TRACING_DATA, tracing_data("0.5", 0)),
            (HEADER_VERSION, header_string("3.2.0")),
            (HEADER_NRCPUS, nrcpus(4, 2)),
        ],
        ids_first: false,
    })
}

/// zstd of `raw`, cut into COMPRESSED (81) and COMPRESSED2 (83) records of one stream, as perf
/// writes them (zstd_compress_stream_to_records, flushing per record).
fn compressed_records(raw: &[u8], use_compressed2: bool) -> Vec<u8> {
    let mut cctx = zstd::zstd_safe::CCtx::create();
    let mut out = Vec::new();
    for (k, chunk) in raw.chunks(raw.len() / 2 + 1).enumerate() {
        let mut buf = vec![0u8; 4096];
        let mut input = zstd::zstd_safe::InBuffer::around(chunk);
        let mut z = Vec::new();
        loop {
            let mut o = zstd::zstd_safe::OutBuffer::around(&mut buf[..]);
            let left = cctx
                .compress_stream2(
                    &mut o,
                    &mut input,
                    zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush,
                )
                .unwrap();
            z.extend_from_slice(o.as_slice());
            if left == 0 && input.pos() == chunk.len() {
                break;
            }
        }
        if k == 0 || !use_compressed2 {
            // COMPRESSED: the header size covers the data (padded to 8 with zeros that zstd
            // never reads: the stream is complete per record).
            let n = z.len();
            z.resize(n.div_ceil(8) * 8, 0);
            out.extend(rec(81, 0, &z));
        } else {
            // COMPRESSED2: u64 data_size, then the data, padded to 8.
            let mut b = (z.len() as u64).to_le_bytes().to_vec();
            b.extend(&z);
            b.resize(b.len().div_ceil(8) * 8, 0);
            out.extend(rec(83, 0, &b));
        }
    }
    out
}

/// Modern perf: `abi`-sized attrs (VER7 as perf 6.1 writes, VER8 as 6.3+ do), EVENT_DESC,
/// NRCPUS, and when `compress` the records in COMPRESSED (+ COMPRESSED2 when `c2`, perf 6.16+)
/// with HEADER_COMPRESSED.
fn perf_modern_file(compress: bool, c2: bool, abi: usize) -> Vec<u8> {
    let attrs = two_attrs(abi, abi as u32);
    let desc = event_desc(&attrs, &["sched:sched_switch", "sched:sched_wakeup"]);
    let data = if compress {
        compressed_records(&stream(true), c2)
    } else {
        stream(true)
    };
    let mut features = vec![
        (HEADER_TRACING_DATA, tracing_data("0.6", 0)),
        (HEADER_VERSION, header_string("6.1.192")),
        (HEADER_NRCPUS, nrcpus(8, 2)),
        (HEADER_EVENT_DESC, desc),
    ];
    if compress {
        // struct { u32 version, type (1 = PERF_COMP_ZSTD), level, ratio, mmap_len }.
        let c: Vec<u8> = [0u32, 1, 1, 4, 528_384]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        features.push((HEADER_COMPRESSED, c));
    }
    file(&FileSpec {
        attrs,
        attr_size: abi + 16,
        event_types: Vec::new(),
        data,
        features,
        ids_first: false,
    })
}

/// simpleperf: no TRACING_DATA feature; a SIMPLE_PERF_RECORD_TRACING_DATA record (u32 size,
/// the data padded to 64) larger than 64 KiB, its size as `size1 << 16 | size0`; META_INFO.
fn simpleperf_file() -> Vec<u8> {
    let attrs = two_attrs(VER7, VER7 as u32);
    let td = tracing_data("0.6", 70_000);
    let mut body = (td.len() as u32).to_le_bytes().to_vec();
    body.extend(&td);
    body.resize(4 + td.len().div_ceil(64) * 64, 0);
    let size = 8 + body.len();
    assert!(size > 65535, "the record must need size1");
    let mut data = Vec::new();
    data.extend(32777u32.to_le_bytes());
    data.extend(((size >> 16) as u16).to_le_bytes());
    data.extend(((size & 0xffff) as u16).to_le_bytes());
    data.extend(body);
    data.extend(stream(false));
    let mut meta = Vec::new();
    for (k, v) in [
        ("simpleperf_version", "1.build.7848450"),
        (
            "event_type_info",
            "sched:sched_switch,2,316\nsched:sched_wakeup,2,318",
        ),
        ("android_version", "13"),
    ] {
        meta.extend(k.as_bytes());
        meta.push(0);
        meta.extend(v.as_bytes());
        meta.push(0);
    }
    file(&FileSpec {
        attrs,
        attr_size: VER7 + 16,
        event_types: Vec::new(),
        data,
        features: vec![(128, Vec::new()), (129, meta)],
        ids_first: true,
    })
}

// ---- pipe mode (perf_pipe_file_header + HEADER_* records) -----------------------------------

const AUX_PAYLOAD: usize = 1000;

/// `nrcpus`: whether a HEADER_FEATURE(NRCPUS) record is written.
fn pipe_stream(nrcpus_feature: bool, aux: bool) -> Vec<u8> {
    let mut s = b"PERFILE2".to_vec();
    s.extend(16u64.to_le_bytes());
    for (a, ids) in two_attrs(VER5, VER5 as u32) {
        let mut b = a;
        for i in ids {
            b.extend(i.to_le_bytes());
        }
        s.extend(rec(64, 0, &b));
    }
    for (id, name) in [
        (SWITCH_ID, "sched:sched_switch"),
        (WAKEUP_ID, "sched:sched_wakeup"),
    ] {
        let mut b = id.to_le_bytes().to_vec();
        let mut n = name.as_bytes().to_vec();
        n.resize(64, 0);
        b.extend(n);
        s.extend(rec(65, 0, &b));
    }
    if nrcpus_feature {
        let mut b = (HEADER_NRCPUS as u64).to_le_bytes().to_vec();
        b.extend(nrcpus(8, 2));
        s.extend(rec(80, 0, &b));
    }
    // HEADER_TRACING_DATA: u32 size (8-aligned), the data right after the record.
    let mut td = tracing_data("0.6", 0);
    td.resize(td.len().div_ceil(8) * 8, 0);
    s.extend(rec(
        66,
        0,
        &[(td.len() as u32).to_le_bytes(), [0; 4]].concat(),
    ));
    s.extend(&td);
    // HEADER_BUILD_ID: pid, build id, filename.
    let mut b = (-1i32).to_le_bytes().to_vec();
    b.extend([0xab; 24]);
    b.extend(b"[kernel.kallsyms]\0");
    b.resize(b.len().div_ceil(8) * 8, 0);
    s.extend(rec(67, 0, &b));
    if aux {
        // AUXTRACE_INFO (u32 type, u32 reserved, u64 priv[2]) then AUXTRACE: u64 size, offset,
        // reference, u32 idx, tid, cpu, reserved; `size` bytes of AUX data follow the record.
        let mut b = 6u32.to_le_bytes().to_vec();
        b.extend([0u8; 4 + 16]);
        s.extend(rec(70, 0, &b));
        let mut b = (AUX_PAYLOAD as u64).to_le_bytes().to_vec();
        b.extend([0u8; 8 + 8]);
        b.extend([0u8; 16]);
        s.extend(rec(71, 0, &b));
        // AUX data: zeros, which read as records would be "size 0" (what the old reader did).
        s.extend(vec![0u8; AUX_PAYLOAD]);
    }
    s.extend(stream(true));
    s
}

// ---- checks ----------------------------------------------------------------------------------

fn counts(recs: &[Record]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in recs {
        *m.entry(r.event.name().to_string()).or_default() += 1;
    }
    m
}

fn expect_events(name: &str, recs: &[Record]) {
    let c = counts(recs);
    assert_eq!(c.get("sched_switch"), Some(&SWITCHES), "{name}: {c:?}");
    assert_eq!(c.get("sched_wakeup"), Some(&WAKEUPS), "{name}: {c:?}");
    assert_eq!(recs.len() as u64, SWITCHES + WAKEUPS, "{name}: {c:?}");
    // Time order, CPUs and comms (from COMM records) as written.
    assert!(recs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "{name}");
    let ev = events();
    for (r, e) in recs.iter().zip(&ev) {
        assert_eq!(
            (r.ts_ns, r.cpu, r.pid),
            (e.ts, e.cpu, e.tid as i32),
            "{name}"
        );
        assert_eq!(r.comm.as_bytes(), b"worker", "{name}");
    }
}

fn read(name: &str, d: &[u8]) -> (PerfInfo, Vec<Record>) {
    read_perf_checked(d, None, true).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `perf script -i` sample lines per event name, when perf is installed and reads the file.
fn perf_script_counts(name: &str, d: &[u8]) -> Option<BTreeMap<String, u64>> {
    let perf = std::path::Path::new("/usr/bin/perf");
    if !perf.exists() {
        eprintln!("note: /usr/bin/perf missing; {name} not compared with perf script");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("mmreplay-perf-producers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, d).unwrap();
    let out = std::process::Command::new(perf)
        .args(["script", "-F", "event", "-i"])
        .arg(&p)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&p);
    assert!(
        out.status.success(),
        "{name}: perf script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let ev = l.trim().trim_end_matches(':');
        let ev = ev.rsplit(':').next().unwrap_or(ev).to_string();
        *m.entry(ev).or_default() += 1;
    }
    Some(m)
}

fn same_as_perf_script(name: &str, d: &[u8], recs: &[Record]) {
    if let Some(p) = perf_script_counts(name, d) {
        assert_eq!(p, counts(recs), "{name}: perf script counts");
    }
}

#[test]
fn perf3_file_with_event_types_section() {
    let d = perf3_file();
    let (info, recs) = read("perf3", &d);
    assert_eq!(info.producer, Some(Producer::PerfLegacy));
    assert_eq!(
        info.attr_names,
        ["sched:sched_switch", "sched:sched_wakeup"]
    );
    assert_eq!(info.nr_cpus, Some(2));
    assert_eq!(info.version.as_deref(), Some("3.2.0"));
    expect_events("perf3", &recs);
    same_as_perf_script("perf3.data", &d, &recs);
    // The old reading (event_types as attr + ids entries) failed on this file: the crate path
    // still reads it that way.
    assert!(mmreplay_parsers::binary::perf::read_perf_crate_path(&d, None).is_err());
}

#[test]
fn modern_perf_file_with_compressed_records() {
    // perf 6.1 (this machine's) refuses attr_size 152 (VER8 + ids: "incompatible file format",
    // it knows sizes up to its own VER7) and COMPRESSED2 ("failed to process type: 83"), so
    // only the VER7 files without COMPRESSED2 are compared with perf script.
    for (compress, c2, abi) in [
        (true, false, VER7),
        (false, false, VER7),
        (true, true, VER7),
        (true, true, VER8),
        (false, false, VER8),
    ] {
        let name = format!("modern-{compress}-{c2}-{abi}");
        let d = perf_modern_file(compress, c2, abi);
        let (info, recs) = read(&name, &d);
        assert_eq!(info.producer, Some(Producer::Perf), "{name}");
        assert_eq!(
            info.attr_names,
            ["sched:sched_switch", "sched:sched_wakeup"]
        );
        assert_eq!(info.nr_cpus, Some(2));
        assert!(info.damage.is_none(), "{name}: {:?}", info.damage);
        expect_events(&name, &recs);
        if abi == VER7 && !c2 {
            same_as_perf_script(&format!("{name}.data"), &d, &recs);
        }
        // The crate path reads this layout too: same Records.
        let (_, c) = mmreplay_parsers::binary::perf::read_perf_crate_path(&d, None).unwrap();
        assert_eq!(c, recs, "{name}");
    }
}

#[test]
fn simpleperf_file_with_tracing_data_record() {
    let d = simpleperf_file();
    let (info, recs) = read("simpleperf", &d);
    assert_eq!(info.producer, Some(Producer::Simpleperf));
    assert_eq!(info.version.as_deref(), Some("1.build.7848450"));
    assert_eq!(
        info.attr_names,
        ["sched:sched_switch", "sched:sched_wakeup"]
    );
    assert_eq!(info.nr_cpus, None, "simpleperf states no CPU count");
    expect_events("simpleperf", &recs);
    // (perf does not read simpleperf's own record types: no perf script comparison.)
}

#[test]
fn pipe_stream_with_auxtrace_payload() {
    let d = pipe_stream(true, true);
    let (info, recs) = read("pipe-aux", &d);
    assert_eq!(info.producer, Some(Producer::PerfPipe));
    assert_eq!(info.nr_cpus, Some(2));
    assert_eq!(info.aux_bytes, AUX_PAYLOAD as u64);
    assert_eq!(info.skipped_records.get("auxtrace"), Some(&1));
    assert_eq!(
        info.attr_names,
        ["sched:sched_switch", "sched:sched_wakeup"]
    );
    expect_events("pipe-aux", &recs);
    // Same records as the stream without AUX data.
    let (_, plain) = read("pipe", &pipe_stream(true, false));
    assert_eq!(plain, recs);
    same_as_perf_script("pipe.data", &pipe_stream(true, false), &plain);
}

#[test]
fn pipe_stream_without_cpu_count() {
    let (info, recs) = read("pipe-nocpus", &pipe_stream(false, false));
    assert_eq!(info.nr_cpus, None);
    expect_events("pipe-nocpus", &recs);
    // Through the public door the fact reaches `stats` (and replay, which then says it assumed).
    let f = mmreplay_parsers::binary::read_bytes(&pipe_stream(false, false))
        .unwrap()
        .facts
        .unwrap();
    assert_eq!((f.producer.as_str(), f.nr_cpus), ("perf (pipe mode)", None));
}

/// The rule for damaged tails: bytes after the last whole record (a recorder's stderr appended
/// to a pipe capture, a file cut mid-record) end the stream there; every record before is kept;
/// the offset and the bytes not read are reported; `strict` makes it an error at that byte.
#[test]
fn damaged_tails_keep_every_record_before_and_say_where() {
    let good = pipe_stream(true, true);
    let (_, want) = read("pipe", &good);
    let tail = b"some stderr\n";
    for (name, d, at, bytes) in [
        (
            "stderr tail",
            [&good[..], tail].concat(),
            good.len(),
            tail.len(),
        ),
        ("3 bytes", [&good[..], b"abc"].concat(), good.len(), 3),
        // Cut inside the last sample: the records before it are kept.
        ("cut", good[..good.len() - 20].to_vec(), 0, 0),
    ] {
        let (info, recs) = read_perf_checked(&d, None, false).unwrap();
        let dmg = info
            .damage
            .clone()
            .unwrap_or_else(|| panic!("{name}: no damage"));
        if name == "cut" {
            // The last record is a FINISHED_ROUND (8 bytes) after the last sample.
            let last_sample = sample(events().last().unwrap()).len();
            assert_eq!(dmg.offset as usize, good.len() - 8 - last_sample, "{name}");
            assert_eq!(recs[..], want[..want.len() - 1], "{name}");
        } else {
            assert_eq!(
                (dmg.offset as usize, dmg.bytes as usize),
                (at, bytes),
                "{name}"
            );
            assert_eq!(recs, want, "{name}");
        }
        let e = read_perf_checked(&d, None, true).unwrap_err().to_string();
        assert!(e.contains(&format!("byte {}", dmg.offset)), "{name}: {e}");
    }
    // File mode: a record whose size is 0 in the middle of the data section (a corrupted
    // header) is the same rule; the feature sections after the data are still read.
    let mut f = perf_modern_file(false, false, VER8);
    let (_, want) = read("modern", &f);
    let h = |f: &[u8], at: usize| u64::from_le_bytes(f[at..at + 8].try_into().unwrap()) as usize;
    let (start, end) = (h(&f, 40), h(&f, 40) + h(&f, 48));
    // Skip the two COMMs and 5 samples.
    let mut at = start;
    for _ in 0..7 {
        at += u16::from_le_bytes([f[at + 6], f[at + 7]]) as usize;
    }
    f[at + 6..at + 8].copy_from_slice(&0u16.to_le_bytes());
    let (info, recs) = read_perf_checked(&f, None, false).unwrap();
    let dmg = info.damage.unwrap();
    assert_eq!(
        (dmg.offset as usize, dmg.bytes as usize),
        (at, end - at),
        "{dmg:?}"
    );
    assert_eq!(recs[..], want[..5]);
    let e = read_perf_checked(&f, None, true).unwrap_err().to_string();
    assert!(e.contains(&format!("byte {at}")), "{e}");
}

// ---- real captures ---------------------------------------------------------------------------

fn unzstd(p: &std::path::Path) -> Vec<u8> {
    zstd::decode_all(&std::fs::read(p).unwrap()[..]).unwrap()
}

/// A real perf 6.1 pipe capture (corpus/paired/capture_pipe_tail.sh) with the recorder's stderr
/// appended: the counts are `perf script`'s on the same file (it stops at the tail with
/// "unexpected end of event stream" and keeps every event), the tail is reported at its byte.
#[test]
fn real_pipe_capture_with_stderr_tail() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/paired/mmwork.pipe-stderr.perfdata.zst");
    let d = unzstd(&p);
    let (info, recs) = read_perf_checked(&d, None, false).unwrap();
    assert_eq!(info.producer, Some(Producer::PerfPipe));
    assert_eq!(info.nr_cpus, Some(2));
    let dmg = info.damage.expect("the stderr tail");
    assert_eq!(
        (dmg.offset as usize, dmg.bytes as usize),
        (d.len() - 12, 12),
        "{dmg:?}"
    );
    let want: BTreeMap<String, u64> = [
        ("sched_process_exec", 2),
        ("sched_process_exit", 3),
        ("sched_process_fork", 2),
        ("sched_switch", 4),
        ("sys_enter_mprotect", 12),
        ("tlb_flush", 55),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts(&recs), want);
    same_as_perf_script("mmwork.pipe-stderr.perfdata", &d, &recs);
    let e = read_perf_checked(&d, None, true).unwrap_err().to_string();
    assert!(e.contains(&format!("byte {}", d.len() - 12)), "{e}");
    // Without the tail: the same records and no damage.
    let (info, clean) = read_perf_checked(&d[..d.len() - 12], None, true).unwrap();
    assert!(info.damage.is_none());
    assert_eq!(clean, recs);
}

/// The third-party perf.data of the shared folder (the only perf.data among its files: damo's,
/// perf 5.12 file mode, 2 CPUs): producer and CPU count recognised, nothing damaged, and the
/// counts `perf script` gives (10,260 `damon:damon_aggregated`, shared/external/README.md).
#[test]
fn shared_damo_perf_data_matches_perf_script_counts() {
    let Some(dir) = std::env::var_os("MMREPLAY_SHARED_DIR") else {
        eprintln!("note: MMREPLAY_SHARED_DIR is unset; skipping the damo perf.data check");
        return;
    };
    let p = std::path::PathBuf::from(dir).join("external/awslabs__damo/tests/report/perf.data");
    assert!(
        p.is_file(),
        "MMREPLAY_SHARED_DIR is set but {} is missing",
        p.display()
    );
    let d = std::fs::read(&p).unwrap();
    let (info, recs) = read_perf_checked(&d, None, true).unwrap();
    assert_eq!(info.producer, Some(Producer::Perf));
    assert_eq!(info.nr_cpus, Some(2));
    assert!(info.damage.is_none() && info.notes.is_empty(), "{info:?}");
    assert_eq!(
        info.attr_names,
        ["damon:damon_aggregated", "dummy:HG"],
        "EVENT_DESC names"
    );
    let c = counts(&recs);
    assert_eq!(c.get("damon_aggregated"), Some(&10_260), "{c:?}");
    assert_eq!(recs.len(), 10_260);
    same_as_perf_script("damo.perf.data", &d, &recs);
}

/// The rule at every cut: a pipe stream cut at any byte reads without panic; once its metadata
/// is complete, it gives a prefix of the whole stream's records and reports the cut (unless the
/// cut falls exactly between records), and `strict` refuses every cut that is reported.
#[test]
fn every_cut_of_a_pipe_stream_keeps_a_prefix() {
    let d = pipe_stream(true, true);
    let (_, all) = read("pipe", &d);
    let mut prefixes = 0;
    for cut in 16..d.len() {
        let part = &d[..cut];
        match read_perf_checked(part, None, false) {
            Ok((info, recs)) => {
                assert_eq!(recs[..], all[..recs.len()], "cut {cut}");
                if let Some(dmg) = &info.damage {
                    assert_eq!(dmg.offset as usize + dmg.bytes as usize, cut, "cut {cut}");
                    assert!(read_perf_checked(part, None, true).is_err(), "cut {cut}");
                }
                prefixes += 1;
            }
            // Cut inside the metadata (attrs, tracing data): nothing can be decoded.
            Err(e) => assert!(e.to_string().contains("tracing data"), "cut {cut}: {e}"),
        }
    }
    assert!(prefixes > 1000, "{prefixes}");
}
