//! The notebook's gradient check, reusable: its 26 `cmp` rows (each tensor with where it lives in
//! the atomic tape and where its gradient is), Ridders' finite differences, and the tolerance
//! test of `torch.allclose`. Used by the tests and by `makemore gradcheck`.

use crate::atomic::{AtomicGrads, AtomicTape, Stage};
use crate::float::Float;
use crate::model::Params;

type Tape<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> = AtomicTape<F, N, V, T, E, TE, H>;
type Grads<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> = AtomicGrads<F, N, V, T, E, TE, H>;

/// Where a tensor lives: an intermediate of the tape (perturbed there, then the forward pass
/// re-run from the stage after it) or a parameter (the forward pass re-run from the start).
pub enum Site<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    Tape(fn(&mut Tape<F, N, V, T, E, TE, H>) -> &mut [F], Stage),
    Param(fn(&mut Params<F, V, T, E, TE, H>) -> &mut [F]),
}

pub struct Row<
    F,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    pub name: &'static str,
    pub site: Site<F, N, V, T, E, TE, H>,
    pub grad: fn(&Grads<F, N, V, T, E, TE, H>) -> &[F],
}

/// The notebook's 26 `cmp` rows, in its order.
pub fn rows<
    F: Float,
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>() -> [Row<F, N, V, T, E, TE, H>; 26] {
    use Site::{Param, Tape as Tp};
    macro_rules! row {
        ($name:literal, $site:expr, |$g:ident| $grad:expr) => {
            Row {
                name: $name,
                site: $site,
                grad: |$g| $grad,
            }
        };
    }
    [
        row!(
            "logprobs",
            Tp(|t| t.logprobs.as_flattened_mut(), Stage::Loss),
            |g| g.dlogprobs.as_flattened()
        ),
        row!(
            "probs",
            Tp(|t| t.probs.as_flattened_mut(), Stage::Logprobs),
            |g| g.dprobs.as_flattened()
        ),
        row!(
            "counts_sum_inv",
            Tp(|t| &mut t.counts_sum_inv, Stage::Probs),
            |g| &g.dcounts_sum_inv
        ),
        row!(
            "counts",
            Tp(|t| t.counts.as_flattened_mut(), Stage::CountsSum),
            |g| g.dcounts.as_flattened()
        ),
        row!(
            "counts_sum",
            Tp(|t| &mut t.counts_sum, Stage::CountsSumInv),
            |g| &g.dcounts_sum
        ),
        row!(
            "norm_logits",
            Tp(|t| t.norm_logits.as_flattened_mut(), Stage::Counts),
            |g| g.dnorm_logits.as_flattened()
        ),
        row!(
            "logit_maxes",
            Tp(|t| &mut t.logit_maxes, Stage::NormLogits),
            |g| &g.dlogit_maxes
        ),
        row!(
            "logits",
            Tp(|t| t.logits.as_flattened_mut(), Stage::LogitMaxes),
            |g| g.dlogits.as_flattened()
        ),
        row!("h", Tp(|t| t.h.as_flattened_mut(), Stage::Logits), |g| g
            .dh
            .as_flattened()),
        row!("W2", Param(|p| p.W2.as_flattened_mut()), |g| g
            .dparams
            .W2
            .as_flattened()),
        row!("b2", Param(|p| &mut p.b2), |g| &g.dparams.b2),
        row!(
            "hpreact",
            Tp(|t| t.hpreact.as_flattened_mut(), Stage::H),
            |g| g.dhpreact.as_flattened()
        ),
        row!("bngain", Param(|p| &mut p.bngain), |g| &g.dparams.bngain),
        row!(
            "bnraw",
            Tp(|t| t.bnraw.as_flattened_mut(), Stage::Hpreact),
            |g| g.dbnraw.as_flattened()
        ),
        row!("bnbias", Param(|p| &mut p.bnbias), |g| &g.dparams.bnbias),
        row!(
            "bndiff",
            Tp(|t| t.bndiff.as_flattened_mut(), Stage::Bndiff2),
            |g| g.dbndiff.as_flattened()
        ),
        row!("bnvar_inv", Tp(|t| &mut t.bnvar_inv, Stage::Bnraw), |g| &g
            .dbnvar_inv),
        row!("bnvar", Tp(|t| &mut t.bnvar, Stage::BnvarInv), |g| &g
            .dbnvar),
        row!(
            "bndiff2",
            Tp(|t| t.bndiff2.as_flattened_mut(), Stage::Bnvar),
            |g| g.dbndiff2.as_flattened()
        ),
        row!(
            "hprebn",
            Tp(|t| t.hprebn.as_flattened_mut(), Stage::Bnmeani),
            |g| g.dhprebn.as_flattened()
        ),
        row!("bnmeani", Tp(|t| &mut t.bnmeani, Stage::Bndiff), |g| &g
            .dbnmeani),
        row!(
            "embcat",
            Tp(|t| t.embcat.as_flattened_mut(), Stage::Hprebn),
            |g| g.dembcat.as_flattened()
        ),
        row!("W1", Param(|p| p.W1.as_flattened_mut()), |g| g
            .dparams
            .W1
            .as_flattened()),
        row!("b1", Param(|p| &mut p.b1), |g| &g.dparams.b1),
        row!(
            "emb",
            Tp(
                |t| t.emb.as_flattened_mut().as_flattened_mut(),
                Stage::Embcat
            ),
            |g| g.demb.as_flattened().as_flattened()
        ),
        row!("C", Param(|p| p.C.as_flattened_mut()), |g| g
            .dparams
            .C
            .as_flattened()),
    ]
}

