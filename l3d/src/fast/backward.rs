//! The backward into the CP factors, in two passes, so that no sum depends on the number of
//! threads (derivation in `fast/mod.rs`).
//!
//! For side `s` (encoder: `dS = dL/dc`; decoder: `dS = dL/dd`), tensor `t`, mode `m`:
//! - factored gradients: `dL/dF_0 = sum_chunks left^T (dS_E * Q)` and
//!   `dL/dF_1 = sum_chunks right^T (dS_E * P)`, with `dS_E[i M + m', vR + r] = dS[i, v]`;
//! - dense gradients: `dV^T = sum_chunks g^T dS: [numel, n_v]`, then the adjoint of the dense
//!   form (`dense::dense_form_adjoint`; nothing for a vector of rank 1, whose factor is `V^T`);
//! - decoder factors also get the Gram term `2 F_m (dG_E * prod_{m' != m} K_m')`.
//!
//! Pass 0 (one task per dense tensor and side: [`DenseSum::run`]) computes `dV^T` once for
//! all of the tensor's modes. Pass 1 (one task per factor: [`OuterTask::prepare`],
//! [`DenseTask::run`]) forms the right operands of a factored gradient: `dS_E * Q` for every
//! chunk, and for the decoder `2 dG_E * prod K_m'`; a dense gradient is finished whole in this
//! pass, from its `dV^T`. Pass 2
//! ([`OuterTask::rows`], one task per block of [`BLOCK_ROWS`] rows of a factored gradient)
//! computes `dL/dF_m[rows] = [left_0^T | left_1^T | .. | F_m] [work_0; work_1; ..; gram]`
//! as one product ([`gemm_sum`]): every element is the same sum in the same order however
//! the rows are split, and the tasks are small and even, so two threads share them evenly.

use super::blocks::expand;
use super::chunk::{Chunk, Context};
use super::dense::{
    dense_form_adjoint, dense_form_is_factor, matrix_form_adjoint, right_factor_adjoint,
    DenseScratch,
};
use super::gram::{add_gram_gradient, gram_adjoint, DecoderGrams};
use super::layout::{Form, Side, Split};
use super::loss::LossState;
use crate::cp::CpTensor;
use crate::par::{all_finite, each_block, fit};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use tensor::gemm::{gemm_sum, GemmScratch, MatMut, MatRef};
use tensor::{Float, Tensor};

/// Rows of a factor gradient per pass-2 task (a multiple of every microkernel's `MR`).
pub(crate) const BLOCK_ROWS: usize = 96;

/// Parts of `k` per [`gemm_sum`] call: chunks beyond this are added by further calls.
const MAX_PARTS: usize = 8;

/// What the backward reads: the step's context, the loss's gradients, the decoder's Grams and
/// the chunks (their `P` and `Q`).
pub(crate) struct Upstream<'a, T: Float> {
    pub ctx: &'a Context<'a, T>,
    pub loss: &'a LossState<T>,
    pub grams: &'a DecoderGrams<T>,
    pub chunks: &'a [Chunk<T>],
}

impl<'a, T: Float> Upstream<'a, T> {
    fn split(&self) -> &'a Split {
        self.ctx.pass.split()
    }

    fn cp(&self, side: Side, t: usize) -> &'a CpTensor<T> {
        side.of(self.ctx.d, t)
    }

    /// `dS`: `dL/dc` or `dL/dd`, `[B, n_v]`.
    fn coefficient_grad(&self, side: Side) -> &'a [T] {
        match side {
            Side::Encoder => &self.loss.dc,
            Side::Decoder => &self.loss.dd,
        }
    }

    /// `out = scale dL/dK_m` of tensor `t`'s decoder mode `m` (see [`gram_adjoint`]).
    fn gram_term(&self, t: usize, m: usize, scale: T, out: &mut Vec<T>) {
        let cp = self.cp(Side::Decoder, t);
        let ks = self.grams.modes(t);
        gram_adjoint(ks, m, &self.loss.dg, scale, (cp.n_v, cp.rank), out);
    }
}

/// The factor gradient of mode `m` of factored tensor `k` on one side, in two passes (in
/// pass 1 alone when `whole`).
#[derive(Debug)]
pub(crate) struct OuterTask<T> {
    side: Side,
    k: usize,
    m: usize,
    /// Mode `m >= 1` of a tensor of more than two modes: its gradient comes from the right
    /// factor's through the Khatri-Rao adjoint, computed whole in pass 1
    /// ([`OuterTask::finish_whole`]).
    whole: bool,
    /// `dL/dKR: [q, C]` (`whole` only).
    kr_grad: Vec<T>,
    dense: DenseScratch<T>,
    /// `dS_E * Q` (or `* P`) for the whole batch, `[B M, C]`, then one row of scratch.
    work: Vec<T>,
    /// `2 dL/dK_m` for the Gram term (decoder only; `C x C`, then scratch).
    gram: Vec<T>,
}

