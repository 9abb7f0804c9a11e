//! A hand-written forward and backward pass for the toys' small MLPs, the fast path of toy
//! training. It computes the same loss and gradients as the tape path (`Backend::Tape`), which
//! a test checks, without the tape's per-op allocations: `tms` has 25 parameters and is trained
//! for up to 313,000 steps, so the per-step overhead is the whole cost.
//!
//! # Legend
//!
//! - `B`: batch size; `a_0 = x: [B, n_0]` the input.
//! - Layer `l`: `z_l = a_{l-1} W_l^T + b_l` (`W_l: [n_l, n_{l-1}]`, `b_l: [n_l]`, optional),
//!   `a_l = act_l(z_l)`.
//! - Loss: `L = mean over B x n_L of (a_L - t)^2` (PyTorch's `MSELoss`), so
//!   `dL/da_L = 2 (a_L - t) / (B n_L)`.
//! - Backward, for each layer from the last: `dz = da * act'(z)`, `dW = dz^T a_{l-1}`,
//!   `db = sum over B of dz`, `da_{l-1} = dz W`.

use crate::arch::{Activation, Architecture, Layer};
use tensor::elementwise::{gelu, gelu_grad, relu, relu_grad};
use tensor::Tensor;

/// The activations the fast path knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Identity,
    Relu,
    Gelu,
}

impl Act {
    fn f(self, z: f32) -> f32 {
        match self {
            Act::Identity => z,
            Act::Relu => relu(z),
            Act::Gelu => gelu(z),
        }
    }

    /// The derivative at `z` (ReLU: 0 at `z = 0`, as the tape).
    fn df(self, z: f32) -> f32 {
        match self {
            Act::Identity => 1.0,
            Act::Relu => relu_grad(z),
            Act::Gelu => gelu_grad(z),
        }
    }
}

/// One dense layer: where its parameters sit in the model's list, and what follows it.
#[derive(Debug, Clone)]
struct DenseLayer {
    n_in: usize,
    n_out: usize,
    weight: usize,
    bias: Option<usize>,
    act: Act,
}

/// A stack of dense layers with its forward caches.
///
/// Invariant: `z[l]` and `a[l + 1]` hold `B x n_out` values of layer `l` after a forward pass
/// (`a[0]` the input), for the `B` of that pass.
#[derive(Debug, Clone)]
pub struct DenseMlp {
    layers: Vec<DenseLayer>,
    z: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    /// `dL/da` of the current layer, and of the layer below (swapped as backward descends).
    grad_a: Vec<f32>,
    grad_below: Vec<f32>,
}

impl DenseMlp {
    /// The fast path for `arch`, or why it cannot run it: every layer must be linear, followed
    /// by at most one ReLU, GELU or identity.
    pub fn new(arch: &Architecture) -> Result<Self, String> {
        let mut layers: Vec<DenseLayer> = Vec::new();
        let mut next_param = 0;
        let mut width = arch.input_dim;
        for layer in &arch.layers {
            match layer {
                Layer::Linear {
                    in_features,
                    out_features,
                    bias,
                    ..
                } => {
                    if *in_features != width {
                        return Err(format!("a linear layer takes {in_features}, gets {width}"));
                    }
                    layers.push(DenseLayer {
                        n_in: *in_features,
                        n_out: *out_features,
                        weight: next_param,
                        bias: bias.then_some(next_param + 1),
                        act: Act::Identity,
                    });
                    next_param += 1 + usize::from(*bias);
                    width = *out_features;
                }
                Layer::Activation { function } => {
                    let act = match function {
                        Activation::Relu => Act::Relu,
                        Activation::Gelu => Act::Gelu,
                        Activation::Identity => Act::Identity,
                        other => return Err(format!("no fast path for the activation {other:?}")),
                    };
                    match layers.last_mut() {
                        Some(last) if last.act == Act::Identity => last.act = act,
                        _ => return Err("an activation must follow a linear layer".into()),
                    }
                }
                other => return Err(format!("no fast path for the layer {other:?}")),
            }
        }
        let n = layers.len();
        Ok(Self {
            layers,
            z: vec![Vec::new(); n],
            a: vec![Vec::new(); n + 1],
            grad_a: Vec::new(),
            grad_below: Vec::new(),
        })
    }

    /// The loss of the batch `x: [B, n_0]` against `t: [B, n_L]` (row-major slices) under
    /// `params`, with its gradients written into `grads` (same shapes as `params`).
    pub fn loss_and_grads(
        &mut self,
        params: &[Tensor<f32>],
        x: &[f32],
        t: &[f32],
        grads: &mut [Tensor<f32>],
    ) -> f32 {
        let b = x.len() / self.layers[0].n_in;
        self.forward(params, x, b);
        let last = self.a.last().expect("at least the input");
        let scale = 2.0 / t.len() as f32;
        let mut loss = 0.0;
        self.grad_a.clear();
        for (&y, &t) in last.iter().zip(t) {
            loss += (y - t) * (y - t);
            self.grad_a.push(scale * (y - t));
        }
        self.backward(params, b, grads);
        loss / t.len() as f32
    }

