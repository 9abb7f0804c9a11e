//! The fast path of one L3D step: per-sample gradients, encode, batch top-k, decode, the
//! relative loss and its gradient with respect to every CP factor, with no `[B, m, n]` tensor
//! for dense layers and no allocation in steady state. [`crate::step::tape_step`] is the
//! reference it is tested against (`tests/fast_path.rs`).
//!
//! # Legend
//!
//! | code | math | shape |
//! |---|---|---|
//! | `b` | `B`, batch size | |
//! | `n_v` | number of subnetworks | |
//! | `rank` | `R`, CP rank of a tensor; `cols = C = n_v R` columns per factor | |
//! | `g_i` | per-sample gradient, one tensor per decomposed parameter | |
//! | `c` | `c[i, v] = <V_in[v], g_i>` | `[B, n_v]` |
//! | `mask`, `ct` | batch top-k, `ct = mask * c` | `[B, n_v]` |
//! | `d` | `d[i, v] = <V_out[v], g_i>`: an encode with the decoder's factors | `[B, n_v]` |
//! | `g` (Gram) | `G[v, w] = <V_out[v], V_out[w]>` | `[n_v, n_v]` |
//! | `s`, `S` | `s_i = |g_i|^2`, `S = sum_i s_i` | `[B]` |
//!
//! # The loss from inner products
//!
//! `g_hat_i = sum_v ct[i, v] V_out[v]`, so, expanding the square,
//!
//! ```text
//! |g_i - g_hat_i|^2 = s_i - 2 sum_v ct[i, v] d[i, v] + ct_i^T G ct_i
//! L = sum_i |g_i - g_hat_i|^2 / S          (S a constant, as on the tape)
//! dL/dct = 2 (G ct - d) / S    dL/dc = mask * dL/dct    (the mask is a constant)
//! dL/dd  = -2 ct / S           dL/dG = ct^T ct / S
//! ```
//!
//! `G = sum_t G_t` over the decomposed tensors, and for one tensor with factors `F_m: [d_m, C]`,
//! `G_t[v, w] = sum_{r, s} prod_m K_m[vR + r, wR + s]` with `K_m = F_m^T F_m`; its adjoint is in
//! `fast/gram.rs`: `dL/dF_m += 2 F_m (dG_E * prod_{m' != m} K_m')`, `dG_E[vR + r, wR + s] = dG[v, w]`.
//!
//! # Encoding a dense layer's gradient without forming it
//!
//! A dense layer's per-sample weight gradient is `g_i = sum_{m < M} delta_im x_im^T` (`M = 1`
//! for an MLP; `M` rows per sample when inputs carry extra axes). With the CP tensor
//! `V[v] = sum_r a_vr b_vr^T`, `a_vr = F_0[:, vR + r]`, `b_vr = F_1[:, vR + r]`:
//!
//! ```text
//! <V[v], g_i> = sum_m sum_r (a_vr . delta_im) (b_vr . x_im) = sum_m sum_r P[iM+m, vR+r] Q[iM+m, vR+r]
//!     with P = delta F_0: [B M, C] and Q = x F_1: [B M, C]
//! |g_i|^2 = sum_{m, m'} (delta_im . delta_im') (x_im . x_im')      (|delta_i|^2 |x_i|^2 for M = 1)
//! dL/dF_0 = delta^T (dS_E * Q)    dL/dF_1 = x^T (dS_E * P)      dS_E[iM+m, vR+r] = dS[i, v]
//! ```
//!
//! with `dS = dL/dc` for the encoder's factors and `dL/dd` for the decoder's. Tensors whose
//! gradient arrives dense (biases, or anything the tape could not keep factored) use the dense
//! form, stored transposed, `V^T: [numel, n_v]`: `c += g V^T`, `dV^T = g^T dS`, and the adjoint
//! of the dense form (a vector of rank 1 is its own dense form: nothing to form or undo).
//!
//! # Parallel and deterministic
//!
//! Per-sample work (the model's forward and backward, encode, decode) runs over fixed chunks of
//! [`CHUNK_ROWS`] samples, each chunk owning its rows of every buffer. The reductions over the
//! batch (the factor gradients) run in two passes (`fast/backward.rs`): one task per factor
//! forms the right operands, then one task per block of rows of a factor gradient computes
//! those rows as a single product over every chunk and the Gram term, so each element is the
//! same sum in the same order however the work is cut; the loss's sums run serially. The
//! decoder's mode Grams are computed from the tiles on and above their diagonal
//! ([`tensor::gemm::gram`]). Nothing depends on the
//! number of threads, so one thread and two give the same bits (`tests/fast_path.rs`). Steps
//! below [`PARALLEL_WORK`] multiply-adds, and every step in a one-thread pool, run on the
//! calling thread without rayon (the same tasks in the same order, so the same numbers).
//!
//! # No allocation in steady state
//!
//! Every buffer (activations, `P`, `Q`, `c`, `d`, the Grams, packing buffers, factor
//! gradients) is owned by [`FastStep`] and grows only when a batch is larger than any before.
//! The MLP source (a model that answers [`Model::as_mlp`]) and given gradients allocate nothing
//! per step; other models go through the tape's per-sample gradients, which allocate (still
//! factored where the tape returns `Grad::Outer`). `tests/fast_alloc.rs` counts: zero in a
//! one-thread pool; with two threads rayon's work stealing allocates for its own bookkeeping a
//! few times per hundred steps.

