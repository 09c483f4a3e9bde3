//! trace.dat version 7 writer (zstd): the file `mmreplay record` writes by default, so
//! `trace-cmd report`, KernelShark and `mmreplay` all open the same capture.
//!
//! Layout per trace-cmd's `trace-cmd.dat.v7(5)`: the initial header (magic, `"7"`, endianness,
//! long size, page size, compression name and version, offset of the first options section),
//! then sections, each with a 16-byte header (u16 id, u16 flags, u32 description string id,
//! u64 size): STRINGS, HEADER_INFO, FTRACE_EVENTS, EVENT_FORMATS, KALLSYMS, PRINTK, CMDLINES
//! (each zstd-compressed as one block: u32 compressed size, u32 size, data), one BUFFER
//! flyrecord section holding every CPU's ring-buffer pages in zstd chunks of whole pages (u32
//! chunk count, then u32 compressed size, u32 size, data per chunk), and last the options
//! section, which points at all of them. Every section's size is exact: trace-cmd walks the
//! sections one after the other (`read_metadata_strings`).
//!
//! What it must never do: know about tracefs (the recorder hands it bytes and page files), hold
//! a CPU's pages in memory (they are read and compressed chunk by chunk), or leave a file that
//! looks complete when a step failed (the caller writes to a temporary file and renames).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Option and section ids (trace-cmd `lib/trace-cmd/include/private/trace-cmd-private.h`).
const OPT_DONE: u16 = 0;
const OPT_CPUSTAT: u16 = 2;
const OPT_BUFFER: u16 = 3;
const OPT_TRACECLOCK: u16 = 4;
const OPT_UNAME: u16 = 5;
const OPT_CPUCOUNT: u16 = 8;
const OPT_VERSION: u16 = 9;
const OPT_STRINGS: u16 = 15;
const OPT_HEADER_INFO: u16 = 16;
const OPT_FTRACE_EVENTS: u16 = 17;
const OPT_EVENT_FORMATS: u16 = 18;
const OPT_KALLSYMS: u16 = 19;
const OPT_PRINTK: u16 = 20;
const OPT_CMDLINES: u16 = 21;
/// Section flag: the body is compressed.
const SEC_COMPRESSED: u16 = 1;

/// Ring-buffer pages per compressed chunk (trace-cmd uses 10; larger chunks compress better and
/// every reader decompresses a chunk at a time).
pub const PAGES_PER_CHUNK: usize = 32;

/// `RB_MISSED_EVENTS` / `RB_MISSED_STORED` in a page's `commit` word
/// (`kernel/trace/ring_buffer.c`): events were lost before this page, and their count is
/// stored after the page's data.
const RB_MISSED_EVENTS: u64 = 1 << 31;
const RB_MISSED_STORED: u64 = 1 << 30;
/// The data length in `commit`. The flags are added to a signed `local_t` from an `int`
/// (`local_add(RB_MISSED_EVENTS, ...)`), so on 64-bit kernels bits 31..63 are all set.
const COMMIT_MASK: u64 = (1 << 27) - 1;

/// Errors of the writer, naming the file or the part concerned.
#[derive(Debug, thiserror::Error)]
pub enum DatWriteError {
    #[error("{}: cannot write", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} is {len} bytes, more than the {max} a trace.dat field can hold")]
    TooBig { what: String, len: u64, max: u64 },
    #[error(
        "page size {page} is not usable (header_page's data field ends at {data_end}, \
         expected a power of two of at least 4096)"
    )]
    BadPageSize { page: u64, data_end: u64 },
    #[error("zstd: {0}")]
    Zstd(String),
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> DatWriteError + '_ {
    move |source| DatWriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Everything but the pages: copies of tracefs files and facts about the capture.
#[derive(Clone, Debug, Default)]
pub struct DatMeta {
    /// `events/header_page`, `events/header_event`.
    pub header_page: Vec<u8>,
    pub header_event: Vec<u8>,
    /// `events/ftrace/*/format`.
    pub ftrace_formats: Vec<Vec<u8>>,
    /// Per system, the `format` files of its recorded events (sorted by the caller).
    pub systems: Vec<(String, Vec<Vec<u8>>)>,
    /// `/proc/kallsyms` (or the part of it worth keeping).
    pub kallsyms: Vec<u8>,
    /// `printk_formats`.
    pub printk: Vec<u8>,
    /// `saved_cmdlines`.
    pub cmdlines: Vec<u8>,
    /// The `trace_clock` file's content (`[local] global ...`) and the chosen clock.
    pub trace_clock: String,
    pub clock: String,
    pub uname: String,
    pub version: String,
    /// CPUs of the machine (CPUCOUNT).
    pub cpu_count: u32,
    /// Per CPU, `per_cpu/cpuN/stats` (written as CPUSTAT `CPU: N\n...`, as trace-cmd does).
    pub cpustats: Vec<(u32, String)>,
    /// The host page size (file header) and the ring buffer's sub-buffer size (BUFFER option).
    pub page_size: u32,
    pub subbuf_size: u32,
}

