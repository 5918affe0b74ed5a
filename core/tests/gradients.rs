//! Every gradient of the atomic path (Exercise 1) against central finite differences of the loss
//! in f64, for several shapes from tiny to the Exercise-4 size; then the fused path against the
//! atomic one.
//!
//! Error measure: `|g - fd| / max(|g|, |fd|, 1e-4)`, required <= 1e-6. The floor of 1e-4 turns
//! the test absolute (1e-10) for gradients that are zero up to rounding: dlogit_maxes and db1 are
//! ~1e-17 (softmax is shift invariant; batchnorm removes b1). The finite difference is Ridders'
//! extrapolation of central differences (see [`ridders`]), which picks its own step: one fixed
//! step cannot serve both batchnorm over 2 rows (curvature at the scale of the row difference)
//! and ln(probs).

// `!(x <= tol)` on purpose: it also fails on NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod common;

use common::{notebook_params, quick, random_batch, with_big_stack};
use makemore_core::atomic::{AtomicGrads, AtomicTape};
use makemore_core::gradcheck::{finite_difference_check, ridders, rows, start_step, FD_FLOOR};
use makemore_core::rng::{Rng, SplitMix64};
use proptest::prelude::*;

const REL_TOL: f64 = 1e-6;

type Tape<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> = AtomicTape<f64, N, V, T, E, TE, H>;
type Grads<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> = AtomicGrads<f64, N, V, T, E, TE, H>;

/// Checks `max_per_tensor` coordinates of every tensor (all of them if the tensor is smaller),
/// chosen from `seed`. Returns one failure message per tensor that fails; empty if all pass.
fn check_against_finite_differences<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    seed: u64,
    max_per_tensor: usize,
) -> Vec<String> {
    let mut params = notebook_params::<f64, V, T, E, TE, H>(seed);
    let (xb, yb) = random_batch::<N, V, T>(seed);
    let mut tape = Box::new(Tape::<N, V, T, E, TE, H>::ZERO);
    tape.forward(&params, &xb, &yb).unwrap();
    let mut grads = Box::new(Grads::<N, V, T, E, TE, H>::ZERO);
    grads.backward(&tape, &params, &xb, &yb).unwrap();
    let reference = tape.clone();

    let mut failures = Vec::new();
    let mut pick = SplitMix64(seed ^ 0xfd);
    for row in rows::<f64, N, V, T, E, TE, H>() {
        let len = (row.grad)(&grads).len();
        let idxs: Vec<usize> = if len <= max_per_tensor {
            (0..len).collect()
        } else {
            (0..max_per_tensor)
                .map(|_| (pick.next_u64() % len as u64) as usize)
                .collect()
        };
        let worst = finite_difference_check(
            &row,
            idxs,
            &mut params,
            &xb,
            &yb,
            &reference,
            &grads,
            &mut tape,
        )
        .unwrap();
        let worst = (
            worst.rel_err,
            worst.index,
            worst.analytic,
            worst.finite_difference,
        );
        if !(worst.0 <= REL_TOL) {
            failures.push(format!(
                "{:15} worst rel err {:.3e} at [{}]: analytic {:e}, finite difference {:e}",
                row.name, worst.0, worst.1, worst.2, worst.3
            ));
        }
    }
    failures
}

fn assert_ok(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "gradients disagree with finite differences:\n{}",
        failures.join("\n")
    );
}

/// Coordinates checked per tensor at the small shapes: all of them, or 2 under Miri (where one
/// forward pass of Ridders' extrapolation takes milliseconds and every tensor takes minutes).
const SMALL_COORDS: usize = if cfg!(miri) { 2 } else { usize::MAX };

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 1 } else { 16 }, ..ProptestConfig::default() })]

    #[test]
    fn atomic_gradients_match_finite_differences_tiny(seed in any::<u64>()) {
        // N=2 is the smallest batch batchnorm's n-1 allows; one hidden unit, one embedding dim.
        assert_ok(check_against_finite_differences::<2, 2, 1, 1, 1, 1>(seed, SMALL_COORDS));
    }

    #[test]
    fn atomic_gradients_match_finite_differences_small(seed in any::<u64>()) {
        assert_ok(check_against_finite_differences::<5, 7, 2, 3, 6, 4>(seed, SMALL_COORDS));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if quick() { 1 } else { 4 }, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; the smaller shapes run")]
    fn atomic_gradients_match_finite_differences_names_shape(seed in any::<u64>()) {
        // names.txt's vocabulary and context, a narrow hidden layer: every coordinate (16 of
        // each tensor at the quick size).
        let coords = if quick() { 16 } else { usize::MAX };
        assert_ok(with_big_stack(move || check_against_finite_differences::<8, 27, 3, 10, 30, 16>(seed, coords)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if quick() { 1 } else { 2 }, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; the smaller shapes run")]
    fn atomic_gradients_match_finite_differences_exercise4(seed in any::<u64>()) {
        // The Exercise-4 model and batch: 24 random coordinates of each of the 26 tensors (3 at
        // the quick size).
        let coords = if quick() { 3 } else { 24 };
        assert_ok(with_big_stack(move || check_against_finite_differences::<32, 27, 3, 10, 30, 200>(seed, coords)));
    }
}

/// The check itself can fail: a gradient with a planted error is caught.
#[test]
fn finite_difference_check_catches_a_wrong_gradient() {
    let seed = 7;
    let params = notebook_params::<f64, 7, 2, 3, 6, 4>(seed);
    let (xb, yb) = random_batch::<5, 7, 2>(seed);
    let mut tape = Box::new(Tape::<5, 7, 2, 3, 6, 4>::ZERO);
    tape.forward(&params, &xb, &yb).unwrap();
    let mut grads = Box::new(Grads::<5, 7, 2, 3, 6, 4>::ZERO);
    grads.backward(&tape, &params, &xb, &yb).unwrap();
    // d(loss)/d(b2[0]) by finite differences, against the analytic value and a 1e-5-off one.
    let mut p = params.clone();
    let mut f = |d: f64| {
        p.b2[0] = params.b2[0] + d;
        tape.forward(&p, &xb, &yb).unwrap()
    };
    let fd = ridders(&mut f, start_step("b2", params.b2[0]));
    let rel = |g: f64| (g - fd).abs() / g.abs().max(fd.abs()).max(FD_FLOOR);
    assert!(rel(grads.dparams.b2[0]) <= REL_TOL);
    assert!(rel(grads.dparams.b2[0] * (1.0 + 1e-5)) > REL_TOL);
}
