//! `mmreplay stats`: the parser's public self-report, counted here so the CLI only prints.
//! Keys follow ARCHITECTURE.md, code map: `parsers/` (`format`, `records`, `events`, `lost_markers`, `lost_events`,
//! `unparsed_lines`, `time_span_ns`, `tlb_flush_by_reason`, `ipi`, `migration`, `tasks`) plus
//! extra diagnostics. Must never depend on hash iteration order in its output (BTreeMaps only)
//! and never know about the replay model.

use crate::error::ParseError;
use crate::intern::{FxHashMap, FxHashSet};
use crate::pte;
use crate::record::{Event, IpiKind, Record, Vmscan};
use crate::source::{Diagnostics, RecordSource};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IpiStats {
    /// `ipi_send_cpu` + `ipi_send_cpumask` events.
    pub sends: u64,
    /// CPUs targeted, summed (1 per `ipi_send_cpu`, the mask popcount per `ipi_send_cpumask`).
    pub targets: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MigrationStats {
    /// `set_migration_pte` events.
    pub set: u64,
    /// `remove_migration_pte` events.
    pub removed: u64,
    /// Restored PTEs (`remove_migration_pte`) with the accessed bit set.
    pub restored_young: u64,
    /// Restored PTEs with the dirty bit set.
    pub restored_dirty: u64,
}

/// The report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub format: String,
    /// Event records counted (lost markers excluded), after the pid/comm filter.
    pub records: u64,
    /// Every event name seen (typed or not, kernel tracepoint names, no system) -> count.
    pub events: BTreeMap<String, u64>,
    pub events_per_cpu: BTreeMap<u32, u64>,
    /// Lost-event marker lines.
    pub lost_markers: u64,
    /// Sum of the counts the markers state.
    pub lost_events: u64,
    /// Markers that did not say how many events were lost (`[EVENTS DROPPED]`).
    pub lost_markers_without_count: u64,
    /// Events overwritten in the ring buffer before `trace` was read: `B - A` of the ftrace
    /// header `# entries-in-buffer/entries-written: A/B` (not in `lost_events`: no marker
    /// says where they were). Not affected by the pid/comm filter.
    pub overwritten_events: u64,
    pub unparsed_lines: u64,
    pub unparsed_by_kind: BTreeMap<String, u64>,
    pub unparsed_payload_by_event: BTreeMap<String, u64>,
    pub skipped_lines: u64,
    pub skipped_by_kind: BTreeMap<String, u64>,
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: Option<u64>,
    pub time_span_ns: u64,
    /// `tlb_flush` by the kernel's reason text (code-derived name when a plugin printed none).
    pub tlb_flush_by_reason: BTreeMap<String, u64>,
    pub ipi: IpiStats,
    /// IPI sends by callback class (`tlb_shootdown`, `table_sync`, ...).
    pub ipi_by_kind: BTreeMap<String, u64>,
    pub migration: MigrationStats,
    /// Distinct pids (thread ids).
    pub tasks: u64,
    /// Records later than the reorder window allowed, and the worst lag.
    pub out_of_order: u64,
    pub max_lag_ns: u64,
    /// The first few unparsed lines with position and reason.
    pub first_unparsed: Vec<String>,
    /// Binary captures: the producer, the CPU count it states and what could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::source::CaptureFacts>,
}

/// Which records to count.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Thread id or thread-group id.
    pub pid: Option<i32>,
    /// Exact comm.
    pub comm: Option<Vec<u8>>,
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        if let Some(p) = self.pid {
            if r.pid != p && r.tgid != Some(p) {
                return false;
            }
        }
        if let Some(c) = &self.comm {
            if r.comm.as_bytes() != c.as_slice() {
                return false;
            }
        }
        true
    }
}

/// Reason names of `include/trace/events/tlb.h` as printed by 6.x kernels, used only when the
/// text is missing (libtraceevent's `plugin_tlb.c` prints an empty name for codes it lacks).
fn tlb_reason_name(code: Option<i32>) -> String {
    match code {
        Some(c) => match crate::fields::default_tlb_reason(i64::from(c)) {
            "" => format!("reason {c}"),
            t => t.into(),
        },
        None => "unknown".into(),
    }
}

