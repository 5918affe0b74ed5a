//! The exact kernels, and which implementation of each a [`Kernels`] runs.
//!
//! Six kernels give the same bits on every path: they copy (`embed_gather`, `transpose`), add in
//! the scalar code's order (`embed_scatter_add`, `bias_backward`), do the scalar code's two
//! operations per element (`sgd`), or answer yes or no (`all_finite`). For them the vector code
//! is only worth running where it is faster, which depends on the CPU (on Zen 3 the AVX2
//! gathers and masked stores lose to scalar loads and stores), so a [`Kernels`] of a vector
//! path holds one [`Impl`] per exact kernel. Since the kernels are exact, the choice never
//! changes a result.
//!
//! How the choice is made:
//! - With `std`: `MAKEMORE_EXACT=scalar|vector` forces it for every exact kernel; unset, empty
//!   or `auto`, a one-off calibration per process and path times both implementations of each
//!   kernel at the training step's shapes (batch 32, T=3, E=10, H=200, V=27; inputs on the
//!   stack), interleaved, the minimum of several samples of a few calls, and keeps scalar only
//!   when it is clearly faster (by [`SCALAR_MARGIN`]). Under Miri: vector, untimed.
//! - Without `std` (firmware), and on wasm32 (`std::time::Instant` panics on
//!   wasm32-unknown-unknown): vector, untimed; on wasm32 with `std`, `MAKEMORE_EXACT` still
//!   forces a choice (WASI has an environment; wasm32-unknown-unknown's is empty).
//! - [`Kernels::with_exact`] and [`Kernels::with_all_exact`] force a choice in code.

use super::{Kernels, Path};

/// An implementation of an exact kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Impl {
    /// The path's vector code.
    Vector,
    /// The portable scalar code (the same bits).
    Scalar,
}

impl Impl {
    /// `vector` or `scalar`, as `MAKEMORE_EXACT`, the CLI and `metrics.json` spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Impl::Vector => "vector",
            Impl::Scalar => "scalar",
        }
    }
}

impl core::fmt::Display for Impl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A kernel whose result is the same bits on every path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExactKernel {
    EmbedGather,
    EmbedScatterAdd,
    Transpose,
    Sgd,
    BiasBackward,
    AllFinite,
}

impl ExactKernel {
    /// Every exact kernel, in the order of [`Kernels::exact_choices`].
    pub const ALL: [ExactKernel; 6] = [
        ExactKernel::EmbedGather,
        ExactKernel::EmbedScatterAdd,
        ExactKernel::Transpose,
        ExactKernel::Sgd,
        ExactKernel::BiasBackward,
        ExactKernel::AllFinite,
    ];

