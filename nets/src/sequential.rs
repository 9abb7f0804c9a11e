//! A model that runs an [`Architecture`]: its forward pass recorded on the tape, and its view
//! as a stack of dense layers when it is one.
//!
//! Shapes carry the batch axis first: inputs `[B, ..input_shape]` (rows `[B, d]`, images
//! `[B, C, H, W]`, token ids `[B, T]`), outputs `[B, ..output_shape]` (`[B, T, vocab]` for
//! logits per position).

use crate::architecture::{window_of, Architecture, Layer};
use crate::{
    Activation, AttentionLayer, AttentionView, ConvView, MlpLayer, MlpView, Model, OutputKind,
};
use autodiff::{Conv2dOptions, Tape, Var};
use tensor::{Float, Tensor};

/// A feed-forward model: an architecture and its parameter values `W0`.
///
/// Invariant: `params[i]` has the name and shape of `slots[i]` of the architecture.
#[derive(Debug, Clone)]
pub struct Sequential<T: Float> {
    arch: Architecture,
    names: Vec<String>,
    params: Vec<Tensor<T>>,
    output_shape: Vec<usize>,
}

impl<T: Float> Sequential<T> {
    /// A model from an architecture and values in slot order; checks every shape.
    pub fn new(arch: Architecture, params: Vec<Tensor<T>>) -> Result<Self, String> {
        let (slots, output_shape) = arch.slots()?;
        if slots.len() != params.len() {
            return Err(format!(
                "the architecture has {} parameter tensors, {} were given",
                slots.len(),
                params.len()
            ));
        }
        for (slot, p) in slots.iter().zip(&params) {
            if slot.shape != p.shape() {
                return Err(format!(
                    "parameter '{}' should have shape {:?}, has {:?}",
                    slot.name,
                    slot.shape,
                    p.shape()
                ));
            }
        }
        Ok(Self {
            arch,
            names: slots.into_iter().map(|s| s.name).collect(),
            params,
            output_shape,
        })
    }

    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The same model with its values converted to another float type.
    pub fn cast<U: Float>(&self) -> Sequential<U> {
        Sequential {
            arch: self.arch.clone(),
            names: self.names.clone(),
            params: self.params.iter().map(|p| p.cast()).collect(),
            output_shape: self.output_shape.clone(),
        }
    }

    /// Replaces the parameter values (same shapes, in slot order).
    pub fn set_params(&mut self, params: Vec<Tensor<T>>) -> Result<(), String> {
        *self = Self::new(self.arch.clone(), params)?;
        Ok(())
    }

    pub fn params_mut(&mut self) -> &mut [Tensor<T>] {
        &mut self.params
    }
}

/// A forward pass being recorded: the tape, the parameters' `Var`s and names (in slot order),
/// and the next parameter to read.
struct Forward<'a, T: Float> {
    tape: &'a mut Tape<T>,
    params: &'a [Var],
    names: &'a [String],
    next: usize,
}

