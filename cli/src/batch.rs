//! The minibatch sampler: what `makemore train` (and `gradcheck`) draw each step, and what the
//! benchmarks time. Rows are drawn uniformly with replacement from a split, as the notebook's
//! `ix = torch.randint(0, Xtr.shape[0], (batch_size,))`, from the core's
//! [`batch_stream`]`(seed, step)`: batch `step` depends only on (seed, step), so a resumed run
//! draws the batches of the uninterrupted one. With `--rng torch` or `torch-generic`
//! ([`Batches::Torch`]) they come instead from PyTorch's generator, as the notebook draws them.

use std::num::NonZeroU64;

use anyhow::{bail, Result};
use makemore_core::rng::{batch_stream, below, init_stream, Generator};
use makemore_core::{Dims, ParamsMut};

use crate::data::Examples;
use crate::torchrandom::{notebook_init, NormalKernel, TorchGenerator};

/// The `randn` kernel a torch generator runs.
pub fn normal_kernel(generator: Generator) -> Option<NormalKernel> {
    match generator {
        Generator::Pcg => None,
        Generator::Torch => Some(NormalKernel::Avx2),
        Generator::TorchGeneric => Some(NormalKernel::Generic),
    }
}

/// The notebook's initialisation of `params` (flat, for `dims`) for a PCG run seeded `seed`:
/// what [`Batches::init`] does for [`Generator::Pcg`], without the torch generator (the web
/// page, which runs PCG only, calls this, so its wasm does not carry PyTorch's normal sampler
/// and its sin, cos and log).
pub fn pcg_init(seed: u64, dims: Dims, params: &mut [f32]) -> Result<()> {
    ParamsMut::from_flat(dims, params)?.init_notebook(&mut init_stream(seed));
    Ok(())
}

/// Where a run's minibatches come from.
pub enum Batches {
    /// Batch `step` from the PCG stream (seed, step) ([`fill_batch`]).
    Pcg { seed: u64 },
    /// The notebook's `torch.randint(0, len, (N,), generator=g)`, one batch after another from
    /// the generator that drew the initialisation; `next` is the step it is at.
    Torch { g: Box<TorchGenerator>, next: u64 },
}

impl Batches {
    /// A fresh run: the notebook's initialisation of `params` (flat, for `dims`) from
    /// `generator` seeded `seed`, and the batches from step 0.
    pub fn init(generator: Generator, seed: u64, dims: Dims, params: &mut [f32]) -> Result<Self> {
        Ok(match normal_kernel(generator) {
            None => {
                pcg_init(seed, dims, params)?;
                Batches::Pcg { seed }
            }
            Some(kernel) => {
                let mut p = ParamsMut::from_flat(dims, params)?;
                let mut g = Box::new(TorchGenerator::manual_seed(seed, kernel));
                notebook_init(&mut g, p.tensors_mut(), dims.embcat());
                Batches::Torch { g, next: 0 }
            }
        })
    }

    /// A resumed run at `step`, `rows` examples per batch drawn from `examples` rows: the
    /// batches from `step` on. A torch generator is replayed: the initialisation (into scratch),
    /// then the draws of `step` batches.
    pub fn resume(
        generator: Generator,
        seed: u64,
        dims: Dims,
        step: u64,
        rows: usize,
        examples: usize,
    ) -> Result<Self> {
        let mut scratch = vec![0f32; dims.num_params()];
        let mut b = Batches::init(generator, seed, dims, &mut scratch)?;
        if let Batches::Torch { g, next } = &mut b {
            // the draws of the batches done, as `fill` makes them (a few ms for 200k steps)
            if let Some(range) = NonZeroU64::new(examples as u64) {
                for _ in 0..step.saturating_mul(rows as u64) {
                    g.randint_range(0, range);
                }
            }
            *next = step;
        }
        Ok(b)
    }

