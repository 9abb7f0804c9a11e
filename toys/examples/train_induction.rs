//! Trains the induction transformer from a few seeds and prints, per seed, its held-out
//! next-token accuracy on repeated and first-occurrence positions and its attention scores
//! (toys::induction). Usage: `cargo run --release -p toys --example train_induction -- [seeds]
//! [epochs] [lr] [train_sequences] [min_span] [max_span]` (defaults: 3 seeds, the default training settings).

use toys::induction::{train_induction, InductionTraining};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(|s| s.parse::<f64>().expect("a number"));
    let defaults = InductionTraining::default();
    let training = InductionTraining {
        epochs: arg(1).map_or(defaults.epochs, |e| e as usize),
        lr: arg(2).unwrap_or(defaults.lr),
        train_sequences: arg(3).map_or(defaults.train_sequences, |n| n as usize),
        spec: toys::induction::RepeatedSpans {
            min_span: arg(4).map_or(defaults.spec.min_span, |n| n as usize),
            max_span: arg(5).map_or(defaults.spec.max_span, |n| n as usize),
            ..defaults.spec
        },
        ..defaults
    };
    let seeds = arg(0).map_or(3, |s| s as u64);
    println!("{training:?}");
    for seed in 0..seeds {
        let start = std::time::Instant::now();
        let trained = train_induction(&training, seed, &mut |p| {
            if p.epoch % 5 == 0 || p.epoch == 1 {
                eprintln!("seed {seed} epoch {} loss {:.4}", p.epoch, p.loss);
            }
        })
        .expect("training runs");
        println!(
            "seed {seed}: {:.1} s; accuracy {:?}; attention {:?}",
            start.elapsed().as_secs_f64(),
            trained.accuracy,
            trained.attention
        );
        let params = l3d::Model::params(&trained.model);
        let mut by_offset = [[0.0f64; 4]; 2];
        for s in 0..200 {
            let tokens = &trained.test.tokens.data()[s * 32..(s + 1) * 32];
            let tr = toys::induction::model::trace(&params, tokens);
            for (l, pattern) in tr.patterns.iter().enumerate() {
                for i in 3..32 {
                    for (o, acc) in by_offset[l].iter_mut().enumerate() {
                        *acc += pattern[i * 32 + i - o] as f64 / (200.0 * 29.0);
                    }
                }
            }
        }
        println!("mean attention on offsets 0..4 (self, previous, ..): {by_offset:?}");
    }
}
