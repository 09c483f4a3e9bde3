//! x86-64 page-table-entry decoding for raw values logged by `migrate:set_migration_pte` and
//! `migrate:remove_migration_pte`.
//!
//! Layout follows `arch/x86/include/asm/pgtable_types.h` (bit numbers), `pgtable_64.h`
//! (`__swp_type`, `__swp_offset`: swap entries are stored inverted, L1TF mitigation) and
//! `include/linux/swapops.h` (`SWP_MIG_YOUNG_BIT`, `SWP_MIG_DIRTY_BIT`). Pure bit arithmetic: it
//! must never know which migration type numbers a given kernel config uses (learn them from the
//! trace) and never panic.

/// `_PAGE_BIT_PRESENT`.
pub const BIT_PRESENT: u32 = 0;
/// `_PAGE_BIT_RW`.
pub const BIT_RW: u32 = 1;
/// `_PAGE_BIT_USER`.
pub const BIT_USER: u32 = 2;
/// `_PAGE_BIT_ACCESSED` (young).
pub const BIT_ACCESSED: u32 = 5;
/// `_PAGE_BIT_DIRTY`.
pub const BIT_DIRTY: u32 = 6;
/// `_PAGE_BIT_PROTNONE` (aliases `_PAGE_BIT_GLOBAL`): a !present PTE with it set is PROT_NONE.
pub const BIT_PROTNONE: u32 = 8;
/// `_PAGE_BIT_SOFT_DIRTY` (`_PAGE_BIT_SOFTW3`) for present PTEs.
pub const BIT_SOFT_DIRTY: u32 = 11;
/// `_PAGE_BIT_NX`.
pub const BIT_NX: u32 = 63;
/// `_PAGE_SWP_SOFT_DIRTY` is bit 1 (`_PAGE_RW`) in a swap PTE.
pub const BIT_SWP_SOFT_DIRTY: u32 = 1;
/// `_PAGE_SWP_UFFD_WP` is bit 2 (`_PAGE_USER`) in a swap PTE.
pub const BIT_SWP_UFFD_WP: u32 = 2;
/// `_PAGE_SWP_EXCLUSIVE` is bit 3 (`_PAGE_PWT`) in a swap PTE.
pub const BIT_SWP_EXCLUSIVE: u32 = 3;

/// `SWP_TYPE_BITS` in `pgtable_64.h`.
pub const SWP_TYPE_BITS: u32 = 5;
/// `SWP_OFFSET_SHIFT` = `SWP_OFFSET_FIRST_BIT` (`_PAGE_BIT_PROTNONE + 1` = 9) + `SWP_TYPE_BITS`.
pub const SWP_OFFSET_SHIFT: u32 = BIT_PROTNONE + 1 + SWP_TYPE_BITS;

/// `SWP_PFN_BITS` = `MAX_PHYSMEM_BITS - PAGE_SHIFT`: 46 - 12 with 4-level paging.
pub const SWP_PFN_BITS_4LEVEL: u32 = 34;
/// 52 - 12 with 5-level paging (LA57).
pub const SWP_PFN_BITS_5LEVEL: u32 = 40;

/// Physical address bits 12..51 (`PTE_PFN_MASK` with `__PHYSICAL_MASK_SHIFT` = 52).
const PFN_MASK: u64 = ((1u64 << 52) - 1) & !((1u64 << 12) - 1);

#[inline]
fn bit(raw: u64, b: u32) -> bool {
    (raw >> b) & 1 == 1
}

/// A present PTE's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresentPte {
    pub pfn: u64,
    pub write: bool,
    pub user: bool,
    pub young: bool,
    pub dirty: bool,
    pub soft_dirty: bool,
    pub nx: bool,
}

/// A non-present, non-none PTE: a swap-format entry (swap, migration, device, marker...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapPte {
    /// `__swp_type`: the top 5 bits.
    pub swp_type: u32,
    /// `__swp_offset`: bits 9..58, stored inverted.
    pub offset: u64,
    pub soft_dirty: bool,
    pub uffd_wp: bool,
    pub exclusive: bool,
}

