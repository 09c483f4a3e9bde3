//! Streaming over ring-buffer pages: one cursor per CPU (per buffer) over its pages, mapped or
//! decompressed one trace.dat v7 chunk at a time, merged lazily by timestamp. Used by
//! trace.dat (`tracedat.rs`) and raw capture directories (`rawdir.rs`).
//!
//! Memory: a cursor holds the records of one page and at most one decompressed chunk (declared
//! size capped at [`MAX_CHUNK_BYTES`]) plus a page; pages it has passed are given back to the
//! kernel ([`Backing::release`]). So the peak does not depend on the capture's length. All
//! cursors together hold at most [`ChunkBudget`]'s cap of decompressed chunk bytes
//! ([`CHUNK_BUDGET_BASE`] + the input's size): a file whose CPUs (real or repeated entries
//! pointing at one chunk) would hold more is an error naming the chunk's byte offset.
//!
//! Order: the merge takes the cursor whose next record has the smallest raw ring-buffer
//! timestamp, ties going to the lower cursor (buffers in file order, then CPUs), exactly as the
//! whole-capture merge it replaced (a heap of (timestamp, stream)). It must never reorder records of one CPU.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Read;
use std::sync::Arc;

use super::backing::{Backing, Releaser};
use super::bytes::{Cursor, Endian};
use super::decode::Decoder;
use super::meta::Meta;
use super::ringbuf::{decode_page, Item, PageLayout};
use super::BinaryError;
use crate::intern::FxHashMap;
use crate::record::{Comm, Event, Record};

/// Largest decompressed trace.dat v7 chunk accepted (trace-cmd writes chunks of 10 pages,
/// `mmreplay record` 32: 128 KiB, 2 MiB with 64 KiB pages); a larger declared size is an error
/// naming the chunk's byte offset, not an allocation. 64 MiB before: one chunk of zeros in a
/// 155 KB file then held 80 MB.
pub const MAX_CHUNK_BYTES: u64 = 4 << 20;

/// Decompressed chunk bytes all CPU cursors of one capture may hold at once, beyond the
/// input's own size (the budget is this plus the input's size, so a big real capture with many
/// CPUs is never refused for it). Real captures hold far less: trace-cmd's 40 KiB chunks x 256
/// CPUs is 10 MiB, `mmreplay record`'s 128 KiB chunks x 256 CPUs 32 MiB. Before the budget, a
/// 154 KB file listing 32 CPUs that share one 4 MiB chunk peaked at 143 MB (59 MB with a
/// 48 MiB base, 49 MB now, with the error).
pub const CHUNK_BUDGET_BASE: u64 = 40 << 20;

/// The shared memory budget of the CPU cursors' decompressed chunks (issue 20): each cursor
/// says what it would hold before it allocates, and gives it back when its data ends.
pub(crate) struct ChunkBudget {
    cap: u64,
    held: u64,
    /// The one zstd context all cursors share: each chunk is decompressed whole in one call,
    /// so no cursor is ever mid-frame (one per CPU cost 256 KiB each; one per chunk cost more
    /// time than decompressing it).
    zstd: Option<Box<ZstdChunks>>,
}

impl ChunkBudget {
    pub fn for_input(input_len: usize) -> Self {
        ChunkBudget {
            cap: CHUNK_BUDGET_BASE.saturating_add(input_len as u64),
            held: 0,
            zstd: None,
        }
    }

    /// A cursor holding `old` bytes would hold `new`: refused (naming `offset`) over the cap.
    fn resize(&mut self, old: u64, new: u64, offset: u64) -> Result<(), BinaryError> {
        let total = self.held.saturating_sub(old).saturating_add(new);
        if new > old && total > self.cap {
            return Err(BinaryError::TooLarge {
                what: "trace.dat v7 CPU data chunk (decompressed chunks held at once by all CPUs)",
                offset,
                size: total,
                cap: self.cap,
            });
        }
        self.held = total;
        Ok(())
    }

