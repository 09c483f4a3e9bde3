//! Fast path of the perf.data reader: walks the data section of a file-mode, little-endian
//! perf.data itself (records borrowed from the input, zstd-compressed records decompressed into
//! one arena) instead of linux-perf-data's copying record iterator, and reproduces that
//! iterator's order exactly: records are keyed by (time, data-section offset; None inside
//! compressed data) and released per FINISHED_ROUND like the crate's `Sorter` (a round releases
//! every buffered record whose key is <= the previous round's maximum key).
//!
//! The record bodies are still parsed by linux-perf-event-reader (`RawEventRecord::parse`), so
//! sample layout (IDENTIFIER, IP, TID, TIME, ADDR, ID, STREAM_ID, CPU, PERIOD, READ, CALLCHAIN,
//! RAW, ...; include/uapi/linux/perf_event.h) is decoded by the same code as the crate path.
//!
//! It must never panic or trust a size: every read is a checked slice of the input. It returns
//! `None` (the caller then uses the crate path) for anything it does not handle: AUXTRACE
//! records, simpleperf files (synthetic rounds), big-endian files, and any malformed record, so
//! that errors on bad input are exactly the crate path's.

use linux_perf_data::linux_perf_event_reader::{
    AttrFlags, EventRecord, RawData, RawEventRecord, RecordParseInfo, RecordType, SampleFormat,
};
use linux_perf_data::{AttributeDescription, Endianness};

const PERF_RECORD_USER_TYPE_START: u32 = 64;
const PERF_RECORD_FINISHED_ROUND: u32 = 68;
const PERF_RECORD_AUXTRACE: u32 = 71;
const PERF_RECORD_COMPRESSED: u32 = 81;
const PERF_RECORD_COMPRESSED2: u32 = 83;

/// The crate's `RecordSortKey`: (timestamp, offset in the data section; None when decompressed).
type Key = (Option<u64>, Option<u64>);

/// A record kept for output (SAMPLE, COMM, FORK, LOST); others only move the round bounds.
#[derive(Clone, Copy)]
struct Item {
    key: Key,
    /// Arrival order: breaks ties (only possible inside compressed data) by file order.
    seq: u32,
    ty: u32,
    misc: u16,
    attr: u32,
    /// Body range in the file (`arena == false`) or in the decompressed arena.
    arena: bool,
    start: usize,
    len: usize,
}

/// How the crate maps a record to its attr (linux-perf-data `IdParseInfos`).
enum IdMode {
    OnlyOne,
    Same,
    PerAttribute(bool),
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

struct Walker<'a> {
    data: &'a [u8],
    infos: Vec<RecordParseInfo>,
    id_mode: IdMode,
    ids: crate::intern::FxHashMap<u64, usize>,
    prev_max: Key,
    cur_max: Key,
    seq: u32,
    incoming: Vec<Item>,
    /// Records released by the last round, sorted, about to be emitted.
    ready: Vec<Item>,
    arena: Vec<u8>,
    arena_pos: usize,
    dctx: Option<zstd::zstd_safe::DCtx<'static>>,
    zbuf: Vec<u8>,
}