impl<T: Float> Forward<'_, T> {
    /// The next parameter in slot order.
    fn take(&mut self) -> Var {
        self.next += 1;
        self.params[self.next - 1]
    }

    /// The next parameter if `present`.
    fn take_if(&mut self, present: bool) -> Option<Var> {
        present.then(|| self.take())
    }

    /// Records `layers` on `h: [B, ..]`.
    fn layers(&mut self, layers: &[Layer], mut h: Var) -> autodiff::Result<Var> {
        for layer in layers {
            h = self.layer(layer, h)?;
        }
        Ok(h)
    }

    fn layer(&mut self, layer: &Layer, h: Var) -> autodiff::Result<Var> {
        match layer {
            Layer::Linear { bias, .. } => {
                let w = self.take();
                let b = self.take_if(*bias);
                self.tape.try_linear(h, w, b)
            }
            Layer::Activation { function } => Ok(activation(self.tape, *function, h)),
            Layer::LayerNorm { eps, .. } => {
                let (w, b) = (self.take(), self.take());
                layer_norm(self.tape, h, w, b, T::from_f64(*eps))
            }
            Layer::Residual { block } => {
                let inner = self.layers(block, h)?;
                self.tape.try_add(h, inner)
            }
            Layer::Conv2d { bias, .. } => {
                let (_, window, _) = window_of(layer);
                let options = Conv2dOptions {
                    stride: window.stride,
                    padding: window.padding,
                    dilation: window.dilation,
                };
                let w = self.take();
                let b = self.take_if(*bias);
                self.tape.try_conv2d(h, w, b, options)
            }
            Layer::MaxPool2d { .. } => {
                let (_, window, _) = window_of(layer);
                self.tape.try_max_pool2d(h, window.kernel, window.stride)
            }
            Layer::AvgPool2d { .. } => {
                let (_, window, _) = window_of(layer);
                let tape = &mut *self.tape;
                tape.try_avg_pool2d(h, window.kernel, window.stride, window.padding)
            }
            Layer::Flatten => self.tape.try_flatten(h),
            Layer::Embedding { .. } => {
                let table = self.take();
                self.tape.try_embedding(table, h)
            }
            Layer::PositionalEmbedding { .. } => {
                // [B, T, d] + rows 0..T of the table [context, d], broadcast over the batch.
                let table = self.take();
                let t = self.tape.shape(h)[1];
                let rows = self.tape.try_slice_axis(table, 0, 0..t)?;
                self.tape.try_add(h, rows)
            }
            Layer::TiedReadout { embedding } => {
                let table = self.param_named(&format!("{embedding}.weight"))?;
                self.tape.try_linear(h, table, None)
            }
            Layer::Attention {
                num_heads,
                causal,
                bias,
                ..
            } => {
                let project = |f: &mut Self, x: Var| {
                    let w = f.take();
                    let b = f.take_if(*bias);
                    f.tape.try_linear(x, w, b)
                };
                let q = project(self, h)?;
                let k = project(self, h)?;
                let v = project(self, h)?;
                let mixed = self.tape.try_attention(q, k, v, *num_heads, *causal)?;
                project(self, mixed)
            }
            Layer::MultiheadAttention {
                embed_dim: d,
                num_heads,
                causal,
                bias,
                ..
            } => {
                // One projection [B, T, 3d], cut into q, k, v along its last axis.
                let (w_in, b_in) = (self.take(), self.take_if(*bias));
                let (w_out, b_out) = (self.take(), self.take_if(*bias));
                let qkv = self.tape.try_linear(h, w_in, b_in)?;
                let [q, k, v] =
                    [0, 1, 2].map(|i| self.tape.try_slice_axis(qkv, 2, i * d..(i + 1) * d));
                let mixed = self.tape.try_attention(q?, k?, v?, *num_heads, *causal)?;
                self.tape.try_linear(mixed, w_out, b_out)
            }
        }
    }

    /// The parameter of a given name (a tied read-out's table, read a second time).
    fn param_named(&self, name: &str) -> autodiff::Result<Var> {
        match self.names.iter().position(|n| n == name) {
            Some(i) => Ok(self.params[i]),
            None => Err(autodiff::AutodiffError::Invalid {
                op: "Sequential::forward",
                msg: format!("no parameter named '{name}'"),
            }),
        }
    }
}

fn activation<T: Float>(tape: &mut Tape<T>, function: Activation, h: Var) -> Var {
    match function {
        Activation::Relu => tape.relu(h),
        Activation::Gelu => tape.gelu(h),
        Activation::Elu => tape.elu(h, T::one()),
        Activation::Tanh => tape.tanh(h),
        Activation::Sigmoid => tape.sigmoid(h),
        Activation::Identity => h,
    }
}

/// Layer norm over the last axis of `x: [B, d]`, composed from primitives.
fn layer_norm<T: Float>(
    tape: &mut Tape<T>,
    x: Var,
    w: Var,
    b: Var,
    eps: T,
) -> autodiff::Result<Var> {
    let shape = tape.shape(x).to_vec();
    let last = shape.len() - 1;
    let mut kept = shape.clone();
    kept[last] = 1;
    let mean = tape.try_mean_axis(x, last)?;
    let mean = tape.try_reshape(mean, &kept)?;
    let centred = tape.try_sub(x, mean)?;
    let sq = tape.square(centred);
    let var = tape.try_mean_axis(sq, last)?;
    let var = tape.try_reshape(var, &kept)?;
    let var = tape.add_scalar(var, eps);
    let std = tape.sqrt(var);
    let normed = tape.try_div(centred, std)?;
    let scaled = tape.try_mul(normed, w)?;
    tape.try_add(scaled, b)
}

impl<T: Float> Model<T> for Sequential<T> {
    fn param_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn params(&self) -> Vec<&Tensor<T>> {
        self.params.iter().collect()
    }

    fn input_dim(&self) -> usize {
        self.arch.sample_shape().iter().product()
    }

    fn output_dim(&self) -> usize {
        self.output_shape.iter().product()
    }

    fn input_shape(&self) -> Vec<usize> {
        self.arch.sample_shape()
    }

    fn output_shape(&self) -> Vec<usize> {
        self.output_shape.clone()
    }

    fn output_kind(&self) -> OutputKind {
        self.arch.output
    }

