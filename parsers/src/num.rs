//! Number and token helpers for trace text: decimal, hex (with or without `0x`), signed values,
//! trimming. Every function returns `None` on malformed or overflowing input; none may panic.

/// Parses unsigned decimal digits. Empty, non-digit or overflowing input gives `None`.
#[inline]
pub fn dec_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    if s.len() <= 19 {
        // 19 digits cannot overflow a u64: no checked arithmetic on the common path.
        for &c in s {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + d as u64;
        }
        return Some(v);
    }
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// Signed decimal (`-12`, `+3`, `7`).
#[inline]
pub fn dec_i64(s: &[u8]) -> Option<i64> {
    match s.first() {
        Some(b'-') => {
            let v = dec_u64(s.get(1..)?)?;
            if v <= i64::MAX as u64 + 1 {
                Some((v as i64).wrapping_neg())
            } else {
                None
            }
        }
        Some(b'+') => i64::try_from(dec_u64(s.get(1..)?)?).ok(),
        _ => i64::try_from(dec_u64(s)?).ok(),
    }
}

#[inline]
pub fn dec_i32(s: &[u8]) -> Option<i32> {
    i32::try_from(dec_i64(s)?).ok()
}

#[inline]
pub fn dec_u32(s: &[u8]) -> Option<u32> {
    u32::try_from(dec_u64(s)?).ok()
}

/// Hex digits with an optional `0x`/`0X` prefix. At most 16 significant digits.
#[inline]
pub fn hex_u64(s: &[u8]) -> Option<u64> {
    let s = strip_0x(s);
    if s.is_empty() {
        return None;
    }
    // One pass; leading zeros keep `v` at 0, so "more than 16 significant digits" is exactly
    // "a digit arrives while the top nibble is already set".
    let mut v: u64 = 0;
    for &c in s {
        let d = HEX.get(c as usize).copied().unwrap_or(0xff);
        if d > 15 || v >> 60 != 0 {
            return None;
        }
        v = (v << 4) | d as u64;
    }
    Some(v)
}

const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

#[inline]
pub fn strip_0x(s: &[u8]) -> &[u8] {
    match s {
        [b'0', b'x' | b'X', rest @ ..] => rest,
        _ => s,
    }
}

/// `0x...` is hex, anything else decimal (the kernel's `%lu` vs `0x%lx` for the same field
/// across versions, e.g. `pfn=`).
#[inline]
pub fn auto_u64(s: &[u8]) -> Option<u64> {
    if s.len() > 2 && (s.starts_with(b"0x") || s.starts_with(b"0X")) {
        hex_u64(s)
    } else {
        dec_u64(s)
    }
}

/// Whether `s` has the shape `%ps`/`%pS` gives a kernel symbol: an identifier
/// (`[A-Za-z_.][A-Za-z0-9_.$]*`), optionally `+0x<off>` and `/0x<size>`.
pub fn is_symbol(s: &[u8]) -> bool {
    let (name, rest) = match s.iter().position(|&c| c == b'+') {
        Some(i) => (s.get(..i).unwrap_or(&[]), s.get(i + 1..)),
        None => (s, None),
    };
    let ident = name
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'.')
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$'));
    ident
        && rest.is_none_or(|r| {
            r.split(|&c| c == b'/')
                .all(|part| part.len() > 2 && part.starts_with(b"0x") && hex_u64(part).is_some())
        })
}

/// An address printed with `%ps`/`%pS`: hex when it is a number, `None` for a symbol name.
#[inline]
pub fn addr_or_symbol(s: &[u8]) -> Option<u64> {
    hex_u64(s)
}

#[inline]
pub fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

#[inline]
pub fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    s.get(n..).unwrap_or(&[])
}

#[inline]
pub fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    s.get(..s.len() - n).unwrap_or(&[])
}

