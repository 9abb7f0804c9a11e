//! A user's inputs `x: [N, d]`, one row per sample, from `.npy` or `.safetensors`.

use std::path::Path;

use tensor::{Float, Tensor};

use super::element::first_non_finite;
use super::fs::read_bytes;
use super::npy::read_npy;
use super::safetensors::Parsed;
use super::IoError;

/// The tensor name chosen in a safetensors inputs file holding several tensors.
const INPUTS_NAME: &str = "inputs";

/// The inputs `x: [N, d]` in the file at `path`: a `.npy` array, or the one tensor of a
/// `.safetensors` file (or its tensor named `inputs`). A 1-D array of `N` values is read as
/// `[N, 1]`. Refuses an empty array (`N = 0` or `d = 0`), another rank, and NaN or infinite
/// values (naming the row and column). See [`check_inputs`] for the width.
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
            "[N, d] with N >= 1 and d >= 1".into(),
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

/// `x` as a matrix: `[N, d]` stays, `[N]` becomes `[N, 1]`, any other rank is an error.
fn as_rows<T: Float>(path: &Path, x: Tensor<T>) -> Result<Tensor<T>, IoError> {
    match *x.shape() {
        [_, _] => Ok(x),
        [n] => Ok(Tensor::from_vec(&[n, 1], x.into_data())),
        _ => Err(input_shape(
            path,
            &x,
            "[N, d], or [N] read as [N, 1]".into(),
        )),
    }
}

/// No NaN or infinity in the matrix `x: [N, d]`.
fn check_finite<T: Float>(path: &Path, x: &Tensor<T>) -> Result<(), IoError> {
    match first_non_finite(x.data()) {
        None => Ok(()),
        Some((flat, value)) => {
            let width = x.shape()[1];
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
