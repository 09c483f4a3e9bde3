//! Third-party binary captures of the shared folder (`$MMREPLAY_SHARED_DIR/external`, see its
//! README for where the expected counts come from). Skipped with a note when the variable is
//! unset; a missing file when it is set is a failure.

use mmreplay_parsers::binary::tracedat::TraceDat;
use mmreplay_parsers::binary::{read_path, BinaryFormat};
use mmreplay_parsers::Event;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn shared(rel: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("MMREPLAY_SHARED_DIR") else {
        eprintln!("note: MMREPLAY_SHARED_DIR unset, skipping test over external/{rel}");
        return None;
    };
    let p = PathBuf::from(dir).join("external").join(rel);
    assert!(
        p.is_file(),
        "MMREPLAY_SHARED_DIR is set but {} is missing",
        p.display()
    );
    Some(p)
}

#[test]
fn damo_perf_data_matches_its_perf_script_line_by_line() {
    let (Some(bin), Some(txt)) = (
        shared("awslabs__damo/tests/report/perf.data"),
        shared("awslabs__damo/tests/report/perf.data.script"),
    ) else {
        return;
    };
    let cap = read_path(&bin).unwrap();
    assert_eq!(cap.format, BinaryFormat::PerfFile);
    let recs = &cap.records;
    assert_eq!(recs.len(), 10_260);
    let text = std::fs::read_to_string(txt).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_260);
    let mut sum = 0u64;
    let mut targets = std::collections::BTreeSet::new();
    let mut nr_regions: BTreeMap<u32, u32> = BTreeMap::new();
    for (i, (r, l)) in recs.iter().zip(&lines).enumerate() {
        let Event::DamonAggregated {
            target_id,
            nr_regions: n,
            start,
            end,
            nr_accesses,
            age,
        } = &r.event
        else {
            panic!("record {i} is not damon_aggregated: {:?}", r.event);
        };
        assert_eq!(*age, None, "5.12 format has no age");
        sum += u64::from(*nr_accesses);
        targets.insert(*target_id);
        *nr_regions.entry(*n).or_default() += 1;
        assert_eq!((r.cpu, r.pid, r.tgid), (0, 4452, Some(4452)), "record {i}");
        assert_eq!(r.comm.to_string_lossy(), "kdamond.0");
        // `       kdamond.0  4452 [000] 82820.952659: damon:damon_aggregated: target_id=... nr_regions=8 a-b: n`
        let ts = format!(
            "{}.{:06}:",
            r.ts_ns / 1_000_000_000,
            r.ts_ns % 1_000_000_000 / 1000
        );
        let want = format!(
            "{:>16} {:>5} [{:03}] {:>13} damon:damon_aggregated: target_id={target_id} nr_regions={n} {start}-{end}: {nr_accesses}",
            r.comm.to_string_lossy(),
            r.pid,
            r.cpu,
            ts
        );
        assert_eq!(want.trim_start(), l.trim_start(), "line {}", i + 1);
    }
    assert_eq!(sum, 87_821);
    assert_eq!(
        targets.into_iter().collect::<Vec<_>>(),
        vec![18_446_623_435_582_458_880]
    );
    assert_eq!(nr_regions[&18], 3_402);
    assert_eq!(nr_regions[&21], 273);
    assert_eq!(recs.first().unwrap().ts_ns / 1000, 82_820_952_659);
    assert_eq!(recs.last().unwrap().ts_ns / 1000, 82_877_315_633);
}

#[test]
fn lisa_sched_load_trace_dat_counts() {
    let Some(p) = shared("ARM-software__lisa/tests/assets/sched_load/trace.dat") else {
        return;
    };
    let data = std::fs::read(&p).unwrap();
    let td = TraceDat::parse(&data).unwrap();
    assert_eq!(td.info.version, 6);
    assert_eq!(td.info.nr_cpus, 6);
    assert_eq!(td.meta.page_size, 4096);
    assert_eq!(td.meta.long_size, 8);
    assert_eq!(td.meta.header_page.unwrap().data_offset, 16);
    assert_eq!(td.info.clock, None, "the file has no options at all");
    assert_eq!(td.meta.ftrace_count, 15);
    assert_eq!(td.meta.system_count, 60);
    let (formats, errors) = td.meta.parse_all();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(formats.len(), 15 + 574);
    assert_eq!(td.meta.format_count(), 15 + 574);
    // Old formats of MM events parse with their fields.
    let by_name = |n: &str| formats.values().find(|f| &*f.name == n).unwrap().clone();
    let mig = by_name("mm_migrate_pages");
    let f = mig.field("mode").unwrap();
    assert_eq!((f.offset, f.size, f.signed), (24, 4, false));
    assert!(mig.field("succeeded").is_some());
    assert_eq!(mig.symbol("mode", 2), Some("MIGRATE_SYNC"));
    assert_eq!(mig.symbol("reason", 3), Some("syscall_or_cpuset"));
    assert!(by_name("mm_lru_insertion").field("pfn").is_some());
    let recs = td.records().unwrap();
    assert_eq!(recs.len(), 3_724);
    let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_cpu = [0usize; 6];
    for r in &recs {
        *by_event.entry(r.event.name().to_string()).or_default() += 1;
        by_cpu[r.cpu as usize] += 1;
        assert!(!matches!(r.event, Event::Lost { .. }));
    }
    let want: BTreeMap<String, usize> = [
        ("sched_load_cfs_rq", 2_437),
        ("cpu_idle", 474),
        ("sched_switch", 399),
        ("sched_load_se", 364),
        ("sched_migrate_task", 28),
        ("cpu_frequency", 16),
        ("print", 6),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by_event, want);
    assert_eq!(by_cpu, [783, 468, 731, 975, 458, 309]);
    assert_eq!(recs.first().unwrap().ts_ns, 2_084_021_442_860);
    assert_eq!(recs.last().unwrap().ts_ns, 2_084_449_525_380);
    assert!(recs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    // README §3 example lines: `<idle>-0 [002] 2084.021659: sched_switch: swapper/2:0 [120] R ==> kworker/2:1:2923 [120]`
    let sw = recs
        .iter()
        .find(|r| matches!(r.event, Event::SchedSwitch { .. }))
        .unwrap();
    assert_eq!((sw.cpu, sw.pid, sw.ts_ns / 1000), (2, 0, 2_084_021_659));
    let Event::SchedSwitch {
        prev_pid,
        prev_state,
        next_pid,
        next_comm,
    } = &sw.event
    else {
        unreachable!()
    };
    assert_eq!((*prev_pid, &**prev_state, *next_pid), (0, "R", 2923));
    assert_eq!(next_comm.to_string_lossy(), "kworker/2:1");
}
