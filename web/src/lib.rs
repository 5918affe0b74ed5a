//! makemore in a browser tab: the core and the CLI's data pipeline (vocabulary, the notebook's
//! split, batches, checkpoints, evaluation, sampling, the gradient check) behind a small C ABI
//! that the page's worker calls (`web/makemore.js`; the exports are listed in `web/API.md`).
//!
//! Everything runs through the same code as `makemore`: a run started with a seed here draws the
//! initialisation and the batches `makemore train --seed` draws and takes the same step, so with
//! the scalar path its losses equal `makemore train --isa scalar`'s bit for bit (wasm's f32 and
//! f64 are IEEE, and the core has its own exp and tanh).
//!
//! One session per module instance (the page has one worker): the word list, then the model.
//! Inputs come through one buffer the caller fills ([`mm_alloc`]); results go to one output
//! buffer ([`mm_out_ptr`], [`mm_out_len`]). Nothing here is `unsafe`.

use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use cli::batch::{fill_batch, pcg_init};
use cli::checkpoint::{fingerprint, lr_at, Checkpoint, RunState};
use cli::data::{parse_words, Vocab};
use cli::dataset::{Dataset, Provenance};
use cli::draw::{pcg_blocks, Draw};
use cli::eval::{calibrate_and_evaluate_by, Contexts};
use cli::gradcheck_table;
use makemore_core::checkpoint::Schedule;
use makemore_core::optim::Optimizer;
use makemore_core::rng::Generator;
use makemore_core::simd::{Isa, Kernels};
use makemore_core::step::{InTurn, Step};
use makemore_core::{Dims, ParamsMut, ParamsRef};

use json::{obj, Json};

pub mod json;

/// Examples per batch (the notebook's).
pub const BATCH: usize = 32;
/// Steps per window of the loss curve (as `makemore train`'s `loss.csv`).
pub const WINDOW: u64 = 1000;

/// The Exercise-4 model for a vocabulary of `vocab` symbols.
fn exercise4(vocab: usize) -> Dims {
    Dims {
        vocab,
        ..Dims::EXERCISE4
    }
}

/// `isa` as the page numbers it: 0 scalar, 1 simd128.
pub fn isa_of(code: u32) -> Result<Isa> {
    match code {
        0 => Ok(Isa::Scalar),
        1 => Isa::parse("simd128").context("this build has no simd128 path"),
        _ => bail!("unknown instruction set {code}: use 0 (scalar) or 1 (simd128)"),
    }
}

/// A model being trained or loaded.
pub struct Model {
    pub dims: Dims,
    pub params: Vec<f32>,
    pub kernels: Kernels,
    /// The run (seed, steps, learning rate and schedule, the step reached); `None` for a loaded
    /// checkpoint that has none (e.g. PyTorch's), which cannot be trained on. Always a PCG run
    /// (batch `s` from the stream (seed, s), [`fill_batch`]): the page trains no other.
    pub run: Option<RunState>,
    opt_state: Vec<f32>,
    /// Calibrated batchnorm statistics (mean, variance), once evaluated or loaded.
    pub bn: Option<(Vec<f32>, Vec<f32>)>,
    pub vocab: Vocab,
    /// The mean loss of each complete window of [`WINDOW`] steps from `windows_from` on.
    pub windows: Vec<f64>,
    /// The step the first window starts at: 0, or for a loaded run the first multiple of
    /// [`WINDOW`] at or after its step, so that the windows are `makemore train`'s loss.csv rows.
    pub windows_from: u64,
    /// The sum and count of the window being filled.
    open: (f64, u64),
    /// The last minibatch loss.
    pub loss: f32,
}

/// The word list and the model.
#[derive(Default)]
pub struct Session {
    pub ds: Option<Dataset>,
    pub model: Option<Model>,
}

impl Session {
    fn ds(&self) -> Result<&Dataset> {
        self.ds
            .as_ref()
            .context("no word list is loaded: load names.txt or pick a word list first")
    }

    fn model(&self) -> Result<&Model> {
        self.model
            .as_ref()
            .context("no model: start training or load a checkpoint first")
    }

