//! Exercise 1: the forward pass broken into the notebook's atomic operations, every intermediate
//! kept, and the backward pass one op at a time in the notebook's order and names.
//!
//! This is the reference the fused kernels are checked against; it favours being read next to the
//! notebook over speed or memory. Shapes are const generics: `N` batch, `V` vocab, `T` context,
//! `E` embedding, `TE` = T*E, `H` hidden. Every `dX` gradient is accumulated with `+=` into a
//! zeroed buffer (llm.c's convention), so a tensor used twice (`dcounts`, `dbndiff`) needs no
//! special case.

// Index loops mirror the notebook's tensor expressions; iterators would hide the axes.
#![allow(clippy::needless_range_loop)]

use crate::error::Error;
use crate::float::Float;
use crate::model::Params;

use crate::BN_EPS;

/// The forward pass's intermediates in the order they are computed.
/// [`AtomicTape::forward_from`] recomputes everything from a stage on (the finite-difference
/// tests perturb one intermediate and recompute what follows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Emb,
    Embcat,
    Hprebn,
    Bnmeani,
    Bndiff,
    Bndiff2,
    Bnvar,
    BnvarInv,
    Bnraw,
    Hpreact,
    H,
    Logits,
    LogitMaxes,
    NormLogits,
    Counts,
    CountsSum,
    CountsSumInv,
    Probs,
    Logprobs,
    Loss,
}

/// One tensor per named intermediate of the notebook's forward pass (and, in [`AtomicGrads`], its
/// gradient). `(1, H)` row vectors of the notebook are stored as `[F; H]`, `(N, 1)` columns as `[F; N]`.
#[derive(Clone, Debug)]
pub struct AtomicTape<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    /// (N, T, E) `emb = C[Xb]`
    pub emb: [[[F; E]; T]; N],
    /// (N, T*E) `embcat = emb.view(N, -1)`
    pub embcat: [[F; TE]; N],
    /// (N, H) `hprebn = embcat @ W1 + b1`
    pub hprebn: [[F; H]; N],
    /// (1, H) `bnmeani = 1/n * hprebn.sum(0, keepdim=True)`
    pub bnmeani: [F; H],
    /// (N, H) `bndiff = hprebn - bnmeani`
    pub bndiff: [[F; H]; N],
    /// (N, H) `bndiff2 = bndiff**2`
    pub bndiff2: [[F; H]; N],
    /// (1, H) `bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)`
    pub bnvar: [F; H],
    /// (1, H) `bnvar_inv = (bnvar + 1e-5)**-0.5`
    pub bnvar_inv: [F; H],
    /// (N, H) `bnraw = bndiff * bnvar_inv`
    pub bnraw: [[F; H]; N],
    /// (N, H) `hpreact = bngain * bnraw + bnbias`
    pub hpreact: [[F; H]; N],
    /// (N, H) `h = tanh(hpreact)`
    pub h: [[F; H]; N],
    /// (N, V) `logits = h @ W2 + b2`
    pub logits: [[F; V]; N],
    /// (N, 1) `logit_maxes = logits.max(1, keepdim=True).values`
    pub logit_maxes: [F; N],
    /// (N, V) `norm_logits = logits - logit_maxes`
    pub norm_logits: [[F; V]; N],
    /// (N, V) `counts = norm_logits.exp()`
    pub counts: [[F; V]; N],
    /// (N, 1) `counts_sum = counts.sum(1, keepdims=True)`
    pub counts_sum: [F; N],
    /// (N, 1) `counts_sum_inv = counts_sum**-1`
    pub counts_sum_inv: [F; N],
    /// (N, V) `probs = counts * counts_sum_inv`
    pub probs: [[F; V]; N],
    /// (N, V) `logprobs = probs.log()`
    pub logprobs: [[F; V]; N],
    /// () `loss = -logprobs[range(n), Yb].mean()`
    pub loss: F,
    /// Index of the max logit in each row (first on ties, as `logits.max(1).indices`).
    pub logit_argmax: [usize; N],
}

