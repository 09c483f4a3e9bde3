//! Equivalence contracts (ARCHITECTURE.md, code map: `candidates/`, mm-semantics C.0-C.4) as data: an ordered list of
//! (counter-name glob, `Rule`) and (snapshot field-class glob, `Rule`); the first matching
//! pattern decides, and anything unmatched must be `Equal`. `Contract::check` compares a
//! reference run and a candidate run (counters + canonical snapshot view) and returns every
//! breach. It must never know a particular policy: the per-candidate rule lists live in the
//! candidate modules.

use std::fmt;

use serde::{Deserialize, Serialize};

use mmreplay_reference::counters::Counters;
use mmreplay_reference::snapshot::Snapshot;

use crate::view::{FieldView, Val};

/// How a candidate's value may relate to the reference's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// Must be identical (a fact present on one side only is a breach).
    Equal,
    /// Must be identical where both sides have the fact (entities that exist in one run only,
    /// e.g. a page evicted in one run, are not comparable).
    EqualWhereBoth,
    /// Candidate <= reference (numbers; booleans as 0/1).
    LessOrEqual,
    /// Candidate >= reference.
    GreaterOrEqual,
    /// For `pte.dirty`: candidate may be dirty where the reference is clean only if the
    /// candidate's folio (PG_dirty) is dirty (2e3468778dbe: "dirty only if the folio is dirty").
    GreaterOrEqualIfFolioDirty,
    /// May differ in any way.
    Any,
}

impl Rule {
    /// Short symbol for reports.
    pub fn symbol(self) -> &'static str {
        match self {
            Rule::Equal => "=",
            Rule::EqualWhereBoth => "= where both",
            Rule::LessOrEqual => "<=",
            Rule::GreaterOrEqual => ">=",
            Rule::GreaterOrEqualIfFolioDirty => ">= only if folio dirty",
            Rule::Any => "any",
        }
    }
}

impl Rule {
    /// The least strict rule that allows everything `self` and `other` allow: what a
    /// composition of two policies may do to a value each may change on its own. `Equal` is
    /// the bottom, `Any` the top; rules that allow moves in opposite directions join to `Any`.
    pub fn join(self, other: Rule) -> Rule {
        use Rule::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Equal, x) | (x, Equal) => x,
            (Any, _) | (_, Any) => Any,
            (GreaterOrEqual, GreaterOrEqualIfFolioDirty)
            | (GreaterOrEqualIfFolioDirty, GreaterOrEqual) => GreaterOrEqual,
            // LessOrEqual with a GreaterOrEqual kind, or EqualWhereBoth with an ordering rule
            // (a fact present on one side only plus a direction): no rule short of Any.
            _ => Any,
        }
    }
}

/// Replay mode the contract is for (ARCHITECTURE.md, code map: `candidates/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Reclaim victims and migration lists identical in both runs: only what the policy
    /// touches directly may differ.
    Lockstep,
    /// Each policy makes its own choices: only the semantic (S) tier must agree.
    FreeRunning,
}

/// What a breach is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subject {
    /// A counter (`Counters` field).
    Counter,
    /// A snapshot field class (see `view.rs`).
    Field,
    /// A relation between two counters of the candidate alone.
    Relation,
}

/// A candidate-internal counter relation: `left` `rule` `factor` x `right`, e.g. every folio
/// look-around promoted had its A bit cleared: `gen_promote_lookaround <= 1 x
/// a_cleared_lookaround`. Only `LessOrEqual`, `GreaterOrEqual` and `Equal` are meaningful.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// Left counter.
    pub left: String,
    /// Comparison.
    pub rule: Rule,
    /// Multiplier of the right counter.
    pub factor: u64,
    /// Right counter.
    pub right: String,
}

