//! The backward into the CP factors, in two passes, so that no sum depends on the number of
//! threads (derivation in `fast/mod.rs`).
//!
//! For side `s` (encoder: `dS = dL/dc`; decoder: `dS = dL/dd`), tensor `t`, mode `m`:
//! - factored gradients: `dL/dF_0 = sum_chunks left^T (dS_E * Q)` and
//!   `dL/dF_1 = sum_chunks right^T (dS_E * P)`, with `dS_E[i M + m', vR + r] = dS[i, v]`;
//! - dense gradients: `dV^T = sum_chunks g^T dS: [numel, n_v]`, then the adjoint of the dense
//!   form (`gram::dense_form_adjoint`; nothing for a vector of rank 1, whose factor is `V^T`);
//! - decoder factors also get the Gram term `2 F_m (dG_E * prod_{m' != m} K_m')`.
//!
//! Pass 1 ([`FactorTask::prepare`], one task per factor) forms the right operands of a
//! factored gradient: `dS_E * Q` for every chunk, and for the decoder `2 dG_E * prod K_m'`;
//! a dense gradient is finished whole in this pass (biases: small). Pass 2
//! ([`FactorTask::rows`], one task per block of [`BLOCK_ROWS`] rows of a factored gradient)
//! computes `dL/dF_m[rows] = [left_0^T | left_1^T | .. | F_m] [work_0; work_1; ..; gram]`
//! as one product ([`gemm_sum`]): every element is the same sum in the same order however
//! the rows are split, and the tasks are small and even, so two threads share them evenly.

use super::blocks::expand;
use super::encode::GradRows;
use super::gram::{
    add_gram_gradient, dense_form_adjoint, dense_form_is_factor, gram_adjoint, DenseScratch,
};
use super::source::Form;
use super::{Chunk, FastContext, Side};
use crate::par::fit;
use tensor::gemm::{gemm, gemm_sum, GemmScratch, MatMut, MatRef};
use tensor::{Float, Tensor};

/// Rows of a factor gradient per pass-2 task (a multiple of every microkernel's `MR`).
pub(crate) const BLOCK_ROWS: usize = 96;

/// Parts of `k` per [`gemm_sum`] call: chunks beyond this are added by further calls.
const MAX_PARTS: usize = 8;

/// Which factor a task differentiates, and its scratch.
#[derive(Debug, Clone)]
pub(crate) struct FactorTask<T> {
    pub side: Side,
    pub t: usize,
    pub m: usize,
    /// Factored: `dS_E * Q` (or `* P`) for the whole batch, `[B M, C]`, then one row of
    /// scratch. Dense: `dV^T`.
    work: Vec<T>,
    /// `dL/dK_m` for the Gram term, doubled for pass 2 (decoder only; `C x C`, then scratch).
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

    /// Whether pass 2 computes this gradient (its tensor's gradients are factored).
    pub fn by_rows(&self, ctx: &FastContext<T>) -> bool {
        !ctx.is_dense(self.t)
    }