    /// The allocator gave a cursor more than it asked for (a growing buffer): counted as it
    /// is, without a check (the bytes exist already; the next request is checked with them).
    fn grew(&mut self, old: u64, new: u64) {
        self.held = self.held.saturating_sub(old).saturating_add(new);
    }
}

/// Largest chunk decompressed in one call into a buffer sized from its declared size (trace-cmd
/// writes 10 pages per chunk, `mmreplay record` 32); larger ones stream into a buffer that
/// grows with the data only.
const ONE_SHOT_MAX: usize = 4 << 20;

/// Where a cursor's pages come from.
enum Src {
    /// Whole pages in `bytes[pos..end]`.
    Plain { pos: usize, end: usize },
    /// trace.dat v7 compressed CPU data: `left` chunks, the next one's header at `next`;
    /// `buf[buf_pos..]` is decompressed data not yet walked.
    Chunks {
        algo: String,
        next: usize,
        left: u32,
        buf: Vec<u8>,
        buf_pos: usize,
    },
}

/// A reused zstd decompression context and its output window.
pub(crate) struct ZstdChunks {
    dctx: zstd::zstd_safe::DCtx<'static>,
    tmp: Vec<u8>,
}

impl ZstdChunks {
    fn new() -> Self {
        ZstdChunks {
            dctx: zstd::zstd_safe::DCtx::create(),
            tmp: vec![0u8; 1 << 17],
        }
    }

    /// Decompresses a whole chunk in one call straight into `out` (emptied first), sized from
    /// the declared size: no window buffer and no copy out of it, unlike [`Self::frame_into`].
    /// False (and `out` empty) when it does not give exactly `expect` bytes: the caller then
    /// runs [`Self::frame_into`], whose errors name what went wrong.
    fn one_shot(&mut self, cdata: &[u8], expect: usize, out: &mut Vec<u8>) -> bool {
        out.clear();
        out.reserve(expect);
        match self.dctx.decompress(out, cdata) {
            Ok(n) if n == expect && out.len() == expect => true,
            _ => {
                out.clear();
                false
            }
        }
    }

    /// Decompresses one zstd frame (`cdata`) onto the end of `out`; never more than `expect`
    /// bytes (the caller checks it got exactly that many).
    fn frame_into(
        &mut self,
        cdata: &[u8],
        expect: usize,
        offset: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), BinaryError> {
        use zstd::zstd_safe::{get_error_name, InBuffer, OutBuffer, ResetDirective};
        let err = |msg: String| BinaryError::Decompress {
            algo: "zstd".into(),
            offset,
            msg,
        };
        self.dctx
            .reset(ResetDirective::SessionOnly)
            .map_err(|c| err(get_error_name(c).to_string()))?;
        let before = out.len();
        let mut input = InBuffer::around(cdata);
        loop {
            let room = (expect + 1 - (out.len() - before)).min(self.tmp.len());
            let dst = self.tmp.get_mut(..room).unwrap_or(&mut []);
            let mut ob = OutBuffer::around(dst);
            let hint = self
                .dctx
                .decompress_stream(&mut ob, &mut input)
                .map_err(|c| err(get_error_name(c).to_string()))?;
            let n = ob.pos();
            out.extend_from_slice(self.tmp.get(..n).unwrap_or(&[]));
            if out.len() - before > expect {
                return Err(err(format!("more than the {expect} bytes the header says")));
            }
            if hint == 0 && input.pos() == cdata.len() {
                return Ok(()); // last frame complete
            }
            if n == 0 && input.pos() == cdata.len() {
                return Err(err("frame cut short".into()));
            }
        }
    }
}

