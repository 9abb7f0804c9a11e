//! Feed-forward architectures described as data: the toy models are built from these, and a
//! user's model is read from an architecture file into the same form.
//!
//! Parameter names follow PyTorch `state_dict` conventions: a layer named `0` owns `0.weight`
//! and `0.bias`; a layer inside a residual block carries its full dotted name
//! (`blocks.1.fc`).

use autodiff::{Tape, Var};
use nets::{Activation, MlpLayer, MlpView, Model, OutputKind};
use serde::{Deserialize, Serialize};
use tensor::{Float, Tensor};

/// One layer of an architecture.
///
/// In a file, unknown keys are errors, so that a misspelt key is caught rather than ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// `y = x W^T + b` with `W: [out_features, in_features]` (`{name}.weight`) and, if `bias`,
    /// `b: [out_features]` (`{name}.bias`).
    Linear {
        name: String,
        in_features: usize,
        out_features: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// An elementwise activation.
    Activation { function: Activation },
    /// `y = (x - mean) / sqrt(var + eps) * weight + bias` over the last axis (biased variance,
    /// as PyTorch), with `{name}.weight` and `{name}.bias` of shape `[dim]`.
    LayerNorm {
        name: String,
        dim: usize,
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// `y = x + block(x)`; the block must keep the width.
    Residual { block: Vec<Layer> },
}

fn yes() -> bool {
    true
}

fn default_eps() -> f64 {
    1e-5
}

/// A named set of parameter tensors to decompose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum TensorSet {
    /// Every parameter tensor, biases included (the paper's choice).
    All,
    /// Every weight matrix; biases and other vectors stay frozen.
    Weights,
    /// Every weight matrix but the read-out's (the last linear layer's), biases frozen; all
    /// weight matrices if the read-out is the only one. The default for users' models: see
    /// notes/suite.md for why.
    WeightsBeforeReadout,
}

impl TensorSet {
    pub fn name(self) -> &'static str {
        match self {
            TensorSet::All => "all",
            TensorSet::Weights => "weights",
            TensorSet::WeightsBeforeReadout => "weights-before-readout",
        }
    }

    /// The set a `--decompose` value names, if it is one word of a set.
    pub fn parse(s: &str) -> Option<Self> {
        [
            TensorSet::All,
            TensorSet::Weights,
            TensorSet::WeightsBeforeReadout,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

/// A whole architecture: input width, layers, output kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub input_dim: usize,
    pub layers: Vec<Layer>,
    pub output: OutputKind,
}

/// A named parameter slot of an architecture: name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSlot {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Architecture {
    /// The weight of the first layer when it is a linear layer reading the input: its
    /// columns are the inputs' embeddings (`[out, input_dim]`).
    pub fn input_weight(&self) -> Option<String> {
        match self.layers.first()? {
            Layer::Linear { name, .. } => Some(format!("{name}.weight")),
            _ => None,
        }
    }

    /// The parameters of the read-out: the last linear layer at the top level (its weight and
    /// bias), through which every output is written. Empty if there is none.
    pub fn readout(&self) -> Vec<String> {
        let last = self.layers.iter().rev().find_map(|l| match l {
            Layer::Linear { name, bias, .. } => Some((name, *bias)),
            _ => None,
        });
        match last {
            Some((name, bias)) => {
                let mut names = vec![format!("{name}.weight")];
                if bias {
                    names.push(format!("{name}.bias"));
                }
                names
            }
            None => Vec::new(),
        }
    }

    /// The names of the parameters in `set`, in forward order.
    pub fn tensors(&self, set: TensorSet) -> Vec<String> {
        let Ok((slots, _)) = self.slots() else {
            return Vec::new();
        };
        let matrices = || slots.iter().filter(|s| s.shape.len() >= 2);
        let names = |it: &mut dyn Iterator<Item = &ParamSlot>| it.map(|s| s.name.clone()).collect();
        match set {
            TensorSet::All => names(&mut slots.iter()),
            TensorSet::Weights => names(&mut matrices()),
            TensorSet::WeightsBeforeReadout => {
                let readout = self.readout();
                let inner: Vec<String> =
                    names(&mut matrices().filter(|s| !readout.contains(&s.name)));
                if inner.is_empty() {
                    names(&mut matrices())
                } else {
                    inner
                }
            }
        }
    }

    /// The parameter slots in forward order, and the output width, or a description of the
    /// first width that does not fit.
    pub fn slots(&self) -> Result<(Vec<ParamSlot>, usize), String> {
        let mut slots = Vec::new();
        let width = collect_slots(&self.layers, self.input_dim, &mut slots)?;
        Ok((slots, width))
    }
}

fn collect_slots(
    layers: &[Layer],
    mut width: usize,
    slots: &mut Vec<ParamSlot>,
) -> Result<usize, String> {
    for layer in layers {
        match layer {
            Layer::Linear {
                name,
                in_features,
                out_features,
                bias,
            } => {
                if *in_features != width {
                    return Err(format!(
                        "linear layer '{name}' takes {in_features} inputs but receives {width}"
                    ));
                }
                slots.push(ParamSlot {
                    name: format!("{name}.weight"),
                    shape: vec![*out_features, *in_features],
                });
                if *bias {
                    slots.push(ParamSlot {
                        name: format!("{name}.bias"),
                        shape: vec![*out_features],
                    });
                }
                width = *out_features;
            }
            Layer::Activation { .. } => {}
            Layer::LayerNorm { name, dim, .. } => {
                if *dim != width {
                    return Err(format!(
                        "layer norm '{name}' has dim {dim} but receives {width}"
                    ));
                }
                for part in ["weight", "bias"] {
                    slots.push(ParamSlot {
                        name: format!("{name}.{part}"),
                        shape: vec![*dim],
                    });
                }
            }
            Layer::Residual { block } => {
                let out = collect_slots(block, width, slots)?;
                if out != width {
                    return Err(format!(
                        "a residual block maps width {width} to {out}; it must keep the width"
                    ));
                }
            }
        }
    }
    Ok(width)
}

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
