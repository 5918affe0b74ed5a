//! Batchnorm calibration and the loss of whole splits, in parallel on the current rayon pool
//! (`pool.install`), with results that do not depend on the number of threads.
//!
//! The model is a function of the context alone, so each distinct context is evaluated once
//! (5 686 for all 228 146 rows of names.txt) and every row reads its context's result.
//! [`Contexts`] reads the rows once: it finds the distinct contexts of all splits and each
//! row's index, shared by calibration ([`calibrate_part`], which counts a split's rows per
//! context) and the losses ([`part_losses`], which adds up one stored value per row).
//!
//! Determinism: each data set is cut into chunks of a fixed number of rows ([`EVAL_ROWS`],
//! [`CALIB_ROWS`], [`SCAN_ROWS`]), which depends only on its size; each chunk's partial result
//! (a batchnorm accumulator, an f64 loss sum) is computed on whichever thread runs it, and the
//! partials are merged sequentially in chunk order. Rounding therefore never depends on the thread count.
//! rayon's `fold`/`reduce` (whose tree follows work stealing) are used only for exact
//! results: the union of key sets and integer counts.

use anyhow::{bail, Context, Result};
use makemore_core::infer::BnCalibration;
use makemore_core::simd::Kernels;
use makemore_core::{Float, ParamsRef, BN_EPS};
use rayon::prelude::*;

/// Distinct contexts per chunk of the evaluation.
pub const EVAL_ROWS: usize = 128;
/// Distinct contexts per chunk of calibration: larger than [`EVAL_ROWS`], so that fewer
/// accumulators are merged one after another at the end.
pub const CALIB_ROWS: usize = 512;
/// Rows per chunk of the context dedup and of the per-row loss sums.
pub const SCAN_ROWS: usize = 8192;
/// Largest key space `V^T` deduplicated through a dense table (4 MiB of ids) instead of a sort.
const DENSE_KEYS: usize = 1 << 20;

/// The key of a context: its tokens as the digits of a base-`base` number, first token most
/// significant (so keys sort as the contexts do). `base <= 256` and `T <= 16` fit a u128.
fn key(row: &[u8], base: u128) -> u128 {
    row.iter().fold(0, |k, &c| k * base + c as u128)
}

/// [`key`] for key spaces of at most [`DENSE_KEYS`].
fn dense_key(row: &[u8], base: usize) -> usize {
    row.iter().fold(0, |k, &c| k * base + c as usize)
}

/// `ids[r] = dense_key(row r of x)` for rows of `t` tokens, each key's bit set in `bits`.
/// Inlined, so that a constant `t` unrolls the key loop.
#[inline(always)]
fn set_dense_keys(ids: &mut [u32], x: &[u8], t: usize, base: usize, bits: &mut [u64]) {
    for (id, row) in ids.iter_mut().zip(x.chunks_exact(t)) {
        let k = dense_key(row, base);
        *id = k as u32;
        bits[k / 64] |= 1 << (k % 64);
    }
}

/// The context of a key (inverse of [`key`]), appended to `out`. Generic so that dense keys
/// divide as usize (u128 division is a slow library call).
fn push_context<K>(out: &mut Vec<u8>, mut k: K, base: K, t: usize)
where
    K: Copy + std::ops::Rem<Output = K> + std::ops::DivAssign + TryInto<u8>,
{
    let start = out.len();
    out.resize(start + t, 0);
    for slot in out[start..].iter_mut().rev() {
        // k % base < base <= 256
        *slot = (k % base).try_into().unwrap_or(u8::MAX);
        k /= base;
    }
}

/// The distinct contexts of some data sets (the parts, e.g. the three splits), in increasing
/// key order (sorted lexicographically), and the index of every row's context.
pub struct Contexts {
    t: usize,
    vocab: usize,
    /// (distinct, T)
    distinct: Vec<u8>,
    /// For each part, the index of each row's context in `distinct`.
    ids: Vec<Vec<u32>>,
}

