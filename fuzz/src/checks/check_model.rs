//! Fuzz target `model`: forward, both backward paths (the fused one, storing gradients or
//! updating in place, and the atomic one of Exercise 1), batchnorm calibration, the evaluator,
//! inference and sampling, on arbitrary parameters (NaN, infinities, subnormals included) and
//! arbitrary token ids.
//!
//! Shared, as a plain function, by the fuzz target and by the stable replay test
//! (`core/tests/fuzz_replay.rs` includes this file), so it uses only `makemore_core` and std.

use makemore_core::atomic::{AtomicGrads, AtomicTape};
use makemore_core::eval::{self, Evaluator};
use makemore_core::infer::{sample_from_logits, BnCalibration, Inference};
use makemore_core::math::ln_f32;
use makemore_core::simd::{Isa, Kernels};
use makemore_core::train::{backward, forward, sgd_update, train_step_in_place, ActsMut};
use makemore_core::{Dims, Error, Params, ParamsMut, ParamsRef};

/// Reads the fuzzer's bytes as values; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::from(self.u8()) % (hi - lo + 1)
    }

    /// A float: half the time one of the special values, else any bit pattern.
    fn f32(&mut self) -> f32 {
        const SPECIAL: [f32; 16] = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            1e-45, // the smallest subnormal
            -1e-40,
            f32::MAX,
            f32::MIN,
            1e20,
            -1e-20,
            88.8,
        ];
        let tag = self.u8();
        if tag < 128 {
            SPECIAL[usize::from(tag) % SPECIAL.len()]
        } else {
            f32::from_bits(self.u32())
        }
    }

    /// A token id: mostly below `vocab`, sometimes any byte.
    fn token(&mut self, vocab: usize) -> u8 {
        let b = self.u8();
        if b >= 240 {
            self.u8()
        } else {
            (usize::from(b) % vocab) as u8
        }
    }
}

/// The error `check_tokens` must give for the first id >= `vocab` of `a`, else of `b`.
fn expected_token_error(a: &[u8], b: &[u8], vocab: usize) -> Option<Error> {
    for buf in [a, b] {
        if let Some(index) = buf.iter().position(|&t| usize::from(t) >= vocab) {
            return Some(Error::TokenOutOfRange {
                index,
                token: buf[index],
                vocab,
            });
        }
    }
    None
}

/// Same bits, or both NaN (NaN payloads may differ between orders of operations).
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Never panics for any `bytes`; token ids >= V give [`Error::TokenOutOfRange`] naming the
/// first bad id, valid ids succeed whatever the parameter values, and the in-place step equals
/// backward-then-update.
pub fn check(bytes: &[u8]) {
    let mut inp = Input(bytes);
    let dims = Dims {
        vocab: inp.range(1, 9),
        context: inp.range(1, 3),
        embedding: inp.range(1, 3),
        hidden: inp.range(1, 5),
    };
    let n = inp.range(2, 5);
    fused(&mut inp, dims, n);
    inference(&mut inp, dims);
    atomic(&mut inp);
}

fn fused(inp: &mut Input<'_>, dims: Dims, n: usize) {
    let mut params: Vec<f32> = (0..dims.num_params()).map(|_| inp.f32()).collect();
    let xb: Vec<u8> = (0..n * dims.context)
        .map(|_| inp.token(dims.vocab))
        .collect();
    let yb: Vec<u8> = (0..n).map(|_| inp.token(dims.vocab)).collect();
    let lr = inp.f32();
    let bad = expected_token_error(&xb, &yb, dims.vocab);

    let mut acts = vec![f32::NAN; ActsMut::<f32>::flat_len(&dims, n)];
    let mut a = ActsMut::from_flat(dims, n, &mut acts).expect("valid dims and n >= 2");
    let p = ParamsRef::from_flat(dims, &params).expect("flat length");
    let loss = forward(p, &mut a, &xb, &yb);
    match bad {
        Some(e) => {
            assert_eq!(loss, Err(e));
            let mut p2 = params.clone();
            let r = train_step_in_place(
                &mut ParamsMut::from_flat(dims, &mut p2).expect("flat"),
                &mut a,
                &xb,
                &yb,
                lr,
            );
            assert_eq!(r, Err(e));
            assert!(same(&params, &p2), "a refused step changed the parameters");
            return;
        }
        None => assert!(loss.is_ok(), "{loss:?}"),
    }
    // backward, then the update
    let mut grads = vec![f32::NAN; dims.num_params()];
    let mut g = ParamsMut::from_flat(dims, &mut grads).expect("flat");
    backward(p, &mut g, &mut a, &xb, &yb).expect("valid batch");
    let mut stored = params.clone();
    sgd_update(
        &mut ParamsMut::from_flat(dims, &mut stored).expect("flat"),
        g.as_ref(),
        lr,
    )
    .expect("same dims");
    // the in-place step from the same parameters
    let mut acts2 = vec![f32::NAN; ActsMut::<f32>::flat_len(&dims, n)];
    let mut a2 = ActsMut::from_flat(dims, n, &mut acts2).expect("dims");
    let loss2 = train_step_in_place(
        &mut ParamsMut::from_flat(dims, &mut params).expect("flat"),
        &mut a2,
        &xb,
        &yb,
        lr,
    )
    .expect("valid batch");
    let loss = loss.unwrap_or(0.0);
    assert!(same(&[loss], &[loss2]));
    assert!(
        same(&params, &stored),
        "in-place step differs from backward + sgd"
    );
}

