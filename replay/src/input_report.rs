//! What a run read and assumed about its input, reported by every `replay`, `fidelity` and
//! `report` run in text and JSON (`input`): lost and overwritten events per CPU and time
//! window, unparsed and skipped lines, out-of-order records, the applied filters, where the CPU
//! count and trace clock came from. Nothing a run tolerated may go unsaid (issue 19).
//!
//! `problems` lists each tolerance `--strict` turns into an error. It must never decide model
//! semantics or read the trace itself: it is fed the records the run already reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mmreplay_parsers::record::{Event, Record};
use mmreplay_parsers::Diagnostics;
use serde::Serialize;

/// Lost-event markers listed one by one (all are counted per CPU).
pub const MAX_LOST_WINDOWS: usize = 32;

/// Where a fact about the capture came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FactSource {
    /// A command-line option (`--cpus`).
    Option,
    /// The capture itself (ftrace `#P:`, perf HEADER_NRCPUS, a raw directory's `per_cpu/`).
    Capture,
    /// The capture's `.meta.json` sidecar.
    Sidecar,
    /// Nobody said: the default was assumed (also listed under `approximations`).
    #[default]
    Assumed,
    /// Not known and not needed.
    Unknown,
}

impl FactSource {
    pub fn name(self) -> &'static str {
        match self {
            FactSource::Option => "option",
            FactSource::Capture => "capture",
            FactSource::Sidecar => "sidecar",
            FactSource::Assumed => "assumed",
            FactSource::Unknown => "unknown",
        }
    }
}

/// Lost events on one CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LostOnCpu {
    pub markers: u64,
    /// Events the markers say were lost.
    pub events: u64,
    /// Markers that did not say how many (`[EVENTS DROPPED]`).
    pub markers_without_count: u64,
    /// Time of the first and last marker (trace clock, ns).
    pub first_ns: u64,
    pub last_ns: u64,
}

/// One lost-events marker: where in the capture events are missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LostWindow {
    pub cpu: u32,
    /// Time of the marker (the events were lost just before it).
    pub at_ns: u64,
    /// Events lost, when the marker says.
    pub events: Option<u64>,
}

/// Lost and overwritten events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LostReport {
    pub markers: u64,
    pub events: u64,
    pub markers_without_count: u64,
    /// Events the ring buffer overwrote before `trace` was read (ftrace header
    /// `entries-in-buffer/entries-written`), with no marker in the stream.
    pub overwritten: u64,
    /// Per-CPU ring-buffer `overrun` the recorder read from tracefs (`per_cpu_stats` of the
    /// sidecar): events overwritten on that CPU.
    pub overrun_per_cpu: BTreeMap<u32, u64>,
    pub per_cpu: BTreeMap<u32, LostOnCpu>,
    /// The first `MAX_LOST_WINDOWS` markers in stream order.
    pub windows: Vec<LostWindow>,
    /// The time windows per CPU that hold the lost events (`lost_windows.rs`); absent when
    /// nothing was lost.
    #[serde(skip_serializing_if = "crate::lost_windows::NotComparable::is_empty")]
    pub not_comparable_for_fidelity: crate::lost_windows::NotComparable,
}

impl LostReport {
    /// Whether anything was lost.
    pub fn any(&self) -> bool {
        self.markers > 0 || self.overwritten > 0 || self.overrun_per_cpu.values().any(|&n| n > 0)
    }
}

/// The parser's counts of what it did not turn into records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParseReport {
    /// Lines read (text formats), including skipped and unparsed ones.
    pub lines: u64,
    pub unparsed_lines: u64,
    pub unparsed_by_kind: BTreeMap<String, u64>,
    pub unparsed_payload_by_event: BTreeMap<String, u64>,
    pub skipped_lines: u64,
    pub skipped_by_kind: BTreeMap<String, u64>,
    /// Records later than the reorder window (kept, in arrival order).
    pub out_of_order: u64,
    pub max_lag_ns: u64,
    pub first_unparsed: Vec<String>,
    /// Where a binary capture broke off (every record before it was read).
    pub damaged_at: Option<u64>,
    pub damage: Option<String>,
}

