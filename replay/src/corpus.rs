//! The compiled corpus format (`.mmr`): a parsed capture stored as a versioned, checksummed
//! stream of serde + bincode 2.x record chunks, so that `replay` and `stats` skip text parsing.
//!
//! Layout (all integers little endian; payloads bincode `standard()`, varint integers):
//! ```text
//! magic "MMRCORP\0" | version u32 | header_len u32 | header (bincode: CompiledHeader)
//! chunk*: tag 1 u8 | count u32 | len u32 | plain_len u32 | checksum64(stored) u64 | stored
//!         stored = zstd (level [`ZSTD_LEVEL`]) of payload, which is plain_len bytes:
//!         payload = serde + bincode of { strings: [str], comms: [bytes], ctxs: [Ctx],
//!                                        records: [Packed] }
//! end:    tag 0 u8 | total records u64 | fnv1a64 over all chunk checksums u64
//! ```
//! Each chunk carries its own string, comm and context tables: a record names a `Sym`, a
//! `Comm` or its (cpu, pid, tgid, comm) context by a u32 index, so the reader builds one
//! `Arc<str>` per distinct string per chunk instead of one per field per record, and
//! timestamps are deltas within the chunk. Chunks are independent. The writer encodes with
//! serde; the reader decodes the same bytes with bincode's derived decoder (faster per field).
//!
//! Chunks hold at most [`CHUNK_RECORDS`] records, so reading and writing are streaming (memory
//! bounded by a few chunks). The reader verifies and decodes on one helper thread
//! [`LOOKAHEAD_CHUNKS`] chunks ahead of the consumer, in file order; the consumer turns table
//! indices into `Record`s (so reference counts are touched by one thread only). What it must never do: trust a length or an
//! index before checking it against a bound, panic on corrupt bytes, or leave a half-written
//! output file (temp file + rename).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use mmreplay_parsers::record::{
    Comm, Event, IpiKind, Record, Sym, SysArgs, Syscall, TlbReason, Vmscan,
};
use serde::{Deserialize, Serialize};

/// File magic.
pub const MAGIC: &[u8; 8] = b"MMRCORP\0";
/// Format version; bump on any layout or `Record` change. 1: one bincode `Vec<Record>` per
/// chunk. 2: per-chunk string, comm and context tables, delta timestamps. 3: vmscan
/// `nr_ref_keep` / `nr_activate` / `nr_referenced`.
/// 4: chunk payloads zstd-compressed, the header holds the source's file name only (the bytes
/// do not depend on the directory compiled from) and the capture's `.meta.json` sidecar.
pub const VERSION: u32 = 4;
/// Records per chunk (larger chunks give zstd more context: 16 Ki records compress about as
/// well as the zstd -19 text they came from).
pub const CHUNK_RECORDS: usize = 16 * 1024;
/// zstd level of chunk payloads. Fixed: the same records always give the same bytes.
pub const ZSTD_LEVEL: i32 = 3;
/// Largest accepted chunk payload (a chunk of 16 Ki records is far below this).
const MAX_CHUNK_BYTES: u32 = 256 << 20;
const MAX_HEADER_BYTES: u32 = 1 << 20;

/// What the compiled file says about its source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledHeader {
    /// The file name (no directory) of the capture it was compiled from.
    pub source: String,
    /// The source format name (`ftrace`, `perf.data`, ...).
    pub format: String,
    /// CPUs of the captured machine, when the source said.
    pub nr_cpus: Option<u32>,
    /// The capture's `.meta.json` sidecar, verbatim, when it had one: the facts `replay`
    /// takes from it (kernel, LRU, workload pid) travel with the compiled file.
    pub sidecar: Option<String>,
}

impl CompiledHeader {
    /// The header for a capture at `path`: its file name only, and its sidecar if present.
    pub fn for_capture(path: &str, format: &str, nr_cpus: Option<u32>) -> CompiledHeader {
        let source = Path::new(path)
            .file_name()
            .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned());
        CompiledHeader {
            source,
            format: format.to_string(),
            nr_cpus,
            sidecar: std::fs::read_to_string(format!("{path}.meta.json")).ok(),
        }
    }
}

/// The header of the compiled file at `path`, or `None` if it is not one (or unreadable).
pub fn header_of(path: &str) -> Option<CompiledHeader> {
    let mut head = [0u8; 8];
    let mut f = File::open(path).ok()?;
    f.read_exact(&mut head).ok()?;
    if !is_compiled(&head) {
        return None;
    }
    let f = File::open(path).ok()?;
    Reader::new(path, BufReader::new(f))
        .ok()
        .map(|r| r.header().clone())
}

/// Errors reading or writing a compiled corpus file; every one names the file.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a compiled mmreplay corpus (expected magic \"MMRCORP\\0\" at byte 0)")]
    BadMagic { path: String },
    #[error("{path}: compiled corpus version {found}, this mmreplay reads version {expected}; recompile it with `mmreplay compile`")]
    Version {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("{path}: truncated at byte {offset}: expected {expected}")]
    Truncated {
        path: String,
        offset: u64,
        expected: &'static str,
    },
    #[error("{path}: chunk {chunk} at byte {offset}: checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the file is corrupt")]
    Checksum {
        path: String,
        chunk: u64,
        offset: u64,
        stored: u64,
        computed: u64,
    },
    #[error("{path}: byte {offset}: {what}")]
    Corrupt {
        path: String,
        offset: u64,
        what: String,
    },
    #[error("{path}: encoding records: {msg}")]
    Encode { path: String, msg: String },
    #[error("{path}: the chunk decoder thread stopped unexpectedly")]
    Decoder { path: String },
}

/// FNV-1a 64, byte at a time (used for short inputs and tails).
pub fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Chunk checksum: four independent multiply-rotate lanes over 8-byte little-endian words
/// (so the multiplies pipeline instead of forming one long dependency chain like byte-wise
/// FNV), the tail through FNV-1a, lanes and length folded at the end. Detects any single-bit
/// flip (each step is a bijection of the lane state for a fixed word); not cryptographic.
pub fn checksum64(bytes: &[u8]) -> u64 {
    const P: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes: [u64; 4] = [FNV_OFFSET, FNV_OFFSET ^ 1, FNV_OFFSET ^ 2, FNV_OFFSET ^ 3];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *lane = (*lane ^ u64::from_le_bytes(w))
                .wrapping_mul(P)
                .rotate_left(29);
        }
    }
    let mut h = fnv1a64(FNV_OFFSET, blocks.remainder());
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(P).rotate_left(31);
    }
    h ^ (bytes.len() as u64)
}

fn cfg() -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Varint> {
    // Varint integers. Uncompressed (version 3) fixed-width decoded faster; under zstd
    // (version 4) varint gives zstd 2.4x fewer bytes to produce, which pays for the varint
    // decoding: the same CPU to deliver all records (k61-reclaim-classic: 0.037 s either way,
    // `mmreplay bench --io-only`) in a file 19% smaller (1.14 MB vs 1.40 MB).
    bincode::config::standard()
}

/// The most memory the containers of one chunk may claim while decoding. bincode's own
/// decoder preallocates a container from its (untrusted) length, so without a limit a crafted
/// length could abort the process; a real chunk claims well under 1 MiB.
const DECODE_LIMIT: usize = 64 << 20;

fn read_cfg() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    cfg().with_limit::<DECODE_LIMIT>()
}

/// `Record` as stored in a chunk: every `Sym` is an index into the chunk's string table, every
/// `Comm` an index into its comm table, the (cpu, pid, tgid, comm) context an index into its
/// context table, and the timestamp is the (wrapping) difference from the previous record of
/// the chunk (the first record: from 0). Field order is the format.
#[derive(Clone, Copy, Serialize, Deserialize, bincode::Decode)]
struct Packed {
    dts: u64,
    ctx: u32,
    event: PEvent,
}

/// The context fields of a record, stored once per chunk (a chunk holds few distinct ones).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, bincode::Decode)]
struct Ctx {
    cpu: u32,
    pid: i32,
    tgid: Option<i32>,
    comm: u32,
}

/// [`Vmscan`] with string indices.
#[derive(Clone, Copy, Serialize, Deserialize, bincode::Decode)]
enum PVmscan {
    KswapdWake {
        nid: i32,
        order: i32,
    },
    KswapdSleep {
        nid: i32,
    },
    WakeupKswapd {
        nid: i32,
        order: i32,
    },
    DirectReclaimBegin {
        order: i32,
        memcg: bool,
    },
    DirectReclaimEnd {
        nr_reclaimed: u64,
        memcg: bool,
    },
    LruIsolate {
        nr_requested: u64,
        nr_scanned: u64,
        nr_taken: u64,
        lru: u32,
    },
    LruShrinkInactive {
        nid: i32,
        nr_scanned: u64,
        nr_reclaimed: u64,
        priority: i32,
        nr_ref_keep: u64,
        nr_activate: u64,
    },
    LruShrinkActive {
        nid: i32,
        nr_taken: u64,
        nr_active: u64,
        nr_deactivated: u64,
        nr_referenced: u64,
    },
    WriteFolio {
        pfn: u64,
    },
    Other {
        name: u32,
    },
}

