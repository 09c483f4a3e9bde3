//! What each capture kernel logs, in one table: event names, the fields the decoders read and
//! the reason strings that differ by version (shared/design/kernels.md, checked against 6.1.192
//! and 6.18 source). The text and binary decoders, the recorder's event choice and the observer
//! all read it from here, so a kernel difference is written down once.
//!
//! What it must never do: know about the model, or guess a version from anything but the names
//! a capture (or a running kernel's tracefs) actually has.

/// IPI *send* events (`ipi:*` with `callback` from v6.4 inferred, `csd:*` from v6.5). 6.1 has
/// neither: there, `ipi_raise/entry/exit` exist but x86 never calls them.
pub const IPI_SEND_EVENTS: &[&str] = &[
    "ipi:ipi_send_cpu",
    "ipi:ipi_send_cpumask",
    "csd:csd_queue_cpu",
];

/// IPI *receipt* events, in every x86-64 kernel (`arch/x86/include/asm/trace/irq_vectors.h`):
/// logged once per interrupt received, whatever number of queued calls it drains.
pub const IPI_RECEIPT_EVENTS: &[&str] = &[
    "irq_vectors:call_function_entry",
    "irq_vectors:call_function_single_entry",
];

/// `CALL_FUNCTION_VECTOR` (several targets: `smp_call_function_many_cond`).
pub const CALL_FUNCTION_VECTOR: u32 = 0xfc;
/// `CALL_FUNCTION_SINGLE_VECTOR` (one target).
pub const CALL_FUNCTION_SINGLE_VECTOR: u32 = 0xfb;

/// Events the recorder adds when none of `wanted` exists in the running kernel: (wanted,
/// substitutes, why). The substitute shows the same work from the other side.
pub const SUBSTITUTES: &[(&[&str], &[&str], &str)] = &[(
    IPI_SEND_EVENTS,
    IPI_RECEIPT_EVENTS,
    "no IPI send events (ipi_send_*/csd_*, v6.4+): IPIs are seen where they land",
)];

/// The kprobe group `mmreplay record --probe` creates its events in (`p:GROUP/SYMBOL SYMBOL`).
pub const KPROBE_GROUP: &str = "mmreplay";

/// Named kprobe sets for `record --probe NAME`: the kernel's own counts of work the model
/// predicts. `folio_referenced_one`: one rmap visit of a (folio, VMA) by `folio_referenced`;
/// `lru_gen_look_around`: one MGLRU look-around; `try_to_unmap_one`: one unmap visit.
/// `ipi`: the callbacks IPI receipts run, so receipts are attributed to TLB work where the
/// kernel logs no IPI sends (6.1). `flush_tlb_func`: one shootdown call run on a CPU other
/// than its initiator (the probe keeps only those, see [`PROBE_ARGS`]);
/// `tlb_remove_table_smp_sync`: one table-sync call (`smp_call_function` never runs it on the
/// sender).
pub const PROBE_SETS: &[(&str, &[&str])] = &[
    (
        "rmap",
        &[
            "folio_referenced_one",
            "lru_gen_look_around",
            "try_to_unmap_one",
        ],
    ),
    ("ipi", &["flush_tlb_func", "tlb_remove_table_smp_sync"]),
];

/// Kprobes defined with a fetch arg and kept only where the call ran on another CPU than the
/// one that asked for it: (symbol, fetch arg `NAME=FETCH`, field naming the initiating CPU).
/// `flush_tlb_func(void *info)` runs on the sender too (`flush_tlb_mm_range`,
/// `arch_tlbbatch_flush`, `on_each_cpu_cond_mask` with the sender in the mask); the remote
/// calls are those with `smp_processor_id() != info->initiating_cpu`, as the function itself
/// tells them apart (`arch/x86/mm/tlb.c`). `initiating_cpu` is at byte 32 of
/// `struct flush_tlb_info` (after `mm`, `start`, `end`, `new_tlb_gen`) in 6.1 and 6.18.
pub const PROBE_ARGS: &[(&str, &str, &str)] = &[("flush_tlb_func", "ini=+32(%di):u32", "ini")];

