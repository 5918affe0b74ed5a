//! The fused training step (Exercises 2-4): forward, the fused backward, SGD.
//!
//! One backward serves both ways of training, through a `GradSink` that receives each
//! parameter's gradient, row by row, as soon as it is known:
//! - [`backward`] stores the gradients (then [`sgd_update`]): the notebook's
//!   backward-then-update;
//! - [`train_step_in_place`] applies `p -= lr * grad` at once and needs no gradient buffer.
//!
//! The rows are emitted in an order where no parameter is read after it was updated
//! (dh needs the old W2, dhprebn the old bngain, dembcat the old W1, dW1 the old C), and the
//! arithmetic is the same for both sinks, so both give bit-identical parameters.

use crate::batchnorm::{
    batchnorm_backward, batchnorm_forward, scale_shift_tanh_forward, tanh_backward,
};
use crate::cross_entropy::{cross_entropy_backward, cross_entropy_forward};
use crate::error::Error;
use crate::float::Float;
use crate::linear::{axpy, bias_backward, dot, embed_linear_forward, linear_forward};
use crate::model::{Dims, Params, ParamsMut, ParamsRef};

/// Borrowed activations and scratch of one training batch of `n` rows. What each buffer holds
/// after [`forward`] / during backward:
/// - `bnraw` (n, H): hprebn, then bnraw (forward, in place);
/// - `h` (n, H): h, then dhpreact, then dhprebn (backward, in place);
/// - `probs` (n, V): logits, then probs, then dlogits;
/// - `dembcat` (n, T*E);
/// - `bnmeani`, `bnvar_inv`, `dbngain`, `dbnbias`, `acc_h` (H); `acc_v` (V); `acc_e` (E); `dh_col` (n).
#[derive(Debug)]
pub struct ActsMut<'a, F> {
    dims: Dims,
    n: usize,
    pub(crate) bnraw: &'a mut [F],
    pub(crate) h: &'a mut [F],
    pub(crate) probs: &'a mut [F],
    pub(crate) dembcat: &'a mut [F],
    pub(crate) bnmeani: &'a mut [F],
    pub(crate) bnvar_inv: &'a mut [F],
    pub(crate) dbngain: &'a mut [F],
    pub(crate) dbnbias: &'a mut [F],
    pub(crate) acc_h: &'a mut [F],
    pub(crate) acc_v: &'a mut [F],
    pub(crate) acc_e: &'a mut [F],
    pub(crate) dh_col: &'a mut [F],
}

impl<'a, F: Float> ActsMut<'a, F> {
    /// Lengths of the buffers in field order.
    const fn lens(dims: &Dims, n: usize) -> [usize; 12] {
        let (v, te, h, e) = (dims.vocab, dims.embcat(), dims.hidden, dims.embedding);
        [n * h, n * h, n * v, n * te, h, h, h, h, h, v, e, n]
    }

    /// How many values [`ActsMut::from_flat`] needs for `n` rows.
    pub const fn flat_len(dims: &Dims, n: usize) -> usize {
        let l = Self::lens(dims, n);
        let mut sum = 0;
        let mut i = 0;
        while i < l.len() {
            sum += l[i];
            i += 1;
        }
        sum
    }

