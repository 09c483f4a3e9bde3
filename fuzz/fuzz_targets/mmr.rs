#![no_main]
//! `mmr`: the compiled `.mmr` reader over arbitrary bytes; seeds: `fuzz/seed`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mmreplay_fuzz::read_mmr(data);
});
