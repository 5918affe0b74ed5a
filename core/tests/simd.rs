//! Every vector kernel against the scalar reference, on every path this machine runs.
//!
//! `MAKEMORE_ISA=avx2` (or `avx512`, `neon`, `simd128`, `scalar`) tests only that path and fails if the CPU
//! cannot run it; unset (or `auto`), every available path is tested. Outputs are pre-filled with
//! NaN so a lane that is never written, or a read of an unwritten value, shows. Shapes include
//! widths that are not multiples of any lane count (27, 30, 63, 65, 200).
//!
//! Tolerances: the elementwise kernels (batchnorm, gather/scatter, SGD, ...) must give the scalar
//! code's bits. exp and tanh use FMA on the vector paths (SIMD128: unfused, it has no FMA): each
//! is within 2 ulp of the correctly rounded result (`core/tests/math.rs` sweeps them), the scalar
//! code within 1, so a vector value is within [`EXP_TANH_ULP`] = 3 ulp of the scalar one (and
//! the special values, NaN, ±inf, ±0, subnormals, the clamp points, are the scalar ones); the
//! same holds for `h` of the batchnorm kernels, whose tanh arguments are the scalar bits. The
//! products use FMA (SIMD128: a multiply then an add) and a different summation grouping, so
//! each element `sum_k a_k b_k` may differ by the standard bound `2 k u sum_k |a_k b_k|`
//! (u = 2^-24), with `k` the length of the sum.
//!
//! The training step ([`Kernels::train_step`]): 1000 steps on each vector path track the scalar
//! loss curve; a batch of several shards gives the same bits whatever order its shards run in;
//! one shard on the scalar path is [`train::train_step`], bit for bit.

use makemore_core::model::Dims;
use makemore_core::simd::{Isa, Kernels};
use makemore_core::step::{InTurn, Schedule, Step};
use makemore_core::train::{self, ActsMut};
use makemore_core::ParamsMut;
use proptest::prelude::*;

/// The paths under test: the one `MAKEMORE_ISA` forces (failing if unavailable), or all
/// available; then the vector paths this CPU lacks are named once on stderr (uncaptured), as
/// not tested.
fn vector_paths() -> Vec<Kernels> {
    match Isa::from_env().unwrap_or_else(|e| panic!("{e}")) {
        None => {
            let (have, lack): (Vec<Isa>, Vec<Isa>) = Isa::ALL
                .into_iter()
                .filter(|isa| *isa != Isa::Scalar)
                .partition(|isa| isa.is_available());
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write;
                let names = |v: &[Isa]| v.iter().map(|i| i.name()).collect::<Vec<_>>().join(" ");
                // Written to the handle, not eprintln!: the test harness would capture that.
                let _ = writeln!(
                    std::io::stderr(),
                    "simd.rs: vector paths tested against scalar: [{}]; NOT TESTED, this CPU or \
                     build lacks them: [{}]",
                    names(&have),
                    names(&lack)
                );
            });
            have.into_iter()
                .map(|isa| Kernels::new(isa).unwrap())
                .collect()
        }
        Some(isa) => vec![Kernels::new(isa)
            .unwrap_or_else(|e| panic!("MAKEMORE_ISA={isa} is forced but unavailable: {e}"))],
    }
}

const SCALAR: Kernels = Kernels::scalar();

#[test]
fn every_vector_path_of_this_cpu_is_tested() {
    let paths = vector_paths();
    // On this project's x86_64 CI machines both x86 paths exist; elsewhere at least say so.
    #[cfg(target_arch = "x86_64")]
    if Isa::from_env() == Ok(None) {
        assert_eq!(
            paths.iter().any(|k| k.isa() == Isa::Avx2),
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        );
        assert_eq!(
            paths.iter().any(|k| k.isa() == Isa::Avx512),
            std::is_x86_feature_detected!("avx512f")
        );
    }
    // wasm32 decides at build time: SIMD128 is a path exactly when the build enables it
    assert_eq!(
        Isa::Simd128.is_available(),
        cfg!(all(target_arch = "wasm32", target_feature = "simd128"))
    );
    if Isa::from_env() == Ok(None) {
        assert_eq!(
            paths.iter().any(|k| k.isa() == Isa::Simd128),
            Isa::Simd128.is_available()
        );
    }
    for k in &paths {
        assert!(k.isa().is_available());
    }
    assert_eq!(Isa::parse("avx512"), Some(Isa::Avx512));
    assert_eq!(Isa::parse("simd128"), Some(Isa::Simd128));
    assert_eq!(Isa::parse("sse"), None);
}

#[test]
fn a_path_the_cpu_lacks_is_refused() {
    for isa in Isa::ALL {
        match Kernels::new(isa) {
            Ok(k) => assert_eq!(k.isa(), isa),
            Err(e) => {
                assert!(!isa.is_available());
                assert!(e.to_string().contains(isa.name()), "{e}");
            }
        }
    }
    // SIMD128 exists only in a wasm32 build that enables it
    #[cfg(not(target_arch = "wasm32"))]
    assert!(matches!(
        Kernels::new(Isa::Simd128),
        Err(makemore_core::Error::IsaUnavailable { isa: "simd128" })
    ));
}

/// Bitwise equality, treating every NaN as equal to every NaN.
fn assert_same_bits(what: &str, isa: Isa, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what} on {isa}: element {i} is {g:e} ({:#010x}), scalar gives {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// `|got - want| <= bound[i]` for every element (NaN must match NaN).
fn assert_within(what: &str, isa: Isa, got: &[f32], want: &[f32], bound: &[f64]) {
    for (i, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        if w.is_nan() {
            assert!(
                g.is_nan(),
                "{what} on {isa}: element {i} is {g}, scalar gives NaN"
            );
            continue;
        }
        let err = (g as f64 - w as f64).abs();
        assert!(
            err <= b,
            "{what} on {isa}: element {i} is {g:e}, scalar {w:e}: error {err:e} > bound {b:e}"
        );
    }
}

const U: f64 = 1.0 / (1u64 << 24) as f64;

/// How far (in ulp) a vector exp or tanh may be from the scalar one: at most 2 ulp from the
/// correctly rounded result on the vector paths plus at most 1 on the scalar path.
const EXP_TANH_ULP: u32 = 3;

/// Distance in representable f32 between `a` and `b` (0 if both NaN, `u32::MAX` if one is).
fn ulp_diff(a: f32, b: f32) -> u32 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u32::MAX
        };
    }
    let key = |x: f32| {
        let m = (x.to_bits() & 0x7fff_ffff) as i64;
        if x.is_sign_negative() {
            -m
        } else {
            m
        }
    };
    (key(a) - key(b)).unsigned_abs().min(u32::MAX as u64) as u32
}

