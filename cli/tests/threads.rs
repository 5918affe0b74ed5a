//! Results that never depend on the thread count: the sharded training step, calibration,
//! evaluation and sampling give the same bits on 1, 2 and 8 threads, and agree with the
//! single-thread code paths up to rounding (other summation orders).

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::Path;

use cli::eval::{calibrate, calibrate_and_evaluate, split_losses, Contexts};
use cli::parallel::{pool, Rayon};
use common::{makemore, metrics, names_path, TENSORS};
use makemore_core::infer::{BnCalibration, Inference};
use makemore_core::rng::{Rng, SplitMix64};
use makemore_core::simd::Kernels;
use makemore_core::step::{InTurn, Step, SHARD_ROWS};
use makemore_core::train::{train_step, ActsMut};
use makemore_core::{Dims, ParamsMut, ParamsRef};

const THREADS: [usize; 3] = [1, 2, 8];
/// Thread counts of the evaluation checks: one, the pool's usual two, an odd count, more
/// threads than chunks of some passes.
const EVAL_THREADS: [usize; 4] = [1, 2, 3, 8];

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u8> {
    let mut r = SplitMix64(seed);
    (0..n)
        .map(|_| (r.next_u64() % vocab as u64) as u8)
        .collect()
}

fn notebook_params(dims: Dims, seed: u64) -> Vec<f32> {
    let mut p = vec![0f32; dims.num_params()];
    ParamsMut::from_flat(dims, &mut p)
        .unwrap()
        .init_notebook(&mut SplitMix64(seed));
    p
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Panics unless every element of `got` is within `rel * max|want|` of `want`.
fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, w| m.max(w.abs())).max(1e-30);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}[{i}]: sharded {g}, single-thread {w} (max |want| {scale})"
        );
    }
}

/// The core's step with the batch in shards on a rayon pool against the reference step
/// (`train::train_step`, the whole batch at once, scalar f32), on the scalar path: loss, batch
/// statistics, every gradient and the updated parameters agree up to the rounding of other
/// summation orders; then, on scalar and the best path, three steps on 1, 2 and 8 threads and
/// in turn give the same bits. Batches: one shard of 2
/// rows, two whole shards, two shards and a one-row tail, many shards and a tail.
#[test]
fn sharded_step_matches_the_reference_step_and_ignores_the_thread_count() {
    let dims = Dims::EXERCISE4;
    for k in [Kernels::scalar(), Kernels::best()] {
        for n in [2, 2 * SHARD_ROWS, 2 * SHARD_ROWS + 1, 5 * SHARD_ROWS + 17] {
            let params0 = notebook_params(dims, 3);
            let xb = tokens(n * dims.context, dims.vocab, 10 + n as u64);
            let yb = tokens(n, dims.vocab, 20 + n as u64);
            let lr = 0.1;

            // the reference step
            let mut plain = params0.clone();
            let mut grads = vec![f32::NAN; dims.num_params()];
            let mut acts = vec![f32::NAN; ActsMut::<f32>::flat_len(&dims, n)];
            let mut a = ActsMut::from_flat(dims, n, &mut acts).unwrap();
            let want_loss = train_step(
                &mut ParamsMut::from_flat(dims, &mut plain).unwrap(),
                &mut ParamsMut::from_flat(dims, &mut grads).unwrap(),
                &mut a,
                &xb,
                &yb,
                lr,
            )
            .unwrap();
            let (want_mean, want_inv) = a.bn_stats();

            let mut sharded = params0.clone();
            let mut scratch = vec![f32::NAN; Step::flat_len(&dims, n).unwrap()];
            let mut step = Step::from_flat(dims, n, &mut scratch).unwrap();
            let loss = pool(2)
                .unwrap()
                .install(|| {
                    let mut p = ParamsMut::from_flat(dims, &mut sharded).unwrap();
                    k.train_step(&Rayon, &mut p, &mut step, &xb, &yb, lr)
                })
                .unwrap();
            let isa = k.isa();
            // The vector paths' products use FMA, which the ill-conditioned statistics of a
            // 2-row batch amplify; they are checked against scalar in core/tests/simd.rs. Here
            // the scalar path against the reference, then every path against itself.
            if isa == makemore_core::simd::Isa::Scalar {
                assert!(
                    (loss - want_loss).abs() <= 1e-5 * want_loss,
                    "{isa} n={n}: loss {loss} vs {want_loss}"
                );
                let (mean, inv) = step.bn_stats();
                assert_close(&format!("{isa} n={n} bnmeani"), mean, want_mean, 1e-5);
                assert_close(&format!("{isa} n={n} bnvar_inv"), inv, want_inv, 1e-5);
                let got = ParamsRef::from_flat(dims, step.grads()).unwrap().tensors();
                let want = ParamsRef::from_flat(dims, &grads).unwrap().tensors();
                for ((name, g), w) in makemore_core::PARAM_NAMES.iter().zip(got).zip(want) {
                    let what = format!("{isa} n={n} d{name}");
                    if *name == "b1" {
                        // db1 = dhprebn.sum(0) is zero up to rounding (batchnorm subtracts the
                        // mean): absolute, at the scale of the terms it sums (those of dW1's sums)
                        let scale = want[1].iter().fold(0f32, |m, x| m.max(x.abs()));
                        for (i, (a, b)) in g.iter().zip(w).enumerate() {
                            assert!((a - b).abs() <= 1e-5 * scale, "{what}[{i}]: {a} vs {b}");
                        }
                    } else {
                        // f32 sums over up to 337 rows in another order: relative 1e-4 of the
                        // largest
                        assert_close(&what, g, w, 1e-4);
                    }
                }
                assert_close(&format!("{isa} n={n} params"), &sharded, &plain, 1e-5);
            }

            // three steps in turn, then on each thread count: the same bits
            let three = |on_pool: Option<usize>| {
                let mut p = params0.clone();
                let mut scratch = vec![f32::NAN; Step::flat_len(&dims, n).unwrap()];
                let mut step = Step::from_flat(dims, n, &mut scratch).unwrap();
                let mut run = || -> Vec<u32> {
                    (0..3)
                        .map(|_| {
                            let mut pm = ParamsMut::from_flat(dims, &mut p).unwrap();
                            let l = match on_pool {
                                Some(_) => k.train_step(&Rayon, &mut pm, &mut step, &xb, &yb, lr),
                                None => k.train_step(&InTurn, &mut pm, &mut step, &xb, &yb, lr),
                            };
                            l.unwrap().to_bits()
                        })
                        .collect()
                };
                let losses = match on_pool {
                    Some(t) => pool(t).unwrap().install(run),
                    None => run(),
                };
                (losses, bits(&p))
            };
            let in_turn = three(None);
            for threads in THREADS {
                let (losses, p) = three(Some(threads));
                assert_eq!(
                    losses, in_turn.0,
                    "{isa} n={n}: losses on {threads} threads"
                );
                assert!(
                    p == in_turn.1,
                    "{isa} n={n}: parameters differ on {threads} threads"
                );
            }
        }
    }
}

