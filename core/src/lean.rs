//! The lean training step: the in-place step one hidden unit at a time, for a RAM too small for
//! the batch's activations (Exercise 4 trains in 64 KiB on a Cortex-M4F with it).
//!
//! Batchnorm normalises each hidden unit over the batch on its own, so everything between W1 and
//! W2 is one column at a time:
//! - forward: for each unit j, `hprebn[:, j]` from `C[Xb]` and `W1[:, j]`, its statistics, its
//!   tanh, and `logits += h[:, j] * W2[j, :]`;
//! - backward: for each unit j again, the column recomputed, then `W2[j, :]`, `bngain[j]`,
//!   `bnbias[j]`, `b1[j]` and `W1[:, j]` emitted as soon as they are final; dC (V, E) accumulates
//!   `dhprebn[:, j] * W1[i, j]` in place of dembcat (n, T*E).
//!
//! Memory besides the parameters: `n*V + V*E + T*E + 3*n + 4` values (the logits, dC, a column
//! of W1, three columns of the batch and one unit's four statistics); no buffer is larger than
//! the logits.
//!
//! Extra work over [`crate::train`]: the backward recomputes hprebn, `2*n*T*E*H` FLOPs (the
//! size of the first product), and `n*H` more tanh.
//!
//! Bits: every value is summed in the same order as in [`crate::train`] except dC (over units,
//! then rows, where the fused step sums dembcat's rows), so the first loss and every gradient
//! but dC are the fused step's bits, and later losses track the in-place step's.

use crate::batchnorm::{
    batchnorm_backward, batchnorm_forward, scale_shift_tanh_forward, tanh_backward,
};
use crate::cross_entropy::{cross_entropy_backward, cross_entropy_forward};
use crate::error::Error;
use crate::float::Float;
use crate::linear::{axpy, dot};
use crate::model::{Dims, Params, ParamsMut, ParamsRef};
use crate::train::{check_rows, ApplySgd, GradSink, StoreGrads, Tensor};

/// Borrowed scratch of the lean step for a batch of `n` rows:
/// - `logits` (n, V): logits, then probs, then dlogits;
/// - `dC` (V, E): the embedding gradient, accumulated over the units;
/// - `w1_col` (T*E): one unit's column of W1, then its gradient;
/// - `bnraw`, `h`, `dh` (n): one unit's column (hprebn then bnraw; h; dh then dhprebn);
/// - `stats` (4): that unit's bnmeani, bnvar_inv, dbngain, dbnbias.
#[allow(non_snake_case)]
#[derive(Debug)]
pub struct LeanMut<'a, F> {
    n: usize,
    vocab: usize,
    embedding: usize,
    embcat: usize,
    logits: &'a mut [F],
    dC: &'a mut [F],
    w1_col: &'a mut [F],
    bnraw: &'a mut [F],
    h: &'a mut [F],
    dh: &'a mut [F],
    stats: &'a mut [F],
}

impl<'a, F: Float> LeanMut<'a, F> {
    /// How many values [`LeanMut::from_flat`] needs: `n*V + V*E + T*E + 3*n + 4`.
    pub const fn flat_len(dims: &Dims, n: usize) -> usize {
        n * dims.vocab + dims.vocab * dims.embedding + dims.embcat() + 3 * n + 4
    }

    /// Views one flat buffer of exactly [`LeanMut::flat_len`] values. Errors: invalid dims,
    /// n < 2, wrong length.
    pub fn from_flat(dims: Dims, n: usize, flat: &'a mut [F]) -> Result<Self, Error> {
        let dims = dims.validate()?;
        if n < 2 {
            return Err(Error::BatchTooSmall { n });
        }
        let want = n
            .checked_mul(dims.vocab + 3)
            .and_then(|x| x.checked_add(dims.vocab * dims.embedding + dims.embcat() + 4));
        if want != Some(flat.len()) {
            return Err(Error::LengthMismatch {
                what: "lean scratch",
                expected: want.unwrap_or(usize::MAX),
                got: flat.len(),
            });
        }
        let (logits, rest) = flat.split_at_mut(n * dims.vocab);
        let (dC, rest) = rest.split_at_mut(dims.vocab * dims.embedding);
        let (w1_col, rest) = rest.split_at_mut(dims.embcat());
        let (bnraw, rest) = rest.split_at_mut(n);
        let (h, rest) = rest.split_at_mut(n);
        let (dh, stats) = rest.split_at_mut(n);
        Ok(LeanMut {
            n,
            vocab: dims.vocab,
            embedding: dims.embedding,
            embcat: dims.embcat(),
            logits,
            dC,
            w1_col,
            bnraw,
            h,
            dh,
            stats,
        })
    }

