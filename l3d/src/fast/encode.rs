//! Encoding one tensor's per-sample gradients with one side's CP factors, for a chunk of `n`
//! samples: `out[i, v] += <V[v], g_i>` (`c` with the encoder's factors, `d` with the
//! decoder's), and the squared norms `|g_i|^2`. Legend and derivations in `fast/mod.rs`.

use super::blocks::add_block_dots;
use super::layout::Factored;
use crate::cp::CpTensor;
use crate::par::fit;
use tensor::gemm::{gemm_maybe_packed, GemmScratch, MatMut, MatRef, PackedB};
use tensor::Float;

/// Factored encode. `P = left F_0: [n M, C]` and `Q = right F_R: [n M, C]` are kept in `p_buf`
/// and `q_buf` for the backward; then `out[i, v] += sum_m sum_r P[i M + m, vR + r] Q[.., vR + r]`.
/// `f_right` is the right factor `[q, C]` (`F_1`, or the Khatri-Rao product of the factors
/// after the first for a tensor of more modes); `packed` holds `F_0` and it packed
/// beforehand, where they were.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_outer<T: Float>(
    cp: &CpTensor<T>,
    f_right: &[T],
    packed: [Option<&PackedB<T>>; 2],
    left: &[T],
    right: &[T],
    n: usize,
    m: usize,
    p_buf: &mut Vec<T>,
    q_buf: &mut Vec<T>,
    out: &mut [T],
    scratch: &mut GemmScratch<T>,
) {
    let (cols, rank) = (cp.columns(), cp.rank);
    let rows = n * m;
    let operands = [
        (&mut *p_buf, left, cp.factors[0].data(), packed[0]),
        (&mut *q_buf, right, f_right, packed[1]),
    ];
    for (buf, x, f, packed) in operands {
        let width = f.len() / cols;
        fit(buf, rows * cols);
        gemm_maybe_packed(
            T::one(),
            MatRef::rows(x, rows, width),
            MatRef::rows(f, width, cols),
            packed,
            T::zero(),
            MatMut::rows(buf, rows, cols),
            scratch,
        );
    }
    for (i, out_row) in out.chunks_exact_mut(cp.n_v).take(n).enumerate() {
        let span = i * m * cols..(i + 1) * m * cols;
        for (pr, qr) in p_buf[span.clone()]
            .chunks_exact(cols)
            .zip(q_buf[span].chunks_exact(cols))
        {
            add_block_dots(pr, qr, rank, out_row);
        }
    }
}

/// Dense encode: `out += g V^T` with `vt = V^T: [numel, n_v]`, the side's dense subnetworks
/// (and `V^T` packed for the step, if it was).
pub(crate) fn encode_dense<T: Float>(
    (vt, packed): (&[T], Option<&PackedB<T>>),
    g: &[T],
    n: usize,
    numel: usize,
    n_v: usize,
    out: &mut [T],
    scratch: &mut GemmScratch<T>,
) {
    gemm_maybe_packed(
        T::one(),
        MatRef::rows(g, n, numel),
        MatRef::rows(vt, numel, n_v),
        packed,
        T::one(),
        MatMut::rows(out, n, n_v),
        scratch,
    );
}

/// `s[i] += |g_i|^2` for the `n` samples of a factored gradient, `left: [n M, p]`,
/// `right: [n M, q]`: `|sum_m l_m (x) r_m|^2 = sum_{m, m'} (l_m . l_m') (r_m . r_m')`
/// (`M^2 (p + q)` multiply-adds; `|l|^2 |r|^2` for `M = 1`), or, when cheaper, `g_i` formed
/// in `scratch` (`M p q`) and its squared norm (a convolution's kernel, an attention
/// projection: `p q < M (p + q)`).
pub(crate) fn add_outer_sq_norms<T: Float>(
    left: &[T],
    right: &[T],
    f: &Factored,
    n: usize,
    s: &mut [T],
    scratch: &mut Vec<T>,
) {
    let Factored { m, p, q, .. } = *f;
    let form = m > 1 && p * q < m * (p + q);
    if form {
        fit(scratch, p * q);
    }
    for (i, si) in s.iter_mut().take(n).enumerate() {
        let l = &left[i * m * p..(i + 1) * m * p];
        let r = &right[i * m * q..(i + 1) * m * q];
        if form {
            scratch.fill(T::zero());
            for (lm, rm) in l.chunks_exact(p).zip(r.chunks_exact(q)) {
                for (&la, g_row) in lm.iter().zip(scratch.chunks_exact_mut(q)) {
                    for (g, &rb) in g_row.iter_mut().zip(rm) {
                        *g += la * rb;
                    }
                }
            }
            *si += dot(scratch, scratch);
            continue;
        }
        let mut total = T::zero();
        for a in 0..m {
            for b in 0..m {
                total += dot(&l[a * p..(a + 1) * p], &l[b * p..(b + 1) * p])
                    * dot(&r[a * q..(a + 1) * q], &r[b * q..(b + 1) * q]);
            }
        }
        *si += total;
    }
}

/// `s[i] += |g_i|^2` for the `n` samples of a dense gradient `g: [n, numel]`.
pub(crate) fn add_dense_sq_norms<T: Float>(g: &[T], numel: usize, n: usize, s: &mut [T]) {
    for (si, row) in s.iter_mut().zip(g.chunks_exact(numel)).take(n) {
        *si += dot(row, row);
    }
}

/// `sum_j x_j y_j`: a plain loop for short vectors, the tensor crate's lane-wise kernel
/// (vectorised, in a fixed order) for long ones.
#[inline]
pub(crate) fn dot<T: Float>(x: &[T], y: &[T]) -> T {
    if x.len() < 64 {
        x.iter().zip(y).fold(T::zero(), |s, (&a, &b)| s + a * b)
    } else {
        tensor::kernels::dot(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::{rng, Tensor};

    #[test]
    fn squared_norms_of_factored_gradients_by_pairs_of_rows_or_formed_agree() {
        // (M, p, q): one row; pairs of rows cheaper (p q >= M (p + q)); forming cheaper.
        for (m, p, q) in [(1, 3, 4), (2, 8, 8), (6, 2, 3), (30, 4, 12)] {
            let n = 3;
            let left = Tensor::<f64>::randn(&[n * m * p], 1.0, &mut rng(1));
            let right = Tensor::<f64>::randn(&[n * m * q], 1.0, &mut rng(2));
            let f = Factored { t: 0, p, q, m };
            let mut s = vec![0.5; n];
            add_outer_sq_norms(left.data(), right.data(), &f, n, &mut s, &mut Vec::new());
            for (i, &si) in s.iter().enumerate() {
                let mut g = vec![0.0; p * q];
                for r in 0..m {
                    let row = i * m + r;
                    for a in 0..p {
                        for b in 0..q {
                            g[a * q + b] += left.data()[row * p + a] * right.data()[row * q + b];
                        }
                    }
                }
                let want = 0.5 + g.iter().map(|x| x * x).sum::<f64>();
                assert!((si - want).abs() < 1e-12 * want, "M {m}: {si} vs {want}");
            }
        }
    }
}
