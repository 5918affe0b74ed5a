//! The public kernels of [`Kernels`]: each checks its shapes once, before the path is chosen,
//! so every path gives the same `Ok`/`Err` for the same arguments, and then calls the unchecked
//! dispatch. Sizes not passed explicitly are inferred from the slice lengths, and every
//! inference is checked (a width of 0, a length that is not a whole number of rows, a product
//! of sizes that overflows `usize`, a token id out of range), so no path panics, divides by zero
//! or truncates. `core/tests/contracts.rs` drives every kernel with arbitrary lengths on every
//! path to hold this.

#![forbid(unsafe_code)]

use super::Kernels;
use crate::error::Error;

/// `Err(LengthMismatch)` unless `got == expected`.
fn len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

/// `a * b`, or an error naming `what` when the product overflows `usize` (no slice is that
/// long; a wrapped product could match a short one).
fn product(what: &'static str, a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(Error::InvalidArgument(what))
}

/// `len / width` when `len` is whole rows of a `width > 0`, else an error naming `what`.
fn rows(what: &'static str, len: usize, width: usize) -> Result<usize, Error> {
    if width == 0 {
        return Err(Error::InvalidArgument(what));
    }
    if !len.is_multiple_of(width) {
        return Err(Error::LengthMismatch {
            what,
            expected: (len / width + 1) * width,
            got: len,
        });
    }
    Ok(len / width)
}

impl Kernels {
    /// `out = exp(x)` elementwise; the same bits as [`crate::math::exp_f32`] on every path.
    /// Errors: `x.len() != out.len()`.
    pub fn exp(&self, out: &mut [f32], x: &[f32]) -> Result<(), Error> {
        len("x", out.len(), x.len())?;
        self.exp_raw(out, x);
        Ok(())
    }

    /// `out = tanh(x)` elementwise; the same bits as [`crate::math::tanh_f32`] on every path.
    /// Errors: `x.len() != out.len()`.
    pub fn tanh(&self, out: &mut [f32], x: &[f32]) -> Result<(), Error> {
        len("x", out.len(), x.len())?;
        self.tanh_raw(out, x);
        Ok(())
    }

    /// `embcat = C[Xb].view(n, T*E)`: the embedding gather. `embcat` (n*T, E), `xb` (n*T) ids
    /// `< V`, `C` (V, E), `embedding` = E >= 1. Exact (a copy).
    pub fn embed_gather(
        &self,
        embcat: &mut [f32],
        xb: &[u8],
        C: &[f32],
        embedding: usize,
    ) -> Result<(), Error> {
        let vocab = rows("C (V, E) with E >= 1", C.len(), embedding)?;
        let want = product("embcat (n*T, E): n*T * E overflows", xb.len(), embedding)?;
        len("embcat", want, embcat.len())?;
        crate::check_tokens(xb, vocab)?;
        self.embed_gather_raw(embcat, xb, C, embedding);
        Ok(())
    }

    /// `out = a @ b + bias` (`bias` empty: no bias). `out` (n, m), `a` (n, k), `b` (k, m),
    /// `bias` (m or 0), k >= 1, m >= 1. Vector paths sum over k in the same order with FMA: each element
    /// differs from scalar by at most k rounding errors of its partial sums.
    pub fn linear_forward(
        &self,
        out: &mut [f32],
        a: &[f32],
        b: &[f32],
        bias: &[f32],
        m: usize,
    ) -> Result<(), Error> {
        let k = rows("b (k, m) with m >= 1", b.len(), m)?;
        if k == 0 {
            return Err(Error::InvalidArgument("b (k, m) with k >= 1"));
        }
        let n = rows("out (n, m)", out.len(), m)?;
        len(
            "a (n, k)",
            product("a (n, k): n * k overflows", n, k)?,
            a.len(),
        )?;
        if !bias.is_empty() {
            len("bias", m, bias.len())?;
        }
        self.linear_forward_raw(out, a, b, bias, m);
        Ok(())
    }

    /// `out = a.T @ b` (the weight gradient of a linear layer). `out` (k, m), `a` (n, k),
    /// `b` (n, m), m >= 1. Sums over n in order, FMA on the vector paths.
    pub fn matmul_tn(
        &self,
        out: &mut [f32],
        a: &[f32],
        b: &[f32],
        k: usize,
        m: usize,
    ) -> Result<(), Error> {
        let n = rows("b (n, m) with m >= 1", b.len(), m)?;
        len(
            "out (k, m)",
            product("out (k, m): k * m overflows", k, m)?,
            out.len(),
        )?;
        len(
            "a (n, k)",
            product("a (n, k): n * k overflows", n, k)?,
            a.len(),
        )?;
        self.matmul_tn_raw(out, a, b, k, m);
        Ok(())
    }

