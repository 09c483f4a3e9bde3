//! `mmreplay record`'s capture: records a workload's MM events with ftrace into a trace.dat
//! (v7, zstd; or zstd-compressed text, or a directory of raw pages) plus a `.meta.json`
//! provenance sidecar, and returns a [`Summary`] of what it wrote.
//!
//! It records in a tracefs instance of its own ([`crate::instance`]), streaming each CPU's
//! ring-buffer pages to disk while the workload runs ([`crate::stream`]), so the buffer does not
//! overflow and the top-level tracefs state is never touched. It must never leave tracefs
//! changed: the [`Instance`] guard removes the instance on every return path, SIGINT/SIGTERM/
//! SIGHUP only set a flag ([`crate::signals`]) that the wait loop turns into "kill the child,
//! stop tracing, save, clean up", a lock keeps a second recorder out, and a journal lets the next
//! recorder clean up after one killed with SIGKILL. Output files appear whole or not at all
//! ([`mmreplay_parsers::atomic`]). It never prints: notes go to the caller's `note` function.

use crate::access::{self, AccessError};
use crate::dat::{self, DatError};
use crate::instance::{self, Instance, InstanceError, InstanceSettings};
use crate::stream::Readers;
use crate::tracefs::{
    self as record, read_big, CpuStats, LineScanner, RecordError, TextLoss, Tracefs,
};
use crate::{procsnap, signals, sysinfo, tracedat_write};
use mmreplay_parsers::atomic::{self, Pending, WriteError};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the text of a `--text` capture comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The `trace` file, read once the command has exited.
    Trace,
    /// `trace_pipe`, streamed while the command runs.
    Pipe,
}

/// The output kind `record` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Dat,
    Text(Source),
    RawDir,
}

/// What to record and how (the command line's choices, resolved by the caller).
#[derive(Clone, Debug)]
pub struct Options {
    /// Output path (default: from the command's name and the date, [`default_out`]).
    pub out: Option<PathBuf>,
    pub kind: Output,
    /// `default`, or comma-separated `system:event` / `system:*`.
    pub events: String,
    /// Per-CPU ring buffer in KiB (`None`: from the machine).
    pub buffer_kb: Option<u64>,
    pub irq_info: bool,
    pub tgid: bool,
    /// Trace only the recorder, the command and their descendants.
    pub follow: bool,
    /// `--probe` items (functions or set names).
    pub probes: Vec<String>,
    pub clock: String,
    pub zstd_level: Option<i32>,
    /// Snapshot the processes that exist at the start (`OUT.procs.zst`).
    pub procs: bool,
    pub procs_max_pages: usize,
    /// Sample the workload's writes between faults (`OUT.access.json`).
    pub access: bool,
    pub access_interval_ms: u64,
    pub tracefs: PathBuf,
    pub journal: PathBuf,
    pub lock: PathBuf,
    /// The command and its arguments.
    pub cmd: Vec<String>,
}

/// Why a capture failed. Every variant that concerns a file names it first.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{}: record needs root: it writes to tracefs", root.display())]
    NotRoot { root: PathBuf },
    #[error("{0}")]
    Usage(String),
    #[error("{}: no instances directory; record needs tracefs instances (Linux 3.10+)", root.display())]
    NoInstances { root: PathBuf },
    #[error(transparent)]
    Tracefs(#[from] RecordError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Dat(#[from] DatError),
    #[error("{}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot install the signal handlers")]
    Signals(#[source] io::Error),
    #[error("{cmd}: cannot run the command")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for the workload")]
    Wait(#[source] io::Error),
    #[error("the trace_pipe reader panicked")]
    Panicked,
    #[error("{}: cannot write the sidecar", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: capture saved, but removing the tracefs instance failed", out.display())]
    Remove {
        out: PathBuf,
        #[source]
        source: InstanceError,
    },
}

fn io_at<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> CaptureError + 'a {
    move |source| CaptureError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// How the workload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Exit status 0.
    Success,
    /// A non-zero exit or a signal of its own.
    WorkloadFailed,
    /// The recorder was asked to stop (SIGINT, SIGTERM, SIGHUP) and killed the workload.
    Interrupted,
}

/// One CPU of a capture: events the ring buffer took and events lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuSummary {
    /// Events the ring buffer held or handed to the reader (`entries` + `read events`).
    pub events: u64,
    /// Events lost: the larger of the buffer's own count and the counts stored in the pages.
    pub lost: u64,
}

