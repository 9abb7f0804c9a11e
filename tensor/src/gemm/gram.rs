//! Gram matrices `K = F^T F` from the tiles on and above the diagonal: `K[i, j]` and `K[j, i]`
//! are the same sum of the same products in the same order, so the lower triangle is a copy
//! of the upper one ([`mirror_upper`]) and changes no bit.

use super::blocked::{packed, BSource, Operands};
use super::kernel::Element;
use super::matrix::{MatMut, MatRef};
use super::pack::GemmScratch;
use super::{gemm_with, SMALL_MAX};
use crate::cpu::Isa;

/// `K <- F^T F` for `F: d x C`, computing only the tiles on or above the diagonal and copying
/// the rest from them. `k` must hold `C x C` values.
pub fn gram<T: Element>(f: MatRef<T>, k: &mut [T], scratch: &mut GemmScratch<T>) {
    gram_with(Isa::active(), f, k, scratch);
}

/// [`gram`] with a chosen instruction set.
pub fn gram_with<T: Element>(isa: Isa, f: MatRef<T>, k: &mut [T], scratch: &mut GemmScratch<T>) {
    gram_rows_with(isa, f, 0, k, scratch);
    mirror_upper(k, f.cols);
}

/// Rows `r0..r0 + n` of `K = F^T F` (`F: d x C`), on and above the diagonal: `rows` holds
/// those `n` rows, `C` values each, and only entries `(i, j)` with `j >= i` are written (with
/// others of the diagonal's tiles). Blocks of rows are independent tasks; [`mirror_upper`]
/// completes `K` once every block is done.
pub fn gram_rows<T: Element>(
    f: MatRef<T>,
    r0: usize,
    rows: &mut [T],
    scratch: &mut GemmScratch<T>,
) {
    gram_rows_with(Isa::active(), f, r0, rows, scratch);
}

/// [`gram_rows`] with a chosen instruction set.
pub fn gram_rows_with<T: Element>(
    isa: Isa,
    f: MatRef<T>,
    r0: usize,
    rows: &mut [T],
    scratch: &mut GemmScratch<T>,
) {
    assert!(isa.supported(), "gram: this CPU lacks {isa:?}");
    let (d, cols) = (f.rows, f.cols);
    let n = rows.len() / cols.max(1);
    assert!(
        rows.len() == n * cols && r0 + n <= cols,
        "gram: rows {r0}.. of a {cols} x {cols} Gram in {} values",
        rows.len()
    );
    if n == 0 {
        return;
    }
    // F^T's rows r0.. (F's columns r0..) times F's columns r0..: the square from (r0, r0).
    let start = &f.data[r0 * f.cs..];
    let a = MatRef::new(start, n, d, f.cs, f.rs);
    let b = MatRef::new(start, d, cols - r0, f.rs, f.cs);
    let mut out = MatMut::new(&mut rows[r0..], n, cols - r0, cols);
    if d == 0 || n * (cols - r0) * d <= SMALL_MAX {
        gemm_with(isa, T::one(), a, b, T::zero(), out, scratch);
        return;
    }
    let ops = Operands {
        a: std::slice::from_ref(&a),
        b: BSource::Strided(std::slice::from_ref(&b)),
        upper: true,
    };
    packed(isa, T::one(), ops, T::zero(), &mut out, scratch);
}

/// `K[i, j] <- K[j, i]` below the diagonal of a `C x C` matrix, in square tiles (both reads and
/// writes stay in cache).
pub fn mirror_upper<T: Element>(k: &mut [T], cols: usize) {
    const TILE: usize = 16;
    for ib in (0..cols).step_by(TILE) {
        for jb in (0..=ib).step_by(TILE) {
            for i in ib..(ib + TILE).min(cols) {
                for j in jb..(jb + TILE).min(i) {
                    k[i * cols + j] = k[j * cols + i];
                }
            }
        }
    }
}
