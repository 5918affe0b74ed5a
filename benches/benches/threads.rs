//! Threads: training throughput against the thread count and the batch size, and the
//! evaluation of all splits against the thread count (Exercise-4 model, the fastest ISA).
//!
//! `cargo bench -p benches --bench threads`. Groups:
//! - `train/batch_N` (N = 32, 128, 512, 2048; throughput in examples/s): the core's
//!   `Kernels::train_step` as `makemore train` runs it: `in_turn` with its shards in turn on
//!   one thread, `rayon/T` with its shards on a pool of T threads (1, 2 and every core). From
//!   batch 128 on the batch is cut into shards of 64 rows; below it is one shard.
//! - `eval_all_splits` (examples/s): batchnorm calibration over train, then the losses of
//!   train, val and test of names.txt, as at the end of `makemore train`, on T threads.
//!
//! Before timing, each configuration's result is checked: the step gives the same bits on every
//! schedule and thread count; evaluation gives the same bits.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use benches::StepState;
use cli::dataset::Dataset;
use cli::eval::calibrate_and_evaluate;
use cli::parallel::{pool, Rayon};
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
        let mut in_turn = StepState::new(D, n, 7);
        let start = in_turn.params.clone();
        in_turn.step(&k, LR);
        let want = in_turn.params.clone();
        group.bench_function("in_turn", |b| b.iter(|| black_box(in_turn.step(&k, LR))));

        for threads in thread_counts() {
            let pool = pool(threads).unwrap();
            let mut state = StepState::new(D, n, 7);
            state.params.copy_from_slice(&start);
            pool.install(|| state.step_on(&k, &Rayon, LR));
            assert!(
                state
                    .params
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "batch {n}: the step on {threads} threads differs from the step in turn"
            );
            group.bench_function(format!("rayon/{threads}"), |b| {
                pool.install(|| b.iter(|| black_box(state.step_on(&k, &Rayon, LR))))
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
