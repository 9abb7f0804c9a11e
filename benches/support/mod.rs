//! The speed benchmark of WORKLOADS.md ("Benchmark cases", `toys::workloads`): each case
//! timed on the fast path (`l3d::fast`) and the tape path (`l3d::step::tape_step`), with peak
//! heap memory, the fast path's time split, its speedup from one thread to two, raw `sgemm`
//! GFLOP/s measured in the same run, and the tape path's effective GFLOP/s, so the gap to the
//! machine is visible.
//!
//! [`run`] measures and returns a [`BenchTable`] (`table.rs`), whose `Display` is a markdown
//! table. The `l3d_table` bench target (`cargo bench --bench l3d_table`) includes this module
//! and prints it; the criterion benches in `l3d_step.rs` time the same cases step by step.
//!
//! Peak memory needs [`TrackingAllocator`] (`alloc.rs`) as the binary's global allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: support::TrackingAllocator = support::TrackingAllocator;
//! ```
//!
//! Without it the table says `n/a`.

mod alloc;
mod sgemm;
mod table;

pub use alloc::TrackingAllocator;
pub use table::{BenchRow, BenchTable, ProductRow};

use alloc::{peak_during, tracking};
use l3d::fast::per_sample::MlpPerSample;
use l3d::fast::Timings;
use l3d::pairs::{draw_partners, per_sample_gradients, reference_outputs};
use l3d::{Divergence, L3dConfig, Model, StepPath, Trainer};
use sgemm::raw_sgemm;
use std::time::{Duration, Instant};
use tensor::gemm::{gemm, GemmScratch, MatMut, MatRef};
use tensor::{rng, Tensor, Transpose};
use toys::workloads::BenchCase;

/// How much to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    pub cases: Vec<BenchCase>,
    /// Timed epochs (or calls) of the fast path, after one warm-up; the median is reported.
    pub fast_repeats: usize,
    /// Timed epochs of the tape path (slow on `mlp-wide`), after one warm-up.
    pub tape_repeats: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            cases: BenchCase::ALL.to_vec(),
            fast_repeats: 15,
            tape_repeats: 3,
        }
    }
}

impl BenchOptions {
    /// One timed repeat of everything: for a smoke test, not for numbers.
    pub fn quick() -> Self {
        Self {
            cases: BenchCase::ALL.to_vec(),
            fast_repeats: 1,
            tape_repeats: 1,
        }
    }
}

/// Runs the benchmark. Takes about a minute with the default options.
pub fn run(options: &BenchOptions) -> BenchTable {
    let tracking = tracking();
    let rows = options
        .cases
        .iter()
        .map(|&case| match case {
            BenchCase::PerSampleGrad => per_sample_row(options),
            _ => epoch_row(case, options),
        })
        .map(|mut row| {
            if !tracking {
                row.fast_peak = None;
                row.tape_peak = None;
            }
            row
        })
        .collect();
    let wide = options.cases.contains(&BenchCase::MlpWide);
    let products = if wide {
        tape_products(options.fast_repeats.clamp(1, 3))
    } else {
        Vec::new()
    };
    let peak_by_batch = if tracking {
        let grows = [BenchCase::MlpWide, BenchCase::Cnn, BenchCase::Attention];
        let cases = options.cases.iter().filter(|c| grows.contains(c));
        cases
            .flat_map(|&case| [64, 256].map(|b| (case, b, fast_peak_at_batch(case, b))))
            .collect()
    } else {
        Vec::new()
    };
    BenchTable {
        rows,
        sgemm_gflops: sgemm_gflops(1024, options.fast_repeats.clamp(1, 5)),
        fast_gemm_gflops: fast_gemm_gflops(256, options.fast_repeats.clamp(1, 5)),
        products,
        peak_by_batch,
        threads: rayon::current_num_threads(),
        tracking,
    }
}

/// The median of `repeats` timings of `f`.
fn median(repeats: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..repeats.max(1)).map(|_| f()).collect();
    times.sort();
    times[times.len() / 2]
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

