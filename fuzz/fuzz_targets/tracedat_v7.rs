#![no_main]
//! `tracedat_v7`: the TraceDat reader (format forced) over arbitrary bytes; seeds: `fuzz/seed`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mmreplay_fuzz::read_all(mmreplay_parsers::Format::TraceDat, data);
});