/// What [`run`] wrote (`record --json`): the output and its sidecar facts. Field order is
/// fixed, so equal captures print the same keys in the same order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub output: PathBuf,
    /// `trace.dat`, `ftrace` or `raw-dir` (the names `stats` reports).
    pub format: &'static str,
    pub sidecar: PathBuf,
    /// Events the ring buffers took, summed over the CPUs (see [`CpuSummary::events`]).
    pub events: u64,
    pub lost_events: u64,
    pub per_cpu: BTreeMap<String, CpuSummary>,
    /// Lines of a text capture.
    pub lines: Option<u64>,
    pub duration_ms: u64,
    pub ending: Ending,
    pub workload_pid: u32,
    pub workload_exit: Option<i32>,
    pub workload_signal: Option<i32>,
    pub interrupted_by_signal: Option<i32>,
    pub kernel_release: String,
    pub cpus: i64,
    pub trace_clock: String,
    pub buffer_size_kb: Option<u64>,
    pub events_enabled: usize,
    pub events_substituted: Vec<String>,
    pub probes: Vec<String>,
    /// The process snapshot beside the capture (`None` with `--no-procs`).
    pub procs: Option<PathBuf>,
    /// The `--access` log beside the capture.
    pub access: Option<PathBuf>,
}

/// `<basename of cmd[0]>-<YYYYmmddTHHMMSSZ>.trace.zst`, with anything odd in the name replaced.
pub fn default_out(cmd0: &str, now: SystemTime) -> PathBuf {
    let base = Path::new(cmd0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert_str(0, "cmd");
    }
    let (y, mo, d, h, mi, s) = utc_parts(now);
    PathBuf::from(format!(
        "{name}-{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z.trace.zst"
    ))
}

/// `<basename of cmd[0]>-<YYYYmmddTHHMMSSZ>.trace.dat`: the default output.
pub fn default_dat_out(cmd0: &str, now: SystemTime) -> PathBuf {
    let text = default_out(cmd0, now).to_string_lossy().into_owned();
    let stem = text.strip_suffix(".trace.zst").unwrap_or(&text);
    PathBuf::from(format!("{stem}.trace.dat"))
}

/// `<basename of cmd[0]>-<YYYYmmddTHHMMSSZ>.raw`: the directory `--raw` writes.
pub fn default_raw_out(cmd0: &str, now: SystemTime) -> PathBuf {
    let text = default_out(cmd0, now).to_string_lossy().into_owned();
    let stem = text.strip_suffix(".trace.zst").unwrap_or(&text);
    PathBuf::from(format!("{stem}.raw"))
}

/// Keeps the text symbols (`t`/`T`/`w`/`W`) of a `/proc/kallsyms` copy: IPI callbacks are
/// functions, and the whole table is several times larger.
pub fn text_symbols(kallsyms: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in kallsyms.split_inclusive(|&c| c == b'\n') {
        let mut f = line.split(|&c| c == b' ');
        let ty = f.nth(1).unwrap_or_default();
        if matches!(ty, b"t" | b"T" | b"w" | b"W") {
            out.extend_from_slice(line);
        }
    }
    out
}

fn copy_file(from: &Path, to: &Path) -> Result<(), CaptureError> {
    if let Some(d) = to.parent() {
        fs::create_dir_all(d).map_err(io_at(d, "cannot create"))?;
    }
    let data = read_big(from).map_err(io_at(from, "cannot read"))?;
    fs::write(to, data).map_err(io_at(to, "cannot write"))
}

/// Fills the raw capture directory's metadata (layout of `mmreplay_parsers::binary::rawdir`):
/// formats from the instance `inst`, the (global) comm cache from the top level `top`.
fn save_raw_meta(
    top: &Tracefs,
    inst: &Tracefs,
    dir: &Path,
    events: &[String],
    note: &mut dyn FnMut(&str),
) -> Result<(), CaptureError> {
    for h in ["header_page", "header_event"] {
        copy_file(
            &inst.path(&format!("events/{h}")),
            &dir.join("events").join(h),
        )?;
    }
    for e in events {
        let Some((sys, ev)) = e.split_once(':') else {
            continue;
        };
        let rel = format!("events/{sys}/{ev}/format");
        copy_file(&inst.path(&rel), &dir.join(&rel))?;
    }
    copy_file(&top.path("saved_cmdlines"), &dir.join("saved_cmdlines"))?;
    match read_big(Path::new("/proc/kallsyms")) {
        Ok(k) => fs::write(dir.join("kallsyms"), text_symbols(&k))
            .map_err(io_at(&dir.join("kallsyms"), "cannot write"))?,
        Err(e) => note(&format!("warning: /proc/kallsyms not saved: {e}")),
    }
    Ok(())
}

