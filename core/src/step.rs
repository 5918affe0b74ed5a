//! The training step on any [`Kernels`] path, over S shards of a batch: the one step that
//! `makemore train` runs, on one thread (S = 1, or shards in turn) or with the caller running
//! shards in parallel through a [`Schedule`].
//!
//! The batch of `n` rows is cut into shards of [`shard_rows`]`(n)` rows (the last may be
//! shorter); the cut depends only on `n`, never on the threads. Batchnorm couples the rows, so
//! the step is split at its reductions, each summed over the shards in shard order:
//! - A: `embcat = C[Xb]`, `hprebn = embcat @ W1 + b1`, the shard's `hprebn.sum(0)`;
//!   then `bnmeani = 1/n * hprebn.sum(0)`;
//! - B: `bndiff = hprebn - bnmeani`, the shard's `(bndiff**2).sum(0)`;
//!   then `bnvar_inv = (1/(n-1) * (bndiff**2).sum(0) + 1e-5)**-0.5`;
//! - C: `bnraw`, `h`, `logits`, the loss, `dlogits`, the shard's `dW2`, `db2`, `dhpreact`, and its
//!   `dbngain`, `dbnbias`; then `dbngain`, `dbnbias` of the batch;
//! - D: `dhprebn` (the fused batchnorm backward), the shard's `dW1`, `db1`, `dembcat`, `dC`;
//!   then each gradient element is the shards' summed in shard order, and SGD.
//!
//! So the parameters after any number of steps are the same bits for any schedule and thread
//! count. With S = 1 the sums have one term and the step is the notebook's fused step. The
//! scalar path is [`crate::train::train_step`]'s arithmetic, bit for bit; the vector paths give
//! the same elementwise bits but sum the products with FMA.

use crate::error::Error;
use crate::model::{Dims, ParamsMut, ParamsRef};
use crate::simd::Kernels;

/// Rows per shard of a sharded batch.
pub const SHARD_ROWS: usize = 64;

/// Rows per shard for a batch of `n` rows: [`SHARD_ROWS`] from `2 * SHARD_ROWS` rows on (two
/// shards or more), else the whole batch as one shard.
pub const fn shard_rows(n: usize) -> usize {
    if n >= 2 * SHARD_ROWS {
        SHARD_ROWS
    } else {
        n
    }
}

/// Runs the shards of a step: in turn ([`InTurn`]), or in parallel (the CLI's rayon schedule).
pub trait Schedule {
    /// Calls `f(i, chunk)` once for every `(i, chunk)` of `data.chunks_mut(len).enumerate()`,
    /// in any order, on any thread.
    fn for_each_chunk(&self, data: &mut [f32], len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync));
}

/// Every chunk in turn on the calling thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct InTurn;

impl Schedule for InTurn {
    fn for_each_chunk(&self, data: &mut [f32], len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        for (i, chunk) in data.chunks_mut(len.max(1)).enumerate() {
            f(i, chunk);
        }
    }
}

/// Gradient elements per chunk of the final merge.
const MERGE_BLOCK: usize = 2048;

/// The scratch of [`Kernels::train_step`] for batches of `n` rows, over one flat buffer of
/// [`Step::flat_len`] values: W2.T, the batch statistics, and per shard its activations, its
/// gradient (shard 0's is the batch's after the merge) and its column sums.
#[derive(Debug)]
pub struct Step<'a> {
    dims: Dims,
    n: usize,
    rows: usize,
    /// (V, H) W2.T
    w2t: &'a mut [f32],
    /// (H) each
    bnmeani: &'a mut [f32],
    bnvar_inv: &'a mut [f32],
    dbngain: &'a mut [f32],
    dbnbias: &'a mut [f32],
    /// (shards, [`Step::shard_len`])
    shards: &'a mut [f32],
}

/// Offsets of one shard's buffers in its chunk of [`Step`]'s `shards`, for `r` rows.
#[derive(Clone, Copy)]
struct Layout {
    // embcat (r, T*E), then dembcat, at offset 0
    /// (r, H): hprebn, bndiff, then bnraw
    bnraw: usize,
    /// (r, H): h, dhpreact, then dhprebn
    h: usize,
    /// (r, V): logits, probs, then dlogits
    probs: usize,
    /// (num_params): the shard's gradient, in the parameters' flat layout
    grad: usize,
    /// (H): a column sum; then 1 value, the shard's loss sum
    colsum: usize,
    len: usize,
}