fn inference(inp: &mut Input<'_>, dims: Dims) {
    let params: Vec<f32> = (0..dims.num_params()).map(|_| inp.f32()).collect();
    let p = ParamsRef::from_flat(dims, &params).expect("flat");
    let rows = inp.range(1, 4);
    let x: Vec<u8> = (0..rows * dims.context)
        .map(|_| inp.token(dims.vocab))
        .collect();
    let y: Vec<u8> = (0..rows).map(|_| inp.token(dims.vocab)).collect();
    let bad = expected_token_error(&x, &y, dims.vocab);

    // calibration over the rows
    let (mut mean64, mut m2) = (vec![0f64; dims.hidden], vec![0f64; dims.hidden]);
    let mut cal = BnCalibration::new(&mut mean64, &mut m2).expect("H >= 1");
    let mut scratch = vec![0f32; dims.hidden * inp.range(1, 3)];
    let added = cal.add_rows(p, &x, &mut scratch);
    match expected_token_error(&x, &[], dims.vocab) {
        Some(e) => assert_eq!(added, Err(e)),
        None => assert_eq!(added, Ok(())),
    }
    let (mut bnmean, mut bnvar) = (vec![0f32; dims.hidden], vec![0f32; dims.hidden]);
    let finished = cal.finish(&mut bnmean, &mut bnvar);
    assert_eq!(finished.is_ok(), cal.count() >= 2);
    if finished.is_err() || inp.u8() < 64 {
        // arbitrary statistics instead
        for v in bnmean.iter_mut().chain(bnvar.iter_mut()) {
            *v = inp.f32();
        }
    }

    let mut bnvar_inv = vec![0f32; dims.hidden];
    let scratch_rows = inp.range(1, 3);
    let mut h = vec![0f32; scratch_rows * dims.hidden];
    let mut logits = vec![0f32; scratch_rows * dims.vocab];
    let loss = evaluate(p, &bnmean, &bnvar, &x, &y, scratch_rows);
    match bad {
        Some(e) => assert_eq!(loss, Err(e)),
        None => assert!(loss.is_ok()),
    }
    let mut inf = Inference::new(p, &bnmean, &bnvar, &mut bnvar_inv, &mut h, &mut logits)
        .expect("scratch sized for the dims");
    let context: Vec<u8> = x.iter().copied().take(dims.context).collect();
    let logits = inf.next_logits(&context);
    match expected_token_error(&context, &[], dims.vocab) {
        Some(e) => assert_eq!(logits.map(|_| ()), Err(e)),
        None => assert_eq!(logits.map(|l| l.len()).ok(), Some(dims.vocab)),
    }

    // sampling a name: arbitrary temperature, top-k, prefix and draws
    let temperature = inp.f32();
    let top_k = usize::from(inp.u8() % 12);
    let prefix: Vec<u8> = (0..inp.range(0, 3))
        .map(|_| inp.token(dims.vocab))
        .collect();
    let mut out = vec![0u8; inp.range(0, 12)];
    let draws: Vec<u32> = (0..16).map(|_| inp.u32()).collect();
    let mut i = 0;
    let uniform = || {
        i += 1;
        f64::from(draws[i % draws.len()]) / 4_294_967_296.0
    };
    let r = inf.sample_name(&prefix, temperature, top_k, uniform, &mut out);
    if let Ok(len) = r {
        assert!(len >= prefix.len() && len <= out.len());
        assert!(out[..len].iter().all(|&t| usize::from(t) < dims.vocab));
        assert_eq!(&out[..prefix.len()], prefix.as_slice());
    } else if let Some(e) = expected_token_error(&prefix, &[], dims.vocab) {
        assert_eq!(r, Err(e));
    }
    let valid_prefix =
        expected_token_error(&prefix, &[], dims.vocab).is_none() && !prefix.contains(&0);
    if !(temperature > 0.0 && temperature.is_finite()) && prefix.len() < out.len() && valid_prefix {
        assert!(r.is_err(), "temperature {temperature} accepted");
    }

    // one draw from arbitrary logits and an arbitrary u (any f64, NaN included)
    let mut l: Vec<f32> = (0..dims.vocab).map(|_| inp.f32()).collect();
    let has_nan = l.iter().any(|x| x.is_nan());
    let u = f64::from_bits(u64::from(inp.u32()) << 32 | u64::from(inp.u32()));
    match sample_from_logits(&mut l, temperature, top_k, u) {
        Ok(ix) => {
            assert!(usize::from(ix) < dims.vocab);
            assert!((0.0..1.0).contains(&u) && !has_nan);
            assert!(temperature > 0.0 && temperature.is_finite());
        }
        Err(e) => assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}"),
    }
}

