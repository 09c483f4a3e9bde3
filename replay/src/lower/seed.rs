//! Seeding the lowering and the model from a process snapshot (`procsnap.rs`): before the
//! first record, every process older than the capture gets an mm (`Op::Exec` with no old mm),
//! its VMAs (`Op::Mmap` at their address), its present pages (`Op::Access`: a write for anon
//! pages of writable VMAs, a read otherwise) and its threads' last CPUs in its `mm_cpumask`
//! (`Op::Switch`). Its threads are known tasks from then on, and a migration entry whose pfn
//! the snapshot saw is placed on the mm that mapped it. Captures without a snapshot lower as
//! before. It must never seed a process the trace already announced, nor a hugetlb VMA (the
//! model's hugetlb needs its file's identity, which /proc does not give).

use std::collections::HashMap;

use mmreplay_reference::op::{map, AccessKind, FileId, FileKind, FileRef, MmId, Op};

use super::Lowering;
use crate::procsnap::{kpf, ProcSnap};

/// Highest user address of x86-64 4-level paging (`[vsyscall]` lies above).
const TASK_SIZE: u64 = 1 << 47;

/// Seeding state: done once, and the pfn of every seeded page → its mm.
#[derive(Default)]
pub(super) struct Seed {
    pub done: bool,
    pub mm_of_pfn: HashMap<u64, MmId>,
}

impl Lowering {
    /// Seed from `opts.procs` once, before the first record's ops.
    pub(super) fn seed_processes(&mut self, out: &mut Vec<Op>) {
        if self.seed.done {
            return;
        }
        self.seed.done = true;
        let Some(snap) = self.opts.procs.clone() else {
            return;
        };
        self.seed_from(&snap, out);
    }

    fn seed_from(&mut self, snap: &ProcSnap, out: &mut Vec<Op>) {
        let nr_cpus = self.opts.nr_cpus.max(1);
        for p in &snap.processes {
            if p.threads
                .iter()
                .any(|t| self.tasks.by_tid.contains_key(&t.tid))
            {
                self.approx("procsnap_process_already_known");
                continue;
            }
            let cpu_of = |c: u32| c.min(nr_cpus - 1);
            let cpu = cpu_of(p.threads.first().map_or(0, |t| t.last_cpu));
            let m = self.tasks.new_mm(None);
            self.tasks.set_tasks(m, p.threads.len().max(1) as u32);
            for t in &p.threads {
                self.tasks.by_tid.insert(t.tid, m);
            }
            if p.threads.is_empty() {
                self.tasks.by_tid.insert(p.pid, m);
            }
            self.approx("procsnap_mms_seeded");
            self.exec_fresh(cpu, m, out);
            for v in &p.vmas {
                if v.end > TASK_SIZE || v.path.contains("hugepages") || v.path.starts_with("/SYSV")
                {
                    self.approx("procsnap_vma_not_seeded");
                    continue;
                }
                let anon = v.inode == 0;
                let file = (!anon).then(|| FileRef {
                    // Same inode, same identity across processes (shared libraries).
                    id: FileId((1 << 62) | v.inode),
                    kind: if v.path.starts_with("/dev/shm") || v.path.starts_with("/memfd:") {
                        FileKind::Shmem
                    } else {
                        FileKind::Regular
                    },
                });
                let mut flags = map::FIXED | if v.shared { map::SHARED } else { map::PRIVATE };
                if anon {
                    flags |= map::ANONYMOUS;
                }
                self.emit(
                    out,
                    Op::Mmap {
                        cpu,
                        mm: m,
                        addr: v.start,
                        len: v.end - v.start,
                        prot: v.prot,
                        flags,
                        file,
                        pgoff: v.offset >> 12,
                    },
                );
                if let Some(s) = self.tasks.vmas_mut(m) {
                    s.insert(v.start, v.end);
                }
            }
            let mut vi = 0usize;
            for g in p.pages.iter().filter(|g| g.present) {
                while p.vmas.get(vi).is_some_and(|v| v.end <= g.va) {
                    vi += 1;
                }
                let Some(v) = p.vmas.get(vi).filter(|v| v.start <= g.va) else {
                    continue;
                };
                if v.end > TASK_SIZE || v.prot == 0 {
                    continue;
                }
                let anon = g.flags & kpf::ANON != 0 || v.inode == 0;
                let kind = if anon && v.prot & 2 != 0 {
                    AccessKind::Write
                } else {
                    AccessKind::Read
                };
                self.emit(
                    out,
                    Op::Access {
                        cpu,
                        mm: m,
                        va: g.va,
                        kind,
                    },
                );
                if g.pfn != 0 {
                    self.seed.mm_of_pfn.insert(g.pfn, m);
                }
                self.approx("procsnap_pages_seeded");
            }
            // mm_cpumask: every CPU a thread last ran on.
            let mut cpus: Vec<u32> = p.threads.iter().map(|t| cpu_of(t.last_cpu)).collect();
            cpus.sort_unstable();
            cpus.dedup();
            for c in cpus {
                self.emit(
                    out,
                    Op::Switch {
                        cpu: c,
                        next: Some(m),
                    },
                );
            }
        }
        // Which task runs where at the start is the trace's to say; until then every CPU
        // keeps the last seeded mm lazily (a kernel-thread switch).
        for c in 0..nr_cpus {
            self.emit(out, Op::Switch { cpu: c, next: None });
        }
        if snap.skipped.pages_capped > 0 {
            *self
                .stats
                .approximations
                .entry("procsnap_pages_over_caps".to_string())
                .or_insert(0) += snap.skipped.pages_capped;
        }
    }

