//! Opening a capture: transparent streaming zstd, format sniffing, and the [`RecordSource`]
//! trait every reader implements (text here; the binary readers plug in at ONE marked place,
//! [`open_reader`]'s `Format::TraceDat | Format::PerfData` arm).
//!
//! Must never read a whole file into memory (streaming, bounded line length), never panic on
//! any bytes, and never count a line silently: every line is an event, a lost marker, a skipped
//! line (by kind) or an unparsed line (by kind).

use crate::error::{preview, ParseError, Pos};
use crate::intern::FxHashMap;
use crate::merge::{Reorder, Window};
use crate::record::{Comm, Event, Record};
use crate::text::{self, payload::Decoder, Line, LineError, SkipKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

/// Capture formats this crate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `/sys/kernel/tracing/trace` or `trace_pipe` text.
    Ftrace,
    /// `trace-cmd report` text.
    TraceCmd,
    /// `perf script` text.
    PerfScript,
    /// trace-cmd's binary `trace.dat`.
    TraceDat,
    /// perf's binary `perf.data` (file or pipe mode).
    PerfData,
    /// A directory of raw per-CPU ring-buffer pages (`mmreplay record --raw`, see
    /// [`crate::binary::rawdir`]).
    RawDir,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Ftrace => "ftrace",
            Format::TraceCmd => "trace-cmd",
            Format::PerfScript => "perf-script",
            Format::TraceDat => "trace.dat",
            Format::PerfData => "perf.data",
            Format::RawDir => "raw-dir",
        }
    }

    pub fn from_name(s: &str) -> Result<Format, ParseError> {
        Ok(match s {
            "ftrace" | "ftrace-text" | "trace" => Format::Ftrace,
            "trace-cmd" | "trace-cmd-report" => Format::TraceCmd,
            "perf-script" | "perf" => Format::PerfScript,
            "trace.dat" | "trace-dat" => Format::TraceDat,
            "perf.data" | "perf-data" => Format::PerfData,
            "raw-dir" | "raw" => Format::RawDir,
            other => return Err(ParseError::UnknownFormatName(other.to_string())),
        })
    }
}

/// Reader options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Skip sniffing and use this format.
    pub format: Option<Format>,
    /// Fail on the first unparsable line or payload instead of counting it.
    pub strict: bool,
    /// Reorder window of the per-CPU merge.
    pub window: Window,
    /// `/proc/kallsyms` copy for the binary readers (names IPI callbacks) when the capture
    /// carries none.
    pub kallsyms: Option<std::path::PathBuf>,
}

/// What a reader saw besides records: unparsed and skipped lines by kind, ordering problems.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Diagnostics {
    /// Lines read (text formats) including skipped and unparsed ones.
    pub lines: u64,
    pub unparsed_lines: u64,
    /// Unparsed lines by kind (`no_anchor`, `bad_timestamp`, `line_too_long`, `payload`, ...).
    pub unparsed_by_kind: BTreeMap<String, u64>,
    /// Typed events whose payload did not match the grammar, by event name.
    pub unparsed_payload_by_event: BTreeMap<String, u64>,
    pub skipped_lines: u64,
    pub skipped_by_kind: BTreeMap<String, u64>,
    /// The first few unparsed lines, with position and reason.
    pub first_unparsed: Vec<String>,
    /// Records that arrived later than the reorder window allowed.
    pub out_of_order: u64,
    /// `B - A` of ftrace's `# entries-in-buffer/entries-written: A/B` header lines.
    pub overwritten_events: u64,
    pub max_lag_ns: u64,
    /// What a binary capture says about itself (producer, CPUs, damage); perf.data only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::binary::CaptureFacts>,
}

/// A source of time-ordered [`Record`]s.
pub trait RecordSource {
    fn format(&self) -> Format;
    /// The next record, `Ok(None)` at the end.
    fn next_record(&mut self) -> Result<Option<Record>, ParseError>;
    /// Counters so far (complete once `next_record` returned `Ok(None)`).
    fn diagnostics(&self) -> Diagnostics;
}

