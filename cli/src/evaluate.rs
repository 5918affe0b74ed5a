//! Batchnorm calibration and the loss of whole splits, in parallel on the current rayon pool
//! (`pool.install`), with results that do not depend on the number of threads.
//!
//! The model is a function of the context alone, so each distinct context is evaluated once
//! (5 686 for all 228 146 rows of names.txt) and every row reads its context's result.
//! [`Contexts`] reads the rows once: it finds the distinct contexts of all splits and each
//! row's index, shared by calibration ([`calibrate_part`], which counts a split's rows per
//! context) and the losses ([`part_losses`], which adds up one stored value per row).
//!
//! [`calibrate_and_evaluate`] does both after one another, as `makemore train` does.
//!
//! Each of these runs its passes as one [`team`]: the threads wake once and spin
//! between passes, instead of rayon's sleeping and waking around every pass, which costs more
//! than a short pass on a virtual machine. Passes over the same chunks keep each chunk on the
//! same thread where they can (the ids a thread wrote are counted and scanned by it), the
//! per-context losses are read once in order by every thread before the scan of the rows
//! (which reads them in random order), and exact partial results (key sets, counts) are kept
//! per thread rather than per chunk. The sorted dedup (key spaces above 2^20) uses plain
//! rayon iterators.
//!
//! Determinism: each data set is cut into chunks of a fixed number of rows ([`EVAL_ROWS`],
//! [`CALIB_ROWS`], [`SCAN_ROWS`]), which depends only on its size; each chunk's partial result
//! (a batchnorm accumulator, an f64 loss sum) is computed on whichever thread runs it, stored
//! by chunk index, and the partials are merged sequentially in chunk order. Rounding therefore
//! never depends on the thread count. Only exact results (the union of key sets, integer
//! counts, the largest bad token) are combined in another order.

use anyhow::{bail, Context, Result};
use makemore_core::infer::BnCalibration;
use makemore_core::simd::Kernels;
use makemore_core::{Float, ParamsRef, BN_EPS};
use rayon::prelude::*;
use std::sync::{Mutex, OnceLock};

use crate::team::{self, Pieces, Slots};

/// Distinct contexts per chunk of the evaluation.
pub const EVAL_ROWS: usize = 128;
/// Distinct contexts per chunk of calibration: larger than [`EVAL_ROWS`], so that fewer
/// accumulators are merged one after another at the end.
pub const CALIB_ROWS: usize = 256;
/// Rows per chunk of the context dedup, of the counts and of the per-row loss sums.
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