/// Median epoch time of a trainer on `path` (after one warm-up epoch), its peak memory, and
/// the fast path's split per epoch.
fn epochs(case: BenchCase, path: StepPath, repeats: usize) -> (Duration, usize, Timings) {
    let (model, x) = (case.model(), case.data());
    let config = L3dConfig {
        epochs: repeats + 1,
        ..case.config(path)
    };
    let ((time, split), peak) = peak_during(|| {
        let mut trainer = Trainer::new(&model, config, &x).expect("a benchmark trainer");
        trainer.run_epoch().expect("warm-up epoch");
        trainer.take_fast_timings();
        let time = median(repeats, || {
            let start = Instant::now();
            trainer.run_epoch().expect("an epoch");
            start.elapsed()
        });
        (time, trainer.take_fast_timings())
    });
    let per_epoch = |d: Duration| d / repeats.max(1) as u32;
    let split = Timings {
        gradients: per_epoch(split.gradients),
        encode: per_epoch(split.encode),
        decode: per_epoch(split.decode),
        backward: per_epoch(split.backward),
    };
    (time, peak, split)
}

fn epoch_row(case: BenchCase, options: &BenchOptions) -> BenchRow {
    let (fast, fast_peak, split) = epochs(case, StepPath::Fast, options.fast_repeats);
    let (tape, tape_peak, _) = epochs(case, StepPath::Tape, options.tape_repeats);
    let (model, x) = (case.model(), case.data());
    let config = L3dConfig {
        epochs: 2 * options.fast_repeats + 2,
        ..case.config(StepPath::Fast)
    };
    let speedup = thread_speedup(
        options.fast_repeats,
        || Trainer::new(&model, config.clone(), &x).expect("a benchmark trainer"),
        |t| {
            t.run_epoch().expect("an epoch");
        },
    );
    let flops = EpochFlops::of(case);
    BenchRow {
        case,
        fast,
        tape,
        fast_peak: Some(fast_peak),
        tape_peak: Some(tape_peak),
        split,
        speedup_2_threads: speedup,
        fast_gflops: flops.fast / fast.as_secs_f64() / 1e9,
        tape_gflops: flops.tape / tape.as_secs_f64() / 1e9,
    }
}

/// Time on one thread over time on two, the ratio of two medians: a state built in a
/// one-thread pool and one built in a two-thread pool take turns, each turn an untimed run
/// and a timed one, so that a slow spell of a shared machine falls on both.
fn thread_speedup<S: Send>(
    repeats: usize,
    build: impl Fn() -> S + Sync,
    run: impl Fn(&mut S) + Sync,
) -> f64 {
    let pools = [pool(1), pool(2)];
    let mut states = pools.each_ref().map(|p| {
        p.install(|| {
            let mut state = build();
            run(&mut state);
            state
        })
    });
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..repeats.max(1) {
        for ((p, state), times) in pools.iter().zip(&mut states).zip(&mut times) {
            // An untimed run first: the other pool's threads may still be spinning down.
            p.install(|| run(state));
            let start = Instant::now();
            p.install(|| run(state));
            times.push(start.elapsed());
        }
    }
    let [one, two] = times.map(|mut v| {
        v.sort();
        v[v.len() / 2]
    });
    one.as_secs_f64() / two.as_secs_f64()
}

/// The fast path's peak heap over building a trainer and one epoch of `case` with batches of
/// `batch`.
fn fast_peak_at_batch(case: BenchCase, batch: usize) -> usize {
    let (model, x) = (case.model(), case.data());
    let config = L3dConfig {
        batch_size: batch,
        ..case.config(StepPath::Fast)
    };
    peak_during(|| {
        let mut trainer = Trainer::new(&model, config, &x).expect("a benchmark trainer");
        trainer.run_epoch().expect("an epoch");
    })
    .1
}

