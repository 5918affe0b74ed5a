//! Fuzz target `simd`: each vector kernel against the scalar one on arbitrary inputs (NaN,
//! infinities, subnormals, any bit pattern) and shapes, on every path this CPU runs.
//!
//! - Kernels documented as giving the scalar bits must give them (any NaN matches any NaN).
//! - exp, tanh and the batchnorm `h` (the vector exp and tanh use FMA): within 3 ulp of scalar
//!   (2 ulp from the correctly rounded result on the vector paths, 1 on scalar), NaN where
//!   scalar gives NaN.
//! - Products (FMA, another summation grouping): when every input is finite, each output that
//!   is finite on both paths is within `2 k u sum|a b|` of scalar.
//! - Cross-entropy forward: the same NaN positions; finite probabilities within `(V+14) u`.
//! - Every call with consistent shapes is `Ok`, and nothing panics.
//!
//! Shared, as a plain function, by the fuzz target and the stable replay test
//! (`core/tests/fuzz_replay.rs` includes this file), so it uses only `makemore_core` and std.

use makemore_core::simd::{Isa, Kernels};

/// Reads the fuzzer's bytes as values; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::from(self.u8()) % (hi - lo + 1)
    }

    /// A float: often a special value, else small values or any bit pattern.
    fn f32(&mut self) -> f32 {
        const SPECIAL: [f32; 12] = [
            0.0,
            -0.0,
            1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            88.8,
            -104.5,
            9.5,
        ];
        match self.u8() {
            t if t < 32 => SPECIAL[usize::from(t) % SPECIAL.len()],
            t if t < 200 => (f32::from(self.u8()) - 128.0) / 16.0 + f32::from(t) / 1024.0,
            _ => f32::from_bits(u32::from_le_bytes([
                self.u8(),
                self.u8(),
                self.u8(),
                self.u8(),
            ])),
        }
    }

    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.f32()).collect()
    }

    fn tokens(&mut self, len: usize, vocab: usize) -> Vec<u8> {
        (0..len)
            .map(|_| (usize::from(self.u8()) % vocab) as u8)
            .collect()
    }
}

fn same_bits(what: &str, isa: Isa, got: &[f32], want: &[f32]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what} on {isa}: [{i}] {g:e} vs scalar {w:e}"
        );
    }
}

const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Within 3 ulp of scalar (see the module doc); NaN matches NaN only.
fn within_3_ulp(what: &str, isa: Isa, got: &[f32], want: &[f32]) {
    let key = |x: f32| {
        let m = i64::from(x.to_bits() & 0x7fff_ffff);
        if x.is_sign_negative() {
            -m
        } else {
            m
        }
    };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if g.is_nan() || w.is_nan() {
            g.is_nan() && w.is_nan()
        } else {
            (key(g) - key(w)).abs() <= 3
        };
        assert!(ok, "{what} on {isa}: [{i}] {g:e} vs scalar {w:e}");
    }
}

/// Products: when all inputs are finite, outputs finite on both paths are within the bound
/// (`bound[i]` infinite or NaN: no check of that element).
fn within(what: &str, isa: Isa, got: &[f32], want: &[f32], bound: &[f64], finite_inputs: bool) {
    if !finite_inputs {
        return;
    }
    for (i, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        if !b.is_finite() || !w.is_finite() || !g.is_finite() {
            continue;
        }
        let err = (f64::from(g) - f64::from(w)).abs();
        assert!(
            err <= b,
            "{what} on {isa}: [{i}] {g:e} vs scalar {w:e} (bound {b:e})"
        );
    }
}

/// What [`batchnorm_forward`] returns, in order.
const BN_FORWARD: [&str; 6] = [
    "bias_backward hprebn.sum(0)",
    "batchnorm_center bndiff",
    "batchnorm_center (bndiff**2).sum(0)",
    "bnvar_inv",
    "batchnorm_scale_shift_tanh bnraw",
    "batchnorm_scale_shift_tanh h",
];