mod backward;
mod encode;
mod gelu;
mod gram;
mod loss;
mod mlp;
pub mod per_sample;
mod renorm;
mod source;

pub use renorm::{renormalise_decoder, RenormScratch};

use crate::config::{Divergence, L3dConfig, Positions, Reference};
use crate::cp::CpTensor;
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::pairs::{check_data, check_positions};
use crate::step::{MaskRule, StepResult};
use backward::{FactorTask, BLOCK_ROWS};
use encode::{add_sq_norms, encode_dense, encode_outer, fit, GradRows};
use gram::{add_subnetwork_gram, dense_form, dense_form_is_factor, DenseScratch};
use loss::LossState;
use mlp::{MlpChunk, MlpNet};
use nets::Model;
use rand::Rng;
use rayon::prelude::*;
use source::{initial_form, Form, Source};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tensor::gemm::{gram_rows, mirror_upper, takes_packing, GemmScratch, MatRef, PackedB};
use tensor::{Float, Tensor};

/// Samples per chunk of the per-sample work.
pub const CHUNK_ROWS: usize = 32;

/// Steps with fewer multiply-adds than this run on the calling thread.
pub const PARALLEL_WORK: usize = 1 << 21;

/// Which half of the decomposition: `V_in` or `V_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Encoder,
    Decoder,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Encoder => 0,
            Side::Decoder => 1,
        }
    }

    /// This side's CP tensor `t` of `d`.
    fn of<T: Float>(self, d: &Decomposition<T>, t: usize) -> &CpTensor<T> {
        match self {
            Side::Encoder => &d.encoder[t],
            Side::Decoder => &d.decoder[t],
        }
    }
}

/// The buffers of one chunk of the batch: rows `start..start + len`.
///
/// Invariant: `c`, `d` hold `len x n_v` values, `s` holds `len`; `products[t]` holds the
/// encoder's and decoder's `P` and `Q` of tensor `t` (`[len M, C]`, factored tensors only).
pub(crate) struct Chunk<T: Float> {
    pub start: usize,
    pub len: usize,
    mlp: MlpChunk<T>,
    products: Vec<[Vec<T>; 4]>,
    c: Vec<T>,
    d: Vec<T>,
    s: Vec<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> Chunk<T> {
    /// `(P, Q)` of tensor `t` for one side.
    pub fn products(&self, t: usize, side: Side) -> (&[T], &[T]) {
        let pq = &self.products[t];
        let i = 2 * side.index();
        (&pq[i], &pq[i + 1])
    }
}

/// Factor `m` of tensor `t` on one side, packed once per step for the chunks' products with
/// it (only for factored tensors, several chunks, and products large enough to pack).
struct FactorPack<T> {
    side: Side,
    t: usize,
    m: usize,
    packed: PackedB<T>,
    active: bool,
}

/// One decoder mode Gram `K_m = F_m^T F_m` (`[C, C]`).
#[derive(Default)]
struct ModeGram<T> {
    k: Vec<T>,
}

impl<T> AsRef<[T]> for ModeGram<T> {
    fn as_ref(&self) -> &[T] {
        &self.k
    }
}

/// The decoder's Grams of tensor `t`: its mode Grams, its part `G_t` of `G`, and scratch.
struct TensorGrams<T> {
    t: usize,
    modes: Vec<ModeGram<T>>,
    g: Vec<T>,
    row: Vec<T>,
}

/// Rows of a mode Gram per task (`K_m` is computed in blocks of rows on and above its
/// diagonal, then mirrored).
const GRAM_ROWS: usize = 32;

/// The dense form `V^T: [numel, n_v]` of one side of tensor `t` (dense tensors other than
/// vectors of rank 1, whose factor is their dense form).
struct DenseForm<T> {
    t: usize,
    side: Side,
    v: Vec<T>,
    scratch: DenseScratch<T>,
}

/// Wall time spent in each phase since the last [`FastStep::take_timings`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Per-sample gradients (the model's forward and backward, references), including those
    /// computed beside the previous step's update ([`FastStep::prefetch_alongside`]).
    pub gradients: Duration,
    /// `c` and `|g_i|^2`.
    pub encode: Duration,
    /// `d`, the Grams, top-k and the loss.
    pub decode: Duration,
    /// The factor gradients.
    pub backward: Duration,
}

