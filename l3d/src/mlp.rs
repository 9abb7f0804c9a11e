//! The forward and backward pass of a stack of dense layers without the tape, into buffers
//! reused from step to step: the one hand-written MLP pass. The fast path takes per-sample
//! gradients from it (`fast/gradients.rs`, `fast/per_sample.rs`); toy training takes batch
//! gradients from it (`toys::train::DenseMlp`), starting the backward from its loss's gradient
//! ([`MlpChunk::backpropagate`]) instead of a divergence's.
//!
//! # Legend
//!
//! - `n` rows of a chunk of the batch; `x: [n, d_0]` their inputs.
//! - Layer `l` (`0..L`): `z_l = a_{l-1} W_l^T + b_l` with `W_l: [d_{l+1}, d_l]`, `b_l: [d_{l+1}]`,
//!   `a_{-1} = x`, and `a_l = act_l(z_l)`; the output is `y = a_{L-1}: [n, d_L]`.
//! - `r: [n, d_L]` the reference outputs, held fixed; `D(y_i, r_i)` the divergence.
//! - `delta_l = dD/dz_l: [n, d_{l+1}]`: `delta_{L-1} = dD/dy * act'(z_{L-1})` and
//!   `delta_{l-1} = (delta_l W_l) * act'(z_{l-1})`.
//!
//! Sample `i`'s gradient of `W_l` is the outer product `delta_l[i] (x) a_{l-1}[i]` (kept in that
//! factored form by the caller), and of `b_l` it is `delta_l[i]`.
//!
//! Divergence gradients, as the tape computes them (`pairs::record_divergence`):
//! MSE `mean_j (y_j - r_j)^2`: `2 (y - r) / d_L`; the authors' variant `mean_j y_j (y_j - r_j)`:
//! `(2 y - r) / d_L`; KL `KL(softmax(r) || softmax(y))`: `softmax(y) - softmax(r)`.

use crate::config::Divergence;
use crate::error::{L3dError, Result};
use nets::{Activation, MlpView, Model};
use tensor::elementwise::{elu, elu_grad, gelu, gelu_grad, gelu_rows, relu, relu_grad, sigmoid};
use tensor::gemm::{gemm_maybe_packed, takes_packing, GemmScratch, MatMut, MatRef, PackedB};
use tensor::{Float, Tensor};

/// One dense layer with its values, and for large layers `W^T` and `W` packed once for the
/// forward and backward products (the weights never change).
#[derive(Debug, Clone)]
pub struct NetLayer<'m, T: Float> {
    pub w: &'m Tensor<T>,
    pub b: Option<&'m Tensor<T>>,
    pub act: Activation,
    pub n_in: usize,
    pub n_out: usize,
    w_t_packed: Option<PackedB<T>>,
    w_packed: Option<PackedB<T>>,
}

impl<T: Float> NetLayer<'_, T> {
    /// `W^T: [d_in, d_out]`, the forward product's right operand.
    fn w_t(&self) -> MatRef<'_, T> {
        MatRef::rows(self.w.data(), self.n_out, self.n_in).t()
    }

    /// `W: [d_out, d_in]`, the backward product's right operand.
    fn w(&self) -> MatRef<'_, T> {
        MatRef::rows(self.w.data(), self.n_out, self.n_in)
    }
}

/// What a parameter tensor is to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Weight(usize),
    Bias(usize),
}

/// A validated [`MlpView`]: the layers and, for every model parameter, its role.
#[derive(Debug, Clone)]
pub struct MlpNet<'m, T: Float> {
    pub layers: Vec<NetLayer<'m, T>>,
    pub roles: Vec<Role>,
    pub input_dim: usize,
    pub output_dim: usize,
}

impl<'m, T: Float> MlpNet<'m, T> {
    /// The network of `model` for passes over `rows` rows at a time, `None` if the model is
    /// not an MLP, or an error naming what in its view does not fit the model.
    pub fn of(model: &'m dyn Model<T>, rows: usize) -> Result<Option<Self>> {
        let Some(view) = model.as_mlp() else {
            return Ok(None);
        };
        Self::from_view(view, model.input_dim(), model.output_dim(), rows).map(Some)
    }