/// The gradient of the loss with respect to every intermediate of [`AtomicTape`] and every
/// parameter; `dloss` is 1.
#[derive(Clone, Debug)]
pub struct AtomicGrads<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    pub dlogprobs: [[F; V]; N],
    pub dprobs: [[F; V]; N],
    pub dcounts_sum_inv: [F; N],
    pub dcounts: [[F; V]; N],
    pub dcounts_sum: [F; N],
    pub dnorm_logits: [[F; V]; N],
    pub dlogit_maxes: [F; N],
    pub dlogits: [[F; V]; N],
    pub dh: [[F; H]; N],
    pub dhpreact: [[F; H]; N],
    pub dbnraw: [[F; H]; N],
    pub dbndiff: [[F; H]; N],
    pub dbnvar_inv: [F; H],
    pub dbnvar: [F; H],
    pub dbndiff2: [[F; H]; N],
    pub dhprebn: [[F; H]; N],
    pub dbnmeani: [F; H],
    pub dembcat: [[F; TE]; N],
    pub demb: [[[F; E]; T]; N],
    /// dC, dW1, db1, dW2, db2, dbngain, dbnbias.
    pub dparams: Params<F, V, T, E, TE, H>,
}

impl<
        F: Float,
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > AtomicTape<F, N, V, T, E, TE, H>
{
    /// All zeros; [`AtomicTape::forward`] overwrites every field.
    pub const ZERO: Self = AtomicTape {
        emb: [[[F::ZERO; E]; T]; N],
        embcat: [[F::ZERO; TE]; N],
        hprebn: [[F::ZERO; H]; N],
        bnmeani: [F::ZERO; H],
        bndiff: [[F::ZERO; H]; N],
        bndiff2: [[F::ZERO; H]; N],
        bnvar: [F::ZERO; H],
        bnvar_inv: [F::ZERO; H],
        bnraw: [[F::ZERO; H]; N],
        hpreact: [[F::ZERO; H]; N],
        h: [[F::ZERO; H]; N],
        logits: [[F::ZERO; V]; N],
        logit_maxes: [F::ZERO; N],
        norm_logits: [[F::ZERO; V]; N],
        counts: [[F::ZERO; V]; N],
        counts_sum: [F::ZERO; N],
        counts_sum_inv: [F::ZERO; N],
        probs: [[F::ZERO; V]; N],
        logprobs: [[F::ZERO; V]; N],
        loss: F::ZERO,
        logit_argmax: [0; N],
    };

    /// The notebook's forward pass, one op per statement. `Xb` (N, T) token ids < V, `Yb` (N).
    /// Returns the loss.
    ///
    /// Errors: [`Error::BatchTooSmall`] if N < 2, [`Error::TokenOutOfRange`] for an id >= V.
    pub fn forward(
        &mut self,
        params: &Params<F, V, T, E, TE, H>,
        Xb: &[[u8; T]; N],
        Yb: &[u8; N],
    ) -> Result<F, Error> {
        self.forward_from(Stage::Emb, params, Xb, Yb)
    }

    /// The forward pass from `from` on: the intermediates before `from` are taken as they are in
    /// `self` (so one can be perturbed), the rest recomputed. Returns the loss.
    pub fn forward_from(
        &mut self,
        from: Stage,
        params: &Params<F, V, T, E, TE, H>,
        Xb: &[[u8; T]; N],
        Yb: &[u8; N],
    ) -> Result<F, Error> {
        check_batch::<N, V, T>(Xb, Yb)?;
        let P = params;
        let run = |stage: Stage| from <= stage;
        let n = F::from_usize(N);
        if run(Stage::Emb) {
            // emb = C[Xb]
            for k in 0..N {
                for t in 0..T {
                    self.emb[k][t] = P.C[Xb[k][t] as usize];
                }
            }
        }
        if run(Stage::Embcat) {
            // embcat = emb.view(emb.shape[0], -1)
            for k in 0..N {
                for t in 0..T {
                    for e in 0..E {
                        self.embcat[k][t * E + e] = self.emb[k][t][e];
                    }
                }
            }
        }
        if run(Stage::Hprebn) {
            // hprebn = embcat @ W1 + b1
            for k in 0..N {
                for j in 0..H {
                    let mut acc = F::ZERO;
                    for i in 0..TE {
                        acc += self.embcat[k][i] * P.W1[i][j];
                    }
                    self.hprebn[k][j] = acc + P.b1[j];
                }
            }
        }
        if run(Stage::Bnmeani) {
            // bnmeani = 1/n * hprebn.sum(0, keepdim=True)   (sum over the batch, per feature)
            for j in 0..H {
                let mut sum = F::ZERO;
                for k in 0..N {
                    sum += self.hprebn[k][j];
                }
                self.bnmeani[j] = F::ONE / n * sum;
            }
        }
        if run(Stage::Bndiff) {
            // bndiff = hprebn - bnmeani
            for k in 0..N {
                for j in 0..H {
                    self.bndiff[k][j] = self.hprebn[k][j] - self.bnmeani[j];
                }
            }
        }
        if run(Stage::Bndiff2) {
            // bndiff2 = bndiff**2
            for k in 0..N {
                for j in 0..H {
                    self.bndiff2[k][j] = self.bndiff[k][j] * self.bndiff[k][j];
                }
            }
        }
        if run(Stage::Bnvar) {
            // bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)   (Bessel: divide by n - 1)
            for j in 0..H {
                let mut sum = F::ZERO;
                for k in 0..N {
                    sum += self.bndiff2[k][j];
                }
                self.bnvar[j] = F::ONE / (n - F::ONE) * sum;
            }
        }
        if run(Stage::BnvarInv) {
            // bnvar_inv = (bnvar + 1e-5)**-0.5
            for j in 0..H {
                self.bnvar_inv[j] = F::ONE / (self.bnvar[j] + F::from_f64(BN_EPS)).sqrt();
            }
        }
        if run(Stage::Bnraw) {
            // bnraw = bndiff * bnvar_inv
            for k in 0..N {
                for j in 0..H {
                    self.bnraw[k][j] = self.bndiff[k][j] * self.bnvar_inv[j];
                }
            }
        }
        if run(Stage::Hpreact) {
            // hpreact = bngain * bnraw + bnbias
            for k in 0..N {
                for j in 0..H {
                    self.hpreact[k][j] = P.bngain[j] * self.bnraw[k][j] + P.bnbias[j];
                }
            }
        }
        if run(Stage::H) {
            // h = torch.tanh(hpreact)
            for k in 0..N {
                for j in 0..H {
                    self.h[k][j] = self.hpreact[k][j].tanh();
                }
            }
        }
        if run(Stage::Logits) {
            // logits = h @ W2 + b2
            for k in 0..N {
                for v in 0..V {
                    let mut acc = F::ZERO;
                    for j in 0..H {
                        acc += self.h[k][j] * P.W2[j][v];
                    }
                    self.logits[k][v] = acc + P.b2[v];
                }
            }
        }
        if run(Stage::LogitMaxes) {
            // logit_maxes = logits.max(1, keepdim=True).values   (max over the classes, per example)
            for k in 0..N {
                let mut best = 0;
                for v in 1..V {
                    if self.logits[k][v] > self.logits[k][best] {
                        best = v;
                    }
                }
                self.logit_argmax[k] = best;
                self.logit_maxes[k] = self.logits[k][best];
            }
        }
        if run(Stage::NormLogits) {
            // norm_logits = logits - logit_maxes
            for k in 0..N {
                for v in 0..V {
                    self.norm_logits[k][v] = self.logits[k][v] - self.logit_maxes[k];
                }
            }
        }
        if run(Stage::Counts) {
            // counts = norm_logits.exp()
            for k in 0..N {
                for v in 0..V {
                    self.counts[k][v] = self.norm_logits[k][v].exp();
                }
            }
        }
        if run(Stage::CountsSum) {
            // counts_sum = counts.sum(1, keepdims=True)   (sum over the classes, per example)
            for k in 0..N {
                let mut sum = F::ZERO;
                for v in 0..V {
                    sum += self.counts[k][v];
                }
                self.counts_sum[k] = sum;
            }
        }
        if run(Stage::CountsSumInv) {
            // counts_sum_inv = counts_sum**-1
            for k in 0..N {
                self.counts_sum_inv[k] = F::ONE / self.counts_sum[k];
            }
        }
        if run(Stage::Probs) {
            // probs = counts * counts_sum_inv
            for k in 0..N {
                for v in 0..V {
                    self.probs[k][v] = self.counts[k][v] * self.counts_sum_inv[k];
                }
            }
        }
        if run(Stage::Logprobs) {
            // logprobs = probs.log()
            for k in 0..N {
                for v in 0..V {
                    self.logprobs[k][v] = self.probs[k][v].ln();
                }
            }
        }
        if run(Stage::Loss) {
            // loss = -logprobs[range(n), Yb].mean()
            let mut sum = F::ZERO;
            for k in 0..N {
                sum += self.logprobs[k][Yb[k] as usize];
            }
            self.loss = -(sum / n);
        }
        Ok(self.loss)
    }
}

