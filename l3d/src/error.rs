//! The errors of the `l3d` crate.

use crate::config::ConfigError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum L3dError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Autodiff(#[from] autodiff::AutodiffError),
    #[error(transparent)]
    Tensor(#[from] tensor::TensorError),
    /// The data does not fit the model (its shape, a non-finite value, too few samples), or
    /// differs from the data a checkpoint was trained on.
    #[error("{0}")]
    Data(String),
    /// A batch that the step cannot take (empty, too small for its references, a mask of
    /// another shape).
    #[error("{0}")]
    Batch(String),
    /// Given per-sample gradients that do not fit the decomposition.
    #[error("{0}")]
    Gradients(String),
    /// A model that cannot be decomposed as it is (a non-finite parameter, an inconsistent
    /// MLP view).
    #[error("{0}")]
    Model(String),
    /// A decomposition that does not fit the model, the step or the request (an unknown
    /// tensor or subnetwork, shapes that differ).
    #[error("{0}")]
    Decomposition(String),
    /// Training produced a NaN or infinite value.
    #[error("{what} became {value} at epoch {epoch}, batch {batch}; lower the learning rate or check the model and data for extreme values")]
    NonFinite {
        what: &'static str,
        value: String,
        epoch: usize,
        batch: usize,
    },
    /// A saved decomposition or checkpoint that is malformed, incomplete, or whose two files
    /// do not belong together.
    #[error("{}: {msg}", path.display())]
    Save { path: PathBuf, msg: String },
    /// Reading or writing a file through `nets::io` (the hardened readers, atomic writes).
    #[error(transparent)]
    File(#[from] nets::IoError),
}

pub type Result<T> = std::result::Result<T, L3dError>;
