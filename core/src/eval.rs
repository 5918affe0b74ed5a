//! Fast f32 evaluation over whole data sets on any [`Kernels`] path: batchnorm calibration and
//! the loss with calibrated statistics.
//!
//! The first layer goes through per-position tables `table[t] = C @ W1[t*E..(t+1)*E]` (T, V, H):
//! a row's `hprebn = b1 + table[0][x0] + ... + table[T-1][x(T-1)]`, T vector adds instead of
//! T*E multiply-adds per hidden unit (the tables cost V*T*E*H multiply-adds once). This is the
//! same function summed in another order, so results differ from [`crate::infer`] by rounding
//! (measured on the notebook's run: losses agree to 1e-6).

use crate::error::Error;
use crate::float::Float;
use crate::infer::BnCalibration;
use crate::model::{Dims, ParamsRef};
use crate::simd::Kernels;

/// Values of scratch [`Evaluator::new`] needs for `rows` rows at a time: table (T*V*H),
/// h (rows*H), logits (rows*V), bnvar_inv (H), column sums (2*H as f64 is separate).
pub const fn scratch_len(dims: &Dims, rows: usize) -> usize {
    dims.context * dims.vocab * dims.hidden + rows * dims.hidden + rows * dims.vocab + dims.hidden
}

/// `table[t] = C @ W1[t*E..(t+1)*E]` (V, H) for each position t: `table` (T, V, H), which must
/// hold exactly T*V*H values (panics otherwise).
pub fn first_layer_tables(kernels: &Kernels, params: ParamsRef<'_, f32>, table: &mut [f32]) {
    let dims = params.dims();
    let (e, hd) = (dims.embedding, dims.hidden);
    assert_eq!(
        table.len(),
        dims.context * dims.vocab * hd,
        "first-layer table length"
    );
    for (pos, tab) in table.chunks_exact_mut(dims.vocab * hd).enumerate() {
        kernels.linear_forward_raw(tab, params.C, &params.W1[pos * e * hd..][..e * hd], &[], hd);
    }
}

/// The model's first-layer tables and scratch for evaluating `rows` rows at a time.
#[derive(Debug)]
pub struct Evaluator<'a> {
    kernels: Kernels,
    params: ParamsRef<'a, f32>,
    table: &'a mut [f32],
    h: &'a mut [f32],
    logits: &'a mut [f32],
    bnvar_inv: &'a mut [f32],
    rows: usize,
}

impl<'a> Evaluator<'a> {
    /// Builds the tables. `scratch` must hold exactly [`scratch_len`]`(dims, rows)` values.
    pub fn new(
        kernels: Kernels,
        params: ParamsRef<'a, f32>,
        rows: usize,
        scratch: &'a mut [f32],
    ) -> Result<Self, Error> {
        let dims = params.dims();
        if rows == 0 || scratch.len() != scratch_len(&dims, rows) {
            return Err(Error::LengthMismatch {
                what: "evaluation scratch",
                expected: scratch_len(&dims, rows.max(1)),
                got: scratch.len(),
            });
        }
        let (t, v, hd) = (dims.context, dims.vocab, dims.hidden);
        let (table, rest) = scratch.split_at_mut(t * v * hd);
        let (h, rest) = rest.split_at_mut(rows * hd);
        let (logits, bnvar_inv) = rest.split_at_mut(rows * v);
        first_layer_tables(&kernels, params, table);
        Ok(Evaluator {
            kernels,
            params,
            table,
            h,
            logits,
            bnvar_inv,
            rows,
        })
    }

    /// hprebn of the rows of `x` (at most `self.rows`) into `self.h`.
    fn hprebn(&mut self, x: &[u8]) -> usize {
        let dims = self.params.dims();
        let rows = x.len() / dims.context;
        self.kernels.embed_table_forward_raw(
            &mut self.h[..rows * dims.hidden],
            x,
            self.table,
            self.params.b1,
            dims.vocab,
        );
        rows
    }

