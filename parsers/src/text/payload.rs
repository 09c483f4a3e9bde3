//! Payload decoders: an event's printed `TP_printk` text (or a libtraceevent plugin's rewrite of
//! it) into a typed [`Event`].
//!
//! The text is not a key=value grammar: values contain spaces (`flags=Ma bd `, comms,
//! `reason:local MM shootdown (3)`), separators are `=` or `:` (`tlb_flush` from the kernel vs
//! trace-cmd's `plugin_tlb.c`), `%pS` prints symbols (`callsite=foo+0x20/0x60`), and field sets
//! changed across kernel versions. A value therefore runs until the next ` ident=`/` ident:`.
//! Decoders look fields up by name, so added or reordered fields are tolerated; a missing
//! required field is an error naming what was expected. Must never panic or know the model.

use super::PayloadForm;
use crate::intern::{FxHashMap, Interner};
use crate::num::{
    addr_or_symbol, auto_u64, dec_i32, dec_i64, dec_u32, dec_u64, hex_u64, is_symbol, trim,
    trim_end, trim_start,
};
use crate::record::{Comm, Event, IpiKind, SysArgs, Syscall, TlbReason, Vmscan};

/// What a payload was expected to look like (for the error message).
pub type Expected = &'static str;

/// Which decoder an event name uses, cached per name so the dispatch is one hash lookup.
#[derive(Clone)]
enum Kind {
    PageFault,
    TlbFlush,
    IpiCpu,
    IpiMask,
    CsdQueue,
    MigrationPte,
    MigratePages,
    MigratePagesStart,
    LruInsertion,
    LruActivate,
    Fork,
    Exec,
    Exit,
    Switch,
    MigrateTask,
    Newtask,
    ExitMmap,
    RssStat,
    Filemap,
    Damon,
    CollapseHugePage,
    /// `call_function_entry` / `call_function_single_entry` (IPI receipts).
    CallFunction,
    /// A prefixed family (vmscan, compaction, hugetlbfs, khugepaged, syscalls).
    Family,
    /// No typed decoder: the interned name.
    Other(crate::record::Sym),
}

/// Decodes payloads, interning repeated strings.
#[derive(Default)]
pub struct Decoder {
    interner: Interner,
    kinds: FxHashMap<Box<[u8]>, Kind>,
}

#[inline]
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

#[inline]
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// End of a value starting at `start`: the next space that is followed by `ident=` or `ident:`.
#[inline]
fn value_end(p: &[u8], start: usize) -> usize {
    let tail = p.get(start..).unwrap_or(&[]);
    // Values are short: a word-at-a-time scan beats a memchr call per value.
    let mut from = 0;
    while let Some(rel) = tail.get(from..).and_then(|t| crate::num::find1(t, b' ')) {
        let sp = from + rel;
        let rest = tail.get(sp + 1..).unwrap_or(&[]);
        if rest.first().is_some_and(|&c| is_ident_start(c)) {
            let n = rest.iter().take_while(|&&c| is_ident(c)).count();
            if matches!(rest.get(n), Some(b'=' | b':')) {
                return start + sp;
            }
        }
        from = sp + 1;
    }
    p.len()
}

/// Sequential field lookup: tries the current position first (fields usually come in order),
/// then searches the whole payload.
struct Fields<'a> {
    p: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(p: &'a [u8]) -> Self {
        Fields { p, pos: 0 }
    }

    #[inline]
    fn value_at(&mut self, at: usize, key: &[u8], word: bool) -> Option<&'a [u8]> {
        let sep_i = at + key.len();
        match self.p.get(sep_i) {
            Some(b'=' | b':') => {}
            _ => return None,
        }
        let mut vs = sep_i + 1;
        // `name: value` style (syscalls, some printk formats): skip one space.
        if self.p.get(sep_i) == Some(&b':') && self.p.get(vs) == Some(&b' ') {
            vs += 1;
        }
        let ve = if word {
            let tail = self.p.get(vs..).unwrap_or(&[]);
            vs + crate::num::find1(tail, b' ').unwrap_or(tail.len())
        } else {
            value_end(self.p, vs)
        };
        self.pos = (ve + 1).min(self.p.len());
        Some(trim_end(self.p.get(vs..ve)?))
    }

    #[inline]
    fn lookup(&mut self, key: &[u8], word: bool) -> Option<&'a [u8]> {
        if self.p.get(self.pos..).is_some_and(|t| has_prefix(t, key)) {
            if let Some(v) = self.value_at(self.pos, key, word) {
                return Some(v);
            }
        }
        // Every occurrence of the key's first byte, word-at-a-time, then a prefix compare.
        let first = *key.first()?;
        let mut from = 0;
        while let Some(rel) = self.p.get(from..).and_then(|t| crate::num::find1(t, first)) {
            let at = from + rel;
            from = at + 1;
            if !has_prefix(self.p.get(at..).unwrap_or(&[]), key) {
                continue;
            }
            let boundary = at == 0 || matches!(self.p.get(at - 1), Some(b' ' | b',' | b'('));
            if boundary {
                if let Some(v) = self.value_at(at, key, word) {
                    return Some(v);
                }
            }
        }
        None
    }

    /// The value of `key`, which may contain spaces (it runs to the next ` ident=`), trimmed
    /// at the end; `None` when the key is absent.
    #[inline]
    fn get(&mut self, key: &[u8]) -> Option<&'a [u8]> {
        self.lookup(key, false)
    }

    /// The value of `key` up to the next space: numbers, hex, symbols, masks.
    #[inline]
    fn word(&mut self, key: &[u8]) -> Option<&'a [u8]> {
        self.lookup(key, true)
    }
}

/// `hay.starts_with(needle)` without a `memcmp` call (needles here are a few bytes).
#[inline]
fn has_prefix(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay.iter().zip(needle).all(|(a, b)| a == b)
}

