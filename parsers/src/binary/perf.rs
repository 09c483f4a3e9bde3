//! perf.data of every producer (perf file mode of any version, perf 3.x with the legacy
//! `event_types` section, perf pipe mode, simpleperf) with tracepoint samples: TRACING_DATA gives
//! the format files, `attr.config` is the tracepoint id, PERF_SAMPLE_RAW is the ftrace record,
//! comm comes from COMM/FORK records (then the tracing data's saved_cmdlines).
//!
//! The metadata is read by `perf_layout.rs` (which also recognises the producer) and the
//! records by our own walk (`perf_fast.rs`), which keeps every record before damage and says
//! where it stopped (see its damage rule); `strict` makes any damage, skipped record or header
//! oddity an error. linux-perf-data's record iterator is kept as a cross-check
//! ([`read_perf_crate_path`]) and as the fallback for attr layouts our walk does not map.
//!
//! Pipe mode (crate path): linux-perf-data reads only `header.size` bytes of
//! PERF_RECORD_HEADER_TRACING_DATA (66), but perf writes the tracing data right after that
//! record, outside `header.size` (`perf_event__process_tracing_data`). The crate path pre-scans
//! the pipe stream, takes the tracing data out and hands the rest to the crate.
//! It must never trust a size field beyond the bytes that are present.

use linux_perf_data::linux_perf_event_reader::{EventRecord, PerfEventType, RecordType};
use linux_perf_data::{Feature, PerfFileReader, PerfFileRecord};

use super::bytes::{Cursor, Endian};
use super::decode::Decoder;
use super::meta::Meta;
use super::BinaryError;

#[path = "perf_fast.rs"]
mod fast;
use super::perf_layout::{self as layout, Note, Producer};
use crate::record::{Comm, Event, Record};
pub use fast::{Damage, MAX_ARENA_BYTES, MAX_HELD_BYTES};

const PERF_RECORD_HEADER_TRACING_DATA: u32 = 66;

/// What the file says about itself.
#[derive(Clone, Debug, Default)]
pub struct PerfInfo {
    pub pipe: bool,
    /// Event names (from EVENT_DESC when present) per attr.
    pub attr_names: Vec<String>,
    /// Tracepoint id per attr (None for non-tracepoint attrs).
    pub attr_tracepoints: Vec<Option<u64>>,
    pub samples: u64,
    /// Samples of non-tracepoint attrs or without RAW data (not turned into records).
    pub skipped_samples: u64,
    pub comm_records: u64,
    pub lost_records: u64,
    /// Whether the records came from our record walk (`perf_fast.rs`) rather than the
    /// linux-perf-data record iterator (the cross-check, and attr layouts the walk cannot map).
    pub fast_path: bool,
    /// The program that wrote the file (None on the crate path).
    pub producer: Option<Producer>,
    /// perf's HEADER_VERSION or simpleperf's version string.
    pub version: Option<String>,
    /// CPUs online when recorded (HEADER_NRCPUS), when the file says.
    pub nr_cpus: Option<u32>,
    /// Where the record stream broke; every record before it was kept.
    pub damage: Option<Damage>,
    /// Records stepped over by kind (AUXTRACE, bodies that do not parse).
    pub skipped_records: std::collections::BTreeMap<String, u64>,
    /// AUX payload bytes stepped over (Intel PT / CoreSight data: not tracepoints).
    pub aux_bytes: u64,
    /// Tolerated header oddities (ids or feature sections outside the file, ...).
    pub notes: Vec<Note>,
}

/// The note of rounds released early ([`fast::MAX_HELD_BYTES`]).
fn early_release_msg(n: u64) -> String {
    format!(
        "compressed records held over the {}-byte cap without a FINISHED_ROUND: the oldest half \
         released early {n} times (time order across those releases not guaranteed)",
        fast::MAX_HELD_BYTES
    )
}

