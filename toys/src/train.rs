//! Toy training as the authors trained the toys (WORKLOADS.md): MSE against the target, AdamW
//! at lr 1e-3 with weight decay 0.001, batches of 128, 10,000 samples, 1,000 epochs; early
//! stopping only to reject training seeds quickly; and the choice among training seeds of a
//! model that represents every feature.
//!
//! # Legend
//!
//! - `L_e`: the mean training loss of epoch `e` (mean over the epoch's samples of the batch
//!   MSE, measured while the weights move).
//! - `window`, `rel`: early stopping stops after epoch `e` when the best loss of the last
//!   `window` epochs is not below `(1 - rel)` times the best loss before them.
//!
//! # Conventions
//!
//! - The training set is drawn once per training seed and visited in a fresh random order each
//!   epoch; the last batch of an epoch holds the remainder (16 of 10,000 at batch 32).
//! - Weight decay is 0.001 on every parameter, biases included, as in the authors' training
//!   scripts (not PyTorch's AdamW default of 0.01, which skews the hidden layer of `tmcs` by a
//!   factor of about 3.5 between `W_in` and `W_out`).
//! - Batches of 128: the authors train with batches of 32 on each of 4 data-parallel
//!   processes, whose gradients are averaged, which is one batch of 128.
//! - Tied parameters ([`Tie`], `tms`): the optimiser holds the shared weight once; its
//!   gradient is the sum of both uses' gradients, and the transposed copy is set from it after
//!   every step.
//! - Early stopping can stop on a plateau: a toy can sit at a flat loss for hundreds of epochs
//!   and then drop (seen for `tmcs`; presumably a dead unit revived as weight decay shrinks
//!   it). Such a run is judged as it stands by the model check, and the seed search moves on.
//!
//! One file of about 800 lines, a quarter of them tests: the loop, the tie and the seed search
//! share one [`TrainConfig`] and are one procedure, the authors' training of a toy; the dense
//! fast path, which is a different thing, is `train/dense.rs`.

mod dense;

pub use dense::{DenseMlp, Loss};

use crate::data::{self, DataSpec};
use crate::models::check::{check_model, REPRESENTED_BELOW};
use crate::models::{initialised, parallel_tms, seeded, training_seeds, Tie};
use crate::models::{Attempt, Stream, Target, ToyKind, ToyModel, ToyReport, MAX_SEEDS_PER_SEARCH};
use autodiff::optim::{AdamW, AdamWConfig};
use autodiff::{AutodiffError, Tape};
use l3d::Model;
use nets::Sequential;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tensor::Tensor;
use thiserror::Error;

/// What can go wrong in toy training.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error("the dense fast path cannot train this model: {0}")]
    Unsupported(String),
    #[error("invalid training config: {0}")]
    Config(String),
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
}

/// How the loss and its gradient are computed; both give the same numbers (a test checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The hand-written MLP pass ([`DenseMlp`], `l3d::mlp`): linear layers and activations.
    Dense,
    /// The generic tape: `Model::forward`, MSE, `Tape::grad`.
    Tape,
}

/// Early stopping: stop when the best loss of the last `window` epochs is not below
/// `(1 - rel)` times the best loss of the epochs before them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStop {
    pub window: usize,
    pub rel: f64,
}

impl EarlyStop {
    /// Whether training has converged after the epochs whose losses are `losses`.
    pub fn converged(&self, losses: &[f64]) -> bool {
        if losses.len() <= self.window {
            return false;
        }
        let (before, recent) = losses.split_at(losses.len() - self.window);
        let best = |l: &[f64]| l.iter().copied().fold(f64::INFINITY, f64::min);
        best(recent) >= (1.0 - self.rel) * best(before)
    }
}

