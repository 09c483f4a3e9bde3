//! Process snapshot (`<trace>.procs.zst`): the address spaces of the processes that exist when
//! `mmreplay record` starts, so that a replay can place what the capture does to them
//! (compaction migrating their pages, reclaim evicting them) although no event announced them.
//!
//! Per user process (kernel threads, which have no mm, are skipped): its threads with the CPU
//! each last ran on (`/proc/PID/task/TID/stat` field 39), its VMAs (`/proc/PID/maps`) and its
//! present or swapped pages (`/proc/PID/pagemap`: present, swapped, exclusively mapped, the pfn
//! when root) with their `/proc/kpageflags` (LRU, active, referenced, THP, hugetlb...).
//! Stored as one zstd-compressed JSON document with a `version`; bounded by [`Caps`], and what
//! was capped is recorded in it. It must never stop a recording: a process that exits or
//! cannot be read while it is walked is counted and skipped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Format version of [`ProcSnap`].
pub const VERSION: u32 = 1;

/// `/proc/kpageflags` bits (include/uapi/linux/kernel-page-flags.h) kept per page.
pub mod kpf {
    /// KPF_REFERENCED.
    pub const REFERENCED: u64 = 1 << 2;
    /// KPF_LRU.
    pub const LRU: u64 = 1 << 5;
    /// KPF_ACTIVE.
    pub const ACTIVE: u64 = 1 << 6;
    /// KPF_ANON.
    pub const ANON: u64 = 1 << 12;
    /// KPF_THP.
    pub const THP: u64 = 1 << 22;
    /// KPF_HUGE (hugetlb).
    pub const HUGE: u64 = 1 << 17;
    /// The bits kept.
    pub const KEPT: u64 = REFERENCED | LRU | ACTIVE | ANON | THP | HUGE;
}

/// Size bounds of a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Pages kept per process (present or swapped), lowest addresses first.
    pub pages_per_process: usize,
    /// Pages kept in all.
    pub pages_total: usize,
    /// Virtual address space scanned per VMA (larger VMAs are scanned up to this).
    pub vma_scan_bytes: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            pages_per_process: 1 << 16,
            pages_total: 1 << 20,
            vma_scan_bytes: 4 << 30,
        }
    }
}

/// One thread: id and the CPU it last ran on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSnap {
    /// Thread id.
    pub tid: i32,
    /// `processor` of `/proc/PID/task/TID/stat`.
    pub last_cpu: u32,
}

/// One VMA, as `/proc/PID/maps` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmaSnap {
    /// Start address.
    pub start: u64,
    /// End address.
    pub end: u64,
    /// `PROT_*` bits from `rwx`.
    pub prot: u32,
    /// `s` (shared) rather than `p`.
    pub shared: bool,
    /// File offset in bytes.
    pub offset: u64,
    /// Inode number (0: anonymous).
    pub inode: u64,
    /// Path or pseudo-name (`[heap]`, `[stack]`, empty for anonymous).
    pub path: String,
}

/// One page with something in its PTE. Stored as `[va, pfn, bits]` (bit 0 present, 1
/// swapped, 2 exclusive, the kpageflags shifted left by 8) to keep the file small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "[u64; 3]", from = "[u64; 3]")]
pub struct PageSnap {
    /// Virtual address.
    pub va: u64,
    /// Page frame number (0 when swapped or not readable).
    pub pfn: u64,
    /// pagemap bit 63.
    pub present: bool,
    /// pagemap bit 62.
    pub swapped: bool,
    /// pagemap bit 56 (page exclusively mapped).
    pub exclusive: bool,
    /// `/proc/kpageflags` of the pfn, masked to [`kpf::KEPT`].
    pub flags: u64,
}

impl From<PageSnap> for [u64; 3] {
    fn from(p: PageSnap) -> [u64; 3] {
        let bits = u64::from(p.present)
            | u64::from(p.swapped) << 1
            | u64::from(p.exclusive) << 2
            | (p.flags & kpf::KEPT) << 8;
        [p.va, p.pfn, bits]
    }
}

impl From<[u64; 3]> for PageSnap {
    fn from([va, pfn, bits]: [u64; 3]) -> PageSnap {
        PageSnap {
            va,
            pfn,
            present: bits & 1 != 0,
            swapped: bits & 2 != 0,
            exclusive: bits & 4 != 0,
            flags: (bits >> 8) & kpf::KEPT,
        }
    }
}