/// The filters a run applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub pid: Option<i32>,
    pub comm: Option<String>,
    /// `--workload`: `pid` came from the sidecar's `workload_pid`.
    pub workload: bool,
}

impl Filters {
    pub fn any(&self) -> bool {
        self.pid.is_some() || self.comm.is_some()
    }

    /// `--pid 12 --comm x` as typed.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.pid {
            parts.push(if self.workload {
                format!("--workload (pid {p})")
            } else {
                format!("--pid {p}")
            });
        }
        if let Some(c) = &self.comm {
            parts.push(format!("--comm {c}"));
        }
        parts.join(" ")
    }
}

/// Everything a run says about its input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InputReport {
    pub cpus: u32,
    pub cpus_source: FactSource,
    /// The trace clock (`trace_clock` of the sidecar), `None` when nothing says.
    pub clock: Option<String>,
    pub clock_source: FactSource,
    /// The kernel whose mechanics the model followed (`MAJOR.MINOR`) and where that came from
    /// (`--kernel`, the sidecar, or assumed: the default 6.18).
    pub kernel: Option<String>,
    pub kernel_source: FactSource,
    pub filters: Filters,
    /// Records the filters left out (context switches are always kept).
    pub filtered_out: u64,
    /// Records the filters kept, other than context switches.
    pub matched: u64,
    pub lost: LostReport,
    pub parse: ParseReport,
}

/// Collects lost markers from the record stream of a run.
#[derive(Default)]
pub struct LostTracker {
    lost: LostReport,
    windows: crate::lost_windows::LostWindows,
}

impl LostTracker {
    /// Look at one record (cheap for every record that is not a marker).
    #[inline]
    pub fn see(&mut self, r: &Record) {
        if let Event::Lost { count } = &r.event {
            self.see_marker(r.cpu, r.ts_ns, *count);
            self.windows.marker(r.cpu, r.ts_ns, *count);
        } else {
            self.windows.record(r.cpu, r.ts_ns);
        }
    }

    #[cold]
    fn see_marker(&mut self, cpu: u32, ts_ns: u64, count: Option<u64>) {
        let l = &mut self.lost;
        l.markers += 1;
        let c = l.per_cpu.entry(cpu).or_insert_with(|| LostOnCpu {
            first_ns: ts_ns,
            ..LostOnCpu::default()
        });
        c.markers += 1;
        c.last_ns = ts_ns;
        match count {
            Some(n) => {
                l.events = l.events.saturating_add(n);
                c.events = c.events.saturating_add(n);
            }
            None => {
                l.markers_without_count += 1;
                c.markers_without_count += 1;
            }
        }
        if l.windows.len() < MAX_LOST_WINDOWS {
            l.windows.push(LostWindow {
                cpu,
                at_ns: ts_ns,
                events: count,
            });
        }
    }

    pub fn finish(self) -> LostReport {
        let mut l = self.lost;
        l.not_comparable_for_fidelity = self.windows.finish();
        l
    }
}

/// Facts of the sidecar (`TRACE.meta.json`) this report uses.
#[derive(Clone, Debug, Default)]
pub struct SidecarFacts {
    pub clock: Option<String>,
    pub overrun_per_cpu: BTreeMap<u32, u64>,
}

