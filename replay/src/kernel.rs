//! Which kernel made a capture, and what the model must therefore run as: the mechanics
//! (`KernelProfile`: migration flush batching, `mm_cpumask` maintenance, flush ceiling, CPUs)
//! and the kernel's own policy (the candidate behaviours that kernel already has), chosen from
//! the capture's `.meta.json` sidecar or from `--kernel X.Y`.
//!
//! Fidelity (`mmreplay fidelity`) runs the kernel's own policy under its profile; candidate
//! verdicts still compare against the pre-change `reference` policy under the same profile.
//!
//! It must never read the trace itself or decide model semantics: it only maps a kernel version
//! and its recorded sysfs settings to profile fields, each mapping citing the kernel change.

use std::path::Path;

use mmreplay_reference::profile::{Base, CpumaskMode, KernelProfile, LruKind};
use serde::Serialize;

/// Errors choosing a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("--kernel {0:?}: expected a kernel version MAJOR.MINOR such as 6.1 or 6.18")]
    BadVersion(String),
    #[error("{path}: not valid JSON ({detail})")]
    BadSidecar { path: String, detail: String },
}

/// Where the choice came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelSource {
    /// `--kernel X.Y`.
    Option,
    /// The sidecar's `kernel` object (release and sysfs settings).
    Sidecar,
    /// An older sidecar with only `kernel_release`.
    SidecarRelease,
    /// No sidecar, no option: the machine this project was built on (6.18).
    Default,
}

/// The capture's kernel: version, recorded settings, and what the model runs as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelChoice {
    /// `MAJOR.MINOR` the mechanics follow (e.g. "6.18").
    pub profile: String,
    /// `uname -r` when known.
    pub release: Option<String>,
    /// `/sys/kernel/mm/lru_gen/enabled` ("0x0007"); `None` when MGLRU is not built in or the
    /// capture did not record it.
    pub lru_gen_enabled: Option<String>,
    /// `/sys/kernel/mm/lru_gen/min_ttl_ms`.
    pub lru_gen_min_ttl_ms: Option<u64>,
    /// `/sys/kernel/mm/transparent_hugepage/enabled` (the selected mode).
    pub thp_enabled: Option<String>,
    /// `tlb_single_page_flush_ceiling` as recorded (x86 debugfs); 33 when not recorded.
    pub tlb_single_page_flush_ceiling: u64,
    /// Online CPUs as recorded.
    pub nr_cpus: Option<u32>,
    /// The kernel's own policy (registry spec) fidelity runs.
    pub own_policy: String,
    pub source: KernelSource,
}

/// The version this project's captures come from when nothing says otherwise.
pub const DEFAULT_VERSION: (u32, u32) = (6, 18);
/// x86 default `tlb_single_page_flush_ceiling` (`arch/x86/mm/tlb.c`).
pub const DEFAULT_FLUSH_CEILING: u64 = 33;

/// `MAJOR.MINOR` from a release string ("6.18.44-fc-v769", "6.1.0-37-amd64", "6.18").
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.trim().split(['.', '-', '+']);
    let major = it.next()?.parse().ok()?;
    let minor_txt: String = it
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor_txt.parse().ok()?))
}

impl KernelChoice {
    /// A bare version (`--kernel`, or a release without settings).
    pub fn for_version(v: (u32, u32), release: Option<String>, source: KernelSource) -> Self {
        KernelChoice {
            profile: format!("{}.{}", v.0, v.1),
            release,
            lru_gen_enabled: None,
            lru_gen_min_ttl_ms: None,
            thp_enabled: None,
            tlb_single_page_flush_ceiling: DEFAULT_FLUSH_CEILING,
            nr_cpus: None,
            own_policy: own_policy(v),
            source,
        }
    }

    /// `MAJOR.MINOR` of the profile.
    pub fn version(&self) -> (u32, u32) {
        parse_version(&self.profile).unwrap_or(DEFAULT_VERSION)
    }

