//! trace.dat (trace-cmd) v6 and v7 container reader: header, metadata, options, flyrecord CPU
//! data (zstd / zlib compressed sections and chunks in v7), several buffers (instances), and the
//! per-CPU merge by timestamp.
//!
//! Written here because no maintained pure-Rust crate reads trace.dat (design note
//! trace-formats.md §2.3: `libtracecmd` is FFI, LISA's `traceevent` is not published).
//! Layout per rostedt/trace-cmd `Documentation/trace-cmd/trace-cmd.dat.v6.5.txt` / `v7.5.txt`.
//! It must never allocate from a length field: sizes are checked against the input, and
//! decompression output grows only with data actually produced (bounded by the declared size).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::backing::Backing;
use super::bytes::{Cursor, Endian};
use super::decode::Decoder;
use super::meta::{expect_tag, Meta};
use super::pages::{decompress_into, CpuCursor, PageCtx, PageMerge};
use super::ringbuf::PageLayout;
use super::BinaryError;
use crate::record::Record;

/// Largest decompressed v7 section (metadata: formats, kallsyms, cmdlines) accepted; a larger
/// declared size is an error naming the section's byte offset.
pub const MAX_SECTION_BYTES: u64 = 256 << 20;
/// A compressed v7 section may declare at most [`SECTION_RATIO_SLACK`] plus this many times
/// its compressed size: real metadata text (formats, kallsyms, cmdlines) compresses 3-10x with
/// zstd or zlib, a zstd bomb 10^4x and more. Without it a 64 KiB file declaring 255 MiB is
/// inflated in full (under [`MAX_SECTION_BYTES`], far over the 64 MiB + 2x input goal).
pub const MAX_SECTION_RATIO: u64 = 64;
/// Declared size every compressed section may reach whatever its ratio.
pub const SECTION_RATIO_SLACK: u64 = 16 << 20;

/// What the container says about itself (for `stats` and tests).
#[derive(Clone, Debug, Default)]
pub struct TraceDatInfo {
    pub version: u32,
    /// `zstd`, `zlib` or `None` (v6 and uncompressed v7).
    pub compression: Option<String>,
    pub nr_cpus: u32,
    pub clock: Option<String>,
    pub uname: Option<String>,
    /// CPUSTAT texts, in file order.
    pub cpustat: Vec<String>,
    /// Buffers (instances) with CPU data: name ("" for the top one) and per-CPU (cpu, offset,
    /// size) of the data in the file.
    pub buffers: Vec<BufferInfo>,
    /// Timestamp offset (OFFSET option) added to every event.
    pub ts_offset: i64,
}

#[derive(Clone, Debug, Default)]
pub struct BufferInfo {
    pub name: String,
    pub clock: Option<String>,
    pub cpus: Vec<(u32, u64, u64)>,
}

/// A parsed trace.dat: metadata plus where the CPU data is.
#[derive(Debug)]
pub struct TraceDat<'a> {
    pub info: TraceDatInfo,
    pub meta: Meta,
    data: &'a [u8],
}

const OPT_DONE: u16 = 0;
const OPT_CPUSTAT: u16 = 2;
const OPT_BUFFER: u16 = 3;
const OPT_TRACECLOCK: u16 = 4;
const OPT_UNAME: u16 = 5;
const OPT_OFFSET: u16 = 7;
const OPT_CPUCOUNT: u16 = 8;
const OPT_HEADER_INFO: u16 = 16;
const OPT_FTRACE_EVENTS: u16 = 17;
const OPT_EVENT_FORMATS: u16 = 18;
const OPT_KALLSYMS: u16 = 19;
const OPT_PRINTK: u16 = 20;
const OPT_CMDLINES: u16 = 21;

/// Whether `data` starts like a trace.dat (any version).
pub fn is_trace_dat(data: &[u8]) -> bool {
    crate::source::sniff_magic(data) == Some(crate::Format::TraceDat)
}