impl SidecarFacts {
    /// From the sidecar of `trace` (`None`: the bundled capture's).
    pub fn of(trace: Option<&str>) -> Self {
        let text = match trace {
            // Beside the file, carried in a `.mmr`, or a bundled capture's.
            Some(t) => crate::source::sidecar_text(t),
            None => Some(crate::source::BUNDLED_META.to_string()),
        };
        text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|m| Self::from_meta(&m))
            .unwrap_or_default()
    }

    pub fn from_meta(m: &serde_json::Value) -> Self {
        let clock = m
            .get("trace_clock")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        let mut overrun_per_cpu = BTreeMap::new();
        if let Some(per) = m
            .get("per_cpu_stats")
            .and_then(serde_json::Value::as_object)
        {
            for (k, v) in per {
                let cpu = k.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok());
                let n = v.get("overrun").and_then(serde_json::Value::as_u64);
                if let (Some(cpu), Some(n)) = (cpu, n) {
                    overrun_per_cpu.insert(cpu, n);
                }
            }
        }
        SidecarFacts {
            clock,
            overrun_per_cpu,
        }
    }
}

impl InputReport {
    /// Assemble the report from what the run saw.
    pub fn new(
        cpus: (u32, FactSource),
        sidecar: SidecarFacts,
        filters: Filters,
        lost: LostReport,
        diag: Option<&Diagnostics>,
    ) -> Self {
        let mut lost = lost;
        let mut parse = ParseReport::default();
        if let Some(d) = diag {
            lost.overwritten = d.overwritten_events;
            parse = ParseReport {
                lines: d.lines,
                unparsed_lines: d.unparsed_lines,
                unparsed_by_kind: d.unparsed_by_kind.clone(),
                unparsed_payload_by_event: d.unparsed_payload_by_event.clone(),
                skipped_lines: d.skipped_lines,
                skipped_by_kind: d.skipped_by_kind.clone(),
                out_of_order: d.out_of_order,
                max_lag_ns: d.max_lag_ns,
                first_unparsed: d.first_unparsed.clone(),
                damaged_at: d.capture.as_ref().and_then(|c| c.damaged_at),
                damage: d.capture.as_ref().and_then(|c| c.damage.clone()),
            };
        }
        lost.overrun_per_cpu = sidecar.overrun_per_cpu;
        InputReport {
            cpus: cpus.0,
            cpus_source: cpus.1,
            clock_source: if sidecar.clock.is_some() {
                FactSource::Sidecar
            } else {
                FactSource::Unknown
            },
            clock: sidecar.clock,
            kernel: None,
            kernel_source: FactSource::Unknown,
            filters,
            filtered_out: 0,
            matched: 0,
            lost,
            parse,
        }
    }