/// One process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSnap {
    /// Process id (tgid).
    pub pid: i32,
    /// `comm`.
    pub comm: String,
    /// Its threads.
    pub threads: Vec<ThreadSnap>,
    /// Its VMAs, by address.
    pub vmas: Vec<VmaSnap>,
    /// Its pages, by address (at most `Caps::pages_per_process`).
    pub pages: Vec<PageSnap>,
    /// Pages left out by the caps.
    pub pages_capped: u64,
}

/// What the caps and the walk left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Kernel threads (no mm).
    pub kernel_threads: u64,
    /// Processes gone or unreadable while walked.
    pub unreadable: u64,
    /// Pages left out by the per-process or total cap.
    pub pages_capped: u64,
    /// VMAs scanned only up to `Caps::vma_scan_bytes`.
    pub vmas_truncated: u64,
}

/// A snapshot of every user process's address space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSnap {
    /// [`VERSION`].
    pub version: u32,
    /// The caps it was taken with.
    pub pages_per_process: u64,
    /// Total page cap.
    pub pages_total: u64,
    /// Processes, by pid.
    pub processes: Vec<ProcessSnap>,
    /// What was left out.
    pub skipped: Skipped,
}

/// Errors reading a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum ProcSnapError {
    /// I/O.
    #[error("{}: cannot read, because: {source}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not JSON of the expected shape.
    #[error("{}: not a process snapshot, because: {source}", path.display())]
    Format {
        /// File.
        path: PathBuf,
        /// Cause (line and column inside the decompressed JSON).
        source: serde_json::Error,
    },
    /// A version this build does not read.
    #[error("{path}: process snapshot version {found}, expected {VERSION}")]
    Version {
        /// File.
        path: PathBuf,
        /// Version found.
        found: u32,
    },
}

/// The snapshot file that belongs to a trace: `<trace>.procs.zst`.
pub fn path_for(trace: &Path) -> PathBuf {
    let mut p = trace.as_os_str().to_owned();
    p.push(".procs.zst");
    PathBuf::from(p)
}

/// Read a snapshot written by [`ProcSnap::to_zst`].
pub fn load(path: &Path) -> Result<ProcSnap, ProcSnapError> {
    let io = |source| ProcSnapError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    let bytes = zstd::decode_all(f).map_err(io)?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| ProcSnapError::Format {
            path: path.to_path_buf(),
            source,
        })?;
    let found = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0) as u32;
    if found != VERSION {
        return Err(ProcSnapError::Version {
            path: path.to_path_buf(),
            found,
        });
    }
    serde_json::from_value(v).map_err(|source| ProcSnapError::Format {
        path: path.to_path_buf(),
        source,
    })
}

impl ProcSnap {
    /// Compressed bytes to write next to the trace.
    pub fn to_zst(&self, level: i32) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        zstd::encode_all(&json[..], level)
    }

    /// Pages kept in all.
    pub fn nr_pages(&self) -> u64 {
        self.processes.iter().map(|p| p.pages.len() as u64).sum()
    }
}

/// Parse one `/proc/PID/maps` line.
pub fn parse_maps_line(line: &str) -> Option<VmaSnap> {
    let mut it = line.split_ascii_whitespace();
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let inode: u64 = it.next()?.parse().ok()?;
    let path = it.collect::<Vec<_>>().join(" ");
    let (s, e) = range.split_once('-')?;
    let start = u64::from_str_radix(s, 16).ok()?;
    let end = u64::from_str_radix(e, 16).ok()?;
    if start >= end || perms.len() < 4 {
        return None;
    }
    let bit = |i: usize, c: u8, v: u32| if perms.get(i) == Some(&c) { v } else { 0 };
    Some(VmaSnap {
        start,
        end,
        prot: bit(0, b'r', 1) | bit(1, b'w', 2) | bit(2, b'x', 4),
        shared: perms.get(3) == Some(&b's'),
        offset,
        inode,
        path,
    })
}

