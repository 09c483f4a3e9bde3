//! Text-decoding throughput, single-threaded, printed side by side with `wc -l` on the same file
//! in the same run (the memory-bound ceiling). Not a test: it prints numbers, it asserts none.
//!
//! Builds a >= 500 MB ftrace text file under `<workspace>/bench-data/` (git-ignored) from real
//! captures: `$MMREPLAY_SHARED_DIR/samples/*.zst` when set, else `corpus/captures/*.trace.zst`,
//! repeated, each repetition shifted in time so the stream stays time-ordered.
//! Run: `cargo bench -p mmreplay-parsers --bench throughput` (`BENCH_MB` overrides the size).

use mmreplay_parsers::stats::{collect, Filter};
use mmreplay_parsers::text::{ftrace, payload::Decoder, Line};
use mmreplay_parsers::{input, Options};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn sources() -> Vec<PathBuf> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = match std::env::var_os("MMREPLAY_SHARED_DIR") {
        Some(d) => Path::new(&d).join("samples"),
        None => ws.join("corpus/captures"),
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".trace.zst"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Event lines of the sources (headers dropped).
fn source_lines(files: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in files {
        let raw = std::fs::read(f).expect("read source");
        let mut d = Vec::new();
        zstd::stream::read::Decoder::new(&raw[..])
            .and_then(|mut z| z.read_to_end(&mut d))
            .expect("zstd");
        for l in d.split(|&c| c == b'\n') {
            if !l.is_empty() && !l.starts_with(b"#") {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
        }
    }
    out
}

/// Rewrites the seconds of a line's timestamp (`... [cpu] flags  SSSS.uuuuuu: ...`) to +shift.
fn shift_line(l: &[u8], shift: u64, out: &mut Vec<u8>) {
    let close = memchr::memchr(b']', l);
    let colon = close.and_then(|c| memchr::memmem::find(&l[c..], b": ").map(|x| c + x));
    if let Some(colon) = colon {
        let dot = memchr::memrchr(b'.', &l[..colon]);
        let sp = memchr::memrchr(b' ', &l[..colon]);
        if let (Some(dot), Some(sp)) = (dot, sp) {
            if let Ok(sec) = std::str::from_utf8(&l[sp + 1..dot])
                .unwrap_or("x")
                .parse::<u64>()
            {
                out.extend_from_slice(&l[..sp + 1]);
                out.extend_from_slice((sec + shift).to_string().as_bytes());
                out.extend_from_slice(&l[dot..]);
                out.push(b'\n');
                return;
            }
        }
    }
    out.extend_from_slice(l);
    out.push(b'\n');
}

fn build(path: &Path, want: u64) -> u64 {
    if let Ok(m) = std::fs::metadata(path) {
        if m.len() >= want {
            return m.len();
        }
    }
    let files = sources();
    assert!(
        !files.is_empty(),
        "no source captures (set MMREPLAY_SHARED_DIR or add corpus/captures)"
    );
    eprintln!("building {} from {:?}", path.display(), files);
    let lines = source_lines(&files);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::new(std::fs::File::create(&tmp).unwrap());
    w.write_all(b"# tracer: nop\n#\n").unwrap();
    let mut written = 0u64;
    let mut rep = 0u64;
    let mut buf = Vec::with_capacity(lines.len() + 4096);
    while written < want {
        buf.clear();
        for l in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            shift_line(l, rep * 100_000, &mut buf);
        }
        w.write_all(&buf).unwrap();
        written += buf.len() as u64;
        rep += 1;
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, path).unwrap();
    written
}

/// On-CPU time of this thread in seconds (`/proc/thread-self/schedstat`, first field, ns):
/// unlike wall time it does not grow when other processes share the cores.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

/// `wc -l` user+sys CPU seconds via /usr/bin/time, if available.
fn wc_cpu(path: &Path) -> f64 {
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%U %S", "wc", "-l"])
        .arg(path)
        .output();
    out.ok()
        .and_then(|o| {
            let e = String::from_utf8_lossy(&o.stderr).to_string();
            let v: Vec<f64> = e
                .lines()
                .last()?
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some(v.iter().sum())
        })
        .unwrap_or(f64::NAN)
}

/// Lines via memchr, as the reader splits them (`slice::split` is a byte loop).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', data).map(move |nl| {
        let l = &data[start..nl];
        start = nl + 1;
        l
    })
}

