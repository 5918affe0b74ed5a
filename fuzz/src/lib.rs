//! The bodies of the fuzz targets, as plain functions: `fuzz_targets/<name>.rs` calls
//! `checks::<name>::check`, and the stable tests (`core/tests/fuzz_replay.rs`,
//! `cli/tests/fuzz_replay.rs`) include the same files to replay `seeds/<name>/` and
//! `regressions/<name>/` with `cargo test`.

pub mod checks {
    #[path = "check_checkpoint.rs"]
    pub mod checkpoint;
    #[path = "check_dataset.rs"]
    pub mod dataset;
    #[path = "check_model.rs"]
    pub mod model;
    #[path = "check_safetensors.rs"]
    pub mod safetensors;
    #[path = "check_simd.rs"]
    pub mod simd;
}
