//! `Kernels::step_stats` (the part-3 statistics from the fused step's buffers) against the same
//! statistics computed directly, in f64, from the atomic path's tape and gradients on the same
//! parameters and batch: on every path this CPU has, at the notebook's initialisation and with a
//! batchnorm gain that saturates most of `h`.

mod common;

use common::{notebook_params, random_batch, with_big_stack};
use makemore_core::atomic::{AtomicGrads, AtomicTape};
use makemore_core::simd::{Isa, Kernels};
use makemore_core::stats::{Moments, SATURATED};
use makemore_core::step::{InTurn, Step};
use makemore_core::{Dims, Params, PARAM_NAMES};

const N: usize = 32;
const H: usize = 200;
type P = Params<f32, 27, 3, 10, 30, H>;

fn moments(x: impl Iterator<Item = f32> + Clone) -> Moments {
    let n = x.clone().count() as f64;
    let mean = x.clone().map(f64::from).sum::<f64>() / n;
    let m2: f64 = x.map(|v| (f64::from(v) - mean).powi(2)).sum();
    Moments {
        mean,
        std: (m2 / (n - 1.0)).sqrt(),
    }
}

/// `got` within `rel` of `want`'s std or mean (the mean; f32 sums) and relatively (the std).
fn close(what: &str, got: Moments, want: Moments, rel: f64) {
    assert!(
        (got.mean - want.mean).abs() <= rel * want.std.max(want.mean.abs()).max(1e-30)
            && (got.std - want.std).abs() <= rel * want.std,
        "{what}: {got:?}, directly {want:?}"
    );
}

/// Returns the tape's saturated share and dead units. `NB` rows: 32 (one shard), or from 128
/// on several shards, whose sums and per-unit counts the statistics combine.
fn check<const NB: usize>(seed: u64, gain: f32) -> (f64, usize) {
    let mut params: Box<P> = notebook_params(seed);
    {
        let mut v = params.view_mut();
        let [.., bngain, _] = v.tensors_mut();
        bngain.iter_mut().for_each(|g| *g *= gain);
    }
    let (xb, yb) = random_batch::<NB, 27, 3>(seed);
    let mut tape = Box::new(AtomicTape::<f32, NB, 27, 3, 10, 30, H>::ZERO);
    tape.forward(&params, &xb, &yb).unwrap();
    let mut grads = Box::new(AtomicGrads::<f32, NB, 27, 3, 10, 30, H>::ZERO);
    grads.backward(&tape, &params, &xb, &yb).unwrap();

    let flat = |a: &[[f32; H]; NB]| a.as_flattened().to_vec();
    let (hprebn, hpreact, h) = (flat(&tape.hprebn), flat(&tape.hpreact), flat(&tape.h));
    let saturated = h.iter().filter(|v| v.abs() > SATURATED).count();
    let dead = (0..H)
        .filter(|&j| (0..NB).all(|i| h[i * H + j].abs() > SATURATED))
        .count();
    let lr = 0.1f32;

    let dims = Dims::EXERCISE4;
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let k = Kernels::new(isa).unwrap();
        let mut scratch = vec![0f32; Step::flat_len(&dims, NB).unwrap()];
        let mut step = Step::from_flat(dims, NB, &mut scratch).unwrap();
        let shards = if NB >= 128 { NB.div_ceil(64) } else { 1 };
        assert_eq!(step.shards(), shards);
        let p = params.view();
        k.gradient(&InTurn, &p, &mut step, xb.as_flattened(), &yb)
            .unwrap();
        let st = k.step_stats(&p, &mut step, lr).unwrap();
        let a = st.activations;
        let what = |t: &str| format!("{t} on {isa} (seed {seed}, gain x{gain})");
        close(
            &what("hprebn"),
            a.hprebn,
            moments(hprebn.iter().copied()),
            1e-4,
        );
        close(
            &what("hpreact"),
            a.hpreact,
            moments(hpreact.iter().copied()),
            1e-4,
        );
        close(&what("h"), a.h, moments(h.iter().copied()), 1e-4);
        // h's last bits differ between the paths' tanh and the tape's: a value at the threshold
        // may fall either side
        let count = (NB * H) as f64;
        assert!(
            (a.saturated * count - saturated as f64).abs() <= 2.0,
            "{}: saturated {}, directly {saturated} of {count}",
            what("h"),
            a.saturated * count
        );
        assert_eq!(a.dead_units, dead, "{}", what("dead units"));
        // h itself, for its histogram: the fused step's h against the tape's
        let mut step_h = vec![f32::NAN; NB * H];
        k.step_h(&p, &mut step, &mut step_h).unwrap();
        let worst = step_h
            .iter()
            .zip(&h)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // the gain scales bnraw's last-bit differences between the two paths
        assert!(
            worst <= 1e-5 * gain.max(1.0),
            "{}: |step_h - tape h| up to {worst}",
            what("h")
        );

        let data = params.view().tensors();
        let g = grads.dparams.view().tensors();
        for (i, name) in PARAM_NAMES.iter().enumerate() {
            let t = st.tensors[i];
            let d = moments(data[i].iter().copied());
            close(&what(name), t.data, d, 1e-5);
            if *name == "b1" {
                // db1 is 0 in exact arithmetic (batchnorm removes b1): rounding noise only
                continue;
            }
            let gm = moments(g[i].iter().copied());
            close(&what(&format!("d{name}")), t.grad, gm, 1e-3);
            if d.std > 0.0 {
                let ratio = gm.std / d.std;
                assert!(
                    (t.grad_to_data / ratio - 1.0).abs() <= 1e-3,
                    "{}",
                    what(name)
                );
                let update = (f64::from(lr) * gm.std / d.std).log10();
                assert!((t.update_to_data - update).abs() <= 1e-3, "{}", what(name));
            } else {
                assert!(t.grad_to_data.is_infinite() && t.update_to_data.is_infinite());
            }
        }
    }
    (saturated as f64 / (NB * H) as f64, dead)
}

