//! The optimisers and schedules of `makemore_core::optim`: the learning-rate schedules (the
//! notebook's step decay to the bit, cosine with warm-up against an f64 reference with std's
//! `cos`), AdamW against an f64 reference of PyTorch's formula and through its state,
//! `Kernels::update` with SGD against the training step's SGD, and `clip_grad_norm` against
//! PyTorch's `clip_grad_norm_`. Every kernel test runs on scalar and on every vector path of
//! this CPU (with `MAKEMORE_ISA` set: scalar and that path, failing if the CPU lacks it).

use makemore_core::model::Dims;
use makemore_core::simd::{Isa, Kernels};
use makemore_core::train;
use makemore_core::{AdamW, Error, LrSchedule, Optimizer, ParamsMut, ParamsRef};

/// The unit roundoff of f32.
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Scalar and the vector paths under test (all this CPU runs, or the one `MAKEMORE_ISA`
/// forces).
fn paths() -> Vec<Kernels> {
    let mut out = vec![Kernels::scalar()];
    match Isa::from_env().unwrap_or_else(|e| panic!("{e}")) {
        None => out.extend(
            Isa::ALL
                .into_iter()
                .filter(|isa| *isa != Isa::Scalar && isa.is_available())
                .map(|isa| Kernels::new(isa).unwrap()),
        ),
        Some(Isa::Scalar) => {}
        Some(isa) => out.push(
            Kernels::new(isa)
                .unwrap_or_else(|e| panic!("MAKEMORE_ISA={isa} is forced but unavailable: {e}")),
        ),
    }
    out
}

/// Distance in representable f32 between two finite values of the same sign.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

/// A small deterministic generator: uniform in [-1, 1).
struct Gen(u64);
impl Gen {
    fn f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

// ---------------------------------------------------------------- schedules

/// The step decay gives exactly the trainer's `if s < decay { lr } else { lr / 10.0 }`, on both
/// sides of the boundary and at the extremes.
#[test]
fn step_decay_is_the_notebooks_expression_to_the_bit() {
    let decay = 100_000u64;
    let lrs = [0.1f32, 0.37, 1.0, 3e-4, 0.7, 1e-30];
    // the test can tell `lr / 10` from the tempting `lr * 0.1`
    assert!(lrs
        .iter()
        .any(|&lr| (lr / 10.0).to_bits() != (lr * 0.1).to_bits()));
    for lr in lrs {
        let schedule = LrSchedule::Step {
            lr,
            decay_step: decay,
        };
        let notebook = |s: u64| if s < decay { lr } else { lr / 10.0 };
        for s in (0..10).chain(decay - 10..decay + 10).chain([u64::MAX]) {
            assert_eq!(
                schedule.lr_at(s).to_bits(),
                notebook(s).to_bits(),
                "lr {lr} at step {s}"
            );
        }
        assert_eq!(schedule.lr_at(decay - 1).to_bits(), lr.to_bits());
        assert_eq!(schedule.lr_at(decay).to_bits(), (lr / 10.0).to_bits());
    }
    // decay at 0: every step decayed
    let s = LrSchedule::Step {
        lr: 0.1,
        decay_step: 0,
    };
    assert_eq!(s.lr_at(0).to_bits(), (0.1f32 / 10.0).to_bits());
    assert_eq!(s.name(), "step");
}

/// The cosine schedule, in f64 with std's `cos`: nanoGPT's / llm.c's `get_lr`.
fn cosine_reference(lr: f32, warmup: u64, total: u64, min_lr: f32, step: u64) -> f64 {
    let (lr, min_lr) = (lr as f64, min_lr as f64);
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let r = if total > warmup {
        ((step - warmup) as f64 / (total - warmup) as f64).min(1.0)
    } else {
        1.0
    };
    min_lr + 0.5 * (1.0 + (std::f64::consts::PI * r).cos()) * (lr - min_lr)
}

/// Warm-up, then cosine decay: within 1 ulp of the f64 reference at every step; exact `lr`
/// at the end of the warm-up and exact `min_lr` from `total` on; rising in the warm-up and
/// never rising after.
#[test]
fn cosine_schedule_warms_up_then_decays_to_min_lr() {
    for (lr, warmup, total, min_lr) in [
        (6e-4f32, 10u64, 110u64, 6e-5f32),
        (0.1, 0, 200_000, 0.0),
        (1.0, 1000, 5000, 0.1),
        (0.3, 5, 5, 0.03),   // total = warmup: min_lr right after the warm-up
        (0.3, 50, 20, 0.03), // total < warmup
    ] {
        let s = LrSchedule::Cosine {
            lr,
            warmup,
            total,
            min_lr,
        };
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.name(), "cosine");
        let stride = (total.max(warmup) / 500).max(1);
        let mut prev = f32::INFINITY;
        let mut prev_warm = 0.0f32;
        for step in (0..total.max(warmup) + 20).step_by(stride as usize) {
            let got = s.lr_at(step);
            let want = cosine_reference(lr, warmup, total, min_lr, step) as f32;
            assert!(
                ulps(got, want) <= 1,
                "{s:?} at {step}: {got:e}, reference {want:e}"
            );
            if step < warmup {
                assert!(got > prev_warm, "{s:?}: warm-up not rising at {step}");
                prev_warm = got;
            } else {
                assert!(got <= prev, "{s:?}: rising at {step} after the warm-up");
                prev = got;
            }
        }
        if warmup > 0 {
            assert_eq!(s.lr_at(warmup - 1).to_bits(), lr.to_bits(), "{s:?}");
            assert_eq!(
                s.lr_at(0).to_bits(),
                (((lr as f64) / warmup as f64) as f32).to_bits(),
                "{s:?}: the first warm-up step is lr / warmup"
            );
        }
        if total > warmup {
            assert_eq!(s.lr_at(warmup).to_bits(), lr.to_bits(), "{s:?}");
            let mid = warmup + (total - warmup) / 2;
            if (total - warmup) % 2 == 0 {
                let want = ((lr as f64 + min_lr as f64) / 2.0) as f32;
                assert!(ulps(s.lr_at(mid), want) <= 1, "{s:?}: midpoint");
            }
        }
        for step in [total.max(warmup), total.max(warmup) + 1, u64::MAX] {
            assert_eq!(s.lr_at(step).to_bits(), min_lr.to_bits(), "{s:?} at {step}");
        }
    }
}

#[test]
fn schedules_refuse_rates_that_are_not_finite_positive() {
    let step = |lr| LrSchedule::Step { lr, decay_step: 1 };
    let cosine = |lr, min_lr| LrSchedule::Cosine {
        lr,
        warmup: 1,
        total: 10,
        min_lr,
    };
    for lr in [0.0, -0.1, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(step(lr).validate(), Err(Error::InvalidArgument(_))),
            "{lr}"
        );
        assert!(
            matches!(cosine(lr, 0.0).validate(), Err(Error::InvalidArgument(_))),
            "{lr}"
        );
    }
    for min_lr in [-1e-6, 0.2, f32::NAN, f32::INFINITY] {
        let e = cosine(0.1, min_lr).validate().unwrap_err();
        assert!(e.to_string().contains("minimum learning rate"), "{e}");
    }
    assert_eq!(step(0.1).validate(), Ok(()));
    assert_eq!(cosine(0.1, 0.1).validate(), Ok(()));
}

