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
//! with `dS = dL/dc` for the encoder's factors and `dL/dd` for the decoder's.
//!
//! A tensor of more than two modes whose gradient arrives as such a sum is read as a matrix
//! `[d_0, d_1 .. d_last]`: a convolution's kernel `[out, in, kh, kw]` as `[out, in kh kw]`,
//! with `delta_im` the output gradient at output position `m` and `x_im` the im2col patch
//! there (`M` = output positions). Its subnetwork `v` is then
//! `sum_r a_vr KR[:, vR + r]^T` with `KR = F_1 (.) .. (.) F_last: [d_1 .. d_last, C]` the
//! row-wise Khatri-Rao product, so the encode is as above with `KR` for `F_1`
//! (`Q = x KR`), and `dL/dKR = x^T (dS_E * P)` is chained to each `F_m`, `m >= 1`, through
//! the Khatri-Rao product's adjoint (`fast/dense.rs`). Tensors whose
//! gradient arrives dense (biases, or anything the tape could not keep factored) use the dense
//! form, stored transposed, `V^T: [numel, n_v]`: `c += g V^T`, `dV^T = g^T dS`, and the adjoint
//! of the dense form (`fast/dense.rs`; a vector of rank 1 is its own dense form: nothing to
//! form or undo). Which tensors arrive factored and which dense is a [`layout::Split`]: two
//! typed lists, so each tensor's buffers and backward task are those of its kind.
//!
//! # Files
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | this derivation; [`FastStep`]: its state, its phases in order, the update |
//! | `layout.rs` | the tensors the step is built for, how their gradients arrive (`Split`), chunks |
//! | `pass.rs` | what the hand-written passes share: a network computed per chunk, the pass driving it |
//! | `gradients.rs` | where the per-sample gradients come from: the MLP pass (`crate::mlp`), the CNN pass, the attention pass, the tape, given ones |
//! | `attention.rs` | forward and backward of an attention-only transformer into reused buffers |
//! | `cnn.rs` | forward and backward of a convolution followed by dense layers into reused buffers |
//! | `forms.rs` | which tensors arriving factored are formed dense (the cheaper form) |
//! | `prepare.rs` | per step: factors packed for the chunks' products, dense forms |
//! | `chunk.rs` | one chunk's buffers and its encode (`c`, `s` or `d`) |
//! | `encode.rs` | the encode kernels: factored and dense, `|g_i|^2` |
//! | `blocks.rs` | loops over the rank blocks of a factor's columns |
//! | `gram.rs` | the decoder's Grams `K_m`, `G`, and their adjoint |
//! | `dense.rs` | the dense form of a CP tensor and its adjoint |
//! | `loss.rs` | batch top-k, the loss from inner products, `dL/dc`, `dL/dd`, `dL/dG` |
//! | `backward.rs` | the factor gradients in two passes |
//! | `renorm.rs` | decoder renormalisation without allocating |
//! | `per_sample.rs` | materialised per-sample gradients of an MLP |
//!
//! # Parallel and deterministic
//!
//! Per-sample work (the model's forward and backward, encode, decode) runs over fixed chunks of
//! [`CHUNK_ROWS`] samples (fewer for the attention pass, whose samples are whole sequences:
//! about 256 positions per chunk), each chunk owning its rows of every buffer; the chunking
//! depends on the model and the batch, never on the number of threads. The reductions over the
//! batch (the factor gradients) run in passes (`fast/backward.rs`): one task per factor
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
//! The hand-written passes (the MLP's for a model that answers [`Model::as_mlp`], the CNN's
//! for [`Model::as_conv`], the attention transformer's for [`Model::as_attention`]) and given
//! gradients allocate nothing per step; other models go through the tape's per-sample
//! gradients, which allocate (still factored where the tape returns `Grad::Outer`).
//! `tests/fast_alloc.rs` counts: zero in a one-thread pool; with two threads rayon's work
//! stealing allocates for its own bookkeeping a few times per hundred steps.
//!
//! # Factored or dense
//!
//! A tensor whose gradient arrives factored with `M > 1` rows per sample (a conv kernel, an
//! attention projection) is formed dense per sample when that is cheaper (`fast/forms.rs`:
//! `M p q + 4 p q n_v < 4 M (p + q) C`), which for small kernels and short sequences it is;
//! for the benchmark's CNN and transformer the dense rows are also the smaller (per sample, 72
//! values against 1,088 for the kernel, 256 against 1,024 for a projection).

