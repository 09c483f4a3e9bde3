//! Unit tests of the lowering on hand-built records (each states the kernel behaviour it
//! mirrors).

use super::vmas::{inferred_range, remove_range};
use super::*;
use mmreplay_parsers::pte;
use mmreplay_parsers::record::{Comm, IpiKind, SysArgs, Syscall, TlbReason, Vmscan};
use mmreplay_reference::op::{AccessKind, FileKind, MigrateBatchStep, MigrateTarget, MmId};
use std::sync::Arc;

fn rec(cpu: u32, pid: i32, event: Event) -> Record {
    Record {
        ts_ns: 0,
        cpu,
        pid,
        tgid: None,
        comm: Comm::new(b"w"),
        event,
    }
}

fn args(a: &[u64]) -> SysArgs {
    let mut v = [0u64; 6];
    for (i, x) in a.iter().enumerate() {
        if let Some(s) = v.get_mut(i) {
            *s = *x;
        }
    }
    SysArgs(v)
}

fn lower(records: &[Record], opts: LowerOptions) -> (Vec<Op>, LowerStats) {
    let mut l = Lowering::new(opts);
    let mut ops = Vec::new();
    for r in records {
        l.push(r, &mut ops);
    }
    l.finish(&mut ops);
    // Clock ops are tested on their own (`clock_ops_follow_capture_time_in_ms_steps`).
    ops.retain(|o| !matches!(o, Op::Clock { .. }));
    (ops, l.into_stats())
}

#[test]
fn clock_ops_follow_capture_time_in_ms_steps() {
    let at = |ts_ns: u64, addr: u64| Record {
        ts_ns,
        ..fault(0, 10, addr, 0x6)
    };
    let recs = [
        at(5_000_000, 0x7f00_0000_1000),
        at(5_400_000, 0x7f00_0000_2000),
        at(5_999_999, 0x7f00_0000_3000),
        at(6_000_000, 0x7f00_0000_4000),
        // Slightly out of order (per-CPU buffers): no clock op, never backwards.
        at(5_900_000, 0x7f00_0000_5000),
        at(2_006_000_000, 0x7f00_0000_6000),
    ];
    let mut l = Lowering::new(opts());
    let mut ops = Vec::new();
    for r in &recs {
        l.push(r, &mut ops);
    }
    let clocks: Vec<u64> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Clock { now_ns } => Some(*now_ns),
            _ => None,
        })
        .collect();
    assert_eq!(clocks, [5_000_000, 6_000_000, 2_006_000_000]);
    assert!(
        matches!(ops.first(), Some(Op::Clock { now_ns: 5_000_000 })),
        "the clock is set before the first record's ops (mm creation reads it)"
    );
}

fn opts() -> LowerOptions {
    LowerOptions {
        nr_cpus: 2,
        ..LowerOptions::default()
    }
}

fn fault(cpu: u32, pid: i32, addr: u64, code: u64) -> Record {
    rec(
        cpu,
        pid,
        Event::PageFault {
            user: true,
            address: addr,
            ip: 0,
            error_code: code,
        },
    )
}

#[test]
fn first_seen_task_gets_an_mm_and_faults_infer_a_vma() {
    let (ops, st) = lower(
        &[
            fault(0, 10, 0x7f00_0000_1234, 0x6),
            fault(0, 10, 0x7f00_0000_2000, 0x14),
        ],
        opts(),
    );
    assert_eq!(st.mms_first_seen, 1);
    assert_eq!(
        st.inferred_vmas, 1,
        "second fault is inside the inferred 2 MiB region"
    );
    assert!(matches!(
        ops[0],
        Op::Exec {
            old: None,
            new: MmId(1),
            cpu: 0
        }
    ));
    match &ops[1] {
        Op::Mmap {
            addr,
            len,
            file: None,
            ..
        } => {
            assert_eq!(*addr, 0x7f00_0000_0000);
            assert_eq!(*len, PMD);
        }
        o => panic!("expected inferred mmap, got {o:?}"),
    }
    assert!(matches!(
        ops[2],
        Op::Fault {
            kind: AccessKind::Write,
            va: 0x7f00_0000_1234,
            ..
        }
    ));
    assert!(matches!(
        ops[3],
        Op::Fault {
            kind: AccessKind::Exec,
            ..
        }
    ));
    assert_eq!(ops.len(), 4);
}