// ---------------------------------------------------------------- AdamW

/// The scalar `adamw` kernel against PyTorch's AdamW formula evaluated in f64 (from the same
/// f32 hyperparameters), over 8 updates with gradients of a fixed sign per element (so no sum
/// cancels), magnitudes from 0 and 1e-9 (where `eps` matters) to 3.
///
/// Bound, from one rounding per f32 operation (u = 2^-24) and the f32 coefficients' own
/// rounding: after update t, `|m - m64| <= 2 t u |m64|`, `|v - v64| <= 4 t u v64`, and
/// `|p - p64| <= sum over updates of 2 u (|p_before| + |p_after|) + (4 t u + 8 u) |step|`, with
/// `step = step_size m / (sqrt(v) / sqrt(1 - b2^t) + eps)` the f64 update.
#[test]
fn adamw_scalar_kernel_follows_pytorchs_formula_in_f64() {
    let opt = AdamW::MAKEMORE;
    let lr = 1e-2f32;
    let mut rng = Gen(7);
    let mags: Vec<f32> = [0.0f32, 1e-9, 1e-4, 1e-2, 0.5, 3.0]
        .into_iter()
        .chain((0..31).map(|_| rng.f32().abs() + 1e-3))
        .collect();
    let n = mags.len();
    let signs: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let mut p = rng.vec(n);
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    // the reference, in f64 throughout
    let mut p64: Vec<f64> = p.iter().map(|&x| x as f64).collect();
    let (mut m64, mut v64) = (vec![0.0f64; n], vec![0.0f64; n]);
    let mut bound_p = vec![0.0f64; n];
    let (b1, b2, eps, wd) = (
        opt.beta1 as f64,
        opt.beta2 as f64,
        opt.eps as f64,
        opt.weight_decay as f64,
    );
    let lr64 = lr as f64;
    for t in 1..=8u64 {
        let g: Vec<f32> = (0..n)
            .map(|i| signs[i] * mags[i] * (0.5 + 0.25 * t as f32))
            .collect();
        let c = opt.step(lr, t).unwrap();
        Kernels::scalar()
            .adamw(&mut p, &mut m, &mut v, &g, c)
            .unwrap();
        let tf = t as f64;
        let step_size = lr64 / (1.0 - b1.powi(t as i32));
        let sqrt_bc2 = (1.0 - b2.powi(t as i32)).sqrt();
        for i in 0..n {
            let gi = g[i] as f64;
            let before = p64[i];
            // torch.optim.AdamW, one parameter:
            //   param.mul_(1 - lr * weight_decay)
            //   exp_avg = beta1 * exp_avg + (1 - beta1) * grad
            //   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
            //   denom = exp_avg_sq.sqrt() / sqrt(1 - beta2**t) + eps
            //   param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**t))
            p64[i] *= 1.0 - lr64 * wd;
            m64[i] = b1 * m64[i] + (1.0 - b1) * gi;
            v64[i] = b2 * v64[i] + (1.0 - b2) * gi * gi;
            let step = step_size * m64[i] / (v64[i].sqrt() / sqrt_bc2 + eps);
            p64[i] -= step;
            bound_p[i] +=
                2.0 * U * (before.abs() + p64[i].abs()) + (4.0 * tf + 8.0) * U * step.abs();
            let (em, ev, ep) = (
                (m[i] as f64 - m64[i]).abs(),
                (v[i] as f64 - v64[i]).abs(),
                (p[i] as f64 - p64[i]).abs(),
            );
            assert!(
                em <= 2.0 * tf * U * m64[i].abs() + 1e-45,
                "m[{i}] after {t}: {} vs {}: error {em:e}",
                m[i],
                m64[i]
            );
            assert!(
                ev <= 4.0 * tf * U * v64[i] + 1e-45,
                "v[{i}] after {t}: {} vs {}: error {ev:e}",
                v[i],
                v64[i]
            );
            assert!(
                ep <= bound_p[i],
                "p[{i}] after {t}: {} vs {}: error {ep:e} > bound {:e}",
                p[i],
                p64[i],
                bound_p[i]
            );
        }
    }
    // something happened: every parameter with a gradient moved by about lr per update
    let moved = (0..n).filter(|&i| mags[i] > 1e-6).count();
    assert!(moved > 30);
}

