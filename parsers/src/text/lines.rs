//! The line reader: a streaming line splitter over a byte stream (or a mapped file) with a
//! bounded buffer, shared by format sniffing (`input`) and the text reader (`text::reader`).
//!
//! Must never read a whole stream into memory (lines are capped at [`MAX_LINE`]), and never
//! panic on any bytes. It reads bytes only; what a line means is the text reader's business.

use crate::error::ParseError;
use std::io::Read;

/// Lines longer than this are counted as `line_too_long` and skipped (memory stays bounded).
pub const MAX_LINE: usize = 1 << 20;
/// Bytes read from a stream at a time.
pub(crate) const CHUNK: usize = 1 << 20;

/// One read line.
pub(crate) enum LineRead<'a> {
    /// (line, 1-based line number, byte offset of its start)
    Line(&'a [u8], u64, u64),
    TooLong(u64, u64, u64),
    Eof,
}

/// Streaming line splitter over a byte stream with a bounded buffer.
pub struct LineBuf {
    pub(crate) path: String,
    src: Box<dyn Read + Send>,
    /// A mapped regular file: lines are sliced straight from it (no copy, no read calls).
    pub(crate) map: Option<memmap2::Mmap>,
    buf: Vec<u8>,
    pub(crate) start: usize,
    end: usize,
    eof: bool,
    /// Bytes consumed before `buf[start]`.
    offset: u64,
    line_no: u64,
    /// Map bytes before this were given back to the kernel (peak RSS must not grow with the
    /// file: the lines before the current one are never looked at again).
    released: usize,
    /// The stream is the decompressed content of a zstd file (read errors say so).
    pub(crate) zstd: bool,
}

impl LineBuf {
    pub(crate) fn new(path: &str, src: Box<dyn Read + Send>) -> Self {
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
            released: 0,
            zstd: false,
        }
    }

    pub(crate) fn from_map(path: &str, map: memmap2::Mmap) -> Self {
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
            released: 0,
            zstd: false,
        }
    }

    #[inline]
    fn data(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &self.buf,
        }
    }

    pub(crate) fn pending(&self) -> &[u8] {
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
                        zstd: self.zstd,
                        source,
                    })
                }
            }
        }
    }

    pub(crate) fn fill_at_least(&mut self, n: usize) -> Result<(), ParseError> {
        while self.end - self.start < n && self.read_more()? {}
        Ok(())
    }

    #[inline]
    pub(crate) fn next_line(&mut self) -> Result<LineRead<'_>, ParseError> {
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
