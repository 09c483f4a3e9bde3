//! Tracepoint `format` files (`events/<system>/<event>/format`, also stored in trace.dat and in
//! perf's TRACING_DATA) and `events/header_page`.
//!
//! Parses fields (offset, size, signedness, `__data_loc`, `__rel_loc`, fixed arrays), keeps
//! `print fmt` as text and extracts its `__print_symbolic` / `__print_flags` tables, the way
//! libtraceevent's `event-parse.c` does for the parts this project needs. It must never evaluate
//! the print format as C, and never hard-code offsets: layouts differ by kernel.

use std::collections::BTreeMap;

use crate::record::Sym;

/// How a field's bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A plain integer or pointer of `size` bytes.
    Scalar,
    /// A fixed array such as `char comm[16]` (the whole array is `size` bytes).
    Array,
    /// `__data_loc T[] name`: a u32, low 16 bits offset from the record start, high 16 length.
    DataLoc,
    /// `__rel_loc T[] name`: like `__data_loc` but the offset counts from the end of the field.
    RelLoc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The C type as written (`unsigned long`, `__data_loc char[]`, `char`).
    pub ty: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
    pub kind: FieldKind,
}

/// One event's format.
#[derive(Clone, Debug)]
pub struct EventFormat {
    pub system: Sym,
    pub name: Sym,
    pub id: u32,
    /// All fields, common ones first, in file order.
    pub fields: Vec<Field>,
    pub print_fmt: String,
    /// `__print_symbolic(REC->field, {v, "s"}, ...)` tables by field name.
    pub symbolic: BTreeMap<String, Vec<(i64, String)>>,
    /// `__print_flags(REC->field ..., "sep", {v, "s"}, ...)` tables by field name.
    pub flags: BTreeMap<String, Vec<(u64, String)>>,
}

impl EventFormat {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Fields after the `common_*` ones.
    pub fn payload_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields
            .iter()
            .filter(|f| !f.name.starts_with("common_"))
    }

    /// Text for `v` in the symbolic table of `field` (what `__print_symbolic` prints).
    pub fn symbol(&self, field: &str, v: i64) -> Option<&str> {
        self.symbolic
            .get(field)?
            .iter()
            .find(|(k, _)| *k == v)
            .map(|(_, s)| s.as_str())
    }
}

/// Why a format file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("format file `{context}` line {line}: {msg}")]
pub struct FormatError {
    pub context: String,
    pub line: usize,
    pub msg: String,
}

