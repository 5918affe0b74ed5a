//! Threads: the rayon pool every command runs in, and [`Rayon`], the core's training-step
//! [`Schedule`] on it.
//!
//! Results never depend on the thread count: work is cut into chunks whose size depends only
//! on the data, and partial results are merged in chunk order (see [`crate::eval`]).

use anyhow::{bail, Context, Result};
use makemore_core::step::Schedule;
use rayon::prelude::*;

/// Most threads `--threads` accepts.
pub const MAX_THREADS: usize = 1024;

/// The thread count `--threads` asks for: the flag (1..=[`MAX_THREADS`]), else every core.
pub fn thread_count(flag: Option<usize>) -> Result<usize> {
    match flag {
        Some(n) if !(1..=MAX_THREADS).contains(&n) => {
            bail!("--threads {n} is out of range: use a value from 1 to {MAX_THREADS}")
        }
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// A rayon pool of `threads` threads (run work in it with `pool.install`).
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("makemore-{i}"))
        .build()
        .with_context(|| format!("cannot start {threads} threads"))
}

/// The core's [`Schedule`] on the current rayon pool: the shards of a training step in
/// parallel (the results do not depend on which thread runs which shard).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rayon;

impl Schedule for Rayon {
    fn for_each_chunk(&self, data: &mut [f32], len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        data.par_chunks_mut(len.max(1))
            .enumerate()
            .for_each(|(i, chunk)| f(i, chunk));
    }
}
