//! The metadata of a perf.data, read ourselves across producers and perf versions: which
//! program wrote it, its event attributes, names, tracing data (format files), CPU count, and
//! where its record stream lies. The records themselves are walked by `perf_fast.rs`.
//!
//! Layouts followed (tools/perf/Documentation/perf.data-file-format.txt, tools/perf/util/header.c,
//! simpleperf doc/record_file_format.md and record.h):
//! - file mode: `perf_file_header` {magic, size, attr_size, attrs, data, event_types,
//!   features[256 bits]}; the attrs section holds `attr_size`-byte entries, each a
//!   `perf_event_attr` of its own ABI size (`attr.size`, 0 meaning PERF_ATTR_SIZE_VER0 = 64, up to
//!   VER8 = 136 and beyond) followed by a `perf_file_section` of its ids; the feature table
//!   (one `perf_file_section` per set bit, in bit order) sits right after the data section.
//! - perf 3.x's `event_types` section: `{u64 event_id; char name[64]}` entries naming tracepoint
//!   attrs by `attr.config` (perf_header__push_event). Not attrs: reading them as attrs is what
//!   made such files fail on "ids sections" made of the ASCII of event names.
//! - pipe mode (header size 16): metadata comes as records: HEADER_ATTR (attr + ids),
//!   HEADER_EVENT_TYPE (the event_types entry as a record), HEADER_TRACING_DATA (u32 size; the
//!   tracing data follows the record, outside its size), HEADER_BUILD_ID, HEADER_FEATURE
//!   (u64 feature id + the feature section's body), EVENT_UPDATE (names).
//! - simpleperf: feature bits from 128 (FILE, META_INFO with `simpleperf_version` and
//!   `event_type_info`, ...); the tracing data sits in a record of the data section
//!   (SIMPLE_PERF_RECORD_TRACING_DATA = 32777, or PERF_RECORD_TRACING_DATA = 66: `u32 size` then
//!   the data inside the record); records from type 32768 on store their size as
//!   `size1 << 16 | size0` in the misc and size fields.
//!
//! It must never trust a size field beyond the bytes present and never fail on what it can skip:
//! a feature section outside the file is noted and ignored; only a header that leaves nothing
//! readable (bad magic, attrs outside the file) is an error.

use std::collections::BTreeMap;
use std::ops::Range;

use linux_perf_data::linux_perf_event_reader::{Endianness, PerfEventAttr, PerfEventType};
use linux_perf_data::AttributeDescription;

use super::bytes::{read_uint, Endian};
use super::BinaryError;

/// Which program wrote the file, as recognised from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// perf file mode (feature sections, no event_types section).
    Perf,
    /// perf 3.x file mode with the legacy `event_types` section.
    PerfLegacy,
    /// perf pipe mode (`perf record -o -`).
    PerfPipe,
    /// Android simpleperf (feature bits from 128).
    Simpleperf,
}

impl Producer {
    pub fn name(self) -> &'static str {
        match self {
            Producer::Perf => "perf",
            Producer::PerfLegacy => "perf (legacy event_types)",
            Producer::PerfPipe => "perf (pipe mode)",
            Producer::Simpleperf => "simpleperf",
        }
    }
}

/// A tolerated oddity of the header, with the byte offset it was found at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub offset: u64,
    pub msg: String,
}

/// What the metadata says.
pub struct Layout {
    pub endian: Endian,
    pub producer: Producer,
    pub attrs: Vec<AttributeDescription>,
    /// CPUs online when recorded (HEADER_NRCPUS), when the file says.
    pub nr_cpus: Option<u32>,
    /// The trace-cmd style tracing data (format files), wherever the producer put it.
    pub tracing: Option<Vec<u8>>,
    /// Where the record stream lies in the file (clamped to the file).
    pub records: Range<usize>,
    /// perf's HEADER_VERSION or simpleperf's `simpleperf_version`.
    pub version: Option<String>,
    pub notes: Vec<Note>,
}