/// `keys[r] = dense_key(row r of x)` for rows of `t` tokens, each key's bit set in `bits`.
/// Inlined, so that a constant `t` unrolls the key loop.
#[inline(always)]
fn set_dense_keys(keys: &mut [u32], x: &[u8], t: usize, base: usize, bits: &mut [u64]) {
    for (id, row) in keys.iter_mut().zip(x.chunks_exact(t)) {
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

/// The largest token of a chunk (a vectorised max) if it is out of range.
fn bad_token(xc: &[u8], vocab: usize) -> Option<u8> {
    xc.iter().copied().max().filter(|&m| m as usize >= vocab)
}

/// The distinct contexts of some data sets (the parts, e.g. the three splits), in increasing
/// key order (sorted lexicographically), and the index of every row's context.
pub struct Contexts {
    t: usize,
    vocab: usize,
    /// (distinct, T)
    distinct: Vec<u8>,
    /// For each part, chunk by chunk of [`SCAN_ROWS`] rows, the index of each row's context in
    /// `distinct`.
    ids: Vec<Vec<Vec<u32>>>,
}

/// The set of present dense keys, and each key's rank (its context's id).
struct Present {
    /// Bit `k % 64` of word `k / 64` is set if key `k` is present.
    bits: Vec<u64>,
    /// The id of each present key: how many present keys are smaller.
    id_of: Vec<u32>,
}

/// The keys whose bits are set, in increasing order.
fn set_keys(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(w, &bits)| {
        let mut b = bits;
        std::iter::from_fn(move || {
            (b != 0).then(|| {
                let k = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                k
            })
        })
    })
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
        // every chunk of rows of every part, with its part
        let chunks: Vec<(usize, &[u8])> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, x)| x.chunks(SCAN_ROWS * t).map(move |xc| (p, xc)))
            .collect();
        let (distinct, chunk_ids) = if space > dense_keys as u128 {
            Self::sorted(&chunks, t, vocab, base as u128)?
        } else {
            Self::dense(&chunks, t, vocab, base, space as usize)?
        };
        let mut ids: Vec<Vec<Vec<u32>>> = parts.iter().map(|_| Vec::new()).collect();
        for ((p, _), c) in chunks.iter().zip(chunk_ids) {
            ids[*p].push(c);
        }
        Ok(Contexts {
            t,
            vocab,
            distinct,
            ids,
        })
    }

    /// The dense dedup, as one team: each chunk's keys, and each thread's set of the keys it
    /// saw (bitsets, united by the leader: exact in any order); then each chunk's keys to ids
    /// while one thread decodes the contexts. Returns the distinct contexts and each chunk's ids.
    fn dense(
        chunks: &[(usize, &[u8])],
        t: usize,
        vocab: usize,
        base: usize,
        space: usize,
    ) -> Result<(Vec<u8>, Vec<Vec<u32>>)> {
        let words = space.div_ceil(64);
        let n = chunks.len();
        // per chunk: its keys, or its largest bad token
        let keys: Slots<std::result::Result<Vec<u32>, u8>> = Slots::new(n);
        // per thread: the keys it saw
        let seen: Slots<Vec<u64>> = Slots::new(rayon::current_num_threads());
        let present: OnceLock<std::result::Result<Present, u8>> = OnceLock::new();
        let ids: Slots<Vec<u32>> = Slots::new(n);
        let distinct: OnceLock<Vec<u8>> = OnceLock::new();
        team::run(|team| {
            let mut bits = vec![0u64; words];
            team.for_each(n, |i| {
                let xc = chunks[i].1;
                keys.set(
                    i,
                    match bad_token(xc, vocab) {
                        Some(bad) => Err(bad),
                        None => {
                            let mut k = vec![0u32; xc.len() / t];
                            match t {
                                // names' context, unrolled
                                3 => set_dense_keys(&mut k, xc, 3, base, &mut bits),
                                _ => set_dense_keys(&mut k, xc, t, base, &mut bits),
                            }
                            Ok(k)
                        }
                    },
                );
            });
            seen.set(team.index(), bits);
            team.barrier();
            if team.is_leader() {
                let _ = present.set(present_keys(&keys, &seen, words, space));
            }
            team.barrier();
            let present = match present.get()? {
                Ok(p) => p,
                Err(bad) => {
                    return team
                        .is_leader()
                        .then(|| Err(anyhow::anyhow!(bad_token_error(*bad, vocab))))
                }
            };
            // each chunk's keys to ids (on the thread that found them, mostly); the last job,
            // taken early by the first thread done with its own chunks, decodes the contexts
            team.for_each(n + 1, |i| {
                if i == n {
                    let mut d = Vec::new();
                    for k in set_keys(&present.bits) {
                        push_context(&mut d, k, base, t);
                    }
                    let _ = distinct.set(d);
                } else if let Some(Ok(k)) = keys.get(i) {
                    ids.set(i, k.iter().map(|&k| present.id_of[k as usize]).collect());
                }
            });
            team.is_leader().then_some(Ok(()))
        })?;
        Ok((distinct.into_inner().unwrap_or_default(), ids.into_vec()))
    }

    /// The sorted dedup (key spaces above the dense limit): every row's u128 key, all keys
    /// sorted and deduplicated, each row's id by binary search.
    fn sorted(
        chunks: &[(usize, &[u8])],
        t: usize,
        vocab: usize,
        base: u128,
    ) -> Result<(Vec<u8>, Vec<Vec<u32>>)> {
        let bad = chunks
            .par_iter()
            .filter_map(|(_, xc)| bad_token(xc, vocab))
            .max();
        if let Some(bad) = bad {
            bail!(bad_token_error(bad, vocab));
        }
        let row_keys: Vec<Vec<u128>> = chunks
            .par_iter()
            .map(|(_, xc)| xc.chunks_exact(t).map(|r| key(r, base)).collect())
            .collect();
        let mut keys = row_keys.concat();
        keys.par_sort_unstable();
        keys.dedup();
        let mut distinct = Vec::with_capacity(keys.len() * t);
        for &k in &keys {
            push_context(&mut distinct, k, base, t);
        }
        let ids = row_keys
            .par_iter()
            .map(|rk| {
                // every row's key is in `keys`
                rk.iter()
                    .map(|k| keys.binary_search(k).unwrap_or_else(|i| i) as u32)
                    .collect()
            })
            .collect();
        Ok((distinct, ids))
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

    /// The index of each row of part `part`, in row order (panics if there is no such part).
    pub fn ids(&self, part: usize) -> Vec<u32> {
        self.ids[part].concat()
    }

    /// How many rows part `part` has.
    fn rows(&self, part: usize) -> usize {
        self.ids[part].iter().map(Vec::len).sum()
    }
}

