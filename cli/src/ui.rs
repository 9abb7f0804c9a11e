//! How the program talks while it works: progress bars on a terminal, nothing in quiet mode,
//! or one JSON object per line for scripts.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Output mode of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Progress bars and tables.
    Human,
    /// Only the final tables (and errors).
    Quiet,
    /// JSON lines on standard output: progress events and the final results.
    Json,
}

/// The program's voice, and the Ctrl-C flag long steps poll to stop cleanly.
#[derive(Clone)]
pub struct Ui {
    pub mode: Mode,
    interrupted: Arc<AtomicBool>,
}

impl Ui {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Installs the Ctrl-C handler: the first Ctrl-C asks long steps to stop at the next safe
    /// point (they then save what they have); a second one ends the program at once (files
    /// are only ever replaced by renames, so none is left half-written).
    pub fn catch_interrupts(&self) {
        let flag = Arc::clone(&self.interrupted);
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupted: finishing the current epoch and saving (Ctrl-C again to quit now)"
            );
        });
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// A progress bar of `total` steps (hidden unless human mode on a terminal).
    pub fn bar(&self, total: u64, what: &str) -> ProgressBar {
        if self.mode != Mode::Human {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        bar
    }

    /// A line of information (human mode: stderr; JSON mode: an event; quiet: nothing).
    pub fn info(&self, text: &str) {
        match self.mode {
            Mode::Human => eprintln!("{text}"),
            Mode::Json => self.event("info", json!({ "message": text })),
            Mode::Quiet => {}
        }
    }

    /// A warning: on stderr in human and quiet modes (quiet hides progress, not problems), a
    /// `warning` event in JSON mode.
    pub fn warn(&self, text: &str) {
        match self.mode {
            Mode::Json => self.event("warning", json!({ "message": text })),
            _ => eprintln!("warning: {text}"),
        }
    }

    /// A JSON-lines event (JSON mode only).
    pub fn event(&self, kind: &str, mut body: Value) {
        if self.mode != Mode::Json {
            return;
        }
        if let Value::Object(map) = &mut body {
            map.insert("event".into(), Value::String(kind.into()));
        }
        println!("{body}");
    }

    /// Final output: printed as is in human and quiet modes, as a `result` event in JSON mode.
    pub fn result(&self, text: &str, value: Value) {
        match self.mode {
            Mode::Json => self.event("result", value),
            _ => println!("{text}"),
        }
    }
}
