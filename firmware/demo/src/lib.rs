//! What the firmware runs, in plain `no_std` code that the host runs too, so that the device's
//! output can be diffed against the host's line by line:
//! - [`sample_checkpoint`] and [`sample_in_place`]: a checkpoint written by `makemore train`, read
//!   by the core's allocation-free safetensors reader (copied into RAM, or viewed where it lies),
//!   and names drawn exactly as `makemore sample` draws them ([`draw_names`]);
//! - [`train`]: the notebook's initialisation and SGD with the core's in-place step or its lean
//!   step (one hidden unit at a time), on batches built from the words in flash ([`WORDS`]) with
//!   the core's SplitMix64.
//!
//! Everything prints through `core::fmt::Write`: semihosting on the device, stdout on the host.
//! Each name and each step runs inside a [`Meter`]: the device counts its cost, the host
//! ([`NoMeter`]) nothing.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt::{self, Write};
use core::num::NonZeroU64;

use bytemuck::PodCastError;
use makemore_core::checkpoint::{
    check_values, load_model, read_config, read_dims, read_vocab, verify_checksum,
    MODEL_TENSOR_NAMES,
};
use makemore_core::infer::Inference;
use makemore_core::lean::LeanTrainState;
use makemore_core::model::{Dims, ParamsRef};
use makemore_core::rng::{below, name_stream, uniform, SplitMix64};
use makemore_core::safetensors::{Dtype, SafeTensors, SafetensorsError, TensorView};
use makemore_core::train::InPlaceTrainState;
use makemore_core::{Error, Params};

include!(concat!(env!("OUT_DIR"), "/words.rs"));

/// The seed `makemore sample` uses by default (the core's).
pub use makemore_core::rng::SAMPLE_SEED;
/// Names sampled.
pub const SAMPLE_COUNT: usize = 20;
/// Longest name drawn (characters), as in `makemore sample`.
pub const MAX_NAME: usize = 256;

/// Seed of the initialisation (`SplitMix64(TRAIN_SEED)`) and of the batches
/// (`SplitMix64(!TRAIN_SEED)`): the core's default training seed.
pub use makemore_core::rng::TRAIN_SEED;
/// SGD steps, learning rate, and a loss line every `PRINT_EVERY` steps (and after the last).
pub const TRAIN_STEPS: u64 = 200;
pub const LR: f32 = 0.1;
pub const PRINT_EVERY: u64 = 20;

/// The notebook's Exercise-4 training state: batch 32, V=27, T=3, E=10, H=200 (109.3 KiB).
pub type Exercise4 = InPlaceTrainState<f32, 32, 27, 3, 10, 30, 200>;
/// The Exercise-4 model with the core's lean step: batch 32, V=27, T=3, E=10, H=200 (52.9 KiB).
pub type Exercise4Lean = LeanTrainState<f32, 32, 27, 3, 10, 30, 200>;
/// The notebook's Exercise-1 training state: batch 32, V=27, T=3, E=10, H=64 (40.8 KiB).
pub type Exercise1 = InPlaceTrainState<f32, 32, 27, 3, 10, 30, 64>;

/// A training state [`train`] can drive: its parameters, and one SGD step on a batch `xb` (N, T),
/// `yb` (N) that returns the loss before the update.
pub trait Trainer<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>
{
    fn params_mut(&mut self) -> &mut Params<f32, V, T, E, TE, H>;
    fn step(&mut self, xb: &[u8], yb: &[u8], lr: f32) -> Result<f32, Error>;
}

impl<
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > Trainer<N, V, T, E, TE, H> for InPlaceTrainState<f32, N, V, T, E, TE, H>
{
    fn params_mut(&mut self) -> &mut Params<f32, V, T, E, TE, H> {
        &mut self.params
    }
    fn step(&mut self, xb: &[u8], yb: &[u8], lr: f32) -> Result<f32, Error> {
        InPlaceTrainState::step(self, xb, yb, lr)
    }
}

