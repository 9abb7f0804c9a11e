//! The typed error of every fallible tensor operation.

use thiserror::Error;

/// What went wrong in a tensor operation; every variant names the op and the shapes involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TensorError {
    /// Two operands whose shapes do not fit together.
    #[error("{op}: shapes {lhs:?} and {rhs:?} do not match")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// A buffer whose length is not the number of elements of the shape.
    #[error("{op}: shape {shape:?} needs {expected} elements, got {got}")]
    ElementCount {
        op: &'static str,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// An axis outside `0..ndim`.
    #[error("{op}: axis {axis} is out of range for a tensor of shape {shape:?}")]
    Axis {
        op: &'static str,
        axis: usize,
        shape: Vec<usize>,
    },
    /// An operation that needs at least one element (or one tensor) was given none.
    #[error("{op}: {what} is empty")]
    Empty { op: &'static str, what: String },
    /// Any other invalid argument, described in words.
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
}

/// Result of a fallible tensor operation.
pub type Result<T> = std::result::Result<T, TensorError>;

/// Unwraps the result of a `try_` operation, panicking with its message.
///
/// The panicking forms of the operations use this; a mismatch there is a bug in the caller.
#[inline]
pub(crate) fn ok<T>(result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => fail(err),
    }
}

#[cold]
#[inline(never)]
fn fail(err: TensorError) -> ! {
    panic!("{err}")
}
