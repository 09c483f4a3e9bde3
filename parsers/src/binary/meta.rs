//! The trace-cmd metadata shared by trace.dat (v6 inline, v7 in sections) and perf's
//! TRACING_DATA feature (version "0.6"): header_page, header_event, ftrace and event format files,
//! kallsyms, printk formats, saved_cmdlines.
//!
//! Layout per rostedt/trace-cmd `Documentation/trace-cmd/trace-cmd.dat.v6.5.txt` and perf
//! `tools/perf/util/trace-event-info.c:tracing_data_header`. It must never trust a length field:
//! every size is checked against the bytes that are left before anything is read.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::bytes::{Cursor, Endian};
use super::format::{parse_format, parse_header_page, EventFormat, FormatError, HeaderPage};
use super::BinaryError;
use crate::record::{Comm, Sym};

/// `\x17\x08\x44tracing`: the magic of trace.dat and of perf's TRACING_DATA.
pub use crate::source::TRACE_DAT_MAGIC as TRACING_MAGIC;

/// Kernel symbols from a capture's kallsyms text. The text is kept as is and indexed on the
/// first lookup: most captures never need a symbol (only IPI events do), and a full kallsyms is
/// ~120k lines.
#[derive(Debug, Default)]
pub struct Kallsyms {
    raw: Vec<u8>,
    /// (address, name start, name length) into `raw`, sorted by address.
    index: OnceLock<Vec<(u64, u32, u32)>>,
}

impl Clone for Kallsyms {
    fn clone(&self) -> Self {
        Kallsyms {
            raw: self.raw.clone(),
            index: OnceLock::new(),
        }
    }
}

impl Kallsyms {
    /// Keeps `/proc/kallsyms` text (`addr type name [module]`) for later lookups.
    pub fn parse(text: &[u8]) -> Self {
        Kallsyms {
            raw: text.to_vec(),
            index: OnceLock::new(),
        }
    }

    fn index(&self) -> &[(u64, u32, u32)] {
        self.index.get_or_init(|| {
            let mut v = Vec::new();
            let mut pos = 0usize;
            for line in self.raw.split(|&b| b == b'\n') {
                let here = pos;
                pos += line.len() + 1;
                // Malformed lines are skipped: kallsyms is only used to name addresses.
                let mut it = line
                    .split(|&b| b == b' ' || b == b'\t')
                    .filter(|w| !w.is_empty());
                let (Some(a), Some(_ty), Some(name)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                let Some(addr) = std::str::from_utf8(a)
                    .ok()
                    .and_then(|a| u64::from_str_radix(a, 16).ok())
                else {
                    continue;
                };
                if addr == 0 || std::str::from_utf8(name).is_err() {
                    continue;
                }
                let start = name.as_ptr() as usize - line.as_ptr() as usize + here;
                if let (Ok(s), Ok(l)) = (u32::try_from(start), u32::try_from(name.len())) {
                    v.push((addr, s, l));
                }
            }
            v.sort_by_key(|e| e.0);
            v.dedup_by_key(|e| e.0);
            v
        })
    }

    pub fn len(&self) -> usize {
        self.index().len()
    }

    pub fn is_empty(&self) -> bool {
        self.index().is_empty()
    }

    /// The symbol at or below `addr` and the offset into it (what `%pS` prints).
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let idx = self.index();
        let i = idx.partition_point(|e| e.0 <= addr);
        let (a, s, l) = *idx.get(i.checked_sub(1)?)?;
        let name = self.raw.get(s as usize..s as usize + l as usize)?;
        Some((std::str::from_utf8(name).ok()?, addr - a))
    }
}

/// A format file's text and the system it came from; parsed when an event of its id is met.
#[derive(Clone, Debug)]
pub struct FormatSource {
    pub system: Sym,
    pub text: Arc<str>,
}

