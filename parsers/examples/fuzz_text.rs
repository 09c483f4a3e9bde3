//! Mutation fuzzer for the text readers: takes real trace lines, mutates them (bit flips,
//! truncation, splices, random bytes, huge lines, fake magics) and feeds them through every
//! tokeniser, the payload decoder and the full reader (default and strict), under
//! `catch_unwind`. Any panic is a bug: the input is written to /tmp and the run fails.
//!
//! Usage: `cargo run --release -p mmreplay-parsers --example fuzz_text -- SECONDS [FILES...]`
//! (default files: `$MMREPLAY_SHARED_DIR/samples/*.zst`, else `corpus/captures/*.zst`).
//! Must never be part of the normal test run (it is time-bound, not a test).

use mmreplay_parsers::text::{ftrace, payload::Decoder, perf, Line};
use mmreplay_parsers::{input, stats, Options};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn load_lines(files: &[String]) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for f in files {
        let Ok(raw) = std::fs::read(f) else {
            eprintln!("skip unreadable {f}");
            continue;
        };
        let data = if mmreplay_parsers::source::is_zstd(&raw) {
            let mut out = Vec::new();
            match zstd::stream::read::Decoder::new(&raw[..])
                .and_then(|mut d| d.read_to_end(&mut out))
            {
                Ok(_) => out,
                Err(e) => {
                    eprintln!("skip {f}: {e}");
                    continue;
                }
            }
        } else {
            raw
        };
        // Keep a spread of lines, not all 170k copies of the same event.
        let all: Vec<&[u8]> = data.split(|&c| c == b'\n').collect();
        let step = (all.len() / 20_000).max(1);
        lines.extend(all.iter().step_by(step).map(|l| l.to_vec()));
    }
    lines
}

fn mutate(rng: &mut Rng, lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = 1 + rng.below(40);
    for _ in 0..n {
        let mut l = lines[rng.below(lines.len())].clone();
        match rng.below(12) {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    if !l.is_empty() {
                        let i = rng.below(l.len());
                        l[i] ^= 1 << rng.below(8);
                    }
                }
            }
            1 => l.truncate(rng.below(l.len() + 1)),
            2 => {
                let other = &lines[rng.below(lines.len())];
                let a = rng.below(l.len() + 1);
                let b = rng.below(other.len() + 1);
                l.truncate(a);
                l.extend_from_slice(&other[b..]);
            }
            3 => {
                let i = rng.below(l.len() + 1);
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                l.splice(i..i, junk);
            }
            4 => {
                let i = rng.below(l.len() + 1);
                let tok: &[u8] = [
                    &b":"[..],
                    b"=",
                    b" ",
                    b"(",
                    b")",
                    b"[",
                    b"]",
                    b"-",
                    b"0x",
                    b" ==> ",
                    b" -> ",
                    b",",
                ][rng.below(12)];
                l.splice(i..i, tok.iter().copied());
            }
            5 if rng.below(200) == 0 => {
                l = vec![b'a' + rng.below(26) as u8; (1 << 20) + rng.below(1 << 20)]
            }
            6 => {
                // Replace a digit run with a huge number.
                if let Some(i) = l.iter().position(|c| c.is_ascii_digit()) {
                    l.splice(i..i, b"99999999999999999999999".iter().copied());
                }
            }
            7 => l = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            _ => {}
        }
        out.extend_from_slice(&l);
        if rng.below(20) != 0 {
            out.push(b'\n');
        }
    }
    match rng.below(50) {
        0 => out
            .splice(0..0, b"\x17\x08Dtracing".iter().copied())
            .for_each(drop),
        1 => out
            .splice(0..0, [0x28u8, 0xB5, 0x2F, 0xFD].iter().copied())
            .for_each(drop),
        2 => out.splice(0..0, b"cpus=2\n".iter().copied()).for_each(drop),
        _ => {}
    }
    out
}

fn exercise(input_bytes: &[u8], dec: &mut Decoder) {
    for line in input_bytes.split(|&c| c == b'\n') {
        for r in [ftrace::parse_line(line), perf::parse_line(line)] {
            if let Ok(Line::Event(e)) = r {
                let _ = dec.decode(e.name, e.payload, e.form);
            }
        }
    }
    for strict in [false, true] {
        let opts = Options {
            strict,
            ..Default::default()
        };
        let rd: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(input_bytes.to_vec()));
        if let Ok(mut src) = input::open_reader("fuzz", rd, &opts) {
            let _ = stats::collect(src.as_mut(), stats::Filter::default());
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut files: Vec<String> = args.collect();
    if files.is_empty() {
        let dir = match std::env::var("MMREPLAY_SHARED_DIR") {
            Ok(d) => format!("{d}/samples"),
            Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/captures").to_string(),
        };
        if let Ok(rd) = std::fs::read_dir(&dir) {
            files = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .filter(|p| p.ends_with(".zst"))
                .collect();
            files.sort();
        }
    }
    let lines = load_lines(&files);
    if lines.is_empty() {
        eprintln!("no seed lines (files: {files:?})");
        std::process::exit(2);
    }
    println!(
        "fuzz_text: {} seed lines from {} files, {secs} s",
        lines.len(),
        files.len()
    );
    // Silence the default panic printer; we report ourselves.
    std::panic::set_hook(Box::new(|_| {}));
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut last = start;
    let (mut inputs, mut bytes) = (0u64, 0u64);
    let mut dec = Decoder::new();
    while start.elapsed() < Duration::from_secs(secs) {
        let inp = mutate(&mut rng, &lines);
        bytes += inp.len() as u64;
        inputs += 1;
        if catch_unwind(AssertUnwindSafe(|| exercise(&inp, &mut dec))).is_err() {
            let path = format!("/tmp/fuzz_text_crash_{inputs}.txt");
            let _ = std::fs::write(&path, &inp);
            eprintln!("PANIC on input #{inputs}, saved to {path}");
            std::process::exit(1);
        }
        if last.elapsed() >= Duration::from_secs(60) {
            last = Instant::now();
            let t = start.elapsed().as_secs_f64();
            println!(
                "{t:8.0} s  {inputs} inputs  {:.0} inputs/s  {:.1} MB",
                inputs as f64 / t,
                bytes as f64 / 1e6
            );
        }
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "done: {t:.0} s, {inputs} inputs ({:.0}/s), {:.1} MB, no panic",
        inputs as f64 / t,
        bytes as f64 / 1e6
    );
}