/// `processor` (field 39) of a `/proc/PID/task/TID/stat` line (the comm may hold spaces and
/// parentheses: fields are counted after the last `)`).
pub fn parse_stat_processor(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the comm; 39 is the 37th.
    rest.split_ascii_whitespace().nth(36)?.parse().ok()
}

/// One pagemap entry → (present, swapped, exclusive, pfn).
pub fn decode_pagemap(e: u64) -> (bool, bool, bool, u64) {
    let present = e & (1 << 63) != 0;
    let swapped = e & (1 << 62) != 0;
    let exclusive = e & (1 << 56) != 0;
    let pfn = if present { e & ((1 << 55) - 1) } else { 0 };
    (present, swapped, exclusive, pfn)
}

fn read_at(f: &mut File, off: u64, buf: &mut [u8]) -> bool {
    f.seek(SeekFrom::Start(off)).is_ok() && f.read_exact(buf).is_ok()
}

/// Snapshot every user process under `proc_dir` (normally `/proc`) but `except` (the recorder).
pub fn take(proc_dir: &Path, caps: Caps, except: &[i32]) -> ProcSnap {
    let mut pids: Vec<i32> = std::fs::read_dir(proc_dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    let mut kflags = File::open(proc_dir.join("kpageflags")).ok();
    let mut snap = ProcSnap {
        version: VERSION,
        pages_per_process: caps.pages_per_process as u64,
        pages_total: caps.pages_total as u64,
        processes: Vec::new(),
        skipped: Skipped::default(),
    };
    let mut total = 0usize;
    for pid in pids {
        if except.contains(&pid) {
            continue;
        }
        let dir = proc_dir.join(pid.to_string());
        let Ok(maps) = std::fs::read_to_string(dir.join("maps")) else {
            snap.skipped.unreadable += 1;
            continue;
        };
        let vmas: Vec<VmaSnap> = maps.lines().filter_map(parse_maps_line).collect();
        if vmas.is_empty() {
            snap.skipped.kernel_threads += 1;
            continue;
        }
        let comm = std::fs::read_to_string(dir.join("comm"))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        let mut threads: Vec<ThreadSnap> = std::fs::read_dir(dir.join("task"))
            .map(|d| {
                d.filter_map(|e| {
                    let tid = e.ok()?.file_name().to_str()?.parse::<i32>().ok()?;
                    let stat =
                        std::fs::read_to_string(dir.join(format!("task/{tid}/stat"))).ok()?;
                    Some(ThreadSnap {
                        tid,
                        last_cpu: parse_stat_processor(&stat)?,
                    })
                })
                .collect()
            })
            .unwrap_or_default();
        threads.sort_unstable_by_key(|t| t.tid);
        let mut p = ProcessSnap {
            pid,
            comm,
            threads,
            vmas,
            pages: Vec::new(),
            pages_capped: 0,
        };
        if let Ok(mut pm) = File::open(dir.join("pagemap")) {
            let mut buf = vec![0u8; 8 * 512];
            for v in &p.vmas {
                let mut end = v.end;
                if end - v.start > caps.vma_scan_bytes {
                    end = v.start + caps.vma_scan_bytes;
                    snap.skipped.vmas_truncated += 1;
                }
                let mut va = v.start;
                while va < end {
                    let n = (((end - va) >> 12) as usize).min(512);
                    let Some(chunk) = buf.get_mut(..8 * n) else {
                        break;
                    };
                    if !read_at(&mut pm, (va >> 12) * 8, chunk) {
                        break;
                    }
                    for (i, e) in chunk.chunks_exact(8).enumerate() {
                        let e = u64::from_le_bytes(e.try_into().unwrap_or([0; 8]));
                        let (present, swapped, exclusive, pfn) = decode_pagemap(e);
                        if !present && !swapped {
                            continue;
                        }
                        if p.pages.len() >= caps.pages_per_process || total >= caps.pages_total {
                            p.pages_capped += 1;
                            continue;
                        }
                        let mut flags = 0;
                        if let (Some(k), true) = (kflags.as_mut(), pfn != 0) {
                            let mut b = [0u8; 8];
                            if read_at(k, pfn * 8, &mut b) {
                                flags = u64::from_le_bytes(b) & kpf::KEPT;
                            }
                        }
                        p.pages.push(PageSnap {
                            va: va + ((i as u64) << 12),
                            pfn,
                            present,
                            swapped,
                            exclusive,
                            flags,
                        });
                        total += 1;
                    }
                    va += (n as u64) << 12;
                }
            }
        } else {
            snap.skipped.unreadable += 1;
        }
        snap.skipped.pages_capped += p.pages_capped;
        snap.processes.push(p);
    }
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let v = parse_maps_line("7f9c54181000-7f9c54981000 rw-p 00000000 00:00 0 ").expect("anon");
        assert_eq!(
            (v.start, v.end, v.prot, v.shared, v.inode),
            (0x7f9c54181000, 0x7f9c54981000, 3, false, 0)
        );
        let v = parse_maps_line(
            "55f07782c000-55f07782d000 r-xs 00002000 fd:01 1234   /usr/bin/with space",
        )
        .expect("file");
        assert_eq!(
            (v.prot, v.shared, v.offset, v.inode),
            (5, true, 0x2000, 1234)
        );
        assert_eq!(v.path, "/usr/bin/with space");
        assert!(parse_maps_line("garbage").is_none());
        assert!(parse_maps_line("2000-1000 rw-p 0 00:00 0").is_none());
    }

    #[test]
    fn stat_processor_is_field_39_after_the_comm() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = "S".into();
        let line = format!("42 (a) b (c)) {}", fields.join(" "));
        assert_eq!(parse_stat_processor(&line), Some(39));
        assert_eq!(parse_stat_processor("42 (x) S 1"), None);
    }

    #[test]
    fn pagemap_bits() {
        let e = (1u64 << 63) | (1 << 56) | 0x1234;
        assert_eq!(decode_pagemap(e), (true, false, true, 0x1234));
        assert_eq!(decode_pagemap(1 << 62 | 0x55), (false, true, false, 0));
    }

    #[test]
    fn round_trip_and_version_check() {
        let snap = ProcSnap {
            version: VERSION,
            pages_per_process: 1,
            pages_total: 1,
            processes: vec![ProcessSnap {
                pid: 7,
                comm: "x".into(),
                threads: vec![ThreadSnap {
                    tid: 7,
                    last_cpu: 1,
                }],
                vmas: vec![],
                pages: vec![PageSnap {
                    va: 0x7f00_0000_1000,
                    pfn: 0x1234,
                    present: true,
                    swapped: false,
                    exclusive: true,
                    flags: kpf::ANON | kpf::THP,
                }],
                pages_capped: 3,
            }],
            skipped: Skipped::default(),
        };
        let dir = std::env::temp_dir().join(format!("procsnap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("t.procs.zst");
        std::fs::write(&p, snap.to_zst(3).expect("zst")).expect("write");
        assert_eq!(load(&p).expect("load"), snap);
        let mut old = snap.clone();
        old.version = 0;
        std::fs::write(&p, old.to_zst(3).expect("zst")).expect("write");
        let e = load(&p).expect_err("version 0");
        assert!(e.to_string().contains("version 0, expected 1"), "{e}");
        std::fs::write(&p, zstd::encode_all(&b"{"[..], 3).expect("zst")).expect("write");
        assert!(matches!(load(&p), Err(ProcSnapError::Format { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn takes_this_process_with_its_pages() {
        // A live walk of /proc: this test process is a user process with present pages.
        let me = std::process::id() as i32;
        let snap = take(Path::new("/proc"), Caps::default(), &[]);
        let p = snap
            .processes
            .iter()
            .find(|p| p.pid == me)
            .expect("this process is in the snapshot");
        assert!(!p.vmas.is_empty() && !p.pages.is_empty());
        assert!(p.threads.iter().any(|t| t.tid == me));
        // Pages lie inside VMAs and are sorted per VMA walk.
        assert!(p
            .pages
            .iter()
            .all(|g| p.vmas.iter().any(|v| v.start <= g.va && g.va < v.end)));
        // Caps hold.
        let small = Caps {
            pages_per_process: 4,
            pages_total: 10,
            vma_scan_bytes: 1 << 30,
        };
        let snap = take(Path::new("/proc"), small, &[]);
        assert!(snap.nr_pages() <= 10);
        assert!(snap.processes.iter().all(|p| p.pages.len() <= 4));
        assert!(snap.skipped.pages_capped > 0);
    }
}