impl Contexts {
    /// The distinct contexts of the rows of every part of `parts` (rows of `t` ids `< vocab`)
    /// and each row's index, found in parallel. Errors: `t` not in 1..=16 or not dividing a
    /// part's length, a token `>= vocab` (the largest one is named).
    pub fn new(parts: &[&[u8]], t: usize, vocab: usize) -> Result<Self> {
        Self::with_dense_limit(parts, t, vocab, DENSE_KEYS)
    }

    /// [`Contexts::new`] with the dense-table limit as a parameter (both algorithms give the
    /// same result; the tests compare them).
    pub fn with_dense_limit(
        parts: &[&[u8]],
        t: usize,
        vocab: usize,
        dense_keys: usize,
    ) -> Result<Self> {
        if !(1..=16).contains(&t) {
            bail!("a context of {t} tokens is out of range: use 1 to 16");
        }
        if let Some(x) = parts.iter().find(|x| !x.len().is_multiple_of(t)) {
            bail!("{} tokens are not whole contexts of {t} tokens", x.len());
        }
        // Tokens are u8, so a base of at most 256 represents every context.
        let base = vocab.clamp(1, 256);
        let space = (base as u128).checked_pow(t as u32).unwrap_or(u128::MAX);
        let mut ids: Vec<Vec<u32>> = parts.iter().map(|x| vec![0; x.len() / t]).collect();
        let mut distinct = Vec::new();
        // The largest token of a chunk (a vectorised max), if out of range, so that the key
        // loops need no test.
        let bad_token = |xc: &[u8]| xc.iter().copied().max().filter(|&m| m as usize >= vocab);
        if space > dense_keys as u128 {
            let bad = parts
                .par_iter()
                .flat_map(|x| x.par_chunks(SCAN_ROWS * t))
                .filter_map(bad_token)
                .max();
            if let Some(bad) = bad {
                bail!("token {bad} is out of range for a vocabulary of {vocab}");
            }
            let base = base as u128;
            let row_keys: Vec<Vec<u128>> = parts
                .par_iter()
                .map(|x| x.par_chunks_exact(t).map(|r| key(r, base)).collect())
                .collect();
            let mut keys = row_keys.concat();
            keys.par_sort_unstable();
            keys.dedup();
            for &k in &keys {
                push_context(&mut distinct, k, base, t);
            }
            ids.par_iter_mut()
                .zip(&row_keys)
                .flat_map(|(ic, rk)| ic.par_chunks_mut(SCAN_ROWS).zip(rk.par_chunks(SCAN_ROWS)))
                .for_each(|(ic, rk)| {
                    for (id, k) in ic.iter_mut().zip(rk) {
                        // every row's key is in `keys`
                        *id = keys.binary_search(k).unwrap_or_else(|i| i) as u32;
                    }
                });
            return Ok(Contexts {
                t,
                vocab,
                distinct,
                ids,
            });
        }
        // Each row's dense key, and the set of keys present: per-job bitsets united, which is
        // exact in any order.
        let space = space as usize;
        let words = space.div_ceil(64);
        let (present, bad) = ids
            .par_iter_mut()
            .zip(parts)
            .flat_map(|(ic, x)| {
                ic.par_chunks_mut(SCAN_ROWS)
                    .zip(x.par_chunks(SCAN_ROWS * t))
            })
            .fold(
                || (vec![0u64; words], None),
                |(mut bits, bad), (ic, xc)| {
                    if let Some(b) = bad_token(xc) {
                        return (bits, bad.max(Some(b)));
                    }
                    match t {
                        // names' context, unrolled
                        3 => set_dense_keys(ic, xc, 3, base, &mut bits),
                        _ => set_dense_keys(ic, xc, t, base, &mut bits),
                    }
                    (bits, bad)
                },
            )
            .reduce(
                || (vec![0u64; words], None),
                |(mut a, bad_a), (b, bad_b)| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a |= b);
                    (a, bad_a.max(bad_b))
                },
            );
        if let Some(bad) = bad {
            bail!("token {bad} is out of range for a vocabulary of {vocab}");
        }
        // the index of each present key, in key order
        let mut id_of = vec![0u32; space];
        let mut present_keys = Vec::new();
        for (w, &bits) in present.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let k = w * 64 + b.trailing_zeros() as usize;
                id_of[k] = present_keys.len() as u32;
                present_keys.push(k);
                b &= b - 1;
            }
        }
        // each row's key to its index, while this thread decodes the contexts
        rayon::join(
            || {
                ids.par_iter_mut()
                    .flat_map(|ic| ic.par_chunks_mut(SCAN_ROWS))
                    .for_each(|ic| ic.iter_mut().for_each(|k| *k = id_of[*k as usize]))
            },
            || {
                for &k in &present_keys {
                    push_context(&mut distinct, k, base, t);
                }
            },
        );
        Ok(Contexts {
            t,
            vocab,
            distinct,
            ids,
        })
    }

    /// The distinct contexts, (distinct, T).
    pub fn distinct(&self) -> &[u8] {
        &self.distinct
    }

    /// How many distinct contexts.
    pub fn len(&self) -> usize {
        self.distinct.len() / self.t
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.distinct.is_empty()
    }

    /// The index of each row of part `part` (panics if there is no such part).
    pub fn ids(&self, part: usize) -> &[u32] {
        &self.ids[part]
    }

    /// How many rows of part `part` have each context: per-chunk counts (exact integers)
    /// added in parallel over the contexts.
    pub fn counts(&self, part: usize) -> Vec<u32> {
        let n = self.len();
        let chunks: Vec<Vec<u32>> = self.ids[part]
            .par_chunks(SCAN_ROWS)
            .map(|ic| {
                let mut c = vec![0u32; n];
                ic.iter().for_each(|&i| c[i as usize] += 1);
                c
            })
            .collect();
        // blocks of contexts small enough that the merge, too, runs on every thread
        const BLOCK: usize = 512;
        let mut counts = vec![0u32; n];
        counts
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, out)| {
                for c in &chunks {
                    let c = &c[b * BLOCK..][..out.len()];
                    out.iter_mut().zip(c).for_each(|(o, &x)| *o += x);
                }
            });
        counts
    }
}

