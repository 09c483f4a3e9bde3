//! Access sampling for `mmreplay record --access` (`<trace>.access.json`): what the hardware
//! accessed between faults, made visible with the kernel's own soft-dirty tracking.
//!
//! Why soft-dirty: a model that sees accesses only through faults thinks a page touched again
//! after its fault is cold. Userspace can learn per-page accesses from the kernel in three ways,
//! and only one exists on the corpus kernels:
//! - idle page tracking (`/sys/kernel/mm/page_idle/bitmap`, per-page A bits): not built in on
//!   the 6.18 host nor in Debian's 6.1 (`CONFIG_IDLE_PAGE_TRACKING` off);
//! - DAMON virtual-address monitoring: the 6.18 host has DAMON with `paddr` operations only
//!   (`CONFIG_DAMON_VADDR` off, and the platform's own kdamond holds the sysfs admin), 6.1 has
//!   no DAMON; besides, DAMON samples one page per region, so per-page young bits would be
//!   inferred, not observed;
//! - soft-dirty (`/proc/PID/clear_refs` 4, `fs/proc/task_mmu.c:clear_refs_write`): write-protects
//!   every present PTE of the process and flushes its TLBs (`flush_tlb_mm`); the next write to
//!   each page faults (`do_wp_page` → `wp_page_reuse`), and that fault is in the trace like any
//!   other. Built in on Debian's 6.1 (`CONFIG_MEM_SOFT_DIRTY=y`), not on the 6.18 host.
//!
//! So the recorder clears soft-dirty bits of every process of the workload's tree every
//! `interval` and logs when ([`Clear`], `CLOCK_MONOTONIC`, which is the trace clock `mono`);
//! the lowering replays each clear as `Op::ClearSoftDirty` at its time, and the model takes the
//! write faults that follow through its own `do_wp_page`, which sets the A bit as the kernel
//! does. Resolution: the first write of each page after each clear, at the fault's exact time;
//! later writes in the same interval and all reads stay invisible. Disturbance: one
//! `flush_tlb_mm` per process per clear and one extra write fault per written page per interval
//! (both in the trace, both modelled); A bits are not touched, so reclaim sees the same A bits.
//!
//! This module must never stop a recording: a process that exits or cannot be read while it is
//! sampled is counted and skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Format version of [`AccessLog`].
pub const VERSION: u32 = 1;

/// The sampling method (the only one: see the module docs).
pub const METHOD: &str = "soft-dirty";

/// One soft-dirty clear of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clear {
    /// `CLOCK_MONOTONIC` nanoseconds just before the write to `clear_refs` (trace clock `mono`).
    pub t_ns: u64,
    /// The CPU the recorder ran on when it wrote (the sender of the `flush_tlb_mm` IPIs).
    pub cpu: u32,
    /// The process (thread-group id) whose PTEs were write-protected.
    pub pid: i32,
    /// Present pages with the soft-dirty bit (`/proc/PID/pagemap` bit 55) just before the
    /// clear: pages written (or first mapped) since the previous clear, as the kernel saw them.
    pub soft_dirty_pages: u64,
}

/// `<trace>.access.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLog {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// [`METHOD`].
    pub method: String,
    /// Time between two passes over the workload's processes, in milliseconds.
    pub interval_ms: u64,
    /// The clock of `Clear::t_ns` (the trace's `trace_clock`, `mono`).
    pub clock: String,
    /// Every clear, in time order.
    pub clears: Vec<Clear>,
    /// Processes that exited or could not be read while sampled (skipped, counted).
    pub skipped: u64,
}

impl AccessLog {
    /// The sidecar's `access` summary.
    pub fn summary(&self) -> AccessSummary {
        AccessSummary {
            method: self.method.clone(),
            interval_ms: self.interval_ms,
            clears: self.clears.len() as u64,
            processes: self
                .clears
                .iter()
                .map(|c| c.pid)
                .collect::<BTreeSet<_>>()
                .len() as u64,
            soft_dirty_pages: self.clears.iter().map(|c| c.soft_dirty_pages).sum(),
            skipped: self.skipped,
        }
    }
}

/// The `access` object of the `.meta.json` sidecar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessSummary {
    /// [`METHOD`].
    pub method: String,
    /// Sampling interval in milliseconds.
    pub interval_ms: u64,
    /// Soft-dirty clears (one per process per pass).
    pub clears: u64,
    /// Distinct processes cleared.
    pub processes: u64,
    /// Sum of [`Clear::soft_dirty_pages`].
    pub soft_dirty_pages: u64,
    /// Processes skipped.
    pub skipped: u64,
}