    /// `out = a @ b.T` (the input gradient of a linear layer). `out` (n, p), `a` (n, m),
    /// `b` (p, m), p >= 1, m >= 1. Vector paths sum in lane-strided order, then across lanes.
    pub fn matmul_nt(&self, out: &mut [f32], a: &[f32], b: &[f32], m: usize) -> Result<(), Error> {
        let p = rows("b (p, m) with m >= 1", b.len(), m)?;
        if p == 0 {
            return Err(Error::InvalidArgument("b (p, m) with p >= 1"));
        }
        let n = rows("a (n, m)", a.len(), m)?;
        len(
            "out (n, p)",
            product("out (n, p): n * p overflows", n, p)?,
            out.len(),
        )?;
        self.matmul_nt_raw(out, a, b, m);
        Ok(())
    }

    /// `h_to_dhpreact = (1 - h**2) * (dout @ wt)` in place over h (n, m): the input gradient of
    /// `logits = h @ W2 + b2` fused with the tanh backward. `dout` (n, k), `wt` = W2.T (k, m),
    /// 1 <= k <= 256 (k is the vocabulary), m >= 1. Sums over k in order, FMA on the vector paths.
    pub fn linear_tanh_backward(
        &self,
        h_to_dhpreact: &mut [f32],
        dout: &[f32],
        wt: &[f32],
        m: usize,
    ) -> Result<(), Error> {
        let k = rows("wt (k, m) with m >= 1", wt.len(), m)?;
        if k == 0 || k > 256 {
            return Err(Error::InvalidArgument("wt (k, m) with 1 <= k <= 256"));
        }
        let n = rows("h (n, m)", h_to_dhpreact.len(), m)?;
        len(
            "dout (n, k)",
            product("dout (n, k): n * k overflows", n, k)?,
            dout.len(),
        )?;
        self.linear_tanh_backward_raw(h_to_dhpreact, dout, wt, m);
        Ok(())
    }

    /// `hprebn[i] = b1 + table[0][x[i,0]] + ... + table[T-1][x[i,T-1]]`, added in that order:
    /// the first linear layer at inference through per-position tables
    /// `table[t] = C @ W1[t*E..(t+1)*E]` (T, V, H). `hprebn` (rows, H), `x` (rows, T) ids
    /// `< vocab`, `b1` (H), H >= 1, T >= 1 when rows >= 1. The same bits as scalar.
    pub fn embed_table_forward(
        &self,
        hprebn: &mut [f32],
        x: &[u8],
        table: &[f32],
        b1: &[f32],
        vocab: usize,
    ) -> Result<(), Error> {
        let n = rows(
            "hprebn (rows, H) with H = b1.len() >= 1",
            hprebn.len(),
            b1.len(),
        )?;
        if n == 0 {
            return len("x (rows, T)", 0, x.len());
        }
        let t = rows("x (rows, T) with T >= 1", x.len(), n)?;
        if t == 0 {
            return Err(Error::InvalidArgument("x (rows, T) with T >= 1"));
        }
        let want = product("table (T, V, H): T * V overflows", t, vocab)?;
        let want = product("table (T, V, H): T * V * H overflows", want, b1.len())?;
        len("table (T, V, H)", want, table.len())?;
        crate::check_tokens(x, vocab)?;
        self.embed_table_forward_raw(hprebn, x, table, b1, vocab);
        Ok(())
    }

    /// `out = a.T`. `out` (m, n), `a` (n, m), m >= 1. Exact.
    pub fn transpose(&self, out: &mut [f32], a: &[f32], m: usize) -> Result<(), Error> {
        rows("a (n, m) with m >= 1", a.len(), m)?;
        len("out (m, n)", a.len(), out.len())?;
        if a.is_empty() {
            // n = 0: nothing to move (the vector paths cut `out` into rows of n)
            return Ok(());
        }
        self.transpose_raw(out, a, m);
        Ok(())
    }

    /// Batchnorm forward, the part after the mean: `bndiff = hprebn - bnmeani` in place over
    /// `hprebn_to_bndiff` (n, H), and `sum2 = (bndiff**2).sum(0)` (H, written; sum over the
    /// rows). H = `bnmeani.len()` >= 1. The same bits as scalar.
    pub fn batchnorm_center(
        &self,
        hprebn_to_bndiff: &mut [f32],
        bnmeani: &[f32],
        sum2: &mut [f32],
    ) -> Result<(), Error> {
        rows(
            "hprebn (n, H) with H = bnmeani.len() >= 1",
            hprebn_to_bndiff.len(),
            bnmeani.len(),
        )?;
        len("sum2", bnmeani.len(), sum2.len())?;
        self.batchnorm_center_raw(hprebn_to_bndiff, bnmeani, sum2);
        Ok(())
    }

