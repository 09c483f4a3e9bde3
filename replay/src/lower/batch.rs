//! `migrate_pages` batch boundaries (`Op::MigrateBatch`), from the capture's own events:
//! `mm_migrate_pages_start` opens a batch on its CPU; the batch's one `try_to_unmap_flush`
//! happens after the last unmap and before the first move, so the lowering emits the flush at
//! the first `remove_migration_pte` on that CPU (or at `mm_migrate_pages` if no folio moved).
//! Unmaps after that in the same call (synchronous one-by-one retries, `try_to_migrate(src, 0)`)
//! flush on their own in the model, as in the kernel.
//!
//! Migration entries (`set_migration_pte`) become `Op::Migrate` on the mm that maps the
//! address: the seeded mm that mapped the entry's pfn (`lower/seed.rs`), else the running
//! task's mm if its VMAs cover it, else the lowest mm id whose VMAs do (`lower/vmas.rs`); an
//! address no known mm maps is a foreign unmap.
//!
//! Invariants: one `Op::Migrate` per folio address until it is restored (an rmap walk logs one
//! `set_migration_pte` per mapping; the model migrates the folio with all its mappings); a
//! batch's flush is emitted at most once. It must never decide what a flush costs (the model
//! does), only where the kernel put it.

use std::collections::BTreeSet;

use mmreplay_parsers::pte;
use mmreplay_parsers::record::Record;
use mmreplay_reference::op::{MigrateBatchStep, MigrateTarget, MmId, Op};

use super::{Lowering, PAGE};

/// Migration entries and batches in flight.
pub(super) struct Migration {
    /// Addresses with a migration entry set and not yet restored (one rmap walk logs one
    /// `set_migration_pte` per mapping; the model migrates the folio with all its mappings).
    pending: BTreeSet<u64>,
    /// Per CPU: a `migrate_pages` batch is open and not yet flushed.
    batch_open: Vec<bool>,
}

impl Migration {
    pub fn new(nr_cpus: usize) -> Migration {
        Migration {
            pending: BTreeSet::new(),
            batch_open: vec![false; nr_cpus],
        }
    }
}

impl Lowering {
    /// `set_migration_pte`.
    pub(super) fn set_migration(&mut self, r: &Record, addr: u64, raw: u64, out: &mut Vec<Op>) {
        if !matches!(pte::decode(raw), pte::Pte::Swap(_)) {
            self.unplaced("set_migration_pte_not_a_swap_entry");
            return;
        }
        let va = addr & !(PAGE - 1);
        if !self.migrate.pending.insert(va) {
            // Another mapping of a folio whose migration is already lowered (the rmap walk logs
            // one event per mapping; the model migrates the folio with all its mappings).
            self.approx("set_migration_pte_same_address_in_batch");
            return;
        }
        // A page the process snapshot saw at this pfn: its mm (lower/seed.rs).
        if let Some(mm) = self.seeded_mm_of_migration(raw, va) {
            self.emit(
                out,
                Op::Migrate {
                    cpu: r.cpu,
                    target: MigrateTarget::Va { mm, va },
                },
            );
            return;
        }
        // Prefer the mm of the task running on this CPU (the migrating task's own pages, NUMA
        // hinting faults), then any mm with a VMA covering the address (kcompactd, rmap walks
        // across mms), lowest id first for determinism.
        let t = &self.tasks;
        let own = t
            .by_tid
            .get(&r.pid)
            .copied()
            .filter(|m| t.vmas(*m).is_some_and(|v| v.covers(va)));
        let mm = own.or_else(|| {
            t.mms
                .iter()
                .find(|(id, s)| Some(MmId(**id)) != t.outside_mm && s.vmas.covers(va))
                .map(|(id, _)| MmId(*id))
        });
        match mm {
            Some(mm) => self.emit(
                out,
                Op::Migrate {
                    cpu: r.cpu,
                    target: MigrateTarget::Va { mm, va },
                },
            ),
            None => self.migrate_foreign_unmap(r.cpu, out),
        }
    }

    /// `remove_migration_pte`: the folio at `addr` is restored; a batch's flush is due.
    pub(super) fn remove_migration(&mut self, cpu: u32, addr: u64, out: &mut Vec<Op>) {
        self.migrate.pending.remove(&(addr & !(PAGE - 1)));
        self.migrate_flush_due(cpu, out);
        self.not_lowered("remove_migration_pte");
    }

    /// `mm_migrate_pages`: the call is over.
    pub(super) fn migrate_pages_end(&mut self, cpu: u32, out: &mut Vec<Op>) {
        self.migrate.pending.clear();
        self.migrate_flush_due(cpu, out);
        self.not_lowered("mm_migrate_pages");
    }

    /// Emit a batch step on `cpu`.
    fn batch_step(&mut self, cpu: u32, step: MigrateBatchStep, out: &mut Vec<Op>) {
        self.emit(out, Op::MigrateBatch { cpu, step });
    }

    /// `mm_migrate_pages_start`.
    pub(super) fn migrate_pages_start(&mut self, cpu: u32, out: &mut Vec<Op>) {
        if let Some(b) = self.migrate.batch_open.get_mut(cpu as usize) {
            *b = true;
        }
        self.batch_step(cpu, MigrateBatchStep::Start, out);
    }

    /// The first move of a batch (`remove_migration_pte`) or the end of the call
    /// (`mm_migrate_pages`): the batch's flush is due if it is still open.
    fn migrate_flush_due(&mut self, cpu: u32, out: &mut Vec<Op>) {
        let open = self
            .migrate
            .batch_open
            .get_mut(cpu as usize)
            .map(std::mem::take)
            .unwrap_or(false);
        if open {
            self.batch_step(cpu, MigrateBatchStep::Flush, out);
        }
    }

    /// A `set_migration_pte` at an address no known mm maps: a PTE of an mm the model does
    /// not know, unmapped into the batch (or flushed at once outside one).
    fn migrate_foreign_unmap(&mut self, cpu: u32, out: &mut Vec<Op>) {
        self.approx("set_migration_pte_of_unknown_mm_flushed_as_every_cpu");
        self.batch_step(cpu, MigrateBatchStep::ForeignUnmap, out);
    }
}
