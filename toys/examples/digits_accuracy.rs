//! Trains each digits network from several seeds at its recorded settings and prints the
//! held-out accuracies with their median and range (notes/digits.md):
//!
//!     cargo run --release -p toys --example digits_accuracy -- 5

use toys::digits::load;
use toys::digits::train::{train_digits, DigitsKind};

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let digits = load();
    for kind in DigitsKind::ALL {
        let config = kind.train_config();
        let mut held = Vec::new();
        for seed in 0..seeds {
            let run = train_digits(kind, &digits, seed, &config, &mut |_| {})
                .expect("the recorded settings train");
            println!(
                "{kind} seed {seed}: train {:.4} held-out {:.4} final loss {:.4}",
                run.train_accuracy,
                run.held_out_accuracy,
                run.epoch_losses.last().copied().unwrap_or(f64::NAN)
            );
            held.push(run.held_out_accuracy);
        }
        held.sort_by(f64::total_cmp);
        println!(
            "{kind}: held-out accuracy median {:.4}, range {:.4}..{:.4} over {seeds} seeds ({} epochs, lr {}, batch {})",
            held[held.len() / 2],
            held[0],
            held[held.len() - 1],
            config.epochs,
            config.lr,
            config.batch_size
        );
    }
}
