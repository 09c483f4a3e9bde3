//! Raw ftrace ring-buffer pages (`per_cpu/cpuN/trace_pipe_raw`, trace.dat flyrecord CPU data):
//! page header, compressed event headers, time extends, absolute timestamps, padding and the
//! missed-events flags.
//!
//! Follows rostedt/libtraceevent `src/kbuffer-parse.c` (`kbuffer_load_subbuffer`,
//! `translate_data`, `update_pointers`) and the kernel's `kernel/trace/ring_buffer.c`
//! (`RB_MISSED_EVENTS`, `RB_MISSED_STORED`). It must never read past a page or trust `commit`
//! beyond the page's data area.

use super::bytes::{read_uint, Endian};
use super::format::HeaderPage;
use super::BinaryError;

/// `local_t commit` bits (kernel/trace/ring_buffer.c).
const MISSED_EVENTS: u64 = 1 << 31;
const MISSED_STORED: u64 = 1 << 30;
const COMMIT_MASK: u64 = (1 << 27) - 1;
const TS_SHIFT: u32 = 27;
/// Absolute timestamps carry 59 bits; the top bits come from the running time (`TS_MSB`).
const TS_MSB_MASK: u64 = !((1u64 << 59) - 1);

const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;

/// One item read from a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A tracepoint record: its timestamp and its bytes (`common_type` first).
    Event { ts: u64, raw: &'a [u8] },
    /// The page was written after events were lost (`count` when the kernel stored it).
    Missed { ts: u64, count: Option<u64> },
}

/// The timestamp of an item.
#[inline]
pub fn item_ts(it: &Item<'_>) -> u64 {
    match it {
        Item::Event { ts, .. } | Item::Missed { ts, .. } => *ts,
    }
}

/// How to read pages of one capture.
#[derive(Clone, Copy, Debug)]
pub struct PageLayout {
    pub header: HeaderPage,
    pub page_size: usize,
    pub endian: Endian,
}

/// Decodes every page of one CPU's data (`data` is a whole number of pages; a short tail is
/// reported as an error). `base` is the file offset of `data`, for messages.
pub fn for_each_item<'a>(
    data: &'a [u8],
    layout: &PageLayout,
    base: u64,
    f: &mut impl FnMut(Item<'a>),
) -> Result<(), BinaryError> {
    if layout.page_size == 0 {
        return Err(BinaryError::Invalid {
            what: "ring buffer",
            offset: base,
            msg: "page size 0".into(),
        });
    }
    for (i, page) in data.chunks(layout.page_size).enumerate() {
        let off = base + (i * layout.page_size) as u64;
        if page.len() < layout.page_size {
            // trace-cmd never writes partial pages; a truncated file ends here.
            return Err(BinaryError::Truncated {
                what: "ring buffer",
                field: "page",
                offset: off,
                need: layout.page_size as u64,
                have: page.len() as u64,
            });
        }
        decode_page(page, layout, off, f)?;
    }
    Ok(())
}