/// Everything decoding needs from a capture's metadata.
#[derive(Clone, Debug)]
pub struct Meta {
    pub endian: Endian,
    /// The `long` size the header states (user-space long of the recorder).
    pub long_size: u8,
    pub page_size: u32,
    pub header_page: Option<HeaderPage>,
    /// Event format texts by id (`common_type`), parsed on first use.
    pub formats: BTreeMap<u32, FormatSource>,
    /// Format files without a readable `ID:` line (they can never match an event).
    pub format_errors: Vec<FormatError>,
    pub ftrace_count: usize,
    pub system_count: usize,
    pub kallsyms: Arc<Kallsyms>,
    /// `saved_cmdlines`: pid -> comm.
    pub cmdlines: BTreeMap<i32, Comm>,
}

impl Meta {
    pub fn new(endian: Endian, long_size: u8, page_size: u32) -> Self {
        Meta {
            endian,
            long_size,
            page_size,
            header_page: None,
            formats: BTreeMap::new(),
            format_errors: Vec::new(),
            ftrace_count: 0,
            system_count: 0,
            kallsyms: Arc::new(Kallsyms::default()),
            cmdlines: BTreeMap::new(),
        }
    }

    /// Number of format files in the capture (ftrace + systems).
    pub fn format_count(&self) -> usize {
        self.formats.len() + self.format_errors.len()
    }

    /// Keeps a format file for parsing on first use; only its `ID:` is read now.
    pub fn add_format(&mut self, text: &[u8], system: &str) {
        let text = String::from_utf8_lossy(text);
        let id = text.lines().find_map(|l| {
            l.trim()
                .strip_prefix("ID:")
                .map(|v| v.trim().parse::<u32>())
        });
        match id {
            Some(Ok(id)) => {
                self.formats.insert(
                    id,
                    FormatSource {
                        system: Sym::from(system),
                        text: Arc::from(text.as_ref()),
                    },
                );
            }
            _ => self.format_errors.push(FormatError {
                context: format!("{system}/?"),
                line: 0,
                msg: "no readable `ID:` line".into(),
            }),
        }
    }

    /// Parses every format file (for checks and reports; decoding parses lazily).
    pub fn parse_all(&self) -> (BTreeMap<u32, Arc<EventFormat>>, Vec<FormatError>) {
        let mut ok = BTreeMap::new();
        let mut errs = self.format_errors.clone();
        for (id, src) in &self.formats {
            match parse_format(&src.text, &src.system) {
                Ok(f) => {
                    ok.insert(*id, Arc::new(f));
                }
                Err(e) => errs.push(e),
            }
        }
        (ok, errs)
    }

    pub fn set_header_page(&mut self, text: &[u8]) -> Result<(), BinaryError> {
        let hp = parse_header_page(&String::from_utf8_lossy(text))?;
        self.header_page = Some(hp);
        Ok(())
    }

    pub fn set_cmdlines(&mut self, text: &[u8]) {
        for line in text.split(|&b| b == b'\n') {
            let line = trim_ascii(line);
            let Some(sp) = line.iter().position(|&b| b == b' ') else {
                continue;
            };
            let (pid, comm) = line.split_at(sp);
            let Some(pid) = std::str::from_utf8(pid)
                .ok()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            self.cmdlines
                .insert(pid, Comm::new(comm.get(1..).unwrap_or(&[])));
        }
    }