/// A migration entry's offset split per `include/linux/swapops.h`
/// (`make_migration_entry_young`, `make_migration_entry_dirty`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationOffset {
    pub pfn: u64,
    pub young: bool,
    pub dirty: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pte {
    /// `pte_none`.
    None,
    Present(PresentPte),
    /// PROT_NONE (NUMA hinting): !P but `_PAGE_PROTNONE` set; the pfn is stored inverted.
    ProtNone {
        pfn: u64,
    },
    Swap(SwapPte),
}

/// Decodes a raw x86-64 PTE value (`pte_val`).
pub fn decode(raw: u64) -> Pte {
    if raw == 0 {
        return Pte::None;
    }
    if bit(raw, BIT_PRESENT) {
        return Pte::Present(PresentPte {
            pfn: (raw & PFN_MASK) >> 12,
            write: bit(raw, BIT_RW),
            user: bit(raw, BIT_USER),
            young: bit(raw, BIT_ACCESSED),
            dirty: bit(raw, BIT_DIRTY),
            soft_dirty: bit(raw, BIT_SOFT_DIRTY),
            nx: bit(raw, BIT_NX),
        });
    }
    if bit(raw, BIT_PROTNONE) {
        // `pgtable-invert.h`: PROT_NONE PTEs store the pfn inverted (L1TF).
        return Pte::ProtNone {
            pfn: ((!raw) & PFN_MASK) >> 12,
        };
    }
    Pte::Swap(decode_swap(raw))
}

/// `__swp_type` / `__swp_offset` plus the software bits of a swap PTE.
pub fn decode_swap(raw: u64) -> SwapPte {
    SwapPte {
        swp_type: (raw >> (64 - SWP_TYPE_BITS)) as u32,
        offset: (!raw << SWP_TYPE_BITS) >> SWP_OFFSET_SHIFT,
        soft_dirty: bit(raw, BIT_SWP_SOFT_DIRTY),
        uffd_wp: bit(raw, BIT_SWP_UFFD_WP),
        exclusive: bit(raw, BIT_SWP_EXCLUSIVE),
    }
}

/// Splits a migration entry offset: pfn in the low `swp_pfn_bits`, then young, then dirty.
/// `swp_pfn_bits` is [`SWP_PFN_BITS_4LEVEL`] or [`SWP_PFN_BITS_5LEVEL`]; values above 62 are
/// clamped so the shifts stay defined.
pub fn migration_offset(offset: u64, swp_pfn_bits: u32) -> MigrationOffset {
    let b = swp_pfn_bits.min(62);
    MigrationOffset {
        pfn: offset & ((1u64 << b) - 1),
        young: bit(offset, b),
        dirty: bit(offset, b + 1),
    }
}

/// Builds the raw swap PTE for (type, offset), as `__swp_entry` + `__swp_entry_to_pte` do.
/// Used by tests and by synthetic inputs; the inverse of [`decode_swap`] for type and offset.
pub fn encode_swap(swp_type: u32, offset: u64) -> u64 {
    ((!offset) << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS) | ((swp_type as u64) << (64 - SWP_TYPE_BITS))
}

