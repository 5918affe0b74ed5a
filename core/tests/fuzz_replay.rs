//! Replays the core's fuzz targets on their committed seeds and crashers (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) with the same check functions `cargo fuzz` runs, on stable.

#[path = "../../fuzz/src/checks/check_model.rs"]
mod check_model;
#[path = "../../fuzz/src/checks/check_safetensors.rs"]
mod check_safetensors;
#[path = "../../fuzz/src/checks/check_simd.rs"]
mod check_simd;

include!("../../fuzz/replay.rs");

/// The targets `cli/tests/fuzz_replay.rs` replays.
const CLI_TARGETS: [&str; 2] = ["checkpoint", "dataset"];
/// The targets replayed here.
const CORE_TARGETS: [&str; 3] = ["model", "safetensors", "simd"];

#[test]
fn fuzz_safetensors() {
    replay("safetensors", check_safetensors::check);
}

#[test]
fn fuzz_simd() {
    replay("simd", check_simd::check);
}

#[test]
fn fuzz_model() {
    replay("model", check_model::check);
}

#[test]
fn every_fuzz_target_is_replayed() {
    let mut replayed: Vec<String> = CORE_TARGETS
        .iter()
        .chain(&CLI_TARGETS)
        .map(|s| s.to_string())
        .collect();
    replayed.sort();
    assert_eq!(
        fuzz_targets(),
        replayed,
        "a fuzz target in fuzz/fuzz_targets/ is not replayed by core/tests/fuzz_replay.rs or \
         cli/tests/fuzz_replay.rs (add it to one of them)"
    );
}
