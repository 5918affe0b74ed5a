//! Explicit SIMD: AVX-512F and AVX2+FMA on x86_64, NEON on aarch64, SIMD128 on wasm32 (chosen at
//! build time), and the portable scalar code as the reference and fallback.
//!
//! Layout, as memchr's `arch/`: this file holds the instruction sets ([`Isa`]), the vector
//! interface (`Simd`), the list of kernels and their dispatch ([`Kernels`], which checks every
//! shape); `kernels.rs` the vector kernels, written once and generic over `Simd` (forbids
//! `unsafe`); `scalar.rs` the scalar path (forbids `unsafe`); `x86_64.rs`, `aarch64.rs` and
//! `wasm32.rs` the tokens, their intrinsics and the `#[target_feature]` entry points: the only
//! `unsafe` code of the crate.
//!
//! How a path is chosen:
//! - With the `std` feature, at run time: [`Isa::best`] asks the CPU (`is_x86_feature_detected!`)
//!   and picks AVX-512F, then AVX2+FMA, then scalar; on aarch64, NEON.
//! - Without `std` (firmware), by `cfg(target_feature)`: a path is available only if the build
//!   enables its features (`-C target-feature=+avx2,+fma`, or NEON, which aarch64 always has).
//!   A thumbv7em build has no vector path and runs the scalar code.
//! - On wasm32, always at build time (WebAssembly has no run-time detection, and an engine
//!   without SIMD refuses a module that contains any SIMD instruction): SIMD128 (plain, not
//!   relaxed) is available iff the build enables it (`-C target-feature=+simd128`); without it
//!   no vector code is compiled.
//! - [`Kernels::new`] forces one path and fails with [`Error::IsaUnavailable`] when the CPU lacks
//!   it, so a forced test never silently runs another.
//!
//! Safety design: a token type (`Avx512`, `Avx2`, `Neon`, `Simd128`) can only be built after detection, or
//! by an `unsafe` constructor whose caller promises support. The generic kernels take the token
//! as their first argument; every intrinsic call is sound because the token exists. Each kernel
//! has one `#[target_feature]` entry point per path, called (the one `unsafe` call of a
//! dispatch) by a safe function of the architecture file that takes the token.
//!
//! The vector exp follows [`crate::math`]'s algorithm (the same reduction, Cephes coefficients
//! and clamps) with every multiply-add fused; the vector tanh is one branch-free formula on that
//! exponential (`e^{2a} - 1` over `e^{2a} + 1`, see `kernels::tanh_v`). Both are within 2 ulp
//! of the correctly rounded result (so within 3 ulp of the scalar code, which stays the
//! bit-exact reference of the firmware and of sampling), with the scalar special values (NaN,
//! ±inf, ±0, subnormals, the clamp points). The kernels built on them (batchnorm scale-shift-tanh and its inference form,
//! the cross-entropy forward) inherit that bound. The products use FMA and therefore differ from
//! the scalar code by rounding; each kernel's documentation says by how much.
//!
//! SIMD128 has no fused multiply-add: on that path `Simd::fma` is a multiply then an add (two
//! roundings), so its products round as the scalar code's multiply-then-add chains do (each
//! output of a long product is the scalar code's unfused chain, in order, bit for bit: tested),
//! and its exp and tanh evaluate the same algorithm unfused. They keep the 2 ulp bound:
//! `core/tests/math.rs`'s sweeps (2026-12-03, wasm32-wasip1 under Node 20) measured at most 1
//! ulp for exp and 2 ulp for tanh from the correctly rounded result, the maxima of the FMA paths
//! (the steps the fusing mattered for are exact: `k * LN2_HI` and `2^k * q`).

// A kernel takes its outputs, inputs and sizes as plain arguments, like llm.c's.
#![allow(clippy::too_many_arguments)]
// On other targets (thumbv7em, wasm32 without simd128) only the scalar path exists and the vector machinery is unused.
#![cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )),
    allow(dead_code, unused_macros, unused_imports)
)]

