//! The record walk of the perf.data reader: walks the record stream of any producer itself
//! (records borrowed from the input, zstd-compressed records decompressed into one arena)
//! instead of linux-perf-data's copying record iterator, and reproduces that iterator's order
//! exactly: records are keyed by (time, file offset; None inside compressed data) and released
//! per FINISHED_ROUND like the crate's `Sorter` (a round releases every buffered record whose key
//! is <= the previous round's maximum key); a stream without rounds (simpleperf) is sorted whole.
//!
//! SAMPLE bodies whose attr asks only for fixed-size fields before RAW (what `perf record -e
//! TRACEPOINT` writes: IDENTIFIER, IP, TID, TIME, ADDR, ID, STREAM_ID, CPU, PERIOD, RAW;
//! include/uapi/linux/perf_event.h) are read at offsets computed once per attr
//! ([`SampleLayout`]): the crate's `SampleRecord` is a few hundred bytes built and moved per
//! record, which was a third of the decode time. They accept and reject exactly the bodies
//! linux-perf-event-reader's `SampleRecord::parse` does (a test compares them). Every other
//! body is parsed by linux-perf-event-reader (`RawEventRecord::parse`), the same code as the
//! crate path.
//! Payloads outside a record's size are stepped over: the AUX data after PERF_RECORD_AUXTRACE
//! (its `size` field) and, in pipe mode, the tracing data after HEADER_TRACING_DATA.
//!
//! Damage rule (as `perf script`, which stops at "unexpected end of event stream" and keeps what
//! it read): the walk stops at the first record whose framing is broken (fewer than 8 bytes
//! left, size < 8, a record or its payload past the end, a type no producer writes, a corrupt
//! compressed stream); every record before it is kept and the place and the bytes left are
//! returned as [`Damage`]. A record whose framing is fine but whose body does not parse is
//! skipped and counted.
//!
//! It must never panic or trust a size: every read is a checked slice of the input. It returns
//! `Err(Unsupported)` only for attr layouts the crate refuses too (several attrs whose ids sit at
//! different places without PERF_SAMPLE_IDENTIFIER).

use std::collections::BTreeMap;

use linux_perf_data::linux_perf_event_reader::{
    AttrFlags, EventRecord, RawData, RawEventRecord, RecordParseInfo, RecordType, SampleFormat,
};
use linux_perf_data::AttributeDescription;

use crate::binary::backing::{Backing, Releaser};
use crate::binary::bytes::{read_uint, Endian};
use crate::binary::perf_layout::{self as layout, endianness, record_size};

const PERF_RECORD_USER_TYPE_START: u32 = 64;
const PERF_RECORD_FINISHED_ROUND: u32 = 68;
const PERF_RECORD_COMPRESSED: u32 = 81;
const PERF_RECORD_COMPRESSED2: u32 = 83;
/// Kernel record types are below 64, perf's own from 64; nothing writes 128..32767.
const PERF_RECORD_TYPE_LIMIT: u32 = 128;
/// simpleperf's own record types (32768..): KERNEL_SYMBOL .. TRACING_DATA and a margin.
const SIMPLE_PERF_RECORD_TYPE_LIMIT: u32 = layout::SIMPLE_PERF_RECORD_TYPE_START + 64;

/// The crate's `RecordSortKey`: (timestamp, offset in the file; None when decompressed).
type Key = (Option<u64>, Option<u64>);

/// Where the record stream broke, and how many bytes from there to its end were not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

/// What the walk skipped besides records it emitted.
#[derive(Clone, Debug, Default)]
pub struct WalkEnd {
    pub damage: Option<Damage>,
    /// Records stepped over by kind (`auxtrace`, `unparsable_<type>`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// AUX payload bytes stepped over.
    pub aux_bytes: u64,
    /// File offset of the first record whose body did not parse (None inside compressed data).
    pub first_unparsable: Option<Option<u64>>,
    /// Rounds that held more than [`MAX_HELD_BYTES`] and released their oldest half early, and
    /// the file offset of the compressed record where the first did.
    pub early_releases: u64,
    pub first_early_release: Option<u64>,
}

/// The fields of a SAMPLE record the reader uses (linux-perf-event-reader's `SampleRecord`
/// names, borrowed from the input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Sample<'a> {
    pub pid: Option<i32>,
    pub tid: Option<i32>,
    pub timestamp: Option<u64>,
    pub cpu: Option<u32>,
    pub raw: Option<&'a [u8]>,
}

