//! Binary captures: trace.dat (trace-cmd v6/v7), perf.data (file and pipe mode) and raw
//! `trace_pipe_raw` pages, decoded from the capture's own tracepoint `format` files into the same
//! typed [`Record`]s the text parsers produce.
//!
//! Entry points: [`sniff`] (what a buffer is), [`BinaryStream`] (records pulled lazily over
//! mapped or spilled bytes: memory does not grow with the capture), [`read_bytes`] (decode a
//! whole capture held in memory, after any outer zstd), [`read_path`] (a file, `.zst` or not, or
//! `-` for stdin), and [`rawdir::read_raw_dir`]; the last three collect a stream. Nothing here
//! may panic on input or size an allocation from an untrusted length field: lengths are checked
//! against the bytes present, or against a documented cap ([`MAX_CHUNK_BYTES`],
//! [`tracedat::MAX_SECTION_BYTES`], [`perf::MAX_ARENA_BYTES`], [`ZSTD_WINDOW_LOG_MAX`]).

pub mod backing;
pub mod bytes;
pub mod decode;
pub mod facts;
pub mod format;
pub mod meta;
pub(crate) mod pages;
pub mod perf;
pub mod perf_layout;
pub mod rawdir;
pub mod ringbuf;
pub mod source;
pub mod tracedat;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub use backing::Backing;
pub use pages::MAX_CHUNK_BYTES;

use crate::record::Record;

pub use crate::source::CaptureFacts;
pub use format::FormatError;

/// Errors of the binary readers. Offsets are byte offsets in the (decompressed) file.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// `FILE: cannot read, because: CAUSE` (the CLI's one error style; the cause is `source`).
    #[error("{path}: cannot read, because: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The input stream itself failed while being spilled (EIO, a cut zstd frame: `source`
    /// keeps the kind, so a caller can tell "truncated" from other failures).
    #[error("{path}: cannot read, because: {source}")]
    StreamRead {
        path: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    InFile {
        path: String,
        #[source]
        source: Box<BinaryError>,
    },
    #[error("not a {what} file (bad magic)")]
    BadMagic { what: &'static str },
    #[error("{what}: truncated at byte {offset} reading {field}: need {need} bytes, {have} left")]
    Truncated {
        what: &'static str,
        field: &'static str,
        offset: u64,
        need: u64,
        have: u64,
    },
    #[error("{what} at byte {offset}: {msg}")]
    Invalid {
        what: &'static str,
        offset: u64,
        msg: String,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{algo} data at byte {offset}: {msg}")]
    Decompress {
        algo: String,
        offset: u64,
        msg: String,
    },
    #[error("perf.data: {0}")]
    Perf(String),
    /// A length or count read from the file asks for more than the reader's documented cap.
    #[error("{what} at byte {offset}: {size} bytes asked for, over the {cap}-byte limit")]
    TooLarge {
        what: &'static str,
        offset: u64,
        size: u64,
        cap: u64,
    },
}

/// The binary formats this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryFormat {
    TraceDatV6,
    TraceDatV7,
    PerfFile,
    PerfPipe,
}

impl BinaryFormat {
    pub fn name(self) -> &'static str {
        match self {
            BinaryFormat::TraceDatV6 => "trace.dat v6",
            BinaryFormat::TraceDatV7 => "trace.dat v7",
            BinaryFormat::PerfFile => "perf.data",
            BinaryFormat::PerfPipe => "perf.data (pipe)",
        }
    }
}

pub use crate::source::{ZSTD_MAGIC, ZSTD_WINDOW_LOG_MAX};

/// Recognises a binary capture from its first bytes (already decompressed).
pub fn sniff(data: &[u8]) -> Option<BinaryFormat> {
    let format = crate::source::sniff_magic(data);
    if format == Some(crate::Format::TraceDat) {
        return Some(if data.get(10) == Some(&b'6') {
            BinaryFormat::TraceDatV6
        } else {
            BinaryFormat::TraceDatV7
        });
    }
    if format == Some(crate::Format::PerfData) {
        let size = data.get(8..16).map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            if data.starts_with(b"PERFILE2") {
                u64::from_le_bytes(a)
            } else {
                u64::from_be_bytes(a)
            }
        });
        return Some(if size == Some(16) {
            BinaryFormat::PerfPipe
        } else {
            BinaryFormat::PerfFile
        });
    }
    None
}