/// A small model for the update tests (V=5, T=2, E=3, H=4: 15 + 24 + 4 + 20 + 5 + 8 = 76
/// parameters, every tensor's length not a multiple of the lane counts).
const SMALL: Dims = Dims {
    vocab: 5,
    context: 2,
    embedding: 3,
    hidden: 4,
};

/// The AdamW state through `Kernels::update`: after update 1, `m = (1 - b1) g` and
/// `v = (1 - b2) g g` exactly, and each parameter moved by `lr` against its gradient's sign
/// (Adam's first step is `lr * g / (|g| + eps)`) after the decay `p *= 1 - lr wd`; after update 2
/// with a zero gradient the moments only decay (`m = b1 m`, `v = b2 v`, exactly) and the
/// parameters keep moving the same way. Every path gives the scalar path's bits.
#[test]
fn adamw_update_evolves_m_and_v_and_moves_each_parameter_by_lr() {
    let opt = Optimizer::AdamW(AdamW::MAKEMORE);
    let a = AdamW::MAKEMORE;
    let n = SMALL.num_params();
    assert_eq!(opt.state_len(n), 2 * n);
    assert_eq!(Optimizer::Sgd.state_len(n), 0);
    assert_eq!(opt.name(), "adamw");
    let mut rng = Gen(11);
    let p0 = rng.vec(n);
    let g: Vec<f32> = rng
        .vec(n)
        .iter()
        .map(|x| x + 0.01f32.copysign(*x))
        .collect();
    let zero = vec![0.0f32; n];
    let lr = 0.05f32;
    let mut want: Option<(Vec<f32>, Vec<f32>)> = None;
    for k in paths() {
        let isa = k.isa();
        let (mut p, mut state) = (p0.clone(), vec![0.0f32; 2 * n]);
        let mut params = ParamsMut::from_flat(SMALL, &mut p).unwrap();
        k.update(&opt, &mut params, &g, &mut state, 1, lr).unwrap();
        let (m, v) = state.split_at(n);
        for i in 0..n {
            assert_eq!(
                m[i].to_bits(),
                (a.one_minus_beta1() * g[i]).to_bits(),
                "m[{i}] on {isa}"
            );
            let want_v = a.one_minus_beta2() * g[i] * g[i];
            assert_eq!(v[i].to_bits(), want_v.to_bits(), "v[{i}] on {isa}");
            let decayed = p0[i] as f64 * (1.0 - lr as f64 * a.weight_decay as f64);
            let want_p = decayed - lr as f64 * (g[i] as f64).signum();
            let err = (p[i] as f64 - want_p).abs();
            // the f32 roundings (a few u of |p| and of lr) and eps / |g| of lr
            let bound =
                4.0 * U * (decayed.abs() + lr as f64) + lr as f64 * 1e-8 / (g[i].abs() as f64);
            assert!(
                err <= bound,
                "p[{i}] on {isa}: {} vs {want_p}: error {err:e}",
                p[i]
            );
        }
        let (m1, v1, p1) = (m.to_vec(), v.to_vec(), p.clone());
        let mut params = ParamsMut::from_flat(SMALL, &mut p).unwrap();
        k.update(&opt, &mut params, &zero, &mut state, 2, lr)
            .unwrap();
        let (m, v) = state.split_at(n);
        for i in 0..n {
            assert_eq!(
                m[i].to_bits(),
                (a.beta1 * m1[i]).to_bits(),
                "m[{i}] on {isa}"
            );
            assert_eq!(
                v[i].to_bits(),
                (a.beta2 * v1[i]).to_bits(),
                "v[{i}] on {isa}"
            );
            // momentum: still against the first gradient's sign, by less than lr (plus decay)
            let moved = p[i] - p1[i] * (1.0 - lr * a.weight_decay);
            assert!(
                moved * g[i] < 0.0 && moved.abs() < 1.01 * lr,
                "p[{i}] on {isa} moved {moved} after a zero gradient"
            );
        }
        match &want {
            None => want = Some((p, state)),
            Some((wp, ws)) => {
                assert!(
                    same_bits(&p, wp),
                    "parameters on {isa} differ from scalar's"
                );
                assert!(
                    same_bits(&state, ws),
                    "state on {isa} differs from scalar's"
                );
            }
        }
    }
}

