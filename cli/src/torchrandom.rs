//! PyTorch's CPU generator (`torch.Generator()`, torch >= 2.7), bit for bit: the mt19937 engine
//! of `ATen/core/MT19937RNGEngine.h`, the uniforms of `ATen/core/TransformationHelper.h`, and the
//! draws the seed notebook makes with them: `torch.randn` (both Box-Muller kernels of
//! `ATen/native/cpu/DistributionTemplates.h`), `torch.randint` and `torch.multinomial(p, 1)`.
//!
//! `randn` of 16 or more float32 elements runs one of two kernels that give different bits:
//! x86 wheels run the AVX2 one (also on AVX-512 machines), whose log and sincos are the Cephes
//! polynomials of `avx_mathfun.h`; ARM and generic builds run the scalar one (libm `logf`,
//! `cosf`, `sinf`, the angle in double). [`NormalKernel`] picks which one to replay. The AVX2
//! lanes are emulated in scalar f32 code: `f32::mul_add` is the correctly rounded FMA that GCC
//! emitted where it contracted a multiply and an add (read off the disassembly of
//! `NormalFill16<float, true>::operator()` in torch 2.15's `libtorch_cpu.so`; see `avx2_lane`).
//! Both kernels were also checked once against torch on every one of the 2^24 float32 uniforms
//! as u1 and as u2 (through generator states set to draw them); the committed goldens keep the
//! tails of that sweep.
//!
//! `scripts/torch_golden.py` wrote `cli/tests/golden/torch_generator.txt` with real torch; the
//! tests in `cli/tests/torch_generator.rs` compare every kind of draw with it, bit for bit.

use std::f64::consts::PI;
use std::num::NonZeroU64;

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UMASK: u32 = 0x8000_0000;
const LMASK: u32 = 0x7fff_ffff;

/// `randint` draws from `random64()` instead of `random()` from this range on (`1 << 28` in
/// `uniform_int_from_to_distribution` of non-fbcode builds, to bound the modulo skew).
const RANDINT_WIDE_RANGE: u64 = 1 << 28;

/// Which Box-Muller kernel `randn` of >= 16 float32 elements runs: x86 wheels' AVX2 kernel
/// (Cephes log/sincos with FMAs) or the generic scalar one (libm logf/cosf/sinf).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormalKernel {
    Avx2,
    Generic,
}

/// `torch.Generator()` on the CPU: the mt19937 state as torch keeps it (`left`, `next`), the
/// cached second normal of the double Box-Muller path, and the `randn` kernel to replay.
#[derive(Clone)]
pub struct TorchGenerator {
    state: [u32; N],
    /// Draws left before the next twist, plus one (torch's `left_`, in 1..=624).
    left: u32,
    /// Index of the next state word to temper (torch's `next_`).
    next: usize,
    /// `next_double_normal_sample` of `CPUGeneratorImpl`: the sine half of the last pair.
    next_double_normal: Option<f64>,
    kernel: NormalKernel,
}

impl std::fmt::Debug for TorchGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchGenerator")
            .field("left", &self.left)
            .field("next", &self.next)
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

impl TorchGenerator {
    /// `torch.Generator().manual_seed(seed)` (seed & 0xffffffff seeds the mt19937, as torch does).
    pub fn manual_seed(seed: u64, kernel: NormalKernel) -> TorchGenerator {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        TorchGenerator {
            state,
            left: 1,
            next: 0,
            next_double_normal: None,
            kernel,
        }
    }

    /// The kernel `randn_f32` replays for 16 or more elements.
    pub fn kernel(&self) -> NormalKernel {
        self.kernel
    }

    fn next_state(&mut self) {
        let twist = |u: u32, v: u32| {
            let mixed = (u & UMASK) | (v & LMASK);
            (mixed >> 1) ^ if v & 1 != 0 { MATRIX_A } else { 0 }
        };
        for j in 0..N - M {
            self.state[j] = self.state[j + M] ^ twist(self.state[j], self.state[j + 1]);
        }
        for j in N - M..N - 1 {
            self.state[j] = self.state[j + M - N] ^ twist(self.state[j], self.state[j + 1]);
        }
        self.state[N - 1] = self.state[M - 1] ^ twist(self.state[N - 1], self.state[0]);
        self.left = N as u32;
        self.next = 0;
    }