/// Lines longer than this are counted as `line_too_long` and skipped (memory stays bounded).
pub const MAX_LINE: usize = 1 << 20;
/// Longest event name a text line may carry: the kernel caps system and event names at 64
/// bytes each (`MAX_EVENT_NAME_LEN`, kernel/trace/trace_probe.h). Longer names are counted as
/// `event_name_too_long`: interned names and the per-name tables stay small on hostile input.
pub const MAX_EVENT_NAME: usize = 128;
/// Longest event payload: the kernel prints an event into a one-page `trace_seq`
/// (`TRACE_SEQ_BUFFER_SIZE`, include/linux/trace_seq.h), so a longer payload is not a real
/// one. Counted as `payload_too_long`; without the cap, 4096 records of the reorder window
/// could each hold a 1 MiB interned field (a 4 MB zstd file would need 4 GiB).
pub const MAX_PAYLOAD: usize = 4096;
/// Distinct event names `unparsed_payload_by_event` keeps; later ones are summed under
/// [`OTHER_EVENTS`].
pub const MAX_UNPARSED_NAMES: usize = 1024;
/// Key of the unparsed payloads of events past [`MAX_UNPARSED_NAMES`] distinct names.
pub const OTHER_EVENTS: &str = "<other events>";
const CHUNK: usize = 1 << 20;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Largest zstd window a compressed capture may ask for: 2^27 = 128 MiB (see [`open_reader`]).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
const SNIFF_BYTES: usize = 64 * 1024;

/// Opens `path` (`-` is stdin), decompressing zstd transparently, and sniffs the format.
pub fn open(path: &str, opts: &Options) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    if path == "-" {
        return open_reader(path, Box::new(std::io::stdin()), opts);
    }
    if std::path::Path::new(path).is_dir() {
        let d = std::path::Path::new(path);
        // Only a `record --raw` directory is an input; any other one is named as such, not
        // read until a missing file says "truncated or corrupt".
        if !d.join("events/header_page").is_file() || !d.join("per_cpu").is_dir() {
            return Err(ParseError::Open {
                path: path.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a directory that is not a raw capture (a `mmreplay record --raw` directory has events/header_page and per_cpu/); give a capture file or such a directory",
                ),
            });
        }
        return crate::binary::source::open_raw_dir(path, opts.kallsyms.as_deref());
    }
    let f = std::fs::File::open(path).map_err(|source| ParseError::Open {
        path: path.to_string(),
        source,
    })?;
    let regular = f
        .metadata()
        .map(|m| m.is_file() && m.len() > 0)
        .unwrap_or(false);
    if regular {
        // SAFETY: a read-only mapping of a regular file. The one hazard is another process
        // truncating the file while we read it (SIGBUS), the same caveat as every mmap-based
        // reader; captures are not rewritten in place. Mapping failure falls back to read().
        if let Ok(map) = unsafe { memmap2::Mmap::map(&f) } {
            if map.starts_with(&ZSTD_MAGIC) {
                let limit = crate::binary::backing::zstd_limit(map.len() as u64);
                return open_reader_limited(path, Box::new(std::io::Cursor::new(map)), opts, limit);
            }
            return open_lines(LineBuf::from_map(path, map), opts);
        }
    }
    open_reader(path, Box::new(f), opts)
}

/// Like [`open`] over any byte stream; `path` is only used in messages.
pub fn open_reader(
    path: &str,
    raw: Box<dyn Read + Send>,
    opts: &Options,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    open_reader_limited(path, raw, opts, crate::binary::backing::MAX_SPILL_BYTES)
}

/// [`open_reader`]; a binary capture in `raw` is spilled up to `spill_limit` bytes.
fn open_reader_limited(
    path: &str,
    raw: Box<dyn Read + Send>,
    opts: &Options,
    spill_limit: u64,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    let mut br = BufReader::with_capacity(CHUNK, raw);
    let head = br.fill_buf().map_err(|source| ParseError::Read {
        path: path.to_string(),
        offset: 0,
        source,
    })?;
    let zstd = head.starts_with(&ZSTD_MAGIC);
    let stream: Box<dyn Read + Send> = if zstd {
        let mut d =
            zstd::stream::read::Decoder::with_buffer(br).map_err(|source| ParseError::Read {
                path: path.to_string(),
                offset: 0,
                source,
            })?;
        // The frame header names the window the decoder allocates. Pinned at libzstd's default
        // (128 MiB): `zstd -22` / `--long` captures (corpus/captures/compaction-procs) use it;
        // the buffer is touched only as far as data fills it, and a frame asking for more is
        // refused ("Frame requires too much memory") instead of allocating it.
        d.window_log_max(ZSTD_WINDOW_LOG_MAX)
            .map_err(|source| ParseError::Read {
                path: path.to_string(),
                offset: 0,
                source,
            })?;
        Box::new(d)
    } else {
        Box::new(br)
    };
    let mut lines = LineBuf::new(path, stream);
    lines.spill_limit = spill_limit;
    lines.fill_at_least(SNIFF_BYTES)?;
    open_lines(lines, opts)
}