/// Every element within `ulp` of scalar (NaN must match NaN).
fn assert_within_ulp(what: &str, isa: Isa, got: &[f32], want: &[f32], ulp: u32) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = ulp_diff(g, w);
        assert!(
            d <= ulp,
            "{what} on {isa}: element {i} is {g:e}, scalar gives {w:e}: {d} ulp apart (bound {ulp})"
        );
    }
}

fn nan_vec(len: usize) -> Vec<f32> {
    vec![f32::NAN; len]
}

/// A width that is often not a multiple of 4, 8 or 16.
fn width() -> impl Strategy<Value = usize> {
    if cfg!(miri) {
        // Miri interprets every lane: small widths, still with tails on every lane count.
        return prop_oneof![Just(27usize), Just(17), 1usize..12].boxed();
    }
    prop_oneof![
        Just(27usize),
        Just(30),
        Just(63),
        Just(65),
        Just(200),
        1usize..40
    ]
    .boxed()
}

/// The shared axis of a product: [`width`], or longer than the kernels' chunks of 256 steps
/// (not under Miri), so that chains cut into chunks are tested.
fn shared() -> BoxedStrategy<usize> {
    if cfg!(miri) {
        return width().boxed();
    }
    prop_oneof![4 => width(), 1 => Just(300usize)].boxed()
}

/// Rows of a batch: up to `max` (4 under Miri).
fn rows(min: usize, max: usize) -> std::ops::Range<usize> {
    min..if cfg!(miri) { min + 4 } else { max }
}

