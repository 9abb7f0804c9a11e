//! Matrix products through `matrixmultiply` (`sgemm` / `dgemm`).
//!
//! Transposed operands are passed to GEMM as strides, never copied. Each output matrix of a
//! batched product is owned by one rayon task, and `matrixmultiply` partitions each product by
//! output blocks, so results do not depend on the number of threads.
//!
//! Benchmarked in `benches/tensor_kernels.rs` (`matmul`, next to raw `sgemm`).

use crate::element::Float;
use crate::error::{ok, Result, TensorError};
use crate::shape::numel;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Whether an operand of a matrix product is used as stored or transposed (its last two axes
/// swapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    No,
    Yes,
}

/// One operand as GEMM sees it: its matrix sizes after the optional transpose, and strides.
struct Operand {
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
    /// Leading (batch) dims; empty for a plain matrix.
    batch: Vec<usize>,
}

fn operand(shape: &[usize], t: Transpose) -> Option<Operand> {
    let nd = shape.len();
    if nd < 2 {
        return None;
    }
    let (r, c) = (shape[nd - 2], shape[nd - 1]);
    let batch = shape[..nd - 2].to_vec();
    Some(match t {
        Transpose::No => Operand {
            rows: r,
            cols: c,
            row_stride: c as isize,
            col_stride: 1,
            batch,
        },
        Transpose::Yes => Operand {
            rows: c,
            cols: r,
            row_stride: 1,
            col_stride: c as isize,
            batch,
        },
    })
}

impl<T: Float> Tensor<T> {
    /// `op(self) @ op(other)` where `op` optionally swaps the last two axes.
    ///
    /// Shapes: `[.., m, k] @ [.., k, n] -> [.., m, n]` after the transposes. The leading (batch)
    /// axes of the two operands must be equal, or one operand must be a plain matrix, which is
    /// then used for every batch entry (`[B, T, d] @ [d, h] -> [B, T, h]`).
    pub fn try_matmul_t(&self, ta: Transpose, other: &Self, tb: Transpose) -> Result<Self> {
        let mismatch = || TensorError::ShapeMismatch {
            op: "matmul",
            lhs: self.shape().to_vec(),
            rhs: other.shape().to_vec(),
        };
        let a = operand(self.shape(), ta).ok_or_else(mismatch)?;
        let b = operand(other.shape(), tb).ok_or_else(mismatch)?;
        if a.cols != b.rows {
            return Err(mismatch());
        }
        let batch = match (a.batch.is_empty(), b.batch.is_empty()) {
            (_, true) => a.batch.clone(),
            (true, false) => b.batch.clone(),
            (false, false) if a.batch == b.batch => a.batch.clone(),
            _ => return Err(mismatch()),
        };
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let mut shape = batch.clone();
        shape.extend_from_slice(&[m, n]);
        let mut out = Self::zeros(&shape);
        if m == 0 || n == 0 || k == 0 {
            return Ok(out);
        }
        let count = numel(&batch);
        if b.batch.is_empty() && ta == Transpose::No {
            // The batch folds into the rows of one product: [count * m, k] @ [k, n].
            gemm_into(
                count * m,
                k,
                n,
                self.data(),
                &a,
                other.data(),
                &b,
                out.data_mut(),
            );
            return Ok(out);
        }
        let (sa, sb) = (if a.batch.is_empty() { 0 } else { m * k }, {
            if b.batch.is_empty() {
                0
            } else {
                k * n
            }
        });
        let (ad, bd) = (self.data(), other.data());
        let body = |(i, c): (usize, &mut [T])| {
            gemm_into(m, k, n, &ad[i * sa..], &a, &bd[i * sb..], &b, c);
        };
        if count > 1 && m * n * k >= 1 << 12 {
            out.data_mut()
                .par_chunks_mut(m * n)
                .enumerate()
                .for_each(body);
        } else {
            out.data_mut().chunks_mut(m * n).enumerate().for_each(body);
        }
        Ok(out)
    }

    pub fn matmul_t(&self, ta: Transpose, other: &Self, tb: Transpose) -> Self {
        ok(self.try_matmul_t(ta, other, tb))
    }