use crate::error::Error;

mod checked;
#[forbid(unsafe_code)]
mod choose;
#[forbid(unsafe_code)]
mod kernels;
#[forbid(unsafe_code)]
mod scalar;

/// Every kernel, once: `fn name / name_raw(args) -> ret;`. `$m!` receives the list (the
/// architecture files make their entry points from it, this file the dispatch).
macro_rules! kernel_list {
    ($m:ident) => {
        $m! {
            fn exp / exp_raw(out: &mut [f32], x: &[f32]);
            fn tanh / tanh_raw(out: &mut [f32], x: &[f32]);
            fn embed_gather / embed_gather_raw(embcat: &mut [f32], xb: &[u8], C: &[f32], embedding: usize);
            fn linear_forward / linear_forward_raw(out: &mut [f32], a: &[f32], b: &[f32], bias: &[f32], m: usize);
            fn matmul_tn / matmul_tn_raw(out: &mut [f32], a: &[f32], b: &[f32], k: usize, m: usize);
            fn matmul_nt / matmul_nt_raw(out: &mut [f32], a: &[f32], b: &[f32], m: usize);
            fn linear_tanh_backward / linear_tanh_backward_raw(h_to_dhpreact: &mut [f32], dout: &[f32], wt: &[f32], m: usize);
            fn embed_table_forward / embed_table_forward_raw(hprebn: &mut [f32], x: &[u8], table: &[f32], b1: &[f32], vocab: usize);
            fn transpose / transpose_raw(out: &mut [f32], a: &[f32], m: usize);
            fn batchnorm_center / batchnorm_center_raw(hprebn_to_bndiff: &mut [f32], bnmeani: &[f32], sum2: &mut [f32]);
            fn batchnorm_var_inv / batchnorm_var_inv_raw(sum2_to_bnvar_inv: &mut [f32], n: usize);
            fn batchnorm_scale_shift_tanh / batchnorm_scale_shift_tanh_raw(h: &mut [f32], bndiff_to_bnraw: &mut [f32], bnvar_inv: &[f32], bngain: &[f32], bnbias: &[f32]);
            fn batchnorm_backward_sums / batchnorm_backward_sums_raw(dbngain: &mut [f32], dbnbias: &mut [f32], dhpreact: &[f32], bnraw: &[f32]);
            fn batchnorm_backward_apply / batchnorm_backward_apply_raw(dhpreact_to_dhprebn: &mut [f32], bnraw: &[f32], bnvar_inv: &[f32], bngain: &[f32], dbngain: &[f32], dbnbias: &[f32], n: usize);
            fn bias_backward / bias_backward_raw(dbias: &mut [f32], dout: &[f32]);
            fn cross_entropy_sum / cross_entropy_sum_raw(logits_to_probs: &mut [f32], yb: &[u8]) -> f32;
            fn cross_entropy_backward / cross_entropy_backward_raw(probs_to_dlogits: &mut [f32], yb: &[u8], n: usize);
            fn embed_scatter_add / embed_scatter_add_raw(dC: &mut [f32], dembcat: &[f32], xb: &[u8]);
            fn sgd / sgd_raw(p: &mut [f32], grad: &[f32], lr: f32);
            fn adamw / adamw_raw(p: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], c: crate::optim::AdamWStep);
            fn sum_squares / sum_squares_raw(x: &[f32]) -> f32;
            fn scale / scale_raw(x: &mut [f32], a: f32);
            fn all_finite / all_finite_raw(x: &[f32]) -> bool;
            fn batchnorm_tanh_inference / batchnorm_tanh_inference_raw(hprebn_to_h: &mut [f32], bnmean: &[f32], bnvar_inv: &[f32], bngain: &[f32], bnbias: &[f32]);
            fn fma_peak / fma_peak_raw(acc: &mut [f32], iters: usize);
            fn moments / moments_raw(x: &[f32]) -> [f32; 2];
            fn bn_tanh_stats / bn_tanh_stats_raw(saturated: &mut [f32], bnraw: &[f32], bngain: &[f32], bnbias: &[f32], center: [f32; 2]) -> [f32; 4];
        }
    };
}
use kernel_list;

