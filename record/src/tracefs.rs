//! `mmreplay record`, library part: tracefs control for making a capture.
//!
//! What it owns: the MM event set, parsing `--events` lists, resolving them against the running
//! kernel's `events/` directory, saving every tracefs setting it changes and restoring it
//! (explicitly and in [`Session`]'s `Drop`), reading per-CPU overrun counters and counting lost
//! events in the text it saves. The tracefs root is a parameter so tests can point it at a fake
//! directory.
//!
//! What it must never do: parse event payloads (that is `mmreplay-parsers`), print anything
//! (the CLI reports), or leave tracefs changed after a [`Session`] is dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::io::Read as _;
use std::path::{Path, PathBuf};

pub use mmreplay_parsers::kernels::{KPROBE_GROUP, PROBE_SETS, SUBSTITUTES};

/// The tracefs file kprobe events are defined in.
pub const KPROBE_EVENTS: &str = "kprobe_events";

/// Expands `--probe` items (kernel function names, or the names of [`PROBE_SETS`]) into
/// function names, in order, without duplicates.
pub fn expand_probes(items: &[String]) -> Result<Vec<String>, RecordError> {
    let mut out: Vec<String> = Vec::new();
    for item in items.iter().flat_map(|i| i.split(',')).map(str::trim) {
        let syms: Vec<&str> = match PROBE_SETS.iter().find(|(n, _)| *n == item) {
            Some((_, set)) => set.to_vec(),
            None if !item.is_empty()
                && !item.starts_with(|c: char| c.is_ascii_digit())
                && item.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                vec![item]
            }
            None => {
                return Err(RecordError::BadProbe {
                    spec: item.to_string(),
                    sets: PROBE_SETS
                        .iter()
                        .map(|(n, s)| format!("{n} = {}", s.join(" ")))
                        .collect::<Vec<_>>()
                        .join("; "),
                })
            }
        };
        for s in syms {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
    }
    Ok(out)
}

/// The `system:event` name of the kprobe event on `symbol`.
pub fn probe_event(symbol: &str) -> String {
    format!("{KPROBE_GROUP}:{symbol}")
}

/// Where tracefs lives on current kernels.
pub const DEFAULT_ROOT: &str = "/sys/kernel/tracing";

/// The default MM event set (ARCHITECTURE.md, code map: `parsers/`, mm-semantics.md §E.5). Events the running
/// kernel lacks are skipped with a warning by [`Tracefs::resolve`].
pub const DEFAULT_EVENTS: &[&str] = &[
    "exceptions:page_fault_user",
    "tlb:tlb_flush",
    "ipi:*",
    // Names the function of a cross-CPU call (`ipi_send_cpu` names only the generic handler)
    // and shows calls whose IPI was elided because the target idled polling.
    "csd:csd_queue_cpu",
    "sched:sched_wake_idle_without_ipi",
    "migrate:*",
    "pagemap:*",
    "vmscan:*",
    "compaction:mm_compaction_begin",
    "compaction:mm_compaction_end",
    "compaction:mm_compaction_migratepages",
    "syscalls:sys_enter_mmap",
    "syscalls:sys_exit_mmap",
    "syscalls:sys_enter_munmap",
    "syscalls:sys_exit_munmap",
    "syscalls:sys_enter_mprotect",
    "syscalls:sys_exit_mprotect",
    "syscalls:sys_enter_madvise",
    "syscalls:sys_exit_madvise",
    "syscalls:sys_enter_mremap",
    "syscalls:sys_exit_mremap",
    "syscalls:sys_enter_brk",
    "syscalls:sys_exit_brk",
    "syscalls:sys_enter_execve",
    "syscalls:sys_exit_execve",
    // MFD_HUGETLB: a hugetlbfs file on kernels without hugetlbfs events (6.1).
    "syscalls:sys_enter_memfd_create",
    "sched:sched_process_fork",
    "sched:sched_process_exec",
    "sched:sched_process_exit",
    "sched:sched_switch",
    "sched:sched_migrate_task",
    "task:task_newtask",
    "mmap:exit_mmap",
    "huge_memory:*",
    "hugetlbfs:*",
    "filemap:mm_filemap_add_to_page_cache",
    "filemap:mm_filemap_delete_from_page_cache",
    "kmem:rss_stat",
    "oom:mark_victim",
];

/// Errors of tracefs control. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("bad event spec {spec:?}: expected `system:event` or `system:*`")]
    BadEventSpec { spec: String },
    #[error("empty event list")]
    EmptyEventList,
    #[error("tracefs not found at {root} and it could not be mounted: {source}")]
    NotMounted { root: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("unexpected content in {path}: {content:?} ({expected})")]
    Unexpected {
        path: PathBuf,
        content: String,
        expected: &'static str,
    },
    #[error("none of the requested events exist in this kernel")]
    NoEvents,
    #[error("another `mmreplay record` (pid {pid}) is using tracefs (journal {journal})")]
    Busy { pid: u32, journal: PathBuf },
    #[error("bad journal {path}: {reason}")]
    BadJournal { path: PathBuf, reason: String },
    #[error(
        "--probe needs kprobe events (CONFIG_KPROBE_EVENTS), and this kernel has none: \
         {path} does not exist"
    )]
    NoKprobes { path: PathBuf },
    #[error("bad probe {spec:?}: expected a kernel function name or a set ({sets})")]
    BadProbe { spec: String, sets: String },
    #[error(
        "cannot add kprobe on {symbol} ({path}): {source} (not a traceable kernel function here?)"
    )]
    Kprobe {
        symbol: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// One `--events` item: `system:event`, or `system:*` (`event == None`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventSpec {
    pub system: String,
    pub event: Option<String>,
}

impl fmt::Display for EventSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.event {
            Some(e) => write!(f, "{}:{}", self.system, e),
            None => write!(f, "{}:*", self.system),
        }
    }
}

