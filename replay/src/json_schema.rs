//! The one JSON schema of every `--json` output: each object carries `schema_version` and
//! `command`; keys are snake_case without spaces; numbers are numbers; the same fact has the
//! same name in every command (`cpus`, `format`, verdict spellings). `schema()` builds the
//! JSON Schema (draft 2020-12) published as `docs/schema/mmreplay.schema.json`
//! (`mmreplay schema` prints it; a test fails when the file is stale) and `validate` checks a
//! value against it (the subset of JSON Schema the schema uses), so the tests can check real
//! outputs of every command without a validator crate.
//!
//! It must never change an output's values, only add the envelope; bump `SCHEMA_VERSION`
//! whenever a key is renamed or removed.

use mmreplay_candidates::verdict::Verdict;
use serde_json::{json, Value};

/// Version of the JSON outputs. 1: first versioned schema (issue 19).
pub const SCHEMA_VERSION: u64 = 1;

/// Add `schema_version` and `command` to an output object, and apply the naming rule every
/// output shares: a CPU count is `cpus` (the model's `KernelProfile` and the capture kernel's
/// choice say `nr_cpus` internally).
pub fn envelope(command: &str, v: &mut Value) {
    rename_key(v, "nr_cpus", "cpus");
    // The model's `KernelProfile` serialises its enums in Rust spelling (`TrimByFlush`,
    // `{"Mglru": ..}`); outputs spell them snake_case like every other value.
    if let Some(m) = v.get_mut("kernel").and_then(|k| k.get_mut("mechanics")) {
        snake_case_all(m);
    }
    if let Some(m) = v.as_object_mut() {
        m.insert("schema_version".into(), json!(SCHEMA_VERSION));
        m.insert("command".into(), json!(command));
    }
}

/// A map key from a free text (a kernel's TLB flush reason): lower case, every run of other
/// characters one `_` (`remote IPI send` → `remote_ipi_send`).
pub fn key_of(text: &str) -> String {
    let mut k = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            k.push(c.to_ascii_lowercase());
        } else if !k.ends_with('_') {
            k.push('_');
        }
    }
    let k = k.trim_matches('_');
    if k.is_empty() {
        "unnamed".to_string()
    } else {
        k.to_string()
    }
}

/// `TrimByFlush` → `trim_by_flush`, `K61` → `k61`; snake_case stays as it is.
pub fn snake(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !o.ends_with('_') {
                o.push('_');
            }
            o.push(c.to_ascii_lowercase());
        } else {
            o.push(c);
        }
    }
    o
}

/// [`snake`] on every key and string value of `v`.
fn snake_case_all(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let old = std::mem::take(m);
            for (k, mut x) in old {
                snake_case_all(&mut x);
                m.insert(snake(&k), x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(snake_case_all),
        Value::String(t) => *t = snake(t),
        _ => {}
    }
}

/// Rename `from` to `to` in every object of `v` (not where `to` is already a key).
fn rename_key(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(m) => {
            if !m.contains_key(to) {
                if let Some(x) = m.remove(from) {
                    m.insert(to.to_string(), x);
                }
            }
            for x in m.values_mut() {
                rename_key(x, from, to);
            }
        }
        Value::Array(a) => {
            for x in a {
                rename_key(x, from, to);
            }
        }
        _ => {}
    }
}

/// The subcommands whose `--json` output the schema describes (all that have one).
pub const COMMANDS: &[&str] = &[
    "stats", "replay", "fidelity", "report", "diff", "compile", "policies", "check", "minimize",
    "merge", "bench", "record",
];

