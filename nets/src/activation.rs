//! The elementwise activations a network is built from.

use serde::{Deserialize, Serialize};

/// An elementwise activation: the function and derivative of the tape op of the same name
/// (ReLU's derivative is 0 at 0; GELU is the exact `x Phi(x)`; ELU has `alpha = 1`). In an
/// architecture file it is named in snake case (`relu`, `gelu`, ..).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    Gelu,
    Elu,
    Tanh,
    Sigmoid,
}
