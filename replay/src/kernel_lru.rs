//! Which LRU the capture kernel reclaimed with, from the capture's `.meta.json` sidecar
//! (`mmreplay record`): `"kernel": {"lru_gen_enabled": "0x0007"}` (the value of
//! `/sys/kernel/mm/lru_gen/enabled`; `null` when the file is absent, i.e. no `CONFIG_LRU_GEN`),
//! else the `kernel_release`: every capture of this project's 6.18 machine predates that key,
//! and that kernel has no MGLRU. `replay --lru` overrides it. A capture whose sidecar says
//! nothing (none, stdin, `.mmr`, raw directories) gets the classic LRU: the kernel of every
//! corpus capture, and what most distribution kernels run (MGLRU built in but off), and the
//! same input in any format must give the same report. This module must never guess from
//! anything but the sidecar.

use mmreplay_reference::profile::LruKind;

/// The LRU of a capture whose sidecar says nothing.
pub const DEFAULT: LruKind = LruKind::Classic;

/// The LRU a sidecar describes, and why; `None` when it says nothing about it.
pub fn from_sidecar(text: &str) -> Option<(LruKind, &'static str)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if let Some(k) = v.get("kernel").and_then(|k| k.as_object()) {
        if let Some(e) = k.get("lru_gen_enabled") {
            let min_ttl_ms = k
                .get("lru_gen_min_ttl_ms")
                .and_then(|m| {
                    m.as_u64()
                        .or_else(|| m.as_str().and_then(|s| s.trim().parse().ok()))
                })
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(0);
            return Some(match e.as_str().and_then(parse_caps) {
                None if e.is_null() => (LruKind::Classic, "sidecar: no /sys/kernel/mm/lru_gen"),
                None => return None,
                Some(caps) if caps & 1 != 0 => {
                    (LruKind::Mglru { min_ttl_ms }, "sidecar: lru_gen enabled")
                }
                Some(_) => (LruKind::Classic, "sidecar: lru_gen built in but off"),
            });
        }
    }
    let release = v.get("kernel_release")?.as_str()?;
    release.starts_with("6.18").then_some((
        LruKind::Classic,
        "sidecar: 6.18 capture kernel (no CONFIG_LRU_GEN)",
    ))
}

/// `lru_gen/enabled` capability bits (`0x0007`, or `y`/`n` as written to it).
fn parse_caps(s: &str) -> Option<u32> {
    let s = s.trim();
    match s {
        "y" | "Y" => return Some(7),
        "n" | "N" => return Some(0),
        _ => {}
    }
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u32::from_str_radix(hex, 16).ok()
}

/// The LRU for the capture at `path` (its `PATH.meta.json`), or `DEFAULT`.
pub fn for_trace(path: &str) -> (LruKind, &'static str) {
    crate::sidecar::text_for(path)
        .and_then(|t| from_sidecar(&t))
        .unwrap_or((DEFAULT, "default (no sidecar says which)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_keys_choose_the_lru() {
        let k = |t: &str| from_sidecar(t).map(|x| x.0);
        assert_eq!(
            k(r#"{"kernel": {"lru_gen_enabled": null}}"#),
            Some(LruKind::Classic)
        );
        assert_eq!(
            k(r#"{"kernel": {"lru_gen_enabled": "0x0007", "lru_gen_min_ttl_ms": "1000"}}"#),
            Some(LruKind::Mglru { min_ttl_ms: 1000 })
        );
        assert_eq!(
            k(r#"{"kernel": {"lru_gen_enabled": "0x0000"}}"#),
            Some(LruKind::Classic)
        );
        assert_eq!(
            k(r#"{"kernel_release": "6.18.44-fc-v769"}"#),
            Some(LruKind::Classic)
        );
        assert_eq!(k(r#"{"kernel_release": "6.1.0-30-amd64"}"#), None);
        assert_eq!(k("not json"), None);
    }
}
