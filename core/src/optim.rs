//! The optimisers and learning-rate schedules: what turns a gradient into a parameter update.
//!
//! - [`LrSchedule`]: the learning rate of each step. `Step` is the notebook's decay (the
//!   default run's bits); `Cosine` is llm.c's and nanoGPT's linear warm-up then cosine decay.
//! - [`Optimizer`]: the notebook's plain SGD, or PyTorch's AdamW with decoupled weight decay
//!   (makemore.py's optimiser), whose elementwise update is the `adamw` kernel of every SIMD path.
//! - [`Kernels::update`] applies one update to every parameter; [`Kernels::clip_grad_norm`] is
//!   PyTorch's `clip_grad_norm_` over the whole gradient.
//!
//! The optimiser's state (AdamW's moments) is a flat slice the caller owns (and checkpoints):
//! [`Optimizer::state_len`] values, `m` then `v`, each in the parameters' flat layout.

use crate::error::Error;
use crate::math::{cos_f64, sqrt_f32, sqrt_f64};
use crate::model::ParamsMut;
use crate::simd::Kernels;

// ---------------------------------------------------------------- learning-rate schedules

/// The learning rate as a function of the 0-based step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// The notebook's step decay: `lr` for `step < decay_step`, then `lr / 10` (in f32).
    Step { lr: f32, decay_step: u64 },
    /// llm.c's (and nanoGPT's) schedule: linear warm-up `lr * (step + 1) / warmup` for
    /// `step < warmup`, then `min_lr + 0.5 (1 + cos(pi r)) (lr - min_lr)` with
    /// `r = (step - warmup) / (total - warmup)` clamped to `[0, 1]` (`r = 1` when
    /// `total <= warmup`): `lr` at `step = warmup`, `min_lr` from `step = total` on.
    Cosine {
        lr: f32,
        warmup: u64,
        total: u64,
        min_lr: f32,
    },
}

impl LrSchedule {
    /// The learning rate of step `step` (0-based).
    ///
    /// `Step`: exactly `lr` or `lr / 10.0` computed in f32, the bits of the notebook's
    /// `lr if i < decay else lr / 10`. `Cosine`: computed in f64 from the f32 `lr` and `min_lr`
    /// (with [`cos_f64`], within 1 ulp of std's `cos`) and rounded once to f32, so it is within
    /// 1 ulp of the exact formula; exactly `lr` at `step = warmup` and `step + 1 = warmup`, and
    /// exactly `min_lr` from `total` on.
    pub fn lr_at(&self, step: u64) -> f32 {
        match *self {
            LrSchedule::Step { lr, decay_step } => {
                if step < decay_step {
                    lr
                } else {
                    lr / 10.0
                }
            }
            LrSchedule::Cosine {
                lr,
                warmup,
                total,
                min_lr,
            } => {
                let (lr, min_lr) = (lr as f64, min_lr as f64);
                if step < warmup {
                    // steps are exact in f64 below 2^53
                    return (lr * (step as f64 + 1.0) / warmup as f64) as f32;
                }
                let r = if total > warmup {
                    ((step - warmup) as f64 / (total - warmup) as f64).min(1.0)
                } else {
                    1.0
                };
                let coeff = 0.5 * (1.0 + cos_f64(core::f64::consts::PI * r));
                (min_lr + coeff * (lr - min_lr)) as f32
            }
        }
    }

    /// `Ok` if every learning rate the schedule gives is finite and >= 0: `lr` finite and
    /// > 0; for `Cosine`, `min_lr` finite with `0 <= min_lr <= lr`. Errors name the value.
    pub fn validate(&self) -> Result<(), Error> {
        let lr = match *self {
            LrSchedule::Step { lr, .. } | LrSchedule::Cosine { lr, .. } => lr,
        };
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::InvalidArgument(
                "learning rate: must be finite and > 0",
            ));
        }
        if let LrSchedule::Cosine { min_lr, .. } = *self {
            if !(min_lr.is_finite() && (0.0..=lr).contains(&min_lr)) {
                return Err(Error::InvalidArgument(
                    "minimum learning rate of the cosine schedule: must be finite, >= 0 and <= \
                     the learning rate",
                ));
            }
        }
        Ok(())
    }

    /// `step` or `cosine`, as the CLI and `metrics.json` name the schedule.
    pub const fn name(&self) -> &'static str {
        match self {
            LrSchedule::Step { .. } => "step",
            LrSchedule::Cosine { .. } => "cosine",
        }
    }
}