    /// Fills `xb` (N, T) and `yb` (N) with batch `step` (see [`fill_batch`] for the shapes and
    /// errors). A torch generator draws batches in order: `step` must be the next one.
    pub fn fill(
        &mut self,
        examples: &Examples,
        step: u64,
        xb: &mut [u8],
        yb: &mut [u8],
    ) -> Result<()> {
        match self {
            Batches::Pcg { seed } => fill_batch(examples, *seed, step, xb, yb),
            Batches::Torch { g, next } => {
                if step != *next {
                    bail!("the torch generator is at batch {next}, not {step}: its batches are drawn in order");
                }
                let len = check_shapes(examples, xb, yb)?;
                let t = examples.context;
                for (x, y) in xb.chunks_exact_mut(t).zip(yb.iter_mut()) {
                    let i = g.randint_range(0, len) as usize;
                    x.copy_from_slice(examples.row(i));
                    *y = examples.y[i];
                }
                *next += 1;
                Ok(())
            }
        }
    }
}

/// Errors: `examples` is empty or has T = 0; `xb.len()` is not `yb.len() * T`.
fn check_shapes(examples: &Examples, xb: &[u8], yb: &[u8]) -> Result<NonZeroU64> {
    let Some(len) = NonZeroU64::new(examples.len() as u64) else {
        bail!("cannot draw a batch from a split with no examples");
    };
    let t = examples.context;
    if t == 0 {
        bail!("cannot draw a batch from examples with a context of 0 characters");
    }
    if xb.len() != yb.len() * t {
        bail!(
            "a batch of {} rows with a context of {t} needs {} context ids; xb holds {}",
            yb.len(),
            yb.len() * t,
            xb.len()
        );
    }
    Ok(len)
}

/// Fills `yb` (N) and `xb` (N, T) with batch `step` of the run seeded `seed`: row `k` is
/// example `below(batch_stream(seed, step), len)` of `examples` (the k-th draw of that stream),
/// its context in `xb[k*T..(k+1)*T]` and its target in `yb[k]`; N is `yb.len()`, T
/// `examples.context`.
///
/// Errors: `examples` is empty or has T = 0; `xb.len()` is not `yb.len() * T`.
pub fn fill_batch(
    examples: &Examples,
    seed: u64,
    step: u64,
    xb: &mut [u8],
    yb: &mut [u8],
) -> Result<()> {
    let len = check_shapes(examples, xb, yb)?;
    let t = examples.context;
    let mut rng = batch_stream(seed, step);
    for (x, y) in xb.chunks_exact_mut(t).zip(yb.iter_mut()) {
        let i = below(&mut rng, len) as usize;
        x.copy_from_slice(examples.row(i));
        *y = examples.y[i];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six examples with a context of 2: example i is ([i, 10 + i], 20 + i).
    fn examples() -> Examples {
        Examples {
            context: 2,
            x: (0..6).flat_map(|i| [i, 10 + i]).collect(),
            y: (0..6).map(|i| 20 + i).collect(),
        }
    }

    #[test]
    fn rows_are_the_streams_draws() {
        let ex = examples();
        let (mut xb, mut yb) = (vec![0u8; 2 * 50], vec![0u8; 50]);
        fill_batch(&ex, 9, 4, &mut xb, &mut yb).unwrap();
        let mut rng = batch_stream(9, 4);
        for k in 0..50 {
            let i = below(&mut rng, NonZeroU64::new(6).unwrap()) as u8;
            assert_eq!((&xb[2 * k..2 * k + 2], yb[k]), (&[i, 10 + i][..], 20 + i));
        }
        // another step is another batch (50 draws of 6 cannot all agree by chance)
        let (mut xb2, mut yb2) = (vec![0u8; 2 * 50], vec![0u8; 50]);
        fill_batch(&ex, 9, 5, &mut xb2, &mut yb2).unwrap();
        assert_ne!(yb, yb2);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let ex = examples();
        let e = fill_batch(&ex, 1, 0, &mut [0u8; 5], &mut [0u8; 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a batch of 3 rows with a context of 2 needs 6 context ids; xb holds 5"
        );
        let empty = Examples {
            context: 2,
            x: vec![],
            y: vec![],
        };
        let e = fill_batch(&empty, 1, 0, &mut [0u8; 6], &mut [0u8; 3]).unwrap_err();
        assert!(e.to_string().contains("no examples"), "{e}");
        // an empty batch of a non-empty split is nothing to draw
        fill_batch(&ex, 1, 0, &mut [], &mut []).unwrap();
    }
}