#[test]
fn mmap_applies_only_on_success_and_uses_the_returned_address() {
    let recs = [
        rec(
            0,
            10,
            Event::SysEnter {
                nr: Syscall::Mmap,
                args: args(&[0, 0x4000, 3, 0x22, u64::from(u32::MAX), 0]),
            },
        ),
        rec(
            0,
            10,
            Event::SysExit {
                nr: Syscall::Mmap,
                ret: -12,
            },
        ),
        rec(
            0,
            10,
            Event::SysEnter {
                nr: Syscall::Mmap,
                args: args(&[0, 0x4000, 3, 0x22, u64::from(u32::MAX), 0]),
            },
        ),
        rec(
            0,
            10,
            Event::SysExit {
                nr: Syscall::Mmap,
                ret: 0x7000_0000,
            },
        ),
        fault(0, 10, 0x7000_1000, 0x6),
    ];
    let (ops, st) = lower(&recs, opts());
    let mmaps: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o, Op::Mmap { .. }))
        .collect();
    assert_eq!(mmaps.len(), 1, "{ops:?}");
    assert!(matches!(
        mmaps[0],
        Op::Mmap {
            addr: 0x7000_0000,
            len: 0x4000,
            file: None,
            ..
        }
    ));
    assert_eq!(st.inferred_vmas, 0, "the fault hits the mapped VMA");
    assert_eq!(st.not_lowered.get("mmap_failed"), Some(&1));
}

#[test]
fn mprotect_without_exit_is_applied_when_the_thread_moves_on() {
    let recs = [
        rec(
            1,
            11,
            Event::SysEnter {
                nr: Syscall::Mprotect,
                args: args(&[0x1000, 0x1000, 1]),
            },
        ),
        fault(1, 11, 0x5000, 0x4),
    ];
    let (ops, st) = lower(&recs, opts());
    let i = ops
        .iter()
        .position(|o| matches!(o, Op::Mprotect { .. }))
        .expect("mprotect lowered");
    let j = ops
        .iter()
        .position(|o| matches!(o, Op::Fault { .. }))
        .expect("fault lowered");
    assert!(i < j, "the syscall returned before the thread's next fault");
    assert_eq!(
        st.approximations.get("mprotect_applied_without_exit"),
        Some(&1)
    );
}

#[test]
fn mmap_without_exit_is_unplaced() {
    let recs = [rec(
        0,
        10,
        Event::SysEnter {
            nr: Syscall::Mmap,
            args: args(&[0, 0x4000, 3, 0x22, u64::MAX, 0]),
        },
    )];
    let (ops, st) = lower(&recs, opts());
    assert_eq!(st.unplaced.get("mmap_without_exit"), Some(&1));
    assert!(!ops.iter().any(|o| matches!(o, Op::Mmap { .. })));
}

#[test]
fn fork_copies_threads_share_and_last_exit_tears_down() {
    let recs = [
        fault(0, 10, 0x1000, 0x6),
        // A thread: task_newtask with CLONE_VM, then sched_process_fork.
        rec(
            0,
            10,
            Event::TaskNewtask {
                pid: 11,
                clone_flags: 0x3d0f00,
            },
        ),
        rec(
            0,
            10,
            Event::SchedProcessFork {
                parent_pid: 10,
                child_pid: 11,
                child_comm: Comm::new(b"w"),
            },
        ),
        // A process: no CLONE_VM.
        rec(
            0,
            10,
            Event::TaskNewtask {
                pid: 12,
                clone_flags: 0x1200011,
            },
        ),
        rec(
            0,
            10,
            Event::SchedProcessFork {
                parent_pid: 10,
                child_pid: 12,
                child_comm: Comm::new(b"w"),
            },
        ),
        fault(1, 11, 0x1000, 0x4),
        rec(1, 11, Event::SchedProcessExit { pid: 11 }),
        rec(0, 10, Event::SchedProcessExit { pid: 10 }),
        rec(0, 12, Event::SchedProcessExit { pid: 12 }),
    ];
    let (ops, _) = lower(&recs, opts());
    let forks: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o, Op::Fork { .. }))
        .collect();
    assert_eq!(forks.len(), 1, "only the non-CLONE_VM child forks: {ops:?}");
    assert!(matches!(
        forks[0],
        Op::Fork {
            parent: MmId(1),
            child: MmId(2),
            ..
        }
    ));
    // The thread faults in the parent's mm.
    assert!(ops.iter().any(|o| matches!(
        o,
        Op::Fault {
            cpu: 1,
            mm: MmId(1),
            ..
        }
    )));
    let exits: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o, Op::Exit { .. }))
        .collect();
    assert_eq!(
        exits.len(),
        2,
        "mm 1 dies with its last task, mm 2 with the child: {ops:?}"
    );
    assert!(matches!(
        exits[0],
        Op::Exit {
            mm: MmId(1),
            cpu: 0
        }
    ));
    assert!(matches!(exits[1], Op::Exit { mm: MmId(2), .. }));
}

