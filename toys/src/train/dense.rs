//! Toy training's batch gradients from the hand-written MLP pass ([`l3d::mlp`], the one the
//! fast path takes per-sample gradients from): the same loss and gradients as the tape path
//! (`Backend::Tape`), which a test checks, without the tape's per-op allocations: `tms` has 25
//! parameters and is trained for up to 313,000 steps, so the per-step overhead is the whole
//! cost.
//!
//! # Legend
//!
//! - `B`: batch size; `x: [B, n_0]` the input rows, `y: [B, n_L]` the output rows.
//! - Loss: `L = mean over B x n_L of (y - t)^2` (PyTorch's `MSELoss`), so
//!   `dL/dy = 2 (y - t) / (B n_L)`; or, for logits and one-hot targets `t`, the
//!   cross-entropy `L = -mean over B of sum_j t_j log softmax(y)_j` (PyTorch's
//!   `CrossEntropyLoss`), so `dL/dy = (softmax(y) - t) / B`.
//! - From `dL/dy` the pass gives every layer's `delta_l = dL/dz_l: [B, n_{l+1}]`; then
//!   `dW_l = delta_l^T a_{l-1}` (one product over the batch) and `db_l = sum over B of delta_l`.

use l3d::mlp::{exp_sum, MlpChunk, MlpNet};
use l3d::Model;
use nets::{MlpLayer, MlpView, Sequential};
use tensor::gemm::{gemm, GemmScratch, MatMut, MatRef};
use tensor::Tensor;

/// The MLP pass of a model's layers, with its buffers.
///
/// Invariant: `chunk` holds buffers for `capacity` rows of this model's layers.
#[derive(Debug, Clone)]
pub struct DenseMlp {
    layers: Vec<MlpLayer>,
    input_dim: usize,
    output_dim: usize,
    chunk: MlpChunk<f32>,
    capacity: usize,
    gemm: GemmScratch<f32>,
}

impl DenseMlp {
    /// The pass for `model`, or why it cannot run it: the model must be a stack of linear
    /// layers, each followed by at most one activation ([`Model::as_mlp`]).
    pub fn new(model: &Sequential<f32>) -> Result<Self, String> {
        let view = model
            .as_mlp()
            .ok_or("the model is not a stack of linear layers and activations")?;
        Ok(Self {
            layers: view.layers,
            input_dim: model.input_dim(),
            output_dim: model.output_dim(),
            chunk: MlpChunk::default(),
            capacity: 0,
            gemm: GemmScratch::default(),
        })
    }

    /// The loss of the batch made of rows `rows` of `x: [N, n_0]` and `t: [N, n_L]` under
    /// `params`, with its gradients written into `grads` (same shapes as `params`), or an
    /// error naming a parameter that does not fit the layers.
    pub fn loss_and_grads(
        &mut self,
        params: &[Tensor<f32>],
        x: &Tensor<f32>,
        t: &Tensor<f32>,
        rows: &[usize],
        loss: Loss,
        grads: &mut [Tensor<f32>],
    ) -> Result<f32, String> {
        let view = MlpView {
            params: params.iter().collect(),
            layers: self.layers.clone(),
        };
        let net = MlpNet::from_view(view, self.input_dim, self.output_dim, rows.len())
            .map_err(|e| e.to_string())?;
        if rows.len() > self.capacity {
            self.chunk = MlpChunk::new(&net, rows.len());
            self.capacity = rows.len();
        }
        let chunk = &mut self.chunk;
        chunk.gather(x, rows);
        chunk.forward(&net);
        let (y, dy) = chunk.output_and_grad(&net);
        let value = match loss {
            Loss::Mse => mse_grad(y, t, rows, dy),
            Loss::CrossEntropy => cross_entropy_grad(y, t, rows, dy),
        };
        chunk.backpropagate(&net, 0);
        let n = rows.len();
        for (l, (layer, spec)) in net.layers.iter().zip(&self.layers).enumerate() {
            let delta = chunk.layer_delta(&net, l);
            // dW = delta^T a_{l-1}: [n_out, B] @ [B, n_in].
            gemm(
                1.0,
                MatRef::rows(delta, n, layer.n_out).t(),
                MatRef::rows(chunk.layer_input(&net, l), n, layer.n_in),
                0.0,
                MatMut::rows(grads[spec.weight].data_mut(), layer.n_out, layer.n_in),
                &mut self.gemm,
            );
            if let Some(b) = spec.bias {
                let db = grads[b].data_mut();
                db.fill(0.0);
                for row in delta.chunks_exact(layer.n_out) {
                    db.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
                }
            }
        }
        Ok(value)
    }
}

/// The loss a toy is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Mean squared error over every output.
    #[default]
    Mse,
    /// Cross-entropy of logits against one-hot targets, the batch mean.
    CrossEntropy,
}

