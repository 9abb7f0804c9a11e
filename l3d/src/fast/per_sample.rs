//! Materialised per-sample gradients of an MLP: the fast counterpart of
//! [`crate::pairs::per_sample_gradients`] followed by `Grad::into_dense`, for every parameter
//! of a model that answers [`Model::as_mlp`]. The `per-sample-grad` benchmark case measures it.
//!
//! Sample `i`'s gradient of a weight `W_l: [d_out, d_in]` is `delta_l[i] (x) a_{l-1}[i]`,
//! written row by row into `out: [B, d_out, d_in]`; of a bias it is `delta_l[i]` (legend in
//! `mlp.rs`). Chunks of [`CHUNK_ROWS`] samples run in parallel, each writing its own
//! rows, so the result does not depend on the number of threads.

use super::layout::CHUNK_ROWS;
use crate::config::Divergence;
use crate::error::{L3dError, Result};
use crate::mlp::{MlpChunk, MlpNet, Role};
use crate::par::worth_threads;
use nets::Model;
use rayon::prelude::*;
use tensor::{Float, Tensor};

/// Below this many gradient values per call, the work stays on the calling thread.
const PARALLEL_VALUES: usize = 1 << 16;

/// The MLP pass and its buffers, reused from call to call.
pub struct MlpPerSample<'m, T: Float> {
    net: MlpNet<'m, T>,
    shapes: Vec<Vec<usize>>,
    chunks: Vec<MlpChunk<T>>,
}

impl<'m, T: Float> MlpPerSample<'m, T> {
    /// The pass for `model`; an error if the model has no MLP view (or a view that does not fit).
    pub fn new(model: &'m dyn Model<T>) -> Result<Self> {
        let net = MlpNet::of(model, CHUNK_ROWS)?.ok_or_else(|| {
            L3dError::Model("the model is not a stack of dense layers (no MLP view)".into())
        })?;
        Ok(Self {
            net,
            shapes: model.param_shapes(),
            chunks: Vec::new(),
        })
    }

    /// `out[p][i] = d/dW_p D(f(x_i, W), r_i)` at the model's parameters, for every parameter
    /// `p`: `[B, ..shape_p]`. `x: [B, d_in]`, `reference: [B, d_out]`. `out` is resized only
    /// when its shapes differ (so repeated calls with one batch size allocate nothing).
    pub fn gradients_into(
        &mut self,
        x: &Tensor<T>,
        reference: &Tensor<T>,
        divergence: Divergence,
        out: &mut Vec<Tensor<T>>,
    ) -> Result<()> {
        let net = &self.net;
        let b = x.shape().first().copied().unwrap_or(0);
        if x.shape() != [b, net.input_dim] || reference.shape() != [b, net.output_dim] || b == 0 {
            return Err(L3dError::Data(format!(
                "inputs {:?} and references {:?} for a network {} -> {}",
                x.shape(),
                reference.shape(),
                net.input_dim,
                net.output_dim
            )));
        }
        let n_chunks = b.div_ceil(CHUNK_ROWS);
        while self.chunks.len() < n_chunks {
            self.chunks.push(MlpChunk::new(net, CHUNK_ROWS));
        }
        let values = b * self
            .shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum::<usize>();
        let parallel = worth_threads(values, PARALLEL_VALUES);
        let chunks = &mut self.chunks[..n_chunks];
        let (d_in, d_out) = (net.input_dim, net.output_dim);
        let start = |k: usize| k * CHUNK_ROWS;
        let run = |(k, c): (usize, &mut MlpChunk<T>)| {
            let rows = start(k)..(start(k) + CHUNK_ROWS).min(b);
            c.set_input(&x.data()[rows.start * d_in..rows.end * d_in], rows.len());
            c.forward(net);
            let r = &reference.data()[rows.start * d_out..rows.end * d_out];
            c.backward(net, r, divergence, 0);
        };
        if parallel {
            chunks.par_iter_mut().enumerate().for_each(run);
        } else {
            chunks.iter_mut().enumerate().for_each(run);
        }
        let fits = out.len() == self.shapes.len()
            && out
                .iter()
                .zip(&self.shapes)
                .all(|(o, s)| o.shape().first() == Some(&b) && o.shape()[1..] == s[..]);
        if !fits {
            *out = self
                .shapes
                .iter()
                .map(|s| Tensor::zeros(&[&[b], &s[..]].concat()))
                .collect();
        }
        for (p, grad) in out.iter_mut().enumerate() {
            let numel = grad.row_len();
            let write = |(c, rows): (&MlpChunk<T>, &mut [T])| {
                write_gradient(net, net.roles[p], c, rows, numel);
            };
            let pieces = grad.data_mut();
            if parallel {
                chunks
                    .par_iter()
                    .zip(pieces.par_chunks_mut(CHUNK_ROWS * numel))
                    .for_each(write);
            } else {
                chunks
                    .iter()
                    .zip(pieces.chunks_mut(CHUNK_ROWS * numel))
                    .for_each(write);
            }
        }
        Ok(())
    }
}

/// Writes one parameter's per-sample gradients for the rows of one chunk.
fn write_gradient<T: Float>(
    net: &MlpNet<T>,
    role: Role,
    c: &MlpChunk<T>,
    rows: &mut [T],
    numel: usize,
) {
    match role {
        Role::Weight(l) => {
            let (d_out, d_in) = (net.layers[l].n_out, net.layers[l].n_in);
            let (delta, input) = (c.layer_delta(net, l), c.layer_input(net, l));
            for ((g, dr), xr) in rows
                .chunks_exact_mut(numel)
                .zip(delta.chunks_exact(d_out))
                .zip(input.chunks_exact(d_in))
            {
                for (row, &da) in g.chunks_exact_mut(d_in).zip(dr) {
                    for (o, &xj) in row.iter_mut().zip(xr) {
                        *o = da * xj;
                    }
                }
            }
        }
        Role::Bias(l) => rows.copy_from_slice(c.layer_delta(net, l)),
    }
}