/// First position of `needle` in `hay`. Payloads are short, so a word-at-a-time scan for the
/// first byte plus a compare beats building a `memmem::Finder` per lookup.
#[inline]
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(rel) = hay.get(from..).and_then(|t| crate::num::find1(t, first)) {
        let at = from + rel;
        if has_prefix(hay.get(at..).unwrap_or(&[]), needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Symbol name of a `%pS` value: `foo+0x20/0x60` -> `foo`.
fn symbol_name(v: &[u8]) -> &[u8] {
    let end = v.iter().position(|&c| c == b'+').unwrap_or(v.len());
    v.get(..end).unwrap_or(v)
}

/// `include/trace/events/ipi.h` callbacks, classified (see [`IpiKind`]) by the rule shared with
/// the binary readers ([`crate::fields::classify_ipi`]): a single-target call IPI counts as a
/// TLB flush only when its callsite is a flush path, since wakeups use the same callback.
pub fn classify_ipi(callsite: Option<&[u8]>, callback: Option<&[u8]>) -> IpiKind {
    let text = |v: &[u8]| std::str::from_utf8(symbol_name(v)).ok().map(str::to_owned);
    crate::fields::classify_ipi(
        callsite.and_then(text).as_deref(),
        callback.and_then(text).as_deref(),
    )
}

/// Parses a `__cpumask` value: comma-separated 32-bit hex words, most significant first
/// (`00000000,00000003`, what `%*pb` prints for a mask whose size is a multiple of 32 bits), or
/// a range list (`0-1,4`, with `options/bitmask-list`). A part that is not exactly 8 hex digits
/// means the range-list form. Returns (lowest 128 CPUs, popcount of all CPUs).
pub fn parse_cpumask(v: &[u8]) -> Option<(u128, u32)> {
    let v = trim(v);
    if v.is_empty() {
        return None;
    }
    let hex_words = v
        .split(|&c| c == b',')
        .all(|w| w.len() == 8 && w.iter().all(|c| c.is_ascii_hexdigit()));
    let mut mask: u128 = 0;
    let mut count: u32 = 0;
    if hex_words {
        for (k, w) in v.rsplit(|&c| c == b',').enumerate() {
            let word = hex_u64(w)? as u32;
            count = count.checked_add(word.count_ones())?;
            if k < 4 {
                mask |= (word as u128) << (32 * k);
            }
        }
        return Some((mask, count));
    }
    for part in v.split(|&c| c == b',') {
        let (a, b) = match memchr::memchr(b'-', part) {
            Some(d) => (dec_u32(part.get(..d)?)?, dec_u32(part.get(d + 1..)?)?),
            None => {
                let a = dec_u32(part)?;
                (a, a)
            }
        };
        if b < a || b >= 1 << 20 {
            return None;
        }
        count = count.checked_add(b - a + 1)?;
        for cpu in a..=b.min(127) {
            mask |= 1u128 << cpu;
        }
    }
    Some((mask, count))
}

/// The decoder of a name with a typed grammar of its own (not a prefixed family), if any.
#[inline]
fn typed_kind(name: &[u8]) -> Option<Kind> {
    Some(match name {
        b"page_fault_user" | b"page_fault_kernel" => Kind::PageFault,
        b"tlb_flush" => Kind::TlbFlush,
        b"ipi_send_cpu" => Kind::IpiCpu,
        b"ipi_send_cpumask" => Kind::IpiMask,
        b"csd_queue_cpu" => Kind::CsdQueue,
        b"set_migration_pte" | b"remove_migration_pte" => Kind::MigrationPte,
        b"mm_migrate_pages" => Kind::MigratePages,
        b"mm_migrate_pages_start" => Kind::MigratePagesStart,
        b"mm_lru_insertion" => Kind::LruInsertion,
        b"mm_lru_activate" => Kind::LruActivate,
        b"sched_process_fork" => Kind::Fork,
        b"sched_process_exec" => Kind::Exec,
        b"sched_process_exit" => Kind::Exit,
        b"sched_switch" => Kind::Switch,
        b"sched_migrate_task" => Kind::MigrateTask,
        b"task_newtask" => Kind::Newtask,
        b"exit_mmap" => Kind::ExitMmap,
        b"rss_stat" => Kind::RssStat,
        b"mm_filemap_add_to_page_cache" | b"mm_filemap_delete_from_page_cache" => Kind::Filemap,
        b"damon_aggregated" => Kind::Damon,
        b"mm_collapse_huge_page" => Kind::CollapseHugePage,
        b"call_function_entry" | b"call_function_single_entry" => Kind::CallFunction,
        _ => return None,
    })
}

macro_rules! req {
    ($e:expr, $what:expr) => {
        match $e {
            Some(v) => v,
            None => return Err($what),
        }
    };
}

/// An optional field: absent gives the default, present but not of its format (`order=xyz`)
/// is a payload error, never a silent 0.
macro_rules! opt {
    ($word:expr, $parse:expr, $what:expr) => {
        match $word {
            None => Default::default(),
            Some(w) => req!($parse(w), $what),
        }
    };
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Interns a string (exposed so readers can share one table).
    pub fn intern(&mut self, s: &[u8]) -> crate::record::Sym {
        self.interner.intern(s)
    }

    #[inline]
    fn kind_of(&mut self, name: &[u8]) -> Kind {
        // Typed names first: a match on constant byte strings compiles to a length switch and
        // inline compares, cheaper than hashing the name; only other names use the cache.
        if let Some(k) = typed_kind(name) {
            return k;
        }
        if let Some(k) = self.kinds.get(name) {
            return k.clone();
        }
        let k = match name {
            _ if [
                &b"mm_vmscan_"[..],
                b"mm_compaction_",
                b"hugetlbfs_",
                b"mm_khugepaged_",
                b"mm_collapse_huge_page",
                b"sys_enter_",
                b"sys_exit_",
            ]
            .iter()
            .any(|p| name.starts_with(p)) =>
            {
                Kind::Family
            }
            _ => Kind::Other(self.interner.intern(name)),
        };
        // Bounded like the interner: garbage names are classified but not remembered.
        if self.kinds.len() < Interner::CAP {
            self.kinds.insert(Box::from(name), k.clone());
        }
        k
    }

    /// Decodes one event. `name` has no system prefix. Unknown names become `Event::Other`.
    pub fn decode(&mut self, name: &[u8], p: &[u8], form: PayloadForm) -> Result<Event, Expected> {
        match form {
            PayloadForm::SysEnterText => return self.sys_enter_text(name, p),
            PayloadForm::SysExitText => {
                let sys = name.strip_prefix(b"sys_");
                let sys = req!(sys, "a syscall event named `sys_<name> -> <hex>`");
                return self.sys_exit(sys, p);
            }
            PayloadForm::Normal => {}
        }
        let mut f = Fields::new(p);
        let ev = match self.kind_of(name) {
            Kind::PageFault => {
                const E: Expected = "`address=<addr> ip=<addr> error_code=0x<hex>`";
                const EU: Expected =
                    "`address=0x<hex> ip=0x<hex> error_code=0x<hex>` (user addresses print as hex)";
                let user = name == b"page_fault_user";
                let address = req!(f.word(b"address"), E);
                let ip = req!(f.word(b"ip"), E);
                let error_code = req!(f.word(b"error_code").and_then(hex_u64), E);
                // `%ps` prints a user address as hex (no symbol); a kernel one may be a symbol,
                // kept as 0. Anything else (`0xZZQ`) is not a value of this field.
                let value = |w: &[u8]| -> Result<u64, Expected> {
                    match (addr_or_symbol(w), user) {
                        (Some(v), _) => Ok(v),
                        (None, false) if is_symbol(w) => Ok(0),
                        (None, false) => Err(E),
                        (None, true) => Err(EU),
                    }
                };
                Event::PageFault {
                    user,
                    address: value(address)?,
                    ip: value(ip)?,
                    error_code,
                }
            }
            Kind::TlbFlush => {
                const E: Expected = "`pages:<n> reason:<text> (<code>)` (or `pages=`/`reason=`)";
                let pages = req!(f.word(b"pages").and_then(dec_i64), E);
                let r = trim(req!(f.get(b"reason"), E));
                let (text, code) = match (r.strip_suffix(b")"), memchr::memrchr(b'(', r)) {
                    (Some(_), Some(open)) => {
                        let code = req!(r.get(open + 1..r.len() - 1).and_then(dec_i32), E);
                        (trim(r.get(..open).unwrap_or(&[])), Some(code))
                    }
                    // No `(code)`: the text of either kernel names it (kernels::TLB_REASONS).
                    _ => (
                        r,
                        std::str::from_utf8(r)
                            .ok()
                            .and_then(crate::kernels::tlb_reason_code),
                    ),
                };
                Event::TlbFlush {
                    pages,
                    reason: TlbReason {
                        code,
                        text: self.interner.intern(text),
                    },
                }
            }
            Kind::IpiCpu => {
                const E: Expected = "`cpu=<n> callsite=<sym> callback=<sym>`";
                let target = req!(f.word(b"cpu").and_then(dec_u32), E);
                let kind = classify_ipi(f.get(b"callsite"), f.get(b"callback"));
                Event::IpiSendCpu { target, kind }
            }
            Kind::CsdQueue => {
                const E: Expected = "`cpu=<n> callsite=<sym> func=<sym> csd=<ptr>`";
                let target = req!(f.word(b"cpu").and_then(dec_u32), E);
                let kind = classify_ipi(f.get(b"callsite"), f.get(b"func"));
                Event::CsdQueueCpu { target, kind }
            }
            Kind::IpiMask => {
                const E: Expected =
                    "`cpumask=<hex words or cpu list> callsite=<sym> callback=<sym>`";
                let (mask, targets) = req!(f.word(b"cpumask").and_then(parse_cpumask), E);
                let kind = classify_ipi(f.get(b"callsite"), f.get(b"callback"));
                Event::IpiSendCpumask {
                    mask,
                    targets,
                    kind,
                }
            }
            Kind::MigrationPte => {
                const E: Expected = "`addr=<hex>, pte=<hex> order=<n>`";
                let addr = req!(f.word(b"addr").map(strip_comma).and_then(hex_u64), E);
                let pte = req!(f.word(b"pte").map(strip_comma).and_then(hex_u64), E);
                let order: u32 = opt!(f.word(b"order"), dec_u32, E);
                if name == b"set_migration_pte" {
                    Event::SetMigrationPte { addr, pte, order }
                } else {
                    Event::RemoveMigrationPte { addr, pte, order }
                }
            }
            Kind::MigratePages => {
                const E: Expected = "`nr_succeeded=<n> nr_failed=<n> ... mode=<m> reason=<r>`";
                let succeeded = req!(
                    f.word(b"nr_succeeded")
                        .or_else(|| f.word(b"succeeded"))
                        .and_then(dec_u64),
                    E
                );
                let failed = req!(
                    f.word(b"nr_failed")
                        .or_else(|| f.word(b"failed"))
                        .and_then(dec_u64),
                    E
                );
                let mode = self.interner.intern(req!(f.word(b"mode"), E));
                let reason = self.interner.intern(req!(f.get(b"reason"), E));
                Event::MmMigratePages {
                    succeeded,
                    failed,
                    mode,
                    reason,
                }
            }
            Kind::MigratePagesStart => {
                const E: Expected = "`mode=<m> reason=<r>`";
                let mode = self.interner.intern(req!(f.word(b"mode"), E));
                let reason = self.interner.intern(req!(f.get(b"reason"), E));
                Event::MmMigratePagesStart { mode, reason }
            }
            Kind::LruInsertion => {
                const E: Expected = "`folio=<p> pfn=<0xhex|dec> lru=<n> flags=<chars>`";
                let pfn = req!(f.word(b"pfn").and_then(auto_u64), E);
                let lru = req!(f.word(b"lru").and_then(dec_i32), E);
                let flags = self.interner.intern(f.get(b"flags").unwrap_or(&[]));
                Event::MmLruInsertion { pfn, lru, flags }
            }
            Kind::LruActivate => {
                const E: Expected = "`folio=<p> pfn=<0xhex|dec>`";
                Event::MmLruActivate {
                    pfn: req!(f.word(b"pfn").and_then(auto_u64), E),
                }
            }
            Kind::Fork => {
                const E: Expected = "`comm=<c> pid=<n> child_comm=<c> child_pid=<n>`";
                let parent_pid = req!(f.word(b"pid").and_then(dec_i32), E);
                let child_comm = Comm::new(req!(f.get(b"child_comm"), E));
                let child_pid = req!(f.word(b"child_pid").and_then(dec_i32), E);
                Event::SchedProcessFork {
                    parent_pid,
                    child_pid,
                    child_comm,
                }
            }
            Kind::Exec => {
                const E: Expected = "`filename=<f> pid=<n> old_pid=<n>`";
                let pid = req!(f.word(b"pid").and_then(dec_i32), E);
                let old_pid = req!(f.word(b"old_pid").and_then(dec_i32), E);
                Event::SchedProcessExec { pid, old_pid }
            }
            Kind::Exit => {
                const E: Expected = "`comm=<c> pid=<n> prio=<n>`";
                Event::SchedProcessExit {
                    pid: req!(f.word(b"pid").and_then(dec_i32), E),
                }
            }
            Kind::Switch => return self.sched_switch(p),
            Kind::MigrateTask => {
                const E: Expected = "`comm=<c> pid=<n> prio=<n> orig_cpu=<n> dest_cpu=<n>`";
                let pid = req!(f.word(b"pid").and_then(dec_i32), E);
                let orig_cpu = req!(f.word(b"orig_cpu").and_then(dec_u32), E);
                let dest_cpu = req!(f.word(b"dest_cpu").and_then(dec_u32), E);
                Event::SchedMigrateTask {
                    pid,
                    orig_cpu,
                    dest_cpu,
                }
            }
            Kind::Newtask => {
                const E: Expected = "`pid=<n> comm=<c> clone_flags=<hex> oom_score_adj=<n>`";
                let pid = req!(f.word(b"pid").and_then(dec_i32), E);
                let clone_flags = req!(f.word(b"clone_flags").and_then(hex_u64), E);
                Event::TaskNewtask { pid, clone_flags }
            }
            Kind::ExitMmap => Event::ExitMmap,
            Kind::RssStat => {
                const E: Expected = "`mm_id=<n> curr=<0|1> type=<MM_*> size=<n>B`";
                let mm_id = req!(f.word(b"mm_id").and_then(dec_u64), E);
                let curr = req!(f.word(b"curr").and_then(dec_u32), E) != 0;
                let member = self
                    .interner
                    .intern(req!(f.word(b"type").or_else(|| f.word(b"member")), E));
                let size_v = req!(f.word(b"size"), E);
                let size = req!(dec_i64(size_v.strip_suffix(b"B").unwrap_or(size_v)), E);
                Event::RssStat {
                    mm_id,
                    curr,
                    member,
                    size,
                }
            }
            Kind::Filemap => {
                const E: Expected =
                    "`dev <maj>:<min> ino <hex> pfn=<0xhex|dec> ofs=<n> [order=<n>]`";
                let ino_at = req!(find(p, b"ino "), E);
                let ino_tok = p.get(ino_at + 4..).unwrap_or(&[]);
                let ino_end = ino_tok
                    .iter()
                    .position(|&c| c == b' ')
                    .unwrap_or(ino_tok.len());
                let ino = req!(ino_tok.get(..ino_end).and_then(hex_u64), E);
                let pfn = req!(f.word(b"pfn").and_then(auto_u64), E);
                let ofs = req!(f.word(b"ofs").and_then(dec_u64), E);
                let order: u32 = opt!(f.word(b"order"), dec_u32, E);
                Event::Filemap {
                    add: name == b"mm_filemap_add_to_page_cache",
                    pfn,
                    ino,
                    index: ofs >> 12,
                    order,
                }
            }
            Kind::Damon => return damon(p),
            Kind::CollapseHugePage => {
                const E: Expected = "`mm=<hex>, isolated=<n>, status=<name>`";
                let mm = req!(f.word(b"mm"), E);
                let mm = req!(hex_u64(mm.strip_suffix(b",").unwrap_or(mm)), E);
                let status = req!(f.word(b"status"), E);
                let status = self
                    .interner
                    .intern(status.strip_suffix(b",").unwrap_or(status));
                Event::CollapseHugePage { mm, status }
            }
            Kind::CallFunction => {
                const E: Expected = "`vector=<n>`";
                let vector = req!(f.word(b"vector").and_then(dec_u32), E);
                Event::CallFunctionEntry {
                    single: name == b"call_function_single_entry",
                    vector,
                }
            }
            Kind::Family => return self.family(name, p, &mut f),
            // A kprobe event has a name of the user's choosing: it is known by its payload.
            Kind::Other(name) if crate::kernels::is_kprobe_payload(p) => {
                return Ok(Event::Kprobe { name })
            }
            Kind::Other(name) => return Ok(Event::Other { name }),
        };
        Ok(ev)
    }

    fn family(&mut self, name: &[u8], p: &[u8], f: &mut Fields<'_>) -> Result<Event, Expected> {
        if let Some(rest) = name.strip_prefix(b"mm_vmscan_") {
            return self.vmscan(rest, f);
        }
        if let Some(rest) = name.strip_prefix(b"mm_compaction_") {
            return Ok(Event::Compaction {
                name: self.interner.intern(rest),
            });
        }
        if let Some(rest) = name.strip_prefix(b"hugetlbfs_") {
            return Ok(Event::Hugetlbfs {
                name: self.interner.intern(rest),
            });
        }
        if name.starts_with(b"mm_khugepaged_") || name.starts_with(b"mm_collapse_huge_page") {
            return Ok(Event::Khugepaged {
                name: self.interner.intern(name),
            });
        }
        if let Some(sys) = name.strip_prefix(b"sys_enter_") {
            return self.sys_enter(sys, p.strip_prefix(b"(").unwrap_or(p));
        }
        if let Some(sys) = name.strip_prefix(b"sys_exit_") {
            return self.sys_exit(sys, p);
        }
        Ok(Event::Other {
            name: self.interner.intern(name),
        })
    }

    fn vmscan(&mut self, rest: &[u8], f: &mut Fields<'_>) -> Result<Event, Expected> {
        let v = match rest {
            b"kswapd_wake" => {
                const E: Expected = "`nid=<n> [zid=<n>] order=<n>`";
                let nid = req!(f.word(b"nid").and_then(dec_i32), E);
                let order = req!(f.word(b"order").and_then(dec_i32), E);
                Vmscan::KswapdWake { nid, order }
            }
            b"kswapd_sleep" => Vmscan::KswapdSleep {
                nid: req!(f.word(b"nid").and_then(dec_i32), "`nid=<n>`"),
            },
            b"wakeup_kswapd" => {
                const E: Expected = "`nid=<n> [zid=<n>] order=<n> gfp_flags=<f>`";
                let nid = req!(f.word(b"nid").and_then(dec_i32), E);
                let order = req!(f.word(b"order").and_then(dec_i32), E);
                Vmscan::WakeupKswapd { nid, order }
            }
            b"direct_reclaim_begin" | b"memcg_reclaim_begin" | b"memcg_softlimit_reclaim_begin" => {
                let order = req!(
                    f.word(b"order").and_then(dec_i32),
                    "`order=<n> gfp_flags=<f>`"
                );
                Vmscan::DirectReclaimBegin {
                    order,
                    memcg: rest != b"direct_reclaim_begin",
                }
            }
            b"direct_reclaim_end" | b"memcg_reclaim_end" | b"memcg_softlimit_reclaim_end" => {
                let nr_reclaimed = req!(
                    f.word(b"nr_reclaimed").and_then(dec_u64),
                    "`nr_reclaimed=<n>`"
                );
                Vmscan::DirectReclaimEnd {
                    nr_reclaimed,
                    memcg: rest != b"direct_reclaim_end",
                }
            }
            b"lru_isolate" => {
                const E: Expected =
                    "`... nr_requested=<n> nr_scanned=<n> nr_skipped=<n> nr_taken=<n> lru=<l>`";
                let nr_requested = req!(f.word(b"nr_requested").and_then(dec_u64), E);
                let nr_scanned = req!(f.word(b"nr_scanned").and_then(dec_u64), E);
                let nr_taken = req!(f.word(b"nr_taken").and_then(dec_u64), E);
                let lru = req!(f.word(b"lru").or_else(|| f.word(b"file")), E);
                Vmscan::LruIsolate {
                    nr_requested,
                    nr_scanned,
                    nr_taken,
                    lru: self.interner.intern(lru),
                }
            }
            b"lru_shrink_inactive" => {
                const E: Expected = "`nid=<n> nr_scanned=<n> nr_reclaimed=<n> ... priority=<n>`";
                let nid = req!(f.word(b"nid").and_then(dec_i32), E);
                let nr_scanned = req!(f.word(b"nr_scanned").and_then(dec_u64), E);
                let nr_reclaimed = req!(f.word(b"nr_reclaimed").and_then(dec_u64), E);
                let priority = req!(f.word(b"priority").and_then(dec_i32), E);
                let nr_ref_keep: u64 = opt!(f.word(b"nr_ref_keep"), dec_u64, E);
                let anon: u64 = opt!(f.word(b"nr_activate_anon"), dec_u64, E);
                let file: u64 = opt!(f.word(b"nr_activate_file"), dec_u64, E);
                let nr_activate = anon.saturating_add(file);
                // The list the pass shrank (`flags=RECLAIM_WB_FILE|...`); absent: unknown.
                let file = f
                    .word(b"flags")
                    .and_then(crate::reclaim_flags::list_of_text);
                Vmscan::LruShrinkInactive {
                    nid,
                    nr_scanned,
                    nr_reclaimed,
                    priority,
                    nr_ref_keep,
                    nr_activate,
                    file,
                }
            }
            b"lru_shrink_active" => {
                const E: Expected = "`nid=<n> nr_taken=<n> nr_active=<n> nr_deactivated=<n> ...`";
                let nid = req!(f.word(b"nid").and_then(dec_i32), E);
                let nr_taken = req!(f.word(b"nr_taken").and_then(dec_u64), E);
                let nr_active = req!(f.word(b"nr_active").and_then(dec_u64), E);
                let nr_deactivated = req!(f.word(b"nr_deactivated").and_then(dec_u64), E);
                let nr_referenced: u64 = opt!(f.word(b"nr_referenced"), dec_u64, E);
                Vmscan::LruShrinkActive {
                    nid,
                    nr_taken,
                    nr_active,
                    nr_deactivated,
                    nr_referenced,
                }
            }
            b"write_folio" | b"writepage" => Vmscan::WriteFolio {
                pfn: req!(
                    f.word(b"pfn").and_then(auto_u64),
                    "`page=<p> pfn=<0xhex|dec> flags=<f>`"
                ),
            },
            other => Vmscan::Other {
                name: self.interner.intern(other),
            },
        };
        Ok(Event::Vmscan(v))
    }

    /// ftrace's own `sys_mmap(addr: 0, len: 0x2000, ...)` text.
    fn sys_enter_text(&mut self, name: &[u8], p: &[u8]) -> Result<Event, Expected> {
        let sys = req!(
            name.strip_prefix(b"sys_"),
            "a syscall event named `sys_<name>(...)`"
        );
        let inner = req!(
            p.strip_prefix(b"(")
                .and_then(|x| trim_end(x).strip_suffix(b")")),
            "`sys_<name>(arg: hex, ...)` with a closing `)`"
        );
        self.sys_enter(sys, inner)
    }

    /// Argument list `a: v, b: v` (values hex, with or without `0x`).
    fn sys_enter(&mut self, sys: &[u8], args: &[u8]) -> Result<Event, Expected> {
        const E: Expected = "`name: hex, name: hex, ...` syscall arguments";
        let nr = match std::str::from_utf8(sys).ok().and_then(Syscall::from_name) {
            Some(nr) => nr,
            None => {
                return Ok(Event::Other {
                    name: self.interner.intern2(b"sys_enter_", sys),
                })
            }
        };
        let mut out = [0u64; 6];
        let args = trim(args.strip_suffix(b")").unwrap_or(args));
        if !args.is_empty() {
            for (k, a) in args.split(|&c| c == b',').enumerate() {
                let colon = req!(memchr::memchr(b':', a), E);
                let v = req!(hex_u64(trim(a.get(colon + 1..).unwrap_or(&[]))), E);
                if let Some(slot) = out.get_mut(k) {
                    *slot = v;
                }
            }
        }
        Ok(Event::SysEnter {
            nr,
            args: SysArgs(out),
        })
    }

    /// `sys_mmap -> 0x7f...` (ftrace text) or `sys_exit_mmap: 0x7f...` (tracefs format).
    fn sys_exit(&mut self, sys: &[u8], p: &[u8]) -> Result<Event, Expected> {
        let nr = match std::str::from_utf8(sys).ok().and_then(Syscall::from_name) {
            Some(nr) => nr,
            None => {
                return Ok(Event::Other {
                    name: self.interner.intern2(b"sys_exit_", sys),
                })
            }
        };
        let v = trim(p);
        let ret = match v.first() {
            Some(b'-') => req!(dec_i64(v), "a return value `0x<hex>`"),
            _ => req!(hex_u64(v), "a return value `0x<hex>`") as i64,
        };
        Ok(Event::SysExit { nr, ret })
    }

    /// Kernel form `prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=b ...`,
    /// `-R` raw form (numeric `prev_state=64`), and libtraceevent's `plugin_sched_switch` form
    /// `a:1 [120] S ==> b:2 [120]`.
    fn sched_switch(&mut self, p: &[u8]) -> Result<Event, Expected> {
        const E: Expected = "`prev_comm=.. prev_pid=.. prev_state=.. ==> next_comm=.. next_pid=..` or `comm:pid [prio] S ==> comm:pid [prio]`";
        let arrow = find(p, b" ==> ");
        let has_kv = find(p, b"prev_pid=").is_some();
        if has_kv {
            let mut f = Fields::new(p);
            let prev_pid = req!(f.word(b"prev_pid").and_then(dec_i32), E);
            let state = req!(f.get(b"prev_state"), E);
            let state = trim(state.strip_suffix(b"==>").unwrap_or(state));
            let prev_state = self.interner.intern(state);
            let next_comm = Comm::new(req!(f.get(b"next_comm"), E));
            let next_pid = req!(f.word(b"next_pid").and_then(dec_i32), E);
            return Ok(Event::SchedSwitch {
                prev_pid,
                prev_state,
                next_pid,
                next_comm,
            });
        }
        let arrow = req!(arrow, E);
        let left = trim(p.get(..arrow).unwrap_or(&[]));
        let right = trim(p.get(arrow + 5..).unwrap_or(&[]));
        // left: `comm:pid [prio] STATE`
        let st_sp = req!(memchr::memrchr(b' ', left), E);
        let state = left.get(st_sp + 1..).unwrap_or(&[]);
        let (_, prev_pid) = req!(plugin_comm_pid(left.get(..st_sp).unwrap_or(&[])), E);
        let (next_comm, next_pid) = req!(plugin_comm_pid(right), E);
        Ok(Event::SchedSwitch {
            prev_pid,
            prev_state: self.interner.intern(state),
            next_pid,
            next_comm: Comm::new(next_comm),
        })
    }
}

/// `comm:pid [prio]` -> (comm, pid).
fn plugin_comm_pid(s: &[u8]) -> Option<(&[u8], i32)> {
    let s = trim(s);
    let s = match memchr::memrchr(b'[', s) {
        Some(b) => trim_end(s.get(..b)?),
        None => s,
    };
    let c = memchr::memrchr(b':', s)?;
    Some((s.get(..c)?, dec_i32(s.get(c + 1..)?)?))
}

fn strip_comma(v: &[u8]) -> &[u8] {
    v.strip_suffix(b",").unwrap_or(v)
}

/// `target_id=%lu nr_regions=%u %lu-%lu: %u[ %u]` (the age column exists since 5.15).
fn damon(p: &[u8]) -> Result<Event, Expected> {
    const E: Expected = "`target_id=<n> nr_regions=<n> <start>-<end>: <nr_accesses> [<age>]`";
    let p = trim(p);
    let rest = req!(p.strip_prefix(b"target_id="), E);
    let sp = req!(memchr::memchr(b' ', rest), E);
    let target_id = req!(rest.get(..sp).and_then(dec_u64), E);
    let rest = req!(
        trim_start(rest.get(sp..).unwrap_or(&[])).strip_prefix(b"nr_regions="),
        E
    );
    let sp = req!(memchr::memchr(b' ', rest), E);
    let nr_regions = req!(rest.get(..sp).and_then(dec_u32), E);
    let rest = trim_start(rest.get(sp..).unwrap_or(&[]));
    let dash = req!(memchr::memchr(b'-', rest), E);
    let colon = req!(memchr::memchr(b':', rest), E);
    let start = req!(rest.get(..dash).and_then(dec_u64), E);
    let end = req!(rest.get(dash + 1..colon).and_then(dec_u64), E);
    let tail = trim(rest.get(colon + 1..).unwrap_or(&[]));
    let mut it = tail.split(|&c| c == b' ').filter(|t| !t.is_empty());
    let nr_accesses = req!(it.next().and_then(dec_u32), E);
    let age = match it.next() {
        Some(a) => Some(req!(dec_u32(a), E)),
        None => None,
    };
    if it.next().is_some() {
        return Err(E);
    }
    Ok(Event::DamonAggregated {
        target_id,
        nr_regions,
        start,
        end,
        nr_accesses,
        age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Sym;

    fn d(name: &str, p: &str) -> Event {
        Decoder::new()
            .decode(name.as_bytes(), p.as_bytes(), PayloadForm::Normal)
            .unwrap_or_else(|e| panic!("{name}: {p:?}: {e}"))
    }

    fn sym(s: &str) -> Sym {
        Sym::from(s)
    }

    #[test]
    fn tlb_flush_kernel_and_plugin_forms() {
        assert_eq!(
            d("tlb_flush", "pages:-1 reason:remote IPI send (4)"),
            Event::TlbFlush {
                pages: -1,
                reason: TlbReason {
                    code: Some(4),
                    text: sym("remote IPI send")
                }
            }
        );
        assert_eq!(
            d("tlb_flush", "pages=1 reason=local mm shootdown (3)"),
            Event::TlbFlush {
                pages: 1,
                reason: TlbReason {
                    code: Some(3),
                    text: sym("local mm shootdown")
                }
            }
        );
        // plugin_tlb.c knows reasons 0-3 only: code 4 prints an empty name.
        assert_eq!(
            d("tlb_flush", "pages=1 reason= (4)"),
            Event::TlbFlush {
                pages: 1,
                reason: TlbReason {
                    code: Some(4),
                    text: sym("")
                }
            }
        );
        assert!(Decoder::new()
            .decode(b"tlb_flush", b"reason:x (1)", PayloadForm::Normal)
            .is_err());
    }

    /// `mm_vmscan_lru_shrink_inactive`'s `flags=` names the list the pass shrank (lines of
    /// corpus/captures/reclaim-swap, 6.18; 6.1 prints the same); without it the list is unknown.
    #[test]
    fn shrink_inactive_carries_its_list() {
        let line = |flags: &str| {
            format!(
                "nid=0 nr_scanned=4 nr_reclaimed=3 nr_dirty=0 nr_writeback=0 nr_congested=0 \
                 nr_immediate=0 nr_activate_anon=0 nr_activate_file=1 nr_ref_keep=0 \
                 nr_unmap_fail=0 priority=0{flags}"
            )
        };
        let file = |p: &str| match d("mm_vmscan_lru_shrink_inactive", p) {
            Event::Vmscan(Vmscan::LruShrinkInactive {
                file,
                nr_activate,
                nr_reclaimed,
                ..
            }) => {
                assert_eq!((nr_activate, nr_reclaimed), (1, 3));
                file
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            file(&line(" flags=RECLAIM_WB_FILE|RECLAIM_WB_ASYNC")),
            Some(true)
        );
        assert_eq!(
            file(&line(" flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC")),
            Some(false)
        );
        assert_eq!(file(&line(" flags=RECLAIM_WB_NONE")), None);
        assert_eq!(file(&line("")), None);
    }

    /// Lines as the 6.1 guest printed them (corpus/captures/k61-*).
    #[test]
    fn linux_6_1_forms() {
        assert_eq!(
            d("tlb_flush", "pages:-1 reason:remote ipi send (4)"),
            Event::TlbFlush {
                pages: -1,
                reason: TlbReason {
                    code: Some(4),
                    text: sym("remote ipi send")
                }
            }
        );
        // Without the code (a tool that prints the name only), either kernel's text maps.
        for (text, code) in [("remote ipi send", 4), ("local MM shootdown", 3)] {
            let Event::TlbFlush { reason, .. } = d("tlb_flush", &format!("pages=1 reason={text}"))
            else {
                panic!("not a tlb_flush")
            };
            assert_eq!(reason.code, Some(code), "{text}");
        }
        assert_eq!(
            d("call_function_single_entry", "vector=251"),
            Event::CallFunctionEntry {
                single: true,
                vector: 251
            }
        );
        assert_eq!(
            d("call_function_entry", "vector=252"),
            Event::CallFunctionEntry {
                single: false,
                vector: 252
            }
        );
        assert!(Decoder::new()
            .decode(b"call_function_entry", b"vec=252", PayloadForm::Normal)
            .is_err());
        let k = d("folio_referenced_one", "(folio_referenced_one+0x0/0x260)");
        assert_eq!(
            k,
            Event::Kprobe {
                name: sym("folio_referenced_one")
            }
        );
        assert_eq!(k.name(), "folio_referenced_one");
        // Same name, other payload: not a kprobe hit.
        assert_eq!(
            d("folio_referenced_one", "pfn=1"),
            Event::Other {
                name: sym("folio_referenced_one")
            }
        );
    }

    #[test]
    fn csd_queue_cpu_is_classified_by_its_function() {
        assert_eq!(
            d(
                "csd_queue_cpu",
                "cpu=1 callsite=smp_call_function+0x28/0x60 func=tlb_remove_table_smp_sync csd=00000000c8e65df1"
            ),
            Event::CsdQueueCpu {
                target: 1,
                kind: IpiKind::TableSync
            }
        );
        assert_eq!(
            d(
                "csd_queue_cpu",
                "cpu=0 callsite=on_each_cpu_cond_mask+0x20/0x60 func=flush_tlb_func csd=00000000deadbeef"
            ),
            Event::CsdQueueCpu {
                target: 0,
                kind: IpiKind::TlbShootdown
            }
        );
        assert!(Decoder::new()
            .decode(b"csd_queue_cpu", b"callsite=x func=y", PayloadForm::Normal)
            .is_err());
    }

    #[test]
    fn ipis() {
        assert_eq!(
            d("ipi_send_cpu", "cpu=1 callsite=on_each_cpu_cond_mask+0x20/0x60 callback=generic_smp_call_function_single_interrupt+0x0/0x10"),
            Event::IpiSendCpu { target: 1, kind: IpiKind::CallFunctionSingle }
        );
        assert_eq!(
            d(
                "ipi_send_cpu",
                "cpu=0 callsite=wakeup_preempt+0x55/0xa0 callback=0x0"
            ),
            Event::IpiSendCpu {
                target: 0,
                kind: IpiKind::Other
            }
        );
        assert_eq!(
            d("ipi_send_cpumask", "cpumask=00000000,00000006 callsite=smp_call_function_many_cond+0x1/0x2 callback=flush_tlb_func+0x0/0x1"),
            Event::IpiSendCpumask { mask: 6, targets: 2, kind: IpiKind::TlbShootdown }
        );
        assert_eq!(
            d(
                "ipi_send_cpumask",
                "cpumask=0-1,4 callsite=x callback=tlb_remove_table_smp_sync+0x0/0x10"
            ),
            Event::IpiSendCpumask {
                mask: 0b10011,
                targets: 3,
                kind: IpiKind::TableSync
            }
        );
        assert_eq!(
            parse_cpumask(b"00000001,00000000,00000000,00000000,80000000"),
            Some((1u128 << 31, 2))
        );
        assert_eq!(parse_cpumask(b""), None);
        assert_eq!(parse_cpumask(b"5-2"), None);
        assert_eq!(parse_cpumask(b"0-4294967295"), None);
    }

    #[test]
    fn lru_and_spaces_in_values() {
        assert_eq!(
            d(
                "mm_lru_insertion",
                "folio=000000001849b665 pfn=0x1f5dac lru=0 flags=Ma bd "
            ),
            Event::MmLruInsertion {
                pfn: 0x1f5dac,
                lru: 0,
                flags: sym("Ma bd")
            }
        );
        assert_eq!(
            d(
                "mm_lru_insertion",
                "page=00000000abcd pfn=1234 lru=2 flags=M f    "
            ),
            Event::MmLruInsertion {
                pfn: 1234,
                lru: 2,
                flags: sym("M f")
            }
        );
        assert_eq!(
            d("mm_lru_activate", "folio=0000 pfn=0x1cebec"),
            Event::MmLruActivate { pfn: 0x1cebec }
        );
    }

    #[test]
    fn sched_forms() {
        let k = d("sched_switch", "prev_comm=capture.sh prev_pid=15250 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120");
        assert_eq!(
            k,
            Event::SchedSwitch {
                prev_pid: 15250,
                prev_state: sym("S"),
                next_pid: 0,
                next_comm: Comm::new(b"swapper/0")
            }
        );
        let plug = d(
            "sched_switch",
            "kworker/u8:1:20665 [120] t ==> trace-cmd:20913 [120]",
        );
        assert_eq!(
            plug,
            Event::SchedSwitch {
                prev_pid: 20665,
                prev_state: sym("t"),
                next_pid: 20913,
                next_comm: Comm::new(b"trace-cmd")
            }
        );
        let raw = d("sched_switch", "prev_comm=trace-cmd prev_pid=1701 prev_prio=120 prev_state=64 next_comm=swapper/1 next_pid=0 next_prio=120");
        assert_eq!(
            raw,
            Event::SchedSwitch {
                prev_pid: 1701,
                prev_state: sym("64"),
                next_pid: 0,
                next_comm: Comm::new(b"swapper/1")
            }
        );
        assert_eq!(
            d(
                "sched_process_fork",
                "comm=Web Content pid=15250 child_comm=Web Content child_pid=15251"
            ),
            Event::SchedProcessFork {
                parent_pid: 15250,
                child_pid: 15251,
                child_comm: Comm::new(b"Web Content")
            }
        );
        assert_eq!(
            d(
                "sched_process_exec",
                "filename=/tmp/cap/mt pid=15358 old_pid=15358"
            ),
            Event::SchedProcessExec {
                pid: 15358,
                old_pid: 15358
            }
        );
        assert_eq!(
            d(
                "sched_process_exit",
                "comm=hugeshare pid=15253 prio=120 group_dead=true"
            ),
            Event::SchedProcessExit { pid: 15253 }
        );
        assert_eq!(
            d(
                "sched_migrate_task",
                "comm=memfd:sealed-91 pid=1435 prio=120 orig_cpu=1 dest_cpu=0"
            ),
            Event::SchedMigrateTask {
                pid: 1435,
                orig_cpu: 1,
                dest_cpu: 0
            }
        );
        assert_eq!(
            d(
                "task_newtask",
                "pid=5 comm=a b clone_flags=3d0f00 oom_score_adj=0"
            ),
            Event::TaskNewtask {
                pid: 5,
                clone_flags: 0x3d0f00
            }
        );
    }

    #[test]
    fn syscalls_all_forms() {
        let mut dec = Decoder::new();
        let e = dec
            .decode(
                b"sys_mmap",
                b"(addr: 0, len: 0x2000, prot: 3, flags: 0x22, fd: 0xffffffff, off: 0)",
                PayloadForm::SysEnterText,
            )
            .unwrap();
        assert_eq!(
            e,
            Event::SysEnter {
                nr: Syscall::Mmap,
                args: SysArgs([0, 0x2000, 3, 0x22, 0xffff_ffff, 0])
            }
        );
        let e = dec
            .decode(
                b"sys_mmap",
                b"(addr: 0, len: 1ef9c, prot: 1, flags: 2, fd: 3, off: 0)",
                PayloadForm::SysEnterText,
            )
            .unwrap();
        assert_eq!(
            e,
            Event::SysEnter {
                nr: Syscall::Mmap,
                args: SysArgs([0, 0x1ef9c, 1, 2, 3, 0])
            }
        );
        let e = dec
            .decode(b"sys_mmap", b"0x7f2747a99000", PayloadForm::SysExitText)
            .unwrap();
        assert_eq!(
            e,
            Event::SysExit {
                nr: Syscall::Mmap,
                ret: 0x7f27_47a9_9000
            }
        );
        let e = dec
            .decode(
                b"sys_recvmsg",
                b"0xfffffffffffffff5",
                PayloadForm::SysExitText,
            )
            .unwrap();
        assert_eq!(e.name(), "sys_exit_recvmsg");
        let e = dec
            .decode(
                b"sys_enter_munmap",
                b"addr: 0x7f0000000000, len: 0x00001000",
                PayloadForm::Normal,
            )
            .unwrap();
        assert_eq!(
            e,
            Event::SysEnter {
                nr: Syscall::Munmap,
                args: SysArgs([0x7f00_0000_0000, 0x1000, 0, 0, 0, 0])
            }
        );
        let e = dec
            .decode(b"sys_exit_brk", b"0x55c9b7251000", PayloadForm::Normal)
            .unwrap();
        assert_eq!(
            e,
            Event::SysExit {
                nr: Syscall::Brk,
                ret: 0x55c9_b725_1000
            }
        );
        let e = dec
            .decode(
                b"sys_exit_munmap",
                b"0xffffffffffffffea",
                PayloadForm::Normal,
            )
            .unwrap();
        assert_eq!(
            e,
            Event::SysExit {
                nr: Syscall::Munmap,
                ret: -22
            }
        );
        let e = dec
            .decode(
                b"sys_read",
                b"(fd: 3, buf: 7ffe, count: 340)",
                PayloadForm::SysEnterText,
            )
            .unwrap();
        assert_eq!(e.name(), "sys_enter_read");
        assert!(dec
            .decode(
                b"sys_mmap",
                b"(addr: 0, len: zz)",
                PayloadForm::SysEnterText
            )
            .is_err());
        assert!(dec
            .decode(b"sys_mmap", b"(addr: 0", PayloadForm::SysEnterText)
            .is_err());
        assert!(dec
            .decode(b"sys_mmap", b"nope", PayloadForm::SysExitText)
            .is_err());
    }

    #[test]
    fn migration_filemap_rss_damon() {
        assert_eq!(
            d(
                "set_migration_pte",
                "addr=7f2747a99000, pte=f7fffffffe38224 order=0"
            ),
            Event::SetMigrationPte {
                addr: 0x7f27_47a9_9000,
                pte: 0x0f7f_ffff_ffe3_8224,
                order: 0
            }
        );
        assert_eq!(
            d("mm_migrate_pages", "nr_succeeded=3 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 nr_split=0 mode=MIGRATE_SYNC reason=numa_misplaced"),
            Event::MmMigratePages { succeeded: 3, failed: 0, mode: sym("MIGRATE_SYNC"), reason: sym("numa_misplaced") }
        );
        assert_eq!(
            d(
                "mm_filemap_delete_from_page_cache",
                "dev 0:17 ino 84d7 pfn=0x12be00 ofs=2097152 order=9"
            ),
            Event::Filemap {
                add: false,
                pfn: 0x12be00,
                ino: 0x84d7,
                index: 512,
                order: 9
            }
        );
        assert_eq!(
            d("rss_stat", "mm_id=1234 curr=1 type=MM_ANONPAGES size=4096B"),
            Event::RssStat {
                mm_id: 1234,
                curr: true,
                member: sym("MM_ANONPAGES"),
                size: 4096
            }
        );
        assert_eq!(
            d(
                "damon_aggregated",
                "target_id=18446623435582458880 nr_regions=8 94253027950592-94253031862272: 0"
            ),
            Event::DamonAggregated {
                target_id: 18446623435582458880,
                nr_regions: 8,
                start: 94253027950592,
                end: 94253031862272,
                nr_accesses: 0,
                age: None
            }
        );
        assert_eq!(
            d("damon_aggregated", "target_id=1 nr_regions=2 10-20: 3 7"),
            Event::DamonAggregated {
                target_id: 1,
                nr_regions: 2,
                start: 10,
                end: 20,
                nr_accesses: 3,
                age: Some(7)
            }
        );
        assert_eq!(
            d("exit_mmap", "mt_mod 000000003163ae3e, DESTROY"),
            Event::ExitMmap
        );
        assert_eq!(
            d("hugetlbfs_setattr", "dev 0,17 ino 34007").name(),
            "setattr"
        );
        assert_eq!(
            d("mm_vmscan_node_reclaim_begin", "nid=0 order=0").name(),
            "node_reclaim_begin"
        );
        assert_eq!(
            d("sched_waking", "comm=bash pid=4065 prio=120 target_cpu=002").name(),
            "sched_waking"
        );
    }

    #[test]
    fn vmscan_versions() {
        assert_eq!(
            d("mm_vmscan_lru_isolate", "isolate_mode=0 classzone=2 order=0 nr_requested=1 nr_scanned=1 nr_skipped=0 nr_taken=1 lru=inactive_file"),
            Event::Vmscan(Vmscan::LruIsolate { nr_requested: 1, nr_scanned: 1, nr_taken: 1, lru: sym("inactive_file") })
        );
        assert_eq!(
            d(
                "mm_vmscan_direct_reclaim_begin",
                "order=0 may_writepage=1 gfp_flags=GFP_KERNEL|GFP_NOWARN|GFP_ZERO|0x2"
            ),
            Event::Vmscan(Vmscan::DirectReclaimBegin {
                order: 0,
                memcg: false
            })
        );
        assert_eq!(
            d("mm_vmscan_kswapd_sleep", "nid=0"),
            Event::Vmscan(Vmscan::KswapdSleep { nid: 0 })
        );
    }
}
