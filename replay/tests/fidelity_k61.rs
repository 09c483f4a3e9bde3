//! Fidelity on the 6.1 LTS captures (corpus/captures/k61-*, issue 22): every figure the kernel
//! logged, predicted by the 6.1 profile (`mmreplay fidelity`, whole capture), is pinned here
//! with its cause: within the goal (±25%, ±1 below 10) or outside it with the kernel mechanism
//! the model lacks. A change to the model or the observer shows as a changed pin.
//!
//! IPI receipts: 6.1 logs IPIs only where they land (`call_function*_entry`), unattributed; the
//! captures made with `record --probe ipi` also count the TLB shootdown calls received
//! (`flush_tlb_func` on a CPU other than its initiator) and the table-sync calls
//! (`tlb_remove_table_smp_sync`), which is what the model predicts (`tlb_receipts`,
//! `table_sync_receipts`).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

/// The figures checked: the kernel's own counts and the flush requests.
const FIGURES: &[&str] = &[
    "remote_tlb_flushes",
    "ipi_receipts",
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
        "reclaim unmaps at other moments than the kernel, as on k61-reclaim-classic, and the \
      deferral takes the PTE's write bit: the kernel's 195 reclaim requests are its 195 \
      try_to_unmap_one calls (of 45,516) made while the other CPU was lazily in mm_cpumask \
      (should_defer_flush, then one try_to_unmap_flush_dirty per pageout), the 65 others the \
      soft-dirty clears' flush_tlb_mm. 41,218 of those unmaps are in the 3,402 passes that \
      freed nothing, now lowered at their moment (Op::ReclaimScan); with pte_dirty, as \
      set_tlb_ubc_flush_pending takes it, the model predicts 482 (978 before the scan passes): \
      its scan passes still write back fewer folios than the kernel's and its freeing passes \
      more (as on k61-reclaim-classic), at moments the other CPU is in the mask. With the \
      write bit the clears leave the hot pages dirty but write-protected, so few deferred \
      unmaps flush before pageout: 140 (153 before the scan passes, 118 before stop 15 put \
      the 23 freeing passes logged after the reclaiming task moved CPU in its memcg episode \
      instead of global reclaim)",
    ),
    (
        "k61-hotset-classic",
        "ipi_receipts",
        2337,
        65,
        "receipts of every cross-CPU call; this capture has no --probe ipi to attribute them",
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
        "receipts of every cross-CPU call; this capture has no --probe ipi to attribute them",
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
        "receipts of every cross-CPU call (scheduler, irq work, RCU): tlb_receipts 0 / 1 is \
      the TLB part",
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
        "receipts of every cross-CPU call: tlb_receipts 0 / 1 and table_sync_receipts 3 / 3 \
      are the MM part",
    ),
    ("k61-hugetlb-fork", "tlb_receipts", 0, 1, WITHIN),
    ("k61-hugetlb-fork", "table_sync_receipts", 3, 3, WITHIN),
    ("k61-hugetlb-fork", "reclaimed", 0, 0, WITHIN),
    (
        "k61-reclaim-classic",
        "remote_tlb_flushes",
        911,
        2944,
        "reclaim unmaps at other moments than the kernel: the flush rule is the kernel's \
      (should_defer_flush, then try_to_unmap_flush_dirty before each pageout: one remote \
      request per unmap while the other CPU is lazily in mm_cpumask; a replay of the capture's \
      own sched_switch events counts 593 such unmaps and 585 such writes). The kernel unmaps \
      and writes in the passes that free nothing (38,440 of 41,324 unmaps in 3,081 such \
      passes), and a later pass frees the folios its folio_end_writeback -> \
      folio_rotate_reclaimable put at the inactive tail. Those passes are lowered at their \
      moment since stop 14 (Op::ReclaimScan; 4,585 before; 2,991 before stop 15 kept passes \
      logged after the task moved CPU in its memcg episode): the model's do 24,923 pageouts, \
      its freeing passes still 16,314 (the kernel's 2,884 unmaps), at moments the capture's \
      own sched_switch events put the other CPU in the mask (all 2,626 of the model's \
      deferred unmaps); the model's pageout completes at once, so the writeback state \
      each pass finds (PG_writeback, nr_writeback, reclaim_throttle) is not the kernel's",
    ),
    (
        "k61-reclaim-classic",
        "ipi_receipts",
        3526,
        1,
        "receipts of every cross-CPU call: tlb_receipts 1 / 1 is the TLB part",
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
        "this capture predates `--probe ipi` (kept: it is bundled, and issue 14's look-around \
      work measures on it), so its receipts are not attributed; on every capture that has \
      the probes the TLB receipts are within the goal",
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
];

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fidelity(args: &[&str]) -> Value {
    let o = Command::new(BIN)
        .arg("fidelity")
        .args(args)
        .arg("--json")
        .output()
        .expect("run mmreplay");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON object")
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
        for r in ["ipi_receipts", "tlb_receipts", "table_sync_receipts"] {
            assert!(wl["counters"][r]["observed"].is_null(), "{cap}: {r}");
        }
    }
}
