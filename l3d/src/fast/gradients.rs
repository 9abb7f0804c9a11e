//! How a fast step computes a batch's per-sample gradients, and hands them to the chunks:
//!
//! - a model with an MLP view ([`MlpPass`]): the hand-written forward and backward of
//!   [`super::mlp`], run per chunk into reused buffers, with the references drawn as
//!   [`crate::pairs::pair_gradients`] draws them and computed into reused buffers;
//! - a model with a conv view ([`CnnPass`]): the hand-written forward and backward of
//!   [`super::cnn`], likewise;
//! - an attention-only transformer ([`AttnPass`], `super::attention`), likewise, for every
//!   position and a reference that is another sample's output (or zero);
//! - any other model ([`TapePass`]): [`crate::pairs::pair_gradients`] on the tape, factored
//!   where the tape kept a weight's gradient factored (this allocates);
//! - given gradients `[N, ..shape]` per tensor ([`GivenPass`]), gathered by row into reused
//!   buffers.
//!
//! Each pass states how the tensors' gradients arrive as a [`Split`], and hands out factored
//! tensor `k`'s rows and dense tensor `k`'s rows by their place in it. The MLP pass's split
//! follows the layers' roles and the given gradients are all dense, so theirs never change; the
//! tape's is read off each batch's gradients (in practice the same every batch).

use super::attention::{AttnNet, AttnPass};
use super::cnn::{CnnNet, CnnPass};
use super::layout::{Span, Split, CHUNK_ROWS};
use super::pass::{ChunkedPass, PassNet};
use crate::config::{Divergence, L3dConfig, Positions, Reference};
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::mlp::{MlpChunk, MlpNet, Role};
use crate::pairs::{check_positions, pair_gradients, Source};
use crate::par::fit;
use autodiff::Grad;
use nets::Model;
use rand::Rng;
use tensor::{Float, Tensor};

