//! `toys`: the paper's toy models and their data, toy training, the experiments of Section 3,
//! figures, and the `l3d` program.

pub mod arch;
pub mod data;
pub mod figures;
pub mod io;
pub mod models;
pub mod train;
