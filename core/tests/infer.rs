//! Inference: batchnorm calibration, calibrated loss, sampling with temperature and top-k.

mod common;

use common::notebook_params;
use makemore_core::infer::{sample_from_logits, BnCalibration, Inference};
use makemore_core::rng::{Rng, SplitMix64};
use makemore_core::Error;

/// hprebn of every row, computed plainly in f64, then the two-pass mean and Bessel variance.
fn reference_stats(
    p: &makemore_core::Params<f32, 27, 3, 10, 30, 16>,
    x: &[u8],
) -> (Vec<f64>, Vec<f64>) {
    let rows: Vec<Vec<f64>> = x
        .chunks(3)
        .map(|ctx| {
            (0..16)
                .map(|j| {
                    let mut acc = p.b1[j] as f64;
                    for (t, &ix) in ctx.iter().enumerate() {
                        for e in 0..10 {
                            acc += p.C[ix as usize][e] as f64 * p.W1[t * 10 + e][j] as f64;
                        }
                    }
                    acc
                })
                .collect()
        })
        .collect();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..16)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let var = (0..16)
        .map(|j| rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / (n - 1.0))
        .collect();
    (mean, var)
}

fn random_tokens(n: usize, seed: u64) -> Vec<u8> {
    let mut r = SplitMix64(seed);
    (0..n).map(|_| (r.next_u64() % 27) as u8).collect()
}

#[test]
fn calibration_matches_two_pass_f64_and_merges_in_any_chunking() {
    let p = notebook_params::<f32, 27, 3, 10, 30, 16>(3);
    // shift b1 far from zero: E[x^2] - E[x]^2 in f32 would lose every digit of the variance
    let mut p = *p;
    for b in p.b1.iter_mut() {
        *b += 1000.0;
    }
    // fewer rows under Miri, same chunkings relative to them
    let rows = if cfg!(miri) { 100 } else { 5000 };
    let x = random_tokens(3 * rows, 9);
    let (mean_ref, var_ref) = reference_stats(&p, &x);
    let mut outs = Vec::new();
    for (chunk_rows, split) in [(256usize, rows), (7, rows / 4 - 16), (1000, 1)] {
        let (mut m, mut m2) = (vec![0.0; 16], vec![0.0; 16]);
        let (mut m_b, mut m2_b) = (vec![0.0; 16], vec![0.0; 16]);
        let mut a = BnCalibration::new(&mut m, &mut m2).unwrap();
        let mut b = BnCalibration::new(&mut m_b, &mut m2_b).unwrap();
        let mut scratch = vec![0f32; chunk_rows * 16];
        a.add_rows(p.view(), &x[..3 * split], &mut scratch).unwrap();
        b.add_rows(p.view(), &x[3 * split..], &mut scratch).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.count(), rows as u64);
        let (mut mean, mut var) = (vec![0f32; 16], vec![0f32; 16]);
        a.finish(&mut mean, &mut var).unwrap();
        for j in 0..16 {
            // hprebn itself is f32 (one rounding per product): compare at that precision
            assert!(
                (mean[j] as f64 - mean_ref[j]).abs() <= 1e-6 * mean_ref[j].abs(),
                "mean {j}"
            );
            assert!(
                (var[j] as f64 - var_ref[j]).abs() <= 1e-3 * var_ref[j],
                "var {j}: {} vs {}",
                var[j],
                var_ref[j]
            );
        }
        outs.push((mean, var));
    }
    // different chunkings agree to f32 rounding of the f64 accumulators
    for o in &outs[1..] {
        for j in 0..16 {
            assert!((o.1[j] - outs[0].1[j]).abs() <= 1e-5 * outs[0].1[j]);
        }
    }
}

#[test]
fn calibration_errors() {
    let (mut m, mut m2) = (vec![0.0; 16], vec![0.0; 15]);
    assert!(BnCalibration::new(&mut m, &mut m2).is_err());
    let mut m2 = vec![0.0; 16];
    let mut a = BnCalibration::new(&mut m, &mut m2).unwrap();
    let p = notebook_params::<f32, 27, 3, 10, 30, 16>(3);
    let mut scratch = vec![0f32; 16];
    assert_eq!(
        a.add_rows(p.view(), &[1, 2, 27], &mut scratch),
        Err(Error::TokenOutOfRange {
            index: 2,
            token: 27,
            vocab: 27
        })
    );
    assert!(a.add_rows(p.view(), &[1, 2], &mut scratch).is_err());
    a.add_rows(p.view(), &[1, 2, 3], &mut scratch).unwrap();
    let (mut mean, mut var) = (vec![0f32; 16], vec![0f32; 16]);
    assert_eq!(
        a.finish(&mut mean, &mut var),
        Err(Error::BatchTooSmall { n: 1 })
    );
}

