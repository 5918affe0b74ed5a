//! Explicit SIMD: AVX-512F and AVX2+FMA on x86_64, NEON on aarch64, and the portable scalar code
//! as the reference and fallback. **All of the crate's `unsafe` lives in this file.**
//!
//! How a path is chosen:
//! - With the `std` feature, at run time: [`Isa::best`] asks the CPU (`is_x86_feature_detected!`)
//!   and picks AVX-512F, then AVX2+FMA, then scalar; on aarch64, NEON.
//! - Without `std` (firmware), by `cfg(target_feature)`: a path is available only if the build
//!   enables its features (`-C target-feature=+avx2,+fma`, or NEON, which aarch64 always has).
//!   A thumbv7em build has no vector path and runs the scalar code.
//! - [`Kernels::new`] forces one path and fails with [`Error::IsaUnavailable`] when the CPU lacks
//!   it, so a forced test never silently runs another.
//!
//! Safety design: a token type ([`Avx512`], [`Avx2`], [`Neon`]) can only be built after
//! detection, or by an `unsafe` constructor whose caller promises support. The kernels
//! (`kernels.rs`, which forbids `unsafe`) are written once, generic over `Simd`, and take the
//! token as their first argument; every intrinsic call below is sound because the token exists.
//! Each kernel has one `#[target_feature]` entry point per path; calling it is the one `unsafe`
//! call of a dispatch, justified by the token it is given.
//!
//! Vector exp and tanh follow the scalar algorithms of [`crate::math`] operation by operation
//! (no FMA, the same clamps and selects), so they give the same bits as the scalar code and its
//! error bounds carry over. The products use FMA and therefore differ from the scalar code by
//! rounding; each kernel's documentation says by how much.

// A kernel takes its outputs, inputs and sizes as plain arguments, like llm.c's.
#![allow(clippy::too_many_arguments)]
// On other targets (thumbv7em) only the scalar path exists and the vector machinery is unused.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code, unused_macros, unused_imports)
)]

#[cfg(target_arch = "aarch64")]
use core::arch::aarch64::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use crate::error::Error;

#[forbid(unsafe_code)]
pub(crate) mod kernels;
#[forbid(unsafe_code)]
pub(crate) mod scalar;

/// An instruction set a user can ask for (`--isa`, `MAKEMORE_ISA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The portable reference code.
    Scalar,
    /// x86_64 AVX2 with FMA (8 lanes of f32).
    Avx2,
    /// x86_64 AVX-512F (16 lanes of f32).
    Avx512,
    /// aarch64 NEON (4 lanes of f32).
    Neon,
}

impl Isa {
    /// Every path, in order of preference (best last).
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Neon, Isa::Avx2, Isa::Avx512];

    /// The lower-case name used by `--isa` and in `metrics.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses `scalar`, `avx2`, `avx512` or `neon` (`auto` is the caller's business: [`Isa::best`]).
    pub fn parse(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Whether this CPU (with `std`) or this build (without) can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => Avx2::new().is_some(),
            Isa::Avx512 => Avx512::new().is_some(),
            Isa::Neon => Neon::new().is_some(),
        }
    }

    /// The fastest available path.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.is_available())
            .unwrap_or(Isa::Scalar)
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------- tokens

/// Proof that the CPU runs AVX-512F. Only [`Avx512::new`] (after detection) or the `unsafe`
/// [`Avx512::new_unchecked`] make one.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

/// Proof that the CPU runs AVX2 and FMA.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

/// Proof that the CPU runs NEON (every aarch64 CPU does).
#[derive(Clone, Copy, Debug)]
pub struct Neon(());

impl Avx512 {
    /// `Some` if the CPU supports AVX-512F (run-time detection with `std`, else the build's
    /// target features).
    #[allow(unreachable_code)]
    pub fn new() -> Option<Self> {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        {
            return std::is_x86_feature_detected!("avx512f").then_some(Avx512(()));
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
        {
            return Some(Avx512(()));
        }
        None
    }

    /// # Safety
    /// The caller promises that the CPU supports AVX-512F.
    pub const unsafe fn new_unchecked() -> Self {
        Avx512(())
    }
}

impl Avx2 {
    /// `Some` if the CPU supports AVX2 and FMA.
    #[allow(unreachable_code)]
    pub fn new() -> Option<Self> {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        {
            return (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
                .then_some(Avx2(()));
        }
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            return Some(Avx2(()));
        }
        None
    }

