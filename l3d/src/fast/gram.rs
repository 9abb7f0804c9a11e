//! The decoder's Gram matrices and their adjoints, and the phase of a step that computes them.
//!
//! For one tensor with factors `F_m: [d_m, C]` (`C = n_v R`, column `vR + r` the mode-`m`
//! vector of term `r` of subnetwork `v`):
//!
//! - `K_m = F_m^T F_m: [C, C]`, the per-mode Gram; the Hadamard product of the `K_m` is
//!   [`CpTensor::term_gram`], and `G[v, w] = sum_{r, s} prod_m K_m[vR + r, wR + s]` is
//!   `<V[v], V[w]>`.
//! - Adjoint: with `dG = dL/dG: [n_v, n_v]` and `dG_E[vR + r, wR + s] = dG[v, w]`,
//!   `dL/dK_m = dG_E * prod_{m' != m} K_m'`, and since it is symmetric,
//!   `dL/dF_m = 2 F_m dL/dK_m`.
//!
//! [`CpTensor::term_gram`]: crate::cp::CpTensor::term_gram

use super::blocks::{add_blocks, expand};
use super::layout::matrix;
use crate::decomposition::Decomposition;
use crate::par::{each, each_block, fit, ScratchPool};
use tensor::gemm::{gemm, gram_rows, mirror_upper, GemmScratch, MatMut, MatRef};
use tensor::{Float, Tensor};

/// `g[v, w] += sum_{r, s} prod_m K_m[vR + r, wR + s]` for one tensor's mode Grams `ks`.
/// `row` is scratch. Row by row: the Hadamard product of the Grams' rows (a vector loop), then
/// its `R`-wide blocks added in `(r, s)` order, as a scalar loop over `(r, s)` would.
pub(crate) fn add_subnetwork_gram<T: Float, K: AsRef<[T]>>(
    ks: &[K],
    n_v: usize,
    rank: usize,
    g: &mut [T],
    row: &mut Vec<T>,
) {
    let cols = n_v * rank;
    fit(row, cols + n_v);
    let (h, total) = row.split_at_mut(cols);
    for v in 0..n_v {
        total.fill(T::zero());
        for r in 0..rank {
            let span = (v * rank + r) * cols..(v * rank + r + 1) * cols;
            h.copy_from_slice(&ks[0].as_ref()[span.clone()]);
            for k in &ks[1..] {
                for (x, &y) in h.iter_mut().zip(&k.as_ref()[span.clone()]) {
                    *x *= y;
                }
            }
            add_blocks(h, rank, total);
        }
        for (gw, &t) in g[v * n_v..(v + 1) * n_v].iter_mut().zip(total.iter()) {
            *gw += t;
        }
    }
}

/// `out = scale dG_E * prod_{m' != skip} K_m'`: `[C, C]`, `scale` times the gradient of the
/// loss with respect to `K_skip`. (`scale` is 1 or 2: an exact scaling.)
pub(crate) fn gram_adjoint<T: Float, K: AsRef<[T]>>(
    ks: &[K],
    skip: usize,
    dg: &[T],
    scale: T,
    (n_v, rank): (usize, usize),
    out: &mut Vec<T>,
) {
    let cols = n_v * rank;
    fit(out, cols * cols + cols);
    let (out, expanded) = out.split_at_mut(cols * cols);
    for (v, rows) in out.chunks_exact_mut(rank * cols).enumerate() {
        // dG_E's rows vR..vR + R: each dG[v, w], scaled, repeated R times.
        expand(&dg[v * n_v..(v + 1) * n_v], rank, expanded);
        if scale != T::one() {
            expanded.iter_mut().for_each(|e| *e = scale * *e);
        }
        for (r, out_row) in rows.chunks_exact_mut(cols).enumerate() {
            let span = (v * rank + r) * cols..(v * rank + r + 1) * cols;
            let mut first = true;
            for (m, k) in ks.iter().enumerate() {
                if m == skip {
                    continue;
                }
                let k_row = &k.as_ref()[span.clone()];
                if first {
                    for ((o, &e), &y) in out_row.iter_mut().zip(expanded.iter()).zip(k_row) {
                        *o = e * y;
                    }
                    first = false;
                } else {
                    for (o, &y) in out_row.iter_mut().zip(k_row) {
                        *o *= y;
                    }
                }
            }
            if first {
                out_row.copy_from_slice(expanded);
            }
        }
    }
}

/// `grad += 2 F h` for `F: [d, C]` and the symmetric `h = dL/dK: [C, C]`.
pub(crate) fn add_gram_gradient<T: Float>(
    f: &Tensor<T>,
    h: &[T],
    grad: &mut Tensor<T>,
    scratch: &mut GemmScratch<T>,
) {
    let (d, cols) = (f.shape()[0], f.shape()[1]);
    gemm(
        T::from_f64(2.0),
        MatRef::rows(f.data(), d, cols),
        MatRef::rows(h, cols, cols),
        T::one(),
        MatMut::rows(grad.data_mut(), d, cols),
        scratch,
    );
}

