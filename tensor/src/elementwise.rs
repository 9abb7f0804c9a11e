//! Elementwise arithmetic with NumPy broadcasting, scalar forms, and the activation maps.

use crate::element::Float;
use crate::error::{ok, Result, TensorError};
use crate::kernels::{map_into, zip_map_into};
use crate::shape::{broadcast_shape, broadcast_strides, for_each_offset, is_trailing, numel};
use crate::tensor::Tensor;

impl<T: Float> Tensor<T> {
    /// `out = f(self, other)` elementwise under NumPy broadcasting.
    ///
    /// Three paths, all giving the same result: equal shapes (one zipped loop), one shape a
    /// trailing part of the other (a bias over a batch: a loop over contiguous blocks), and the
    /// general strided walk.
    pub fn try_zip_broadcast(
        &self,
        other: &Self,
        op: &'static str,
        f: impl Fn(T, T) -> T + Sync,
    ) -> Result<Self> {
        let (a, b) = (self.shape(), other.shape());
        if a == b {
            let mut out = Self::zeros(a);
            zip_map_into(out.data_mut(), self.data(), other.data(), f);
            return Ok(out);
        }
        let shape = broadcast_shape(op, a, b)?;
        let mut out = Self::zeros(&shape);
        if is_trailing(b, a) && b.len() < a.len() && numel(b) > 0 {
            for (o, x) in out
                .data_mut()
                .chunks_exact_mut(numel(b))
                .zip(self.data().chunks_exact(numel(b)))
            {
                for ((o, x), y) in o.iter_mut().zip(x).zip(other.data()) {
                    *o = f(*x, *y);
                }
            }
        } else if is_trailing(a, b) && a.len() < b.len() && numel(a) > 0 {
            for (o, y) in out
                .data_mut()
                .chunks_exact_mut(numel(a))
                .zip(other.data().chunks_exact(numel(a)))
            {
                for ((o, x), y) in o.iter_mut().zip(self.data()).zip(y) {
                    *o = f(*x, *y);
                }
            }
        } else {
            let sa = broadcast_strides(a, &shape);
            let sb = broadcast_strides(b, &shape);
            let (da, db) = (self.data(), other.data());
            let mut k = 0;
            let dst = out.data_mut();
            for_each_offset(&shape, [&sa, &sb], |[ia, ib]| {
                dst[k] = f(da[ia], db[ib]);
                k += 1;
            });
        }
        Ok(out)
    }

    pub fn try_add(&self, other: &Self) -> Result<Self> {
        self.try_zip_broadcast(other, "add", |a, b| a + b)
    }
    pub fn try_sub(&self, other: &Self) -> Result<Self> {
        self.try_zip_broadcast(other, "sub", |a, b| a - b)
    }
    pub fn try_mul(&self, other: &Self) -> Result<Self> {
        self.try_zip_broadcast(other, "mul", |a, b| a * b)
    }
    pub fn try_div(&self, other: &Self) -> Result<Self> {
        self.try_zip_broadcast(other, "div", |a, b| a / b)
    }
    pub fn add(&self, other: &Self) -> Self {
        ok(self.try_add(other))
    }
    pub fn sub(&self, other: &Self) -> Self {
        ok(self.try_sub(other))
    }
    pub fn mul(&self, other: &Self) -> Self {
        ok(self.try_mul(other))
    }
    pub fn div(&self, other: &Self) -> Self {
        ok(self.try_div(other))
    }

