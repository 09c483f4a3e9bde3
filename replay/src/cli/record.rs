//! `mmreplay record`: capture a workload's MM events with ftrace into a zstd-compressed text
//! file plus a `.meta.json` provenance sidecar.
//!
//! It drives `mmreplay::record` (tracefs control). It must never leave tracefs changed: the
//! [`Session`] guard restores on every return path, and SIGINT/SIGTERM/SIGHUP only set a flag
//! that the wait loop turns into "kill the child, stop tracing, save, restore".
use anyhow::{bail, Context};
use mmreplay::record::{
    self, CpuStats, LineScanner, Session, Settings, TextLoss, Tracefs, DEFAULT_ROOT,
};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Read the `trace` file once the command has exited.
    Trace,
    /// Stream `trace_pipe` while the command runs (the buffer cannot overflow as easily, and the
    /// text carries `[LOST n EVENTS]` markers when it does).
    Pipe,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output file (default `<cmd-name>-<UTC date>.trace.zst`).
    #[arg(short = 'o', long)]
    pub out: Option<PathBuf>,
    /// `default`, or comma-separated `system:event` / `system:*` (may include `default`).
    #[arg(long, default_value = "default")]
    pub events: String,
    /// Per-CPU ring buffer size in KiB (default: leave as is).
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..))]
    pub buffer_kb: Option<u64>,
    /// Print the irq/preempt flags column (`d..1.`).
    #[arg(long, value_enum, default_value = "on")]
    pub irq_info: OnOff,
    /// Record the thread-group id of each event (`options/record-tgid`).
    #[arg(long)]
    pub tgid: bool,
    /// Trace only this recorder, the command and their descendants (`set_event_pid` with
    /// `options/event-fork`). Drops other tasks' events, including TLB-flush IPIs received by
    /// CPUs that run other tasks, and switches between two other tasks.
    #[arg(long)]
    pub follow: bool,
    /// Where the text comes from.
    #[arg(long, value_enum, default_value = "trace")]
    pub from: Source,
    /// Save the raw per-CPU ring-buffer pages (`per_cpu/cpuN/trace_pipe_raw`) with the event
    /// `format` files, `saved_cmdlines` and the text symbols of `/proc/kallsyms` into OUT as a
    /// directory (default `<cmd-name>-<UTC date>.raw`) instead of text: the kernel skips the text
    /// formatting. `mmreplay stats OUT` reads it.
    #[arg(long, conflicts_with_all = ["from", "zstd_level"])]
    pub raw: bool,
    /// Also trace this kernel function with a kprobe event (`p:mmreplay/SYMBOL`), removed again
    /// afterwards: the kernel's own count of calls, in the same trace. Repeatable; a set name
    /// expands to several (`rmap` = folio_referenced_one, lru_gen_look_around,
    /// try_to_unmap_one; `ipi` = flush_tlb_func run on another CPU than its initiator,
    /// tlb_remove_table_smp_sync: IPI receipts by callback). Needs CONFIG_KPROBE_EVENTS.
    #[arg(long = "probe", value_name = "SYMBOL|SET")]
    pub probes: Vec<String>,
    /// `trace_clock` to use.
    #[arg(long, default_value = "local")]
    pub clock: String,
    /// zstd compression level (1-22).
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,
    /// Do not snapshot the address spaces of the processes that exist at the start
    /// (`OUT.procs.zst`, see `procsnap.rs`).
    #[arg(long)]
    pub no_procs: bool,
    /// Most pages the process snapshot keeps in all (lowest addresses of each process first,
    /// at most 65,536 per process); what is left out is counted in the snapshot.
    #[arg(long, default_value_t = 1 << 20)]
    pub procs_max_pages: usize,
    /// tracefs root (for testing against another mount point).
    #[arg(long, default_value = DEFAULT_ROOT, hide = true)]
    pub tracefs: PathBuf,
    /// Journal of the tracefs settings being changed, for recovery after SIGKILL; also keeps
    /// two recorders from sharing tracefs.
    #[arg(long, default_value = "/run/mmreplay-record.json", hide = true)]
    pub journal: PathBuf,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub cmd: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNO: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: two atomic stores.
    SIGNO.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> anyhow::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `sa` is fully initialised (zeroed + handler + empty mask); the handler only
        // touches atomics.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!("sigaction({sig}): {}", io::Error::last_os_error());
        }
    }
    Ok(())
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

