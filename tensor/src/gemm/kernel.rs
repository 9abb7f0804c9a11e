//! The microkernels behind one trait, [`Kernel`]; the table of each instruction set's kernel
//! per element type, [`Element`]; and [`with_kernel`], which runs a generic loop with the
//! kernel of an instruction set, compiled for it.

use super::matrix::{MatMut, MatRef};
use std::fmt::Debug;
use std::ops::{Add, Mul};

/// The microkernels of one instruction set for elements `T`, and the shape of their tiles,
/// which the packing and the loops around them read (so a shape is written once, in
/// [`Element`]).
///
/// Both compute `C <- alpha A B + beta C` on a piece of `C`: each element accumulates
/// `sum_p a_ip b_pj` in order from `p = 0`, with fused multiply-adds where the kernel uses them,
/// then is stored as `alpha sum + beta c`, or `alpha sum` when `beta = 0` (`C` is then not
/// read, and NaN in it is overwritten). So a result depends on the operands and on whether
/// the kernel fuses, never on the tile shapes or on how the caller splits its work.
///
/// - [`Kernel::tile`], the blocked product's: one `MR x NR` tile from packed panels.
/// - [`Kernel::row`], the small product's: `1 x L` of a row of `C` (no packing of A).
///
/// Preconditions (asserted in debug builds; the kernels are safe code, so a broken one gives
/// a wrong result or a panic, never a read out of bounds):
///
/// - `tile`: `a_panel` holds `kc` columns of `MR` values (rows past the matrix's last are
///   zero), `b_panel` holds `kc` rows of `NR` values (zero past the last column), and `c` is
///   the tile's valid corner, at most `MR x NR`.
/// - `row`: `b` holds `a.cols` rows of `L` values (zero past B's last column), `i < a.rows`
///   and `out` has at most `L` values.
///
/// Run a kernel compiled for its instruction set, as the dispatch (`with_kernel!`) does:
/// elsewhere its fused multiply-adds are slow calls. Benchmarked through [`super::gemm`] in
/// `benches/l3d_step.rs` (`gemm/fast_gemm/<m>x<k>x<n>`, next to `gemm/sgemm/..`), FLOP/s.
pub trait Kernel<T> {
    /// Rows of a tile: A is packed in panels of `MR` rows.
    const MR: usize;
    /// Columns of a tile: B is packed in panels of `NR` columns.
    const NR: usize;
    /// Columns of the small product's row kernel (one vector register on AVX2 and AVX-512).
    const L: usize;

    /// `C <- alpha A B + beta C` for `A: c.rows x kc` and `B: kc x c.cols`, packed in panels.
    fn tile(a_panel: &[T], b_panel: &[T], alpha: T, beta: T, c: MatMut<T>);

    /// `out <- alpha A[i, :] B + beta out`, for `B` one block of `L` columns, row by row.
    fn row(a: &MatRef<T>, i: usize, b: &[T], alpha: T, beta: T, out: &mut [T]);
}

/// What the GEMM needs of an element type: its arithmetic, with a fused multiply-add, and the
/// kernel of each instruction set (the one table of tile shapes). [`crate::Float`] extends it
/// with the rest of the math, so generic code reaches `T::Avx2` and the rest; the GEMM itself
/// asks for no more than this.
///
/// A tile row is two vector registers wide and `MR = 6` rows deep on AVX2 and AVX-512: twelve
/// accumulators, with two registers for a row of B and one for a broadcast value of A (15 of
/// AVX2's 16). The baseline tile is half as wide and 4 rows deep, without fused
/// multiply-adds (SSE2 has none).
pub trait Element:
    Copy + Send + Sync + Default + Debug + PartialEq + Add<Output = Self> + Mul<Output = Self> + 'static
{
    /// AVX-512F, with FMA.
    type Avx512: Kernel<Self>;
    /// AVX2 with FMA.
    type Avx2: Kernel<Self>;
    /// The target's baseline: the portable fallback.
    type Baseline: Kernel<Self>;
    fn zero() -> Self;
    fn one() -> Self;
    /// `self * a + b` with one rounding (a fused multiply-add). Compiles to one instruction only
    /// inside code built for a CPU with FMA (in [`crate::multiversion!`] on AVX2 or AVX-512);
    /// elsewhere it is a slow software routine, so plain loops should use `self * a + b`.
    fn mul_add(self, a: Self, b: Self) -> Self;
}