pub const PERF_RECORD_HEADER_ATTR: u32 = 64;
pub const PERF_RECORD_HEADER_EVENT_TYPE: u32 = 65;
pub const PERF_RECORD_HEADER_TRACING_DATA: u32 = 66;
pub const PERF_RECORD_EVENT_UPDATE: u32 = 78;
pub const PERF_RECORD_HEADER_FEATURE: u32 = 80;
pub const PERF_RECORD_AUXTRACE: u32 = 71;
pub const SIMPLE_PERF_RECORD_TYPE_START: u32 = 32768;
pub const SIMPLE_PERF_RECORD_TRACING_DATA: u32 = 32777;

const HEADER_TRACING_DATA: u32 = 1;
const HEADER_VERSION: u32 = 5;
const HEADER_NRCPUS: u32 = 7;
const HEADER_EVENT_DESC: u32 = 12;
const FEAT_SIMPLEPERF_START: u32 = 128;
const FEAT_SIMPLEPERF_META_INFO: u32 = 129;
/// `MAX_EVENT_NAME` of perf 3.x (`struct perf_trace_event_type`).
const MAX_EVENT_NAME: usize = 64;
const PERF_ATTR_SIZE_VER0: usize = 64;
/// `sizeof(struct perf_file_header)`.
const FILE_HEADER_SIZE: u64 = 104;

fn u64_at(d: &[u8], at: usize, e: Endian) -> Option<u64> {
    read_uint(d, at, 8, e)
}

fn u32_at(d: &[u8], at: usize, e: Endian) -> Option<u32> {
    read_uint(d, at, 4, e).map(|v| v as u32)
}

fn range_in(len: usize, off: u64, size: u64) -> Option<Range<usize>> {
    let end = off.checked_add(size)?;
    if end > len as u64 {
        return None;
    }
    Some(off as usize..end as usize)
}

/// Parses one little-endian `perf_event_attr` of `bytes.len()` bytes (its ABI size). A `size`
/// field of 0 is PERF_ATTR_SIZE_VER0 (header.c `read_attr`); fields past the ABI size read as 0.
/// Big-endian files are read by the crate path (perf.rs), which swaps attr bitfields itself.
pub fn parse_attr(bytes: &[u8], endian: Endian) -> Option<PerfEventAttr> {
    if endian != Endian::Little || bytes.len() < PERF_ATTR_SIZE_VER0 {
        return None;
    }
    let mut b = bytes.to_vec();
    let size = u32::try_from(b.len()).ok()?;
    b.get_mut(4..8)?.copy_from_slice(&size.to_le_bytes());
    PerfEventAttr::parse::<_, byteorder::LittleEndian>(&b[..])
        .ok()
        .map(|(a, _)| a)
}

/// The ABI size of the attr at the start of `entry` (`attr.size`, 0 → VER0), capped at `max`.
fn attr_abi_size(entry: &[u8], max: usize, endian: Endian) -> usize {
    let s = u32_at(entry, 4, endian).unwrap_or(0) as usize;
    let s = if s == 0 { PERF_ATTR_SIZE_VER0 } else { s };
    s.min(max)
}

pub fn endianness(e: Endian) -> Endianness {
    match e {
        Endian::Little => Endianness::LittleEndian,
        Endian::Big => Endianness::BigEndian,
    }
}

/// Reads the metadata of a perf.data of either mode.
pub fn parse(data: &[u8]) -> Result<Layout, BinaryError> {
    let endian = match data.get(..8) {
        Some(b"PERFILE2") => Endian::Little,
        Some(b"2ELIFREP") => Endian::Big,
        _ => return Err(BinaryError::BadMagic { what: "perf.data" }),
    };
    let header_size = u64_at(data, 8, endian).ok_or(BinaryError::Truncated {
        what: "perf.data header",
        field: "header size",
        offset: 8,
        need: 8,
        have: data.len().saturating_sub(8) as u64,
    })?;
    if header_size == 16 {
        Ok(parse_pipe(data, endian))
    } else {
        parse_file(data, endian, header_size)
    }
}

