//! Replays the CLI's fuzz targets on their committed seeds and crashers (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) with the same check functions `cargo fuzz` runs, on stable.

#[path = "../../fuzz/src/checks/check_checkpoint.rs"]
mod check_checkpoint;
#[path = "../../fuzz/src/checks/check_dataset.rs"]
mod check_dataset;

include!("../../fuzz/replay.rs");

#[test]
fn fuzz_dataset() {
    replay("dataset", check_dataset::check);
}

#[test]
fn fuzz_checkpoint() {
    replay("checkpoint", check_checkpoint::check);
}
