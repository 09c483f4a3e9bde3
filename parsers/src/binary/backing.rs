//! The bytes a binary reader walks: a read-only map of the capture file, or, for input that
//! cannot be mapped (stdin, an outer zstd layer), the stream spilled to an unlinked temporary
//! file and mapped. The readers walk it with cursors and give back what they have passed
//! ([`Backing::release`]), so the pages they touched leave the process's resident set and peak
//! RSS does not grow with the capture's size.
//!
//! It must never hold a whole capture in anonymous memory except as the last resort when no
//! temporary file can be written (then [`Backing::in_memory`] says so).

use std::io::{Read, Write};
use std::path::Path;

use super::BinaryError;

/// Where spilled input goes: `$MMREPLAY_TMPDIR`, else the system temporary directory.
fn spill_dir() -> std::path::PathBuf {
    std::env::var_os("MMREPLAY_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// Most bytes a stream is spilled to: 64 GiB, more than any capture this tool is for.
pub const MAX_SPILL_BYTES: u64 = 64 << 30;

/// Most a zstd layer may expand: this many times its compressed size (real captures compress
/// 5-30x), with [`ZSTD_FLOOR_BYTES`] as the floor for small inputs.
pub const ZSTD_MAX_RATIO: u64 = 256;
/// See [`ZSTD_MAX_RATIO`].
pub const ZSTD_FLOOR_BYTES: u64 = 1 << 30;

/// The spill limit for `compressed` bytes of zstd.
pub fn zstd_limit(compressed: u64) -> u64 {
    compressed
        .saturating_mul(ZSTD_MAX_RATIO)
        .clamp(ZSTD_FLOOR_BYTES, MAX_SPILL_BYTES)
}

enum Store {
    Map(memmap2::Mmap),
    Vec(Vec<u8>),
}

/// Read-only capture bytes (see the module doc).
pub struct Backing {
    store: Store,
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backing")
            .field("len", &self.len())
            .field("in_memory", &self.in_memory())
            .finish()
    }
}

impl std::ops::Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.store {
            Store::Map(m) => m,
            Store::Vec(v) => v,
        }
    }
}

impl Backing {
    /// Bytes already in memory (tests, fuzzing, callers of `read_bytes`).
    pub fn from_vec(v: Vec<u8>) -> Self {
        Backing {
            store: Store::Vec(v),
        }
    }

    /// A mapped file.
    pub fn from_map(m: memmap2::Mmap) -> Self {
        Backing {
            store: Store::Map(m),
        }
    }

