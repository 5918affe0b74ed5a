//! Shared by the integration tests: random parameters and batches, a big stack, the test size.
#![allow(dead_code)]

use makemore_core::rng::{Rng, SplitMix64};
use makemore_core::{Float, Params};

/// Whether the long tests run at a reduced size: under Miri, or with `MAKEMORE_TEST_SCALE=quick`
/// (CI's aarch64 run under user-mode emulation). Every test still runs, on fewer cases,
/// coordinates or arguments; `MAKEMORE_TEST_SCALE=full` (or unset) is the full size.
pub fn quick() -> bool {
    if cfg!(miri) {
        return true;
    }
    match std::env::var("MAKEMORE_TEST_SCALE").as_deref() {
        Err(_) | Ok("") | Ok("full") => false,
        Ok("quick") => true,
        Ok(other) => panic!("MAKEMORE_TEST_SCALE={other}: expected quick or full (or unset)"),
    }
}

/// Runs `f` on a thread with a 512 MiB stack: the const-generic states of the Exercise-4 size
/// (and the atomic tape in f64) are large values, built in place by `T::ZERO`. On wasm32 (WASI
/// has no threads) `f` runs on the main stack, whose size is set at link time:
/// `-C link-arg=-zstack-size=134217728` (128 MiB, as `.ci/run` and `scripts/wasi-run.mjs` give).
pub fn with_big_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    if cfg!(target_family = "wasm") {
        return f();
    }
    std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(f)
        .expect("spawn test thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Parameters at the notebook's initialisation, from `seed`.
pub fn notebook_params<
    F: Float,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    seed: u64,
) -> Box<Params<F, V, T, E, TE, H>> {
    let mut p = Box::new(Params::ZERO);
    p.view_mut().init_notebook(&mut SplitMix64(seed));
    p
}

/// The same parameters in another float type (f64 -> f32 rounds to nearest).
pub fn convert<
    A: Float,
    B: Float,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    p: &Params<A, V, T, E, TE, H>,
) -> Box<Params<B, V, T, E, TE, H>> {
    let mut out = Box::new(Params::<B, V, T, E, TE, H>::ZERO);
    let src = p.view();
    for (d, s) in out.view_mut().tensors_mut().into_iter().zip(src.tensors()) {
        for (d, s) in d.iter_mut().zip(s) {
            *d = B::from_f64(s.to_f64());
        }
    }
    out
}

/// A batch of `N` random contexts and targets with ids < V.
pub fn random_batch<const N: usize, const V: usize, const T: usize>(
    seed: u64,
) -> ([[u8; T]; N], [u8; N]) {
    let mut rng = SplitMix64(seed ^ 0x5eed);
    let mut xb = [[0u8; T]; N];
    let mut yb = [0u8; N];
    for k in 0..N {
        for x in xb[k].iter_mut() {
            *x = (rng.next_u64() % V as u64) as u8;
        }
        yb[k] = (rng.next_u64() % V as u64) as u8;
    }
    // A batch whose contexts are all equal has zero variance: batchnorm is then flat to within
    // sqrt(eps) and finite differences see its curvature, not its slope. Real batches never are.
    if V > 1 && xb.iter().all(|x| *x == xb[0]) {
        xb[1][0] = (xb[1][0] + 1) % V as u8;
    }
    (xb, yb)
}