    /// # Safety
    /// The caller promises that the CPU supports AVX2 and FMA.
    pub const unsafe fn new_unchecked() -> Self {
        Avx2(())
    }
}

impl Neon {
    /// `Some` on aarch64 with NEON.
    #[allow(unreachable_code)]
    pub fn new() -> Option<Self> {
        #[cfg(all(target_arch = "aarch64", feature = "std"))]
        {
            return std::arch::is_aarch64_feature_detected!("neon").then_some(Neon(()));
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        {
            return Some(Neon(()));
        }
        None
    }

    /// # Safety
    /// The caller promises that the CPU supports NEON.
    pub const unsafe fn new_unchecked() -> Self {
        Neon(())
    }
}

// ---------------------------------------------------------------- the vector interface

/// The operations the generic kernels use, on vectors of `LANES` f32.
///
/// Implemented by the tokens; every method is `#[inline(always)]` so that it is compiled inside
/// the `#[target_feature]` entry point that calls the kernel.
pub(crate) trait Simd: Copy {
    /// A vector of `LANES` f32.
    type V: Copy;
    /// The result of a lane-wise comparison.
    type M: Copy;
    const LANES: usize;

    fn splat(self, x: f32) -> Self::V;
    /// The first `LANES` values of `x`. Panics if `x` is shorter.
    fn load(self, x: &[f32]) -> Self::V;
    /// Writes the first `LANES` values of `out`. Panics if `out` is shorter.
    fn store(self, out: &mut [f32], v: Self::V);
    /// `x.len() < LANES` values; the other lanes are `fill`.
    fn load_tail(self, x: &[f32], fill: f32) -> Self::V;
    /// Writes the first `out.len() < LANES` lanes.
    fn store_tail(self, out: &mut [f32], v: Self::V);
    /// Lanes `>= n` set to 0.
    fn keep_first(self, v: Self::V, n: usize) -> Self::V;
    /// `[x[0], x[stride], ..., x[(LANES-1)*stride]]`. Panics if `x` is too short.
    fn gather(self, x: &[f32], stride: usize) -> Self::V;

    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// IEEE division (correctly rounded).
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// IEEE square root (correctly rounded).
    fn sqrt(self, a: Self::V) -> Self::V;
    /// `a * b + c` with one rounding.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum (which operand a NaN gives is not specified).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lanes where `a > b` (false for NaN).
    fn gt(self, a: Self::V, b: Self::V) -> Self::M;
    /// Lanes where `a < b` (false for NaN).
    fn lt(self, a: Self::V, b: Self::V) -> Self::M;
    /// `m ? t : f` per lane.
    fn select(self, m: Self::M, t: Self::V, f: Self::V) -> Self::V;
    /// Clears the sign bit (`|a|`, NaN stays NaN).
    fn abs(self, a: Self::V) -> Self::V;
    /// `t` with the sign bit of `x` or-ed in (scalar: `from_bits(t.to_bits() | sign(x))`).
    fn or_sign(self, t: Self::V, x: Self::V) -> Self::V;
    /// Rounds toward -inf.
    fn floor(self, a: Self::V) -> Self::V;
    /// `2^k` for integral `k` in `[-126, 127]`, through the exponent bits.
    fn pow2i(self, k: Self::V) -> Self::V;
    /// Sum of the lanes (tree order, which differs from a sequential sum by rounding).
    fn reduce_add(self, v: Self::V) -> f32;
    /// Maximum of the lanes (NaN lanes may be ignored).
    fn reduce_max(self, v: Self::V) -> f32;
}

/// One trait method calling one intrinsic.
macro_rules! op {
    ($name:ident($($a:ident: $t:ty),*) -> $r:ty = $e:expr) => {
        #[inline(always)]
        fn $name(self, $($a: $t),*) -> $r {
            // SAFETY: `self` is the token of this impl, which exists only if the CPU supports the
            // instruction set of the intrinsic (see the token's constructors).
            unsafe { $e }
        }
    };
}

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    type V = __m512;
    type M = __mmask16;
    const LANES: usize = 16;

