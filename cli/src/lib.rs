//! The `l3d` program: command-line parsing and the subcommands, runs from a config to files,
//! the reports and figures, the reproduction of the paper's toys and the ground-truth suite.
//! The binary (`src/main.rs`) is a thin shell around [`cli::main`].

pub mod cli;
pub mod error;
pub mod figures;
pub mod files;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod suite;
pub mod ui;
