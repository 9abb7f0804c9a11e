//! The errors of the `l3d` crate.

use crate::config::ConfigError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum L3dError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Autodiff(#[from] autodiff::AutodiffError),
    #[error(transparent)]
    Tensor(#[from] tensor::TensorError),
    /// The decomposition, a file or the data does not fit the model.
    #[error("{0}")]
    Mismatch(String),
    /// Training produced a NaN or infinite value.
    #[error("{what} became {value} at epoch {epoch}, batch {batch}; lower the learning rate or check the model and data for extreme values")]
    NonFinite {
        what: &'static str,
        value: String,
        epoch: usize,
        batch: usize,
    },
    /// Reading or writing a file.
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    /// Reading or writing a file through `nets::io` (the hardened readers, atomic writes).
    #[error(transparent)]
    File(#[from] nets::IoError),
}

pub type Result<T> = std::result::Result<T, L3dError>;
