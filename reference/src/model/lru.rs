//! MGLRU list primitives (`include/linux/mm_inline.h:lru_gen_add_folio/lru_gen_del_folio`,
//! `mm/vmscan.c:folio_update_gen/folio_inc_gen`). Lists use lazy deletion: an entry whose stamp
//! no longer matches the folio's is skipped. This module must never decide which folio to
//! evict; that is `reclaim.rs`.

use super::classic;
use super::state::{Folio, Lru, MAX_NR_GENS, MIN_NR_GENS};

#[inline]
pub(crate) fn gen(seq: u64) -> usize {
    (seq % MAX_NR_GENS) as usize
}

/// Type of a folio for MGLRU (`folio_is_file_lru`: `!folio_test_swapbacked`): swap-backed
/// (anon and shmem) = 0, file or lazyfree = 1. Same rule as the classic LRU's `lru_type`.
#[inline]
pub(crate) fn folio_type(f: &Folio) -> u8 {
    u8::from(!f.swapbacked)
}

/// Put `f` (not on an LRU) on the list of `seq`.
pub(crate) fn add_at(lru: &mut Lru, f: &mut Folio, slot: u32, seq: u64) {
    if let Some(c) = lru.classic.as_deref_mut() {
        // Classic: `seq` 1 is the active list (a migrated folio keeps PG_active).
        return classic::add(c, f, slot, seq >= 1, false);
    }
    let t = folio_type(f);
    f.lru_type = t;
    f.seq = seq;
    f.on_lru = true;
    f.stamp = f.stamp.wrapping_add(1);
    let g = gen(seq);
    if let Some(row) = lru.lists.get_mut(g) {
        if let Some(l) = row.get_mut(t as usize) {
            l.push_back((slot, f.stamp));
        }
    }
    if let Some(row) = lru.nr.get_mut(g) {
        if let Some(n) = row.get_mut(t as usize) {
            *n += f.nr_pages() as i64;
        }
    }
}

/// `lru_gen_add_folio` (K61 rule, mm-semantics B.9.2): active → `max_seq`; anon not in the swap
/// cache → `min_seq + 1`; otherwise `min_seq`.
pub(crate) fn add_folio(lru: &mut Lru, f: &mut Folio, slot: u32, active: bool) {
    if let Some(c) = lru.classic.as_deref_mut() {
        return classic::add(c, f, slot, active, false);
    }
    let t = folio_type(f) as usize;
    let min = lru.min_seq.get(t).copied().unwrap_or(lru.max_seq);
    let seq = if active {
        lru.max_seq
    } else if t == 0 && f.swapcache.is_none() {
        (min + 1).min(lru.max_seq)
    } else {
        min
    };
    add_at(lru, f, slot, seq);
}

/// A new folio's first LRU add (`folio_add_lru` from a fault, swap-in or page-cache read):
/// MGLRU puts it in `max_seq` (`lru_gen_in_fault` sets PG_active); the classic LRU charges it
/// and puts it on the inactive list.
pub(crate) fn add_new_folio(lru: &mut Lru, f: &mut Folio, slot: u32) {
    if let Some(c) = lru.classic.as_deref_mut() {
        return classic::add_new(c, f, slot);
    }
    add_folio(lru, f, slot, true);
}

/// [`add_new_folio`], charged to `memcg` under the classic LRU when given (a page-cache folio
/// is charged to the task that added it, not to the one faulting it in: `classic.rs`).
pub(crate) fn add_new_folio_in(lru: &mut Lru, f: &mut Folio, slot: u32, memcg: Option<u32>) {
    match (lru.classic.as_deref_mut(), memcg) {
        (Some(c), Some(m)) => classic::add_charged(c, f, slot, m),
        _ => add_new_folio(lru, f, slot),
    }
}

/// `lru_gen_del_folio`: take `f` off its list (lazy: the stale entry is skipped later).
pub(crate) fn del_folio(lru: &mut Lru, f: &mut Folio) {
    if let Some(c) = lru.classic.as_deref_mut() {
        return classic::del(c, f);
    }
    if !f.on_lru {
        return;
    }
    let g = gen(f.seq);
    if let Some(row) = lru.nr.get_mut(g) {
        if let Some(n) = row.get_mut(f.lru_type as usize) {
            *n -= f.nr_pages() as i64;
        }
    }
    f.on_lru = false;
    f.stamp = f.stamp.wrapping_add(1);
}

/// Move an on-LRU folio to `seq` (`folio_update_gen` / `folio_inc_gen`).
pub(crate) fn move_to_seq(lru: &mut Lru, f: &mut Folio, slot: u32, seq: u64) {
    if let Some(c) = lru.classic.as_deref_mut() {
        // Classic: a promotion is `folio_activate` (to the active head).
        classic::del(c, f);
        return classic::add(c, f, slot, seq >= 1, false);
    }
    del_folio(lru, f);
    add_at(lru, f, slot, seq);
}

/// Whether the oldest generation of `t` may be retired (`nr_gens > MIN_NR_GENS`).
#[inline]
pub(crate) fn can_inc_min_seq(lru: &Lru, t: usize) -> bool {
    lru.min_seq
        .get(t)
        .is_some_and(|m| m + MIN_NR_GENS <= lru.max_seq)
}

/// Whether the list of gen(min_seq[t]) has no live folio (drops stale entries as it looks).
pub(crate) fn oldest_is_empty(lru: &mut Lru, folios: &[Folio], t: usize) -> bool {
    let Some(&min) = lru.min_seq.get(t) else {
        return true;
    };
    let g = gen(min);
    let Some(l) = lru.lists.get_mut(g).and_then(|r| r.get_mut(t)) else {
        return true;
    };
    while let Some(&(slot, stamp)) = l.front() {
        match folios.get(slot as usize) {
            Some(f) if f.live && f.on_lru && f.stamp == stamp && f.lru_type as usize == t => {
                return false
            }
            _ => {
                l.pop_front();
            }
        }
    }
    true
}

/// `inc_min_seq`: move every folio of gen(min_seq[t]) to the next gen (`folio_inc_gen`), then
/// advance `min_seq[t]`.
pub(crate) fn inc_min_seq(lru: &mut Lru, folios: &mut super::phash::Tracked<Folio>, t: usize) {
    let Some(&min) = lru.min_seq.get(t) else {
        return;
    };
    let g = gen(min);
    let list = match lru.lists.get_mut(g).and_then(|r| r.get_mut(t)) {
        Some(l) => std::mem::take(l),
        None => return,
    };
    for (slot, stamp) in list {
        if let Some(f) = folios.get_mut(slot as usize) {
            if f.live && f.on_lru && f.stamp == stamp && f.lru_type as usize == t && f.seq == min {
                move_to_seq(lru, f, slot, min + 1);
            }
        }
    }
    if let Some(m) = lru.min_seq.get_mut(t) {
        *m += 1;
    }
}
