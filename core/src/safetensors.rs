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
//! [`save_model`], [`read_dims`] and [`load_model`] use the notebook's names and shapes:
//! `C` (V,E), `W1` (T*E,H), `b1` (H), `W2` (H,V), `b2` (V), `bngain` (1,H), `bnbias` (1,H), and
//! optionally the calibrated batchnorm statistics `bnmean` (1,H), `bnvar` (1,H); see
//! [`MODEL_TENSOR_NAMES`].
//!
//! [`save_model`] adds the metadata entry `"checksum": "crc32:xxxxxxxx"`: the CRC-32 (zlib's,
//! lowercase hex) of the whole byte buffer after the header, i.e. of every tensor's bytes in file
//! order (in Python: `zlib.crc32(data[8 + n:])`). [`load_model`] verifies it when present
//! ([`verify_checksum`]), so a flipped byte in the data is refused; files without it (PyTorch's)
//! still load. The header itself is not covered: its JSON is validated instead.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use core::fmt;

use crate::crc32::Crc32;
use crate::error::Error;
use crate::model::{Dims, ParamsMut, ParamsRef};

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
/// The model's tensor names, in the notebook's order; the last two (the batchnorm running
/// statistics) are optional.
pub const MODEL_TENSOR_NAMES: [&str; 9] = [
    "C", "W1", "b1", "W2", "b2", "bngain", "bnbias", "bnmean", "bnvar",
];

