//! The fused path (Exercises 2-4) against the atomic one, the in-place step against
//! backward-then-update, and learning on one batch.

// `!(x <= tol)` on purpose: it also fails on NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod common;

use common::{convert, notebook_params, random_batch, with_big_stack};
use makemore_core::atomic::{AtomicGrads, AtomicTape};
use makemore_core::gradcheck::{max_abs, table, TableStorage};
use makemore_core::train::{
    backward, forward, Activations, ActsMut, InPlaceTrainState, TrainState,
};
use makemore_core::{Dims, Error, Params, ParamsMut};
use proptest::prelude::*;

/// Largest |a - b| over two slices of the same length; NaN if any difference is NaN (f64::max
/// would drop it, and a NaN gradient would pass a bound).
fn maxdiff<A: makemore_core::Float, B: makemore_core::Float>(a: &[A], b: &[B]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).abs())
        .fold(0.0, |w, d| if d.is_nan() || d > w { d } else { w })
}

/// Fused f64 against atomic f64: loss, probs and every gradient the fused path forms, <= 1e-12;
/// the gradients that pass back through batchnorm (dhprebn, dembcat, C, W1, b1) within
/// 1e-12 * max(1, bnvar_inv): their rounding is scaled by `bnvar_inv`, which a batch of two
/// nearly equal rows makes large (132.8 for a small batch that gave 1.4e-12 on W1).
fn fused_matches_atomic_f64<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    seed: u64,
) {
    let params = notebook_params::<f64, V, T, E, TE, H>(seed);
    let (xb, yb) = random_batch::<N, V, T>(seed);
    let mut tape = Box::new(AtomicTape::<f64, N, V, T, E, TE, H>::ZERO);
    let loss_atomic = tape.forward(&params, &xb, &yb).unwrap();
    let mut grads = Box::new(AtomicGrads::<f64, N, V, T, E, TE, H>::ZERO);
    grads.backward(&tape, &params, &xb, &yb).unwrap();

    let mut acts = Box::new(Activations::<f64, N, V, T, E, TE, H>::ZERO);
    let mut fused = Box::new(Params::<f64, V, T, E, TE, H>::ZERO);
    let (x, y) = (xb.as_flattened(), &yb[..]);
    let loss = forward(params.view(), &mut acts.view_mut(), x, y).unwrap();
    let scale = acts.bnvar_inv.iter().fold(1.0f64, |m, v| m.max(*v));
    let below_batchnorm = ["dhprebn", "dembcat", "C", "W1", "b1"];
    let mut report = vec![("loss", (loss - loss_atomic).abs())];
    report.push((
        "probs",
        maxdiff(acts.probs.as_flattened(), tape.probs.as_flattened()),
    ));
    report.push(("h", maxdiff(acts.h.as_flattened(), tape.h.as_flattened())));
    backward(
        params.view(),
        &mut fused.view_mut(),
        &mut acts.view_mut(),
        x,
        y,
    )
    .unwrap();
    report.push((
        "dlogits",
        maxdiff(acts.probs.as_flattened(), grads.dlogits.as_flattened()),
    ));
    report.push((
        "dhprebn",
        maxdiff(acts.h.as_flattened(), grads.dhprebn.as_flattened()),
    ));
    report.push((
        "dembcat",
        maxdiff(acts.dembcat.as_flattened(), grads.dembcat.as_flattened()),
    ));
    for ((name, f), a) in makemore_core::PARAM_NAMES
        .iter()
        .zip(fused.view().tensors())
        .zip(grads.dparams.view().tensors())
    {
        report.push((name, maxdiff(f, a)));
    }
    let tol = |name: &str| {
        if below_batchnorm.contains(&name) {
            1e-12 * scale
        } else {
            1e-12
        }
    };
    let bad: Vec<_> = report.iter().filter(|(n, d)| !(*d <= tol(n))).collect();
    assert!(
        bad.is_empty(),
        "fused vs atomic (f64) differ by more than 1e-12 (x {scale} below batchnorm): {bad:?}"
    );
}

/// The seed CI drew on 2026-12-03: a batch of two rows with bnvar_inv 132.8, where W1's two
/// gradients differed by 1.4e-12 (rounding, scaled by bnvar_inv).
#[test]
fn fused_matches_atomic_in_f64_on_an_ill_conditioned_batch() {
    fused_matches_atomic_f64::<2, 2, 1, 1, 1, 1>(2_395_666_082_219_849_664);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 1 } else { 16 }, ..ProptestConfig::default() })]
    #[test]
    fn fused_matches_atomic_in_f64_small(seed in any::<u64>()) {
        fused_matches_atomic_f64::<2, 2, 1, 1, 1, 1>(seed);
        fused_matches_atomic_f64::<5, 7, 2, 3, 6, 4>(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]
    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; the smaller shapes run")]
    fn fused_matches_atomic_in_f64_exercise_sizes(seed in any::<u64>()) {
        with_big_stack(move || {
            fused_matches_atomic_f64::<32, 27, 3, 10, 30, 64>(seed);
            fused_matches_atomic_f64::<32, 27, 3, 10, 30, 200>(seed);
        });
    }
}

