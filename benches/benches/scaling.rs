//! Large models: the training step's FLOP/s against the hidden size and the batch, on one
//! thread and on two, next to a tuned sgemm (matrixmultiply's, through ndarray's safe API) running the step's six products
//! at the same shapes.
//!
//! `cargo bench -p benches --bench scaling`; a filter picks sizes (`-- 'h1024 n1024'`);
//! `MAKEMORE_ISA=avx2` times that path instead of the best one; `benches/scaling.py` prints the
//! table. Sizes: H in {64, 256, 1024, 4096} at batch 1024, and batch in {32, 256, 4096} at
//! H = 1024; V = 27, T = 3, E = 10 (the notebook's), so the first layer's products have an inner
//! size of T*E = 30. One group per size, `scaling hH nN`, with:
//! - `in_turn_ISA`: `Kernels::train_step` with its shards in turn on this thread (`InTurn`);
//! - `rayon2_ISA`: the same step on a rayon pool of 2 threads (`cli::parallel::Rayon`, as
//!   `makemore train --threads 2` runs it);
//! - `sgemm`: matrixmultiply's sgemm (`ndarray::linalg::general_mat_mul`) on one thread, the six products of the step at the whole batch's
//!   shapes (row-major, transposes by strides), nothing else.
//!
//! Throughput (as "elem/s") is the FLOPs of the six products (2 per multiply-add) for all three,
//! so the step's figure counts its other kernels as overhead. Before timing, the two schedules
//! are checked to give the same bits, and the sgemm products are checked against a plain loop.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use std::hint::black_box;
use std::time::Duration;

use benches::{Data, StepState};
use cli::parallel::{pool, Rayon};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use makemore_core::model::Dims;
use makemore_core::simd::{Isa, Kernels};

const LR: f32 = 0.01;

/// (hidden, batch) of every group.
const SIZES: [(usize, usize); 7] = [
    (64, 1024),
    (256, 1024),
    (1024, 1024),
    (4096, 1024),
    (1024, 32),
    (1024, 256),
    (1024, 4096),
];

fn dims(hidden: usize) -> Dims {
    Dims {
        hidden,
        ..Dims::EXERCISE4
    }
}

/// FLOPs of the six products of a step of `n` rows.
fn step_flop(d: &Dims, n: usize) -> u64 {
    let (te, h, v) = (d.embcat(), d.hidden, d.vocab);
    2 * 3 * (n * te * h + n * h * v) as u64
}

