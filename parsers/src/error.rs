//! The parser error type: every failure names the input, and where it can the line, the byte
//! offset and what was expected. Must never carry more than a short preview of the input (a
//! 10 MB line must not end up in an error message).

use std::fmt;

/// Where in the input something happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    /// File name as given (`-` for stdin).
    pub path: String,
    /// 1-based line number (0 when not line-oriented).
    pub line: u64,
    /// Byte offset of the line start in the (decompressed) stream.
    pub offset: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} (byte {})", self.path, self.line, self.offset)
    }
}

/// A short, printable preview of a line (at most 80 bytes, lossy UTF-8). Binary data (not
/// UTF-8, or control characters other than tab) is shown as a hex excerpt of its first 16
/// bytes, never as mojibake: `<binary: 28 b5 2f fd ... (139 bytes)>`.
pub fn preview(line: &[u8]) -> String {
    const MAX: usize = 80;
    const HEX: usize = 16;
    let cut = line.get(..MAX).unwrap_or(line);
    // A multi-byte character cut at MAX is still text.
    let valid = match std::str::from_utf8(cut) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && line.len() > MAX,
    };
    let binary = !valid || cut.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f);
    if binary {
        let hex: Vec<String> = line.iter().take(HEX).map(|b| format!("{b:02x}")).collect();
        let more = if line.len() > HEX { " ..." } else { "" };
        return format!("<binary: {}{more} ({} bytes)>", hex.join(" "), line.len());
    }
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if line.len() > MAX {
        s.push_str(&format!("... ({} bytes)", line.len()));
    }
    s
}

fn zstd_note(zstd: bool) -> &'static str {
    if zstd {
        " of the decompressed zstd stream"
    } else {
        ""
    }
}

fn eof_note(source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::UnexpectedEof {
        ": the input ended early (truncated)"
    } else {
        ""
    }
}

/// Errors keep their I/O cause in `source()` (printed by `{:#}` in the CLI), not in `Display`.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{path}: cannot open")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `offset` counts bytes of the file itself, or of its decompressed stream when `zstd`;
    /// "truncated" is said only when the input really ended early (`UnexpectedEof`: a cut zstd
    /// frame, a binary structure running past the end), never for EIO or corrupt data.
    #[error("{path}: read failed at byte {offset}{}{}", zstd_note(*.zstd), eof_note(.source))]
    Read {
        path: String,
        offset: u64,
        /// The offset is in the decompressed stream of a zstd file.
        zstd: bool,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: empty input: expected ftrace text, trace-cmd report or perf script output")]
    Empty { path: String },
    #[error("{path}: binary format {format} not supported by the text reader")]
    UnsupportedBinary { path: String, format: &'static str },
    #[error("{path}: unrecognised format: expected ftrace text (`comm-pid [cpu] ts: event:`), `trace-cmd report` or `perf script` output in the first lines; line {line} is {preview:?}")]
    Unrecognised {
        path: String,
        line: u64,
        preview: String,
    },
    #[error("unknown format name {0:?}: expected one of ftrace, trace-cmd, perf-script, trace.dat, perf.data, raw-dir, mmr")]
    UnknownFormatName(String),
    #[error("{pos}: {what}: expected {expected}; line is {preview:?}")]
    Line {
        pos: Pos,
        what: &'static str,
        expected: &'static str,
        preview: String,
    },
    /// A compiled `.mmr` file that cannot be read (names the file and byte offset).
    #[error(transparent)]
    Mmr(#[from] crate::mmr::MmrError),
    #[error("{pos}: payload of `{event}` does not match its grammar: expected {expected}; payload is {preview:?}")]
    Payload {
        pos: Pos,
        event: String,
        expected: &'static str,
        preview: String,
    },
}