    /// Rows in the batch.
    pub fn n(&self) -> usize {
        self.n
    }
    /// (n, V) probs after [`forward`]; dlogits after a step.
    pub fn probs(&self) -> &[F] {
        self.logits
    }
}

/// The lean step's scratch for a batch of `N` rows in fixed-size arrays (`static`-friendly).
#[allow(non_snake_case)]
#[derive(Clone, Debug)]
pub struct LeanScratch<F, const N: usize, const V: usize, const E: usize, const TE: usize> {
    pub logits: [[F; V]; N],
    pub dC: [[F; E]; V],
    pub w1_col: [F; TE],
    pub bnraw: [F; N],
    pub h: [F; N],
    pub dh: [F; N],
    pub stats: [F; 4],
}

impl<F: Float, const N: usize, const V: usize, const E: usize, const TE: usize>
    LeanScratch<F, N, V, E, TE>
{
    const CHECK: () = assert!(N >= 2 && TE.is_multiple_of(E), "N >= 2 and TE == T * E");

    pub const ZERO: Self = {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CHECK;
        LeanScratch {
            logits: [[F::ZERO; V]; N],
            dC: [[F::ZERO; E]; V],
            w1_col: [F::ZERO; TE],
            bnraw: [F::ZERO; N],
            h: [F::ZERO; N],
            dh: [F::ZERO; N],
            stats: [F::ZERO; 4],
        }
    };

    /// A view; its V, E and T*E are checked against the parameters' dims by each step.
    pub fn view_mut(&mut self) -> LeanMut<'_, F> {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CHECK;
        LeanMut {
            n: N,
            vocab: V,
            embedding: E,
            embcat: TE,
            logits: self.logits.as_flattened_mut(),
            dC: self.dC.as_flattened_mut(),
            w1_col: &mut self.w1_col,
            bnraw: &mut self.bnraw,
            h: &mut self.h,
            dh: &mut self.dh,
            stats: &mut self.stats,
        }
    }
}

/// Everything the lean step needs: the parameters and [`LeanScratch`].
#[derive(Clone, Debug)]
pub struct LeanTrainState<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    pub params: Params<F, V, T, E, TE, H>,
    pub scratch: LeanScratch<F, N, V, E, TE>,
}

impl<
        F: Float,
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > LeanTrainState<F, N, V, T, E, TE, H>
{
    pub const ZERO: Self = LeanTrainState {
        params: Params::ZERO,
        scratch: LeanScratch::ZERO,
    };

    /// [`train_step`]: `xb` (N, T), `yb` (N). Returns the loss (before the update).
    pub fn step(&mut self, xb: &[u8], yb: &[u8], lr: F) -> Result<F, Error> {
        train_step(
            &mut self.params.view_mut(),
            &mut self.scratch.view_mut(),
            xb,
            yb,
            lr,
        )
    }
}

/// Checks the scratch against the dims and the batch: `xb` (n, T), `yb` (n), ids < V.
fn check<F: Float>(dims: &Dims, s: &LeanMut<'_, F>, xb: &[u8], yb: &[u8]) -> Result<(), Error> {
    if s.vocab != dims.vocab || s.embedding != dims.embedding || s.embcat != dims.embcat() {
        return Err(Error::DimsMismatch);
    }
    check_rows(dims, s.n, xb, yb)
}

