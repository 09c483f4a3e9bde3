//! A capture that does not state its CPU count is replayed with the default, and the report says
//! so (`approximations: nr_cpus_assumed=N` in text and JSON); one that states it (perf.data
//! HEADER_NRCPUS, here a real perf 6.1 pipe capture with a stderr tail) is replayed with its own
//! count and says nothing; `--cpus` overrides both. Negative control: `--strict` refuses the
//! damaged tail that the default run reads past.

use mmreplay::report::Report;
use mmreplay::session::{self, SessionOptions, SessionResult, DEFAULT_CPUS};

fn paired(name: &str) -> String {
    format!("{}/../corpus/paired/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn report(r: &SessionResult) -> (String, serde_json::Value) {
    let rep = Report {
        trace: &r.trace,
        format: &r.format,
        mode: "lockstep",
        nr_cpus: r.nr_cpus,
        run: &r.run,
        verdicts: &r.verdicts,
        diffs: &r.diffs,
    };
    (rep.text(), rep.json())
}

fn run(path: &str, o: SessionOptions) -> SessionResult {
    session::run(Some(path), &o, |_, _| {}).expect("replay")
}

#[test]
fn capture_without_cpu_count_says_what_was_assumed() {
    // `perf script` text states no CPU count.
    let r = run(
        &paired("mmwork.pipe.perf.script.txt.zst"),
        SessionOptions::default(),
    );
    assert_eq!(r.nr_cpus, DEFAULT_CPUS);
    let (text, json) = report(&r);
    assert!(
        text.contains(&format!("nr_cpus_assumed={DEFAULT_CPUS}")),
        "{text}"
    );
    assert_eq!(
        json["approximations"]["nr_cpus_assumed"],
        u64::from(DEFAULT_CPUS)
    );
    // Told on the command line: nothing assumed.
    let r = run(
        &paired("mmwork.pipe.perf.script.txt.zst"),
        SessionOptions {
            cpus: Some(2),
            ..SessionOptions::default()
        },
    );
    assert_eq!(r.nr_cpus, 2);
    assert!(report(&r).1["approximations"]["nr_cpus_assumed"].is_null());
}

#[test]
fn perf_data_states_its_cpu_count() {
    let p = paired("mmwork.pipe-stderr.perfdata.zst");
    let r = run(&p, SessionOptions::default());
    assert_eq!(r.nr_cpus, 2, "HEADER_NRCPUS of the capture");
    let (text, json) = report(&r);
    assert!(!text.contains("nr_cpus_assumed"), "{text}");
    assert!(json["approximations"]["nr_cpus_assumed"].is_null());
    assert!(r.run.lower.records > 0);
    // --strict: the stderr tail is an error naming its byte.
    let e = session::run(
        Some(&p),
        &SessionOptions {
            strict: true,
            ..SessionOptions::default()
        },
        |_, _| {},
    )
    .err()
    .expect("strict refuses the tail")
    .to_string();
    assert!(e.contains("byte 26144"), "{e}");
}