/// The settings of toy training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The most epochs to train (the paper: 1,000).
    pub epochs: usize,
    /// Size of the training set.
    pub samples: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// `None`: always train for `epochs`.
    pub early_stop: Option<EarlyStop>,
    /// How many training seeds `train_toy` tries ([`crate::models::training_seeds`]) before
    /// it keeps the best model it has. The default is large because `tms` trained from a random start
    /// usually drops a feature for good (a dead output ReLU): about 1 seed in 40 keeps all
    /// five (notes/toys.md), and failed seeds cost only their ~70 epochs to convergence.
    pub max_seeds: usize,
    /// Whether the model kept by the seed search, if it stopped early, is trained again from
    /// its seed for the full `epochs` (the same run, continued: the first epochs repeat
    /// exactly). Early stopping then only serves to reject seeds quickly. It matters because
    /// the loss converges before the parameters do: the hidden layer of the TMS-like toys is
    /// linear, so `W_in -> M W_in, W_out -> W_out M^-1` leaves the function unchanged, and
    /// AdamW keeps moving the weights along that symmetry (for `tmcs`, embedding norms nearly
    /// double between epoch 100 and 1,000 at the same loss). The function is the same, but the
    /// gradients L3D decomposes are not.
    pub finish_kept: bool,
    pub backend: Backend,
    /// MSE against the target, or cross-entropy for logits against one-hot classes.
    #[serde(default)]
    pub loss: Loss,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1_000,
            samples: 10_000,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 0.001,
            early_stop: Some(EarlyStop {
                window: 50,
                rel: 1e-3,
            }),
            max_seeds: 200,
            finish_kept: true,
            backend: Backend::Dense,
            loss: Loss::Mse,
        }
    }
}

impl TrainConfig {
    /// Checks that every setting is usable; the message names the one at fault.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |msg: String| Err(TrainError::Config(msg));
        if self.samples == 0 || self.batch_size == 0 {
            return bad(format!(
                "samples ({}) and batch_size ({}) must be > 0",
                self.samples, self.batch_size
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive and finite, is {}", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!(
                "weight_decay must be >= 0, is {}",
                self.weight_decay
            ));
        }
        if !(1..=MAX_SEEDS_PER_SEARCH).contains(&self.max_seeds) {
            return bad(format!(
                "max_seeds must be in 1..={MAX_SEEDS_PER_SEARCH}, is {}",
                self.max_seeds
            ));
        }
        match self.early_stop {
            Some(e) if e.window == 0 || !(e.rel >= 0.0 && e.rel < 1.0) => bad(format!(
                "early stopping needs window > 0 and 0 <= rel < 1, got {e:?}"
            )),
            _ => Ok(()),
        }
    }
}

/// Where training is, for a progress bar: after `epoch` (counted from 1) of at most `epochs`
/// of the run from `seed`, the epoch's mean loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub seed: u64,
    pub epoch: usize,
    pub epochs: usize,
    pub loss: f64,
}

/// What one training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRun {
    /// The loss of the initial weights over the training set.
    pub initial_loss: f64,
    /// `L_e` for every epoch run.
    pub epoch_losses: Vec<f64>,
    pub stopped_early: bool,
}

/// The loss and gradients of a batch (rows of the training set), by either backend.
enum Stepper<'m> {
    Dense(Box<DenseMlp>),
    Tape(&'m Sequential<f32>),
}

impl Stepper<'_> {
    fn loss_and_grads(
        &mut self,
        params: &[Tensor<f32>],
        (x, t): (&Tensor<f32>, &Tensor<f32>),
        rows: &[usize],
        loss: Loss,
        grads: &mut [Tensor<f32>],
    ) -> Result<f32, TrainError> {
        match self {
            Stepper::Dense(mlp) => mlp
                .loss_and_grads(params, x, t, rows, loss, grads)
                .map_err(TrainError::Unsupported),
            Stepper::Tape(model) => {
                let mut tape = Tape::new();
                let p: Vec<_> = params.iter().map(|w| tape.param(w.clone())).collect();
                let xv = tape.input(x.gather_rows(rows));
                let tv = tape.input(t.gather_rows(rows));
                let y = model.forward(&mut tape, &p, xv)?;
                let loss = record_loss(&mut tape, loss, y, tv)?;
                for (g, new) in grads.iter_mut().zip(tape.grad(loss, &p)?) {
                    *g = new;
                }
                Ok(tape.value(loss).item())
            }
        }
    }
}

/// Records the batch loss of outputs `y` against targets `t`: the mean squared error, or the
/// batch mean of the cross-entropy of logits against one-hot rows.
pub fn record_loss(
    tape: &mut Tape<f32>,
    loss: Loss,
    y: autodiff::Var,
    t: autodiff::Var,
) -> autodiff::Result<autodiff::Var> {
    match loss {
        Loss::Mse => {
            let per_row = tape.try_mse(y, t)?;
            Ok(tape.mean_all(per_row))
        }
        Loss::CrossEntropy => {
            let rows = tape.shape(y)[0];
            let logq = tape.try_log_softmax(y)?;
            let picked = tape.try_mul(logq, t)?;
            let total = tape.sum_all(picked);
            Ok(tape.scale(total, -1.0 / rows as f32))
        }
    }
}

