//! Profiling driver: full `stats`-equivalent decoding of one file, single-threaded, so
//! `perf record` sees only that path. Prints the JSON-relevant totals and CPU seconds.
//! Run: `cargo run --release -p mmreplay-parsers --example stats_profile -- FILE`.
//! With `--digest FILE...` it instead prints, per file, a hash of every record's `Debug` text in
//! output order plus the stats JSON, so an optimisation can be checked to change no record.

use mmreplay_parsers::stats::{collect, Filter};
use mmreplay_parsers::{input, Options};
use std::time::Instant;

fn digest(path: &str) {
    use std::hash::{Hash, Hasher};
    let mut src = match input::open(path, &Options::default()) {
        Ok(s) => s,
        Err(e) => {
            println!("{path}: error {e}");
            return;
        }
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut b = mmreplay_parsers::stats::StatsBuilder::new(Filter::default());
    let mut n = 0u64;
    loop {
        match src.next_record() {
            Ok(Some(r)) => {
                format!("{r:?}").hash(&mut h);
                b.add(&r);
                n += 1;
            }
            Ok(None) => break,
            Err(e) => {
                println!("{path}: error after {n} records: {e}");
                return;
            }
        }
    }
    let d = src.diagnostics();
    let s = b.finish(src.format().name(), &d);
    println!("{path}: {n} records digest {:016x}", h.finish());
    println!("{}", serde_json::to_string(&s).unwrap_or_default());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--digest") {
        for p in args.iter().skip(1) {
            digest(p);
        }
        return;
    }
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench-data/ftrace-bench.txt".to_string());
    let t = Instant::now();
    let mut src = match input::open(&path, &Options::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match collect(src.as_mut(), Filter::default()) {
        Ok(s) => println!(
            "records={} events={} tasks={} unparsed={} ooo={} {:.3}s",
            s.records,
            s.events.len(),
            s.tasks,
            s.unparsed_lines,
            s.out_of_order,
            t.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
