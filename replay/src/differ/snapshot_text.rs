//! A unified diff of two snapshots' canonical texts ([`Snapshot::write_text`]) that renders
//! only the parts that differ: the text of a whole-machine state is hundreds of MB, and
//! rendering both texts to diff them held both (and the diff's line tables) at once.
//!
//! The text is cut into parts that follow its order: the LRU line, the CPU lines, per mm its
//! header with VMAs and shared PMD tables, then its PTEs one 2 MiB region at a time, then the
//! folios and the swap entries in runs of [`RUN`] ids. Parts with the same key are compared as
//! values; equal parts only advance the line numbers, differing parts are rendered (the same
//! formatter as the whole text, on a one-part snapshot) and diffed line by line with
//! [`MAX_CONTEXT`] lines of context inside the part. Hunk headers carry line numbers of the
//! whole texts, so the output reads as `diff -u` of them (hunks never join across parts).
//! The count of differing lines is exact whatever the cap on shown lines.
//!
//! Must never render a part that is equal on both sides, nor hold more than one part's text.

use mmreplay_reference::op::FolioId;
use mmreplay_reference::snapshot::{CpuSnap, FolioSnap, MmSnap, PteSnap, Snapshot};

/// Lines of context around each change (as `diff -u`).
pub const MAX_CONTEXT: usize = 3;
/// Folios or swap entries per part (by id).
const RUN: u64 = 512;
/// PTEs per part: one 2 MiB region (a PTE table or a huge leaf).
const REGION: u64 = 2 << 20;

/// Where a part sits in the text; parts sort in text order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Key {
    Lru,
    Cpus,
    /// (mm, 0, 0): header, VMAs, PMD tables; (mm, 1, region): PTEs.
    Mm(u32, u8, u64),
    Folios(u64),
    Swap(u64),
}

