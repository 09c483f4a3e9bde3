//! insta snapshot regression tests over every real capture in `corpus/captures/*.trace.zst`
//! and every policy of the registry (`registry::POLICIES`, reference first): one snapshot
//! per (capture × policy) holding a compact YAML summary (non-zero counters, contract verdict
//! vs the reference, first violations with their step, snapshot hash, unplaced counts, ops, a
//! small state digest). Each capture is replayed once through the replay crate's library API
//! (`mmreplay::engine::run`, `mmreplay::differ::compare`) and shared by all tests through a
//! `OnceLock`. It must never redact deterministic values, and CI (`INSTA_UPDATE=no`) rejects
//! snapshots no test produces (`no_unreferenced_snapshots`).
//!
//! Regenerate with `INSTA_UPDATE=always cargo test -p mmreplay-tests --test snapshots_corpus`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mmreplay::differ::{self, Comparison};
use mmreplay::engine::{self, EngineConfig, TraceRun};
use mmreplay::lower::LowerOptions;
use mmreplay::session::{self, DEFAULT_CPUS};
use mmreplay::source::Source;
use mmreplay_candidates::contract::Mode;
use mmreplay_candidates::lookaround::LookAround;
use mmreplay_candidates::negative::PromoteWithoutClear;
use mmreplay_candidates::registry::{self, PolicySpec};
use mmreplay_candidates::{BoxedEngine, NamedEngine};
use mmreplay_reference::snapshot::PteState;
use mmreplay_reference::{KernelProfile, Model};

/// Policies snapshotted: every registry entry, reference first (a new policy is snapshotted
/// on every capture as soon as its registry line exists).
fn policies() -> Vec<&'static str> {
    registry::POLICIES.iter().map(|p| p.name).collect()
}
/// Violations listed per summary (the count is always given).
const SHOWN_VIOLATIONS: usize = 5;
/// Breaches listed per summary.
const SHOWN_BREACHES: usize = 5;
/// Contract mode of the verdicts: free-running, which shows the outcome differences (evictions,
/// refaults) that the CLI's default lockstep mode removes by design.
const MODE: Mode = Mode::FreeRunning;

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/captures")
}

fn snapshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// Capture stems (`gcc-hello` for `gcc-hello.trace.zst`), sorted.
fn capture_stems() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(captures_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".trace.zst")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What a replay of one capture needs for rendering.
struct Replayed {
    format: String,
    nr_cpus: u32,
    profile: KernelProfile,
    run: TraceRun,
}

/// Replay `capture` with `engines` (built for the returned profile by `make`).
fn replay(
    capture: &str,
    make: impl FnOnce(&KernelProfile) -> Vec<BoxedEngine>,
) -> Result<Replayed, String> {
    let path = captures_dir().join(format!("{capture}.trace.zst"));
    let path = path.to_string_lossy().to_string();
    let mut src = Source::open(&path, false).map_err(|e| e.to_string())?;
    let nr_cpus = src.nr_cpus().unwrap_or(DEFAULT_CPUS).clamp(1, 64);
    // The capture kernel's LRU, as `replay` picks it (the sidecar; every corpus capture is
    // from a 6.18 kernel without MGLRU).
    let profile = KernelProfile {
        lru: mmreplay::kernel_lru::for_trace(&path).0,
        ..session::profile(nr_cpus, session::SessionOptions::default().cpumask_mode)
    };
    let format = src.format().to_string();
    let lower = LowerOptions {
        pid: None,
        comm: None,
        nr_cpus,
        procs: session::procs_for(Some(&path)).map_err(|e| e.to_string())?,
        access: session::access_for(Some(&path)).map_err(|e| e.to_string())?,
    };
    let engines = make(&profile);
    let records = std::iter::from_fn(move || src.next_record().transpose());
    let run = engine::run(records, lower, engines, &EngineConfig::default(), |_| {})
        .map_err(|e| e.to_string())?;
    Ok(Replayed {
        format,
        nr_cpus,
        profile,
        run,
    })
}

fn specs() -> Vec<PolicySpec> {
    match registry::parse_list(&policies()) {
        Ok(s) => s,
        Err(e) => panic!("registry refused the snapshot policies: {e}"),
    }
}

