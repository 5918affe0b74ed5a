//! `--isa` and `MAKEMORE_ISA`: which of the core's kernel paths a command runs.

use anyhow::Result;
use makemore_core::simd::{Isa, Kernels};

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
            IsaChoice::Forced(Isa::Simd128),
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
/// the CPU lacks is an error naming the flag or the variable. A `MAKEMORE_EXACT` that is not
/// `auto`, `scalar` or `vector` is an error too (the core would ignore it).
pub fn kernels(flag: Option<IsaChoice>) -> Result<Kernels> {
    makemore_core::simd::Impl::from_env()?;
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
