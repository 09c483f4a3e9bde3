//! `mmreplay record`, library part: tracefs control for making a capture.
//!
//! What it owns: the MM event set, parsing `--events` lists, resolving them against the running
//! kernel's `events/` directory (and substitutes for what it lacks), reading and writing
//! tracefs files, reading per-CPU overrun counters and counting lost events in the text it
//! saves. The tracefs root is a parameter so tests can point it at a fake directory. Changing
//! tracefs state is [`crate::instance`]'s: every setting lives in the recorder's own instance.
//!
//! What it must never do: parse event payloads (that is `mmreplay-parsers`) or print anything
//! (the CLI reports).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::io::Read as _;
use std::path::{Path, PathBuf};

pub use mmreplay_parsers::kernels::{KPROBE_GROUP, PROBE_SETS, SUBSTITUTES};
use mmreplay_parsers::text::header;

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

/// Errors of tracefs control. Every variant that concerns a file names it first
/// (`FILE: what`), its cause in `source()` (`mmreplay::errors::chain` adds `, because: cause`).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("bad event spec {spec:?}: expected `system:event` or `system:*`")]
    BadEventSpec { spec: String },
    #[error("empty event list")]
    EmptyEventList,
    #[error("{}: tracefs not found there and it could not be mounted", root.display())]
    NotMounted {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot write {value:?}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: unexpected content {content:?}, expected {expected}", path.display())]
    Unexpected {
        path: PathBuf,
        content: String,
        expected: &'static str,
    },
    #[error("none of the requested events exist in this kernel")]
    NoEvents,
    #[error(
        "{}: does not exist: --probe needs kprobe events (CONFIG_KPROBE_EVENTS), and this \
         kernel has none",
        path.display()
    )]
    NoKprobes { path: PathBuf },
    #[error("bad probe {spec:?}: expected a kernel function name or a set ({sets})")]
    BadProbe { spec: String, sets: String },
    #[error(
        "{}: cannot add a kprobe on {symbol} (not a traceable kernel function here?)",
        path.display()
    )]
    Kprobe {
        symbol: String,
        path: PathBuf,
        #[source]
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
    /// Accounts one line of trace text (with or without its newline). The marker and header
    /// lines are parsed by the parsers' `text::header`, as `stats` and `replay` read them.
    pub fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if let Some((_, n)) = header::lost_marker(line) {
            self.lost_markers += 1;
            self.lost_events += n.unwrap_or(0);
        } else if let Some(h) = header::entries_header(line) {
            self.entries_in_buffer = Some(h.in_buffer);
            self.entries_written = Some(h.written);
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