#[test]
#[cfg_attr(miri, ignore = "Exercise-4 models: too slow under Miri")]
fn step_stats_match_the_atomic_tape_at_the_notebooks_init() {
    with_big_stack(|| {
        for seed in 0..3 {
            let (saturated, dead) = check::<N>(seed, 1.0);
            assert!(
                saturated < 0.2 && dead == 0,
                "seed {seed}: {saturated} {dead}"
            );
        }
    });
}

#[test]
#[cfg_attr(miri, ignore = "Exercise-4 models: too slow under Miri")]
fn step_stats_combine_the_shards_of_a_large_batch() {
    with_big_stack(|| {
        // 200 rows: shards of 64, 64, 64 and 8
        let (saturated, dead) = check::<200>(3, 1000.0);
        assert!(saturated > 0.5 && dead > 0, "{saturated} {dead}");
        check::<200>(4, 1.0);
    });
}

#[test]
#[cfg_attr(miri, ignore = "Exercise-4 models: too slow under Miri")]
fn step_stats_see_a_saturating_gain() {
    with_big_stack(|| {
        for seed in 0..2 {
            let (saturated, dead) = check::<N>(seed, 30.0);
            // the case is what its name says: most of h saturated, some units on every row
            assert!(
                saturated > 0.5 && dead > 0,
                "seed {seed}: {saturated} {dead}"
            );
        }
    });
}

/// W2 initialised to zeros (a classic mistake part 3 warns about): its data std is 0, so its
/// update:data ratio is infinite at the first step; after one SGD step W2 = -lr * g0, so the next
/// ratio is log10(std(lr * g1) / std(lr * g0)), about 0: far above the lecture's -3.
#[test]
#[cfg_attr(miri, ignore = "Exercise-4 models: too slow under Miri")]
fn a_zero_w2_shows_the_expected_update_to_data_ratio() {
    with_big_stack(|| {
        let mut params: Box<P> = notebook_params(7);
        params.view_mut().tensors_mut()[3].fill(0.0);
        let dims = Dims::EXERCISE4;
        let (lr, w2) = (0.1f32, 3);
        let k = Kernels::new(Isa::Scalar).unwrap();
        let mut scratch = vec![0f32; Step::flat_len(&dims, N).unwrap()];
        let mut step = Step::from_flat(dims, N, &mut scratch).unwrap();
        let mut grads_std = Vec::new();
        let mut ratios = Vec::new();
        for seed in 0..2 {
            let (xb, yb) = random_batch::<N, 27, 3>(seed);
            let mut p = params.view_mut();
            k.gradient(&InTurn, &p.as_ref(), &mut step, xb.as_flattened(), &yb)
                .unwrap();
            let st = k.step_stats(&p.as_ref(), &mut step, lr).unwrap();
            grads_std.push(st.tensors[w2].grad.std);
            ratios.push(st.tensors[w2].update_to_data);
            let g = makemore_core::ParamsRef::from_flat(dims, step.grads()).unwrap();
            for (p, g) in p.tensors_mut().into_iter().zip(g.tensors()) {
                k.sgd(p, g, lr).unwrap();
            }
        }
        assert_eq!(
            ratios[0],
            f64::INFINITY,
            "W2's data std is 0 at the first step"
        );
        let want = (grads_std[1] / grads_std[0]).log10();
        assert!(
            (ratios[1] - want).abs() < 1e-6 && ratios[1] > -1.0,
            "the second step's ratio {}, expected {want}",
            ratios[1]
        );
    });
}
