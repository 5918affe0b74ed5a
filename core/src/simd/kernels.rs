//! The vector kernels, written once for every instruction set through [`Simd`].
//!
//! Every function is `#[inline(always)]` and generic: it is compiled inside the
//! `#[target_feature]` entry points of `mod.rs`, so each path gets its own instructions. Rows are
//! row-major and vectors run along the contiguous last axis; a row whose width is not a multiple
//! of the lane count ends with one partial vector (masked load and store), so no kernel reads or
//! writes outside its slices. The elementwise kernels do exactly the scalar code's operations in
//! the same order (no FMA), so they give the same bits, except exp and tanh (and the kernels
//! that use them: the batchnorm scale-shift-tanh, its inference form and the cross-entropy
//! forward), which use FMA and are within 2 ulp; the products use FMA. On SIMD128, which has no
//! FMA, every `fma` is a multiply then an add (two roundings): the same code, unfused.

use core::ops::Range;

use super::Simd;
use crate::math::ln_f32;

/// `$body` for `$i` in `0..$n` (`$n <= 8`, a constant), written out rather than looped: a
/// strip's accumulators stay in registers only if every loop over them is unrolled, which the
/// optimiser does not do at every level (for size, it keeps the loops).
macro_rules! unroll {
    ($n:expr, |$i:ident| $body:expr) => {
        unroll!(@ $n, $i, $body, [0 1 2 3 4 5 6 7])
    };
    (@ $n:expr, $i:ident, $body:expr, [$($k:literal)*]) => {{
        const { assert!($n <= 8) };
        $(if $k < $n {
            let $i = $k;
            $body;
        })*
    }};
}

// ---------------------------------------------------------------- helpers

/// Loads `x.len() <= LANES` values (the rest 0).
#[inline(always)]
fn ld<S: Simd>(s: S, x: &[f32]) -> S::V {
    if x.len() == S::LANES {
        s.load(x)
    } else {
        s.load_tail(x, 0.0)
    }
}

/// Stores the first `out.len() <= LANES` lanes.
#[inline(always)]
fn st<S: Simd>(s: S, out: &mut [f32], v: S::V) {
    if out.len() == S::LANES {
        s.store(out, v)
    } else {
        s.store_tail(out, v)
    }
}

/// `(offset, width)` of the vectors covering a row of `m`: full ones, then one partial.
#[inline(always)]
fn columns<S: Simd>(m: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..m)
        .step_by(S::LANES)
        .map(move |c| (c, (m - c).min(S::LANES)))
}

// Closures that call vector operations are avoided on purpose: a closure does not inherit
// `#[inline(always)]`, and LLVM does not inline the intrinsics inside it, so every operation
// would become a call. Loops are written out instead.

// ---------------------------------------------------------------- exp, tanh

// The vector exp is the algorithm of `crate::math` (the same reduction, Cephes coefficients,
// clamps and special values) evaluated with FMA: every `a * b + c` of the scalar code is one
// fused operation (on SIMD128, which has no FMA, a multiply then an add, within the same
// bound: measured). The vector tanh is a shorter formula on the same reduction (no second
// polynomial, no select between two branches). Neither gives the scalar bits; their error is
// bounded instead, at most 2 ulp against the correctly rounded result for every f32 argument
// (`core/tests/math.rs` sweeps each vector path). NaN, the infinities, ±0 and the subnormals of
// tanh give exactly the scalar values.

/// The constants of [`exp_v`] and [`tanh_v`] as vectors, made once per kernel call and passed
/// down: V8 builds a vector constant anew at each use (three instructions), so on wasm32 they
/// are made opaque ([`Simd::opaque`]) and stay in registers or on the stack; elsewhere they are
/// the same constants as before.
#[derive(Clone, Copy)]
pub(crate) struct ExpConsts<V> {
    one: V,
    two: V,
    exp_max: V,
    exp_min: V,
    tanh_max: V,
    log2e: V,
    shift: V,
    neg_ln2_hi: V,
    neg_ln2_lo: V,
    /// The Cephes polynomial's coefficients, highest degree first; the last is 1/2.
    p: [V; 6],
}

impl<V: Copy> ExpConsts<V> {
    #[inline(always)]
    pub(crate) fn new<S: Simd<V = V>>(s: S) -> Self {
        let c = |x: f32| s.opaque(s.splat(x));
        Self {
            one: c(1.0),
            two: c(2.0),
            exp_max: c(89.0),
            exp_min: c(-104.0),
            tanh_max: c(9.5),
            log2e: c(core::f32::consts::LOG2_E),
            shift: c(12_582_912.0), // 1.5 * 2^23: (t + SHIFT) - SHIFT rounds t to an integer
            neg_ln2_hi: c(-f32::from_bits(0x3f31_8000)), // 0.693359375: k * LN2_HI is exact
            neg_ln2_lo: c(-f32::from_bits(0xb95e_8083)), // ln2 - LN2_HI
            p: [
                c(f32::from_bits(0x3950_6967)),
                c(f32::from_bits(0x3ab7_43ce)),
                c(f32::from_bits(0x3c08_8908)),
                c(f32::from_bits(0x3d2a_a9c1)),
                c(f32::from_bits(0x3e2a_aaaa)),
                c(0.5),
            ],
        }
    }
}

/// `e^x` lane by lane: [`crate::math::exp_f32`]'s algorithm with FMA; within 2 ulp.
#[inline(always)]
pub(crate) fn exp_v<S: Simd>(s: S, k: &ExpConsts<S::V>, x: S::V) -> S::V {
    // x = if x > 89 { 89 } else { x }; x = if x < -104 { -104 } else { x }   (NaN passes)
    let x = s.clamp_below(s.clamp_above(x, k.exp_max), k.exp_min);
    let (q, kf) = expm1_reduced_v(s, k, x);
    let e = s.add(q, k.one);
    // k1 = k >> 1 (floor division) and k - k1, as exact integral floats: two exact factors, so
    // a subnormal result is rounded once
    let k1 = s.floor(s.mul(kf, k.p[5]));
    let k2 = s.sub(kf, k1);
    s.mul(s.mul(e, s.pow2i(k1)), s.pow2i(k2))
}

/// `(e^r - 1, k)` with `x = k ln2 + r`, `k` an integral float: `crate::math::exp_f32_reduced` with
/// FMA (`k = round(x log2 e)` in one rounding, `r` by two fused Cody–Waite steps, the Cephes
/// polynomial by fused Horner steps).
#[inline(always)]
fn expm1_reduced_v<S: Simd>(s: S, k: &ExpConsts<S::V>, x: S::V) -> (S::V, S::V) {
    let kf = s.sub(s.fma(x, k.log2e, k.shift), k.shift);
    // r = (x - k LN2_HI) - k LN2_LO; the first step is exact
    let r = s.fma(kf, k.neg_ln2_hi, x);
    let r = s.fma(kf, k.neg_ln2_lo, r);
    let z = s.mul(r, r);
    let p = s.fma(k.p[0], r, k.p[1]);
    let p = s.fma(p, r, k.p[2]);
    let p = s.fma(p, r, k.p[3]);
    let p = s.fma(p, r, k.p[4]);
    let p = s.fma(p, r, k.p[5]);
    // e^r - 1 = r + r^2 p
    (s.fma(p, z, r), kf)
}