/// Whether `data` starts like perf.data (`PERFILE2` / `2ELIFREP`).
pub fn is_perf_data(data: &[u8]) -> bool {
    crate::source::sniff_magic(data) == Some(crate::Format::PerfData)
}

fn perr(e: impl std::fmt::Display) -> BinaryError {
    BinaryError::Perf(e.to_string())
}

/// Reads a whole perf.data (either mode) into time-ordered records.
pub fn read_perf(data: &[u8]) -> Result<(PerfInfo, Vec<Record>), BinaryError> {
    read_perf_with(data, None)
}

/// Like [`read_perf`], with kallsyms to use when the file has none: perf's TRACING_DATA carries
/// an empty kallsyms (perf 5.12 and 6.1 files checked), so IPI callbacks of a perf.data can only
/// be named from a `/proc/kallsyms` copy of the recording boot. Without it they are `Other`.
pub fn read_perf_with(
    data: &[u8],
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
) -> Result<(PerfInfo, Vec<Record>), BinaryError> {
    read_perf_opts(data, kallsyms, true, false)
}

/// [`read_perf_with`]; `strict`: damage, skipped records and header oddities are errors instead
/// of being counted in [`PerfInfo`].
pub fn read_perf_checked(
    data: &[u8],
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
    strict: bool,
) -> Result<(PerfInfo, Vec<Record>), BinaryError> {
    read_perf_opts(data, kallsyms, true, strict)
}

/// [`read_perf_with`] always through linux-perf-data's record iterator, never the fast path
/// (`perf_fast.rs`): kept so that tests can check both give identical Records.
pub fn read_perf_crate_path(
    data: &[u8],
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
) -> Result<(PerfInfo, Vec<Record>), BinaryError> {
    read_perf_opts(data, kallsyms, false, false)
}

fn read_perf_opts(
    data: &[u8],
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
    fast: bool,
    strict: bool,
) -> Result<(PerfInfo, Vec<Record>), BinaryError> {
    // linux-perf-data / linux-perf-event-reader still hold asserts reachable from input (e.g.
    // `Mmap2Record::parse` asserts a build-id length; found by fuzz_binary). Records we do not
    // need are never parsed, and any remaining panic in the crates becomes an error here.
    std::panic::catch_unwind(|| {
        if fast {
            read_perf_walk(data, kallsyms, strict)
        } else {
            read_perf_crate(data, kallsyms)
        }
    })
    .unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(BinaryError::Perf(format!(
            "malformed input made the perf.data reader crate fail: {msg}"
        )))
    })
}

/// The tracing data's metadata (format files, ...), or an empty one when there is none.
fn meta_for(
    tracing: Option<&[u8]>,
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
) -> Result<Meta, BinaryError> {
    let mut meta = match tracing {
        Some(t) => {
            let (version, mut meta, mut c) = Meta::parse_initial(t)?;
            meta.parse_v6_body(&mut c, version != "0.5")?;
            meta
        }
        None => Meta::new(Endian::Little, 8, 4096),
    };
    if let Some(k) = kallsyms.filter(|_| meta.kallsyms.is_empty()) {
        meta.kallsyms = k;
    }
    Ok(meta)
}

/// Our reader: metadata by `perf_layout`, records by our walk (the whole-capture form of
/// [`PerfStream`]; it copies the input once).
fn read_perf_walk(
    data: &[u8],
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
    strict: bool,
) -> Result<(PerfInfo, Vec<Record>), BinaryError> {
    let bytes = std::sync::Arc::new(super::backing::Backing::from_vec(data.to_vec()));
    match PerfStream::open(bytes, kallsyms, strict)? {
        PerfOpen::Whole(info, records) => Ok((*info, records)),
        PerfOpen::Stream(mut s) => {
            let mut out = Vec::new();
            while let Some(r) = s.next_record()? {
                out.push(r);
            }
            Ok((s.info(), out))
        }
    }
}

/// What [`PerfStream::open`] gives: a lazy stream, or (big-endian files and attr layouts only
/// linux-perf-data maps) the records read whole by the crate.
pub enum PerfOpen {
    Stream(Box<PerfStream>),
    Whole(Box<PerfInfo>, Vec<Record>),
}