#[test]
fn exec_replaces_the_mm_and_switch_follows_tasks() {
    let recs = [
        fault(0, 10, 0x1000, 0x6),
        rec(
            0,
            10,
            Event::SchedProcessExec {
                pid: 10,
                old_pid: 10,
            },
        ),
        rec(
            1,
            0,
            Event::SchedSwitch {
                prev_pid: 0,
                prev_state: Arc::from("R"),
                next_pid: 10,
                next_comm: Comm::new(b"w"),
            },
        ),
        rec(
            1,
            10,
            Event::SchedSwitch {
                prev_pid: 10,
                prev_state: Arc::from("S"),
                next_pid: 0,
                next_comm: Comm::new(b"swapper"),
            },
        ),
    ];
    let (ops, _) = lower(&recs, opts());
    assert!(
        ops.iter().any(|o| matches!(
            o,
            Op::Exec {
                old: Some(MmId(1)),
                new: MmId(2),
                ..
            }
        )),
        "{ops:?}"
    );
    assert!(ops.iter().any(|o| matches!(
        o,
        Op::Switch {
            cpu: 1,
            next: Some(MmId(2))
        }
    )));
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::Switch { cpu: 1, next: None })),
        "idle is lazy TLB"
    );
}

#[test]
fn migration_matches_running_task_then_any_mm_and_dedups_mappings() {
    let swap = pte::encode_swap(9, 0x1234);
    let recs = [
        fault(0, 10, 0x4000_1000, 0x6),
        fault(1, 20, 0x9000_0000, 0x6),
        // On CPU 1 (task 20) but the address is only mapped by task 10's mm.
        rec(
            1,
            20,
            Event::SetMigrationPte {
                addr: 0x4000_1000,
                pte: swap,
                order: 0,
            },
        ),
        rec(
            1,
            20,
            Event::SetMigrationPte {
                addr: 0x4000_1000,
                pte: swap,
                order: 0,
            },
        ),
        rec(
            1,
            20,
            Event::RemoveMigrationPte {
                addr: 0x4000_1000,
                pte: 0x8000_0000_1234_5067,
                order: 0,
            },
        ),
        rec(
            1,
            20,
            Event::SetMigrationPte {
                addr: 0x9000_0000,
                pte: swap,
                order: 0,
            },
        ),
        rec(
            1,
            20,
            Event::SetMigrationPte {
                addr: 0x1_0000_0000,
                pte: swap,
                order: 0,
            },
        ),
        rec(
            1,
            20,
            Event::SetMigrationPte {
                addr: 0x9000_0000,
                pte: 0x25,
                order: 0,
            },
        ),
    ];
    let (ops, st) = lower(&recs, opts());
    let migs: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o, Op::Migrate { .. }))
        .collect();
    assert_eq!(migs.len(), 2, "{ops:?}");
    assert!(matches!(
        migs[0],
        Op::Migrate {
            target: MigrateTarget::Va {
                mm: MmId(1),
                va: 0x4000_1000
            },
            ..
        }
    ));
    assert!(matches!(
        migs[1],
        Op::Migrate {
            target: MigrateTarget::Va {
                mm: MmId(2),
                va: 0x9000_0000
            },
            ..
        }
    ));
    // No known mm maps 0x1_0000_0000: an unknown mm's PTE, flushed as such.
    assert_eq!(
        st.approximations
            .get("set_migration_pte_of_unknown_mm_flushed_as_every_cpu"),
        Some(&1)
    );
    assert!(ops.iter().any(|o| matches!(
        o,
        Op::MigrateBatch {
            cpu: 1,
            step: MigrateBatchStep::ForeignUnmap
        }
    )));
    assert_eq!(
        st.unplaced.get("set_migration_pte_not_a_swap_entry"),
        Some(&1)
    );
    assert_eq!(st.observed.mig_restored_young, 1);
    assert_eq!(st.observed.mig_restored_dirty, 1);
}

#[test]
fn reclaim_targets_nr_reclaimed_and_observations_are_counted() {
    let recs = [
        rec(
            0,
            30,
            Event::Vmscan(Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: false,
            }),
        ),
        rec(
            0,
            30,
            Event::Vmscan(Vmscan::LruShrinkInactive {
                nid: 0,
                nr_scanned: 64,
                nr_reclaimed: 17,
                priority: 12,
                nr_ref_keep: 0,
                nr_activate: 0,
                file: None,
            }),
        ),
        rec(
            0,
            30,
            Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 17,
                memcg: false,
            }),
        ),
        rec(
            1,
            31,
            Event::Vmscan(Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: false,
            }),
        ),
        rec(
            1,
            31,
            Event::Vmscan(Vmscan::DirectReclaimEnd {
                nr_reclaimed: 5,
                memcg: false,
            }),
        ),
        rec(
            0,
            30,
            Event::TlbFlush {
                pages: -1,
                reason: TlbReason {
                    code: Some(4),
                    text: Arc::from("remote IPI send"),
                },
            },
        ),
        rec(
            0,
            30,
            Event::TlbFlush {
                pages: 1,
                reason: TlbReason {
                    code: Some(3),
                    text: Arc::from("local MM shootdown"),
                },
            },
        ),
        rec(
            0,
            30,
            Event::IpiSendCpumask {
                mask: 0b10,
                targets: 1,
                kind: IpiKind::TlbShootdown,
            },
        ),
        rec(
            0,
            30,
            Event::IpiSendCpu {
                target: 1,
                kind: IpiKind::Other,
            },
        ),
        // A single-target call right after a remote-send flush is its shootdown; without the
        // flush before it (timers, irq work) it is not.
        rec(
            1,
            30,
            Event::TlbFlush {
                pages: -1,
                reason: TlbReason {
                    code: Some(4),
                    text: Arc::from("remote IPI send"),
                },
            },
        ),
        rec(
            1,
            30,
            Event::IpiSendCpu {
                target: 0,
                kind: IpiKind::CallFunctionSingle,
            },
        ),
        rec(
            1,
            30,
            Event::IpiSendCpu {
                target: 0,
                kind: IpiKind::CallFunctionSingle,
            },
        ),
    ];
    let (ops, st) = lower(&recs, opts());
    let targets: Vec<u32> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Reclaim { nr_to_reclaim, .. } => Some(*nr_to_reclaim),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets,
        vec![17, 5],
        "end's total only when no per-LRU event was seen"
    );
    assert_eq!(st.observed.remote_tlb_flushes, 2);
    assert_eq!(st.observed.ipis, 2);
    assert_eq!(st.observed.ipis_shootdown, 2);
    assert_eq!(st.observed.ipi_targets, 2);
}