/// A record the walk emits: a SAMPLE read at fixed offsets, or any record parsed by the crate
/// (boxed: the crate's record is hundreds of bytes, and these are the rare ones).
pub(super) enum Rec<'a> {
    Sample(Sample<'a>),
    Parsed(Box<EventRecord<'a>>),
}

/// Offsets of a SAMPLE body's fields when every field before RAW has a fixed size (no READ,
/// CALLCHAIN or later fields): `perf_output_sample`'s order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SampleLayout {
    tid: Option<usize>,
    time: Option<usize>,
    cpu: Option<usize>,
    /// Bytes of the fixed fields; RAW's u32 size follows when `raw`.
    fixed: usize,
    raw: bool,
}

impl SampleLayout {
    /// The layout of `sf`, or None when a field it asks for is not one of the fixed ones.
    pub(super) fn of(sf: SampleFormat) -> Option<SampleLayout> {
        let allowed = SampleFormat::IDENTIFIER
            | SampleFormat::IP
            | SampleFormat::TID
            | SampleFormat::TIME
            | SampleFormat::ADDR
            | SampleFormat::ID
            | SampleFormat::STREAM_ID
            | SampleFormat::CPU
            | SampleFormat::PERIOD
            | SampleFormat::RAW;
        if !allowed.contains(sf) {
            return None;
        }
        let mut l = SampleLayout {
            tid: None,
            time: None,
            cpu: None,
            fixed: 0,
            raw: sf.contains(SampleFormat::RAW),
        };
        for (flag, slot) in [
            (SampleFormat::IDENTIFIER, None),
            (SampleFormat::IP, None),
            (SampleFormat::TID, Some(0)),
            (SampleFormat::TIME, Some(1)),
            (SampleFormat::ADDR, None),
            (SampleFormat::ID, None),
            (SampleFormat::STREAM_ID, None),
            (SampleFormat::CPU, Some(2)),
            (SampleFormat::PERIOD, None),
        ] {
            if sf.contains(flag) {
                match slot {
                    Some(0) => l.tid = Some(l.fixed),
                    Some(1) => l.time = Some(l.fixed),
                    Some(_) => l.cpu = Some(l.fixed),
                    None => {}
                }
                l.fixed += 8;
            }
        }
        Some(l)
    }

    /// The fields of `b`, None where `SampleRecord::parse` fails (a field cut short).
    #[inline]
    pub(super) fn read<'a>(&self, b: &'a [u8], e: Endian) -> Option<Sample<'a>> {
        if b.len() < self.fixed {
            return None;
        }
        let raw = if self.raw {
            let n = usize::try_from(read_uint(b, self.fixed, 4, e)?).ok()?;
            let at = self.fixed + 4;
            Some(b.get(at..at.checked_add(n)?)?)
        } else {
            None
        };
        let u32_at = |o: usize| read_uint(b, o, 4, e).map(|v| v as u32);
        Some(Sample {
            pid: self.tid.and_then(u32_at).map(|v| v as i32),
            tid: self.tid.and_then(|o| u32_at(o + 4)).map(|v| v as i32),
            timestamp: self.time.and_then(|o| read_uint(b, o, 8, e)),
            cpu: self.cpu.and_then(u32_at),
            raw,
        })
    }
}

/// Attr layouts the walk (and the crate) cannot map records to.
#[derive(Debug)]
pub struct Unsupported;

/// What the walk needs to know about the file.
pub(super) struct Stream<'a> {
    pub data: &'a [u8],
    pub endian: Endian,
    pub records: std::ops::Range<usize>,
    pub pipe: bool,
    pub simpleperf: bool,
    pub attrs: &'a [AttributeDescription],
}

