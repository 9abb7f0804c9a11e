//! `tensor`: an n-dimensional, row-major, contiguous tensor over `f32` (work) and `f64`
//! (gradient checks), with the kernels the rest of the project is built on.
//!
//! # Invariants of [`Tensor`]
//!
//! 1. `data.len() == shape.iter().product()` (a rank-0 tensor is a scalar with one element).
//! 2. Storage is contiguous and row-major: the last axis varies fastest; strides count elements.
//! 3. Every operation returns a new tensor or writes into one it owns; there are no aliasing views.
//!
//! # Conventions
//!
//! - Fallible operations come in pairs: `try_op` returns a [`TensorError`] naming the op and the
//!   shapes, and `op` calls it and panics with the same message (for use inside the math, where a
//!   mismatch is a bug).
//! - Binary elementwise operations broadcast as NumPy does: shapes are aligned at their trailing
//!   axes, and an axis of size 1 (or a missing leading axis) stretches to the other's size.
//! - Parallel kernels split their output into fixed-size chunks and reductions combine per-chunk
//!   partial results serially in chunk order, so results are bit-identical for any number of
//!   threads.

pub mod cpu;
mod element;
pub mod elementwise;
mod error;
mod gelu;
pub mod gemm;
pub mod kernels;
mod matmul;
mod random;
mod reduce;
mod shape;
mod tensor;
mod topk;
mod unfold;

pub use cpu::Isa;
pub use element::Float;
pub use error::{Result, TensorError};
pub use matmul::{matmul_naive, Transpose};
pub use random::rng;
pub use shape::{broadcast_shape, numel};
pub use tensor::Tensor;
pub use topk::TopK;
pub use unfold::{conv2d_naive, Window2d};