/// `tanh(x)` lane by lane, within 2 ulp: `tanh(a) = (e^{2a} - 1) / ((e^{2a} - 1) + 2)` for
/// `a = |x|` clamped to 9.5 (where tanh rounds to 1), the sign of `x` put back. `e^{2a} - 1 =
/// 2^k q + (2^k - 1)` in one fused rounding, with [`expm1_reduced_v`]'s `q = e^r - 1`; for
/// `k = 0` (`a` < 0.35) that is `q` itself, so small `a` keeps its relative accuracy.
#[inline(always)]
pub(crate) fn tanh_v<S: Simd>(s: S, k: &ExpConsts<S::V>, x: S::V) -> S::V {
    let a = s.abs(x);
    let ac = s.clamp_above(a, k.tanh_max);
    let (q, kf) = expm1_reduced_v(s, k, s.add(ac, ac));
    let p2 = s.pow2i(kf);
    let em1 = s.fma(p2, q, s.sub(p2, k.one));
    let t = s.div(em1, s.add(em1, k.two));
    s.or_sign(t, x)
}

#[inline(always)]
pub fn exp<S: Simd>(s: S, out: &mut [f32], x: &[f32]) {
    let ek = ExpConsts::new(s);
    let x = &x[..out.len()];
    for (c, w) in columns::<S>(out.len()) {
        let v = exp_v(s, &ek, ld(s, &x[c..][..w]));
        st(s, &mut out[c..][..w], v);
    }
}

#[inline(always)]
pub fn tanh<S: Simd>(s: S, out: &mut [f32], x: &[f32]) {
    let ek = ExpConsts::new(s);
    let x = &x[..out.len()];
    for (c, w) in columns::<S>(out.len()) {
        let v = tanh_v(s, &ek, ld(s, &x[c..][..w]));
        st(s, &mut out[c..][..w], v);
    }
}

// ---------------------------------------------------------------- embedding

/// A row copy per token: rows of `E >= LANES` as full vectors, the last one ending at `E`
/// (overlapping the one before: no mask); shorter rows by AVX-512's masked load and store, or
/// else `copy_from_slice` (AVX2's masked store, `vmaskmovps`, is microcoded on AMD).
#[inline(always)]
pub fn embed_gather<S: Simd>(s: S, embcat: &mut [f32], xb: &[u8], C: &[f32], embedding: usize) {
    let l = S::LANES;
    for (emb, &ix) in embcat.chunks_exact_mut(embedding).zip(xb) {
        let row = &C[ix as usize * embedding..][..embedding];
        if embedding >= l {
            let mut c = 0;
            while c + l < embedding {
                s.store(&mut emb[c..], s.load(&row[c..]));
                c += l;
            }
            let c = embedding - l;
            s.store(&mut emb[c..], s.load(&row[c..]));
        } else if l >= 16 {
            s.store_tail(emb, s.load_tail(row, 0.0));
        } else {
            emb.copy_from_slice(row);
        }
    }
}

/// `dC[ix] += demb` per token, in token order (the scalar code's order, so its bits): full
/// vectors, then the last `E % LANES` columns by AVX-512's masked load and store, or else one
/// by one (see [`embed_gather`]).
#[inline(always)]
pub fn embed_scatter_add<S: Simd>(s: S, dC: &mut [f32], dembcat: &[f32], xb: &[u8]) {
    let l = S::LANES;
    let e = dembcat.len() / xb.len().max(1);
    let full = e - e % l;
    dC.fill(0.0);
    for (&ix, demb) in xb.iter().zip(dembcat.chunks_exact(e)) {
        let row = &mut dC[ix as usize * e..][..e];
        let mut c = 0;
        while c < full {
            let v = s.add(s.load(&row[c..]), s.load(&demb[c..]));
            s.store(&mut row[c..], v);
            c += l;
        }
        if full < e && l >= 16 {
            let v = s.add(
                s.load_tail(&row[full..], 0.0),
                s.load_tail(&demb[full..], 0.0),
            );
            s.store_tail(&mut row[full..], v);
        } else {
            for (acc, &d) in row[full..].iter_mut().zip(&demb[full..]) {
                *acc += d;
            }
        }
    }
}

// ---------------------------------------------------------------- products

/// The register-blocked core of every product with a long shared axis: `R` output rows by a
/// strip of `Q` vectors starting at column `col`, `width` columns wide (`FULL`: all `Q` vectors
/// are full; else the last one has `width - (Q-1)*LANES` lanes), over the steps `ks` of the
/// shared axis.
///
/// `acc[r] = init[r] + sum_{kk in ks} a(kk)[r] * b[kk, col..col+width]`, summed over `kk` in
/// order with one FMA per term; `init` is `bias` (or 0) when `ks` starts at 0, else the partial
/// sums already in `out` (so a chain cut into several calls is the same chain). Then, if
/// `tanh_bw` (only with all of the axis in one call), `acc = (1 - o*o) * acc` with `o` the
/// value already in `out` (h), and `acc` is stored into `out` rows `r` (stride `m`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
#[cfg_attr(target_arch = "wasm32", inline(never))]
fn strip<S: Simd, const R: usize, const Q: usize, const FULL: bool>(
    s: S,
    tanh_bw: bool,
    out: &mut [f32],
    m: usize,
    col: usize,
    width: usize,
    bias: &[f32],
    ks: Range<usize>,
    b: &[f32],
    a: impl Fn(usize) -> [f32; R],
) {
    let l = S::LANES;
    // a constant when FULL (then `width == Q * l`), so the loads below need no bounds checks
    let width = if FULL { Q * l } else { width };
    let last = width - (Q - 1) * l;
    let mut acc = [[s.splat(0.0); Q]; R];
    if ks.start > 0 {
        unroll!(R, |r| {
            let out_row = &out[r * m + col..][..width];
            unroll!(Q, |q| acc[r][q] = load_q::<S, Q, FULL>(s, out_row, q, last));
        });
    } else if !bias.is_empty() {
        let bias = &bias[col..][..width];
        unroll!(Q, |q| {
            let v = load_q::<S, Q, FULL>(s, bias, q, last);
            unroll!(R, |r| acc[r][q] = v);
        });
    }
    for kk in ks {
        let b_row = &b[kk * m + col..][..width];
        let mut bv = [s.splat(0.0); Q];
        unroll!(Q, |q| bv[q] = load_q::<S, Q, FULL>(s, b_row, q, last));
        let av = a(kk);
        unroll!(R, |r| {
            let a_r = s.splat(av[r]);
            unroll!(Q, |q| acc[r][q] = s.fma(a_r, bv[q], acc[r][q]));
        });
    }
    unroll!(R, |r| {
        let out_row = &mut out[r * m + col..][..width];
        unroll!(Q, |q| {
            let v = acc[r][q];
            let v = if tanh_bw {
                let o = load_q::<S, Q, FULL>(s, out_row, q, last);
                s.mul(s.sub(s.splat(1.0), s.mul(o, o)), v)
            } else {
                v
            };
            if FULL || q + 1 < Q {
                s.store(&mut out_row[q * l..], v);
            } else {
                s.store_tail(&mut out_row[q * l..][..last], v);
            }
        });
    });
}

