//! Names drawn from a model: each from its own PCG stream (seed, index), in parallel blocks, or
//! all from one torch generator as the notebook's sampling cell draws them. `sample` and
//! `train`'s samples draw through [`for_each_block`], the web page through [`pcg_blocks`].

use anyhow::{bail, Result};
use makemore_core::infer::{unnormalised_probabilities, Inference};
use makemore_core::rng::{name_stream, uniform, Generator};
use makemore_core::{Dims, ParamsRef};

use crate::batch::normal_kernel;
use crate::data::{Vocab, END};
use crate::par::*;
use crate::torchrandom::{NormalKernel, TorchGenerator};

/// Names per parallel chunk (one scratch per chunk).
const NAMES_PER_CHUNK: usize = 64;

/// Largest block of names drawn before they are handed on. The first block is one chunk and
/// each next one twice as large up to this, so the first name comes at once and the memory
/// held is at most this many names whatever `--count` is.
pub const MAX_BLOCK: usize = 256 * NAMES_PER_CHUNK;

/// Longest name drawn (characters, prefix included): the word list's limit.
pub const MAX_NAME: usize = crate::data::MAX_WORD;

/// What to draw: names `0..count`; with PCG name i from the core's `name_stream(seed, i)`, with
/// a torch generator all from one generator seeded `seed`, in order, as the notebook's sampling
/// cell draws them.
pub struct Draw<'a> {
    pub count: usize,
    pub seed: u64,
    pub generator: Generator,
    /// Softmax temperature, finite and > 0.
    pub temperature: f32,
    /// Only the k most likely characters (0: all).
    pub top_k: usize,
    /// Every name starts with these characters.
    pub prefix: &'a str,
}

/// `c` for a message: `'c' (U+0063)`, or only `U+0000` for a control character.
fn show(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("'{c}' (U+{:04X})", u32::from(c))
    }
}

/// The token ids of `prefix`; errors say which character is wrong and why.
fn encode_prefix(vocab: &Vocab, prefix: &str) -> Result<Vec<u8>> {
    let chars = prefix.chars().count();
    if chars >= MAX_NAME {
        bail!(
            "--prefix has {chars} characters, but a name has at most {MAX_NAME}, so a prefix \
             has at most {}: shorten it",
            MAX_NAME - 1
        );
    }
    prefix
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if c == END {
                bail!(
                    "--prefix: character {} is '.', the reserved start/end token that marks \
                     where a name begins and ends, so it cannot be part of a name: remove it",
                    i + 1
                );
            }
            match vocab.encode(c) {
                Some(t) => Ok(t),
                None => bail!(
                    "--prefix: character {} is {}, which is not in the model's vocabulary \
                     \"{}\": use only these characters",
                    i + 1,
                    show(c),
                    vocab.symbols()[1..]
                        .iter()
                        .collect::<String>()
                        .escape_default()
                ),
            }
        })
        .collect()
}

/// Draws the names of `draw` in order, in blocks of at most [`MAX_BLOCK`] names drawn in
/// parallel, and hands each block to `emit` as soon as it is drawn; stops when `emit` returns
/// false. Name i depends only on (seed, i), so the names and their order do not depend on the
/// thread count or the blocks. Returns the number of names handed on.
pub fn for_each_block(
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    vocab: &Vocab,
    draw: &Draw<'_>,
    emit: impl FnMut(&[String]) -> bool,
) -> Result<usize> {
    match normal_kernel(draw.generator) {
        Some(kernel) => torch_blocks(params, bnmean, bnvar, vocab, draw, kernel, emit),
        None => pcg_blocks(params, bnmean, bnvar, vocab, draw, emit),
    }
}

/// The prefix's token ids, once the prefix and the temperature of `draw` are checked.
fn checked_prefix(vocab: &Vocab, draw: &Draw<'_>) -> Result<Vec<u8>> {
    let prefix = encode_prefix(vocab, draw.prefix)?;
    let temperature = draw.temperature;
    if !(temperature.is_finite() && temperature > 0.0) {
        bail!("--temperature {temperature} must be a finite number > 0");
    }
    Ok(prefix)
}

/// [`for_each_block`] with PCG streams, whatever `draw.generator` is: the web page's (it draws
/// with PCG only), so that its wasm has no torch generator.
pub fn pcg_blocks(
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    vocab: &Vocab,
    draw: &Draw<'_>,
    mut emit: impl FnMut(&[String]) -> bool,
) -> Result<usize> {
    let prefix = checked_prefix(vocab, draw)?;
    let temperature = draw.temperature;
    let mut done = 0;
    let mut block = NAMES_PER_CHUNK;
    while done < draw.count {
        let end = done + block.min(draw.count - done);
        let chunks: Vec<Vec<String>> = (0..(end - done).div_ceil(NAMES_PER_CHUNK))
            .into_par_iter()
            .map_init(
                || InferBuffers::new(params.dims(), 1),
                |buf, c| -> Result<Vec<String>> {
                    let mut inf = buf.inference(params, bnmean, bnvar)?;
                    let mut out = [0u8; MAX_NAME];
                    let first = done + c * NAMES_PER_CHUNK;
                    let names = first..end.min(first + NAMES_PER_CHUNK);
                    let mut chunk = Vec::with_capacity(names.len());
                    for i in names {
                        let mut rng = name_stream(draw.seed, i as u64);
                        let u = || uniform(&mut rng);
                        let len = inf.sample_name(&prefix, temperature, draw.top_k, u, &mut out)?;
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
        let names: Vec<String> = chunks.into_iter().flatten().collect();
        if !emit(&names) {
            return Ok(end);
        }
        done = end;
        block = (2 * block).min(MAX_BLOCK);
    }
    Ok(done)
}

/// [`for_each_block`] with a torch generator: the notebook's sampling cell, one generator for all
/// names, `torch.multinomial(probs, 1)` for each character, on this thread (each draw depends
/// on the one before). Blocks grow as [`for_each_block`]'s.
fn torch_blocks(
    params: ParamsRef<'_, f32>,
    bnmean: &[f32],
    bnvar: &[f32],
    vocab: &Vocab,
    draw: &Draw<'_>,
    kernel: NormalKernel,
    mut emit: impl FnMut(&[String]) -> bool,
) -> Result<usize> {
    let prefix = &checked_prefix(vocab, draw)?[..];
    let mut g = TorchGenerator::manual_seed(draw.seed, kernel);
    let mut buf = InferBuffers::new(params.dims(), 1);
    let mut inf = buf.inference(params, bnmean, bnvar)?;
    let mut out = [0u8; MAX_NAME];
    let mut probs = vec![0f32; params.dims().vocab];
    let (mut done, mut block) = (0, NAMES_PER_CHUNK);
    let mut names = Vec::with_capacity(MAX_BLOCK);
    while done < draw.count {
        names.clear();
        for _ in 0..block.min(draw.count - done) {
            let len = inf.sample_name_by(prefix, &mut out, |logits| {
                // F.softmax(logits / temperature) (top-k kept), normalised in f32 as torch's
                let sum = unnormalised_probabilities(logits, draw.temperature, draw.top_k)? as f32;
                for (p, &e) in probs.iter_mut().zip(logits.iter()) {
                    *p = e / sum;
                }
                Ok(g.multinomial1(&probs) as u8)
            })?;
            names.push(
                out[..len]
                    .iter()
                    .map(|&t| vocab.decode(t).unwrap_or('?'))
                    .collect(),
            );
        }
        done += names.len();
        if !emit(&names) {
            return Ok(done);
        }
        block = (2 * block).min(MAX_BLOCK);
    }
    Ok(done)
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