/// The leader's work between the dense dedup's passes: the largest bad token, if any, else
/// the union of the threads' bitsets (exact in any order) and the id of each present key.
fn present_keys(
    keys: &Slots<std::result::Result<Vec<u32>, u8>>,
    seen: &Slots<Vec<u64>>,
    words: usize,
    space: usize,
) -> std::result::Result<Present, u8> {
    if let Some(bad) = keys.iter().filter_map(|r| r.as_ref().err()).max() {
        return Err(*bad);
    }
    let mut bits = vec![0u64; words];
    for b in seen.iter() {
        bits.iter_mut().zip(b).for_each(|(a, b)| *a |= b);
    }
    let mut id_of = vec![0; space];
    for (id, k) in set_keys(&bits).enumerate() {
        id_of[k] = id as u32;
    }
    Ok(Present { bits, id_of })
}

fn bad_token_error(bad: u8, vocab: usize) -> String {
    format!("token {bad} is out of range for a vocabulary of {vocab}")
}

/// The distinct contexts of `x` (rows of `t` ids `< vocab`), in increasing key order, and for
/// each row the index of its context. Errors as [`Contexts::new`].
pub fn distinct_contexts(x: &[u8], t: usize, vocab: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let c = Contexts::new(&[x], t, vocab)?;
    let ids = c.ids(0);
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
    let table = OnceLock::new();
    let mut bufs = Vec::new();
    let calibration = Calibration::new(k, params, contexts, part, &table, &mut bufs)?;
    team::run(|team| {
        calibration.run(team, &[]);
        team.is_leader().then_some(())
    });
    calibration.stats()
}

/// [`calibrate_part`] over part `part`, then [`part_losses`] of every part with those
/// statistics, in one team (the same bits; the threads wake once, and the first-layer tables
/// are computed once).
pub fn calibrate_and_evaluate(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    contexts: &Contexts,
    part: usize,
    ys: &[&[u8]],
) -> Result<(Vec<f32>, Vec<f32>, Vec<f64>)> {
    let table = OnceLock::new();
    let mut bufs = Vec::new();
    let calibration = Calibration::new(k, params, contexts, part, &table, &mut bufs)?;
    let losses = Losses::new(k, params, contexts, ys, &table)?;
    let stats = OnceLock::new();
    team::run(|team| {
        calibration.run(
            team,
            &[&|| {
                losses.allocate();
            }],
        );
        if team.is_leader() {
            let s = calibration.stats();
            if let Ok((bnmean, bnvar)) = &s {
                losses.set_stats(bnmean, bnvar);
            }
            let _ = stats.set(s);
        }
        team.barrier();
        if stats.get().is_some_and(|s| s.is_ok()) {
            losses.run(team);
        }
        team.is_leader().then_some(())
    });
    let (bnmean, bnvar) = stats.into_inner().context("the leader calibrated")??;
    Ok((bnmean, bnvar, losses.finish()?))
}

/// Calibration of one part as passes of a team: the rows counted per context (per thread,
/// exact), the part's contexts listed by the leader, then chunks of [`CALIB_ROWS`] contexts.
struct Calibration<'a> {
    k: &'a Kernels,
    params: ParamsRef<'a, f32>,
    contexts: &'a Contexts,
    /// The part's rows' ids, chunk by chunk.
    chunks: &'a [Vec<u32>],
    /// The first-layer tables, computed in the first pass.
    table: &'a OnceLock<Vec<f32>>,
    /// Per thread: how many of the rows it counted have each context.
    counts: Slots<Vec<u32>>,
    /// The part's contexts (ids, in key order) and how often each occurs.
    present: OnceLock<(Vec<u32>, Vec<u32>)>,
    /// (chunks, 2, H): mean and m2 of each chunk's accumulator.
    pieces: Pieces<'a, f64>,
    accs: Slots<Result<BnCalibration<'a>, makemore_core::Error>>,
}