    /// The seeded mm that mapped the page of the migration entry `raw` at `va`, if any.
    pub(super) fn seeded_mm_of_migration(&self, raw: u64, va: u64) -> Option<MmId> {
        if self.seed.mm_of_pfn.is_empty() {
            return None;
        }
        use mmreplay_parsers::pte;
        // The entry's offset holds the pfn and, above it, the A/D bits (`migration_offset`).
        let off = pte::decode_swap(raw).offset;
        let pfn = pte::migration_offset(off, pte::SWP_PFN_BITS_4LEVEL).pfn;
        let m = *self.seed.mm_of_pfn.get(&pfn)?;
        self.tasks
            .vmas(m)
            .is_some_and(|v| v.covers(va))
            .then_some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LowerOptions, Lowering};
    use crate::procsnap::{kpf, PageSnap, ProcSnap, ProcessSnap, Skipped, ThreadSnap, VmaSnap};
    use mmreplay_parsers::pte;
    use mmreplay_parsers::record::{Comm, Event, Record};
    use mmreplay_reference::op::{MigrateTarget, MmId, Op};
    use std::sync::Arc;

    const A: u64 = 0x7f00_0000_0000;

    /// Process 500 (threads 500 on CPU 1, 501 on CPU 0): one anon VMA with two present pages
    /// (pfns 0x1234, 0x1235), a file VMA, and a page of process 600 at the same address.
    fn snap() -> ProcSnap {
        let page = |va, pfn| PageSnap {
            va,
            pfn,
            present: true,
            swapped: false,
            exclusive: true,
            flags: kpf::ANON | kpf::LRU,
        };
        let anon = VmaSnap {
            start: A,
            end: A + 0x10000,
            prot: 3,
            shared: false,
            offset: 0,
            inode: 0,
            path: String::new(),
        };
        ProcSnap {
            version: crate::procsnap::VERSION,
            pages_per_process: 16,
            pages_total: 16,
            processes: vec![
                ProcessSnap {
                    pid: 500,
                    comm: "old".into(),
                    threads: vec![
                        ThreadSnap {
                            tid: 500,
                            last_cpu: 1,
                        },
                        ThreadSnap {
                            tid: 501,
                            last_cpu: 0,
                        },
                    ],
                    vmas: vec![
                        anon.clone(),
                        VmaSnap {
                            start: A + 0x20000,
                            end: A + 0x30000,
                            prot: 5,
                            shared: false,
                            offset: 0x1000,
                            inode: 77,
                            path: "/usr/lib/libx.so".into(),
                        },
                    ],
                    pages: vec![page(A, 0x1234), page(A + 0x1000, 0x1235)],
                    pages_capped: 0,
                },
                ProcessSnap {
                    pid: 600,
                    comm: "older".into(),
                    threads: vec![ThreadSnap {
                        tid: 600,
                        last_cpu: 0,
                    }],
                    vmas: vec![anon],
                    pages: vec![page(A + 0x1000, 0x9999)],
                    pages_capped: 2,
                },
            ],
            skipped: Skipped {
                pages_capped: 2,
                ..Skipped::default()
            },
        }
    }

