//! `train`: the notebook's Exercise 4 as a [`Trainer`] with named phases, each a method, called
//! in order by [`train`]: [`Trainer::start`] (the output directory and its lock, the config,
//! the data, then a fresh init or the checkpoint to resume), [`Trainer::run_steps`] (the step
//! loop on the core's one training step, stopped early by SIGINT/SIGTERM), [`Trainer::evaluate`]
//! (batchnorm calibration and the three losses), [`Trainer::finish`] (checkpoint, metrics, loss
//! curve, samples).
//!
//! A run is defined by its [`RunState`] and data fingerprint (in the checkpoint's metadata) and
//! its [`History`] (the loss windows, evaluations and learning-rate changes, in the metadata's
//! `history` text), so `--resume` continues it where it stopped: N steps then a resume to 2N
//! gives the tensors and `loss.csv` of 2N steps in one go.

use std::fmt::Write as _;
use std::fs;
use std::io::{IsTerminal, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use makemore_core::checkpoint::Schedule;
use makemore_core::optim::{AdamW, Optimizer};
use makemore_core::rng::{Generator, SAMPLE_SEED, TRAIN_SEED};
use makemore_core::simd::Kernels;
use makemore_core::step::{shard_rows, InTurn, Step, SHARD_ROWS};
use makemore_core::{Dims, ParamsMut, ParamsRef};

use crate::batch::Batches;
use crate::checkpoint::{
    fingerprint, lr_at, Checkpoint, RunState, BATCH, CONTEXT, EMBEDDING, HIDDEN,
};
use crate::dataset::{Dataset, Provenance};
use crate::eval::{calibrate, calibrate_and_evaluate};
use crate::isa::kernels;
use crate::parallel::{pool, thread_count, Rayon};
use crate::plot::{write_csv, write_loss_svg, CurvePoint};
use crate::TrainArgs;

/// The defaults of the flags that define a run (see [`TrainArgs`]).
const DEFAULT_STEPS: u64 = 200_000;
const DEFAULT_BATCH: usize = 32;
const DEFAULT_EMBEDDING: usize = 10;
const DEFAULT_HIDDEN: usize = 200;
const DEFAULT_CONTEXT: usize = 3;
const DEFAULT_LR: f32 = 0.1;
const DEFAULT_LR_DECAY_STEP: u64 = 100_000;

/// Checks a size against its range, naming the flag.
fn check_range(flag: &str, value: usize, (lo, hi): (usize, usize)) -> Result<()> {
    if value < lo || value > hi {
        bail!("{flag} {value} is out of range: use a value from {lo} to {hi}");
    }
    Ok(())
}

/// Training window for the loss curve.
const WINDOW: u64 = 1000;
/// The file in `--out` holding the seconds the run has trained, over all its sessions.
const SECONDS_FILE: &str = "train_seconds";
/// Names printed by `--sample-every`.
const SAMPLES_DURING_TRAINING: usize = 5;

/// `--lr-schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleChoice {
    Step,
    Cosine,
}

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerChoice {
    Sgd,
    Adamw,
}

/// Set by SIGINT / SIGTERM: the step loop finishes its step, saves and stops.
static SIGINT_SEEN: AtomicBool = AtomicBool::new(false);
static SIGTERM_SEEN: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT and SIGTERM handlers: the first sets its flag, a second one (of either)
/// ends the process at once with 130 / 143.
fn install_signal_handlers() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag::{register, register_conditional_shutdown};
    for (sig, code) in [(SIGINT, 130), (SIGTERM, 143)] {
        // The shutdown goes first: it fires only once a flag is already set.
        register_conditional_shutdown(sig, code, &SIGINT_SEEN)?;
        register_conditional_shutdown(sig, code, &SIGTERM_SEEN)?;
    }
    register(SIGINT, &SIGINT_SEEN)?;
    register(SIGTERM, &SIGTERM_SEEN)?;
    Ok(())
}

/// The exit code of a run stopped by a signal: 130 for SIGINT, 143 for SIGTERM.
fn interrupted() -> Option<(&'static str, u8)> {
    if SIGINT_SEEN.load(Ordering::SeqCst) {
        Some(("SIGINT", 130))
    } else if SIGTERM_SEEN.load(Ordering::SeqCst) {
        Some(("SIGTERM", 143))
    } else {
        None
    }
}

