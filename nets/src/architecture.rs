//! Feed-forward architectures described as data: the toy models are built from these, and a
//! user's model is read from an architecture file into the same form ([`crate::io`]); a
//! [`crate::Sequential`] runs one.
//!
//! Parameter names follow PyTorch `state_dict` conventions: a layer named `0` owns `0.weight`
//! and `0.bias`; a layer inside a residual block carries its full dotted name
//! (`blocks.1.fc`).

use crate::{Activation, OutputKind};
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