/// One CPU's pages.
pub(crate) struct CpuCursor {
    cpu: u32,
    bytes: Arc<Backing>,
    src: Src,
    /// File offset of the data (messages: page `i` is at `base + i * page_size`).
    base: u64,
    page_idx: u64,
    /// Decoded records of the current page with their raw timestamps (the merge key).
    recs: VecDeque<(u64, Record)>,
    rel: Releaser,
    /// Bytes this cursor counts against the [`ChunkBudget`] (chunk buffer and zstd context).
    held: u64,
    /// Errors are wrapped with this path (raw capture directories: one file per CPU).
    path: Option<String>,
}

impl CpuCursor {
    /// Uncompressed pages: `size` bytes at `off` (checked against the input here).
    pub fn plain(
        cpu: u32,
        bytes: Arc<Backing>,
        off: u64,
        size: u64,
        path: Option<String>,
    ) -> Result<Self, BinaryError> {
        let (pos, end) = span(&bytes, off, size, "flyrecord CPU data")?;
        Ok(CpuCursor {
            cpu,
            src: Src::Plain { pos, end },
            base: off,
            page_idx: 0,
            recs: VecDeque::new(),
            rel: Releaser::new(pos),
            held: 0,
            path,
            bytes,
        })
    }

    /// trace.dat v7 compressed CPU data at `off`: u32 chunk count, then per chunk u32
    /// compressed size, u32 uncompressed size and the data. trace-cmd 3.1 records a size 4 bytes
    /// short of the chunked data (the count is not counted), so the chunk headers bound the read
    /// and the file end bounds them.
    pub fn chunks(
        cpu: u32,
        bytes: Arc<Backing>,
        off: u64,
        algo: &str,
        endian: Endian,
    ) -> Result<Self, BinaryError> {
        let (pos, _) = span(&bytes, off, 0, "flyrecord CPU data")?;
        let mut c = Cursor::new(
            bytes.get(pos..).unwrap_or(&[]),
            off,
            endian,
            "compressed CPU data",
        );
        let left = c.u32("chunk count")?;
        Ok(CpuCursor {
            cpu,
            src: Src::Chunks {
                algo: algo.to_string(),
                next: pos + 4,
                left,
                buf: Vec::new(),
                buf_pos: 0,
            },
            base: off,
            page_idx: 0,
            recs: VecDeque::new(),
            rel: Releaser::new(pos),
            held: 0,
            path: None,
            bytes,
        })
    }

    fn wrap(&self, e: BinaryError) -> BinaryError {
        match &self.path {
            Some(p) => BinaryError::InFile {
                path: p.clone(),
                source: Box::new(e),
            },
            None => e,
        }
    }

    /// Decodes pages until a record is ready; Ok(false) when the CPU's data is exhausted.
    fn fill(&mut self, ctx: &PageCtx, budget: &mut ChunkBudget) -> Result<bool, BinaryError> {
        while self.recs.is_empty() {
            match self.next_page(ctx, budget) {
                Ok(true) => {}
                Ok(false) => {
                    self.release_chunks(budget);
                    return Ok(false);
                }
                Err(e) => return Err(self.wrap(e)),
            }
        }
        Ok(true)
    }

    /// At the end of its data a cursor gives its chunk buffer and zstd context back (to the
    /// allocator and to the budget): only cursors still reading hold any.
    fn release_chunks(&mut self, budget: &mut ChunkBudget) {
        if let Src::Chunks { buf, .. } = &mut self.src {
            *buf = Vec::new();
        }
        let _ = budget.resize(self.held, 0, 0);
        self.held = 0;
    }

