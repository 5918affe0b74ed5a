//! Threads: training throughput against the thread count and the batch size, and the
//! evaluation of all splits against the thread count (Exercise-4 model, the fastest ISA).
//!
//! `cargo bench -p benches --bench threads`. Groups:
//! - `train/batch_N` (N = 32, 128, 512, 2048; throughput in examples/s): `kernel_step` is the
//!   single-thread `Kernels::train_step` (what the CLI runs below `SHARD_MIN_BATCH`),
//!   `sharded/T` the sharded step on a pool of T threads (1, 2 and every core).
//! - `eval_all_splits` (examples/s): batchnorm calibration over train, then the losses of
//!   train, val and test of names.txt, as at the end of `makemore train`, on T threads.
//!
//! Before timing, each configuration's result is checked: the sharded step gives the same bits
//! on every thread count and agrees with the kernel step; evaluation gives the same bits.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use benches::{check_close, StepState};
use cli::dataset::Dataset;
use cli::eval::calibrate_and_evaluate;
use cli::parallel::pool;
use cli::shard::ShardedStep;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use makemore_core::model::Dims;
use makemore_core::simd::Kernels;

const D: Dims = Dims::EXERCISE4;
const LR: f32 = 0.01;

/// 1, 2 and every core of this machine (once each).
fn thread_counts() -> Vec<usize> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut t = vec![1, 2, all];
    t.sort();
    t.dedup();
    t
}

fn train(c: &mut Criterion) {
    let k = Kernels::best();
    for n in [32, 128, 512, 2048] {
        let mut group = c.benchmark_group(format!("train/batch_{n}"));
        group.throughput(Throughput::Elements(n as u64));
        let mut plain = StepState::new(D, n, 7);
        let start = plain.params.clone();
        plain.step(&k, LR);
        let want = plain.params.clone();
        group.bench_function("kernel_step", |b| b.iter(|| black_box(plain.step(&k, LR))));

        let mut first: Option<Vec<f32>> = None;
        for threads in thread_counts() {
            let pool = pool(threads).unwrap();
            let mut step = ShardedStep::new(D, n).unwrap();
            let mut params = start.clone();
            let (xb, yb) = (plain.xb.clone(), plain.yb.clone());
            pool.install(|| step.step(&k, &mut params, &xb, &yb, LR))
                .unwrap();
            check_close("sharded step", k.isa(), &params, &want, 1e-5);
            match &first {
                None => first = Some(params.clone()),
                Some(p) => assert!(
                    p.iter()
                        .zip(&params)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "batch {n}: the sharded step differs on {threads} threads"
                ),
            }
            group.bench_function(format!("sharded/{threads}"), |b| {
                pool.install(|| {
                    b.iter(|| black_box(step.step(&k, &mut params, &xb, &yb, LR).unwrap()))
                })
            });
        }
        group.finish();
    }
}

fn eval(c: &mut Criterion) {
    let k = Kernels::best();
    let names = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt");
    let ds = Dataset::load(&names, D.context)
        .unwrap_or_else(|e| panic!("{}: {e:#} (data/names.txt is needed)", names.display()));
    let dims = Dims {
        vocab: ds.vocab.len(),
        ..D
    };
    let params = StepState::new(dims, 2, 7).params;
    let p = makemore_core::ParamsRef::from_flat(dims, &params).unwrap();
    let splits = [&ds.train, &ds.val, &ds.test].map(|e| (&e.x[..], &e.y[..]));
    // what `makemore train` runs after training
    let run = || calibrate_and_evaluate(&k, p, &splits, 0).unwrap().2;
    let mut group = c.benchmark_group("eval_all_splits");
    group.throughput(Throughput::Elements(
        (ds.train.len() + ds.val.len() + ds.test.len()) as u64,
    ));
    let mut first: Option<Vec<f64>> = None;
    for threads in thread_counts() {
        let pool = pool(threads).unwrap();
        let losses = pool.install(run);
        match &first {
            None => first = Some(losses),
            Some(l) => assert_eq!(l, &losses, "evaluation differs on {threads} threads"),
        }
        group.bench_function(format!("threads/{threads}"), |b| {
            pool.install(|| b.iter(|| black_box(run())))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = train, eval
}
criterion_main!(benches);