    op!(splat(x: f32) -> __m512 = _mm512_set1_ps(x));
    #[inline(always)]
    fn load(self, x: &[f32]) -> __m512 {
        let x = &x[..16];
        // SAFETY: `x` has 16 readable values (checked above); the token proves AVX-512F.
        unsafe { _mm512_loadu_ps(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, out: &mut [f32], v: __m512) {
        let out = &mut out[..16];
        // SAFETY: `out` has 16 writable values (checked above); the token proves AVX-512F.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn load_tail(self, x: &[f32], fill: f32) -> __m512 {
        let mask = lane_mask16(x.len());
        // SAFETY: the mask selects only the first `x.len()` lanes, which are readable; masked-off
        // lanes are not accessed (AVX-512 suppresses their faults). The token proves AVX-512F.
        unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask, x.as_ptr()) }
    }
    #[inline(always)]
    fn store_tail(self, out: &mut [f32], v: __m512) {
        let mask = lane_mask16(out.len());
        // SAFETY: the mask selects only the first `out.len()` lanes, which are writable; the
        // others are not written. The token proves AVX-512F.
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, v) }
    }
    op!(keep_first(v: __m512, n: usize) -> __m512 = _mm512_maskz_mov_ps(lane_mask16(n), v));
    #[inline(always)]
    fn gather(self, x: &[f32], stride: usize) -> __m512 {
        let s = gather_stride(stride, 15);
        let x = &x[..15 * stride + 1];
        // SAFETY: the token proves AVX-512F.
        let index = unsafe {
            _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(s),
            )
        };
        // SAFETY: lane i reads x[i * stride], i < 16, inside `x` (checked above; 15 * stride
        // fits i32: gather_stride); the token proves AVX-512F.
        unsafe { _mm512_i32gather_ps::<4>(index, x.as_ptr()) }
    }
    op!(add(a: __m512, b: __m512) -> __m512 = _mm512_add_ps(a, b));
    op!(sub(a: __m512, b: __m512) -> __m512 = _mm512_sub_ps(a, b));
    op!(mul(a: __m512, b: __m512) -> __m512 = _mm512_mul_ps(a, b));
    op!(div(a: __m512, b: __m512) -> __m512 = _mm512_div_ps(a, b));
    op!(sqrt(a: __m512) -> __m512 = _mm512_sqrt_ps(a));
    op!(fma(a: __m512, b: __m512, c: __m512) -> __m512 = _mm512_fmadd_ps(a, b, c));
    op!(max(a: __m512, b: __m512) -> __m512 = _mm512_max_ps(a, b));
    op!(gt(a: __m512, b: __m512) -> __mmask16 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b));
    op!(lt(a: __m512, b: __m512) -> __mmask16 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b));
    op!(select(m: __mmask16, t: __m512, f: __m512) -> __m512 = _mm512_mask_blend_ps(m, f, t));
    op!(abs(a: __m512) -> __m512 = _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(a),
        _mm512_set1_epi32(0x7fff_ffff)
    )));
    op!(or_sign(t: __m512, x: __m512) -> __m512 = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(t),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN))
    )));
    op!(floor(a: __m512) -> __m512 =
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a));
    op!(pow2i(k: __m512) -> __m512 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(
        _mm512_add_epi32(_mm512_cvttps_epi32(k), _mm512_set1_epi32(127))
    )));
    op!(reduce_add(v: __m512) -> f32 = _mm512_reduce_add_ps(v));
    op!(reduce_max(v: __m512) -> f32 = _mm512_reduce_max_ps(v));
}

/// `stride` as the i32 a gather multiplies by `0..=last`; panics unless `last * stride` fits
/// an i32 (so no lane offset can wrap).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn gather_stride(stride: usize, last: usize) -> i32 {
    match stride.checked_mul(last) {
        Some(max) if max <= i32::MAX as usize => stride as i32,
        _ => panic!("gather stride {stride} too large"),
    }
}

