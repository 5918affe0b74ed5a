//! `cargo +nightly fuzz run simd`: see `makemore_fuzz::checks::simd::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| makemore_fuzz::checks::simd::check(data));