/// Trains `model` in place to map `data` to `target`, with the training set and its order
/// drawn from `seed`; calls `progress` after every epoch. With a [`Tie`], the model's tied
/// parameters must start tied (`params[transposed] = params[source]^T`) and stay so.
pub fn train(
    model: &mut Sequential<f32>,
    tie: Option<Tie>,
    target: &Target,
    data: &DataSpec,
    config: &TrainConfig,
    seed: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrainRun, TrainError> {
    config.validate()?;
    let x = data::sample(data, config.samples, &mut seeded(seed, Stream::TrainData));
    let t = target.apply(&x);
    fit(model, tie, (&x, &t), config, seed, progress)
}

/// Trains `model` in place on the fixed training set `x` (one sample per row of the first
/// axis) against targets `t` (regression targets, or one-hot rows for
/// [`Loss::CrossEntropy`]), visited in an order drawn from `seed`; `config.samples` is
/// ignored (the set's size is `x`'s). Otherwise as [`train`].
pub fn fit(
    model: &mut Sequential<f32>,
    tie: Option<Tie>,
    (x, t): (&Tensor<f32>, &Tensor<f32>),
    config: &TrainConfig,
    seed: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrainRun, TrainError> {
    let samples = x.shape().first().copied().unwrap_or(0);
    config.validate()?;
    if samples == 0 || t.shape().first() != Some(&samples) {
        return Err(TrainError::Config(format!(
            "the training set needs as many targets as samples, and at least one: inputs {:?}, targets {:?}",
            x.shape(),
            t.shape()
        )));
    }
    let initial_loss = batch_loss(model, x, t, config.loss)?;
    let mut params: Vec<Tensor<f32>> = model.params().into_iter().cloned().collect();
    if let Some(tie) = tie {
        check_tied(&params, tie)?;
    }
    let mut grads: Vec<Tensor<f32>> = params.iter().map(|p| Tensor::zeros(p.shape())).collect();
    let mut update = TiedUpdate::new(&params, tie, config);
    let mut stepper = match config.backend {
        Backend::Dense => Stepper::Dense(Box::new(
            DenseMlp::new(model).map_err(TrainError::Unsupported)?,
        )),
        Backend::Tape => Stepper::Tape(model),
    };
    let mut order: Vec<usize> = (0..samples).collect();
    let mut shuffle = seeded(seed, Stream::Shuffle);
    let mut epoch_losses = Vec::with_capacity(config.epochs);
    let mut stopped_early = false;
    for epoch in 1..=config.epochs {
        order.shuffle(&mut shuffle);
        let mut total = 0.0;
        for batch in order.chunks(config.batch_size) {
            let loss = stepper.loss_and_grads(&params, (x, t), batch, config.loss, &mut grads)?;
            update.step(config.lr, &mut params, &mut grads);
            total += loss as f64 * batch.len() as f64;
        }
        let loss = total / samples as f64;
        epoch_losses.push(loss);
        progress(&Progress {
            seed,
            epoch,
            epochs: config.epochs,
            loss,
        });
        if config
            .early_stop
            .is_some_and(|e| e.converged(&epoch_losses))
        {
            stopped_early = epoch < config.epochs;
            break;
        }
    }
    drop(stepper);
    model
        .set_params(params)
        .expect("training keeps the parameter shapes");
    Ok(TrainRun {
        initial_loss,
        epoch_losses,
        stopped_early,
    })
}

/// The loss of `model` on all of `x` against `t`.
fn batch_loss(
    model: &Sequential<f32>,
    x: &Tensor<f32>,
    t: &Tensor<f32>,
    loss: Loss,
) -> Result<f64, TrainError> {
    let mut tape = Tape::new();
    let params: Vec<_> = model
        .params()
        .into_iter()
        .map(|w| tape.constant(w.clone()))
        .collect();
    let (xv, tv) = (tape.input(x.clone()), tape.input(t.clone()));
    let y = model.forward(&mut tape, &params, xv)?;
    let value = record_loss(&mut tape, loss, y, tv)?;
    Ok(tape.value(value).item() as f64)
}

/// Checks that `params[tie.transposed]` is `params[tie.source]^T`.
fn check_tied(params: &[Tensor<f32>], tie: Tie) -> Result<(), TrainError> {
    if params[tie.transposed] != params[tie.source].transpose() {
        return Err(TrainError::Config(format!(
            "parameter {} must start as the transpose of parameter {}",
            tie.transposed, tie.source
        )));
    }
    Ok(())
}

/// `grads[source] += grads[transposed]^T`: the gradient of a weight `W` used as `W` and as
/// `W^T` is the sum of both uses' gradients.
fn fold_tied_gradient(grads: &mut [Tensor<f32>], tie: Tie) {
    let copy = grads[tie.transposed].transpose();
    grads[tie.source].add_assign(&copy);
}

/// AdamW over the free parameters: all of them, except the transposed copy of a [`Tie`],
/// whose gradient is added into its source's (the chain rule for a weight used twice) and
/// whose value is set from the source after every step.
struct TiedUpdate {
    opt: AdamW<f32>,
    tie: Option<Tie>,
    /// The free parameters' gradients, in order (reused).
    free_grads: Vec<Tensor<f32>>,
}

impl TiedUpdate {
    fn new(params: &[Tensor<f32>], tie: Option<Tie>, config: &TrainConfig) -> Self {
        let shapes: Vec<Vec<usize>> = params
            .iter()
            .enumerate()
            .filter(|&(i, _)| tie.is_none_or(|t| i != t.transposed))
            .map(|(_, p)| p.shape().to_vec())
            .collect();
        let opt = AdamW::new(
            AdamWConfig {
                lr: config.lr,
                weight_decay: config.weight_decay,
                ..AdamWConfig::default()
            },
            &shapes,
        );
        Self {
            opt,
            tie,
            free_grads: Vec::new(),
        }
    }

    fn step(&mut self, lr: f64, params: &mut [Tensor<f32>], grads: &mut [Tensor<f32>]) {
        let Some(tie) = self.tie else {
            self.opt.step(lr, params, grads);
            return;
        };
        fold_tied_gradient(grads, tie);
        let skip = tie.transposed;
        self.free_grads.clear();
        self.free_grads.extend(
            grads
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, g)| g.clone()),
        );
        let free_params = params
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, p)| p);
        self.opt.step_iter(lr, free_params, &self.free_grads);
        params[tie.transposed] = params[tie.source].transpose();
    }
}

