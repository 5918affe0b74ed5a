//! Accuracy tests of `makemore_core::math` against std.
//!
//! f32: strided sweeps through the bit patterns of the whole useful domain (~20 million
//! arguments per function) plus exhaustive sweeps of the critical sub-ranges; the reference is
//! the std f64 function rounded to f32 (i.e. the correctly rounded f32 result except in
//! astronomically rare double-rounding cases). f64: a few million random bit patterns and
//! uniform values, against the std f64 function (whose own error, < 1 ulp for exp/ln, exact
//! for sqrt, is included in the figure). Run with `-- --nocapture` to see the measured maxima.
//! `MAKEMORE_TEST_SCALE=quick` (CI's emulated aarch64 run) thins the f32 sweeps 31-fold.

mod common;

use common::quick;
use makemore_core::math::{
    cos_f64, exp_f32, exp_f64, ln_f32, ln_f64, sqrt_f32, sqrt_f64, tanh_f32, tanh_f64,
};
use makemore_core::simd::{Isa, Kernels};

/// Distance in units in the last place between two f32 (0 if both NaN, `u32::MAX` if one is).
/// +0 and -0 are 0 apart (signs of zeros are checked separately by the edge-case tests).
pub fn ulp_diff_f32(a: f32, b: f32) -> u32 {
    if a.is_nan() && b.is_nan() {
        return 0;
    }
    if a.is_nan() || b.is_nan() {
        return u32::MAX;
    }
    let d = (key_f32(a) - key_f32(b)).unsigned_abs();
    d.min(u32::MAX as u64) as u32
}

/// Distance in units in the last place between two f64 (0 if both NaN, `u64::MAX` if one is).
pub fn ulp_diff_f64(a: f64, b: f64) -> u64 {
    if a.is_nan() && b.is_nan() {
        return 0;
    }
    if a.is_nan() || b.is_nan() {
        return u64::MAX;
    }
    (key_f64(a) - key_f64(b)).unsigned_abs() as u64
}

/// Monotone map from f32 to integers (adjacent floats map to adjacent integers, ±0 to 0).
fn key_f32(x: f32) -> i64 {
    let b = x.to_bits();
    let mag = (b & 0x7fff_ffff) as i64;
    if b >> 31 != 0 {
        -mag
    } else {
        mag
    }
}

fn from_key_f32(k: i64) -> f32 {
    if k < 0 {
        f32::from_bits(0x8000_0000 | (-k) as u32)
    } else {
        f32::from_bits(k as u32)
    }
}

fn key_f64(x: f64) -> i128 {
    let b = x.to_bits();
    let mag = (b & 0x7fff_ffff_ffff_ffff) as i128;
    if b >> 63 != 0 {
        -mag
    } else {
        mag
    }
}