impl Layout {
    const fn new(dims: &Dims, r: usize) -> Layout {
        let (te, h, v) = (dims.embcat(), dims.hidden, dims.vocab);
        let bnraw = r * te;
        let hh = bnraw + r * h;
        let probs = hh + r * h;
        let grad = probs + r * v;
        let colsum = grad + dims.num_params();
        Layout {
            bnraw,
            h: hh,
            probs,
            grad,
            colsum,
            len: colsum + h + 1,
        }
    }
}

/// One shard's buffers.
struct Shard<'s> {
    embcat: &'s mut [f32],
    bnraw: &'s mut [f32],
    h: &'s mut [f32],
    probs: &'s mut [f32],
    grad: &'s mut [f32],
    colsum: &'s mut [f32],
    loss: &'s mut f32,
}

impl<'s> Shard<'s> {
    /// The buffers of a shard of `r` rows in `chunk` (laid out for `rows >= r`).
    fn split(dims: &Dims, l: &Layout, r: usize, chunk: &'s mut [f32]) -> Shard<'s> {
        let (te, h, v) = (dims.embcat(), dims.hidden, dims.vocab);
        let (a, rest) = chunk.split_at_mut(l.bnraw);
        let (b, rest) = rest.split_at_mut(l.h - l.bnraw);
        let (c, rest) = rest.split_at_mut(l.probs - l.h);
        let (d, rest) = rest.split_at_mut(l.grad - l.probs);
        let (grad, rest) = rest.split_at_mut(l.colsum - l.grad);
        let (colsum, loss) = rest.split_at_mut(h);
        Shard {
            embcat: &mut a[..r * te],
            bnraw: &mut b[..r * h],
            h: &mut c[..r * h],
            probs: &mut d[..r * v],
            grad,
            colsum,
            loss: &mut loss[0],
        }
    }
}

impl<'a> Step<'a> {
    /// Values of one shard's chunk for shards of `rows` rows.
    const fn shard_len(dims: &Dims, rows: usize) -> usize {
        Layout::new(dims, rows).len
    }

    /// How many values [`Step::from_flat`] needs for batches of `n` rows, or `None` for dims
    /// that do not validate or a size that overflows `usize`.
    pub fn flat_len(dims: &Dims, n: usize) -> Option<usize> {
        let dims = dims.validate().ok()?;
        let rows = shard_rows(n).max(1);
        let (te, h, v) = (dims.embcat(), dims.hidden, dims.vocab);
        let shard = rows
            .checked_mul(te.checked_add(2 * h)?.checked_add(v)?)?
            .checked_add(dims.num_params())?
            .checked_add(h + 1)?;
        n.div_ceil(rows)
            .checked_mul(shard)?
            .checked_add(v.checked_mul(h)?)?
            .checked_add(4 * h)
    }