/// Gregorian UTC date and time (Howard Hinnant's civil_from_days).
fn utc_parts(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        (sod % 3600 / 60) as u32,
        (sod % 60) as u32,
    )
}

pub fn iso8601(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

pub fn kernel_release() -> String {
    // SAFETY: uname fills a zeroed struct; `release` is NUL-terminated by the kernel.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::from("unknown");
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

pub fn online_cpus() -> i64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }
}

/// The sidecar `OUT.meta.json`. Field order is fixed (struct order), so equal inputs print the
/// same bytes.
#[derive(serde::Serialize)]
struct Meta {
    tool: &'static str,
    mmreplay_version: &'static str,
    format: &'static str,
    source: &'static str,
    command: Vec<String>,
    workload_pid: u32,
    workload_exit: Option<i32>,
    workload_signal: Option<i32>,
    interrupted_by_signal: Option<i32>,
    date_utc: String,
    duration_ms: u128,
    kernel_release: String,
    cpus: i64,
    /// MM settings of the capture kernel (`crate::sysinfo`; key names are a contract).
    kernel: sysinfo::KernelInfo,
    swap: Vec<sysinfo::SwapDev>,
    /// The limited memory cgroup the workload ran in (last seen while it ran), or null.
    memcg: Option<sysinfo::Memcg>,
    /// Events added because the kernel lacks the ones asked for (kernels::SUBSTITUTES).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events_substituted: Vec<String>,
    /// Functions traced with kprobe events (`mmreplay:<symbol>` in the trace).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    probes: Vec<String>,
    /// `--access` sampling (`OUT.access.json`), summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    access: Option<access::AccessSummary>,
    trace_clock: String,
    /// Per-CPU ring buffer in KiB, a number (`null` when CPUs differ: tracefs says `X`).
    buffer_size_kb: Option<u64>,
    /// Where the buffer size came from: `--buffer-kb`, or `auto` (from RAM and CPUs).
    buffer_size_from: &'static str,
    /// The tracefs instance the capture was made in (removed afterwards).
    instance: String,
    irq_info: bool,
    record_tgid: bool,
    follow_pid: Option<u32>,
    events_enabled: Vec<String>,
    events_skipped: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<u64>,
    /// Bytes of ring-buffer pages saved per CPU (`--raw`, trace.dat).
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_bytes: Option<BTreeMap<String, u64>>,
    /// Per CPU, what went into the trace.dat (pages, chunks, compressed bytes, pages marked
    /// "events missed before this page" and the missed events they count).
    #[serde(skip_serializing_if = "Option::is_none")]
    dat: Option<BTreeMap<String, tracedat_write::CpuWritten>>,
    lost_events: u64,
    /// Lost events per CPU: the larger of the buffer's own count (overrun + dropped) and the
    /// counts the kernel stored in the pages.
    lost_events_per_cpu: BTreeMap<String, u64>,
    lost_markers: u64,
    lost_events_in_markers: u64,
    entries_in_buffer: Option<u64>,
    entries_written: Option<u64>,
    per_cpu_stats: BTreeMap<String, CpuStats>,
    zstd_level: i32,
}

