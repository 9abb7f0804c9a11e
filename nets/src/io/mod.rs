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
//! # Inputs
//!
//! [`load_inputs`] reads `x: [N, d]` from a `.npy` file (`'<f4'`, `'<f8'` or `'<f2'`, C order,
//! 2-D or 1-D) or from a safetensors file with one tensor (or a tensor named `inputs`);
//! [`check_inputs`] checks the width against the model.

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
pub use self::npy::{npy_from_bytes, read_npy, write_npy};
pub use self::safetensors::{
    read_safetensors, safetensors_from_bytes, safetensors_to_bytes, write_safetensors, TensorFile,
};