    /// The common header: magic, version string, endian, long size, page size.
    /// Returns the version string and the cursor positioned after the page size.
    pub fn parse_initial(data: &[u8]) -> Result<(String, Meta, Cursor<'_>), BinaryError> {
        let mut c = Cursor::new(data, 0, Endian::Little, "tracing header");
        let magic = c.take(TRACING_MAGIC.len() as u64, "magic")?;
        if magic != TRACING_MAGIC {
            return Err(BinaryError::BadMagic {
                what: "trace.dat / tracing data",
            });
        }
        let version = String::from_utf8_lossy(c.cstr("version")?).into_owned();
        let endian = match c.u8("endian")? {
            0 => Endian::Little,
            1 => Endian::Big,
            e => {
                return Err(BinaryError::Invalid {
                    what: "tracing header",
                    offset: c.file_offset() - 1,
                    msg: format!("endian byte {e}, expected 0 or 1"),
                })
            }
        };
        c.set_endian(endian);
        let long_size = c.u8("long size")?;
        if !matches!(long_size, 4 | 8) {
            return Err(BinaryError::Invalid {
                what: "tracing header",
                offset: c.file_offset() - 1,
                msg: format!("long size {long_size}, expected 4 or 8"),
            });
        }
        let page_size = c.u32("page size")?;
        if !(256..=(1 << 24)).contains(&page_size) {
            return Err(BinaryError::Invalid {
                what: "tracing header",
                offset: c.file_offset() - 4,
                msg: format!("page size {page_size} out of range"),
            });
        }
        Ok((version, Meta::new(endian, long_size, page_size), c))
    }

    /// v6 / perf 0.6 body after the initial header, up to and including saved_cmdlines.
    /// `has_cmdlines` is false for perf's older "0.5" tracing data.
    pub fn parse_v6_body(
        &mut self,
        c: &mut Cursor<'_>,
        has_cmdlines: bool,
    ) -> Result<(), BinaryError> {
        self.parse_header_files(c)?;
        self.parse_ftrace_formats(c)?;
        self.parse_event_formats(c)?;
        let n = c.u32("kallsyms size")?;
        let ks = c.take(u64::from(n), "kallsyms")?;
        self.kallsyms = Arc::new(Kallsyms::parse(ks));
        let n = c.u32("printk size")?;
        c.skip(u64::from(n), "printk formats")?;
        if has_cmdlines {
            let n = c.u64("saved_cmdlines size")?;
            let t = c.take(n, "saved_cmdlines")?;
            self.set_cmdlines(t);
        }
        Ok(())
    }

    /// `header_page\0` u64 size text, `header_event\0` u64 size text.
    pub fn parse_header_files(&mut self, c: &mut Cursor<'_>) -> Result<(), BinaryError> {
        expect_tag(c, b"header_page")?;
        let n = c.u64("header_page size")?;
        let hp = c.take(n, "header_page")?;
        self.set_header_page(hp)?;
        expect_tag(c, b"header_event")?;
        let n = c.u64("header_event size")?;
        c.skip(n, "header_event")?;
        Ok(())
    }

    pub fn parse_ftrace_formats(&mut self, c: &mut Cursor<'_>) -> Result<(), BinaryError> {
        let count = c.u32("ftrace format count")?;
        for _ in 0..count {
            let n = c.u64("ftrace format size")?;
            let t = c.take(n, "ftrace format")?;
            self.add_format(t, "ftrace");
            self.ftrace_count += 1;
        }
        Ok(())
    }

    pub fn parse_event_formats(&mut self, c: &mut Cursor<'_>) -> Result<(), BinaryError> {
        let systems = c.u32("system count")?;
        for _ in 0..systems {
            let name = String::from_utf8_lossy(c.cstr("system name")?).into_owned();
            let count = c.u32("event format count")?;
            for _ in 0..count {
                let n = c.u64("event format size")?;
                let t = c.take(n, "event format")?;
                self.add_format(t, &name);
            }
            self.system_count += 1;
        }
        Ok(())
    }
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or(&[])
}

/// Reads a NUL-terminated tag and checks it.
pub fn expect_tag(c: &mut Cursor<'_>, tag: &[u8]) -> Result<(), BinaryError> {
    let at = c.file_offset();
    let got = c.cstr("section tag")?;
    if got != tag {
        return Err(BinaryError::Invalid {
            what: "tracing metadata",
            offset: at,
            msg: format!(
                "expected tag `{}`, found `{}`",
                String::from_utf8_lossy(tag),
                String::from_utf8_lossy(got.get(..got.len().min(32)).unwrap_or(&[]))
            ),
        });
    }
    Ok(())
}