#[derive(Clone, Copy)]
enum Part<'a> {
    Lru([u64; 2]),
    Cpus(&'a [CpuSnap]),
    MmHead(&'a MmSnap),
    Ptes(&'a MmSnap, &'a [PteSnap]),
    Folios(&'a [FolioSnap]),
    Swap(&'a [(FolioId, u64)]),
}

impl Part<'_> {
    /// Lines of its text: one per fact.
    fn lines(&self) -> usize {
        match self {
            Part::Lru(_) => 1,
            Part::Cpus(c) => c.len(),
            Part::MmHead(m) => 1 + m.vmas.len() + m.hugetlb_tables.len(),
            Part::Ptes(_, p) => p.len(),
            Part::Folios(f) => f.len(),
            Part::Swap(s) => s.len(),
        }
    }

    fn same(&self, other: &Part<'_>) -> bool {
        match (self, other) {
            (Part::Lru(a), Part::Lru(b)) => a == b,
            (Part::Cpus(a), Part::Cpus(b)) => a == b,
            (Part::MmHead(a), Part::MmHead(b)) => {
                a.id == b.id
                    && a.cpumask == b.cpumask
                    && a.rss == b.rss
                    && a.nr_pmds == b.nr_pmds
                    && a.vmas == b.vmas
                    && a.hugetlb_tables == b.hugetlb_tables
            }
            (Part::Ptes(_, a), Part::Ptes(_, b)) => a == b,
            (Part::Folios(a), Part::Folios(b)) => a == b,
            (Part::Swap(a), Part::Swap(b)) => a == b,
            _ => false,
        }
    }

    /// Its lines of the canonical text: the whole-text formatter run on a snapshot holding
    /// only this part, less the lines that part-snapshot adds (its LRU line; the mm header
    /// of a PTE part).
    fn text(&self) -> String {
        let mut s = Snapshot {
            mms: Vec::new(),
            folios: Vec::new(),
            swap: Vec::new(),
            cpus: Vec::new(),
            lru_nr_gens: [0, 0],
        };
        let mut skip = 1;
        match *self {
            Part::Lru(g) => {
                s.lru_nr_gens = g;
                skip = 0;
            }
            Part::Cpus(c) => s.cpus = c.to_vec(),
            Part::MmHead(m) => s.mms.push(MmSnap {
                id: m.id,
                vmas: m.vmas.clone(),
                ptes: Vec::new(),
                hugetlb_tables: m.hugetlb_tables.clone(),
                cpumask: m.cpumask.clone(),
                rss: m.rss,
                nr_pmds: m.nr_pmds,
            }),
            Part::Ptes(m, p) => {
                s.mms.push(MmSnap {
                    id: m.id,
                    vmas: Vec::new(),
                    ptes: p.to_vec(),
                    hugetlb_tables: Vec::new(),
                    cpumask: Vec::new(),
                    rss: m.rss,
                    nr_pmds: m.nr_pmds,
                });
                skip = 2;
            }
            Part::Folios(f) => s.folios = f.to_vec(),
            Part::Swap(w) => s.swap = w.to_vec(),
        }
        let text = s.to_text();
        let mut at = 0;
        for _ in 0..skip {
            at = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
        }
        text[at..].to_string()
    }
}

/// Runs of `RUN` ids of a sorted list.
fn runs<T>(items: &[T], id: impl Fn(&T) -> u64) -> Vec<(u64, &[T])> {
    let mut out = Vec::new();
    let mut rest = items;
    while let Some(first) = rest.first() {
        let k = id(first) / RUN;
        let n = rest.iter().take_while(|x| id(x) / RUN == k).count();
        let (run, tail) = rest.split_at(n);
        out.push((k, run));
        rest = tail;
    }
    out
}

/// Every part of a snapshot in text order.
fn parts(s: &Snapshot) -> Vec<(Key, Part<'_>)> {
    let mut out = vec![
        (Key::Lru, Part::Lru(s.lru_nr_gens)),
        (Key::Cpus, Part::Cpus(&s.cpus)),
    ];
    for m in &s.mms {
        out.push((Key::Mm(m.id.0, 0, 0), Part::MmHead(m)));
        let mut rest: &[PteSnap] = &m.ptes;
        while let Some(first) = rest.first() {
            let region = first.va / REGION;
            let n = rest.iter().take_while(|p| p.va / REGION == region).count();
            let (run, tail) = rest.split_at(n);
            out.push((Key::Mm(m.id.0, 1, region), Part::Ptes(m, run)));
            rest = tail;
        }
    }
    for (k, f) in runs(&s.folios, |f| f.id.0) {
        out.push((Key::Folios(k), Part::Folios(f)));
    }
    for (k, w) in runs(&s.swap, |w| w.0 .0) {
        out.push((Key::Swap(k), Part::Swap(w)));
    }
    out
}

/// What [`diff`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// Hunk lines (headers, context, changes), the first `max_lines` only.
    pub lines: Vec<String>,
    /// Hunk lines not kept.
    pub more: usize,
    /// Lines only in the first text.
    pub removed: usize,
    /// Lines only in the second text.
    pub added: usize,
    /// Parts whose text was rendered (both sides of a differing key count once).
    pub parts_rendered: usize,
}

/// The differing parts of `a` and `b`'s canonical texts as unified-diff hunks, at most
/// `max_lines` of them kept.
pub fn diff(a: &Snapshot, b: &Snapshot, max_lines: usize) -> SnapshotDiff {
    let (pa, pb) = (parts(a), parts(b));
    let mut out = SnapshotDiff::default();
    // 1-based line numbers of the next line in each whole text.
    let (mut la, mut lb) = (1usize, 1usize);
    let (mut i, mut j) = (0usize, 0usize);
    while i < pa.len() || j < pb.len() {
        let (ka, kb) = (pa.get(i).map(|p| p.0), pb.get(j).map(|p| p.0));
        let (x, y) = match (ka, kb) {
            (Some(ka), Some(kb)) if ka == kb => {
                i += 1;
                j += 1;
                (pa.get(i - 1).map(|p| p.1), pb.get(j - 1).map(|p| p.1))
            }
            (Some(ka), Some(kb)) if ka < kb => {
                i += 1;
                (pa.get(i - 1).map(|p| p.1), None)
            }
            (Some(_), None) => {
                i += 1;
                (pa.get(i - 1).map(|p| p.1), None)
            }
            _ => {
                j += 1;
                (None, pb.get(j - 1).map(|p| p.1))
            }
        };
        let (na, nb) = (x.map_or(0, |p| p.lines()), y.map_or(0, |p| p.lines()));
        if let (Some(x), Some(y)) = (x, y) {
            if x.same(&y) {
                la += na;
                lb += nb;
                continue;
            }
        }
        out.parts_rendered += 1;
        let ta = x.map(|p| p.text()).unwrap_or_default();
        let tb = y.map(|p| p.text()).unwrap_or_default();
        hunks(&ta, &tb, (la, lb), max_lines, &mut out);
        la += na;
        lb += nb;
    }
    out
}

/// Unified-diff hunks of one part's two texts, numbered from `(la, lb)` in the whole texts.
fn hunks(ta: &str, tb: &str, (la, lb): (usize, usize), max: usize, out: &mut SnapshotDiff) {
    let d = similar::TextDiff::from_lines(ta, tb);
    let push = |line: String, out: &mut SnapshotDiff| {
        if out.lines.len() < max {
            out.lines.push(line);
        } else {
            out.more += 1;
        }
    };
    for group in d.grouped_ops(MAX_CONTEXT) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let (oa, ob) = (first.old_range().start, last.old_range().end);
        let (na, nb) = (first.new_range().start, last.new_range().end);
        // `diff -u` numbers an empty range by the line before it.
        let start = |base: usize, s: usize, n: usize| if n == 0 { base + s - 1 } else { base + s };
        push(
            format!(
                "@@ -{},{} +{},{} @@",
                start(la, oa, ob - oa),
                ob - oa,
                start(lb, na, nb - na),
                nb - na
            ),
            out,
        );
        for op in &group {
            for c in d.iter_changes(op) {
                let sign = match c.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => {
                        out.removed += 1;
                        '-'
                    }
                    similar::ChangeTag::Insert => {
                        out.added += 1;
                        '+'
                    }
                };
                push(format!("{sign}{}", c.value().trim_end_matches('\n')), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmreplay_reference::op::MmId;
    use mmreplay_reference::snapshot::PteState;

    fn pte(va: u64, folio: u64, young: bool) -> PteSnap {
        PteSnap {
            va,
            huge: false,
            state: PteState::Present {
                folio: FolioId(folio),
                write: true,
                young,
                dirty: false,
                soft_dirty: false,
            },
        }
    }

    fn folio(id: u64) -> FolioSnap {
        FolioSnap {
            id: FolioId(id),
            kind: "anon".into(),
            file: None,
            order: 0,
            anon_exclusive: true,
            dirty: false,
            swapbacked: true,
            swapcache: false,
            mapcount: 1,
            refcount: 1,
            pincount: 0,
            lru_age: Some(0),
            lru_type: 0,
            referenced: false,
            workingset: false,
            content: id * 7,
        }
    }

    /// Two mms, each with PTEs over 40 regions of 2 MiB, their folios and a few swap entries.
    fn state() -> Snapshot {
        let mut mms = Vec::new();
        let mut folios = Vec::new();
        for m in 1..=2u32 {
            let mut ptes = Vec::new();
            for k in 0..400u64 {
                let id = u64::from(m) * 10_000 + k;
                ptes.push(pte(0x4000_0000 + k * (REGION / 10), id, k % 3 == 0));
                folios.push(folio(id));
            }
            mms.push(MmSnap {
                id: MmId(m),
                vmas: Vec::new(),
                ptes,
                hugetlb_tables: Vec::new(),
                cpumask: vec![0],
                rss: [0, 400, 0],
                nr_pmds: 1,
            });
        }
        Snapshot {
            mms,
            folios,
            swap: (0..5).map(|i| (FolioId(90_000 + i), i)).collect(),
            cpus: vec![CpuSnap {
                cpu: 0,
                loaded: Some(MmId(1)),
                lazy: false,
            }],
            lru_nr_gens: [0, 0],
        }
    }

    /// Each hunk's old and new sides are the lines of the whole texts its header names, and
    /// the counts of removed and added lines are those of a diff of the whole texts.
    fn check_against_whole_texts(a: &Snapshot, b: &Snapshot) -> SnapshotDiff {
        let d = diff(a, b, usize::MAX);
        let (ta, tb) = (a.to_text(), b.to_text());
        let (la, lb): (Vec<&str>, Vec<&str>) = (ta.lines().collect(), tb.lines().collect());
        let mut k = 0;
        while k < d.lines.len() {
            let h = &d.lines[k];
            let nums: Vec<usize> = h
                .trim_matches(|c| c == '@' || c == ' ')
                .split([' ', ','])
                .map(|x| x.trim_start_matches(['-', '+']).parse().expect("number"))
                .collect();
            let (sa, na, sb, nb) = (nums[0], nums[1], nums[2], nums[3]);
            let (mut old, mut new) = (Vec::new(), Vec::new());
            k += 1;
            while k < d.lines.len() && !d.lines[k].starts_with("@@") {
                let (sign, text) = d.lines[k].split_at(1);
                if sign != "+" {
                    old.push(text);
                }
                if sign != "-" {
                    new.push(text);
                }
                k += 1;
            }
            let from = |s: usize, n: usize| if n == 0 { s } else { s - 1 };
            assert_eq!(old, la[from(sa, na)..from(sa, na) + na], "{h}");
            assert_eq!(new, lb[from(sb, nb)..from(sb, nb) + nb], "{h}");
        }
        let whole = similar::TextDiff::from_lines(&ta, &tb);
        let count = |tag| whole.iter_all_changes().filter(|c| c.tag() == tag).count();
        assert_eq!(d.removed, count(similar::ChangeTag::Delete));
        assert_eq!(d.added, count(similar::ChangeTag::Insert));
        d
    }

    #[test]
    fn equal_snapshots_render_nothing() {
        let a = state();
        assert_eq!(diff(&a, &a.clone(), 60), SnapshotDiff::default());
    }

    #[test]
    fn one_changed_pte_renders_one_part_with_whole_text_line_numbers() {
        let a = state();
        let mut b = a.clone();
        b.mms[1].ptes[215] = pte(b.mms[1].ptes[215].va, 1, true);
        let d = check_against_whole_texts(&a, &b);
        assert_eq!((d.removed, d.added), (1, 1));
        assert_eq!(d.parts_rendered, 1, "only the changed 2 MiB region");
        // Context: 3 lines either side, inside the region.
        assert_eq!(d.lines.len(), 1 + 3 + 2 + 3);
        let text = crate::differ::snapshot_diff(&a, &b, "reference", "young-preserve");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + d.lines.len() + 1, "{text}");
        assert_eq!(lines[..2], ["--- reference", "+++ young-preserve"]);
        assert_eq!(
            lines.last().copied(),
            Some("2 lines differ: 1 only in reference, 1 only in young-preserve")
        );
    }

    #[test]
    fn added_removed_and_changed_entities_match_a_whole_text_diff() {
        let a = state();
        let mut b = a.clone();
        b.lru_nr_gens = [1, 0];
        b.cpus[0].lazy = true;
        b.mms[0].rss[1] = 399;
        b.mms[0].ptes.remove(3);
        b.mms[0].ptes.remove(0);
        b.mms[1].ptes.push(pte(0x9000_0000, 5, false));
        b.folios.remove(17);
        b.folios[600].dirty = true;
        b.swap.push((FolioId(95_000), 1));
        b.mms.push(MmSnap {
            id: MmId(3),
            vmas: Vec::new(),
            ptes: vec![pte(0x1000, 1, true)],
            hugetlb_tables: Vec::new(),
            cpumask: Vec::new(),
            rss: [0, 1, 0],
            nr_pmds: 1,
        });
        let d = check_against_whole_texts(&a, &b);
        assert_eq!((d.removed, d.added), (7, 8));
        // Both mms' changed regions, mm0's header, mm3 (header, one region), a folio run twice,
        // swap, LRU, CPUs: far fewer than the 2 x 40 regions and 2 folio runs.
        assert!(d.parts_rendered <= 12, "{}", d.parts_rendered);
        let capped = diff(&a, &b, 10);
        assert_eq!(capped.lines.len(), 10);
        assert_eq!(capped.lines.len() + capped.more, d.lines.len());
        assert_eq!((capped.removed, capped.added), (7, 8));
    }
}
