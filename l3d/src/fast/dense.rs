//! The dense form of a CP tensor and its adjoint, for tensors whose per-sample gradients
//! arrive dense; and the right factor of a tensor of more than two modes whose gradients
//! arrive factored, with its adjoint.
//!
//! For factors `F_m: [d_m, C]` (`C = n_v R`), the dense form is
//! `V[v, idx] = sum_r prod_m F_m[idx_m, vR + r]: [n_v, numel]` (row-major multi-index `idx`),
//! stored transposed, `V^T: [numel, n_v]`; its adjoint is
//! `dL/dF_m[j, vR + r] = sum_{idx: idx_m = j} dV[v, idx] prod_{m' != m} F_m'[idx_m', vR + r]`.

use crate::cp::CpTensor;
use crate::par::fit;
use tensor::{Float, Tensor};

/// `out <- F_first (.) .. (.) F_last`, the row-wise Khatri-Rao product of the factors of modes
/// `modes`: `[prod d_m, C]`, row `(i_first, .., i_last)` (row-major) holding
/// `prod_m F_m[i_m, c]` in column `c` (one row of ones for no modes). `tmp` is scratch.
fn khatri_rao<T: Float>(
    cp: &CpTensor<T>,
    modes: std::ops::Range<usize>,
    out: &mut Vec<T>,
    tmp: &mut Vec<T>,
) {
    let cols = cp.columns();
    fit(out, cols);
    out.fill(T::one());
    for f in &cp.factors[modes] {
        std::mem::swap(out, tmp);
        let rows = tmp.len() / cols;
        fit(out, rows * f.shape()[0] * cols);
        tensor::multiversion!(kr_rows(tmp, f.data(), cols, out));
    }
}

/// `out[(a, i), c] = prefix[a, c] f[i, c]`: one more mode of a Khatri-Rao product.
#[inline(always)]
fn kr_rows<T: Float>(prefix: &[T], f: &[T], cols: usize, out: &mut [T]) {
    let rows = f.len() / cols;
    for (prefix, block) in prefix
        .chunks_exact(cols)
        .zip(out.chunks_exact_mut(rows * cols))
    {
        for (frow, orow) in f.chunks_exact(cols).zip(block.chunks_exact_mut(cols)) {
            for ((o, &p), &x) in orow.iter_mut().zip(prefix).zip(frow) {
                *o = p * x;
            }
        }
    }
}

/// Scratch of the dense forms: the Khatri-Rao products before and after a mode.
#[derive(Debug, Clone, Default)]
pub(crate) struct DenseScratch<T> {
    before: Vec<T>,
    after: Vec<T>,
    tmp: Vec<T>,
    /// One row of `D` with each value repeated over its subnetwork's `R` columns.
    expanded: Vec<T>,
}

/// Whether the dense form of `cp` is its only factor as it is (a vector of rank 1:
/// `V^T = F`), so nothing needs computing.
pub(crate) fn dense_form_is_factor<T: Float>(cp: &CpTensor<T>) -> bool {
    cp.factors.len() == 1 && cp.rank == 1
}

/// `out <- V^T: [numel, n_v]`, every subnetwork's full tensor, flattened, one column each:
/// `V^T[idx, v] = sum_r KR[idx, vR + r]` with `KR` the Khatri-Rao product of all the factors
/// (for a vector, `KR` is its factor).
pub(crate) fn dense_form<T: Float>(cp: &CpTensor<T>, out: &mut Vec<T>, s: &mut DenseScratch<T>) {
    let (numel, rank, n_v) = (cp.numel(), cp.rank, cp.n_v);
    fit(out, numel * n_v);
    let kr: &[T] = if cp.factors.len() == 1 {
        cp.factors[0].data()
    } else {
        khatri_rao(cp, 0..cp.factors.len(), &mut s.before, &mut s.tmp);
        &s.before
    };
    // Per step and side, for every tensor formed dense: compiled for the active instruction
    // set (the same additions in the same order on each).
    let cols = cp.columns();
    tensor::multiversion!(sum_rank_blocks(kr, cols, rank, n_v, out));
}

/// `out[i, v] = sum_r kr[i, vR + r]` for rows of `cols` values.
#[inline(always)]
fn sum_rank_blocks<T: Float>(kr: &[T], cols: usize, rank: usize, n_v: usize, out: &mut [T]) {
    for (row, out_row) in kr.chunks_exact(cols).zip(out.chunks_exact_mut(n_v)) {
        if rank == 2 {
            // The common rank, as a loop of fixed stride.
            for (o, pair) in out_row.iter_mut().zip(row.chunks_exact(2)) {
                *o = T::zero() + pair[0] + pair[1];
            }
        } else {
            for (o, terms) in out_row.iter_mut().zip(row.chunks_exact(rank)) {
                *o = terms.iter().fold(T::zero(), |a, &x| a + x);
            }
        }
    }
}

