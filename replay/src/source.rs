//! Opening a replay input: a capture in any format the parsers crate reads (a compiled `.mmr`
//! included), or the small real capture bundled in the binary. One record stream API for all,
//! with a byte counter for progress bars.
//!
//! It must never read a whole input into memory (the bundled capture is already in the binary)
//! and never lose the file name in an error.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mmreplay_parsers::record::Record;
use mmreplay_parsers::{Diagnostics, Format, Options, ParseError, RecordSource};

/// The bundled capture: a real `mmreplay record` capture from `corpus/captures/` (see
/// corpus/README.md for its provenance). `tour` is chosen because every candidate shows its
/// effect on it (hugetlb PMD sharing, a migration, memcg reclaim).
pub const BUNDLED: &[u8] = include_bytes!("../../corpus/captures/tour.trace.zst");
/// Name the bundled capture is reported under.
pub const BUNDLED_NAME: &str = "<bundled:corpus/captures/tour.trace.zst>";
/// Sidecar of the bundled capture (its kernel, workload pid).
pub const BUNDLED_META: &str = include_str!("../../corpus/captures/tour.trace.zst.meta.json");

/// The second bundled capture, replayed after `tour` by the default run: a real 6.1 capture
/// with MGLRU on (`corpus/captures/k61-reclaim-mglru.trace.zst`), where look-around acts.
/// `tour` comes from 6.18, which has no MGLRU, so look-around is `same` there, as it must be.
pub const BUNDLED_MGLRU: &[u8] =
    include_bytes!("../../corpus/captures/k61-reclaim-mglru.trace.zst");
/// Name (and input path) of [`BUNDLED_MGLRU`].
pub const BUNDLED_MGLRU_NAME: &str = "<bundled:corpus/captures/k61-reclaim-mglru.trace.zst>";
/// Sidecar of [`BUNDLED_MGLRU`]: its kernel (6.1, `lru_gen` enabled) chooses the profile.
pub const BUNDLED_MGLRU_META: &str =
    include_str!("../../corpus/captures/k61-reclaim-mglru.trace.zst.meta.json");

/// The inputs of the default run (`replay` with no input): `None` is [`BUNDLED`], then the
/// extra bundled captures by name.
pub fn default_inputs() -> Vec<Option<String>> {
    vec![None, Some(BUNDLED_MGLRU_NAME.to_string())]
}

/// The bytes and sidecar of an extra bundled capture named by `path` (as
/// [`default_inputs`] gives it), else `None`: a path is never taken for a bundled capture
/// unless it is exactly that name.
pub fn bundled_extra(path: &str) -> Option<(&'static [u8], &'static str)> {
    (path == BUNDLED_MGLRU_NAME).then_some((BUNDLED_MGLRU, BUNDLED_MGLRU_META))
}

/// The sidecar text of the capture at `path`: the built-in one of a bundled capture, else
/// `PATH.meta.json` when it can be read.
pub fn sidecar_text(path: &str) -> Option<String> {
    match bundled_extra(path) {
        Some((_, meta)) => Some(meta.to_string()),
        // Beside the file, else carried inside a compiled `.mmr`.
        None => crate::sidecar::text_for(path),
    }
}

/// Whether `path` names a litmus scenario (`corpus/litmus/*.litmus`): ops, not records, so
/// `session::run` replays it without the parsers and the lowering.
pub fn is_litmus(path: &str) -> bool {
    Path::new(path).extension().is_some_and(|e| e == "litmus")
}

/// Errors opening or reading an input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{path}: cannot open, because: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A stream of time-ordered records from one input.
pub struct Source {
    inner: Box<dyn RecordSource + Send>,
    name: String,
    format: String,
    nr_cpus: Option<u32>,
    bytes: Arc<AtomicU64>,
    total_bytes: Option<u64>,
}

/// Counts bytes read (shared with the progress bar).
pub struct CountingReader<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

/// `#P:N` from an ftrace header (`entries-in-buffer/entries-written: a/b   #P:2`).
pub fn cpus_from_header(head: &[u8]) -> Option<u32> {
    mmreplay_parsers::text::header::cpus_in_head(head)
}

