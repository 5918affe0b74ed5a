//! The evaluator (tables, vector kernels, weighted rows, distinct contexts) against the plain
//! inference path, its dedup (dense and sorted), and its contract: bad lengths and ids are
//! errors, not panics.

mod common;

use common::notebook_params;
use makemore_core::eval::{
    self, count_ids, dedup_sorted, dense_id_table, dense_ids, loss_sum, nll_scratch_len,
    sorted_ids, table_len, weighted_contexts, ContextKeys, Evaluator,
};
use makemore_core::infer::{BnCalibration, Inference};
use makemore_core::math::ln_f32;
use makemore_core::rng::{Rng, SplitMix64};
use makemore_core::simd::{Isa, Kernels};
use makemore_core::{Error, ParamsRef};

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u8> {
    let mut r = SplitMix64(seed);
    (0..n)
        .map(|_| (r.next_u64() % vocab as u64) as u8)
        .collect()
}

fn kernels() -> impl Iterator<Item = Kernels> {
    Isa::ALL
        .into_iter()
        .filter(|i| i.is_available())
        .map(|i| Kernels::new(i).unwrap())
}

/// The sum of the losses of rows `x` (rows, T), `y` through the plain path: `next_logits` of
/// each row and log-sum-exp in f64.
fn plain_loss_sum(inf: &mut Inference<'_, f32>, x: &[u8], y: &[u8]) -> f64 {
    let t = inf.dims().context;
    let mut sum = 0.0;
    for (ctx, &target) in x.chunks(t).zip(y) {
        let l = inf.next_logits(ctx).unwrap();
        let m = l.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let lse = m + l.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        sum += lse - l[target as usize] as f64;
    }
    sum
}

/// Calibration and loss of the evaluator agree with `BnCalibration::add_rows` and the plain
/// `Inference` path on every instruction set; counting a row twice equals listing it twice.
#[test]
fn evaluator_matches_the_plain_inference_path() {
    let p = notebook_params::<f32, 27, 3, 10, 30, 64>(5);
    let params = p.view();
    let dims = params.dims();
    // Miri interprets every operation: fewer rows there.
    let rows = if cfg!(miri) { 40 } else { 1000 };
    let half = rows / 2;
    let x = tokens(rows * 3, 27, 1);
    let y = tokens(rows, 27, 2);

    // reference: the plain path
    let (mut m, mut m2) = (vec![0.0; 64], vec![0.0; 64]);
    let mut acc = BnCalibration::new(&mut m, &mut m2).unwrap();
    acc.add_rows(params, &x, &mut vec![0f32; 64 * 64]).unwrap();
    let (mut bnmean, mut bnvar) = (vec![0f32; 64], vec![0f32; 64]);
    acc.finish(&mut bnmean, &mut bnvar).unwrap();
    let (mut inv, mut h, mut logits) = (vec![0f32; 64], vec![0f32; 64], vec![0f32; 27]);
    let mut inf = Inference::new(params, &bnmean, &bnvar, &mut inv, &mut h, &mut logits).unwrap();
    let want = plain_loss_sum(&mut inf, &x, &y);

    // the first half listed twice, then counted twice
    let dup: Vec<u8> = x[..3 * half]
        .iter()
        .chain(&x[..3 * half])
        .copied()
        .collect();
    let counts = vec![2u32; half];
    for k in kernels() {
        let isa = k.isa();
        let mut table = vec![f32::NAN; table_len(&dims)];
        let ev = Evaluator::new(k, params, &mut table, ln_f32).unwrap();
        // 37 rows at a time: blocks and a tail
        let (mut hprebn, mut sums) = (vec![f32::NAN; 37 * 64], vec![f64::NAN; 128]);
        let (mut m, mut m2) = (vec![0.0; 64], vec![0.0; 64]);
        let mut acc = BnCalibration::new(&mut m, &mut m2).unwrap();
        ev.calibrate(&mut acc, &x, &[], &mut hprebn, &mut sums)
            .unwrap();
        let (mut mean_k, mut var_k) = (vec![0f32; 64], vec![0f32; 64]);
        acc.finish(&mut mean_k, &mut var_k).unwrap();
        for j in 0..64 {
            assert!(
                (mean_k[j] - bnmean[j]).abs() <= 1e-5 * (1.0 + bnmean[j].abs()),
                "{isa} mean {j}"
            );
            assert!(
                (var_k[j] - bnvar[j]).abs() <= 1e-5 * bnvar[j],
                "{isa} var {j}"
            );
        }

        // every row as its own context: nll, then one value per row
        let mut bnvar_inv = vec![0f32; 64];
        ev.bnvar_inv(&mut bnvar_inv, &bnvar).unwrap();
        let mut nll = vec![f32::NAN; rows * 27];
        let mut scratch = vec![f32::NAN; nll_scratch_len(&dims, 37)];
        ev.nll(&mut nll, &x, &bnmean, &bnvar_inv, &mut scratch)
            .unwrap();
        let ids: Vec<u32> = (0..rows as u32).collect();
        let got = loss_sum(&nll, 27, &ids, &y).unwrap();
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "{isa}: loss sum {got} vs {want}"
        );
        let plain: f64 = ids
            .iter()
            .zip(&y)
            .map(|(&i, &t)| nll[i as usize * 27 + t as usize] as f64)
            .sum();
        assert!((got - plain).abs() <= 1e-12 * plain, "{isa}: four sums");

        // std's ln (as the CLI runs it) differs from the core's in the last bit at most
        let mut table_std = vec![0f32; table_len(&dims)];
        let ev_std = Evaluator::new(k, params, &mut table_std, f32::ln).unwrap();
        let mut nll_std = vec![f32::NAN; rows * 27];
        ev_std
            .nll(&mut nll_std, &x, &bnmean, &bnvar_inv, &mut scratch)
            .unwrap();
        for (a, b) in nll.iter().zip(&nll_std) {
            assert!(
                (a - b).abs() <= 4.0 * f32::EPSILON * a.abs().max(1.0),
                "{a} vs {b}"
            );
        }

        // weights: the first half counted twice, vs listed twice
        let (mut a1, mut b1) = (vec![0.0; 64], vec![0.0; 64]);
        let mut listed = BnCalibration::new(&mut a1, &mut b1).unwrap();
        ev.calibrate(&mut listed, &dup, &[], &mut hprebn, &mut sums)
            .unwrap();
        let (mut a2, mut b2) = (vec![0.0; 64], vec![0.0; 64]);
        let mut counted = BnCalibration::new(&mut a2, &mut b2).unwrap();
        ev.calibrate(
            &mut counted,
            &x[..3 * half],
            &counts,
            &mut hprebn,
            &mut sums,
        )
        .unwrap();
        assert_eq!(listed.count(), counted.count());
        let (mut ml, mut vl, mut mc, mut vc) = (
            vec![0f32; 64],
            vec![0f32; 64],
            vec![0f32; 64],
            vec![0f32; 64],
        );
        listed.finish(&mut ml, &mut vl).unwrap();
        counted.finish(&mut mc, &mut vc).unwrap();
        for j in 0..64 {
            assert!(
                (ml[j] - mc[j]).abs() <= 1e-6 * (1.0 + ml[j].abs()),
                "{isa} weighted mean {j}"
            );
            assert!(
                (vl[j] - vc[j]).abs() <= 1e-6 * vl[j],
                "{isa} weighted var {j}"
            );
        }
    }
}