/// `train`: in a pool of `--threads` threads, the phases in order.
pub fn train(a: &TrainArgs) -> Result<ExitCode> {
    install_signal_handlers().context("installing the SIGINT/SIGTERM handlers")?;
    let threads = thread_count(a.threads)?;
    pool(threads)?.install(|| {
        let Some(mut t) = Trainer::start(a, threads)? else {
            return Ok(ExitCode::SUCCESS);
        };
        if let Some(code) = t.run_steps()? {
            return Ok(code);
        }
        let eval = t.evaluate()?;
        t.finish(&eval)?;
        // a signal during the evaluation or the final save: the run is complete and saved
        if let Some((name, code)) = interrupted() {
            eprintln!("{name} received after the last step: the finished run was saved");
            return Ok(ExitCode::from(code));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Creates `out` if needed, checks that it is writable, and locks it: `<out>/.lock`, holding
/// this process's id, locked exclusively until the returned file is dropped (at exit).
fn prepare_out(out: &Path) -> Result<fs::File> {
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let path = out.join(".lock");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot write to output directory {} (creating {}); fix its permissions or choose another --out",
                out.display(),
                path.display()
            )
        })?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            bail!(
                "another makemore run (process {}) is training into {}; wait for it to end or choose another --out",
                pid.trim(),
                out.display()
            );
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    (|| -> std::io::Result<()> {
        f.set_len(0)?;
        f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        f.flush()
    })()
    .with_context(|| {
        format!(
            "cannot write to output directory {} (writing {}); fix its permissions, free some space or choose another --out",
            out.display(),
            path.display()
        )
    })?;
    Ok(f)
}

/// Refuses an output directory without room for two checkpoints of `bytes` (the new one is
/// written next to the old before the rename).
fn check_space(out: &Path, bytes: u64) -> Result<()> {
    let need = 2 * bytes;
    match fs4::available_space(out) {
        Ok(free) if free < need => bail!(
            "{} has {free} bytes free; two checkpoints need {need} bytes: free some space or choose another --out",
            out.display()
        ),
        _ => Ok(()),
    }
}

/// The trainer's record of a run so far, stored in the checkpoint's `history` metadata as
/// `start=STEP;windows=S1,S2,..;open=S/N;val=STEP:LOSS,..;lr_changes=STEP:LR,..` (each number in
/// Rust's shortest round-trip text, so it reads back to the same bits). The seconds are not in
/// it, so that a run's checkpoint bytes do not depend on the machine's speed: they go to
/// `<out>/train_seconds` ([`SECONDS_FILE`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The step the first window starts at: 0, or the step of a checkpoint written without a
    /// history.
    pub start: u64,
    /// Sum of the training losses of each complete window of [`WINDOW`] steps, in order.
    pub windows: Vec<f64>,
    /// The window in progress: sum of its losses and their count (< [`WINDOW`]).
    pub open: (f64, u64),
    /// The `--eval-every` validation losses: (step, loss).
    pub val: Vec<(u64, f64)>,
    /// The learning rate set by a resume with another `--lr`: (from step, lr).
    pub lr_changes: Vec<(u64, f32)>,
    /// Seconds spent in the step loop over all the run's sessions (kept in [`SECONDS_FILE`]).
    pub train_seconds: f64,
}

impl History {
    /// The text stored in the metadata.
    pub fn to_text(&self) -> String {
        let mut s = format!("start={};windows=", self.start);
        let list = |s: &mut String, items: Vec<String>| s.push_str(&items.join(","));
        list(&mut s, self.windows.iter().map(f64::to_string).collect());
        let _ = write!(s, ";open={}/{};val=", self.open.0, self.open.1);
        list(
            &mut s,
            self.val.iter().map(|(t, l)| format!("{t}:{l}")).collect(),
        );
        s.push_str(";lr_changes=");
        list(
            &mut s,
            self.lr_changes
                .iter()
                .map(|(t, l)| format!("{t}:{l}"))
                .collect(),
        );
        s
    }

    /// Parses [`History::to_text`]'s text; `None` if it is not that.
    pub fn from_text(text: &str) -> Option<History> {
        let mut fields = text.split(';');
        let mut field = |name: &str| fields.next()?.strip_prefix(name)?.strip_prefix('=');
        fn items(s: &str) -> impl Iterator<Item = &str> {
            s.split(',').filter(|x| !x.is_empty())
        }
        fn pair<T: std::str::FromStr>(x: &str) -> Option<(u64, T)> {
            let (t, l) = x.split_once(':')?;
            Some((t.parse().ok()?, l.parse().ok()?))
        }
        let start = field("start")?.parse().ok()?;
        let windows = items(field("windows")?)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let (sum, n) = field("open")?.split_once('/')?;
        let open = (sum.parse().ok()?, n.parse().ok()?);
        let val = items(field("val")?).map(pair).collect::<Option<_>>()?;
        let lr_changes = items(field("lr_changes")?)
            .map(pair)
            .collect::<Option<_>>()?;
        if fields.next().is_some() || open.1 >= WINDOW {
            return None;
        }
        Some(History {
            start,
            windows,
            open,
            val,
            lr_changes,
            train_seconds: 0.0,
        })
    }

    /// The loss curve: log10 of the mean loss of each complete window, then of the open one.
    fn curve(&self) -> Vec<CurvePoint> {
        let mut c: Vec<CurvePoint> = (1..)
            .zip(&self.windows)
            .map(|(k, sum)| CurvePoint {
                step: self.start + k * WINDOW,
                log10_loss: (sum / WINDOW as f64).log10(),
            })
            .collect();
        if self.open.1 > 0 {
            c.push(CurvePoint {
                step: self.start + self.windows.len() as u64 * WINDOW + self.open.1,
                log10_loss: (self.open.0 / self.open.1 as f64).log10(),
            });
        }
        c
    }

    /// The validation curve: log10 of each `--eval-every` loss.
    fn val_curve(&self) -> Vec<CurvePoint> {
        self.val
            .iter()
            .map(|&(step, l)| CurvePoint {
                step,
                log10_loss: l.log10(),
            })
            .collect()
    }

