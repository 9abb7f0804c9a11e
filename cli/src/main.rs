//! The `l3d` program; see `l3d --help`.

use clap::Parser;
use l3d_cli::args::Cli;
use l3d_cli::commands::dispatch;
use l3d_cli::error::RunError;
use l3d_cli::ui::{Mode, Ui};
use std::process::ExitCode;

/// Parses the arguments, runs, and maps errors to a message and exit code 1 (130 when
/// interrupted). Usage errors exit with clap's code 2.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let mode = if cli.json {
        Mode::Json
    } else if cli.quiet {
        Mode::Quiet
    } else {
        Mode::Human
    };
    let ui = Ui::new(mode);
    ui.catch_interrupts();
    match dispatch(cli.command, &ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (RunError::Interrupted { .. } | RunError::Stopped)) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
