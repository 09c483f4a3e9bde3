//! Conformance over real captures.
//!
//! * Third-party files and the kernel 6.18 samples in the shared folder (`MMREPLAY_SHARED_DIR`):
//!   skipped with a note when the variable is unset, a loud failure when it is set and a file is
//!   missing. Expected numbers are the ones in `shared/external/README.md` / `samples/README.md`.
//! * The project's own `corpus/` captures (in the repo, always run).
//!
//! Event counts are also checked against an independent count made here by whitespace
//! splitting (find the timestamp token, take the next token), which shares no code with the
//! anchored tokeniser.

use mmreplay_parsers::stats::{collect, Filter};
use mmreplay_parsers::{input, Event, Options, Record, Stats};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

fn shared(rel: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("MMREPLAY_SHARED_DIR") else {
        eprintln!("note: MMREPLAY_SHARED_DIR is unset; skipping the shared-folder test for {rel}");
        return None;
    };
    let p = Path::new(&dir).join(rel);
    assert!(
        p.is_file(),
        "MMREPLAY_SHARED_DIR is set but {} is missing",
        p.display()
    );
    Some(p)
}

fn read_text(p: &Path) -> String {
    let raw = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let bytes = if mmreplay_parsers::source::is_zstd(&raw) {
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(&raw[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

fn stats(p: &Path) -> Stats {
    let mut src = input::open(
        &p.display().to_string(),
        &Options {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    collect(src.as_mut(), Filter::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn records(p: &Path) -> Vec<Record> {
    let mut src = input::open(&p.display().to_string(), &Options::default()).unwrap();
    let mut v = Vec::new();
    while let Some(r) = src.next_record().unwrap() {
        v.push(r);
    }
    v
}

/// Independent count: split on whitespace, find the first `<digits>.<digits>:` token, the event
/// is the next token (after a perf period column), normalised like the kernel's names.
fn independent_counts(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty()
            || line.starts_with('#')
            || line.starts_with('\t')
            || line.starts_with("cpus=")
            || line.starts_with("version = ")
            || line.starts_with("CPU:")
        {
            continue;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        let i = toks
            .iter()
            .position(|t| {
                t.strip_suffix(':').is_some_and(|n| {
                    n.contains('.')
                        && n.split('.')
                            .all(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
                })
            })
            .unwrap_or_else(|| panic!("no timestamp token in {line:?}"));
        let mut j = i + 1;
        if toks[j].bytes().all(|c| c.is_ascii_digit()) {
            j += 1;
        }
        let ev = toks[j];
        let name = if let Some(p) = ev.find('(') {
            format!("sys_enter_{}", &ev[4..p])
        } else if toks.get(j + 1) == Some(&"->") {
            format!("sys_exit_{}", &ev[4..])
        } else {
            ev.trim_end_matches(':')
                .rsplit(':')
                .next()
                .unwrap()
                .to_string()
        };
        *m.entry(name).or_insert(0) += 1;
    }
    m
}

fn assert_matches_independent(p: &Path, s: &Stats) {
    let want = independent_counts(&read_text(p));
    assert_eq!(
        s.events,
        want,
        "{}: events differ from the independent count",
        p.display()
    );
    assert_eq!(s.records, want.values().sum::<u64>());
    assert_eq!(
        s.unparsed_lines,
        0,
        "{}: {:?}",
        p.display(),
        s.first_unparsed
    );
}

fn assert_time_ordered(rs: &[Record]) {
    assert!(
        rs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
        "records not time-ordered"
    );
}

#[test]
fn damo_perf_script() {
    let Some(p) = shared("external/awslabs__damo/tests/report/perf.data.script") else {
        return;
    };
    let s = stats(&p);
    assert_eq!(s.format, "perf-script");
    assert_eq!(s.records, 10_260);
    assert_eq!(s.events.get("damon_aggregated"), Some(&10_260));
    assert_eq!(s.events_per_cpu, BTreeMap::from([(0, 10_260)]));
    assert_eq!(
        (s.first_ts_ns, s.last_ts_ns),
        (Some(82_820_952_659_000), Some(82_877_315_633_000))
    );
    assert_eq!((s.tasks, s.lost_markers, s.unparsed_lines), (1, 0, 0));
    assert_matches_independent(&p, &s);
    let rs = records(&p);
    assert_time_ordered(&rs);
    let mut sum = 0u64;
    let mut by_regions: BTreeMap<u32, u64> = BTreeMap::new();
    for r in &rs {
        assert_eq!((r.pid, r.comm.as_bytes()), (4452, &b"kdamond.0"[..]));
        let Event::DamonAggregated {
            target_id,
            nr_regions,
            nr_accesses,
            age,
            ..
        } = r.event
        else {
            panic!("not damon: {r:?}")
        };
        assert_eq!((target_id, age), (18446623435582458880, None));
        sum += nr_accesses as u64;
        *by_regions.entry(nr_regions).or_insert(0) += 1;
    }
    assert_eq!(sum, 87_821);
    assert_eq!(
        (
            by_regions[&18],
            by_regions[&19],
            by_regions[&17],
            by_regions[&20],
            by_regions[&21]
        ),
        (3402, 3268, 2074, 1100, 273)
    );
}

#[test]
fn lisa_trace_cmd_report() {
    let Some(p) = shared("external/ARM-software__lisa/tests/assets/trace_txt/trace.txt") else {
        return;
    };
    let s = stats(&p);
    assert_eq!(s.format, "trace-cmd");
    assert_eq!(s.records, 2_941);
    let want: BTreeMap<String, u64> = [
        ("sched_switch", 1856),
        ("sched_wakeup", 1068),
        ("print", 14),
        ("sched_overutilized", 3),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(s.events, want);
    assert_eq!(
        s.events_per_cpu,
        BTreeMap::from([(0, 380), (1, 771), (2, 1677), (3, 64), (4, 30), (5, 19)])
    );
    assert_eq!(
        (s.first_ts_ns, s.last_ts_ns),
        (Some(76_211_513_000), Some(82_888_010_000))
    );
    assert_eq!(s.skipped_by_kind.get("version_line"), Some(&1));
    assert_eq!(s.skipped_by_kind.get("cpus_line"), Some(&1));
    assert_eq!((s.unparsed_lines, s.out_of_order), (0, 0));
    assert_matches_independent(&p, &s);
    // `-R`-style raw sched_switch: numeric prev_state kept as printed.
    let rs = records(&p);
    assert!(rs.iter().any(|r| matches!(&r.event, Event::SchedSwitch { prev_pid: 1701, prev_state, .. } if &**prev_state == "64")));
}

#[test]
fn tracecompass_ftrace_syscalls() {
    let Some(p) = shared("external/eclipse-tracecompass-incubator__org.eclipse.tracecompass.incubator/tracetypes/org.eclipse.tracecompass.incubator.ftrace.core.tests/res/ftrace_syscalls.txt") else { return };
    let s = stats(&p);
    assert_eq!(
        (s.format.as_str(), s.records, s.unparsed_lines),
        ("ftrace", 1_052, 0)
    );
    let ev = |k: &str| s.events.get(k).copied().unwrap_or(0);
    let enters: u64 = s
        .events
        .iter()
        .filter(|(k, _)| k.starts_with("sys_enter_"))
        .map(|(_, v)| v)
        .sum();
    let exits: u64 = s
        .events
        .iter()
        .filter(|(k, _)| k.starts_with("sys_exit_"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!((enters, exits), (423, 419));
    for (name, n) in [
        ("sched_switch", 60),
        ("sched_stat_runtime", 40),
        ("sched_waking", 30),
        ("sched_wakeup", 30),
        ("sched_wake_idle_without_ipi", 24),
        ("sched_process_wait", 4),
        ("softirq_raise", 4),
        ("softirq_entry", 4),
        ("softirq_exit", 4),
        ("sched_migrate_task", 3),
        ("sched_process_exit", 2),
        ("sched_process_fork", 1),
        ("sched_wakeup_new", 1),
        ("sched_process_exec", 1),
        ("irq_handler_entry", 1),
        ("irq_handler_exit", 1),
        ("sys_enter_mmap", 25),
        ("sys_exit_mmap", 25),
        ("sys_enter_mprotect", 8),
        ("sys_exit_mprotect", 8),
        ("sys_enter_brk", 3),
        ("sys_exit_brk", 3),
        ("sys_enter_munmap", 1),
        ("sys_exit_munmap", 1),
        ("sys_enter_clone", 1),
        ("sys_exit_clone", 2),
        ("sys_enter_execve", 1),
        ("sys_exit_execve", 1),
    ] {
        assert_eq!(ev(name), n, "{name}");
    }
    assert_eq!(
        s.events_per_cpu,
        BTreeMap::from([
            (0, 106),
            (1, 75),
            (2, 218),
            (3, 96),
            (4, 66),
            (5, 396),
            (6, 46),
            (7, 49)
        ])
    );
    assert_eq!(
        (s.first_ts_ns, s.last_ts_ns),
        (Some(395_705_673_000), Some(395_708_272_000))
    );
    assert_matches_independent(&p, &s);
    let rs = records(&p);
    assert_time_ordered(&rs);
    assert_eq!(
        rs.iter().filter(|r| r.comm.as_bytes() == b"<...>").count(),
        350
    );
    // `sys_mmap(addr: 0, len: 1ef9c, prot: 1, flags: 2, fd: 3, off: 0)`: hex without 0x.
    assert!(rs.iter().any(
        |r| matches!(&r.event, Event::SysEnter { args, .. } if args.0 == [0, 0x1ef9c, 1, 2, 3, 0])
    ));
}

#[test]
fn flamegraph_perf_page_faults() {
    let Some(p) = shared("external/brendangregg__FlameGraph/test/perf-java-faults-01.txt") else {
        return;
    };
    let s = stats(&p);
    assert_eq!((s.format.as_str(), s.records), ("perf-script", 23));
    assert_eq!(s.events.get("page-faults"), Some(&23));
    assert_eq!(
        s.events_per_cpu,
        BTreeMap::from([(11, 5), (13, 1), (21, 7), (25, 5), (29, 5)])
    );
    assert_eq!(s.skipped_by_kind.get("callchain"), Some(&143));
    assert_eq!(s.skipped_by_kind.get("blank"), Some(&23));
    assert_eq!(s.unparsed_lines, 0);
    let rs = records(&p);
    let by = |c: &[u8]| rs.iter().filter(|r| r.comm.as_bytes() == c).count();
    assert_eq!((by(b"perf"), by(b"sleep"), by(b"java")), (10, 7, 6));
}

#[test]
fn kernel_618_samples() {
    let Some(small) = shared("samples/fork-exit-hugetlb-2.trace.zst") else {
        return;
    };
    let Some(big) = shared("samples/threads-shootdown.trace.zst") else {
        return;
    };
    let s = stats(&small);
    assert_eq!((s.records, s.skipped_lines), (1_972, 12), "1,984 lines");
    assert_matches_independent(&small, &s);
    assert_time_ordered(&records(&small));
    let s = stats(&big);
    assert_eq!((s.records, s.skipped_lines), (172_541, 12), "172,553 lines");
    assert_eq!(s.tlb_flush_by_reason.get("remote IPI send"), Some(&285));
    assert_eq!(
        (s.lost_markers, s.unparsed_lines, s.out_of_order),
        (0, 0, 0)
    );
    assert_matches_independent(&big, &s);
    // Every ipi_send_cpu in this capture targets one CPU.
    assert_eq!(s.ipi.sends, s.events["ipi_send_cpu"]);
    assert_eq!(s.ipi.targets, s.ipi.sends);
    let rs = records(&big);
    assert_time_ordered(&rs);
    let madv = rs.iter().filter(|r| matches!(&r.event, Event::SysEnter { nr: mmreplay_parsers::record::Syscall::Madvise, args } if args.0[1] == 0x100000 && args.0[2] == 4)).count();
    assert!(madv > 0, "MADV_DONTNEED of 1 MiB pieces decoded");
}

/// The project's own captures: every `.zst` under corpus/captures and the text files under
/// corpus/paired must parse with nothing unparsed, and agree with the independent count.
#[test]
fn corpus_captures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in ["captures", "paired"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd.flatten() {
                let p = e.path();
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                if n.ends_with(".trace.zst")
                    || n.ends_with(".report.txt.zst")
                    || n.ends_with(".script.txt.zst")
                {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no captures under {}", root.display());
    for p in &files {
        let s = stats(p);
        assert!(s.records > 0, "{}", p.display());
        let text = read_text(p);
        let lost_lines = text
            .lines()
            .filter(|l| {
                l.starts_with("CPU:") && (l.contains("[LOST ") || l.contains("EVENTS DROPPED]"))
            })
            .count();
        assert_eq!(s.lost_markers, lost_lines as u64, "{}", p.display());
        assert_matches_independent(p, &s);
        check_sidecar(p, &s);
        eprintln!(
            "{}: {} records, {} events kinds, span {} ns",
            p.display(),
            s.records,
            s.events.len(),
            s.time_span_ns
        );
    }
}

/// `mmreplay record` writes `<capture>.meta.json` next to each capture: its counts must agree.
fn check_sidecar(p: &Path, s: &Stats) {
    let meta_path = PathBuf::from(format!("{}.meta.json", p.display()));
    let Ok(text) = std::fs::read_to_string(&meta_path) else {
        return; // paired text files have no sidecar
    };
    let m: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
    let n = |k: &str| m.get(k).and_then(|v| v.as_u64());
    let what = p.display();
    if let Some(markers) = n("lost_markers") {
        assert_eq!(s.lost_markers, markers, "{what}: lost markers");
    }
    if let Some(lost) = n("lost_events_in_markers") {
        assert_eq!(s.lost_events, lost, "{what}: lost events");
    }
    if let Some(lines) = n("lines") {
        let total = s.records + s.lost_markers + s.skipped_lines + s.unparsed_lines;
        assert_eq!(total, lines, "{what}: every line accounted for");
    }
    // The `trace` file holds exactly the buffer's entries (no overwrite: entries == written).
    if m.get("source").and_then(|v| v.as_str()) == Some("trace") {
        if let (Some(inbuf), Some(written)) = (n("entries_in_buffer"), n("entries_written")) {
            if inbuf == written {
                assert_eq!(s.records, inbuf, "{what}: records vs entries-in-buffer");
                if let Some(per_cpu) = m.get("per_cpu_stats").and_then(|v| v.as_object()) {
                    for (cpu, st) in per_cpu {
                        let c: u32 = cpu.trim_start_matches("cpu").parse().unwrap();
                        let want = st.get("entries").and_then(|v| v.as_u64()).unwrap();
                        assert_eq!(
                            s.events_per_cpu.get(&c).copied().unwrap_or(0),
                            want,
                            "{what}: {cpu}"
                        );
                    }
                }
            }
        }
    }
    if m.get("record_tgid").and_then(|v| v.as_bool()) == Some(true) {
        let rs = records(p);
        let with = rs.iter().filter(|r| r.tgid.is_some()).count();
        assert!(
            with * 10 >= rs.len() * 9,
            "{what}: record-tgid capture but only {with}/{} records have a tgid",
            rs.len()
        );
    }
}