impl<'a> Calibration<'a> {
    /// Errors: contexts of another context length or vocabulary, no part `part`.
    fn new(
        k: &'a Kernels,
        params: ParamsRef<'a, f32>,
        contexts: &'a Contexts,
        part: usize,
        table: &'a OnceLock<Vec<f32>>,
        bufs: &'a mut Vec<f64>,
    ) -> Result<Self> {
        let h = params.dims().hidden;
        check_contexts(contexts, params.dims())?;
        let Some(chunks) = contexts.ids.get(part) else {
            bail!("no data set {part} among {}", contexts.ids.len());
        };
        // at most one chunk per CALIB_ROWS distinct contexts
        *bufs = vec![0f64; contexts.len().div_ceil(CALIB_ROWS) * 2 * h];
        let pieces = Pieces::new(bufs, 2 * h);
        Ok(Calibration {
            k,
            params,
            contexts,
            chunks,
            table,
            counts: Slots::new(rayon::current_num_threads()),
            present: OnceLock::new(),
            accs: Slots::new(pieces.len()),
            pieces,
        })
    }

    /// The passes, on every thread of `team`; `extra` jobs run in the first pass.
    fn run(&self, team: &team::Team<'_>, extra: &[&(dyn Fn() + Sync)]) {
        let (k, params, contexts) = (self.k, self.params, self.contexts);
        let dims = params.dims();
        let (t, h, n) = (dims.context, dims.hidden, contexts.len());
        let b1 = params.tensors()[2];
        // the tables while the rows are counted (integer counts: exact in any order)
        let mut c = vec![0u32; n];
        let rows = self.chunks.len();
        team.for_each(rows + 1 + extra.len(), |i| match self.chunks.get(i) {
            Some(ic) => ic.iter().for_each(|&i| c[i as usize] += 1),
            None if i == rows => {
                let _ = self.table.set(first_layer_tables(k, params));
            }
            None => extra[i - rows - 1](),
        });
        self.counts.set(team.index(), c);
        team.barrier();
        if team.is_leader() {
            let mut total = vec![0u32; n];
            for c in self.counts.iter() {
                total.iter_mut().zip(c).for_each(|(t, &c)| *t += c);
            }
            let (mut ids, mut cc) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for (i, c) in total.into_iter().enumerate() {
                if c > 0 {
                    ids.push(i as u32);
                    cc.push(c);
                }
            }
            let _ = self.present.set((ids, cc));
        }
        team.barrier();
        let (Some((ids, cc)), Some(table)) = (self.present.get(), self.table.get()) else {
            return;
        };
        let (mut x, mut hprebn, mut sums) = (Vec::new(), Vec::new(), vec![0f64; 2 * h]);
        team.for_each(ids.len().div_ceil(CALIB_ROWS), |i| {
            let ids = &ids[i * CALIB_ROWS..][..CALIB_ROWS.min(ids.len() - i * CALIB_ROWS)];
            let cc = &cc[i * CALIB_ROWS..][..ids.len()];
            x.clear();
            for &id in ids {
                x.extend_from_slice(&contexts.distinct[id as usize * t..][..t]);
            }
            hprebn.resize(ids.len() * h, 0f32);
            k.embed_table_forward(&mut hprebn, &x, table, b1, dims.vocab);
            let (mean, m2) = self.pieces.take(i).split_at_mut(h);
            let acc = BnCalibration::new(mean, m2)
                .and_then(|mut acc| acc.add_hprebn(&hprebn, cc, &mut sums).map(|()| acc));
            self.accs.set(i, acc);
        });
    }

    /// bnmean and bnvar: the chunks' accumulators merged in chunk order (after [`Self::run`]).
    fn stats(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        let h = self.params.dims().hidden;
        let (mut mean, mut m2) = (vec![0f64; h], vec![0f64; h]);
        let mut acc = BnCalibration::new(&mut mean, &mut m2)?;
        let used = self
            .present
            .get()
            .map_or(0, |p| p.0.len().div_ceil(CALIB_ROWS));
        for i in 0..used {
            match self.accs.get(i) {
                Some(Ok(a)) => acc.merge(a)?,
                Some(Err(e)) => bail!("calibration: {e}"),
                None => bail!("calibration chunk {i} did not run"),
            }
        }
        let (mut bnmean, mut bnvar) = (vec![0f32; h], vec![0f32; h]);
        acc.finish(&mut bnmean, &mut bnvar)
            .context("batchnorm calibration needs at least 2 examples")?;
        Ok((bnmean, bnvar))
    }
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
    let h = params.dims().hidden;
    if bnmean.len() != h || bnvar.len() != h {
        bail!(
            "bnmean/bnvar have {}/{} values for {h} hidden units",
            bnmean.len(),
            bnvar.len()
        );
    }
    let table = OnceLock::new();
    let losses = Losses::new(k, params, contexts, ys, &table)?;
    let _ = table.set(first_layer_tables(k, params));
    losses.set_stats(bnmean, bnvar);
    team::run(|team| {
        losses.run(team);
        team.is_leader().then_some(())
    });
    losses.finish()
}