    /// Whether MGLRU is known to be on (`lru_gen/enabled` bit 0, `LRU_GEN_CORE`).
    pub fn mglru_on(&self) -> Option<bool> {
        let t = self.lru_gen_enabled.as_deref()?;
        let t = t.trim();
        let v = match t.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok()?,
            None => t.parse().ok()?,
        };
        Some(v & 1 != 0)
    }

    /// The model's kernel profile for `nr_cpus` CPUs.
    pub fn profile(&self, nr_cpus: u32) -> KernelProfile {
        let v = self.version();
        let mut p = KernelProfile {
            nr_cpus,
            // 7e12beb8ca2a (v6.3, "migrate_pages: batch flushing TLB"): migrate_pages unmaps a
            // batch with TTU_BATCH_FLUSH and flushes once (try_to_unmap_flush) before moving;
            // 6.1 flushes each PTE as try_to_migrate_one clears it.
            base: if v >= (6, 3) { Base::Knew } else { Base::K61 },
            // 209954cbc7d0 + should_trim_cpumask (v6.14): switch_mm_irqs_off no longer clears
            // prev's mm_cpumask bit; a flush trims stale bits at most once a second. 6.1 clears
            // the bit at every switch to another mm.
            cpumask_mode: if v >= (6, 14) {
                CpumaskMode::TrimByFlush
            } else {
                CpumaskMode::ClearOnSwitch
            },
            flush_ceiling_pages: self.tlb_single_page_flush_ceiling,
            ..KernelProfile::default()
        };
        // lru_gen/enabled bit 1 (LRU_GEN_MM_WALK): page-table walks during aging.
        if let Some(bits) = self
            .lru_gen_enabled
            .as_deref()
            .and_then(|t| u32::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
        {
            p.lru_gen_mm_walk = bits & 2 != 0;
        }
        // MGLRU only where the capture says lru_gen was enabled; the classic two-list LRU
        // otherwise (no CONFIG_LRU_GEN, as on 6.18 here, or built in but off).
        p.lru = match self.mglru_on() {
            Some(true) => LruKind::Mglru {
                min_ttl_ms: self
                    .lru_gen_min_ttl_ms
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(0),
            },
            _ => LruKind::Classic,
        };
        p
    }

    /// The choice for `trace` (its sidecar `TRACE.meta.json`), unless `forced` names a version.
    /// A missing sidecar is not an error (the default kernel); an unreadable one is.
    pub fn choose(trace: Option<&str>, forced: Option<&str>) -> Result<Self, KernelError> {
        let sidecar = trace.map(|t| format!("{t}.meta.json"));
        // A compiled `.mmr` carries its capture's sidecar in its header.
        let embedded = trace.and_then(crate::sidecar::embedded);
        let meta = match &sidecar {
            Some(p) if Path::new(p).exists() || embedded.is_some() => {
                let text = match &embedded {
                    Some(t) if !Path::new(p).exists() => t.clone(),
                    _ => std::fs::read_to_string(p).map_err(|e| KernelError::BadSidecar {
                        path: p.clone(),
                        detail: e.to_string(),
                    })?,
                };
                Some(
                    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                        KernelError::BadSidecar {
                            path: p.clone(),
                            detail: e.to_string(),
                        }
                    })?,
                )
            }
            _ => None,
        };
        if let Some(f) = forced {
            let v = parse_version(f).ok_or_else(|| KernelError::BadVersion(f.to_string()))?;
            let mut k = KernelChoice::for_version(v, None, KernelSource::Option);
            // Settings of the capture still apply when its release matches the forced version.
            if let Some(m) = &meta {
                let rec = Self::from_meta(m);
                // The machine's CPU count is a fact of the capture whatever kernel the model
                // runs as (issue 19: `--kernel 6.1` on a 2-CPU capture had fallen back to 8).
                k.nr_cpus = rec.as_ref().and_then(|r| r.nr_cpus).or_else(|| {
                    m.get("cpus")
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                });
                if rec.as_ref().map(KernelChoice::version) == Some(v) {
                    if let Some(r) = rec {
                        k = KernelChoice {
                            source: KernelSource::Option,
                            ..r
                        };
                    }
                }
            }
            return Ok(k);
        }
        Ok(meta.as_ref().and_then(Self::from_meta).unwrap_or_else(|| {
            let mut k = KernelChoice::for_version(DEFAULT_VERSION, None, KernelSource::Default);
            // A sidecar without a kernel release still states the CPU count.
            k.nr_cpus = meta
                .as_ref()
                .and_then(|m| m.get("cpus"))
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok());
            k
        }))
    }

    /// The choice a sidecar describes (`kernel` object, else `kernel_release` and `cpus`).
    pub fn from_meta(m: &serde_json::Value) -> Option<Self> {
        let k = m.get("kernel").filter(|k| k.is_object());
        let release = k
            .and_then(|k| k.get("release"))
            .or_else(|| m.get("kernel_release"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)?;
        let v = parse_version(&release)?;
        let source = if k.is_some() {
            KernelSource::Sidecar
        } else {
            KernelSource::SidecarRelease
        };
        let mut c = KernelChoice::for_version(v, Some(release), source);
        let num = |o: Option<&serde_json::Value>| o.and_then(serde_json::Value::as_u64);
        c.nr_cpus = num(k.and_then(|k| k.get("nr_cpus")))
            .or_else(|| num(m.get("cpus")))
            .and_then(|n| u32::try_from(n).ok());
        if let Some(k) = k {
            c.lru_gen_enabled = k
                .get("lru_gen_enabled")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            c.lru_gen_min_ttl_ms = num(k.get("lru_gen_min_ttl_ms"));
            c.thp_enabled = k
                .get("thp_enabled")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            if let Some(n) = num(k.get("tlb_single_page_flush_ceiling")) {
                c.tlb_single_page_flush_ceiling = n;
            }
        }
        Some(c)
    }
}