/// A record kept for output (SAMPLE, COMM, FORK, LOST); others only move the round bounds.
#[derive(Clone, Copy)]
struct Item {
    /// Ties (only possible inside compressed data) keep arrival order: every sort is stable
    /// over items in arrival order.
    key: Key,
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

/// The walk's state between rounds: [`Walker::step`] walks on to the next FINISHED_ROUND (or
/// the end) and emits what the round released, so the reader pulls records lazily. Memory: the
/// records of the rounds not yet released (perf bounds a round by its ring buffers), and of
/// compressed data only the part those records still need (the arena is compacted each round,
/// and capped at [`MAX_ARENA_BYTES`]).
pub(super) struct Walker {
    endian: Endian,
    pos: usize,
    stop: usize,
    pipe: bool,
    simpleperf: bool,
    done: bool,
    infos: Vec<RecordParseInfo>,
    /// Per attr: its SAMPLE layout when fixed (read without the crate).
    layouts: Vec<Option<SampleLayout>>,
    id_mode: IdMode,
    ids: crate::intern::FxHashMap<u64, usize>,
    prev_max: Key,
    cur_max: Key,
    incoming: Vec<Item>,
    /// Records released by the last round, sorted, emitted one at a time by
    /// [`Walker::emit_next`] (a round can hold 100k records: decoding them all up front put
    /// them in a buffer of `Record`s larger than the cache).
    ready: Vec<Item>,
    /// Next item of `ready` to emit.
    ready_pos: usize,
    /// The input and arena bytes the last round released are given back at the next
    /// [`Walker::step`], once every ready record (which may point into them) was emitted.
    compact_due: bool,
    /// A paused compressed payload readied records early: the arena bytes only they needed
    /// are given back at the next step (see [`Walker::pause`]).
    compact_live_due: bool,
    arena: Vec<u8>,
    arena_pos: usize,
    dctx: Option<zstd::zstd_safe::DCtx<'static>>,
    zbuf: Vec<u8>,
    /// A COMPRESSED(2) payload paused half-way because the round held too much (bytes
    /// `start..end` of the input still to decompress): the next step goes on with it.
    zpend: Option<ZPending>,
    end: WalkEnd,
    released: Releaser,
}

/// The rest of a compressed payload, as offsets into the input.
#[derive(Clone, Copy)]
struct ZPending {
    start: usize,
    end: usize,
    rec_off: u64,
}

impl Walker {
    #[inline]
    fn u64_at(&self, b: &[u8], at: usize) -> Option<u64> {
        read_uint(b, at, 8, self.endian)
    }
}

/// Header of the record at `pos` of `b`: (type, misc, size).
#[inline]
fn header(b: &[u8], pos: usize, e: Endian) -> Option<(u32, u16, usize)> {
    let h = b.get(pos..pos.checked_add(8)?)?;
    Some(match e {
        Endian::Little => (
            u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
            u16::from_le_bytes([h[4], h[5]]),
            usize::from(u16::from_le_bytes([h[6], h[7]])),
        ),
        Endian::Big => (
            u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            u16::from_be_bytes([h[4], h[5]]),
            usize::from(u16::from_be_bytes([h[6], h[7]])),
        ),
    })
}

/// Largest arena of decompressed COMPRESSED(2) data held at once (the records of unreleased
/// rounds): more is damage naming the record's byte offset (a zstd bomb), not an allocation.
pub const MAX_ARENA_BYTES: usize = 256 << 20;

/// Most bytes a round may hold (decompressed arena plus the buffered records' entries) before
/// its oldest half is released early, as perf's ordered events do when they reach their
/// allocation cap (`ordered_events__queue` -> `OE_FLUSH__HALF`, tools/perf/util/ordered-events.c).
/// perf bounds a real round by its ring buffers (512 KiB per CPU by default); a zstd bomb of
/// valid records without FINISHED_ROUND is what reaches this, and it then costs this much memory,
/// not its decompressed size. Counted in [`WalkEnd::early_releases`] (an error under --strict).
pub const MAX_HELD_BYTES: usize = 16 << 20;

impl Walker {
    /// The walk's state at the start of the record stream.
    pub(super) fn new(s: &Stream<'_>) -> Result<Walker, Unsupported> {
        let attrs = s.attrs;
        let e = endianness(s.endian);
        let infos: Vec<RecordParseInfo> = attrs
            .iter()
            .map(|a| RecordParseInfo::new(&a.attr, e))
            .collect();
        let id_mode = match infos.first() {
            None => IdMode::OnlyOne,
            Some(_) if infos.len() == 1 => IdMode::OnlyOne,
            Some(first) if infos.iter().all(|p| p.id_parse_info == first.id_parse_info) => {
                IdMode::Same
            }
            Some(_) => {
                // The crate refuses other layouts too (parse_file): IDENTIFIER everywhere.
                let all = attrs
                    .first()
                    .is_some_and(|a| a.attr.flags.contains(AttrFlags::SAMPLE_ID_ALL));
                if !attrs
                    .iter()
                    .all(|a| a.attr.sample_format.contains(SampleFormat::IDENTIFIER))
                {
                    return Err(Unsupported);
                }
                IdMode::PerAttribute(all)
            }
        };
        let mut ids = crate::intern::FxHashMap::default();
        for (i, a) in attrs.iter().enumerate() {
            for id in &a.event_ids {
                ids.insert(*id, i);
            }
        }
        let stop = s.records.end.min(s.data.len());
        let layouts = infos
            .iter()
            .map(|i| SampleLayout::of(i.sample_format))
            .collect();
        Ok(Walker {
            endian: s.endian,
            pos: s.records.start,
            stop,
            pipe: s.pipe,
            simpleperf: s.simpleperf,
            done: false,
            infos,
            layouts,
            id_mode,
            ids,
            prev_max: Key::default(),
            cur_max: Key::default(),
            incoming: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
            compact_due: false,
            compact_live_due: false,
            arena: Vec::new(),
            arena_pos: 0,
            dctx: None,
            zbuf: Vec::new(),
            zpend: None,
            end: WalkEnd::default(),
            released: Releaser::new(s.records.start),
        })
    }

