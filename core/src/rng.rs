//! The random source the caller passes in (the core has no generator of its own) and the two
//! distributions the model needs: uniform in [0, 1) and the standard normal.

/// A source of uniformly distributed 64-bit words. The CLI implements it for `rand_pcg::Pcg64`;
/// firmware can use any generator.
pub trait Rng {
    fn next_u64(&mut self) -> u64;
}

impl<R: Rng + ?Sized> Rng for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
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