    /// Views `flat` (exactly [`Step::flat_len`] values) as the scratch for batches of `n` rows.
    /// Errors: invalid dims, `n < 2`, a wrong length.
    pub fn from_flat(dims: Dims, n: usize, flat: &'a mut [f32]) -> Result<Self, Error> {
        let dims = dims.validate()?;
        if n < 2 {
            return Err(Error::BatchTooSmall { n });
        }
        let want = Self::flat_len(&dims, n);
        if want != Some(flat.len()) {
            return Err(Error::LengthMismatch {
                what: "training step scratch",
                expected: want.unwrap_or(usize::MAX),
                got: flat.len(),
            });
        }
        let (h, v) = (dims.hidden, dims.vocab);
        let (w2t, rest) = flat.split_at_mut(v * h);
        let (bnmeani, rest) = rest.split_at_mut(h);
        let (bnvar_inv, rest) = rest.split_at_mut(h);
        let (dbngain, rest) = rest.split_at_mut(h);
        let (dbnbias, shards) = rest.split_at_mut(h);
        Ok(Step {
            dims,
            n,
            rows: shard_rows(n),
            w2t,
            bnmeani,
            bnvar_inv,
            dbngain,
            dbnbias,
            shards,
        })
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }
    /// Rows per batch.
    pub fn n(&self) -> usize {
        self.n
    }
    /// How many shards a batch is cut into.
    pub fn shards(&self) -> usize {
        self.n.div_ceil(self.rows)
    }
    /// The last step's gradient (the parameters' flat layout).
    pub fn grads(&self) -> &[f32] {
        let l = Layout::new(&self.dims, self.rows);
        &self.shards[l.grad..l.colsum]
    }
    /// The last step's batch statistics `bnmeani`, `bnvar_inv` (H each).
    pub fn bn_stats(&self) -> (&[f32], &[f32]) {
        (self.bnmeani, self.bnvar_inv)
    }
}

/// `out[j] = 0 + the shards' `chunk[offset + j]` summed in shard order.
fn sum_over_shards(out: &mut [f32], shards: &[f32], shard_len: usize, offset: usize) {
    out.fill(0.0);
    let width = out.len();
    for chunk in shards.chunks_exact(shard_len) {
        for (o, &x) in out.iter_mut().zip(&chunk[offset..][..width]) {
            *o += x;
        }
    }
}

impl Kernels {
    /// One SGD step: forward with the batch's statistics, the fused backward, `p -= lr * grad`,
    /// over the shards of `step`, run by `schedule`. `xb` (n, T), `yb` (n) token ids < V.
    /// Returns the mean loss before the update. Errors: dims of `params` and `step` differ,
    /// wrong lengths, a token id >= V.
    ///
    /// The same bits for any [`Schedule`]. The scalar path with one shard gives
    /// [`crate::train::train_step`]'s bits; vector paths differ from scalar by the rounding of
    /// FMA in the products.
    pub fn train_step(
        &self,
        schedule: &impl Schedule,
        params: &mut ParamsMut<'_, f32>,
        step: &mut Step<'_>,
        xb: &[u8],
        yb: &[u8],
        lr: f32,
    ) -> Result<f32, Error> {
        let dims = step.dims;
        if params.dims() != dims {
            return Err(Error::DimsMismatch);
        }
        crate::train::check_rows(&dims, step.n, xb, yb)?;
        let (t, e, te, hd, v) = (
            dims.context,
            dims.embedding,
            dims.embcat(),
            dims.hidden,
            dims.vocab,
        );
        let (n, rows) = (step.n, step.rows);
        let l = Layout::new(&dims, rows);
        let len = Step::shard_len(&dims, rows);
        let k = *self;
        let shard_rows_of = |i: usize| rows.min(n - i * rows);
        let batch = |i: usize| {
            let r = shard_rows_of(i);
            (&xb[i * rows * t..][..r * t], &yb[i * rows..][..r])
        };
        let nf = n as f32;
        let Step {
            w2t,
            bnmeani,
            bnvar_inv,
            dbngain,
            dbnbias,
            shards,
            ..
        } = step;
        let p = params.as_ref();
        let [c, w1, b1, w2, b2, bngain, bnbias] = p.tensors();

        // ---- A: embcat = C[Xb].view(n, -1); hprebn = embcat @ W1 + b1; the shard's hprebn.sum(0)
        schedule.for_each_chunk(shards, len, &|i, chunk| {
            let (x, _) = batch(i);
            let s = Shard::split(&dims, &l, shard_rows_of(i), chunk);
            k.embed_gather_raw(s.embcat, x, c, e);
            k.linear_forward_raw(s.bnraw, s.embcat, w1, b1, hd);
            k.bias_backward_raw(s.colsum, s.bnraw);
        });
        // bnmeani = 1/n * hprebn.sum(0)   (sum over the batch, per hidden unit)
        sum_over_shards(bnmeani, shards, len, l.colsum);
        let inv_n = 1.0 / nf;
        bnmeani.iter_mut().for_each(|m| *m *= inv_n);

        // ---- B: bndiff = hprebn - bnmeani; the shard's (bndiff**2).sum(0)
        let bnmeani = &**bnmeani;
        schedule.for_each_chunk(shards, len, &|i, chunk| {
            let s = Shard::split(&dims, &l, shard_rows_of(i), chunk);
            k.batchnorm_center_raw(s.bnraw, bnmeani, s.colsum);
        });
        // bnvar = 1/(n-1) * (bndiff**2).sum(0); bnvar_inv = (bnvar + 1e-5)**-0.5
        sum_over_shards(bnvar_inv, shards, len, l.colsum);
        k.batchnorm_var_inv_raw(bnvar_inv, n);

        // ---- C: forward to the loss, backward to dhpreact and the shard's dbngain, dbnbias
        k.transpose_raw(w2t, w2, v);
        let (bnvar_inv, w2t) = (&**bnvar_inv, &**w2t);
        let (bng_off, bnb_off) = (
            l.grad + dims.num_params() - 2 * hd,
            l.grad + dims.num_params() - hd,
        );
        schedule.for_each_chunk(shards, len, &|i, chunk| {
            let (_, y) = batch(i);
            let s = Shard::split(&dims, &l, shard_rows_of(i), chunk);
            // bnraw = bndiff * bnvar_inv; h = tanh(bngain * bnraw + bnbias)
            k.batchnorm_scale_shift_tanh_raw(s.h, s.bnraw, bnvar_inv, bngain, bnbias);
            // logits = h @ W2 + b2; the shard's loss sum; probs in place
            k.linear_forward_raw(s.probs, s.h, w2, b2, v);
            *s.loss = k.cross_entropy_sum_raw(s.probs, y);
            // dlogits = (probs - one_hot(Yb)) / n, n the rows of the whole batch
            k.cross_entropy_backward_raw(s.probs, y, n);
            let mut g = ParamsMut::from_flat(dims, s.grad).expect("the gradient's layout");
            let [_, _, _, dw2, db2, dbngain, dbnbias] = g.tensors_mut();
            // forward: logits = h @ W2 + b2  =>  dW2 = h.T @ dlogits, db2 = dlogits.sum(0)
            k.matmul_tn_raw(dw2, s.h, s.probs, hd, v);
            k.bias_backward_raw(db2, s.probs);
            // dh = dlogits @ W2.T; forward h = tanh(hpreact): dhpreact = (1 - h**2) * dh
            k.linear_tanh_backward_raw(s.h, s.probs, w2t, hd);
            // forward: hpreact = bngain * bnraw + bnbias
            //   => dbngain = (bnraw * dhpreact).sum(0), dbnbias = dhpreact.sum(0)
            k.batchnorm_backward_sums_raw(dbngain, dbnbias, s.h, s.bnraw);
        });
        sum_over_shards(dbngain, shards, len, bng_off);
        sum_over_shards(dbnbias, shards, len, bnb_off);
        let mut loss_sum = 0.0f32;
        for chunk in shards.chunks_exact(len) {
            loss_sum += chunk[l.colsum + hd];
        }

        // ---- D: dhprebn (the fused batchnorm backward), then the first layer's backward
        let (dbngain, dbnbias) = (&**dbngain, &**dbnbias);
        schedule.for_each_chunk(shards, len, &|i, chunk| {
            let (x, _) = batch(i);
            let s = Shard::split(&dims, &l, shard_rows_of(i), chunk);
            // dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)
            k.batchnorm_backward_apply_raw(s.h, s.bnraw, bnvar_inv, bngain, dbngain, dbnbias, n);
            let mut g = ParamsMut::from_flat(dims, s.grad).expect("the gradient's layout");
            let [dc, dw1, db1, ..] = g.tensors_mut();
            // forward: hprebn = embcat @ W1 + b1  =>  dW1 = embcat.T @ dhprebn, db1 = dhprebn.sum(0)
            k.matmul_tn_raw(dw1, s.embcat, s.h, te, hd);
            k.bias_backward_raw(db1, s.h);
            // dembcat = dhprebn @ W1.T
            k.matmul_nt_raw(s.embcat, s.h, w1, hd);
            // forward: emb = C[Xb]  =>  dC[ix] += demb[k, t] for every Xb[k, t] == ix
            k.embed_scatter_add_raw(dc, s.embcat, x);
        });

        // the batch's gradient, in shard 0's: element j = the shards' element j in shard order
        let (first, rest) = shards.split_at_mut(len);
        let grad = &mut first[l.grad..l.colsum];
        if !rest.is_empty() {
            let rest = &*rest;
            schedule.for_each_chunk(grad, MERGE_BLOCK, &|b, out| {
                let (off, width) = (l.grad + b * MERGE_BLOCK, out.len());
                for chunk in rest.chunks_exact(len) {
                    for (o, &x) in out.iter_mut().zip(&chunk[off..][..width]) {
                        *o += x;
                    }
                }
            });
        }
        // update: p = p - lr * grad
        let g = ParamsRef::from_flat(dims, grad)?;
        for (p, g) in params.tensors_mut().into_iter().zip(g.tensors()) {
            k.sgd_raw(p, g, lr);
        }
        Ok(loss_sum / nf)
    }
}
