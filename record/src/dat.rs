//! `mmreplay record`'s trace.dat output: collects the metadata a trace.dat carries from the
//! recorder's instance and the top-level read-only files, compresses each CPU's page file
//! (one thread per CPU, after the workload has ended) and writes the file with
//! [`crate::tracedat_write`].
//!
//! It must never write to tracefs (it only reads), nor keep a CPU's pages in memory.

use crate::tracedat_write::{self, CpuWritten, DatMeta, DatWriteError, PageHeader};
use crate::tracefs::{parse_trace_clock, read_big, RecordError, Tracefs};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Why the trace.dat could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DatError {
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Tracefs(#[from] RecordError),
    #[error("cpu{cpu}: cannot compress its pages")]
    Compress {
        cpu: u32,
        #[source]
        source: DatWriteError,
    },
    #[error("a compressor thread panicked")]
    Panicked,
    #[error(transparent)]
    Write(#[from] DatWriteError),
}

fn read(path: &Path) -> Result<Vec<u8>, DatError> {
    read_big(path).map_err(|source| DatError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the metadata of a capture from the instance `inst` (formats, clock, per-CPU stats)
/// and the top level `top` (`saved_cmdlines`, `printk_formats`, which are global). Call it
/// after tracing stopped and before the instance is removed (kprobe formats go with it).
pub fn gather(
    top: &Tracefs,
    inst: &Tracefs,
    events: &[String],
    cpus: &[u32],
    kallsyms: Vec<u8>,
) -> Result<DatMeta, DatError> {
    let big = |fs_: &Tracefs, rel: &str| read(&fs_.path(rel));
    let mut meta = DatMeta {
        header_page: big(inst, "events/header_page")?,
        header_event: big(inst, "events/header_event")?,
        kallsyms,
        ..DatMeta::default()
    };
    let mut ftrace: Vec<PathBuf> = fs::read_dir(inst.path("events/ftrace"))
        .map(|rd| rd.flatten().map(|e| e.path().join("format")).collect())
        .unwrap_or_default();
    ftrace.sort();
    for f in ftrace.iter().filter(|f| f.is_file()) {
        meta.ftrace_formats.push(read(f)?);
    }
    let mut by_sys: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for e in events {
        if let Some((sys, ev)) = e.split_once(':') {
            by_sys.entry(sys).or_default().push(ev);
        }
    }
    for (sys, mut evs) in by_sys {
        evs.sort_unstable();
        evs.dedup();
        let mut formats = Vec::with_capacity(evs.len());
        for ev in evs {
            formats.push(big(inst, &format!("events/{sys}/{ev}/format"))?);
        }
        meta.systems.push((sys.to_string(), formats));
    }
    // Global files, read only: the comm cache and the trace_printk formats.
    meta.cmdlines = big(top, "saved_cmdlines").unwrap_or_default();
    meta.printk = big(top, "printk_formats").unwrap_or_default();
    let clock_file = inst.read("trace_clock")?;
    meta.clock = parse_trace_clock(&clock_file)
        .unwrap_or("local")
        .to_string();
    meta.trace_clock = clock_file.trim().to_string();
    meta.uname = uname();
    meta.version = format!("mmreplay {}", env!("CARGO_PKG_VERSION"));
    // SAFETY: sysconf has no memory-safety preconditions.
    let (ncpu, page) = unsafe {
        (
            libc::sysconf(libc::_SC_NPROCESSORS_CONF),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    meta.cpu_count = u32::try_from(ncpu)
        .unwrap_or(0)
        .max(cpus.iter().max().map_or(0, |m| m + 1));
    meta.page_size = u32::try_from(page).unwrap_or(4096).max(4096);
    meta.subbuf_size = subbuf_size(inst, meta.page_size as usize) as u32;
    for &cpu in cpus {
        let s = inst.read(&format!("per_cpu/cpu{cpu}/stats"))?;
        meta.cpustats.push((cpu, s));
    }
    Ok(meta)
}

/// The ring buffer's sub-buffer (page) size: `buffer_subbuf_size_kb` (6.8+), else the page size.
pub fn subbuf_size(inst: &Tracefs, page_size: usize) -> usize {
    inst.read("buffer_subbuf_size_kb")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map_or(page_size, |k| k * 1024)
        .max(page_size)
}

/// `sysname nodename release version machine`, as trace-cmd writes it; the host name is left
/// out (captures travel in bug reports).
fn uname() -> String {
    // SAFETY: uname fills a zeroed struct; its strings are NUL-terminated by the kernel.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::from("Linux");
        }
        let s = |p: *const libc::c_char| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
        format!(
            "{} (none) {} {} {}",
            s(u.sysname.as_ptr()),
            s(u.release.as_ptr()),
            s(u.version.as_ptr()),
            s(u.machine.as_ptr())
        )
    }
}

/// Compresses every CPU's page file (in parallel, one thread per CPU) next to it, removes the
/// page files, and writes the trace.dat at `out`. Returns the file's length and, per CPU, what
/// was written.
pub fn write(
    out: &Path,
    meta: &DatMeta,
    pages: &[(u32, PathBuf)],
    level: i32,
) -> Result<(u64, Vec<(u32, CpuWritten)>), DatError> {
    let header = PageHeader::parse(&meta.header_page);
    let page = meta.subbuf_size as usize;
    let results: Vec<Result<(u32, PathBuf, CpuWritten), DatError>> = std::thread::scope(|s| {
        let handles: Vec<_> = pages
            .iter()
            .map(|(cpu, p)| {
                s.spawn(move || -> Result<(u32, PathBuf, CpuWritten), DatError> {
                    let z = p.with_extension("zchunks");
                    let st = tracedat_write::compress_pages(p, &z, page, header, level)
                        .map_err(|source| DatError::Compress { cpu: *cpu, source })?;
                    let _ = fs::remove_file(p);
                    Ok((*cpu, z, st))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(DatError::Panicked)))
            .collect()
    });
    let mut cpus = Vec::with_capacity(results.len());
    for r in results {
        cpus.push(r?);
    }
    cpus.sort_by_key(|c| c.0);
    let io_err = |source| DatWriteError::Io {
        path: out.to_path_buf(),
        source,
    };
    let mut f = File::create(out).map_err(io_err)?;
    let len = tracedat_write::write_dat(&mut f, out, meta, &cpus, level)?;
    f.sync_all().map_err(io_err)?;
    for (_, z, _) in &cpus {
        let _ = fs::remove_file(z);
    }
    Ok((len, cpus.into_iter().map(|(c, _, st)| (c, st)).collect()))
}