macro_rules! element_impl {
    ($t:ty, $avx512:ty, $avx2:ty, $baseline:ty) => {
        impl Element for $t {
            type Avx512 = $avx512;
            type Avx2 = $avx2;
            type Baseline = $baseline;
            #[inline(always)]
            fn zero() -> Self {
                0.0
            }
            #[inline(always)]
            fn one() -> Self {
                1.0
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
        }
    };
}

element_impl!(
    f32,
    Microkernel<6, 32, 16, true>,
    Microkernel<6, 16, 8, true>,
    Microkernel<4, 8, 4, false>
);
element_impl!(
    f64,
    Microkernel<6, 16, 8, true>,
    Microkernel<6, 8, 4, true>,
    Microkernel<4, 4, 4, false>
);

/// `$f::<T, K>(args..)` with `K` the kernel of `isa` for `T`, compiled for `isa` as
/// [`crate::multiversion!`] compiles its body: the one place where an instruction set picks
/// its kernel. `$f` is generic over `<T: Element, K: Kernel<T>>` and `#[inline(always)]`, so that
/// it is compiled inside the instruction set's function.
macro_rules! with_kernel {
    ($isa:expr, $f:ident::<$t:ty>($($arg:expr),* $(,)?)) => {{
        use $crate::cpu::{self, Isa};
        use $crate::gemm::Element;
        match $isa {
            Isa::Avx512 => cpu::avx512(|| $f::<$t, <$t as Element>::Avx512>($($arg),*)),
            Isa::Avx2 => cpu::avx2(|| $f::<$t, <$t as Element>::Avx2>($($arg),*)),
            Isa::Baseline => $f::<$t, <$t as Element>::Baseline>($($arg),*),
        }
    }};
}
pub(super) use with_kernel;

/// The widest `NR` of `T`'s kernels: packing buffers this wide fit every instruction set.
pub(super) fn widest_nr<T: Element>() -> usize {
    let nrs = [
        <T::Avx512 as Kernel<T>>::NR,
        <T::Avx2 as Kernel<T>>::NR,
        <T::Baseline as Kernel<T>>::NR,
    ];
    nrs.into_iter().max().unwrap_or(1)
}

/// A kernel of `MR x NR` tiles and `1 x L` rows; `FMA` accumulates with fused multiply-adds
/// (for an instruction set that has them).
#[derive(Debug, Clone, Copy)]
pub struct Microkernel<const MR: usize, const NR: usize, const L: usize, const FMA: bool>;

impl<T: Element, const MR: usize, const NR: usize, const L: usize, const FMA: bool> Kernel<T>
    for Microkernel<MR, NR, L, FMA>
{
    const MR: usize = MR;
    const NR: usize = NR;
    const L: usize = L;

    #[inline(always)]
    fn tile(a_panel: &[T], b_panel: &[T], alpha: T, beta: T, mut c: MatMut<T>) {
        debug_assert!(
            a_panel.len() / MR == b_panel.len() / NR && c.rows <= MR && c.cols <= NR,
            "tile: panels of {} and {} values for a {} x {} tile of a {MR} x {NR} kernel",
            a_panel.len(),
            b_panel.len(),
            c.rows,
            c.cols
        );
        // A short last panel of A runs a kernel of fewer rows (the padding rows would be
        // computed and thrown away): 2 or 4 rows, else all MR.
        let rows = c.rows;
        if rows <= 2 && MR > 2 {
            let acc = accumulate::<T, MR, 2, NR, FMA>(a_panel, b_panel);
            store(alpha, &acc, beta, &mut c);
        } else if rows <= 4 && MR > 4 {
            let acc = accumulate::<T, MR, 4, NR, FMA>(a_panel, b_panel);
            store(alpha, &acc, beta, &mut c);
        } else {
            let acc = accumulate::<T, MR, MR, NR, FMA>(a_panel, b_panel);
            store(alpha, &acc, beta, &mut c);
        }
    }

    #[inline(always)]
    fn row(a: &MatRef<T>, i: usize, b: &[T], alpha: T, beta: T, out: &mut [T]) {
        debug_assert!(
            b.len() == a.cols * L && i < a.rows && out.len() <= L,
            "row: {} values of B for k = {}, row {i} of {}, {} outputs of {L}",
            b.len(),
            a.cols,
            a.rows,
            out.len()
        );
        let mut acc = [T::zero(); L];
        for (p, bp) in b.chunks_exact(L).enumerate() {
            let aip = a.at(i, p);
            let bp: &[T; L] = bp.try_into().expect("chunks_exact gives L values");
            for l in 0..L {
                acc[l] = if FMA {
                    aip.mul_add(bp[l], acc[l])
                } else {
                    acc[l] + aip * bp[l]
                };
            }
        }
        // A fixed trip count with a guard (not a loop over `out`), so the compiler can store
        // from the accumulator registers with a lane mask.
        for l in 0..L {
            if l < out.len() {
                out[l] = if beta == T::zero() {
                    alpha * acc[l]
                } else {
                    alpha * acc[l] + beta * out[l]
                };
            }
        }
    }
}

/// `sum_p a[p] (x) b[p]` over a packed `MR`-row panel of A (its first `ROWS <= MR` rows) and
/// `NR`-column panel of B.
#[inline(always)]
fn accumulate<T: Element, const MR: usize, const ROWS: usize, const NR: usize, const FMA: bool>(
    a_panel: &[T],
    b_panel: &[T],
) -> [[T; NR]; ROWS] {
    let mut acc = [[T::zero(); NR]; ROWS];
    for (ap, bp) in a_panel.chunks_exact(MR).zip(b_panel.chunks_exact(NR)) {
        let ap: &[T; ROWS] = ap[..ROWS].try_into().expect("ROWS <= MR values");
        let bp: &[T; NR] = bp.try_into().expect("chunks_exact gives NR values");
        for i in 0..ROWS {
            for j in 0..NR {
                acc[i][j] = if FMA {
                    ap[i].mul_add(bp[j], acc[i][j])
                } else {
                    acc[i][j] + ap[i] * bp[j]
                };
            }
        }
    }
    acc
}

/// Writes the valid corner of a tile: `C <- alpha acc + beta C`.
#[inline(always)]
fn store<T: Element, const ROWS: usize, const NR: usize>(
    alpha: T,
    acc: &[[T; NR]; ROWS],
    beta: T,
    c: &mut MatMut<T>,
) {
    let cols = c.cols;
    for (i, acc_row) in acc.iter().enumerate().take(c.rows) {
        let out = c.row_mut(i, 0, cols);
        if beta == T::zero() {
            for (o, &x) in out.iter_mut().zip(acc_row) {
                *o = alpha * x;
            }
        } else {
            for (o, &x) in out.iter_mut().zip(acc_row) {
                *o = alpha * x + beta * *o;
            }
        }
    }
}