fn invalid(offset: u64, msg: String) -> BinaryError {
    BinaryError::Invalid {
        what: "perf.data header",
        offset,
        msg,
    }
}

fn parse_file(data: &[u8], endian: Endian, header_size: u64) -> Result<Layout, BinaryError> {
    let len = data.len();
    if header_size < FILE_HEADER_SIZE || header_size > len as u64 {
        return Err(invalid(
            8,
            format!(
                "header size {header_size}, expected {FILE_HEADER_SIZE}..{len} (the file size)"
            ),
        ));
    }
    let h = |at: usize| u64_at(data, at, endian).unwrap_or(0);
    let attr_size = h(16);
    let (attrs_off, attrs_size) = (h(24), h(32));
    let (data_off, data_size) = (h(40), h(48));
    let (et_off, et_size) = (h(56), h(64));
    let bits = [h(72), h(80), h(88), h(96)];
    let mut notes = Vec::new();

    // Attrs: every later step needs them, so they must be whole.
    if !(PERF_ATTR_SIZE_VER0 as u64 + 16..=4096).contains(&attr_size) {
        return Err(invalid(
            16,
            format!("attr size {attr_size}, expected 80..4096 (perf_event_attr + ids section)"),
        ));
    }
    let attrs_range = range_in(len, attrs_off, attrs_size).ok_or_else(|| {
        invalid(
            24,
            format!("attrs section [{attrs_off}, +{attrs_size}) is outside the {len}-byte file"),
        )
    })?;
    let attrs_bytes = &data[attrs_range];
    let mut attrs = Vec::new();
    for (i, entry) in attrs_bytes.chunks_exact(attr_size as usize).enumerate() {
        let at = attrs_off + i as u64 * attr_size;
        let abi = attr_abi_size(entry, attr_size as usize - 16, endian);
        let attr = parse_attr(&entry[..abi], endian).ok_or_else(|| {
            invalid(
                at,
                format!("attr {i} ({abi} bytes) is not a perf_event_attr"),
            )
        })?;
        let ids_at = attr_size as usize - 16;
        let (ioff, isize) = (
            u64_at(entry, ids_at, endian).unwrap_or(0),
            u64_at(entry, ids_at + 8, endian).unwrap_or(0),
        );
        let event_ids = match range_in(len, ioff, isize) {
            Some(r) => data[r]
                .chunks_exact(8)
                .filter_map(|c| u64_at(c, 0, endian))
                .collect(),
            None => {
                notes.push(Note {
                    offset: at + ids_at as u64,
                    msg: format!(
                        "ids section [{ioff}, +{isize}) of attr {i} is outside the file; ignored"
                    ),
                });
                Vec::new()
            }
        };
        attrs.push(AttributeDescription {
            attr,
            name: None,
            event_ids,
        });
    }

    // perf 3.x event_types: {u64 event_id; char name[64]}, naming attrs by config.
    let legacy = et_size > 0;
    if legacy {
        match range_in(len, et_off, et_size) {
            Some(r) => {
                let names: Vec<(u64, String)> = data[r]
                    .chunks_exact(8 + MAX_EVENT_NAME)
                    .filter_map(|e| Some((u64_at(e, 0, endian)?, cstr(e.get(8..)?))))
                    .collect();
                name_by_config(&mut attrs, &names);
            }
            None => notes.push(Note {
                offset: 56,
                msg: format!(
                    "event_types section [{et_off}, +{et_size}) is outside the file; ignored"
                ),
            }),
        }
    }

    // The record stream: a data size of 0 is a recorder that did not finish (perf warns and
    // reads on); one past the end of the file is a truncated file.
    let mut records = data_off.min(len as u64) as usize
        ..data_off.saturating_add(data_size).min(len as u64) as usize;
    if data_size == 0 && (data_off as usize) < len {
        notes.push(Note {
            offset: 48,
            msg: "data size 0 (the recorder did not finish): records read to the end of the file"
                .into(),
        });
        records.end = len;
    } else if data_off.saturating_add(data_size) > len as u64 {
        notes.push(Note {
            offset: 48,
            msg: format!(
                "data section [{data_off}, +{data_size}) runs past the {len}-byte file: truncated"
            ),
        });
    }

    // Feature sections, in bit order, right after the data section.
    let simpleperf = (FEAT_SIMPLEPERF_START..256).any(|f| bit(&bits, f));
    let mut layout = Layout {
        endian,
        producer: if simpleperf {
            Producer::Simpleperf
        } else if legacy {
            Producer::PerfLegacy
        } else {
            Producer::Perf
        },
        attrs,
        nr_cpus: None,
        tracing: None,
        records,
        version: None,
        notes,
    };
    let table = data_off.saturating_add(data_size);
    for (k, feat) in (0..256u32).filter(|&f| bit(&bits, f)).enumerate() {
        let at = table.saturating_add(16 * k as u64);
        let Some(ent) = range_in(len, at, 16) else {
            layout.notes.push(Note {
                offset: at,
                msg: format!("feature table entry of feature {feat} is outside the file; the rest of the table is ignored"),
            });
            break;
        };
        let (off, size) = (h(ent.start), h(ent.start + 8));
        let Some(r) = range_in(len, off, size) else {
            layout.notes.push(Note {
                offset: at,
                msg: format!(
                    "feature {feat} section [{off}, +{size}) is outside the file; ignored"
                ),
            });
            continue;
        };
        layout.feature(feat, &data[r.clone()], r.start as u64);
    }
    if layout.producer == Producer::Simpleperf {
        layout.simpleperf_tracing(data);
    }
    Ok(layout)
}