/// A strided view of a row-major buffer as a `rows` x `cols` matrix: element (i, j) is
/// `data[i * rs + j * cs]` (a transpose swaps the strides).
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// `data` as a row-major `rows` x `cols` matrix.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        assert_eq!(data.len(), rows * cols, "matrix shape");
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    fn t(self) -> Mat<'a> {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
    /// The matrix as an ndarray view (its strides).
    fn view(&self) -> ArrayView2<'a, f32> {
        ArrayView2::from_shape(
            (self.rows, self.cols).strides((self.rs, self.cs)),
            self.data,
        )
        .expect("a strided view inside its slice")
    }
    /// Every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows > 0
            && self.cols > 0
            && (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst` (row-major a.rows x b.cols) = a @ b, by matrixmultiply's sgemm (through ndarray's
/// safe `general_mat_mul`) on this thread.
fn sgemm(dst: &mut [f32], a: Mat, b: Mat) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(a.in_bounds() && b.in_bounds() && b.rows == k && dst.len() == m * n);
    let mut c = ArrayViewMut2::from_shape((m, n), dst).expect("dst holds m x n");
    general_mat_mul(1.0, &a.view(), &b.view(), 0.0, &mut c);
}

/// The operands and outputs of the step's six products for a batch of `n` rows.
struct Products {
    n: usize,
    d: Dims,
    /// inputs: embcat (n, T*E), W1 (T*E, H), dhprebn (n, H), h (n, H), W2 (H, V), dlogits (n, V)
    embcat: Vec<f32>,
    w1: Vec<f32>,
    dhprebn: Vec<f32>,
    h: Vec<f32>,
    w2: Vec<f32>,
    dlogits: Vec<f32>,
    /// outputs: hprebn (n, H), dW1 (T*E, H), dembcat (n, T*E), logits (n, V), dW2 (H, V),
    /// dh (n, H)
    out: [Vec<f32>; 6],
}

impl Products {
    fn new(d: Dims, n: usize) -> Products {
        let (te, h, v) = (d.embcat(), d.hidden, d.vocab);
        let mut data = Data::new(11);
        Products {
            n,
            d,
            embcat: data.vec(n * te, 1.0),
            w1: data.vec(te * h, 0.3),
            dhprebn: data.vec(n * h, 0.01),
            h: data.vec(n * h, 1.0),
            w2: data.vec(h * v, 0.1),
            dlogits: data.vec(n * v, 0.03),
            out: [n * h, te * h, n * te, n * v, h * v, n * h].map(|len| vec![f32::NAN; len]),
        }
    }

    /// The (a, b) of each product, in the order of `out`.
    fn operands(&self) -> [(Mat<'_>, Mat<'_>); 6] {
        let (n, te, h, v) = (self.n, self.d.embcat(), self.d.hidden, self.d.vocab);
        let embcat = Mat::new(&self.embcat, n, te);
        let w1 = Mat::new(&self.w1, te, h);
        let dhprebn = Mat::new(&self.dhprebn, n, h);
        let hm = Mat::new(&self.h, n, h);
        let w2 = Mat::new(&self.w2, h, v);
        let dlogits = Mat::new(&self.dlogits, n, v);
        [
            (embcat, w1),          // hprebn = embcat @ W1
            (embcat.t(), dhprebn), // dW1 = embcat.T @ dhprebn
            (dhprebn, w1.t()),     // dembcat = dhprebn @ W1.T
            (hm, w2),              // logits = h @ W2
            (hm.t(), dlogits),     // dW2 = h.T @ dlogits
            (dlogits, w2.t()),     // dh = dlogits @ W2.T
        ]
    }

    /// All six products.
    fn run(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        for (dst, (a, b)) in out.iter_mut().zip(self.operands()) {
            sgemm(dst, a, b);
        }
        self.out = out;
    }

    /// Panics unless every output is within 1e-4 (relative to the product's scale) of a
    /// plain f64 loop, on a few sampled elements.
    fn check(&self) {
        for (p, (dst, (a, b))) in self.out.iter().zip(self.operands()).enumerate() {
            let n = b.cols;
            for idx in (0..dst.len()).step_by(dst.len() / 97 + 1) {
                let (i, j) = (idx / n, idx % n);
                let (mut want, mut scale) = (0f64, 0f64);
                for l in 0..a.cols {
                    let x = a.at(i, l) as f64 * b.at(l, j) as f64;
                    want += x;
                    scale += x.abs();
                }
                let got = dst[idx] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * scale.max(1e-30),
                    "sgemm product {p} element ({i}, {j}) is {got}, a plain loop gives {want}"
                );
            }
        }
    }
}

fn scaling(c: &mut Criterion) {
    let k = match Isa::from_env().unwrap_or_else(|e| panic!("{e}")) {
        Some(isa) => Kernels::new(isa)
            .unwrap_or_else(|e| panic!("MAKEMORE_ISA={isa} is forced but unavailable: {e}")),
        None => Kernels::best(),
    };
    let isa = k.isa().name();
    let pool2 = pool(2).unwrap();
    for (hidden, n) in SIZES {
        let d = dims(hidden);
        let mut group = c.benchmark_group(format!("scaling h{hidden} n{n}"));
        group.throughput(Throughput::Elements(step_flop(&d, n)));

        let mut in_turn = StepState::new(d, n, 7);
        let mut rayon = StepState::new(d, n, 7);
        in_turn.step(&k, LR);
        pool2.install(|| rayon.step_on(&k, &Rayon, LR));
        assert!(
            in_turn
                .params
                .iter()
                .zip(&rayon.params)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "H={hidden} n={n}: the step on 2 threads differs from the step in turn"
        );
        group.bench_function(format!("in_turn_{isa}"), |b| {
            b.iter(|| black_box(in_turn.step(&k, LR)))
        });
        group.bench_function(format!("rayon2_{isa}"), |b| {
            pool2.install(|| b.iter(|| black_box(rayon.step_on(&k, &Rayon, LR))))
        });
        drop((in_turn, rayon));

        let mut products = Products::new(d, n);
        products.run();
        products.check();
        group.bench_function("sgemm", |b| {
            b.iter(|| {
                products.run();
                black_box(&products.out);
            })
        });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = scaling
}
criterion_main!(benches);
