//! Training a decomposition (Algorithm 1): epochs over a dataset of inputs, batches with
//! random in-batch references, per-sample gradients at `W0`, a step on the relative
//! reconstruction loss, AdamW with step decay, decoder renormalisation, and per-epoch
//! statistics (loss, reconstruction error, activation fractions `P_act`, dead subnetworks).
//!
//! Randomness: epoch `e` draws its shuffle and its references from the seed's ChaCha stream
//! `e`, so an epoch's randomness does not depend on what came before it, and resuming from a
//! checkpoint repeats exactly what an uninterrupted run would have done.

use crate::config::L3dConfig;
use crate::decomposition::{check_against_model, Decomposition};
use crate::engine::{engine, Engine, Sums};
use crate::error::{L3dError, Result};
use crate::pairs::{check_data, Source};
use crate::par::{all_finite, worth_threads};
use crate::step::MaskRule;
use autodiff::optim::{AdamW, AdamWConfig, StepLr};
use nets::Model;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tensor::{Float, Tensor};

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub lr: f64,
    pub top_k: f64,
    /// Mean over batches of each batch's relative reconstruction error (the training loss).
    pub loss: f64,
    /// `sum |g - g_hat|^2 / sum |g|^2` over every pair of the epoch.
    pub reconstruction_error: f64,
    /// For each subnetwork, the fraction of samples in which it was in the top k.
    pub p_act: Vec<f64>,
    /// Subnetworks that were never in the top k during the epoch.
    pub dead: usize,
    /// Batches skipped because every pair's gradient was zero (nothing to reconstruct).
    pub skipped_batches: usize,
}

/// The generator of epoch `epoch`: the seed's ChaCha stream number `epoch`.
pub fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

/// The training state: everything a checkpoint needs to resume exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState<T: Float> {
    pub config: L3dConfig,
    pub decomposition: Decomposition<T>,
    pub optimizer: AdamW<T>,
    /// The next epoch to run.
    pub epoch: usize,
    pub history: Vec<EpochStats>,
    /// Fingerprint of the training data, checked on resume.
    pub data_fingerprint: u64,
}

/// A hash of the source's data, to recognise it on resume.
fn source_fingerprint<T: Float>(source: &Source<T>) -> u64 {
    match source {
        Source::Model { data, .. } => fingerprint(data),
        Source::Gradients(g) => g.iter().fold(0, |h, t| h ^ fingerprint(t).rotate_left(1)),
    }
}

/// Trains a decomposition on a [`Source`] of per-sample gradients.
///
/// Each step runs on one [`Engine`], chosen by `config.path` (see [`crate::engine`]); the
/// trainer holds it and never forks on the path itself.
pub struct Trainer<'a, T: Float> {
    source: Source<'a, T>,
    pub state: TrainState<T>,
    engine: Box<dyn Engine<T> + 'a>,
}

impl<'a, T: Float> Trainer<'a, T> {
    /// A fresh decomposition of `model` (see [`Decomposition::new`]) and optimiser, to be
    /// trained on pairs of rows of `data: [N, d_in]`.
    pub fn new(model: &'a dyn Model<T>, config: L3dConfig, data: &'a Tensor<T>) -> Result<Self> {
        check_model(model)?;
        check_data(model, data)?;
        let decomposition = Decomposition::new(model, &config)?;
        Self::start(Source::Model { model, data }, config, decomposition)
    }

    /// A fresh decomposition trained on given per-sample gradients `grads[t]: [N, ..shape_t]`.
    pub fn on_gradients(
        grads: &'a [Tensor<T>],
        names: &[String],
        config: L3dConfig,
    ) -> Result<Self> {
        let shapes: Vec<Vec<usize>> = grads.iter().map(|g| g.shape()[1..].to_vec()).collect();
        let n = grads.first().map_or(0, |g| g.shape()[0]);
        if grads.iter().any(|g| g.shape().first() != Some(&n)) || n == 0 {
            return Err(L3dError::Gradients(
                "the gradient tensors must share a non-zero leading sample axis".into(),
            ));
        }
        let index = (0..grads.len()).collect();
        let decomposition = Decomposition::for_shapes(names, &shapes, index, &config)?;
        Self::start(Source::Gradients(grads), config, decomposition)
    }