fn open_lines(lines: LineBuf, opts: &Options) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    let path = lines.path.clone();
    let path = path.as_str();
    let head = lines.pending();
    let head = head.get(..SNIFF_BYTES).unwrap_or(head);
    let format = match opts.format {
        Some(f) => f,
        None => sniff(path, head)?,
    };
    match format {
        // ---- BINARY READERS PLUG IN HERE -------------------------------------------------
        // The binary-reader helper replaces this arm with a call into `crate::binary`, e.g.
        // `crate::binary::open(path, lines.into_reader(), format, opts)`: `into_reader()` gives
        // back the whole (decompressed) stream including the bytes already sniffed.
        Format::TraceDat | Format::PerfData | Format::RawDir => {
            // A mapped file is read in place; a stream is spilled to a mapped temporary file.
            let bytes = lines.into_backing()?;
            crate::binary::source::open_backing(
                path,
                bytes,
                format,
                opts.kallsyms.as_deref(),
                opts.strict,
            )
        }
        // ----------------------------------------------------------------------------------
        Format::Ftrace | Format::TraceCmd | Format::PerfScript => {
            Ok(Box::new(TextReader::new(lines, format, opts)))
        }
    }
}

/// Sniffs the format from the first bytes of the (decompressed) stream.
pub fn sniff(path: &str, head: &[u8]) -> Result<Format, ParseError> {
    if head.starts_with(b"\x17\x08Dtracing") {
        return Ok(Format::TraceDat);
    }
    if head.starts_with(b"PERFILE2") || head.starts_with(b"2ELIFREP") {
        return Ok(Format::PerfData);
    }
    if head.iter().all(|c| c.is_ascii_whitespace()) {
        return Err(ParseError::Empty {
            path: path.to_string(),
        });
    }
    let mut saw_tracer_header = false;
    let mut first_bad: Option<(u64, &[u8])> = None;
    let mut tried = 0;
    // The last piece may be a cut line: only whole lines unless the input ended.
    for (i, line) in head.split(|&c| c == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        if line.starts_with(b"cpus=") || line.starts_with(b"version = ") {
            return Ok(Format::TraceCmd);
        }
        if line.starts_with(b"#") {
            saw_tracer_header |= line.starts_with(b"# tracer:");
            continue;
        }
        if line.starts_with(b"CPU:") || line.starts_with(b"\t") {
            continue;
        }
        if let Ok(Line::Event(_)) = text::ftrace::parse_line(line) {
            return Ok(Format::Ftrace);
        }
        if let Ok(Line::Event(_)) = text::perf::parse_line(line) {
            return Ok(Format::PerfScript);
        }
        if first_bad.is_none() {
            first_bad = Some((i as u64 + 1, line));
        }
        tried += 1;
        if tried >= 20 {
            break;
        }
    }
    if saw_tracer_header && first_bad.is_none() {
        return Ok(Format::Ftrace);
    }
    let (line, text) = first_bad.unwrap_or((1, head));
    Err(ParseError::Unrecognised {
        path: path.to_string(),
        line,
        preview: preview(text),
    })
}

/// One read line.
enum LineRead<'a> {
    /// (line, 1-based line number, byte offset of its start)
    Line(&'a [u8], u64, u64),
    TooLong(u64, u64, u64),
    Eof,
}

/// Streaming line splitter over a byte stream with a bounded buffer.
pub struct LineBuf {
    path: String,
    src: Box<dyn Read + Send>,
    /// A mapped regular file: lines are sliced straight from it (no copy, no read calls).
    map: Option<memmap2::Mmap>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Bytes consumed before `buf[start]`.
    offset: u64,
    line_no: u64,
    /// Most bytes the stream may be spilled to for a binary reader (a mapped `.zst` may expand
    /// [`crate::binary::backing::zstd_limit`] of its size).
    spill_limit: u64,
    /// Map bytes before this were given back to the kernel (peak RSS must not grow with the
    /// file: the lines before the current one are never looked at again).
    released: usize,
}

impl LineBuf {
    fn new(path: &str, src: Box<dyn Read + Send>) -> Self {
        LineBuf {
            path: path.to_string(),
            src,
            map: None,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            line_no: 0,
            spill_limit: crate::binary::backing::MAX_SPILL_BYTES,
            released: 0,
        }
    }