#[test]
fn pid_filter_keeps_descendants_and_counts_the_rest() {
    let recs = [
        fault(0, 10, 0x1000, 0x6),
        fault(0, 99, 0x1000, 0x6),
        rec(
            0,
            10,
            Event::SchedProcessFork {
                parent_pid: 10,
                child_pid: 12,
                child_comm: Comm::new(b"c"),
            },
        ),
        fault(1, 12, 0x1000, 0x6),
        rec(
            1,
            12,
            Event::SchedSwitch {
                prev_pid: 12,
                prev_state: Arc::from("S"),
                next_pid: 99,
                next_comm: Comm::new(b"o"),
            },
        ),
    ];
    let (ops, st) = lower(
        &recs,
        LowerOptions {
            pid: Some(10),
            ..opts()
        },
    );
    assert_eq!(st.filtered_out, 1);
    assert_eq!(
        ops.iter().filter(|o| matches!(o, Op::Fault { .. })).count(),
        2
    );
    // Switching to an outside task unloads the selected mm (placeholder mm, not lazy TLB).
    assert!(
        matches!(ops.last(), Some(Op::Switch { next: Some(_), .. })),
        "{ops:?}"
    );
}

#[test]
fn out_of_range_cpu_and_lost_events_are_unplaced() {
    let recs = [
        fault(7, 10, 0x1000, 0x6),
        rec(0, 0, Event::Lost { count: Some(42) }),
    ];
    let (ops, st) = lower(&recs, opts());
    assert!(ops.is_empty());
    assert_eq!(st.unplaced.get("cpu_out_of_range"), Some(&1));
    assert_eq!(st.unplaced.get("lost_events"), Some(&42));
}