/// What one fast step computed; borrows the step's buffers.
#[derive(Debug, Clone, Copy)]
pub struct FastOutput<'a, T: Float> {
    /// `sum_i |g_i - g_hat_i|^2`.
    pub sq_error: T,
    /// `S = sum_i |g_i|^2`.
    pub sq_norm: T,
    /// `c: [B, n_v]` before top-k, row-major.
    pub coefficients: &'a [T],
    /// `[B, n_v]`, 1 where a coefficient was kept.
    pub mask: &'a [T],
    /// In the order of [`Decomposition::factors`]; empty when the step ran without backward.
    pub factor_grads: &'a [Tensor<T>],
    /// Whether every factor gradient is finite (each block is checked as it is written).
    pub grads_finite: bool,
    pub batch: usize,
    pub n_v: usize,
}

impl<T: Float> FastOutput<'_, T> {
    /// The relative reconstruction error of the batch.
    pub fn loss(&self) -> T {
        self.sq_error / self.sq_norm
    }

    /// The same numbers as the tape path's result (copies them).
    pub fn to_step_result(&self) -> StepResult<T> {
        let shape = [self.batch, self.n_v];
        StepResult {
            sq_error: self.sq_error,
            sq_norm: self.sq_norm,
            coefficients: Tensor::from_vec(&shape, self.coefficients.to_vec()),
            mask: Tensor::from_vec(&shape, self.mask.to_vec()),
            factor_grads: self.factor_grads.to_vec(),
        }
    }
}

/// The shared, read-only state the phases work from.
pub(crate) struct FastContext<'a, T: Float> {
    d: &'a Decomposition<T>,
    source: &'a Source<'a, T>,
    forms: &'a [Form],
    param_index: &'a [usize],
    dense: &'a [DenseForm<T>],
    grams: &'a [TensorGrams<T>],
    packs: &'a [FactorPack<T>],
    loss: &'a LossState<T>,
}

impl<'a, T: Float> FastContext<'a, T> {
    /// Factor `m` of tensor `t` packed for this step, if it was.
    fn packed(&self, side: Side, t: usize, m: usize) -> Option<&'a PackedB<T>> {
        self.packs
            .iter()
            .find(|p| p.side == side && p.t == t && p.m == m && p.active)
            .map(|p| &p.packed)
    }

    fn cp(&self, side: Side, t: usize) -> &'a CpTensor<T> {
        side.of(self.d, t)
    }

    /// `dL/dc` or `dL/dd`: `[B, n_v]`.
    fn coefficient_grad(&self, side: Side) -> &'a [T] {
        match side {
            Side::Encoder => &self.loss.dc,
            Side::Decoder => &self.loss.dd,
        }
    }

    fn gram_grad(&self) -> &'a [T] {
        &self.loss.dg
    }

    fn is_dense(&self, t: usize) -> bool {
        matches!(self.forms[t], Form::Dense { .. })
    }

    /// The decoder's mode Grams of tensor `t`, in mode order.
    fn mode_grams(&self, t: usize) -> &'a [ModeGram<T>] {
        &self.grams[t].modes
    }

    /// `V^T: [numel, n_v]` of a dense tensor: its factor itself for a vector of rank 1.
    fn dense_form(&self, t: usize, side: Side) -> &'a [T] {
        let cp = self.cp(side, t);
        if dense_form_is_factor(cp) {
            return cp.factors[0].data();
        }
        let form = self
            .dense
            .iter()
            .find(|f| f.t == t && f.side == side)
            .expect("every dense tensor has a dense form per side");
        &form.v
    }
}

/// The fast step's state: the gradient source and every buffer, reused from step to step.
///
/// Invariants: `layout`, `forms` and `grams` have one entry per decomposed tensor (`grams[t]`
/// one mode Gram per mode); `dense` two per tensor (encoder, decoder); `tasks`, `packs` and
/// `grads` one per factor, in the order of
/// [`Decomposition::factors`] (the encoder's factors, then the decoder's); `chunks` cover the
/// largest batch seen, [`CHUNK_ROWS`] rows each.
///
/// ```ignore
/// let mut fast = FastStep::new(&model, &data, &d, &config)?;
/// let out = fast.run(&d, &rows, &mut rng, MaskRule::top_k(config.top_k), true)?;
/// ```
pub struct FastStep<'m, T: Float> {
    source: Source<'m, T>,
    param_index: Vec<usize>,
    divergence: Divergence,
    reference: Reference,
    positions: Positions,
    n_v: usize,
    /// `(shape, rank)` of each decomposed tensor, to check the decomposition on every step.
    layout: Vec<(Vec<usize>, usize)>,
    forms: Vec<Form>,
    chunks: Vec<Chunk<T>>,
    grams: Vec<TensorGrams<T>>,
    dense: Vec<DenseForm<T>>,
    packs: Vec<FactorPack<T>>,
    loss: LossState<T>,
    tasks: Vec<FactorTask<T>>,
    /// GEMM scratch of the backward's row blocks, one per thread.
    row_scratch: Vec<Mutex<GemmScratch<T>>>,
    /// Cleared by a backward task that wrote a non-finite value.
    finite: AtomicBool,
    /// The rows whose per-sample gradients the chunks hold already (empty: none; a batch is
    /// never empty).
    prefetched_rows: Vec<usize>,
    grads: Vec<Tensor<T>>,
    partners: Vec<usize>,
    y0: Vec<T>,
    references: Vec<T>,
    timings: Timings,
}

