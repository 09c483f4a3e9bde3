//! The final compare without whole-state views: the two snapshots' sorted entities (CPUs,
//! folios, swap entries, mms, and in each mm its VMAs, hugetlb tables and PTEs) are walked
//! together, and `FieldView` facts are made only for the entities that differ, with the
//! contract's rules applied to them as they are made. Memory is bounded by the difference,
//! not by the machine: a whole-machine capture's views were 20 string-keyed facts per page,
//! and building them for a candidate whose final state differed took 16 GB.
//!
//! It gives exactly what `Contract::check_views` over `FieldView::of` of both sides gives
//! (same breaches in the same order, same first differing fact), because the facts come from
//! the same per-entity functions in `view.rs` and the rules from `contract::allows`; a
//! property test (`tests/view_diff_prop.rs`) checks it on random and perturbed snapshots.
//! A snapshot not in canonical order (the walk's premise, which `Snapshot` promises and
//! [`is_canonical`] checks) is compared by the whole views instead. It must never decide a
//! rule itself or skip an entity whose facts could differ.

use std::cmp::Ordering;
use std::fmt::Write as _;

use mmreplay_reference::snapshot::{MmSnap, PteSnap, Snapshot, VmaSnap};

use crate::contract::{allows, Breach, Contract, Rule, Subject};
use crate::view::{self, Facts, FieldView, PageIn, Val};

/// One fact that differs: field class, entity key, and its value on each side (`None`:
/// absent on that side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffFact {
    /// Field class, e.g. `pte.young`.
    pub class: &'static str,
    /// Entity key, e.g. `mm1 0x1000`.
    pub key: String,
    /// Reference value.
    pub reference: Option<Val>,
    /// Candidate value.
    pub candidate: Option<Val>,
}

/// Two snapshots' views compared under a contract.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewCompare {
    /// Every field breach, sorted by (class, key), as `Contract::check_views` lists them.
    pub breaches: Vec<Breach>,
    /// The differing fact with the least (class, key), allowed or not.
    pub first: Option<DiffFact>,
}

impl Contract {
    /// The field breaches and the first differing fact between two final states, walking
    /// only their differences (module doc).
    pub fn compare_views(&self, reference: &Snapshot, candidate: &Snapshot) -> ViewCompare {
        if reference == candidate {
            return ViewCompare::default();
        }
        if !is_canonical(reference) || !is_canonical(candidate) {
            return self.compare_views_whole(reference, candidate);
        }
        let mut w = Walk::new(self, reference, candidate);
        w.run();
        w.finish()
    }

    /// The same as [`Contract::compare_views`] by building both whole views: the definition
    /// the walk is tested against, and its fallback.
    pub fn compare_views_whole(&self, reference: &Snapshot, candidate: &Snapshot) -> ViewCompare {
        let rv = FieldView::of(reference);
        let cv = FieldView::of(candidate);
        ViewCompare {
            breaches: self.check_views(&rv, &cv),
            first: first_difference_whole(&rv, &cv),
        }
    }
}

/// The differing fact with the least key between two whole views.
pub fn first_difference_whole(rv: &FieldView, cv: &FieldView) -> Option<DiffFact> {
    let a = rv.facts.iter().find(|(k, v)| cv.facts.get(k) != Some(v));
    let b = cv.facts.iter().find(|(k, v)| rv.facts.get(k) != Some(v));
    let k = [a.map(|x| x.0), b.map(|x| x.0)]
        .into_iter()
        .flatten()
        .min()?;
    Some(DiffFact {
        class: k.0,
        key: k.1.clone(),
        reference: rv.facts.get(k).cloned(),
        candidate: cv.facts.get(k).cloned(),
    })
}

/// Whether `s` is in the order `Snapshot` promises and the walk relies on: CPUs, folios,
/// swap entries and mms strictly ascending by identity; in each mm, VMAs strictly ascending
/// and not overlapping, hugetlb tables and PTEs strictly ascending by address.
pub fn is_canonical(s: &Snapshot) -> bool {
    fn ascending<T, K: Ord>(v: &[T], key: impl Fn(&T) -> K) -> bool {
        v.windows(2).all(|w| match w {
            [a, b] => key(a) < key(b),
            _ => true,
        })
    }
    ascending(&s.cpus, |c| c.cpu)
        && ascending(&s.folios, |f| f.id.0)
        && ascending(&s.swap, |x| x.0 .0)
        && ascending(&s.mms, |m| m.id.0)
        && s.mms.iter().all(|m| {
            ascending(&m.vmas, |v| v.start)
                && m.vmas.windows(2).all(|w| match w {
                    [a, b] => a.end <= b.start,
                    _ => true,
                })
                && ascending(&m.hugetlb_tables, |t| t.va)
                && ascending(&m.ptes, |p| p.va)
        })
}

