//! Batchnorm calibration and the loss of whole splits on the current rayon pool (or, in the web
//! build, in order on one thread: [`crate::par`])
//! (`pool.install`): the chunks of the core's evaluator ([`makemore_core::eval`]) run on
//! indexed parallel iterators, their partial results collected by chunk index and merged in
//! chunk order, so the results are the same bits for any number of threads. Only exact
//! partial results (bitsets of keys, integer counts) are combined in another order.
//!
//! [`Contexts`] reads the rows once: the distinct contexts of all splits and each row's
//! context id, shared by calibration and the losses ([`calibrate_and_evaluate`]).

use crate::par::*;
// Errors of the core are wrapped as `anyhow!("what: {e}")`, not with `.context(what)`: the same
// text (the core's errors have no source), and anyhow's context type would add its Debug
// formatting (an escaping writer per context and error type) to the page's wasm.
use anyhow::{anyhow, bail, Result};
use makemore_core::eval::{self, ContextKeys, Evaluator};
use makemore_core::eval::{CALIB_ROWS, DENSE_KEYS, EVAL_ROWS, SCAN_ROWS};
use makemore_core::infer::BnCalibration;
use makemore_core::simd::Kernels;
use makemore_core::{Error, ParamsRef};

/// The distinct contexts of some data sets (the parts, e.g. the three splits) and the id of
/// every row's context.
#[derive(Debug)]
pub struct Contexts {
    /// (distinct, T), in increasing key order (sorted lexicographically).
    pub distinct: Vec<u8>,
    /// Per part, the id of each row's context (an index into `distinct`).
    pub ids: Vec<Vec<u32>>,
}

/// A chunk of [`SCAN_ROWS`] rows of one part: its tokens, the ids to fill, its outcome.
struct Chunk<'a> {
    part: usize,
    row: usize,
    x: &'a [u8],
    ids: &'a mut [u32],
    done: Result<(), Error>,
}

impl Contexts {
    /// The distinct contexts of the rows of every part of `parts` (rows of `t` ids `< vocab`)
    /// and each row's id, found in parallel.
    ///
    /// Errors: `t` not in 1..=16 or not dividing a part's length, a token `>= vocab`.
    pub fn new(parts: &[&[u8]], t: usize, vocab: usize) -> Result<Self> {
        Self::with_dense_limit(parts, t, vocab, DENSE_KEYS)
    }

    /// [`Contexts::new`] through a bitset for key spaces `vocab^t` up to `dense_keys`, else
    /// through a sort (both give the same result; the tests compare them).
    pub fn with_dense_limit(
        parts: &[&[u8]],
        t: usize,
        vocab: usize,
        dense_keys: usize,
    ) -> Result<Self> {
        Self::build(parts, t, vocab, |keys, chunks| match keys.dense_words() {
            Some(words) if keys.space() <= dense_keys as u128 => dense(keys, words, chunks),
            _ => sorted(keys, chunks),
        })
    }

    /// [`Contexts::new`] for key spaces `vocab^t` up to [`DENSE_KEYS`] only (an error above):
    /// without the sorting path, which the web page (context 3, at most
    /// [`crate::data::MAX_VOCAB`] symbols: 2^18 keys) never takes, so its wasm does not carry
    /// it (u128 keys, their sort and division).
    pub fn dense(parts: &[&[u8]], t: usize, vocab: usize) -> Result<Self> {
        Self::build(parts, t, vocab, |keys, chunks| match keys.dense_words() {
            Some(words) if keys.space() <= DENSE_KEYS as u128 => dense(keys, words, chunks),
            _ => bail!(
                "contexts of {t} tokens over {vocab} symbols: more keys than the dense \
                 path's {DENSE_KEYS}"
            ),
        })
    }

