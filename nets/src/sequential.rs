//! A feed-forward model that runs an [`Architecture`]: its forward pass recorded on the tape,
//! and its view as a stack of dense layers when it is one.

use crate::architecture::{Architecture, Layer};
use crate::{Activation, MlpLayer, MlpView, Model, OutputKind};
use autodiff::{Tape, Var};
use tensor::{Float, Tensor};

/// A feed-forward model: an architecture and its parameter values `W0`.
///
/// Invariant: `params[i]` has the name and shape of `slots[i]` of the architecture.
#[derive(Debug, Clone)]
pub struct Sequential<T: Float> {
    arch: Architecture,
    names: Vec<String>,
    params: Vec<Tensor<T>>,
    output_dim: usize,
}

impl<T: Float> Sequential<T> {
    /// A model from an architecture and values in slot order; checks every shape.
    pub fn new(arch: Architecture, params: Vec<Tensor<T>>) -> Result<Self, String> {
        let (slots, output_dim) = arch.slots()?;
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
            output_dim,
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
            output_dim: self.output_dim,
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

/// Records `layers` on the tape, reading parameters from `params` starting at `*next`.
fn forward_layers<T: Float>(
    layers: &[Layer],
    tape: &mut Tape<T>,
    params: &[Var],
    next: &mut usize,
    mut h: Var,
) -> autodiff::Result<Var> {
    let take = |next: &mut usize| {
        *next += 1;
        params[*next - 1]
    };
    for layer in layers {
        h = match layer {
            Layer::Linear { bias, .. } => {
                let w = take(next);
                let b = bias.then(|| take(next));
                tape.try_linear(h, w, b)?
            }
            Layer::Activation { function } => match function {
                Activation::Relu => tape.relu(h),
                Activation::Gelu => tape.gelu(h),
                Activation::Elu => tape.elu(h, T::one()),
                Activation::Tanh => tape.tanh(h),
                Activation::Sigmoid => tape.sigmoid(h),
                Activation::Identity => h,
            },
            Layer::LayerNorm { eps, .. } => {
                let (w, b) = (take(next), take(next));
                layer_norm(tape, h, w, b, T::from_f64(*eps))?
            }
            Layer::Residual { block } => {
                let inner = forward_layers(block, tape, params, next, h)?;
                tape.try_add(h, inner)?
            }
        };
    }
    Ok(h)
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
        self.arch.input_dim
    }

    fn output_dim(&self) -> usize {
        self.output_dim
    }

    fn output_kind(&self) -> OutputKind {
        self.arch.output
    }

    /// Linear layers each followed by at most one activation form an [`MlpView`]; a layer
    /// norm, a residual block, or an activation with no linear layer before it do not.
    fn as_mlp(&self) -> Option<MlpView<'_, T>> {
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
                Layer::LayerNorm { .. } | Layer::Residual { .. } => return None,
            }
        }
        Some(MlpView {
            params: self.params.iter().collect(),
            layers,
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
        let mut next = 0;
        forward_layers(&self.arch.layers, tape, params, &mut next, x)
    }
}