/// The candidate behaviours kernel `v` already runs, as a registry spec. A/D bits kept across
/// migration (2e3468778dbe) are in 6.1 and 6.18; batched hugetlb unshare IPIs (8ce720d5bd91) in
/// 6.18 and backported to 6.1.167; look-around (018ee47f1489, v6.1) runs only when MGLRU is on,
/// and the combined `all` policy's look-around is inert when the LRU is classic. Every kernel
/// since 6.1 is therefore `all`; older ones are `reference` (no look-around, no A/D in
/// migration entries before 2e3468778dbe, v6.1).
pub fn own_policy(v: (u32, u32)) -> String {
    if v >= (6, 1) {
        "all".to_string()
    } else {
        "reference".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("6.18.44-fc-v769"), Some((6, 18)));
        assert_eq!(parse_version("6.1.0-37-amd64"), Some((6, 1)));
        assert_eq!(parse_version("6.1"), Some((6, 1)));
        assert_eq!(parse_version("6"), None);
        assert_eq!(parse_version("six.one"), None);
    }

    #[test]
    fn profiles_follow_the_version() {
        let k61 = KernelChoice::for_version((6, 1), None, KernelSource::Option).profile(2);
        assert_eq!(k61.base, Base::K61);
        assert_eq!(k61.cpumask_mode, CpumaskMode::ClearOnSwitch);
        let k618 = KernelChoice::for_version((6, 18), None, KernelSource::Option).profile(2);
        assert_eq!(k618.base, Base::Knew);
        assert_eq!(k618.cpumask_mode, CpumaskMode::TrimByFlush);
        assert_eq!(k618.nr_cpus, 2);
        assert_eq!(k618.flush_ceiling_pages, 33);
    }

    #[test]
    fn sidecar_kernel_object_wins_over_release() {
        let m: serde_json::Value = serde_json::json!({
            "kernel_release": "6.18.44",
            "cpus": 2,
            "kernel": {"release": "6.1.0-37-amd64", "lru_gen_enabled": "0x0005",
                       "lru_gen_min_ttl_ms": 0, "thp_enabled": "never",
                       "tlb_single_page_flush_ceiling": 7, "nr_cpus": 4}
        });
        let c = KernelChoice::from_meta(&m).expect("choice");
        assert_eq!(c.profile, "6.1");
        assert_eq!(c.source, KernelSource::Sidecar);
        assert_eq!(c.nr_cpus, Some(4));
        assert_eq!(c.mglru_on(), Some(true));
        let p = c.profile(4);
        assert_eq!(p.flush_ceiling_pages, 7);
        assert!(!p.lru_gen_mm_walk);
        let old = serde_json::json!({"kernel_release": "6.18.44-fc", "cpus": 2});
        let c = KernelChoice::from_meta(&old).expect("choice");
        assert_eq!((c.profile.as_str(), c.nr_cpus), ("6.18", Some(2)));
        assert_eq!(c.source, KernelSource::SidecarRelease);
        assert_eq!(c.mglru_on(), None);
        let absent = serde_json::json!({"kernel": {"release": "6.18.1", "lru_gen_enabled": null}});
        assert_eq!(
            KernelChoice::from_meta(&absent).and_then(|c| c.mglru_on()),
            None
        );
    }
}