/// The batchnorm forward of a batch `hprebn` (n >= 2, H = `bngain.len()`) as the step runs it:
/// the column sum, bnmeani, `batchnorm_center`, bnvar_inv, `batchnorm_scale_shift_tanh`.
fn batchnorm_forward(k: &Kernels, hprebn: &[f32], bngain: &[f32], bnbias: &[f32]) -> [Vec<f32>; 6] {
    let hd = bngain.len();
    let n = (hprebn.len() / hd) as f32;
    let mut sum = vec![f32::NAN; hd];
    k.bias_backward(&mut sum, hprebn).unwrap();
    let bnmeani: Vec<f32> = sum.iter().map(|&x| x * (1.0 / n)).collect();
    let (mut bndiff, mut sum2) = (hprebn.to_vec(), vec![f32::NAN; hd]);
    k.batchnorm_center(&mut bndiff, &bnmeani, &mut sum2)
        .unwrap();
    let eps = makemore_core::BN_EPS as f32;
    let bnvar_inv: Vec<f32> = sum2
        .iter()
        .map(|&q| 1.0 / makemore_core::math::sqrt_f32(1.0 / (n - 1.0) * q + eps))
        .collect();
    let (mut bnraw, mut h) = (bndiff.clone(), vec![f32::NAN; hprebn.len()]);
    k.batchnorm_scale_shift_tanh(&mut h, &mut bnraw, &bnvar_inv, bngain, bnbias)
        .unwrap();
    [sum, bndiff, sum2, bnvar_inv, bnraw, h]
}

