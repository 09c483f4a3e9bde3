//! The lowering's syscalls part: the mm syscalls (mmap, munmap, mremap, brk, mprotect,
//! madvise) paired enter → exit per tid and lowered at the exit, with the file identities of
//! file mappings and the hints that a shared mapping is a hugetlbfs file.
//!
//! Invariants: a syscall is applied once, at its exit and only on success (mm-semantics E.2:
//! `-4095..=-1` is an error), or, when the thread went on without a logged exit, only where
//! the result is known anyway (munmap/mprotect/madvise, `MAP_FIXED` mmap, `MREMAP_FIXED`
//! mremap), counted as an approximation; the VMA shadow (`lower/vmas.rs`) changes with the op
//! that tells the model. File identities are handed out in order and never reused. It must
//! never guess a syscall's result it cannot know: such a syscall is counted unplaced.

use std::collections::HashMap;
use std::collections::HashSet;

use mmreplay_parsers::record::{Record, SysArgs, Syscall};
use mmreplay_reference::op::{map, FileId, FileKind, FileRef, MmId, Op};

use super::{Lowering, PMD};

/// `MFD_HUGETLB` (`include/uapi/linux/memfd.h`).
const MFD_HUGETLB: u64 = 4;
/// `MREMAP_FIXED`.
const MREMAP_FIXED: u64 = 2;

#[derive(Clone, Copy, Debug)]
struct Pending {
    nr: Syscall,
    args: SysArgs,
    cpu: u32,
}

/// Syscalls in flight and file identities.
pub(super) struct Syscalls {
    /// Pending syscall enter per tid.
    pending: HashMap<i32, Pending>,
    next_file: u64,
    /// (lineage root, fd, kind) → file id.
    files: HashMap<(u32, u64, u8), u64>,
    /// (length, kind) of the first private mapping of a file → file id (see `file_ref`).
    files_by_len: HashMap<(u64, u8), u64>,
    /// tids that just created a hugetlbfs inode (memfd MFD_HUGETLB, hugetlbfs open).
    hugetlb_hint: HashSet<i32>,
}

impl Default for Syscalls {
    fn default() -> Syscalls {
        Syscalls {
            pending: HashMap::new(),
            next_file: 1,
            files: HashMap::new(),
            files_by_len: HashMap::new(),
            hugetlb_hint: HashSet::new(),
        }
    }
}

impl Syscalls {
    /// Forget `tid`'s pending syscall (exec replaced the program that made it).
    pub fn forget(&mut self, tid: i32) {
        self.pending.remove(&tid);
    }

    /// `tid` created a hugetlbfs inode (an event of the `hugetlbfs` system).
    pub fn hugetlb_hint(&mut self, tid: i32) {
        self.hugetlb_hint.insert(tid);
    }

    /// Tids with a syscall still waiting for its exit, in order.
    fn pending_tids(&self) -> Vec<i32> {
        let mut tids: Vec<i32> = self.pending.keys().copied().collect();
        tids.sort_unstable();
        tids
    }
}

fn kind_code(k: FileKind) -> u8 {
    match k {
        FileKind::Regular => 0,
        FileKind::Shmem => 1,
        FileKind::Hugetlbfs => 2,
    }
}

fn is_mm_syscall(nr: Syscall) -> bool {
    matches!(
        nr,
        Syscall::Mmap
            | Syscall::Munmap
            | Syscall::Mremap
            | Syscall::Brk
            | Syscall::Mprotect
            | Syscall::Madvise
    )
}