impl<
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > Trainer<N, V, T, E, TE, H> for LeanTrainState<f32, N, V, T, E, TE, H>
{
    fn params_mut(&mut self) -> &mut Params<f32, V, T, E, TE, H> {
        &mut self.params
    }
    fn step(&mut self, xb: &[u8], yb: &[u8], lr: f32) -> Result<f32, Error> {
        LeanTrainState::step(self, xb, yb, lr)
    }
}

/// Anything the demo can fail with: the core's errors, or a checkpoint that does not fit.
#[derive(Debug)]
pub enum DemoError {
    Core(Error),
    Checkpoint(SafetensorsError),
    /// The checkpoint's dims differ from the firmware's compile-time ones.
    WrongDims,
    /// The checkpoint lacks `bnmean`/`bnvar` or the vocabulary metadata.
    Incomplete(&'static str),
    /// A tensor's bytes cannot be viewed as `&[f32]` where they lie ([`sample_in_place`]).
    NotInPlace {
        tensor: &'static str,
        /// where its bytes start
        addr: usize,
        why: &'static str,
    },
    Fmt,
}

impl From<Error> for DemoError {
    fn from(e: Error) -> Self {
        DemoError::Core(e)
    }
}
impl From<SafetensorsError> for DemoError {
    fn from(e: SafetensorsError) -> Self {
        DemoError::Checkpoint(e)
    }
}
impl From<fmt::Error> for DemoError {
    fn from(_: fmt::Error) -> Self {
        DemoError::Fmt
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Core(e) => write!(f, "{e}"),
            DemoError::Checkpoint(e) => write!(f, "checkpoint: {e}"),
            DemoError::WrongDims => f.write_str("checkpoint: dims differ from the firmware's"),
            DemoError::Incomplete(what) => write!(f, "checkpoint: no {what}"),
            DemoError::NotInPlace { tensor, addr, why } => write!(
                f,
                "checkpoint: tensor {tensor} (bytes at {addr:#010x}) cannot be read in place: {why}"
            ),
            DemoError::Fmt => f.write_str("output failed"),
        }
    }
}

/// The scratch of [`Inference`] for one row. Zeroed by [`InferScratch::ZERO`] (a `static`).
pub struct InferScratch<const V: usize, const H: usize> {
    /// (H) `(bnvar + 1e-5)**-0.5`
    pub bnvar_inv: [f32; H],
    /// (1, H) h and (1, V) logits of the one context being sampled
    pub h: [f32; H],
    pub logits: [f32; V],
}

impl<const V: usize, const H: usize> InferScratch<V, H> {
    pub const ZERO: Self = InferScratch {
        bnvar_inv: [0.0; H],
        h: [0.0; H],
        logits: [0.0; V],
    };
}

/// What sampling from a copy of the parameters needs besides them: the calibrated batchnorm
/// statistics and the [`InferScratch`]. Zeroed by [`SampleScratch::ZERO`] (a `static`).
pub struct SampleScratch<const V: usize, const H: usize> {
    /// (H) each: the checkpoint's calibrated statistics
    pub bnmean: [f32; H],
    pub bnvar: [f32; H],
    pub infer: InferScratch<V, H>,
}

impl<const V: usize, const H: usize> SampleScratch<V, H> {
    pub const ZERO: Self = SampleScratch {
        bnmean: [0.0; H],
        bnvar: [0.0; H],
        infer: InferScratch::ZERO,
    };
}

/// Runs each name and each training step, measuring what it costs (the firmware counts SysTick
/// ticks); its total is the caller's to read.
pub trait Meter {
    fn measure<R>(&mut self, f: impl FnOnce() -> R) -> R;
}

/// Measures nothing (the host).
pub struct NoMeter;