use choose::ExactChoice;
#[cfg(feature = "std")]
pub use choose::ExactEnvError;
pub use choose::{ExactKernel, Impl, SCALAR_MARGIN};

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
    /// wasm32 SIMD128 (4 lanes of f32; no FMA), chosen at build time.
    Simd128,
}

impl Isa {
    /// Every path, in order of preference (best last).
    pub const ALL: [Isa; 5] = [Isa::Scalar, Isa::Neon, Isa::Simd128, Isa::Avx2, Isa::Avx512];

    /// The lower-case name used by `--isa` and in `metrics.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::Simd128 => "simd128",
        }
    }

    /// Parses `scalar`, `avx2`, `avx512`, `neon` or `simd128` (`auto` is the caller's business: [`Isa::best`]).
    pub fn parse(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Whether this CPU (with `std`) or this build (without; on wasm32 always the build) can run
    /// the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Avx2::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Avx512::new().is_some(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Neon::new().is_some(),
            #[cfg(target_arch = "wasm32")]
            Isa::Simd128 => Simd128::new().is_some(),
            #[allow(unreachable_patterns)]
            _ => false,
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

/// The path the environment forces: the one reading of `MAKEMORE_ISA`, for the CLI (when
/// `--isa` is not given), the SIMD tests and the benchmarks.
#[cfg(feature = "std")]
impl Isa {
    /// The variable that forces a path.
    pub const ENV_VAR: &'static str = "MAKEMORE_ISA";

    /// `Ok(None)` when `MAKEMORE_ISA` is unset, empty or `auto` (the caller picks [`Isa::best`],
    /// or tests every available path); `Ok(Some(isa))` for `scalar`, `avx2`, `avx512`, `neon` or
    /// `simd128`,
    /// whether or not this CPU runs it ([`Kernels::new`] says); any other value, non-UTF-8
    /// included, is an [`IsaEnvError`].
    pub fn from_env() -> Result<Option<Isa>, IsaEnvError> {
        match std::env::var_os(Isa::ENV_VAR) {
            None => Ok(None),
            Some(value) => match value.to_str() {
                Some("" | "auto") => Ok(None),
                Some(name) => Isa::parse(name).map(Some).ok_or(IsaEnvError { value }),
                None => Err(IsaEnvError { value }),
            },
        }
    }
}

/// `MAKEMORE_ISA` holds no instruction set's name.
#[cfg(feature = "std")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsaEnvError {
    /// The variable's value.
    pub value: std::ffi::OsString,
}

#[cfg(feature = "std")]
impl core::fmt::Display for IsaEnvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}={:?}: unknown instruction set; use auto, scalar, avx2, avx512, neon or simd128, or \
             unset it",
            Isa::ENV_VAR,
            self.value
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IsaEnvError {}

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
    /// The most vectors in one register-blocked strip of a product (see `kernels::row_blocks`):
    /// 3, or 2 where four rows of three would spill.
    const STRIP_VECTORS: usize = 3;
    /// Fewer block shapes, so less code, where the code is downloaded: the products take
    /// leftover rows one by one (not two at a time), `matmul_nt` blocks of 4 x 3 or single dot
    /// products, the cross-entropy one row at a time, the embedding tables one entry per pass.
    /// The same bits either way.
    const FEW_SHAPES: bool = false;
    /// The products copy each block's values of the left operand into a panel first (see
    /// `kernels::row_blocks`): where the engine's code for R separate rows costs more than
    /// the copy. The same bits either way.
    const PACK_PANELS: bool = false;

    fn splat(self, x: f32) -> Self::V;
    /// `v`, hidden from the optimiser where a constant is better kept than rebuilt at each use
    /// (see `kernels::ExpConsts`).
    #[inline(always)]
    fn opaque(self, v: Self::V) -> Self::V {
        v
    }
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
    /// `x > c ? c : x` per lane (NaN stays NaN).
    #[inline(always)]
    fn clamp_above(self, x: Self::V, c: Self::V) -> Self::V {
        self.select(self.gt(x, c), c, x)
    }
    /// `x < c ? c : x` per lane (NaN stays NaN).
    #[inline(always)]
    fn clamp_below(self, x: Self::V, c: Self::V) -> Self::V {
        self.select(self.lt(x, c), c, x)
    }
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

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::{Avx2, Avx512};

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::Neon;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm32;
#[cfg(target_arch = "wasm32")]
pub use wasm32::Simd128;

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
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128(Simd128),
}

