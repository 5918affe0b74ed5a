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
//! - D: `dhprebn` (the fused batchnorm backward), the shard's `dW1`, `db1`, `dembcat`, `dC`.
//!
//! Every shard keeps its activations (the batch needs them), but a shard's gradient is only
//! held until it is added to the batch's: C and D run in waves of at most [`GRAD_SLOTS`] + 1
//! shards (the first shard of the batch writes straight into the batch's gradient, the others
//! of a wave into one of [`GRAD_SLOTS`] slots), and after each wave its slots are added into
//! the batch's gradient in shard order. So each gradient element is
//! `((g0 + g1) + g2) + ...` over the shards, whatever the wave size, and the scratch holds at
//! most [`GRAD_SLOTS`] + 1 gradients for any batch. [`Kernels::gradient`] stops there;
//! [`Kernels::train_step`] then applies SGD.
//!
//! So the parameters after any number of steps are the same bits for any schedule and thread
//! count. With S = 1 the sums have one term and the step is the notebook's fused step. The
//! scalar path is [`crate::train::train_step`]'s arithmetic, bit for bit; the vector paths give
//! the same elementwise bits but sum the products with FMA.

use core::ops::Range;

use crate::error::Error;
use crate::model::{Dims, ParamsMut, ParamsRef};
use crate::simd::Kernels;

/// Rows per shard of a sharded batch.
pub const SHARD_ROWS: usize = 64;

/// Gradient slots of a sharded step: besides the batch's gradient, at most this many shard
/// gradients are held at once, for any batch size.
pub const GRAD_SLOTS: usize = 16;

/// Rows per shard for a batch of `n` rows: [`SHARD_ROWS`] from `2 * SHARD_ROWS` rows on (two
/// shards or more), else the whole batch as one shard.
pub const fn shard_rows(n: usize) -> usize {
    if n >= 2 * SHARD_ROWS {
        SHARD_ROWS
    } else {
        n
    }
}

/// Gradients (of `num_params` values each) a [`Step`] for batches of `n` rows holds: the
/// batch's, and one slot per shard of a wave but the first, at most [`GRAD_SLOTS`].
pub const fn grad_copies(n: usize) -> usize {
    let rows = shard_rows(n);
    let shards = if rows == 0 { 0 } else { n.div_ceil(rows) };
    let slots = shards.saturating_sub(1);
    1 + if slots < GRAD_SLOTS {
        slots
    } else {
        GRAD_SLOTS
    }
}

/// Runs the shards of a step: in turn ([`InTurn`]), or in parallel (the CLI's rayon schedule).
pub trait Schedule {
    /// Calls `f(i, chunk)` once for every `(i, chunk)` of `data.chunks_mut(len).enumerate()`,
    /// in any order, on any thread.
    fn for_each_chunk(&self, data: &mut [f32], len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync));

    /// Calls `f(i, a_chunk, b_chunk)` once for every `(i, (a_chunk, b_chunk))` of
    /// `a.chunks_mut(a_len).zip(b.chunks_mut(b_len)).enumerate()`, in any order, on any thread.
    #[allow(clippy::type_complexity)]
    fn for_each_pair(
        &self,
        a: &mut [f32],
        a_len: usize,
        b: &mut [f32],
        b_len: usize,
        f: &(dyn Fn(usize, &mut [f32], &mut [f32]) + Sync),
    );
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

    fn for_each_pair(
        &self,
        a: &mut [f32],
        a_len: usize,
        b: &mut [f32],
        b_len: usize,
        f: &(dyn Fn(usize, &mut [f32], &mut [f32]) + Sync),
    ) {
        let pairs = a.chunks_mut(a_len.max(1)).zip(b.chunks_mut(b_len.max(1)));
        for (i, (a, b)) in pairs.enumerate() {
            f(i, a, b);
        }
    }
}

/// Gradient elements per chunk of a merge.
const MERGE_BLOCK: usize = 2048;

/// The scratch of [`Kernels::gradient`] and [`Kernels::train_step`] for batches of `n` rows,
/// over one flat buffer of [`Step::flat_len`] values: W2.T, the batch statistics, the batch's
/// gradient and the gradient slots ([`grad_copies`] gradients in all), and per shard its
/// activations, its column sums, its `dbngain`, `dbnbias` and its loss sum.
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
    /// ([`grad_copies`], num_params): the batch's gradient, then the slots; each in the
    /// parameters' flat layout
    grads: &'a mut [f32],
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
    /// (H): a column sum
    colsum: usize,
    /// (H) the shard's dbngain, then (H) its dbnbias
    dbn: usize,
    /// 1 value: the shard's loss sum
    loss: usize,
    len: usize,
}

