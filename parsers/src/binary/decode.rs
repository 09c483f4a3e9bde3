//! Raw tracepoint record bytes (`common_type` .. fields, as in a ring-buffer page or a perf
//! PERF_SAMPLE_RAW) to typed [`Event`]s, by field name from the capture's own format files.
//!
//! For each event id a [`Plan`] is built once: it looks the needed fields up by name and keeps
//! their offsets, so decoding a record is a few bounded loads. It must never use hard-coded
//! offsets, and never panic on short or lying records (missing bytes decode as 0 / empty).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::bytes::{read_uint, sign_extend, Endian};
use super::format::{parse_format, EventFormat, FieldKind, FormatError};
use super::meta::{FormatSource, Kallsyms, Meta};
use crate::fields::{classify_ipi, default_tlb_reason, prev_state_text, PREV_STATE_FLAGS};
use crate::record::{Comm, Event, Sym, SysArgs, Syscall, TlbReason, Vmscan};

/// Location of one field, copied out of the format at plan time.
#[derive(Clone, Copy, Debug)]
struct F {
    offset: usize,
    size: usize,
    kind: FieldKind,
}

#[derive(Clone, Debug)]
enum Kind {
    PageFault {
        user: bool,
    },
    TlbFlush,
    IpiSendCpu,
    IpiSendCpumask,
    CsdQueueCpu,
    CallFunctionEntry {
        single: bool,
    },
    /// A kprobe event (its format has `__probe_ip`), whatever its name.
    Kprobe,
    SetMigrationPte,
    RemoveMigrationPte,
    MmMigratePages,
    MmMigratePagesStart,
    MmLruInsertion {
        flag_bits: Vec<(u64, String, String)>,
        /// The text of every combination of `flag_bits` (bit i of the index: flag i set),
        /// built once when there are few, so a record costs no allocation (the event is one
        /// of the most frequent).
        texts: Vec<Sym>,
    },
    MmLruActivate,
    Vmscan(VmKind),
    Compaction,
    Hugetlbfs,
    Khugepaged,
    CollapseHugePage,
    SysEnter(Syscall),
    SysExit(Syscall),
    SchedProcessFork,
    SchedProcessExec,
    SchedProcessExit,
    SchedSwitch {
        table: Vec<(u64, String)>,
        report_max: Option<u64>,
    },
    SchedMigrateTask,
    TaskNewtask,
    ExitMmap,
    RssStat,
    Filemap {
        add: bool,
    },
    Damon,
    Other,
}

#[derive(Clone, Copy, Debug)]
enum VmKind {
    KswapdWake,
    KswapdSleep,
    WakeupKswapd,
    ReclaimBegin { memcg: bool },
    ReclaimEnd { memcg: bool },
    LruIsolate,
    ShrinkInactive,
    ShrinkActive,
    WriteFolio,
    Other,
}

/// The decoding recipe for one event id.
#[derive(Clone, Debug)]
pub struct Plan {
    name: Sym,
    /// Short name for the name-only variants (prefix stripped as `Event` documents).
    short: Sym,
    kind: Kind,
    f: [Option<F>; 8],
    format: Arc<EventFormat>,
    /// `__print_symbolic` texts as shared `Sym`s, so a record costs no allocation for them.
    symbols: BTreeMap<String, Vec<(i64, Sym)>>,
    /// The symbols of the one field the frequent events look up on every record
    /// (`tlb_flush`'s `reason`, `rss_stat`'s `member`), resolved here once.
    hot: Vec<(i64, Sym)>,
    /// `sched_switch` prev_state texts by state value, filled on first sight (values below
    /// `STATE_CACHE`; others are rendered each time).
    states: Vec<OnceLock<Sym>>,
}

const STATE_CACHE: usize = 0x1000;

/// Decodes raw records of one capture.
#[derive(Debug)]
pub struct Decoder {
    endian: Endian,
    /// The kernel's `long` size (bitmask word size), from header_page's `commit`.
    kernel_long: usize,
    kallsyms: Arc<Kallsyms>,
    /// Format sources indexed by `common_type`.
    sources: Vec<Option<FormatSource>>,
    /// Plans, built on the first record of each id (most captures use few of their formats).
    plans: Vec<OnceLock<Result<Plan, FormatError>>>,
}

fn strip<'a>(s: &'a str, p: &str) -> &'a str {
    s.strip_prefix(p).unwrap_or(s)
}

impl Decoder {
    pub fn new(meta: &Meta) -> Self {
        let kernel_long = meta
            .header_page
            .map_or(usize::from(meta.long_size), |h| h.commit_size);
        let max_id = meta
            .formats
            .keys()
            .copied()
            .filter(|&i| i <= 0xffff)
            .max()
            .unwrap_or(0);
        let mut sources: Vec<Option<FormatSource>> = vec![None; max_id as usize + 1];
        for (id, f) in &meta.formats {
            if let Some(slot) = sources.get_mut(*id as usize) {
                *slot = Some(f.clone());
            }
        }
        let plans = (0..sources.len()).map(|_| OnceLock::new()).collect();
        Decoder {
            endian: meta.endian,
            kernel_long,
            kallsyms: meta.kallsyms.clone(),
            sources,
            plans,
        }
    }

