#![no_main]
//! `perf_data_pipe`: the PerfData reader (format forced) over arbitrary bytes; seeds: `fuzz/seed`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mmreplay_fuzz::read_all(mmreplay_parsers::Format::PerfData, data);
});
