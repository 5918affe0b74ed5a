//! `cargo +nightly fuzz run safetensors`: see `makemore_fuzz::checks::safetensors::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| makemore_fuzz::checks::safetensors::check(data));
