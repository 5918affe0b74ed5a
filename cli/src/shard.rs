//! The training step with the minibatch's rows sharded across threads (for large batches), on
//! the current rayon pool (`pool.install`), giving the same bits for any number of threads.
//!
//! The batch is cut into chunks of [`SHARD_ROWS`] rows: the partition depends only on the batch
//! size. Each phase below runs the chunks in parallel; what couples rows is reduced exactly and
//! sequentially in chunk order:
//! - batchnorm's whole-batch statistics (not per-shard "ghost" batchnorm): the chunks' column
//!   sums of hprebn give bnmeani, then their column sums of bndiff**2 give bnvar_inv;
//! - the backward's column sums dbngain and dbnbias, which every row's dhprebn needs;
//! - the parameter gradients: each chunk writes its own partial gradient, and element `i` of
//!   the gradient is the sum of the chunks' element `i` in chunk order (in parallel over `i`);
//! - the loss: per-chunk sums added in chunk order.
//!
//! So the parameters after any number of steps are bit-identical for 1, 2 or 8 threads. They
//! differ from [`Kernels::train_step`]'s by rounding only (sums taken in another order).
//!
//! The sequence is the core's whole SIMD step (`train_step_unchecked` in
//! `core/src/simd/kernels.rs`) with batchnorm split at its reductions. Per chunk:
//! - A: `embcat = C[Xb]`; `hprebn = embcat @ W1 + b1`; partial `hprebn.sum(0)`.
//!   Then `bnmeani = 1/n * hprebn.sum(0)`.
//! - B: `bndiff = hprebn - bnmeani`; partial `(bndiff**2).sum(0)`.
//!   Then `bnvar_inv = (1/(n-1) * (bndiff**2).sum(0) + eps)**-0.5`.
//! - C: `bnraw`, `h`, `logits`, the loss, `dlogits`, partial `dW2`, `db2`; `dhpreact`; partial
//!   `dbngain`, `dbnbias`. Then `dbngain`, `dbnbias`.
//! - D: `dhprebn`; partial `dW1`, `db1`; `dembcat`; partial `dC`.
//!   Then every gradient, and SGD.
//!
//! The elementwise batchnorm pieces are plain loops over rows with the hidden units innermost
//! (they vectorise), doing the core kernels' operations in the same order (no FMA), so they
//! give the same bits as the core's batchnorm for the same statistics.

use anyhow::{bail, Result};
use makemore_core::simd::Kernels;
use makemore_core::{Dims, ParamsMut, ParamsRef, BN_EPS};
use rayon::prelude::*;

/// Rows per chunk of the sharded step.
pub const SHARD_ROWS: usize = 64;

/// The smallest batch for which the CLI uses the sharded step; smaller batches take the
/// single-thread [`Kernels::train_step`]. It depends only on the batch size (never on
/// `--threads`), so a run gives the same bits for any thread count.
///
/// Measured (`cargo bench -p benches --bench threads`, README "Threads"): at batch 32 (one
/// chunk) the sharded step on 2 threads is 1.4x slower than the kernel step (pool overhead,
/// no parallelism); from 128 (two chunks) it is 1.4x faster, and on 1 thread it is as fast as
/// the kernel step (2048: faster, as its chunks stay in cache).
pub const SHARD_MIN_BATCH: usize = 2 * SHARD_ROWS;

/// Gradient elements per parallel job of the final merge.
const MERGE_BLOCK: usize = 2048;

/// One chunk's rows of the batch and of every activation, and its partial results.
struct Shard<'a> {
    /// (rows, T)
    xb: &'a [u8],
    /// (rows)
    yb: &'a [u8],
    /// (rows, T*E): embcat, then dembcat
    embcat: &'a mut [f32],
    /// (rows, H): hprebn, bndiff, then bnraw
    bnraw: &'a mut [f32],
    /// (rows, H): h, dhpreact, then dhprebn
    h: &'a mut [f32],
    /// (rows, V): logits, probs, then dlogits
    probs: &'a mut [f32],
    /// (num_params + H): the chunk's gradient (the parameters' flat layout), then a column sum
    partial: &'a mut [f32],
}

