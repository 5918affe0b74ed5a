//! wasm32: the SIMD128 token, its [`Simd`] implementation, and one entry point per kernel.
//!
//! WebAssembly has no run-time feature detection: a module either contains SIMD128 instructions
//! (and an engine without SIMD refuses the whole module at validation) or does not. So the path
//! is chosen at build time: with `-C target-feature=+simd128` the token exists ([`Simd128::new`]
//! is `Some`), the `Simd` implementation and the entry points are compiled; without it
//! [`Simd128::new`] is `None` and no SIMD instruction is emitted at all. Plain SIMD128 only, not
//! relaxed SIMD: every operation used has one defined result on every engine.
//!
//! Plain SIMD128 has no fused multiply-add: [`Simd::fma`] is a multiply then an add, two
//! roundings, so on this path the products round as the scalar code's multiply-then-add chains
//! do, and the vector exp and tanh run their polynomial unfused (their error bound is stated in
//! `mod.rs` and tested by `core/tests/math.rs`).
//!
//! Since the feature is enabled for the whole build, the intrinsics are safe to call; only the
//! loads and stores through raw pointers are `unsafe`, each after a bounds check. With
//! `x86_64.rs` and `aarch64.rs`, the only code of the crate that uses `unsafe`.

#[cfg(target_feature = "simd128")]
use core::arch::wasm32::*;

#[cfg(target_feature = "simd128")]
use super::{kernels, Simd};

/// Proof that the build targets WebAssembly SIMD128 (`-C target-feature=+simd128`).
#[derive(Clone, Copy, Debug)]
pub struct Simd128(());

impl Simd128 {
    /// `Some` when the build enables SIMD128 (WebAssembly cannot ask at run time).
    #[allow(unreachable_code)]
    pub fn new() -> Option<Self> {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            return Some(Simd128(()));
        }
        None
    }

    /// # Safety
    /// The caller promises that the build enables SIMD128 (without it the token has no path to
    /// run: [`super::Kernels`] only runs SIMD128 in a build that enables it).
    pub const unsafe fn new_unchecked() -> Self {
        Simd128(())
    }
}

/// `fma` is unfused here (plain SIMD128 has no multiply-add): `a * b` rounded, then `+ c`
/// rounded, the scalar code's `acc + a * b`. `reduce_add` sums `(v0 + v2) + (v1 + v3)`.
#[cfg(target_feature = "simd128")]
impl Simd for Simd128 {
    type V = v128;
    type M = v128;
    const LANES: usize = 4;
    /// V8 on x86-64 keeps one of the 16 vector registers for itself, and each broadcast row
    /// value needs a register of its own: four rows of three vectors (twelve accumulators)
    /// spill, four rows of two do not.
    const STRIP_VECTORS: usize = 2;
    /// The page downloads this code.
    const FEW_SHAPES: bool = true;
    const PACK_PANELS: bool = true;