/// `grad <- dL/dF_m` from `dvt = dL/dV^T: [numel, n_v]` (the adjoint of [`dense_form`]):
/// `dF_m[j, c] = sum_{a, b} dV^T[(a, j, b), v(c)] Before[a, c] After[b, c]`, with `Before` and
/// `After` the Khatri-Rao products of the modes before and after `m`.
pub(crate) fn dense_form_adjoint<T: Float>(
    cp: &CpTensor<T>,
    m: usize,
    dvt: &[T],
    grad: &mut Tensor<T>,
    s: &mut DenseScratch<T>,
) {
    let (n_v, cols, rank) = (cp.n_v, cp.columns(), cp.rank);
    if cp.factors.len() == 1 {
        // A vector: `V^T[j, v] = sum_r F[j, vR + r]`, so `dF[j, vR + r] = dV^T[j, v]`.
        let rows = grad
            .data_mut()
            .chunks_exact_mut(cols)
            .zip(dvt.chunks_exact(n_v));
        for (row, d_row) in rows {
            for (block, &x) in row.chunks_exact_mut(rank).zip(d_row) {
                block.fill(x);
            }
        }
        return;
    }
    khatri_rao(cp, 0..m, &mut s.before, &mut s.tmp);
    khatri_rao(cp, m + 1..cp.factors.len(), &mut s.after, &mut s.tmp);
    kr_adjoint(cp, m, rank, dvt, grad, s);
}

/// `grad <- dL/dF_m` of a matrix (a tensor of two modes, `[d_0, d_1]`) from
/// `dv = dL/dV: [n_v, d_0 d_1]` (the adjoint of [`dense_form`], as [`dense_form_adjoint`] on
/// `dV^T`): `dF_0[j, c] = sum_b dV[v(c), j, b] F_1[b, c]` and
/// `dF_1[b, c] = sum_j dV[v(c), j, b] F_0[j, c]`, each a loop over a contiguous row of `dV`.
pub(crate) fn matrix_form_adjoint<T: Float>(
    cp: &CpTensor<T>,
    m: usize,
    dv: &[T],
    grad: &mut Tensor<T>,
    s: &mut DenseScratch<T>,
) {
    debug_assert_eq!(cp.factors.len(), 2, "a matrix");
    let (d0, d1, cols, rank) = (cp.shape[0], cp.shape[1], cp.columns(), cp.rank);
    let other = &cp.factors[1 - m];
    // The other factor's columns as rows: `[C, d_other]`.
    let d_other = other.shape()[0];
    fit(&mut s.tmp, cols * d_other);
    for (i, row) in other.data().chunks_exact(cols).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            s.tmp[c * d_other + i] = x;
        }
    }
    fit(&mut s.expanded, d1);
    let (columns, acc) = (&s.tmp[..], &mut s.expanded[..]);
    let out = grad.data_mut();
    let shape = (d0, d1, cols, rank);
    tensor::multiversion!(matrix_adjoint_loops(shape, m, dv, columns, out, acc));
}

/// The loops of [`matrix_form_adjoint`], `shape = (d_0, d_1, C, R)`, `columns` the other
/// factor's columns as rows, `acc` a row of `d_1` values of scratch.
#[inline(always)]
fn matrix_adjoint_loops<T: Float>(
    (d0, d1, cols, rank): (usize, usize, usize, usize),
    m: usize,
    dv: &[T],
    columns: &[T],
    out: &mut [T],
    acc: &mut [T],
) {
    let numel = d0 * d1;
    if m == 0 {
        // dF_0[j, c] = dV[v, j, :] . F_1[:, c].
        for (j, g) in out.chunks_exact_mut(cols).enumerate() {
            for (c, gc) in g.iter_mut().enumerate() {
                let row = &dv[(c / rank) * numel + j * d1..][..d1];
                let col = &columns[c * d1..(c + 1) * d1];
                *gc = row.iter().zip(col).fold(T::zero(), |s, (&x, &y)| s + x * y);
            }
        }
    } else {
        // dF_1[:, c] = sum_j F_0[j, c] dV[v, j, :].
        for c in 0..cols {
            acc.fill(T::zero());
            let block = &dv[(c / rank) * numel..][..numel];
            for (row, &f) in block.chunks_exact(d1).zip(&columns[c * d0..(c + 1) * d0]) {
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a += f * x;
                }
            }
            for (b, &a) in acc.iter().enumerate() {
                out[b * cols + c] = a;
            }
        }
    }
}

