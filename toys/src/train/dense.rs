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
//!   `dL/da_L = 2 (a_L - t) / (B n_L)`; or, for logits and one-hot targets `t`, the
//!   cross-entropy `L = -mean over B of sum_j t_j log softmax(a_L)_j` (PyTorch's
//!   `CrossEntropyLoss`), so `dL/da_L = (softmax(a_L) - t) / B`.
//! - Backward, for each layer from the last: `dz = da * act'(z)`, `dW = dz^T a_{l-1}`,
//!   `db = sum over B of dz`, `da_{l-1} = dz W`.
//!
//! # Layout
//!
//! Activations are stored feature-major, `[n_l, B]` (one row of `B` values per unit), so that
//! every inner loop runs over the batch: with widths of 2 to 25 units, loops over units would
//! be too short to vectorise, while 32 samples fill a few SIMD registers. Forward and `da` are
//! axpys of batch rows, `dW` and `db` are dot products and sums over the batch.

use nets::{Activation, Architecture, Layer};
use tensor::elementwise::{elu, gelu_and_grad, relu, relu_grad};
use tensor::Tensor;

/// `a <- act(z)` and `d <- act'(z)`, the derivative kept for backward (left empty for the
/// identity). The match sits outside the loops so that each loop vectorises. Only the
/// activations [`DenseMlp::new`] accepts reach here.
fn activate(act: Activation, z: &[f32], a: &mut Vec<f32>, d: &mut Vec<f32>) {
    a.clear();
    d.clear();
    match act {
        Activation::Identity => a.extend_from_slice(z),
        Activation::Relu => {
            a.extend(z.iter().map(|&v| relu(v)));
            d.extend(z.iter().map(|&v| relu_grad(v)));
        }
        Activation::Gelu => {
            for &v in z {
                let (value, grad) = gelu_and_grad(v);
                a.push(value);
                d.push(grad);
            }
        }
        Activation::Elu => {
            // elu'(z) = e^z = elu(z) + 1 for z <= 0: one exp per element.
            a.extend(z.iter().map(|&v| elu(v, 1.0)));
            d.extend(
                z.iter()
                    .zip(a.iter())
                    .map(|(&v, &y)| if v > 0.0 { 1.0 } else { y + 1.0 }),
            );
        }
        Activation::Tanh | Activation::Sigmoid => unreachable!("refused by DenseMlp::new"),
    }
}

/// `g <- g * act'(z)`, with `d = act'(z)` from the forward pass.
fn activate_backward(act: Activation, d: &[f32], g: &mut [f32]) {
    if act != Activation::Identity {
        g.iter_mut().zip(d).for_each(|(g, &d)| *g *= d);
    }
}

/// One dense layer: where its parameters sit in the model's list, and what follows it.
#[derive(Debug, Clone)]
struct DenseLayer {
    n_in: usize,
    n_out: usize,
    weight: usize,
    bias: Option<usize>,
    act: Activation,
}

/// A stack of dense layers with its forward caches.
///
/// Invariant: after a forward pass over `B` samples, `a[0]` holds the input, `a[l + 1]` the
/// output of layer `l` and `d[l]` its activation's derivative at `z_l` (what backward needs),
/// each feature-major (`[n, B]`).
#[derive(Debug, Clone)]
pub struct DenseMlp {
    layers: Vec<DenseLayer>,
    /// `z_l` of the layer being computed (not kept: backward needs only `d`).
    z: Vec<f32>,
    d: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    /// `dL/da` of the current layer, and of the layer below (swapped as backward descends).
    grad_a: Vec<f32>,
    grad_below: Vec<f32>,
}