#[test]
fn munmap_splits_the_shadow_so_later_faults_infer() {
    let recs = [
        rec(
            0,
            10,
            Event::SysEnter {
                nr: Syscall::Mmap,
                args: args(&[0, 0x10000, 3, 0x22, u64::MAX, 0]),
            },
        ),
        rec(
            0,
            10,
            Event::SysExit {
                nr: Syscall::Mmap,
                ret: 0x10_0000,
            },
        ),
        rec(
            0,
            10,
            Event::SysEnter {
                nr: Syscall::Munmap,
                args: args(&[0x10_4000, 0x4000]),
            },
        ),
        rec(
            0,
            10,
            Event::SysExit {
                nr: Syscall::Munmap,
                ret: 0,
            },
        ),
        fault(0, 10, 0x10_0000, 0x6),
        fault(0, 10, 0x10_c000, 0x6),
        fault(0, 10, 0x10_5000, 0x6),
    ];
    let (ops, st) = lower(&recs, opts());
    assert_eq!(
        st.inferred_vmas, 1,
        "only the fault in the hole infers: {ops:?}"
    );
    let inferred = ops
        .iter()
        .filter(|o| {
            matches!(
                o,
                Op::Mmap {
                    addr: 0x10_4000,
                    len: 0x4000,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        inferred, 1,
        "the inferred VMA is clipped to the hole: {ops:?}"
    );
}

#[test]
fn helpers_keep_ranges_consistent() {
    let mut v = BTreeMap::new();
    v.insert(0x1000, 0x9000);
    remove_range(&mut v, 0x3000, 0x2000);
    assert_eq!(
        v.into_iter().collect::<Vec<_>>(),
        vec![(0x1000, 0x3000), (0x5000, 0x9000)]
    );
    let mut v = BTreeMap::new();
    v.insert(0x40_0000, 0x40_1000);
    assert_eq!(inferred_range(&v, 0x40_3000), (0x40_1000, 0x60_0000));
}

#[test]
fn rss_stat_inside_execve_does_not_regroup_the_exec_mm_into_the_old_one() {
    // A vfork child (CLONE_VM|CLONE_VFORK = 0x4100) shares its parent's mm, then execs. The
    // kernel's exec_mmap makes the new mm current before sched_process_exec, so rss_stat
    // names the NEW mm's hash (0xbeef) while the lowering still has the child in the parent mm.
    let rss = |pid, hash| {
        rec(
            1,
            pid,
            Event::RssStat {
                mm_id: hash,
                curr: true,
                member: Arc::from("MM_ANONPAGES"),
                size: 4096,
            },
        )
    };
    let recs = [
        fault(0, 20, 0x1000, 0x6),
        rss(20, 0xaaaa),
        rec(
            0,
            20,
            Event::TaskNewtask {
                pid: 21,
                clone_flags: 0x4100,
            },
        ),
        rec(
            1,
            21,
            Event::SysEnter {
                nr: Syscall::Execve,
                args: args(&[]),
            },
        ),
        rss(21, 0xbeef),
        rec(
            1,
            21,
            Event::SchedProcessExec {
                pid: 21,
                old_pid: 21,
            },
        ),
        rss(21, 0xbeef),
        fault(1, 21, 0x5000, 0x6),
    ];
    let (ops, st) = lower(&recs, opts());
    let mm_of_fault = |va: u64| {
        ops.iter().find_map(|o| match o {
            Op::Fault { mm, va: v, .. } if *v == va => Some(*mm),
            _ => None,
        })
    };
    assert_ne!(mm_of_fault(0x5000), mm_of_fault(0x1000), "{ops:?}");
    assert_eq!(
        st.approximations.get("task_regrouped_by_rss_stat_mm_id"),
        None
    );
}

#[test]
fn rss_stat_mm_id_groups_threads_first_seen_mid_capture() {
    let rss = |cpu, pid, hash| {
        rec(
            cpu,
            pid,
            Event::RssStat {
                mm_id: hash,
                curr: true,
                member: Arc::from("MM_ANONPAGES"),
                size: 4096,
            },
        )
    };
    let recs = [
        fault(0, 40, 0x1000, 0x6),
        rss(0, 40, 0xabc),
        // Thread 41 of the same (pre-existing) process: first a fault (own mm), then its
        // rss_stat names the same hashed mm.
        fault(1, 41, 0x2000, 0x6),
        rss(1, 41, 0xabc),
        fault(1, 41, 0x3000, 0x6),
        // Thread 42 reports the hash before faulting: attached directly.
        rss(0, 42, 0xabc),
        fault(0, 42, 0x4000, 0x6),
        // Another process.
        fault(0, 50, 0x1000, 0x6),
        rss(0, 50, 0xdef),
    ];
    let (ops, st) = lower(&recs, opts());
    let mm_of_fault = |va: u64| {
        ops.iter().find_map(|o| match o {
            Op::Fault { mm, va: v, .. } if *v == va => Some(*mm),
            _ => None,
        })
    };
    assert_eq!(mm_of_fault(0x3000), mm_of_fault(0x1000), "{ops:?}");
    assert_eq!(mm_of_fault(0x4000), mm_of_fault(0x1000));
    assert_ne!(
        ops.iter()
            .filter(|o| matches!(o, Op::Fault { va: 0x1000, .. }))
            .count(),
        0
    );
    assert_eq!(
        st.approximations.get("task_regrouped_by_rss_stat_mm_id"),
        Some(&1)
    );
    assert_eq!(
        st.approximations.get("task_grouped_by_rss_stat_mm_id"),
        Some(&1)
    );
    // The private mm 41 got at first sight is torn down when it is left empty.
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::Exit { mm: MmId(2), .. })),
        "{ops:?}"
    );
}

/// `tlb_remove_table_sync_one` → `smp_call_function` queues one csd per other CPU (the
/// `csd_queue_cpu` event names the function) and then sends one IPI, which `ipi_send_cpu`
/// names only by the generic handler; a target idling in polling mode gets no IPI at all
/// (`send_call_function_single_ipi`). The call counts once, from its csds.
#[test]
fn table_sync_is_observed_from_its_csds_once() {
    let csd =
        |cpu: u32, target: u32, kind: IpiKind| rec(cpu, 30, Event::CsdQueueCpu { target, kind });
    let generic = |cpu: u32| {
        rec(
            cpu,
            30,
            Event::IpiSendCpu {
                target: 1 - cpu,
                kind: IpiKind::Other,
            },
        )
    };
    let recs = [
        // Sent: csd then the generic IPI.
        csd(0, 1, IpiKind::TableSync),
        generic(0),
        // Elided (target polling): csd only.
        csd(1, 0, IpiKind::TableSync),
        // A wake-up IPI with no csd before it is not an MM IPI.
        generic(1),
        // A shootdown queued to two CPUs: one send, two targets.
        csd(0, 1, IpiKind::TlbShootdown),
        csd(0, 2, IpiKind::TlbShootdown),
        rec(
            0,
            30,
            Event::IpiSendCpumask {
                mask: 6,
                targets: 2,
                kind: IpiKind::Other,
            },
        ),
        // Some other cross-CPU call: not counted.
        csd(1, 0, IpiKind::Other),
        generic(1),
    ];
    let (_, st) = lower(&recs, opts());
    assert_eq!(st.observed.ipis_table_sync, 2);
    assert_eq!(st.observed.ipis_shootdown, 1);
    assert_eq!(st.observed.ipis, 3);
    assert_eq!(st.observed.ipi_targets, 4);
}

