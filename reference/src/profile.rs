//! `KernelProfile`: the kernel configuration the model emulates (mm-semantics A.1, F). It must
//! never hold policy choices: those are the `Policy` type parameter of `Model`.

use serde::{Deserialize, Serialize};

/// Which kernel generation's details to follow (mm-semantics A.1, F.1, F.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Base {
    /// v6.1-era: one-by-one migration with immediate flushes.
    K61,
    /// Recent mainline: migration batches use `TTU_BATCH_FLUSH` (one deferred flush per batch).
    Knew,
}

/// How x86 maintains `mm_cpumask` (mm-semantics A.6, F.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CpumaskMode {
    /// Older x86: the bit of `prev` is cleared when a CPU switches to a different user mm.
    ClearOnSwitch,
    /// Recent x86 (`should_trim_cpumask`): bits stay; a flush IPI to a CPU that no longer runs
    /// the mm trims it (`TLB_REMOTE_WRONG_CPU`). Such IPIs go out only when
    /// `should_trim_cpumask` is due: at most once a second per mm, by `Op::Clock` time.
    TrimByFlush,
}

/// `/sys/kernel/mm/transparent_hugepage/enabled` (anonymous PMD-sized THP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ThpMode {
    /// `never`.
    Never,
    /// `madvise`: only VMAs with MADV_HUGEPAGE (VM_HUGEPAGE).
    Madvise,
    /// `always`: every anonymous VMA without MADV_NOHUGEPAGE.
    Always,
}

/// Which LRU the capture kernel reclaims with (`CONFIG_LRU_GEN` and
/// `/sys/kernel/mm/lru_gen/enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LruKind {
    /// The two-list active/inactive LRU (`shrink_lruvec` → `shrink_active_list` /
    /// `shrink_inactive_list`), per-memcg lruvecs: `model/classic.rs`.
    Classic,
    /// Multi-gen LRU: `model/lru.rs`, `model/reclaim.rs`.
    Mglru {
        /// `/sys/kernel/mm/lru_gen/min_ttl_ms` (0: off; the model does not act on it yet).
        min_ttl_ms: u32,
    },
}

/// Kernel configuration for one model run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KernelProfile {
    /// K61 or KNEW details.
    pub base: Base,
    /// Online CPUs (1..=64). Table-sync IPIs target `nr_cpus - 1` CPUs.
    pub nr_cpus: u32,
    /// MGLRU page-table walk aging (`LRU_GEN_MM_WALK`).
    pub lru_gen_mm_walk: bool,
    /// `migration_entry_supports_ad()`: the arch/swap layout can hold A/D in migration entries.
    pub mig_ad_supported: bool,
    /// `CONFIG_MMU_GATHER_RCU_TABLE_FREE`: if false, `tlb_remove_table_sync_one()` is a NOP.
    pub rcu_table_free: bool,
    /// `mm_cpumask` maintenance.
    pub cpumask_mode: CpumaskMode,
    /// `fault_around_bytes / PAGE_SIZE` (default 16).
    pub fault_around_pages: u32,
    /// Modelled TLB entries per CPU, rounded up to a power of two (a direct-mapped TLB; the
    /// real STLB is larger and set-associative, but only staleness matters here).
    pub tlb_entries: u32,
    /// `tlb_single_page_flush_ceiling` (33 on x86).
    pub flush_ceiling_pages: u64,
    /// Run the full invariant scan (I7 accounting) every this many ops (0 = only at `finish`).
    pub full_check_every: u64,
    /// THP mode for anonymous memory (`madvise` unless the capture says otherwise).
    #[serde(default = "default_thp")]
    pub thp: ThpMode,
    /// `/sys/kernel/mm/transparent_hugepage/use_zero_page`: a read fault maps the huge zero page.
    #[serde(default = "default_true")]
    pub thp_use_zero_page: bool,
    /// The LRU the kernel reclaims with.
    pub lru: LruKind,
}

fn default_thp() -> ThpMode {
    ThpMode::Madvise
}

fn default_true() -> bool {
    true
}

impl Default for KernelProfile {
    fn default() -> Self {
        KernelProfile {
            base: Base::Knew,
            nr_cpus: 4,
            lru_gen_mm_walk: true,
            mig_ad_supported: true,
            rcu_table_free: true,
            cpumask_mode: CpumaskMode::ClearOnSwitch,
            fault_around_pages: 16,
            tlb_entries: 256,
            flush_ceiling_pages: 33,
            full_check_every: 0,
            thp: ThpMode::Madvise,
            thp_use_zero_page: true,
            lru: LruKind::Mglru { min_ttl_ms: 0 },
        }
    }
}