/// Where a fast step's per-sample gradients come from (see the module docs).
pub(crate) enum GradientPass<'m, T: Float> {
    Mlp(MlpPass<'m, T>),
    Cnn(Box<CnnPass<'m, T>>),
    Attn(Box<AttnPass<'m, T>>),
    Tape(TapePass<'m, T>),
    Given(GivenPass<'m, T>),
}

impl<'m, T: Float> GradientPass<'m, T> {
    /// The pass for `source` and decompositions laid out like `d`: the MLP pass for a model
    /// with an MLP view, the CNN pass for one with a conv view, the tape for another model.
    pub fn new(source: Source<'m, T>, d: &Decomposition<T>, config: &L3dConfig) -> Result<Self> {
        let pairing = (config.reference, config.divergence);
        Ok(match source {
            Source::Model { model, data } => {
                check_positions(model, &config.positions)?;
                if let Some(net) = MlpNet::of(model, CHUNK_ROWS)? {
                    let lowest = net.lowest_layer(&d.param_index);
                    let net = MlpPassNet { net, lowest };
                    GradientPass::Mlp(MlpPass::new(net, data, d, pairing)?)
                } else if let Some(net) = CnnNet::of(model)? {
                    GradientPass::Cnn(Box::new(CnnPass::new(net, data, d, pairing)?))
                } else if let Some(net) = attention_net(model, config)? {
                    GradientPass::Attn(Box::new(AttnPass::new(net, data, d, pairing)?))
                } else {
                    GradientPass::Tape(TapePass::new(model, data, d, config))
                }
            }
            Source::Gradients(grads) => GradientPass::Given(GivenPass::new(grads, d)?),
        })
    }

    /// How the tensors' gradients arrive (for the last batch, on the tape).
    pub fn split(&self) -> &Split {
        match self {
            GradientPass::Mlp(p) => &p.split,
            GradientPass::Cnn(p) => &p.split,
            GradientPass::Attn(p) => &p.split,
            GradientPass::Tape(p) => &p.batch.split,
            GradientPass::Given(p) => &p.batch.split,
        }
    }

    /// The fewest samples a batch needs: 2 when each sample's reference must be another
    /// sample's output; 1 for given gradients (no references).
    pub fn min_batch(&self) -> usize {
        match self {
            GradientPass::Mlp(p) => p.min_batch(),
            GradientPass::Cnn(p) => p.min_batch(),
            GradientPass::Attn(p) => p.min_batch(),
            GradientPass::Tape(p) => p.reference.min_batch(),
            GradientPass::Given(_) => 1,
        }
    }

    /// Whether the gradients come from the hand-written MLP pass (no tape).
    pub fn uses_mlp(&self) -> bool {
        matches!(self, GradientPass::Mlp(_))
    }

    /// Whether the gradients come from a hand-written pass (MLP, CNN, attention: no tape).
    pub fn hand_written(&self) -> bool {
        matches!(
            self,
            GradientPass::Mlp(_) | GradientPass::Cnn(_) | GradientPass::Attn(_)
        )
    }

    /// Samples per chunk: a hand-written pass's own ([`PassNet::chunk_rows`]), [`CHUNK_ROWS`]
    /// for the tape and given gradients.
    pub fn chunk_rows(&self) -> usize {
        match self {
            GradientPass::Mlp(p) => p.chunk_rows(),
            GradientPass::Cnn(p) => p.chunk_rows(),
            GradientPass::Attn(p) => p.chunk_rows(),
            GradientPass::Tape(_) | GradientPass::Given(_) => CHUNK_ROWS,
        }
    }

    /// Multiply-adds of the pass's forward and backward over `b` samples, roughly, as a
    /// hand-written pass counts them ([`PassNet::work_per_sample`]; 0 where not counted).
    pub fn work(&self, b: usize) -> usize {
        match self {
            GradientPass::Mlp(p) => p.work(b),
            GradientPass::Cnn(p) => p.work(b),
            GradientPass::Attn(p) => p.work(b),
            GradientPass::Tape(_) | GradientPass::Given(_) => 0,
        }
    }

    /// Buffers for batches of up to `n_chunks` chunks (allocates; steps then reuse them).
    pub fn reserve(&mut self, n_chunks: usize) {
        match self {
            GradientPass::Mlp(p) => p.reserve(n_chunks),
            GradientPass::Cnn(p) => p.reserve(n_chunks),
            GradientPass::Attn(p) => p.reserve(n_chunks),
            _ => {}
        }
    }

    /// The per-sample gradients of the batch `rows` (of the data, or of the given gradients),
    /// in `n_chunks` chunks, drawing references from `rng`. Returns whether the split changed.
    pub fn compute(
        &mut self,
        rows: &[usize],
        rng: &mut impl Rng,
        n_chunks: usize,
        parallel: bool,
    ) -> Result<bool> {
        match self {
            GradientPass::Mlp(p) => {
                p.compute(rows, rng, n_chunks, parallel);
                Ok(false)
            }
            GradientPass::Cnn(p) => {
                p.compute(rows, rng, n_chunks, parallel);
                Ok(false)
            }
            GradientPass::Attn(p) => {
                p.compute(rows, rng, n_chunks, parallel);
                Ok(false)
            }
            GradientPass::Tape(p) => p.compute(rows, rng),
            GradientPass::Given(p) => {
                p.compute(rows);
                Ok(false)
            }
        }
    }

    /// Factored tensor `k`'s per-sample gradient for the rows of `span`:
    /// `(left: [n M, p], right: [n M, q])`.
    pub fn outer_rows(&self, k: usize, span: Span) -> (&[T], &[T]) {
        match self {
            GradientPass::Mlp(p) => p.outer_rows(k, span),
            GradientPass::Cnn(p) => p.outer_rows(k, span),
            GradientPass::Attn(p) => p.outer_rows(k, span),
            GradientPass::Tape(p) => p.batch.outer_rows(k, span),
            GradientPass::Given(p) => p.batch.outer_rows(k, span),
        }
    }

    /// Dense tensor `k`'s per-sample gradients for the rows of `span`: `[n, numel]`.
    pub fn dense_rows(&self, k: usize, span: Span) -> &[T] {
        match self {
            GradientPass::Mlp(p) => p.dense_rows(k, span),
            GradientPass::Cnn(p) => p.dense_rows(k, span),
            GradientPass::Attn(p) => p.dense_rows(k, span),
            GradientPass::Tape(p) => p.batch.dense_rows(k, span),
            GradientPass::Given(p) => p.batch.dense_rows(k, span),
        }
    }
}

/// A model with an MLP view: every decomposed weight's gradient factored (`M = 1`), every
/// bias's dense, computed per chunk into reused buffers.
pub(crate) type MlpPass<'m, T> = ChunkedPass<'m, T, MlpPassNet<'m, T>, MlpChunk<T>, usize, usize>;

/// The MLP pass's network, and the lowest layer whose `delta` a decomposed tensor needs (the
/// backward stops there). Its factored and dense tensors' roles are their layers.
pub(crate) struct MlpPassNet<'m, T: Float> {
    net: MlpNet<'m, T>,
    lowest: usize,
}

impl<T: Float> PassNet<T> for MlpPassNet<'_, T> {
    type Chunk = MlpChunk<T>;
    type Factored = usize;
    type Dense = usize;

    fn layout(&self, d: &Decomposition<T>) -> (Split, Vec<usize>, Vec<usize>) {
        let mut split = Split::default();
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        for (&param, cp) in d.param_index.iter().zip(&d.encoder) {
            match self.net.roles[param] {
                Role::Weight(l) => {
                    split.push_factored(cp.shape[0], cp.shape[1], 1);
                    weights.push(l);
                }
                Role::Bias(l) => {
                    split.push_dense(cp.numel());
                    biases.push(l);
                }
            }
        }
        (split, weights, biases)
    }

    fn new_chunk(&self, n: usize) -> MlpChunk<T> {
        MlpChunk::new(&self.net, n)
    }

    fn width(&self) -> usize {
        self.net.output_dim
    }

    fn gather(&self, c: &mut MlpChunk<T>, data: &Tensor<T>, rows: &[usize]) {
        c.gather(data, rows);
    }

    fn forward(&self, c: &mut MlpChunk<T>) {
        c.forward(&self.net);
    }

    fn output<'c>(&self, c: &'c MlpChunk<T>) -> &'c [T] {
        c.output(&self.net)
    }

    fn backward(&self, c: &mut MlpChunk<T>, r: &[T], divergence: Divergence) {
        c.backward(&self.net, r, divergence, self.lowest);
    }

    fn outer_rows<'c>(&'c self, c: &'c MlpChunk<T>, &l: &usize) -> (&'c [T], &'c [T]) {
        (c.layer_delta(&self.net, l), c.layer_input(&self.net, l))
    }

    fn dense_rows<'c>(&'c self, c: &'c MlpChunk<T>, &l: &usize) -> &'c [T] {
        c.layer_delta(&self.net, l)
    }
}