    /// `z_l` and `a_l` for every layer, kept for backward.
    fn forward(&mut self, params: &[Tensor<f32>], x: &[f32], b: usize) {
        self.a[0].clear();
        self.a[0].extend_from_slice(x);
        for (l, layer) in self.layers.iter().enumerate() {
            let w = params[layer.weight].data();
            let bias = layer.bias.map(|i| params[i].data());
            let (below, above) = self.a.split_at_mut(l + 1);
            let (input, z, a) = (&below[l], &mut self.z[l], &mut above[0]);
            z.clear();
            a.clear();
            for s in 0..b {
                let row = &input[s * layer.n_in..(s + 1) * layer.n_in];
                for o in 0..layer.n_out {
                    let w_row = &w[o * layer.n_in..(o + 1) * layer.n_in];
                    let mut acc = bias.map_or(0.0, |b| b[o]);
                    for (xi, wi) in row.iter().zip(w_row) {
                        acc += xi * wi;
                    }
                    z.push(acc);
                    a.push(layer.act.f(acc));
                }
            }
        }
    }

    /// From `grad_a = dL/da_L`, the gradients of every parameter into `grads`.
    fn backward(&mut self, params: &[Tensor<f32>], b: usize, grads: &mut [Tensor<f32>]) {
        for (l, layer) in self.layers.iter().enumerate().rev() {
            // dz = da * act'(z), in place.
            for (g, &z) in self.grad_a.iter_mut().zip(&self.z[l]) {
                *g *= layer.act.df(z);
            }
            let dz = &self.grad_a;
            let input = &self.a[l];
            let (n_in, n_out) = (layer.n_in, layer.n_out);
            let dw = grads[layer.weight].data_mut();
            dw.fill(0.0);
            for s in 0..b {
                let row = &input[s * n_in..(s + 1) * n_in];
                for o in 0..n_out {
                    let d = dz[s * n_out + o];
                    for (g, xi) in dw[o * n_in..(o + 1) * n_in].iter_mut().zip(row) {
                        *g += d * xi;
                    }
                }
            }
            if let Some(i) = layer.bias {
                let db = grads[i].data_mut();
                db.fill(0.0);
                for s in 0..b {
                    for (g, d) in db.iter_mut().zip(&dz[s * n_out..(s + 1) * n_out]) {
                        *g += d;
                    }
                }
            }
            if l == 0 {
                break;
            }
            // da_{l-1} = dz W.
            let w = params[layer.weight].data();
            self.grad_below.clear();
            self.grad_below.resize(b * n_in, 0.0);
            for s in 0..b {
                let out = &mut self.grad_below[s * n_in..(s + 1) * n_in];
                for o in 0..n_out {
                    let d = dz[s * n_out + o];
                    for (g, wi) in out.iter_mut().zip(&w[o * n_in..(o + 1) * n_in]) {
                        *g += d * wi;
                    }
                }
            }
            std::mem::swap(&mut self.grad_a, &mut self.grad_below);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Sequential;
    use crate::models::{kaiming_uniform, ToyKind};
    use autodiff::Tape;
    use l3d::Model;
    use tensor::rng;

    /// The tape's loss and gradients for the same batch.
    fn tape_loss_and_grads(
        model: &Sequential<f32>,
        x: &Tensor<f32>,
        t: &Tensor<f32>,
    ) -> (f32, Vec<Tensor<f32>>) {
        let mut tape = Tape::new();
        let p: Vec<_> = model
            .params()
            .into_iter()
            .map(|w| tape.param(w.clone()))
            .collect();
        let (xv, tv) = (tape.input(x.clone()), tape.input(t.clone()));
        let y = model.forward(&mut tape, &p, xv).unwrap();
        let per_row = tape.mse(y, tv);
        let loss = tape.mean_all(per_row);
        (tape.value(loss).item(), tape.grad(loss, &p).unwrap())
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
            let mut fast = DenseMlp::new(&arch).unwrap();
            for b in [1, 7, 32] {
                let x = crate::data::sample(&kind.data(), b, &mut r);
                let t = kind.target(3).apply(&x);
                let mut grads: Vec<Tensor<f32>> =
                    params.iter().map(|p| Tensor::zeros(p.shape())).collect();
                let loss = fast.loss_and_grads(&params, x.data(), t.data(), &mut grads);
                let (tape_loss, tape_grads) = tape_loss_and_grads(&model, &x, &t);
                assert!(
                    (loss - tape_loss).abs() < 1e-5 * tape_loss.max(1.0),
                    "{kind} B={b}"
                );
                for (g, h) in grads.iter().zip(&tape_grads) {
                    assert!(g.max_abs_diff(h) < 1e-5, "{kind} B={b}: {g:?} vs {h:?}");
                }
            }
        }
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let mut arch = ToyKind::Tms.architecture();
        arch.layers.push(Layer::Activation {
            function: Activation::Tanh,
        });
        assert!(DenseMlp::new(&arch).is_err());
    }
}
