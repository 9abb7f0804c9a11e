//! The typed error of every file the program reads or writes.
//!
//! Each message starts with the file, then names the tensor where one is involved, and says
//! what was expected and what was found.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// What went wrong reading or writing a file.
#[derive(Debug, Error)]
pub enum IoError {
    /// The operating system could not read the file.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The operating system could not write the file (nothing was left behind).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory, a FIFO or a device: reading one could block forever or never end.
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
    /// The extension does not say which format the file is in.
    #[error("{}: unknown extension, expected {expected}", path.display())]
    Extension {
        path: PathBuf,
        expected: &'static str,
    },
    /// The file ends before what its header announces.
    #[error("{}: truncated: {what} needs {needed} bytes, the file has {found}", path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        needed: u64,
        found: u64,
    },
    /// The file's structure is broken (magic, header syntax, trailing bytes).
    #[error("{}: malformed: {msg}", path.display())]
    Malformed { path: PathBuf, msg: String },
    /// The header's entry for one tensor is invalid or lies (offsets, sizes, shape).
    #[error("{}: tensor '{tensor}': {msg}", path.display())]
    BadEntry {
        path: PathBuf,
        tensor: String,
        msg: String,
    },
    /// A tensor stored in a dtype this program does not read.
    #[error("{}: tensor '{tensor}' has dtype {found}, expected one of {expected}", path.display())]
    Dtype {
        path: PathBuf,
        tensor: String,
        found: String,
        expected: &'static str,
    },
    /// A well-formed file holding something this program does not read (NPY dtypes, order).
    #[error("{}: unsupported: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    /// The safetensors crate rejected the file for a reason the diagnosis did not pin down.
    #[error("{}: not a valid safetensors file: {source}", path.display())]
    Safetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// An architecture file that does not parse, or describes a model that cannot exist.
    #[error("{}: invalid architecture: {msg}", path.display())]
    Architecture { path: PathBuf, msg: String },
    /// The weights file does not fit the architecture; every problem is listed.
    #[error("{}", mismatch_report(.arch, .weights, .problems))]
    Mismatch {
        arch: PathBuf,
        weights: PathBuf,
        problems: Vec<Mismatch>,
    },
    /// A weight that is NaN or infinite, at the multi-index `index` of its tensor.
    #[error("{}: tensor '{tensor}' has the non-finite value {value} at index {index:?}", path.display())]
    NonFiniteWeight {
        path: PathBuf,
        tensor: String,
        index: Vec<usize>,
        value: f64,
    },
    /// An input value that is NaN or infinite.
    #[error("{}: the input at row {row}, column {column} is {value}", path.display())]
    NonFiniteInput {
        path: PathBuf,
        row: usize,
        column: usize,
        value: f64,
    },
    /// Inputs of the wrong rank, with no rows, or of the wrong width.
    #[error("{}: inputs have shape {found:?}, expected {expected}", path.display())]
    InputShape {
        path: PathBuf,
        found: Vec<usize>,
        expected: String,
    },
    /// A token id that is not a row of the embedding's table.
    #[error(
        "{}: token id {id} at row {row}, position {position} is not a row of embedding \
         '{layer}': ids must be whole numbers in 0..{vocab} (vocabulary size {vocab})",
        path.display()
    )]
    TokenId {
        path: PathBuf,
        id: f64,
        row: usize,
        position: usize,
        vocab: usize,
        layer: String,
    },
    /// A safetensors inputs file whose tensor cannot be chosen.
    #[error(
        "{}: holds the tensors {names:?}; an inputs file needs exactly one tensor, or one named 'inputs'",
        path.display()
    )]
    InputTensors { path: PathBuf, names: Vec<String> },
    /// Tensors that cannot be written as asked (a repeated or reserved name).
    #[error("{}: cannot write tensor '{tensor}': {msg}", path.display())]
    Unwritable {
        path: PathBuf,
        tensor: String,
        msg: String,
    },
}

/// One way a weights file disagrees with its architecture.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Mismatch {
    #[error("tensor '{tensor}' is missing (the architecture needs shape {expected:?})")]
    Missing {
        tensor: String,
        expected: Vec<usize>,
    },
    #[error("tensor '{tensor}' (shape {found:?}) is not a parameter of the architecture")]
    Unexpected { tensor: String, found: Vec<usize> },
    #[error("tensor '{tensor}' has shape {found:?}, the architecture needs {expected:?}")]
    Shape {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor '{tensor}' has dtype {found}, expected one of {expected}")]
    Dtype {
        tensor: String,
        found: String,
        expected: &'static str,
    },
}

/// One line per problem, each naming the weights file, under a line naming both files.
fn mismatch_report(arch: &Path, weights: &Path, problems: &[Mismatch]) -> String {
    let mut report = format!(
        "{} does not match the architecture {} ({} problem{}):",
        weights.display(),
        arch.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        report.push_str(&format!("\n  {}: {problem}", weights.display()));
    }
    report
}