/// The `kprobe_events` line defining `GROUP/SYMBOL`, with its fetch args from [`PROBE_ARGS`].
pub fn kprobe_definition(symbol: &str) -> String {
    match PROBE_ARGS.iter().find(|(s, _, _)| *s == symbol) {
        Some((_, fetch, _)) => format!("p:{KPROBE_GROUP}/{symbol} {symbol} {fetch}"),
        None => format!("p:{KPROBE_GROUP}/{symbol} {symbol}"),
    }
}

/// The event filter keeping only remote calls of a [`PROBE_ARGS`] probe, for CPUs
/// `0..nr_cpus`: `(ini==0&&CPU!=0)||(ini==1&&CPU!=1)...` (ftrace filters compare a field with
/// a constant, never two fields; `CPU` is the generic field of the logging CPU). `None` for a
/// probe that keeps every hit.
pub fn kprobe_filter(symbol: &str, nr_cpus: u32) -> Option<String> {
    let (_, _, field) = PROBE_ARGS.iter().find(|(s, _, _)| *s == symbol)?;
    let terms: Vec<String> = (0..nr_cpus.max(1))
        .map(|c| format!("({field}=={c}&&CPU!={c})"))
        .collect();
    Some(terms.join("||"))
}

/// The kernel function a kprobe counter counts, by observed counter name.
pub const PROBE_COUNTERS: &[(&str, &str)] = &[
    ("rmap_referenced_visits", "folio_referenced_one"),
    ("lookarounds", "lru_gen_look_around"),
    ("rmap_unmap_visits", "try_to_unmap_one"),
    ("tlb_receipts", "flush_tlb_func"),
    ("table_sync_receipts", "tlb_remove_table_smp_sync"),
];

/// `tlb:tlb_flush` reason texts (`include/trace/events/tlb.h`, `TLB_FLUSH_REASON`) by code, as
/// each kernel prints them: (code, 6.1 text, 6.18 text). 6.1 writes `mm`/`ipi` in lower case;
/// 6.18 adds code 5.
pub const TLB_REASONS: &[(i32, &str, &str)] = &[
    (0, "flush on task switch", "flush on task switch"),
    (1, "remote shootdown", "remote shootdown"),
    (2, "local shootdown", "local shootdown"),
    (3, "local mm shootdown", "local MM shootdown"),
    (4, "remote ipi send", "remote IPI send"),
    (5, "", "remote wrong CPU"),
];

/// `TLB_REMOTE_SEND_IPI`: one per `native_flush_tlb_multi` call (a flush request, before lazy
/// CPUs are filtered out).
pub const TLB_REASON_REMOTE_SEND_IPI: i32 = 4;

/// The code of a `tlb_flush` reason text of either kernel (for captures printed without the
/// `(code)` suffix).
pub fn tlb_reason_code(text: &str) -> Option<i32> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    TLB_REASONS
        .iter()
        .find(|(_, a, b)| t == *a || t == *b)
        .map(|(c, _, _)| *c)
}

/// True when a text payload is a kprobe hit: `(SYMBOL+0xOFF/0xSIZE)`, then only its fetch
/// args (` NAME=VALUE` each), as `kernel/trace/trace_kprobe.c:print_kprobe_event` prints it.
pub fn is_kprobe_payload(p: &[u8]) -> bool {
    let p = p.trim_ascii();
    let Some(close) = memchr::memchr(b')', p) else {
        return false;
    };
    let (head, args) = p.split_at(close + 1);
    let args_ok = args
        .split(|&b| b == b' ')
        .filter(|a| !a.is_empty())
        .all(|a| {
            memchr::memchr(b'=', a).is_some_and(|eq| {
                eq > 0
                    && a[..eq]
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
            })
        });
    if !args_ok {
        return false;
    }
    let Some(inner) = head.strip_prefix(b"(").and_then(|q| q.strip_suffix(b")")) else {
        return false;
    };
    let Some(plus) = memchr::memchr(b'+', inner) else {
        return false;
    };
    let (sym, off) = inner.split_at(plus);
    !sym.is_empty()
        && sym
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        && off.starts_with(b"+0x")
        && off.contains(&b'/')
}