/// Helpers for the exact expectations above: the coefficients the update uses.
trait Coefficients {
    fn one_minus_beta1(&self) -> f32;
    fn one_minus_beta2(&self) -> f32;
}
impl Coefficients for AdamW {
    fn one_minus_beta1(&self) -> f32 {
        self.step(0.1, 1).unwrap().one_minus_beta1
    }
    fn one_minus_beta2(&self) -> f32 {
        self.step(0.1, 1).unwrap().one_minus_beta2
    }
}

/// `update` refuses, writing nothing: t = 0, a gradient or state of the wrong length (SGD
/// with a state, AdamW without one), a learning rate that is NaN, infinite or negative, AdamW
/// hyperparameters out of range.
#[test]
fn update_refuses_bad_arguments_and_writes_nothing() {
    let n = SMALL.num_params();
    let adamw = Optimizer::AdamW(AdamW::MAKEMORE);
    let bad_beta = Optimizer::AdamW(AdamW {
        beta1: 1.0,
        ..AdamW::MAKEMORE
    });
    let bad_eps = Optimizer::AdamW(AdamW {
        eps: 0.0,
        ..AdamW::MAKEMORE
    });
    let g = vec![0.5f32; n];
    for k in paths() {
        let cases: [(Optimizer, usize, usize, u64, f32, &str); 10] = [
            (adamw, n, 2 * n, 0, 0.1, "t"),
            (Optimizer::Sgd, n, 0, 0, 0.1, "t"),
            (adamw, n - 1, 2 * n, 1, 0.1, "grads"),
            (adamw, n, n, 1, 0.1, "state"),
            (Optimizer::Sgd, n, 2 * n, 1, 0.1, "state"),
            (adamw, n, 2 * n, 1, f32::NAN, "learning rate"),
            (Optimizer::Sgd, n, 0, 1, -0.1, "learning rate"),
            (adamw, n, 2 * n, 1, f32::INFINITY, "learning rate"),
            (bad_beta, n, 2 * n, 1, 0.1, "beta1"),
            (bad_eps, n, 2 * n, 1, 0.1, "eps"),
        ];
        for (opt, glen, slen, t, lr, names) in cases {
            let mut p = vec![1.0f32; n];
            let mut state = vec![0.25f32; slen];
            let mut params = ParamsMut::from_flat(SMALL, &mut p).unwrap();
            let e = k
                .update(&opt, &mut params, &g[..glen], &mut state, t, lr)
                .expect_err(names);
            assert!(e.to_string().contains(names), "{}: {e}", k.isa());
            assert!(p.iter().all(|&x| x == 1.0), "{names}: parameters written");
            assert!(state.iter().all(|&x| x == 0.25), "{names}: state written");
        }
    }
    assert_eq!(
        AdamW::MAKEMORE.step(0.1, 0).unwrap_err(),
        Error::InvalidArgument("update number t: 1-based (t = step + 1), must be >= 1")
    );
}

