//! Decoder renormalisation without allocating, for the fast path's training loop: the same
//! scaling as [`Decomposition::renormalise_decoder`] (each decoder subnetwork to unit norm over
//! all its tensors, the factor spread evenly over the modes), computed from the diagonal blocks
//! of the mode Grams only.
//!
//! `|V_out[v]|^2 = sum_t sum_{r, s} prod_m <F_m[:, vR + r], F_m[:, vR + s]>`: `n_v R^2` inner
//! products per mode instead of the full `[n_v R, n_v R]` Gram of `CpTensor::term_gram`.

use crate::cp::CpTensor;
use crate::decomposition::Decomposition;
use crate::par::{fit, worth_threads};
use rayon::prelude::*;
use tensor::Float;

/// Decoders with fewer factor entries than this are renormalised on the calling thread.
const PARALLEL_ENTRIES: usize = 1 << 15;

/// Scratch for [`renormalise_decoder`]: reused, it only grows.
#[derive(Debug, Clone, Default)]
pub struct RenormScratch<T> {
    /// Per decoder tensor: its `|V_t[v]|^2` (`n_v`), and its shifted products.
    tensors: Vec<TensorNorms<T>>,
    sq: Vec<T>,
    scale: Vec<T>,
}

#[derive(Debug, Clone, Default)]
struct TensorNorms<T> {
    sq: Vec<T>,
    shifted: Vec<T>,
}

/// Scales each decoder subnetwork of `d` to unit norm (a subnetwork of norm 0 is left as it
/// is). Each tensor's part of the norms is computed on its own (in parallel for large
/// decoders) and the parts are added in tensor order, so the result does not depend on the
/// number of threads.
pub fn renormalise_decoder<T: Float>(d: &mut Decomposition<T>, scratch: &mut RenormScratch<T>) {
    let n_v = d.n_v;
    let entries = d
        .decoder
        .iter()
        .map(|cp| cp.columns() * cp.shape.iter().sum::<usize>())
        .sum();
    let parallel = worth_threads(entries, PARALLEL_ENTRIES);
    if scratch.tensors.len() < d.decoder.len() {
        scratch
            .tensors
            .resize_with(d.decoder.len(), Default::default);
    }
    let tensors = &mut scratch.tensors[..d.decoder.len()];
    // These contiguous loops are the renormalisation's cost, so they are compiled for the
    // active instruction set; the arithmetic is the same IEEE operations on each (no fused
    // multiply-add), and so is the result.
    let norms = |(cp, t): (&CpTensor<T>, &mut TensorNorms<T>)| {
        tensor::multiversion!(tensor_sq_norms(cp, t))
    };
    if parallel {
        d.decoder
            .par_iter()
            .zip(tensors.par_iter_mut())
            .with_max_len(1)
            .for_each(norms);
    } else {
        d.decoder.iter().zip(tensors.iter_mut()).for_each(norms);
    }
    fit(&mut scratch.sq, n_v);
    scratch.sq.fill(T::zero());
    for t in tensors.iter() {
        for (s, &x) in scratch.sq.iter_mut().zip(&t.sq) {
            *s += x;
        }
    }
    fit(&mut scratch.scale, n_v);
    for (s, &sq) in scratch.scale.iter_mut().zip(&scratch.sq) {
        let norm = sq.max(T::zero()).sqrt();
        *s = if norm > T::zero() {
            T::one() / norm
        } else {
            T::one()
        };
    }
    let scale = &scratch.scale;
    let apply = |(cp, t): (&mut CpTensor<T>, &mut TensorNorms<T>)| {
        tensor::multiversion!(scale_tensor(cp, scale, t))
    };
    if parallel {
        d.decoder
            .par_iter_mut()
            .zip(tensors.par_iter_mut())
            .with_max_len(1)
            .for_each(apply);
    } else {
        d.decoder.iter_mut().zip(tensors.iter_mut()).for_each(apply);
    }
}

/// `out.sq[v] = |V[v]|^2` of one tensor: `sum_{r, s} prod_m <F_m[:, vR + r], F_m[:, vR + s]>`.
///
/// The inner products come from shifted products of each factor's rows,
/// `P_m[delta, c] = sum_j F_m[j, c] F_m[j, c + delta]` for `delta < R` (contiguous loops the
/// compiler vectorises): `<F_m[:, vR + r], F_m[:, vR + s]> = P_m[|s - r|, vR + min(r, s)]`.
#[inline(always)]
fn tensor_sq_norms<T: Float>(cp: &CpTensor<T>, out: &mut TensorNorms<T>) {
    let (rank, cols, modes) = (cp.rank, cp.columns(), cp.factors.len());
    fit(&mut out.shifted, modes * rank * cols);
    for (f, shifted) in cp
        .factors
        .iter()
        .zip(out.shifted.chunks_exact_mut(rank * cols))
    {
        shifted_products(f.data(), cols, rank, shifted);
    }
    fit(&mut out.sq, cp.n_v);
    for (v, sq) in out.sq.iter_mut().enumerate() {
        let mut total = T::zero();
        for r in 0..rank {
            for s in 0..rank {
                let at = r.abs_diff(s) * cols + v * rank + r.min(s);
                let product =
                    (0..modes).fold(T::one(), |p, m| p * out.shifted[m * rank * cols + at]);
                total += product;
            }
        }
        *sq = total;
    }
}

/// Columns of a block of [`shifted_products`]: accumulators that stay in registers.
const LANES: usize = 16;