    /// Views one flat buffer of exactly [`ActsMut::flat_len`] values. Errors: invalid dims,
    /// n < 2, wrong length.
    pub fn from_flat(dims: Dims, n: usize, flat: &'a mut [F]) -> Result<Self, Error> {
        let dims = dims.validate()?;
        if n < 2 {
            return Err(Error::BatchTooSmall { n });
        }
        let want = n
            .checked_mul(dims.hidden * 2 + dims.vocab + dims.embcat() + 1)
            .and_then(|x| x.checked_add(dims.hidden * 5 + dims.vocab + dims.embedding));
        if want != Some(flat.len()) {
            return Err(Error::LengthMismatch {
                what: "activations",
                expected: want.unwrap_or(usize::MAX),
                got: flat.len(),
            });
        }
        let l = Self::lens(&dims, n);
        let (bnraw, rest) = flat.split_at_mut(l[0]);
        let (h, rest) = rest.split_at_mut(l[1]);
        let (probs, rest) = rest.split_at_mut(l[2]);
        let (dembcat, rest) = rest.split_at_mut(l[3]);
        let (bnmeani, rest) = rest.split_at_mut(l[4]);
        let (bnvar_inv, rest) = rest.split_at_mut(l[5]);
        let (dbngain, rest) = rest.split_at_mut(l[6]);
        let (dbnbias, rest) = rest.split_at_mut(l[7]);
        let (acc_h, rest) = rest.split_at_mut(l[8]);
        let (acc_v, rest) = rest.split_at_mut(l[9]);
        let (acc_e, dh_col) = rest.split_at_mut(l[10]);
        Ok(ActsMut {
            dims,
            n,
            bnraw,
            h,
            probs,
            dembcat,
            bnmeani,
            bnvar_inv,
            dbngain,
            dbnbias,
            acc_h,
            acc_v,
            acc_e,
            dh_col,
        })
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }
    /// Rows in the batch.
    pub fn n(&self) -> usize {
        self.n
    }
    /// (n, H) bnraw after [`forward`].
    pub fn bnraw(&self) -> &[F] {
        self.bnraw
    }
    /// (n, H) h after [`forward`]; dhprebn after a backward.
    pub fn h(&self) -> &[F] {
        self.h
    }
    /// (n, V) probs after [`forward`]; dlogits after a backward.
    pub fn probs(&self) -> &[F] {
        self.probs
    }
    /// (n, T*E) dembcat after a backward.
    pub fn dembcat(&self) -> &[F] {
        self.dembcat
    }
    /// (H) bnmeani and bnvar_inv after [`forward`].
    pub fn bn_stats(&self) -> (&[F], &[F]) {
        (self.bnmeani, self.bnvar_inv)
    }
}

/// Activations and scratch for a batch of `N` rows in fixed-size arrays (`static`-friendly).
#[derive(Clone, Debug)]
pub struct Activations<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    pub bnraw: [[F; H]; N],
    pub h: [[F; H]; N],
    pub probs: [[F; V]; N],
    pub dembcat: [[F; TE]; N],
    pub bnmeani: [F; H],
    pub bnvar_inv: [F; H],
    pub dbngain: [F; H],
    pub dbnbias: [F; H],
    pub acc_h: [F; H],
    pub acc_v: [F; V],
    pub acc_e: [F; E],
    pub dh_col: [F; N],
}

impl<
        F: Float,
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > Activations<F, N, V, T, E, TE, H>
{
    const CHECK: () = assert!(N >= 2 && TE == T * E, "N >= 2 and TE == T * E");

    pub const ZERO: Self = {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CHECK;
        Activations {
            bnraw: [[F::ZERO; H]; N],
            h: [[F::ZERO; H]; N],
            probs: [[F::ZERO; V]; N],
            dembcat: [[F::ZERO; TE]; N],
            bnmeani: [F::ZERO; H],
            bnvar_inv: [F::ZERO; H],
            dbngain: [F::ZERO; H],
            dbnbias: [F::ZERO; H],
            acc_h: [F::ZERO; H],
            acc_v: [F::ZERO; V],
            acc_e: [F::ZERO; E],
            dh_col: [F::ZERO; N],
        }
    };

    /// A checked view; infallible because the const checks hold.
    pub fn view_mut(&mut self) -> ActsMut<'_, F> {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CHECK;
        ActsMut {
            dims: Params::<F, V, T, E, TE, H>::DIMS,
            n: N,
            bnraw: self.bnraw.as_flattened_mut(),
            h: self.h.as_flattened_mut(),
            probs: self.probs.as_flattened_mut(),
            dembcat: self.dembcat.as_flattened_mut(),
            bnmeani: &mut self.bnmeani,
            bnvar_inv: &mut self.bnvar_inv,
            dbngain: &mut self.dbngain,
            dbnbias: &mut self.dbnbias,
            acc_h: &mut self.acc_h,
            acc_v: &mut self.acc_v,
            acc_e: &mut self.acc_e,
            dh_col: &mut self.dh_col,
        }
    }
}

/// Everything the backward-then-update step needs: parameters, gradients, activations.
#[derive(Clone, Debug)]
pub struct TrainState<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    pub params: Params<F, V, T, E, TE, H>,
    pub grads: Params<F, V, T, E, TE, H>,
    pub acts: Activations<F, N, V, T, E, TE, H>,
}

impl<
        F: Float,
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > TrainState<F, N, V, T, E, TE, H>
{
    pub const ZERO: Self = TrainState {
        params: Params::ZERO,
        grads: Params::ZERO,
        acts: Activations::ZERO,
    };

    /// forward, backward, `p -= lr * grad`. `xb` (N, T), `yb` (N). Returns the loss (before the update).
    pub fn step(&mut self, xb: &[u8], yb: &[u8], lr: F) -> Result<F, Error> {
        let mut grads = self.grads.view_mut();
        train_step(
            &mut self.params.view_mut(),
            &mut grads,
            &mut self.acts.view_mut(),
            xb,
            yb,
            lr,
        )
    }
}

