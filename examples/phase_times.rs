//! Time per epoch of the fast path on one benchmark case, split by phase, in pools of the given
//! thread counts: where the time goes, and how each phase scales with threads.
//!
//! ```sh
//! cargo run --release --example phase_times -- --case mlp-wide --epochs 40 --threads 1 2
//! ```
//!
//! For each pool: the median and fastest epoch, and per epoch the time in the per-sample
//! gradients, the encode, the decode (with the Grams, top-k and the loss), the backward into the
//! factors, and the rest (AdamW, the decoder's renormalisation, batching).

use clap::Parser;
use l3d::config::{L3dConfig, StepPath};
use l3d::train::Trainer;
use std::time::{Duration, Instant};
use toys::workloads::BenchCase;

#[derive(Parser)]
struct Args {
    /// The benchmark case of WORKLOADS.md.
    #[arg(long, value_enum, default_value = "mlp-wide")]
    case: BenchCase,
    /// Timed epochs per pool (after one warm-up epoch).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Thread counts, one pool each.
    #[arg(long, num_args = 1.., default_values_t = [1, 2])]
    threads: Vec<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.case == BenchCase::PerSampleGrad {
        return Err("per-sample-grad has no epochs; pick tms, squared or mlp-wide".into());
    }
    let (model, x) = (args.case.model(), args.case.data());
    let n = args.epochs.max(1);
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let line = pool.install(|| -> Result<String, l3d::error::L3dError> {
            let config = L3dConfig {
                epochs: n + 1,
                ..args.case.config(StepPath::Fast)
            };
            let mut trainer = Trainer::new(&model, config, &x)?;
            trainer.run_epoch()?;
            trainer.take_fast_timings();
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                trainer.run_epoch()?;
                times.push(start.elapsed());
            }
            let split = trainer.take_fast_timings();
            let total: Duration = times.iter().sum();
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
            let phases = split.gradients + split.encode + split.decode + split.backward;
            Ok(format!(
                "{threads} thread(s): median {:.2} ms, fastest {:.2} ms | per epoch: gradients \
                 {:.2}, encode {:.2}, decode {:.2}, backward {:.2}, rest {:.2} ms",
                times[n / 2].as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3,
                ms(split.gradients),
                ms(split.encode),
                ms(split.decode),
                ms(split.backward),
                ms(total.saturating_sub(phases)),
            ))
        })?;
        println!("{} {line}", args.case.name());
    }
    Ok(())
}
