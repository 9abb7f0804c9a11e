//! Reductions: over everything, and over one axis (the axis is removed from the shape).

use crate::element::Float;
use crate::error::{ok, Result, TensorError};
use crate::kernels;
use crate::shape::numel;
use crate::tensor::Tensor;

/// The split of a shape around `axis`: (`outer`, `len`, `inner`) element counts.
fn split_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

fn removed(shape: &[usize], axis: usize) -> Vec<usize> {
    let mut out = shape.to_vec();
    out.remove(axis);
    out
}

impl<T: Float> Tensor<T> {
    fn check_axis(&self, op: &'static str, axis: usize) -> Result<()> {
        if axis >= self.ndim() {
            return Err(TensorError::Axis {
                op,
                axis,
                shape: self.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// Sum of every element (deterministic chunked order; see [`kernels::sum`]).
    pub fn sum_all(&self) -> T {
        kernels::sum(self.data())
    }

    /// Mean of every element; NaN for an empty tensor.
    pub fn mean_all(&self) -> T {
        self.sum_all() / T::from_usize(self.numel())
    }

    /// `sum of x^2` over every element.
    pub fn sum_squares(&self) -> T {
        kernels::sum_squares(self.data())
    }

    /// Frobenius (Euclidean) norm of all elements.
    pub fn norm(&self) -> T {
        kernels::norm(self.data())
    }

    /// `sum_i self[i] * other[i]` over tensors of one shape.
    pub fn try_dot(&self, other: &Self) -> Result<T> {
        if self.shape() != other.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "dot",
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
            });
        }
        Ok(kernels::dot(self.data(), other.data()))
    }

    pub fn dot(&self, other: &Self) -> T {
        ok(self.try_dot(other))
    }

    /// Sum over `axis`, which is removed: `[a, n, b] -> [a, b]`. Summed in index order.
    pub fn try_sum_axis(&self, axis: usize) -> Result<Self> {
        self.check_axis("sum_axis", axis)?;
        let (outer, len, inner) = split_axis(self.shape(), axis);
        let mut out = Self::zeros(&removed(self.shape(), axis));
        let src = self.data();
        for (o, dst) in out.data_mut().chunks_exact_mut(inner.max(1)).enumerate() {
            if inner == 0 {
                break;
            }
            for j in 0..len {
                let row = &src[(o * len + j) * inner..(o * len + j + 1) * inner];
                for (d, s) in dst.iter_mut().zip(row) {
                    *d += *s;
                }
            }
        }
        debug_assert!(outer * inner == out.numel());
        Ok(out)
    }

    pub fn sum_axis(&self, axis: usize) -> Self {
        ok(self.try_sum_axis(axis))
    }

    /// Mean over `axis`, which is removed.
    pub fn try_mean_axis(&self, axis: usize) -> Result<Self> {
        self.check_axis("mean_axis", axis)?;
        let len = T::from_usize(self.shape()[axis]);
        Ok(self.try_sum_axis(axis)?.map(|v| v / len))
    }

    pub fn mean_axis(&self, axis: usize) -> Self {
        ok(self.try_mean_axis(axis))
    }

    /// Largest value over `axis` (removed) and its first index (ties go to the lowest index).
    /// NaN compares as smaller than every number.
    pub fn try_max_argmax_axis(&self, axis: usize) -> Result<(Self, Vec<usize>)> {
        self.check_axis("max_axis", axis)?;
        let (outer, len, inner) = split_axis(self.shape(), axis);
        if len == 0 {
            return Err(TensorError::Empty {
                op: "max_axis",
                what: format!("axis {axis} of shape {:?}", self.shape()),
            });
        }
        let mut best = Self::zeros(&removed(self.shape(), axis));
        let mut arg = vec![0usize; outer * inner];
        let src = self.data();
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| src[(o * len + j) * inner + i];
                let mut b = 0;
                for j in 1..len {
                    if at(j) > at(b) || (at(b).is_nan() && !at(j).is_nan()) {
                        b = j;
                    }
                }
                best.data_mut()[o * inner + i] = at(b);
                arg[o * inner + i] = b;
            }
        }
        Ok((best, arg))
    }

    pub fn max_axis(&self, axis: usize) -> Self {
        ok(self.try_max_argmax_axis(axis)).0
    }

    pub fn argmax_axis(&self, axis: usize) -> Vec<usize> {
        ok(self.try_max_argmax_axis(axis)).1
    }

    /// Largest element; an error for an empty tensor.
    pub fn try_max_all(&self) -> Result<T> {
        if self.numel() == 0 {
            return Err(TensorError::Empty {
                op: "max_all",
                what: format!("the tensor of shape {:?}", self.shape()),
            });
        }
        let flat = self.clone().reshape(&[self.numel()]);
        Ok(flat.try_max_argmax_axis(0)?.0.item())
    }

    /// Softmax over the last axis, shifted by the row maximum for stability.
    pub fn try_softmax_last(&self) -> Result<Self> {
        Ok(self.try_log_softmax_last()?.exp())
    }

    pub fn softmax_last(&self) -> Self {
        ok(self.try_softmax_last())
    }

    /// `x - logsumexp(x)` over the last axis, computed as `(x - m) - ln sum exp(x - m)` with
    /// `m` the row maximum, so no exponent overflows.
    pub fn try_log_softmax_last(&self) -> Result<Self> {
        let n = match self.shape().last() {
            Some(&n) if n > 0 => n,
            _ => {
                return Err(TensorError::Invalid {
                    op: "log_softmax",
                    msg: format!("needs a non-empty last axis, shape is {:?}", self.shape()),
                })
            }
        };
        let mut out = self.clone();
        for row in out.data_mut().chunks_exact_mut(n) {
            let m = row.iter().copied().fold(row[0], T::max);
            let lse = row.iter().map(|&v| (v - m).exp()).sum::<T>().ln();
            for v in row.iter_mut() {
                *v = *v - m - lse;
            }
        }
        Ok(out)
    }

    pub fn log_softmax_last(&self) -> Self {
        ok(self.try_log_softmax_last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_sums_of_a_counting_tensor() {
        // t[i, j, k] = 12 i + 4 j + k over shape [2, 3, 4].
        let t = Tensor::<f64>::from_fn(&[2, 3, 4], |i| i as f64);
        // sum over j: 3 (12 i + k) + 4 (0 + 1 + 2) = 36 i + 3 k + 12.
        let s1 = t.sum_axis(1);
        assert_eq!(s1.shape(), &[2, 4]);
        assert_eq!(s1.data()[4 + 2], 36.0 + 6.0 + 12.0);
        assert_eq!(t.sum_axis(0).data()[0], 12.0);
        assert_eq!(t.sum_axis(2).data()[0], 6.0);
        assert_eq!(t.mean_axis(2).data()[0], 1.5);
        assert!(t.try_sum_axis(3).is_err());
    }

    #[test]
    fn argmax_breaks_ties_to_the_lowest_index() {
        let t = Tensor::<f32>::from_vec(&[2, 3], vec![1.0, 3.0, 3.0, f32::NAN, -1.0, -2.0]);
        assert_eq!(t.argmax_axis(1), vec![1, 1]);
        assert_eq!(t.max_axis(1).data(), &[3.0, -1.0]);
    }

    #[test]
    fn softmax_rows_sum_to_one_without_overflow() {
        let t = Tensor::<f64>::from_vec(&[2, 2], vec![1000.0, 1000.0, 0.0, 2f64.ln()]);
        let s = t.softmax_last();
        assert_eq!(s.data()[0], 0.5);
        assert!((s.data()[3] - 2.0 / 3.0).abs() < 1e-15);
    }
}