/// [`Event`] with string and comm indices; one variant per `Event` variant, same order.
#[derive(Clone, Copy, Serialize, Deserialize, bincode::Decode)]
enum PEvent {
    PageFault {
        user: bool,
        address: u64,
        ip: u64,
        error_code: u64,
    },
    TlbFlush {
        pages: i64,
        code: Option<i32>,
        text: u32,
    },
    IpiSendCpu {
        target: u32,
        #[bincode(with_serde)]
        kind: IpiKind,
    },
    IpiSendCpumask {
        mask: u128,
        targets: u32,
        #[bincode(with_serde)]
        kind: IpiKind,
    },
    SetMigrationPte {
        addr: u64,
        pte: u64,
        order: u32,
    },
    RemoveMigrationPte {
        addr: u64,
        pte: u64,
        order: u32,
    },
    MmMigratePages {
        succeeded: u64,
        failed: u64,
        mode: u32,
        reason: u32,
    },
    MmMigratePagesStart {
        mode: u32,
        reason: u32,
    },
    MmLruInsertion {
        pfn: u64,
        lru: i32,
        flags: u32,
    },
    MmLruActivate {
        pfn: u64,
    },
    Vmscan(PVmscan),
    Compaction {
        name: u32,
    },
    SysEnter {
        #[bincode(with_serde)]
        nr: Syscall,
        #[bincode(with_serde)]
        args: SysArgs,
    },
    SysExit {
        #[bincode(with_serde)]
        nr: Syscall,
        ret: i64,
    },
    SchedProcessFork {
        parent_pid: i32,
        child_pid: i32,
        child_comm: u32,
    },
    SchedProcessExec {
        pid: i32,
        old_pid: i32,
    },
    SchedProcessExit {
        pid: i32,
    },
    SchedSwitch {
        prev_pid: i32,
        prev_state: u32,
        next_pid: i32,
        next_comm: u32,
    },
    SchedMigrateTask {
        pid: i32,
        orig_cpu: u32,
        dest_cpu: u32,
    },
    TaskNewtask {
        pid: i32,
        clone_flags: u64,
    },
    ExitMmap,
    RssStat {
        mm_id: u64,
        curr: bool,
        member: u32,
        size: i64,
    },
    Filemap {
        add: bool,
        pfn: u64,
        ino: u64,
        index: u64,
        order: u32,
    },
    Hugetlbfs {
        name: u32,
    },
    Khugepaged {
        name: u32,
    },
    DamonAggregated {
        target_id: u64,
        nr_regions: u32,
        start: u64,
        end: u64,
        nr_accesses: u32,
        age: Option<u32>,
    },
    Lost {
        count: Option<u64>,
    },
    Other {
        name: u32,
    },
    CsdQueueCpu {
        target: u32,
        #[bincode(with_serde)]
        kind: IpiKind,
    },
    // Appended (variant index 37): every earlier version-2 file still decodes.
    CollapseHugePage {
        mm: u64,
        status: u32,
    },
    // Appended (bincode numbers variants in order): files written before still read.
    CallFunctionEntry {
        single: bool,
        vector: u32,
    },
    Kprobe {
        name: u32,
    },
}

/// A chunk payload as written: the tables, then the records that index into them.
#[derive(Serialize)]
struct ChunkOut<'a> {
    strings: &'a [Sym],
    comms: &'a [&'a [u8]],
    ctxs: &'a [Ctx],
    records: &'a [Packed],
}

/// A chunk payload as read: the tables borrow from the payload bytes (no allocation until the
/// string table is turned into one `Sym` per distinct string). Decoded with bincode's own
/// decoder: the bytes are exactly what serde + bincode wrote for [`ChunkOut`] (same config,
/// same field order; `every_event_variant_round_trips_across_chunks` checks it), and
/// bincode's decoder is several times faster per field than going through serde's visitors.
struct ChunkIn<'a> {
    strings: Vec<&'a str>,
    comms: Vec<&'a [u8]>,
    ctxs: Vec<Ctx>,
    /// Filled in place: the decoder context is a recycled vector, so steady-state reading
    /// allocates no record buffer per chunk.
    records: Vec<Packed>,
}

impl<'de> bincode::BorrowDecode<'de, Vec<Packed>> for ChunkIn<'de> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Vec<Packed>>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use bincode::Decode;
        let strings = Vec::<&str>::borrow_decode(d)?;
        let comms = Vec::<&[u8]>::borrow_decode(d)?;
        let ctxs = Vec::<Ctx>::decode(d)?;
        // A sequence length, as serde + bincode write it.
        let len = u64::decode(d)?;
        if len > CHUNK_RECORDS as u64 {
            return Err(bincode::error::DecodeError::OtherString(format!(
                "{len} records, more than the {CHUNK_RECORDS} a chunk may hold"
            )));
        }
        let mut records = std::mem::take(d.context());
        records.clear();
        records.reserve(len as usize);
        for _ in 0..len {
            records.push(Packed::decode(d)?);
        }
        Ok(ChunkIn {
            strings,
            comms,
            ctxs,
            records,
        })
    }
}

/// Per-chunk interning of strings and comms (first occurrence order, so output is
/// deterministic; the hash maps are only looked up, never iterated).
#[derive(Default)]
struct Tables {
    strings: Vec<Sym>,
    string_ix: HashMap<Sym, u32>,
    comms: Vec<Comm>,
    comm_ix: HashMap<Comm, u32>,
    ctxs: Vec<Ctx>,
    ctx_ix: HashMap<Ctx, u32>,
}