    /// The network of `view` (a model's layers, over the parameter values it holds) taking
    /// `input_dim` values and giving `output_dim`, or an error naming what does not fit. The
    /// weights of layers large enough that products of `rows` rows pay for packing are packed
    /// once here.
    pub fn from_view(
        view: MlpView<'m, T>,
        input_dim: usize,
        output_dim: usize,
        rows: usize,
    ) -> Result<Self> {
        let bad = |msg: String| L3dError::Model(format!("the model's MLP view: {msg}"));
        let mut roles: Vec<Option<Role>> = vec![None; view.params.len()];
        let mut claim = |index: usize, role: Role| {
            match roles.get_mut(index) {
                Some(slot @ None) => *slot = Some(role),
                Some(Some(_)) => return Err(bad(format!("parameter {index} is used twice"))),
                None => return Err(bad(format!("parameter {index} does not exist"))),
            }
            Ok(())
        };
        let mut layers = Vec::with_capacity(view.layers.len());
        let mut width = input_dim;
        for (l, layer) in view.layers.iter().enumerate() {
            claim(layer.weight, Role::Weight(l))?;
            let w = view.params[layer.weight];
            if w.ndim() != 2 || w.shape()[1] != width {
                return Err(bad(format!(
                    "layer {l}'s weight has shape {:?}; it receives {width} values",
                    w.shape()
                )));
            }
            let n_out = w.shape()[0];
            let b = match layer.bias {
                Some(i) => {
                    claim(i, Role::Bias(l))?;
                    let b = view.params[i];
                    if b.shape() != [n_out] {
                        return Err(bad(format!(
                            "layer {l}'s bias has shape {:?}, expected [{n_out}]",
                            b.shape()
                        )));
                    }
                    Some(b)
                }
                None => None,
            };
            let mut layer = NetLayer {
                w,
                b,
                act: layer.activation,
                n_in: width,
                n_out,
                w_t_packed: None,
                w_packed: None,
            };
            if takes_packing(rows, width, n_out) {
                let mut packed = PackedB::default();
                packed.pack(layer.w_t());
                layer.w_t_packed = Some(packed);
                let mut packed = PackedB::default();
                packed.pack(layer.w());
                layer.w_packed = Some(packed);
            }
            layers.push(layer);
            width = n_out;
        }
        if layers.is_empty() || width != output_dim {
            return Err(bad(format!(
                "{} layers ending at width {width}; the model outputs {output_dim}",
                layers.len()
            )));
        }
        let roles = roles
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or_else(|| bad(format!("parameter {i} is in no layer"))))
            .collect::<Result<Vec<Role>>>()?;
        Ok(Self {
            layers,
            roles,
            input_dim,
            output_dim,
        })
    }

    /// The lowest layer whose `delta` some wanted parameter needs (backward stops there).
    pub fn lowest_layer(&self, wanted: &[usize]) -> usize {
        wanted
            .iter()
            .map(|&p| match self.roles[p] {
                Role::Weight(l) | Role::Bias(l) => l,
            })
            .min()
            .unwrap_or(0)
    }
}

