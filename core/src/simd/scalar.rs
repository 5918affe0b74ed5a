//! The scalar path of [`super::Kernels`]: the portable reference every vector kernel is tested
//! against. Where the crate already has the kernel (`linear.rs`, `batchnorm.rs`,
//! `cross_entropy.rs`) this forwards to it; the others are the plain loops below.

use crate::batchnorm;
use crate::cross_entropy;
use crate::linear::{axpy, dot};
use crate::math::{exp_f32, sqrt_f32, tanh_f32};
use crate::optim::AdamWStep;

use super::kernels::{PEAK_ADD, PEAK_CHAINS, PEAK_MUL};

pub fn exp(out: &mut [f32], x: &[f32]) {
    let x = &x[..out.len()];
    for (o, &x) in out.iter_mut().zip(x) {
        *o = exp_f32(x);
    }
}

pub fn tanh(out: &mut [f32], x: &[f32]) {
    let x = &x[..out.len()];
    for (o, &x) in out.iter_mut().zip(x) {
        *o = tanh_f32(x);
    }
}

pub fn embed_gather(embcat: &mut [f32], xb: &[u8], C: &[f32], embedding: usize) {
    for (emb, &ix) in embcat.chunks_exact_mut(embedding).zip(xb) {
        emb.copy_from_slice(&C[ix as usize * embedding..][..embedding]);
    }
}

pub fn linear_forward(out: &mut [f32], a: &[f32], b: &[f32], bias: &[f32], m: usize) {
    let k = b.len() / m;
    for (row, a_row) in out.chunks_exact_mut(m).zip(a.chunks_exact(k)) {
        if bias.is_empty() {
            row.fill(0.0);
        } else {
            row.copy_from_slice(&bias[..m]);
        }
        for (kk, &a_ik) in a_row.iter().enumerate() {
            axpy(row, a_ik, &b[kk * m..][..m]);
        }
    }
}

pub fn matmul_tn(out: &mut [f32], a: &[f32], b: &[f32], k: usize, m: usize) {
    for (r, row) in out[..k * m].chunks_exact_mut(m).enumerate() {
        row.fill(0.0);
        for (a_row, b_row) in a.chunks_exact(k).zip(b.chunks_exact(m)) {
            axpy(row, a_row[r], b_row);
        }
    }
}

pub fn matmul_nt(out: &mut [f32], a: &[f32], b: &[f32], m: usize) {
    let p = b.len() / m;
    for (row, a_row) in out.chunks_exact_mut(p).zip(a.chunks_exact(m)) {
        for (o, b_row) in row.iter_mut().zip(b.chunks_exact(m)) {
            *o = dot(a_row, b_row);
        }
    }
}

pub fn linear_tanh_backward(h_to_dhpreact: &mut [f32], dout: &[f32], wt: &[f32], m: usize) {
    let k = wt.len() / m;
    for (h_row, d_row) in h_to_dhpreact.chunks_exact_mut(m).zip(dout.chunks_exact(k)) {
        for (j, h) in h_row.iter_mut().enumerate() {
            let mut dh = 0.0;
            for (kk, &d) in d_row.iter().enumerate() {
                dh += d * wt[kk * m + j];
            }
            *h = batchnorm::tanh_backward(*h, dh);
        }
    }
}

pub fn embed_table_forward(hprebn: &mut [f32], x: &[u8], table: &[f32], b1: &[f32], vocab: usize) {
    let hidden = b1.len();
    let rows = hprebn.len() / hidden;
    let context = x.len() / rows.max(1);
    for (row, xr) in hprebn.chunks_exact_mut(hidden).zip(x.chunks_exact(context)) {
        row.copy_from_slice(b1);
        for (t, &ix) in xr.iter().enumerate() {
            let entry = &table[(t * vocab + ix as usize) * hidden..][..hidden];
            for (o, &e) in row.iter_mut().zip(entry) {
                *o += e;
            }
        }
    }
}

pub fn transpose(out: &mut [f32], a: &[f32], m: usize) {
    let n = a.len() / m;
    for (i, a_row) in a.chunks_exact(m).enumerate() {
        for (j, &x) in a_row.iter().enumerate() {
            out[j * n + i] = x;
        }
    }
}

pub fn batchnorm_center(hprebn_to_bndiff: &mut [f32], bnmeani: &[f32], sum2: &mut [f32]) {
    batchnorm::batchnorm_center(hprebn_to_bndiff, bnmeani, sum2);
}

pub fn batchnorm_var_inv(sum2_to_bnvar_inv: &mut [f32], n: usize) {
    batchnorm::batchnorm_var_inv(sum2_to_bnvar_inv, n);
}

pub fn batchnorm_scale_shift_tanh(
    h: &mut [f32],
    bndiff_to_bnraw: &mut [f32],
    bnvar_inv: &[f32],
    bngain: &[f32],
    bnbias: &[f32],
) {
    let hidden = bngain.len();
    for row in bndiff_to_bnraw.chunks_exact_mut(hidden) {
        for (x, &inv) in row.iter_mut().zip(bnvar_inv) {
            *x *= inv;
        }
    }
    batchnorm::scale_shift_tanh_forward(h, bndiff_to_bnraw, bngain, bnbias);
}

pub fn batchnorm_backward_sums(
    dbngain: &mut [f32],
    dbnbias: &mut [f32],
    dhpreact: &[f32],
    bnraw: &[f32],
) {
    batchnorm::batchnorm_backward_sums(dbngain, dbnbias, dhpreact, bnraw);
}