impl Tables {
    fn sym(&mut self, s: &Sym) -> u32 {
        if let Some(&i) = self.string_ix.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.clone());
        self.string_ix.insert(s.clone(), i);
        i
    }

    fn comm(&mut self, c: Comm) -> u32 {
        *self.comm_ix.entry(c).or_insert_with(|| {
            self.comms.push(c);
            (self.comms.len() - 1) as u32
        })
    }

    fn ctx(&mut self, r: &Record) -> u32 {
        let c = Ctx {
            cpu: r.cpu,
            pid: r.pid,
            tgid: r.tgid,
            comm: self.comm(r.comm),
        };
        *self.ctx_ix.entry(c).or_insert_with(|| {
            self.ctxs.push(c);
            (self.ctxs.len() - 1) as u32
        })
    }

    fn clear(&mut self) {
        self.ctxs.clear();
        self.ctx_ix.clear();
        self.strings.clear();
        self.string_ix.clear();
        self.comms.clear();
        self.comm_ix.clear();
    }

    fn pack(&mut self, r: &Record, prev_ts: u64) -> Packed {
        let event = match &r.event {
            Event::PageFault {
                user,
                address,
                ip,
                error_code,
            } => PEvent::PageFault {
                user: *user,
                address: *address,
                ip: *ip,
                error_code: *error_code,
            },
            Event::TlbFlush { pages, reason } => PEvent::TlbFlush {
                pages: *pages,
                code: reason.code,
                text: self.sym(&reason.text),
            },
            Event::IpiSendCpu { target, kind } => PEvent::IpiSendCpu {
                target: *target,
                kind: *kind,
            },
            Event::IpiSendCpumask {
                mask,
                targets,
                kind,
            } => PEvent::IpiSendCpumask {
                mask: *mask,
                targets: *targets,
                kind: *kind,
            },
            Event::SetMigrationPte { addr, pte, order } => PEvent::SetMigrationPte {
                addr: *addr,
                pte: *pte,
                order: *order,
            },
            Event::RemoveMigrationPte { addr, pte, order } => PEvent::RemoveMigrationPte {
                addr: *addr,
                pte: *pte,
                order: *order,
            },
            Event::MmMigratePages {
                succeeded,
                failed,
                mode,
                reason,
            } => PEvent::MmMigratePages {
                succeeded: *succeeded,
                failed: *failed,
                mode: self.sym(mode),
                reason: self.sym(reason),
            },
            Event::MmMigratePagesStart { mode, reason } => PEvent::MmMigratePagesStart {
                mode: self.sym(mode),
                reason: self.sym(reason),
            },
            Event::MmLruInsertion { pfn, lru, flags } => PEvent::MmLruInsertion {
                pfn: *pfn,
                lru: *lru,
                flags: self.sym(flags),
            },
            Event::MmLruActivate { pfn } => PEvent::MmLruActivate { pfn: *pfn },
            Event::Vmscan(v) => PEvent::Vmscan(match v {
                Vmscan::KswapdWake { nid, order } => PVmscan::KswapdWake {
                    nid: *nid,
                    order: *order,
                },
                Vmscan::KswapdSleep { nid } => PVmscan::KswapdSleep { nid: *nid },
                Vmscan::WakeupKswapd { nid, order } => PVmscan::WakeupKswapd {
                    nid: *nid,
                    order: *order,
                },
                Vmscan::DirectReclaimBegin { order, memcg } => PVmscan::DirectReclaimBegin {
                    order: *order,
                    memcg: *memcg,
                },
                Vmscan::DirectReclaimEnd {
                    nr_reclaimed,
                    memcg,
                } => PVmscan::DirectReclaimEnd {
                    nr_reclaimed: *nr_reclaimed,
                    memcg: *memcg,
                },
                Vmscan::LruIsolate {
                    nr_requested,
                    nr_scanned,
                    nr_taken,
                    lru,
                } => PVmscan::LruIsolate {
                    nr_requested: *nr_requested,
                    nr_scanned: *nr_scanned,
                    nr_taken: *nr_taken,
                    lru: self.sym(lru),
                },
                Vmscan::LruShrinkInactive {
                    nid,
                    nr_scanned,
                    nr_reclaimed,
                    priority,
                    nr_ref_keep,
                    nr_activate,
                } => PVmscan::LruShrinkInactive {
                    nid: *nid,
                    nr_scanned: *nr_scanned,
                    nr_reclaimed: *nr_reclaimed,
                    priority: *priority,
                    nr_ref_keep: *nr_ref_keep,
                    nr_activate: *nr_activate,
                },
                Vmscan::LruShrinkActive {
                    nid,
                    nr_taken,
                    nr_active,
                    nr_deactivated,
                    nr_referenced,
                } => PVmscan::LruShrinkActive {
                    nid: *nid,
                    nr_taken: *nr_taken,
                    nr_active: *nr_active,
                    nr_deactivated: *nr_deactivated,
                    nr_referenced: *nr_referenced,
                },
                Vmscan::WriteFolio { pfn } => PVmscan::WriteFolio { pfn: *pfn },
                Vmscan::Other { name } => PVmscan::Other {
                    name: self.sym(name),
                },
            }),
            Event::Compaction { name } => PEvent::Compaction {
                name: self.sym(name),
            },
            Event::SysEnter { nr, args } => PEvent::SysEnter {
                nr: *nr,
                args: *args,
            },
            Event::SysExit { nr, ret } => PEvent::SysExit { nr: *nr, ret: *ret },
            Event::SchedProcessFork {
                parent_pid,
                child_pid,
                child_comm,
            } => PEvent::SchedProcessFork {
                parent_pid: *parent_pid,
                child_pid: *child_pid,
                child_comm: self.comm(*child_comm),
            },
            Event::SchedProcessExec { pid, old_pid } => PEvent::SchedProcessExec {
                pid: *pid,
                old_pid: *old_pid,
            },
            Event::SchedProcessExit { pid } => PEvent::SchedProcessExit { pid: *pid },
            Event::SchedSwitch {
                prev_pid,
                prev_state,
                next_pid,
                next_comm,
            } => PEvent::SchedSwitch {
                prev_pid: *prev_pid,
                prev_state: self.sym(prev_state),
                next_pid: *next_pid,
                next_comm: self.comm(*next_comm),
            },
            Event::SchedMigrateTask {
                pid,
                orig_cpu,
                dest_cpu,
            } => PEvent::SchedMigrateTask {
                pid: *pid,
                orig_cpu: *orig_cpu,
                dest_cpu: *dest_cpu,
            },
            Event::TaskNewtask { pid, clone_flags } => PEvent::TaskNewtask {
                pid: *pid,
                clone_flags: *clone_flags,
            },
            Event::ExitMmap => PEvent::ExitMmap,
            Event::RssStat {
                mm_id,
                curr,
                member,
                size,
            } => PEvent::RssStat {
                mm_id: *mm_id,
                curr: *curr,
                member: self.sym(member),
                size: *size,
            },
            Event::Filemap {
                add,
                pfn,
                ino,
                index,
                order,
            } => PEvent::Filemap {
                add: *add,
                pfn: *pfn,
                ino: *ino,
                index: *index,
                order: *order,
            },
            Event::Hugetlbfs { name } => PEvent::Hugetlbfs {
                name: self.sym(name),
            },
            Event::Khugepaged { name } => PEvent::Khugepaged {
                name: self.sym(name),
            },
            Event::DamonAggregated {
                target_id,
                nr_regions,
                start,
                end,
                nr_accesses,
                age,
            } => PEvent::DamonAggregated {
                target_id: *target_id,
                nr_regions: *nr_regions,
                start: *start,
                end: *end,
                nr_accesses: *nr_accesses,
                age: *age,
            },
            Event::Lost { count } => PEvent::Lost { count: *count },
            Event::CsdQueueCpu { target, kind } => PEvent::CsdQueueCpu {
                target: *target,
                kind: *kind,
            },
            Event::CollapseHugePage { mm, status } => PEvent::CollapseHugePage {
                mm: *mm,
                status: self.sym(status),
            },
            Event::Other { name } => PEvent::Other {
                name: self.sym(name),
            },
            Event::CallFunctionEntry { single, vector } => PEvent::CallFunctionEntry {
                single: *single,
                vector: *vector,
            },
            Event::Kprobe { name } => PEvent::Kprobe {
                name: self.sym(name),
            },
        };
        Packed {
            dts: r.ts_ns.wrapping_sub(prev_ts),
            ctx: self.ctx(r),
            event,
        }
    }
}

/// The decoded tables of one chunk; every lookup is checked (a corrupt index is an error).
struct Lookup<'a> {
    strings: &'a [Sym],
    comms: &'a [Comm],
    ctxs: &'a [(u32, i32, Option<i32>, Comm)],
}

