//! The program's own files: JSON results and configs in and out, and output folders. Every
//! write is atomic (`nets::io::write_atomic`).

use crate::error::{Result, RunError};
use serde::Serialize;
use std::path::Path;

/// Reads a JSON file into `T`, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = nets::io::read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|source| RunError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(RunError::ToJson)?;
    nets::io::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Creates the folder `dir` and its parents (nothing if it exists).
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}