/// The first `n` of 16 lanes (`n <= 16`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lane_mask16(n: usize) -> __mmask16 {
    debug_assert!(n <= 16);
    ((1u32 << n.min(16)) - 1) as __mmask16
}

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    type V = __m256;
    type M = __m256;
    const LANES: usize = 8;

    op!(splat(x: f32) -> __m256 = _mm256_set1_ps(x));
    #[inline(always)]
    fn load(self, x: &[f32]) -> __m256 {
        let x = &x[..8];
        // SAFETY: `x` has 8 readable values (checked above); the token proves AVX.
        unsafe { _mm256_loadu_ps(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, out: &mut [f32], v: __m256) {
        let out = &mut out[..8];
        // SAFETY: `out` has 8 writable values (checked above); the token proves AVX.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn load_tail(self, x: &[f32], fill: f32) -> __m256 {
        let mask = self.lane_mask(x.len());
        // SAFETY: `vmaskmovps` reads only the lanes whose mask is set, the first `x.len()`, which
        // are readable (faults of masked-off lanes are suppressed). The token proves AVX.
        let loaded = unsafe { _mm256_maskload_ps(x.as_ptr(), mask) };
        self.select(_mm256_castsi256_ps_(self, mask), loaded, self.splat(fill))
    }
    #[inline(always)]
    fn store_tail(self, out: &mut [f32], v: __m256) {
        let mask = self.lane_mask(out.len());
        // SAFETY: `vmaskmovps` writes only the lanes whose mask is set, the first `out.len()`,
        // which are writable. The token proves AVX.
        unsafe { _mm256_maskstore_ps(out.as_mut_ptr(), mask, v) }
    }
    #[inline(always)]
    fn gather(self, x: &[f32], stride: usize) -> __m256 {
        let s = gather_stride(stride, 7);
        let x = &x[..7 * stride + 1];
        // SAFETY: the token proves AVX2.
        let index = unsafe {
            _mm256_mullo_epi32(
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                _mm256_set1_epi32(s),
            )
        };
        // SAFETY: lane i reads x[i * stride], i < 8, inside `x` (checked above; 7 * stride
        // fits i32: gather_stride); the token proves AVX2.
        unsafe { _mm256_i32gather_ps::<4>(x.as_ptr(), index) }
    }
    #[inline(always)]
    fn keep_first(self, v: __m256, n: usize) -> __m256 {
        let mask = _mm256_castsi256_ps_(self, self.lane_mask(n));
        self.select(mask, v, self.splat(0.0))
    }
    op!(add(a: __m256, b: __m256) -> __m256 = _mm256_add_ps(a, b));
    op!(sub(a: __m256, b: __m256) -> __m256 = _mm256_sub_ps(a, b));
    op!(mul(a: __m256, b: __m256) -> __m256 = _mm256_mul_ps(a, b));
    op!(div(a: __m256, b: __m256) -> __m256 = _mm256_div_ps(a, b));
    op!(sqrt(a: __m256) -> __m256 = _mm256_sqrt_ps(a));
    op!(fma(a: __m256, b: __m256, c: __m256) -> __m256 = _mm256_fmadd_ps(a, b, c));
    op!(max(a: __m256, b: __m256) -> __m256 = _mm256_max_ps(a, b));
    op!(gt(a: __m256, b: __m256) -> __m256 = _mm256_cmp_ps::<_CMP_GT_OQ>(a, b));
    op!(lt(a: __m256, b: __m256) -> __m256 = _mm256_cmp_ps::<_CMP_LT_OQ>(a, b));
    op!(select(m: __m256, t: __m256, f: __m256) -> __m256 = _mm256_blendv_ps(f, t, m));
    op!(abs(a: __m256) -> __m256 =
        _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff))));
    op!(or_sign(t: __m256, x: __m256) -> __m256 = _mm256_or_ps(
        t,
        _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN)))
    ));
    op!(floor(a: __m256) -> __m256 = _mm256_floor_ps(a));
    op!(pow2i(k: __m256) -> __m256 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(
        _mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127))
    )));
    op!(reduce_add(v: __m256) -> f32 = {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    });
    op!(reduce_max(v: __m256) -> f32 = {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps::<1>(s, s)))
    });
}

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// All-ones in the first `n` of 8 lanes (`n <= 8`).
    #[inline(always)]
    fn lane_mask(self, n: usize) -> __m256i {
        // SAFETY: the token proves AVX2.
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n.min(8) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
}

/// `_mm256_castsi256_ps` through the token.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(non_snake_case)]
fn _mm256_castsi256_ps_(_token: Avx2, m: __m256i) -> __m256 {
    // SAFETY: the token proves AVX.
    unsafe { _mm256_castsi256_ps(m) }
}

#[cfg(target_arch = "aarch64")]
#[allow(unused_unsafe)] // NEON intrinsics are safe where the target enables NEON statically
impl Simd for Neon {
    type V = float32x4_t;
    type M = uint32x4_t;
    const LANES: usize = 4;

