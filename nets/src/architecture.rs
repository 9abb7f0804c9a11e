//! Architectures described as data: a chain of layers (dense, convolutional, embeddings,
//! attention, residual blocks) from one input sample's shape to one output sample's. The toy
//! models are built from these, and a user's model is read from an architecture file into
//! the same form ([`crate::io`]); a [`crate::Sequential`] runs one.
//!
//! Parameter names follow PyTorch `state_dict` conventions: a layer named `0` owns `0.weight`
//! and `0.bias`; a layer inside a residual block carries its full dotted name
//! (`blocks.1.fc`).

use crate::{Activation, OutputKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tensor::Window2d;

/// One layer of an architecture.
///
/// Shapes are per sample (the batch axis is not written): a layer receives `[..]` and passes
/// on its output shape; [`Architecture::slots`] checks that every layer fits what it receives.
/// In a file, unknown keys are errors, so that a misspelt key is caught rather than ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// `y = x W^T + b` over the last axis, with `W: [out_features, in_features]`
    /// (`{name}.weight`) and, if `bias`, `b: [out_features]` (`{name}.bias`): `[.., in]` to
    /// `[.., out]` (so a linear layer after an embedding acts on every position).
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
    /// `y = x + block(x)`; the block must keep the shape.
    Residual { block: Vec<Layer> },
    /// `nn.Conv2d`: `[in_channels, H, W]` to `[out_channels, OH, OW]`, cross-correlation with
    /// zero padding, `{name}.weight: [out_channels, in_channels, kh, kw]` and, if `bias`,
    /// `{name}.bias: [out_channels]`. Sizes are one number for both axes or `[h, w]`.
    Conv2d {
        name: String,
        in_channels: usize,
        out_channels: usize,
        kernel_size: Pair,
        #[serde(default = "Pair::one")]
        stride: Pair,
        #[serde(default)]
        padding: Pair,
        #[serde(default = "Pair::one")]
        dilation: Pair,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.MaxPool2d` without padding: `[C, H, W]` to `[C, OH, OW]`; the stride defaults to
    /// the kernel size, as in PyTorch.
    MaxPool2d {
        kernel_size: Pair,
        #[serde(default)]
        stride: Option<Pair>,
    },
    /// `nn.AvgPool2d` (zeros in the padding count in the average, PyTorch's default): `[C, H,
    /// W]` to `[C, OH, OW]`; the stride defaults to the kernel size.
    AvgPool2d {
        kernel_size: Pair,
        #[serde(default)]
        stride: Option<Pair>,
        #[serde(default)]
        padding: Pair,
    },
    /// `nn.Flatten()`: one sample's values in row-major order, `[..]` to `[numel]`.
    Flatten,
    /// `nn.Embedding`: token ids `[T]` (the model's input; it must be the first layer) to rows
    /// of `{name}.weight: [num_embeddings, embedding_dim]`, `[T, embedding_dim]`.
    Embedding {
        name: String,
        num_embeddings: usize,
        embedding_dim: usize,
    },
    /// A learned positional embedding, an `nn.Embedding(context, d)` looked up at positions
    /// `0..T` and added: `y[t] = x[t] + {name}.weight[t]` for `x: [T, d]`, with
    /// `{name}.weight: [num_embeddings, embedding_dim]` and `T <= num_embeddings`.
    PositionalEmbedding {
        name: String,
        num_embeddings: usize,
        embedding_dim: usize,
    },
    /// A read-out tied to an embedding's table: `y = x E^T` with `E = {embedding}.weight:
    /// [vocab, d]`, `[.., d]` to `[.., vocab]`. It owns no tensor: the table is one parameter
    /// used twice, and its gradient gets both uses.
    TiedReadout { embedding: String },
    /// Multi-head self-attention with separate projections, as modules with `nn.Linear`
    /// children save it: `q = x Wq^T (+ bq)`, likewise `k` and `v`, the heads' attention
    /// (`softmax(q_i k_i^T / sqrt(dh))`, causally masked if `causal`) and `y = a Wo^T (+ bo)`;
    /// `[T, d]` to `[T, d]`. Tensors `{name}.{p}.weight: [d, d]` (and `{name}.{p}.bias: [d]`
    /// if `bias`) for `p` in `projections` (query, key, value, output; default
    /// `["q", "k", "v", "o"]`).
    Attention {
        name: String,
        embed_dim: usize,
        num_heads: usize,
        #[serde(default)]
        causal: bool,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default = "default_projections")]
        projections: [String; 4],
    },
    /// `nn.MultiheadAttention(d, h, batch_first=True)` used as self-attention: the same
    /// computation with the fused input projection `{name}.in_proj_weight: [3d, d]` (rows: query,
    /// key, value) and `{name}.in_proj_bias: [3d]`, and `{name}.out_proj.weight: [d, d]`,
    /// `{name}.out_proj.bias: [d]` (no biases if `bias = false`). `causal` stands for the
    /// causal `attn_mask` the model passes at call time.
    MultiheadAttention {
        name: String,
        embed_dim: usize,
        num_heads: usize,
        #[serde(default)]
        causal: bool,
        #[serde(default = "yes")]
        bias: bool,
    },
}