pub fn batchnorm_backward_apply(
    dhpreact_to_dhprebn: &mut [f32],
    bnraw: &[f32],
    bnvar_inv: &[f32],
    bngain: &[f32],
    dbngain: &[f32],
    dbnbias: &[f32],
    n: usize,
) {
    batchnorm::batchnorm_backward_apply(
        dhpreact_to_dhprebn,
        bnraw,
        bnvar_inv,
        bngain,
        dbngain,
        dbnbias,
        n,
    );
}

pub fn bias_backward(dbias: &mut [f32], dout: &[f32]) {
    crate::linear::bias_backward(dbias, dout);
}

pub fn cross_entropy_sum(logits_to_probs: &mut [f32], yb: &[u8]) -> f32 {
    cross_entropy::cross_entropy_sum(logits_to_probs, yb)
}

pub fn cross_entropy_backward(probs_to_dlogits: &mut [f32], yb: &[u8], n: usize) {
    cross_entropy::cross_entropy_backward(probs_to_dlogits, yb, n);
}

pub fn embed_scatter_add(dC: &mut [f32], dembcat: &[f32], xb: &[u8]) {
    let e = dembcat.len() / xb.len().max(1);
    dC.fill(0.0);
    for (&ix, demb) in xb.iter().zip(dembcat.chunks_exact(e)) {
        for (acc, &d) in dC[ix as usize * e..][..e].iter_mut().zip(demb) {
            *acc += d;
        }
    }
}

pub fn sgd(p: &mut [f32], grad: &[f32], lr: f32) {
    crate::train::sgd_row(p, grad, lr);
}

/// PyTorch's AdamW update, one element at a time; the vector kernel does the same operations in
/// the same order.
pub fn adamw(p: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], c: AdamWStep) {
    let n = p.len();
    let (m, v, grad) = (&mut m[..n], &mut v[..n], &grad[..n]);
    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(grad) {
        // param.mul_(1 - lr * weight_decay)
        let decayed = *p * c.decay;
        // m = beta1 * m + (1 - beta1) * g
        let mt = c.beta1 * *m + c.one_minus_beta1 * g;
        // v = beta2 * v + (1 - beta2) * g * g   (addcmul: value * g, then * g)
        let vt = c.beta2 * *v + c.one_minus_beta2 * g * g;
        // denom = sqrt(v) / sqrt(1 - beta2^t) + eps
        let denom = sqrt_f32(vt) / c.sqrt_bc2 + c.eps;
        // param.addcdiv_(m, denom, value=-step_size): p - step_size * m / denom
        *p = decayed - c.step_size * mt / denom;
        *m = mt;
        *v = vt;
    }
}

/// `x[0]^2 + x[1]^2 + ...`, summed in order.
pub fn sum_squares(x: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for &x in x {
        sum += x * x;
    }
    sum
}

pub fn moments(x: &[f32]) -> [f32; 2] {
    if x.is_empty() {
        return [0.0, 0.0];
    }
    let mut sum = 0.0f32;
    for &x in x {
        sum += x;
    }
    let mean = sum / x.len() as f32;
    let mut m2 = 0.0f32;
    for &x in x {
        let d = x - mean;
        m2 += d * d;
    }
    [mean, m2]
}

pub fn bn_tanh_stats(
    saturated: &mut [f32],
    bnraw: &[f32],
    bngain: &[f32],
    bnbias: &[f32],
    center: [f32; 2],
) -> [f32; 4] {
    let hidden = bngain.len();
    saturated.fill(0.0);
    let mut acc = [0.0f32; 4];
    for row in bnraw.chunks_exact(hidden) {
        for j in 0..hidden {
            let hpreact = bngain[j] * row[j] + bnbias[j];
            let h = tanh_f32(hpreact);
            let (d0, d1) = (hpreact - center[0], h - center[1]);
            acc[0] += d0;
            acc[1] += d1;
            acc[2] += d0 * d0;
            acc[3] += d1 * d1;
            if h.abs() > crate::stats::SATURATED {
                saturated[j] += 1.0;
            }
        }
    }
    acc
}

pub fn scale(x: &mut [f32], a: f32) {
    for x in x {
        *x *= a;
    }
}

pub fn all_finite(x: &[f32]) -> bool {
    x.iter().all(|x| x.is_finite())
}

pub fn batchnorm_tanh_inference(
    hprebn_to_h: &mut [f32],
    bnmean: &[f32],
    bnvar_inv: &[f32],
    bngain: &[f32],
    bnbias: &[f32],
) {
    batchnorm::batchnorm_tanh_inference(hprebn_to_h, bnmean, bnvar_inv, bngain, bnbias);
}

/// `x * 0.5 + 1`: one fused multiply-add where the build has hardware FMA and `std` (the core
/// alone has no `mul_add`), else a multiply then an add; the product is exact, so both give the
/// same bits.
#[inline(always)]
fn peak_step(x: f32) -> f32 {
    #[cfg(all(feature = "std", any(target_feature = "fma", target_arch = "aarch64")))]
    {
        x.mul_add(PEAK_MUL, PEAK_ADD)
    }
    #[cfg(not(all(feature = "std", any(target_feature = "fma", target_arch = "aarch64"))))]
    {
        x * PEAK_MUL + PEAK_ADD
    }
}

/// The vector kernel's chains, one lane each: blocks of `PEAK_CHAINS` independent values.
pub fn fma_peak(acc: &mut [f32], iters: usize) {
    let mut blocks = acc.chunks_exact_mut(PEAK_CHAINS);
    for block in &mut blocks {
        let mut x = [0.0f32; PEAK_CHAINS];
        x.copy_from_slice(block);
        for _ in 0..iters {
            for x in x.iter_mut() {
                *x = peak_step(*x);
            }
        }
        block.copy_from_slice(&x);
    }
    for x in blocks.into_remainder() {
        for _ in 0..iters {
            *x = peak_step(*x);
        }
    }
}