fn wc_l(path: &Path) -> (f64, String) {
    let t = Instant::now();
    let out = std::process::Command::new("wc")
        .arg("-l")
        .arg(path)
        .output()
        .expect("run wc");
    (
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_string(),
    )
}

fn main() {
    let mb: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(520);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-data/ftrace-bench.txt");
    let size = build(&path, mb << 20);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(size);
    let mbs = |secs: f64| size as f64 / 1e6 / secs;
    let _ = wc_l(&path); // warm the page cache
    let (wc_t, wc_lines) = wc_l(&path);
    let wc_c = wc_cpu(&path);

    // Tokenise only (no payload decoding, no records).
    let t = Instant::now();
    let data = std::fs::read(&path).unwrap();
    let read_t = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let c0 = cpu_secs();
    let mut ev = 0u64;
    for l in lines(&data) {
        if let Ok(Line::Event(_)) = ftrace::parse_line(l) {
            ev += 1;
        }
    }
    let tok_t = t.elapsed().as_secs_f64();
    let tok_c = cpu_secs() - c0;
    // Tokenise + decode payloads into typed events (no reader, no merge, no stats).
    let t = Instant::now();
    let c0 = cpu_secs();
    let mut dec = Decoder::new();
    let mut typed = 0u64;
    for l in lines(&data) {
        if let Ok(Line::Event(e)) = ftrace::parse_line(l) {
            if dec.decode(e.name, e.payload, e.form).is_ok() {
                typed += 1;
            }
        }
    }
    let dec_t = t.elapsed().as_secs_f64();
    let dec_c = cpu_secs() - c0;
    drop(data);

    // Full `mmreplay stats` path: streaming read, tokenise, decode, Record, reorder, count.
    let mut best = f64::MAX;
    let mut best_c = f64::MAX;
    let mut recs = 0;
    for _ in 0..2 {
        let t = Instant::now();
        let c0 = cpu_secs();
        let mut src = input::open(&path.display().to_string(), &Options::default()).unwrap();
        let s = collect(src.as_mut(), Filter::default()).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        best_c = best_c.min(cpu_secs() - c0);
        recs = s.records;
        assert_eq!(s.unparsed_lines, 0);
    }
    println!(
        "file: {} ({:.1} MB, {} lines by wc)",
        path.display(),
        size as f64 / 1e6,
        wc_lines
    );
    println!("MB/s by wall time, and by on-CPU time (not inflated by other load on the machine)");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>12}",
        "pass (single thread)", "wall s", "MB/s", "cpu s", "MB/s", "events/s cpu"
    );
    let row = |name: &str, w: f64, c: f64, n: Option<u64>| {
        let evs = n.map_or("-".to_string(), |n| format!("{:.0}", n as f64 / c));
        println!(
            "{name:<44} {w:>8.3} {:>8.0} {c:>8.3} {:>8.0} {evs:>12}",
            mbs(w),
            mbs(c)
        );
    };
    row("wc -l (ceiling)", wc_t, wc_c, None);
    row("std::fs::read into memory", read_t, read_t, None);
    row("tokenise only (in memory)", tok_t, tok_c, Some(ev));
    row(
        "tokenise + typed decode (in memory)",
        dec_t,
        dec_c,
        Some(typed),
    );
    row(
        "full stats (mmap, Record, reorder, count)",
        best,
        best_c,
        Some(recs),
    );
}
