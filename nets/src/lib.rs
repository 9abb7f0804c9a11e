//! `nets`: networks as data. How a model is described, run and stored, independently of what
//! is done with it: the [`Model`] interface (named parameter tensors and a forward pass on the
//! tape), which the decomposition sees a model through.

pub mod activation;
pub mod model;

pub use activation::Activation;
pub use model::{MlpLayer, MlpView, Model, OutputKind};
