//! The final compare's difference walk (`Contract::compare_views`, `view_diff.rs`) gives
//! exactly what the whole-view compare gives (`Contract::compare_views_whole`: `FieldView::of`
//! of both sides, `check_views`, the least differing key): same breaches in the same order,
//! same first differing fact. On the final snapshots of random op sequences run by the
//! reference and by every candidate, and on those snapshots perturbed entity by entity
//! (flags, contents, removed and added PTEs, folios, swap entries, VMAs, mms, tables, CPUs),
//! under every registry contract and contracts that exercise every rule. Model snapshots
//! must be canonical (the walk's premise); perturbations that break the order check the
//! fallback.

use mmreplay_candidates::contract::{rules, Contract, Mode, Rule};
use mmreplay_candidates::registry::{self, POLICIES};
use mmreplay_candidates::view_diff::is_canonical;
use mmreplay_reference::op::{FolioId, MmId};
use mmreplay_reference::snapshot::{PteSnap, PteState, Snapshot};
use mmreplay_reference::testing::{arb_ops_with, GenConfig};
use mmreplay_reference::{KernelProfile, Op};
use proptest::prelude::*;

fn contracts(profile: &KernelProfile) -> Vec<Contract> {
    let mut out = Vec::new();
    for e in POLICIES.iter() {
        if let Ok(spec) = registry::parse(e.name) {
            out.push(spec.contract(Mode::Lockstep, profile));
            out.push(spec.contract(Mode::FreeRunning, profile));
        }
    }
    let mk = |fields: &[(&str, Rule)]| Contract {
        candidate: "synthetic".into(),
        mode: Mode::Lockstep,
        counters: vec![],
        fields: rules(fields),
        relations: vec![],
    };
    out.push(mk(&[]));
    out.push(mk(&[("*", Rule::GreaterOrEqualIfFolioDirty)]));
    out.push(mk(&[("*", Rule::EqualWhereBoth)]));
    out.push(mk(&[
        ("pte.dirty", Rule::GreaterOrEqualIfFolioDirty),
        ("pte.*", Rule::GreaterOrEqual),
        ("folio.*", Rule::LessOrEqual),
        ("page.*", Rule::EqualWhereBoth),
        ("mm.*", Rule::Any),
    ]));
    out
}

fn run(name: &str, profile: &KernelProfile, ops: &[Op]) -> Option<Snapshot> {
    let spec = registry::parse(name).ok()?;
    let mut e = spec.build(profile);
    for op in ops {
        let _ = e.apply(op);
    }
    e.finish();
    Some(e.snapshot())
}

/// One perturbation: (what, which, how), indices taken modulo the lengths.
type Edit = (u8, usize, usize);