    /// Pass 1: the right operands of a factored gradient, or the whole of a dense one.
    pub fn prepare(&mut self, ctx: &FastContext<T>, chunks: &[Chunk<T>], grad: &mut Tensor<T>) {
        let cp = ctx.cp(self.side, self.t);
        let ds = ctx.coefficient_grad(self.side);
        let (n_v, rank, cols) = (cp.n_v, cp.rank, cp.columns());
        if self.side == Side::Decoder {
            // Pass 2 multiplies by this matrix as it is, so it carries the factor 2 of the Gram
            // term (doubling is exact); the dense case adds it in `add_gram_gradient`.
            let scale = T::from_f64(if self.by_rows(ctx) { 2.0 } else { 1.0 });
            let ks = ctx.mode_grams(self.t);
            let dg = ctx.gram_grad();
            gram_adjoint(ks, self.m, dg, scale, (n_v, rank), &mut self.gram);
        }
        if self.by_rows(ctx) {
            let Form::Outer { m: per_sample, .. } = ctx.forms[self.t] else {
                unreachable!("by_rows: the tensor's gradients are factored");
            };
            let total = chunks.iter().map(|c| c.len).sum::<usize>() * per_sample;
            // The products, then one row of scratch: dS_E's row of a sample.
            fit(&mut self.work, (total + 1) * cols);
            let (work, expanded) = self.work.split_at_mut(total * cols);
            let mut at = 0;
            for chunk in chunks {
                let GradRows::Outer { m, .. } = ctx.grad_rows(chunk, self.t) else {
                    unreachable!("a factored tensor has factored rows in every chunk");
                };
                let (p, q) = chunk.products(self.t, self.side);
                // Mode 0 pairs left with Q; mode 1 pairs right with P.
                let y = if self.m == 0 { q } else { p };
                let rows = chunk.len * m;
                let ds_rows = &ds[chunk.start * n_v..(chunk.start + chunk.len) * n_v];
                let out = &mut work[at * cols..(at + rows) * cols];
                let per_sample = out.chunks_exact_mut(m * cols).zip(y.chunks_exact(m * cols));
                for ((w, ys), dsr) in per_sample.zip(ds_rows.chunks_exact(n_v)) {
                    // dS_E's row: dsr itself at rank 1.
                    let e: &[T] = if rank == 1 {
                        dsr
                    } else {
                        expand(dsr, rank, expanded);
                        expanded
                    };
                    for (w_row, y_row) in w.chunks_exact_mut(cols).zip(ys.chunks_exact(cols)) {
                        for ((wj, &yj), &e) in w_row.iter_mut().zip(y_row).zip(e) {
                            *wj = e * yj;
                        }
                    }
                }
                at += rows;
            }
            return;
        }
        // dV^T = sum_chunks g^T dS: [numel, n_v], straight into the gradient for a vector of
        // rank 1 (whose factor is V^T).
        let direct = dense_form_is_factor(cp);
        let numel = cp.numel();
        if !direct {
            fit(&mut self.work, numel * n_v);
        }
        for (index, chunk) in chunks.iter().enumerate() {
            let beta = if index == 0 { T::zero() } else { T::one() };
            let ds_rows = &ds[chunk.start * n_v..(chunk.start + chunk.len) * n_v];
            let GradRows::Dense { g, .. } = ctx.grad_rows(chunk, self.t) else {
                unreachable!("a dense tensor has dense rows in every chunk");
            };
            let out = if direct {
                grad.data_mut()
            } else {
                &mut self.work[..]
            };
            gemm(
                T::one(),
                MatRef::rows(g, chunk.len, numel).t(),
                MatRef::rows(ds_rows, chunk.len, n_v),
                beta,
                MatMut::rows(out, numel, n_v),
                &mut self.gemm,
            );
        }
        if !direct {
            dense_form_adjoint(cp, self.m, &self.work, grad, &mut self.dense);
        }
        if self.side == Side::Decoder {
            add_gram_gradient(&cp.factors[self.m], &self.gram, grad, &mut self.gemm);
        }
    }

    /// Pass 2: rows `block * BLOCK_ROWS..` of a factored gradient, into `out` (those rows).
    pub fn rows(
        &self,
        ctx: &FastContext<T>,
        chunks: &[Chunk<T>],
        block: usize,
        out: &mut [T],
        scratch: &mut GemmScratch<T>,
    ) {
        let cp = ctx.cp(self.side, self.t);
        let (cols, f) = (cp.columns(), &cp.factors[self.m]);
        let (r0, n_rows) = (block * BLOCK_ROWS, out.len() / cols);
        let mut parts_a = [MatRef::rows(&[], 0, 0); MAX_PARTS + 1];
        let mut parts_b = parts_a;
        let mut n_parts = 0;
        let mut first = true;
        let mut at = 0;
        let mut flush = |parts_a: &[MatRef<T>], parts_b: &[MatRef<T>], out: &mut [T]| {
            let beta = if first { T::zero() } else { T::one() };
            first = false;
            let c = MatMut::rows(out, n_rows, cols);
            gemm_sum(T::one(), parts_a, parts_b, beta, c, scratch);
        };
        for chunk in chunks {
            let GradRows::Outer { left, right, m, .. } = ctx.grad_rows(chunk, self.t) else {
                unreachable!("a factored tensor has factored rows in every chunk");
            };
            let (x, width) = (if self.m == 0 { left } else { right }, f.shape()[0]);
            let rows = chunk.len * m;
            // x^T restricted to rows r0.. of the gradient: columns r0.. of x.
            parts_a[n_parts] = MatRef::new(&x[r0..], n_rows, rows, 1, width);
            parts_b[n_parts] = MatRef::rows(&self.work[at * cols..(at + rows) * cols], rows, cols);
            at += rows;
            n_parts += 1;
            if n_parts == MAX_PARTS {
                flush(&parts_a[..n_parts], &parts_b[..n_parts], out);
                n_parts = 0;
            }
        }
        if self.side == Side::Decoder {
            let f_rows = &f.data()[r0 * cols..(r0 + n_rows) * cols];
            parts_a[n_parts] = MatRef::rows(f_rows, n_rows, cols);
            parts_b[n_parts] = MatRef::rows(&self.gram[..cols * cols], cols, cols);
            n_parts += 1;
        }
        if n_parts > 0 {
            flush(&parts_a[..n_parts], &parts_b[..n_parts], out);
        }
    }
}
