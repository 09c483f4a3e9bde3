//! Shared bodies of the fuzz targets: run one reader over arbitrary bytes to the end (or its
//! first error), as `mmreplay stats` would. A panic, an abort, a timeout or an allocation over
//! libFuzzer's `-malloc_limit_mb` is a finding; an `Err` is the reader doing its job.

use mmreplay_parsers::{open_reader, Format, Options};

/// Records read per input at most: keeps one execution short whatever the input claims.
pub const MAX_RECORDS: usize = 200_000;

/// Reads `data` as `format` (forced, no sniffing) through the public entry point.
pub fn read_all(format: Format, data: &[u8]) {
    let opts = Options {
        format: Some(format),
        ..Default::default()
    };
    let Ok(mut src) = open_reader(
        "fuzz-input",
        Box::new(std::io::Cursor::new(data.to_vec())),
        &opts,
    ) else {
        return;
    };
    // `stats` reads by batches (`next_batch`), `replay` one record at a time: both, mixed, with
    // a batch size taken from the input.
    let max = 1 + data.len() % 300;
    let mut batch = Vec::with_capacity(max);
    let mut n = 0;
    while n < MAX_RECORDS {
        batch.clear();
        match src.next_batch(&mut batch, max) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
        std::hint::black_box(&batch);
        match src.next_record() {
            Ok(Some(r)) => {
                std::hint::black_box(&r);
            }
            Ok(None) | Err(_) => break,
        }
        n += 1;
    }
    std::hint::black_box(src.diagnostics());
}

/// Reads `data` as a compiled `.mmr` stream.
pub fn read_mmr(data: &[u8]) {
    let Ok(mut r) =
        mmreplay_parsers::mmr::Reader::new("fuzz-input.mmr", std::io::Cursor::new(data.to_vec()))
    else {
        return;
    };
    let max = 1 + data.len() % 300;
    let mut batch = Vec::with_capacity(max);
    let mut n = 0;
    while n < MAX_RECORDS {
        batch.clear();
        match r.next_batch(&mut batch, max) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
        std::hint::black_box(&batch);
        match r.next_record() {
            Ok(Some(rec)) => {
                std::hint::black_box(&rec);
            }
            Ok(None) | Err(_) => break,
        }
        n += 1;
    }
}
