//! The `.meta.json` sidecar `mmreplay record` writes beside a capture: the facts replay takes
//! from it. It must never guess a fact the sidecar does not hold: a missing one is an error that
//! names the file.

use anyhow::Context as _;

/// `workload_pid` of a sidecar's text (`name` is the file, for messages).
pub fn workload_pid_of(name: &str, text: &str) -> anyhow::Result<i32> {
    let v: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("--workload: {name}: not valid JSON"))?;
    v.get("workload_pid")
        .and_then(serde_json::Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
        .with_context(|| format!("--workload: {name}: expected a positive integer `workload_pid`"))
}

/// `workload_pid` from the sidecar of the capture at `trace` (`TRACE.meta.json`).
pub fn workload_pid(trace: &str) -> anyhow::Result<i32> {
    let name = format!("{trace}.meta.json");
    if let Some(text) = std::fs::read_to_string(&name)
        .ok()
        .or_else(|| embedded(trace))
    {
        return workload_pid_of(&name, &text);
    }
    let text = std::fs::read_to_string(&name).with_context(|| {
        format!("--workload: cannot read {name} (the sidecar `mmreplay record` writes); use --pid instead")
    })?;
    workload_pid_of(&name, &text)
}

/// The sidecar a compiled `.mmr` at `trace` carries (`mmreplay compile` stores the capture's
/// `.meta.json` in its header), or `None` when `trace` is not a compiled file or has none.
pub fn embedded(trace: &str) -> Option<String> {
    mmreplay_parsers::mmr::header_of(trace)?.sidecar
}

/// The sidecar text for `trace`: `TRACE.meta.json` beside it, else the one a compiled file
/// carries.
pub fn text_for(trace: &str) -> Option<String> {
    std::fs::read_to_string(format!("{trace}.meta.json"))
        .ok()
        .or_else(|| embedded(trace))
}
