//! `mmreplay report`: the data of a visual report on one capture (verdicts, fidelity, counters
//! over time per policy, an access heatmap over address × time, per-process and per-VMA
//! tables per policy, the first diverging window with its ops) and its rendering as ONE
//! self-contained HTML page (inline SVG and a few lines of inline script, nothing fetched).
//!
//! One replay of the input (`session::run_watched`): the verdicts, final snapshots and
//! counters, and, collected while the policies run, the sampled counters and the op-stream
//! side of the heatmap and tables (`html/collect.rs`). Only locating a first divergence reads
//! the input again, up to that op (the session's re-run, or [`first_counter_divergence`] for
//! a counters-only one). Everything it keeps is bounded ([`MAX_POINTS`] samples per policy,
//! [`HEAT_ROWS`] × [`HEAT_COLS`] cells from at most `collect::MAX_GRANULES` granules,
//! [`MAX_VMAS`] table rows), so the page of a 100 M-record capture is as small as that of a
//! small one.
//!
//! It must never embed the op stream, fetch anything from the network, or iterate a hash map
//! into the output (the same input gives a byte-identical page).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mmreplay_candidates::registry;
use mmreplay_candidates::verdict::Verdict;
use mmreplay_reference::counters::Counters;
use mmreplay_reference::op::Op;
use mmreplay_reference::snapshot::{PteState, Snapshot};
use serde::Serialize;

use crate::engine;
use crate::lower::{LowerOptions, Lowering};
use crate::session::{self, SessionError, SessionOptions};
use crate::source::Source;

/// Most samples per policy and counter.
pub const MAX_POINTS: u64 = 300;
/// Heatmap rows (address buckets) and columns (time buckets).
pub const HEAT_ROWS: usize = 64;
/// Heatmap columns.
pub const HEAT_COLS: u64 = 160;
/// Most VMAs listed (the largest by mapped pages in the reference).
pub const MAX_VMAS: usize = 40;
/// Most processes listed (the most ops first): a whole-machine capture has thousands.
pub const MAX_PROCESSES: usize = 60;
/// Ops shown before and after a first diverging op.
pub use crate::session::{WINDOW_AFTER, WINDOW_BEFORE};

mod collect;
#[cfg(test)]
mod tests;

/// The counters plotted over time: (counter, title).
pub const SERIES: [(&str, &str); 10] = [
    ("tlb_flush_local", "TLB flushes, local"),
    ("tlb_flush_remote", "TLB flushes, remote"),
    ("ipi_sends_shootdown", "IPIs: flush_tlb_func (shootdown)"),
    ("ipi_sends_table_sync", "IPIs: tlb_remove_table_smp_sync"),
    ("faults", "faults"),
    ("evictions", "evictions"),
    ("refaults", "refaults"),
    ("migrations", "migrations"),
    ("a_bit_clears", "A-bit clears"),
    ("mig_restored_young", "migration: restored young"),
];

/// One counter over time, one line per policy: (ops applied, value).
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub counter: String,
    pub title: String,
    pub points: Vec<Vec<(u64, u64)>>,
}

/// Accesses and faults per (address bucket × op bucket).
#[derive(Clone, Debug, Serialize)]
pub struct Heatmap {
    /// Label of each row (its first 64 KiB granule: `mmN 0x...`), top row = lowest address.
    pub rows: Vec<String>,
    /// Ops per column.
    pub ops_per_col: u64,
    /// Columns.
    pub cols: u64,
    /// cells[row][col].
    pub cells: Vec<Vec<u32>>,
    /// Distinct granules touched.
    pub granules: usize,
    /// Granule size: 64 KiB, doubled as often as needed to keep at most
    /// [`collect::MAX_GRANULES`] of them.
    pub granule_kib: u64,
}

/// Final page-table facts of one mm or VMA under one policy.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PteStats {
    pub present: u64,
    pub young: u64,
    pub dirty: u64,
    pub swap: u64,
}

/// One process (mm) row.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessRow {
    pub mm: u32,
    /// Ops of this mm in the op stream, the first and the last.
    pub ops: u64,
    pub first_op: u64,
    pub last_op: u64,
    /// mmaps in the op stream.
    pub mmaps: u64,
    /// Accesses and faults in the op stream.
    pub accesses: u64,
    /// Final page-table state, one per policy.
    pub per_policy: Vec<PteStats>,
}