/// A size of a 2-D window, `(h, w)`; in a file one number for both axes or `[h, w]`, as
/// PyTorch accepts either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "PairForm", into = "[usize; 2]")]
pub struct Pair(pub usize, pub usize);

impl Pair {
    fn one() -> Self {
        Pair(1, 1)
    }

    pub fn tuple(self) -> (usize, usize) {
        (self.0, self.1)
    }
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a size: a whole number, or a pair [h, w]")]
enum PairForm {
    One(usize),
    Two([usize; 2]),
}

impl From<PairForm> for Pair {
    fn from(form: PairForm) -> Self {
        match form {
            PairForm::One(n) => Pair(n, n),
            PairForm::Two([h, w]) => Pair(h, w),
        }
    }
}

impl From<Pair> for [usize; 2] {
    fn from(p: Pair) -> Self {
        [p.0, p.1]
    }
}

fn default_projections() -> [String; 4] {
    ["q", "k", "v", "o"].map(String::from)
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
    /// Every weight of two or more modes but the read-out's (the last linear layer's or the
    /// tied read-out's table) and the embedding tables (token and positional), biases
    /// frozen; all such weights if that leaves none. The default for users' models: a
    /// read-out acts on every sample, and a table's per-sample gradient touches only the rows
    /// of the sample's own tokens (it is specific to tokens, not to computations), so either
    /// would dominate the subnetworks (see notes/suite.md). What remains is the computation
    /// in between: a CNN's kernels and hidden linear layers, a transformer's attention and
    /// MLP weights.
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

/// A whole architecture: the shape of one input sample, layers, output kind.
///
/// Invariant (checked by [`Architecture::slots`] and when a file is read): exactly one of
/// `input_dim` (a row of that width, `[input_dim]`) and `input_shape` (any shape, such as
/// `[C, H, W]` images or `[T]` token ids) is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Width of one input row (0 when `input_shape` is given instead).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_dim: usize,
    /// The shape of one input sample (empty when `input_dim` is given instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_shape: Vec<usize>,
    pub layers: Vec<Layer>,
    pub output: OutputKind,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A named parameter slot of an architecture: name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSlot {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Architecture {
    /// A feed-forward architecture on rows of `input_dim` values.
    pub fn rows(input_dim: usize, layers: Vec<Layer>, output: OutputKind) -> Self {
        Self {
            input_dim,
            input_shape: Vec::new(),
            layers,
            output,
        }
    }

    /// The shape of one input sample: `input_shape`, or `[input_dim]`.
    pub fn sample_shape(&self) -> Vec<usize> {
        match self.input_shape.is_empty() {
            true => vec![self.input_dim],
            false => self.input_shape.clone(),
        }
    }

    /// The vocabulary size when the inputs are token ids (the first layer is an embedding).
    pub fn token_vocabulary(&self) -> Option<usize> {
        match self.layers.first()? {
            Layer::Embedding { num_embeddings, .. } => Some(*num_embeddings),
            _ => None,
        }
    }

    /// The weight of the first layer when it is a linear layer reading the input: its
    /// columns are the inputs' embeddings (`[out, input_dim]`).
    pub fn input_weight(&self) -> Option<String> {
        match self.layers.first()? {
            Layer::Linear { name, .. } => Some(format!("{name}.weight")),
            _ => None,
        }
    }

    /// The parameters of the read-out, through which every output is written: the last
    /// linear layer or tied read-out at the top level (the weight and bias of the one, the
    /// embedding table of the other). Empty if there is none.
    pub fn readout(&self) -> Vec<String> {
        let last = self.layers.iter().rev().find_map(|l| match l {
            Layer::Linear { name, bias, .. } => Some((format!("{name}.weight"), *bias)),
            Layer::TiedReadout { embedding } => Some((format!("{embedding}.weight"), false)),
            _ => None,
        });
        match last {
            Some((weight, bias)) => {
                let mut names = vec![weight.clone()];
                if bias {
                    let layer = weight.trim_end_matches(".weight");
                    names.push(format!("{layer}.bias"));
                }
                names
            }
            None => Vec::new(),
        }
    }

    /// The embedding tables (token and positional), `{name}.weight`.
    pub fn embedding_tables(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Embedding { name, .. } | Layer::PositionalEmbedding { name, .. } => {
                    Some(format!("{name}.weight"))
                }
                _ => None,
            })
            .collect()
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
                let mut left_out = self.readout();
                left_out.extend(self.embedding_tables());
                let inner: Vec<String> =
                    names(&mut matrices().filter(|s| !left_out.contains(&s.name)));
                if inner.is_empty() {
                    names(&mut matrices())
                } else {
                    inner
                }
            }
        }
    }

    /// Exactly one of `input_dim` and `input_shape` is given, with no zero axis.
    pub fn check_input(&self) -> Result<(), String> {
        match (self.input_dim > 0, !self.input_shape.is_empty()) {
            (false, false) => Err("input_dim is 0 and no input_shape is given: give one of \
                                   them (input_dim = 8 for rows of 8 values, input_shape = \
                                   [1, 8, 8] for images or [32] for sequences of 32 token ids)"
                .into()),
            (true, true) => Err("both input_dim and input_shape are given; give one".into()),
            _ if self.input_shape.contains(&0) => Err(format!(
                "input_shape {:?} has a zero axis",
                self.input_shape
            )),
            _ => Ok(()),
        }
    }

    /// The parameter slots in forward order and the shape of one output sample, or a
    /// description of the first layer that does not fit what it receives (naming it).
    pub fn slots(&self) -> Result<(Vec<ParamSlot>, Vec<usize>), String> {
        self.check_input()?;
        let mut walk = Walk::default();
        let shape = walk.layers(&self.layers, self.sample_shape(), true)?;
        Ok((walk.slots, shape))
    }
}