/// Buffers of the sharded step for batches of `n` rows.
#[derive(Debug)]
pub struct ShardedStep {
    dims: Dims,
    n: usize,
    /// (n, T*E)
    embcat: Vec<f32>,
    /// (n, H)
    bnraw: Vec<f32>,
    /// (n, H)
    h: Vec<f32>,
    /// (n, V)
    probs: Vec<f32>,
    /// (chunks, num_params + H)
    partials: Vec<f32>,
    /// (V, H): W2.T
    w2t: Vec<f32>,
    /// (num_params): the last step's gradient
    grads: Vec<f32>,
    /// (H)
    bnmeani: Vec<f32>,
    /// (H)
    bnvar_inv: Vec<f32>,
    /// (H): bngain * bnvar_inv / n
    dscale: Vec<f32>,
}

impl ShardedStep {
    /// Buffers for `dims` and batches of `n >= 2` rows.
    pub fn new(dims: Dims, n: usize) -> Result<Self> {
        if n < 2 {
            bail!("a training batch needs at least 2 rows (batchnorm's variance), got {n}");
        }
        let (te, hd, v) = (dims.embcat(), dims.hidden, dims.vocab);
        let np = dims.num_params();
        Ok(ShardedStep {
            dims,
            n,
            embcat: vec![0.0; n * te],
            bnraw: vec![0.0; n * hd],
            h: vec![0.0; n * hd],
            probs: vec![0.0; n * v],
            partials: vec![0.0; n.div_ceil(SHARD_ROWS) * (np + hd)],
            w2t: vec![0.0; v * hd],
            grads: vec![0.0; np],
            bnmeani: vec![0.0; hd],
            bnvar_inv: vec![0.0; hd],
            dscale: vec![0.0; hd],
        })
    }

    /// The gradient of the last step (the parameters' flat layout).
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// The last step's batch statistics `bnmeani`, `bnvar_inv` (H each).
    pub fn bn_stats(&self) -> (&[f32], &[f32]) {
        (&self.bnmeani, &self.bnvar_inv)
    }

