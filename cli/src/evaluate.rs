//! Batchnorm calibration and the loss of whole splits, in parallel on the current rayon pool
//! (`pool.install`), with results that do not depend on the number of threads.
//!
//! The model is a function of the context alone, so each distinct context is evaluated once
//! (5 686 for all 228 146 rows of names.txt) and every row reads its context's result.
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
use makemore_core::{ParamsRef, BN_EPS};
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

/// The context of a key (inverse of [`key`]), appended to `out`.
fn push_context(out: &mut Vec<u8>, mut k: u128, base: u128, t: usize) {
    let start = out.len();
    out.resize(start + t, 0);
    for slot in out[start..].iter_mut().rev() {
        *slot = (k % base) as u8;
        k /= base;
    }
}

/// The distinct contexts of `x` (rows of `t` ids `< vocab`), in increasing key order (the
/// contexts sorted lexicographically), and for each row the index of its context.
///
/// Errors: `t` is 0 or does not divide `x.len()`, a token `>= vocab`.
pub fn distinct_contexts(x: &[u8], t: usize, vocab: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    distinct_contexts_with(x, t, vocab, DENSE_KEYS)
}

/// [`distinct_contexts`] with the dense-table limit as a parameter (both algorithms give the
/// same result; the tests compare them).
pub fn distinct_contexts_with(
    x: &[u8],
    t: usize,
    vocab: usize,
    dense_keys: usize,
) -> Result<(Vec<u8>, Vec<u32>)> {
    if t == 0 || t > 16 || !x.len().is_multiple_of(t) {
        bail!(
            "{} tokens are not whole contexts of {t} (1..=16) tokens",
            x.len()
        );
    }
    if let Some(bad) = x.par_iter().copied().max().filter(|&m| m as usize >= vocab) {
        bail!("token {bad} is out of range for a vocabulary of {vocab}");
    }
    // Tokens are u8, so a base of at most 256 represents every context.
    let base = vocab.clamp(1, 256) as u128;
    let space = base.checked_pow(t as u32).unwrap_or(u128::MAX);
    let rows = x.len() / t;
    let mut ids = vec![0u32; rows];
    let mut distinct = Vec::new();
    if space <= dense_keys as u128 {
        // The set of keys present: per-job bitsets, united (exact, in any order).
        let space = space as usize;
        let words = space.div_ceil(64);
        let present = x
            .par_chunks(SCAN_ROWS * t)
            .fold(
                || vec![0u64; words],
                |mut bits, xc| {
                    for row in xc.chunks_exact(t) {
                        let k = key(row, base) as usize;
                        bits[k / 64] |= 1 << (k % 64);
                    }
                    bits
                },
            )
            .reduce(
                || vec![0u64; words],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a |= b);
                    a
                },
            );
        // Index of each present key, in key order.
        let mut id_of = vec![0u32; space];
        let mut next = 0u32;
        for (w, &bits) in present.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let k = w * 64 + b.trailing_zeros() as usize;
                id_of[k] = next;
                next += 1;
                push_context(&mut distinct, k as u128, base, t);
                b &= b - 1;
            }
        }
        ids.par_chunks_mut(SCAN_ROWS)
            .zip(x.par_chunks(SCAN_ROWS * t))
            .for_each(|(ic, xc)| {
                for (id, row) in ic.iter_mut().zip(xc.chunks_exact(t)) {
                    *id = id_of[key(row, base) as usize];
                }
            });
    } else {
        let keys: Vec<u128> = x.par_chunks_exact(t).map(|r| key(r, base)).collect();
        let mut sorted = keys.clone();
        sorted.par_sort_unstable();
        sorted.dedup();
        ids.par_iter_mut().zip(&keys).for_each(|(id, k)| {
            // Every key is in `sorted`: Err is unreachable, and would give the insertion point.
            *id = sorted.binary_search(k).unwrap_or_else(|i| i) as u32;
        });
        for &k in &sorted {
            push_context(&mut distinct, k, base, t);
        }
    }
    Ok((distinct, ids))
}

