//! `sample`: names drawn from a checkpoint, each from its own PCG stream (seed, index).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use makemore_core::infer::Inference;
use makemore_core::rng::{name_stream, uniform};
use makemore_core::{Dims, ParamsRef};
use rayon::prelude::*;

use crate::checkpoint::Checkpoint;
use crate::data::{read_words, split_words, Vocab, DEFAULT_SPLIT_SEED};
use crate::dataset::Provenance;
use crate::parallel::{pool, thread_count};
use crate::SampleArgs;

/// Names per parallel chunk.
const NAMES_PER_CHUNK: usize = 64;

/// Longest name drawn (characters, prefix included).
pub const MAX_NAME: usize = 256;

/// Draws `count` names: name `i` from the core's `name_stream(seed, i)`.
#[allow(clippy::too_many_arguments)]
pub fn sample_names(
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    vocab: &Vocab,
    count: usize,
    seed: u64,
    temperature: f32,
    top_k: usize,
    prefix: &str,
) -> Result<Vec<String>> {
    let prefix: Vec<u8> = prefix
        .chars()
        .map(|c| {
            vocab
                .encode(c)
                .filter(|&t| t != 0)
                .with_context(|| format!("--prefix: {c:?} is not in the vocabulary"))
        })
        .collect::<Result<_>>()?;
    if !(temperature.is_finite() && temperature > 0.0) {
        bail!("--temperature {temperature} must be a finite number > 0");
    }
    // Chunks of names run in parallel, each with its own scratch; name i depends only on
    // (seed, i), so the names and their order do not depend on the thread count.
    let chunks: Vec<Vec<String>> = (0..count.div_ceil(NAMES_PER_CHUNK))
        .into_par_iter()
        .map_init(
            || InferBuffers::new(params.dims(), 1),
            |buf, c| -> Result<Vec<String>> {
                let mut inf = buf.inference(params, bnmean, bnvar)?;
                let mut out = [0u8; MAX_NAME];
                let names = c * NAMES_PER_CHUNK..count.min((c + 1) * NAMES_PER_CHUNK);
                let mut chunk = Vec::with_capacity(names.len());
                for i in names {
                    let mut rng = name_stream(seed, i as u64);
                    let draw = || uniform(&mut rng);
                    let len = inf.sample_name(&prefix, temperature, top_k, draw, &mut out)?;
                    chunk.push(
                        out[..len]
                            .iter()
                            .map(|&t| vocab.decode(t).unwrap_or('?'))
                            .collect(),
                    );
                }
                Ok(chunk)
            },
        )
        .collect::<Result<_>>()?;
    Ok(chunks.into_iter().flatten().collect())
}

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
    let t0 = std::time::Instant::now();
    let names = sample_names(
        p,
        &bnmean,
        &bnvar,
        &vocab,
        a.count,
        a.seed,
        a.temperature,
        a.top_k,
        &a.prefix,
    )?;
    let prov = words
        .ok()
        .map(|w| Provenance::new(&split_words(w.words, DEFAULT_SPLIT_SEED)));
    let lines: Vec<String> = names
        .par_iter()
        .map(|name| match &prov {
            Some(p) => format!("{name}\t{}\n", p.of(name)),
            None => format!("{name}\n"),
        })
        .collect();
    let out = lines.concat();
    // A closed pipe (`makemore sample | head`) ends the output quietly instead of panicking.
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing the names to stdout")?,
    }
    eprintln!(
        "sampled {} names in {:.3} s",
        names.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
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