    /// Linear layers each followed by at most one activation, on rows, form an [`MlpView`];
    /// any other layer, or an activation with no linear layer before it, do not.
    fn as_mlp(&self) -> Option<MlpView<'_, T>> {
        if self.arch.sample_shape().len() != 1 {
            return None;
        }
        let mut layers: Vec<MlpLayer> = Vec::new();
        let mut next = 0;
        for layer in &self.arch.layers {
            match layer {
                Layer::Linear { bias, .. } => {
                    layers.push(MlpLayer {
                        weight: next,
                        bias: bias.then_some(next + 1),
                        activation: Activation::Identity,
                    });
                    next += 1 + usize::from(*bias);
                }
                Layer::Activation {
                    function: Activation::Identity,
                } => {}
                Layer::Activation { function } => {
                    let last = layers.last_mut()?;
                    if last.activation != Activation::Identity {
                        return None;
                    }
                    last.activation = *function;
                }
                _ => return None,
            }
        }
        Some(MlpView {
            params: self.params.iter().collect(),
            layers,
        })
    }

    /// A convolution, at most one activation, at most one max pool, a flatten, then linear
    /// layers each followed by at most one activation, form a [`ConvView`].
    fn as_conv(&self) -> Option<ConvView<'_, T>> {
        let &[c, h, w] = &self.arch.sample_shape()[..] else {
            return None;
        };
        let mut layers = self.arch.layers.iter();
        let Some(conv @ Layer::Conv2d { bias, .. }) = layers.next() else {
            return None;
        };
        let (_, window, _) = window_of(conv);
        let mut activation = Activation::Identity;
        let mut pool = None;
        let mut next = layers.next();
        if let Some(Layer::Activation { function }) = next {
            activation = *function;
            next = layers.next();
        }
        if let Some(layer @ Layer::MaxPool2d { .. }) = next {
            pool = Some(window_of(layer).1);
            next = layers.next();
        }
        if next != Some(&Layer::Flatten) {
            return None;
        }
        let first = 1 + usize::from(*bias);
        let mut tail: Vec<MlpLayer> = Vec::new();
        let mut at = first;
        for layer in layers {
            match layer {
                Layer::Linear { bias, .. } => {
                    tail.push(MlpLayer {
                        weight: at,
                        bias: bias.then_some(at + 1),
                        activation: Activation::Identity,
                    });
                    at += 1 + usize::from(*bias);
                }
                Layer::Activation {
                    function: Activation::Identity,
                } => {}
                Layer::Activation { function } => {
                    let last = tail.last_mut()?;
                    if last.activation != Activation::Identity {
                        return None;
                    }
                    last.activation = *function;
                }
                _ => return None,
            }
        }
        Some(ConvView {
            params: self.params.iter().collect(),
            image: [c, h, w],
            weight: 0,
            bias: bias.then_some(1),
            window,
            activation,
            pool,
            tail,
        })
    }

    /// A token embedding, at most one positional embedding, residual blocks each holding one
    /// attention layer without bias, then a linear layer without bias form an
    /// [`AttentionView`].
    fn as_attention(&self) -> Option<AttentionView<'_, T>> {
        if self.arch.sample_shape().len() != 1 {
            return None;
        }
        let mut layers = self.arch.layers.iter().peekable();
        let Some(Layer::Embedding { .. }) = layers.next() else {
            return None;
        };
        let mut at = 1;
        let mut positions = None;
        if let Some(Layer::PositionalEmbedding { .. }) = layers.peek() {
            positions = Some(at);
            at += 1;
            layers.next();
        }
        let mut blocks = Vec::new();
        let mut unembed = None;
        for layer in layers {
            match (layer, unembed) {
                (Layer::Residual { block }, None) => match &block[..] {
                    [Layer::Attention {
                        num_heads,
                        causal,
                        bias: false,
                        ..
                    }] => {
                        blocks.push(AttentionLayer {
                            projections: [at, at + 1, at + 2, at + 3],
                            num_heads: *num_heads,
                            causal: *causal,
                        });
                        at += 4;
                    }
                    _ => return None,
                },
                (Layer::Linear { bias: false, .. }, None) => {
                    unembed = Some(at);
                    at += 1;
                }
                _ => return None,
            }
        }
        Some(AttentionView {
            params: self.params.iter().collect(),
            tokens: 0,
            positions,
            layers: blocks,
            unembed: unembed?,
        })
    }

    fn forward(&self, tape: &mut Tape<T>, params: &[Var], x: Var) -> autodiff::Result<Var> {
        if params.len() != self.params.len() {
            return Err(autodiff::AutodiffError::Invalid {
                op: "Sequential::forward",
                msg: format!(
                    "{} parameters given, the model has {}",
                    params.len(),
                    self.params.len()
                ),
            });
        }
        let mut forward = Forward {
            tape,
            params,
            names: &self.names,
            next: 0,
        };
        forward.layers(&self.arch.layers, x)
    }
}