/// Tensors that must stay positive (ln, 1/x or sqrt of them downstream): step at most |x| / 2.
pub const POSITIVE: [&str; 6] = [
    "probs",
    "counts",
    "counts_sum",
    "counts_sum_inv",
    "bnvar",
    "bndiff2",
];

/// The first step of Ridders' method for a value of tensor `name` whose scale is `x`.
pub fn start_step(name: &str, x: f64) -> f64 {
    if name == "bnvar" || name == "bndiff2" {
        // bnvar enters as (bnvar + eps)**-0.5: its scale is bnvar + eps
        0.01 * (x.abs() + crate::BN_EPS)
    } else if POSITIVE.contains(&name) {
        0.01 * x.abs()
    } else {
        1e-3 * x.abs().max(0.1)
    }
}

/// Ridders' extrapolation of central differences (Numerical Recipes, `dfridr`): central
/// differences at steps h, h/1.4, h/1.4^2, ... extrapolated to step 0 by a Neville tableau; returns
/// the entry with the smallest error estimate. Far more accurate than one fixed step when the
/// curvature scale is unknown (batchnorm of 2 rows, probs of 1e-3).
pub fn ridders(f: &mut impl FnMut(f64) -> f64, h0: f64) -> f64 {
    const NTAB: usize = 16;
    const CON: f64 = 1.4;
    const CON2: f64 = CON * CON;
    let mut a = [[0.0f64; NTAB]; NTAB];
    let mut hh = h0;
    a[0][0] = (f(hh) - f(-hh)) / (2.0 * hh);
    let mut err = f64::INFINITY;
    let mut ans = a[0][0];
    for i in 1..NTAB {
        hh /= CON;
        a[0][i] = (f(hh) - f(-hh)) / (2.0 * hh);
        let mut fac = CON2;
        for j in 1..=i {
            a[j][i] = (a[j - 1][i] * fac - a[j - 1][i - 1]) / (fac - 1.0);
            fac *= CON2;
            let errt = (a[j][i] - a[j - 1][i])
                .abs()
                .max((a[j][i] - a[j - 1][i - 1]).abs());
            if errt <= err {
                err = errt;
                ans = a[j][i];
            }
        }
        if (a[i][i] - a[i - 1][i - 1]).abs() >= 2.0 * err {
            break;
        }
    }
    ans
}

/// One comparison of the notebook's `cmp`: bitwise equal, `allclose`, largest difference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    pub exact: bool,
    pub approximate: bool,
    pub maxdiff: f64,
}

/// Compares `ours` with `reference` the way the notebook's `cmp` does, with one change:
/// `approximate` is `|a - b| <= 1e-5 * |b| + 1e-5 * max|reference|`. torch.allclose's absolute
/// 1e-8 presumes both sides are f32 computed alike; an f32 gradient against an f64 one (or a
/// fused kernel's against the atomic one) differs by f32 rounding of the tensor's scale, e.g.
/// 3e-8 in dW2 whose largest element is 0.05.
pub fn compare<A: Float, B: Float>(ours: &[A], reference: &[B]) -> Comparison {
    compare_at_scale(ours, reference, max_abs(reference))
}

/// Largest absolute value (0 for an empty slice; NaN if any is NaN).
pub fn max_abs<F: Float>(x: &[F]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| {
        if v.is_nan() {
            f64::NAN
        } else {
            m.max(v.to_f64().abs())
        }
    })
}

/// Gradients that are zero in exact arithmetic, so only rounding noise is left to compare:
/// softmax is shift invariant (dlogit_maxes) and batchnorm cancels b1 (db1). Each is a sum of
/// the second tensor's gradient, whose scale is the one to compare it at.
pub const VANISHING: [(&str, &str); 2] = [("logit_maxes", "norm_logits"), ("b1", "hprebn")];

