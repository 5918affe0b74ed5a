//! Batch normalisation: the training forward with batch statistics (Bessel-corrected variance,
//! eps 1e-5), the fused backward of Exercise 3, the tanh that follows it, and the inference form
//! with calibrated statistics.

use crate::float::Float;

/// The notebook's epsilon: `bnvar_inv = (bnvar + 1e-5)**-0.5`.
pub const BN_EPS: f64 = 1e-5;

/// forward (training), in place over `hprebn_to_bnraw` (n, H):
/// `bnmeani = hprebn.mean(0)`, `bndiff = hprebn - bnmeani`,
/// `bnvar = bndiff2.sum(0) / (n-1)`, `bnvar_inv = (bnvar + eps)**-0.5`, `bnraw = bndiff * bnvar_inv`.
/// Saves `bnmeani` (H) and `bnvar_inv` (H) for the backward pass. Requires n >= 2.
///
/// Written as the pieces the sharded step runs between its reductions (the column sum, then
/// [`batchnorm_center`], [`batchnorm_var_inv`]), so both give the same bits.
pub fn batchnorm_forward<F: Float>(
    hprebn_to_bnraw: &mut [F],
    bnmeani: &mut [F],
    bnvar_inv: &mut [F],
) {
    let hidden = bnmeani.len();
    let rows = hprebn_to_bnraw.len() / hidden;
    // bnmeani = 1/n * hprebn.sum(0)   (sum over the batch, per feature)
    crate::linear::bias_backward(bnmeani, hprebn_to_bnraw);
    let inv_n = F::ONE / F::from_usize(rows);
    for m in bnmeani.iter_mut() {
        *m = inv_n * *m;
    }
    // bndiff = hprebn - bnmeani; bnvar_inv = (1/(n-1) * (bndiff**2).sum(0) + eps)**-0.5
    batchnorm_center(hprebn_to_bnraw, bnmeani, bnvar_inv);
    batchnorm_var_inv(bnvar_inv, rows);
    // bnraw = bndiff * bnvar_inv
    for row in hprebn_to_bnraw.chunks_exact_mut(hidden) {
        for (x, &inv) in row.iter_mut().zip(bnvar_inv.iter()) {
            *x *= inv;
        }
    }
}

/// `bndiff = hprebn - bnmeani` in place over `hprebn_to_bndiff` (rows, H), and
/// `sum2 = (bndiff**2).sum(0)` (H, written; the sum over the rows).
pub fn batchnorm_center<F: Float>(hprebn_to_bndiff: &mut [F], bnmeani: &[F], sum2: &mut [F]) {
    let hidden = bnmeani.len();
    sum2.fill(F::ZERO);
    for row in hprebn_to_bndiff.chunks_exact_mut(hidden) {
        for ((x, &m), q) in row.iter_mut().zip(bnmeani).zip(sum2.iter_mut()) {
            *x -= m;
            *q += *x * *x;
        }
    }
}

/// `bnvar_inv = (1/(n-1) * sum2 + eps)**-0.5` in place over `sum2_to_bnvar_inv` (H), with `n`
/// (>= 2) the rows of the whole batch.
pub fn batchnorm_var_inv<F: Float>(sum2_to_bnvar_inv: &mut [F], n: usize) {
    let n = F::from_usize(n);
    let inv_n1 = F::ONE / (n - F::ONE);
    let eps = F::from_f64(BN_EPS);
    for s in sum2_to_bnvar_inv.iter_mut() {
        *s = F::ONE / (inv_n1 * *s + eps).sqrt();
    }
}

/// forward: `h = tanh(bngain * bnraw + bnbias)`. `h`, `bnraw` (n, H); `bngain`, `bnbias` (H).
pub fn scale_shift_tanh_forward<F: Float>(h: &mut [F], bnraw: &[F], bngain: &[F], bnbias: &[F]) {
    let hidden = bngain.len();
    for (h_row, raw_row) in h.chunks_exact_mut(hidden).zip(bnraw.chunks_exact(hidden)) {
        for j in 0..hidden {
            h_row[j] = (bngain[j] * raw_row[j] + bnbias[j]).tanh();
        }
    }
}

