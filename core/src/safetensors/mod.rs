//! Reading and writing the [safetensors] format, without allocation, for the model's `f32`
//! parameters: the file the notebook's `torch` tensors (and `safetensors.torch.save_file`) make.
//!
//! # The format
//!
//! An 8-byte little-endian `u64` N; then N bytes of UTF-8 JSON, an object mapping each tensor's
//! name to `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}` plus an optional
//! `"__metadata__"` object of string to string, possibly padded with trailing spaces; then the byte
//! buffer, in which each tensor's little-endian data lies at `begin..end`.
//!
//! # What [`SafeTensors::parse`] validates
//!
//! Everything, and it never panics nor reads out of range, whatever the bytes:
//! - the framing: at least 8 bytes; N at most [`MAX_HEADER_LEN`] and at most the bytes that
//!   follow; the header valid UTF-8;
//! - the JSON, with a strict parser for exactly the subset a header needs: objects, strings (every
//!   JSON escape, `\uXXXX` surrogate pairs included; raw control characters, invalid escapes and
//!   lone surrogates are refused), non-negative integers fitting `u64` and `usize` (no sign, no
//!   fraction or exponent, no leading zeros), arrays of those, whitespace. Anything else is
//!   refused: other values where a string, an integer or an object is due, arrays nested in
//!   arrays, duplicate keys (compared after unescaping), anything after the top-level object
//!   but whitespace;
//! - each tensor entry: exactly the fields `dtype` (a string), `shape` (at most [`MAX_RANK`]
//!   integers) and `data_offsets` (exactly two integers), no other field; `dtype` is `F32` (other
//!   dtypes are refused by name, see [`Dtype`]); `begin <= end`;
//!   `end - begin == product(shape) * 4` (overflow checked); `end` within the byte buffer;
//! - the layout: sorted by offset, the tensors tile the byte buffer exactly: no overlap, no hole,
//!   nothing after the last tensor;
//! - `__metadata__`, if present: an object whose values are all strings;
//! - the capacities: at most [`MAX_TENSORS`] tensors and [`MAX_METADATA`] metadata entries.
//!
//! The parsed [`SafeTensors`] borrows the file: names, metadata and tensor data are slices of it.
//! Names and metadata are kept as their raw JSON text (identical to the string unless it contains
//! a `\` escape); lookups compare unescaped text, and [`unescape_json_str`],
//! [`TensorView::name_into`] and [`SafeTensors::metadata`] unescape into a caller's buffer.
//!
//! # Writing
//!
//! [`write()`] makes a file [`SafeTensors::parse`] (and the reference implementation) accepts:
//! metadata first, tensors in the given order, contiguous, header padded with spaces to a multiple
//! of 8 bytes like the reference's `serialize`. [`written_len`] tells the size beforehand.
//!
//! # The model
//!
//! The model's checkpoint schema (tensor names and shapes, metadata keys, checksum) is
//! [`crate::checkpoint`]'s; [`save_model`], [`read_dims`], [`load_model`] and [`verify_checksum`]
//! are re-exported here.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

// Layout, one file per concern: `error` (the error and what it carries), `json` (the header's
// JSON subset: strings, the cursor, the writer's sinks), `read` (the parsed file and its views),
// `write` (the writer). The model's checkpoint schema lives in `crate::checkpoint`; its functions
// are re-exported here so that `makemore_core::safetensors::{save_model, load_model, ...}` keep
// working.

mod error;
pub(crate) mod json;
mod read;
mod write;

pub use crate::checkpoint::{
    load_model, read_dims, save_model, saved_model_len, verify_checksum, CHECKSUM_KEY,
    MODEL_TENSOR_NAMES,
};
pub use error::SafetensorsError;
pub use json::unescape_json_str;
pub use read::{SafeTensors, TensorView};
pub use write::{write, written_len, TensorArg};

use core::fmt;

/// The most tensors a file may hold (the model has 9).
pub const MAX_TENSORS: usize = 16;
/// The most dimensions a tensor may have.
pub const MAX_RANK: usize = 4;
/// The most entries `__metadata__` may hold.
pub const MAX_METADATA: usize = 16;
/// The largest header accepted (and written): 100 MB, the reference implementation's limit.
pub const MAX_HEADER_LEN: usize = 100_000_000;
/// How many bytes of a name an error keeps (see [`NameBuf`]).
pub const NAME_BUF_CAP: usize = 32;
/// Where the header starts in the file: error positions are file offsets.
const HEADER_START: usize = 8;
/// Bytes per `F32` element.
const F32_SIZE: usize = 4;
type Result<T> = core::result::Result<T, SafetensorsError>;