/// Whether a `remove_migration_pte` value (the restored PTE) is young / dirty. A non-present
/// value (restore failed or a device entry) is neither.
pub fn restored_young_dirty(raw: u64) -> (bool, bool) {
    match decode(raw) {
        Pte::Present(p) => (p.young, p.dirty),
        _ => (false, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_bits() {
        // pfn 0x1f5dac, P|RW|US|A|D, soft-dirty, NX.
        let raw = (0x1f5dacu64 << 12) | 0b111 | (1 << 5) | (1 << 6) | (1 << 11) | (1 << 63);
        let Pte::Present(p) = decode(raw) else {
            panic!("not present")
        };
        assert_eq!(p.pfn, 0x1f5dac);
        assert!(p.write && p.user && p.young && p.dirty && p.soft_dirty && p.nx);
        let Pte::Present(q) = decode((0x1234u64 << 12) | 1) else {
            panic!("not present")
        };
        assert_eq!(q.pfn, 0x1234);
        assert!(!q.write && !q.young && !q.dirty && !q.soft_dirty);
        assert_eq!(restored_young_dirty(raw), (true, true));
        assert_eq!(
            restored_young_dirty((0x1234u64 << 12) | 1 | (1 << 5)),
            (true, false)
        );
    }

    #[test]
    fn none_and_protnone() {
        assert_eq!(decode(0), Pte::None);
        let raw = ((!(0x42u64 << 12)) & PFN_MASK) | (1 << BIT_PROTNONE);
        assert_eq!(decode(raw), Pte::ProtNone { pfn: 0x42 });
    }

    #[test]
    fn swap_entry_roundtrip_and_inversion() {
        let raw = encode_swap(29, 0x12345);
        // Inverted storage: the high physical bits are set (L1TF), type in bits 59..63.
        assert_eq!(raw >> 59, 29);
        assert!(raw & (1 << 40) != 0);
        assert_eq!(raw & 1, 0, "swap entry must not be present");
        let s = decode_swap(raw);
        assert_eq!(s.swp_type, 29);
        assert_eq!(s.offset, 0x12345);
        assert!(!s.soft_dirty && !s.uffd_wp && !s.exclusive);
        let s2 = decode_swap(raw | (1 << 1) | (1 << 3));
        assert!(s2.soft_dirty && s2.exclusive && !s2.uffd_wp);
        assert_eq!(
            s2.offset, 0x12345,
            "flag bits must not leak into the offset"
        );
        assert!(matches!(decode(raw), Pte::Swap(_)));
    }

    /// Values from corpus/captures/compaction.trace.zst (kernel 6.18, 4-level paging): a
    /// read migration entry (type 28) and a write entry (type 30) for neighbouring pfns, and the
    /// PTEs `remove_migration_pte` restored.
    #[test]
    fn real_migration_entries_from_a_capture() {
        let s = decode_swap(0xe7ff_f7ff_dfb6_9000);
        assert_eq!((s.swp_type, s.offset), (28, 0x4_0010_24b7));
        let m = migration_offset(s.offset, SWP_PFN_BITS_4LEVEL);
        assert_eq!(
            m,
            MigrationOffset {
                pfn: 0x1024b7,
                young: true,
                dirty: false
            }
        );
        let s = decode_swap(0xf7ff_e7ff_dfb6_9200);
        assert_eq!(s.swp_type, 30);
        let m = migration_offset(s.offset, SWP_PFN_BITS_4LEVEL);
        assert_eq!(
            m,
            MigrationOffset {
                pfn: 0x1024b6,
                young: true,
                dirty: true
            }
        );
        assert_eq!(restored_young_dirty(0x8000_0006_3fe1_6025), (true, false));
        assert_eq!(restored_young_dirty(0x8000_0006_3fe1_7067), (true, true));
        let Pte::Present(p) = decode(0x8000_0006_3fe1_7067) else {
            panic!("not present")
        };
        assert_eq!((p.pfn, p.write, p.user, p.nx), (0x63fe17, true, true, true));
    }

    #[test]
    fn migration_young_dirty_bits() {
        let pfn = 0x1c7dd4u64;
        let off = pfn | (1 << SWP_PFN_BITS_4LEVEL) | (1 << (SWP_PFN_BITS_4LEVEL + 1));
        let raw = encode_swap(30, off);
        let s = decode_swap(raw);
        let m = migration_offset(s.offset, SWP_PFN_BITS_4LEVEL);
        assert_eq!(
            m,
            MigrationOffset {
                pfn,
                young: true,
                dirty: true
            }
        );
        let m5 = migration_offset(s.offset, SWP_PFN_BITS_5LEVEL);
        // With 5-level paging the same bits are part of the pfn, not flags.
        assert_eq!(m5.pfn, off);
        assert!(!m5.young && !m5.dirty);
        let only_young = migration_offset(pfn | (1 << 34), 34);
        assert!(only_young.young && !only_young.dirty);
        let huge = migration_offset(u64::MAX, 200);
        assert_eq!(huge.pfn, (1u64 << 62) - 1, "bits clamped to 62");
        assert!(huge.young && huge.dirty);
    }
}