    /// `out = f(self)` elementwise (parallel over fixed chunks for long tensors).
    pub fn map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        let mut out = Self::zeros(self.shape());
        map_into(out.data_mut(), self.data(), f);
        out
    }

    /// `out = f(self, other)` elementwise for tensors of exactly one shape (no broadcasting).
    pub fn try_zip_map(&self, other: &Self, f: impl Fn(T, T) -> T + Sync) -> Result<Self> {
        if self.shape() != other.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "zip_map",
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
            });
        }
        let mut out = Self::zeros(self.shape());
        zip_map_into(out.data_mut(), self.data(), other.data(), f);
        Ok(out)
    }

    pub fn zip_map(&self, other: &Self, f: impl Fn(T, T) -> T + Sync) -> Self {
        ok(self.try_zip_map(other, f))
    }

    /// `self += alpha * other` in place, same shape.
    pub fn try_add_scaled_assign(&mut self, alpha: T, other: &Self) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "add_scaled_assign",
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
            });
        }
        crate::kernels::axpy(alpha, other.data(), self.data_mut());
        Ok(())
    }

    pub fn add_assign(&mut self, other: &Self) {
        ok(self.try_add_scaled_assign(T::one(), other))
    }

    pub fn neg(&self) -> Self {
        self.map(|x| -x)
    }
    pub fn add_scalar(&self, s: T) -> Self {
        self.map(|x| x + s)
    }
    pub fn mul_scalar(&self, s: T) -> Self {
        self.map(|x| x * s)
    }
    pub fn relu(&self) -> Self {
        self.map(relu)
    }
    pub fn gelu(&self) -> Self {
        self.map(gelu)
    }
    pub fn elu(&self, alpha: T) -> Self {
        self.map(|x| elu(x, alpha))
    }
    pub fn tanh(&self) -> Self {
        self.map(T::tanh)
    }
    pub fn sigmoid(&self) -> Self {
        self.map(sigmoid)
    }
    pub fn exp(&self) -> Self {
        self.map(T::exp)
    }
    pub fn log(&self) -> Self {
        self.map(T::ln)
    }
    pub fn square(&self) -> Self {
        self.map(|x| x * x)
    }
    pub fn sqrt(&self) -> Self {
        self.map(T::sqrt)
    }
    pub fn abs(&self) -> Self {
        self.map(T::abs)
    }
}

/// `max(x, 0)`; its derivative is taken as 0 at `x = 0` (see [`relu_grad`]).
#[inline(always)]
pub fn relu<T: Float>(x: T) -> T {
    if x > T::zero() {
        x
    } else {
        T::zero()
    }
}

/// `d relu / dx`: 1 for `x > 0`, 0 otherwise (the subgradient 0 at `x = 0`, as PyTorch).
#[inline(always)]
pub fn relu_grad<T: Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else {
        T::zero()
    }
}

/// The exact GELU, `x Phi(x) = x (1 + erf(x / sqrt 2)) / 2` (PyTorch's default form;
/// [`Float::gelu`], where the formulas live).
#[inline]
pub fn gelu<T: Float>(x: T) -> T {
    x.gelu()
}

/// `d gelu / dx = Phi(x) + x phi(x)` ([`Float::gelu_grad`]).
#[inline]
pub fn gelu_grad<T: Float>(x: T) -> T {
    x.gelu_grad()
}

/// `(gelu(x), gelu'(x))` with one `erf` for both ([`Float::gelu_and_grad`]), for hand-written
/// backward passes that need both (toy training).
#[inline]
pub fn gelu_and_grad<T: Float>(x: T) -> (T, T) {
    x.gelu_and_grad()
}

/// `a[i] = gelu(z[i])`, `da[i] = gelu'(z[i])` over equal-length slices, by the type's row
/// kernel ([`Float::gelu_rows`]: vectorised approximations in `f32`, the exact formulas in
/// `f64`).
pub fn gelu_rows<T: Float>(z: &[T], a: &mut [T], da: &mut [T]) {
    T::gelu_rows(z, a, da);
}

/// `x` for `x > 0`, `alpha (e^x - 1)` otherwise.
#[inline]
pub fn elu<T: Float>(x: T, alpha: T) -> T {
    if x > T::zero() {
        x
    } else {
        alpha * (x.exp() - T::one())
    }
}

/// `d elu / dx`: 1 for `x > 0`, `alpha e^x` otherwise.
#[inline]
pub fn elu_grad<T: Float>(x: T, alpha: T) -> T {
    if x > T::zero() {
        T::one()
    } else {
        alpha * x.exp()
    }
}

/// `1 / (1 + e^-x)`, computed without overflow for large `|x|`.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

