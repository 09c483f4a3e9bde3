//! The compiled `.mmr` format: a parsed capture stored as a versioned, checksummed stream of
//! record chunks, read back as one more [`crate::source::RecordSource`] ([`Format::Mmr`]), so
//! `stats`, `replay` and every reader path open it through [`crate::open`] and skip text
//! parsing.
//!
//! Layout (all integers little endian; payloads bincode 2 `standard()`: varint integers):
//! ```text
//! magic "MMRCORP\0" | version u32 | header_len u32 | header (bincode: Header)
//! chunk*: tag 1 u8 | count u32 | len u32 | plain_len u32 | checksum64(stored) u64 | stored
//!         stored = zstd (level [`ZSTD_LEVEL`]) of payload, which is plain_len bytes:
//!         payload = serde + bincode of { strings: [str], comms: [bytes], ctxs: [Ctx],
//!                                        records: [Packed] }
//! diag:   tag 2 u8 | len u32 | the source's `Diagnostics` as JSON (len bytes)
//! end:    tag 0 u8 | total records u64 | fnv1a64 over all chunk checksums and the diag bytes u64
//! ```
//! A record is `Packed { dts, ctx, event }`: the timestamp as the (wrapping) difference from
//! the chunk's previous record, its (cpu, pid, tgid, comm) context as an index into the
//! chunk's context table (a chunk holds few distinct ones), and the [`Event`] itself through
//! its own serde derive: there is no hand-written mirror of `Event`, so a new variant or field
//! is stored with no change here. Its string fields (`Sym`, marked `#[serde(with =
//! "crate::mmr::sym")]`) are indices into the chunk's string table while a chunk is written
//! or read ([`sym`]), so the reader builds one `Arc<str>` per distinct string per chunk. **The variant and field order of `Event` (and of the types
//! it holds) is therefore the format**: appending a variant keeps old files readable;
//! reordering, removing or changing a field needs a [`VERSION`] bump, and
//! `tests::the_encoding_of_every_variant_is_pinned` fails until it is done.
//!
//! Chunks hold at most [`CHUNK_RECORDS`] records, so reading and writing are streaming (memory
//! bounded by a few chunks). The reader verifies and decodes on one helper thread
//! [`LOOKAHEAD_CHUNKS`] chunks ahead of the consumer, in file order. What it must never do:
//! trust a length or an index before checking it against a bound, panic on corrupt bytes, or
//! leave a half-written output file (temp file + rename).

mod read;
pub mod sym;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::record::{Comm, Event, Record};
use crate::source::{Diagnostics, RecordSource};

pub use crate::source::MMR_MAGIC as MAGIC;
pub use read::{Reader, LOOKAHEAD_CHUNKS, READ_BUFFER};

/// Format version; bump on any layout or `Record` change. 1: one bincode `Vec<Record>` per
/// chunk. 2: per-chunk string, comm and context tables, delta timestamps. 3: vmscan
/// `nr_ref_keep` / `nr_activate` / `nr_referenced`.
/// 4: chunk payloads zstd-compressed, the header holds the source's file name only (the bytes
/// do not depend on the directory compiled from) and the capture's `.meta.json` sidecar.
/// 5: events stored through `Event`'s own serde derive (no hand-written mirror), and the
/// source's parse diagnostics (overwritten events, unparsed and skipped lines) before the
/// end marker. 6: `mm_vmscan_lru_shrink_inactive`'s list (`reclaim_flags`).
pub const VERSION: u32 = 6;
/// Records per chunk (larger chunks give zstd more context: 16 Ki records compress about as
/// well as the zstd -19 text they came from).
pub const CHUNK_RECORDS: usize = 16 * 1024;
/// zstd level of chunk payloads. Fixed: the same records always give the same bytes.
pub const ZSTD_LEVEL: i32 = 3;
/// Largest accepted chunk payload (a chunk of 16 Ki records is far below this).
const MAX_CHUNK_BYTES: u32 = 256 << 20;
const MAX_HEADER_BYTES: u32 = 1 << 20;
/// Largest accepted diagnostics block (its lists are capped by the readers that fill them).
const MAX_DIAG_BYTES: u32 = 1 << 20;

/// What the compiled file says about its source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
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