/// A decoded binary capture.
#[derive(Debug)]
pub struct BinaryCapture {
    pub format: BinaryFormat,
    pub records: Vec<Record>,
    /// Event formats in the capture (ftrace + systems), and how many failed to parse.
    pub formats: usize,
    pub format_errors: Vec<FormatError>,
    /// Producer, CPU count and what could not be read (perf.data).
    pub facts: Option<CaptureFacts>,
}

/// Options of [`read_bytes_with`].
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// `/proc/kallsyms` of the recording boot, used when the capture carries none (perf.data
    /// never does): names IPI callbacks so their kind can be classified.
    pub kallsyms: Option<std::sync::Arc<meta::Kallsyms>>,
    /// Damage, skipped records and header oddities of a perf.data are errors instead of being
    /// counted in [`BinaryCapture::facts`].
    pub strict: bool,
}

impl ReadOptions {
    /// Loads kallsyms text from a file (`.zst` or plain).
    pub fn with_kallsyms_file(mut self, path: &Path) -> Result<Self, BinaryError> {
        let raw = std::fs::read(path).map_err(|e| BinaryError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let text = if crate::source::is_zstd(&raw) {
            unzstd(&raw)?
        } else {
            raw
        };
        self.kallsyms = Some(std::sync::Arc::new(meta::Kallsyms::parse(&text)));
        Ok(self)
    }
}

/// Decodes a whole binary capture held in memory (outer zstd is removed first).
pub fn read_bytes(data: &[u8]) -> Result<BinaryCapture, BinaryError> {
    read_bytes_with(data, &ReadOptions::default())
}

/// [`read_bytes`] with options.
pub fn read_bytes_with(data: &[u8], opts: &ReadOptions) -> Result<BinaryCapture, BinaryError> {
    BinaryStream::open(Arc::new(Backing::from_vec(data.to_vec())), opts)?.collect()
}

/// Removes an outer zstd layer (streaming, so memory follows the real output size).
pub fn unzstd(data: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(data)
        .and_then(|mut d| {
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            d.read_to_end(&mut out)
        })
        .map_err(|e| BinaryError::Decompress {
            algo: "zstd".into(),
            offset: 0,
            msg: e.to_string(),
        })?;
    Ok(out)
}

/// Reads a file (`-` = stdin; `.zst` or any zstd-framed content is decompressed) and decodes it.
/// Regular files are memory-mapped (no copy); a file truncated by another process while it is
/// read raises SIGBUS, as with any mmap reader.
pub fn read_path(path: &Path) -> Result<BinaryCapture, BinaryError> {
    let name = path.display().to_string();
    let wrap = |e: BinaryError| BinaryError::InFile {
        path: name.clone(),
        source: Box::new(e),
    };
    let bytes = if path.as_os_str() == "-" {
        Backing::spill("<stdin>", Box::new(std::io::stdin()))?
    } else {
        Backing::open(path)?
    };
    BinaryStream::open(Arc::new(bytes), &ReadOptions::default())
        .and_then(BinaryStream::collect)
        .map_err(wrap)
}

enum Inner {
    Pages(Box<pages::PageMerge>),
    Perf(Box<perf::PerfStream>),
    Whole(std::vec::IntoIter<Record>, Option<CaptureFacts>),
}

/// A binary capture read lazily: trace.dat by per-CPU page cursors merged by time, perf.data
/// one FINISHED_ROUND at a time, both over mapped bytes they give back as they pass them
/// ([`Backing`]). Memory does not grow with the capture's length.
pub struct BinaryStream {
    format: BinaryFormat,
    inner: Inner,
    formats: usize,
}

impl BinaryStream {
    /// Opens a capture's bytes (an outer zstd layer is streamed into a spill file first).
    pub fn open(bytes: Arc<Backing>, opts: &ReadOptions) -> Result<Self, BinaryError> {
        if crate::source::is_zstd(&bytes) {
            let mut d = zstd::stream::read::Decoder::new(&bytes[..]).map_err(|e| {
                BinaryError::Decompress {
                    algo: "zstd".into(),
                    offset: 0,
                    msg: e.to_string(),
                }
            })?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| BinaryError::Decompress {
                    algo: "zstd".into(),
                    offset: 0,
                    msg: e.to_string(),
                })?;
            let limit = backing::zstd_limit(bytes.len() as u64);
            let inner =
                Backing::spill_limited("zstd data", Box::new(d), limit).map_err(|e| match e {
                    BinaryError::Io { source, .. } => BinaryError::Decompress {
                        algo: "zstd".into(),
                        offset: 0,
                        msg: source.to_string(),
                    },
                    e => e,
                })?;
            return Self::open(Arc::new(inner), opts);
        }
        match sniff(&bytes) {
            Some(f @ (BinaryFormat::TraceDatV6 | BinaryFormat::TraceDatV7)) => {
                let mut td = tracedat::TraceDat::parse(&bytes)?;
                if let Some(k) = opts
                    .kallsyms
                    .clone()
                    .filter(|_| td.meta.kallsyms.is_empty())
                {
                    td.meta.kallsyms = k;
                }
                let formats = td.meta.format_count();
                let merge = td.merge(bytes.clone())?;
                Ok(BinaryStream {
                    format: f,
                    inner: Inner::Pages(Box::new(merge)),
                    formats,
                })
            }
            Some(f @ (BinaryFormat::PerfFile | BinaryFormat::PerfPipe)) => {
                let inner = match perf::PerfStream::open(bytes, opts.kallsyms.clone(), opts.strict)?
                {
                    perf::PerfOpen::Stream(s) => Inner::Perf(s),
                    perf::PerfOpen::Whole(info, r) => {
                        Inner::Whole(r.into_iter(), Some(CaptureFacts::from_perf(&info)))
                    }
                };
                Ok(BinaryStream {
                    format: f,
                    inner,
                    formats: 0,
                })
            }
            None => Err(BinaryError::BadMagic {
                what: "trace.dat or perf.data",
            }),
        }
    }

