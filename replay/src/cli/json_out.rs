//! `--json` output of every command: the `schema_version` / `command` envelope
//! (`mmreplay::json_schema`), one object per line, `--pretty` for people, and the replay
//! object's shared names (`cpus`, `input`, `filters`, `kernel`).

use mmreplay::input_report::InputReport;
use mmreplay::session::SessionOptions;
use serde_json::Value;

/// Print one JSON object (one line, or indented with `pretty`). A closed pipe ends quietly
/// (SIGPIPE is at its default, see `main`).
pub fn print(v: &Value, pretty: bool) -> anyhow::Result<()> {
    let s = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        serde_json::to_string(v)?
    };
    println!("{s}");
    Ok(())
}

/// Print `v` as the output of `command` (adds the envelope).
pub fn emit(command: &str, mut v: Value, pretty: bool) -> anyhow::Result<()> {
    mmreplay::json_schema::envelope(command, &mut v);
    print(&v, pretty)
}

/// The replay object's shared names: `cpus` (not `nr_cpus`), the input report, the applied
/// filters and the kernel the model ran as.
pub fn replay_json(v: &mut Value, input: &InputReport, o: &SessionOptions) {
    mmreplay::json_schema::envelope("replay", v);
    let Some(m) = v.as_object_mut() else { return };
    m.insert(
        "input".into(),
        serde_json::to_value(input).unwrap_or(Value::Null),
    );
    m.insert(
        "filters".into(),
        serde_json::to_value(&input.filters).unwrap_or(Value::Null),
    );
    if let Some(k) = &o.kernel {
        let mut kv = serde_json::to_value(k).unwrap_or(Value::Null);
        // The mechanics the model ran with, as `session::run` builds them (`--cpumask` and
        // `--lru` applied), as `fidelity` records them.
        let profile = mmreplay_reference::profile::KernelProfile {
            cpumask_mode: o.cpumask_mode,
            lru: mmreplay::session::effective_lru(o),
            ..k.profile(input.cpus)
        };
        if let Some(km) = kv.as_object_mut() {
            km.insert(
                "mechanics".into(),
                serde_json::to_value(&profile).unwrap_or(Value::Null),
            );
        }
        m.insert("kernel".into(), kv);
    }
    // `cpus` in the kernel object too.
    mmreplay::json_schema::envelope("replay", v);
}
