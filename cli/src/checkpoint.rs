//! Checkpoints on disk: the core's checkpoint schema ([`makemore_core::checkpoint`]: tensors,
//! metadata, checksum) in owned buffers, atomic replacement on disk, errors naming the file.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use makemore_core::checkpoint::{self, Metadata, Schedule};
use makemore_core::optim::LrSchedule;
use makemore_core::safetensors::{load_model, read_dims, SafeTensors, SafetensorsError};
use makemore_core::simd::Kernels;
use makemore_core::{Dims, ParamsMut, ParamsRef};

use crate::data::{Split, Vocab};

/// Largest checkpoint file read, in bytes: checked before the bytes are allocated for a regular
/// file, and a stream (a FIFO, a device) stops one byte after it. The largest model the
/// training limits allow (V 64, E 256, T 16, H 4096: 17 068 096 parameters, plus bnmean and
/// bnvar) is 68.3 MB of f32; the limit leaves room for three such copies (parameters and two
/// optimizer moments) and the header.
pub const MAX_CHECKPOINT_BYTES: u64 = 256 << 20;

/// Everything a checkpoint holds.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub dims: Dims,
    /// C, W1, b1, W2, b2, bngain, bnbias, flat (see `ParamsRef::from_flat`).
    pub params: Vec<f32>,
    /// Calibrated batchnorm statistics (H each), present once training finished.
    pub bn: Option<(Vec<f32>, Vec<f32>)>,
    /// From the metadata; None for a file without it (e.g. written by PyTorch).
    pub vocab: Option<Vocab>,
    /// Training state, when the file was written by `makemore train`.
    pub run: Option<RunState>,
    /// The trainer's record of the run (loss windows, evaluations; see `train`'s `History`).
    pub history: Option<String>,
    /// The optimiser's state (AdamW's m then v), empty for SGD.
    pub opt_state: Vec<f32>,
}

/// Where a training run stands: enough to resume it exactly (the core's schema).
pub use makemore_core::checkpoint::RunState;

/// FNV-1a (64 bit) of the split: for each of train, val, test its word count, then each word's
/// byte length and bytes (lengths as little-endian `u64`), so a changed word, order or split
/// changes it.
pub fn fingerprint(split: &Split) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for part in [&split.train, &split.val, &split.test] {
        eat(&(part.len() as u64).to_le_bytes());
        for w in part {
            eat(&(w.len() as u64).to_le_bytes());
            eat(w.as_bytes());
        }
    }
    h
}

/// The learning rate of step `step` (0-based) under `run`'s schedule: the core's
/// [`LrSchedule`]. The step decay is the notebook's, computed in `f32`: `lr`, then `lr / 10.0`.
pub fn lr_at(run: &RunState, step: u64) -> f32 {
    let schedule = match run.schedule {
        Schedule::Step => LrSchedule::Step {
            lr: run.lr,
            decay_step: run.lr_decay_step,
        },
        Schedule::Cosine {
            warmup,
            total,
            min_lr,
        } => LrSchedule::Cosine {
            lr: run.lr,
            warmup,
            total,
            min_lr,
        },
    };
    schedule.lr_at(step)
}

/// The sizes makemore accepts, `(min, max)` inclusive: `train`'s flags, and the config and batch
/// size of a checkpoint it loads. The core's kernels take sizes at run time (its fixed-size
/// arrays are for firmware), so any value in these ranges works.
pub const HIDDEN: (usize, usize) = (1, 4096);
/// See [`HIDDEN`].
pub const EMBEDDING: (usize, usize) = (1, 256);
/// See [`HIDDEN`].
pub const CONTEXT: (usize, usize) = (1, crate::data::MAX_CONTEXT);
/// See [`HIDDEN`]; batchnorm's variance needs 2 rows.
pub const BATCH: (usize, usize) = (2, 1 << 16);