    /// The rows of `parts` in chunks, their ids and distinct contexts found by `dedup`.
    fn build(
        parts: &[&[u8]],
        t: usize,
        vocab: usize,
        dedup: impl FnOnce(ContextKeys, &mut [Chunk<'_>]) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let keys = ContextKeys::new(t, vocab).map_err(|e| anyhow!("context of {t} tokens: {e}"))?;
        if let Some(x) = parts.iter().find(|x| !x.len().is_multiple_of(t)) {
            bail!("{} tokens are not whole contexts of {t} tokens", x.len());
        }
        let mut ids: Vec<Vec<u32>> = parts.iter().map(|x| vec![0; x.len() / t]).collect();
        let mut chunks = Vec::new();
        for (part, (x, ids)) in parts.iter().zip(ids.iter_mut()).enumerate() {
            let pieces = x.chunks(SCAN_ROWS * t).zip(ids.chunks_mut(SCAN_ROWS));
            chunks.extend(pieces.enumerate().map(|(i, (x, ids))| Chunk {
                part,
                row: i * SCAN_ROWS,
                x,
                ids,
                done: Ok(()),
            }));
        }
        let distinct = dedup(keys, &mut chunks)?;
        drop(chunks);
        Ok(Contexts { distinct, ids })
    }
}

/// How [`calibrate_and_evaluate_by`] finds the distinct contexts: [`Contexts::new`] or
/// [`Contexts::dense`].
pub type Dedup = fn(&[&[u8]], usize, usize) -> Result<Contexts>;

/// The first error of `chunks` in chunk order, naming its data set and position.
fn first_error(chunks: &[Chunk<'_>], t: usize) -> Result<()> {
    match chunks.iter().find_map(|c| c.done.err().map(|e| (c, e))) {
        Some((c, e)) => bail!("data set {}: {}", c.part, e.at_offset(c.row * t)),
        None => Ok(()),
    }
}

/// `a[i] = f(a[i], b[i])`: merges two partial results of the same shape.
fn zip_with<T: Copy>(mut a: Vec<T>, b: Vec<T>, f: impl Fn(T, T) -> T) -> Vec<T> {
    a.iter_mut().zip(b).for_each(|(a, b)| *a = f(*a, b));
    a
}

/// The dense dedup: each chunk's keys into its ids and the set of keys seen (bitsets, united
/// exactly in any order), the contexts of the set keys, then each key replaced by its id.
fn dense(keys: ContextKeys, words: usize, chunks: &mut [Chunk<'_>]) -> Result<Vec<u8>> {
    let mark = |mut bits: Vec<u64>, c: &mut Chunk<'_>| {
        c.done = keys.mark_dense(c.x, c.ids, &mut bits);
        bits
    };
    let bits = (chunks.par_iter_mut()).fold_reduce(
        || vec![0u64; words],
        mark,
        |a, b| zip_with(a, b, |a, b| a | b),
    );
    first_error(chunks, keys.context())?;
    let mut id_of = vec![0u32; words * 64];
    let n = eval::dense_id_table(&bits, &mut id_of)?;
    let mut distinct = vec![0u8; n * keys.context()];
    keys.dense_contexts(&bits, &mut distinct)?;
    (chunks.par_iter_mut()).try_for_each(|c| eval::dense_ids(&id_of, c.ids))?;
    Ok(distinct)
}

/// The sorted dedup (key spaces above the dense limit): every row's u128 key, all keys sorted
/// and deduplicated, each row's id by binary search.
fn sorted(keys: ContextKeys, chunks: &mut [Chunk<'_>]) -> Result<Vec<u8>> {
    let row_keys: Vec<Vec<u128>> = (chunks.par_iter_mut())
        .map(|c| {
            let mut k = vec![0; c.ids.len()];
            c.done = keys.keys(c.x, &mut k);
            k
        })
        .collect();
    first_error(chunks, keys.context())?;
    let mut all = row_keys.concat();
    all.par_sort_unstable();
    let n = eval::dedup_sorted(&mut all);
    all.truncate(n);
    let mut distinct = vec![0u8; n * keys.context()];
    keys.sorted_contexts(&all, &mut distinct)?;
    (chunks.par_iter_mut().zip(&row_keys))
        .try_for_each(|(c, rk)| eval::sorted_ids(&all, rk, c.ids))?;
    Ok(distinct)
}

/// The evaluator of `params`, its tables built into `table`, with the core's `ln_f32`: std's
/// `f32::ln` is the platform's libm (glibc and the wasm build's differ in the last bit for about
/// 6% of the arguments), so the losses would depend on where they are computed.
fn evaluator<'a>(
    k: &Kernels,
    params: ParamsRef<'a, f32>,
    table: &'a mut Vec<f32>,
) -> Result<Evaluator<'a>> {
    *table = vec![0f32; eval::table_len(&params.dims())];
    Ok(Evaluator::new(
        *k,
        params,
        table,
        makemore_core::math::ln_f32,
    )?)
}

/// Calibrates batchnorm over `x` (rows of T tokens): bnmean and bnvar (H).
///
/// Errors: fewer than 2 rows, tokens out of range, a statistic that overflowed f32 (not finite:
/// a diverged model), naming it and its hidden unit.
pub fn calibrate(k: &Kernels, p: ParamsRef<'_, f32>, x: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
    let contexts = Contexts::new(&[x], p.dims().context, p.dims().vocab)?;
    let mut table = Vec::new();
    calibrate_part(&evaluator(k, p, &mut table)?, &contexts, 0)
}

/// Mean cross-entropy of each split `(x, y)` with calibrated batchnorm (NaN for an empty one).
///
/// Errors: `bnmean`/`bnvar` not of length H, tokens or targets out of range, `y` not one per row,
/// a non-empty split's loss not finite (a diverged model).
pub fn split_losses(
    k: &Kernels,
    p: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    splits: &[(&[u8], &[u8])],
) -> Result<Vec<f64>> {
    let (xs, ys): (Vec<&[u8]>, Vec<&[u8]>) = splits.iter().copied().unzip();
    let contexts = Contexts::new(&xs, p.dims().context, p.dims().vocab)?;
    let mut table = Vec::new();
    part_losses(&evaluator(k, p, &mut table)?, bnmean, bnvar, &contexts, &ys)
}

/// Calibrates batchnorm over split `part` of `splits`, then the mean loss of every split:
/// (bnmean, bnvar, losses), as `makemore train` does after training; one [`Contexts`] of all
/// splits serves both. The same bits as [`calibrate`] and [`split_losses`].
///
/// Errors: as those, and no split `part`.
pub fn calibrate_and_evaluate(
    k: &Kernels,
    p: ParamsRef<'_, f32>,
    splits: &[(&[u8], &[u8])],
    part: usize,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f64>)> {
    calibrate_and_evaluate_by(Contexts::new, k, p, splits, part)
}

/// [`calibrate_and_evaluate`] with the distinct contexts found by `dedup` (the same bits
/// whichever finds them, or its error).
pub fn calibrate_and_evaluate_by(
    dedup: Dedup,
    k: &Kernels,
    p: ParamsRef<'_, f32>,
    splits: &[(&[u8], &[u8])],
    part: usize,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f64>)> {
    let (xs, ys): (Vec<&[u8]>, Vec<&[u8]>) = splits.iter().copied().unzip();
    let contexts = dedup(&xs, p.dims().context, p.dims().vocab)?;
    let mut table = Vec::new();
    let ev = evaluator(k, p, &mut table)?;
    let (bnmean, bnvar) = calibrate_part(&ev, &contexts, part)?;
    let losses = part_losses(&ev, &bnmean, &bnvar, &contexts, &ys)?;
    Ok((bnmean, bnvar, losses))
}

/// Mean and Bessel variance of hprebn over the rows of part `part` of `contexts` (built for
/// the model of `ev`): its rows counted per
/// context, then chunks of [`CALIB_ROWS`] of its contexts (each weighted by its count) into
/// one accumulator each, merged in chunk order.
fn calibrate_part(
    ev: &Evaluator<'_>,
    contexts: &Contexts,
    part: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let Some(ids) = contexts.ids.get(part) else {
        bail!("no data set {part} among {}", contexts.ids.len());
    };
    let (t, h) = (ev.dims().context, ev.dims().hidden);
    let n = contexts.distinct.len() / t;
    let count = |mut c: Vec<u32>, ic| eval::count_ids(ic, &mut c).map(|()| c);
    let counts = (ids.par_chunks(SCAN_ROWS)).try_fold_reduce(
        || vec![0u32; n],
        count,
        |a, b| Ok(zip_with(a, b, u32::saturating_add)),
    )?;
    let (mut x, mut w) = (vec![0u8; n * t], vec![0u32; n]);
    let used = eval::weighted_contexts(&mut x, &mut w, &contexts.distinct, t, &counts)?;
    let mut bufs = vec![0f64; used.div_ceil(CALIB_ROWS) * 2 * h];
    let accs: Vec<Result<BnCalibration<'_>, Error>> = (bufs.par_chunks_mut(2 * h))
        .zip(x[..used * t].par_chunks(CALIB_ROWS * t))
        .zip(w[..used].par_chunks(CALIB_ROWS))
        .map_init(
            || (vec![0f32; CALIB_ROWS * h], vec![0f64; 2 * h]),
            |(hprebn, sums), ((buf, xc), wc)| {
                let (mean, m2) = buf.split_at_mut(h);
                let mut acc = BnCalibration::new(mean, m2)?;
                ev.calibrate(&mut acc, xc, wc, hprebn, sums)?;
                Ok(acc)
            },
        )
        .collect();
    let (mut mean, mut m2) = (vec![0f64; h], vec![0f64; h]);
    let mut total = BnCalibration::new(&mut mean, &mut m2)?;
    for acc in accs {
        total.merge(&acc?)?;
    }
    let (mut bnmean, mut bnvar) = (vec![0f32; h], vec![0f32; h]);
    (total.finish(&mut bnmean, &mut bnvar))
        .map_err(|e| anyhow!("batchnorm calibration needs 2 examples: {e}"))?;
    check_calibration(&bnmean, &bnvar)?;
    Ok((bnmean, bnvar))
}

/// Refuses calibrated statistics that are not finite: hprebn (f32) or its variance (f64 cast to
/// f32) overflowed, which per-step losses do not show (a training batch's normalisation keeps
/// them finite). The error names the statistic and the first hidden unit.
fn check_calibration(bnmean: &[f32], bnvar: &[f32]) -> Result<()> {
    for (name, stat) in [("bnmean", bnmean), ("bnvar", bnvar)] {
        if let Some((unit, x)) = stat.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            bail!(
                "batchnorm calibration overflowed: {name}[{unit}] (hidden unit {unit}) is {x}: \
                 the pre-activations hprebn over the training split exceed f32's range, the \
                 model diverged; retrain with a smaller --lr"
            );
        }
    }
    Ok(())
}

/// Mean cross-entropy of each part of `contexts` (built for the model of `ev`) with targets
/// `ys` (one set per part) and calibrated batchnorm (NaN for an empty part): `nll` of the
/// distinct contexts in chunks of [`EVAL_ROWS`], then the loss sums of chunks of [`SCAN_ROWS`]
/// rows of all parts together, added per part in chunk order.
fn part_losses(
    ev: &Evaluator<'_>,
    bnmean: &[f32],
    bnvar: &[f32],
    contexts: &Contexts,
    ys: &[&[u8]],
) -> Result<Vec<f64>> {
    let dims = ev.dims();
    let (t, v) = (dims.context, dims.vocab);
    let mut scan = Vec::new();
    for (part, (ids, y)) in contexts.ids.iter().zip(ys).enumerate() {
        if y.len() != ids.len() {
            bail!(
                "data set {part}: {} targets for {} rows",
                y.len(),
                ids.len()
            );
        }
        let chunks = ids.chunks(SCAN_ROWS).zip(y.chunks(SCAN_ROWS)).enumerate();
        scan.extend(chunks.map(|(i, (ic, yc))| (part, i * SCAN_ROWS, ic, yc)));
    }
    let mut bnvar_inv = vec![0f32; dims.hidden];
    ev.bnvar_inv(&mut bnvar_inv, bnvar)?;
    let mut nll = vec![0f32; contexts.distinct.len() / t * v];
    (nll.par_chunks_mut(EVAL_ROWS * v))
        .zip(contexts.distinct.par_chunks(EVAL_ROWS * t))
        .try_for_each_init(
            || vec![0f32; eval::nll_scratch_len(&dims, EVAL_ROWS)],
            |scratch, (out, xc)| ev.nll(out, xc, bnmean, &bnvar_inv, scratch),
        )?;
    let sums: Vec<Result<f64, Error>> = (scan.par_iter())
        .map(|&(_, _, ic, yc)| eval::loss_sum(&nll, v, ic, yc))
        .collect();
    let mut total = vec![0f64; ys.len()];
    for (&(part, row, ..), sum) in scan.iter().zip(sums) {
        let sum = sum.map_err(|e| e.at_offset(row));
        total[part] += sum.map_err(|e| anyhow!("data set {part}: targets: {e}"))?;
    }
    // 0 / 0: NaN for an empty part
    let losses: Vec<f64> = total
        .iter()
        .zip(ys)
        .map(|(s, y)| s / y.len() as f64)
        .collect();
    let bad =
        (losses.iter().zip(ys).enumerate()).find(|(_, (l, y))| !y.is_empty() && !l.is_finite());
    if let Some((part, (loss, y))) = bad {
        bail!(
            "data set {part}: the mean loss of its {} examples is {loss}: the model's logits \
             overflow f32 (a diverged model); retrain with a smaller --lr",
            y.len()
        );
    }
    Ok(losses)
}