    fn from_map(path: &str, map: memmap2::Mmap) -> Self {
        let end = map.len();
        LineBuf {
            path: path.to_string(),
            src: Box::new(std::io::empty()),
            map: Some(map),
            buf: Vec::new(),
            start: 0,
            end,
            eof: true,
            offset: 0,
            line_no: 0,
            spill_limit: crate::binary::backing::MAX_SPILL_BYTES,
            released: 0,
        }
    }

    #[inline]
    fn data(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &self.buf,
        }
    }

    fn pending(&self) -> &[u8] {
        self.data().get(self.start..self.end).unwrap_or(&[])
    }

    /// Gives back the whole stream, starting with the bytes still buffered.
    pub fn into_reader(self) -> Box<dyn Read + Send> {
        if let Some(map) = self.map {
            let mut c = std::io::Cursor::new(map);
            c.set_position(self.start as u64);
            return Box::new(c);
        }
        let rest = self.buf.get(self.start..self.end).unwrap_or(&[]).to_vec();
        Box::new(std::io::Cursor::new(rest).chain(self.src))
    }

    /// The whole stream as [`crate::binary::Backing`]: the map itself when there is one and
    /// nothing was consumed, else the stream spilled to a mapped temporary file.
    pub fn into_backing(self) -> Result<crate::binary::Backing, ParseError> {
        if self.start == 0 && self.map.is_some() {
            if let Some(map) = self.map {
                return Ok(crate::binary::Backing::from_map(map));
            }
        }
        let path = self.path.clone();
        // A mapped `.zst` bounds what it may expand to by its size (a zstd bomb stops there).
        let limit = self.spill_limit;
        crate::binary::Backing::spill_limited(&path, self.into_reader(), limit).map_err(|e| {
            ParseError::Read {
                path: path.clone(),
                offset: 0,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            }
        })
    }

    /// Reads once into the free tail of the buffer, compacting/growing first. Ok(false) at EOF.
    fn read_more(&mut self) -> Result<bool, ParseError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let n = self.buf.len() + CHUNK;
            self.buf.resize(n, 0);
        }
        loop {
            let dst = self.buf.get_mut(self.end..).unwrap_or(&mut []);
            match self.src.read(dst) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ParseError::Read {
                        path: self.path.clone(),
                        offset: self.offset + (self.end - self.start) as u64,
                        source,
                    })
                }
            }
        }
    }

    fn fill_at_least(&mut self, n: usize) -> Result<(), ParseError> {
        while self.end - self.start < n && self.read_more()? {}
        Ok(())
    }

    #[inline]
    fn next_line(&mut self) -> Result<LineRead<'_>, ParseError> {
        let mut scanned = 0usize;
        loop {
            let window = self
                .data()
                .get(self.start + scanned..self.end)
                .unwrap_or(&[]);
            if let Some(nl) = memchr::memchr(b'\n', window) {
                let s = self.start;
                if s >= self.released + crate::binary::backing::Releaser::STEP {
                    if let Some(m) = &self.map {
                        crate::binary::backing::release_map(m, self.released..s);
                        self.released = s / 4096 * 4096;
                    }
                }
                let e = s + scanned + nl;
                self.start = e + 1;
                self.line_no += 1;
                let (no, off) = (self.line_no, self.offset);
                self.offset += (e + 1 - s) as u64;
                if e - s > MAX_LINE {
                    // Same verdict whether the line came from a mapping or a stream.
                    return Ok(LineRead::TooLong((e - s) as u64, no, off));
                }
                return Ok(LineRead::Line(
                    self.data().get(s..e).unwrap_or(&[]),
                    no,
                    off,
                ));
            }
            scanned = self.end - self.start;
            if scanned > MAX_LINE {
                return self.skip_long_line();
            }
            if !self.read_more()? {
                if self.start == self.end {
                    return Ok(LineRead::Eof);
                }
                // Last line without a newline (possibly truncated).
                let (s, e) = (self.start, self.end);
                self.start = e;
                self.line_no += 1;
                let (no, off) = (self.line_no, self.offset);
                self.offset += (e - s) as u64;
                return Ok(LineRead::Line(
                    self.data().get(s..e).unwrap_or(&[]),
                    no,
                    off,
                ));
            }
        }
    }

    /// Discards the rest of an over-long line, keeping memory bounded.
    fn skip_long_line(&mut self) -> Result<LineRead<'_>, ParseError> {
        self.line_no += 1;
        let (no, off) = (self.line_no, self.offset);
        let mut len: u64 = 0;
        loop {
            let window = self.data().get(self.start..self.end).unwrap_or(&[]);
            if let Some(nl) = memchr::memchr(b'\n', window) {
                len += nl as u64;
                self.start += nl + 1;
                self.offset += len + 1;
                return Ok(LineRead::TooLong(len, no, off));
            }
            len += window.len() as u64;
            self.start = self.end;
            if !self.read_more()? {
                self.offset += len;
                return Ok(LineRead::TooLong(len, no, off));
            }
        }
    }
}

