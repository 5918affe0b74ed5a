//! The statistics makemore part 3 reads a network's health from, measured on a training step's
//! own buffers after [`Kernels::gradient`] and before the update (no second forward pass):
//!
//! - the activations `hprebn`, `hpreact` and `h`: mean and std over the batch and the units;
//!   for `h`, the share of values with `|h| > 0.97` ([`SATURATED`]) and the units saturated on
//!   every row of the batch (dead: no gradient flows through them);
//! - each parameter tensor: its gradient's mean and std, the grad:data ratio
//!   `std(grad) / std(data)`, and the update:data ratio `log10(std(lr * grad) / std(data))`,
//!   whose healthy value the lecture puts near -3.
//!
//! `hprebn`'s statistics come from the step's batch statistics (`bnmeani`, and the sums of
//! squared deviations behind `bnvar_inv`); `hpreact` and `h` from `bnraw`, which the backward
//! leaves as the forward made it ([`Kernels::bn_tanh_stats`] recomputes
//! `bngain * bnraw + bnbias` and its tanh, the step's own values). Every std is the unbiased
//! one (`torch.std`'s, over n - 1). Sums run on the step's path in f32 (two passes: the mean,
//! then the squared deviations from it) and are combined in f64. Allocation-free.

use crate::error::Error;
use crate::math::{ln_f64, sqrt_f64};
use crate::model::ParamsRef;
use crate::simd::Kernels;
use crate::step::Step;

/// `|h|` above this is saturated (the lecture's threshold).
pub const SATURATED: f32 = 0.97;

/// Mean and (unbiased) standard deviation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub mean: f64,
    pub std: f64,
}

impl Moments {
    /// From `count` values' mean and their sum of squared deviations `m2`; std 0 for fewer than
    /// two values.
    fn new(count: usize, mean: f64, m2: f64) -> Moments {
        let std = if count > 1 {
            sqrt_f64(m2.max(0.0) / (count - 1) as f64)
        } else {
            0.0
        };
        Moments { mean, std }
    }
}

/// The activations of one step's batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ActivationStats {
    pub hprebn: Moments,
    pub hpreact: Moments,
    pub h: Moments,
    /// Share of `h`'s values with `|h| >` [`SATURATED`], in [0, 1].
    pub saturated: f64,
    /// Units with `|h| >` [`SATURATED`] on every row of the batch.
    pub dead_units: usize,
}

/// One parameter tensor at one step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TensorStats {
    pub grad: Moments,
    pub data: Moments,
    /// `std(grad) / std(data)` (infinite where the data's std is 0).
    pub grad_to_data: f64,
    /// `log10(std(lr * grad) / std(data))` (infinite where the data's std is 0, -infinite
    /// where the gradient's is).
    pub update_to_data: f64,
}

/// Everything [`Kernels::step_stats`] measures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    pub activations: ActivationStats,
    /// In [`crate::PARAM_NAMES`]' order: C, W1, b1, W2, b2, bngain, bnbias.
    pub tensors: [TensorStats; 7],
}

