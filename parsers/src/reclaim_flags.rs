//! The `reclaim_flags` of `mm_vmscan_lru_shrink_inactive` (6.1 and 6.18
//! `include/trace/events/vmscan.h`): `trace_reclaim_flags(file)` is `RECLAIM_WB_FILE` or
//! `RECLAIM_WB_ANON`, or'ed with `RECLAIM_WB_ASYNC`, and says which inactive list the pass
//! shrank. The text form is `show_reclaim_flags`' `flags=RECLAIM_WB_FILE|RECLAIM_WB_ASYNC`
//! (`RECLAIM_WB_NONE` when zero); the binary form is the `int reclaim_flags` field.
//!
//! It must never guess: a value with neither or both list bits (`RECLAIM_WB_MIXED`, `NONE`)
//! says nothing about the list and gives `None`.

/// `RECLAIM_WB_ANON`.
pub const RECLAIM_WB_ANON: u64 = 0x1;
/// `RECLAIM_WB_FILE`.
pub const RECLAIM_WB_FILE: u64 = 0x2;

/// The list of a pass from the raw `reclaim_flags` bits: `Some(true)` file, `Some(false)`
/// anon, `None` when the bits do not name exactly one.
pub fn list_of_bits(bits: u64) -> Option<bool> {
    match (bits & RECLAIM_WB_ANON != 0, bits & RECLAIM_WB_FILE != 0) {
        (false, true) => Some(true),
        (true, false) => Some(false),
        _ => None,
    }
}

/// The list of a pass from the text `flags=` value: names joined by `|` (`__print_flags`), or
/// a number when the printer had no flag table (`0x` hex or decimal).
pub fn list_of_text(text: &[u8]) -> Option<bool> {
    let bits = text.split(|b| *b == b'|').try_fold(0u64, |acc, name| {
        let bit = match name {
            b"RECLAIM_WB_ANON" => RECLAIM_WB_ANON,
            b"RECLAIM_WB_FILE" => RECLAIM_WB_FILE,
            b"RECLAIM_WB_MIXED" | b"RECLAIM_WB_SYNC" | b"RECLAIM_WB_ASYNC" | b"RECLAIM_WB_NONE" => {
                0
            }
            other => number(other)?,
        };
        Some(acc | bit)
    })?;
    list_of_bits(bits)
}

fn number(t: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(t).ok()?;
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_of_the_kernels_two_values() {
        // trace_reclaim_flags(file) of 6.1 and 6.18, as the corpus captures print them.
        assert_eq!(
            list_of_text(b"RECLAIM_WB_FILE|RECLAIM_WB_ASYNC"),
            Some(true)
        );
        assert_eq!(
            list_of_text(b"RECLAIM_WB_ANON|RECLAIM_WB_ASYNC"),
            Some(false)
        );
        assert_eq!(list_of_bits(0x2 | 0x8), Some(true));
        assert_eq!(list_of_bits(0x1 | 0x8), Some(false));
        assert_eq!(list_of_text(b"0xa"), Some(true));
        assert_eq!(list_of_text(b"9"), Some(false));
    }

    #[test]
    fn values_that_name_no_single_list_say_nothing() {
        assert_eq!(list_of_text(b"RECLAIM_WB_NONE"), None);
        assert_eq!(list_of_text(b"RECLAIM_WB_MIXED|RECLAIM_WB_ASYNC"), None);
        assert_eq!(list_of_text(b"RECLAIM_WB_ANON|RECLAIM_WB_FILE"), None);
        assert_eq!(list_of_text(b"RECLAIM_WB_BOGUS"), None);
        assert_eq!(list_of_text(b""), None);
        assert_eq!(list_of_bits(0), None);
        assert_eq!(list_of_bits(0x8), None);
    }
}
