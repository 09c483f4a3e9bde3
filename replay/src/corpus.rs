//! The compiled corpus format (`.mmr`): a parsed capture stored as a versioned, checksummed
//! stream of serde + bincode 2.x record chunks, so that `replay` and `stats` skip text parsing.
//!
//! Layout (all integers little endian):
//! ```text
//! magic "MMRCORP\0" | version u32 | header_len u32 | header (bincode: CompiledHeader)
//! chunk*: tag 1 u8 | count u32 | len u32 | checksum64(payload) u64 | payload (bincode Vec<Record>)
//! end:    tag 0 u8 | total records u64 | fnv1a64 over all chunk checksums u64
//! ```
//! Chunks hold at most [`CHUNK_RECORDS`] records, so reading and writing are streaming (memory
//! bounded by one chunk). What it must never do: trust a length before checking it against a
//! bound, panic on corrupt bytes, or leave a half-written output file (temp file + rename).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use mmreplay_parsers::record::Record;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// File magic.
pub const MAGIC: &[u8; 8] = b"MMRCORP\0";
/// Format version; bump on any layout or `Record` change.
pub const VERSION: u32 = 1;
/// Records per chunk.
pub const CHUNK_RECORDS: usize = 16 * 1024;
/// Largest accepted chunk payload (a chunk of 16 Ki records is far below this).
const MAX_CHUNK_BYTES: u32 = 256 << 20;
const MAX_HEADER_BYTES: u32 = 1 << 20;

/// What the compiled file says about its source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledHeader {
    /// The path the capture was compiled from.
    pub source: String,
    /// The source format name (`ftrace`, `perf.data`, ...).
    pub format: String,
    /// CPUs of the captured machine, when the source said.
    pub nr_cpus: Option<u32>,
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

fn cfg() -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Fixint> {
    bincode::config::standard().with_fixed_int_encoding()
}