/// One VMA row.
#[derive(Clone, Debug, Serialize)]
pub struct VmaRow {
    pub mm: u32,
    pub start: String,
    pub end: String,
    pub kind: String,
    pub prot: String,
    /// Op index of its mmap, and of the munmap that covered its start (if any).
    pub mapped_at: u64,
    pub unmapped_at: Option<u64>,
    /// Accesses and faults inside it (its mm and mms forked after it).
    pub accesses: u64,
    /// Final page-table state inside it, one per policy.
    pub per_policy: Vec<PteStats>,
}

/// A candidate's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictRow {
    pub candidate: String,
    pub label: Verdict,
    pub detail: String,
    pub first_step: Option<u64>,
    pub breaches: Vec<String>,
}

/// Observed (capture) vs predicted (reference model).
#[derive(Clone, Debug, Serialize)]
pub struct FidelityRow {
    pub count: String,
    pub observed: u64,
    pub predicted: u64,
}

/// The ops around a candidate's first diverging op, and the snapshot diff there.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    pub candidate: String,
    /// `state` (the first op after which the snapshots differ) or `counters` (only counters
    /// differ: the first op after which one does).
    pub kind: String,
    pub first_step: u64,
    /// (op index, op as a litmus line).
    pub ops: Vec<(u64, String)>,
    pub diff: String,
}

/// Ops of a window: (op index, op as a litmus line).
type WindowOps = Vec<(u64, String)>;

/// Everything the page shows about one trace (`--json` prints this).
#[derive(Clone, Debug, Serialize)]
pub struct TraceReport {
    pub trace: String,
    pub format: String,
    pub nr_cpus: u32,
    pub mode: String,
    pub records: u64,
    pub ops: u64,
    pub policies: Vec<String>,
    pub verdicts: Vec<VerdictRow>,
    pub fidelity: Vec<FidelityRow>,
    /// Final counters: (name, value per policy), every counter.
    pub counters: Vec<(String, Vec<u64>)>,
    pub violations: Vec<u64>,
    pub series: Vec<Series>,
    pub heatmap: Heatmap,
    pub processes: Vec<ProcessRow>,
    /// Processes (mms) in the op stream and final snapshots; `processes` lists the
    /// [`MAX_PROCESSES`] with the most ops.
    pub processes_total: usize,
    pub vmas: Vec<VmaRow>,
    pub vmas_total: usize,
    pub windows: Vec<Window>,
    /// What the replay read and assumed about its input (lost events, unparsed lines, filters).
    pub input: crate::input_report::InputReport,
}

fn pte_stats<'a>(
    ptes: impl Iterator<Item = &'a mmreplay_reference::snapshot::PteSnap>,
) -> PteStats {
    let mut s = PteStats::default();
    for p in ptes {
        match p.state {
            PteState::Present { young, dirty, .. } => {
                s.present += 1;
                s.young += u64::from(young);
                s.dirty += u64::from(dirty);
            }
            PteState::Swap { .. } => s.swap += 1,
            _ => {}
        }
    }
    s
}

fn prot_text(p: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(1u32, 'r'), (2, 'w'), (4, 'x')] {
        s.push(if p & bit != 0 { c } else { '-' });
    }
    s
}