    op!(splat(x: f32) -> float32x4_t = vdupq_n_f32(x));
    #[inline(always)]
    fn load(self, x: &[f32]) -> float32x4_t {
        let x = &x[..4];
        // SAFETY: `x` has 4 readable values (checked above); the token proves NEON.
        unsafe { vld1q_f32(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, out: &mut [f32], v: float32x4_t) {
        let out = &mut out[..4];
        // SAFETY: `out` has 4 writable values (checked above); the token proves NEON.
        unsafe { vst1q_f32(out.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn load_tail(self, x: &[f32], fill: f32) -> float32x4_t {
        let mut buf = [fill; 4];
        buf[..x.len()].copy_from_slice(x);
        self.load(&buf)
    }
    #[inline(always)]
    fn store_tail(self, out: &mut [f32], v: float32x4_t) {
        let mut buf = [0.0; 4];
        self.store(&mut buf, v);
        let n = out.len();
        out.copy_from_slice(&buf[..n]);
    }
    #[inline(always)]
    fn gather(self, x: &[f32], stride: usize) -> float32x4_t {
        let x = &x[..3 * stride + 1];
        self.load(&[x[0], x[stride], x[2 * stride], x[3 * stride]])
    }
    #[inline(always)]
    fn keep_first(self, v: float32x4_t, n: usize) -> float32x4_t {
        let mut buf = [0.0; 4];
        self.store(&mut buf, v);
        buf[n.min(4)..].fill(0.0);
        self.load(&buf)
    }
    op!(add(a: float32x4_t, b: float32x4_t) -> float32x4_t = vaddq_f32(a, b));
    op!(sub(a: float32x4_t, b: float32x4_t) -> float32x4_t = vsubq_f32(a, b));
    op!(mul(a: float32x4_t, b: float32x4_t) -> float32x4_t = vmulq_f32(a, b));
    op!(div(a: float32x4_t, b: float32x4_t) -> float32x4_t = vdivq_f32(a, b));
    op!(sqrt(a: float32x4_t) -> float32x4_t = vsqrtq_f32(a));
    op!(fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t = vfmaq_f32(c, a, b));
    op!(max(a: float32x4_t, b: float32x4_t) -> float32x4_t = vmaxq_f32(a, b));
    op!(gt(a: float32x4_t, b: float32x4_t) -> uint32x4_t = vcgtq_f32(a, b));
    op!(lt(a: float32x4_t, b: float32x4_t) -> uint32x4_t = vcltq_f32(a, b));
    op!(select(m: uint32x4_t, t: float32x4_t, f: float32x4_t) -> float32x4_t = vbslq_f32(m, t, f));
    op!(abs(a: float32x4_t) -> float32x4_t = vabsq_f32(a));
    op!(or_sign(t: float32x4_t, x: float32x4_t) -> float32x4_t = vreinterpretq_f32_u32(vorrq_u32(
        vreinterpretq_u32_f32(t),
        vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000))
    )));
    op!(floor(a: float32x4_t) -> float32x4_t = vrndmq_f32(a));
    op!(pow2i(k: float32x4_t) -> float32x4_t = vreinterpretq_f32_s32(vshlq_n_s32::<23>(
        vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127))
    )));
    op!(reduce_add(v: float32x4_t) -> f32 = vaddvq_f32(v));
    op!(reduce_max(v: float32x4_t) -> f32 = vmaxvq_f32(v));
}

// ---------------------------------------------------------------- dispatch

/// The path a [`Kernels`] runs, holding its token.
#[derive(Clone, Copy, Debug)]
enum Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
    #[cfg(target_arch = "aarch64")]
    Neon(Neon),
}

/// The f32 kernels of one instruction set. Every method has the same contract on every path;
/// lengths are checked by slicing, so a wrong length panics, never reads out of range.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    path: Path,
}