    /// Format files that failed to parse among the ids decoded so far.
    pub fn format_errors(&self) -> Vec<FormatError> {
        self.plans
            .iter()
            .filter_map(|p| p.get()?.as_ref().err().cloned())
            .collect()
    }

    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// `common_type` of a raw record.
    #[inline]
    pub fn event_id(&self, raw: &[u8]) -> Option<u16> {
        read_uint(raw, 0, 2, self.endian).map(|v| v as u16)
    }

    /// `common_pid` of a raw record.
    #[inline]
    pub fn common_pid(&self, raw: &[u8]) -> i32 {
        read_uint(raw, 4, 4, self.endian).map_or(0, |v| v as u32 as i32)
    }

    /// The plan for an id, built on first use. `None` for an id without a format; an error
    /// when its format file does not parse.
    pub fn plan(&self, id: u16) -> Option<Result<&Plan, &FormatError>> {
        let src = self.sources.get(usize::from(id))?.as_ref()?;
        let slot = self.plans.get(usize::from(id))?;
        let p = slot
            .get_or_init(|| parse_format(&src.text, &src.system).map(|f| Plan::build(Arc::new(f))));
        Some(p.as_ref())
    }

    /// Decodes one raw record. Ids without a format become `Other { "unknown_event_<id>" }`,
    /// ids whose format does not parse `Other { "unparsed_format_<id>" }`.
    pub fn decode(&self, raw: &[u8]) -> Event {
        let Some(id) = self.event_id(raw) else {
            return Event::Other {
                name: Sym::from("short_record"),
            };
        };
        match self.plan(id) {
            Some(Ok(p)) => self.decode_with(p, raw),
            Some(Err(_)) => Event::Other {
                name: Sym::from(format!("unparsed_format_{id}")),
            },
            None => Event::Other {
                name: Sym::from(format!("unknown_event_{id}")),
            },
        }
    }

    #[inline]
    fn u(&self, raw: &[u8], f: Option<F>) -> u64 {
        let Some(f) = f else { return 0 };
        match f.kind {
            FieldKind::Scalar | FieldKind::Array => {
                read_uint(raw, f.offset, f.size.min(8), self.endian).unwrap_or(0)
            }
            _ => 0,
        }
    }

    #[inline]
    fn i(&self, raw: &[u8], f: Option<F>) -> i64 {
        let size = f.map_or(8, |f| f.size.min(8));
        sign_extend(self.u(raw, f), size)
    }