/// Build the report of one input (`None`: the bundled capture).
///
/// One replay of the capture: the series, the heatmap and the op-stream side of the tables
/// are collected while the policies run ([`engine::Watch`]); the ops around each located
/// first divergence come from the session's locating re-run, which stops there. A candidate
/// that differs only in counters is re-run with the reference up to its first differing op.
pub fn build(input: Option<&str>, o: &SessionOptions) -> Result<TraceReport, SessionError> {
    let is_litmus = input.is_some_and(crate::source::is_litmus);
    let npol = session::specs(&o.policies)?.len();
    let mut acc = collect::OpsAcc::default();
    let mut sampler = collect::Sampler::new(npol);
    let mut litmus_ops: Vec<Op> = Vec::new();
    let r = if let Some(path) = input.filter(|_| is_litmus) {
        // Litmus files are small: the ops are in memory, samples come from applying them
        // prefix by prefix.
        let r = session::run(input, o, |_, _| {})?;
        let f = crate::litmus::load(std::path::Path::new(path))?;
        let mut profile = f.profile.clone();
        if let Some(n) = o.cpus {
            profile.nr_cpus = n.clamp(1, 64);
        }
        litmus_ops = f.ops.into_iter().map(|l| l.op).collect();
        for (i, op) in litmus_ops.iter().enumerate() {
            acc.op(i as u64, op);
        }
        let chunk = (litmus_ops.len() as u64).div_ceil(MAX_POINTS).max(16);
        let mut engines = registry::build_all(&session::specs(&o.policies)?, &profile);
        for (k, op) in litmus_ops.iter().enumerate() {
            for e in engines.iter_mut() {
                let _ = e.apply(op);
            }
            if (k as u64 + 1) % chunk == 0 {
                let all: Vec<(u64, &Counters)> =
                    engines.iter().map(|e| (e.steps(), e.counters())).collect();
                sampler.push(&all);
            }
        }
        r
    } else {
        let watch = engine::Watch {
            sample: &mut |all: &engine::Sample<'_>| sampler.push(all),
            ops: &mut |start: u64, ops: &[Op]| {
                for (k, op) in ops.iter().enumerate() {
                    acc.op(start + k as u64, op);
                }
            },
            grow: true,
        };
        session::run_watched(input, o, |_, _| {}, watch)?
    };
    let names: Vec<String> = r.run.policies.iter().map(|p| p.name.clone()).collect();
    let total_ops = r.run.lower.ops;
    // The ops around each located first divergence.
    let mut steps: Vec<(String, u64, WindowOps)> = Vec::new();
    for v in &r.verdicts {
        let Some(s) = v.first_difference.as_ref().and_then(|d| d.first_step) else {
            continue;
        };
        let ops: Vec<(u64, String)> = if is_litmus {
            litmus_ops
                .iter()
                .enumerate()
                .map(|(i, op)| (i as u64, op))
                .filter(|(i, _)| i + WINDOW_BEFORE >= s && *i <= s + WINDOW_AFTER)
                .map(|(i, op)| (i, crate::litmus::format_op(op)))
                .collect()
        } else {
            r.windows
                .get(&v.candidate)
                .map(|w| {
                    w.iter()
                        .map(|(i, op)| (*i, crate::litmus::format_op(op)))
                        .collect()
                })
                .unwrap_or_default()
        };
        steps.push((v.candidate.clone(), s, ops));
    }
    // A candidate that differs only in counters has no located state divergence: its window
    // is at the first op after which a counter differs.
    let mut counter_only_steps: Vec<String> = Vec::new();
    if !is_litmus && input != Some("-") {
        let specs = session::specs(&o.policies)?;
        let profile = session::profile_for(o, r.nr_cpus);
        for (i, v) in r.verdicts.iter().enumerate() {
            let counter_only = v
                .first_difference
                .as_ref()
                .is_some_and(|d| d.first_step.is_none());
            let (Some(rs), Some(cs)) = (specs.first(), specs.get(i + 1)) else {
                continue;
            };
            if counter_only {
                let lower = LowerOptions {
                    pid: o.pid,
                    comm: o.comm.clone(),
                    nr_cpus: r.nr_cpus,
                    procs: crate::session::procs_for(input)?,
                    access: crate::session::access_for(input)?,
                };
                let lockstep = o.mode == mmreplay_candidates::contract::Mode::Lockstep;
                if let Some((s, ops)) =
                    first_counter_divergence(input, o.strict, lower, lockstep, || {
                        (rs.build(&profile), cs.build(&profile))
                    })?
                {
                    steps.push((v.candidate.clone(), s, ops));
                    counter_only_steps.push(v.candidate.clone());
                }
            }
        }
    }
    let last: Vec<(u64, collect::Values)> = r
        .run
        .policies
        .iter()
        .map(|p| (total_ops, collect::values(&p.counters)))
        .collect();
    let samples = sampler.finish(&last);
    let series = SERIES
        .iter()
        .enumerate()
        .map(|(k, (c, t))| Series {
            counter: c.to_string(),
            title: t.to_string(),
            points: samples
                .iter()
                .map(|s| {
                    s.iter()
                        .map(|(x, v)| (*x, v.get(k).copied().unwrap_or(0)))
                        .collect()
                })
                .collect(),
        })
        .collect();
    // Heatmap rows: granules in (mm, address) order, bucketed evenly.
    let heat = &acc.heat;
    let cols = heat.cols(total_ops);
    let granules = heat.sorted();
    let nrows = granules.len().clamp(1, HEAT_ROWS);
    let mut rows = vec![String::new(); nrows];
    let mut grid = vec![vec![0u32; cols as usize]; nrows];
    for (rank, (g, line)) in granules.iter().enumerate() {
        let row = rank * nrows / granules.len().max(1);
        if let Some(label) = rows.get_mut(row).filter(|l| l.is_empty()) {
            *label = format!("mm{} {:#x}", g.0, g.1 << (16 + heat.shift));
        }
        if let Some(cells) = grid.get_mut(row) {
            for (c, n) in line.iter() {
                if let Some(x) = cells.get_mut(usize::from(*c)) {
                    *x = x.saturating_add(*n);
                }
            }
        }
    }
    // Tables from the final snapshots.
    let snaps: Vec<&Snapshot> = r.run.policies.iter().map(|p| &p.snapshot).collect();
    let mut mm_ids: Vec<u32> = snaps
        .iter()
        .flat_map(|s| s.mms.iter().map(|m| m.id.0))
        .chain(
            acc.mms
                .iter()
                .filter(|(_, a)| a.accesses > 0)
                .map(|(mm, _)| *mm),
        )
        .collect();
    mm_ids.sort_unstable();
    mm_ids.dedup();
    // Each snapshot's mms by id, so a row costs a lookup, not a scan of every mm.
    let by_id: Vec<BTreeMap<u32, usize>> = snaps
        .iter()
        .map(|s| s.mms.iter().enumerate().map(|(i, m)| (m.id.0, i)).collect())
        .collect();
    let find = |k: usize, mm: u32| {
        by_id
            .get(k)
            .and_then(|ix| ix.get(&mm))
            .and_then(|&i| snaps.get(k).and_then(|s| s.mms.get(i)))
    };
    let processes_total = mm_ids.len();
    // Most ops first; ties by mm id (the sort is stable over the sorted ids).
    mm_ids.sort_by_key(|mm| std::cmp::Reverse(acc.mms.get(mm).map_or(0, |a| a.ops)));
    mm_ids.truncate(MAX_PROCESSES);
    let processes = mm_ids
        .iter()
        .map(|&mm| {
            let a = acc.mms.get(&mm).copied().unwrap_or_default();
            ProcessRow {
                mm,
                ops: a.ops,
                first_op: a.first_op,
                last_op: a.last_op,
                mmaps: a.mmaps,
                accesses: a.accesses,
                per_policy: (0..snaps.len())
                    .map(|k| {
                        find(k, mm).map_or_else(PteStats::default, |m| pte_stats(m.ptes.iter()))
                    })
                    .collect(),
            }
        })
        .collect();
    let vmas_total = acc.vmas_total;
    let vmas: Vec<VmaRow> = acc
        .top_vmas()
        .into_iter()
        .map(|v| VmaRow {
            mm: v.mm,
            start: format!("{:#x}", v.start),
            end: format!("{:#x}", v.end),
            kind: v.kind.clone(),
            prot: prot_text(v.prot),
            mapped_at: v.mapped_at,
            unmapped_at: v.unmapped_at,
            accesses: v.accesses,
            per_policy: (0..snaps.len())
                .map(|k| {
                    find(k, v.mm).map_or_else(PteStats::default, |x| {
                        pte_stats(x.ptes.iter().filter(|p| p.va >= v.start && p.va < v.end))
                    })
                })
                .collect(),
        })
        .collect();
    let verdicts = r
        .verdicts
        .iter()
        .map(|v| {
            let detail = v.detail().unwrap_or_default();
            let first_step = v.first_difference.as_ref().and_then(|d| d.first_step);
            VerdictRow {
                candidate: v.candidate.clone(),
                label: v.verdict,
                detail,
                first_step,
                breaches: v.breaches.iter().take(10).map(|b| b.to_string()).collect(),
            }
        })
        .collect();
    let obs = &r.run.lower.observed;
    let fidelity = match r.run.policies.first() {
        Some(p) => {
            let c = &p.counters;
            vec![
                (
                    "remote TLB flushes",
                    obs.remote_tlb_flushes,
                    c.tlb_flush_remote,
                ),
                ("TLB + table-sync IPI sends", obs.ipis, c.ipi_sends()),
                (
                    "shootdown IPI sends",
                    obs.ipis_shootdown,
                    c.ipi_sends_shootdown,
                ),
                (
                    "table-sync IPI sends",
                    obs.ipis_table_sync,
                    c.ipi_sends_table_sync,
                ),
                (
                    "migration: restored young",
                    obs.mig_restored_young,
                    c.mig_restored_young,
                ),
                (
                    "migration: restored dirty",
                    obs.mig_restored_dirty,
                    c.mig_restored_dirty,
                ),
            ]
            .into_iter()
            .map(|(n, observed, predicted)| FidelityRow {
                count: n.to_string(),
                observed,
                predicted,
            })
            .collect()
        }
        None => Vec::new(),
    };
    let counters = Counters::default()
        .pairs()
        .into_iter()
        .map(|(n, _)| {
            (
                n.to_string(),
                r.run
                    .policies
                    .iter()
                    .map(|p| p.counters.get(n).unwrap_or(0))
                    .collect(),
            )
        })
        .collect();
    let windows = steps
        .into_iter()
        .map(|(cand, s, ops)| Window {
            kind: if counter_only_steps.contains(&cand) {
                "counters".into()
            } else {
                "state".into()
            },
            diff: r.diffs.get(&cand).cloned().unwrap_or_default(),
            candidate: cand,
            first_step: s,
            ops,
        })
        .collect();
    Ok(TraceReport {
        trace: r.trace.clone(),
        format: r.format.clone(),
        nr_cpus: r.nr_cpus,
        mode: match o.mode {
            mmreplay_candidates::contract::Mode::Lockstep => "lockstep".into(),
            mmreplay_candidates::contract::Mode::FreeRunning => "free".into(),
        },
        records: r.run.lower.records,
        input: r.input.clone(),
        ops: r.run.lower.ops,
        policies: names,
        verdicts,
        fidelity,
        counters,
        violations: r.run.policies.iter().map(|p| p.violation_count).collect(),
        series,
        heatmap: Heatmap {
            rows,
            ops_per_col: heat.ops_per_col,
            cols,
            cells: grid,
            granules: granules.len(),
            granule_kib: 64u64 << heat.shift,
        },
        processes,
        processes_total,
        vmas,
        vmas_total,
        windows,
    })
}