fn ipi_kind_name(k: IpiKind) -> &'static str {
    match k {
        IpiKind::TlbShootdown => "tlb_shootdown",
        IpiKind::TableSync => "table_sync",
        IpiKind::CallFunctionSingle => "call_function_single",
        IpiKind::Other => "other",
        IpiKind::SmpCallFunction => "smp_call_function",
    }
}

/// The kernel's full tracepoint name is `prefix + rest` (the record keeps some names without
/// their family prefix).
fn name_parts(ev: &Event) -> (usize, &str) {
    match ev {
        Event::Vmscan(Vmscan::Other { name }) => (1, name),
        Event::Compaction { name } => (2, name),
        Event::Hugetlbfs { name } => (3, name),
        other => (0, other.name()),
    }
}
const PREFIXES: [&str; 4] = ["", "mm_vmscan_", "mm_compaction_", "hugetlbfs_"];

/// Number of syscalls in [`Syscall`] (ids below are `base + nr as usize`).
const NR_SYSCALLS: usize = 14;
/// Ids of events whose name is fixed by their variant; `STATIC_ID_END` and above are unused.
const SYS_ENTER_BASE: usize = 40;
const SYS_EXIT_BASE: usize = SYS_ENTER_BASE + NR_SYSCALLS;
const STATIC_ID_END: usize = SYS_EXIT_BASE + NR_SYSCALLS;

/// A small dense id for events whose name does not depend on data, so counting them is an array
/// increment instead of hashing the name string; `None` for names carried as a [`Sym`].
/// Invariant (tested): `Event::name` is the same for every event with the same id.
#[inline]
fn static_id(ev: &Event) -> Option<usize> {
    Some(match ev {
        Event::PageFault { user: true, .. } => 0,
        Event::PageFault { user: false, .. } => 1,
        Event::TlbFlush { .. } => 2,
        Event::IpiSendCpu { .. } => 3,
        Event::IpiSendCpumask { .. } => 4,
        Event::SetMigrationPte { .. } => 5,
        Event::RemoveMigrationPte { .. } => 6,
        Event::MmMigratePages { .. } => 7,
        Event::MmMigratePagesStart { .. } => 8,
        Event::MmLruInsertion { .. } => 9,
        Event::MmLruActivate { .. } => 10,
        Event::Vmscan(v) => match v {
            Vmscan::KswapdWake { .. } => 11,
            Vmscan::KswapdSleep { .. } => 12,
            Vmscan::WakeupKswapd { .. } => 13,
            Vmscan::DirectReclaimBegin { memcg: false, .. } => 14,
            Vmscan::DirectReclaimBegin { memcg: true, .. } => 15,
            Vmscan::DirectReclaimEnd { memcg: false, .. } => 16,
            Vmscan::DirectReclaimEnd { memcg: true, .. } => 17,
            Vmscan::LruIsolate { .. } => 18,
            Vmscan::LruShrinkInactive { .. } => 19,
            Vmscan::LruShrinkActive { .. } => 20,
            Vmscan::WriteFolio { .. } => 21,
            Vmscan::Other { .. } => return None,
        },
        Event::SchedProcessFork { .. } => 22,
        Event::SchedProcessExec { .. } => 23,
        Event::SchedProcessExit { .. } => 24,
        Event::SchedSwitch { .. } => 25,
        Event::SchedMigrateTask { .. } => 26,
        Event::TaskNewtask { .. } => 27,
        Event::ExitMmap => 28,
        Event::RssStat { .. } => 29,
        Event::Filemap { add: true, .. } => 30,
        Event::Filemap { add: false, .. } => 31,
        Event::DamonAggregated { .. } => 32,
        Event::Lost { .. } => 33,
        Event::CsdQueueCpu { .. } => 34,
        Event::SysEnter { nr, .. } => SYS_ENTER_BASE + *nr as usize,
        Event::SysExit { nr, .. } => SYS_EXIT_BASE + *nr as usize,
        Event::Compaction { .. }
        | Event::Hugetlbfs { .. }
        | Event::Khugepaged { .. }
        | Event::CollapseHugePage { .. }
        | Event::CallFunctionEntry { .. }
        | Event::Kprobe { .. }
        | Event::Other { .. } => return None,
    })
}

