//! Text trace formats: the line tokenisers (ftrace / `trace-cmd report`, `perf script`) and the
//! payload decoders that turn an event's printed text into a typed [`crate::Event`].
//!
//! Zero-copy: tokenisers return slices of the input line. Must never allocate per line on the
//! happy path except inside [`crate::Record`] construction, and never panic on any bytes.

pub mod ftrace;
pub mod header;
pub mod lines;
pub mod payload;
pub mod perf;
pub mod reader;

/// (comm, pid, tgid, cpu, index just after `]`) found by a tokeniser's `[cpu]` anchor.
pub(crate) type Anchor<'a> = (&'a [u8], i32, Option<i32>, u32, usize);

/// What a text line is.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    Event(EventLine<'a>),
    /// A lost-events marker; `count` is `None` when the tool could not say how many.
    Lost {
        cpu: u32,
        count: Option<u64>,
    },
    /// Recognised and deliberately ignored.
    Skip(SkipKind),
}

/// How the payload of an event line is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadForm {
    /// `name: payload` (every tracepoint).
    Normal,
    /// ftrace's own syscall text: `sys_mmap(addr: 0, ...)`; payload starts at `(`.
    SysEnterText,
    /// ftrace's own syscall text: `sys_mmap -> 0x7f...`; payload is the value.
    SysExitText,
}

/// One event line, borrowed from the input.
#[derive(Debug, PartialEq)]
pub struct EventLine<'a> {
    pub comm: &'a [u8],
    pub pid: i32,
    pub tgid: Option<i32>,
    pub cpu: u32,
    pub ts_ns: u64,
    /// Event name without the system (`tlb_flush`, `sys_mmap` for the text syscall forms).
    pub name: &'a [u8],
    pub payload: &'a [u8],
    pub form: PayloadForm,
}

/// Lines that are recognised and skipped, counted by kind (never as unparsed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipKind {
    Blank,
    /// `#` comment/header lines.
    Header,
    /// `##### CPU n buffer started ####`.
    BufferStarted,
    /// `<stack trace>`, `<user stack trace>` and ` => func` lines.
    StackTrace,
    /// `perf script` callchain frames (tab-indented).
    Callchain,
    /// `cpus=N` (trace-cmd report).
    CpusLine,
    /// `version = N` (old trace-cmd report).
    VersionLine,
    /// `CPU:n [SUBBUFFER START]` and other trace-cmd annotations.
    Annotation,
}

impl SkipKind {
    pub const ALL: [SkipKind; 8] = [
        SkipKind::Blank,
        SkipKind::Header,
        SkipKind::BufferStarted,
        SkipKind::StackTrace,
        SkipKind::Callchain,
        SkipKind::CpusLine,
        SkipKind::VersionLine,
        SkipKind::Annotation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SkipKind::Blank => "blank",
            SkipKind::Header => "header",
            SkipKind::BufferStarted => "buffer_started",
            SkipKind::StackTrace => "stack_trace",
            SkipKind::Callchain => "callchain",
            SkipKind::CpusLine => "cpus_line",
            SkipKind::VersionLine => "version_line",
            SkipKind::Annotation => "annotation",
        }
    }
}

/// Why a line could not be tokenised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineError {
    /// Stable short kind, used as the key in `unparsed_by_kind`.
    pub kind: &'static str,
    pub expected: &'static str,
}

impl LineError {
    pub const fn new(kind: &'static str, expected: &'static str) -> Self {
        LineError { kind, expected }
    }
}

/// Common: `CPU:n [LOST k EVENTS]`, `CPU:n [k EVENTS DROPPED]`, `CPU:n [EVENTS DROPPED]`,
/// `CPU:n [SUBBUFFER START]`. `line` starts with `CPU:`.
pub(crate) fn cpu_marker(line: &[u8]) -> Result<Line<'_>, LineError> {
    const E: LineError = LineError::new(
        "bad_cpu_marker",
        "`CPU:n [LOST k EVENTS]` or `CPU:n [k EVENTS DROPPED]`",
    );
    let rest = line.get(4..).ok_or(E)?;
    let sp = memchr::memchr(b' ', rest).ok_or(E)?;
    let cpu = crate::num::dec_u32(rest.get(..sp).ok_or(E)?).ok_or(E)?;
    let body = crate::num::trim(rest.get(sp..).ok_or(E)?);
    let inner = body
        .strip_prefix(b"[")
        .and_then(|b| b.strip_suffix(b"]"))
        .ok_or(E)?;
    if let Some(n) = inner
        .strip_prefix(b"LOST ")
        .and_then(|x| x.strip_suffix(b" EVENTS"))
    {
        return Ok(Line::Lost {
            cpu,
            count: Some(crate::num::dec_u64(n).ok_or(E)?),
        });
    }
    if inner == b"EVENTS DROPPED" {
        return Ok(Line::Lost { cpu, count: None });
    }
    if let Some(n) = inner.strip_suffix(b" EVENTS DROPPED") {
        return Ok(Line::Lost {
            cpu,
            count: Some(crate::num::dec_u64(n).ok_or(E)?),
        });
    }
    if inner == b"SUBBUFFER START" {
        return Ok(Line::Skip(SkipKind::Annotation));
    }
    Err(E)
}