// ---------------------------------------------------------------- optimisers

/// The hyperparameters of PyTorch's `torch.optim.AdamW` (non-amsgrad). The weight decay is
/// decoupled (`p *= 1 - lr * weight_decay`) and applies to every parameter, as makemore.py's
/// `AdamW(model.parameters(), ...)` does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl AdamW {
    /// makemore.py's: `betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01`.
    pub const MAKEMORE: AdamW = AdamW {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.01,
    };

    /// `Ok` if `0 <= beta1, beta2 < 1`, `eps > 0` and `weight_decay >= 0`, all finite.
    pub fn validate(&self) -> Result<(), Error> {
        let beta = |b: f32| (0.0..1.0).contains(&b);
        if !beta(self.beta1) {
            return Err(Error::InvalidArgument("AdamW beta1: must be in [0, 1)"));
        }
        if !beta(self.beta2) {
            return Err(Error::InvalidArgument("AdamW beta2: must be in [0, 1)"));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::InvalidArgument("AdamW eps: must be finite and > 0"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::InvalidArgument(
                "AdamW weight decay: must be finite and >= 0",
            ));
        }
        Ok(())
    }

    /// The coefficients of update number `t` (1-based) at learning rate `lr`, computed once in
    /// f64 from the f32 hyperparameters and rounded to f32, as PyTorch computes them from
    /// Python floats: `decay = 1 - lr wd`, `step_size = lr / (1 - b1^t)`,
    /// `sqrt_bc2 = sqrt(1 - b2^t)` (`b^t` by repeated squaring, a few ulp of f64).
    /// Errors: `t == 0`, `lr` not finite or negative, hyperparameters out of range
    /// ([`AdamW::validate`]).
    pub fn step(&self, lr: f32, t: u64) -> Result<AdamWStep, Error> {
        self.validate()?;
        check_update(t, lr)?;
        let (lr, wd) = (lr as f64, self.weight_decay as f64);
        let (b1, b2) = (self.beta1 as f64, self.beta2 as f64);
        Ok(AdamWStep {
            decay: (1.0 - lr * wd) as f32,
            beta1: self.beta1,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: self.beta2,
            one_minus_beta2: (1.0 - b2) as f32,
            step_size: (lr / (1.0 - powi(b1, t))) as f32,
            sqrt_bc2: sqrt_f64(1.0 - powi(b2, t)) as f32,
            eps: self.eps,
        })
    }
}

/// `b^t` by repeated squaring (`t` >= 1 here; `b^0 = 1`).
fn powi(b: f64, mut t: u64) -> f64 {
    let (mut result, mut x) = (1.0, b);
    while t > 0 {
        if t & 1 == 1 {
            result *= x;
        }
        x *= x;
        t >>= 1;
    }
    result
}

/// `grads` holds `n` values (the parameters' flat layout).
fn check_grads(n: usize, grads: &[f32]) -> Result<(), Error> {
    if grads.len() != n {
        return Err(Error::LengthMismatch {
            what: "grads (the parameters' flat layout)",
            expected: n,
            got: grads.len(),
        });
    }
    Ok(())
}

/// `t` >= 1 and `lr` finite and >= 0.
fn check_update(t: u64, lr: f32) -> Result<(), Error> {
    if t == 0 {
        return Err(Error::InvalidArgument(
            "update number t: 1-based (t = step + 1), must be >= 1",
        ));
    }
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(Error::InvalidArgument(
            "learning rate of the update: must be finite and >= 0",
        ));
    }
    Ok(())
}

/// The per-update scalar coefficients of the `adamw` kernel ([`Kernels::adamw`]), computed once
/// per update by [`AdamW::step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// `1 - lr * weight_decay`.
    pub decay: f32,
    pub beta1: f32,
    /// `1 - beta1`.
    pub one_minus_beta1: f32,
    pub beta2: f32,
    /// `1 - beta2`.
    pub one_minus_beta2: f32,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    pub sqrt_bc2: f32,
    pub eps: f32,
}

/// How the parameters are updated from their gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// The notebook's `p = p - lr * grad`; no state.
    Sgd,
    /// PyTorch's AdamW; state `m` then `v`, one value per parameter each.
    AdamW(AdamW),
}