    /// What the walk skipped and where it stopped (complete once [`Walker::step`] said false).
    pub(super) fn end(&self) -> &WalkEnd {
        &self.end
    }

    /// Walks on to the next FINISHED_ROUND and readies the records it releases (for
    /// [`Walker::emit_next`]); at the end of the stream readies everything left and returns
    /// false. `data` is the whole input (the same every call); `backing`, when given, gets back
    /// the bytes no pending record needs. Call it only once every ready record was emitted
    /// (it walks nothing before).
    pub(super) fn step(&mut self, data: &[u8], backing: Option<&Backing>) -> bool {
        if self.done {
            return false;
        }
        if self.ready_pos < self.ready.len() {
            return true;
        }
        self.ready.clear();
        self.ready_pos = 0;
        if std::mem::take(&mut self.compact_due) {
            self.compact(backing);
        }
        if std::mem::take(&mut self.compact_live_due) {
            self.compact_live();
        }
        let stop = self.stop;
        let damage = |pos: usize, reason: String| Damage {
            offset: pos as u64,
            bytes: stop.saturating_sub(pos) as u64,
            reason,
        };
        let (pipe, simpleperf) = (self.pipe, self.simpleperf);
        let w = self;
        if let Some(z) = w.zpend.take() {
            match w.decompress(data.get(z.start..z.end).unwrap_or_default(), z.rec_off) {
                Ok(None) => {}
                Ok(Some(used)) => {
                    w.pause(z.start + used, z);
                    return true;
                }
                Err(m) => {
                    w.end.damage = Some(damage(z.rec_off as usize, m));
                    // Nothing past the broken stream is read (as `break` below).
                    w.pos = stop;
                }
            }
        }
        while w.pos < stop {
            let pos = w.pos;
            let Some((ty, misc, size0)) = header(data, pos, w.endian).filter(|_| pos + 8 <= stop)
            else {
                w.end.damage = Some(damage(
                    pos,
                    format!("{} bytes left, less than a record header", stop - pos),
                ));
                break;
            };
            let simple = simpleperf && ty >= layout::SIMPLE_PERF_RECORD_TYPE_START;
            if ty == 0
                || (ty >= PERF_RECORD_TYPE_LIMIT && !simple)
                || ty >= SIMPLE_PERF_RECORD_TYPE_LIMIT
            {
                w.end.damage = Some(damage(
                    pos,
                    format!("record type {ty} (0x{ty:08x}) is not one any producer writes"),
                ));
                break;
            }
            let size = if simple {
                record_size(data, pos, w.endian).unwrap_or(0)
            } else {
                size0
            };
            if size < 8 || size > stop - pos {
                w.end.damage = Some(damage(
                    pos,
                    format!(
                        "record (type {ty}) of {size} bytes: {}",
                        if size < 8 {
                            "smaller than its header".to_string()
                        } else {
                            format!("only {} bytes left", stop - pos)
                        }
                    ),
                ));
                break;
            }
            let rec_off = pos as u64;
            let body_start = pos + 8;
            let body = &data[body_start..pos + size];
            // Payload that follows the record, outside its size.
            let extra = match ty {
                layout::PERF_RECORD_AUXTRACE => w.u64_at(body, 0).unwrap_or(u64::MAX),
                layout::PERF_RECORD_HEADER_TRACING_DATA if pipe => {
                    read_uint(body, 0, 4, w.endian).unwrap_or(u64::MAX)
                }
                _ => 0,
            };
            if extra > (stop - pos - size) as u64 {
                w.end.damage = Some(damage(
                    pos,
                    format!(
                        "{} announces {extra} bytes of payload after it, only {} left",
                        if ty == layout::PERF_RECORD_AUXTRACE {
                            "AUXTRACE record"
                        } else {
                            "HEADER_TRACING_DATA record"
                        },
                        stop - pos - size
                    ),
                ));
                break;
            }
            w.pos = pos + size + extra as usize;
            if ty == layout::PERF_RECORD_AUXTRACE {
                *w.end.skipped.entry("auxtrace".into()).or_default() += 1;
                w.end.aux_bytes += extra;
                continue;
            }
            if ty == PERF_RECORD_FINISHED_ROUND {
                w.finish_round();
                w.compact_due = true;
                return true;
            }
            match ty {
                PERF_RECORD_COMPRESSED => match w.decompress(body, rec_off) {
                    Ok(None) => {}
                    Ok(Some(used)) => {
                        let end = pos + size;
                        let z = ZPending {
                            start: body_start,
                            end,
                            rec_off,
                        };
                        w.pause(body_start + used, z);
                        return true;
                    }
                    Err(m) => {
                        w.end.damage = Some(damage(rec_off as usize, m));
                        break;
                    }
                },
                PERF_RECORD_COMPRESSED2 => {
                    let n = w.u64_at(body, 0).unwrap_or(u64::MAX);
                    let r = match body
                        .get(8..usize::try_from(n).unwrap_or(usize::MAX).saturating_add(8))
                    {
                        Some(z) => w.decompress(z, rec_off).map(|p| (p, z.len())),
                        None => Err(format!(
                            "COMPRESSED2 data size {n} > record body {}",
                            body.len() - 8
                        )),
                    };
                    match r {
                        Ok((None, _)) => {}
                        Ok((Some(used), zlen)) => {
                            let z = ZPending {
                                start: body_start + 8,
                                end: body_start + 8 + zlen,
                                rec_off,
                            };
                            w.pause(body_start + 8 + used, z);
                            return true;
                        }
                        Err(m) => {
                            w.end.damage = Some(damage(rec_off as usize, m));
                            break;
                        }
                    }
                }
                _ if simple => {}
                _ => {
                    if w.push(data, ty, misc, false, body_start, body.len(), Some(rec_off))
                        .is_none()
                    {
                        *w.end
                            .skipped
                            .entry(format!("unparsable_type_{ty}"))
                            .or_default() += 1;
                        w.end.first_unparsable.get_or_insert(Some(rec_off));
                    }
                }
            }
        }
        if w.arena.len() > w.arena_pos {
            *w.end
                .skipped
                .entry("partial_compressed_record".into())
                .or_default() += 1;
        }
        // The crate's `Sorter::finish`: everything left, sorted (stable: `incoming` is in
        // arrival order, so equal keys keep it).
        w.incoming.sort_by_key(|i| i.key);
        std::mem::swap(&mut w.ready, &mut w.incoming);
        w.done = true;
        false
    }

