//! Runs every hand-written litmus scenario in `corpus/litmus/*.litmus` under every policy it
//! names and checks the expected verdicts (clean, invariant + step, same, within contract,
//! breach) and counter relations written in the file. Negative controls (`negative:NAME`)
//! come from `mmreplay_candidates::negative` and are judged against the contract of the
//! candidate they break. It must never change a file or accept a file that names no policy.

use std::path::{Path, PathBuf};

use mmreplay_candidates::contract::Contract;
use mmreplay_candidates::lookaround::LookAround;
use mmreplay_candidates::negative::{
    DirtyOnCleanRestore, FreeBeforeFlush, LazyfreeIgnoreRefs, NoSyncUnshare, PromoteWithoutClear,
};
use mmreplay_candidates::registry;
use mmreplay_litmus::{self as litmus, LitmusFile, PolicyResult};
use mmreplay_reference::{Engine, KernelProfile, Model, Policy};

fn litmus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/litmus")
}

fn files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(litmus_dir())
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "litmus"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

type Built = (Box<dyn Engine + Send>, Option<Contract>);

fn boxed<P: Policy + Send + 'static>(p: &KernelProfile, policy: P) -> Box<dyn Engine + Send> {
    Box::new(Model::new(p.clone(), policy))
}

/// An engine and its contract for a policy spec: a registry spec, or `negative:NAME` with the
/// contract of the candidate that control breaks.
fn build(spec: &str, f: &LitmusFile) -> Result<Built, String> {
    let p: &KernelProfile = &f.profile;
    let contract_of = |name: &str| -> Result<Contract, String> {
        registry::parse(name)
            .map(|s| s.contract(f.mode, p))
            .map_err(|e| e.to_string())
    };
    Ok(match spec.strip_prefix("negative:") {
        Some("free-before-flush") => (boxed(p, FreeBeforeFlush), None),
        Some("lazyfree-ignore-refs") => (boxed(p, LazyfreeIgnoreRefs), None),
        Some("no-sync-unshare") => (
            boxed(p, NoSyncUnshare),
            Some(contract_of("batched-unshare")?),
        ),
        Some("dirty-on-clean-restore") => (
            boxed(p, DirtyOnCleanRestore),
            Some(contract_of("ad-preserve")?),
        ),
        Some("promote-without-clear") => (
            boxed(p, PromoteWithoutClear(LookAround::new(p.base))),
            Some(contract_of("lookaround")?),
        ),
        Some(other) => return Err(format!("unknown negative control `{other}`")),
        None => {
            let s = registry::parse(spec).map_err(|e| e.to_string())?;
            (s.build(p).into_inner(), Some(s.contract(f.mode, p)))
        }
    })
}

/// Run one file; every failed expectation is returned as a message.
fn run_file(path: &Path) -> Vec<String> {
    let f = match litmus::load(path) {
        Ok(f) => f,
        Err(e) => return vec![e.to_string()],
    };
    let mut errs = Vec::new();
    let mut results: Vec<(String, PolicyResult, Option<Contract>)> = Vec::new();
    let mut policies = f.policies();
    if policies.first().map(String::as_str) != Some("reference") {
        policies.insert(0, "reference".to_string());
    }
    for spec in &policies {
        match build(spec, &f).and_then(|(mut e, c)| {
            litmus::run(&f, spec, &mut *e)
                .map(|r| (r, c))
                .map_err(|e| e.to_string())
        }) {
            Ok((r, c)) => results.push((spec.clone(), r, c)),
            Err(e) => errs.push(format!("{}: {spec}: {e}", f.file)),
        }
    }
    let Some((_, reference, _)) = results.first() else {
        return errs;
    };
    let find = |p: &str| results.iter().find(|(n, _, _)| n == p);
    for e in &f.expects {
        if let Some((_, r, c)) = find(&e.policy) {
            if let Err(m) = litmus::check_expect(&f, e, reference, r, c.as_ref()) {
                errs.push(m.to_string());
            }
        }
    }
    for c in &f.checks {
        if let Some((_, r, _)) = find(&c.policy) {
            if let Err(m) = litmus::check_counter(&f, c, reference, r) {
                errs.push(m.to_string());
            }
        }
    }
    println!(
        "{}: {} ops, {} expectations, {} counter checks, policies {:?}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        f.ops.len(),
        f.expects.len(),
        f.checks.len(),
        policies
    );
    errs
}

#[test]
fn every_litmus_file_meets_its_expectations() {
    let files = files();
    assert!(
        files.len() >= 6,
        "expected at least 6 litmus files in {}, found {files:?}",
        litmus_dir().display()
    );
    let mut errs = Vec::new();
    for p in &files {
        errs.extend(run_file(p));
    }
    assert!(errs.is_empty(), "\n{}", errs.join("\n"));
}

/// Every file is marked hand-written, names the reference, and has a negative control or a
/// candidate to judge; every negative-control expectation names an invariant or a breach.
#[test]
fn litmus_files_are_marked_and_complete() {
    for p in files() {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.contains("HAND-WRITTEN"),
            "{}: first line must say HAND-WRITTEN",
            p.display()
        );
        let f = litmus::load(&p);
        let Ok(f) = f else {
            panic!("{f:?}");
        };
        let pol = f.policies();
        assert_eq!(
            pol.first().map(String::as_str),
            Some("reference"),
            "{}",
            p.display()
        );
        assert!(pol.len() >= 2, "{}: names only {pol:?}", p.display());
    }
}

/// The checker is not vacuous: flipping an expectation of each file makes it fail.
#[test]
fn wrong_expectations_are_reported() {
    let Some(p) = files().into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("a-"))
    }) else {
        panic!("scenario (a) missing");
    };
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    // The reference must not be reported as violating I1, and the control not as clean.
    let flipped = text
        .replace(
            "# expect reference: clean",
            "# expect reference: violation I1 line 30",
        )
        .replace(
            "# expect negative:free-before-flush: violation I1 line 30",
            "# expect negative:free-before-flush: clean",
        );
    let dir = std::env::temp_dir().join(format!("mmreplay-litmus-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let q = dir.join("flipped.litmus");
    assert!(std::fs::write(&q, flipped).is_ok());
    let errs = run_file(&q);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("reference: expected violation I1 line 30, got no violation")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("negative:free-before-flush: expected clean")
                && e.contains("I1 at step")),
        "{errs:#?}"
    );
}
