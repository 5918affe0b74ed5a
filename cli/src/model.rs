//! The model as the CLI holds it: flat `Vec`s sized at run time, viewed through the core.

pub use crate::evaluate::{
    calibrate, calibrate_and_evaluate, calibrate_part, distinct_contexts, part_losses,
    split_losses, Contexts, EVAL_ROWS,
};
