//! Slice kernels written so the compiler vectorises them, and the fixed-chunk parallel policy.
//!
//! Reductions keep [`LANES`] independent accumulators: the loop body is lane-wise, so the
//! compiler can map it onto SIMD registers without reassociating floating-point sums (which it
//! may not do on its own). The lanes are combined in a fixed order at the end, so the result
//! does not depend on the machine or on the number of threads.
//!
//! Benchmarked in `benches/tensor_kernels.rs` (`dot`, `axpy`, `sum`, elementwise groups).

use crate::element::Float;
use rayon::prelude::*;

/// Independent accumulators per reduction; 16 f32 fill one AVX-512 register.
pub const LANES: usize = 16;

/// Elements per parallel chunk. Fixed, so the chunking (and every partial sum) is the same
/// whatever the number of threads.
pub const CHUNK: usize = 1 << 14;

/// Below this many elements a kernel runs on the calling thread only.
pub const PARALLEL_MIN: usize = 1 << 16;

/// `sum_i x[i] * y[i]` over equal-length slices (lengths are asserted).
pub fn dot<T: Float>(x: &[T], y: &[T]) -> T {
    assert_eq!(x.len(), y.len(), "dot: lengths {} and {}", x.len(), y.len());
    chunked_reduce(x.len(), |range| dot_serial(&x[range.clone()], &y[range]))
}

fn dot_serial<T: Float>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let xs = x.chunks_exact(LANES);
    let ys = y.chunks_exact(LANES);
    let (xr, yr) = (xs.remainder(), ys.remainder());
    for (xc, yc) in xs.zip(ys) {
        for l in 0..LANES {
            acc[l] += xc[l] * yc[l];
        }
    }
    let mut tail = T::zero();
    for (a, b) in xr.iter().zip(yr) {
        tail += *a * *b;
    }
    combine_lanes(acc) + tail
}

/// `sum_i x[i]`.
pub fn sum<T: Float>(x: &[T]) -> T {
    chunked_reduce(x.len(), |range| sum_serial(&x[range]))
}

fn sum_serial<T: Float>(x: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    let mut tail = T::zero();
    for v in rest {
        tail += *v;
    }
    combine_lanes(acc) + tail
}

/// `sum_i x[i]^2`.
pub fn sum_squares<T: Float>(x: &[T]) -> T {
    dot(x, x)
}

/// Euclidean norm `sqrt(sum_i x[i]^2)`.
pub fn norm<T: Float>(x: &[T]) -> T {
    sum_squares(x).sqrt()
}

/// `y <- alpha x + y` (lengths are asserted).
pub fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) {
    assert_eq!(
        x.len(),
        y.len(),
        "axpy: lengths {} and {}",
        x.len(),
        y.len()
    );
    zip_apply(y, x, |yi, xi| *yi += alpha * xi);
}

/// Sums the lanes pairwise in a fixed order.
#[inline]
fn combine_lanes<T: Float>(mut acc: [T; LANES]) -> T {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0]
}

/// Reduces `0..len` by summing `partial(chunk)` over fixed [`CHUNK`]-sized ranges. The partial
/// sums are computed in parallel for long inputs and always added serially in chunk order.
pub fn chunked_reduce<T: Float>(
    len: usize,
    partial: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> T {
    if len <= CHUNK {
        return partial(0..len);
    }
    let ranges: Vec<_> = (0..len)
        .step_by(CHUNK)
        .map(|s| s..(s + CHUNK).min(len))
        .collect();
    let partials: Vec<T> = if len >= PARALLEL_MIN {
        ranges.into_par_iter().map(&partial).collect()
    } else {
        ranges.into_iter().map(&partial).collect()
    };
    partials.into_iter().fold(T::zero(), |a, b| a + b)
}

/// `out[i] = f(out[i], x[i])`-style in-place update over equal-length slices, in parallel
/// over fixed chunks for long inputs. Each element is written by exactly one thread.
pub fn zip_apply<T: Float>(out: &mut [T], x: &[T], f: impl Fn(&mut T, T) + Sync) {
    debug_assert_eq!(out.len(), x.len());
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, xs)| o.iter_mut().zip(xs).for_each(|(a, b)| f(a, *b)));
    } else {
        out.iter_mut().zip(x).for_each(|(a, b)| f(a, *b));
    }
}

/// `out[i] = f(x[i])`, in parallel over fixed chunks for long inputs.
pub fn map_into<T: Float>(out: &mut [T], x: &[T], f: impl Fn(T) -> T + Sync) {
    debug_assert_eq!(out.len(), x.len());
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, xs)| o.iter_mut().zip(xs).for_each(|(a, b)| *a = f(*b)));
    } else {
        out.iter_mut().zip(x).for_each(|(a, b)| *a = f(*b));
    }
}

/// `out[i] = f(x[i], y[i])`, in parallel over fixed chunks for long inputs.
pub fn zip_map_into<T: Float>(out: &mut [T], x: &[T], y: &[T], f: impl Fn(T, T) -> T + Sync) {
    debug_assert!(out.len() == x.len() && x.len() == y.len());
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
            .for_each(|(o, (xs, ys))| {
                for ((a, b), c) in o.iter_mut().zip(xs).zip(ys) {
                    *a = f(*b, *c);
                }
            });
    } else {
        for ((a, b), c) in out.iter_mut().zip(x).zip(y) {
            *a = f(*b, *c);
        }
    }
}

/// Scalar reference of [`dot`] (one accumulator, left to right), kept for the kernel tests.
pub fn dot_naive<T: Float>(x: &[T], y: &[T]) -> T {
    x.iter().zip(y).fold(T::zero(), |acc, (a, b)| acc + *a * *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small integers make every partial sum exact, so any summation order gives the same bits.
    fn ints(n: usize, seed: i64) -> Vec<f64> {
        (0..n as i64)
            .map(|i| ((i * 7 + seed) % 11 - 5) as f64)
            .collect()
    }

    #[test]
    fn dot_and_sum_match_naive_for_every_small_length_and_large_odd_ones() {
        for n in (0..=40).chain([1023, 16385, 70001]) {
            let x = ints(n, 1);
            let y = ints(n, 3);
            assert_eq!(dot(&x, &y), dot_naive(&x, &y), "dot at n = {n}");
            assert_eq!(sum(&x), x.iter().sum::<f64>(), "sum at n = {n}");
        }
    }

    #[test]
    fn axpy_matches_naive_into_nan_free_output() {
        for n in (0..=33).chain([70001]) {
            let x = ints(n, 2);
            let mut y = ints(n, 5);
            let expect: Vec<f64> = x.iter().zip(&y).map(|(a, b)| 3.0 * a + b).collect();
            axpy(3.0, &x, &mut y);
            assert_eq!(y, expect, "axpy at n = {n}");
        }
    }

    #[test]
    fn norm_of_three_four_is_five() {
        assert_eq!(norm(&[3.0f32, 4.0]), 5.0);
    }
}
