//! Where the per-sample gradients of a batch come from, and how they reach the chunks:
//!
//! - a model with an MLP view: the hand-written forward and backward of [`super::mlp`], run
//!   per chunk into reused buffers, with the reference outputs drawn as the trainer draws them;
//! - any other model: the tape's per-sample gradients of the batch (factored where the tape
//!   kept them factored), which allocate;
//! - given gradients `[N, ..shape]` per tensor, gathered by row into reused buffers.

use super::encode::{fit, GradRows};
use super::mlp::{self, MlpNet, Role};
use super::{each, Chunk, FastContext, FastStep};
use crate::config::{Divergence, Reference};
use crate::error::{L3dError, Result};
use crate::pairs::{draw_reference_partners, per_sample_gradients_at, reference_outputs};
use autodiff::Grad;
use nets::Model;
use rand::Rng;
use tensor::{Float, Tensor};

/// How one decomposed tensor's per-sample gradient arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// `g_i = sum_{m < M} left_im (x) right_im` for a `[p, q]` tensor.
    Outer { p: usize, q: usize, m: usize },
    /// `g_i` dense, `numel` values.
    Dense { numel: usize },
}

/// Where the per-sample gradients come from.
pub(super) enum Source<'m, T: Float> {
    /// A model with an MLP view: the hand-written forward and backward of `mlp`.
    Mlp {
        net: MlpNet<'m, T>,
        data: &'m Tensor<T>,
        lowest: usize,
    },
    /// Any other model: the tape's per-sample gradients of the batch.
    Tape {
        model: &'m dyn Model<T>,
        data: &'m Tensor<T>,
        grads: Vec<TapeGrad<T>>,
    },
    /// Given per-sample gradients `[N, ..shape]` per tensor, gathered by row into `rows`.
    Given {
        grads: &'m [Tensor<T>],
        rows: Vec<Vec<T>>,
    },
}

/// One tensor's per-sample gradient of the batch from the tape.
pub(super) enum TapeGrad<T: Float> {
    /// `left: [B, M, p]`, `right: [B, M, q]`.
    Outer { left: Tensor<T>, right: Tensor<T> },
    /// `[B, numel]`.
    Dense(Tensor<T>),
}

impl<T: Float> FastContext<'_, T> {
    /// Tensor `t`'s per-sample gradients for the rows of `chunk`.
    pub(super) fn grad_rows<'c>(&'c self, chunk: &'c Chunk<T>, t: usize) -> GradRows<'c, T> {
        let (start, len) = (chunk.start, chunk.len);
        match (self.source, self.forms[t]) {
            (Source::Mlp { net, .. }, form) => match (net.roles[self.param_index[t]], form) {
                (Role::Weight(l), Form::Outer { p, q, .. }) => GradRows::Outer {
                    left: chunk.mlp.layer_delta(net, l),
                    right: chunk.mlp.layer_input(net, l),
                    m: 1,
                    p,
                    q,
                },
                (Role::Bias(l), Form::Dense { numel }) => GradRows::Dense {
                    g: chunk.mlp.layer_delta(net, l),
                    numel,
                },
                _ => unreachable!("forms follow roles (FastStep::new)"),
            },
            (Source::Tape { grads, .. }, Form::Outer { p, q, m }) => match &grads[t] {
                TapeGrad::Outer { left, right } => GradRows::Outer {
                    left: &left.data()[start * m * p..(start + len) * m * p],
                    right: &right.data()[start * m * q..(start + len) * m * q],
                    m,
                    p,
                    q,
                },
                TapeGrad::Dense(_) => unreachable!("forms follow the tape's gradients"),
            },
            (Source::Tape { grads, .. }, Form::Dense { numel }) => match &grads[t] {
                TapeGrad::Dense(g) => GradRows::Dense {
                    g: &g.data()[start * numel..(start + len) * numel],
                    numel,
                },
                TapeGrad::Outer { .. } => unreachable!("forms follow the tape's gradients"),
            },
            (Source::Given { rows, .. }, Form::Dense { numel }) => GradRows::Dense {
                g: &rows[t][start * numel..(start + len) * numel],
                numel,
            },
            (Source::Given { .. }, Form::Outer { .. }) => unreachable!("given gradients are dense"),
        }
    }
}

