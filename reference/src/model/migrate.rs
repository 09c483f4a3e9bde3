//! Folio migration (mm-semantics B.8): `mm/migrate.c:migrate_pages` → `mm/rmap.c:try_to_migrate_one`
//! (decision point 2a) → copy → `remove_migration_pte` (decision point 2b). The model completes a
//! migration within one op. It must never restore a PTE with bits the policy did not choose,
//! and never leave a migration entry behind.

use super::lru;
use super::state::*;
use super::{Loc, Model, ModelError};
use crate::invariant::Invariant;
use crate::op::{MigrateTarget, OpOutcome};
use crate::policy::{MigEntryCtx, MigRestoreCtx, Policy};
use crate::profile::Base;

impl<P: Policy> Model<P> {
    pub(crate) fn op_migrate(
        &mut self,
        cpu: u32,
        target: MigrateTarget,
    ) -> Result<OpOutcome, ModelError> {
        self.check_cpu(cpu)?;
        let slot = match target {
            MigrateTarget::Va { mm, va } => {
                self.check_mm(mm)?;
                match self.pte_at(mm.0, va & !(PAGE_SIZE - 1)) {
                    Some(Pte::Present(p)) if p.folio != ZERO_SLOT => p.folio,
                    _ => {
                        // The trace unmapped a present PTE the model never saw (a page older
                        // than the capture): it still joins the open batch's flush.
                        if self.mig_batch_open(cpu) && self.should_defer_flush(cpu, mm.0) {
                            self.mig_batch_defer(cpu, mm.0, None);
                        } else if self.profile.base != Base::Knew {
                            // 6.1 has no batched migration flush: `try_to_migrate_one`'s
                            // `ptep_clear_flush` flushes that PTE from the mm's CPUs at once
                            // (a remote request whenever another CPU is in its mm_cpumask).
                            let va = va & !(PAGE_SIZE - 1);
                            self.flush_tlb_mm_range(cpu, mm.0, va, va + PAGE_SIZE, false);
                        }
                        return Err(ModelError::NotMapped { mm, va });
                    }
                }
            }
            MigrateTarget::Pfn(pfn) => {
                let s = pfn
                    .checked_sub(PFN_BASE)
                    .filter(|s| *s < u64::from(u32::MAX));
                match s {
                    Some(s) if self.folios.get(s as usize).is_some_and(|f| f.live) => s as u32,
                    _ => return Err(ModelError::NoFolioAtPfn(pfn)),
                }
            }
        };
        let Some(f) = self.folios.get(slot as usize) else {
            return Err(ModelError::NoFolioAtPfn(PFN_BASE + u64::from(slot)));
        };
        if f.order > 0 || !f.on_lru {
            // hugetlb migration and already-isolated folios are outside the model.
            return Ok(OpOutcome::MigrationAborted);
        }
        let was_seq = f.seq;
        // isolate
        if let Some(f) = self.folios.get_mut(slot as usize) {
            lru::del_folio(&mut self.lru, f);
            f.refcount += 1;
            f.locked = true;
        }
        // try_to_migrate
        self.c.rmap_walks += 1;
        let mut list = std::mem::take(&mut self.scratch);
        list.clear();
        if let Some(f) = self.folios.get(slot as usize) {
            list.extend_from_slice(&f.rmap);
        }
        let batch = self.profile.base == Base::Knew;
        let mut entries: Vec<(u32, u64, Loc)> = Vec::with_capacity(list.len());
        let mut aborted = false;
        for &(mm, va) in &list {
            self.c.rmap_vma_visits += 1;
            let Some((loc, p)) = self.mapped_at(slot, mm, va) else {
                continue;
            };
            let (anon, pae, pinned) = match self.folios.get(slot as usize) {
                Some(f) => (f.is_anon(), f.pae, f.pincount > 0),
                None => break,
            };
            self.set(loc, Pte::None);
            if batch && self.should_defer_flush(cpu, mm) {
                if self.mig_batch_open(cpu) {
                    // One flush per migrate_pages batch (7e12beb8ca2a), at its Flush step.
                    self.mig_batch_defer(cpu, mm, Some(va));
                } else {
                    // No batch boundaries in the input: the folio is its own batch.
                    self.ubc_add(mm, p.write);
                }
            } else {
                self.flush_tlb_mm_range(cpu, mm, va, va + PAGE_SIZE, false);
            }
            if p.dirty {
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.dirty = true;
                }
            }
            let anon_excl = anon && pae;
            if anon_excl && pinned {
                // folio_try_share_anon_rmap_pte → -EBUSY: restore and abort.
                self.set(loc, Pte::Present(p));
                aborted = true;
                break;
            }
            let ad = self.policy.migration_entry_ad(&MigEntryCtx {
                young: p.young,
                dirty: p.dirty,
                mig_ad_supported: self.profile.mig_ad_supported,
            });
            if (ad.young || ad.dirty) && !self.profile.mig_ad_supported {
                self.violate(
                    Invariant::I7,
                    "migration entry carries A/D bits although migration_entry_supports_ad() is false".into(),
                );
            }
            if (ad.young && !p.young) || (ad.dirty && !p.dirty) {
                self.violate(
                    Invariant::I7,
                    format!("migration entry at mm{mm} {va:#x} invents A/D bits"),
                );
            }
            let kind = if p.write {
                MigKind::Write
            } else if anon_excl {
                MigKind::ReadExclusive
            } else {
                MigKind::Read
            };
            self.set(
                loc,
                Pte::Migration {
                    folio: slot,
                    kind,
                    young: ad.young,
                    dirty: ad.dirty,
                    soft_dirty: p.soft_dirty,
                },
            );
            self.c.mig_entries_set += 1;
            if anon_excl {
                // folio_try_share_anon_rmap_pte cleared PAE; the entry kind carries it.
                if let Some(f) = self.folios.get_mut(slot as usize) {
                    f.pae = false;
                }
            }
            self.remove_rmap(slot, mm, va, true);
            // Keep the rss: the migration entry still accounts the page.
            if let Some(m) = self.mms.get_mut(&mm) {
                m.rss[if anon { RSS_ANON } else { RSS_FILE }] += 1;
            }
            entries.push((mm, va, loc));
        }
        self.scratch = list;
        self.ubc_flush(cpu);
        // folio_expected_ref_count + isolation: extra references make migration fail.
        let (refc, cache, extra, pins) = match self.folios.get(slot as usize) {
            Some(f) => (
                f.refcount,
                u32::from(f.in_pagecache) + u32::from(f.swapcache.is_some()),
                f.extra,
                f.pincount,
            ),
            None => (0, 0, 0, 0),
        };
        if aborted || refc != 1 + cache || extra > 0 || pins > 0 {
            self.restore_entries(slot, slot, &entries);
            if let Some(f) = self.folios.get_mut(slot as usize) {
                f.locked = false;
                f.refcount = f.refcount.saturating_sub(1);
                let seq = was_seq.max(self.lru.min_seq[usize::from(lru::folio_type(f))]);
                lru::add_at(&mut self.lru, f, slot, seq);
            }
            self.c.mig_aborted += 1;
            self.check_tlb_coherent(None);
            return Ok(OpOutcome::MigrationAborted);
        }
        // Allocate dst with the same identity, move data and flags (folio_migrate_flags),
        // and the page-cache / swap-cache slot (__folio_migrate_mapping).
        let (kind, content, id) = match self.folios.get(slot as usize) {
            Some(f) => (f.kind, f.content, f.id),
            None => return Ok(OpOutcome::MigrationAborted),
        };
        let dst = self.alloc_folio_with_id(kind, 0, content, id);
        let memcg = self.folios.get(slot as usize).map_or(0, |f| f.memcg);
        if let Some(d) = self.folios.get_mut(dst as usize) {
            d.memcg = memcg;
        }
        let src_state = self.folios.get(slot as usize).map(|f| {
            (
                f.pae,
                f.dirty,
                f.swapbacked,
                f.swapcache,
                f.in_pagecache,
                f.referenced,
                f.workingset,
                f.refs,
            )
        });
        if let Some((pae, dirty, swapbacked, swapcache, in_pc, referenced, workingset, refs)) =
            src_state
        {
            if let Some(d) = self.folios.get_mut(dst as usize) {
                d.pae = pae;
                d.dirty = dirty;
                d.swapbacked = swapbacked;
                d.swapcache = swapcache;
                d.in_pagecache = in_pc;
                d.referenced = referenced;
                d.workingset = workingset;
                d.refs = refs;
                d.refcount = cache + 1;
                d.locked = true;
            }
            if let Some(s) = swapcache {
                if let Some(x) = self.swap.get_mut(s as usize) {
                    x.cached = Some(dst);
                }
            }
            if in_pc {
                if let FolioKind::File { file, index } = kind {
                    if let Some(fs) = self.files.get_mut(&file) {
                        fs.pagecache.insert(index, dst);
                    }
                }
            }
        }
        self.restore_entries(slot, dst, &entries);
        // Source: no mappings, no cache; its TLB entries were flushed above.
        if let Some(f) = self.folios.get_mut(slot as usize) {
            f.swapcache = None;
            f.in_pagecache = false;
            f.refcount = 0;
            f.locked = false;
        }
        self.free_folio(slot);
        if let Some(d) = self.folios.get_mut(dst as usize) {
            d.locked = false;
            d.refcount = d.refcount.saturating_sub(1);
            let t = usize::from(lru::folio_type(d));
            let seq = was_seq.max(self.lru.min_seq[t]);
            lru::add_at(&mut self.lru, d, dst, seq);
        }
        // Pins moved? No: pinned folios never get here.
        self.c.migrations += 1;
        self.check_tlb_coherent(None);
        Ok(OpOutcome::Done)
    }

    /// `remove_migration_ptes(src, dst)`: decision point (2b) per entry; no flush (the PTE was
    /// not present).
    fn restore_entries(&mut self, src: u32, dst: u32, entries: &[(u32, u64, Loc)]) {
        if !entries.is_empty() {
            self.c.rmap_walks += 1;
        }
        for &(mm, va, loc) in entries {
            let Pte::Migration {
                folio,
                kind,
                young,
                dirty,
                soft_dirty,
            } = self.get(loc)
            else {
                continue;
            };
            if folio != src {
                continue;
            }
            let folio_dirty = self.folios.get(dst as usize).is_some_and(|f| f.dirty);
            let ad = self.policy.migration_restore_ad(&MigRestoreCtx {
                entry_young: young,
                entry_dirty: dirty,
                folio_dirty,
                mig_ad_supported: self.profile.mig_ad_supported,
            });
            if ad.dirty && !folio_dirty {
                let id = self.folios.get(dst as usize).map_or(0, |f| f.id.0);
                self.violate(
                    Invariant::I7,
                    format!("restored PTE mm{mm} {va:#x} is dirty but folio {id} is clean"),
                );
            }
            if ad.young && !young {
                self.violate(
                    Invariant::I7,
                    format!("restored PTE mm{mm} {va:#x} is young but the migration entry was not"),
                );
            }
            let anon = self.folios.get(dst as usize).is_some_and(|f| f.is_anon());
            if anon && kind != MigKind::Read {
                if let Some(f) = self.folios.get_mut(dst as usize) {
                    f.pae = true;
                }
            }
            self.set(
                loc,
                Pte::Present(PresentPte {
                    folio: dst,
                    write: kind == MigKind::Write,
                    young: ad.young,
                    dirty: ad.dirty,
                    soft_dirty,
                    mig_a: true,
                    mig_d: true,
                }),
            );
            self.add_rmap(dst, mm, va);
            if let Some(m) = self.mms.get_mut(&mm) {
                m.rss[if anon { RSS_ANON } else { RSS_FILE }] -= 1;
            }
            self.c.mig_entries_removed += 1;
            if ad.young {
                self.c.mig_restored_young += 1;
            }
            if ad.dirty {
                self.c.mig_restored_dirty += 1;
            }
        }
    }
}