    /// The kernel's method name on [`Kernels`].
    pub const fn name(self) -> &'static str {
        match self {
            ExactKernel::EmbedGather => "embed_gather",
            ExactKernel::EmbedScatterAdd => "embed_scatter_add",
            ExactKernel::Transpose => "transpose",
            ExactKernel::Sgd => "sgd",
            ExactKernel::BiasBackward => "bias_backward",
            ExactKernel::AllFinite => "all_finite",
        }
    }

    /// The exact kernel named `name`, if it is one. Const: the dispatch asks at compile time,
    /// so the other kernels pay nothing.
    pub(crate) const fn of(name: &str) -> Option<ExactKernel> {
        let mut i = 0;
        while i < ExactKernel::ALL.len() {
            if str_eq(ExactKernel::ALL[i].name(), name) {
                return Some(ExactKernel::ALL[i]);
            }
            i += 1;
        }
        None
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// One [`Impl`] per [`ExactKernel`]: bit `k` set = scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExactChoice(u8);

impl ExactChoice {
    pub(crate) const fn all(imp: Impl) -> ExactChoice {
        match imp {
            Impl::Vector => ExactChoice(0),
            Impl::Scalar => ExactChoice((1 << ExactKernel::ALL.len()) - 1),
        }
    }

    #[inline(always)]
    pub(crate) const fn get(self, k: ExactKernel) -> Impl {
        if self.0 & (1 << k as u8) != 0 {
            Impl::Scalar
        } else {
            Impl::Vector
        }
    }

    pub(crate) const fn with(self, k: ExactKernel, imp: Impl) -> ExactChoice {
        match imp {
            Impl::Vector => ExactChoice(self.0 & !(1 << k as u8)),
            Impl::Scalar => ExactChoice(self.0 | (1 << k as u8)),
        }
    }
}

impl Kernels {
    /// Which implementation each exact kernel runs, in [`ExactKernel::ALL`]'s order, by name.
    /// All `Scalar` on the scalar path.
    pub fn exact_choices(&self) -> [(&'static str, Impl); 6] {
        ExactKernel::ALL.map(|k| (k.name(), self.exact(k)))
    }

    /// Which implementation exact kernel `k` runs (`Scalar` on the scalar path).
    pub fn exact(&self, k: ExactKernel) -> Impl {
        match self.path {
            Path::Scalar => Impl::Scalar,
            #[allow(unreachable_patterns)]
            _ => self.exact.get(k),
        }
    }

    /// These kernels with exact kernel `k` forced to `imp` (on the scalar path, a no-op).
    pub fn with_exact(self, k: ExactKernel, imp: Impl) -> Kernels {
        Kernels {
            exact: self.exact.with(k, imp),
            ..self
        }
    }

    /// These kernels with every exact kernel forced to `imp`.
    pub fn with_all_exact(self, imp: Impl) -> Kernels {
        Kernels {
            exact: ExactChoice::all(imp),
            ..self
        }
    }
}

/// The choice for a new [`Kernels`] of `path`: see the module documentation.
pub(crate) fn choose(path: Path) -> ExactChoice {
    #[cfg(all(feature = "std", not(miri)))]
    if let Ok(Some(imp)) = Impl::from_env() {
        return ExactChoice::all(imp);
    }
    #[cfg(all(feature = "std", not(miri), not(target_arch = "wasm32")))]
    {
        calibrated(path)
    }
    #[cfg(not(all(feature = "std", not(miri), not(target_arch = "wasm32"))))]
    {
        let _ = path;
        ExactChoice::all(Impl::Vector)
    }
}

/// Scalar is kept only when its time is below this fraction of the vector code's: a near tie
/// stays vector, so that noise does not flip the choice from run to run.
pub const SCALAR_MARGIN: f64 = 0.9;

/// The calibration's result for `path`, measured on the first call per process and path.
#[cfg(all(feature = "std", not(miri), not(target_arch = "wasm32")))]
fn calibrated(path: Path) -> ExactChoice {
    use super::Isa;
    use std::sync::OnceLock;
    static DONE: [OnceLock<ExactChoice>; Isa::ALL.len()] =
        [const { OnceLock::new() }; Isa::ALL.len()];
    let isa = Kernels {
        path,
        exact: ExactChoice::all(Impl::Vector),
    }
    .isa();
    if isa == Isa::Scalar {
        return ExactChoice::all(Impl::Scalar);
    }
    let slot = Isa::ALL.iter().position(|&i| i == isa).unwrap_or(0);
    *DONE[slot].get_or_init(|| calibrate(path))
}

/// Times both implementations of every exact kernel on `path` (see the module documentation).
#[cfg(all(feature = "std", not(miri), not(target_arch = "wasm32")))]
fn calibrate(path: Path) -> ExactChoice {
    use std::time::{Duration, Instant};
    // the training step's shapes
    const N: usize = 32;
    const T: usize = 3;
    const E: usize = 10;
    const H: usize = 200;
    const V: usize = 27;
    const SAMPLES: usize = 5;
    let base = Kernels {
        path,
        exact: ExactChoice::all(Impl::Vector),
    };
    // inputs: a fixed xorshift stream in [-1, 1), token ids < V
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut a = [0f32; N * H];
    for x in a.iter_mut() {
        *x = (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    }
    let mut xb = [0u8; N * T];
    for x in xb.iter_mut() {
        *x = (next() % V as u64) as u8;
    }
    let mut out = [0f32; N * H];
    // the sizes as the step passes them, unknown to the compiler (a constant E would let it
    // specialise the inlined scalar code, and only that, to the calibration's shapes)
    use std::hint::black_box;
    let (e, h, v, te) = (black_box(E), black_box(H), black_box(V), black_box(T * E));
    let xb = black_box(&xb[..]);
    let mut choice = ExactChoice::all(Impl::Vector);
    for k in ExactKernel::ALL {
        // calls per sample, so that a sample lasts about a microsecond or more
        let calls = match k {
            ExactKernel::Transpose => 1,
            ExactKernel::BiasBackward | ExactKernel::Sgd => 2,
            _ => 4,
        };
        let mut run = |imp: Impl| {
            let kk = base.with_exact(k, imp);
            let start = Instant::now();
            for _ in 0..calls {
                match k {
                    ExactKernel::EmbedGather => {
                        kk.embed_gather_raw(&mut out[..xb.len() * e], xb, &a[..v * e], e)
                    }
                    ExactKernel::EmbedScatterAdd => {
                        kk.embed_scatter_add_raw(&mut out[..v * e], &a[..xb.len() * e], xb)
                    }
                    ExactKernel::Transpose => kk.transpose_raw(&mut out[..h * v], &a[..h * v], v),
                    // the update's largest tensors are W1 (T*E, H) and W2 (H, V)
                    ExactKernel::Sgd => kk.sgd_raw(&mut out[..h * v], &a[..h * v], 1e-3),
                    ExactKernel::BiasBackward => {
                        kk.bias_backward_raw(&mut out[..h], &a[..a.len() / h * h])
                    }
                    ExactKernel::AllFinite => {
                        let finite = kk.all_finite_raw(&a[..te * h]);
                        out[0] = if finite { 1.0 } else { 0.0 };
                    }
                }
                black_box(&mut out);
            }
            start.elapsed()
        };
        // one untimed call each (caches, page faults), then the samples interleaved
        run(Impl::Vector);
        run(Impl::Scalar);
        let (mut vector, mut scalar) = (Duration::MAX, Duration::MAX);
        for _ in 0..SAMPLES {
            vector = vector.min(run(Impl::Vector));
            scalar = scalar.min(run(Impl::Scalar));
        }
        if scalar.as_secs_f64() < SCALAR_MARGIN * vector.as_secs_f64() {
            choice = choice.with(k, Impl::Scalar);
        }
    }
    choice
}

/// The implementation the environment forces: the one reading of `MAKEMORE_EXACT`.
#[cfg(feature = "std")]
impl Impl {
    /// The variable that forces the exact kernels' implementation.
    pub const ENV_VAR: &'static str = "MAKEMORE_EXACT";

    /// `Ok(None)` when `MAKEMORE_EXACT` is unset, empty or `auto` (calibrated); `Ok(Some(_))`
    /// for `scalar` or `vector`; any other value, non-UTF-8 included, is an [`ExactEnvError`]
    /// (which [`Kernels::new`] ignores: it calibrates; the CLI refuses the value first).
    pub fn from_env() -> Result<Option<Impl>, ExactEnvError> {
        match std::env::var_os(Impl::ENV_VAR) {
            None => Ok(None),
            Some(value) => match value.to_str() {
                Some("" | "auto") => Ok(None),
                Some("vector") => Ok(Some(Impl::Vector)),
                Some("scalar") => Ok(Some(Impl::Scalar)),
                _ => Err(ExactEnvError { value }),
            },
        }
    }
}

/// `MAKEMORE_EXACT` is not `auto`, `scalar` or `vector`.
#[cfg(feature = "std")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactEnvError {
    /// The variable's value.
    pub value: std::ffi::OsString,
}

#[cfg(feature = "std")]
impl core::fmt::Display for ExactEnvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}=\"{}\": unknown choice for the exact kernels; use auto, scalar or vector, or \
             unset it",
            Impl::ENV_VAR,
            self.value.to_string_lossy()
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ExactEnvError {}