/// `<basename of cmd[0]>-<YYYYmmddTHHMMSSZ>.raw`: the directory `--raw` writes.
pub fn default_raw_out(cmd0: &str, now: SystemTime) -> PathBuf {
    let text = default_out(cmd0, now).to_string_lossy().into_owned();
    let stem = text.strip_suffix(".trace.zst").unwrap_or(&text);
    PathBuf::from(format!("{stem}.raw"))
}

/// Copies whole ring-buffer pages from a non-blocking `trace_pipe_raw` into `dst` until `done`
/// is set and the buffer is empty. Reads are exactly one sub-buffer long so the kernel hands
/// out whole pages (`kernel/trace/trace.c:tracing_buffers_read`). Returns the bytes saved.
fn pump_raw(mut src: File, dst: File, page: usize, done: &AtomicBool) -> io::Result<u64> {
    let mut w = io::BufWriter::new(dst);
    let mut buf = vec![0u8; page];
    let mut total = 0u64;
    loop {
        // The flag is read BEFORE the read: an empty buffer after tracing stopped is drained.
        let stopping = done.load(Ordering::SeqCst);
        match src.read(&mut buf) {
            Ok(0) if stopping => break,
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(n) => {
                w.write_all(buf.get(..n).unwrap_or_default())?;
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stopping {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(total)
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

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(d) = to.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let data = read_big(from).with_context(|| format!("reading {}", from.display()))?;
    fs::write(to, data).with_context(|| format!("writing {}", to.display()))
}

/// Reads a tracefs file with large reads. Not `fs::read`: tracefs files report size 0, so std
/// probes with a 32-byte first read, and `events/header_page` answers only the first read
/// (`kernel/trace/trace_events.c:show_header_page_file` returns 0 once `*ppos` is non-zero).
fn read_big(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
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

/// Fills the raw capture directory's metadata (layout of `mmreplay_parsers::binary::rawdir`).
fn save_raw_meta(fs_: &Tracefs, dir: &Path, events: &[String]) -> anyhow::Result<()> {
    for h in ["header_page", "header_event"] {
        copy_file(
            &fs_.path(&format!("events/{h}")),
            &dir.join("events").join(h),
        )?;
    }
    for e in events {
        let Some((sys, ev)) = e.split_once(':') else {
            continue;
        };
        let rel = format!("events/{sys}/{ev}/format");
        copy_file(&fs_.path(&rel), &dir.join(&rel))?;
    }
    copy_file(&fs_.path("saved_cmdlines"), &dir.join("saved_cmdlines"))?;
    match read_big(Path::new("/proc/kallsyms")) {
        Ok(k) => fs::write(dir.join("kallsyms"), text_symbols(&k))
            .with_context(|| format!("writing {}", dir.join("kallsyms").display()))?,
        Err(e) => eprintln!("mmreplay record: warning: /proc/kallsyms not saved: {e}"),
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

fn kernel_release() -> String {
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

fn online_cpus() -> i64 {
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
    /// MM settings of the capture kernel (`mmreplay::sysinfo`; key names are a contract).
    kernel: mmreplay::sysinfo::KernelInfo,
    swap: Vec<mmreplay::sysinfo::SwapDev>,
    /// The limited memory cgroup the workload ran in (last seen while it ran), or null.
    memcg: Option<mmreplay::sysinfo::Memcg>,
    /// Events added because the kernel lacks the ones asked for (kernels::SUBSTITUTES).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events_substituted: Vec<String>,
    /// Functions traced with kprobe events (`mmreplay:<symbol>` in the trace).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    probes: Vec<String>,
    trace_clock: String,
    buffer_size_kb: String,
    irq_info: bool,
    record_tgid: bool,
    follow_pid: Option<u32>,
    events_enabled: Vec<String>,
    events_skipped: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<u64>,
    /// Bytes of ring-buffer pages saved per CPU (`--raw`).
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_bytes: Option<BTreeMap<String, u64>>,
    lost_events: u64,
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

fn tmp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    out.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Removes the temp file unless disarmed (the rename happened).
struct TmpFile(Option<PathBuf>);
impl Drop for TmpFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if p.is_dir() {
                let _ = fs::remove_dir_all(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = tmp_path(path);
    let mut guard = TmpFile(Some(tmp.clone()));
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    guard.0 = None;
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "record needs root: it writes to tracefs ({})",
            a.tracefs.display()
        );
    }
    let Some(cmd0) = a.cmd.first().cloned() else {
        bail!("no command given after `--`");
    };
    let specs = record::parse_event_list(&a.events)?;
    let probes = record::expand_probes(&a.probes)?;
    record::ensure_mounted(&a.tracefs)?;
    let fs_ = Tracefs::new(&a.tracefs);
    if let Some(n) = record::recover(&fs_, &a.journal)? {
        eprintln!(
            "mmreplay record: warning: a previous recorder died without restoring tracefs; \
             restored {n} settings from {}",
            a.journal.display()
        );
    }
    if !probes.is_empty() && !fs_.has_kprobes() {
        return Err(record::RecordError::NoKprobes {
            path: fs_.path(record::KPROBE_EVENTS),
        }
        .into());
    }
    let (mut events, skipped) = fs_.resolve(&specs);
    for w in &skipped {
        eprintln!("mmreplay record: warning: {w}");
    }
    let (substituted, notes) = fs_.substitute(&specs, &mut events);
    for n in &notes {
        eprintln!("mmreplay record: {n}");
    }
    if events.is_empty() && probes.is_empty() {
        return Err(record::RecordError::NoEvents.into());
    }
    let start_wall = SystemTime::now();
    let out = a.out.clone().unwrap_or_else(|| {
        if a.raw {
            default_raw_out(&cmd0, start_wall)
        } else {
            default_out(&cmd0, start_wall)
        }
    });
    let tmp = tmp_path(&out);
    let mut tmp_guard = TmpFile(Some(tmp.clone()));
    let tmp_file = if a.raw {
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        None
    } else {
        Some(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?)
    };

    install_signal_handlers()?;
    // Processes older than the capture, walked before tracing starts (so the walk itself is
    // not traced); written next to the trace at the end.
    let procs = (!a.no_procs).then(|| {
        mmreplay::procsnap::take(
            Path::new("/proc"),
            mmreplay::procsnap::Caps {
                pages_total: a.procs_max_pages,
                ..mmreplay::procsnap::Caps::default()
            },
            &[std::process::id() as i32],
        )
    });
    let settings = Settings {
        events: events.clone(),
        buffer_kb: a.buffer_kb,
        clock: a.clock.clone(),
        irq_info: a.irq_info == OnOff::On,
        record_tgid: a.tgid,
        follow_pid: a.follow.then(std::process::id),
        probes: probes.clone(),
    };
    // The probe events are part of the capture's event list (format files, sidecar).
    let events: Vec<String> = events
        .into_iter()
        .chain(probes.iter().map(|p| record::probe_event(p)))
        .collect();
    let mut sess = Session::start_journaled(fs_.clone(), &settings, Some(a.journal.clone()))?;
    let trace_clock = fs_
        .read("trace_clock")
        .ok()
        .and_then(|c| record::parse_trace_clock(&c).map(str::to_string))
        .unwrap_or_default();
    let buffer_size_kb = fs_
        .read("buffer_size_kb")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();

    // The pipe reader starts before tracing is on so nothing waits in the buffer unread.
    let pipe_done = Arc::new(AtomicBool::new(false));
    let mut pipe_thread = None;
    let mut tmp_for_trace = tmp_file;
    let mut raw_threads = Vec::new();
    if a.raw {
        use std::os::unix::fs::OpenOptionsExt;
        // The ring buffer's sub-buffer size (6.8+ makes it tunable), else the page size.
        // SAFETY: sysconf has no memory-safety preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let page = fs_
            .read("buffer_subbuf_size_kb")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map_or(page_size, |k| k * 1024);
        for cpu in fs_.cpus() {
            let p = fs_.path(&format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
            let src = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
                .with_context(|| format!("opening {}", p.display()))?;
            let d = tmp.join(format!("per_cpu/cpu{cpu}"));
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            let dst = File::create(d.join("trace_pipe_raw"))
                .with_context(|| format!("creating {}", d.display()))?;
            let done = Arc::clone(&pipe_done);
            raw_threads.push((
                cpu,
                std::thread::spawn(move || pump_raw(src, dst, page, &done)),
            ));
        }
    }
    if a.from == Source::Pipe {
        use std::os::unix::fs::OpenOptionsExt;
        let p = fs_.path("trace_pipe");
        let src = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        let dst = tmp_for_trace.take().context("output file already used")?;
        let done = Arc::clone(&pipe_done);
        let level = a.zstd_level;
        pipe_thread = Some(std::thread::spawn(move || {
            pump(src, dst, level, Some(&done))
        }));
    }

    sess.set_tracing(true)?;
    let t0 = Instant::now();
    let mut child = match Command::new(&cmd0)
        .args(a.cmd.get(1..).unwrap_or_default())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = sess.set_tracing(false);
            pipe_done.store(true, Ordering::SeqCst);
            if let Some(t) = pipe_thread {
                let _ = t.join();
            }
            for (_, t) in raw_threads {
                let _ = t.join();
            }
            return Err(e).with_context(|| format!("running {cmd0:?}"));
        }
    };
    let workload_pid = child.id();
    let roots = mmreplay::sysinfo::Roots::default();
    // The workload may move itself into a cgroup after it starts (`sh -c 'echo $$ >
    // cgroup.procs && exec ...'`): sample its cgroup while it runs, keep the last seen.
    let mut cgroup_seen = None;
    let mut interrupted = None;
    let status = loop {
        if let Some(c) = roots.cgroup_of(workload_pid) {
            cgroup_seen = Some(c);
        }
        if STOP.load(Ordering::SeqCst) {
            interrupted = Some(SIGNO.load(Ordering::SeqCst));
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
    sess.set_tracing(false)?;
    let status = status.context("waiting for the workload")?;
    let per_cpu = fs_.cpu_stats().unwrap_or_default();
    let memcg = cgroup_seen.and_then(|(p, v2)| roots.memcg_limit(&p, v2));

    let mut raw_bytes = None;
    let loss = match pipe_thread {
        _ if a.raw => {
            pipe_done.store(true, Ordering::SeqCst);
            let mut bytes = BTreeMap::new();
            for (cpu, t) in raw_threads {
                let n = t
                    .join()
                    .map_err(|_| anyhow::anyhow!("trace_pipe_raw reader panicked"))?
                    .with_context(|| format!("reading per_cpu/cpu{cpu}/trace_pipe_raw"))?;
                bytes.insert(format!("cpu{cpu}"), n);
            }
            raw_bytes = Some(bytes);
            save_raw_meta(&fs_, &tmp, &events)?;
            TextLoss::default()
        }
        Some(t) => {
            pipe_done.store(true, Ordering::SeqCst);
            t.join()
                .map_err(|_| anyhow::anyhow!("trace_pipe reader panicked"))?
                .context("streaming trace_pipe")?
        }
        None => {
            let p = fs_.path("trace");
            let src = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
            let dst = tmp_for_trace.take().context("output file already used")?;
            pump(src, dst, a.zstd_level, None)
                .with_context(|| format!("saving {} to {}", p.display(), tmp.display()))?
        }
    };
    let restore_err = sess.restore().err();
    drop(sess);

    fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
    tmp_guard.0 = None;

    let overrun: u64 = per_cpu.values().map(|s| s.overrun + s.dropped_events).sum();
    let lost = overrun.max(loss.lost_events).max(loss.header_lost());
    use std::os::unix::process::ExitStatusExt;
    let meta = Meta {
        tool: "mmreplay record",
        mmreplay_version: env!("CARGO_PKG_VERSION"),
        format: if a.raw {
            "ftrace-raw-dir"
        } else {
            "ftrace-text"
        },
        source: match a.from {
            _ if a.raw => "trace_pipe_raw",
            Source::Trace => "trace",
            Source::Pipe => "trace_pipe",
        },
        command: a.cmd.clone(),
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
        trace_clock,
        buffer_size_kb,
        irq_info: settings.irq_info,
        record_tgid: settings.record_tgid,
        follow_pid: settings.follow_pid,
        events_enabled: events,
        events_skipped: skipped,
        lines: (!a.raw).then_some(loss.lines),
        raw_bytes,
        lost_events: lost,
        lost_markers: loss.lost_markers,
        lost_events_in_markers: loss.lost_events,
        entries_in_buffer: loss.entries_in_buffer,
        entries_written: loss.entries_written,
        per_cpu_stats: per_cpu
            .iter()
            .map(|(c, s)| (format!("cpu{c}"), *s))
            .collect(),
        zstd_level: a.zstd_level,
    };
    let mut meta_path = out.clone().into_os_string();
    meta_path.push(".meta.json");
    let mut json = serde_json::to_vec_pretty(&meta)?;
    json.push(b'\n');
    write_atomic(Path::new(&meta_path), &json)?;
    if let Some(p) = &procs {
        let path = mmreplay::procsnap::path_for(&out);
        write_atomic(&path, &p.to_zst(a.zstd_level.max(9))?)?;
        eprintln!(
            "mmreplay record: wrote {} ({} processes, {} pages; {} pages over the caps, \
             {} kernel threads skipped)",
            path.display(),
            p.processes.len(),
            p.nr_pages(),
            p.skipped.pages_capped,
            p.skipped.kernel_threads
        );
    }

    if a.raw {
        eprintln!(
            "mmreplay record: wrote {} (raw pages, {} events lost)",
            out.display(),
            lost
        );
    } else {
        eprintln!(
            "mmreplay record: wrote {} ({} lines, {} events lost)",
            out.display(),
            loss.lines,
            lost
        );
    }
    if lost > 0 {
        let hint = match a.from {
            _ if a.raw => "",
            Source::Trace => " or use --from pipe",
            Source::Pipe => "",
        };
        eprintln!(
            "mmreplay record: warning: [LOST {lost} EVENTS] (per-CPU overrun {overrun}, \
             markers {}): raise --buffer-kb (now {}){hint}",
            loss.lost_events, meta.buffer_size_kb
        );
    }
    if let Some(e) = restore_err {
        bail!("capture saved, but restoring tracefs failed: {e}");
    }
    if let Some(sig) = interrupted {
        eprintln!("mmreplay record: interrupted by signal {sig}; workload killed");
        return Ok(ExitCode::from(130));
    }
    if !status.success() {
        eprintln!("mmreplay record: warning: workload exited with {status}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    fn parse(v: &[&str]) -> Result<Args, clap::Error> {
        T::try_parse_from(std::iter::once("record").chain(v.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn defaults_and_command_after_double_dash() {
        let a = parse(&["--", "ls", "-l", "--color"]).unwrap();
        assert_eq!(a.cmd, vec!["ls", "-l", "--color"]);
        assert_eq!(a.events, "default");
        assert_eq!(a.irq_info, OnOff::On);
        assert_eq!(a.from, Source::Trace);
        assert!(!a.tgid);
        assert!(!a.follow);
        assert_eq!(a.buffer_kb, None);
        assert_eq!(a.clock, "local");
        assert_eq!(a.tracefs, PathBuf::from(DEFAULT_ROOT));
        assert_eq!(a.journal, PathBuf::from("/run/mmreplay-record.json"));
    }

    #[test]
    fn all_options() {
        let a = parse(&[
            "-o",
            "x.trace.zst",
            "--events",
            "tlb:*,ipi:ipi_send_cpu",
            "--buffer-kb",
            "65536",
            "--irq-info",
            "off",
            "--tgid",
            "--follow",
            "--from",
            "pipe",
            "--",
            "true",
        ])
        .unwrap();
        assert_eq!(a.out, Some(PathBuf::from("x.trace.zst")));
        assert_eq!(a.buffer_kb, Some(65536));
        assert_eq!(a.irq_info, OnOff::Off);
        assert!(a.tgid);
        assert!(a.follow);
        assert_eq!(a.from, Source::Pipe);
        assert_eq!(record::parse_event_list(&a.events).unwrap().len(), 2);
    }

    #[test]
    fn probes_repeat_and_expand() {
        let a = parse(&[
            "--probe",
            "rmap",
            "--probe",
            "shrink_folio_list",
            "--",
            "true",
        ])
        .unwrap();
        assert_eq!(a.probes, vec!["rmap", "shrink_folio_list"]);
        assert_eq!(
            record::expand_probes(&a.probes).unwrap(),
            vec![
                "folio_referenced_one",
                "lru_gen_look_around",
                "try_to_unmap_one",
                "shrink_folio_list"
            ]
        );
        assert!(parse(&["--", "true"]).unwrap().probes.is_empty());
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            &["ls"][..],
            &[],
            &["--"],
            &["--irq-info", "maybe", "--", "ls"],
            &["--from", "perf", "--", "ls"],
            &["--buffer-kb", "0", "--", "ls"],
            &["--buffer-kb", "-5", "--", "ls"],
            &["--zstd-level", "40", "--", "ls"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn raw_flag_and_its_conflicts() {
        let a = parse(&["--raw", "-o", "cap.raw", "--events", "tlb:*", "--", "dd"]).unwrap();
        assert!(a.raw);
        assert_eq!(a.out, Some(PathBuf::from("cap.raw")));
        assert!(!parse(&["--", "dd"]).unwrap().raw);
        // Text-only options make no sense with raw pages.
        for bad in [
            &["--raw", "--from", "pipe", "--", "dd"][..],
            &["--raw", "--from", "trace", "--", "dd"],
            &["--raw", "--zstd-level", "3", "--", "dd"],
            &["--raw"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_795_316_645);
        assert_eq!(
            default_raw_out("/bin/dd", t),
            PathBuf::from("dd-20261122T030405Z.raw")
        );
    }

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
    fn pump_raw_drains_until_stopped() {
        let dir = std::env::temp_dir().join(format!("mmreplay-pumpraw-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let src_p = dir.join("trace_pipe_raw");
        let pages: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        fs::write(&src_p, &pages).unwrap();
        let out_p = dir.join("out");
        // Already stopped: a regular file reads to EOF (0) and the copy ends there.
        let done = AtomicBool::new(true);
        let n = pump_raw(
            File::open(&src_p).unwrap(),
            File::create(&out_p).unwrap(),
            4096,
            &done,
        )
        .unwrap();
        assert_eq!(n, pages.len() as u64);
        assert_eq!(fs::read(&out_p).unwrap(), pages);
        let _ = fs::remove_dir_all(&dir);
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