/// Vector `q` of a strip (the last one partial, `last` lanes, unless `FULL`).
#[inline(always)]
fn load_q<S: Simd, const Q: usize, const FULL: bool>(
    s: S,
    x: &[f32],
    q: usize,
    last: usize,
) -> S::V {
    if FULL || q + 1 < Q {
        s.load(&x[q * S::LANES..])
    } else {
        s.load_tail(&x[q * S::LANES..][..last], 0.0)
    }
}

/// Whether `R` rows of a strip of four vectors (16 or 32 registers: `4R` accumulators, four
/// vectors of `b`, one broadcast) fit in the registers of `S`.
const fn four_fit<S: Simd, const R: usize>() -> bool {
    let regs = if S::LANES >= 16 { 32 } else { 16 };
    4 * R + 5 <= regs
}

/// Whether rows of `m` columns are three full vectors and a partial one: done as one strip of
/// four vectors (where [`four_fit`]) rather than three then a lone partial one, whose few
/// accumulators would wait on the FMA latency.
#[inline(always)]
fn narrow<S: Simd>(m: usize) -> bool {
    S::STRIP_VECTORS == 3 && m > 3 * S::LANES && m < 4 * S::LANES
}

/// Output rows `rows.start..rows.end` (a multiple of `R` of them) in blocks of `R`, each in
/// strips: strips of `S::STRIP_VECTORS` full vectors, then what is left as one strip of up to
/// that many vectors with a partial last one; or, for [`narrow`] rows where [`four_fit`], one
/// strip of four vectors. `block(i)` gives the `a(kk) -> [f32; R]` of the block at row `i`.
///
/// The loop order follows the larger operand: if `b` is larger than `out`, the strips are the
/// outer loop, and the shared axis is cut into chunks of [`K_CHUNK`] steps (partial sums kept
/// in `out`), so a chunk of a strip of `b` (at most [`K_CHUNK`] rows of up to four vectors, on
/// as many pages) is read from memory once and then from cache for every block, not streamed
/// once per block; else the blocks are, so each block's output rows are written in one go (a
/// large `out`, e.g. W1's gradient, is not visited strip by strip at a stride of a whole row).
/// Either way each output's FMA chain is the same, so the bits are.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_blocks<S: Simd, const R: usize, A>(
    s: S,
    tanh_bw: bool,
    out: &mut [f32],
    m: usize,
    rows: Range<usize>,
    bias: &[f32],
    k: usize,
    b: &[f32],
    block: impl Fn(usize) -> A,
) where
    A: Fn(usize) -> [f32; R] + Copy,
{
    let l = S::LANES;
    let fours = four_fit::<S, R>() && narrow::<S>(m);
    let width_at = |col: usize| {
        if fours {
            m
        } else {
            (m - col).min(S::STRIP_VECTORS * l)
        }
    };
    if S::PACK_PANELS {
        // Each block's values of `a` for a chunk of the shared axis copied into one panel, a
        // step's R values side by side: the strip reads them with one pointer and one bounds
        // check instead of R. Blocks outer (a chunk of `b` is at most K_CHUNK rows); the tanh
        // backward's axis is at most K_CHUNK long (checked), so its chains are never cut.
        debug_assert!(!tanh_bw || k <= K_CHUNK);
        let mut panel = [[0f32; R]; K_CHUNK];
        let mut i = rows.start;
        while i + R <= rows.end {
            let a = block(i);
            let mut k0 = 0;
            while k0 < k {
                let ks = k0..k.min(k0 + K_CHUNK);
                for (p, kk) in panel.iter_mut().zip(ks.clone()) {
                    *p = a(kk);
                }
                let panel = &panel;
                let packed = move |kk: usize| panel[kk - k0];
                let mut col = 0;
                while col < m {
                    let width = width_at(col);
                    let o = &mut out[i * m..];
                    one_strip::<S, R>(s, tanh_bw, o, m, col, width, bias, ks.clone(), b, packed);
                    col += width;
                }
                k0 = ks.end;
            }
            i += R;
        }
    } else if b.len() > out.len() {
        // the tanh backward needs h in `out` until the end: its chains are never cut
        let chunk = if tanh_bw { k.max(1) } else { K_CHUNK };
        let mut col = 0;
        while col < m {
            let width = width_at(col);
            let mut k0 = 0;
            while k0 < k {
                let ks = k0..k.min(k0 + chunk);
                let mut i = rows.start;
                while i + R <= rows.end {
                    let o = &mut out[i * m..];
                    one_strip::<S, R>(s, tanh_bw, o, m, col, width, bias, ks.clone(), b, block(i));
                    i += R;
                }
                k0 = ks.end;
            }
            col += width;
        }
    } else {
        let mut i = rows.start;
        while i + R <= rows.end {
            let a = block(i);
            let mut col = 0;
            while col < m {
                let width = width_at(col);
                one_strip::<S, R>(
                    s,
                    tanh_bw,
                    &mut out[i * m..],
                    m,
                    col,
                    width,
                    bias,
                    0..k,
                    b,
                    a,
                );
                col += width;
            }
            i += R;
        }
    }
}

/// Steps of the shared axis per pass over a strip of a large `b`, or per panel, in
/// [`row_blocks`]: at least the vocabulary's largest size (the tanh backward's axis).
const K_CHUNK: usize = 256;