/// Distinct event names [`StatsBuilder`] counts one by one (per name family); later names
/// are summed under [`OTHER_NAMES`], so memory stays bounded whatever names a file invents.
pub const MAX_NAMES: usize = 1 << 16;
/// Key of the events past [`MAX_NAMES`] distinct names.
pub const OTHER_NAMES: &str = "<other names>";
/// Distinct `tlb_flush` reasons counted one by one (the kernel has five); later ones are summed
/// under [`OTHER_NAMES`]. The lookup is a linear scan: the cap also bounds its cost.
pub const MAX_TLB_REASONS: usize = 64;
/// Distinct CPU numbers of 4096 and above counted one by one; later ones under `u32::MAX`.
pub const MAX_BIG_CPUS: usize = 4096;

/// Accumulates [`Stats`] one record at a time.
#[derive(Default)]
pub struct StatsBuilder {
    filter: Filter,
    records: u64,
    events: [FxHashMap<Box<str>, u64>; 4],
    /// Counts by [`static_id`], with the name of the first event seen for each id.
    static_events: Vec<(u64, Box<str>)>,
    /// Counts for CPUs below 4096 (a vector index, no hashing); others in `per_cpu`.
    per_cpu_small: Vec<u64>,
    per_cpu: FxHashMap<u32, u64>,
    lost_markers: u64,
    lost_events: u64,
    lost_unknown: u64,
    first_ts: Option<u64>,
    last_ts: Option<u64>,
    tlb: FxHashMap<(Option<i32>, Box<str>), u64>,
    ipi: IpiStats,
    ipi_kind: [u64; 5],
    migration: MigrationStats,
    tasks: FxHashSet<i32>,
    last_pid: Option<i32>,
}

impl StatsBuilder {
    pub fn new(filter: Filter) -> Self {
        StatsBuilder {
            filter,
            static_events: vec![(0, Box::from("")); STATIC_ID_END],
            ..Default::default()
        }
    }

    #[inline]
    pub fn add(&mut self, r: &Record) {
        if let Event::Lost { count } = r.event {
            self.lost_markers += 1;
            match count {
                Some(c) => self.lost_events = self.lost_events.saturating_add(c),
                None => self.lost_unknown += 1,
            }
            return;
        }
        if !self.filter.matches(r) {
            return;
        }
        self.records += 1;
        if let Some(slot) = static_id(&r.event).and_then(|id| self.static_events.get_mut(id)) {
            if slot.0 == 0 {
                slot.1 = Box::from(r.event.name());
            }
            slot.0 += 1;
        } else {
            self.count_by_name(&r.event);
        }
        match self.per_cpu_small.get_mut(r.cpu as usize) {
            Some(c) => *c += 1,
            None if r.cpu < 4096 => {
                self.per_cpu_small.resize(r.cpu as usize + 1, 0);
                if let Some(c) = self.per_cpu_small.get_mut(r.cpu as usize) {
                    *c = 1;
                }
            }
            None => {
                let cpu = if self.per_cpu.len() < MAX_BIG_CPUS || self.per_cpu.contains_key(&r.cpu)
                {
                    r.cpu
                } else {
                    u32::MAX
                };
                *self.per_cpu.entry(cpu).or_insert(0) += 1
            }
        }
        self.first_ts = Some(self.first_ts.map_or(r.ts_ns, |t| t.min(r.ts_ns)));
        self.last_ts = Some(self.last_ts.map_or(r.ts_ns, |t| t.max(r.ts_ns)));
        // Consecutive records usually share a pid: skip the hash lookup then.
        if self.last_pid != Some(r.pid) {
            self.tasks.insert(r.pid);
            self.last_pid = Some(r.pid);
        }
        match &r.event {
            Event::TlbFlush { reason, .. } => {
                let key = (reason.code, &*reason.text);
                let full = self.tlb.len() >= MAX_TLB_REASONS;
                // Avoid allocating on the hot path: look up by borrowed parts first.
                let hit = self
                    .tlb
                    .iter_mut()
                    .find(|(k, _)| k.0 == key.0 && &*k.1 == key.1);
                match hit {
                    Some((_, c)) => *c += 1,
                    None if !full => {
                        self.tlb.insert((key.0, Box::from(key.1)), 1);
                    }
                    None => *self.tlb.entry((None, Box::from(OTHER_NAMES))).or_insert(0) += 1,
                }
            }
            Event::IpiSendCpu { kind, .. } => {
                self.ipi.sends += 1;
                self.ipi.targets += 1;
                self.bump_ipi(*kind);
            }
            Event::IpiSendCpumask { targets, kind, .. } => {
                self.ipi.sends += 1;
                self.ipi.targets += *targets as u64;
                self.bump_ipi(*kind);
            }
            Event::SetMigrationPte { .. } => self.migration.set += 1,
            Event::RemoveMigrationPte { pte: raw, .. } => {
                self.migration.removed += 1;
                let (young, dirty) = pte::restored_young_dirty(*raw);
                self.migration.restored_young += young as u64;
                self.migration.restored_dirty += dirty as u64;
            }
            _ => {}
        }
    }