/// `mm_vmscan_memcg_reclaim_begin` in a task's context: the kernel reclaims that task's memory
/// cgroup. The lowering tells the model the task's process tree is one memcg (once) and scopes
/// the episode's reclaim to it; a direct (global) episode stays global.
#[test]
fn memcg_reclaim_episode_is_scoped_to_the_task_memcg() {
    let vm = |cpu: u32, pid: i32, v: Vmscan| rec(cpu, pid, Event::Vmscan(v));
    let shrink = |n: u64| Vmscan::LruShrinkInactive {
        nid: 0,
        nr_scanned: 2 * n,
        nr_reclaimed: n,
        priority: 12,
        nr_ref_keep: 0,
        nr_activate: 0,
        file: None,
    };
    let recs = [
        fault(0, 10, 0x7f00_0000_0000, 0x6),
        vm(
            0,
            10,
            Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: true,
            },
        ),
        vm(0, 10, shrink(5)),
        vm(
            0,
            10,
            Vmscan::DirectReclaimEnd {
                nr_reclaimed: 5,
                memcg: true,
            },
        ),
        vm(
            0,
            10,
            Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: true,
            },
        ),
        vm(
            0,
            10,
            Vmscan::DirectReclaimEnd {
                nr_reclaimed: 2,
                memcg: true,
            },
        ),
        vm(
            1,
            20,
            Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: false,
            },
        ),
        vm(1, 20, shrink(3)),
    ];
    let (ops, _) = lower(&recs, opts());
    let mm10 = ops.iter().find_map(|o| match o {
        Op::Fault { mm, .. } => Some(*mm),
        _ => None,
    });
    let got: Vec<&Op> = ops
        .iter()
        .filter(|o| {
            matches!(
                o,
                Op::SetMemcg { .. } | Op::ReclaimMemcg { .. } | Op::Reclaim { .. }
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            &Op::SetMemcg {
                mm: mm10.expect("fault lowered"),
                memcg: 1
            },
            &Op::ReclaimMemcg {
                cpu: 0,
                nr_to_reclaim: 5,
                memcg: 1
            },
            &Op::ReclaimMemcg {
                cpu: 0,
                nr_to_reclaim: 2,
                memcg: 1
            },
            &Op::Reclaim {
                cpu: 1,
                nr_to_reclaim: 3
            },
        ]
    );
}

