//! The two linear layers: `hprebn = embcat @ W1 + b1` (with the embedding gather `embcat = C[Xb]`
//! fused in, so embcat is never stored) and `logits = h @ W2 + b2`, and the products of their
//! backward pass. Row-major throughout; every loop runs over the contiguous last axis.

use crate::float::Float;

/// `out += a * x` elementwise (the inner loop of every product here). `out.len() == x.len()`.
#[inline(always)]
pub fn axpy<F: Float>(out: &mut [F], a: F, x: &[F]) {
    for (o, &xi) in out.iter_mut().zip(x) {
        *o += a * xi;
    }
}

/// `sum_i a[i] * b[i]`, summed in index order.
#[inline(always)]
pub fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    let mut acc = F::ZERO;
    for (&ai, &bi) in a.iter().zip(b) {
        acc += ai * bi;
    }
    acc
}

/// forward: `hprebn = C[Xb].view(n, T*E) @ W1 + b1`.
///
/// `hprebn` (n, H) out; `xb` (n, T) token ids, each < V (checked by the caller); `C` (V, E);
/// `W1` (T*E, H); `b1` (H).
pub fn embed_linear_forward<F: Float>(
    hprebn: &mut [F],
    xb: &[u8],
    C: &[F],
    W1: &[F],
    b1: &[F],
    context: usize,
    embedding: usize,
) {
    let h = b1.len();
    for (row, x) in hprebn.chunks_exact_mut(h).zip(xb.chunks_exact(context)) {
        row.copy_from_slice(b1);
        for (t, &ix) in x.iter().enumerate() {
            let emb = &C[ix as usize * embedding..][..embedding];
            for (e, &embcat_i) in emb.iter().enumerate() {
                axpy(row, embcat_i, &W1[(t * embedding + e) * h..][..h]);
            }
        }
    }
}

/// forward: `logits = h @ W2 + b2`. `logits` (n, V) out; `h` (n, H); `W2` (H, V); `b2` (V).
pub fn linear_forward<F: Float>(logits: &mut [F], h: &[F], W2: &[F], b2: &[F]) {
    let v = b2.len();
    let hidden = W2.len() / v;
    for (row, h_row) in logits.chunks_exact_mut(v).zip(h.chunks_exact(hidden)) {
        row.copy_from_slice(b2);
        for (j, &hj) in h_row.iter().enumerate() {
            axpy(row, hj, &W2[j * v..][..v]);
        }
    }
}

/// `dbias = dout.sum(0)`: sum over the batch, per output. `dbias` (m) out; `dout` (n, m).
pub fn bias_backward<F: Float>(dbias: &mut [F], dout: &[F]) {
    dbias.fill(F::ZERO);
    for row in dout.chunks_exact(dbias.len()) {
        for (d, &g) in dbias.iter_mut().zip(row) {
            *d += g;
        }
    }
}
