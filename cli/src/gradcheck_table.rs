//! The gradient check of `makemore gradcheck` and the web page: the notebook's comparison table
//! for its 26 tensors on a batch of names at the notebook's initialisation (Exercise-1 model:
//! E=10, H=64, T=3, batch 32, V=27), with each tensor's f64 gradient also checked by finite
//! differences. With a torch generator the init and the batch are the notebook's own, and
//! [`Report::notebook_text`] gives the notebook's outputs: the parameter count, the loss as
//! PyTorch prints it, and the `cmp` table in its format.

use std::fmt::Write as _;
use std::num::NonZeroU64;

use anyhow::{bail, Result};
use makemore_core::atomic::{AtomicGrads, AtomicTape};
use makemore_core::gradcheck::{
    finite_difference_check, rows, table, Comparison, TableRow, TableStorage,
};
use makemore_core::rng::{batch_stream, below, init_stream, Generator};
use makemore_core::{Params, ParamsRef};

use crate::batch::{fill_batch, Batches};
use crate::dataset::Dataset;

/// Largest relative error allowed against finite differences (f64).
pub const FD_TOL: f64 = 1e-6;
/// The notebook's batch (the tables' const generic N).
pub const BATCH: usize = 32;

/// One of the 26 rows: the table's comparisons and the finite-difference error.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub table: TableRow,
    /// Largest relative error of the f64 gradient against finite differences.
    pub fd_rel_err: f64,
}

impl Row {
    /// The comparisons pass and the finite-difference error is at most [`FD_TOL`].
    pub fn ok(&self) -> bool {
        self.table.ok() && self.fd_rel_err <= FD_TOL
    }
}

/// The whole check.
#[derive(Clone, Debug)]
pub struct Report {
    pub generator: Generator,
    pub params: usize,
    /// The f64 loss at init.
    pub loss: f64,
    /// The f32 loss of the atomic forward (the notebook prints it).
    pub loss32: f32,
    pub rows: Vec<Row>,
}

/// Runs the check on the first training batch of `seed` (the run's batch 0), with `fd_samples`
/// coordinates per tensor checked by finite differences. Errors: `fd_samples` 0, an empty train
/// split, a vocabulary other than the notebook's 27.
pub fn check(ds: &Dataset, generator: Generator, seed: u64, fd_samples: usize) -> Result<Report> {
    let start: Start = match generator {
        Generator::Pcg => pcg_start,
        _ => torch_start,
    };
    check_from(ds, generator, seed, fd_samples, start)
}

/// [`check`] with [`Generator::Pcg`] (the web page's only generator): without the torch
/// generator, so the page's wasm does not carry PyTorch's normal sampler and its sin, cos and
/// log.
pub fn check_pcg(ds: &Dataset, seed: u64, fd_samples: usize) -> Result<Report> {
    check_from(ds, Generator::Pcg, seed, fd_samples, pcg_start)
}

/// The check's f64 parameters: the Exercise-1 model.
type Params64 = Params<f64, 27, 3, 10, 30, 64>;

/// How a check starts: the initialisation of the parameters and the training run's first batch
/// (xb, yb) for `generator` and `seed`.
type Start = fn(&Dataset, Generator, u64, &mut Params64, &mut [u8], &mut [u8]) -> Result<()>;

/// A PCG run's start: the notebook's initialisation from the core's init stream, and batch 0.
fn pcg_start(
    ds: &Dataset,
    _: Generator,
    seed: u64,
    params: &mut Params64,
    xb: &mut [u8],
    yb: &mut [u8],
) -> Result<()> {
    params.view_mut().init_notebook(&mut init_stream(seed));
    fill_batch(&ds.train, seed, 0, xb, yb)
}

/// The notebook's cells: its float32 init, then its batch, from one torch generator.
fn torch_start(
    ds: &Dataset,
    generator: Generator,
    seed: u64,
    params: &mut Params64,
    xb: &mut [u8],
    yb: &mut [u8],
) -> Result<()> {
    let dims = params.view().dims();
    let mut init = vec![0f32; dims.num_params()];
    let mut batches = Batches::init(generator, seed, dims, &mut init)?;
    let init = ParamsRef::from_flat(dims, &init)?;
    for (d, s) in params
        .view_mut()
        .tensors_mut()
        .into_iter()
        .zip(init.tensors())
    {
        for (d, &x) in d.iter_mut().zip(s) {
            *d = f64::from(x);
        }
    }
    batches.fill(&ds.train, 0, xb, yb)
}