/// A tracefs name component: no path separators, no `.`/`..`, nothing empty.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl EventSpec {
    pub fn parse(spec: &str) -> Result<Self, RecordError> {
        let bad = || RecordError::BadEventSpec {
            spec: spec.to_string(),
        };
        let (system, event) = spec.trim().split_once(':').ok_or_else(bad)?;
        if !valid_name(system) {
            return Err(bad());
        }
        let event = match event {
            "*" => None,
            e if valid_name(e) => Some(e.to_string()),
            _ => return Err(bad()),
        };
        Ok(EventSpec {
            system: system.to_string(),
            event,
        })
    }
}

/// Parses `default`, or a comma-separated list of [`EventSpec`]s. `default` may also appear as
/// an item, meaning "the default set plus these".
pub fn parse_event_list(list: &str) -> Result<Vec<EventSpec>, RecordError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "default" {
            out.extend(default_events());
        } else {
            out.push(EventSpec::parse(item)?);
        }
    }
    if out.is_empty() {
        return Err(RecordError::EmptyEventList);
    }
    Ok(out)
}

/// [`DEFAULT_EVENTS`] as specs.
pub fn default_events() -> Vec<EventSpec> {
    DEFAULT_EVENTS
        .iter()
        .filter_map(|s| EventSpec::parse(s).ok())
        .collect()
}

/// The chosen clock in a `trace_clock` read (`[local] global counter ...`).
pub fn parse_trace_clock(content: &str) -> Option<&str> {
    let start = content.find('[')? + 1;
    let len = content.get(start..)?.find(']')?;
    content.get(start..start + len)
}

/// The per-CPU size in a `buffer_size_kb` read: `1408`, or `7 (expanded: 1408)` before the
/// buffer was first used. In the second case the value to restore is 1408: the kernel would have
/// expanded to it on first use, and writing back 7 would leave a 7 KiB buffer. `X` (CPUs
/// differ) gives `None`.
pub fn parse_buffer_kb(content: &str) -> Option<u64> {
    if let Some(i) = content.find("expanded:") {
        let rest = content.get(i + "expanded:".len()..)?;
        return rest.trim().trim_end_matches(')').trim().parse().ok();
    }
    content.split_whitespace().next()?.parse().ok()
}

/// Per-CPU ring-buffer counters from `per_cpu/cpuN/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuStats {
    pub entries: u64,
    /// Events overwritten because the buffer was full (overwrite mode).
    pub overrun: u64,
    pub commit_overrun: u64,
    /// Events dropped (non-overwrite mode).
    pub dropped_events: u64,
    /// Events consumed by readers (`trace_pipe`, `trace_pipe_raw`): with `entries`, every
    /// event the buffer took.
    pub read_events: u64,
}

/// Parses one `per_cpu/cpuN/stats` file. Unknown lines are ignored (the set grew over time).
pub fn parse_cpu_stats(content: &str) -> CpuStats {
    let mut s = CpuStats::default();
    for line in content.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<u64>() else {
            continue;
        };
        match k.trim() {
            "entries" => s.entries = v,
            "overrun" => s.overrun = v,
            "commit overrun" => s.commit_overrun = v,
            "dropped events" => s.dropped_events = v,
            "read events" => s.read_events = v,
            _ => {}
        }
    }
    s
}

/// Lost-event evidence found in saved trace text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TextLoss {
    /// Number of lines (newline-terminated or final partial line).
    pub lines: u64,
    /// `CPU:N [LOST M EVENTS]` lines (trace_pipe) and their summed counts.
    pub lost_markers: u64,
    pub lost_events: u64,
    /// `# entries-in-buffer/entries-written: a/b` header of `trace` (`b - a` were overwritten).
    pub entries_in_buffer: Option<u64>,
    pub entries_written: Option<u64>,
}

impl TextLoss {
    /// Accounts one line of trace text (with or without its newline).
    pub fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if let Some(n) = lost_marker(line) {
            self.lost_markers += 1;
            self.lost_events += n;
        } else if line.first() == Some(&b'#') {
            if let Some((a, b)) = entries_header(line) {
                self.entries_in_buffer = Some(a);
                self.entries_written = Some(b);
            }
        }
    }

    /// Events the header says were written but are no longer in the buffer.
    pub fn header_lost(&self) -> u64 {
        match (self.entries_in_buffer, self.entries_written) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }
}

/// Feeds [`TextLoss`] from arbitrary chunks of trace text (lines may span chunks).
#[derive(Debug, Default)]
pub struct LineScanner {
    pending: Vec<u8>,
    pub loss: TextLoss,
}

impl LineScanner {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(i) = memchr_nl(chunk) {
            let (line, rest) = chunk.split_at(i);
            if self.pending.is_empty() {
                self.loss.line(line);
            } else {
                self.pending.extend_from_slice(line);
                let p = std::mem::take(&mut self.pending);
                self.loss.line(&p);
            }
            chunk = rest.get(1..).unwrap_or_default();
        }
        self.pending.extend_from_slice(chunk);
    }

    /// Accounts a final line without newline, and returns the totals.
    pub fn finish(mut self) -> TextLoss {
        if !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            self.loss.line(&p);
        }
        self.loss
    }
}

