//! The model as the CLI holds it: flat `Vec`s sized at run time, viewed through the core.

use anyhow::{bail, Result};
use makemore_core::infer::{BnCalibration, Inference};
use makemore_core::{Dims, ParamsRef};

/// Sizes the CLI accepts. The core's kernels take sizes at run time (its fixed-size arrays are
/// for firmware), so any value in these ranges works.
pub const HIDDEN: (usize, usize) = (1, 4096);
pub const EMBEDDING: (usize, usize) = (1, 256);
pub const CONTEXT: (usize, usize) = (1, 16);
pub const BATCH: (usize, usize) = (2, 1 << 16);

/// Checks a size against its range, naming the flag.
pub fn check_range(flag: &str, value: usize, (lo, hi): (usize, usize)) -> Result<()> {
    if value < lo || value > hi {
        bail!("{flag} {value} is out of range: use a value from {lo} to {hi}");
    }
    Ok(())
}

/// Rows evaluated at a time in calibration and evaluation.
pub const EVAL_ROWS: usize = 256;

/// Calibrates batchnorm over `x` (rows of T tokens): mean and Bessel variance of hprebn.
pub fn calibrate(params: ParamsRef<'_, f32>, x: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
    let h = params.dims().hidden;
    let (mut mean, mut m2) = (vec![0f64; h], vec![0f64; h]);
    let mut acc = BnCalibration::new(&mut mean, &mut m2)?;
    let mut scratch = vec![0f32; EVAL_ROWS * h];
    acc.add_rows(params, x, &mut scratch)?;
    let (mut bnmean, mut bnvar) = (vec![0f32; h], vec![0f32; h]);
    acc.finish(&mut bnmean, &mut bnvar)?;
    Ok((bnmean, bnvar))
}

/// Scratch for [`Inference`] over `rows` rows at a time.
pub struct InferBuffers {
    bnvar_inv: Vec<f32>,
    h: Vec<f32>,
    logits: Vec<f32>,
}

impl InferBuffers {
    pub fn new(dims: Dims, rows: usize) -> Self {
        InferBuffers {
            bnvar_inv: vec![0.0; dims.hidden],
            h: vec![0.0; rows * dims.hidden],
            logits: vec![0.0; rows * dims.vocab],
        }
    }

    pub fn inference<'a>(
        &'a mut self,
        params: ParamsRef<'a, f32>,
        bnmean: &'a [f32],
        bnvar: &[f32],
    ) -> Result<Inference<'a, f32>> {
        Ok(Inference::new(
            params,
            bnmean,
            bnvar,
            &mut self.bnvar_inv,
            &mut self.h,
            &mut self.logits,
        )?)
    }
}

/// Mean cross-entropy over a split with calibrated batchnorm.
pub fn split_loss(
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    x: &[u8],
    y: &[u8],
) -> Result<f64> {
    if y.is_empty() {
        return Ok(f64::NAN);
    }
    let mut buf = InferBuffers::new(params.dims(), EVAL_ROWS);
    let mut inf = buf.inference(params, bnmean, bnvar)?;
    Ok(inf.loss_sum(x, y)? / y.len() as f64)
}
