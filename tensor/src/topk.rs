//! Top-k by magnitude over a whole tensor: one threshold, deterministic ties.

use crate::element::Float;
use crate::error::{ok, Result, TensorError};
use crate::tensor::Tensor;
use std::cmp::Ordering;

/// The result of a top-k selection over all elements of a tensor.
///
/// Invariants: `mask` has the tensor's shape and exactly `kept` ones (the rest zeros);
/// `threshold` is the smallest kept magnitude (`+inf` when nothing is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct TopK<T: Float> {
    pub mask: Tensor<T>,
    pub kept: usize,
    pub threshold: T,
}

/// Orders element `i` before `j` when `|x_i| > |x_j|`, or when the magnitudes are equal and
/// `i < j`. NaN counts as the smallest magnitude. This is a total order, so the selection is
/// the same on every run and for every thread count.
fn rank<T: Float>(x: &[T], i: usize, j: usize) -> Ordering {
    let key = |v: T| {
        if v.is_nan() {
            f64::NEG_INFINITY
        } else {
            v.abs().to_f64()
        }
    };
    key(x[j]).total_cmp(&key(x[i])).then(i.cmp(&j))
}

impl<T: Float> Tensor<T> {
    /// Keeps the `count` elements of largest magnitude over the whole tensor (ties broken
    /// towards the lower flat index) and returns the 0/1 mask. `count` above the element count
    /// is an error.
    pub fn try_top_k_abs(&self, count: usize) -> Result<TopK<T>> {
        let n = self.numel();
        if count > n {
            return Err(TensorError::Invalid {
                op: "top_k_abs",
                msg: format!(
                    "cannot keep {count} of {n} elements (shape {:?})",
                    self.shape()
                ),
            });
        }
        let x = self.data();
        let mut order: Vec<usize> = (0..n).collect();
        let mut mask = Tensor::zeros(self.shape());
        if count == 0 {
            return Ok(TopK {
                mask,
                kept: 0,
                threshold: T::from_f64(f64::INFINITY),
            });
        }
        if count < n {
            order.select_nth_unstable_by(count - 1, |&i, &j| rank(x, i, j));
        }
        let kept = &order[..count];
        let mut threshold = T::from_f64(f64::INFINITY);
        for &i in kept {
            mask.data_mut()[i] = T::one();
            threshold = threshold.min(x[i].abs());
        }
        Ok(TopK {
            mask,
            kept: count,
            threshold,
        })
    }

    pub fn top_k_abs(&self, count: usize) -> TopK<T> {
        ok(self.try_top_k_abs(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_count_with_ties_to_the_lower_index() {
        let t = Tensor::<f32>::from_vec(&[2, 3], vec![1.0, -3.0, 2.0, 3.0, -2.0, 0.5]);
        let top = t.top_k_abs(3);
        // |x| = 1 3 2 3 2 .5: the two 3s, then the first 2 (index 2 before index 4).
        assert_eq!(top.mask.data(), &[0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(top.threshold, 2.0);
        assert_eq!(t.top_k_abs(0).mask.sum_all(), 0.0);
        assert_eq!(t.top_k_abs(6).mask.sum_all(), 6.0);
        assert!(t.try_top_k_abs(7).is_err());
    }

    #[test]
    fn nan_is_never_kept_before_a_number() {
        let t = Tensor::<f64>::from_vec(&[3], vec![f64::NAN, 0.0, -1.0]);
        assert_eq!(t.top_k_abs(2).mask.data(), &[0.0, 1.0, 1.0]);
    }
}