    /// One tempered mt19937 output (`CPUGeneratorImpl::random`).
    pub fn random(&mut self) -> u32 {
        self.left -= 1;
        if self.left == 0 {
            self.next_state();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// Two outputs as one: `(first << 32) | second` (`CPUGeneratorImpl::random64`).
    pub fn random64(&mut self) -> u64 {
        let hi = self.random() as u64;
        let lo = self.random() as u64;
        (hi << 32) | lo
    }

    /// A float32 uniform in [0, 1): `(random() & (2^24 - 1)) * 2^-24`, as `torch.rand`.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.random() & ((1 << 24) - 1)) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// A float64 uniform in [0, 1): `(random64() & (2^53 - 1)) * 2^-53`, as `torch.rand`.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.random64() & ((1 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// One `normal_distribution<double>(0, 1)` draw: the cached sine half if there is one, else
    /// a fresh pair from two f64 uniforms (u1 the angle, u2 the radius) whose sine half is cached.
    pub fn normal_f64(&mut self) -> f64 {
        // transformation::normal: val * std + mean with std = 1, mean = 0 (turns -0 into +0).
        let scale = |val: f64| val * 1.0 + 0.0;
        if let Some(cached) = self.next_double_normal.take() {
            return scale(cached);
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        scale(r * theta.cos())
    }

    /// `torch.randn(out.len(), generator=g)` of a contiguous float32 tensor (any length >= 1:
    /// < 16 takes the double path with the cached normal).
    ///
    /// From 16 elements on: all uniforms first, Box-Muller on each block of 16 in place, and
    /// for a length not a multiple of 16, 16 fresh uniforms into the last 16 slots, transformed
    /// again. An empty `out` draws nothing.
    pub fn randn_f32(&mut self, out: &mut [f32]) {
        if out.len() < 16 {
            for x in out.iter_mut() {
                *x = self.normal_f64() as f32;
            }
            return;
        }
        for x in out.iter_mut() {
            *x = self.uniform_f32();
        }
        let kernel = self.kernel;
        let (blocks, _) = out.as_chunks_mut::<16>();
        for block in blocks {
            normal_fill_16(block, kernel);
        }
        if !out.len().is_multiple_of(16) {
            let start = out.len() - 16;
            let last: &mut [f32; 16] = (&mut out[start..]).try_into().expect("16 elements");
            for x in last.iter_mut() {
                *x = self.uniform_f32();
            }
            normal_fill_16(last, kernel);
        }
    }

    /// `torch.randint(low, high, (n,), generator=g)`: one value per call (random() % range + low,
    /// random64() when range >= 2^28, as torch's non-fbcode builds).
    ///
    /// # Panics
    /// If `high <= low` (torch raises there too): an empty range is the caller's bug, and
    /// returning `low` would hide it. [`TorchGenerator::randint_range`] cannot panic.
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        assert!(low < high, "randint needs low < high (got [{low}, {high}))");
        let range = NonZeroU64::new(high.wrapping_sub(low) as u64).expect("low < high");
        self.randint_range(low, range)
    }

    /// `randint` over `[base, base + range)`; the form torch's kernel takes (never panics).
    pub fn randint_range(&mut self, base: i64, range: NonZeroU64) -> i64 {
        let range = range.get();
        let val = if range >= RANDINT_WIDE_RANGE {
            self.random64()
        } else {
            self.random() as u64
        };
        (val % range).wrapping_add(base as u64) as i64
    }

    /// `torch.multinomial(probs, 1, generator=g)` for one row of float32 probabilities (torch >= 2.7:
    /// argmax of p_i / q_i, q_i = (f32)(-log1p(-u_i)) from f64 uniforms, one per category in order;
    /// ties -> first index as torch's argmax).
    ///
    /// The row need not sum to 1 (torch does not normalise on this path). A NaN ratio wins as
    /// in torch's argmax. An empty row draws nothing and returns 0 (torch refuses it).
    pub fn multinomial1(&mut self, probs: &[f32]) -> usize {
        let mut best = 0usize;
        let mut best_ratio = f32::NEG_INFINITY;
        for (i, &p) in probs.iter().enumerate() {
            // exponential_distribution<double>(1): -1.0 / lambda * log1p(-u) (a negation), then
            // the cast to float32.
            let q = -(-self.uniform_f64()).ln_1p() as f32;
            let ratio = p / q;
            let better = if best_ratio.is_nan() {
                false
            } else {
                ratio.is_nan() || ratio > best_ratio
            };
            if i == 0 || better {
                best = i;
                best_ratio = ratio;
            }
        }
        best
    }

    /// Skips `n` outputs of `random()` (for a resume: the generator state after n 32-bit draws).
    pub fn discard(&mut self, mut n: u64) {
        while n > 0 {
            // Draws possible before the next twist.
            let before_twist = u64::from(self.left - 1);
            if n <= before_twist {
                self.left -= n as u32;
                self.next += n as usize;
                return;
            }
            n -= before_twist + 1;
            self.next_state();
            self.next = 1;
        }
    }
}

/// The seed notebook's initialisation cell in torch's float32 order of operations: fills the seven
/// tensors C (V*E), W1 (TE*H), b1 (H), W2 (H*V), b2 (V), bngain (H), bnbias (H), row-major.
///
/// In order, all from `g`: `C = randn`; `W1 = randn * (5/3) / fan_in**0.5` (a multiply by
/// f32(5/3), then a true f32 division by f32(sqrt(fan_in)), as torch evaluates it);
/// `b1 = randn` (unscaled, as in the seed notebook); `W2 = randn * 0.1`; `b2 = randn * 0.1`;
/// `bngain = randn * 0.1 + 1.0` (two roundings); `bnbias = randn * 0.1`.
pub fn notebook_init(g: &mut TorchGenerator, tensors: [&mut [f32]; 7], fan_in: usize) {
    let [c, w1, b1, w2, b2, bngain, bnbias] = tensors;
    let tenth = 0.1f64 as f32;
    g.randn_f32(c);
    g.randn_f32(w1);
    let gain = (5.0f64 / 3.0) as f32;
    let divisor = (fan_in as f64).sqrt() as f32;
    for x in w1.iter_mut() {
        *x = *x * gain / divisor;
    }
    g.randn_f32(b1);
    g.randn_f32(w2);
    for x in w2.iter_mut() {
        *x *= tenth;
    }
    g.randn_f32(b2);
    for x in b2.iter_mut() {
        *x *= tenth;
    }
    g.randn_f32(bngain);
    for x in bngain.iter_mut() {
        *x = *x * tenth + 1.0;
    }
    g.randn_f32(bnbias);
    for x in bnbias.iter_mut() {
        *x *= tenth;
    }
}

/// Box-Muller on 16 uniforms in [0, 1) in place, as torch's `NormalFill16` with mean 0, std 1
/// (one step of `randn_f32`): lane j pairs `u1 = 1 - d[j]` (the radius) with `u2 = d[j + 8]`
/// (the angle); `d[j]` gets `r cos`, `d[j + 8]` `r sin`.
pub fn normal_fill_16(data: &mut [f32; 16], kernel: NormalKernel) {
    for j in 0..8 {
        let (cos_out, sin_out) = match kernel {
            NormalKernel::Avx2 => avx2_lane(data[j], data[j + 8]),
            NormalKernel::Generic => generic_lane(data[j], data[j + 8]),
        };
        data[j] = cos_out;
        data[j + 8] = sin_out;
    }
}

/// The scalar `NormalFill16<float>`: `logf`, `sqrtf`, the angle `2 * pi(double) * u2` rounded
/// to f32, `cosf`/`sinf`, then `fmaf(r * c, std = 1, mean = 0)`.
fn generic_lane(d1: f32, d2: f32) -> (f32, f32) {
    let u1 = 1.0 - d1;
    let radius = (-2.0 * u1.ln()).sqrt();
    let theta = (2.0 * PI * d2 as f64) as f32;
    (
        (radius * theta.cos()).mul_add(1.0, 0.0),
        (radius * theta.sin()).mul_add(1.0, 0.0),
    )
}

/// One lane of the AVX2 `NormalFill16<float, true>`: `log256_ps` and `sincos256_ps` of
/// `avx_mathfun.h` as GCC compiled them for torch's x86 wheels. Each `mul_add` below is a
/// `vfmadd`/`vfnmadd`/`vfmsub` of the disassembly (the Horner steps of all three polynomials,
/// the three-part angle reduction, `y * z + e * q1`, `e * q2 + x` and `z * 0.5` subtracted
/// fused); every other operation is a single rounded f32 operation as in the source.
fn avx2_lane(d1: f32, d2: f32) -> (f32, f32) {
    let u1 = 1.0 - d1;
    let radius = (log256(u1) * -2.0).sqrt();
    let theta = d2 * TWO_PI;
    let (sin, cos) = sincos256(theta);
    (
        (radius * cos).mul_add(1.0, 0.0),
        (radius * sin).mul_add(1.0, 0.0),
    )
}

const fn f(bits: u32) -> f32 {
    f32::from_bits(bits)
}

// The constants as stored in libtorch_cpu.so (the f32 roundings of avx_mathfun.h's literals).
const TWO_PI: f32 = f(0x40c9_0fdb);
const MIN_NORM_POS: f32 = f(0x0080_0000);
const SQRTHF: f32 = f(0x3f35_04f3);
const LOG_P: [f32; 9] = [
    f(0x3d90_21bb),
    f(0xbdeb_d1b8),
    f(0x3def_251a),
    f(0xbdfe_5d4f),
    f(0x3e11_e9bf),
    f(0xbe2a_ae50),
    f(0x3e4c_ceac),
    f(0xbe7f_fffc),
    f(0x3eaa_aaaa),
];
const LOG_Q1: f32 = f(0xb95e_8083);
const LOG_Q2: f32 = f(0x3f31_8000);
const FOPI: f32 = f(0x3fa2_f983);
const MINUS_DP: [f32; 3] = [f(0xbf49_0000), f(0xb97d_a000), f(0xb322_2169)];
const COSCOF: [f32; 3] = [f(0x37cc_f5ce), f(0xbab6_061a), f(0x3d2a_aaa5)];
const SINCOF: [f32; 3] = [f(0xb94c_a1f9), f(0x3c08_839e), f(0xbe2a_aaa3)];

/// One lane of `log256_ps` (Cephes logf); NaN for x <= 0.
fn log256(x: f32) -> f32 {
    let invalid = x <= 0.0;
    // _mm256_max_ps(x, min): x when x > min, else min (also for NaN).
    let x = if x > MIN_NORM_POS { x } else { MIN_NORM_POS };
    let exponent = (x.to_bits() >> 23) as i32;
    let x = f32::from_bits((x.to_bits() & !0x7f80_0000) | 0.5f32.to_bits());
    let mut e = exponent.wrapping_sub(0x7f) as f32 + 1.0;
    let below = x < SQRTHF;
    let tmp = if below { x } else { 0.0 };
    let mut x = x + -1.0;
    e -= if below { 1.0 } else { 0.0 };
    x += tmp;
    let z = x * x;
    let mut y = LOG_P[0];
    for &p in &LOG_P[1..] {
        y = y.mul_add(x, p);
    }
    let y = x * y;
    let y = y.mul_add(z, e * LOG_Q1);
    let y = (-z).mul_add(0.5, y);
    let x = e.mul_add(LOG_Q2, x + y);
    if invalid {
        f32::from_bits(x.to_bits() | 0xffff_ffff)
    } else {
        x
    }
}

/// One lane of `sincos256_ps` (Cephes sinf/cosf): `(sin, cos)`.
fn sincos256(x: f32) -> (f32, f32) {
    let sign_bit_sin = x.to_bits() & 0x8000_0000;
    let xa = x.abs();
    let y = xa * FOPI;
    let j = ((y as i32).wrapping_add(1)) & !1;
    let yf = j as f32;
    let swap_sign_bit_sin = ((j & 4) as u32) << 29;
    let poly_mask = j & 2 == 0;
    let mut x = yf.mul_add(MINUS_DP[0], xa);
    x = yf.mul_add(MINUS_DP[1], x);
    x = yf.mul_add(MINUS_DP[2], x);
    let sign_bit_cos = ((!j.wrapping_sub(2) & 4) as u32) << 29;
    let sign_bit_sin = sign_bit_sin ^ swap_sign_bit_sin;

    let z = x * x;
    let tmp = z * 0.5;
    let mut yc = COSCOF[0].mul_add(z, COSCOF[1]);
    yc = yc.mul_add(z, COSCOF[2]);
    yc *= z;
    yc = z.mul_add(yc, -tmp);
    yc += 1.0;

    let mut ys = SINCOF[0].mul_add(z, SINCOF[1]);
    ys = ys.mul_add(z, SINCOF[2]);
    ys *= z;
    ys = x.mul_add(ys, x);

    // The blend of the two polynomials by masks, with the same adds and subtracts.
    let ysin2 = if poly_mask { ys } else { 0.0 };
    let ysin1 = if poly_mask { 0.0 } else { yc };
    let ys = ys - ysin2;
    let yc = yc - ysin1;
    let sin = ysin2 + ysin1;
    let cos = ys + yc;
    (
        f32::from_bits(sin.to_bits() ^ sign_bit_sin),
        f32::from_bits(cos.to_bits() ^ sign_bit_cos),
    )
}