/// The first op after which the two models' counters differ (re-reading the input up to
/// there) and the ops around it ([`WINDOW_BEFORE`] before, [`WINDOW_AFTER`] after).
fn first_counter_divergence(
    input: Option<&str>,
    strict: bool,
    lower: LowerOptions,
    lockstep: bool,
    build: impl Fn() -> (
        mmreplay_candidates::BoxedEngine,
        mmreplay_candidates::BoxedEngine,
    ),
) -> Result<Option<(u64, WindowOps)>, SessionError> {
    let (mut r, mut c) = build();
    let mut src = Source::open_opt(input, strict)?;
    let mut lowering = Lowering::new(lower);
    let mut buf = Vec::new();
    let mut i = 0u64;
    let mut recent: std::collections::VecDeque<(u64, Op)> = Default::default();
    let mut found: Option<u64> = None;
    loop {
        let rec = src.next_record()?;
        match &rec {
            Some(rec) => lowering.push(rec, &mut buf),
            None => lowering.finish(&mut buf),
        }
        for op in buf.drain(..) {
            if let Some(s) = found {
                if i > s + WINDOW_AFTER {
                    break;
                }
                recent.push_back((i, op));
                i += 1;
                continue;
            }
            if lockstep {
                let (_, script) = r.apply_recording(&op);
                let _ = match &script {
                    Some(s) => c.apply_imposed(&op, s).0,
                    None => c.apply(&op),
                };
            } else {
                let _ = r.apply(&op);
                let _ = c.apply(&op);
            }
            if recent.len() as u64 > WINDOW_BEFORE {
                recent.pop_front();
            }
            recent.push_back((i, op));
            if r.counters() != c.counters() {
                found = Some(i);
            }
            i += 1;
        }
        let done = found.is_some_and(|s| i > s + WINDOW_AFTER);
        if rec.is_none() || done {
            return Ok(found.map(|s| {
                let ops = recent
                    .iter()
                    .map(|(k, op)| (*k, crate::litmus::format_op(op)))
                    .collect();
                (s, ops)
            }));
        }
    }
}