    /// Names carried as a [`Sym`] (and any id out of range): counted by string.
    #[cold]
    fn count_by_name(&mut self, ev: &Event) {
        let (pi, name) = name_parts(ev);
        if let Some(m) = self.events.get_mut(pi) {
            let full = m.len() >= MAX_NAMES;
            match m.get_mut(name) {
                Some(c) => *c += 1,
                None if !full => {
                    m.insert(Box::from(name), 1);
                }
                None => *m.entry(Box::from(OTHER_NAMES)).or_insert(0) += 1,
            }
        }
    }

    fn bump_ipi(&mut self, k: IpiKind) {
        let i = match k {
            IpiKind::TlbShootdown => 0,
            IpiKind::TableSync => 1,
            IpiKind::CallFunctionSingle => 2,
            IpiKind::Other => 3,
            IpiKind::SmpCallFunction => 4,
        };
        if let Some(c) = self.ipi_kind.get_mut(i) {
            *c += 1;
        }
    }

    pub fn finish(self, format: &str, diag: &Diagnostics) -> Stats {
        let mut events = BTreeMap::new();
        for (n, name) in self.static_events.iter().filter(|(n, _)| *n > 0) {
            *events.entry(name.to_string()).or_insert(0) += *n;
        }
        for (pi, m) in self.events.iter().enumerate() {
            let prefix = PREFIXES.get(pi).copied().unwrap_or("");
            for (k, v) in m {
                *events.entry(format!("{prefix}{k}")).or_insert(0) += v;
            }
        }
        let mut tlb = BTreeMap::new();
        for ((code, text), v) in self.tlb {
            let key = if text.is_empty() {
                tlb_reason_name(code)
            } else {
                text.to_string()
            };
            *tlb.entry(key).or_insert(0) += v;
        }
        let mut ipi_by_kind = BTreeMap::new();
        for (i, k) in [
            IpiKind::TlbShootdown,
            IpiKind::TableSync,
            IpiKind::CallFunctionSingle,
            IpiKind::Other,
            IpiKind::SmpCallFunction,
        ]
        .into_iter()
        .enumerate()
        {
            let v = self.ipi_kind.get(i).copied().unwrap_or(0);
            if v > 0 {
                ipi_by_kind.insert(ipi_kind_name(k).to_string(), v);
            }
        }
        Stats {
            format: format.to_string(),
            records: self.records,
            events,
            events_per_cpu: self
                .per_cpu
                .into_iter()
                .chain(
                    self.per_cpu_small
                        .iter()
                        .enumerate()
                        .map(|(c, n)| (c as u32, *n)),
                )
                .filter(|(_, n)| *n > 0)
                .collect(),
            lost_markers: self.lost_markers,
            lost_events: self.lost_events,
            lost_markers_without_count: self.lost_unknown,
            overwritten_events: diag.overwritten_events,
            unparsed_lines: diag.unparsed_lines,
            unparsed_by_kind: diag.unparsed_by_kind.clone(),
            unparsed_payload_by_event: diag.unparsed_payload_by_event.clone(),
            skipped_lines: diag.skipped_lines,
            skipped_by_kind: diag.skipped_by_kind.clone(),
            first_ts_ns: self.first_ts,
            last_ts_ns: self.last_ts,
            time_span_ns: match (self.first_ts, self.last_ts) {
                (Some(a), Some(b)) => b - a,
                _ => 0,
            },
            tlb_flush_by_reason: tlb,
            ipi: self.ipi,
            ipi_by_kind,
            migration: self.migration,
            tasks: self.tasks.len() as u64,
            out_of_order: diag.out_of_order,
            max_lag_ns: diag.max_lag_ns,
            first_unparsed: diag.first_unparsed.clone(),
            capture: diag.capture.clone(),
        }
    }
}