    /// Reads a word list (the CLI's rules: UTF-8, the notebook's line splitting, no control
    /// characters) and builds its vocabulary, split and examples (context 3). Drops the model.
    pub fn load_words(&mut self, bytes: &[u8]) -> Result<Json> {
        let words = parse_words(bytes, "the word list".as_ref())?;
        let ds = Dataset::from_words(words, exercise4(0).context)?;
        let info = obj([
            ("words", ds.words.into()),
            ("duplicates", ds.duplicates.into()),
            ("blank_lines", ds.blank_lines.into()),
            (
                "vocab",
                ds.vocab.symbols().iter().collect::<String>().into(),
            ),
            ("train", ds.train.len().into()),
            ("val", ds.val.len().into()),
            ("test", ds.test.len().into()),
        ]);
        self.ds = Some(ds);
        self.model = None;
        Ok(info)
    }

    /// A fresh Exercise-4 run: the initialisation `makemore train --seed seed` draws, with the
    /// notebook's step schedule (`lr`, then `lr / 10` from `decay_step`).
    pub fn init(
        &mut self,
        seed: u64,
        isa: Isa,
        steps: u64,
        lr: f32,
        decay_step: u64,
    ) -> Result<Json> {
        let ds = self.ds()?;
        ds.nonempty("train", "the word list".as_ref())?;
        if !(lr.is_finite() && lr > 0.0) {
            bail!("the learning rate {lr} must be a finite number > 0");
        }
        let kernels = Kernels::new(isa)?;
        let dims = exercise4(ds.vocab.len());
        let mut params = vec![0f32; dims.num_params()];
        pcg_init(seed, dims, &mut params)?;
        let run = RunState {
            step: 0,
            seed,
            generator: Generator::Pcg,
            steps,
            batch_size: BATCH,
            lr,
            lr_decay_step: decay_step,
            schedule: Schedule::Step,
            fingerprint: Some(fingerprint(&ds.split)),
            optimizer: Optimizer::Sgd,
            grad_clip: None,
        };
        let model = Model {
            dims,
            params,
            kernels,
            run: Some(run),
            opt_state: Vec::new(),
            bn: None,
            vocab: ds.vocab.clone(),
            windows: Vec::new(),
            windows_from: 0,
            open: (0.0, 0),
            loss: f32::NAN,
        };
        let info = obj([
            ("params", dims.num_params().into()),
            ("isa", isa.name().into()),
            ("step", 0u64.into()),
            ("steps", steps.into()),
        ]);
        self.model = Some(model);
        Ok(info)
    }

    /// At most `max_steps` more steps of `makemore train`'s loop (batch `s` from the stream
    /// (seed, s), the core's step on one thread, SGD at the schedule's rate), stopping at the
    /// run's `steps` or with an error on a non-finite loss or parameter.
    pub fn train(&mut self, max_steps: u32) -> Result<Json> {
        let ds = self.ds.as_ref().context("no word list is loaded")?;
        let m = self
            .model
            .as_mut()
            .context("no model: start training first")?;
        let Some(run) = m.run.as_mut() else {
            bail!("this model was loaded without its training state: it can be evaluated and sampled, not trained");
        };
        let (dims, k) = (m.dims, m.kernels);
        let mut scratch = vec![0f32; Step::flat_len(&dims, BATCH).context("batch too large")?];
        let mut step = Step::from_flat(dims, BATCH, &mut scratch)?;
        let mut xb = [0u8; BATCH * 3];
        let mut yb = [0u8; BATCH];
        let end = run.steps.min(run.step + u64::from(max_steps));
        while run.step < end {
            let s = run.step;
            fill_batch(&ds.train, run.seed, s, &mut xb, &mut yb)?;
            let lr = lr_at(run, s);
            let p = ParamsRef::from_flat(dims, &m.params)?;
            let loss = k.gradient(&InTurn, &p, &mut step, &xb, &yb)?;
            let mut p = ParamsMut::from_flat(dims, &mut m.params)?;
            // SGD: the page's runs have no other optimiser (init, and load_checkpoint keeps
            // the run of an SGD checkpoint only)
            k.update_sgd(&mut p, step.grads(), s + 1, lr)?;
            if !loss.is_finite() {
                bail!("the loss became {loss} at step {s}; training stopped. Try a smaller learning rate");
            }
            if let Some((name, i, x)) = cli::checkpoint::first_non_finite(&k, dims, &m.params) {
                bail!("a gradient was not finite at step {s} (the update made {name}[{i}] {x}); training stopped. Try a smaller learning rate");
            }
            run.step += 1;
            m.loss = loss;
            m.bn = None;
            if s >= m.windows_from {
                m.open.0 += f64::from(loss);
                m.open.1 += 1;
                if m.open.1 == WINDOW {
                    m.windows.push(m.open.0 / WINDOW as f64);
                    m.open = (0.0, 0);
                }
            }
        }
        Ok(obj([
            ("step", run.step.into()),
            ("steps", run.steps.into()),
            ("loss", m.loss.into()),
            ("lr", lr_at(run, run.step).into()),
            ("windows", m.windows.clone().into()),
            ("windows_from", m.windows_from.into()),
            ("done", (run.step >= run.steps).into()),
        ]))
    }

