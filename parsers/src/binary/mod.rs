//! Binary captures: trace.dat (trace-cmd v6/v7), perf.data (file and pipe mode) and raw
//! `trace_pipe_raw` pages, decoded from the capture's own tracepoint `format` files into the same
//! typed [`Record`]s the text parsers produce.
//!
//! Entry points: [`sniff`] (what a buffer is), [`read_bytes`] (decode a whole capture held in
//! memory, after any outer zstd), [`read_path`] (a file, `.zst` or not, or `-` for stdin), and
//! [`rawdir::read_raw_dir`]. Nothing here may panic on input or size an allocation from an
//! untrusted length field.

pub mod bytes;
pub mod decode;
pub mod facts;
pub mod format;
pub mod merge;
pub mod meta;
pub mod perf;
pub mod perf_layout;
pub mod rawdir;
pub mod ringbuf;
pub mod source;
pub mod tracedat;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::record::{Comm, Record};

pub use facts::CaptureFacts;
pub use format::FormatError;

/// Errors of the binary readers. Offsets are byte offsets in the (decompressed) file.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{path}: {source}")]
    Io {
        path: String,
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

/// zstd frame magic (an outer `.zst` around any capture).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Recognises a binary capture from its first bytes (already decompressed).
pub fn sniff(data: &[u8]) -> Option<BinaryFormat> {
    if tracedat::is_trace_dat(data) {
        return Some(if data.get(10) == Some(&b'6') {
            BinaryFormat::TraceDatV6
        } else {
            BinaryFormat::TraceDatV7
        });
    }
    if perf::is_perf_data(data) {
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
        let text = if raw.starts_with(&ZSTD_MAGIC) {
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
    if data.starts_with(&ZSTD_MAGIC) {
        let inner = unzstd(data)?;
        return read_bytes_with(&inner, opts);
    }
    match sniff(data) {
        Some(f @ (BinaryFormat::TraceDatV6 | BinaryFormat::TraceDatV7)) => {
            let mut td = tracedat::TraceDat::parse(data)?;
            if let Some(k) = opts
                .kallsyms
                .clone()
                .filter(|_| td.meta.kallsyms.is_empty())
            {
                td.meta.kallsyms = k;
            }
            let (records, mut format_errors) = td.decode()?;
            format_errors.extend(td.meta.format_errors.iter().cloned());
            Ok(BinaryCapture {
                format: f,
                records,
                formats: td.meta.format_count(),
                format_errors,
                facts: None,
            })
        }
        Some(f @ (BinaryFormat::PerfFile | BinaryFormat::PerfPipe)) => {
            let (info, records) =
                perf::read_perf_checked(data, opts.kallsyms.clone(), opts.strict)?;
            Ok(BinaryCapture {
                format: f,
                records,
                formats: 0,
                format_errors: Vec::new(),
                facts: Some(CaptureFacts::from_perf(&info)),
            })
        }
        None => Err(BinaryError::BadMagic {
            what: "trace.dat or perf.data",
        }),
    }
}

/// Removes an outer zstd layer (streaming, so memory follows the real output size).
pub fn unzstd(data: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(data)
        .and_then(|mut d| d.read_to_end(&mut out))
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
    if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .map_err(|e| BinaryError::Io {
                path: "<stdin>".into(),
                source: e,
            })?;
        return read_bytes(&v).map_err(wrap);
    }
    let f = std::fs::File::open(path).map_err(|e| BinaryError::Io {
        path: name.clone(),
        source: e,
    })?;
    let meta = f.metadata().map_err(|e| BinaryError::Io {
        path: name.clone(),
        source: e,
    })?;
    if meta.is_file() && meta.len() > 0 {
        // SAFETY: the map is read-only and private to this call; the input is treated as
        // untrusted bytes throughout, so concurrent changes can only give wrong data or errors.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| BinaryError::Io {
            path: name.clone(),
            source: e,
        })?;
        return read_bytes(&map).map_err(wrap);
    }
    let mut v = Vec::new();
    let mut f = f;
    f.read_to_end(&mut v).map_err(|e| BinaryError::Io {
        path: name.clone(),
        source: e,
    })?;
    read_bytes(&v).map_err(wrap)
}

/// The comm trace-cmd prints for `pid`: saved_cmdlines, `<idle>` for pid 0, else `<...>`.
pub(crate) fn comm_for(cmdlines: &BTreeMap<i32, Comm>, pid: i32) -> Comm {
    if pid == 0 {
        return Comm::new(b"<idle>");
    }
    cmdlines
        .get(&pid)
        .copied()
        .unwrap_or_else(|| Comm::new(b"<...>"))
}