#[test]
fn migrate_pages_batches_flush_before_the_first_move() {
    // mm/migrate.c:migrate_pages_batch: unmap the batch, try_to_unmap_flush, then move.
    let swap = pte::encode_swap(9, 0x1234);
    let set = |addr: u64| {
        rec(
            0,
            10,
            Event::SetMigrationPte {
                addr,
                pte: swap,
                order: 0,
            },
        )
    };
    let remove = |addr: u64| {
        rec(
            0,
            10,
            Event::RemoveMigrationPte {
                addr,
                pte: 0x8000_0000_1234_5067,
                order: 0,
            },
        )
    };
    let start = rec(
        0,
        10,
        Event::MmMigratePagesStart {
            mode: Arc::from("MIGRATE_SYNC"),
            reason: Arc::from("compaction"),
        },
    );
    let end = rec(
        0,
        10,
        Event::MmMigratePages {
            succeeded: 2,
            failed: 0,
            mode: Arc::from("MIGRATE_SYNC"),
            reason: Arc::from("compaction"),
        },
    );
    let recs = [
        fault(0, 10, 0x4000_1000, 0x6),
        fault(0, 10, 0x4000_2000, 0x6),
        start.clone(),
        set(0x4000_1000),
        set(0x4000_2000),
        remove(0x4000_1000),
        remove(0x4000_2000),
        end.clone(),
        // A call whose folios all failed: the flush is due at its end.
        start,
        set(0x4000_1000),
        end,
    ];
    let (ops, _) = lower(&recs, opts());
    let steps: Vec<String> = ops
        .iter()
        .filter_map(|o| match o {
            Op::MigrateBatch { step, .. } => Some(format!("{step:?}")),
            Op::Migrate { .. } => Some("Migrate".into()),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        ["Start", "Migrate", "Migrate", "Flush", "Start", "Migrate", "Flush"],
        "{ops:?}"
    );
}

/// 6.1 logs no hugetlbfs events: `memfd_create(MFD_HUGETLB)` names the file instead, and the
/// 2 MiB aligned shared mapping of it that follows is hugetlb. Without the flag it is not.
#[test]
fn memfd_hugetlb_is_known_without_hugetlbfs_events() {
    let mapping = |memfd_flags: u64| {
        let recs = [
            rec(
                0,
                10,
                Event::SysEnter {
                    nr: Syscall::MemfdCreate,
                    args: args(&[0x5555_0000, memfd_flags]),
                },
            ),
            rec(
                0,
                10,
                Event::SysEnter {
                    nr: Syscall::Mmap,
                    // MAP_SHARED | MAP_FIXED, fd 3.
                    args: args(&[0x7fc0_0000_0000, 1 << 30, 3, 0x11, 3, 0]),
                },
            ),
            rec(
                0,
                10,
                Event::SysExit {
                    nr: Syscall::Mmap,
                    ret: 0x7fc0_0000_0000,
                },
            ),
        ];
        let (ops, _) = lower(&recs, opts());
        ops.iter()
            .find_map(|o| match o {
                Op::Mmap { file, .. } => Some(file.map(|f| f.kind)),
                _ => None,
            })
            .expect("mmap lowered")
    };
    // MFD_CLOEXEC | MFD_HUGETLB.
    assert_eq!(mapping(0x5), Some(FileKind::Hugetlbfs));
    assert_eq!(mapping(0x1), Some(FileKind::Regular));
}

/// `mm_filemap_add_to_page_cache` logged by a task during its fault (`filemap_fault`) is the
/// page's memcg charge: it becomes `Op::PageCacheAdd` on that fault's mm and address, one per
/// page read in (readahead included); an add after the task entered a syscall, or by a task
/// with no fault, is not paired and stays counted as not lowered.
#[test]
fn page_cache_adds_pair_with_the_fault_that_made_them() {
    let add = |pid: i32, index: u64| {
        rec(
            0,
            pid,
            Event::Filemap {
                add: true,
                pfn: 0x1000 + index,
                ino: 0xab,
                index,
                order: 0,
            },
        )
    };
    let (ops, st) = lower(
        &[
            fault(0, 10, 0x7f00_0000_5123, 0x14),
            add(10, 7),
            add(10, 8),
            // Another task's add is never this fault's.
            add(11, 3),
            rec(
                0,
                10,
                Event::SysEnter {
                    nr: Syscall::Madvise,
                    args: args(&[]),
                },
            ),
            add(10, 9),
        ],
        opts(),
    );
    let adds: Vec<(MmId, u64, u64)> = ops
        .iter()
        .filter_map(|o| match o {
            Op::PageCacheAdd { mm, va, index } => Some((*mm, *va, *index)),
            _ => None,
        })
        .collect();
    assert_eq!(
        adds,
        [
            (MmId(1), 0x7f00_0000_5123, 7),
            (MmId(1), 0x7f00_0000_5123, 8)
        ]
    );
    assert_eq!(st.not_lowered.get("mm_filemap_add_to_page_cache"), Some(&2));
    assert_eq!(
        st.approximations.get("pagecache_add_paired_with_fault"),
        Some(&2)
    );
}

/// A pass that freed nothing (`nr_reclaimed=0`) inside a memcg episode is lowered as
/// `Op::ReclaimScan` of its `nr_scanned`, at its moment (the kernel's keeps, activations and
/// writeback happen there, 91% of k61-hotset-classic's unmaps); one with `nr_scanned=0`, or in
/// a global episode (no lruvec known), is not.
#[test]
fn zero_reclaim_passes_of_a_memcg_episode_become_scan_ops() {
    let vm = |cpu: u32, pid: i32, v: Vmscan| rec(cpu, pid, Event::Vmscan(v));
    let shrink = |scanned: u64, reclaimed: u64| Vmscan::LruShrinkInactive {
        nid: 0,
        nr_scanned: scanned,
        nr_reclaimed: reclaimed,
        priority: 12,
        nr_ref_keep: 0,
        nr_activate: 0,
        file: None,
    };
    let begin = |memcg: bool| Vmscan::DirectReclaimBegin { order: 0, memcg };
    let recs = [
        fault(0, 10, 0x7f00_0000_0000, 0x6),
        vm(0, 10, begin(true)),
        vm(0, 10, shrink(32, 0)),
        vm(0, 10, shrink(0, 0)),
        vm(0, 10, shrink(32, 7)),
        vm(0, 10, shrink(5, 0)),
        vm(
            0,
            10,
            Vmscan::DirectReclaimEnd {
                nr_reclaimed: 7,
                memcg: true,
            },
        ),
        vm(1, 20, begin(false)),
        vm(1, 20, shrink(32, 0)),
    ];
    let (ops, _) = lower(&recs, opts());
    let got: Vec<&Op> = ops
        .iter()
        .filter(|o| {
            matches!(
                o,
                Op::ReclaimScan { .. } | Op::ReclaimMemcg { .. } | Op::Reclaim { .. }
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            &Op::ReclaimScan {
                cpu: 0,
                nr_scanned: 32,
                memcg: 1,
                file: None,
                nr_reclaimed: 0,
            },
            &Op::ReclaimMemcg {
                cpu: 0,
                nr_to_reclaim: 7,
                memcg: 1
            },
            &Op::ReclaimScan {
                cpu: 0,
                nr_scanned: 5,
                memcg: 1,
                file: None,
                nr_reclaimed: 0,
            },
        ]
    );
}

/// A pass of the file list (`flags=RECLAIM_WB_FILE|...`) inside a memcg episode becomes
/// `Op::ReclaimScan` of the file list with the kernel's `nr_reclaimed`, whether it freed or
/// not; anon and unknown-list passes keep their lowering; in a global episode a file pass that
/// freed stays a reclaim op.
#[test]
fn file_list_passes_of_a_memcg_episode_become_file_scan_ops() {
    let vm = |cpu: u32, pid: i32, v: Vmscan| rec(cpu, pid, Event::Vmscan(v));
    let shrink = |scanned: u64, reclaimed: u64, file: Option<bool>| Vmscan::LruShrinkInactive {
        nid: 0,
        nr_scanned: scanned,
        nr_reclaimed: reclaimed,
        priority: 0,
        nr_ref_keep: 0,
        nr_activate: 1,
        file,
    };
    let begin = |memcg: bool| Vmscan::DirectReclaimBegin { order: 0, memcg };
    let recs = [
        fault(0, 10, 0x7f00_0000_0000, 0x6),
        vm(0, 10, begin(true)),
        vm(0, 10, shrink(1, 0, Some(true))),
        vm(0, 10, shrink(4, 3, Some(true))),
        vm(0, 10, shrink(32, 7, Some(false))),
        vm(0, 10, shrink(9, 0, Some(false))),
        vm(
            0,
            10,
            Vmscan::DirectReclaimEnd {
                nr_reclaimed: 10,
                memcg: true,
            },
        ),
        vm(1, 20, begin(false)),
        vm(1, 20, shrink(4, 3, Some(true))),
    ];
    let (ops, _) = lower(&recs, opts());
    let got: Vec<&Op> = ops
        .iter()
        .filter(|o| {
            matches!(
                o,
                Op::ReclaimScan { .. } | Op::ReclaimMemcg { .. } | Op::Reclaim { .. }
            )
        })
        .collect();
    let scan = |nr_scanned: u32, file: bool, nr_reclaimed: u32| Op::ReclaimScan {
        cpu: 0,
        nr_scanned,
        memcg: 1,
        file: Some(file),
        nr_reclaimed,
    };
    assert_eq!(
        got,
        vec![
            &scan(1, true, 0),
            &scan(4, true, 3),
            &Op::ReclaimMemcg {
                cpu: 0,
                nr_to_reclaim: 7,
                memcg: 1
            },
            &scan(9, false, 0),
            &Op::Reclaim {
                cpu: 1,
                nr_to_reclaim: 3
            },
        ]
    );
}

/// A memcg episode is its task's: a pass the task logs after moving to another CPU reclaims
/// the same memcg (it was lowered as global reclaim, which scans the root's lruvec); a pass of
/// another task on that CPU with no episode of its own stays global (control).
#[test]
fn a_pass_after_the_task_moved_cpu_stays_in_its_memcg_episode() {
    let vm = |cpu: u32, pid: i32, v: Vmscan| rec(cpu, pid, Event::Vmscan(v));
    let shrink = |reclaimed: u64| Vmscan::LruShrinkInactive {
        nid: 0,
        nr_scanned: 32,
        nr_reclaimed: reclaimed,
        priority: 4,
        nr_ref_keep: 0,
        nr_activate: 0,
        file: Some(false),
    };
    let recs = [
        fault(0, 10, 0x7f00_0000_0000, 0x6),
        vm(
            0,
            10,
            Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: true,
            },
        ),
        vm(1, 10, shrink(5)),
        vm(1, 20, shrink(6)),
        vm(
            1,
            10,
            Vmscan::DirectReclaimEnd {
                nr_reclaimed: 5,
                memcg: true,
            },
        ),
        vm(1, 10, shrink(7)),
    ];
    let (ops, st) = lower(&recs, opts());
    let got: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o, Op::ReclaimMemcg { .. } | Op::Reclaim { .. }))
        .collect();
    assert_eq!(
        got,
        vec![
            &Op::ReclaimMemcg {
                cpu: 1,
                nr_to_reclaim: 5,
                memcg: 1
            },
            &Op::Reclaim {
                cpu: 1,
                nr_to_reclaim: 6
            },
            &Op::Reclaim {
                cpu: 1,
                nr_to_reclaim: 7
            },
        ],
        "{ops:?}"
    );
    assert_eq!(
        st.approximations
            .get("memcg_reclaim_pass_after_task_migrated")
            .copied(),
        Some(1)
    );
}