fn bit(bits: &[u64; 4], f: u32) -> bool {
    bits.get((f / 64) as usize)
        .is_some_and(|w| w >> (f % 64) & 1 == 1)
}

/// A NUL-terminated (or full-length) name.
fn cstr(b: &[u8]) -> String {
    let n = memchr::memchr(0, b).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// Names tracepoint attrs from `(config, name)` pairs (perf_header__find_event).
fn name_by_config(attrs: &mut [AttributeDescription], names: &[(u64, String)]) {
    for a in attrs.iter_mut().filter(|a| a.name.is_none()) {
        if let PerfEventType::Tracepoint(id) = a.attr.type_ {
            if let Some((_, n)) = names.iter().find(|(c, _)| *c == id) {
                a.name = Some(n.clone());
            }
        }
    }
}

impl Layout {
    /// Takes what the model needs from one feature section (file mode) or HEADER_FEATURE body.
    fn feature(&mut self, feat: u32, body: &[u8], base: u64) {
        let e = self.endian;
        match feat {
            HEADER_TRACING_DATA if self.tracing.is_none() => self.tracing = Some(body.to_vec()),
            HEADER_NRCPUS => {
                // {u32 nr_cpus_available; u32 nr_cpus_online}: the model wants the CPUs that ran.
                let online = u32_at(body, 4, e).filter(|&n| n > 0);
                let avail = u32_at(body, 0, e).filter(|&n| n > 0);
                self.nr_cpus = online.or(avail);
            }
            HEADER_VERSION => {
                // perf_header_string: u32 len (with padding) + NUL-terminated text.
                if let Some(n) = u32_at(body, 0, e) {
                    if let Some(s) = body.get(4..4usize.saturating_add(n as usize)) {
                        self.version = Some(cstr(s));
                    }
                }
            }
            HEADER_EVENT_DESC => self.event_desc(body, base),
            FEAT_SIMPLEPERF_META_INFO => {
                let mut it = body.split(|&b| b == 0);
                let mut types = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    match k {
                        b"simpleperf_version" => {
                            self.version = Some(String::from_utf8_lossy(v).into_owned())
                        }
                        // "name,type,config" per attr, in attr order.
                        b"event_type_info" => {
                            types = String::from_utf8_lossy(v)
                                .lines()
                                .filter_map(|l| l.split(',').next().map(str::to_string))
                                .collect()
                        }
                        _ => {}
                    }
                }
                for (a, n) in self.attrs.iter_mut().zip(types) {
                    a.name.get_or_insert(n);
                }
            }
            _ => {}
        }
    }

    /// HEADER_EVENT_DESC: {u32 nr, u32 attr_size, {attr, u32 nr_ids, string name, u64 ids[]}[nr]}:
    /// names attrs by their ids. Stops quietly at the first entry that does not fit.
    fn event_desc(&mut self, body: &[u8], base: u64) {
        let e = self.endian;
        let (Some(nr), Some(asz)) = (u32_at(body, 0, e), u32_at(body, 4, e)) else {
            return;
        };
        if u64::from(nr) * (u64::from(asz) + 8) > body.len() as u64 {
            self.notes.push(Note {
                offset: base,
                msg: format!(
                    "EVENT_DESC: {nr} events of {asz}-byte attrs do not fit in {} bytes; names ignored",
                    body.len()
                ),
            });
            return;
        }
        let mut p = 8usize;
        for _ in 0..nr {
            let Some(q) = p.checked_add(asz as usize) else {
                break;
            };
            let (Some(nr_ids), Some(slen)) = (u32_at(body, q, e), u32_at(body, q + 4, e)) else {
                self.note_desc(base + p as u64);
                break;
            };
            let Some(name) = body.get(q + 8..(q + 8).saturating_add(slen as usize)) else {
                self.note_desc(base + p as u64);
                break;
            };
            let name = cstr(name);
            let ids_at = q + 8 + slen as usize;
            let Some(ids) = body.get(ids_at..ids_at.saturating_add(8 * nr_ids as usize)) else {
                self.note_desc(base + p as u64);
                break;
            };
            let ids: Vec<u64> = ids
                .chunks_exact(8)
                .filter_map(|c| u64_at(c, 0, e))
                .collect();
            for a in &mut self.attrs {
                if a.name.is_none() && a.event_ids.iter().any(|i| ids.contains(i)) {
                    a.name = Some(name.clone());
                }
            }
            p = ids_at + 8 * nr_ids as usize;
        }
    }

    fn note_desc(&mut self, offset: u64) {
        self.notes.push(Note {
            offset,
            msg: "EVENT_DESC entry does not fit in its section; names after it ignored".into(),
        });
    }

    /// simpleperf keeps its tracing data in a record of the data section: the first one found
    /// by a walk of the record headers (stops quietly where the framing breaks; the record walk
    /// reports that place).
    fn simpleperf_tracing(&mut self, data: &[u8]) {
        if self.tracing.is_some() {
            return;
        }
        let e = self.endian;
        let mut p = self.records.start;
        while p + 8 <= self.records.end {
            let (Some(ty), Some(size)) = (u32_at(data, p, e), record_size(data, p, e)) else {
                return;
            };
            if size < 8 || p + size > self.records.end {
                return;
            }
            if ty == SIMPLE_PERF_RECORD_TRACING_DATA || ty == PERF_RECORD_HEADER_TRACING_DATA {
                // TracingDataRecord: u32 data_size, then the data (padded to 64) in the record.
                if let Some(n) = u32_at(data, p + 8, e) {
                    if let Some(t) = data.get(p + 12..(p + 12).saturating_add(n as usize)) {
                        if p + 12 + n as usize <= p + size {
                            self.tracing = Some(t.to_vec());
                            return;
                        }
                    }
                }
            }
            p += size;
        }
    }
}

