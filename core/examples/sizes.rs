//! Prints the memory of the fixed-size training states (batch 32, f32):
//! `cargo run -p makemore-core --example sizes`.

use core::mem::size_of;
use makemore_core::lean::LeanTrainState;
use makemore_core::train::{InPlaceTrainState, TrainState};
use makemore_core::{Dims, Params};

fn row<S>(what: &str, dims: Dims) {
    println!(
        "| {what} | {} | {} B ({:.1} KiB) |",
        dims.num_params(),
        size_of::<S>(),
        size_of::<S>() as f64 / 1024.0
    );
}

fn main() {
    println!("| state (f32, batch 32) | parameters | size_of |");
    println!("|---|---|---|");
    row::<Params<f32, 27, 3, 10, 30, 64>>("Exercise 1 parameters (E=10, H=64)", Dims::EXERCISE1);
    row::<TrainState<f32, 32, 27, 3, 10, 30, 64>>(
        "Exercise 1 TrainState (params + grads + activations)",
        Dims::EXERCISE1,
    );
    row::<InPlaceTrainState<f32, 32, 27, 3, 10, 30, 64>>(
        "Exercise 1 InPlaceTrainState (no gradient buffer)",
        Dims::EXERCISE1,
    );
    row::<Params<f32, 27, 3, 10, 30, 200>>("Exercise 4 parameters (E=10, H=200)", Dims::EXERCISE4);
    row::<TrainState<f32, 32, 27, 3, 10, 30, 200>>(
        "Exercise 4 TrainState (params + grads + activations)",
        Dims::EXERCISE4,
    );
    row::<InPlaceTrainState<f32, 32, 27, 3, 10, 30, 200>>(
        "Exercise 4 InPlaceTrainState (no gradient buffer)",
        Dims::EXERCISE4,
    );
    row::<LeanTrainState<f32, 32, 27, 3, 10, 30, 200>>(
        "Exercise 4 LeanTrainState (one hidden unit at a time)",
        Dims::EXERCISE4,
    );
}