/// One contract breach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    /// Counter or snapshot field.
    pub subject: Subject,
    /// Counter name or field class, e.g. `rmap_walks`, `pte.dirty`.
    pub field: String,
    /// Entity key (`mm1 0x1000`, `folio 7`); empty for counters.
    pub key: String,
    /// Reference value (`absent` if the reference has no such fact).
    pub reference: String,
    /// Candidate value.
    pub candidate: String,
    /// The rule that was broken.
    pub rule: Rule,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.subject {
            Subject::Counter => "counter",
            Subject::Field => "field",
            Subject::Relation => {
                return write!(
                    f,
                    "relation {}: candidate has {} vs {}",
                    self.field, self.candidate, self.reference
                )
            }
        };
        write!(f, "{what} {}", self.field)?;
        if !self.key.is_empty() {
            write!(f, " [{}]", self.key)?;
        }
        let rule = match self.rule {
            Rule::GreaterOrEqualIfFolioDirty => {
                "candidate >= reference only where the folio is dirty".to_string()
            }
            r => format!("candidate {} reference", r.symbol()),
        };
        write!(
            f,
            ": reference {}, candidate {} (contract: {rule})",
            self.reference, self.candidate
        )
    }
}

/// One side of a comparison.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Final counters.
    pub counters: &'a Counters,
    /// Final snapshot.
    pub snapshot: &'a Snapshot,
}

/// A candidate's contract with the reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// Candidate (registry) name.
    pub candidate: String,
    /// Mode it applies to.
    pub mode: Mode,
    /// Counter rules, first match wins (glob with `*`); unmatched: `Equal`.
    pub counters: Vec<(String, Rule)>,
    /// Field-class rules, first match wins; unmatched: `Equal`.
    pub fields: Vec<(String, Rule)>,
    /// Relations the candidate's own counters must satisfy (any mode).
    pub relations: Vec<Relation>,
}