    /// `self @ other`.
    pub fn try_matmul(&self, other: &Self) -> Result<Self> {
        self.try_matmul_t(Transpose::No, other, Transpose::No)
    }

    pub fn matmul(&self, other: &Self) -> Self {
        ok(self.try_matmul(other))
    }

    /// `self @ other^T` (a linear layer: `x @ W^T`).
    pub fn matmul_nt(&self, other: &Self) -> Self {
        self.matmul_t(Transpose::No, other, Transpose::Yes)
    }

    /// `self^T @ other`.
    pub fn matmul_tn(&self, other: &Self) -> Self {
        self.matmul_t(Transpose::Yes, other, Transpose::No)
    }
}

/// `c <- a b` for one `m x k` by `k x n` product, reading `a` and `b` with their strides.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    ao: &Operand,
    b: &[T],
    bo: &Operand,
    c: &mut [T],
) {
    let last = |rows: usize, cols: usize, rs: isize, cs: isize| {
        (rows - 1) * rs as usize + (cols - 1) * cs as usize
    };
    assert!(a.len() > last(m, k, ao.row_stride, ao.col_stride));
    assert!(b.len() > last(k, n, bo.row_stride, bo.col_stride));
    assert!(c.len() >= m * n);
    // SAFETY: the asserts above bound the largest offset each strided matrix reads or writes;
    // `c` is a distinct `&mut` borrow, so it aliases neither input.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            T::one(),
            a.as_ptr(),
            ao.row_stride,
            ao.col_stride,
            b.as_ptr(),
            bo.row_stride,
            bo.col_stride,
            T::zero(),
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The textbook triple loop over `[m, k] @ [k, n]`: the reference the GEMM path is tested
/// against.
pub fn matmul_naive<T: Float>(a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
    let (m, k) = (a.shape()[0], a.shape()[1]);
    let n = b.shape()[1];
    assert_eq!(b.shape()[0], k);
    Tensor::from_fn(&[m, n], |idx| {
        let (i, j) = (idx / n, idx % n);
        (0..k).fold(T::zero(), |s, l| {
            s + a.data()[i * k + l] * b.data()[l * n + j]
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(shape: &[usize], seed: usize) -> Tensor<f64> {
        Tensor::from_fn(shape, |i| ((i * 7 + seed) % 9) as f64 - 4.0)
    }

    #[test]
    fn gemm_matches_naive_on_exact_integers_for_every_small_size() {
        for m in 0..=9 {
            for k in 0..=9 {
                for n in [0, 1, 2, 5, 8, 13] {
                    let a = ints(&[m, k], 1);
                    let b = ints(&[k, n], 2);
                    assert_eq!(a.matmul(&b), matmul_naive(&a, &b), "{m}x{k}x{n}");
                    let at = a.transpose();
                    let bt = b.transpose();
                    assert_eq!(at.matmul_tn(&b), matmul_naive(&a, &b));
                    assert_eq!(a.matmul_nt(&bt), matmul_naive(&a, &b));
                }
            }
        }
    }

    #[test]
    fn batched_products_match_per_matrix_products() {
        let a = ints(&[3, 4, 5], 1);
        let b = ints(&[3, 5, 2], 2);
        let w = ints(&[5, 2], 3);
        let c = a.matmul(&b);
        let d = a.matmul(&w);
        for i in 0..3 {
            let ai = a.row_tensor(i);
            assert_eq!(c.row_tensor(i), matmul_naive(&ai, &b.row_tensor(i)));
            assert_eq!(d.row_tensor(i), matmul_naive(&ai, &w));
        }
        let e = a.matmul_t(Transpose::Yes, &ints(&[3, 4, 6], 5), Transpose::No);
        assert_eq!(e.shape(), &[3, 5, 6]);
    }

    #[test]
    fn mismatched_inner_sizes_name_both_shapes() {
        let a = Tensor::<f32>::zeros(&[2, 3]);
        let err = a.try_matmul(&a).unwrap_err().to_string();
        assert!(err.contains("[2, 3]"), "{err}");
        assert!(a.try_matmul(&Tensor::zeros(&[3])).is_err());
        assert!(Tensor::<f32>::zeros(&[2, 2, 3])
            .try_matmul(&Tensor::zeros(&[3, 3, 1]))
            .is_err());
    }
}