impl<'m, T: Float> FastStep<'m, T> {
    /// The fast step for pairs of rows of `data: [N, d_in]` through `model`, for
    /// decompositions laid out like `d`.
    pub fn new(
        model: &'m dyn Model<T>,
        data: &'m Tensor<T>,
        d: &Decomposition<T>,
        config: &L3dConfig,
    ) -> Result<Self> {
        check_data(model, data)?;
        check_positions(model, &config.positions)?;
        let source = match MlpNet::of(model)? {
            Some(net) => {
                let lowest = net.lowest_layer(&d.param_index);
                Source::Mlp { net, data, lowest }
            }
            None => Source::Tape {
                model,
                data,
                grads: Vec::new(),
            },
        };
        Self::build(source, d, config)
    }

    /// The fast step for given per-sample gradients `grads[t]: [N, ..shape_t]`.
    pub fn on_gradients(
        grads: &'m [Tensor<T>],
        d: &Decomposition<T>,
        config: &L3dConfig,
    ) -> Result<Self> {
        let source = Source::Given {
            grads,
            rows: vec![Vec::new(); grads.len()],
        };
        Self::build(source, d, config)
    }

    fn build(source: Source<'m, T>, d: &Decomposition<T>, config: &L3dConfig) -> Result<Self> {
        let layout: Vec<(Vec<usize>, usize)> = d
            .encoder
            .iter()
            .map(|cp| (cp.shape.clone(), cp.rank))
            .collect();
        let forms = layout
            .iter()
            .enumerate()
            .map(|(t, (shape, _))| initial_form(&source, d.param_index[t], shape))
            .collect::<Result<Vec<Form>>>()?;
        let mut grams = Vec::new();
        let mut dense = Vec::new();
        let mut tasks = Vec::new();
        for (t, (shape, _)) in layout.iter().enumerate() {
            grams.push(TensorGrams {
                t,
                modes: (0..shape.len()).map(|_| ModeGram::default()).collect(),
                g: Vec::new(),
                row: Vec::new(),
            });
            for side in [Side::Encoder, Side::Decoder] {
                dense.push(DenseForm {
                    t,
                    side,
                    v: Vec::new(),
                    scratch: DenseScratch::default(),
                });
            }
        }
        let mut packs = Vec::new();
        for side in [Side::Encoder, Side::Decoder] {
            for (t, (shape, _)) in layout.iter().enumerate() {
                for m in 0..shape.len() {
                    tasks.push(FactorTask::new(side, t, m));
                    packs.push(FactorPack {
                        side,
                        t,
                        m,
                        packed: PackedB::default(),
                        active: false,
                    });
                }
            }
        }
        let grads = d
            .factors()
            .iter()
            .map(|f| Tensor::zeros(f.shape()))
            .collect();
        let mut step = Self {
            source,
            param_index: d.param_index.clone(),
            divergence: config.divergence,
            reference: config.reference,
            positions: config.positions.clone(),
            n_v: d.n_v,
            layout,
            forms,
            chunks: Vec::new(),
            grams,
            dense,
            packs,
            loss: LossState::default(),
            tasks,
            row_scratch: Vec::new(),
            finite: AtomicBool::new(true),
            prefetched_rows: Vec::new(),
            grads,
            partners: Vec::new(),
            y0: Vec::new(),
            references: Vec::new(),
            timings: Timings::default(),
        };
        step.reserve(config.batch_size);
        Ok(step)
    }

    /// Whether steps of `b` samples run in parallel: past [`PARALLEL_WORK`], with more than
    /// one thread.
    pub fn runs_parallel(&self, b: usize) -> bool {
        worth_threads(self.work(b), PARALLEL_WORK)
    }

    /// Whether the gradients come from the hand-written MLP pass (no tape).
    pub fn uses_mlp(&self) -> bool {
        matches!(self.source, Source::Mlp { .. })
    }

    /// The time spent in each phase since the last call, and a reset.
    pub fn take_timings(&mut self) -> Timings {
        std::mem::take(&mut self.timings)
    }