/// Where the header starts in the file: error positions are file offsets.
const HEADER_START: usize = 8;
/// Bytes per `F32` element.
const F32_SIZE: usize = 4;
/// The metadata key the model's context length may be stated under.
const CONTEXT_KEY: &str = "context";
/// The metadata key of the tensor bytes' checksum, written by [`save_model`].
pub const CHECKSUM_KEY: &str = "checksum";
/// The checksum's algorithm, before its 8 hex digits.
const CHECKSUM_PREFIX: &str = "crc32:";
/// `crc32:` and 8 hex digits.
const CHECKSUM_LEN: usize = 14;

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

    const fn of1(a: usize) -> Shape {
        Shape {
            dims: [a, 0, 0, 0],
            rank: 1,
        }
    }

    const fn of2(a: usize, b: usize) -> Shape {
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

// ------------------------------------------------------------------------------------------------
// The error

/// Every way reading or writing a safetensors file can fail. Positions (`pos`) are byte offsets
/// in the file (the header starts at 8); tensor names from a file are their raw JSON text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SafetensorsError {
    /// The file is shorter than the 8-byte header length.
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// The header length exceeds [`MAX_HEADER_LEN`].
    HeaderTooLarge {
        /// The header length (read from the file, or that [`write()`] would need).
        len: u64,
        /// [`MAX_HEADER_LEN`].
        max: usize,
    },
    /// The header length exceeds the bytes after the 8-byte length.
    HeaderOutOfBounds {
        /// The stated header length.
        len: u64,
        /// The bytes after the first 8.
        available: usize,
    },
    /// The header is not valid UTF-8.
    HeaderNotUtf8 {
        /// The first invalid byte.
        pos: usize,
    },
    /// The header is not JSON: something else than `expected` (or the end of the header) at `pos`.
    Syntax {
        /// Where.
        pos: usize,
        /// What the parser wanted there.
        expected: &'static str,
    },
    /// A JSON value of the wrong kind, e.g. `true` or a number where a string is due, or an array
    /// where an object is due.
    WrongType {
        /// Where the value starts.
        pos: usize,
        /// What the parser wanted there.
        expected: &'static str,
    },
    /// An invalid escape in a string (`\x`, `\u` without four hex digits, or a string ending in a
    /// lone `\`).
    InvalidEscape {
        /// Where the escape starts.
        pos: usize,
    },
    /// A `\uXXXX` escape of a UTF-16 surrogate that is not part of a high-low pair.
    LoneSurrogate {
        /// Where the escape starts.
        pos: usize,
    },
    /// A raw control character (below U+0020) in a string: JSON requires it escaped.
    ControlCharacter {
        /// Where.
        pos: usize,
    },
    /// A number with a fraction or an exponent where an integer is due.
    Float {
        /// Where the number starts.
        pos: usize,
    },
    /// A negative number where a non-negative integer is due.
    Negative {
        /// Where the number starts.
        pos: usize,
    },
    /// An integer that does not fit `u64` or `usize`.
    IntegerOverflow {
        /// Where the number starts.
        pos: usize,
    },
    /// An array or object inside an array of integers.
    NestingTooDeep {
        /// Where the nested value starts.
        pos: usize,
    },
    /// Something other than whitespace after the top-level object.
    TrailingCharacters {
        /// Where.
        pos: usize,
    },
    /// A key appears twice in one object (compared after unescaping).
    DuplicateKey {
        /// Where the second occurrence starts.
        pos: usize,
        /// The key.
        key: NameBuf,
    },
    /// A tensor entry has a field other than `dtype`, `shape` and `data_offsets`.
    UnknownField {
        /// Where the field's key starts.
        pos: usize,
        /// The tensor.
        tensor: NameBuf,
        /// The field.
        field: NameBuf,
    },
    /// A tensor entry lacks `dtype`, `shape` or `data_offsets`.
    MissingField {
        /// The tensor.
        tensor: NameBuf,
        /// The missing field.
        field: &'static str,
    },
    /// A shape has more than [`MAX_RANK`] dimensions.
    TooManyDims {
        /// The tensor.
        tensor: NameBuf,
        /// [`MAX_RANK`].
        max: usize,
    },
    /// `data_offsets` does not hold exactly two integers.
    DataOffsetsLen {
        /// The tensor.
        tensor: NameBuf,
        /// How many it holds.
        got: usize,
    },
    /// A known dtype other than `F32`.
    UnsupportedDtype {
        /// The tensor.
        tensor: NameBuf,
        /// Its dtype.
        dtype: Dtype,
    },
    /// A dtype name that is not a safetensors dtype.
    UnknownDtype {
        /// The tensor.
        tensor: NameBuf,
        /// The dtype's raw JSON text.
        dtype: NameBuf,
    },
    /// More than [`MAX_TENSORS`] tensors.
    TooManyTensors {
        /// [`MAX_TENSORS`].
        max: usize,
    },
    /// More than [`MAX_METADATA`] metadata entries.
    TooManyMetadataEntries {
        /// [`MAX_METADATA`].
        max: usize,
    },
    /// `__metadata__` is not an object.
    MetadataNotObject {
        /// Where its value starts.
        pos: usize,
    },
    /// A `__metadata__` value is not a string.
    MetadataNotString {
        /// Where the value starts.
        pos: usize,
        /// Its key.
        key: NameBuf,
    },
    /// `data_offsets` has `begin > end`.
    OffsetsReversed {
        /// The tensor.
        tensor: NameBuf,
        /// The first offset.
        begin: usize,
        /// The second offset.
        end: usize,
    },
    /// The product of a shape (times 4 bytes), or a file size, overflows `usize`.
    SizeOverflow {
        /// The tensor.
        tensor: NameBuf,
    },
    /// `end - begin` differs from the shape's size in bytes.
    SizeMismatch {
        /// The tensor.
        tensor: NameBuf,
        /// Its shape.
        shape: Shape,
        /// `product(shape) * 4`.
        expected: usize,
        /// `end - begin`.
        got: usize,
    },
    /// A tensor ends past the end of the byte buffer.
    OffsetOutOfRange {
        /// The tensor.
        tensor: NameBuf,
        /// Its end offset.
        end: usize,
        /// The byte buffer's length.
        buffer_len: usize,
    },
    /// A tensor starts before the previous one (in offset order) ends.
    Overlap {
        /// The tensor.
        tensor: NameBuf,
        /// Where it starts.
        begin: usize,
        /// Where the previous one ends.
        expected: usize,
    },
    /// A tensor starts after the previous one (in offset order) ends, or the first one after 0.
    Hole {
        /// The tensor.
        tensor: NameBuf,
        /// Where it starts.
        begin: usize,
        /// Where the previous one ends.
        expected: usize,
    },
    /// The byte buffer goes on after the last tensor.
    TrailingBytes {
        /// Where the last tensor ends.
        used: usize,
        /// The byte buffer's length.
        buffer_len: usize,
    },
    /// The output buffer is too short.
    BufferTooSmall {
        /// How many bytes it needs.
        needed: usize,
    },
    /// [`TensorView::read_f32_into`]'s output has another length than the tensor.
    OutputLenMismatch {
        /// The tensor's number of elements.
        expected: usize,
        /// The output's length.
        got: usize,
    },
    /// A tensor given to [`write()`] has data of another length than its shape's product.
    DataLenMismatch {
        /// The tensor.
        tensor: NameBuf,
        /// The shape's product.
        expected: usize,
        /// The data's length.
        got: usize,
    },
    /// Two tensors, or two metadata keys, given to [`write()`] have the same name.
    DuplicateName {
        /// The name.
        name: NameBuf,
    },
    /// A tensor given to [`write()`] is named `__metadata__`.
    ReservedName,
    /// A model tensor is missing from the file.
    MissingTensor {
        /// Its name.
        name: &'static str,
    },
    /// The file holds a tensor the model does not have.
    UnexpectedTensor {
        /// Its raw name.
        name: NameBuf,
    },
    /// A model tensor has another number of dimensions than the model's.
    UnexpectedRank {
        /// The tensor.
        tensor: &'static str,
        /// The rank the model uses.
        expected: usize,
        /// The file's shape.
        got: Shape,
    },
    /// A model tensor has another shape than the dimensions require.
    ShapeMismatch {
        /// The tensor.
        tensor: &'static str,
        /// The shape the dimensions require.
        expected: Shape,
        /// The file's shape.
        got: Shape,
    },
    /// W1's first dimension (T*E) is not a multiple of C's second (E).
    ContextNotDivisible {
        /// W1's first dimension.
        embcat: usize,
        /// C's second dimension.
        embedding: usize,
    },
    /// The `context` metadata is not a decimal integer.
    InvalidContextMetadata {
        /// Its raw JSON text.
        value: NameBuf,
    },
    /// The context length stated in the metadata (or passed as an argument) disagrees with the
    /// tensors' shapes.
    ContextMismatch {
        /// `"metadata"` or `"argument"`.
        from: &'static str,
        /// What the shapes (or the parameters' dimensions) give.
        expected: usize,
        /// What was stated.
        got: usize,
    },
    /// The `checksum` metadata is not `crc32:` followed by 8 lowercase hex digits.
    InvalidChecksumMetadata {
        /// Its raw JSON text.
        value: NameBuf,
    },
    /// The CRC-32 of the tensor bytes differs from the `checksum` metadata: the data is corrupt.
    ChecksumMismatch {
        /// What the metadata states.
        stated: u32,
        /// What the bytes give.
        computed: u32,
    },
    /// [`save_model`] was given a metadata key it writes itself.
    ReservedMetadataKey {
        /// The key.
        key: &'static str,
    },
    /// Only one of `bnmean` and `bnvar` is present.
    IncompleteBatchnorm {
        /// The one present.
        present: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// The model's dimensions or buffers are invalid (see [`crate::Error`]).
    Model(Error),
}

impl From<Error> for SafetensorsError {
    fn from(e: Error) -> Self {
        SafetensorsError::Model(e)
    }
}

impl fmt::Display for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SafetensorsError as E;
        match self {
            E::TooShort { len } => write!(
                f,
                "safetensors file of {len} bytes: too short for the 8-byte header length"
            ),
            E::HeaderTooLarge { len, max } => {
                write!(
                    f,
                    "safetensors header of {len} bytes exceeds the limit of {max}"
                )
            }
            E::HeaderOutOfBounds { len, available } => write!(
                f,
                "safetensors header length {len} exceeds the {available} bytes after it"
            ),
            E::HeaderNotUtf8 { pos } => {
                write!(f, "safetensors header is not valid UTF-8 (byte {pos})")
            }
            E::Syntax { pos, expected } => {
                write!(
                    f,
                    "invalid safetensors header JSON at byte {pos}: expected {expected}"
                )
            }
            E::WrongType { pos, expected } => write!(
                f,
                "unexpected value in safetensors header at byte {pos}: expected {expected}"
            ),
            E::InvalidEscape { pos } => {
                write!(f, "invalid escape in a JSON string at byte {pos}")
            }
            E::LoneSurrogate { pos } => write!(
                f,
                "unpaired UTF-16 surrogate escape in a JSON string at byte {pos}"
            ),
            E::ControlCharacter { pos } => write!(
                f,
                "unescaped control character in a JSON string at byte {pos}"
            ),
            E::Float { pos } => write!(
                f,
                "number with a fraction or exponent at byte {pos}: expected an integer"
            ),
            E::Negative { pos } => write!(
                f,
                "negative number at byte {pos}: expected a non-negative integer"
            ),
            E::IntegerOverflow { pos } => {
                write!(f, "integer at byte {pos} is too large")
            }
            E::NestingTooDeep { pos } => write!(
                f,
                "nested array or object at byte {pos}: expected an integer"
            ),
            E::TrailingCharacters { pos } => write!(
                f,
                "unexpected characters after the safetensors header object at byte {pos}"
            ),
            E::DuplicateKey { pos, key } => {
                write!(
                    f,
                    "duplicate key \"{key}\" in safetensors header at byte {pos}"
                )
            }
            E::UnknownField { pos, tensor, field } => write!(
                f,
                "tensor \"{tensor}\": unknown field \"{field}\" at byte {pos} (expected dtype, \
                 shape, data_offsets)"
            ),
            E::MissingField { tensor, field } => {
                write!(f, "tensor \"{tensor}\": missing field \"{field}\"")
            }
            E::TooManyDims { tensor, max } => {
                write!(f, "tensor \"{tensor}\": more than {max} dimensions")
            }
            E::DataOffsetsLen { tensor, got } => write!(
                f,
                "tensor \"{tensor}\": data_offsets holds {got} integers, expected 2"
            ),
            E::UnsupportedDtype { tensor, dtype } => write!(
                f,
                "tensor \"{tensor}\" has dtype {dtype}; only F32 is supported"
            ),
            E::UnknownDtype { tensor, dtype } => {
                write!(f, "tensor \"{tensor}\" has unknown dtype \"{dtype}\"")
            }
            E::TooManyTensors { max } => {
                write!(f, "more than {max} tensors (this reader's capacity)")
            }
            E::TooManyMetadataEntries { max } => {
                write!(
                    f,
                    "more than {max} metadata entries (this reader's capacity)"
                )
            }
            E::MetadataNotObject { pos } => {
                write!(f, "__metadata__ at byte {pos} is not an object")
            }
            E::MetadataNotString { pos, key } => write!(
                f,
                "__metadata__ value for \"{key}\" at byte {pos} is not a string"
            ),
            E::OffsetsReversed { tensor, begin, end } => write!(
                f,
                "tensor \"{tensor}\": data_offsets [{begin}, {end}] has begin > end"
            ),
            E::SizeOverflow { tensor } => {
                write!(f, "tensor \"{tensor}\": size in bytes overflows")
            }
            E::SizeMismatch {
                tensor,
                shape,
                expected,
                got,
            } => write!(
                f,
                "tensor \"{tensor}\": shape {shape} of F32 needs {expected} bytes, data_offsets \
                 span {got}"
            ),
            E::OffsetOutOfRange {
                tensor,
                end,
                buffer_len,
            } => write!(
                f,
                "tensor \"{tensor}\" ends at {end}, past the {buffer_len}-byte data buffer"
            ),
            E::Overlap {
                tensor,
                begin,
                expected,
            } => write!(
                f,
                "tensor \"{tensor}\" starts at {begin}, overlapping the previous tensor (ends at \
                 {expected})"
            ),
            E::Hole {
                tensor,
                begin,
                expected,
            } => write!(
                f,
                "tensor \"{tensor}\" starts at {begin}, leaving a hole after {expected}"
            ),
            E::TrailingBytes { used, buffer_len } => write!(
                f,
                "the tensors end at {used} but the data buffer holds {buffer_len} bytes"
            ),
            E::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            E::OutputLenMismatch { expected, got } => write!(
                f,
                "output of {got} values for a tensor of {expected} elements"
            ),
            E::DataLenMismatch {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "tensor \"{tensor}\": shape holds {expected} elements, data {got}"
            ),
            E::DuplicateName { name } => write!(f, "name \"{name}\" given twice"),
            E::ReservedName => f.write_str("a tensor cannot be named __metadata__"),
            E::MissingTensor { name } => write!(f, "tensor \"{name}\" is missing"),
            E::UnexpectedTensor { name } => {
                write!(f, "unexpected tensor \"{name}\": not part of the model")
            }
            E::UnexpectedRank {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "tensor \"{tensor}\" has shape {got}; expected {expected} dimensions"
            ),
            E::ShapeMismatch {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "tensor \"{tensor}\" has shape {got}; expected {expected}"
            ),
            E::ContextNotDivisible { embcat, embedding } => write!(
                f,
                "W1 has {embcat} rows, not a multiple of the embedding size {embedding}"
            ),
            E::InvalidContextMetadata { value } => write!(
                f,
                "metadata \"context\" is \"{value}\", not a non-negative integer"
            ),
            E::ContextMismatch {
                from,
                expected,
                got,
            } => write!(
                f,
                "context length {got} (from the {from}) disagrees with the tensors' {expected}"
            ),
            E::InvalidChecksumMetadata { value } => write!(
                f,
                "metadata \"checksum\" is \"{value}\", expected \"crc32:\" and 8 lowercase hex digits"
            ),
            E::ChecksumMismatch { stated, computed } => write!(
                f,
                "the tensor data is corrupt: its CRC-32 is crc32:{computed:08x} but the metadata \
                 \"checksum\" says crc32:{stated:08x} (a truncated copy or a flipped byte); restore \
                 the file or write it again"
            ),
            E::ReservedMetadataKey { key } => {
                write!(f, "metadata key \"{key}\" is written by save_model itself")
            }
            E::IncompleteBatchnorm { present, missing } => write!(
                f,
                "batchnorm statistics incomplete: \"{present}\" present, \"{missing}\" missing"
            ),
            E::Model(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for SafetensorsError {}

// ------------------------------------------------------------------------------------------------
// JSON strings: validation and unescaping

/// Reads the escape starting at `b[i] == b'\\'`: the code point and the index after it. `base`
/// is added to error positions.
fn escape(b: &[u8], i: usize, base: usize) -> Result<(u32, usize)> {
    let bad = SafetensorsError::InvalidEscape {
        pos: base.saturating_add(i),
    };
    let lone = SafetensorsError::LoneSurrogate {
        pos: base.saturating_add(i),
    };
    let c = *b.get(i.saturating_add(1)).ok_or(bad)?;
    let simple = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0C,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let hi = hex4(b, i.saturating_add(2)).ok_or(bad)?;
            if (0xDC00..0xE000).contains(&hi) {
                return Err(lone);
            }
            if !(0xD800..0xDC00).contains(&hi) {
                return Ok((hi, i.saturating_add(6)));
            }
            if b.get(i.saturating_add(6)) != Some(&b'\\')
                || b.get(i.saturating_add(7)) != Some(&b'u')
            {
                return Err(lone);
            }
            let lo = hex4(b, i.saturating_add(8)).ok_or(SafetensorsError::InvalidEscape {
                pos: base.saturating_add(i).saturating_add(6),
            })?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(lone);
            }
            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return Ok((cp, i.saturating_add(12)));
        }
        _ => return Err(bad),
    };
    Ok((u32::from(simple), i.saturating_add(2)))
}

