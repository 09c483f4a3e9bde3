//! Fidelity on the 6.1 LTS captures (corpus/captures/k61-*, issue 22): every figure the kernel
//! logged, predicted by the 6.1 profile (`mmreplay fidelity`, whole capture), is pinned here
//! with its cause: within the goal (±25%, ±1 below 10) or outside it with the kernel mechanism
//! the model lacks. A change to the model or the observer shows as a changed pin.
//!
//! IPI receipts: 6.1 logs IPIs only where they land (`call_function*_entry`), unattributed; the
//! captures made with `record --probe ipi` also count the TLB shootdown calls received
//! (`flush_tlb_func` on a CPU other than its initiator) and the table-sync calls
//! (`tlb_remove_table_smp_sync`), which is what the model predicts (`tlb_receipts`,
//! `table_sync_receipts`). Every capture splits its receipts by what the receiving CPU did
//! next: a scheduler event (`ipi_receipts_sched`: wake-ups, idle-balance kicks, not modelled)
//! or anything else (`ipi_receipts_mm`, compared with the model's IPI targets).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

/// The figures checked: the kernel's own counts and the flush requests.
const FIGURES: &[&str] = &[
    "remote_tlb_flushes",
    "ipi_receipts",
    "ipi_receipts_mm",
    "tlb_receipts",
    "table_sync_receipts",
    "reclaimed",
    "rmap_referenced_visits",
    "rmap_unmap_visits",
    "lookarounds",
];

const WITHIN: &str = "within the goal";