/// makemore.py's optimiser: `torch.optim.AdamW(..., weight_decay=0.01, betas=(0.9, 0.99),
/// eps=1e-8)`.
#[test]
fn adamw_makemore_is_makemore_pys_defaults() {
    let a = AdamW::MAKEMORE;
    assert_eq!(
        (a.beta1, a.beta2, a.eps, a.weight_decay),
        (0.9, 0.99, 1e-8, 0.01)
    );
    assert_eq!(a.validate(), Ok(()));
    // the coefficients of update t, from f64: bias corrections 1 - b^t
    let c = a.step(5e-4, 3).unwrap();
    let (b1, b2) = (0.9f32 as f64, 0.99f32 as f64);
    assert_eq!(c.step_size, (5e-4f32 as f64 / (1.0 - b1 * b1 * b1)) as f32);
    assert_eq!(c.sqrt_bc2, (1.0 - b2 * b2 * b2).sqrt() as f32);
    assert_eq!(c.decay, (1.0 - 5e-4f32 as f64 * 0.01f32 as f64) as f32);
}

// ---------------------------------------------------------------- SGD through update

/// `update` with SGD gives the training step's SGD to the bit: `train::sgd_update` (the
/// reference path) and the `sgd` kernel per tensor (the step's update), on every path.
#[test]
fn sgd_update_is_the_steps_sgd_to_the_bit() {
    for dims in [SMALL, Dims::EXERCISE1] {
        let n = dims.num_params();
        let mut rng = Gen(3);
        let (p0, g) = (rng.vec(n), rng.vec(n));
        for lr in [0.1f32, 0.01, 0.37] {
            let mut want = p0.clone();
            train::sgd_update(
                &mut ParamsMut::from_flat(dims, &mut want).unwrap(),
                ParamsRef::from_flat(dims, &g).unwrap(),
                lr,
            )
            .unwrap();
            assert!(!same_bits(&want, &p0), "the update changed nothing");
            for k in paths() {
                let mut p = p0.clone();
                let mut params = ParamsMut::from_flat(dims, &mut p).unwrap();
                k.update(&Optimizer::Sgd, &mut params, &g, &mut [], 1, lr)
                    .unwrap();
                assert!(
                    same_bits(&p, &want),
                    "update(Sgd) on {} vs sgd_update",
                    k.isa()
                );
                let mut q = p0.clone();
                let mut params = ParamsMut::from_flat(dims, &mut q).unwrap();
                let gv = ParamsRef::from_flat(dims, &g).unwrap();
                for (p, g) in params.tensors_mut().into_iter().zip(gv.tensors()) {
                    k.sgd(p, g, lr).unwrap();
                }
                assert!(
                    same_bits(&p, &q),
                    "update(Sgd) on {} vs sgd per tensor",
                    k.isa()
                );
                let mut r = p0.clone();
                let mut params = ParamsMut::from_flat(dims, &mut r).unwrap();
                k.update_sgd(&mut params, &g, 1, lr).unwrap();
                // the same errors as update, nothing written
                for (glen, t, lr) in [
                    (g.len() - 1, 1, lr),
                    (g.len(), 0, lr),
                    (g.len(), 1, f32::NAN),
                ] {
                    let want = k.update(&Optimizer::Sgd, &mut params, &g[..glen], &mut [], t, lr);
                    let got = k.update_sgd(&mut params, &g[..glen], t, lr);
                    assert_eq!(got, want);
                    assert!(got.is_err());
                }
                assert!(
                    same_bits(&p, &r),
                    "update_sgd on {} vs update(Sgd), then refused updates",
                    k.isa()
                );
            }
        }
    }
    assert_eq!(Optimizer::Sgd.name(), "sgd");
}