/// `out <- KR(F_1, .., F_last): [prod_{m >= 1} d_m, C]`, the right factor of a tensor of
/// more than two modes read as a matrix `[d_0, prod_{m >= 1} d_m]` (a convolution's kernel
/// `[out, in kh kw]`): its subnetwork `v`'s matrix is `sum_r F_0[:, vR + r] KR[:, vR + r]^T`.
pub(crate) fn right_factor<T: Float>(cp: &CpTensor<T>, out: &mut Vec<T>, s: &mut DenseScratch<T>) {
    khatri_rao(cp, 1..cp.factors.len(), out, &mut s.tmp);
}

/// `grad <- dL/dF_m` for a mode `m >= 1` from `dkr = dL/dKR: [prod_{m >= 1} d_m, C]` (the
/// adjoint of [`right_factor`]): `dF_m[j, c] = sum_{a, b} dKR[(a, j, b), c] Before[a, c]
/// After[b, c]`, `Before` and `After` the Khatri-Rao products of modes `1..m` and `m + 1..`.
pub(crate) fn right_factor_adjoint<T: Float>(
    cp: &CpTensor<T>,
    m: usize,
    dkr: &[T],
    grad: &mut Tensor<T>,
    s: &mut DenseScratch<T>,
) {
    khatri_rao(cp, 1..m, &mut s.before, &mut s.tmp);
    khatri_rao(cp, m + 1..cp.factors.len(), &mut s.after, &mut s.tmp);
    kr_adjoint(cp, m, 1, dkr, grad, s);
}

/// `grad <- dF_m[j, c] = sum_{a, b} D[(a, j, b), c / per] Before[a, c] After[b, c]`, with
/// `Before` and `After` in `s` and `D: [.., C / per]`: one entry per column (`per = 1`, a
/// Khatri-Rao adjoint) or per subnetwork's `per = R` columns (a dense form's adjoint).
fn kr_adjoint<T: Float>(
    cp: &CpTensor<T>,
    m: usize,
    per: usize,
    d: &[T],
    grad: &mut Tensor<T>,
    s: &mut DenseScratch<T>,
) {
    let cols = cp.columns();
    let (d_m, after_rows, width) = (cp.shape[m], s.after.len() / cols, cols / per);
    let out = grad.data_mut();
    out.fill(T::zero());
    fit(&mut s.expanded, cols);
    let expanded = &mut s.expanded[..cols];
    let (before, after) = (&s.before, &s.after);
    // The backward's cost for tensors formed dense, so compiled for the active instruction
    // set (the same IEEE operations on each, no fused multiply-add: the same result).
    let shape = (cols, d_m, after_rows, width, per);
    tensor::multiversion!(kr_adjoint_loops(shape, before, after, d, out, expanded));
}