/// The evaluator over `x` (every row its own context), `block` rows at a time, on every path
/// this CPU has: calibration (an error exactly for a bad token of `x`), then `nll` and the loss
/// sum. Every path gives the same Ok/Err; returns the scalar path's.
fn evaluate(
    p: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    x: &[u8],
    y: &[u8],
    block: usize,
) -> Result<f64, Error> {
    let dims = p.dims();
    let (hd, v) = (dims.hidden, dims.vocab);
    let rows = x.len() / dims.context;
    let ids: Vec<u32> = (0..rows as u32).collect();
    let mut results = Vec::new();
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let k = Kernels::new(isa).expect("an available path");
        let mut table = vec![0f32; eval::table_len(&dims)];
        let ev = Evaluator::new(k, p, &mut table, ln_f32).expect("tables sized for the dims");
        let (mut mean, mut m2) = (vec![0f64; hd], vec![0f64; hd]);
        let mut acc = BnCalibration::new(&mut mean, &mut m2).expect("H >= 1");
        let (mut hprebn, mut sums) = (vec![0f32; block * hd], vec![0f64; 2 * hd]);
        let calibrated = ev.calibrate(&mut acc, x, &[], &mut hprebn, &mut sums);
        match expected_token_error(x, &[], v) {
            Some(e) => assert_eq!(calibrated, Err(e)),
            None => assert_eq!((calibrated, acc.count()), (Ok(()), rows as u64)),
        }
        let mut bnvar_inv = vec![0f32; hd];
        ev.bnvar_inv(&mut bnvar_inv, bnvar).expect("H values");
        let mut nll = vec![0f32; rows * v];
        let mut scratch = vec![0f32; eval::nll_scratch_len(&dims, block)];
        let loss = ev
            .nll(&mut nll, x, bnmean, &bnvar_inv, &mut scratch)
            .and_then(|()| eval::loss_sum(&nll, v, &ids, y));
        results.push((isa, loss));
    }
    let (_, first) = results[0];
    for (isa, r) in &results {
        assert_eq!(r.is_ok(), first.is_ok(), "{isa}: {r:?} vs scalar {first:?}");
    }
    first
}

/// Exercise 1's atomic forward and backward at one small fixed size: N=3, V=5, T=2, E=2, H=3.
fn atomic(inp: &mut Input<'_>) {
    type P = Params<f32, 5, 2, 2, 4, 3>;
    let mut params = Box::new(P::ZERO);
    for t in params.view_mut().tensors_mut() {
        for x in t.iter_mut() {
            *x = inp.f32();
        }
    }
    let mut xb = [[0u8; 2]; 3];
    for row in xb.iter_mut() {
        for t in row.iter_mut() {
            *t = inp.token(5);
        }
    }
    let mut yb = [0u8; 3];
    for t in yb.iter_mut() {
        *t = inp.token(5);
    }
    let bad = expected_token_error(xb.as_flattened(), &yb, 5);
    let mut tape = Box::new(AtomicTape::<f32, 3, 5, 2, 2, 4, 3>::ZERO);
    let loss = tape.forward(&params, &xb, &yb);
    let mut grads = Box::new(AtomicGrads::<f32, 3, 5, 2, 2, 4, 3>::ZERO);
    let back = grads.backward(&tape, &params, &xb, &yb);
    match bad {
        Some(e) => {
            assert_eq!(loss, Err(e));
            assert_eq!(back, Err(e));
        }
        None => {
            assert!(loss.is_ok() && back.is_ok());
        }
    }
}