/// The first `n` decompressed bytes of a (possibly zstd) stream.
fn head_of(mut r: impl Read, n: usize) -> Vec<u8> {
    let mut first = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut first[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    let prefix = first.get(..got).unwrap_or(&[]).to_vec();
    let chained = std::io::Cursor::new(prefix.clone()).chain(r);
    let mut out = Vec::with_capacity(n);
    if mmreplay_parsers::source::is_zstd(&prefix) {
        if let Ok(d) = zstd::stream::read::Decoder::new(chained) {
            let _ = d.take(n as u64).read_to_end(&mut out);
        }
    } else {
        let _ = chained.take(n as u64).read_to_end(&mut out);
    }
    out
}

impl Source {
    /// Open `path`: any format the parsers read, a compiled `.mmr` included.
    pub fn open(path: &str, strict: bool) -> Result<Source, SourceError> {
        if path == "-" {
            return Source::open_stdin(strict);
        }
        if Path::new(path).is_dir() {
            return Source::open_unsized(path, strict);
        }
        let open = |p: &str| {
            File::open(p).map_err(|source| SourceError::Open {
                path: p.to_string(),
                source,
            })
        };
        let total_bytes = std::fs::metadata(path).ok().map(|m| m.len());
        let bytes = Arc::new(AtomicU64::new(0));
        let nr_cpus = cpus_from_header(&head_of(open(path)?, 64 * 1024));
        let cr = CountingReader {
            inner: open(path)?,
            n: bytes.clone(),
        };
        let opts = Options {
            strict,
            ..Options::default()
        };
        let src = mmreplay_parsers::open_reader(path, Box::new(cr), &opts)?;
        Ok(Source::new(src, path, nr_cpus, bytes, total_bytes))
    }

    /// `src` under `name`; `header_cpus` is the `#P:` of a text header. A `.mmr` states its
    /// CPUs in its header, a binary capture is decoded at open (perf HEADER_NRCPUS).
    fn new(
        src: Box<dyn RecordSource + Send>,
        name: &str,
        header_cpus: Option<u32>,
        bytes: Arc<AtomicU64>,
        total_bytes: Option<u64>,
    ) -> Source {
        let header_cpus = header_cpus.filter(|_| src.format() != Format::Mmr);
        let nr_cpus = src
            .stated_cpus()
            .or(header_cpus)
            .or_else(|| src.diagnostics().capture.and_then(|c| c.nr_cpus));
        Source {
            format: src.format_name(),
            inner: src,
            name: name.to_string(),
            nr_cpus,
            bytes,
            total_bytes,
        }
    }

    /// Standard input: its first 64 KiB are read ahead for the header's CPU count, then put
    /// back in front of the rest.
    fn open_stdin(strict: bool) -> Result<Source, SourceError> {
        let mut head = Vec::with_capacity(64 * 1024);
        let stdin = std::io::stdin();
        std::io::Read::take(stdin.lock(), 64 * 1024)
            .read_to_end(&mut head)
            .map_err(|source| SourceError::Open {
                path: "-".to_string(),
                source,
            })?;
        let nr_cpus = cpus_from_header(&head_of(head.as_slice(), 64 * 1024));
        let bytes = Arc::new(AtomicU64::new(0));
        let cr = CountingReader {
            inner: std::io::Cursor::new(head).chain(std::io::stdin()),
            n: bytes.clone(),
        };
        let opts = Options {
            strict,
            ..Options::default()
        };
        let src = mmreplay_parsers::open_reader("-", Box::new(cr), &opts)?;
        Ok(Source::new(src, "-", nr_cpus, bytes, None))
    }

    /// A `record --raw` directory: the parsers open it themselves (no byte count for a
    /// progress bar). Its CPUs are its `per_cpu/cpuN`.
    fn open_unsized(path: &str, strict: bool) -> Result<Source, SourceError> {
        let opts = Options {
            strict,
            ..Options::default()
        };
        let src = mmreplay_parsers::open(path, &opts)?;
        let nr_cpus = std::fs::read_dir(Path::new(path).join("per_cpu"))
            .ok()
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("cpu"))
                    .count() as u32
            })
            .filter(|n| *n > 0);
        Ok(Source::new(
            src,
            path,
            nr_cpus,
            Arc::new(AtomicU64::new(0)),
            None,
        ))
    }

    /// The capture bundled in the binary.
    pub fn bundled(strict: bool) -> Result<Source, SourceError> {
        Source::from_static(BUNDLED_NAME, BUNDLED, strict)
    }

    /// A capture built into the binary, under `name`.
    fn from_static(
        name: &'static str,
        data: &'static [u8],
        strict: bool,
    ) -> Result<Source, SourceError> {
        let bytes = Arc::new(AtomicU64::new(0));
        let nr_cpus = cpus_from_header(&head_of(data, 64 * 1024));
        let cr = CountingReader {
            inner: data,
            n: bytes.clone(),
        };
        let opts = Options {
            strict,
            ..Options::default()
        };
        let src = mmreplay_parsers::open_reader(name, Box::new(cr), &opts)?;
        Ok(Source::new(
            src,
            name,
            nr_cpus,
            bytes,
            Some(data.len() as u64),
        ))
    }

    /// Open `path`, or the bundled capture for `None` (and an extra bundled capture by its
    /// name, see [`default_inputs`]).
    pub fn open_opt(path: Option<&str>, strict: bool) -> Result<Source, SourceError> {
        match path {
            Some(p) if p == BUNDLED_MGLRU_NAME => {
                Source::from_static(BUNDLED_MGLRU_NAME, BUNDLED_MGLRU, strict)
            }
            Some(p) => Source::open(p, strict),
            None => Source::bundled(strict),
        }
    }

    /// The next record.
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record>, SourceError> {
        Ok(self.inner.next_record()?)
    }

    /// Up to `max` next records appended to `out`, `Ok(0)` at the end (see
    /// [`mmreplay_parsers::RecordSource::next_batch`]: on `Err`, `out` holds the records read
    /// before it).
    pub fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<usize, SourceError> {
        Ok(self.inner.next_batch(out, max)?)
    }

    /// Input name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Format name.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// CPUs of the captured machine, when the input says.
    pub fn nr_cpus(&self) -> Option<u32> {
        self.nr_cpus
    }

    /// Parser diagnostics (a compiled `.mmr`: its source's, complete at the end).
    pub fn diagnostics(&self) -> Option<Diagnostics> {
        Some(self.inner.diagnostics())
    }

    /// (bytes read so far, total bytes) of the underlying file, for progress bars.
    pub fn progress(&self) -> (u64, Option<u64>) {
        (self.bytes.load(Ordering::Relaxed), self.total_bytes)
    }

    /// Whether `path` names a compiled corpus file.
    pub fn is_compiled_path(path: &Path) -> bool {
        let mut m = [0u8; 8];
        File::open(path)
            .and_then(|mut f| f.read_exact(&mut m))
            .is_ok()
            && mmreplay_parsers::mmr::is_compiled(&m)
    }
}

impl Iterator for Source {
    type Item = Result<Record, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}
