//! `Counters`: what every policy's model counts, one flat struct so the differ can compare field
//! by field (ARCHITECTURE.md, code map: `reference/`, mm-semantics A.8). It must never count anything
//! policy-specific under a policy-specific name: all policies emit the same struct.

use serde::{Deserialize, Serialize};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Event counters of one model run. Field order is the stable report order.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct Counters {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Counters {
            /// Counter names in stable order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// `(name, value)` pairs in stable order.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name)),*]
            }

            /// Value by name.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $(stringify!($name) => Some(self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

counters! {
    /// Faults handled (`Fault` ops plus faults taken by `Access` ops).
    faults,
    /// Faults that found nothing to do.
    flt_spurious,
    /// Read faults on anon mapped to the zero page.
    flt_anon_zero,
    /// New anon folios (`do_anonymous_page`).
    flt_anon_new,
    /// File read faults.
    flt_file_read,
    /// Private file write faults (`do_cow_fault`).
    flt_file_cow,
    /// Shared file write faults.
    flt_file_write_shared,
    /// COW copies (`wp_page_copy`).
    flt_cow_copy,
    /// COW reuses (`wp_page_reuse`).
    flt_cow_reuse,
    /// Swap-ins.
    flt_swapin,
    /// Migration-entry waits.
    flt_migration_wait,
    /// hugetlb faults.
    flt_hugetlb,
    /// Faults delivered as SIGSEGV.
    segv,
    /// Pages mapped by fault-around.
    fault_around_mapped,
    /// TLB fills by page walks (B.0).
    tlb_fills,
    /// Hardware A-bit sets (page walk found the PTE old).
    hw_a_sets,
    /// Hardware D-bit sets.
    hw_d_sets,
    /// Hardware A sets on PTEs restored from migration and not accessed since.
    hw_a_sets_after_mig,
    /// Hardware D sets on PTEs restored from migration and not written since.
    hw_d_sets_after_mig,
    /// `flush_tlb_mm_range` calls that flushed only the local CPU.
    tlb_flush_local,
    /// `flush_tlb_mm_range`/`arch_tlbbatch_flush` calls that went to `flush_tlb_multi` (another
    /// CPU in the mask; `TLB_REMOTE_SEND_IPI`), whether or not any CPU then needed an IPI.
    tlb_flush_remote,
    /// Flushes that became full flushes (range > ceiling, fullmm, batch).
    tlb_flush_full,
    /// Pages covered by ranged flushes.
    tlb_flush_pages,
    /// `flush_tlb_func` runs on the sender for an mm it runs (`tlb_flush` reason 3, local MM
    /// shootdown): the local-only path and the sender's own share of `flush_tlb_multi`.
    tlb_flush_local_mm_shootdowns,
    /// `flush_tlb_func` runs on the sender of a reclaim/migration batch flush (`mm == NULL`,
    /// reason 2, local shootdown).
    tlb_flush_local_shootdowns,
    /// CPUs that took `TLB_REMOTE_WRONG_CPU` (reason 5) and left `mm_cpumask` (x86 6.14+).
    tlb_flush_remote_wrong_cpu,
    /// Shootdown IPI broadcasts (`flush_tlb_func`), one per `native_flush_tlb_multi`.
    ipi_sends_shootdown,
    /// Table-sync IPI broadcasts (`tlb_remove_table_sync_one`).
    ipi_sends_table_sync,
    /// IPI targets, all kinds.
    ipi_targets,
    /// Shootdown IPI targets.
    ipi_targets_shootdown,
    /// Table-sync IPI targets.
    ipi_targets_table_sync,
    /// rmap walks (`folio_referenced`, `try_to_unmap`, `try_to_migrate`, `remove_migration_ptes`).
    rmap_walks,
    /// PTEs visited by rmap walks (`page_vma_mapped_walk` hits).
    rmap_vma_visits,
    /// A bits actually cleared (any source).
    a_bit_clears,
    /// Test-and-clear-young attempts by the rmap walk.
    a_tc_rmap_pte,
    /// ... of which found young.
    a_cleared_rmap_pte,
    /// Test-and-clear-young attempts by look-around.
    a_tc_lookaround,
    /// ... of which found young.
    a_cleared_lookaround,
    /// Test-and-clear-young attempts by the MGLRU page-table walk.
    a_tc_pt_walk,
    /// ... of which found young.
    a_cleared_pt_walk,
    /// Test-and-clear-young attempts by MADV_COLD/PAGEOUT.
    a_tc_other,
    /// ... of which found young.
    a_cleared_other,
    /// `lru_gen_look_around` calls.
    lookaround_calls,
    /// PTEs scanned by look-around.
    lookaround_ptes_scanned,
    /// Folios promoted by look-around.
    gen_promote_lookaround,
    /// Folios promoted by the page-table walk.
    gen_promote_ptwalk,
    /// Folios activated by reclaim (referenced).
    gen_promote_activate,
    /// `inc_max_seq`.
    max_seq_incs,
    /// `inc_min_seq` / `try_to_inc_min_seq`.
    min_seq_incs,
    /// Folios scanned by eviction.
    scanned,
    /// Folios isolated and kept/put back.
    kept,
    /// Folios freed by reclaim (pages).
    evictions,
    /// Faults on pages evicted earlier (swap-in of an evicted anon page, re-read of an evicted
    /// file page).
    refaults,
    /// Anon folios written to swap.
    swap_out,
    /// Swap-ins that read from swap (not from the swap cache).
    swap_in,
    /// File folios written back by reclaim.
    writeback,
    /// Lazyfree folios discarded.
    lazyfree_discard,
    /// Lazyfree discards aborted (dirty or extra references): folio made swapbacked again.
    lazyfree_abort,
    /// Migrations completed.
    migrations,
    /// Migrations aborted (pinned, extra references).
    mig_aborted,
    /// Migration entries installed.
    mig_entries_set,
    /// Migration entries removed (PTE restored).
    mig_entries_removed,
    /// Restored PTEs that were young.
    mig_restored_young,
    /// Restored PTEs that were dirty.
    mig_restored_dirty,
    /// hugetlb PMD tables shared (`huge_pmd_share`).
    pmd_shares,
    /// hugetlb PMD tables unshared (`huge_pmd_unshare` returning 1).
    pmd_unshares,
    /// Unshares that took `pt_share_count` to 0.
    pmd_full_unshares,
    /// `huge_pmd_unshare_flush` calls (end of an unsharing range).
    unshare_flush_batches,
    /// Of `ipi_sends_table_sync`, the ones hugetlb unsharing sent (`tlb_remove_table_sync_one`
    /// from the unshare path; khugepaged's collapse sends the others).
    unshare_table_syncs,
    /// fork ops.
    forks,
    /// Anon pages copied at fork because they were pinned (I2).
    fork_pinned_copies,
    /// exec ops.
    execs,
    /// exit ops (exit_mmap).
    exits,
    /// Page-table pages (PTE/PMD tables) freed.
    tables_freed,
    /// Pins taken.
    pins,
    /// Extra references taken.
    extra_refs,
    /// THPs mapped by a fault (`thp_fault_alloc` in /proc/vmstat).
    thp_fault_alloc,
    /// THP PMDs split (`thp_split_pmd`).
    thp_split_pmd,
    /// THPs made by khugepaged collapses (`thp_collapse_alloc`).
    thp_collapse_alloc,
    /// `mm_vmscan_lru_shrink_inactive` `nr_scanned`: pages isolated from inactive lists (MGLRU:
    /// from the oldest generation).
    vmscan_scanned,
    /// ... `nr_reclaimed`: pages freed.
    vmscan_reclaimed,
    /// ... `nr_ref_keep`: kept on the inactive list because referenced once.
    vmscan_ref_keep,
    /// ... `nr_activate`: activated (referenced twice, VM_EXEC file, mlocked, unmap failed).
    vmscan_activated,
    /// Pages written out (swap or file) by reclaim (`nr_pageout`; classic LRU).
    vmscan_pageout,
    /// ... `nr_unmap_fail`.
    vmscan_unmap_fail,
    /// `mm_vmscan_lru_shrink_active` `nr_taken` (classic LRU).
    vmscan_active_scanned,
    /// ... `nr_deactivated`.
    vmscan_deactivated,
    /// ... `nr_rotated`: referenced VM_EXEC file folios kept active.
    vmscan_rotated,
    /// `Op::ClearSoftDirty` (`record --access` clears, `clear_refs` 4).
    softdirty_clears,
    /// PTE tables the MGLRU page-table walk skipped because its Bloom filter did not hold
    /// their PMD (`walk_pmd_range`: `!test_bloom_filter`).
    pt_walk_bloom_skips,
    /// Present PTEs those clears write-protected.
    softdirty_wrprotected,
    /// Write faults on a PTE a clear write-protected: a write between faults that the capture
    /// showed (the A bit it sets is access information from sampling, not from a first touch).
    softdirty_write_faults,
    /// Reclaim reference checks (`folio_referenced`) that found a mapped folio unreferenced
    /// while none of its mappers had access sampling: only faults could have shown an access,
    /// so the decision depends on accesses the capture does not contain.
    reclaim_unref_unsampled,
    /// ... while a mapper had `record --access` sampling: writes between faults were visible
    /// (at the sampling interval), reads were not.
    reclaim_unref_sampled,
    /// `Op::PageCacheAdd` that charged a regular-file page to the adding task's memcg
    /// (`__filemap_add_folio`); file pages without one stay the root's.
    pagecache_adds_charged,
    /// Of the reclaim checks that found a mapped folio unreferenced, those where a mapper is
    /// older than the capture (a task first seen mid-capture or seeded from the process
    /// snapshot, or a fork of one): accesses before the capture are unknown too.
    reclaim_unref_preexisting,
}

impl Counters {
    /// Total IPI broadcasts of every kind.
    pub fn ipi_sends(&self) -> u64 {
        self.ipi_sends_shootdown + self.ipi_sends_table_sync
    }
}
