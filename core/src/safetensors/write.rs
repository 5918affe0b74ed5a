//! [`write()`]: a file the reader (and the reference implementation) accepts.

use super::json::{put_json_str, put_usize, Counter, Sink, SliceSink};
use super::{
    product, NameBuf, Result, SafetensorsError, F32_SIZE, HEADER_START, MAX_HEADER_LEN,
    MAX_METADATA, MAX_RANK, MAX_TENSORS,
};

// ------------------------------------------------------------------------------------------------
// The writer

/// A tensor as [`write()`] takes it: name, shape, values (row-major).
pub type TensorArg<'t> = (&'t str, &'t [usize], &'t [f32]);

/// The header JSON, unpadded.
fn put_header(sink: &mut impl Sink, tensors: &[TensorArg<'_>], metadata: &[(&str, &str)]) {
    sink.put(b"{");
    let mut first = true;
    if !metadata.is_empty() {
        sink.put(b"\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                sink.put(b",");
            }
            put_json_str(sink, k);
            sink.put(b":");
            put_json_str(sink, v);
        }
        sink.put(b"}");
        first = false;
    }
    let mut offset = 0usize;
    for (name, shape, _) in tensors {
        if !first {
            sink.put(b",");
        }
        first = false;
        put_json_str(sink, name);
        sink.put(b":{\"dtype\":\"F32\",\"shape\":[");
        for (i, d) in shape.iter().enumerate() {
            if i > 0 {
                sink.put(b",");
            }
            put_usize(sink, *d);
        }
        sink.put(b"],\"data_offsets\":[");
        put_usize(sink, offset);
        sink.put(b",");
        offset = offset.saturating_add(tensor_bytes(shape));
        put_usize(sink, offset);
        sink.put(b"]}");
    }
    sink.put(b"}");
}

/// `product(shape) * 4`, saturating.
fn tensor_bytes(shape: &[usize]) -> usize {
    shape
        .iter()
        .fold(1usize, |a, &d| a.saturating_mul(d))
        .saturating_mul(F32_SIZE)
}

/// Header length padded to a multiple of 8.
fn padded_header_len(tensors: &[TensorArg<'_>], metadata: &[(&str, &str)]) -> usize {
    let mut c = Counter(0);
    put_header(&mut c, tensors, metadata);
    c.0.saturating_add((8 - c.0 % 8) % 8)
}

/// The exact number of bytes [`write()`] produces for these arguments when it succeeds (it only
/// reads the names, shapes and metadata: the data's lengths are not used). Saturates at
/// `usize::MAX` for absurd shapes.
pub fn written_len(tensors: &[TensorArg<'_>], metadata: &[(&str, &str)]) -> usize {
    tensors.iter().fold(
        HEADER_START.saturating_add(padded_header_len(tensors, metadata)),
        |acc, (_, shape, _)| acc.saturating_add(tensor_bytes(shape)),
    )
}

/// Checks what [`write()`] is given, so that the file it makes parses.
fn check_write_args(tensors: &[TensorArg<'_>], metadata: &[(&str, &str)]) -> Result<()> {
    if tensors.len() > MAX_TENSORS {
        return Err(SafetensorsError::TooManyTensors { max: MAX_TENSORS });
    }
    if metadata.len() > MAX_METADATA {
        return Err(SafetensorsError::TooManyMetadataEntries { max: MAX_METADATA });
    }
    let mut total = 0usize;
    for (i, (name, shape, data)) in tensors.iter().enumerate() {
        let tensor = NameBuf::new(name);
        if *name == "__metadata__" {
            return Err(SafetensorsError::ReservedName);
        }
        if tensors.get(..i).unwrap_or(&[]).iter().any(|t| t.0 == *name) {
            return Err(SafetensorsError::DuplicateName { name: tensor });
        }
        if shape.len() > MAX_RANK {
            return Err(SafetensorsError::TooManyDims {
                tensor,
                max: MAX_RANK,
            });
        }
        let n = product(shape).ok_or(SafetensorsError::SizeOverflow { tensor })?;
        let bytes = n
            .checked_mul(F32_SIZE)
            .ok_or(SafetensorsError::SizeOverflow { tensor })?;
        total = total
            .checked_add(bytes)
            .ok_or(SafetensorsError::SizeOverflow { tensor })?;
        if data.len() != n {
            return Err(SafetensorsError::DataLenMismatch {
                tensor,
                expected: n,
                got: data.len(),
            });
        }
    }
    for (i, (k, _)) in metadata.iter().enumerate() {
        if metadata.get(..i).unwrap_or(&[]).iter().any(|m| m.0 == *k) {
            return Err(SafetensorsError::DuplicateName {
                name: NameBuf::new(k),
            });
        }
    }
    Ok(())
}

/// Writes a safetensors file into `out`: `__metadata__` (omitted when `metadata` is empty), then
/// the tensors as `F32` in the given order, contiguous; the header is padded with spaces to a
/// multiple of 8 bytes. Returns the number of bytes written (= [`written_len`]).
///
/// Errors (nothing useful is written then): more than [`MAX_TENSORS`] tensors or
/// [`MAX_METADATA`] metadata entries, a shape of more than [`MAX_RANK`] dimensions, data whose
/// length is not the shape's product, a repeated tensor name or metadata key, a tensor named
/// `__metadata__`, a size overflow, a header over [`MAX_HEADER_LEN`], and
/// [`SafetensorsError::BufferTooSmall`] if `out` is shorter than [`written_len`].
pub fn write(
    out: &mut [u8],
    tensors: &[TensorArg<'_>],
    metadata: &[(&str, &str)],
) -> Result<usize> {
    check_write_args(tensors, metadata)?;
    let header_len = padded_header_len(tensors, metadata);
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLarge {
            len: header_len as u64,
            max: MAX_HEADER_LEN,
        });
    }
    let needed = written_len(tensors, metadata);
    if out.len() < needed {
        return Err(SafetensorsError::BufferTooSmall { needed });
    }
    let mut sink = SliceSink {
        buf: out,
        pos: 0,
        overflow: false,
    };
    sink.put(&(header_len as u64).to_le_bytes());
    put_header(&mut sink, tensors, metadata);
    while sink.pos < HEADER_START.saturating_add(header_len) && !sink.overflow {
        sink.put(b" ");
    }
    for (_, _, data) in tensors {
        for x in data.iter() {
            sink.put(&x.to_le_bytes());
        }
    }
    if sink.overflow || sink.pos != needed {
        // Unreachable: `needed` was computed by the same code.
        return Err(SafetensorsError::BufferTooSmall { needed });
    }
    Ok(needed)
}