/// `out[delta * cols + c] = sum_j f[j, c] f[j, c + delta]` for `delta < rank` and
/// `c + delta < cols` (0 past that), each a sum over the rows in order. For ranks up to 4
/// the accumulators of a `LANES`-wide block of columns, all shifts at once, live in
/// registers while the rows stream past; the same sums in the same order as the plain loop.
#[inline(always)]
fn shifted_products<T: Float>(f: &[T], cols: usize, rank: usize, out: &mut [T]) {
    match rank {
        1 => shifted_blocks::<T, 1>(f, cols, out),
        2 => shifted_blocks::<T, 2>(f, cols, out),
        3 => shifted_blocks::<T, 3>(f, cols, out),
        4 => shifted_blocks::<T, 4>(f, cols, out),
        _ => shifted_plain(f, cols, rank, 0, out),
    }
}

/// The blocks of columns whose every shift stays inside a row by registers, the rest plainly.
#[inline(always)]
fn shifted_blocks<T: Float, const R: usize>(f: &[T], cols: usize, out: &mut [T]) {
    // Blocks [cb, cb + LANES) with cb + LANES + R - 1 <= cols.
    let full = (cols + 1).saturating_sub(R) / LANES;
    for block in 0..full {
        let cb = block * LANES;
        let mut acc = [[T::zero(); LANES]; R];
        for row in f.chunks_exact(cols) {
            let x: &[T; LANES] = row[cb..cb + LANES].try_into().expect("LANES values");
            for (delta, acc) in acc.iter_mut().enumerate() {
                let y: &[T; LANES] = row[cb + delta..cb + delta + LANES]
                    .try_into()
                    .expect("LANES values");
                for l in 0..LANES {
                    acc[l] += x[l] * y[l];
                }
            }
        }
        for (delta, acc) in acc.iter().enumerate() {
            out[delta * cols + cb..delta * cols + cb + LANES].copy_from_slice(acc);
        }
    }
    shifted_plain(f, cols, R, full * LANES, out);
}

/// [`shifted_products`] for the columns from `start` on, row by row.
#[inline(always)]
fn shifted_plain<T: Float>(f: &[T], cols: usize, rank: usize, start: usize, out: &mut [T]) {
    for delta in 0..rank {
        out[delta * cols + start..(delta + 1) * cols].fill(T::zero());
    }
    for row in f.chunks_exact(cols) {
        for (delta, acc) in out.chunks_exact_mut(cols).enumerate().take(rank) {
            let (acc, x) = (&mut acc[start..], &row[start..]);
            for ((a, &x), &y) in acc.iter_mut().zip(x).zip(&row[(start + delta).min(cols)..]) {
                *a += x * y;
            }
        }
    }
}

/// Multiplies subnetwork `v` of one tensor by `scale[v]`, `scale[v]^(1 / modes)` on every mode,
/// as `CpTensor::scale_subnetworks` does (the scales are positive, so no sign moves).
#[inline(always)]
fn scale_tensor<T: Float>(cp: &mut CpTensor<T>, scale: &[T], scratch: &mut TensorNorms<T>) {
    let (rank, cols, modes) = (cp.rank, cp.columns(), cp.factors.len());
    // One factor per column (`vR + r` gets subnetwork `v`'s), so each row is scaled by one
    // contiguous, vectorisable product.
    let per_column = &mut scratch.shifted;
    fit(per_column, cols);
    for (block, s) in per_column.chunks_exact_mut(rank).zip(scale) {
        block.fill(T::from_f64(s.to_f64().powf(1.0 / modes as f64)));
    }
    for f in cp.factors.iter_mut() {
        for row in f.data_mut().chunks_exact_mut(cols) {
            for (x, &p) in row.iter_mut().zip(per_column.iter()) {
                *x *= p;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cp::CpTensor;
    use tensor::rng;

    #[test]
    fn shifted_products_are_the_plain_sums() {
        // Ranks 1 to 5 (registers, and the plain loop), widths around the block size.
        let mut r = rng(3);
        for rank in 1..=5 {
            for cols in [1, 7, 16, 19, 20, 36, 128] {
                let f = tensor::Tensor::<f32>::randn(&[11, cols], 1.0, &mut r);
                let f = f.data();
                let mut out = vec![f32::NAN; rank * cols];
                shifted_products(f, cols, rank, &mut out);
                for delta in 0..rank {
                    for c in 0..cols {
                        let want = if c + delta < cols {
                            f.chunks_exact(cols)
                                .fold(0f32, |a, row| a + row[c] * row[c + delta])
                        } else {
                            0.0
                        };
                        let got = out[delta * cols + c];
                        assert_eq!(got.to_bits(), want.to_bits(), "rank {rank} cols {cols}");
                    }
                }
            }
        }
    }

    #[test]
    fn equals_the_reference_renormalisation() {
        let mut r = rng(2);
        let shapes = [vec![4, 3], vec![4], vec![2, 3, 2]];
        let decoder: Vec<CpTensor<f64>> = shapes
            .iter()
            .map(|s| CpTensor::random(s, 3, if s.len() > 1 { 2 } else { 1 }, 0.7, &mut r))
            .collect();
        let mut d = Decomposition {
            n_v: 3,
            names: vec!["a".into(), "b".into(), "c".into()],
            param_index: vec![0, 1, 2],
            encoder: decoder.clone(),
            decoder,
        };
        d.decoder[1].factors[0].data_mut()[..3].fill(0.0);
        let mut reference = d.clone();
        reference.renormalise_decoder();
        renormalise_decoder(&mut d, &mut RenormScratch::default());
        for (a, b) in d.decoder.iter().zip(&reference.decoder) {
            for (fa, fb) in a.factors.iter().zip(&b.factors) {
                assert!(fa.max_abs_diff(fb) < 1e-12);
            }
        }
        for n in d.decoder_norms() {
            assert!((n - 1.0).abs() < 1e-12);
        }
    }
}
