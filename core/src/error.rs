//! The one error type of the core: every way a public function can refuse its input.

use core::fmt;

/// What went wrong; every public entry point returns these instead of panicking.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A size is 0, `vocab` > 256, or a size is absurdly large (> 65536).
    InvalidDims,
    /// The batch has fewer than 2 rows: the Bessel-corrected variance divides by n - 1.
    BatchTooSmall { n: usize },
    /// A buffer's length does not match the dimensions.
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A token id is >= the vocabulary size.
    TokenOutOfRange {
        /// Position in the flat token buffer.
        index: usize,
        token: u8,
        vocab: usize,
    },
    /// Two views passed together disagree on their dimensions.
    DimsMismatch,
    /// An argument outside its domain (named), e.g. a temperature <= 0 or a NaN probability.
    InvalidArgument(&'static str),
    /// A forced instruction set (`--isa`, `MAKEMORE_ISA`) that this CPU or build cannot run.
    IsaUnavailable { isa: &'static str },
}

impl Error {
    /// The same error with its token position moved by `offset`: for an error of a chunk that
    /// starts at `offset` in a larger buffer. Other errors are returned unchanged.
    pub fn at_offset(self, offset: usize) -> Error {
        match self {
            Error::TokenOutOfRange {
                index,
                token,
                vocab,
            } => Error::TokenOutOfRange {
                index: index.saturating_add(offset),
                token,
                vocab,
            },
            e => e,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidDims => f.write_str(
                "invalid model dimensions: every size must be >= 1, vocab <= 256, others <= 65536",
            ),
            Error::BatchTooSmall { n } => write!(
                f,
                "batch of {n} rows: batchnorm needs at least 2 (its variance divides by n - 1)"
            ),
            Error::LengthMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} values, got {got}"),
            Error::TokenOutOfRange {
                index,
                token,
                vocab,
            } => write!(
                f,
                "token {token} at position {index} is out of range for a vocabulary of {vocab}"
            ),
            Error::DimsMismatch => {
                f.write_str("the buffers passed together have different dimensions")
            }
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::IsaUnavailable { isa } => write!(
                f,
                "instruction set {isa} is not available on this CPU (or not enabled in this \
                 build): choose another with --isa or MAKEMORE_ISA (auto picks the best)"
            ),
        }
    }
}

/// Debug is the message: the derived form would add every variant's and field's name to the
/// WebAssembly build (anyhow keeps it reachable), and nothing shows it but failing tests.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for Error {}
