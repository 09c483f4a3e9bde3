//! The header and marker lines of ftrace text that say how complete a capture is, parsed once
//! for every reader: the text reader (`overwritten` in its diagnostics), `replay`'s CPU count
//! (`#P:N`) and `record`'s check of the text it saved.
//!
//! Must never panic or allocate; it only slices the line.

use crate::num::{dec_u32, dec_u64, trim, trim_start};

/// `# entries-in-buffer/entries-written: A/B   #P:N` (`kernel/trace/trace.c:
/// print_event_info`): A events are in the buffer, B were written, so B - A were overwritten;
/// N is the number of CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntriesHeader {
    pub in_buffer: u64,
    pub written: u64,
    pub cpus: Option<u32>,
}

impl EntriesHeader {
    /// Events the ring buffer overwrote (0 when the counts do not say so).
    pub fn overwritten(&self) -> u64 {
        self.written.saturating_sub(self.in_buffer)
    }
}

const KEY: &[u8] = b"entries-in-buffer/entries-written:";

/// Parses the entries header line; `None` for any other line or malformed counts.
pub fn entries_header(line: &[u8]) -> Option<EntriesHeader> {
    let rest = trim_start(line.strip_prefix(b"#")?);
    let rest = trim_start(rest.strip_prefix(KEY)?);
    let end = rest
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(rest.len());
    let (counts, tail) = rest.split_at(end);
    let slash = counts.iter().position(|&c| c == b'/')?;
    let in_buffer = dec_u64(counts.get(..slash)?)?;
    let written = dec_u64(counts.get(slash + 1..)?)?;
    Some(EntriesHeader {
        in_buffer,
        written,
        cpus: cpus_field(tail),
    })
}

/// `#P:N` in a header line's tail; `None` when absent or 0.
fn cpus_field(s: &[u8]) -> Option<u32> {
    let i = s.windows(3).position(|w| w == b"#P:")?;
    let digits = s.get(i + 3..)?;
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    dec_u32(digits.get(..n)?).filter(|&n| n > 0)
}

/// The CPU count an ftrace text header states: `#P:N` on a `#` line among the first bytes of
/// a capture (the entries header; a latency-format header says it too).
pub fn cpus_in_head(head: &[u8]) -> Option<u32> {
    head.split(|&c| c == b'\n')
        .filter(|l| l.first() == Some(&b'#'))
        .find_map(cpus_field)
}

/// A lost-events marker line (`CPU:n [LOST k EVENTS]`, `CPU:n [k EVENTS DROPPED]`,
/// `CPU:n [EVENTS DROPPED]`): `(cpu, count)`, the count `None` where the kernel could not say.
pub fn lost_marker(line: &[u8]) -> Option<(u32, Option<u64>)> {
    let line = trim(line);
    if !line.starts_with(b"CPU:") {
        return None;
    }
    match super::cpu_marker(line) {
        Ok(super::Line::Lost { cpu, count }) => Some((cpu, count)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_header_counts_and_cpus() {
        let h = entries_header(b"# entries-in-buffer/entries-written: 1744/12071   #P:2").unwrap();
        assert_eq!(
            h,
            EntriesHeader {
                in_buffer: 1744,
                written: 12071,
                cpus: Some(2)
            }
        );
        assert_eq!(h.overwritten(), 10327);
        let h = entries_header(b"# entries-in-buffer/entries-written: 9/3\n").unwrap();
        assert_eq!((h.overwritten(), h.cpus), (0, None));
        for other in [
            &b"# entries-in-buffer/entries-written: x/7"[..],
            b"# entries-in-buffer/entries-written: 7/",
            b"# entries-in-buffer/entries-written:",
            b"entries-in-buffer/entries-written: 1/2",
            b"# tracer: nop",
            b"",
        ] {
            assert_eq!(entries_header(other), None, "{other:?}");
        }
    }

    #[test]
    fn cpus_from_a_head_of_lines() {
        let head = b"# tracer: nop\n#\n# entries-in-buffer/entries-written: 5/5   #P:4\n#\n  a-1 [000] ...";
        assert_eq!(cpus_in_head(head), Some(4));
        assert_eq!(cpus_in_head(b"# tracer: nop\n  bash-1 #P:3 [000]"), None);
        assert_eq!(
            cpus_in_head(b"# entries-in-buffer/entries-written: 5/5   #P:0"),
            None
        );
    }

    #[test]
    fn lost_markers() {
        assert_eq!(lost_marker(b"CPU:1 [LOST 17 EVENTS]"), Some((1, Some(17))));
        assert_eq!(lost_marker(b"CPU:0 [LOST 3 EVENTS]\n"), Some((0, Some(3))));
        assert_eq!(lost_marker(b"CPU:2 [EVENTS DROPPED]"), Some((2, None)));
        assert_eq!(lost_marker(b"CPU:2 [5 EVENTS DROPPED]"), Some((2, Some(5))));
        assert_eq!(lost_marker(b"[LOST x EVENTS]"), None);
        assert_eq!(lost_marker(b"CPU:x [LOST 1 EVENTS]"), None);
        assert_eq!(lost_marker(b"CPU:0 [SUBBUFFER START]"), None);
    }
}
