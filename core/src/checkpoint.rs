//! The checkpoint schema, defined once: the tensors (names, order, shapes from [`Dims`]), the
//! metadata keys and their values (format, vocabulary, config, training state), and the checksum.
//! The CLI and the firmware read and write checkpoints through this module; no other code spells
//! a key. The container is [`crate::safetensors`].
//!
//! # Tensors
//!
//! [`MODEL_TENSOR_NAMES`] in this order, `F32`: `C` (V,E), `W1` (T*E,H), `b1` (H), `W2` (H,V),
//! `b2` (V), `bngain` (1,H), `bnbias` (1,H) (the seven of [`PARAM_NAMES`]), and optionally the
//! calibrated batchnorm statistics `bnmean` (1,H), `bnvar` (1,H). On reading, the four (1,H) may
//! also be (H). A run whose optimiser has state (AdamW) adds [`OPTIMIZER_STATE`]
//! (`Optimizer::state_len` values: m then v, each in the parameters' flat layout), last.
//!
//! # Metadata
//!
//! Written by [`save`] in this order (a file's bytes depend on it), each key a constant of [`key`]:
//!
//! | key | value | on reading ([`read_metadata`]: [`read_config`], [`read_vocab`], [`read_run`]) |
//! |---|---|---|
//! | `format` | [`FORMAT`] | optional; any other value is refused |
//! | `vocab` | `.` then the sorted symbols: V characters | optional; must have V characters |
//! | `context`, `embedding`, `hidden` | T, E, H in decimal: the config | optional; must equal the shapes' |
//! | `step`, `seed`, `steps`, `batch_size`, `lr`, `lr_decay_step` | the [`RunState`] in decimal, `lr` as `f32`'s `Display` (shortest round trip) | all six or none; `lr` finite and > 0, `batch_size` >= 2 ([`check_run`]) |
//! | `lr_schedule` | [`Schedule`]: `cosine warmup=W total=N min_lr=X` (written only for cosine) | optional, with the six; absent: the step decay |
//! | `optimizer` | [`RunState::optimizer`] and [`RunState::grad_clip`]: `adamw beta1=B1 beta2=B2 eps=E weight_decay=W` and/or `grad_clip=X` after `sgd`/the AdamW text (written only when not plain SGD; floats in `f32`'s `{:e}`) | optional, with the six; absent: SGD, no clipping |
//! | `data_fingerprint` | [`RunState::fingerprint`]: `fnv1a64:` and 16 lowercase hex digits | optional, with the six |
//! | `rng` | [`RunState::generator`]: `torch` or `torch-generic` (written only when not PCG) | optional, with the six; absent: PCG |
//! | `history` | [`Metadata::history`]: the trainer's text (loss windows, evaluations), opaque here | optional |
//! | `checksum` | `crc32:` and 8 lowercase hex digits | optional; must match the tensor bytes |
//!
//! The checksum ([`save_model`] adds it last) is the CRC-32 (zlib's) of the whole byte buffer after
//! the header, i.e. of every tensor's bytes in file order (in Python: `zlib.crc32(data[8 + n:])`).
//! [`load_model`] verifies it when present ([`verify_checksum`]), so a flipped byte in the data is
//! refused. The header itself is not covered: its JSON is validated instead. A checkpoint holds
//! only finite values and a `bnvar` >= 0 ([`check_values`]): [`save_model`] refuses to write
//! others and [`load_model`] to read them, naming the tensor and the index.
//!
//! Every key is optional on reading so that files without metadata (PyTorch's `save_file`) load;
//! unknown keys are ignored.

use core::fmt::{self, Write as _};

use crate::crc32::Crc32;
use crate::error::Error;
use crate::model::{Dims, ParamsMut, ParamsRef, PARAM_NAMES};
use crate::optim::{AdamW, Optimizer};
use crate::rng::Generator;
use crate::safetensors::json::unescape_validated;
use crate::safetensors::{
    write, written_len, NameBuf, SafeTensors, SafetensorsError, Shape, TensorArg, MAX_METADATA,
};

type Result<T> = core::result::Result<T, SafetensorsError>;

/// The model's tensor names, in the notebook's order: the seven parameters of [`PARAM_NAMES`],
/// then the batchnorm running statistics `bnmean` and `bnvar` (optional in a file).
pub const MODEL_TENSOR_NAMES: [&str; 9] = {
    let p = PARAM_NAMES;
    [p[0], p[1], p[2], p[3], p[4], p[5], p[6], "bnmean", "bnvar"]
};
/// The optimiser's state tensor, 1-D: AdamW's m then v in the parameters' flat layout.
pub const OPTIMIZER_STATE: &str = "optimizer_state";
const BNMEAN: &str = MODEL_TENSOR_NAMES[7];
const BNVAR: &str = MODEL_TENSOR_NAMES[8];

/// The value of the `format` metadata this code writes and reads.
pub const FORMAT: &str = "makemore-rs/1";