/// HTML-escape text.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Line colours per policy column (reference first).
const COLORS: [&str; 6] = [
    "#1f2937", "#d97706", "#2563eb", "#059669", "#db2777", "#7c3aed",
];

fn color(i: usize) -> &'static str {
    COLORS.get(i % COLORS.len()).copied().unwrap_or("#000")
}

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#111;max-width:1400px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}\
th{background:#f3f4f6}td.l,th.l{text-align:left}tr.diff td{background:#fff7ed}\
.same{color:#047857}.diverged_within_contract{color:#b45309}.contract_breach,.not_comparable{color:#b91c1c;font-weight:bold}\
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee;padding:4px}\
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:14px;height:3px;margin-right:4px;vertical-align:middle}\
pre{background:#f9fafb;border:1px solid #eee;padding:8px;overflow-x:auto;font-size:12px}pre b{background:#fde68a}\
section.trace{margin-bottom:48px}#status{color:#6b7280;font-size:12px}";

/// An axis label of at most 5 characters whatever the magnitude: exact below 10,000, else
/// three significant digits and an SI suffix (266,809 → "267k", 1,234,567 → "1.23M"), so the
/// y-axis label fits the chart's left margin ([`CHART_PAD`]). Integer arithmetic only, so the
/// page stays byte-identical across platforms.
pub fn axis_label(v: u64) -> String {
    if v < 10_000 {
        return v.to_string();
    }
    const SUFFIX: [char; 6] = ['k', 'M', 'G', 'T', 'P', 'E'];
    let v = u128::from(v);
    let mut unit = 1_000u128;
    for (k, suffix) in SUFFIX.iter().enumerate() {
        // Each precision rounds `v` itself (half up), never an already rounded figure.
        let at = |scale: u128| (v * scale + unit / 2) / unit;
        let text = if at(100) < 1_000 {
            let h = at(100);
            format!("{}.{:02}", h / 100, h % 100)
        } else if at(10) < 1_000 {
            let t = at(10);
            format!("{}.{}", t / 10, t % 10)
        } else if at(1) < 1_000 || k + 1 == SUFFIX.len() {
            at(1).to_string()
        } else {
            unit *= 1_000;
            continue;
        };
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        return format!("{text}{suffix}");
    }
    v.to_string()
}

/// The series charts' left margin (px), wide enough for any [`axis_label`] (5 characters of
/// the 10 px axis font, right-aligned 3 px before the axis).
pub const CHART_PAD: f64 = 40.0;

fn chart(s: &Series, policies: &[String], max_x: u64) -> String {
    let (w, h, pad) = (340.0f64, 150.0f64, CHART_PAD);
    let max_y = s
        .points
        .iter()
        .flatten()
        .map(|p| p.1)
        .max()
        .unwrap_or(0)
        .max(1);
    let max_label = axis_label(max_y);
    let mut o = String::new();
    let _ = write!(
        o,
        "<div class=\"chart\"><div><b>{}</b> <small>({})</small></div>\
         <svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" data-chart=\"{}\">",
        esc(&s.title),
        esc(&s.counter),
        w + pad,
        h + 24.0,
        w + pad,
        h + 24.0,
        esc(&s.counter)
    );
    let _ = write!(
        o,
        "<line x1=\"{pad}\" y1=\"{h}\" x2=\"{}\" y2=\"{h}\" stroke=\"#999\"/>\
         <line x1=\"{pad}\" y1=\"4\" x2=\"{pad}\" y2=\"{h}\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"12\" font-size=\"10\" text-anchor=\"end\">{max_label}<title>{max_y}</title></text>\
         <text x=\"{}\" y=\"{h}\" font-size=\"10\" text-anchor=\"end\">0</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{max_x} ops</text>",
        w + pad,
        pad - 3.0,
        pad - 3.0,
        w + pad,
        h + 14.0
    );
    for (i, pts) in s.points.iter().enumerate() {
        let mut p = String::new();
        for (x, y) in pts {
            let px = pad + (*x as f64) * w / (max_x.max(1) as f64);
            let py = h - (*y as f64) * (h - 6.0) / (max_y as f64);
            let _ = write!(p, "{px:.1},{py:.1} ");
        }
        // Later policies dashed so identical lines stay visible.
        let dash = if i == 0 {
            ""
        } else {
            " stroke-dasharray=\"6 3\""
        };
        let _ = write!(
            o,
            "<polyline data-series=\"{}\" data-policy=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"{dash} points=\"{}\"/>",
            esc(&s.counter),
            esc(policies.get(i).map_or("", String::as_str)),
            color(i),
            p.trim_end()
        );
    }
    o.push_str("</svg></div>");
    o
}

fn heatmap(h: &Heatmap) -> String {
    let (cw, ch, left) = (5.0f64, 7.0f64, 190.0f64);
    let max = h.cells.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let width = left + cw * h.cols as f64 + 10.0;
    let height = ch * h.rows.len() as f64 + 24.0;
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" data-heatmap=\"{}x{}\">",
        h.rows.len(),
        h.cols
    );
    for (r, (label, line)) in h.rows.iter().zip(&h.cells).enumerate() {
        let y = r as f64 * ch;
        if r % 4 == 0 {
            let _ = write!(
                o,
                "<text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"end\">{}</text>",
                left - 4.0,
                y + ch,
                esc(label)
            );
        }
        for (c, n) in line.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            // Log scale, as damo's heatmaps: one hot page must not wash out the rest.
            let a = ((*n as f64).ln_1p() / max.ln_1p()).clamp(0.08, 1.0);
            let _ = write!(
                o,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{cw}\" height=\"{ch}\" fill=\"#dc2626\" fill-opacity=\"{a:.2}\"><title>{}: {n}</title></rect>",
                left + c as f64 * cw,
                esc(label)
            );
        }
    }
    let _ = write!(
        o,
        "<text x=\"{left}\" y=\"{}\" font-size=\"10\">op 0</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">op {} →</text></svg>",
        height - 6.0,
        width - 10.0,
        height - 6.0,
        h.ops_per_col * h.cols
    );
    o
}

