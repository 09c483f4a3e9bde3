//! `mmreplay record`'s trace.dat output: collects the metadata a trace.dat carries from the
//! recorder's instance and the top-level read-only files, compresses each CPU's page file
//! (one thread per CPU, after the workload has ended) and writes the file with
//! `mmreplay::tracedat_write`.
//!
//! It must never write to tracefs (it only reads), nor keep a CPU's pages in memory.

use anyhow::Context;
use mmreplay::record::{parse_trace_clock, Tracefs};
use mmreplay::tracedat_write::{self, CpuWritten, DatMeta, PageHeader};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Reads the metadata of a capture from the instance `inst` (formats, clock, per-CPU stats)
/// and the top level `top` (`saved_cmdlines`, `printk_formats`, which are global). Call it
/// after tracing stopped and before the instance is removed (kprobe formats go with it).
pub fn gather(
    top: &Tracefs,
    inst: &Tracefs,
    events: &[String],
    cpus: &[u32],
    kallsyms: Vec<u8>,
) -> anyhow::Result<DatMeta> {
    let big = |fs_: &Tracefs, rel: &str| -> anyhow::Result<Vec<u8>> {
        let p = fs_.path(rel);
        super::record::read_big(&p).with_context(|| format!("reading {}", p.display()))
    };
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
        meta.ftrace_formats
            .push(super::record::read_big(f).with_context(|| format!("reading {}", f.display()))?);
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
) -> anyhow::Result<(u64, Vec<(u32, CpuWritten)>)> {
    let header = PageHeader::parse(&meta.header_page);
    let page = meta.subbuf_size as usize;
    let results: Vec<anyhow::Result<(u32, PathBuf, CpuWritten)>> = std::thread::scope(|s| {
        let handles: Vec<_> = pages
            .iter()
            .map(|(cpu, p)| {
                s.spawn(move || -> anyhow::Result<(u32, PathBuf, CpuWritten)> {
                    let z = p.with_extension("zchunks");
                    let st = tracedat_write::compress_pages(p, &z, page, header, level)
                        .with_context(|| format!("compressing the pages of cpu{cpu}"))?;
                    let _ = fs::remove_file(p);
                    Ok((*cpu, z, st))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a compressor thread panicked")))
            })
            .collect()
    });
    let mut cpus = Vec::with_capacity(results.len());
    for r in results {
        cpus.push(r?);
    }
    cpus.sort_by_key(|c| c.0);
    let mut f = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let len = tracedat_write::write_dat(&mut f, out, meta, &cpus, level)?;
    f.sync_all()
        .with_context(|| format!("writing {}", out.display()))?;
    for (_, z, _) in &cpus {
        let _ = fs::remove_file(z);
    }
    Ok((len, cpus.into_iter().map(|(c, _, st)| (c, st)).collect()))
}