    /// Batchnorm calibration over the train split, then the loss of each split (`makemore
    /// train`'s evaluation, on one thread: the same bits).
    pub fn evaluate(&mut self) -> Result<Json> {
        let ds = self.ds.as_ref().context("no word list is loaded")?;
        let m = self
            .model
            .as_mut()
            .context("no model: train or load one first")?;
        if ds.vocab.symbols() != m.vocab.symbols() {
            bail!(
                "the model's vocabulary \"{}\" is not the word list's \"{}\"",
                m.vocab.symbols().iter().collect::<String>(),
                ds.vocab.symbols().iter().collect::<String>()
            );
        }
        if m.dims.context != ds.train.context {
            bail!(
                "the model's context is {} characters; the page's examples have {}",
                m.dims.context,
                ds.train.context
            );
        }
        let splits = [&ds.train, &ds.val, &ds.test].map(|e| (&e.x[..], &e.y[..]));
        let p = ParamsRef::from_flat(m.dims, &m.params)?;
        // Context 3 over at most 64 symbols: always within the dense path's key space.
        let (bnmean, bnvar, losses) =
            calibrate_and_evaluate_by(Contexts::dense, &m.kernels, p, &splits, 0)?;
        m.bn = Some((bnmean, bnvar));
        Ok(obj([
            ("train", losses[0].into()),
            ("val", losses[1].into()),
            ("test", losses[2].into()),
        ]))
    }

    /// `count` names drawn as `makemore sample --seed seed` draws them, each marked with where
    /// it occurs in the split.
    pub fn sample(&mut self, count: u32, seed: u64, temperature: f32, top_k: u32) -> Result<Json> {
        let prov = self.ds.as_ref().map(|ds| Provenance::new(&ds.split));
        let m = self.model()?;
        let Some((bnmean, bnvar)) = &m.bn else {
            bail!("the model's batchnorm is not calibrated: evaluate it first");
        };
        let draw = Draw {
            count: count as usize,
            seed,
            generator: Generator::Pcg,
            temperature,
            top_k: top_k as usize,
            prefix: "",
        };
        let mut out = Vec::new();
        let p = ParamsRef::from_flat(m.dims, &m.params)?;
        pcg_blocks(p, bnmean, bnvar, &m.vocab, &draw, |names| {
            for name in names {
                let from = prov.as_ref().map_or("new", |p| p.of(name));
                out.push(obj([("name", name.as_str().into()), ("from", from.into())]));
            }
            true
        })?;
        Ok(Json::Arr(out))
    }