/// The distinct contexts of `x` (rows of `t` ids `< vocab`), in increasing key order, and for
/// each row the index of its context. Errors as [`Contexts::new`].
pub fn distinct_contexts(x: &[u8], t: usize, vocab: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let mut c = Contexts::new(&[x], t, vocab)?;
    let ids = c.ids.pop().unwrap_or_default();
    Ok((c.distinct, ids))
}

/// The first layer's per-position tables `table[t] = C @ W1[t*E..(t+1)*E]` (T, V, H): a row's
/// `hprebn = b1 + table[0][x0] + ... + table[T-1][x(T-1)]` (as [`makemore_core::eval`]).
fn first_layer_tables(k: &Kernels, p: ParamsRef<'_, f32>) -> Vec<f32> {
    let d = p.dims();
    let mut table = vec![0f32; d.context * d.vocab * d.hidden];
    makemore_core::eval::first_layer_tables(k, p, &mut table);
    table
}

/// Calibrates batchnorm over `x` (rows of T tokens), as [`calibrate_part`] of its contexts.
///
/// Errors: fewer than 2 rows, tokens out of range.
pub fn calibrate(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    x: &[u8],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let dims = params.dims();
    let contexts = Contexts::new(&[x], dims.context, dims.vocab)?;
    calibrate_part(k, params, &contexts, 0)
}

