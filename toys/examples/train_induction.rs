//! Trains the induction transformer from a few seeds and prints, per seed, its held-out
//! next-token accuracy on repeated and first-occurrence positions and its attention scores
//! (toys::induction), for trying training recipes. Usage:
//!
//! ```sh
//! cargo run --release -p toys --example train_induction -- [key=value ..]
//! ```
//!
//! Keys (defaults: those of `InductionTraining`): `seeds` (how many, from `first`, default 0),
//! `epochs`, `lr`, `train` (training sequences per epoch), `batch`, `wd`, `min_span`,
//! `max_span`, `fillers` (`not_span`, `any` or `echo`), `fresh` (1: new training sequences every
//! epoch), `warmup` (steps of linear warm-up), `decay` (`none` or `cos`: cosine decay to 0 over
//! the run). Without `fresh`, `warmup` and `decay` the run is `train_induction` itself.

use autodiff::optim::{AdamW, AdamWConfig};
use autodiff::Tape;
use l3d::Model;
use std::collections::HashMap;
use toys::induction::{
    initialised, model::accuracy, model::attention_scores, Fillers, InductionTraining,
};
use toys::train::{record_loss, Loss};

struct Recipe {
    training: InductionTraining,
    fresh: bool,
    warmup: usize,
    cosine: bool,
}

fn recipe(args: &HashMap<String, String>) -> Recipe {
    let num = |k: &str| args.get(k).map(|s| s.parse::<f64>().expect("a number"));
    let d = InductionTraining::default();
    let training = InductionTraining {
        epochs: num("epochs").map_or(d.epochs, |e| e as usize),
        lr: num("lr").unwrap_or(d.lr),
        train_sequences: num("train").map_or(d.train_sequences, |n| n as usize),
        batch_size: num("batch").map_or(d.batch_size, |n| n as usize),
        weight_decay: num("wd").unwrap_or(d.weight_decay),
        spec: toys::induction::RepeatedSpans {
            min_span: num("min_span").map_or(d.spec.min_span, |n| n as usize),
            max_span: num("max_span").map_or(d.spec.max_span, |n| n as usize),
            fillers: match args.get("fillers").map(String::as_str) {
                None => d.spec.fillers,
                Some("not_span") => Fillers::NotSpan,
                Some("any") => Fillers::Any,
                Some("echo") => Fillers::Echo,
                Some(other) => panic!("fillers={other}: not_span, any or echo"),
            },
            ..d.spec
        },
        ..d
    };
    Recipe {
        training,
        fresh: num("fresh").is_some_and(|f| f != 0.0),
        warmup: num("warmup").map_or(0, |w| w as usize),
        cosine: match args.get("decay").map(String::as_str) {
            None | Some("none") => false,
            Some("cos") => true,
            Some(other) => panic!("decay={other}: none or cos"),
        },
    }
}

/// The recipe's own loop: AdamW with the learning rate `lr * min(1, s / warmup) * cos-decay`
/// at step `s`, the training sequences drawn anew every epoch if `fresh`.
fn train(r: &Recipe, seed: u64) -> (nets::Sequential<f32>, toys::induction::TokenSet) {
    let t = &r.training;
    let spec = &t.spec;
    let mut data_rng = tensor::rng(1000 + seed);
    let test = spec.sample(t.test_sequences, &mut tensor::rng(2000 + seed));
    let mut model = initialised(spec, seed);
    let mut params: Vec<tensor::Tensor<f32>> = model.params().into_iter().cloned().collect();
    let shapes: Vec<Vec<usize>> = params.iter().map(|p| p.shape().to_vec()).collect();
    let config = AdamWConfig {
        lr: t.lr,
        weight_decay: t.weight_decay,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(config, &shapes);
    let steps_per_epoch = t.train_sequences.div_ceil(t.batch_size);
    let total = (t.epochs * steps_per_epoch) as f64;
    let mut set = spec.sample(t.train_sequences, &mut data_rng);
    let mut step = 0usize;
    for epoch in 1..=t.epochs {
        if r.fresh && epoch > 1 {
            set = spec.sample(t.train_sequences, &mut data_rng);
        }
        let targets = set.next_token_one_hot(spec.vocab);
        let mut loss_sum = 0.0;
        for start in (0..t.train_sequences).step_by(t.batch_size) {
            let rows: Vec<usize> = (start..(start + t.batch_size).min(t.train_sequences)).collect();
            let mut tape = Tape::new();
            let p: Vec<_> = params.iter().map(|w| tape.param(w.clone())).collect();
            let xv = tape.input(set.tokens.gather_rows(&rows));
            let tv = tape.input(targets.gather_rows(&rows));
            let y = model.forward(&mut tape, &p, xv).expect("forward");
            let loss = record_loss(&mut tape, Loss::CrossEntropy, y, tv).expect("loss");
            let grads = tape.grad(loss, &p).expect("grad");
            loss_sum += tape.value(loss).item() as f64 * rows.len() as f64;
            step += 1;
            let mut lr = t.lr;
            if r.warmup > 0 {
                lr *= (step as f64 / r.warmup as f64).min(1.0);
            }
            if r.cosine {
                lr *= 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total).cos());
            }
            opt.step(lr, &mut params, &grads);
        }
        if epoch % 5 == 0 || epoch == 1 {
            let loss = loss_sum / t.train_sequences as f64;
            model.set_params(params.clone()).expect("shapes");
            let a = attention_scores(&model, &test);
            let acc = accuracy(&model.evaluate_w0(&test.tokens).expect("eval"), &test);
            eprintln!(
                "seed {seed} epoch {epoch} loss {loss:.3} acc rep {:.3} L0 prev {:.3} self {:.3} L1 ind {:.3}",
                acc.repeated, a.layer0_previous_token, a.layer0_self, a.layer1_induction
            );
        }
    }
    model.set_params(params).expect("shapes");
    (model, test)
}

