//! `docs/glossary.md` explains every key the binary can print: the model's counters, the
//! fidelity rows, the kernel's own counts, every approximation and unplaced reason the lowering
//! can count (found in its source, where each is a string literal), and every key of the
//! `input` report, checked on real runs. Negative control: a key missing from the page is
//! reported.

use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");
const SYSCALLS: &[&str] = &["mmap", "munmap", "mprotect", "madvise", "mremap", "brk"];

fn root(p: &str) -> String {
    format!("{}/../{p}", env!("CARGO_MANIFEST_DIR"))
}

/// Every backticked term of the glossary, `<syscall>` expanded.
fn glossary_terms(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        if part.contains("<syscall>") {
            for s in SYSCALLS {
                out.insert(part.replace("<syscall>", s));
            }
        } else {
            out.insert(part.to_string());
        }
    }
    out
}

/// String literals passed to the lowering's counting calls: `approx("x")`, `unplaced("x")`,
/// `.entry("x".to_string())`, and the literals of `unplaced(if .. { "a" } else { "b" })`.
fn lowering_keys() -> BTreeSet<String> {
    let mut files = vec![root("replay/src/lower.rs")];
    for e in std::fs::read_dir(root("replay/src/lower")).expect("lower/") {
        let p = e.expect("entry").path();
        if p.file_name().is_some_and(|n| n != "tests.rs") {
            files.push(p.display().to_string());
        }
    }
    let mut keys = BTreeSet::new();
    for f in files {
        let src = std::fs::read_to_string(&f).expect("source");
        // Test modules name keys too; only the code before `#[cfg(test)]` prints.
        let src = src.split("#[cfg(test)]").next().unwrap_or("");
        for call in ["approx(", "unplaced(", ".entry("] {
            for (at, _) in src.match_indices(call) {
                let rest = &src[at + call.len()..];
                // The call's argument up to its closing parenthesis (no nesting needed).
                let arg = &rest[..rest.find(')').unwrap_or(rest.len()).min(200)];
                for (i, lit) in arg.split('"').enumerate() {
                    if i % 2 == 1
                        && !lit.is_empty()
                        && lit
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                    {
                        keys.insert(lit.to_string());
                    }
                }
            }
        }
    }
    keys
}

/// Keys of the JSON objects under `v` (not of maps keyed by data: per-CPU numbers).
fn json_keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if !k.chars().all(|c| c.is_ascii_digit()) {
                    out.insert(k.clone());
                }
                json_keys(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_keys(x, out)),
        _ => {}
    }
}

fn missing(terms: &BTreeSet<String>, keys: &BTreeSet<String>) -> Vec<String> {
    keys.iter()
        .filter(|k| !terms.contains(*k))
        .cloned()
        .collect()
}

/// Every key the binary can print, as far as it can be enumerated.
fn printable_keys() -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = mmreplay_reference::counters::Counters::NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    keys.extend(
        mmreplay::observe::COUNTERS
            .iter()
            .map(|r| r.name.to_string()),
    );
    keys.extend(
        mmreplay::kernel_counts::PREDICTED_BY
            .iter()
            .map(|(n, _)| n.to_string()),
    );
    keys.insert("nr_cpus_assumed".into());
    keys.extend(lowering_keys());
    // Real runs: every approximation and unplaced reason they print, and the input report's
    // keys (on a capture with lost events, one with overwritten events, one filtered).
    for args in [
        vec!["replay", "corpus/captures/pipe-lost-load.trace.zst"],
        vec!["replay", "corpus/captures/fmt-overrun.trace.zst"],
        vec!["replay", "corpus/captures/fmt-pipe.trace.zst", "--workload"],
    ] {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a[1] = root(&a[1]);
        a.push("--json".into());
        a.push("--policies".into());
        a.push("reference".into());
        let o = Command::new(BIN).args(&a).output().expect("run");
        assert!(
            o.status.success(),
            "{a:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        for section in ["approximations", "unplaced"] {
            if let Some(m) = v[section].as_object() {
                keys.extend(m.keys().cloned());
            }
        }
        json_keys(&v["input"], &mut keys);
        json_keys(&v["fidelity"]["kernel_counts"], &mut keys);
    }
    // Map values the parser names (kinds of unparsed and skipped lines) are data, not keys
    // the glossary lists one by one.
    for data in ["buffer_started", "header"] {
        keys.remove(data);
    }
    keys
}

#[test]
fn every_printable_key_is_in_the_glossary() {
    let text = std::fs::read_to_string(root("docs/glossary.md")).expect("docs/glossary.md");
    let terms = glossary_terms(&text);
    let keys = printable_keys();
    assert!(keys.len() > 100, "only {} keys enumerated", keys.len());
    assert!(keys.contains("switch_to_user_task_not_seen_yet"));
    assert!(keys.contains("lost_events_marker"));
    let m = missing(&terms, &keys);
    assert!(m.is_empty(), "keys missing from docs/glossary.md: {m:?}");
    // Negative control: without one entry, the check names it.
    let cut = text.replace("`switch_to_user_task_not_seen_yet`", "");
    assert_eq!(
        missing(&glossary_terms(&cut), &keys),
        vec!["switch_to_user_task_not_seen_yet".to_string()]
    );
}