/// What was written for one CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuWritten {
    pub pages: u64,
    /// Bytes of pages (uncompressed) and of the CPU's compressed data in the file.
    pub bytes: u64,
    pub compressed_bytes: u64,
    pub chunks: u32,
    /// Pages the kernel marked "events missed before this page", and the missed events counted
    /// in the pages that had room to store the count.
    pub missed_pages: u64,
    pub missed_events_stored: u64,
}

/// Offsets of the page header fields, from `events/header_page`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    pub commit_offset: usize,
    pub commit_size: usize,
    pub data_offset: usize,
}

impl PageHeader {
    /// Reads `field: local_t commit; offset:8; size:8;` and `field: char data; offset:16;`
    /// from a `header_page` text; the kernel's layout when a field is missing.
    pub fn parse(text: &[u8]) -> PageHeader {
        let mut h = PageHeader {
            commit_offset: 8,
            commit_size: 8,
            data_offset: 16,
        };
        for line in String::from_utf8_lossy(text).lines() {
            let num = |key: &str| -> Option<usize> {
                let i = line.find(key)? + key.len();
                let rest = line.get(i..)?;
                rest.split(';').next()?.trim().parse().ok()
            };
            if line.contains(" commit;") {
                if let (Some(o), Some(s)) = (num("offset:"), num("size:")) {
                    h.commit_offset = o;
                    h.commit_size = s;
                }
            } else if line.contains(" data;") {
                if let Some(o) = num("offset:") {
                    h.data_offset = o;
                }
            }
        }
        h
    }

    /// The missed-events marks of one page: (events were missed, count stored after the data).
    pub fn missed(&self, page: &[u8]) -> (bool, Option<u64>) {
        let word = |off: usize, size: usize| -> Option<u64> {
            let b = page.get(off..off + size)?;
            let mut v = [0u8; 8];
            // Pages are in the host's byte order (trace_pipe_raw is a copy of the kernel's).
            if cfg!(target_endian = "big") {
                v.get_mut(8 - size..)?.copy_from_slice(b);
                Some(u64::from_be_bytes(v))
            } else {
                v.get_mut(..size)?.copy_from_slice(b);
                Some(u64::from_le_bytes(v))
            }
        };
        let Some(commit) = word(self.commit_offset, self.commit_size) else {
            return (false, None);
        };
        if commit & RB_MISSED_EVENTS == 0 {
            return (false, None);
        }
        if commit & RB_MISSED_STORED == 0 {
            return (true, None);
        }
        let len = (commit & COMMIT_MASK) as usize;
        (true, word(self.data_offset + len, self.commit_size))
    }
}

/// The section descriptions, written once in the STRINGS section; a description's id is its
/// byte offset there.
const STRINGS: &[&str] = &[
    "strings",
    "headers",
    "ftrace events",
    "events format",
    "kallsyms",
    "printk",
    "command lines",
    "buffer flyrecord ",
    "options",
];

fn string_id(s: &str) -> u32 {
    let mut off = 0u32;
    for t in STRINGS {
        if *t == s {
            return off;
        }
        off += t.len() as u32 + 1;
    }
    u32::MAX
}

/// A sequential writer that knows its position (sections point at each other by offset).
struct Out<'a> {
    w: BufWriter<&'a mut File>,
    pos: u64,
    path: &'a Path,
}

