//! The exact kernels (`embed_gather`, `embed_scatter_add`, `transpose`, `sgd`, `bias_backward`,
//! `all_finite`): on every vector path this CPU runs, both implementations a [`Kernels`] may
//! choose between give the scalar path's bits, on random inputs and shapes whose widths are and
//! are not multiples of the lane counts; and a forced choice is the one reported.
//!
//! `MAKEMORE_ISA` forces one path, as in `simd.rs` (failing if the CPU lacks it). Outputs are
//! pre-filled with NaN, so a lane never written shows.

mod common;

use makemore_core::rng::{Rng, SplitMix64};
use makemore_core::simd::{ExactKernel, Impl, Isa, Kernels};

/// The vector paths under test, each with its exact kernels forced to `imp`.
fn paths(imp: Impl) -> Vec<Kernels> {
    let isas: Vec<Isa> = match Isa::from_env().unwrap_or_else(|e| panic!("{e}")) {
        None => Isa::ALL
            .into_iter()
            .filter(|isa| *isa != Isa::Scalar && isa.is_available())
            .collect(),
        Some(isa) => vec![isa],
    };
    isas.into_iter()
        .map(|isa| {
            Kernels::new(isa)
                .unwrap_or_else(|e| panic!("MAKEMORE_ISA={isa} is forced but unavailable: {e}"))
                .with_all_exact(imp)
        })
        .collect()
}

/// Every vector path, with each implementation of the exact kernels.
fn both() -> Vec<(Kernels, Impl)> {
    let mut out = Vec::new();
    for imp in [Impl::Vector, Impl::Scalar] {
        out.extend(paths(imp).into_iter().map(|k| (k, imp)));
    }
    out
}

const SCALAR: Kernels = Kernels::scalar();

struct Data(SplitMix64);