/// An entity, rendered as `FieldView`'s key only when one of its facts differs.
#[derive(Clone, Copy)]
enum Ent {
    Lru(&'static str),
    Cpu(u32),
    Folio(u64),
    Mm(u32),
    /// (mm, address): VMAs, hugetlb tables, PTEs.
    At(u32, u64),
}

impl Ent {
    fn write(self, s: &mut String) {
        s.clear();
        // Writing to a String cannot fail.
        let _ = match self {
            Ent::Lru(name) => s.write_str(name),
            Ent::Cpu(n) => write!(s, "cpu{n}"),
            Ent::Folio(id) => write!(s, "folio {id}"),
            Ent::Mm(id) => write!(s, "mm{id}"),
            Ent::At(mm, va) => write!(s, "mm{mm} {va:#x}"),
        };
    }
}

/// Merge two slices sorted strictly by `key`, calling `f` with the entries of equal key
/// (or one side's entry alone).
fn merge<'x, T, K: Ord>(
    a: &'x [T],
    b: &'x [T],
    key: impl Fn(&T) -> K,
    mut f: impl FnMut(Option<&'x T>, Option<&'x T>),
) {
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => break,
            (Some(x), None) => {
                f(Some(x), None);
                i += 1;
            }
            (None, Some(y)) => {
                f(None, Some(y));
                j += 1;
            }
            (Some(x), Some(y)) => match key(x).cmp(&key(y)) {
                Ordering::Less => {
                    f(Some(x), None);
                    i += 1;
                }
                Ordering::Greater => {
                    f(None, Some(y));
                    j += 1;
                }
                Ordering::Equal => {
                    f(Some(x), Some(y));
                    i += 1;
                    j += 1;
                }
            },
        }
    }
}

/// Lookups into one canonical snapshot by binary search (what `FieldView::of` keeps in maps).
#[derive(Clone, Copy)]
struct Side<'a>(&'a Snapshot);

impl Side<'_> {
    fn folio(&self, id: u64) -> Option<&mmreplay_reference::snapshot::FolioSnap> {
        let f = &self.0.folios;
        f.binary_search_by_key(&id, |x| x.id.0)
            .ok()
            .and_then(|i| f.get(i))
    }

    fn swap(&self, id: u64) -> Option<u64> {
        let s = &self.0.swap;
        s.binary_search_by_key(&id, |x| x.0 .0)
            .ok()
            .and_then(|i| s.get(i))
            .map(|x| x.1)
    }

    fn page_in(&self, m: &MmSnap, p: &PteSnap) -> PageIn {
        let folio = view::pte_folio(p);
        PageIn {
            folio: folio
                .and_then(|id| self.folio(id))
                .map(|f| (f.content, f.swapbacked)),
            swap: folio.and_then(|id| self.swap(id)),
            anon_vma: anon_vma_at(&m.vmas, p.va),
        }
    }

    /// `pte.folio` at (mm, va) and that folio's PG_dirty (false when either is absent), as
    /// `check_views` looks them up for `GreaterOrEqualIfFolioDirty`.
    fn pte_folio_dirty(&self, mm: u32, va: u64) -> bool {
        let mms = &self.0.mms;
        let Some(m) = mms
            .binary_search_by_key(&mm, |m| m.id.0)
            .ok()
            .and_then(|i| mms.get(i))
        else {
            return false;
        };
        m.ptes
            .binary_search_by_key(&va, |p| p.va)
            .ok()
            .and_then(|i| m.ptes.get(i))
            .and_then(view::pte_folio)
            .and_then(|id| self.folio(id))
            .is_some_and(|f| f.dirty)
    }
}