/// Copies text from `src` into a zstd encoder on `dst` while scanning it for lost-event
/// evidence. `nonblocking_until` makes it a trace_pipe reader: on `WouldBlock` it waits a little
/// unless the flag is set, in which case the buffer is drained and it stops.
fn pump(
    mut src: File,
    dst: File,
    level: i32,
    nonblocking_until: Option<&AtomicBool>,
) -> io::Result<TextLoss> {
    let mut enc = zstd::Encoder::new(io::BufWriter::new(dst), level)?;
    let mut scan = LineScanner::default();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match src.read(&mut buf) {
            Ok(0) => {
                if nonblocking_until.is_none() {
                    break;
                }
                // trace_pipe never returns 0 on an empty buffer (it says EAGAIN), but be safe.
                if nonblocking_until.is_some_and(|f| f.load(Ordering::SeqCst)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(n) => {
                let chunk = buf.get(..n).unwrap_or_default();
                scan.feed(chunk);
                enc.write_all(chunk)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match nonblocking_until {
                Some(f) if f.load(Ordering::SeqCst) => break,
                Some(_) => std::thread::sleep(Duration::from_millis(5)),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    let mut w = enc.finish()?;
    w.flush()?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(scan.finish())
}
/// Checks the options that only make sense for one output kind: nothing is silently ignored.
pub fn check_output_options(o: &Options) -> Result<(), CaptureError> {
    if o.kind == Output::Dat {
        if o.tgid {
            return Err(CaptureError::Usage(
                "--tgid adds a tgid column to the text output; it needs --text".into(),
            ));
        }
        if !o.irq_info {
            return Err(CaptureError::Usage(
                "--irq-info off changes the text output only; it needs --text".into(),
            ));
        }
    }
    Ok(())
}

/// The per-CPU buffer size: `--buffer-kb`, else from the machine's memory and CPUs.
fn buffer_kb(o: &Options) -> (u64, &'static str) {
    if let Some(kb) = o.buffer_kb {
        return (kb, "--buffer-kb");
    }
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let (total, avail) = instance::meminfo(&text);
    let total = total.unwrap_or(4 << 20);
    let kb = instance::auto_buffer_kb(total, avail.unwrap_or(total), online_cpus().max(1) as u64);
    (kb, "auto")
}

/// The sidecar's path: `OUT.meta.json`.
pub fn meta_path(out: &Path) -> PathBuf {
    let mut p = out.to_path_buf().into_os_string();
    p.push(".meta.json");
    PathBuf::from(p)
}

/// Records `o.cmd` as `o` says and writes the capture and its sidecars. `note` receives what
/// the user should see on the way (warnings, what was written), one line at a time, without
/// the `mmreplay record:` prefix.
pub fn run(o: &Options, note: &mut dyn FnMut(&str)) -> Result<Summary, CaptureError> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CaptureError::NotRoot {
            root: o.tracefs.clone(),
        });
    }
    let Some(cmd0) = o.cmd.first().cloned() else {
        return Err(CaptureError::Usage("no command given after `--`".into()));
    };
    let kind = o.kind;
    check_output_options(o)?;
    let level = o
        .zstd_level
        .unwrap_or(if kind == Output::Dat { 3 } else { 9 });
    // `--access` clear times are CLOCK_MONOTONIC, which is trace_clock `mono`.
    let clock = match (o.access, o.clock.as_str()) {
        (true, "local" | "mono") => "mono".to_string(),
        (true, c) => {
            return Err(CaptureError::Usage(format!(
                "--access needs trace_clock mono (its clear times are CLOCK_MONOTONIC), not {c}"
            )))
        }
        (false, c) => c.to_string(),
    };
    if o.access {
        access::soft_dirty_supported()?;
    }
    let specs = record::parse_event_list(&o.events)?;
    let probes = record::expand_probes(&o.probes)?;
    // Before anything is made that a signal could strand: from here on a signal only sets STOP.
    signals::install().map_err(CaptureError::Signals)?;
    record::ensure_mounted(&o.tracefs)?;
    let top = Tracefs::new(&o.tracefs);
    if !top.exists("instances") {
        return Err(CaptureError::NoInstances {
            root: o.tracefs.clone(),
        });
    }
    let _lock = instance::lock(&o.lock)?;
    let rec = instance::recover(&top, &o.journal)?;
    if !rec.is_empty() {
        note(&format!(
            "warning: a previous recorder died without cleaning up: removed \
             instances [{}], kprobes [{}], restored {} settings (journal {})",
            rec.instances_removed.join(", "),
            rec.kprobes_removed.join(", "),
            rec.settings_restored,
            o.journal.display()
        ));
        for f in &rec.failures {
            note(&format!("warning: could not undo: {f}"));
        }
    }
    if !probes.is_empty() && !top.has_kprobes() {
        return Err(RecordError::NoKprobes {
            path: top.path(record::KPROBE_EVENTS),
        }
        .into());
    }
    let (mut events, skipped) = top.resolve(&specs);
    for w in &skipped {
        note(&format!("warning: {w}"));
    }
    let (substituted, notes) = top.substitute(&specs, &mut events);
    for n in &notes {
        note(n);
    }
    if events.is_empty() && probes.is_empty() {
        return Err(RecordError::NoEvents.into());
    }
    let start_wall = SystemTime::now();
    let out = o.out.clone().unwrap_or_else(|| match kind {
        Output::RawDir => default_raw_out(&cmd0, start_wall),
        Output::Text(_) => default_out(&cmd0, start_wall),
        Output::Dat => default_dat_out(&cmd0, start_wall),
    });
    for p in atomic::sweep_stale(&out) {
        note(&format!(
            "removed {} (left by a recorder that was killed)",
            p.display()
        ));
    }
    let pending = Pending::new(&out);
    let tmp = pending.tmp().to_path_buf();
    // The page files of a trace.dat, beside the output (the same file system, never /tmp,
    // which may be RAM).
    let work = {
        let mut w = tmp.clone().into_os_string();
        w.push(".pages");
        PathBuf::from(w)
    };
    let _work_guard = RemoveOnDrop(work.clone());
    let mut tmp_for_trace = None;
    match kind {
        Output::RawDir => fs::create_dir(&tmp).map_err(io_at(&tmp, "cannot create"))?,
        Output::Dat => fs::create_dir(&work).map_err(io_at(&work, "cannot create"))?,
        Output::Text(_) => tmp_for_trace = Some(pending.create_file()?),
    }

    // Processes older than the capture, walked before tracing starts (so the walk itself is
    // not traced); written next to the trace at the end.
    let procs = o.procs.then(|| {
        procsnap::take(
            Path::new("/proc"),
            procsnap::Caps {
                pages_total: o.procs_max_pages,
                ..procsnap::Caps::default()
            },
            &[std::process::id() as i32],
        )
    });
    let (buffer_kb, buffer_size_from) = buffer_kb(o);
    // The probe events are part of the capture's event list (format files, sidecar).
    let events: Vec<String> = events
        .into_iter()
        .chain(probes.iter().map(|p| record::probe_event(p)))
        .collect();
    let settings = InstanceSettings {
        events: events.clone(),
        buffer_kb,
        clock,
        irq_info: o.irq_info,
        record_tgid: o.tgid,
        follow_pid: o.follow.then(std::process::id),
        probes: probes.clone(),
        buffer_percent: instance::BUFFER_PERCENT,
    };
    let mut inst = Instance::create(top.clone(), &settings, Some(o.journal.clone()))?;
    let ifs = inst.tracefs().clone();
    let trace_clock = ifs
        .read("trace_clock")
        .ok()
        .and_then(|c| record::parse_trace_clock(&c).map(str::to_string))
        .unwrap_or_default();
    let buffer_size_kb = ifs
        .read("buffer_size_kb")
        .ok()
        .and_then(|s| record::parse_buffer_kb(&s));
    // SAFETY: sysconf has no memory-safety preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let subbuf = dat::subbuf_size(&ifs, page_size);
    let cpus = ifs.cpus();

    // The readers start before tracing is on so nothing waits in the buffer unread. Declared
    // after `inst`: on an early return they are dropped (stopped, files closed) first.
    let mut readers = None;
    let pipe_done = Arc::new(AtomicBool::new(false));
    let mut pipe_thread = None;
    match kind {
        Output::Dat | Output::RawDir => {
            let files: Vec<(u32, PathBuf)> = cpus
                .iter()
                .map(|&c| {
                    if kind == Output::Dat {
                        (c, work.join(format!("cpu{c}.pages")))
                    } else {
                        (c, tmp.join(format!("per_cpu/cpu{c}/trace_pipe_raw")))
                    }
                })
                .collect();
            for (_, f) in &files {
                if let Some(d) = f.parent() {
                    fs::create_dir_all(d).map_err(io_at(d, "cannot create"))?;
                }
            }
            readers = Some(
                Readers::start(ifs.root(), &files, subbuf)
                    .map_err(io_at(ifs.root(), "cannot start the ring-buffer readers"))?,
            );
        }
        Output::Text(Source::Pipe) => {
            use std::os::unix::fs::OpenOptionsExt;
            let p = ifs.path("trace_pipe");
            let src = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
                .map_err(io_at(&p, "cannot open"))?;
            let Some(dst) = tmp_for_trace.take() else {
                return Err(CaptureError::Usage("output file already used".into()));
            };
            let done = Arc::clone(&pipe_done);
            pipe_thread = Some(std::thread::spawn(move || {
                pump(src, dst, level, Some(&done))
            }));
        }
        Output::Text(Source::Trace) => {}
    }
    // Stops the trace_pipe reader on an early return, before the instance goes.
    struct PipeStop(Arc<AtomicBool>);
    impl Drop for PipeStop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _pipe_stop = PipeStop(Arc::clone(&pipe_done));

    inst.set_tracing(true)?;
    let t0 = Instant::now();
    let mut command = Command::new(&cmd0);
    command.args(o.cmd.get(1..).unwrap_or_default());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            // The workload dies with the recorder (a SIGKILLed recorder leaves no orphan
            // running untraced).
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(source) => {
            let _ = inst.set_tracing(false);
            return Err(CaptureError::Spawn {
                cmd: format!("{cmd0:?}"),
                source,
            });
        }
    };
    let workload_pid = child.id();
    let sampler = o.access.then(|| {
        access::Sampler::start(
            workload_pid as i32,
            Duration::from_millis(o.access_interval_ms),
        )
    });
    let roots = sysinfo::Roots::default();
    // The workload may move itself into a cgroup after it starts (`sh -c 'echo $$ >
    // cgroup.procs && exec ...'`): sample its cgroup while it runs, keep the last seen.
    let mut cgroup_seen = None;
    let mut interrupted = None;
    let status = loop {
        if let Some(c) = roots.cgroup_of(workload_pid) {
            cgroup_seen = Some(c);
        }
        if let Some(sig) = signals::stop_requested() {
            interrupted = Some(sig);
            let _ = child.kill();
            break child.wait();
        }
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(e),
        }
    };
    let duration_ms = t0.elapsed().as_millis();
    let access = sampler.map(access::Sampler::stop);
    inst.set_tracing(false)?;
    let status = status.map_err(CaptureError::Wait)?;
    let memcg = cgroup_seen.and_then(|(p, v2)| roots.memcg_limit(&p, v2));

    // Drain: the readers empty their buffers (tracing is off) and return.
    let mut raw_bytes = None;
    let mut pages = Vec::new();
    if let Some(r) = readers.take() {
        let done = r
            .finish()
            .map_err(io_at(ifs.root(), "cannot drain the ring buffers"))?;
        raw_bytes = Some(
            done.iter()
                .map(|(c, _, st)| (format!("cpu{c}"), st.bytes))
                .collect::<BTreeMap<_, _>>(),
        );
        pages = done.into_iter().map(|(c, p, _)| (c, p)).collect();
    }
    let per_cpu = ifs.cpu_stats().unwrap_or_default();
    let loss = match kind {
        Output::Text(Source::Pipe) => {
            pipe_done.store(true, Ordering::SeqCst);
            let Some(t) = pipe_thread.take() else {
                return Err(CaptureError::Panicked);
            };
            t.join()
                .map_err(|_| CaptureError::Panicked)?
                .map_err(io_at(&ifs.path("trace_pipe"), "cannot stream"))?
        }
        Output::Text(Source::Trace) => {
            let p = ifs.path("trace");
            let src = File::open(&p).map_err(io_at(&p, "cannot open"))?;
            let Some(dst) = tmp_for_trace.take() else {
                return Err(CaptureError::Usage("output file already used".into()));
            };
            pump(src, dst, level, None).map_err(io_at(&tmp, "cannot save the trace text"))?
        }
        Output::RawDir => {
            save_raw_meta(&top, &ifs, &tmp, &events, note)?;
            TextLoss::default()
        }
        Output::Dat => TextLoss::default(),
    };
    // Everything the trace.dat needs from the instance, read before it goes.
    let dat_meta = match kind {
        Output::Dat => {
            let kallsyms = match read_big(Path::new("/proc/kallsyms")) {
                Ok(k) => text_symbols(&k),
                Err(e) => {
                    note(&format!("warning: /proc/kallsyms not saved: {e}"));
                    Vec::new()
                }
            };
            Some(dat::gather(&top, &ifs, &events, &cpus, kallsyms)?)
        }
        _ => None,
    };
    let remove_err = inst.remove().err();
    drop(inst);

    let mut dat = None;
    if let Some(m) = &dat_meta {
        let (_, written) = dat::write(&tmp, m, &pages, level)?;
        dat = Some(
            written
                .into_iter()
                .map(|(c, st)| (format!("cpu{c}"), st))
                .collect::<BTreeMap<_, _>>(),
        );
    }
    pending.commit()?;

    // Per CPU: the buffer's own count, or what the pages say, whichever is larger.
    let mut lost_per_cpu = BTreeMap::new();
    let mut summary_cpus = BTreeMap::new();
    for (c, s) in &per_cpu {
        let in_pages = dat
            .as_ref()
            .and_then(|d| d.get(&format!("cpu{c}")))
            .map_or(0, |w| w.missed_events_stored);
        let lost = (s.overrun + s.dropped_events).max(in_pages);
        lost_per_cpu.insert(format!("cpu{c}"), lost);
        summary_cpus.insert(
            format!("cpu{c}"),
            CpuSummary {
                events: s.entries + s.read_events,
                lost,
            },
        );
    }
    let overrun: u64 = lost_per_cpu.values().sum();
    let lost = overrun.max(loss.lost_events).max(loss.header_lost());
    use std::os::unix::process::ExitStatusExt;
    let meta = Meta {
        tool: "mmreplay record",
        mmreplay_version: env!("CARGO_PKG_VERSION"),
        // The names `stats` and `replay` report for these inputs (`Format::name`).
        format: format_name(kind),
        source: match kind {
            Output::RawDir | Output::Dat => "trace_pipe_raw",
            Output::Text(Source::Trace) => "trace",
            Output::Text(Source::Pipe) => "trace_pipe",
        },
        command: o.cmd.clone(),
        workload_pid,
        workload_exit: status.code(),
        workload_signal: status.signal(),
        interrupted_by_signal: interrupted,
        date_utc: iso8601(start_wall),
        duration_ms,
        kernel_release: kernel_release(),
        cpus: online_cpus(),
        kernel: roots.kernel(kernel_release(), online_cpus()),
        swap: roots.swaps(),
        memcg,
        events_substituted: substituted,
        probes,
        access: access.as_ref().map(access::AccessLog::summary),
        trace_clock,
        buffer_size_kb,
        buffer_size_from,
        instance: format!("instances/{}", instance_name()),
        irq_info: settings.irq_info,
        record_tgid: settings.record_tgid,
        follow_pid: settings.follow_pid,
        events_enabled: events,
        events_skipped: skipped,
        lines: matches!(kind, Output::Text(_)).then_some(loss.lines),
        raw_bytes,
        dat,
        lost_events: lost,
        lost_events_per_cpu: lost_per_cpu.clone(),
        lost_markers: loss.lost_markers,
        lost_events_in_markers: loss.lost_events,
        entries_in_buffer: loss.entries_in_buffer,
        entries_written: loss.entries_written,
        per_cpu_stats: per_cpu
            .iter()
            .map(|(c, s)| (format!("cpu{c}"), *s))
            .collect(),
        zstd_level: level,
    };
    let meta_path = meta_path(&out);
    let json_err = |source| CaptureError::Json {
        path: meta_path.clone(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(&meta).map_err(json_err)?;
    json.push(b'\n');
    atomic::write_atomic(&meta_path, &json)?;
    let mut access_path = None;
    if let Some(log) = &access {
        let p = access::path_for(&out);
        let mut j = serde_json::to_vec_pretty(log).map_err(|source| CaptureError::Json {
            path: p.clone(),
            source,
        })?;
        j.push(b'\n');
        atomic::write_atomic(&p, &j)?;
        access_path = Some(p);
    }
    let mut procs_path = None;
    if let Some(p) = &procs {
        let path = procsnap::path_for(&out);
        let bytes = p
            .to_zst(level.max(9))
            .map_err(io_at(&path, "cannot compress the process snapshot"))?;
        atomic::write_atomic(&path, &bytes)?;
        note(&format!(
            "wrote {} ({} processes, {} pages; {} pages over the caps, \
             {} kernel threads skipped)",
            path.display(),
            p.processes.len(),
            p.nr_pages(),
            p.skipped.pages_capped,
            p.skipped.kernel_threads
        ));
        procs_path = Some(path);
    }

    match kind {
        Output::RawDir => note(&format!(
            "wrote {} (raw pages, {} events lost)",
            out.display(),
            lost
        )),
        Output::Dat => note(&format!(
            "wrote {} (trace.dat v7, zstd; {} events lost)",
            out.display(),
            lost
        )),
        Output::Text(_) => note(&format!(
            "wrote {} ({} lines, {} events lost)",
            out.display(),
            loss.lines,
            lost
        )),
    }
    if lost > 0 {
        let per: Vec<String> = lost_per_cpu
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let hint = match kind {
            Output::Text(Source::Trace) => " or use --from pipe (or drop --text)",
            _ => "",
        };
        note(&format!(
            "WARNING: {lost} EVENTS LOST ({}; text markers {}): the capture \
             has gaps, see lost_events_per_cpu in {}; raise --buffer-kb (now {} KiB per \
             CPU){hint}",
            if per.is_empty() {
                "per CPU: none counted".to_string()
            } else {
                per.join(", ")
            },
            loss.lost_events,
            meta_path.display(),
            meta.buffer_size_kb
                .map_or_else(|| "per-CPU sizes differ".to_string(), |k| k.to_string())
        ));
    }
    if let Some(source) = remove_err {
        return Err(CaptureError::Remove { out, source });
    }
    let ending = if let Some(sig) = interrupted {
        note(&format!("interrupted by signal {sig}; workload killed"));
        Ending::Interrupted
    } else if !status.success() {
        note(&format!("warning: workload exited with {status}"));
        Ending::WorkloadFailed
    } else {
        Ending::Success
    };
    Ok(Summary {
        output: out,
        format: meta.format,
        sidecar: meta_path,
        events: summary_cpus.values().map(|c| c.events).sum(),
        lost_events: lost,
        per_cpu: summary_cpus,
        lines: meta.lines,
        duration_ms: u64::try_from(duration_ms).unwrap_or(u64::MAX),
        ending,
        workload_pid,
        workload_exit: meta.workload_exit,
        workload_signal: meta.workload_signal,
        interrupted_by_signal: interrupted,
        kernel_release: meta.kernel_release,
        cpus: meta.cpus,
        trace_clock: meta.trace_clock,
        buffer_size_kb: meta.buffer_size_kb,
        events_enabled: meta.events_enabled.len(),
        events_substituted: meta.events_substituted,
        probes: meta.probes,
        procs: procs_path,
        access: access_path,
    })
}

/// The format name `stats` and `replay` report for an output kind (`Format::name`).
pub fn format_name(kind: Output) -> &'static str {
    match kind {
        Output::RawDir => "raw-dir",
        Output::Text(_) => "ftrace",
        Output::Dat => "trace.dat",
    }
}

/// Removes a directory (the trace.dat's page files) when dropped.
struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn instance_name() -> String {
    format!("{}{}", instance::INSTANCE_PREFIX, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_keeps_text_symbols_only() {
        let k = b"ffffffff81000000 T _text\nffffffff82000000 D some_data\n\
ffffffff81001000 t flush_tlb_func\nffffffff81002000 W weak_fn [mod]\nbad\n\
ffffffff83000000 r rodata\n";
        assert_eq!(
            text_symbols(k),
            b"ffffffff81000000 T _text\nffffffff81001000 t flush_tlb_func\n\
ffffffff81002000 W weak_fn [mod]\n"
        );
    }

    #[test]
    fn default_out_name_and_dates() {
        // 2026-11-22T03:04:05Z
        let t = UNIX_EPOCH + Duration::from_secs(1_795_316_645);
        assert_eq!(iso8601(t), "2026-11-22T03:04:05Z");
        assert_eq!(
            default_out("/usr/bin/python3", t),
            PathBuf::from("python3-20261122T030405Z.trace.zst")
        );
        assert_eq!(
            default_out("./a b", t),
            PathBuf::from("a_b-20261122T030405Z.trace.zst")
        );
        assert_eq!(
            default_out("..", t),
            PathBuf::from("cmd-20261122T030405Z.trace.zst")
        );
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // A leap day.
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn pump_counts_lines_and_compresses() {
        let dir = std::env::temp_dir().join(format!("mmreplay-pump-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let src_p = dir.join("trace");
        let text = "# entries-in-buffer/entries-written: 2/2   #P:2\nCPU:0 [LOST 5 EVENTS]\na\n";
        fs::write(&src_p, text).unwrap();
        let out_p = dir.join("out.zst");
        let loss = pump(
            File::open(&src_p).unwrap(),
            File::create(&out_p).unwrap(),
            3,
            None,
        )
        .unwrap();
        assert_eq!(loss.lines, 3);
        assert_eq!(loss.lost_events, 5);
        let back = zstd::decode_all(File::open(&out_p).unwrap()).unwrap();
        assert_eq!(back, text.as_bytes());
        let _ = fs::remove_dir_all(&dir);
    }
}