impl DenseMlp {
    /// The fast path for `arch`, or why it cannot run it: every layer must be linear, followed
    /// by at most one ReLU, GELU, ELU or identity.
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
                        act: Activation::Identity,
                    });
                    next_param += 1 + usize::from(*bias);
                    width = *out_features;
                }
                Layer::Activation { function } => {
                    let act = match function {
                        Activation::Tanh | Activation::Sigmoid => {
                            return Err(format!("no fast path for the activation {function:?}"))
                        }
                        known => *known,
                    };
                    match layers.last_mut() {
                        Some(last) if last.act == Activation::Identity => last.act = act,
                        _ => return Err("an activation must follow a linear layer".into()),
                    }
                }
                other => return Err(format!("no fast path for the layer {other:?}")),
            }
        }
        if layers.is_empty() {
            return Err("the model has no linear layer".into());
        }
        let n = layers.len();
        Ok(Self {
            layers,
            z: Vec::new(),
            d: vec![Vec::new(); n],
            a: vec![Vec::new(); n + 1],
            grad_a: Vec::new(),
            grad_below: Vec::new(),
        })
    }

    /// The loss of the batch made of rows `rows` of `x: [N, n_0]` and `t: [N, n_L]` under
    /// `params`, with its gradients written into `grads` (same shapes as `params`).
    pub fn loss_and_grads(
        &mut self,
        params: &[Tensor<f32>],
        x: &Tensor<f32>,
        t: &Tensor<f32>,
        rows: &[usize],
        loss: Loss,
        grads: &mut [Tensor<f32>],
    ) -> f32 {
        let b = rows.len();
        gather_transposed(x, rows, &mut self.a[0]);
        self.forward(params, b);
        // grad_a <- t (feature-major), then dL/da_L in place.
        gather_transposed(t, rows, &mut self.grad_a);
        let last = self.a.last().expect("at least the input");
        let value = match loss {
            Loss::Mse => mse_grad(last, &mut self.grad_a),
            Loss::CrossEntropy => cross_entropy_grad(last, b, &mut self.grad_a),
        };
        self.backward(params, b, grads);
        value
    }

    /// `a_l` and `act'(z_l)` for every layer from `a[0]`, kept for backward.
    fn forward(&mut self, params: &[Tensor<f32>], b: usize) {
        for (l, layer) in self.layers.iter().enumerate() {
            let w = params[layer.weight].data();
            let bias = layer.bias.map(|i| params[i].data());
            let (below, above) = self.a.split_at_mut(l + 1);
            let (input, z, a) = (&below[l], &mut self.z, &mut above[0]);
            z.clear();
            z.resize(layer.n_out * b, 0.0);
            for (o, z_o) in z.chunks_exact_mut(b).enumerate() {
                z_o.fill(bias.map_or(0.0, |bias| bias[o]));
                let w_o = &w[o * layer.n_in..(o + 1) * layer.n_in];
                for (&w_oi, a_i) in w_o.iter().zip(input.chunks_exact(b)) {
                    axpy(w_oi, a_i, z_o);
                }
            }
            activate(layer.act, z, a, &mut self.d[l]);
        }
    }

    /// From `grad_a = dL/da_L`, the gradients of every parameter into `grads`.
    fn backward(&mut self, params: &[Tensor<f32>], b: usize, grads: &mut [Tensor<f32>]) {
        for (l, layer) in self.layers.iter().enumerate().rev() {
            // dz = da * act'(z), in place.
            activate_backward(layer.act, &self.d[l], &mut self.grad_a);
            let dz = &self.grad_a;
            let input = &self.a[l];
            // dW[o, i] = dz_o . a_i; db[o] = sum of dz_o.
            let dw = grads[layer.weight].data_mut();
            for (dz_o, dw_o) in dz.chunks_exact(b).zip(dw.chunks_exact_mut(layer.n_in)) {
                for (g, a_i) in dw_o.iter_mut().zip(input.chunks_exact(b)) {
                    *g = dot(dz_o, a_i);
                }
            }
            if let Some(i) = layer.bias {
                for (g, dz_o) in grads[i].data_mut().iter_mut().zip(dz.chunks_exact(b)) {
                    *g = dz_o.iter().sum();
                }
            }
            if l == 0 {
                break;
            }
            // da_{l-1}[i] = sum over o of W[o, i] dz_o.
            let w = params[layer.weight].data();
            self.grad_below.clear();
            self.grad_below.resize(layer.n_in * b, 0.0);
            for (dz_o, w_o) in dz.chunks_exact(b).zip(w.chunks_exact(layer.n_in)) {
                for (&w_oi, g_i) in w_o.iter().zip(self.grad_below.chunks_exact_mut(b)) {
                    axpy(w_oi, dz_o, g_i);
                }
            }
            std::mem::swap(&mut self.grad_a, &mut self.grad_below);
        }
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

/// MSE of outputs `y` against targets `g` (both feature-major); `g <- 2 (y - t) / (B n)`.
fn mse_grad(y: &[f32], g: &mut [f32]) -> f32 {
    let count = y.len() as f32;
    let scale = 2.0 / count;
    let mut loss = 0.0;
    for (g, &y) in g.iter_mut().zip(y) {
        let d = y - *g;
        loss += d * d;
        *g = scale * d;
    }
    loss / count
}

/// Cross-entropy of logits `z: [n, B]` (feature-major) against one-hot `g`; `g <- (softmax(z)
/// - t) / B`. Each sample's softmax subtracts its largest logit first.
fn cross_entropy_grad(z: &[f32], b: usize, g: &mut [f32]) -> f32 {
    let n = z.len() / b;
    let mut loss = 0.0f32;
    for s in 0..b {
        let logit = |j: usize| z[j * b + s];
        let max = (0..n).map(logit).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = (0..n).map(|j| (logit(j) - max).exp()).sum();
        for j in 0..n {
            let p = (logit(j) - max).exp() / sum;
            let t = g[j * b + s];
            loss -= t * ((logit(j) - max) - sum.ln());
            g[j * b + s] = (p - t) / b as f32;
        }
    }
    loss / b as f32
}

/// `out <- rows of m: [N, n]`, transposed to `[n, rows.len()]`.
fn gather_transposed(m: &Tensor<f32>, rows: &[usize], out: &mut Vec<f32>) {
    let (n, b) = (m.row_len(), rows.len());
    out.clear();
    out.resize(n * b, 0.0);
    for (s, &r) in rows.iter().enumerate() {
        for (j, &v) in m.row(r).iter().enumerate() {
            out[j * b + s] = v;
        }
    }
}

/// `y <- y + alpha x`.
#[inline]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// `x . y`, accumulated in 8 lanes (which the compiler keeps in one SIMD register) and then
/// summed, so that it vectorises without reassociation by the compiler.
#[inline]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0.0f32; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xs, ys) in xc.zip(yc) {
        for k in 0..LANES {
            acc[k] += xs[k] * ys[k];
        }
    }
    acc.iter().sum::<f32>() + tail
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
            let mut fast = DenseMlp::new(&arch).unwrap();
            for (b, loss_kind) in [(1, Loss::Mse), (7, Loss::CrossEntropy), (32, Loss::Mse)] {
                let x = crate::data::sample(&kind.data(), b, &mut r);
                let t = match loss_kind {
                    Loss::Mse => kind.target(3).apply(&x),
                    Loss::CrossEntropy => crate::models::Target::Class.apply(&x),
                };
                let mut grads: Vec<Tensor<f32>> =
                    params.iter().map(|p| Tensor::zeros(p.shape())).collect();
                let rows: Vec<usize> = (0..b).collect();
                let loss = fast.loss_and_grads(&params, &x, &t, &rows, loss_kind, &mut grads);
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
        let mut arch = ToyKind::Tms.architecture();
        arch.layers.push(Layer::Activation {
            function: Activation::Tanh,
        });
        assert!(DenseMlp::new(&arch).is_err());
    }
}
