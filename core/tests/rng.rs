//! The core's random streams against what the CLI drew before it had them: `rand_pcg::Pcg64`
//! (rand_pcg 0.10) seeded as `cli/src/run.rs` and `cli/src/sample.rs` seeded it, and the CLI's
//! Lemire `below` and 53-bit uniform, copied here as the oracles. Any difference would change
//! every trained tensor and sampled name (which `cli/tests/regression.rs` pins end to end).

use std::num::NonZeroU64;

use makemore_core::rng::{
    batch_stream, below, init_stream, name_stream, uniform, Pcg64, Rng, SplitMix64, SAMPLE_SEED,
    TRAIN_SEED,
};
use rand_pcg::rand_core::Rng as _;

/// The CLI's `below` before this module: the same algorithm over rand_pcg's generator.
fn below_oracle(rng: &mut rand_pcg::Pcg64, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (rng.next_u64() as u128) * (n as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// The first `len` words of both generators must agree.
fn assert_same_words(what: &str, ours: &mut Pcg64, theirs: &mut rand_pcg::Pcg64, len: usize) {
    for i in 0..len {
        let (a, b) = (ours.next_u64(), theirs.next_u64());
        assert_eq!(
            a, b,
            "{what}: word {i} is {a:#018x}, rand_pcg gives {b:#018x}"
        );
    }
}

/// (state, stream) pairs: zeros, ones, the top bit of the stream (which `new` discards), the
/// streams' own constants and a SplitMix64 sweep over all 128 bits.
fn seeds() -> Vec<(u128, u128)> {
    let mut out = vec![
        (0, 0),
        (1, 1),
        (u128::MAX, u128::MAX),
        (0, 1 << 127),
        (1 << 127, (1 << 127) | 5),
        (TRAIN_SEED as u128, 0xda3e_39cb_94b9_5bdb),
        (
            0xcafe_f00d_d15e_a5e5,
            0x0a02_bdbf_7bb3_c0a7_ac28_fa16_a64a_bf96,
        ),
    ];
    let mut g = SplitMix64(7);
    let word128 = |g: &mut SplitMix64| ((g.next_u64() as u128) << 64) | g.next_u64() as u128;
    for _ in 0..500 {
        out.push((word128(&mut g), word128(&mut g)));
    }
    out
}

#[test]
fn pcg64_is_rand_pcgs_pcg64() {
    for (state, stream) in seeds() {
        assert_same_words(
            &format!("Pcg64::new({state:#x}, {stream:#x})"),
            &mut Pcg64::new(state, stream),
            &mut rand_pcg::Pcg64::new(state, stream),
            64,
        );
    }
}

#[test]
fn the_streams_are_the_clis() {
    let mut g = SplitMix64(11);
    let mut seeds = vec![0, 1, u64::MAX, TRAIN_SEED, SAMPLE_SEED];
    seeds.extend((0..100).map(|_| g.next_u64()));
    for &seed in &seeds {
        // cli/src/run.rs: init_rng
        assert_same_words(
            &format!("init_stream({seed})"),
            &mut init_stream(seed),
            &mut rand_pcg::Pcg64::new(seed as u128, 0xda3e_39cb_94b9_5bdb),
            16,
        );
        for index in [0, 1, 2, 199_999, u64::MAX, g.next_u64()] {
            let high = (seed as u128) << 64 | index as u128;
            // cli/src/run.rs: batch_rng
            assert_same_words(
                &format!("batch_stream({seed}, {index})"),
                &mut batch_stream(seed, index),
                &mut rand_pcg::Pcg64::new(high, 0x5851_f42d_4c95_7f2d),
                16,
            );
            // cli/src/sample.rs and firmware/demo: name_rng
            assert_same_words(
                &format!("name_stream({seed}, {index})"),
                &mut name_stream(seed, index),
                &mut rand_pcg::Pcg64::new(high, 0x2545_f491_4f6c_dd1d),
                16,
            );
        }
    }
}

#[test]
fn the_default_seeds_are_the_clis() {
    // the clap defaults of `train --seed` and `sample --seed` before they moved here
    assert_eq!(TRAIN_SEED, 2147483647);
    assert_eq!(SAMPLE_SEED, 2147483657);
}

#[test]
fn below_is_the_clis_on_a_sweep() {
    // 1 (always 0), small ranges, powers of two (no rejection), the training split's size, and
    // ranges just above 2^63 where about half of all words are rejected
    let mut ns = vec![1, 2, 3, 7, 27, 32, 1000, 182_625, 1 << 32, (1 << 32) + 1];
    ns.extend([
        (1 << 63) - 1,
        1 << 63,
        (1 << 63) + 1,
        u64::MAX - 1,
        u64::MAX,
    ]);
    let mut g = SplitMix64(13);
    ns.extend(
        (0..200)
            .map(|_| g.next_u64() >> (g.next_u64() % 64))
            .filter(|&n| n > 0),
    );
    for (s, &n) in ns.iter().enumerate() {
        let mut ours = batch_stream(TRAIN_SEED, s as u64);
        let mut theirs = rand_pcg::Pcg64::new(
            (TRAIN_SEED as u128) << 64 | s as u128,
            0x5851_f42d_4c95_7f2d,
        );
        let nz = NonZeroU64::new(n).unwrap();
        for i in 0..256 {
            let (a, b) = (below(&mut ours, nz), below_oracle(&mut theirs, n));
            assert_eq!(a, b, "below({n}), draw {i}: {a}, the CLI's gives {b}");
            assert!(a < n, "below({n}) gave {a}");
        }
        // rejections consumed the same words: the streams are still in step
        assert_same_words(&format!("after below({n})"), &mut ours, &mut theirs, 1);
    }
}

#[test]
fn below_rejects_the_biased_words() {
    // n = 2^63 + 1: threshold = 2^64 mod n = 2^63 - 1, so a word whose product's low half is
    // below it is drawn again. A source that gives such a word first, then a good one.
    struct Words(Vec<u64>);
    impl Rng for Words {
        fn next_u64(&mut self) -> u64 {
            self.0.remove(0)
        }
    }
    let n = (1u64 << 63) + 1;
    // x = 1: x * n = n, low half 2^63 + 1 >= threshold: accepted, high half 0
    assert_eq!(below(&mut Words(vec![1]), NonZeroU64::new(n).unwrap()), 0);
    // x = 2: x * n = 2^64 + 2, low half 2 < threshold: rejected, then x = 1 gives 0
    let mut src = Words(vec![2, 1]);
    assert_eq!(below(&mut src, NonZeroU64::new(n).unwrap()), 0);
    assert!(src.0.is_empty(), "the rejected word was not redrawn");
}

#[test]
fn uniform_is_the_53_bit_draw() {
    let mut ours = name_stream(SAMPLE_SEED, 3);
    let mut theirs = rand_pcg::Pcg64::new((SAMPLE_SEED as u128) << 64 | 3, 0x2545_f491_4f6c_dd1d);
    for i in 0..10_000 {
        let want = (theirs.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let got = uniform(&mut ours);
        assert_eq!(got.to_bits(), want.to_bits(), "draw {i}: {got} vs {want}");
        assert!((0.0..1.0).contains(&got));
    }
    // the extremes: 0 from a zero word, the largest double below 1 from an all-ones word
    struct Const(u64);
    impl Rng for Const {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }
    assert_eq!(uniform(&mut Const(0)), 0.0);
    assert_eq!(uniform(&mut Const(u64::MAX)), 1.0 - f64::EPSILON / 2.0);
}
