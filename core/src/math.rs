//! exp, ln, tanh and sqrt for f32 and f64 (placeholder: being written).
pub fn exp_f32(x: f32) -> f32 { x }
pub fn ln_f32(x: f32) -> f32 { x }
pub fn tanh_f32(x: f32) -> f32 { x }
pub fn sqrt_f32(x: f32) -> f32 { x }
pub fn exp_f64(x: f64) -> f64 { x }
pub fn ln_f64(x: f64) -> f64 { x }
pub fn tanh_f64(x: f64) -> f64 { x }
pub fn sqrt_f64(x: f64) -> f64 { x }
