//! `train`: the notebook's Exercise 4 as a [`Trainer`] with named phases, each a method, called
//! in order by [`train`]: [`Trainer::start`] (data, then a fresh init or the checkpoint to
//! resume), [`Trainer::run_steps`] (the step loop on the core's one training step),
//! [`Trainer::evaluate`] (batchnorm calibration and the three losses), [`Trainer::finish`]
//! (checkpoint, metrics, loss curve, samples).

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use makemore_core::rng::{init_stream, SAMPLE_SEED};
use makemore_core::simd::Kernels;
use makemore_core::step::{shard_rows, InTurn, Step, SHARD_ROWS};
use makemore_core::{Dims, ParamsMut, ParamsRef};

use crate::batch::fill_batch;
use crate::checkpoint::{Checkpoint, RunState, BATCH, CONTEXT, EMBEDDING, HIDDEN};
use crate::dataset::{Dataset, Provenance};
use crate::eval::calibrate_and_evaluate;
use crate::isa::kernels;
use crate::parallel::{pool, thread_count, Rayon};
use crate::plot::{write_csv, write_svg, CurvePoint};
use crate::TrainArgs;

/// Checks a size against its range, naming the flag.
fn check_range(flag: &str, value: usize, (lo, hi): (usize, usize)) -> Result<()> {
    if value < lo || value > hi {
        bail!("{flag} {value} is out of range: use a value from {lo} to {hi}");
    }
    Ok(())
}

/// Training window for the loss curve.
const WINDOW: u64 = 1000;
/// Loss printed every this many steps.
const PRINT_EVERY: u64 = 10_000;