/// The toy `kind` from `seed`, trained and checked.
///
/// Tries the training seeds [`training_seeds`]`(seed)` (`1000 seed`, `1000 seed + 1`, ..; at
/// most `config.max_seeds`) and keeps the first model that represents every feature (see
/// [`crate::models::check`]), or, if none does, the one whose worst feature is best. With
/// `config.finish_kept`, a kept model that stopped early is then trained again from its seed
/// for the full `config.epochs` (see [`TrainConfig::finish_kept`]). The report records every
/// run and the choice. The target (`A` of a linear target) and the check samples come from
/// `seed` alone. `tms-parallel` is three copies of one `tms` toy trained this way from
/// `seed`, assembled block-diagonally (the authors' construction).
pub fn train_toy(
    kind: ToyKind,
    seed: u64,
    config: &TrainConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ToyModel, TrainError> {
    config.validate()?;
    if kind == ToyKind::TmsParallel {
        return train_parallel_tms(seed, config, progress);
    }
    let (target, data) = (kind.target(seed), kind.data());
    let toy = Toy {
        kind,
        seed,
        target: &target,
        data: &data,
    };
    let mut attempts = Vec::new();
    let mut models = Vec::new();
    for s in training_seeds(seed).take(config.max_seeds) {
        let (model, attempt) = toy.attempt(s, config, progress)?;
        let done = attempt.check.represents_all;
        attempts.push(attempt);
        models.push(model);
        if done {
            break;
        }
    }
    let (mut chosen, mut choice) = choose(&attempts);
    let mut model = models.swap_remove(chosen);
    if config.finish_kept && attempts[chosen].stopped_early {
        let full_config = TrainConfig {
            early_stop: None,
            ..config.clone()
        };
        let (full, attempt) = toy.attempt(attempts[chosen].seed, &full_config, progress)?;
        let kept_all = attempts[chosen].check.represents_all;
        if attempt.check.represents_all || !kept_all {
            choice += &format!("; then trained again for the full {} epochs", config.epochs);
            model = full;
            chosen = attempts.len();
        } else {
            choice += &format!(
                "; trained again for the full {} epochs, it lost a feature, so the early-stopped \
                 model is kept",
                config.epochs
            );
        }
        attempts.push(attempt);
    }
    let report = ToyReport {
        kind,
        seed,
        chosen_seed: Some(attempts[chosen].seed),
        check: attempts[chosen].check.clone(),
        attempts,
        choice,
        blocks: Vec::new(),
    };
    Ok(ToyModel {
        kind,
        model,
        target,
        data,
        report,
    })
}

/// What `train_toy` holds fixed across its training runs.
struct Toy<'a> {
    kind: ToyKind,
    seed: u64,
    target: &'a Target,
    data: &'a DataSpec,
}

