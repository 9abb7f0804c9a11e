//! Raw `sgemm`, the measure the benchmarks compare every product with.

use tensor::Float;

/// `c = a b` through `matrixmultiply::sgemm` (`Float::gemm` of `f32`, the tensor crate's
/// GEMM, called directly), operands with `(row, column)` strides; `c` row-major `m x n`.
/// Panics if an operand is too short for its shape and strides.
pub fn raw_sgemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    assert!((m - 1) * rsa + (k - 1) * csa < a.len() && (k - 1) * rsb + (n - 1) * csb < b.len());
    // SAFETY: the asserts bound every element the strided operands address; `c` is a distinct
    // `&mut` slice of `m x n` elements written with row stride `n`.
    unsafe {
        <f32 as Float>::gemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}
