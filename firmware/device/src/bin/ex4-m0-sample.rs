//! The notebook's Exercise-4 model (E=10, H=200, T=3) on an emulated Cortex-M0 without an FPU
//! (QEMU microbit: nRF51, 16 KiB of RAM, 256 KiB of flash; `link/microbit-16k.x`): samples 20
//! names from the checkpoint in `MAKEMORE_CHECKPOINT_EX4`, its parameters read where they lie in
//! flash (they do not fit in the RAM). No training: its state alone would take 109 KiB.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use firmware_demo::InferScratch;
use makemore_firmware::Aligned;

/// A checkpoint written by `makemore train` with the default sizes (firmware/run.sh makes one),
/// aligned so that its `f32` tensors can be read in place.
static CHECKPOINT: &Aligned<[u8]> = &Aligned(*include_bytes!(env!(
    "MAKEMORE_CHECKPOINT_EX4",
    "set MAKEMORE_CHECKPOINT_EX4 to an Exercise-4 checkpoint from `makemore train` (see firmware/run.sh)"
)));

#[entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut` (in .bss); the link fails if it does not fit.
    static mut SCRATCH: InferScratch<27, 200> = InferScratch::ZERO;
    // V, T, E, T*E, H
    makemore_firmware::run_in_place::<27, 3, 10, 30, 200>(
        "Exercise 4 (E=10, H=200, T=3), sampling only, on a Cortex-M0",
        16 * 1024,
        &CHECKPOINT.0,
        SCRATCH,
    )
}