/// Parses one format file. `system` names the directory it came from (trace.dat stores it beside
/// the file; `ftrace` for the ftrace formats).
pub fn parse_format(text: &str, system: &str) -> Result<EventFormat, FormatError> {
    let mut name: Option<&str> = None;
    let mut id: Option<u32> = None;
    let mut fields = Vec::new();
    let mut print_fmt = String::new();
    let err = |line: usize, msg: String, name: Option<&str>| FormatError {
        context: format!("{system}/{}", name.unwrap_or("?")),
        line,
        msg,
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if let Some(v) = line.strip_prefix("name:") {
            name = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("ID:") {
            id = Some(
                v.trim()
                    .parse()
                    .map_err(|_| err(line_no, format!("bad ID `{}`", v.trim()), name))?,
            );
        } else if let Some(v) = line.strip_prefix("field:") {
            // Old ftrace formats have `field special:`; modern ones `field:`.
            fields.push(parse_field(v).map_err(|m| err(line_no, m, name))?);
        } else if let Some(v) = line.strip_prefix("field special:") {
            fields.push(parse_field(v).map_err(|m| err(line_no, m, name))?);
        } else if let Some(v) = line.strip_prefix("print fmt:") {
            print_fmt = v.trim().to_string();
        }
        // `format:` and blank lines carry nothing.
    }
    let name = name.ok_or_else(|| err(1, "no `name:` line".into(), None))?;
    let id = id.ok_or_else(|| err(1, "no `ID:` line".into(), Some(name)))?;
    let symbolic = extract_tables(&print_fmt, "__print_symbolic(")
        .into_iter()
        .map(|(f, t)| (f, t.into_iter().map(|(v, s)| (v as i64, s)).collect()))
        .collect();
    let flags = extract_tables(&print_fmt, "__print_flags(")
        .into_iter()
        .map(|(f, t)| (f, t.into_iter().map(|(v, s)| (v as u64, s)).collect()))
        .collect();
    Ok(EventFormat {
        system: Sym::from(system),
        name: Sym::from(name),
        id,
        fields,
        print_fmt,
        symbolic,
        flags,
    })
}

/// `TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;` (signed is missing on very old kernels).
fn parse_field(v: &str) -> Result<Field, String> {
    let mut parts = v.split(';').map(str::trim);
    let decl = parts.next().unwrap_or("").trim();
    let (mut offset, mut size, mut signed) = (None, None, None);
    for p in parts {
        if let Some(x) = p.strip_prefix("offset:") {
            offset = Some(
                x.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad offset `{x}`"))?,
            );
        } else if let Some(x) = p.strip_prefix("size:") {
            size = Some(
                x.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad size `{x}`"))?,
            );
        } else if let Some(x) = p.strip_prefix("signed:") {
            signed = Some(x.trim() == "1");
        }
    }
    let offset = offset.ok_or_else(|| format!("field `{decl}` has no offset"))?;
    let size = size.ok_or_else(|| format!("field `{decl}` has no size"))?;
    let (mut d, mut is_array) = (decl, false);
    if d.ends_with(']') {
        if let Some(open) = d.rfind('[') {
            d = d.get(..open).unwrap_or("").trim_end();
            is_array = true;
        }
    }
    let name_start = d
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let name = d.get(name_start..).unwrap_or("");
    if name.is_empty() {
        return Err(format!("field declaration `{decl}` has no name"));
    }
    let ty = d.get(..name_start).unwrap_or("").trim().to_string();
    let kind = if ty.starts_with("__data_loc") {
        FieldKind::DataLoc
    } else if ty.starts_with("__rel_loc") {
        FieldKind::RelLoc
    } else if is_array {
        FieldKind::Array
    } else {
        FieldKind::Scalar
    };
    let signed = signed.unwrap_or(false);
    Ok(Field {
        name: name.to_string(),
        ty,
        offset,
        size,
        signed,
        kind,
    })
}

/// Finds every `helper(REC->field ..., {v, "s"}, ...)` in a print fmt and returns the tables by
/// field name. Entries whose value is not a plain integer expression are skipped.
fn extract_tables(fmt: &str, helper: &str) -> BTreeMap<String, Vec<(i128, String)>> {
    let mut out: BTreeMap<String, Vec<(i128, String)>> = BTreeMap::new();
    let mut rest = fmt;
    while let Some(at) = rest.find(helper) {
        let after = rest.get(at + helper.len()..).unwrap_or("");
        let Some(body) = balanced(after) else { break };
        rest = after.get(body.len()..).unwrap_or("");
        let field = body
            .find("REC->")
            .and_then(|p| body.get(p + 5..))
            .map(|s| {
                s.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .unwrap_or_default();
        if field.is_empty() {
            continue;
        }
        let mut table = Vec::new();
        let mut b = body;
        while let Some(open) = b.find('{') {
            let Some(close) = b.get(open..).and_then(|s| s.find('}')) else {
                break;
            };
            let entry = b.get(open + 1..open + close).unwrap_or("");
            b = b.get(open + close + 1..).unwrap_or("");
            let Some((v, s)) = entry.split_once(',') else {
                continue;
            };
            let s = s.trim();
            let (Some(v), Some(text)) = (
                eval_int(v),
                s.strip_prefix('"').and_then(|s| s.strip_suffix('"')),
            ) else {
                continue;
            };
            table.push((v, text.to_string()));
        }
        out.entry(field).or_default().extend(table);
    }
    out
}

/// The text up to (not including) the `)` closing an already-open parenthesis, skipping string
/// literals.
fn balanced(s: &str) -> Option<&str> {
    let mut depth = 1usize;
    let mut in_str = false;
    let mut prev = '\0';
    for (i, c) in s.char_indices() {
        if in_str {
            if c == '"' && prev != '\\' {
                in_str = false;
            }
        } else {
            match c {
                '"' => in_str = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return s.get(..i);
                    }
                }
                _ => {}
            }
        }
        prev = c;
    }
    None
}

/// Evaluates the integer expressions found in symbolic tables: literals (dec/hex, `UL` suffixes),
/// parentheses, casts are not needed in practice; `|`, `<<`, `+`, `-` and unary minus are.
pub fn eval_int(s: &str) -> Option<i128> {
    let toks = tokenize(s)?;
    let mut p = 0usize;
    let v = expr_or(&toks, &mut p)?;
    (p == toks.len()).then_some(v)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(i128),
    Op(&'static str),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while let Some(&c) = b.get(i) {
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                i += 1;
            }
            let lit = s.get(start..i)?.trim_end_matches(['u', 'U', 'l', 'L']);
            let v = if let Some(h) = lit.strip_prefix("0x").or_else(|| lit.strip_prefix("0X")) {
                i128::from_str_radix(h, 16).ok()?
            } else {
                lit.parse::<i128>().ok()?
            };
            out.push(Tok::Num(v));
        } else {
            let two = s.get(i..i + 2);
            if two == Some("<<") {
                out.push(Tok::Op("<<"));
                i += 2;
                continue;
            }
            let op = match c {
                b'(' => "(",
                b')' => ")",
                b'|' => "|",
                b'+' => "+",
                b'-' => "-",
                _ => return None,
            };
            out.push(Tok::Op(op));
            i += 1;
        }
    }
    Some(out)
}

