//! [`SafetensorsError`]: every way reading or writing a file, or a model checkpoint in it, fails.

use core::fmt;

use super::{Dtype, NameBuf, Shape};
use crate::error::Error;

// ------------------------------------------------------------------------------------------------
// The error

/// Every way reading or writing a safetensors file can fail. Positions (`pos`) are byte offsets
/// in the file (the header starts at 8); tensor names from a file are their raw JSON text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SafetensorsError {
    /// The file is shorter than the 8-byte header length.
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// The header length exceeds [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN).
    HeaderTooLarge {
        /// The header length (read from the file, or that [`write()`](super::write()) would need).
        len: u64,
        /// [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN).
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
    /// A shape has more than [`MAX_RANK`](super::MAX_RANK) dimensions.
    TooManyDims {
        /// The tensor.
        tensor: NameBuf,
        /// [`MAX_RANK`](super::MAX_RANK).
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
    /// More than [`MAX_TENSORS`](super::MAX_TENSORS) tensors.
    TooManyTensors {
        /// [`MAX_TENSORS`](super::MAX_TENSORS).
        max: usize,
    },
    /// More than [`MAX_METADATA`](super::MAX_METADATA) metadata entries.
    TooManyMetadataEntries {
        /// [`MAX_METADATA`](super::MAX_METADATA).
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
    /// [`TensorView::read_f32_into`](super::TensorView::read_f32_into)'s output has another length than the tensor.
    OutputLenMismatch {
        /// The tensor's number of elements.
        expected: usize,
        /// The output's length.
        got: usize,
    },
    /// A tensor given to [`write()`](super::write()) has data of another length than its shape's product.
    DataLenMismatch {
        /// The tensor.
        tensor: NameBuf,
        /// The shape's product.
        expected: usize,
        /// The data's length.
        got: usize,
    },
    /// Two tensors, or two metadata keys, given to [`write()`](super::write()) have the same name.
    DuplicateName {
        /// The name.
        name: NameBuf,
    },
    /// A tensor given to [`write()`](super::write()) is named `__metadata__`.
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
    /// A metadata value of the checkpoint schema does not parse as what its key holds.
    InvalidMetadata {
        /// The key.
        key: &'static str,
        /// What its value must be.
        expected: &'static str,
        /// Its raw JSON text.
        value: NameBuf,
    },
    /// A metadata key of the checkpoint schema is missing while another of its group is present
    /// (a training state needs all six of its keys).
    MissingMetadata {
        /// The missing key.
        key: &'static str,
        /// A key of the same group that is present.
        because: &'static str,
    },
    /// The `format` metadata names another format than the one this code reads.
    UnknownFormat {
        /// Its raw JSON text.
        value: NameBuf,
    },
    /// The `embedding` or `hidden` metadata disagrees with the tensors' shapes.
    ConfigMismatch {
        /// The key.
        key: &'static str,
        /// What the shapes give.
        expected: usize,
        /// What the metadata states.
        got: usize,
    },
    /// The `vocab` metadata has another number of symbols than C has rows (V).
    VocabMismatch {
        /// Its symbols (characters).
        symbols: usize,
        /// V.
        vocab: usize,
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
    /// The CRC-32 of the tensor bytes differs from the `checksum` metadata: the data is corrupt.
    ChecksumMismatch {
        /// What the metadata states.
        stated: u32,
        /// What the bytes give.
        computed: u32,
    },
    /// [`save_model`](super::save_model) was given a metadata key it writes itself.
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
    /// A model tensor holds a NaN or an infinity (a diverged model): refused on loading and on
    /// saving.
    NonFinite {
        /// The tensor.
        tensor: &'static str,
        /// The value's index in the tensor (row-major).
        index: usize,
        /// The value's bits (`f32::to_bits`, so that the error stays `Eq`).
        bits: u32,
    },
    /// `bnvar` holds a negative value: a variance is >= 0.
    NegativeVariance {
        /// The value's index in `bnvar`.
        index: usize,
        /// The value's bits (`f32::to_bits`).
        bits: u32,
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
            E::InvalidMetadata {
                key,
                expected,
                value,
            } => write!(f, "metadata \"{key}\" is \"{value}\", expected {expected}"),
            E::MissingMetadata { key, because } => write!(
                f,
                "metadata \"{key}\" is missing, though \"{because}\" is present (a training \
                 state has all its keys: the file was edited or not written by makemore)"
            ),
            E::UnknownFormat { value } => write!(
                f,
                "metadata \"{}\" is \"{value}\", a format this version does not read (it \
                 reads \"{}\")",
                crate::checkpoint::key::FORMAT,
                crate::checkpoint::FORMAT
            ),
            E::ConfigMismatch { key, expected, got } => write!(
                f,
                "metadata \"{key}\" is {got} but the tensors' shapes give {key} {expected}: the \
                 file is inconsistent"
            ),
            E::VocabMismatch { symbols, vocab } => write!(
                f,
                "metadata vocab has {symbols} symbols but C has {vocab} rows: the file is \
                 inconsistent"
            ),
            E::ContextMismatch {
                from,
                expected,
                got,
            } => write!(
                f,
                "context length {got} (from the {from}) disagrees with the tensors' {expected}"
            ),
            E::ChecksumMismatch { stated, computed } => write!(
                f,
                "the tensor data is corrupt: its CRC-32 is crc32:{computed:08x} but the metadata \
                 \"{}\" says crc32:{stated:08x} (a truncated copy or a flipped byte); restore \
                 the file or write it again",
                crate::checkpoint::key::CHECKSUM
            ),
            E::ReservedMetadataKey { key } => {
                write!(f, "metadata key \"{key}\" is written by save_model itself")
            }
            E::IncompleteBatchnorm { present, missing } => write!(
                f,
                "batchnorm statistics incomplete: \"{present}\" present, \"{missing}\" missing"
            ),
            E::NonFinite {
                tensor,
                index,
                bits,
            } => write!(f, "{tensor}[{index}] is {}", f32::from_bits(*bits)),
            E::NegativeVariance { index, bits } => write!(
                f,
                "bnvar[{index}] is {}: a variance cannot be negative",
                f32::from_bits(*bits)
            ),
            E::Model(e) => write!(f, "{e}"),
        }
    }
}

/// Debug is the message: the derived form would add every variant's and field's name to the
/// WebAssembly build (anyhow keeps it reachable), and nothing shows it but failing tests.
impl fmt::Debug for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for SafetensorsError {}