/// Spacing of f32 numbers at the (f64) value `v` (using v's binade; 2^-149 for subnormals).
fn ulp_f32_at(v: f64) -> f64 {
    let e = ((v.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let e = e.max(-126);
    2f64.powi(e - 23)
}

/// Running maximum of the error of an f32 function.
struct Stats32 {
    name: &'static str,
    n: u64,
    max_ulp: u32,
    at_ulp: f32,
    got_ulp: f32,
    want_ulp: f32,
    frac_at_ulp: f64,
    max_frac: f64,
    at_frac: f32,
}

impl Stats32 {
    fn new(name: &'static str) -> Self {
        Stats32 {
            name,
            n: 0,
            max_ulp: 0,
            at_ulp: f32::NAN,
            got_ulp: f32::NAN,
            want_ulp: f32::NAN,
            frac_at_ulp: 0.0,
            max_frac: 0.0,
            at_frac: f32::NAN,
        }
    }

    /// `want` is the exact result to f64 precision.
    #[inline]
    fn check(&mut self, x: f32, got: f32, want: f64) {
        self.n += 1;
        let want32 = want as f32;
        let d = ulp_diff_f32(got, want32);
        let frac = if got.is_finite() && want32.is_finite() {
            (got as f64 - want).abs() / ulp_f32_at(want)
        } else {
            0.0
        };
        // Among the arguments with the largest ulp distance, report the one with the largest
        // real error.
        if d > self.max_ulp
            || (d == self.max_ulp && (self.at_ulp.is_nan() || frac > self.frac_at_ulp))
        {
            self.max_ulp = d;
            self.at_ulp = x;
            self.got_ulp = got;
            self.want_ulp = want32;
            self.frac_at_ulp = frac;
        }
        if frac > self.max_frac {
            self.max_frac = frac;
            self.at_frac = x;
        }
    }

    fn sweep(
        &mut self,
        lo: f32,
        hi: f32,
        stride: i64,
        f: fn(f32) -> f32,
        reference: fn(f64) -> f64,
    ) {
        // At the quick size (emulation, Miri) every 31st argument of the sweep.
        let stride = if quick() { 31 * stride } else { stride };
        let (mut k, end) = (key_f32(lo), key_f32(hi));
        while k <= end {
            let x = from_key_f32(k);
            self.check(x, f(x), reference(x as f64));
            k += stride;
        }
        self.check(hi, f(hi), reference(hi as f64));
    }

    /// [`Stats32::sweep`] of a vector kernel (`out`, `x`), evaluated a block at a time.
    fn sweep_kernel(
        &mut self,
        lo: f32,
        hi: f32,
        stride: i64,
        f: &dyn Fn(&mut [f32], &[f32]),
        reference: fn(f64) -> f64,
    ) {
        let stride = if quick() { 31 * stride } else { stride };
        let (mut k, end) = (key_f32(lo), key_f32(hi));
        let (mut x, mut out) = (Vec::with_capacity(4096), vec![f32::NAN; 4096]);
        let mut flush = |x: &mut Vec<f32>, s: &mut Self| {
            let out = &mut out[..x.len()];
            f(out, x);
            for (&xi, &o) in x.iter().zip(out.iter()) {
                s.check(xi, o, reference(xi as f64));
            }
            x.clear();
        };
        while k <= end {
            x.push(from_key_f32(k));
            k += stride;
            if x.len() == 4096 {
                flush(&mut x, self);
            }
        }
        x.push(hi);
        flush(&mut x, self);
    }

    fn report_and_assert(&self, bound: u32) {
        println!(
            "{}: {} args, max {} ulp vs correctly rounded at x = {:e} ({:#010x}): got {:e}, want {:e}; \
             max real error {:.3} ulp at x = {:e}",
            self.name,
            self.n,
            self.max_ulp,
            self.at_ulp,
            self.at_ulp.to_bits(),
            self.got_ulp,
            self.want_ulp,
            self.max_frac,
            self.at_frac
        );
        assert!(
            self.n > 1_000_000,
            "{}: too few arguments checked",
            self.name
        );
        assert!(
            self.max_ulp <= bound,
            "{}: {} ulp at x = {:e} (got {:e}, want {:e}) exceeds the documented {} ulp",
            self.name,
            self.max_ulp,
            self.at_ulp,
            self.got_ulp,
            self.want_ulp,
            bound
        );
    }
}

/// Running maximum of the error of an f64 function (against std).
struct Stats64 {
    name: &'static str,
    n: u64,
    max_ulp: u64,
    at: f64,
    got: f64,
    want: f64,
}

impl Stats64 {
    fn new(name: &'static str) -> Self {
        Stats64 {
            name,
            n: 0,
            max_ulp: 0,
            at: f64::NAN,
            got: f64::NAN,
            want: f64::NAN,
        }
    }

    #[inline]
    fn check(&mut self, x: f64, got: f64, want: f64) {
        self.n += 1;
        let d = ulp_diff_f64(got, want);
        if d > self.max_ulp || (d == self.max_ulp && self.at.is_nan()) {
            self.max_ulp = d;
            self.at = x;
            self.got = got;
            self.want = want;
        }
    }

    fn run(&mut self, x: f64, f: fn(f64) -> f64, reference: fn(f64) -> f64) {
        self.check(x, f(x), reference(x));
    }

    fn report_and_assert(&self, bound: u64) {
        println!(
            "{}: {} args, max {} ulp vs std at x = {:e} ({:#018x}): got {:e}, want {:e}",
            self.name,
            self.n,
            self.max_ulp,
            self.at,
            self.at.to_bits(),
            self.got,
            self.want
        );
        assert!(
            self.n > 1_000_000,
            "{}: too few arguments checked",
            self.name
        );
        assert!(
            self.max_ulp <= bound,
            "{}: {} ulp at x = {:e} (got {:e}, want {:e}) exceeds the documented {} ulp",
            self.name,
            self.max_ulp,
            self.at,
            self.got,
            self.want,
            bound
        );
    }
}

/// xorshift64* — deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
    }
    /// Random bit pattern with magnitude in [lo, hi] (both positive), uniform over the patterns.
    fn bits_between(&mut self, lo: f64, hi: f64) -> f64 {
        let (a, b) = (lo.to_bits(), hi.to_bits());
        f64::from_bits(a + self.next_u64() % (b - a + 1))
    }
    /// As `bits_between`, with a random sign.
    fn signed_bits_between(&mut self, lo: f64, hi: f64) -> f64 {
        let x = self.bits_between(lo, hi);
        if self.next_u64() >> 63 != 0 {
            -x
        } else {
            x
        }
    }
}