impl Optimizer {
    /// The length of the state for `num_params` parameters: 0 for SGD, `2 * num_params` for
    /// AdamW (`m`, then `v`, each in the parameters' flat layout). Saturates at `usize::MAX`
    /// (which no slice matches, so [`Kernels::update`] refuses it).
    pub const fn state_len(&self, num_params: usize) -> usize {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::AdamW(_) => num_params.saturating_mul(2),
        }
    }

    /// `sgd` or `adamw`, as the CLI and `metrics.json` name the optimiser.
    pub const fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::AdamW(_) => "adamw",
        }
    }
}

impl Kernels {
    /// One optimiser update of every parameter: update number `t` (1-based, `t = step + 1`) at
    /// learning rate `lr`. `grads` holds the gradient in the parameters' flat layout
    /// ([`crate::Dims::num_params`] values); `state` the optimiser's state
    /// ([`Optimizer::state_len`] values, zeros before the first update).
    ///
    /// SGD: the `sgd` kernel per tensor, `p = p - lr * grad` (the bits of the training step's
    /// update). AdamW: the `adamw` kernel per tensor with the coefficients of [`AdamW::step`].
    /// Errors (nothing written): a length that differs, `t == 0`, `lr` not finite or negative,
    /// AdamW hyperparameters out of range.
    pub fn update(
        &self,
        opt: &Optimizer,
        params: &mut ParamsMut<'_, f32>,
        grads: &[f32],
        state: &mut [f32],
        t: u64,
        lr: f32,
    ) -> Result<(), Error> {
        let n = params.dims().num_params();
        check_grads(n, grads)?;
        if state.len() != opt.state_len(n) {
            return Err(Error::LengthMismatch {
                what: "optimiser state (AdamW: m then v; SGD: empty)",
                expected: opt.state_len(n),
                got: state.len(),
            });
        }
        check_update(t, lr)?;
        match opt {
            Optimizer::Sgd => self.sgd_tensors(params, grads, lr),
            Optimizer::AdamW(adamw) => {
                let c = adamw.step(lr, t)?;
                let (m, v) = state.split_at_mut(n);
                let mut off = 0;
                for p in params.tensors_mut() {
                    let len = p.len();
                    let (m, v) = (&mut m[off..][..len], &mut v[off..][..len]);
                    self.adamw_raw(p, m, v, &grads[off..][..len], c);
                    off += len;
                }
            }
        }
        Ok(())
    }

    /// [`Kernels::update`] with [`Optimizer::Sgd`] (no state), for callers that train with SGD
    /// only: the web page's wasm then has no AdamW. The same bits and errors.
    pub fn update_sgd(
        &self,
        params: &mut ParamsMut<'_, f32>,
        grads: &[f32],
        t: u64,
        lr: f32,
    ) -> Result<(), Error> {
        check_grads(params.dims().num_params(), grads)?;
        check_update(t, lr)?;
        self.sgd_tensors(params, grads, lr);
        Ok(())
    }

    /// The `sgd` kernel on each tensor of `params` and its part of `grads` (checked lengths).
    fn sgd_tensors(&self, params: &mut ParamsMut<'_, f32>, grads: &[f32], lr: f32) {
        let mut off = 0;
        for p in params.tensors_mut() {
            let len = p.len();
            self.sgd_raw(p, &grads[off..][..len], lr);
            off += len;
        }
    }

    /// PyTorch's `clip_grad_norm_` over the whole gradient: `total = sqrt(sum g^2)` over every
    /// element, `coef = max_norm / (total + 1e-6)`; if `coef < 1`, every `g *= coef`. Returns
    /// `total`, the norm before clipping. The same bits for the same input on a given path (the
    /// sum is [`Kernels::sum_squares`]). A non-finite `total` (a NaN or infinite gradient, or
    /// a sum of squares that overflows f32) is returned with the gradient left unchanged, for
    /// the caller's finiteness check to refuse. Errors: `max_norm` not finite or <= 0.
    pub fn clip_grad_norm(&self, grads: &mut [f32], max_norm: f32) -> Result<f32, Error> {
        if !(max_norm.is_finite() && max_norm > 0.0) {
            return Err(Error::InvalidArgument(
                "max_norm of gradient clipping: must be finite and > 0",
            ));
        }
        let total = sqrt_f32(self.sum_squares_raw(grads));
        let coef = max_norm / (total + 1e-6);
        if total.is_finite() && coef < 1.0 {
            self.scale_raw(grads, coef);
        }
        Ok(total)
    }
}
