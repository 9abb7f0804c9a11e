//! The `l3d` program: the command line ([`args`]) and its subcommands ([`commands`]), runs
//! from a config to files ([`run`]) in an output folder they own ([`folder`]) with periodic
//! checkpoints ([`checkpoint`]), the checks of settings before anything runs ([`checks`]),
//! what decides a run and what it was computed from ([`config`]), the digits networks
//! ([`digits`]), reports and figures, the reproduction of
//! the paper's toys and the ground-truth suite. The binary (`src/main.rs`) parses the arguments, calls
//! [`commands::dispatch`] and turns errors into exit codes.

pub mod args;
pub mod checkpoint;
pub mod checks;
pub mod classes;
pub mod commands;
pub mod config;
pub mod digits;
pub mod error;
pub mod figures;
pub mod files;
pub mod folder;
pub mod induction;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod suite;
pub mod ui;
