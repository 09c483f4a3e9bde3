//! Adapter from the binary readers to [`crate::source::RecordSource`], so
//! `input::open` (and so `mmreplay stats`) reads trace.dat and perf.data through the same door as
//! text. Binary containers need random access: a mapped file is read in place, any other stream
//! (stdin, an outer zstd layer) is spilled to an unlinked temporary file and mapped
//! ([`super::Backing`]); the records are then pulled lazily ([`super::BinaryStream`]). It must
//! never hold a whole capture's records.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::{Backing, BinaryError, BinaryStream, ReadOptions};
use crate::error::ParseError;
use crate::record::Record;
use crate::source::{Diagnostics, Format, RecordSource};

enum Records {
    Stream(Box<BinaryStream>),
    Pages(Box<super::pages::PageMerge>),
}

/// Yields the records of a binary capture in time order.
pub struct BinarySource {
    format: Format,
    path: String,
    /// Offsets are of the decompressed stream of a zstd file (said in read errors).
    zstd: bool,
    records: Records,
    diagnostics: Diagnostics,
}

impl BinaryError {
    /// The byte offset the error names, when it names one.
    pub fn offset(&self) -> u64 {
        match self {
            BinaryError::Truncated { offset, .. }
            | BinaryError::Invalid { offset, .. }
            | BinaryError::Decompress { offset, .. }
            | BinaryError::TooLarge { offset, .. }
            | BinaryError::StreamRead { offset, .. } => *offset,
            BinaryError::InFile { source, .. } => source.offset(),
            _ => 0,
        }
    }

    /// The I/O kind a read error carries: `UnexpectedEof` only when the input really ended
    /// before a structure it declares (so the message says "truncated" only then).
    pub fn io_kind(&self) -> std::io::ErrorKind {
        match self {
            BinaryError::Truncated { .. } => std::io::ErrorKind::UnexpectedEof,
            BinaryError::Io { source, .. } | BinaryError::StreamRead { source, .. } => {
                source.kind()
            }
            BinaryError::InFile { source, .. } => source.io_kind(),
            _ => std::io::ErrorKind::InvalidData,
        }
    }
}

fn to_parse_error(path: &str, e: BinaryError) -> ParseError {
    to_parse_error_z(path, e, false)
}

/// `zstd`: the offsets are of the decompressed stream of a zstd file.
pub(crate) fn to_parse_error_z(path: &str, e: BinaryError, zstd: bool) -> ParseError {
    ParseError::Read {
        path: path.to_string(),
        offset: e.offset(),
        zstd,
        source: std::io::Error::new(e.io_kind(), e.to_string()),
    }
}

/// Reads the whole stream (already past any outer zstd) and decodes it.
pub fn open_source(
    path: &str,
    stream: Box<dyn Read + Send>,
    format: Format,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    open_source_with(path, stream, format, None)
}

fn read_options(path: &str, kallsyms: Option<&Path>) -> Result<ReadOptions, ParseError> {
    let opts = ReadOptions::default();
    match kallsyms {
        Some(k) => opts
            .with_kallsyms_file(k)
            .map_err(|e| to_parse_error(path, e)),
        None => Ok(opts),
    }
}

/// A raw capture directory (`mmreplay record --raw`, layout in [`super::rawdir`]); `kallsyms`
/// is used when the directory carries none.
pub fn open_raw_dir(
    path: &str,
    kallsyms: Option<&Path>,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    let opts = read_options(path, kallsyms)?;
    let merge =
        super::rawdir::open_raw_dir(Path::new(path), &opts).map_err(|e| to_parse_error(path, e))?;
    Ok(Box::new(BinarySource {
        format: Format::RawDir,
        path: path.to_string(),
        zstd: false,
        records: Records::Pages(Box::new(merge)),
        diagnostics: Diagnostics::default(),
    }))
}

/// [`open_source`] with a `/proc/kallsyms` copy for captures that carry none (perf.data).
pub fn open_source_with(
    path: &str,
    stream: Box<dyn Read + Send>,
    format: Format,
    kallsyms: Option<&Path>,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    open_source_opts(path, stream, format, kallsyms, false)
}

/// [`open_source_with`]; `strict`: a damaged perf.data is an error, not a counted tail.
pub fn open_source_opts(
    path: &str,
    stream: Box<dyn Read + Send>,
    format: Format,
    kallsyms: Option<&Path>,
    strict: bool,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    if format == Format::RawDir {
        return Err(raw_dir_is_a_directory(path));
    }
    let bytes = Backing::spill(path, stream).map_err(|e| to_parse_error(path, e))?;
    open_backing(path, bytes, format, kallsyms, strict)
}

fn raw_dir_is_a_directory(path: &str) -> ParseError {
    to_parse_error(
        path,
        BinaryError::Invalid {
            what: "raw capture",
            offset: 0,
            msg: "a raw capture is a directory (events/, per_cpu/), not a file".into(),
        },
    )
}

/// [`open_source_opts`] over bytes already mapped (or spilled): nothing is copied.
pub fn open_backing(
    path: &str,
    bytes: Backing,
    format: Format,
    kallsyms: Option<&Path>,
    strict: bool,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    open_backing_z(path, bytes, format, kallsyms, strict, false)
}

/// [`open_backing`]; `zstd`: `bytes` were decompressed from a zstd file (errors say so).
pub(crate) fn open_backing_z(
    path: &str,
    bytes: Backing,
    format: Format,
    kallsyms: Option<&Path>,
    strict: bool,
    zstd: bool,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    if format == Format::RawDir {
        return Err(raw_dir_is_a_directory(path));
    }
    let mut opts = read_options(path, kallsyms)?;
    opts.strict = strict;
    let stream =
        BinaryStream::open(Arc::new(bytes), &opts).map_err(|e| to_parse_error_z(path, e, zstd))?;
    Ok(Box::new(BinarySource {
        format,
        path: path.to_string(),
        zstd,
        records: Records::Stream(Box::new(stream)),
        diagnostics: Diagnostics::default(),
    }))
}

impl RecordSource for BinarySource {
    fn format(&self) -> Format {
        self.format
    }

    fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        match &mut self.records {
            Records::Stream(s) => s
                .next_record()
                .map_err(|e| to_parse_error_z(&self.path, e, self.zstd)),
            Records::Pages(m) => m
                .next_record()
                .map_err(|e| to_parse_error_z(&self.path, e, self.zstd)),
        }
    }

    fn diagnostics(&self) -> Diagnostics {
        let mut diagnostics = self.diagnostics.clone();
        let Records::Stream(s) = &self.records else {
            return diagnostics;
        };
        diagnostics.capture = s.facts();
        for e in &s.format_errors() {
            diagnostics.unparsed_lines += 1;
            *diagnostics
                .unparsed_by_kind
                .entry("format_file".into())
                .or_default() += 1;
            if diagnostics.first_unparsed.len() < 5 {
                diagnostics.first_unparsed.push(e.to_string());
            }
        }
        diagnostics
    }
}