/// An index out of range: which table, the index and the table size.
struct BadIndex(&'static str, u32, usize);

impl Lookup<'_> {
    fn s(&self, i: u32) -> Result<Sym, BadIndex> {
        self.strings
            .get(i as usize)
            .cloned()
            .ok_or(BadIndex("string", i, self.strings.len()))
    }

    fn c(&self, i: u32) -> Result<Comm, BadIndex> {
        self.comms
            .get(i as usize)
            .copied()
            .ok_or(BadIndex("comm", i, self.comms.len()))
    }

    #[inline(always)]
    fn unpack(&self, p: Packed, ts_ns: u64) -> Result<Record, BadIndex> {
        let event = match p.event {
            PEvent::PageFault {
                user,
                address,
                ip,
                error_code,
            } => Event::PageFault {
                user,
                address,
                ip,
                error_code,
            },
            PEvent::TlbFlush { pages, code, text } => Event::TlbFlush {
                pages,
                reason: TlbReason {
                    code,
                    text: self.s(text)?,
                },
            },
            PEvent::IpiSendCpu { target, kind } => Event::IpiSendCpu { target, kind },
            PEvent::IpiSendCpumask {
                mask,
                targets,
                kind,
            } => Event::IpiSendCpumask {
                mask,
                targets,
                kind,
            },
            PEvent::SetMigrationPte { addr, pte, order } => {
                Event::SetMigrationPte { addr, pte, order }
            }
            PEvent::RemoveMigrationPte { addr, pte, order } => {
                Event::RemoveMigrationPte { addr, pte, order }
            }
            PEvent::MmMigratePages {
                succeeded,
                failed,
                mode,
                reason,
            } => Event::MmMigratePages {
                succeeded,
                failed,
                mode: self.s(mode)?,
                reason: self.s(reason)?,
            },
            PEvent::MmMigratePagesStart { mode, reason } => Event::MmMigratePagesStart {
                mode: self.s(mode)?,
                reason: self.s(reason)?,
            },
            PEvent::MmLruInsertion { pfn, lru, flags } => Event::MmLruInsertion {
                pfn,
                lru,
                flags: self.s(flags)?,
            },
            PEvent::MmLruActivate { pfn } => Event::MmLruActivate { pfn },
            PEvent::Vmscan(v) => Event::Vmscan(match v {
                PVmscan::KswapdWake { nid, order } => Vmscan::KswapdWake { nid, order },
                PVmscan::KswapdSleep { nid } => Vmscan::KswapdSleep { nid },
                PVmscan::WakeupKswapd { nid, order } => Vmscan::WakeupKswapd { nid, order },
                PVmscan::DirectReclaimBegin { order, memcg } => {
                    Vmscan::DirectReclaimBegin { order, memcg }
                }
                PVmscan::DirectReclaimEnd {
                    nr_reclaimed,
                    memcg,
                } => Vmscan::DirectReclaimEnd {
                    nr_reclaimed,
                    memcg,
                },
                PVmscan::LruIsolate {
                    nr_requested,
                    nr_scanned,
                    nr_taken,
                    lru,
                } => Vmscan::LruIsolate {
                    nr_requested,
                    nr_scanned,
                    nr_taken,
                    lru: self.s(lru)?,
                },
                PVmscan::LruShrinkInactive {
                    nid,
                    nr_scanned,
                    nr_reclaimed,
                    priority,
                    nr_ref_keep,
                    nr_activate,
                } => Vmscan::LruShrinkInactive {
                    nid,
                    nr_scanned,
                    nr_reclaimed,
                    priority,
                    nr_ref_keep,
                    nr_activate,
                },
                PVmscan::LruShrinkActive {
                    nid,
                    nr_taken,
                    nr_active,
                    nr_deactivated,
                    nr_referenced,
                } => Vmscan::LruShrinkActive {
                    nid,
                    nr_taken,
                    nr_active,
                    nr_deactivated,
                    nr_referenced,
                },
                PVmscan::WriteFolio { pfn } => Vmscan::WriteFolio { pfn },
                PVmscan::Other { name } => Vmscan::Other {
                    name: self.s(name)?,
                },
            }),
            PEvent::Compaction { name } => Event::Compaction {
                name: self.s(name)?,
            },
            PEvent::SysEnter { nr, args } => Event::SysEnter { nr, args },
            PEvent::SysExit { nr, ret } => Event::SysExit { nr, ret },
            PEvent::SchedProcessFork {
                parent_pid,
                child_pid,
                child_comm,
            } => Event::SchedProcessFork {
                parent_pid,
                child_pid,
                child_comm: self.c(child_comm)?,
            },
            PEvent::SchedProcessExec { pid, old_pid } => Event::SchedProcessExec { pid, old_pid },
            PEvent::SchedProcessExit { pid } => Event::SchedProcessExit { pid },
            PEvent::SchedSwitch {
                prev_pid,
                prev_state,
                next_pid,
                next_comm,
            } => Event::SchedSwitch {
                prev_pid,
                prev_state: self.s(prev_state)?,
                next_pid,
                next_comm: self.c(next_comm)?,
            },
            PEvent::SchedMigrateTask {
                pid,
                orig_cpu,
                dest_cpu,
            } => Event::SchedMigrateTask {
                pid,
                orig_cpu,
                dest_cpu,
            },
            PEvent::TaskNewtask { pid, clone_flags } => Event::TaskNewtask { pid, clone_flags },
            PEvent::ExitMmap => Event::ExitMmap,
            PEvent::RssStat {
                mm_id,
                curr,
                member,
                size,
            } => Event::RssStat {
                mm_id,
                curr,
                member: self.s(member)?,
                size,
            },
            PEvent::Filemap {
                add,
                pfn,
                ino,
                index,
                order,
            } => Event::Filemap {
                add,
                pfn,
                ino,
                index,
                order,
            },
            PEvent::Hugetlbfs { name } => Event::Hugetlbfs {
                name: self.s(name)?,
            },
            PEvent::Khugepaged { name } => Event::Khugepaged {
                name: self.s(name)?,
            },
            PEvent::DamonAggregated {
                target_id,
                nr_regions,
                start,
                end,
                nr_accesses,
                age,
            } => Event::DamonAggregated {
                target_id,
                nr_regions,
                start,
                end,
                nr_accesses,
                age,
            },
            PEvent::Lost { count } => Event::Lost { count },
            PEvent::CsdQueueCpu { target, kind } => Event::CsdQueueCpu { target, kind },
            PEvent::CollapseHugePage { mm, status } => Event::CollapseHugePage {
                mm,
                status: self.s(status)?,
            },
            PEvent::Other { name } => Event::Other {
                name: self.s(name)?,
            },
            PEvent::CallFunctionEntry { single, vector } => {
                Event::CallFunctionEntry { single, vector }
            }
            PEvent::Kprobe { name } => Event::Kprobe {
                name: self.s(name)?,
            },
        };
        let &(cpu, pid, tgid, comm) =
            self.ctxs
                .get(p.ctx as usize)
                .ok_or(BadIndex("context", p.ctx, self.ctxs.len()))?;
        Ok(Record {
            ts_ns,
            cpu,
            pid,
            tgid,
            comm,
            event,
        })
    }
}

/// Streaming writer; call [`Writer::finish`] to write the end marker and rename into place.
pub struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    buf: Vec<Packed>,
    tables: Tables,
    prev_ts: u64,
    total: u64,
    sum: u64,
    scratch: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
}

