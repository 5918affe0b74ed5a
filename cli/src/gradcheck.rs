//! `gradcheck`: prints the gradient check ([`cli::gradcheck_table`]) and exits 1 if a row fails.

use std::process::ExitCode;

use anyhow::Result;
use cli::gradcheck_table::{check, BATCH};

use crate::dataset::Dataset;
use crate::GradcheckArgs;

pub fn gradcheck(a: &GradcheckArgs) -> Result<ExitCode> {
    let ds = Dataset::load(&a.input, 3)?;
    ds.nonempty("train", &a.input)?;
    let report = check(&ds, a.rng.into(), a.seed, a.fd_samples)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", a.input.display()))?;
    crate::print_str(&report.notebook_text());
    if a.explain {
        crate::print_str(&report.explained_text());
    } else {
        crate::print_str(&report.table_text());
    }
    let failed = report.failed();
    if failed.is_empty() {
        println!("all 26 tensors agree");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: gradients disagree for: {}", failed.join(", "));
        if ds.train.len() < BATCH {
            eprintln!(
                "note: the training split has {} examples, fewer than the batch of {BATCH}: the \
                 batch repeats rows, its batchnorm variance is nearly 0 and the f32 results lose \
                 their precision; check on a larger word list (e.g. data/names.txt)",
                ds.train.len()
            );
        }
        Ok(ExitCode::FAILURE)
    }
}
