//! Inference: batchnorm calibrated over a whole data set, next-token logits for one context,
//! and sampling with temperature and top-k. (The loss over data sets is [`crate::eval`]'s.)

use crate::batchnorm::{batchnorm_tanh_inference, bnvar_inv_from_bnvar};
use crate::error::Error;
use crate::float::Float;
use crate::linear::{embed_linear_forward, linear_forward};
use crate::model::{Dims, ParamsRef};

/// Running per-feature mean and sum of squared deviations of `hprebn = embcat @ W1 + b1` over
/// rows, in f64, merged chunk by chunk with Chan et al.'s pairwise update. Numerically stable
/// (no `E[x^2] - E[x]^2`), and partial results of separate chunks merge exactly in a fixed order.
#[derive(Debug)]
pub struct BnCalibration<'a> {
    count: u64,
    mean: &'a mut [f64],
    m2: &'a mut [f64],
}

impl<'a> BnCalibration<'a> {
    /// An empty accumulator over caller-owned `mean` and `m2` (H each; zeroed here).
    pub fn new(mean: &'a mut [f64], m2: &'a mut [f64]) -> Result<Self, Error> {
        if mean.len() != m2.len() || mean.is_empty() {
            return Err(Error::LengthMismatch {
                what: "calibration m2",
                expected: mean.len(),
                got: m2.len(),
            });
        }
        mean.fill(0.0);
        m2.fill(0.0);
        Ok(BnCalibration { count: 0, mean, m2 })
    }

    /// Rows seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// H, the features accumulated.
    pub fn hidden(&self) -> usize {
        self.mean.len()
    }

    /// Adds the rows of `x` ((rows, T) token ids). `hprebn` is scratch of at least H values; rows
    /// are processed `hprebn.len() / H` at a time (two passes per chunk, then one merge).
    pub fn add_rows<F: Float>(
        &mut self,
        params: ParamsRef<'_, F>,
        x: &[u8],
        hprebn: &mut [F],
    ) -> Result<(), Error> {
        let dims = params.dims();
        let hidden = dims.hidden;
        if self.mean.len() != hidden {
            return Err(Error::DimsMismatch);
        }
        check_rows(&dims, x, None)?;
        let chunk_rows = hprebn.len() / hidden;
        if chunk_rows == 0 {
            return Err(Error::LengthMismatch {
                what: "calibration scratch",
                expected: hidden,
                got: hprebn.len(),
            });
        }
        for xc in x.chunks(chunk_rows * dims.context) {
            let rows = xc.len() / dims.context;
            let buf = &mut hprebn[..rows * hidden];
            embed_linear_forward(
                buf,
                xc,
                params.C,
                params.W1,
                params.b1,
                dims.context,
                dims.embedding,
            );
            // Chunk statistics by two passes, then the pairwise merge into the running ones.
            let nb = rows as f64;
            let na = self.count as f64;
            for j in 0..hidden {
                let mut sum = 0.0;
                for r in 0..rows {
                    sum += buf[r * hidden + j].to_f64();
                }
                let mean_b = sum / nb;
                let mut m2_b = 0.0;
                for r in 0..rows {
                    let d = buf[r * hidden + j].to_f64() - mean_b;
                    m2_b += d * d;
                }
                let delta = mean_b - self.mean[j];
                let n = na + nb;
                self.mean[j] += delta * nb / n;
                self.m2[j] += m2_b + delta * delta * na * nb / n;
            }
            self.count += rows as u64;
        }
        Ok(())
    }

