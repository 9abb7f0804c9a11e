//! The small product: `C <- alpha A B + beta C` for products too small to repay packing A.
//! B is copied into blocks of [`Kernel::L`] columns padded with zeros, and each row of C
//! accumulates `a_ip B[p, block]` in `L` registers ([`Kernel::row`], a `1 x L` microkernel).

use super::kernel::Element;
use super::kernel::{with_kernel, Kernel};
use super::matrix::{MatMut, MatRef};
use super::pack::{prefix, GemmScratch};
use crate::cpu::Isa;

/// The small product with the kernel of `isa`, compiled for it.
pub(super) fn small_path<T: Element>(
    isa: Isa,
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    with_kernel!(isa, small::<T>(alpha, a, b, beta, c, scratch));
}

#[inline(always)]
fn small<T: Element, K: Kernel<T>>(
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let (k, n, lanes) = (a.cols, b.cols, K::L);
    if n == 0 || a.rows == 0 {
        return;
    }
    let blocks = n.div_ceil(lanes);
    let block_len = k * lanes;
    let packed = prefix(&mut scratch.b, blocks * block_len);
    for block in 0..blocks {
        let j0 = block * lanes;
        let rows = packed[block * block_len..(block + 1) * block_len].chunks_exact_mut(lanes);
        for (p, dst) in rows.enumerate() {
            // Fixed trip counts with a guard (no call to memcpy or memset for a few values).
            let dst = &mut dst[..lanes];
            if b.cs == 1 {
                let start = p * b.rs + j0;
                let src = &b.data[start..start + (n - j0).min(lanes)];
                for (l, d) in dst.iter_mut().enumerate() {
                    *d = if l < src.len() { src[l] } else { T::zero() };
                }
            } else {
                for (l, d) in dst.iter_mut().enumerate() {
                    *d = if j0 + l < n {
                        b.at(p, j0 + l)
                    } else {
                        T::zero()
                    };
                }
            }
        }
    }
    let packed = &*packed;
    for i in 0..a.rows {
        for block in 0..blocks {
            let j0 = block * lanes;
            let b_block = &packed[block * block_len..(block + 1) * block_len];
            let out = c.row_mut(i, j0, lanes.min(n - j0));
            K::row(a, i, b_block, alpha, beta, out);
        }
    }
}