#[test]
fn sampling_follows_softmax_temperature_and_top_k() {
    let logits = [0.0f32, 1.0, 2.0, 0.5];
    // Under Miri 4000 draws: a standard error below 0.008, so a tolerance of 0.04 (5 sigma).
    let (draws, tol) = if cfg!(miri) {
        (4_000, 0.04)
    } else {
        (200_000, 0.005)
    };
    let count = |temperature: f32, top_k: usize| {
        let mut hist = [0usize; 4];
        let mut r = SplitMix64(1);
        for _ in 0..draws {
            let u = makemore_core::rng::uniform(&mut r);
            let mut l = logits;
            hist[sample_from_logits(&mut l, temperature, top_k, u).unwrap() as usize] += 1;
        }
        hist.map(|c| c as f64 / draws as f64)
    };
    let softmax = |t: f64, keep: &[usize]| {
        let w: Vec<f64> = (0..4)
            .map(|i| {
                if keep.contains(&i) {
                    (logits[i] as f64 / t).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let s: f64 = w.iter().sum();
        w.iter().map(|x| x / s).collect::<Vec<_>>()
    };
    for (t, k, keep) in [
        (1.0, 0, vec![0, 1, 2, 3]),
        (0.5, 0, vec![0, 1, 2, 3]),
        (2.0, 2, vec![1, 2]),
    ] {
        let got = count(t, k);
        let want = softmax(t as f64, &keep);
        for i in 0..4 {
            assert!(
                (got[i] - want[i]).abs() < tol,
                "t={t} k={k}: {got:?} vs {want:?}"
            );
        }
    }
    // top-k keeps ties at the k-th value, as makemore does
    let mut l = [1.0f32, 1.0, 0.0];
    let mut seen = [false; 3];
    for u in [0.0, 0.49, 0.51, 0.99] {
        let mut l2 = l;
        seen[sample_from_logits(&mut l2, 1.0, 1, u).unwrap() as usize] = true;
    }
    assert_eq!(seen, [true, true, false]);
    assert!(sample_from_logits(&mut l, 0.0, 0, 0.5).is_err());
    assert!(sample_from_logits(&mut l, f32::NAN, 0, 0.5).is_err());
    assert!(sample_from_logits(&mut l, 1.0, 0, 1.0).is_err());
    let mut nan = [0.0f32, f32::NAN];
    assert!(sample_from_logits(&mut nan, 1.0, 0, 0.5).is_err());
    let mut ninf = [f32::NEG_INFINITY; 3];
    assert!(sample_from_logits(&mut ninf, 1.0, 0, 0.5).is_err());
}

#[test]
fn inference_logits_and_sampling() {
    let p = notebook_params::<f32, 27, 3, 10, 30, 16>(5);
    let bnmean = [0.1f32; 16];
    let bnvar = [2.0f32; 16];
    let (mut inv, mut h, mut logits) = (vec![0f32; 16], vec![0f32; 4 * 16], vec![0f32; 4 * 27]);
    let mut inf = Inference::new(p.view(), &bnmean, &bnvar, &mut inv, &mut h, &mut logits).unwrap();
    assert_eq!(inf.next_logits(&[1, 2, 3]).unwrap().len(), 27);
    assert!(inf.next_logits(&[1, 2, 27]).is_err());
    assert!(inf.next_logits(&[0, 0]).is_err());
    // names end at token 0 or fill the buffer; the prefix is kept
    let mut r = SplitMix64(3);
    let mut out = [0u8; 12];
    let n = inf
        .sample_name(
            &[5, 6],
            1.0,
            0,
            || makemore_core::rng::uniform(&mut r),
            &mut out,
        )
        .unwrap();
    assert!((2..=12).contains(&n));
    assert_eq!(&out[..2], &[5, 6]);
    assert!(out[..n].iter().all(|&t| t != 0 && t < 27));
    assert!(inf.sample_name(&[0], 1.0, 0, || 0.5, &mut out).is_err());
}
