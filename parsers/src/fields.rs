//! Small helpers shared by the text and binary parsers to build typed events from named values
//! the same way, so paired captures give identical `Record`s.
//!
//! What it owns: IPI callback classification, the `sched_switch` prev_state letters, the default
//! `tlb_flush` reason texts. It must never read input itself or know about the replay model.

use crate::record::IpiKind;

/// Classifies an IPI from the symbol names of its `callback` and `callsite` (`%pS` text such as
/// `flush_tlb_func+0x0` is accepted: the `+off/len` part is ignored).
///
/// `arch/x86/mm/tlb.c:native_flush_tlb_multi` sends `flush_tlb_func` (as a cpumask IPI, or as a
/// single-target call through `on_each_cpu_cond_mask`, whose callback is then the generic
/// `generic_smp_call_function_single_interrupt`); `mm/mmu_gather.c:tlb_remove_table_sync_one`
/// sends `tlb_remove_table_smp_sync`.
pub fn classify_ipi(callsite: Option<&str>, callback: Option<&str>) -> IpiKind {
    let base = |s: &str| -> String {
        let s = s.trim();
        let s = s.split('+').next().unwrap_or(s);
        s.split('.').next().unwrap_or(s).to_string()
    };
    let cb = callback.map(base);
    let cs = callsite.map(base);
    match cb.as_deref() {
        Some("flush_tlb_func") => IpiKind::TlbShootdown,
        Some("tlb_remove_table_smp_sync") => IpiKind::TableSync,
        Some("generic_smp_call_function_single_interrupt")
            if matches!(
                cs.as_deref(),
                Some("on_each_cpu_cond_mask") | Some("native_flush_tlb_multi")
            ) =>
        {
            IpiKind::CallFunctionSingle
        }
        Some(
            "generic_smp_call_function_single_interrupt" | "generic_smp_call_function_interrupt",
        ) if cs.as_deref() == Some("smp_call_function") => IpiKind::SmpCallFunction,
        _ => IpiKind::Other,
    }
}

/// `include/trace/events/sched.h` `__trace_sched_switch_state` letters on 6.x kernels, used when
/// a capture's format has no `__print_flags` table for `prev_state`.
pub const PREV_STATE_FLAGS: &[(u64, &str)] = &[
    (0x01, "S"),
    (0x02, "D"),
    (0x04, "T"),
    (0x08, "t"),
    (0x10, "X"),
    (0x20, "Z"),
    (0x40, "P"),
    (0x80, "I"),
];

/// Renders `prev_state` as the kernel's print fmt does: `__print_flags(state & (MAX-1), "|", ...)`
/// or `R` when no bit is set, then `+` when the preempted bit `TASK_REPORT_MAX` is set.
/// `report_max` is that bit as the capture's print fmt states it; `None` means the power of two
/// above the highest flag (true of every kernel since 4.14, where `I` is `TASK_REPORT + 1`).
pub fn prev_state_text(state: u64, table: &[(u64, &str)], report_max: Option<u64>) -> String {
    let all = table.iter().fold(0u64, |a, (v, _)| a | v);
    let report_max = report_max
        .filter(|m| m.is_power_of_two())
        .unwrap_or(if all == 0 {
            0x100
        } else {
            (all + 1).next_power_of_two()
        });
    let bits = state & (report_max - 1);
    let mut s = String::new();
    if bits == 0 {
        s.push('R');
    } else {
        let mut left = bits;
        for (v, name) in table {
            if *v != 0 && left & v == *v {
                if !s.is_empty() {
                    s.push('|');
                }
                s.push_str(name);
                left &= !v;
            }
        }
        if left != 0 {
            // libtraceevent prints leftover bits in hex after the known names.
            if !s.is_empty() {
                s.push('|');
            }
            s.push_str(&format!("0x{left:x}"));
        }
    }
    if state & report_max != 0 {
        s.push('+');
    }
    s
}

/// `include/trace/events/tlb.h` `TLB_FLUSH_REASON` texts as recent kernels print them (the
/// 6.18 column of `kernels::TLB_REASONS`), for captures whose format lacks the table.
pub fn default_tlb_reason(code: i64) -> &'static str {
    crate::kernels::TLB_REASONS
        .iter()
        .find(|(c, _, _)| i64::from(*c) == code)
        .map_or("", |(_, _, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipi_kinds() {
        assert_eq!(
            classify_ipi(None, Some("flush_tlb_func+0x0")),
            IpiKind::TlbShootdown
        );
        assert_eq!(
            classify_ipi(None, Some("tlb_remove_table_smp_sync")),
            IpiKind::TableSync
        );
        assert_eq!(
            classify_ipi(
                Some("on_each_cpu_cond_mask+0x20"),
                Some("generic_smp_call_function_single_interrupt+0x0")
            ),
            IpiKind::CallFunctionSingle
        );
        assert_eq!(
            classify_ipi(
                Some("ttwu_queue_wakelist+0x11d"),
                Some("generic_smp_call_function_single_interrupt+0x0")
            ),
            IpiKind::Other
        );
        assert_eq!(
            classify_ipi(
                Some("smp_call_function+0x28/0x60"),
                Some("generic_smp_call_function_single_interrupt+0x0/0x10")
            ),
            IpiKind::SmpCallFunction
        );
        assert_eq!(classify_ipi(None, None), IpiKind::Other);
    }

    #[test]
    fn prev_state_letters() {
        assert_eq!(prev_state_text(0, PREV_STATE_FLAGS, None), "R");
        assert_eq!(prev_state_text(0x100, PREV_STATE_FLAGS, None), "R+");
        assert_eq!(prev_state_text(1, PREV_STATE_FLAGS, None), "S");
        assert_eq!(prev_state_text(0x80, PREV_STATE_FLAGS, None), "I");
        assert_eq!(prev_state_text(3, PREV_STATE_FLAGS, None), "S|D");
        // 3.x kernels: flags up to 512, preempt bit 1024.
        let old: &[(u64, &str)] = &[(1, "S"), (2, "D"), (512, "P")];
        assert_eq!(prev_state_text(1024, old, None), "R+");
        assert_eq!(prev_state_text(8 | 1, &old[..2], Some(8)), "S+");
    }
}