/// The attention pass's network for `model`, if it has an attention view and the step's
/// settings are ones the pass computes: every position, and a reference that is a sample's own
/// output or zero (a batch mean of sequence outputs is left to the tape).
fn attention_net<'m, T: Float>(
    model: &'m dyn Model<T>,
    config: &L3dConfig,
) -> Result<Option<AttnNet<'m, T>>> {
    let reference_fits = matches!(
        config.reference,
        Reference::RandomSample | Reference::RandomWithSelf | Reference::Zero
    );
    if !reference_fits || !matches!(config.positions, Positions::All) {
        return Ok(None);
    }
    let net = AttnNet::of(model)?;
    Ok(net.map(|n| n.paired(config.reference, config.divergence)))
}

/// A batch's per-sample gradients held whole, in the split's order: factored tensor `k` as
/// `outer[k] = (left: [B M, p], right: [B M, q])`, dense tensor `k` as `dense[k]: [B, numel]`.
#[derive(Debug, Default)]
pub(crate) struct BatchGradients<T> {
    split: Split,
    outer: Vec<(Vec<T>, Vec<T>)>,
    dense: Vec<Vec<T>>,
}

impl<T: Float> BatchGradients<T> {
    fn outer_rows(&self, k: usize, span: Span) -> (&[T], &[T]) {
        let f = &self.split.factored()[k];
        let (left, right) = &self.outer[k];
        (
            &left[span.values(f.m * f.p)],
            &right[span.values(f.m * f.q)],
        )
    }

    fn dense_rows(&self, k: usize, span: Span) -> &[T] {
        &self.dense[k][span.values(self.split.dense()[k].numel)]
    }
}

/// Any other model: the tape's per-sample gradients of the batch.
pub(crate) struct TapePass<'m, T: Float> {
    model: &'m dyn Model<T>,
    data: &'m Tensor<T>,
    reference: Reference,
    divergence: Divergence,
    /// The positions of a sequence output the divergence sums over.
    positions: Positions,
    param_index: Vec<usize>,
    shapes: Vec<Vec<usize>>,
    batch: BatchGradients<T>,
}

