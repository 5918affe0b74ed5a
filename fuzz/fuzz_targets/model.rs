//! `cargo +nightly fuzz run model`: see `makemore_fuzz::checks::model::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| makemore_fuzz::checks::model::check(data));
