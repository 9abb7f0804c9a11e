//! Trains every toy at the paper's settings (up to 1,000 epochs, with early stopping) and
//! prints what each run did: time, epochs, per-feature unexplained fractions, embedding norms,
//! and which seed was kept. Used for notes/toys.md.
//!
//!     cargo run --release -p toys --example train_toys [-- SEED [TOY ..]]

use std::time::Instant;
use toys::models::{ToyKind, ToyReport};
use toys::train::{train_toy, TrainConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args
        .next()
        .map_or(0, |s| s.parse().expect("SEED is a number"));
    let kinds: Vec<ToyKind> = args.map(|s| s.parse().expect("a toy name")).collect();
    let kinds = if kinds.is_empty() {
        ToyKind::ALL.to_vec()
    } else {
        kinds
    };
    let config = TrainConfig::default();
    for kind in kinds {
        let start = Instant::now();
        let toy = train_toy(kind, seed, &config, &mut |_| {}).expect("toy training");
        let seconds = start.elapsed().as_secs_f64();
        println!("== {kind} (seed {seed}): {seconds:.2} s");
        print_report(&toy.report, "  ");
    }
}

fn print_report(report: &ToyReport, indent: &str) {
    const SHOWN: usize = 4;
    let hidden = report.attempts.len().saturating_sub(SHOWN);
    if hidden > 0 {
        println!("{indent}({hidden} earlier runs did not represent every feature)");
    }
    for a in &report.attempts[hidden..] {
        println!(
            "{indent}seed {}: {} epochs{}, loss {:.5} -> {:.5}, worst unexplained {:.3}",
            a.seed,
            a.epochs_run,
            if a.stopped_early { " (converged)" } else { "" },
            a.initial_loss,
            a.final_loss,
            a.check.worst_unexplained()
        );
    }
    println!("{indent}choice: {}", report.choice);
    let c = &report.check;
    println!(
        "{indent}check: mse {:.5}, represents all: {}",
        c.mse, c.represents_all
    );
    println!("{indent}  unexplained u_j: {}", fmt(&c.unexplained));
    println!("{indent}  errors e_j:      {}", fmt(&c.feature_errors));
    println!("{indent}  embedding norms: {}", fmt(&c.embedding_norms));
    println!("{indent}  read-out norms:  {}", fmt(&c.readout_norms));
    for (k, block) in report.blocks.iter().enumerate() {
        println!("{indent}block {k}:");
        print_report(block, &format!("{indent}  "));
    }
}

fn fmt(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
    parts.join(" ")
}