impl<'m, T: Float> TapePass<'m, T> {
    fn new(
        model: &'m dyn Model<T>,
        data: &'m Tensor<T>,
        d: &Decomposition<T>,
        config: &L3dConfig,
    ) -> Self {
        let shapes: Vec<Vec<usize>> = d.encoder.iter().map(|cp| cp.shape.clone()).collect();
        // Until the first batch says otherwise, every tensor's gradients are dense.
        let mut split = Split::default();
        for shape in &shapes {
            split.push_dense(shape.iter().product());
        }
        TapePass {
            model,
            data,
            reference: config.reference,
            divergence: config.divergence,
            positions: config.positions.clone(),
            param_index: d.param_index.clone(),
            shapes,
            batch: BatchGradients {
                split,
                ..Default::default()
            },
        }
    }

    /// [`pair_gradients`] of the batch, each tensor's kept factored when the tape kept it
    /// factored and its factors fit the tensor read as a matrix `[p, q]` (`p` its first axis,
    /// `q` the product of the others: a convolution's kernel `[out, in kh kw]`), dense
    /// `[B, numel]` otherwise. Returns whether the split differs from the last batch's.
    fn compute(&mut self, rows: &[usize], rng: &mut impl Rng) -> Result<bool> {
        let x = self.data.gather_rows(rows);
        let (reference, divergence) = (self.reference, self.divergence);
        let grads = pair_gradients(
            self.model,
            &self.param_index,
            &x,
            reference,
            divergence,
            &self.positions,
            rng,
        )?;
        let mut split = Split::default();
        let batch = &mut self.batch;
        batch.outer.clear();
        batch.dense.clear();
        for (g, shape) in grads.into_iter().zip(&self.shapes) {
            match g {
                Grad::Outer { left, right, .. }
                    if shape.len() >= 2
                        && left.ndim() == 3
                        && right.ndim() == 3
                        && left.shape()[..2] == right.shape()[..2]
                        && left.shape()[2] == shape[0]
                        && right.shape()[2] == shape[1..].iter().product::<usize>() =>
                {
                    let q = right.shape()[2];
                    split.push_factored(shape[0], q, left.shape()[1]);
                    batch.outer.push((left.into_data(), right.into_data()));
                }
                other => {
                    split.push_dense(shape.iter().product());
                    batch.dense.push(other.into_dense().into_data());
                }
            }
        }
        let changed = split != batch.split;
        batch.split = split;
        Ok(changed)
    }
}

/// Given per-sample gradients `[N, ..shape]`, one tensor per decomposed tensor (row `i` of
/// each is sample `i`), all dense, gathered by row.
pub(crate) struct GivenPass<'m, T: Float> {
    /// Tensor `t`'s gradients are `grads[param_index[t]]`.
    grads: &'m [Tensor<T>],
    param_index: Vec<usize>,
    batch: BatchGradients<T>,
}

impl<'m, T: Float> GivenPass<'m, T> {
    fn new(grads: &'m [Tensor<T>], d: &Decomposition<T>) -> Result<Self> {
        let mut split = Split::default();
        for (&param, cp) in d.param_index.iter().zip(&d.encoder) {
            let g = grads.get(param).ok_or_else(|| {
                L3dError::Gradients(format!("no given gradient for tensor {param}"))
            })?;
            if g.shape().get(1..) != Some(&cp.shape[..]) {
                return Err(L3dError::Gradients(format!(
                    "given gradients of shape {:?} for a tensor of shape {:?}",
                    g.shape(),
                    cp.shape
                )));
            }
            split.push_dense(cp.numel());
        }
        Ok(GivenPass {
            grads,
            param_index: d.param_index.clone(),
            batch: BatchGradients {
                dense: vec![Vec::new(); split.dense().len()],
                split,
                ..Default::default()
            },
        })
    }

    /// The batch's rows of every tensor, into the reused buffers.
    fn compute(&mut self, rows: &[usize]) {
        let b = rows.len();
        for (&param, out) in self.param_index.iter().zip(&mut self.batch.dense) {
            let all = &self.grads[param];
            let numel = all.row_len();
            fit(out, b * numel);
            for (dst, &r) in out.chunks_exact_mut(numel).zip(rows) {
                dst.copy_from_slice(all.row(r));
            }
        }
    }
}