impl Meter for NoMeter {
    fn measure<R>(&mut self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Parses `checkpoint`, checks what both ways of sampling need before reading any value (the
/// model of `dims`: every tensor with its shape, [`read_dims`]; the config metadata), runs `read`
/// on the parsed file, and unescapes the vocabulary into `vocab_buf`: '.' followed by the sorted
/// symbols, V of them (the schema checks the count). Returns what `read` returned and the
/// vocabulary. The training state is not read: sampling does not need it (nor the `f32` parser).
///
/// Never inlined: the parsed file (about 1 KiB) and the parser's frames are gone before the
/// names are drawn.
#[inline(never)]
fn read_checkpoint<'a, 'b, R>(
    checkpoint: &'a [u8],
    dims: Dims,
    vocab_buf: &'b mut [u8; 256],
    read: impl FnOnce(&SafeTensors<'a>) -> Result<R, DemoError>,
) -> Result<(R, &'b str), DemoError> {
    let st = SafeTensors::parse(checkpoint)?;
    if read_dims(&st, None)? != dims {
        return Err(DemoError::WrongDims);
    }
    read_config(&st, dims)?;
    let r = read(&st)?;
    let vocab = read_vocab(&st, dims, vocab_buf)?.ok_or(DemoError::Incomplete("vocabulary"))?;
    Ok((r, vocab))
}

/// Prints `count` names drawn by `inf` with temperature 1, no top-k, no prefix, one per line:
/// what `makemore sample --seed SEED --count COUNT` prints in its first column. `vocab` (V
/// characters) spells the tokens. Each name is drawn inside `meter` (its printing is not).
pub fn draw_names(
    inf: &mut Inference<'_, f32>,
    vocab: &str,
    count: usize,
    seed: u64,
    meter: &mut impl Meter,
    out: &mut impl Write,
) -> Result<(), DemoError> {
    let mut name = [0u8; MAX_NAME];
    for i in 0..count {
        let len = meter.measure(|| {
            // the CLI's stream of name i (CI diffs the names the two print)
            let mut rng = name_stream(seed, i as u64);
            inf.sample_name(&[], 1.0, 0, || uniform(&mut rng), &mut name)
        })?;
        for &t in &name[..len] {
            out.write_char(vocab.chars().nth(t as usize).unwrap_or('?'))?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

/// Loads `checkpoint` (safetensors bytes from `makemore train`) into `params` and its calibrated
/// bnmean, bnvar into `scratch`, then prints `count` names ([`draw_names`]).
///
/// Never inlined, nor is [`train`]: the two phases then use the stack one after the other
/// instead of adding up in their caller's frame.
#[inline(never)]
pub fn sample_checkpoint<
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    checkpoint: &[u8],
    params: &mut Params<f32, V, T, E, TE, H>,
    scratch: &mut SampleScratch<V, H>,
    count: usize,
    seed: u64,
    meter: &mut impl Meter,
    out: &mut impl Write,
) -> Result<(), DemoError> {
    let dims = Params::<f32, V, T, E, TE, H>::DIMS;
    let SampleScratch {
        bnmean,
        bnvar,
        infer: InferScratch {
            bnvar_inv,
            h,
            logits,
        },
    } = scratch;
    let mut vocab_buf = [0u8; 256];
    let ((), vocab) = read_checkpoint(checkpoint, dims, &mut vocab_buf, |st| {
        // checksum, values, then the copy
        match load_model(st, &mut params.view_mut(), Some((bnmean, bnvar)))? {
            true => Ok(()),
            false => Err(DemoError::Incomplete("bnmean/bnvar")),
        }
    })?;
    let mut inf = Inference::new(params.view(), &bnmean[..], &bnvar[..], bnvar_inv, h, logits)?;
    draw_names(&mut inf, vocab, count, seed, meter, out)
}

/// Views tensor `name`'s little-endian `F32` bytes as `&[f32]` where they lie (in flash on the
/// device): they must be 4-byte aligned, as they are when the file is (the writer pads the
/// header to 8 bytes and stores `f32` tensors one after the other).
fn f32_in_place<'a>(name: &'static str, t: TensorView<'a>) -> Result<&'a [f32], DemoError> {
    let data = t.data();
    let refuse = |why| DemoError::NotInPlace {
        tensor: name,
        addr: data.as_ptr() as usize,
        why,
    };
    if t.dtype() != Dtype::F32 {
        return Err(refuse("not F32"));
    }
    if cfg!(target_endian = "big") {
        return Err(refuse("the file is little-endian, this target is not"));
    }
    bytemuck::try_cast_slice(data).map_err(|e| {
        refuse(match e {
            PodCastError::TargetAlignmentGreaterAndInputNotAligned => {
                "not 4-byte aligned (embed the file 4-byte aligned)"
            }
            PodCastError::OutputSliceWouldHaveSlop => "its length is not a multiple of 4",
            _ => "it is not a slice of f32",
        })
    })
}

/// [`sample_checkpoint`] without copying: the parameters and bnmean, bnvar are read where the
/// `checkpoint` bytes lie (flash), which must be 4-byte aligned; only `scratch` is written. The
/// checkpoint must hold the model of the compile-time dims and its calibrated statistics, and
/// passes the checks [`load_model`] makes (checksum, finite values).
#[inline(never)]
pub fn sample_in_place<
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    checkpoint: &[u8],
    scratch: &mut InferScratch<V, H>,
    count: usize,
    seed: u64,
    meter: &mut impl Meter,
    out: &mut impl Write,
) -> Result<(), DemoError> {
    let dims = Params::<f32, V, T, E, TE, H>::DIMS;
    let mut vocab_buf = [0u8; 256];
    let (views, vocab) = read_checkpoint(checkpoint, dims, &mut vocab_buf, |st| {
        // the checks load_model makes before it copies
        verify_checksum(st)?;
        check_values(st)?;
        let mut views = [&[][..]; 9];
        for (view, name) in views.iter_mut().zip(MODEL_TENSOR_NAMES) {
            // read_dims: the seven parameters are there, and bnmean and bnvar both or neither
            let t = st
                .tensor(name)
                .ok_or(DemoError::Incomplete("bnmean/bnvar"))?;
            *view = f32_in_place(name, t)?;
        }
        Ok(views)
    })?;
    let [c, w1, b1, w2, b2, bngain, bnbias, bnmean, bnvar] = views;
    let params = ParamsRef::new(dims, [c, w1, b1, w2, b2, bngain, bnbias])?;
    let InferScratch {
        bnvar_inv,
        h,
        logits,
    } = scratch;
    let mut inf = Inference::new(params, bnmean, bnvar, bnvar_inv, h, logits)?;
    draw_names(&mut inf, vocab, count, seed, meter, out)
}

/// The token id of an ASCII character of [`VOCAB`].
fn token(c: u8) -> u8 {
    VOCAB.bytes().position(|v| v == c).unwrap_or(0) as u8
}

/// Writes example `e` (0..the last [`EXAMPLE_STARTS`]) of the words, in the notebook's
/// `build_dataset` order: `x` (T) the context, the returned id its next token.
pub fn example(e: u32, x: &mut [u8]) -> u8 {
    // the word holding example e: the last start <= e
    let i = EXAMPLE_STARTS.partition_point(|&s| s <= e) - 1;
    let word = WORDS[i].as_bytes();
    let pos = (e - EXAMPLE_STARTS[i]) as usize; // 0..=len; at len the target is '.'
    let t = x.len();
    for (k, slot) in x.iter_mut().enumerate() {
        // the character at word position pos - t + k, '.' before the word's start
        *slot = match (pos + k).checked_sub(t) {
            Some(j) => token(word[j]),
            None => 0,
        };
    }
    word.get(pos).map_or(0, |&c| token(c))
}

/// Number of examples of all the words (checked non-zero when the firmware is built).
const EXAMPLES: NonZeroU64 = match NonZeroU64::new(EXAMPLE_STARTS[WORDS.len()] as u64) {
    Some(n) => n,
    None => panic!("the word list in flash has no examples"),
};

/// Fills `xb` (N, T) and `yb` (N) with examples drawn uniformly from all the words' examples,
/// with the core's `below`, as the CLI draws batches (from another stream: SplitMix64 here).
pub fn batch<const N: usize, const T: usize>(
    rng: &mut SplitMix64,
    xb: &mut [[u8; T]; N],
    yb: &mut [u8; N],
) {
    for (x, y) in xb.iter_mut().zip(yb.iter_mut()) {
        *y = example(below(rng, EXAMPLES) as u32, x);
    }
}

/// The notebook's initialisation from `SplitMix64(seed)`, then `steps` SGD steps of `state` on
/// batches from `SplitMix64(!seed)`; prints a header, then `step S loss L (bits)` every
/// `every` steps and after the last. Each step (drawing its batch, then the SGD step) runs inside
/// `meter`. Returns the last loss.
#[inline(never)]
pub fn train<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    state: &mut impl Trainer<N, V, T, E, TE, H>,
    seed: u64,
    steps: u64,
    lr: f32,
    every: u64,
    meter: &mut impl Meter,
    out: &mut impl Write,
) -> Result<f32, DemoError> {
    let dims = Params::<f32, V, T, E, TE, H>::DIMS;
    writeln!(
        out,
        "train: V={} T={} E={} H={} ({} parameters), batch {N}, lr {lr}, {steps} steps, seed {seed}, \
         {} words ({} examples)",
        dims.vocab,
        dims.context,
        dims.embedding,
        dims.hidden,
        dims.num_params(),
        WORDS.len(),
        EXAMPLE_STARTS[WORDS.len()],
    )?;
    state
        .params_mut()
        .view_mut()
        .init_notebook(&mut SplitMix64(seed));
    let mut rng = SplitMix64(!seed);
    let (mut xb, mut yb) = ([[0u8; T]; N], [0u8; N]);
    let mut loss = f32::NAN;
    for step in 0..steps {
        loss = meter.measure(|| {
            batch(&mut rng, &mut xb, &mut yb);
            state.step(xb.as_flattened(), &yb, lr)
        })?;
        if step % every == 0 || step + 1 == steps {
            writeln!(
                out,
                "step {step:3} loss {loss:.6} ({:#010x})",
                loss.to_bits()
            )?;
        }
    }
    Ok(loss)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::boxed::Box;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    use makemore_core::checkpoint::{key, save_model, saved_model_len};

    use super::*;

    type Ex1Params = Params<f32, 27, 3, 10, 30, 64>;

    /// Counts the intervals it measures.
    struct Count(usize);

    impl Meter for Count {
        fn measure<R>(&mut self, f: impl FnOnce() -> R) -> R {
            self.0 += 1;
            f()
        }
    }

    /// An Exercise-1 checkpoint with calibrated statistics and the vocabulary, in 8-byte aligned
    /// storage: the storage and the file's length in bytes.
    fn checkpoint() -> (Vec<u64>, usize) {
        let mut params = Box::new(Ex1Params::ZERO);
        params.view_mut().init_notebook(&mut SplitMix64(7));
        let (mean, var) = ([0.25f32; 64], [1.5f32; 64]);
        let meta = [(key::VOCAB, VOCAB)];
        let len = saved_model_len(Ex1Params::DIMS, true, &meta);
        let mut buf = vec![0u64; len.div_ceil(8)];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let n = save_model(bytes, params.view(), Some((&mean, &var)), &meta).unwrap();
        assert_eq!(n, len);
        (buf, n)
    }

    #[test]
    fn in_place_draws_the_names_of_the_copy() {
        let (buf, len) = checkpoint();
        let bytes = &bytemuck::cast_slice::<u64, u8>(&buf)[..len];
        let mut copied = String::new();
        let mut meter = Count(0);
        sample_checkpoint(
            bytes,
            &mut Box::new(Ex1Params::ZERO),
            &mut Box::new(SampleScratch::ZERO),
            SAMPLE_COUNT,
            SAMPLE_SEED,
            &mut meter,
            &mut copied,
        )
        .unwrap();
        assert_eq!(meter.0, SAMPLE_COUNT);
        let mut in_place = String::new();
        let mut meter = Count(0);
        sample_in_place::<27, 3, 10, 30, 64>(
            bytes,
            &mut Box::new(InferScratch::ZERO),
            SAMPLE_COUNT,
            SAMPLE_SEED,
            &mut meter,
            &mut in_place,
        )
        .unwrap();
        assert_eq!(meter.0, SAMPLE_COUNT);
        assert_eq!(in_place.lines().count(), SAMPLE_COUNT);
        assert_eq!(in_place, copied);
    }

    #[test]
    fn in_place_refuses_misaligned_bytes_and_other_dims() {
        let (buf, len) = checkpoint();
        let mut shifted = vec![0u64; buf.len() + 1];
        let shifted: &mut [u8] = bytemuck::cast_slice_mut(&mut shifted);
        shifted[1..1 + len].copy_from_slice(&bytemuck::cast_slice::<u64, u8>(&buf)[..len]);
        let mut out = String::new();
        let e = sample_in_place::<27, 3, 10, 30, 64>(
            &shifted[1..1 + len],
            &mut Box::new(InferScratch::ZERO),
            1,
            SAMPLE_SEED,
            &mut NoMeter,
            &mut out,
        )
        .unwrap_err();
        assert!(
            matches!(e, DemoError::NotInPlace { tensor: "C", .. }),
            "{e}"
        );
        assert!(std::format!("{e}").contains("not 4-byte aligned"), "{e}");
        let e = sample_in_place::<27, 3, 10, 30, 200>(
            &bytemuck::cast_slice::<u64, u8>(&buf)[..len],
            &mut Box::new(InferScratch::ZERO),
            1,
            SAMPLE_SEED,
            &mut NoMeter,
            &mut out,
        )
        .unwrap_err();
        assert!(matches!(e, DemoError::WrongDims), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn train_measures_each_step() {
        let mut meter = Count(0);
        let mut out = String::new();
        let mut state = Box::new(Exercise1::ZERO);
        train(
            &mut *state,
            TRAIN_SEED,
            3,
            LR,
            PRINT_EVERY,
            &mut meter,
            &mut out,
        )
        .unwrap();
        assert_eq!(meter.0, 3);
    }

    #[test]
    fn examples_follow_build_dataset() {
        // "emma" is the first word of names.txt: ... -> e, ..e -> m, .em -> m, emm -> a, mma -> .
        assert_eq!(WORDS[0], "emma");
        let mut x = [0u8; 3];
        let want: [([char; 3], char); 5] = [
            (['.', '.', '.'], 'e'),
            (['.', '.', 'e'], 'm'),
            (['.', 'e', 'm'], 'm'),
            (['e', 'm', 'm'], 'a'),
            (['m', 'm', 'a'], '.'),
        ];
        for (e, (ctx, y)) in want.iter().enumerate() {
            let got = example(e as u32, &mut x);
            assert_eq!(x, ctx.map(|c| token(c as u8)), "example {e}");
            assert_eq!(got, token(*y as u8), "example {e}");
        }
        // the first example of the second word starts from '.' again
        let second = EXAMPLE_STARTS[1];
        assert_eq!(second, 5);
        example(second, &mut x);
        assert_eq!(x, [0, 0, 0]);
        assert_eq!(VOCAB.len(), 27);
    }
}