impl<T: Float> Tensor<T> {
    /// Sums `self` down to `shape`, the adjoint of broadcasting `shape` up to `self.shape()`.
    /// `shape` must broadcast to `self.shape()`.
    pub fn try_sum_to_shape(&self, shape: &[usize]) -> Result<Self> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let full = broadcast_shape("sum_to_shape", shape, self.shape())?;
        if full != self.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "sum_to_shape",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let mut out = Self::zeros(shape);
        let n = numel(shape);
        if is_trailing(shape, self.shape()) && n > 0 {
            // Blocks are added in row order: the same order for any thread count.
            for block in self.data().chunks_exact(n) {
                for (o, v) in out.data_mut().iter_mut().zip(block) {
                    *o += *v;
                }
            }
        } else {
            let dst_strides = broadcast_strides(shape, self.shape());
            let src = self.data();
            let dst = out.data_mut();
            let mut k = 0;
            for_each_offset(self.shape(), [&dst_strides], |[o]| {
                dst[o] += src[k];
                k += 1;
            });
        }
        Ok(out)
    }

    pub fn sum_to_shape(&self, shape: &[usize]) -> Self {
        ok(self.try_sum_to_shape(shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_and_grad_match_gelu_and_its_gradient() {
        for i in -80..=80 {
            let x = i as f32 / 10.0;
            let (value, grad) = gelu_and_grad(x);
            // The same formulas; a few ulps apart at most.
            assert!((value - gelu(x)).abs() <= 1e-6 * (1.0 + x.abs()), "{x}");
            assert!((grad - gelu_grad(x)).abs() <= 1e-6, "{x}");
        }
    }

    #[test]
    fn gelu_rows_are_the_exact_formulas_in_f64_and_close_in_f32() {
        let z: Vec<f64> = (-400..400).map(|i| i as f64 * 0.02 + 1e-3).collect();
        let (mut a, mut da) = (vec![f64::NAN; z.len()], vec![f64::NAN; z.len()]);
        gelu_rows(&z, &mut a, &mut da);
        for ((&x, &ax), &dx) in z.iter().zip(&a).zip(&da) {
            assert_eq!(
                (ax.to_bits(), dx.to_bits()),
                (gelu(x).to_bits(), gelu_grad(x).to_bits())
            );
        }
        // f32: the vectorised approximations (`gelu.rs`), within rounding of the formulas.
        let z: Vec<f32> = z.iter().map(|&x| x as f32).collect();
        let (mut a, mut da) = (vec![f32::NAN; z.len()], vec![f32::NAN; z.len()]);
        gelu_rows(&z, &mut a, &mut da);
        for ((&x, &ax), &dx) in z.iter().zip(&a).zip(&da) {
            assert!(
                (ax - gelu(x)).abs() <= 1e-6 * (1.0 + gelu(x).abs()),
                "gelu({x})"
            );
            assert!((dx - gelu_grad(x)).abs() <= 1e-6, "gelu'({x})");
        }
    }

    #[test]
    fn broadcasting_paths_agree_with_the_general_walk() {
        let a = Tensor::<f64>::from_fn(&[2, 3, 4], |i| i as f64);
        let bias = Tensor::<f64>::from_fn(&[4], |i| 10.0 * i as f64);
        let col = Tensor::<f64>::from_fn(&[3, 1], |i| 100.0 * i as f64);
        let sum = a.add(&bias);
        assert_eq!(sum.shape(), &[2, 3, 4]);
        assert_eq!(sum.data()[5], 5.0 + 10.0);
        assert_eq!(bias.add(&a), sum);
        let s2 = a.add(&col);
        // element [1, 2, 3] = 12 + 8 + 3 = 23, plus col[2] = 200.
        assert_eq!(s2.data()[23], 23.0 + 200.0);
        assert_eq!(col.add(&a), s2);
    }

    #[test]
    fn sum_to_shape_is_the_adjoint_of_broadcasting() {
        let g = Tensor::<f64>::ones(&[2, 3, 4]);
        assert_eq!(g.sum_to_shape(&[4]).data(), &[6.0; 4]);
        assert_eq!(g.sum_to_shape(&[3, 1]).data(), &[8.0; 3]);
        assert_eq!(g.sum_to_shape(&[1, 1, 1]).data(), &[24.0]);
        assert!(g.try_sum_to_shape(&[5]).is_err());
    }

    #[test]
    fn mismatched_shapes_name_both() {
        let a = Tensor::<f32>::zeros(&[2, 3]);
        let b = Tensor::<f32>::zeros(&[4]);
        let err = a.try_add(&b).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains("[4]"), "{err}");
    }

    #[test]
    fn activations_at_known_points() {
        assert_eq!(relu(-1.0f64), 0.0);
        assert_eq!(relu_grad(0.0f64), 0.0);
        // gelu(1) = Phi(1) = 0.841344746...
        assert!((gelu(1.0f64) - 0.841_344_746_068_542_9).abs() < 1e-15);
        assert!((sigmoid(-800.0f64)).is_finite());
        assert_eq!(elu(-1.0f64, 1.0), (-1.0f64).exp() - 1.0);
    }
}