    /// After a round: gives back the input bytes and arena bytes that no pending record needs.
    fn compact(&mut self, backing: Option<&Backing>) {
        let mut low_file = self.pos;
        let mut low_arena = self.arena_pos;
        for it in &self.incoming {
            if it.arena {
                low_arena = low_arena.min(it.start);
            } else {
                low_file = low_file.min(it.start.saturating_sub(8));
            }
        }
        if let Some(b) = backing {
            self.released.passed(b, low_file);
        }
        // Drain the arena's dead front once it is a good part of it (amortised O(1) per byte).
        if low_arena > 0 && low_arena >= self.arena.len() / 2 {
            self.arena.drain(..low_arena);
            self.arena_pos -= low_arena;
            for it in self.incoming.iter_mut().filter(|i| i.arena) {
                it.start -= low_arena;
            }
        }
    }
}

impl Walker {
    /// Bytes the round holds: the decompressed arena and the buffered records' entries.
    fn held(&self) -> usize {
        self.arena.len() + self.incoming.len() * std::mem::size_of::<Item>()
    }

    /// A compressed payload paused at input byte `at` (of `z`) because the round holds more than
    /// [`MAX_HELD_BYTES`]: keeps only the arena bytes buffered records need, and if that is
    /// still over half the cap readies the oldest half of the records (sorted, as a round
    /// would) for [`Walker::emit_next`]; their arena bytes are given back at the next step,
    /// once they were emitted, so it resumes with room.
    fn pause(&mut self, at: usize, z: ZPending) {
        self.zpend = Some(ZPending { start: at, ..z });
        self.compact_live();
        if self.held() > MAX_HELD_BYTES / 2 {
            // Stable: equal keys keep their arrival order.
            self.incoming.sort_by_key(|i| i.key);
            let rest = self.incoming.split_off(self.incoming.len() / 2);
            let early = std::mem::replace(&mut self.incoming, rest);
            if let Some(last) = early.last() {
                // Later records at or below it go out with the next round, as they would have.
                self.prev_max = self.prev_max.max(last.key);
            }
            self.ready.extend(early);
            self.end.early_releases += 1;
            self.end.first_early_release.get_or_insert(z.rec_off);
            self.compact_live_due = true;
        }
    }