    /// `bnvar_inv = (1/(n-1) * sum2 + 1e-5)**-0.5` in place over `sum2_to_bnvar_inv` (H), with
    /// `sum2 = (bndiff**2).sum(0)` over the `n >= 2` rows of the whole batch. Correctly rounded
    /// sqrt and division: the same bits as scalar.
    pub fn batchnorm_var_inv(&self, sum2_to_bnvar_inv: &mut [f32], n: usize) -> Result<(), Error> {
        if n < 2 {
            return Err(Error::BatchTooSmall { n });
        }
        self.batchnorm_var_inv_raw(sum2_to_bnvar_inv, n);
        Ok(())
    }

    /// `bnraw = bndiff * bnvar_inv` in place over `bndiff_to_bnraw` (n, H), then
    /// `h = tanh(bngain * bnraw + bnbias)` (n, H). H = `bngain.len()` >= 1. The same bits as
    /// scalar.
    pub fn batchnorm_scale_shift_tanh(
        &self,
        h: &mut [f32],
        bndiff_to_bnraw: &mut [f32],
        bnvar_inv: &[f32],
        bngain: &[f32],
        bnbias: &[f32],
    ) -> Result<(), Error> {
        let hd = bngain.len();
        rows(
            "bnraw (n, H) with H = bngain.len() >= 1",
            bndiff_to_bnraw.len(),
            hd,
        )?;
        len("h (n, H)", bndiff_to_bnraw.len(), h.len())?;
        len("bnvar_inv", hd, bnvar_inv.len())?;
        len("bnbias", hd, bnbias.len())?;
        self.batchnorm_scale_shift_tanh_raw(h, bndiff_to_bnraw, bnvar_inv, bngain, bnbias);
        Ok(())
    }

    /// The sums of the batchnorm backward: `dbngain = (bnraw * dhpreact).sum(0)`,
    /// `dbnbias = dhpreact.sum(0)` (H each, written; sums over the rows). `dhpreact`, `bnraw`
    /// (n, H), H >= 1. The same bits as scalar.
    pub fn batchnorm_backward_sums(
        &self,
        dbngain: &mut [f32],
        dbnbias: &mut [f32],
        dhpreact: &[f32],
        bnraw: &[f32],
    ) -> Result<(), Error> {
        let hd = dbngain.len();
        rows(
            "dhpreact (n, H) with H = dbngain.len() >= 1",
            dhpreact.len(),
            hd,
        )?;
        len("dbnbias", hd, dbnbias.len())?;
        len("bnraw (n, H)", dhpreact.len(), bnraw.len())?;
        self.batchnorm_backward_sums_raw(dbngain, dbnbias, dhpreact, bnraw);
        Ok(())
    }

    /// The fused batchnorm backward of Exercise 3, from the whole batch's sums, in place over
    /// `dhpreact_to_dhprebn` (rows, H):
    /// `dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)`, with `n`
    /// (>= 2) the rows of the whole batch. `bnraw` (rows, H); the others (H), H >= 1. The same
    /// bits as scalar.
    pub fn batchnorm_backward_apply(
        &self,
        dhpreact_to_dhprebn: &mut [f32],
        bnraw: &[f32],
        bnvar_inv: &[f32],
        bngain: &[f32],
        dbngain: &[f32],
        dbnbias: &[f32],
        n: usize,
    ) -> Result<(), Error> {
        if n < 2 {
            return Err(Error::BatchTooSmall { n });
        }
        let hd = bngain.len();
        rows(
            "dhpreact (rows, H) with H = bngain.len() >= 1",
            dhpreact_to_dhprebn.len(),
            hd,
        )?;
        len("bnraw (rows, H)", dhpreact_to_dhprebn.len(), bnraw.len())?;
        len("bnvar_inv", hd, bnvar_inv.len())?;
        len("dbngain", hd, dbngain.len())?;
        len("dbnbias", hd, dbnbias.len())?;
        self.batchnorm_backward_apply_raw(
            dhpreact_to_dhprebn,
            bnraw,
            bnvar_inv,
            bngain,
            dbngain,
            dbnbias,
            n,
        );
        Ok(())
    }

