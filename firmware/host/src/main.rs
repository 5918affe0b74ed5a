//! The firmware's training run on the host: `firmware-host ex4|ex4-lean|ex1` print the
//! lines the firmware prints after `train:`, from the same code ([`firmware_demo::train`]) and
//! the same core, for `firmware/run.sh` to diff.

use std::process::ExitCode;

use firmware_demo::{
    train, DemoError, Exercise1, Exercise4, Exercise4Lean, NoMeter, Trainer, LR, PRINT_EVERY,
    TRAIN_SEED, TRAIN_STEPS,
};

fn main() -> ExitCode {
    let mut out = String::new();
    let result = match std::env::args().nth(1).as_deref() {
        // Boxed: the states are 109 KiB and 41 KiB.
        Some("ex4") => run(&mut *Box::new(Exercise4::ZERO), &mut out),
        Some("ex4-lean") => run(&mut *Box::new(Exercise4Lean::ZERO), &mut out),
        Some("ex1") => run(&mut *Box::new(Exercise1::ZERO), &mut out),
        _ => {
            eprintln!("usage: firmware-host ex4|ex4-lean|ex1");
            return ExitCode::from(2);
        }
    };
    print!("{out}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    state: &mut impl Trainer<N, V, T, E, TE, H>,
    out: &mut String,
) -> Result<(), DemoError> {
    train(
        state,
        TRAIN_SEED,
        TRAIN_STEPS,
        LR,
        PRINT_EVERY,
        &mut NoMeter,
        out,
    )
    .map(|_| ())
}