    /// Decodes the next page into `recs`; Ok(false) at the end.
    fn next_page(&mut self, ctx: &PageCtx, budget: &mut ChunkBudget) -> Result<bool, BinaryError> {
        let ps = ctx.layout.page_size;
        let off = self.base + self.page_idx * ps as u64;
        let (cpu, recs) = (self.cpu, &mut self.recs);
        let mut push = |it: Item<'_>| recs.push_back(ctx.record(cpu, it));
        match &mut self.src {
            Src::Plain { pos, end } => {
                if *pos >= *end {
                    return Ok(false);
                }
                let have = *end - *pos;
                if have < ps {
                    // trace-cmd never writes partial pages; a truncated file ends here.
                    return Err(BinaryError::Truncated {
                        what: "ring buffer",
                        field: "page",
                        offset: off,
                        need: ps as u64,
                        have: have as u64,
                    });
                }
                let page = self.bytes.get(*pos..*pos + ps).unwrap_or(&[]);
                decode_page(page, &ctx.layout, off, &mut push)?;
                *pos += ps;
                self.rel.passed(&self.bytes, *pos);
            }
            Src::Chunks {
                algo,
                next,
                left,
                buf,
                buf_pos,
            } => {
                while buf.len() - *buf_pos < ps && *left > 0 {
                    // Keep the unread tail, then append the next chunk.
                    buf.drain(..*buf_pos);
                    *buf_pos = 0;
                    let mut c = Cursor::new(
                        self.bytes.get(*next..).unwrap_or(&[]),
                        *next as u64,
                        ctx.layout.endian,
                        "compressed CPU data",
                    );
                    let csize = c.u32("chunk compressed size")?;
                    let usize_ = c.u32("chunk uncompressed size")?;
                    let at = c.file_offset();
                    let cdata = c.take(u64::from(csize), "chunk data")?;
                    if u64::from(usize_) > MAX_CHUNK_BYTES {
                        return Err(BinaryError::TooLarge {
                            what: "trace.dat v7 CPU data chunk",
                            offset: at,
                            size: u64::from(usize_),
                            cap: MAX_CHUNK_BYTES,
                        });
                    }
                    // Counted before anything is allocated: what stays unread and the new chunk.
                    let unread = (buf.len() - *buf_pos) as u64;
                    let want = (buf.capacity() as u64).max(unread + u64::from(usize_));
                    budget.resize(self.held, want, at)?;
                    self.held = want;
                    if algo == "zstd" {
                        let z = budget
                            .zstd
                            .get_or_insert_with(|| Box::new(ZstdChunks::new()));
                        let expect = usize_ as usize;
                        // Chunks of whole pages leave nothing unread: decompress in place.
                        if buf.is_empty()
                            && expect <= ONE_SHOT_MAX
                            && z.one_shot(cdata, expect, buf)
                        {
                            *next += 8 + csize as usize;
                            *left -= 1;
                            self.rel.passed(&self.bytes, *next);
                            continue;
                        }
                        let before = buf.len();
                        z.frame_into(cdata, usize_ as usize, at, buf)?;
                        let got = buf.len() - before;
                        if got != usize_ as usize {
                            return Err(BinaryError::Decompress {
                                algo: "zstd".into(),
                                offset: at,
                                msg: format!(
                                    "{got} bytes after decompression, header says {usize_}"
                                ),
                            });
                        }
                    } else {
                        decompress_into(algo, cdata, usize_ as usize, at, buf)?;
                    }
                    *next += 8 + csize as usize;
                    *left -= 1;
                    self.rel.passed(&self.bytes, *next);
                }
                let cap = buf.capacity() as u64;
                if cap > self.held {
                    budget.grew(self.held, cap);
                    self.held = cap;
                }
                let have = buf.len() - *buf_pos;
                if have == 0 {
                    return Ok(false);
                }
                if have < ps {
                    return Err(BinaryError::Truncated {
                        what: "ring buffer",
                        field: "page",
                        offset: off,
                        need: ps as u64,
                        have: have as u64,
                    });
                }
                let page = buf.get(*buf_pos..*buf_pos + ps).unwrap_or(&[]);
                decode_page(page, &ctx.layout, off, &mut push)?;
                *buf_pos += ps;
            }
        }
        self.page_idx += 1;
        Ok(true)
    }
}

