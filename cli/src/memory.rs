//! Memory: the bytes a training configuration needs, estimated before anything large is
//! allocated, against what this process may still use (Linux: `MemAvailable`, the cgroup's
//! limit, `RLIMIT_AS`), so that a configuration that cannot fit is refused with the figures
//! instead of aborting on a failed allocation. Where none of these can be read (not Linux),
//! nothing is checked.

use std::fmt;
use std::fs;

use anyhow::{bail, Result};
use makemore_core::eval::{CALIB_ROWS, EVAL_ROWS};
use makemore_core::step::{grad_copies, Step};
use makemore_core::Dims;

const F32: u64 = 4;

/// What a training run allocates, in bytes, by purpose. The data set's own buffers (the word
/// list, its examples and their distinct contexts) are not counted: they grow with the word
/// list, not with the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainMemory {
    /// Rows per batch (for the message).
    pub batch: usize,
    /// The parameters.
    pub parameters: u64,
    /// The step's gradients: the batch's and its gradient slots.
    pub gradients: u64,
    /// The rest of the step's scratch: every shard's activations and partial sums, W2.T, the
    /// batch statistics.
    pub activations: u64,
    /// The optimiser's state (0 for SGD).
    pub optimizer: u64,
    /// The batch's tokens, a checkpoint being saved (a copy of the parameters and the file's
    /// bytes), and the evaluator's tables and per-core scratch.
    pub other: u64,
}

impl TrainMemory {
    /// The estimate for a model of `dims` trained on batches of `batch` rows with
    /// `optimizer_state_floats` f32 values of optimiser state; `None` for dims that do not
    /// validate, `batch < 2`, or a size that overflows.
    pub fn new(dims: Dims, batch: usize, optimizer_state_floats: usize) -> Option<Self> {
        let dims = dims.validate().ok()?;
        if batch < 2 {
            return None;
        }
        let f32s = |n: usize| (n as u64).checked_mul(F32);
        let p = dims.num_params();
        let gradients = f32s(grad_copies(batch).checked_mul(p)?)?;
        let activations = f32s(Step::flat_len(&dims, batch)?)?.checked_sub(gradients)?;
        // validated dims: T, H <= 2^16 and V <= 256, so these u64 products do not overflow;
        // the evaluator's first-layer tables (T, V, H) and per-core scratch
        let [t, h, v] = [dims.context, dims.hidden, dims.vocab].map(|x| x as u64);
        let table = t * v * h * F32;
        let per_core =
            EVAL_ROWS as u64 * (h + 2 * v + 1) * F32 + CALIB_ROWS as u64 * h * F32 + 2 * h * 8;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let other = (batch as u64)
            .checked_mul(t + 1)?
            .checked_add(f32s(p)?.checked_mul(2)?)?
            .checked_add(table)?
            .checked_add(per_core * cores)?;
        Some(TrainMemory {
            batch,
            parameters: f32s(p)?,
            gradients,
            activations,
            optimizer: f32s(optimizer_state_floats)?,
            other,
        })
    }

    /// Every part together; `None` if it overflows.
    pub fn total(&self) -> Option<u64> {
        [self.gradients, self.activations, self.optimizer, self.other]
            .iter()
            .try_fold(self.parameters, |a, &b| a.checked_add(b))
    }
}

/// The parts, e.g. "parameters 64 MiB, activations of batch 65536 3.0 GiB, ...".
impl fmt::Display for TrainMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parameters {}, activations of batch {} {}, gradients {}",
            Bytes(self.parameters),
            self.batch,
            Bytes(self.activations),
            Bytes(self.gradients)
        )?;
        if self.optimizer > 0 {
            write!(f, ", optimizer state {}", Bytes(self.optimizer))?;
        }
        write!(
            f,
            ", batches, checkpoint and evaluation {}",
            Bytes(self.other)
        )
    }
}

/// Bytes the trainer allocates for a model of `dims`, batches of `batch` rows and
/// `optimizer_state_floats` f32 values of optimiser state (see [`TrainMemory`]); `None` for an
/// invalid configuration or a size that overflows `u64`.
pub fn train_bytes(dims: Dims, batch: usize, optimizer_state_floats: usize) -> Option<u64> {
    TrainMemory::new(dims, batch, optimizer_state_floats)?.total()
}

/// A byte count for people: "4.3 GiB", "12 MiB", "512 KiB".
#[derive(Clone, Copy, Debug)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: f64 = 1024.0;
        let b = self.0 as f64;
        if b >= KIB * KIB * KIB {
            write!(f, "{:.1} GiB", b / (KIB * KIB * KIB))
        } else if b >= KIB * KIB {
            write!(f, "{:.0} MiB", b / (KIB * KIB))
        } else {
            write!(f, "{:.0} KiB", b / KIB)
        }
    }
}

