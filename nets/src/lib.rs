//! `nets`: networks as data. How a model is described, run and stored, independently of what
//! is done with it: the [`Model`] interface (named parameter tensors and a forward pass on the
//! tape), which the decomposition sees a model through; feed-forward [`Architecture`]s and the
//! [`Sequential`] model that runs one; and their files ([`io`]): architecture files,
//! safetensors and `.npy` in and out through hardened readers, atomic writes.

pub mod activation;
pub mod architecture;
pub mod io;
pub mod model;
pub mod sequential;

pub use activation::Activation;
pub use architecture::{Architecture, Layer, Pair, ParamSlot, TensorSet};
pub use io::IoError;
pub use model::{AttentionLayer, AttentionView, ConvView, MlpLayer, MlpView, Model, OutputKind};
pub use sequential::Sequential;