    fn start(
        source: Source<'a, T>,
        config: L3dConfig,
        decomposition: Decomposition<T>,
    ) -> Result<Self> {
        let shapes: Vec<Vec<usize>> = decomposition
            .factors()
            .iter()
            .map(|f| f.shape().to_vec())
            .collect();
        let optimizer = AdamW::new(
            AdamWConfig {
                lr: config.lr,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
            &shapes,
        );
        let engine = engine(source, &decomposition, &config)?;
        Ok(Self {
            state: TrainState {
                config,
                decomposition,
                optimizer,
                epoch: 0,
                history: Vec::new(),
                data_fingerprint: source_fingerprint(&source),
            },
            source,
            engine,
        })
    }

    /// Resumes from a saved state; the model and data must be the ones it was trained on.
    pub fn resume(
        model: &'a dyn Model<T>,
        state: TrainState<T>,
        data: &'a Tensor<T>,
    ) -> Result<Self> {
        check_model(model)?;
        check_data(model, data)?;
        if fingerprint(data) != state.data_fingerprint {
            return Err(L3dError::Data(
                "the data differs from the data the checkpoint was trained on".into(),
            ));
        }
        check_against_model(&state.decomposition, model)?;
        let source = Source::Model { model, data };
        let engine = engine(source, &state.decomposition, &state.config)?;
        Ok(Self {
            source,
            state,
            engine,
        })
    }

    /// Time spent in each phase of the fast path's steps since the last call (zero on the
    /// tape path).
    pub fn take_fast_timings(&mut self) -> crate::fast::Timings {
        self.engine.take_timings()
    }

    pub fn decomposition(&self) -> &Decomposition<T> {
        &self.state.decomposition
    }

    pub fn history(&self) -> &[EpochStats] {
        &self.state.history
    }

    /// Runs the remaining epochs, calling `on_epoch` after each; it returns `false` to stop
    /// early (the state stays consistent, ready to checkpoint).
    pub fn train(&mut self, mut on_epoch: impl FnMut(&EpochStats) -> bool) -> Result<()> {
        while self.state.epoch < self.state.config.epochs {
            let stats = self.run_epoch()?;
            if !on_epoch(&stats) {
                break;
            }
        }
        Ok(())
    }

    /// One epoch over the data.
    pub fn run_epoch(&mut self) -> Result<EpochStats> {
        let config = self.state.config.clone();
        let epoch = self.state.epoch;
        let mut rng = epoch_rng(config.seed, epoch);
        let mut order: Vec<usize> = (0..self.source.rows()).collect();
        order.shuffle(&mut rng);
        let schedule = StepLr {
            base: config.lr,
            gamma: config.lr_gamma,
            step: config.lr_step,
        };
        let (lr, top_k) = (schedule.at(epoch), config.top_k_at(epoch));
        let n_v = self.state.decomposition.n_v;
        let mut sums = Sums::new(n_v);
        let rule = MaskRule::top_k_for(&config, top_k);
        // A lone leftover sample has no partner in its batch: it is skipped.
        let kept = |rows: &&[usize]| rows.len() >= config.reference.min_batch();
        let mut batches = |trainer: &mut Self, sums: &mut Sums| -> Result<()> {
            let mut chunks = order.chunks(config.batch_size).enumerate().peekable();
            while let Some((batch, rows)) = chunks.next() {
                if !kept(&rows) {
                    continue;
                }
                let next = chunks.peek().map(|&(_, r)| r).filter(kept);
                trainer.batch_step((rows, next), rule, lr, &mut rng, sums, (epoch, batch))?;
            }
            Ok(())
        };
        if self.engine.runs_parallel(config.batch_size) {
            // The whole loop on one of rayon's threads, so the steps' parallel work goes to
            // the workers' own queues instead of being injected into the pool each time.
            rayon::scope(|_| batches(self, &mut sums))?;
        } else {
            batches(self, &mut sums)?;
        }
        let p_act = sums.p_act(sums.samples);
        let stats = EpochStats {
            epoch,
            lr,
            top_k,
            loss: sums.loss_sum / sums.batches.max(1) as f64,
            reconstruction_error: sums.reconstruction_error(),
            dead: p_act.iter().filter(|&&p| p == 0.0).count(),
            p_act,
            skipped_batches: sums.skipped,
        };
        self.state.history.push(stats.clone());
        self.state.epoch += 1;
        Ok(stats)
    }

    /// One batch (`rows`, and the batch after it, `next`): a step, its statistics, and the
    /// update.
    fn batch_step(
        &mut self,
        (rows, next): (&[usize], Option<&[usize]>),
        rule: MaskRule<T>,
        lr: f64,
        rng: &mut ChaCha8Rng,
        sums: &mut Sums,
        (epoch, batch): (usize, usize),
    ) -> Result<()> {
        let state = &mut self.state;
        let Some(out) = self
            .engine
            .step(&state.decomposition, rows, rng, rule, true)?
        else {
            sums.skip(rows.len());
            return Ok(());
        };
        check_finite(out.loss(), out.factor_grads, out.grads_finite, epoch, batch)?;
        sums.add(&out);
        let (d, optimizer) = (&mut state.decomposition, &mut state.optimizer);
        self.engine.update(d, optimizer, lr, next, rng)
    }
}

/// An error if the loss or a factor gradient is not finite. `known_finite`: the gradients
/// were already checked (the fast path checks each block as it writes it), so they are
/// scanned only to name the bad value.
fn check_finite<T: Float>(
    loss: T,
    factor_grads: &[Tensor<T>],
    known_finite: bool,
    epoch: usize,
    batch: usize,
) -> Result<()> {
    if !loss.is_finite() {
        return Err(L3dError::NonFinite {
            what: "the loss",
            value: loss.to_string(),
            epoch,
            batch,
        });
    }
    // A long scan runs in parallel (a yes/no answer, the same for any thread count); the bad
    // value is then looked up in order.
    let entries: usize = factor_grads.iter().map(|g| g.numel()).sum();
    let finite = if known_finite {
        true
    } else if worth_threads(entries, 1 << 16) {
        factor_grads.par_iter().all(|g| all_finite(g.data()))
    } else {
        factor_grads.iter().all(|g| all_finite(g.data()))
    };
    if !finite {
        let g = factor_grads
            .iter()
            .find(|g| !g.all_finite())
            .expect("some gradient is not finite");
        let bad = g.data().iter().find(|v| !v.is_finite()).copied();
        return Err(L3dError::NonFinite {
            what: "a factor gradient",
            value: format!("{bad:?}"),
            epoch,
            batch,
        });
    }
    Ok(())
}

/// Every parameter of the model finite, or an error naming the first bad tensor and index.
pub fn check_model<T: Float>(model: &dyn Model<T>) -> Result<()> {
    for (name, p) in model.param_names().iter().zip(model.params()) {
        if let Some(i) = p.data().iter().position(|v| !v.is_finite()) {
            return Err(L3dError::Model(format!(
                "parameter '{name}' has a non-finite value ({}) at flat index {i}",
                p.data()[i]
            )));
        }
    }
    Ok(())
}

/// A hash of the data's shape and bits (FNV-1a), to recognise the same data on resume.
pub fn fingerprint<T: Float>(data: &Tensor<T>) -> u64 {
    let shape = data.shape().iter().map(|&d| d as u64);
    nets::io::fnv1a(shape.chain(data.data().iter().map(|v| v.to_f64().to_bits())))
}