/// The metadata keys of a checkpoint: the only place they are spelled.
pub mod key {
    /// [`super::FORMAT`].
    pub const FORMAT: &str = "format";
    /// The vocabulary: `.` then the sorted symbols, one character per row of C.
    pub const VOCAB: &str = "vocab";
    /// T, the context length.
    pub const CONTEXT: &str = "context";
    /// E, the embedding width.
    pub const EMBEDDING: &str = "embedding";
    /// H, the hidden width.
    pub const HIDDEN: &str = "hidden";
    /// [`super::RunState::step`].
    pub const STEP: &str = "step";
    /// [`super::RunState::seed`].
    pub const SEED: &str = "seed";
    /// [`super::RunState::steps`].
    pub const STEPS: &str = "steps";
    /// [`super::RunState::batch_size`].
    pub const BATCH_SIZE: &str = "batch_size";
    /// [`super::RunState::lr`].
    pub const LR: &str = "lr";
    /// [`super::RunState::lr_decay_step`].
    pub const LR_DECAY_STEP: &str = "lr_decay_step";
    /// [`super::RunState::schedule`] when it is not the step decay.
    pub const LR_SCHEDULE: &str = "lr_schedule";
    /// [`super::RunState::fingerprint`].
    pub const FINGERPRINT: &str = "data_fingerprint";
    /// [`super::RunState::optimizer`] and [`super::RunState::grad_clip`], when not plain SGD.
    pub const OPTIMIZER: &str = "optimizer";
    /// [`super::RunState::generator`] when it is not PCG.
    pub const RNG: &str = "rng";
    /// [`super::Metadata::history`].
    pub const HISTORY: &str = "history";
    /// The CRC-32 of the tensor bytes, written by [`super::save_model`].
    pub const CHECKSUM: &str = "checksum";
    /// The training state's keys, in the order written: all present or none.
    pub const RUN: [&str; 6] = [STEP, SEED, STEPS, BATCH_SIZE, LR, LR_DECAY_STEP];
}

/// The metadata key of the tensor bytes' checksum (= [`key::CHECKSUM`]).
pub const CHECKSUM_KEY: &str = key::CHECKSUM;
/// The checksum's algorithm, before its 8 hex digits.
const CHECKSUM_PREFIX: &str = "crc32:";
/// `crc32:` and 8 hex digits.
const CHECKSUM_LEN: usize = 14;

// ------------------------------------------------------------------------------------------------
// The tensors

/// The shapes of [`MODEL_TENSOR_NAMES`] for `d` (saturating for absurd dimensions).
fn model_shapes(d: Dims) -> [Shape; 9] {
    let (v, e, h) = (d.vocab, d.embedding, d.hidden);
    let te = d.context.saturating_mul(e);
    [
        Shape::of2(v, e),
        Shape::of2(te, h),
        Shape::of1(h),
        Shape::of2(h, v),
        Shape::of1(v),
        Shape::of2(1, h),
        Shape::of2(1, h),
        Shape::of2(1, h),
        Shape::of2(1, h),
    ]
}

/// The context length the file's metadata states, if any.
fn metadata_context(st: &SafeTensors<'_>) -> Result<Option<usize>> {
    metadata_usize(st, key::CONTEXT)
}

fn check_context(stated: Option<usize>, from: &'static str, context: usize) -> Result<()> {
    match stated {
        Some(got) if got != context => Err(SafetensorsError::ContextMismatch {
            from,
            expected: context,
            got,
        }),
        _ => Ok(()),
    }
}

fn bn_len_check(what: &'static str, len: usize, hidden: usize) -> Result<()> {
    if len != hidden {
        return Err(Error::LengthMismatch {
            what,
            expected: hidden,
            got: len,
        }
        .into());
    }
    Ok(())
}

/// Checks every tensor of `st` against the model of dimensions `d`: all of C, W1, b1, W2, b2,
/// bngain, bnbias present with their shapes (bngain, bnbias, bnmean, bnvar as (1,H) or (H)),
/// bnmean and bnvar both or neither, no other tensor, the `context` metadata (if any) agreeing.
/// Returns whether bnmean and bnvar are present.
fn check_model(st: &SafeTensors<'_>, d: Dims) -> Result<bool> {
    let shapes = model_shapes(d);
    let mut present = [false; 9];
    for (i, (name, want)) in MODEL_TENSOR_NAMES.iter().zip(shapes).enumerate() {
        match st.tensor(name) {
            None if i < 7 => return Err(SafetensorsError::MissingTensor { name }),
            None => {}
            Some(t) => {
                present[i] = true;
                let got = t.shape_value();
                let flat_ok = i >= 5 && got.as_slice() == [d.hidden];
                if got != want && !flat_ok {
                    return Err(SafetensorsError::ShapeMismatch {
                        tensor: name,
                        expected: want,
                        got,
                    });
                }
            }
        }
    }
    match (present[7], present[8]) {
        (true, false) => {
            return Err(SafetensorsError::IncompleteBatchnorm {
                present: BNMEAN,
                missing: BNVAR,
            })
        }
        (false, true) => {
            return Err(SafetensorsError::IncompleteBatchnorm {
                present: BNVAR,
                missing: BNMEAN,
            })
        }
        _ => {}
    }
    if let Some(t) = st
        .tensors()
        .find(|t| !MODEL_TENSOR_NAMES.iter().any(|n| t.name_eq(n)) && !t.name_eq(OPTIMIZER_STATE))
    {
        return Err(SafetensorsError::UnexpectedTensor {
            name: NameBuf::new(t.name()),
        });
    }
    check_context(metadata_context(st)?, "metadata", d.context)?;
    Ok(present[7])
}

/// The size of the file [`save_model`] writes for `dims` (with bnmean and bnvar if `with_bn`) and
/// `metadata`.
/// `metadata` (saturating at `usize::MAX` beyond [`MAX_METADATA`] entries).
pub fn saved_model_len(dims: Dims, with_bn: bool, metadata: &[(&str, &str)]) -> usize {
    saved_tensors_len(dims, with_bn, 0, metadata)
}

