//! The workspace's one set of fixed, non-randomised hashes: FNV-1a for canonical state hashes
//! and `.mmr` checksums, and a small Fx-style `BuildHasher` for the internal hash maps of the
//! model and the parsers (one implementation: two copies had hashed byte tails differently).
//! It must never depend on process state (std's `RandomState` would make hashes and iteration
//! order differ between runs).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::hash::{BuildHasherDefault, Hasher};

/// 64-bit FNV-1a offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// 64-bit FNV-1a prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over a byte slice, continuing from `h`.
#[inline]
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A `fmt::Write` sink that hashes everything written to it with FNV-1a (no allocation).
#[derive(Debug, Clone, Copy)]
pub struct FnvWriter(pub u64);

impl Default for FnvWriter {
    fn default() -> Self {
        FnvWriter(FNV_OFFSET)
    }
}

impl std::fmt::Write for FnvWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = fnv1a(self.0, s.as_bytes());
        Ok(())
    }
}

/// Fx-style multiplicative hasher (as used in rustc): fast for small integer keys, deterministic.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Deterministic `BuildHasher` for internal maps (never iterated for output).
pub type FxBuild = BuildHasherDefault<FxHasher>;
/// `HashMap` with the deterministic Fx hasher.
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;
/// `HashSet` with the deterministic Fx hasher.
pub type FxHashSet<K> = std::collections::HashSet<K, FxBuild>;
