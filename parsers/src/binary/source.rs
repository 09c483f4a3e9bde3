//! Adapter from the binary readers to the text helper's [`crate::input::RecordSource`], so
//! `input::open` (and so `mmreplay stats`) reads trace.dat and perf.data through the same door as
//! text. It must never stream-parse: binary containers need random access, so the (already
//! decompressed) stream is read into memory once.

use std::io::Read;

use super::{read_bytes, BinaryCapture, BinaryError};
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
    mut stream: Box<dyn Read + Send>,
    format: Format,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
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
        ..
    } = read_bytes(&data).map_err(|e| to_parse_error(path, e))?;
    let mut diagnostics = Diagnostics::default();
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
