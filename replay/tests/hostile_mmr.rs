//! Hostile compiled `.mmr` files (`tests/hostile/`, written by
//! `parsers/tests/hostile/make-hostile.py` from a real `mmreplay compile` output): a header or
//! chunk length far beyond the file, a string table claiming millions of entries, a cut
//! stream, an end marker that lies, three thousand empty chunks. Each is replayed (`mmreplay replay FILE --policies reference`)
//! in a child process under `ulimit -v` (RLIMIT_AS). Asserted: exit 2 with an error naming the
//! file and byte offset (no panic, no allocation abort), and peak RSS ≤ 64 MiB + 2x the largest
//! file (`getrusage(RUSAGE_CHILDREN)`: the maximum over every child this test waited for).

use std::path::Path;
use std::process::Command;

const MM: &str = env!("CARGO_BIN_EXE_mmreplay");
/// Address-space limit beyond 2x the file (the binary's mappings, rayon and malloc arenas).
const AS_BASE_MIB: u64 = 1024;
const RSS_BASE_KIB: u64 = 64 << 10;

/// Runs `mmreplay replay FILE --policies reference` under the address-space limit; returns (exit code, stderr, peak
/// RSS in KiB).
fn replay(file: &str) -> (i32, String, u64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(file);
    let bytes = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    let limit_kib = (AS_BASE_MIB << 10) + 2 * bytes / 1024;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {limit_kib} && \"$0\" replay \"$1\" --policies reference; rc=$?; \
             echo \"rc=$rc\" >&2; exit 0"
        ))
        .arg(MM)
        .arg(&path)
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .expect("run sh");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let rc = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rc="))
        .and_then(|v| v.trim().parse().ok())
        .expect("exit code line");
    (rc, err, peak_of_children_kib())
}

/// Peak RSS of the largest waited-for descendant so far (`RUSAGE_CHILDREN`: the shells and the
/// `mmreplay` processes they waited for): an upper bound for the case just run.
fn peak_of_children_kib() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: initialised by the successful call above.
    let ru = unsafe { ru.assume_init() };
    u64::try_from(ru.ru_maxrss).unwrap_or(0)
}

fn refused(file: &str, words: &[&str]) {
    let (rc, err, peak) = replay(file);
    eprintln!("hostile {file}: peak (max over children so far) {peak} KiB: {err}");
    assert!(!err.contains("panicked"), "{file}: panic: {err}");
    assert!(
        !err.contains("memory allocation"),
        "{file}: allocation abort: {err}"
    );
    assert_eq!(rc, 2, "{file}: expected exit 2 (bad input): {err}");
    assert!(
        err.contains(file),
        "{file}: error does not name the file: {err}"
    );
    assert!(
        err.contains("byte") || err.contains("offset"),
        "{file}: error names no byte offset: {err}"
    );
    for w in words {
        assert!(err.contains(w), "{file}: error lacks {w:?}: {err}");
    }
    let goal = RSS_BASE_KIB + 2 * 114_050 / 1024;
    assert!(peak <= goal, "{file}: peak RSS {peak} KiB over {goal} KiB");
}

#[test]
fn hostile_mmr_files_give_offset_errors_in_bounded_memory() {
    // One test: RUSAGE_CHILDREN is per process, so the peak bound covers all of them (the
    // largest file is many-empty-chunks.mmr, 147,080 bytes).
    refused("header-len-max.mmr", &["truncated", "header"]);
    refused("chunk-len-huge.mmr", &["truncated", "chunk payload"]);
    refused(
        "chunk-strings-count-huge.mmr",
        &["chunk 0: does not decode: LimitExceeded"],
    );
    refused("truncated.mmr", &["truncated"]);
    refused(
        "end-count-wrong.mmr",
        &["end marker says 1099511627776 records"],
    );
    // Found by fuzz/ `mmr` (kept as found): header strings whose length claims 3.5 EB (an
    // allocation abort) and 512 MiB, before the header's decode had a limit.
    refused("fuzz-header-string-len.mmr", &["bad header"]);
    // Found against v3 (version bytes patched to 4, 5, then 6): the header decodes it, and the bytes after
    // it fail as a chunk instead, still with their offset and in bounded memory.
    refused("fuzz-header-string-512m.mmr", &["byte 86", "corrupt"]);
    refused(
        "many-empty-chunks.mmr",
        &["byte 114050: end marker says 3 records, chunk headers say 0"],
    );
}