    /// Sizes every buffer for batches of up to `b` rows (allocates; steps then reuse them).
    fn reserve(&mut self, b: usize) {
        let n_chunks = b.div_ceil(CHUNK_ROWS);
        while self.chunks.len() < n_chunks {
            let mlp = match &self.source {
                Source::Mlp { net, .. } => MlpChunk::new(net, CHUNK_ROWS),
                _ => MlpChunk::default(),
            };
            self.chunks.push(Chunk {
                start: 0,
                len: 0,
                mlp,
                products: (0..self.layout.len()).map(|_| Default::default()).collect(),
                c: vec![T::zero(); CHUNK_ROWS * self.n_v],
                d: vec![T::zero(); CHUNK_ROWS * self.n_v],
                s: vec![T::zero(); CHUNK_ROWS],
                gemm: GemmScratch::default(),
            });
        }
        self.loss.resize(b, self.n_v);
    }

    /// One step on the batch `rows` (of the data, or of the given gradients): references drawn
    /// from `rng` as `Trainer` draws them, per-sample gradients, encode, the mask of `rule`,
    /// decode and the loss, and with `backward` the gradient of the loss with respect to every
    /// factor. `None` when every gradient of the batch is zero.
    pub fn run(
        &mut self,
        d: &Decomposition<T>,
        rows: &[usize],
        rng: &mut impl Rng,
        rule: MaskRule<T>,
        backward: bool,
    ) -> Result<Option<FastOutput<'_, T>>> {
        self.check(d, rows)?;
        let b = rows.len();
        let n_chunks = b.div_ceil(CHUNK_ROWS);
        let parallel = self.runs_parallel(b);
        let clock = Instant::now();
        if self.prefetched_rows != rows {
            self.size_chunks(b);
            self.gradients(rows, rng, n_chunks, parallel)?;
        }
        self.prefetched_rows.clear();
        let encoded = Instant::now();
        self.timings.gradients += encoded - clock;

        self.encode(d, n_chunks, parallel);
        let decoded = Instant::now();
        self.timings.encode += decoded - encoded;

