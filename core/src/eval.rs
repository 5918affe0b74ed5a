//! The evaluator: batchnorm calibration and the loss over whole data sets, as work on chunks
//! that a caller may run in any order, on any thread, merging the partial results in chunk order.
//!
//! The model is a function of the context alone, so a data set is evaluated through its
//! distinct contexts: every row gets the id of its context, each distinct context is evaluated
//! once, and every row reads its context's result.
//!
//! 1. Distinct contexts ([`ContextKeys`]): a context's key is its tokens as the digits of a
//!    base-V number, so that keys sort as contexts do, and ids are given in key order. For key
//!    spaces `V^T` of at most [`DENSE_KEYS`], chunks of rows mark their keys in a bitset
//!    ([`ContextKeys::mark_dense`]; bitsets unite exactly in any order), then [`dense_id_table`],
//!    [`dense_ids`] and [`ContextKeys::dense_contexts`]. Above that, the rows' keys are sorted
//!    ([`ContextKeys::keys`], a sort, [`dedup_sorted`], [`sorted_ids`],
//!    [`ContextKeys::sorted_contexts`]).
//! 2. Calibration: rows counted per context ([`count_ids`]; integer counts, exact in any
//!    order), the contexts that occur listed with their counts ([`weighted_contexts`]), then
//!    chunks of [`CALIB_ROWS`] of them, each into its own [`BnCalibration`]
//!    ([`Evaluator::calibrate`]), merged in chunk order.
//! 3. Loss: `nll = lse - logits` (contexts, V) of chunks of [`EVAL_ROWS`] distinct contexts
//!    ([`Evaluator::nll`]), then the f64 sum of one value per row over chunks of [`SCAN_ROWS`]
//!    rows ([`loss_sum`]), the chunk sums added in chunk order.
//!
//! The first layer goes through per-position tables `table[t] = C @ W1[t*E..(t+1)*E]` (T, V, H):
//! a row's `hprebn = b1 + table[0][x0] + ... + table[T-1][x(T-1)]`, T vector adds instead of
//! T*E multiply-adds per hidden unit. This is the same function summed in another order, so
//! results differ from [`crate::infer::Inference`] by rounding.
//!
//! Chunk sizes are constants, so partial results and the order of their merge depend only on
//! the data: the results are the same bits for any number of threads.

use core::ops::{DivAssign, Rem};

use crate::error::Error;
use crate::float::Float;
use crate::infer::{check_rows, BnCalibration};
use crate::model::{Dims, ParamsRef};
use crate::simd::Kernels;

/// Distinct contexts per chunk of calibration (one [`BnCalibration`] each).
pub const CALIB_ROWS: usize = 256;
/// Distinct contexts per chunk of [`Evaluator::nll`].
pub const EVAL_ROWS: usize = 128;
/// Rows per chunk of the dedup, of the counts and of [`loss_sum`].
pub const SCAN_ROWS: usize = 8192;
/// Largest key space `V^T` deduplicated through a bitset (128 KiB) instead of a sort.
pub const DENSE_KEYS: usize = 1 << 20;
/// Longest context [`ContextKeys`] keys (its keys fit a u128).
pub const MAX_CONTEXT: usize = 16;

/// Values of the first-layer tables: T*V*H.
pub const fn table_len(dims: &Dims) -> usize {
    dims.context * dims.vocab * dims.hidden
}

/// Values of scratch [`Evaluator::nll`] needs to evaluate `rows` rows at a time: h (rows, H),
/// norm_logits and counts (rows, V) each, logit_maxes (rows).
pub const fn nll_scratch_len(dims: &Dims, rows: usize) -> usize {
    rows * (dims.hidden + 2 * dims.vocab + 1)
}

