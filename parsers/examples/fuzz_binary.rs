//! Mutation fuzzer for the binary readers (trace.dat v6/v7, perf.data file/pipe): truncation,
//! bit flips, overwritten length/offset words, inserted and removed ranges, under catch_unwind,
//! with a counting allocator that records the largest single allocation and the peak live heap.
//!
//! Usage: `fuzz_binary SECONDS [SEED]`. Seeds: corpus/paired/*.dat.zst and *.perf.data.zst, plus
//! the shared captures when MMREPLAY_SHARED_DIR is set. A panic saves the input under
//! /tmp/fuzz_binary-crash-*.bin and is counted; an allocation above 1 GiB aborts with a message
//! (the run is reproducible from SEED). Prints a summary; exits 1 if anything panicked.
//! `FUZZ_ONLY=perf` keeps only the perf.data seeds. Panics caught inside the readers (perf.rs
//! turns crate panics into errors) are still seen by the panic hook: they are counted by source
//! location and listed in the summary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static MAX_ONE: AtomicUsize = AtomicUsize::new(0);
const LIMIT: usize = 1 << 30;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        track(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        track(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_sub(l.size(), Relaxed);
        track(new);
        unsafe { System.realloc(p, l, new) }
    }
}

fn track(n: usize) {
    if n > LIMIT {
        // Small allocations for the message are fine (they do not come back here).
        eprintln!(
            "fuzz_binary: single allocation of {n} B (> 1 GiB) at\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        std::process::abort();
    }
    MAX_ONE.fetch_max(n, Relaxed);
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
}

#[global_allocator]
static A: Counting = Counting;

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

fn load_seeds() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/paired");
    for name in [
        "mmwork.v6.dat.zst",
        "mmwork.v7.dat.zst",
        "mmwork.perf.data.zst",
        "mmwork.pipe.perf.data.zst",
    ] {
        let raw = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        v.push((
            name.to_string(),
            zstd::decode_all(&raw[..]).expect("seed decompresses"),
        ));
    }
    if let Some(sh) = std::env::var_os("MMREPLAY_SHARED_DIR") {
        let sh = std::path::PathBuf::from(sh).join("external");
        for rel in [
            "ARM-software__lisa/tests/assets/sched_load/trace.dat",
            "awslabs__damo/tests/report/perf.data",
        ] {
            let p = sh.join(rel);
            v.push((
                rel.to_string(),
                std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            ));
        }
    }
    v
}

const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    4,
    8,
    16,
    0xff,
    0x1000,
    0x7fff_ffff,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

fn mutate(r: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    // Headers and metadata live near the start, but page data and perf records matter too.
    let pos = |r: &mut Rng, len: usize| {
        if r.below(2) == 0 {
            r.below(len.min(65536))
        } else {
            r.below(len)
        }
    };
    for _ in 0..1 + r.below(4) {
        let len = m.len();
        if len == 0 {
            break;
        }
        match r.below(6) {
            0 => m.truncate(pos(r, len)),
            1 => {
                for _ in 0..1 + r.below(8) {
                    let p = pos(r, len);
                    m[p] ^= 1 << r.below(8);
                }
            }
            2 => {
                let w = [2usize, 4, 8][r.below(3)];
                let p = pos(r, len.saturating_sub(w));
                let v = INTERESTING[r.below(INTERESTING.len())].to_le_bytes();
                let end = (p + w).min(len);
                m[p..end].copy_from_slice(&v[..end - p]);
            }
            3 => {
                let p = pos(r, len);
                let v = (r.next() as u32).to_le_bytes();
                let end = (p + 4).min(len);
                m[p..end].copy_from_slice(&v[..end - p]);
            }
            4 => {
                let p = pos(r, len);
                let n = 1 + r.below(64);
                m.splice(p..p, std::iter::repeat_n(r.next() as u8, n));
            }
            _ => {
                let p = pos(r, len);
                let end = (p + 1 + r.below(4096)).min(len);
                m.drain(p..end);
            }
        }
    }
    m
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let mut seeds = load_seeds();
    if std::env::var("FUZZ_ONLY").as_deref() == Ok("perf") {
        seeds.retain(|(n, _)| n.contains("perf.data"));
    }
    static CAUGHT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut c) = CAUGHT.lock() {
            *c = Some(info.location().map_or("?".into(), |l| l.to_string()));
        }
    }));
    let mut caught: std::collections::BTreeMap<String, u64> = Default::default();
    let mut r = Rng(seed | 1);
    let start = Instant::now();
    let (mut runs, mut ok, mut err, mut panics) = (0u64, 0u64, 0u64, 0u64);
    let mut per_seed = vec![0u64; seeds.len()];
    let mut last = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let i = r.below(seeds.len());
        let input = mutate(&mut r, &seeds[i].1);
        per_seed[i] += 1;
        runs += 1;
        match std::panic::catch_unwind(|| {
            mmreplay_parsers::binary::read_bytes(&input).map(|c| c.records.len())
        }) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                err += 1;
                // Every error must render (and name an offset or the problem) without panicking.
                std::hint::black_box(e.to_string());
            }
            Err(_) => {
                panics += 1;
                let p = format!("/tmp/fuzz_binary-crash-{runs}.bin");
                let _ = std::fs::write(&p, &input);
                eprintln!("PANIC on a mutation of {} (saved {p})", seeds[i].0);
            }
        }
        if let Some(loc) = CAUGHT.lock().ok().and_then(|mut c| c.take()) {
            *caught.entry(loc).or_default() += 1;
        }
        if last.elapsed() > Duration::from_secs(60) {
            last = Instant::now();
            eprintln!(
                "{:>5}s runs={runs} ok={ok} err={err} panics={panics}",
                start.elapsed().as_secs()
            );
        }
    }
    println!(
        "fuzz_binary: {:.0}s, {runs} inputs (ok {ok}, error {err}, panic {panics}); per seed: {}; largest single allocation {} B, peak live heap {} B",
        start.elapsed().as_secs_f64(),
        seeds.iter().zip(&per_seed).map(|((n, d), c)| format!("{n} [{} B] x{c}", d.len())).collect::<Vec<_>>().join(", "),
        MAX_ONE.load(Relaxed),
        PEAK.load(Relaxed)
    );
    println!("panics seen by the hook (caught or not), by location: {caught:?}");
    if panics > 0 {
        std::process::exit(1);
    }
}
