//! `cargo +nightly fuzz run checkpoint`: see `makemore_fuzz::checks::checkpoint::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| makemore_fuzz::checks::checkpoint::check(data));
