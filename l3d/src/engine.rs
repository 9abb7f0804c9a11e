//! One step, two engines. An [`Engine`] computes one L3D step on a batch (per-sample gradients
//! of the batch's pairs, encode, batch top-k, decode, the relative loss and, for training, its
//! gradient with respect to every factor) and applies the optimiser's update. Two engines sit
//! behind it:
//!
//! - [`TapeEngine`]: dense per-sample gradients ([`crate::pairs::pair_gradients`]) and
//!   [`tape_step`], the step recorded on the tape. The reference, read like the paper.
//! - [`FastEngine`]: a [`FastStep`], dense layers' gradients kept factored in reused buffers,
//!   and the decoder renormalised without allocating. Tested against the tape engine.
//!
//! Both draw the same random numbers in the same order, so they train the same decomposition
//! up to rounding. [`crate::train::Trainer`] and [`crate::measure::evaluate`] hold one engine,
//! chosen once by [`engine`] from `L3dConfig::path`, and never fork on the path themselves;
//! [`Sums`] adds up the batches' results for both.

use crate::config::{L3dConfig, StepPath};
use crate::decomposition::Decomposition;
use crate::error::Result;
use crate::fast::{renormalise_decoder, FastStep, RenormScratch, Timings};
use crate::pairs::{pair_gradients, Source};
use crate::step::{tape_step, MaskRule, StepResult};
use autodiff::optim::AdamW;
use rand_chacha::ChaCha8Rng;
use tensor::{Float, Tensor};

/// What one step computed; borrows the engine's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a, T: Float> {
    /// `sum_i |g_i - g_hat_i|^2`.
    pub sq_error: T,
    /// `S = sum_i |g_i|^2`.
    pub sq_norm: T,
    /// `[B, n_v]` row-major, 1 where a coefficient was kept.
    pub mask: &'a [T],
    /// In the order of [`Decomposition::factors`]; empty when the step ran without backward.
    pub factor_grads: &'a [Tensor<T>],
    /// Whether every factor gradient is already known to be finite (`false`: not checked).
    pub grads_finite: bool,
}

impl<T: Float> Outcome<'_, T> {
    /// The relative reconstruction error of the batch.
    pub fn loss(&self) -> T {
        self.sq_error / self.sq_norm
    }
}

/// One L3D step on a batch, and the optimiser's update from it.
pub trait Engine<T: Float>: Send {
    /// The step on the batch `rows` of the source, references drawn from `rng`; with
    /// `backward` the gradient of the loss with respect to every factor. `None` when every
    /// per-sample gradient of the batch is zero (nothing to reconstruct).
    fn step(
        &mut self,
        d: &Decomposition<T>,
        rows: &[usize],
        rng: &mut ChaCha8Rng,
        rule: MaskRule<T>,
        backward: bool,
    ) -> Result<Option<Outcome<'_, T>>>;

    /// AdamW at `lr` on the last step's factor gradients, then the decoder renormalised.
    /// `next`: the batch the next step will take, whose per-sample gradients an engine may
    /// compute beside the update (drawing from `rng` what its step would draw).
    fn update(
        &mut self,
        d: &mut Decomposition<T>,
        optimizer: &mut AdamW<T>,
        lr: f64,
        next: Option<&[usize]>,
        rng: &mut ChaCha8Rng,
    ) -> Result<()>;

    /// Whether steps of `b` samples run in parallel (rayon's tasks).
    fn runs_parallel(&self, b: usize) -> bool;

    /// The time spent in each phase since the last call (zero for the tape engine).
    fn take_timings(&mut self) -> Timings;
}

/// The engine `config.path` names, for decompositions laid out like `d`.
pub fn engine<'a, T: Float>(
    source: Source<'a, T>,
    d: &Decomposition<T>,
    config: &L3dConfig,
) -> Result<Box<dyn Engine<T> + 'a>> {
    Ok(match config.path {
        StepPath::Tape => Box::new(TapeEngine::new(source, config)),
        StepPath::Fast => Box::new(FastEngine::new(source, d, config)?),
    })
}

/// Dense per-sample gradients and the step recorded on the tape.
pub struct TapeEngine<'a, T: Float> {
    source: Source<'a, T>,
    config: L3dConfig,
    /// The last step's result, until its update.
    last: Option<StepResult<T>>,
}

impl<'a, T: Float> TapeEngine<'a, T> {
    pub fn new(source: Source<'a, T>, config: &L3dConfig) -> Self {
        Self {
            source,
            config: config.clone(),
            last: None,
        }
    }

