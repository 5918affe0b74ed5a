//! The checkpoint schema.

use crate::crc32::Crc32;
use crate::error::Error;
use crate::model::{Dims, ParamsMut, ParamsRef};
use crate::safetensors::json::unescape_validated;
use crate::safetensors::{
    write, written_len, NameBuf, SafeTensors, SafetensorsError, Shape, TensorArg, MAX_METADATA,
};

type Result<T> = core::result::Result<T, SafetensorsError>;

/// The model's tensor names, in the notebook's order; the last two (the batchnorm running
/// statistics) are optional.
pub const MODEL_TENSOR_NAMES: [&str; 9] = [
    "C", "W1", "b1", "W2", "b2", "bngain", "bnbias", "bnmean", "bnvar",
];

/// The metadata key the model's context length may be stated under.
const CONTEXT_KEY: &str = "context";
/// The metadata key of the tensor bytes' checksum, written by [`save_model`].
pub const CHECKSUM_KEY: &str = "checksum";
/// The checksum's algorithm, before its 8 hex digits.
const CHECKSUM_PREFIX: &str = "crc32:";
/// `crc32:` and 8 hex digits.
const CHECKSUM_LEN: usize = 14;

// ------------------------------------------------------------------------------------------------
// The model

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

/// Parses a decimal context length.
fn parse_context(s: &str) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0usize, |acc, d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        } else {
            None
        }
    })
}

/// The context length the file's metadata states, if any.
fn metadata_context(st: &SafeTensors<'_>) -> Result<Option<usize>> {
    let Some(raw) = st.metadata_raw(CONTEXT_KEY) else {
        return Ok(None);
    };
    let invalid = SafetensorsError::InvalidContextMetadata {
        value: NameBuf::new(raw),
    };
    let mut buf = [0u8; 24];
    let s = unescape_validated(raw, &mut buf).map_err(|_| invalid)?;
    parse_context(s).map(Some).ok_or(invalid)
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
                present: "bnmean",
                missing: "bnvar",
            })
        }
        (false, true) => {
            return Err(SafetensorsError::IncompleteBatchnorm {
                present: "bnvar",
                missing: "bnmean",
            })
        }
        _ => {}
    }
    if let Some(t) = st
        .tensors()
        .find(|t| !MODEL_TENSOR_NAMES.iter().any(|n| t.name_eq(n)))
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
    let shapes = model_shapes(dims);
    let mut list: [TensorArg<'_>; 9] = [("", &[], &[]); 9];
    for ((slot, name), shape) in list.iter_mut().zip(MODEL_TENSOR_NAMES).zip(shapes.iter()) {
        *slot = (name, shape.as_slice(), &[]);
    }
    let n = if with_bn { 9 } else { 7 };
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
/// Errors: [`SafetensorsError::InvalidChecksumMetadata`] for a malformed or unknown checksum,
/// [`SafetensorsError::ChecksumMismatch`] if the bytes do not match.
pub fn verify_checksum(st: &SafeTensors<'_>) -> Result<Option<u32>> {
    let Some(raw) = st.metadata_raw(CHECKSUM_KEY) else {
        return Ok(None);
    };
    let invalid = SafetensorsError::InvalidChecksumMetadata {
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
///
/// Errors: those of [`write()`] (at most [`MAX_METADATA`] - 1 entries, the checksum takes one);
/// `bnmean`/`bnvar` not of length H ([`SafetensorsError::Model`]); a `"context"` entry in
/// `metadata` that disagrees with the parameters' context ([`SafetensorsError::ContextMismatch`])
/// or is not an integer; a `"checksum"` entry ([`SafetensorsError::ReservedMetadataKey`]).
pub fn save_model(
    out: &mut [u8],
    params: ParamsRef<'_, f32>,
    bn: Option<(&[f32], &[f32])>,
    metadata: &[(&str, &str)],
) -> Result<usize> {
    let d = params.dims();
    if let Some((_, v)) = metadata.iter().find(|(k, _)| *k == CONTEXT_KEY) {
        let stated = parse_context(v).ok_or(SafetensorsError::InvalidContextMetadata {
            value: NameBuf::new(v),
        })?;
        check_context(Some(stated), "metadata", d.context)?;
    }
    let shapes = model_shapes(d);
    let values = params.tensors();
    let mut list: [TensorArg<'_>; 9] = [("", &[], &[]); 9];
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
        bn_len_check("bnmean", mean.len(), d.hidden)?;
        bn_len_check("bnvar", var.len(), d.hidden)?;
        list[7] = (MODEL_TENSOR_NAMES[7], shapes[7].as_slice(), mean);
        list[8] = (MODEL_TENSOR_NAMES[8], shapes[8].as_slice(), var);
        n = 9;
    }
    if metadata.iter().any(|(k, _)| *k == CHECKSUM_KEY) {
        return Err(SafetensorsError::ReservedMetadataKey { key: CHECKSUM_KEY });
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
    let (vocab, embedding) = two("C")?;
    let (embcat, hidden) = two("W1")?;
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
/// any) equal to the context, `bn`'s slices of length H, and the `"checksum"` metadata (if any)
/// equal to the CRC-32 of the tensor bytes ([`verify_checksum`]).
pub fn load_model(
    st: &SafeTensors<'_>,
    params: &mut ParamsMut<'_, f32>,
    bn: Option<(&mut [f32], &mut [f32])>,
) -> Result<bool> {
    let d = params.dims();
    let has_bn = check_model(st, d)?;
    if let Some((mean, var)) = &bn {
        bn_len_check("bnmean", mean.len(), d.hidden)?;
        bn_len_check("bnvar", var.len(), d.hidden)?;
    }
    verify_checksum(st)?;
    let get = |name: &'static str| {
        st.tensor(name)
            .ok_or(SafetensorsError::MissingTensor { name })
    };
    for (dst, name) in params.tensors_mut().into_iter().zip(MODEL_TENSOR_NAMES) {
        get(name)?.read_f32_into(dst)?;
    }
    if has_bn {
        if let Some((mean, var)) = bn {
            get("bnmean")?.read_f32_into(mean)?;
            get("bnvar")?.read_f32_into(var)?;
        }
    }
    Ok(has_bn)
}