/// A record's size: `header.size`, or for simpleperf's own types (from 32768)
/// `size1 << 16 | size0` stored in the misc and size fields (simpleperf_record_header).
#[inline]
pub fn record_size(data: &[u8], p: usize, e: Endian) -> Option<usize> {
    let ty = u32_at(data, p, e)?;
    let size0 = read_uint(data, p + 6, 2, e)? as usize;
    if ty >= SIMPLE_PERF_RECORD_TYPE_START {
        let size1 = read_uint(data, p + 4, 2, e)? as usize;
        Some(size1 << 16 | size0)
    } else {
        Some(size0)
    }
}

/// Pipe mode: the metadata records of the whole stream (they may come after samples). Stops
/// quietly where the framing breaks; the record walk reports that place.
fn parse_pipe(data: &[u8], endian: Endian) -> Layout {
    let e = endian;
    let mut l = Layout {
        endian,
        producer: Producer::PerfPipe,
        attrs: Vec::new(),
        nr_cpus: None,
        tracing: None,
        records: 16.min(data.len())..data.len(),
        version: None,
        notes: Vec::new(),
    };
    let mut legacy_names = Vec::new();
    let mut update_names: BTreeMap<u64, String> = BTreeMap::new();
    let mut p = 16usize;
    while p + 8 <= data.len() {
        let (Some(ty), Some(size)) = (u32_at(data, p, e), read_uint(data, p + 6, 2, e)) else {
            break;
        };
        let size = size as usize;
        if size < 8 || p + size > data.len() {
            break;
        }
        let body = &data[p + 8..p + size];
        let mut next = p + size;
        match ty {
            PERF_RECORD_HEADER_ATTR => {
                let abi = attr_abi_size(body, body.len(), e);
                if let Some(attr) = parse_attr(&body[..abi], e) {
                    let event_ids = body[abi..]
                        .chunks_exact(8)
                        .filter_map(|c| u64_at(c, 0, e))
                        .collect();
                    l.attrs.push(AttributeDescription {
                        attr,
                        name: None,
                        event_ids,
                    });
                } else {
                    l.notes.push(Note {
                        offset: p as u64,
                        msg: format!(
                            "HEADER_ATTR of {abi} bytes is not a perf_event_attr; ignored"
                        ),
                    });
                }
            }
            PERF_RECORD_HEADER_EVENT_TYPE => {
                if let Some(id) = u64_at(body, 0, e) {
                    legacy_names.push((id, cstr(body.get(8..).unwrap_or(&[]))));
                }
            }
            PERF_RECORD_HEADER_TRACING_DATA => {
                // u32 size (8-aligned); the data follows the record (perf_event__process_tracing_data).
                let n = u32_at(body, 0, e).unwrap_or(0) as usize;
                match data.get(next..next.saturating_add(n)) {
                    Some(t) => {
                        if l.tracing.is_none() {
                            l.tracing = Some(t.to_vec());
                        }
                        next += n;
                    }
                    None => break,
                }
            }
            PERF_RECORD_AUXTRACE => {
                let n = u64_at(body, 0, e).unwrap_or(u64::MAX);
                match usize::try_from(n).ok().and_then(|n| next.checked_add(n)) {
                    Some(end) if end <= data.len() => next = end,
                    _ => break,
                }
            }
            PERF_RECORD_HEADER_FEATURE => {
                if let Some(f) = u64_at(body, 0, e) {
                    if let Ok(f) = u32::try_from(f) {
                        l.feature(f, &body[8..], p as u64 + 16);
                    }
                }
            }
            PERF_RECORD_EVENT_UPDATE => {
                // {u64 type; u64 id; ...}: type PERF_EVENT_UPDATE__NAME (1) carries a name.
                if let (Some(1), Some(id)) = (u64_at(body, 0, e), u64_at(body, 8, e)) {
                    update_names.insert(id, cstr(body.get(16..).unwrap_or(&[])));
                }
            }
            _ => {}
        }
        p = next;
    }
    for a in &mut l.attrs {
        if a.name.is_none() {
            a.name = a
                .event_ids
                .iter()
                .find_map(|i| update_names.get(i).cloned());
        }
    }
    name_by_config(&mut l.attrs, &legacy_names);
    l
}