    /// `dbias = dout.sum(0)`, (m) from (n, m), m >= 1 (or both empty). The same bits as scalar.
    pub fn bias_backward(&self, dbias: &mut [f32], dout: &[f32]) -> Result<(), Error> {
        if dbias.is_empty() {
            return len("dout (n, m) with m = 0", 0, dout.len());
        }
        rows("dout (n, m)", dout.len(), dbias.len())?;
        self.bias_backward_raw(dbias, dout);
        Ok(())
    }

    /// Cross-entropy forward over `logits_to_probs` (n, V) (overwritten by probs); returns the
    /// loss summed over the n >= 1 rows (divide by the batch's rows for the notebook's mean).
    /// `yb` (n) ids < V. Vector paths sum `counts` across lanes in tree order (a few ulp in
    /// probs and loss).
    pub fn cross_entropy_sum(&self, logits_to_probs: &mut [f32], yb: &[u8]) -> Result<f32, Error> {
        let v = rows(
            "logits (n, V) with n = yb.len() >= 1",
            logits_to_probs.len(),
            yb.len(),
        )?;
        if v == 0 {
            return Err(Error::InvalidArgument("logits (n, V) with V >= 1"));
        }
        crate::check_tokens(yb, v)?;
        Ok(self.cross_entropy_sum_raw(logits_to_probs, yb))
    }

    /// `dlogits = (probs - one_hot(Yb)) / n` in place over `probs_to_dlogits` (rows, V), with
    /// `n` >= 1 the rows of the whole batch (`rows` unless the batch is sharded). The same bits
    /// as scalar.
    pub fn cross_entropy_backward(
        &self,
        probs_to_dlogits: &mut [f32],
        yb: &[u8],
        n: usize,
    ) -> Result<(), Error> {
        if n == 0 {
            return Err(Error::BatchTooSmall { n });
        }
        let v = rows(
            "probs (rows, V) with rows = yb.len() >= 1",
            probs_to_dlogits.len(),
            yb.len(),
        )?;
        crate::check_tokens(yb, v)?;
        self.cross_entropy_backward_raw(probs_to_dlogits, yb, n);
        Ok(())
    }

    /// `dC[Xb[k, t]] += demb[k, t]`: the scatter-add of the embedding gradient. `dC` (V, E) is
    /// overwritten (rows no token used get 0); `dembcat` (n*T, E); `xb` (n*T) ids < V; E >= 1.
    /// The same bits as scalar.
    pub fn embed_scatter_add(
        &self,
        dC: &mut [f32],
        dembcat: &[f32],
        xb: &[u8],
    ) -> Result<(), Error> {
        if xb.is_empty() {
            len("dembcat", 0, dembcat.len())?;
            dC.fill(0.0);
            return Ok(());
        }
        let e = rows(
            "dembcat (n*T, E) with n*T = xb.len()",
            dembcat.len(),
            xb.len(),
        )?;
        let v = rows("dC (V, E) with E >= 1", dC.len(), e)?;
        crate::check_tokens(xb, v)?;
        self.embed_scatter_add_raw(dC, dembcat, xb);
        Ok(())
    }

    /// SGD: `p = p - lr * grad` elementwise. The same bits as scalar. Errors: lengths differ.
    pub fn sgd(&self, p: &mut [f32], grad: &[f32], lr: f32) -> Result<(), Error> {
        len("grad", p.len(), grad.len())?;
        self.sgd_raw(p, grad, lr);
        Ok(())
    }

    /// One AdamW update (PyTorch's `torch.optim.AdamW`, decoupled weight decay), elementwise
    /// over `p`, its moments `m`, `v` and `grad` (all the same length), with the coefficients
    /// of update `t` ([`crate::optim::AdamW::step`]):
    /// `p = p * (1 - lr wd)`; `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g g`;
    /// `p = p - step_size m / (sqrt(v) / sqrt(1 - b2^t) + eps)`, `step_size = lr / (1 - b1^t)`.
    /// The same bits as scalar. Errors: lengths differ.
    pub fn adamw(
        &self,
        p: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        grad: &[f32],
        c: crate::optim::AdamWStep,
    ) -> Result<(), Error> {
        len("m", p.len(), m.len())?;
        len("v", p.len(), v.len())?;
        len("grad", p.len(), grad.len())?;
        self.adamw_raw(p, m, v, grad, c);
        Ok(())
    }

    /// `sum x^2` over all of `x` (0 for an empty slice). Scalar sums in order; a vector path in
    /// `4 * lanes` running sums with FMA, so the paths differ by rounding (each within the
    /// standard `n u sum x^2`, u = 2^-24); each path gives the same bits for the same input.
    pub fn sum_squares(&self, x: &[f32]) -> f32 {
        self.sum_squares_raw(x)
    }

