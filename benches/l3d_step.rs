//! Benchmarks of the L3D hot loop on the benchmark cases of WORKLOADS.md (built by
//! `toys::workloads::BenchCase`), fast path (`l3d::fast`) next to tape path (`l3d::step`):
//!
//! - `l3d_step/<case>/{fast,tape}`: one step on the first batch of the case's data: per-sample
//!   gradients (with the random references), encode, batch top-k, decode, loss and the gradient
//!   of every factor. Throughput in samples.
//! - `l3d_epoch/<case>/fast` (and `tape` for the toys): one training epoch (`Trainer::run_epoch`:
//!   every batch's step, AdamW, decoder renormalisation). The tape path's `mlp-wide` epoch takes
//!   seconds; `cargo bench --bench l3d_table` times it.
//! - `per_sample_grad/mlp-wide/{fast,tape}`: `mlp-wide`'s per-sample gradients of 256 samples,
//!   materialised (`[256, ..param shape]` per parameter).
//! - `gemm/fast_gemm/<m>x<k>x<n>` next to `gemm/sgemm/<m>x<k>x<n>`: the fast path's GEMM
//!   (`tensor::gemm`, one thread) on the hot loop's shapes, against raw `sgemm` (its own
//!   threads). Throughput in FLOPs, so elements/s are FLOP/s.
//!
//! Run: `cargo bench --bench l3d_step` (add `-- --warm-up-time 1 --measurement-time 3` for a
//! quicker pass, or a filter such as `l3d_epoch`).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use l3d::fast::per_sample::MlpPerSample;
use l3d::fast::FastStep;
use l3d::pairs::{draw_partners, pair_gradients, per_sample_gradients, reference_outputs};
use l3d::step::{tape_step, MaskRule};
use l3d::{Decomposition, Divergence, Model, Reference, StepPath, Trainer};
use std::hint::black_box;
use std::time::Duration;
use tensor::gemm::{gemm, GemmScratch, MatMut, MatRef};
use tensor::{rng, Tensor};
#[path = "support/sgemm.rs"]
mod sgemm;

use sgemm::raw_sgemm;
use toys::workloads::BenchCase;

const STEP_CASES: [BenchCase; 3] = [BenchCase::Tms, BenchCase::Squared, BenchCase::MlpWide];

fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("l3d_step");
    for case in STEP_CASES {
        let (model, x) = (case.model(), case.data());
        let config = case.config(StepPath::Fast);
        let d = Decomposition::new(&model, &config).expect("a decomposition of the case");
        let rows: Vec<usize> = (0..config.batch_size).collect();
        let rule = MaskRule::top_k(config.top_k);
        group.throughput(Throughput::Elements(rows.len() as u64));
        if case == BenchCase::MlpWide {
            group.sample_size(10);
            group.sampling_mode(SamplingMode::Flat);
        }
        let mut fast = FastStep::new(&model, &x, &d, &config).expect("a fast step");
        group.bench_function(BenchmarkId::new(case.name(), "fast"), |b| {
            b.iter(|| {
                let out = fast
                    .run(&d, &rows, &mut rng(1), rule, true)
                    .expect("a step");
                black_box(out.map(|o| o.sq_error));
            })
        });
        group.bench_function(BenchmarkId::new(case.name(), "tape"), |b| {
            b.iter(|| {
                let batch = x.gather_rows(&rows);
                let (reference, divergence) = (config.reference, config.divergence);
                let mut r = rng(1);
                let grads: Vec<Tensor<f32>> = pair_gradients(
                    &model,
                    &d.param_index,
                    &batch,
                    reference,
                    divergence,
                    &config.positions,
                    &mut r,
                )
                .expect("per-sample gradients")
                .into_iter()
                .map(|g| g.into_dense())
                .collect();
                black_box(tape_step(&d, &grads, rule).expect("a step"))
            })
        });
    }
    group.finish();
}