    /// Bytes of a fixed array or of a `__data_loc` / `__rel_loc` field.
    fn bytes<'r>(&self, raw: &'r [u8], f: Option<F>) -> &'r [u8] {
        let Some(f) = f else { return &[] };
        match f.kind {
            FieldKind::Array | FieldKind::Scalar => raw
                .get(f.offset..f.offset.saturating_add(f.size))
                .unwrap_or(&[]),
            FieldKind::DataLoc | FieldKind::RelLoc => {
                let Some(loc) = read_uint(raw, f.offset, 4, self.endian) else {
                    return &[];
                };
                let mut off = (loc & 0xffff) as usize;
                let len = (loc >> 16) as usize;
                if f.kind == FieldKind::RelLoc {
                    off += f.offset + f.size;
                }
                raw.get(off..off.saturating_add(len)).unwrap_or(&[])
            }
        }
    }

    fn comm(&self, raw: &[u8], f: Option<F>) -> Comm {
        let b = self.bytes(raw, f);
        let end = memchr::memchr(0, b).unwrap_or(b.len());
        Comm::new(b.get(..end).unwrap_or(&[]))
    }

    fn sym_name(&self, addr: u64) -> Option<&str> {
        self.kallsyms.lookup(addr).map(|(s, _)| s)
    }

    fn ipi_kind(&self, raw: &[u8], p: &Plan) -> crate::record::IpiKind {
        let callsite = self.sym_name(self.u(raw, p.f[1]));
        let callback = self.sym_name(self.u(raw, p.f[2]));
        classify_ipi(callsite, callback)
    }

    fn symbolic(&self, p: &Plan, field: &str, v: i64) -> Sym {
        p.symbols
            .get(field)
            .and_then(|t| t.iter().find(|(k, _)| *k == v))
            .map_or_else(|| Sym::from(v.to_string()), |(_, s)| s.clone())
    }

    fn decode_with(&self, p: &Plan, raw: &[u8]) -> Event {
        let f = &p.f;
        match &p.kind {
            Kind::PageFault { user } => Event::PageFault {
                user: *user,
                address: self.u(raw, f[0]),
                ip: self.u(raw, f[1]),
                error_code: self.u(raw, f[2]),
            },
            Kind::TlbFlush => {
                let code = self.i(raw, f[1]);
                let text = p
                    .hot
                    .iter()
                    .find(|(k, _)| *k == code)
                    .map_or_else(|| Sym::from(default_tlb_reason(code)), |(_, s)| s.clone());
                Event::TlbFlush {
                    // Printed with %ld: sign-extend whatever the field's signedness says.
                    pages: self.i(raw, f[0]),
                    reason: TlbReason {
                        code: Some(code as i32),
                        text,
                    },
                }
            }
            Kind::IpiSendCpu => Event::IpiSendCpu {
                target: self.u(raw, f[0]) as u32,
                kind: self.ipi_kind(raw, p),
            },
            Kind::CsdQueueCpu => Event::CsdQueueCpu {
                target: self.u(raw, f[0]) as u32,
                // Fields 1 and 2 are `callsite` and `func`.
                kind: self.ipi_kind(raw, p),
            },
            Kind::IpiSendCpumask => {
                let (mask, targets) = self.bitmask(self.bytes(raw, f[0]));
                Event::IpiSendCpumask {
                    mask,
                    targets,
                    kind: self.ipi_kind(raw, p),
                }
            }
            Kind::SetMigrationPte => Event::SetMigrationPte {
                addr: self.u(raw, f[0]),
                pte: self.u(raw, f[1]),
                order: self.u(raw, f[2]) as u32,
            },
            Kind::RemoveMigrationPte => Event::RemoveMigrationPte {
                addr: self.u(raw, f[0]),
                pte: self.u(raw, f[1]),
                order: self.u(raw, f[2]) as u32,
            },
            Kind::MmMigratePages => Event::MmMigratePages {
                succeeded: self.u(raw, f[0]),
                failed: self.u(raw, f[1]),
                mode: self.symbolic(p, "mode", self.i(raw, f[2])),
                reason: self.symbolic(p, "reason", self.i(raw, f[3])),
            },
            Kind::MmMigratePagesStart => Event::MmMigratePagesStart {
                mode: self.symbolic(p, "mode", self.i(raw, f[0])),
                reason: self.symbolic(p, "reason", self.i(raw, f[1])),
            },
            Kind::MmLruInsertion { flag_bits, texts } => {
                let flags = self.u(raw, f[2]);
                let text = if flag_bits.is_empty() {
                    Sym::from(format!("0x{flags:x}"))
                } else {
                    let idx = flag_bits
                        .iter()
                        .enumerate()
                        .fold(0usize, |a, (i, (bit, _, _))| {
                            a | (usize::from(flags & bit != 0) << i)
                        });
                    match texts.get(idx) {
                        Some(t) => t.clone(),
                        None => Sym::from(lru_flags_text(flag_bits, flags)),
                    }
                };
                Event::MmLruInsertion {
                    pfn: self.u(raw, f[0]),
                    lru: self.i(raw, f[1]) as i32,
                    flags: text,
                }
            }
            Kind::MmLruActivate => Event::MmLruActivate {
                pfn: self.u(raw, f[0]),
            },
            Kind::Vmscan(v) => Event::Vmscan(match v {
                VmKind::KswapdWake => Vmscan::KswapdWake {
                    nid: self.i(raw, f[0]) as i32,
                    order: self.i(raw, f[1]) as i32,
                },
                VmKind::KswapdSleep => Vmscan::KswapdSleep {
                    nid: self.i(raw, f[0]) as i32,
                },
                VmKind::WakeupKswapd => Vmscan::WakeupKswapd {
                    nid: self.i(raw, f[0]) as i32,
                    order: self.i(raw, f[1]) as i32,
                },
                VmKind::ReclaimBegin { memcg } => Vmscan::DirectReclaimBegin {
                    order: self.i(raw, f[0]) as i32,
                    memcg: *memcg,
                },
                VmKind::ReclaimEnd { memcg } => Vmscan::DirectReclaimEnd {
                    nr_reclaimed: self.u(raw, f[0]),
                    memcg: *memcg,
                },
                VmKind::LruIsolate => Vmscan::LruIsolate {
                    nr_requested: self.u(raw, f[0]),
                    nr_scanned: self.u(raw, f[1]),
                    nr_taken: self.u(raw, f[2]),
                    lru: self.symbolic(p, "lru", self.i(raw, f[3])),
                },
                VmKind::ShrinkInactive => Vmscan::LruShrinkInactive {
                    nid: self.i(raw, f[0]) as i32,
                    nr_scanned: self.u(raw, f[1]),
                    nr_reclaimed: self.u(raw, f[2]),
                    priority: self.i(raw, f[3]) as i32,
                    nr_ref_keep: self.u(raw, f[4]),
                    nr_activate: self.u(raw, f[5]) + self.u(raw, f[6]),
                    file: crate::reclaim_flags::list_of_bits(self.u(raw, f[7])),
                },
                VmKind::ShrinkActive => Vmscan::LruShrinkActive {
                    nid: self.i(raw, f[0]) as i32,
                    nr_taken: self.u(raw, f[1]),
                    nr_active: self.u(raw, f[2]),
                    nr_deactivated: self.u(raw, f[3]),
                    nr_referenced: self.u(raw, f[4]),
                },
                VmKind::WriteFolio => Vmscan::WriteFolio {
                    pfn: self.u(raw, f[0]),
                },
                VmKind::Other => Vmscan::Other {
                    name: p.short.clone(),
                },
            }),
            Kind::Compaction => Event::Compaction {
                name: p.short.clone(),
            },
            Kind::Hugetlbfs => Event::Hugetlbfs {
                name: p.short.clone(),
            },
            Kind::Khugepaged => Event::Khugepaged {
                name: p.name.clone(),
            },
            Kind::CollapseHugePage => Event::CollapseHugePage {
                mm: self.u(raw, f[0]),
                status: self.symbolic(p, "status", self.i(raw, f[1])),
            },
            Kind::SysEnter(nr) => {
                let mut args = [0u64; 6];
                for (a, fld) in args.iter_mut().zip(f.iter()) {
                    *a = self.u(raw, *fld);
                }
                Event::SysEnter {
                    nr: *nr,
                    args: SysArgs(args),
                }
            }
            Kind::SysExit(nr) => Event::SysExit {
                nr: *nr,
                ret: self.i(raw, f[0]),
            },
            Kind::SchedProcessFork => Event::SchedProcessFork {
                parent_pid: self.i(raw, f[0]) as i32,
                child_pid: self.i(raw, f[1]) as i32,
                child_comm: self.comm(raw, f[2]),
            },
            Kind::SchedProcessExec => Event::SchedProcessExec {
                pid: self.i(raw, f[0]) as i32,
                old_pid: self.i(raw, f[1]) as i32,
            },
            Kind::SchedProcessExit => Event::SchedProcessExit {
                pid: self.i(raw, f[0]) as i32,
            },
            Kind::SchedSwitch { table, report_max } => {
                let state = self.u(raw, f[1]);
                let render = || {
                    Sym::from(if table.is_empty() {
                        prev_state_text(state, PREV_STATE_FLAGS, *report_max)
                    } else {
                        let t: Vec<(u64, &str)> =
                            table.iter().map(|(v, s)| (*v, s.as_str())).collect();
                        prev_state_text(state, &t, *report_max)
                    })
                };
                let text = match usize::try_from(state).ok().and_then(|i| p.states.get(i)) {
                    Some(slot) => slot.get_or_init(render).clone(),
                    None => render(),
                };
                Event::SchedSwitch {
                    prev_pid: self.i(raw, f[0]) as i32,
                    prev_state: text,
                    next_pid: self.i(raw, f[2]) as i32,
                    next_comm: self.comm(raw, f[3]),
                }
            }
            Kind::SchedMigrateTask => Event::SchedMigrateTask {
                pid: self.i(raw, f[0]) as i32,
                orig_cpu: self.u(raw, f[1]) as u32,
                dest_cpu: self.u(raw, f[2]) as u32,
            },
            Kind::TaskNewtask => Event::TaskNewtask {
                pid: self.i(raw, f[0]) as i32,
                clone_flags: self.u(raw, f[1]),
            },
            Kind::ExitMmap => Event::ExitMmap,
            Kind::RssStat => Event::RssStat {
                mm_id: self.u(raw, f[0]),
                curr: self.u(raw, f[1]) != 0,
                member: {
                    let v = self.i(raw, f[2]);
                    p.hot
                        .iter()
                        .find(|(k, _)| *k == v)
                        .map_or_else(|| Sym::from(v.to_string()), |(_, s)| s.clone())
                },
                size: self.i(raw, f[3]),
            },
            Kind::Filemap { add } => Event::Filemap {
                add: *add,
                pfn: self.u(raw, f[0]),
                ino: self.u(raw, f[1]),
                index: self.u(raw, f[2]),
                order: self.u(raw, f[3]) as u32,
            },
            Kind::Damon => Event::DamonAggregated {
                target_id: self.u(raw, f[0]),
                nr_regions: self.u(raw, f[1]) as u32,
                start: self.u(raw, f[2]),
                end: self.u(raw, f[3]),
                nr_accesses: self.u(raw, f[4]) as u32,
                age: f[5].map(|_| self.u(raw, f[5]) as u32),
            },
            Kind::CallFunctionEntry { single } => Event::CallFunctionEntry {
                single: *single,
                vector: self.u(raw, f[0]) as u32,
            },
            Kind::Kprobe => Event::Kprobe {
                name: p.name.clone(),
            },
            Kind::Other => Event::Other {
                name: p.name.clone(),
            },
        }
    }

    /// A kernel bitmask (array of kernel longs) to (lowest 128 bits, popcount of all bits).
    fn bitmask(&self, b: &[u8]) -> (u128, u32) {
        let word = self.kernel_long.max(1);
        let mut mask: u128 = 0;
        let mut count = 0u32;
        for (wi, chunk) in b.chunks(word).enumerate() {
            for (bi, byte) in chunk.iter().enumerate() {
                // Within a long the byte holding bits 0..8 is the first on little-endian kernels
                // and the last on big-endian ones.
                let byte_idx = match self.endian {
                    Endian::Little => bi,
                    Endian::Big => chunk.len() - 1 - bi,
                };
                let bit0 = (wi * word + byte_idx) * 8;
                count += byte.count_ones();
                if bit0 < 128 {
                    mask |= u128::from(*byte) << bit0;
                }
            }
        }
        (mask, count)
    }
}