/// [`strip`] with the vectors of a strip `width` wide (at most four, as [`row_blocks`] cuts).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
#[cfg_attr(target_arch = "wasm32", inline(never))]
fn one_strip<S: Simd, const R: usize>(
    s: S,
    tanh_bw: bool,
    o: &mut [f32],
    m: usize,
    col: usize,
    width: usize,
    bias: &[f32],
    ks: Range<usize>,
    b: &[f32],
    a: impl Fn(usize) -> [f32; R] + Copy,
) {
    let l = S::LANES;
    match (width / l, width % l) {
        (0, _) => strip::<S, R, 1, false>(s, tanh_bw, o, m, col, width, bias, ks, b, a),
        (1, 0) => strip::<S, R, 1, true>(s, tanh_bw, o, m, col, width, bias, ks, b, a),
        (1, _) => strip::<S, R, 2, false>(s, tanh_bw, o, m, col, width, bias, ks, b, a),
        (2, 0) => strip::<S, R, 2, true>(s, tanh_bw, o, m, col, width, bias, ks, b, a),
        // not compiled where strips are at most two vectors wide
        _ if S::STRIP_VECTORS < 3 => unreachable!("row_blocks cuts strips of <= 2 vectors"),
        (2, _) => strip::<S, R, 3, false>(s, tanh_bw, o, m, col, width, bias, ks, b, a),
        (3, 0) => strip::<S, R, 3, true>(s, tanh_bw, o, m, col, width, bias, ks, b, a),
        // narrow rows: three full vectors and a partial one
        _ => strip::<S, R, 4, false>(s, tanh_bw, o, m, col, width, bias, ks, b, a),
    }
}

/// How many of `n` rows go in blocks of 4 and then of 2 (the rest one by one): blocks of 4
/// unless rows of `m` are [`narrow`] and 4 rows of a four-vector strip would not fit the
/// registers; then (and for 2 or 3 rows left) blocks of 2, unless `S::FEW_SHAPES`.
#[inline(always)]
fn fours_and_twos<S: Simd>(n: usize, m: usize) -> (usize, usize) {
    let fours = if narrow::<S>(m) && !four_fit::<S, 4>() {
        0
    } else {
        n / 4 * 4
    };
    if !S::FEW_SHAPES {
        (fours, fours + (n - fours) / 2 * 2)
    } else {
        (fours, fours)
    }
}

/// `out (n, m) = a (n, k) @ b (k, m) [+ bias]`, or with `tanh_bw` the tanh backward applied to it.
#[inline(always)]
fn gemm_nn<S: Simd>(
    s: S,
    tanh_bw: bool,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    bias: &[f32],
    m: usize,
) {
    let k = b.len() / m;
    let n = out.len() / m;
    let a = &a[..n * k];
    let (n4, n2) = fours_and_twos::<S>(n, m);
    let block4 = |i: usize| {
        let rows = [0, 1, 2, 3].map(|r| &a[(i + r) * k..][..k]);
        move |kk: usize| -> [f32; 4] { [rows[0][kk], rows[1][kk], rows[2][kk], rows[3][kk]] }
    };
    row_blocks::<S, 4, _>(s, tanh_bw, out, m, 0..n4, bias, k, b, block4);
    let block2 = |i: usize| {
        let rows = [&a[i * k..][..k], &a[(i + 1) * k..][..k]];
        move |kk: usize| -> [f32; 2] { [rows[0][kk], rows[1][kk]] }
    };
    if !S::FEW_SHAPES {
        row_blocks::<S, 2, _>(s, tanh_bw, out, m, n4..n2, bias, k, b, block2);
    }
    let block1 = |i: usize| {
        let row = &a[i * k..][..k];
        move |kk: usize| -> [f32; 1] { [row[kk]] }
    };
    row_blocks::<S, 1, _>(s, tanh_bw, out, m, n2..n, bias, k, b, block1);
}

#[inline(always)]
pub fn linear_forward<S: Simd>(
    s: S,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    bias: &[f32],
    m: usize,
) {
    gemm_nn(s, false, out, a, b, bias, m);
}

#[inline(always)]
pub fn linear_tanh_backward<S: Simd>(
    s: S,
    h_to_dhpreact: &mut [f32],
    dout: &[f32],
    wt: &[f32],
    m: usize,
) {
    gemm_nn(s, true, h_to_dhpreact, dout, wt, &[], m);
}

#[inline(always)]
pub fn matmul_tn<S: Simd>(s: S, out: &mut [f32], a: &[f32], b: &[f32], k: usize, m: usize) {
    let n = b.len() / m;
    let a = &a[..n * k];
    // 8 output rows at a time (a's 8 values per step are contiguous) where the accumulators,
    // 8 x up to 3 vectors, fit in AVX-512's 32 registers; then as gemm_nn
    let n8 = if S::LANES >= 16 { k / 8 * 8 } else { 0 };
    let block8 = |r: usize| {
        move |i: usize| -> [f32; 8] {
            let col = &a[i * k + r..][..8];
            [
                col[0], col[1], col[2], col[3], col[4], col[5], col[6], col[7],
            ]
        }
    };
    row_blocks::<S, 8, _>(s, false, out, m, 0..n8, &[], n, b, block8);
    let (n4, n2) = fours_and_twos::<S>(k - n8, m);
    let (n4, n2) = (n8 + n4, n8 + n2);
    let block4 = |r: usize| {
        move |i: usize| -> [f32; 4] {
            let col = &a[i * k + r..][..4];
            [col[0], col[1], col[2], col[3]]
        }
    };
    row_blocks::<S, 4, _>(s, false, out, m, n8..n4, &[], n, b, block4);
    let block2 = |r: usize| {
        move |i: usize| -> [f32; 2] {
            let col = &a[i * k + r..][..2];
            [col[0], col[1]]
        }
    };
    if !S::FEW_SHAPES {
        row_blocks::<S, 2, _>(s, false, out, m, n4..n2, &[], n, b, block2);
    }
    let block1 = |r: usize| move |i: usize| -> [f32; 1] { [a[i * k + r]] };
    row_blocks::<S, 1, _>(s, false, out, m, n2..k, &[], n, b, block1);
}

/// `R` rows of `a` times `P` rows of `b`, dot products over `m`.
#[inline(always)]
fn dot_block<S: Simd, const R: usize, const P: usize>(
    s: S,
    a_rows: [&[f32]; R],
    b_rows: [&[f32]; P],
) -> [[f32; P]; R] {
    let l = S::LANES;
    let m = a_rows[0].len();
    let mut acc = [[s.splat(0.0); P]; R];
    let mut c = 0;
    let mut av = [s.splat(0.0); R];
    let mut bv = [s.splat(0.0); P];
    while c + l <= m {
        unroll!(R, |r| av[r] = s.load(&a_rows[r][c..]));
        unroll!(P, |q| bv[q] = s.load(&b_rows[q][c..]));
        unroll!(R, |r| unroll!(P, |q| acc[r][q] =
            s.fma(av[r], bv[q], acc[r][q])));
        c += l;
    }
    if c < m {
        unroll!(R, |r| av[r] = s.load_tail(&a_rows[r][c..], 0.0));
        unroll!(P, |q| bv[q] = s.load_tail(&b_rows[q][c..], 0.0));
        unroll!(R, |r| unroll!(P, |q| acc[r][q] =
            s.fma(av[r], bv[q], acc[r][q])));
    }
    let mut sums = [[0.0; P]; R];
    unroll!(R, |r| unroll!(P, |q| sums[r][q] = s.reduce_add(acc[r][q])));
    sums
}