/// `size` bytes at `off` of `bytes`, checked.
fn span(
    bytes: &[u8],
    off: u64,
    size: u64,
    what: &'static str,
) -> Result<(usize, usize), BinaryError> {
    let Some(start) = usize::try_from(off).ok().filter(|&s| s <= bytes.len()) else {
        return Err(BinaryError::Invalid {
            what,
            offset: off,
            msg: format!("offset beyond the end of the file ({} bytes)", bytes.len()),
        });
    };
    let have = (bytes.len() - start) as u64;
    if size > have {
        return Err(BinaryError::Truncated {
            what,
            field: "data",
            offset: off,
            need: size,
            have,
        });
    }
    Ok((start, start + size as usize))
}

/// Decompresses exactly `expect` bytes onto the end of `out`. The buffer grows with the data
/// the decoder produces (never pre-sized from the untrusted declared size, which the caller has
/// capped).
pub(crate) fn decompress_into(
    algo: &str,
    cdata: &[u8],
    expect: usize,
    offset: u64,
    out: &mut Vec<u8>,
) -> Result<(), BinaryError> {
    let before = out.len();
    let res = match algo {
        "zstd" => zstd::stream::read::Decoder::new(cdata)
            .and_then(|d| d.take(expect as u64).read_to_end(out)),
        "zlib" => flate2::read::ZlibDecoder::new(cdata)
            .take(expect as u64)
            .read_to_end(out),
        other => return Err(BinaryError::Unsupported(format!("compression {other:?}"))),
    };
    res.map_err(|e| BinaryError::Decompress {
        algo: algo.to_string(),
        offset,
        msg: e.to_string(),
    })?;
    let got = out.len() - before;
    if got != expect {
        return Err(BinaryError::Decompress {
            algo: algo.to_string(),
            offset,
            msg: format!("{got} bytes after decompression, header says {expect}"),
        });
    }
    Ok(())
}

/// What turns page items into records.
pub(crate) struct PageCtx {
    pub dec: Decoder,
    pub meta: Meta,
    pub layout: PageLayout,
    pub ts_off: i64,
    /// `meta.cmdlines` as a hash map: looked up once per record.
    comms: FxHashMap<i32, Comm>,
}

impl PageCtx {
    pub fn new(dec: Decoder, meta: Meta, layout: PageLayout, ts_off: i64) -> Self {
        let comms = meta.cmdlines.iter().map(|(p, c)| (*p, *c)).collect();
        PageCtx {
            dec,
            meta,
            layout,
            ts_off,
            comms,
        }
    }

    /// [`comm_for`] by hash lookup.
    #[inline]
    fn comm(&self, pid: i32) -> Comm {
        if pid == 0 {
            return Comm::new(b"<idle>");
        }
        self.comms
            .get(&pid)
            .copied()
            .unwrap_or_else(|| Comm::new(b"<...>"))
    }

    fn record(&self, cpu: u32, it: Item<'_>) -> (u64, Record) {
        match it {
            Item::Event { ts, raw } => {
                let pid = self.dec.common_pid(raw);
                (
                    ts,
                    Record {
                        ts_ns: ts.wrapping_add_signed(self.ts_off),
                        cpu,
                        pid,
                        tgid: None,
                        comm: self.comm(pid),
                        event: self.dec.decode(raw),
                    },
                )
            }
            Item::Missed { ts, count } => (
                ts,
                Record {
                    ts_ns: ts.wrapping_add_signed(self.ts_off),
                    cpu,
                    pid: -1,
                    tgid: None,
                    comm: Comm::default(),
                    event: Event::Lost { count },
                },
            ),
        }
    }

    /// Format files that failed to parse among the events met so far, then the metadata's own.
    pub fn format_errors(&self) -> Vec<super::FormatError> {
        let mut v = self.dec.format_errors();
        v.extend(self.meta.format_errors.iter().cloned());
        v
    }
}

