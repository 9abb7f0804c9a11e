//! Training a decomposition (Algorithm 1): epochs over a dataset of inputs, batches with
//! random in-batch references, per-sample gradients at `W0`, a step on the relative
//! reconstruction loss, AdamW with step decay, decoder renormalisation, and per-epoch
//! statistics (loss, reconstruction error, activation fractions `P_act`, dead subnetworks).
//!
//! Randomness: epoch `e` draws its shuffle and its references from the seed's ChaCha stream
//! `e`, so an epoch's randomness does not depend on what came before it, and resuming from a
//! checkpoint repeats exactly what an uninterrupted run would have done.

use crate::config::{L3dConfig, StepPath};
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::fast::{all_finite, renormalise_decoder, FastStep, RenormScratch};
use crate::pairs::{
    check_data, draw_reference_partners, per_sample_gradients_at, reference_outputs,
};
use crate::step::{tape_step, MaskRule, StepResult};
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

/// Where a batch's per-sample gradients come from.
#[derive(Clone, Copy)]
pub enum Source<'a, T: Float> {
    /// Pairs of rows of `data: [N, d_in]` through the model (Algorithm 1).
    Model {
        model: &'a dyn Model<T>,
        data: &'a Tensor<T>,
    },
    /// Given per-sample gradients, one tensor `[N, ..shape]` per decomposed tensor (row `i`
    /// of each is sample `i`). For testing the decomposition on its own.
    Gradients(&'a [Tensor<T>]),
}

impl<T: Float> Source<'_, T> {
    fn rows(&self) -> usize {
        match self {
            Source::Model { data, .. } => data.shape()[0],
            Source::Gradients(g) => g[0].shape()[0],
        }
    }

    fn fingerprint(&self) -> u64 {
        match self {
            Source::Model { data, .. } => fingerprint(data),
            Source::Gradients(g) => g.iter().fold(0, |h, t| h ^ fingerprint(t).rotate_left(1)),
        }
    }
}