pub fn check(data: &[u8]) {
    let mut input = Input(data);
    let kernel = input.u8() % 10;
    let n = input.range(1, 9);
    let m = input.range(1, 40);
    let k = input.range(1, 40);
    let paths: Vec<Kernels> = Isa::ALL
        .into_iter()
        .filter(|i| *i != Isa::Scalar && i.is_available())
        .map(|i| Kernels::new(i).expect("available"))
        .collect();
    let s = Kernels::scalar();
    match kernel {
        0 => {
            let x = input.vec(m);
            for p in &paths {
                let (mut a, mut b) = (vec![f32::NAN; m], vec![f32::NAN; m]);
                p.exp(&mut a, &x).unwrap();
                s.exp(&mut b, &x).unwrap();
                within_3_ulp("exp", p.isa(), &a, &b);
                p.tanh(&mut a, &x).unwrap();
                s.tanh(&mut b, &x).unwrap();
                within_3_ulp("tanh", p.isa(), &a, &b);
            }
        }
        1 => {
            let n = n.max(2);
            let (x, g, b) = (input.vec(n * m), input.vec(m), input.vec(m));
            let want = batchnorm_forward(&s, &x, &g, &b);
            for p in &paths {
                let got = batchnorm_forward(p, &x, &g, &b);
                for (name, (a, b)) in BN_FORWARD.iter().zip(got.iter().zip(&want)) {
                    if name.ends_with(" h") {
                        within_3_ulp(name, p.isa(), a, b);
                    } else {
                        same_bits(name, p.isa(), a, b);
                    }
                }
            }
        }
        2 => {
            let (raw, g, b, d) = (
                input.vec(n * m),
                input.vec(m),
                input.vec(m),
                input.vec(n * m),
            );
            let inv = input.vec(m);
            // the rows of the whole batch when these n rows are a shard of it
            let batch = n + input.range(0, 3) * input.range(0, 70);
            for p in &paths {
                let (mut ha, mut hb) = (vec![f32::NAN; n * m], vec![f32::NAN; n * m]);
                let (mut ra, mut rb) = (raw.clone(), raw.clone());
                p.batchnorm_scale_shift_tanh(&mut ha, &mut ra, &inv, &g, &b)
                    .unwrap();
                s.batchnorm_scale_shift_tanh(&mut hb, &mut rb, &inv, &g, &b)
                    .unwrap();
                same_bits("batchnorm_scale_shift_tanh bnraw", p.isa(), &ra, &rb);
                within_3_ulp("batchnorm_scale_shift_tanh h", p.isa(), &ha, &hb);
                let (mut da, mut db) = (d.clone(), d.clone());
                p.batchnorm_tanh_inference(&mut da, &b, &inv, &g, &b)
                    .unwrap();
                s.batchnorm_tanh_inference(&mut db, &b, &inv, &g, &b)
                    .unwrap();
                within_3_ulp("batchnorm_tanh_inference", p.isa(), &da, &db);
                let (mut ga, mut gb) = (vec![f32::NAN; m], vec![f32::NAN; m]);
                let (mut ba, mut bb) = (vec![f32::NAN; m], vec![f32::NAN; m]);
                p.batchnorm_backward_sums(&mut ga, &mut ba, &d, &raw)
                    .unwrap();
                s.batchnorm_backward_sums(&mut gb, &mut bb, &d, &raw)
                    .unwrap();
                same_bits("batchnorm_backward_sums dbngain", p.isa(), &ga, &gb);
                same_bits("batchnorm_backward_sums dbnbias", p.isa(), &ba, &bb);
                if batch >= 2 {
                    let (mut da, mut db) = (d.clone(), d.clone());
                    p.batchnorm_backward_apply(&mut da, &raw, &inv, &g, &gb, &bb, batch)
                        .unwrap();
                    s.batchnorm_backward_apply(&mut db, &raw, &inv, &g, &gb, &bb, batch)
                        .unwrap();
                    same_bits("batchnorm_backward_apply", p.isa(), &da, &db);
                }
                let (mut sa, mut sb) = (vec![f32::NAN; m], vec![f32::NAN; m]);
                p.bias_backward(&mut sa, &d).unwrap();
                s.bias_backward(&mut sb, &d).unwrap();
                same_bits("bias_backward", p.isa(), &sa, &sb);
                let (mut pa, mut pb) = (d.clone(), d.clone());
                p.sgd(&mut pa, &raw, g[0]).unwrap();
                s.sgd(&mut pb, &raw, g[0]).unwrap();
                same_bits("sgd", p.isa(), &pa, &pb);
            }
        }
        3 => {
            let v = m;
            let logits = input.vec(n * v);
            let y = input.tokens(n, v);
            let batch = n + input.range(0, 3) * input.range(0, 70);
            for p in &paths {
                let (mut a, mut b) = (logits.clone(), logits.clone());
                let la = p.cross_entropy_sum(&mut a, &y).unwrap();
                let lb = s.cross_entropy_sum(&mut b, &y).unwrap();
                assert_eq!(la.is_nan(), lb.is_nan(), "cross-entropy loss {la} vs {lb}");
                for (i, (&pa, &pb)) in a.iter().zip(&b).enumerate() {
                    assert_eq!(pa.is_nan(), pb.is_nan(), "probs[{i}] {pa} vs {pb}");
                    if pb.is_finite() {
                        let bound = (v as f64 + 14.0) * U * f64::from(pb.abs()) + 1e-45;
                        assert!(
                            f64::from((pa - pb).abs()) <= bound,
                            "probs[{i}] {pa} vs {pb}"
                        );
                    }
                }
                let mut a = b.clone();
                p.cross_entropy_backward(&mut a, &y, batch).unwrap();
                s.cross_entropy_backward(&mut b, &y, batch).unwrap();
                same_bits("cross_entropy_backward", p.isa(), &a, &b);
            }
        }
        4 => {
            let (v, e) = (m, k.min(20));
            let c = input.vec(v * e);
            let x = input.tokens(n * 3, v);
            let demb = input.vec(n * 3 * e);
            for p in &paths {
                let (mut a, mut b) = (vec![f32::NAN; n * 3 * e], vec![f32::NAN; n * 3 * e]);
                p.embed_gather(&mut a, &x, &c, e).unwrap();
                s.embed_gather(&mut b, &x, &c, e).unwrap();
                same_bits("embed_gather", p.isa(), &a, &b);
                let (mut a, mut b) = (vec![f32::NAN; v * e], vec![f32::NAN; v * e]);
                p.embed_scatter_add(&mut a, &demb, &x).unwrap();
                s.embed_scatter_add(&mut b, &demb, &x).unwrap();
                same_bits("embed_scatter_add", p.isa(), &a, &b);
                let tab = input.vec(3 * v * m.min(8));
                let h = m.min(8);
                let b1 = input.vec(h);
                let tab = &tab[..3 * v * h];
                let (mut a, mut b) = (vec![f32::NAN; n * h], vec![f32::NAN; n * h]);
                p.embed_table_forward(&mut a, &x, tab, &b1, v).unwrap();
                s.embed_table_forward(&mut b, &x, tab, &b1, v).unwrap();
                same_bits("embed_table_forward", p.isa(), &a, &b);
            }
        }
        _ => {
            // products: a (n, k), b (k, m), bt (m, k), bn (n, m)
            let (a, b, bt, bn) = (
                input.vec(n * k),
                input.vec(k * m),
                input.vec(m * k),
                input.vec(n * m),
            );
            let bias = if kernel % 2 == 0 {
                input.vec(m)
            } else {
                Vec::new()
            };
            let finite = [&a, &b, &bt, &bn, &bias]
                .iter()
                .all(|v| v.iter().all(|x| x.is_finite()));
            let abs = |x: f32, y: f32| f64::from(x).abs() * f64::from(y).abs();
            let nn: Vec<f64> = (0..n * m)
                .map(|o| {
                    let (i, j) = (o / m, o % m);
                    let sum: f64 = (0..k).map(|kk| abs(a[i * k + kk], b[kk * m + j])).sum();
                    2.0 * (k + 2) as f64
                        * U
                        * (sum + bias.get(j).map_or(0.0, |x| f64::from(x.abs())))
                        + 1e-37
                })
                .collect();
            let tn: Vec<f64> = (0..k * m)
                .map(|o| {
                    let (r, j) = (o / m, o % m);
                    let sum: f64 = (0..n).map(|i| abs(a[i * k + r], bn[i * m + j])).sum();
                    2.0 * n as f64 * U * sum + 1e-37
                })
                .collect();
            let nt: Vec<f64> = (0..n * m)
                .map(|o| {
                    let (i, j) = (o / m, o % m);
                    let sum: f64 = (0..k).map(|kk| abs(a[i * k + kk], bt[j * k + kk])).sum();
                    2.0 * k as f64 * U * sum + 1e-37
                })
                .collect();
            for p in &paths {
                let isa = p.isa();
                let (mut x, mut y) = (vec![f32::NAN; n * m], vec![f32::NAN; n * m]);
                p.linear_forward(&mut x, &a, &b, &bias, m).unwrap();
                s.linear_forward(&mut y, &a, &b, &bias, m).unwrap();
                within("linear_forward", isa, &x, &y, &nn, finite);
                let (mut x, mut y) = (vec![f32::NAN; k * m], vec![f32::NAN; k * m]);
                p.matmul_tn(&mut x, &a, &bn, k, m).unwrap();
                s.matmul_tn(&mut y, &a, &bn, k, m).unwrap();
                within("matmul_tn", isa, &x, &y, &tn, finite);
                let (mut x, mut y) = (vec![f32::NAN; n * m], vec![f32::NAN; n * m]);
                p.matmul_nt(&mut x, &a, &bt, k).unwrap();
                s.matmul_nt(&mut y, &a, &bt, k).unwrap();
                within("matmul_nt", isa, &x, &y, &nt, finite);
                let (mut x, mut y) = (vec![f32::NAN; m * k], vec![f32::NAN; m * k]);
                p.transpose(&mut x, &bt, k).unwrap();
                s.transpose(&mut y, &bt, k).unwrap();
                same_bits("transpose", isa, &x, &y);
                // (1 - h^2) * (a @ b): |1 - h^2| <= 1 for |h| <= 1
                let h: Vec<f32> = bn.iter().map(|v| v.clamp(-1.0, 1.0)).collect();
                let (mut x, mut y) = (h.clone(), h.clone());
                p.linear_tanh_backward(&mut x, &a, &b, m).unwrap();
                s.linear_tanh_backward(&mut y, &a, &b, m).unwrap();
                let nn2: Vec<f64> = nn.iter().map(|v| v * 2.0).collect();
                within(
                    "linear_tanh_backward",
                    isa,
                    &x,
                    &y,
                    &nn2,
                    finite && bias.is_empty(),
                );
            }
        }
    }
}