    /// The batch's dense per-sample gradients, one tensor `[B, ..shape]` per decomposed tensor.
    fn gradients(
        &self,
        d: &Decomposition<T>,
        rows: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Tensor<T>>> {
        Ok(match self.source {
            Source::Model { model, data } => {
                let x = data.gather_rows(rows);
                let (reference, divergence) = (self.config.reference, self.config.divergence);
                pair_gradients(
                    model,
                    &d.param_index,
                    &x,
                    reference,
                    divergence,
                    &self.config.positions,
                    rng,
                )?
                .into_iter()
                .map(|g| g.into_dense())
                .collect()
            }
            Source::Gradients(all) => all.iter().map(|g| g.gather_rows(rows)).collect(),
        })
    }
}

impl<T: Float> Engine<T> for TapeEngine<'_, T> {
    fn step(
        &mut self,
        d: &Decomposition<T>,
        rows: &[usize],
        rng: &mut ChaCha8Rng,
        rule: MaskRule<T>,
        _backward: bool,
    ) -> Result<Option<Outcome<'_, T>>> {
        self.last = None;
        let grads = self.gradients(d, rows, rng)?;
        if grads.iter().all(|g| g.sum_squares() == T::zero()) {
            return Ok(None);
        }
        let step = self.last.insert(tape_step(d, &grads, rule)?);
        Ok(Some(Outcome {
            sq_error: step.sq_error,
            sq_norm: step.sq_norm,
            mask: step.mask.data(),
            factor_grads: &step.factor_grads,
            grads_finite: false,
        }))
    }

    fn update(
        &mut self,
        d: &mut Decomposition<T>,
        optimizer: &mut AdamW<T>,
        lr: f64,
        _next: Option<&[usize]>,
        _rng: &mut ChaCha8Rng,
    ) -> Result<()> {
        if let Some(step) = self.last.take() {
            optimizer.step_refs(lr, d.factors_mut(), &step.factor_grads);
            d.renormalise_decoder();
        }
        Ok(())
    }

    fn runs_parallel(&self, _b: usize) -> bool {
        false
    }

    fn take_timings(&mut self) -> Timings {
        Timings::default()
    }
}

/// A [`FastStep`] and the decoder renormalised in reused buffers.
pub struct FastEngine<'a, T: Float> {
    fast: FastStep<'a, T>,
    renorm: RenormScratch<T>,
}

impl<'a, T: Float> FastEngine<'a, T> {
    pub fn new(source: Source<'a, T>, d: &Decomposition<T>, config: &L3dConfig) -> Result<Self> {
        Ok(Self {
            fast: FastStep::from_source(source, d, config)?,
            renorm: RenormScratch::default(),
        })
    }
}

impl<T: Float> Engine<T> for FastEngine<'_, T> {
    fn step(
        &mut self,
        d: &Decomposition<T>,
        rows: &[usize],
        rng: &mut ChaCha8Rng,
        rule: MaskRule<T>,
        backward: bool,
    ) -> Result<Option<Outcome<'_, T>>> {
        Ok(self
            .fast
            .run(d, rows, rng, rule, backward)?
            .map(|out| Outcome {
                sq_error: out.sq_error,
                sq_norm: out.sq_norm,
                mask: out.mask,
                factor_grads: out.factor_grads,
                grads_finite: out.grads_finite,
            }))
    }

    fn update(
        &mut self,
        d: &mut Decomposition<T>,
        optimizer: &mut AdamW<T>,
        lr: f64,
        next: Option<&[usize]>,
        rng: &mut ChaCha8Rng,
    ) -> Result<()> {
        let fast = &mut self.fast;
        let renorm = &mut self.renorm;
        let mut update = |grads: &[Tensor<T>]| {
            optimizer.step_iter(lr, d.factors_iter_mut(), grads);
            renormalise_decoder(d, renorm);
        };
        // Parallel steps of a model with a hand-written pass (an MLP, a CNN) compute the next
        // batch's per-sample gradients beside this update (see `FastStep::prefetch_alongside`).
        let pipeline = |n: &&[usize]| fast.uses_hand_written_pass() && fast.runs_parallel(n.len());
        match next.filter(pipeline) {
            Some(next) => fast.prefetch_alongside(next, rng, update),
            None => {
                update(fast.factor_grads());
                Ok(())
            }
        }
    }

    fn runs_parallel(&self, b: usize) -> bool {
        self.fast.runs_parallel(b)
    }

    fn take_timings(&mut self) -> Timings {
        self.fast.take_timings()
    }
}

/// Sums over the batches of an epoch or an evaluation.
#[derive(Debug, Clone)]
pub struct Sums {
    pub loss_sum: f64,
    /// Batches with a step (not skipped).
    pub batches: usize,
    pub sq_error: f64,
    pub sq_norm: f64,
    /// Per subnetwork, how many samples kept it in the top k.
    pub active: Vec<f64>,
    /// Samples of the batches with a step.
    pub samples: usize,
    /// Batches skipped because every gradient was zero, and their samples.
    pub skipped: usize,
    pub skipped_samples: usize,
}

impl Sums {
    pub fn new(n_v: usize) -> Self {
        Self {
            loss_sum: 0.0,
            batches: 0,
            sq_error: 0.0,
            sq_norm: 0.0,
            active: vec![0.0; n_v],
            samples: 0,
            skipped: 0,
            skipped_samples: 0,
        }
    }

    /// One step's results.
    pub fn add<T: Float>(&mut self, out: &Outcome<T>) {
        self.loss_sum += out.loss().to_f64();
        self.batches += 1;
        self.sq_error += out.sq_error.to_f64();
        self.sq_norm += out.sq_norm.to_f64();
        let n_v = self.active.len();
        for row in out.mask.chunks_exact(n_v) {
            for (a, m) in self.active.iter_mut().zip(row) {
                *a += m.to_f64();
            }
        }
        self.samples += out.mask.len() / n_v;
    }

    /// A batch of `b` samples with no step.
    pub fn skip(&mut self, b: usize) {
        self.skipped += 1;
        self.skipped_samples += b;
    }

    /// `sum |g - g_hat|^2 / sum |g|^2` over every pair added.
    pub fn reconstruction_error(&self) -> f64 {
        self.sq_error / self.sq_norm.max(f64::MIN_POSITIVE)
    }

    /// Per subnetwork, the fraction of `samples` that kept it in the top k.
    pub fn p_act(&self, samples: usize) -> Vec<f64> {
        let samples = samples.max(1) as f64;
        self.active.iter().map(|a| a / samples).collect()
    }
}