/// (capture, figure, observed, predicted, cause).
const PINS: &[(&str, &str, u64, u64, &str)] = &[
    (
        "k61-hotset-classic",
        "remote_tlb_flushes",
        260,
        140,
        "by path (flush-paths, PATHS below): the 65 soft-dirty clears' flush_tlb_mm are \
      predicted (64); the shortfall is reclaim. The kernel's 195 reclaim requests are exactly \
      its unmaps made while the other CPU was lazily in mm_cpumask (the mask replayed from \
      the capture's sched_switch events; should_defer_flush, then one \
      try_to_unmap_flush_dirty per pageout, set_tlb_ubc_flush_pending taking \
      pte_dirty(pteval)): 177 in 10 passes that freed nothing, 18 in 3 passes that freed; \
      predicted 4 and 66. Two mechanisms. (1) The model defers on the PTE's write bit, and \
      the clears leave hot pages dirty but write-protected, so its unmaps rarely set \
      tlb_ubc->writable. (2) Writeback completion, as on k61-reclaim-classic: the kernel's \
      passes that freed nothing unmap and write 41,218 folios, its passes that freed 4,298; \
      the model's pageout completes at once, so its passes that freed nothing free 22,284 \
      pages (the kernel 0) and its passes that freed write 22,045. With pte_dirty alone \
      (not kept): 482, of which 32 in passes that freed nothing and 380 in passes that \
      freed, and hotset-mglru 976 against 328",
    ),
    (
        "k61-hotset-classic",
        "ipi_receipts",
        2337,
        65,
        "all receipts: most are the scheduler's (ipi_receipts_sched: remote wake-ups queued by \
      ttwu_queue_wakelist, nohz idle-balance kicks), which the model does not run; \
      ipi_receipts_mm, the rest, is within the goal",
    ),
    ("k61-hotset-classic", "reclaimed", 44812, 44738, WITHIN),
    // The written region of 2e3468778dbe's case (candidate_effects.rs).
    (
        "k61-compact-written",
        "remote_tlb_flushes",
        5393,
        6155,
        WITHIN,
    ),
    ("k61-compact-written", "ipi_receipts", 4307, 4586, WITHIN),
    ("k61-compact-written", "tlb_receipts", 4005, 4586, WITHIN),
    ("k61-compact-written", "table_sync_receipts", 0, 0, WITHIN),
    ("k61-compact-written", "reclaimed", 0, 0, WITHIN),
    (
        "k61-hotset-classic",
        "rmap_referenced_visits",
        97520,
        96568,
        WITHIN,
    ),
    (
        "k61-hotset-classic",
        "rmap_unmap_visits",
        45516,
        44738,
        WITHIN,
    ),
    ("k61-hotset-classic", "lookarounds", 0, 0, WITHIN),
    ("k61-hotset-mglru", "remote_tlb_flushes", 328, 259, WITHIN),
    (
        "k61-hotset-mglru",
        "ipi_receipts",
        3282,
        148,
        "all receipts: most are the scheduler's (ipi_receipts_sched: remote wake-ups queued by \
      ttwu_queue_wakelist, nohz idle-balance kicks), which the model does not run; \
      ipi_receipts_mm, the rest, is within the goal",
    ),
    ("k61-hotset-mglru", "reclaimed", 44818, 52204, WITHIN),
    (
        "k61-hotset-mglru",
        "rmap_referenced_visits",
        46858,
        53389,
        WITHIN,
    ),
    (
        "k61-hotset-mglru",
        "rmap_unmap_visits",
        45421,
        52204,
        WITHIN,
    ),
    ("k61-hotset-mglru", "lookarounds", 1437, 1198, WITHIN),
    // Was 138: the 132 set_migration_pte of pages the model never saw in mms it knows
    // (processes older than the capture sharing a library page with the workload) flushed
    // nothing; 6.1's try_to_migrate_one flushes each at once (ptep_clear_flush).
    ("k61-compaction", "remote_tlb_flushes", 222, 255, WITHIN),
    (
        "k61-compaction",
        "ipi_receipts",
        168,
        1,
        "all receipts: most are the scheduler's (ipi_receipts_sched: remote wake-ups queued by \
      ttwu_queue_wakelist, nohz idle-balance kicks), which the model does not run; \
      ipi_receipts_mm, the rest, is within the goal",
    ),
    ("k61-compaction", "tlb_receipts", 0, 1, WITHIN),
    ("k61-compaction", "table_sync_receipts", 0, 0, WITHIN),
    ("k61-compaction", "reclaimed", 0, 0, WITHIN),
    ("k61-hugetlb-fork", "remote_tlb_flushes", 0, 1, WITHIN),
    (
        "k61-hugetlb-fork",
        "ipi_receipts",
        272,
        4,
        "all receipts: most are the scheduler's (ipi_receipts_sched: remote wake-ups queued by \
      ttwu_queue_wakelist, nohz idle-balance kicks), which the model does not run; \
      ipi_receipts_mm, the rest, is within the goal",
    ),
    ("k61-hugetlb-fork", "tlb_receipts", 0, 1, WITHIN),
    ("k61-hugetlb-fork", "table_sync_receipts", 3, 3, WITHIN),
    ("k61-hugetlb-fork", "reclaimed", 0, 0, WITHIN),
    (
        "k61-reclaim-classic",
        "remote_tlb_flushes",
        911,
        2944,
        "by path (flush-paths, PATHS below): the 318 copy-on-write faults on the zero page \
      (wp_page_copy, ptep_clear_flush) are predicted (317); the excess is reclaim. The \
      kernel's 593 reclaim requests are exactly its unmaps made while the other CPU was \
      lazily in mm_cpumask (the mask replayed from the capture's sched_switch events; \
      should_defer_flush, then try_to_unmap_flush_dirty before each pageout): 507 in passes \
      that freed nothing, 86 in passes that freed; predicted 488 and 2,138. Mechanism: \
      writeback completion. The kernel's passes that freed nothing unmap and write 38,440 \
      folios and free none; its passes that freed unmap 2,884 and free 41,107 folios whose \
      writeback had ended (folio_end_writeback -> folio_rotate_reclaimable: inactive tail). \
      The model's pageout completes at once and puts the folio at the tail, so its passes \
      that freed nothing free 21,000 pages and its passes that freed write 19,589, at the \
      moments of the kernel's passes that freed, 513 of whose 4,410 have the other CPU \
      lazily in the mask (the kernel unmapped 90 folios in those 513). Holding writeback \
      until the next pass that freed (an experiment on the model before stop 15's file-list passes, not kept) gives 78 / 86 there but \
      2,067 / 507 in the passes that freed nothing: 131 of those 3,081 have the other CPU \
      in the mask, and the kernel unmapped only 629 folios in them",
    ),
    (
        "k61-reclaim-classic",
        "ipi_receipts",
        3526,
        1,
        "all receipts: most are the scheduler's (ipi_receipts_sched: remote wake-ups queued by \
      ttwu_queue_wakelist, nohz idle-balance kicks), which the model does not run; \
      ipi_receipts_mm, the rest, is within the goal",
    ),
    ("k61-reclaim-classic", "tlb_receipts", 1, 1, WITHIN),
    ("k61-reclaim-classic", "table_sync_receipts", 0, 0, WITHIN),
    ("k61-reclaim-classic", "reclaimed", 41208, 41220, WITHIN),
    (
        "k61-reclaim-classic",
        "rmap_referenced_visits",
        89071,
        89124,
        WITHIN,
    ),
    (
        "k61-reclaim-classic",
        "rmap_unmap_visits",
        41324,
        41220,
        WITHIN,
    ),
    ("k61-reclaim-classic", "lookarounds", 0, 0, WITHIN),
    (
        "k61-reclaim-mglru",
        "remote_tlb_flushes",
        2884,
        3533,
        WITHIN,
    ),
    (
        "k61-reclaim-mglru",
        "ipi_receipts",
        677,
        1,
        "all receipts: most are the scheduler's (ipi_receipts_sched: remote wake-ups queued by \
      ttwu_queue_wakelist, nohz idle-balance kicks), which the model does not run; \
      ipi_receipts_mm, the rest, is within the goal",
    ),
    ("k61-reclaim-mglru", "reclaimed", 41311, 47971, WITHIN),
    (
        "k61-reclaim-mglru",
        "rmap_referenced_visits",
        42287,
        48929,
        WITHIN,
    ),
    (
        "k61-reclaim-mglru",
        "rmap_unmap_visits",
        41342,
        47971,
        WITHIN,
    ),
    ("k61-reclaim-mglru", "lookarounds", 945, 973, WITHIN),
    (
        "k61-threads-shootdown",
        "remote_tlb_flushes",
        552,
        543,
        WITHIN,
    ),
    ("k61-threads-shootdown", "ipi_receipts", 622, 532, WITHIN),
    ("k61-threads-shootdown", "tlb_receipts", 541, 532, WITHIN),
    ("k61-threads-shootdown", "table_sync_receipts", 0, 0, WITHIN),
    ("k61-threads-shootdown", "reclaimed", 0, 0, WITHIN),
    // Receipts less the scheduler's: what the model's IPIs stand for.
    ("k61-compact-written", "ipi_receipts_mm", 4005, 4586, WITHIN),
    ("k61-compaction", "ipi_receipts_mm", 0, 1, WITHIN),
    ("k61-hotset-classic", "ipi_receipts_mm", 61, 65, WITHIN),
    ("k61-hotset-mglru", "ipi_receipts_mm", 137, 148, WITHIN),
    ("k61-hugetlb-fork", "ipi_receipts_mm", 3, 4, WITHIN),
    ("k61-reclaim-classic", "ipi_receipts_mm", 1, 1, WITHIN),
    ("k61-reclaim-mglru", "ipi_receipts_mm", 1, 1, WITHIN),
    ("k61-threads-shootdown", "ipi_receipts_mm", 542, 532, WITHIN),
];

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `mmreplay SUBCOMMAND ARGS... --json`, which must exit 0, as one JSON value.
fn json_of(subcommand: &str, args: &[&str]) -> Value {
    let o = Command::new(BIN)
        .arg(subcommand)
        .args(args)
        .arg("--json")
        .output()
        .expect("run mmreplay");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{subcommand} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

fn fidelity(args: &[&str]) -> Value {
    json_of("fidelity", args)
}

fn within(o: u64, p: u64) -> bool {
    if o < 10 {
        p.abs_diff(o) <= 1
    } else {
        p.abs_diff(o) * 4 <= o
    }
}

fn k61_captures() -> Vec<String> {
    let dir = format!("{}/../corpus/captures", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus/captures")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| {
            n.strip_suffix(".trace.zst")
                .filter(|s| s.starts_with("k61-"))
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_k61_figure_is_pinned_with_its_cause() {
    let caps = k61_captures();
    assert!(caps.len() >= 5, "{caps:?}");
    let mut bad = Vec::new();
    for cap in &caps {
        let v = fidelity(&[&corpus(&format!("{cap}.trace.zst"))]);
        assert_eq!(v["kernel"]["profile"], "6.1", "{cap}");
        for fig in FIGURES {
            let c = &v["counters"][*fig];
            let (Some(o), Some(p)) = (c["observed"].as_u64(), c["predicted"].as_u64()) else {
                assert!(
                    !PINS.iter().any(|x| x.0 == cap && x.1 == *fig),
                    "{cap}: {fig} pinned but not observed: {c}"
                );
                continue;
            };
            match PINS.iter().find(|x| x.0 == cap && x.1 == *fig) {
                None => bad.push(format!("{cap}: {fig} observed {o} predicted {p}: no pin")),
                Some((_, _, po, pp, why)) if (o, p) != (*po, *pp) => bad.push(format!(
                    "{cap}: {fig} now observed {o} predicted {p} (pinned {po} / {pp}: {why})"
                )),
                Some((_, _, _, _, why)) => {
                    // The cause must agree with the goal: "within" exactly when it is.
                    if within(o, p) != (*why == WITHIN) {
                        bad.push(format!(
                            "{cap}: {fig} {o} / {p}: cause says {why:?}, goal says {}",
                            within(o, p)
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// `--workload` scopes the replay to the recorded process tree; its kernel threads (a kworker
/// that logged a flush, rcu_preempt that took an IPI) must still leave the CPU lazy, keeping
/// the workload's `mm_cpumask` bit as the kernel does (before: 0 and 320 predicted remote
/// flushes against 1,861 and 3,381 over the whole capture).
#[test]
fn workload_scope_predicts_the_whole_captures_remote_flushes() {
    for cap in ["k61-reclaim-classic", "k61-reclaim-mglru"] {
        let t = corpus(&format!("{cap}.trace.zst"));
        let whole = fidelity(&[&t]);
        let wl = fidelity(&[&t, "--workload"]);
        assert!(
            wl["filtered_out"].as_u64() > Some(0),
            "{cap}: nothing filtered"
        );
        let p = |v: &Value| v["counters"]["remote_tlb_flushes"]["predicted"].as_u64();
        let (a, b) = (p(&whole).unwrap_or(0), p(&wl).unwrap_or(0));
        assert!(
            a > 100 && a.abs_diff(b) <= 1,
            "{cap}: whole {a}, --workload {b}"
        );
        // Receipts cannot be attributed to a process: null in a filtered run.
        for r in [
            "ipi_receipts",
            "ipi_receipts_mm",
            "ipi_receipts_sched",
            "tlb_receipts",
            "table_sync_receipts",
        ] {
            assert!(wl["counters"][r]["observed"].is_null(), "{cap}: {r}");
        }
    }
}

/// The split of receipts by the receiving CPU's next event is checked against the kernel's own
/// attribution: on every capture with `--probe ipi`, the receipts not followed by the
/// scheduler are the TLB and table-sync calls the probes counted (±1), and the two parts add
/// up to all receipts. Were the split wrong (say, every receipt counted for MM, or none),
/// `ipi_receipts_mm` would part from the probes' count by hundreds on k61-hugetlb-fork and
/// k61-reclaim-classic, whose receipts are almost all the scheduler's.
#[test]
fn receipts_not_followed_by_the_scheduler_are_the_probed_mm_calls() {
    let mut probed = 0;
    for cap in k61_captures() {
        let v = fidelity(&[&corpus(&format!("{cap}.trace.zst"))]);
        let obs = |n: &str| v["counters"][n]["observed"].as_u64();
        let (Some(all), Some(sched), Some(mm)) = (
            obs("ipi_receipts"),
            obs("ipi_receipts_sched"),
            obs("ipi_receipts_mm"),
        ) else {
            panic!("{cap}: receipts not split: {}", v["counters"]);
        };
        assert_eq!(sched + mm, all, "{cap}");
        assert!(
            v["counters"]["ipi_receipts_sched"]["predicted"].is_null(),
            "{cap}"
        );
        if let (Some(tlb), Some(sync)) = (obs("tlb_receipts"), obs("table_sync_receipts")) {
            probed += 1;
            assert!(
                mm.abs_diff(tlb + sync) <= 1,
                "{cap}: {mm} receipts counted for MM, the probes saw {tlb} TLB + {sync} table-sync calls"
            );
        }
    }
    assert!(probed >= 4, "captures with --probe ipi: {probed}");
}

/// Every remote flush request of each k61 capture by kernel path, logged / predicted
/// (`mmreplay flush-paths`, `mmreplay::flush_paths`). A model or observer change shows here as
/// a changed row. Rows outside the goal and their cause: the reclaim rows of the classic
/// captures (the two `remote_tlb_flushes` pins above); `madvise` on the hotset captures is the
/// recorder's own MADV_DONTNEED (75 and 191 calls), for which the kernel logged no remote
/// request and the model counts some; hotset-mglru's split between reclaim (126 / 45) and the
/// clears (176 / 142) is not explained, its total is within the goal.
const PATHS: &[(&str, &str, u64, u64)] = &[
    ("k61-compact-written", "another process (clear_refs)", 1, 0),
    ("k61-compact-written", "madvise", 819, 844),
    ("k61-compact-written", "migration", 4573, 5311),
    ("k61-compaction", "migration", 222, 254),
    ("k61-compaction", "munmap", 0, 1),
    ("k61-hotset-classic", "another process (clear_refs)", 65, 64),
    ("k61-hotset-classic", "madvise", 0, 5),
    ("k61-hotset-classic", "munmap", 0, 1),
    (
        "k61-hotset-classic",
        "reclaim: pass or episode that freed",
        18,
        66,
    ),
    (
        "k61-hotset-classic",
        "reclaim: pass that freed nothing",
        177,
        4,
    ),
    ("k61-hotset-mglru", "another process (clear_refs)", 176, 142),
    ("k61-hotset-mglru", "exit", 0, 1),
    ("k61-hotset-mglru", "madvise", 0, 45),
    ("k61-hotset-mglru", "munmap", 0, 1),
    ("k61-hotset-mglru", "page fault", 26, 25),
    (
        "k61-hotset-mglru",
        "reclaim: pass or episode that freed",
        126,
        45,
    ),
    ("k61-hugetlb-fork", "munmap", 0, 1),
    ("k61-reclaim-classic", "munmap", 0, 1),
    ("k61-reclaim-classic", "page fault", 318, 317),
    (
        "k61-reclaim-classic",
        "reclaim: pass or episode that freed",
        86,
        2138,
    ),
    (
        "k61-reclaim-classic",
        "reclaim: pass that freed nothing",
        507,
        488,
    ),
    ("k61-reclaim-mglru", "munmap", 0, 1),
    (
        "k61-reclaim-mglru",
        "reclaim: pass or episode that freed",
        2884,
        3532,
    ),
    ("k61-threads-shootdown", "exit", 0, 1),
    ("k61-threads-shootdown", "mprotect", 491, 480),
    ("k61-threads-shootdown", "munmap", 59, 61),
    ("k61-threads-shootdown", "page fault", 2, 1),
];

fn flush_paths(trace: &str) -> Value {
    json_of("flush-paths", &[trace])
}

/// Every logged and predicted remote flush request has a path, and the table is pinned: its
/// columns add up to the `remote_tlb_flushes` pins (every request attributed, none twice).
#[test]
fn every_k61_remote_flush_request_has_its_path() {
    let caps = k61_captures();
    assert!(caps.len() >= 8, "{caps:?}");
    let mut bad = Vec::new();
    for cap in &caps {
        let v = flush_paths(&corpus(&format!("{cap}.trace.zst")));
        let paths = v["flush_paths"]["paths"]
            .as_object()
            .expect("paths")
            .clone();
        let (mut so, mut sp) = (0, 0);
        for (path, c) in &paths {
            let (o, p) = (
                c["observed"].as_u64().unwrap_or(0),
                c["predicted"].as_u64().unwrap_or(0),
            );
            so += o;
            sp += p;
            match PATHS.iter().find(|x| x.0 == cap && x.1 == path) {
                Some(&(_, _, po, pp)) if (po, pp) == (o, p) => {}
                Some(&(_, _, po, pp)) => {
                    bad.push(format!("{cap}: {path} now {o} / {p} (pinned {po} / {pp})"))
                }
                None => bad.push(format!("{cap}: {path} {o} / {p}: no pin")),
            }
        }
        for x in PATHS.iter().filter(|x| x.0 == cap) {
            if !paths.contains_key(x.1) {
                bad.push(format!("{cap}: pinned path {} is gone", x.1));
            }
        }
        let pin = PINS
            .iter()
            .find(|x| x.0 == cap && x.1 == "remote_tlb_flushes")
            .map(|x| (x.2, x.3));
        if pin != Some((so, sp)) {
            bad.push(format!(
                "{cap}: paths add up to {so} / {sp}, remote_tlb_flushes pinned {pin:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The mechanism behind the classic captures' reclaim rows, in the kernel's and the model's
/// own work per path: the kernel unmaps and writes in its passes that free nothing and frees
/// in the others (its writeback ends later: folio_end_writeback -> folio_rotate_reclaimable);
/// the model, whose pageout completes at once, frees in the passes that freed nothing and
/// writes in the passes that freed. A writeback-completion model moves these figures.
#[test]
fn classic_reclaim_writes_and_frees_in_other_passes_than_the_kernel() {
    const SCAN: &str = "reclaim: pass that freed nothing";
    const FREE: &str = "reclaim: pass or episode that freed";
    // (capture, kernel: unmaps in passes that freed nothing, unmaps in passes that freed,
    // freed; model: pages freed in passes that freed nothing, written in passes that freed)
    for (cap, k_scan_unmaps, k_free_unmaps, k_freed, m_scan_freed, m_free_written) in [
        ("k61-reclaim-classic", 38440, 2884, 41107, 21000, 19589),
        ("k61-hotset-classic", 41218, 4298, 44731, 22284, 22045),
    ] {
        let v = flush_paths(&corpus(&format!("{cap}.trace.zst")));
        let ow = &v["flush_paths"]["observed_work"];
        let pw = &v["flush_paths"]["predicted_work"];
        let n = |w: &Value, k: String| w[&k].as_u64().unwrap_or(0);
        assert_eq!(
            n(ow, format!("{SCAN}: try_to_unmap_one")),
            k_scan_unmaps,
            "{cap}"
        );
        assert_eq!(n(ow, format!("{SCAN}: nr_reclaimed")), 0, "{cap}");
        assert_eq!(
            n(ow, format!("{FREE}: try_to_unmap_one")),
            k_free_unmaps,
            "{cap}"
        );
        assert_eq!(n(ow, format!("{FREE}: nr_reclaimed")), k_freed, "{cap}");
        assert_eq!(n(pw, format!("{SCAN}: evictions")), m_scan_freed, "{cap}");
        assert_eq!(n(pw, format!("{FREE}: swap_out")), m_free_written, "{cap}");
        // The kernel's rule, checked on its own events: one remote request per unmap made
        // while another CPU is in mm_cpumask (should_defer_flush, then
        // try_to_unmap_flush_dirty before its pageout), the mask replayed from the capture's
        // sched_switch events. The model applies the same rule at its own unmaps.
        for path in [SCAN, FREE] {
            assert_eq!(
                n(
                    ow,
                    format!("{path}: try_to_unmap_one while another CPU is in mm_cpumask")
                ),
                v["flush_paths"]["paths"][path]["observed"]
                    .as_u64()
                    .unwrap_or(0),
                "{cap}: {path}"
            );
        }
        // Every logged reclaim request is a try_to_unmap_flush_dirty before a pageout.
        let od = v["flush_paths"]["observed_detail"]
            .as_object()
            .expect("detail");
        for (k, c) in od.iter().filter(|(k, _)| k.starts_with("reclaim")) {
            assert!(
                k.ends_with("try_to_unmap_flush_dirty before pageout"),
                "{cap}: {k}: {c}"
            );
        }
    }
}
