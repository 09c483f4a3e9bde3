//! The classic-LRU reference model against the kernel's own vmscan events on the corpus
//! capture with reclaim (`reclaim-swap`: a 6.18 kernel without MGLRU, memcg v1 anon reclaim to
//! swap). Goal of the reclaim-fidelity issue: per-capture totals of `nr_scanned`,
//! `nr_reclaimed`, `nr_ref_keep` within ±25%. Under MGLRU the same capture misses it (the
//! kernel scanned each page three times: referenced keep, pageout, free after writeback), which
//! is what this test pins as the reason the profile must follow the capture kernel.

use mmreplay::session::{self, SessionOptions};
use mmreplay_candidates::contract::Mode;
use mmreplay_reference::profile::LruKind;

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// (observed, predicted) of scanned, reclaimed, ref_keep, activated.
fn figures(lru: LruKind, mode: Mode) -> [(u64, u64); 4] {
    let o = SessionOptions {
        policies: vec!["reference".into()],
        mode,
        lru: Some(lru),
        locate: false,
        ..SessionOptions::default()
    };
    let r = match session::run(Some(&corpus("reclaim-swap.trace.zst")), &o, |_, _| {}) {
        Ok(r) => r,
        Err(e) => panic!("replay: {e}"),
    };
    let v = &r.run.lower.observed.vmscan;
    let Some(c) = r.run.policies.first().map(|p| &p.counters) else {
        panic!("no reference run");
    };
    [
        (v.scanned, c.vmscan_scanned),
        (v.reclaimed, c.vmscan_reclaimed),
        (v.ref_keep, c.vmscan_ref_keep),
        (v.activated, c.vmscan_activated),
    ]
}

fn within(p: u64, o: u64, pct: u64) -> bool {
    p * 100 >= o * (100 - pct) && p * 100 <= o * (100 + pct)
}

#[test]
fn classic_lru_follows_the_kernels_vmscan_totals() {
    let f = figures(LruKind::Classic, Mode::Lockstep);
    println!(
        "classic (observed, predicted): scanned {:?} reclaimed {:?} ref_keep {:?} activated {:?}",
        f[0], f[1], f[2], f[3]
    );
    // The capture logged these (sums of 7,250 mm_vmscan_lru_shrink_inactive events).
    assert_eq!(
        (f[0].0, f[1].0, f[2].0, f[3].0),
        (125_238, 41_089, 42_864, 3)
    );
    for (name, (o, p)) in ["scanned", "reclaimed", "ref_keep"].iter().zip(&f) {
        assert!(within(*p, *o, 25), "{name}: predicted {p} vs observed {o}");
    }
    // Activations stay small on both sides (a few folios referenced twice); the model's are
    // folios mapped twice after fork (refs > 1), which the kernel saw fewer of.
    assert!(f[3].1 < 100, "activated {}", f[3].1);

    // MGLRU on the same capture frees each page on its first eviction pass (no writeback
    // round trip, no two-strike keep): it scans far less and keeps far fewer.
    let m = figures(LruKind::Mglru { min_ttl_ms: 0 }, Mode::Lockstep);
    println!(
        "mglru (observed, predicted): scanned {:?} reclaimed {:?} ref_keep {:?}",
        m[0], m[1], m[2]
    );
    assert!(
        !within(m[0].1, m[0].0, 25) || !within(m[2].1, m[2].0, 25),
        "{m:?}"
    );
}