impl<'a> TraceDat<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, BinaryError> {
        let (version, mut meta, mut c) = Meta::parse_initial(data)?;
        let mut info = TraceDatInfo::default();
        match version.as_str() {
            "6" => {
                info.version = 6;
                meta.parse_v6_body(&mut c, true)?;
                parse_v6_rest(&mut c, data, &mut info)?;
            }
            "7" => {
                info.version = 7;
                parse_v7(&mut c, data, &mut meta, &mut info)?;
            }
            v => return Err(BinaryError::Unsupported(format!("trace.dat version {v:?}"))),
        }
        Ok(TraceDat { info, meta, data })
    }

    /// Decodes every buffer and CPU and merges them by timestamp.
    pub fn records(&self) -> Result<Vec<Record>, BinaryError> {
        self.decode().map(|(r, _)| r)
    }

    /// Decodes every buffer and CPU, merged by timestamp, and returns the format files that
    /// failed to parse among the events met. The whole-capture form of [`TraceDat::merge`]
    /// (it copies the input once; readers of files use the streaming form).
    pub fn decode(&self) -> Result<(Vec<Record>, Vec<super::FormatError>), BinaryError> {
        let bytes = Arc::new(Backing::from_vec(self.data.to_vec()));
        let (records, ctx) = self.merge(bytes)?.collect()?;
        Ok((records, ctx.dec.format_errors()))
    }

    /// The streaming reader: one cursor per buffer and CPU over `bytes` (the same bytes this
    /// was parsed from), merged lazily by timestamp.
    pub(crate) fn merge(&self, bytes: Arc<Backing>) -> Result<PageMerge, BinaryError> {
        let header = self.meta.header_page.ok_or(BinaryError::Invalid {
            what: "trace.dat",
            offset: 0,
            msg: "no header_page".into(),
        })?;
        let layout = PageLayout {
            header,
            page_size: self.meta.page_size as usize,
            endian: self.meta.endian,
        };
        let mut cursors = Vec::new();
        for b in &self.info.buffers {
            for &(cpu, off, size) in &b.cpus {
                if size == 0 {
                    continue;
                }
                cursors.push(match &self.info.compression {
                    Some(algo) => {
                        CpuCursor::chunks(cpu, bytes.clone(), off, algo, self.meta.endian)?
                    }
                    None => CpuCursor::plain(cpu, bytes.clone(), off, size, None)?,
                });
            }
        }
        let ctx = PageCtx::new(
            Decoder::new(&self.meta),
            self.meta.clone(),
            layout,
            self.info.ts_offset,
        );
        Ok(PageMerge::new(ctx, cursors))
    }
}

/// After saved_cmdlines in v6: nr_cpus, options, then `flyrecord` (or `latency`).
fn parse_v6_rest(
    c: &mut Cursor<'_>,
    data: &[u8],
    info: &mut TraceDatInfo,
) -> Result<(), BinaryError> {
    info.nr_cpus = c.u32("nr_cpus")?;
    let mut extra_buffers: Vec<(u64, String)> = Vec::new();
    loop {
        let at = c.file_offset();
        let tag = c.cstr("section tag")?;
        match tag {
            b"options  " => loop {
                let id = c.u16("option id")?;
                if id == OPT_DONE {
                    break;
                }
                let size = c.u32("option size")?;
                let body = c.take(u64::from(size), "option data")?;
                if id == OPT_BUFFER {
                    let mut b = Cursor::new(body, 0, c.endian(), "BUFFER option");
                    let off = b.u64("buffer offset")?;
                    let name = String::from_utf8_lossy(b.cstr("buffer name")?).into_owned();
                    extra_buffers.push((off, name));
                } else {
                    apply_option(id, body, c.endian(), info);
                }
            },
            b"latency  " => {
                return Err(BinaryError::Unsupported(
                    "trace.dat latency (text) data; read it with the text parser".into(),
                ))
            }
            b"flyrecord" => {
                let cpus = read_fly_table(c, info.nr_cpus)?;
                info.buffers.push(BufferInfo {
                    name: String::new(),
                    clock: info.clock.clone(),
                    cpus,
                });
                break;
            }
            other => {
                return Err(BinaryError::Invalid {
                    what: "trace.dat v6",
                    offset: at,
                    msg: format!(
                        "expected `options`, `latency` or `flyrecord`, found {:?}",
                        String::from_utf8_lossy(other.get(..other.len().min(16)).unwrap_or(&[]))
                    ),
                })
            }
        }
    }
    for (off, name) in extra_buffers {
        let start = usize::try_from(off)
            .ok()
            .filter(|&s| s <= data.len())
            .ok_or(BinaryError::Invalid {
                what: "BUFFER option",
                offset: off,
                msg: "offset beyond the end of the file".into(),
            })?;
        let mut b = Cursor::new(
            data.get(start..).unwrap_or(&[]),
            off,
            c.endian(),
            "instance flyrecord",
        );
        expect_tag(&mut b, b"flyrecord")?;
        let cpus = read_fly_table(&mut b, info.nr_cpus)?;
        info.buffers.push(BufferInfo {
            name,
            clock: info.clock.clone(),
            cpus,
        });
    }
    Ok(())
}