/// A map of counts by name (`{"name": 12}`).
fn counts() -> Value {
    json!({ "type": "object", "additionalProperties": { "$ref": "#/$defs/count" } })
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

/// One command's object: the envelope plus its own required keys.
fn command(name: &str, required: &[&str], props: Value) -> Value {
    let mut req: Vec<&str> = vec!["schema_version", "command"];
    req.extend_from_slice(required);
    let mut p = props;
    if let Some(m) = p.as_object_mut() {
        m.insert("schema_version".into(), json!({ "const": SCHEMA_VERSION }));
        m.insert("command".into(), json!({ "const": name }));
    }
    let mut o = obj(&req, p);
    if let Some(m) = o.as_object_mut() {
        m.insert("title".into(), json!(format!("mmreplay {name} --json")));
    }
    o
}

/// `$defs/bench_decode`: the decode figures of `mmreplay bench` (`DecodeFigures`).
fn bench_decode_def() -> Value {
    let num = json!({ "type": "number", "minimum": 0 });
    let opt_num = json!({ "type": ["number", "null"], "minimum": 0 });
    let proc_def = obj(
        &["command", "runs", "cpu_s", "wall_s", "peak_rss_kb"],
        json!({
            "command": { "type": "string" },
            "runs": { "type": "array", "items": obj(&["cpu_s", "wall_s", "peak_rss_kb"], json!({
                "cpu_s": num, "wall_s": num, "peak_rss_kb": { "$ref": "#/$defs/count" }
            })) },
            "cpu_s": num, "wall_s": num, "peak_rss_kb": { "$ref": "#/$defs/count" }
        }),
    );
    let mut baseline = proc_def.clone();
    if let Some(m) = baseline.as_object_mut() {
        m.insert("type".into(), json!(["object", "null"]));
    }
    let mut d = obj(
        &[
            "trace",
            "format",
            "bytes",
            "records",
            "mmreplay",
            "baseline",
            "baseline_missing",
            "events_per_s",
            "baseline_events_per_s",
            "speedup",
            "speedup_min",
            "speedup_max",
            "mb_per_s",
            "baseline_mb_per_s",
            "rss_ratio",
        ],
        json!({
            "trace": { "type": "string" }, "format": { "type": "string" },
            "bytes": { "$ref": "#/$defs/count" }, "records": { "$ref": "#/$defs/count" },
            "mmreplay": proc_def, "baseline": baseline,
            "baseline_missing": { "type": ["string", "null"] },
            "events_per_s": num, "baseline_events_per_s": opt_num,
            "speedup": opt_num, "speedup_min": opt_num, "speedup_max": opt_num,
            "mb_per_s": opt_num, "baseline_mb_per_s": opt_num, "rss_ratio": opt_num
        }),
    );
    if let Some(m) = d.as_object_mut() {
        m.insert("additionalProperties".into(), json!(false));
    }
    d
}

/// `$defs/input`: the input report (`mmreplay::input_report::InputReport`).
fn input_def() -> Value {
    json!({
        "type": "object",
        "required": ["cpus", "cpus_source", "kernel", "kernel_source", "clock", "clock_source", "filters", "filtered_out", "matched", "lost", "parse"],
        "properties": {
            "cpus": { "type": "integer", "minimum": 1 },
            "cpus_source": { "$ref": "#/$defs/fact_source" },
            "clock": { "type": ["string", "null"] },
            "clock_source": { "$ref": "#/$defs/fact_source" },
            "kernel": { "type": ["string", "null"] },
            "kernel_source": { "$ref": "#/$defs/fact_source" },
            "filters": { "$ref": "#/$defs/filters" },
            "filtered_out": { "$ref": "#/$defs/count" },
            "matched": { "$ref": "#/$defs/count" },
            "lost": { "$ref": "#/$defs/lost" },
            "parse": {
                "type": "object",
                "required": ["lines", "unparsed_lines", "unparsed_by_kind", "unparsed_payload_by_event", "skipped_lines", "skipped_by_kind", "out_of_order", "max_lag_ns", "first_unparsed"],
                "properties": {
                    "lines": { "$ref": "#/$defs/count" },
                    "unparsed_lines": { "$ref": "#/$defs/count" },
                    "unparsed_by_kind": counts(),
                    "unparsed_payload_by_event": counts(),
                    "skipped_lines": { "$ref": "#/$defs/count" },
                    "skipped_by_kind": counts(),
                    "out_of_order": { "$ref": "#/$defs/count" },
                    "max_lag_ns": { "$ref": "#/$defs/count" },
                    "first_unparsed": { "type": "array", "items": { "type": "string" } },
                    "damaged_at": { "type": ["integer", "null"] },
                    "damage": { "type": ["string", "null"] }
                },
                "additionalProperties": false
            }
        },
        "additionalProperties": false
    })
}

/// The JSON Schema (draft 2020-12) of every `--json` output: one object per line, `oneOf`
/// by `command`. Maps keyed by data (event names, counters, policies) are open; every other
/// object lists its keys.
pub fn schema() -> Value {
    let defs = json!({
        "count": { "type": "integer", "minimum": 0 },
        "counts": counts(),
        "nullable_count": { "type": ["integer", "null"], "minimum": 0 },
        "verdict": {
            "enum": Verdict::ALL.map(Verdict::as_str),
            "description": "a candidate's verdict against the reference under its contract"
        },
        "first_difference": {
            "type": ["object", "null"],
            "required": ["first_step", "field", "reference", "candidate", "allowed_by_contract"],
            "properties": {
                "first_step": { "type": ["integer", "null"] },
                "field": { "type": "string" },
                "reference": { "type": "string" },
                "candidate": { "type": "string" },
                "allowed_by_contract": { "type": "boolean" }
            },
            "additionalProperties": false
        },
        "observed_predicted": obj(&["observed", "predicted"], json!({
            "observed": { "$ref": "#/$defs/nullable_count" },
            "predicted": { "$ref": "#/$defs/nullable_count" }
        })),
        "filters": {
            "type": "object",
            "required": ["pid", "comm", "workload"],
            "properties": {
                "pid": { "type": ["integer", "null"] },
                "comm": { "type": ["string", "null"] },
                "workload": { "type": "boolean" }
            },
            "additionalProperties": false
        },
        "fact_source": { "enum": ["option", "capture", "sidecar", "assumed", "unknown"] },
        "lost": {
            "type": "object",
            "required": ["markers", "events", "markers_without_count", "overwritten", "overrun_per_cpu", "per_cpu", "windows"],
            "properties": {
                "markers": { "$ref": "#/$defs/count" },
                "events": { "$ref": "#/$defs/count" },
                "markers_without_count": { "$ref": "#/$defs/count" },
                "overwritten": { "$ref": "#/$defs/count" },
                "overrun_per_cpu": counts(),
                "per_cpu": {
                    "type": "object",
                    "additionalProperties": obj(&["markers", "events", "markers_without_count", "first_ns", "last_ns"], json!({
                        "markers": { "$ref": "#/$defs/count" },
                        "events": { "$ref": "#/$defs/count" },
                        "markers_without_count": { "$ref": "#/$defs/count" },
                        "first_ns": { "$ref": "#/$defs/count" },
                        "last_ns": { "$ref": "#/$defs/count" }
                    }))
                },
                "windows": { "type": "array", "items": obj(&["cpu", "at_ns", "events"], json!({
                    "cpu": { "$ref": "#/$defs/count" },
                    "at_ns": { "$ref": "#/$defs/count" },
                    "events": { "$ref": "#/$defs/nullable_count" }
                })) },
                "not_comparable_for_fidelity": obj(&["windows", "windows_total", "span_ns"], json!({
                    "windows": { "type": "array", "items": obj(&["cpu", "from_ns", "to_ns", "events"], json!({
                        "cpu": { "$ref": "#/$defs/count" },
                        "from_ns": { "$ref": "#/$defs/count" },
                        "to_ns": { "$ref": "#/$defs/count" },
                        "events": { "$ref": "#/$defs/nullable_count" }
                    })) },
                    "windows_total": { "$ref": "#/$defs/count" },
                    "span_ns": { "$ref": "#/$defs/count" }
                }))
            },
            "additionalProperties": false
        },
        "input": input_def(),
        "kernel": {
            "type": "object",
            "required": ["profile", "release", "own_policy", "source", "cpus"],
            "properties": {
                "profile": { "type": "string" },
                "release": { "type": ["string", "null"] },
                "own_policy": { "type": "string" },
                "source": { "enum": ["option", "sidecar", "sidecar_release", "default"] },
                "cpus": { "type": ["integer", "null"] },
                "lru_gen_enabled": { "type": ["string", "null"] },
                "lru_gen_min_ttl_ms": { "type": ["integer", "null"] },
                "thp_enabled": { "type": ["string", "null"] },
                "tlb_single_page_flush_ceiling": { "$ref": "#/$defs/count" },
                "mechanics": { "type": "object" }
            },
            "additionalProperties": false
        },
        // `decode` of `mmreplay bench --json` (`cli/bench_decode.rs`): mmreplay stats beside
        // perf script / trace-cmd report / wc -l on the same file.
        "bench_decode": bench_decode_def(),
        "policy_run": obj(&["spec", "counters", "violations", "violation_count", "snapshot_hash", "model_errors"], json!({
            "spec": { "type": "string" },
            "counters": counts(),
            "violations": { "type": "array" },
            "violation_count": { "$ref": "#/$defs/count" },
            "snapshot_hash": { "type": "string" },
            "model_errors": counts(),
            "lockstep": { "type": "object" }
        })),
    });
    let stats = command(
        "stats",
        &[
            "format",
            "records",
            "events",
            "events_per_cpu",
            "lost_markers",
            "lost_events",
            "overwritten_events",
            "unparsed_lines",
            "skipped_lines",
            "time_span_ns",
            "tlb_flush_by_reason",
            "ipi",
            "migration",
            "tasks",
            "lost",
            "filters",
        ],
        json!({
            "format": { "type": "string" },
            "records": { "$ref": "#/$defs/count" },
            "events": counts(),
            "events_per_cpu": counts(),
            "lost_markers": { "$ref": "#/$defs/count" },
            "lost_events": { "$ref": "#/$defs/count" },
            "overwritten_events": { "$ref": "#/$defs/count" },
            "unparsed_lines": { "$ref": "#/$defs/count" },
            "unparsed_by_kind": counts(),
            "unparsed_payload_by_event": counts(),
            "skipped_lines": { "$ref": "#/$defs/count" },
            "skipped_by_kind": counts(),
            "time_span_ns": { "$ref": "#/$defs/count" },
            "tlb_flush_by_reason": counts(),
            "ipi_by_kind": counts(),
            "ipi": obj(&["sends", "targets"], json!({})),
            "migration": obj(&["set", "removed", "restored_young", "restored_dirty"], json!({})),
            "tasks": { "$ref": "#/$defs/count" },
            "lost": { "$ref": "#/$defs/lost" },
            "filters": { "$ref": "#/$defs/filters" },
            "capture": { "type": "object", "properties": { "cpus": { "type": ["integer", "null"] } } }
        }),
    );
    let replay = command(
        "replay",
        &[
            "trace",
            "format",
            "mode",
            "cpus",
            "lru",
            "records",
            "ops",
            "unplaced",
            "approximations",
            "filtered_out",
            "policies",
            "verdicts",
            "verdict_details",
            "fidelity",
            "input",
            "filters",
            "kernel",
        ],
        json!({
            "trace": { "type": "string" },
            "format": { "type": "string" },
            "mode": { "enum": ["lockstep", "free"] },
            "cpus": { "type": "integer", "minimum": 1 },
            "lru": { "enum": ["classic", "mglru"] },
            "records": { "$ref": "#/$defs/count" },
            "ops": { "$ref": "#/$defs/count" },
            "unplaced": counts(),
            "approximations": counts(),
            "inferred_vmas": { "$ref": "#/$defs/count" },
            "mms_first_seen": { "$ref": "#/$defs/count" },
            "filtered_out": { "$ref": "#/$defs/count" },
            "policies": { "type": "object", "additionalProperties": { "$ref": "#/$defs/policy_run" } },
            "verdicts": { "type": "object", "additionalProperties": { "$ref": "#/$defs/verdict" } },
            "verdict_details": { "type": "object", "additionalProperties": obj(&["verdict", "first_difference", "not_comparable", "breaches", "breach_count", "depends_on_unsampled", "unsampled"], json!({
                "verdict": { "$ref": "#/$defs/verdict" },
                "first_difference": { "$ref": "#/$defs/first_difference" },
                "not_comparable": { "type": ["string", "null"] },
                "breaches": { "type": "array", "items": { "type": "string" } },
                "breach_count": { "$ref": "#/$defs/count" },
                "depends_on_unsampled": { "type": "boolean" },
                "unsampled": obj(&["reclaim_unref_unsampled", "reclaim_unref_sampled", "reclaim_unref_preexisting"], json!({
                    "reclaim_unref_unsampled": { "$ref": "#/$defs/count" },
                    "reclaim_unref_sampled": { "$ref": "#/$defs/count" },
                    "reclaim_unref_preexisting": { "$ref": "#/$defs/count" }
                }))
            })) },
            "fidelity": obj(&["remote_tlb_flushes", "ipis", "kernel_counts"], json!({
                "remote_tlb_flushes": { "$ref": "#/$defs/observed_predicted" },
                "ipis": { "$ref": "#/$defs/observed_predicted" },
                "kernel_counts": { "type": "object" }
            })),
            "input": { "$ref": "#/$defs/input" },
            "filters": { "$ref": "#/$defs/filters" },
            "kernel": { "$ref": "#/$defs/kernel" }
        }),
    );
    let fidelity = command(
        "fidelity",
        &[
            "trace",
            "kernel",
            "policy",
            "cpus",
            "records",
            "ops",
            "ops_rejected",
            "filtered_out",
            "unplaced",
            "approximations",
            "counters",
            "outside_tolerance",
            "first_divergence",
            "input",
            "filters",
        ],
        json!({
            "trace": { "type": "string" },
            "kernel": { "$ref": "#/$defs/kernel" },
            "policy": { "type": "string" },
            "cpus": { "type": "integer", "minimum": 1 },
            "workload_pid": { "type": ["integer", "null"] },
            "records": { "$ref": "#/$defs/count" },
            "ops": { "$ref": "#/$defs/count" },
            "ops_rejected": { "$ref": "#/$defs/count" },
            "filtered_out": { "$ref": "#/$defs/count" },
            "unplaced": counts(),
            "approximations": counts(),
            "counters": { "type": "object", "additionalProperties": { "$ref": "#/$defs/observed_predicted" } },
            "outside_tolerance": { "type": "array", "items": { "type": "string" } },
            "first_divergence": { "type": ["object", "null"] },
            "input": { "$ref": "#/$defs/input" },
            "filters": { "$ref": "#/$defs/filters" }
        }),
    );
    let report = command(
        "report",
        &[
            "trace", "format", "cpus", "mode", "records", "ops", "policies", "verdicts",
            "fidelity", "counters", "input",
        ],
        json!({
            "trace": { "type": "string" },
            "format": { "type": "string" },
            "cpus": { "type": "integer", "minimum": 1 },
            "mode": { "enum": ["lockstep", "free"] },
            "records": { "$ref": "#/$defs/count" },
            "ops": { "$ref": "#/$defs/count" },
            "policies": { "type": "array", "items": { "type": "string" } },
            "verdicts": { "type": "array", "items": obj(&["candidate", "label"], json!({
                "candidate": { "type": "string" },
                "label": { "$ref": "#/$defs/verdict" }
            })) },
            "fidelity": { "type": "array" },
            "counters": { "type": "array" },
            "input": { "$ref": "#/$defs/input" }
        }),
    );
    let diff = command(
        "diff",
        &["a", "b", "same", "diff"],
        json!({
            "a": { "type": "string" }, "b": { "type": "string" },
            "same": { "type": "boolean" }, "diff": { "type": "string" }
        }),
    );
    let compile = command(
        "compile",
        &["trace", "format", "output", "records", "bytes", "cpus"],
        json!({
            "trace": { "type": "string" }, "format": { "type": "string" },
            "output": { "type": "string" },
            "records": { "$ref": "#/$defs/count" }, "bytes": { "$ref": "#/$defs/count" },
            "cpus": { "type": ["integer", "null"] }
        }),
    );
    let policies = command(
        "policies",
        &["policies"],
        json!({ "policies": { "type": "array", "items": obj(&["name", "summary", "params"], json!({
            "name": { "type": "string" },
            "summary": { "type": "string" },
            "params": { "type": "array", "items": obj(&["name", "min", "max", "default", "help"], json!({
                "name": { "type": "string" },
                "min": { "type": "integer" }, "max": { "type": "integer" },
                "default": { "type": "integer" }, "help": { "type": "string" }
            })) }
        })) } }),
    );
    let check = command(
        "check",
        &["file"],
        json!({
            "file": { "type": "string" },
            "error": { "type": "string" },
            "ops": { "$ref": "#/$defs/count" },
            "held": { "$ref": "#/$defs/count" },
            "failed": { "type": "array", "items": { "type": "string" } },
            "skipped": { "type": "array", "items": { "type": "string" } }
        }),
    );
    let minimize = command(
        "minimize",
        &[
            "trace",
            "policy",
            "property",
            "ops_before",
            "ops_after",
            "output",
        ],
        json!({
            "trace": { "type": "string" },
            "policy": { "type": "string" },
            "property": { "type": "string" },
            "ops_before": { "$ref": "#/$defs/count" },
            "ops_after": { "$ref": "#/$defs/count" },
            "output": { "type": "string" }
        }),
    );
    let merge = command(
        "merge",
        &["schema", "options", "cells"],
        json!({
            "schema": { "type": "string" },
            "options": { "type": "object" },
            "cells": { "type": "array", "items": obj(&["trace", "policy", "verdict", "violation_count", "ops", "counters"], json!({
                "trace": { "type": "string" },
                "policy": { "type": "string" },
                "verdict": { "anyOf": [{ "$ref": "#/$defs/verdict" }, { "const": "reference" }] },
                "violation_count": { "$ref": "#/$defs/count" },
                "ops": { "$ref": "#/$defs/count" },
                "counters": counts()
            })) }
        }),
    );
    let bench = command(
        "bench",
        &[
            "trace", "records", "ops", "runs", "policies", "parallel", "mmr", "rss", "goals",
        ],
        json!({
            "trace": { "type": "string" },
            "records": { "$ref": "#/$defs/count" },
            "ops": { "$ref": "#/$defs/count" },
            "loadavg": { "type": ["array", "null"], "items": { "type": "number" } },
            "runs": { "$ref": "#/$defs/count" },
            "policies": { "type": "object", "additionalProperties": { "type": "object" } },
            "parallel": { "type": "object" },
            "mmr": { "type": "object" },
            "rss": { "type": "object" },
            "goals": { "type": "array", "items": obj(&["name", "figure", "op", "target", "pass"], json!({
                "name": { "type": "string" },
                "figure": { "type": "number" },
                "op": { "enum": [">=", "<=", "<"] },
                "target": { "type": "number" },
                "pass": { "type": "boolean" }
            })) }
        }),
    );
    let record = command(
        "record",
        &[
            "output",
            "format",
            "sidecar",
            "events",
            "lost_events",
            "per_cpu",
            "lines",
            "duration_ms",
            "ending",
            "workload_pid",
            "workload_exit",
            "workload_signal",
            "interrupted_by_signal",
            "kernel_release",
            "cpus",
            "trace_clock",
            "buffer_size_kb",
            "events_enabled",
            "events_substituted",
            "probes",
            "procs",
            "access",
        ],
        json!({
            "output": { "type": "string" },
            "format": { "enum": ["trace.dat", "ftrace", "raw-dir"] },
            "sidecar": { "type": "string" },
            "events": { "$ref": "#/$defs/count" },
            "lost_events": { "$ref": "#/$defs/count" },
            "per_cpu": { "type": "object", "additionalProperties": obj(&["events", "lost"], json!({
                "events": { "$ref": "#/$defs/count" },
                "lost": { "$ref": "#/$defs/count" }
            })) },
            "lines": { "$ref": "#/$defs/nullable_count" },
            "duration_ms": { "$ref": "#/$defs/count" },
            "ending": { "enum": ["success", "workload_failed", "interrupted"] },
            "workload_pid": { "$ref": "#/$defs/count" },
            "workload_exit": { "type": ["integer", "null"] },
            "workload_signal": { "type": ["integer", "null"] },
            "interrupted_by_signal": { "type": ["integer", "null"] },
            "kernel_release": { "type": "string" },
            "cpus": { "type": "integer", "minimum": 1 },
            "trace_clock": { "type": "string" },
            "buffer_size_kb": { "$ref": "#/$defs/nullable_count" },
            "events_enabled": { "$ref": "#/$defs/count" },
            "events_substituted": { "type": "array", "items": { "type": "string" } },
            "probes": { "type": "array", "items": { "type": "string" } },
            "procs": { "type": ["string", "null"] },
            "access": { "type": ["string", "null"] }
        }),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("mmreplay-output-v{SCHEMA_VERSION}"),
        "title": "mmreplay --json outputs",
        "description": "Every `mmreplay CMD --json` line is one object matching one of these (by `command`). Generated by `mmreplay docs`; do not edit.",
        "oneOf": [stats, replay, fidelity, report, diff, compile, policies, check, minimize, merge, bench, record],
        "$defs": defs,
    })
}

