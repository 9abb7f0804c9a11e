//! The benchmark table: what [`super::run`] measured, and its markdown.

use l3d::fast::Timings;
use l3d::Model;
use std::fmt;
use std::time::Duration;
use toys::workloads::BenchCase;

/// One case's measurements. Times are per epoch (per call for `per-sample-grad`).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub case: BenchCase,
    pub fast: Duration,
    pub tape: Duration,
    /// Peak heap bytes above the start, over building, warm-up and the timed runs.
    pub fast_peak: Option<usize>,
    pub tape_peak: Option<usize>,
    /// The fast path's phases per epoch (zero for `per-sample-grad`); the rest of an epoch
    /// (AdamW, renormalisation, batching) is `fast` minus their sum.
    pub split: Timings,
    /// Fast path, one thread's time over two threads' time (medians of runs taken in turn).
    pub speedup_2_threads: f64,
    /// Multiply-adds times two of each path's matrix products per epoch, over its time (0:
    /// not counted for this case).
    pub fast_gflops: f64,
    pub tape_gflops: f64,
}

/// A matrix product of the tape path timed through `Tensor::matmul_t` and as raw `sgemm`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRow {
    /// `m x k` by `k x n`, and what it is in the tape step.
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub role: &'static str,
    pub tensor_gflops: f64,
    pub sgemm_gflops: f64,
}

/// Everything [`run`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchTable {
    pub rows: Vec<BenchRow>,
    /// Raw `matrixmultiply::sgemm`, 1024 cubed, its own threads.
    pub sgemm_gflops: f64,
    /// The fast path's GEMM kernel, 256 cubed, one thread.
    pub fast_gemm_gflops: f64,
    /// The tape path's large products on `mlp-wide` (empty if the case was not run).
    pub products: Vec<ProductRow>,
    /// The fast path's peak heap on `mlp-wide`, `cnn` and `attention` (those run) with batches
    /// of 64 and 256: `(case, batch, bytes)` (empty if memory was not tracked).
    pub peak_by_batch: Vec<(BenchCase, usize, usize)>,
    pub threads: usize,
    pub tracking: bool,
}

fn time(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn bytes(b: Option<usize>) -> String {
    match b {
        None => "n/a".into(),
        Some(b) if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1 << 20) as f64),
        Some(b) => format!("{:.0} KB", b as f64 / 1024.0),
    }
}

fn gflops(g: f64) -> String {
    if g > 0.0 {
        format!("{g:.1}")
    } else {
        "-".into()
    }
}

fn share(part: Duration, total: Duration) -> String {
    if part.is_zero() {
        "-".into()
    } else {
        format!("{:.0}%", 100.0 * part.as_secs_f64() / total.as_secs_f64())
    }
}

impl BenchTable {
    fn write_cases(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| case | fast | tape | tape / fast | fast peak | tape peak | gradients | encode \
             | decode | backward | rest | 2 threads vs 1 | fast GFLOP/s | tape GFLOP/s |"
        )?;
        writeln!(f, "|---|{}", "---:|".repeat(13))?;
        for r in &self.rows {
            let s = &r.split;
            let phases = s.gradients + s.encode + s.decode + s.backward;
            let rest = if phases.is_zero() {
                Duration::ZERO
            } else {
                r.fast.saturating_sub(phases)
            };
            let shares = [s.gradients, s.encode, s.decode, s.backward, rest]
                .map(|part| share(part, r.fast))
                .join(" | ");
            writeln!(
                f,
                "| {} | {} | {} | {:.0}x | {} | {} | {shares} | {:.2}x | {} | {} |",
                r.case.name(),
                time(r.fast),
                time(r.tape),
                r.tape.as_secs_f64() / r.fast.as_secs_f64(),
                bytes(r.fast_peak),
                bytes(r.tape_peak),
                r.speedup_2_threads,
                gflops(r.fast_gflops),
                gflops(r.tape_gflops),
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Times per epoch (per call for per-sample-grad), median. The split is the share of \
             the fast path's epoch in each phase; the rest is AdamW, decoder renormalisation \
             and batching (in parallel steps the next batch's gradients run beside AdamW and \
             the renormalisation, and count as gradients). Peak: heap above the start, over \
             building, warm-up and timed runs. 2 threads vs 1: medians of epochs run in turn \
             in a one-thread and a two-thread pool."
        )
    }

    fn write_peaks(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.tracking {
            writeln!(
                f,
                "Peak memory: n/a, the counting allocator is not this program's global allocator."
            )?;
        }
        let mut cases: Vec<BenchCase> = self.peak_by_batch.iter().map(|p| p.0).collect();
        cases.dedup();
        for case in cases {
            let rows = self.peak_by_batch.iter().filter(|p| p.0 == case);
            let parts: Vec<String> = rows
                .map(|&(_, b, p)| format!("batch {b}: {}", bytes(Some(p))))
                .collect();
            let n_params: usize = case.model().params().iter().map(|p| p.numel()).sum();
            writeln!(
                f,
                "{} fast-path peak by batch size: {} (B x n_params floats would be {} and {}).",
                case.name(),
                parts.join(", "),
                bytes(Some(64 * n_params * 4)),
                bytes(Some(256 * n_params * 4))
            )?;
        }
        Ok(())
    }

    fn write_products(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.products.is_empty() {
            return Ok(());
        }
        writeln!(f)?;
        writeln!(
            f,
            "Tape path's large products on mlp-wide, Tensor::matmul_t vs raw sgemm:"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| product | m x k x n | tensor GFLOP/s | sgemm GFLOP/s | ratio |"
        )?;
        writeln!(f, "|---|---|---:|---:|---:|")?;
        for p in &self.products {
            writeln!(
                f,
                "| {} | {} x {} x {} | {:.1} | {:.1} | {:.2} |",
                p.role,
                p.m,
                p.k,
                p.n,
                p.tensor_gflops,
                p.sgemm_gflops,
                p.tensor_gflops / p.sgemm_gflops
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for BenchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "f32, {} threads; raw sgemm 1024^3: {:.1} GFLOP/s (matrixmultiply, its own threads); \
             fast-path GEMM 256^3: {:.1} GFLOP/s (one thread)",
            self.threads, self.sgemm_gflops, self.fast_gemm_gflops
        )?;
        writeln!(f)?;
        self.write_cases(f)?;
        self.write_peaks(f)?;
        self.write_products(f)
    }
}