/// [`compare`] with the tensor's scale given: `|a - b| <= 1e-5 * |b| + 1e-5 * scale`.
pub fn compare_at_scale<A: Float, B: Float>(ours: &[A], reference: &[B], scale: f64) -> Comparison {
    let mut c = Comparison {
        exact: ours.len() == reference.len(),
        approximate: ours.len() == reference.len(),
        maxdiff: 0.0,
    };
    for (&a, &b) in ours.iter().zip(reference) {
        let (a, b) = (a.to_f64(), b.to_f64());
        let d = (a - b).abs();
        c.exact &= a.to_bits() == b.to_bits();
        c.approximate &= d <= 1e-5 * b.abs() + 1e-5 * scale;
        c.maxdiff = if d.is_nan() || d > c.maxdiff {
            d
        } else {
            c.maxdiff
        };
    }
    c
}

/// One row of the gradient-check table.
#[derive(Clone, Copy, Debug)]
pub struct TableRow {
    pub name: &'static str,
    /// The atomic f32 gradient against the atomic f64 one (the notebook's autograd reference).
    pub atomic_f32_vs_f64: Comparison,
    /// The fused f32 gradient against the atomic f32 one, for the tensors the fused path
    /// produces (it never forms the cross-entropy's or batchnorm's inner intermediates).
    pub fused_vs_atomic_f32: Option<Comparison>,
}

impl TableRow {
    /// Every comparison of the row is approximately equal.
    pub fn ok(&self) -> bool {
        self.atomic_f32_vs_f64.approximate && self.fused_vs_atomic_f32.is_none_or(|c| c.approximate)
    }
}

/// The buffers of [`table`]: large, so the caller chooses where they live (`Box`, `static`).
#[derive(Clone, Debug)]
pub struct TableStorage<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
> {
    pub tape64: AtomicTape<f64, N, V, T, E, TE, H>,
    pub grads64: AtomicGrads<f64, N, V, T, E, TE, H>,
    pub tape32: AtomicTape<f32, N, V, T, E, TE, H>,
    pub grads32: AtomicGrads<f32, N, V, T, E, TE, H>,
    pub params32: Params<f32, V, T, E, TE, H>,
    pub fused_grads32: Params<f32, V, T, E, TE, H>,
    pub acts32: crate::train::Activations<f32, N, V, T, E, TE, H>,
}

impl<
        const N: usize,
        const V: usize,
        const T: usize,
        const E: usize,
        const TE: usize,
        const H: usize,
    > TableStorage<N, V, T, E, TE, H>
{
    pub const ZERO: Self = TableStorage {
        tape64: AtomicTape::ZERO,
        grads64: AtomicGrads::ZERO,
        tape32: AtomicTape::ZERO,
        grads32: AtomicGrads::ZERO,
        params32: Params::ZERO,
        fused_grads32: Params::ZERO,
        acts32: crate::train::Activations::ZERO,
    };
}

/// The notebook's comparison table for its 26 tensors on one batch: atomic f32 against atomic
/// f64, and fused f32 against atomic f32. `params` are f64; the f32 runs use them rounded.
pub fn table<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    params: &Params<f64, V, T, E, TE, H>,
    Xb: &[[u8; T]; N],
    Yb: &[u8; N],
    s: &mut TableStorage<N, V, T, E, TE, H>,
) -> Result<[TableRow; 26], crate::Error> {
    for (d, src) in s
        .params32
        .view_mut()
        .tensors_mut()
        .into_iter()
        .zip(params.view().tensors())
    {
        for (d, &x) in d.iter_mut().zip(src) {
            *d = x as f32;
        }
    }
    s.tape64.forward(params, Xb, Yb)?;
    s.grads64.backward(&s.tape64, params, Xb, Yb)?;
    s.tape32.forward(&s.params32, Xb, Yb)?;
    s.grads32.backward(&s.tape32, &s.params32, Xb, Yb)?;
    let (xb, yb) = (Xb.as_flattened(), &Yb[..]);
    {
        let mut acts = s.acts32.view_mut();
        crate::train::forward(s.params32.view(), &mut acts, xb, yb)?;
        crate::train::backward(
            s.params32.view(),
            &mut s.fused_grads32.view_mut(),
            &mut acts,
            xb,
            yb,
        )?;
    }
    let rows32 = rows::<f32, N, V, T, E, TE, H>();
    let rows64 = rows::<f64, N, V, T, E, TE, H>();
    let fused = s.fused_grads32.view();
    let acts = &s.acts32;
    let mut out = [TableRow {
        name: "",
        atomic_f32_vs_f64: compare::<f64, f64>(&[], &[]),
        fused_vs_atomic_f32: None,
    }; 26];
    let scale_of = |name: &str| -> f64 {
        let name = VANISHING
            .iter()
            .find(|(v, _)| *v == name)
            .map_or(name, |(_, by)| *by);
        rows64
            .iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| max_abs((r.grad)(&s.grads64)))
    };
    for (i, (r32, r64)) in rows32.iter().zip(rows64.iter()).enumerate() {
        let atomic32 = (r32.grad)(&s.grads32);
        let scale = scale_of(r32.name);
        let fused_grad: Option<&[f32]> = match r32.name {
            "logits" => Some(acts.probs.as_flattened()),
            "hprebn" => Some(acts.h.as_flattened()),
            "embcat" | "emb" => Some(acts.dembcat.as_flattened()),
            name => crate::model::PARAM_NAMES
                .iter()
                .position(|&p| p == name)
                .map(|k| fused.tensors()[k]),
        };
        out[i] = TableRow {
            name: r32.name,
            atomic_f32_vs_f64: compare_at_scale(atomic32, (r64.grad)(&s.grads64), scale),
            fused_vs_atomic_f32: fused_grad.map(|g| compare_at_scale(g, atomic32, scale)),
        };
    }
    Ok(out)
}

