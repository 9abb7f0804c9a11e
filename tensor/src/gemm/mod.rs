//! A matrix product for many small products in a loop: `C <- alpha A B + beta C` on strided
//! operands, packed into buffers the caller owns and reuses ([`GemmScratch`]), so that a
//! steady-state loop allocates nothing.
//!
//! [`crate::Tensor::matmul`] goes through `matrixmultiply`, which allocates its packing buffer
//! on every call, and whose per-call overhead dominates products like `[32, 2] @ [2, 5]`; the
//! L3D fast path's products go through this one instead. It is the textbook blocked algorithm:
//!
//! ```text
//! LOOP 3: split n into NC-wide column blocks            (B, C)
//!   LOOP 2: split k into KC-deep slices                 (A, B)
//!     pack B[k slice, column block] into NR-wide panels
//!     LOOP 1: split m into MC-tall row blocks           (A, C)
//!       pack A[row block, k slice] into MR-tall panels
//!       for each NR panel, for each MR panel: the MR x NR microkernel
//! ```
//!
//! Products of at most `SMALL_MAX` multiply-adds skip packing A: each row of C accumulates
//! in a `1 x L` kernel instead.
//!
//! | file | holds |
//! |---|---|
//! | `matrix.rs` | the operands: [`MatRef`] (strided) and [`MatMut`] (contiguous rows) |
//! | `kernel.rs` | the microkernels behind [`Kernel`] (`MR`, `NR`, `L`), the table of each instruction set's kernel ([`Element`]), the dispatch |
//! | `pack.rs` | packing A and B into panels, [`GemmScratch`], [`PackedB`] |
//! | `blocked.rs` | the blocked loops above |
//! | `small.rs` | the small product |
//! | `gram.rs` | `F^T F` from its upper tiles |
//!
//! The microkernels keep their accumulators in arrays the compiler maps onto vector
//! registers; they are compiled for AVX-512, for AVX2 with FMA, and for the baseline
//! instruction set, and [`crate::Isa::active`] picks one at run time. Every product
//! accumulates over `k` in order from zero, so a result depends on the operands and the
//! instruction set only: never on how the caller splits its work between threads.
//!
//! Tested against a naive triple loop on small integers (exact) into NaN-filled outputs for
//! every size 0..=16 and large odd ones, every operand layout and every instruction set the
//! CPU has (`tests.rs`); benchmarked next to `sgemm` in `benches/l3d_step.rs` (`gemm`).

mod blocked;
mod gram;
mod kernel;
mod matrix;
mod pack;
mod small;
#[cfg(test)]
mod tests;

pub use gram::{gram, gram_rows, gram_rows_with, gram_with, mirror_upper};
pub use kernel::{Element, Kernel, Microkernel};
pub use matrix::{MatMut, MatRef};
pub use pack::{GemmScratch, PackedB};

use crate::cpu::Isa;
use blocked::{packed, BSource, Operands};
use small::small_path;

/// Depth of a packed slice of `k`.
const KC: usize = 256;
/// Rows of A packed at once (a multiple of every `MR`).
const MC: usize = 96;
/// Columns of B packed at once (a multiple of every `NR`).
const NC: usize = 512;
/// Products with at most this many multiply-adds skip packing A: the `1 x L` kernel is faster.
const SMALL_MAX: usize = 4096;

/// `C <- alpha A B + beta C` for `A: m x k`, `B: k x n`, `C: m x n`, with the active
/// instruction set. With `beta = 0`, `C` is not read (NaN in it is overwritten).
pub fn gemm<T: Element>(
    alpha: T,
    a: MatRef<T>,
    b: MatRef<T>,
    beta: T,
    c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    gemm_with(Isa::active(), alpha, a, b, beta, c, scratch);
}

/// [`gemm`] with a chosen instruction set. Panics if the CPU lacks it or the shapes disagree.
pub fn gemm_with<T: Element>(
    isa: Isa,
    alpha: T,
    a: MatRef<T>,
    b: MatRef<T>,
    beta: T,
    c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let (a, b) = (std::slice::from_ref(&a), std::slice::from_ref(&b));
    gemm_sum_with(isa, alpha, a, b, beta, c, scratch);
}