    /// Adds rows whose hprebn (rows, H) is already computed (by [`crate::eval::Evaluator`]),
    /// row `r` counted `counts[r]` times (`counts` empty: once each); `sums` is f64 scratch of
    /// at least 2*H. Same two-pass-then-merge as [`Self::add_rows`], with the loops running
    /// along rows so they vectorise.
    pub fn add_hprebn(
        &mut self,
        hprebn: &[f32],
        counts: &[u32],
        sums: &mut [f64],
    ) -> Result<(), Error> {
        let hidden = self.mean.len();
        let rows = hprebn.len() / hidden;
        if !hprebn.len().is_multiple_of(hidden) || sums.len() < 2 * hidden {
            return Err(Error::LengthMismatch {
                what: "hprebn rows / sums scratch",
                expected: 2 * hidden,
                got: sums.len(),
            });
        }
        if !counts.is_empty() && counts.len() != rows {
            return Err(Error::LengthMismatch {
                what: "row counts",
                expected: rows,
                got: counts.len(),
            });
        }
        let weight = |r: usize| counts.get(r).map_or(1.0, |&c| c as f64);
        let nb: f64 = (0..rows).map(weight).sum();
        if nb == 0.0 {
            return Ok(());
        }
        let (mean_b, m2_b) = sums[..2 * hidden].split_at_mut(hidden);
        mean_b.fill(0.0);
        for (r, row) in hprebn.chunks_exact(hidden).enumerate() {
            let w = weight(r);
            for (s, &x) in mean_b.iter_mut().zip(row) {
                *s += w * x as f64;
            }
        }
        for s in mean_b.iter_mut() {
            *s /= nb;
        }
        m2_b.fill(0.0);
        for (r, row) in hprebn.chunks_exact(hidden).enumerate() {
            let w = weight(r);
            for ((s, &m), &x) in m2_b.iter_mut().zip(mean_b.iter()).zip(row) {
                let d = x as f64 - m;
                *s += w * (d * d);
            }
        }
        let na = self.count as f64;
        let n = na + nb;
        for j in 0..hidden {
            let delta = mean_b[j] - self.mean[j];
            self.mean[j] += delta * nb / n;
            self.m2[j] += m2_b[j] + delta * delta * na * nb / n;
        }
        self.count += nb as u64;
        Ok(())
    }

    /// Merges another accumulator's rows into this one (Chan's update; call in a fixed order for
    /// results independent of how the rows were split).
    pub fn merge(&mut self, other: &BnCalibration<'_>) -> Result<(), Error> {
        if other.mean.len() != self.mean.len() {
            return Err(Error::DimsMismatch);
        }
        if other.count == 0 {
            return Ok(());
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        for j in 0..self.mean.len() {
            let delta = other.mean[j] - self.mean[j];
            self.mean[j] += delta * nb / n;
            self.m2[j] += other.m2[j] + delta * delta * na * nb / n;
        }
        self.count += other.count;
        Ok(())
    }

    /// `bnmean = hprebn.mean(0)`, `bnvar = hprebn.var(0)` (Bessel: divide by rows - 1).
    /// Errors: fewer than 2 rows, wrong lengths.
    pub fn finish<F: Float>(&self, bnmean: &mut [F], bnvar: &mut [F]) -> Result<(), Error> {
        if self.count < 2 {
            return Err(Error::BatchTooSmall {
                n: self.count as usize,
            });
        }
        for out in [&*bnmean, &*bnvar] {
            if out.len() != self.mean.len() {
                return Err(Error::LengthMismatch {
                    what: "bnmean/bnvar",
                    expected: self.mean.len(),
                    got: out.len(),
                });
            }
        }
        let inv = 1.0 / (self.count - 1) as f64;
        for j in 0..self.mean.len() {
            bnmean[j] = F::from_f64(self.mean[j]);
            bnvar[j] = F::from_f64(self.m2[j] * inv);
        }
        Ok(())
    }
}

/// `x` holds whole rows of T ids < V; `y` (if given) one id < V per row.
pub(crate) fn check_rows(dims: &Dims, x: &[u8], y: Option<&[u8]>) -> Result<usize, Error> {
    if !x.len().is_multiple_of(dims.context) {
        return Err(Error::LengthMismatch {
            what: "X (rows of T tokens)",
            expected: x.len() / dims.context * dims.context,
            got: x.len(),
        });
    }
    let rows = x.len() / dims.context;
    crate::check_tokens(x, dims.vocab)?;
    if let Some(y) = y {
        if y.len() != rows {
            return Err(Error::LengthMismatch {
                what: "Y",
                expected: rows,
                got: y.len(),
            });
        }
        crate::check_tokens(y, dims.vocab)?;
    }
    Ok(rows)
}

/// The model with calibrated batchnorm, ready for inference, plus its scratch.
///
/// Scratch: `bnvar_inv` (H), `h` (rows * H), `logits` (rows * V) for some `rows` >= 1 (one
/// row is used).
#[derive(Debug)]
pub struct Inference<'a, F> {
    params: ParamsRef<'a, F>,
    bnmean: &'a [F],
    bnvar_inv: &'a mut [F],
    h: &'a mut [F],
    logits: &'a mut [F],
}

