//! CP (canonical polyadic) tensors: the low-rank form of every subnetwork's tensor.
//!
//! A rank-`R` tensor of shape `(d_1, .., d_K)` is `sum_r a_1r (x) a_2r (x) .. (x) a_Kr`, one
//! vector per mode per rank-one term. [`CpTensor`] holds this for all `n_v` subnetworks at once.

use rand::Rng;
use tensor::{Float, Tensor, Transpose};

/// One parameter tensor's factors for all subnetworks.
///
/// Invariants: `factors.len() == shape.len() >= 1`; `factors[m]` has shape
/// `[shape[m], n_v * rank]`; column `v * rank + r` of `factors[m]` is the mode-`m` vector of
/// rank-one term `r` of subnetwork `v`.
#[derive(Debug, Clone, PartialEq)]
pub struct CpTensor<T: Float> {
    pub shape: Vec<usize>,
    pub n_v: usize,
    pub rank: usize,
    pub factors: Vec<Tensor<T>>,
}

impl<T: Float> CpTensor<T> {
    /// Factors with independent normal entries of standard deviation `std`.
    pub fn random(shape: &[usize], n_v: usize, rank: usize, std: f64, rng: &mut impl Rng) -> Self {
        assert!(!shape.is_empty(), "a CP tensor needs at least one mode");
        let factors = shape
            .iter()
            .map(|&d| Tensor::randn(&[d, n_v * rank], std, rng))
            .collect();
        Self {
            shape: shape.to_vec(),
            n_v,
            rank,
            factors,
        }
    }

    /// Columns per factor: `n_v * rank`.
    pub fn columns(&self) -> usize {
        self.n_v * self.rank
    }

    /// Number of elements of the full tensor.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Subnetwork `v`'s full tensor, of shape `shape` (sum of its rank-one terms).
    pub fn dense_subnetwork(&self, v: usize) -> Tensor<T> {
        let mut out = Tensor::zeros(&self.shape);
        for r in 0..self.rank {
            let col = v * self.rank + r;
            let mut term = Tensor::ones(&[1]);
            for f in &self.factors {
                let vector = column(f, col);
                // Outer product, growing one mode at a time: [.., 1] * [d] -> [.., d].
                let shape = [term.shape(), &[1]].concat();
                term = term.reshape(&shape).mul(&vector);
            }
            out.add_assign(&term.reshape(&self.shape));
        }
        out
    }

    /// Every subnetwork's full tensor, flattened: `[n_v, numel]`.
    pub fn dense(&self) -> Tensor<T> {
        let parts: Vec<Tensor<T>> = (0..self.n_v)
            .map(|v| self.dense_subnetwork(v).reshape(&[self.numel()]))
            .collect();
        let refs: Vec<&Tensor<T>> = parts.iter().collect();
        Tensor::stack(&refs)
    }

    /// Inner products of all rank-one terms: `H[(v,r), (w,s)] = prod_m <a_m,vr, a_m,ws>`,
    /// `[n_v R, n_v R]`: the Hadamard product of the per-mode Gram matrices.
    pub fn term_gram(&self) -> Tensor<T> {
        let mut h = Tensor::ones(&[self.columns(), self.columns()]);
        for f in &self.factors {
            h = h.mul(&f.matmul_t(Transpose::Yes, f, Transpose::No));
        }
        h
    }

    /// `|V_v|^2` of each subnetwork's full tensor, from [`CpTensor::term_gram`].
    pub fn subnetwork_sq_norms(&self) -> Vec<T> {
        let h = self.term_gram();
        let c = self.columns();
        (0..self.n_v)
            .map(|v| {
                let mut s = T::zero();
                for r in 0..self.rank {
                    for q in 0..self.rank {
                        s += h.data()[(v * self.rank + r) * c + v * self.rank + q];
                    }
                }
                s
            })
            .collect()
    }

    /// Multiplies subnetwork `v`'s full tensor by `scale[v]`, spreading the factor evenly over
    /// the modes (`scale^(1/K)` on each, sign on the first) so no mode's vectors grow or shrink
    /// relative to the others.
    pub fn scale_subnetworks(&mut self, scale: &[T]) {
        let modes = self.factors.len();
        let c = self.columns();
        for (m, f) in self.factors.iter_mut().enumerate() {
            for row in f.data_mut().chunks_exact_mut(c) {
                for (j, x) in row.iter_mut().enumerate() {
                    let s = scale[j / self.rank];
                    let mut per_mode = T::from_f64(s.abs().to_f64().powf(1.0 / modes as f64));
                    if m == 0 && s < T::zero() {
                        per_mode = -per_mode;
                    }
                    *x *= per_mode;
                }
            }
        }
    }
}

/// Column `j` of a `[rows, cols]` matrix, as a vector `[rows]`.
fn column<T: Float>(m: &Tensor<T>, j: usize) -> Tensor<T> {
    let cols = m.shape()[1];
    Tensor::from_fn(&[m.shape()[0]], |i| m.data()[i * cols + j])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::rng;

    #[test]
    fn dense_of_a_rank_one_matrix_is_the_outer_product() {
        // Subnetwork 1 of a [2, 3] tensor: a = (1, 2), b = (3, 4, 5) -> a b^T.
        let mut cp = CpTensor::<f64>::random(&[2, 3], 2, 1, 1.0, &mut rng(0));
        cp.factors[0] = Tensor::from_vec(&[2, 2], vec![0.0, 1.0, 0.0, 2.0]);
        cp.factors[1] = Tensor::from_vec(&[3, 2], vec![0.0, 3.0, 0.0, 4.0, 0.0, 5.0]);
        let d = cp.dense_subnetwork(1);
        assert_eq!(d.data(), &[3.0, 4.0, 5.0, 6.0, 8.0, 10.0]);
        assert_eq!(cp.dense_subnetwork(0).sum_squares(), 0.0);
    }

    #[test]
    fn gram_norms_equal_dense_norms_and_scaling_scales_them() {
        let mut cp = CpTensor::<f64>::random(&[3, 2, 4], 3, 2, 1.0, &mut rng(1));
        let norms = cp.subnetwork_sq_norms();
        for (v, n) in norms.iter().enumerate() {
            let dense = cp.dense_subnetwork(v).sum_squares();
            assert!((n - dense).abs() < 1e-10 * dense.max(1.0));
        }
        cp.scale_subnetworks(&[2.0, -0.5, 1.0]);
        let after = cp.subnetwork_sq_norms();
        assert!((after[0] - 4.0 * norms[0]).abs() < 1e-9 * norms[0]);
        assert!((after[1] - 0.25 * norms[1]).abs() < 1e-9 * norms[1]);
    }
}