/// Decodes one page.
pub fn decode_page<'a>(
    page: &'a [u8],
    layout: &PageLayout,
    offset: u64,
    f: &mut impl FnMut(Item<'a>),
) -> Result<(), BinaryError> {
    let h = &layout.header;
    let e = layout.endian;
    let bad = |msg: String| BinaryError::Invalid {
        what: "ring buffer page",
        offset,
        msg,
    };
    let mut ts = read_uint(page, 0, 8, e).ok_or_else(|| bad("no page timestamp".into()))?;
    let commit = read_uint(page, h.commit_offset, h.commit_size, e)
        .ok_or_else(|| bad("no commit field".into()))?;
    let size = (commit & COMMIT_MASK) as usize;
    let data_end = h
        .data_offset
        .checked_add(size)
        .filter(|&end| end <= page.len());
    let Some(data_end) = data_end else {
        return Err(bad(format!(
            "commit {size} exceeds the page's {} data bytes",
            page.len().saturating_sub(h.data_offset)
        )));
    };
    if commit & MISSED_EVENTS != 0 {
        let count = if commit & MISSED_STORED != 0 {
            read_uint(page, data_end, h.commit_size, e)
        } else {
            None
        };
        f(Item::Missed { ts, count });
    }
    let data = page.get(h.data_offset..data_end).unwrap_or(&[]);
    let mut pos = 0usize;
    while pos + 4 <= data.len() {
        let hdr = read_uint(data, pos, 4, e).unwrap_or(0) as u32;
        let (type_len, delta) = match e {
            Endian::Little => (hdr & 0x1f, u64::from(hdr >> 5)),
            Endian::Big => (hdr >> 27, u64::from(hdr & ((1 << 27) - 1))),
        };
        let array0 = read_uint(data, pos + 4, 4, e).map(|v| v as u32);
        let at = |pos: usize| offset + (h.data_offset + pos) as u64;
        match type_len {
            TYPE_PADDING => {
                // delta 0: the rest of the page is empty; otherwise a discarded event.
                if delta == 0 {
                    break;
                }
                let Some(len) = array0 else { break };
                ts = ts.wrapping_add(delta);
                pos = pos.saturating_add(4).saturating_add(len as usize);
            }
            TYPE_TIME_EXTEND => {
                let ext = array0.ok_or_else(|| BinaryError::Invalid {
                    what: "ring buffer page",
                    offset: at(pos),
                    msg: "time extend cut short".into(),
                })?;
                ts = ts.wrapping_add((u64::from(ext) << TS_SHIFT) + delta);
                pos += 8;
            }
            TYPE_TIME_STAMP => {
                let ext = array0.ok_or_else(|| BinaryError::Invalid {
                    what: "ring buffer page",
                    offset: at(pos),
                    msg: "time stamp cut short".into(),
                })?;
                ts = (ts & TS_MSB_MASK) | ((u64::from(ext) << TS_SHIFT) + delta);
                pos += 8;
            }
            0 => {
                let Some(len) = array0 else {
                    return Err(BinaryError::Invalid {
                        what: "ring buffer page",
                        offset: at(pos),
                        msg: "event length word cut short".into(),
                    });
                };
                let len = (len as usize).saturating_sub(4);
                let start = pos + 8;
                let raw = data.get(start..start.saturating_add(len)).ok_or_else(|| {
                    BinaryError::Invalid {
                        what: "ring buffer page",
                        offset: at(pos),
                        msg: format!("event of {len} bytes overruns the page data"),
                    }
                })?;
                ts = ts.wrapping_add(delta);
                f(Item::Event { ts, raw });
                pos = start.saturating_add((len + 3) & !3);
            }
            n => {
                let len = n as usize * 4;
                let start = pos + 4;
                let raw = data
                    .get(start..start + len)
                    .ok_or_else(|| BinaryError::Invalid {
                        what: "ring buffer page",
                        offset: at(pos),
                        msg: format!("event of {len} bytes overruns the page data"),
                    })?;
                ts = ts.wrapping_add(delta);
                f(Item::Event { ts, raw });
                pos = start + len;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(long: usize) -> PageLayout {
        PageLayout {
            header: HeaderPage::for_long(long, 64),
            page_size: 64,
            endian: Endian::Little,
        }
    }

    fn page(long: usize, commit: u64, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 64];
        p[..8].copy_from_slice(&1000u64.to_le_bytes());
        p[8..8 + long].copy_from_slice(&commit.to_le_bytes()[..long]);
        p[8 + long..8 + long + body.len()].copy_from_slice(body);
        p
    }

    fn hdr(type_len: u32, delta: u32) -> [u8; 4] {
        (type_len | (delta << 5)).to_le_bytes()
    }

    #[test]
    fn events_extends_and_missed() {
        for long in [4usize, 8] {
            let mut body = Vec::new();
            body.extend(hdr(1, 5)); // 4-byte event at +5
            body.extend(7u32.to_le_bytes());
            body.extend(hdr(30, 1)); // time extend: + (2 << 27) + 1
            body.extend(2u32.to_le_bytes());
            body.extend(hdr(0, 0)); // long form: array[0] = len + 4
            body.extend(12u32.to_le_bytes());
            body.extend([9u8; 8]);
            let p = page(long, body.len() as u64 | MISSED_EVENTS, &body);
            let mut got = Vec::new();
            decode_page(&p, &layout(long), 0, &mut |i| got.push(format!("{i:?}"))).unwrap();
            assert_eq!(got.len(), 3, "{got:?}");
            assert_eq!(got[0], "Missed { ts: 1000, count: None }");
            assert_eq!(got[1], "Event { ts: 1005, raw: [7, 0, 0, 0] }");
            let t = 1005 + (2u64 << 27) + 1;
            assert_eq!(
                got[2],
                format!("Event {{ ts: {t}, raw: [9, 9, 9, 9, 9, 9, 9, 9] }}")
            );
        }
    }

    #[test]
    fn commit_beyond_page_is_an_error() {
        let p = page(8, 4000, &[]);
        let e = decode_page(&p, &layout(8), 4096, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("4096"), "{e}");
    }
}