/// Everything the in-place step needs: no gradient buffer.
#[derive(Clone, Debug)]
pub struct InPlaceTrainState<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    pub params: Params<F, V, T, E, TE, H>,
    pub acts: Activations<F, N, V, T, E, TE, H>,
}

impl<
        F: Float,
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > InPlaceTrainState<F, N, V, T, E, TE, H>
{
    pub const ZERO: Self = InPlaceTrainState {
        params: Params::ZERO,
        acts: Activations::ZERO,
    };

    /// forward and the in-place backward/update. Returns the loss (before the update).
    pub fn step(&mut self, xb: &[u8], yb: &[u8], lr: F) -> Result<F, Error> {
        train_step_in_place(
            &mut self.params.view_mut(),
            &mut self.acts.view_mut(),
            xb,
            yb,
            lr,
        )
    }
}

/// Checks the batch against the activations: `xb` (n, T), `yb` (n), ids < V.
fn check_batch<F: Float>(
    dims: &Dims,
    acts: &ActsMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) -> Result<(), Error> {
    if acts.dims != *dims {
        return Err(Error::DimsMismatch);
    }
    check_rows(dims, acts.n, xb, yb)
}

/// Checks a batch of `n` rows: `xb` (n, T), `yb` (n), ids < V.
pub(crate) fn check_rows(dims: &Dims, n: usize, xb: &[u8], yb: &[u8]) -> Result<(), Error> {
    if xb.len() != n * dims.context {
        return Err(Error::LengthMismatch {
            what: "Xb",
            expected: n * dims.context,
            got: xb.len(),
        });
    }
    if yb.len() != n {
        return Err(Error::LengthMismatch {
            what: "Yb",
            expected: n,
            got: yb.len(),
        });
    }
    crate::check_tokens(xb, dims.vocab)?;
    crate::check_tokens(yb, dims.vocab)
}

/// The forward pass with batch statistics; fills `acts` and returns the mean cross-entropy.
///
/// `xb` (n, T) and `yb` (n) token ids, n = `acts.n()`. Errors: dims of `params` and `acts`
/// differ, wrong lengths, a token id >= V.
pub fn forward<F: Float>(
    params: ParamsRef<'_, F>,
    acts: &mut ActsMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) -> Result<F, Error> {
    let dims = params.dims();
    check_batch(&dims, acts, xb, yb)?;
    Ok(forward_unchecked(params, acts, xb, yb))
}

fn forward_unchecked<F: Float>(
    p: ParamsRef<'_, F>,
    acts: &mut ActsMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) -> F {
    let dims = p.dims();
    // hprebn = C[Xb].view(n, -1) @ W1 + b1   (into the bnraw buffer)
    embed_linear_forward(
        acts.bnraw,
        xb,
        p.C,
        p.W1,
        p.b1,
        dims.context,
        dims.embedding,
    );
    // bnmeani, bnvar_inv, bnraw
    batchnorm_forward(acts.bnraw, acts.bnmeani, acts.bnvar_inv);
    // h = tanh(bngain * bnraw + bnbias)
    scale_shift_tanh_forward(acts.h, acts.bnraw, p.bngain, p.bnbias);
    // logits = h @ W2 + b2; loss = cross_entropy(logits, Yb)   (probs in place)
    linear_forward(acts.probs, acts.h, p.W2, p.b2);
    cross_entropy_forward(acts.probs, yb)
}

/// Names a parameter tensor for a [`GradSink`].
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tensor {
    C,
    W1,
    b1,
    W2,
    b2,
    bngain,
    bnbias,
}

/// Receives each parameter gradient row as soon as it is final.
pub(crate) trait GradSink<F: Float> {
    /// The parameters as they are now (rows already emitted may have been updated).
    fn params(&self) -> ParamsRef<'_, F>;
    /// `grad` is the gradient of `tensor[offset..offset + grad.len()]`.
    fn emit(&mut self, tensor: Tensor, offset: usize, grad: &[F]);
}

fn tensor_mut<'s, F>(p: &'s mut ParamsMut<'_, F>, t: Tensor) -> &'s mut [F] {
    match t {
        Tensor::C => p.C,
        Tensor::W1 => p.W1,
        Tensor::b1 => p.b1,
        Tensor::W2 => p.W2,
        Tensor::b2 => p.b2,
        Tensor::bngain => p.bngain,
        Tensor::bnbias => p.bnbias,
    }
}

