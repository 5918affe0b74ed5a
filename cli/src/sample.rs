//! `sample`: names drawn from a checkpoint ([`cli::draw`]), each marked with its provenance.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::checkpoint::Checkpoint;
use crate::data::{read_words, split_words, Vocab, DEFAULT_SPLIT_SEED};
use crate::dataset::Provenance;
use crate::parallel::{pool, thread_count};
use crate::SampleArgs;
use cli::draw::{for_each_block, Draw};

/// `sample`: in a pool of `--threads` threads.
pub fn sample(a: &SampleArgs) -> Result<ExitCode> {
    pool(thread_count(a.threads)?)?.install(|| sample_in_pool(a))
}

fn sample_in_pool(a: &SampleArgs) -> Result<ExitCode> {
    let ck = Checkpoint::load(&a.checkpoint)?;
    // the data gives provenance, and the vocabulary when the checkpoint has none
    let words = read_words(&a.input);
    let vocab = match (&ck.vocab, &words) {
        (Some(v), _) => v.clone(),
        (None, Ok(w)) => Vocab::from_words(&w.words)?,
        (None, Err(e)) => bail!(
            "{}: the checkpoint has no vocabulary and the word list is unreadable: {e}",
            a.checkpoint.display()
        ),
    };
    if vocab.len() != ck.dims.vocab {
        bail!(
            "{}: the checkpoint has {} symbols, the vocabulary {}",
            a.checkpoint.display(),
            ck.dims.vocab,
            vocab.len()
        );
    }
    let p = ck.params_ref();
    let (bnmean, bnvar) = match &ck.bn {
        Some(bn) => bn.clone(),
        None => bail!("{}: the checkpoint has no calibrated batchnorm statistics (bnmean, bnvar); finish training or run `makemore eval` first", a.checkpoint.display()),
    };
    let split = match words {
        Ok(w) => Some(split_words(w.words, DEFAULT_SPLIT_SEED)),
        Err(e) => {
            eprintln!("warning: {e}; the names are printed without their provenance");
            None
        }
    };
    let prov = split.as_ref().map(Provenance::new);
    let t0 = std::time::Instant::now();
    let draw = Draw {
        count: a.count,
        seed: a.seed,
        generator: a.rng.into(),
        temperature: a.temperature,
        top_k: a.top_k,
        prefix: &a.prefix,
    };
    let mut lines = String::new();
    let mut open = true;
    let drawn = for_each_block(p, &bnmean, &bnvar, &vocab, &draw, |names| {
        lines.clear();
        for name in names {
            lines.push_str(name);
            if let Some(p) = &prov {
                lines.push('\t');
                lines.push_str(p.of(name));
            }
            lines.push('\n');
        }
        // false once stdout is closed (`| head`) or failed: stop drawing
        open = crate::print_str(&lines);
        open
    })?;
    if open {
        eprintln!(
            "sampled {drawn} names in {:.3} s",
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