mod attention;
mod backward;
mod blocks;
mod chunk;
mod cnn;
mod dense;
mod encode;
mod forms;
mod gradients;
mod gram;
mod layout;
mod loss;
mod pass;
pub mod per_sample;
mod prepare;
mod renorm;

pub use forms::FormRule;
pub use layout::CHUNK_ROWS;
pub use renorm::{renormalise_decoder, RenormScratch};

use crate::config::L3dConfig;
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::pairs::{check_data, Source};
use crate::par::{each, worth_threads, ScratchPool};
use crate::step::{MaskRule, StepResult};
use backward::{Backward, Upstream};
use chunk::{Chunk, Context};
use forms::Forms;
use gradients::GradientPass;
use gram::DecoderGrams;
use layout::{Layout, Side, Span};
use loss::LossState;
use nets::Model;
use prepare::Prepared;
use rand::Rng;
use std::time::{Duration, Instant};
use tensor::{Float, Tensor};

/// Steps with fewer multiply-adds than this run on the calling thread.
pub const PARALLEL_WORK: usize = 1 << 21;

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

/// What the chunks' work reads and the chunks do not own: the batch's per-sample gradients,
/// the factors prepared for the step, and the threads' GEMM scratch (of the Grams' and the
/// backward's blocks of rows).
struct Inputs<'m, T: Float> {
    pass: Forms<'m, T>,
    prepared: Prepared<T>,
    pool: ScratchPool<T>,
}

impl<T: Float> Inputs<'_, T> {
    /// The context of the per-chunk work on `d`.
    fn context<'a>(&'a self, d: &'a Decomposition<T>) -> Context<'a, T> {
        Context {
            d,
            pass: &self.pass,
            prepared: &self.prepared,
            pool: &self.pool,
        }
    }
}