/// Unit j's column through batchnorm and tanh: `s.w1_col` (T*E) gets `W1[:, j]`, `s.bnraw` (n)
/// bnraw, `s.h` (n) h, `s.stats[0..2]` bnmeani and bnvar_inv. The same operations in the same order as the fused
/// forward's column j (`embed_linear_forward`, then `batchnorm_forward` on one column).
fn unit_forward<F: Float>(s: &mut LeanMut<'_, F>, p: ParamsRef<'_, F>, xb: &[u8], j: usize) {
    let dims = p.dims();
    let (t_len, e_len, hidden) = (dims.context, dims.embedding, dims.hidden);
    // hprebn[:, j] = C[Xb].view(n, -1) @ W1[:, j] + b1[j], W1[:, j] copied once
    for (w, W1_row) in s.w1_col.iter_mut().zip(p.W1.chunks_exact(hidden)) {
        *w = W1_row[j];
    }
    for (col, x) in s.bnraw.iter_mut().zip(xb.chunks_exact(t_len)) {
        let mut acc = p.b1[j];
        for (&ix, w1_t) in x.iter().zip(s.w1_col.chunks_exact(e_len)) {
            let emb = &p.C[ix as usize * e_len..][..e_len];
            for (&embcat_i, &w) in emb.iter().zip(w1_t) {
                acc += embcat_i * w;
            }
        }
        *col = acc;
    }
    let (bnmeani, rest) = s.stats.split_at_mut(1);
    batchnorm_forward(s.bnraw, bnmeani, &mut rest[..1]);
    // h[:, j] = tanh(bngain[j] * bnraw[:, j] + bnbias[j])
    scale_shift_tanh_forward(s.h, s.bnraw, &p.bngain[j..j + 1], &p.bnbias[j..j + 1]);
}

/// The forward pass with batch statistics, one unit at a time; returns the mean cross-entropy
/// and leaves probs in the scratch. Errors: scratch dims differ, wrong lengths, an id >= V.
pub fn forward<F: Float>(
    params: ParamsRef<'_, F>,
    scratch: &mut LeanMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) -> Result<F, Error> {
    check(&params.dims(), scratch, xb, yb)?;
    Ok(forward_unchecked(params, scratch, xb, yb))
}

fn forward_unchecked<F: Float>(
    p: ParamsRef<'_, F>,
    s: &mut LeanMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) -> F {
    let v = s.vocab;
    // logits = h @ W2 + b2, one h[:, j] * W2[j, :] at a time (the order of `linear_forward`)
    for row in s.logits.chunks_exact_mut(v) {
        row.copy_from_slice(p.b2);
    }
    for j in 0..p.dims().hidden {
        unit_forward(s, p, xb, j);
        let W2_row = &p.W2[j * v..][..v];
        for (row, &hj) in s.logits.chunks_exact_mut(v).zip(s.h.iter()) {
            axpy(row, hj, W2_row);
        }
    }
    cross_entropy_forward(s.logits, yb)
}