/// Calibrates batchnorm over the rows of part `part` of `contexts`: mean and Bessel variance
/// of hprebn, each distinct context of the part computed once and weighted by its count.
/// Chunks of [`CALIB_ROWS`] such contexts (in key order) accumulate in parallel (f64, two
/// passes); their accumulators merge in chunk order (Chan's pairwise update).
///
/// Errors: fewer than 2 rows, contexts of another context length or vocabulary, no part `part`.
pub fn calibrate_part(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    contexts: &Contexts,
    part: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let dims = params.dims();
    let (t, h) = (dims.context, dims.hidden);
    check_contexts(contexts, dims)?;
    if part >= contexts.ids.len() {
        bail!("no data set {part} among {}", contexts.ids.len());
    }
    // the tables while the part's contexts are counted
    let (all_counts, table) =
        rayon::join(|| contexts.counts(part), || first_layer_tables(k, params));
    // the part's contexts and how often each occurs, in key order
    let (mut present, mut counts) = (Vec::new(), Vec::new());
    for (row, &c) in contexts.distinct.chunks_exact(t).zip(&all_counts) {
        if c > 0 {
            present.extend_from_slice(row);
            counts.push(c);
        }
    }
    let b1 = params.tensors()[2];
    // (chunks, 2, H): mean and m2 of each chunk's accumulator
    let mut bufs = vec![0f64; counts.len().div_ceil(CALIB_ROWS) * 2 * h];
    let chunks: Vec<BnCalibration<'_>> = bufs
        .par_chunks_mut(2 * h)
        .zip(present.par_chunks(CALIB_ROWS * t))
        .zip(counts.par_chunks(CALIB_ROWS))
        .map_init(
            || (vec![0f32; CALIB_ROWS * h], vec![0f64; 2 * h]),
            |(hprebn, sums), ((buf, xc), cc)| {
                let (mean, m2) = buf.split_at_mut(h);
                let mut acc = BnCalibration::new(mean, m2)?;
                let hprebn = &mut hprebn[..cc.len() * h];
                k.embed_table_forward(hprebn, xc, &table, b1, dims.vocab);
                acc.add_hprebn(hprebn, cc, sums)?;
                Ok(acc)
            },
        )
        .collect::<Result<_, makemore_core::Error>>()?;
    let (mut mean, mut m2) = (vec![0f64; h], vec![0f64; h]);
    let mut acc = BnCalibration::new(&mut mean, &mut m2)?;
    for c in &chunks {
        acc.merge(c)?;
    }
    let (mut bnmean, mut bnvar) = (vec![0f32; h], vec![0f32; h]);
    acc.finish(&mut bnmean, &mut bnvar)
        .context("batchnorm calibration needs at least 2 examples")?;
    Ok((bnmean, bnvar))
}

/// Errors unless `contexts` were built for the model's context length and vocabulary.
fn check_contexts(contexts: &Contexts, dims: makemore_core::Dims) -> Result<()> {
    if contexts.t != dims.context || contexts.vocab != dims.vocab {
        bail!(
            "contexts of {} tokens < {} given to a model with context {} and {} symbols",
            contexts.t,
            contexts.vocab,
            dims.context,
            dims.vocab
        );
    }
    Ok(())
}

/// Mean cross-entropy of each split `(x, y)` with calibrated batchnorm (NaN for an empty one),
/// as [`part_losses`] of the splits' contexts.
///
/// Errors: `bnmean`/`bnvar` not of length H, tokens or targets out of range, `y` not one per row.
pub fn split_losses(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    splits: &[(&[u8], &[u8])],
) -> Result<Vec<f64>> {
    let dims = params.dims();
    let parts: Vec<&[u8]> = splits.iter().map(|(x, _)| *x).collect();
    let ys: Vec<&[u8]> = splits.iter().map(|(_, y)| *y).collect();
    let contexts = Contexts::new(&parts, dims.context, dims.vocab)?;
    part_losses(k, params, bnmean, bnvar, &contexts, &ys)
}

