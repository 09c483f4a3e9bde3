//! The text reader: ftrace (`trace`/`trace_pipe`), `trace-cmd report` and `perf script` lines
//! from a [`LineBuf`] turned into time-ordered [`Record`]s, with the [`Diagnostics`] of what
//! was not an event.
//!
//! Depends only on the shared types ([`crate::source`]) and the text tokenisers. Must never
//! count a line silently: every line is an event, a lost marker, a skipped line (by kind) or
//! an unparsed line (by kind).

use crate::error::{preview, ParseError, Pos};
use crate::intern::FxHashMap;
use crate::merge::Reorder;
use crate::record::{Comm, Event, Record};
use crate::source::{Diagnostics, Format, Options, RecordSource};
use crate::text::lines::{LineBuf, LineRead};
use crate::text::{self, payload::Decoder, Line, LineError, SkipKind};

/// Longest event name a text line may carry: the kernel caps system and event names at 64
/// bytes each (`MAX_EVENT_NAME_LEN`, kernel/trace/trace_probe.h). Longer names are counted as
/// `event_name_too_long`: interned names and the per-name tables stay small on hostile input.
pub const MAX_EVENT_NAME: usize = 128;
/// Longest event payload: the kernel prints an event into a one-page `trace_seq`
/// (`TRACE_SEQ_BUFFER_SIZE`, include/linux/trace_seq.h), so a longer payload is not a real
/// one. Counted as `payload_too_long`; without the cap, 4096 records of the reorder window
/// could each hold a 1 MiB interned field (a 4 MB zstd file would need 4 GiB).
pub const MAX_PAYLOAD: usize = 4096;
/// Distinct event names `unparsed_payload_by_event` keeps; later ones are summed under
/// [`OTHER_EVENTS`].
pub const MAX_UNPARSED_NAMES: usize = 1024;
/// Key of the unparsed payloads of events past [`MAX_UNPARSED_NAMES`] distinct names.
pub const OTHER_EVENTS: &str = "<other events>";
/// `B - A` of an ftrace `# entries-in-buffer/entries-written: A/B   #P:n` header line (the
/// ring buffer overwrote the difference, `kernel/trace/trace.c:print_event_info`); 0 for any
/// other line. Parsed by `text::header`, the one parser of that line.
pub fn overwritten_in_header(line: &[u8]) -> u64 {
    crate::text::header::entries_header(line).map_or(0, |h| h.overwritten())
}

/// Per-line state of the text reader, kept apart from the line buffer so a borrowed line and
/// the counters can be used together.
struct TextState {
    path: String,
    format: Format,
    tokenise: fn(&[u8]) -> Result<Line<'_>, LineError>,
    decoder: Decoder,
    reorder: Reorder,
    strict: bool,
    lines: u64,
    unparsed: FxHashMap<&'static str, u64>,
    unparsed_payload: FxHashMap<Box<[u8]>, u64>,
    skipped: [u64; SkipKind::ALL.len()],
    first_unparsed: Vec<String>,
    overwritten: u64,
}

/// The text reader: ftrace, `trace-cmd report`, `perf script`.
pub struct TextReader {
    lines: LineBuf,
    st: TextState,
    done: bool,
}

impl TextReader {
    pub(crate) fn new(lines: LineBuf, format: Format, opts: &Options) -> Self {
        let tokenise: fn(&[u8]) -> Result<Line<'_>, LineError> = match format {
            Format::PerfScript => text::perf::parse_line,
            _ => text::ftrace::parse_line,
        };
        let path = lines.path.clone();
        TextReader {
            lines,
            st: TextState {
                path,
                format,
                tokenise,
                decoder: Decoder::new(),
                reorder: Reorder::new(opts.window),
                strict: opts.strict,
                lines: 0,
                unparsed: FxHashMap::default(),
                unparsed_payload: FxHashMap::default(),
                skipped: [0; SkipKind::ALL.len()],
                first_unparsed: Vec::new(),
                overwritten: 0,
            },
            done: false,
        }
    }
}

impl TextState {
    fn note_unparsed(&mut self, kind: &'static str, pos: &Pos, msg: &str) {
        *self.unparsed.entry(kind).or_insert(0) += 1;
        if self.first_unparsed.len() < 5 {
            self.first_unparsed.push(format!("{pos}: {msg}"));
        }
    }

