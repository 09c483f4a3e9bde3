//! What `mmreplay record` writes into a sidecar about the kernel that made a capture: its MM
//! settings (`"kernel"`), swap devices (`"swap"`) and the memory cgroup limit the workload ran
//! under (`"memcg"`). The replay side chooses a kernel profile from these, so the key names are
//! a contract (kept in step with `mmreplay fidelity`): `kernel.{release, lru_gen_enabled,
//! lru_gen_min_ttl_ms, thp_enabled, thp_defrag, tlb_single_page_flush_ceiling, nr_cpus}`,
//! `swap[].{path, type, size_kb}`, `memcg.{path, limit_bytes}`.
//!
//! Every reader takes its root directories as parameters so tests run on fake trees. A file
//! the running kernel lacks gives `null`, never a made-up default. What it must never do: write
//! anything, or fail a capture because a setting could not be read.

use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// The sidecar's `"kernel"` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelInfo {
    pub release: String,
    /// `/sys/kernel/mm/lru_gen/enabled` as read (`0x0007`, `0x0000`); `None` without MGLRU.
    pub lru_gen_enabled: Option<String>,
    /// `/sys/kernel/mm/lru_gen/min_ttl_ms`.
    pub lru_gen_min_ttl_ms: Option<u64>,
    /// The selected `transparent_hugepage/enabled` mode (`madvise`).
    pub thp_enabled: Option<String>,
    /// The selected `transparent_hugepage/defrag` mode.
    pub thp_defrag: Option<String>,
    /// debugfs `x86/tlb_single_page_flush_ceiling` (needs debugfs mounted).
    pub tlb_single_page_flush_ceiling: Option<u64>,
    pub nr_cpus: i64,
}

/// One line of `/proc/swaps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwapDev {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size_kb: u64,
}

/// The memory cgroup that limited the workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Memcg {
    /// Path inside the cgroup hierarchy (`/mmreplay-reclaim`).
    pub path: String,
    pub limit_bytes: u64,
}

/// Roots of the trees read (`/sys`, `/proc`, the debugfs and cgroup mount points).
#[derive(Clone, Debug)]
pub struct Roots {
    pub sys: PathBuf,
    pub proc_: PathBuf,
    pub debugfs: PathBuf,
    pub cgroup: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: "/sys".into(),
            proc_: "/proc".into(),
            debugfs: "/sys/kernel/debug".into(),
            cgroup: "/sys/fs/cgroup".into(),
        }
    }
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// The bracketed choice of a sysfs mode file (`always [madvise] never` → `madvise`); the whole
/// text when nothing is bracketed.
pub fn selected_mode(content: &str) -> String {
    let c = content.trim();
    match (c.find('['), c.find(']')) {
        (Some(a), Some(b)) if a < b => c[a + 1..b].to_string(),
        _ => c.to_string(),
    }
}

/// Parses `/proc/swaps` (`Filename Type Size Used Priority`, sizes in KiB).
pub fn parse_proc_swaps(content: &str) -> Vec<SwapDev> {
    content
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let path = f.next()?.to_string();
            let kind = f.next()?.to_string();
            let size_kb = f.next()?.parse().ok()?;
            Some(SwapDev {
                path,
                kind,
                size_kb,
            })
        })
        .collect()
}

impl Roots {
    pub fn kernel(&self, release: String, nr_cpus: i64) -> KernelInfo {
        let mm = self.sys.join("kernel/mm");
        KernelInfo {
            release,
            lru_gen_enabled: read_trim(&mm.join("lru_gen/enabled")),
            lru_gen_min_ttl_ms: read_trim(&mm.join("lru_gen/min_ttl_ms"))
                .and_then(|s| s.parse().ok()),
            thp_enabled: read_trim(&mm.join("transparent_hugepage/enabled"))
                .map(|s| selected_mode(&s)),
            thp_defrag: read_trim(&mm.join("transparent_hugepage/defrag"))
                .map(|s| selected_mode(&s)),
            tlb_single_page_flush_ceiling: read_trim(
                &self.debugfs.join("x86/tlb_single_page_flush_ceiling"),
            )
            .and_then(|s| s.parse().ok()),
            nr_cpus,
        }
    }

    pub fn swaps(&self) -> Vec<SwapDev> {
        fs::read_to_string(self.proc_.join("swaps"))
            .map(|c| parse_proc_swaps(&c))
            .unwrap_or_default()
    }

    /// The memory cgroup path of `pid` (`/proc/PID/cgroup`): the v2 line `0::PATH`, else the
    /// v1 `memory` controller's line. `(path, v2)`.
    pub fn cgroup_of(&self, pid: u32) -> Option<(String, bool)> {
        let c = fs::read_to_string(self.proc_.join(format!("{pid}/cgroup"))).ok()?;
        parse_proc_cgroup(&c)
    }