impl Layout {
    const fn new(dims: &Dims, r: usize) -> Layout {
        let (te, h, v) = (dims.embcat(), dims.hidden, dims.vocab);
        let bnraw = r * te;
        let hh = bnraw + r * h;
        let probs = hh + r * h;
        let colsum = probs + r * v;
        let dbn = colsum + h;
        let loss = dbn + 2 * h;
        Layout {
            bnraw,
            h: hh,
            probs,
            colsum,
            dbn,
            loss,
            len: loss + 1,
        }
    }
}

/// One shard's buffers.
struct Shard<'s> {
    embcat: &'s mut [f32],
    bnraw: &'s mut [f32],
    h: &'s mut [f32],
    probs: &'s mut [f32],
    colsum: &'s mut [f32],
    dbngain: &'s mut [f32],
    dbnbias: &'s mut [f32],
    loss: &'s mut f32,
}

impl<'s> Shard<'s> {
    /// The buffers of a shard of `r` rows in `chunk` (laid out for `rows >= r`).
    fn split(dims: &Dims, l: &Layout, r: usize, chunk: &'s mut [f32]) -> Shard<'s> {
        let (te, h, v) = (dims.embcat(), dims.hidden, dims.vocab);
        let (a, rest) = chunk.split_at_mut(l.bnraw);
        let (b, rest) = rest.split_at_mut(l.h - l.bnraw);
        let (c, rest) = rest.split_at_mut(l.probs - l.h);
        let (d, rest) = rest.split_at_mut(l.colsum - l.probs);
        let (colsum, rest) = rest.split_at_mut(h);
        let (dbngain, rest) = rest.split_at_mut(h);
        let (dbnbias, loss) = rest.split_at_mut(h);
        Shard {
            embcat: &mut a[..r * te],
            bnraw: &mut b[..r * h],
            h: &mut c[..r * h],
            probs: &mut d[..r * v],
            colsum,
            dbngain,
            dbnbias,
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
            .checked_add(h.checked_mul(3)?.checked_add(1)?)?;
        let grads = grad_copies(n).checked_mul(dims.num_params())?;
        n.div_ceil(rows)
            .checked_mul(shard)?
            .checked_add(grads)?
            .checked_add(v.checked_mul(h)?)?
            .checked_add(h.checked_mul(4)?)
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
        let (dbnbias, rest) = rest.split_at_mut(h);
        let (grads, shards) = rest.split_at_mut(grad_copies(n) * dims.num_params());
        Ok(Step {
            dims,
            n,
            rows: shard_rows(n),
            w2t,
            bnmeani,
            bnvar_inv,
            dbngain,
            dbnbias,
            grads,
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
    /// The last step's gradient of the mean loss (num_params, the parameters' flat layout).
    pub fn grads(&self) -> &[f32] {
        &self.grads[..self.dims.num_params()]
    }
    /// The last step's gradient, to change before an update (e.g. clipping).
    pub fn grads_mut(&mut self) -> &mut [f32] {
        let p = self.dims.num_params();
        &mut self.grads[..p]
    }
    /// The last step's batch statistics `bnmeani`, `bnvar_inv` (H each).
    pub fn bn_stats(&self) -> (&[f32], &[f32]) {
        (self.bnmeani, self.bnvar_inv)
    }

    /// For [`crate::stats`], after a step: `f(total, scratch, bnraw)` on each shard in order,
    /// with its `bnraw` (rows, H), which the backward leaves as the forward made it, H values of
    /// scratch (the shard's column sum) and H values shared by all the calls (the first shard's
    /// `dbngain`, zeroed first), which it returns. Both are free once the step is done.
    pub(crate) fn for_each_bnraw(
        &mut self,
        mut f: impl FnMut(&mut [f32], &mut [f32], &[f32]),
    ) -> &[f32] {
        let (dims, n, rows) = (self.dims, self.n, self.rows);
        let l = Layout::new(&dims, rows);
        let (first, rest) = self.shards.split_at_mut(l.len);
        let s0 = Shard::split(&dims, &l, rows.min(n), first);
        let total = s0.dbngain;
        total.fill(0.0);
        f(total, s0.colsum, s0.bnraw);
        for (i, chunk) in rest.chunks_exact_mut(l.len).enumerate() {
            let s = Shard::split(&dims, &l, rows.min(n - (i + 1) * rows), chunk);
            f(total, s.colsum, s.bnraw);
        }
        total
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

/// The shards of a step in waves whose gradients are held at once.
struct Waves {
    /// values of a shard's chunk, of a gradient
    len: usize,
    np: usize,
    /// gradient slots besides the batch's
    slots: usize,
}

impl Waves {
    /// The wave starting at shard `first` of `shards` is `(g, count)`: its `count` shards
    /// write gradients `g..g + count` of [`Step`]'s `grads` (gradient 0 is the batch's: only
    /// shard 0 writes it).
    fn at(&self, first: usize, shards: usize) -> (usize, usize) {
        if first == 0 {
            (0, shards.min(self.slots + 1))
        } else {
            (1, self.slots.min(shards - first))
        }
    }

    /// Runs `phase(i, chunk, grad)` on every shard i of `shards` (its chunk and a gradient to
    /// write) in waves, adding each wave's gradients into gradient 0 of `grads`, in shard
    /// order, on the elements `region`.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        schedule: &impl Schedule,
        shards: &mut [f32],
        grads: &mut [f32],
        region: Range<usize>,
        phase: &(dyn Fn(usize, &mut [f32], &mut [f32]) + Sync),
    ) {
        let (len, np) = (self.len, self.np);
        let count_all = shards.len() / len;
        let mut first = 0;
        while first < count_all {
            let (g, count) = self.at(first, count_all);
            schedule.for_each_pair(
                &mut shards[first * len..(first + count) * len],
                len,
                &mut grads[g * np..(g + count) * np],
                np,
                &|i, chunk, grad| phase(first + i, chunk, grad),
            );
            fold_slots(schedule, grads, np, g.max(1)..g + count, region.clone());
            first += count;
        }
    }
}

/// Adds gradients `from` (>= 1) of `grads` (each of `p` values) into gradient 0, in order, on
/// the elements `region`: gradient 0 is then `((g0 + g_a) + g_b) + ...` there.
fn fold_slots(
    schedule: &impl Schedule,
    grads: &mut [f32],
    p: usize,
    from: Range<usize>,
    region: Range<usize>,
) {
    if from.is_empty() {
        return;
    }
    let (acc, slots) = grads.split_at_mut(p);
    let slots = &slots[(from.start - 1) * p..(from.end - 1) * p];
    let start = region.start;
    schedule.for_each_chunk(&mut acc[region], MERGE_BLOCK, &|b, out| {
        let (off, width) = (start + b * MERGE_BLOCK, out.len());
        for slot in slots.chunks_exact(p) {
            for (o, &x) in out.iter_mut().zip(&slot[off..][..width]) {
                *o += x;
            }
        }
    });
}

impl Kernels {
    /// One SGD step: [`Kernels::gradient`], then `p -= lr * grad`. `xb` (n, T), `yb` (n)
    /// token ids < V. Returns the mean loss before the update. Errors: as
    /// [`Kernels::gradient`].
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
        let loss = self.gradient(schedule, &params.as_ref(), step, xb, yb)?;
        // update: p = p - lr * grad
        let g = ParamsRef::from_flat(step.dims, step.grads())?;
        for (p, g) in params.tensors_mut().into_iter().zip(g.tensors()) {
            self.sgd_raw(p, g, lr);
        }
        Ok(loss)
    }

    /// Forward with the batch's statistics and the fused backward over the shards of `step`,
    /// run by `schedule`: the gradient of the mean loss is left in [`Step::grads`]. `xb`
    /// (n, T), `yb` (n) token ids < V. Returns the mean loss. Errors: dims of `params` and
    /// `step` differ, wrong lengths, a token id >= V.
    ///
    /// The same bits for any [`Schedule`].
    pub fn gradient(
        &self,
        schedule: &impl Schedule,
        params: &ParamsRef<'_, f32>,
        step: &mut Step<'_>,
        xb: &[u8],
        yb: &[u8],
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
        let np = dims.num_params();
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
            grads,
            shards,
            ..
        } = step;
        let [c, w1, b1, w2, b2, bngain, bnbias] = params.tensors();
        // the parameters' flat layout: C, W1, b1 (written in D), W2, b2 (in C), bngain, bnbias
        let (w2_off, bng_off) = (c.len() + w1.len() + b1.len(), np - 2 * hd);
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
        let waves = Waves {
            len,
            np,
            slots: grad_copies(n) - 1,
        };
        let phase_c = |i: usize, chunk: &mut [f32], grad: &mut [f32]| {
            let (_, y) = batch(i);
            let s = Shard::split(&dims, &l, shard_rows_of(i), chunk);
            // bnraw = bndiff * bnvar_inv; h = tanh(bngain * bnraw + bnbias)
            k.batchnorm_scale_shift_tanh_raw(s.h, s.bnraw, bnvar_inv, bngain, bnbias);
            // logits = h @ W2 + b2; the shard's loss sum; probs in place
            k.linear_forward_raw(s.probs, s.h, w2, b2, v);
            *s.loss = k.cross_entropy_sum_raw(s.probs, y);
            // dlogits = (probs - one_hot(Yb)) / n, n the rows of the whole batch
            k.cross_entropy_backward_raw(s.probs, y, n);
            let mut g = ParamsMut::from_flat(dims, grad).expect("the gradient's layout");
            let [_, _, _, dw2, db2, ..] = g.tensors_mut();
            // forward: logits = h @ W2 + b2  =>  dW2 = h.T @ dlogits, db2 = dlogits.sum(0)
            k.matmul_tn_raw(dw2, s.h, s.probs, hd, v);
            k.bias_backward_raw(db2, s.probs);
            // dh = dlogits @ W2.T; forward h = tanh(hpreact): dhpreact = (1 - h**2) * dh
            k.linear_tanh_backward_raw(s.h, s.probs, w2t, hd);
            // forward: hpreact = bngain * bnraw + bnbias
            //   => dbngain = (bnraw * dhpreact).sum(0), dbnbias = dhpreact.sum(0)
            k.batchnorm_backward_sums_raw(s.dbngain, s.dbnbias, s.h, s.bnraw);
        };
        waves.run(schedule, shards, grads, w2_off..bng_off, &phase_c);
        // the batch's dbngain, dbnbias for D: 0 + the shards' in shard order
        sum_over_shards(dbngain, shards, len, l.dbn);
        sum_over_shards(dbnbias, shards, len, l.dbn + hd);
        // and in the batch's gradient, as every other element: ((g0 + g1) + g2) + ...
        let bn_grad = &mut grads[bng_off..np];
        for (s, chunk) in shards.chunks_exact(len).enumerate() {
            let partial = &chunk[l.dbn..][..2 * hd];
            if s == 0 {
                bn_grad.copy_from_slice(partial);
            } else {
                bn_grad.iter_mut().zip(partial).for_each(|(o, &x)| *o += x);
            }
        }
        let mut loss_sum = 0.0f32;
        for chunk in shards.chunks_exact(len) {
            loss_sum += chunk[l.loss];
        }

        // ---- D: dhprebn (the fused batchnorm backward), then the first layer's backward
        let (dbngain, dbnbias) = (&**dbngain, &**dbnbias);
        waves.run(schedule, shards, grads, 0..w2_off, &|i, chunk, grad| {
            let (x, _) = batch(i);
            let s = Shard::split(&dims, &l, shard_rows_of(i), chunk);
            // dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)
            k.batchnorm_backward_apply_raw(s.h, s.bnraw, bnvar_inv, bngain, dbngain, dbnbias, n);
            let mut g = ParamsMut::from_flat(dims, grad).expect("the gradient's layout");
            let [dc, dw1, db1, ..] = g.tensors_mut();
            // forward: hprebn = embcat @ W1 + b1  =>  dW1 = embcat.T @ dhprebn, db1 = dhprebn.sum(0)
            k.matmul_tn_raw(dw1, s.embcat, s.h, te, hd);
            k.bias_backward_raw(db1, s.h);
            // dembcat = dhprebn @ W1.T
            k.matmul_nt_raw(s.embcat, s.h, w1, hd);
            // forward: emb = C[Xb]  =>  dC[ix] += demb[k, t] for every Xb[k, t] == ix
            k.embed_scatter_add_raw(dc, s.embcat, x);
        });
        Ok(loss_sum / nf)
    }
}