/// `per-sample-grad`: the fast path's materialised gradients against the tape's.
fn per_sample_row(options: &BenchOptions) -> BenchRow {
    let case = BenchCase::PerSampleGrad;
    let (model, x) = (case.model(), case.data());
    let y0 = model.evaluate_w0(&x).expect("mlp-wide evaluates");
    let partners = draw_partners(x.shape()[0], &mut rng(2));
    let r = reference_outputs(
        &y0,
        l3d::Reference::RandomSample,
        Divergence::Mse,
        &partners,
    );
    let all: Vec<usize> = (0..model.params().len()).collect();
    let fast_calls = |repeats: usize| {
        let mut pass = MlpPerSample::new(&model).expect("mlp-wide is an MLP");
        let mut out = Vec::new();
        let mut call = || {
            let start = Instant::now();
            pass.gradients_into(&x, &r, Divergence::Mse, &mut out)
                .expect("per-sample gradients");
            start.elapsed()
        };
        call();
        median(repeats, call)
    };
    let (fast, fast_peak) = peak_during(|| fast_calls(options.fast_repeats));
    let (tape, tape_peak) = peak_during(|| {
        median(options.tape_repeats + 1, || {
            let start = Instant::now();
            let grads = per_sample_gradients(&model, &all, &x, &r, Divergence::Mse)
                .expect("per-sample gradients");
            let dense: Vec<Tensor<f32>> = grads.into_iter().map(|g| g.into_dense()).collect();
            std::hint::black_box(dense);
            start.elapsed()
        })
    });
    let speedup = thread_speedup(
        options.fast_repeats,
        || {
            (
                MlpPerSample::new(&model).expect("mlp-wide is an MLP"),
                Vec::new(),
            )
        },
        |(pass, out)| {
            pass.gradients_into(&x, &r, Divergence::Mse, out)
                .expect("per-sample gradients");
        },
    );
    let flops = EpochFlops::of(case);
    BenchRow {
        case,
        fast,
        tape,
        fast_peak: Some(fast_peak),
        tape_peak: Some(tape_peak),
        split: Timings::default(),
        speedup_2_threads: speedup,
        fast_gflops: flops.fast / fast.as_secs_f64() / 1e9,
        tape_gflops: flops.tape / tape.as_secs_f64() / 1e9,
    }
}

/// The floating-point operations of each path's matrix products (2 per multiply-add) in one
/// epoch, counted from the shapes of an MLP's layers (zero, not counted, for the CNN and the
/// transformer, whose products the formula does not describe).
struct EpochFlops {
    fast: f64,
    tape: f64,
}

impl EpochFlops {
    fn of(case: BenchCase) -> Self {
        if matches!(case, BenchCase::Cnn | BenchCase::Attention) {
            return Self {
                fast: 0.0,
                tape: 0.0,
            };
        }
        let model = case.model();
        let config = case.config(StepPath::Fast);
        let x = case.data();
        let steps = x.shape()[0].div_ceil(config.batch_size) as f64;
        let b = config.batch_size as f64;
        let n_v = config.n_subnetworks as f64;
        let shapes = model.param_shapes();
        // The model's forward and the backward of its deltas: 2 B n_in n_out per layer each.
        let layers: f64 = shapes
            .iter()
            .filter(|s| s.len() == 2)
            .map(|s| 2.0 * b * (s[0] * s[1]) as f64)
            .sum();
        if case == BenchCase::PerSampleGrad {
            let outer: f64 = shapes
                .iter()
                .map(|s| b * s.iter().product::<usize>() as f64)
                .sum();
            return Self {
                fast: 2.0 * layers + outer,
                tape: 2.0 * layers + 2.0 * outer,
            };
        }
        let (mut fast, mut tape) = (2.0 * layers, 3.0 * layers);
        for s in &shapes {
            let rank = config.rank_for("", s.len()) as f64;
            let cols = n_v * rank;
            let numel = s.iter().product::<usize>() as f64;
            let modes: f64 = s.iter().sum::<usize>() as f64;
            // Fast: encode and decode (P and Q, or g V^T), their backward, the decoder's mode
            // Grams and their backward.
            let per_sample = if s.len() == 2 {
                cols * modes
            } else {
                n_v * numel
            };
            fast += 8.0 * b * per_sample + 4.0 * cols * cols * modes;
            // Tape: materialising g (outer products), the encode product and its backward,
            // the decode product and its two backward products.
            tape += 2.0 * b * numel + 4.0 * b * numel * cols + 6.0 * b * n_v * numel;
        }
        Self {
            fast: fast * steps,
            tape: tape * steps,
        }
    }
}

