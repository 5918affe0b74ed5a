//! The notebook's Exercise-4 model (E=10, H=200, T=3, batch 32) on an emulated Cortex-M4F with
//! 128 KiB of RAM (`link/mps2-an386-128k.x`): samples 20 names from the checkpoint in
//! `MAKEMORE_CHECKPOINT_EX4`, then trains 200 in-place SGD steps.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use firmware_demo::{Exercise4, SampleScratch};

/// A checkpoint written by `makemore train` with the default sizes (firmware/run.sh makes one).
static CHECKPOINT: &[u8] = include_bytes!(env!(
    "MAKEMORE_CHECKPOINT_EX4",
    "set MAKEMORE_CHECKPOINT_EX4 to an Exercise-4 checkpoint from `makemore train` (see firmware/run.sh)"
));

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` (in .bss); the link fails if they do not fit.
    static mut STATE: Exercise4 = Exercise4::ZERO;
    static mut SCRATCH: SampleScratch<27, 200> = SampleScratch::ZERO;
    makemore_firmware::run(
        "Exercise 4 (E=10, H=200, T=3, batch 32)",
        128 * 1024,
        CHECKPOINT,
        STATE,
        SCRATCH,
    )
}