/// The state of a walk through the layers: the slots so far, and the embedding tables a tied
/// read-out may use (`[vocab, d]` by layer name).
#[derive(Default)]
struct Walk {
    slots: Vec<ParamSlot>,
    tables: BTreeMap<String, [usize; 2]>,
}

impl Walk {
    fn slot(&mut self, name: String, shape: Vec<usize>) {
        self.slots.push(ParamSlot { name, shape });
    }

    /// Walks `layers` from the per-sample shape `shape`; `at_input` when the first of them
    /// reads the model's input. Returns the output shape.
    fn layers(
        &mut self,
        layers: &[Layer],
        mut shape: Vec<usize>,
        mut at_input: bool,
    ) -> Result<Vec<usize>, String> {
        for layer in layers {
            shape = self.layer(layer, shape, at_input)?;
            at_input = false;
        }
        Ok(shape)
    }

    fn layer(
        &mut self,
        layer: &Layer,
        shape: Vec<usize>,
        at_input: bool,
    ) -> Result<Vec<usize>, String> {
        match layer {
            Layer::Linear {
                name,
                in_features,
                out_features,
                bias,
            } => {
                let last = last_axis(&shape, || format!("linear layer '{name}'"))?;
                if last != *in_features {
                    return Err(format!(
                        "linear layer '{name}' takes {in_features} inputs but receives {} \
                         (shape {shape:?})",
                        last
                    ));
                }
                self.slot(format!("{name}.weight"), vec![*out_features, *in_features]);
                if *bias {
                    self.slot(format!("{name}.bias"), vec![*out_features]);
                }
                Ok(with_last(shape, *out_features))
            }
            Layer::Activation { .. } => Ok(shape),
            Layer::Flatten => Ok(vec![shape.iter().product()]),
            Layer::LayerNorm { name, dim, .. } => {
                let last = last_axis(&shape, || format!("layer norm '{name}'"))?;
                if last != *dim {
                    return Err(format!(
                        "layer norm '{name}' has dim {dim} but receives {last} (shape {shape:?})"
                    ));
                }
                for part in ["weight", "bias"] {
                    self.slot(format!("{name}.{part}"), vec![*dim]);
                }
                Ok(shape)
            }
            Layer::Residual { block } => {
                let out = self.layers(block, shape.clone(), false)?;
                if out != shape {
                    return Err(format!(
                        "a residual block maps shape {shape:?} to {out:?}; it must keep the shape"
                    ));
                }
                Ok(shape)
            }
            Layer::Conv2d { .. } | Layer::MaxPool2d { .. } | Layer::AvgPool2d { .. } => {
                self.window_layer(layer, shape)
            }
            Layer::Embedding {
                name,
                num_embeddings,
                embedding_dim,
            } => {
                let [t] = shape[..] else {
                    return Err(format!(
                        "embedding '{name}' reads token ids [T], but receives shape {shape:?}"
                    ));
                };
                if !at_input {
                    return Err(format!(
                        "embedding '{name}' must be the first layer: it reads the model's \
                         token ids"
                    ));
                }
                let table = [*num_embeddings, *embedding_dim];
                self.tables.insert(name.clone(), table);
                self.slot(format!("{name}.weight"), table.to_vec());
                Ok(vec![t, *embedding_dim])
            }
            Layer::PositionalEmbedding {
                name,
                num_embeddings,
                embedding_dim,
            } => {
                let [t, d] = shape[..] else {
                    return Err(format!(
                        "positional embedding '{name}' receives shape {shape:?}; it needs a \
                         sequence [T, {embedding_dim}]"
                    ));
                };
                if d != *embedding_dim || t > *num_embeddings {
                    return Err(format!(
                        "positional embedding '{name}' holds {num_embeddings} positions of \
                         width {embedding_dim}, but receives {t} positions of width {d}"
                    ));
                }
                self.slot(
                    format!("{name}.weight"),
                    vec![*num_embeddings, *embedding_dim],
                );
                Ok(shape)
            }
            Layer::TiedReadout { embedding } => {
                let Some(&[vocab, d]) = self.tables.get(embedding) else {
                    return Err(format!(
                        "tied read-out names the embedding '{embedding}', which is not an \
                         embedding layer before it"
                    ));
                };
                let last = last_axis(&shape, || format!("tied read-out of '{embedding}'"))?;
                if last != d {
                    return Err(format!(
                        "tied read-out of '{embedding}' ([{vocab}, {d}]) receives width {last} \
                         (shape {shape:?}); it needs {d}"
                    ));
                }
                Ok(with_last(shape, vocab))
            }
            Layer::Attention { .. } | Layer::MultiheadAttention { .. } => {
                self.attention_layer(layer, shape)
            }
        }
    }