/// [`saved_model_len`] with an [`OPTIMIZER_STATE`] of `state_len` values (none if 0).
fn saved_tensors_len(
    dims: Dims,
    with_bn: bool,
    state_len: usize,
    metadata: &[(&str, &str)],
) -> usize {
    let shapes = model_shapes(dims);
    let mut list: [TensorArg<'_>; 10] = [("", &[], &[]); 10];
    for ((slot, name), shape) in list.iter_mut().zip(MODEL_TENSOR_NAMES).zip(shapes.iter()) {
        *slot = (name, shape.as_slice(), &[]);
    }
    let mut n = if with_bn { 9 } else { 7 };
    let state_shape = Shape::of1(state_len);
    if state_len > 0 {
        list[n] = (OPTIMIZER_STATE, state_shape.as_slice(), &[]);
        n += 1;
    }
    // The checksum's text has a fixed length: any value measures it.
    match with_checksum(metadata, "crc32:00000000") {
        Some((meta, len)) => {
            written_len(list.get(..n).unwrap_or(&[]), meta.get(..len).unwrap_or(&[]))
        }
        None => usize::MAX,
    }
}

/// `metadata` followed by the checksum entry, in a fixed array: the entries and how many.
/// `None` if there are already [`MAX_METADATA`] entries.
fn with_checksum<'m>(
    metadata: &[(&'m str, &'m str)],
    checksum: &'m str,
) -> Option<([(&'m str, &'m str); MAX_METADATA], usize)> {
    let mut all = [("", ""); MAX_METADATA];
    let n = metadata.len();
    if n >= MAX_METADATA {
        return None;
    }
    for (d, m) in all.iter_mut().zip(metadata) {
        *d = *m;
    }
    *all.get_mut(n)? = (CHECKSUM_KEY, checksum);
    Some((all, n + 1))
}

/// `crc32:` and the CRC as 8 lowercase hex digits.
fn checksum_text(crc: u32) -> [u8; CHECKSUM_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; CHECKSUM_LEN];
    for (d, s) in out.iter_mut().zip(CHECKSUM_PREFIX.as_bytes()) {
        *d = *s;
    }
    for (i, d) in out.iter_mut().skip(CHECKSUM_PREFIX.len()).enumerate() {
        *d = HEX[((crc >> (28 - 4 * i)) & 15) as usize];
    }
    out
}

/// The CRC a `crc32:xxxxxxxx` text states (lowercase hex only, as [`save_model`] writes it).
fn parse_checksum(s: &str) -> Option<u32> {
    let hex = s.strip_prefix(CHECKSUM_PREFIX)?;
    if hex.len() != 8 {
        return None;
    }
    hex.bytes().try_fold(0u32, |acc, d| {
        let x = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u32::from(x))
    })
}

/// Verifies the `checksum` metadata against the CRC-32 of every tensor's bytes in file order
/// (the whole byte buffer). Returns the CRC if the file states one, `None` if it has no
/// `checksum` entry (a file not written by [`save_model`], e.g. PyTorch's).
///
/// Errors: [`SafetensorsError::InvalidMetadata`] for a malformed or unknown checksum,
/// [`SafetensorsError::ChecksumMismatch`] if the bytes do not match.
pub fn verify_checksum(st: &SafeTensors<'_>) -> Result<Option<u32>> {
    let Some(raw) = st.metadata_raw(CHECKSUM_KEY) else {
        return Ok(None);
    };
    let invalid = SafetensorsError::InvalidMetadata {
        key: key::CHECKSUM,
        expected: "\"crc32:\" and 8 lowercase hex digits",
        value: NameBuf::new(raw),
    };
    let mut buf = [0u8; CHECKSUM_LEN];
    let text = unescape_validated(raw, &mut buf).map_err(|_| invalid)?;
    let stated = parse_checksum(text).ok_or(invalid)?;
    let mut crc = Crc32::new();
    for t in st.tensors() {
        crc.update(t.data());
    }
    let computed = crc.finish();
    if computed != stated {
        return Err(SafetensorsError::ChecksumMismatch { stated, computed });
    }
    Ok(Some(stated))
}

/// Writes the model as the notebook names and shapes it: C (V,E), W1 (T*E,H), b1 (H), W2 (H,V),
/// b2 (V), bngain (1,H), bnbias (1,H), and with `bn = Some((bnmean, bnvar))` also bnmean (1,H) and
/// bnvar (1,H). After `metadata` comes the entry `"checksum": "crc32:xxxxxxxx"` of the tensor
/// bytes (see the module documentation). Returns the bytes written (= [`saved_model_len`]).
/// A checkpoint with the schema's metadata is [`save`]'s; this takes any metadata.
///
/// Errors: those of [`write()`] (at most [`MAX_METADATA`] - 1 entries, the checksum takes one);
/// `bnmean`/`bnvar` not of length H ([`SafetensorsError::Model`]); a `"context"` entry in
/// `metadata` that disagrees with the parameters' context ([`SafetensorsError::ContextMismatch`])
/// or is not an integer; a `"checksum"` entry ([`SafetensorsError::ReservedMetadataKey`]); a
/// value that is not finite ([`SafetensorsError::NonFinite`]) or a negative `bnvar`
/// ([`SafetensorsError::NegativeVariance`]): nothing is written then.
pub fn save_model(
    out: &mut [u8],
    params: ParamsRef<'_, f32>,
    bn: Option<(&[f32], &[f32])>,
    metadata: &[(&str, &str)],
) -> Result<usize> {
    save_tensors(out, params, bn, None, metadata)
}