/// The notebook's table for its 26 tensors in f32 at the Exercise-1 configuration; every row
/// must be approximate (`torch.allclose`). Printed with `--nocapture`.
#[test]
fn notebook_table_f32_all_rows_approximate() {
    with_big_stack(|| {
        let params = notebook_params::<f64, 27, 3, 10, 30, 64>(2147483647);
        let (xb, yb) = random_batch::<32, 27, 3>(2147483647);
        let mut storage = Box::new(TableStorage::<32, 27, 3, 10, 30, 64>::ZERO);
        let rows = table(&params, &xb, &yb, &mut storage).unwrap();
        println!("{:15} | atomic f32 vs f64: approximate, maxdiff | fused f32 vs atomic f32: exact, approximate, maxdiff", "tensor");
        for r in &rows {
            let fused = match r.fused_vs_atomic_f32 {
                Some(c) => format!("{:5} | {:5} | {:e}", c.exact, c.approximate, c.maxdiff),
                None => "-".to_string(),
            };
            println!(
                "{:15} | {:5} | {:e} | {fused}",
                r.name, r.atomic_f32_vs_f64.approximate, r.atomic_f32_vs_f64.maxdiff
            );
        }
        let bad: Vec<_> = rows.iter().filter(|r| !r.ok()).map(|r| r.name).collect();
        assert!(bad.is_empty(), "rows not approximate: {bad:?}");
        assert_eq!(
            rows.iter()
                .filter(|r| r.fused_vs_atomic_f32.is_some())
                .count(),
            11
        );
    });
}

/// f32 fused against f64 atomic on the same inputs: loss within 1e-5 relative, each gradient
/// within `GRAD_TOL` of its largest element (the issue asks 1e-4; 1e-5 holds).
const GRAD_TOL: f64 = 1e-5;

#[test]
#[cfg_attr(miri, ignore = "8 models of the Exercise-4 size: too slow under Miri")]
fn fused_f32_close_to_atomic_f64() {
    with_big_stack(|| {
        for seed in 0..8 {
            let params = notebook_params::<f64, 27, 3, 10, 30, 200>(seed);
            let p32 = convert::<f64, f32, 27, 3, 10, 30, 200>(&params);
            let (xb, yb) = random_batch::<32, 27, 3>(seed);
            let mut tape = Box::new(AtomicTape::<f64, 32, 27, 3, 10, 30, 200>::ZERO);
            let loss64 = tape.forward(&params, &xb, &yb).unwrap();
            let mut g64 = Box::new(AtomicGrads::<f64, 32, 27, 3, 10, 30, 200>::ZERO);
            g64.backward(&tape, &params, &xb, &yb).unwrap();
            let mut acts = Box::new(Activations::<f32, 32, 27, 3, 10, 30, 200>::ZERO);
            let mut g32 = Box::new(Params::<f32, 27, 3, 10, 30, 200>::ZERO);
            let (x, y) = (xb.as_flattened(), &yb[..]);
            let loss32 = forward(p32.view(), &mut acts.view_mut(), x, y).unwrap();
            assert!(
                ((loss32 as f64 - loss64) / loss64).abs() <= 1e-5,
                "loss {loss32} vs {loss64}"
            );
            backward(p32.view(), &mut g32.view_mut(), &mut acts.view_mut(), x, y).unwrap();
            for ((name, a), b) in makemore_core::PARAM_NAMES
                .iter()
                .zip(g32.view().tensors())
                .zip(g64.dparams.view().tensors())
            {
                // db1 is zero in exact arithmetic: compare it at the scale of dhprebn, its summand.
                let scale = if *name == "b1" {
                    max_abs(g64.dhprebn.as_flattened())
                } else {
                    max_abs(b)
                };
                let rel = maxdiff(a, b) / scale;
                assert!(
                    rel <= GRAD_TOL,
                    "d{name}: max diff {rel:e} of its largest element {scale:e}"
                );
            }
        }
    });
}

/// The in-place step (no gradient buffer) and backward-then-update give the same parameters,
/// bit for bit, after `steps` steps on varying batches.
fn in_place_equals_backward_then_update<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    steps: u64,
) {
    let p = notebook_params::<f32, V, T, E, TE, H>(42);
    let mut a = Box::new(TrainState::<f32, N, V, T, E, TE, H>::ZERO);
    let mut b = Box::new(InPlaceTrainState::<f32, N, V, T, E, TE, H>::ZERO);
    a.params = (*p).clone();
    b.params = (*p).clone();
    for step in 0..steps {
        let (xb, yb) = random_batch::<N, V, T>(step);
        let la = a.step(xb.as_flattened(), &yb, 0.1).unwrap();
        let lb = b.step(xb.as_flattened(), &yb, 0.1).unwrap();
        assert_eq!(la.to_bits(), lb.to_bits(), "loss differs at step {step}");
    }
    for ((name, x), y) in makemore_core::PARAM_NAMES
        .iter()
        .zip(a.params.view().tensors())
        .zip(b.params.view().tensors())
    {
        let same = x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs after {steps} steps");
    }
    // and the parameters did move
    assert!(maxdiff(a.params.view().tensors()[1], p.view().tensors()[1]) > 1e-3);
}