/// Four hex digits at `b[i..i + 4]`.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i.checked_add(4)?)?;
    let mut v = 0u32;
    for &d in digits {
        let x = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u32::from(x);
    }
    Some(v)
}

/// Scans a string's content from `start`: the index of the closing `"`, or `None` if the input
/// ends first. Validates every escape and refuses raw control characters.
fn scan_string(b: &[u8], start: usize, base: usize) -> Result<Option<usize>> {
    let mut i = start;
    loop {
        match b.get(i) {
            None => return Ok(None),
            Some(b'"') => return Ok(Some(i)),
            Some(b'\\') => i = escape(b, i, base)?.1,
            Some(&c) if c < 0x20 => {
                return Err(SafetensorsError::ControlCharacter {
                    pos: base.saturating_add(i),
                })
            }
            Some(_) => i = i.saturating_add(1),
        }
    }
}

/// The UTF-8 bytes a raw (already validated) JSON string's content stands for.
struct Unescaped<'a> {
    raw: &'a [u8],
    i: usize,
    pending: [u8; 4],
    pending_len: u8,
    pending_at: u8,
}

impl<'a> Unescaped<'a> {
    fn new(raw: &'a str) -> Self {
        Unescaped {
            raw: raw.as_bytes(),
            i: 0,
            pending: [0; 4],
            pending_len: 0,
            pending_at: 0,
        }
    }
}