    fn migration(pid: i32, va: u64, pfn: u64) -> Record {
        Record {
            ts_ns: 0,
            cpu: 0,
            pid,
            tgid: None,
            comm: Comm::new(b"w"),
            event: Event::SetMigrationPte {
                addr: va,
                pte: pte::encode_swap(30, pfn),
                order: 0,
            },
        }
    }

    fn lower(procs: Option<ProcSnap>, recs: &[Record]) -> (Vec<Op>, super::super::LowerStats) {
        let mut l = Lowering::new(LowerOptions {
            nr_cpus: 2,
            procs: procs.map(Arc::new),
            ..LowerOptions::default()
        });
        let mut ops = Vec::new();
        for r in recs {
            l.push(r, &mut ops);
        }
        l.finish(&mut ops);
        (ops, l.into_stats())
    }

    #[test]
    fn snapshot_seeds_mms_vmas_pages_and_cpumask() {
        let (ops, st) = lower(Some(snap()), &[migration(40, A + 0x1000, 0x1235)]);
        let execs = ops
            .iter()
            .filter(|o| matches!(o, Op::Exec { old: None, .. }))
            .count();
        // The two seeded processes (task 40's migration needs no mm of its own).
        assert_eq!(execs, 2, "{ops:?}");
        assert_eq!(st.approximations.get("procsnap_mms_seeded"), Some(&2));
        assert_eq!(st.approximations.get("procsnap_pages_seeded"), Some(&3));
        assert_eq!(st.approximations.get("procsnap_pages_over_caps"), Some(&2));
        assert!(ops.iter().any(
            |o| matches!(o, Op::Mmap { addr, file: Some(f), pgoff: 1, .. }
            if *addr == A + 0x20000 && f.id.0 == (1 << 62) | 77)
        ));
        // Both CPUs of process 500's threads are in its mm_cpumask.
        for c in 0..2 {
            assert!(ops
                .iter()
                .any(|o| matches!(o, Op::Switch { cpu, next: Some(MmId(1)) } if *cpu == c)));
        }
        // The migration of pfn 0x1235 is placed on process 500's mm (which mapped that pfn),
        // not on 600's, which maps the same address.
        let mig: Vec<&Op> = ops
            .iter()
            .filter(|o| matches!(o, Op::Migrate { .. }))
            .collect();
        assert!(
            matches!(mig.as_slice(), [Op::Migrate { target: MigrateTarget::Va { mm: MmId(1), va }, .. }] if *va == A + 0x1000),
            "{mig:?}"
        );
    }

    #[test]
    fn without_a_snapshot_the_page_is_of_an_unknown_mm() {
        // No mm is known to map the page: nothing to migrate in the model; its unmap joins
        // the migrate_pages batch flush as an mm on every CPU (`lower/batch.rs`).
        let (ops, st) = lower(None, &[migration(40, A + 0x1000, 0x1235)]);
        assert!(!ops.iter().any(|o| matches!(o, Op::Migrate { .. })));
        assert_eq!(
            st.approximations
                .get("set_migration_pte_of_unknown_mm_flushed_as_every_cpu"),
            Some(&1)
        );
    }
}