/// The forward and backward buffers of one chunk of `n` rows.
///
/// Invariant: after [`MlpChunk::forward`], `a[l]` and `da[l] = act'(z_l)` hold `n x d_{l+1}`
/// values; after [`MlpChunk::backward`], `delta[l]` does for every layer from the lowest wanted
/// one up.
#[derive(Debug, Clone, Default)]
pub struct MlpChunk<T> {
    pub n: usize,
    pub x: Vec<T>,
    z: Vec<Vec<T>>,
    pub a: Vec<Vec<T>>,
    da: Vec<Vec<T>>,
    pub delta: Vec<Vec<T>>,
    dy: Vec<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> MlpChunk<T> {
    /// Buffers for up to `n` rows of `net` (allocates; steps reuse them).
    pub fn new(net: &MlpNet<T>, n: usize) -> Self {
        let per_layer = || -> Vec<Vec<T>> {
            net.layers
                .iter()
                .map(|l| vec![T::zero(); n * l.n_out])
                .collect()
        };
        Self {
            n: 0,
            x: vec![T::zero(); n * net.input_dim],
            z: per_layer(),
            a: per_layer(),
            da: per_layer(),
            delta: per_layer(),
            dy: vec![T::zero(); n * net.output_dim],
            gemm: GemmScratch::default(),
        }
    }

    /// Copies `n` contiguous input rows into `x`.
    pub fn set_input(&mut self, x: &[T], n: usize) {
        self.n = n;
        self.x[..x.len()].copy_from_slice(x);
    }

    /// Copies `rows` of `data` (`[N, d_0]`) into `x`.
    pub fn gather(&mut self, data: &Tensor<T>, rows: &[usize]) {
        let d0 = data.row_len();
        self.n = rows.len();
        for (dst, &r) in self.x.chunks_exact_mut(d0).zip(rows) {
            dst.copy_from_slice(data.row(r));
        }
    }

    /// The output rows `y: [n, d_L]` of the last forward pass.
    pub fn output(&self, net: &MlpNet<T>) -> &[T] {
        &self.a[net.layers.len() - 1][..self.n * net.output_dim]
    }

    /// `z_l`, `a_l` and `act'(z_l)` for every layer, from `x`.
    pub fn forward(&mut self, net: &MlpNet<T>) {
        let n = self.n;
        for (l, layer) in net.layers.iter().enumerate() {
            let (below, rest) = self.a.split_at_mut(l);
            let input: &[T] = if l == 0 { &self.x } else { &below[l - 1] };
            let z = &mut self.z[l][..n * layer.n_out];
            // z = input W^T: [n, d_in] @ [d_in, d_out].
            gemm_maybe_packed(
                T::one(),
                MatRef::rows(input, n, layer.n_in),
                layer.w_t(),
                layer.w_t_packed.as_ref(),
                T::zero(),
                MatMut::rows(z, n, layer.n_out),
                &mut self.gemm,
            );
            if let Some(b) = layer.b {
                for row in z.chunks_exact_mut(layer.n_out) {
                    for (zi, &bi) in row.iter_mut().zip(b.data()) {
                        *zi += bi;
                    }
                }
            }
            let len = n * layer.n_out;
            let (z, a, da) = (
                &self.z[l][..len],
                &mut rest[0][..len],
                &mut self.da[l][..len],
            );
            match layer.act {
                // GELU's `erf` and `exp` would dominate the pass: one row kernel, vectorised
                // in `f32`.
                Activation::Gelu => gelu_rows(z, a, da),
                act => {
                    for ((ai, dai), &zi) in a.iter_mut().zip(da.iter_mut()).zip(z) {
                        (*ai, *dai) = activate(act, zi);
                    }
                }
            }
        }
    }

    /// `delta_l` for layers `lowest..L`, from the outputs of the last forward pass and the
    /// reference rows `r: [n, d_L]`.
    pub fn backward(&mut self, net: &MlpNet<T>, r: &[T], divergence: Divergence, lowest: usize) {
        let n = self.n;
        let width = net.output_dim;
        let y = &self.a[net.layers.len() - 1][..n * width];
        divergence_grad(
            divergence,
            y,
            &r[..n * width],
            width,
            &mut self.dy[..n * width],
        );
        self.backpropagate(net, lowest);
    }

    /// The output rows `y` of the last forward pass beside the buffer of `dL/dy` (both
    /// `[n, d_L]`), which the caller fills before [`MlpChunk::backpropagate`].
    pub fn output_and_grad(&mut self, net: &MlpNet<T>) -> (&[T], &mut [T]) {
        let len = self.n * net.output_dim;
        (&self.a[net.layers.len() - 1][..len], &mut self.dy[..len])
    }

    /// `delta_l` for layers `lowest..L` from `dL/dy` (see [`MlpChunk::output_and_grad`]).
    pub fn backpropagate(&mut self, net: &MlpNet<T>, lowest: usize) {
        let n = self.n;
        let last = net.layers.len() - 1;
        let width = net.output_dim;
        let top = &mut self.delta[last][..n * width];
        for ((d, &g), &da) in top.iter_mut().zip(&self.dy).zip(&self.da[last]) {
            *d = g * da;
        }
        for l in (lowest + 1..=last).rev() {
            let layer = &net.layers[l];
            let (lower, upper) = self.delta.split_at_mut(l);
            let out = &mut lower[l - 1][..n * layer.n_in];
            // delta_{l-1} = (delta_l W_l) * act'(z_{l-1}): [n, d_out] @ [d_out, d_in].
            gemm_maybe_packed(
                T::one(),
                MatRef::rows(&upper[0][..n * layer.n_out], n, layer.n_out),
                layer.w(),
                layer.w_packed.as_ref(),
                T::zero(),
                MatMut::rows(out, n, layer.n_in),
                &mut self.gemm,
            );
            for (d, &da) in out.iter_mut().zip(&self.da[l - 1]) {
                *d *= da;
            }
        }
    }

    /// The input rows of layer `l`: `x` for the first layer, `a_{l-1}` above.
    pub fn layer_input(&self, net: &MlpNet<T>, l: usize) -> &[T] {
        let len = self.n * net.layers[l].n_in;
        if l == 0 {
            &self.x[..len]
        } else {
            &self.a[l - 1][..len]
        }
    }

    /// `delta_l` rows.
    pub fn layer_delta(&self, net: &MlpNet<T>, l: usize) -> &[T] {
        &self.delta[l][..self.n * net.layers[l].n_out]
    }
}

/// `(act(z), act'(z))`, with the tape's formulas: ReLU's derivative is 0 at 0; tanh and
/// sigmoid take theirs from the output (`1 - a^2`, `a (1 - a)`). (The forward pass takes GELU
/// a row at a time, through [`gelu_rows`].)
#[inline]
pub(crate) fn activate<T: Float>(act: Activation, z: T) -> (T, T) {
    match act {
        Activation::Identity => (z, T::one()),
        Activation::Relu => (relu(z), relu_grad(z)),
        Activation::Gelu => (gelu(z), gelu_grad(z)),
        Activation::Elu => (elu(z, T::one()), elu_grad(z, T::one())),
        Activation::Tanh => {
            let a = z.tanh();
            (a, T::one() - a * a)
        }
        Activation::Sigmoid => {
            let a = sigmoid(z);
            (a, a * (T::one() - a))
        }
    }
}

/// `z <- act(z)` and `da <- act'(z)` over a whole buffer, as [`activate`] per value: the
/// activation is matched once, so the loop of each (ReLU's above all) is compiled on its own
/// and vectorises.
pub(crate) fn activate_in_place<T: Float>(act: Activation, z: &mut [T], da: &mut [T]) {
    #[inline(always)]
    fn each<T: Float>(z: &mut [T], da: &mut [T], f: impl Fn(T) -> (T, T)) {
        for (zi, dai) in z.iter_mut().zip(da.iter_mut()) {
            (*zi, *dai) = f(*zi);
        }
    }
    match act {
        Activation::Identity => each(z, da, |x| (x, T::one())),
        Activation::Relu => each(z, da, |x| (relu(x), relu_grad(x))),
        other => each(z, da, |x| activate(other, x)),
    }
}

/// `dD(y_i, r_i)/dy_i` for every row (see the module docs), rows of `width` values.
pub(crate) fn divergence_grad<T: Float>(
    divergence: Divergence,
    y: &[T],
    r: &[T],
    width: usize,
    out: &mut [T],
) {
    let inv = T::one() / T::from_usize(width);
    match divergence {
        Divergence::Mse => {
            for ((o, &yj), &rj) in out.iter_mut().zip(y).zip(r) {
                let diff = yj - rj;
                *o = (diff + diff) * inv;
            }
        }
        Divergence::MseAuthors => {
            for ((o, &yj), &rj) in out.iter_mut().zip(y).zip(r) {
                *o = (yj + yj - rj) * inv;
            }
        }
        Divergence::Kl => {
            for ((o, yr), rr) in out
                .chunks_exact_mut(width)
                .zip(y.chunks_exact(width))
                .zip(r.chunks_exact(width))
            {
                // softmax(y) - softmax(r) with three passes of exponentials, not four: y's
                // are kept in `o` until their sum is known.
                let (r_max, r_sum) = exp_sum(rr);
                let y_max = yr
                    .iter()
                    .fold(T::from_f64(f64::NEG_INFINITY), |m, &v| m.max(v));
                let mut y_sum = T::zero();
                for (oj, &yj) in o.iter_mut().zip(yr) {
                    *oj = (yj - y_max).exp();
                    y_sum += *oj;
                }
                let (y_inv, r_inv) = (T::one() / y_sum, T::one() / r_sum);
                for (oj, &rj) in o.iter_mut().zip(rr) {
                    *oj = *oj * y_inv - (rj - r_max).exp() * r_inv;
                }
            }
        }
    }
}

/// The row maximum and `sum_j e^(x_j - max)`.
pub fn exp_sum<T: Float>(x: &[T]) -> (T, T) {
    let max = x
        .iter()
        .fold(T::from_f64(f64::NEG_INFINITY), |m, &v| m.max(v));
    let sum = x.iter().fold(T::zero(), |s, &v| s + (v - max).exp());
    (max, sum)
}
