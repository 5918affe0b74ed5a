//! aarch64: the NEON token, its [`Simd`] implementation, and one `#[target_feature]` entry
//! point per kernel, each wrapped in a safe function that takes the token. With `x86_64.rs`, the
//! only code of the crate that uses `unsafe`.

use core::arch::aarch64::*;

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

/// Proof that the CPU runs NEON (every aarch64 CPU does).
#[derive(Clone, Copy, Debug)]
pub struct Neon(());

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

/// Per kernel: `neon::name(token, ..)`, a safe function that calls the generic kernel compiled
/// with NEON.
macro_rules! neon_entries {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $raw:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        mod neon_tf {
            use super::*;
            $(
                #[target_feature(enable = "neon")]
                pub(super) fn $name(t: Neon, $($arg: $ty),*) $(-> $ret)? {
                    kernels::$name(t, $($arg),*)
                }
            )*
        }
        pub(super) mod neon {
            use super::*;
            $(
                #[inline(always)]
                pub(in crate::simd) fn $name(t: Neon, $($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: the Neon token proves the CPU supports NEON.
                    unsafe { neon_tf::$name(t, $($arg),*) }
                }
            )*
        }
    };
}

super::kernel_list!(neon_entries);