/// perf.data records pulled one round (FINISHED_ROUND) at a time over the capture's bytes:
/// memory holds the unreleased rounds, not the capture (see `perf_fast.rs`).
pub struct PerfStream {
    bytes: std::sync::Arc<super::backing::Backing>,
    walker: fast::Walker,
    sink: Sink,
    dec: Decoder,
    meta: Meta,
    strict: bool,
    finished: bool,
}

impl PerfStream {
    /// Reads the metadata and positions the walk at the first record.
    pub fn open(
        bytes: std::sync::Arc<super::backing::Backing>,
        kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
        strict: bool,
    ) -> Result<PerfOpen, BinaryError> {
        let data: &[u8] = &bytes;
        if data.starts_with(b"2ELIFREP") {
            // Big-endian (PowerPC, s390 recorders): the crate swaps attr bitfields; ours does not.
            let (i, r) = read_perf_opts(data, kallsyms, false, strict)?;
            return Ok(PerfOpen::Whole(Box::new(i), r));
        }
        let l = catch(|| layout::parse(data))?;
        if strict {
            if let Some(n) = l.notes.first() {
                return Err(BinaryError::Invalid {
                    what: "perf.data header (--strict)",
                    offset: n.offset,
                    msg: n.msg.clone(),
                });
            }
        }
        let mut info = PerfInfo {
            pipe: l.producer == Producer::PerfPipe,
            producer: Some(l.producer),
            version: l.version.clone(),
            nr_cpus: l.nr_cpus,
            notes: l.notes.clone(),
            ..PerfInfo::default()
        };
        for a in &l.attrs {
            info.attr_names.push(a.name.clone().unwrap_or_default());
            info.attr_tracepoints.push(match a.attr.type_ {
                PerfEventType::Tracepoint(id) => Some(id),
                _ => None,
            });
        }
        if l.tracing.is_none() && info.attr_tracepoints.iter().any(Option::is_some) {
            return Err(BinaryError::Invalid {
                what: "perf.data",
                offset: 0,
                msg: format!(
                    "tracepoint events but no tracing data (format files) in this {} file{}",
                    l.producer.name(),
                    // Why, when the header says (a recorder killed before writing its features).
                    l.notes
                        .first()
                        .map(|n| format!("; byte {}: {}", n.offset, n.msg))
                        .unwrap_or_default()
                ),
            });
        }
        let meta = meta_for(l.tracing.as_deref(), kallsyms.clone())?;
        let dec = Decoder::new(&meta);
        let stream = fast::Stream {
            data,
            endian: l.endian,
            records: l.records.clone(),
            pipe: l.producer == Producer::PerfPipe,
            simpleperf: l.producer == Producer::Simpleperf,
            attrs: &l.attrs,
        };
        let walker = match fast::Walker::new(&stream) {
            Ok(w) => w,
            Err(fast::Unsupported) => {
                // The crate refuses these attr layouts too; it says why.
                let (mut info, records) = read_perf_opts(data, kallsyms, false, false)?;
                info.producer = Some(l.producer);
                info.nr_cpus = l.nr_cpus;
                return Ok(PerfOpen::Whole(Box::new(info), records));
            }
        };
        Ok(PerfOpen::Stream(Box::new(PerfStream {
            sink: Sink::new(info),
            walker,
            dec,
            meta,
            strict,
            finished: false,
            bytes,
        })))
    }

    /// What the file said so far (complete at the end of the stream).
    pub fn info(&self) -> PerfInfo {
        let mut info = self.sink.info.clone();
        let end = self.walker.end();
        info.fast_path = true;
        info.aux_bytes = end.aux_bytes;
        info.skipped_records = end.skipped.clone();
        info.damage = end.damage.clone();
        if let Some(at) = end.first_early_release {
            info.notes.push(Note {
                offset: at,
                msg: early_release_msg(end.early_releases),
            });
        }
        info
    }

