//! `eval`, and the random streams of training.

use std::process::ExitCode;

use anyhow::{bail, Result};
use rand_core::Rng as _;
use rand_pcg::Pcg64;

use crate::checkpoint::Checkpoint;
use crate::dataset::Dataset;
use crate::model::{calibrate, kernels, split_losses};
use crate::parallel::{pool, thread_count};
use crate::EvalArgs;

/// Adapts a PCG generator to the core's random source.
pub struct CoreRng<'a>(pub &'a mut Pcg64);

impl makemore_core::Rng for CoreRng<'_> {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// The PCG stream of the initialisation.
pub fn init_rng(seed: u64) -> Pcg64 {
    Pcg64::new(seed as u128, 0xda3e_39cb_94b9_5bdb)
}

/// The PCG stream minibatch `step` is drawn from: (seed, step) is the whole RNG state of a run,
/// so a resumed run draws exactly the batches the uninterrupted one would.
pub fn batch_rng(seed: u64, step: u64) -> Pcg64 {
    Pcg64::new(((seed as u128) << 64) | step as u128, 0x5851_f42d_4c95_7f2d)
}

/// Uniform in 0..n without modulo bias (Lemire's multiply-and-reject).
pub fn below(rng: &mut Pcg64, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (rng.next_u64() as u128) * (n as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// `eval`: loss of each split with the checkpoint's calibrated batchnorm (calibrating over the
/// training split if the checkpoint has no statistics), in a pool of `--threads` threads.
pub fn eval(a: &EvalArgs) -> Result<ExitCode> {
    pool(thread_count(a.threads)?)?.install(|| eval_in_pool(a))
}

fn eval_in_pool(a: &EvalArgs) -> Result<ExitCode> {
    let k = kernels(a.isa.as_deref())?;
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
    let splits: Vec<&str> = if a.split == "all" {
        vec!["train", "val", "test"]
    } else {
        vec![a.split.as_str()]
    };
    let mut out = serde_json::Map::new();
    let examples: Vec<(&[u8], &[u8])> = splits
        .iter()
        .map(|s| {
            let e = ds.examples(s);
            (&e.x[..], &e.y[..])
        })
        .collect();
    let losses = split_losses(&k, p, &bnmean, &bnvar, &examples)?;
    for (s, loss) in splits.into_iter().zip(losses) {
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