impl Iterator for Unescaped<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.pending_at < self.pending_len {
            let b = self.pending.get(usize::from(self.pending_at)).copied();
            self.pending_at += 1;
            return b;
        }
        let b = *self.raw.get(self.i)?;
        if b != b'\\' {
            self.i += 1;
            return Some(b);
        }
        match escape(self.raw, self.i, 0) {
            Ok((cp, next)) => {
                self.i = next;
                let ch = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
                let len = ch.encode_utf8(&mut self.pending).len();
                self.pending_len = len as u8;
                self.pending_at = 1;
                self.pending.first().copied()
            }
            // Unreachable for validated strings; yields the raw byte rather than panicking.
            Err(_) => {
                self.i += 1;
                Some(b)
            }
        }
    }
}

/// Whether the raw JSON string content `raw` stands for `s`.
fn json_eq(raw: &str, s: &str) -> bool {
    if !raw.as_bytes().contains(&b'\\') {
        return raw == s;
    }
    Unescaped::new(raw).eq(s.bytes())
}

/// Whether two raw JSON string contents stand for the same string.
fn json_eq_raw(a: &str, b: &str) -> bool {
    if !a.as_bytes().contains(&b'\\') {
        return json_eq(b, a);
    }
    if !b.as_bytes().contains(&b'\\') {
        return json_eq(a, b);
    }
    Unescaped::new(a).eq(Unescaped::new(b))
}