fn perturb(s: &mut Snapshot, (what, i, j): Edit) {
    let nm = s.mms.len();
    let nf = s.folios.len();
    match what % 16 {
        0 | 1 | 11 | 14 | 15 => {
            let Some(m) = s.mms.get_mut(i % nm.max(1)) else {
                return;
            };
            let np = m.ptes.len();
            let Some(p) = m.ptes.get_mut(j % np.max(1)) else {
                return;
            };
            match (what % 16, &mut p.state) {
                (
                    0 | 14,
                    PteState::Present {
                        write,
                        young,
                        dirty,
                        soft_dirty,
                        ..
                    },
                ) => match (i / 3 + usize::from(what == 14) * 2) % 4 {
                    0 => *write = !*write,
                    1 => *young = !*young,
                    2 => *dirty = !*dirty,
                    _ => *soft_dirty = !*soft_dirty,
                },
                (1, _) => {
                    let k = j % np;
                    m.ptes.remove(k);
                }
                (11, st) => {
                    *st = match st {
                        PteState::Present { folio, .. } => PteState::Swap {
                            folio: *folio,
                            exclusive: i % 2 == 0,
                        },
                        PteState::Swap { .. } => PteState::Zero,
                        _ => PteState::Present {
                            folio: FolioId(j as u64 % (nf as u64 + 2)),
                            write: true,
                            young: false,
                            dirty: i % 2 == 1,
                            soft_dirty: false,
                        },
                    }
                }
                (15, PteState::Present { folio, .. } | PteState::Swap { folio, .. }) => {
                    folio.0 = folio.0.wrapping_add(1 + (i % 3) as u64);
                }
                _ => p.huge = !p.huge,
            }
        }
        2 => {
            let Some(f) = s.folios.get_mut(i % nf.max(1)) else {
                return;
            };
            match j % 7 {
                0 => f.content = f.content.wrapping_add(1),
                1 => f.dirty = !f.dirty,
                2 => f.swapbacked = !f.swapbacked,
                3 => f.lru_age = f.lru_age.map_or(Some(1), |_| None),
                4 => f.mapcount += 1,
                5 => f.kind = "file".into(),
                _ => f.pincount += 1,
            }
        }
        3 if nf > 0 => {
            s.folios.remove(i % nf);
        }
        4 => {
            let n = s.swap.len();
            if n == 0 {
                s.swap.push((FolioId(j as u64), 7));
            } else if j % 2 == 0 {
                s.swap.remove(i % n);
            } else if let Some(x) = s.swap.get_mut(i % n) {
                x.1 ^= 1;
            }
        }
        5 => {
            let Some(m) = s.mms.get_mut(i % nm.max(1)) else {
                return;
            };
            let nv = m.vmas.len();
            let Some(v) = m.vmas.get_mut(j % nv.max(1)) else {
                return;
            };
            match i % 3 {
                0 => v.kind = if v.kind == "anon" { "file" } else { "anon" }.into(),
                1 => v.end = v.start.max(v.end.saturating_sub(4096)),
                _ => v.prot ^= 2,
            }
        }
        6 if nm > 0 => {
            s.mms.remove(i % nm);
        }
        7 => {
            let Some(m) = s.mms.get_mut(i % nm.max(1)) else {
                return;
            };
            match j % 3 {
                0 => m.cpumask.push(99),
                1 => m.rss[j % 3] += 1,
                _ => m.nr_pmds += 1,
            }
        }
        8 => {
            let n = s.cpus.len();
            if let Some(c) = s.cpus.get_mut(i % n.max(1)) {
                if j % 2 == 0 {
                    c.lazy = !c.lazy;
                } else {
                    c.loaded = c.loaded.map_or(Some(MmId(1)), |_| None);
                }
            }
        }
        9 => s.lru_nr_gens[i % 2] += 1,
        10 => {
            // A new PTE after the mm's last one (order kept), mapping some folio.
            let Some(m) = s.mms.get_mut(i % nm.max(1)) else {
                return;
            };
            let va = m.ptes.last().map_or(0x7000_0000_0000, |p| p.va + 4096);
            let folio = s.folios.get(j % nf.max(1)).map_or(FolioId(1), |f| f.id);
            m.ptes.push(PteSnap {
                va,
                huge: false,
                state: PteState::Present {
                    folio,
                    write: false,
                    young: true,
                    dirty: j % 2 == 0,
                    soft_dirty: false,
                },
            });
        }
        12 => {
            let Some(m) = s.mms.get_mut(i % nm.max(1)) else {
                return;
            };
            let n = m.hugetlb_tables.len();
            if n == 0 {
                m.hugetlb_tables
                    .push(mmreplay_reference::snapshot::PmdTableSnap {
                        va: 0x4000_0000,
                        pt_share_count: 1,
                    });
            } else if let Some(t) = m.hugetlb_tables.get_mut(j % n) {
                t.pt_share_count += 1;
            }
        }
        // Out of canonical order: the compare must fall back to the whole views.
        13 => {
            if let Some(m) = s.mms.last().cloned() {
                if i % 2 == 0 {
                    s.mms.push(m);
                } else {
                    s.folios.reverse();
                }
            }
        }
        _ => {}
    }
}

