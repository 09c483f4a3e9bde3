//! The canonical per-field view of a `Snapshot` that contracts compare: a sorted map from
//! (field class, entity key) to a value, e.g. (`pte.young`, `mm1 0x7f0000001000`) -> 1. It
//! walks only the Snapshot's public data. Field classes are stable names that contract rules
//! match with globs (see `contract.rs`); entity keys name things by stable identity (mm id,
//! virtual address, `FolioId`), never by pfn. It must never look at model internals.
//!
//! Field classes:
//! - `lru.nr_gens` (key `anon`/`file`); `cpu.loaded`, `cpu.lazy` (key `cpuN`);
//! - `mm.exists`, `mm.cpumask`, `mm.rss_file`, `mm.rss_anon`, `mm.rss_swap`, `mm.nr_pmds`
//!   (key `mmN`);
//! - `vma` (key `mmN 0xstart`, value: end, prot, shared, kind, file, pgoff);
//! - `pmd_table.pt_share_count` (key `mmN 0xva`);
//! - `pte.state` (present/zero/swap/migration, `+huge`), `pte.folio`, `pte.write`,
//!   `pte.young`, `pte.dirty`, `pte.soft_dirty`, `pte.exclusive` (swap entries)
//!   (key `mmN 0xva`);
//! - `page.content`: what a user load at (mm, va) observes: the folio's content token (present
//!   or swapped), 0 for the zero page; only for pages the snapshot maps (key `mmN 0xva`);
//! - `page.anon_mapped`: 1 for every present/swap/zero PTE in an anon VMA whose data is not
//!   lazily freeable (a MADV_FREE'd clean folio may legitimately be discarded);
//! - `folio.exists`, `folio.kind`, `folio.order`, `folio.pae`, `folio.dirty`,
//!   `folio.swapbacked`, `folio.swapcache`, `folio.mapcount`, `folio.refcount`,
//!   `folio.pincount`, `folio.lru_age`, `folio.lru_type`, `folio.referenced`,
//!   `folio.workingset`, `folio.content` (key `folio N`);
//! - `swap.content` (key `folio N`).

use std::collections::BTreeMap;
use std::fmt;

use mmreplay_reference::snapshot::{PteState, Snapshot};

/// One value of the view. Booleans are 0/1 numbers so that ordered rules apply to them
/// (`pte.young` candidate >= reference means "candidate young wherever reference is").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Val {
    /// A number (counts, flags, ids, content tokens).
    Num(i128),
    /// Anything unordered.
    Text(String),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Num(n) => write!(f, "{n}"),
            Val::Text(t) => f.write_str(t),
        }
    }
}

/// (field class, entity key).
pub type FieldKey = (&'static str, String);

/// The canonical view: sorted, deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldView {
    /// All facts.
    pub facts: BTreeMap<FieldKey, Val>,
    /// PG_dirty by folio id, for rules that look across entities (`pte.dirty` vs its folio).
    pub folio_dirty: BTreeMap<u64, bool>,
}

/// Facts gathered in a vector and sorted once at the end: inserting tens of thousands of
/// string-keyed facts into the map one by one dominated the differ's profile.
#[derive(Default)]
struct ViewBuilder {
    facts: Vec<(FieldKey, Val)>,
    folio_dirty: BTreeMap<u64, bool>,
}

impl ViewBuilder {
    fn put(&mut self, class: &'static str, key: &str, v: Val) {
        self.facts.push(((class, key.to_string()), v));
    }

    fn flag(&mut self, class: &'static str, key: &str, b: bool) {
        self.put(class, key, Val::Num(i128::from(u8::from(b))));
    }

    fn num(&mut self, class: &'static str, key: &str, n: impl Into<i128>) {
        self.put(class, key, Val::Num(n.into()));
    }

    fn finish(mut self) -> FieldView {
        // Stable sort, then keep the last of equal keys, as repeated map inserts would.
        self.facts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut facts: Vec<(FieldKey, Val)> = Vec::with_capacity(self.facts.len());
        for (k, v) in self.facts {
            match facts.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => facts.push((k, v)),
            }
        }
        FieldView {
            facts: facts.into_iter().collect(),
            folio_dirty: self.folio_dirty,
        }
    }
}

