//! `toys`: the paper's toy models and their data, toy training, the ground-truth suite of
//! users' models, the circuit measures and the analysis against a known truth, and the
//! benchmark workloads.

pub mod analysis;
pub mod circuits;
pub mod data;
pub mod induction;
pub mod models;
pub mod suite;
pub mod train;
pub mod workloads;
