//! Threads: the rayon pool every command runs in, and [`Rayon`], the core's training-step
//! [`Schedule`] on it.
//!
//! Results never depend on the thread count: work is cut into chunks whose size depends only
//! on the data, and partial results are merged in chunk order (see [`crate::eval`]).

use std::sync::Once;

use anyhow::{bail, Context, Result};
use makemore_core::step::Schedule;
use rayon::prelude::*;

/// Most threads `--threads` accepts.
pub const MAX_THREADS: usize = 1024;

/// The thread count for `--threads`: the flag (1..=[`MAX_THREADS`]), else every core. A
/// count above the cores here is allowed but warned about on stderr (once) and lowered to the
/// core count: more threads than cores only wait for each other, and results do not depend on
/// the count.
pub fn thread_count(flag: Option<usize>) -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match flag {
        Some(n) if !(1..=MAX_THREADS).contains(&n) => {
            bail!("--threads {n} is out of range: use a value from 1 to {MAX_THREADS}")
        }
        Some(n) if n > cores => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "warning: --threads {n} is more than the {cores} cores here; using {cores} (results do not depend on the count)"
                )
            });
            Ok(cores)
        }
        Some(n) => Ok(n),
        None => Ok(cores),
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

    fn for_each_pair(
        &self,
        a: &mut [f32],
        a_len: usize,
        b: &mut [f32],
        b_len: usize,
        f: &(dyn Fn(usize, &mut [f32], &mut [f32]) + Sync),
    ) {
        (a.par_chunks_mut(a_len.max(1)))
            .zip(b.par_chunks_mut(b_len.max(1)))
            .enumerate()
            .for_each(|(i, (a, b))| f(i, a, b));
    }
}