/// Streaming writer; call [`Writer::finish`] to write the end marker and rename into place.
pub struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    buf: Vec<Record>,
    total: u64,
    sum: u64,
    scratch: Vec<u8>,
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
        Ok(Writer {
            path: path.to_path_buf(),
            tmp,
            out: Some(out),
            buf: Vec::with_capacity(CHUNK_RECORDS),
            total: 0,
            sum: FNV_OFFSET,
            scratch: Vec::new(),
        })
    }

    /// Append one record.
    pub fn push(&mut self, r: Record) -> Result<(), CorpusError> {
        self.buf.push(r);
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
        bincode::serde::encode_into_std_write(&self.buf, &mut self.scratch, cfg()).map_err(
            |e| CorpusError::Encode {
                path: p.clone(),
                msg: e.to_string(),
            },
        )?;
        let h = checksum64(&self.scratch);
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
        out.write_all(&(self.scratch.len() as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&h.to_le_bytes()).map_err(io)?;
        out.write_all(&self.scratch).map_err(io)?;
        self.total += self.buf.len() as u64;
        self.buf.clear();
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
        out.write_all(&[0u8]).map_err(|e| io("write", e))?;
        out.write_all(&self.total.to_le_bytes())
            .map_err(|e| io("write", e))?;
        out.write_all(&self.sum.to_le_bytes())
            .map_err(|e| io("write", e))?;
        let f = out.into_inner().map_err(|e| io("write", e.into_error()))?;
        f.sync_all().map_err(|e| io("sync", e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| io("rename", e))?;
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

/// Streaming reader.
pub struct Reader<R: Read> {
    path: String,
    inp: R,
    offset: u64,
    header: CompiledHeader,
    /// Decoded chunks not yet consumed.
    ready: std::collections::VecDeque<std::vec::IntoIter<Record>>,
    /// Read and verified, not yet decoded.
    raw: Vec<RawChunk>,
    chunks: u64,
    total: u64,
    sum: u64,
    done: bool,
}

/// A chunk read and checksummed but not decoded.
struct RawChunk {
    buf: Vec<u8>,
    count: u32,
    offset: u64,
    index: u64,
}

/// Chunks decoded in parallel at a time (memory: at most this many chunks of records).
pub const PREFETCH_CHUNKS: usize = 4;

impl Reader<BufReader<File>> {
    /// Open a compiled file.
    pub fn open(path: &Path) -> Result<Self, CorpusError> {
        let p = path.display().to_string();
        let f = File::open(path).map_err(|source| CorpusError::Io {
            path: p.clone(),
            op: "open",
            source,
        })?;
        Reader::new(&p, BufReader::with_capacity(1 << 20, f))
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
            ready: Default::default(),
            raw: Vec::new(),
            chunks: 0,
            total: 0,
            sum: FNV_OFFSET,
            done: false,
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
        let (header, _) = bincode::serde::decode_from_slice::<CompiledHeader, _>(&h, cfg())
            .map_err(|e| r.corrupt(format!("bad header: {e}")))?;
        r.header = header;
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

    fn next_chunk(&mut self) -> Result<bool, CorpusError> {
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
                Ok(false)
            }
            1 => {
                let count = self.u32("a chunk record count")?;
                let len = self.u32("a chunk length")?;
                let stored = self.u64("a chunk checksum")?;
                self.total += u64::from(count);
                if len > MAX_CHUNK_BYTES || count as usize > CHUNK_RECORDS {
                    return Err(self.corrupt(format!("chunk {} claims {count} records in {len} bytes (limits {CHUNK_RECORDS}, {MAX_CHUNK_BYTES})", self.chunks)));
                }
                let mut buf = vec![0u8; len as usize];
                self.exact(&mut buf, "chunk payload")?;
                let computed = checksum64(&buf);
                if computed != stored {
                    return Err(CorpusError::Checksum {
                        path: self.path.clone(),
                        chunk: self.chunks,
                        offset: start,
                        stored,
                        computed,
                    });
                }
                self.sum = fnv1a64(self.sum, &stored.to_le_bytes());
                self.raw.push(RawChunk {
                    buf,
                    count,
                    offset: start,
                    index: self.chunks,
                });
                self.chunks += 1;
                Ok(true)
            }
            t => Err(CorpusError::Corrupt {
                path: self.path.clone(),
                offset: start,
                what: format!("unknown chunk tag {t} (expected 0 or 1)"),
            }),
        }
    }

    /// Read (and checksum) up to [`PREFETCH_CHUNKS`] chunks, then decode them in parallel
    /// (rayon): decoding dominates reading, and chunks are independent.
    fn fill(&mut self) -> Result<(), CorpusError> {
        while self.raw.len() < PREFETCH_CHUNKS && !self.done && self.next_chunk()? {}
        let raw = std::mem::take(&mut self.raw);
        let path = self.path.as_str();
        let decoded: Vec<Result<Vec<Record>, CorpusError>> = raw
            .par_iter()
            .map(|c| {
                let (recs, _) = bincode::serde::decode_from_slice::<Vec<Record>, _>(&c.buf, cfg())
                    .map_err(|e| CorpusError::Corrupt {
                        path: path.to_string(),
                        offset: c.offset,
                        what: format!("chunk {} does not decode: {e}", c.index),
                    })?;
                if recs.len() != c.count as usize {
                    return Err(CorpusError::Corrupt {
                        path: path.to_string(),
                        offset: c.offset,
                        what: format!(
                            "chunk {} holds {} records, its header says {}",
                            c.index,
                            recs.len(),
                            c.count
                        ),
                    });
                }
                Ok(recs)
            })
            .collect();
        for d in decoded {
            self.ready.push_back(d?.into_iter());
        }
        Ok(())
    }

    /// The next record, `Ok(None)` after the verified end marker.
    pub fn next_record(&mut self) -> Result<Option<Record>, CorpusError> {
        loop {
            if let Some(it) = self.ready.front_mut() {
                if let Some(r) = it.next() {
                    return Ok(Some(r));
                }
                self.ready.pop_front();
                continue;
            }
            if self.done {
                return Ok(None);
            }
            self.fill()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmreplay_parsers::record::{Comm, Event};

    fn rec(i: u64) -> Record {
        Record {
            ts_ns: i * 1000,
            cpu: (i % 2) as u32,
            pid: 100 + i as i32,
            tgid: None,
            comm: Comm::new(b"t"),
            event: Event::PageFault {
                user: true,
                address: 0x1000 * i,
                ip: 0,
                error_code: 2,
            },
        }
    }

    fn write(path: &Path, n: u64) {
        let mut w = Writer::create(
            path,
            &CompiledHeader {
                source: "x".into(),
                format: "ftrace".into(),
                nr_cpus: Some(2),
            },
        )
        .unwrap();
        for i in 0..n {
            w.push(rec(i)).unwrap();
        }
        assert_eq!(w.finish().unwrap(), n);
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

    #[test]
    fn round_trip_across_chunks() {
        let d = std::env::temp_dir().join(format!("mmr-rt-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("a.mmr");
        let n = CHUNK_RECORDS as u64 * 2 + 7;
        write(&p, n);
        let mut r = Reader::open(&p).unwrap();
        assert_eq!(r.header().nr_cpus, Some(2));
        let mut i = 0;
        while let Some(x) = r.next_record().unwrap() {
            assert_eq!(x, rec(i));
            i += 1;
        }
        assert_eq!(i, n);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corruption_and_truncation_are_errors() {
        let d = std::env::temp_dir().join(format!("mmr-bad-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("a.mmr");
        write(&p, 100);
        let good = std::fs::read(&p).unwrap();
        // Flip a payload byte: checksum error naming the chunk.
        let mut bad = good.clone();
        let i = bad.len() - 30;
        bad[i] ^= 0xff;
        let mut r = Reader::new("bad.mmr", &bad[..]).unwrap();
        let e = loop {
            match r.next_record() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("corruption not detected"),
                Err(e) => break e,
            }
        };
        assert!(e.to_string().contains("bad.mmr"), "{e}");
        // Every truncation is an error, never a panic or a silent short read.
        for cut in [0, 5, 12, 20, good.len() / 2, good.len() - 1] {
            let res = Reader::new("t.mmr", &good[..cut]).and_then(|mut r| {
                while r.next_record()?.is_some() {}
                Ok(())
            });
            assert!(res.is_err(), "cut at {cut} accepted");
        }
        // Wrong version.
        let mut v = good.clone();
        v[8] = 99;
        assert!(matches!(
            Reader::new("v.mmr", &v[..]),
            Err(CorpusError::Version { found: 99, .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