#[test]
fn in_place_step_equals_backward_then_update() {
    with_big_stack(|| {
        if cfg!(miri) {
            // Exercise-4 arrays take hours under Miri; names.txt's vocabulary at a small width.
            in_place_equals_backward_then_update::<8, 27, 3, 4, 12, 16>(3);
        } else {
            in_place_equals_backward_then_update::<32, 27, 3, 10, 30, 200>(100);
        }
    });
}

/// The whole training state is a `static`: const-constructed, no heap.
static OVERFIT: std::sync::Mutex<InPlaceTrainState<f32, 32, 27, 3, 10, 30, 64>> =
    std::sync::Mutex::new(InPlaceTrainState::ZERO);

/// Learning works: the Exercise-1 model at the notebook's init, 1000 SGD steps at lr 0.1 on one
/// fixed batch of 32, drives that batch's loss below 0.5.
#[test]
#[cfg_attr(miri, ignore = "1000 training steps: too slow under Miri")]
fn overfits_one_batch() {
    let mut s = OVERFIT.lock().unwrap();
    s.params = *notebook_params::<f32, 27, 3, 10, 30, 64>(2147483647);
    let (xb, yb) = random_batch::<32, 27, 3>(1);
    let first = s.step(xb.as_flattened(), &yb, 0.1).unwrap();
    let mut last = first;
    for _ in 1..1000 {
        last = s.step(xb.as_flattened(), &yb, 0.1).unwrap();
    }
    println!("loss {first} -> {last}");
    assert!(first > 3.0 && last < 0.5, "loss {first} -> {last}");
}

#[test]
fn bad_inputs_give_typed_errors() {
    let dims = Dims::EXERCISE1;
    let mut flat = vec![0.0f32; dims.num_params()];
    let params = ParamsMut::from_flat(dims, &mut flat).unwrap();
    let mut buf = vec![0.0f32; ActsMut::<f32>::flat_len(&dims, 4)];
    let mut acts = ActsMut::from_flat(dims, 4, &mut buf).unwrap();
    let x = [1u8; 12];
    let y = [2u8; 4];
    assert!(forward(params.as_ref(), &mut acts, &x, &y).is_ok());
    let mut bad_x = x;
    bad_x[7] = 27;
    assert_eq!(
        forward(params.as_ref(), &mut acts, &bad_x, &y),
        Err(Error::TokenOutOfRange {
            index: 7,
            token: 27,
            vocab: 27
        })
    );
    assert_eq!(
        forward(params.as_ref(), &mut acts, &x[..9], &y),
        Err(Error::LengthMismatch {
            what: "Xb",
            expected: 12,
            got: 9
        })
    );
    let mut one = vec![0.0f32; ActsMut::<f32>::flat_len(&dims, 1)];
    assert_eq!(
        ActsMut::from_flat(dims, 1, &mut one).err(),
        Some(Error::BatchTooSmall { n: 1 })
    );
    assert!(matches!(
        ActsMut::from_flat(dims, 4, &mut one),
        Err(Error::LengthMismatch { .. })
    ));
    let mut short = vec![0.0f32; 10];
    assert!(matches!(
        ParamsMut::from_flat(dims, &mut short),
        Err(Error::LengthMismatch { .. })
    ));
    let zero = Dims { hidden: 0, ..dims };
    assert_eq!(
        ParamsMut::from_flat(zero, &mut short).err(),
        Some(Error::InvalidDims)
    );
    // acts of other dims
    let other = Dims { hidden: 16, ..dims };
    let mut buf2 = vec![0.0f32; ActsMut::<f32>::flat_len(&other, 4)];
    let mut acts2 = ActsMut::from_flat(other, 4, &mut buf2).unwrap();
    assert_eq!(
        forward(params.as_ref(), &mut acts2, &x, &y),
        Err(Error::DimsMismatch)
    );
    // the atomic path checks too
    let p = notebook_params::<f32, 27, 3, 10, 30, 64>(0);
    let mut tape = Box::new(AtomicTape::<f32, 4, 27, 3, 10, 30, 64>::ZERO);
    let mut xb = [[1u8; 3]; 4];
    xb[2][1] = 200;
    assert_eq!(
        tape.forward(&p, &xb, &[0; 4]),
        Err(Error::TokenOutOfRange {
            index: 7,
            token: 200,
            vocab: 27
        })
    );
}