/// `table[t] = C @ W1[t*E..(t+1)*E]` (V, H) for each position t: `table` (T, V, H).
///
/// Errors: `table` not of [`table_len`] values.
pub fn first_layer_tables(
    kernels: &Kernels,
    params: ParamsRef<'_, f32>,
    table: &mut [f32],
) -> Result<(), Error> {
    let dims = params.dims();
    let (e, hd) = (dims.embedding, dims.hidden);
    check_len("first-layer tables (T*V*H)", table_len(&dims), table.len())?;
    for (pos, tab) in table.chunks_exact_mut(dims.vocab * hd).enumerate() {
        kernels.linear_forward(tab, params.C, &params.W1[pos * e * hd..][..e * hd], &[], hd)?;
    }
    Ok(())
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if expected != got {
        return Err(Error::LengthMismatch {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

/// Errors unless the largest value of `x` is below `limit` (a vectorised max; the error names
/// the first offending position).
fn check_below(x: &[u8], limit: usize) -> Result<(), Error> {
    match x.iter().copied().max() {
        Some(m) if m as usize >= limit => crate::check_tokens(x, limit),
        _ => Ok(()),
    }
}

/// A context id that is not below the number of distinct contexts.
const NO_CONTEXT: Error =
    Error::InvalidArgument("a context id is not below the number of contexts");

// ------------------------------------------------------------------------ distinct contexts

/// The keys of contexts of T tokens < V: the tokens as the digits of a base-V number, first
/// token most significant, so that keys sort as the contexts do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextKeys {
    context: usize,
    vocab: usize,
}

impl ContextKeys {
    /// Keys of contexts of `context` tokens `< vocab`.
    ///
    /// Errors: `context` not in 1..=[`MAX_CONTEXT`], `vocab` not in 1..=256.
    pub fn new(context: usize, vocab: usize) -> Result<Self, Error> {
        if !(1..=MAX_CONTEXT).contains(&context) || !(1..=256).contains(&vocab) {
            return Err(Error::InvalidArgument(
                "contexts of 1 to 16 tokens from a vocabulary of 1 to 256",
            ));
        }
        Ok(ContextKeys { context, vocab })
    }

    /// T, the tokens per context.
    pub fn context(&self) -> usize {
        self.context
    }

    /// V, the vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// How many keys there are, `V^T` (saturated at `u128::MAX`).
    pub fn space(&self) -> u128 {
        (self.vocab as u128)
            .checked_pow(self.context as u32)
            .unwrap_or(u128::MAX)
    }

    /// Words of the bitset of [`Self::mark_dense`], `ceil(V^T / 64)`, if `V^T <= 2^32`.
    pub fn dense_words(&self) -> Option<usize> {
        let space = self.space();
        (space <= 1 << 32).then(|| (space as usize).div_ceil(64))
    }

    /// Rows in `x` (rows, T), after checking that it holds whole rows of tokens `< V`.
    fn rows(&self, x: &[u8]) -> Result<usize, Error> {
        if !x.len().is_multiple_of(self.context) {
            return Err(Error::LengthMismatch {
                what: "contexts (rows of T tokens)",
                expected: x.len() / self.context * self.context,
                got: x.len(),
            });
        }
        check_below(x, self.vocab)?;
        Ok(x.len() / self.context)
    }

    /// `keys[r]` = the key of row r of `x` (rows, T), and that key's bit set in `bits` (bit
    /// `k % 64` of word `k / 64`; other bits are kept, so chunks may share a bitset).
    ///
    /// Errors: `x` not whole rows, a token `>= V` (its position in `x`), `keys` not one per
    /// row, `bits` not of [`Self::dense_words`] words.
    pub fn mark_dense(&self, x: &[u8], keys: &mut [u32], bits: &mut [u64]) -> Result<(), Error> {
        let rows = self.rows(x)?;
        check_len("context keys (one per row)", rows, keys.len())?;
        let words = self.dense_words().ok_or(Error::InvalidArgument(
            "the key space V^T is too large for a bitset",
        ))?;
        check_len("key bitset (V^T / 64 words)", words, bits.len())?;
        match self.context {
            // names' context, unrolled
            3 => mark_dense_keys(keys, x, 3, self.vocab, bits),
            t => mark_dense_keys(keys, x, t, self.vocab, bits),
        }
        Ok(())
    }

    /// `keys[r]` = the key of row r of `x` (rows, T), for the sorted dedup.
    ///
    /// Errors: `x` not whole rows, a token `>= V` (its position in `x`), `keys` not one per row.
    pub fn keys(&self, x: &[u8], keys: &mut [u128]) -> Result<(), Error> {
        let rows = self.rows(x)?;
        check_len("context keys (one per row)", rows, keys.len())?;
        let base = self.vocab as u128;
        for (k, row) in keys.iter_mut().zip(x.chunks_exact(self.context)) {
            *k = row.iter().fold(0, |k, &c| k * base + c as u128);
        }
        Ok(())
    }

    /// The contexts of the keys set in `bits`, in increasing key order, into `distinct`
    /// (distinct, T).
    ///
    /// Errors: `bits` not of [`Self::dense_words`] words, `distinct` not T values per set bit.
    pub fn dense_contexts(&self, bits: &[u64], distinct: &mut [u8]) -> Result<(), Error> {
        let words = self.dense_words().ok_or(Error::InvalidArgument(
            "the key space V^T is too large for a bitset",
        ))?;
        check_len("key bitset (V^T / 64 words)", words, bits.len())?;
        let n: usize = bits.iter().map(|w| w.count_ones() as usize).sum();
        check_len(
            "distinct contexts (T per key)",
            n * self.context,
            distinct.len(),
        )?;
        let mut rows = distinct.chunks_exact_mut(self.context);
        for (w, &word) in bits.iter().enumerate() {
            let mut b = word;
            while b != 0 {
                let k = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                if let Some(row) = rows.next() {
                    decode(row, k, self.vocab);
                }
            }
        }
        Ok(())
    }

    /// The contexts of `keys` (in their order) into `distinct` (keys, T).
    ///
    /// Errors: `distinct` not T values per key, a key `>= V^T`.
    pub fn sorted_contexts(&self, keys: &[u128], distinct: &mut [u8]) -> Result<(), Error> {
        check_len(
            "distinct contexts (T per key)",
            keys.len() * self.context,
            distinct.len(),
        )?;
        // V^T overflows u128 only for 256^16, whose keys are every u128
        let space = (self.vocab as u128).checked_pow(self.context as u32);
        if keys.iter().any(|&k| space.is_some_and(|s| k >= s)) {
            return Err(Error::InvalidArgument("a context key is not below V^T"));
        }
        for (row, &k) in distinct.chunks_exact_mut(self.context).zip(keys) {
            decode(row, k, self.vocab as u128);
        }
        Ok(())
    }
}

/// `keys[r]` and its bit for rows of `t` tokens (checked by the caller: whole rows, tokens
/// `< base`, `bits` covering `base^t`). Inlined, so that a constant `t` unrolls the key loop.
#[inline(always)]
fn mark_dense_keys(keys: &mut [u32], x: &[u8], t: usize, base: usize, bits: &mut [u64]) {
    for (id, row) in keys.iter_mut().zip(x.chunks_exact(t)) {
        let k = row.iter().fold(0, |k, &c| k * base + c as usize);
        *id = k as u32;
        bits[k / 64] |= 1 << (k % 64);
    }
}

/// The context of key `k` into `row` (the inverse of the key). Generic so that dense keys
/// divide as usize (u128 division is a slow library call).
fn decode<K>(row: &mut [u8], mut k: K, base: K)
where
    K: Copy + Rem<Output = K> + DivAssign + TryInto<u8>,
{
    for slot in row.iter_mut().rev() {
        // k % base < base <= 256
        *slot = (k % base).try_into().unwrap_or(u8::MAX);
        k /= base;
    }
}

/// `id_of[k]` = the id of each key `k` set in `bits`: how many set keys are smaller (ids in
/// key order); `u32::MAX` for the keys not set. Returns how many keys are set (the number of
/// distinct contexts).
///
/// Errors: `id_of` not 64 entries per word of `bits`, `u32::MAX` keys set or more.
pub fn dense_id_table(bits: &[u64], id_of: &mut [u32]) -> Result<usize, Error> {
    check_len("key ids (64 per bitset word)", bits.len() * 64, id_of.len())?;
    id_of.fill(u32::MAX);
    let mut n = 0u32;
    for (&word, ids) in bits.iter().zip(id_of.chunks_exact_mut(64)) {
        let mut b = word;
        while b != 0 {
            ids[b.trailing_zeros() as usize] = n;
            b &= b - 1;
            n = n
                .checked_add(1)
                .filter(|&n| n < u32::MAX)
                .ok_or(Error::InvalidArgument("2^32 - 1 distinct contexts or more"))?;
        }
    }
    Ok(n as usize)
}

/// Each key of `keys_to_ids` (from [`ContextKeys::mark_dense`]) replaced by its id from
/// [`dense_id_table`].
///
/// Errors: a key without an id (not set in the bitset of the table).
pub fn dense_ids(id_of: &[u32], keys_to_ids: &mut [u32]) -> Result<(), Error> {
    for k in keys_to_ids.iter_mut() {
        match id_of.get(*k as usize) {
            Some(&id) if id != u32::MAX => *k = id,
            _ => {
                return Err(Error::InvalidArgument(
                    "a context key is not in the key set",
                ))
            }
        }
    }
    Ok(())
}

/// Moves the distinct values of a sorted `keys` to its front and returns how many there are
/// (an unsorted `keys` only loses adjacent repeats).
pub fn dedup_sorted(keys: &mut [u128]) -> usize {
    let mut n = 0;
    for i in 0..keys.len() {
        if n == 0 || keys[i] != keys[n - 1] {
            keys[n] = keys[i];
            n += 1;
        }
    }
    n
}

/// `ids[r]` = the index of `row_keys[r]` in the sorted, distinct `keys`.
///
/// Errors: `ids` not one per row key, a row key not in `keys`, more than `u32::MAX` keys.
pub fn sorted_ids(keys: &[u128], row_keys: &[u128], ids: &mut [u32]) -> Result<(), Error> {
    check_len("context ids (one per row)", row_keys.len(), ids.len())?;
    if u32::try_from(keys.len()).is_err() {
        return Err(Error::InvalidArgument("more than 2^32 contexts"));
    }
    for (id, k) in ids.iter_mut().zip(row_keys) {
        let i = keys
            .binary_search(k)
            .map_err(|_| Error::InvalidArgument("a context key is not in the key set"))?;
        *id = i as u32;
    }
    Ok(())
}

// ------------------------------------------------------------------------------ calibration

/// `counts[id] += 1` for each of `ids`: how many rows have each context. Counts saturate at
/// `u32::MAX`, which [`weighted_contexts`] refuses.
///
/// Errors: an id `>= counts.len()`.
pub fn count_ids(ids: &[u32], counts: &mut [u32]) -> Result<(), Error> {
    for &id in ids {
        let c = counts.get_mut(id as usize).ok_or(NO_CONTEXT)?;
        *c = c.saturating_add(1);
    }
    Ok(())
}

/// The contexts of `distinct` (distinct, T) whose count is not 0, in order, into the front of
/// `x` (same size as `distinct`), and their counts into the front of `weights` (same size as
/// `counts`); returns how many.
///
/// Errors: `counts` not one per context, `x` or `weights` of another size, `context` 0, a
/// count of `u32::MAX` (saturated: 2^32 - 1 rows of one context or more).
pub fn weighted_contexts(
    x: &mut [u8],
    weights: &mut [u32],
    distinct: &[u8],
    context: usize,
    counts: &[u32],
) -> Result<usize, Error> {
    if context == 0 {
        return Err(Error::InvalidArgument("contexts of 0 tokens"));
    }
    check_len(
        "contexts (rows of T tokens)",
        counts.len() * context,
        distinct.len(),
    )?;
    check_len("weighted contexts", distinct.len(), x.len())?;
    check_len("context weights", counts.len(), weights.len())?;
    if counts.contains(&u32::MAX) {
        return Err(Error::InvalidArgument(
            "2^32 - 1 rows of one context or more",
        ));
    }
    let mut n = 0;
    for (&c, row) in counts.iter().zip(distinct.chunks_exact(context)) {
        if c > 0 {
            x[n * context..][..context].copy_from_slice(row);
            weights[n] = c;
            n += 1;
        }
    }
    Ok(n)
}

// -------------------------------------------------------------------------------- evaluator

/// The model with its first-layer tables: calibration and per-context losses over chunks of
/// rows. `Copy` and `Sync`: one evaluator serves every thread.
#[derive(Clone, Copy, Debug)]
pub struct Evaluator<'a> {
    kernels: Kernels,
    params: ParamsRef<'a, f32>,
    /// (T, V, H)
    table: &'a [f32],
    ln: fn(f32) -> f32,
}

impl<'a> Evaluator<'a> {
    /// Builds the first-layer tables into `table` ([`table_len`] values).
    ///
    /// `ln` is the logarithm of log-sum-exp in [`Self::nll`]: [`crate::math::ln_f32`] (what
    /// the CLI and the web build pass: the same bits on every platform), or std's `f32::ln`
    /// (the platform's libm; the two differ in the last bit for some arguments).
    ///
    /// Errors: `table` not of [`table_len`] values.
    pub fn new(
        kernels: Kernels,
        params: ParamsRef<'a, f32>,
        table: &'a mut [f32],
        ln: fn(f32) -> f32,
    ) -> Result<Self, Error> {
        first_layer_tables(&kernels, params, table)?;
        Ok(Evaluator {
            kernels,
            params,
            table,
            ln,
        })
    }

    /// The model's sizes.
    pub fn dims(&self) -> Dims {
        self.params.dims()
    }

    /// `hprebn = b1 + table[0][x0] + ...` (rows, H) of `x` (rows, T); lengths and tokens
    /// checked by the caller.
    fn hprebn(&self, hprebn: &mut [f32], x: &[u8]) {
        let dims = self.dims();
        self.kernels
            .embed_table_forward_raw(hprebn, x, self.table, self.params.b1, dims.vocab);
    }

    /// Adds the rows of `x` (rows, T) to `acc`, row `r` counted `weights[r]` times (`weights`
    /// empty: once each): `hprebn` of `hprebn.len() / H` rows at a time, each such block one
    /// [`BnCalibration::add_hprebn`]. `sums` is f64 scratch of 2*H.
    ///
    /// Errors: `acc` not of H features, `x` not whole rows of tokens `< V`, `weights` neither
    /// empty nor one per row, `hprebn` shorter than H (with rows to add), `sums` shorter than 2*H.
    pub fn calibrate(
        &self,
        acc: &mut BnCalibration<'_>,
        x: &[u8],
        weights: &[u32],
        hprebn: &mut [f32],
        sums: &mut [f64],
    ) -> Result<(), Error> {
        let dims = self.dims();
        let (t, hd) = (dims.context, dims.hidden);
        if acc.hidden() != hd {
            return Err(Error::DimsMismatch);
        }
        let rows = check_rows(&dims, x, None)?;
        if !weights.is_empty() {
            check_len("row weights", rows, weights.len())?;
        }
        let block = hprebn.len() / hd;
        if rows == 0 {
            return Ok(());
        }
        if block == 0 {
            return Err(Error::LengthMismatch {
                what: "calibration scratch hprebn (at least H)",
                expected: hd,
                got: hprebn.len(),
            });
        }
        for (i, xc) in x.chunks(block * t).enumerate() {
            let n = xc.len() / t;
            let wc = weights.get(i * block..i * block + n).unwrap_or(&[]);
            self.hprebn(&mut hprebn[..n * hd], xc);
            acc.add_hprebn(&hprebn[..n * hd], wc, sums)?;
        }
        Ok(())
    }

    /// `bnvar_inv = (bnvar + eps)**-0.5` (H).
    ///
    /// Errors: either not of H values.
    pub fn bnvar_inv(&self, bnvar_inv: &mut [f32], bnvar: &[f32]) -> Result<(), Error> {
        let hd = self.dims().hidden;
        check_len("bnvar", hd, bnvar.len())?;
        check_len("bnvar_inv", hd, bnvar_inv.len())?;
        crate::batchnorm::bnvar_inv_from_bnvar(bnvar_inv, bnvar);
        Ok(())
    }

    /// For each row of `x` (rows, T): `nll` (rows, V) = `lse - logits`, minus the log-softmax,
    /// so that the loss of target `y` is `nll[y]`; `lse = max + ln(sum(exp(logits - max)))`,
    /// with calibrated `bnmean` and `bnvar_inv` ([`Self::bnvar_inv`]) (H). Rows are evaluated
    /// `scratch.len() / nll_scratch_len(dims, 1)` at a time. A NaN logit wins the max, so that
    /// it is not dropped.
    ///
    /// Errors: `x` not whole rows of tokens `< V`, `nll` not V per row, `bnmean` or
    /// `bnvar_inv` not of H values, `scratch` shorter than [`nll_scratch_len`]`(dims, 1)`
    /// (with rows to evaluate).
    pub fn nll(
        &self,
        nll: &mut [f32],
        x: &[u8],
        bnmean: &[f32],
        bnvar_inv: &[f32],
        scratch: &mut [f32],
    ) -> Result<(), Error> {
        let dims = self.dims();
        let (t, hd, v) = (dims.context, dims.hidden, dims.vocab);
        let rows = check_rows(&dims, x, None)?;
        check_len("nll (rows, V)", rows * v, nll.len())?;
        check_len("bnmean", hd, bnmean.len())?;
        check_len("bnvar_inv", hd, bnvar_inv.len())?;
        let block = scratch.len() / nll_scratch_len(&dims, 1);
        if rows == 0 {
            return Ok(());
        }
        if block == 0 {
            return Err(Error::LengthMismatch {
                what: "nll scratch",
                expected: nll_scratch_len(&dims, 1),
                got: scratch.len(),
            });
        }
        let (k, p) = (self.kernels, self.params);
        for (xc, lc) in x.chunks(block * t).zip(nll.chunks_mut(block * v)) {
            let n = xc.len() / t;
            let (h, rest) = scratch.split_at_mut(n * hd);
            let (norm_logits, rest) = rest.split_at_mut(n * v);
            let (counts, rest) = rest.split_at_mut(n * v);
            let logit_maxes = &mut rest[..n];
            self.hprebn(h, xc);
            k.batchnorm_tanh_inference(h, bnmean, bnvar_inv, p.bngain, p.bnbias)?;
            k.linear_forward(lc, h, p.W2, p.b2, v)?;
            // norm_logits = logits - logit_maxes (per row; a NaN logit wins the max)
            for ((nl, row), max) in norm_logits
                .chunks_exact_mut(v)
                .zip(lc.chunks_exact(v))
                .zip(logit_maxes.iter_mut())
            {
                *max = row.iter().fold(f32::NEG_INFINITY, |m, &x| x.max_nan(m));
                nl.iter_mut().zip(row).for_each(|(nl, &x)| *nl = x - *max);
            }
            // counts = norm_logits.exp()
            k.exp(counts, norm_logits)?;
            // nll = lse - logits, lse = logit_maxes + counts.sum(1).log()
            for ((row, c), &max) in lc
                .chunks_exact_mut(v)
                .zip(counts.chunks_exact(v))
                .zip(logit_maxes.iter())
            {
                let lse = max + (self.ln)(c.iter().sum::<f32>());
                row.iter_mut().for_each(|x| *x = lse - *x);
            }
        }
        Ok(())
    }
}

/// The f64 sum of the cross-entropy of rows whose contexts have `ids` and targets `y`: the sum
/// of `nll[ids[r] * V + y[r]]` over `nll` (contexts, V) from [`Evaluator::nll`]. Four running
/// sums (rows r, r+4, ...) so the adds do not wait on each other, combined as
/// `(s0 + s1) + (s2 + s3)`.
///
/// Errors: `vocab` 0, `nll` not V per context, `ids` and `y` of different lengths, an id
/// without a context, a target `>= V` (its position in `y`).
pub fn loss_sum(nll: &[f32], vocab: usize, ids: &[u32], y: &[u8]) -> Result<f64, Error> {
    if vocab == 0 || !nll.len().is_multiple_of(vocab) {
        return Err(Error::LengthMismatch {
            what: "nll (contexts, V)",
            expected: nll.len() / vocab.max(1) * vocab,
            got: nll.len(),
        });
    }
    check_len("targets (one per row)", ids.len(), y.len())?;
    check_below(y, vocab)?;
    let mut sums = [0f64; 4];
    // targets < V (checked above): the index is in `nll` exactly when the id has a context
    let value = |i: u32, target: u8| -> Result<f64, Error> {
        let x = nll
            .get(i as usize * vocab + target as usize)
            .ok_or(NO_CONTEXT)?;
        Ok(*x as f64)
    };
    let (ic4, yc4) = (ids.chunks_exact(4), y.chunks_exact(4));
    let (icr, ycr) = (ic4.remainder(), yc4.remainder());
    for (i, t) in ic4.zip(yc4) {
        for j in 0..4 {
            sums[j] += value(i[j], t[j])?;
        }
    }
    for (j, (&i, &t)) in icr.iter().zip(ycr).enumerate() {
        sums[j] += value(i, t)?;
    }
    Ok((sums[0] + sums[1]) + (sums[2] + sums[3]))
}