fn memchr_nl(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `[LOST 123 EVENTS]` anywhere in the line -> 123.
fn lost_marker(line: &[u8]) -> Option<u64> {
    let i = find(line, b"[LOST ")? + 6;
    let rest = line.get(i..)?;
    let end = find(rest, b" EVENTS]")?;
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}

/// `# entries-in-buffer/entries-written: 12/34   #P:2` -> (12, 34).
fn entries_header(line: &[u8]) -> Option<(u64, u64)> {
    let key = b"entries-in-buffer/entries-written:";
    let i = find(line, key)? + key.len();
    let s = std::str::from_utf8(line.get(i..)?).ok()?;
    let tok = s.split_whitespace().next()?;
    let (a, b) = tok.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A tracefs directory (real or a fake one in tests).
#[derive(Clone, Debug)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Tracefs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn read(&self, rel: &str) -> Result<String, RecordError> {
        let path = self.path(rel);
        fs::read_to_string(&path).map_err(|source| RecordError::Read { path, source })
    }

    /// Writes `value` (tracefs files take the whole value in one write). `kprobe_events` is
    /// appended to: truncating it would delete every kprobe event on the system.
    pub fn write(&self, rel: &str, value: &str) -> Result<(), RecordError> {
        let path = self.path(rel);
        let res = if rel == KPROBE_EVENTS {
            fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut f| io::Write::write_all(&mut f, value.as_bytes()))
        } else {
            fs::write(&path, value)
        };
        res.map_err(|source| RecordError::Write {
            path,
            value: value.to_string(),
            source,
        })
    }

    /// Whether this kernel offers kprobe events.
    pub fn has_kprobes(&self) -> bool {
        self.exists(KPROBE_EVENTS)
    }

    /// CPUs tracefs has buffers for (`per_cpu/cpuN`, the possible CPUs), at least 1.
    pub fn nr_cpus(&self) -> u32 {
        let n = fs::read_dir(self.path("per_cpu")).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("cpu"))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        });
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }

    /// Adds the [`SUBSTITUTES`] for wanted events this kernel lacks. `resolved` is what
    /// [`Tracefs::resolve`] found for `specs`; a substitution applies only when the user asked
    /// for one of the wanted events (or their system). Returns the added names (already in
    /// `resolved`) and one note per substitution.
    pub fn substitute(
        &self,
        specs: &[EventSpec],
        resolved: &mut Vec<String>,
    ) -> (Vec<String>, Vec<String>) {
        let mut added = Vec::new();
        let mut notes = Vec::new();
        for (wanted, subs, why) in SUBSTITUTES {
            let asked = wanted.iter().any(|w| {
                let (sys, ev) = w.split_once(':').unwrap_or((w, ""));
                specs
                    .iter()
                    .any(|s| s.system == sys && s.event.as_deref().is_none_or(|e| e == ev))
            });
            if !asked || wanted.iter().any(|w| resolved.iter().any(|r| r == w)) {
                continue;
            }
            let mut any = false;
            for sub in *subs {
                if self.exists(&format!("events/{}/enable", sub.replacen(':', "/", 1)))
                    && !resolved.iter().any(|r| r == sub)
                {
                    resolved.push(sub.to_string());
                    added.push(sub.to_string());
                    any = true;
                }
            }
            if any {
                notes.push(format!("{why}: recording {}", subs.join(", ")));
            }
        }
        resolved.sort();
        resolved.dedup();
        (added, notes)
    }

    /// Expands specs into the `system:event` names this kernel has, sorted and deduplicated,
    /// plus one warning per spec that matched nothing.
    pub fn resolve(&self, specs: &[EventSpec]) -> (Vec<String>, Vec<String>) {
        let mut found = std::collections::BTreeSet::new();
        let mut warnings = Vec::new();
        for spec in specs {
            match &spec.event {
                Some(e) => {
                    if self.exists(&format!("events/{}/{}/enable", spec.system, e)) {
                        found.insert(format!("{}:{}", spec.system, e));
                    } else {
                        warnings.push(format!("skipping {spec}: not in this kernel"));
                    }
                }
                None => {
                    let dir = self.path(&format!("events/{}", spec.system));
                    let mut n = 0;
                    if let Ok(rd) = fs::read_dir(&dir) {
                        for ent in rd.flatten() {
                            let name = ent.file_name().to_string_lossy().into_owned();
                            if ent.path().join("enable").is_file() && valid_name(&name) {
                                found.insert(format!("{}:{}", spec.system, name));
                                n += 1;
                            }
                        }
                    }
                    if n == 0 {
                        warnings.push(format!("skipping {spec}: no such event system"));
                    }
                }
            }
        }
        (found.into_iter().collect(), warnings)
    }

    /// CPU numbers that have a `per_cpu/cpuN` directory, ascending.
    pub fn cpus(&self) -> Vec<u32> {
        let mut v: Vec<u32> = fs::read_dir(self.path("per_cpu"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// `per_cpu/cpuN/stats` for every CPU.
    pub fn cpu_stats(&self) -> Result<BTreeMap<u32, CpuStats>, RecordError> {
        let mut out = BTreeMap::new();
        for cpu in self.cpus() {
            let s = self.read(&format!("per_cpu/cpu{cpu}/stats"))?;
            out.insert(cpu, parse_cpu_stats(&s));
        }
        Ok(out)
    }
}

/// Mounts tracefs at `root` unless it is already there (`tracing_on` exists).
pub fn ensure_mounted(root: &Path) -> Result<(), RecordError> {
    if root.join("tracing_on").exists() {
        return Ok(());
    }
    let err = |source| RecordError::NotMounted {
        root: root.to_path_buf(),
        source,
    };
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(root.as_os_str().as_bytes())
        .map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    if !root.join("tracing_on").exists() {
        return Err(err(io::Error::from(io::ErrorKind::NotFound)));
    }
    Ok(())
}

/// What a capture session sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `system:event` names (already resolved).
    pub events: Vec<String>,
    /// Per-CPU buffer size; `None` leaves it alone.
    pub buffer_kb: Option<u64>,
    pub clock: String,
    pub irq_info: bool,
    pub record_tgid: bool,
    /// Trace only this pid and its future children (`set_event_pid` + `options/event-fork`).
    pub follow_pid: Option<u32>,
    /// Kernel functions to trace with kprobe events (`p:mmreplay/SYMBOL SYMBOL`), created
    /// before the events are enabled and removed again on restore.
    pub probes: Vec<String>,
}

/// The tracefs state a capture changed, with the values to restore, in the order they were
/// changed. Restoring goes in reverse order so `tracing_on` (saved first) is restored last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedState {
    pub entries: Vec<(String, String)>,
}

/// A capture in progress: owns the saved state and restores it exactly once, on
/// [`Session::restore`] or on drop (error paths, panics unwinding, early returns).
#[derive(Debug)]
pub struct Session {
    fs: Tracefs,
    saved: SavedState,
    restored: bool,
    /// Where the saved state is mirrored before each change, so a recorder killed with SIGKILL
    /// (no destructor runs) can be undone by the next one ([`recover`]).
    journal: Option<PathBuf>,
}

