//! makemore-core: the MLP of Karpathy's "makemore part 4: becoming a backprop ninja", with every
//! gradient written by hand.
//!
//! `#![no_std]`, no dependencies, no allocation: storage is fixed-size arrays sized by const
//! generics (or slices the caller owns), so a whole training state can be a `static` on a
//! microcontroller.
#![no_std]
// `unsafe` is allowed in the architecture files of `simd` only (intrinsics, tokens, entry points).
#![deny(unsafe_code)]
// The notebook's names are the documentation: C, W1, W2, dW1, ... keep their capitals.
#![allow(non_snake_case)]

#[cfg(feature = "std")]
extern crate std;

pub mod atomic;
pub mod checkpoint;
// The kernels take raw slices; their callers (train, infer) check every length first.
pub(crate) mod batchnorm;
pub mod crc32;
pub(crate) mod cross_entropy;
pub mod error;
pub mod eval;
pub mod float;
pub mod gradcheck;
pub mod infer;
pub mod lean;
pub(crate) mod linear;
pub mod math;
pub mod model;
pub mod optim;
pub mod rng;
pub mod safetensors;
pub mod simd;
pub mod stats;
pub mod step;
pub mod train;

pub use batchnorm::BN_EPS;
pub use error::Error;
pub use float::Float;
pub use model::{Dims, Params, ParamsMut, ParamsRef, PARAM_NAMES};
pub use optim::{AdamW, AdamWStep, LrSchedule, Optimizer};
pub use rng::Rng;

/// Every token id must be < `vocab`.
pub(crate) fn check_tokens(tokens: &[u8], vocab: usize) -> Result<(), Error> {
    match tokens.iter().position(|&t| t as usize >= vocab) {
        Some(index) => Err(Error::TokenOutOfRange {
            index,
            token: tokens[index],
            vocab,
        }),
        None => Ok(()),
    }
}