/// The loops of [`kr_adjoint`], `shape = (C, d_m, after rows, D's width, per)`.
#[inline(always)]
fn kr_adjoint_loops<T: Float>(
    (cols, d_m, after_rows, width, per): (usize, usize, usize, usize, usize),
    before: &[T],
    after: &[T],
    d: &[T],
    out: &mut [T],
    expanded: &mut [T],
) {
    for (a, before) in before.chunks_exact(cols).enumerate() {
        for (j, g) in out.chunks_exact_mut(cols).enumerate() {
            for (b, after) in after.chunks_exact(cols).enumerate() {
                let flat = (a * d_m + j) * after_rows + b;
                let d_row = &d[flat * width..(flat + 1) * width];
                // Whole rows of `C` values, so the loop below vectorises.
                let d_row: &[T] = if per == 1 {
                    d_row
                } else {
                    for (block, &dv) in expanded.chunks_exact_mut(per).zip(d_row) {
                        block.fill(dv);
                    }
                    expanded
                };
                let terms = g.iter_mut().zip(d_row).zip(before.iter().zip(after));
                for ((gc, &dv), (&x, &y)) in terms {
                    *gc += dv * x * y;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::rng;

    #[test]
    fn right_factor_is_the_kernel_as_a_matrix_and_its_adjoint_its_transpose() {
        // A kernel [4, 2, 3, 3] of rank 2: subnetwork v as a matrix [4, 18] is
        // sum_r F_0[:, vR + r] KR[:, vR + r]^T.
        let cp = CpTensor::<f64>::random(&[4, 2, 3, 3], 3, 2, 1.0, &mut rng(9));
        let (mut kr, mut scratch) = (Vec::new(), DenseScratch::default());
        right_factor(&cp, &mut kr, &mut scratch);
        let cols = cp.columns();
        assert_eq!(kr.len(), 18 * cols);
        for v in 0..3 {
            let dense = cp.dense_subnetwork(v);
            for o in 0..4 {
                for q in 0..18 {
                    let want = dense.data()[o * 18 + q];
                    let got: f64 = (0..2)
                        .map(|r| {
                            cp.factors[0].data()[o * cols + 2 * v + r] * kr[q * cols + 2 * v + r]
                        })
                        .sum();
                    assert!((got - want).abs() < 1e-12, "v {v}, [{o}, {q}]");
                }
            }
        }
        // <dKR, KR'(F)[dF_m]> = <adjoint(dKR), dF_m>: KR is linear in each factor.
        let dkr = Tensor::<f64>::randn(&[18 * cols], 1.0, &mut rng(10));
        for m in 1..4 {
            let dir = Tensor::<f64>::randn(cp.factors[m].shape(), 1.0, &mut rng(11 + m as u64));
            let mut moved = cp.clone();
            moved.factors[m].add_assign(&dir);
            let mut kr1 = Vec::new();
            right_factor(&moved, &mut kr1, &mut scratch);
            let lhs: f64 = dkr
                .data()
                .iter()
                .zip(kr1.iter().zip(&kr))
                .map(|(d, (a, b))| d * (a - b))
                .sum();
            let mut grad = Tensor::zeros(cp.factors[m].shape());
            right_factor_adjoint(&cp, m, dkr.data(), &mut grad, &mut scratch);
            assert!((lhs - grad.dot(&dir)).abs() < 1e-10, "mode {m}");
        }
    }

    #[test]
    fn dense_form_adjoint_is_the_transpose_of_its_derivative() {
        // <dV, dense_form'(F)[dF_m]> = <dense_form_adjoint(dV), dF_m> for a random direction:
        // dense_form is linear in each factor, so the difference quotient is exact up to rounding.
        for shape in [vec![3, 2, 4], vec![5]] {
            adjoint_matches(&shape);
        }
    }

    #[test]
    fn the_matrix_adjoint_from_dv_equals_the_general_one_from_dv_transposed() {
        let (n_v, rank) = (3, 2);
        let cp = CpTensor::<f64>::random(&[4, 5], n_v, rank, 1.0, &mut rng(21));
        let dv = Tensor::<f64>::randn(&[n_v * 20], 1.0, &mut rng(22));
        let mut dvt = vec![0.0; 20 * n_v];
        for v in 0..n_v {
            for j in 0..20 {
                dvt[j * n_v + v] = dv.data()[v * 20 + j];
            }
        }
        let mut scratch = DenseScratch::default();
        for m in 0..2 {
            let mut want = Tensor::zeros(cp.factors[m].shape());
            dense_form_adjoint(&cp, m, &dvt, &mut want, &mut scratch);
            let mut got = Tensor::full(cp.factors[m].shape(), f64::NAN);
            matrix_form_adjoint(&cp, m, dv.data(), &mut got, &mut scratch);
            for (a, b) in got.data().iter().zip(want.data()) {
                assert!((a - b).abs() < 1e-12, "mode {m}: {a} vs {b}");
            }
        }
    }

    fn adjoint_matches(shape: &[usize]) {
        let cp = CpTensor::<f64>::random(shape, 2, 2, 1.0, &mut rng(6));
        let numel: usize = shape.iter().product();
        let dv = Tensor::<f64>::randn(&[2 * numel], 1.0, &mut rng(7));
        for m in 0..shape.len() {
            let dir = Tensor::<f64>::randn(cp.factors[m].shape(), 1.0, &mut rng(8 + m as u64));
            let mut moved = cp.clone();
            moved.factors[m].add_assign(&dir);
            let (mut v0, mut v1) = (Vec::new(), Vec::new());
            let mut scratch = DenseScratch::default();
            dense_form(&cp, &mut v0, &mut scratch);
            dense_form(&moved, &mut v1, &mut scratch);
            let lhs: f64 = dv
                .data()
                .iter()
                .zip(v1.iter().zip(&v0))
                .map(|(d, (a, b))| d * (a - b))
                .sum();
            let mut grad = Tensor::zeros(cp.factors[m].shape());
            dense_form_adjoint(&cp, m, dv.data(), &mut grad, &mut scratch);
            assert!((lhs - grad.dot(&dir)).abs() < 1e-10, "mode {m}");
        }
    }
}