fn expr_or(t: &[Tok], p: &mut usize) -> Option<i128> {
    let mut v = expr_shift(t, p)?;
    while t.get(*p) == Some(&Tok::Op("|")) {
        *p += 1;
        v |= expr_shift(t, p)?;
    }
    Some(v)
}

fn expr_shift(t: &[Tok], p: &mut usize) -> Option<i128> {
    let mut v = expr_add(t, p)?;
    while t.get(*p) == Some(&Tok::Op("<<")) {
        *p += 1;
        let r = expr_add(t, p)?;
        v = v.checked_shl(u32::try_from(r).ok().filter(|r| *r < 127)?)?;
    }
    Some(v)
}

fn expr_add(t: &[Tok], p: &mut usize) -> Option<i128> {
    let mut v = unary(t, p)?;
    loop {
        match t.get(*p) {
            Some(Tok::Op("+")) => {
                *p += 1;
                v = v.checked_add(unary(t, p)?)?;
            }
            Some(Tok::Op("-")) => {
                *p += 1;
                v = v.checked_sub(unary(t, p)?)?;
            }
            _ => return Some(v),
        }
    }
}

fn unary(t: &[Tok], p: &mut usize) -> Option<i128> {
    match t.get(*p)? {
        Tok::Op("-") => {
            *p += 1;
            unary(t, p)?.checked_neg()
        }
        Tok::Op("(") => {
            *p += 1;
            let v = expr_or(t, p)?;
            if t.get(*p) != Some(&Tok::Op(")")) {
                return None;
            }
            *p += 1;
            Some(v)
        }
        Tok::Num(n) => {
            *p += 1;
            Some(*n)
        }
        Tok::Op(_) => None,
    }
}

/// `events/header_page`: where `commit` and `data` sit in a ring-buffer page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderPage {
    pub timestamp_size: usize,
    pub commit_offset: usize,
    /// 8 on 64-bit kernels, 4 on 32-bit ones.
    pub commit_size: usize,
    pub data_offset: usize,
    /// Bytes of data space in a page (`field: char data` size).
    pub data_size: usize,
}

impl HeaderPage {
    /// The layout for a kernel of `long_size` (used when a capture does not carry header_page).
    pub fn for_long(long_size: usize, page_size: usize) -> Self {
        let data_offset = 8 + long_size;
        HeaderPage {
            timestamp_size: 8,
            commit_offset: 8,
            commit_size: long_size,
            data_offset,
            data_size: page_size.saturating_sub(data_offset),
        }
    }
}

