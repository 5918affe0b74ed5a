//! Every vector kernel against the scalar reference, on every path this machine runs.
//!
//! `MAKEMORE_ISA=avx2` (or `avx512`, `neon`, `scalar`) tests only that path and fails if the CPU
//! cannot run it; unset (or `auto`), every available path is tested. Outputs are pre-filled with
//! NaN so a lane that is never written, or a read of an unwritten value, shows. Shapes include
//! widths that are not multiples of any lane count (27, 30, 63, 65, 200).
//!
//! Tolerances: the elementwise kernels (exp, tanh, batchnorm, gather/scatter, SGD, ...) must give
//! the scalar code's bits. The products use FMA and a different summation grouping, so each
//! element `sum_k a_k b_k` may differ by the standard bound `2 k u sum_k |a_k b_k|`
//! (u = 2^-24), with `k` the length of the sum.

use makemore_core::simd::{Isa, Kernels};
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
    for k in &paths {
        assert!(k.isa().is_available());
    }
    assert_eq!(Isa::parse("avx512"), Some(Isa::Avx512));
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

    #[test]
    fn exp_and_tanh_give_the_scalar_bits(
        x in prop::collection::vec(prop_oneof![
            -110.0f32..100.0,
            -1.0f32..1.0,
            Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY),
            Just(0.0), Just(-0.0), Just(1e-40), Just(9.5), Just(0.625), Just(-88.7)
        ], 0..70)
    ) {
        for k in vector_paths() {
            for (name, f) in [("exp", 0), ("tanh", 1)] {
                let mut got = nan_vec(x.len());
                let mut want = nan_vec(x.len());
                if f == 0 {
                    k.exp(&mut got, &x);
                    SCALAR.exp(&mut want, &x);
                } else {
                    k.tanh(&mut got, &x);
                    SCALAR.tanh(&mut want, &x);
                }
                assert_same_bits(name, k.isa(), &got, &want);
            }
        }
    }

    #[test]
    fn embedding_gather_and_scatter_give_the_scalar_bits(
        v in 1usize..30, e in width(), n in rows(1, 12), t in 1usize..4, seed: u64,
    ) {
        let mut rng = common_rng(seed);
        let c: Vec<f32> = (0..v * e).map(|_| rng.f32()).collect();
        let xb: Vec<u8> = (0..n * t).map(|_| (rng.u64() % v as u64) as u8).collect();
        let demb: Vec<f32> = (0..n * t * e).map(|_| rng.f32()).collect();
        for k in vector_paths() {
            let (mut got, mut want) = (nan_vec(n * t * e), nan_vec(n * t * e));
            k.embed_gather(&mut got, &xb, &c, e);
            SCALAR.embed_gather(&mut want, &xb, &c, e);
            assert_same_bits("embed_gather", k.isa(), &got, &want);
            let (mut got, mut want) = (nan_vec(v * e), nan_vec(v * e));
            k.embed_scatter_add(&mut got, &demb, &xb);
            SCALAR.embed_scatter_add(&mut want, &demb, &xb);
            assert_same_bits("embed_scatter_add", k.isa(), &got, &want);
        }
    }

    #[test]
    fn products_are_within_the_dot_product_bound(
        n in rows(1, 11), kdim in width(), m in width(), seed: u64, with_bias: bool,
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
            k.linear_forward(&mut got, &a, &b, &bias, m);
            SCALAR.linear_forward(&mut want, &a, &b, &bias, m);
            assert_within("linear_forward", k.isa(), &got, &want, &bound_nn);

            let (mut got, mut want) = (nan_vec(kdim * m), nan_vec(kdim * m));
            k.matmul_tn(&mut got, &a, &bn, kdim, m);
            SCALAR.matmul_tn(&mut want, &a, &bn, kdim, m);
            assert_within("matmul_tn", k.isa(), &got, &want, &bound_tn);

            let (mut got, mut want) = (nan_vec(n * m), nan_vec(n * m));
            k.matmul_nt(&mut got, &a, &bt, kdim);
            SCALAR.matmul_nt(&mut want, &a, &bt, kdim);
            assert_within("matmul_nt", k.isa(), &got, &want, &bound_nt);

            let (mut got, mut want) = (h.clone(), h.clone());
            k.linear_tanh_backward(&mut got, &a, &b, m);
            SCALAR.linear_tanh_backward(&mut want, &a, &b, m);
            assert_within("linear_tanh_backward", k.isa(), &got, &want, &bound_tanh);

            let (mut got, mut want) = (nan_vec(kdim * m), nan_vec(kdim * m));
            k.transpose(&mut got, &bt, kdim);
            SCALAR.transpose(&mut want, &bt, kdim);
            assert_same_bits("transpose", k.isa(), &got, &want);
        }
    }

    #[test]
    fn batchnorm_tanh_bias_and_sgd_give_the_scalar_bits(
        n in rows(2, 40), hidden in width(), seed: u64,
    ) {
        let mut rng = common_rng(seed);
        let hprebn: Vec<f32> = (0..n * hidden).map(|_| 3.0 * rng.f32() + 0.5).collect();
        let bngain: Vec<f32> = (0..hidden).map(|_| 1.0 + rng.f32()).collect();
        let bnbias: Vec<f32> = (0..hidden).map(|_| rng.f32()).collect();
        let dh: Vec<f32> = (0..n * hidden).map(|_| rng.f32()).collect();
        for k in vector_paths() {
            let isa = k.isa();
            let (mut raw_k, mut raw_s) = (hprebn.clone(), hprebn.clone());
            let (mut mean_k, mut mean_s) = (nan_vec(hidden), nan_vec(hidden));
            let (mut inv_k, mut inv_s) = (nan_vec(hidden), nan_vec(hidden));
            k.batchnorm_forward(&mut raw_k, &mut mean_k, &mut inv_k);
            SCALAR.batchnorm_forward(&mut raw_s, &mut mean_s, &mut inv_s);
            assert_same_bits("batchnorm_forward bnraw", isa, &raw_k, &raw_s);
            assert_same_bits("batchnorm_forward bnmeani", isa, &mean_k, &mean_s);
            assert_same_bits("batchnorm_forward bnvar_inv", isa, &inv_k, &inv_s);

            let (mut h_k, mut h_s) = (nan_vec(n * hidden), nan_vec(n * hidden));
            k.scale_shift_tanh_forward(&mut h_k, &raw_s, &bngain, &bnbias);
            SCALAR.scale_shift_tanh_forward(&mut h_s, &raw_s, &bngain, &bnbias);
            assert_same_bits("scale_shift_tanh_forward", isa, &h_k, &h_s);

            let (mut d_k, mut d_s) = (dh.clone(), dh.clone());
            k.tanh_backward(&mut d_k, &h_s);
            SCALAR.tanh_backward(&mut d_s, &h_s);
            assert_same_bits("tanh_backward", isa, &d_k, &d_s);

            let (mut g_k, mut g_s) = (nan_vec(hidden), nan_vec(hidden));
            let (mut b_k, mut b_s) = (nan_vec(hidden), nan_vec(hidden));
            let mut d_k = d_s.clone();
            k.batchnorm_backward(&mut d_k, &mut g_k, &mut b_k, &raw_s, &inv_s, &bngain);
            SCALAR.batchnorm_backward(&mut d_s, &mut g_s, &mut b_s, &raw_s, &inv_s, &bngain);
            assert_same_bits("batchnorm_backward dhprebn", isa, &d_k, &d_s);
            assert_same_bits("batchnorm_backward dbngain", isa, &g_k, &g_s);
            assert_same_bits("batchnorm_backward dbnbias", isa, &b_k, &b_s);

            let (mut s_k, mut s_s) = (nan_vec(hidden), nan_vec(hidden));
            k.bias_backward(&mut s_k, &dh);
            SCALAR.bias_backward(&mut s_s, &dh);
            assert_same_bits("bias_backward", isa, &s_k, &s_s);

            let (mut i_k, mut i_s) = (hprebn.clone(), hprebn.clone());
            k.batchnorm_tanh_inference(&mut i_k, &mean_s, &inv_s, &bngain, &bnbias);
            SCALAR.batchnorm_tanh_inference(&mut i_s, &mean_s, &inv_s, &bngain, &bnbias);
            assert_same_bits("batchnorm_tanh_inference", isa, &i_k, &i_s);

            let (mut p_k, mut p_s) = (hprebn.clone(), hprebn.clone());
            k.sgd(&mut p_k, &dh, 0.1);
            SCALAR.sgd(&mut p_s, &dh, 0.1);
            assert_same_bits("sgd", isa, &p_k, &p_s);
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

    #[test]
    fn cross_entropy_is_within_a_few_ulp(
        n in rows(1, 40), v in width(), seed: u64, scale in prop_oneof![Just(1.0f32), Just(30.0)],
    ) {
        let mut rng = common_rng(seed);
        let logits: Vec<f32> = (0..n * v).map(|_| scale * rng.f32()).collect();
        let yb: Vec<u8> = (0..n).map(|_| (rng.u64() % v as u64) as u8).collect();
        for k in vector_paths() {
            let (mut p_k, mut p_s) = (logits.clone(), logits.clone());
            let loss_k = k.cross_entropy_forward(&mut p_k, &yb);
            let loss_s = SCALAR.cross_entropy_forward(&mut p_s, &yb);
            // counts_sum is summed in another order: relative error <= v u per row; probs one
            // more rounding; the loss adds ln's (absolute) error, <= v u, to a value >= 0.
            let bound: Vec<f64> = p_s.iter().map(|&p| (v as f64 + 2.0) * U * p.abs() as f64 + 1e-45).collect();
            assert_within("cross_entropy_forward probs", k.isa(), &p_k, &p_s, &bound);
            let loss_bound = (v as f64 + 2.0) * U * (1.0 + loss_s.abs() as f64) + 2.0 * U * loss_s.abs() as f64;
            assert_within("cross_entropy_forward loss", k.isa(), &[loss_k], &[loss_s], &[loss_bound]);
            let mut d_k = p_s.clone();
            k.cross_entropy_backward(&mut d_k, &yb);
            SCALAR.cross_entropy_backward(&mut p_s, &yb);
            assert_same_bits("cross_entropy_backward", k.isa(), &d_k, &p_s);
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

/// The whole step at the Exercise-4 size: 1000 steps on each vector path and on the scalar path
/// from the same initialisation and batches; the losses stay within 1e-4 of each other.
#[test]
#[cfg_attr(miri, ignore = "a thousand Exercise-4 steps take hours under Miri")]
fn a_thousand_training_steps_track_the_scalar_loss_curve() {
    use makemore_core::model::Dims;
    use makemore_core::train::ActsMut;
    use makemore_core::ParamsMut;
    let dims = Dims::EXERCISE4;
    let n = 32;
    let run = |k: Kernels| -> Vec<f32> {
        let mut p = vec![0f32; dims.num_params()];
        let mut g = vec![0f32; dims.num_params()];
        let mut a = vec![0f32; ActsMut::<f32>::flat_len(&dims, n)];
        let mut w2t = vec![0f32; dims.vocab * dims.hidden];
        let mut params = ParamsMut::from_flat(dims, &mut p).unwrap();
        params.init_notebook(&mut makemore_core::rng::SplitMix64(2147483647));
        let mut grads = ParamsMut::from_flat(dims, &mut g).unwrap();
        let mut acts = ActsMut::from_flat(dims, n, &mut a).unwrap();
        let mut rng = common_rng(42);
        (0..1000)
            .map(|step| {
                let xb: Vec<u8> = (0..n * dims.context)
                    .map(|_| (rng.u64() % 27) as u8)
                    .collect();
                // targets follow the context a little, so there is something to learn
                let yb: Vec<u8> = (0..n)
                    .map(|i| (xb[i * 3 + 2] + (rng.u64() % 3) as u8) % 27)
                    .collect();
                let lr = if step < 500 { 0.1 } else { 0.01 };
                k.train_step(&mut params, &mut grads, &mut acts, &mut w2t, &xb, &yb, lr)
                    .unwrap()
            })
            .collect()
    };
    let scalar = run(SCALAR);
    assert!(
        scalar[999] < scalar[0] - 0.5,
        "the scalar run learns: {} -> {}",
        scalar[0],
        scalar[999]
    );
    for k in vector_paths() {
        let curve = run(k);
        let worst = curve
            .iter()
            .zip(&scalar)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "{}: worst loss difference over 1000 steps {worst:e}",
            k.isa()
        );
        assert!(worst <= 1e-4, "{}: loss curves differ by {worst}", k.isa());
    }
}
