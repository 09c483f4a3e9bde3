//! Tokeniser for kernel ftrace text (`/sys/kernel/tracing/trace`, `trace_pipe`) and
//! `trace-cmd report` text, which share the context layout of
//! `kernel/trace/trace_output.c:trace_print_context`:
//! `%16s-%-7d [(%7d)] [%03d] [flags] %5lu.%06lu: name: payload`.
//!
//! The comm is never split on whitespace: the line is anchored on the `[cpu]` column, and the pid
//! is the digits right before it (after an optional `(tgid)`), preceded by the LAST `-`. Must
//! never panic or allocate; it only slices the line.

use super::{cpu_marker, Anchor, EventLine, Line, LineError, PayloadForm, SkipKind};
use crate::num::{dec_i32, dec_u32, find3, timestamp_colon, trim_start};

const NO_ANCHOR: LineError = LineError::new(
    "no_anchor",
    "`comm-pid [cpu]` (optionally `comm-pid (tgid) [cpu]`)",
);
const BAD_TS: LineError = LineError::new(
    "bad_timestamp",
    "a timestamp `sec.usec`, `sec.nsec` or an integer, followed by `:`",
);
const BAD_NAME: LineError = LineError::new(
    "bad_event_name",
    "an event name followed by `:` (or `sys_x(...)` / `sys_x -> val`)",
);

/// Classifies and tokenises one line (without its `\n`; a trailing `\r` is tolerated).
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let first = match crate::num::first_non_space(line) {
        None => return Ok(Line::Skip(SkipKind::Blank)),
        Some(i) => i,
    };
    let lead = line.get(first..).unwrap_or(&[]);
    match lead.first() {
        Some(b'#') => {
            return Ok(Line::Skip(if lead.starts_with(b"##### CPU") {
                SkipKind::BufferStarted
            } else {
                SkipKind::Header
            }))
        }
        Some(b'=') if lead.starts_with(b"=> ") || lead == b"=>" => {
            return Ok(Line::Skip(SkipKind::StackTrace))
        }
        _ => {}
    }
    if first == 0 {
        if line.starts_with(b"CPU:") {
            return cpu_marker(line);
        }
        if line.starts_with(b"cpus=") {
            return Ok(Line::Skip(SkipKind::CpusLine));
        }
        if line.starts_with(b"version = ") {
            return Ok(Line::Skip(SkipKind::VersionLine));
        }
    }
    parse_event(line)
}

#[inline]
fn try_anchor(line: &[u8], open: usize) -> Option<Anchor<'_>> {
    // `[ddd]`
    let after = line.get(open + 1..)?;
    let close_rel = after.iter().take(11).position(|&c| c == b']')?;
    let cpu = dec_u32(after.get(..close_rel)?)?;
    let end = open + 1 + close_rel + 1;
    // Backwards: at least one space, optional `(tgid)`, spaces, pid digits, `-`.
    let mut j = open;
    if j == 0 || *line.get(j - 1)? != b' ' {
        return None;
    }
    while j > 0 && *line.get(j - 1)? == b' ' {
        j -= 1;
    }
    let mut tgid = None;
    if j > 0 && *line.get(j - 1)? == b')' {
        let close = j - 1;
        let open_p = line.get(..close)?.iter().rposition(|&c| c == b'(')?;
        let inner = crate::num::trim(line.get(open_p + 1..close)?);
        if inner.iter().all(|&c| c == b'-') && !inner.is_empty() {
            tgid = None;
        } else {
            tgid = Some(dec_i32(inner)?);
        }
        j = open_p;
        if j == 0 || *line.get(j - 1)? != b' ' {
            return None;
        }
        while j > 0 && *line.get(j - 1)? == b' ' {
            j -= 1;
        }
    }
    let pid_end = j;
    while j > 0 && line.get(j - 1)?.is_ascii_digit() {
        j -= 1;
    }
    if j == pid_end || j == 0 || *line.get(j - 1)? != b'-' {
        return None;
    }
    let pid = dec_i32(line.get(j..pid_end)?)?;
    let mut comm = trim_start(line.get(..j - 1)?);
    // `trace-cmd report` over several inputs or instances prefixes `name: ` before the
    // right-aligned comm. A kernel comm is at most 15 bytes, so only a longer one is cut.
    if comm.len() > 16 {
        if let Some(c) = memchr::memmem::rfind(comm, b":  ") {
            comm = trim_start(comm.get(c + 1..)?);
        }
    }
    Some((comm, pid, tgid, cpu, end))
}