/// Walks the data section and hands the SAMPLE / COMM / FORK / LOST records to `emit` in the
/// crate's order; `None` when the crate path must be used instead (see module doc), in which
/// case whatever was emitted must be dropped.
pub(super) fn walk<F>(
    data: &[u8],
    attrs: &[AttributeDescription],
    simpleperf: bool,
    mut emit: F,
) -> Option<()>
where
    F: FnMut(usize, EventRecord<'_>),
{
    if simpleperf || !data.starts_with(b"PERFILE2") {
        return None;
    }
    let dstart = usize::try_from(le_u64(data, 40)?).ok()?;
    let dsize = le_u64(data, 48)?;
    let infos: Vec<RecordParseInfo> = attrs
        .iter()
        .map(|a| RecordParseInfo::new(&a.attr, Endianness::LittleEndian))
        .collect();
    let first = infos.first()?;
    let id_mode = if infos.len() == 1 {
        IdMode::OnlyOne
    } else if infos.iter().all(|p| p.id_parse_info == first.id_parse_info) {
        IdMode::Same
    } else {
        // The crate refused other layouts already (parse_file): IDENTIFIER everywhere.
        let all = attrs.first()?.attr.flags.contains(AttrFlags::SAMPLE_ID_ALL);
        if !attrs
            .iter()
            .all(|a| a.attr.sample_format.contains(SampleFormat::IDENTIFIER))
        {
            return None;
        }
        IdMode::PerAttribute(all)
    };
    let mut ids = crate::intern::FxHashMap::default();
    for (i, a) in attrs.iter().enumerate() {
        for id in &a.event_ids {
            ids.insert(*id, i);
        }
    }
    let mut w = Walker {
        data,
        infos,
        id_mode,
        ids,
        prev_max: Key::default(),
        cur_max: Key::default(),
        seq: 0,
        incoming: Vec::new(),
        ready: Vec::new(),
        arena: Vec::new(),
        arena_pos: 0,
        dctx: None,
        zbuf: Vec::new(),
    };
    let mut off: u64 = 0;
    while off < dsize {
        let pos = dstart.checked_add(usize::try_from(off).ok()?)?;
        let h = data.get(pos..pos.checked_add(8)?)?;
        let ty = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let misc = u16::from_le_bytes([h[4], h[5]]);
        let size = usize::from(u16::from_le_bytes([h[6], h[7]]));
        if size < 8 {
            return None;
        }
        let rec_off = off;
        off += size as u64;
        if ty == PERF_RECORD_FINISHED_ROUND {
            w.finish_round();
            w.emit_ready(&mut emit)?;
            continue;
        }
        let body_start = pos + 8;
        let body = data.get(body_start..pos.checked_add(size)?)?;
        match ty {
            PERF_RECORD_COMPRESSED => w.decompress(body)?,
            PERF_RECORD_COMPRESSED2 => {
                let n = usize::try_from(le_u64(body, 0)?).ok()?;
                if n > body.len() - 8 {
                    return None;
                }
                w.decompress(body.get(8..8 + n)?)?;
            }
            PERF_RECORD_AUXTRACE => return None,
            _ => w.push(ty, misc, false, body_start, body.len(), Some(rec_off))?,
        }
    }
    // The crate's `Sorter::finish`: everything left, sorted.
    w.incoming.sort_by_key(|i| (i.key, i.seq));
    std::mem::swap(&mut w.ready, &mut w.incoming);
    w.emit_ready(&mut emit)?;
    Some(())
}

impl Walker<'_> {
    /// linux-perf-data `Sorter::finish_round`: releases (sorted) every buffered record whose key
    /// is <= the previous round's maximum, which is exactly the set the crate releases.
    fn finish_round(&mut self) {
        let p = self.prev_max;
        let ready = &mut self.ready;
        self.incoming.retain(|it| {
            if it.key <= p {
                ready.push(*it);
                false
            } else {
                true
            }
        });
        // Stable merge sort: the per-CPU streams arrive as sorted runs, which it merges cheaply.
        ready.sort_by_key(|i| (i.key, i.seq));
        self.prev_max = self.cur_max;
    }

    /// Parses and emits the released records. A parse error gives `None`: the caller drops
    /// everything emitted so far and uses the crate path, so errors are the crate's.
    fn emit_ready<F: FnMut(usize, EventRecord<'_>)>(&mut self, emit: &mut F) -> Option<()> {
        for it in self.ready.drain(..) {
            let body = if it.arena {
                self.arena.get(it.start..it.start.checked_add(it.len)?)?
            } else {
                self.data.get(it.start..it.start.checked_add(it.len)?)?
            };
            let info = *self.infos.get(it.attr as usize)?;
            let raw = RawEventRecord::new(RecordType(it.ty), it.misc, RawData::Single(body), info);
            emit(it.attr as usize, raw.parse().ok()?);
        }
        Some(())
    }

    /// One record (builtin or user type) as the crate's `process_record` sees it.
    fn push(
        &mut self,
        ty: u32,
        misc: u16,
        arena: bool,
        start: usize,
        len: usize,
        offset: Option<u64>,
    ) -> Option<()> {
        let body = if arena {
            self.arena.get(start..start.checked_add(len)?)?
        } else {
            self.data.get(start..start.checked_add(len)?)?
        };
        let (attr, ts) = if ty < PERF_RECORD_USER_TYPE_START {
            let rt = RecordType(ty);
            let attr = match self.id_mode {
                IdMode::OnlyOne => 0,
                IdMode::Same => {
                    let first = *self.infos.first()?;
                    RawEventRecord::new(rt, misc, RawData::Single(body), first)
                        .id()
                        .and_then(|id| self.ids.get(&id).copied())
                        .unwrap_or(0)
                }
                IdMode::PerAttribute(all) => {
                    let id = if ty == RecordType::SAMPLE.0 {
                        le_u64(body, 0)
                    } else if all {
                        le_u64(body, body.len().checked_sub(8)?)
                    } else {
                        None
                    };
                    id.and_then(|id| self.ids.get(&id).copied()).unwrap_or(0)
                }
            };
            let info = *self.infos.get(attr)?;
            let ts = RawEventRecord::new(rt, misc, RawData::Single(body), info).timestamp();
            (attr, ts)
        } else {
            (0, None)
        };
        let key = (ts, offset);
        if key > self.cur_max {
            self.cur_max = key;
        }
        self.seq = self.seq.checked_add(1)?;
        if matches!(
            RecordType(ty),
            RecordType::SAMPLE | RecordType::COMM | RecordType::FORK | RecordType::LOST
        ) {
            self.incoming.push(Item {
                key,
                seq: self.seq,
                ty,
                misc,
                attr: u32::try_from(attr).ok()?,
                arena,
                start,
                len,
            });
        }
        Some(())
    }

    /// Appends a COMPRESSED(2) payload to the arena (one zstd stream across records, as perf
    /// writes it) and pushes every whole record now in the arena; a partial one waits.
    fn decompress(&mut self, mut input: &[u8]) -> Option<()> {
        let dctx = self.dctx.get_or_insert_with(zstd::zstd_safe::DCtx::create);
        if self.zbuf.is_empty() {
            self.zbuf = vec![0u8; 1 << 20];
        }
        let buf = &mut self.zbuf;
        loop {
            let mut inb = zstd::zstd_safe::InBuffer::around(input);
            let mut outb = zstd::zstd_safe::OutBuffer::around(&mut buf[..]);
            dctx.decompress_stream(&mut outb, &mut inb).ok()?;
            let n = outb.pos();
            let used = inb.pos();
            if n == 0 && used == 0 && !input.is_empty() {
                // No progress: a corrupt stream; let the crate path report it.
                return None;
            }
            self.arena.extend_from_slice(buf.get(..n)?);
            input = input.get(used..)?;
            if n < buf.len() && input.is_empty() {
                break;
            }
        }
        loop {
            let at = self.arena_pos;
            let h = match self.arena.get(at..at + 8) {
                Some(h) => h,
                None => break,
            };
            let ty = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let misc = u16::from_le_bytes([h[4], h[5]]);
            let size = usize::from(u16::from_le_bytes([h[6], h[7]]));
            if size < 8 {
                return None;
            }
            if self.arena.len() < at + size {
                break;
            }
            self.push(ty, misc, true, at + 8, size - 8, None)?;
            self.arena_pos = at + size;
        }
        Some(())
    }
}
