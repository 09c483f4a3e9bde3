//! trace.dat files built byte by byte from the format description (trace-cmd.dat.v6.5.txt /
//! v7.5.txt, kernel ring-buffer page layout) for layouts no real capture here has: a 32-bit
//! kernel (4-byte `commit`, 12-byte page header, 4-byte longs in events and bitmasks), missed
//! events with a stored count, discarded (padding) events, and a zlib-compressed v7.

use flate2::write::ZlibEncoder;
use mmreplay_parsers::binary::tracedat::TraceDat;
use mmreplay_parsers::binary::{read_bytes, BinaryFormat};
use mmreplay_parsers::record::{IpiKind, TlbReason};
use mmreplay_parsers::{Comm, Event, Record};
use std::io::Write;

const PAGE: usize = 4096;

#[derive(Default)]
struct W(Vec<u8>);

thread_local! {
    /// Byte order of everything the builders write on this test's thread (trace.dat files are
    /// in the recording kernel's order; big-endian ones come from PowerPC / s390 / ARM BE).
    static BIG: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn big() -> bool {
    BIG.with(|b| b.get())
}

impl W {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend(if big() {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend(if big() {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend(if big() {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
        self
    }
    fn b(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    fn cstr(&mut self, s: &str) -> &mut Self {
        self.b(s.as_bytes()).u8(0)
    }
    fn pad_to(&mut self, align: usize) {
        while self.0.len() % align != 0 {
            self.0.push(0);
        }
    }
}

const HEADER_PAGE_32: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:4;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:12;\tsize:4084;\tsigned:0;\n";
const HEADER_EVENT: &str = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n";
const COMMON: &str = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n";

fn formats_32() -> Vec<(&'static str, String)> {
    vec![
        ("tlb", format!("name: tlb_flush\nID: 101\nformat:\n{COMMON}\tfield:int reason;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long pages;\toffset:12;\tsize:4;\tsigned:0;\n\nprint fmt: \"pages:%ld reason:%s (%d)\", REC->pages, __print_symbolic(REC->reason, {{ 0, \"flush on task switch\" }}, {{ 1, \"remote shootdown\" }}, {{ 2, \"local shootdown\" }}, {{ 3, \"local MM shootdown\" }}, {{ 4, \"remote IPI send\" }}), REC->reason\n")),
        ("sched", format!("name: sched_switch\nID: 102\nformat:\n{COMMON}\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n\tfield:long prev_state;\toffset:32;\tsize:4;\tsigned:1;\n\tfield:char next_comm[16];\toffset:36;\tsize:16;\tsigned:0;\n\tfield:pid_t next_pid;\toffset:52;\tsize:4;\tsigned:1;\n\tfield:int next_prio;\toffset:56;\tsize:4;\tsigned:1;\n\nprint fmt: \"prev_state=%s%s\", (REC->prev_state & ((((0x0000 | 0x0001 | 0x0002) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & 7, \"|\", {{ 0x0001, \"S\" }}, {{ 0x0002, \"D\" }}) : \"R\", REC->prev_state & 8 ? \"+\" : \"\"\n")),
        ("ipi", format!("name: ipi_send_cpumask\nID: 103\nformat:\n{COMMON}\tfield:__data_loc cpumask_t cpumask;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:void * callsite;\toffset:12;\tsize:4;\tsigned:0;\n\tfield:void * callback;\toffset:16;\tsize:4;\tsigned:0;\n\nprint fmt: \"cpumask=%s callsite=%pS callback=%pS\", __get_cpumask(cpumask), REC->callsite, REC->callback\n")),
    ]
}

const KALLSYMS: &str =
    "c0101000 T flush_tlb_func\nc0102000 t on_each_cpu_cond_mask\nc0103000 T other_fn\n";
const CMDLINES: &str = "42 worker\n7 init\n";

/// Ring-buffer event header word: type_len in the low 5 bits on little-endian kernels, in the
/// high 5 bits on big-endian ones (the C bitfield order follows the byte order).
fn hdr(type_len: u32, delta: u32) -> u32 {
    if big() {
        (type_len << 27) | delta
    } else {
        type_len | (delta << 5)
    }
}

/// Two CPU streams of one page each on a 32-bit kernel, and the records they must give.
fn pages_32() -> (Vec<u8>, Vec<u8>, Vec<Record>) {
    // CPU 0: tlb_flush @ +10, padding (discarded event, delta 5), time extend (+1<<27 +3),
    // sched_switch, ipi_send_cpumask.
    let mut d = W::default();
    d.u32(hdr(4, 10)); // 16-byte payload
    d.u16(101).u8(0).u8(0).u32(42).u32(4).u32(0xffff_ffff); // reason 4, pages -1 (32-bit long)
    d.u32(hdr(29, 5)).u32(12).u32(0xdead_beef).u32(0); // discarded: array[0] = bytes after the header
    d.u32(hdr(30, 3)).u32(1); // time extend
    d.u32(hdr(15, 0)); // 60-byte sched_switch
    d.u16(102).u8(0).u8(0).u32(42);
    d.b(b"worker\0\0\0\0\0\0\0\0\0\0")
        .u32(42)
        .u32(120)
        .u32(0x1 | 0x8);
    d.b(b"init\0\0\0\0\0\0\0\0\0\0\0\0").u32(7).u32(120);
    d.u32(hdr(6, 2)); // 24-byte ipi_send_cpumask with a 4-byte mask at 20
    d.u16(103)
        .u8(0)
        .u8(0)
        .u32(7)
        .u32((4 << 16) | 20)
        .u32(0xc010_2020)
        .u32(0xc010_1000)
        .u32(0b1010);
    let body0 = d.0;
    let mut p0 = W::default();
    p0.u64(1_000_000).u32(body0.len() as u32).b(&body0);
    p0.0.resize(PAGE, 0);
    // CPU 1: missed events with the count stored after the data, then a long-form event.
    let mut d = W::default();
    d.u32(hdr(0, 7)).u32(16 + 4); // type_len 0: array[0] = payload + 4
    d.u16(101).u8(0).u8(0).u32(99).u32(1).u32(3);
    let body1 = d.0;
    let mut p1 = W::default();
    let commit = body1.len() as u32 | (1 << 31) | (1 << 30);
    p1.u64(1_000_001).u32(commit).b(&body1).u32(17);
    p1.0.resize(PAGE, 0);

    let tlb = |code: i32, text: &str| TlbReason {
        code: Some(code),
        text: text.into(),
    };
    let t_switch = 1_000_000 + 10 + 5 + (1u64 << 27) + 3;
    let want = vec![
        Record {
            ts_ns: 1_000_001,
            cpu: 1,
            pid: -1,
            tgid: None,
            comm: Comm::default(),
            event: Event::Lost { count: Some(17) },
        },
        Record {
            ts_ns: 1_000_008,
            cpu: 1,
            pid: 99,
            tgid: None,
            comm: Comm::new(b"<...>"),
            event: Event::TlbFlush {
                pages: 3,
                reason: tlb(1, "remote shootdown"),
            },
        },
        Record {
            ts_ns: 1_000_010,
            cpu: 0,
            pid: 42,
            tgid: None,
            comm: Comm::new(b"worker"),
            event: Event::TlbFlush {
                pages: -1,
                reason: tlb(4, "remote IPI send"),
            },
        },
        Record {
            ts_ns: t_switch,
            cpu: 0,
            pid: 42,
            tgid: None,
            comm: Comm::new(b"worker"),
            event: Event::SchedSwitch {
                prev_pid: 42,
                prev_state: "S+".into(),
                next_pid: 7,
                next_comm: Comm::new(b"init"),
            },
        },
        Record {
            ts_ns: t_switch + 2,
            cpu: 0,
            pid: 7,
            tgid: None,
            comm: Comm::new(b"init"),
            event: Event::IpiSendCpumask {
                mask: 0b1010,
                targets: 2,
                kind: IpiKind::TlbShootdown,
            },
        },
    ];
    (p0.0, p1.0, want)
}

fn metadata_v6(w: &mut W) {
    w.cstr("header_page")
        .u64(HEADER_PAGE_32.len() as u64)
        .b(HEADER_PAGE_32.as_bytes());
    w.cstr("header_event")
        .u64(HEADER_EVENT.len() as u64)
        .b(HEADER_EVENT.as_bytes());
    w.u32(0); // no ftrace formats
    let f = formats_32();
    w.u32(f.len() as u32);
    for (sys, text) in &f {
        w.cstr(sys).u32(1).u64(text.len() as u64).b(text.as_bytes());
    }
    w.u32(KALLSYMS.len() as u32).b(KALLSYMS.as_bytes());
    w.u32(0); // printk
    w.u64(CMDLINES.len() as u64).b(CMDLINES.as_bytes());
}

fn build_v6_32() -> (Vec<u8>, Vec<Record>) {
    let (p0, p1, want) = pages_32();
    let mut w = W::default();
    w.b(b"\x17\x08\x44tracing")
        .cstr("6")
        .u8(u8::from(big()))
        .u8(4)
        .u32(PAGE as u32);
    metadata_v6(&mut w);
    w.u32(2); // nr_cpus
    w.b(b"options  \0");
    let clock = "[local] global counter\n\0";
    w.u16(4).u32(clock.len() as u32).b(clock.as_bytes());
    let uname = "Linux rpi 4.14.62 armv7l\0";
    w.u16(5).u32(uname.len() as u32).b(uname.as_bytes());
    w.u16(0);
    w.b(b"flyrecord\0");
    let table_at = w.0.len();
    w.u64(0).u64(0).u64(0).u64(0);
    w.pad_to(PAGE);
    let off0 = w.0.len();
    w.b(&p0);
    let off1 = w.0.len();
    w.b(&p1);
    let mut t = W::default();
    t.u64(off0 as u64)
        .u64(PAGE as u64)
        .u64(off1 as u64)
        .u64(PAGE as u64);
    w.0[table_at..table_at + 32].copy_from_slice(&t.0);
    (w.0, want)
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A v7 section header + zlib-compressed body.
fn section(w: &mut W, id: u16, body: &[u8]) -> u64 {
    let at = w.0.len() as u64;
    let c = zlib(body);
    w.u16(id)
        .u16(1)
        .u32(0)
        .u64(8 + c.len() as u64)
        .u32(c.len() as u32)
        .u32(body.len() as u32)
        .b(&c);
    at
}

fn build_v7_zlib_32() -> (Vec<u8>, Vec<Record>) {
    let (p0, p1, want) = pages_32();
    let mut w = W::default();
    w.b(b"\x17\x08\x44tracing")
        .cstr("7")
        .u8(0)
        .u8(4)
        .u32(PAGE as u32);
    w.cstr("zlib").cstr("1.2.13");
    let first_opt_at = w.0.len();
    w.u64(0);
    let mut h = W::default();
    h.cstr("header_page")
        .u64(HEADER_PAGE_32.len() as u64)
        .b(HEADER_PAGE_32.as_bytes());
    h.cstr("header_event")
        .u64(HEADER_EVENT.len() as u64)
        .b(HEADER_EVENT.as_bytes());
    let s_hdr = section(&mut w, 16, &h.0);
    let s_ftrace = section(&mut w, 17, &0u32.to_le_bytes());
    let mut ev = W::default();
    let f = formats_32();
    ev.u32(f.len() as u32);
    for (sys, text) in &f {
        ev.cstr(sys)
            .u32(1)
            .u64(text.len() as u64)
            .b(text.as_bytes());
    }
    let s_events = section(&mut w, 18, &ev.0);
    let mut k = W::default();
    k.u32(KALLSYMS.len() as u32).b(KALLSYMS.as_bytes());
    let s_kall = section(&mut w, 19, &k.0);
    let mut c = W::default();
    c.u64(CMDLINES.len() as u64).b(CMDLINES.as_bytes());
    let s_cmd = section(&mut w, 21, &c.0);
    // CPU data: one zlib chunk per CPU, page-aligned start.
    w.pad_to(PAGE);
    let mut cpu_offs = Vec::new();
    for p in [&p0, &p1] {
        let at = w.0.len() as u64;
        let z = zlib(p);
        w.u32(1).u32(z.len() as u32).u32(p.len() as u32).b(&z);
        cpu_offs.push((at, 12 + z.len() as u64));
        w.pad_to(PAGE);
    }
    // Options section (uncompressed): section offsets, BUFFER, CPUCOUNT, DONE.
    let mut o = W::default();
    for (id, off) in [
        (16u16, s_hdr),
        (17, s_ftrace),
        (18, s_events),
        (19, s_kall),
        (21, s_cmd),
    ] {
        o.u16(id).u32(8).u64(off);
    }
    let mut b = W::default();
    b.u64(0).cstr("").cstr("local").u32(PAGE as u32).u32(2);
    for (cpu, (off, size)) in cpu_offs.iter().enumerate() {
        b.u32(cpu as u32).u64(*off).u64(*size);
    }
    o.u16(3).u32(b.0.len() as u32).b(&b.0);
    o.u16(8).u32(4).u32(2);
    o.u16(0).u32(8).u64(0);
    let opt_at = w.0.len() as u64;
    w.u16(0).u16(0).u32(0).u64(o.0.len() as u64).b(&o.0);
    w.0[first_opt_at..first_opt_at + 8].copy_from_slice(&opt_at.to_le_bytes());
    (w.0, want)
}

#[test]
fn v6_from_a_32_bit_kernel() {
    let (file, want) = build_v6_32();
    let td = TraceDat::parse(&file).unwrap();
    assert_eq!(td.meta.long_size, 4);
    let hp = td.meta.header_page.unwrap();
    assert_eq!((hp.commit_size, hp.data_offset), (4, 12));
    assert_eq!(td.info.clock.as_deref(), Some("local"));
    assert_eq!(td.info.uname.as_deref(), Some("Linux rpi 4.14.62 armv7l"));
    let cap = read_bytes(&file).unwrap();
    assert_eq!(cap.format, BinaryFormat::TraceDatV6);
    assert_eq!(cap.records, want);
}

#[test]
fn v7_zlib_from_a_32_bit_kernel() {
    let (file, want) = build_v7_zlib_32();
    let cap = read_bytes(&file).unwrap();
    assert_eq!(cap.format, BinaryFormat::TraceDatV7);
    assert_eq!(cap.records, want);
    // The outer zstd layer is looked through.
    let z = zstd::encode_all(&file[..], 3).unwrap();
    assert_eq!(read_bytes(&z).unwrap().records, want);
}

#[test]
fn truncations_give_errors_with_offsets_not_panics() {
    let (file, _) = build_v6_32();
    for cut in [5, 20, 200, 600, 1000, file.len() - 100] {
        let e = read_bytes(&file[..cut]).unwrap_err().to_string();
        assert!(e.contains("byte") || e.contains("magic"), "cut {cut}: {e}");
    }
    // A commit larger than the page is rejected, naming the page's offset.
    let mut bad = file.clone();
    let page0 = bad.len() - 2 * PAGE;
    bad[page0 + 8..page0 + 12].copy_from_slice(&5000u32.to_le_bytes());
    let e = read_bytes(&bad).unwrap_err().to_string();
    assert!(e.contains(&format!("byte {page0}")), "{e}");
}

#[test]
fn v6_from_a_big_endian_32_bit_kernel() {
    BIG.with(|b| b.set(true));
    let (file, want) = build_v6_32();
    BIG.with(|b| b.set(false));
    assert_eq!(file.get(12), Some(&1), "endian byte says big");
    let cap = read_bytes(&file).unwrap();
    assert_eq!(cap.records, want);
}