/// Unescapes validated raw content into `buf`.
fn unescape_validated<'b>(raw: &str, buf: &'b mut [u8]) -> Result<&'b str> {
    let needed = Unescaped::new(raw).count();
    let Some(out) = buf.get_mut(..needed) else {
        return Err(SafetensorsError::BufferTooSmall { needed });
    };
    for (d, b) in out.iter_mut().zip(Unescaped::new(raw)) {
        *d = b;
    }
    core::str::from_utf8(out).map_err(|e| SafetensorsError::InvalidEscape {
        pos: e.valid_up_to(),
    })
}

/// Unescapes the raw content of a JSON string (the text between the quotes, as
/// [`SafeTensors::metadata_entries`] and [`TensorView::name`] give it) into `buf`.
///
/// Errors: [`SafetensorsError::BufferTooSmall`] with the length needed; for content that is not
/// valid JSON string content, [`SafetensorsError::InvalidEscape`], [`LoneSurrogate`],
/// [`ControlCharacter`] or [`Syntax`] (an unescaped `"`), with positions relative to `raw`.
///
/// [`LoneSurrogate`]: SafetensorsError::LoneSurrogate
/// [`ControlCharacter`]: SafetensorsError::ControlCharacter
/// [`Syntax`]: SafetensorsError::Syntax
pub fn unescape_json_str<'b>(raw: &str, buf: &'b mut [u8]) -> Result<&'b str> {
    if let Some(pos) = scan_string(raw.as_bytes(), 0, 0)? {
        return Err(SafetensorsError::Syntax {
            pos,
            expected: "an escaped '\"'",
        });
    }
    unescape_validated(raw, buf)
}

// ------------------------------------------------------------------------------------------------
// The header parser

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn pos(&self) -> usize {
        HEADER_START.saturating_add(self.i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn bump(&mut self) {
        self.i = self.i.saturating_add(1);
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
    }

    fn syntax(&self, expected: &'static str) -> SafetensorsError {
        SafetensorsError::Syntax {
            pos: self.pos(),
            expected,
        }
    }

    /// Consumes punctuation `c`.
    fn eat(&mut self, c: u8, expected: &'static str) -> Result<()> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// The error for a value that is not the `expected` kind: [`SafetensorsError::WrongType`] if
    /// a JSON value starts here, else a syntax error.
    fn wrong_value(&self, expected: &'static str) -> SafetensorsError {
        match self.peek() {
            Some(b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9') => {
                SafetensorsError::WrongType {
                    pos: self.pos(),
                    expected,
                }
            }
            _ => self.syntax(expected),
        }
    }

    /// A string: its raw content.
    fn string(&mut self, expected: &'static str) -> Result<&'a str> {
        if self.peek() != Some(b'"') {
            return Err(self.wrong_value(expected));
        }
        let start = self.i.saturating_add(1);
        let Some(end) = scan_string(self.s.as_bytes(), start, HEADER_START)? else {
            return Err(SafetensorsError::Syntax {
                pos: HEADER_START.saturating_add(self.s.len()),
                expected: "a closing '\"'",
            });
        };
        // Quotes are ASCII, so both ends are character boundaries.
        let raw = self.s.get(start..end).ok_or(self.syntax("a JSON string"))?;
        self.i = end.saturating_add(1);
        Ok(raw)
    }

    /// A non-negative integer fitting `usize`.
    fn uint(&mut self) -> Result<usize> {
        let pos = self.pos();
        match self.peek() {
            Some(b'-') => return Err(SafetensorsError::Negative { pos }),
            Some(b'0'..=b'9') => {}
            _ => return Err(self.wrong_value("a non-negative integer")),
        }
        let leading_zero = self.peek() == Some(b'0');
        let mut v: u64 = 0;
        let mut digits = 0usize;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if leading_zero && digits == 1 {
                return Err(SafetensorsError::Syntax {
                    pos,
                    expected: "an integer without leading zeros",
                });
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or(SafetensorsError::IntegerOverflow { pos })?;
            digits += 1;
            self.bump();
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return Err(SafetensorsError::Float { pos });
        }
        usize::try_from(v).map_err(|_| SafetensorsError::IntegerOverflow { pos })
    }

    /// An array of integers: stores the first `out.len()`, returns how many there are.
    fn uint_array(&mut self, out: &mut [usize]) -> Result<usize> {
        if self.peek() != Some(b'[') {
            return Err(self.wrong_value("an array of integers"));
        }
        self.bump();
        self.ws();
        if self.peek() == Some(b']') {
            self.bump();
            return Ok(0);
        }
        let mut count = 0usize;
        loop {
            self.ws();
            if let Some(b'[' | b'{') = self.peek() {
                return Err(SafetensorsError::NestingTooDeep { pos: self.pos() });
            }
            let v = self.uint()?;
            if let Some(slot) = out.get_mut(count) {
                *slot = v;
            }
            count = count.saturating_add(1);
            self.ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b']') => {
                    self.bump();
                    return Ok(count);
                }
                _ => return Err(self.syntax("',' or ']'")),
            }
        }
    }

    /// After a member's value: `,` (more members follow) or `}` (the object ends).
    fn member_end(&mut self) -> Result<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.bump();
                Ok(true)
            }
            Some(b'}') => {
                self.bump();
                Ok(false)
            }
            _ => Err(self.syntax("',' or '}'")),
        }
    }

    /// After `{`: whether the object has members (consumes `}` if it has none).
    fn object_open(&mut self) -> bool {
        self.ws();
        if self.peek() == Some(b'}') {
            self.bump();
            false
        } else {
            true
        }
    }

    /// A member's key and the `:` after it: the key's position and raw content.
    fn key(&mut self, expected: &'static str) -> Result<(usize, &'a str)> {
        self.ws();
        let pos = self.pos();
        let key = self.string(expected)?;
        self.ws();
        self.eat(b':', "':'")?;
        self.ws();
        Ok((pos, key))
    }
}

