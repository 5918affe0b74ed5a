//! Softmax cross-entropy averaged over the batch, and its fused backward (Exercise 2):
//! `dlogits = (softmax(logits) - one_hot(Yb)) / n`.

use crate::float::Float;

/// forward: `loss = F.cross_entropy(logits, Yb)`, overwriting `logits` (n, V) with `probs`.
///
/// Per row: `probs = exp(logits - max) / sum`, `loss_k = ln(sum) - (logits[y] - max)` (the
/// log-sum-exp form, exact where `-ln(probs[y])` would underflow). Returns the mean over rows.
/// `yb` (n) ids < V, checked by the caller.
pub fn cross_entropy_forward<F: Float>(logits_to_probs: &mut [F], yb: &[u8]) -> F {
    cross_entropy_sum(logits_to_probs, yb) / F::from_usize(yb.len())
}

/// [`cross_entropy_forward`]'s per-row losses summed in row order (not divided by n).
pub fn cross_entropy_sum<F: Float>(logits_to_probs: &mut [F], yb: &[u8]) -> F {
    let v = logits_to_probs.len() / yb.len();
    let mut loss_sum = F::ZERO;
    for (row, &y) in logits_to_probs.chunks_exact_mut(v).zip(yb) {
        let mut logit_max = F::NEG_INFINITY;
        for &l in row.iter() {
            logit_max = logit_max.max_nan(l);
        }
        let norm_logit_y = row[y as usize] - logit_max;
        let mut counts_sum = F::ZERO;
        for p in row.iter_mut() {
            *p = (*p - logit_max).exp();
            counts_sum += *p;
        }
        let counts_sum_inv = F::ONE / counts_sum;
        for p in row.iter_mut() {
            *p *= counts_sum_inv;
        }
        loss_sum += counts_sum.ln() - norm_logit_y;
    }
    loss_sum
}

/// backward (fused): `dlogits = (probs - one_hot(Yb)) / n`, in place over the `yb.len()` rows of
/// `probs` (rows, V), with `n` the rows of the whole batch (`rows` when it is not sharded).
pub fn cross_entropy_backward<F: Float>(probs_to_dlogits: &mut [F], yb: &[u8], n: usize) {
    let v = probs_to_dlogits.len() / yb.len();
    let inv_n = F::ONE / F::from_usize(n);
    for (row, &y) in probs_to_dlogits.chunks_exact_mut(v).zip(yb) {
        row[y as usize] -= F::ONE;
        for d in row.iter_mut() {
            *d *= inv_n;
        }
    }
}