    /// Records decoded and not yet returned (the bound the tests check).
    pub fn buffered(&self) -> usize {
        self.sink.out.len() + self.walker.ready_left()
    }

    /// The next record in the crate's order, `Ok(None)` at the end; with `strict`, damage or
    /// an unparsable record is an error at the end of the records before it.
    pub fn next_record(&mut self) -> Result<Option<Record>, BinaryError> {
        loop {
            if let Some(r) = self.sink.out.pop_front() {
                return Ok(Some(r));
            }
            let PerfStream {
                bytes,
                walker,
                sink,
                dec,
                meta,
                ..
            } = self;
            // One released record at a time (at most one `Record` each), so records go from
            // the input to the caller without a round-sized buffer of `Record`s.
            match catch(|| Ok(walker.emit_next(bytes, &mut |i, r| sink.rec(i, r, dec, meta)))) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.finished = true;
                    self.walker.drop_ready();
                    self.sink.out.clear();
                    return Err(e);
                }
            }
            if self.finished {
                return Ok(None);
            }
            let (bytes, walker) = (&self.bytes, &mut self.walker);
            let more = catch(|| Ok(walker.step(bytes, Some(bytes))));
            match more {
                Ok(true) => {}
                Ok(false) => {
                    self.finished = true;
                    self.strict_check()?;
                }
                Err(e) => {
                    self.finished = true;
                    self.sink.out.clear();
                    return Err(e);
                }
            }
        }
    }

    fn strict_check(&self) -> Result<(), BinaryError> {
        if !self.strict {
            return Ok(());
        }
        let end = self.walker.end();
        if let Some(d) = &end.damage {
            return Err(BinaryError::Invalid {
                what: "perf.data records (--strict)",
                offset: d.offset,
                msg: format!("{}; {} bytes from here not read", d.reason, d.bytes),
            });
        }
        if let Some(at) = end.first_early_release {
            return Err(BinaryError::Invalid {
                what: "perf.data records (--strict)",
                offset: at,
                msg: early_release_msg(end.early_releases),
            });
        }
        if let Some(at) = end.first_unparsable {
            return Err(BinaryError::Invalid {
                what: "perf.data records (--strict)",
                offset: at.unwrap_or(0),
                msg: format!(
                    "record body does not parse{}",
                    if at.is_none() {
                        " (inside compressed data)"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(())
    }
}

/// Runs `f`, turning a panic of linux-perf-data / linux-perf-event-reader (asserts reachable
/// from input) into an error.
fn catch<T>(f: impl FnOnce() -> Result<T, BinaryError>) -> Result<T, BinaryError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(BinaryError::Perf(format!(
            "malformed input made the perf.data reader crate fail: {msg}"
        )))
    })
}

/// linux-perf-data's record iterator (the cross-check and the fallback).
fn read_perf_crate(
    data: &[u8],
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
) -> Result<(PerfInfo, Vec<Record>), BinaryError> {
    let endian = match data.get(..8) {
        Some(b"PERFILE2") => Endian::Little,
        Some(b"2ELIFREP") => Endian::Big,
        _ => return Err(BinaryError::BadMagic { what: "perf.data" }),
    };
    let mut c = Cursor::new(data, 0, endian, "perf.data header");
    c.skip(8, "magic")?;
    let header_size = c.u64("header size")?;
    let mut info = PerfInfo {
        pipe: header_size == 16,
        ..PerfInfo::default()
    };
    if info.pipe {
        let (stream, tracing) = split_pipe(data, endian)?;
        let reader = PerfFileReader::parse_pipe(std::io::Cursor::new(stream)).map_err(perr)?;
        let records = run(
            data.len(),
            reader,
            tracing.as_deref(),
            kallsyms.clone(),
            &mut info,
        )?;
        Ok((info, records))
    } else {
        validate_file_header(data, endian)?;
        check_auxtrace_sizes(data)?;
        let reader = PerfFileReader::parse_file(std::io::Cursor::new(data)).map_err(perr)?;
        let tracing = reader
            .perf_file
            .feature_section_data(Feature::TRACING_DATA)
            .map(<[u8]>::to_vec);
        let records = run(
            data.len(),
            reader,
            tracing.as_deref(),
            kallsyms.clone(),
            &mut info,
        )?;
        Ok((info, records))
    }
}

/// Checks the file-mode header and feature-section table against the file size before
/// linux-perf-data sees them: the crate allocates `vec![0; size]` from these sizes.
/// Layout per tools/perf/Documentation/perf.data-file-format.txt (`struct perf_file_header`).
fn validate_file_header(data: &[u8], endian: Endian) -> Result<(), BinaryError> {
    let len = data.len() as u64;
    let mut c = Cursor::new(data, 0, endian, "perf.data header");
    c.skip(8, "magic")?;
    let header_size = c.u64("header size")?;
    let attr_size = c.u64("attr size")?;
    let mut sections = [(0u64, 0u64); 3];
    for (i, s) in sections.iter_mut().enumerate() {
        let at = c.file_offset();
        *s = (c.u64("section offset")?, c.u64("section size")?);
        if s.0.checked_add(s.1).is_none_or(|end| end > len) {
            return Err(BinaryError::Invalid {
                what: "perf.data header",
                offset: at,
                msg: format!(
                    "{} section [{}, +{}) is outside the {len}-byte file",
                    ["attrs", "data", "event_types"][i],
                    s.0,
                    s.1
                ),
            });
        }
    }
    if header_size < 104 || header_size > len {
        return Err(BinaryError::Invalid {
            what: "perf.data header",
            offset: 8,
            msg: format!("header size {header_size}, expected 104..file size"),
        });
    }
    let attrs = sections[0].1;
    // PERF_ATTR_SIZE_VER0 is 64; the crate sizes a vector by attrs / attr_size.
    if !(64..=4096).contains(&attr_size) || (attrs != 0 && attr_size > attrs) {
        return Err(BinaryError::Invalid {
            what: "perf.data header",
            offset: 16,
            msg: format!("attr size {attr_size} (attrs section {attrs} bytes)"),
        });
    }
    // The old event_types section: (attr, ids section) entries; the crate sizes id vectors from
    // the ids sections. (The attrs section's ids are not read by the crate.)
    {
        let (off, size) = sections[2];
        let entry = attr_size + 16;
        for i in 0..size / entry {
            let at = off + i * entry + attr_size;
            let mut e = Cursor::new(
                data.get(at as usize..).unwrap_or(&[]),
                at,
                endian,
                "perf.data attrs",
            );
            let (ioff, isize) = (e.u64("ids offset")?, e.u64("ids size")?);
            if ioff.checked_add(isize).is_none_or(|end| end > len) {
                return Err(BinaryError::Invalid {
                    what: "perf.data attrs",
                    offset: at,
                    msg: format!("ids section [{ioff}, +{isize}) is outside the {len}-byte file"),
                });
            }
        }
    }
    let mut bits = [0u64; 4];
    for b in &mut bits {
        *b = c.u64("feature bits")?;
    }
    let table = sections[1].0 + sections[1].1;
    let start = usize::try_from(table).unwrap_or(usize::MAX);
    let mut t = Cursor::new(
        data.get(start..).unwrap_or(&[]),
        table,
        endian,
        "perf.data feature table",
    );
    for feat in (0..256u32).filter(|i| {
        bits.get((i / 64) as usize)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }) {
        let at = t.file_offset();
        let (off, size) = (t.u64("feature offset")?, t.u64("feature size")?);
        if off.checked_add(size).is_none_or(|end| end > len) {
            return Err(BinaryError::Invalid {
                what: "perf.data feature table",
                offset: at,
                msg: format!("feature section [{off}, +{size}) is outside the {len}-byte file"),
            });
        }
        if feat == FEATURE_EVENT_DESC {
            let body = data.get(off as usize..(off + size) as usize).unwrap_or(&[]);
            validate_event_desc(body, off, endian)?;
        }
    }
    Ok(())
}

/// `HEADER_EVENT_DESC` feature bit.
const FEATURE_EVENT_DESC: u32 = 12;
const PERF_RECORD_HEADER_FEATURE: u32 = 80;

/// Walks an EVENT_DESC section checking every count and length against the bytes left
/// (linux-perf-data sizes vectors from them before reading).
fn validate_event_desc(body: &[u8], base: u64, endian: Endian) -> Result<(), BinaryError> {
    let mut c = Cursor::new(body, base, endian, "perf.data EVENT_DESC");
    let nr = c.u32("event count")?;
    let attr_size = c.u32("attr size")?;
    if u64::from(nr) * (u64::from(attr_size) + 8) > c.remaining() as u64 {
        return Err(BinaryError::Invalid {
            what: "perf.data EVENT_DESC",
            offset: base,
            msg: format!(
                "{nr} events of {attr_size}-byte attrs do not fit in {} bytes",
                body.len()
            ),
        });
    }
    for _ in 0..nr {
        c.skip(u64::from(attr_size), "attr")?;
        let nr_ids = c.u32("id count")?;
        let slen = c.u32("name length")?;
        c.skip(u64::from(slen), "event name")?;
        c.skip(u64::from(nr_ids) * 8, "ids")?;
    }
    Ok(())
}

const PERF_RECORD_AUXTRACE: u32 = 71;

/// Checks the `size` of every PERF_RECORD_AUXTRACE (71) record of a file-mode data section
/// against the bytes left in the file: linux-perf-data resizes a buffer to that size before
/// reading the AUX data (found by fuzz_binary: a 1.6 TB allocation). Stops quietly where the
/// walk cannot continue (the crate then reports the broken record itself).
fn check_auxtrace_sizes(data: &[u8]) -> Result<(), BinaryError> {
    let endian = match data.get(..8) {
        Some(b"2ELIFREP") => Endian::Big,
        _ => Endian::Little,
    };
    let mut h = Cursor::new(data, 0, endian, "perf.data header");
    h.skip(40, "header")?;
    let (off, size) = (h.u64("data offset")?, h.u64("data size")?);
    let Some(start) = usize::try_from(off).ok().filter(|&o| o <= data.len()) else {
        return Ok(());
    };
    let mut c = Cursor::new(data, 0, endian, "perf.data records");
    c.seek(start)?;
    let end = off.saturating_add(size);
    while (c.pos() as u64) < end && c.remaining() >= 8 {
        let at = c.pos();
        let ty = c.u32("record type")?;
        let _misc = c.u16("record misc")?;
        let rsize = c.u16("record size")?;
        if rsize < 8 || c.remaining() < usize::from(rsize) - 8 {
            return Ok(());
        }
        if ty == PERF_RECORD_AUXTRACE {
            let aux = super::bytes::read_uint(c.rest(), 0, 8, endian).unwrap_or(0);
            let left = c.remaining().saturating_sub(usize::from(rsize) - 8) as u64;
            if aux > left {
                return Err(BinaryError::Invalid {
                    what: "perf.data AUXTRACE record",
                    offset: at as u64,
                    msg: format!("AUX data size {aux}, only {left} bytes left in the file"),
                });
            }
            // The AUX data follows the record, outside its size (as the crate reads it).
            c.skip(u64::from(rsize) - 8 + aux, "AUX data")?;
        } else {
            c.skip(u64::from(rsize) - 8, "record body")?;
        }
    }
    Ok(())
}

/// Copies the pipe stream without PERF_RECORD_HEADER_TRACING_DATA records and returns the
/// tracing data that followed them.
fn split_pipe(data: &[u8], endian: Endian) -> Result<(Vec<u8>, Option<Vec<u8>>), BinaryError> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(data.get(..16).unwrap_or(data));
    let mut tracing = None;
    let mut c = Cursor::new(data, 0, endian, "perf pipe stream");
    c.skip(16, "pipe header")?;
    while c.remaining() >= 8 {
        let start = c.pos();
        let ty = c.u32("record type")?;
        let _misc = c.u16("record misc")?;
        let size = c.u16("record size")?;
        if size < 8 {
            return Err(BinaryError::Invalid {
                what: "perf pipe stream",
                offset: start as u64,
                msg: format!("record size {size} < 8"),
            });
        }
        c.seek(start)?;
        let rec = c.take(u64::from(size), "record")?;
        if ty == PERF_RECORD_HEADER_FEATURE
            && super::bytes::read_uint(rec, 8, 8, endian) == Some(u64::from(FEATURE_EVENT_DESC))
        {
            validate_event_desc(rec.get(16..).unwrap_or(&[]), start as u64 + 16, endian)?;
        }
        if ty == PERF_RECORD_AUXTRACE {
            // As check_auxtrace_sizes: the crate sizes a buffer from this before reading.
            let aux = super::bytes::read_uint(rec, 8, 8, endian).unwrap_or(0);
            if aux > c.remaining() as u64 {
                return Err(BinaryError::Invalid {
                    what: "perf pipe AUXTRACE record",
                    offset: start as u64,
                    msg: format!("AUX data size {aux}, only {} bytes left", c.remaining()),
                });
            }
        }
        if ty == PERF_RECORD_HEADER_TRACING_DATA {
            let len = super::bytes::read_uint(rec, 8, 4, endian).ok_or(BinaryError::Invalid {
                what: "perf pipe stream",
                offset: start as u64,
                msg: "TRACING_DATA record without a size".into(),
            })?;
            let t = c.take(len, "tracing data after HEADER_TRACING_DATA")?;
            let pad = (8 - (len % 8)) % 8;
            c.skip(pad.min(c.remaining() as u64), "tracing data padding")?;
            tracing = Some(t.to_vec());
        } else {
            out.extend_from_slice(rec);
        }
    }
    Ok((out, tracing))
}