/// [`save_model`] with the optimiser's state as [`OPTIMIZER_STATE`], last, if `state` is some
/// and not empty.
fn save_tensors(
    out: &mut [u8],
    params: ParamsRef<'_, f32>,
    bn: Option<(&[f32], &[f32])>,
    state: Option<&[f32]>,
    metadata: &[(&str, &str)],
) -> Result<usize> {
    let d = params.dims();
    if let Some((_, v)) = metadata.iter().find(|(k, _)| *k == key::CONTEXT) {
        let stated = parse_decimal(v)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(invalid_number(key::CONTEXT, v))?;
        check_context(Some(stated), "metadata", d.context)?;
    }
    let shapes = model_shapes(d);
    let values = params.tensors();
    let mut list: [TensorArg<'_>; 10] = [("", &[], &[]); 10];
    for (((slot, name), shape), data) in list
        .iter_mut()
        .zip(MODEL_TENSOR_NAMES)
        .zip(shapes.iter())
        .zip(values)
    {
        *slot = (name, shape.as_slice(), data);
    }
    let mut n = 7;
    if let Some((mean, var)) = bn {
        bn_len_check(BNMEAN, mean.len(), d.hidden)?;
        bn_len_check(BNVAR, var.len(), d.hidden)?;
        list[7] = (MODEL_TENSOR_NAMES[7], shapes[7].as_slice(), mean);
        list[8] = (MODEL_TENSOR_NAMES[8], shapes[8].as_slice(), var);
        n = 9;
    }
    if metadata.iter().any(|(k, _)| *k == CHECKSUM_KEY) {
        return Err(SafetensorsError::ReservedMetadataKey { key: CHECKSUM_KEY });
    }
    check_saved_values(list.get(..n).unwrap_or(&[]))?;
    let state = state.filter(|s| !s.is_empty());
    let state_shape = Shape::of1(state.map_or(0, <[f32]>::len));
    if let Some(s) = state {
        check_tensor(OPTIMIZER_STATE, s.iter().copied())?;
        list[n] = (OPTIMIZER_STATE, state_shape.as_slice(), s);
        n += 1;
    }
    let tensors = list.get(..n).unwrap_or(&[]);
    // The bytes `write` lays out after the header, in the same order.
    let mut crc = Crc32::new();
    for (_, _, data) in tensors {
        for x in data.iter() {
            crc.update(&x.to_le_bytes());
        }
    }
    let text = checksum_text(crc.finish());
    let text = core::str::from_utf8(&text).unwrap_or("");
    let (meta, len) = with_checksum(metadata, text)
        .ok_or(SafetensorsError::TooManyMetadataEntries { max: MAX_METADATA })?;
    write(out, tensors, meta.get(..len).unwrap_or(&[]))
}

/// The model's dimensions as the file's shapes give them: V and E from C (V,E), H from W1 (T*E,H),
/// T = (T*E)/E. Checks that E divides T*E, that the `"context"` metadata (if any) and the
/// `context` argument (if any) agree with T, that the dimensions are valid ([`Dims::validate`]),
/// and every tensor as [`load_model`] does (all present with their shapes, no other tensor,
/// bnmean and bnvar both or neither).
pub fn read_dims(st: &SafeTensors<'_>, context: Option<usize>) -> Result<Dims> {
    let two = |name: &'static str| -> Result<(usize, usize)> {
        let t = st
            .tensor(name)
            .ok_or(SafetensorsError::MissingTensor { name })?;
        match *t.shape() {
            [a, b] => Ok((a, b)),
            _ => Err(SafetensorsError::UnexpectedRank {
                tensor: name,
                expected: 2,
                got: t.shape_value(),
            }),
        }
    };
    let (vocab, embedding) = two(MODEL_TENSOR_NAMES[0])?;
    let (embcat, hidden) = two(MODEL_TENSOR_NAMES[1])?;
    if embedding == 0 {
        return Err(Error::InvalidDims.into());
    }
    if embcat % embedding != 0 {
        return Err(SafetensorsError::ContextNotDivisible { embcat, embedding });
    }
    let t = embcat / embedding;
    check_context(metadata_context(st)?, "metadata", t)?;
    check_context(context, "argument", t)?;
    let dims = Dims {
        vocab,
        context: t,
        embedding,
        hidden,
    }
    .validate()?;
    check_model(st, dims)?;
    Ok(dims)
}

/// Copies the model's tensors from `st` into `params`, and bnmean/bnvar into `bn` when both are
/// given and present. Returns whether the file has bnmean and bnvar (if it lacks them, `bn` is
/// left untouched).
///
/// Everything is checked before anything is copied (on error `params` and `bn` are unchanged):
/// every tensor present with the shape `params.dims()` requires (bngain, bnbias, bnmean, bnvar as
/// (1,H) or (H)), bnmean and bnvar both or neither, no unknown tensor, the `"context"` metadata (if
/// any) equal to the context, `bn`'s slices of length H, the `"checksum"` metadata (if any)
/// equal to the CRC-32 of the tensor bytes ([`verify_checksum`]), and every value finite with
/// `bnvar` >= 0 ([`check_values`]: a valid checksum does not make a diverged model loadable).
pub fn load_model(
    st: &SafeTensors<'_>,
    params: &mut ParamsMut<'_, f32>,
    bn: Option<(&mut [f32], &mut [f32])>,
) -> Result<bool> {
    let d = params.dims();
    let has_bn = check_model(st, d)?;
    if let Some((mean, var)) = &bn {
        bn_len_check(BNMEAN, mean.len(), d.hidden)?;
        bn_len_check(BNVAR, var.len(), d.hidden)?;
    }
    verify_checksum(st)?;
    check_values(st)?;
    let get = |name: &'static str| {
        st.tensor(name)
            .ok_or(SafetensorsError::MissingTensor { name })
    };
    for (dst, name) in params.tensors_mut().into_iter().zip(MODEL_TENSOR_NAMES) {
        get(name)?.read_f32_into(dst)?;
    }
    if has_bn {
        if let Some((mean, var)) = bn {
            get(BNMEAN)?.read_f32_into(mean)?;
            get(BNVAR)?.read_f32_into(var)?;
        }
    }
    Ok(has_bn)
}

/// Refuses the first value of the tensor `name` that a checkpoint may not hold, naming its index:
/// not finite, or in `bnvar` negative. One pass, stopping there.
fn check_tensor(name: &'static str, values: impl Iterator<Item = f32>) -> Result<()> {
    let variance = name == BNVAR;
    for (index, x) in values.enumerate() {
        if !x.is_finite() {
            return Err(SafetensorsError::NonFinite {
                tensor: name,
                index,
                bits: x.to_bits(),
            });
        }
        if variance && x < 0.0 {
            return Err(SafetensorsError::NegativeVariance {
                index,
                bits: x.to_bits(),
            });
        }
    }
    Ok(())
}

