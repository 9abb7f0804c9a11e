//! The element types: `f32` for work, `f64` for gradient checks.

use crate::gemm::Element;
use std::f64::consts::FRAC_1_SQRT_2;
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// `1 / sqrt(2 pi)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// A floating-point element type of a [`crate::Tensor`].
///
/// Only `f32` and `f64` implement it. The math functions are the standard library's, except
/// `erf`, which comes from `libm` (the standard library has none). Each names its GEMM
/// microkernel per instruction set, through [`Element`], the part of it the GEMM needs (its
/// arithmetic and kernels).
pub trait Float:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + Display
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Element
    + 'static
{
    /// The name of the type, for messages and file headers (`"f32"`, `"f64"`).
    const NAME: &'static str;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_usize(x: usize) -> Self {
        Self::from_f64(x as f64)
    }
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    fn is_finite(self) -> bool;
    fn is_nan(self) -> bool;
    /// The exact GELU, `x Phi(x) = x (1 + erf(x / sqrt 2)) / 2` (PyTorch's default form). The
    /// one place its formulas are written; the tape, the fast path and toy training use them.
    #[inline]
    fn gelu(self) -> Self {
        let half = Self::from_f64(0.5);
        half * self * (Self::one() + (self * Self::from_f64(FRAC_1_SQRT_2)).erf())
    }
    /// `d gelu / dx = Phi(x) + x phi(x)`.
    #[inline]
    fn gelu_grad(self) -> Self {
        let half = Self::from_f64(0.5);
        let cdf = half * (Self::one() + (self * Self::from_f64(FRAC_1_SQRT_2)).erf());
        let pdf = Self::from_f64(FRAC_1_SQRT_2PI) * (-half * self * self).exp();
        cdf + self * pdf
    }
    /// `(gelu(x), gelu'(x)) = (x Phi(x), Phi(x) + x phi(x))` with one `erf` for both; the
    /// value is `x Phi(x)` rather than `0.5 x (1 + erf)`, a few ulps from [`Float::gelu`].
    #[inline]
    fn gelu_and_grad(self) -> (Self, Self) {
        let half = Self::from_f64(0.5);
        let cdf = half * (Self::one() + (self * Self::from_f64(FRAC_1_SQRT_2)).erf());
        let pdf = Self::from_f64(FRAC_1_SQRT_2PI) * (-half * self * self).exp();
        (self * cdf, cdf + self * pdf)
    }
    /// `a[i] = gelu(z[i])` and `da[i] = gelu'(z[i])` over equal-length slices (panics
    /// otherwise). `f64`: the exact [`Float::gelu`] and [`Float::gelu_grad`]; `f32`: one
    /// vectorised pass whose `erf` and `exp` are approximations within a few units in the last
    /// place (`gelu.rs`), since `libm`'s scalar calls would dominate a hand-written MLP pass.
    fn gelu_rows(z: &[Self], a: &mut [Self], da: &mut [Self]) {
        assert!(
            z.len() == a.len() && z.len() == da.len(),
            "gelu_rows: lengths"
        );
        for ((ai, di), &x) in a.iter_mut().zip(da.iter_mut()).zip(z) {
            *ai = x.gelu();
            *di = x.gelu_grad();
        }
    }
    /// `x[i] <- e^x[i]` over a slice. `f64`: [`Float::exp`] (`libm`); `f32`: one vectorised
    /// pass of the approximation of `gelu.rs` (relative error below 3e-7, arguments clamped
    /// to `[-87, 88]`), since `libm`'s scalar calls dominate a softmax over rows.
    fn exp_rows(x: &mut [Self]) {
        for v in x.iter_mut() {
            *v = v.exp();
        }
    }
    /// `C <- alpha op(A) op(B) + beta C` with element strides, through `matrixmultiply`.
    ///
    /// # Safety
    /// The pointers with their strides must address valid `m x k`, `k x n` and `m x n`
    /// matrices, and `c` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! float_impl {
    ($t:ty, $name:literal, $erf:path, $gemm:path
        $(, gelu_rows = $gelu_rows:path, exp_rows = $exp_rows:path)?) => {
        impl Float for $t {
            const NAME: &'static str = $name;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            $(
                fn gelu_rows(z: &[Self], a: &mut [Self], da: &mut [Self]) {
                    $gelu_rows(z, a, da)
                }
                fn exp_rows(x: &mut [Self]) {
                    $exp_rows(x)
                }
            )?
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded from this function's contract.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

float_impl!(
    f32,
    "f32",
    libm::erff,
    matrixmultiply::sgemm,
    gelu_rows = crate::gelu::gelu_f32,
    exp_rows = crate::gelu::exp_f32
);
float_impl!(f64, "f64", libm::erf, matrixmultiply::dgemm);