/// The lazy k-way merge of the cursors.
pub(crate) struct PageMerge {
    pub ctx: PageCtx,
    cursors: Vec<CpuCursor>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    /// A key no larger than any in `heap`, kept out of it: a CPU's records mostly follow
    /// each other, so the cursor just taken from is usually next again and costs no heap
    /// push and pop.
    top: Option<(u64, usize)>,
    started: bool,
    /// Decompressed chunk bytes the cursors may hold together.
    budget: ChunkBudget,
}

impl PageMerge {
    pub fn new(ctx: PageCtx, cursors: Vec<CpuCursor>) -> Self {
        // All cursors read the same input.
        let input_len = cursors.first().map_or(0, |c| c.bytes.len());
        PageMerge {
            ctx,
            heap: BinaryHeap::with_capacity(cursors.len()),
            cursors,
            top: None,
            started: false,
            budget: ChunkBudget::for_input(input_len),
        }
    }

    fn refill(&mut self, i: usize) -> Result<(), BinaryError> {
        let Some(c) = self.cursors.get_mut(i) else {
            return Ok(());
        };
        if c.fill(&self.ctx, &mut self.budget)? {
            if let Some((ts, _)) = c.recs.front() {
                let key = (*ts, i);
                // Keys are unique (one per cursor), so `<` orders them as the heap does.
                match self.top {
                    Some(t) if key < t => {
                        self.heap.push(Reverse(t));
                        self.top = Some(key);
                    }
                    Some(_) => self.heap.push(Reverse(key)),
                    None if self.heap.peek().is_none_or(|Reverse(h)| key < *h) => {
                        self.top = Some(key);
                    }
                    None => self.heap.push(Reverse(key)),
                }
            }
        }
        Ok(())
    }

    /// The next record in time order, `Ok(None)` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>, BinaryError> {
        if !self.started {
            self.started = true;
            for i in 0..self.cursors.len() {
                self.refill(i)?;
            }
        }
        let Some((_, i)) = self.top.take().or_else(|| self.heap.pop().map(|r| r.0)) else {
            return Ok(None);
        };
        let r = self
            .cursors
            .get_mut(i)
            .and_then(|c| c.recs.pop_front())
            .map(|(_, r)| r);
        self.refill(i)?;
        Ok(r)
    }

    /// Records held right now (decoded, not yet returned): the bound the tests check.
    pub fn buffered(&self) -> usize {
        self.cursors.iter().map(|c| c.recs.len()).sum()
    }

    /// Drains everything into a vector (the whole-capture API).
    pub fn collect(mut self) -> Result<(Vec<Record>, PageCtx), BinaryError> {
        let mut out = Vec::new();
        while let Some(r) = self.next_record()? {
            out.push(r);
        }
        Ok((out, self.ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget refuses a request that would take all cursors over the cap (naming the
    /// offset), counts what cursors give back, and lets a cursor shrink while over it.
    #[test]
    fn chunk_budget_caps_the_sum_over_cursors() {
        let mut b = ChunkBudget::for_input(0);
        let chunk = MAX_CHUNK_BYTES;
        let fit = CHUNK_BUDGET_BASE / chunk;
        for _ in 0..fit {
            b.resize(0, chunk, 7).unwrap();
        }
        match b.resize(0, chunk, 1234) {
            Err(BinaryError::TooLarge {
                offset, size, cap, ..
            }) => {
                assert_eq!((offset, cap), (1234, CHUNK_BUDGET_BASE));
                assert_eq!(size, (fit + 1) * chunk);
            }
            other => panic!("{other:?}"),
        }
        // A cursor that ends gives its chunk back: the next one fits.
        b.resize(chunk, 0, 0).unwrap();
        b.resize(0, chunk, 99).unwrap();
        // The cap grows with the input (a big real capture is never refused for it).
        let mut big = ChunkBudget::for_input(1 << 30);
        for _ in 0..fit * 10 {
            big.resize(0, chunk, 0).unwrap();
        }
    }
}
