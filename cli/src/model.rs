//! The model as the CLI holds it: flat `Vec`s sized at run time, viewed through the core.

use anyhow::{bail, Result};
use makemore_core::eval::{scratch_len, Evaluator};
use makemore_core::infer::{BnCalibration, Inference};
use makemore_core::simd::{Isa, Kernels};
use makemore_core::{Dims, ParamsRef};
use std::collections::HashMap;

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

/// The kernels `--isa` (or, without the flag, the `MAKEMORE_ISA` variable) asks for: `auto`
/// (the default) is the fastest this CPU runs; a named path the CPU lacks is an error.
pub fn kernels(flag: Option<&str>) -> Result<Kernels> {
    let env = std::env::var("MAKEMORE_ISA").ok();
    let (name, from) = match (flag, env.as_deref()) {
        (Some(f), _) => (f, "--isa"),
        (None, Some(e)) if !e.is_empty() => (e, "MAKEMORE_ISA"),
        _ => ("auto", "--isa"),
    };
    if name == "auto" {
        return Ok(Kernels::best());
    }
    let Some(isa) = Isa::parse(name) else {
        bail!("{from} {name}: unknown instruction set; use auto, scalar, avx2, avx512 or neon");
    };
    Kernels::new(isa).map_err(|e| anyhow::anyhow!("{from} {name}: {e}"))
}

/// The distinct contexts of `x` (rows of `t` ids, `t <= 16`) in order of first appearance,
/// and for each row the index of its context. The model is a function of the context alone, so
/// evaluating the distinct ones once (5686 for all 228146 rows of names.txt) gives every row's
/// exact output.
pub fn distinct_contexts(x: &[u8], t: usize) -> (Vec<u8>, Vec<u32>) {
    let mut index: HashMap<u128, u32> = HashMap::new();
    let mut distinct = Vec::new();
    let ids = x
        .chunks_exact(t)
        .map(|row| {
            let key = row.iter().fold(0u128, |k, &c| (k << 8) | c as u128);
            *index.entry(key).or_insert_with(|| {
                distinct.extend_from_slice(row);
                (distinct.len() / t - 1) as u32
            })
        })
        .collect();
    (distinct, ids)
}

/// Calibrates batchnorm over `x` (rows of T tokens): mean and Bessel variance of hprebn, each
/// distinct context computed once and weighted by its count.
pub fn calibrate(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    x: &[u8],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let dims = params.dims();
    let h = dims.hidden;
    let (distinct, ids) = distinct_contexts(x, dims.context);
    let mut counts = vec![0u32; distinct.len() / dims.context];
    for &i in &ids {
        counts[i as usize] += 1;
    }
    let (mut mean, mut m2) = (vec![0f64; h], vec![0f64; h]);
    let mut acc = BnCalibration::new(&mut mean, &mut m2)?;
    let mut scratch = vec![0f32; scratch_len(&dims, EVAL_ROWS)];
    let mut sums = vec![0f64; 2 * h];
    Evaluator::new(*k, params, EVAL_ROWS, &mut scratch)?
        .calibrate(&mut acc, &distinct, &counts, &mut sums)?;
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

/// Mean cross-entropy of each split `(x, y)` with calibrated batchnorm (NaN for an empty one).
/// The distinct contexts of all splits are evaluated once; each row's loss is then
/// `lse - logits[y]` of its context, summed in f64 in row order.
pub fn split_losses(
    k: &Kernels,
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    splits: &[(&[u8], &[u8])],
) -> Result<Vec<f64>> {
    let dims = params.dims();
    let all: Vec<u8> = splits.iter().flat_map(|(x, _)| x.iter().copied()).collect();
    let (distinct, ids) = distinct_contexts(&all, dims.context);
    let rows = distinct.len() / dims.context;
    let (mut logits, mut lse) = (vec![0f32; rows * dims.vocab], vec![0f32; rows]);
    let mut scratch = vec![0f32; scratch_len(&dims, EVAL_ROWS)];
    Evaluator::new(*k, params, EVAL_ROWS, &mut scratch)?.logits_lse(
        bnmean,
        bnvar,
        &distinct,
        &mut logits,
        &mut lse,
    )?;
    let mut offset = 0;
    let mut out = Vec::with_capacity(splits.len());
    for (_, y) in splits {
        let mut sum = 0f64;
        for (&i, &t) in ids[offset..][..y.len()].iter().zip(y.iter()) {
            let i = i as usize;
            if t as usize >= dims.vocab {
                bail!(
                    "target {t} is out of range for a vocabulary of {}",
                    dims.vocab
                );
            }
            sum += (lse[i] - logits[i * dims.vocab + t as usize]) as f64;
        }
        offset += y.len();
        out.push(if y.is_empty() {
            f64::NAN
        } else {
            sum / y.len() as f64
        });
    }
    Ok(out)
}