/// `*` glob (any run of characters); everything else literal.
pub fn glob(pattern: &str, s: &str) -> bool {
    let p = pattern.as_bytes();
    let t = s.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

/// The semantic tier (mm-semantics C.0) as field rules: VMAs, what user loads observe, folio
/// identities and contents, pins, hugetlb table sharing. Identical in every mode.
pub fn s_tier_fields() -> Vec<(String, Rule)> {
    [
        ("vma", Rule::Equal),
        ("mm.exists", Rule::Equal),
        ("page.anon_mapped", Rule::Equal),
        ("page.content", Rule::EqualWhereBoth),
        ("pte.folio", Rule::EqualWhereBoth),
        ("folio.kind", Rule::EqualWhereBoth),
        ("folio.content", Rule::EqualWhereBoth),
        ("folio.pincount", Rule::EqualWhereBoth),
        ("swap.content", Rule::EqualWhereBoth),
        ("pmd_table.pt_share_count", Rule::Equal),
        ("mm.nr_pmds", Rule::Equal),
    ]
    .into_iter()
    .map(|(p, r)| (p.to_string(), r))
    .collect()
}

/// Helper for relation tables: `(left, rule, factor, right)`.
pub fn relations(list: &[(&str, Rule, u64, &str)]) -> Vec<Relation> {
    list.iter()
        .map(|(l, r, f, rt)| Relation {
            left: l.to_string(),
            rule: *r,
            factor: *f,
            right: rt.to_string(),
        })
        .collect()
}

/// Helper for rule tables.
pub fn rules(list: &[(&str, Rule)]) -> Vec<(String, Rule)> {
    list.iter().map(|(p, r)| (p.to_string(), *r)).collect()
}

impl Contract {
    /// The free-running contract shared by candidates that change reclaim choices: S tier
    /// equal, everything else may differ (C.0: "Only S-tier equality and the D invariants are
    /// enforced").
    pub fn free_running(candidate: &str) -> Contract {
        let mut fields = s_tier_fields();
        fields.push(("*".to_string(), Rule::Any));
        Contract {
            candidate: candidate.to_string(),
            mode: Mode::FreeRunning,
            counters: rules(&[("*", Rule::Any)]),
            fields,
            relations: Vec::new(),
        }
    }

    /// The contract of a composition of policies (registry `all`): every counter and field a
    /// part may change may change as the join of the parts' rules (`Rule::join`), and every
    /// part's relations hold. Counters are joined name by name over every `Counters` field, so
    /// the result is exact. Field rules are joined pattern by pattern, literal patterns first:
    /// exact for literal class names (every candidate contract today); a glob is joined as
    /// written, which may be stricter than the parts for a class one part names literally and
    /// another matches by a different glob.
    pub fn union(candidate: &str, mode: Mode, parts: &[Contract]) -> Contract {
        let mut counters = Vec::new();
        for (name, _) in Counters::default().pairs() {
            let rule = parts
                .iter()
                .fold(Rule::Equal, |r, p| r.join(p.counter_rule(name)));
            if rule != Rule::Equal {
                counters.push((name.to_string(), rule));
            }
        }
        let mut patterns: Vec<&str> = Vec::new();
        for p in parts {
            for (pat, _) in &p.fields {
                if !patterns.contains(&pat.as_str()) {
                    patterns.push(pat);
                }
            }
        }
        // Stable: literal patterns keep their order, globs go after them.
        patterns.sort_by_key(|p| p.contains('*'));
        let fields = patterns
            .into_iter()
            .map(|pat| {
                let rule = parts
                    .iter()
                    .fold(Rule::Equal, |r, p| r.join(p.field_rule(pat)));
                (pat.to_string(), rule)
            })
            .collect();
        Contract {
            candidate: candidate.to_string(),
            mode,
            counters,
            fields,
            relations: parts.iter().flat_map(|p| p.relations.clone()).collect(),
        }
    }

    /// Rule for a counter.
    pub fn counter_rule(&self, name: &str) -> Rule {
        self.counters
            .iter()
            .find(|(p, _)| glob(p, name))
            .map_or(Rule::Equal, |(_, r)| *r)
    }

    /// Rule for a field class.
    pub fn field_rule(&self, class: &str) -> Rule {
        self.fields
            .iter()
            .find(|(p, _)| glob(p, class))
            .map_or(Rule::Equal, |(_, r)| *r)
    }

    /// Compare a reference run and a candidate run; every breach, counters first (in
    /// `Counters` order), then fields (sorted by class and key).
    pub fn check(&self, reference: Observed<'_>, candidate: Observed<'_>) -> Vec<Breach> {
        let mut out = self.check_counters(reference.counters, candidate.counters);
        out.extend(self.check_relations(candidate.counters));
        out.extend(
            self.compare_views(reference.snapshot, candidate.snapshot)
                .breaches,
        );
        out
    }

    /// Relation part of `check` (candidate counters only). An unknown counter name is a
    /// breach too (a typo must not silently pass).
    pub fn check_relations(&self, candidate: &Counters) -> Vec<Breach> {
        let mut out = Vec::new();
        for r in &self.relations {
            let (l, rt) = (candidate.get(&r.left), candidate.get(&r.right));
            let ok = match (l, rt) {
                (Some(l), Some(rt)) => {
                    let rhs = rt.saturating_mul(r.factor);
                    match r.rule {
                        Rule::LessOrEqual => l <= rhs,
                        Rule::GreaterOrEqual => l >= rhs,
                        Rule::Any => true,
                        _ => l == rhs,
                    }
                }
                _ => false,
            };
            if !ok {
                let show = |v: Option<u64>| {
                    v.map_or_else(|| "unknown counter".to_string(), |v| v.to_string())
                };
                out.push(Breach {
                    subject: Subject::Relation,
                    field: format!("{} {} {} x {}", r.left, r.rule.symbol(), r.factor, r.right),
                    key: String::new(),
                    reference: format!("{} = {}", r.right, show(rt)),
                    candidate: format!("{} = {}", r.left, show(l)),
                    rule: r.rule,
                });
            }
        }
        out
    }

    /// Counter part of `check`.
    pub fn check_counters(&self, reference: &Counters, candidate: &Counters) -> Vec<Breach> {
        let mut out = Vec::new();
        for ((name, r), (_, c)) in reference.pairs().into_iter().zip(candidate.pairs()) {
            let rule = self.counter_rule(name);
            let ok = match rule {
                Rule::Any => true,
                Rule::LessOrEqual => c <= r,
                Rule::GreaterOrEqual => c >= r,
                Rule::Equal | Rule::EqualWhereBoth | Rule::GreaterOrEqualIfFolioDirty => c == r,
            };
            if !ok {
                out.push(Breach {
                    subject: Subject::Counter,
                    field: name.to_string(),
                    key: String::new(),
                    reference: r.to_string(),
                    candidate: c.to_string(),
                    rule,
                });
            }
        }
        out
    }

    /// Field part of `check`, on prebuilt views of the whole state. `compare_views`
    /// (`view_diff.rs`) gives the same breaches from the snapshots without building them.
    pub fn check_views(&self, rv: &FieldView, cv: &FieldView) -> Vec<Breach> {
        let mut out = Vec::new();
        let mut cache: Option<(&'static str, Rule)> = None;
        let mut rule_of = |class: &'static str| -> Rule {
            match cache {
                Some((c, r)) if c == class => r,
                _ => {
                    let r = self.field_rule(class);
                    cache = Some((class, r));
                    r
                }
            }
        };
        // Merge-walk the two sorted maps.
        let mut ri = rv.facts.iter().peekable();
        let mut ci = cv.facts.iter().peekable();
        loop {
            let (key, r, c) = match (ri.peek(), ci.peek()) {
                (None, None) => break,
                (Some((rk, rval)), None) => {
                    let k = (*rk).clone();
                    let v = (*rval).clone();
                    ri.next();
                    (k, Some(v), None)
                }
                (None, Some((ck, cval))) => {
                    let k = (*ck).clone();
                    let v = (*cval).clone();
                    ci.next();
                    (k, None, Some(v))
                }
                (Some((rk, rval)), Some((ck, cval))) => match rk.cmp(ck) {
                    std::cmp::Ordering::Less => {
                        let k = (*rk).clone();
                        let v = (*rval).clone();
                        ri.next();
                        (k, Some(v), None)
                    }
                    std::cmp::Ordering::Greater => {
                        let k = (*ck).clone();
                        let v = (*cval).clone();
                        ci.next();
                        (k, None, Some(v))
                    }
                    std::cmp::Ordering::Equal => {
                        let k = (*rk).clone();
                        let (a, b) = ((*rval).clone(), (*cval).clone());
                        ri.next();
                        ci.next();
                        (k, Some(a), Some(b))
                    }
                },
            };
            if r == c {
                continue;
            }
            let (class, ent) = key;
            let rule = rule_of(class);
            let ok = allows(rule, r.as_ref(), c.as_ref(), || {
                // The candidate's PTE is dirty where the reference's is clean: allowed only
                // if the folio it maps is dirty in the candidate.
                match cv.facts.get(&("pte.folio", ent.clone())) {
                    Some(Val::Num(id)) => u64::try_from(*id).is_ok_and(|id| cv.folio_is_dirty(id)),
                    _ => false,
                }
            });
            if !ok {
                let show = |v: &Option<Val>| {
                    v.as_ref()
                        .map_or_else(|| "absent".to_string(), |v| v.to_string())
                };
                out.push(Breach {
                    subject: Subject::Field,
                    field: class.to_string(),
                    key: ent,
                    reference: show(&r),
                    candidate: show(&c),
                    rule,
                });
            }
        }
        out
    }
}

/// Whether `rule` allows a fact that differs between the runs (`r` != `c`; `None`: absent on
/// that side). `candidate_folio_dirty` answers, for `GreaterOrEqualIfFolioDirty` only, whether
/// the folio the candidate's PTE at this key maps is dirty (PG_dirty). The one definition of
/// the field rules: the whole-view check and the difference walk (`view_diff.rs`) both use it.
pub(crate) fn allows(
    rule: Rule,
    r: Option<&Val>,
    c: Option<&Val>,
    candidate_folio_dirty: impl FnOnce() -> bool,
) -> bool {
    match rule {
        Rule::Any => true,
        Rule::Equal => false,
        Rule::EqualWhereBoth => r.is_none() || c.is_none(),
        Rule::LessOrEqual => matches!((r, c), (Some(Val::Num(a)), Some(Val::Num(b))) if b <= a),
        Rule::GreaterOrEqual => matches!((r, c), (Some(Val::Num(a)), Some(Val::Num(b))) if b >= a),
        Rule::GreaterOrEqualIfFolioDirty => match (r, c) {
            (Some(Val::Num(a)), Some(Val::Num(b))) if b > a => candidate_folio_dirty(),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        assert!(glob("*", "anything"));
        assert!(glob("a_tc_*", "a_tc_rmap_pte"));
        assert!(!glob("a_tc_*", "a_cleared_rmap_pte"));
        assert!(glob("pte.*", "pte.young"));
        assert!(glob("*_table_sync", "ipi_sends_table_sync"));
        assert!(glob("rmap_walks", "rmap_walks"));
        assert!(!glob("rmap_walks", "rmap_walks2"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*f", "abcde"));
    }

    #[test]
    fn counter_rules_first_match_and_default_equal() {
        let k = Contract {
            candidate: "x".into(),
            mode: Mode::Lockstep,
            counters: rules(&[("rmap_walks", Rule::LessOrEqual), ("a_*", Rule::Any)]),
            fields: vec![],
            relations: vec![],
        };
        let r = Counters {
            rmap_walks: 10,
            a_tc_rmap_pte: 5,
            faults: 3,
            ..Counters::default()
        };
        let mut c = r.clone();
        c.rmap_walks = 4;
        c.a_tc_rmap_pte = 99;
        assert!(k.check_counters(&r, &c).is_empty());
        c.rmap_walks = 11;
        c.faults = 2;
        let b = k.check_counters(&r, &c);
        let names: Vec<&str> = b.iter().map(|b| b.field.as_str()).collect();
        assert_eq!(names, vec!["faults", "rmap_walks"]);
        assert_eq!(b.get(1).map(|b| b.rule), Some(Rule::LessOrEqual));
    }

    #[test]
    fn join_is_the_least_rule_allowing_both() {
        use Rule::*;
        let all = [
            Equal,
            EqualWhereBoth,
            LessOrEqual,
            GreaterOrEqual,
            GreaterOrEqualIfFolioDirty,
            Any,
        ];
        for a in all {
            assert_eq!(a.join(a), a);
            assert_eq!(a.join(Equal), a);
            assert_eq!(a.join(Any), Any);
            for b in all {
                assert_eq!(a.join(b), b.join(a), "{a:?} {b:?}");
            }
        }
        assert_eq!(LessOrEqual.join(GreaterOrEqual), Any);
        assert_eq!(
            GreaterOrEqualIfFolioDirty.join(GreaterOrEqual),
            GreaterOrEqual
        );
        assert_eq!(EqualWhereBoth.join(LessOrEqual), Any);
    }

    #[test]
    fn union_joins_counters_by_name_and_keeps_relations() {
        let a = Contract {
            candidate: "a".into(),
            mode: Mode::Lockstep,
            counters: rules(&[
                ("tlb_flush_*", Rule::LessOrEqual),
                ("rmap_walks", Rule::LessOrEqual),
            ]),
            fields: rules(&[("pte.young", Rule::Any)]),
            relations: relations(&[("faults", Rule::LessOrEqual, 1, "steps")]),
        };
        let b = Contract {
            candidate: "b".into(),
            mode: Mode::Lockstep,
            counters: rules(&[("tlb_flush_remote", Rule::GreaterOrEqual)]),
            fields: rules(&[
                ("pte.dirty", Rule::GreaterOrEqual),
                ("pte.young", Rule::GreaterOrEqual),
            ]),
            relations: vec![],
        };
        let u = Contract::union("ab", Mode::Lockstep, &[a, b]);
        assert_eq!(u.counter_rule("tlb_flush_remote"), Rule::Any);
        assert_eq!(u.counter_rule("tlb_flush_local"), Rule::LessOrEqual);
        assert_eq!(u.counter_rule("rmap_walks"), Rule::LessOrEqual);
        assert_eq!(u.counter_rule("faults"), Rule::Equal);
        assert_eq!(u.field_rule("pte.young"), Rule::Any);
        assert_eq!(u.field_rule("pte.dirty"), Rule::GreaterOrEqual);
        assert_eq!(u.field_rule("pte.write"), Rule::Equal);
        assert_eq!(u.relations.len(), 1);
    }
}