/// Errors reading or taking access samples.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// I/O on a file.
    #[error("{path}: cannot read, because: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The sidecar is not valid JSON of the expected shape.
    #[error(
        "{path}: line {line}, column {column}: expected an access log (version {VERSION}): {msg}"
    )]
    Json {
        /// The file.
        path: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What serde said.
        msg: String,
    },
    /// A version this build does not read.
    #[error("{path}: access log version {found}, expected {VERSION}")]
    Version {
        /// The file.
        path: String,
        /// Version found.
        found: u32,
    },
    /// Clears out of time order.
    #[error("{path}: clear {index} at {t_ns} ns is earlier than the one before it")]
    Order {
        /// The file.
        path: String,
        /// Index of the clear.
        index: usize,
        /// Its time.
        t_ns: u64,
    },
    /// The running kernel cannot do soft-dirty tracking.
    #[error(
        "--access needs soft-dirty tracking (CONFIG_MEM_SOFT_DIRTY), and this kernel has none: \
         a page the recorder wrote has pagemap bit 55 clear. Idle page tracking \
         ({page_idle}: {page_idle_present}) and DAMON virtual-address operations \
         ({damon}: {damon_ops:?}) cannot stand in: see replay/src/access.rs"
    )]
    NoSoftDirty {
        /// `/sys/kernel/mm/page_idle/bitmap`.
        page_idle: &'static str,
        /// Whether it exists.
        page_idle_present: bool,
        /// DAMON's `avail_operations` file.
        damon: &'static str,
        /// Its content (empty if absent).
        damon_ops: String,
    },
}

/// `<trace>.access.json`.
pub fn path_for(trace: &Path) -> PathBuf {
    let mut p = trace.as_os_str().to_owned();
    p.push(".access.json");
    PathBuf::from(p)
}

/// Read and check an access log.
pub fn load(path: &Path) -> Result<AccessLog, AccessError> {
    let name = path.display().to_string();
    let bytes = fs::read(path).map_err(|source| AccessError::Io {
        path: name.clone(),
        source,
    })?;
    parse(&bytes, &name)
}

/// Parse and check an access log (`name` for errors).
pub fn parse(bytes: &[u8], name: &str) -> Result<AccessLog, AccessError> {
    let log: AccessLog = serde_json::from_slice(bytes).map_err(|e| AccessError::Json {
        path: name.to_string(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })?;
    if log.version != VERSION {
        return Err(AccessError::Version {
            path: name.to_string(),
            found: log.version,
        });
    }
    for (i, w) in log.clears.windows(2).enumerate() {
        if w[1].t_ns < w[0].t_ns {
            return Err(AccessError::Order {
                path: name.to_string(),
                index: i + 1,
                t_ns: w[1].t_ns,
            });
        }
    }
    Ok(log)
}

/// `CLOCK_MONOTONIC` in nanoseconds (trace clock `mono`).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    c.max(0) as u32
}

/// pagemap bits (Documentation/admin-guide/mm/pagemap.rst).
const PM_SOFT_DIRTY: u64 = 1 << 55;
const PM_PRESENT: u64 = 1 << 63;

/// Whether the running kernel tracks soft-dirty bits: a page this process writes must show
/// pagemap bit 55 (new VMAs are `VM_SOFTDIRTY`, and a write fault sets the PTE's bit).
pub fn soft_dirty_supported() -> Result<(), AccessError> {
    let page = 4096usize;
    // SAFETY: an anonymous private mapping of one page; unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    let mut ok = false;
    if p != libc::MAP_FAILED {
        // SAFETY: `p` is a writable mapping of `page` bytes.
        unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
        let entry = pagemap_entries(Path::new("/proc/self/pagemap"), p as u64, 1)
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(0);
        ok = entry & PM_PRESENT != 0 && entry & PM_SOFT_DIRTY != 0;
        // SAFETY: `p` came from mmap above with this length.
        unsafe { libc::munmap(p, page) };
    }
    if ok {
        return Ok(());
    }
    let idle = "/sys/kernel/mm/page_idle/bitmap";
    let damon = "/sys/kernel/mm/damon/admin/kdamonds/0/contexts/0/avail_operations";
    Err(AccessError::NoSoftDirty {
        page_idle: idle,
        page_idle_present: Path::new(idle).exists(),
        damon,
        damon_ops: fs::read_to_string(damon)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    })
}