#[inline]
fn is_flag_token(tok: &[u8]) -> bool {
    // 4 or 5 chars; the first three are never digits (irqs-off, need-resched, hardirq/softirq),
    // the rest hex digits or `.` (preempt depth, migrate-disable).
    if tok.len() != 4 && tok.len() != 5 {
        return false;
    }
    let (head, tail) = tok.split_at(3);
    head.iter().all(|c| c.is_ascii_alphabetic() || *c == b'.')
        && tail.iter().all(|c| c.is_ascii_hexdigit() || *c == b'.')
}

/// Tries every `[` as the cpu anchor (a comm may itself contain `-12 [3]`); the first one that
/// gives a complete line wins.
fn parse_event(line: &[u8]) -> Result<Line<'_>, LineError> {
    // Fast path: the kernel's fixed columns put `[` at byte 25 (`%16s-%-7d `), or 35 with the
    // `(%7d) ` tgid column. Anything else (wider pids, trace-cmd's 5-wide pids, prefixes) takes
    // the general scan below, which gives the same answer.
    for open in [25usize, 35] {
        if line.get(open) == Some(&b'[') {
            if let Some(a) = try_anchor(line, open) {
                if let Ok(l) = parse_after_anchor(line, a) {
                    // Only if no earlier `[` could have been the anchor.
                    if crate::num::find1(line.get(..open).unwrap_or(&[]), b'[').is_none() {
                        return Ok(l);
                    }
                }
            }
        }
    }
    let mut err = NO_ANCHOR;
    for open in memchr::memchr_iter(b'[', line) {
        if let Some(a) = try_anchor(line, open) {
            match parse_after_anchor(line, a) {
                Ok(l) => return Ok(l),
                Err(e) => {
                    if err == NO_ANCHOR {
                        err = e;
                    }
                }
            }
        }
    }
    Err(err)
}

