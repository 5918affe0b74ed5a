//! `eval`: the loss of a checkpoint on each split.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::checkpoint::Checkpoint;
use crate::dataset::Dataset;
use crate::eval::{calibrate, split_losses};
use crate::isa::kernels;
use crate::parallel::{pool, thread_count};
use crate::EvalArgs;

/// `eval`: loss of each split with the checkpoint's calibrated batchnorm (calibrating over the
/// training split if the checkpoint has no statistics), in a pool of `--threads` threads.
pub fn eval(a: &EvalArgs) -> Result<ExitCode> {
    pool(thread_count(a.threads)?)?.install(|| eval_in_pool(a))
}

fn eval_in_pool(a: &EvalArgs) -> Result<ExitCode> {
    let k = kernels(a.isa)?;
    let ck = Checkpoint::load(&a.checkpoint)?;
    let ds = Dataset::load(&a.input, ck.dims.context)?;
    if let Some(v) = &ck.vocab {
        if *v != ds.vocab {
            bail!(
                "{}: the checkpoint's vocabulary differs from {}'s",
                a.checkpoint.display(),
                a.input.display()
            );
        }
    } else if ds.vocab.len() != ck.dims.vocab {
        bail!(
            "{}: the checkpoint has {} symbols, {} has {}",
            a.checkpoint.display(),
            ck.dims.vocab,
            a.input.display(),
            ds.vocab.len()
        );
    }
    let p = ck.params_ref();
    let (bnmean, bnvar) = match &ck.bn {
        Some(bn) => bn.clone(),
        None => calibrate(&k, p, &ds.train.x)?,
    };
    let splits = a.split.names();
    let mut out = serde_json::Map::new();
    let examples: Vec<(&[u8], &[u8])> = splits
        .iter()
        .map(|s| {
            let e = ds.examples(s);
            (&e.x[..], &e.y[..])
        })
        .collect();
    let losses = split_losses(&k, p, &bnmean, &bnvar, &examples)?;
    for (&s, loss) in splits.iter().zip(losses) {
        let e = ds.examples(s);
        if !a.json {
            println!("{s:5} loss {loss:.4} ({} examples)", e.len());
        }
        out.insert(s.into(), serde_json::json!(loss));
    }
    if a.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(ExitCode::SUCCESS)
}
