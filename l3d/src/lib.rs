//! `l3d`: Local Loss Landscape Decomposition.

pub mod model;

pub use model::{Model, OutputKind};