/// Every corpus capture with classic-LRU reclaim (both kernels): the model's per-capture totals
/// of `mm_vmscan_lru_shrink_inactive`'s nr_scanned, nr_reclaimed, nr_ref_keep, nr_activate
/// against the kernel's, each pinned with its cause (goal ±25%, ±1 below 10). A change to the
/// model shows as a changed pin.
#[test]
fn vmscan_table_of_every_classic_capture_with_reclaim() {
    const WITHIN: &str = "within the goal";
    const BINARY_TEXT: &str = "the kernel's 3: 2 in its 2 passes of the file list \
        (flags=RECLAIM_WB_FILE; the model now shrinks its file list there, stop 15), of the 5 \
        pages of the workload binary that execve's kernel_read (4, unpaired adds in the \
        syscall) and one fault's read-ahead charged to the workload's memcg: 3 are deleted from \
        the page cache right after, so the 2 activated are pages 0 (ELF header, PG_referenced \
        from the read, then read at AT_PHDR by ld.so) and 1 (text, VM_EXEC). The model's \
        memcg file list is empty: exec's mappings are not in the capture, the binary's region \
        is first touched by ld.so's load of the program headers, so it is inferred anonymous, \
        and execve's adds have no fault to pair with. The third is an anon folio referenced at \
        two looks of a pass that freed nothing (32 scanned, 31 kept): accessed without a fault \
        between the looks (stack or data of the running loop), which a capture without access \
        samples does not show (was 18/26 before page-cache charging)";
    // (capture, figure, observed, predicted, cause).
    let pins: &[(&str, &str, u64, u64, &str)] = &[
        (
            "k61-hotset-classic",
            "vmscan_scanned",
            142_198,
            141_306,
            WITHIN,
        ),
        (
            "k61-hotset-classic",
            "vmscan_reclaimed",
            44_731,
            44_738,
            WITHIN,
        ),
        (
            "k61-hotset-classic",
            "vmscan_ref_keep",
            51_123,
            50_725,
            WITHIN,
        ),
        // 824 of the kernel's 826 activations (and 49,578 of its 51,123 keeps) are in passes
        // that freed nothing, lowered as Op::ReclaimScan at their moment since stop 14 (before:
        // 1,046, +27%, the model doing that scanning later, in the next pass that freed).
        ("k61-hotset-classic", "vmscan_activated", 826, 1_025, WITHIN),
        (
            "k61-reclaim-classic",
            "vmscan_scanned",
            130_205,
            130_344,
            WITHIN,
        ),
        (
            "k61-reclaim-classic",
            "vmscan_reclaimed",
            41_107,
            41_220,
            WITHIN,
        ),
        (
            "k61-reclaim-classic",
            "vmscan_ref_keep",
            47_743,
            47_890,
            WITHIN,
        ),
        (
            "k61-reclaim-classic",
            "vmscan_activated",
            2,
            0,
            "the kernel's 2: a file folio in a pass of the inactive file list at priority 0 \
            (flags=RECLAIM_WB_FILE, 3 scanned, 2 freed; the model shrinks its file list there \
            since stop 15 and activates none: the workload's own file pages, of the sh binary \
            it ran first and of anon_reclaim, are added at faults on regions the lowering \
            inferred anonymous, ld.so having read their program headers first), and \
            an anon folio in a pass that freed nothing (9 scanned, 8 kept), referenced at two \
            looks with no fault between them (no access samples in this capture)",
        ),
        ("reclaim-swap", "vmscan_scanned", 125_238, 109_384, WITHIN),
        ("reclaim-swap", "vmscan_reclaimed", 41_089, 41_926, WITHIN),
        ("reclaim-swap", "vmscan_ref_keep", 42_864, 42_862, WITHIN),
        ("reclaim-swap", "vmscan_activated", 3, 0, BINARY_TEXT),
        ("tour", "vmscan_scanned", 33_304, 28_803, WITHIN),
        ("tour", "vmscan_reclaimed", 10_332, 10_701, WITHIN),
        ("tour", "vmscan_ref_keep", 12_040, 11_939, WITHIN),
        ("tour", "vmscan_activated", 3, 0, BINARY_TEXT),
    ];
    let within = |o: u64, p: u64| {
        if o < 10 {
            p.abs_diff(o) <= 1
        } else {
            p.abs_diff(o) * 4 <= o
        }
    };
    let mut bad = Vec::new();
    for cap in [
        "k61-hotset-classic",
        "k61-reclaim-classic",
        "reclaim-swap",
        "tour",
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mmreplay"))
            .args(["fidelity", &corpus(&format!("{cap}.trace.zst")), "--json"])
            .output()
            .expect("run mmreplay");
        assert_eq!(o.status.code(), Some(0), "{cap}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        for fig in [
            "vmscan_scanned",
            "vmscan_reclaimed",
            "vmscan_ref_keep",
            "vmscan_activated",
        ] {
            let c = &v["counters"][fig];
            let (Some(ob), Some(pr)) = (c["observed"].as_u64(), c["predicted"].as_u64()) else {
                bad.push(format!("{cap}: {fig} not observed: {c}"));
                continue;
            };
            match pins.iter().find(|x| x.0 == cap && x.1 == fig) {
                None => bad.push(format!("{cap}: {fig} {ob} / {pr}: no pin")),
                Some((_, _, po, pp, why)) if (ob, pr) != (*po, *pp) => bad.push(format!(
                    "{cap}: {fig} now {ob} / {pr} (pinned {po} / {pp}: {why})"
                )),
                Some((_, _, _, _, why)) if within(ob, pr) != (*why == WITHIN) => bad.push(format!(
                    "{cap}: {fig} {ob} / {pr}: cause disagrees with goal"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