/// A loaded checkpoint's sizes against [`HIDDEN`], [`EMBEDDING`], [`CONTEXT`] (from the tensors'
/// shapes) and [`BATCH`] (from the training state): the error names the key and the value.
fn check_sizes(dims: Dims, run: Option<&RunState>) -> std::result::Result<(), String> {
    use checkpoint::key;
    let mut sizes = vec![
        (key::HIDDEN, dims.hidden, HIDDEN, "the tensors' shapes"),
        (
            key::EMBEDDING,
            dims.embedding,
            EMBEDDING,
            "the tensors' shapes",
        ),
        (key::CONTEXT, dims.context, CONTEXT, "the tensors' shapes"),
    ];
    if let Some(r) = run {
        sizes.push((key::BATCH_SIZE, r.batch_size, BATCH, "the metadata"));
    }
    for (k, v, (lo, hi), from) in sizes {
        if !(lo..=hi).contains(&v) {
            return Err(format!(
                "{k} {v} (from {from}) is out of range: makemore handles {lo} to {hi}"
            ));
        }
    }
    Ok(())
}

/// The first parameter that is NaN or infinite: its tensor's name, its index in the tensor and
/// its value. Training checks this after every step, so no checkpoint holds one. The fast path
/// is the vector scan [`Kernels::all_finite`]; the search runs only when it fails.
pub fn first_non_finite(
    k: &Kernels,
    dims: Dims,
    flat: &[f32],
) -> Option<(&'static str, usize, f32)> {
    if k.all_finite(flat) {
        return None;
    }
    let p = ParamsRef::from_flat(dims, flat).ok()?;
    p.tensors()
        .into_iter()
        .zip(makemore_core::PARAM_NAMES)
        .find_map(|(t, name)| {
            let i = t.iter().position(|x| !x.is_finite())?;
            Some((name, i, t[i]))
        })
}