// ---------------------------------------------------------------- clip_grad_norm

/// `clip_grad_norm` as PyTorch's `clip_grad_norm_`: the norm before clipping (within the sum's
/// `n u` relative bound of the f64 norm), a no-op at or below `max_norm`, else every gradient
/// times `max_norm / (norm + 1e-6)`; the same bits on a second run; NaN or infinite gradients
/// give that norm and are left alone; a `max_norm` that is not finite and > 0 is refused.
#[test]
fn clip_grad_norm_is_pytorchs_clip_grad_norm() {
    let n = Dims::EXERCISE4.num_params();
    let mut rng = Gen(5);
    let g0: Vec<f32> = rng.vec(n).iter().map(|x| 0.01 * x).collect();
    let exact = g0.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    for k in paths() {
        let isa = k.isa();
        // below the limit: nothing changes, the norm is returned
        let mut g = g0.clone();
        let norm = k.clip_grad_norm(&mut g, 100.0).unwrap();
        let err = (norm as f64 - exact).abs();
        assert!(
            err <= (n as f64 / 2.0 + 1.0) * U * exact,
            "norm on {isa}: {norm} vs {exact}: error {err:e}"
        );
        assert!(same_bits(&g, &g0), "{isa}: clipped below the limit");
        assert_eq!(
            k.clip_grad_norm(&mut g, 100.0).unwrap().to_bits(),
            norm.to_bits()
        );
        // above: scaled by max_norm / (norm + 1e-6), the new norm max_norm
        let max_norm = norm / 4.0;
        let coef = max_norm / (norm + 1e-6);
        let clipped = k.clip_grad_norm(&mut g, max_norm).unwrap();
        assert_eq!(
            clipped.to_bits(),
            norm.to_bits(),
            "{isa}: returns the norm before"
        );
        for (i, (&got, &before)) in g.iter().zip(&g0).enumerate() {
            assert_eq!(got.to_bits(), (before * coef).to_bits(), "g[{i}] on {isa}");
        }
        let after = g.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        assert!(
            (after / max_norm as f64 - 1.0).abs() < 1e-5,
            "{isa}: norm after {after}"
        );
        // PyTorch: g = [3, 4], max_norm 1: total 5, g *= 1 / (5 + 1e-6)
        let mut small = [3.0f32, 4.0];
        assert_eq!(k.clip_grad_norm(&mut small, 1.0).unwrap(), 5.0);
        let c = 1.0f32 / (5.0 + 1e-6);
        assert_eq!(small, [3.0 * c, 4.0 * c], "{isa}");
        // zeros and empty: norm 0, nothing changes
        let mut zeros = vec![0.0f32; 37];
        assert_eq!(k.clip_grad_norm(&mut zeros, 1.0).unwrap(), 0.0);
        assert_eq!(k.clip_grad_norm(&mut [], 1.0).unwrap(), 0.0);
        // non-finite gradients: the norm says so, the gradient is left for the caller to refuse
        for (bad, want_nan) in [(f32::NAN, true), (f32::INFINITY, false), (1e30, false)] {
            let mut g = g0.clone();
            g[n / 2] = bad;
            let before = g.clone();
            let norm = k.clip_grad_norm(&mut g, 1.0).unwrap();
            assert!(
                if want_nan {
                    norm.is_nan()
                } else {
                    norm == f32::INFINITY
                },
                "{isa}: norm {norm} with {bad}"
            );
            assert!(
                same_bits(&g, &before),
                "{isa}: a non-finite norm changed the gradient"
            );
        }
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let mut g = g0.clone();
            let e = k.clip_grad_norm(&mut g, bad).unwrap_err();
            assert!(e.to_string().contains("max_norm"), "{e}");
            assert!(same_bits(&g, &g0));
        }
    }
}
