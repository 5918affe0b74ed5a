//! The notebook's Exercise-1 model (E=10, H=64, T=3, batch 32) on an emulated Cortex-M4F with
//! 64 KiB of RAM (`link/mps2-an386-64k.x`): samples 20 names from the checkpoint in
//! `MAKEMORE_CHECKPOINT_EX1`, then trains 200 in-place SGD steps.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use firmware_demo::{Exercise1, SampleScratch};

/// A checkpoint written by `makemore train --hidden 64` (firmware/run.sh makes one).
static CHECKPOINT: &[u8] = include_bytes!(env!(
    "MAKEMORE_CHECKPOINT_EX1",
    "set MAKEMORE_CHECKPOINT_EX1 to an Exercise-1 checkpoint from `makemore train --hidden 64` (see firmware/run.sh)"
));

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` (in .bss); the link fails if they do not fit.
    static mut STATE: Exercise1 = Exercise1::ZERO;
    static mut SCRATCH: SampleScratch<27, 64> = SampleScratch::ZERO;
    makemore_firmware::run(
        "Exercise 1 (E=10, H=64, T=3, batch 32)",
        64 * 1024,
        CHECKPOINT,
        STATE,
        SCRATCH,
    )
}