fn read_fly_table(c: &mut Cursor<'_>, nr_cpus: u32) -> Result<Vec<(u32, u64, u64)>, BinaryError> {
    // 16 bytes per CPU must be present before we size anything by nr_cpus.
    if u64::from(nr_cpus) * 16 > c.remaining() as u64 {
        return Err(BinaryError::Truncated {
            what: "flyrecord",
            field: "CPU table",
            offset: c.file_offset(),
            need: u64::from(nr_cpus) * 16,
            have: c.remaining() as u64,
        });
    }
    let mut v = Vec::with_capacity(nr_cpus as usize);
    for cpu in 0..nr_cpus {
        let off = c.u64("cpu data offset")?;
        let size = c.u64("cpu data size")?;
        v.push((cpu, off, size));
    }
    Ok(v)
}

fn text(body: &[u8]) -> String {
    let end = memchr::memchr(0, body).unwrap_or(body.len());
    String::from_utf8_lossy(body.get(..end).unwrap_or(&[]))
        .trim()
        .to_string()
}

fn apply_option(id: u16, body: &[u8], e: Endian, info: &mut TraceDatInfo) {
    match id {
        OPT_CPUSTAT => info.cpustat.push(text(body)),
        OPT_TRACECLOCK => {
            // `[local] global counter ...`: the selected clock is the bracketed one.
            let t = text(body);
            info.clock = t
                .split_ascii_whitespace()
                .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
                .map(str::to_string);
        }
        OPT_UNAME => info.uname = Some(text(body)),
        OPT_OFFSET => {
            if let Ok(v) = text(body).parse::<i64>() {
                info.ts_offset = v;
            }
        }
        OPT_CPUCOUNT => {
            if let Some(n) = super::bytes::read_uint(body, 0, 4, e) {
                info.nr_cpus = n as u32;
            }
        }
        _ => {}
    }
}

/// v7: compression name/version, first options offset, then sections reached from options.
fn parse_v7(
    c: &mut Cursor<'_>,
    data: &[u8],
    meta: &mut Meta,
    info: &mut TraceDatInfo,
) -> Result<(), BinaryError> {
    let algo = String::from_utf8_lossy(c.cstr("compression name")?).into_owned();
    let _ver = c.cstr("compression version")?;
    info.compression = match algo.as_str() {
        "none" | "" => None,
        "zstd" | "zlib" => Some(algo.clone()),
        other => {
            return Err(BinaryError::Unsupported(format!(
                "trace.dat compression {other:?}"
            )))
        }
    };
    let mut next = c.u64("first options offset")?;
    let e = meta.endian;
    let mut seen = 0usize;
    let mut sections: BTreeMap<u16, u64> = BTreeMap::new();
    while next != 0 {
        seen += 1;
        if seen > 4096 {
            return Err(BinaryError::Invalid {
                what: "trace.dat v7",
                offset: next,
                msg: "options chain loops".into(),
            });
        }
        let body = read_section(data, next, e, info.compression.as_deref())?;
        let mut o = Cursor::new(&body, 0, e, "options section");
        next = 0;
        while !o.is_empty() {
            let id = o.u16("option id")?;
            let size = o.u32("option size")?;
            let b = o.take(u64::from(size), "option data")?;
            match id {
                OPT_DONE => {
                    next = super::bytes::read_uint(b, 0, 8, e).unwrap_or(0);
                    break;
                }
                OPT_BUFFER => info.buffers.push(parse_v7_buffer(b, e)?),
                OPT_HEADER_INFO..=OPT_CMDLINES => {
                    if let Some(off) = super::bytes::read_uint(b, 0, 8, e) {
                        sections.insert(id, off);
                    }
                }
                _ => apply_option(id, b, e, info),
            }
        }
    }
    let comp = info.compression.clone();
    let get = |id: u16, name: &'static str| -> Result<Vec<u8>, BinaryError> {
        let off = *sections.get(&id).ok_or(BinaryError::Invalid {
            what: "trace.dat v7",
            offset: 0,
            msg: format!("no {name} section"),
        })?;
        read_section(data, off, e, comp.as_deref())
    };
    let s = get(OPT_HEADER_INFO, "header info")?;
    meta.parse_header_files(&mut Cursor::new(&s, 0, e, "header info section"))?;
    let s = get(OPT_FTRACE_EVENTS, "ftrace events")?;
    meta.parse_ftrace_formats(&mut Cursor::new(&s, 0, e, "ftrace events section"))?;
    let s = get(OPT_EVENT_FORMATS, "event formats")?;
    meta.parse_event_formats(&mut Cursor::new(&s, 0, e, "event formats section"))?;
    if sections.contains_key(&OPT_KALLSYMS) {
        let s = get(OPT_KALLSYMS, "kallsyms")?;
        let mut k = Cursor::new(&s, 0, e, "kallsyms section");
        let n = k.u32("kallsyms size")?;
        meta.kallsyms = std::sync::Arc::new(super::meta::Kallsyms::parse(
            k.take(u64::from(n), "kallsyms")?,
        ));
    }
    if sections.contains_key(&OPT_CMDLINES) {
        let s = get(OPT_CMDLINES, "cmdlines")?;
        let mut k = Cursor::new(&s, 0, e, "cmdlines section");
        let n = k.u64("cmdlines size")?;
        meta.set_cmdlines(k.take(n, "cmdlines")?);
    }
    let _ = OPT_PRINTK;
    Ok(())
}