    #[inline]
    fn handle(&mut self, line: &[u8], no: u64, off: u64) -> Result<(), ParseError> {
        self.lines += 1;
        macro_rules! pos {
            () => {
                Pos {
                    path: self.path.clone(),
                    line: no,
                    offset: off,
                }
            };
        }
        match (self.tokenise)(line) {
            Ok(Line::Event(e))
                if e.name.len() > MAX_EVENT_NAME || e.payload.len() > MAX_PAYLOAD =>
            {
                let (what, expected, len) = if e.name.len() > MAX_EVENT_NAME {
                    (
                        "event_name_too_long",
                        "an event name of at most 128 bytes",
                        e.name.len(),
                    )
                } else {
                    (
                        "payload_too_long",
                        "an event payload of at most 4096 bytes (one trace_seq page)",
                        e.payload.len(),
                    )
                };
                if self.strict {
                    return Err(ParseError::Line {
                        pos: pos!(),
                        what,
                        expected,
                        preview: preview(line),
                    });
                }
                let p = pos!();
                self.note_unparsed(
                    what,
                    &p,
                    &format!("{what} ({len} bytes): expected {expected}"),
                );
            }
            Ok(Line::Event(e)) => match self.decoder.decode(e.name, e.payload, e.form) {
                Ok(event) => {
                    self.reorder.push(Record {
                        ts_ns: e.ts_ns,
                        cpu: e.cpu,
                        pid: e.pid,
                        tgid: e.tgid,
                        comm: Comm::new(e.comm),
                        event,
                    });
                }
                Err(expected) => {
                    let event = String::from_utf8_lossy(e.name).into_owned();
                    if self.strict {
                        return Err(ParseError::Payload {
                            pos: pos!(),
                            event,
                            expected,
                            preview: preview(e.payload),
                        });
                    }
                    let key: &[u8] = if self.unparsed_payload.len() < MAX_UNPARSED_NAMES
                        || self.unparsed_payload.contains_key(e.name)
                    {
                        e.name
                    } else {
                        OTHER_EVENTS.as_bytes()
                    };
                    *self.unparsed_payload.entry(Box::from(key)).or_insert(0) += 1;
                    let msg = format!(
                        "payload of `{event}`: expected {expected}; got {:?}",
                        preview(e.payload)
                    );
                    let p = pos!();
                    self.note_unparsed("payload", &p, &msg);
                }
            },
            Ok(Line::Lost { cpu, count }) => {
                let ts_ns = self.reorder.newest_ts().unwrap_or(0);
                self.reorder.push(Record {
                    ts_ns,
                    cpu,
                    pid: -1,
                    tgid: None,
                    comm: Comm::default(),
                    event: Event::Lost { count },
                });
            }
            Ok(Line::Skip(k)) => {
                if let Some(s) = self.skipped.get_mut(k as usize) {
                    *s += 1;
                }
                if k == SkipKind::Header {
                    self.overwritten += overwritten_in_header(line);
                }
            }
            Err(le) => {
                if self.strict {
                    return Err(ParseError::Line {
                        pos: pos!(),
                        what: le.kind,
                        expected: le.expected,
                        preview: preview(line),
                    });
                }
                let msg = format!(
                    "{}: expected {}; line {:?}",
                    le.kind,
                    le.expected,
                    preview(line)
                );
                let p = pos!();
                self.note_unparsed(le.kind, &p, &msg);
            }
        }
        Ok(())
    }
}

impl TextReader {
    /// Reads one line: its record (if any) goes into the reorder window.
    #[inline]
    fn step(&mut self) -> Result<(), ParseError> {
        match self.lines.next_line()? {
            LineRead::Line(l, no, off) => self.st.handle(l, no, off)?,
            LineRead::TooLong(len, no, off) => {
                let pos = Pos {
                    path: self.st.path.clone(),
                    line: no,
                    offset: off,
                };
                self.st.lines += 1;
                if self.st.strict {
                    return Err(ParseError::Line {
                        pos,
                        what: "line_too_long",
                        expected: "a line shorter than 1 MiB",
                        preview: format!("<{len} bytes>"),
                    });
                }
                self.st.note_unparsed(
                    "line_too_long",
                    &pos,
                    &format!("line of {len} bytes skipped"),
                );
            }
            LineRead::Eof => {
                self.st.reorder.finish();
                self.done = true;
            }
        }
        Ok(())
    }
}

impl RecordSource for TextReader {
    fn format(&self) -> Format {
        self.st.format
    }

    fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        loop {
            if let Some(r) = self.st.reorder.pop() {
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
            self.step()?;
        }
    }

    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<usize, ParseError> {
        let start = out.len();
        loop {
            while out.len() - start < max {
                match self.st.reorder.pop() {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if out.len() - start >= max || self.done {
                return Ok(out.len() - start);
            }
            self.step()?;
        }
    }

    fn diagnostics(&self) -> Diagnostics {
        let st = &self.st;
        let mut d = Diagnostics {
            lines: st.lines,
            ..Default::default()
        };
        for (k, v) in &st.unparsed {
            d.unparsed_by_kind.insert((*k).to_string(), *v);
            d.unparsed_lines += v;
        }
        for (k, v) in &st.unparsed_payload {
            *d.unparsed_payload_by_event
                .entry(String::from_utf8_lossy(k).into_owned())
                .or_insert(0) += v;
        }
        for k in SkipKind::ALL {
            let v = st.skipped.get(k as usize).copied().unwrap_or(0);
            if v > 0 {
                d.skipped_by_kind.insert(k.name().to_string(), v);
                d.skipped_lines += v;
            }
        }
        d.first_unparsed = st.first_unparsed.clone();
        d.out_of_order = st.reorder.out_of_order;
        d.overwritten_events = st.overwritten;
        d.max_lag_ns = st.reorder.max_lag_ns;
        d
    }
}

#[cfg(test)]
mod overwritten_tests {
    use super::overwritten_in_header;

    #[test]
    fn header_difference() {
        assert_eq!(
            overwritten_in_header(b"# entries-in-buffer/entries-written: 1744/12071   #P:2"),
            10327
        );
        assert_eq!(
            overwritten_in_header(b"# entries-in-buffer/entries-written: 5/5   #P:2"),
            0
        );
        for other in [
            &b"# tracer: nop"[..],
            b"# entries-in-buffer/entries-written: x/7",
            b"# entries-in-buffer/entries-written: 7/",
            b"# entries-in-buffer/entries-written:",
            b"# entries-in-buffer/entries-written: 9/3",
        ] {
            assert_eq!(overwritten_in_header(other), 0, "{other:?}");
        }
    }
}