/// Which kind of IPI information a capture holds, from the event names it enabled (the
/// sidecar's `events_enabled`) or saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpiView {
    /// `ipi_send_*` / `csd_queue_cpu`: sends, classified by callback.
    Sends,
    /// Only `call_function*_entry`: receipts, unclassified (every cross-CPU call lands there).
    Receipts,
    /// Neither: IPIs cannot be observed.
    #[default]
    None,
}

impl IpiView {
    /// From `system:event` names (a sidecar's `events_enabled`).
    pub fn from_enabled<'a>(names: impl IntoIterator<Item = &'a str>) -> IpiView {
        let mut receipts = false;
        for n in names {
            if IPI_SEND_EVENTS.contains(&n) {
                return IpiView::Sends;
            }
            receipts |= IPI_RECEIPT_EVENTS.contains(&n);
        }
        if receipts {
            IpiView::Receipts
        } else {
            IpiView::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_texts_of_both_kernels() {
        assert_eq!(tlb_reason_code("remote ipi send"), Some(4));
        assert_eq!(tlb_reason_code("remote IPI send"), Some(4));
        assert_eq!(tlb_reason_code("local mm shootdown"), Some(3));
        assert_eq!(tlb_reason_code("local MM shootdown"), Some(3));
        assert_eq!(tlb_reason_code("remote wrong CPU"), Some(5));
        assert_eq!(tlb_reason_code(""), None);
        assert_eq!(tlb_reason_code("remote Ipi send"), None);
    }

    #[test]
    fn kprobe_payloads() {
        assert!(is_kprobe_payload(b"(folio_referenced_one+0x0/0x1e0)"));
        assert!(is_kprobe_payload(b" (try_to_unmap_one+0x0/0x8d0) "));
        assert!(!is_kprobe_payload(b"(folio_referenced_one)"));
        assert!(!is_kprobe_payload(b"vector=252"));
        assert!(!is_kprobe_payload(b"(a b+0x0/0x1)"));
        assert!(!is_kprobe_payload(b""));
        // With fetch args (the `ipi` set's flush_tlb_func).
        assert!(is_kprobe_payload(b"(flush_tlb_func+0x0/0x230) ini=1"));
        assert!(is_kprobe_payload(
            b"(flush_tlb_func+0x0/0x230) ini=0x1 b=2 "
        ));
        assert!(!is_kprobe_payload(b"(flush_tlb_func+0x0/0x230) ini"));
        assert!(!is_kprobe_payload(b"(flush_tlb_func+0x0/0x230) =1"));
        assert!(!is_kprobe_payload(b"(flush_tlb_func+0x0/0x230)x ini=1"));
    }

    #[test]
    fn remote_only_probe_definition_and_filter() {
        assert_eq!(
            kprobe_definition("flush_tlb_func"),
            "p:mmreplay/flush_tlb_func flush_tlb_func ini=+32(%di):u32"
        );
        assert_eq!(
            kprobe_definition("try_to_unmap_one"),
            "p:mmreplay/try_to_unmap_one try_to_unmap_one"
        );
        assert_eq!(
            kprobe_filter("flush_tlb_func", 2).as_deref(),
            Some("(ini==0&&CPU!=0)||(ini==1&&CPU!=1)")
        );
        assert_eq!(kprobe_filter("tlb_remove_table_smp_sync", 2), None);
        // Every probe with args is in a set, and every set member has a counter.
        for (sym, _, _) in PROBE_ARGS {
            assert!(PROBE_SETS.iter().any(|(_, s)| s.contains(sym)), "{sym}");
        }
        for (_, set) in PROBE_SETS {
            for sym in *set {
                assert!(PROBE_COUNTERS.iter().any(|(_, f)| f == sym), "{sym}");
            }
        }
    }

    #[test]
    fn ipi_view_prefers_sends() {
        assert_eq!(
            IpiView::from_enabled(["tlb:tlb_flush", "irq_vectors:call_function_entry"]),
            IpiView::Receipts
        );
        assert_eq!(
            IpiView::from_enabled(["irq_vectors:call_function_entry", "ipi:ipi_send_cpu"]),
            IpiView::Sends
        );
        assert_eq!(IpiView::from_enabled(["tlb:tlb_flush"]), IpiView::None);
    }
}
