//! Bit-exact reimplementation of the parts of CPython's `random` module that
//! the makemore notebook uses: `random.seed(int)`, `random.getrandbits`,
//! `random._randbelow`, `random.shuffle` and `random.random`.
//!
//! The generator is MT19937 seeded with `init_by_array`, exactly as in
//! CPython's `Modules/_randommodule.c`; `shuffle` and `_randbelow` follow
//! `Lib/random.py` of CPython 3.11 (unchanged since 3.2 apart from
//! `getrandbits(0)` returning 0 without drawing, as in 3.9+).
#![allow(dead_code)]

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// CPython-compatible Mersenne Twister (`random.Random`).
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl PyRandom {
    /// Equivalent to `r = random.Random(); r.seed(seed)` for a non-negative int.
    pub fn new(seed: u64) -> Self {
        let mut rng = PyRandom {
            mt: [0; N],
            index: N,
        };
        rng.seed(seed);
        rng
    }

    /// Equivalent to CPython's `init_by_array(key)` (`key` empty means `[0]`).
    ///
    /// `random.seed(n)` uses the 32-bit words of `abs(n)`, least significant
    /// first, without high zero words (at least one word).
    pub fn from_key(key: &[u32]) -> Self {
        let mut rng = PyRandom {
            mt: [0; N],
            index: N,
        };
        rng.init_by_array(if key.is_empty() { &[0] } else { key });
        rng
    }

    /// Re-seeds like `random.seed(seed)` for a non-negative int.
    pub fn seed(&mut self, seed: u64) {
        let lo = seed as u32;
        let hi = (seed >> 32) as u32;
        if hi == 0 {
            self.init_by_array(&[lo]);
        } else {
            self.init_by_array(&[lo, hi]);
        }
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let mut i = 1usize;
        let mut j = 0usize;
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
        self.index = N;
    }

    fn generate(&mut self) {
        let twist = |a: u32, b: u32, c: u32| {
            let y = (a & UPPER_MASK) | (b & LOWER_MASK);
            c ^ (y >> 1) ^ if y & 1 != 0 { MATRIX_A } else { 0 }
        };
        for kk in 0..N - M {
            self.mt[kk] = twist(self.mt[kk], self.mt[kk + 1], self.mt[kk + M]);
        }
        for kk in N - M..N - 1 {
            self.mt[kk] = twist(self.mt[kk], self.mt[kk + 1], self.mt[kk + M - N]);
        }
        self.mt[N - 1] = twist(self.mt[N - 1], self.mt[0], self.mt[M - 1]);
        self.index = 0;
    }

    /// Next raw 32-bit output (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.generate();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `random.getrandbits(k)` for any `k`, as 32-bit words, least
    /// significant first (`ceil(k / 32)` words; empty for `k == 0`).
    pub fn getrandbits_words(&mut self, k: usize) -> Vec<u32> {
        let mut words = Vec::with_capacity(k.div_ceil(32));
        let mut left = k;
        while left > 0 {
            let mut r = self.next_u32();
            if left < 32 {
                r >>= 32 - left;
            }
            words.push(r);
            left = left.saturating_sub(32);
        }
        words
    }

    /// `random.getrandbits(k)` for `k <= 64`.
    ///
    /// # Panics
    /// If `k > 64`; use [`PyRandom::getrandbits_words`] for larger `k`.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(
            k <= 64,
            "getrandbits({k}): k must be <= 64 for a u64 result"
        );
        if k <= 32 {
            if k == 0 {
                return 0;
            }
            return u64::from(self.next_u32() >> (32 - k));
        }
        self.getrandbits_words(k as usize)
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, &w)| acc | (u64::from(w) << (32 * i)))
    }

    /// `random._randbelow(n)`: uniform in `0..n` by rejection sampling with
    /// `getrandbits(n.bit_length())`.
    ///
    /// # Panics
    /// If `n == 0` (CPython would loop forever).
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0): n must be positive");
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.shuffle(x)` (Fisher–Yates from the end, CPython 3.11).
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }

    /// `random.random()`: a 53-bit float in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) * (1.0 / 9_007_199_254_740_992.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrandbits32_seed42() {
        // python3 -c "import random; random.seed(42); print([random.getrandbits(32) for _ in range(5)])"
        let expected = [2746317213u64, 478163327, 107420369, 3184935163, 1181241943];
        let mut r = PyRandom::new(42);
        let got: Vec<u64> = (0..5).map(|_| r.getrandbits(32)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn getrandbits_wide_and_narrow() {
        // python3 -c "import random; random.seed(42); print([random.getrandbits(64) for _ in range(2)], random.getrandbits(33), random.getrandbits(1), random.getrandbits(0))"
        // -> [2053695854357871005, 13679192365072849617] 1181241943 0 0
        let mut r = PyRandom::new(42);
        assert_eq!(r.getrandbits(64), 2053695854357871005);
        assert_eq!(r.getrandbits(64), 13679192365072849617);
        assert_eq!(r.getrandbits(33), 1181241943);
        assert_eq!(r.getrandbits(1), 0);
        assert_eq!(r.getrandbits(0), 0);

        // python3 -c "import random; random.seed(42); print(hex(random.getrandbits(100)))"
        // -> 0xb06671ad11c80317fa3b1799d
        let mut r = PyRandom::new(42);
        let words = r.getrandbits_words(100);
        let value = words
            .iter()
            .enumerate()
            .fold(0u128, |acc, (i, &w)| acc | (u128::from(w) << (32 * i)));
        assert_eq!(words.len(), 4);
        assert_eq!(value, 0xb06671ad11c80317fa3b1799d);
        assert!(r.getrandbits_words(0).is_empty());
    }

    #[test]
    fn other_seeds() {
        // python3 -c "import random; random.seed(0); print([random.getrandbits(32) for _ in range(3)])"
        let mut r = PyRandom::new(0);
        assert_eq!(
            (0..3).map(|_| r.next_u32()).collect::<Vec<_>>(),
            [3626764237, 1654615998, 3255389356]
        );
        // python3 -c "import random; random.seed(2**40+5); print([random.getrandbits(32) for _ in range(3)])"
        let mut r = PyRandom::new((1 << 40) + 5);
        assert_eq!(
            (0..3).map(|_| r.next_u32()).collect::<Vec<_>>(),
            [2166296868, 2220160828, 1153647273]
        );
        // python3 -c "import random; random.seed(2**64-1); print([random.getrandbits(32) for _ in range(3)])"
        let mut r = PyRandom::new(u64::MAX);
        assert_eq!(
            (0..3).map(|_| r.next_u32()).collect::<Vec<_>>(),
            [93740670, 1068495656, 1452108352]
        );
        // random.seed(2**64-1) uses key [0xffffffff, 0xffffffff].
        let mut k = PyRandom::from_key(&[u32::MAX, u32::MAX]);
        assert_eq!(k.next_u32(), 93740670);
        // Re-seeding resets the state.
        r.seed(42);
        assert_eq!(r.next_u32(), 2746317213);
    }

    #[test]
    fn random_floats_seed42() {
        // python3 -c "import random; random.seed(42); print([repr(random.random()) for _ in range(3)])"
        let expected = [
            0.6394267984578837,
            0.025010755222666936,
            0.27502931836911926,
        ];
        let mut r = PyRandom::new(42);
        for e in expected {
            assert_eq!(r.random().to_bits(), f64::to_bits(e));
        }
    }

    #[test]
    fn randbelow_seed42() {
        // python3 -c "import random; random.seed(42); print([random._inst._randbelow(n) for n in (1,2,3,10,1000,2**31+1,10**18)])"
        let ns = [
            1u64,
            2,
            3,
            10,
            1000,
            (1 << 31) + 1,
            1_000_000_000_000_000_000,
        ];
        let expected = [0u64, 0, 2, 4, 250, 958682846, 849093500052488681];
        let mut r = PyRandom::new(42);
        let got: Vec<u64> = ns.iter().map(|&n| r.randbelow(n)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn shuffle_range20_seed42() {
        // python3 -c "import random; random.seed(42); x=list(range(20)); random.shuffle(x); print(x)"
        let expected = [
            19, 5, 14, 4, 9, 13, 15, 18, 6, 12, 17, 10, 1, 11, 2, 16, 7, 8, 0, 3,
        ];
        let mut x: Vec<u32> = (0..20).collect();
        PyRandom::new(42).shuffle(&mut x);
        assert_eq!(x, expected);
    }

    #[test]
    fn shuffle_trivial_lengths() {
        let mut r = PyRandom::new(42);
        let mut empty: [u8; 0] = [];
        r.shuffle(&mut empty);
        let mut one = [7];
        r.shuffle(&mut one);
        assert_eq!(one, [7]);
        // Neither call consumed randomness.
        assert_eq!(r.next_u32(), 2746317213);
    }

    #[test]
    fn shuffle_long_lists_seed42() {
        // python3 -c "import random; random.seed(42); x=list(range(2**16+3)); random.shuffle(x); print(x[:6], x[-6:])"
        let mut x: Vec<u32> = (0..(1 << 16) + 3).collect();
        PyRandom::new(42).shuffle(&mut x);
        assert_eq!(x[..6], [61095, 52230, 45451, 42043, 6910, 14067]);
        assert_eq!(x[x.len() - 6..], [9144, 14628, 32098, 36048, 3278, 14592]);

        // python3 -c "import random; random.seed(42); x=list(range(100000)); random.shuffle(x); print(x[:8], x[-8:], sum(i*v for i,v in enumerate(x)))"
        let mut x: Vec<u64> = (0..100_000).collect();
        PyRandom::new(42).shuffle(&mut x);
        assert_eq!(
            x[..8],
            [3813, 99183, 80737, 65674, 53670, 97104, 38743, 36888]
        );
        assert_eq!(
            x[x.len() - 8..],
            [18289, 29256, 32098, 36048, 97196, 3278, 14592, 83810]
        );
        let weighted: u64 = x.iter().enumerate().map(|(i, &v)| i as u64 * v).sum();
        assert_eq!(weighted, 250177806368157);
    }
}