/// The distinct contexts of `x` and each row's id, through the bitset (in two chunks sharing
/// one bitset) or through the sort.
fn dedup(keys: ContextKeys, x: &[u8], dense: bool) -> (Vec<u8>, Vec<u32>) {
    let t = keys.context();
    let rows = x.len() / t;
    let mut ids = vec![u32::MAX; rows];
    let mut distinct;
    if dense {
        let mut bits = vec![0u64; keys.dense_words().unwrap()];
        let (x1, x2) = x.split_at(rows / 2 * t);
        let (i1, i2) = ids.split_at_mut(rows / 2);
        keys.mark_dense(x1, i1, &mut bits).unwrap();
        keys.mark_dense(x2, i2, &mut bits).unwrap();
        let mut id_of = vec![0u32; bits.len() * 64];
        let n = dense_id_table(&bits, &mut id_of).unwrap();
        distinct = vec![0u8; n * t];
        keys.dense_contexts(&bits, &mut distinct).unwrap();
        dense_ids(&id_of, &mut ids).unwrap();
    } else {
        let mut row_keys = vec![0u128; rows];
        keys.keys(x, &mut row_keys).unwrap();
        let mut all = row_keys.clone();
        all.sort_unstable();
        let n = dedup_sorted(&mut all);
        all.truncate(n);
        distinct = vec![0u8; n * t];
        keys.sorted_contexts(&all, &mut distinct).unwrap();
        sorted_ids(&all, &row_keys, &mut ids).unwrap();
    }
    (distinct, ids)
}

