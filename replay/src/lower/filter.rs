//! The lowering's filter part: which tasks `--pid` / `--comm` (and `--workload`, which sets
//! `--pid`) select. A task is decided on first sight (by its pid, tgid or comm) and keeps that
//! decision; children announced by `task_newtask` or `sched_process_fork` of a selected
//! task are selected too.
//!
//! Invariants: without a filter every task is selected and the sets stay empty; pid 0 (the
//! idle task) is always selected; a task is never both selected and rejected except while
//! khugepaged's held records are replayed (`lower/thp.rs`, which restores the decision). It
//! must never emit ops: what a filtered-out record would have been is counted by the caller
//! (`LowerStats::filtered_out`), never dropped silently.

use std::collections::HashSet;

use mmreplay_parsers::record::Record;

/// The `--pid` / `--comm` selection and the decisions taken so far.
#[derive(Default)]
pub(super) struct Filter {
    pid: Option<i32>,
    comm: Option<String>,
    /// Tasks selected by the filter (only used when a filter is active).
    selected: HashSet<i32>,
    /// Tasks known NOT to be selected (their records are filtered out).
    rejected: HashSet<i32>,
}

impl Filter {
    pub fn new(pid: Option<i32>, comm: Option<String>) -> Filter {
        Filter {
            pid,
            comm,
            ..Filter::default()
        }
    }

    /// Whether a filter is active at all.
    pub fn active(&self) -> bool {
        self.pid.is_some() || self.comm.is_some()
    }

    /// Whether records of this task are replayed. Decided on first sight and inherited by
    /// children (see [`Filter::select_child`]).
    pub fn is_selected(&mut self, r: &Record) -> bool {
        if !self.active() || r.pid == 0 {
            return true;
        }
        if self.selected.contains(&r.pid) {
            return true;
        }
        if self.rejected.contains(&r.pid) {
            return false;
        }
        let by_pid = self.pid.is_some_and(|p| p == r.pid || r.tgid == Some(p));
        let by_comm = self
            .comm
            .as_deref()
            .is_some_and(|c| c.as_bytes() == r.comm.as_bytes());
        if by_pid || by_comm {
            self.selected.insert(r.pid);
            true
        } else {
            self.rejected.insert(r.pid);
            false
        }
    }

    /// A child of a selected task (its parent's record was selected): selected too.
    pub fn select_child(&mut self, pid: i32) {
        if self.active() {
            self.selected.insert(pid);
        }
    }

    /// Whether an active filter has rejected `pid`.
    pub fn rejects(&self, pid: i32) -> bool {
        self.active() && self.rejected.contains(&pid)
    }

    /// Select `pid` for a while (khugepaged's held records); returns what to pass to
    /// [`Filter::restore`].
    pub fn select_for_now(&mut self, pid: i32) -> bool {
        let was_rejected = self.rejected.remove(&pid);
        self.selected.insert(pid);
        was_rejected
    }

    /// Undo [`Filter::select_for_now`].
    pub fn restore(&mut self, pid: i32, was_rejected: bool) {
        self.selected.remove(&pid);
        if was_rejected {
            self.rejected.insert(pid);
        }
    }
}