/// MSE of output rows `y` against rows `rows` of `t`; `g <- 2 (y - t) / (B n)`.
fn mse_grad(y: &[f32], t: &Tensor<f32>, rows: &[usize], g: &mut [f32]) -> f32 {
    let count = y.len() as f32;
    let scale = 2.0 / count;
    let mut loss = 0.0;
    let width = t.row_len();
    for ((y, g), &r) in y
        .chunks_exact(width)
        .zip(g.chunks_exact_mut(width))
        .zip(rows)
    {
        for ((g, &y), &t) in g.iter_mut().zip(y).zip(t.row(r)) {
            let d = y - t;
            loss += d * d;
            *g = scale * d;
        }
    }
    loss / count
}

/// Cross-entropy of logit rows `z` against one-hot rows `rows` of `t`;
/// `g <- (softmax(z) - t) / B`. Each sample's softmax subtracts its largest logit first.
fn cross_entropy_grad(z: &[f32], t: &Tensor<f32>, rows: &[usize], g: &mut [f32]) -> f32 {
    let (width, b) = (t.row_len(), rows.len() as f32);
    let mut loss = 0.0f32;
    for ((z, g), &r) in z
        .chunks_exact(width)
        .zip(g.chunks_exact_mut(width))
        .zip(rows)
    {
        let (max, sum) = exp_sum(z);
        let log_sum = sum.ln();
        for ((g, &zj), &tj) in g.iter_mut().zip(z).zip(t.row(r)) {
            let p = (zj - max).exp() / sum;
            loss -= tj * ((zj - max) - log_sum);
            *g = (p - tj) / b;
        }
    }
    loss / b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{kaiming_uniform, ToyKind};
    use autodiff::Tape;
    use l3d::Model;
    use nets::Sequential;
    use tensor::rng;

    /// The tape's loss and gradients for the same batch.
    fn tape_loss_and_grads(
        model: &Sequential<f32>,
        x: &Tensor<f32>,
        t: &Tensor<f32>,
        loss: Loss,
    ) -> (f32, Vec<Tensor<f32>>) {
        let mut tape = Tape::new();
        let p: Vec<_> = model
            .params()
            .into_iter()
            .map(|w| tape.param(w.clone()))
            .collect();
        let (xv, tv) = (tape.input(x.clone()), tape.input(t.clone()));
        let y = model.forward(&mut tape, &p, xv).unwrap();
        let value = crate::train::record_loss(&mut tape, loss, y, tv).unwrap();
        (tape.value(value).item(), tape.grad(value, &p).unwrap())
    }

    #[test]
    fn equals_the_tape_on_every_toy_and_odd_batches() {
        // Same math, different summation order: agreement to a few f32 ulps of the values
        // involved (gradients are O(1) here), so 1e-5 absolute.
        for kind in ToyKind::ALL {
            let arch = kind.architecture();
            let mut r = rng(11);
            let params = kaiming_uniform(&arch, &mut r);
            let model = Sequential::new(arch.clone(), params.clone()).unwrap();
            let mut fast = DenseMlp::new(&model).unwrap();
            for (b, loss_kind) in [(1, Loss::Mse), (7, Loss::CrossEntropy), (32, Loss::Mse)] {
                let x = crate::data::sample(&kind.data(), b, &mut r);
                let t = match loss_kind {
                    Loss::Mse => kind.target(3).apply(&x),
                    Loss::CrossEntropy => crate::models::Target::Class.apply(&x),
                };
                let mut grads: Vec<Tensor<f32>> =
                    params.iter().map(|p| Tensor::zeros(p.shape())).collect();
                let rows: Vec<usize> = (0..b).collect();
                let loss = fast
                    .loss_and_grads(&params, &x, &t, &rows, loss_kind, &mut grads)
                    .unwrap();
                let (tape_loss, tape_grads) = tape_loss_and_grads(&model, &x, &t, loss_kind);
                assert!(
                    (loss - tape_loss).abs() < 1e-5 * tape_loss.max(1.0),
                    "{kind} B={b} {loss_kind:?}: {loss} vs {tape_loss}"
                );
                for (g, h) in grads.iter().zip(&tape_grads) {
                    assert!(g.max_abs_diff(h) < 1e-5, "{kind} B={b}: {g:?} vs {h:?}");
                }
            }
        }
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        // Two activations in a row are not a stack of dense layers.
        let mut arch = ToyKind::Tms.architecture();
        arch.layers.push(nets::Layer::Activation {
            function: nets::Activation::Tanh,
        });
        let params = kaiming_uniform(&arch, &mut rng(0));
        let model = Sequential::new(arch, params).unwrap();
        assert!(DenseMlp::new(&model).is_err());
    }
}
