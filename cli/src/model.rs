//! The model as the CLI holds it: flat `Vec`s sized at run time, viewed through the core.

use anyhow::{bail, Result};
use makemore_core::infer::Inference;
use makemore_core::simd::{Isa, Kernels};
use makemore_core::{Dims, ParamsRef};

pub use crate::evaluate::{
    calibrate, calibrate_and_evaluate, calibrate_part, distinct_contexts, part_losses,
    split_losses, Contexts, EVAL_ROWS,
};

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

/// `--isa`: `auto` (the fastest path this CPU runs) or one of the core's [`Isa`]s, spelled as
/// [`Isa::name`] spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsaChoice {
    Auto,
    Forced(Isa),
}

impl clap::ValueEnum for IsaChoice {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            IsaChoice::Auto,
            IsaChoice::Forced(Isa::Scalar),
            IsaChoice::Forced(Isa::Avx2),
            IsaChoice::Forced(Isa::Avx512),
            IsaChoice::Forced(Isa::Neon),
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            IsaChoice::Auto => "auto",
            IsaChoice::Forced(isa) => isa.name(),
        }))
    }
}

/// The kernels `--isa` (or, without the flag, the `MAKEMORE_ISA` variable, read by
/// [`Isa::from_env`]) asks for: `auto` (the default) is the fastest this CPU runs; a named path
/// the CPU lacks is an error naming the flag or the variable.
pub fn kernels(flag: Option<IsaChoice>) -> Result<Kernels> {
    let (choice, from) = match flag {
        Some(choice) => (choice, "--isa "),
        None => (
            Isa::from_env()?.map_or(IsaChoice::Auto, IsaChoice::Forced),
            "MAKEMORE_ISA=",
        ),
    };
    match choice {
        IsaChoice::Auto => Ok(Kernels::best()),
        IsaChoice::Forced(isa) => {
            Kernels::new(isa).map_err(|e| anyhow::anyhow!("{from}{isa}: {e}"))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_isa_of_the_core_is_a_choice_by_its_name() {
        for isa in Isa::ALL {
            assert_eq!(
                IsaChoice::from_str(isa.name(), false),
                Ok(IsaChoice::Forced(isa))
            );
        }
        assert_eq!(IsaChoice::from_str("auto", false), Ok(IsaChoice::Auto));
        assert_eq!(IsaChoice::value_variants().len(), Isa::ALL.len() + 1);
    }
}
