//! The `.mmr` reader: chunks read on the caller's thread, verified and decoded on one decoder
//! thread [`LOOKAHEAD_CHUNKS`] chunks ahead, in file order; records handed out one at a time
//! as a [`RecordSource`]. Must never size an allocation from an unchecked length.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::{
    cfg, fnv1a64, Ctx, Header, MmrError, Packed, CHUNK_RECORDS, FNV_OFFSET, MAGIC, MAX_CHUNK_BYTES,
    MAX_DIAG_BYTES, MAX_HEADER_BYTES, VERSION,
};
use crate::error::ParseError;
use crate::record::{Comm, Event, Record};
use crate::source::{Diagnostics, Format, RecordSource};

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

/// A chunk payload as read: the comm table borrows from the payload bytes, the string table
/// becomes one `Sym` per distinct string, which the events' string fields clone ([`super::sym`]).
/// Decoded with bincode's own decoder (the events through their serde derive): the bytes are
/// exactly what `encode_chunk` wrote (same config, same field order).
struct ChunkIn<'a> {
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
        let strings = strings.into_iter().map(crate::record::Sym::from).collect();
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
        let _strings = super::sym::Decoding::start(strings);
        for _ in 0..len {
            records.push(Packed::decode(d)?);
        }
        Ok(ChunkIn {
            comms,
            ctxs,
            records,
        })
    }
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
) -> Result<Decoded, MmrError> {
    let computed = super::checksum64(&c.buf);
    if computed != c.stored {
        return Err(MmrError::Checksum {
            path: path.to_string(),
            chunk: c.index,
            offset: c.offset,
            stored: c.stored,
            computed,
        });
    }
    let corrupt = |what: String| MmrError::Corrupt {
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
    Ok(Decoded {
        ctxs,
        records: chunk.records,
        pos: 0,
        ts: 0,
        offset: c.offset,
        index: c.index,
        raw: c.buf,
    })
}

/// A decoded chunk, turned into `Record`s one at a time by the consumer.
struct Decoded {
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
    // layer would copy the `Record` again, which measurably costs per record.
    #[inline(always)]
    fn next_record(&mut self, path: &str) -> Option<Result<Record, MmrError>> {
        let p = self.records.get_mut(self.pos)?;
        self.pos += 1;
        self.ts = self.ts.wrapping_add(p.dts);
        let ctx = p.ctx;
        // Taken out (the slot keeps a variant without heap data until the vector is reused).
        let event = std::mem::replace(&mut p.event, Event::ExitMmap);
        let Some(&(cpu, pid, tgid, comm)) = self.ctxs.get(ctx as usize) else {
            return Some(Err(self.bad_ctx(path, ctx)));
        };
        Some(Ok(Record {
            ts_ns: self.ts,
            cpu,
            pid,
            tgid,
            comm,
            event,
        }))
    }

    #[cold]
    #[inline(never)]
    fn bad_ctx(&self, path: &str, ix: u32) -> MmrError {
        MmrError::Corrupt {
            path: path.to_string(),
            offset: self.offset,
            what: format!(
                "chunk {}: record {} refers to context {ix}, the chunk's context table has {}",
                self.index,
                self.pos.saturating_sub(1),
                self.ctxs.len()
            ),
        }
    }
}

/// The decoder thread: verifies and decodes chunks in the order they arrive, so the record
/// order is the file order whatever the timing.
struct Decoder {
    to: Option<SyncSender<RawChunk>>,
    from: Receiver<Result<Decoded, MmrError>>,
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
    header: Header,
    /// The source's diagnostics, once the block before the end marker was read.
    diagnostics: Option<Diagnostics>,
    current: Decoded,
    decoder: Option<Decoder>,
    /// Chunks sent to the decoder and not yet received.
    in_flight: usize,
    /// An error met while reading ahead: returned once every earlier record is delivered.
    pending_err: Option<MmrError>,
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

impl Reader<std::io::BufReader<std::fs::File>> {
    /// Open a compiled file.
    pub fn open(path: &std::path::Path) -> Result<Self, MmrError> {
        let p = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|source| MmrError::Io {
            path: p.clone(),
            op: "open",
            source,
        })?;
        Reader::new(&p, std::io::BufReader::with_capacity(READ_BUFFER, f))
    }
}

impl<R: Read> Reader<R> {
    /// Read the header from `inp`; `path` is for messages.
    pub fn new(path: &str, inp: R) -> Result<Self, MmrError> {
        let mut r = Reader {
            path: path.to_string(),
            inp,
            offset: 0,
            header: Header::default(),
            diagnostics: None,
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
            return Err(MmrError::BadMagic { path: r.path });
        }
        let version = r.u32("the format version")?;
        if version != VERSION {
            return Err(MmrError::Version {
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
        let (header, _) = bincode::serde::decode_from_slice::<Header, _>(&h, hcfg)
            .map_err(|e| r.corrupt(format!("bad header: {e}")))?;
        r.header = header;
        let decoder = Decoder::spawn(&r.path).map_err(|source| MmrError::Io {
            path: r.path.clone(),
            op: "start the decoder thread",
            source,
        })?;
        r.decoder = Some(decoder);
        Ok(r)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The source's diagnostics, once the end was reached (`None` before).
    pub fn source_diagnostics(&self) -> Option<&Diagnostics> {
        self.diagnostics.as_ref()
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn corrupt(&self, what: String) -> MmrError {
        MmrError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            what,
        }
    }

    fn exact(&mut self, buf: &mut [u8], expected: &'static str) -> Result<(), MmrError> {
        match self.inp.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(MmrError::Truncated {
                path: self.path.clone(),
                offset: self.offset,
                expected,
            }),
            Err(source) => Err(MmrError::Io {
                path: self.path.clone(),
                op: "read",
                source,
            }),
        }
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, MmrError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, MmrError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Up to `len` bytes into `buf` (grown with the bytes really there, never sized from the
    /// untrusted length: a 30-byte file claiming a 256 MiB chunk must not cost 256 MiB).
    fn payload(
        &mut self,
        buf: &mut Vec<u8>,
        len: u32,
        expected: &'static str,
    ) -> Result<(), MmrError> {
        let got = (&mut self.inp)
            .take(u64::from(len))
            .read_to_end(buf)
            .map_err(|source| MmrError::Io {
                path: self.path.clone(),
                op: "read",
                source,
            })?;
        self.offset += got as u64;
        if got < len as usize {
            return Err(MmrError::Truncated {
                path: self.path.clone(),
                offset: self.offset,
                expected,
            });
        }
        Ok(())
    }

    /// Read the next chunk (`Some`) or the diagnostics and the end marker (`None`, after
    /// checking them).
    fn next_chunk(&mut self) -> Result<Option<RawChunk>, MmrError> {
        loop {
            let start = self.offset;
            let mut tag = [0u8; 1];
            self.exact(&mut tag, "a chunk tag, the diagnostics or the end marker")?;
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
                        return Err(MmrError::Checksum {
                            path: self.path.clone(),
                            chunk: self.chunks,
                            offset: start,
                            stored: sum,
                            computed: self.sum,
                        });
                    }
                    if self.diagnostics.is_none() {
                        return Err(MmrError::Corrupt {
                            path: self.path.clone(),
                            offset: start,
                            what: "end marker without the diagnostics block before it".into(),
                        });
                    }
                    self.done = true;
                    return Ok(None);
                }
                1 => return self.chunk(start).map(Some),
                2 => {
                    let len = self.u32("the diagnostics length")?;
                    if len > MAX_DIAG_BYTES || self.diagnostics.is_some() {
                        return Err(MmrError::Corrupt {
                            path: self.path.clone(),
                            offset: start,
                            what: format!(
                                "a second diagnostics block, or one of {len} bytes (limit {MAX_DIAG_BYTES})"
                            ),
                        });
                    }
                    let mut buf = Vec::new();
                    self.payload(&mut buf, len, "the diagnostics")?;
                    self.sum = fnv1a64(self.sum, &buf);
                    let d = serde_json::from_slice(&buf).map_err(|e| MmrError::Corrupt {
                        path: self.path.clone(),
                        offset: start,
                        what: format!("bad diagnostics: {e}"),
                    })?;
                    self.diagnostics = Some(d);
                }
                t => {
                    return Err(MmrError::Corrupt {
                        path: self.path.clone(),
                        offset: start,
                        what: format!("unknown block tag {t} (expected 0, 1 or 2)"),
                    })
                }
            }
        }
    }

    /// A chunk's header and stored bytes (its tag at `start` already read).
    fn chunk(&mut self, start: u64) -> Result<RawChunk, MmrError> {
        let count = self.u32("a chunk record count")?;
        let len = self.u32("a chunk length")?;
        let plain_len = self.u32("a chunk's decompressed length")?;
        let stored = self.u64("a chunk checksum")?;
        self.total += u64::from(count);
        if len > MAX_CHUNK_BYTES || plain_len > MAX_CHUNK_BYTES || count as usize > CHUNK_RECORDS {
            return Err(self.corrupt(format!("chunk {} claims {count} records in {len} bytes ({plain_len} decompressed; limits {CHUNK_RECORDS}, {MAX_CHUNK_BYTES})", self.chunks)));
        }
        if self.diagnostics.is_some() {
            return Err(MmrError::Corrupt {
                path: self.path.clone(),
                offset: start,
                what: "a chunk after the diagnostics block".into(),
            });
        }
        let mut buf = self.spare_raw.pop().unwrap_or_default();
        buf.clear();
        self.payload(&mut buf, len, "chunk payload")?;
        self.sum = fnv1a64(self.sum, &stored.to_le_bytes());
        let index = self.chunks;
        self.chunks += 1;
        Ok(RawChunk {
            buf,
            plain_len,
            count,
            stored,
            offset: start,
            index,
        })
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

    fn decoder_gone(&self) -> MmrError {
        MmrError::Decoder {
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
    pub fn next_record(&mut self) -> Result<Option<Record>, MmrError> {
        // Fast path: the next record of the current chunk (empty after an error).
        match self.current.next_record(&self.path) {
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(e)) => Err(self.fail(e)),
            None => self.next_slow(),
        }
    }

    /// Up to `max` next records appended to `out` (see `RecordSource::next_batch`): the
    /// current chunk's records are unpacked straight into the caller's buffer.
    pub fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<usize, MmrError> {
        let start = out.len();
        while out.len() - start < max {
            match self.current.next_record(&self.path) {
                Some(Ok(r)) => out.push(r),
                Some(Err(e)) => return Err(self.fail(e)),
                None => match self.next_slow()? {
                    Some(r) => out.push(r),
                    None => break,
                },
            }
        }
        Ok(out.len() - start)
    }

    /// Stop the decoder and drop what is still in flight; returns `e`.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, e: MmrError) -> MmrError {
        self.failed = true;
        self.decoder = None;
        self.in_flight = 0;
        self.current = Decoded::empty();
        e
    }

    /// The current chunk is used up: take the next decoded one (or the end, or an error).
    #[inline(never)]
    fn next_slow(&mut self) -> Result<Option<Record>, MmrError> {
        if self.failed {
            return Err(self.corrupt("reading stopped after an earlier error".into()));
        }
        let res = self.next_inner();
        match res {
            Err(e) => Err(self.fail(e)),
            ok => ok,
        }
    }

    fn next_inner(&mut self) -> Result<Option<Record>, MmrError> {
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

impl<R: Read> RecordSource for Reader<R> {
    fn format(&self) -> Format {
        Format::Mmr
    }

    #[inline]
    fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        Ok(Reader::next_record(self)?)
    }

    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<usize, ParseError> {
        Ok(Reader::next_batch(self, out, max)?)
    }

    /// The diagnostics of the capture this file was compiled from (what its reader saw:
    /// overwritten events, unparsed and skipped lines), complete at the end.
    fn diagnostics(&self) -> Diagnostics {
        self.diagnostics.clone().unwrap_or_default()
    }

    fn stated_cpus(&self) -> Option<u32> {
        self.header.nr_cpus
    }

    fn format_name(&self) -> String {
        format!("compiled ({})", self.header.format)
    }
}
