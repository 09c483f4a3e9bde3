//! `mmreplay stats`: the parser's public self-report (ARCHITECTURE.md, code map: `parsers/`). Only parses the
//! arguments and prints: the counting lives in `mmreplay_parsers::stats`. Must never hold model
//! logic. Exit 0 on success, 2 (via `main`) on bad input or a `--strict` failure.
use anyhow::Context;
use mmreplay::input_report::{Filters, LostReport, LostTracker, SidecarFacts};
use mmreplay_parsers::stats::{self, Filter, Stats};
use mmreplay_parsers::{Format, Options};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Capture file (`-` for stdin) or `record --raw` directory; `.zst` / zstd data is
    /// decompressed transparently.
    pub file: String,
    /// Print the report as JSON (one line; schema `docs/schema/mmreplay.schema.json`).
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// Only count records of this pid (thread id or thread-group id).
    #[arg(long)]
    pub pid: Option<i32>,
    /// Only count records of this comm (exact).
    #[arg(long)]
    pub comm: Option<String>,
    /// Fail on the first unparsable line or payload instead of counting it.
    #[arg(long)]
    pub strict: bool,
    /// Input format instead of sniffing: ftrace, trace-cmd, perf-script, trace.dat, perf.data.
    #[arg(long)]
    pub format: Option<String>,
    /// `/proc/kallsyms` copy (plain or zstd) of the recording boot, for binary captures that
    /// carry none (perf.data): names IPI callbacks so their kind can be classified.
    #[arg(long, value_name = "FILE")]
    pub kallsyms: Option<std::path::PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let format = a.format.as_deref().map(Format::from_name).transpose()?;
    if let Some(k) = &a.kallsyms {
        // Checked here so the error names the option, not the capture.
        std::fs::metadata(k)
            .with_context(|| format!("{}: cannot read (--kallsyms)", k.display()))?;
    }
    let opts = Options {
        format,
        strict: a.strict,
        kallsyms: a.kallsyms,
        ..Default::default()
    };
    let filter = Filter {
        pid: a.pid,
        comm: a.comm.clone().map(String::into_bytes),
    };
    let filters = Filters {
        pid: a.pid,
        comm: a.comm.clone(),
        workload: false,
    };
    let mut b = stats::StatsBuilder::new(filter);
    let mut lost = LostTracker::default();
    // Any format, a compiled `.mmr` included (its diagnostics are its source's).
    let s = {
        let mut src = mmreplay_parsers::open(&a.file, &opts)?;
        // By batches: one dynamic call per batch, records read in place (issue 15 item 3).
        let mut batch = Vec::with_capacity(stats::BATCH);
        loop {
            batch.clear();
            let got = src.next_batch(&mut batch, stats::BATCH);
            for r in &batch {
                lost.see(r);
                b.add(r);
            }
            if got? == 0 {
                break;
            }
        }
        let diag = src.diagnostics();
        b.finish(&src.format_name(), &diag)
    };
    let mut lost = lost.finish();
    lost.overwritten = s.overwritten_events;
    lost.overrun_per_cpu = SidecarFacts::of(Some(&a.file)).overrun_per_cpu;
    // Nothing to report is an error, not a table of zeros (issue 19).
    if s.records == 0 && filters.any() {
        anyhow::bail!(
            "{}: {} matched no record, because: no task of the capture has that pid or comm ({} lost markers)",
            a.file,
            filters.describe(),
            s.lost_markers
        );
    }
    if s.records == 0 {
        anyhow::bail!("{}: no records, because: the capture is empty", a.file);
    }
    if a.strict && lost.any() {
        anyhow::bail!(
            "{}: --strict: {} lost-event markers ({} events), {} overwritten (without --strict these are counted and reported)",
            a.file,
            lost.markers,
            lost.events,
            lost.overwritten + lost.overrun_per_cpu.values().sum::<u64>()
        );
    }
    let out = if a.json {
        let mut v = serde_json::to_value(&s).context("serialising stats")?;
        stats_json(&mut v, &lost, &filters);
        let mut j = if a.pretty {
            serde_json::to_string_pretty(&v)?
        } else {
            serde_json::to_string(&v)?
        };
        j.push('\n');
        j
    } else {
        let mut t = table(&s);
        lost_lines(&mut t, &lost);
        t
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a backtrace.
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("<stdout>: cannot write");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON shape shared with every command: the envelope, `cpus` (not `nr_cpus`), keys
/// without spaces (TLB flush reasons are kernel texts: `remote IPI send` → `remote_ipi_send`),
/// lost events per CPU and time window, the applied filters.
fn stats_json(v: &mut serde_json::Value, lost: &LostReport, filters: &Filters) {
    mmreplay::json_schema::envelope("stats", v);
    let Some(m) = v.as_object_mut() else { return };
    if let Some(serde_json::Value::Object(r)) = m.get_mut("tlb_flush_by_reason") {
        let old = std::mem::take(r);
        for (k, n) in old {
            r.insert(mmreplay::json_schema::key_of(&k), n);
        }
    }
    if let Some(serde_json::Value::Object(c)) = m.get_mut("capture") {
        if let Some(n) = c.remove("nr_cpus") {
            c.insert("cpus".into(), n);
        }
    }
    m.insert(
        "lost".into(),
        serde_json::to_value(lost).unwrap_or(serde_json::Value::Null),
    );
    m.insert(
        "filters".into(),
        serde_json::to_value(filters).unwrap_or(serde_json::Value::Null),
    );
}

/// Lost events per CPU and where, after the table.
fn lost_lines(o: &mut String, l: &LostReport) {
    for (cpu, c) in &l.per_cpu {
        let _ = writeln!(
            o,
            "lost on cpu{cpu}     {} events in {} markers between {:.6} s and {:.6} s",
            c.events,
            c.markers,
            c.first_ns as f64 / 1e9,
            c.last_ns as f64 / 1e9
        );
    }
    for (cpu, n) in l.overrun_per_cpu.iter().filter(|(_, n)| **n > 0) {
        let _ = writeln!(o, "overrun on cpu{cpu}  {n} events (sidecar per_cpu_stats)");
    }
}

fn table(s: &Stats) -> String {
    let mut o = String::new();
    let secs = s.time_span_ns as f64 / 1e9;
    let _ = writeln!(o, "format          {}", s.format);
    let _ = writeln!(o, "records         {}", s.records);
    let _ = writeln!(o, "time span       {secs:.6} s ({} ns)", s.time_span_ns);
    let _ = writeln!(o, "tasks           {}", s.tasks);
    if let Some(c) = &s.capture {
        capture_lines(&mut o, c);
    }
    let _ = writeln!(
        o,
        "lost            {} markers, {} events stated",
        s.lost_markers, s.lost_events
    );
    if s.overwritten_events > 0 {
        let _ = writeln!(
            o,
            "overwritten     {} events (ring buffer full before `trace` was read)",
            s.overwritten_events
        );
    }
    let _ = writeln!(o, "unparsed lines  {}", s.unparsed_lines);
    for (k, v) in &s.unparsed_by_kind {
        let _ = writeln!(o, "  {k:<28} {v:>10}");
    }
    for (k, v) in &s.unparsed_payload_by_event {
        let _ = writeln!(o, "  payload of {k:<16} {v:>10}");
    }
    let _ = writeln!(o, "skipped lines   {}", s.skipped_lines);
    for (k, v) in &s.skipped_by_kind {
        let _ = writeln!(o, "  {k:<28} {v:>10}");
    }
    if s.out_of_order > 0 {
        let _ = writeln!(
            o,
            "out of order    {} (worst lag {} ns)",
            s.out_of_order, s.max_lag_ns
        );
    }
    let _ = writeln!(o, "\nevents");
    for (k, v) in &s.events {
        let _ = writeln!(o, "  {k:<36} {v:>10}");
    }
    let _ = writeln!(o, "\nper cpu");
    for (k, v) in &s.events_per_cpu {
        let _ = writeln!(o, "  cpu {k:<32} {v:>10}");
    }
    if !s.tlb_flush_by_reason.is_empty() {
        let _ = writeln!(o, "\ntlb_flush by reason");
        for (k, v) in &s.tlb_flush_by_reason {
            let _ = writeln!(o, "  {k:<36} {v:>10}");
        }
    }
    let _ = writeln!(
        o,
        "\nipi             {} sends, {} targets",
        s.ipi.sends, s.ipi.targets
    );
    for (k, v) in &s.ipi_by_kind {
        let _ = writeln!(o, "  {k:<36} {v:>10}");
    }
    let m = &s.migration;
    let _ = writeln!(
        o,
        "migration       {} set, {} removed, {} restored young, {} restored dirty",
        m.set, m.removed, m.restored_young, m.restored_dirty
    );
    for l in &s.first_unparsed {
        let _ = writeln!(o, "first unparsed: {l}");
    }
    o
}

/// The producer, CPU count and unread parts of a binary capture.
fn capture_lines(o: &mut String, c: &mmreplay_parsers::binary::CaptureFacts) {
    let v = c
        .producer_version
        .as_deref()
        .unwrap_or("version not stated");
    let _ = writeln!(o, "producer        {} ({v})", c.producer);
    match c.nr_cpus {
        Some(n) => {
            let _ = writeln!(o, "cpus            {n} (stated by the capture)");
        }
        None => {
            let _ = writeln!(o, "cpus            not stated by the capture");
        }
    }
    if let (Some(at), Some(why)) = (c.damaged_at, &c.damage) {
        let _ = writeln!(
            o,
            "damaged at      byte {at}: {why}; {} bytes not read, every record before kept",
            c.damaged_bytes
        );
    }
    for (k, v) in &c.skipped_records {
        let _ = writeln!(o, "  skipped {k:<20} {v:>10}");
    }
    if c.aux_bytes > 0 {
        let _ = writeln!(o, "  aux data bytes skipped       {:>10}", c.aux_bytes);
    }
    for n in &c.notes {
        let _ = writeln!(o, "note: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// perf.data carries no kallsyms: IPI callbacks are classified only with `--kallsyms`.
    #[test]
    fn kallsyms_file_classifies_perf_ipis() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/paired");
        let cap = format!("{dir}/mmwork.perf.data.zst");
        let without = stats::stats_for_path(&cap, &Options::default(), Filter::default()).unwrap();
        let opts = Options {
            kallsyms: Some(format!("{dir}/mmwork.kallsyms.zst").into()),
            ..Default::default()
        };
        let with = stats::stats_for_path(&cap, &opts, Filter::default()).unwrap();
        assert!(with.ipi.sends > 0);
        assert_eq!(with.ipi.sends, without.ipi.sends);
        assert_eq!(without.ipi_by_kind.get("call_function_single"), None);
        assert!(with
            .ipi_by_kind
            .get("call_function_single")
            .is_some_and(|&n| n > 0));
    }

    /// A `record --raw` directory opens like a file; `--format raw-dir` on a file is an error.
    #[test]
    fn raw_directory_opens_transparently() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/paired/raw");
        let s = stats::stats_for_path(dir, &Options::default(), Filter::default()).unwrap();
        assert_eq!(s.format, "raw-dir");
        let direct =
            mmreplay_parsers::binary::rawdir::read_raw_dir(std::path::Path::new(dir)).unwrap();
        let events = direct
            .iter()
            .filter(|r| !matches!(r.event, mmreplay_parsers::Event::Lost { .. }))
            .count() as u64;
        assert!(events > 0);
        assert_eq!(s.records, events);
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../corpus/paired/mmwork.v6.dat.zst"
        );
        let opts = Options {
            format: Some(Format::RawDir),
            ..Default::default()
        };
        let e = stats::stats_for_path(file, &opts, Filter::default()).unwrap_err();
        let why = std::error::Error::source(&e).map(|s| s.to_string());
        assert!(
            why.as_deref().is_some_and(|w| w.contains("directory")),
            "{e}: {why:?}"
        );
    }

    /// fmt-overrun was recorded with a tiny buffer: its `trace` header says 1744/12071.
    #[test]
    fn overwritten_events_from_trace_header() {
        let cap = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../corpus/captures/fmt-overrun.trace.zst"
        );
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{cap}.meta.json")).unwrap())
                .unwrap();
        let written = meta["entries_written"].as_u64().unwrap();
        let kept = meta["entries_in_buffer"].as_u64().unwrap();
        assert!(written > kept);
        let s = stats::stats_for_path(cap, &Options::default(), Filter::default()).unwrap();
        assert_eq!(s.overwritten_events, written - kept);
        assert!(table(&s).contains(&format!("overwritten     {}", written - kept)));
        // A capture whose buffer kept everything reports none.
        let ok = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../corpus/captures/fmt-noirq.trace.zst"
        );
        let s = stats::stats_for_path(ok, &Options::default(), Filter::default()).unwrap();
        assert_eq!(s.overwritten_events, 0);
        assert!(!table(&s).contains("overwritten"));
    }
}
