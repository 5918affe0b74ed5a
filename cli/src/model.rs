//! The model as the CLI holds it: flat `Vec`s sized at run time, viewed through the core.

use anyhow::{bail, Result};
use makemore_core::infer::Inference;
use makemore_core::simd::{Isa, Kernels};
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