    /// `makemore gradcheck --seed seed --fd-samples fd_samples`'s table.
    pub fn gradcheck(&self, seed: u64, fd_samples: u32) -> Result<Json> {
        let ds = self.ds()?;
        let report = gradcheck_table::check_pcg(ds, seed, fd_samples as usize)?;
        let rows: Vec<Json> = report
            .rows
            .iter()
            .map(|r| {
                let t = &r.table;
                let fused = t.fused_vs_atomic_f32.map(|c| {
                    obj([
                        ("exact", c.exact.into()),
                        ("approximate", c.approximate.into()),
                        ("maxdiff", c.maxdiff.into()),
                    ])
                });
                obj([
                    ("name", t.name.into()),
                    ("atomic_approximate", t.atomic_f32_vs_f64.approximate.into()),
                    ("atomic_maxdiff", t.atomic_f32_vs_f64.maxdiff.into()),
                    ("fused", fused.into()),
                    ("fd_rel_err", r.fd_rel_err.into()),
                    ("ok", r.ok().into()),
                ])
            })
            .collect();
        Ok(obj([
            ("loss", report.loss.into()),
            ("rows", Json::Arr(rows)),
            ("all_ok", report.all_ok().into()),
        ]))
    }

    /// The model as the CLI saves it: safetensors with the run's metadata, and the batchnorm
    /// statistics once calibrated.
    pub fn save(&mut self) -> Result<Vec<u8>> {
        let m = self.model()?;
        let ck = Checkpoint {
            dims: m.dims,
            params: m.params.clone(),
            bn: m.bn.clone(),
            vocab: Some(m.vocab.clone()),
            run: m.run.clone(),
            history: None,
            opt_state: m.opt_state.clone(),
        };
        ck.to_bytes()
    }

    /// A checkpoint of `makemore train`, or PyTorch's nine tensors (the vocabulary then comes
    /// from the word list). It can be evaluated and sampled; training continues only on a
    /// makemore checkpoint of a PCG run with the notebook's step schedule, SGD and batch 32
    /// (`"run"` in the result; null otherwise), on `isa`.
    pub fn load_checkpoint(&mut self, bytes: &[u8], isa: Isa) -> Result<Json> {
        let kernels = Kernels::new(isa)?;
        let ck = Checkpoint::from_bytes(bytes, "the checkpoint".as_ref())?;
        let vocab = match (&ck.vocab, &self.ds) {
            (Some(v), _) => v.clone(),
            (None, Some(ds)) => ds.vocab.clone(),
            (None, None) => bail!("the checkpoint has no vocabulary: load the word list first"),
        };
        if vocab.len() != ck.dims.vocab {
            bail!(
                "the checkpoint has {} symbols, the vocabulary {}",
                ck.dims.vocab,
                vocab.len()
            );
        }
        let run = ck.run.filter(|r| {
            r.schedule == Schedule::Step
                && r.optimizer == Optimizer::Sgd
                && r.batch_size == BATCH
                && r.generator == Generator::Pcg
                // the page's examples have a context of 3
                && ck.dims.context == 3
        });
        let run_info = run.as_ref().map_or(Json::Null, |r| {
            obj([
                ("step", r.step.into()),
                ("steps", r.steps.into()),
                ("seed", r.seed.into()),
                ("lr", r.lr.into()),
                ("decay_step", r.lr_decay_step.into()),
            ])
        });
        let info = obj([
            ("params", ck.dims.num_params().into()),
            ("hidden", ck.dims.hidden.into()),
            ("embedding", ck.dims.embedding.into()),
            ("context", ck.dims.context.into()),
            ("vocab", vocab.symbols().iter().collect::<String>().into()),
            ("step", run.as_ref().map(|r| r.step).into()),
            ("run", run_info),
            ("isa", isa.name().into()),
            ("calibrated", ck.bn.is_some().into()),
        ]);
        let windows_from = run.as_ref().map_or(0, |r| r.step.div_ceil(WINDOW) * WINDOW);
        self.model = Some(Model {
            dims: ck.dims,
            params: ck.params,
            kernels,
            run,
            opt_state: ck.opt_state,
            bn: ck.bn,
            vocab,
            windows: Vec::new(),
            windows_from,
            open: (0.0, 0),
            loss: f32::NAN,
        });
        Ok(info)
    }
}

// ---------------------------------------------------------------- the C ABI