impl Kernels {
    /// The part-3 statistics of the step just taken by [`Kernels::gradient`] on `step` with
    /// `params` (before the update, which would move them) at learning rate `lr`. Overwrites
    /// scratch of `step` that the next step rewrites anyway. Errors: dims of `params` and
    /// `step` differ.
    pub fn step_stats(
        &self,
        params: &ParamsRef<'_, f32>,
        step: &mut Step<'_>,
        lr: f32,
    ) -> Result<StepStats, Error> {
        let dims = step.dims();
        if params.dims() != dims {
            return Err(Error::DimsMismatch);
        }
        let n = step.n();
        let hidden = dims.hidden;
        let count = n * hidden;
        let [.., bngain, bnbias] = params.tensors();

        // hprebn: unit j has n values of mean bnmeani[j] and squared deviations
        // (n - 1) * bnvar[j], bnvar = bnvar_inv**-2 - 1e-5; combined over the units
        let (bnmeani, bnvar_inv) = step.bn_stats();
        let mean = bnmeani.iter().map(|&m| f64::from(m)).sum::<f64>() / hidden as f64;
        let mut m2 = 0.0;
        for (&m, &inv) in bnmeani.iter().zip(bnvar_inv) {
            let inv = f64::from(inv);
            let bnvar = 1.0 / (inv * inv) - 1e-5;
            let d = f64::from(m) - mean;
            m2 += (n as f64 - 1.0) * bnvar + n as f64 * d * d;
        }
        let hprebn = Moments::new(count, mean, m2);

        // hpreact and h: the sums and each unit's saturated rows (added up over the shards),
        // then the squared deviations from the means
        let mut sums = [0f64; 4];
        let saturated = step.for_each_bnraw(|total, scratch, bnraw| {
            let s = self.bn_tanh_stats_raw(scratch, bnraw, bngain, bnbias, [0.0, 0.0]);
            for (t, v) in sums.iter_mut().zip(s) {
                *t += f64::from(v);
            }
            for (t, &c) in total.iter_mut().zip(scratch.iter()) {
                *t += c;
            }
        });
        // counts are exact in f32 (n <= 65536)
        let saturated_total: f64 = saturated.iter().map(|&c| f64::from(c)).sum();
        let dead_units = saturated.iter().filter(|&&c| c == n as f32).count();
        let means = [sums[0] / count as f64, sums[1] / count as f64];
        let center = means.map(|m| m as f32);
        let mut devs = [0f64; 4];
        step.for_each_bnraw(|_, scratch, bnraw| {
            let s = self.bn_tanh_stats_raw(scratch, bnraw, bngain, bnbias, center);
            for (t, v) in devs.iter_mut().zip(s) {
                *t += f64::from(v);
            }
        });
        // sum (x - c)^2 - (sum (x - c))^2 / count: exact for c the mean, and corrects the
        // rounding of c (the corrected two-pass algorithm)
        let m2 = |sq: f64, d: f64| sq - d * d / count as f64;
        let activations = ActivationStats {
            hprebn,
            hpreact: Moments::new(count, means[0], m2(devs[2], devs[0])),
            h: Moments::new(count, means[1], m2(devs[3], devs[1])),
            saturated: saturated_total / count as f64,
            dead_units,
        };

        let grads = ParamsRef::from_flat(dims, step.grads())?;
        let mut tensors = [TensorStats::default(); 7];
        for ((t, data), grad) in tensors
            .iter_mut()
            .zip(params.tensors())
            .zip(grads.tensors())
        {
            let moments = |x: &[f32]| {
                let [mean, m2] = self.moments_raw(x);
                Moments::new(x.len(), f64::from(mean), f64::from(m2))
            };
            let (g, d) = (moments(grad), moments(data));
            *t = TensorStats {
                grad: g,
                data: d,
                grad_to_data: g.std / d.std,
                update_to_data: ln_f64(f64::from(lr).abs() * g.std / d.std)
                    / core::f64::consts::LN_10,
            };
        }
        Ok(StepStats {
            activations,
            tensors,
        })
    }

    /// The step's `h` (n, H) into `h`, for its histogram: `tanh(bngain * bnraw + bnbias)` from
    /// the `bnraw` the step left, on this path (the step's own values, as
    /// [`Kernels::bn_tanh_stats`] sees them). Call after [`Kernels::gradient`], before the
    /// update. Errors: dims of `params` and `step` differ, `h` not n * H long.
    pub fn step_h(
        &self,
        params: &ParamsRef<'_, f32>,
        step: &mut Step<'_>,
        h: &mut [f32],
    ) -> Result<(), Error> {
        let dims = step.dims();
        if params.dims() != dims {
            return Err(Error::DimsMismatch);
        }
        if h.len() != step.n() * dims.hidden {
            return Err(Error::LengthMismatch {
                what: "h (n, H)",
                expected: step.n() * dims.hidden,
                got: h.len(),
            });
        }
        let [.., bngain, bnbias] = params.tensors();
        let mut rows = h.chunks_exact_mut(dims.hidden);
        step.for_each_bnraw(|_, hpreact, bnraw| {
            for (raw, h) in bnraw.chunks_exact(dims.hidden).zip(&mut rows) {
                // the step's hpreact (a multiply then an add), then the path's tanh
                for (((p, &r), &g), &b) in hpreact.iter_mut().zip(raw).zip(bngain).zip(bnbias) {
                    *p = g * r + b;
                }
                self.tanh_raw(h, hpreact);
            }
        });
        Ok(())
    }
}
