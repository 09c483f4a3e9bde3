//! Scenario pieces shared by this crate's integration tests (`mod common;` in each): the ops
//! most scenarios start with, written once. Test support only.
#![allow(dead_code)]

use mmreplay_reference::op::{map, prot, FileId, FileKind, FileRef};
use mmreplay_reference::{MmId, Op};

/// `mm` comes to life on `cpu` (no previous mm).
pub fn exec(cpu: u32, mm: MmId) -> Op {
    Op::Exec {
        cpu,
        old: None,
        new: mm,
    }
}

/// A private anonymous read-write mapping of `len` bytes at `addr` (`MAP_FIXED`).
pub fn anon_fixed(cpu: u32, mm: MmId, addr: u64, len: u64) -> Op {
    Op::Mmap {
        cpu,
        mm,
        addr,
        len,
        prot: prot::READ | prot::WRITE,
        flags: map::PRIVATE | map::ANONYMOUS | map::FIXED,
        file: None,
        pgoff: 0,
    }
}

/// A private mapping with `prot` of regular file `file` from offset 0, `len` bytes at `addr`
/// (`MAP_FIXED`).
pub fn file_fixed(cpu: u32, mm: MmId, addr: u64, len: u64, prot: u32, file: u64) -> Op {
    Op::Mmap {
        cpu,
        mm,
        addr,
        len,
        prot,
        flags: map::PRIVATE | map::FIXED,
        file: Some(FileRef {
            id: FileId(file),
            kind: FileKind::Regular,
        }),
        pgoff: 0,
    }
}