impl Toy<'_> {
    /// One training run from the training seed `s`, checked on the toy's check samples.
    fn attempt(
        &self,
        s: u64,
        config: &TrainConfig,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(Sequential<f32>, Attempt), TrainError> {
        let mut model = initialised(self.kind, s);
        let tie = self.kind.tie();
        let run = train(&mut model, tie, self.target, self.data, config, s, progress)?;
        let check = check_model(&model, self.target, self.data, self.seed);
        let attempt = Attempt {
            seed: s,
            epochs_run: run.epoch_losses.len(),
            stopped_early: run.stopped_early,
            initial_loss: run.initial_loss,
            final_loss: run.epoch_losses.last().copied().unwrap_or(run.initial_loss),
            check,
        };
        Ok((model, attempt))
    }
}

/// The index of the attempt to keep, and why, in words.
fn choose(attempts: &[Attempt]) -> (usize, String) {
    let last = attempts.len() - 1;
    if attempts[last].check.represents_all {
        let why = format!(
            "seed {}: the first seed whose model represents every feature (unexplained \
             fraction below {REPRESENTED_BELOW} for each; worst {:.3})",
            attempts[last].seed,
            attempts[last].check.worst_unexplained()
        );
        return (last, why);
    }
    let worst = |a: &Attempt| a.check.worst_unexplained();
    let best = (0..attempts.len())
        .min_by(|&i, &j| worst(&attempts[i]).total_cmp(&worst(&attempts[j])))
        .expect("at least one attempt");
    let why = format!(
        "no seed of {} tried represents every feature; kept seed {}, whose worst feature has \
         the lowest unexplained fraction ({:.3})",
        attempts.len(),
        attempts[best].seed,
        worst(&attempts[best])
    );
    (best, why)
}