/// Trains a decomposition on a [`Source`] of per-sample gradients.
///
/// `config.path` chooses how each step is computed: [`StepPath::Tape`] runs [`tape_step`] on
/// dense per-sample gradients; [`StepPath::Fast`] runs a [`FastStep`] (built on the first
/// batch and reused) and renormalises the decoder without allocating. Both draw the same
/// random numbers in the same order, so they train the same decomposition up to rounding.
pub struct Trainer<'a, T: Float> {
    source: Source<'a, T>,
    pub state: TrainState<T>,
    fast: Option<FastStep<'a, T>>,
    renorm: RenormScratch<T>,
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
            return Err(L3dError::Mismatch(
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
        Ok(Self {
            state: TrainState {
                config,
                decomposition,
                optimizer,
                epoch: 0,
                history: Vec::new(),
                data_fingerprint: source.fingerprint(),
            },
            source,
            fast: None,
            renorm: RenormScratch::default(),
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
            return Err(L3dError::Mismatch(
                "the data differs from the data the checkpoint was trained on".into(),
            ));
        }
        crate::persist::check_against_model(&state.decomposition, model)?;
        Ok(Self {
            source: Source::Model { model, data },
            state,
            fast: None,
            renorm: RenormScratch::default(),
        })
    }

    /// Time spent in each phase of the fast path's steps since the last call (zero before the
    /// first fast step, or on the tape path).
    pub fn take_fast_timings(&mut self) -> crate::fast::Timings {
        self.fast
            .as_mut()
            .map(FastStep::take_timings)
            .unwrap_or_default()
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
        let mut acc = EpochAccumulator::new(n_v);
        // A lone leftover sample has no partner in its batch: it is skipped.
        let kept = |rows: &&[usize]| rows.len() >= config.reference.min_batch();
        let mut batches = |trainer: &mut Self, acc: &mut EpochAccumulator| -> Result<()> {
            let mut chunks = order.chunks(config.batch_size).enumerate().peekable();
            while let Some((batch, rows)) = chunks.next() {
                if !kept(&rows) {
                    continue;
                }
                let at = (epoch, batch);
                match config.path {
                    StepPath::Tape => {
                        trainer.tape_batch_step(rows, top_k, lr, &mut rng, acc, at)?
                    }
                    StepPath::Fast => {
                        let next = chunks.peek().map(|&(_, r)| r).filter(kept);
                        let step = (rows, next);
                        trainer.fast_batch_step(step, top_k, lr, &mut rng, acc, at)?
                    }
                }
            }
            Ok(())
        };
        if self.parallel_steps() {
            // The whole loop on one of rayon's threads, so the steps' parallel work goes to
            // the workers' own queues instead of being injected into the pool each time.
            rayon::scope(|_| batches(self, &mut acc))?;
        } else {
            batches(self, &mut acc)?;
        }
        let stats = acc.finish(epoch, lr, top_k);
        self.state.history.push(stats.clone());
        self.state.epoch += 1;
        Ok(stats)
    }

    /// Whether the fast path's steps run in parallel (see [`FastStep::runs_parallel`]).
    fn parallel_steps(&self) -> bool {
        let b = self.state.config.batch_size;
        self.fast.as_ref().is_some_and(|f| f.runs_parallel(b))
    }

    /// The tape path's batch: dense per-sample gradients, [`tape_step`], AdamW, decoder
    /// renormalisation, statistics.
    fn tape_batch_step(
        &mut self,
        rows: &[usize],
        top_k: f64,
        lr: f64,
        rng: &mut ChaCha8Rng,
        acc: &mut EpochAccumulator,
        (epoch, batch): (usize, usize),
    ) -> Result<()> {
        let Some(step) = self.batch_step(rows, top_k, rng)? else {
            acc.skipped += 1;
            return Ok(());
        };
        check_finite(step.loss(), &step.factor_grads, false, epoch, batch)?;
        let d = &mut self.state.decomposition;
        self.state
            .optimizer
            .step_refs(lr, d.factors_mut(), &step.factor_grads);
        d.renormalise_decoder();
        acc.add(step.loss(), step.sq_error, step.sq_norm, step.mask.data());
        Ok(())
    }

    /// The fast path's batch: a [`FastStep`], AdamW, decoder renormalisation, statistics. No
    /// allocation once the step's buffers exist (for models with an MLP view, or given
    /// gradients).
    fn fast_batch_step(
        &mut self,
        (rows, next): (&[usize], Option<&[usize]>),
        top_k: f64,
        lr: f64,
        rng: &mut ChaCha8Rng,
        acc: &mut EpochAccumulator,
        (epoch, batch): (usize, usize),
    ) -> Result<()> {
        if self.fast.is_none() {
            let (d, config) = (&self.state.decomposition, &self.state.config);
            self.fast = Some(match self.source {
                Source::Model { model, data } => FastStep::new(model, data, d, config)?,
                Source::Gradients(grads) => FastStep::on_gradients(grads, d, config)?,
            });
        }
        let fast = self.fast.as_mut().expect("built above");
        let state = &mut self.state;
        let rule = MaskRule::top_k_for(&state.config, top_k);
        // Parallel steps of an MLP compute the next batch's per-sample gradients beside this
        // step's update (see `FastStep::prefetch_alongside`).
        let pipeline = next.is_some_and(|n| fast.uses_mlp() && fast.runs_parallel(n.len()));
        let Some(out) = fast.run(&state.decomposition, rows, rng, rule, true)? else {
            acc.skipped += 1;
            return Ok(());
        };
        check_finite(out.loss(), out.factor_grads, out.grads_finite, epoch, batch)?;
        acc.add(out.loss(), out.sq_error, out.sq_norm, out.mask);
        let (d, optimizer, renorm) = (
            &mut state.decomposition,
            &mut state.optimizer,
            &mut self.renorm,
        );
        let mut update = |grads: &[Tensor<T>]| {
            optimizer.step_iter(lr, d.factors_iter_mut(), grads);
            renormalise_decoder(d, renorm);
        };
        match next.filter(|_| pipeline) {
            // The next batch's per-sample gradients beside this update.
            Some(next) => fast.prefetch_alongside(next, rng, update)?,
            None => update(out.factor_grads),
        }
        Ok(())
    }

    /// Per-sample gradients of the batch `rows` and one step on them; `None` if every
    /// gradient of the batch is zero.
    fn batch_step(
        &self,
        rows: &[usize],
        top_k: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<StepResult<T>>> {
        let grads = match self.source {
            Source::Model { model, data } => {
                pair_gradients(model, &self.state, &data.gather_rows(rows), rng)?
            }
            Source::Gradients(all) => all.iter().map(|g| g.gather_rows(rows)).collect(),
        };
        if grads.iter().all(|g| g.sum_squares() == T::zero()) {
            return Ok(None);
        }
        Ok(Some(tape_step(
            &self.state.decomposition,
            &grads,
            MaskRule::top_k_for(&self.state.config, top_k),
        )?))
    }
}

/// Draws references for the batch `x: [B, d_in]` and returns the dense per-sample gradients.
fn pair_gradients<T: Float>(
    model: &dyn Model<T>,
    state: &TrainState<T>,
    x: &Tensor<T>,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Tensor<T>>> {
    let config = &state.config;
    let y0 = model.evaluate_w0(x)?;
    let mut partners = Vec::new();
    draw_reference_partners(config.reference, x.shape()[0], rng, &mut partners);
    let r = reference_outputs(&y0, config.reference, config.divergence, &partners);
    let d = &state.decomposition;
    Ok(per_sample_gradients_at(
        model,
        &d.param_index,
        x,
        &r,
        config.divergence,
        &config.positions,
    )?
    .into_iter()
    .map(|g| g.into_dense())
    .collect())
}

/// Sums over the batches of an epoch.
struct EpochAccumulator {
    loss_sum: f64,
    batches: usize,
    sq_error: f64,
    sq_norm: f64,
    active: Vec<f64>,
    samples: usize,
    skipped: usize,
}

impl EpochAccumulator {
    fn new(n_v: usize) -> Self {
        Self {
            loss_sum: 0.0,
            batches: 0,
            sq_error: 0.0,
            sq_norm: 0.0,
            active: vec![0.0; n_v],
            samples: 0,
            skipped: 0,
        }
    }

    /// One batch's loss, `sum |g - g_hat|^2`, `sum |g|^2` and mask (`[B, n_v]`, flat).
    fn add<T: Float>(&mut self, loss: T, sq_error: T, sq_norm: T, mask: &[T]) {
        self.loss_sum += loss.to_f64();
        self.batches += 1;
        self.sq_error += sq_error.to_f64();
        self.sq_norm += sq_norm.to_f64();
        let n_v = self.active.len();
        for row in mask.chunks_exact(n_v) {
            for (a, m) in self.active.iter_mut().zip(row) {
                *a += m.to_f64();
            }
        }
        self.samples += mask.len() / n_v;
    }

    fn finish(self, epoch: usize, lr: f64, top_k: f64) -> EpochStats {
        let samples = self.samples.max(1) as f64;
        let p_act: Vec<f64> = self.active.iter().map(|a| a / samples).collect();
        EpochStats {
            epoch,
            lr,
            top_k,
            loss: self.loss_sum / self.batches.max(1) as f64,
            reconstruction_error: self.sq_error / self.sq_norm.max(f64::MIN_POSITIVE),
            dead: p_act.iter().filter(|&&p| p == 0.0).count(),
            p_act,
            skipped_batches: self.skipped,
        }
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
    } else if crate::fast::worth_threads(entries, 1 << 16) {
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
            return Err(L3dError::Mismatch(format!(
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