    /// Moves the arena bytes still needed (bodies of buffered records, and a partial record at
    /// its end) to its front, in place (no second arena): records that are not kept (MMAP, ...)
    /// free their bytes too.
    fn compact_live(&mut self) {
        let mut live: Vec<usize> = (0..self.incoming.len())
            .filter(|&i| self.incoming[i].arena)
            .collect();
        live.sort_by_key(|&i| self.incoming[i].start);
        let mut to = 0;
        for i in live {
            let it = &mut self.incoming[i];
            // Sorted by start and disjoint, so `to <= it.start`: a copy down.
            let end = it.start.saturating_add(it.len).min(self.arena.len());
            let from = it.start.min(end);
            self.arena.copy_within(from..end, to);
            it.start = to;
            to += end - from;
        }
        let tail = self.arena_pos.min(self.arena.len());
        self.arena.copy_within(tail.., to);
        self.arena_pos = to;
        let len = to + (self.arena.len() - tail);
        self.arena.truncate(len);
        self.arena.shrink_to(len.max(1 << 20));
    }

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
        // `ready` was empty and `retain` keeps `incoming`'s arrival order, which equal keys
        // therefore keep.
        ready.sort_by_key(|i| i.key);
        self.prev_max = self.cur_max;
    }

    /// Records readied and not yet emitted.
    pub(super) fn ready_left(&self) -> usize {
        self.ready.len() - self.ready_pos.min(self.ready.len())
    }

    /// Gives up the records readied and not yet emitted (after an error).
    pub(super) fn drop_ready(&mut self) {
        self.ready_pos = self.ready.len();
    }

    /// Parses and emits the next released record (a body that does not parse is counted);
    /// false when none is ready (then [`Walker::step`] on).
    #[inline]
    pub(super) fn emit_next<F: FnMut(usize, Rec<'_>)>(
        &mut self,
        data: &[u8],
        emit: &mut F,
    ) -> bool {
        let endian = self.endian;
        let Some(&it) = self.ready.get(self.ready_pos) else {
            return false;
        };
        self.ready_pos += 1;
        {
            let body = if it.arena {
                self.arena.get(it.start..it.start.saturating_add(it.len))
            } else {
                data.get(it.start..it.start.saturating_add(it.len))
            };
            let layout = self.layouts.get(it.attr as usize).copied().flatten();
            let parsed = match (body, layout) {
                (Some(b), Some(l)) if it.ty == RecordType::SAMPLE.0 => {
                    l.read(b, endian).map(Rec::Sample)
                }
                _ => body
                    .zip(self.infos.get(it.attr as usize))
                    .and_then(|(b, info)| {
                        RawEventRecord::new(RecordType(it.ty), it.misc, RawData::Single(b), *info)
                            .parse()
                            .ok()
                    })
                    .map(|ev| Rec::Parsed(Box::new(ev))),
            };
            match parsed {
                Some(ev) => emit(it.attr as usize, ev),
                None => {
                    *self
                        .end
                        .skipped
                        .entry(format!("unparsable_type_{}", it.ty))
                        .or_default() += 1;
                    self.end
                        .first_unparsable
                        .get_or_insert(it.key.1.filter(|_| !it.arena));
                }
            }
        }
        true
    }