fn same_f32(got: f32, want: f32) -> bool {
    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
}

fn same_f64(got: f64, want: f64) -> bool {
    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())
}

/// Edge cases with results that must match std bit for bit (NaN: any NaN).
fn edge_exact_f32(name: &str, f: fn(f32) -> f32, cases: &[(f32, f32)]) {
    for &(x, want) in cases {
        let got = f(x);
        assert!(
            same_f32(got, want),
            "{name}({x:e}) = {got:e}, want {want:e}"
        );
    }
}

fn edge_exact_f64(name: &str, f: fn(f64) -> f64, cases: &[(f64, f64)]) {
    for &(x, want) in cases {
        let got = f(x);
        assert!(
            same_f64(got, want),
            "{name}({x:e}) = {got:e}, want {want:e}"
        );
    }
}

const SUB32: f32 = 1.0e-40; // an f32 subnormal
const MINSUB32: f32 = 1.0e-45; // 2^-149
const SUB64: f64 = 1.0e-310;
const MINSUB64: f64 = 5.0e-324; // 2^-1074

// --------------------------------------------------------------------------------- f32

fn ref_exp(x: f64) -> f64 {
    x.exp()
}
fn ref_ln(x: f64) -> f64 {
    x.ln()
}
fn ref_tanh(x: f64) -> f64 {
    x.tanh()
}
fn ref_sqrt(x: f64) -> f64 {
    x.sqrt()
}

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn exp_f32_accuracy() {
    let mut s = Stats32::new("exp_f32");
    // Whole domain where exp is neither 0 nor inf, ~21M bit patterns.
    s.sweep(-104.0, 89.0, 107, exp_f32, ref_exp);
    // Every f32 in the subnormal-output range and around the overflow threshold.
    s.sweep(-104.0, -87.0, 1, exp_f32, ref_exp);
    s.sweep(88.0, 89.0, 1, exp_f32, ref_exp);
    // Every f32 in [-1, 1]'s widest binades.
    s.sweep(0.25, 1.0, 1, exp_f32, ref_exp);
    s.sweep(-1.0, -0.25, 1, exp_f32, ref_exp);
    // Beyond the thresholds.
    s.sweep(89.0, f32::MAX, 9973, exp_f32, ref_exp);
    s.sweep(-f32::MAX, -104.0, 9973, exp_f32, ref_exp);
    s.report_and_assert(1);
}