/// Stores gradients (overwriting: every gradient value is written exactly once).
pub(crate) struct StoreGrads<'p, 'g, F> {
    pub(crate) params: ParamsRef<'p, F>,
    pub(crate) grads: &'g mut ParamsMut<'g, F>,
}

impl<F: Float> GradSink<F> for StoreGrads<'_, '_, F> {
    fn params(&self) -> ParamsRef<'_, F> {
        self.params
    }
    fn emit(&mut self, tensor: Tensor, offset: usize, grad: &[F]) {
        tensor_mut(self.grads, tensor)[offset..][..grad.len()].copy_from_slice(grad);
    }
}

/// Applies `p = p - lr * grad` at once.
pub(crate) struct ApplySgd<'p, 'q, F> {
    pub(crate) params: &'q mut ParamsMut<'p, F>,
    pub(crate) lr: F,
}

impl<F: Float> GradSink<F> for ApplySgd<'_, '_, F> {
    fn params(&self) -> ParamsRef<'_, F> {
        self.params.as_ref()
    }
    fn emit(&mut self, tensor: Tensor, offset: usize, grad: &[F]) {
        sgd_row(
            &mut tensor_mut(self.params, tensor)[offset..][..grad.len()],
            grad,
            self.lr,
        );
    }
}

/// `p = p - lr * grad`, the one SGD expression both training paths use.
#[inline(always)]
pub(crate) fn sgd_row<F: Float>(p: &mut [F], grad: &[F], lr: F) {
    for (p, &g) in p.iter_mut().zip(grad) {
        #[allow(clippy::assign_op_pattern)] // spelled out: this exact expression is the contract
        {
            *p = *p - lr * g;
        }
    }
}

/// The fused backward. Consumes the activations of [`forward`] (overwrites h and probs).
fn backward_into<F: Float, S: GradSink<F>>(
    sink: &mut S,
    acts: &mut ActsMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) {
    let dims = acts.dims;
    let (v, hidden, e, t_len) = (dims.vocab, dims.hidden, dims.embedding, dims.context);

    // forward: loss = cross_entropy(logits, Yb)  =>  dlogits = (probs - one_hot) / n
    cross_entropy_backward(acts.probs, yb, acts.n);
    let dlogits = &*acts.probs;

    // forward: logits = h @ W2 + b2
    // db2 = dlogits.sum(0)
    bias_backward(acts.acc_v, dlogits);
    sink.emit(Tensor::b2, 0, acts.acc_v);
    // One hidden unit j at a time, so dh needs no (n, H) buffer of its own:
    // dh[:, j] = dlogits @ W2[j, :] (old W2), dW2[j, :] = h[:, j].T @ dlogits, then
    // forward h = tanh(hpreact): dhpreact[:, j] = (1 - h[:, j]**2) * dh[:, j], stored over h[:, j].
    for j in 0..hidden {
        {
            let W2_row = &sink.params().W2[j * v..][..v];
            for (dh, dl_row) in acts.dh_col.iter_mut().zip(dlogits.chunks_exact(v)) {
                *dh = dot(dl_row, W2_row);
            }
        }
        acts.acc_v.fill(F::ZERO);
        for (h_row, dl_row) in acts.h.chunks_exact(hidden).zip(dlogits.chunks_exact(v)) {
            axpy(acts.acc_v, h_row[j], dl_row);
        }
        sink.emit(Tensor::W2, j * v, acts.acc_v);
        for (h_row, &dh) in acts.h.chunks_exact_mut(hidden).zip(acts.dh_col.iter()) {
            h_row[j] = tanh_backward(h_row[j], dh);
        }
    }

    // forward: hpreact = bngain * bnraw + bnbias, and the batchnorm above it (fused)
    {
        let p = sink.params();
        batchnorm_backward(
            acts.h,
            acts.dbngain,
            acts.dbnbias,
            acts.bnraw,
            acts.bnvar_inv,
            p.bngain,
        );
    }
    sink.emit(Tensor::bngain, 0, acts.dbngain);
    sink.emit(Tensor::bnbias, 0, acts.dbnbias);
    let dhprebn = &*acts.h;

    // forward: hprebn = embcat @ W1 + b1
    // dembcat = dhprebn @ W1.T   (old W1)
    {
        let W1 = sink.params().W1;
        for (de_row, dh_row) in acts
            .dembcat
            .chunks_exact_mut(t_len * e)
            .zip(dhprebn.chunks_exact(hidden))
        {
            for (i, de) in de_row.iter_mut().enumerate() {
                *de = dot(dh_row, &W1[i * hidden..][..hidden]);
            }
        }
    }
    // db1 = dhprebn.sum(0)
    bias_backward(acts.acc_h, dhprebn);
    sink.emit(Tensor::b1, 0, acts.acc_h);
    // dW1[i, :] = embcat[:, i].T @ dhprebn, with embcat[k, i] = C[Xb[k, i / E], i % E] (old C)
    for i in 0..t_len * e {
        acts.acc_h.fill(F::ZERO);
        {
            let C = sink.params().C;
            for (x, dh_row) in xb.chunks_exact(t_len).zip(dhprebn.chunks_exact(hidden)) {
                let embcat_ki = C[x[i / e] as usize * e + i % e];
                axpy(acts.acc_h, embcat_ki, dh_row);
            }
        }
        sink.emit(Tensor::W1, i * hidden, acts.acc_h);
    }

    // forward: emb = C[Xb]: dC[ix] = sum of demb[k, t] over the (k, t) with Xb[k, t] == ix
    for ix in 0..v {
        acts.acc_e.fill(F::ZERO);
        for (x, de_row) in xb
            .chunks_exact(t_len)
            .zip(acts.dembcat.chunks_exact(t_len * e))
        {
            for (t, &tok) in x.iter().enumerate() {
                if tok as usize == ix {
                    for (acc, &d) in acts.acc_e.iter_mut().zip(&de_row[t * e..][..e]) {
                        *acc += d;
                    }
                }
            }
        }
        // Rows no token used get a zero gradient too: cheap, and it keeps both sinks identical.
        sink.emit(Tensor::C, ix * e, acts.acc_e);
    }
}