/// `mm_lru_insertion`'s flags as its print format renders them (`flags & bit ? on : off`).
fn lru_flags_text(flag_bits: &[(u64, String, String)], flags: u64) -> String {
    flag_bits
        .iter()
        .map(|(bit, on, off)| {
            if flags & bit != 0 {
                on.as_str()
            } else {
                off.as_str()
            }
        })
        .collect()
}

impl Plan {
    pub fn name(&self) -> &Sym {
        &self.name
    }

    pub fn format(&self) -> &EventFormat {
        &self.format
    }

    /// Chooses the typed variant by event name (and system where names could collide) and looks
    /// its fields up by name. A required field missing from this kernel's format turns the plan
    /// into `Other`, so the event is still counted by name.
    fn build(format: Arc<EventFormat>) -> Plan {
        let name = format.name.clone();
        let sys = &*format.system;
        let n = &*name;
        let fl = |names: &[&str]| -> Option<F> {
            names.iter().find_map(|nm| {
                format.field(nm).map(|x| F {
                    offset: x.offset,
                    size: x.size,
                    kind: x.kind,
                })
            })
        };
        type Req<'a> = &'a [&'a [&'a str]];
        let mut kind = Kind::Other;
        let mut req: Req = &[];
        let mut opt: Option<(usize, &[&str])> = None;
        let mut short = name.clone();
        match (sys, n) {
            ("exceptions", "page_fault_user") | ("exceptions", "page_fault_kernel") => {
                kind = Kind::PageFault {
                    user: n == "page_fault_user",
                };
                req = &[&["address"], &["ip"], &["error_code"]];
            }
            (_, "tlb_flush") => {
                kind = Kind::TlbFlush;
                req = &[&["pages"], &["reason"]];
            }
            ("ipi", "ipi_send_cpu") => {
                kind = Kind::IpiSendCpu;
                req = &[&["cpu"], &["callsite"], &["callback"]];
            }
            ("csd", "csd_queue_cpu") => {
                kind = Kind::CsdQueueCpu;
                req = &[&["cpu"], &["callsite"], &["func"]];
            }
            ("ipi", "ipi_send_cpumask") => {
                kind = Kind::IpiSendCpumask;
                req = &[&["cpumask"], &["callsite"], &["callback"]];
            }
            (_, "set_migration_pte") => {
                kind = Kind::SetMigrationPte;
                req = &[&["addr"], &["pte"], &["order"]];
            }
            (_, "remove_migration_pte") => {
                kind = Kind::RemoveMigrationPte;
                req = &[&["addr"], &["pte"], &["order"]];
            }
            (_, "mm_migrate_pages") => {
                kind = Kind::MmMigratePages;
                req = &[
                    &["succeeded", "nr_succeeded"],
                    &["failed", "nr_failed"],
                    &["mode"],
                    &["reason"],
                ];
            }
            (_, "mm_migrate_pages_start") => {
                kind = Kind::MmMigratePagesStart;
                req = &[&["mode"], &["reason"]];
            }
            (_, "mm_lru_insertion") => {
                let flag_bits = ternary_flags(&format.print_fmt, "flags");
                let texts = if flag_bits.len() <= 8 {
                    (0..1usize << flag_bits.len())
                        .map(|idx| {
                            let text: String = flag_bits
                                .iter()
                                .enumerate()
                                .map(|(i, (_, on, off))| {
                                    if idx & (1 << i) != 0 {
                                        on.as_str()
                                    } else {
                                        off.as_str()
                                    }
                                })
                                .collect();
                            Sym::from(text)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                kind = Kind::MmLruInsertion { flag_bits, texts };
                req = &[&["pfn"], &["lru"], &["flags"]];
            }
            (_, "mm_lru_activate") => {
                kind = Kind::MmLruActivate;
                req = &[&["pfn"]];
            }
            ("vmscan", _) if n.starts_with("mm_vmscan_") => {
                short = Sym::from(strip(n, "mm_vmscan_"));
                let (v, r): (VmKind, Req) = match n {
                    "mm_vmscan_kswapd_wake" => (VmKind::KswapdWake, &[&["nid"], &["order"]]),
                    "mm_vmscan_kswapd_sleep" => (VmKind::KswapdSleep, &[&["nid"]]),
                    "mm_vmscan_wakeup_kswapd" => (VmKind::WakeupKswapd, &[&["nid"], &["order"]]),
                    "mm_vmscan_direct_reclaim_begin" => {
                        (VmKind::ReclaimBegin { memcg: false }, &[&["order"]])
                    }
                    "mm_vmscan_memcg_reclaim_begin" => {
                        (VmKind::ReclaimBegin { memcg: true }, &[&["order"]])
                    }
                    "mm_vmscan_direct_reclaim_end" => {
                        (VmKind::ReclaimEnd { memcg: false }, &[&["nr_reclaimed"]])
                    }
                    "mm_vmscan_memcg_reclaim_end" => {
                        (VmKind::ReclaimEnd { memcg: true }, &[&["nr_reclaimed"]])
                    }
                    "mm_vmscan_lru_isolate" => (
                        VmKind::LruIsolate,
                        &[&["nr_requested"], &["nr_scanned"], &["nr_taken"], &["lru"]],
                    ),
                    "mm_vmscan_lru_shrink_inactive" => {
                        // reclaim_flags (6.1, 6.18): optional, older formats may lack it.
                        opt = Some((7, &["reclaim_flags"]));
                        (
                            VmKind::ShrinkInactive,
                            &[
                                &["nid"],
                                &["nr_scanned"],
                                &["nr_reclaimed"],
                                &["priority"],
                                &["nr_ref_keep"],
                                &["nr_activate0"],
                                &["nr_activate1"],
                            ],
                        )
                    }
                    "mm_vmscan_lru_shrink_active" => (
                        VmKind::ShrinkActive,
                        &[
                            &["nid"],
                            &["nr_taken"],
                            &["nr_active"],
                            &["nr_deactivated"],
                            &["nr_referenced"],
                        ],
                    ),
                    "mm_vmscan_write_folio" => (VmKind::WriteFolio, &[&["pfn"]]),
                    _ => (VmKind::Other, &[]),
                };
                kind = Kind::Vmscan(v);
                req = r;
            }
            ("compaction", _) if n.starts_with("mm_compaction_") => {
                short = Sym::from(strip(n, "mm_compaction_"));
                kind = Kind::Compaction;
            }
            (_, _) if n.starts_with("hugetlbfs_") => {
                short = Sym::from(strip(n, "hugetlbfs_"));
                kind = Kind::Hugetlbfs;
            }
            (_, "mm_collapse_huge_page") => {
                kind = Kind::CollapseHugePage;
                req = &[&["mm"], &["status"]];
            }
            ("huge_memory", _) => kind = Kind::Khugepaged,
            (_, _) if n.starts_with("mm_khugepaged_") => kind = Kind::Khugepaged,
            ("syscalls", _) if n.starts_with("sys_enter_") => {
                if let Some(nr) = Syscall::from_name(strip(n, "sys_enter_")) {
                    kind = Kind::SysEnter(nr);
                }
            }
            ("syscalls", _) if n.starts_with("sys_exit_") => {
                if let Some(nr) = Syscall::from_name(strip(n, "sys_exit_")) {
                    kind = Kind::SysExit(nr);
                    req = &[&["ret"]];
                }
            }
            ("sched", "sched_process_fork") => {
                kind = Kind::SchedProcessFork;
                req = &[&["parent_pid"], &["child_pid"], &["child_comm"]];
            }
            ("sched", "sched_process_exec") => {
                kind = Kind::SchedProcessExec;
                req = &[&["pid"], &["old_pid"]];
            }
            ("sched", "sched_process_exit") => {
                kind = Kind::SchedProcessExit;
                req = &[&["pid"]];
            }
            ("sched", "sched_switch") => {
                let table = format.flags.get("prev_state").cloned().unwrap_or_default();
                kind = Kind::SchedSwitch {
                    table,
                    report_max: plus_mask(&format.print_fmt),
                };
                req = &[
                    &["prev_pid"],
                    &["prev_state"],
                    &["next_pid"],
                    &["next_comm"],
                ];
            }
            ("sched", "sched_migrate_task") => {
                kind = Kind::SchedMigrateTask;
                req = &[&["pid"], &["orig_cpu"], &["dest_cpu"]];
            }
            ("task", "task_newtask") => {
                kind = Kind::TaskNewtask;
                req = &[&["pid"], &["clone_flags"]];
            }
            (_, "exit_mmap") => kind = Kind::ExitMmap,
            ("kmem", "rss_stat") => {
                kind = Kind::RssStat;
                req = &[&["mm_id"], &["curr"], &["member"], &["size"]];
            }
            ("filemap", "mm_filemap_add_to_page_cache")
            | ("filemap", "mm_filemap_delete_from_page_cache") => {
                kind = Kind::Filemap {
                    add: n == "mm_filemap_add_to_page_cache",
                };
                req = &[&["pfn"], &["i_ino"], &["index"]];
                opt = Some((3, &["order"]));
            }
            ("irq_vectors", "call_function_entry" | "call_function_single_entry") => {
                kind = Kind::CallFunctionEntry {
                    single: n == "call_function_single_entry",
                };
                req = &[&["vector"]];
            }
            _ if format.field("__probe_ip").is_some() => {
                kind = Kind::Kprobe;
                req = &[&["__probe_ip"]];
            }
            ("damon", "damon_aggregated") => {
                kind = Kind::Damon;
                req = &[
                    &["target_id"],
                    &["nr_regions"],
                    &["start"],
                    &["end"],
                    &["nr_accesses"],
                ];
                opt = Some((5, &["age"]));
            }
            _ => {}
        }
        let mut f: [Option<F>; 8] = [None; 8];
        if let Kind::SysEnter(_) = kind {
            // Arguments in declaration order, whatever the kernel named them.
            let args = format.payload_fields().filter(|x| x.name != "__syscall_nr");
            for (slot, x) in f.iter_mut().zip(args) {
                *slot = Some(F {
                    offset: x.offset,
                    size: x.size,
                    kind: x.kind,
                });
            }
        } else {
            for (i, names) in req.iter().enumerate() {
                match (fl(names), f.get_mut(i)) {
                    (Some(x), Some(slot)) => *slot = Some(x),
                    _ => {
                        kind = Kind::Other;
                        short = name.clone();
                        f = [None; 8];
                        break;
                    }
                }
            }
            if let (Some((i, names)), false) = (opt, matches!(kind, Kind::Other)) {
                if let Some(slot) = f.get_mut(i) {
                    *slot = fl(names);
                }
            }
        }
        let symbols = format
            .symbolic
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.iter().map(|(v, s)| (*v, Sym::from(s.as_str()))).collect(),
                )
            })
            .collect();
        let hot_field = match kind {
            Kind::TlbFlush => "reason",
            Kind::RssStat => "member",
            _ => "",
        };
        let hot = symbols_of(&symbols, hot_field);
        let states = if matches!(kind, Kind::SchedSwitch { .. }) {
            (0..STATE_CACHE).map(|_| OnceLock::new()).collect()
        } else {
            Vec::new()
        };
        Plan {
            name,
            short,
            kind,
            f,
            format,
            symbols,
            hot,
            states,
        }
    }
}