fn run<R: std::io::Read>(
    size_hint: usize,
    reader: PerfFileReader<R>,
    tracing: Option<&[u8]>,
    kallsyms: Option<std::sync::Arc<super::meta::Kallsyms>>,
    info: &mut PerfInfo,
) -> Result<Vec<Record>, BinaryError> {
    let PerfFileReader {
        mut perf_file,
        mut record_iter,
    } = reader;
    let meta = meta_for(tracing, kallsyms)?;
    let dec = Decoder::new(&meta);
    for a in perf_file.event_attributes() {
        info.attr_names.push(a.name().unwrap_or("").to_string());
        info.attr_tracepoints.push(match a.attributes().type_ {
            PerfEventType::Tracepoint(id) => Some(id),
            _ => None,
        });
    }
    if tracing.is_none() && info.attr_tracepoints.iter().any(Option::is_some) {
        return Err(BinaryError::Invalid {
            what: "perf.data",
            offset: 0,
            msg: "tracepoint events but no TRACING_DATA (format files)".into(),
        });
    }
    let _ = size_hint;
    let mut sink = Sink::new(std::mem::take(info));
    while let Some(rec) = record_iter.next_record(&mut perf_file).map_err(perr)? {
        let PerfFileRecord::EventRecord { attr_index, record } = rec else {
            continue;
        };
        // Only the record types used below are parsed (MMAP2 parsing can panic on bad input).
        let ty = record.record_type;
        if ty != RecordType::SAMPLE
            && ty != RecordType::COMM
            && ty != RecordType::FORK
            && ty != RecordType::LOST
        {
            continue;
        }
        sink.event(attr_index, record.parse().map_err(perr)?, &dec, &meta);
    }
    *info = sink.info;
    Ok(sink.out.into())
}

