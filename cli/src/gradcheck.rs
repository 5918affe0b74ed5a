//! `gradcheck`: the notebook's comparison table for its 26 tensors on a batch of names at the
//! notebook's initialisation (Exercise-1 model: E=10, H=64, T=3, batch 32, V=27).

use std::num::NonZeroU64;
use std::process::ExitCode;

use anyhow::{bail, Result};
use makemore_core::atomic::{AtomicGrads, AtomicTape};
use makemore_core::gradcheck::{finite_difference_check, rows, table, TableStorage};
use makemore_core::rng::{batch_stream, below, init_stream};
use makemore_core::Params;

use crate::batch::fill_batch;
use crate::dataset::Dataset;
use crate::GradcheckArgs;

/// Largest relative error allowed against finite differences (f64).
const FD_TOL: f64 = 1e-6;
/// The notebook's batch (the tables' const generic N).
const BATCH: usize = 32;

pub fn gradcheck(a: &GradcheckArgs) -> Result<ExitCode> {
    if a.fd_samples == 0 {
        bail!("--fd-samples 0 would check no coordinate by finite differences: use 1 or more");
    }
    let ds = Dataset::load(&a.input, 3)?;
    ds.nonempty("train", &a.input)?;
    if ds.vocab.len() != 27 {
        bail!(
            "{}: gradcheck runs the notebook's model with a vocabulary of 27; this file has {}",
            a.input.display(),
            ds.vocab.len()
        );
    }
    if ds.train.is_empty() {
        bail!(
            "{}: the training split is empty ({} words, split 80/10/10 into {} / {} / {}); \
             gradcheck draws its batch from it: use a word list of at least 2 words",
            a.input.display(),
            ds.words,
            ds.split.train.len(),
            ds.split.val.len(),
            ds.split.test.len()
        );
    }
    let mut params = Box::new(Params::<f64, 27, 3, 10, 30, 64>::ZERO);
    params.view_mut().init_notebook(&mut init_stream(a.seed));
    // the training run's first batch
    let mut xb = [[0u8; 3]; BATCH];
    let mut yb = [0u8; BATCH];
    fill_batch(&ds.train, a.seed, 0, xb.as_flattened_mut(), &mut yb)?;
    let mut storage = Box::new(TableStorage::<BATCH, 27, 3, 10, 30, 64>::ZERO);
    let table_rows = table(&params, &xb, &yb, &mut storage)?;

    let mut tape = Box::new(AtomicTape::<f64, BATCH, 27, 3, 10, 30, 64>::ZERO);
    let mut reference = Box::new(AtomicTape::<f64, BATCH, 27, 3, 10, 30, 64>::ZERO);
    let loss = reference.forward(&params, &xb, &yb)?;
    let mut grads = Box::new(AtomicGrads::<f64, BATCH, 27, 3, 10, 30, 64>::ZERO);
    grads.backward(&reference, &params, &xb, &yb)?;
    // the coordinates checked by finite differences: the stream of the run's second batch
    let mut pick = batch_stream(a.seed, 1);
    println!("loss at init (f64): {loss:.4}");
    println!(
        "{:15} | {:^24} | {:^35} | {:^17}",
        "tensor", "atomic f32 vs f64", "fused f32 vs atomic f32", "f64 vs finite diff"
    );
    println!(
        "{:15} | {:5} | {:16} | {:5} | {:5} | {:19} | {:17}",
        "", "appr.", "maxdiff", "exact", "appr.", "maxdiff", "max rel err"
    );
    let mut failed = Vec::new();
    for (r, row) in table_rows
        .iter()
        .zip(rows::<f64, BATCH, 27, 3, 10, 30, 64>())
    {
        let len = (row.grad)(&grads).len();
        let idx: Vec<usize> = match NonZeroU64::new(len as u64) {
            Some(n) if len > a.fd_samples => (0..a.fd_samples)
                .map(|_| below(&mut pick, n) as usize)
                .collect(),
            _ => (0..len).collect(),
        };
        let fd = finite_difference_check(
            &row,
            idx,
            &mut params,
            &xb,
            &yb,
            &reference,
            &grads,
            &mut tape,
        )?;
        let fused = match r.fused_vs_atomic_f32 {
            Some(c) => format!("{:5} | {:5} | {:<19.3e}", c.exact, c.approximate, c.maxdiff),
            None => format!("{:5} | {:5} | {:19}", "-", "-", "-"),
        };
        println!(
            "{:15} | {:5} | {:<16.3e} | {fused} | {:.3e}",
            r.name, r.atomic_f32_vs_f64.approximate, r.atomic_f32_vs_f64.maxdiff, fd.rel_err
        );
        let fd_ok = fd.rel_err <= FD_TOL;
        if !r.ok() || !fd_ok {
            failed.push(r.name);
        }
    }
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