/// A tensor entry as parsed, before the layout checks.
#[derive(Clone, Copy)]
struct Entry<'a> {
    name: &'a str,
    shape: Shape,
    begin: usize,
    end: usize,
}

fn parse_entry<'a>(c: &mut Cursor<'a>, name: &'a str, buffer_len: usize) -> Result<Entry<'a>> {
    let tensor = NameBuf::new(name);
    if c.peek() != Some(b'{') {
        return Err(c.wrong_value("a tensor entry object"));
    }
    c.bump();
    let mut dtype: Option<&str> = None;
    let mut shape: Option<Shape> = None;
    let mut offsets: Option<(usize, usize)> = None;
    let mut more = c.object_open();
    while more {
        let (pos, key) = c.key("a field name")?;
        let dup = SafetensorsError::DuplicateKey {
            pos,
            key: NameBuf::new(key),
        };
        if json_eq(key, "dtype") {
            if dtype.is_some() {
                return Err(dup);
            }
            dtype = Some(c.string("a dtype string")?);
        } else if json_eq(key, "shape") {
            if shape.is_some() {
                return Err(dup);
            }
            let mut dims = [0usize; MAX_RANK];
            let n = c.uint_array(&mut dims)?;
            if n > MAX_RANK {
                return Err(SafetensorsError::TooManyDims {
                    tensor,
                    max: MAX_RANK,
                });
            }
            shape = Shape::new(dims.get(..n).unwrap_or(&[]));
        } else if json_eq(key, "data_offsets") {
            if offsets.is_some() {
                return Err(dup);
            }
            let mut o = [0usize; 2];
            let n = c.uint_array(&mut o)?;
            if n != 2 {
                return Err(SafetensorsError::DataOffsetsLen { tensor, got: n });
            }
            offsets = Some((o[0], o[1]));
        } else {
            return Err(SafetensorsError::UnknownField {
                pos,
                tensor,
                field: NameBuf::new(key),
            });
        }
        more = c.member_end()?;
    }
    let missing = |field| SafetensorsError::MissingField { tensor, field };
    let dtype = dtype.ok_or(missing("dtype"))?;
    let shape = shape.ok_or(missing("shape"))?;
    let (begin, end) = offsets.ok_or(missing("data_offsets"))?;

    let known = if dtype.as_bytes().contains(&b'\\') {
        Dtype::ALL.into_iter().find(|d| json_eq(dtype, d.as_str()))
    } else {
        Dtype::from_name(dtype)
    };
    match known {
        None => {
            return Err(SafetensorsError::UnknownDtype {
                tensor,
                dtype: NameBuf::new(dtype),
            })
        }
        Some(Dtype::F32) => {}
        Some(dtype) => return Err(SafetensorsError::UnsupportedDtype { tensor, dtype }),
    }
    if begin > end {
        return Err(SafetensorsError::OffsetsReversed { tensor, begin, end });
    }
    let expected = shape
        .num_elements()
        .and_then(|n| n.checked_mul(F32_SIZE))
        .ok_or(SafetensorsError::SizeOverflow { tensor })?;
    if end - begin != expected {
        return Err(SafetensorsError::SizeMismatch {
            tensor,
            shape,
            expected,
            got: end - begin,
        });
    }
    if end > buffer_len {
        return Err(SafetensorsError::OffsetOutOfRange {
            tensor,
            end,
            buffer_len,
        });
    }
    Ok(Entry {
        name,
        shape,
        begin,
        end,
    })
}

// ------------------------------------------------------------------------------------------------
// The parsed file