fn parse_after_anchor<'a>(line: &'a [u8], a: Anchor<'a>) -> Result<Line<'a>, LineError> {
    let (comm, pid, tgid, cpu, mut i) = a;
    let rest = line.get(i..).ok_or(NO_ANCHOR)?;
    let skip = rest.iter().take_while(|&&c| c == b' ').count();
    i += skip;
    let rest = line.get(i..).ok_or(BAD_TS)?;
    // Optional latency flags.
    if rest.first().is_some_and(|c| !c.is_ascii_digit()) {
        let tok_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let tok = rest.get(..tok_len).ok_or(BAD_TS)?;
        if is_flag_token(tok) {
            i += tok_len;
        } else if tok_len > 5
            && is_flag_token(tok.get(..5).ok_or(BAD_TS)?)
            && tok.get(5).is_some_and(|c| c.is_ascii_digit())
            && tok.get(4) == Some(&b'.')
        {
            // Flags glued to the timestamp (`trace-cmd report` >= 3.3 with wide timestamps).
            i += 5;
        } else if tok_len > 4
            && is_flag_token(tok.get(..4).ok_or(BAD_TS)?)
            && tok.get(4).is_some_and(|c| c.is_ascii_digit())
        {
            i += 4;
        } else {
            return Err(BAD_TS);
        }
        let rest = line.get(i..).ok_or(BAD_TS)?;
        i += rest.iter().take_while(|&&c| c == b' ').count();
    }
    let rest = line.get(i..).ok_or(BAD_TS)?;
    // The timestamp is digits and at most one `.`, then `:`: parsed in one pass.
    let (ts_ns, colon) = timestamp_colon(rest).ok_or(BAD_TS)?;
    let after = trim_start(rest.get(colon + 1..).ok_or(BAD_NAME)?);
    if after.first() == Some(&b'<')
        && (after.starts_with(b"<stack trace>") || after.starts_with(b"<user stack trace>"))
    {
        return Ok(Line::Skip(SkipKind::StackTrace));
    }
    let n = find3(after, b':', b'(', b' ').ok_or(BAD_NAME)?;
    if n == 0 {
        return Err(BAD_NAME);
    }
    let name = after.get(..n).ok_or(BAD_NAME)?;
    let tail = after.get(n..).ok_or(BAD_NAME)?;
    let (payload, form) = match tail.first() {
        Some(b':') => (
            trim_start(tail.get(1..).unwrap_or(&[])),
            PayloadForm::Normal,
        ),
        Some(b'(') => (tail, PayloadForm::SysEnterText),
        _ => {
            if let Some(v) = tail.strip_prefix(b" -> ") {
                (v, PayloadForm::SysExitText)
            } else if tail.starts_with(b" <-") {
                // Function tracer: `func <-parent`. Counted as the `function` event.
                return Ok(Line::Event(EventLine {
                    comm,
                    pid,
                    tgid,
                    cpu,
                    ts_ns,
                    name: b"function",
                    payload: after,
                    form: PayloadForm::Normal,
                }));
            } else {
                return Err(BAD_NAME);
            }
        }
    };
    Ok(Line::Event(EventLine {
        comm,
        pid,
        tgid,
        cpu,
        ts_ns,
        name,
        payload,
        form,
    }))
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
    fn modern_5_flag_line() {
        let e = ev("      capture.sh-15250   [000] d....  1439.231584: page_fault_user: address=0x5585b85fc0c8 ip=0x7f12bbe01109 error_code=0x6");
        assert_eq!(e.comm, b"capture.sh");
        assert_eq!(
            (e.pid, e.tgid, e.cpu, e.ts_ns),
            (15250, None, 0, 1_439_231_584_000)
        );
        assert_eq!(e.name, b"page_fault_user");
        assert_eq!(
            e.payload,
            &b"address=0x5585b85fc0c8 ip=0x7f12bbe01109 error_code=0x6"[..]
        );
    }

    #[test]
    fn comms_with_spaces_dashes_and_digits() {
        let e = ev("task-1234-567    ( 567) [000] ....  12.000001: sched_switch: x");
        assert_eq!((e.comm, e.pid, e.tgid), (&b"task-1234"[..], 567, Some(567)));
        let e = ev(" Web Content-4242  [003] d..1. 100.5: tlb_flush: pages:1 reason:x (0)");
        assert_eq!((e.comm, e.pid), (&b"Web Content"[..], 4242));
        let e = ev("kworker/u16:1-99 [001] ..s1 1.000000: x: y");
        assert_eq!((e.comm, e.pid, e.cpu), (&b"kworker/u16:1"[..], 99, 1));
        let e = ev("           <...>-4083  [004] ....   395.705679: sys_ioctl(fd: ff)");
        assert_eq!((e.comm, e.form), (&b"<...>"[..], PayloadForm::SysEnterText));
        let e = ev("  (sd-pam)-7 [000] 5.5: e: [1] x");
        assert_eq!((e.comm, e.pid, e.cpu), (&b"(sd-pam)"[..], 7, 0));
    }

    #[test]
    fn tgid_forms_and_no_flags_and_raw_ts() {
        let e = ev("  bash-1977  (-----) [000] 23636.756054: e: p");
        assert_eq!((e.pid, e.tgid), (1977, None));
        let e = ev("  bash-1977  (-------) [000] d..2. 1.5: e: p");
        assert_eq!(e.tgid, None);
        let e = ev("          <idle>-0     [002] 123456789012: e: p");
        assert_eq!((e.comm, e.ts_ns), (&b"<idle>"[..], 123_456_789_012));
        let e = ev("  sh-113 [002] ..Zff 7.024822: watch: x");
        assert_eq!(e.ts_ns, 7_024_822_000);
        let e = ev("  sh-113 [002] bNh1. 7.024822: w: x");
        assert_eq!(e.pid, 113);
    }

    #[test]
    fn syscalls_text_forms() {
        let e = ev("       hugeshare-15251   [001] .....  1439.233795: sys_mmap -> 0x7f2747a99000");
        assert_eq!(
            (e.name, e.payload, e.form),
            (
                &b"sys_mmap"[..],
                &b"0x7f2747a99000"[..],
                PayloadForm::SysExitText
            )
        );
        let e =
            ev("       hugeshare-15251   [001] .....  1439.233784: sys_mmap(addr: 0, len: 0x2000)");
        assert_eq!(
            (e.name, e.payload),
            (&b"sys_mmap"[..], &b"(addr: 0, len: 0x2000)"[..])
        );
    }

    #[test]
    fn markers_and_skips() {
        assert_eq!(
            parse_line(b"CPU:1 [LOST 42 EVENTS]"),
            Ok(Line::Lost {
                cpu: 1,
                count: Some(42)
            })
        );
        assert_eq!(
            parse_line(b"CPU:3 [7 EVENTS DROPPED]"),
            Ok(Line::Lost {
                cpu: 3,
                count: Some(7)
            })
        );
        assert_eq!(
            parse_line(b"CPU:3 [EVENTS DROPPED]"),
            Ok(Line::Lost {
                cpu: 3,
                count: None
            })
        );
        assert_eq!(
            parse_line(b"##### CPU 2 buffer started ####"),
            Ok(Line::Skip(SkipKind::BufferStarted))
        );
        assert_eq!(
            parse_line(b" => do_syscall_64"),
            Ok(Line::Skip(SkipKind::StackTrace))
        );
        assert_eq!(
            parse_line(b"  bash-1 [000] d.h3 1.0: <stack trace>"),
            Ok(Line::Skip(SkipKind::StackTrace))
        );
        assert_eq!(parse_line(b"cpus=6"), Ok(Line::Skip(SkipKind::CpusLine)));
        assert_eq!(
            parse_line(b"version = 6"),
            Ok(Line::Skip(SkipKind::VersionLine))
        );
        assert_eq!(
            parse_line(b"# tracer: nop"),
            Ok(Line::Skip(SkipKind::Header))
        );
        assert_eq!(parse_line(b"   "), Ok(Line::Skip(SkipKind::Blank)));
        assert!(parse_line(b"CPU:x [LOST 1 EVENTS]").is_err());
    }

    #[test]
    fn trace_cmd_report_lines() {
        let e = ev("          <idle>-0     [002]  2084.021659: sched_switch:         swapper/2:0 [120] R ==> kworker/2:1:2923 [120]");
        assert_eq!((e.name, e.cpu), (&b"sched_switch"[..], 2));
        assert_eq!(
            e.payload,
            &b"swapper/2:0 [120] R ==> kworker/2:1:2923 [120]"[..]
        );
        let e = ev("   <...>-1701  [001]    76.211513: print:                0xffff00000819ff24s: TRACE_MARKER_START");
        assert_eq!(e.name, b"print");
        let e = ev("mmreplay_paired:           mmwork-8949  [001]   474.190041: tlb_flush:            pages=-1 reason=flush on task switch (0)");
        assert_eq!(
            (e.comm, e.pid, e.name),
            (&b"mmwork"[..], 8949, &b"tlb_flush"[..])
        );
        let e = ev("  trace-cmd-20913 [002] 852655.067718: sched_switch:         trace-cmd:20913 [120] R ==> k:1 [120]");
        assert_eq!((e.comm, e.pid), (&b"trace-cmd"[..], 20913));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for l in [
            &b"hello"[..],
            b"-1 [",
            b"a-1 [0]",
            b"a-1 [0] x",
            b"a-1 [0] 1.0",
            b"a-1 [0] 1.0: ",
            b"[0]",
            b"-[0] 1:",
            b"x-99999999999 [0] 1: e: p",
        ] {
            assert!(parse_line(l).is_err(), "{:?}", String::from_utf8_lossy(l));
        }
    }
}
