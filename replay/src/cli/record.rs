//! `mmreplay record`: capture a workload's MM events with ftrace into a trace.dat (v7, zstd;
//! `--text`: zstd-compressed text, `--raw`: a directory of pages) plus a `.meta.json`
//! provenance sidecar.
//!
//! It records in a tracefs instance of its own (`mmreplay::record_instance`), streaming each
//! CPU's ring-buffer pages to disk while the workload runs (`mmreplay::record_stream`), so the
//! buffer does not overflow and the top-level tracefs state is never touched. It must never
//! leave tracefs changed: the [`Instance`] guard removes the instance on every return path,
//! SIGINT/SIGTERM/SIGHUP only set a flag that the wait loop turns into "kill the child, stop
//! tracing, save, clean up", a lock keeps a second recorder out, and a journal lets the next
//! recorder clean up after one killed with SIGKILL. Output files appear whole or not at all.
use anyhow::{bail, Context};
use mmreplay::record::{self, CpuStats, LineScanner, TextLoss, Tracefs, DEFAULT_ROOT};
use mmreplay::record_instance::{self as instance, Instance, InstanceSettings};
use mmreplay::record_stream::Readers;

use super::record_dat;
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
    /// Per-CPU ring buffer size in KiB (default: from the machine, 1/256 of RAM over the CPUs,
    /// 4 MiB to 256 MiB per CPU).
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..))]
    pub buffer_kb: Option<u64>,
    /// Write zstd-compressed ftrace text (`--from`) instead of a trace.dat (also chosen by an
    /// output name ending in `.zst`).
    #[arg(long)]
    pub text: bool,
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
    /// Where the text comes from (implies --text; default `trace`).
    #[arg(long, value_enum)]
    pub from: Option<Source>,
    /// Save the raw per-CPU ring-buffer pages (`per_cpu/cpuN/trace_pipe_raw`) with the event
    /// `format` files, `saved_cmdlines` and the text symbols of `/proc/kallsyms` into OUT as a
    /// directory (default `<cmd-name>-<UTC date>.raw`) instead of text: the kernel skips the text
    /// formatting. `mmreplay stats OUT` reads it.
    #[arg(long, conflicts_with_all = ["from", "zstd_level", "text"])]
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
    /// zstd compression level (1-22; default 3 for trace.dat, whose pages are compressed after
    /// the workload ends, 9 for text).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: Option<i32>,
    /// Do not snapshot the address spaces of the processes that exist at the start
    /// (`OUT.procs.zst`, see `procsnap.rs`).
    #[arg(long)]
    pub no_procs: bool,
    /// Most pages the process snapshot keeps in all (lowest addresses of each process first,
    /// at most 65,536 per process); what is left out is counted in the snapshot.
    #[arg(long, default_value_t = 1 << 20)]
    pub procs_max_pages: usize,
    /// Sample the workload's writes between faults (`OUT.access.json`, see `access.rs`): clear
    /// the soft-dirty bits of its processes every `--access-interval-ms`, so the next write to
    /// each page faults in the trace. Needs CONFIG_MEM_SOFT_DIRTY; uses trace_clock `mono`.
    #[arg(long)]
    pub access: bool,
    /// Milliseconds between two `--access` passes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub access_interval_ms: u64,
    /// tracefs root (for testing against another mount point).
    #[arg(long, default_value = DEFAULT_ROOT, hide = true)]
    pub tracefs: PathBuf,
    /// Journal of what the recorder made in tracefs (its instance, kprobes), for the next
    /// recorder to clean up after a SIGKILL.
    #[arg(long, default_value = "/run/mmreplay-record.json", hide = true)]
    pub journal: PathBuf,
    /// Lock held while recording: one recorder at a time.
    #[arg(long, default_value = "/run/mmreplay-record.lock", hide = true)]
    pub lock: PathBuf,
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
pub(super) fn read_big(path: &Path) -> io::Result<Vec<u8>> {
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

/// Fills the raw capture directory's metadata (layout of `mmreplay_parsers::binary::rawdir`):
/// formats from the instance `inst`, the (global) comm cache from the top level `top`.
fn save_raw_meta(
    top: &Tracefs,
    inst: &Tracefs,
    dir: &Path,
    events: &[String],
) -> anyhow::Result<()> {
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
    /// `--access` sampling (`OUT.access.json`), summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    access: Option<mmreplay::access::AccessSummary>,
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
    dat: Option<BTreeMap<String, mmreplay::tracedat_write::CpuWritten>>,
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

fn tmp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    out.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Removes what a recorder killed with SIGKILL left beside `out`: `.NAME…tmp-PID…` files and
/// directories (see [`tmp_path`]) whose PID no longer runs. Returns what was removed.
fn sweep_stale_tmp(out: &Path) -> Vec<PathBuf> {
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut gone = Vec::new();
    let Ok(rd) = fs::read_dir(&dir) else {
        return gone;
    };
    let prefix = format!(".{name}");
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = n.strip_prefix(&prefix) else {
            continue;
        };
        let Some(i) = rest.find(".tmp-") else {
            continue;
        };
        let digits: String = rest[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let p = e.path();
        let res = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        if res.is_ok() {
            gone.push(p);
        }
    }
    gone.sort();
    gone
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

/// The output kind `record` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Dat,
    Text(Source),
    RawDir,
}

/// `-o NAME.zst`: the name asks for zstd-compressed text.
fn zst_name(a: &Args) -> bool {
    a.out
        .as_ref()
        .is_some_and(|o| o.extension().is_some_and(|e| e == "zst"))
}

impl Output {
    fn of(a: &Args) -> Output {
        if a.raw {
            Output::RawDir
        } else if a.text || a.from.is_some() || zst_name(a) {
            Output::Text(a.from.unwrap_or(Source::Trace))
        } else {
            Output::Dat
        }
    }
}

/// Checks the options that only make sense for one output kind: nothing is silently ignored.
fn check_output_options(a: &Args, kind: Output) -> anyhow::Result<()> {
    if kind == Output::Dat {
        if a.tgid {
            bail!("--tgid adds a tgid column to the text output; it needs --text");
        }
        if a.irq_info == OnOff::Off {
            bail!("--irq-info off changes the text output only; it needs --text");
        }
    }
    Ok(())
}

/// The per-CPU buffer size: `--buffer-kb`, else from the machine's memory and CPUs.
fn buffer_kb(a: &Args) -> (u64, &'static str) {
    if let Some(kb) = a.buffer_kb {
        return (kb, "--buffer-kb");
    }
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let (total, avail) = instance::meminfo(&text);
    let total = total.unwrap_or(4 << 20);
    let kb = instance::auto_buffer_kb(total, avail.unwrap_or(total), online_cpus().max(1) as u64);
    (kb, "auto")
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
    let kind = Output::of(&a);
    check_output_options(&a, kind)?;
    let level = a
        .zstd_level
        .unwrap_or(if kind == Output::Dat { 3 } else { 9 });
    // `--access` clear times are CLOCK_MONOTONIC, which is trace_clock `mono`.
    let clock = match (a.access, a.clock.as_str()) {
        (true, "local" | "mono") => "mono".to_string(),
        (true, c) => {
            bail!("--access needs trace_clock mono (its clear times are CLOCK_MONOTONIC), not {c}")
        }
        (false, c) => c.to_string(),
    };
    if a.access {
        mmreplay::access::soft_dirty_supported()?;
    }
    if zst_name(&a) && !a.text && a.from.is_none() && !a.raw {
        eprintln!(
            "mmreplay record: -o names a .zst file: writing zstd-compressed text (as --text); \
             name it .dat for a trace.dat"
        );
    }
    let specs = record::parse_event_list(&a.events)?;
    let probes = record::expand_probes(&a.probes)?;
    // Before anything is made that a signal could strand: from here on a signal only sets STOP.
    install_signal_handlers()?;
    record::ensure_mounted(&a.tracefs)?;
    let top = Tracefs::new(&a.tracefs);
    if !top.exists("instances") {
        bail!(
            "{}: no instances directory; record needs tracefs instances (Linux 3.10+)",
            a.tracefs.display()
        );
    }
    let _lock = instance::lock(&a.lock)?;
    let rec = instance::recover(&top, &a.journal)?;
    if !rec.is_empty() {
        eprintln!(
            "mmreplay record: warning: a previous recorder died without cleaning up: removed \
             instances [{}], kprobes [{}], restored {} settings (journal {})",
            rec.instances_removed.join(", "),
            rec.kprobes_removed.join(", "),
            rec.settings_restored,
            a.journal.display()
        );
        for f in &rec.failures {
            eprintln!("mmreplay record: warning: could not undo: {f}");
        }
    }
    if !probes.is_empty() && !top.has_kprobes() {
        return Err(record::RecordError::NoKprobes {
            path: top.path(record::KPROBE_EVENTS),
        }
        .into());
    }
    let (mut events, skipped) = top.resolve(&specs);
    for w in &skipped {
        eprintln!("mmreplay record: warning: {w}");
    }
    let (substituted, notes) = top.substitute(&specs, &mut events);
    for n in &notes {
        eprintln!("mmreplay record: {n}");
    }
    if events.is_empty() && probes.is_empty() {
        return Err(record::RecordError::NoEvents.into());
    }
    let start_wall = SystemTime::now();
    let out = a.out.clone().unwrap_or_else(|| match kind {
        Output::RawDir => default_raw_out(&cmd0, start_wall),
        Output::Text(_) => default_out(&cmd0, start_wall),
        Output::Dat => default_dat_out(&cmd0, start_wall),
    });
    for p in sweep_stale_tmp(&out) {
        eprintln!(
            "mmreplay record: removed {} (left by a recorder that was killed)",
            p.display()
        );
    }
    let tmp = tmp_path(&out);
    let mut tmp_guard = TmpFile(Some(tmp.clone()));
    // The page files of a trace.dat, beside the output (the same file system, never /tmp,
    // which may be RAM).
    let work = {
        let mut w = tmp.clone().into_os_string();
        w.push(".pages");
        PathBuf::from(w)
    };
    let _work_guard = TmpFile(Some(work.clone()));
    let mut tmp_for_trace = None;
    match kind {
        Output::RawDir => {
            fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?
        }
        Output::Dat => {
            fs::create_dir(&work).with_context(|| format!("creating {}", work.display()))?
        }
        Output::Text(_) => {
            tmp_for_trace =
                Some(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?)
        }
    }

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
    let (buffer_kb, buffer_size_from) = buffer_kb(&a);
    // The probe events are part of the capture's event list (format files, sidecar).
    let events: Vec<String> = events
        .into_iter()
        .chain(probes.iter().map(|p| record::probe_event(p)))
        .collect();
    let settings = InstanceSettings {
        events: events.clone(),
        buffer_kb,
        clock,
        irq_info: a.irq_info == OnOff::On,
        record_tgid: a.tgid,
        follow_pid: a.follow.then(std::process::id),
        probes: probes.clone(),
        buffer_percent: instance::BUFFER_PERCENT,
    };
    let mut inst = Instance::create(top.clone(), &settings, Some(a.journal.clone()))?;
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
    let subbuf = record_dat::subbuf_size(&ifs, page_size);
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
                    fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                }
            }
            readers = Some(Readers::start(ifs.root(), &files, subbuf)?);
        }
        Output::Text(Source::Pipe) => {
            use std::os::unix::fs::OpenOptionsExt;
            let p = ifs.path("trace_pipe");
            let src = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
                .with_context(|| format!("opening {}", p.display()))?;
            let dst = tmp_for_trace.take().context("output file already used")?;
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
    command.args(a.cmd.get(1..).unwrap_or_default());
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
        Err(e) => {
            let _ = inst.set_tracing(false);
            return Err(e).with_context(|| format!("running {cmd0:?}"));
        }
    };
    let workload_pid = child.id();
    let sampler = a.access.then(|| {
        mmreplay::access::Sampler::start(
            workload_pid as i32,
            Duration::from_millis(a.access_interval_ms),
        )
    });
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
    let access = sampler.map(mmreplay::access::Sampler::stop);
    inst.set_tracing(false)?;
    let status = status.context("waiting for the workload")?;
    let memcg = cgroup_seen.and_then(|(p, v2)| roots.memcg_limit(&p, v2));

    // Drain: the readers empty their buffers (tracing is off) and return.
    let mut raw_bytes = None;
    let mut pages = Vec::new();
    if let Some(r) = readers.take() {
        let done = r.finish()?;
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
            pipe_thread
                .take()
                .context("trace_pipe reader missing")?
                .join()
                .map_err(|_| anyhow::anyhow!("trace_pipe reader panicked"))?
                .context("streaming trace_pipe")?
        }
        Output::Text(Source::Trace) => {
            let p = ifs.path("trace");
            let src = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
            let dst = tmp_for_trace.take().context("output file already used")?;
            pump(src, dst, level, None)
                .with_context(|| format!("saving {} to {}", p.display(), tmp.display()))?
        }
        Output::RawDir => {
            save_raw_meta(&top, &ifs, &tmp, &events)?;
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
                    eprintln!("mmreplay record: warning: /proc/kallsyms not saved: {e}");
                    Vec::new()
                }
            };
            Some(record_dat::gather(&top, &ifs, &events, &cpus, kallsyms)?)
        }
        _ => None,
    };
    let remove_err = inst.remove().err();
    drop(inst);

    let mut dat = None;
    if let Some(m) = &dat_meta {
        let (_, written) = record_dat::write(&tmp, m, &pages, level)?;
        dat = Some(
            written
                .into_iter()
                .map(|(c, st)| (format!("cpu{c}"), st))
                .collect::<BTreeMap<_, _>>(),
        );
    }
    fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
    tmp_guard.0 = None;

    // Per CPU: the buffer's own count, or what the pages say, whichever is larger.
    let mut lost_per_cpu = BTreeMap::new();
    for (c, s) in &per_cpu {
        let in_pages = dat
            .as_ref()
            .and_then(|d| d.get(&format!("cpu{c}")))
            .map_or(0, |w| w.missed_events_stored);
        lost_per_cpu.insert(
            format!("cpu{c}"),
            (s.overrun + s.dropped_events).max(in_pages),
        );
    }
    let overrun: u64 = lost_per_cpu.values().sum();
    let lost = overrun.max(loss.lost_events).max(loss.header_lost());
    use std::os::unix::process::ExitStatusExt;
    let meta = Meta {
        tool: "mmreplay record",
        mmreplay_version: env!("CARGO_PKG_VERSION"),
        // The names `stats` and `replay` report for these inputs (`Format::name`).
        format: match kind {
            Output::RawDir => "raw-dir",
            Output::Text(_) => "ftrace",
            Output::Dat => "trace.dat",
        },
        source: match kind {
            Output::RawDir | Output::Dat => "trace_pipe_raw",
            Output::Text(Source::Trace) => "trace",
            Output::Text(Source::Pipe) => "trace_pipe",
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
        access: access.as_ref().map(mmreplay::access::AccessLog::summary),
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
    let mut meta_path = out.clone().into_os_string();
    meta_path.push(".meta.json");
    let mut json = serde_json::to_vec_pretty(&meta)?;
    json.push(b'\n');
    write_atomic(Path::new(&meta_path), &json)?;
    if let Some(log) = &access {
        let mut j = serde_json::to_vec_pretty(log)?;
        j.push(b'\n');
        write_atomic(&mmreplay::access::path_for(&out), &j)?;
    }
    if let Some(p) = &procs {
        let path = mmreplay::procsnap::path_for(&out);
        write_atomic(&path, &p.to_zst(level.max(9))?)?;
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

    match kind {
        Output::RawDir => eprintln!(
            "mmreplay record: wrote {} (raw pages, {} events lost)",
            out.display(),
            lost
        ),
        Output::Dat => eprintln!(
            "mmreplay record: wrote {} (trace.dat v7, zstd; {} events lost)",
            out.display(),
            lost
        ),
        Output::Text(_) => eprintln!(
            "mmreplay record: wrote {} ({} lines, {} events lost)",
            out.display(),
            loss.lines,
            lost
        ),
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
        eprintln!(
            "mmreplay record: WARNING: {lost} EVENTS LOST ({}; text markers {}): the capture \
             has gaps, see lost_events_per_cpu in {}; raise --buffer-kb (now {} KiB per \
             CPU){hint}",
            if per.is_empty() {
                "per CPU: none counted".to_string()
            } else {
                per.join(", ")
            },
            loss.lost_events,
            Path::new(&meta_path).display(),
            meta.buffer_size_kb
                .map_or_else(|| "per-CPU sizes differ".to_string(), |k| k.to_string())
        );
    }
    if let Some(e) = remove_err {
        bail!("capture saved, but removing the tracefs instance failed: {e}");
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

fn instance_name() -> String {
    format!("{}{}", instance::INSTANCE_PREFIX, std::process::id())
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
        assert_eq!(a.from, None);
        assert_eq!(Output::of(&a), Output::Dat);
        assert!(!a.text);
        assert!(!a.tgid);
        assert!(!a.follow);
        assert_eq!(a.buffer_kb, None);
        assert_eq!(a.clock, "local");
        assert_eq!(a.tracefs, PathBuf::from(DEFAULT_ROOT));
        assert_eq!(a.journal, PathBuf::from("/run/mmreplay-record.json"));
        assert_eq!(a.lock, PathBuf::from("/run/mmreplay-record.lock"));
    }

    #[test]
    fn output_kind_and_options_that_need_text() {
        let kind = |v: &[&str]| Output::of(&parse(v).unwrap());
        assert_eq!(kind(&["--", "ls"]), Output::Dat);
        assert_eq!(kind(&["--text", "--", "ls"]), Output::Text(Source::Trace));
        assert_eq!(
            kind(&["--from", "pipe", "--", "ls"]),
            Output::Text(Source::Pipe)
        );
        assert_eq!(kind(&["--raw", "--", "ls"]), Output::RawDir);
        assert!(parse(&["--raw", "--text", "--", "ls"]).is_err());
        // Nothing a trace.dat cannot honour passes silently.
        assert_eq!(
            kind(&["-o", "x.trace.zst", "--", "ls"]),
            Output::Text(Source::Trace)
        );
        for (bad, why) in [
            (&["--tgid", "--", "ls"][..], "needs --text"),
            (&["--irq-info", "off", "--", "ls"], "needs --text"),
        ] {
            let a = parse(bad).unwrap();
            let e = check_output_options(&a, Output::of(&a)).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
        for good in [
            &["-o", "x.trace.zst", "--text", "--tgid", "--", "ls"][..],
            &["-o", "x.trace.dat", "--", "ls"],
            &["-o", "x.zst", "--from", "pipe", "--", "ls"],
        ] {
            let a = parse(good).unwrap();
            assert!(check_output_options(&a, Output::of(&a)).is_ok(), "{good:?}");
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_795_316_645);
        assert_eq!(
            default_dat_out("/usr/bin/python3", t),
            PathBuf::from("python3-20261122T030405Z.trace.dat")
        );
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
        assert_eq!(a.from, Some(Source::Pipe));
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
    fn stale_temp_files_of_dead_recorders_are_swept() {
        let dir = std::env::temp_dir().join(format!("mmreplay-sweep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let out = dir.join("cap.trace.dat");
        for n in [
            format!(".cap.trace.dat.tmp-{dead}"),
            format!(".cap.trace.dat.tmp-{dead}.pages"),
            format!(".cap.trace.dat.meta.json.tmp-{dead}"),
            format!(".cap.trace.dat.tmp-{me}"),
            ".cap.trace.dat.tmp-1".to_string(),
            format!(".other.tmp-{dead}"),
            "cap.trace.dat".to_string(),
        ] {
            if n.ends_with(".pages") {
                fs::create_dir_all(dir.join(&n).join("x")).unwrap();
            } else {
                fs::write(dir.join(&n), "x").unwrap();
            }
        }
        let gone = sweep_stale_tmp(&out);
        let names: Vec<String> = gone
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                format!(".cap.trace.dat.meta.json.tmp-{dead}"),
                format!(".cap.trace.dat.tmp-{dead}"),
                format!(".cap.trace.dat.tmp-{dead}.pages"),
            ]
        );
        // Ours, a live pid's (1), another capture's and the capture itself stay.
        for n in [
            format!(".cap.trace.dat.tmp-{me}"),
            ".cap.trace.dat.tmp-1".to_string(),
            format!(".other.tmp-{dead}"),
            "cap.trace.dat".to_string(),
        ] {
            assert!(dir.join(&n).exists(), "{n} removed");
        }
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