impl FieldView {
    /// Build the view of `s`.
    pub fn of(s: &Snapshot) -> FieldView {
        let mut v = ViewBuilder::default();
        v.num("lru.nr_gens", "anon", s.lru_nr_gens[0]);
        v.num("lru.nr_gens", "file", s.lru_nr_gens[1]);
        for c in &s.cpus {
            let k = format!("cpu{}", c.cpu);
            let loaded = match c.loaded {
                Some(m) => format!("mm{}", m.0),
                None => "-".to_string(),
            };
            v.put("cpu.loaded", &k, Val::Text(loaded));
            v.flag("cpu.lazy", &k, c.lazy);
        }
        // Folio facts first: page facts look up content by id.
        let mut content: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
        for f in &s.folios {
            let k = format!("folio {}", f.id.0);
            content.insert(f.id.0, (f.content, f.swapbacked));
            v.folio_dirty.insert(f.id.0, f.dirty);
            v.num("folio.exists", &k, 1);
            let kind = match f.file {
                Some((file, idx)) => format!("{} file={}:{}", f.kind, file.0, idx),
                None => f.kind.clone(),
            };
            v.put("folio.kind", &k, Val::Text(kind));
            v.num("folio.order", &k, f.order);
            v.flag("folio.pae", &k, f.anon_exclusive);
            v.flag("folio.dirty", &k, f.dirty);
            v.flag("folio.swapbacked", &k, f.swapbacked);
            v.flag("folio.swapcache", &k, f.swapcache);
            v.num("folio.mapcount", &k, f.mapcount);
            v.num("folio.refcount", &k, f.refcount);
            v.num("folio.pincount", &k, f.pincount);
            match f.lru_age {
                Some(a) => v.num("folio.lru_age", &k, a),
                None => v.put("folio.lru_age", &k, Val::Text("-".into())),
            }
            v.num("folio.lru_type", &k, f.lru_type);
            v.flag("folio.referenced", &k, f.referenced);
            v.flag("folio.workingset", &k, f.workingset);
            v.num("folio.content", &k, f.content);
        }
        let mut swap_content: BTreeMap<u64, u64> = BTreeMap::new();
        for (id, c) in &s.swap {
            swap_content.insert(id.0, *c);
            v.num("swap.content", &format!("folio {}", id.0), *c);
        }
        for m in &s.mms {
            let mk = format!("mm{}", m.id.0);
            v.num("mm.exists", &mk, 1);
            let mask: Vec<String> = m.cpumask.iter().map(|c| c.to_string()).collect();
            v.put("mm.cpumask", &mk, Val::Text(mask.join(",")));
            v.num("mm.rss_file", &mk, m.rss[0]);
            v.num("mm.rss_anon", &mk, m.rss[1]);
            v.num("mm.rss_swap", &mk, m.rss[2]);
            v.num("mm.nr_pmds", &mk, m.nr_pmds);
            for vma in &m.vmas {
                let file = match vma.file {
                    Some(f) => format!(" file={} pgoff={}", f.0, vma.pgoff),
                    None => String::new(),
                };
                v.put(
                    "vma",
                    &format!("{mk} {:#x}", vma.start),
                    Val::Text(format!(
                        "end={:#x} prot={} shared={} {}{file}",
                        vma.end,
                        vma.prot,
                        u8::from(vma.shared),
                        vma.kind
                    )),
                );
            }
            for t in &m.hugetlb_tables {
                v.num(
                    "pmd_table.pt_share_count",
                    &format!("{mk} {:#x}", t.va),
                    t.pt_share_count,
                );
            }
            for p in &m.ptes {
                let k = format!("{mk} {:#x}", p.va);
                let huge = if p.huge { "+huge" } else { "" };
                let anon_vma = m
                    .vmas
                    .iter()
                    .any(|x| x.start <= p.va && p.va < x.end && x.kind == "anon");
                match &p.state {
                    PteState::Present {
                        folio,
                        write,
                        young,
                        dirty,
                        soft_dirty,
                    } => {
                        v.put("pte.state", &k, Val::Text(format!("present{huge}")));
                        v.num("pte.folio", &k, folio.0);
                        v.flag("pte.write", &k, *write);
                        v.flag("pte.young", &k, *young);
                        v.flag("pte.dirty", &k, *dirty);
                        v.flag("pte.soft_dirty", &k, *soft_dirty);
                        let (c, swapbacked) = content.get(&folio.0).copied().unwrap_or((0, true));
                        v.num("page.content", &k, c);
                        if anon_vma && swapbacked {
                            v.num("page.anon_mapped", &k, 1);
                        }
                    }
                    PteState::Zero => {
                        v.put("pte.state", &k, Val::Text(format!("zero{huge}")));
                        v.num("page.content", &k, 0);
                        if anon_vma {
                            v.num("page.anon_mapped", &k, 1);
                        }
                    }
                    PteState::Swap { folio, exclusive } => {
                        v.put("pte.state", &k, Val::Text(format!("swap{huge}")));
                        v.num("pte.folio", &k, folio.0);
                        v.flag("pte.exclusive", &k, *exclusive);
                        // Data in the swap cache is the folio's; otherwise the slot's.
                        let c = content
                            .get(&folio.0)
                            .map(|x| x.0)
                            .or_else(|| swap_content.get(&folio.0).copied())
                            .unwrap_or(0);
                        v.num("page.content", &k, c);
                        if anon_vma {
                            v.num("page.anon_mapped", &k, 1);
                        }
                    }
                    PteState::Migration { folio, write } => {
                        v.put("pte.state", &k, Val::Text(format!("migration{huge}")));
                        v.num("pte.folio", &k, folio.0);
                        v.flag("pte.write", &k, *write);
                    }
                }
            }
        }
        v.finish()
    }

    /// Whether the folio with this id is dirty (PG_dirty) in this view.
    pub fn folio_is_dirty(&self, id: u64) -> bool {
        self.folio_dirty.get(&id).copied().unwrap_or(false)
    }
}
