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

use mmreplay_reference::snapshot::{
    CpuSnap, FolioSnap, MmSnap, PteSnap, PteState, Snapshot, VmaSnap,
};

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

/// One entity's facts, (field class, value), in generation order.
pub(crate) type Facts = Vec<(&'static str, Val)>;

fn num(out: &mut Facts, class: &'static str, n: impl Into<i128>) {
    out.push((class, Val::Num(n.into())));
}

fn flag(out: &mut Facts, class: &'static str, b: bool) {
    num(out, class, u8::from(b));
}

/// The facts of one CPU (key `cpuN`). The one place each fact is defined: the whole view
/// ([`FieldView::of`]) and the difference walk (`view_diff.rs`) both use these functions.
pub(crate) fn cpu_facts(c: &CpuSnap, out: &mut Facts) {
    let loaded = match c.loaded {
        Some(m) => format!("mm{}", m.0),
        None => "-".to_string(),
    };
    out.push(("cpu.loaded", Val::Text(loaded)));
    flag(out, "cpu.lazy", c.lazy);
}

/// The facts of one live folio (key `folio N`).
pub(crate) fn folio_facts(f: &FolioSnap, out: &mut Facts) {
    num(out, "folio.exists", 1);
    let kind = match f.file {
        Some((file, idx)) => format!("{} file={}:{}", f.kind, file.0, idx),
        None => f.kind.clone(),
    };
    out.push(("folio.kind", Val::Text(kind)));
    num(out, "folio.order", f.order);
    flag(out, "folio.pae", f.anon_exclusive);
    flag(out, "folio.dirty", f.dirty);
    flag(out, "folio.swapbacked", f.swapbacked);
    flag(out, "folio.swapcache", f.swapcache);
    num(out, "folio.mapcount", f.mapcount);
    num(out, "folio.refcount", f.refcount);
    num(out, "folio.pincount", f.pincount);
    match f.lru_age {
        Some(a) => num(out, "folio.lru_age", a),
        None => out.push(("folio.lru_age", Val::Text("-".into()))),
    }
    num(out, "folio.lru_type", f.lru_type);
    flag(out, "folio.referenced", f.referenced);
    flag(out, "folio.workingset", f.workingset);
    num(out, "folio.content", f.content);
}

/// The facts of one mm itself (key `mmN`), without its VMAs, tables and PTEs.
pub(crate) fn mm_facts(m: &MmSnap, out: &mut Facts) {
    num(out, "mm.exists", 1);
    let mask: Vec<String> = m.cpumask.iter().map(|c| c.to_string()).collect();
    out.push(("mm.cpumask", Val::Text(mask.join(","))));
    num(out, "mm.rss_file", m.rss[0]);
    num(out, "mm.rss_anon", m.rss[1]);
    num(out, "mm.rss_swap", m.rss[2]);
    num(out, "mm.nr_pmds", m.nr_pmds);
}

/// The fact of one VMA (key `mmN 0xstart`).
pub(crate) fn vma_facts(vma: &VmaSnap, out: &mut Facts) {
    let file = match vma.file {
        Some(f) => format!(" file={} pgoff={}", f.0, vma.pgoff),
        None => String::new(),
    };
    out.push((
        "vma",
        Val::Text(format!(
            "end={:#x} prot={} shared={} {}{file}",
            vma.end,
            vma.prot,
            u8::from(vma.shared),
            vma.kind
        )),
    ));
}

/// What a PTE's `page.*` facts are derived from besides the PTE itself: its folio's
/// (content, PG_swapbacked) if the folio is live, the swapped-out content under its id, and
/// whether an anon VMA covers the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageIn {
    pub folio: Option<(u64, bool)>,
    pub swap: Option<u64>,
    pub anon_vma: bool,
}

/// The derived `page.*` values of a PTE: (`page.content`, whether `page.anon_mapped` is
/// set); `None` for a migration entry, which has neither.
pub(crate) fn page_derived(p: &PteSnap, inp: PageIn) -> Option<(u64, bool)> {
    match &p.state {
        PteState::Present { .. } => {
            let (c, swapbacked) = inp.folio.unwrap_or((0, true));
            Some((c, inp.anon_vma && swapbacked))
        }
        PteState::Zero => Some((0, inp.anon_vma)),
        // Data in the swap cache is the folio's; otherwise the slot's.
        PteState::Swap { .. } => Some((
            inp.folio.map(|x| x.0).or(inp.swap).unwrap_or(0),
            inp.anon_vma,
        )),
        PteState::Migration { .. } => None,
    }
}