/// backward of `h = tanh(hpreact)` for one hidden unit's column: `dhpreact = (1 - h**2) * dh`.
#[inline(always)]
pub fn tanh_backward<F: Float>(h: F, dh: F) -> F {
    (F::ONE - h * h) * dh
}

/// backward (fused, Exercise 3), in place over `dhpreact_to_dhprebn` (n, H):
/// `dbnbias = dhpreact.sum(0)`, `dbngain = (bnraw * dhpreact).sum(0)` (sums over the batch), and
/// `dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)`.
/// `dbngain`, `dbnbias` (H) are written (not accumulated).
pub fn batchnorm_backward<F: Float>(
    dhpreact_to_dhprebn: &mut [F],
    dbngain: &mut [F],
    dbnbias: &mut [F],
    bnraw: &[F],
    bnvar_inv: &[F],
    bngain: &[F],
) {
    let rows = dhpreact_to_dhprebn.len() / bngain.len();
    batchnorm_backward_sums(dbngain, dbnbias, dhpreact_to_dhprebn, bnraw);
    batchnorm_backward_apply(
        dhpreact_to_dhprebn,
        bnraw,
        bnvar_inv,
        bngain,
        dbngain,
        dbnbias,
        rows,
    );
}

/// `dbngain = (bnraw * dhpreact).sum(0)`, `dbnbias = dhpreact.sum(0)` (H each, written; sums
/// over the rows of `dhpreact`, `bnraw` (rows, H)).
pub fn batchnorm_backward_sums<F: Float>(
    dbngain: &mut [F],
    dbnbias: &mut [F],
    dhpreact: &[F],
    bnraw: &[F],
) {
    let hidden = dbngain.len();
    dbngain.fill(F::ZERO);
    dbnbias.fill(F::ZERO);
    for (d_row, raw_row) in dhpreact
        .chunks_exact(hidden)
        .zip(bnraw.chunks_exact(hidden))
    {
        for j in 0..hidden {
            dbngain[j] += raw_row[j] * d_row[j];
            dbnbias[j] += d_row[j];
        }
    }
}

/// `dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)` in place over
/// `dhpreact_to_dhprebn` (rows, H), from the sums of the whole batch of `n` (>= 2) rows.
pub fn batchnorm_backward_apply<F: Float>(
    dhpreact_to_dhprebn: &mut [F],
    bnraw: &[F],
    bnvar_inv: &[F],
    bngain: &[F],
    dbngain: &[F],
    dbnbias: &[F],
    n: usize,
) {
    let hidden = bngain.len();
    let n = F::from_usize(n);
    let n_over_n1 = n / (n - F::ONE);
    for (d_row, raw_row) in dhpreact_to_dhprebn
        .chunks_exact_mut(hidden)
        .zip(bnraw.chunks_exact(hidden))
    {
        for j in 0..hidden {
            let scale = bngain[j] * bnvar_inv[j] / n;
            d_row[j] = scale * (n * d_row[j] - dbnbias[j] - n_over_n1 * raw_row[j] * dbngain[j]);
        }
    }
}

/// forward (inference) in place over `hprebn_to_h` (rows, H):
/// `h = tanh(bngain * (hprebn - bnmean) * bnvar_inv + bnbias)` with calibrated statistics.
pub fn batchnorm_tanh_inference<F: Float>(
    hprebn_to_h: &mut [F],
    bnmean: &[F],
    bnvar_inv: &[F],
    bngain: &[F],
    bnbias: &[F],
) {
    let hidden = bngain.len();
    for row in hprebn_to_h.chunks_exact_mut(hidden) {
        for j in 0..hidden {
            row[j] = (bngain[j] * (row[j] - bnmean[j]) * bnvar_inv[j] + bnbias[j]).tanh();
        }
    }
}

/// `bnvar_inv = (bnvar + 1e-5)**-0.5`, elementwise.
pub fn bnvar_inv_from_bnvar<F: Float>(bnvar_inv: &mut [F], bnvar: &[F]) {
    let eps = F::from_f64(BN_EPS);
    for (inv, &var) in bnvar_inv.iter_mut().zip(bnvar) {
        *inv = F::ONE / (var + eps).sqrt();
    }
}