    /// One record (builtin or user type) as the crate's `process_record` sees it.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        data: &[u8],
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
            data.get(start..start.checked_add(len)?)?
        };
        let (attr, ts) = if ty < PERF_RECORD_USER_TYPE_START {
            let rt = RecordType(ty);
            let attr = match self.id_mode {
                IdMode::OnlyOne => 0,
                IdMode::Same => {
                    let first = *self.infos.first()?;
                    let id = if rt == RecordType::SAMPLE {
                        // `get_record_id` of a SAMPLE: the u64 at the attrs' common offset.
                        first
                            .id_parse_info
                            .sample_record_id_offset_from_start
                            .and_then(|o| self.u64_at(body, usize::from(o)))
                    } else {
                        RawEventRecord::new(rt, misc, RawData::Single(body), first).id()
                    };
                    id.and_then(|id| self.ids.get(&id).copied()).unwrap_or(0)
                }
                IdMode::PerAttribute(all) => {
                    let id = if ty == RecordType::SAMPLE.0 {
                        self.u64_at(body, 0)
                    } else if all {
                        self.u64_at(body, body.len().checked_sub(8)?)
                    } else {
                        None
                    };
                    id.and_then(|id| self.ids.get(&id).copied()).unwrap_or(0)
                }
            };
            let ts = match self.infos.get(attr) {
                // `get_record_timestamp` of a SAMPLE: the u64 at the attr's time offset.
                Some(info) if rt == RecordType::SAMPLE => info
                    .sample_record_time_offset_from_start
                    .and_then(|o| self.u64_at(body, usize::from(o))),
                Some(info) => {
                    RawEventRecord::new(rt, misc, RawData::Single(body), *info).timestamp()
                }
                // No attrs at all (a pipe stream cut before its HEADER_ATTR): nothing to key by.
                None => None,
            };
            (attr, ts)
        } else {
            (0, None)
        };
        let key = (ts, offset);
        if key > self.cur_max {
            self.cur_max = key;
        }
        if matches!(
            RecordType(ty),
            RecordType::SAMPLE | RecordType::COMM | RecordType::FORK | RecordType::LOST
        ) {
            self.incoming.push(Item {
                key,
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
    /// `Ok(Some(n))`: paused after `n` input bytes, the round holding over [`MAX_HELD_BYTES`].
    fn decompress(&mut self, input: &[u8], rec_off: u64) -> Result<Option<usize>, String> {
        // Taken out of `self` while records are pushed between output windows.
        let mut dctx = self
            .dctx
            .take()
            .unwrap_or_else(zstd::zstd_safe::DCtx::create);
        let mut buf = std::mem::take(&mut self.zbuf);
        if buf.is_empty() {
            buf = vec![0u8; 1 << 20];
        }
        let r = self.decompress_with(&mut dctx, &mut buf, input, rec_off);
        self.dctx = Some(dctx);
        self.zbuf = buf;
        r
    }

    fn decompress_with(
        &mut self,
        dctx: &mut zstd::zstd_safe::DCtx<'static>,
        buf: &mut [u8],
        mut input: &[u8],
        rec_off: u64,
    ) -> Result<Option<usize>, String> {
        let whole = input.len();
        loop {
            let mut inb = zstd::zstd_safe::InBuffer::around(input);
            let mut outb = zstd::zstd_safe::OutBuffer::around(&mut buf[..]);
            dctx.decompress_stream(&mut outb, &mut inb)
                .map_err(|c| format!("zstd: {}", zstd::zstd_safe::get_error_name(c)))?;
            let n = outb.pos();
            let used = inb.pos();
            if n == 0 && used == 0 && !input.is_empty() {
                return Err("zstd stream makes no progress".into());
            }
            if self.arena.len() + n > MAX_ARENA_BYTES {
                return Err(format!(
                    "zstd data of the record at byte {rec_off} decompresses past the \
                     {MAX_ARENA_BYTES}-byte limit of data held at once"
                ));
            }
            self.arena.extend_from_slice(&buf[..n]);
            // Records are taken out as each window of output arrives, so a bomb of garbage
            // (zeros: record type 0) stops after one window, not after MAX_ARENA_BYTES.
            self.push_arena_records()?;
            input = &input[used..];
            if n < buf.len() && input.is_empty() {
                break;
            }
            if self.held() > MAX_HELD_BYTES {
                return Ok(Some(whole - input.len()));
            }
        }
        Ok(None)
    }

    /// Pushes every whole record in the arena past `arena_pos`; a partial one waits.
    fn push_arena_records(&mut self) -> Result<(), String> {
        loop {
            let at = self.arena_pos;
            let Some((ty, misc, size)) = header(&self.arena, at, self.endian) else {
                break;
            };
            if size < 8 || ty == 0 || ty >= PERF_RECORD_TYPE_LIMIT {
                return Err(format!(
                    "decompressed record at arena byte {at}: type {ty}, size {size}"
                ));
            }
            if self.arena.len() < at + size {
                break;
            }
            if self
                .push(&[], ty, misc, true, at + 8, size - 8, None)
                .is_none()
            {
                *self
                    .end
                    .skipped
                    .entry(format!("unparsable_type_{ty}"))
                    .or_default() += 1;
                self.end.first_unparsable.get_or_insert(None);
            }
            self.arena_pos = at + size;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_perf_data::linux_perf_event_reader::{
        BranchSampleFormat, Endianness, ReadFormat, RecordIdParseInfo,
    };

    fn info(sf: SampleFormat) -> RecordParseInfo {
        RecordParseInfo {
            endian: Endianness::LittleEndian,
            sample_format: sf,
            branch_sample_format: BranchSampleFormat::empty(),
            read_format: ReadFormat::empty(),
            common_data_offset_from_end: None,
            sample_regs_user: 0,
            user_regs_count: 0,
            sample_regs_intr: 0,
            intr_regs_count: 0,
            id_parse_info: RecordIdParseInfo {
                nonsample_record_id_offset_from_end: None,
                sample_record_id_offset_from_start: None,
            },
            nonsample_record_time_offset_from_end: None,
            sample_record_time_offset_from_start: None,
        }
    }

    /// The fixed-offset read accepts and rejects exactly the bodies the crate's
    /// `SampleRecord::parse` does and gives the same fields, for every combination of the
    /// fixed fields and bodies cut at every length (RAW sizes that fit, overrun or are zero).
    #[test]
    fn sample_layout_matches_the_crate() {
        let fixed = [
            SampleFormat::IDENTIFIER,
            SampleFormat::IP,
            SampleFormat::TID,
            SampleFormat::TIME,
            SampleFormat::ADDR,
            SampleFormat::ID,
            SampleFormat::STREAM_ID,
            SampleFormat::CPU,
            SampleFormat::PERIOD,
            SampleFormat::RAW,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut compared = 0u32;
        for mask in 0u32..(1 << fixed.len()) {
            let sf = fixed
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .fold(SampleFormat::empty(), |a, (_, f)| a | *f);
            let layout = SampleLayout::of(sf).expect("fixed fields only");
            // A body: the fixed part, then a RAW size that fits, overruns or is zero.
            let mut body: Vec<u8> = (0..layout.fixed).map(|_| next() as u8).collect();
            let raw_len = (next() % 24) as u32;
            let declared = match next() % 3 {
                0 => raw_len,
                1 => raw_len + 1 + (next() % 8) as u32,
                _ => 0,
            };
            body.extend_from_slice(&declared.to_le_bytes());
            body.extend((0..raw_len).map(|_| next() as u8));
            for cut in 0..=body.len() {
                let b = &body[..cut];
                let ours = layout.read(b, Endian::Little);
                let theirs =
                    RawEventRecord::new(RecordType::SAMPLE, 0, RawData::Single(b), info(sf))
                        .parse()
                        .ok();
                let theirs = theirs.map(|ev| match ev {
                    EventRecord::Sample(s) => (
                        s.pid,
                        s.tid,
                        s.timestamp,
                        s.cpu,
                        s.raw.map(|r| r.as_slice().into_owned()),
                    ),
                    other => panic!("not a sample: {other:?}"),
                });
                let ours =
                    ours.map(|s| (s.pid, s.tid, s.timestamp, s.cpu, s.raw.map(<[u8]>::to_vec)));
                assert_eq!(ours, theirs, "sample_format {sf:?}, body {b:02x?}");
                compared += 1;
            }
        }
        assert!(compared > 20_000, "{compared}");
        // Fields of variable size before RAW: no fixed layout, the crate parses those.
        assert_eq!(
            SampleLayout::of(SampleFormat::CALLCHAIN | SampleFormat::RAW),
            None
        );
        assert_eq!(
            SampleLayout::of(SampleFormat::READ | SampleFormat::TID),
            None
        );
        assert_eq!(
            SampleLayout::of(SampleFormat::RAW | SampleFormat::REGS_USER),
            None
        );
    }
}
