//! Small helpers shared by the text decoders: the fast non-cryptographic hasher (re-exported)
//! and a bounded string interner for [`Sym`]s.
//!
//! Why: the same few event names, reasons and flag strings repeat millions of times; interning
//! turns each into an `Arc` clone instead of an allocation. Must never grow without bound on
//! hostile input (the table is capped) and never panic.

use crate::record::Sym;
use std::sync::Arc;

/// The workspace's one Fx hasher (`mmreplay-hash`, shared with the model). Not DoS-resistant,
/// which is fine here because the interner is capped.
pub use mmreplay_hash::{FxBuild, FxHashMap, FxHashSet, FxHasher};

/// Deduplicates byte strings into shared [`Sym`]s. Non-UTF-8 bytes become U+FFFD.
#[derive(Default)]
pub struct Interner {
    map: FxHashMap<Box<[u8]>, Sym>,
    /// Direct-mapped cache in front of `map`, indexed by length and end bytes: hot values
    /// (`MM_ANONPAGES`, lru flags, tlb reasons) hit here with one short compare and no hashing.
    recent: Vec<Option<(Box<[u8]>, Sym)>>,
}

const RECENT: usize = 64;

#[inline]
fn recent_slot(s: &[u8]) -> usize {
    let a = s.first().copied().unwrap_or(0) as usize;
    let b = s.last().copied().unwrap_or(0) as usize;
    (s.len().wrapping_mul(31) ^ a.wrapping_mul(7) ^ b.wrapping_mul(13)) % RECENT
}

impl Interner {
    /// Beyond this many distinct strings new ones are still returned, just not remembered, so
    /// memory stays bounded on garbage input.
    pub const CAP: usize = 1 << 16;

    #[inline]
    pub fn intern(&mut self, s: &[u8]) -> Sym {
        let slot = recent_slot(s);
        if let Some(Some((k, v))) = self.recent.get(slot) {
            if **k == *s {
                return v.clone();
            }
        }
        self.intern_slow(s, slot)
    }

    #[cold]
    fn intern_slow(&mut self, s: &[u8], slot: usize) -> Sym {
        if self.recent.is_empty() {
            self.recent.resize(RECENT, None);
        }
        let sym = self.lookup_or_insert(s);
        if let Some(e) = self.recent.get_mut(slot) {
            *e = Some((Box::from(s), sym.clone()));
        }
        sym
    }

    fn lookup_or_insert(&mut self, s: &[u8]) -> Sym {
        if let Some(v) = self.map.get(s) {
            return v.clone();
        }
        let sym: Sym = Arc::from(String::from_utf8_lossy(s).as_ref());
        if self.map.len() < Self::CAP {
            self.map.insert(Box::from(s), sym.clone());
        }
        sym
    }

    /// Interns the concatenation of `prefix` and `s` (e.g. `sys_enter_` + `read`).
    pub fn intern2(&mut self, prefix: &[u8], s: &[u8]) -> Sym {
        let mut tmp = [0u8; 96];
        let n = prefix.len() + s.len();
        match tmp.get_mut(..n) {
            Some(dst) => {
                let (a, b) = dst.split_at_mut(prefix.len());
                a.copy_from_slice(prefix);
                b.copy_from_slice(s);
                self.intern(dst)
            }
            None => {
                let mut v = Vec::with_capacity(n);
                v.extend_from_slice(prefix);
                v.extend_from_slice(s);
                self.intern(&v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_dedups_and_concatenates() {
        let mut i = Interner::default();
        let a = i.intern(b"remote IPI send");
        let b = i.intern(b"remote IPI send");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*i.intern2(b"sys_enter_", b"read"), "sys_enter_read");
        assert_eq!(&*i.intern(&[0x66, 0xff]), "f\u{fffd}");
    }

    #[test]
    fn recent_cache_never_confuses_colliding_strings() {
        // Same length and end bytes: same cache slot, different strings.
        let mut i = Interner::default();
        for _ in 0..3 {
            for s in [&b"axb"[..], b"ayb", b"azb", b"ab", b"", b"MM_ANONPAGES"] {
                assert_eq!(i.intern(s).as_bytes(), s);
            }
        }
        let a = i.intern(b"axb");
        let b = i.intern(b"ayb");
        let a2 = i.intern(b"axb");
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn fx_hash_differs_on_length() {
        use std::hash::{Hash, Hasher};
        let h = |s: &[u8]| {
            let mut f = FxHasher::default();
            s.hash(&mut f);
            f.finish()
        };
        assert_ne!(h(b"a"), h(b"a\0"));
    }
}