/// The verdict of policy `i` of `r` against policy 0 (the reference), with `spec`'s contract.
fn verdict(r: &Replayed, i: usize, spec: &PolicySpec) -> Option<Comparison> {
    let reference = r.run.policies.first()?;
    let cand = r.run.policies.get(i)?;
    let contract = spec.contract(MODE, &r.profile);
    Some(differ::compare(Some(&contract), reference, cand, None))
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".to_string())
}

fn map_block(out: &mut String, key: &str, m: &BTreeMap<String, u64>) {
    if m.is_empty() {
        let _ = writeln!(out, "{key}: {{}}");
        return;
    }
    let _ = writeln!(out, "{key}:");
    for (k, v) in m {
        let _ = writeln!(out, "  {k}: {v}");
    }
}

/// The compact YAML summary of policy `i` of a replay.
fn render(capture: &str, r: &Replayed, i: usize, v: Option<&Comparison>) -> String {
    let mut o = String::new();
    let Some(p) = r.run.policies.get(i) else {
        return format!("missing policy {i}\n");
    };
    let lw = &r.run.lower;
    let _ = writeln!(o, "capture: {capture}");
    let _ = writeln!(o, "policy: {}", p.name);
    let _ = writeln!(o, "format: {}", r.format);
    let _ = writeln!(o, "nr_cpus: {}", r.nr_cpus);
    let _ = writeln!(o, "records: {}", lw.records);
    let _ = writeln!(o, "ops: {}", lw.ops);
    map_block(&mut o, "unplaced", &lw.unplaced);
    map_block(&mut o, "model_errors", &p.model_errors);
    map_block(&mut o, "outcomes", &p.outcomes);
    let _ = writeln!(o, "counters:");
    for (k, val) in p.counters.pairs() {
        if val != 0 {
            let _ = writeln!(o, "  {k}: {val}");
        }
    }
    match v {
        None => {
            let _ = writeln!(o, "verdict: reference");
        }
        Some(v) => {
            let _ = writeln!(o, "verdict: {}", v.verdict);
            if let Some(d) = &v.first_difference {
                let _ = writeln!(o, "first_difference: {}", yaml_str(&d.field));
            }
            let _ = writeln!(o, "breaches: {}", v.breaches.len());
            for b in v.breaches.iter().take(SHOWN_BREACHES) {
                let _ = writeln!(o, "  - {}", yaml_str(&b.to_string()));
            }
        }
    }
    let _ = writeln!(o, "violations: {}", p.violation_count);
    for x in p.violations.iter().take(SHOWN_VIOLATIONS) {
        let _ = writeln!(
            o,
            "  - {{step: {}, invariant: {}, detail: {}}}",
            x.step,
            x.invariant.name(),
            yaml_str(&x.detail)
        );
    }
    let _ = writeln!(o, "snapshot_hash: {:#018x}", p.snapshot_hash);
    let s = &p.snapshot;
    let mut present = 0u64;
    let mut zero = 0u64;
    let mut swap = 0u64;
    for pte in s.mms.iter().flat_map(|m| &m.ptes) {
        match pte.state {
            PteState::Present { .. } => present += 1,
            PteState::Zero => zero += 1,
            PteState::Swap { .. } => swap += 1,
            PteState::Migration { .. } => {}
        }
    }
    let _ = writeln!(o, "state:");
    let _ = writeln!(o, "  mms: {}", s.mms.len());
    let _ = writeln!(
        o,
        "  vmas: {}",
        s.mms.iter().map(|m| m.vmas.len()).sum::<usize>()
    );
    let _ = writeln!(o, "  ptes_present: {present}");
    let _ = writeln!(o, "  ptes_zero: {zero}");
    let _ = writeln!(o, "  ptes_swap: {swap}");
    let _ = writeln!(
        o,
        "  hugetlb_tables: {}",
        s.mms.iter().map(|m| m.hugetlb_tables.len()).sum::<usize>()
    );
    let _ = writeln!(o, "  folios: {}", s.folios.len());
    let _ = writeln!(
        o,
        "  folios_dirty: {}",
        s.folios.iter().filter(|f| f.dirty).count()
    );
    let _ = writeln!(o, "  swap_slots: {}", s.swap.len());
    let _ = writeln!(o, "  lru_nr_gens: {:?}", s.lru_nr_gens);
    o
}