        self.decode(d, n_chunks, parallel);
        let loss = self.loss.evaluate(b, self.n_v, rule, backward)?;
        let finished = Instant::now();
        self.timings.decode += finished - decoded;
        let Some((sq_error, sq_norm)) = loss else {
            return Ok(None);
        };
        if backward {
            self.backward(d, n_chunks, parallel);
            self.timings.backward += finished.elapsed();
        }
        Ok(Some(FastOutput {
            sq_error,
            sq_norm,
            coefficients: &self.loss.c,
            mask: &self.loss.mask,
            factor_grads: if backward { &self.grads } else { &[] },
            grads_finite: !backward || self.finite.load(Ordering::Relaxed),
            batch: b,
            n_v: self.n_v,
        }))
    }

    /// Sizes the buffers and the chunks for a batch of `b` rows.
    fn size_chunks(&mut self, b: usize) {
        self.reserve(b);
        for (k, chunk) in self.chunks.iter_mut().enumerate() {
            chunk.start = (k * CHUNK_ROWS).min(b);
            chunk.len = CHUNK_ROWS.min(b - chunk.start);
        }
    }

    /// Runs `with_grads` on the last step's factor gradients (the optimiser's update) while
    /// the per-sample gradients of the next batch, `next`, are computed beside it, drawing
    /// references from `rng` as [`FastStep::run`] would; the next `run` on `next` then starts
    /// from them. The per-sample gradients need only the model and the data, not the factors
    /// that `with_grads` changes, and they come out the same either way; the overlap lets the
    /// update, bound by memory bandwidth, share the cores with arithmetic.
    pub fn prefetch_alongside<R: Send>(
        &mut self,
        next: &[usize],
        rng: &mut (impl Rng + Send),
        with_grads: impl FnOnce(&[Tensor<T>]) -> R + Send,
    ) -> Result<R> {
        let grads = std::mem::take(&mut self.grads);
        let b = next.len();
        let n_chunks = b.div_ceil(CHUNK_ROWS);
        let parallel = self.runs_parallel(b);
        let mut prefetch = || -> Result<()> {
            // Counted under the gradients, though it overlaps the update.
            let clock = Instant::now();
            self.size_chunks(b);
            self.prefetched_rows.clear();
            self.gradients(next, rng, n_chunks, parallel)?;
            self.prefetched_rows.extend_from_slice(next);
            self.timings.gradients += clock.elapsed();
            Ok(())
        };
        let (out, fetched) = if parallel {
            rayon::join(|| with_grads(&grads), prefetch)
        } else {
            let out = with_grads(&grads);
            (out, prefetch())
        };
        self.grads = grads;
        fetched.map(|()| out)
    }

    /// The decomposition must be laid out as the one the step was built for.
    fn check(&self, d: &Decomposition<T>, rows: &[usize]) -> Result<()> {
        let fits = d.n_v == self.n_v
            && d.encoder.len() == self.layout.len()
            && d.param_index == self.param_index
            && d.encoder.iter().zip(&d.decoder).zip(&self.layout).all(
                |((e, dec), (shape, rank))| {
                    e.shape == *shape && dec.shape == *shape && e.rank == *rank && dec.rank == *rank
                },
            );
        if !fits {
            return Err(L3dError::Mismatch(
                "the decomposition differs from the one the fast step was built for".into(),
            ));
        }
        let least = match self.source {
            Source::Given { .. } => 1,
            _ => self.reference.min_batch(),
        };
        if rows.len() < least {
            return Err(L3dError::Mismatch(format!(
                "a batch of {} samples; it needs at least {least}",
                rows.len(),
            )));
        }
        Ok(())
    }

    /// Multiply-adds of one step of `b` samples, roughly: the encodes and their backward, and
    /// the Grams.
    fn work(&self, b: usize) -> usize {
        self.layout
            .iter()
            .map(|(shape, rank)| {
                let cols = self.n_v * rank;
                let modes: usize = shape.iter().sum();
                let numel: usize = shape.iter().product();
                let per_sample = if shape.len() == 2 { modes } else { numel };
                4 * b * cols * per_sample + 2 * cols * cols * modes
            })
            .sum()
    }

    /// Packs the factors of `side` that several chunks multiply by (see [`FactorPack`]).
    fn pack_factors(&mut self, d: &Decomposition<T>, side: Side, n_chunks: usize, parallel: bool) {
        let forms = &self.forms;
        // The encoder's packs come first, then the decoder's, as many each.
        let half = self.packs.len() / 2;
        let packs = match side {
            Side::Encoder => &mut self.packs[..half],
            Side::Decoder => &mut self.packs[half..],
        };
        each(packs, parallel, |p| {
            p.active = false;
            if n_chunks < 2 {
                return;
            }
            if let Form::Outer { m: rows, .. } = forms[p.t] {
                let f = &side.of(d, p.t).factors[p.m];
                let (width, cols) = (f.shape()[0], f.shape()[1]);
                if takes_packing(CHUNK_ROWS * rows, width, cols) {
                    p.packed.pack(matrix(f));
                    p.active = true;
                }
            }
        });
    }

    /// The dense forms of dense tensors, then `c` and `s` per chunk.
    fn encode(&mut self, d: &Decomposition<T>, n_chunks: usize, parallel: bool) {
        self.pack_factors(d, Side::Encoder, n_chunks, parallel);
        let forms = &self.forms;
        let cp_of = |f: &DenseForm<T>| f.side.of(d, f.t);
        let needed = |f: &DenseForm<T>| {
            matches!(forms[f.t], Form::Dense { .. }) && !dense_form_is_factor(cp_of(f))
        };
        // Work of the dense forms: worth threads only for large tensors of given gradients.
        let work: usize = self
            .dense
            .iter()
            .filter(|f| needed(f))
            .map(|f| cp_of(f).numel() * cp_of(f).columns())
            .sum();
        each(&mut self.dense, parallel && work >= 1 << 16, |f| {
            if needed(f) {
                dense_form(cp_of(f), &mut f.v, &mut f.scratch);
            }
        });
        let ctx = FastContext {
            d,
            source: &self.source,
            forms: &self.forms,
            param_index: &self.param_index,
            dense: &self.dense,
            grams: &self.grams,
            packs: &self.packs,
            loss: &self.loss,
        };
        each(&mut self.chunks[..n_chunks], parallel, |c| {
            encode_chunk(&ctx, c, Side::Encoder);
        });
        self.gather_rows(n_chunks, Side::Encoder);
    }

    /// `d` per chunk beside the decoder's mode Grams, then `G`.
    fn decode(&mut self, d: &Decomposition<T>, n_chunks: usize, parallel: bool) {
        self.grow_scratch_pool(parallel, d);
        self.pack_factors(d, Side::Decoder, n_chunks, parallel);
        let ctx = FastContext {
            d,
            source: &self.source,
            forms: &self.forms,
            param_index: &self.param_index,
            dense: &self.dense,
            grams: &[],
            packs: &self.packs,
            loss: &self.loss,
        };
        let chunks = &mut self.chunks[..n_chunks];
        let grams = &mut self.grams;
        let scratch = &self.row_scratch;
        let mut run_chunks = || each(chunks, parallel, |c| encode_chunk(&ctx, c, Side::Decoder));
        let mut run_grams = || {
            // Blocks of rows of every mode Gram: even tasks.
            each(grams, parallel, |tg| {
                let cp = &d.decoder[tg.t];
                let cols = cp.columns();
                for (mg, f) in tg.modes.iter_mut().zip(&cp.factors) {
                    fit(&mut mg.k, cols * cols);
                    each_block(&mut mg.k, GRAM_ROWS * cols, parallel, |b, rows| {
                        with_scratch(scratch, |s| gram_rows(matrix(f), b * GRAM_ROWS, rows, s));
                    });
                }
            });
        };
        if parallel {
            rayon::join(run_chunks, run_grams);
        } else {
            run_chunks();
            run_grams();
        }
        self.gather_rows(n_chunks, Side::Decoder);
        // Each tensor's Grams completed and G_t formed (in parallel), then G in tensor order.
        each(&mut self.grams, parallel, |tg| {
            let cp = &d.decoder[tg.t];
            for mg in &mut tg.modes {
                mirror_upper(&mut mg.k, cp.columns());
            }
            fit(&mut tg.g, cp.n_v * cp.n_v);
            tg.g.fill(T::zero());
            add_subnetwork_gram(&tg.modes, cp.n_v, cp.rank, &mut tg.g, &mut tg.row);
        });
        self.loss.g.fill(T::zero());
        for tg in &self.grams {
            for (g, &x) in self.loss.g.iter_mut().zip(&tg.g) {
                *g += x;
            }
        }
    }

    /// Every factor gradient: pass 1 one task per factor, pass 2 one task per block of rows
    /// of a factored gradient (`fast/backward.rs`).
    fn backward(&mut self, d: &Decomposition<T>, n_chunks: usize, parallel: bool) {
        let ctx = FastContext {
            d,
            source: &self.source,
            forms: &self.forms,
            param_index: &self.param_index,
            dense: &self.dense,
            grams: &self.grams,
            packs: &self.packs,
            loss: &self.loss,
        };
        let chunks = &self.chunks[..n_chunks];
        self.finite.store(true, Ordering::Relaxed);
        let finite = &self.finite;
        let check = |values: &[T]| {
            if !all_finite(values) {
                finite.store(false, Ordering::Relaxed);
            }
        };
        let prepare = |(task, grad): (&mut FactorTask<T>, &mut Tensor<T>)| {
            task.prepare(&ctx, chunks, grad);
            if !task.by_rows(&ctx) {
                check(grad.data());
            }
        };
        let scratch = &self.row_scratch;
        let rows = |task: &FactorTask<T>, block: usize, out: &mut [T]| {
            with_scratch(scratch, |s| task.rows(&ctx, chunks, block, out, s));
            check(out);
        };
        let blocks = |(task, grad): (&FactorTask<T>, &mut Tensor<T>)| {
            if task.by_rows(&ctx) {
                let block = BLOCK_ROWS * grad.shape()[1];
                each_block(grad.data_mut(), block, parallel, |b, out| {
                    rows(task, b, out)
                });
            }
        };
        if parallel {
            let pairs = self.tasks.par_iter_mut().zip(self.grads.par_iter_mut());
            pairs.with_max_len(1).for_each(prepare);
            let pairs = self.tasks.par_iter().zip(self.grads.par_iter_mut());
            pairs.with_max_len(1).for_each(blocks);
        } else {
            let pairs = self.tasks.iter_mut().zip(self.grads.iter_mut());
            pairs.for_each(prepare);
            self.tasks
                .iter()
                .zip(self.grads.iter_mut())
                .for_each(blocks);
        }
    }

    /// One scratch per thread for the tasks that threads take in no fixed order (the Grams'
    /// and the backward's blocks of rows), sized for every such product up front: whichever
    /// thread takes a task, nothing grows in steady state.
    /// (A step on one thread takes its tasks in a fixed order: its scratch grows on demand.)
    fn grow_scratch_pool(&mut self, parallel: bool, d: &Decomposition<T>) {
        let cols = d.decoder.iter().map(|cp| cp.columns()).max().unwrap_or(0);
        let threads = if parallel {
            rayon::current_num_threads()
        } else {
            1
        };
        while self.row_scratch.len() < threads {
            let scratch = if parallel {
                GemmScratch::for_columns(cols)
            } else {
                GemmScratch::default()
            };
            self.row_scratch.push(Mutex::new(scratch));
        }
    }

    /// Copies the chunks' rows of `c` and `s` (encoder) or `d` (decoder) into the batch's.
    fn gather_rows(&mut self, n_chunks: usize, side: Side) {
        let n_v = self.n_v;
        for c in &self.chunks[..n_chunks] {
            let rows = c.start * n_v..(c.start + c.len) * n_v;
            match side {
                Side::Encoder => {
                    self.loss.c[rows].copy_from_slice(&c.c[..c.len * n_v]);
                    self.loss.s[c.start..c.start + c.len].copy_from_slice(&c.s[..c.len]);
                }
                Side::Decoder => self.loss.d[rows].copy_from_slice(&c.d[..c.len * n_v]),
            }
        }
    }
}

