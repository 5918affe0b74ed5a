//! The library of `makemore`, so that the fuzz targets (`fuzz/`), the tests and the benchmarks
//! (`benches/`) can call it: the parts that read untrusted bytes (the word list and its split,
//! `data`, `dataset`; checkpoints, `checkpoint`), and the parallel machinery (`parallel`, the
//! thread pool; `eval`, calibration and evaluation over whole splits; `shard`, the sharded
//! training step; `model`, the run-time-sized model). The binary (`main.rs`) uses them from here.

pub mod checkpoint;
pub mod data;
pub mod dataset;
pub mod eval;
pub mod model;
pub mod parallel;
pub mod pyrandom;
pub mod shard;