/// Checks the values of every model tensor in `st` (little-endian `f32` bytes): all finite
/// ([`SafetensorsError::NonFinite`]), `bnvar` >= 0 ([`SafetensorsError::NegativeVariance`]).
/// The first bad value in [`MODEL_TENSOR_NAMES`] order is named. [`load_model`] calls it.
pub fn check_values(st: &SafeTensors<'_>) -> Result<()> {
    for name in MODEL_TENSOR_NAMES {
        if let Some(t) = st.tensor(name) {
            check_tensor(name, t.values())?;
        }
    }
    if let Some(t) = st.tensor(OPTIMIZER_STATE) {
        check_tensor(OPTIMIZER_STATE, t.values())?;
    }
    Ok(())
}

/// [`check_values`] for the tensors [`save_model`] is about to write (in [`MODEL_TENSOR_NAMES`]
/// order), so that no checkpoint is written that [`load_model`] would refuse.
fn check_saved_values(tensors: &[TensorArg<'_>]) -> Result<()> {
    for (name, (_, _, data)) in MODEL_TENSOR_NAMES.into_iter().zip(tensors) {
        check_tensor(name, data.iter().copied())?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The metadata

/// Where a training run stands: enough to resume it exactly. (Not `Copy`, so that a copy is
/// visible at the call site.)
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// Steps done.
    pub step: u64,
    /// The seed of the initialisation and the minibatches. With [`Generator::Pcg`] batch `s` is
    /// drawn from PCG stream (seed, s); with a torch generator, from the one mt19937 stream after
    /// the initialisation and `s` batches: either way (generator, seed, step, batch size) is the
    /// whole RNG state.
    pub seed: u64,
    /// The generator the run draws from.
    pub generator: Generator,
    /// Steps the run was asked for.
    pub steps: u64,
    /// Examples per batch.
    pub batch_size: usize,
    /// The learning rate before the decay.
    pub lr: f32,
    /// The step from which the learning rate is divided by 10 ([`Schedule::Step`]).
    pub lr_decay_step: u64,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// A hash of the data the run trains on (its words and their split), to refuse resuming
    /// on other data; `None` for a file written before it was recorded.
    pub fingerprint: Option<u64>,
    /// The optimiser: SGD (the notebook's) or AdamW with its hyperparameters.
    pub optimizer: Optimizer,
    /// The gradient's largest global L2 norm (PyTorch's `clip_grad_norm_`), if clipped.
    pub grad_clip: Option<f32>,
}

/// The learning rate at each step, from [`RunState::lr`] (the peak).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Schedule {
    /// The notebook's: `lr` before [`RunState::lr_decay_step`], `lr / 10` from it on.
    #[default]
    Step,
    /// llm.c's: a linear warm-up over `warmup` steps, then a cosine from `lr` down to `min_lr`
    /// at step `total`, `min_lr` after.
    Cosine {
        warmup: u64,
        total: u64,
        min_lr: f32,
    },
}

/// `fnv1a64:` and 16 lowercase hex digits.
const FINGERPRINT_PREFIX: &str = "fnv1a64:";

/// A checkpoint's metadata besides the config (which [`Dims`] holds) and the checksum.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Metadata<'a> {
    /// The vocabulary: `.` then the sorted symbols, V characters; `None` if unknown.
    pub vocab: Option<&'a str>,
    /// The training state, for a file written by training.
    pub run: Option<RunState>,
    /// The trainer's record of the run so far (loss windows, evaluations): text this module
    /// stores and reads back unchanged.
    pub history: Option<&'a str>,
}

/// The decimal (or `f32` `Display`) text of one metadata value, without allocation. 192 bytes
/// hold any `u64`, any `f32` (`Display` writes at most 48 characters for an `f32`), the
/// cosine [`Schedule`]'s text (two `u64`, one `f32` and 28 characters) and the optimiser's
/// (five `f32` in `{:e}`, at most 15 characters each, and 55 characters).
#[derive(Clone, Copy)]
struct Text {
    buf: [u8; 192],
    len: usize,
}

impl Text {
    const EMPTY: Text = Text {
        buf: [0; 192],
        len: 0,
    };

    fn of(v: impl fmt::Display) -> Text {
        let mut t = Text::EMPTY;
        // Cannot fail for the integers and floats written here (see the type's documentation).
        let _ = write!(t, "{v}");
        t
    }

    fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Calls `f` with the metadata entries of `meta` for a model of `dims`, in the schema's order
/// (see the module documentation), without the checksum: at most 16 entries.
fn with_entries<R>(dims: Dims, meta: &Metadata<'_>, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
    // Not generic: the formatting is compiled once, not once per caller's closure.
    let text = entry_texts(dims, meta);
    let (list, n) = entry_list(&text, meta);
    f(list.get(..n).unwrap_or(&[]))
}

/// The texts of [`with_entries`]'s values: the config, then the training state's.
fn entry_texts(dims: Dims, meta: &Metadata<'_>) -> [Text; 13] {
    let mut text = [Text::EMPTY; 13];
    text[0] = Text::of(dims.context);
    text[1] = Text::of(dims.embedding);
    text[2] = Text::of(dims.hidden);
    if let Some(r) = &meta.run {
        text[3] = Text::of(r.step);
        text[4] = Text::of(r.seed);
        text[5] = Text::of(r.steps);
        text[6] = Text::of(r.batch_size);
        text[7] = Text::of(r.lr);
        text[8] = Text::of(r.lr_decay_step);
        if let Schedule::Cosine {
            warmup,
            total,
            min_lr,
        } = r.schedule
        {
            let t = &mut text[9];
            let _ = write!(t, "cosine warmup={warmup} total={total} min_lr={min_lr}");
        }
        if let Some(h) = r.fingerprint {
            let _ = write!(text[10], "{FINGERPRINT_PREFIX}{h:016x}");
        }
        let t = &mut text[11];
        match r.optimizer {
            Optimizer::Sgd if r.grad_clip.is_some() => {
                let _ = write!(t, "sgd");
            }
            Optimizer::Sgd => {}
            Optimizer::AdamW(a) => {
                let _ = write!(
                    t,
                    "adamw beta1={:e} beta2={:e} eps={:e} weight_decay={:e}",
                    a.beta1, a.beta2, a.eps, a.weight_decay
                );
            }
        }
        if let Some(c) = r.grad_clip {
            let _ = write!(t, " grad_clip={c:e}");
        }
        if r.generator != Generator::Pcg {
            let _ = write!(text[12], "{}", r.generator);
        }
    }
    text
}

/// [`with_entries`]'s list: the keys with their values from `text` ([`entry_texts`]) or `meta`.
fn entry_list<'a>(text: &'a [Text; 13], meta: &Metadata<'a>) -> ([(&'a str, &'a str); 16], usize) {
    let mut list = [("", ""); 16];
    let mut n = 0;
    let mut push = |k: &'static str, v| {
        if let Some(slot) = list.get_mut(n) {
            *slot = (k, v);
            n += 1;
        }
    };
    push(key::FORMAT, FORMAT);
    if let Some(v) = meta.vocab {
        push(key::VOCAB, v);
    }
    let config = [key::CONTEXT, key::EMBEDDING, key::HIDDEN];
    for (k, t) in config.into_iter().zip(text) {
        push(k, t.as_str());
    }
    if meta.run.is_some() {
        for (k, t) in key::RUN.into_iter().zip(text.get(3..).unwrap_or(&[])) {
            push(k, t.as_str());
        }
        for (k, t) in [key::LR_SCHEDULE, key::FINGERPRINT, key::OPTIMIZER, key::RNG]
            .into_iter()
            .zip(&text[9..])
        {
            if t.len > 0 {
                push(k, t.as_str());
            }
        }
    }
    if let Some(h) = meta.history {
        push(key::HISTORY, h);
    }
    (list, n)
}

/// The size of the file [`save`] writes for `dims`, `meta`, with bnmean and bnvar if `with_bn`.
pub fn saved_len(dims: Dims, with_bn: bool, meta: &Metadata<'_>) -> usize {
    saved_len_with_state(dims, with_bn, 0, meta)
}

/// [`saved_len`] of a checkpoint with an [`OPTIMIZER_STATE`] of `state_len` values (none if 0).
pub fn saved_len_with_state(
    dims: Dims,
    with_bn: bool,
    state_len: usize,
    meta: &Metadata<'_>,
) -> usize {
    with_entries(dims, meta, |m| {
        saved_tensors_len(dims, with_bn, state_len, m)
    })
}

/// Writes a checkpoint: the tensors as [`save_model`] writes them, with the metadata of the
/// schema: format, vocabulary (if any), the config from `params.dims()`, the training state (if
/// any), the checksum. Returns the bytes written (= [`saved_len`]).
///
/// Errors: those of [`save_model`]; a vocabulary of another length than V
/// ([`SafetensorsError::VocabMismatch`]); a training state [`check_run`] refuses.
pub fn save(
    out: &mut [u8],
    params: ParamsRef<'_, f32>,
    bn: Option<(&[f32], &[f32])>,
    meta: &Metadata<'_>,
) -> Result<usize> {
    let dims = params.dims();
    if let Some(v) = meta.vocab {
        check_vocab(v, dims)?;
    }
    if let Some(r) = &meta.run {
        check_run(r)?;
    }
    with_entries(dims, meta, |m| save_tensors(out, params, bn, None, m))
}

/// [`save`] with the optimiser's state (AdamW's m then v) as the tensor [`OPTIMIZER_STATE`]
/// (none if `state` is empty). Returns the bytes written (= [`saved_len_with_state`]).
pub fn save_with_state(
    out: &mut [u8],
    params: ParamsRef<'_, f32>,
    bn: Option<(&[f32], &[f32])>,
    state: &[f32],
    meta: &Metadata<'_>,
) -> Result<usize> {
    let dims = params.dims();
    if let Some(v) = meta.vocab {
        check_vocab(v, dims)?;
    }
    if let Some(r) = &meta.run {
        check_run(r)?;
    }
    with_entries(dims, meta, |m| {
        save_tensors(out, params, bn, Some(state), m)
    })
}

/// Reads the optimiser's state into `out` if the file has [`OPTIMIZER_STATE`]; returns whether
/// it has. Errors: a state of another length than `out` ([`SafetensorsError::ShapeMismatch`]),
/// those of reading the tensor. Its values are checked by [`load_model`].
pub fn read_optimizer_state(st: &SafeTensors<'_>, out: &mut [f32]) -> Result<bool> {
    let Some(t) = st.tensor(OPTIMIZER_STATE) else {
        return Ok(false);
    };
    let (want, got) = (Shape::of1(out.len()), t.shape_value());
    if got != want {
        return Err(SafetensorsError::ShapeMismatch {
            tensor: OPTIMIZER_STATE,
            expected: want,
            got,
        });
    }
    t.read_f32_into(out)?;
    Ok(true)
}

/// Reads and validates the metadata of a checkpoint whose tensors give `dims` (see
/// [`read_dims`]): [`read_config`], [`read_run`] then [`check_run`], [`read_vocab`] and the
/// history, both unescaped into `buf` (at most their raw JSON lengths). Every key is optional (a
/// file from PyTorch has none), but what is there must be right. The checksum is
/// [`load_model`]'s (it needs the tensors).
pub fn read_metadata<'b>(
    st: &SafeTensors<'_>,
    dims: Dims,
    buf: &'b mut [u8],
) -> Result<Metadata<'b>> {
    read_config(st, dims)?;
    let run = read_run(st)?;
    if let Some(r) = &run {
        check_run(r)?;
    }
    let vocab_len = st.metadata_raw(key::VOCAB).map_or(0, str::len);
    let (vocab_buf, history_buf) = buf.split_at_mut(vocab_len.min(buf.len()));
    let vocab = read_vocab(st, dims, vocab_buf)?;
    let history = st.metadata(key::HISTORY, history_buf)?;
    Ok(Metadata {
        vocab,
        run,
        history,
    })
}