/// `c` (and `s`) or `d` of one chunk: every tensor's contribution added in tensor order.
fn encode_chunk<T: Float>(ctx: &FastContext<T>, chunk: &mut Chunk<T>, side: Side) {
    let n_v = ctx.d.n_v;
    let len = chunk.len;
    let mut out = std::mem::take(match side {
        Side::Encoder => &mut chunk.c,
        Side::Decoder => &mut chunk.d,
    });
    let mut products = std::mem::take(&mut chunk.products);
    let mut scratch = std::mem::take(&mut chunk.gemm);
    let mut s = std::mem::take(&mut chunk.s);
    out[..len * n_v].fill(T::zero());
    s[..len].fill(T::zero());
    for (t, pq) in products.iter_mut().enumerate() {
        let rows = ctx.grad_rows(chunk, t);
        match rows {
            GradRows::Outer { left, right, m, .. } => {
                let [p_enc, q_enc, p_dec, q_dec] = pq;
                let (p, q) = match side {
                    Side::Encoder => (p_enc, q_enc),
                    Side::Decoder => (p_dec, q_dec),
                };
                let cp = ctx.cp(side, t);
                let packed = [ctx.packed(side, t, 0), ctx.packed(side, t, 1)];
                encode_outer(
                    cp,
                    packed,
                    left,
                    right,
                    len,
                    m,
                    p,
                    q,
                    &mut out,
                    &mut scratch,
                );
            }
            GradRows::Dense { g, numel } => {
                let v = ctx.dense_form(t, side);
                encode_dense(v, g, len, numel, n_v, &mut out[..len * n_v], &mut scratch);
            }
        }
        if side == Side::Encoder {
            add_sq_norms(rows, len, &mut s);
        }
    }
    match side {
        Side::Encoder => chunk.c = out,
        Side::Decoder => chunk.d = out,
    }
    chunk.products = products;
    chunk.gemm = scratch;
    chunk.s = s;
}

