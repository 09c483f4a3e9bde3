//! Opening an input: a file, a `record --raw` directory or stdin, transparent streaming zstd,
//! format sniffing (magic bytes from [`crate::source::sniff_magic`], then the text heuristics
//! here), and the dispatch to the one reader of each format: text ([`crate::text::reader`]),
//! binary ([`crate::binary::source`]) and compiled `.mmr` ([`crate::mmr`]). The only module that
//! knows every reader; none of them depends on it (the shared types live in [`crate::source`]).
//!
//! Must never read a whole file into memory: text is streamed line by line, a binary capture
//! is mapped (or spilled to a mapped temporary file), a `.mmr` is read chunk by chunk.

use crate::error::{preview, ParseError};
use crate::text::lines::{LineBuf, CHUNK};
use crate::text::{self, reader::TextReader, Line};
use std::io::{BufRead, BufReader, Read};

pub use crate::source::{
    Diagnostics, Format, Options, RecordSource, ZSTD_MAGIC, ZSTD_WINDOW_LOG_MAX,
};
pub use crate::text::lines::MAX_LINE;
pub use crate::text::reader::{
    overwritten_in_header, MAX_EVENT_NAME, MAX_PAYLOAD, MAX_UNPARSED_NAMES, OTHER_EVENTS,
};

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
            if crate::source::is_zstd(&map) {
                let limit = crate::binary::backing::zstd_limit(map.len() as u64);
                return open_reader_limited(path, Box::new(std::io::Cursor::new(map)), opts, limit);
            }
            let limit = crate::binary::backing::MAX_SPILL_BYTES;
            return open_lines(LineBuf::from_map(path, map), opts, limit);
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
        zstd: false,
        source,
    })?;
    let zstd = crate::source::is_zstd(head);
    let stream: Box<dyn Read + Send> = if zstd {
        let mut d =
            zstd::stream::read::Decoder::with_buffer(br).map_err(|source| ParseError::Read {
                path: path.to_string(),
                offset: 0,
                zstd: true,
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
                zstd: true,
                source,
            })?;
        Box::new(d)
    } else {
        Box::new(br)
    };
    let mut lines = LineBuf::new(path, stream);
    lines.zstd = zstd;
    lines.fill_at_least(SNIFF_BYTES)?;
    open_lines(lines, opts, spill_limit)
}

/// Dispatches the sniffed (or given) format to its reader; a binary capture is spilled up to
/// `spill_limit` bytes when it is not a mapped file.
fn open_lines(
    lines: LineBuf,
    opts: &Options,
    spill_limit: u64,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    let path = lines.path.clone();
    let path = path.as_str();
    let head = lines.pending();
    let head = head.get(..SNIFF_BYTES).unwrap_or(head);
    let format = match opts.format {
        Some(f) => f,
        None => sniff(path, head)?,
    };
    match format {
        Format::TraceDat | Format::PerfData | Format::RawDir => {
            // A mapped file is read in place; a stream is spilled to a mapped temporary file.
            let zstd = lines.zstd;
            let bytes = into_backing(lines, spill_limit)?;
            crate::binary::source::open_backing_z(
                path,
                bytes,
                format,
                opts.kallsyms.as_deref(),
                opts.strict,
                zstd,
            )
        }
        Format::Mmr => crate::mmr::open_source(path, lines.into_reader()),
        Format::Ftrace | Format::TraceCmd | Format::PerfScript => {
            Ok(Box::new(TextReader::new(lines, format, opts)))
        }
    }
}

/// The whole stream as [`crate::binary::Backing`]: the map itself when there is one and
/// nothing was consumed, else the stream spilled to a mapped temporary file of at most
/// `limit` bytes (a mapped `.zst` bounds what it may expand to by its size: a zstd bomb stops
/// there).
fn into_backing(lines: LineBuf, limit: u64) -> Result<crate::binary::Backing, ParseError> {
    if lines.start == 0 && lines.map.is_some() {
        if let Some(map) = lines.map {
            return Ok(crate::binary::Backing::from_map(map));
        }
    }
    let path = lines.path.clone();
    let zstd = lines.zstd;
    crate::binary::Backing::spill_limited(&path, lines.into_reader(), limit)
        .map_err(|e| crate::binary::source::to_parse_error_z(&path, e, zstd))
}

/// Sniffs the format from the first bytes of the (decompressed) stream.
pub fn sniff(path: &str, head: &[u8]) -> Result<Format, ParseError> {
    if let Some(f) = crate::source::sniff_magic(head) {
        return Ok(f);
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