#[inline(always)]
pub fn matmul_nt<S: Simd>(s: S, out: &mut [f32], a: &[f32], b: &[f32], m: usize) {
    let p = b.len() / m;
    let n = out.len() / p;
    let a_row = |i: usize| &a[i * m..][..m];
    let b_row = |j: usize| &b[j * m..][..m];
    // blocks of 3 rows of b outer, of 4 rows of a inner: a block of b (3 rows of m) is read
    // from memory once and then from cache for all of a
    // (4 x 2 where 4 x 3 would spill: 12 accumulators, 3 rows of b and 1 of a in 16 registers)
    let wide = if S::STRIP_VECTORS < 3 { 2 } else { 3 };
    let mut j = 0;
    while j < p {
        let cols = if j + wide <= p { wide } else { 1 };
        let mut i = 0;
        while i < n {
            let rows = if i + 4 <= n { 4 } else { 1 };
            match (rows, cols) {
                (4, 2) => {
                    let d = dot_block::<S, 4, 2>(
                        s,
                        [a_row(i), a_row(i + 1), a_row(i + 2), a_row(i + 3)],
                        [b_row(j), b_row(j + 1)],
                    );
                    for (r, d_r) in d.iter().enumerate() {
                        out[(i + r) * p + j..][..2].copy_from_slice(d_r);
                    }
                }
                (4, 3) => {
                    let d = dot_block::<S, 4, 3>(
                        s,
                        [a_row(i), a_row(i + 1), a_row(i + 2), a_row(i + 3)],
                        [b_row(j), b_row(j + 1), b_row(j + 2)],
                    );
                    for (r, d_r) in d.iter().enumerate() {
                        out[(i + r) * p + j..][..3].copy_from_slice(d_r);
                    }
                }
                (4, _) if !S::FEW_SHAPES => {
                    let d = dot_block::<S, 4, 1>(
                        s,
                        [a_row(i), a_row(i + 1), a_row(i + 2), a_row(i + 3)],
                        [b_row(j)],
                    );
                    for (r, d_r) in d.iter().enumerate() {
                        out[(i + r) * p + j] = d_r[0];
                    }
                }
                (_, 3) if !S::FEW_SHAPES => {
                    let d =
                        dot_block::<S, 1, 3>(s, [a_row(i)], [b_row(j), b_row(j + 1), b_row(j + 2)]);
                    out[i * p + j..][..3].copy_from_slice(&d[0]);
                }
                _ => {
                    for r in i..i + rows {
                        for q in j..j + cols {
                            out[r * p + q] = dot_block::<S, 1, 1>(s, [a_row(r)], [b_row(q)])[0][0];
                        }
                    }
                }
            }
            i += rows;
        }
        j += cols;
    }
}

/// `out = ((x0 + x1) + x2) + ...` with `x0 = first`, or `out` itself when `first` is `None`,
/// then the `K` rows of `rest`, in that order (all of `out`'s length). Full vectors, then one
/// partial.
#[inline(always)]
fn add_rows<S: Simd, const K: usize>(
    s: S,
    out: &mut [f32],
    first: Option<&[f32]>,
    rest: [&[f32]; K],
) {
    let n = out.len();
    let first = first.map(|f| &f[..n]);
    let rest = rest.map(|r| &r[..n]);
    let full = n - n % S::LANES;
    let mut c = 0;
    while c < full {
        let mut acc = s.load(&first.unwrap_or(out)[c..]);
        for r in rest {
            acc = s.add(acc, s.load(&r[c..]));
        }
        s.store(&mut out[c..], acc);
        c += S::LANES;
    }
    if c < n {
        let mut acc = s.load_tail(&first.unwrap_or(out)[c..], 0.0);
        for r in rest {
            acc = s.add(acc, s.load_tail(&r[c..], 0.0));
        }
        s.store_tail(&mut out[c..], acc);
    }
}

#[inline(always)]
pub fn embed_table_forward<S: Simd>(
    s: S,
    hprebn: &mut [f32],
    x: &[u8],
    table: &[f32],
    b1: &[f32],
    vocab: usize,
) {
    let hidden = b1.len();
    let rows = hprebn.len() / hidden;
    let context = x.len() / rows.max(1);
    for (row, xr) in hprebn.chunks_exact_mut(hidden).zip(x.chunks_exact(context)) {
        let entry = |t: usize| &table[(t * vocab + xr[t] as usize) * hidden..][..hidden];
        if S::FEW_SHAPES {
            // one entry per pass, in position order: the same sums
            add_rows(s, row, Some(b1), [entry(0)]);
            for t in 1..context {
                add_rows(s, row, None, [entry(t)]);
            }
            continue;
        }
        // passes of up to three entries (three is the notebook's context): one load and store
        // of the row per pass, the additions in position order
        match context {
            1 => add_rows(s, row, Some(b1), [entry(0)]),
            2 => add_rows(s, row, Some(b1), [entry(0), entry(1)]),
            _ => add_rows(s, row, Some(b1), [entry(0), entry(1), entry(2)]),
        }
        let mut t = 3;
        while t + 3 <= context {
            add_rows(s, row, None, [entry(t), entry(t + 1), entry(t + 2)]);
            t += 3;
        }
        match context.saturating_sub(t) {
            0 => {}
            1 => add_rows(s, row, None, [entry(t)]),
            _ => add_rows(s, row, None, [entry(t), entry(t + 1)]),
        }
    }
}

/// Each output row is a column of `a`: whole vectors by strided gathers, the tail by plain
/// loads.
#[inline(always)]
pub fn transpose<S: Simd>(s: S, out: &mut [f32], a: &[f32], m: usize) {
    let n = a.len() / m;
    let out = &mut out[..n * m];
    for (j, out_row) in out.chunks_exact_mut(n).enumerate() {
        let col = &a[j..];
        let mut i = 0;
        while i + S::LANES <= n {
            s.store(&mut out_row[i..], s.gather(&col[i * m..], m));
            i += S::LANES;
        }
        for (ii, o) in out_row.iter_mut().enumerate().skip(i) {
            *o = col[ii * m];
        }
    }
}

// ---------------------------------------------------------------- batchnorm, tanh

/// `hprebn_to_bndiff -= bnmeani` and `sum2 = (bndiff**2).sum(0)` (written), per hidden unit.
#[inline(always)]
pub fn batchnorm_center<S: Simd>(
    s: S,
    hprebn_to_bndiff: &mut [f32],
    bnmeani: &[f32],
    sum2: &mut [f32],
) {
    let hidden = bnmeani.len();
    for (c, w) in columns::<S>(hidden) {
        let mean = ld(s, &bnmeani[c..][..w]);
        let mut acc = s.splat(0.0);
        for row in hprebn_to_bndiff.chunks_exact_mut(hidden) {
            let d = s.sub(ld(s, &row[c..][..w]), mean);
            st(s, &mut row[c..][..w], d);
            acc = s.add(acc, s.mul(d, d));
        }
        st(s, &mut sum2[c..][..w], acc);
    }
}

