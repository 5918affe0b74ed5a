//! `cargo +nightly fuzz run dataset`: see `makemore_fuzz::checks::dataset::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| makemore_fuzz::checks::dataset::check(data));
