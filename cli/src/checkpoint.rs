//! Checkpoints: the core's safetensors writer and reader, plus what a run needs around them:
//! metadata (config, vocabulary, step, RNG seed), atomic replacement on disk, clear errors.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use makemore_core::safetensors::{
    load_model, read_dims, save_model, saved_model_len, SafeTensors, SafetensorsError,
};
use makemore_core::simd::Kernels;
use makemore_core::{Dims, ParamsMut, ParamsRef};

use crate::data::Vocab;

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
}

/// Where a training run stands: enough to resume it exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// Steps done.
    pub step: u64,
    /// The minibatch stream: batch `s` is drawn from PCG stream (seed, s), so (seed, step) is the
    /// whole RNG state.
    pub seed: u64,
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f32,
    pub lr_decay_step: u64,
}

const FORMAT: &str = "makemore-rs/1";

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
        let d = self.dims;
        let mut meta: Vec<(&str, String)> = vec![
            ("format", FORMAT.into()),
            (
                "vocab",
                self.vocab
                    .as_ref()
                    .map(|v| v.symbols().iter().collect())
                    .unwrap_or_default(),
            ),
            ("context", d.context.to_string()),
            ("embedding", d.embedding.to_string()),
            ("hidden", d.hidden.to_string()),
        ];
        if self.vocab.is_none() {
            meta.remove(1);
        }
        if let Some(r) = &self.run {
            meta.push(("step", r.step.to_string()));
            meta.push(("seed", r.seed.to_string()));
            meta.push(("steps", r.steps.to_string()));
            meta.push(("batch_size", r.batch_size.to_string()));
            meta.push(("lr", r.lr.to_string()));
            meta.push(("lr_decay_step", r.lr_decay_step.to_string()));
        }
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bn = self.bn.as_ref().map(|(m, v)| (m.as_slice(), v.as_slice()));
        let mut out = vec![0u8; saved_model_len(d, bn.is_some(), &meta)];
        let n = save_model(&mut out, self.params_ref(), bn, &meta)
            .context("encoding the checkpoint")?;
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
                _ => "",
            };
            anyhow::anyhow!(
                "{}: not a valid makemore checkpoint: {e}{hint}",
                what.display()
            )
        };
        let st = SafeTensors::parse(bytes).map_err(bad)?;
        let meta = |key: &str| -> Result<Option<String>> {
            let mut buf = vec![0u8; bytes.len().min(1 << 20)];
            Ok(st.metadata(key, &mut buf).map_err(bad)?.map(str::to_owned))
        };
        let context = match meta("context")? {
            Some(c) => Some(c.parse::<usize>().with_context(|| {
                format!("{}: metadata context {c:?} is not a number", what.display())
            })?),
            None => None,
        };
        let dims = read_dims(&st, context).map_err(bad)?;
        // The config this program writes must agree with the shapes.
        for (key, from_shapes) in [("embedding", dims.embedding), ("hidden", dims.hidden)] {
            if let Some(v) = meta(key)? {
                if v.parse::<usize>().ok() != Some(from_shapes) {
                    bail!(
                        "{}: metadata {key} {v:?} disagrees with the tensors' shapes ({key} {from_shapes}); the file is inconsistent",
                        what.display()
                    );
                }
            }
        }
        let mut params = vec![0f32; dims.num_params()];
        let mut mean = vec![0f32; dims.hidden];
        let mut var = vec![0f32; dims.hidden];
        let has_bn = {
            let mut view = ParamsMut::from_flat(dims, &mut params)?;
            load_model(&st, &mut view, Some((&mut mean, &mut var))).map_err(bad)?
        };
        let vocab = match meta("vocab")? {
            Some(s) => Some(Vocab::from_symbols(&s).with_context(|| {
                format!(
                    "{}: metadata vocab {s:?} is not '.' followed by sorted distinct symbols",
                    what.display()
                )
            })?),
            None => None,
        };
        if let Some(v) = &vocab {
            if v.len() != dims.vocab {
                bail!(
                    "{}: metadata vocab has {} symbols but C has {} rows",
                    what.display(),
                    v.len(),
                    dims.vocab
                );
            }
        }
        let num = |key: &str| -> Result<Option<u64>> {
            match meta(key)? {
                Some(s) => Ok(Some(s.parse().with_context(|| {
                    format!("{}: metadata {key} {s:?} is not a number", what.display())
                })?)),
                None => Ok(None),
            }
        };
        let run = match (num("step")?, num("seed")?) {
            (Some(step), Some(seed)) => Some(RunState {
                step,
                seed,
                steps: num("steps")?.unwrap_or(step),
                batch_size: num("batch_size")?.unwrap_or(32) as usize,
                lr: meta("lr")?.and_then(|s| s.parse().ok()).unwrap_or(0.1),
                lr_decay_step: num("lr_decay_step")?.unwrap_or(u64::MAX),
            }),
            _ => None,
        };
        Ok(Checkpoint {
            dims,
            params,
            bn: has_bn.then_some((mean, var)),
            vocab,
            run,
        })
    }

    /// Reads and validates a checkpoint file.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        if path.is_dir() {
            bail!("{} is a directory, not a checkpoint file", path.display());
        }
        let bytes = fs::read(path).with_context(|| {
            format!("cannot read checkpoint {} (train one with `makemore train`, or pass --checkpoint PATH)", path.display())
        })?;
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
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
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