/// Parses a timestamp: `sec.frac` (any number of fraction digits up to 9, scaled to ns) or a
/// bare integer (counter/tsc clocks: returned as is). Returns nanoseconds.
#[inline]
pub fn timestamp_ns(s: &[u8]) -> Option<u64> {
    // One pass, no allocation; at most 19 integer digits so `sec` cannot overflow before the
    // checked multiply below.
    let mut sec: u64 = 0;
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if i >= 19 {
            return None;
        }
        sec = sec * 10 + d as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    match s.get(i) {
        None => return Some(sec),
        Some(b'.') => {}
        Some(_) => return None,
    }
    let frac = s.get(i + 1..)?;
    if frac.is_empty() || frac.len() > 9 {
        return None;
    }
    let mut f: u64 = 0;
    for &c in frac {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        f = f * 10 + d as u64;
    }
    const SCALE: [u64; 10] = [
        1_000_000_000,
        100_000_000,
        10_000_000,
        1_000_000,
        100_000,
        10_000,
        1_000,
        100,
        10,
        1,
    ];
    let scale = SCALE.get(frac.len()).copied()?;
    sec.checked_mul(1_000_000_000)?.checked_add(f * scale)
}

/// A timestamp (as [`timestamp_ns`] accepts it) immediately followed by `:`, parsed in one pass:
/// returns (ns, index of the `:`). Same verdict as finding the first `:` and calling
/// [`timestamp_ns`] on what precedes it, without scanning the bytes twice.
#[inline]
pub fn timestamp_colon(s: &[u8]) -> Option<(u64, usize)> {
    let mut sec: u64 = 0;
    let mut i = 0;
    loop {
        let c = *s.get(i)?;
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if i >= 19 {
            return None;
        }
        sec = sec * 10 + d as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    match s.get(i) {
        Some(b':') => return Some((sec, i)),
        Some(b'.') => {}
        _ => return None,
    }
    let start = i + 1;
    let mut j = start;
    let mut f: u64 = 0;
    loop {
        let c = *s.get(j)?;
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if j - start >= 9 {
            return None;
        }
        f = f * 10 + d as u64;
        j += 1;
    }
    if j == start || s.get(j) != Some(&b':') {
        return None;
    }
    const SCALE: [u64; 10] = [
        1_000_000_000,
        100_000_000,
        10_000_000,
        1_000_000,
        100_000,
        10_000,
        1_000,
        100,
        10,
        1,
    ];
    let scale = SCALE.get(j - start).copied()?;
    Some((sec.checked_mul(1_000_000_000)?.checked_add(f * scale)?, j))
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes of `w` equal to `b`, as the high bit of each byte. Only the lowest set bit is exact
/// (a borrow can flag bytes above a real match), which is all the callers use.
#[inline]
fn eq_mask(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * b as u64);
    x.wrapping_sub(LO) & !x & HI
}

/// Index of the first byte of `s` equal to `a`, `b` or `c`, scanning 8 bytes at a time: short
/// tokens of varying length (event names, values) end in fewer, better predicted branches
/// than with a byte loop, and without a `memchr` call per token.
#[inline]
pub fn find3(s: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let m = eq_mask(w, a) | eq_mask(w, b) | eq_mask(w, c);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let tail = s.get(i..)?;
    tail.iter()
        .position(|&x| x == a || x == b || x == c)
        .map(|p| i + p)
}

/// Index of the first byte of `s` that is not ASCII whitespace, 8 bytes at a time over the
/// run of spaces that right-aligned columns (comms) start with.
#[inline]
pub fn first_non_space(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w) ^ (LO * b' ' as u64);
        // High bit of each byte that differs from a space (exact: no carry crosses bytes).
        let m = (((x & !HI).wrapping_add(!HI)) | x) & HI;
        if m != 0 {
            i += (m.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    // Finishes the tail and any other whitespace (`\t`, `\r`, ...) the word scan stopped at.
    let tail = s.get(i..)?;
    tail.iter()
        .position(|c| !c.is_ascii_whitespace())
        .map(|p| i + p)
}

/// Index of the first `b` in `s` (see [`find3`]).
#[inline]
pub fn find1(s: &[u8], b: u8) -> Option<usize> {
    find3(s, b, b, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(dec_u64(b"123"), Some(123));
        assert_eq!(dec_u64(b""), None);
        assert_eq!(dec_u64(b"99999999999999999999"), None);
        assert_eq!(dec_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(dec_u64(b"18446744073709551616"), None);
        assert_eq!(
            dec_u64(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(dec_u64(b"12a"), None);
        assert_eq!(dec_i64(b"-1"), Some(-1));
        assert_eq!(dec_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(hex_u64(b"0x7f2747a99000"), Some(0x7f27_47a9_9000));
        assert_eq!(hex_u64(b"1ef9c"), Some(0x1ef9c));
        assert_eq!(hex_u64(b"0xfffffffffffffff5"), Some(0xffff_ffff_ffff_fff5));
        assert_eq!(hex_u64(b"0x00000000000000001"), Some(1));
        assert_eq!(hex_u64(b"0x1ffffffffffffffff"), None);
        assert_eq!(hex_u64(b"10000000000000000"), None);
        assert_eq!(hex_u64(b"0000ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(hex_u64(b"0x0"), Some(0));
        assert_eq!(hex_u64(b"00g"), None);
        assert_eq!(hex_u64(b"0x"), None);
        assert_eq!(hex_u64(b"foo+0x20"), None);
        assert_eq!(auto_u64(b"0x1f"), Some(31));
        assert_eq!(auto_u64(b"31"), Some(31));
    }

    #[test]
    fn swar_find_agrees_with_a_byte_loop() {
        // Deterministic pseudo-random bytes biased towards the searched ones and 0x80/0x00,
        // where borrow tricks go wrong if done carelessly.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = [
            b':', b'(', b' ', 0x80, 0x00, 0xff, b'a', b'9', 0x3b, 0x1f, b'\t', 0xa0, b'!',
        ];
        for len in 0..40 {
            for _ in 0..200 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        alphabet[(x % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let naive = s.iter().position(|&c| c == b':' || c == b'(' || c == b' ');
                assert_eq!(find3(&s, b':', b'(', b' '), naive, "{s:?}");
                assert_eq!(find1(&s, b' '), s.iter().position(|&c| c == b' '), "{s:?}");
                let mut spaced = vec![b' '; (len * 7) % 23];
                spaced.extend_from_slice(&s);
                for v in [&s, &spaced] {
                    assert_eq!(
                        first_non_space(v),
                        v.iter().position(|c| !c.is_ascii_whitespace()),
                        "{v:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn fused_timestamp_agrees_with_two_pass() {
        let two_pass = |s: &[u8]| -> Option<(u64, usize)> {
            let colon = s.iter().take(32).position(|&c| c == b':')?;
            Some((timestamp_ns(s.get(..colon)?)?, colon))
        };
        for s in [
            &b"1439.231584: x"[..],
            b"82820.952659205: e",
            b"123456789: e",
            b"1.: e",
            b"1.1234567890: e",
            b"1.123456789: e",
            b"99999999999999999.1: e",
            b"9999999999999999999: e",
            b"99999999999999999999: e",
            b"18446744073.709551615: e",
            b"18446744074.0: e",
            b".5: e",
            b"5",
            b"5.5",
            b"1.2.3: e",
            b"12x: e",
            b": e",
            b"",
            b"7.024822:",
        ] {
            assert_eq!(
                timestamp_colon(s),
                two_pass(s),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_ns(b"1439.231584"), Some(1_439_231_584_000));
        assert_eq!(timestamp_ns(b"82820.952659205"), Some(82_820_952_659_205));
        assert_eq!(timestamp_ns(b"123456789"), Some(123_456_789));
        assert_eq!(timestamp_ns(b"1."), None);
        assert_eq!(timestamp_ns(b"1.1234567890"), None);
        assert_eq!(timestamp_ns(b"99999999999999999.1"), None);
    }
}
