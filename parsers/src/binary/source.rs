//! Adapter from the binary readers to the text helper's [`crate::input::RecordSource`], so
//! `input::open` (and so `mmreplay stats`) reads trace.dat and perf.data through the same door as
//! text. It must never stream-parse: binary containers need random access, so the (already
//! decompressed) stream is read into memory once.

use std::io::Read;
use std::path::Path;

use super::{read_bytes_with, BinaryCapture, BinaryError, ReadOptions};
use crate::error::ParseError;
use crate::input::{Diagnostics, Format, RecordSource};
use crate::record::Record;

/// Yields the records of a decoded binary capture in time order.
pub struct BinarySource {
    format: Format,
    records: std::vec::IntoIter<Record>,
    diagnostics: Diagnostics,
}

impl BinaryError {
    /// The byte offset the error names, when it names one.
    pub fn offset(&self) -> u64 {
        match self {
            BinaryError::Truncated { offset, .. }
            | BinaryError::Invalid { offset, .. }
            | BinaryError::Decompress { offset, .. } => *offset,
            BinaryError::InFile { source, .. } => source.offset(),
            _ => 0,
        }
    }
}

fn to_parse_error(path: &str, e: BinaryError) -> ParseError {
    ParseError::Read {
        path: path.to_string(),
        offset: e.offset(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
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
    let records = super::rawdir::read_raw_dir_with(Path::new(path), &opts)
        .map_err(|e| to_parse_error(path, e))?;
    Ok(Box::new(BinarySource {
        format: Format::RawDir,
        records: records.into_iter(),
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
    mut stream: Box<dyn Read + Send>,
    format: Format,
    kallsyms: Option<&Path>,
    strict: bool,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    if format == Format::RawDir {
        return Err(to_parse_error(
            path,
            BinaryError::Invalid {
                what: "raw capture",
                offset: 0,
                msg: "a raw capture is a directory (events/, per_cpu/), not a file".into(),
            },
        ));
    }
    let mut opts = read_options(path, kallsyms)?;
    opts.strict = strict;
    let mut data = Vec::new();
    stream
        .read_to_end(&mut data)
        .map_err(|source| ParseError::Read {
            path: path.to_string(),
            offset: data.len() as u64,
            source,
        })?;
    let BinaryCapture {
        records,
        format_errors,
        facts,
        ..
    } = read_bytes_with(&data, &opts).map_err(|e| to_parse_error(path, e))?;
    let mut diagnostics = Diagnostics {
        capture: facts,
        ..Diagnostics::default()
    };
    for e in &format_errors {
        diagnostics.unparsed_lines += 1;
        *diagnostics
            .unparsed_by_kind
            .entry("format_file".into())
            .or_default() += 1;
        if diagnostics.first_unparsed.len() < 5 {
            diagnostics.first_unparsed.push(e.to_string());
        }
    }
    Ok(Box::new(BinarySource {
        format,
        records: records.into_iter(),
        diagnostics,
    }))
}

impl RecordSource for BinarySource {
    fn format(&self) -> Format {
        self.format
    }

    fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        Ok(self.records.next())
    }

    fn diagnostics(&self) -> Diagnostics {
        self.diagnostics.clone()
    }
}