impl<T: Float> FastStep<'_, T> {
    /// Per-sample gradients of the batch into the source's buffers.
    pub(super) fn gradients(
        &mut self,
        rows: &[usize],
        rng: &mut impl Rng,
        n_chunks: usize,
        parallel: bool,
    ) -> Result<()> {
        let b = rows.len();
        if !matches!(self.source, Source::Given { .. }) {
            draw_reference_partners(self.reference, b, rng, &mut self.partners);
        }
        let chunks = &mut self.chunks[..n_chunks];
        match &mut self.source {
            Source::Mlp { net, data, lowest } => {
                let (net, data, lowest) = (&*net, *data, *lowest);
                each(chunks, parallel, |c| {
                    c.mlp.gather(data, &rows[c.start..c.start + c.len]);
                    c.mlp.forward(net);
                });
                let width = net.output_dim;
                fit(&mut self.y0, b * width);
                for c in chunks.iter() {
                    self.y0[c.start * width..(c.start + c.len) * width]
                        .copy_from_slice(c.mlp.output(net));
                }
                fill_references(
                    self.reference,
                    self.divergence,
                    &self.y0,
                    width,
                    &self.partners,
                    &mut self.references,
                );
                let (refs, divergence) = (&self.references, self.divergence);
                each(chunks, parallel, |c| {
                    let r = &refs[c.start * width..(c.start + c.len) * width];
                    c.mlp.backward(net, r, divergence, lowest);
                });
            }
            Source::Tape { model, data, grads } => {
                let x = data.gather_rows(rows);
                let y0 = model.evaluate_w0(&x)?;
                let r = reference_outputs(&y0, self.reference, self.divergence, &self.partners);
                let tape = per_sample_gradients_at(
                    *model,
                    &self.param_index,
                    &x,
                    &r,
                    self.divergence,
                    &self.positions,
                )?;
                grads.clear();
                for (t, g) in tape.into_iter().enumerate() {
                    let (form, grad) = tape_form(g, &self.layout[t].0, b);
                    self.forms[t] = form;
                    grads.push(grad);
                }
            }
            Source::Given {
                grads,
                rows: gathered,
            } => {
                for (all, out) in grads.iter().zip(gathered.iter_mut()) {
                    let numel = all.row_len();
                    fit(out, b * numel);
                    for (dst, &r) in out.chunks_exact_mut(numel).zip(rows) {
                        dst.copy_from_slice(all.row(r));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The form of tensor `t`'s gradients before the first step.
pub(super) fn initial_form<T: Float>(
    source: &Source<T>,
    param: usize,
    shape: &[usize],
) -> Result<Form> {
    let numel = shape.iter().product();
    Ok(match source {
        Source::Mlp { net, .. } => match net.roles[param] {
            Role::Weight(_) => Form::Outer {
                p: shape[0],
                q: shape[1],
                m: 1,
            },
            Role::Bias(_) => Form::Dense { numel },
        },
        Source::Tape { .. } => Form::Dense { numel },
        Source::Given { grads, .. } => {
            let g = grads.get(param).ok_or_else(|| {
                L3dError::Mismatch(format!("no given gradient for tensor {param}"))
            })?;
            if g.shape().get(1..) != Some(shape) {
                return Err(L3dError::Mismatch(format!(
                    "given gradients of shape {:?} for a tensor of shape {shape:?}",
                    g.shape()
                )));
            }
            Form::Dense { numel }
        }
    })
}

/// The tape's gradient of one tensor in the fast path's form: factored when the tape kept it
/// factored and its factors fit the tensor's `[p, q]` shape, dense `[B, numel]` otherwise.
fn tape_form<T: Float>(g: Grad<T>, shape: &[usize], b: usize) -> (Form, TapeGrad<T>) {
    let numel = shape.iter().product();
    match g {
        Grad::Outer { left, right, .. }
            if shape.len() == 2
                && left.ndim() == 3
                && right.ndim() == 3
                && left.shape()[..2] == right.shape()[..2]
                && left.shape()[2] == shape[0]
                && right.shape()[2] == shape[1] =>
        {
            let form = Form::Outer {
                p: shape[0],
                q: shape[1],
                m: left.shape()[1],
            };
            (form, TapeGrad::Outer { left, right })
        }
        other => {
            let dense = other.into_dense().reshape(&[b, numel]);
            (Form::Dense { numel }, TapeGrad::Dense(dense))
        }
    }
}

/// The reference outputs of the batch `y0: [B, width]`, as [`reference_outputs`] computes
/// them, into `out`.
fn fill_references<T: Float>(
    kind: Reference,
    divergence: Divergence,
    y0: &[T],
    width: usize,
    partners: &[usize],
    out: &mut Vec<T>,
) {
    let b = y0.len() / width;
    fit(out, b * width);
    match kind {
        Reference::RandomSample | Reference::RandomWithSelf => {
            for (dst, &p) in out.chunks_exact_mut(width).zip(partners) {
                dst.copy_from_slice(&y0[p * width..(p + 1) * width]);
            }
        }
        Reference::Zero => out.fill(T::zero()),
        Reference::BatchMean => {
            let (first, rest) = out.split_at_mut(width);
            first.fill(T::zero());
            for y in y0.chunks_exact(width) {
                if divergence == Divergence::Kl {
                    // The mean distribution: softmax rows summed, then ln of their mean.
                    let (max, sum) = mlp::exp_sum(y);
                    for (m, &v) in first.iter_mut().zip(y) {
                        *m += (v - max).exp() / sum;
                    }
                } else {
                    for (m, &v) in first.iter_mut().zip(y) {
                        *m += v;
                    }
                }
            }
            let inv = T::one() / T::from_usize(b);
            for m in first.iter_mut() {
                *m *= inv;
                if divergence == Divergence::Kl {
                    *m = m.ln();
                }
            }
            for dst in rest.chunks_exact_mut(width) {
                dst.copy_from_slice(first);
            }
        }
    }
}