fn stats_cells(o: &mut String, s: &[PteStats]) {
    for p in s {
        let _ = write!(
            o,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            p.present, p.young, p.dirty, p.swap
        );
    }
}

fn stats_header(o: &mut String, policies: &[String], lead: &[&str]) {
    o.push_str("<tr>");
    for l in lead {
        let _ = write!(o, "<th class=\"l\" rowspan=\"2\">{l}</th>");
    }
    for p in policies {
        let _ = write!(o, "<th colspan=\"4\">{}</th>", esc(p));
    }
    o.push_str("</tr><tr>");
    for _ in policies {
        o.push_str("<th>present</th><th>young</th><th>dirty</th><th>swap</th>");
    }
    o.push_str("</tr>");
}

fn section(t: &TraceReport) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<section class=\"trace\" data-trace=\"{}\"><h1>{}</h1><p>{}, {} CPUs, mode {}: {} records → {} ops.</p>",
        esc(&t.trace),
        esc(&t.trace),
        esc(&t.format),
        t.nr_cpus,
        esc(&t.mode),
        t.records,
        t.ops
    );
    // What the run read and assumed (CPUs, kernel, clock and where each came from; unparsed,
    // skipped and out-of-order lines; lost and overwritten events; filters): the same lines
    // the text report prints (`InputReport::text`), so the page hides nothing the text says.
    let _ = write!(
        o,
        "<h2>Input</h2><pre data-input=\"{}\">{}</pre>",
        esc(&t.trace),
        esc(&t.input.text())
    );
    o.push_str("<h2>Verdicts</h2><table><tr><th class=\"l\">candidate</th><th class=\"l\">verdict</th><th class=\"l\">detail</th></tr>");
    for v in &t.verdicts {
        let _ = write!(
            o,
            "<tr data-verdict=\"{}\"><td class=\"l\">{}</td><td class=\"l {}\">{}</td><td class=\"l\">{}{}</td></tr>",
            esc(&v.candidate),
            esc(&v.candidate),
            v.label,
            v.label,
            esc(&v.detail),
            v.breaches
                .iter()
                .map(|b| format!("<br>breach: {}", esc(b)))
                .collect::<String>()
        );
    }
    o.push_str("</table>");
    o.push_str("<h2>Fidelity: reference model vs the capture</h2><table><tr><th class=\"l\">count</th><th>observed</th><th>predicted</th><th>predicted / observed</th></tr>");
    for f in &t.fidelity {
        let _ = write!(
            o,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.count),
            f.observed,
            f.predicted,
            esc(&crate::report::ratio(f.predicted, f.observed))
        );
    }
    o.push_str("</table>");
    // Legend.
    let mut legend = String::from("<div class=\"legend\">");
    for (i, p) in t.policies.iter().enumerate() {
        let _ = write!(
            legend,
            "<span><i style=\"background:{}\"></i>{}</span>",
            color(i),
            esc(p)
        );
    }
    legend.push_str("</div>");
    let _ = write!(
        o,
        "<h2>Counters over time</h2><p>Cumulative, {} points per line (at most {MAX_POINTS} samples plus the start and the end, whatever the capture's length; x: ops applied).</p>{legend}<div class=\"charts\">",
        t.series.first().and_then(|s| s.points.first()).map_or(0, Vec::len)
    );
    for s in &t.series {
        o.push_str(&chart(s, &t.policies, t.ops));
    }
    o.push_str("</div>");
    let _ = write!(
        o,
        "<h2>Accesses over address × time</h2><p>Faults and accesses in the op stream (the same for every policy), {} distinct {} KiB granules in {} rows (mm, address order), {} ops per column; colour on a log scale.</p>{}",
        t.heatmap.granules,
        t.heatmap.granule_kib,
        t.heatmap.rows.len(),
        t.heatmap.ops_per_col,
        heatmap(&t.heatmap)
    );
    o.push_str("<h2>Final counters</h2><table><tr><th class=\"l\">counter</th>");
    for p in &t.policies {
        let _ = write!(o, "<th>{}</th>", esc(p));
    }
    o.push_str("</tr>");
    for (n, vals) in &t.counters {
        let differs = vals.windows(2).any(|w| w.first() != w.get(1));
        if vals.iter().all(|v| *v == 0) {
            continue;
        }
        let _ = write!(
            o,
            "<tr{}><td class=\"l\">{}</td>",
            if differs { " class=\"diff\"" } else { "" },
            esc(n)
        );
        for v in vals {
            let _ = write!(o, "<td>{v}</td>");
        }
        o.push_str("</tr>");
    }
    let _ = write!(o, "<tr><td class=\"l\">invariant violations</td>");
    for v in &t.violations {
        let _ = write!(o, "<td>{v}</td>");
    }
    o.push_str("</tr></table><p><small>Counters that are 0 under every policy are not listed; rows that differ are shaded.</small></p>");
    let _ = write!(
        o,
        "<h2>Processes ({} of {}, most ops first)</h2><p>From the op stream; the per-policy columns are the final page-table state (empty for a process that exited).</p><table>",
        t.processes.len(),
        t.processes_total
    );
    stats_header(
        &mut o,
        &t.policies,
        &["mm", "ops", "first op", "last op", "mmaps", "accesses"],
    );
    for p in &t.processes {
        let differs = p.per_policy.windows(2).any(|w| w.first() != w.get(1));
        let _ = write!(
            o,
            "<tr{}><td class=\"l\">mm{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            if differs { " class=\"diff\"" } else { "" },
            p.mm,
            p.ops,
            p.first_op,
            p.last_op,
            p.mmaps,
            p.accesses
        );
        stats_cells(&mut o, &p.per_policy);
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    let _ = write!(
        o,
        "<h2>VMAs ({} of the {} mmaps in the op stream, most accessed first)</h2><table>",
        t.vmas.len(),
        t.vmas_total
    );
    stats_header(
        &mut o,
        &t.policies,
        &[
            "mm",
            "range",
            "kind",
            "prot",
            "mapped at op",
            "unmapped at op",
            "accesses",
        ],
    );
    for v in &t.vmas {
        let differs = v.per_policy.windows(2).any(|w| w.first() != w.get(1));
        let _ = write!(
            o,
            "<tr{}><td class=\"l\">mm{}</td><td class=\"l\">{}-{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
            if differs { " class=\"diff\"" } else { "" },
            v.mm,
            esc(&v.start),
            esc(&v.end),
            esc(&v.kind),
            esc(&v.prot),
            v.mapped_at,
            v.unmapped_at.map_or_else(|| "-".to_string(), |u| u.to_string()),
            v.accesses
        );
        stats_cells(&mut o, &v.per_policy);
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    o.push_str("<h2>First diverging window</h2>");
    if t.windows.is_empty() {
        o.push_str("<p>No candidate's state diverged at a located op.</p>");
    }
    for w in &t.windows {
        let _ = write!(
            o,
            "<h3>{}: {} first differ after op {}</h3><pre data-window=\"{}\">",
            esc(&w.candidate),
            if w.kind == "counters" {
                "counters"
            } else {
                "states"
            },
            w.first_step,
            esc(&w.candidate)
        );
        for (i, line) in &w.ops {
            if *i == w.first_step {
                let _ = writeln!(o, "<b>{i:>10}  {}</b>", esc(line));
            } else {
                let _ = writeln!(o, "{i:>10}  {}", esc(line));
            }
        }
        o.push_str("</pre>");
        if !w.diff.is_empty() {
            let _ = write!(o, "<pre>{}</pre>", esc(&w.diff));
        }
    }
    o.push_str("</section>");
    o
}

