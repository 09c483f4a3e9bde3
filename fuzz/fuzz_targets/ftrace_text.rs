#![no_main]
//! `ftrace_text`: the Ftrace reader (format forced) over arbitrary bytes; seeds: `fuzz/seed`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mmreplay_fuzz::read_all(mmreplay_parsers::Format::Ftrace, data);
});