// ------------------------------------------------------------------------------------------------
// Small value types carried by the errors and views

/// A safetensors dtype name. Only [`Dtype::F32`] is supported; the others are recognised so that
/// an error can say what a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `BOOL`
    Bool,
    /// `F4`
    F4,
    /// `F6_E2M3`
    F6E2M3,
    /// `F6_E3M2`
    F6E3M2,
    /// `U8`
    U8,
    /// `I8`
    I8,
    /// `F8_E5M2`
    F8E5M2,
    /// `F8_E4M3`
    F8E4M3,
    /// `F8_E8M0`
    F8E8M0,
    /// `I16`
    I16,
    /// `U16`
    U16,
    /// `F16`
    F16,
    /// `BF16`
    BF16,
    /// `I32`
    I32,
    /// `U32`
    U32,
    /// `F32`: the one this module reads and writes.
    F32,
    /// `C64`
    C64,
    /// `F64`
    F64,
    /// `I64`
    I64,
    /// `U64`
    U64,
}

impl Dtype {
    /// Every dtype, in the reference implementation's order.
    pub const ALL: [Dtype; 20] = [
        Dtype::Bool,
        Dtype::F4,
        Dtype::F6E2M3,
        Dtype::F6E3M2,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::F8E8M0,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::C64,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The name the header uses, e.g. `"BF16"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::F4 => "F4",
            Dtype::F6E2M3 => "F6_E2M3",
            Dtype::F6E3M2 => "F6_E3M2",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E8M0 => "F8_E8M0",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::C64 => "C64",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// The dtype a header name (e.g. `"F16"`) stands for, if any.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name copied into an error (which borrows nothing): its first [`NAME_BUF_CAP`] bytes, cut at
/// a character boundary. Names from a header are its raw JSON text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameBuf {
    bytes: [u8; NAME_BUF_CAP],
    len: u8,
    truncated: bool,
}

impl NameBuf {
    /// Copies `s`, truncated to at most [`NAME_BUF_CAP`] bytes at a character boundary.
    pub fn new(s: &str) -> NameBuf {
        let mut len = if s.len() < NAME_BUF_CAP {
            s.len()
        } else {
            NAME_BUF_CAP
        };
        while len > 0 && !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; NAME_BUF_CAP];
        for (d, b) in bytes.iter_mut().zip(s.as_bytes().iter().take(len)) {
            *d = *b;
        }
        NameBuf {
            bytes,
            len: len as u8,
            truncated: len < s.len(),
        }
    }

    /// The kept text.
    pub fn as_str(&self) -> &str {
        let kept = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(kept).unwrap_or("")
    }

    /// Whether the original was longer than what is kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for NameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// A tensor shape of at most [`MAX_RANK`] dimensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: u8,
}

impl Shape {
    /// The shape with these dimensions, or `None` if there are more than [`MAX_RANK`].
    pub fn new(dims: &[usize]) -> Option<Shape> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut s = Shape {
            dims: [0; MAX_RANK],
            rank: dims.len() as u8,
        };
        for (d, x) in s.dims.iter_mut().zip(dims) {
            *d = *x;
        }
        Some(s)
    }

    pub(crate) const fn of1(a: usize) -> Shape {
        Shape {
            dims: [a, 0, 0, 0],
            rank: 1,
        }
    }

    pub(crate) const fn of2(a: usize, b: usize) -> Shape {
        Shape {
            dims: [a, b, 0, 0],
            rank: 2,
        }
    }

    /// The dimensions.
    pub fn as_slice(&self) -> &[usize] {
        self.dims.get(..usize::from(self.rank)).unwrap_or(&[])
    }

    /// The number of elements (1 for rank 0), or `None` if it overflows `usize`.
    pub fn num_elements(&self) -> Option<usize> {
        product(self.as_slice())
    }
}

impl fmt::Display for Shape {
    /// Python's tuple notation: `(27, 10)`, `(64,)`, `()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, d) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.rank == 1 {
            f.write_str(",")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}