/// The on-disk form of a [`SavedState`] (`journal`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Journal {
    pid: u32,
    tracefs: PathBuf,
    entries: Vec<(String, String)>,
}

fn write_journal(path: &Path, j: &Journal) -> Result<(), RecordError> {
    let werr = |source| RecordError::Write {
        path: path.to_path_buf(),
        value: "journal".into(),
        source,
    };
    let bytes = serde_json::to_vec(j).map_err(|e| werr(io::Error::other(e)))?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(werr)?;
    fs::rename(&tmp, path).map_err(werr)
}

/// Undoes what a recorder that died without restoring (SIGKILL, OOM kill, power loss of the
/// process) left in tracefs, using its journal. Returns how many settings were written back
/// (`None`: no journal). A journal whose recorder is still alive is an error: two recorders
/// must not share the global tracefs instance.
pub fn recover(fs: &Tracefs, journal: &Path) -> Result<Option<usize>, RecordError> {
    let text = match fs::read_to_string(journal) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RecordError::Read {
                path: journal.to_path_buf(),
                source,
            })
        }
    };
    let j: Journal = serde_json::from_str(&text).map_err(|e| RecordError::BadJournal {
        path: journal.to_path_buf(),
        reason: e.to_string(),
    })?;
    if Path::new(&format!("/proc/{}", j.pid)).exists() {
        return Err(RecordError::Busy {
            pid: j.pid,
            journal: journal.to_path_buf(),
        });
    }
    let mut sess = Session {
        fs: fs.clone(),
        saved: SavedState { entries: j.entries },
        restored: false,
        journal: Some(journal.to_path_buf()),
    };
    let n = sess.saved.entries.len();
    sess.restore()?;
    Ok(Some(n))
}

impl Session {
    /// Saves, then applies, every setting. Tracing is left off and the buffer cleared. If a
    /// step fails, what was already changed is restored (by drop) before the error returns.
    pub fn start(fs: Tracefs, s: &Settings) -> Result<Session, RecordError> {
        Self::start_journaled(fs, s, None)
    }

    /// [`Session::start`], mirroring the saved state to `journal` before every change (and
    /// removing it once restored). Call [`recover`] first.
    pub fn start_journaled(
        fs: Tracefs,
        s: &Settings,
        journal: Option<PathBuf>,
    ) -> Result<Session, RecordError> {
        let mut sess = Session {
            fs,
            saved: SavedState::default(),
            restored: false,
            journal,
        };
        sess.change("tracing_on", "0", |c| Some(c.trim().to_string()))?;
        let cur = sess.fs.read("current_tracer")?;
        if cur.trim() != "nop" {
            // A function tracer would flood the buffer; switching resets the buffer anyway.
            sess.change("current_tracer", "nop", |c| Some(c.trim().to_string()))?;
        }
        if let Some(kb) = s.buffer_kb {
            sess.change_buffer_kb(kb)?;
        }
        sess.change("trace_clock", &s.clock, |c| {
            parse_trace_clock(c).map(str::to_string)
        })?;
        let onoff = |b: bool| if b { "1" } else { "0" };
        sess.change("options/irq-info", onoff(s.irq_info), |c| {
            Some(c.trim().to_string())
        })?;
        sess.change("options/record-tgid", onoff(s.record_tgid), |c| {
            Some(c.trim().to_string())
        })?;
        if let Some(pid) = s.follow_pid {
            sess.change("options/event-fork", "1", |c| Some(c.trim().to_string()))?;
            // The file lists one pid per line; writing a space-separated list restores it.
            sess.change("set_event_pid", &pid.to_string(), |c| {
                Some(c.split_whitespace().collect::<Vec<_>>().join(" "))
            })?;
        }
        if !s.probes.is_empty() && !sess.fs.has_kprobes() {
            return Err(RecordError::NoKprobes {
                path: sess.fs.path(KPROBE_EVENTS),
            });
        }
        for sym in &s.probes {
            sess.add_kprobe(sym)?;
        }
        let probe_events = s.probes.iter().map(|p| probe_event(p));
        for ev in s.events.iter().cloned().chain(probe_events) {
            let rel = format!("events/{}/enable", ev.replacen(':', "/", 1));
            // A probe event named in both lists is enabled once.
            if sess.saved.entries.iter().any(|(r, _)| *r == rel) {
                continue;
            }
            sess.change(&rel, "1", |c| Some(c.trim().to_string()))?;
        }
        sess.clear()?;
        Ok(sess)
    }

    /// Saves `rel`'s current value (via `restore_value`), then writes `value`.
    fn change(
        &mut self,
        rel: &str,
        value: &str,
        restore_value: impl Fn(&str) -> Option<String>,
    ) -> Result<(), RecordError> {
        let cur = self.fs.read(rel)?;
        let old = restore_value(&cur).ok_or_else(|| RecordError::Unexpected {
            path: self.fs.path(rel),
            content: cur.clone(),
            expected: "a value this tool knows how to restore",
        })?;
        if old != value {
            self.saved.entries.push((rel.to_string(), old));
            self.sync_journal()?;
            self.fs.write(rel, value)?;
        }
        Ok(())
    }