/// One tensor of a parsed file: borrowed name, shape and little-endian `F32` data.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    name: &'a str,
    shape: Shape,
    begin: usize,
    end: usize,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// The name's raw JSON text: the name itself unless it contains a `\` escape (then see
    /// [`TensorView::name_into`]).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The name, unescaped into `buf` ([`SafetensorsError::BufferTooSmall`] if it does not fit).
    pub fn name_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str> {
        unescape_validated(self.name, buf)
    }

    /// Whether the (unescaped) name is `name`.
    pub fn name_eq(&self, name: &str) -> bool {
        json_eq(self.name, name)
    }

    /// The dimensions (at most [`MAX_RANK`]).
    pub fn shape(&self) -> &[usize] {
        self.shape.as_slice()
    }

    /// The shape as a value (printable as Python's tuple).
    pub fn shape_value(&self) -> Shape {
        self.shape
    }

    /// The number of elements: the product of the shape (1 for a scalar).
    pub fn num_elements(&self) -> usize {
        self.data.len() / F32_SIZE
    }

    /// The dtype: always [`Dtype::F32`], the only one [`SafeTensors::parse`] accepts.
    pub fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    /// `[begin, end)` within the byte buffer (after the header).
    pub fn data_offsets(&self) -> (usize, usize) {
        (self.begin, self.end)
    }

    /// The raw little-endian bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The values, decoded one by one.
    pub fn values(&self) -> impl Iterator<Item = f32> + 'a {
        self.data.chunks_exact(F32_SIZE).map(|c| match *c {
            [a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
            _ => 0.0,
        })
    }

    /// Decodes the values into `out`, which must have exactly [`TensorView::num_elements`]
    /// values ([`SafetensorsError::OutputLenMismatch`] otherwise; `out` is then untouched).
    pub fn read_f32_into(&self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.num_elements() {
            return Err(SafetensorsError::OutputLenMismatch {
                expected: self.num_elements(),
                got: out.len(),
            });
        }
        for (o, v) in out.iter_mut().zip(self.values()) {
            *o = v;
        }
        Ok(())
    }
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorView")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .field("data_offsets", &(self.begin, self.end))
            .finish()
    }
}

/// A parsed and fully validated safetensors file, borrowing its bytes; holds at most
/// [`MAX_TENSORS`] tensors and [`MAX_METADATA`] metadata entries, in fixed arrays.
#[derive(Clone, Copy)]
pub struct SafeTensors<'a> {
    /// Sorted by offset; the first `len` are `Some`.
    tensors: [Option<TensorView<'a>>; MAX_TENSORS],
    len: usize,
    /// Raw key and value, in file order.
    metadata: [Option<(&'a str, &'a str)>; MAX_METADATA],
    header_len: usize,
}

impl<'a> SafeTensors<'a> {
    /// Parses and validates a whole file (see the module documentation for every check).
    pub fn parse(bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
        let Some((len_bytes, rest)) = bytes.split_first_chunk::<HEADER_START>() else {
            return Err(SafetensorsError::TooShort { len: bytes.len() });
        };
        let n = u64::from_le_bytes(*len_bytes);
        if n > MAX_HEADER_LEN as u64 {
            return Err(SafetensorsError::HeaderTooLarge {
                len: n,
                max: MAX_HEADER_LEN,
            });
        }
        let out_of_bounds = SafetensorsError::HeaderOutOfBounds {
            len: n,
            available: rest.len(),
        };
        let n = usize::try_from(n).map_err(|_| out_of_bounds)?;
        let (header, data) = rest.split_at_checked(n).ok_or(out_of_bounds)?;
        let header = core::str::from_utf8(header).map_err(|e| SafetensorsError::HeaderNotUtf8 {
            pos: HEADER_START.saturating_add(e.valid_up_to()),
        })?;

        let mut st = SafeTensors {
            tensors: [None; MAX_TENSORS],
            len: 0,
            metadata: [None; MAX_METADATA],
            header_len: n,
        };
        let mut entries: [Option<Entry<'a>>; MAX_TENSORS] = [None; MAX_TENSORS];
        let mut count = 0usize;
        let mut has_metadata = false;

        let mut c = Cursor { s: header, i: 0 };
        c.ws();
        if c.peek() != Some(b'{') {
            return Err(c.wrong_value("an object"));
        }
        c.bump();
        let mut more = c.object_open();
        while more {
            let (pos, key) = c.key("a string key")?;
            let dup = SafetensorsError::DuplicateKey {
                pos,
                key: NameBuf::new(key),
            };
            if json_eq(key, "__metadata__") {
                if has_metadata {
                    return Err(dup);
                }
                has_metadata = true;
                st.parse_metadata(&mut c)?;
            } else {
                if entries.iter().flatten().any(|e| json_eq_raw(e.name, key)) {
                    return Err(dup);
                }
                let Some(slot) = entries.get_mut(count) else {
                    return Err(SafetensorsError::TooManyTensors { max: MAX_TENSORS });
                };
                *slot = Some(parse_entry(&mut c, key, data.len())?);
                count += 1;
            }
            more = c.member_end()?;
        }
        c.ws();
        if c.i < header.len() {
            return Err(SafetensorsError::TrailingCharacters { pos: c.pos() });
        }

        // Stable insertion sort by (begin, end): `None`s stay at the back.
        let key = |e: &Option<Entry<'_>>| e.map(|e| (e.begin, e.end));
        for i in 1..count.min(MAX_TENSORS) {
            let mut j = i;
            while j > 0 && key(&entries[j]) < key(&entries[j - 1]) {
                entries.swap(j, j - 1);
                j -= 1;
            }
        }
        let mut expected = 0usize;
        for (e, slot) in entries.iter().flatten().zip(st.tensors.iter_mut()) {
            let tensor = NameBuf::new(e.name);
            if e.begin < expected {
                return Err(SafetensorsError::Overlap {
                    tensor,
                    begin: e.begin,
                    expected,
                });
            }
            if e.begin > expected {
                return Err(SafetensorsError::Hole {
                    tensor,
                    begin: e.begin,
                    expected,
                });
            }
            expected = e.end;
            let bytes = data
                .get(e.begin..e.end)
                .ok_or(SafetensorsError::OffsetOutOfRange {
                    tensor,
                    end: e.end,
                    buffer_len: data.len(),
                })?;
            *slot = Some(TensorView {
                name: e.name,
                shape: e.shape,
                begin: e.begin,
                end: e.end,
                data: bytes,
            });
        }
        if expected != data.len() {
            return Err(SafetensorsError::TrailingBytes {
                used: expected,
                buffer_len: data.len(),
            });
        }
        st.len = count;
        Ok(st)
    }

    fn parse_metadata(&mut self, c: &mut Cursor<'a>) -> Result<()> {
        if c.peek() != Some(b'{') {
            return Err(SafetensorsError::MetadataNotObject { pos: c.pos() });
        }
        c.bump();
        let mut count = 0usize;
        let mut more = c.object_open();
        while more {
            let (pos, key) = c.key("a string key")?;
            if self
                .metadata
                .iter()
                .flatten()
                .any(|(k, _)| json_eq_raw(k, key))
            {
                return Err(SafetensorsError::DuplicateKey {
                    pos,
                    key: NameBuf::new(key),
                });
            }
            if c.peek() != Some(b'"') {
                return Err(SafetensorsError::MetadataNotString {
                    pos: c.pos(),
                    key: NameBuf::new(key),
                });
            }
            let value = c.string("a string")?;
            let Some(slot) = self.metadata.get_mut(count) else {
                return Err(SafetensorsError::TooManyMetadataEntries { max: MAX_METADATA });
            };
            *slot = Some((key, value));
            count += 1;
            more = c.member_end()?;
        }
        Ok(())
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The header's length N as stated in the file (padding included); the data starts at 8 + N.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The tensors, in the order of their offsets.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'a>> + '_ {
        self.tensors.iter().flatten().copied()
    }

    /// The tensor whose (unescaped) name is `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'a>> {
        self.tensors().find(|t| t.name_eq(name))
    }

