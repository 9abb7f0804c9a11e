//! Loops over the rank blocks of a factor's columns: column `vR + r` holds term `r` of
//! subnetwork `v`, so a row of `C = n_v R` values is `n_v` blocks of `R`. Each loop is unrolled
//! for the common ranks (the same operations in the same order as the plain loop).

use tensor::Float;

/// `out[vR + r] = x[v]` for `r < R`: each value repeated `rank` times (unrolled for the
/// common ranks).
pub(crate) fn expand<T: Float>(x: &[T], rank: usize, out: &mut [T]) {
    fn fixed<T: Float, const R: usize>(x: &[T], out: &mut [T]) {
        for (block, &v) in out.chunks_exact_mut(R).zip(x) {
            *<&mut [T; R]>::try_from(block).expect("R values") = [v; R];
        }
    }
    match rank {
        2 => fixed::<T, 2>(x, out),
        3 => fixed::<T, 3>(x, out),
        4 => fixed::<T, 4>(x, out),
        _ => {
            for (block, &v) in out.chunks_exact_mut(rank).zip(x) {
                block.fill(v);
            }
        }
    }
}

/// `total[w] += h[wR] + .. + h[wR + R - 1]`, added one by one in order (unrolled for the
/// common ranks).
pub(crate) fn add_blocks<T: Float>(h: &[T], rank: usize, total: &mut [T]) {
    fn fixed<T: Float, const R: usize>(h: &[T], total: &mut [T]) {
        for (t, block) in total.iter_mut().zip(h.chunks_exact(R)) {
            for &x in block {
                *t += x;
            }
        }
    }
    match rank {
        1 => total.iter_mut().zip(h).for_each(|(t, &x)| *t += x),
        2 => fixed::<T, 2>(h, total),
        3 => fixed::<T, 3>(h, total),
        4 => fixed::<T, 4>(h, total),
        _ => {
            for (t, block) in total.iter_mut().zip(h.chunks_exact(rank)) {
                for &x in block {
                    *t += x;
                }
            }
        }
    }
}

/// `out[v] += sum_r p[vR + r] q[vR + r]` (the terms summed from zero in order, then added),
/// unrolled for the common ranks.
pub(crate) fn add_block_dots<T: Float>(p: &[T], q: &[T], rank: usize, out: &mut [T]) {
    fn fixed<T: Float, const R: usize>(p: &[T], q: &[T], out: &mut [T]) {
        for ((o, pv), qv) in out.iter_mut().zip(p.chunks_exact(R)).zip(q.chunks_exact(R)) {
            *o += pv.iter().zip(qv).fold(T::zero(), |s, (&a, &b)| s + a * b);
        }
    }
    match rank {
        1 => fixed::<T, 1>(p, q, out),
        2 => fixed::<T, 2>(p, q, out),
        3 => fixed::<T, 3>(p, q, out),
        4 => fixed::<T, 4>(p, q, out),
        _ => {
            let blocks = p.chunks_exact(rank).zip(q.chunks_exact(rank));
            for (o, (pv, qv)) in out.iter_mut().zip(blocks) {
                *o += pv.iter().zip(qv).fold(T::zero(), |s, (&a, &b)| s + a * b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unrolled_loops_equal_the_plain_ones_for_every_rank() {
        // Small integers: every sum is exact, so equality is the check.
        for rank in 1..=6 {
            let n_v = 3;
            let x: Vec<f64> = (0..n_v).map(|v| v as f64 + 1.0).collect();
            let mut out = vec![f64::NAN; n_v * rank];
            expand(&x, rank, &mut out);
            let want: Vec<f64> = (0..n_v * rank).map(|c| x[c / rank]).collect();
            assert_eq!(out, want, "expand, rank {rank}");

            let h: Vec<f64> = (0..n_v * rank).map(|c| (c % 5) as f64 - 2.0).collect();
            let mut total = vec![1.0; n_v];
            add_blocks(&h, rank, &mut total);
            let want: Vec<f64> = (0..n_v)
                .map(|v| 1.0 + h[v * rank..(v + 1) * rank].iter().sum::<f64>())
                .collect();
            assert_eq!(total, want, "add_blocks, rank {rank}");

            let q: Vec<f64> = (0..n_v * rank).map(|c| (c % 3) as f64).collect();
            let mut dots = vec![1.0; n_v];
            add_block_dots(&h, &q, rank, &mut dots);
            let want: Vec<f64> = (0..n_v)
                .map(|v| 1.0 + (v * rank..(v + 1) * rank).map(|c| h[c] * q[c]).sum::<f64>())
                .collect();
            assert_eq!(dots, want, "add_block_dots, rank {rank}");
        }
    }
}