/// The losses of every part as passes of a team: `lse - logits` of every distinct context,
/// then one value per row.
struct Losses<'a> {
    k: &'a Kernels,
    params: ParamsRef<'a, f32>,
    contexts: &'a Contexts,
    /// The first-layer tables (set before [`Self::run`]).
    table: &'a OnceLock<Vec<f32>>,
    /// bnmean and bnvar_inv = (bnvar + eps)**-0.5 (set before [`Self::run`]).
    stats: OnceLock<(Vec<f32>, Vec<f32>)>,
    /// nll (contexts, V): -log(softmax(logits)) = lse - logits of each distinct context, with
    /// lse = log(sum(exp(logits - max))) + max; one value per (context, target), so that the
    /// pass over the rows reads one number per row. Allocated (zeroed) by one job, filled
    /// chunk by chunk under the lock, then frozen for the pass over the rows.
    filling: OnceLock<Mutex<Vec<f32>>>,
    nll: OnceLock<Vec<f32>>,
    /// Every part's chunks of rows together, so that small parts do not leave a thread idle:
    /// (part, ids, targets).
    scan: Vec<(usize, &'a [u32], &'a [u8])>,
    /// Per chunk of rows: its part and loss sum, or its largest bad target.
    partial: Slots<std::result::Result<(usize, f64), u8>>,
}