    /// The metadata entries as raw JSON text (key, value), in file order; [`unescape_json_str`]
    /// decodes them.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.metadata.iter().flatten().copied()
    }

    /// The raw JSON text of the metadata value whose (unescaped) key is `key`.
    pub fn metadata_raw(&self, key: &str) -> Option<&'a str> {
        self.metadata_entries()
            .find(|(k, _)| json_eq(k, key))
            .map(|(_, v)| v)
    }

    /// The metadata value whose (unescaped) key is `key`, unescaped into `buf`: `Ok(None)` if
    /// there is no such key, [`SafetensorsError::BufferTooSmall`] if the value does not fit.
    pub fn metadata<'b>(&self, key: &str, buf: &'b mut [u8]) -> Result<Option<&'b str>> {
        match self.metadata_raw(key) {
            None => Ok(None),
            Some(raw) => unescape_validated(raw, buf).map(Some),
        }
    }
}

impl fmt::Debug for SafeTensors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeTensors")
            .field("tensors", &DebugIter(self.tensors.iter().flatten()))
            .field("metadata", &DebugIter(self.metadata.iter().flatten()))
            .finish()
    }
}

/// Debug-prints an iterator's items as a list without collecting them.
struct DebugIter<I>(I);

impl<I: Iterator + Clone> fmt::Debug for DebugIter<I>
where
    I::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}

// ------------------------------------------------------------------------------------------------
// The writer

trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Counts bytes (saturating).
struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// Writes into a slice, noting (instead of panicking) if it runs out.
struct SliceSink<'b> {
    buf: &'b mut [u8],
    pos: usize,
    overflow: bool,
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.checked_add(bytes.len());
        match end.and_then(|end| self.buf.get_mut(self.pos..end)) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos += bytes.len();
            }
            None => self.overflow = true,
        }
    }
}

fn put_usize(sink: &mut impl Sink, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    sink.put(digits.get(i..).unwrap_or(&[]));
}

/// A JSON string: `"` and `\` escaped, control characters as `\u00XX`, the rest raw UTF-8.
fn put_json_str(sink: &mut impl Sink, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    sink.put(b"\"");
    let mut run = 0;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<[u8; 6]> = match b {
            b'"' => Some(*b"\\\"    "),
            b'\\' => Some(*b"\\\\    "),
            0..=0x1F => Some([
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
            _ => None,
        };
        if let Some(esc) = esc {
            sink.put(bytes.get(run..i).unwrap_or(&[]));
            let len = if b < 0x20 { 6 } else { 2 };
            sink.put(esc.get(..len).unwrap_or(&[]));
            run = i + 1;
        }
    }
    sink.put(bytes.get(run..).unwrap_or(&[]));
    sink.put(b"\"");
}

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
