//! A user's inputs `x: [N, ..sample shape]`, one sample per row of the first axis, from `.npy`
//! or `.safetensors`: rows `[N, d]`, images `[N, C, H, W]` as PyTorch lays them out, token ids
//! `[N, T]` (an `.npy` of int32 or int64).

use std::path::Path;

use crate::Architecture;
use tensor::{Float, Tensor};

use super::element::first_non_finite;
use super::fs::read_bytes;
use super::npy::read_npy;
use super::safetensors::Parsed;
use super::IoError;

/// The tensor name chosen in a safetensors inputs file holding several tensors.
const INPUTS_NAME: &str = "inputs";

/// The inputs `x: [N, ..]` in the file at `path`: a `.npy` array (floats, or integers such as
/// token ids), or the one tensor of a `.safetensors` file (or its tensor named `inputs`). A
/// 1-D array of `N` values is read as `[N, 1]`. Refuses an empty array (a zero axis), a
/// scalar, and NaN or infinite values (naming the row and column). See [`check_inputs`] and
/// [`check_model_inputs`] for the shape a model needs.
pub fn load_inputs(path: &Path) -> Result<Tensor<f32>, IoError> {
    let x = match extension(path).as_deref() {
        Some("npy") => read_npy(path)?,
        Some("safetensors") => read_inputs_tensor(path)?,
        _ => {
            return Err(IoError::Extension {
                path: path.to_path_buf(),
                expected: ".npy or .safetensors",
            })
        }
    };
    let x = as_rows(path, x)?;
    if x.shape().contains(&0) {
        return Err(input_shape(
            path,
            &x,
            "[N, ..] with every axis at least 1".into(),
        ));
    }
    check_finite(path, &x)?;
    Ok(x)
}

/// Checks that `x` is `[N, input_dim]` with `N >= 1` and holds no NaN or infinity; `path`
/// names where `x` came from in the error.
pub fn check_inputs<T: Float>(x: &Tensor<T>, input_dim: usize, path: &Path) -> Result<(), IoError> {
    let shape = x.shape();
    if shape.len() != 2 || shape[0] == 0 || shape[1] != input_dim {
        let expected = format!("[N, {input_dim}] with N >= 1 (the model's input width)");
        return Err(input_shape(path, x, expected));
    }
    check_finite(path, x)
}

/// Checks that `x` is `[N, ..sample shape]` for the architecture `arch`, with `N >= 1`, no NaN
/// or infinity, and, when the inputs are token ids (the first layer is an embedding), every
/// value a whole number in `0..vocab`: an id out of range is an error naming the file, the id,
/// its row (sample) and position, and the embedding's vocabulary.
pub fn check_model_inputs<T: Float>(
    x: &Tensor<T>,
    arch: &Architecture,
    path: &Path,
) -> Result<(), IoError> {
    let sample = arch.sample_shape();
    let shape = x.shape();
    if shape.len() != sample.len() + 1 || shape[0] == 0 || shape[1..] != sample[..] {
        let expected = format!(
            "[N, {}] with N >= 1 (N samples of the model's input shape {sample:?})",
            sample
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Err(input_shape(path, x, expected));
    }
    check_finite(path, x)?;
    match (arch.token_vocabulary(), &arch.layers[..]) {
        (Some(vocab), [crate::Layer::Embedding { name, .. }, ..]) => {
            check_token_ids(x, vocab, name, path)
        }
        _ => Ok(()),
    }
}

/// Every value of `ids: [N, T]` is a whole number in `0..vocab`.
fn check_token_ids<T: Float>(
    ids: &Tensor<T>,
    vocab: usize,
    layer: &str,
    path: &Path,
) -> Result<(), IoError> {
    let t = ids.shape()[1..].iter().product::<usize>().max(1);
    let bad = ids.data().iter().position(|&v| {
        let v = v.to_f64();
        !(v >= 0.0 && v < vocab as f64 && v.fract() == 0.0)
    });
    match bad {
        None => Ok(()),
        Some(flat) => Err(IoError::TokenId {
            path: path.to_path_buf(),
            id: ids.data()[flat].to_f64(),
            row: flat / t,
            position: flat % t,
            vocab,
            layer: layer.to_string(),
        }),
    }
}

/// The lower-cased extension of `path`.
pub(crate) fn extension(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    Some(ext.to_ascii_lowercase())
}

/// The tensor of a safetensors inputs file: its only one, or the one named `inputs`.
fn read_inputs_tensor(path: &Path) -> Result<Tensor<f32>, IoError> {
    let bytes = read_bytes(path)?;
    let file = Parsed::parse(path, &bytes)?;
    let names = file.names();
    match names.as_slice() {
        [only] => file.tensor(only),
        _ if file.info(INPUTS_NAME).is_some() => file.tensor(INPUTS_NAME),
        _ => Err(IoError::InputTensors {
            path: path.to_path_buf(),
            names,
        }),
    }
}

/// `x` with a sample axis: `[N, ..]` stays, `[N]` becomes `[N, 1]`, a scalar is an error.
fn as_rows<T: Float>(path: &Path, x: Tensor<T>) -> Result<Tensor<T>, IoError> {
    match *x.shape() {
        [] => Err(input_shape(
            path,
            &x,
            "[N, ..], or [N] read as [N, 1]".into(),
        )),
        [n] => Ok(Tensor::from_vec(&[n, 1], x.into_data())),
        _ => Ok(x),
    }
}

/// No NaN or infinity in `x: [N, ..]`; the column is the flat index within the sample.
fn check_finite<T: Float>(path: &Path, x: &Tensor<T>) -> Result<(), IoError> {
    match first_non_finite(x.data()) {
        None => Ok(()),
        Some((flat, value)) => {
            let width = x.shape()[1..].iter().product::<usize>().max(1);
            Err(IoError::NonFiniteInput {
                path: path.to_path_buf(),
                row: flat / width,
                column: flat % width,
                value,
            })
        }
    }
}

fn input_shape<T: Float>(path: &Path, x: &Tensor<T>, expected: String) -> IoError {
    IoError::InputShape {
        path: path.to_path_buf(),
        found: x.shape().to_vec(),
        expected,
    }
}