impl Checkpoint {
    pub fn params_ref(&self) -> ParamsRef<'_, f32> {
        ParamsRef::from_flat(self.dims, &self.params).expect("params length matches dims")
    }

    /// The safetensors bytes of this checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let symbols: Option<String> = self.vocab.as_ref().map(|v| v.symbols().iter().collect());
        let meta = Metadata {
            vocab: symbols.as_deref(),
            run: self.run.clone(),
            history: self.history.as_deref(),
        };
        let bn = self.bn.as_ref().map(|(m, v)| (m.as_slice(), v.as_slice()));
        let state = &self.opt_state;
        let mut out =
            vec![
                0u8;
                checkpoint::saved_len_with_state(self.dims, bn.is_some(), state.len(), &meta)
            ];
        let n = checkpoint::save_with_state(&mut out, self.params_ref(), bn, state, &meta)
            .map_err(|e| anyhow::anyhow!("encoding the checkpoint: {e}"))?;
        out.truncate(n);
        Ok(out)
    }

    /// Parses and validates a checkpoint file's bytes; `what` names it in errors.
    pub fn from_bytes(bytes: &[u8], what: &Path) -> Result<Checkpoint> {
        let bad = |e: SafetensorsError| {
            let hint = match e {
                SafetensorsError::TooShort { .. }
                | SafetensorsError::HeaderOutOfBounds { .. }
                | SafetensorsError::OffsetOutOfRange { .. } => {
                    " (the file looks truncated: an interrupted copy or write?)"
                }
                SafetensorsError::NonFinite { .. } => {
                    return anyhow::anyhow!(
                    "{}: {e}; the checkpoint holds a diverged model: retrain with a smaller --lr",
                    what.display()
                )
                }
                SafetensorsError::NegativeVariance { .. } => {
                    " (no training run writes that: the file was altered; train it again)"
                }
                _ => "",
            };
            anyhow::anyhow!(
                "{}: not a valid makemore checkpoint: {e}{hint}",
                what.display()
            )
        };
        let st = SafeTensors::parse(bytes).map_err(bad)?;
        let dims = read_dims(&st, None).map_err(bad)?;
        // The vocabulary and the history unescaped fit in their JSON text.
        let raw_len = |k| st.metadata_raw(k).map_or(0, str::len);
        let mut buf =
            vec![0u8; raw_len(checkpoint::key::VOCAB) + raw_len(checkpoint::key::HISTORY)];
        let meta = checkpoint::read_metadata(&st, dims, &mut buf).map_err(bad)?;
        check_sizes(dims, meta.run.as_ref()).map_err(|e| {
            anyhow::anyhow!("{}: not a valid makemore checkpoint: {e}", what.display())
        })?;
        let mut params = vec![0f32; dims.num_params()];
        let mut mean = vec![0f32; dims.hidden];
        let mut var = vec![0f32; dims.hidden];
        let has_bn = {
            let mut view = ParamsMut::from_flat(dims, &mut params)?;
            load_model(&st, &mut view, Some((&mut mean, &mut var))).map_err(bad)?
        };
        let state_len = meta
            .run
            .as_ref()
            .map_or(0, |r| r.optimizer.state_len(dims.num_params()));
        let mut opt_state = vec![0f32; state_len];
        let has_state = checkpoint::read_optimizer_state(&st, &mut opt_state).map_err(bad)?;
        if state_len > 0 && !has_state {
            bail!(
                "{}: not a valid makemore checkpoint: the run's optimiser has state but the file holds no tensor {}",
                what.display(),
                checkpoint::OPTIMIZER_STATE
            );
        }
        let vocab = match meta.vocab {
            Some(s) => Some(Vocab::from_symbols(s).with_context(|| {
                format!(
                    "{}: metadata {} \"{}\" is not '.' followed by sorted distinct symbols",
                    what.display(),
                    checkpoint::key::VOCAB,
                    s.escape_default()
                )
            })?),
            None => None,
        };
        Ok(Checkpoint {
            dims,
            params,
            bn: has_bn.then_some((mean, var)),
            vocab,
            run: meta.run,
            history: meta.history.map(str::to_owned),
            opt_state,
        })
    }

    /// Reads and validates a checkpoint file of at most [`MAX_CHECKPOINT_BYTES`].
    pub fn load(path: &Path) -> Result<Checkpoint> {
        if path.is_dir() {
            bail!("{} is a directory, not a checkpoint file", path.display());
        }
        let context = || {
            format!("cannot read checkpoint {} (train one with `makemore train`, or pass --checkpoint PATH)", path.display())
        };
        let too_large = || {
            anyhow::anyhow!(
                "{}: larger than {} MiB, the limit for a checkpoint (the largest model the \
                 size limits allow takes about 70 MB); is it a checkpoint? pass --checkpoint \
                 PATH to a file written by `makemore train` or safetensors",
                path.display(),
                MAX_CHECKPOINT_BYTES >> 20
            )
        };
        let file = fs::File::open(path).with_context(context)?;
        let meta = file.metadata().with_context(context)?;
        if meta.is_file() && meta.len() > MAX_CHECKPOINT_BYTES {
            return Err(too_large());
        }
        let bytes = crate::data::read_bounded(file, MAX_CHECKPOINT_BYTES)
            .with_context(context)?
            .ok_or_else(too_large)?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes the checkpoint atomically: a temporary file in the same directory, fsync, rename
    /// over `path`, fsync of the directory. A crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }
}

/// The temporary file [`write_atomic`] writes `path`'s new contents to before the rename.
fn temp_path(dir: &Path, name: &std::ffi::OsStr) -> std::path::PathBuf {
    dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ))
}

/// Removes the temporary files of saves of `path` that a killed process left behind (the
/// checkpoint itself is never touched). Returns how many. A second process saving into the same
/// file at the same moment is not supported: its save would fail, leaving the checkpoint as it was.
pub fn remove_stale_temp_files(path: &Path) -> usize {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = path.file_name() else {
        return 0;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Replaces `path` with `bytes` atomically (temp file, fsync, rename, fsync dir). On error the
/// previous file is untouched and the temporary file removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("checkpoint path has no file name")?;
    let tmp = temp_path(dir, name);
    let result = (|| -> std::io::Result<()> {
        {
            // closed before the rename
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!(
                "cannot write {} (is the directory writable and the disk not full?)",
                path.display()
            )
        });
    }
    Ok(())
}