/// The folio id a PTE names (`pte.folio`), if any.
pub(crate) fn pte_folio(p: &PteSnap) -> Option<u64> {
    match &p.state {
        PteState::Present { folio, .. }
        | PteState::Swap { folio, .. }
        | PteState::Migration { folio, .. } => Some(folio.0),
        PteState::Zero => None,
    }
}

/// The facts of one PTE (key `mmN 0xva`), `pte.*` and `page.*`.
pub(crate) fn pte_facts(p: &PteSnap, inp: PageIn, out: &mut Facts) {
    let huge = if p.huge { "+huge" } else { "" };
    match &p.state {
        PteState::Present {
            folio,
            write,
            young,
            dirty,
            soft_dirty,
        } => {
            out.push(("pte.state", Val::Text(format!("present{huge}"))));
            num(out, "pte.folio", folio.0);
            flag(out, "pte.write", *write);
            flag(out, "pte.young", *young);
            flag(out, "pte.dirty", *dirty);
            flag(out, "pte.soft_dirty", *soft_dirty);
        }
        PteState::Zero => out.push(("pte.state", Val::Text(format!("zero{huge}")))),
        PteState::Swap { folio, exclusive } => {
            out.push(("pte.state", Val::Text(format!("swap{huge}"))));
            num(out, "pte.folio", folio.0);
            flag(out, "pte.exclusive", *exclusive);
        }
        PteState::Migration { folio, write } => {
            out.push(("pte.state", Val::Text(format!("migration{huge}"))));
            num(out, "pte.folio", folio.0);
            flag(out, "pte.write", *write);
        }
    }
    if let Some((c, anon_mapped)) = page_derived(p, inp) {
        num(out, "page.content", c);
        if anon_mapped {
            num(out, "page.anon_mapped", 1);
        }
    }
}

impl FieldView {
    /// Build the view of the whole of `s`: some 20 facts per page, GBs on a whole-machine
    /// state. Comparisons walk two snapshots' differences instead (`view_diff.rs`); this is
    /// the definition they are tested against, and their fallback for a snapshot that is not
    /// in canonical order.
    pub fn of(s: &Snapshot) -> FieldView {
        let mut v = ViewBuilder::default();
        let mut buf = Facts::new();
        let put = |v: &mut ViewBuilder, key: &str, buf: &mut Facts| {
            for (class, val) in buf.drain(..) {
                v.put(class, key, val);
            }
        };
        v.num("lru.nr_gens", "anon", s.lru_nr_gens[0]);
        v.num("lru.nr_gens", "file", s.lru_nr_gens[1]);
        for c in &s.cpus {
            cpu_facts(c, &mut buf);
            put(&mut v, &format!("cpu{}", c.cpu), &mut buf);
        }
        // Folio facts first: page facts look up content by id.
        let mut content: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
        for f in &s.folios {
            content.insert(f.id.0, (f.content, f.swapbacked));
            v.folio_dirty.insert(f.id.0, f.dirty);
            folio_facts(f, &mut buf);
            put(&mut v, &format!("folio {}", f.id.0), &mut buf);
        }
        let mut swap_content: BTreeMap<u64, u64> = BTreeMap::new();
        for (id, c) in &s.swap {
            swap_content.insert(id.0, *c);
            v.num("swap.content", &format!("folio {}", id.0), *c);
        }
        for m in &s.mms {
            let mk = format!("mm{}", m.id.0);
            mm_facts(m, &mut buf);
            put(&mut v, &mk, &mut buf);
            for vma in &m.vmas {
                vma_facts(vma, &mut buf);
                put(&mut v, &format!("{mk} {:#x}", vma.start), &mut buf);
            }
            for t in &m.hugetlb_tables {
                v.num(
                    "pmd_table.pt_share_count",
                    &format!("{mk} {:#x}", t.va),
                    t.pt_share_count,
                );
            }
            for p in &m.ptes {
                let anon_vma = m
                    .vmas
                    .iter()
                    .any(|x| x.start <= p.va && p.va < x.end && x.kind == "anon");
                let folio = pte_folio(p);
                let inp = PageIn {
                    folio: folio.and_then(|id| content.get(&id).copied()),
                    swap: folio.and_then(|id| swap_content.get(&id).copied()),
                    anon_vma,
                };
                pte_facts(p, inp, &mut buf);
                put(&mut v, &format!("{mk} {:#x}", p.va), &mut buf);
            }
        }
        v.finish()
    }

    /// Whether the folio with this id is dirty (PG_dirty) in this view.
    pub fn folio_is_dirty(&self, id: u64) -> bool {
        self.folio_dirty.get(&id).copied().unwrap_or(false)
    }
}