/// perf's name for a thread it saw no COMM of (`:TID`), built without an allocation.
fn unknown_comm(tid: i32) -> Comm {
    let mut buf = [0u8; 16];
    let mut digits = [0u8; 11];
    let mut n = tid.unsigned_abs();
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || d == 0 {
            break;
        }
    }
    let mut len = 0;
    for &b in [b':'].iter().chain(if tid < 0 { &b"-"[..] } else { &[] }) {
        buf[len] = b;
        len += 1;
    }
    for &b in &digits[d..] {
        buf[len] = b;
        len += 1;
    }
    Comm::new(&buf[..len])
}

/// Turns parsed SAMPLE / COMM / FORK / LOST records, in file order after sorting, into Records
/// (shared by the fast path and the crate path so that both give the same Records).
struct Sink {
    info: PerfInfo,
    // Looked up once per sample: a hash map (iteration order never matters here).
    comms: crate::intern::FxHashMap<i32, Comm>,
    out: std::collections::VecDeque<Record>,
    /// Timestamp of the last record made (a LOST record takes it).
    last_ts: u64,
}

impl Sink {
    fn new(info: PerfInfo) -> Self {
        Sink {
            info,
            comms: Default::default(),
            out: Default::default(),
            last_ts: 0,
        }
    }