/// The factor gradient of mode `m` of dense tensor `k` on one side, in one pass, from the
/// `dV^T` its [`DenseSum`] (number `sum`) computed in pass 0.
#[derive(Debug)]
pub(crate) struct DenseTask<T> {
    side: Side,
    k: usize,
    m: usize,
    sum: usize,
    /// `dL/dK_m` for the Gram term (decoder only; `C x C`, then scratch).
    gram: Vec<T>,
    dense: DenseScratch<T>,
    gemm: GemmScratch<T>,
}

/// Pass 0: `dV^T = sum_chunks g^T dS: [numel, n_v]` of dense tensor `k` on one side, once
/// for all of its modes' tasks.
#[derive(Debug)]
pub(crate) struct DenseSum<T> {
    side: Side,
    k: usize,
    /// `dV = sum_chunks dS^T g: [n_v, numel]` (B read by rows, packed in wide panels), then
    /// `dV^T`.
    dv: Vec<T>,
    vt: Vec<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> DenseSum<T> {
    fn run(&mut self, up: &Upstream<T>) {
        let dense = &up.split().dense()[self.k];
        let cp = up.cp(self.side, dense.t);
        let ds = up.coefficient_grad(self.side);
        let (n_v, numel) = (cp.n_v, dense.numel);
        fit(&mut self.dv, n_v * numel);
        fit(&mut self.vt, numel * n_v);
        // Up to MAX_PARTS chunks per product: one pass over dV for them.
        let mut parts_a = [MatRef::rows(&[], 0, 0); MAX_PARTS];
        let mut parts_b = parts_a;
        for (group, chunks) in up.chunks.chunks(MAX_PARTS).enumerate() {
            for (j, chunk) in chunks.iter().enumerate() {
                let (len, ds_rows) = (chunk.span.len, &ds[chunk.span.values(n_v)]);
                let g = up.ctx.pass.dense_rows(self.k, chunk.span);
                parts_a[j] = MatRef::rows(ds_rows, len, n_v).t();
                parts_b[j] = MatRef::rows(g, len, numel);
            }
            let beta = if group == 0 { T::zero() } else { T::one() };
            let n = chunks.len();
            let dv = MatMut::rows(&mut self.dv, n_v, numel);
            gemm_sum(
                T::one(),
                &parts_a[..n],
                &parts_b[..n],
                beta,
                dv,
                &mut self.gemm,
            );
        }
        // The modes' tasks of a matrix read `dV`; the others `dV^T`.
        if cp.factors.len() != 2 {
            for (v, row) in self.dv.chunks_exact(numel).enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    self.vt[j * n_v + v] = x;
                }
            }
        }
    }
}

/// One factor's gradient: by blocks of rows for a factored tensor, whole for a dense one.
#[derive(Debug)]
pub(crate) enum FactorTask<T> {
    Outer(OuterTask<T>),
    Dense(DenseTask<T>),
}