/// `bnvar_inv = (1/(n-1) * sum2 + eps)**-0.5` in place, `n` the rows of the whole batch.
#[inline(always)]
pub fn batchnorm_var_inv<S: Simd>(s: S, sum2_to_bnvar_inv: &mut [f32], n: usize) {
    let n = n as f32;
    let inv_n1 = s.splat(1.0 / (n - 1.0));
    let eps = s.splat(crate::batchnorm::BN_EPS as f32);
    for (c, w) in columns::<S>(sum2_to_bnvar_inv.len()) {
        let x = &mut sum2_to_bnvar_inv[c..][..w];
        let v = s.div(s.splat(1.0), s.sqrt(s.add(s.mul(inv_n1, ld(s, x)), eps)));
        st(s, x, v);
    }
}

/// `bnraw = bndiff * bnvar_inv` (in place) and `h = tanh(bngain * bnraw + bnbias)`.
#[inline(always)]
pub fn batchnorm_scale_shift_tanh<S: Simd>(
    s: S,
    h: &mut [f32],
    bndiff_to_bnraw: &mut [f32],
    bnvar_inv: &[f32],
    bngain: &[f32],
    bnbias: &[f32],
) {
    let ek = ExpConsts::new(s);
    let hidden = bngain.len();
    for (c, w) in columns::<S>(hidden) {
        let inv = ld(s, &bnvar_inv[c..][..w]);
        let g = ld(s, &bngain[c..][..w]);
        let b = ld(s, &bnbias[c..][..w]);
        for (h_row, raw_row) in h
            .chunks_exact_mut(hidden)
            .zip(bndiff_to_bnraw.chunks_exact_mut(hidden))
        {
            let raw = s.mul(ld(s, &raw_row[c..][..w]), inv);
            st(s, &mut raw_row[c..][..w], raw);
            let v = tanh_v(s, &ek, s.add(s.mul(g, raw), b));
            st(s, &mut h_row[c..][..w], v);
        }
    }
}

/// `dbngain = (bnraw * dhpreact).sum(0)`, `dbnbias = dhpreact.sum(0)` (written).
#[inline(always)]
pub fn batchnorm_backward_sums<S: Simd>(
    s: S,
    dbngain: &mut [f32],
    dbnbias: &mut [f32],
    dhpreact: &[f32],
    bnraw: &[f32],
) {
    let hidden = dbngain.len();
    for (c, w) in columns::<S>(hidden) {
        let mut g = s.splat(0.0);
        let mut b = s.splat(0.0);
        for (d_row, raw_row) in dhpreact
            .chunks_exact(hidden)
            .zip(bnraw.chunks_exact(hidden))
        {
            let dv = ld(s, &d_row[c..][..w]);
            g = s.add(g, s.mul(ld(s, &raw_row[c..][..w]), dv));
            b = s.add(b, dv);
        }
        st(s, &mut dbngain[c..][..w], g);
        st(s, &mut dbnbias[c..][..w], b);
    }
}

/// `dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dbnbias - n/(n-1)*bnraw*dbngain)` in place,
/// with `n` the rows of the whole batch.
#[inline(always)]
pub fn batchnorm_backward_apply<S: Simd>(
    s: S,
    dhpreact_to_dhprebn: &mut [f32],
    bnraw: &[f32],
    bnvar_inv: &[f32],
    bngain: &[f32],
    dbngain: &[f32],
    dbnbias: &[f32],
    n: usize,
) {
    let hidden = bngain.len();
    let n = n as f32;
    let n_over_n1 = s.splat(n / (n - 1.0));
    let nv = s.splat(n);
    for (c, w) in columns::<S>(hidden) {
        let g = ld(s, &dbngain[c..][..w]);
        let b = ld(s, &dbnbias[c..][..w]);
        let scale = s.div(
            s.mul(ld(s, &bngain[c..][..w]), ld(s, &bnvar_inv[c..][..w])),
            nv,
        );
        for (d_row, raw_row) in dhpreact_to_dhprebn
            .chunks_exact_mut(hidden)
            .zip(bnraw.chunks_exact(hidden))
        {
            let dv = ld(s, &d_row[c..][..w]);
            let rv = ld(s, &raw_row[c..][..w]);
            let v = s.mul(
                scale,
                s.sub(s.sub(s.mul(nv, dv), b), s.mul(s.mul(n_over_n1, rv), g)),
            );
            st(s, &mut d_row[c..][..w], v);
        }
    }
}

/// `dbias = dout.sum(0)`: each column summed over the rows in order from 0 (the scalar code's
/// order, so its bits). Four vectors of columns at a time, so that four chains of additions
/// overlap; then single vectors; then the last `m % LANES` columns by AVX-512's masked loads,
/// or else one by one (see [`embed_gather`]).
#[inline(always)]
pub fn bias_backward<S: Simd>(s: S, dbias: &mut [f32], dout: &[f32]) {
    let l = S::LANES;
    let m = dbias.len();
    let full = m - m % l;
    let mut c = 0;
    while c + 4 * l <= full {
        let mut acc = [s.splat(0.0); 4];
        for row in dout.chunks_exact(m) {
            for (q, a) in acc.iter_mut().enumerate() {
                *a = s.add(*a, s.load(&row[c + q * l..]));
            }
        }
        for (q, &a) in acc.iter().enumerate() {
            s.store(&mut dbias[c + q * l..], a);
        }
        c += 4 * l;
    }
    while c < full {
        let mut acc = s.splat(0.0);
        for row in dout.chunks_exact(m) {
            acc = s.add(acc, s.load(&row[c..]));
        }
        s.store(&mut dbias[c..], acc);
        c += l;
    }
    if full < m && l >= 16 {
        let mut acc = s.splat(0.0);
        for row in dout.chunks_exact(m) {
            acc = s.add(acc, s.load_tail(&row[full..], 0.0));
        }
        s.store_tail(&mut dbias[full..], acc);
    } else {
        for (j, d) in dbias.iter_mut().enumerate().skip(full) {
            let mut acc = 0.0;
            for row in dout.chunks_exact(m) {
                acc += row[j];
            }
            *d = acc;
        }
    }
}

#[inline(always)]
pub fn batchnorm_tanh_inference<S: Simd>(
    s: S,
    hprebn_to_h: &mut [f32],
    bnmean: &[f32],
    bnvar_inv: &[f32],
    bngain: &[f32],
    bnbias: &[f32],
) {
    let ek = ExpConsts::new(s);
    let hidden = bngain.len();
    for (c, w) in columns::<S>(hidden) {
        let g = ld(s, &bngain[c..][..w]);
        let mean = ld(s, &bnmean[c..][..w]);
        let inv = ld(s, &bnvar_inv[c..][..w]);
        let b = ld(s, &bnbias[c..][..w]);
        for row in hprebn_to_h.chunks_exact_mut(hidden) {
            let x = ld(s, &row[c..][..w]);
            let v = tanh_v(s, &ek, s.add(s.mul(s.mul(g, s.sub(x, mean)), inv), b));
            st(s, &mut row[c..][..w], v);
        }
    }
}

