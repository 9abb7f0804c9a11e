//! Packing: copies of blocks of A and B into the panels the microkernels read ([`Kernel::MR`]
//! rows of A, [`Kernel::NR`] columns of B, contiguous for each `p`), into buffers the caller
//! owns and reuses, or once for a B used by many products ([`PackedB`]).

use super::kernel::Element;
use super::kernel::{widest_nr, with_kernel, Kernel};
use super::matrix::MatRef;
use super::{KC, MC, NC};
use crate::cpu::Isa;

/// Packing buffers, grown on first use and reused: keep one per task that multiplies.
#[derive(Debug, Clone, Default)]
pub struct GemmScratch<T> {
    pub(super) a: Vec<T>,
    pub(super) b: Vec<T>,
}

impl<T: Element> GemmScratch<T> {
    /// Buffers large enough for the blocked product of any `m x k` by `k x n` with `n <= cols`,
    /// on any instruction set, so that such products never grow them: for scratch shared by
    /// tasks that threads take in no fixed order.
    pub fn for_columns(cols: usize) -> Self {
        let nr = widest_nr::<T>();
        let panels = cols.min(NC).div_ceil(nr) * nr;
        Self {
            a: vec![T::zero(); MC * KC],
            b: vec![T::zero(); KC * panels],
        }
    }
}

/// A right operand B packed once for many products `A B` (the panels the blocked algorithm
/// would otherwise pack on every call): model weights for every step, a factor for every
/// chunk of a step.
///
/// Invariant: `data` holds the `NR`-wide panels of `isa`'s kernel for each `NC x KC` block of
/// the `k x n` matrix, blocks in the order the blocked algorithm visits them.
#[derive(Debug, Clone, Default)]
pub struct PackedB<T> {
    pub(super) isa: Option<Isa>,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) data: Vec<T>,
}

impl<T: Element> PackedB<T> {
    /// Packs `b` for this CPU's kernel ([`Isa::active`]), reusing the allocation.
    pub fn pack(&mut self, b: MatRef<T>) {
        let isa = Isa::active();
        self.isa = Some(isa);
        (self.k, self.n) = (b.rows, b.cols);
        with_kernel!(isa, pack_blocks::<T>(self, &b));
    }
}

/// The blocks of `b` into `packed.data`, in the blocked algorithm's order, as `K` reads them.
#[inline(always)]
fn pack_blocks<T: Element, K: Kernel<T>>(packed: &mut PackedB<T>, b: &MatRef<T>) {
    let (k, n) = (packed.k, packed.n);
    let len = n.div_ceil(K::NR) * K::NR * k;
    packed.data.resize(len, T::zero());
    let mut offset = 0;
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let len = nc.div_ceil(K::NR) * K::NR * kc;
            let out = &mut packed.data[offset..offset + len];
            pack_b::<T, K>(b, pc, kc, jc, nc, out, kc * K::NR, 0);
            offset += len;
        }
    }
}

/// Packs `B[k0..k0+kc, j0..j0+nc]` into `ceil(nc / NR)` panels of `out`, each `panel` values
/// long: rows `kc` of `NR` values (columns past `nc` are zero) from value `at` of each panel.
/// (`panel > kc NR` when several parts of `k` share a packed block.)
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn pack_b<T: Element, K: Kernel<T>>(
    b: &MatRef<T>,
    k0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    out: &mut [T],
    panel: usize,
    at: usize,
) {
    let nr = K::NR;
    let panels = out.chunks_exact_mut(panel).take(nc.div_ceil(nr));
    for (panel, whole) in panels.enumerate() {
        let dst = &mut whole[at..at + kc * nr];
        let j = j0 + panel * nr;
        let width = nr.min(j0 + nc - j);
        if b.rs == 1 && b.cs != 1 {
            // Columns of B are contiguous: read each once, in order.
            for l in 0..width {
                let start = (j + l) * b.cs + k0;
                for (row, &x) in dst.chunks_exact_mut(nr).zip(&b.data[start..start + kc]) {
                    row[l] = x;
                }
            }
            for row in dst.chunks_exact_mut(nr) {
                row[width..].fill(T::zero());
            }
            continue;
        }
        for (p, row) in dst.chunks_exact_mut(nr).enumerate() {
            if b.cs == 1 && width == nr {
                // A whole panel row: a copy of a length the kernel fixes, which compiles to
                // vector moves.
                let start = (k0 + p) * b.rs + j;
                row[..nr].copy_from_slice(&b.data[start..start + nr]);
                continue;
            }
            if b.cs == 1 {
                let start = (k0 + p) * b.rs + j;
                for (x, &y) in row[..width].iter_mut().zip(&b.data[start..start + width]) {
                    *x = y;
                }
            } else {
                for (l, x) in row[..width].iter_mut().enumerate() {
                    *x = b.at(k0 + p, j + l);
                }
            }
            row[width..].fill(T::zero());
        }
    }
}

/// Packs `A[i0..i0+mc, k0..k0+kc]` into `ceil(mc / MR)` panels of `out`, each `panel` values
/// long: columns `kc` of `MR` values (rows past `mc` are zero) from value `at` of each panel.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn pack_a<T: Element, K: Kernel<T>>(
    a: &MatRef<T>,
    i0: usize,
    mc: usize,
    k0: usize,
    kc: usize,
    out: &mut [T],
    panel: usize,
    at: usize,
) {
    let mr = K::MR;
    let panels = out.chunks_exact_mut(panel).take(mc.div_ceil(mr));
    for (panel, whole) in panels.enumerate() {
        let dst = &mut whole[at..at + kc * mr];
        let i = i0 + panel * mr;
        let height = mr.min(i0 + mc - i);
        if a.cs == 1 && a.rs != 1 {
            // Rows of A are contiguous: read each once, in order.
            for l in 0..height {
                let start = (i + l) * a.rs + k0;
                for (col, &x) in dst.chunks_exact_mut(mr).zip(&a.data[start..start + kc]) {
                    col[l] = x;
                }
            }
            for col in dst.chunks_exact_mut(mr) {
                col[height..].fill(T::zero());
            }
            continue;
        }
        for (p, col) in dst.chunks_exact_mut(mr).enumerate() {
            if a.rs == 1 && height == mr {
                // A whole panel column: a copy of a length the kernel fixes, which compiles
                // to vector moves.
                let start = i + (k0 + p) * a.cs;
                col[..mr].copy_from_slice(&a.data[start..start + mr]);
                continue;
            }
            if a.rs == 1 {
                let start = i + (k0 + p) * a.cs;
                col[..height].copy_from_slice(&a.data[start..start + height]);
            } else {
                for (l, x) in col[..height].iter_mut().enumerate() {
                    *x = a.at(i + l, k0 + p);
                }
            }
            col[height..].fill(T::zero());
        }
    }
}

/// The first `len` values of a buffer, which grows (allocating) only when it is too short and
/// never shrinks, so a buffer shared by products of several sizes is not refilled each time.
pub(super) fn prefix<T: Element>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::zero());
    }
    &mut buf[..len]
}
