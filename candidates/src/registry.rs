//! The policy registry: policies by name with typed parameters (`lookaround:window=32`),
//! parsed with clear errors, instantiated as a `NamedEngine` (a `Box<dyn Engine + Send>` with
//! its spec as name) for a `KernelProfile`,
//! and their contracts. One table (`POLICIES`), one line per policy. It must never offer a
//! negative control: those live in `negative.rs`, test-only.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use mmreplay_reference::model::Model;
use mmreplay_reference::policy::{Hook, Reference};
use mmreplay_reference::profile::KernelProfile;

use crate::ad_preserve::{self, AdPreserve};
use crate::batched_unshare::{self, BatchedUnshare};
use crate::compose::{Compose, Part};
use crate::contract::{Contract, Mode};
use crate::engine::NamedEngine;
use crate::lookaround::{self, LookAround, MIN_LRU_BATCH};

/// A named, boxed engine the replay engine can move to a worker thread.
pub type BoxedEngine = NamedEngine;

/// A parameter a policy accepts (unsigned integer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamDef {
    /// Name (`window`).
    pub name: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// Value when not given.
    pub default: u64,
    /// One-line help.
    pub help: &'static str,
}

/// Parsed parameter values (every declared parameter present, defaults filled in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<&'static str, u64>);

impl Params {
    /// Value of a declared parameter (0 if the policy does not declare it).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// What a registry line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The reference model itself.
    Reference,
    /// A policy variant: part of the CLI's default list and of every composite.
    Candidate,
    /// Every candidate at once ([`Compose`]); its parameters are the candidates' and its
    /// contract the union of theirs ([`Contract::union`]).
    Composite,
}

/// One registry line. Write candidate lines with [`candidate!`] so that a policy is
/// constructed in one place.
pub struct PolicyEntry {
    /// Registry name.
    pub name: &'static str,
    /// One-line description with the kernel commit.
    pub summary: &'static str,
    /// What this line is.
    pub kind: Kind,
    /// Accepted parameters (a composite's are its parts': see [`PolicyEntry::params`]).
    pub own_params: &'static [ParamDef],
    /// Build a model of this policy for a profile.
    pub build: fn(&KernelProfile, &Params, &str) -> BoxedEngine,
    /// The policy alone, boxed, to be part of a composite (reference and composites: none).
    pub part: fn(&KernelProfile, &Params) -> Option<Part>,
    /// The policy's contract with the reference.
    pub contract: fn(Mode, &KernelProfile, &Params) -> Contract,
}

impl PolicyEntry {
    /// Accepted parameters: a composite takes every parameter of every candidate (the same
    /// name in two candidates is one parameter).
    pub fn params(&self) -> &'static [ParamDef] {
        match self.kind {
            Kind::Composite => CANDIDATE_PARAMS.as_slice(),
            _ => self.own_params,
        }
    }
}

static CANDIDATE_PARAMS: LazyLock<Vec<ParamDef>> = LazyLock::new(|| {
    let mut v: Vec<ParamDef> = Vec::new();
    for d in candidates().flat_map(|e| e.own_params) {
        if !v.iter().any(|x| x.name == d.name) {
            v.push(*d);
        }
    }
    v
});

/// The candidate lines, in registry order.
pub fn candidates() -> impl Iterator<Item = &'static PolicyEntry> {
    POLICIES.iter().filter(|e| e.kind == Kind::Candidate)
}

/// The policies a command replays when none are named: the reference and every candidate,
/// comma-separated (`reference,lookaround,...`).
pub fn default_list() -> &'static str {
    static LIST: LazyLock<String> = LazyLock::new(|| {
        POLICIES
            .iter()
            .filter(|e| e.kind != Kind::Composite)
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(",")
    });
    LIST.as_str()
}