    /// The lowest validation loss so far and its step.
    fn best_val(&self) -> Option<(u64, f64)> {
        self.val
            .iter()
            .copied()
            .filter(|(_, l)| l.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// A training run: its data, parameters and state, and what it has measured.
pub struct Trainer<'a> {
    /// `<out>/.lock`, locked while the trainer lives.
    _lock: fs::File,
    args: &'a TrainArgs,
    threads: usize,
    kernels: Kernels,
    ds: Dataset,
    dims: Dims,
    /// C, W1, b1, W2, b2, bngain, bnbias, flat.
    params: Vec<f32>,
    /// The optimiser's state (AdamW's m then v; empty for SGD).
    opt_state: Vec<f32>,
    /// Where the next minibatch comes from.
    batches: Batches,
    run: RunState,
    history: History,
    checkpoint: PathBuf,
    /// The step of the checkpoint on disk, as far as this run knows.
    saved_step: Option<u64>,
    /// The checkpoint files this session wrote and the step each holds now.
    written: Vec<(PathBuf, u64)>,
    /// The `--stats-every` records and the last one's histograms, as `stats.json` holds them
    /// (a resumed run's earlier ones first).
    stats: crate::stats::Kept,
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

/// Refuses a flag given with `--resume` whose value differs from the checkpoint's.
fn agree<T: PartialEq + std::fmt::Display>(
    flag: &str,
    what: &str,
    given: Option<T>,
    saved: T,
    path: &Path,
) -> Result<()> {
    match given {
        Some(g) if g != saved => bail!(
            "{flag} {g} contradicts the checkpoint's {what} {saved} ({}); drop the flag or start a new --out",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// A run ready to train: its parameters, state, history, model size and data.
struct Start {
    params: Vec<f32>,
    /// The optimiser's state (AdamW's m then v; empty for SGD).
    opt_state: Vec<f32>,
    run: RunState,
    history: History,
    dims: Dims,
    ds: Dataset,
    /// Whether the checkpoint it comes from holds calibrated batchnorm statistics (a finished
    /// run).
    calibrated: bool,
    /// The batches from the run's step on (`None`: a resume, replayed once it is known to train).
    batches: Option<Batches>,
}

/// The run in `checkpoint` to continue, the flags checked against it (see [`resume_config`]),
/// its data against the word list (see [`check_data`]), and `--lr` applied and recorded.
fn resumed(a: &TrainArgs, checkpoint: &Path) -> Result<Start> {
    let ck =
        Checkpoint::load(checkpoint).context("--resume needs the checkpoint of an earlier run")?;
    let Some(run) = ck.run.clone() else {
        bail!(
            "{}: the checkpoint has no training state to resume",
            checkpoint.display()
        );
    };
    let mut history = match &ck.history {
        None => History {
            start: run.step,
            ..History::default()
        },
        Some(text) => History::from_text(text).with_context(|| {
            format!(
                "{}: the metadata history is not the trainer's text; start a new --out",
                checkpoint.display()
            )
        })?,
    };
    let mut run = resume_config(a, checkpoint, &ck, run)?;
    cli::memory::check_training(ck.dims, run.batch_size, 0)?;
    let ds = load_data(&a.input, ck.dims.context)?;
    check_data(a, checkpoint, &ck, &run, &ds)?;
    if let Some(lr) = a.lr.filter(|&lr| lr != run.lr) {
        println!(
            "--lr {lr} replaces the checkpoint's {} from step {} on (recorded in its lr_changes)",
            run.lr, run.step
        );
        history.lr_changes.push((run.step, lr));
        run.lr = lr;
    }
    // the seconds of the earlier sessions, if their file is there
    history.train_seconds = fs::read_to_string(a.out.join(SECONDS_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .unwrap_or(0.0);
    Ok(Start {
        batches: None,
        calibrated: ck.bn.is_some(),
        params: ck.params,
        opt_state: ck.opt_state,
        run,
        history,
        dims: ck.dims,
        ds,
    })
}

impl<'a> Trainer<'a> {
    /// Checks the flags, loads the data, and starts a fresh run (the notebook's init) or
    /// resumes the checkpoint in `--out`. `None`: a resume with nothing to do (it said so).
    pub fn start(a: &'a TrainArgs, threads: usize) -> Result<Option<Self>> {
        let checkpoint = a.out.join("model.safetensors");
        let kernels = kernels(a.isa)?;
        if let Some(lr) = a.lr {
            if !(lr.is_finite() && lr > 0.0) {
                bail!("--lr {lr} must be a finite number > 0");
            }
        }
        let (lock, st) = if a.resume {
            if !a.out.is_dir() {
                bail!(
                    "--resume: {} is not a directory; pass the --out of the run to continue",
                    a.out.display()
                );
            }
            let lock = prepare_out(&a.out)?;
            crate::checkpoint::remove_stale_temp_files(&checkpoint);
            (lock, resumed(a, &checkpoint)?)
        } else {
            // the flags and the data first: a bad one creates no directory
            let (run, dims, ds) = fresh_config(a)?;
            let lock = prepare_out(&a.out)?;
            crate::checkpoint::remove_stale_temp_files(&checkpoint);
            let mut params = vec![0f32; dims.num_params()];
            let batches = Batches::init(run.generator, run.seed, dims, &mut params)?;
            let history = History::default();
            let calibrated = false;
            let opt_state = vec![0f32; run.optimizer.state_len(dims.num_params())];
            (
                lock,
                Start {
                    params,
                    opt_state,
                    run,
                    history,
                    dims,
                    ds,
                    calibrated,
                    batches: Some(batches),
                },
            )
        };
        let Start {
            params,
            opt_state,
            run,
            history,
            dims,
            ds,
            calibrated,
            batches,
        } = st;
        if a.resume {
            if run.step >= run.steps && calibrated {
                println!(
                    "{} is at step {} of {}: nothing to do (pass a larger --steps to train further); nothing was rewritten",
                    checkpoint.display(),
                    run.step,
                    run.steps
                );
                return Ok(None);
            }
            println!(
                "resuming from step {} of {}",
                run.step,
                checkpoint.display()
            );
        }
        let batches = match batches {
            Some(b) => b,
            None => Batches::resume(
                run.generator,
                run.seed,
                dims,
                run.step,
                run.batch_size,
                ds.train.len(),
            )?,
        };
        if a.eval_every > 0 {
            ds.nonempty("val", &a.input)
                .context("--eval-every needs a val split to evaluate")?;
        }
        // a resumed run continues its records up to the checkpoint's step; a new run's
        // stats.json is its own (an earlier run's goes)
        let stats = if a.resume {
            crate::stats::read_before(&a.out, run.step)?
        } else {
            crate::stats::remove_earlier(&a.out)?;
            crate::stats::Kept::default()
        };
        if ds.train.len() < run.batch_size {
            println!(
                "note: the training split has {} examples, fewer than the batch size {}: each batch repeats examples",
                ds.train.len(),
                run.batch_size
            );
        }
        let bytes = 4 * (dims.num_params() + opt_state.len() + 2 * dims.hidden) as u64 + (1 << 16);
        check_space(&a.out, bytes)?;
        println!("parameters: {}", dims.num_params());
        println!("instruction set: {}", kernels.isa());
        // the exact kernels' implementations (the same bits either way): see Kernels::new
        let exact = kernels.exact_choices().map(|(k, imp)| format!("{k} {imp}"));
        println!("exact kernels: {}", exact.join(", "));
        Ok(Some(Trainer {
            _lock: lock,
            args: a,
            threads,
            kernels,
            saved_step: a.resume.then_some(run.step),
            ds,
            dims,
            params,
            opt_state,
            batches,
            run,
            history,
            checkpoint,
            written: Vec::new(),
            stats,
            steps_this_run: 0,
            train_seconds: 0.0,
        }))
    }

    /// Steps until the run's `steps`: each draws batch `step` from its own stream, runs the
    /// core's step (the batch in shards of 64 rows on the pool's threads from 128 rows on, else
    /// one shard on this thread: the cut depends on the batch size only, so the bits do not
    /// depend on `--threads`), and stops with a clear error on a non-finite loss or parameter.
    /// SIGINT / SIGTERM end the loop after the current step: the checkpoint is saved and the
    /// exit code (130 / 143) returned.
    pub fn run_steps(&mut self) -> Result<Option<ExitCode>> {
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
        let steps = self.run.steps;
        let bar = progress_bar(steps, self.run.step);
        let log = |line: String| match &bar {
            Some(b) => b.suspend(|| println!("{line}")),
            None => println!("{line}"),
        };
        let t0 = Instant::now();
        let first_step = self.run.step;
        let mut stop = None;
        while self.run.step < steps {
            let s = self.run.step;
            self.batches.fill(&self.ds.train, s, &mut xb, &mut yb)?;
            let lr = lr_at(&self.run, s);
            let p = ParamsRef::from_flat(dims, &self.params)?;
            let loss = if sharded {
                k.gradient(&Rayon, &p, &mut step, &xb, &yb)?
            } else {
                k.gradient(&InTurn, &p, &mut step, &xb, &yb)?
            };
            if let Some(max) = self.run.grad_clip {
                k.clip_grad_norm(step.grads_mut(), max)?;
            }
            if self.args.stats_every > 0 && s.is_multiple_of(self.args.stats_every) {
                // on the gradient the update applies, before it moves the parameters
                let p = ParamsRef::from_flat(dims, &self.params)?;
                let stats = k.step_stats(&p, &mut step, lr)?;
                let record = crate::stats::Record { step: s, lr, stats };
                log(record.health_line());
                for w in record.warnings() {
                    log(w);
                }
                self.stats.records.push(record);
                if s + self.args.stats_every >= steps {
                    // the run's last record: the histograms of h and of the gradients
                    let mut h = vec![0f32; n * dims.hidden];
                    k.step_h(&p, &mut step, &mut h)?;
                    let grads = ParamsRef::from_flat(dims, step.grads())?;
                    self.stats.end = Some(crate::stats::end_json(s, &h, grads.tensors()));
                }
            }
            let mut p = ParamsMut::from_flat(dims, &mut self.params)?;
            k.update(
                &self.run.optimizer,
                &mut p,
                step.grads(),
                &mut self.opt_state,
                s + 1,
                lr,
            )?;
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
            let h = &mut self.history;
            h.open.0 += loss as f64;
            h.open.1 += 1;
            if h.open.1 == WINDOW {
                h.windows.push(h.open.0);
                h.open = (0.0, 0);
            }
            let every = |n: u64| n > 0 && s.is_multiple_of(n);
            if every(self.args.log_every) {
                log(format!("{s:7}/{steps:7}: {loss:.4}"));
            }
            let done = self.run.step;
            let after = |n: u64| n > 0 && done.is_multiple_of(n);
            if after(self.args.eval_every) {
                let line = self.evaluate_val()?;
                log(line);
            }
            if after(self.args.sample_every) {
                let line = self.sample_line()?;
                log(line);
            }
            if let Some(b) = &bar {
                if done.is_multiple_of(256) {
                    b.set_position(done);
                }
            }
            if done < steps {
                stop = interrupted();
                if stop.is_some() || after(self.args.checkpoint_every) {
                    self.train_seconds = t0.elapsed().as_secs_f64();
                    self.save(None)?;
                }
                if stop.is_some() {
                    self.draw_stats()?;
                    break;
                }
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
        if let Some((signal, code)) = stop {
            println!(
                "{signal}: stopped after step {} of {steps}; saved {} (without calibrated batchnorm). Resume with:\n  {}",
                self.run.step,
                self.checkpoint.display(),
                self.resume_command()
            );
            return Ok(Some(ExitCode::from(code)));
        }
        Ok(None)
    }

    /// The command that continues this run.
    fn resume_command(&self) -> String {
        let exe = std::env::args().next().unwrap_or_else(|| "makemore".into());
        let mut cmd = vec![
            exe,
            "train".into(),
            "--resume".into(),
            "--out".into(),
            self.args.out.display().to_string(),
            "--input".into(),
            self.args.input.display().to_string(),
        ];
        if self.run.steps != DEFAULT_STEPS {
            cmd.extend(["--steps".into(), self.run.steps.to_string()]);
        }
        // stats.json's records go on only with the flag
        if self.args.stats_every > 0 {
            cmd.extend(["--stats-every".into(), self.args.stats_every.to_string()]);
        }
        cmd.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Calibrates batchnorm on the train split and records the val loss; a new best is saved
    /// as `best.safetensors`. Returns the log line.
    fn evaluate_val(&mut self) -> Result<String> {
        let splits = [&self.ds.train, &self.ds.val].map(|e| (&e.x[..], &e.y[..]));
        let (bnmean, bnvar, losses) =
            calibrate_and_evaluate(&self.kernels, self.params_ref()?, &splits, 0)?;
        let (step, val) = (self.run.step, losses[1]);
        let best = self.history.best_val();
        self.history.val.push((step, val));
        let mut line = format!("{step:7}: val loss {val:.4}");
        if val.is_finite() && best.is_none_or(|(_, b)| val < b) {
            let path = self.args.out.join("best.safetensors");
            self.checkpoint_with(Some((bnmean, bnvar)))
                .save(&path)
                .context("saving the best checkpoint")?;
            self.record_written(path.clone());
            let _ = write!(line, " (best so far: {})", path.display());
        }
        Ok(line)
    }

    /// A few names sampled with batchnorm calibrated on the train split, as a log line.
    fn sample_line(&self) -> Result<String> {
        let p = self.params_ref()?;
        let (bnmean, bnvar) = calibrate(&self.kernels, p, &self.ds.train.x)?;
        let draw = cli::draw::Draw {
            count: SAMPLES_DURING_TRAINING,
            seed: SAMPLE_SEED,
            generator: self.run.generator,
            temperature: 1.0,
            top_k: 0,
            prefix: "",
        };
        let mut names = Vec::new();
        cli::draw::for_each_block(p, &bnmean, &bnvar, &self.ds.vocab, &draw, |block| {
            names.extend_from_slice(block);
            true
        })?;
        Ok(format!("{:7}: samples {}", self.run.step, names.join(" ")))
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
        for (i, (name, label)) in [
            ("train", "train loss"),
            ("val", "val loss  "),
            ("test", "test loss "),
        ]
        .into_iter()
        .enumerate()
        {
            match self.ds.nonempty(name, &self.args.input) {
                Ok(_) => println!("{label} {:.4}", losses[i]),
                Err(e) => println!("{label} none: {e:#}"),
            }
        }
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
        self.draw_stats()?;
        let (a, ds, dims, run, h) = (self.args, &self.ds, self.dims, &self.run, &self.history);
        let schedule = match run.schedule {
            Schedule::Step => {
                serde_json::json!({"name": "step", "lr": json_f32(run.lr), "decay_step": run.lr_decay_step, "decayed_lr": json_f32(run.lr / 10.0)})
            }
            Schedule::Cosine {
                warmup,
                total,
                min_lr,
            } => {
                serde_json::json!({"name": "cosine", "lr": json_f32(run.lr), "warmup": warmup, "total": total, "min_lr": json_f32(min_lr)})
            }
        };
        let optimizer = match run.optimizer {
            Optimizer::Sgd => serde_json::json!({"name": "sgd"}),
            Optimizer::AdamW(w) => {
                serde_json::json!({"name": "adamw", "beta1": json_f32(w.beta1), "beta2": json_f32(w.beta2),
                                                      "eps": json_f32(w.eps), "weight_decay": json_f32(w.weight_decay)})
            }
        };
        let metrics = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "input": a.input.display().to_string(),
            "data_fingerprint": format!("fnv1a64:{:016x}", fingerprint(&ds.split)),
            "examples": {"train": ds.train.len(), "val": ds.val.len(), "test": ds.test.len()},
            "params": dims.num_params(),
            "config": {"vocab": dims.vocab, "context": dims.context, "embedding": dims.embedding, "hidden": dims.hidden,
                       "batch_size": run.batch_size, "steps": run.steps, "lr": json_f32(run.lr), "lr_decay_step": run.lr_decay_step,
                       "lr_schedule": schedule, "optimizer": optimizer, "grad_clip": run.grad_clip.map(json_f32), "seed": run.seed, "rng": run.generator.name()},
            "lr_changes": h.lr_changes.iter().map(|(s, l)| serde_json::json!({"step": s, "lr": json_f32(*l)})).collect::<Vec<_>>(),
            "steps": run.step,
            "steps_this_run": self.steps_this_run,
            "train_loss": eval.losses[0],
            "val_loss": eval.losses[1],
            "test_loss": eval.losses[2],
            "val_losses": h.val.iter().map(|(s, l)| serde_json::json!({"step": s, "val_loss": l})).collect::<Vec<_>>(),
            "best_val": h.best_val().map(|(s, l)| serde_json::json!({"step": s, "val_loss": l, "path": a.out.join("best.safetensors").display().to_string()})),
            "checkpoints": self.written.iter().map(|(p, s)| serde_json::json!({"path": p.display().to_string(), "step": s})).collect::<Vec<_>>(),
            "train_seconds": self.total_seconds(),
            "train_seconds_this_run": self.train_seconds,
            "steps_per_second": self.steps_per_second(),
            "eval_seconds": eval.seconds,
            "threads": self.threads,
            "training_step": self.step_kind(),
            "isa": self.kernels.isa().name(),
            "exact_kernels": serde_json::Map::from_iter(self.kernels.exact_choices().map(|(k, imp)| (k.to_string(), imp.name().into()))),
        });
        crate::checkpoint::write_atomic(
            &a.out.join("metrics.json"),
            serde_json::to_string_pretty(&metrics)?.as_bytes(),
        )?;
        let (curve, val) = (h.curve(), h.val_curve());
        write_csv(&a.out.join("loss.csv"), &curve, &val).context("writing loss.csv")?;
        let marker = matches!(run.schedule, Schedule::Step) && run.lr_decay_step < run.steps;
        write_loss_svg(
            &a.out.join("loss.svg"),
            "training loss (mean over 1000-step windows)",
            &curve,
            &val,
            marker.then_some((run.lr_decay_step, "lr / 10")),
        )
        .context("writing loss.svg")?;
        if a.samples > 0 {
            let prov = Provenance::new(&ds.split);
            let draw = cli::draw::Draw {
                count: a.samples,
                seed: SAMPLE_SEED,
                generator: self.run.generator,
                temperature: 1.0,
                top_k: 0,
                prefix: "",
            };
            println!("samples:");
            let (bnmean, bnvar) = (&eval.bnmean, &eval.bnvar);
            cli::draw::for_each_block(
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
            "wrote {}, metrics.json, loss.csv, loss.svg{}",
            self.checkpoint.display(),
            if self.stats.is_empty() {
                ""
            } else {
                ", stats.json, stats.svg, stats.png"
            }
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

    /// The checkpoint of the run as it stands, with `bn` (calibrated) if given.
    fn checkpoint_with(&self, bn: Option<(Vec<f32>, Vec<f32>)>) -> Checkpoint {
        let history = &self.history;
        Checkpoint {
            dims: self.dims,
            params: self.params.clone(),
            bn,
            vocab: Some(self.ds.vocab.clone()),
            run: Some(self.run.clone()),
            history: Some(history.to_text()),
            opt_state: self.opt_state.clone(),
        }
    }

    /// Saves the parameters, the run state and history and (once calibrated) the batchnorm
    /// statistics. A failed save says what is left on disk.
    fn save(&mut self, bn: Option<(Vec<f32>, Vec<f32>)>) -> Result<()> {
        if let Err(e) = self.checkpoint_with(bn).save(&self.checkpoint) {
            bail!("{e:#}; {}", self.last_saved());
        }
        let seconds = format!("{}\n", self.total_seconds());
        crate::checkpoint::write_atomic(&self.args.out.join(SECONDS_FILE), seconds.as_bytes())?;
        if !self.stats.is_empty() {
            crate::stats::write(&self.args.out, self.args.stats_every, &self.stats)
                .context("writing stats.json")?;
        }
        self.saved_step = Some(self.run.step);
        self.record_written(self.checkpoint.clone());
        Ok(())
    }

    /// `stats.svg` and `stats.png`, when the run has statistics: at its end or when stopped
    /// (drawing them takes longer than a checkpoint, so not with each one).
    fn draw_stats(&self) -> Result<()> {
        if self.stats.is_empty() {
            return Ok(());
        }
        crate::stats::draw(&self.args.out, &self.stats).context("drawing stats.svg and stats.png")
    }

    /// Records that `path` now holds the run at its current step (one entry per file).
    fn record_written(&mut self, path: PathBuf) {
        let step = self.run.step;
        match self.written.iter_mut().find(|(p, _)| *p == path) {
            Some(w) => w.1 = step,
            None => self.written.push((path, step)),
        }
    }

    /// Seconds in the step loop over the whole run, this session included.
    fn total_seconds(&self) -> f64 {
        self.history.train_seconds + self.train_seconds
    }

    /// What a stopped run left on disk, for its error message.
    fn last_saved(&self) -> String {
        match self.saved_step {
            Some(s) => format!(
                "{} (step {s}) is untouched: resume from it with --resume",
                self.checkpoint.display()
            ),
            None => format!(
                "this run saved nothing to {} (an earlier file there is untouched)",
                self.checkpoint.display()
            ),
        }
    }
}

/// An `f32` as the JSON number of its shortest text (0.05, not 0.05000000074505806).
fn json_f32(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Quotes `s` for a POSIX shell when it holds anything but safe characters.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The config of a new run from the flags and the defaults, with the data loaded.
fn fresh_config(a: &TrainArgs) -> Result<(RunState, Dims, Dataset)> {
    let context = a.context.unwrap_or(DEFAULT_CONTEXT);
    let (embedding, hidden) = (
        a.embedding.unwrap_or(DEFAULT_EMBEDDING),
        a.hidden.unwrap_or(DEFAULT_HIDDEN),
    );
    let batch_size = a.batch_size.unwrap_or(DEFAULT_BATCH);
    check_range("--hidden", hidden, HIDDEN)?;
    check_range("--embedding", embedding, EMBEDDING)?;
    check_range("--context", context, CONTEXT)?;
    check_range("--batch-size", batch_size, BATCH)?;
    let steps = a.steps.unwrap_or(DEFAULT_STEPS);
    let lr = a.lr.unwrap_or(DEFAULT_LR);
    let schedule = match a.lr_schedule.unwrap_or(ScheduleChoice::Step) {
        ScheduleChoice::Step => {
            for (flag, given) in [
                ("--warmup", a.warmup.is_some()),
                ("--min-lr", a.min_lr.is_some()),
            ] {
                if given {
                    bail!("{flag} applies to --lr-schedule cosine only; add --lr-schedule cosine or drop {flag}");
                }
            }
            Schedule::Step
        }
        ScheduleChoice::Cosine => {
            let warmup = a.warmup.unwrap_or(0);
            let min_lr = a.min_lr.unwrap_or(lr / 10.0);
            if !(min_lr.is_finite() && min_lr >= 0.0 && min_lr <= lr) {
                bail!("--min-lr {min_lr} must be a finite number from 0 to --lr {lr}");
            }
            if warmup > steps {
                bail!("--warmup {warmup} is more than --steps {steps}: use at most {steps}");
            }
            Schedule::Cosine {
                warmup,
                total: steps,
                min_lr,
            }
        }
    };
    let optimizer = match a.optimizer.unwrap_or(OptimizerChoice::Sgd) {
        OptimizerChoice::Sgd => {
            if let Some(w) = a.weight_decay {
                bail!("--weight-decay {w} applies to --optimizer adamw only; add --optimizer adamw or drop --weight-decay");
            }
            Optimizer::Sgd
        }
        OptimizerChoice::Adamw => {
            let a = AdamW {
                weight_decay: a.weight_decay.unwrap_or(AdamW::MAKEMORE.weight_decay),
                ..AdamW::MAKEMORE
            };
            if !(a.weight_decay.is_finite() && a.weight_decay >= 0.0) {
                bail!(
                    "--weight-decay {} must be a finite number >= 0 (makemore.py uses 0.01)",
                    a.weight_decay
                );
            }
            Optimizer::AdamW(a)
        }
    };
    if let Some(c) = a.grad_clip {
        if !(c.is_finite() && c > 0.0) {
            bail!("--grad-clip {c} must be a finite number > 0 (the largest global gradient norm; e.g. 1.0)");
        }
    }
    let ds = load_data(&a.input, context)?;
    let dims = Dims {
        vocab: ds.vocab.len(),
        context,
        embedding,
        hidden,
    };
    cli::memory::check_training(dims, batch_size, optimizer.state_len(dims.num_params()))?;
    let run = RunState {
        step: 0,
        seed: a.seed.unwrap_or(TRAIN_SEED),
        steps,
        batch_size,
        lr,
        lr_decay_step: a.lr_decay_step.unwrap_or(DEFAULT_LR_DECAY_STEP),
        schedule,
        fingerprint: Some(fingerprint(&ds.split)),
        optimizer,
        grad_clip: a.grad_clip,
        generator: a.rng.map_or(Generator::Pcg, Generator::from),
    };
    Ok((run, dims, ds))
}

/// The run state to continue: the checkpoint's, every flag given checked against it, `--steps`
/// (if given) the new end. (`--lr` is applied by the caller.)
fn resume_config(a: &TrainArgs, path: &Path, ck: &Checkpoint, run: RunState) -> Result<RunState> {
    agree(
        "--embedding",
        "embedding",
        a.embedding,
        ck.dims.embedding,
        path,
    )?;
    agree("--hidden", "hidden size", a.hidden, ck.dims.hidden, path)?;
    agree("--context", "context", a.context, ck.dims.context, path)?;
    agree(
        "--batch-size",
        "batch size",
        a.batch_size,
        run.batch_size,
        path,
    )?;
    agree("--seed", "seed", a.seed, run.seed, path)?;
    agree(
        "--rng",
        "random generator",
        a.rng.map(Generator::from),
        run.generator,
        path,
    )?;
    agree(
        "--lr-decay-step",
        "lr decay step",
        a.lr_decay_step,
        run.lr_decay_step,
        path,
    )?;
    let (name, warmup, min_lr) = match run.schedule {
        Schedule::Step => ("step", None, None),
        Schedule::Cosine { warmup, min_lr, .. } => ("cosine", Some(warmup), Some(min_lr)),
    };
    let given_name = a.lr_schedule.map(|s| match s {
        ScheduleChoice::Step => "step",
        ScheduleChoice::Cosine => "cosine",
    });
    agree("--lr-schedule", "lr schedule", given_name, name, path)?;
    for (flag, what, g, s) in [
        (
            "--warmup",
            "warmup",
            a.warmup.map(|w| w.to_string()),
            warmup.map(|w| w.to_string()),
        ),
        (
            "--min-lr",
            "min lr",
            a.min_lr.map(|w| w.to_string()),
            min_lr.map(|w| w.to_string()),
        ),
    ] {
        match (g, s) {
            (Some(g), None) => bail!(
                "{flag} {g} contradicts the checkpoint's lr schedule step ({}); drop the flag or start a new --out",
                path.display()
            ),
            (g, Some(s)) => agree(flag, what, g, s, path)?,
            (None, None) => {}
        }
    }
    let (opt_name, wd) = match run.optimizer {
        Optimizer::Sgd => ("sgd", None),
        Optimizer::AdamW(w) => ("adamw", Some(w.weight_decay)),
    };
    let given_opt = a.optimizer.map(|o| match o {
        OptimizerChoice::Sgd => "sgd",
        OptimizerChoice::Adamw => "adamw",
    });
    agree("--optimizer", "optimizer", given_opt, opt_name, path)?;
    match (a.weight_decay, wd) {
        (Some(g), None) => bail!(
            "--weight-decay {g} contradicts the checkpoint's optimizer sgd ({}); drop the flag or start a new --out",
            path.display()
        ),
        (g, Some(s)) => agree("--weight-decay", "weight decay", g, s, path)?,
        (None, None) => {}
    }
    let show = |c: Option<f32>| c.map_or("none".to_string(), |c| c.to_string());
    if a.grad_clip.is_some() && a.grad_clip != run.grad_clip {
        bail!(
            "--grad-clip {} contradicts the checkpoint's grad clip {} ({}); drop the flag or start a new --out",
            show(a.grad_clip),
            show(run.grad_clip),
            path.display()
        );
    }
    Ok(RunState {
        steps: a.steps.unwrap_or(run.steps),
        ..run
    })
}

/// Refuses to resume on other data: the vocabulary and the fingerprint of the words and their
/// split must be the checkpoint's.
fn check_data(
    a: &TrainArgs,
    path: &Path,
    ck: &Checkpoint,
    run: &RunState,
    ds: &Dataset,
) -> Result<()> {
    if ck.vocab.as_ref() != Some(&ds.vocab) {
        bail!(
            "{}: the checkpoint's vocabulary differs from {}'s; resume with the run's word list or start a new --out",
            path.display(),
            a.input.display()
        );
    }
    let here = fingerprint(&ds.split);
    match run.fingerprint {
        Some(f) if f != here => bail!(
            "{} holds other words than the run in {} was trained on (data fingerprint fnv1a64:{here:016x}, the checkpoint's fnv1a64:{f:016x}); resume with the run's word list or start a new --out",
            a.input.display(),
            path.display()
        ),
        _ => Ok(()),
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
        "split (Python's random.seed(42) shuffle): first word \"{}\", words {} / {} / {}",
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

/// A progress bar (drawn on stderr) when stderr is a terminal; log lines go to stdout either
/// way (through [`ProgressBar::suspend`] while the bar is shown).
fn progress_bar(steps: u64, at: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;

    fn run(schedule: Schedule) -> RunState {
        RunState {
            step: 0,
            seed: TRAIN_SEED,
            steps: 1000,
            batch_size: 32,
            lr: 0.1,
            lr_decay_step: 500,
            schedule,
            fingerprint: None,
            optimizer: Optimizer::Sgd,
            grad_clip: None,
            generator: Generator::Pcg,
        }
    }

    #[test]
    fn an_out_without_room_for_two_checkpoints_is_refused() {
        let dir = std::env::temp_dir();
        let free = fs4::available_space(&dir).expect("free space of the temp directory");
        let err = check_space(&dir, free / 2 + 1).unwrap_err().to_string();
        assert!(err.contains("two checkpoints need"), "{err}");
        assert!(err.contains("choose another --out"), "{err}");
        check_space(&dir, 1).unwrap();
    }

    #[test]
    fn the_step_schedule_is_the_notebooks_bits() {
        let r = run(Schedule::Step);
        assert_eq!(lr_at(&r, 0).to_bits(), 0.1f32.to_bits());
        assert_eq!(lr_at(&r, 499).to_bits(), 0.1f32.to_bits());
        assert_eq!(lr_at(&r, 500).to_bits(), (0.1f32 / 10.0).to_bits());
        assert_eq!(lr_at(&r, u64::MAX).to_bits(), (0.1f32 / 10.0).to_bits());
    }

    #[test]
    fn the_cosine_schedule_warms_up_then_decays_to_min_lr() {
        let r = run(Schedule::Cosine {
            warmup: 100,
            total: 1100,
            min_lr: 0.01,
        });
        assert_eq!(lr_at(&r, 0), (0.1f64 / 100.0) as f32);
        assert_eq!(lr_at(&r, 99), 0.1);
        assert_eq!(lr_at(&r, 100), 0.1);
        // half-way through the cosine: the mean of lr and min_lr
        assert!((lr_at(&r, 600) - 0.055).abs() < 1e-7, "{}", lr_at(&r, 600));
        assert_eq!(lr_at(&r, 1100), 0.01);
        assert_eq!(lr_at(&r, u64::MAX), 0.01);
        let mut last = f32::INFINITY;
        for s in 100..1100 {
            let lr = lr_at(&r, s);
            assert!(lr <= last && lr >= 0.01, "step {s}: {lr}");
            last = lr;
        }
    }

    #[test]
    fn the_history_text_round_trips_to_the_same_bits() {
        let h = History {
            start: 7,
            windows: vec![2345.678901234567, 0.1 + 0.2, f64::MIN_POSITIVE],
            open: (12.5, 999),
            val: vec![(500, 2.25), (1000, 1.0 / 3.0)],
            lr_changes: vec![(300, 0.05)],
            train_seconds: 0.0,
        };
        let text = h.to_text();
        assert_eq!(History::from_text(&text), Some(h.clone()));
        assert_eq!(
            History::from_text(&History::default().to_text()),
            Some(History::default())
        );
        for bad in [
            "",
            "windows=;open=0/0;val=;lr_changes=",
            "start=0;windows=x;open=0/0;val=;lr_changes=",
            "start=0;windows=;open=0/1000;val=;lr_changes=",
            "start=0;windows=;open=0/0;val=1;lr_changes=",
            "start=0;windows=;open=0/0;val=;lr_changes=;more",
        ] {
            assert_eq!(History::from_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_fingerprint_sees_words_order_and_split() {
        let split = |train: &[&str], val: &[&str]| Split {
            train: train.iter().map(|s| s.to_string()).collect(),
            val: val.iter().map(|s| s.to_string()).collect(),
            test: vec![],
        };
        let base = fingerprint(&split(&["ab", "c"], &["d"]));
        assert_eq!(base, fingerprint(&split(&["ab", "c"], &["d"])));
        for other in [
            split(&["a", "bc"], &["d"]),
            split(&["c", "ab"], &["d"]),
            split(&["ab"], &["c", "d"]),
            split(&["ab", "c"], &["e"]),
        ] {
            assert_ne!(base, fingerprint(&other));
        }
    }
}