/// The backward pass, one unit at a time. Consumes the probs of [`forward`] of the same
/// parameters and batch; every parameter is read before the sink updates it.
fn backward_into<F: Float, S: GradSink<F>>(
    sink: &mut S,
    s: &mut LeanMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) {
    let dims = sink.params().dims();
    let (v, t_len, e_len, hidden) = (dims.vocab, dims.context, dims.embedding, dims.hidden);

    // loss = cross_entropy(logits, Yb)  =>  dlogits = (probs - one_hot) / n
    cross_entropy_backward(s.logits, yb, s.n);
    // db2 = dlogits.sum(0)   (b2 is not read again)
    for c in 0..v {
        let mut g = F::ZERO;
        for row in s.logits.chunks_exact(v) {
            g += row[c];
        }
        sink.emit(Tensor::b2, c, &[g]);
    }
    s.dC.fill(F::ZERO);

    for j in 0..hidden {
        // the forward of unit j again (C, W1[:, j], b1[j], bngain[j], bnbias[j] not yet updated)
        unit_forward(s, sink.params(), xb, j);
        // dh[:, j] = dlogits @ W2[j, :]   (old W2)
        {
            let W2_row = &sink.params().W2[j * v..][..v];
            for (dh, dl_row) in s.dh.iter_mut().zip(s.logits.chunks_exact(v)) {
                *dh = dot(dl_row, W2_row);
            }
        }
        // dW2[j, :] = h[:, j].T @ dlogits
        for c in 0..v {
            let mut g = F::ZERO;
            for (&hk, dl_row) in s.h.iter().zip(s.logits.chunks_exact(v)) {
                g += hk * dl_row[c];
            }
            sink.emit(Tensor::W2, j * v + c, &[g]);
        }
        // h = tanh(hpreact): dhpreact = (1 - h**2) * dh
        for (dh, &hk) in s.dh.iter_mut().zip(s.h.iter()) {
            *dh = tanh_backward(hk, *dh);
        }
        // hpreact = bngain * bnraw + bnbias and the batchnorm above it (fused): dhprebn in dh
        {
            let bngain = &sink.params().bngain[j..j + 1];
            let (stats, sums) = s.stats.split_at_mut(2);
            let (dbngain, dbnbias) = sums.split_at_mut(1);
            batchnorm_backward(s.dh, dbngain, dbnbias, s.bnraw, &stats[1..2], bngain);
        }
        sink.emit(Tensor::bngain, j, &s.stats[2..3]);
        sink.emit(Tensor::bnbias, j, &s.stats[3..4]);
        let dhprebn = &*s.dh;

        // hprebn = embcat @ W1 + b1
        // dC[Xb[k, t], e] += dembcat[k, t*E + e], dembcat[k, i] = dhprebn[k] * W1[i, j] summed
        // over j   (old W1: its column j is still in w1_col)
        for (&d, x) in dhprebn.iter().zip(xb.chunks_exact(t_len)) {
            for (&ix, w1_t) in x.iter().zip(s.w1_col.chunks_exact(e_len)) {
                let dC_row = &mut s.dC[ix as usize * e_len..][..e_len];
                for (dc, &w) in dC_row.iter_mut().zip(w1_t) {
                    *dc += d * w;
                }
            }
        }
        // db1[j] = dhprebn.sum(0)
        let mut g = F::ZERO;
        for &d in dhprebn {
            g += d;
        }
        sink.emit(Tensor::b1, j, &[g]);
        // dW1[i, j] = embcat[:, i].T @ dhprebn, embcat[k, t*E + e] = C[Xb[k, t], e]   (old C),
        // into w1_col
        s.w1_col.fill(F::ZERO);
        {
            let C = sink.params().C;
            for (x, &d) in xb.chunks_exact(t_len).zip(dhprebn) {
                for (&ix, g_t) in x.iter().zip(s.w1_col.chunks_exact_mut(e_len)) {
                    for (g, &c) in g_t.iter_mut().zip(&C[ix as usize * e_len..][..e_len]) {
                        *g += c * d;
                    }
                }
            }
        }
        for (i, g) in s.w1_col.iter().enumerate() {
            sink.emit(Tensor::W1, i * hidden + j, core::slice::from_ref(g));
        }
    }

    // emb = C[Xb]: every row of C, zero where no token was used (as the fused step emits)
    for ix in 0..v {
        sink.emit(Tensor::C, ix * e_len, &s.dC[ix * e_len..][..e_len]);
    }
}

/// Every parameter gradient into `grads` (overwriting), for the batch `xb` (n, T), `yb` (n).
/// Returns the loss. The gradients of [`crate::train::backward`], up to the rounding of dC.
pub fn gradient<F: Float>(
    params: ParamsRef<'_, F>,
    grads: &mut ParamsMut<'_, F>,
    scratch: &mut LeanMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) -> Result<F, Error> {
    let dims = params.dims();
    if grads.dims() != dims {
        return Err(Error::DimsMismatch);
    }
    let loss = forward(params, scratch, xb, yb)?;
    let mut grads = grads.reborrow();
    let mut sink = StoreGrads {
        params,
        grads: &mut grads,
    };
    backward_into(&mut sink, scratch, xb, yb);
    Ok(loss)
}

/// One training step, one hidden unit at a time: forward, then each parameter updated
/// (`p -= lr * grad`) as soon as its gradient is final. Returns the loss before the update.
pub fn train_step<F: Float>(
    params: &mut ParamsMut<'_, F>,
    scratch: &mut LeanMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
    lr: F,
) -> Result<F, Error> {
    let loss = forward(params.as_ref(), scratch, xb, yb)?;
    let mut sink = ApplySgd { params, lr };
    backward_into(&mut sink, scratch, xb, yb);
    Ok(loss)
}