/// `C <- alpha sum_j A_j B_j + beta C` for `A_j: m x k_j`, `B_j: k_j x n`: the product of
/// `[A_0 | A_1 | ..]` and `[B_0; B_1; ..]`, packed side by side so the microkernel runs over
/// the whole `k` at once (one pass over C instead of one per part). Every element accumulates
/// over the parts in order. Panics if `parts_a` is empty or the shapes disagree.
pub fn gemm_sum<T: Element>(
    alpha: T,
    parts_a: &[MatRef<T>],
    parts_b: &[MatRef<T>],
    beta: T,
    c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    gemm_sum_with(Isa::active(), alpha, parts_a, parts_b, beta, c, scratch);
}

/// [`gemm_sum`] with a chosen instruction set.
pub fn gemm_sum_with<T: Element>(
    isa: Isa,
    alpha: T,
    parts_a: &[MatRef<T>],
    parts_b: &[MatRef<T>],
    beta: T,
    mut c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    assert!(isa.supported(), "gemm: this CPU lacks {isa:?}");
    assert!(
        !parts_a.is_empty() && parts_a.len() == parts_b.len(),
        "gemm: {} left and {} right parts",
        parts_a.len(),
        parts_b.len()
    );
    for (j, (a, b)) in parts_a.iter().zip(parts_b).enumerate() {
        assert!(
            a.cols == b.rows && a.rows == c.rows && b.cols == c.cols,
            "gemm: part {j}: A is {} x {}, B is {} x {}, C is {} x {}",
            a.rows,
            a.cols,
            b.rows,
            b.cols,
            c.rows,
            c.cols
        );
    }
    let k: usize = parts_a.iter().map(|a| a.cols).sum();
    if c.rows * c.cols * k <= SMALL_MAX {
        for (j, (a, b)) in parts_a.iter().zip(parts_b).enumerate() {
            let beta = if j == 0 { beta } else { T::one() };
            small_path(isa, alpha, a, b, beta, &mut c, scratch);
        }
        return;
    }
    let ops = Operands {
        a: parts_a,
        b: BSource::Strided(parts_b),
        upper: false,
    };
    packed(isa, alpha, ops, beta, &mut c, scratch);
}

/// Whether an `m x k` by `k x n` product takes the packed kernel (and so gains from a
/// [`PackedB`] when B is reused).
pub fn takes_packing(m: usize, k: usize, n: usize) -> bool {
    m * k * n > SMALL_MAX
}

/// [`gemm`], or [`gemm_prepacked`] when `packed` holds `b` packed.
pub fn gemm_maybe_packed<T: Element>(
    alpha: T,
    a: MatRef<T>,
    b: MatRef<T>,
    packed: Option<&PackedB<T>>,
    beta: T,
    c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    match packed {
        Some(p) => {
            debug_assert!(
                p.k == b.rows && p.n == b.cols,
                "the packed B is another matrix"
            );
            gemm_prepacked(alpha, a, p, beta, c, scratch)
        }
        None => gemm(alpha, a, b, beta, c, scratch),
    }
}

/// `C <- alpha A B + beta C` with B packed beforehand ([`PackedB`]), with the instruction set
/// it was packed for.
pub fn gemm_prepacked<T: Element>(
    alpha: T,
    a: MatRef<T>,
    b: &PackedB<T>,
    beta: T,
    mut c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let isa = b.isa.expect("gemm_prepacked: B was never packed");
    assert!(
        a.cols == b.k && a.rows == c.rows && b.n == c.cols,
        "gemm_prepacked: A is {} x {}, B is {} x {}, C is {} x {}",
        a.rows,
        a.cols,
        b.k,
        b.n,
        c.rows,
        c.cols
    );
    if a.rows == 0 || b.n == 0 {
        return;
    }
    if b.k == 0 {
        let cols = c.cols;
        for i in 0..c.rows {
            for x in c.row_mut(i, 0, cols) {
                *x = if beta == T::zero() {
                    T::zero()
                } else {
                    beta * *x
                };
            }
        }
        return;
    }
    let ops = Operands {
        a: std::slice::from_ref(&a),
        b: BSource::Packed(b),
        upper: false,
    };
    packed(isa, alpha, ops, beta, &mut c, scratch);
}