/// Bound of a sum of products computed two ways: `2 k u sum |a_k b_k|` (+ a subnormal floor).
fn dot_bound(k: usize, abs_sum: f64) -> f64 {
    2.0 * k as f64 * U * abs_sum + 1e-37
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 48 },
        .. ProptestConfig::default()
    })]

    /// exp and tanh within [`EXP_TANH_ULP`] of scalar; the special values give the scalar bits.
    #[test]
    fn exp_and_tanh_are_within_3_ulp_of_scalar(
        x in prop::collection::vec(prop_oneof![
            -110.0f32..100.0,
            -1.0f32..1.0,
            Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY),
            Just(0.0), Just(-0.0), Just(1e-40), Just(-1e-40), Just(9.5), Just(-9.6), Just(0.625),
            Just(-88.7), Just(89.0), Just(95.0), Just(-104.0), Just(-120.0), Just(f32::MAX)
        ], 0..70)
    ) {
        for k in vector_paths() {
            for (name, f) in [("exp", 0), ("tanh", 1)] {
                let mut got = nan_vec(x.len());
                let mut want = nan_vec(x.len());
                if f == 0 {
                    k.exp(&mut got, &x).unwrap();
                    SCALAR.exp(&mut want, &x).unwrap();
                } else {
                    k.tanh(&mut got, &x).unwrap();
                    SCALAR.tanh(&mut want, &x).unwrap();
                }
                assert_within_ulp(name, k.isa(), &got, &want, EXP_TANH_ULP);
                // NaN, the infinities, the clamp points, ±0 and subnormals: the scalar values
                for (i, &xi) in x.iter().enumerate() {
                    let special = !xi.is_finite() || xi.abs() < 1e-30 || xi >= 89.0
                        || xi <= -104.0 || (f == 1 && xi.abs() >= 9.5);
                    if special {
                        assert_same_bits(name, k.isa(), &got[i..i + 1], &want[i..i + 1]);
                    }
                }
            }
        }
    }

    #[test]
    fn embedding_gather_scatter_and_tables_give_the_scalar_bits(
        v in 1usize..30, e in width(), n in rows(1, 12), t in 1usize..4, seed: u64,
    ) {
        let mut rng = common_rng(seed);
        let c: Vec<f32> = (0..v * e).map(|_| rng.f32()).collect();
        let xb: Vec<u8> = (0..n * t).map(|_| (rng.u64() % v as u64) as u8).collect();
        let demb: Vec<f32> = (0..n * t * e).map(|_| rng.f32()).collect();
        let table: Vec<f32> = (0..t * v * e).map(|_| rng.f32()).collect();
        let b1: Vec<f32> = (0..e).map(|_| rng.f32()).collect();
        for k in vector_paths() {
            let (mut got, mut want) = (nan_vec(n * t * e), nan_vec(n * t * e));
            k.embed_gather(&mut got, &xb, &c, e).unwrap();
            SCALAR.embed_gather(&mut want, &xb, &c, e).unwrap();
            assert_same_bits("embed_gather", k.isa(), &got, &want);
            let (mut got, mut want) = (nan_vec(v * e), nan_vec(v * e));
            k.embed_scatter_add(&mut got, &demb, &xb).unwrap();
            SCALAR.embed_scatter_add(&mut want, &demb, &xb).unwrap();
            assert_same_bits("embed_scatter_add", k.isa(), &got, &want);
            // xb as (n, T) contexts through tables (T, V, H) with H = e
            let (mut got, mut want) = (nan_vec(n * e), nan_vec(n * e));
            k.embed_table_forward(&mut got, &xb, &table, &b1, v).unwrap();
            SCALAR.embed_table_forward(&mut want, &xb, &table, &b1, v).unwrap();
            assert_same_bits("embed_table_forward", k.isa(), &got, &want);
        }
    }

    #[test]
    fn products_are_within_the_dot_product_bound(
        n in rows(1, 11), kdim in shared(), m in width(), seed: u64, with_bias: bool,
    ) {
        let mut rng = common_rng(seed);
        let a: Vec<f32> = (0..n * kdim).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..kdim * m).map(|_| rng.f32()).collect();
        let bias: Vec<f32> = if with_bias { (0..m).map(|_| rng.f32()).collect() } else { vec![] };
        let h: Vec<f32> = (0..n * m).map(|_| rng.f32()).collect();
        let bt: Vec<f32> = (0..m * kdim).map(|_| rng.f32()).collect(); // (m, kdim)
        let bn: Vec<f32> = (0..n * m).map(|_| rng.f32()).collect(); // (n, m)
        // sum_k |a_ik b_kj| for out = a @ b
        let mut abs_nn = vec![0f64; n * m];
        for i in 0..n { for j in 0..m { for kk in 0..kdim {
            abs_nn[i * m + j] += (a[i * kdim + kk] as f64 * b[kk * m + j] as f64).abs();
        } if with_bias { abs_nn[i * m + j] += (bias[j] as f64).abs(); } } }
        let bound_nn: Vec<f64> = abs_nn.iter().map(|&s| dot_bound(kdim + 1, s)).collect();
        // a.T @ bn: (kdim, m), sums over n
        let mut abs_tn = vec![0f64; kdim * m];
        for r in 0..kdim { for j in 0..m { for i in 0..n {
            abs_tn[r * m + j] += (a[i * kdim + r] as f64 * bn[i * m + j] as f64).abs();
        } } }
        let bound_tn: Vec<f64> = abs_tn.iter().map(|&s| dot_bound(n, s)).collect();
        // a @ bt.T: (n, m), sums over kdim
        let mut abs_nt = vec![0f64; n * m];
        for i in 0..n { for j in 0..m { for kk in 0..kdim {
            abs_nt[i * m + j] += (a[i * kdim + kk] as f64 * bt[j * kdim + kk] as f64).abs();
        } } }
        let bound_nt: Vec<f64> = abs_nt.iter().map(|&s| dot_bound(kdim, s)).collect();
        // (1 - h^2) * (a @ b): |1 - h^2| <= 1 here, one more rounding
        let bound_tanh: Vec<f64> = abs_nn.iter().map(|&s| dot_bound(kdim + 2, s)).collect();

        for k in vector_paths() {
            let (mut got, mut want) = (nan_vec(n * m), nan_vec(n * m));
            k.linear_forward(&mut got, &a, &b, &bias, m).unwrap();
            SCALAR.linear_forward(&mut want, &a, &b, &bias, m).unwrap();
            assert_within("linear_forward", k.isa(), &got, &want, &bound_nn);

            let (mut got, mut want) = (nan_vec(kdim * m), nan_vec(kdim * m));
            k.matmul_tn(&mut got, &a, &bn, kdim, m).unwrap();
            SCALAR.matmul_tn(&mut want, &a, &bn, kdim, m).unwrap();
            assert_within("matmul_tn", k.isa(), &got, &want, &bound_tn);

            let (mut got, mut want) = (nan_vec(n * m), nan_vec(n * m));
            k.matmul_nt(&mut got, &a, &bt, kdim).unwrap();
            SCALAR.matmul_nt(&mut want, &a, &bt, kdim).unwrap();
            assert_within("matmul_nt", k.isa(), &got, &want, &bound_nt);

            let (mut got, mut want) = (h.clone(), h.clone());
            if kdim <= 256 {
                k.linear_tanh_backward(&mut got, &a, &b, m).unwrap();
                SCALAR.linear_tanh_backward(&mut want, &a, &b, m).unwrap();
                assert_within("linear_tanh_backward", k.isa(), &got, &want, &bound_tanh);
            } else {
                // its k is the vocabulary: at most 256, on every path
                prop_assert!(k.linear_tanh_backward(&mut got, &a, &b, m).is_err());
                prop_assert!(SCALAR.linear_tanh_backward(&mut want, &a, &b, m).is_err());
            }

            let (mut got, mut want) = (nan_vec(kdim * m), nan_vec(kdim * m));
            k.transpose(&mut got, &bt, kdim).unwrap();
            SCALAR.transpose(&mut want, &bt, kdim).unwrap();
            assert_same_bits("transpose", k.isa(), &got, &want);
        }
    }

    /// The batchnorm pieces in the step's order, each path chained on its own outputs:
    /// `hprebn.sum(0)` (bias_backward), then bnmeani, `batchnorm_center` (bndiff and
    /// `(bndiff**2).sum(0)`), then bnvar_inv, `batchnorm_scale_shift_tanh` (bnraw and h); the
    /// backward `batchnorm_backward_sums` (dbngain, dbnbias) then `batchnorm_backward_apply`
    /// (dhprebn), the latter also on the first `rows` rows of a batch of `n` (a shard). All give
    /// the scalar bits except `h` and the inference form's output (the vector tanh): within
    /// [`EXP_TANH_ULP`] of scalar (`h` feeds nothing else here).
    #[test]
    fn batchnorm_tanh_bias_and_sgd_match_scalar(
        n in rows(2, 40), hidden in width(), seed: u64, shard in 1usize..40,
    ) {
        let mut rng = common_rng(seed);
        let hprebn: Vec<f32> = (0..n * hidden).map(|_| 3.0 * rng.f32() + 0.5).collect();
        let bngain: Vec<f32> = (0..hidden).map(|_| 1.0 + rng.f32()).collect();
        let bnbias: Vec<f32> = (0..hidden).map(|_| rng.f32()).collect();
        let dh: Vec<f32> = (0..n * hidden).map(|_| rng.f32()).collect();
        let shard = shard.min(n); // rows of the shard that batchnorm_backward_apply sees
        let (inv_n, inv_n1) = (1.0 / n as f32, 1.0 / (n as f32 - 1.0));
        // What one path computes, every intermediate kept.
        struct Bn {
            sum: Vec<f32>,
            bnmeani: Vec<f32>,
            bndiff: Vec<f32>,
            sum2: Vec<f32>,
            bnvar_inv: Vec<f32>,
            bnraw: Vec<f32>,
            h: Vec<f32>,
            dbngain: Vec<f32>,
            dbnbias: Vec<f32>,
            dhprebn: Vec<f32>,
            dhprebn_shard: Vec<f32>,
        }
        let run = |k: Kernels| -> Bn {
            // hprebn.sum(0), then bnmeani = 1/n * hprebn.sum(0), as the step does
            let mut sum = nan_vec(hidden);
            k.bias_backward(&mut sum, &hprebn).unwrap();
            let bnmeani: Vec<f32> = sum.iter().map(|&s| s * inv_n).collect();
            // bndiff = hprebn - bnmeani; sum2 = (bndiff**2).sum(0)
            let (mut bndiff, mut sum2) = (hprebn.clone(), nan_vec(hidden));
            k.batchnorm_center(&mut bndiff, &bnmeani, &mut sum2).unwrap();
            // bnvar_inv = (1/(n-1) * (bndiff**2).sum(0) + 1e-5)**-0.5: the kernel on this path
            // must give the correctly rounded reference's bits
            let mut bnvar_inv = sum2.clone();
            k.batchnorm_var_inv(&mut bnvar_inv, n).unwrap();
            let eps = makemore_core::BN_EPS as f32;
            for (&got, &q) in bnvar_inv.iter().zip(&sum2) {
                let want = 1.0 / makemore_core::math::sqrt_f32(inv_n1 * q + eps);
                assert_eq!(got.to_bits(), want.to_bits(), "batchnorm_var_inv on {}", k.isa());
            }
            // bnraw = bndiff * bnvar_inv; h = tanh(bngain * bnraw + bnbias)
            let (mut bnraw, mut h) = (bndiff.clone(), nan_vec(n * hidden));
            k.batchnorm_scale_shift_tanh(&mut h, &mut bnraw, &bnvar_inv, &bngain, &bnbias)
                .unwrap();
            // dbngain = (bnraw * dhpreact).sum(0), dbnbias = dhpreact.sum(0)
            let (mut dbngain, mut dbnbias) = (nan_vec(hidden), nan_vec(hidden));
            k.batchnorm_backward_sums(&mut dbngain, &mut dbnbias, &dh, &bnraw).unwrap();
            // dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)
            let mut dhprebn = dh.clone();
            k.batchnorm_backward_apply(&mut dhprebn, &bnraw, &bnvar_inv, &bngain, &dbngain, &dbnbias, n)
                .unwrap();
            let mut dhprebn_shard = dh[..shard * hidden].to_vec();
            k.batchnorm_backward_apply(
                &mut dhprebn_shard, &bnraw[..shard * hidden], &bnvar_inv, &bngain, &dbngain, &dbnbias, n,
            )
            .unwrap();
            Bn { sum, bnmeani, bndiff, sum2, bnvar_inv, bnraw, h, dbngain, dbnbias, dhprebn, dhprebn_shard }
        };
        let want = run(SCALAR);
        // the shard's rows are the batch's rows: the same bits
        assert_same_bits("batchnorm_backward_apply on a shard", Isa::Scalar,
            &want.dhprebn_shard, &want.dhprebn[..shard * hidden]);
        for k in vector_paths() {
            let isa = k.isa();
            let got = run(k);
            assert_same_bits("bias_backward hprebn.sum(0)", isa, &got.sum, &want.sum);
            assert_same_bits("bnmeani", isa, &got.bnmeani, &want.bnmeani);
            assert_same_bits("batchnorm_center bndiff", isa, &got.bndiff, &want.bndiff);
            assert_same_bits("batchnorm_center (bndiff**2).sum(0)", isa, &got.sum2, &want.sum2);
            assert_same_bits("bnvar_inv", isa, &got.bnvar_inv, &want.bnvar_inv);
            assert_same_bits("batchnorm_scale_shift_tanh bnraw", isa, &got.bnraw, &want.bnraw);
            assert_within_ulp("batchnorm_scale_shift_tanh h", isa, &got.h, &want.h, EXP_TANH_ULP);
            assert_same_bits("batchnorm_backward_sums dbngain", isa, &got.dbngain, &want.dbngain);
            assert_same_bits("batchnorm_backward_sums dbnbias", isa, &got.dbnbias, &want.dbnbias);
            assert_same_bits("batchnorm_backward_apply dhprebn", isa, &got.dhprebn, &want.dhprebn);
            assert_same_bits("batchnorm_backward_apply dhprebn of a shard", isa,
                &got.dhprebn_shard, &want.dhprebn_shard);

            let (mut s_k, mut s_s) = (nan_vec(hidden), nan_vec(hidden));
            k.bias_backward(&mut s_k, &dh).unwrap();
            SCALAR.bias_backward(&mut s_s, &dh).unwrap();
            assert_same_bits("bias_backward", isa, &s_k, &s_s);

            let (mut i_k, mut i_s) = (hprebn.clone(), hprebn.clone());
            k.batchnorm_tanh_inference(&mut i_k, &want.bnmeani, &want.bnvar_inv, &bngain, &bnbias)
                .unwrap();
            SCALAR
                .batchnorm_tanh_inference(&mut i_s, &want.bnmeani, &want.bnvar_inv, &bngain, &bnbias)
                .unwrap();
            assert_within_ulp("batchnorm_tanh_inference", isa, &i_k, &i_s, EXP_TANH_ULP);

            let (mut p_k, mut p_s) = (hprebn.clone(), hprebn.clone());
            k.sgd(&mut p_k, &dh, 0.1).unwrap();
            SCALAR.sgd(&mut p_s, &dh, 0.1).unwrap();
            assert_same_bits("sgd", isa, &p_k, &p_s);
        }
    }

    /// The statistics kernels against f64 sums of the same values: `moments`' mean within
    /// `2 n u mean|x|` and its m2 within `2 n u` of the sum of squared deviations (plus the mean's
    /// error squared, n times); `bn_tanh_stats`' four sums likewise (h from the path's tanh,
    /// within 2 ulp) and its per-unit counts of `|h| > 0.97` exact away from the threshold.
    /// Scalar and every vector path.
    #[test]
    fn statistics_kernels_are_within_the_sum_bound(
        len in prop_oneof![width(), 0usize..3], rows_n in rows(1, 11), hidden in width(),
        seed: u64, scale in prop_oneof![Just(1.0f32), Just(3.0), Just(0.01)],
    ) {
        let mut rng = common_rng(seed);
        let x: Vec<f32> = (0..len).map(|_| scale * rng.f32() + 0.5).collect();
        let n = x.len() as f64;
        let mean64 = x.iter().map(|&v| v as f64).sum::<f64>() / n.max(1.0);
        let m2_64: f64 = x.iter().map(|&v| (v as f64 - mean64).powi(2)).sum();
        let abs: f64 = x.iter().map(|&v| (v as f64).abs()).sum();
        let bnraw: Vec<f32> = (0..rows_n * hidden).map(|_| 2.0 * rng.f32()).collect();
        let gain: Vec<f32> = (0..hidden).map(|_| scale * (1.0 + rng.f32())).collect();
        let bias: Vec<f32> = (0..hidden).map(|_| 0.3 * rng.f32()).collect();
        // the f64 reference from the step's f32 hpreact
        let hp: Vec<f32> = bnraw.iter().enumerate().map(|(i, &r)| gain[i % hidden] * r + bias[i % hidden]).collect();
        let h64: Vec<f64> = hp.iter().map(|&v| (v as f64).tanh()).collect();
        let count = hp.len() as f64;
        let hp_mean = hp.iter().map(|&v| v as f64).sum::<f64>() / count;
        let h_mean = h64.iter().sum::<f64>() / count;
        for k in std::iter::once(SCALAR).chain(vector_paths()) {
            let isa = k.isa();
            let [mean, m2] = k.moments(&x);
            if len > 0 {
                let b = 2.0 * n * U * abs / n + 1e-37;
                prop_assert!((mean as f64 - mean64).abs() <= b, "moments mean on {isa}: {mean} vs {mean64}");
                let b2 = 4.0 * n * U * m2_64 + n * b * b + 1e-37;
                prop_assert!((m2 as f64 - m2_64).abs() <= b2, "moments m2 on {isa}: {m2} vs {m2_64}");
            } else {
                prop_assert_eq!([mean, m2], [0.0, 0.0]);
            }
            for center in [[0.0f32, 0.0], [hp_mean as f32, h_mean as f32]] {
                let mut sat = nan_vec(hidden);
                let got = k.bn_tanh_stats(&mut sat, &bnraw, &gain, &bias, center).unwrap();
                let d0: Vec<f64> = hp.iter().map(|&v| v as f64 - center[0] as f64).collect();
                let d1: Vec<f64> = h64.iter().map(|&v| v - center[1] as f64).collect();
                let want = [
                    d0.iter().sum::<f64>(),
                    d1.iter().sum::<f64>(),
                    d0.iter().map(|d| d * d).sum(),
                    d1.iter().map(|d| d * d).sum(),
                ];
                let abs_of = |d: &[f64]| d.iter().map(|x| x.abs()).sum::<f64>();
                // per term: the subtraction's rounding, h's 2 ulp (h < 1), then the sum's
                let bounds = [
                    2.0 * count * U * abs_of(&d0) + count * U * hp.iter().map(|v| v.abs() as f64).sum::<f64>() / count,
                    2.0 * count * U * abs_of(&d1) + 4.0 * count * U,
                    4.0 * count * U * want[2] + 4.0 * U * abs_of(&d0) * hp.iter().map(|v| v.abs() as f64).fold(0.0, f64::max),
                    4.0 * count * U * want[3] + 8.0 * U * abs_of(&d1),
                ];
                for i in 0..4 {
                    prop_assert!((got[i] as f64 - want[i]).abs() <= bounds[i] + 1e-30,
                        "bn_tanh_stats sum {i} on {isa} (center {center:?}): {} vs {} (bound {})", got[i], want[i], bounds[i]);
                }
                for j in 0..hidden {
                    let col = (0..rows_n).map(|r| h64[r * hidden + j]);
                    if col.clone().any(|h| (h.abs() - 0.97).abs() < 1e-6) {
                        continue; // within the tanh's error of the threshold
                    }
                    let want_j = col.filter(|h| h.abs() > 0.97).count() as f32;
                    prop_assert_eq!(sat[j], want_j, "saturated rows of unit {} on {}", j, isa);
                }
            }
        }
    }

    /// The optimiser kernels: `adamw` (parameters and both moments, chained over a few updates
    /// so the moments are not zero) and `scale` give the scalar bits; `sum_squares` is within
    /// `2 n u sum x^2` of scalar (FMA and lane-wise partial sums) and gives the same bits twice.
    #[test]
    fn adamw_scale_and_sum_squares_match_scalar(
        len in prop_oneof![width(), 0usize..3], seed: u64, t0 in 1u64..3000,
        lr in prop_oneof![Just(1e-3f32), Just(0.1), Just(0.0), 1e-6f32..1.0],
        wd in prop_oneof![Just(0.0f32), Just(0.01), 0.0f32..1.0],
        special in prop_oneof![Just(0.0f32), Just(-0.0), Just(1e-40), Just(1e20), Just(f32::NAN), Just(f32::INFINITY)],
    ) {
        let mut rng = common_rng(seed);
        let p0: Vec<f32> = (0..len).map(|_| rng.f32()).collect();
        let grads: Vec<Vec<f32>> = (0..3)
            .map(|_| {
                let mut g: Vec<f32> = (0..len).map(|_| 0.1 * rng.f32()).collect();
                if len > 0 {
                    g[(rng.u64() % len as u64) as usize] = special;
                }
                g
            })
            .collect();
        let opt = makemore_core::AdamW { weight_decay: wd, ..makemore_core::AdamW::MAKEMORE };
        let run = |k: Kernels| {
            let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; len], vec![0.0; len]);
            for (i, g) in grads.iter().enumerate() {
                let c = opt.step(lr, t0 + i as u64).unwrap();
                k.adamw(&mut p, &mut m, &mut v, g, c).unwrap();
            }
            (p, m, v)
        };
        let want = run(SCALAR);
        let mut sq_want = p0.clone();
        sq_want.extend(&grads[0]);
        let ss_want = SCALAR.sum_squares(&sq_want);
        let mut scaled_want = sq_want.clone();
        SCALAR.scale(&mut scaled_want, 0.37);
        for k in vector_paths() {
            let isa = k.isa();
            let got = run(k);
            assert_same_bits("adamw p", isa, &got.0, &want.0);
            assert_same_bits("adamw m", isa, &got.1, &want.1);
            assert_same_bits("adamw v", isa, &got.2, &want.2);
            let mut scaled = sq_want.clone();
            k.scale(&mut scaled, 0.37);
            assert_same_bits("scale", isa, &scaled, &scaled_want);
            let ss = k.sum_squares(&sq_want);
            assert_same_bits("sum_squares twice", isa, &[k.sum_squares(&sq_want)], &[ss]);
            if ss_want.is_finite() {
                let abs: f64 = sq_want.iter().map(|&x| x as f64 * x as f64).sum();
                assert_within("sum_squares", isa, &[ss], &[ss_want], &[dot_bound(sq_want.len(), abs)]);
            } else {
                // an infinity or NaN among the values (or an overflow): the same on every path
                assert_same_bits("sum_squares of a non-finite", isa, &[ss], &[ss_want]);
            }
        }
    }

    /// The finiteness scan on every path, with at most one NaN or infinity anywhere (in a full
    /// block, the partial vector or the last lane); the largest floats are finite.
    #[test]
    fn all_finite_finds_any_nan_or_infinity(
        len in 0usize..300, seed: u64, at: prop::sample::Index,
        bad in prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(f32::MAX), Just(-f32::MAX), Just(1e-45)],
    ) {
        let mut rng = common_rng(seed);
        let mut x: Vec<f32> = (0..len).map(|_| 1e30 * rng.f32()).collect();
        if len > 0 {
            x[at.index(len)] = bad;
        }
        let want = x.iter().all(|v| v.is_finite());
        for k in std::iter::once(SCALAR).chain(vector_paths()) {
            prop_assert_eq!(k.all_finite(&x), want, "{} on {:?}", k.isa(), bad);
        }
    }

    /// `cross_entropy_sum` (probs, the summed loss; the vector exp) within a few ulp of scalar, and
    /// `cross_entropy_backward` with the batch's `n` (these rows, or more: a shard) the same bits.
    #[test]
    fn cross_entropy_is_within_a_few_ulp(
        n in rows(1, 40), v in width(), seed: u64, scale in prop_oneof![Just(1.0f32), Just(30.0)],
        extra in prop_oneof![Just(0usize), 1usize..100],
    ) {
        let mut rng = common_rng(seed);
        let logits: Vec<f32> = (0..n * v).map(|_| scale * rng.f32()).collect();
        let yb: Vec<u8> = (0..n).map(|_| (rng.u64() % v as u64) as u8).collect();
        for k in vector_paths() {
            let (mut p_k, mut p_s) = (logits.clone(), logits.clone());
            let loss_k = k.cross_entropy_sum(&mut p_k, &yb).unwrap();
            let loss_s = SCALAR.cross_entropy_sum(&mut p_s, &yb).unwrap();
            // each count within EXP_TANH_ULP = 3 ulp of scalar (vector exp), i.e. a relative
            // 6u (an ulp is at most 2u relative); counts_sum is also summed in another order:
            // relative (v + 6) u; probs one more rounding: (v + 14) u covers them. A row's loss
            // l_i >= 0 then differs by <= (v+14) u (1 + l_i), and the n row losses are summed
            // in the same order, each path's sum within n u sum l_i of exact: in all
            // (v+14) u (n + loss) + 2 n u loss.
            let rel = v as f64 + 14.0;
            let bound: Vec<f64> = p_s.iter().map(|&p| rel * U * p.abs() as f64 + 1e-45).collect();
            assert_within("cross_entropy_sum probs", k.isa(), &p_k, &p_s, &bound);
            let (nf, loss) = (n as f64, loss_s.abs() as f64);
            let loss_bound = rel * U * (nf + loss) + 2.0 * nf * U * loss;
            assert_within("cross_entropy_sum loss", k.isa(), &[loss_k], &[loss_s], &[loss_bound]);
            let batch = n + extra;
            let mut d_k = p_s.clone();
            k.cross_entropy_backward(&mut d_k, &yb, batch).unwrap();
            SCALAR.cross_entropy_backward(&mut p_s, &yb, batch).unwrap();
            assert_same_bits("cross_entropy_backward", k.isa(), &d_k, &p_s);
        }
    }

    /// `fma_peak` on every path, scalar included: each value goes through `x = x * 0.5 + 1`
    /// `iters` times, giving a direct loop's bits (the product by 0.5 is exact, so a fused and an
    /// unfused multiply-add agree), within rounding of the closed form `2 + (x0 - 2) / 2^iters`.
    /// Lengths cover whole blocks of 12 vectors (192 values on AVX-512) and every remainder.
    #[test]
    fn fma_peak_gives_the_closed_form_on_every_path(
        len in if cfg!(miri) { 0usize..40 } else { 0usize..450 },
        iters in if cfg!(miri) { 0usize..6 } else { 0usize..90 },
        scale in prop_oneof![Just(1.0f32), Just(1e3), Just(1e30)],
        seed: u64, at: prop::sample::Index,
        special in prop_oneof![Just(0.0f32), Just(2.0), Just(1e-40), Just(f32::NAN), Just(f32::INFINITY), Just(-f32::MAX)],
    ) {
        let mut rng = common_rng(seed);
        let mut x0: Vec<f32> = (0..len).map(|_| scale * rng.f32()).collect();
        if len > 0 {
            x0[at.index(len)] = special;
        }
        let mut direct = x0.clone();
        for x in &mut direct {
            for _ in 0..iters {
                *x = *x * 0.5 + 1.0;
            }
        }
        // Round i adds at most u |x_(i+1)| <= u (|x0| / 2^(i+1) + 2), halved by each later
        // round: at most u (iters |x0| / 2^iters + 4) in all; twice that as the bound.
        let halvings = 0.5f64.powi(iters as i32);
        for (i, (&x, &d)) in x0.iter().zip(&direct).enumerate() {
            let closed = 2.0 + (x as f64 - 2.0) * halvings;
            let bound = 2.0 * U * (iters as f64 * (x as f64).abs() * halvings + 4.0);
            prop_assert!(
                (d as f64 - closed).abs() <= bound || (d.is_nan() && closed.is_nan())
                    || d as f64 == closed,
                "direct loop: element {} from {:e} after {} rounds is {:e}, closed form {:e}",
                i, x, iters, d, closed
            );
        }
        for k in std::iter::once(SCALAR).chain(vector_paths()) {
            let mut acc = x0.clone();
            k.fma_peak(&mut acc, iters);
            assert_same_bits(&format!("fma_peak ({len} values, {iters} rounds)"), k.isa(), &acc, &direct);
        }
    }
}