    /// A convolution or pooling layer: `[C, H, W]` to `[C', OH, OW]`.
    fn window_layer(&mut self, layer: &Layer, shape: Vec<usize>) -> Result<Vec<usize>, String> {
        let (what, window, channels) = window_of(layer);
        let [c, h, w] = shape[..] else {
            return Err(format!(
                "{what} receives shape {shape:?}; it needs images [C, H, W]"
            ));
        };
        if let Some(c_in) = channels {
            if c != c_in {
                return Err(format!(
                    "{what} takes {c_in} input channels but receives {c} (shape {shape:?})"
                ));
            }
        }
        let (oh, ow) = window
            .try_output_size("window", &[1, c, h, w])
            .map_err(|e| match e {
                tensor::TensorError::Invalid { msg, .. } => format!("{what}: {msg}"),
                other => format!("{what}: {other}"),
            })?;
        let out_channels = match layer {
            Layer::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel_size,
                bias,
                ..
            } => {
                let (kh, kw) = kernel_size.tuple();
                self.slot(
                    format!("{name}.weight"),
                    vec![*out_channels, *in_channels, kh, kw],
                );
                if *bias {
                    self.slot(format!("{name}.bias"), vec![*out_channels]);
                }
                *out_channels
            }
            _ => c,
        };
        Ok(vec![out_channels, oh, ow])
    }

    /// Self-attention in either form: `[T, d]` to `[T, d]`.
    fn attention_layer(&mut self, layer: &Layer, shape: Vec<usize>) -> Result<Vec<usize>, String> {
        let (name, d, heads, bias) = match layer {
            Layer::Attention {
                name,
                embed_dim,
                num_heads,
                bias,
                ..
            }
            | Layer::MultiheadAttention {
                name,
                embed_dim,
                num_heads,
                bias,
                ..
            } => (name, *embed_dim, *num_heads, *bias),
            _ => unreachable!("attention_layer is called on attention layers"),
        };
        if heads == 0 || d % heads != 0 {
            return Err(format!(
                "attention '{name}' has embed_dim {d} and num_heads {heads}; embed_dim must be \
                 a multiple of num_heads"
            ));
        }
        if !matches!(shape[..], [_, width] if width == d) {
            return Err(format!(
                "attention '{name}' takes sequences [T, {d}] but receives shape {shape:?}"
            ));
        }
        match layer {
            Layer::Attention { projections, .. } => {
                for p in projections {
                    self.slot(format!("{name}.{p}.weight"), vec![d, d]);
                    if bias {
                        self.slot(format!("{name}.{p}.bias"), vec![d]);
                    }
                }
            }
            _ => {
                self.slot(format!("{name}.in_proj_weight"), vec![3 * d, d]);
                if bias {
                    self.slot(format!("{name}.in_proj_bias"), vec![3 * d]);
                }
                self.slot(format!("{name}.out_proj.weight"), vec![d, d]);
                if bias {
                    self.slot(format!("{name}.out_proj.bias"), vec![d]);
                }
            }
        }
        Ok(shape)
    }
}