impl<'a, F: Float> Inference<'a, F> {
    /// Computes `bnvar_inv = (bnvar + 1e-5)**-0.5` once. Errors: a length does not fit the dims.
    pub fn new(
        params: ParamsRef<'a, F>,
        bnmean: &'a [F],
        bnvar: &[F],
        bnvar_inv: &'a mut [F],
        h: &'a mut [F],
        logits: &'a mut [F],
    ) -> Result<Self, Error> {
        let dims = params.dims();
        for (what, len) in [
            ("bnmean", bnmean.len()),
            ("bnvar", bnvar.len()),
            ("bnvar_inv", bnvar_inv.len()),
        ] {
            if len != dims.hidden {
                return Err(Error::LengthMismatch {
                    what,
                    expected: dims.hidden,
                    got: len,
                });
            }
        }
        let rows = h.len() / dims.hidden;
        if rows == 0 || h.len() != rows * dims.hidden || logits.len() != rows * dims.vocab {
            return Err(Error::LengthMismatch {
                what: "inference scratch h/logits",
                expected: rows.max(1) * dims.vocab,
                got: logits.len(),
            });
        }
        bnvar_inv_from_bnvar(bnvar_inv, bnvar);
        Ok(Inference {
            params,
            bnmean,
            bnvar_inv,
            h,
            logits,
        })
    }

    pub fn dims(&self) -> Dims {
        self.params.dims()
    }

    /// logits (rows, V) for `x` (rows, T), rows <= the scratch rows.
    fn logits_of(&mut self, x: &[u8]) -> usize {
        let p = self.params;
        let dims = p.dims();
        let rows = x.len() / dims.context;
        let h = &mut self.h[..rows * dims.hidden];
        embed_linear_forward(h, x, p.C, p.W1, p.b1, dims.context, dims.embedding);
        batchnorm_tanh_inference(h, self.bnmean, self.bnvar_inv, p.bngain, p.bnbias);
        linear_forward(&mut self.logits[..rows * dims.vocab], h, p.W2, p.b2);
        rows
    }

    /// The next-token logits (V) for one `context` (T ids), in `self`'s scratch.
    pub fn next_logits(&mut self, context: &[u8]) -> Result<&mut [F], Error> {
        let dims = self.dims();
        if context.len() != dims.context {
            return Err(Error::LengthMismatch {
                what: "context",
                expected: dims.context,
                got: context.len(),
            });
        }
        crate::check_tokens(context, dims.vocab)?;
        self.logits_of(context);
        Ok(&mut self.logits[..dims.vocab])
    }

    /// Samples a name: starting from the all-'.' context followed by `prefix`, draws tokens until
    /// the end token 0 or `out` is full. Writes the prefix and the drawn tokens (without the final
    /// 0) to `out` and returns how many. `uniform` yields numbers in [0, 1), one per token
    /// ([`sample_from_logits`]).
    pub fn sample_name(
        &mut self,
        prefix: &[u8],
        temperature: F,
        top_k: usize,
        mut uniform: impl FnMut() -> f64,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        self.sample_name_by(prefix, out, |logits| {
            sample_from_logits(logits, temperature, top_k, uniform())
        })
    }