fn check_same(k: &Contract, r: &Snapshot, c: &Snapshot) -> Result<(), TestCaseError> {
    let walk = k.compare_views(r, c);
    let whole = k.compare_views_whole(r, c);
    prop_assert_eq!(walk, whole, "contract {:?}", k);
    Ok(())
}

fn gen() -> impl Strategy<Value = Vec<Op>> {
    arb_ops_with(
        GenConfig {
            nr_cpus: 4,
            max_mms: 4,
        },
        160,
    )
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn walk_equals_whole_views(ops in gen(), ed_r in edits(), ed_c in edits(), which in 0usize..16) {
        let profile = KernelProfile::default();
        let Some(r) = run("reference", &profile, &ops) else {
            return Err(TestCaseError::fail("no reference"));
        };
        prop_assert!(is_canonical(&r), "the model's snapshot is not canonical");
        let names: Vec<&str> = POLICIES.iter().map(|e| e.name).collect();
        let name = names.get(which % names.len()).copied().unwrap_or("reference");
        let Some(c) = run(name, &profile, &ops) else {
            return Err(TestCaseError::fail("no candidate"));
        };
        prop_assert!(is_canonical(&c), "{}'s snapshot is not canonical", name);
        let mut rp = r.clone();
        for e in &ed_r {
            perturb(&mut rp, *e);
        }
        let mut cp = c.clone();
        for e in &ed_c {
            perturb(&mut cp, *e);
        }
        for k in contracts(&profile) {
            check_same(&k, &r, &c)?;
            check_same(&k, &r, &cp)?;
            check_same(&k, &rp, &cp)?;
            check_same(&k, &cp, &r)?;
        }
    }
}

/// The rule that looks across entities: a PTE dirty in the candidate only is allowed where
/// the candidate's folio is dirty, by the walk as by the whole views; the negative case
/// breaches.
#[test]
fn dirty_pte_rule_looks_at_the_candidates_folio() {
    let profile = KernelProfile::default();
    let ops = mmreplay_reference::testing::random_ops(
        GenConfig {
            nr_cpus: 4,
            max_mms: 4,
        },
        400,
        7,
    );
    let r = run("reference", &profile, &ops).unwrap_or_else(|| panic!("no reference"));
    let k = Contract {
        candidate: "synthetic".into(),
        mode: Mode::Lockstep,
        counters: vec![],
        fields: rules(&[("pte.dirty", Rule::GreaterOrEqualIfFolioDirty)]),
        relations: vec![],
    };
    // The first clean present PTE whose folio is clean.
    let mut found = None;
    for (mi, m) in r.mms.iter().enumerate() {
        for (pi, p) in m.ptes.iter().enumerate() {
            if let PteState::Present {
                folio,
                dirty: false,
                ..
            } = p.state
            {
                if r.folios.iter().any(|f| f.id == folio && !f.dirty) {
                    found = found.or(Some((mi, pi, folio)));
                }
            }
        }
    }
    let (mi, pi, folio) = found.unwrap_or_else(|| panic!("no clean PTE on a clean folio"));
    let mut c = r.clone();
    if let Some(PteState::Present { dirty, .. }) = c
        .mms
        .get_mut(mi)
        .and_then(|m| m.ptes.get_mut(pi))
        .map(|p| &mut p.state)
    {
        *dirty = true;
    }
    let b = k.compare_views(&r, &c);
    assert_eq!(b, k.compare_views_whole(&r, &c));
    assert_eq!(b.breaches.len(), 1, "{b:?}");
    assert_eq!(b.breaches[0].field, "pte.dirty");
    assert_eq!(b.first.as_ref().map(|f| f.class), Some("pte.dirty"));
    // Dirty the candidate's folio: allowed now (but folio.dirty itself differs: Equal).
    for f in c.folios.iter_mut().filter(|f| f.id == folio) {
        f.dirty = true;
    }
    let b = k.compare_views(&r, &c);
    assert_eq!(b, k.compare_views_whole(&r, &c));
    let fields: Vec<&str> = b.breaches.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(fields, vec!["folio.dirty"], "{b:?}");
}