impl<T: Float> OuterTask<T> {
    /// Pass 1: `dS_E * Q` (mode 0) or `dS_E * P` (mode 1) for every chunk, and the doubled
    /// Gram term.
    pub fn prepare(&mut self, up: &Upstream<T>) {
        let f = &up.split().factored()[self.k];
        let cp = up.cp(self.side, f.t);
        let ds = up.coefficient_grad(self.side);
        let (n_v, rank, cols) = (cp.n_v, cp.rank, cp.columns());
        if self.side == Side::Decoder {
            // Pass 2 multiplies by this matrix as it is, so it carries the factor 2 of the Gram
            // term (doubling is exact); `add_gram_gradient` carries it for a whole task.
            let scale = if self.whole {
                T::one()
            } else {
                T::from_f64(2.0)
            };
            up.gram_term(f.t, self.m, scale, &mut self.gram);
        }
        let m = f.m;
        let total = up.chunks.iter().map(|c| c.span.len).sum::<usize>() * m;
        // The products, then one row of scratch: dS_E's row of a sample.
        fit(&mut self.work, (total + 1) * cols);
        let (work, expanded) = self.work.split_at_mut(total * cols);
        let mut at = 0;
        for chunk in up.chunks {
            let (p, q) = chunk.products(self.k, self.side);
            // Mode 0 pairs left with Q; mode 1 pairs right with P.
            let y = if self.m == 0 { q } else { p };
            let rows = chunk.span.len * m;
            let ds_rows = &ds[chunk.span.values(n_v)];
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
    }

    /// Pass 2: rows `block * BLOCK_ROWS..` of the gradient, into `out` (those rows):
    /// `[left_0^T | left_1^T | .. | F_m] [work_0; work_1; ..; gram]` (or `right`, for mode 1).
    pub fn rows(
        &self,
        up: &Upstream<T>,
        block: usize,
        out: &mut [T],
        scratch: &mut GemmScratch<T>,
    ) {
        let factored = &up.split().factored()[self.k];
        let cp = up.cp(self.side, factored.t);
        let (cols, f) = (cp.columns(), &cp.factors[self.m]);
        let (r0, n_rows) = (block * BLOCK_ROWS, out.len() / cols);
        let gram = (self.side == Side::Decoder).then(|| {
            let f_rows = &f.data()[r0 * cols..(r0 + n_rows) * cols];
            (
                MatRef::rows(f_rows, n_rows, cols),
                MatRef::rows(&self.gram[..cols * cols], cols, cols),
            )
        });
        self.chunk_sum(up, r0, gram, out, scratch);
    }

    /// A tensor of more than two modes, mode `m >= 1` (`whole`), after pass 1: the gradient of
    /// its right factor, `dL/dKR = sum_chunks right^T (dS_E * P): [q, C]`, then the adjoint of
    /// the Khatri-Rao product into `grad`, then (decoder) the Gram term; all in this one task,
    /// the sums in a fixed order.
    pub fn finish_whole(
        &mut self,
        up: &Upstream<T>,
        grad: &mut Tensor<T>,
        scratch: &mut GemmScratch<T>,
    ) {
        let factored = &up.split().factored()[self.k];
        let cp = up.cp(self.side, factored.t);
        let mut kr_grad = std::mem::take(&mut self.kr_grad);
        fit(&mut kr_grad, factored.q * cp.columns());
        self.chunk_sum(up, 0, None, &mut kr_grad, scratch);
        right_factor_adjoint(cp, self.m, &kr_grad, grad, &mut self.dense);
        self.kr_grad = kr_grad;
        if self.side == Side::Decoder {
            add_gram_gradient(&cp.factors[self.m], &self.gram, grad, scratch);
        }
    }

    /// `out <- x[:, r0..r0 + n]^T work (+ gram.0 gram.1)` summed over the chunks in order, `x`
    /// each chunk's `left` (mode 0) or `right` (modes >= 1), `n = out.len() / C`.
    fn chunk_sum(
        &self,
        up: &Upstream<T>,
        r0: usize,
        gram: Option<(MatRef<T>, MatRef<T>)>,
        out: &mut [T],
        scratch: &mut GemmScratch<T>,
    ) {
        let factored = &up.split().factored()[self.k];
        let cols = up.cp(self.side, factored.t).columns();
        let n_rows = out.len() / cols;
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
        for chunk in up.chunks {
            let (left, right) = up.ctx.pass.outer_rows(self.k, chunk.span);
            let (x, width) = if self.m == 0 {
                (left, factored.p)
            } else {
                (right, factored.q)
            };
            let rows = chunk.span.len * factored.m;
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
        if let Some((f_rows, gram)) = gram {
            parts_a[n_parts] = f_rows;
            parts_b[n_parts] = gram;
            n_parts += 1;
        }
        if n_parts > 0 {
            flush(&parts_a[..n_parts], &parts_b[..n_parts], out);
        }
    }
}

impl<T: Float> DenseTask<T> {
    /// The whole gradient from `dV^T` (`sums[self.sum]`; the gradient itself for a vector of
    /// rank 1, whose factor is `V^T`): the adjoint of the dense form, the Gram term.
    pub fn run(&mut self, up: &Upstream<T>, sums: &[DenseSum<T>], grad: &mut Tensor<T>) {
        let dense = &up.split().dense()[self.k];
        let cp = up.cp(self.side, dense.t);
        if self.side == Side::Decoder {
            // Added by `add_gram_gradient`, which carries the factor 2.
            up.gram_term(dense.t, self.m, T::one(), &mut self.gram);
        }
        let sum = &sums[self.sum];
        if dense_form_is_factor(cp) {
            grad.data_mut().copy_from_slice(&sum.vt);
        } else if cp.factors.len() == 2 {
            matrix_form_adjoint(cp, self.m, &sum.dv, grad, &mut self.dense);
        } else {
            dense_form_adjoint(cp, self.m, &sum.vt, grad, &mut self.dense);
        }
        if self.side == Side::Decoder {
            add_gram_gradient(&cp.factors[self.m], &self.gram, grad, &mut self.gemm);
        }
    }
}

/// The factor gradients of a step and the tasks that compute them, reused from step to step.
///
/// Invariant: `tasks` and `grads` have one entry per factor, in the order of
/// [`crate::decomposition::Decomposition::factors`] (the encoder's, then the decoder's), each
/// task of the kind its tensor has in the split of the last [`Backward::adopt`].
#[derive(Debug)]
pub(crate) struct Backward<T: Float> {
    /// Pass 0: `dV^T` of every dense tensor on each side.
    sums: Vec<DenseSum<T>>,
    tasks: Vec<FactorTask<T>>,
    /// `dL/dF` of every factor.
    pub grads: Vec<Tensor<T>>,
    /// Cleared by a task that wrote a non-finite value.
    finite: AtomicBool,
}

impl<T: Float> FactorTask<T> {
    /// The task as a factored tensor's pass-2 task: `None` for a dense or a whole one.
    fn pass_two(&self) -> Option<&OuterTask<T>> {
        match self {
            FactorTask::Outer(task) if !task.whole => Some(task),
            _ => None,
        }
    }
}

impl<T: Float> Backward<T> {
    /// Zero gradients of factors of the shapes `factor_shapes`, and tasks for `split` with
    /// `modes[t]` modes per tensor.
    pub fn new(factor_shapes: &[&[usize]], split: &Split, modes: &[usize]) -> Self {
        let mut backward = Backward {
            sums: Vec::new(),
            tasks: Vec::new(),
            grads: factor_shapes.iter().map(|s| Tensor::zeros(s)).collect(),
            finite: AtomicBool::new(true),
        };
        backward.adopt(split, modes);
        backward
    }

    /// Tasks for the tensors of `split` (allocates).
    pub fn adopt(&mut self, split: &Split, modes: &[usize]) {
        self.tasks.clear();
        self.sums.clear();
        for side in Side::BOTH {
            for (&form, &count) in split.order().iter().zip(modes) {
                if let Form::Dense(k) = form {
                    self.sums.push(DenseSum {
                        side,
                        k,
                        dv: Vec::new(),
                        vt: Vec::new(),
                        gemm: GemmScratch::default(),
                    });
                }
                for m in 0..count {
                    self.tasks.push(match form {
                        Form::Factored(k) => FactorTask::Outer(OuterTask {
                            side,
                            k,
                            m,
                            whole: count > 2 && m >= 1,
                            kr_grad: Vec::new(),
                            dense: DenseScratch::default(),
                            work: Vec::new(),
                            gram: Vec::new(),
                        }),
                        Form::Dense(k) => FactorTask::Dense(DenseTask {
                            side,
                            k,
                            m,
                            // The sum pushed above, for this tensor and side.
                            sum: self.sums.len() - 1,
                            gram: Vec::new(),
                            dense: DenseScratch::default(),
                            gemm: GemmScratch::default(),
                        }),
                    });
                }
            }
        }
    }

    /// Whether every gradient of the last [`Backward::run`] is finite.
    pub fn finite(&self) -> bool {
        self.finite.load(Ordering::Relaxed)
    }

    /// Every factor gradient: pass 1 one task per factor, pass 2 one task per block of rows
    /// of a factored gradient. Each block is checked for non-finite values as it is written.
    pub fn run(&mut self, up: &Upstream<T>, parallel: bool) {
        self.finite.store(true, Ordering::Relaxed);
        let finite = &self.finite;
        let check = |values: &[T]| {
            if !all_finite(values) {
                finite.store(false, Ordering::Relaxed);
            }
        };
        let sums = &mut self.sums;
        if parallel {
            sums.par_iter_mut().with_max_len(1).for_each(|s| s.run(up));
        } else {
            sums.iter_mut().for_each(|s| s.run(up));
        }
        let sums = &self.sums[..];
        let prepare = |(task, grad): (&mut FactorTask<T>, &mut Tensor<T>)| match task {
            FactorTask::Outer(task) => {
                task.prepare(up);
                if task.whole {
                    up.ctx.pool.with(|s| task.finish_whole(up, grad, s));
                    check(grad.data());
                }
            }
            FactorTask::Dense(task) => {
                task.run(up, sums, grad);
                check(grad.data());
            }
        };
        let blocks = |(task, grad): (&FactorTask<T>, &mut Tensor<T>)| {
            if let Some(task) = task.pass_two() {
                let block = BLOCK_ROWS * grad.shape()[1];
                each_block(grad.data_mut(), block, parallel, |b, out| {
                    up.ctx.pool.with(|s| task.rows(up, b, out, s));
                    check(out);
                });
            }
        };
        if parallel {
            let pairs = self.tasks.par_iter_mut().zip(self.grads.par_iter_mut());
            pairs.with_max_len(1).for_each(prepare);
            let pairs = self.tasks.par_iter().zip(self.grads.par_iter_mut());
            pairs.with_max_len(1).for_each(blocks);
        } else {
            let pairs = self.tasks.iter_mut().zip(self.grads.iter_mut());
            pairs.for_each(prepare);
            let pairs = self.tasks.iter().zip(self.grads.iter_mut());
            pairs.for_each(blocks);
        }
    }
}