/// The candidates `all` composes, with their parts: every candidate in registry order, except
/// a variant of an earlier one (every decision point it declares is already claimed: two
/// policies cannot decide one hook), which replays on its own only. A candidate that claims
/// some hooks already taken and some free is kept, and is a conflict of the composite
/// (`Compose::conflicts`, refused by the tests).
fn composed_parts(profile: &KernelProfile, params: &Params) -> Vec<(&'static PolicyEntry, Part)> {
    let mut claimed: Vec<Hook> = Vec::new();
    let mut out = Vec::new();
    for e in candidates() {
        let Some(part) = (e.part)(profile, params) else {
            continue;
        };
        let hooks = part.hooks();
        if !hooks.is_empty() && hooks.iter().all(|h| claimed.contains(h)) {
            continue;
        }
        claimed.extend_from_slice(hooks);
        out.push((e, part));
    }
    out
}

/// Every candidate composed into one policy, with `params` given to each.
fn compose_candidates(profile: &KernelProfile, params: &Params) -> Compose {
    let parts = composed_parts(profile, params)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    Compose::new("all", parts)
}

/// The union of the contracts of the candidates `all` composes.
fn union_contract(mode: Mode, profile: &KernelProfile, params: &Params) -> Contract {
    let parts: Vec<Contract> = composed_parts(profile, params)
        .into_iter()
        .map(|(e, _)| (e.contract)(mode, profile, params))
        .collect();
    Contract::union("all", mode, &parts)
}

const WINDOW: ParamDef = ParamDef {
    name: "window",
    min: 1,
    max: 512,
    default: MIN_LRU_BATCH as u64,
    help: "look-around window in pages, including the young PTE (kernel: MIN_LRU_BATCH = 64)",
};

fn window(p: &Params) -> u32 {
    u32::try_from(p.get("window")).unwrap_or(MIN_LRU_BATCH)
}

fn boxed<P: mmreplay_reference::policy::Policy + Send + 'static>(
    name: &str,
    profile: &KernelProfile,
    policy: P,
) -> BoxedEngine {
    NamedEngine::new(name, Box::new(Model::new(profile.clone(), policy)))
}

/// A candidate's registry line from one constructor: `new` builds the policy for a profile
/// and parameters, both as a model of its own and as a part of a composite, so the two can
/// never differ.
macro_rules! candidate {
    (name: $name:literal, summary: $summary:literal, params: $params:expr,
     new: $new:expr, contract: $contract:expr $(,)?) => {
        PolicyEntry {
            name: $name,
            summary: $summary,
            kind: Kind::Candidate,
            own_params: $params,
            build: |pr, p, n| boxed(n, pr, ($new)(pr, p)),
            part: |pr, p| Some(Box::new(($new)(pr, p))),
            contract: $contract,
        }
    };
}

/// Every user-visible policy. To add one: write a module with the `Policy` impl (listing its
/// `hooks`) and a `contract` function, then add one `candidate!` line here: the CLI default
/// list, `all` and its contract, `mmreplay policies`, the corpus snapshots and the property
/// tests all follow this table.
pub static POLICIES: &[PolicyEntry] = &[
    PolicyEntry {
        name: "reference",
        summary: "the reference model (kernel before each optimisation)",
        kind: Kind::Reference,
        own_params: &[],
        build: |pr, _, n| boxed(n, pr, Reference),
        part: |_, _| None,
        contract: |m, _, _| Contract {
            candidate: "reference".into(),
            mode: m,
            counters: vec![],
            fields: vec![],
            relations: vec![],
        },
    },
    candidate! {
        name: "lookaround",
        summary: "MGLRU look-around in the reclaim rmap walk (018ee47f1489)",
        params: &[WINDOW],
        new: |pr: &KernelProfile, p: &Params| LookAround { window: window(p), base: pr.base },
        contract: |m, _, p| lookaround::contract(m, window(p)),
    },
    candidate! {
        name: "ad-preserve",
        summary: "keep young/dirty across migration entries (2e3468778dbe)",
        params: &[],
        new: |_: &KernelProfile, _: &Params| AdPreserve,
        contract: |m, pr, _| ad_preserve::contract(m, pr.base, pr.mig_ad_supported),
    },
    candidate! {
        name: "batched-unshare",
        summary: "one hugetlb unshare table-sync IPI per mmu_gather flush (8ce720d5bd91)",
        params: &[],
        new: |_: &KernelProfile, _: &Params| BatchedUnshare,
        contract: |m, _, _| batched_unshare::contract(m),
    },
    candidate! {
        name: "young-preserve",
        summary: "keep only the young bit across migration entries (the A half of 2e3468778dbe)",
        params: &[],
        new: |_: &KernelProfile, _: &Params| crate::young_preserve::YoungPreserve,
        contract: |m, pr, _| crate::young_preserve::contract(m, pr.mig_ad_supported),
    },
    PolicyEntry {
        name: "all",
        summary: "every candidate above together, each deciding its own hooks",
        kind: Kind::Composite,
        own_params: &[],
        build: |pr, p, n| boxed(n, pr, compose_candidates(pr, p)),
        part: |_, _| None,
        contract: union_contract,
    },
];

