//! `migrate_pages` batch boundaries (`Op::MigrateBatch`), from the capture's own events:
//! `mm_migrate_pages_start` opens a batch on its CPU; the batch's one `try_to_unmap_flush`
//! happens after the last unmap and before the first move, so the lowering emits the flush at
//! the first `remove_migration_pte` on that CPU (or at `mm_migrate_pages` if no folio moved).
//! Unmaps after that in the same call (synchronous one-by-one retries, `try_to_migrate(src, 0)`)
//! flush on their own in the model, as in the kernel.
//!
//! It must never decide what a flush costs (the model does), only where the kernel put it.

use mmreplay_reference::op::{MigrateBatchStep, Op};

use super::Lowering;

impl Lowering {
    /// Emit a batch step on `cpu`.
    fn batch_step(&mut self, cpu: u32, step: MigrateBatchStep, out: &mut Vec<Op>) {
        self.emit(out, Op::MigrateBatch { cpu, step });
    }

    /// `mm_migrate_pages_start`.
    pub(super) fn migrate_pages_start(&mut self, cpu: u32, out: &mut Vec<Op>) {
        if let Some(b) = self.mig_batch_open.get_mut(cpu as usize) {
            *b = true;
        }
        self.batch_step(cpu, MigrateBatchStep::Start, out);
    }

    /// The first move of a batch (`remove_migration_pte`) or the end of the call
    /// (`mm_migrate_pages`): the batch's flush is due if it is still open.
    pub(super) fn migrate_flush_due(&mut self, cpu: u32, out: &mut Vec<Op>) {
        let open = self
            .mig_batch_open
            .get_mut(cpu as usize)
            .map(std::mem::take)
            .unwrap_or(false);
        if open {
            self.batch_step(cpu, MigrateBatchStep::Flush, out);
        }
    }

    /// A `set_migration_pte` at an address no known mm maps: a PTE of an mm the model does
    /// not know, unmapped into the batch (or flushed at once outside one).
    pub(super) fn migrate_foreign_unmap(&mut self, cpu: u32, out: &mut Vec<Op>) {
        self.approx("set_migration_pte_of_unknown_mm_flushed_as_every_cpu");
        self.batch_step(cpu, MigrateBatchStep::ForeignUnmap, out);
    }
}
