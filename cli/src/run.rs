//! `train`, `eval` and `gradcheck`.

use std::fs;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use makemore_core::train::ActsMut;
use makemore_core::{Dims, ParamsMut};
use rand_core::Rng as _;
use rand_pcg::Pcg64;

use crate::checkpoint::{Checkpoint, RunState};
use crate::dataset::{Dataset, Provenance};
use crate::eval::{calibrate, calibrate_and_evaluate, split_losses};
use crate::model::{check_range, kernels, BATCH, CONTEXT, EMBEDDING, HIDDEN};
use crate::parallel::{pool, thread_count};
use crate::plot::{write_csv, write_svg, CurvePoint};
use crate::shard::{ShardedStep, SHARD_MIN_BATCH};
use crate::{EvalArgs, TrainArgs};

/// Adapts a PCG generator to the core's random source.
pub struct CoreRng<'a>(pub &'a mut Pcg64);

impl makemore_core::Rng for CoreRng<'_> {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// The PCG stream of the initialisation.
pub fn init_rng(seed: u64) -> Pcg64 {
    Pcg64::new(seed as u128, 0xda3e_39cb_94b9_5bdb)
}

/// The PCG stream minibatch `step` is drawn from: (seed, step) is the whole RNG state of a run,
/// so a resumed run draws exactly the batches the uninterrupted one would.
pub fn batch_rng(seed: u64, step: u64) -> Pcg64 {
    Pcg64::new(((seed as u128) << 64) | step as u128, 0x5851_f42d_4c95_7f2d)
}

