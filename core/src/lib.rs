//! makemore-core: the MLP of Karpathy's "makemore part 4: becoming a backprop ninja", with every
//! gradient written by hand.
//!
//! `#![no_std]`, no dependencies, no allocation: storage is fixed-size arrays sized by const
//! generics (or slices the caller owns), so a whole training state can be a `static` on a
//! microcontroller.
#![no_std]
#![forbid(unsafe_code)]

pub mod float;
pub mod math;

pub use float::Float;