/// The f32 kernels of one instruction set. Every public method checks its shapes once, before
/// the path is chosen, and returns the same `Ok`/`Err` on every path; the crate's own callers
/// that have checked already call the unchecked `*_raw` dispatch.
///
/// On a vector path, each exact kernel ([`ExactKernel`]) runs the vector or the scalar code,
/// whichever this CPU runs faster (chosen when the `Kernels` is made: see [`Impl`] and
/// `choose.rs`); the bits are the same either way.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    path: Path,
    exact: ExactChoice,
}

impl Kernels {
    /// The kernels of `isa`, with the exact kernels' implementations chosen for this CPU (with
    /// `std`: `MAKEMORE_EXACT`, else a calibration, once per process and path; without: vector).
    /// Errors with [`Error::IsaUnavailable`] if this CPU (or, without `std`, this build) cannot
    /// run it.
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
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => match Simd128::new() {
                Some(t) => Path::Simd128(t),
                None => return unavailable,
            },
            #[allow(unreachable_patterns)]
            _ => return unavailable,
        };
        Ok(Kernels {
            path,
            exact: choose::choose(path),
        })
    }

    /// The fastest path this CPU runs (as [`Kernels::new`]).
    pub fn best() -> Kernels {
        Kernels::new(Isa::best()).unwrap_or(Kernels::scalar())
    }

    /// The portable reference path.
    pub const fn scalar() -> Kernels {
        Kernels {
            path: Path::Scalar,
            exact: ExactChoice::all(Impl::Scalar),
        }
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
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Path::Simd128(_) => Isa::Simd128,
        }
    }
}

/// For each kernel, the unchecked `Kernels::name_raw`: the scalar function or the path's entry
/// point (for an exact kernel the scalar function also when its choice is [`Impl::Scalar`]).
/// The crate's callers use it after checking the shapes once for many calls.
macro_rules! dispatch {
    ($(
        fn $name:ident / $raw:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        // every exact kernel is one of the list (a misspelt name would never be dispatched)
        const _: () = {
            let mut found = 0;
            $(
                if ExactKernel::of(stringify!($name)).is_some() {
                    found += 1;
                }
            )*
            assert!(found == ExactKernel::ALL.len(), "an exact kernel missing from kernel_list!");
        };
        impl Kernels {
            $(
                #[inline]
                pub(crate) fn $raw(&self, $($arg: $ty),*) $(-> $ret)? {
                    if let Some(k) = const { ExactKernel::of(stringify!($name)) } {
                        if self.exact.get(k) == Impl::Scalar {
                            return scalar::$name($($arg),*);
                        }
                    }
                    match self.path {
                        Path::Scalar => scalar::$name($($arg),*),
                        #[cfg(target_arch = "x86_64")]
                        Path::Avx512(t) => x86_64::avx512::$name(t, $($arg),*),
                        #[cfg(target_arch = "x86_64")]
                        Path::Avx2(t) => x86_64::avx2::$name(t, $($arg),*),
                        #[cfg(target_arch = "aarch64")]
                        Path::Neon(t) => aarch64::neon::$name(t, $($arg),*),
                        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                        Path::Simd128(t) => wasm32::simd128::$name(t, $($arg),*),
                    }
                }
            )*
        }
    };
}

kernel_list!(dispatch);