/// The bitset and the sort give the same distinct contexts, in increasing order, each once,
/// and every row maps back to its own context.
#[test]
fn dense_and_sorted_dedup_agree() {
    for (t, vocab, rows) in [
        (1, 5, 0),
        (3, 27, 20_000),
        (2, 7, 50),
        (5, 3, 1000),
        (1, 1, 9),
    ] {
        let x = tokens(rows * t, vocab, 7);
        let keys = ContextKeys::new(t, vocab).unwrap();
        let dense = dedup(keys, &x, true);
        let sorted = dedup(keys, &x, false);
        assert_eq!(dense, sorted, "t={t} vocab={vocab}");
        let (distinct, ids) = dense;
        let rows_of = |d: &[u8]| d.chunks(t).map(<[u8]>::to_vec).collect::<Vec<_>>();
        let d = rows_of(&distinct);
        assert!(d.windows(2).all(|w| w[0] < w[1]), "increasing, each once");
        for (row, &i) in x.chunks(t).zip(&ids) {
            assert_eq!(row, &d[i as usize][..]);
        }
    }
    // a 16-token context of 256 symbols: the largest key, sorted only
    let keys = ContextKeys::new(16, 256).unwrap();
    assert_eq!(keys.dense_words(), None);
    let x = [[255u8; 16], [0u8; 16]].concat();
    let (distinct, ids) = dedup(keys, &x, false);
    assert_eq!(distinct, [[0u8; 16], [255u8; 16]].concat());
    assert_eq!(ids, [1, 0]);
}

/// Counting rows per context and listing the contexts that occur, with their counts.
#[test]
fn counts_and_weighted_contexts() {
    let mut counts = vec![0u32; 4];
    count_ids(&[3, 1, 3, 3], &mut counts).unwrap();
    assert_eq!(counts, [0, 1, 0, 3]);
    let distinct = [0, 1, 2, 3, 4, 5, 6, 7];
    let (mut x, mut w) = (vec![9u8; 8], vec![9u32; 4]);
    let n = weighted_contexts(&mut x, &mut w, &distinct, 2, &counts).unwrap();
    assert_eq!((n, &x[..4], &w[..2]), (2, &[2, 3, 6, 7][..], &[1, 3][..]));
}