/// The error measure of the finite-difference check: `|g - fd| / max(|g|, |fd|, FD_FLOOR)`.
/// The floor makes it absolute (1e-10 at a tolerance of 1e-6) for gradients that are zero up to
/// rounding (see [`VANISHING`]).
pub const FD_FLOOR: f64 = 1e-4;

/// The worst finite-difference error over some coordinates of one tensor.
#[derive(Clone, Copy, Debug, Default)]
pub struct FdResult {
    /// `|g - fd| / max(|g|, |fd|, FD_FLOOR)`, NaN if any was NaN.
    pub rel_err: f64,
    pub index: usize,
    pub analytic: f64,
    pub finite_difference: f64,
}

/// Checks the gradient of `row` at the coordinates `indices` against Ridders' finite differences
/// of the loss: `tape` is scratch, `reference` the forward pass of `params` on (`Xb`, `Yb`) and
/// `grads` its backward. `params` is restored before returning.
#[allow(clippy::too_many_arguments)]
pub fn finite_difference_check<
    const N: usize,
    const V: usize,
    const T: usize,
    const E: usize,
    const TE: usize,
    const H: usize,
>(
    row: &Row<f64, N, V, T, E, TE, H>,
    indices: impl IntoIterator<Item = usize>,
    params: &mut Params<f64, V, T, E, TE, H>,
    Xb: &[[u8; T]; N],
    Yb: &[u8; N],
    reference: &AtomicTape<f64, N, V, T, E, TE, H>,
    grads: &AtomicGrads<f64, N, V, T, E, TE, H>,
    tape: &mut AtomicTape<f64, N, V, T, E, TE, H>,
) -> Result<FdResult, crate::Error> {
    let g = (row.grad)(grads);
    let mut worst = FdResult::default();
    for i in indices {
        if i >= g.len() {
            return Err(crate::Error::InvalidArgument(
                "finite-difference index out of range",
            ));
        }
        let x = match row.site {
            Site::Tape(get, _) => {
                tape.clone_from(reference);
                get(tape)[i]
            }
            Site::Param(get) => get(params)[i],
        };
        let mut failed = None;
        let mut loss_at = |delta: f64| -> f64 {
            tape.clone_from(reference);
            let loss = match row.site {
                Site::Tape(get, from) => {
                    get(tape)[i] += delta;
                    tape.forward_from(from, params, Xb, Yb)
                }
                Site::Param(get) => {
                    get(params)[i] = x + delta;
                    let loss = tape.forward(params, Xb, Yb);
                    get(params)[i] = x;
                    loss
                }
            };
            loss.unwrap_or_else(|e| {
                failed = Some(e);
                f64::NAN
            })
        };
        // bndiff2 enters only through its column's sum: its scale is bnvar's, not its own.
        let scale = if row.name == "bndiff2" {
            reference.bnvar[i % H]
        } else {
            x
        };
        let fd = ridders(&mut loss_at, start_step(row.name, scale));
        if let Some(e) = failed {
            return Err(e);
        }
        let err = (g[i] - fd).abs() / g[i].abs().max(fd.abs()).max(FD_FLOOR);
        if err > worst.rel_err || err.is_nan() {
            worst = FdResult {
                rel_err: err,
                index: i,
                analytic: g[i],
                finite_difference: fd,
            };
        }
    }
    Ok(worst)
}