#[test]
fn the_step_refuses_bad_input() {
    let dims = Dims::EXERCISE4;
    let k = Kernels::best();
    let mut scratch = vec![0f32; Step::flat_len(&dims, 4).unwrap()];
    assert!(Step::from_flat(dims, 1, &mut scratch).is_err());
    assert!(Step::from_flat(dims, 4, &mut scratch[1..]).is_err());
    let mut step = Step::from_flat(dims, 4, &mut scratch).unwrap();
    let mut p = notebook_params(dims, 1);
    let x = vec![0u8; 4 * dims.context];
    let y = vec![0u8; 4];
    let mut pm = ParamsMut::from_flat(dims, &mut p).unwrap();
    assert!(k
        .train_step(&Rayon, &mut pm, &mut step, &x[1..], &y, 0.1)
        .is_err());
    assert!(k
        .train_step(&Rayon, &mut pm, &mut step, &x, &y[1..], 0.1)
        .is_err());
    let mut bad = x.clone();
    bad[5] = 27;
    let err = k
        .train_step(&Rayon, &mut pm, &mut step, &bad, &y, 0.1)
        .unwrap_err();
    assert!(err.to_string().contains("27"), "{err}");
    assert!(k
        .train_step(&Rayon, &mut pm, &mut step, &x, &y, 0.1)
        .is_ok());
}

