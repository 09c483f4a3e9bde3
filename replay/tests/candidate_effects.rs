//! Each candidate's published effect, on the corpus captures that show it (free-running mode:
//! each policy makes its own decisions), with the figures in the assertions.
//!
//! - look-around (018ee47f1489) under the MGLRU profile on `reclaim-swap` (anon, 96 MiB written
//!   twice in a 32 MiB memcg with swap): the commit reports `page_vma_mapped_walk` falling from
//!   18.47% to 8.20% of kswapd cycles. The model's rmap PTE checks fall by about 20%, short of
//!   40%: accesses reach the model only through page faults, so a page touched again after its
//!   fault never looks young to look-around, and the MGLRU page-table walk clears the A bits of
//!   whole mms before eviction; look-around then finds few young neighbours to promote.
//! - A/D preservation (2e3468778dbe) on `compaction`: hardware A sets after migration fall to 0.
//! - batched unshare (8ce720d5bd91) on `hugetlb-share-conc`: one table-sync IPI per unshare
//!   batch instead of one per unshared PMD table.

use mmreplay::session::{self, SessionOptions};
use mmreplay_candidates::contract::Mode;
use mmreplay_reference::counters::Counters;
use mmreplay_reference::profile::LruKind;

fn corpus(name: &str) -> String {
    format!("{}/../corpus/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Counters of the reference and of `candidate` on `capture`, free-running.
fn run(capture: &str, candidate: &str, lru: LruKind) -> (Counters, Counters) {
    let o = SessionOptions {
        policies: vec!["reference".into(), candidate.into()],
        mode: Mode::FreeRunning,
        lru: Some(lru),
        locate: false,
        ..SessionOptions::default()
    };
    let r = match session::run(Some(&corpus(capture)), &o, |_, _| {}) {
        Ok(r) => r,
        Err(e) => panic!("{capture}: {e}"),
    };
    let c = |i: usize| match r.run.policies.get(i) {
        Some(p) => p.counters.clone(),
        None => panic!("{capture}: no policy {i}"),
    };
    (c(0), c(1))
}

#[test]
fn lookaround_cuts_rmap_pte_checks_under_mglru() {
    let (r, la) = run(
        "reclaim-swap.trace.zst",
        "lookaround",
        LruKind::Mglru { min_ttl_ms: 0 },
    );
    println!(
        "rmap PTE checks: reference {} look-around {} ({:.1}% fewer); rmap walks {} vs {}",
        r.a_tc_rmap_pte,
        la.a_tc_rmap_pte,
        100.0 - 100.0 * la.a_tc_rmap_pte as f64 / r.a_tc_rmap_pte.max(1) as f64,
        r.rmap_walks,
        la.rmap_walks
    );
    assert_eq!(r.evictions, la.evictions);
    assert!(la.a_tc_lookaround > 0);
    // At least 15% fewer rmap PTE checks ...
    assert!(la.a_tc_rmap_pte * 100 <= r.a_tc_rmap_pte * 85, "{la:?}");
    // ... but not the 40% of the commit (see the module doc): a fix of the access model
    // shows here.
    assert!(la.a_tc_rmap_pte * 100 > r.a_tc_rmap_pte * 60, "{la:?}");
}

#[test]
fn ad_preservation_removes_hardware_a_sets_after_migration() {
    let (r, ad) = run("compaction.trace.zst", "ad-preserve", LruKind::Classic);
    println!(
        "hw A sets after migration: reference {} ad-preserve {}; restored young {} vs {} over {} migrations",
        r.hw_a_sets_after_mig,
        ad.hw_a_sets_after_mig,
        r.mig_restored_young,
        ad.mig_restored_young,
        ad.migrations
    );
    assert!(ad.migrations > 1000);
    assert!(r.hw_a_sets_after_mig > 0);
    assert_eq!(ad.hw_a_sets_after_mig, 0);
    assert!(ad.mig_restored_young * 2 > ad.migrations);
}

#[test]
fn batched_unshare_sends_one_table_sync_per_batch() {
    let (r, b) = run(
        "hugetlb-share-conc.trace.zst",
        "batched-unshare",
        LruKind::Classic,
    );
    println!(
        "table-sync IPIs: reference {} batched-unshare {} ({} PMD tables unshared in {} batches)",
        r.ipi_sends_table_sync, b.ipi_sends_table_sync, b.pmd_unshares, b.unshare_flush_batches
    );
    // Before: one broadcast per unshared table.
    assert_eq!(r.ipi_sends_table_sync, r.pmd_unshares);
    // After: at most one per batch, none for batches that did not drop the last share.
    assert!(b.ipi_sends_table_sync <= b.unshare_flush_batches);
    assert!(b.ipi_sends_table_sync < r.ipi_sends_table_sync);
}
