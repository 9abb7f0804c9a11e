//! The backward into the CP factors: one task per factor gradient, each owning its output, so
//! the tasks run in parallel and no sum depends on the number of threads. Each task adds the
//! chunks' contributions in chunk order (derivation in `fast/mod.rs`).
//!
//! For side `s` (encoder: `dS = dL/dc`; decoder: `dS = dL/dd`), tensor `t`, mode `m`:
//! - factored gradients: `dL/dF_0 = sum_chunks left^T (dS_E * Q)` and
//!   `dL/dF_1 = sum_chunks right^T (dS_E * P)`, with `dS_E[i M + m', vR + r] = dS[i, v]`;
//! - dense gradients: `dV = sum_chunks dS^T g: [n_v, numel]`, then the adjoint of the dense
//!   form (`gram::dense_form_adjoint`);
//! - decoder factors also get the Gram term `2 F_m (dG_E * prod_{m' != m} K_m')`.

use super::encode::{fit, GradRows};
use super::gemm::{gemm, GemmScratch, MatMut, MatRef};
use super::gram::{add_gram_gradient, dense_form_adjoint, gram_adjoint, DenseScratch};
use super::{Chunk, FastContext, Side};
use tensor::{Float, Tensor};

/// Which factor a task differentiates, and its scratch.
#[derive(Debug, Clone)]
pub(crate) struct FactorTask<T> {
    pub side: Side,
    pub t: usize,
    pub m: usize,
    /// `dS_E * Q` (or `* P`) for one chunk, or `dV`.
    work: Vec<T>,
    /// `dL/dK_m` for the Gram term.
    gram: Vec<T>,
    dense: DenseScratch<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> FactorTask<T> {
    pub fn new(side: Side, t: usize, m: usize) -> Self {
        Self {
            side,
            t,
            m,
            work: Vec::new(),
            gram: Vec::new(),
            dense: DenseScratch::default(),
            gemm: GemmScratch::default(),
        }
    }

    /// `grad <- dL/dF_m` of this task's side and tensor.
    pub fn run(&mut self, ctx: &FastContext<T>, chunks: &[Chunk<T>], grad: &mut Tensor<T>) {
        let cp = ctx.cp(self.side, self.t);
        let ds = ctx.coefficient_grad(self.side);
        let (n_v, rank, cols) = (cp.n_v, cp.rank, cp.columns());
        for (index, chunk) in chunks.iter().enumerate() {
            let beta = if index == 0 { T::zero() } else { T::one() };
            let ds_rows = &ds[chunk.start * n_v..(chunk.start + chunk.len) * n_v];
            match ctx.grad_rows(chunk, self.t) {
                GradRows::Outer {
                    left,
                    right,
                    m,
                    p,
                    q,
                } => {
                    // Mode 0 pairs left with Q; mode 1 pairs right with P.
                    let (x, width, y) = if self.m == 0 {
                        (left, p, chunk.products(self.t, self.side).1)
                    } else {
                        (right, q, chunk.products(self.t, self.side).0)
                    };
                    let rows = chunk.len * m;
                    fit(&mut self.work, rows * cols);
                    for (r, (w, yr)) in self
                        .work
                        .chunks_exact_mut(cols)
                        .zip(y.chunks_exact(cols))
                        .enumerate()
                    {
                        let dsr = &ds_rows[(r / m) * n_v..(r / m + 1) * n_v];
                        let terms = w.chunks_exact_mut(rank).zip(yr.chunks_exact(rank));
                        for ((wv, yv), &dsv) in terms.zip(dsr) {
                            for (wj, &yj) in wv.iter_mut().zip(yv) {
                                *wj = dsv * yj;
                            }
                        }
                    }
                    gemm(
                        T::one(),
                        MatRef::rows(x, rows, width).t(),
                        MatRef::rows(&self.work, rows, cols),
                        beta,
                        MatMut::rows(grad.data_mut(), width, cols),
                        &mut self.gemm,
                    );
                }
                GradRows::Dense { g, numel } => {
                    // dV += dS^T g: [n_v, n] @ [n, numel].
                    fit(&mut self.work, n_v * numel);
                    gemm(
                        T::one(),
                        MatRef::rows(ds_rows, chunk.len, n_v).t(),
                        MatRef::rows(g, chunk.len, numel),
                        beta,
                        MatMut::rows(&mut self.work, n_v, numel),
                        &mut self.gemm,
                    );
                }
            }
        }
        if ctx.is_dense(self.t) {
            dense_form_adjoint(cp, self.m, &self.work, grad, &mut self.dense);
        }
        if self.side == Side::Decoder {
            let ks = ctx.mode_grams(self.t);
            gram_adjoint(ks, self.m, ctx.gram_grad(), n_v, rank, &mut self.gram);
            add_gram_gradient(&cp.factors[self.m], &self.gram, grad, &mut self.gemm);
        }
    }
}