#[test]
fn distinct_contexts_dense_and_sorted_agree() {
    for (t, vocab, rows) in [(1, 5, 0), (3, 27, 20_000), (2, 7, 50), (5, 3, 1000)] {
        let x = tokens(rows * t, vocab, 7);
        let parts = [&x[..], &x[..rows / 3 * t]];
        let dense = Contexts::new(&parts, t, vocab).unwrap();
        let sorted = Contexts::with_dense_limit(&parts, t, vocab, 0).unwrap();
        let only_dense = Contexts::dense(&parts, t, vocab).unwrap();
        assert_eq!(dense.distinct, sorted.distinct, "t={t} vocab={vocab}");
        assert_eq!(dense.distinct, only_dense.distinct, "t={t} vocab={vocab}");
        for part in 0..2 {
            assert_eq!(dense.ids[part], sorted.ids[part], "t={t} vocab={vocab}");
            assert_eq!(dense.ids[part], only_dense.ids[part], "t={t} vocab={vocab}");
        }
        assert_eq!(dense.ids.len(), 2);
        let distinct = &dense.distinct;
        assert!(distinct.chunks(t).is_sorted(), "key order");
        for (row, &i) in x.chunks(t).zip(&dense.ids[0]) {
            assert_eq!(row, &distinct[i as usize * t..][..t]);
        }
    }
    assert!(Contexts::new(&[&[1, 2, 3, 4]], 3, 27).is_err());
    assert!(Contexts::new(&[&[1, 2, 3]], 17, 27).is_err());
    // the dense path alone refuses key spaces above its limit (27^5) and beyond 2^32 (27^7),
    // which Contexts::new sorts
    for t in [5, 7] {
        let x = tokens(100 * t, 27, 9);
        assert!(Contexts::new(&[&x], t, 27).is_ok());
        let err = Contexts::dense(&[&x], t, 27).unwrap_err().to_string();
        assert!(err.contains("more keys than the dense path's"), "{err}");
    }
    // a bad token in the second chunk of the second data set: its position in that data set
    let mut bad = tokens(3 * 20_000, 27, 8);
    bad[3 * 9000 + 1] = 30;
    for limit in [1 << 20, 0] {
        let err = Contexts::with_dense_limit(&[&bad[..30], &bad], 3, 27, limit).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("data set 1") && msg.contains("position 27001"),
            "{msg}"
        );
    }
}