// ---------------------------------------------------------------- cross-entropy

/// `R` rows of the cross-entropy forward at once: their exp chains are independent, so the
/// CPU overlaps them. Returns `ln(counts_sum) - norm_logit_y` per row.
#[inline(always)]
fn cross_entropy_rows<S: Simd, const R: usize>(
    s: S,
    ek: &ExpConsts<S::V>,
    rows: &mut [f32],
    v: usize,
    yb: &[u8],
) -> [f32; R] {
    // logit_maxes = logits.max(1)   (max over the classes, per example)
    let mut mx = [s.splat(f32::NEG_INFINITY); R];
    for (c, w) in columns::<S>(v) {
        for (r, m) in mx.iter_mut().enumerate() {
            let row = &rows[r * v..][..v];
            let x = if w == S::LANES {
                s.load(&row[c..])
            } else {
                s.load_tail(&row[c..][..w], f32::NEG_INFINITY)
            };
            *m = s.max(*m, x);
        }
    }
    let mut max_v = [s.splat(0.0); R];
    let mut norm_logit_y = [0.0; R];
    for r in 0..R {
        let logit_max = s.reduce_max(mx[r]);
        max_v[r] = s.splat(logit_max);
        norm_logit_y[r] = rows[r * v + yb[r] as usize] - logit_max;
    }
    // counts = exp(norm_logits); counts_sum = counts.sum(1)
    let mut sum = [s.splat(0.0); R];
    for (c, w) in columns::<S>(v) {
        for r in 0..R {
            let x = &mut rows[r * v + c..][..w];
            let p = exp_v(s, ek, s.sub(ld(s, x), max_v[r]));
            st(s, x, p);
            sum[r] = s.add(sum[r], s.keep_first(p, w));
        }
    }
    // probs = counts * counts_sum_inv
    let mut out = [0.0; R];
    for r in 0..R {
        let counts_sum = s.reduce_add(sum[r]);
        let inv = s.splat(1.0 / counts_sum);
        for (c, w) in columns::<S>(v) {
            let x = &mut rows[r * v + c..][..w];
            st(s, x, s.mul(ld(s, x), inv));
        }
        out[r] = ln_f32(counts_sum) - norm_logit_y[r];
    }
    out
}

#[inline(always)]
pub fn cross_entropy_sum<S: Simd>(s: S, logits_to_probs: &mut [f32], yb: &[u8]) -> f32 {
    let ek = ExpConsts::new(s);
    let v = logits_to_probs.len() / yb.len();
    let n = yb.len();
    let mut loss_sum = 0.0f32;
    let mut i = 0;
    while !S::FEW_SHAPES && i + 4 <= n {
        for l in cross_entropy_rows::<S, 4>(s, &ek, &mut logits_to_probs[i * v..], v, &yb[i..]) {
            loss_sum += l;
        }
        i += 4;
    }
    while i < n {
        let [l] = cross_entropy_rows::<S, 1>(s, &ek, &mut logits_to_probs[i * v..], v, &yb[i..]);
        loss_sum += l;
        i += 1;
    }
    loss_sum
}

#[inline(always)]
pub fn cross_entropy_backward<S: Simd>(s: S, probs_to_dlogits: &mut [f32], yb: &[u8], n: usize) {
    let v = probs_to_dlogits.len() / yb.len();
    let inv_n = 1.0 / n as f32;
    for (row, &y) in probs_to_dlogits.chunks_exact_mut(v).zip(yb) {
        row[y as usize] -= 1.0;
    }
    let inv_n = s.splat(inv_n);
    let all = &mut probs_to_dlogits[..v * yb.len()];
    let mut chunks = all.chunks_exact_mut(S::LANES);
    for c in &mut chunks {
        let x = s.mul(s.load(c), inv_n);
        s.store(c, x);
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let x = s.mul(s.load_tail(tail, 0.0), inv_n);
        s.store_tail(tail, x);
    }
}

// ---------------------------------------------------------------- SGD, AdamW, norms, the finiteness scan

/// `p = p - lr * grad` (a multiply, then a subtraction: the scalar code's bits): full
/// vectors, the last `len % LANES` elements by the scalar code.
#[inline(always)]
pub fn sgd<S: Simd>(s: S, p: &mut [f32], grad: &[f32], lr: f32) {
    let lr_v = s.splat(lr);
    let grad = &grad[..p.len()];
    let full = p.len() - p.len() % S::LANES;
    let (p_full, p_tail) = p.split_at_mut(full);
    let (g_full, g_tail) = grad.split_at(full);
    for (pc, gc) in p_full
        .chunks_exact_mut(S::LANES)
        .zip(g_full.chunks_exact(S::LANES))
    {
        let v = s.sub(s.load(pc), s.mul(lr_v, s.load(gc)));
        s.store(pc, v);
    }
    crate::train::sgd_row(p_tail, g_tail, lr);
}

/// `scalar::adamw`, lane by lane: the same operations in the same order (no FMA; IEEE sqrt
/// and division), so the same bits.
#[inline(always)]
pub fn adamw<S: Simd>(
    s: S,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    c: crate::optim::AdamWStep,
) {
    let n = p.len();
    let (m, v, grad) = (&mut m[..n], &mut v[..n], &grad[..n]);
    let decay = s.splat(c.decay);
    let (beta1, one_minus_beta1) = (s.splat(c.beta1), s.splat(c.one_minus_beta1));
    let (beta2, one_minus_beta2) = (s.splat(c.beta2), s.splat(c.one_minus_beta2));
    let (step_size, sqrt_bc2, eps) = (s.splat(c.step_size), s.splat(c.sqrt_bc2), s.splat(c.eps));
    for (i, w) in columns::<S>(n) {
        let g = ld(s, &grad[i..][..w]);
        let decayed = s.mul(ld(s, &p[i..][..w]), decay);
        let mt = s.add(s.mul(beta1, ld(s, &m[i..][..w])), s.mul(one_minus_beta1, g));
        let vt = s.add(
            s.mul(beta2, ld(s, &v[i..][..w])),
            s.mul(s.mul(one_minus_beta2, g), g),
        );
        let denom = s.add(s.div(s.sqrt(vt), sqrt_bc2), eps);
        let pt = s.sub(decayed, s.div(s.mul(step_size, mt), denom));
        st(s, &mut p[i..][..w], pt);
        st(s, &mut m[i..][..w], mt);
        st(s, &mut v[i..][..w], vt);
    }
}