impl Kernels {
    /// The kernels of `isa`. Errors with [`Error::IsaUnavailable`] if this CPU (or, without
    /// `std`, this build) cannot run it.
    pub fn new(isa: Isa) -> Result<Kernels, Error> {
        let unavailable = Err(Error::IsaUnavailable { isa: isa.name() });
        let path = match isa {
            Isa::Scalar => Path::Scalar,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => match Avx2::new() {
                Some(t) => Path::Avx2(t),
                None => return unavailable,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => match Avx512::new() {
                Some(t) => Path::Avx512(t),
                None => return unavailable,
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => match Neon::new() {
                Some(t) => Path::Neon(t),
                None => return unavailable,
            },
            #[allow(unreachable_patterns)]
            _ => return unavailable,
        };
        Ok(Kernels { path })
    }

    /// The fastest path this CPU runs.
    pub fn best() -> Kernels {
        Kernels::new(Isa::best()).unwrap_or(Kernels { path: Path::Scalar })
    }

    /// The portable reference path.
    pub const fn scalar() -> Kernels {
        Kernels { path: Path::Scalar }
    }

    /// Which path this is.
    pub fn isa(&self) -> Isa {
        match self.path {
            Path::Scalar => Isa::Scalar,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2(_) => Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            Path::Avx512(_) => Isa::Avx512,
            #[cfg(target_arch = "aarch64")]
            Path::Neon(_) => Isa::Neon,
        }
    }
}

/// For each kernel: one `#[target_feature]` entry per vector path (a safe function whose body is
/// the generic kernel, compiled with that path's instructions), and a [`Kernels`] method that
/// dispatches to it, or to the scalar reference in `scalar.rs`.
macro_rules! dispatch {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        #[cfg(target_arch = "x86_64")]
        mod avx512_entry {
            use super::*;
            $(
                #[target_feature(enable = "avx512f")]
                pub(super) fn $name(t: Avx512, $($arg: $ty),*) $(-> $ret)? {
                    kernels::$name(t, $($arg),*)
                }
            )*
        }

        #[cfg(target_arch = "x86_64")]
        mod avx2_entry {
            use super::*;
            $(
                #[target_feature(enable = "avx2,fma")]
                pub(super) fn $name(t: Avx2, $($arg: $ty),*) $(-> $ret)? {
                    kernels::$name(t, $($arg),*)
                }
            )*
        }

        #[cfg(target_arch = "aarch64")]
        mod neon_entry {
            use super::*;
            $(
                #[target_feature(enable = "neon")]
                pub(super) fn $name(t: Neon, $($arg: $ty),*) $(-> $ret)? {
                    kernels::$name(t, $($arg),*)
                }
            )*
        }

        impl Kernels {
            $(
                $(#[$doc])*
                pub fn $name(&self, $($arg: $ty),*) $(-> $ret)? {
                    match self.path {
                        Path::Scalar => scalar::$name($($arg),*),
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: the Avx512 token proves the CPU supports AVX-512F.
                        Path::Avx512(t) => unsafe { avx512_entry::$name(t, $($arg),*) },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: the Avx2 token proves the CPU supports AVX2 and FMA.
                        Path::Avx2(t) => unsafe { avx2_entry::$name(t, $($arg),*) },
                        #[cfg(target_arch = "aarch64")]
                        // SAFETY: the Neon token proves the CPU supports NEON.
                        Path::Neon(t) => unsafe { neon_entry::$name(t, $($arg),*) },
                    }
                }
            )*
        }
    };
}

dispatch! {
    /// `out = exp(x)` elementwise; the same bits as [`crate::math::exp_f32`] on every path.
    fn exp(out: &mut [f32], x: &[f32]);
    /// `out = tanh(x)` elementwise; the same bits as [`crate::math::tanh_f32`] on every path.
    fn tanh(out: &mut [f32], x: &[f32]);
    /// `embcat = C[Xb].view(n, T*E)`: the embedding gather. `embcat` (n, T*E), `xb` (n, T) ids
    /// `< V`, `C` (V, E). Exact (a copy).
    fn embed_gather(embcat: &mut [f32], xb: &[u8], C: &[f32], embedding: usize);
    /// `out = a @ b + bias` (`bias` may be empty: no bias). `out` (n, m), `a` (n, k),
    /// `b` (k, m), `bias` (m or 0). Vector paths sum over k in the same order with FMA: each
    /// element differs from scalar by at most k rounding errors of its partial sums.
    fn linear_forward(out: &mut [f32], a: &[f32], b: &[f32], bias: &[f32], m: usize);
    /// `out = a.T @ b` (the weight gradient of a linear layer). `out` (k, m), `a` (n, k),
    /// `b` (n, m). Sums over n in order, FMA on the vector paths.
    fn matmul_tn(out: &mut [f32], a: &[f32], b: &[f32], k: usize, m: usize);
    /// `out = a @ b.T` (the input gradient of a linear layer). `out` (n, p), `a` (n, m),
    /// `b` (p, m). Vector paths sum in lane-strided order, then across lanes.
    fn matmul_nt(out: &mut [f32], a: &[f32], b: &[f32], m: usize);
    /// `h_to_dhpreact = (1 - h**2) * (dout @ wt)` in place over h (n, m): the input gradient of
    /// `logits = h @ W2 + b2` fused with the tanh backward. `dout` (n, k), `wt` = W2.T (k, m).
    /// Sums over k in order, FMA on the vector paths.
    fn linear_tanh_backward(h_to_dhpreact: &mut [f32], dout: &[f32], wt: &[f32], m: usize);
    /// `hprebn[i] = b1 + table[0][x[i,0]] + ... + table[T-1][x[i,T-1]]`, added in that order:
    /// the first linear layer at inference through per-position tables
    /// `table[t] = C @ W1[t*E..(t+1)*E]` (T, V, H). `hprebn` (rows, H), `x` (rows, T) ids < V.
    /// The same bits as scalar.
    fn embed_table_forward(hprebn: &mut [f32], x: &[u8], table: &[f32], b1: &[f32], vocab: usize);
    /// `out = a.T`. `out` (m, n), `a` (n, m). Exact.
    fn transpose(out: &mut [f32], a: &[f32], m: usize);
    /// Batchnorm forward (training), in place over `hprebn_to_bnraw` (n, H); writes `bnmeani`
    /// and `bnvar_inv` (H). The same bits as the scalar code on every path.
    fn batchnorm_forward(hprebn_to_bnraw: &mut [f32], bnmeani: &mut [f32], bnvar_inv: &mut [f32]);
    /// `h = tanh(bngain * bnraw + bnbias)`, (n, H). The same bits as scalar.
    fn scale_shift_tanh_forward(h: &mut [f32], bnraw: &[f32], bngain: &[f32], bnbias: &[f32]);
    /// `dh_to_dhpreact = (1 - h**2) * dh` in place, (n, H). The same bits as scalar.
    fn tanh_backward(dh_to_dhpreact: &mut [f32], h: &[f32]);
    /// The fused batchnorm backward, in place over `dhpreact_to_dhprebn` (n, H); writes
    /// `dbngain`, `dbnbias` (H). The same bits as scalar.
    fn batchnorm_backward(
        dhpreact_to_dhprebn: &mut [f32],
        dbngain: &mut [f32],
        dbnbias: &mut [f32],
        bnraw: &[f32],
        bnvar_inv: &[f32],
        bngain: &[f32],
    );
    /// `dbias = dout.sum(0)`, (m) from (n, m). The same bits as scalar.
    fn bias_backward(dbias: &mut [f32], dout: &[f32]);
    /// Cross-entropy forward over `logits_to_probs` (n, V) (overwritten by probs); returns the
    /// mean loss. Vector paths sum `counts` across lanes in tree order (differences of a few
    /// ulp in probs and loss).
    fn cross_entropy_forward(logits_to_probs: &mut [f32], yb: &[u8]) -> f32;
    /// `dlogits = (probs - one_hot(Yb)) / n` in place. The same bits as scalar.
    fn cross_entropy_backward(probs_to_dlogits: &mut [f32], yb: &[u8]);
    /// `dC[Xb[k, t]] += demb[k, t]`: the scatter-add of the embedding gradient; `dC` (V, E) is
    /// overwritten (rows no token used get 0). The same bits as scalar.
    fn embed_scatter_add(dC: &mut [f32], dembcat: &[f32], xb: &[u8]);
    /// SGD: `p = p - lr * grad` elementwise. The same bits as scalar.
    fn sgd(p: &mut [f32], grad: &[f32], lr: f32);
    /// Whether every value of `x` is finite (no NaN, no infinity). Exact on every path.
    fn all_finite(x: &[f32]) -> bool;
    /// The eval forward without batch statistics: `h = tanh(bngain * (hprebn - bnmean) *
    /// bnvar_inv + bnbias)` in place over `hprebn_to_h` (rows, H).
    fn batchnorm_tanh_inference(
        hprebn_to_h: &mut [f32],
        bnmean: &[f32],
        bnvar_inv: &[f32],
        bngain: &[f32],
        bnbias: &[f32],
    );
}