fn symbols_of(symbols: &BTreeMap<String, Vec<(i64, Sym)>>, field: &str) -> Vec<(i64, Sym)> {
    symbols.get(field).cloned().unwrap_or_default()
}

/// The `TASK_REPORT_MAX` bit of `sched_switch`'s print fmt: the `X` of the last
/// `REC->prev_state & X ? "+" : ""`.
fn plus_mask(fmt: &str) -> Option<u64> {
    let q = fmt.find("? \"+\"")?;
    let before = fmt.get(..q)?;
    let at = before.rfind("REC->prev_state &")?;
    let expr = before.get(at + "REC->prev_state &".len()..)?;
    u64::try_from(super::format::eval_int(expr)?).ok()
}

/// `REC->flags & 0x0001u ? "M" : " ", ...` ternaries of `mm_lru_insertion`, in print order.
fn ternary_flags(fmt: &str, field: &str) -> Vec<(u64, String, String)> {
    let pat = format!("REC->{field} & ");
    let mut out = Vec::new();
    let mut rest = fmt;
    while let Some(at) = rest.find(&pat) {
        rest = rest.get(at + pat.len()..).unwrap_or("");
        let Some(q) = rest.find('?') else { break };
        let num = rest
            .get(..q)
            .unwrap_or("")
            .trim()
            .trim_end_matches(['u', 'U', 'l', 'L']);
        let Some(v) = num
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .or_else(|| num.parse::<u64>().ok())
        else {
            continue;
        };
        let after = rest.get(q + 1..).unwrap_or("");
        let mut strs = after.split('"');
        let (_, Some(on), Some(mid), Some(off)) =
            (strs.next(), strs.next(), strs.next(), strs.next())
        else {
            break;
        };
        if mid.trim() != ":" {
            continue;
        }
        out.push((v, on.to_string(), off.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_switch_plus_mask() {
        let f = "\"%s%s\", (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & 3, \"|\", { 0x00000001, \"S\" }) : \"R\", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000040) + 1) << 1) ? \"+\" : \"\"";
        assert_eq!(plus_mask(f), Some(0x84));
        assert_eq!(
            plus_mask("\"%s\", REC->prev_state & 1024 ? \"+\" : \"\""),
            Some(1024)
        );
        assert_eq!(plus_mask("\"%d\", REC->prev_state"), None);
    }

    #[test]
    fn lru_insertion_ternaries() {
        let f = "\"folio=%p flags=%s%s\", REC->folio, REC->flags & 0x0001u ? \"M\" : \" \", REC->flags & 0x0002u ? \"a\" : \"f\"";
        assert_eq!(
            ternary_flags(f, "flags"),
            vec![(1, "M".into(), " ".into()), (2, "a".into(), "f".into())]
        );
    }

    /// Formats as the 6.1 guest's tracefs has them (corpus/captures/k61-*).
    #[test]
    fn linux_6_1_receipts_and_kprobes() {
        let common = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n";
        let cfe = format!("name: call_function_single_entry\nID: 90\nformat:\n{common}\tfield:int vector;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"vector=%d\", REC->vector\n");
        let kp = format!("name: folio_referenced_one\nID: 1600\nformat:\n{common}\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n\nprint fmt: \"(%lx)\", REC->__probe_ip\n");
        let dec = Decoder {
            endian: Endian::Little,
            kernel_long: 8,
            kallsyms: Arc::new(Kallsyms::default()),
            sources: Vec::new(),
            plans: Vec::new(),
        };
        let mut raw = vec![0u8; 16];
        raw[8..12].copy_from_slice(&251i32.to_le_bytes());
        let p = Plan::build(Arc::new(parse_format(&cfe, "irq_vectors").unwrap()));
        assert_eq!(
            dec.decode_with(&p, &raw),
            Event::CallFunctionEntry {
                single: true,
                vector: 251
            }
        );
        // The same event name under another system is not an IPI receipt.
        let p = Plan::build(Arc::new(parse_format(&cfe, "other").unwrap()));
        assert!(matches!(dec.decode_with(&p, &raw), Event::Other { .. }));
        let p = Plan::build(Arc::new(parse_format(&kp, "mmreplay").unwrap()));
        let ev = dec.decode_with(&p, &raw);
        assert_eq!(
            ev,
            Event::Kprobe {
                name: Sym::from("folio_referenced_one")
            }
        );
    }

    /// `mm_vmscan_lru_shrink_inactive` as this 6.18 host's tracefs has it (6.1's has the same
    /// fields): `reclaim_flags` gives the list; a format without it decodes with the list
    /// unknown, not as `Other`.
    #[test]
    fn shrink_inactive_reclaim_flags() {
        let fields = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int nid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long nr_scanned;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:unsigned long nr_reclaimed;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned int nr_activate0;\toffset:64;\tsize:4;\tsigned:0;\n\tfield:unsigned int nr_activate1;\toffset:68;\tsize:4;\tsigned:0;\n\tfield:unsigned long nr_ref_keep;\toffset:72;\tsize:8;\tsigned:0;\n\tfield:int priority;\toffset:88;\tsize:4;\tsigned:1;\n";
        let flags = "\tfield:int reclaim_flags;\toffset:92;\tsize:4;\tsigned:1;\n";
        let fmt = |extra: &str| {
            format!("name: mm_vmscan_lru_shrink_inactive\nID: 626\nformat:\n{fields}{extra}\nprint fmt: \"nid=%d\", REC->nid\n")
        };
        let dec = Decoder {
            endian: Endian::Little,
            kernel_long: 8,
            kallsyms: Arc::new(Kallsyms::default()),
            sources: Vec::new(),
            plans: Vec::new(),
        };
        let mut raw = vec![0u8; 96];
        raw[16..24].copy_from_slice(&4u64.to_le_bytes());
        raw[24..32].copy_from_slice(&3u64.to_le_bytes());
        raw[68..72].copy_from_slice(&1u32.to_le_bytes());
        let list = |raw: &[u8], fmt: &str| {
            let p = Plan::build(Arc::new(parse_format(fmt, "vmscan").unwrap()));
            match dec.decode_with(&p, raw) {
                Event::Vmscan(Vmscan::LruShrinkInactive {
                    nr_scanned: 4,
                    nr_reclaimed: 3,
                    nr_activate: 1,
                    file,
                    ..
                }) => file,
                other => panic!("{other:?}"),
            }
        };
        // RECLAIM_WB_FILE | RECLAIM_WB_ASYNC, then RECLAIM_WB_ANON | RECLAIM_WB_ASYNC.
        raw[92..96].copy_from_slice(&0xai32.to_le_bytes());
        assert_eq!(list(&raw, &fmt(flags)), Some(true));
        raw[92..96].copy_from_slice(&0x9i32.to_le_bytes());
        assert_eq!(list(&raw, &fmt(flags)), Some(false));
        assert_eq!(list(&raw, &fmt("")), None);
    }
}
