//! The contracts of issue 14's must-have 5: every public kernel of [`Kernels`] refuses a bad
//! shape with a typed [`Error`] (no panic, no division by zero, no silent truncation, nothing
//! written by a refused call), and every path of this CPU gives the same `Ok`/`Err` (the same
//! error value) for the same arguments. The training steps' functions that take lengths
//! (`Step::from_flat`, `Kernels::train_step`, `ParamsRef`/`ParamsMut`/`ActsMut::from_flat`,
//! `train::forward`, `backward`, `sgd_update`, `train_step`, `train_step_in_place`) refuse
//! without panicking too, and accept every consistent call.
//!
//! proptest draws each slice length and each size argument independently from small ranges
//! (0 included; now and then a huge size, so that shape arithmetic that overflows shows) and
//! token ids as arbitrary `u8`. A slice length is the one consistent with the drawn sizes about
//! four times in five (else any of 0..48), so that calls both pass and fail the checks and the
//! kernels behind them run on degenerate shapes (0 rows, width 1, ...). Each call runs on scalar
//! and on every vector path of this CPU (with `MAKEMORE_ISA` set: scalar and that path, failing
//! if the CPU lacks it) inside `catch_unwind`.
//!
//! What it catches. From the code before the checks moved into the dispatch: `sgd` with `grad`
//! shorter than `p` updated a prefix on scalar and panicked on AVX2 (a truncation, a panic and
//! a disagreement), `tanh_backward` likewise; `linear_forward` with m = 0 divided by zero on
//! every path. Found by this test in the first checked version: `embed_table_forward`'s
//! `T * V * H` wrapped (in release) to the length of a short table, which scalar then indexed
//! past; `linear_forward` and `linear_tanh_backward` with k = 0 and `matmul_nt` with p = 0 took
//! `chunks_exact(0)` on scalar; `transpose` of 0 rows was `Ok` on scalar and panicked on AVX2
//! and AVX-512.

use makemore_core::model::Dims;
use makemore_core::simd::{Isa, Kernels};
use makemore_core::step::{InTurn, Step};
use makemore_core::train::{self, ActsMut};
use makemore_core::{Error, ParamsMut, ParamsRef};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Scalar (the reference) and the vector paths under test: every one this CPU runs, or with
/// `MAKEMORE_ISA` set, that one (failing if the CPU cannot run it).
fn paths() -> Vec<Kernels> {
    let mut out = vec![Kernels::scalar()];
    match std::env::var("MAKEMORE_ISA").ok().as_deref() {
        None | Some("") | Some("auto") => out.extend(
            Isa::ALL
                .into_iter()
                .filter(|isa| *isa != Isa::Scalar && isa.is_available())
                .map(|isa| Kernels::new(isa).unwrap()),
        ),
        Some(name) => {
            let isa = Isa::parse(name).unwrap_or_else(|| {
                panic!("MAKEMORE_ISA={name}: not scalar|avx2|avx512|neon|simd128")
            });
            let k = Kernels::new(isa)
                .unwrap_or_else(|e| panic!("MAKEMORE_ISA={name} is forced but unavailable: {e}"));
            if isa != Isa::Scalar {
                out.push(k);
            }
        }
    }
    out
}

/// The longest buffer a case allocates; a consistent length above it (huge sizes) becomes 0.
const MAX_LEN: usize = 1 << 20;

/// A size argument: mostly 0..=20 (past one 16-lane vector; 0, 1, 2 often), now and then huge
/// (the 64-bit values, or on a 32-bit target (wasm32) their 32-bit counterparts: the top bit,
/// and a value whose square overflows).
fn size() -> impl Strategy<Value = usize> {
    let top = usize::try_from(1u64 << 63).unwrap_or(1 << 31);
    let square_overflows = usize::try_from((1u64 << 32) + 1).unwrap_or((1 << 16) + 1);
    prop_oneof![
        4 => 0usize..3,
        8 => 0usize..=20,
        1 => prop_oneof![Just(usize::MAX), Just(top), Just(square_overflows)],
    ]
}