    pub fn format(&self) -> BinaryFormat {
        self.format
    }

    /// The next record in time order, `Ok(None)` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>, BinaryError> {
        match &mut self.inner {
            Inner::Pages(m) => m.next_record(),
            Inner::Perf(p) => p.next_record(),
            Inner::Whole(it, _) => Ok(it.next()),
        }
    }

    /// Format files that failed to parse (among the events met so far, then the metadata's).
    pub fn format_errors(&self) -> Vec<FormatError> {
        match &self.inner {
            Inner::Pages(m) => m.ctx.format_errors(),
            _ => Vec::new(),
        }
    }

    /// What a perf.data says about itself (complete at the end of the stream).
    pub fn facts(&self) -> Option<CaptureFacts> {
        match &self.inner {
            Inner::Pages(_) => None,
            Inner::Perf(p) => Some(CaptureFacts::from_perf(&p.info())),
            Inner::Whole(_, f) => f.clone(),
        }
    }

    /// Records decoded and held, not yet returned (what the memory bound tests check).
    pub fn buffered(&self) -> usize {
        match &self.inner {
            Inner::Pages(m) => m.buffered(),
            Inner::Perf(p) => p.buffered(),
            Inner::Whole(it, _) => it.len(),
        }
    }

    /// Reads everything into a [`BinaryCapture`].
    pub fn collect(mut self) -> Result<BinaryCapture, BinaryError> {
        let mut records = Vec::new();
        while let Some(r) = self.next_record()? {
            records.push(r);
        }
        Ok(BinaryCapture {
            format: self.format,
            format_errors: self.format_errors(),
            formats: self.formats,
            facts: self.facts(),
            records,
        })
    }
}
