//! The minibatch sampler: what `makemore train` (and `gradcheck`) draw each step, and what the
//! benchmarks time. Rows are drawn uniformly with replacement from a split, as the notebook's
//! `ix = torch.randint(0, Xtr.shape[0], (batch_size,))`, from the core's
//! [`batch_stream`]`(seed, step)`: batch `step` depends only on (seed, step), so a resumed run
//! draws the batches of the uninterrupted one.

use std::num::NonZeroU64;

use anyhow::{bail, Result};
use makemore_core::rng::{batch_stream, below};

use crate::data::Examples;

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