    /// Adds the rows of `x` (rows, T) to a calibration, row `r` counted `counts[r]` times
    /// (`counts` empty: once each). `sums` is f64 scratch of 2*H.
    pub fn calibrate(
        &mut self,
        acc: &mut BnCalibration<'_>,
        x: &[u8],
        counts: &[u32],
        sums: &mut [f64],
    ) -> Result<(), Error> {
        let dims = self.params.dims();
        let rows = crate::infer::check_rows(&dims, x, None)?;
        if !counts.is_empty() && counts.len() != rows {
            return Err(Error::LengthMismatch {
                what: "row counts",
                expected: rows,
                got: counts.len(),
            });
        }
        for (c, xc) in x.chunks(self.rows * dims.context).enumerate() {
            let n = self.hprebn(xc);
            let cc = if counts.is_empty() {
                &[][..]
            } else {
                &counts[c * self.rows..][..n]
            };
            acc.add_hprebn(&self.h[..n * dims.hidden], cc, sums)?;
        }
        Ok(())
    }

    /// For each row of `x` (rows, T): its `logits` (rows, V) and `lse` (rows) =
    /// `log(sum(exp(logits)))`, so that the loss of target `y` is `lse - logits[y]`.
    /// With calibrated `bnmean`, `bnvar` (H).
    pub fn logits_lse(
        &mut self,
        bnmean: &[f32],
        bnvar: &[f32],
        x: &[u8],
        logits: &mut [f32],
        lse: &mut [f32],
    ) -> Result<(), Error> {
        let dims = self.params.dims();
        let rows = crate::infer::check_rows(&dims, x, None)?;
        if logits.len() != rows * dims.vocab || lse.len() != rows {
            return Err(Error::LengthMismatch {
                what: "logits/lse",
                expected: rows * dims.vocab,
                got: logits.len(),
            });
        }
        self.set_bn(bnmean, bnvar)?;
        let p = self.params;
        let k = self.kernels;
        for (xc, lc) in x
            .chunks(self.rows * dims.context)
            .zip(logits.chunks_mut(self.rows * dims.vocab))
        {
            let n = self.hprebn(xc);
            let h = &mut self.h[..n * dims.hidden];
            k.batchnorm_tanh_inference_raw(h, bnmean, self.bnvar_inv, p.bngain, p.bnbias);
            k.linear_forward_raw(lc, h, p.W2, p.b2, dims.vocab);
        }
        for (row, l) in logits.chunks_exact(dims.vocab).zip(lse.iter_mut()) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max_nan(x));
            let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
            *l = max + sum.ln();
        }
        Ok(())
    }

    /// `bnvar_inv` from `bnvar`, after checking both lengths.
    fn set_bn(&mut self, bnmean: &[f32], bnvar: &[f32]) -> Result<(), Error> {
        let hidden = self.params.dims().hidden;
        for (what, len) in [("bnmean", bnmean.len()), ("bnvar", bnvar.len())] {
            if len != hidden {
                return Err(Error::LengthMismatch {
                    what,
                    expected: hidden,
                    got: len,
                });
            }
        }
        crate::batchnorm::bnvar_inv_from_bnvar(self.bnvar_inv, bnvar);
        Ok(())
    }

    /// The sum (not the mean) of the cross-entropy over the rows of `x` (rows, T) and `y` with
    /// the calibrated `bnmean`, `bnvar` (H), accumulated in f64 per block of rows.
    pub fn loss_sum(
        &mut self,
        bnmean: &[f32],
        bnvar: &[f32],
        x: &[u8],
        y: &[u8],
    ) -> Result<f64, Error> {
        let dims = self.params.dims();
        crate::infer::check_rows(&dims, x, Some(y))?;
        self.set_bn(bnmean, bnvar)?;
        let p = self.params;
        let k = self.kernels;
        let mut sum = 0.0;
        for (xc, yc) in x.chunks(self.rows * dims.context).zip(y.chunks(self.rows)) {
            let rows = self.hprebn(xc);
            let h = &mut self.h[..rows * dims.hidden];
            k.batchnorm_tanh_inference_raw(h, bnmean, self.bnvar_inv, p.bngain, p.bnbias);
            let logits = &mut self.logits[..rows * dims.vocab];
            k.linear_forward_raw(logits, h, p.W2, p.b2, dims.vocab);
            sum += (k.cross_entropy_sum_raw(logits, yc) / rows as f32) as f64 * rows as f64;
        }
        Ok(sum)
    }
}