/// `B - A` of an ftrace `# entries-in-buffer/entries-written: A/B   #P:n` header line (the
/// ring buffer overwrote the difference, `kernel/trace/trace.c:print_event_info`); 0 for any
/// other line. Parsed by `text::header`, the one parser of that line.
pub fn overwritten_in_header(line: &[u8]) -> u64 {
    crate::text::header::entries_header(line).map_or(0, |h| h.overwritten())
}

/// Per-line state of the text reader, kept apart from the line buffer so a borrowed line and
/// the counters can be used together.
struct TextState {
    path: String,
    format: Format,
    tokenise: fn(&[u8]) -> Result<Line<'_>, LineError>,
    decoder: Decoder,
    reorder: Reorder,
    strict: bool,
    lines: u64,
    unparsed: FxHashMap<&'static str, u64>,
    unparsed_payload: FxHashMap<Box<[u8]>, u64>,
    skipped: [u64; SkipKind::ALL.len()],
    first_unparsed: Vec<String>,
    overwritten: u64,
}

/// The text reader: ftrace, `trace-cmd report`, `perf script`.
pub struct TextReader {
    lines: LineBuf,
    st: TextState,
    done: bool,
}

impl TextReader {
    fn new(lines: LineBuf, format: Format, opts: &Options) -> Self {
        let tokenise: fn(&[u8]) -> Result<Line<'_>, LineError> = match format {
            Format::PerfScript => text::perf::parse_line,
            _ => text::ftrace::parse_line,
        };
        let path = lines.path.clone();
        TextReader {
            lines,
            st: TextState {
                path,
                format,
                tokenise,
                decoder: Decoder::new(),
                reorder: Reorder::new(opts.window),
                strict: opts.strict,
                lines: 0,
                unparsed: FxHashMap::default(),
                unparsed_payload: FxHashMap::default(),
                skipped: [0; SkipKind::ALL.len()],
                first_unparsed: Vec::new(),
                overwritten: 0,
            },
            done: false,
        }
    }
}

impl TextState {
    fn note_unparsed(&mut self, kind: &'static str, pos: &Pos, msg: &str) {
        *self.unparsed.entry(kind).or_insert(0) += 1;
        if self.first_unparsed.len() < 5 {
            self.first_unparsed.push(format!("{pos}: {msg}"));
        }
    }

    #[inline]
    fn handle(&mut self, line: &[u8], no: u64, off: u64) -> Result<(), ParseError> {
        self.lines += 1;
        macro_rules! pos {
            () => {
                Pos {
                    path: self.path.clone(),
                    line: no,
                    offset: off,
                }
            };
        }
        match (self.tokenise)(line) {
            Ok(Line::Event(e))
                if e.name.len() > MAX_EVENT_NAME || e.payload.len() > MAX_PAYLOAD =>
            {
                let (what, expected, len) = if e.name.len() > MAX_EVENT_NAME {
                    (
                        "event_name_too_long",
                        "an event name of at most 128 bytes",
                        e.name.len(),
                    )
                } else {
                    (
                        "payload_too_long",
                        "an event payload of at most 4096 bytes (one trace_seq page)",
                        e.payload.len(),
                    )
                };
                if self.strict {
                    return Err(ParseError::Line {
                        pos: pos!(),
                        what,
                        expected,
                        preview: preview(line),
                    });
                }
                let p = pos!();
                self.note_unparsed(
                    what,
                    &p,
                    &format!("{what} ({len} bytes): expected {expected}"),
                );
            }
            Ok(Line::Event(e)) => match self.decoder.decode(e.name, e.payload, e.form) {
                Ok(event) => {
                    self.reorder.push(Record {
                        ts_ns: e.ts_ns,
                        cpu: e.cpu,
                        pid: e.pid,
                        tgid: e.tgid,
                        comm: Comm::new(e.comm),
                        event,
                    });
                }
                Err(expected) => {
                    let event = String::from_utf8_lossy(e.name).into_owned();
                    if self.strict {
                        return Err(ParseError::Payload {
                            pos: pos!(),
                            event,
                            expected,
                            preview: preview(e.payload),
                        });
                    }
                    let key: &[u8] = if self.unparsed_payload.len() < MAX_UNPARSED_NAMES
                        || self.unparsed_payload.contains_key(e.name)
                    {
                        e.name
                    } else {
                        OTHER_EVENTS.as_bytes()
                    };
                    *self.unparsed_payload.entry(Box::from(key)).or_insert(0) += 1;
                    let msg = format!(
                        "payload of `{event}`: expected {expected}; got {:?}",
                        preview(e.payload)
                    );
                    let p = pos!();
                    self.note_unparsed("payload", &p, &msg);
                }
            },
            Ok(Line::Lost { cpu, count }) => {
                let ts_ns = self.reorder.newest_ts().unwrap_or(0);
                self.reorder.push(Record {
                    ts_ns,
                    cpu,
                    pid: -1,
                    tgid: None,
                    comm: Comm::default(),
                    event: Event::Lost { count },
                });
            }
            Ok(Line::Skip(k)) => {
                if let Some(s) = self.skipped.get_mut(k as usize) {
                    *s += 1;
                }
                if k == SkipKind::Header {
                    self.overwritten += overwritten_in_header(line);
                }
            }
            Err(le) => {
                if self.strict {
                    return Err(ParseError::Line {
                        pos: pos!(),
                        what: le.kind,
                        expected: le.expected,
                        preview: preview(line),
                    });
                }
                let msg = format!(
                    "{}: expected {}; line {:?}",
                    le.kind,
                    le.expected,
                    preview(line)
                );
                let p = pos!();
                self.note_unparsed(le.kind, &p, &msg);
            }
        }
        Ok(())
    }
}