/// Why a policy spec was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Empty spec.
    #[error("empty policy name (expected one of: {known})")]
    Empty {
        /// Known names.
        known: String,
    },
    /// No such policy.
    #[error("unknown policy `{name}` in `{spec}` (expected one of: {known})")]
    UnknownPolicy {
        /// Whole spec.
        spec: String,
        /// Name given.
        name: String,
        /// Known names.
        known: String,
    },
    /// A parameter the policy does not take.
    #[error("policy `{policy}` has no parameter `{param}` in `{spec}` (accepted: {accepted})")]
    UnknownParam {
        /// Whole spec.
        spec: String,
        /// Policy name.
        policy: String,
        /// Parameter given.
        param: String,
        /// Accepted parameters.
        accepted: String,
    },
    /// `name=value` expected.
    #[error("malformed parameter `{part}` in `{spec}` (expected name=value)")]
    Malformed {
        /// Whole spec.
        spec: String,
        /// Offending part.
        part: String,
    },
    /// Not an unsigned integer, or out of range.
    #[error(
        "bad value `{value}` for `{param}` in `{spec}` (expected an integer in {min}..={max})"
    )]
    BadValue {
        /// Whole spec.
        spec: String,
        /// Parameter.
        param: String,
        /// Value given.
        value: String,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// The same parameter twice.
    #[error("parameter `{param}` given twice in `{spec}`")]
    DuplicateParam {
        /// Whole spec.
        spec: String,
        /// Parameter.
        param: String,
    },
    /// The same spec twice in a list.
    #[error("policy `{spec}` listed twice")]
    DuplicatePolicy {
        /// Spec.
        spec: String,
    },
}

/// A parsed policy spec: a registry entry plus parameter values.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    entry: &'static PolicyEntry,
    params: Params,
    text: String,
}

impl PolicySpec {
    /// Canonical display name: the policy name, then every parameter that differs from its
    /// default (`lookaround`, `lookaround:window=32`).
    pub fn name(&self) -> &str {
        &self.text
    }

    /// Full spec: the policy name and every parameter it declares, defaults spelled out
    /// (`lookaround:window=64`), so a report or matrix cell says exactly what ran even when the
    /// default changes. `parse` of it gives the same spec.
    pub fn full_name(&self) -> String {
        let mut s = self.entry.name.to_string();
        for (i, d) in self.entry.params().iter().enumerate() {
            s.push(if i == 0 { ':' } else { ',' });
            s.push_str(&format!("{}={}", d.name, self.params.get(d.name)));
        }
        s
    }

    /// Registry name without parameters.
    pub fn policy(&self) -> &'static str {
        self.entry.name
    }

    /// Parameter values.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Build a model of this policy.
    pub fn build(&self, profile: &KernelProfile) -> BoxedEngine {
        (self.entry.build)(profile, &self.params, &self.text)
    }

    /// This policy's contract with the reference.
    pub fn contract(&self, mode: Mode, profile: &KernelProfile) -> Contract {
        let mut c = (self.entry.contract)(mode, profile, &self.params);
        c.candidate = self.text.clone();
        c
    }
}

impl std::fmt::Debug for PolicyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEntry")
            .field("name", &self.name)
            .finish()
    }
}