impl Data {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    /// Values in `[-4, 4)`, with zeros of both signs and subnormals among them, and, with
    /// `special`, infinities and NaN (for the kernels that only copy).
    fn vec(&mut self, len: usize, special: bool) -> Vec<f32> {
        (0..len)
            .map(|_| match self.below(40) {
                0 => -0.0,
                1 => 0.0,
                2 => f32::from_bits(0x8000_0001 ^ (self.0.next_u64() as u32 & 0x7f_ffff)),
                3 if special => f32::INFINITY,
                4 if special => f32::from_bits(0x7fc0_1234),
                _ => ((self.0.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 4.0,
            })
            .collect()
    }
    fn tokens(&mut self, len: usize, vocab: usize) -> Vec<u8> {
        (0..len).map(|_| self.below(vocab) as u8).collect()
    }
}

/// Panics unless `got` is `want` bit for bit.
fn same_bits(what: &str, k: &Kernels, imp: Impl, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what} on {} ({imp} implementation): element {i} is {g:e} ({:#x}), scalar gives \
             {w:e} ({:#x})",
            k.isa(),
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// The number of random cases per kernel (fewer under Miri).
fn cases() -> usize {
    if common::quick() {
        12
    } else {
        400
    }
}

#[test]
fn embed_gather_and_scatter_add_give_the_scalar_bits_with_either_implementation() {
    let mut d = Data(SplitMix64(1));
    let paths = both();
    for case in 0..cases() {
        // E across 1..=40 (shorter than, equal to and longer than 4, 8 and 16 lanes), the
        // Exercise-4 shape in case 0
        let (e, vocab, tokens) = if case == 0 {
            (10, 27, 96)
        } else {
            (1 + d.below(40), 1 + d.below(30), d.below(60))
        };
        let c = d.vec(vocab * e, true);
        let xb = d.tokens(tokens, vocab);
        let dembcat = d.vec(tokens * e, false);
        let mut want_emb = vec![f32::NAN; tokens * e];
        SCALAR.embed_gather(&mut want_emb, &xb, &c, e).unwrap();
        let mut want_dc = vec![f32::NAN; vocab * e];
        if tokens > 0 {
            SCALAR
                .embed_scatter_add(&mut want_dc, &dembcat, &xb)
                .unwrap();
        }
        for (k, imp) in &paths {
            let mut emb = vec![f32::NAN; tokens * e];
            k.embed_gather(&mut emb, &xb, &c, e).unwrap();
            let what = format!("embed_gather E={e} V={vocab} tokens={tokens}");
            same_bits(&what, k, *imp, &emb, &want_emb);
            if tokens > 0 {
                let mut dc = vec![f32::NAN; vocab * e];
                k.embed_scatter_add(&mut dc, &dembcat, &xb).unwrap();
                let what = format!("embed_scatter_add E={e} V={vocab} tokens={tokens}");
                same_bits(&what, k, *imp, &dc, &want_dc);
            }
        }
    }
}

#[test]
fn transpose_gives_the_scalar_bits_with_either_implementation() {
    let mut d = Data(SplitMix64(2));
    let paths = both();
    for case in 0..cases() {
        let (n, m) = if case == 0 {
            (200, 27)
        } else {
            (1 + d.below(70), 1 + d.below(40))
        };
        let a = d.vec(n * m, true);
        let mut want = vec![f32::NAN; n * m];
        SCALAR.transpose(&mut want, &a, m).unwrap();
        for (k, imp) in &paths {
            let mut out = vec![f32::NAN; n * m];
            k.transpose(&mut out, &a, m).unwrap();
            same_bits(&format!("transpose ({n}, {m})"), k, *imp, &out, &want);
        }
    }
}

#[test]
fn sgd_gives_the_scalar_bits_with_either_implementation() {
    let mut d = Data(SplitMix64(3));
    let paths = both();
    for case in 0..cases() {
        let len = if case == 0 { 6000 } else { d.below(100) };
        let p = d.vec(len, false);
        let g = d.vec(len, false);
        let lr = [0.1, 0.01, 1.0 / 3.0][case % 3];
        let mut want = p.clone();
        SCALAR.sgd(&mut want, &g, lr).unwrap();
        for (k, imp) in &paths {
            let mut out = p.clone();
            k.sgd(&mut out, &g, lr).unwrap();
            same_bits(&format!("sgd len={len} lr={lr}"), k, *imp, &out, &want);
        }
    }
}

#[test]
fn bias_backward_gives_the_scalar_bits_with_either_implementation() {
    let mut d = Data(SplitMix64(4));
    let paths = both();
    for case in 0..cases() {
        // m across 1..=140: 0 to 4 groups of four vectors, single vectors and a tail
        let (rows, m) = match case {
            0 => (32, 200),
            1 => (32, 27),
            _ => (1 + d.below(40), 1 + d.below(140)),
        };
        let dout = d.vec(rows * m, false);
        let mut want = vec![f32::NAN; m];
        SCALAR.bias_backward(&mut want, &dout).unwrap();
        for (k, imp) in &paths {
            let mut out = vec![f32::NAN; m];
            k.bias_backward(&mut out, &dout).unwrap();
            same_bits(
                &format!("bias_backward ({rows}, {m})"),
                k,
                *imp,
                &out,
                &want,
            );
        }
    }
}

#[test]
fn all_finite_gives_the_scalar_answer_with_either_implementation() {
    let mut d = Data(SplitMix64(5));
    let paths = both();
    for case in 0..cases() {
        let len = if case == 0 { 6000 } else { d.below(150) };
        let mut x = d.vec(len, false);
        // one infinity or NaN, anywhere (the last lanes included), in two cases of three
        if len > 0 && case % 3 != 0 {
            x[d.below(len)] = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN][case % 3];
        }
        let want = SCALAR.all_finite(&x);
        assert_eq!(want, case % 3 == 0 || len == 0);
        for (k, imp) in &paths {
            assert_eq!(
                k.all_finite(&x),
                want,
                "all_finite len={len} on {} ({imp} implementation)",
                k.isa()
            );
        }
    }
}

#[test]
fn a_forced_choice_is_the_one_reported() {
    let names: Vec<&str> = ExactKernel::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "embed_gather",
            "embed_scatter_add",
            "transpose",
            "sgd",
            "bias_backward",
            "all_finite"
        ]
    );
    // the scalar path runs scalar code, whatever is asked
    for imp in [Impl::Vector, Impl::Scalar] {
        let k = Kernels::scalar().with_all_exact(imp);
        assert!(k.exact_choices().iter().all(|&(_, i)| i == Impl::Scalar));
    }
    for imp in [Impl::Vector, Impl::Scalar] {
        let other = match imp {
            Impl::Vector => Impl::Scalar,
            Impl::Scalar => Impl::Vector,
        };
        for base in paths(other) {
            assert!(base.exact_choices().iter().all(|&(_, i)| i == other));
            for (j, kernel) in ExactKernel::ALL.into_iter().enumerate() {
                let k = base.with_exact(kernel, imp);
                assert_eq!(k.isa(), base.isa());
                for (i, (name, got)) in k.exact_choices().into_iter().enumerate() {
                    assert_eq!(name, names[i]);
                    let want = if i == j { imp } else { other };
                    assert_eq!(got, want, "{name} after forcing {} to {imp}", kernel.name());
                }
                assert_eq!(k.exact(kernel), imp);
            }
        }
    }
}