impl RecordSource for TextReader {
    fn format(&self) -> Format {
        self.st.format
    }

    fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        loop {
            if let Some(r) = self.st.reorder.pop() {
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
            match self.lines.next_line()? {
                LineRead::Line(l, no, off) => self.st.handle(l, no, off)?,
                LineRead::TooLong(len, no, off) => {
                    let pos = Pos {
                        path: self.st.path.clone(),
                        line: no,
                        offset: off,
                    };
                    self.st.lines += 1;
                    if self.st.strict {
                        return Err(ParseError::Line {
                            pos,
                            what: "line_too_long",
                            expected: "a line shorter than 1 MiB",
                            preview: format!("<{len} bytes>"),
                        });
                    }
                    self.st.note_unparsed(
                        "line_too_long",
                        &pos,
                        &format!("line of {len} bytes skipped"),
                    );
                }
                LineRead::Eof => {
                    self.st.reorder.finish();
                    self.done = true;
                }
            }
        }
    }

    fn diagnostics(&self) -> Diagnostics {
        let st = &self.st;
        let mut d = Diagnostics {
            lines: st.lines,
            ..Default::default()
        };
        for (k, v) in &st.unparsed {
            d.unparsed_by_kind.insert((*k).to_string(), *v);
            d.unparsed_lines += v;
        }
        for (k, v) in &st.unparsed_payload {
            *d.unparsed_payload_by_event
                .entry(String::from_utf8_lossy(k).into_owned())
                .or_insert(0) += v;
        }
        for k in SkipKind::ALL {
            let v = st.skipped.get(k as usize).copied().unwrap_or(0);
            if v > 0 {
                d.skipped_by_kind.insert(k.name().to_string(), v);
                d.skipped_lines += v;
            }
        }
        d.first_unparsed = st.first_unparsed.clone();
        d.out_of_order = st.reorder.out_of_order;
        d.overwritten_events = st.overwritten;
        d.max_lag_ns = st.reorder.max_lag_ns;
        d
    }
}

#[cfg(test)]
mod overwritten_tests {
    use super::overwritten_in_header;

    #[test]
    fn header_difference() {
        assert_eq!(
            overwritten_in_header(b"# entries-in-buffer/entries-written: 1744/12071   #P:2"),
            10327
        );
        assert_eq!(
            overwritten_in_header(b"# entries-in-buffer/entries-written: 5/5   #P:2"),
            0
        );
        for other in [
            &b"# tracer: nop"[..],
            b"# entries-in-buffer/entries-written: x/7",
            b"# entries-in-buffer/entries-written: 7/",
            b"# entries-in-buffer/entries-written:",
            b"# entries-in-buffer/entries-written: 9/3",
        ] {
            assert_eq!(overwritten_in_header(other), 0, "{other:?}");
        }
    }
}
