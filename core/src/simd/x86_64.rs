//! x86_64: the AVX-512F and AVX2+FMA tokens, their [`Simd`] implementations, and one
//! `#[target_feature]` entry point per kernel and path, each wrapped in a safe function that
//! takes the token. With `aarch64.rs`, the only code of the crate that uses `unsafe`.

use core::arch::x86_64::*;

use super::{kernels, Simd};

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

/// Proof that the CPU runs AVX-512F. Only [`Avx512::new`] (after detection) or the `unsafe`
/// [`Avx512::new_unchecked`] make one.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

/// Proof that the CPU runs AVX2 and FMA.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

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
#[inline(always)]
fn gather_stride(stride: usize, last: usize) -> i32 {
    match stride.checked_mul(last) {
        Some(max) if max <= i32::MAX as usize => stride as i32,
        _ => panic!("gather stride {stride} too large"),
    }
}

/// The first `n` of 16 lanes (`n <= 16`).
#[inline(always)]
fn lane_mask16(n: usize) -> __mmask16 {
    debug_assert!(n <= 16);
    ((1u32 << n.min(16)) - 1) as __mmask16
}

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
#[inline(always)]
#[allow(non_snake_case)]
fn _mm256_castsi256_ps_(_token: Avx2, m: __m256i) -> __m256 {
    // SAFETY: the token proves AVX.
    unsafe { _mm256_castsi256_ps(m) }
}

/// Per kernel: `avx512::name(token, ..)` and `avx2::name(token, ..)`, safe functions that call
/// the generic kernel compiled with that path's instructions.
macro_rules! x86_entries {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $raw:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        mod avx512_tf {
            use super::*;
            $(
                #[target_feature(enable = "avx512f")]
                pub(super) fn $name(t: Avx512, $($arg: $ty),*) $(-> $ret)? {
                    kernels::$name(t, $($arg),*)
                }
            )*
        }
        pub(super) mod avx512 {
            use super::*;
            $(
                #[inline(always)]
                pub(in crate::simd) fn $name(t: Avx512, $($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: the Avx512 token proves the CPU supports AVX-512F.
                    unsafe { avx512_tf::$name(t, $($arg),*) }
                }
            )*
        }
        mod avx2_tf {
            use super::*;
            $(
                #[target_feature(enable = "avx2,fma")]
                pub(super) fn $name(t: Avx2, $($arg: $ty),*) $(-> $ret)? {
                    kernels::$name(t, $($arg),*)
                }
            )*
        }
        pub(super) mod avx2 {
            use super::*;
            $(
                #[inline(always)]
                pub(in crate::simd) fn $name(t: Avx2, $($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: the Avx2 token proves the CPU supports AVX2 and FMA.
                    unsafe { avx2_tf::$name(t, $($arg),*) }
                }
            )*
        }
    };
}

super::kernel_list!(x86_entries);