    /// A record of the walk: SAMPLEs read at fixed offsets, the rest parsed by the crate.
    fn rec(&mut self, attr_index: usize, r: fast::Rec<'_>, dec: &Decoder, meta: &Meta) {
        match r {
            fast::Rec::Sample(s) => self.sample(attr_index, s, dec, meta),
            fast::Rec::Parsed(ev) => self.event(attr_index, *ev, dec, meta),
        }
    }

    fn sample(&mut self, attr_index: usize, s: fast::Sample<'_>, dec: &Decoder, meta: &Meta) {
        let info = &mut self.info;
        info.samples += 1;
        let is_tp = info
            .attr_tracepoints
            .get(attr_index)
            .copied()
            .flatten()
            .is_some();
        let Some(raw) = s.raw.filter(|_| is_tp) else {
            info.skipped_samples += 1;
            return;
        };
        let tid = s.tid.unwrap_or_else(|| dec.common_pid(raw));
        let comm = self
            .comms
            .get(&tid)
            .copied()
            .or_else(|| meta.cmdlines.get(&tid).copied())
            .unwrap_or_else(|| unknown_comm(tid));
        let ts = s.timestamp.unwrap_or(0);
        self.last_ts = ts;
        self.out.push_back(Record {
            ts_ns: ts,
            cpu: s.cpu.unwrap_or(0),
            pid: tid,
            tgid: s.pid,
            comm,
            event: dec.decode(raw),
        });
    }