    /// Defines the kprobe event `mmreplay/SYMBOL`; its removal (`-:mmreplay/SYMBOL`, appended)
    /// is saved first, so restore (in reverse order, after the event is disabled) deletes it.
    fn add_kprobe(&mut self, sym: &str) -> Result<(), RecordError> {
        self.saved
            .entries
            .push((KPROBE_EVENTS.to_string(), format!("-:{KPROBE_GROUP}/{sym}")));
        self.sync_journal()?;
        let def = mmreplay_parsers::kernels::kprobe_definition(sym);
        if let Err(e) = self.fs.write(KPROBE_EVENTS, &def) {
            // Not created: nothing to remove.
            self.saved.entries.pop();
            self.sync_journal()?;
            return Err(match e {
                RecordError::Write { path, source, .. } => RecordError::Kprobe {
                    symbol: sym.to_string(),
                    path,
                    source,
                },
                e => e,
            });
        }
        // A remote-only probe (kernels::PROBE_ARGS) is filtered as it is created; the filter
        // goes with the event when restore deletes it (its removal is already saved).
        if let Some(f) = mmreplay_parsers::kernels::kprobe_filter(sym, self.fs.nr_cpus()) {
            let rel = format!("events/{KPROBE_GROUP}/{sym}/filter");
            match self.fs.write(&rel, &f) {
                Err(RecordError::Write { path, source, .. }) => {
                    return Err(RecordError::Kprobe {
                        symbol: sym.to_string(),
                        path,
                        source,
                    })
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    fn sync_journal(&self) -> Result<(), RecordError> {
        match &self.journal {
            Some(p) => write_journal(
                p,
                &Journal {
                    pid: std::process::id(),
                    tracefs: self.fs.root.clone(),
                    entries: self.saved.entries.clone(),
                },
            ),
            None => Ok(()),
        }
    }

    /// `buffer_size_kb` reads `X` when CPUs differ: then each `per_cpu/cpuN/buffer_size_kb` is
    /// saved so the exact per-CPU sizes come back.
    fn change_buffer_kb(&mut self, kb: u64) -> Result<(), RecordError> {
        let cur = self.fs.read("buffer_size_kb")?;
        let value = kb.to_string();
        if parse_buffer_kb(&cur).is_some() {
            return self.change("buffer_size_kb", &value, |c| {
                parse_buffer_kb(c).map(|n| n.to_string())
            });
        }
        for cpu in self.fs.cpus() {
            let rel = format!("per_cpu/cpu{cpu}/buffer_size_kb");
            let cur = self.fs.read(&rel)?;
            let old = parse_buffer_kb(&cur).ok_or_else(|| RecordError::Unexpected {
                path: self.fs.path(&rel),
                content: cur.clone(),
                expected: "a size in KiB",
            })?;
            self.saved.entries.push((rel, old.to_string()));
        }
        self.sync_journal()?;
        self.fs.write("buffer_size_kb", &value)
    }

    pub fn tracefs(&self) -> &Tracefs {
        &self.fs
    }

    pub fn saved(&self) -> &SavedState {
        &self.saved
    }

    /// Empties the ring buffer (writing to `trace` truncates it) and its overrun counters.
    pub fn clear(&self) -> Result<(), RecordError> {
        self.fs.write("trace", "")
    }

    pub fn set_tracing(&self, on: bool) -> Result<(), RecordError> {
        self.fs.write("tracing_on", if on { "1" } else { "0" })
    }

    /// Restores every saved value, in reverse order. Tries all of them even if one fails and
    /// returns the first failure. Idempotent: the second call does nothing.
    pub fn restore(&mut self) -> Result<(), RecordError> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        let mut first = None;
        // Stop tracing first so restoring event enables does not log into the user's buffer
        // with our settings; the saved `tracing_on` value is written back last.
        let _ = self.fs.write("tracing_on", "0");
        for (rel, old) in self.saved.entries.iter().rev() {
            if let Err(e) = self.fs.write(rel, old) {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => {
                // Kept on failure, so the next recorder retries the restore.
                if let Some(p) = &self.journal {
                    let _ = fs::remove_file(p);
                }
                Ok(())
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// Reads a tracefs file with large reads. Not `fs::read`: tracefs files report size 0, so std
/// probes with a 32-byte first read, and `events/header_page` answers only the first read
/// (`kernel/trace/trace_events.c:show_header_page_file` returns 0 once `*ppos` is non-zero).
pub fn read_big(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(buf.get_mut(len..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake tracefs with the files a session touches, in the state a fresh boot has.
    fn fake() -> (tempdir::Dir, Tracefs) {
        let d = tempdir::Dir::new();
        let w = |rel: &str, v: &str| {
            let p = d.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, v).unwrap();
        };
        w("tracing_on", "1\n");
        w("current_tracer", "nop\n");
        w("buffer_size_kb", "7 (expanded: 1408)\n");
        w("trace_clock", "[local] global counter uptime perf mono\n");
        w("options/irq-info", "1\n");
        w("options/record-tgid", "0\n");
        w("options/event-fork", "0\n");
        w("set_event_pid", "");
        w("trace", "# tracer: nop\n");
        for ev in [
            "exceptions/page_fault_user",
            "ipi/ipi_send_cpu",
            "ipi/ipi_send_cpumask",
        ] {
            w(&format!("events/{ev}/enable"), "0\n");
        }
        w("events/tlb/tlb_flush/enable", "1\n");
        w("events/ipi/enable", "0\n");
        w("per_cpu/cpu0/stats", "entries: 5\noverrun: 3\ncommit overrun: 0\nbytes: 100\noldest event ts:  1.0\nnow ts:  2.0\ndropped events: 2\nread events: 0\n");
        w("per_cpu/cpu1/stats", "entries: 1\noverrun: 4\n");
        w("per_cpu/cpu0/buffer_size_kb", "1408\n");
        w("per_cpu/cpu1/buffer_size_kb", "2816\n");
        let fs = Tracefs::new(&d.0);
        (d, fs)
    }

    /// Minimal self-cleaning temp dir (no extra dev-dependency).
    mod tempdir {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};
        pub struct Dir(pub PathBuf);
        static N: AtomicU32 = AtomicU32::new(0);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "mmreplay-record-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn settings(events: Vec<String>) -> Settings {
        Settings {
            events,
            buffer_kb: Some(65536),
            clock: "mono".into(),
            irq_info: false,
            record_tgid: true,
            follow_pid: None,
            probes: Vec::new(),
        }
    }

    fn get(fs: &Tracefs, rel: &str) -> String {
        fs.read(rel).unwrap().trim().to_string()
    }

    #[test]
    fn event_specs_parse_and_reject() {
        let v = parse_event_list("tlb:tlb_flush, ipi:*").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].to_string(), "tlb:tlb_flush");
        assert_eq!(v[1].event, None);
        for bad in [
            "tlb",
            "tlb:",
            ":x",
            "a/b:c",
            "tlb:../x",
            "..:x",
            "tlb:tlb flush",
        ] {
            assert!(
                matches!(EventSpec::parse(bad), Err(RecordError::BadEventSpec { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            parse_event_list(" , "),
            Err(RecordError::EmptyEventList)
        ));
        let d = parse_event_list("default,kmem:mm_page_alloc").unwrap();
        assert_eq!(d.len(), DEFAULT_EVENTS.len() + 1);
        assert_eq!(default_events().len(), DEFAULT_EVENTS.len());
    }

    #[test]
    fn resolve_expands_wildcards_and_warns_on_missing() {
        let (_d, fs) = fake();
        let specs = parse_event_list("ipi:*,tlb:tlb_flush,nosuch:*,exceptions:nope").unwrap();
        let (found, warn) = fs.resolve(&specs);
        assert_eq!(
            found,
            vec!["ipi:ipi_send_cpu", "ipi:ipi_send_cpumask", "tlb:tlb_flush"]
        );
        assert_eq!(warn.len(), 2, "{warn:?}");
        assert!(warn[0].contains("nosuch:*"));
        assert!(warn[1].contains("exceptions:nope"));
    }

    #[test]
    fn session_applies_then_restores_on_drop() {
        let (_d, fs) = fake();
        let events = vec!["exceptions:page_fault_user".into(), "tlb:tlb_flush".into()];
        {
            let s = Session::start(fs.clone(), &settings(events)).unwrap();
            assert_eq!(get(&fs, "tracing_on"), "0");
            assert_eq!(get(&fs, "buffer_size_kb"), "65536");
            assert_eq!(get(&fs, "trace_clock"), "mono");
            assert_eq!(get(&fs, "options/irq-info"), "0");
            assert_eq!(get(&fs, "options/record-tgid"), "1");
            assert_eq!(get(&fs, "events/exceptions/page_fault_user/enable"), "1");
            assert_eq!(get(&fs, "trace"), "", "buffer not cleared");
            // tlb_flush was already on: nothing to save for it.
            let saved: Vec<&str> = s.saved().entries.iter().map(|(r, _)| r.as_str()).collect();
            assert_eq!(
                saved,
                vec![
                    "tracing_on",
                    "buffer_size_kb",
                    "trace_clock",
                    "options/irq-info",
                    "options/record-tgid",
                    "events/exceptions/page_fault_user/enable"
                ]
            );
            s.set_tracing(true).unwrap();
            assert_eq!(get(&fs, "tracing_on"), "1");
        }
        assert_eq!(get(&fs, "tracing_on"), "1");
        // The expanded size is what comes back (writing 7 would leave a 7 KiB buffer).
        assert_eq!(get(&fs, "buffer_size_kb"), "1408");
        assert_eq!(get(&fs, "trace_clock"), "local");
        assert_eq!(get(&fs, "options/irq-info"), "1");
        assert_eq!(get(&fs, "options/record-tgid"), "0");
        assert_eq!(get(&fs, "events/exceptions/page_fault_user/enable"), "0");
        assert_eq!(get(&fs, "events/tlb/tlb_flush/enable"), "1");
    }

    #[test]
    fn explicit_restore_is_idempotent() {
        let (_d, fs) = fake();
        let mut s = Session::start(fs.clone(), &settings(vec!["ipi:ipi_send_cpu".into()])).unwrap();
        s.restore().unwrap();
        assert_eq!(get(&fs, "events/ipi/ipi_send_cpu/enable"), "0");
        // Someone changes it afterwards: a second restore (or the drop) must not undo that.
        fs.write("events/ipi/ipi_send_cpu/enable", "1").unwrap();
        s.restore().unwrap();
        drop(s);
        assert_eq!(get(&fs, "events/ipi/ipi_send_cpu/enable"), "1");
    }

    #[test]
    fn failed_start_restores_what_it_changed() {
        let (_d, fs) = fake();
        // An event whose enable file is missing: start fails after changing the options.
        let r = Session::start(fs.clone(), &settings(vec!["nosuch:ev".into()]));
        assert!(matches!(r, Err(RecordError::Read { .. })), "{r:?}");
        assert_eq!(get(&fs, "tracing_on"), "1");
        assert_eq!(get(&fs, "trace_clock"), "local");
        assert_eq!(get(&fs, "options/irq-info"), "1");
        assert_eq!(get(&fs, "buffer_size_kb"), "1408");
    }

    #[test]
    fn mixed_per_cpu_buffer_sizes_are_restored_per_cpu() {
        let (_d, fs) = fake();
        fs.write("buffer_size_kb", "X\n").unwrap();
        {
            let _s = Session::start(fs.clone(), &settings(vec![])).unwrap();
            assert_eq!(get(&fs, "buffer_size_kb"), "65536");
        }
        assert_eq!(get(&fs, "per_cpu/cpu0/buffer_size_kb"), "1408");
        assert_eq!(get(&fs, "per_cpu/cpu1/buffer_size_kb"), "2816");
    }

    #[test]
    fn follow_pid_sets_and_restores_pid_filter() {
        let (_d, fs) = fake();
        fs.write("set_event_pid", "12\n34\n").unwrap();
        let mut st = settings(vec![]);
        st.follow_pid = Some(777);
        {
            let _s = Session::start(fs.clone(), &st).unwrap();
            assert_eq!(get(&fs, "set_event_pid"), "777");
            assert_eq!(get(&fs, "options/event-fork"), "1");
        }
        assert_eq!(get(&fs, "set_event_pid"), "12 34");
        assert_eq!(get(&fs, "options/event-fork"), "0");
        // An empty filter comes back empty (an O_TRUNC open clears the kernel's list).
        fs.write("set_event_pid", "").unwrap();
        // The fake keeps what was written; the kernel would show the bracketed list again.
        fs.write("trace_clock", "[local] global\n").unwrap();
        {
            let _s = Session::start(fs.clone(), &st).unwrap();
        }
        assert_eq!(get(&fs, "set_event_pid"), "");
    }

    #[test]
    fn journal_lets_a_later_run_undo_a_killed_one() {
        let (d, fs) = fake();
        let journal = d.0.join("journal.json");
        let st = settings(vec!["ipi:ipi_send_cpu".into()]);
        let s = Session::start_journaled(fs.clone(), &st, Some(journal.clone())).unwrap();
        assert!(journal.is_file());
        // What SIGKILL does: no destructor runs.
        std::mem::forget(s);
        assert_eq!(get(&fs, "events/ipi/ipi_send_cpu/enable"), "1");
        // The journal names this (live) process: another recorder must refuse to start.
        assert!(matches!(
            recover(&fs, &journal),
            Err(RecordError::Busy { .. })
        ));
        assert_eq!(get(&fs, "events/ipi/ipi_send_cpu/enable"), "1");
        assert!(matches!(recover(&fs, &d.0.join("none.json")), Ok(None)));
        // Pretend the writer is dead: pid of a process that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let text = fs::read_to_string(&journal).unwrap();
        let me = format!("\"pid\":{}", std::process::id());
        assert!(text.contains(&me), "{text}");
        fs::write(&journal, text.replace(&me, &format!("\"pid\":{dead}"))).unwrap();
        let n = recover(&fs, &journal).unwrap();
        assert_eq!(n, Some(6));
        assert!(!journal.exists());
        assert_eq!(get(&fs, "events/ipi/ipi_send_cpu/enable"), "0");
        assert_eq!(get(&fs, "trace_clock"), "local");
        assert_eq!(get(&fs, "tracing_on"), "1");
        assert_eq!(get(&fs, "buffer_size_kb"), "1408");
    }

    #[test]
    fn journal_of_a_live_recorder_is_busy_and_garbage_is_an_error() {
        let (d, fs) = fake();
        let journal = d.0.join("journal.json");
        // pid 1 is always alive.
        fs::write(
            &journal,
            r#"{"pid":1,"tracefs":"/x","entries":[["tracing_on","1"]]}"#,
        )
        .unwrap();
        assert!(matches!(
            recover(&fs, &journal),
            Err(RecordError::Busy { pid: 1, .. })
        ));
        fs::write(&journal, "not json").unwrap();
        let e = recover(&fs, &journal).unwrap_err();
        assert!(matches!(e, RecordError::BadJournal { .. }));
        assert!(e.to_string().contains("journal.json"), "{e}");
    }

    #[test]
    fn journal_removed_after_normal_restore() {
        let (d, fs) = fake();
        let journal = d.0.join("journal.json");
        let st = settings(vec!["ipi:ipi_send_cpu".into()]);
        let s = Session::start_journaled(fs.clone(), &st, Some(journal.clone())).unwrap();
        assert!(journal.is_file());
        drop(s);
        assert!(!journal.exists());
    }

    #[test]
    fn non_nop_tracer_is_switched_and_restored() {
        let (_d, fs) = fake();
        fs.write("current_tracer", "function\n").unwrap();
        {
            let _s = Session::start(fs.clone(), &settings(vec![])).unwrap();
            assert_eq!(get(&fs, "current_tracer"), "nop");
        }
        assert_eq!(get(&fs, "current_tracer"), "function");
    }

    #[test]
    fn unparseable_clock_is_an_error_naming_the_file() {
        let (_d, fs) = fake();
        fs.write("trace_clock", "local global\n").unwrap();
        let e = Session::start(fs.clone(), &settings(vec![])).unwrap_err();
        assert!(e.to_string().contains("trace_clock"), "{e}");
        assert_eq!(get(&fs, "tracing_on"), "1");
    }

    #[test]
    fn cpu_stats_and_text_loss() {
        let (_d, fs) = fake();
        let st = fs.cpu_stats().unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[&0].overrun, 3);
        assert_eq!(st[&0].dropped_events, 2);
        assert_eq!(st[&1].overrun, 4);
        let mut t = TextLoss::default();
        for l in [
            &b"# entries-in-buffer/entries-written: 10/25   #P:2"[..],
            b"CPU:1 [LOST 17 EVENTS]",
            b"  bash-1 [000] d..1. 1.000: tlb_flush: pages:1 reason:x (2)",
            b"CPU:0 [LOST 3 EVENTS]\n",
            b"[LOST x EVENTS]",
        ] {
            t.line(l);
        }
        assert_eq!(t.lines, 5);
        assert_eq!(t.lost_markers, 2);
        assert_eq!(t.lost_events, 20);
        assert_eq!(t.header_lost(), 15);
    }

    #[test]
    fn line_scanner_joins_lines_across_chunks() {
        let text = b"# entries-in-buffer/entries-written: 1/9   #P:2\nCPU:0 [LOST 42 EVENTS]\nlast";
        for split in 0..text.len() {
            let mut sc = LineScanner::default();
            let (a, b) = text.split_at(split);
            sc.feed(a);
            sc.feed(b);
            let t = sc.finish();
            assert_eq!(t.lines, 3, "split at {split}");
            assert_eq!(t.lost_events, 42, "split at {split}");
            assert_eq!(t.header_lost(), 8, "split at {split}");
        }
    }

    #[test]
    fn clock_and_buffer_parsing() {
        assert_eq!(parse_trace_clock("[local] global"), Some("local"));
        assert_eq!(parse_trace_clock("local [global] x"), Some("global"));
        assert_eq!(parse_trace_clock("local global"), None);
        assert_eq!(parse_buffer_kb("7 (expanded: 1408)\n"), Some(1408));
        assert_eq!(parse_buffer_kb("1408\n"), Some(1408));
        assert_eq!(parse_buffer_kb("X\n"), None);
    }

    #[test]
    fn mount_check_accepts_mounted_and_names_missing_root() {
        let (d, _fs) = fake();
        assert!(ensure_mounted(&d.0).is_ok());
        // A path that does not exist cannot be mounted on, root or not.
        let missing = d.0.join("no/such/dir");
        let e = ensure_mounted(&missing).unwrap_err();
        assert!(matches!(e, RecordError::NotMounted { .. }));
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }

    #[test]
    fn probes_expand_sets_and_reject_bad_names() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            expand_probes(&v(&["rmap"])).unwrap(),
            v(&[
                "folio_referenced_one",
                "lru_gen_look_around",
                "try_to_unmap_one"
            ])
        );
        assert_eq!(
            expand_probes(&v(&["try_to_unmap_one", "rmap,shrink_folio_list"])).unwrap(),
            v(&[
                "try_to_unmap_one",
                "folio_referenced_one",
                "lru_gen_look_around",
                "shrink_folio_list"
            ])
        );
        for bad in ["a/b", "1abc", "p:x y", "", "../x"] {
            let e = expand_probes(&v(&[bad])).unwrap_err();
            assert!(e.to_string().contains("rmap = folio_referenced_one"), "{e}");
        }
    }

    #[test]
    fn kprobes_are_added_then_removed_after_their_events_are_disabled() {
        let (_d, fs) = fake();
        fs::write(fs.path(KPROBE_EVENTS), "p:other/keep keep\n").unwrap();
        // The kernel creates the event directory when the probe is defined; the fake has it.
        fs::create_dir_all(fs.path("events/mmreplay/try_to_unmap_one")).unwrap();
        fs::write(fs.path("events/mmreplay/try_to_unmap_one/enable"), "0\n").unwrap();
        let mut s = settings(vec!["tlb:tlb_flush".into()]);
        s.probes = vec!["try_to_unmap_one".into()];
        let sess = Session::start(fs.clone(), &s).unwrap();
        assert_eq!(get(&fs, "events/mmreplay/try_to_unmap_one/enable"), "1");
        // Appended, never truncated: the other probe stays.
        assert_eq!(
            fs.read(KPROBE_EVENTS).unwrap(),
            "p:other/keep keep\np:mmreplay/try_to_unmap_one try_to_unmap_one"
        );
        let saved: Vec<_> = sess
            .saved()
            .entries
            .iter()
            .map(|(r, _)| r.as_str())
            .collect();
        let k = saved.iter().position(|r| *r == KPROBE_EVENTS).unwrap();
        let e = saved
            .iter()
            .position(|r| *r == "events/mmreplay/try_to_unmap_one/enable")
            .unwrap();
        assert!(
            k < e,
            "the probe must be defined before (and removed after) its event"
        );
        drop(sess);
        assert_eq!(get(&fs, "events/mmreplay/try_to_unmap_one/enable"), "0");
        assert!(fs
            .read(KPROBE_EVENTS)
            .unwrap()
            .ends_with("try_to_unmap_one-:mmreplay/try_to_unmap_one"));
    }

    #[test]
    fn remote_only_probes_get_their_fetch_arg_and_filter() {
        let (_d, fs) = fake();
        fs::write(fs.path(KPROBE_EVENTS), "").unwrap();
        for sym in ["flush_tlb_func", "tlb_remove_table_smp_sync"] {
            fs::create_dir_all(fs.path(&format!("events/mmreplay/{sym}"))).unwrap();
            fs::write(fs.path(&format!("events/mmreplay/{sym}/enable")), "0\n").unwrap();
        }
        fs::write(fs.path("events/mmreplay/flush_tlb_func/filter"), "none\n").unwrap();
        let mut s = settings(vec!["tlb:tlb_flush".into()]);
        s.probes = expand_probes(&["ipi".to_string()]).unwrap();
        let sess = Session::start(fs.clone(), &s).unwrap();
        assert_eq!(
            fs.read(KPROBE_EVENTS).unwrap(),
            "p:mmreplay/flush_tlb_func flush_tlb_func ini=+32(%di):u32\
             p:mmreplay/tlb_remove_table_smp_sync tlb_remove_table_smp_sync"
        );
        // Two CPUs in the fake's per_cpu: the filter names both.
        assert_eq!(
            get(&fs, "events/mmreplay/flush_tlb_func/filter"),
            "(ini==0&&CPU!=0)||(ini==1&&CPU!=1)"
        );
        assert!(!fs.exists("events/mmreplay/tlb_remove_table_smp_sync/filter"));
        drop(sess);
        assert!(fs
            .read(KPROBE_EVENTS)
            .unwrap()
            .ends_with("-:mmreplay/flush_tlb_func"));
    }

    #[test]
    fn probes_on_a_kernel_without_kprobes_are_a_clear_error() {
        let (_d, fs) = fake();
        let mut s = settings(vec!["tlb:tlb_flush".into()]);
        s.probes = vec!["folio_referenced_one".into()];
        let e = Session::start(fs.clone(), &s).unwrap_err();
        assert!(matches!(e, RecordError::NoKprobes { .. }), "{e}");
        assert!(
            e.to_string().contains("kprobe_events does not exist"),
            "{e}"
        );
        // Nothing left changed.
        assert_eq!(get(&fs, "tracing_on"), "1");
        assert_eq!(get(&fs, "buffer_size_kb"), "1408");
    }

    #[test]
    fn ipi_receipts_substitute_for_missing_sends() {
        let (_d, fs) = fake();
        for ev in ["call_function_entry", "call_function_single_entry"] {
            let p = fs.path(&format!("events/irq_vectors/{ev}/enable"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "0\n").unwrap();
        }
        let specs = parse_event_list("tlb:tlb_flush,ipi:*,csd:csd_queue_cpu").unwrap();
        // This fake has ipi_send_*: no substitution.
        let (mut got, _) = fs.resolve(&specs);
        let (added, notes) = fs.substitute(&specs, &mut got);
        assert!(added.is_empty() && notes.is_empty());
        // A 6.1-like kernel: no ipi or csd system.
        fs::remove_dir_all(fs.path("events/ipi")).unwrap();
        let (mut got, _) = fs.resolve(&specs);
        let (added, notes) = fs.substitute(&specs, &mut got);
        assert_eq!(
            added,
            vec![
                "irq_vectors:call_function_entry",
                "irq_vectors:call_function_single_entry"
            ]
        );
        assert_eq!(notes.len(), 1);
        assert!(got.contains(&"irq_vectors:call_function_entry".to_string()));
        // Not asked for IPIs: nothing added.
        let specs = parse_event_list("tlb:tlb_flush").unwrap();
        let (mut got, _) = fs.resolve(&specs);
        assert!(fs.substitute(&specs, &mut got).0.is_empty());
    }
}