/// What this process may still allocate, and which limit says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    pub bytes: u64,
    pub source: &'static str,
}

/// The smallest of: `MemAvailable` of /proc/meminfo; the cgroup's memory limit less its usage
/// (v2 `memory.max`, else v1 `memory.limit_in_bytes`); the address-space limit (`ulimit -v`,
/// "Max address space" of /proc/self/limits) less this process's `VmSize`. `None` when none
/// can be read (not Linux).
pub fn available() -> Option<Available> {
    let read = |path: &str| fs::read_to_string(path).ok();
    let meminfo = read("/proc/meminfo").and_then(|t| meminfo_kib(&t, "MemAvailable"));
    let cgroup = cgroup_limit(&read);
    let vm_size = read("/proc/self/status").and_then(|t| meminfo_kib(&t, "VmSize"));
    let address_space = read("/proc/self/limits")
        .and_then(|t| address_space_limit(&t))
        .map(|limit| limit.saturating_sub(vm_size.unwrap_or(0)));
    [
        (meminfo, "MemAvailable in /proc/meminfo"),
        (cgroup, "the cgroup's memory limit"),
        (address_space, "the address-space limit, ulimit -v"),
    ]
    .into_iter()
    .filter_map(|(bytes, source)| bytes.map(|bytes| Available { bytes, source }))
    .min_by_key(|a| a.bytes)
}

/// Limits at or above this are "no limit" (cgroup v1 writes 2^63 - 4096 for none).
const NO_LIMIT: u64 = 1 << 62;

/// The cgroup's limit less its usage, if it has a limit: v2 `memory.max` (a number, not
/// "max"), else v1 `memory.limit_in_bytes`.
fn cgroup_limit(read: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    let number = |path: &str| read(path).and_then(|t| t.trim().parse::<u64>().ok());
    let (limit, usage) = match number("/sys/fs/cgroup/memory.max") {
        Some(limit) => (limit, number("/sys/fs/cgroup/memory.current")),
        None => (
            number("/sys/fs/cgroup/memory/memory.limit_in_bytes")?,
            number("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ),
    };
    (limit < NO_LIMIT).then(|| limit.saturating_sub(usage.unwrap_or(0)))
}

/// The value of line `key:  N kB` of /proc/meminfo or /proc/self/status, in bytes.
pub fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let kib = line.split_whitespace().next()?.parse::<u64>().ok()?;
    kib.checked_mul(1024)
}

/// The soft "Max address space" of /proc/self/limits in bytes; `None` if unlimited or absent.
pub fn address_space_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Refuses to go on if `bytes` (described by `what`) exceed what the process may allocate.
fn check(bytes: u64, what: &dyn Fn() -> String) -> Result<()> {
    match available() {
        Some(a) if bytes > a.bytes => bail!(
            "this configuration needs about {} ({}), but only {} is available ({}); use a smaller --batch-size or --hidden",
            Bytes(bytes),
            what(),
            Bytes(a.bytes),
            a.source
        ),
        _ => Ok(()),
    }
}

/// Refuses `bytes` that the process cannot allocate (see [`available`]), naming both figures;
/// no check where nothing is known.
pub fn check_fits(bytes: u64) -> Result<()> {
    check(bytes, &|| "its buffers".to_string())
}

/// [`check_fits`] for a training configuration, the message naming what needs the memory.
/// Errors: it does not fit, or its size overflows.
pub fn check_training(dims: Dims, batch: usize, optimizer_state_floats: usize) -> Result<()> {
    let need = TrainMemory::new(dims, batch, optimizer_state_floats);
    let Some((need, total)) = need.and_then(|m| Some((m, m.total()?))) else {
        bail!("the memory of this configuration overflows 64 bits; use a smaller --batch-size or --hidden");
    };
    check(total, &|| need.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_files() {
        let meminfo = "MemTotal:       24683520 kB\nMemFree:        22547200 kB\nMemAvailable:   24312832 kB\n";
        assert_eq!(meminfo_kib(meminfo, "MemAvailable"), Some(24312832 * 1024));
        assert_eq!(meminfo_kib(meminfo, "VmSize"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max data size             unlimited            unlimited            bytes     \n\
                      Max address space         2147483648           unlimited            bytes     \n";
        assert_eq!(address_space_limit(limits), Some(2147483648));
        let unlimited = limits.replace("2147483648", "unlimited ");
        assert_eq!(address_space_limit(&unlimited), None);
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(Bytes(4_617_089_843).to_string(), "4.3 GiB");
        assert_eq!(Bytes(12 << 20).to_string(), "12 MiB");
        assert_eq!(Bytes(512 << 10).to_string(), "512 KiB");
    }
}