/// Checks the format and the config: `format`, if present, is [`FORMAT`]
/// ([`SafetensorsError::UnknownFormat`]); `context`, `embedding`, `hidden`, if present, are
/// decimal integers ([`SafetensorsError::InvalidMetadata`]) equal to `dims`'
/// ([`SafetensorsError::ContextMismatch`], [`SafetensorsError::ConfigMismatch`]).
pub fn read_config(st: &SafeTensors<'_>, dims: Dims) -> Result<()> {
    if let Some(raw) = st.metadata_raw(key::FORMAT) {
        let mut text = [0u8; FORMAT.len()];
        if unescape_validated(raw, &mut text).ok() != Some(FORMAT) {
            return Err(SafetensorsError::UnknownFormat {
                value: NameBuf::new(raw),
            });
        }
    }
    check_context(metadata_context(st)?, "metadata", dims.context)?;
    for (k, expected) in [(key::EMBEDDING, dims.embedding), (key::HIDDEN, dims.hidden)] {
        match metadata_usize(st, k)? {
            Some(got) if got != expected => {
                return Err(SafetensorsError::ConfigMismatch {
                    key: k,
                    expected,
                    got,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// The vocabulary, unescaped into `buf`, if the file states one: V characters
/// ([`SafetensorsError::VocabMismatch`]) that fit `buf` ([`SafetensorsError::BufferTooSmall`]).
pub fn read_vocab<'b>(
    st: &SafeTensors<'_>,
    dims: Dims,
    buf: &'b mut [u8],
) -> Result<Option<&'b str>> {
    let vocab = st.metadata(key::VOCAB, buf)?;
    if let Some(v) = vocab {
        check_vocab(v, dims)?;
    }
    Ok(vocab)
}

/// The training state, if the file has one: its six keys all present
/// ([`SafetensorsError::MissingMetadata`]) or none, each a decimal integer fitting its type,
/// `lr` an `f32` ([`SafetensorsError::InvalidMetadata`]). (Separate from [`read_vocab`] so that
/// sampling, e.g. on a microcontroller, need not link the `f32` parser.)
pub fn read_run(st: &SafeTensors<'_>) -> Result<Option<RunState>> {
    let Some(because) = key::RUN.into_iter().find(|k| st.metadata_raw(k).is_some()) else {
        return Ok(None);
    };
    let need = |k: &'static str| -> Result<u64> {
        metadata_u64(st, k)?.ok_or(SafetensorsError::MissingMetadata { key: k, because })
    };
    let lr_raw = st
        .metadata_raw(key::LR)
        .ok_or(SafetensorsError::MissingMetadata {
            key: key::LR,
            because,
        })?;
    let mut text = Text::EMPTY;
    let lr = unescape_validated(lr_raw, &mut text.buf)
        .ok()
        .and_then(|s| s.parse::<f32>().ok())
        .ok_or(SafetensorsError::InvalidMetadata {
            key: key::LR,
            expected: "a decimal f32",
            value: NameBuf::new(lr_raw),
        })?;
    let (optimizer, grad_clip) = read_optimizer(st)?;
    Ok(Some(RunState {
        step: need(key::STEP)?,
        seed: need(key::SEED)?,
        steps: need(key::STEPS)?,
        batch_size: metadata_usize(st, key::BATCH_SIZE)?.ok_or(
            SafetensorsError::MissingMetadata {
                key: key::BATCH_SIZE,
                because,
            },
        )?,
        lr,
        lr_decay_step: need(key::LR_DECAY_STEP)?,
        schedule: read_schedule(st)?,
        fingerprint: read_fingerprint(st)?,
        optimizer,
        grad_clip,
        generator: read_generator(st)?,
    }))
}

/// The `rng` entry: absent is [`Generator::Pcg`].
fn read_generator(st: &SafeTensors<'_>) -> Result<Generator> {
    let Some(raw) = st.metadata_raw(key::RNG) else {
        return Ok(Generator::Pcg);
    };
    let mut text = Text::EMPTY;
    unescape_validated(raw, &mut text.buf)
        .ok()
        .and_then(Generator::from_name)
        .ok_or(SafetensorsError::InvalidMetadata {
            key: key::RNG,
            expected: "\"pcg\", \"torch\" or \"torch-generic\"",
            value: NameBuf::new(raw),
        })
}

/// The `optimizer` entry: absent is SGD without clipping.
fn read_optimizer(st: &SafeTensors<'_>) -> Result<(Optimizer, Option<f32>)> {
    let Some(raw) = st.metadata_raw(key::OPTIMIZER) else {
        return Ok((Optimizer::Sgd, None));
    };
    let invalid = SafetensorsError::InvalidMetadata {
        key: key::OPTIMIZER,
        expected: "\"sgd\" or \"adamw beta1=B1 beta2=B2 eps=E weight_decay=W\", then optionally \" grad_clip=X\"",
        value: NameBuf::new(raw),
    };
    let mut text = Text::EMPTY;
    let s = unescape_validated(raw, &mut text.buf).map_err(|_| invalid)?;
    let mut words = s.split(' ');
    let kind = words.next();
    // the `name=value` words after the kind, in the order written
    let mut values = [("", 0f32); 5];
    let mut n = 0;
    for w in words {
        let (name, v) = w.split_once('=').ok_or(invalid)?;
        let v = v.parse::<f32>().map_err(|_| invalid)?;
        *values.get_mut(n).ok_or(invalid)? = (name, v);
        n += 1;
    }
    let mut values = values.get(..n).unwrap_or(&[]);
    let mut take = |name: &str| match values.split_first() {
        Some((&(k, v), rest)) if k == name => {
            values = rest;
            Some(v)
        }
        _ => None,
    };
    let optimizer = match kind {
        Some("sgd") => Optimizer::Sgd,
        Some("adamw") => {
            let (Some(beta1), Some(beta2), Some(eps), Some(weight_decay)) = (
                take("beta1"),
                take("beta2"),
                take("eps"),
                take("weight_decay"),
            ) else {
                return Err(invalid);
            };
            let a = AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            };
            a.validate().map_err(|_| invalid)?;
            Optimizer::AdamW(a)
        }
        _ => return Err(invalid),
    };
    let grad_clip = take("grad_clip");
    if grad_clip.is_some_and(|c| !(c.is_finite() && c > 0.0)) || !values.is_empty() {
        return Err(invalid);
    }
    Ok((optimizer, grad_clip))
}

/// The `lr_schedule` entry: absent is [`Schedule::Step`].
fn read_schedule(st: &SafeTensors<'_>) -> Result<Schedule> {
    let Some(raw) = st.metadata_raw(key::LR_SCHEDULE) else {
        return Ok(Schedule::Step);
    };
    let invalid = SafetensorsError::InvalidMetadata {
        key: key::LR_SCHEDULE,
        expected: "\"cosine warmup=W total=N min_lr=X\"",
        value: NameBuf::new(raw),
    };
    let mut text = Text::EMPTY;
    let s = unescape_validated(raw, &mut text.buf).map_err(|_| invalid)?;
    let mut words = s.split(' ');
    if words.next() != Some("cosine") {
        return Err(invalid);
    }
    let mut value = |name: &str| {
        words
            .next()
            .and_then(|w| w.strip_prefix(name))
            .and_then(|w| w.strip_prefix('='))
    };
    let warmup = value("warmup").and_then(parse_decimal);
    let total = value("total").and_then(parse_decimal);
    let min_lr = value("min_lr").and_then(|v| v.parse::<f32>().ok());
    match (warmup, total, min_lr, words.next()) {
        (Some(warmup), Some(total), Some(min_lr), None) => Ok(Schedule::Cosine {
            warmup,
            total,
            min_lr,
        }),
        _ => Err(invalid),
    }
}

/// The `data_fingerprint` entry, if any.
fn read_fingerprint(st: &SafeTensors<'_>) -> Result<Option<u64>> {
    let Some(raw) = st.metadata_raw(key::FINGERPRINT) else {
        return Ok(None);
    };
    let invalid = SafetensorsError::InvalidMetadata {
        key: key::FINGERPRINT,
        expected: "\"fnv1a64:\" and 16 lowercase hex digits",
        value: NameBuf::new(raw),
    };
    let mut text = [0u8; 24];
    let s = unescape_validated(raw, &mut text).map_err(|_| invalid)?;
    let hex = s.strip_prefix(FINGERPRINT_PREFIX).ok_or(invalid)?;
    if hex.len() != 16 || !hex.bytes().all(|d| matches!(d, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid);
    }
    u64::from_str_radix(hex, 16).map(Some).map_err(|_| invalid)
}

/// Checks the values of a training state that parse but cannot be a run's: `lr` not finite or
/// not > 0, `batch_size` < 2 (batchnorm's variance divides by n - 1), each a
/// [`SafetensorsError::InvalidMetadata`] naming the key and the value. Any `step`, `steps`
/// (a run resumed with a smaller `--steps` records `step` > `steps`), `seed` and
/// `lr_decay_step` is valid. [`read_metadata`] and [`save`] call it.
pub fn check_run(run: &RunState) -> Result<()> {
    if !(run.lr.is_finite() && run.lr > 0.0) {
        return Err(SafetensorsError::InvalidMetadata {
            key: key::LR,
            expected: "a finite learning rate > 0",
            value: NameBuf::new(Text::of(run.lr).as_str()),
        });
    }
    if run.batch_size < 2 {
        return Err(SafetensorsError::InvalidMetadata {
            key: key::BATCH_SIZE,
            expected: "a batch size >= 2 (batchnorm's variance divides by n - 1)",
            value: NameBuf::new(Text::of(run.batch_size).as_str()),
        });
    }
    Ok(())
}

/// A vocabulary of V characters.
fn check_vocab(vocab: &str, dims: Dims) -> Result<()> {
    let symbols = vocab.chars().count();
    if symbols != dims.vocab {
        return Err(SafetensorsError::VocabMismatch {
            symbols,
            vocab: dims.vocab,
        });
    }
    Ok(())
}

/// A non-empty string of ASCII digits as a `u64`.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

fn invalid_number(key: &'static str, raw: &str) -> SafetensorsError {
    SafetensorsError::InvalidMetadata {
        key,
        expected: "a non-negative decimal integer",
        value: NameBuf::new(raw),
    }
}

/// The decimal integer the metadata states under `key`, if any.
fn metadata_u64(st: &SafeTensors<'_>, key: &'static str) -> Result<Option<u64>> {
    let Some(raw) = st.metadata_raw(key) else {
        return Ok(None);
    };
    let mut text = [0u8; 24];
    unescape_validated(raw, &mut text)
        .ok()
        .and_then(parse_decimal)
        .map(Some)
        .ok_or(invalid_number(key, raw))
}

/// [`metadata_u64`] for a value that must fit `usize`.
fn metadata_usize(st: &SafeTensors<'_>, key: &'static str) -> Result<Option<usize>> {
    match metadata_u64(st, key)? {
        None => Ok(None),
        Some(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| invalid_number(key, st.metadata_raw(key).unwrap_or(""))),
    }
}