impl Lowering {
    /// `sys_enter_*`.
    pub(super) fn sys_enter(&mut self, r: &Record, nr: Syscall, args: &SysArgs, out: &mut Vec<Op>) {
        self.resolve_pending(r.pid, out);
        match nr {
            _ if is_mm_syscall(nr) => {
                self.syscalls.pending.insert(
                    r.pid,
                    Pending {
                        nr,
                        args: *args,
                        cpu: r.cpu,
                    },
                );
            }
            Syscall::Execve => {
                self.tasks.in_exec.insert(r.pid);
                self.not_lowered("sys_enter_execve");
            }
            // memfd_create(MFD_HUGETLB): the next 2 MiB aligned shared mapping is that
            // file (`file_ref`), as a hugetlbfs inode event says on kernels that log one.
            Syscall::MemfdCreate if args.0[1] & MFD_HUGETLB != 0 => {
                self.syscalls.hugetlb_hint.insert(r.pid);
                self.approx("hugetlb_file_from_memfd_create_flags");
                self.not_lowered("sys_enter_memfd_create");
            }
            _ => self.not_lowered(r.event.name()),
        }
    }

    /// End of input: resolve syscalls still waiting for their exit, lowest tid first.
    pub(super) fn resolve_all_pending(&mut self, out: &mut Vec<Op>) {
        for t in self.syscalls.pending_tids() {
            self.resolve_pending(t, out);
        }
    }

    pub(super) fn resolve_pending(&mut self, tid: i32, out: &mut Vec<Op>) {
        let Some(p) = self.syscalls.pending.remove(&tid) else {
            return;
        };
        // The thread went on without a logged exit: the syscall returned, result unknown.
        match p.nr {
            Syscall::Munmap | Syscall::Mprotect | Syscall::Madvise => {
                self.approx(&format!("{}_applied_without_exit", p.nr.name()));
                self.apply_syscall(tid, p, None, out);
            }
            Syscall::Mmap if p.args.0[3] & u64::from(map::FIXED) != 0 => {
                self.approx("mmap_fixed_applied_without_exit");
                self.apply_syscall(tid, p, Some(p.args.0[0] as i64), out);
            }
            Syscall::Mremap if p.args.0[3] & MREMAP_FIXED != 0 => {
                self.approx("mremap_fixed_applied_without_exit");
                self.apply_syscall(tid, p, Some(p.args.0[4] as i64), out);
            }
            other => self.unplaced(&format!("{}_without_exit", other.name())),
        }
    }

    /// `sys_exit_*`.
    pub(super) fn sys_exit(&mut self, r: &Record, nr: Syscall, ret: i64, out: &mut Vec<Op>) {
        if nr == Syscall::Execve {
            // A failed execve keeps the old mm (a successful one already saw sched_process_exec).
            self.tasks.in_exec.remove(&r.pid);
        }
        match self.syscalls.pending.get(&r.pid) {
            Some(p) if p.nr == nr => {
                let p = *p;
                self.syscalls.pending.remove(&r.pid);
                // mm-semantics E.2: success is ret >= 0; for mmap/mremap/brk the return is an
                // address, so only -4095..=-1 is an error.
                if (-4095..=-1).contains(&ret) {
                    self.not_lowered(&format!("{}_failed", nr.name()));
                } else {
                    self.apply_syscall(r.pid, p, Some(ret), out);
                }
            }
            _ if is_mm_syscall(nr) => {
                self.unplaced(&format!("sys_exit_{}_without_enter", nr.name()))
            }
            _ => self.not_lowered(&format!("sys_exit_{}", nr.name())),
        }
    }

