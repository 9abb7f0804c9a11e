//! The blocked product (the loops of the module docs) around [`Kernel::tile`], on operands
//! that may be split along `k` and a B that may be packed beforehand.

use super::kernel::{with_kernel, Element, Kernel};
use super::matrix::{MatMut, MatRef};
use super::pack::{pack_a, pack_b, prefix, GemmScratch, PackedB};
use super::{KC, MC, NC};
use crate::cpu::Isa;

/// B as the blocked algorithm reads it: strided (packed on every call, from one or more
/// slices of `k`), or packed beforehand.
#[derive(Debug, Clone, Copy)]
pub(super) enum BSource<'a, T> {
    Strided(&'a [MatRef<'a, T>]),
    Packed(&'a PackedB<T>),
}

impl<T> BSource<'_, T> {
    /// `(k, n)`.
    fn dims(&self) -> (usize, usize) {
        match self {
            BSource::Strided(parts) => (parts.iter().map(|b| b.rows).sum(), parts[0].cols),
            BSource::Packed(b) => (b.k, b.n),
        }
    }
}

/// The operands of the blocked algorithm: `A = [A_0 | A_1 | ..]` and `B = [B_0; B_1; ..]`
/// split along `k` (so `A B = sum_j A_j B_j`, accumulated in one pass over `k`), and whether
/// only the tiles on or above the diagonal of a symmetric product are wanted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Operands<'a, T> {
    pub a: &'a [MatRef<'a, T>],
    pub b: BSource<'a, T>,
    pub upper: bool,
}

/// The blocked algorithm with the kernel of `isa`, compiled for it. Needs `k > 0`.
pub(super) fn packed<T: Element>(
    isa: Isa,
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    with_kernel!(isa, blocked::<T>(alpha, ops, beta, c, scratch));
}

/// The blocked algorithm of the module docs with `K`'s microkernel.
#[inline(always)]
fn blocked<T: Element, K: Kernel<T>>(
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let Operands { a, b, upper } = ops;
    let (m, (k, n)) = (a[0].rows, b.dims());
    let (mr, nr) = (K::MR, K::NR);
    debug_assert!(k > 0, "the small kernel serves k = 0");
    let mut offset = 0;
    // LOOP 3: split n into NC-wide column blocks (B, C).
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        // LOOP 2: split k into KC-deep slices (A, B).
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let b_block: &[T] = match b {
                BSource::Strided(parts) => {
                    let out = prefix(&mut scratch.b, nc.div_ceil(nr) * nr * kc);
                    for (part, local, at, len) in slices(parts.iter().map(|b| b.rows), pc, kc) {
                        let (at, panel) = (at * nr, kc * nr);
                        pack_b::<T, K>(&parts[part], local, len, jc, nc, out, panel, at);
                    }
                    out
                }
                BSource::Packed(packed) => {
                    // Blocks were packed in this loop's order (`PackedB::pack`).
                    let len = nc.div_ceil(nr) * nr * kc;
                    offset += len;
                    &packed.data[offset - len..offset]
                }
            };
            // The first slice of k applies the caller's beta; later ones accumulate.
            let beta_now = if pc == 0 { beta } else { T::one() };
            // LOOP 1: split m into MC-tall row blocks (A, C).
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                if upper && ic >= jc + nc {
                    break;
                }
                let a_block = prefix(&mut scratch.a, mc.div_ceil(mr) * kc * mr);
                for (part, local, at, len) in slices(a.iter().map(|a| a.cols), pc, kc) {
                    let (at, panel) = (at * mr, kc * mr);
                    pack_a::<T, K>(&a[part], ic, mc, local, len, a_block, panel, at);
                }
                let a_block = &*a_block;
                // For each NR panel of B, for each MR panel of A: the microkernel.
                for (jp, b_panel) in b_block.chunks_exact(kc * nr).enumerate() {
                    for (ip, a_panel) in a_block.chunks_exact(kc * mr).enumerate() {
                        let (i0, j0) = (ic + ip * mr, jc + jp * nr);
                        let rows = mr.min(m - i0);
                        let cols = nr.min(n - j0);
                        if upper && i0 >= j0 + cols {
                            // Strictly below the diagonal: the caller mirrors it.
                            break;
                        }
                        let tile = c.block(i0, j0, rows, cols);
                        K::tile(a_panel, b_panel, alpha, beta_now, tile);
                    }
                }
            }
        }
    }
}

/// The parts of the slice `[pc, pc + kc)` of a `k` split into parts of lengths `lens`:
/// `(part, start within the part, start within the slice, len)`.
#[inline(always)]
fn slices(
    lens: impl Iterator<Item = usize>,
    pc: usize,
    kc: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut start = 0;
    lens.enumerate().filter_map(move |(part, len)| {
        let (lo, hi) = (start.max(pc), (start + len).min(pc + kc));
        let here = start;
        start += len;
        (lo < hi).then(|| (part, lo - here, lo - pc, hi - lo))
    })
}
