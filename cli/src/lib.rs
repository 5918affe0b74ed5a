//! The library of `makemore`, so that the fuzz targets (`fuzz/`), the tests and the benchmarks
//! (`benches/`) call what the binary runs: the parts that read untrusted bytes (the word list
//! and its split, `data`, `dataset`; checkpoints, `checkpoint`), the batch sampler (`batch`),
//! evaluation of whole splits on rayon (`eval`), the memory a training run needs (`memory`), the thread pool and the training step's
//! schedule (`parallel`), `--isa` (`isa`), and bit-exact replays of Python's `random`
//! (`pyrandom`) and PyTorch's CPU generator (`torchrandom`). The binary (`main.rs`) uses them
//! from here.

pub mod batch;
pub mod checkpoint;
pub mod data;
pub mod dataset;
pub mod draw;
pub mod eval;
pub mod gradcheck_table;
#[cfg(feature = "bin")]
pub mod isa;
pub mod memory;
pub mod par;
#[cfg(feature = "rayon")]
pub mod parallel;
pub mod pyrandom;
pub mod torchrandom;