/// How a window layer is named in messages, its window, and the input channels it needs.
pub(crate) fn window_of(layer: &Layer) -> (String, Window2d, Option<usize>) {
    match layer {
        Layer::Conv2d {
            name,
            in_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            ..
        } => {
            let window = Window2d {
                kernel: kernel_size.tuple(),
                stride: stride.tuple(),
                padding: padding.tuple(),
                dilation: dilation.tuple(),
            };
            (format!("conv2d layer '{name}'"), window, Some(*in_channels))
        }
        Layer::MaxPool2d {
            kernel_size,
            stride,
        } => {
            let stride = stride.unwrap_or(*kernel_size).tuple();
            let window = Window2d::new(kernel_size.tuple()).with_stride(stride);
            ("max_pool2d layer".into(), window, None)
        }
        Layer::AvgPool2d {
            kernel_size,
            stride,
            padding,
        } => {
            let stride = stride.unwrap_or(*kernel_size).tuple();
            let window = Window2d::new(kernel_size.tuple())
                .with_stride(stride)
                .with_padding(padding.tuple());
            ("avg_pool2d layer".into(), window, None)
        }
        other => unreachable!("window_of is called on window layers, not {other:?}"),
    }
}

/// The last axis of a per-sample shape, or an error naming the layer if there is none.
fn last_axis(shape: &[usize], layer: impl FnOnce() -> String) -> Result<usize, String> {
    shape
        .last()
        .copied()
        .ok_or_else(|| format!("{} receives a scalar per sample", layer()))
}

/// `shape` with its last axis replaced by `n`.
fn with_last(mut shape: Vec<usize>, n: usize) -> Vec<usize> {
    let last = shape.len() - 1;
    shape[last] = n;
    shape
}
