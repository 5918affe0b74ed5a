//! Batchnorm calibration and the loss of whole splits, in parallel on the current rayon pool
//! (`pool.install`), with results that do not depend on the number of threads.
//!
//! The model is a function of the context alone, so each distinct context is evaluated once
//! (5 686 for all 228 146 rows of names.txt) and every row reads its context's result. The
//! rows are read twice: once to find the distinct contexts ([`Contexts`]), once to count them
//! (calibration) or to add up their losses.
//!
//! Determinism: each data set is cut into chunks of a fixed number of rows ([`EVAL_ROWS`],
//! [`SCAN_ROWS`]), which depends only on its size; each chunk's partial result (a batchnorm
//! accumulator, an f64 loss sum) is computed on whichever thread runs it, and the partials are
//! merged sequentially in chunk order. Rounding therefore never depends on the thread count.
//! rayon's `fold`/`reduce` (whose tree follows work stealing) are used only for exact
//! results: the union of key sets and integer counts.

use anyhow::{bail, Context, Result};
use makemore_core::infer::BnCalibration;
use makemore_core::simd::Kernels;
use makemore_core::{Float, ParamsRef, BN_EPS};
use rayon::prelude::*;

/// Distinct contexts per chunk of calibration and evaluation.
pub const EVAL_ROWS: usize = 256;
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

/// The distinct contexts of a data set, in increasing key order (sorted lexicographically),
/// and the map from a context to its index.
pub struct Contexts {
    t: usize,
    /// (distinct, T)
    distinct: Vec<u8>,
    index: Index,
}

enum Index {
    /// `id_of[dense_key(row)]`: small key spaces.
    Dense { base: usize, id_of: Vec<u32> },
    /// The sorted keys, searched: large key spaces.
    Sorted { base: u128, keys: Vec<u128> },
}

