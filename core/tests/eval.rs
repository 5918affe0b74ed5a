//! The fast evaluator (tables, vector kernels, weighted rows) against the plain inference path.

mod common;

use common::notebook_params;
use makemore_core::eval::{scratch_len, Evaluator};
use makemore_core::infer::{BnCalibration, Inference};
use makemore_core::rng::{Rng, SplitMix64};
use makemore_core::simd::{Isa, Kernels};

fn tokens(n: usize, seed: u64) -> Vec<u8> {
    let mut r = SplitMix64(seed);
    (0..n).map(|_| (r.next_u64() % 27) as u8).collect()
}

/// Calibration and loss of the evaluator agree with `BnCalibration::add_rows` and
/// `Inference::loss_sum` on every path; counting a row twice equals listing it twice.
#[test]
fn evaluator_matches_the_plain_inference_path() {
    let p = notebook_params::<f32, 27, 3, 10, 30, 64>(5);
    let params = p.view();
    let dims = params.dims();
    // Miri interprets every operation: fewer rows there.
    let rows = if cfg!(miri) { 40 } else { 1000 };
    let half = rows / 2;
    let x = tokens(rows * 3, 1);
    let y = tokens(rows, 2);

    // reference: plain path
    let (mut m, mut m2) = (vec![0.0; 64], vec![0.0; 64]);
    let mut acc = BnCalibration::new(&mut m, &mut m2).unwrap();
    acc.add_rows(params, &x, &mut vec![0f32; 64 * 64]).unwrap();
    let (mut bnmean, mut bnvar) = (vec![0f32; 64], vec![0f32; 64]);
    acc.finish(&mut bnmean, &mut bnvar).unwrap();
    let (mut inv, mut h, mut logits) = (vec![0f32; 64], vec![0f32; 64 * 8], vec![0f32; 27 * 8]);
    let want = Inference::new(params, &bnmean, &bnvar, &mut inv, &mut h, &mut logits)
        .unwrap()
        .loss_sum(&x, &y)
        .unwrap();

    // the first half listed twice, then counted twice
    let dup: Vec<u8> = x[..3 * half]
        .iter()
        .chain(&x[..3 * half])
        .copied()
        .collect();
    let counts = vec![2u32; half];
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let k = Kernels::new(isa).unwrap();
        let mut scratch = vec![f32::NAN; scratch_len(&dims, 37)];
        let mut ev = Evaluator::new(k, params, 37, &mut scratch).unwrap();
        let (mut m, mut m2) = (vec![0.0; 64], vec![0.0; 64]);
        let mut acc = BnCalibration::new(&mut m, &mut m2).unwrap();
        ev.calibrate(&mut acc, &x, &[], &mut vec![0.0; 128])
            .unwrap();
        let (mut mean_k, mut var_k) = (vec![0f32; 64], vec![0f32; 64]);
        acc.finish(&mut mean_k, &mut var_k).unwrap();
        for j in 0..64 {
            assert!(
                (mean_k[j] - bnmean[j]).abs() <= 1e-5 * (1.0 + bnmean[j].abs()),
                "{isa} mean {j}"
            );
            assert!(
                (var_k[j] - bnvar[j]).abs() <= 1e-5 * bnvar[j],
                "{isa} var {j}"
            );
        }
        let got = ev.loss_sum(&bnmean, &bnvar, &x, &y).unwrap();
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "{isa}: loss sum {got} vs {want}"
        );

        // the same loss through distinct rows: logits and lse per row
        let (mut lg, mut lse) = (vec![0f32; rows * 27], vec![0f32; rows]);
        ev.logits_lse(&bnmean, &bnvar, &x, &mut lg, &mut lse)
            .unwrap();
        let via_lse: f64 = (0..rows)
            .map(|r| (lse[r] - lg[r * 27 + y[r] as usize]) as f64)
            .sum();
        assert!(
            (via_lse - want).abs() <= 1e-5 * want,
            "{isa}: {via_lse} vs {want}"
        );

        // weights: the first half counted twice, vs listed twice
        let (mut a1, mut b1) = (vec![0.0; 64], vec![0.0; 64]);
        let mut listed = BnCalibration::new(&mut a1, &mut b1).unwrap();
        ev.calibrate(&mut listed, &dup, &[], &mut vec![0.0; 128])
            .unwrap();
        let (mut a2, mut b2) = (vec![0.0; 64], vec![0.0; 64]);
        let mut counted = BnCalibration::new(&mut a2, &mut b2).unwrap();
        ev.calibrate(&mut counted, &x[..3 * half], &counts, &mut vec![0.0; 128])
            .unwrap();
        assert_eq!(listed.count(), counted.count());
        let (mut ml, mut vl, mut mc, mut vc) = (
            vec![0f32; 64],
            vec![0f32; 64],
            vec![0f32; 64],
            vec![0f32; 64],
        );
        listed.finish(&mut ml, &mut vl).unwrap();
        counted.finish(&mut mc, &mut vc).unwrap();
        for j in 0..64 {
            assert!(
                (ml[j] - mc[j]).abs() <= 1e-6 * (1.0 + ml[j].abs()),
                "{isa} weighted mean {j}"
            );
            assert!(
                (vl[j] - vc[j]).abs() <= 1e-6 * vl[j],
                "{isa} weighted var {j}"
            );
        }
    }
}