/// Calibration and the split losses: the same bits on 1, 2, 3 and 8 threads, through one
/// index of every split (as `makemore train`) or one per call (as `makemore eval`); the values
/// of the plain inference path up to rounding.
#[test]
fn calibration_and_evaluation_ignore_the_thread_count() {
    let dims = Dims::EXERCISE4;
    let k = Kernels::best();
    let params = notebook_params(dims, 9);
    let p = ParamsRef::from_flat(dims, &params).unwrap();
    let sizes = [30_000, 4000, 0, 3000];
    let splits: Vec<(Vec<u8>, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(s, &n)| {
            // a small alphabet so that contexts repeat, as in names
            let x = tokens(n * dims.context, 12, 100 + s as u64);
            (x, tokens(n, dims.vocab, 200 + s as u64))
        })
        .collect();
    let refs: Vec<(&[u8], &[u8])> = splits.iter().map(|(x, y)| (&x[..], &y[..])).collect();
    let losses_bits = |l: &[f64]| l.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let separate = |threads: usize| {
        pool(threads).unwrap().install(|| {
            let (bnmean, bnvar) = calibrate(&k, p, &splits[0].0).unwrap();
            let losses = split_losses(&k, p, &bnmean, &bnvar, &refs).unwrap();
            (bnmean, bnvar, losses)
        })
    };
    let one = separate(1);
    for threads in EVAL_THREADS {
        let other = separate(threads);
        assert_eq!(bits(&other.0), bits(&one.0), "bnmean on {threads} threads");
        assert_eq!(bits(&other.1), bits(&one.1), "bnvar on {threads} threads");
        assert_eq!(
            losses_bits(&other.2),
            losses_bits(&one.2),
            "losses on {threads} threads"
        );
        let (m, v, l) = pool(threads)
            .unwrap()
            .install(|| calibrate_and_evaluate(&k, p, &refs, 0))
            .unwrap();
        let what = format!("one index of all splits, {threads} threads");
        assert_eq!(bits(&m), bits(&one.0), "bnmean, {what}");
        assert_eq!(bits(&v), bits(&one.1), "bnvar, {what}");
        assert_eq!(losses_bits(&l), losses_bits(&one.2), "losses, {what}");
    }
    assert!(
        calibrate_and_evaluate(&k, p, &refs, 4).is_err(),
        "no split 4"
    );
    assert!(
        calibrate_and_evaluate(&k, p, &refs, 2).is_err(),
        "empty split"
    );
    let mut short = refs.clone();
    short[1].1 = &short[1].1[1..];
    assert!(calibrate_and_evaluate(&k, p, &short, 0).is_err());
    let mut bad = splits[1].1.clone();
    bad[5] = dims.vocab as u8;
    let mut bad_refs = refs.clone();
    bad_refs[1].1 = &bad;
    let err = calibrate_and_evaluate(&k, p, &bad_refs, 0).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("data set 1") && msg.contains("token 27 at position 5"),
        "{msg}"
    );
    assert!(split_losses(&k, p, &one.0[1..], &one.1, &refs).is_err());

    // the plain path: every row through `BnCalibration::add_rows` and `Inference`
    let (bnmean, bnvar, losses) = one;
    let (mut m, mut m2) = (vec![0f64; dims.hidden], vec![0f64; dims.hidden]);
    let mut acc = BnCalibration::new(&mut m, &mut m2).unwrap();
    acc.add_rows(p, &splits[0].0, &mut vec![0f32; 256 * dims.hidden])
        .unwrap();
    let (mut want_mean, mut want_var) = (vec![0f32; dims.hidden], vec![0f32; dims.hidden]);
    acc.finish(&mut want_mean, &mut want_var).unwrap();
    assert_close("bnmean", &bnmean, &want_mean, 1e-5);
    assert_close("bnvar", &bnvar, &want_var, 1e-5);
    let (mut inv, mut h, mut logits) = (
        vec![0f32; dims.hidden],
        vec![0f32; dims.hidden],
        vec![0f32; dims.vocab],
    );
    let mut inf = Inference::new(p, &bnmean, &bnvar, &mut inv, &mut h, &mut logits).unwrap();
    for (s, (x, y)) in splits.iter().enumerate() {
        if y.is_empty() {
            assert!(losses[s].is_nan());
            continue;
        }
        let mut sum = 0.0;
        for (ctx, &target) in x.chunks(dims.context).zip(y) {
            let l = inf.next_logits(ctx).unwrap();
            let m = l.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = m + l.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            sum += lse - l[target as usize] as f64;
        }
        let want = sum / y.len() as f64;
        assert!(
            (losses[s] - want).abs() <= 1e-5 * want,
            "split {s}: {} vs {want}",
            losses[s]
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `makemore train` on 1, 2 and 8 threads with a batch that takes the sharded step: the same
/// checkpoint tensors and metrics (apart from timings and the thread count); then `eval` and
/// `sample --count 3000` of that checkpoint print the same bytes on every thread count.
#[test]
fn cli_results_ignore_the_thread_count() {
    let names = names_path();
    let dir = tempfile::tempdir().unwrap();
    let batch = (2 * SHARD_ROWS + 37).to_string();
    let mut checkpoints = Vec::new();
    for threads in THREADS {
        let out = dir.path().join(format!("t{threads}"));
        let t = threads.to_string();
        let run = makemore(&[
            "train",
            "--input",
            s(&names),
            "--steps",
            "30",
            "--batch-size",
            &batch,
            "--hidden",
            "48",
            "--samples",
            "0",
            "--threads",
            &t,
            "--out",
            s(&out),
        ])
        .ok();
        assert!(
            run.stdout.contains("training step: sharded"),
            "{}",
            run.dump()
        );
        let mut m = metrics(&out);
        // a count above the cores runs on the cores (cli/tests/memory.rs)
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(m["threads"], threads.min(cores), "metrics.json threads");
        assert_eq!(m["training_step"], "sharded");
        let obj = m.as_object_mut().unwrap();
        for timing in [
            "threads",
            "train_seconds",
            "train_seconds_this_run",
            "eval_seconds",
            "steps_per_second",
            // the files written: in each run's own --out
            "checkpoints",
            // which implementation of each exact kernel the start-up calibration picked: a
            // timing too (near ties flip); the results are the same either way
            "exact_kernels",
        ] {
            assert!(obj.remove(timing).is_some(), "{timing} missing");
        }
        let tensors = {
            let bytes = fs::read(out.join("model.safetensors")).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            TENSORS
                .iter()
                .map(|&name| st.tensor(name).unwrap().data().to_vec())
                .collect::<Vec<_>>()
        };
        checkpoints.push((threads, out, m, tensors));
    }
    let (_, first, m1, t1) = &checkpoints[0];
    for (threads, _, m, t) in &checkpoints[1..] {
        assert_eq!(m, m1, "metrics.json on {threads} threads");
        for ((name, a), b) in TENSORS.iter().zip(t).zip(t1) {
            assert!(a == b, "tensor {name} differs on {threads} threads");
        }
    }

    let ck = first.join("model.safetensors");
    let outputs = |args: &[&str]| -> Vec<String> {
        THREADS
            .iter()
            .map(|t| {
                let t = t.to_string();
                let mut all = args.to_vec();
                all.extend([
                    "--checkpoint",
                    s(&ck),
                    "--input",
                    s(&names),
                    "--threads",
                    &t,
                ]);
                makemore(&all).ok().stdout
            })
            .collect()
    };
    let samples = outputs(&["sample", "--count", "3000", "--seed", "5"]);
    assert_eq!(samples[0].lines().count(), 3000);
    let evals = outputs(&["eval", "--json"]);
    for (i, threads) in THREADS.iter().enumerate().skip(1) {
        assert!(
            samples[i] == samples[0],
            "samples differ on {threads} threads"
        );
        assert_eq!(evals[i], evals[0], "eval on {threads} threads");
    }

    let err = makemore(&["eval", "--checkpoint", s(&ck), "--threads", "0"]).failed();
    assert!(err.contains("--threads"), "{err}");
}