    /// One SGD step on `params` (flat, num_params) with the batch `xb` (n, T), `yb` (n):
    /// forward with whole-batch statistics, backward, `p -= lr * grad`. Returns the loss before
    /// the update. Errors: wrong lengths, token ids `>= V`.
    pub fn step(
        &mut self,
        k: &Kernels,
        params: &mut [f32],
        xb: &[u8],
        yb: &[u8],
        lr: f32,
    ) -> Result<f32> {
        let dims = self.dims;
        let (t, e, te, hd, v) = (
            dims.context,
            dims.embedding,
            dims.embcat(),
            dims.hidden,
            dims.vocab,
        );
        let (n, np) = (self.n, dims.num_params());
        if xb.len() != n * t || yb.len() != n {
            bail!(
                "a batch of {n} rows needs {} context tokens and {n} targets, got {} and {}",
                n * t,
                xb.len(),
                yb.len()
            );
        }
        if let Some(&bad) = xb.iter().chain(yb).find(|&&c| c as usize >= v) {
            bail!("token {bad} is out of range for a vocabulary of {v}");
        }
        let loss = {
            let p = ParamsRef::from_flat(dims, params)?;
            let [c, w1, b1, w2, b2, bngain, bnbias] = p.tensors();
            let ShardedStep {
                embcat,
                bnraw,
                h,
                probs,
                partials,
                w2t,
                grads,
                bnmeani,
                bnvar_inv,
                dscale,
                ..
            } = self;
            let mut shards: Vec<Shard<'_>> = xb
                .chunks(SHARD_ROWS * t)
                .zip(yb.chunks(SHARD_ROWS))
                .zip(embcat.chunks_mut(SHARD_ROWS * te))
                .zip(bnraw.chunks_mut(SHARD_ROWS * hd))
                .zip(h.chunks_mut(SHARD_ROWS * hd))
                .zip(probs.chunks_mut(SHARD_ROWS * v))
                .zip(partials.chunks_mut(np + hd))
                .map(
                    |((((((xb, yb), embcat), bnraw), h), probs), partial)| Shard {
                        xb,
                        yb,
                        embcat,
                        bnraw,
                        h,
                        probs,
                        partial,
                    },
                )
                .collect();
            let nf = n as f32;
            let inv_n = 1.0 / nf;

            // ---- A: embcat = C[Xb].view(n, -1); hprebn = embcat @ W1 + b1; partial hprebn.sum(0)
            shards.par_iter_mut().for_each(|s| {
                k.embed_gather(s.embcat, s.xb, c, e);
                k.linear_forward(s.bnraw, s.embcat, w1, b1, hd);
                k.bias_backward(&mut s.partial[np..], s.bnraw);
            });
            // bnmeani = 1/n * hprebn.sum(0)   (sum over the batch, per hidden unit)
            column_sum_in_order(bnmeani, &shards, np);
            bnmeani.iter_mut().for_each(|m| *m *= inv_n);

            // ---- B: bndiff = hprebn - bnmeani; partial (bndiff**2).sum(0)
            let bnmeani = &*bnmeani;
            shards.par_iter_mut().for_each(|s| {
                let sum2 = &mut s.partial[np..];
                sum2.fill(0.0);
                for row in s.bnraw.chunks_exact_mut(hd) {
                    for ((x, &m), q) in row.iter_mut().zip(bnmeani).zip(sum2.iter_mut()) {
                        let d = *x - m;
                        *x = d;
                        *q += d * d;
                    }
                }
            });
            // bnvar = 1/(n-1) * (bndiff**2).sum(0); bnvar_inv = (bnvar + 1e-5)**-0.5
            column_sum_in_order(bnvar_inv, &shards, np);
            let inv_n1 = 1.0 / (nf - 1.0);
            let eps = BN_EPS as f32;
            bnvar_inv
                .iter_mut()
                .for_each(|x| *x = 1.0 / (inv_n1 * *x + eps).sqrt());

            // ---- C: forward to the loss, backward to dhpreact
            k.transpose(w2t, w2, v);
            let (bnvar_inv, w2t) = (&*bnvar_inv, &*w2t);
            let chunk_losses: Vec<f32> = shards
                .par_iter_mut()
                .map(|s| {
                    // bnraw = bndiff * bnvar_inv
                    for row in s.bnraw.chunks_exact_mut(hd) {
                        row.iter_mut().zip(bnvar_inv).for_each(|(x, &i)| *x *= i);
                    }
                    // h = tanh(bngain * bnraw + bnbias); logits = h @ W2 + b2
                    k.scale_shift_tanh_forward(s.h, s.bnraw, bngain, bnbias);
                    k.linear_forward(s.probs, s.h, w2, b2, v);
                    // the chunk's loss sum (cross_entropy_forward gives its mean); probs in place
                    let loss = k.cross_entropy_forward(s.probs, s.yb) * s.yb.len() as f32;
                    // dlogits = (probs - one_hot(Yb)) / n, with n the whole batch's rows
                    for (row, &y) in s.probs.chunks_exact_mut(v).zip(s.yb) {
                        row[y as usize] -= 1.0;
                    }
                    s.probs.iter_mut().for_each(|x| *x *= inv_n);
                    let mut g = ParamsMut::from_flat(dims, &mut s.partial[..np])
                        .expect("the partial gradient has the parameters' layout");
                    let [_, _, _, dw2, db2, dbngain, dbnbias] = g.tensors_mut();
                    // forward: logits = h @ W2 + b2  =>  dW2 = h.T @ dlogits, db2 = dlogits.sum(0)
                    k.matmul_tn(dw2, s.h, s.probs, hd, v);
                    k.bias_backward(db2, s.probs);
                    // dh = dlogits @ W2.T; forward h = tanh(hpreact): dhpreact = (1 - h**2) * dh
                    k.linear_tanh_backward(s.h, s.probs, w2t, hd);
                    // forward: hpreact = bngain * bnraw + bnbias
                    //   => dbngain = (bnraw * dhpreact).sum(0), dbnbias = dhpreact.sum(0)
                    dbngain.fill(0.0);
                    dbnbias.fill(0.0);
                    for (d_row, raw_row) in s.h.chunks_exact(hd).zip(s.bnraw.chunks_exact(hd)) {
                        for (((g, b), &d), &r) in dbngain
                            .iter_mut()
                            .zip(dbnbias.iter_mut())
                            .zip(d_row)
                            .zip(raw_row)
                        {
                            *g += r * d;
                            *b += d;
                        }
                    }
                    loss
                })
                .collect();
            let loss_sum = chunk_losses.iter().fold(0f32, |acc, &l| acc + l);
            // dbngain, dbnbias of the whole batch, and scale = bngain * bnvar_inv / n
            let off = np - 2 * hd;
            let (dbngain, dbnbias) = grads[off..].split_at_mut(hd);
            column_sum_in_order(dbngain, &shards, off);
            column_sum_in_order(dbnbias, &shards, off + hd);
            for ((s, &g), &i) in dscale.iter_mut().zip(bngain).zip(bnvar_inv) {
                *s = g * i / nf;
            }

            // ---- D: dhprebn (the fused batchnorm backward), then the first layer's backward
            let n_over_n1 = nf / (nf - 1.0);
            let (dbngain, dbnbias, dscale) = (&*dbngain, &*dbnbias, &*dscale);
            shards.par_iter_mut().for_each(|s| {
                // dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)
                for (d_row, raw_row) in s.h.chunks_exact_mut(hd).zip(s.bnraw.chunks_exact(hd)) {
                    for ((((d, &r), &sc), &db), &dg) in d_row
                        .iter_mut()
                        .zip(raw_row)
                        .zip(dscale)
                        .zip(dbnbias)
                        .zip(dbngain)
                    {
                        *d = sc * ((nf * *d - db) - n_over_n1 * r * dg);
                    }
                }
                let mut g = ParamsMut::from_flat(dims, &mut s.partial[..np])
                    .expect("the partial gradient has the parameters' layout");
                let [dc, dw1, db1, ..] = g.tensors_mut();
                // forward: hprebn = embcat @ W1 + b1  =>  dW1 = embcat.T @ dhprebn, db1 = dhprebn.sum(0)
                k.matmul_tn(dw1, s.embcat, s.h, te, hd);
                k.bias_backward(db1, s.h);
                // dembcat = dhprebn @ W1.T
                k.matmul_nt(s.embcat, s.h, w1, hd);
                // forward: emb = C[Xb]  =>  dC[ix] += demb[k, t] for every Xb[k, t] == ix
                k.embed_scatter_add(dc, s.embcat, s.xb);
            });

            // every gradient: element i = the chunks' element i summed in chunk order
            grads
                .par_chunks_mut(MERGE_BLOCK)
                .enumerate()
                .for_each(|(b, out)| {
                    let (off, len) = (b * MERGE_BLOCK, out.len());
                    let mut chunks = shards.iter().map(|s| &s.partial[off..][..len]);
                    if let Some(first) = chunks.next() {
                        out.copy_from_slice(first);
                    }
                    for p in chunks {
                        out.iter_mut().zip(p).for_each(|(o, &x)| *o += x);
                    }
                });
            loss_sum / nf
        };
        // update: p = p - lr * grad
        k.sgd(params, &self.grads, lr);
        Ok(loss)
    }
}

/// `out[j] = sum over the chunks, in order, of partial[offset + j]`.
fn column_sum_in_order(out: &mut [f32], shards: &[Shard<'_>], offset: usize) {
    out.fill(0.0);
    for s in shards {
        let p = &s.partial[offset..][..out.len()];
        out.iter_mut().zip(p).for_each(|(o, &x)| *o += x);
    }
}