impl Header {
    /// The header for a capture at `path`: its file name only, and its sidecar if present.
    pub fn for_capture(path: &str, format: &str, nr_cpus: Option<u32>) -> Header {
        Header {
            source: file_name(path),
            format: format.to_string(),
            nr_cpus,
            sidecar: std::fs::read_to_string(format!("{path}.meta.json")).ok(),
        }
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

/// `d` as a compiled file stores it: positions in `first_unparsed` name the capture by its
/// file name only, as the header does (the bytes must not depend on the directory).
pub fn portable_diagnostics(path: &str, d: &Diagnostics) -> Diagnostics {
    let name = file_name(path);
    let mut d = d.clone();
    for l in &mut d.first_unparsed {
        if let Some(rest) = l.strip_prefix(path) {
            *l = format!("{name}{rest}");
        }
    }
    d
}

/// The header of the compiled file at `path`, or `None` if it is not one (or unreadable).
pub fn header_of(path: &str) -> Option<Header> {
    let mut head = [0u8; 8];
    let mut f = File::open(path).ok()?;
    f.read_exact(&mut head).ok()?;
    if !is_compiled(&head) {
        return None;
    }
    let f = File::open(path).ok()?;
    Reader::new(path, std::io::BufReader::new(f))
        .ok()
        .map(|r| r.header().clone())
}

/// Whether `head` starts with the compiled-file magic.
pub fn is_compiled(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Opens a compiled stream (`inp` from its first byte) as a [`RecordSource`].
pub fn open_source(
    path: &str,
    inp: Box<dyn Read + Send>,
) -> Result<Box<dyn RecordSource + Send>, ParseError> {
    let r = Reader::new(path, std::io::BufReader::with_capacity(READ_BUFFER, inp))?;
    Ok(Box::new(r))
}

/// Errors reading or writing a compiled file; every one names the file.
#[derive(Debug, thiserror::Error)]
pub enum MmrError {
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

/// FNV-1a 64 (the crate-wide one), continuing from `h`.
pub use mmreplay_hash::fnv1a as fnv1a64;
use mmreplay_hash::FNV_OFFSET;

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
    // Varint integers: under zstd, varint gives zstd 2.4x fewer bytes to produce, which pays
    // for the varint decoding (measured on version 4, k61-reclaim-classic).
    bincode::config::standard()
}

/// A record as stored in a chunk: the (wrapping) timestamp difference from the previous
/// record of the chunk (the first: from 0), the index of its context in the chunk's context
/// table, and the event through its own serde derive. Field order is the format.
#[derive(Serialize, bincode::Decode)]
struct Packed {
    dts: u64,
    ctx: u32,
    #[bincode(with_serde)]
    event: Event,
}

/// The context fields of a record, stored once per chunk.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, bincode::Decode)]
struct Ctx {
    cpu: u32,
    pid: i32,
    tgid: Option<i32>,
    /// Index into the chunk's comm table.
    comm: u32,
}

/// The tables of a chunk payload, written before the records that index into them.
#[derive(Serialize)]
struct ChunkTables<'a> {
    strings: &'a [crate::record::Sym],
    comms: &'a [&'a [u8]],
    ctxs: &'a [Ctx],
}

/// Appends one chunk payload to `out`: the tables, then the records (serde + bincode of
/// `{ strings, comms, ctxs, records }`, field by field). The records are encoded first, into
/// `records_buf`, because encoding them fills the string table.
fn encode_chunk(
    out: &mut Vec<u8>,
    records_buf: &mut Vec<u8>,
    comms: &[&[u8]],
    ctxs: &[Ctx],
    records: &[Packed],
) -> Result<(), bincode::error::EncodeError> {
    records_buf.clear();
    let strings = {
        let enc = sym::Encoding::start();
        bincode::serde::encode_into_std_write(records, records_buf, cfg())?;
        enc.finish()
    };
    let tables = ChunkTables {
        strings: &strings,
        comms,
        ctxs,
    };
    bincode::serde::encode_into_std_write(&tables, out, cfg())?;
    out.extend_from_slice(records_buf);
    Ok(())
}

/// Per-chunk interning of comms and contexts (first occurrence order, so output is
/// deterministic; the hash maps are only looked up, never iterated).
#[derive(Default)]
struct Tables {
    comms: Vec<Comm>,
    comm_ix: mmreplay_hash::FxHashMap<Comm, u32>,
    ctxs: Vec<Ctx>,
    ctx_ix: mmreplay_hash::FxHashMap<Ctx, u32>,
}

impl Tables {
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
        self.comms.clear();
        self.comm_ix.clear();
    }
}

