//! `autodiff`: a tape of recorded tensor ops, their vector-Jacobian products, and per-sample
//! gradients in the functorch sense (vmap of grad).
//!
//! # Legend
//!
//! - `B`: batch size, the leading axis of every *batched* value (inputs and everything computed
//!   from them). Rows of a batched value are independent samples.
//! - *shared* value: one that does not depend on the batch (parameters, and anything computed
//!   from parameters only).
//! - `grad_out`: the gradient of the loss with respect to an op's output; each op's backward
//!   turns it into gradients with respect to its inputs (its vector-Jacobian product, vjp).
//!
//! # How to read it
//!
//! [`Tape`] is a list of nodes in execution order, which is a topological order, so backward
//! is one reverse loop ([`Tape::grad`]). Each op lives in `ops/` with its forward, its vjp
//! right below it, its per-sample rule where it has one, and its tests. Per-sample gradients
//! are in [`per_sample`]; the finite-difference checker every gradient test uses is in
//! [`check`].

pub mod check;
pub mod ops;
pub mod optim;
pub mod per_sample;
mod tape;

pub use ops::conv::Conv2dOptions;
pub use per_sample::{per_sample_grads, per_sample_grads_loop, PerSampleGrad};
pub use tape::{AutodiffError, Ctx, Grad, Result, Tape, Var};
pub use tensor::{Float, Tensor, Window2d};