impl Writer {
    /// Create `path` (written to a temp file next to it until `finish`).
    pub fn create(path: &Path, header: &CompiledHeader) -> Result<Writer, CorpusError> {
        let p = path.display().to_string();
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let f = File::create(&tmp).map_err(|source| CorpusError::Io {
            path: tmp.display().to_string(),
            op: "create",
            source,
        })?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        let h = bincode::serde::encode_to_vec(header, cfg()).map_err(|e| CorpusError::Encode {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        let io = |source| CorpusError::Io {
            path: p.clone(),
            op: "write",
            source,
        };
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        out.write_all(&(h.len() as u32).to_le_bytes()).map_err(io)?;
        out.write_all(&h).map_err(io)?;
        let zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| CorpusError::Encode {
            path: p.clone(),
            msg: format!("zstd: {e}"),
        })?;
        Ok(Writer {
            zstd,
            path: path.to_path_buf(),
            tmp,
            out: Some(out),
            buf: Vec::with_capacity(CHUNK_RECORDS),
            tables: Tables::default(),
            prev_ts: 0,
            total: 0,
            sum: FNV_OFFSET,
            scratch: Vec::new(),
        })
    }

    /// Append one record.
    pub fn push(&mut self, r: Record) -> Result<(), CorpusError> {
        let p = self.tables.pack(&r, self.prev_ts);
        self.prev_ts = r.ts_ns;
        self.buf.push(p);
        if self.buf.len() >= CHUNK_RECORDS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), CorpusError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let p = self.path.display().to_string();
        self.scratch.clear();
        let comms: Vec<&[u8]> = self.tables.comms.iter().map(|c| c.as_bytes()).collect();
        let chunk = ChunkOut {
            strings: &self.tables.strings,
            comms: &comms,
            ctxs: &self.tables.ctxs,
            records: &self.buf,
        };
        bincode::serde::encode_into_std_write(&chunk, &mut self.scratch, cfg()).map_err(|e| {
            CorpusError::Encode {
                path: p.clone(),
                msg: e.to_string(),
            }
        })?;
        if self.scratch.len() > MAX_CHUNK_BYTES as usize {
            return Err(CorpusError::Encode {
                path: p,
                msg: format!(
                    "a chunk encodes to {} bytes, over the {MAX_CHUNK_BYTES}-byte limit",
                    self.scratch.len()
                ),
            });
        }
        let plain_len = self.scratch.len() as u32;
        let stored = self
            .zstd
            .compress(&self.scratch)
            .map_err(|e| CorpusError::Encode {
                path: p.clone(),
                msg: format!("zstd: {e}"),
            })?;
        let h = checksum64(&stored);
        self.sum = fnv1a64(self.sum, &h.to_le_bytes());
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let io = |source| CorpusError::Io {
            path: p.clone(),
            op: "write",
            source,
        };
        out.write_all(&[1u8]).map_err(io)?;
        out.write_all(&(self.buf.len() as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&(stored.len() as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&plain_len.to_le_bytes()).map_err(io)?;
        out.write_all(&h.to_le_bytes()).map_err(io)?;
        out.write_all(&stored).map_err(io)?;
        self.total += self.buf.len() as u64;
        self.buf.clear();
        self.tables.clear();
        self.prev_ts = 0;
        Ok(())
    }

    /// Write the end marker, sync and rename into place. Returns the record count.
    pub fn finish(mut self) -> Result<u64, CorpusError> {
        self.flush_chunk()?;
        let p = self.path.display().to_string();
        let Some(mut out) = self.out.take() else {
            return Ok(self.total);
        };
        let io = |op, source| CorpusError::Io {
            path: p.clone(),
            op,
            source,
        };
        let done = (|| {
            out.write_all(&[0u8]).map_err(|e| io("write", e))?;
            out.write_all(&self.total.to_le_bytes())
                .map_err(|e| io("write", e))?;
            out.write_all(&self.sum.to_le_bytes())
                .map_err(|e| io("write", e))?;
            let f = out.into_inner().map_err(|e| io("write", e.into_error()))?;
            f.sync_all().map_err(|e| io("sync", e))?;
            std::fs::rename(&self.tmp, &self.path).map_err(|e| io("rename", e))
        })();
        if let Err(e) = done {
            // `Drop` only cleans up while `out` is set; it was taken above (a full disk fails
            // here, at the last flush).
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e);
        }
        Ok(self.total)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Not finished (error path): do not leave the temp file behind.
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Whether `head` starts with the compiled-corpus magic.
pub fn is_compiled(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// A chunk read but not yet verified or decoded.
struct RawChunk {
    buf: Vec<u8>,
    /// Length of the payload once decompressed.
    plain_len: u32,
    count: u32,
    stored: u64,
    offset: u64,
    index: u64,
}

/// Read buffer for compiled files. Small on purpose: a chunk payload larger than the buffer is
/// read straight into its own buffer, skipping a copy through the `BufReader`.
pub const READ_BUFFER: usize = 16 << 10;

/// Chunks handed to the decoder thread ahead of the consumer (memory: at most this many raw
/// chunks plus this many decoded ones plus the one being consumed).
pub const LOOKAHEAD_CHUNKS: usize = 2;

/// Verify and decode one chunk (runs on the decoder thread).
fn decode_chunk(
    path: &str,
    c: RawChunk,
    spare: Vec<Packed>,
    unzstd: &mut zstd::bulk::Decompressor<'static>,
    plain: &mut Vec<u8>,
) -> Result<Decoded, CorpusError> {
    let computed = checksum64(&c.buf);
    if computed != c.stored {
        return Err(CorpusError::Checksum {
            path: path.to_string(),
            chunk: c.index,
            offset: c.offset,
            stored: c.stored,
            computed,
        });
    }
    let corrupt = |what: String| CorpusError::Corrupt {
        path: path.to_string(),
        offset: c.offset,
        what: format!("chunk {}: {what}", c.index),
    };
    // Decompress into a buffer of exactly the stated size: zstd fails when the output does
    // not fit, and a shorter output is caught below, so a lying length is an error.
    plain.clear();
    plain.reserve(c.plain_len as usize);
    let n = unzstd
        .decompress_to_buffer(&c.buf[..], plain)
        .map_err(|e| corrupt(format!("does not decompress to {} bytes: {e}", c.plain_len)))?;
    if n != c.plain_len as usize {
        return Err(corrupt(format!(
            "decompresses to {n} bytes, its header says {}",
            c.plain_len
        )));
    }
    let payload = &plain[..];
    let (chunk, used) =
        bincode::borrow_decode_from_slice_with_context::<_, ChunkIn, _>(payload, read_cfg(), spare)
            .map_err(|e| corrupt(format!("does not decode: {e}")))?;
    if used != payload.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the records",
            payload.len() - used
        )));
    }
    if chunk.records.len() != c.count as usize {
        return Err(corrupt(format!(
            "holds {} records, its header says {}",
            chunk.records.len(),
            c.count
        )));
    }
    let strings: Vec<Sym> = chunk.strings.iter().map(|s| Sym::from(*s)).collect();
    let mut comms = Vec::with_capacity(chunk.comms.len());
    for (i, c) in chunk.comms.iter().enumerate() {
        if c.len() > Comm::MAX {
            return Err(corrupt(format!(
                "comm {i} is {} bytes, longer than {}",
                c.len(),
                Comm::MAX
            )));
        }
        comms.push(Comm::new(c));
    }
    let mut ctxs = Vec::with_capacity(chunk.ctxs.len());
    for (i, x) in chunk.ctxs.iter().enumerate() {
        let Some(&comm) = comms.get(x.comm as usize) else {
            return Err(corrupt(format!(
                "context {i} refers to comm {}, the chunk's comm table has {}",
                x.comm,
                comms.len()
            )));
        };
        ctxs.push((x.cpu, x.pid, x.tgid, comm));
    }
    let records = chunk.records;
    Ok(Decoded {
        strings,
        comms,
        ctxs,
        records,
        pos: 0,
        ts: 0,
        offset: c.offset,
        index: c.index,
        raw: c.buf,
    })
}

/// A decoded chunk, turned into `Record`s one at a time by the consumer. The `Sym` clones
/// happen on the consumer's thread, which also drops the records: done on the decoder thread,
/// every record's reference counts would bounce between two CPUs' caches.
struct Decoded {
    strings: Vec<Sym>,
    comms: Vec<Comm>,
    ctxs: Vec<(u32, i32, Option<i32>, Comm)>,
    records: Vec<Packed>,
    /// Index of the next record in `records`.
    pos: usize,
    /// Timestamp of the previous record (the deltas' base).
    ts: u64,
    offset: u64,
    index: u64,
    /// The payload buffer, handed back for the next read.
    raw: Vec<u8>,
}

impl Decoded {
    fn empty() -> Decoded {
        Decoded {
            strings: Vec::new(),
            comms: Vec::new(),
            ctxs: Vec::new(),
            records: Vec::new(),
            pos: 0,
            ts: 0,
            offset: 0,
            index: 0,
            raw: Vec::new(),
        }
    }

    // Inlined into the caller so the record is built where the caller returns it: each extra
    // layer would copy the 112-byte `Record` again, which measurably costs per record.
    #[inline(always)]
    fn next_record(&mut self, path: &str) -> Option<Result<Record, CorpusError>> {
        let p = *self.records.get(self.pos)?;
        self.pos += 1;
        self.ts = self.ts.wrapping_add(p.dts);
        let look = Lookup {
            strings: &self.strings,
            comms: &self.comms,
            ctxs: &self.ctxs,
        };
        Some(match look.unpack(p, self.ts) {
            Ok(r) => Ok(r),
            Err(b) => Err(self.bad_index(path, b)),
        })
    }

    #[cold]
    #[inline(never)]
    fn bad_index(&self, path: &str, BadIndex(table, ix, len): BadIndex) -> CorpusError {
        CorpusError::Corrupt {
            path: path.to_string(),
            offset: self.offset,
            what: format!(
                "chunk {}: record {} refers to {table} {ix}, the chunk's {table} table has {len}",
                self.index,
                self.pos.saturating_sub(1)
            ),
        }
    }
}