fn main() {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .map(|a| {
            let (k, v) = a.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let r = recipe(&args);
    let seeds = args.get("seeds").map_or(3, |s| s.parse().expect("a count"));
    let first: u64 = args.get("first").map_or(0, |s| s.parse().expect("a seed"));
    let plain = !r.fresh && r.warmup == 0 && !r.cosine;
    println!(
        "{:?} fresh {} warmup {} cosine {}",
        r.training, r.fresh, r.warmup, r.cosine
    );
    for seed in first..first + seeds {
        let start = std::time::Instant::now();
        let (model, test) = match plain {
            true => {
                let trained = toys::induction::train_induction(&r.training, seed, &mut |p| {
                    if p.epoch % 5 == 0 || p.epoch == 1 {
                        eprintln!("seed {seed} epoch {} loss {:.4}", p.epoch, p.loss);
                    }
                })
                .expect("training runs");
                (trained.model, trained.test)
            }
            false => train(&r, seed),
        };
        let logits = model.evaluate_w0(&test.tokens).expect("evaluates");
        println!(
            "seed {seed}: {:.1} s; accuracy {:?}; attention {:?}",
            start.elapsed().as_secs_f64(),
            accuracy(&logits, &test),
            attention_scores(&model, &test)
        );
        let params = model.params();
        let mut by_offset = [[0.0f64; 4]; 2];
        let n = test.len().min(200);
        for s in 0..n {
            let tokens = &test.tokens.data()[s * 32..(s + 1) * 32];
            let tr = toys::induction::model::trace(&params, tokens);
            for (l, pattern) in tr.patterns.iter().enumerate() {
                for i in 3..32 {
                    for (o, acc) in by_offset[l].iter_mut().enumerate() {
                        *acc += pattern[i * 32 + i - o] as f64 / (n as f64 * 29.0);
                    }
                }
            }
        }
        println!("mean attention on offsets 0..4 (self, previous, ..): {by_offset:?}");
        // Layer 0 at a repeated position b + j: its weight on the earlier occurrence of the
        // current token (a + j), on itself, and on the previous token.
        let mut duplicate = [0.0f64; 3];
        let mut count = 0usize;
        for (s, marks) in test.marks.iter().enumerate().take(n) {
            let tokens = &test.tokens.data()[s * 32..(s + 1) * 32];
            let a0 = &toys::induction::model::trace(&params, tokens).patterns[0];
            for (i, target) in toys::induction::model::induction_targets(marks) {
                let row = &a0[i * 32..(i + 1) * 32];
                duplicate[0] += row[target - 1] as f64;
                duplicate[1] += row[i] as f64;
                duplicate[2] += row[i - 1] as f64;
                count += 1;
            }
        }
        let [earlier, itself, previous] = duplicate.map(|x| x / count.max(1) as f64);
        println!(
            "layer 0 at repeated positions: on the earlier occurrence {earlier:.3}, on itself {itself:.3}, on the previous token {previous:.3}"
        );
    }
}