fn epoch(c: &mut Criterion) {
    let mut group = c.benchmark_group("l3d_epoch");
    group.sample_size(20);
    for case in STEP_CASES {
        let (model, x) = (case.model(), case.data());
        group.throughput(Throughput::Elements(x.shape()[0] as u64));
        let paths: &[StepPath] = if case == BenchCase::MlpWide {
            &[StepPath::Fast]
        } else {
            &[StepPath::Fast, StepPath::Tape]
        };
        for &path in paths {
            let mut trainer = Trainer::new(&model, case.config(path), &x).expect("a trainer");
            let name = if path == StepPath::Fast {
                "fast"
            } else {
                "tape"
            };
            group.bench_function(BenchmarkId::new(case.name(), name), |b| {
                b.iter(|| black_box(trainer.run_epoch().expect("an epoch").loss))
            });
        }
    }
    group.finish();
}

fn per_sample_grad(c: &mut Criterion) {
    let case = BenchCase::PerSampleGrad;
    let (model, x) = (case.model(), case.data());
    let y0 = model.evaluate_w0(&x).expect("outputs");
    let partners = draw_partners(x.shape()[0], &mut rng(2));
    let r = reference_outputs(&y0, Reference::RandomSample, Divergence::Mse, &partners);
    let all: Vec<usize> = (0..model.params().len()).collect();
    let mut group = c.benchmark_group("per_sample_grad");
    group.throughput(Throughput::Elements(x.shape()[0] as u64));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let mut pass = MlpPerSample::new(&model).expect("mlp-wide is an MLP");
    let mut out = Vec::new();
    group.bench_function(BenchmarkId::new("mlp-wide", "fast"), |b| {
        b.iter(|| {
            pass.gradients_into(&x, &r, Divergence::Mse, &mut out)
                .expect("per-sample gradients");
            black_box(out[0].data()[0])
        })
    });
    group.bench_function(BenchmarkId::new("mlp-wide", "tape"), |b| {
        b.iter(|| {
            let grads = per_sample_gradients(&model, &all, &x, &r, Divergence::Mse)
                .expect("per-sample gradients");
            black_box(
                grads
                    .into_iter()
                    .map(|g| g.into_dense())
                    .collect::<Vec<_>>(),
            )
        })
    });
    group.finish();
}

/// The hot loop's products on `mlp-wide` (`B = 64` in chunks of 32, `C = 128`): encode
/// `[32, 256] @ [256, 128]`, the forward `[32, 256] @ [256, 256]`, a factor's backward
/// `[256, 32] @ [32, 128]`, a Gram `[128, 256] @ [256, 128]`, its backward
/// `[256, 128] @ [128, 128]`; and the toys' `[32, 5] @ [5, 10]`.
const GEMM_SHAPES: [(usize, usize, usize); 6] = [
    (32, 256, 128),
    (32, 256, 256),
    (256, 32, 128),
    (128, 256, 128),
    (256, 128, 128),
    (32, 5, 10),
];

fn fast_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    for (m, k, n) in GEMM_SHAPES {
        let a = Tensor::<f32>::randn(&[m, k], 1.0, &mut rng(3));
        let b = Tensor::<f32>::randn(&[k, n], 1.0, &mut rng(4));
        let mut out = vec![0.0f32; m * n];
        let id = format!("{m}x{k}x{n}");
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        let mut scratch = GemmScratch::default();
        group.bench_function(BenchmarkId::new("fast_gemm", &id), |bench| {
            bench.iter(|| {
                let (am, bm) = (MatRef::rows(a.data(), m, k), MatRef::rows(b.data(), k, n));
                gemm(1.0, am, bm, 0.0, MatMut::rows(&mut out, m, n), &mut scratch);
                black_box(out[0])
            })
        });
        group.bench_function(BenchmarkId::new("sgemm", &id), |bench| {
            bench.iter(|| {
                raw_sgemm((m, k, n), a.data(), (k, 1), b.data(), (n, 1), &mut out);
                black_box(out[0])
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = step, epoch, per_sample_grad, fast_gemm
}
criterion_main!(benches);