/// `sum x^2` in `4 * LANES` running sums (FMA), added in a fixed tree at the end: the same
/// bits for the same input on a given path.
#[inline(always)]
pub fn sum_squares<S: Simd>(s: S, x: &[f32]) -> f32 {
    let mut acc = [s.splat(0.0); 4];
    let mut blocks = x.chunks_exact(4 * S::LANES);
    for b in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            let v = s.load(&b[j * S::LANES..]);
            *a = s.fma(v, v, *a);
        }
    }
    for (c, w) in columns::<S>(blocks.remainder().len()) {
        let v = ld(s, &blocks.remainder()[c..][..w]);
        acc[0] = s.fma(v, v, acc[0]);
    }
    s.reduce_add(s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3])))
}

#[inline(always)]
pub fn moments<S: Simd>(s: S, x: &[f32]) -> [f32; 2] {
    if x.is_empty() {
        return [0.0, 0.0];
    }
    let l = S::LANES;
    let mut acc = [s.splat(0.0); 4];
    let mut blocks = x.chunks_exact(4 * l);
    for b in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = s.add(*a, s.load(&b[j * l..]));
        }
    }
    for (c, w) in columns::<S>(blocks.remainder().len()) {
        acc[0] = s.add(acc[0], ld(s, &blocks.remainder()[c..][..w]));
    }
    let sum = s.reduce_add(s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3])));
    let mean = sum / x.len() as f32;
    let m = s.splat(mean);
    let mut acc = [s.splat(0.0); 4];
    let mut blocks = x.chunks_exact(4 * l);
    for b in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            let d = s.sub(s.load(&b[j * l..]), m);
            *a = s.fma(d, d, *a);
        }
    }
    for (c, w) in columns::<S>(blocks.remainder().len()) {
        let d = s.keep_first(s.sub(ld(s, &blocks.remainder()[c..][..w]), m), w);
        acc[0] = s.fma(d, d, acc[0]);
    }
    let m2 = s.reduce_add(s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3])));
    [mean, m2]
}

#[inline(always)]
pub fn bn_tanh_stats<S: Simd>(
    s: S,
    saturated: &mut [f32],
    bnraw: &[f32],
    bngain: &[f32],
    bnbias: &[f32],
    center: [f32; 2],
) -> [f32; 4] {
    let ek = ExpConsts::new(s);
    let hidden = bngain.len();
    let (c0, c1) = (s.splat(center[0]), s.splat(center[1]));
    let (one, zero, limit) = (s.splat(1.0), s.splat(0.0), s.splat(crate::stats::SATURATED));
    let mut acc = [zero; 4];
    for (c, w) in columns::<S>(hidden) {
        let g = ld(s, &bngain[c..][..w]);
        let b = ld(s, &bnbias[c..][..w]);
        let mut count = zero;
        for row in bnraw.chunks_exact(hidden) {
            // the step's own hpreact (a multiply then an add) and h
            let hpreact = s.add(s.mul(g, ld(s, &row[c..][..w])), b);
            let h = tanh_v(s, &ek, hpreact);
            let d0 = s.keep_first(s.sub(hpreact, c0), w);
            let d1 = s.keep_first(s.sub(h, c1), w);
            acc[0] = s.add(acc[0], d0);
            acc[1] = s.add(acc[1], d1);
            acc[2] = s.fma(d0, d0, acc[2]);
            acc[3] = s.fma(d1, d1, acc[3]);
            // lanes past w hold tanh(0) = 0: never saturated
            count = s.add(count, s.select(s.gt(s.abs(h), limit), one, zero));
        }
        st(s, &mut saturated[c..][..w], count);
    }
    [
        s.reduce_add(acc[0]),
        s.reduce_add(acc[1]),
        s.reduce_add(acc[2]),
        s.reduce_add(acc[3]),
    ]
}

#[inline(always)]
pub fn scale<S: Simd>(s: S, x: &mut [f32], a: f32) {
    let a = s.splat(a);
    for (c, w) in columns::<S>(x.len()) {
        let v = s.mul(ld(s, &x[c..][..w]), a);
        st(s, &mut x[c..][..w], v);
    }
}

#[inline(always)]
pub fn all_finite<S: Simd>(s: S, x: &[f32]) -> bool {
    // x * 0 is 0 for a finite x and NaN for an infinity or NaN, and NaN survives the sums;
    // four sums so that the additions overlap
    let zero = s.splat(0.0);
    let mut acc = [zero; 4];
    let mut blocks = x.chunks_exact(4 * S::LANES);
    for b in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = s.add(*a, s.mul(s.load(&b[j * S::LANES..]), zero));
        }
    }
    for (c, w) in columns::<S>(blocks.remainder().len()) {
        acc[0] = s.add(acc[0], s.mul(ld(s, &blocks.remainder()[c..][..w]), zero));
    }
    let sum = s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3]));
    s.reduce_add(sum) == 0.0
}

// ---------------------------------------------------------------- the FMA peak

/// The multiplier of the peak kernel's chains: a power of two, so `x * PEAK_MUL` is exact and
/// a fused and an unfused multiply-add give the same bits (every path agrees bit for bit).
pub(crate) const PEAK_MUL: f32 = 0.5;
/// The addend of the peak kernel's chains: `x -> x * 0.5 + 1` has the fixed point 2, so no
/// chain overflows whatever `iters` is.
pub(crate) const PEAK_ADD: f32 = 1.0;
/// Independent chains (vectors) per block: more than the FMAs in flight on two pipes of latency
/// 4 to 5, and with the two constants within the 16 registers of AVX2.
pub(crate) const PEAK_CHAINS: usize = 12;

/// `iters` rounds of `x = fma(x, 0.5, 1)` on every value of `acc`, in blocks of
/// `PEAK_CHAINS` vectors held in registers (independent chains, so the FMAs overlap); a
/// remainder of less than a block goes one vector at a time (latency-bound).
#[inline(always)]
pub fn fma_peak<S: Simd>(s: S, acc: &mut [f32], iters: usize) {
    let (a, b) = (s.splat(PEAK_MUL), s.splat(PEAK_ADD));
    let mut blocks = acc.chunks_exact_mut(PEAK_CHAINS * S::LANES);
    for block in &mut blocks {
        let mut x = [a; PEAK_CHAINS];
        for (j, x) in x.iter_mut().enumerate() {
            *x = s.load(&block[j * S::LANES..]);
        }
        for _ in 0..iters {
            for x in x.iter_mut() {
                *x = s.fma(*x, a, b);
            }
        }
        for (j, x) in x.iter().enumerate() {
            s.store(&mut block[j * S::LANES..], *x);
        }
    }
    let rest = blocks.into_remainder();
    for (c, w) in columns::<S>(rest.len()) {
        let mut x = ld(s, &rest[c..][..w]);
        for _ in 0..iters {
            x = s.fma(x, a, b);
        }
        st(s, &mut rest[c..][..w], x);
    }
}