/// `train`: in a pool of `--threads` threads, the phases in order.
pub fn train(a: &TrainArgs) -> Result<ExitCode> {
    let threads = thread_count(a.threads)?;
    pool(threads)?.install(|| {
        let mut t = Trainer::start(a, threads)?;
        t.run_steps()?;
        let eval = t.evaluate()?;
        t.finish(&eval)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// A training run: its data, parameters and state, and what it has measured.
pub struct Trainer<'a> {
    args: &'a TrainArgs,
    threads: usize,
    kernels: Kernels,
    ds: Dataset,
    dims: Dims,
    /// C, W1, b1, W2, b2, bngain, bnbias, flat.
    params: Vec<f32>,
    run: RunState,
    checkpoint: PathBuf,
    /// The step of the checkpoint on disk, as far as this run knows.
    saved_step: Option<u64>,
    /// Mean loss per window of [`WINDOW`] steps.
    curve: Vec<CurvePoint>,
    steps_this_run: u64,
    train_seconds: f64,
}

/// What [`Trainer::evaluate`] gives.
pub struct Evaluation {
    bnmean: Vec<f32>,
    bnvar: Vec<f32>,
    /// train, val, test
    losses: [f64; 3],
    seconds: f64,
}

impl<'a> Trainer<'a> {
    /// Checks the flags, loads the data, and starts a fresh run (the notebook's init) or
    /// resumes the checkpoint in `--out`.
    pub fn start(a: &'a TrainArgs, threads: usize) -> Result<Self> {
        check_range("--hidden", a.hidden, HIDDEN)?;
        check_range("--embedding", a.embedding, EMBEDDING)?;
        check_range("--context", a.context, CONTEXT)?;
        check_range("--batch-size", a.batch_size, BATCH)?;
        if !(a.lr.is_finite() && a.lr > 0.0) {
            bail!("--lr {} must be a finite number > 0", a.lr);
        }
        let kernels = kernels(a.isa)?;
        let ds = load_data(&a.input, a.context)?;
        let dims = Dims {
            vocab: ds.vocab.len(),
            context: a.context,
            embedding: a.embedding,
            hidden: a.hidden,
        };
        cli::memory::check_training(dims, a.batch_size, 0)?;
        fs::create_dir_all(&a.out)
            .with_context(|| format!("cannot create output directory {}", a.out.display()))?;
        let checkpoint = a.out.join("model.safetensors");
        crate::checkpoint::remove_stale_temp_files(&checkpoint);
        let (params, run) = if a.resume {
            resume(a, &checkpoint, &ds, dims)?
        } else {
            let mut params = vec![0f32; dims.num_params()];
            ParamsMut::from_flat(dims, &mut params)?.init_notebook(&mut init_stream(a.seed));
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
        println!("instruction set: {}", kernels.isa());
        Ok(Trainer {
            args: a,
            threads,
            kernels,
            saved_step: a.resume.then_some(run.step),
            ds,
            dims,
            params,
            run,
            checkpoint,
            curve: Vec::new(),
            steps_this_run: 0,
            train_seconds: 0.0,
        })
    }

    /// SGD steps until `--steps`: each draws batch `step` from its own stream, runs the core's
    /// step (the batch in shards of 64 rows on the pool's threads from 128 rows on, else one
    /// shard on this thread: the cut depends on the batch size only, so the bits do not depend
    /// on `--threads`), and stops with a clear error on a non-finite loss or parameter.
    pub fn run_steps(&mut self) -> Result<()> {
        let (dims, n, k) = (self.dims, self.run.batch_size, self.kernels);
        let mut scratch = vec![0f32; Step::flat_len(&dims, n).context("the batch is too large")?];
        let mut step = Step::from_flat(dims, n, &mut scratch)?;
        let sharded = step.shards() > 1;
        println!(
            "training step: {} (sharded from batch {}), {} threads",
            self.step_kind(),
            2 * SHARD_ROWS,
            self.threads
        );
        let mut xb = vec![0u8; n * dims.context];
        let mut yb = vec![0u8; n];
        let mut window = (0.0f64, 0u64);
        let bar = progress_bar(self.args.steps, self.run.step);
        let t0 = Instant::now();
        let first_step = self.run.step;
        while self.run.step < self.args.steps {
            let s = self.run.step;
            fill_batch(&self.ds.train, self.run.seed, s, &mut xb, &mut yb)?;
            let lr = if s < self.run.lr_decay_step {
                self.run.lr
            } else {
                self.run.lr / 10.0
            };
            let mut p = ParamsMut::from_flat(dims, &mut self.params)?;
            let loss = if sharded {
                k.train_step(&Rayon, &mut p, &mut step, &xb, &yb, lr)?
            } else {
                k.train_step(&InTurn, &mut p, &mut step, &xb, &yb, lr)?
            };
            if !loss.is_finite() {
                bail!(
                    "the loss became {loss} at step {s}; training stopped, {}. Try a smaller --lr",
                    self.last_saved()
                );
            }
            if let Some((name, i, x)) = crate::checkpoint::first_non_finite(&k, dims, &self.params)
            {
                bail!(
                    "a gradient was not finite at step {s} (the update made {name}[{i}] {x}); training stopped, {}. Try a smaller --lr",
                    self.last_saved()
                );
            }
            self.run.step += 1;
            window.0 += loss as f64;
            window.1 += 1;
            if self.run.step.is_multiple_of(WINDOW) || self.run.step == self.args.steps {
                self.curve.push(CurvePoint {
                    step: self.run.step,
                    log10_loss: (window.0 / window.1 as f64).log10(),
                });
                window = (0.0, 0);
            }
            if s.is_multiple_of(PRINT_EVERY) {
                let line = format!("{s:7}/{:7}: {loss:.4}", self.args.steps);
                match &bar {
                    Some(b) => b.println(line),
                    None => println!("{line}"),
                }
            }
            if let Some(b) = &bar {
                if self.run.step.is_multiple_of(256) {
                    b.set_position(self.run.step);
                }
            }
            let every = self.args.checkpoint_every;
            if every > 0 && self.run.step.is_multiple_of(every) && self.run.step < self.args.steps {
                self.save(None)?;
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        self.train_seconds = t0.elapsed().as_secs_f64();
        self.steps_this_run = self.run.step - first_step;
        println!(
            "trained {} steps in {:.2} s ({:.0} steps/s)",
            self.steps_this_run,
            self.train_seconds,
            self.steps_per_second()
        );
        Ok(())
    }

    /// Batchnorm calibration over the training split, then the loss of each split.
    pub fn evaluate(&self) -> Result<Evaluation> {
        let t1 = Instant::now();
        let splits = [&self.ds.train, &self.ds.val, &self.ds.test].map(|e| (&e.x[..], &e.y[..]));
        let (bnmean, bnvar, losses) =
            calibrate_and_evaluate(&self.kernels, self.params_ref()?, &splits, 0).with_context(
                || format!("evaluating the trained model failed; {}", self.last_saved()),
            )?;
        let seconds = t1.elapsed().as_secs_f64();
        println!("train loss {:.4}", losses[0]);
        println!("val loss   {:.4}", losses[1]);
        println!("test loss  {:.4}", losses[2]);
        println!("(batchnorm calibration and evaluation: {seconds:.3} s)");
        Ok(Evaluation {
            bnmean,
            bnvar,
            losses: [losses[0], losses[1], losses[2]],
            seconds,
        })
    }

    /// Writes the checkpoint with the calibrated statistics, `metrics.json`, `loss.csv` and
    /// `loss.svg`, then prints `--samples` names.
    pub fn finish(&mut self, eval: &Evaluation) -> Result<()> {
        self.save(Some((eval.bnmean.clone(), eval.bnvar.clone())))?;
        let (a, ds, dims, run) = (self.args, &self.ds, self.dims, &self.run);
        let metrics = serde_json::json!({
            "examples": {"train": ds.train.len(), "val": ds.val.len(), "test": ds.test.len()},
            "params": dims.num_params(),
            "config": {"vocab": dims.vocab, "context": dims.context, "embedding": dims.embedding, "hidden": dims.hidden,
                       "batch_size": run.batch_size, "lr": run.lr, "lr_decay_step": run.lr_decay_step, "seed": run.seed},
            "steps": run.step,
            "steps_this_run": self.steps_this_run,
            "train_loss": eval.losses[0],
            "val_loss": eval.losses[1],
            "test_loss": eval.losses[2],
            "train_seconds": self.train_seconds,
            "steps_per_second": self.steps_per_second(),
            "eval_seconds": eval.seconds,
            "threads": self.threads,
            "training_step": self.step_kind(),
            "isa": self.kernels.isa().name(),
        });
        crate::checkpoint::write_atomic(
            &a.out.join("metrics.json"),
            serde_json::to_string_pretty(&metrics)?.as_bytes(),
        )?;
        write_csv(&a.out.join("loss.csv"), &self.curve).context("writing loss.csv")?;
        write_svg(
            &a.out.join("loss.svg"),
            "training loss (mean over 1000-step windows)",
            &self.curve,
            (run.lr_decay_step < run.steps).then_some((run.lr_decay_step, "lr / 10")),
        )
        .context("writing loss.svg")?;
        if a.samples > 0 {
            let prov = Provenance::new(&ds.split);
            let draw = crate::sample::Draw {
                count: a.samples,
                seed: SAMPLE_SEED,
                temperature: 1.0,
                top_k: 0,
                prefix: "",
            };
            println!("samples:");
            let (bnmean, bnvar) = (&eval.bnmean, &eval.bnvar);
            crate::sample::for_each_block(
                self.params_ref()?,
                bnmean,
                bnvar,
                &ds.vocab,
                &draw,
                |names| {
                    for name in names {
                        println!("{name:20} {}", prov.of(name));
                    }
                    crate::stdout_open()
                },
            )?;
        }
        println!(
            "wrote {}, metrics.json, loss.csv, loss.svg",
            self.checkpoint.display()
        );
        Ok(())
    }

    fn params_ref(&self) -> Result<ParamsRef<'_, f32>> {
        Ok(ParamsRef::from_flat(self.dims, &self.params)?)
    }

    /// "sharded" from two shards on, else "single-thread" (`metrics.json`'s `training_step`).
    fn step_kind(&self) -> &'static str {
        if shard_rows(self.run.batch_size) < self.run.batch_size {
            "sharded"
        } else {
            "single-thread"
        }
    }

    fn steps_per_second(&self) -> f64 {
        self.steps_this_run as f64 / self.train_seconds.max(1e-9)
    }

    /// Saves the parameters, the run state and (once calibrated) the batchnorm statistics.
    fn save(&mut self, bn: Option<(Vec<f32>, Vec<f32>)>) -> Result<()> {
        Checkpoint {
            dims: self.dims,
            params: self.params.clone(),
            bn,
            vocab: Some(self.ds.vocab.clone()),
            run: Some(self.run.clone()),
        }
        .save(&self.checkpoint)?;
        self.saved_step = Some(self.run.step);
        Ok(())
    }

    /// What a stopped run left on disk, for its error message.
    fn last_saved(&self) -> String {
        match self.saved_step {
            Some(s) => format!("{} (step {s}) is untouched", self.checkpoint.display()),
            None => format!(
                "this run saved nothing to {} (an earlier file there is untouched)",
                self.checkpoint.display()
            ),
        }
    }
}

/// The word list, its split and examples, with a summary printed; an empty training split is
/// an error.
fn load_data(input: &Path, context: usize) -> Result<Dataset> {
    let ds = Dataset::load(input, context)?;
    println!(
        "{}: {} words ({} duplicates kept, {} blank lines skipped), vocabulary of {}",
        input.display(),
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
            input.display()
        );
    }
    Ok(ds)
}

/// The parameters and run state of the checkpoint to resume, checked against the flags and
/// the data.
fn resume(a: &TrainArgs, path: &Path, ds: &Dataset, dims: Dims) -> Result<(Vec<f32>, RunState)> {
    let ck = Checkpoint::load(path).context("--resume needs the checkpoint of an earlier run")?;
    if ck.dims != dims {
        bail!(
            "{}: the checkpoint's model {:?} differs from the flags' {:?}; pass the same --embedding/--hidden/--context",
            path.display(),
            ck.dims,
            dims
        );
    }
    if ck.vocab.as_ref() != Some(&ds.vocab) {
        bail!(
            "{}: the checkpoint's vocabulary differs from {}'s",
            path.display(),
            a.input.display()
        );
    }
    let Some(run) = ck.run else {
        bail!(
            "{}: the checkpoint has no training state to resume",
            path.display()
        );
    };
    if run.batch_size != a.batch_size || run.seed != a.seed {
        bail!(
            "{}: the run used --batch-size {} --seed {}; resume with the same",
            path.display(),
            run.batch_size,
            run.seed
        );
    }
    println!("resuming from step {} of {}", run.step, path.display());
    Ok((
        ck.params,
        RunState {
            steps: a.steps,
            ..run
        },
    ))
}

/// A progress bar when stdout is a terminal.
fn progress_bar(steps: u64, at: u64) -> Option<ProgressBar> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} ETA {eta} {msg}")
            .expect("static template"),
    );
    bar.set_position(at);
    Some(bar)
}
