//! `toys`: the paper's toy models and their data, toy training, the handwritten digits and
//! their networks, the ground-truth suite of users' models, the circuit measures (per input
//! and per class) and the analysis against a known truth, and the benchmark workloads.

pub mod analysis;
pub mod circuits;
pub mod classes;
pub mod data;
pub mod digits;
pub mod induction;
pub mod init;
pub mod models;
pub mod suite;
pub mod train;
pub mod workloads;
