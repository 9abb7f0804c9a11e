//! The ops, one file per family: forward, vector-Jacobian product right below it, per-sample
//! rule where there is one, and tests.
//!
//! Primitives only get hand-written vjps; composed ops (`mse`, `kl_div`, `mean_axis`,
//! `conv2d`, the pools, `attention`, `layer_norm`, ...) are written with primitives and need
//! none.

pub mod arith;
pub mod attention;
pub mod conv;
pub mod embedding;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod unary;