    /// Every tolerance this run took; `--strict` makes each an error (exit 2).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let l = &self.lost;
        if l.markers > 0 {
            p.push(format!(
                "{} lost-event markers ({} events stated lost{})",
                l.markers,
                l.events,
                if l.markers_without_count > 0 {
                    format!(", {} markers without a count", l.markers_without_count)
                } else {
                    String::new()
                }
            ));
        }
        if l.overwritten > 0 {
            p.push(format!(
                "{} events overwritten in the ring buffer before it was read",
                l.overwritten
            ));
        }
        let overrun: u64 = l.overrun_per_cpu.values().sum();
        if overrun > 0 && l.markers == 0 && l.overwritten == 0 {
            p.push(format!(
                "{overrun} events overrun in the ring buffer (sidecar per_cpu_stats)"
            ));
        }
        if self.parse.unparsed_lines > 0 {
            p.push(format!("{} unparsed lines", self.parse.unparsed_lines));
        }
        if self.parse.out_of_order > 0 {
            p.push(format!(
                "{} records out of order (worst lag {} ns)",
                self.parse.out_of_order, self.parse.max_lag_ns
            ));
        }
        if let (Some(at), Some(why)) = (self.parse.damaged_at, &self.parse.damage) {
            p.push(format!("capture damaged at byte {at}: {why}"));
        }
        if self.kernel_source == FactSource::Assumed {
            p.push(format!(
                "the capture's kernel is not stated by a sidecar ({} assumed; --kernel X.Y)",
                self.kernel.as_deref().unwrap_or("?")
            ));
        }
        if self.cpus_source == FactSource::Assumed {
            p.push(format!(
                "the CPU count is not stated by the capture or its sidecar ({} assumed; --cpus N)",
                self.cpus
            ));
        }
        p
    }

    /// The text lines (each ends with a newline).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let pr = &self.parse;
        let kinds = |m: &BTreeMap<String, u64>| -> String {
            if m.is_empty() {
                String::new()
            } else {
                let v: Vec<String> = m.iter().map(|(k, n)| format!("{k}={n}")).collect();
                format!(" ({})", v.join(", "))
            }
        };
        let mut unparsed = pr.unparsed_by_kind.clone();
        for (e, n) in &pr.unparsed_payload_by_event {
            unparsed.insert(format!("payload of {e}"), *n);
        }
        unparsed.remove("payload");
        let _ = writeln!(
            s,
            "input: {} lines, {} unparsed{}, {} skipped{}, {} out of order; cpus {} ({}); kernel {} ({}); clock {} ({})",
            pr.lines,
            pr.unparsed_lines,
            kinds(&unparsed),
            pr.skipped_lines,
            kinds(&pr.skipped_by_kind),
            pr.out_of_order,
            self.cpus,
            self.cpus_source.name(),
            self.kernel.as_deref().unwrap_or("not stated"),
            self.kernel_source.name(),
            self.clock.as_deref().unwrap_or("not stated"),
            self.clock_source.name(),
        );
        if let (Some(at), Some(why)) = (pr.damaged_at, &pr.damage) {
            let _ = writeln!(
                s,
                "input: damaged at byte {at}: {why} (every record before it read)"
            );
        }
        let l = &self.lost;
        if !l.any() {
            let _ = writeln!(s, "lost: none (no lost-event markers, nothing overwritten)");
        } else {
            let mut parts = Vec::new();
            if l.markers > 0 {
                parts.push(format!(
                    "{} events in {} markers{}",
                    l.events,
                    l.markers,
                    if l.markers_without_count > 0 {
                        format!(" ({} without a count)", l.markers_without_count)
                    } else {
                        String::new()
                    }
                ));
            }
            if l.overwritten > 0 {
                parts.push(format!("{} overwritten before the read", l.overwritten));
            }
            let overrun: Vec<String> = l
                .overrun_per_cpu
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| format!("cpu{c} {n}"))
                .collect();
            if !overrun.is_empty() {
                parts.push(format!("ring-buffer overrun {}", overrun.join(", ")));
            }
            let _ = writeln!(s, "lost: {}", parts.join("; "));
            for (cpu, c) in &l.per_cpu {
                let _ = writeln!(
                    s,
                    "  cpu{cpu}: {} events in {} markers between {:.6} s and {:.6} s",
                    c.events,
                    c.markers,
                    c.first_ns as f64 / 1e9,
                    c.last_ns as f64 / 1e9
                );
            }
            s.push_str(&l.not_comparable_for_fidelity.text());
        }
        if self.filters.any() {
            let _ = writeln!(
                s,
                "filter: {}: {} records matched, {} filtered out",
                self.filters.describe(),
                self.matched,
                self.filtered_out
            );
        }
        s
    }
}

/// Where a kernel choice came from, as a fact source.
pub fn kernel_source(k: &crate::kernel::KernelChoice) -> FactSource {
    match k.source {
        crate::kernel::KernelSource::Option => FactSource::Option,
        crate::kernel::KernelSource::Sidecar | crate::kernel::KernelSource::SidecarRelease => {
            FactSource::Sidecar
        }
        crate::kernel::KernelSource::Default => FactSource::Assumed,
    }
}

/// The report's text with the input lines put after its header lines (before the first blank
/// line), where a reader looks first.
pub fn splice_text(report: &str, input: &str) -> String {
    match report.split_once("\n\n") {
        Some((head, tail)) => format!("{head}\n{input}\n{tail}"),
        None => format!("{report}{input}"),
    }
}