    /// Maps a regular file; anything else (pipes, empty files) is spilled like a stream.
    pub fn open(path: &Path) -> Result<Self, BinaryError> {
        let io = |source| BinaryError::Io {
            path: path.display().to_string(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        let regular = f
            .metadata()
            .map(|m| m.is_file() && m.len() > 0)
            .unwrap_or(false);
        if regular {
            // SAFETY: a read-only private mapping; the input is untrusted bytes throughout, so a
            // concurrent change can only give wrong data or errors (truncation: SIGBUS, as with
            // every mmap reader).
            if let Ok(m) = unsafe { memmap2::Mmap::map(&f) } {
                return Ok(Self::from_map(m));
            }
        }
        Self::spill(path.display().to_string().as_str(), Box::new(f))
    }

    /// Copies a stream into an unlinked temporary file and maps it (the page cache holds the
    /// bytes, not this process); in memory only when no temporary file can be made. At most
    /// [`MAX_SPILL_BYTES`].
    pub fn spill(path: &str, stream: Box<dyn Read + Send + '_>) -> Result<Self, BinaryError> {
        Self::spill_limited(path, stream, MAX_SPILL_BYTES)
    }

    /// [`Backing::spill`] of at most `limit` bytes: a stream that goes on (a decompression
    /// bomb) is an error naming the size reached, before it fills the disk.
    pub fn spill_limited(
        path: &str,
        stream: Box<dyn Read + Send + '_>,
        limit: u64,
    ) -> Result<Self, BinaryError> {
        let mut stream = stream.take(limit.saturating_add(1));
        let too_large = |total: u64| BinaryError::TooLarge {
            what: "decompressed stream",
            offset: total,
            size: total,
            cap: limit,
        };
        let io = |source| BinaryError::Io {
            path: path.to_string(),
            source,
        };
        if let Some(mut f) = temp_file() {
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(BinaryError::StreamRead {
                            path: path.to_string(),
                            offset: total,
                            source,
                        })
                    }
                };
                total += n as u64;
                if total > limit {
                    return Err(too_large(total));
                }
                f.write_all(buf.get(..n).unwrap_or(&[])).map_err(io)?;
            }
            if total == 0 {
                return Ok(Self::from_vec(Vec::new()));
            }
            // SAFETY: as in `open`; the file is unlinked and only this process has it.
            let m = unsafe { memmap2::Mmap::map(&f) }.map_err(io)?;
            return Ok(Self::from_map(m));
        }
        let mut v = Vec::new();
        // On an error, `read_to_end` keeps the bytes read before it: their count is the offset.
        if let Err(source) = stream.read_to_end(&mut v) {
            return Err(BinaryError::StreamRead {
                path: path.to_string(),
                offset: v.len() as u64,
                source,
            });
        }
        if v.len() as u64 > limit {
            return Err(too_large(v.len() as u64));
        }
        Ok(Self::from_vec(v))
    }

    /// Whether the bytes are anonymous memory (not a map).
    pub fn in_memory(&self) -> bool {
        matches!(self.store, Store::Vec(_))
    }

    /// Gives back `range` (byte offsets, rounded inwards to whole pages) of a map: the pages
    /// leave the resident set and are read again from the file if touched later. Nothing
    /// happens for in-memory bytes.
    pub fn release(&self, range: std::ops::Range<usize>) {
        if let Store::Map(m) = &self.store {
            release_map(m, range);
        }
    }
}

/// [`Backing::release`] for any read-only file map (the text reader's too).
pub(crate) fn release_map(m: &memmap2::Mmap, range: std::ops::Range<usize>) {
    const PAGE: usize = 4096;
    let start = range.start.div_ceil(PAGE) * PAGE;
    let end = range.end.min(m.len()) / PAGE * PAGE;
    if end > start {
        // SAFETY: a private read-only file mapping is never written, so dropping its pages
        // loses nothing: later reads fault them in again from the file. Every slice the
        // readers still hold stays valid (the mapping itself is not changed).
        let _ = unsafe {
            m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }
}

/// An unlinked temporary file opened for reading and writing, or None when none can be made.
fn temp_file() -> Option<std::fs::File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = spill_dir();
    for _ in 0..8 {
        let name = dir.join(format!(
            ".mmreplay-spill-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&name)
        {
            let _ = std::fs::remove_file(&name);
            return Some(f);
        }
    }
    None
}

/// Tracks how far a reader has released a range of a [`Backing`], releasing in steps of at
/// least [`Releaser::STEP`] bytes (one madvise per step, not per record).
#[derive(Debug, Clone)]
pub(crate) struct Releaser {
    done: usize,
}

impl Releaser {
    pub const STEP: usize = 4 << 20;

    pub fn new(start: usize) -> Self {
        Releaser { done: start }
    }

    /// Everything before `upto` is no longer needed.
    #[inline]
    pub fn passed(&mut self, b: &Backing, upto: usize) {
        if upto >= self.done.saturating_add(Self::STEP) {
            b.release(self.done..upto);
            self.done = upto / 4096 * 4096;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_keeps_bytes() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let b = Backing::spill("t", Box::new(std::io::Cursor::new(data.clone()))).unwrap();
        assert_eq!(&b[..], &data[..]);
        // Released pages read back the same (they come again from the file).
        b.release(0..b.len());
        assert_eq!(&b[..], &data[..]);
    }

    #[test]
    fn spill_stops_at_its_limit() {
        let e = Backing::spill_limited("t", Box::new(std::io::repeat(7)), 3 << 20).unwrap_err();
        assert!(
            matches!(e, BinaryError::TooLarge { cap, size, .. } if cap == 3 << 20 && size > cap),
            "{e}"
        );
    }
}