/// Reads `src` to the end and counts.
pub fn collect(src: &mut dyn RecordSource, filter: Filter) -> Result<Stats, ParseError> {
    let mut b = StatsBuilder::new(filter);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        let got = src.next_batch(&mut batch, BATCH);
        for r in &batch {
            b.add(r);
        }
        if got? == 0 {
            break;
        }
    }
    let diag = src.diagnostics();
    Ok(b.finish(src.format().name(), &diag))
}

/// Records taken from a source per [`RecordSource::next_batch`] call by the consumers that look
/// at each once (`stats`, lowering): small enough to stay in cache (about 100 bytes a record).
pub const BATCH: usize = 256;

/// Convenience: open a file (or `-`) and count.
pub fn stats_for_path(
    path: &str,
    opts: &crate::source::Options,
    filter: Filter,
) -> Result<Stats, ParseError> {
    let mut src = crate::input::open(path, opts)?;
    collect(src.as_mut(), filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Comm, SysArgs, Syscall, TlbReason};
    use std::sync::Arc;

    /// One event of every variant (both flavours where the name depends on a field).
    fn samples() -> Vec<Event> {
        let s: crate::record::Sym = Arc::from("x");
        let mut v = vec![
            Event::PageFault {
                user: true,
                address: 0,
                ip: 0,
                error_code: 0,
            },
            Event::PageFault {
                user: false,
                address: 0,
                ip: 0,
                error_code: 0,
            },
            Event::TlbFlush {
                pages: 1,
                reason: TlbReason {
                    code: None,
                    text: s.clone(),
                },
            },
            Event::IpiSendCpu {
                target: 0,
                kind: IpiKind::Other,
            },
            Event::IpiSendCpumask {
                mask: 1,
                targets: 1,
                kind: IpiKind::Other,
            },
            Event::SetMigrationPte {
                addr: 0,
                pte: 0,
                order: 0,
            },
            Event::RemoveMigrationPte {
                addr: 0,
                pte: 0,
                order: 0,
            },
            Event::MmMigratePages {
                succeeded: 0,
                failed: 0,
                mode: s.clone(),
                reason: s.clone(),
            },
            Event::MmMigratePagesStart {
                mode: s.clone(),
                reason: s.clone(),
            },
            Event::MmLruInsertion {
                pfn: 0,
                lru: 0,
                flags: s.clone(),
            },
            Event::MmLruActivate { pfn: 0 },
            Event::Vmscan(Vmscan::KswapdWake { nid: 0, order: 0 }),
            Event::Vmscan(Vmscan::KswapdSleep { nid: 0 }),
            Event::Vmscan(Vmscan::WakeupKswapd { nid: 0, order: 0 }),
            Event::Vmscan(Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: false,
            }),
            Event::Vmscan(Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: true,
            }),
            Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 0,
                memcg: false,
            }),
            Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 0,
                memcg: true,
            }),
            Event::Vmscan(Vmscan::LruIsolate {
                nr_requested: 0,
                nr_scanned: 0,
                nr_taken: 0,
                lru: s.clone(),
            }),
            Event::Vmscan(Vmscan::LruShrinkInactive {
                nid: 0,
                nr_scanned: 0,
                nr_reclaimed: 0,
                priority: 0,
                nr_ref_keep: 0,
                nr_activate: 0,
                file: None,
            }),
            Event::Vmscan(Vmscan::LruShrinkActive {
                nid: 0,
                nr_taken: 0,
                nr_active: 0,
                nr_deactivated: 0,
                nr_referenced: 0,
            }),
            Event::Vmscan(Vmscan::WriteFolio { pfn: 0 }),
            Event::Vmscan(Vmscan::Other {
                name: Arc::from("foo"),
            }),
            Event::Compaction {
                name: Arc::from("isolate"),
            },
            Event::SchedProcessFork {
                parent_pid: 1,
                child_pid: 2,
                child_comm: Comm::new(b"a"),
            },
            Event::SchedProcessExec { pid: 1, old_pid: 1 },
            Event::SchedProcessExit { pid: 1 },
            Event::SchedSwitch {
                prev_pid: 1,
                prev_state: s.clone(),
                next_pid: 2,
                next_comm: Comm::new(b"b"),
            },
            Event::SchedMigrateTask {
                pid: 1,
                orig_cpu: 0,
                dest_cpu: 1,
            },
            Event::TaskNewtask {
                pid: 1,
                clone_flags: 0,
            },
            Event::ExitMmap,
            Event::RssStat {
                mm_id: 0,
                curr: true,
                member: s.clone(),
                size: 0,
            },
            Event::Filemap {
                add: true,
                pfn: 0,
                ino: 0,
                index: 0,
                order: 0,
            },
            Event::Filemap {
                add: false,
                pfn: 0,
                ino: 0,
                index: 0,
                order: 0,
            },
            Event::Hugetlbfs {
                name: Arc::from("hugetlbfs_fallocate"),
            },
            Event::Khugepaged {
                name: Arc::from("mm_khugepaged_scan_pmd"),
            },
            Event::DamonAggregated {
                target_id: 0,
                nr_regions: 0,
                start: 0,
                end: 0,
                nr_accesses: 0,
                age: None,
            },
            Event::Other {
                name: Arc::from("sched_waking"),
            },
            Event::Lost { count: Some(1) },
        ];
        for name in [
            "mmap",
            "munmap",
            "mprotect",
            "madvise",
            "mremap",
            "brk",
            "execve",
            "clone",
            "clone3",
            "fork",
            "vfork",
            "exit",
            "exit_group",
            "memfd_create",
        ] {
            let nr = Syscall::from_name(name).unwrap_or(Syscall::Mmap);
            v.push(Event::SysEnter {
                nr,
                args: SysArgs([0; 6]),
            });
            v.push(Event::SysExit { nr, ret: 0 });
        }
        v
    }

    #[test]
    fn static_ids_are_one_to_one_with_names() {
        let mut by_id: BTreeMap<usize, String> = BTreeMap::new();
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        for ev in samples() {
            let Some(id) = static_id(&ev) else { continue };
            assert!(id < STATIC_ID_END, "{ev:?}");
            let name = ev.name().to_string();
            assert_eq!(by_id.insert(id, name.clone()).unwrap_or(name.clone()), name);
            assert_eq!(*by_name.entry(name).or_insert(id), id, "{ev:?}");
        }
        // Every syscall and every fixed-name variant got its own id.
        assert_eq!(by_id.len(), 34 + 2 * NR_SYSCALLS);
    }

    #[test]
    fn static_and_named_counts_merge_into_one_report() {
        let mut b = StatsBuilder::new(Filter::default());
        let evs = samples();
        for (i, ev) in evs.iter().enumerate() {
            for _ in 0..=i % 3 {
                b.add(&Record {
                    ts_ns: i as u64,
                    cpu: 0,
                    pid: 1,
                    tgid: None,
                    comm: Comm::new(b"t"),
                    event: ev.clone(),
                });
            }
        }
        let s = b.finish("ftrace", &Diagnostics::default());
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for (i, ev) in evs.iter().enumerate() {
            if matches!(ev, Event::Lost { .. }) {
                continue;
            }
            let (pi, rest) = name_parts(ev);
            *want.entry(format!("{}{rest}", PREFIXES[pi])).or_insert(0) += (i % 3 + 1) as u64;
        }
        assert_eq!(s.events, want);
        assert_eq!(
            s.events.get("sys_exit_exit_group"),
            want.get("sys_exit_exit_group")
        );
        assert!(s.events.contains_key("mm_vmscan_foo"));
    }
}