#[test]
fn exp_f32_edges() {
    let inf = f32::INFINITY;
    edge_exact_f32(
        "exp_f32",
        exp_f32,
        &[
            (f32::NAN, f32::NAN),
            (inf, inf),
            (-inf, 0.0),
            (0.0, 1.0),
            (-0.0, 1.0),
            (SUB32, 1.0),
            (-SUB32, 1.0),
            (1e-30, 1.0),
            (f32::MAX, inf),
            (-f32::MAX, 0.0),
            (89.0, inf),
            (88.73, inf),
            (-104.0, 0.0),
            (-200.0, 0.0),
            (1.0, core::f32::consts::E),
        ],
    );
    // Overflow threshold: largest finite result at ln(f32::MAX) = 88.72284.
    let t = 88.722_84_f32;
    for x in [
        t,
        f32::from_bits(t.to_bits() - 1),
        f32::from_bits(t.to_bits() + 1),
    ] {
        let (got, want) = (exp_f32(x), (x as f64).exp() as f32);
        assert!(
            ulp_diff_f32(got, want) <= 1,
            "exp_f32({x:e}) = {got:e}, want {want:e}"
        );
        assert_eq!(
            got.is_infinite(),
            want.is_infinite(),
            "exp_f32({x:e}) = {got:e}"
        );
    }
    // Underflow threshold: smallest subnormal 2^-149 = exp(-103.27893); rounds to 0 below
    // exp(-103.97208).
    for x in [
        -87.336_55_f32,
        -87.5,
        -100.0,
        -103.278_93,
        -103.9,
        -103.972_07,
        -103.972_09,
    ] {
        let (got, want) = (exp_f32(x), (x as f64).exp() as f32);
        assert!(
            ulp_diff_f32(got, want) <= 1,
            "exp_f32({x:e}) = {got:e}, want {want:e}"
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn ln_f32_accuracy() {
    let mut s = Stats32::new("ln_f32");
    // All positive finite floats (subnormals included), ~20M bit patterns.
    s.sweep(MINSUB32, f32::MAX, 107, ln_f32, ref_ln);
    // Every f32 in [0.5, 2] (where ln is small and cancellation would show) and every 64th
    // subnormal.
    s.sweep(0.5, 2.0, 1, ln_f32, ref_ln);
    s.sweep(MINSUB32, f32::MIN_POSITIVE, 64, ln_f32, ref_ln);
    s.report_and_assert(1);
}

#[test]
fn ln_f32_edges() {
    let inf = f32::INFINITY;
    edge_exact_f32(
        "ln_f32",
        ln_f32,
        &[
            (f32::NAN, f32::NAN),
            (1.0, 0.0),
            (0.0, -inf),
            (-0.0, -inf),
            (-1.0, f32::NAN),
            (-SUB32, f32::NAN),
            (-inf, f32::NAN),
            (inf, inf),
        ],
    );
    let near1 = [
        1.0 - f32::EPSILON / 2.0,
        1.0 + f32::EPSILON,
        f32::from_bits(1.0f32.to_bits() - 2),
        f32::from_bits(1.0f32.to_bits() + 2),
        0.999,
        1.001,
    ];
    let others = [
        MINSUB32,
        SUB32,
        f32::MIN_POSITIVE,
        f32::MAX,
        core::f32::consts::E,
        2.0,
        0.5,
    ];
    for x in near1.into_iter().chain(others) {
        let (got, want) = (ln_f32(x), (x as f64).ln() as f32);
        assert!(
            ulp_diff_f32(got, want) <= 1,
            "ln_f32({x:e}) = {got:e}, want {want:e}"
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn tanh_f32_accuracy() {
    let mut s = Stats32::new("tanh_f32");
    // All finite floats of both signs, ~20M bit patterns.
    s.sweep(-f32::MAX, f32::MAX, 211, tanh_f32, ref_tanh);
    // Every f32 in [0.5, 2] (the switch-over at 0.625 and the worst of 1 - 2/(e^2x + 1)), in
    // [-0.75, -0.5], and where tanh reaches 1.
    s.sweep(0.5, 2.0, 1, tanh_f32, ref_tanh);
    s.sweep(-0.75, -0.5, 1, tanh_f32, ref_tanh);
    s.sweep(8.5, 9.5, 1, tanh_f32, ref_tanh);
    s.report_and_assert(1);
}

/// tanh's exponential skips `exp_f32`'s clamp and splits `2^k` into one factor instead of two;
/// on its arguments (`2|x|` in `[1.25, 19]`) that gives the same bits as `exp_f32`: checked on
/// every f32 in `[0.625, 9.5]` against `1 - 2/(exp_f32(2x) + 1)`, and with the sign.
#[test]
fn tanh_f32_exponential_is_exp_f32() {
    let (lo, hi) = (0.625f32.to_bits(), 9.5f32.to_bits());
    let stride = if cfg!(miri) {
        100_003
    } else if quick() {
        31
    } else {
        1
    };
    for bits in (lo..=hi).step_by(stride) {
        let x = f32::from_bits(bits);
        let want = 1.0 - 2.0 / (exp_f32(x + x) + 1.0);
        assert_eq!(tanh_f32(x).to_bits(), want.to_bits(), "tanh({x:e})");
        assert_eq!(tanh_f32(-x).to_bits(), (-want).to_bits(), "tanh({:e})", -x);
    }
}

/// The vector paths this CPU runs, each with its name (those it lacks are named on stderr).
fn vector_kernels() -> Vec<Kernels> {
    let (have, lack): (Vec<Isa>, Vec<Isa>) = Isa::ALL
        .into_iter()
        .filter(|isa| *isa != Isa::Scalar)
        .partition(|isa| isa.is_available());
    if !lack.is_empty() {
        eprintln!("NOT TESTED, this CPU lacks them: {lack:?}");
    }
    have.into_iter()
        .map(|isa| Kernels::new(isa).unwrap())
        .collect()
}

/// The vector exp (FMA, not the scalar bits; SIMD128 unfused, with the same bound) of every
/// path this CPU runs, over the arguments of `exp_f32_accuracy`: at most 2 ulp from the
/// correctly rounded result.
#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; core/tests/simd.rs runs the kernels"
)]
fn vector_exp_accuracy() {
    for k in vector_kernels() {
        let name: &'static str = Box::leak(format!("exp on {}", k.isa()).into_boxed_str());
        let mut s = Stats32::new(name);
        let f = |out: &mut [f32], x: &[f32]| k.exp(out, x).unwrap();
        s.sweep_kernel(-104.0, 89.0, 107, &f, ref_exp);
        s.sweep_kernel(-104.0, -87.0, 1, &f, ref_exp);
        s.sweep_kernel(88.0, 89.0, 1, &f, ref_exp);
        s.sweep_kernel(0.25, 1.0, 1, &f, ref_exp);
        s.sweep_kernel(-1.0, -0.25, 1, &f, ref_exp);
        s.sweep_kernel(89.0, f32::MAX, 9973, &f, ref_exp);
        s.sweep_kernel(-f32::MAX, -104.0, 9973, &f, ref_exp);
        s.report_and_assert(2);
    }
}

/// The vector tanh of every path this CPU runs (SIMD128 unfused), over the arguments of
/// `tanh_f32_accuracy`: at most 2 ulp from the correctly rounded result.
#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; core/tests/simd.rs runs the kernels"
)]
fn vector_tanh_accuracy() {
    for k in vector_kernels() {
        let name: &'static str = Box::leak(format!("tanh on {}", k.isa()).into_boxed_str());
        let mut s = Stats32::new(name);
        let f = |out: &mut [f32], x: &[f32]| k.tanh(out, x).unwrap();
        s.sweep_kernel(-f32::MAX, f32::MAX, 211, &f, ref_tanh);
        s.sweep_kernel(0.5, 2.0, 1, &f, ref_tanh);
        s.sweep_kernel(-0.75, -0.5, 1, &f, ref_tanh);
        s.sweep_kernel(8.5, 9.5, 1, &f, ref_tanh);
        s.report_and_assert(2);
    }
}

#[test]
fn tanh_f32_edges() {
    let inf = f32::INFINITY;
    edge_exact_f32(
        "tanh_f32",
        tanh_f32,
        &[
            (f32::NAN, f32::NAN),
            (0.0, 0.0),
            (-0.0, -0.0),
            (SUB32, SUB32),
            (-SUB32, -SUB32),
            (MINSUB32, MINSUB32),
            (1e-20, 1e-20),
            (-1e-20, -1e-20),
            (inf, 1.0),
            (-inf, -1.0),
            (f32::MAX, 1.0),
            (-f32::MAX, -1.0),
            (50.0, 1.0),
            (-50.0, -1.0),
            (9.1, 1.0),
            (-9.1, -1.0),
            (100.0, 1.0),
        ],
    );
    let c = 0.625_f32;
    let mut xs = vec![9.0_f32, 8.9, 9.01, 0.6, 0.65];
    for d in -3..=3 {
        xs.push(f32::from_bits((c.to_bits() as i32 + d) as u32));
    }
    for x in xs.clone().into_iter().chain(xs.into_iter().map(|x| -x)) {
        let (got, want) = (tanh_f32(x), (x as f64).tanh() as f32);
        assert!(
            ulp_diff_f32(got, want) <= 1,
            "tanh_f32({x:e}) = {got:e}, want {want:e}"
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn sqrt_f32_accuracy() {
    let mut s = Stats32::new("sqrt_f32");
    // All positive finite floats, ~20M bit patterns.
    s.sweep(MINSUB32, f32::MAX, 107, sqrt_f32, ref_sqrt);
    // Exhaustive over [1, 4): every other argument is an exact power-of-4 scaling of one of these.
    s.sweep(1.0, 4.0, 1, sqrt_f32, ref_sqrt);
    // Every 16th subnormal.
    s.sweep(MINSUB32, f32::MIN_POSITIVE, 16, sqrt_f32, ref_sqrt);
    s.report_and_assert(0);
    // std's sqrt is correctly rounded, so also compare f32 to f32 directly.
    let mut k = 1u32;
    while k < 0x7f80_0000 {
        let x = f32::from_bits(k);
        assert_eq!(sqrt_f32(x).to_bits(), x.sqrt().to_bits(), "sqrt_f32({x:e})");
        k += if quick() { 31 * 1009 } else { 1009 };
    }
}

#[test]
fn sqrt_f32_edges() {
    let inf = f32::INFINITY;
    edge_exact_f32(
        "sqrt_f32",
        sqrt_f32,
        &[
            (f32::NAN, f32::NAN),
            (0.0, 0.0),
            (-0.0, -0.0),
            (-1.0, f32::NAN),
            (-SUB32, f32::NAN),
            (-inf, f32::NAN),
            (inf, inf),
            (1.0, 1.0),
            (4.0, 2.0),
            (0.25, 0.5),
            (2.0, core::f32::consts::SQRT_2),
            (MINSUB32, MINSUB32.sqrt()),
            (SUB32, SUB32.sqrt()),
            (f32::MIN_POSITIVE, f32::MIN_POSITIVE.sqrt()),
            (f32::MAX, f32::MAX.sqrt()),
            (1.0 - f32::EPSILON / 2.0, (1.0 - f32::EPSILON / 2.0).sqrt()),
            (1.0 + f32::EPSILON, (1.0 + f32::EPSILON).sqrt()),
        ],
    );
}

// --------------------------------------------------------------------------------- f64

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn exp_f64_accuracy() {
    let mut s = Stats64::new("exp_f64");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..1_500_000 {
        let x = rng.uniform(-746.0, 710.0);
        s.run(x, exp_f64, f64::exp);
        let x = rng.uniform(-1.0, 1.0);
        s.run(x, exp_f64, f64::exp);
        let x = rng.signed_bits_between(MINSUB64, 746.0);
        s.run(x, exp_f64, f64::exp);
    }
    // Subnormal results and the overflow threshold, densely.
    for _ in 0..300_000 {
        s.run(rng.uniform(-746.0, -708.0), exp_f64, f64::exp);
        s.run(rng.uniform(709.0, 709.8), exp_f64, f64::exp);
    }
    s.report_and_assert(1);
}

#[test]
fn exp_f64_edges() {
    let inf = f64::INFINITY;
    edge_exact_f64(
        "exp_f64",
        exp_f64,
        &[
            (f64::NAN, f64::NAN),
            (inf, inf),
            (-inf, 0.0),
            (0.0, 1.0),
            (-0.0, 1.0),
            (SUB64, 1.0),
            (1e-300, 1.0),
            (f64::MAX, inf),
            (-f64::MAX, 0.0),
            (709.8, inf),
            (710.0, inf),
            (-746.0, 0.0),
            (-1000.0, 0.0),
        ],
    );
    // ln(f64::MAX) = 709.782712893384; 2^-1074 = exp(-744.44007), 0 below -745.13321910194.
    let xs = [
        709.782_712_893_383_9,
        709.782_712_893_384_1,
        709.78,
        -708.396_418_532_264,
        -708.5,
        -744.440_071_921_381,
        -745.133,
        -745.133_219_101_941_1,
        -745.133_219_101_941_2,
        1.0,
        -1.0,
    ];
    for x in xs {
        let (got, want) = (exp_f64(x), x.exp());
        assert!(
            ulp_diff_f64(got, want) <= 1,
            "exp_f64({x:e}) = {got:e}, want {want:e}"
        );
        assert_eq!(
            got.is_infinite(),
            want.is_infinite(),
            "exp_f64({x:e}) = {got:e}"
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn ln_f64_accuracy() {
    let mut s = Stats64::new("ln_f64");
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    for _ in 0..1_500_000 {
        s.run(rng.bits_between(MINSUB64, f64::MAX), ln_f64, f64::ln);
        s.run(rng.uniform(0.5, 2.0), ln_f64, f64::ln);
        s.run(rng.uniform(0.99, 1.01), ln_f64, f64::ln);
    }
    for _ in 0..300_000 {
        s.run(
            rng.bits_between(MINSUB64, f64::MIN_POSITIVE),
            ln_f64,
            f64::ln,
        );
    }
    s.report_and_assert(1);
}

#[test]
fn ln_f64_edges() {
    let inf = f64::INFINITY;
    edge_exact_f64(
        "ln_f64",
        ln_f64,
        &[
            (f64::NAN, f64::NAN),
            (1.0, 0.0),
            (0.0, -inf),
            (-0.0, -inf),
            (-1.0, f64::NAN),
            (-SUB64, f64::NAN),
            (-inf, f64::NAN),
            (inf, inf),
        ],
    );
    let xs = [
        1.0 - f64::EPSILON / 2.0,
        1.0 + f64::EPSILON,
        0.999_999,
        1.000_001,
        MINSUB64,
        SUB64,
        f64::MIN_POSITIVE,
        f64::MAX,
        core::f64::consts::E,
        2.0,
    ];
    for x in xs {
        let (got, want) = (ln_f64(x), x.ln());
        assert!(
            ulp_diff_f64(got, want) <= 1,
            "ln_f64({x:e}) = {got:e}, want {want:e}"
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn tanh_f64_accuracy() {
    let mut s = Stats64::new("tanh_f64");
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    for _ in 0..1_000_000 {
        let x = rng.signed_bits_between(MINSUB64, f64::MAX);
        s.run(x, tanh_f64, f64::tanh);
        s.run(rng.uniform(-25.0, 25.0), tanh_f64, f64::tanh);
        s.run(rng.uniform(-1.0, 1.0), tanh_f64, f64::tanh);
        s.run(rng.uniform(0.6, 0.65), tanh_f64, f64::tanh);
    }
    s.report_and_assert(2);
}

#[test]
fn tanh_f64_edges() {
    let inf = f64::INFINITY;
    edge_exact_f64(
        "tanh_f64",
        tanh_f64,
        &[
            (f64::NAN, f64::NAN),
            (0.0, 0.0),
            (-0.0, -0.0),
            (SUB64, SUB64),
            (-SUB64, -SUB64),
            (MINSUB64, MINSUB64),
            (1e-200, 1e-200),
            (inf, 1.0),
            (-inf, -1.0),
            (f64::MAX, 1.0),
            (-f64::MAX, -1.0),
            (20.0, 1.0),
            (-20.0, -1.0),
            (400.0, 1.0),
            (-1000.0, -1.0),
        ],
    );
    let c = 0.625_f64;
    let mut xs = vec![9.0, 18.0, 19.1, 0.6, 0.65];
    for d in -3..=3 {
        xs.push(f64::from_bits((c.to_bits() as i64 + d) as u64));
    }
    for x in xs.clone().into_iter().chain(xs.into_iter().map(|x| -x)) {
        let (got, want) = (tanh_f64(x), x.tanh());
        assert!(
            ulp_diff_f64(got, want) <= 2,
            "tanh_f64({x:e}) = {got:e}, want {want:e}"
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn sqrt_f64_accuracy() {
    let mut s = Stats64::new("sqrt_f64");
    let mut rng = Rng(0xdead_beef_1357_9bdf);
    for _ in 0..2_000_000 {
        s.run(rng.bits_between(MINSUB64, f64::MAX), sqrt_f64, f64::sqrt);
        s.run(rng.uniform(1.0, 4.0), sqrt_f64, f64::sqrt);
    }
    for _ in 0..300_000 {
        s.run(
            rng.bits_between(MINSUB64, f64::MIN_POSITIVE),
            sqrt_f64,
            f64::sqrt,
        );
    }
    // Squares of random floats and their neighbours: the hardest cases for rounding.
    for _ in 0..300_000 {
        let y = rng.uniform(1.0, 2.0);
        let sq = y * y;
        for x in [
            sq,
            f64::from_bits(sq.to_bits() - 1),
            f64::from_bits(sq.to_bits() + 1),
        ] {
            s.run(x, sqrt_f64, f64::sqrt);
        }
    }
    s.report_and_assert(0);
}

#[test]
fn sqrt_f64_edges() {
    let inf = f64::INFINITY;
    edge_exact_f64(
        "sqrt_f64",
        sqrt_f64,
        &[
            (f64::NAN, f64::NAN),
            (0.0, 0.0),
            (-0.0, -0.0),
            (-1.0, f64::NAN),
            (-SUB64, f64::NAN),
            (-inf, f64::NAN),
            (inf, inf),
            (1.0, 1.0),
            (4.0, 2.0),
            (2.0, core::f64::consts::SQRT_2),
            (MINSUB64, MINSUB64.sqrt()),
            (SUB64, SUB64.sqrt()),
            (f64::MIN_POSITIVE, f64::MIN_POSITIVE.sqrt()),
            (f64::MAX, f64::MAX.sqrt()),
            (1.0 - f64::EPSILON / 2.0, (1.0 - f64::EPSILON / 2.0).sqrt()),
            (1.0 + f64::EPSILON, (1.0 + f64::EPSILON).sqrt()),
        ],
    );
}

/// The largest argument of `cos_f64`'s domain: the float below 1647099 (high word 0x413921fb,
/// just under `2^20 pi/2`), where the domain ends.
const COS_DOMAIN: f64 = f64::from_bits(0x4139_21fa_ffff_ffff);

#[test]
#[cfg_attr(
    miri,
    ignore = "millions of arguments: too slow under Miri; the edge tests run"
)]
fn cos_f64_accuracy() {
    let mut s = Stats64::new("cos_f64");
    let mut rng = Rng(0xc05_c05_c05);
    for _ in 0..1_000_000 {
        // the schedule's range [0, pi], small arguments, near multiples of pi/2, the domain
        s.run(rng.uniform(0.0, std::f64::consts::PI), cos_f64, f64::cos);
        s.run(rng.signed_bits_between(MINSUB64, 1.0), cos_f64, f64::cos);
        let k = (rng.next_u64() % 1_000_000) as f64;
        s.run(
            k * std::f64::consts::FRAC_PI_2 + rng.uniform(-1e-6, 1e-6),
            cos_f64,
            f64::cos,
        );
        s.run(rng.uniform(-COS_DOMAIN, COS_DOMAIN), cos_f64, f64::cos);
    }
    s.report_and_assert(1);
}

#[test]
fn cos_f64_edges() {
    use std::f64::consts::PI;
    edge_exact_f64(
        "cos_f64",
        cos_f64,
        &[
            (f64::NAN, f64::NAN),
            (f64::INFINITY, f64::NAN),
            (f64::NEG_INFINITY, f64::NAN),
            (0.0, 1.0),
            (-0.0, 1.0),
            (MINSUB64, 1.0),
            (SUB64, 1.0),
            (1e-9, 1.0),
            (PI, -1.0),
            (-PI, -1.0),
            // outside the documented domain: NaN, not a wrong value
            (1_647_099.0, f64::NAN),
            (-1_647_099.0, f64::NAN),
            (2e6, f64::NAN),
            (f64::MAX, f64::NAN),
        ],
    );
    // the multiples of pi/2 (whose cosines are tiny) and the domain's edge, against std
    for x in [
        PI / 2.0,
        -PI / 2.0,
        3.0 * PI / 2.0,
        PI / 4.0,
        0.5 * PI / 4.0,
        100.0 * PI,
        COS_DOMAIN,
        -COS_DOMAIN,
    ] {
        let (got, want) = (cos_f64(x), x.cos());
        assert!(
            ulp_diff_f64(got, want) <= 1,
            "cos_f64({x:e}) = {got:e}, want {want:e}"
        );
    }
}