/// Uniform in 0..n without modulo bias (Lemire's multiply-and-reject).
pub fn below(rng: &mut Pcg64, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (rng.next_u64() as u128) * (n as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Training window for the loss curve.
const WINDOW: u64 = 1000;
/// Loss printed every this many steps.
const PRINT_EVERY: u64 = 10_000;

/// `train`: in a pool of `--threads` threads.
pub fn train(a: &TrainArgs) -> Result<ExitCode> {
    let threads = thread_count(a.threads)?;
    pool(threads)?.install(|| train_in_pool(a, threads))
}

fn train_in_pool(a: &TrainArgs, threads: usize) -> Result<ExitCode> {
    check_range("--hidden", a.hidden, HIDDEN)?;
    check_range("--embedding", a.embedding, EMBEDDING)?;
    check_range("--context", a.context, CONTEXT)?;
    check_range("--batch-size", a.batch_size, BATCH)?;
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr {} must be a finite number > 0", a.lr);
    }
    let k = kernels(a.isa.as_deref())?;
    let ds = Dataset::load(&a.input, a.context)?;
    println!(
        "{}: {} words ({} duplicates kept, {} blank lines skipped), vocabulary of {}",
        a.input.display(),
        ds.words,
        ds.duplicates,
        ds.blank_lines,
        ds.vocab.len()
    );
    println!(
        "split (Python's random.seed(42) shuffle): first word {:?}, words {} / {} / {}",
        ds.split.train.first().map_or("", String::as_str),
        ds.split.train.len(),
        ds.split.val.len(),
        ds.split.test.len()
    );
    println!(
        "examples: train {} / val {} / test {}",
        ds.train.len(),
        ds.val.len(),
        ds.test.len()
    );
    if ds.train.is_empty() {
        bail!(
            "{}: the training split is empty; the file needs more words",
            a.input.display()
        );
    }
    let dims = Dims {
        vocab: ds.vocab.len(),
        context: a.context,
        embedding: a.embedding,
        hidden: a.hidden,
    };
    fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create output directory {}", a.out.display()))?;
    let ckpt_path = a.out.join("model.safetensors");
    crate::checkpoint::remove_stale_temp_files(&ckpt_path);

    // parameters and run state: fresh, or from the checkpoint
    let (mut params, mut run) = if a.resume {
        let ck = Checkpoint::load(&ckpt_path)
            .context("--resume needs the checkpoint of an earlier run")?;
        if ck.dims != dims {
            bail!(
                "{}: the checkpoint's model {:?} differs from the flags' {:?}; pass the same --embedding/--hidden/--context",
                ckpt_path.display(),
                ck.dims,
                dims
            );
        }
        if ck.vocab.as_ref() != Some(&ds.vocab) {
            bail!(
                "{}: the checkpoint's vocabulary differs from {}'s",
                ckpt_path.display(),
                a.input.display()
            );
        }
        let Some(run) = ck.run else {
            bail!(
                "{}: the checkpoint has no training state to resume",
                ckpt_path.display()
            );
        };
        if run.batch_size != a.batch_size || run.seed != a.seed {
            bail!(
                "{}: the run used --batch-size {} --seed {}; resume with the same",
                ckpt_path.display(),
                run.batch_size,
                run.seed
            );
        }
        println!("resuming from step {} of {}", run.step, ckpt_path.display());
        (
            ck.params,
            RunState {
                steps: a.steps,
                ..run
            },
        )
    } else {
        let mut params = vec![0f32; dims.num_params()];
        ParamsMut::from_flat(dims, &mut params)?.init_notebook(&mut CoreRng(&mut init_rng(a.seed)));
        let run = RunState {
            step: 0,
            seed: a.seed,
            steps: a.steps,
            batch_size: a.batch_size,
            lr: a.lr,
            lr_decay_step: a.lr_decay_step,
        };
        (params, run)
    };
    println!("parameters: {}", dims.num_params());
    println!("instruction set: {}", k.isa());

    let n = a.batch_size;
    // The step: from SHARD_MIN_BATCH rows on, sharded across the pool's threads; below, the
    // single-thread kernel step. The choice depends on the batch size only, never on
    // --threads, so a run gives the same bits for any thread count.
    let mut sharded = if n >= SHARD_MIN_BATCH {
        Some(ShardedStep::new(dims, n)?)
    } else {
        None
    };
    let plain_len = |len: usize| if sharded.is_some() { 0 } else { len };
    let mut acts_buf = vec![0f32; plain_len(ActsMut::<f32>::flat_len(&dims, n))];
    let mut grads_buf = vec![0f32; plain_len(dims.num_params())];
    let mut w2t = vec![0f32; plain_len(dims.vocab * dims.hidden)];
    let step_kind = match sharded {
        Some(_) => "sharded",
        None => "single-thread",
    };
    println!(
        "training step: {step_kind} (sharded from batch {SHARD_MIN_BATCH}), {threads} threads"
    );
    let mut xb = vec![0u8; n * dims.context];
    let mut yb = vec![0u8; n];
    let mut curve = Vec::new();
    let mut window = (0.0f64, 0u64);
    let save = |params: &[f32], run: &RunState, bn: Option<(Vec<f32>, Vec<f32>)>| -> Result<()> {
        Checkpoint {
            dims,
            params: params.to_vec(),
            bn,
            vocab: Some(ds.vocab.clone()),
            run: Some(run.clone()),
        }
        .save(&ckpt_path)
    };

    let bar = if std::io::stdout().is_terminal() {
        let bar = ProgressBar::new(a.steps);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} ETA {eta} {msg}")
                .expect("static template"),
        );
        bar.set_position(run.step);
        Some(bar)
    } else {
        None
    };
    let t0 = Instant::now();
    let first_step = run.step;
    // The step of the checkpoint on disk, as far as this run knows.
    let mut saved_step = a.resume.then_some(run.step);
    while run.step < a.steps {
        let step = run.step;
        let mut rng = batch_rng(run.seed, step);
        for k in 0..n {
            let i = below(&mut rng, ds.train.len() as u64) as usize;
            xb[k * dims.context..][..dims.context].copy_from_slice(ds.train.row(i));
            yb[k] = ds.train.y[i];
        }
        let lr = if step < run.lr_decay_step {
            run.lr
        } else {
            run.lr / 10.0
        };
        let loss = match &mut sharded {
            Some(sharded) => sharded.step(&k, &mut params, &xb, &yb, lr)?,
            None => {
                let mut p = ParamsMut::from_flat(dims, &mut params)?;
                let mut g = ParamsMut::from_flat(dims, &mut grads_buf)?;
                let mut acts = ActsMut::from_flat(dims, n, &mut acts_buf)?;
                k.train_step(&mut p, &mut g, &mut acts, &mut w2t, &xb, &yb, lr)?
            }
        };
        if !loss.is_finite() {
            bail!(
                "the loss became {loss} at step {step}; training stopped, {}. Try a smaller --lr",
                last_saved(&ckpt_path, saved_step)
            );
        }
        if let Some((name, i, x)) = crate::checkpoint::first_non_finite(&k, dims, &params) {
            bail!(
                "a gradient was not finite at step {step} (the update made {name}[{i}] {x}); training stopped, {}. Try a smaller --lr",
                last_saved(&ckpt_path, saved_step)
            );
        }
        run.step += 1;
        window.0 += loss as f64;
        window.1 += 1;
        if run.step % WINDOW == 0 || run.step == a.steps {
            curve.push(CurvePoint {
                step: run.step,
                log10_loss: (window.0 / window.1 as f64).log10(),
            });
            window = (0.0, 0);
        }
        if step % PRINT_EVERY == 0 {
            let line = format!("{step:7}/{:7}: {loss:.4}", a.steps);
            match &bar {
                Some(b) => b.println(line),
                None => println!("{line}"),
            }
        }
        if let Some(b) = &bar {
            if run.step % 256 == 0 {
                b.set_position(run.step);
            }
        }
        if a.checkpoint_every > 0 && run.step % a.checkpoint_every == 0 && run.step < a.steps {
            save(&params, &run, None)?;
            saved_step = Some(run.step);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let train_seconds = t0.elapsed().as_secs_f64();
    let trained = run.step - first_step;
    println!(
        "trained {trained} steps in {train_seconds:.2} s ({:.0} steps/s)",
        trained as f64 / train_seconds.max(1e-9)
    );

    // batchnorm calibration and evaluation
    let t1 = Instant::now();
    let p = makemore_core::ParamsRef::from_flat(dims, &params)?;
    let splits = [&ds.train, &ds.val, &ds.test].map(|e| (&e.x[..], &e.y[..]));
    let (bnmean, bnvar, losses) = calibrate_and_evaluate(&k, p, &splits, 0)?;
    let eval_seconds = t1.elapsed().as_secs_f64();
    println!("train loss {:.4}", losses[0]);
    println!("val loss   {:.4}", losses[1]);
    println!("test loss  {:.4}", losses[2]);
    println!(
        "(batchnorm calibration and evaluation: {:.3} s)",
        eval_seconds
    );

    save(&params, &run, Some((bnmean.clone(), bnvar.clone())))?;

    // outputs
    let metrics = serde_json::json!({
        "examples": {"train": ds.train.len(), "val": ds.val.len(), "test": ds.test.len()},
        "params": dims.num_params(),
        "config": {"vocab": dims.vocab, "context": dims.context, "embedding": dims.embedding, "hidden": dims.hidden,
                   "batch_size": n, "lr": run.lr, "lr_decay_step": run.lr_decay_step, "seed": run.seed},
        "steps": run.step,
        "steps_this_run": trained,
        "train_loss": losses[0],
        "val_loss": losses[1],
        "test_loss": losses[2],
        "train_seconds": train_seconds,
        "steps_per_second": trained as f64 / train_seconds.max(1e-9),
        "eval_seconds": eval_seconds,
        "threads": threads,
        "training_step": step_kind,
        "isa": k.isa().name(),
    });
    crate::checkpoint::write_atomic(
        &a.out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
    )?;
    write_csv(&a.out.join("loss.csv"), &curve).context("writing loss.csv")?;
    write_svg(
        &a.out.join("loss.svg"),
        "training loss (mean over 1000-step windows)",
        &curve,
        (run.lr_decay_step < run.steps).then_some((run.lr_decay_step, "lr / 10")),
    )
    .context("writing loss.svg")?;

    // samples
    if a.samples > 0 {
        let prov = Provenance::new(&ds.split);
        let names = crate::sample::sample_names(
            p, &bnmean, &bnvar, &ds.vocab, a.samples, 2147483657, 1.0, 0, "",
        )?;
        println!("samples:");
        for name in names {
            println!("{name:20} {}", prov.of(&name));
        }
    }
    println!(
        "wrote {}, metrics.json, loss.csv, loss.svg",
        ckpt_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What a stopped run left on disk, for its error message.
fn last_saved(path: &std::path::Path, step: Option<u64>) -> String {
    match step {
        Some(s) => format!("{} (step {s}) is untouched", path.display()),
        None => format!(
            "this run saved nothing to {} (an earlier file there is untouched)",
            path.display()
        ),
    }
}

/// `eval`: loss of each split with the checkpoint's calibrated batchnorm (calibrating over the
/// training split if the checkpoint has no statistics), in a pool of `--threads` threads.
pub fn eval(a: &EvalArgs) -> Result<ExitCode> {
    pool(thread_count(a.threads)?)?.install(|| eval_in_pool(a))
}

fn eval_in_pool(a: &EvalArgs) -> Result<ExitCode> {
    let k = kernels(a.isa.as_deref())?;
    let ck = Checkpoint::load(&a.checkpoint)?;
    let ds = Dataset::load(&a.input, ck.dims.context)?;
    if let Some(v) = &ck.vocab {
        if *v != ds.vocab {
            bail!(
                "{}: the checkpoint's vocabulary differs from {}'s",
                a.checkpoint.display(),
                a.input.display()
            );
        }
    } else if ds.vocab.len() != ck.dims.vocab {
        bail!(
            "{}: the checkpoint has {} symbols, {} has {}",
            a.checkpoint.display(),
            ck.dims.vocab,
            a.input.display(),
            ds.vocab.len()
        );
    }
    let p = ck.params_ref();
    let (bnmean, bnvar) = match &ck.bn {
        Some(bn) => bn.clone(),
        None => calibrate(&k, p, &ds.train.x)?,
    };
    let splits: Vec<&str> = if a.split == "all" {
        vec!["train", "val", "test"]
    } else {
        vec![a.split.as_str()]
    };
    let mut out = serde_json::Map::new();
    let examples: Vec<(&[u8], &[u8])> = splits
        .iter()
        .map(|s| {
            let e = ds.examples(s);
            (&e.x[..], &e.y[..])
        })
        .collect();
    let losses = split_losses(&k, p, &bnmean, &bnvar, &examples)?;
    for (s, loss) in splits.into_iter().zip(losses) {
        let e = ds.examples(s);
        if !a.json {
            println!("{s:5} loss {loss:.4} ({} examples)", e.len());
        }
        out.insert(s.into(), serde_json::json!(loss));
    }
    if a.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(ExitCode::SUCCESS)
}