/// Per policy of one capture: the rendered summary and, when the policy breached its contract,
/// could not be compared or tripped an invariant, what went wrong; or why the replay failed.
type PerPolicy = Result<BTreeMap<String, (String, Option<String>)>, String>;

/// Summaries by capture, then policy; replayed once for the whole test binary.
fn summaries() -> &'static BTreeMap<String, PerPolicy> {
    static CACHE: OnceLock<BTreeMap<String, PerPolicy>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let specs = specs();
        let stems = capture_stems();
        // Two captures at a time (the machine has 2 cores; engine::run also uses rayon).
        let results: Vec<(String, PerPolicy)> = std::thread::scope(|sc| {
            let handles: Vec<_> = stems
                .chunks(stems.len().div_ceil(2).max(1))
                .map(|chunk| {
                    let specs = &specs;
                    sc.spawn(move || {
                        chunk
                            .iter()
                            .map(|c| (c.clone(), summarize(c, specs)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        results.into_iter().collect()
    })
}

fn summarize(capture: &str, specs: &[PolicySpec]) -> PerPolicy {
    let r = replay(capture, |p| registry::build_all(specs, p))?;
    let mut out = BTreeMap::new();
    for (i, spec) in specs.iter().enumerate() {
        let v = if i == 0 { None } else { verdict(&r, i, spec) };
        let violations = r.run.policies.get(i).map_or(0, |p| p.violation_count);
        let within = v.as_ref().is_none_or(|v| v.verdict.within_contract());
        let label = v.as_ref().map_or("reference", |v| v.verdict.as_str());
        let problem = (violations > 0 || !within)
            .then(|| format!("{label}, {violations} invariant violations"));
        out.insert(
            spec.name().to_string(),
            (render(capture, &r, i, v.as_ref()), problem),
        );
    }
    Ok(out)
}

fn summary(capture: &str, policy: &str) -> String {
    match summaries().get(capture) {
        Some(Ok(m)) => match m.get(policy) {
            Some((s, _)) => s.clone(),
            None => panic!("no summary for policy {policy}"),
        },
        Some(Err(e)) => panic!("replay of {capture} failed: {e}"),
        None => panic!("capture {capture}.trace.zst not found in corpus/captures"),
    }
}

/// Snapshot file name of a (capture, policy) pair (insta: `<test file>__<name>.snap`).
fn snap_name(capture: &str, policy: &str) -> String {
    format!("{capture}__{policy}")
}

macro_rules! snapshot_tests {
    ($($capture:literal => $fn:ident),* $(,)?) => {
        /// Captures with generated tests (must equal the directory listing).
        const CAPTURES: &[&str] = &[$($capture),*];
        $(
            #[test]
            fn $fn() {
                for p in policies() {
                    insta::assert_snapshot!(snap_name($capture, p), summary($capture, p));
                }
            }
        )*
    };
}

snapshot_tests! {
    "compaction" => compaction,
    "compaction-procs" => compaction_procs,
    "fmt-follow" => fmt_follow,
    "fmt-lost-pipe" => fmt_lost_pipe,
    "fmt-noirq" => fmt_noirq,
    "fmt-overrun" => fmt_overrun,
    "fmt-pipe" => fmt_pipe,
    "fmt-tgid" => fmt_tgid,
    "gcc-hello" => gcc_hello,
    "hugetlb-fork" => hugetlb_fork,
    "hugetlb-share-conc" => hugetlb_share_conc,
    "k61-compact-written" => k61_compact_written,
    "k61-compaction" => k61_compaction,
    "k61-hotset-classic" => k61_hotset_classic,
    "k61-hotset-mglru" => k61_hotset_mglru,
    "k61-hugetlb-fork" => k61_hugetlb_fork,
    "k61-reclaim-classic" => k61_reclaim_classic,
    "k61-reclaim-mglru" => k61_reclaim_mglru,
    "k61-threads-shootdown" => k61_threads_shootdown,
    "madv-mprotect" => madv_mprotect,
    "parbuild" => parbuild,
    "pipe-lost-load" => pipe_lost_load,
    "reclaim-swap" => reclaim_swap,
    "sqlite-threads" => sqlite_threads,
    "thp-paths" => thp_paths,
    "threads-shootdown" => threads_shootdown,
    "tour" => tour,
}

/// Accepting a snapshot must never accept a breach: no policy may breach its contract, be
/// not comparable or trip an invariant on any real capture (a snapshot records the verdict; this
/// test refuses the bad ones whatever the snapshot says).
#[test]
fn no_contract_breach_or_invariant_violation_on_any_capture() {
    let mut bad = Vec::new();
    for (capture, per) in summaries() {
        match per {
            Ok(m) => {
                for (policy, (_, problem)) in m {
                    if let Some(p) = problem {
                        bad.push(format!("{capture} × {policy}: {p}"));
                    }
                }
            }
            Err(e) => bad.push(format!("{capture}: replay failed: {e}")),
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(!summaries().is_empty());
}

/// A new capture in corpus/captures must get a snapshot test (and a removed one must lose it).
#[test]
fn every_capture_has_snapshot_tests() {
    let listed: Vec<String> = CAPTURES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        capture_stems(),
        listed,
        "corpus/captures/*.trace.zst and the snapshot_tests! list differ"
    );
}

/// CI runs with INSTA_UPDATE=no: a stored snapshot no test produces (a renamed capture or
/// policy, or a leftover `.snap.new`) is an error.
#[test]
fn no_unreferenced_snapshots() {
    let mut expected: Vec<String> = Vec::new();
    for c in CAPTURES {
        for p in policies() {
            expected.push(format!("snapshots_corpus__{}.snap", snap_name(c, p)));
        }
    }
    let mut stray = Vec::new();
    let mut found = 0;
    for e in std::fs::read_dir(snapshots_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().to_string();
        if !n.starts_with("snapshots_corpus__") {
            continue; // another test file's snapshots
        }
        found += 1;
        if !expected.contains(&n) {
            stray.push(n);
        }
    }
    assert!(stray.is_empty(), "unreferenced snapshots: {stray:?}");
    assert_eq!(
        found,
        expected.len(),
        "missing snapshots in {}",
        snapshots_dir().display()
    );
}

/// The stored summary body of a `.snap` file (after insta's front matter).
fn stored_body(capture: &str, policy: &str) -> String {
    let p = snapshots_dir().join(format!(
        "snapshots_corpus__{}.snap",
        snap_name(capture, policy)
    ));
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    // Front matter: "---\n...\n---\n" then the body.
    let body = text
        .strip_prefix("---\n")
        .and_then(|t| t.split_once("\n---\n"))
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    assert!(!body.is_empty(), "no stored snapshot at {}", p.display());
    body
}

/// A deliberate behaviour change (look-around that promotes without clearing A bits, run
/// under the name `lookaround`) makes the stored `lookaround` snapshot fail with a readable
/// unified diff naming the changed counter. The stored snapshot is only read.
#[test]
fn behaviour_change_shows_as_readable_diff() {
    // A capture whose kernel ran MGLRU: look-around acts only there.
    let capture = "k61-reclaim-mglru";
    let specs = specs();
    let Some(la) = specs.get(1) else {
        panic!("no lookaround spec");
    };
    let r = replay(capture, |p| {
        let mut v = registry::build_all(&specs[..1], p);
        v.push(NamedEngine::new(
            "lookaround",
            Box::new(Model::new(
                p.clone(),
                PromoteWithoutClear(LookAround::new(p.base)),
            )),
        ));
        v
    });
    let r = match r {
        Ok(r) => r,
        Err(e) => panic!("replay of {capture} failed: {e}"),
    };
    let v = verdict(&r, 1, la);
    let broken = render(capture, &r, 1, v.as_ref());
    let stored = stored_body(capture, "lookaround");
    // Sanity: the real policy reproduces the stored text exactly.
    assert_eq!(summary(capture, "lookaround").trim_end(), stored.trim_end());
    let diff = similar::TextDiff::from_lines(stored.trim_end(), broken.trim_end())
        .unified_diff()
        .context_radius(1)
        .header("stored", "changed")
        .to_string();
    println!("{diff}");
    assert!(
        !diff.is_empty(),
        "the behaviour change left the summary unchanged"
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect();
    assert!(
        changed.iter().any(|l| l.contains("a_cleared_lookaround")),
        "the diff does not name the changed counter a_cleared_lookaround:\n{diff}"
    );
    // The promote/clear relation breach itself is the negative control of
    // candidates/tests/negative.rs: on this capture look-around found too few young
    // neighbours to promote any.
}