/// `N` slice lengths: `None` is the length consistent with the sizes, `Some` any of 0..48.
fn lens<const N: usize>() -> impl Strategy<Value = [Option<usize>; N]> {
    prop::array::uniform(prop::option::weighted(0.2, 0usize..48))
}

/// A slice's length: the drawn one, or the consistent `want` (0 if it is too long to allocate).
fn at(drawn: Option<usize>, want: Option<usize>) -> usize {
    drawn.unwrap_or(match want {
        Some(w) if w <= MAX_LEN => w,
        _ => 0,
    })
}

/// `a * b` (or `a * b * c`), `None` on overflow.
fn mul(a: usize, b: usize) -> Option<usize> {
    a.checked_mul(b)
}
fn mul3(a: usize, b: usize, c: usize) -> Option<usize> {
    a.checked_mul(b)?.checked_mul(c)
}

/// A token pattern, repeated to any length by [`toks`]: mostly small ids, any `u8` now and then.
fn token_pattern() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![3 => 0u8..5, 1 => any::<u8>()], 1..6)
}
/// The same for the training steps, whose vocabulary is often 1 or 2: mostly 0, so that a
/// fair share of batches is in range.
fn step_token_pattern() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![12 => Just(0u8), 3 => 0u8..5, 1 => any::<u8>()],
        1..4,
    )
}
fn toks(pattern: &[u8], len: usize) -> Vec<u8> {
    pattern.iter().copied().cycle().take(len).collect()
}

/// `len` finite values (inputs, and the initial contents of outputs).
fn vals(len: usize) -> Vec<f32> {
    (0..len).map(|i| (i % 7) as f32 * 0.5 - 1.25).collect()
}

/// A mutable argument: its values now and before the call, to see whether the call wrote it.
struct Buf {
    now: Vec<f32>,
    before: Vec<f32>,
}

impl Buf {
    fn new(len: usize) -> Buf {
        let v = vals(len);
        Buf {
            before: v.clone(),
            now: v,
        }
    }
    fn written(&self) -> bool {
        self.now
            .iter()
            .zip(&self.before)
            .any(|(a, b)| a.to_bits() != b.to_bits())
    }
}

/// Whether any of `bufs` was written.
fn wrote(bufs: &[&Buf]) -> bool {
    bufs.iter().any(|b| b.written())
}

/// The text of a panic's payload.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Runs `call` (returning its result and whether it wrote an output) on every path: fails on a
/// panic, on an `Err` that wrote an output, or on an outcome that differs from scalar's.
/// Returns scalar's refusal (`None`: `Ok`).
fn agree(
    what: &str,
    args: &dyn Debug,
    call: impl Fn(&Kernels) -> (Result<(), Error>, bool),
) -> Result<Option<Error>, TestCaseError> {
    let mut want = None;
    for k in paths() {
        let isa = k.isa();
        let (got, written) = catch_unwind(AssertUnwindSafe(|| call(&k))).map_err(|p| {
            TestCaseError::fail(format!(
                "{what} {args:?} panicked on {isa}: {}",
                panic_text(p)
            ))
        })?;
        if let Err(e) = got {
            prop_assert!(
                !written,
                "{what} {args:?} on {isa} refused ({e}) but wrote an output"
            );
        }
        match &want {
            None => want = Some(got),
            Some(w) => prop_assert_eq!(&got, w, "{} {:?}: {} and scalar disagree", what, args, isa),
        }
    }
    Ok(want.expect("scalar always runs").err())
}

/// Runs `call` once (a function without paths): fails on a panic; returns its result.
fn no_panic<T>(what: &str, args: &dyn Debug, call: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(call))
        .map_err(|p| TestCaseError::fail(format!("{what} {args:?} panicked: {}", panic_text(p))))
}