    #[inline(always)]
    fn splat(self, x: f32) -> v128 {
        f32x4_splat(x)
    }
    #[inline(always)]
    fn load(self, x: &[f32]) -> v128 {
        let x = &x[..4];
        // SAFETY: `x` has 4 readable f32, 16 bytes (checked above); `v128_load` has no
        // alignment requirement.
        unsafe { v128_load(x.as_ptr().cast::<v128>()) }
    }
    #[inline(always)]
    fn store(self, out: &mut [f32], v: v128) {
        let out = &mut out[..4];
        // SAFETY: `out` has 4 writable f32, 16 bytes (checked above); `v128_store` has no
        // alignment requirement.
        unsafe { v128_store(out.as_mut_ptr().cast::<v128>(), v) }
    }
    /// Lane by lane, no copy through memory: a variable-length copy would be a `memory.copy`,
    /// which engines run out of line.
    #[inline(always)]
    fn load_tail(self, x: &[f32], fill: f32) -> v128 {
        let n = x.len();
        let v = match n {
            0 => f32x4_splat(0.0),
            1 => f32x4(x[0], 0.0, 0.0, 0.0),
            2 => {
                let x = &x[..2];
                // SAFETY: `x` has 2 readable f32, 8 bytes (checked above); no alignment needed.
                unsafe { v128_load64_zero(x.as_ptr().cast::<u64>()) }
            }
            _ => {
                let x = &x[..3];
                // SAFETY: `x` has 3 readable f32, 12 bytes (checked above): 8 bytes from `x`,
                // then 4 from `x + 2`; no alignment needed.
                unsafe {
                    let v = v128_load64_zero(x.as_ptr().cast::<u64>());
                    v128_load32_lane::<2>(v, x[2..].as_ptr().cast::<u32>())
                }
            }
        };
        if fill == 0.0 && fill.is_sign_positive() {
            v
        } else {
            v128_bitselect(v, f32x4_splat(fill), first_lanes(n))
        }
    }
    /// Lane by lane, as `load_tail`.
    #[inline(always)]
    fn store_tail(self, out: &mut [f32], v: v128) {
        match out.len() {
            0 => {}
            1 => out[0] = f32x4_extract_lane::<0>(v),
            2 => {
                let out = &mut out[..2];
                // SAFETY: `out` has 2 writable f32, 8 bytes (checked above); no alignment needed.
                unsafe { v128_store64_lane::<0>(v, out.as_mut_ptr().cast::<u64>()) }
            }
            _ => {
                let out = &mut out[..3];
                out[2] = f32x4_extract_lane::<2>(v);
                // SAFETY: `out` has 3 writable f32 (checked above), of which the first 2, 8
                // bytes, are written here; no alignment needed.
                unsafe { v128_store64_lane::<0>(v, out.as_mut_ptr().cast::<u64>()) }
            }
        }
    }
    #[inline(always)]
    fn gather(self, x: &[f32], stride: usize) -> v128 {
        let x = &x[..3 * stride + 1];
        f32x4(x[0], x[stride], x[2 * stride], x[3 * stride])
    }
    #[inline(always)]
    fn keep_first(self, v: v128, n: usize) -> v128 {
        v128_and(v, first_lanes(n))
    }
    /// V8 rebuilds a `v128.const` at each use (a 64-bit immediate and two shuffles).
    #[inline(always)]
    fn opaque(self, v: v128) -> v128 {
        core::hint::black_box(v)
    }
    #[inline(always)]
    fn add(self, a: v128, b: v128) -> v128 {
        f32x4_add(a, b)
    }
    #[inline(always)]
    fn sub(self, a: v128, b: v128) -> v128 {
        f32x4_sub(a, b)
    }
    #[inline(always)]
    fn mul(self, a: v128, b: v128) -> v128 {
        f32x4_mul(a, b)
    }
    #[inline(always)]
    fn div(self, a: v128, b: v128) -> v128 {
        f32x4_div(a, b)
    }
    #[inline(always)]
    fn sqrt(self, a: v128) -> v128 {
        f32x4_sqrt(a)
    }
    /// Not fused: SIMD128 has no multiply-add (relaxed SIMD's `f32x4.relaxed_madd` may or may
    /// not fuse, engine by engine). Two roundings, as the scalar code's `a * b + c`.
    #[inline(always)]
    fn fma(self, a: v128, b: v128, c: v128) -> v128 {
        f32x4_add(f32x4_mul(a, b), c)
    }
    /// IEEE maximum; a NaN lane gives NaN (as NEON's `vmaxq_f32`).
    #[inline(always)]
    fn max(self, a: v128, b: v128) -> v128 {
        f32x4_max(a, b)
    }
    #[inline(always)]
    fn gt(self, a: v128, b: v128) -> v128 {
        f32x4_gt(a, b)
    }
    #[inline(always)]
    fn lt(self, a: v128, b: v128) -> v128 {
        f32x4_lt(a, b)
    }
    #[inline(always)]
    fn select(self, m: v128, t: v128, f: v128) -> v128 {
        v128_bitselect(t, f, m)
    }
    /// `pmin`: one `minps` in V8 (`f32x4.min`, which propagates NaN, takes several).
    #[inline(always)]
    fn clamp_above(self, x: v128, c: v128) -> v128 {
        f32x4_pmin(x, c)
    }
    #[inline(always)]
    fn clamp_below(self, x: v128, c: v128) -> v128 {
        f32x4_pmax(x, c)
    }
    #[inline(always)]
    fn abs(self, a: v128) -> v128 {
        f32x4_abs(a)
    }
    #[inline(always)]
    fn or_sign(self, t: v128, x: v128) -> v128 {
        v128_or(t, v128_and(x, u32x4_splat(0x8000_0000)))
    }
    #[inline(always)]
    fn floor(self, a: v128) -> v128 {
        f32x4_floor(a)
    }
    #[inline(always)]
    fn pow2i(self, k: v128) -> v128 {
        // k + 1.5 * 2^23 holds the integer k in its low mantissa bits (|k| < 2^22): its bits
        // less those of 1.5 * 2^23 are k, two operations where V8 spends several on the
        // saturating conversion
        const SHIFT: f32 = 12_582_912.0;
        let k = i32x4_sub(f32x4_add(k, f32x4_splat(SHIFT)), f32x4_splat(SHIFT));
        i32x4_shl(i32x4_add(k, i32x4_splat(127)), 23)
    }
    /// `(v0 + v2) + (v1 + v3)`: the upper half added to the lower, then the two lanes.
    #[inline(always)]
    fn reduce_add(self, v: v128) -> f32 {
        let h = f32x4_add(v, i32x4_shuffle::<2, 3, 2, 3>(v, v));
        f32x4_extract_lane::<0>(h) + f32x4_extract_lane::<1>(h)
    }
    #[inline(always)]
    fn reduce_max(self, v: v128) -> f32 {
        let h = f32x4_max(v, i32x4_shuffle::<2, 3, 2, 3>(v, v));
        let h = f32x4_max(h, i32x4_shuffle::<1, 1, 1, 1>(h, h));
        f32x4_extract_lane::<0>(h)
    }
}

/// All ones in the lanes below `n`, zero in the others.
#[cfg(target_feature = "simd128")]
#[inline(always)]
fn first_lanes(n: usize) -> v128 {
    let n = n.min(4) as i32;
    i32x4_lt(i32x4(0, 1, 2, 3), i32x4_splat(n))
}

/// Per kernel: `simd128::name(token, ..)`, the generic kernel compiled with SIMD128. The feature
/// is enabled for the whole build, so the `#[target_feature]` function is safe to call here.
#[cfg(target_feature = "simd128")]
macro_rules! simd128_entries {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $raw:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        mod simd128_tf {
            use super::*;
            $(
                #[target_feature(enable = "simd128")]
                pub(super) fn $name(t: Simd128, $($arg: $ty),*) $(-> $ret)? {
                    kernels::$name(t, $($arg),*)
                }
            )*
        }
        pub(super) mod simd128 {
            use super::*;
            $(
                #[inline(always)]
                pub(in crate::simd) fn $name(t: Simd128, $($arg: $ty),*) $(-> $ret)? {
                    simd128_tf::$name(t, $($arg),*)
                }
            )*
        }
    };
}

#[cfg(target_feature = "simd128")]
super::kernel_list!(simd128_entries);