impl<
        F: Float,
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > AtomicGrads<F, N, V, T, E, TE, H>
{
    /// All zeros: the state [`AtomicGrads::backward`] expects (it accumulates with `+=`).
    pub const ZERO: Self = AtomicGrads {
        dlogprobs: [[F::ZERO; V]; N],
        dprobs: [[F::ZERO; V]; N],
        dcounts_sum_inv: [F::ZERO; N],
        dcounts: [[F::ZERO; V]; N],
        dcounts_sum: [F::ZERO; N],
        dnorm_logits: [[F::ZERO; V]; N],
        dlogit_maxes: [F::ZERO; N],
        dlogits: [[F::ZERO; V]; N],
        dh: [[F::ZERO; H]; N],
        dhpreact: [[F::ZERO; H]; N],
        dbnraw: [[F::ZERO; H]; N],
        dbndiff: [[F::ZERO; H]; N],
        dbnvar_inv: [F::ZERO; H],
        dbnvar: [F::ZERO; H],
        dbndiff2: [[F::ZERO; H]; N],
        dhprebn: [[F::ZERO; H]; N],
        dbnmeani: [F::ZERO; H],
        dembcat: [[F::ZERO; TE]; N],
        demb: [[[F::ZERO; E]; T]; N],
        dparams: Params::ZERO,
    };

    /// Exercise 1: the gradient of every intermediate and parameter, one op at a time, in the
    /// notebook's order. `tape` must hold the forward pass of the same `params`, `Xb`, `Yb`.
    /// Overwrites `self` (it zeroes first, then accumulates).
    pub fn backward(
        &mut self,
        tape: &AtomicTape<F, N, V, T, E, TE, H>,
        params: &Params<F, V, T, E, TE, H>,
        Xb: &[[u8; T]; N],
        Yb: &[u8; N],
    ) -> Result<(), Error> {
        check_batch::<N, V, T>(Xb, Yb)?;
        *self = Self::ZERO;
        let P = params;
        let n = F::from_usize(N);
        let d = self;

        // forward: loss = -logprobs[range(n), Yb].mean()
        for k in 0..N {
            d.dlogprobs[k][Yb[k] as usize] += -(F::ONE / n);
        }
        // forward: logprobs = probs.log()
        for k in 0..N {
            for v in 0..V {
                d.dprobs[k][v] += (F::ONE / tape.probs[k][v]) * d.dlogprobs[k][v];
            }
        }
        // forward: probs = counts * counts_sum_inv   (counts_sum_inv broadcast over the classes)
        for k in 0..N {
            for v in 0..V {
                d.dcounts_sum_inv[k] += tape.counts[k][v] * d.dprobs[k][v];
            }
        }
        for k in 0..N {
            for v in 0..V {
                d.dcounts[k][v] += tape.counts_sum_inv[k] * d.dprobs[k][v];
            }
        }
        // forward: counts_sum_inv = counts_sum**-1
        for k in 0..N {
            let cs = tape.counts_sum[k];
            d.dcounts_sum[k] += -(F::ONE / (cs * cs)) * d.dcounts_sum_inv[k];
        }
        // forward: counts_sum = counts.sum(1, keepdims=True)   (second branch into dcounts)
        for k in 0..N {
            for v in 0..V {
                d.dcounts[k][v] += d.dcounts_sum[k];
            }
        }
        // forward: counts = norm_logits.exp()
        for k in 0..N {
            for v in 0..V {
                d.dnorm_logits[k][v] += tape.counts[k][v] * d.dcounts[k][v];
            }
        }
        // forward: norm_logits = logits - logit_maxes   (logit_maxes broadcast over the classes)
        for k in 0..N {
            for v in 0..V {
                d.dlogits[k][v] += d.dnorm_logits[k][v];
                d.dlogit_maxes[k] += -d.dnorm_logits[k][v];
            }
        }
        // forward: logit_maxes = logits.max(1, keepdim=True).values
        for k in 0..N {
            d.dlogits[k][tape.logit_argmax[k]] += d.dlogit_maxes[k];
        }
        // forward: logits = h @ W2 + b2
        // dh = dlogits @ W2.T
        for k in 0..N {
            for j in 0..H {
                let mut acc = F::ZERO;
                for v in 0..V {
                    acc += d.dlogits[k][v] * P.W2[j][v];
                }
                d.dh[k][j] += acc;
            }
        }
        // dW2 = h.T @ dlogits
        for j in 0..H {
            for v in 0..V {
                let mut acc = F::ZERO;
                for k in 0..N {
                    acc += tape.h[k][j] * d.dlogits[k][v];
                }
                d.dparams.W2[j][v] += acc;
            }
        }
        // db2 = dlogits.sum(0)   (sum over the batch)
        for v in 0..V {
            for k in 0..N {
                d.dparams.b2[v] += d.dlogits[k][v];
            }
        }
        // forward: h = tanh(hpreact)
        for k in 0..N {
            for j in 0..H {
                d.dhpreact[k][j] += (F::ONE - tape.h[k][j] * tape.h[k][j]) * d.dh[k][j];
            }
        }
        // forward: hpreact = bngain * bnraw + bnbias   (bngain, bnbias broadcast over the batch)
        for k in 0..N {
            for j in 0..H {
                d.dparams.bngain[j] += tape.bnraw[k][j] * d.dhpreact[k][j];
                d.dbnraw[k][j] += P.bngain[j] * d.dhpreact[k][j];
                d.dparams.bnbias[j] += d.dhpreact[k][j];
            }
        }
        // forward: bnraw = bndiff * bnvar_inv   (bnvar_inv broadcast over the batch)
        for k in 0..N {
            for j in 0..H {
                d.dbndiff[k][j] += tape.bnvar_inv[j] * d.dbnraw[k][j];
                d.dbnvar_inv[j] += tape.bndiff[k][j] * d.dbnraw[k][j];
            }
        }
        // forward: bnvar_inv = (bnvar + 1e-5)**-0.5
        for j in 0..H {
            // -0.5 * (bnvar + eps)**-1.5 = -0.5 * bnvar_inv**3
            let inv = tape.bnvar_inv[j];
            d.dbnvar[j] += F::from_f64(-0.5) * (inv * inv * inv) * d.dbnvar_inv[j];
        }
        // forward: bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)
        for k in 0..N {
            for j in 0..H {
                d.dbndiff2[k][j] += F::ONE / (n - F::ONE) * d.dbnvar[j];
            }
        }
        // forward: bndiff2 = bndiff**2   (second branch into dbndiff)
        for k in 0..N {
            for j in 0..H {
                d.dbndiff[k][j] += F::from_f64(2.0) * tape.bndiff[k][j] * d.dbndiff2[k][j];
            }
        }
        // forward: bndiff = hprebn - bnmeani
        for k in 0..N {
            for j in 0..H {
                d.dhprebn[k][j] += d.dbndiff[k][j];
                d.dbnmeani[j] += -d.dbndiff[k][j];
            }
        }
        // forward: bnmeani = 1/n * hprebn.sum(0, keepdim=True)
        for k in 0..N {
            for j in 0..H {
                d.dhprebn[k][j] += F::ONE / n * d.dbnmeani[j];
            }
        }
        // forward: hprebn = embcat @ W1 + b1
        // dembcat = dhprebn @ W1.T
        for k in 0..N {
            for i in 0..TE {
                let mut acc = F::ZERO;
                for j in 0..H {
                    acc += d.dhprebn[k][j] * P.W1[i][j];
                }
                d.dembcat[k][i] += acc;
            }
        }
        // dW1 = embcat.T @ dhprebn
        for i in 0..TE {
            for j in 0..H {
                let mut acc = F::ZERO;
                for k in 0..N {
                    acc += tape.embcat[k][i] * d.dhprebn[k][j];
                }
                d.dparams.W1[i][j] += acc;
            }
        }
        // db1 = dhprebn.sum(0, keepdim=True)
        for j in 0..H {
            for k in 0..N {
                d.dparams.b1[j] += d.dhprebn[k][j];
            }
        }
        // forward: embcat = emb.view(emb.shape[0], -1)
        for k in 0..N {
            for t in 0..T {
                for e in 0..E {
                    d.demb[k][t][e] += d.dembcat[k][t * E + e];
                }
            }
        }
        // forward: emb = C[Xb]   (a row of C used several times gets the sum of its gradients)
        for k in 0..N {
            for t in 0..T {
                let ix = Xb[k][t] as usize;
                for e in 0..E {
                    d.dparams.C[ix][e] += d.demb[k][t][e];
                }
            }
        }
        Ok(())
    }
}

/// N >= 2 and every token id < V.
fn check_batch<const N: usize, const V: usize, const T: usize>(
    Xb: &[[u8; T]; N],
    Yb: &[u8; N],
) -> Result<(), Error> {
    if N < 2 {
        return Err(Error::BatchTooSmall { n: N });
    }
    crate::check_tokens(Xb.as_flattened(), V)?;
    crate::check_tokens(Yb, V)
}