/// Whether an anon VMA covers `va`: the last VMA starting at or below it, as VMAs of a
/// canonical snapshot do not overlap.
fn anon_vma_at(vmas: &[VmaSnap], va: u64) -> bool {
    let i = vmas.partition_point(|v| v.start <= va);
    i.checked_sub(1)
        .and_then(|i| vmas.get(i))
        .is_some_and(|v| va < v.end && v.kind == "anon")
}

struct Walk<'a> {
    contract: &'a Contract,
    r: Side<'a>,
    c: Side<'a>,
    /// Rule by field class, found once per class.
    rules: Vec<(&'static str, Rule)>,
    breaches: Vec<Breach>,
    first: Option<DiffFact>,
    key: String,
    rbuf: Facts,
    cbuf: Facts,
}

impl<'a> Walk<'a> {
    fn new(contract: &'a Contract, r: &'a Snapshot, c: &'a Snapshot) -> Walk<'a> {
        Walk {
            contract,
            r: Side(r),
            c: Side(c),
            rules: Vec::new(),
            breaches: Vec::new(),
            first: None,
            key: String::new(),
            rbuf: Facts::new(),
            cbuf: Facts::new(),
        }
    }

    fn rule(&mut self, class: &'static str) -> Rule {
        if let Some((_, r)) = self.rules.iter().find(|(c, _)| *c == class) {
            return *r;
        }
        let r = self.contract.field_rule(class);
        self.rules.push((class, r));
        r
    }

    /// One differing fact: judged by the contract, and kept if it is the least so far.
    fn fact(&mut self, class: &'static str, ent: Ent, r: Option<&Val>, c: Option<&Val>) {
        let rule = self.rule(class);
        let side = self.c;
        // Only a PTE's key can name a `pte.folio` fact.
        let ok = allows(rule, r, c, || match ent {
            Ent::At(mm, va) => side.pte_folio_dirty(mm, va),
            _ => false,
        });
        ent.write(&mut self.key);
        if !ok {
            let show = |v: Option<&Val>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
            self.breaches.push(Breach {
                subject: Subject::Field,
                field: class.to_string(),
                key: self.key.clone(),
                reference: show(r),
                candidate: show(c),
                rule,
            });
        }
        let least = self
            .first
            .as_ref()
            .is_none_or(|f| (class, self.key.as_str()) < (f.class, f.key.as_str()));
        if least {
            self.first = Some(DiffFact {
                class,
                key: self.key.clone(),
                reference: r.cloned(),
                candidate: c.cloned(),
            });
        }
    }

    /// One entity on either or both sides: its facts made by `gen` on each side present,
    /// merged by class, every differing fact judged.
    fn entity<T>(&mut self, ent: Ent, r: Option<T>, c: Option<T>, gen: impl Fn(T, &mut Facts)) {
        let mut rf = std::mem::take(&mut self.rbuf);
        let mut cf = std::mem::take(&mut self.cbuf);
        rf.clear();
        cf.clear();
        if let Some(x) = r {
            gen(x, &mut rf);
        }
        if let Some(x) = c {
            gen(x, &mut cf);
        }
        // An entity's classes are distinct; the view orders facts by class.
        rf.sort_by(|a, b| a.0.cmp(b.0));
        cf.sort_by(|a, b| a.0.cmp(b.0));
        merge(
            &rf,
            &cf,
            |x| x.0,
            |a, b| {
                if a.map(|x| &x.1) != b.map(|x| &x.1) {
                    let class = a.or(b).map_or("", |x| x.0);
                    self.fact(class, ent, a.map(|x| &x.1), b.map(|x| &x.1));
                }
            },
        );
        self.rbuf = rf;
        self.cbuf = cf;
    }

    fn run(&mut self) {
        let (r, c) = (self.r.0, self.c.0);
        for (i, name) in ["anon", "file"].into_iter().enumerate() {
            let (a, b) = (r.lru_nr_gens.get(i), c.lru_nr_gens.get(i));
            if a != b {
                let v = |x: Option<&u64>| x.map(|n| Val::Num(i128::from(*n)));
                self.fact("lru.nr_gens", Ent::Lru(name), v(a).as_ref(), v(b).as_ref());
            }
        }
        merge(
            &r.cpus,
            &c.cpus,
            |x| x.cpu,
            |a, b| {
                if a != b {
                    let cpu = a.or(b).map_or(0, |x| x.cpu);
                    self.entity(Ent::Cpu(cpu), a, b, view::cpu_facts);
                }
            },
        );
        merge(
            &r.folios,
            &c.folios,
            |x| x.id.0,
            |a, b| {
                if a != b {
                    let id = a.or(b).map_or(0, |x| x.id.0);
                    self.entity(Ent::Folio(id), a, b, view::folio_facts);
                }
            },
        );
        merge(
            &r.swap,
            &c.swap,
            |x| x.0 .0,
            |a, b| {
                if a != b {
                    let id = a.or(b).map_or(0, |x| x.0 .0);
                    let v = |x: Option<&(_, u64)>| x.map(|x| Val::Num(i128::from(x.1)));
                    self.fact("swap.content", Ent::Folio(id), v(a).as_ref(), v(b).as_ref());
                }
            },
        );
        // A PTE's `page.*` facts also depend on its folio's content and PG_swapbacked and on
        // the swapped-out contents: where those differ, equal mms are walked too.
        let pages_in = |s: &'a Snapshot| s.folios.iter().map(|f| (f.id, f.content, f.swapbacked));
        let inputs_same = r.swap == c.swap && pages_in(r).eq(pages_in(c));
        merge(
            &r.mms,
            &c.mms,
            |m| m.id.0,
            |a, b| {
                if a != b || !inputs_same {
                    self.mm(a, b);
                }
            },
        );
    }

    /// One mm on either or both sides, known to differ somewhere.
    fn mm<'s>(&mut self, a: Option<&'s MmSnap>, b: Option<&'s MmSnap>) {
        let Some(id) = a.or(b).map(|m| m.id.0) else {
            return;
        };
        fn own(m: &MmSnap) -> (&[u32], [i64; 3], i64) {
            (&m.cpumask, m.rss, m.nr_pmds)
        }
        if a.map(own) != b.map(own) {
            self.entity(Ent::Mm(id), a, b, view::mm_facts);
        }
        let vmas = |m: Option<&'s MmSnap>| m.map_or(&[][..], |m| m.vmas.as_slice());
        merge(
            vmas(a),
            vmas(b),
            |v| v.start,
            |x, y| {
                if x != y {
                    let va = x.or(y).map_or(0, |v| v.start);
                    self.entity(Ent::At(id, va), x, y, view::vma_facts);
                }
            },
        );
        let tables = |m: Option<&'s MmSnap>| m.map_or(&[][..], |m| m.hugetlb_tables.as_slice());
        merge(
            tables(a),
            tables(b),
            |t| t.va,
            |x, y| {
                if x != y {
                    let va = x.or(y).map_or(0, |t| t.va);
                    let v = |t: Option<&mmreplay_reference::snapshot::PmdTableSnap>| {
                        t.map(|t| Val::Num(i128::from(t.pt_share_count)))
                    };
                    self.fact(
                        "pmd_table.pt_share_count",
                        Ent::At(id, va),
                        v(x).as_ref(),
                        v(y).as_ref(),
                    );
                }
            },
        );
        let ptes = |m: Option<&'s MmSnap>| m.map_or(&[][..], |m| m.ptes.as_slice());
        let (rs, cs) = (self.r, self.c);
        merge(
            ptes(a),
            ptes(b),
            |p| p.va,
            |x, y| {
                let ri = x.zip(a).map(|(p, m)| (p, rs.page_in(m, p)));
                let ci = y.zip(b).map(|(p, m)| (p, cs.page_in(m, p)));
                // Equal PTEs with equal derived inputs have equal facts.
                let same = match (ri, ci) {
                    (Some((p, pi)), Some((q, qi))) => {
                        p == q && view::page_derived(p, pi) == view::page_derived(q, qi)
                    }
                    _ => false,
                };
                if !same {
                    let va = x.or(y).map_or(0, |p| p.va);
                    self.entity(Ent::At(id, va), ri, ci, |(p, inp), out| {
                        view::pte_facts(p, inp, out)
                    });
                }
            },
        );
    }

    fn finish(mut self) -> ViewCompare {
        self.breaches.sort_by(|a, b| {
            (a.field.as_str(), a.key.as_str()).cmp(&(b.field.as_str(), b.key.as_str()))
        });
        ViewCompare {
            breaches: self.breaches,
            first: self.first,
        }
    }
}