impl Contexts {
    /// The distinct contexts of the rows of every part of `parts` (rows of `t` ids `< vocab`),
    /// found in parallel. Errors: `t` not in 1..=16 or not dividing a part's length, a token
    /// `>= vocab`.
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
        let chunks = || parts.par_iter().flat_map(|x| x.par_chunks(SCAN_ROWS * t));
        let mut distinct = Vec::new();
        if space > dense_keys as u128 {
            if let Some(bad) = chunks()
                .flat_map(|xc| xc.par_iter().copied())
                .max()
                .filter(|&m| m as usize >= vocab)
            {
                bail!("token {bad} is out of range for a vocabulary of {vocab}");
            }
            let base = base as u128;
            let mut keys: Vec<u128> = chunks()
                .flat_map(|xc| xc.par_chunks_exact(t))
                .map(|r| key(r, base))
                .collect();
            keys.par_sort_unstable();
            keys.dedup();
            for &k in &keys {
                push_context(&mut distinct, k, base, t);
            }
            let index = Index::Sorted { base, keys };
            return Ok(Contexts { t, distinct, index });
        }
        // The set of keys present (and the largest bad token): per-job bitsets united, which
        // is exact in any order.
        let space = space as usize;
        let words = space.div_ceil(64);
        let (present, bad) = chunks()
            .fold(
                || (vec![0u64; words], None::<u8>),
                |(mut bits, mut bad), xc| {
                    for row in xc.chunks_exact(t) {
                        if let Some(&c) = row.iter().filter(|&&c| c as usize >= vocab).max() {
                            bad = bad.max(Some(c));
                            continue;
                        }
                        let k = dense_key(row, base);
                        bits[k / 64] |= 1 << (k % 64);
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
        let mut next = 0u32;
        for (w, &bits) in present.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let k = w * 64 + b.trailing_zeros() as usize;
                id_of[k] = next;
                next += 1;
                push_context(&mut distinct, k, base, t);
                b &= b - 1;
            }
        }
        let index = Index::Dense { base, id_of };
        Ok(Contexts { t, distinct, index })
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

    /// The index of `row`, a context of one of the parts this was built from.
    pub fn id(&self, row: &[u8]) -> u32 {
        match &self.index {
            Index::Dense { base, id_of } => id_of[dense_key(row, *base)],
            // Err is unreachable for the parts' rows (it would give the insertion point).
            Index::Sorted { base, keys } => {
                keys.binary_search(&key(row, *base)).unwrap_or_else(|i| i) as u32
            }
        }
    }

    /// The index of each row of `x` (one of the parts), in parallel.
    pub fn ids(&self, x: &[u8]) -> Vec<u32> {
        let mut ids = vec![0u32; x.len() / self.t];
        ids.par_chunks_mut(SCAN_ROWS)
            .zip(x.par_chunks(SCAN_ROWS * self.t))
            .for_each(|(ic, xc)| {
                for (id, row) in ic.iter_mut().zip(xc.chunks_exact(self.t)) {
                    *id = self.id(row);
                }
            });
        ids
    }

    /// How many rows of `x` (one of the parts) have each context: per-chunk counts (exact
    /// integers) added in parallel over the contexts.
    pub fn counts(&self, x: &[u8]) -> Vec<u32> {
        let n = self.len();
        let chunks: Vec<Vec<u32>> = x
            .par_chunks(SCAN_ROWS * self.t)
            .map(|xc| {
                let mut c = vec![0u32; n];
                for row in xc.chunks_exact(self.t) {
                    c[self.id(row) as usize] += 1;
                }
                c
            })
            .collect();
        let mut counts = vec![0u32; n];
        counts
            .par_chunks_mut(SCAN_ROWS)
            .enumerate()
            .for_each(|(b, out)| {
                for c in &chunks {
                    let c = &c[b * SCAN_ROWS..][..out.len()];
                    out.iter_mut().zip(c).for_each(|(o, &x)| *o += x);
                }
            });
        counts
    }
}

/// The distinct contexts of `x` (rows of `t` ids `< vocab`), in increasing key order, and for
/// each row the index of its context. Errors as [`Contexts::new`].
pub fn distinct_contexts(x: &[u8], t: usize, vocab: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let c = Contexts::new(&[x], t, vocab)?;
    let ids = c.ids(x);
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

/// Calibrates batchnorm over `x` (rows of T tokens): mean and Bessel variance of hprebn, each
/// distinct context computed once and weighted by its count. Chunks of [`EVAL_ROWS`] distinct
/// contexts accumulate in parallel (f64, two passes); their accumulators merge in chunk order
/// (Chan's pairwise update).
///
/// Errors: fewer than 2 rows, tokens out of range.
pub fn calibrate(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    x: &[u8],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let dims = params.dims();
    let (t, h) = (dims.context, dims.hidden);
    let contexts = Contexts::new(&[x], t, dims.vocab)?;
    let counts = contexts.counts(x);
    let distinct = contexts.distinct();
    let table = first_layer_tables(k, params);
    let b1 = params.tensors()[2];
    // (chunks, 2, H): mean and m2 of each chunk's accumulator
    let mut bufs = vec![0f64; distinct.len().div_ceil(EVAL_ROWS * t) * 2 * h];
    let chunks: Vec<BnCalibration<'_>> = bufs
        .par_chunks_mut(2 * h)
        .zip(distinct.par_chunks(EVAL_ROWS * t))
        .zip(counts.par_chunks(EVAL_ROWS))
        .map_init(
            || (vec![0f32; EVAL_ROWS * h], vec![0f64; 2 * h]),
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

/// Mean cross-entropy of each split `(x, y)` with calibrated batchnorm (NaN for an empty one).
/// The distinct contexts of all splits are evaluated once, in parallel chunks of
/// [`EVAL_ROWS`]; each row's loss is then `lse - logits[y]` of its context (stored per context
/// and target), summed in f64 per
/// chunk of [`SCAN_ROWS`] rows (in parallel), and the chunk sums in chunk order.
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
    let (t, h, v) = (dims.context, dims.hidden, dims.vocab);
    if bnmean.len() != h || bnvar.len() != h {
        bail!(
            "bnmean/bnvar have {}/{} values for {h} hidden units",
            bnmean.len(),
            bnvar.len()
        );
    }
    for (x, y) in splits {
        if x.len() != y.len() * t {
            bail!("{} targets for {} tokens of context {t}", y.len(), x.len());
        }
    }
    let parts: Vec<&[u8]> = splits.iter().map(|(x, _)| *x).collect();
    let contexts = Contexts::new(&parts, t, v)?;
    let (distinct, rows) = (contexts.distinct(), contexts.len());
    let table = first_layer_tables(k, params);
    // forward: bnvar_inv = (bnvar + eps)**-0.5
    let eps = BN_EPS as f32;
    let bnvar_inv: Vec<f32> = bnvar.iter().map(|&x| 1.0 / (x + eps).sqrt()).collect();
    let [_, _, b1, w2, b2, bngain, bnbias] = params.tensors();
    // nll (rows, V): -log(softmax(logits)) = lse - logits of each distinct context, with
    // lse = log(sum(exp(logits))); one value per (context, target), so that the pass over the
    // rows reads one number per row
    let mut nll = vec![0f32; rows * v];
    nll.par_chunks_mut(EVAL_ROWS * v)
        .zip(distinct.par_chunks(EVAL_ROWS * t))
        .for_each_init(
            || vec![0f32; EVAL_ROWS * h],
            |hbuf, (lc, xc)| {
                let hc = &mut hbuf[..xc.len() / t * h];
                k.embed_table_forward(hc, xc, &table, b1, v);
                k.batchnorm_tanh_inference(hc, bnmean, &bnvar_inv, bngain, bnbias);
                k.linear_forward(lc, hc, w2, b2, v);
                for row in lc.chunks_exact_mut(v) {
                    // NaN wins the max, so a NaN logit is not silently dropped
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| x.max_nan(m));
                    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
                    let lse = max + sum.ln();
                    row.iter_mut().for_each(|x| *x = lse - *x);
                }
            },
        );
    let mut out = Vec::with_capacity(splits.len());
    for (x, y) in splits {
        let partial: Vec<f64> = x
            .par_chunks(SCAN_ROWS * t)
            .zip(y.par_chunks(SCAN_ROWS))
            .map(|(xc, yc)| {
                let mut sum = 0f64;
                for (row, &target) in xc.chunks_exact(t).zip(yc) {
                    if target as usize >= v {
                        bail!("target {target} is out of range for a vocabulary of {v}");
                    }
                    let i = contexts.id(row) as usize;
                    sum += nll[i * v + target as usize] as f64;
                }
                Ok(sum)
            })
            .collect::<Result<_>>()?;
        let sum: f64 = partial.iter().fold(0.0, |s, &p| s + p);
        out.push(if y.is_empty() {
            f64::NAN
        } else {
            sum / y.len() as f64
        });
    }
    Ok(out)
}