impl Out<'_> {
    fn put(&mut self, b: &[u8]) -> Result<(), DatWriteError> {
        self.w.write_all(b).map_err(io_err(self.path))?;
        self.pos += b.len() as u64;
        Ok(())
    }
    fn u16(&mut self, v: u16) -> Result<(), DatWriteError> {
        self.put(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<(), DatWriteError> {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), DatWriteError> {
        self.put(&v.to_le_bytes())
    }
    fn cstr(&mut self, s: &str) -> Result<(), DatWriteError> {
        self.put(s.as_bytes())?;
        self.put(&[0])
    }
    /// Patches 8 bytes at `at` (already written) and comes back to the end.
    fn patch_u64(&mut self, at: u64, v: u64) -> Result<(), DatWriteError> {
        self.w.flush().map_err(io_err(self.path))?;
        let f = self.w.get_mut();
        f.seek(SeekFrom::Start(at)).map_err(io_err(self.path))?;
        f.write_all(&v.to_le_bytes()).map_err(io_err(self.path))?;
        f.seek(SeekFrom::Start(self.pos))
            .map_err(io_err(self.path))?;
        Ok(())
    }
}

fn u32_len(what: &str, len: usize) -> Result<u32, DatWriteError> {
    u32::try_from(len).map_err(|_| DatWriteError::TooBig {
        what: what.to_string(),
        len: len as u64,
        max: u64::from(u32::MAX),
    })
}

fn compress(level: i32, data: &[u8]) -> Result<Vec<u8>, DatWriteError> {
    zstd::bulk::compress(data, level).map_err(|e| DatWriteError::Zstd(e.to_string()))
}

/// One compressed metadata section: header, then (u32 compressed size, u32 size, data).
/// Returns the section's offset.
fn section(
    out: &mut Out<'_>,
    id: u16,
    desc: &str,
    body: &[u8],
    level: i32,
) -> Result<u64, DatWriteError> {
    let at = out.pos;
    let z = compress(level, body)?;
    out.u16(id)?;
    out.u16(SEC_COMPRESSED)?;
    out.u32(string_id(desc))?;
    out.u64(8 + z.len() as u64)?;
    out.u32(u32_len(desc, z.len())?)?;
    out.u32(u32_len(desc, body.len())?)?;
    out.put(&z)?;
    Ok(at)
}

fn push_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn push_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn push_cstr(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(s.as_bytes());
    v.push(0);
}
fn push_option(v: &mut Vec<u8>, id: u16, data: &[u8]) -> Result<(), DatWriteError> {
    v.extend_from_slice(&id.to_le_bytes());
    push_u32(v, u32_len("option", data.len())?);
    v.extend_from_slice(data);
    Ok(())
}

/// Compresses one CPU's page file into `dst` as trace.dat chunks (u32 count, then per chunk
/// u32 compressed size, u32 size, data), reading `PAGES_PER_CHUNK` pages at a time. A file
/// whose length is not a whole number of pages (a recorder killed mid-write) is padded with an
/// empty page's zeros, which every reader takes as "no events".
pub fn compress_pages(
    src: &Path,
    dst: &Path,
    page: usize,
    header: PageHeader,
    level: i32,
) -> Result<CpuWritten, DatWriteError> {
    let f = File::open(src).map_err(io_err(src))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let out = File::create(dst).map_err(io_err(dst))?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut cz =
        zstd::bulk::Compressor::new(level).map_err(|e| DatWriteError::Zstd(e.to_string()))?;
    let mut st = CpuWritten::default();
    w.write_all(&0u32.to_le_bytes()).map_err(io_err(dst))?;
    let mut buf = vec![0u8; page * PAGES_PER_CHUNK];
    loop {
        let mut n = 0;
        while n < buf.len() {
            match r.read(buf.get_mut(n..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(src)(e)),
            }
        }
        if n == 0 {
            break;
        }
        let whole = n.div_ceil(page) * page;
        if let Some(tail) = buf.get_mut(n..whole) {
            tail.fill(0);
        }
        let chunk = buf.get(..whole).unwrap_or_default();
        for p in chunk.chunks(page) {
            st.pages += 1;
            let (missed, count) = header.missed(p);
            if missed {
                st.missed_pages += 1;
                st.missed_events_stored += count.unwrap_or(0);
            }
        }
        let z = cz
            .compress(chunk)
            .map_err(|e| DatWriteError::Zstd(e.to_string()))?;
        let hdr = [
            u32_len("compressed chunk", z.len())?.to_le_bytes(),
            u32_len("chunk", whole)?.to_le_bytes(),
        ]
        .concat();
        w.write_all(&hdr).map_err(io_err(dst))?;
        w.write_all(&z).map_err(io_err(dst))?;
        st.chunks += 1;
        st.bytes += whole as u64;
        st.compressed_bytes += (hdr.len() + z.len()) as u64;
        if n < buf.len() {
            break;
        }
    }
    st.compressed_bytes += 4;
    let mut f = w.into_inner().map_err(|e| io_err(dst)(e.into_error()))?;
    f.seek(SeekFrom::Start(0)).map_err(io_err(dst))?;
    f.write_all(&st.chunks.to_le_bytes()).map_err(io_err(dst))?;
    Ok(st)
}

/// Writes a whole trace.dat v7 file into `file` (at its start): the metadata of `meta`, then,
/// for each `(cpu, path)` of `cpus`, the chunks [`compress_pages`] left in `path`. Returns the
/// file's length.
pub fn write_dat(
    file: &mut File,
    file_path: &Path,
    meta: &DatMeta,
    cpus: &[(u32, PathBuf, CpuWritten)],
    level: i32,
) -> Result<u64, DatWriteError> {
    let page = u64::from(meta.subbuf_size.max(meta.page_size));
    if !page.is_power_of_two() || page < 4096 {
        return Err(DatWriteError::BadPageSize {
            page,
            data_end: PageHeader::parse(&meta.header_page).data_offset as u64,
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io_err(file_path))?;
    let mut out = Out {
        w: BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        path: file_path,
    };
    out.put(&[0x17, 0x08, 0x44])?;
    out.put(b"tracing")?;
    out.cstr("7")?;
    // Little endian, 8-byte longs (x86-64 user space), then the page size.
    out.put(&[u8::from(cfg!(target_endian = "big")), 8])?;
    out.u32(meta.page_size)?;
    out.cstr("zstd")?;
    out.cstr(zstd::zstd_safe::version_string())?;
    let first_options_at = out.pos;
    out.u64(0)?;

    // STRINGS: uncompressed, it is tiny.
    let mut strings = Vec::new();
    for s in STRINGS {
        push_cstr(&mut strings, s);
    }
    out.u16(OPT_STRINGS)?;
    out.u16(0)?;
    out.u32(string_id("strings"))?;
    out.u64(strings.len() as u64)?;
    out.put(&strings)?;

    let mut body = Vec::new();
    push_cstr(&mut body, "header_page");
    push_u64(&mut body, meta.header_page.len() as u64);
    body.extend_from_slice(&meta.header_page);
    push_cstr(&mut body, "header_event");
    push_u64(&mut body, meta.header_event.len() as u64);
    body.extend_from_slice(&meta.header_event);
    let headers_at = section(&mut out, OPT_HEADER_INFO, "headers", &body, level)?;

    body.clear();
    push_u32(
        &mut body,
        u32_len("ftrace formats", meta.ftrace_formats.len())?,
    );
    for f in &meta.ftrace_formats {
        push_u64(&mut body, f.len() as u64);
        body.extend_from_slice(f);
    }
    let ftrace_at = section(&mut out, OPT_FTRACE_EVENTS, "ftrace events", &body, level)?;

    body.clear();
    push_u32(&mut body, u32_len("event systems", meta.systems.len())?);
    for (sys, formats) in &meta.systems {
        push_cstr(&mut body, sys);
        push_u32(&mut body, u32_len("event formats", formats.len())?);
        for f in formats {
            push_u64(&mut body, f.len() as u64);
            body.extend_from_slice(f);
        }
    }
    let events_at = section(&mut out, OPT_EVENT_FORMATS, "events format", &body, level)?;

    body.clear();
    push_u32(&mut body, u32_len("kallsyms", meta.kallsyms.len())?);
    body.extend_from_slice(&meta.kallsyms);
    let kallsyms_at = section(&mut out, OPT_KALLSYMS, "kallsyms", &body, level)?;

    body.clear();
    push_u32(&mut body, u32_len("printk formats", meta.printk.len())?);
    body.extend_from_slice(&meta.printk);
    let printk_at = section(&mut out, OPT_PRINTK, "printk", &body, level)?;

    body.clear();
    push_u64(&mut body, meta.cmdlines.len() as u64);
    body.extend_from_slice(&meta.cmdlines);
    let cmdlines_at = section(&mut out, OPT_CMDLINES, "command lines", &body, level)?;

    // The flyrecord section: its header, then each CPU's chunks at a page-aligned offset.
    let buffer_at = out.pos;
    out.u16(OPT_BUFFER)?;
    out.u16(SEC_COMPRESSED)?;
    out.u32(string_id("buffer flyrecord "))?;
    let size_at = out.pos;
    out.u64(0)?;
    let mut placed: Vec<(u32, u64, u64)> = Vec::with_capacity(cpus.len());
    let sub = u64::from(meta.subbuf_size.max(4096));
    for (cpu, path, st) in cpus {
        let aligned = out.pos.div_ceil(sub) * sub;
        let pad = vec![0u8; (aligned - out.pos) as usize];
        out.put(&pad)?;
        if st.chunks == 0 {
            // No pages: trace-cmd takes size 0 as an empty CPU.
            placed.push((*cpu, aligned, 0));
            continue;
        }
        let start = out.pos;
        let mut src = File::open(path).map_err(io_err(path))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.put(buf.get(..n).unwrap_or_default())?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        placed.push((*cpu, start, out.pos - start));
    }
    let end = out.pos;
    out.patch_u64(size_at, end - size_at - 8)?;

    // The options section, pointed at by the file header.
    let mut opts = Vec::new();
    for (id, at) in [
        (OPT_HEADER_INFO, headers_at),
        (OPT_FTRACE_EVENTS, ftrace_at),
        (OPT_EVENT_FORMATS, events_at),
        (OPT_KALLSYMS, kallsyms_at),
        (OPT_PRINTK, printk_at),
        (OPT_CMDLINES, cmdlines_at),
    ] {
        push_option(&mut opts, id, &at.to_le_bytes())?;
    }
    let mut b = Vec::new();
    push_u64(&mut b, buffer_at);
    push_cstr(&mut b, "");
    push_cstr(&mut b, &meta.clock);
    push_u32(&mut b, meta.subbuf_size);
    push_u32(&mut b, u32_len("CPUs", placed.len())?);
    for (cpu, off, size) in &placed {
        push_u32(&mut b, *cpu);
        push_u64(&mut b, *off);
        push_u64(&mut b, *size);
    }
    push_option(&mut opts, OPT_BUFFER, &b)?;
    let cstr = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    };
    push_option(&mut opts, OPT_TRACECLOCK, &cstr(&meta.trace_clock))?;
    push_option(&mut opts, OPT_UNAME, &cstr(&meta.uname))?;
    push_option(&mut opts, OPT_VERSION, &cstr(&meta.version))?;
    push_option(&mut opts, OPT_CPUCOUNT, &meta.cpu_count.to_le_bytes())?;
    for (cpu, stats) in &meta.cpustats {
        push_option(
            &mut opts,
            OPT_CPUSTAT,
            &cstr(&format!("CPU: {cpu}\n{stats}")),
        )?;
    }
    push_option(&mut opts, OPT_DONE, &0u64.to_le_bytes())?;
    let options_at = out.pos;
    out.u16(OPT_DONE)?;
    out.u16(0)?;
    out.u32(string_id("options"))?;
    out.u64(opts.len() as u64)?;
    out.put(&opts)?;
    let len = out.pos;
    out.patch_u64(first_options_at, options_at)?;
    out.w.flush().map_err(io_err(file_path))?;
    drop(out);
    file.set_len(len).map_err(io_err(file_path))?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_header_fields_and_missed_marks() {
        let hp = b"\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n";
        let h = PageHeader::parse(hp);
        assert_eq!(
            h,
            PageHeader {
                commit_offset: 8,
                commit_size: 8,
                data_offset: 16
            }
        );
        let mut page = vec![0u8; 4096];
        assert_eq!(h.missed(&page), (false, None));
        // 100 bytes of data, events missed, count 77 stored after the data.
        let commit = 100u64 | RB_MISSED_EVENTS | RB_MISSED_STORED;
        page[8..16].copy_from_slice(&commit.to_ne_bytes());
        page[116..124].copy_from_slice(&77u64.to_ne_bytes());
        assert_eq!(h.missed(&page), (true, Some(77)));
        // As a 64-bit kernel writes it: the flags sign-extended (commit 0xffffffffc0000fd8).
        let commit = 0xffff_ffff_c000_0000u64 | 4056;
        page[8..16].copy_from_slice(&commit.to_ne_bytes());
        page[16 + 4056..16 + 4064].copy_from_slice(&765u64.to_ne_bytes());
        assert_eq!(h.missed(&page), (true, Some(765)));
        // Missed, but no room to store the count.
        let commit = 4080u64 | RB_MISSED_EVENTS;
        page[8..16].copy_from_slice(&commit.to_ne_bytes());
        assert_eq!(h.missed(&page), (true, None));
        // A page too short to hold a header is no evidence.
        assert_eq!(h.missed(&page[..4]), (false, None));
    }

    #[test]
    fn string_ids_are_offsets() {
        assert_eq!(string_id("strings"), 0);
        assert_eq!(string_id("headers"), 8);
        assert_eq!(string_id("nope"), u32::MAX);
    }
}
