//! `toys`: the paper's toy models and their data, toy training, the experiments of Section 3,
//! figures, and the `l3d` program.

pub mod analysis;
pub mod circuits;
pub mod cli;
pub mod data;
pub mod figures;
pub mod models;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod suite;
pub mod train;
pub mod ui;
pub mod workloads;
