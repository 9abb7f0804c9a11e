//! Loading and saving users' models and data: architecture files, safetensors weights, `.npy`
//! and safetensors inputs, and atomic writes for every file the project produces.
//!
//! Everything here validates at the boundary: any bytes give `Ok` or an [`IoError`] naming the
//! file (and the tensor, the expected and the found shape or dtype), never a panic, and no
//! allocation is sized from a header before the header is checked against the file's length.
//!
//! # A model: an architecture file and a weights file
//!
//! The architecture file describes an [`Architecture`](crate::Architecture) in TOML
//! (`.toml`) or JSON (`.json`); the weights are a safetensors file whose tensor names are the
//! PyTorch `state_dict` names of the layers, as `safetensors.torch.save_file(model.state_dict())`
//! writes them. A layer named `0` owns `0.weight` and `0.bias`; a layer inside submodules
//! carries its full dotted name. Every layer type:
//!
//! ```toml
//! input_dim = 8            # width of one input row
//! output = "regression"    # or "logits" (compared with KL divergence instead of MSE)
//!
//! # nn.Linear(8, 16): 0.weight [16, 8], 0.bias [16]
//! [[layers]]
//! type = "linear"
//! name = "0"
//! in_features = 8
//! out_features = 16
//!
//! # Elementwise: relu, gelu, elu, tanh, sigmoid or identity; no parameters.
//! [[layers]]
//! type = "activation"
//! function = "gelu"
//!
//! # nn.LayerNorm(16): norm.weight [16], norm.bias [16]; eps defaults to 1e-5.
//! [[layers]]
//! type = "layer_norm"
//! name = "norm"
//! dim = 16
//! eps = 1e-5
//!
//! # y = x + block(x); the block keeps the width. Names are the full dotted paths.
//! [[layers]]
//! type = "residual"
//!
//! [[layers.block]]
//! type = "linear"
//! name = "blocks.1.fc"      # blocks.1.fc.weight [16, 16], blocks.1.fc.bias [16]
//! in_features = 16
//! out_features = 16
//!
//! [[layers.block]]
//! type = "activation"
//! function = "relu"
//!
//! # nn.Linear(16, 4, bias=False): head.weight [4, 16] only.
//! [[layers]]
//! type = "linear"
//! name = "head"
//! in_features = 16
//! out_features = 4
//! bias = false
//! ```
//!
//! The same in JSON is an object with the same keys: `{"input_dim": 8, "output":
//! "regression", "layers": [{"type": "linear", "name": "0", ...}, ...]}`. Unknown keys are
//! errors, so a misspelt `out_feature` is caught rather than ignored. `examples/models/mlp.toml`
//! is a complete file.
//!
//! [`load_model`] reports every missing, unexpected, misshapen or wrongly typed tensor at once.
//!
//! # Images and sequences
//!
//! `input_shape` (one sample's shape) replaces `input_dim` for models that do not read rows.
//! A CNN on `[N, 1, 8, 8]` images; window sizes are one number or `[h, w]`:
//!
//! ```toml
//! input_shape = [1, 8, 8]
//! output = "logits"
//!
//! # nn.Conv2d(1, 8, 3, padding=1): 0.weight [8, 1, 3, 3], 0.bias [8]; stride and dilation
//! # default to 1, padding to 0, bias to true.
//! [[layers]]
//! type = "conv2d"
//! name = "0"
//! in_channels = 1
//! out_channels = 8
//! kernel_size = 3
//! padding = [1, 1]
//!
//! # nn.MaxPool2d(2) (the stride defaults to the kernel, no padding) and nn.AvgPool2d.
//! [[layers]]
//! type = "max_pool2d"
//! kernel_size = 2
//!
//! [[layers]]
//! type = "avg_pool2d"
//! kernel_size = 3
//! stride = 1
//! padding = 1
//!
//! # nn.Flatten(): [8, 4, 4] -> [128].
//! [[layers]]
//! type = "flatten"
//!
//! [[layers]]
//! type = "linear"
//! name = "fc"
//! in_features = 128
//! out_features = 10
//! ```
//!
//! A pre-norm transformer on `[N, 16]` token ids (int32 or int64 `.npy`), logits `[16, 50]` per
//! sequence, with both attention forms and a tied read-out:
//!
//! ```toml
//! input_shape = [16]
//! output = "logits"
//!
//! # nn.Embedding(50, 32): wte.weight [50, 32]; must be the first layer.
//! [[layers]]
//! type = "embedding"
//! name = "wte"
//! num_embeddings = 50
//! embedding_dim = 32
//!
//! # A learned positional embedding: wpe.weight [64, 32], rows 0..16 added.
//! [[layers]]
//! type = "positional_embedding"
//! name = "wpe"
//! num_embeddings = 64
//! embedding_dim = 32
//!
//! [[layers]]
//! type = "residual"
//!
//! [[layers.block]]
//! type = "layer_norm"
//! name = "h.0.ln_1"
//! dim = 32
//!
//! # Separate projections: h.0.attn.{q_proj,k_proj,v_proj,out_proj}.{weight [32, 32], bias [32]}.
//! [[layers.block]]
//! type = "attention"
//! name = "h.0.attn"
//! embed_dim = 32
//! num_heads = 4
//! causal = true
//! projections = ["q_proj", "k_proj", "v_proj", "out_proj"]
//!
//! [[layers]]
//! type = "residual"
//!
//! [[layers.block]]
//! type = "layer_norm"
//! name = "h.1.ln_1"
//! dim = 32
//!
//! # nn.MultiheadAttention(32, 4, batch_first=True): h.1.attn.in_proj_weight [96, 32],
//! # in_proj_bias [96], out_proj.weight [32, 32], out_proj.bias [32].
//! [[layers.block]]
//! type = "multihead_attention"
//! name = "h.1.attn"
//! embed_dim = 32
//! num_heads = 4
//! causal = true
//!
//! # Logits through the token table (no tensor of its own).
//! [[layers]]
//! type = "tied_readout"
//! embedding = "wte"
//! ```
//!
//! # Inputs
//!
//! [`load_inputs`] reads `x: [N, ..]` from a `.npy` file (`'<f4'`, `'<f8'`, `'<f2'`, or the
//! integers `'<i4'` and `'<i8'`, C order, any rank; 1-D is read as `[N, 1]`) or from a
//! safetensors file with one tensor (or a tensor named `inputs`); [`check_model_inputs`]
//! checks the shape against an architecture, and token ids against its vocabulary
//! ([`check_inputs`] checks rows of a given width).

mod atomic;
mod element;
mod error;
mod fs;
mod half;
mod inputs;
mod model;
mod npy;
mod safetensors;

pub use self::atomic::{fnv1a, write_atomic};
pub use self::element::StoredFloat;
pub use self::error::{IoError, Mismatch};
pub use self::fs::read_bytes;
pub use self::half::{bf16_to_f32, f16_to_f32};
pub use self::inputs::{check_inputs, check_model_inputs, load_inputs};
pub use self::model::{load_model, read_architecture, save_model, write_architecture};
pub use self::npy::{npy_from_bytes, read_npy, write_npy, write_npy_i64};
pub use self::safetensors::{
    read_safetensors, safetensors_from_bytes, safetensors_to_bytes, write_safetensors, TensorFile,
};
