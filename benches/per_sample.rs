//! Per-sample gradients of the `per-sample-grad` case of WORKLOADS.md: the `mlp-wide` model
//! (MLP 64 -> 256 -> 256 -> 64, GELU on the hidden layers, linear output, Kaiming-normal
//! weights from seed 0, zero biases; 98,880 parameters), a batch of 256 inputs drawn from
//! N(0, 1), the per-sample MSE against a random N(0, 1) target.
//!
//! - `per_sample/batched`: [`per_sample_grads`], one batched pass, every gradient materialised
//!   (`into_dense`, `[256, ..param shape]`).
//! - `per_sample/loop`: [`per_sample_grads_loop`], 256 single-sample gradients.
//!
//! Throughput is in samples, so criterion's elements/s are samples/s.
//!
//! Run: `cargo bench --bench per_sample`.

use autodiff::{per_sample_grads, per_sample_grads_loop, Result, Tape, Var};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::time::Duration;
use tensor::{rng, Tensor};

const WIDTHS: [usize; 4] = [64, 256, 256, 64];
const BATCH: usize = 256;

/// Weights `[out, in]` from N(0, 2 / in) (Kaiming-normal, fan-in, for ReLU-like layers), drawn
/// layer by layer from one generator seeded 0; biases zero.
fn mlp_wide_params() -> Vec<Tensor<f32>> {
    let mut r = rng(0);
    WIDTHS
        .windows(2)
        .flat_map(|w| {
            let std = (2.0 / w[0] as f64).sqrt();
            [
                Tensor::randn(&[w[1], w[0]], std, &mut r),
                Tensor::zeros(&[w[1]]),
            ]
        })
        .collect()
}

/// `x[0]: [B, 64]` through the MLP; the per-sample MSE against `x[1]: [B, 64]`, `[B]`.
fn mlp_wide_loss(tape: &mut Tape<f32>, p: &[Var], x: &[Var]) -> Result<Var> {
    let layers = p.len() / 2;
    let mut h = x[0];
    for (l, pair) in p.chunks(2).enumerate() {
        h = tape.try_linear(h, pair[0], Some(pair[1]))?;
        if l + 1 < layers {
            h = tape.gelu(h);
        }
    }
    tape.try_mse(h, x[1])
}

fn per_sample(c: &mut Criterion) {
    let params = mlp_wide_params();
    let count: usize = params.iter().map(|t| t.numel()).sum();
    assert_eq!(count, 98_880, "mlp-wide has 98,880 parameters");
    let mut r = rng(1);
    let x = Tensor::<f32>::randn(&[BATCH, WIDTHS[0]], 1.0, &mut r);
    let target = Tensor::<f32>::randn(&[BATCH, WIDTHS[3]], 1.0, &mut r);
    let mut group = c.benchmark_group("per_sample");
    group.throughput(Throughput::Elements(BATCH as u64));
    // A pass takes 0.1 to 0.3 s: ten samples of one pass each.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("batched", |bench| {
        bench.iter(|| {
            let grads = per_sample_grads(&params, &[&x, &target], mlp_wide_loss)
                .expect("per-sample gradients");
            let dense: Vec<Tensor<f32>> = grads.into_iter().map(|g| g.into_dense()).collect();
            black_box(dense)
        })
    });
    group.bench_function("loop", |bench| {
        bench.iter(|| {
            per_sample_grads_loop(&params, &[&x, &target], mlp_wide_loss)
                .expect("per-sample gradients")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = per_sample
}
criterion_main!(benches);