/// [`check`] from `start`.
fn check_from(
    ds: &Dataset,
    generator: Generator,
    seed: u64,
    fd_samples: usize,
    start: Start,
) -> Result<Report> {
    if fd_samples == 0 {
        bail!("--fd-samples 0 would check no coordinate by finite differences: use 1 or more");
    }
    if ds.train.is_empty() {
        bail!("the train split is empty: the gradient check needs a batch of training examples");
    }
    if ds.vocab.len() != 27 {
        bail!(
            "the gradient check runs the notebook's model with a vocabulary of 27; this word list has {}",
            ds.vocab.len()
        );
    }
    let mut params = Box::new(Params64::ZERO);
    // the training run's first batch
    let mut xb = [[0u8; 3]; BATCH];
    let mut yb = [0u8; BATCH];
    start(
        ds,
        generator,
        seed,
        &mut params,
        xb.as_flattened_mut(),
        &mut yb,
    )?;
    let mut storage = Box::new(TableStorage::<BATCH, 27, 3, 10, 30, 64>::ZERO);
    let table_rows = table(&params, &xb, &yb, &mut storage)?;
    let loss32 = {
        let s = &mut *storage;
        s.tape32.forward(&s.params32, &xb, &yb)?
    };
    let mut tape = Box::new(AtomicTape::<f64, BATCH, 27, 3, 10, 30, 64>::ZERO);
    let mut reference = Box::new(AtomicTape::<f64, BATCH, 27, 3, 10, 30, 64>::ZERO);
    let loss = reference.forward(&params, &xb, &yb)?;
    let mut grads = Box::new(AtomicGrads::<f64, BATCH, 27, 3, 10, 30, 64>::ZERO);
    grads.backward(&reference, &params, &xb, &yb)?;
    // the coordinates checked by finite differences: the stream of the run's second batch
    let mut pick = batch_stream(seed, 1);
    let mut out = Vec::with_capacity(table_rows.len());
    for (r, row) in table_rows
        .iter()
        .zip(rows::<f64, BATCH, 27, 3, 10, 30, 64>())
    {
        let len = (row.grad)(&grads).len();
        let idx: Vec<usize> = match NonZeroU64::new(len as u64) {
            Some(n) if len > fd_samples => (0..fd_samples)
                .map(|_| below(&mut pick, n) as usize)
                .collect(),
            _ => (0..len).collect(),
        };
        let fd = finite_difference_check(
            &row,
            idx,
            &mut params,
            &xb,
            &yb,
            &reference,
            &grads,
            &mut tape,
        )?;
        out.push(Row {
            table: *r,
            fd_rel_err: fd.rel_err,
        });
    }
    Ok(Report {
        generator,
        params: params.view().dims().num_params(),
        loss,
        loss32,
        rows: out,
    })
}