static SESSION: Mutex<Option<Session>> = Mutex::new(None);
static INPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static OUTPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Runs `f` on the session and puts its result (or its error's message) in the output buffer:
/// status 0 or 1.
fn call(f: impl FnOnce(&mut Session) -> Result<Vec<u8>>) -> i32 {
    let mut guard = SESSION.lock().unwrap_or_else(|e| e.into_inner());
    let result = f(guard.get_or_insert_with(Session::default));
    drop(guard);
    output(result)
}

fn call_json(f: impl FnOnce(&mut Session) -> Result<Json>) -> i32 {
    call(|s| json_bytes(f(s)))
}

// The non-generic halves of `call` and `call_json`, compiled once rather than once per export.

fn output(result: Result<Vec<u8>>) -> i32 {
    let (status, bytes) = match result {
        Ok(bytes) => (0, bytes),
        Err(e) => (1, format!("{e:#}").into_bytes()),
    };
    *OUTPUT.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
    status
}

fn json_bytes(result: Result<Json>) -> Result<Vec<u8>> {
    Ok(result?.to_string().into_bytes())
}

/// The input buffer's first `len` bytes, if `ptr` is where [`mm_alloc`] put it.
fn input(ptr: u32, len: u32) -> Result<Vec<u8>> {
    let input = INPUT.lock().unwrap_or_else(|e| e.into_inner());
    if ptr as usize != input.as_ptr() as usize || len as usize > input.len() {
        bail!("the input was not written where mm_alloc({len}) said");
    }
    Ok(input[..len as usize].to_vec())
}

/// A u64 passed as f64 (an integer below 2^53).
fn whole(x: f64, what: &str) -> Result<u64> {
    if !(x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 9007199254740992.0) {
        bail!("{what} {x} must be a whole number from 0 to 2^53");
    }
    Ok(x as u64)
}

/// Makes the input buffer `len` bytes long and returns where the caller writes them.
#[unsafe(no_mangle)]
pub extern "C" fn mm_alloc(len: u32) -> u32 {
    let mut input = INPUT.lock().unwrap_or_else(|e| e.into_inner());
    input.clear();
    input.resize(len as usize, 0);
    input.as_ptr() as usize as u32
}

/// Releases the input buffer.
#[unsafe(no_mangle)]
pub extern "C" fn mm_free(_ptr: u32, _len: u32) {
    *INPUT.lock().unwrap_or_else(|e| e.into_inner()) = Vec::new();
}

/// Where the last call's output is.
#[unsafe(no_mangle)]
pub extern "C" fn mm_out_ptr() -> u32 {
    OUTPUT.lock().unwrap_or_else(|e| e.into_inner()).as_ptr() as usize as u32
}

/// How many bytes the last call's output has.
#[unsafe(no_mangle)]
pub extern "C" fn mm_out_len() -> u32 {
    OUTPUT.lock().unwrap_or_else(|e| e.into_inner()).len() as u32
}

/// 1 if this build runs instruction set `isa` (0 scalar, 1 simd128), else 0.
#[unsafe(no_mangle)]
pub extern "C" fn mm_isa_available(isa: u32) -> u32 {
    isa_of(isa).is_ok_and(|i| i.is_available()) as u32
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_load_words(ptr: u32, len: u32) -> i32 {
    call_json(|s| s.load_words(&input(ptr, len)?))
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_init(seed: f64, isa: u32, steps: f64, lr: f32, decay_step: f64) -> i32 {
    call_json(|s| {
        let (seed, steps) = (whole(seed, "the seed")?, whole(steps, "the step count")?);
        s.init(
            seed,
            isa_of(isa)?,
            steps,
            lr,
            whole(decay_step, "the decay step")?,
        )
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_train(max_steps: u32) -> i32 {
    call_json(|s| s.train(max_steps))
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_evaluate() -> i32 {
    call_json(Session::evaluate)
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_sample(count: u32, seed: f64, temperature: f32, top_k: u32) -> i32 {
    call_json(|s| s.sample(count, whole(seed, "the seed")?, temperature, top_k))
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_gradcheck(seed: f64, fd_samples: u32) -> i32 {
    call_json(|s| s.gradcheck(whole(seed, "the seed")?, fd_samples))
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_save() -> i32 {
    call(Session::save)
}

#[unsafe(no_mangle)]
pub extern "C" fn mm_load_checkpoint(ptr: u32, len: u32, isa: u32) -> i32 {
    call_json(|s| s.load_checkpoint(&input(ptr, len)?, isa_of(isa)?))
}
