//! Fixtures shared by the criterion benchmarks in `benches/`: the paths to time, inputs from a
//! fixed seed at the Exercise-4 shapes, and the check against scalar made before timing.

use makemore_core::model::Dims;
use makemore_core::rng::{Rng, SplitMix64};
use makemore_core::simd::{Isa, Kernels};
use makemore_core::step::{InTurn, Schedule, Step};
use makemore_core::ParamsMut;

/// The batch of the notebook.
pub const BATCH: usize = 32;

/// The paths to time: scalar and every vector path of this CPU, or, with `MAKEMORE_ISA` set
/// (read by [`Isa::from_env`]), scalar and that path (panicking if the CPU lacks it, so a forced
/// run never times another).
pub fn paths() -> Vec<Kernels> {
    let mut out = vec![Kernels::scalar()];
    match Isa::from_env().unwrap_or_else(|e| panic!("{e}")) {
        None => out.extend(
            Isa::ALL
                .into_iter()
                .filter(|isa| *isa != Isa::Scalar && isa.is_available())
                .map(|isa| Kernels::new(isa).unwrap()),
        ),
        Some(isa) => {
            let k = Kernels::new(isa)
                .unwrap_or_else(|e| panic!("MAKEMORE_ISA={isa} is forced but unavailable: {e}"));
            if isa != Isa::Scalar {
                out.push(k);
            }
        }
    }
    out
}

/// A deterministic stream of test values.
pub struct Data(SplitMix64);

impl Data {
    pub fn new(seed: u64) -> Data {
        Data(SplitMix64(seed))
    }
    /// `len` values uniform in `[-scale, scale)`.
    pub fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|_| ((self.0.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale)
            .collect()
    }
    /// `len` token ids `< vocab`.
    pub fn tokens(&mut self, len: usize, vocab: usize) -> Vec<u8> {
        (0..len)
            .map(|_| (self.0.next_u64() % vocab as u64) as u8)
            .collect()
    }
}

/// Panics unless `got` is within `rel * max|want|` of `want` everywhere (NaN matches NaN).
pub fn check_close(what: &str, isa: Isa, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what} on {isa}: length");
    let scale = want
        .iter()
        .fold(0f32, |m, w| m.max(w.abs()))
        .max(f32::MIN_POSITIVE);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= rel * scale;
        assert!(ok, "{what} on {isa}: element {i} is {g}, scalar gives {w}");
    }
}

/// Everything one training step needs, owned.
pub struct StepState {
    pub dims: Dims,
    pub params: Vec<f32>,
    /// The scratch of [`Step`] for batches of `yb.len()` rows.
    pub scratch: Vec<f32>,
    pub xb: Vec<u8>,
    pub yb: Vec<u8>,
}

impl StepState {
    /// Exercise-4 parameters at the notebook's initialisation and one random batch of `n` rows.
    pub fn new(dims: Dims, n: usize, seed: u64) -> StepState {
        let mut params = vec![f32::NAN; dims.num_params()];
        ParamsMut::from_flat(dims, &mut params)
            .unwrap()
            .init_notebook(&mut SplitMix64(seed));
        let mut data = Data::new(seed ^ 1);
        StepState {
            dims,
            scratch: vec![f32::NAN; Step::flat_len(&dims, n).unwrap()],
            xb: data.tokens(n * dims.context, dims.vocab),
            yb: data.tokens(n, dims.vocab),
            params,
        }
    }

    /// One step on `k` with its shards in turn on this thread; returns the loss.
    pub fn step(&mut self, k: &Kernels, lr: f32) -> f32 {
        self.step_on(k, &InTurn, lr)
    }

    /// One step on `k` with its shards run by `schedule`; returns the loss.
    pub fn step_on(&mut self, k: &Kernels, schedule: &impl Schedule, lr: f32) -> f32 {
        let n = self.yb.len();
        let mut p = ParamsMut::from_flat(self.dims, &mut self.params).unwrap();
        let mut step = Step::from_flat(self.dims, n, &mut self.scratch).unwrap();
        k.train_step(schedule, &mut p, &mut step, &self.xb, &self.yb, lr)
            .unwrap()
    }
}