/// The decoder thread: verifies and decodes chunks in the order they arrive, so the record
/// order is the file order whatever the timing.
struct Decoder {
    to: Option<SyncSender<RawChunk>>,
    from: Receiver<Result<Decoded, CorpusError>>,
    /// Consumed record vectors going back to the thread for reuse.
    recycle: SyncSender<Vec<Packed>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Decoder {
    fn spawn(path: &str) -> std::io::Result<Decoder> {
        let (to, raw_rx) = sync_channel::<RawChunk>(LOOKAHEAD_CHUNKS);
        let (done_tx, from) = sync_channel(LOOKAHEAD_CHUNKS);
        let (recycle, recycled) = sync_channel::<Vec<Packed>>(LOOKAHEAD_CHUNKS + 1);
        let path = path.to_string();
        let thread = std::thread::Builder::new()
            .name("mmr-decode".into())
            .spawn(move || {
                let mut unzstd = match zstd::bulk::Decompressor::new() {
                    Ok(d) => d,
                    Err(_) => return, // the reader reports the decoder as gone
                };
                let mut plain = Vec::new();
                for raw in raw_rx {
                    let spare = recycled.try_recv().unwrap_or_default();
                    let d = decode_chunk(&path, raw, spare, &mut unzstd, &mut plain);
                    if done_tx.send(d).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Decoder {
            to: Some(to),
            from,
            recycle,
            thread: Some(thread),
        })
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // Closing the sender ends the thread's loop after at most one chunk.
        self.to.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Streaming reader. Reading (and the end-marker check) happens on the caller's thread;
/// checksumming and decoding on one decoder thread, [`LOOKAHEAD_CHUNKS`] chunks ahead.
pub struct Reader<R: Read> {
    path: String,
    inp: R,
    offset: u64,
    header: CompiledHeader,
    current: Decoded,
    decoder: Option<Decoder>,
    /// Chunks sent to the decoder and not yet received.
    in_flight: usize,
    /// An error met while reading ahead: returned once every earlier record is delivered.
    pending_err: Option<CorpusError>,
    chunks: u64,
    total: u64,
    sum: u64,
    /// The end marker has been read and verified.
    done: bool,
    /// An error was returned.
    failed: bool,
    /// Payload buffers handed back by the decoder, reused for the next reads.
    spare_raw: Vec<Vec<u8>>,
}

impl Reader<BufReader<File>> {
    /// Open a compiled file.
    pub fn open(path: &Path) -> Result<Self, CorpusError> {
        let p = path.display().to_string();
        let f = File::open(path).map_err(|source| CorpusError::Io {
            path: p.clone(),
            op: "open",
            source,
        })?;
        Reader::new(&p, BufReader::with_capacity(READ_BUFFER, f))
    }
}

impl<R: Read> Reader<R> {
    /// Read the header from `inp`; `path` is for messages.
    pub fn new(path: &str, inp: R) -> Result<Self, CorpusError> {
        let mut r = Reader {
            path: path.to_string(),
            inp,
            offset: 0,
            header: CompiledHeader::default(),
            current: Decoded::empty(),
            decoder: None,
            in_flight: 0,
            pending_err: None,
            chunks: 0,
            total: 0,
            sum: FNV_OFFSET,
            done: false,
            failed: false,
            spare_raw: Vec::new(),
        };
        let mut magic = [0u8; 8];
        r.exact(&mut magic, "the 8-byte magic")?;
        if &magic != MAGIC {
            return Err(CorpusError::BadMagic { path: r.path });
        }
        let version = r.u32("the format version")?;
        if version != VERSION {
            return Err(CorpusError::Version {
                path: r.path,
                found: version,
                expected: VERSION,
            });
        }
        let hlen = r.u32("the header length")?;
        if hlen > MAX_HEADER_BYTES {
            return Err(r.corrupt(format!("header length {hlen} exceeds {MAX_HEADER_BYTES}")));
        }
        let mut h = vec![0u8; hlen as usize];
        r.exact(&mut h, "the header")?;
        // Limited like the chunks: a string length in the header is untrusted, and no
        // container of a header at most 1 MiB long can need more (found by fuzz/ `mmr`).
        let hcfg = cfg().with_limit::<{ MAX_HEADER_BYTES as usize }>();
        let (header, _) = bincode::serde::decode_from_slice::<CompiledHeader, _>(&h, hcfg)
            .map_err(|e| r.corrupt(format!("bad header: {e}")))?;
        r.header = header;
        let decoder = Decoder::spawn(&r.path).map_err(|source| CorpusError::Io {
            path: r.path.clone(),
            op: "start the decoder thread",
            source,
        })?;
        r.decoder = Some(decoder);
        Ok(r)
    }

    /// The header.
    pub fn header(&self) -> &CompiledHeader {
        &self.header
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn corrupt(&self, what: String) -> CorpusError {
        CorpusError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            what,
        }
    }

    fn exact(&mut self, buf: &mut [u8], expected: &'static str) -> Result<(), CorpusError> {
        match self.inp.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(CorpusError::Truncated {
                    path: self.path.clone(),
                    offset: self.offset,
                    expected,
                })
            }
            Err(source) => Err(CorpusError::Io {
                path: self.path.clone(),
                op: "read",
                source,
            }),
        }
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CorpusError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CorpusError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read the next chunk (`Some`) or the end marker (`None`, after checking it).
    fn next_chunk(&mut self) -> Result<Option<RawChunk>, CorpusError> {
        let start = self.offset;
        let mut tag = [0u8; 1];
        self.exact(&mut tag, "a chunk tag or the end marker")?;
        match tag[0] {
            0 => {
                let total = self.u64("the record count of the end marker")?;
                let sum = self.u64("the checksum of the end marker")?;
                if total != self.total {
                    return Err(self.corrupt(format!(
                        "end marker says {total} records, chunk headers say {}",
                        self.total
                    )));
                }
                if sum != self.sum {
                    return Err(CorpusError::Checksum {
                        path: self.path.clone(),
                        chunk: self.chunks,
                        offset: start,
                        stored: sum,
                        computed: self.sum,
                    });
                }
                self.done = true;
                Ok(None)
            }
            1 => {
                let count = self.u32("a chunk record count")?;
                let len = self.u32("a chunk length")?;
                let plain_len = self.u32("a chunk's decompressed length")?;
                let stored = self.u64("a chunk checksum")?;
                self.total += u64::from(count);
                if len > MAX_CHUNK_BYTES
                    || plain_len > MAX_CHUNK_BYTES
                    || count as usize > CHUNK_RECORDS
                {
                    return Err(self.corrupt(format!("chunk {} claims {count} records in {len} bytes ({plain_len} decompressed; limits {CHUNK_RECORDS}, {MAX_CHUNK_BYTES})", self.chunks)));
                }
                let mut buf = self.spare_raw.pop().unwrap_or_default();
                buf.clear();
                // Grows with the bytes that are really there, never sized from the (untrusted)
                // length: a 30-byte file claiming a 256 MiB chunk must not cost 256 MiB.
                let got = (&mut self.inp)
                    .take(u64::from(len))
                    .read_to_end(&mut buf)
                    .map_err(|source| CorpusError::Io {
                        path: self.path.clone(),
                        op: "read",
                        source,
                    })?;
                self.offset += got as u64;
                if got < len as usize {
                    return Err(CorpusError::Truncated {
                        path: self.path.clone(),
                        offset: self.offset,
                        expected: "chunk payload",
                    });
                }
                self.sum = fnv1a64(self.sum, &stored.to_le_bytes());
                let index = self.chunks;
                self.chunks += 1;
                Ok(Some(RawChunk {
                    buf,
                    plain_len,
                    count,
                    stored,
                    offset: start,
                    index,
                }))
            }
            t => Err(CorpusError::Corrupt {
                path: self.path.clone(),
                offset: start,
                what: format!("unknown chunk tag {t} (expected 0 or 1)"),
            }),
        }
    }

    /// Hand a consumed chunk's buffers back for reuse (dropped if the pools are full).
    fn recycle(&mut self, old: Decoded) {
        let Decoded { raw, records, .. } = old;
        if raw.capacity() > 0 && self.spare_raw.len() <= LOOKAHEAD_CHUNKS {
            self.spare_raw.push(raw);
        }
        if records.capacity() > 0 {
            if let Some(d) = self.decoder.as_ref() {
                let _ = d.recycle.try_send(records);
            }
        }
    }

    fn decoder_gone(&self) -> CorpusError {
        CorpusError::Decoder {
            path: self.path.clone(),
        }
    }

    /// Keep [`LOOKAHEAD_CHUNKS`] chunks at the decoder. A read error is kept in `pending_err`
    /// until the records before it are delivered.
    fn top_up(&mut self) {
        while self.in_flight < LOOKAHEAD_CHUNKS && !self.done && self.pending_err.is_none() {
            match self.next_chunk() {
                Ok(Some(raw)) => {
                    let sent = self
                        .decoder
                        .as_ref()
                        .and_then(|d| d.to.as_ref())
                        .is_some_and(|to| to.send(raw).is_ok());
                    if !sent {
                        self.pending_err = Some(self.decoder_gone());
                        return;
                    }
                    self.in_flight += 1;
                }
                Ok(None) => {}
                Err(e) => self.pending_err = Some(e),
            }
        }
    }

    /// The next record, `Ok(None)` after the verified end marker. After an error every later
    /// call is an error too (never a clean end).
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record>, CorpusError> {
        // Fast path: the next record of the current chunk (empty after an error).
        match self.current.next_record(&self.path) {
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(e)) => Err(self.fail(e)),
            None => self.next_slow(),
        }
    }

    /// Stop the decoder and drop what is still in flight; returns `e`.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, e: CorpusError) -> CorpusError {
        self.failed = true;
        self.decoder = None;
        self.in_flight = 0;
        self.current = Decoded::empty();
        e
    }

    /// The current chunk is used up: take the next decoded one (or the end, or an error).
    #[inline(never)]
    fn next_slow(&mut self) -> Result<Option<Record>, CorpusError> {
        if self.failed {
            return Err(self.corrupt("reading stopped after an earlier error".into()));
        }
        let res = self.next_inner();
        if res.is_err() {
            // Stop the decoder and drop what is still in flight.
            self.failed = true;
            self.decoder = None;
            self.in_flight = 0;
            self.current = Decoded::empty();
        }
        res
    }

    fn next_inner(&mut self) -> Result<Option<Record>, CorpusError> {
        loop {
            if let Some(r) = self.current.next_record(&self.path) {
                return r.map(Some);
            }
            self.top_up();
            if self.in_flight == 0 {
                return match self.pending_err.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            let got = match self.decoder.as_ref() {
                Some(d) => d.from.recv().ok(),
                None => None,
            };
            let Some(got) = got else {
                return Err(self.decoder_gone());
            };
            self.in_flight -= 1;
            let old = std::mem::replace(&mut self.current, got?);
            self.recycle(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Sym {
        Sym::from(s)
    }

    /// One record of every `Event` (and `Vmscan`) variant, with varied context, strings that
    /// repeat and differ, timestamps that sometimes go backwards and extreme field values.
    fn rec(i: u64) -> Record {
        let names = ["alpha", "beta", "", "mm_vmscan_x", "ü-non-ascii"];
        let s = |k: u64| sym(names[((i + k) % names.len() as u64) as usize]);
        let comm = Comm::new(format!("task-{}", i % 7).as_bytes());
        let event = match i % 40 {
            0 => Event::PageFault {
                user: i % 2 == 0,
                address: 0x7f00_0000_0000 + 0x1000 * i,
                ip: u64::MAX - i,
                error_code: 6,
            },
            1 => Event::TlbFlush {
                pages: -1,
                reason: TlbReason {
                    code: Some(3),
                    text: s(0),
                },
            },
            2 => Event::TlbFlush {
                pages: 42,
                reason: TlbReason {
                    code: None,
                    text: s(1),
                },
            },
            3 => Event::IpiSendCpu {
                target: 1,
                kind: IpiKind::TlbShootdown,
            },
            4 => Event::IpiSendCpumask {
                mask: u128::MAX - u128::from(i),
                targets: 127,
                kind: IpiKind::Other,
            },
            5 => Event::SetMigrationPte {
                addr: i,
                pte: u64::MAX,
                order: 9,
            },
            6 => Event::RemoveMigrationPte {
                addr: i,
                pte: 0x8000_0000_0000_0867,
                order: 0,
            },
            7 => Event::MmMigratePages {
                succeeded: i,
                failed: 1,
                mode: s(2),
                reason: s(3),
            },
            8 => Event::MmMigratePagesStart {
                mode: s(4),
                reason: s(0),
            },
            9 => Event::MmLruInsertion {
                pfn: i,
                lru: -3,
                flags: s(1),
            },
            10 => Event::MmLruActivate { pfn: i },
            11 => Event::Vmscan(Vmscan::KswapdWake { nid: 0, order: 3 }),
            12 => Event::Vmscan(Vmscan::KswapdSleep { nid: 1 }),
            13 => Event::Vmscan(Vmscan::WakeupKswapd { nid: 0, order: -1 }),
            14 => Event::Vmscan(Vmscan::DirectReclaimBegin {
                order: 2,
                memcg: true,
            }),
            15 => Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 32,
                memcg: false,
            }),
            16 => Event::Vmscan(Vmscan::LruIsolate {
                nr_requested: 32,
                nr_scanned: 40,
                nr_taken: 31,
                lru: s(2),
            }),
            17 => Event::Vmscan(Vmscan::LruShrinkInactive {
                nid: 0,
                nr_scanned: 1,
                nr_reclaimed: 2,
                priority: 12,
                nr_ref_keep: 3,
                nr_activate: 4,
            }),
            18 => Event::Vmscan(Vmscan::LruShrinkActive {
                nid: 0,
                nr_taken: 1,
                nr_active: 2,
                nr_deactivated: 3,
                nr_referenced: 4,
            }),
            19 => Event::Vmscan(Vmscan::WriteFolio { pfn: i }),
            20 => Event::Vmscan(Vmscan::Other { name: s(3) }),
            21 => Event::Compaction { name: s(4) },
            22 => Event::SysEnter {
                nr: Syscall::Mremap,
                args: SysArgs([1, 2, 3, 4, 5, u64::MAX]),
            },
            23 => Event::SysExit {
                nr: Syscall::ExitGroup,
                ret: i64::MIN,
            },
            24 => Event::SchedProcessFork {
                parent_pid: 1,
                child_pid: i as i32,
                child_comm: Comm::new(b"sixteen-bytes-xx"),
            },
            25 => Event::SchedProcessExec {
                pid: 5,
                old_pid: -5,
            },
            26 => Event::SchedProcessExit { pid: 9 },
            27 => Event::SchedSwitch {
                prev_pid: 1,
                prev_state: s(0),
                next_pid: 0,
                next_comm: Comm::new(&[0xff, 0x00, 0x80]),
            },
            28 => Event::SchedMigrateTask {
                pid: 3,
                orig_cpu: 0,
                dest_cpu: 1,
            },
            29 => Event::TaskNewtask {
                pid: 4,
                clone_flags: 0x100,
            },
            30 => Event::ExitMmap,
            31 => Event::RssStat {
                mm_id: i,
                curr: true,
                member: s(1),
                size: -4096,
            },
            32 => Event::Filemap {
                add: false,
                pfn: 1,
                ino: 2,
                index: 3,
                order: 4,
            },
            33 => Event::Hugetlbfs { name: s(2) },
            34 => Event::Khugepaged { name: s(3) },
            35 => Event::CsdQueueCpu {
                target: (i % 5) as u32,
                kind: IpiKind::TableSync,
            },
            36 => Event::CollapseHugePage {
                mm: 0xedc4_9cd8,
                status: s(1),
            },
            37 => Event::CallFunctionEntry {
                single: i % 2 == 0,
                vector: if i % 2 == 0 { 251 } else { 252 },
            },
            38 => Event::Kprobe { name: s(1) },
            _ => match i % 3 {
                0 => Event::DamonAggregated {
                    target_id: 1,
                    nr_regions: 2,
                    start: 3,
                    end: 4,
                    nr_accesses: 5,
                    age: if i % 2 == 0 { Some(6) } else { None },
                },
                1 => Event::Lost { count: Some(i) },
                _ => Event::Other { name: s(4) },
            },
        };
        Record {
            // Mostly increasing, sometimes backwards (the deltas wrap).
            ts_ns: if i % 11 == 5 {
                i * 1000 - 777
            } else {
                i * 1000 + 5
            },
            cpu: (i % 3) as u32,
            pid: 100 + (i % 13) as i32,
            tgid: if i % 4 == 0 { None } else { Some(-(i as i32)) },
            comm,
            event,
        }
    }

    fn header() -> CompiledHeader {
        CompiledHeader {
            source: "x".into(),
            format: "ftrace".into(),
            nr_cpus: Some(2),
            sidecar: Some("{\"workload_pid\": 7}".into()),
        }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mmr-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_records(path: &Path, recs: impl IntoIterator<Item = Record>) -> u64 {
        let mut w = Writer::create(path, &header()).unwrap();
        for r in recs {
            w.push(r).unwrap();
        }
        w.finish().unwrap()
    }

    fn write(path: &Path, n: u64) {
        assert_eq!(write_records(path, (0..n).map(rec)), n);
    }

    fn read_all(name: &str, bytes: &[u8]) -> Result<Vec<Record>, CorpusError> {
        let mut r = Reader::new(name, bytes)?;
        let mut v = Vec::new();
        while let Some(x) = r.next_record()? {
            v.push(x);
        }
        Ok(v)
    }

    /// A complete file around hand-made chunk payloads (correct framing and checksums).
    fn frame(version: u32, chunks: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let h = bincode::serde::encode_to_vec(header(), cfg()).unwrap();
        let mut f = MAGIC.to_vec();
        f.extend(version.to_le_bytes());
        f.extend((h.len() as u32).to_le_bytes());
        f.extend(&h);
        let (mut total, mut sum) = (0u64, FNV_OFFSET);
        for (count, plain) in chunks {
            let payload = &zstd::bulk::compress(plain, ZSTD_LEVEL).unwrap();
            let c = checksum64(payload);
            f.push(1);
            f.extend(count.to_le_bytes());
            f.extend((payload.len() as u32).to_le_bytes());
            f.extend((plain.len() as u32).to_le_bytes());
            f.extend(c.to_le_bytes());
            f.extend(payload);
            total += u64::from(*count);
            sum = fnv1a64(sum, &c.to_le_bytes());
        }
        f.push(0);
        f.extend(total.to_le_bytes());
        f.extend(sum.to_le_bytes());
        f
    }

    /// One chunk payload encoded the way the writer does, from explicit tables.
    fn payload(strings: &[&str], comms: &[&[u8]], ctxs: &[Ctx], records: &[Packed]) -> Vec<u8> {
        let strings: Vec<Sym> = strings.iter().map(|s| sym(s)).collect();
        bincode::serde::encode_to_vec(
            ChunkOut {
                strings: &strings,
                comms,
                ctxs,
                records,
            },
            cfg(),
        )
        .unwrap()
    }

    fn ctx0() -> Ctx {
        Ctx {
            cpu: 0,
            pid: 1,
            tgid: None,
            comm: 0,
        }
    }

    #[test]
    fn checksum_sees_every_single_bit_flip() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let base = checksum64(&data);
        for i in 0..data.len() {
            for b in 0..8 {
                let mut d = data.clone();
                d[i] ^= 1 << b;
                assert_ne!(checksum64(&d), base, "flip byte {i} bit {b}");
            }
        }
        assert_ne!(checksum64(&data[..199]), base);
    }

    /// Every variant, written by serde + bincode and read back by bincode's own decoder,
    /// across several chunks (each with its own string, comm and context tables).
    #[test]
    fn every_event_variant_round_trips_across_chunks() {
        let d = tmpdir("rt");
        let p = d.join("a.mmr");
        let n = CHUNK_RECORDS as u64 * 2 + 37;
        write(&p, n);
        let mut r = Reader::open(&p).unwrap();
        assert_eq!(r.header(), &header());
        let mut i = 0;
        while let Some(x) = r.next_record().unwrap() {
            assert_eq!(x, rec(i), "record {i}");
            i += 1;
        }
        assert_eq!(i, n);
        // The end is sticky.
        assert!(r.next_record().unwrap().is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Strings are stored once per chunk, not once per field.
    #[test]
    fn the_string_table_holds_each_string_once_per_chunk() {
        let recs: Vec<Record> = (0..100u64)
            .map(|i| Record {
                event: Event::Other {
                    name: sym("a_rather_long_event_name_that_repeats"),
                },
                ..rec(i)
            })
            .collect();
        let d = tmpdir("tab");
        let p = d.join("a.mmr");
        write_records(&p, recs.clone());
        let bytes = std::fs::read(&p).unwrap();
        let needle = b"a_rather_long_event_name_that_repeats";
        // The one chunk's payload, decompressed (the stored bytes are zstd).
        let hlen = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let c = 16 + hlen;
        assert_eq!(bytes[c], 1, "a chunk");
        let len = u32::from_le_bytes(bytes[c + 5..c + 9].try_into().unwrap()) as usize;
        let stored = &bytes[c + 21..c + 21 + len];
        let plain = zstd::bulk::decompress(stored, 1 << 20).unwrap();
        let hits = plain.windows(needle.len()).filter(|w| w == needle).count();
        assert_eq!(hits, 1);
        assert_eq!(read_all("a.mmr", &bytes).unwrap(), recs);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A real capture (the bundled one) delivers the same records compiled as parsed.
    #[test]
    fn a_real_capture_round_trips() {
        let parsed: Vec<Record> = crate::source::Source::bundled(false)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(parsed.len() > CHUNK_RECORDS, "want several chunks");
        let d = tmpdir("real");
        let p = d.join("a.mmr");
        write_records(&p, parsed.iter().cloned());
        let back = read_all("a.mmr", &std::fs::read(&p).unwrap()).unwrap();
        assert!(back == parsed, "compiled records differ from parsed ones");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Every single-bit flip after the (unchecksummed) header is an error, never a panic and
    /// never a silently different record stream.
    #[test]
    fn every_bit_flip_in_chunks_and_end_marker_is_an_error() {
        let d = tmpdir("flip");
        let p = d.join("a.mmr");
        write(&p, 40);
        let good = std::fs::read(&p).unwrap();
        let body = {
            let hlen = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
            16 + hlen
        };
        for i in body..good.len() {
            for b in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << b;
                let res = read_all("bad.mmr", &bad);
                let e = res.expect_err(&format!("flip of byte {i} bit {b} accepted"));
                assert!(e.to_string().contains("bad.mmr"), "{e}");
            }
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let d = tmpdir("cut");
        let p = d.join("a.mmr");
        write(&p, 300);
        let good = std::fs::read(&p).unwrap();
        assert_eq!(read_all("t.mmr", &good).unwrap().len(), 300);
        for cut in 0..good.len() {
            let res = read_all("t.mmr", &good[..cut]);
            assert!(res.is_err(), "cut at {cut} accepted");
        }
        let e = read_all("t.mmr", &good[..good.len() - 3]).unwrap_err();
        assert!(matches!(e, CorpusError::Truncated { .. }), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_old_version_asks_for_a_recompile() {
        let f = frame(1, &[]);
        let e = Reader::new("old.mmr", &f[..]).err().unwrap();
        assert!(
            matches!(
                e,
                CorpusError::Version {
                    found: 1,
                    expected: VERSION,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("old.mmr") && e.to_string().contains("recompile"));
        // And the hand-made framing itself is right: the current version reads.
        let ok = frame(VERSION, &[(0, payload(&[], &[], &[], &[]))]);
        assert_eq!(read_all("ok.mmr", &ok).unwrap(), vec![]);
    }

    fn packed(event: PEvent, ctx: u32) -> Packed {
        Packed { dts: 1, ctx, event }
    }

    fn expect_corrupt(bytes: &[u8], needles: &[&str]) {
        let e = read_all("c.mmr", bytes).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, CorpusError::Corrupt { .. }), "{m}");
        assert!(m.contains("c.mmr") && m.contains("byte "), "{m}");
        for n in needles {
            assert!(m.contains(n), "{m} lacks {n:?}");
        }
    }

    #[test]
    fn bad_table_indices_are_errors_naming_file_and_offset() {
        let ok_ev = PEvent::Compaction { name: 0 };
        // String index past the table.
        let f = frame(
            VERSION,
            &[(
                2,
                payload(
                    &["x"],
                    &[b"c"],
                    &[ctx0()],
                    &[packed(ok_ev, 0), packed(PEvent::Other { name: 7 }, 0)],
                ),
            )],
        );
        expect_corrupt(&f, &["record 1", "string 7", "string table has 1"]);
        // The record before the bad one is still delivered, then the error, then it stays failed.
        let mut r = Reader::new("c.mmr", &f[..]).unwrap();
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().is_err());
        assert!(r.next_record().is_err());
        // Context index past the table.
        let f = frame(
            VERSION,
            &[(1, payload(&["x"], &[b"c"], &[ctx0()], &[packed(ok_ev, 3)]))],
        );
        expect_corrupt(&f, &["record 0", "context 3"]);
        // A comm index in an event, and in a context.
        let sw = PEvent::SchedSwitch {
            prev_pid: 1,
            prev_state: 0,
            next_pid: 2,
            next_comm: 5,
        };
        let f = frame(
            VERSION,
            &[(1, payload(&["R"], &[b"c"], &[ctx0()], &[packed(sw, 0)]))],
        );
        expect_corrupt(&f, &["comm 5"]);
        let bad_ctx = Ctx { comm: 9, ..ctx0() };
        let f = frame(
            VERSION,
            &[(1, payload(&["x"], &[b"c"], &[bad_ctx], &[packed(ok_ev, 0)]))],
        );
        expect_corrupt(&f, &["context 0 refers to comm 9"]);
        // A comm longer than TASK_COMM_LEN.
        let f = frame(
            VERSION,
            &[(
                1,
                payload(&["x"], &[&[b'a'; 17]], &[ctx0()], &[packed(ok_ev, 0)]),
            )],
        );
        expect_corrupt(&f, &["comm 0 is 17 bytes"]);
    }

    #[test]
    fn lying_lengths_and_counts_are_errors_not_aborts() {
        let ok = PEvent::ExitMmap;
        // The chunk header's count disagrees with the payload.
        let f = frame(
            VERSION,
            &[(2, payload(&[], &[b"c"], &[ctx0()], &[packed(ok, 0)]))],
        );
        expect_corrupt(&f, &["holds 1 records, its header says 2"]);
        // A string table claiming 2^60 entries (checksum correct): must not preallocate.
        let huge = bincode::encode_to_vec(1u64 << 60, cfg()).unwrap();
        let f = frame(VERSION, &[(0, huge)]);
        expect_corrupt(&f, &["does not decode"]);
        // More records than a chunk may hold.
        let mut many = payload(&[], &[], &[], &[]);
        // Replace the empty record sequence's length (a varint 0).
        let zero = bincode::encode_to_vec(0u64, cfg()).unwrap();
        many.truncate(many.len() - zero.len());
        many.extend(bincode::encode_to_vec(CHUNK_RECORDS as u64 + 1, cfg()).unwrap());
        let f = frame(VERSION, &[(1, many)]);
        expect_corrupt(&f, &["does not decode", "more than"]);
        // Trailing bytes after the records.
        let mut tail = payload(&[], &[b"c"], &[ctx0()], &[packed(ok, 0)]);
        tail.push(0);
        let f = frame(VERSION, &[(1, tail)]);
        expect_corrupt(&f, &["1 trailing bytes"]);
    }

    #[test]
    fn dropping_a_reader_midway_stops_its_decoder() {
        let d = tmpdir("drop");
        let p = d.join("a.mmr");
        write(&p, CHUNK_RECORDS as u64 * 5);
        for _ in 0..20 {
            let mut r = Reader::open(&p).unwrap();
            assert_eq!(r.next_record().unwrap(), Some(rec(0)));
            drop(r); // joins the decoder thread: must not hang
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unfinished_writer_leaves_no_file() {
        let d = tmpdir("unfin");
        let p = d.join("a.mmr");
        {
            let mut w = Writer::create(&p, &header()).unwrap();
            w.push(rec(0)).unwrap();
        }
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
