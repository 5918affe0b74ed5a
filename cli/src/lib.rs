//! The parts of `makemore` that read untrusted bytes, as a library so that the fuzz targets
//! (`fuzz/`) and the tests can call them: the word list and its split (`data`, `dataset`), and
//! checkpoints (`checkpoint`). The binary (`main.rs`) uses them from here.

pub mod checkpoint;
pub mod data;
pub mod dataset;
pub mod pyrandom;
