//! Benchmarks of the tensor kernels, each reporting throughput so that a change reads as a
//! ratio:
//!
//! - `matmul/tensor/n`: `Tensor::matmul` of two `n x n` f32 matrices (allocating its output),
//!   next to `matmul/sgemm/n`, raw `matrixmultiply::sgemm` into a preallocated output. Throughput
//!   is in FLOPs (`2 n^3` "elements"), so criterion's elements/s are FLOP/s.
//! - `elementwise/{add,mul,relu,gelu}/n` and `reductions/{sum,dot,axpy}/n`: elements/s, at a
//!   length that stays on one thread and one that takes the parallel chunked path.
//!
//! Run: `cargo bench --bench tensor_kernels` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quicker pass).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use tensor::kernels::{self, PARALLEL_MIN};
use tensor::{rng, Tensor};

/// The square sizes of the GEMM benchmark.
const MATMUL_SIZES: [usize; 5] = [64, 128, 256, 512, 1024];

/// Vector lengths: below the parallel threshold (one thread, in cache) and well above it.
const VECTOR_LENGTHS: [usize; 2] = [PARALLEL_MIN / 16, 1 << 22];

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    // One 1024 product takes about 20 ms; ten samples keep the group to seconds.
    group.sample_size(10);
    for n in MATMUL_SIZES {
        let mut r = rng(0);
        let a = Tensor::<f32>::randn(&[n, n], 1.0, &mut r);
        let b = Tensor::<f32>::randn(&[n, n], 1.0, &mut r);
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::new("tensor", n), &n, |bench, _| {
            bench.iter(|| black_box(&a).matmul(black_box(&b)))
        });
        let mut out = vec![0.0f32; n * n];
        group.bench_with_input(BenchmarkId::new("sgemm", n), &n, |bench, _| {
            bench.iter(|| {
                // SAFETY: `a`, `b` and `out` hold `n * n` elements each, read and written
                // row-major with row stride `n` and column stride 1; `out` is a distinct
                // allocation, so it aliases neither input.
                unsafe {
                    matrixmultiply::sgemm(
                        n,
                        n,
                        n,
                        1.0,
                        a.data().as_ptr(),
                        n as isize,
                        1,
                        b.data().as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
    }
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("elementwise");
    for n in VECTOR_LENGTHS {
        let mut r = rng(1);
        let x = Tensor::<f32>::randn(&[n], 1.0, &mut r);
        let y = Tensor::<f32>::randn(&[n], 1.0, &mut r);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("add", n), &n, |bench, _| {
            bench.iter(|| black_box(&x).add(black_box(&y)))
        });
        group.bench_with_input(BenchmarkId::new("mul", n), &n, |bench, _| {
            bench.iter(|| black_box(&x).mul(black_box(&y)))
        });
        group.bench_with_input(BenchmarkId::new("relu", n), &n, |bench, _| {
            bench.iter(|| black_box(&x).relu())
        });
        group.bench_with_input(BenchmarkId::new("gelu", n), &n, |bench, _| {
            bench.iter(|| black_box(&x).gelu())
        });
    }
    group.finish();
}

fn reductions(c: &mut Criterion) {
    let mut group = c.benchmark_group("reductions");
    for n in VECTOR_LENGTHS {
        let mut r = rng(2);
        let x = Tensor::<f32>::randn(&[n], 1.0, &mut r);
        let y = Tensor::<f32>::randn(&[n], 1.0, &mut r);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("sum", n), &n, |bench, _| {
            bench.iter(|| kernels::sum(black_box(x.data())))
        });
        group.bench_with_input(BenchmarkId::new("dot", n), &n, |bench, _| {
            bench.iter(|| kernels::dot(black_box(x.data()), black_box(y.data())))
        });
        let mut acc = y.clone();
        group.bench_with_input(BenchmarkId::new("axpy", n), &n, |bench, _| {
            bench.iter(|| kernels::axpy(1e-3, black_box(x.data()), acc.data_mut()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short windows so that the whole file runs in about a minute; the command line overrides.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = matmul, elementwise, reductions
}
criterion_main!(benches);