    /// The nearest limited memcg at or above `path`: cgroup v2 `memory.max` (not `max`), or
    /// v1 `memory.limit_in_bytes` below the "unlimited" value (`PAGE_COUNTER_MAX` pages).
    pub fn memcg_limit(&self, path: &str, v2: bool) -> Option<Memcg> {
        let base = if v2 {
            self.cgroup.clone()
        } else {
            self.cgroup.join("memory")
        };
        let mut p = path.trim_end_matches('/').to_string();
        loop {
            let dir = base.join(p.trim_start_matches('/'));
            let limit = if v2 {
                read_trim(&dir.join("memory.max")).and_then(|s| s.parse::<u64>().ok())
            } else {
                read_trim(&dir.join("memory.limit_in_bytes"))
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|&l| l < (1 << 62))
            };
            if let Some(limit_bytes) = limit {
                return Some(Memcg {
                    path: if p.is_empty() { "/".into() } else { p },
                    limit_bytes,
                });
            }
            match p.rfind('/') {
                Some(i) if !p.is_empty() => p.truncate(i),
                _ => return None,
            }
        }
    }
}

/// `(path, v2)` from `/proc/PID/cgroup` text.
pub fn parse_proc_cgroup(content: &str) -> Option<(String, bool)> {
    let mut v2 = None;
    for l in content.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        if ctrl.split(',').any(|c| c == "memory") {
            return Some((path.to_string(), false));
        }
        if ctrl.is_empty() {
            v2 = Some((path.to_string(), true));
        }
    }
    v2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (PathBuf, Roots) {
        let d = std::env::temp_dir().join(format!(
            "mmreplay-sysinfo-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        let r = Roots {
            sys: d.join("sys"),
            proc_: d.join("proc"),
            debugfs: d.join("debug"),
            cgroup: d.join("cgroup"),
        };
        (d, r)
    }

    fn w(p: PathBuf, v: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, v).unwrap();
    }

    #[test]
    fn kernel_settings_and_absent_files() {
        let (d, r) = tree();
        // A 6.18-like tree: no lru_gen, no debugfs.
        w(
            r.sys.join("kernel/mm/transparent_hugepage/enabled"),
            "always [madvise] never\n",
        );
        let k = r.kernel("6.18.44".into(), 2);
        assert_eq!(k.lru_gen_enabled, None);
        assert_eq!(k.lru_gen_min_ttl_ms, None);
        assert_eq!(k.tlb_single_page_flush_ceiling, None);
        assert_eq!(k.thp_enabled.as_deref(), Some("madvise"));
        assert_eq!(k.thp_defrag, None);
        // A 6.1 guest with MGLRU on.
        w(r.sys.join("kernel/mm/lru_gen/enabled"), "0x0007\n");
        w(r.sys.join("kernel/mm/lru_gen/min_ttl_ms"), "0\n");
        w(
            r.sys.join("kernel/mm/transparent_hugepage/defrag"),
            "always defer defer+madvise [madvise] never\n",
        );
        w(r.debugfs.join("x86/tlb_single_page_flush_ceiling"), "33\n");
        let k = r.kernel("6.1.0-57-amd64".into(), 2);
        assert_eq!(k.lru_gen_enabled.as_deref(), Some("0x0007"));
        assert_eq!(k.lru_gen_min_ttl_ms, Some(0));
        assert_eq!(k.thp_defrag.as_deref(), Some("madvise"));
        assert_eq!(k.tlb_single_page_flush_ceiling, Some(33));
        let j = serde_json::to_value(&k).unwrap();
        for key in [
            "release",
            "lru_gen_enabled",
            "lru_gen_min_ttl_ms",
            "thp_enabled",
            "thp_defrag",
            "tlb_single_page_flush_ceiling",
            "nr_cpus",
        ] {
            assert!(j.get(key).is_some(), "{key} missing");
        }
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn swaps_and_memcg_limits() {
        let s = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/dev/vda                                partition\t262140\t\t0\t\t-2\n\
/swapfile                               file\t\t2097148\t\t1024\t\t-3\n";
        let v = parse_proc_swaps(s);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].path, "/dev/vda");
        assert_eq!(v[0].kind, "partition");
        assert_eq!(v[1].size_kb, 2_097_148);
        assert_eq!(
            serde_json::to_value(&v[0]).unwrap()["type"],
            serde_json::json!("partition")
        );

        assert_eq!(
            parse_proc_cgroup("0::/mmreplay/w\n"),
            Some(("/mmreplay/w".into(), true))
        );
        assert_eq!(
            parse_proc_cgroup("12:cpu,cpuacct:/x\n7:memory:/m\n0::/\n"),
            Some(("/m".into(), false))
        );

        let (d, r) = tree();
        // v2: the workload's own group is unlimited; its parent has the limit.
        w(r.cgroup.join("mmreplay/memory.max"), "33554432\n");
        w(r.cgroup.join("mmreplay/w/memory.max"), "max\n");
        assert_eq!(
            r.memcg_limit("/mmreplay/w", true),
            Some(Memcg {
                path: "/mmreplay".into(),
                limit_bytes: 32 << 20
            })
        );
        w(r.cgroup.join("free/memory.max"), "max\n");
        assert_eq!(r.memcg_limit("/free", true), None);
        // v1: the "unlimited" value is not a limit.
        w(
            r.cgroup.join("memory/g/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        assert_eq!(r.memcg_limit("/g", false), None);
        w(
            r.cgroup.join("memory/g/memory.limit_in_bytes"),
            "33554432\n",
        );
        assert_eq!(r.memcg_limit("/g", false).unwrap().limit_bytes, 32 << 20);
        let _ = fs::remove_dir_all(d);
    }
}