impl<'a> Losses<'a> {
    /// Errors: not one target set per part or one target per row, contexts of another context
    /// length or vocabulary.
    fn new(
        k: &'a Kernels,
        params: ParamsRef<'a, f32>,
        contexts: &'a Contexts,
        ys: &[&'a [u8]],
        table: &'a OnceLock<Vec<f32>>,
    ) -> Result<Self> {
        check_contexts(contexts, params.dims())?;
        if ys.len() != contexts.ids.len() {
            bail!(
                "{} target sets for {} data sets",
                ys.len(),
                contexts.ids.len()
            );
        }
        for (p, y) in ys.iter().enumerate() {
            if y.len() != contexts.rows(p) {
                bail!("{} targets for {} rows", y.len(), contexts.rows(p));
            }
        }
        let scan: Vec<(usize, &[u32], &[u8])> = contexts
            .ids
            .iter()
            .zip(ys)
            .enumerate()
            .flat_map(|(p, (ids, y))| {
                ids.iter()
                    .zip(y.chunks(SCAN_ROWS))
                    .map(move |(ic, yc)| (p, &ic[..], yc))
            })
            .collect();
        Ok(Losses {
            k,
            params,
            contexts,
            table,
            stats: OnceLock::new(),
            filling: OnceLock::new(),
            nll: OnceLock::new(),
            partial: Slots::new(scan.len()),
            scan,
        })
    }

    /// Sets the batchnorm statistics (H each, checked by the caller).
    fn set_stats(&self, bnmean: &[f32], bnvar: &[f32]) {
        // forward: bnvar_inv = (bnvar + eps)**-0.5
        let eps = BN_EPS as f32;
        let bnvar_inv = bnvar.iter().map(|&x| 1.0 / (x + eps).sqrt()).collect();
        let _ = self.stats.set((bnmean.to_vec(), bnvar_inv));
    }

    /// Allocates the zeroed nll buffer (once; any thread).
    fn allocate(&self) -> &Mutex<Vec<f32>> {
        let v = self.params.dims().vocab;
        self.filling
            .get_or_init(|| Mutex::new(vec![0f32; self.contexts.len() * v]))
    }

    /// The passes, on every thread of `team`.
    fn run(&self, team: &team::Team<'_>) {
        let (k, contexts) = (self.k, self.contexts);
        let dims = self.params.dims();
        let (t, h, v) = (dims.context, dims.hidden, dims.vocab);
        let [_, _, b1, w2, b2, bngain, bnbias] = self.params.tensors();
        let (Some(table), Some((bnmean, bnvar_inv))) = (self.table.get(), self.stats.get()) else {
            return;
        };
        let distinct = contexts.distinct();
        let chunks = contexts.len().div_ceil(EVAL_ROWS);
        let (mut hbuf, mut sbuf, mut ebuf, mut maxes, mut lc) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // the first job allocates the buffer (if not yet), while the others compute
        team.for_each(chunks + 1, |i| {
            if i == 0 {
                self.allocate();
                return;
            }
            let i = i - 1;
            let xc = &distinct[i * EVAL_ROWS * t..];
            let xc = &xc[..xc.len().min(EVAL_ROWS * t)];
            let rows = xc.len() / t;
            hbuf.resize(rows * h, 0f32);
            sbuf.resize(rows * v, 0f32);
            ebuf.resize(rows * v, 0f32);
            maxes.resize(rows, 0f32);
            lc.resize(rows * v, 0f32);
            k.embed_table_forward(&mut hbuf, xc, table, b1, v);
            k.batchnorm_tanh_inference(&mut hbuf, bnmean, bnvar_inv, bngain, bnbias);
            k.linear_forward(&mut lc, &hbuf, w2, b2, v);
            // NaN wins the max, so a NaN logit is not silently dropped
            for (m, row) in maxes.iter_mut().zip(lc.chunks_exact(v)) {
                *m = row.iter().fold(f32::NEG_INFINITY, |m, &x| x.max_nan(m));
            }
            // the logits less their row's max into sbuf, exp'd (vectorised) into ebuf
            for ((s, row), &max) in sbuf
                .chunks_exact_mut(v)
                .zip(lc.chunks_exact(v))
                .zip(maxes.iter())
            {
                s.iter_mut().zip(row).for_each(|(s, &x)| *s = x - max);
            }
            k.exp(&mut ebuf, &sbuf);
            for ((row, e), &max) in lc
                .chunks_exact_mut(v)
                .zip(ebuf.chunks_exact(v))
                .zip(maxes.iter())
            {
                let lse = max + e.iter().sum::<f32>().ln();
                row.iter_mut().for_each(|x| *x = lse - *x);
            }
            let mut out = self.allocate().lock().unwrap_or_else(|e| e.into_inner());
            out[i * EVAL_ROWS * v..][..lc.len()].copy_from_slice(&lc);
        });
        if team.is_leader() {
            let mut all = self.allocate().lock().unwrap_or_else(|e| e.into_inner());
            let _ = self.nll.set(std::mem::take(&mut *all));
        }
        team.barrier();
        let Some(nll) = self.nll.get() else {
            return;
        };
        // Every thread reads the values other threads wrote once, in order (the prefetcher
        // streams them), rather than one cache line at a time in the pass over the rows.
        if team.threads() > 1 {
            let mut s = 0f32;
            for x in nll.iter().step_by(64 / size_of::<f32>()) {
                s += x;
            }
            std::hint::black_box(s);
            team.barrier();
        }
        team.for_each(self.scan.len(), |i| {
            let (p, ic, yc) = self.scan[i];
            if let Some(bad) = yc.iter().copied().max().filter(|&m| m as usize >= v) {
                self.partial.set(i, Err(bad));
                return;
            }
            // four running sums (rows r, r+4, ...), so the adds do not wait on each other;
            // four rows per step, so that the sums stay in registers
            let mut sums = [0f64; 4];
            let value = |i: u32, target: u8| nll[i as usize * v + target as usize] as f64;
            let (ic4, yc4) = (ic.chunks_exact(4), yc.chunks_exact(4));
            let (icr, ycr) = (ic4.remainder(), yc4.remainder());
            for (i, y) in ic4.zip(yc4) {
                for j in 0..4 {
                    sums[j] += value(i[j], y[j]);
                }
            }
            for (j, (&i, &y)) in icr.iter().zip(ycr).enumerate() {
                sums[j] += value(i, y);
            }
            let sum = (sums[0] + sums[1]) + (sums[2] + sums[3]);
            self.partial.set(i, Ok((p, sum)));
        });
    }

    /// The mean loss of each part (after [`Self::run`]): chunk sums added in chunk order.
    fn finish(self) -> Result<Vec<f64>> {
        let v = self.params.dims().vocab;
        let partial = self.partial.into_vec();
        if let Some(bad) = partial.iter().filter_map(|r| r.as_ref().err()).max() {
            bail!("target {bad} is out of range for a vocabulary of {v}");
        }
        if partial.len() != self.scan.len() {
            bail!("the losses were not evaluated");
        }
        let parts = self.contexts.ids.len();
        let mut sums = vec![0f64; parts];
        for (s, p) in partial.into_iter().flatten() {
            sums[s] += p;
        }
        Ok((0..parts)
            .map(|p| match self.contexts.rows(p) {
                0 => f64::NAN,
                n => sums[p] / n as f64,
            })
            .collect())
    }
}