/// Check `v` against `schema` (the subset of JSON Schema used above: `type`, `const`, `enum`,
/// `properties`, `required`, `additionalProperties`, `items`, `oneOf`, `anyOf`, `$ref` to
/// `#/$defs/NAME`, `minimum`). Returns every mismatch with its JSON path.
pub fn validate(schema: &Value, v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    check(schema, schema, v, "$", &mut errs);
    errs
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => false,
    }
}

fn check(root: &Value, s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        match root.get("$defs").and_then(|d| d.get(name)) {
            Some(d) => check(root, d, v, path, errs),
            None => errs.push(format!("{path}: schema has no $defs/{name}")),
        }
        return;
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => true,
        };
        if !ok {
            errs.push(format!("{path}: expected type {t}, got {v}"));
            return;
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errs.push(format!("{path}: expected {c}, got {v}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errs.push(format!(
                "{path}: {v} is not one of {}",
                Value::Array(e.clone())
            ));
        }
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_i64), v.as_i64()) {
        if n < min {
            errs.push(format!("{path}: {n} is below {min}"));
        }
    }
    for (key, all) in [("oneOf", true), ("anyOf", false)] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let results: Vec<Vec<String>> = alts
                .iter()
                .map(|a| {
                    let mut e = Vec::new();
                    check(root, a, v, path, &mut e);
                    e
                })
                .collect();
            let n_ok = results.iter().filter(|e| e.is_empty()).count();
            if n_ok == 0 || (all && n_ok > 1) {
                // Report the alternative whose `command` matches, else the closest.
                let best = results.iter().min_by_key(|e| e.len()).cloned();
                errs.push(format!(
                    "{path}: matches {n_ok} of the {key} alternatives ({})",
                    best.unwrap_or_default().join("; ")
                ));
            }
        }
    }
    if let Some(m) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for k in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(k) {
                    errs.push(format!("{path}: missing key {k}"));
                }
            }
        }
        for (k, x) in m {
            let p = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(root, ps, x, &p, errs),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => errs.push(format!("{p}: key not in the schema")),
                    Some(ap @ Value::Object(_)) => check(root, ap, x, &p, errs),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            check(root, items, x, &format!("{path}[{i}]"), errs);
        }
    }
}

/// Keys that break the naming rules anywhere in `v` (spaces, upper case, empty), with paths.
/// Maps keyed by data (event names such as `ipi_sends:flush_tlb_func`, policy specs such as
/// `lookaround:window=8`, CPU numbers) may hold `:`, `=`, `-` and digits.
pub fn bad_keys(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_uppercase()) {
                        out.push(format!("{path}: key {k:?}"));
                    }
                    walk(x, &format!("{path}.{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    walk(v, "$", &mut out);
    out
}