fn parse_v7_buffer(b: &[u8], e: Endian) -> Result<BufferInfo, BinaryError> {
    let mut c = Cursor::new(b, 0, e, "BUFFER option");
    let _section = c.u64("buffer section offset")?;
    let name = String::from_utf8_lossy(c.cstr("buffer name")?).into_owned();
    let clock = String::from_utf8_lossy(c.cstr("buffer clock")?).into_owned();
    let _page = c.u32("buffer page size")?;
    let n = c.u32("buffer cpu count")?;
    if u64::from(n) * 20 > c.remaining() as u64 {
        return Err(BinaryError::Truncated {
            what: "BUFFER option",
            field: "CPU table",
            offset: c.file_offset(),
            need: u64::from(n) * 20,
            have: c.remaining() as u64,
        });
    }
    let mut cpus = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let cpu = c.u32("cpu id")?;
        let off = c.u64("cpu data offset")?;
        let size = c.u64("cpu data size")?;
        cpus.push((cpu, off, size));
    }
    Ok(BufferInfo {
        name,
        clock: Some(clock),
        cpus,
    })
}

/// Reads a v7 section (header: u16 id, u16 flags, u32 string id, u64 size) and returns its body,
/// decompressed when flag bit 0 is set.
fn read_section(
    data: &[u8],
    off: u64,
    e: Endian,
    comp: Option<&str>,
) -> Result<Vec<u8>, BinaryError> {
    let start = usize::try_from(off)
        .ok()
        .filter(|&s| s <= data.len())
        .ok_or(BinaryError::Invalid {
            what: "trace.dat v7 section",
            offset: off,
            msg: "offset beyond the end of the file".into(),
        })?;
    let mut c = Cursor::new(
        data.get(start..).unwrap_or(&[]),
        off,
        e,
        "trace.dat v7 section",
    );
    let _id = c.u16("section id")?;
    let flags = c.u16("section flags")?;
    let _desc = c.u32("section description")?;
    let size = c.u64("section size")?;
    let body_off = c.file_offset();
    let body = c.take(size, "section body")?;
    if flags & 1 == 0 {
        return Ok(body.to_vec());
    }
    let algo = comp.ok_or(BinaryError::Invalid {
        what: "trace.dat v7 section",
        offset: off,
        msg: "compressed section in a file without compression".into(),
    })?;
    let mut b = Cursor::new(body, body_off, e, "compressed section");
    let csize = b.u32("compressed size")?;
    let usize_ = b.u32("uncompressed size")?;
    let cdata = b.take(u64::from(csize), "compressed data")?;
    let cap = MAX_SECTION_BYTES.min(
        SECTION_RATIO_SLACK.saturating_add(u64::from(csize).saturating_mul(MAX_SECTION_RATIO)),
    );
    if u64::from(usize_) > cap {
        return Err(BinaryError::TooLarge {
            what: "trace.dat v7 compressed section",
            offset: body_off,
            size: u64::from(usize_),
            cap,
        });
    }
    let mut out = Vec::new();
    decompress_into(algo, cdata, usize_ as usize, body_off, &mut out)?;
    Ok(out)
}
