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
    for _ in 0..MAX_RECORDS {
        match src.next_record() {
            Ok(Some(r)) => {
                std::hint::black_box(&r);
            }
            Ok(None) | Err(_) => break,
        }
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
    for _ in 0..MAX_RECORDS {
        match r.next_record() {
            Ok(Some(rec)) => {
                std::hint::black_box(&rec);
            }
            Ok(None) | Err(_) => break,
        }
    }
}