    fn event(&mut self, attr_index: usize, ev: EventRecord<'_>, dec: &Decoder, meta: &Meta) {
        if let EventRecord::Sample(s) = &ev {
            let raw = s.raw.map(|r| r.as_slice());
            let sample = fast::Sample {
                pid: s.pid,
                tid: s.tid,
                timestamp: s.timestamp,
                cpu: s.cpu,
                raw: raw.as_deref(),
            };
            self.sample(attr_index, sample, dec, meta);
            return;
        }
        let (info, comms, out) = (&mut self.info, &mut self.comms, &mut self.out);
        match ev {
            EventRecord::Comm(cr) => {
                info.comm_records += 1;
                comms.insert(cr.tid, Comm::new(&cr.name.as_slice()));
            }
            EventRecord::Fork(f) => {
                // perf's thread__fork: the child starts with the parent's comm.
                if let Some(c) = comms.get(&f.ptid).copied() {
                    comms.insert(f.tid, c);
                }
            }
            EventRecord::Lost(l) => {
                info.lost_records += 1;
                out.push_back(Record {
                    ts_ns: self.last_ts,
                    cpu: 0,
                    pid: -1,
                    tgid: None,
                    comm: Comm::default(),
                    event: Event::Lost {
                        count: Some(l.count),
                    },
                });
            }
            _ => {}
        }
    }
}