/// `tms-parallel`: one `tms` toy, trained and chosen as [`train_toy`] does, three times side
/// by side.
fn train_parallel_tms(
    seed: u64,
    config: &TrainConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ToyModel, TrainError> {
    let kind = ToyKind::TmsParallel;
    let block = train_toy(ToyKind::Tms, seed, config, progress)?;
    let copies = [block.model.clone(), block.model.clone(), block.model];
    let model = parallel_tms(&copies);
    let (target, data) = (kind.target(seed), kind.data());
    let check = check_model(&model, &target, &data, seed);
    let report = ToyReport {
        kind,
        seed,
        attempts: Vec::new(),
        chosen_seed: None,
        choice: format!(
            "three copies of one tms block (its {}) assembled block-diagonally",
            block.report.choice
        ),
        check,
        blocks: vec![block.report],
    };
    Ok(ToyModel {
        kind,
        model,
        target,
        data,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stop_waits_for_a_flat_window() {
        let stop = EarlyStop {
            window: 3,
            rel: 0.01,
        };
        // Too few epochs to compare.
        assert!(!stop.converged(&[1.0, 0.9, 0.8]));
        // The last 3 improve on the best before them (1.0) by 20%: keep going.
        assert!(!stop.converged(&[1.0, 0.9, 0.85, 0.8]));
        // Best of the last 3 is 0.995 >= 0.99 * 1.0: converged.
        assert!(stop.converged(&[1.0, 1.01, 0.995, 1.0]));
        // A noisy window whose best dips 2% below: not converged.
        assert!(!stop.converged(&[1.0, 1.1, 0.98, 1.05]));
    }

    #[test]
    fn bad_configs_are_named() {
        assert!(TrainConfig::default().validate().is_ok());
        for (config, field) in [
            (
                TrainConfig {
                    batch_size: 0,
                    ..TrainConfig::default()
                },
                "batch_size",
            ),
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..TrainConfig::default()
                },
                "lr",
            ),
            (
                TrainConfig {
                    max_seeds: 0,
                    ..TrainConfig::default()
                },
                "max_seeds",
            ),
            (
                TrainConfig {
                    max_seeds: 1001,
                    ..TrainConfig::default()
                },
                "max_seeds",
            ),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn dense_and_tape_backends_train_to_the_same_weights() {
        // 40 AdamW steps (5 epochs of 8 batches of 32): the backends agree step by step to
        // f32 rounding; AdamW divides by sqrt(v), which can amplify a tiny gradient difference
        // in a near-zero gradient entry, so the bound is 1e-4 on weights of size ~0.5.
        for kind in [ToyKind::Tms, ToyKind::Squared] {
            let config = TrainConfig {
                epochs: 5,
                samples: 256,
                early_stop: None,
                ..TrainConfig::default()
            };
            let run = |backend| {
                let mut model = initialised(kind, 2);
                let config = TrainConfig {
                    backend,
                    ..config.clone()
                };
                let r = train(
                    &mut model,
                    kind.tie(),
                    &kind.target(0),
                    &kind.data(),
                    &config,
                    2,
                    &mut |_| {},
                )
                .unwrap();
                (model, r)
            };
            let (dense, dense_run) = run(Backend::Dense);
            let (tape, tape_run) = run(Backend::Tape);
            for (a, b) in dense.params().iter().zip(tape.params()) {
                assert!(a.max_abs_diff(b) < 1e-4, "{kind}: {a:?} vs {b:?}");
            }
            for (a, b) in dense_run.epoch_losses.iter().zip(&tape_run.epoch_losses) {
                assert!((a - b).abs() < 1e-5 * b.max(1e-3), "{kind}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_tied_weight_gets_the_gradient_of_both_uses() {
        // y = ReLU((x W^T) W + b) on the tape, W used twice, against the untied model's
        // gradients folded by `fold_tied_gradient`. Same math, different order: 1e-5.
        let kind = ToyKind::Tms;
        let model = initialised(kind, 3);
        let x = crate::data::sample(&kind.data(), 64, &mut tensor::rng(4));
        let t = x.clone();
        let params: Vec<Tensor<f32>> = model.params().into_iter().cloned().collect();
        let mut tape = Tape::new();
        let w = tape.param(params[0].clone());
        let b = tape.param(params[2].clone());
        let (xv, tv) = (tape.input(x.clone()), tape.input(t.clone()));
        let h = tape.matmul_nt(xv, w);
        let z = tape.matmul(h, w);
        let z = tape.add(z, b);
        let y = tape.relu(z);
        let per_row = tape.mse(y, tv);
        let loss = tape.mean_all(per_row);
        let expected = tape.grad(loss, &[w, b]).unwrap();
        let mut mlp = DenseMlp::new(&model).unwrap();
        let mut grads: Vec<Tensor<f32>> = params.iter().map(|p| Tensor::zeros(p.shape())).collect();
        let rows: Vec<usize> = (0..64).collect();
        mlp.loss_and_grads(&params, &x, &t, &rows, Loss::Mse, &mut grads)
            .unwrap();
        fold_tied_gradient(&mut grads, kind.tie().unwrap());
        assert!(
            grads[0].max_abs_diff(&expected[0]) < 1e-5,
            "{:?} vs {:?}",
            grads[0],
            expected[0]
        );
        assert!(grads[2].max_abs_diff(&expected[1]) < 1e-5);
    }

    #[test]
    fn tied_training_keeps_the_tie_and_refuses_an_untied_start() {
        let kind = ToyKind::Tms;
        let config = TrainConfig {
            epochs: 3,
            samples: 512,
            early_stop: None,
            ..TrainConfig::default()
        };
        let mut model = initialised(kind, 5);
        let before = model.params()[0].clone();
        train(
            &mut model,
            kind.tie(),
            &kind.target(0),
            &kind.data(),
            &config,
            5,
            &mut |_| {},
        )
        .unwrap();
        let p = model.params();
        assert_ne!(p[0], &before, "training moved the shared weight");
        assert_eq!(
            p[1],
            &p[0].transpose(),
            "out.weight is hidden.weight^T, exactly"
        );
        let mut untied = initialised(kind, 5);
        let mut params: Vec<Tensor<f32>> = untied.params().into_iter().cloned().collect();
        params[1] = Tensor::zeros(&[5, 2]);
        untied.set_params(params).unwrap();
        let err = train(
            &mut untied,
            kind.tie(),
            &kind.target(0),
            &kind.data(),
            &config,
            5,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("transpose"), "{err}");
    }
}