/// Rows of a mode Gram per task (`K_m` is computed in blocks of rows on and above its
/// diagonal, then mirrored).
const GRAM_ROWS: usize = 32;

/// The decoder's Grams of one tensor: its mode Grams `K_m` (`[C, C]` each, in mode order),
/// its part `G_t` of `G` (`[n_v, n_v]`), and scratch.
#[derive(Debug, Default)]
struct TensorGrams<T> {
    modes: Vec<Vec<T>>,
    g: Vec<T>,
    row: Vec<T>,
}

/// The decoder's Grams of every decomposed tensor, reused from step to step.
///
/// Invariant: one [`TensorGrams`] per decomposed tensor, in order, with one mode Gram per
/// mode; after [`DecoderGrams::finish`], each `K_m` is whole and `G_t` formed.
#[derive(Debug, Default)]
pub(crate) struct DecoderGrams<T> {
    tensors: Vec<TensorGrams<T>>,
}

impl<T: Float> DecoderGrams<T> {
    /// Buffers for tensors of `modes[t]` modes each.
    pub fn new(modes: impl Iterator<Item = usize>) -> Self {
        let tensors = modes
            .map(|count| TensorGrams {
                modes: vec![Vec::new(); count],
                ..Default::default()
            })
            .collect();
        DecoderGrams { tensors }
    }

    /// Blocks of rows on and above the diagonal of every mode Gram `K_m` of `d`'s decoder
    /// ([`tensor::gemm::gram_rows`]), each block one task.
    pub fn compute_blocks(&mut self, d: &Decomposition<T>, parallel: bool, pool: &ScratchPool<T>) {
        each(&mut self.tensors, parallel, |t, tg| {
            let cp = &d.decoder[t];
            let cols = cp.columns();
            for (k, f) in tg.modes.iter_mut().zip(&cp.factors) {
                fit(k, cols * cols);
                each_block(k, GRAM_ROWS * cols, parallel, |b, rows| {
                    pool.with(|s| gram_rows(matrix(f), b * GRAM_ROWS, rows, s));
                });
            }
        });
    }

    /// Completes each `K_m` and forms each `G_t` (a task per tensor), then
    /// `g <- G = sum_t G_t` in tensor order.
    pub fn finish(&mut self, d: &Decomposition<T>, parallel: bool, g: &mut [T]) {
        each(&mut self.tensors, parallel, |t, tg| {
            let cp = &d.decoder[t];
            for k in &mut tg.modes {
                mirror_upper(k, cp.columns());
            }
            fit(&mut tg.g, cp.n_v * cp.n_v);
            tg.g.fill(T::zero());
            add_subnetwork_gram(&tg.modes, cp.n_v, cp.rank, &mut tg.g, &mut tg.row);
        });
        g.fill(T::zero());
        for tg in &self.tensors {
            for (g, &x) in g.iter_mut().zip(&tg.g) {
                *g += x;
            }
        }
    }

    /// The mode Grams of tensor `t`, in mode order.
    pub fn modes(&self, t: usize) -> &[Vec<T>] {
        &self.tensors[t].modes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cp::CpTensor;
    use crate::fast::dense::{dense_form, DenseScratch};
    use tensor::rng;

    #[test]
    fn gram_of_the_mode_grams_is_the_subnetwork_gram() {
        let cp = CpTensor::<f64>::random(&[3, 4, 2], 3, 2, 1.0, &mut rng(5));
        let mut scratch = GemmScratch::default();
        let ks: Vec<Vec<f64>> = cp
            .factors
            .iter()
            .map(|f| {
                let cols = f.shape()[1];
                let mut k = vec![0.0; cols * cols];
                let fm = MatRef::rows(f.data(), f.shape()[0], cols);
                tensor::gemm::gram(fm, &mut k, &mut scratch);
                k
            })
            .collect();
        let mut g = vec![0.0; 9];
        add_subnetwork_gram(&ks, 3, 2, &mut g, &mut Vec::new());
        let mut v = Vec::new();
        dense_form(&cp, &mut v, &mut DenseScratch::default());
        for a in 0..3 {
            let column: Vec<f64> = (0..24).map(|flat| v[flat * 3 + a]).collect();
            assert_eq!(column, cp.dense_subnetwork(a).data());
            for b in 0..3 {
                let want = cp.dense_subnetwork(a).dot(&cp.dense_subnetwork(b));
                assert!((g[a * 3 + b] - want).abs() < 1e-12, "G[{a}, {b}]");
            }
        }
    }
}