/// Model sizes: mostly tiny (0 now and then), sometimes the notebook's 27, just out of range
/// or huge.
fn dims() -> impl Strategy<Value = Dims> {
    let d = || {
        prop_oneof![
            12 => 1usize..5,
            1 => Just(0usize),
            1 => Just(27usize),
            1 => prop_oneof![Just(257usize), Just((1usize << 16) + 1), Just(usize::MAX)],
        ]
    };
    (d(), d(), d(), d()).prop_map(|(vocab, context, embedding, hidden)| Dims {
        vocab,
        context,
        embedding,
        hidden,
    })
}

/// Rows of a batch: 0 to a few (one shard), 128 and more (several), or huge.
fn batch_rows() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..6,
        2 => 120usize..200,
        1 => prop_oneof![Just(usize::MAX), Just(usize::try_from(1u64 << 40).unwrap_or(1 << 30))],
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 512 },
        .. ProptestConfig::default()
    })]

    #[test]
    fn elementwise_kernels(n in size(), l in lens::<4>(), lr in prop_oneof![Just(0.1f32), Just(f32::NAN)]) {
        let (o, x) = (at(l[0], Some(n)), at(l[1], Some(n)));
        agree("exp", &(o, x), |k| {
            let mut out = Buf::new(o);
            (k.exp(&mut out.now, &vals(x)), out.written())
        })?;
        agree("tanh", &(o, x), |k| {
            let mut out = Buf::new(o);
            (k.tanh(&mut out.now, &vals(x)), out.written())
        })?;
        let (p, g) = (at(l[2], Some(n)), at(l[3], Some(n)));
        agree("sgd", &(p, g), |k| {
            let mut out = Buf::new(p);
            (k.sgd(&mut out.now, &vals(g), lr), out.written())
        })?;
        // all_finite has no shape to refuse: the same answer on every path
        let mut x = vals(x);
        if let (Some(i), true) = (l[2], !x.is_empty()) {
            let len = x.len();
            x[i % len] = [f32::NAN, f32::INFINITY, f32::MAX][i % 3];
        }
        let want = x.iter().all(|v| v.is_finite());
        for k in paths() {
            prop_assert_eq!(k.all_finite(&x), want, "all_finite on {}", k.isa());
        }
    }

    /// The optimiser kernels: `adamw` refuses any of `m`, `v`, `grad` whose length is not
    /// `p`'s (writing nothing); `sum_squares` and `scale` take any length; the same on every
    /// path.
    #[test]
    fn optimiser_kernels(n in size(), l in lens::<4>(), t in 1u64..5) {
        let (p, m, v, g) = (at(l[0], Some(n)), at(l[1], Some(n)), at(l[2], Some(n)), at(l[3], Some(n)));
        let c = makemore_core::AdamW::MAKEMORE.step(0.1, t).unwrap();
        let refused = agree("adamw", &(p, m, v, g), |k| {
            let (mut pb, mut mb, mut vb) = (Buf::new(p), Buf::new(m), Buf::new(v));
            let r = k.adamw(&mut pb.now, &mut mb.now, &mut vb.now, &vals(g), c);
            (r, wrote(&[&pb, &mb, &vb]))
        })?;
        prop_assert_eq!(refused.is_none(), p == m && p == v && p == g);
        agree("scale", &p, |k| {
            let mut out = Buf::new(p);
            k.scale(&mut out.now, 1.0);
            (Ok(()), out.written())
        })?;
        let x = vals(p);
        let want = Kernels::scalar().sum_squares(&x);
        for k in paths() {
            // the values are multiples of 0.25 below 2: every partial sum is exact
            prop_assert_eq!(k.sum_squares(&x), want, "sum_squares on {}", k.isa());
        }
    }

    #[test]
    fn embedding_kernels(
        n in size(), v in size(), e in size(), t in size(), h in size(),
        l in lens::<9>(), pattern in token_pattern(),
    ) {
        // embed_gather: embcat (n, E), xb (n), C (V, E)
        let (embcat, xb, c) = (at(l[0], mul(n, e)), at(l[1], Some(n)), at(l[2], mul(v, e)));
        let xb_t = toks(&pattern, xb);
        let refused = agree("embed_gather", &(embcat, xb, c, e), |k| {
            let mut out = Buf::new(embcat);
            (k.embed_gather(&mut out.now, &xb_t, &vals(c), e), out.written())
        })?;
        if refused.is_none() {
            // the width and every id were checked against C (V, E), V = C.len() / E
            prop_assert!(e >= 1 && xb_t.iter().all(|&x| (x as usize) < c / e.max(1)));
        }
        // embed_scatter_add: dC (V, E), dembcat (n, E), xb (n)
        let (dc, demb) = (at(l[3], mul(v, e)), at(l[4], mul(n, e)));
        agree("embed_scatter_add", &(dc, demb, xb, e), |k| {
            let mut out = Buf::new(dc);
            (k.embed_scatter_add(&mut out.now, &vals(demb), &xb_t), out.written())
        })?;
        // embed_table_forward: hprebn (n, H), x (n, T), table (T, V, H), b1 (H)
        let (hprebn, x, table, b1) = (
            at(l[5], mul(n, h)),
            at(l[6], mul(n, t)),
            at(l[7], mul3(t, v, h)),
            at(l[8], Some(h)),
        );
        let x_t = toks(&pattern, x);
        agree("embed_table_forward", &(hprebn, x, table, b1, v), |k| {
            let mut out = Buf::new(hprebn);
            (k.embed_table_forward(&mut out.now, &x_t, &vals(table), &vals(b1), v), out.written())
        })?;
    }

    #[test]
    fn product_kernels(
        n in size(), kk in size(), m in size(), bias in any::<bool>(), l in lens::<17>(),
    ) {
        // linear_forward: out (n, m), a (n, k), b (k, m), bias (m or 0)
        let (out, a, b, bl) = (
            at(l[0], mul(n, m)),
            at(l[1], mul(n, kk)),
            at(l[2], mul(kk, m)),
            at(l[3], Some(if bias { m } else { 0 })),
        );
        agree("linear_forward", &(out, a, b, bl, m), |k| {
            let mut o = Buf::new(out);
            (k.linear_forward(&mut o.now, &vals(a), &vals(b), &vals(bl), m), o.written())
        })?;
        // matmul_tn: out (k, m), a (n, k), b (n, m)
        let (out, a, b) = (at(l[4], mul(kk, m)), at(l[5], mul(n, kk)), at(l[6], mul(n, m)));
        agree("matmul_tn", &(out, a, b, kk, m), |k| {
            let mut o = Buf::new(out);
            (k.matmul_tn(&mut o.now, &vals(a), &vals(b), kk, m), o.written())
        })?;
        // matmul_nt: out (n, p), a (n, m), b (p, m), with p = kk
        let (out, a, b) = (at(l[7], mul(n, kk)), at(l[8], mul(n, m)), at(l[9], mul(kk, m)));
        agree("matmul_nt", &(out, a, b, m), |k| {
            let mut o = Buf::new(out);
            (k.matmul_nt(&mut o.now, &vals(a), &vals(b), m), o.written())
        })?;
        // linear_tanh_backward: h (n, m), dout (n, k), wt (k, m)
        let (hl, dout, wt) = (at(l[10], mul(n, m)), at(l[11], mul(n, kk)), at(l[12], mul(kk, m)));
        agree("linear_tanh_backward", &(hl, dout, wt, m), |k| {
            let mut o = Buf::new(hl);
            (k.linear_tanh_backward(&mut o.now, &vals(dout), &vals(wt), m), o.written())
        })?;
        // transpose: out (m, n), a (n, m)
        let (out, a) = (at(l[13], mul(n, m)), at(l[14], mul(n, m)));
        agree("transpose", &(out, a, m), |k| {
            let mut o = Buf::new(out);
            (k.transpose(&mut o.now, &vals(a), m), o.written())
        })?;
        // bias_backward: dbias (m), dout (n, m)
        let (db, dout) = (at(l[15], Some(m)), at(l[16], mul(n, m)));
        agree("bias_backward", &(db, dout), |k| {
            let mut o = Buf::new(db);
            (k.bias_backward(&mut o.now, &vals(dout)), o.written())
        })?;
    }

    #[test]
    fn batchnorm_kernels(
        n in size(), h in size(), batch in size(), l in lens::<23>(),
    ) {
        let (nh, hh) = (mul(n, h), Some(h));
        // batchnorm_center: hprebn_to_bndiff (n, H), bnmeani (H), sum2 (H)
        let (x, mean, sum2) = (at(l[0], nh), at(l[1], hh), at(l[2], hh));
        agree("batchnorm_center", &(x, mean, sum2), |k| {
            let (mut x, mut s) = (Buf::new(x), Buf::new(sum2));
            let r = k.batchnorm_center(&mut x.now, &vals(mean), &mut s.now);
            (r, wrote(&[&x, &s]))
        })?;
        // batchnorm_var_inv: sum2_to_bnvar_inv (H), `batch` rows
        let v = at(l[2], hh);
        agree("batchnorm_var_inv", &(v, batch), |k| {
            let mut v = Buf::new(v);
            (k.batchnorm_var_inv(&mut v.now, batch), v.written())
        })?;
        // batchnorm_scale_shift_tanh: h (n, H), bndiff_to_bnraw (n, H), the others (H)
        let (ho, raw, inv, gain, bias) =
            (at(l[3], nh), at(l[4], nh), at(l[5], hh), at(l[6], hh), at(l[7], hh));
        agree("batchnorm_scale_shift_tanh", &(ho, raw, inv, gain, bias), |k| {
            let (mut ho, mut raw) = (Buf::new(ho), Buf::new(raw));
            let r = k.batchnorm_scale_shift_tanh(
                &mut ho.now, &mut raw.now, &vals(inv), &vals(gain), &vals(bias),
            );
            (r, wrote(&[&ho, &raw]))
        })?;
        // batchnorm_backward_sums: dbngain, dbnbias (H), dhpreact, bnraw (n, H)
        let (dg, db, dh, raw) = (at(l[8], hh), at(l[9], hh), at(l[10], nh), at(l[11], nh));
        agree("batchnorm_backward_sums", &(dg, db, dh, raw), |k| {
            let (mut dg, mut db) = (Buf::new(dg), Buf::new(db));
            let r = k.batchnorm_backward_sums(&mut dg.now, &mut db.now, &vals(dh), &vals(raw));
            (r, wrote(&[&dg, &db]))
        })?;
        // batchnorm_backward_apply: dhpreact (n, H), bnraw (n, H), the others (H), `batch` rows
        let (d, raw, inv, gain, dg, db) =
            (at(l[12], nh), at(l[13], nh), at(l[14], hh), at(l[15], hh), at(l[16], hh), at(l[17], hh));
        agree("batchnorm_backward_apply", &(d, raw, inv, gain, dg, db, batch), |k| {
            let mut d = Buf::new(d);
            let r = k.batchnorm_backward_apply(
                &mut d.now, &vals(raw), &vals(inv), &vals(gain), &vals(dg), &vals(db), batch,
            );
            (r, d.written())
        })?;
        // batchnorm_tanh_inference: hprebn_to_h (n, H), the others (H)
        let (x, mean, inv, gain, bias) =
            (at(l[18], nh), at(l[19], hh), at(l[20], hh), at(l[21], hh), at(l[22], hh));
        agree("batchnorm_tanh_inference", &(x, mean, inv, gain, bias), |k| {
            let mut x = Buf::new(x);
            let r = k.batchnorm_tanh_inference(&mut x.now, &vals(mean), &vals(inv), &vals(gain), &vals(bias));
            (r, x.written())
        })?;
    }

    #[test]
    fn cross_entropy_kernels(
        n in size(), v in size(), batch in size(), l in lens::<4>(), pattern in token_pattern(),
    ) {
        // cross_entropy_sum: logits_to_probs (n, V), yb (n)
        let (logits, yb) = (at(l[0], mul(n, v)), at(l[1], Some(n)));
        let y = toks(&pattern, yb);
        agree("cross_entropy_sum", &(logits, yb, &y), |k| {
            let mut x = Buf::new(logits);
            (k.cross_entropy_sum(&mut x.now, &y).map(|_| ()), x.written())
        })?;
        // cross_entropy_backward: probs_to_dlogits (n, V), yb (n), `batch` rows
        let (probs, yb) = (at(l[2], mul(n, v)), at(l[3], Some(n)));
        let y = toks(&pattern, yb);
        agree("cross_entropy_backward", &(probs, yb, &y, batch), |k| {
            let mut x = Buf::new(probs);
            (k.cross_entropy_backward(&mut x.now, &y, batch), x.written())
        })?;
    }

    /// The one step: `Step::from_flat` and `Kernels::train_step` with arbitrary dims (the
    /// parameters' and the step's, mostly equal), batch sizes and lengths. A consistent call
    /// (valid dims, n >= 2, ids < V) is `Ok`; the parameters are untouched by a refused one.
    #[test]
    fn the_training_step(
        pdims in dims(), sdims in dims(), same in prop::bool::weighted(0.8), n in batch_rows(),
        l in lens::<4>(), pattern in step_token_pattern(),
    ) {
        let sdims = if same { pdims } else { sdims };
        let plen = at(l[0], pdims.validate().ok().map(|d| d.num_params()));
        let slen = at(l[1], sdims.validate().ok().and_then(|d| Step::flat_len(&d, n)));
        let (xl, yl) = (at(l[2], mul(n, sdims.context)), at(l[3], Some(n)));
        let (xb, yb) = (toks(&pattern, xl), toks(&pattern, yl));
        let args = (pdims, sdims, n, plen, slen, xl, yl);
        let refused = agree("train_step", &args, |k| {
            let mut p = Buf::new(plen);
            let mut scratch = vals(slen);
            let r = (|| {
                let mut params = ParamsMut::from_flat(pdims, &mut p.now)?;
                let mut step = Step::from_flat(sdims, n, &mut scratch)?;
                k.train_step(&InTurn, &mut params, &mut step, &xb, &yb, 0.1).map(|_| ())
            })();
            (r, p.written())
        })?;
        let consistent = l.iter().all(|x| x.is_none())
            && same
            && pdims.validate().is_ok()
            && (2..=MAX_LEN).contains(&n)
            && slen > 0
            && xb.iter().chain(&yb).all(|&t| (t as usize) < pdims.vocab);
        if consistent {
            prop_assert_eq!(refused, None, "{:?}", args);
        }
    }

    /// The reference step and its pieces (`ParamsRef`/`ParamsMut::from_flat`,
    /// `ActsMut::from_flat`, `train::forward`, `backward`, `sgd_update`, `train_step`,
    /// `train_step_in_place`) with arbitrary dims, batch sizes and lengths: `Err`, never a panic;
    /// a consistent call is `Ok`.
    #[test]
    fn the_reference_step(
        pdims in dims(), other in dims(), which in 0usize..8, n in batch_rows(),
        l in lens::<5>(), pattern in step_token_pattern(),
    ) {
        // one of the three views (params, grads, acts) gets other dims now and then
        let (gdims, adims) = match which {
            0 => (other, pdims),
            1 => (pdims, other),
            _ => (pdims, pdims),
        };
        let num = |d: Dims| d.validate().ok().map(|d| d.num_params());
        let (plen, glen) = (at(l[0], num(pdims)), at(l[1], num(gdims)));
        let alen = at(l[2], adims.validate().ok().filter(|_| n <= MAX_LEN).map(|d| ActsMut::<f32>::flat_len(&d, n)));
        let (xl, yl) = (at(l[3], mul(n, adims.context)), at(l[4], Some(n)));
        let (xb, yb) = (toks(&pattern, xl), toks(&pattern, yl));
        let args = (pdims, gdims, adims, n, plen, glen, alen, xl, yl);
        let (mut p, mut g, mut a) = (vals(plen), vals(glen), vals(alen));
        let results = no_panic("the reference step", &args, || {
            let r = ParamsRef::from_flat(pdims, &p).map(|_| ());
            let mut params = ParamsMut::from_flat(pdims, &mut p)?;
            let mut grads = ParamsMut::from_flat(gdims, &mut g)?;
            let mut acts = ActsMut::from_flat(adims, n, &mut a)?;
            Ok::<_, Error>([
                r,
                train::forward(params.as_ref(), &mut acts, &xb, &yb).map(|_| ()),
                train::backward(params.as_ref(), &mut grads, &mut acts, &xb, &yb),
                train::sgd_update(&mut params, grads.as_ref(), 0.1),
                train::train_step(&mut params, &mut grads, &mut acts, &xb, &yb, 0.1).map(|_| ()),
                train::train_step_in_place(&mut params, &mut acts, &xb, &yb, 0.1).map(|_| ()),
            ])
        })?;
        let consistent = l.iter().all(|x| x.is_none())
            && which >= 2
            && pdims.validate().is_ok()
            && (2..=MAX_LEN).contains(&n)
            && alen > 0
            && xb.iter().chain(&yb).all(|&t| (t as usize) < pdims.vocab);
        if consistent {
            prop_assert_eq!(results, Ok([Ok(()); 6]), "{:?}", args);
        }
    }

    /// `Step::flat_len` for dims that validate and any batch size: `None` exactly when the
    /// length overflows `usize`, else the length (no panic, no wrapped value).
    // Dims that do not validate are left out: `flat_len` computes `num_params()` and T*E
    // unchecked before `from_flat` validates, so it can wrap (Dims { vocab: 1, context: 0,
    // embedding: usize::MAX, hidden: 0 } gives Some(2)); step.rs is not this test's to change.
    #[test]
    fn the_step_length(d in dims(), n in batch_rows()) {
        if d.validate().is_err() {
            return Ok(());
        }
        let got = no_panic("Step::flat_len", &(d, n), || Step::flat_len(&d, n))?;
        // the same sum in u128, checked (None: it overflows u128, so usize too)
        let want = (|| {
            let [t, e, h, v] = [d.context, d.embedding, d.hidden, d.vocab].map(|x| x as u128);
            let rows = makemore_core::step::shard_rows(n).max(1) as u128;
            let params = v
                .checked_mul(e)?
                .checked_add(t.checked_mul(e)?.checked_mul(h)?)?
                .checked_add(h.checked_mul(v + 3)?)?
                .checked_add(v)?;
            let width = t.checked_mul(e)?.checked_add(2 * h)?.checked_add(v)?;
            let shard = rows.checked_mul(width)?.checked_add(3 * h + 1)?;
            let shards = (n as u128).div_ceil(rows);
            // the batch's gradient and at most GRAD_SLOTS slots
            let copies = 1 + shards.saturating_sub(1).min(makemore_core::step::GRAD_SLOTS as u128);
            let len = shards
                .checked_mul(shard)?
                .checked_add(copies.checked_mul(params)?)?
                .checked_add(v.checked_mul(h)?)?
                .checked_add(4 * h)?;
            usize::try_from(len).ok()
        })();
        prop_assert_eq!(got, want, "{:?}, n = {}", d, n);
    }
}