/// The fast step's state: where the per-sample gradients come from and every buffer, reused
/// from step to step.
///
/// Invariants: `chunks` cover the largest batch seen, `chunk_rows()` rows each; `chunks`, the
/// prepared factors and `backward` are laid out for the split of the gradient pass (rebuilt
/// when the tape's split changes, [`FastStep::adopt_split`]); `grams` has one entry per
/// decomposed tensor.
///
/// ```ignore
/// let mut fast = FastStep::new(&model, &data, &d, &config)?;
/// let out = fast.run(&d, &rows, &mut rng, MaskRule::top_k(config.top_k), true)?;
/// ```
pub struct FastStep<'m, T: Float> {
    layout: Layout,
    inputs: Inputs<'m, T>,
    chunks: Vec<Chunk<T>>,
    grams: DecoderGrams<T>,
    loss: LossState<T>,
    backward: Backward<T>,
    /// The rows whose per-sample gradients `pass` holds already (empty: none; a batch is
    /// never empty).
    prefetched_rows: Vec<usize>,
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
        Self::from_source(Source::Model { model, data }, d, config)
    }

    /// The fast step for given per-sample gradients `grads[t]: [N, ..shape_t]`.
    pub fn on_gradients(
        grads: &'m [Tensor<T>],
        d: &Decomposition<T>,
        config: &L3dConfig,
    ) -> Result<Self> {
        Self::from_source(Source::Gradients(grads), d, config)
    }

    /// The fast step for a [`Source`] of per-sample gradients, for decompositions laid out
    /// like `d` (the data of a model source is not checked here: see [`FastStep::new`]).
    pub fn from_source(
        source: Source<'m, T>,
        d: &Decomposition<T>,
        config: &L3dConfig,
    ) -> Result<Self> {
        let layout = Layout::of(d);
        let pass = Forms::new(GradientPass::new(source, d, config)?, d, FormRule::Cheapest);
        let split = pass.split();
        let factor_shapes: Vec<&[usize]> = d.factors().iter().map(|f| f.shape()).collect();
        let modes: Vec<usize> = layout.tensors.iter().map(|(s, _)| s.len()).collect();
        let mut step = FastStep {
            chunks: Vec::new(),
            grams: DecoderGrams::new(modes.iter().copied()),
            loss: LossState::default(),
            backward: Backward::new(&factor_shapes, split, &modes),
            prefetched_rows: Vec::new(),
            timings: Timings::default(),
            layout,
            inputs: Inputs {
                prepared: Prepared::for_split(split),
                pool: ScratchPool::default(),
                pass,
            },
        };
        step.reserve(config.batch_size);
        Ok(step)
    }

    /// Whether steps of `b` samples run in parallel: past [`PARALLEL_WORK`] (the encode, the
    /// decode and the backward, and the CNN and attention passes' forward and backward), with
    /// more than one thread.
    pub fn runs_parallel(&self, b: usize) -> bool {
        let pass = &self.inputs.pass;
        let work = self.layout.work(b, pass.split()) + pass.work(b);
        worth_threads(work, PARALLEL_WORK)
    }

    /// Whether the gradients come from the hand-written MLP pass (no tape).
    pub fn uses_mlp(&self) -> bool {
        self.inputs.pass.uses_mlp()
    }

    /// Whether the gradients come from a hand-written pass, the MLP's, the CNN's or the
    /// attention transformer's (no tape).
    pub fn uses_hand_written_pass(&self) -> bool {
        self.inputs.pass.hand_written()
    }

    /// Chooses which tensors arriving factored are formed dense ([`FormRule`]; by default the
    /// cheaper form per tensor). Allocates the buffers of the new layout.
    pub fn set_form_rule(&mut self, rule: FormRule) {
        self.inputs.pass.set_rule(rule);
        self.adopt_split();
    }

    /// The decomposed tensors (their indices in the decomposition) whose per-sample gradients
    /// arrived factored in the last batch (before any batch: as the pass expects them), with
    /// their rows per sample `M`.
    pub fn factored_tensors(&self) -> Vec<(usize, usize)> {
        let split = self.inputs.pass.split();
        split.factored().iter().map(|f| (f.t, f.m)).collect()
    }

    /// The factor gradients of the last step run with backward.
    pub fn factor_grads(&self) -> &[Tensor<T>] {
        &self.backward.grads
    }

    /// The time spent in each phase since the last call, and a reset.
    pub fn take_timings(&mut self) -> Timings {
        std::mem::take(&mut self.timings)
    }

    /// One step on the batch `rows` (of the data, or of the given gradients): references drawn
    /// from `rng` as [`crate::pairs::pair_gradients`] draws them, per-sample gradients, encode,
    /// the mask of `rule`, decode and the loss, and with `backward` the gradient of the loss
    /// with respect to every factor. `None` when every gradient of the batch is zero.
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
        let n_chunks = b.div_ceil(self.chunk_rows());
        let parallel = self.runs_parallel(b);
        let clock = Instant::now();
        if self.prefetched_rows != rows {
            self.gradients(rows, rng, parallel)?;
        }
        self.prefetched_rows.clear();
        let encoded = Instant::now();
        self.timings.gradients += encoded - clock;

        self.encode(d, n_chunks, parallel);
        let decoded = Instant::now();
        self.timings.encode += decoded - encoded;

        self.decode(d, n_chunks, parallel);
        let loss = self.loss.evaluate(b, self.layout.n_v, rule, backward)?;
        let finished = Instant::now();
        self.timings.decode += finished - decoded;
        let Some((sq_error, sq_norm)) = loss else {
            return Ok(None);
        };
        if backward {
            let up = Upstream {
                ctx: &self.inputs.context(d),
                loss: &self.loss,
                grams: &self.grams,
                chunks: &self.chunks[..n_chunks],
            };
            self.backward.run(&up, parallel);
            self.timings.backward += finished.elapsed();
        }
        Ok(Some(FastOutput {
            sq_error,
            sq_norm,
            coefficients: &self.loss.c,
            mask: &self.loss.mask,
            factor_grads: if backward { &self.backward.grads } else { &[] },
            grads_finite: !backward || self.backward.finite(),
            batch: b,
            n_v: self.layout.n_v,
        }))
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
        let grads = std::mem::take(&mut self.backward.grads);
        let parallel = self.runs_parallel(next.len());
        let mut prefetch = || -> Result<()> {
            // Counted under the gradients, though it overlaps the update.
            let clock = Instant::now();
            self.prefetched_rows.clear();
            self.gradients(next, rng, parallel)?;
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
        self.backward.grads = grads;
        fetched.map(|()| out)
    }

    /// The decomposition must be laid out as the one the step was built for, and the batch
    /// large enough for its references.
    fn check(&self, d: &Decomposition<T>, rows: &[usize]) -> Result<()> {
        self.layout.check(d)?;
        let least = self.inputs.pass.min_batch();
        if rows.len() < least {
            return Err(L3dError::Batch(format!(
                "a batch of {} samples; it needs at least {least}",
                rows.len(),
            )));
        }
        Ok(())
    }

    /// Samples per chunk: [`CHUNK_ROWS`], or fewer for a pass whose samples are large (the
    /// attention pass's sequences). Fixed by the model, not by the number of threads.
    fn chunk_rows(&self) -> usize {
        self.inputs.pass.chunk_rows()
    }

    /// Sizes every buffer for batches of up to `b` rows (allocates; steps then reuse them).
    fn reserve(&mut self, b: usize) {
        let per = self.chunk_rows();
        let n_chunks = b.div_ceil(per);
        let (n_v, factored) = (self.layout.n_v, self.inputs.pass.split().factored().len());
        while self.chunks.len() < n_chunks {
            self.chunks.push(Chunk::new(per, n_v, factored));
        }
        self.inputs.pass.reserve(n_chunks);
        self.loss.resize(b, n_v);
    }

    /// The per-sample gradients of the batch `rows`, with the chunks sized for it; the
    /// buffers follow the pass's split if it changed.
    fn gradients(&mut self, rows: &[usize], rng: &mut impl Rng, parallel: bool) -> Result<()> {
        let b = rows.len();
        self.reserve(b);
        let per = self.chunk_rows();
        for (k, chunk) in self.chunks.iter_mut().enumerate() {
            chunk.span = Span::of(k, b, per);
        }
        let n_chunks = b.div_ceil(per);
        if self.inputs.pass.compute(rows, rng, n_chunks, parallel)? {
            self.adopt_split();
        }
        Ok(())
    }

    /// Lays the buffers out for the pass's split (after the tape's changed; allocates).
    fn adopt_split(&mut self) {
        let split = self.inputs.pass.split();
        self.inputs.prepared = Prepared::for_split(split);
        let modes: Vec<usize> = self.layout.tensors.iter().map(|(s, _)| s.len()).collect();
        self.backward.adopt(split, &modes);
        for chunk in &mut self.chunks {
            chunk.fit_products(split.factored().len());
        }
    }

    /// The dense forms, the encoder's packed factors, then `c` and `s` per chunk.
    fn encode(&mut self, d: &Decomposition<T>, n_chunks: usize, parallel: bool) {
        let inputs = &mut self.inputs;
        let split = inputs.pass.split();
        let rows = inputs.pass.chunk_rows();
        inputs
            .prepared
            .form_dense(d, split, (n_chunks, rows), parallel);
        inputs.prepared.form_rights(d, split);
        inputs
            .prepared
            .pack(d, split, Side::Encoder, (n_chunks, rows), parallel);
        let ctx = inputs.context(d);
        each(&mut self.chunks[..n_chunks], parallel, |_, c| {
            c.encode(&ctx, Side::Encoder)
        });
        let n_v = self.layout.n_v;
        for c in &self.chunks[..n_chunks] {
            let (rows, s) = c.coefficients(n_v);
            self.loss.c[c.span.values(n_v)].copy_from_slice(rows);
            self.loss.s[c.span.values(1)].copy_from_slice(s);
        }
    }

    /// `d` per chunk beside the decoder's mode Grams, then `G`.
    fn decode(&mut self, d: &Decomposition<T>, n_chunks: usize, parallel: bool) {
        let cols = d.decoder.iter().map(|cp| cp.columns()).max().unwrap_or(0);
        let inputs = &mut self.inputs;
        inputs.pool.grow(parallel, cols);
        let (split, rows) = (inputs.pass.split(), inputs.pass.chunk_rows());
        inputs
            .prepared
            .pack(d, split, Side::Decoder, (n_chunks, rows), parallel);
        let ctx = inputs.context(d);
        let chunks = &mut self.chunks[..n_chunks];
        let grams = &mut self.grams;
        let mut run_chunks = || each(chunks, parallel, |_, c| c.encode(&ctx, Side::Decoder));
        let mut run_grams = || grams.compute_blocks(d, parallel, ctx.pool);
        if parallel {
            rayon::join(run_chunks, run_grams);
        } else {
            run_chunks();
            run_grams();
        }
        let n_v = self.layout.n_v;
        for c in &self.chunks[..n_chunks] {
            self.loss.d[c.span.values(n_v)].copy_from_slice(c.decoder_products(n_v));
        }
        self.grams.finish(d, parallel, &mut self.loss.g);
    }
}
