//! Reproducibility in one place: the generator, the run's random streams, the draws made from
//! them and the default seeds. The CLI, the benchmarks and the firmware all draw through these,
//! so a (seed, step) or (seed, index) gives the same batch or name everywhere.
//!
//! - [`Rng`], the random source the model's initialisation takes, with two generators:
//!   [`Pcg64`] (the CLI's and the sampler's) and [`SplitMix64`] (tests, firmware training);
//! - the streams: [`init_stream`] (the initialisation), [`batch_stream`] (minibatch `step`),
//!   [`name_stream`] (sampled name `index`); each stream depends only on its arguments, so a
//!   resumed run and any thread count draw the same numbers;
//! - the draws: [`below`] (an index), [`uniform`] (in [0, 1)), [`standard_normal`];
//! - the default seeds [`TRAIN_SEED`] and [`SAMPLE_SEED`];
//! - [`Generator`], which generator a run draws from: these PCG streams, or PyTorch's mt19937
//!   replaying the notebook's cells (the CLI's `torchrandom`, which needs `std`'s libm).

use core::num::NonZeroU64;

/// Default seed of training: the initialisation and the minibatch stream (`makemore train
/// --seed`, `makemore gradcheck --seed`; the firmware's training too).
pub const TRAIN_SEED: u64 = 2147483647;
/// Default seed of sampling: names `0..count` come from `name_stream(SAMPLE_SEED, i)`
/// (`makemore sample --seed`, the names `makemore train` prints, the firmware's names).
pub const SAMPLE_SEED: u64 = 2147483657;

/// The generator a run draws its initialisation, batches and names from (the checkpoint's `rng`
/// entry; absent is [`Generator::Pcg`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Generator {
    /// This module's PCG streams: batch `s` from [`batch_stream`]`(seed, s)`, name `i` from
    /// [`name_stream`]`(seed, i)`.
    #[default]
    Pcg,
    /// PyTorch's CPU generator as x86 wheels run it (the AVX2 `randn` kernel): one mt19937
    /// stream for the initialisation then every batch, in the notebook's order.
    Torch,
    /// PyTorch's CPU generator as ARM and generic builds run it (the scalar `randn` kernel).
    TorchGeneric,
}

impl Generator {
    /// Every generator, in the order of [`Generator::name`]'s list.
    pub const ALL: [Generator; 3] = [Generator::Pcg, Generator::Torch, Generator::TorchGeneric];

    /// `pcg`, `torch` or `torch-generic` (the CLI's `--rng` and the checkpoint's `rng`).
    pub const fn name(self) -> &'static str {
        match self {
            Generator::Pcg => "pcg",
            Generator::Torch => "torch",
            Generator::TorchGeneric => "torch-generic",
        }
    }

    /// The generator called `name` ([`Generator::name`]).
    pub fn from_name(name: &str) -> Option<Generator> {
        Generator::ALL.into_iter().find(|g| g.name() == name)
    }
}

impl core::fmt::Display for Generator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A source of uniformly distributed 64-bit words.
pub trait Rng {
    fn next_u64(&mut self) -> u64;
}

impl<R: Rng + ?Sized> Rng for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// PCG XSL RR 128/64 (LCG), the standard `pcg64`: a 128-bit LCG with the increment chosen by
/// the stream, and 64-bit output by "xorshift low, random rotation". Bit for bit the
/// `rand_pcg::Pcg64` (`Lcg128Xsl64`) of rand_pcg 0.10, which the CLI used before the core had
/// its own (a test checks the two against each other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcg64 {
    state: u128,
    /// Odd: `(stream << 1) | 1`.
    increment: u128,
}

impl Pcg64 {
    /// PCG's default multiplier for a 128-bit state.
    const MULTIPLIER: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

    /// The generator of PCG's `(state, stream)` seeding, as `rand_pcg::Pcg64::new`: the top bit
    /// of `stream` is discarded (the increment must be odd).
    pub const fn new(state: u128, stream: u128) -> Pcg64 {
        let increment = (stream << 1) | 1;
        // move away from the initial value: add the increment, then one LCG step
        let state = state.wrapping_add(increment);
        Pcg64 {
            state: state.wrapping_mul(Self::MULTIPLIER).wrapping_add(increment),
            increment,
        }
    }
}

impl Rng for Pcg64 {
    /// One LCG step, then the XSL RR output of the new state.
    fn next_u64(&mut self) -> u64 {
        self.state = self
            .state
            .wrapping_mul(Self::MULTIPLIER)
            .wrapping_add(self.increment);
        let rot = (self.state >> 122) as u32;
        let xsl = ((self.state >> 64) as u64) ^ (self.state as u64);
        xsl.rotate_right(rot)
    }
}

/// The stream of the notebook's initialisation (`ParamsMut::init_notebook`) for `seed`.
pub const fn init_stream(seed: u64) -> Pcg64 {
    Pcg64::new(seed as u128, 0xda3e_39cb_94b9_5bdb)
}

/// The stream minibatch `step` is drawn from: (seed, step) is the whole random state of a run,
/// so a resumed run draws exactly the batches the uninterrupted one would.
pub const fn batch_stream(seed: u64, step: u64) -> Pcg64 {
    Pcg64::new(((seed as u128) << 64) | step as u128, 0x5851_f42d_4c95_7f2d)
}

/// The stream of the `index`-th sampled name: names depend neither on each other nor on the
/// thread that draws them.
pub const fn name_stream(seed: u64, index: u64) -> Pcg64 {
    Pcg64::new(
        ((seed as u128) << 64) | index as u128,
        0x2545_f491_4f6c_dd1d,
    )
}

/// Uniform in `0..n` without modulo bias: Lemire's multiply-and-reject ("Fast random integer
/// generation in an interval", 2019), the high word of `x * n`, rejecting the `2^64 mod n` low
/// words that would favour some results. `n` is non-zero by type: there is no empty range.
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: NonZeroU64) -> u64 {
    let n = n.get();
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (rng.next_u64() as u128) * (n as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Uniform in [0, 1) with 53 random bits: `(x >> 11) * 2^-53`.
pub fn uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal by Marsaglia's polar method (needs only ln and sqrt, which the core has).
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    loop {
        let u = 2.0 * uniform(rng) - 1.0;
        let v = 2.0 * uniform(rng) - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * crate::math::sqrt_f64(-2.0 * crate::math::ln_f64(s) / s);
        }
    }
}

/// SplitMix64: a tiny, well-mixed generator for tests, examples and firmware.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl Rng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
