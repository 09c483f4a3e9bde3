//! Raw per-CPU ring-buffer pages saved from a live tracefs (`per_cpu/cpuN/trace_pipe_raw`) with
//! the live `events/*/format` files: the capture layout for `mmreplay record --raw`, which avoids
//! the kernel's text formatting cost.
//!
//! Expected layout of `DIR` (the recorder copies these from tracefs):
//! - `events/header_page` (required), `events/<system>/<event>/format` (one per enabled event;
//!   more is fine),
//! - `per_cpu/cpu<N>/trace_pipe_raw`: the whole pages read from that file, concatenated,
//! - optional `saved_cmdlines` (tracefs copy, for comms) and `kallsyms` (`/proc/kallsyms` copy, to
//!   classify IPI callbacks).
//!
//! Pages are in the recording host's byte order; the page size is header_page's data offset plus
//! data size. It must never follow symlinks out of `DIR` for writing (it only reads) and never
//! read files of unbounded count: only the layout above is looked at.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::backing::Backing;
use super::bytes::Endian;
use super::decode::Decoder;
use super::meta::{Kallsyms, Meta};
use super::pages::{CpuCursor, PageCtx, PageMerge};
use super::ringbuf::PageLayout;
use super::BinaryError;
use crate::record::Record;

fn read(path: &Path) -> Result<Vec<u8>, BinaryError> {
    std::fs::read(path).map_err(|e| BinaryError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

fn read_dir_sorted(path: &Path) -> Result<Vec<PathBuf>, BinaryError> {
    let rd = std::fs::read_dir(path).map_err(|e| BinaryError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// Loads the metadata of a raw capture directory.
pub fn load_meta(dir: &Path) -> Result<Meta, BinaryError> {
    let endian = if cfg!(target_endian = "big") {
        Endian::Big
    } else {
        Endian::Little
    };
    let events = dir.join("events");
    let hp = read(&events.join("header_page"))?;
    let mut meta = Meta::new(endian, 8, 4096);
    meta.set_header_page(&hp)?;
    if let Some(h) = meta.header_page {
        meta.long_size = h.commit_size as u8;
        meta.page_size = (h.data_offset + h.data_size) as u32;
    }
    for sys in read_dir_sorted(&events)? {
        if !sys.is_dir() {
            continue;
        }
        let sys_name = sys
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for ev in read_dir_sorted(&sys)? {
            let f = ev.join("format");
            if f.is_file() {
                let t = read(&f)?;
                meta.add_format(&t, &sys_name);
            }
        }
        meta.system_count += 1;
    }
    let cmd = dir.join("saved_cmdlines");
    if cmd.is_file() {
        meta.set_cmdlines(&read(&cmd)?);
    }
    let ks = dir.join("kallsyms");
    if ks.is_file() {
        meta.kallsyms = std::sync::Arc::new(Kallsyms::parse(&read(&ks)?));
    }
    Ok(meta)
}

/// Reads a raw capture directory into time-ordered records.
pub fn read_raw_dir(dir: &Path) -> Result<Vec<Record>, BinaryError> {
    read_raw_dir_with(dir, &super::ReadOptions::default())
}

/// [`read_raw_dir`] with options: `opts.kallsyms` is used when `DIR/kallsyms` is absent.
pub fn read_raw_dir_with(
    dir: &Path,
    opts: &super::ReadOptions,
) -> Result<Vec<Record>, BinaryError> {
    open_raw_dir(dir, opts)?.collect().map(|(r, _)| r)
}

/// The streaming reader of a raw capture directory: one cursor per CPU file (mapped), merged
/// lazily by timestamp.
pub(crate) fn open_raw_dir(
    dir: &Path,
    opts: &super::ReadOptions,
) -> Result<PageMerge, BinaryError> {
    let mut meta = load_meta(dir)?;
    if let Some(k) = opts.kallsyms.clone().filter(|_| meta.kallsyms.is_empty()) {
        meta.kallsyms = k;
    }
    let dec = Decoder::new(&meta);
    let header = meta.header_page.ok_or(BinaryError::Invalid {
        what: "raw capture",
        offset: 0,
        msg: "no header_page".into(),
    })?;
    let layout = PageLayout {
        header,
        page_size: meta.page_size as usize,
        endian: meta.endian,
    };
    let mut cpus: Vec<(u32, PathBuf)> = Vec::new();
    for p in read_dir_sorted(&dir.join("per_cpu"))? {
        let name = p
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(n) = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) {
            cpus.push((n, p.join("trace_pipe_raw")));
        }
    }
    cpus.sort();
    let mut cursors = Vec::new();
    for (cpu, path) in cpus {
        if !path.is_file() {
            continue;
        }
        let bytes = Arc::new(Backing::open(&path)?);
        let len = bytes.len() as u64;
        cursors.push(CpuCursor::plain(
            cpu,
            bytes,
            0,
            len,
            Some(path.display().to_string()),
        )?);
    }
    let ctx = PageCtx::new(dec, meta, layout, 0);
    Ok(PageMerge::new(ctx, cursors))
}
