//! `l3d`'s integration tests, one binary: each file below is one of
//! its modules, so a cold build compiles and links this crate's tests once, not once per file.
//! `fast_alloc.rs` stays a binary of its own: it installs a counting global allocator.

mod common;
mod fast_path;
#[path = "../random_mlp/mod.rs"]
mod random_mlp;
mod real_layers_fast;
mod real_layers_paths;
mod rows_model;
mod sequences;
mod step_gradients;
mod training;
