//! The lowering's page-cache part: `filemap:mm_filemap_add_to_page_cache` logged by a task
//! during its page fault becomes `Op::PageCacheAdd` on that fault's mm and address, so the model
//! charges the page to the memcg of the task that read it in (`__filemap_add_folio` →
//! `mem_cgroup_charge`) and not to whichever process maps it first: a shared library's pages
//! were cached long before by someone else and belong to no memcg of the capture.
//!
//! Pairing: the kernel logs the fault (`page_fault_user`, at entry) and then, in `filemap_fault`
//! on the same task, one add per page it reads in (the faulted page, and those read ahead with
//! it: the op carries the add's page index, the model finds the file from the fault's VMA).
//! A task's last fault is forgotten at its next syscall the capture logs and at its exit; a
//! `read` (not logged) between a fault and its add would be paired with the fault, and the
//! model then charges that page index of the faulted file: a limit. It must never pair an add
//! with another task's fault, nor contain model semantics (whether the VMA maps a regular file
//! is the model's to decide): an add it cannot pair stays counted in `not_lowered`.

use std::collections::HashMap;

use mmreplay_parsers::record::Record;
use mmreplay_reference::op::{MmId, Op};

use super::Lowering;

/// Each task's last fault: tid → (mm, address).
#[derive(Default)]
pub(super) struct PageCache {
    last_fault: HashMap<i32, (MmId, u64)>,
}

impl PageCache {
    /// A fault of `tid` on `mm` at `va` was lowered.
    pub fn fault(&mut self, tid: i32, mm: MmId, va: u64) {
        self.last_fault.insert(tid, (mm, va));
    }

    /// `tid` entered a syscall or exited: later adds are not its fault's.
    pub fn forget(&mut self, tid: i32) {
        self.last_fault.remove(&tid);
    }
}

impl Lowering {
    /// `mm_filemap_add_to_page_cache` of page `index` in `r.pid`'s context.
    pub(super) fn filemap_add(&mut self, r: &Record, index: u64, out: &mut Vec<Op>) {
        match self.pagecache.last_fault.get(&r.pid).copied() {
            Some((mm, va)) => {
                self.approx("pagecache_add_paired_with_fault");
                self.emit(out, Op::PageCacheAdd { mm, va, index });
            }
            None => self.not_lowered("mm_filemap_add_to_page_cache"),
        }
    }
}