/// How many of `ids` are each of `0..n` (exact integer counts, merged in any order).
fn count_ids(ids: &[u32], n: usize) -> Vec<u32> {
    ids.par_chunks(SCAN_ROWS)
        .fold(
            || vec![0u32; n],
            |mut c, ic| {
                for &i in ic {
                    c[i as usize] += 1;
                }
                c
            },
        )
        .reduce(
            || vec![0u32; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

/// The first layer's per-position tables `table[t] = C @ W1[t*E..(t+1)*E]` (T, V, H): a row's
/// `hprebn = b1 + table[0][x0] + ... + table[T-1][x(T-1)]` (as [`makemore_core::eval`]).
fn first_layer_tables(k: &Kernels, p: ParamsRef<'_, f32>) -> Vec<f32> {
    let d = p.dims();
    let (v, e, h) = (d.vocab, d.embedding, d.hidden);
    let [c, w1, ..] = p.tensors();
    let mut table = vec![0f32; d.context * v * h];
    for (pos, tab) in table.chunks_exact_mut(v * h).enumerate() {
        k.linear_forward(tab, c, &w1[pos * e * h..][..e * h], &[], h);
    }
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
    let (distinct, ids) = distinct_contexts(x, t, dims.vocab)?;
    let counts = count_ids(&ids, distinct.len() / t);
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
/// [`EVAL_ROWS`]; each row's loss is then `lse - logits[y]` of its context, summed in f64 per
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
    let all: Vec<u8> = splits.iter().flat_map(|(x, _)| x.iter().copied()).collect();
    let (distinct, ids) = distinct_contexts(&all, t, v)?;
    let rows = distinct.len() / t;
    let table = first_layer_tables(k, params);
    // forward: bnvar_inv = (bnvar + eps)**-0.5
    let eps = BN_EPS as f32;
    let bnvar_inv: Vec<f32> = bnvar.iter().map(|&x| 1.0 / (x + eps).sqrt()).collect();
    let [_, _, b1, w2, b2, bngain, bnbias] = params.tensors();
    // logits (rows, V) and lse (rows) = log(sum(exp(logits))) of each distinct context
    let (mut logits, mut lse) = (vec![0f32; rows * v], vec![0f32; rows]);
    logits
        .par_chunks_mut(EVAL_ROWS * v)
        .zip(lse.par_chunks_mut(EVAL_ROWS))
        .zip(distinct.par_chunks(EVAL_ROWS * t))
        .for_each_init(
            || vec![0f32; EVAL_ROWS * h],
            |hbuf, ((lc, sc), xc)| {
                let hc = &mut hbuf[..sc.len() * h];
                k.embed_table_forward(hc, xc, &table, b1, v);
                k.batchnorm_tanh_inference(hc, bnmean, &bnvar_inv, bngain, bnbias);
                k.linear_forward(lc, hc, w2, b2, v);
                for (row, l) in lc.chunks_exact(v).zip(sc.iter_mut()) {
                    // NaN wins the max, so a NaN logit is not silently dropped
                    let max =
                        row.iter().fold(
                            f32::NEG_INFINITY,
                            |m, &x| {
                                if x.is_nan() || x > m {
                                    x
                                } else {
                                    m
                                }
                            },
                        );
                    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
                    *l = max + sum.ln();
                }
            },
        );
    let mut offset = 0;
    let mut out = Vec::with_capacity(splits.len());
    for (_, y) in splits {
        let partial: Vec<f64> = ids[offset..][..y.len()]
            .par_chunks(SCAN_ROWS)
            .zip(y.par_chunks(SCAN_ROWS))
            .map(|(ic, yc)| {
                let mut sum = 0f64;
                for (&i, &target) in ic.iter().zip(yc) {
                    if target as usize >= v {
                        bail!("target {target} is out of range for a vocabulary of {v}");
                    }
                    let i = i as usize;
                    sum += (lse[i] - logits[i * v + target as usize]) as f64;
                }
                Ok(sum)
            })
            .collect::<Result<_>>()?;
        offset += y.len();
        let sum: f64 = partial.iter().fold(0.0, |s, &p| s + p);
        out.push(if y.is_empty() {
            f64::NAN
        } else {
            sum / y.len() as f64
        });
    }
    Ok(out)
}
