//! Tokeniser for `perf script` text (`tools/perf/builtin-script.c:perf_sample__fprintf_start`):
//! `%16s %7d[/%-7d] [%03d] %12s: [period] system:event: payload`, with callchain frames as
//! tab-indented lines and blank lines between samples.
//!
//! The comm may contain spaces, so the line is anchored on `[cpu]` and the tid (or `pid/tid`) is
//! read backwards from it. Must never panic or allocate.

use super::{Anchor, EventLine, Line, LineError, PayloadForm, SkipKind};
use crate::num::{dec_i32, dec_u32, timestamp_ns, trim_end, trim_start};

const NO_ANCHOR: LineError =
    LineError::new("no_anchor", "`comm tid [cpu]` or `comm pid/tid [cpu]`");
const BAD_TS: LineError = LineError::new("bad_timestamp", "a timestamp `sec.usec:` after `[cpu]`");
const BAD_NAME: LineError = LineError::new(
    "bad_event_name",
    "`system:event:` or `event:` after the timestamp",
);

pub fn parse_line(line: &[u8]) -> Result<Line<'_>, LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.first() {
        None => return Ok(Line::Skip(SkipKind::Blank)),
        Some(b'\t') => return Ok(Line::Skip(SkipKind::Callchain)),
        Some(b'#') => return Ok(Line::Skip(SkipKind::Header)),
        _ => {}
    }
    if line.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(Line::Skip(SkipKind::Blank));
    }
    let (comm, pid, tgid, cpu, mut i) = anchor(line).ok_or(NO_ANCHOR)?;
    let rest = line.get(i..).ok_or(BAD_TS)?;
    i += rest.iter().take_while(|&&c| c == b' ').count();
    let rest = line.get(i..).ok_or(BAD_TS)?;
    let colon = memchr::memchr(b':', rest).ok_or(BAD_TS)?;
    let ts_ns = timestamp_ns(rest.get(..colon).ok_or(BAD_TS)?).ok_or(BAD_TS)?;
    let mut after = trim_start(rest.get(colon + 1..).ok_or(BAD_NAME)?);
    // Software/hardware events print a period column before the event name.
    let digits = after.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && after.get(digits) == Some(&b' ') {
        after = trim_start(after.get(digits..).ok_or(BAD_NAME)?);
    }
    // The event token ends at the first `:` followed by a space or the end of line.
    let mut end = None;
    for p in memchr::memchr_iter(b':', after) {
        match after.get(p + 1) {
            None | Some(b' ') => {
                end = Some(p);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or(BAD_NAME)?;
    let token = after.get(..end).ok_or(BAD_NAME)?;
    if token.is_empty() || token.contains(&b' ') {
        return Err(BAD_NAME);
    }
    let name = match memchr::memchr(b':', token) {
        Some(p) => token.get(p + 1..).ok_or(BAD_NAME)?,
        None => token,
    };
    if name.is_empty() {
        return Err(BAD_NAME);
    }
    let payload = trim_end(trim_start(after.get(end + 1..).unwrap_or(&[])));
    Ok(Line::Event(EventLine {
        comm,
        pid,
        tgid,
        cpu,
        ts_ns,
        name,
        payload,
        form: PayloadForm::Normal,
    }))
}

/// Returns (comm, tid, pid, cpu, index after `]`).
fn anchor(line: &[u8]) -> Option<Anchor<'_>> {
    'cand: for open in memchr::memchr_iter(b'[', line) {
        let after = line.get(open + 1..)?;
        let Some(close_rel) = after.iter().take(11).position(|&c| c == b']') else {
            continue;
        };
        let Some(cpu) = after.get(..close_rel).and_then(dec_u32) else {
            continue;
        };
        let end = open + 1 + close_rel + 1;
        let mut j = open;
        if j == 0 || line.get(j - 1) != Some(&b' ') {
            continue;
        }
        while j > 0 && line.get(j - 1) == Some(&b' ') {
            j -= 1;
        }
        let tid_end = j;
        while j > 0 && line.get(j - 1).is_some_and(|c| c.is_ascii_digit()) {
            j -= 1;
        }
        if j == tid_end {
            continue;
        }
        let Some(tid) = line.get(j..tid_end).and_then(dec_i32) else {
            continue;
        };
        let mut pid = None;
        if j > 0 && line.get(j - 1) == Some(&b'/') {
            let pid_end = j - 1;
            let mut k = pid_end;
            while k > 0 && line.get(k - 1).is_some_and(|c| c.is_ascii_digit()) {
                k -= 1;
            }
            let Some(p) = line.get(k..pid_end).and_then(dec_i32) else {
                continue 'cand;
            };
            pid = Some(p);
            j = k;
        }
        if j > 0 && line.get(j - 1) != Some(&b' ') {
            continue;
        }
        let comm = trim_end(trim_start(line.get(..j)?));
        return Some((comm, tid, pid, cpu, end));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> EventLine<'_> {
        match parse_line(line.as_bytes()) {
            Ok(Line::Event(e)) => e,
            other => panic!("{line:?} -> {other:?}"),
        }
    }

    #[test]
    fn tracepoint_line() {
        let e = ev("       kdamond.0  4452 [000] 82820.952659: damon:damon_aggregated: target_id=18446623435582458880 nr_regions=8 94253027950592-94253031862272: 0");
        assert_eq!(
            (e.comm, e.pid, e.tgid, e.cpu),
            (&b"kdamond.0"[..], 4452, None, 0)
        );
        assert_eq!(e.ts_ns, 82_820_952_659_000);
        assert_eq!(e.name, b"damon_aggregated");
        assert!(e.payload.starts_with(b"target_id="));
    }

    #[test]
    fn pid_tid_spaces_and_period() {
        let e = ev("  Web Content  4452/4460  [003] 1.000000001: sched:sched_switch: prev_comm=a");
        assert_eq!(
            (e.comm, e.pid, e.tgid, e.cpu, e.ts_ns),
            (&b"Web Content"[..], 4460, Some(4452), 3, 1_000_000_001)
        );
        let e = ev("perf 47118 [011] 51499.088689:          1 page-faults: ");
        assert_eq!(
            (e.comm, e.name, e.payload),
            (&b"perf"[..], &b"page-faults"[..], &b""[..])
        );
    }

    #[test]
    fn skips_and_errors() {
        assert_eq!(
            parse_line(b"\t           29ebc cmd_record (/usr/bin/perf)"),
            Ok(Line::Skip(SkipKind::Callchain))
        );
        assert_eq!(parse_line(b""), Ok(Line::Skip(SkipKind::Blank)));
        assert!(parse_line(b"perf [011] 1.0: x: y").is_err());
        assert!(parse_line(b"perf 1 [011] 1.0 x").is_err());
        assert!(parse_line(b"perf 1 [011] 1.0: :").is_err());
    }
}