    /// [`Inference::sample_name`] with the token drawn by `draw` from the next-token logits (V,
    /// which it may overwrite); a token >= V is an error.
    pub fn sample_name_by(
        &mut self,
        prefix: &[u8],
        out: &mut [u8],
        mut draw: impl FnMut(&mut [F]) -> Result<u8, Error>,
    ) -> Result<usize, Error> {
        let dims = self.dims();
        crate::check_tokens(prefix, dims.vocab)?;
        if prefix.contains(&0) {
            return Err(Error::InvalidArgument("the prefix contains the end token"));
        }
        if prefix.len() > out.len() {
            return Err(Error::LengthMismatch {
                what: "sample buffer",
                expected: prefix.len(),
                got: out.len(),
            });
        }
        out[..prefix.len()].copy_from_slice(prefix);
        let mut len = prefix.len();
        // The context is the last T tokens of '.'*T + out[..len].
        let mut context = [0u8; 64];
        if dims.context > context.len() {
            return Err(Error::InvalidArgument(
                "context longer than 64 when sampling",
            ));
        }
        while len < out.len() {
            let ctx = &mut context[..dims.context];
            ctx.fill(0);
            let have = len.min(dims.context);
            ctx[dims.context - have..].copy_from_slice(&out[len - have..len]);
            let logits = self.next_logits(&context[..dims.context])?;
            let ix = draw(logits)?;
            crate::check_tokens(&[ix], dims.vocab)?;
            if ix == 0 {
                break;
            }
            out[len] = ix;
            len += 1;
        }
        Ok(len)
    }
}

/// Draws a token from `softmax(logits / temperature)` restricted to the `top_k` largest logits
/// (0 or >= V: no restriction; ties at the k-th value are kept, as makemore does), by inverting
/// the CDF at `u` in [0, 1). Overwrites `logits` with the unnormalised probabilities
/// ([`unnormalised_probabilities`]).
///
/// Errors: those of [`unnormalised_probabilities`], `u` outside [0, 1).
pub fn sample_from_logits<F: Float>(
    logits: &mut [F],
    temperature: F,
    top_k: usize,
    u: f64,
) -> Result<u8, Error> {
    if !(0.0..1.0).contains(&u) {
        return Err(Error::InvalidArgument("uniform draw outside [0, 1)"));
    }
    let sum = unnormalised_probabilities(logits, temperature, top_k)?;
    let target = u * sum;
    let mut cdf = 0.0f64;
    let mut last = 0;
    for (i, &p) in logits.iter().enumerate() {
        if p > F::ZERO {
            cdf += p.to_f64();
            last = i;
            if target < cdf {
                return Ok(i as u8);
            }
        }
    }
    Ok(last as u8)
}

/// Overwrites `logits` with `exp((logit - max) / temperature)` for the `top_k` largest logits
/// (0 or >= V: all; ties at the k-th value kept) and 0 for the others, and returns their sum
/// (in f64, > 0 and finite).
///
/// Errors: temperature not finite and > 0, a NaN logit, more than 256 classes, no finite maximum.
pub fn unnormalised_probabilities<F: Float>(
    logits: &mut [F],
    temperature: F,
    top_k: usize,
) -> Result<f64, Error> {
    if !(temperature > F::ZERO && temperature.is_finite()) {
        return Err(Error::InvalidArgument("temperature must be finite and > 0"));
    }
    if logits.is_empty() || logits.len() > 256 {
        return Err(Error::InvalidArgument("number of classes must be 1..=256"));
    }
    if logits.iter().any(|l| l.is_nan()) {
        return Err(Error::InvalidArgument("NaN logit"));
    }
    // top-k: the k-th largest value is the threshold (ties kept)
    let v = logits.len();
    let threshold = if top_k > 0 && top_k < v {
        let mut best = F::NEG_INFINITY;
        for &cand in logits.iter() {
            let above = logits.iter().filter(|&&l| l > cand).count();
            if above < top_k && (cand < best || best == F::NEG_INFINITY) {
                best = cand;
            }
        }
        best
    } else {
        F::NEG_INFINITY
    };
    let mut max = F::NEG_INFINITY;
    for &l in logits.iter() {
        max = max.max_nan(l);
    }
    let mut sum = 0.0f64;
    for l in logits.iter_mut() {
        *l = if *l >= threshold && *l > F::NEG_INFINITY {
            ((*l - max) / temperature).exp()
        } else {
            F::ZERO
        };
        sum += l.to_f64();
    }
    if !(sum > 0.0 && sum.is_finite()) {
        // every logit is -inf (or +inf made the shift NaN): nothing to draw from
        return Err(Error::InvalidArgument("logits have no finite maximum"));
    }
    Ok(sum)
}