impl Report {
    /// Every row passes.
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(Row::ok)
    }

    /// The names of the rows that fail.
    pub fn failed(&self) -> Vec<&'static str> {
        let failed = self.rows.iter().filter(|r| !r.ok());
        failed.map(|r| r.table.name).collect()
    }

    /// The notebook's outputs (with a torch generator only, else empty): the parameter count,
    /// the float32 loss as PyTorch prints it, the `cmp` lines, a blank line.
    pub fn notebook_text(&self) -> String {
        let mut s = String::new();
        if self.generator == Generator::Pcg {
            return s;
        }
        let _ = writeln!(s, "{}", self.params);
        let _ = writeln!(s, "tensor({:.4}, grad_fn=<NegBackward0>)", self.loss32);
        let _ = writeln!(
            s,
            "(the hand-written float32 gradients of the notebook's cells against float64 autograd's)"
        );
        for (r, label) in self.rows.iter().zip(NOTEBOOK_LABELS) {
            let c: Comparison = r.table.atomic_f32_vs_f64;
            let _ = writeln!(
                s,
                "{label:15} | exact: {:5} | approximate: {:5} | maxdiff: {}",
                python_bool(c.exact),
                python_bool(c.approximate),
                python_float(c.maxdiff)
            );
        }
        s.push('\n');
        s
    }

    /// The table as the lecture reads: per row, the tensor, the forward line that made it and
    /// the notebook's lines for its gradient ([`EXPLAIN`]), then the row's comparisons.
    pub fn explained_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "loss at init (f64): {:.4}", self.loss);
        for (r, (name, forward, backward)) in self.rows.iter().zip(EXPLAIN) {
            let t = &r.table;
            debug_assert_eq!(t.name, name);
            let _ = writeln!(s, "\n{name}    forward: {forward}");
            for line in backward {
                let _ = writeln!(s, "    {line}");
            }
            let a = t.atomic_f32_vs_f64;
            let _ = write!(
                s,
                "  atomic f32 vs f64: approximate {}, maxdiff {:.3e}",
                a.approximate, a.maxdiff
            );
            if let Some(c) = t.fused_vs_atomic_f32 {
                let _ = write!(
                    s,
                    "; fused f32 vs atomic f32: exact {}, approximate {}, maxdiff {:.3e}",
                    c.exact, c.approximate, c.maxdiff
                );
            }
            let verdict = if r.ok() { "pass" } else { "FAIL" };
            let _ = writeln!(
                s,
                "; f64 vs finite differences: {:.3e}: {verdict}",
                r.fd_rel_err
            );
        }
        s
    }

    /// The table `makemore gradcheck` prints: the f64 loss at init, then one line per tensor.
    pub fn table_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "loss at init (f64): {:.4}", self.loss);
        let _ = writeln!(
            s,
            "{:15} | {:^24} | {:^35} | {:^17}",
            "tensor", "atomic f32 vs f64", "fused f32 vs atomic f32", "f64 vs finite diff"
        );
        let _ = writeln!(
            s,
            "{:15} | {:5} | {:16} | {:5} | {:5} | {:19} | {:17}",
            "", "appr.", "maxdiff", "exact", "appr.", "maxdiff", "max rel err"
        );
        for r in &self.rows {
            let t = &r.table;
            let fused = match t.fused_vs_atomic_f32 {
                Some(c) => format!("{:5} | {:5} | {:<19.3e}", c.exact, c.approximate, c.maxdiff),
                None => format!("{:5} | {:5} | {:19}", "-", "-", "-"),
            };
            let _ = writeln!(
                s,
                "{:15} | {:5} | {:<16.3e} | {fused} | {:.3e}",
                t.name, t.atomic_f32_vs_f64.approximate, t.atomic_f32_vs_f64.maxdiff, r.fd_rel_err
            );
        }
        s
    }
}

