//! Benchmark, side by side in one run: events/s of full decoding by this crate's binary readers
//! versus `perf script` / `trace-cmd report` on the same file (their output to /dev/null).
//!
//! Usage: `cargo run --release --example bench_binary -- FILE...` (trace.dat or perf.data;
//! bench-data/binary/make.sh makes a larger capture). Each side runs `REPEAT` times (default 5),
//! the best time is printed. Nothing is asserted here: speed goals are read off this output.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn best<F: FnMut() -> usize>(n: usize, mut f: F) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut events = 0;
    for _ in 0..n {
        let t = Instant::now();
        events = f();
        best = best.min(t.elapsed());
    }
    (best, events)
}

fn main() {
    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "{:<28} {:>9} {:>12} {:>14} {:>12} {:>14} {:>8}",
        "file", "events", "tool ms", "tool ev/s", "ours ms", "ours ev/s", "speedup"
    );
    for p in std::env::args().skip(1) {
        let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let fmt =
            mmreplay_parsers::binary::sniff(&data).unwrap_or_else(|| panic!("{p}: not binary"));
        let (ours, n) = best(repeat, || {
            // The crate's file entry point: maps the file (the tools read it too).
            let cap = mmreplay_parsers::binary::read_path(Path::new(&p))
                .unwrap_or_else(|e| panic!("{p}: {e}"));
            std::hint::black_box(&cap.records);
            cap.records.len()
        });
        let mut cmd = match fmt {
            mmreplay_parsers::binary::BinaryFormat::PerfFile
            | mmreplay_parsers::binary::BinaryFormat::PerfPipe => {
                let mut c = Command::new("perf");
                c.args(["script", "-i", &p]);
                c
            }
            _ => {
                let mut c = Command::new("trace-cmd");
                c.args(["report", "-i", &p]);
                c
            }
        };
        let (tool, _) = best(repeat, || {
            let st = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run tool");
            assert!(st.success(), "{cmd:?} failed");
            0
        });
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "{:<28} {:>9} {:>12.1} {:>14.0} {:>12.1} {:>14.0} {:>7.1}x",
            Path::new(&p).file_name().unwrap().to_string_lossy(),
            n,
            tool.as_secs_f64() * 1e3,
            rate(tool),
            ours.as_secs_f64() * 1e3,
            rate(ours),
            tool.as_secs_f64() / ours.as_secs_f64()
        );
        if matches!(fmt, mmreplay_parsers::binary::BinaryFormat::PerfFile) {
            // The same decoding through linux-perf-data's record iterator (the path used before
            // the fast path existed), and whether both give the same Records.
            use mmreplay_parsers::binary::perf::{read_perf, read_perf_crate_path};
            let (crate_t, _) = best(repeat, || {
                let (_, r) =
                    read_perf_crate_path(&data, None).unwrap_or_else(|e| panic!("{p}: {e}"));
                std::hint::black_box(&r);
                r.len()
            });
            let (fi, fast) = read_perf(&data).unwrap_or_else(|e| panic!("{p}: {e}"));
            let (_, slow) =
                read_perf_crate_path(&data, None).unwrap_or_else(|e| panic!("{p}: {e}"));
            println!(
                "  perf.data crate path (in memory): {:.1} ms ({:.1}x perf script); fast path taken: {}; identical Records: {}",
                crate_t.as_secs_f64() * 1e3,
                tool.as_secs_f64() / crate_t.as_secs_f64(),
                fi.fast_path,
                fast == slow
            );
        }
    }
}