fn known() -> String {
    POLICIES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse one spec: `name` or `name:param=value,param=value`.
pub fn parse(spec: &str) -> Result<PolicySpec, RegistryError> {
    let spec = spec.trim();
    let (name, rest) = match spec.split_once(':') {
        Some((n, r)) => (n.trim(), Some(r)),
        None => (spec, None),
    };
    if name.is_empty() {
        return Err(RegistryError::Empty { known: known() });
    }
    let entry =
        POLICIES
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| RegistryError::UnknownPolicy {
                spec: spec.to_string(),
                name: name.to_string(),
                known: known(),
            })?;
    let mut given: BTreeMap<&'static str, u64> = BTreeMap::new();
    for part in rest.into_iter().flat_map(|r| r.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| RegistryError::Malformed {
                spec: spec.to_string(),
                part: part.to_string(),
            })?;
        let (k, v) = (k.trim(), v.trim());
        let def = entry.params().iter().find(|d| d.name == k).ok_or_else(|| {
            RegistryError::UnknownParam {
                spec: spec.to_string(),
                policy: entry.name.to_string(),
                param: k.to_string(),
                accepted: if entry.params().is_empty() {
                    "none".to_string()
                } else {
                    entry
                        .params()
                        .iter()
                        .map(|d| d.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }
        })?;
        let bad = || RegistryError::BadValue {
            spec: spec.to_string(),
            param: k.to_string(),
            value: v.to_string(),
            min: def.min,
            max: def.max,
        };
        let n: u64 = v.parse().map_err(|_| bad())?;
        if n < def.min || n > def.max {
            return Err(bad());
        }
        if given.insert(def.name, n).is_some() {
            return Err(RegistryError::DuplicateParam {
                spec: spec.to_string(),
                param: k.to_string(),
            });
        }
    }
    let mut params = BTreeMap::new();
    let mut shown = Vec::new();
    for d in entry.params() {
        let v = given.get(d.name).copied().unwrap_or(d.default);
        params.insert(d.name, v);
        if v != d.default {
            shown.push(format!("{}={v}", d.name));
        }
    }
    let text = if shown.is_empty() {
        entry.name.to_string()
    } else {
        format!("{}:{}", entry.name, shown.join(","))
    };
    Ok(PolicySpec {
        entry,
        params: Params(params),
        text,
    })
}

/// Parse a list of specs (one per element); the same canonical spec twice is an error.
pub fn parse_list<S: AsRef<str>>(specs: &[S]) -> Result<Vec<PolicySpec>, RegistryError> {
    let mut out: Vec<PolicySpec> = Vec::new();
    for s in specs {
        let p = parse(s.as_ref())?;
        if out.iter().any(|q| q.text == p.text) {
            return Err(RegistryError::DuplicatePolicy { spec: p.text });
        }
        out.push(p);
    }
    Ok(out)
}

/// Build engines for a list of specs, in order.
pub fn build_all(specs: &[PolicySpec], profile: &KernelProfile) -> Vec<BoxedEngine> {
    specs.iter().map(|s| s.build(profile)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Rule;

    #[test]
    fn parses_names_and_params() {
        let p = parse("lookaround").map(|p| p.name().to_string());
        assert_eq!(p, Ok("lookaround".to_string()));
        let p = parse(" lookaround:window=32 ");
        assert!(
            matches!(&p, Ok(s) if s.name() == "lookaround:window=32" && s.params().get("window") == 32)
        );
        // Default value is not shown.
        let p = parse("lookaround:window=64");
        assert!(matches!(&p, Ok(s) if s.name() == "lookaround"));
        for n in [
            "reference",
            "ad-preserve",
            "batched-unshare",
            "all",
            "all:window=8",
        ] {
            assert!(parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn clear_errors() {
        let e = parse("lookarond")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("unknown policy `lookarond`"), "{e}");
        let names: Vec<&str> = POLICIES.iter().map(|e| e.name).collect();
        assert!(e.contains(&names.join(", ")), "{e}");
        let e = parse("lookaround:win=3")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("no parameter `win`") && e.contains("accepted: window"),
            "{e}"
        );
        let e = parse("lookaround:window=0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("bad value `0` for `window`") && e.contains("1..=512"),
            "{e}"
        );
        let e = parse("lookaround:window=x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("bad value `x`"), "{e}");
        let e = parse("lookaround:window")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("malformed parameter `window`"), "{e}");
        let e = parse("ad-preserve:window=3")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("accepted: none"), "{e}");
        let e = parse("lookaround:window=3,window=4")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("given twice"), "{e}");
        assert!(matches!(parse(""), Err(RegistryError::Empty { .. })));
        assert!(matches!(
            parse_list(&["lookaround", "lookaround:window=64"]),
            Err(RegistryError::DuplicatePolicy { .. })
        ));
        // Negative controls are not reachable from the registry.
        assert!(parse("no-sync-unshare").is_err());
    }

    #[test]
    fn builds_named_engines() {
        let specs = parse_list(&["reference", "lookaround:window=16", "all"]);
        let Ok(specs) = specs else {
            panic!("parse failed: {specs:?}");
        };
        let engines = build_all(&specs, &KernelProfile::default());
        let names: Vec<&str> = engines.iter().map(|e| e.name()).collect();
        assert_eq!(names, vec!["reference", "lookaround:window=16", "all"]);
    }

    #[test]
    fn the_composite_follows_the_registry() {
        use mmreplay_reference::profile::Base;
        for base in [Base::K61, Base::Knew] {
            let profile = KernelProfile {
                base,
                ..KernelProfile::default()
            };
            let all = parse("all").map(|s| s.params().clone()).unwrap_or_default();
            let c = compose_candidates(&profile, &all);
            // Every candidate but variants of an earlier one is a part, and no two claim the
            // same decision point.
            assert_eq!(c.conflicts(), &[], "{base:?}");
            let names: Vec<&str> = composed_parts(&profile, &all)
                .iter()
                .map(|(e, _)| e.name)
                .collect();
            assert_eq!(c.part_names(), names);
            for name in ["lookaround", "ad-preserve", "batched-unshare"] {
                assert!(names.contains(&name), "{name} left out of all: {names:?}");
            }
            // Its contract allows what any part allows, joined: look-around lowers shootdown
            // IPIs and A/D preservation raises them (any); only batched unshare changes
            // table-sync IPIs (<=); a dirty PTE only where the folio is dirty (ad-preserve).
            let k = union_contract(Mode::Lockstep, &profile, &all);
            assert_eq!(k.counter_rule("ipi_sends_shootdown"), Rule::Any);
            assert_eq!(k.counter_rule("ipi_sends_table_sync"), Rule::LessOrEqual);
            assert_eq!(k.counter_rule("rmap_walks"), Rule::LessOrEqual);
            assert_eq!(k.counter_rule("mig_restored_young"), Rule::GreaterOrEqual);
            assert_eq!(k.counter_rule("faults"), Rule::Equal);
            assert_eq!(k.field_rule("pte.dirty"), Rule::GreaterOrEqualIfFolioDirty);
            assert_eq!(k.field_rule("pte.young"), Rule::Any);
            assert_eq!(k.field_rule("folio.dirty"), Rule::GreaterOrEqual);
            assert_eq!(k.field_rule("vma"), Rule::Equal);
            let rel: usize = composed_parts(&profile, &all)
                .iter()
                .map(|(e, _)| (e.contract)(Mode::Lockstep, &profile, &all).relations.len())
                .sum();
            assert_eq!(k.relations.len(), rel);
            // Free-running: the S tier stays equal, the rest is free.
            let f = union_contract(Mode::FreeRunning, &profile, &all);
            assert_eq!(f.field_rule("page.content"), Rule::EqualWhereBoth);
            assert_eq!(f.field_rule("pte.young"), Rule::Any);
        }
        let mut list = vec!["reference"];
        list.extend(candidates().map(|e| e.name));
        assert_eq!(default_list(), list.join(","));
        let window = POLICIES
            .iter()
            .find(|e| e.name == "all")
            .map(|e| e.params());
        assert_eq!(window.map(|p| p.len()), Some(1));
    }
}