/// For `makemore gradcheck --explain`, per row in the table's order: the tensor, the forward line
/// of the notebook that makes it, and the notebook's (Exercise 1's) lines for its gradient; for
/// the two rows whose fused kernels the table also checks, the fused expression (Exercises 2
/// and 3).
pub const EXPLAIN: [(&str, &str, &[&str]); 26] = [
    ("logprobs", "loss = -logprobs[range(n), Yb].mean()", &[
        "dlogprobs = torch.zeros_like(logprobs)",
        "dlogprobs[range(n), Yb] = -1.0/n",
    ]),
    ("probs", "logprobs = probs.log()", &["dprobs = (1.0 / probs) * dlogprobs"]),
    ("counts_sum_inv", "probs = counts * counts_sum_inv", &[
        "dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",
    ]),
    ("counts", "probs = counts * counts_sum_inv; counts_sum = counts.sum(1, keepdims=True)", &[
        "dcounts = counts_sum_inv * dprobs",
        "dcounts += torch.ones_like(counts) * dcounts_sum",
    ]),
    ("counts_sum", "counts_sum_inv = counts_sum**-1", &[
        "dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv",
    ]),
    ("norm_logits", "counts = norm_logits.exp()", &["dnorm_logits = counts * dcounts"]),
    ("logit_maxes", "norm_logits = logits - logit_maxes", &[
        "dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)",
    ]),
    ("logits", "norm_logits = logits - logit_maxes; logit_maxes = logits.max(1, keepdim=True).values", &[
        "dlogits = dnorm_logits.clone()",
        "dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes",
        "fused (Exercise 2): dlogits = F.softmax(logits, 1); dlogits[range(n), Yb] -= 1; dlogits /= n",
    ]),
    ("h", "logits = h @ W2 + b2", &["dh = dlogits @ W2.T"]),
    ("W2", "logits = h @ W2 + b2", &["dW2 = h.T @ dlogits"]),
    ("b2", "logits = h @ W2 + b2", &["db2 = dlogits.sum(0)"]),
    ("hpreact", "h = torch.tanh(hpreact)", &["dhpreact = (1.0 - h**2) * dh"]),
    ("bngain", "hpreact = bngain * bnraw + bnbias", &[
        "dbngain = (bnraw * dhpreact).sum(0, keepdim=True)",
    ]),
    ("bnraw", "hpreact = bngain * bnraw + bnbias", &["dbnraw = bngain * dhpreact"]),
    ("bnbias", "hpreact = bngain * bnraw + bnbias", &[
        "dbnbias = dhpreact.sum(0, keepdim=True)",
    ]),
    ("bndiff", "bnraw = bndiff * bnvar_inv; bndiff2 = bndiff**2", &[
        "dbndiff = bnvar_inv * dbnraw",
        "dbndiff += (2*bndiff) * dbndiff2",
    ]),
    ("bnvar_inv", "bnraw = bndiff * bnvar_inv", &[
        "dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)",
    ]),
    ("bnvar", "bnvar_inv = (bnvar + 1e-5)**-0.5", &[
        "dbnvar = (-0.5*(bnvar + 1e-5)**-1.5) * dbnvar_inv",
    ]),
    ("bndiff2", "bnvar = 1/(n-1)*(bndiff2).sum(0, keepdim=True)", &[
        "dbndiff2 = (1.0/(n-1)) * torch.ones_like(bndiff2) * dbnvar",
    ]),
    ("hprebn", "bndiff = hprebn - bnmeani; bnmeani = 1/n*hprebn.sum(0, keepdim=True)", &[
        "dhprebn = dbndiff.clone()",
        "dhprebn += (1.0/n) * torch.ones_like(hprebn) * dbnmeani",
        "fused (Exercise 3): dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) - n/(n-1)*bnraw*(dhpreact*bnraw).sum(0))",
    ]),
    ("bnmeani", "bndiff = hprebn - bnmeani", &["dbnmeani = (-dbndiff).sum(0)"]),
    ("embcat", "hprebn = embcat @ W1 + b1", &["dembcat = dhprebn @ W1.T"]),
    ("W1", "hprebn = embcat @ W1 + b1", &["dW1 = embcat.T @ dhprebn"]),
    ("b1", "hprebn = embcat @ W1 + b1", &["db1 = dhprebn.sum(0, keepdim=True)"]),
    ("emb", "embcat = emb.view(emb.shape[0], -1)", &["demb = dembcat.view(emb.shape)"]),
    ("C", "emb = C[Xb]", &[
        "dC = torch.zeros_like(C)",
        "for k in range(Xb.shape[0]): for j in range(Xb.shape[1]): dC[Xb[k, j]] += demb[k, j]",
    ]),
];

/// The labels the notebook's `cmp` calls print for the 26 rows (some with a `d`), in its order.
const NOTEBOOK_LABELS: [&str; 26] = [
    "logprobs",
    "probs",
    "counts_sum_inv",
    "counts",
    "counts_sum",
    "norm_logits",
    "logit_maxes",
    "logits",
    "dh",
    "dW2",
    "db2",
    "hpreact",
    "bngain",
    "bnraw",
    "bnbias",
    "bndiff",
    "bnvar_inv",
    "bnvar",
    "bndiff2",
    "dhprebn",
    "dbnmeani",
    "dembcat",
    "W1",
    "b1",
    "emb",
    "C",
];

/// Python's `str(bool)`.
fn python_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional from 1e-4 to 1e16,
/// else in exponent form with at least two exponent digits (`6.51925802230835e-09`).
fn python_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = x.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        format!("{mantissa}e{sign}{digits:0>2}")
    }
}

#[cfg(test)]
mod tests {
    use super::python_float;

    #[test]
    fn floats_print_as_pythons_repr() {
        // python3 -c "print(repr(0.0), repr(6.51925802230835e-09), repr(1e-4), repr(0.5), repr(3.0), repr(1e16), repr(1.5e-300), repr(-2.5e-05))"
        let cases = [
            (0.0, "0.0"),
            (6.51925802230835e-09, "6.51925802230835e-09"),
            (1e-4, "0.0001"),
            (0.5, "0.5"),
            (3.0, "3.0"),
            (1e16, "1e+16"),
            (1.5e-300, "1.5e-300"),
            (-2.5e-05, "-2.5e-05"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "{x}");
        }
    }
}
