//! The leaf every reader depends on: the [`Format`]s this crate knows and their magic bytes,
//! reader [`Options`], the [`RecordSource`] trait every reader implements and the
//! [`Diagnostics`] it reports (with a binary capture's own [`CaptureFacts`]).
//!
//! The text reader (`text::reader`), the binary readers (`binary::source`) and the compiled
//! `.mmr` reader (`mmr`) each depend on this module and never on each other or on `input`
//! (which opens a file and dispatches to them). Must never depend on a reader, and never hold
//! logic beyond recognising magic bytes.

use crate::error::ParseError;
use crate::merge::Window;
use crate::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// A compiled `.mmr` file (`mmreplay compile`, see [`crate::mmr`]).
    Mmr,
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
            Format::Mmr => "mmr",
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
            "mmr" | "compiled" => Format::Mmr,
            other => return Err(ParseError::UnknownFormatName(other.to_string())),
        })
    }
}

/// zstd frame magic (an outer `.zst` around any capture, trace.dat v7 sections, `.mmr` chunks).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Largest zstd window (log2) a compressed input may ask for: 2^27 = 128 MiB, libzstd's
/// default, so a frame cannot make the decoder allocate more.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// trace.dat's magic (`tracecmd_read_headers`: `\x17\x08Dtracing`, then the version text).
pub const TRACE_DAT_MAGIC: &[u8] = b"\x17\x08\x44tracing";
/// perf.data's magic, little- and big-endian (`PERF_MAGIC2`).
pub const PERF_MAGICS: [&[u8; 8]; 2] = [b"PERFILE2", b"2ELIFREP"];
/// A compiled `.mmr` file's magic.
pub const MMR_MAGIC: &[u8; 8] = b"MMRCORP\0";

/// The binary format `head` (already past any outer zstd) starts with, from its magic bytes:
/// the one place magic numbers are recognised (`input::sniff` adds the text heuristics,
/// `binary::sniff` the trace.dat version and perf mode).
pub fn sniff_magic(head: &[u8]) -> Option<Format> {
    if head.starts_with(TRACE_DAT_MAGIC) && matches!(head.get(10..12), Some(b"6\0" | b"7\0")) {
        return Some(Format::TraceDat);
    }
    if PERF_MAGICS.iter().any(|m| head.starts_with(*m)) {
        return Some(Format::PerfData);
    }
    if head.starts_with(MMR_MAGIC) {
        return Some(Format::Mmr);
    }
    None
}

/// Whether `head` is the start of a zstd frame.
pub fn is_zstd(head: &[u8]) -> bool {
    head.starts_with(&ZSTD_MAGIC)
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
/// A compiled `.mmr` carries the one of the capture it was compiled from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureFacts>,
}

/// What a binary capture says about itself beyond its records: the program that wrote it, the
/// CPU count it states, and what the reader could not read (where, how much, why). Carried to
/// `mmreplay stats` (`capture` key) and to `replay` (CPU count); filled by
/// `binary::facts` (perf.data only for now; trace.dat states its CPUs in its header).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureFacts {
    /// `perf`, `perf (legacy event_types)`, `perf (pipe mode)`, `simpleperf`.
    pub producer: String,
    /// perf's HEADER_VERSION or simpleperf's `simpleperf_version`, when stated.
    pub producer_version: Option<String>,
    /// CPUs online when recorded (perf HEADER_NRCPUS); None when the capture does not say.
    pub nr_cpus: Option<u32>,
    /// Byte offset where the record stream broke; every record before it was read.
    pub damaged_at: Option<u64>,
    /// Bytes from `damaged_at` to the end of the record stream, not read.
    pub damaged_bytes: u64,
    pub damage: Option<String>,
    /// Records stepped over, by kind (`auxtrace`, `unparsable_type_N`, ...).
    pub skipped_records: BTreeMap<String, u64>,
    /// AUX payload bytes stepped over (Intel PT / CoreSight data).
    pub aux_bytes: u64,
    /// Tolerated header oddities, each with its byte offset.
    pub notes: Vec<String>,
}

/// A source of time-ordered [`Record`]s.
pub trait RecordSource {
    fn format(&self) -> Format;
    /// The next record, `Ok(None)` at the end.
    fn next_record(&mut self) -> Result<Option<Record>, ParseError>;
    /// Appends up to `max` next records to `out`, in order, and says how many; `Ok(0)` at the
    /// end. The hot path for consumers that look at each record once (`stats`, lowering,
    /// `compile`): one dynamic call per batch instead of per record, and readers that override
    /// it move records straight into the caller's reused buffer. On `Err`, `out` holds the
    /// records read before the error, exactly as calling [`Self::next_record`] until it failed
    /// would have given them (same records, same order).
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<usize, ParseError> {
        let mut n = 0;
        while n < max {
            match self.next_record()? {
                Some(r) => out.push(r),
                None => break,
            }
            n += 1;
        }
        Ok(n)
    }
    /// Counters so far (complete once `next_record` returned `Ok(None)`).
    fn diagnostics(&self) -> Diagnostics;
    /// The CPU count the input states about itself, when it does (a compiled `.mmr`'s
    /// header; a perf.data's HEADER_NRCPUS is in [`Diagnostics::capture`]).
    fn stated_cpus(&self) -> Option<u32> {
        None
    }
    /// The format as reports name it (a `.mmr`: `compiled (SOURCE FORMAT)`).
    fn format_name(&self) -> String {
        self.format().name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(sniff_magic(b"\x17\x08Dtracing6\0"), Some(Format::TraceDat));
        assert_eq!(sniff_magic(b"\x17\x08Dtracing7\0"), Some(Format::TraceDat));
        assert_eq!(sniff_magic(b"\x17\x08Dtracing8\0"), None);
        assert_eq!(sniff_magic(b"PERFILE2"), Some(Format::PerfData));
        assert_eq!(sniff_magic(b"2ELIFREP"), Some(Format::PerfData));
        assert_eq!(sniff_magic(b"MMRCORP\0\x05"), Some(Format::Mmr));
        assert_eq!(sniff_magic(b"MMRCORP"), None);
        assert!(is_zstd(&ZSTD_MAGIC) && !is_zstd(b"# tracer"));
        for f in [
            Format::Ftrace,
            Format::TraceCmd,
            Format::PerfScript,
            Format::TraceDat,
            Format::PerfData,
            Format::RawDir,
            Format::Mmr,
        ] {
            assert_eq!(Format::from_name(f.name()).unwrap(), f);
        }
    }
}