/// Raw `matrixmultiply::sgemm` GFLOP/s on `n x n x n`, best of `repeats`.
fn sgemm_gflops(n: usize, repeats: usize) -> f64 {
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let best = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            raw_sgemm((n, n, n), &a, (n, 1), &b, (n, 1), &mut c);
            start.elapsed()
        })
        .min()
        .expect("at least one repeat");
    2.0 * (n * n * n) as f64 / best.as_secs_f64() / 1e9
}

/// The fast path's GEMM on one thread, `n x n x n`, best of `repeats`.
fn fast_gemm_gflops(n: usize, repeats: usize) -> f64 {
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut scratch = GemmScratch::default();
    let mut product = || {
        let start = Instant::now();
        let (am, bm) = (MatRef::rows(&a, n, n), MatRef::rows(&b, n, n));
        gemm(1.0, am, bm, 0.0, MatMut::rows(&mut c, n, n), &mut scratch);
        start.elapsed()
    };
    product();
    let best = (0..repeats).map(|_| product()).min().expect("a repeat");
    2.0 * (n * n * n) as f64 / best.as_secs_f64() / 1e9
}

/// The largest products of the tape path's step on `mlp-wide` (the middle weight, 256 x 256,
/// `B = 64`, `n_v = 32`, `C = 128`), each through `Tensor::matmul_t` and as raw `sgemm` with the
/// same operand layouts (best of `repeats` each).
fn tape_products(repeats: usize) -> Vec<ProductRow> {
    let (b, p, q, n_v, cols) = (64, 256, 256, 32, 128);
    let shapes: [(usize, usize, usize, Transpose, Transpose, &str); 5] = [
        (
            b * p,
            q,
            cols,
            Transpose::No,
            Transpose::No,
            "encode: g [B p, q] @ F_1",
        ),
        (
            q,
            b * p,
            cols,
            Transpose::Yes,
            Transpose::No,
            "encode backward: g^T @ dX",
        ),
        (
            b,
            n_v,
            p * q,
            Transpose::No,
            Transpose::Yes,
            "decode: c @ V^T",
        ),
        (
            b,
            p * q,
            n_v,
            Transpose::No,
            Transpose::No,
            "decode backward: dG @ V",
        ),
        (
            p * q,
            b,
            n_v,
            Transpose::Yes,
            Transpose::No,
            "decode backward: dG^T @ c",
        ),
    ];
    shapes
        .iter()
        .map(|&(m, k, n, ta, tb, role)| {
            let a_shape = if ta == Transpose::No { [m, k] } else { [k, m] };
            let b_shape = if tb == Transpose::No { [k, n] } else { [n, k] };
            let a = Tensor::<f32>::randn(&a_shape, 1.0, &mut rng(3));
            let bt = Tensor::<f32>::randn(&b_shape, 1.0, &mut rng(4));
            let flops = 2.0 * (m * k * n) as f64;
            let tensor = (0..repeats)
                .map(|_| {
                    let start = Instant::now();
                    std::hint::black_box(a.matmul_t(ta, &bt, tb));
                    start.elapsed()
                })
                .min()
                .expect("a repeat");
            let strides = |t: Transpose, cols: usize| match t {
                Transpose::No => (cols, 1),
                Transpose::Yes => (1, cols),
            };
            let mut c = vec![0.0f32; m * n];
            let raw = (0..repeats)
                .map(|_| {
                    let start = Instant::now();
                    let sa = strides(ta, a_shape[1]);
                    let sb = strides(tb, b_shape[1]);
                    raw_sgemm((m, k, n), a.data(), sa, bt.data(), sb, &mut c);
                    start.elapsed()
                })
                .min()
                .expect("a repeat");
            ProductRow {
                m,
                k,
                n,
                role,
                tensor_gflops: flops / tensor.as_secs_f64() / 1e9,
                sgemm_gflops: flops / raw.as_secs_f64() / 1e9,
            }
        })
        .collect()
}
