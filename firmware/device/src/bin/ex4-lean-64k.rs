//! The notebook's Exercise-4 model (E=10, H=200, T=3, batch 32) on an emulated Cortex-M4F with
//! 64 KiB of RAM (`link/mps2-an386-64k.x`): samples 20 names from the checkpoint in
//! `MAKEMORE_CHECKPOINT_EX4` read where it lies in flash, then trains 200 SGD steps with the
//! core's lean step (one hidden unit at a time), whose state is the parameters and a few small
//! buffers.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use firmware_demo::{Exercise4Lean, InferScratch};
use makemore_firmware::Aligned;

/// A checkpoint written by `makemore train` with the default sizes (firmware/run.sh makes one),
/// aligned so that its `f32` tensors can be read in place.
static CHECKPOINT: &Aligned<[u8]> = &Aligned(*include_bytes!(env!(
    "MAKEMORE_CHECKPOINT_EX4",
    "set MAKEMORE_CHECKPOINT_EX4 to an Exercise-4 checkpoint from `makemore train` (see firmware/run.sh)"
)));

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` (in .bss); the link fails if they do not fit.
    static mut STATE: Exercise4Lean = Exercise4Lean::ZERO;
    static mut SCRATCH: InferScratch<27, 200> = InferScratch::ZERO;
    makemore_firmware::run_lean(
        "Exercise 4 (E=10, H=200, T=3, batch 32), lean step",
        64 * 1024,
        &CHECKPOINT.0,
        STATE,
        SCRATCH,
    )
}