/// Wrong lengths, ids, tokens and sizes are errors that name the problem, not panics.
#[test]
fn bad_input_is_an_error() {
    let p = notebook_params::<f32, 27, 3, 10, 30, 16>(5);
    let params: ParamsRef<'_, f32> = p.view();
    let dims = params.dims();
    let k = Kernels::best();
    let short = |what| Error::LengthMismatch {
        what,
        expected: table_len(&dims),
        got: table_len(&dims) - 1,
    };
    let mut table = vec![0f32; table_len(&dims) - 1];
    assert_eq!(
        eval::first_layer_tables(&k, params, &mut table),
        Err(short("first-layer tables (T*V*H)"))
    );
    assert!(Evaluator::new(k, params, &mut table, ln_f32).is_err());
    let mut table = vec![0f32; table_len(&dims)];
    let ev = Evaluator::new(k, params, &mut table, ln_f32).unwrap();

    // calibrate
    let (mut m, mut m2) = (vec![0.0; 16], vec![0.0; 16]);
    let mut acc = BnCalibration::new(&mut m, &mut m2).unwrap();
    let (mut hp, mut sums) = (vec![0f32; 16], vec![0f64; 32]);
    let x = [1u8, 2, 3, 4, 5, 6];
    assert!(ev
        .calibrate(&mut acc, &x[..5], &[], &mut hp, &mut sums)
        .is_err());
    assert!(ev
        .calibrate(&mut acc, &x, &[1], &mut hp, &mut sums)
        .is_err());
    assert!(ev.calibrate(&mut acc, &x, &[], &mut [], &mut sums).is_err());
    assert!(ev
        .calibrate(&mut acc, &x, &[], &mut hp, &mut [0.0; 31])
        .is_err());
    assert_eq!(
        ev.calibrate(&mut acc, &[1, 2, 27], &[], &mut hp, &mut sums),
        Err(Error::TokenOutOfRange {
            index: 2,
            token: 27,
            vocab: 27
        })
    );
    let (mut m, mut m2) = (vec![0.0; 15], vec![0.0; 15]);
    let mut narrow = BnCalibration::new(&mut m, &mut m2).unwrap();
    assert_eq!(
        ev.calibrate(&mut narrow, &x, &[], &mut hp, &mut sums),
        Err(Error::DimsMismatch)
    );
    assert_eq!(ev.calibrate(&mut acc, &[], &[], &mut [], &mut sums), Ok(()));
    assert_eq!(acc.count(), 0);

    // nll
    let (mean, inv) = (vec![0f32; 16], vec![1f32; 16]);
    let mut s = vec![0f32; nll_scratch_len(&dims, 1)];
    let mut nll = vec![0f32; 2 * 27];
    assert!(ev.bnvar_inv(&mut [0f32; 16], &[1.0; 15]).is_err());
    assert!(ev.bnvar_inv(&mut [0f32; 15], &[1.0; 16]).is_err());
    assert!(ev.nll(&mut nll[1..], &x, &mean, &inv, &mut s).is_err());
    assert!(ev.nll(&mut nll, &x, &mean[1..], &inv, &mut s).is_err());
    assert!(ev.nll(&mut nll, &x, &mean, &inv[1..], &mut s).is_err());
    assert!(ev.nll(&mut nll, &x, &mean, &inv, &mut s[1..]).is_err());
    assert!(ev
        .nll(&mut nll, &[0, 0, 0, 0, 0, 30], &mean, &inv, &mut s)
        .is_err());
    assert_eq!(ev.nll(&mut [], &[], &mean, &inv, &mut []), Ok(()));
    ev.nll(&mut nll, &x, &mean, &inv, &mut s).unwrap();

    // loss_sum
    assert!(loss_sum(&nll, 0, &[0], &[0]).is_err());
    assert!(loss_sum(&nll[1..], 27, &[0], &[0]).is_err());
    assert!(loss_sum(&nll, 27, &[0, 1], &[0]).is_err());
    assert!(loss_sum(&nll, 27, &[2], &[0]).is_err());
    assert_eq!(
        loss_sum(&nll, 27, &[0, 1], &[3, 27]),
        Err(Error::TokenOutOfRange {
            index: 1,
            token: 27,
            vocab: 27
        })
    );
    assert_eq!(loss_sum(&nll, 27, &[], &[]), Ok(0.0));
    assert_eq!(loss_sum(&nll, 27, &[1], &[3]), Ok(nll[27 + 3] as f64));

    // dedup
    for (t, v) in [(0, 27), (17, 27), (3, 0), (3, 257)] {
        assert!(ContextKeys::new(t, v).is_err(), "t={t} vocab={v}");
    }
    let keys = ContextKeys::new(3, 27).unwrap();
    let words = keys.dense_words().unwrap();
    let (mut bits, mut ids) = (vec![0u64; words], vec![0u32; 2]);
    assert!(keys.mark_dense(&x[..5], &mut ids, &mut bits).is_err());
    assert!(keys.mark_dense(&x, &mut ids[1..], &mut bits).is_err());
    assert!(keys.mark_dense(&x, &mut ids, &mut bits[1..]).is_err());
    assert!(keys
        .mark_dense(&[0, 0, 0, 27, 0, 0], &mut ids, &mut bits)
        .is_err());
    assert!(keys.keys(&x, &mut [0u128; 1]).is_err());
    keys.mark_dense(&x, &mut ids, &mut bits).unwrap();
    let mut id_of = vec![0u32; words * 64];
    assert!(dense_id_table(&bits, &mut id_of[1..]).is_err());
    assert_eq!(dense_id_table(&bits, &mut id_of), Ok(2));
    assert!(dense_ids(&id_of, &mut [5]).is_err(), "a key not in the set");
    assert!(dense_ids(&id_of, &mut [u32::MAX]).is_err());
    assert!(keys.dense_contexts(&bits, &mut [0u8; 5]).is_err());
    assert!(keys
        .sorted_contexts(&[27 * 27 * 27], &mut [0u8; 3])
        .is_err());
    assert!(sorted_ids(&[1, 2], &[3], &mut [0]).is_err());
    assert!(sorted_ids(&[1, 2], &[2], &mut []).is_err());
    assert!(count_ids(&[4], &mut [0u32; 4]).is_err());
    // counts saturate, and a saturated count is refused
    let mut full = [u32::MAX - 1, 0];
    count_ids(&[0, 0, 1], &mut full).unwrap();
    assert_eq!(full, [u32::MAX, 1]);
    let (mut xs, mut w) = (vec![0u8; 6], vec![0u32; 2]);
    assert!(weighted_contexts(&mut xs, &mut w, &x, 3, &full).is_err());
    assert!(weighted_contexts(&mut xs, &mut w, &x, 3, &[1]).is_err());
    assert!(weighted_contexts(&mut xs[1..], &mut w, &x, 3, &[1, 1]).is_err());
    assert!(weighted_contexts(&mut xs, &mut w[1..], &x, 3, &[1, 1]).is_err());
    assert!(weighted_contexts(&mut xs, &mut w, &x, 0, &[1, 1]).is_err());
}