/// Whether work of size `work` goes to rayon: it is at least `min`, and the pool has more than
/// one thread. Either way every task computes the same numbers (so results never depend on
/// it); the point is to spend no time, and allocate nothing, in rayon when it cannot help.
pub fn worth_threads(work: usize, min: usize) -> bool {
    work >= min && rayon::current_num_threads() > 1
}

/// Runs `f` with this thread's GEMM scratch from `pool` (one per thread of the pool, so the
/// lock is always free; the calling thread outside a pool takes the first).
fn with_scratch<T: Float>(pool: &[Mutex<GemmScratch<T>>], f: impl FnOnce(&mut GemmScratch<T>)) {
    let slot = rayon::current_thread_index().unwrap_or(0) % pool.len();
    let mut s = pool[slot].lock().expect("a scratch lock is never poisoned");
    f(&mut s);
}

/// A factor `[d, C]` as a row-major matrix.
fn matrix<T: Float>(f: &Tensor<T>) -> MatRef<'_, T> {
    MatRef::rows(f.data(), f.shape()[0], f.shape()[1])
}

/// Whether every value is finite. `0 x` is 0 for a finite `x` and NaN for an infinite or NaN
/// one, so sixteen lane sums of it stay 0 exactly when every value is finite: a loop the
/// compiler vectorises, unlike a search that stops at the first bad value.
pub(crate) fn all_finite<T: Float>(x: &[T]) -> bool {
    const LANES: usize = 16;
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l] * T::zero();
        }
    }
    acc.iter().chain(rest).all(|v| v.is_finite())
}

/// Runs `f` on every item, in parallel or in order on this thread.
fn each<I: Send>(items: &mut [I], parallel: bool, f: impl Fn(&mut I) + Sync + Send) {
    if parallel {
        // One item per job: tasks of unequal size are stolen one by one.
        items.par_iter_mut().with_max_len(1).for_each(f);
    } else {
        items.iter_mut().for_each(f);
    }
}

/// Runs `f(index, block)` on every block of `len` values of `data` (the last may be shorter),
/// in parallel or in order on this thread.
fn each_block<T: Send>(
    data: &mut [T],
    len: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if parallel {
        let blocks = data.par_chunks_mut(len).with_max_len(1).enumerate();
        blocks.for_each(|(b, block)| f(b, block));
    } else {
        data.chunks_mut(len)
            .enumerate()
            .for_each(|(b, block)| f(b, block));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_a_nan_or_an_infinity_anywhere() {
        for len in [0, 1, 15, 16, 17, 40] {
            let x = vec![1.5f32; len];
            assert!(all_finite(&x));
            for at in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut y = x.clone();
                    y[at] = bad;
                    assert!(!all_finite(&y), "{bad} at {at} of {len}");
                }
            }
        }
    }
}