    /// File identity and kind of a successful `mmap(addr, len, prot, flags, fd, off)` (`a`)
    /// that returned `addr`.
    fn file_ref(&mut self, tid: i32, mm: MmId, a: &[u64; 6], addr: u64) -> FileRef {
        let (len, flags, fd, off) = (a[1], a[3], a[4], a[5]);
        let root = self.tasks.root(mm);
        let shared =
            flags & 0x3 == u64::from(map::SHARED) || flags & 0x3 == u64::from(map::SHARED_VALIDATE);
        let kind = if flags & u64::from(map::HUGETLB) != 0 {
            FileKind::Hugetlbfs
        } else if shared
            && self.syscalls.hugetlb_hint.contains(&tid)
            && len % PMD == 0
            && addr % PMD == 0
        {
            // memfd_create(MFD_HUGETLB) + mmap(fd): the trace shows the hugetlbfs inode being
            // created by this task, not the fd; a 2 MiB aligned shared mapping right after it
            // is taken to be that file.
            self.syscalls.hugetlb_hint.remove(&tid);
            self.approx("hugetlbfs_file_inferred_from_inode_event");
            FileKind::Hugetlbfs
        } else {
            FileKind::Regular
        };
        let k = kind_code(kind);
        // The trace names fds, not inodes, and fd numbers are reused (ld.so maps every
        // library through fd 3). A non-fixed mapping at offset 0 opens a new identity; the
        // fixed segment mappings that follow on the same fd share it. A private file mapping
        // opened that way is keyed by its length, so every exec of the same binary or library
        // shares one page cache (as the kernel does) instead of growing a new one per process.
        let fresh = off == 0 && flags & u64::from(map::FIXED) == 0;
        let s = &mut self.syscalls;
        let id = match s.files.get(&(root, fd, k)) {
            Some(id) if !fresh => *id,
            _ => {
                let id = match (shared, s.files_by_len.get(&(len, k))) {
                    (false, Some(id)) => *id,
                    _ => {
                        let id = s.next_file;
                        s.next_file += 1;
                        if !shared {
                            s.files_by_len.insert((len, k), id);
                        }
                        id
                    }
                };
                s.files.insert((root, fd, k), id);
                id
            }
        };
        FileRef {
            id: FileId(id),
            kind,
        }
    }

    fn apply_syscall(&mut self, tid: i32, p: Pending, ret: Option<i64>, out: &mut Vec<Op>) {
        let Some(mm) = self.mm_of(tid, p.cpu, out) else {
            self.unplaced("syscall_without_mm");
            return;
        };
        let a = p.args.0;
        let cpu = p.cpu;
        let op = match p.nr {
            Syscall::Mmap => {
                let Some(addr) = ret.map(|r| r as u64) else {
                    return;
                };
                let len = a[1];
                let flags = a[3];
                let fd = a[4];
                let fd_none = fd as u32 == u32::MAX || fd as i64 == -1;
                let anon = flags & u64::from(map::ANONYMOUS) != 0 || fd_none;
                let file = if anon {
                    None
                } else {
                    Some(self.file_ref(tid, mm, &a, addr))
                };
                if let Some(v) = self.tasks.vmas_mut(mm) {
                    v.mmap(addr, len);
                }
                Op::Mmap {
                    cpu,
                    mm,
                    addr,
                    len,
                    prot: a[2] as u32,
                    flags: flags as u32,
                    file,
                    pgoff: a[5] >> 12,
                }
            }
            Syscall::Munmap => {
                if let Some(v) = self.tasks.vmas_mut(mm) {
                    v.munmap(a[0], a[1]);
                }
                Op::Munmap {
                    cpu,
                    mm,
                    addr: a[0],
                    len: a[1],
                }
            }
            Syscall::Mremap => {
                let Some(new_addr) = ret.map(|r| r as u64) else {
                    return;
                };
                if let Some(v) = self.tasks.vmas_mut(mm) {
                    v.mremap(a[0], a[1], new_addr, a[2]);
                }
                Op::Mremap {
                    cpu,
                    mm,
                    old_addr: a[0],
                    old_len: a[1],
                    new_addr,
                    new_len: a[2],
                }
            }
            Syscall::Brk => {
                let Some(brk) = ret.map(|r| r as u64) else {
                    return;
                };
                if let Some(v) = self.tasks.vmas_mut(mm) {
                    v.brk(brk);
                }
                Op::Brk { cpu, mm, brk }
            }
            Syscall::Mprotect => Op::Mprotect {
                cpu,
                mm,
                addr: a[0],
                len: a[1],
                prot: a[2] as u32,
            },
            Syscall::Madvise => Op::Madvise {
                cpu,
                mm,
                addr: a[0],
                len: a[1],
                advice: a[2] as u32,
            },
            other => {
                self.not_lowered(&format!("sys_{}", other.name()));
                return;
            }
        };
        self.emit(out, op);
    }
}
