//! Every kernel at the Exercise-4 shapes (batch 32, T=3, E=10, H=200, V=27), in the order the
//! training step (`Kernels::train_step`, one shard) runs them, and the whole step, scalar vs
//! each vector path of this CPU side by side.
//!
//! `cargo bench -p benches --bench kernels`; `MAKEMORE_ISA=avx2` times scalar and that path only.
//! Throughput: products report FLOP/s as "elem/s" (2 per multiply-add), the other kernels
//! elements/s; the `peak` group is each path's FMA throughput, the floor for the products. Inputs come from a fixed seed; each path's result is checked against the scalar
//! one once before it is timed.

use benches::{check_close, paths, Data, StepState, BATCH};
use cli::batch::fill_batch;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use makemore_core::model::Dims;
use makemore_core::rng::TRAIN_SEED;
use makemore_core::simd::Kernels;
use std::hint::black_box;

const D: Dims = Dims::EXERCISE4;

/// An output buffer whose pages are already touched (a zeroed `vec!` may be lazily mapped
/// and would time page faults).
fn out(len: usize) -> Vec<f32> {
    vec![f32::NAN; len]
}

/// Times `run` on every path; `inputs` builds fresh inputs (not timed), `run` returns the output
/// that is checked against scalar (`rel` = tolerance relative to the output's largest value,
/// 0 = the same bits).
fn bench<I>(
    c: &mut Criterion,
    name: &str,
    throughput: u64,
    rel: f32,
    inputs: impl Fn() -> I,
    run: impl Fn(&Kernels, &mut I),
    output: impl Fn(&I) -> Vec<f32>,
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(throughput));
    let mut scalar_out: Option<Vec<f32>> = None;
    for k in paths() {
        let mut once = inputs();
        run(&k, &mut once);
        let out = output(&once);
        match &scalar_out {
            None => scalar_out = Some(out),
            Some(want) => check_close(name, k.isa(), &out, want, rel),
        }
        group.bench_function(k.isa().name(), |b| {
            b.iter_batched_ref(
                &inputs,
                |i| {
                    run(&k, i);
                    black_box(&*i);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn kernels(c: &mut Criterion) {
    let (n, v, t, e, h) = (BATCH, D.vocab, D.context, D.embedding, D.hidden);
    let te = t * e;
    let mut data = Data::new(1);
    let xb = data.tokens(n * t, v);
    let yb = data.tokens(n, v);
    let cmat = data.vec(v * e, 1.0);
    let embcat = data.vec(n * te, 1.0);
    let w1 = data.vec(te * h, 0.3);
    let b1 = data.vec(h, 0.1);
    let hprebn = data.vec(n * h, 2.0);
    let hmat = data.vec(n * h, 1.0);
    let w2 = data.vec(h * v, 0.1);
    let w2t = data.vec(v * h, 0.1);
    let b2 = data.vec(v, 0.1);
    let logits = data.vec(n * v, 3.0);
    let dlogits = data.vec(n * v, 0.03);
    let bngain = data.vec(h, 1.0);
    let bnbias = data.vec(h, 0.1);
    let bnvar_inv = data.vec(h, 1.0);
    let dmat = data.vec(n * h, 0.01);
    let params = data.vec(D.num_params(), 0.3);
    let grads = data.vec(D.num_params(), 0.01);
    // drawn after the others, so that the inputs above stay those of earlier runs
    let bnmeani = data.vec(h, 0.5);
    let bndiff = data.vec(n * h, 2.0);
    let probs: Vec<f32> = data
        .vec(n * v, 0.5)
        .iter()
        .map(|p| p.abs() / v as f32)
        .collect();
    let dbngain = data.vec(h, 0.1);
    let dbnbias = data.vec(h, 0.1);
    let flop = |m: usize, k: usize, p: usize| (2 * m * k * p) as u64;

    let x = hprebn.clone();
    bench(
        c,
        "exp",
        (n * h) as u64,
        1e-6, // the vector exp and tanh: within 3 ulp of scalar
        || out(n * h),
        |k, out| {
            k.exp(out, &x).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "tanh",
        (n * h) as u64,
        1e-6, // the vector exp and tanh: within 3 ulp of scalar
        || out(n * h),
        |k, out| {
            k.tanh(out, &x).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "embed_gather",
        (n * te) as u64,
        0.0,
        || out(n * te),
        |k, out| {
            k.embed_gather(out, &xb, &cmat, e).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "linear_forward hprebn",
        flop(n, te, h),
        1e-5,
        || out(n * h),
        |k, out| {
            k.linear_forward(out, &embcat, &w1, &b1, h).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "bias_backward hprebn",
        (n * h) as u64,
        0.0,
        || out(h),
        |k, out| {
            k.bias_backward(out, &hprebn).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "batchnorm_center",
        (n * h) as u64,
        0.0,
        || (hprebn.clone(), out(h)),
        |k, (x, sum2)| {
            k.batchnorm_center(x, &bnmeani, sum2).unwrap();
        },
        |(x, sum2)| [&x[..], &sum2[..]].concat(),
    );
    bench(
        c,
        "batchnorm_scale_shift_tanh",
        (n * h) as u64,
        1e-6, // the vector exp and tanh: within 3 ulp of scalar
        || (out(n * h), bndiff.clone()),
        |k, (hh, raw)| {
            k.batchnorm_scale_shift_tanh(hh, raw, &bnvar_inv, &bngain, &bnbias)
                .unwrap();
        },
        |(hh, raw)| [&hh[..], &raw[..]].concat(),
    );
    bench(
        c,
        "linear_forward logits",
        flop(n, h, v),
        1e-5,
        || out(n * v),
        |k, out| {
            k.linear_forward(out, &hmat, &w2, &b2, v).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "cross_entropy_sum",
        (n * v) as u64,
        1e-6,
        || (logits.clone(), f32::NAN),
        |k, (x, loss)| {
            *loss = k.cross_entropy_sum(x, &yb).unwrap();
        },
        |(x, loss)| [&x[..], &[*loss / n as f32]].concat(),
    );
    bench(
        c,
        "cross_entropy_backward",
        (n * v) as u64,
        0.0,
        || probs.clone(),
        |k, x| {
            k.cross_entropy_backward(x, &yb, n).unwrap();
        },
        |x| x.to_vec(),
    );
    bench(
        c,
        "matmul_tn dW2",
        flop(h, n, v),
        1e-5,
        || out(h * v),
        |k, out| {
            k.matmul_tn(out, &hmat, &dlogits, h, v).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "bias_backward db2",
        (n * v) as u64,
        0.0,
        || out(v),
        |k, out| {
            k.bias_backward(out, &dlogits).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "transpose W2",
        (h * v) as u64,
        0.0,
        || out(v * h),
        |k, out| {
            k.transpose(out, &w2, v).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "linear_tanh_backward dh",
        flop(n, v, h),
        1e-5,
        || hmat.clone(),
        |k, x| {
            k.linear_tanh_backward(x, &dlogits, &w2t, h).unwrap();
        },
        |x| x.to_vec(),
    );
    bench(
        c,
        "batchnorm_backward_sums",
        (n * h) as u64,
        0.0,
        || (out(h), out(h)),
        |k, (g, b)| {
            k.batchnorm_backward_sums(g, b, &dmat, &hmat).unwrap();
        },
        |(g, b)| [&g[..], &b[..]].concat(),
    );
    bench(
        c,
        "batchnorm_backward_apply",
        (n * h) as u64,
        0.0,
        || dmat.clone(),
        |k, d| {
            k.batchnorm_backward_apply(d, &hmat, &bnvar_inv, &bngain, &dbngain, &dbnbias, n)
                .unwrap();
        },
        |d| d.to_vec(),
    );
    bench(
        c,
        "matmul_tn dW1",
        flop(te, n, h),
        1e-5,
        || out(te * h),
        |k, out| {
            k.matmul_tn(out, &embcat, &dmat, te, h).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "bias_backward db1",
        (n * h) as u64,
        0.0,
        || out(h),
        |k, out| {
            k.bias_backward(out, &dmat).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "matmul_nt dembcat",
        flop(n, h, te),
        1e-5,
        || out(n * te),
        |k, out| {
            k.matmul_nt(out, &dmat, &w1, h).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "embed_scatter_add",
        (n * te) as u64,
        0.0,
        || out(v * e),
        |k, out| {
            k.embed_scatter_add(out, &embcat, &xb).unwrap();
        },
        |out| out.to_vec(),
    );
    bench(
        c,
        "sgd",
        D.num_params() as u64,
        0.0,
        || params.clone(),
        |k, p| {
            k.sgd(p, &grads, 0.1).unwrap();
        },
        |p| p.to_vec(),
    );
}

/// Values in the peak kernel's chains: one block of 12 vectors on AVX-512, two on AVX2, 16 on
/// scalar (`Kernels::fma_peak`), all held in registers.
const PEAK_LEN: usize = 192;
/// Rounds per call: enough that loading and storing the chains is noise.
const PEAK_ITERS: usize = 1000;

/// Each path's single-core f32 FMA throughput (`Kernels::fma_peak`), the floor the products and
/// the step are compared with (`benches/table.py`). Throughput = FLOPs, 2 per lane per FMA;
/// on scalar, a multiply then an add unless the build has hardware FMA (see `fma_peak`).
fn peak(c: &mut Criterion) {
    let x0 = Data::new(2).vec(PEAK_LEN, 100.0);
    bench(
        c,
        "peak",
        (2 * PEAK_LEN * PEAK_ITERS) as u64,
        0.0,
        || x0.clone(),
        |k, acc| k.fma_peak(acc, PEAK_ITERS),
        |acc| acc.clone(),
    );
}

/// FLOP of the six products of a step (about 2.2 M).
fn step_flop() -> u64 {
    let (n, v, te, h) = (BATCH, D.vocab, D.embcat(), D.hidden);
    2 * (2 * n * te * h + 3 * n * h * v + n * te * h) as u64
}

/// The whole step: forward, backward, SGD, each on fresh inputs.
fn train_step(c: &mut Criterion) {
    bench(
        c,
        "train_step",
        step_flop(),
        1e-4,
        || StepState::new(D, BATCH, 7),
        |k, s| {
            s.step(k, 0.1);
        },
        |s| s.params.clone(),
    );
}

/// The whole step as training runs it: back to back on one state (caches warm), each step on
/// the next batch of names.txt's training split drawn by the sampler `makemore train` runs
/// (`cli::batch::fill_batch`, seed `TRAIN_SEED`), lr 0.1; the time is the draw plus the step.
/// Checked once against scalar first: one step from the same state and batch. `train_step`
/// above times each step on fresh inputs instead (a cold cache).
fn train_step_warm(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt");
    let ds = cli::dataset::Dataset::load(&path, D.context)
        .unwrap_or_else(|e| panic!("{}: {e:#} (the benchmark needs the data)", path.display()));
    let mut group = c.benchmark_group("train_step warm");
    group.throughput(Throughput::Elements(step_flop()));
    let mut want: Option<Vec<f32>> = None;
    for k in paths() {
        let mut state = StepState::new(D, BATCH, 7);
        fill_batch(&ds.train, TRAIN_SEED, 0, &mut state.xb, &mut state.yb).unwrap();
        state.step(&k, 0.1);
        match &want {
            None => want = Some(state.params.clone()),
            Some(w) => check_close("train_step warm", k.isa(), &state.params, w, 1e-4),
        }
        let mut step = 0;
        group.bench_function(k.isa().name(), |b| {
            b.iter(|| {
                step += 1;
                fill_batch(&ds.train, TRAIN_SEED, step, &mut state.xb, &mut state.yb).unwrap();
                black_box(state.step(&k, 0.1))
            })
        });
    }
    group.finish();
}

/// The batch sampler alone: batch after batch of `BATCH` rows of names.txt's training split, as
/// `makemore train` draws them (`cli::batch::fill_batch`). Throughput is rows/s. Checked first:
/// batch 0 is the rows the core's `below` picks from `batch_stream(TRAIN_SEED, 0)`.
fn batch_sampler(c: &mut Criterion) {
    use makemore_core::rng::{batch_stream, below};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt");
    let ds = cli::dataset::Dataset::load(&path, D.context)
        .unwrap_or_else(|e| panic!("{}: {e:#} (the benchmark needs the data)", path.display()));
    let (mut xb, mut yb) = (vec![0u8; BATCH * D.context], vec![0u8; BATCH]);
    fill_batch(&ds.train, TRAIN_SEED, 0, &mut xb, &mut yb).unwrap();
    let mut rng = batch_stream(TRAIN_SEED, 0);
    let len = std::num::NonZeroU64::new(ds.train.len() as u64).unwrap();
    for (k, &y) in yb.iter().enumerate() {
        let i = below(&mut rng, len) as usize;
        assert_eq!(
            (&xb[k * D.context..][..D.context], y),
            (ds.train.row(i), ds.train.y[i])
        );
    }
    let mut group = c.benchmark_group("batch_sampler");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut step = 0;
    group.bench_function("fill_batch", |b| {
        b.iter(|| {
            step += 1;
            fill_batch(&ds.train, TRAIN_SEED, step, &mut xb, &mut yb).unwrap();
            black_box(&yb);
        })
    });
    group.finish();
}

/// Evaluation of the validation split (22655 rows) with given batchnorm statistics, as
/// `makemore eval --split val --threads 1` runs it: `cli::eval::split_losses` (distinct
/// contexts, first-layer tables, vector kernels) on a one-thread pool. Throughput is rows/s.
fn evaluation(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt");
    let ds = cli::dataset::Dataset::load(&path, D.context)
        .unwrap_or_else(|e| panic!("{}: {e:#} (the benchmark needs the data)", path.display()));
    let state = StepState::new(D, BATCH, 3);
    let params = makemore_core::ParamsRef::from_flat(D, &state.params).unwrap();
    let (bnmean, bnvar) = (vec![0.1f32; D.hidden], vec![1.5f32; D.hidden]);
    let split = [(&ds.val.x[..], &ds.val.y[..])];
    let pool = cli::parallel::pool(1).unwrap();
    bench(
        c,
        "evaluate val split",
        ds.val.y.len() as u64,
        1e-6,
        || vec![f32::NAN],
        |k, loss| {
            let losses = pool
                .install(|| cli::eval::split_losses(k, params, &bnmean, &bnvar, &split))
                .unwrap();
            loss[0] = losses[0] as f32;
        },
        |loss| loss.clone(),
    );
}

criterion_group!(
    benches,
    peak,
    kernels,
    train_step,
    train_step_warm,
    batch_sampler,
    evaluation
);

// ---------------------------------------------------------------- the exact kernels' implementations

/// Times an exact kernel's two implementations on every vector path, as ids
/// `{isa}-vector-impl` and `{isa}-scalar-impl` in the kernel's own group (whose id `{isa}` is
/// the one `Kernels::new` chose); with `scalar`, the scalar path too. Each output is checked
/// against the scalar path's bits first.
fn bench_exact<I>(
    c: &mut Criterion,
    name: &str,
    throughput: u64,
    with_scalar: bool,
    inputs: impl Fn() -> I,
    run: impl Fn(&Kernels, &mut I),
    output: impl Fn(&I) -> Vec<f32>,
) {
    use makemore_core::simd::Impl;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(throughput));
    let scalar = Kernels::scalar();
    let mut once = inputs();
    run(&scalar, &mut once);
    let want = output(&once);
    if with_scalar {
        group.bench_function("scalar", |b| {
            b.iter_batched_ref(&inputs, |i| run(&scalar, i), BatchSize::SmallInput)
        });
    }
    for base in paths().into_iter().filter(|k| k.isa() != scalar.isa()) {
        for imp in [Impl::Vector, Impl::Scalar] {
            let k = base.with_all_exact(imp);
            let mut once = inputs();
            run(&k, &mut once);
            check_close(name, k.isa(), &output(&once), &want, 0.0);
            let id = format!("{}-{}-impl", k.isa(), imp);
            group.bench_function(id, |b| {
                b.iter_batched_ref(
                    &inputs,
                    |i| {
                        run(&k, i);
                        black_box(&*i);
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

/// Both implementations of the exact kernels at the step's shapes (the kernel table shows them
/// beside the chosen one), and the warm step with each, every exact kernel forced.
fn exact_impls(c: &mut Criterion) {
    let (n, v, t, e, h) = (BATCH, D.vocab, D.context, D.embedding, D.hidden);
    let te = t * e;
    let mut data = Data::new(11);
    let xb = data.tokens(n * t, v);
    let cmat = data.vec(v * e, 1.0);
    let embcat = data.vec(n * te, 1.0);
    let hprebn = data.vec(n * h, 2.0);
    let w2 = data.vec(h * v, 0.1);
    let dlogits = data.vec(n * v, 0.03);
    let params = data.vec(D.num_params(), 0.3);
    let grads = data.vec(D.num_params(), 0.01);
    bench_exact(
        c,
        "embed_gather",
        (n * te) as u64,
        false,
        || out(n * te),
        |k, out| k.embed_gather(out, &xb, &cmat, e).unwrap(),
        |out| out.to_vec(),
    );
    bench_exact(
        c,
        "bias_backward hprebn",
        (n * h) as u64,
        false,
        || out(h),
        |k, out| k.bias_backward(out, &hprebn).unwrap(),
        |out| out.to_vec(),
    );
    bench_exact(
        c,
        "bias_backward db2",
        (n * v) as u64,
        false,
        || out(v),
        |k, out| k.bias_backward(out, &dlogits).unwrap(),
        |out| out.to_vec(),
    );
    bench_exact(
        c,
        "transpose W2",
        (h * v) as u64,
        false,
        || out(v * h),
        |k, out| k.transpose(out, &w2, v).unwrap(),
        |out| out.to_vec(),
    );
    bench_exact(
        c,
        "embed_scatter_add",
        (n * te) as u64,
        false,
        || out(v * e),
        |k, out| k.embed_scatter_add(out, &embcat, &xb).unwrap(),
        |out| out.to_vec(),
    );
    bench_exact(
        c,
        "sgd",
        D.num_params() as u64,
        false,
        || params.clone(),
        |k, p| k.sgd(p, &grads, 0.1).unwrap(),
        |p| p.to_vec(),
    );
    bench_exact(
        c,
        "all_finite",
        D.num_params() as u64,
        true,
        || vec![f32::NAN],
        |k, ok| ok[0] = if k.all_finite(&params) { 1.0 } else { 0.0 },
        |ok| ok.clone(),
    );

    // the warm step (as `train_step_warm`) with every exact kernel forced each way
    use makemore_core::simd::Impl;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/names.txt");
    let ds = cli::dataset::Dataset::load(&path, D.context)
        .unwrap_or_else(|e| panic!("{}: {e:#} (the benchmark needs the data)", path.display()));
    let mut group = c.benchmark_group("train_step warm");
    group.throughput(Throughput::Elements(step_flop()));
    for base in paths()
        .into_iter()
        .filter(|k| k.isa() != Kernels::scalar().isa())
    {
        for imp in [Impl::Vector, Impl::Scalar] {
            let k = base.with_all_exact(imp);
            let mut state = StepState::new(D, BATCH, 7);
            let mut step = 0;
            group.bench_function(format!("{}-{}-impl", k.isa(), imp), |b| {
                b.iter(|| {
                    step += 1;
                    fill_batch(&ds.train, TRAIN_SEED, step, &mut state.xb, &mut state.yb).unwrap();
                    black_box(state.step(&k, 0.1))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(exact, exact_impls);
criterion_main!(benches, exact);