/// The fused backward (Exercises 2 and 3): writes every parameter gradient into `grads`
/// (overwriting; no zeroing needed). `acts` must hold [`forward`] of the same `params`, `xb`, `yb`;
/// backward consumes it (afterwards `h()` holds dhprebn, `probs()` dlogits, `dembcat()` dembcat).
pub fn backward<F: Float>(
    params: ParamsRef<'_, F>,
    grads: &mut ParamsMut<'_, F>,
    acts: &mut ActsMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
) -> Result<(), Error> {
    let dims = params.dims();
    if grads.dims() != dims {
        return Err(Error::DimsMismatch);
    }
    check_batch(&dims, acts, xb, yb)?;
    let mut grads = grads.reborrow();
    let mut sink = StoreGrads {
        params,
        grads: &mut grads,
    };
    backward_into(&mut sink, acts, xb, yb);
    Ok(())
}

/// SGD: `p = p - lr * grad` for every parameter.
pub fn sgd_update<F: Float>(
    params: &mut ParamsMut<'_, F>,
    grads: ParamsRef<'_, F>,
    lr: F,
) -> Result<(), Error> {
    if params.dims() != grads.dims() {
        return Err(Error::DimsMismatch);
    }
    for (p, g) in params.tensors_mut().into_iter().zip(grads.tensors()) {
        sgd_row(p, g, lr);
    }
    Ok(())
}

/// One training step the notebook's way: [`forward`], [`backward`], [`sgd_update`].
/// Returns the loss before the update.
pub fn train_step<F: Float>(
    params: &mut ParamsMut<'_, F>,
    grads: &mut ParamsMut<'_, F>,
    acts: &mut ActsMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
    lr: F,
) -> Result<F, Error> {
    let loss = forward(params.as_ref(), acts, xb, yb)?;
    backward(params.as_ref(), grads, acts, xb, yb)?;
    sgd_update(params, grads.as_ref(), lr)?;
    Ok(loss)
}

/// One training step with no gradient buffer: each parameter row is updated as soon as its
/// gradient is final. Gives bit-identical parameters to [`train_step`]. Returns the loss before
/// the update.
pub fn train_step_in_place<F: Float>(
    params: &mut ParamsMut<'_, F>,
    acts: &mut ActsMut<'_, F>,
    xb: &[u8],
    yb: &[u8],
    lr: F,
) -> Result<F, Error> {
    let loss = forward(params.as_ref(), acts, xb, yb)?;
    let mut sink = ApplySgd { params, lr };
    backward_into(&mut sink, acts, xb, yb);
    Ok(loss)
}