    /// `[mean, m2]` of `x`: its mean and the sum of its squared deviations from that mean (two
    /// passes; `[0, 0]` for an empty slice). Scalar sums in order; a vector path in `4 * lanes`
    /// running sums (the squares with FMA), so the paths differ by rounding: each sum within
    /// the standard `n u sum |term|`, u = 2^-24.
    pub fn moments(&self, x: &[f32]) -> [f32; 2] {
        self.moments_raw(x)
    }

    /// The activations of a batch seen from its batchnorm output, as the part-3 statistics
    /// need them: with `hpreact = bngain * bnraw + bnbias` (a multiply then an add, as the step
    /// computes it) and `h = tanh(hpreact)` (the path's tanh, so the step's own `h`), returns
    /// `[sum (hpreact - c0), sum (h - c1), sum (hpreact - c0)^2, sum (h - c1)^2]` over all of
    /// `bnraw` (rows, H) for `center = [c0, c1]`, and writes per unit j the count of rows where
    /// `|h| > `[`crate::stats::SATURATED`] into `saturated[j]`. `bngain`, `bnbias`, `saturated`
    /// (H), H >= 1. The sums differ between paths by rounding (vector paths sum per lane, the
    /// squares with FMA), the counts by the tanh's at most 2 ulp.
    pub fn bn_tanh_stats(
        &self,
        saturated: &mut [f32],
        bnraw: &[f32],
        bngain: &[f32],
        bnbias: &[f32],
        center: [f32; 2],
    ) -> Result<[f32; 4], Error> {
        let hidden = bngain.len();
        if hidden == 0 {
            return Err(Error::InvalidArgument("bngain (H) with H >= 1"));
        }
        len("bnbias (H)", hidden, bnbias.len())?;
        len("saturated (H)", hidden, saturated.len())?;
        rows("bnraw (rows, H)", bnraw.len(), hidden)?;
        Ok(self.bn_tanh_stats_raw(saturated, bnraw, bngain, bnbias, center))
    }

    /// `x = x * a` elementwise. The same bits as scalar.
    pub fn scale(&self, x: &mut [f32], a: f32) {
        self.scale_raw(x, a);
    }

    /// Whether every value of `x` is finite (no NaN, no infinity). Exact on every path.
    pub fn all_finite(&self, x: &[f32]) -> bool {
        self.all_finite_raw(x)
    }

    /// The eval forward without batch statistics: `h = tanh(bngain * (hprebn - bnmean) *
    /// bnvar_inv + bnbias)` in place over `hprebn_to_h` (rows, H); the others (H), H >= 1.
    pub fn batchnorm_tanh_inference(
        &self,
        hprebn_to_h: &mut [f32],
        bnmean: &[f32],
        bnvar_inv: &[f32],
        bngain: &[f32],
        bnbias: &[f32],
    ) -> Result<(), Error> {
        let hd = bngain.len();
        rows(
            "hprebn (rows, H) with H = bngain.len() >= 1",
            hprebn_to_h.len(),
            hd,
        )?;
        len("bnmean", hd, bnmean.len())?;
        len("bnvar_inv", hd, bnvar_inv.len())?;
        len("bnbias", hd, bnbias.len())?;
        self.batchnorm_tanh_inference_raw(hprebn_to_h, bnmean, bnvar_inv, bngain, bnbias);
        Ok(())
    }

    /// The machine's floor: `iters` rounds of `x = x * 0.5 + 1` on every value of `acc`, in
    /// independent chains (blocks of 12 vectors held in registers; any length, a remainder of
    /// less than a block runs one vector at a time), for timing the path's single-core FMA
    /// throughput. One call is `2 * acc.len() * iters` FLOPs (2 per lane per FMA).
    ///
    /// The vector paths use one FMA per vector and round. The scalar path runs the same chains
    /// one value (one lane) each, with `mul_add` where the build has hardware FMA (aarch64, or
    /// x86_64 built with `+fma`, and `std`), else a multiply then an add (the default x86_64
    /// build), still counted as 2 FLOPs: its figure is the one-lane multiply-add throughput.
    /// The compiler may pack the scalar path's own loops (the products' `axpy`) into SSE2
    /// vectors, so they can exceed 100% of it. The product by 0.5 is exact, so every path
    /// gives the same bits: `x_n = 2 + (x_0 - 2) / 2^n`, rounded once per round.
    pub fn fma_peak(&self, acc: &mut [f32], iters: usize) {
        self.fma_peak_raw(acc, iters);
    }
}