/// Mean cross-entropy of each part of `contexts` with targets `ys` (one per part, one per row)
/// and calibrated batchnorm (NaN for an empty part). The distinct contexts are evaluated
/// once, in parallel chunks of [`EVAL_ROWS`]; each row's loss is then `lse - logits[y]` of its
/// context (stored per context and target), summed in f64 per chunk of [`SCAN_ROWS`] rows (in
/// parallel, the chunks of all parts together), and the chunk sums of each part in chunk order.
///
/// Errors: `bnmean`/`bnvar` not of length H, targets out of range, not one target per row,
/// contexts of another context length or vocabulary.
pub fn part_losses(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    contexts: &Contexts,
    ys: &[&[u8]],
) -> Result<Vec<f64>> {
    let dims = params.dims();
    let (t, h, v) = (dims.context, dims.hidden, dims.vocab);
    check_contexts(contexts, dims)?;
    if bnmean.len() != h || bnvar.len() != h {
        bail!(
            "bnmean/bnvar have {}/{} values for {h} hidden units",
            bnmean.len(),
            bnvar.len()
        );
    }
    if ys.len() != contexts.ids.len() {
        bail!(
            "{} target sets for {} data sets",
            ys.len(),
            contexts.ids.len()
        );
    }
    for (y, ids) in ys.iter().zip(&contexts.ids) {
        if y.len() != ids.len() {
            bail!("{} targets for {} rows", y.len(), ids.len());
        }
    }
    let (distinct, rows) = (contexts.distinct(), contexts.len());
    let table = first_layer_tables(k, params);
    // forward: bnvar_inv = (bnvar + eps)**-0.5
    let eps = BN_EPS as f32;
    let bnvar_inv: Vec<f32> = bnvar.iter().map(|&x| 1.0 / (x + eps).sqrt()).collect();
    let [_, _, b1, w2, b2, bngain, bnbias] = params.tensors();
    // nll (rows, V): -log(softmax(logits)) = lse - logits of each distinct context, with
    // lse = log(sum(exp(logits - max))) + max; one value per (context, target), so that the
    // pass over the rows reads one number per row
    let mut nll = vec![0f32; rows * v];
    nll.par_chunks_mut(EVAL_ROWS * v)
        .zip(distinct.par_chunks(EVAL_ROWS * t))
        .for_each_init(
            || {
                let (h, e, m) = (EVAL_ROWS * h, EVAL_ROWS * v, EVAL_ROWS);
                (vec![0f32; h], vec![0f32; e], vec![0f32; e], vec![0f32; m])
            },
            |(hbuf, sbuf, ebuf, maxes), (lc, xc)| {
                let hc = &mut hbuf[..xc.len() / t * h];
                k.embed_table_forward(hc, xc, &table, b1, v);
                k.batchnorm_tanh_inference(hc, bnmean, &bnvar_inv, bngain, bnbias);
                k.linear_forward(lc, hc, w2, b2, v);
                // NaN wins the max, so a NaN logit is not silently dropped
                for (m, row) in maxes.iter_mut().zip(lc.chunks_exact(v)) {
                    *m = row.iter().fold(f32::NEG_INFINITY, |m, &x| x.max_nan(m));
                }
                // the logits less their row's max into sbuf, exp'd (vectorised) into ebuf
                let shifted = &mut sbuf[..lc.len()];
                for ((s, row), &max) in shifted
                    .chunks_exact_mut(v)
                    .zip(lc.chunks_exact(v))
                    .zip(maxes.iter())
                {
                    s.iter_mut().zip(row).for_each(|(s, &x)| *s = x - max);
                }
                let e = &mut ebuf[..lc.len()];
                k.exp(e, shifted);
                for ((row, e), &max) in lc
                    .chunks_exact_mut(v)
                    .zip(e.chunks_exact(v))
                    .zip(maxes.iter())
                {
                    let lse = max + e.iter().sum::<f32>().ln();
                    row.iter_mut().for_each(|x| *x = lse - *x);
                }
            },
        );
    // every part's chunks of rows together, so that small parts do not leave a thread idle
    let partial: Vec<(usize, f64)> = ys
        .par_iter()
        .zip(&contexts.ids)
        .enumerate()
        .flat_map(|(s, (y, ids))| {
            y.par_chunks(SCAN_ROWS)
                .zip(ids.par_chunks(SCAN_ROWS))
                .map(move |c| (s, c))
        })
        .map(|(s, (yc, ic))| {
            if let Some(bad) = yc.iter().copied().max().filter(|&m| m as usize >= v) {
                bail!("target {bad} is out of range for a vocabulary of {v}");
            }
            // four running sums (rows r, r+4, ...), so the adds do not wait on each other
            let mut sums = [0f64; 4];
            for (r, (&i, &target)) in ic.iter().zip(yc).enumerate() {
                sums[r % 4] += nll[i as usize * v + target as usize] as f64;
            }
            Ok((s, (sums[0] + sums[1]) + (sums[2] + sums[3])))
        })
        .collect::<Result<_>>()?;
    let mut sums = vec![0f64; ys.len()];
    for (s, p) in partial {
        sums[s] += p;
    }
    Ok(sums
        .iter()
        .zip(ys)
        .map(|(sum, y)| {
            if y.is_empty() {
                f64::NAN
            } else {
                sum / y.len() as f64
            }
        })
        .collect())
}