/// Parses `events/header_page`. `timestamp`, `commit` and `data` are required.
pub fn parse_header_page(text: &str) -> Result<HeaderPage, FormatError> {
    let mut ts = None;
    let mut commit = None;
    let mut data = None;
    for (i, raw) in text.lines().enumerate() {
        let Some(v) = raw.trim().strip_prefix("field:") else {
            continue;
        };
        let f = parse_field(v).map_err(|msg| FormatError {
            context: "header_page".into(),
            line: i + 1,
            msg,
        })?;
        match f.name.as_str() {
            "timestamp" => ts = Some(f),
            "commit" => commit = Some(f),
            "data" => data = Some(f),
            _ => {}
        }
    }
    let missing = |what: &str| FormatError {
        context: "header_page".into(),
        line: 0,
        msg: format!("no `{what}` field"),
    };
    let ts = ts.ok_or_else(|| missing("timestamp"))?;
    let commit = commit.ok_or_else(|| missing("commit"))?;
    let data = data.ok_or_else(|| missing("data"))?;
    if !matches!(commit.size, 4 | 8) || ts.size != 8 {
        return Err(FormatError {
            context: "header_page".into(),
            line: 0,
            msg: format!(
                "unsupported sizes: timestamp {} commit {}",
                ts.size, commit.size
            ),
        });
    }
    Ok(HeaderPage {
        timestamp_size: ts.size,
        commit_offset: commit.offset,
        commit_size: commit.size,
        data_offset: data.offset,
        data_size: data.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLB: &str = "name: tlb_flush\nID: 188\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int reason;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long pages;\toffset:16;\tsize:8;\tsigned:0;\n\nprint fmt: \"pages:%ld reason:%s (%d)\", REC->pages, __print_symbolic(REC->reason, { 0, \"flush on task switch\" }, { 1, \"remote shootdown\" }, { 2, \"local shootdown\" }, { 3, \"local MM shootdown\" }, { 4, \"remote IPI send\" }, { 5, \"remote wrong CPU\" }), REC->reason\n";

    #[test]
    fn parses_tlb_flush_format() {
        let f = parse_format(TLB, "tlb").unwrap();
        assert_eq!(&*f.name, "tlb_flush");
        assert_eq!(f.id, 188);
        let pages = f.field("pages").unwrap();
        assert_eq!((pages.offset, pages.size, pages.signed), (16, 8, false));
        assert!(f.field("reason").unwrap().signed);
        assert_eq!(f.symbol("reason", 4), Some("remote IPI send"));
        assert_eq!(f.symbol("reason", 6), None);
        assert_eq!(f.payload_fields().count(), 2);
    }

    #[test]
    fn parses_data_loc_rel_loc_and_arrays() {
        let t = "name: x\nID: 7\nformat:\n\tfield:__data_loc cpumask_t cpumask;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:__rel_loc char[] s;\toffset:12;\tsize:4;\tsigned:0;\n\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;\n\tfield:void * callsite;\toffset:32;\tsize:8;\tsigned:0;\nprint fmt: \"\"\n";
        let f = parse_format(t, "s").unwrap();
        assert_eq!(f.field("cpumask").unwrap().kind, FieldKind::DataLoc);
        assert_eq!(f.field("s").unwrap().kind, FieldKind::RelLoc);
        assert_eq!(f.field("comm").unwrap().kind, FieldKind::Array);
        assert_eq!(f.field("callsite").unwrap().ty, "void *");
    }

    #[test]
    fn rejects_missing_offset_with_line() {
        let t = "name: x\nID: 7\nformat:\n\tfield:int a;\tsize:4;\n";
        let e = parse_format(t, "s").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.msg.contains("offset"), "{e}");
    }

    #[test]
    fn flags_tables_with_expressions() {
        let t = "name: x\nID: 7\nformat:\n\tfield:long prev_state;\toffset:8;\tsize:8;\tsigned:1;\nprint fmt: \"%s\", (REC->prev_state & ((((0x00000000 | 0x00000001) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & 3, \"|\", { 0x00000001, \"S\" }, { (1UL << 1), \"D\" }) : \"R\"\n";
        let f = parse_format(t, "sched").unwrap();
        assert_eq!(
            f.flags["prev_state"],
            vec![(1, "S".to_string()), (2, "D".to_string())]
        );
    }

    #[test]
    fn header_page_64_and_32() {
        let h64 = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";
        let h = parse_header_page(h64).unwrap();
        assert_eq!((h.commit_size, h.data_offset, h.data_size), (8, 16, 4080));
        let h32 = h64
            .replace("size:8;\tsigned:1", "size:4;\tsigned:1")
            .replace("offset:16;\tsize:4080", "offset:12;\tsize:4084");
        let h = parse_header_page(&h32).unwrap();
        assert_eq!((h.commit_size, h.data_offset), (4, 12));
        assert_eq!(HeaderPage::for_long(4, 4096), h);
    }
}
