//! `eval`: the loss of a checkpoint on each split.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::checkpoint::Checkpoint;
use crate::data::{Examples, Vocab, MAX_CONTEXT};
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
    if !(1..=MAX_CONTEXT).contains(&ck.dims.context) {
        bail!(
            "{}: the model's context is {} characters; makemore evaluates contexts of 1 to \
             {MAX_CONTEXT}",
            a.checkpoint.display(),
            ck.dims.context
        );
    }
    let ds = Dataset::load(&a.input, ck.dims.context)?;
    let symbols = |v: &Vocab| {
        v.symbols()
            .iter()
            .collect::<String>()
            .escape_default()
            .to_string()
    };
    if let Some(v) = &ck.vocab {
        if *v != ds.vocab {
            bail!(
                "{}: the checkpoint's vocabulary differs from {}'s: \"{}\" against \"{}\"; \
                 pass the word list the checkpoint was trained on",
                a.checkpoint.display(),
                a.input.display(),
                symbols(v),
                symbols(&ds.vocab)
            );
        }
    } else if ds.vocab.len() != ck.dims.vocab {
        bail!(
            "{}: the checkpoint has {} symbols, {} has {}; pass the word list the checkpoint \
             was trained on",
            a.checkpoint.display(),
            ck.dims.vocab,
            a.input.display(),
            ds.vocab.len()
        );
    }
    let splits = a.split.names();
    let examples: Vec<&Examples> = splits
        .iter()
        .map(|s| ds.nonempty(s, &a.input))
        .collect::<Result<_>>()?;
    let p = ck.params_ref();
    let (bnmean, bnvar) = match &ck.bn {
        Some(bn) => bn.clone(),
        None => calibrate(&k, p, &ds.nonempty("train", &a.input)?.x)?,
    };
    let mut out = serde_json::Map::new();
    let xy: Vec<(&[u8], &[u8])> = examples.iter().map(|e| (&e.x[..], &e.y[..])).collect();
    let losses = split_losses(&k, p, &bnmean, &bnvar, &xy)?;
    for ((&s, loss), e) in splits.iter().zip(losses).zip(&examples) {
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