/// Streaming writer; call [`Writer::finish`] to write the diagnostics and the end marker and
/// rename into place.
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
    records_buf: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
}

impl Writer {
    /// Create `path` (written to a temp file next to it until `finish`).
    pub fn create(path: &Path, header: &Header) -> Result<Writer, MmrError> {
        let p = path.display().to_string();
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let f = File::create(&tmp).map_err(|source| MmrError::Io {
            path: tmp.display().to_string(),
            op: "create",
            source,
        })?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        let h = bincode::serde::encode_to_vec(header, cfg()).map_err(|e| MmrError::Encode {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        let io = |source| MmrError::Io {
            path: p.clone(),
            op: "write",
            source,
        };
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        out.write_all(&(h.len() as u32).to_le_bytes()).map_err(io)?;
        out.write_all(&h).map_err(io)?;
        let zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| MmrError::Encode {
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
            records_buf: Vec::new(),
        })
    }

    /// Append one record.
    pub fn push(&mut self, r: Record) -> Result<(), MmrError> {
        let ctx = self.tables.ctx(&r);
        let dts = r.ts_ns.wrapping_sub(self.prev_ts);
        self.prev_ts = r.ts_ns;
        self.buf.push(Packed {
            dts,
            ctx,
            event: r.event,
        });
        if self.buf.len() >= CHUNK_RECORDS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn encode_err(&self, msg: String) -> MmrError {
        MmrError::Encode {
            path: self.path.display().to_string(),
            msg,
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), MmrError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        out.write_all(bytes).map_err(|source| MmrError::Io {
            path: self.path.display().to_string(),
            op: "write",
            source,
        })
    }

    fn flush_chunk(&mut self) -> Result<(), MmrError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        let comms: Vec<&[u8]> = self.tables.comms.iter().map(|c| c.as_bytes()).collect();
        let encoded = encode_chunk(
            &mut self.scratch,
            &mut self.records_buf,
            &comms,
            &self.tables.ctxs,
            &self.buf,
        );
        drop(comms);
        encoded.map_err(|e| self.encode_err(e.to_string()))?;
        if self.scratch.len() > MAX_CHUNK_BYTES as usize {
            return Err(self.encode_err(format!(
                "a chunk encodes to {} bytes, over the {MAX_CHUNK_BYTES}-byte limit",
                self.scratch.len()
            )));
        }
        let plain_len = self.scratch.len() as u32;
        let stored = self
            .zstd
            .compress(&self.scratch)
            .map_err(|e| MmrError::Encode {
                path: self.path.display().to_string(),
                msg: format!("zstd: {e}"),
            })?;
        let h = checksum64(&stored);
        self.sum = fnv1a64(self.sum, &h.to_le_bytes());
        let mut head = vec![1u8];
        head.extend((self.buf.len() as u32).to_le_bytes());
        head.extend((stored.len() as u32).to_le_bytes());
        head.extend(plain_len.to_le_bytes());
        head.extend(h.to_le_bytes());
        self.write_all(&head)?;
        self.write_all(&stored)?;
        self.total += self.buf.len() as u64;
        self.buf.clear();
        self.tables.clear();
        self.prev_ts = 0;
        Ok(())
    }

    /// Write the source's diagnostics (see [`portable_diagnostics`]) and the end marker, sync
    /// and rename into place. Returns the record count.
    pub fn finish(mut self, diagnostics: &Diagnostics) -> Result<u64, MmrError> {
        self.flush_chunk()?;
        let diag = serde_json::to_vec(diagnostics).map_err(|e| self.encode_err(e.to_string()))?;
        if diag.len() > MAX_DIAG_BYTES as usize {
            return Err(self.encode_err(format!(
                "the diagnostics encode to {} bytes, over the {MAX_DIAG_BYTES}-byte limit",
                diag.len()
            )));
        }
        self.sum = fnv1a64(self.sum, &diag);
        let p = self.path.display().to_string();
        let Some(mut out) = self.out.take() else {
            return Ok(self.total);
        };
        let io = |op, source| MmrError::Io {
            path: p.clone(),
            op,
            source,
        };
        let done = (|| {
            out.write_all(&[2u8]).map_err(|e| io("write", e))?;
            out.write_all(&(diag.len() as u32).to_le_bytes())
                .map_err(|e| io("write", e))?;
            out.write_all(&diag).map_err(|e| io("write", e))?;
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