/// A tiny deterministic generator for test data.
struct TestRng(u64);
impl TestRng {
    fn u64(&mut self) -> u64 {
        use makemore_core::rng::Rng;
        let mut s = makemore_core::rng::SplitMix64(self.0);
        let x = s.next_u64();
        self.0 = s.0;
        x
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        ((self.u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}
fn common_rng(seed: u64) -> TestRng {
    TestRng(seed)
}

/// A batch of `n` rows for `dims` whose targets follow the context a little (something to learn).
fn batch(rng: &mut TestRng, dims: &Dims, n: usize) -> (Vec<u8>, Vec<u8>) {
    let (t, v) = (dims.context, dims.vocab as u64);
    let xb: Vec<u8> = (0..n * t).map(|_| (rng.u64() % v) as u8).collect();
    let yb: Vec<u8> = (0..n)
        .map(|i| ((xb[i * t + t - 1] as u64 + rng.u64() % 3) % v) as u8)
        .collect();
    (xb, yb)
}

/// Parameters at the notebook's initialisation (generator seeded as the notebook's).
fn notebook_params(dims: Dims) -> Vec<f32> {
    let mut p = vec![f32::NAN; dims.num_params()];
    ParamsMut::from_flat(dims, &mut p)
        .unwrap()
        .init_notebook(&mut makemore_core::rng::SplitMix64(2147483647));
    p
}

/// `steps` steps of [`Kernels::train_step`] on batches of `n` rows from `seed`, shards run by
/// `schedule`: the losses and the parameters after.
fn train(
    k: Kernels,
    schedule: &impl Schedule,
    dims: Dims,
    n: usize,
    steps: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut p = notebook_params(dims);
    let mut scratch = vec![f32::NAN; Step::flat_len(&dims, n).unwrap()];
    let mut params = ParamsMut::from_flat(dims, &mut p).unwrap();
    let mut step = Step::from_flat(dims, n, &mut scratch).unwrap();
    let mut rng = common_rng(seed);
    let losses = (0..steps)
        .map(|i| {
            let (xb, yb) = batch(&mut rng, &dims, n);
            let lr = if i < steps / 2 { 0.1 } else { 0.01 };
            k.train_step(schedule, &mut params, &mut step, &xb, &yb, lr)
                .unwrap()
        })
        .collect();
    (losses, p)
}

/// The whole step at the Exercise-4 size: 1000 steps on each vector path and on the scalar path
/// from the same initialisation and batches; the losses stay within 1e-4 of each other.
#[test]
#[cfg_attr(miri, ignore = "a thousand Exercise-4 steps take hours under Miri")]
fn a_thousand_training_steps_track_the_scalar_loss_curve() {
    let (dims, n) = (Dims::EXERCISE4, 32);
    let (scalar, _) = train(SCALAR, &InTurn, dims, n, 1000, 42);
    assert!(
        scalar[999] < scalar[0] - 0.5,
        "the scalar run learns: {} -> {}",
        scalar[0],
        scalar[999]
    );
    for k in vector_paths() {
        let (curve, _) = train(k, &InTurn, dims, n, 1000, 42);
        // a NaN difference is the worst (f32::max would drop it: a NaN loss curve would pass)
        let worst = curve
            .iter()
            .zip(&scalar)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, |w, d| if d.is_nan() || d > w { d } else { w });
        println!(
            "{}: worst loss difference over 1000 steps {worst:e}",
            k.isa()
        );
        assert!(worst <= 1e-4, "{}: loss curves differ by {worst}", k.isa());
    }
}

/// Runs the chunks last to first: a schedule no thread pool would pick, so a step that depended
/// on the order its shards run in would show it.
struct Reverse;

impl Schedule for Reverse {
    fn for_each_chunk(&self, data: &mut [f32], len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        let mut chunks: Vec<(usize, &mut [f32])> =
            data.chunks_mut(len.max(1)).enumerate().collect();
        while let Some((i, chunk)) = chunks.pop() {
            f(i, chunk);
        }
    }

    fn for_each_pair(
        &self,
        a: &mut [f32],
        a_len: usize,
        b: &mut [f32],
        b_len: usize,
        f: &(dyn Fn(usize, &mut [f32], &mut [f32]) + Sync),
    ) {
        let pairs = a.chunks_mut(a_len.max(1)).zip(b.chunks_mut(b_len.max(1)));
        let mut pairs: Vec<_> = pairs.enumerate().collect();
        while let Some((i, (a, b))) = pairs.pop() {
            f(i, a, b);
        }
    }
}

/// A small model, so that the sharded runs stay quick; smaller still under Miri, where the
/// AVX2 intrinsics are interpreted one by one.
const SMALL: Dims = if cfg!(miri) {
    Dims {
        vocab: 7,
        context: 2,
        embedding: 3,
        hidden: 9,
    }
} else {
    Dims {
        vocab: 27,
        context: 3,
        embedding: 5,
        hidden: 24,
    }
};

/// Batches of 300 rows (5 shards: 4 of 64 rows and one of 44; under Miri 129 rows, 3 shards)
/// and of 2245 rows (36 shards, three waves of gradient slots: 17, 16 and 3 shards) give the
/// same losses and parameters, bit for bit, whether the shards run in turn or last to first,
/// on every path.
#[test]
fn sharded_steps_give_the_same_bits_in_any_order() {
    let sizes: &[usize] = if cfg!(miri) { &[129] } else { &[300, 2245] };
    for &n in sizes {
        sharded_steps_in_any_order(n);
    }
}

fn sharded_steps_in_any_order(n: usize) {
    let mut scratch = vec![0f32; Step::flat_len(&SMALL, n).unwrap()];
    let shards = Step::from_flat(SMALL, n, &mut scratch).unwrap().shards();
    assert!(shards >= 3, "{n} rows make {shards} shards");
    let steps = if cfg!(miri) { 1 } else { 3 };
    for k in std::iter::once(SCALAR).chain(vector_paths()) {
        let (loss_a, p_a) = train(k, &InTurn, SMALL, n, steps, 7);
        let (loss_b, p_b) = train(k, &Reverse, SMALL, n, steps, 7);
        assert_same_bits(
            "sharded step: losses, reversed shards",
            k.isa(),
            &loss_b,
            &loss_a,
        );
        assert_same_bits(
            "sharded step: parameters, reversed shards",
            k.isa(),
            &p_b,
            &p_a,
        );
        assert_ne!(p_a, notebook_params(SMALL), "{}: the step trains", k.isa());
    }
}

/// One shard on the scalar path is the reference step [`train::train_step`], bit for bit: the
/// losses, the last gradient and the parameters after 3 steps.
#[test]
fn one_shard_on_scalar_is_the_reference_step() {
    let (n, steps) = if cfg!(miri) { (8, 3) } else { (32, 3) };
    let mut scratch = vec![f32::NAN; Step::flat_len(&SMALL, n).unwrap()];
    let mut step = Step::from_flat(SMALL, n, &mut scratch).unwrap();
    assert_eq!(step.shards(), 1);
    let (mut p_a, mut p_b) = (notebook_params(SMALL), notebook_params(SMALL));
    let mut g = vec![f32::NAN; SMALL.num_params()];
    let mut a = vec![f32::NAN; ActsMut::<f32>::flat_len(&SMALL, n)];
    let mut params_a = ParamsMut::from_flat(SMALL, &mut p_a).unwrap();
    let mut params_b = ParamsMut::from_flat(SMALL, &mut p_b).unwrap();
    let mut grads = ParamsMut::from_flat(SMALL, &mut g).unwrap();
    let mut acts = ActsMut::from_flat(SMALL, n, &mut a).unwrap();
    let mut rng = common_rng(5);
    for i in 0..steps {
        let (xb, yb) = batch(&mut rng, &SMALL, n);
        let want = train::train_step(&mut params_b, &mut grads, &mut acts, &xb, &yb, 0.1).unwrap();
        let got = SCALAR
            .train_step(&InTurn, &mut params_a, &mut step, &xb, &yb, 0.1)
            .unwrap();
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "step {i}: loss {got} vs {want}"
        );
        assert_same_bits(
            "the last gradient",
            Isa::Scalar,
            step.grads(),
            grads.as_ref().tensors().concat().as_slice(),
        );
    }
    assert_same_bits("parameters after 3 steps", Isa::Scalar, &p_a, &p_b);
}

/// `out[i, j] = fma(a[i, k-1], b[k-1, j], ... fma(a[i, 0], b[0, j], init) ...)`: the one FMA
/// chain per output, in order, that the vector products promise; on the scalar path the same
/// chain with a multiply then an add (its plain loops), and on SIMD128 too (it has no FMA: its
/// `fma` is a multiply then an add).
fn fma_chain(
    isa: Isa,
    init: f32,
    k: usize,
    a: impl Fn(usize) -> f32,
    b: impl Fn(usize) -> f32,
) -> f32 {
    if matches!(isa, Isa::Scalar | Isa::Simd128) {
        (0..k).fold(init, |acc, kk| acc + a(kk) * b(kk))
    } else {
        (0..k).fold(init, |acc, kk| a(kk).mul_add(b(kk), acc))
    }
}

/// A product whose `b` is larger than its output and whose shared axis is longer than one
/// chunk (the large-model shapes: W1 of a hidden 4096 layer) is cut into passes over chunks of
/// the axis with the partial sums kept in the output: each output must still be the one FMA
/// chain in order, bit for bit, for linear_forward and matmul_tn, with every strip width and
/// a leftover row (the scalar path, when `MAKEMORE_ISA=scalar` forces it here, and SIMD128:
/// the unfused chain).
#[test]
fn long_products_are_one_fma_chain_per_output() {
    let mut rng = common_rng(17);
    for k in vector_paths() {
        // Miri interprets every lane: one small shape, still two chunks
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(2, 300, 9)]
        } else {
            &[(3, 700, 40), (5, 600, 27), (2, 300, 200), (1, 520, 9)]
        };
        for &(n, kdim, m) in shapes {
            let a: Vec<f32> = (0..n * kdim).map(|_| rng.f32()).collect();
            let b: Vec<f32> = (0..kdim * m).map(|_| rng.f32()).collect();
            let bias: Vec<f32> = (0..m).map(|_| rng.f32()).collect();
            let mut got = nan_vec(n * m);
            k.linear_forward(&mut got, &a, &b, &bias, m).unwrap();
            for i in 0..n {
                for j in 0..m {
                    let want = fma_chain(
                        k.isa(),
                        bias[j],
                        kdim,
                        |kk| a[i * kdim + kk],
                        |kk| b[kk * m + j],
                    );
                    assert_eq!(
                        got[i * m + j].to_bits(),
                        want.to_bits(),
                        "linear_forward on {}: ({n}, {kdim}) @ ({kdim}, {m}) at ({i}, {j})",
                        k.isa()
                    );
                }
            }
            // matmul_tn: out (n, m) = a.T @ bn with a (kdim, n), bn (kdim, m)
            let mut got = nan_vec(n * m);
            k.matmul_tn(&mut got, &a, &b, n, m).unwrap();
            for r in 0..n {
                for j in 0..m {
                    let want =
                        fma_chain(k.isa(), 0.0, kdim, |kk| a[kk * n + r], |kk| b[kk * m + j]);
                    assert_eq!(
                        got[r * m + j].to_bits(),
                        want.to_bits(),
                        "matmul_tn on {}: ({kdim}, {n}).T @ ({kdim}, {m}) at ({r}, {j})",
                        k.isa()
                    );
                }
            }
        }
    }
}