fn pagemap_entries(path: &Path, va: u64, n: usize) -> std::io::Result<Vec<u64>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(va / 4096 * 8))?;
    let mut buf = vec![0u8; n * 8];
    let mut got = 0;
    while got < buf.len() {
        let k = f.read(&mut buf[got..])?;
        if k == 0 {
            break;
        }
        got += k;
    }
    Ok(buf[..got]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// Present soft-dirty pages of `pid` (writable private and shared mappings; at most 1 GiB per
/// VMA is read, so a pass stays short).
fn soft_dirty_pages(pid: i32) -> std::io::Result<u64> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let pm = PathBuf::from(format!("/proc/{pid}/pagemap"));
    let mut n = 0;
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let (Some(range), Some(perms)) = (it.next(), it.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
            continue;
        };
        let pages = (e.saturating_sub(s) / 4096).min(1 << 18) as usize;
        let mut off = 0;
        while off < pages {
            let k = (pages - off).min(1 << 15);
            let v = pagemap_entries(&pm, s + off as u64 * 4096, k)?;
            n += v
                .iter()
                .filter(|&&x| x & PM_PRESENT != 0 && x & PM_SOFT_DIRTY != 0)
                .count() as u64;
            if v.len() < k {
                break;
            }
            off += k;
        }
    }
    Ok(n)
}

/// The processes (thread-group ids) of the tree rooted at `root`, from `/proc/N/stat` parents.
pub fn process_tree(proc_root: &Path, root: i32) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(proc_root) {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied().filter(|p| *p != root));
        }
        i += 1;
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A running sampler: a thread that clears the soft-dirty bits of the tree of `root` every
/// `interval` until [`Sampler::stop`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<AccessLog>,
}

impl Sampler {
    /// Start sampling the process tree of `root` (the first pass runs at once).
    pub fn start(root: i32, interval: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut log = AccessLog {
                version: VERSION,
                method: METHOD.to_string(),
                interval_ms: interval.as_millis() as u64,
                clock: "mono".to_string(),
                ..AccessLog::default()
            };
            while !flag.load(Ordering::SeqCst) {
                for pid in process_tree(Path::new("/proc"), root) {
                    match clear_one(pid) {
                        Ok(c) => log.clears.push(c),
                        Err(_) => log.skipped += 1,
                    }
                }
                // Sleep in short steps so `stop` is seen quickly.
                let until = std::time::Instant::now() + interval;
                while !flag.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(2).min(interval));
                }
            }
            log.clears.sort_by_key(|c| c.t_ns);
            log
        });
        Sampler { stop, thread }
    }

    /// Stop and return what was sampled.
    pub fn stop(self) -> AccessLog {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

fn clear_one(pid: i32) -> std::io::Result<Clear> {
    let soft_dirty_pages = soft_dirty_pages(pid)?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/clear_refs"))?;
    let cpu = current_cpu();
    let t_ns = mono_ns();
    // CLEAR_REFS_SOFT_DIRTY (fs/proc/task_mmu.c).
    f.write_all(b"4")?;
    Ok(Clear {
        t_ns,
        cpu,
        pid,
        soft_dirty_pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(ts: &[u64]) -> AccessLog {
        AccessLog {
            version: VERSION,
            method: METHOD.into(),
            interval_ms: 100,
            clock: "mono".into(),
            clears: ts
                .iter()
                .map(|&t_ns| Clear {
                    t_ns,
                    cpu: 0,
                    pid: 7,
                    soft_dirty_pages: 3,
                })
                .collect(),
            skipped: 1,
        }
    }

    #[test]
    fn round_trip_and_summary() {
        let l = log(&[5, 9]);
        let bytes = serde_json::to_vec(&l).unwrap();
        assert_eq!(parse(&bytes, "x").unwrap(), l);
        let s = l.summary();
        assert_eq!((s.clears, s.processes, s.soft_dirty_pages), (2, 1, 6));
    }

    #[test]
    fn rejects_bad_logs() {
        let e = parse(b"{\"version\":1", "a.json").unwrap_err().to_string();
        assert!(e.starts_with("a.json: line 1"), "{e}");
        let mut l = log(&[5]);
        l.version = 9;
        let e = parse(&serde_json::to_vec(&l).unwrap(), "b").unwrap_err();
        assert!(matches!(e, AccessError::Version { found: 9, .. }), "{e}");
        let l = log(&[9, 5]);
        let e = parse(&serde_json::to_vec(&l).unwrap(), "c").unwrap_err();
        assert!(
            matches!(
                e,
                AccessError::Order {
                    index: 1,
                    t_ns: 5,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn process_tree_follows_parents() {
        let d = std::env::temp_dir().join(format!("mmreplay-access-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        for (pid, ppid, comm) in [(10, 1, "a"), (11, 10, "b) (x"), (12, 11, "c"), (13, 1, "d")] {
            fs::create_dir_all(d.join(pid.to_string())).unwrap();
            fs::write(
                d.join(pid.to_string()).join("stat"),
                format!("{pid} ({comm}) S {ppid} 0 0\n"),
            )
            .unwrap();
        }
        assert_eq!(process_tree(&d, 10), vec![10, 11, 12]);
        assert_eq!(process_tree(&d, 13), vec![13]);
        let _ = fs::remove_dir_all(&d);
    }
}