/// The whole page: one section per trace, inline CSS and SVG, and a script that only counts
/// what was drawn into `#status` (`data-ok="1"` when every chart has one line per policy and
/// no SVG label sticks out of its viewBox: `data-clipped` counts those, by their bounding box).
pub fn render(traces: &[TraceReport]) -> String {
    let mut o = String::from("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mmreplay report</title><style>");
    o.push_str(CSS);
    o.push_str("</style></head><body><p id=\"status\" data-ok=\"0\">rendering</p>");
    for t in traces {
        o.push_str(&section(t));
    }
    let expected: usize = traces
        .iter()
        .map(|t| t.series.len() * t.policies.len())
        .sum();
    let _ = writeln!(
        o,
        "<script>(function(){{var s=document.getElementById('status');\
         var n=document.querySelectorAll('polyline[data-series]').length;\
         var h=document.querySelectorAll('svg[data-heatmap]').length;\
         s.textContent='mmreplay report: '+n+' series, '+h+' heatmaps';\
         s.setAttribute('data-series',String(n));\
         var c=0;document.querySelectorAll('svg text').forEach(function(t){{\
         var b=t.getBBox(),v=t.ownerSVGElement.viewBox.baseVal;\
         if(b.x<v.x-0.5||b.x+b.width>v.x+v.width+0.5)c++;}});\
         s.setAttribute('data-clipped',String(c));\
         s.setAttribute('data-ok',(n==={expected}&&h==={}&&c===0)?'1':'0');}})();</script></body></html>",
        traces.len()
    );
    o
}
