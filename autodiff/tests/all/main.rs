//! `autodiff`'s integration tests, one binary: each file below is one of
//! its modules, so a cold build compiles and links this crate's tests once, not once per file.

mod bad_input;
mod common;
mod determinism;
mod layers;
mod per_sample_layers;
mod per_sample_mlp;
mod vjp;
