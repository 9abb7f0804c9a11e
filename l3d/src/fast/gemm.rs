//! The fast path's matrix product: `C <- alpha A B + beta C` on strided operands, packed into
//! buffers the caller owns and reuses, so a steady-state step allocates nothing.
//!
//! `matrixmultiply` (the tensor crate's GEMM) allocates its packing buffer on every call, and
//! its per-call overhead dominates the toy models' products (`[32, 2] @ [2, 5]`), so the fast
//! path has this one instead. It is the textbook blocked algorithm:
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
//! The microkernel keeps its `MR x NR` accumulators in an array the compiler maps onto vector
//! registers; it is compiled three times, for AVX-512, for AVX2 with FMA, and for the baseline
//! instruction set, and the widest one the CPU supports is chosen at run time. Every product
//! accumulates over `k` in order from zero, so a result depends on the operands and the
//! instruction set only: never on how the caller splits its work between threads.
//!
//! Tested against a naive triple loop on small integers (exact) for every size 0..=13, every
//! operand layout and every instruction set the CPU has; benchmarked next to `sgemm` in
//! `benches/l3d_step.rs` (`fast_gemm`).

use tensor::Float;

/// Depth of a packed slice of `k`.
const KC: usize = 256;
/// Rows of A packed at once (a multiple of every `MR`).
const MC: usize = 96;
/// Columns of B packed at once (a multiple of every `NR`).
const NC: usize = 512;
/// Products with at most this many multiply-adds skip packing A: the `1 x L` kernel is faster.
const SMALL_MAX: usize = 4096;

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
///
/// Invariant: every element of the `rows x cols` matrix lies inside `data` (checked by
/// [`MatRef::new`]).
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T: Float> MatRef<'a, T> {
    /// A `rows x cols` view with element strides `rs` (between rows) and `cs` (between
    /// columns). Panics if the last element is outside `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * rs + (cols - 1) * cs;
            assert!(
                last < data.len(),
                "MatRef: a {rows} x {cols} matrix with strides ({rs}, {cs}) needs {} elements, \
                 the slice has {}",
                last + 1,
                data.len()
            );
        }
        Self {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// The first `rows * cols` elements of `data` as a row-major `rows x cols` matrix.
    pub fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.rs + j * self.cs]
    }
}

/// A writable matrix whose rows are contiguous: element `(i, j)` is `data[i * rs + j]`.
///
/// Invariant: `cols <= rs` (or one row) and every element lies inside `data`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    rs: usize,
}

impl<'a, T: Float> MatMut<'a, T> {
    /// A `rows x cols` view with row stride `rs`. Panics if it does not fit in `data`.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, rs: usize) -> Self {
        assert!(
            rows <= 1 || cols <= rs,
            "MatMut: {cols} columns overlap a row stride of {rs}"
        );
        if rows > 0 && cols > 0 {
            let need = (rows - 1) * rs + cols;
            assert!(
                need <= data.len(),
                "MatMut: a {rows} x {cols} matrix with row stride {rs} needs {need} elements, \
                 the slice has {}",
                data.len()
            );
        }
        Self {
            data,
            rows,
            cols,
            rs,
        }
    }

    /// The first `rows * cols` elements of `data` as a row-major `rows x cols` matrix.
    pub fn rows(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }

    fn row_mut(&mut self, i: usize, j0: usize, len: usize) -> &mut [T] {
        let start = i * self.rs + j0;
        &mut self.data[start..start + len]
    }
}

/// Packing buffers, grown on first use and reused: keep one per task that multiplies.
#[derive(Debug, Clone, Default)]
pub struct GemmScratch<T> {
    a: Vec<T>,
    b: Vec<T>,
}

impl<T: Float> GemmScratch<T> {
    /// Buffers large enough for the blocked product of any `m x k` by `k x n` with `n <= cols`,
    /// so that such products never grow them: for scratch shared by tasks that threads take
    /// in no fixed order.
    pub fn for_columns(cols: usize) -> Self {
        let panels = cols.min(NC).div_ceil(32) * 32;
        Self {
            a: vec![T::zero(); MC * KC],
            b: vec![T::zero(); KC * panels],
        }
    }
}

/// The instruction sets the microkernel is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

impl Isa {
    /// The widest instruction set this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// Every instruction set this CPU supports, widest first (for tests and benches).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Baseline]
            .into_iter()
            .filter(|isa| isa.supported())
            .collect()
    }

    /// Whether this CPU can run `self`'s microkernel.
    pub fn supported(self) -> bool {
        matches!(
            (self, Isa::detect()),
            (Isa::Baseline, _) | (_, Isa::Avx512) | (Isa::Avx2, Isa::Avx2)
        )
    }
}

/// `C <- alpha A B + beta C` for `A: m x k`, `B: k x n`, `C: m x n`, with the widest
/// instruction set of this CPU. With `beta = 0`, `C` is not read (NaN in it is overwritten).
pub fn gemm<T: Float>(
    alpha: T,
    a: MatRef<T>,
    b: MatRef<T>,
    beta: T,
    c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    gemm_with(Isa::detect(), alpha, a, b, beta, c, scratch);
}

/// [`gemm`] with a chosen instruction set. Panics if the CPU lacks it or the shapes disagree.
pub fn gemm_with<T: Float>(
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
pub fn gemm_sum<T: Float>(
    alpha: T,
    parts_a: &[MatRef<T>],
    parts_b: &[MatRef<T>],
    beta: T,
    c: MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    gemm_sum_with(Isa::detect(), alpha, parts_a, parts_b, beta, c, scratch);
}

/// [`gemm_sum`] with a chosen instruction set.
pub fn gemm_sum_with<T: Float>(
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

/// `K <- F^T F` for `F: d x C`, computing only the tiles on or above the diagonal and copying
/// the rest from them (`K[i, j]` and `K[j, i]` are the same sum of the same products, in the
/// same order, so the copy changes no bit). `k` must hold `C x C` values.
pub fn gram<T: Float>(f: MatRef<T>, k: &mut [T], scratch: &mut GemmScratch<T>) {
    gram_with(Isa::detect(), f, k, scratch);
}

/// [`gram`] with a chosen instruction set.
pub fn gram_with<T: Float>(isa: Isa, f: MatRef<T>, k: &mut [T], scratch: &mut GemmScratch<T>) {
    gram_rows_with(isa, f, 0, k, scratch);
    mirror_upper(k, f.cols);
}

/// Rows `r0..r0 + n` of `K = F^T F` (`F: d x C`), on and above the diagonal: `rows` holds
/// those `n` rows, `C` values each, and only entries `(i, j)` with `j >= i` are written (with
/// others of the diagonal's tiles). Blocks of rows are independent tasks; [`mirror_upper`]
/// completes `K` once every block is done.
pub fn gram_rows<T: Float>(f: MatRef<T>, r0: usize, rows: &mut [T], scratch: &mut GemmScratch<T>) {
    gram_rows_with(Isa::detect(), f, r0, rows, scratch);
}

/// [`gram_rows`] with a chosen instruction set.
pub fn gram_rows_with<T: Float>(
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
pub fn mirror_upper<T: Float>(k: &mut [T], cols: usize) {
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

/// B as the blocked algorithm reads it: strided (packed on every call, from one or more
/// slices of `k`), or packed beforehand.
#[derive(Debug, Clone, Copy)]
enum BSource<'a, T> {
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
struct Operands<'a, T> {
    a: &'a [MatRef<'a, T>],
    b: BSource<'a, T>,
    upper: bool,
}

/// A right operand B packed once for many products `A B` (the panels the blocked algorithm
/// would otherwise pack on every call): model weights for every step, a factor for every
/// chunk of a step.
///
/// Invariant: `data` holds the `NR`-wide panels of `isa`'s kernel for each `NC x KC` block of
/// the `k x n` matrix, blocks in the order the blocked algorithm visits them.
#[derive(Debug, Clone, Default)]
pub struct PackedB<T> {
    isa: Option<Isa>,
    k: usize,
    n: usize,
    data: Vec<T>,
}

impl<T: Float> PackedB<T> {
    /// Packs `b` for this CPU's kernel, reusing the allocation.
    pub fn pack(&mut self, b: MatRef<T>) {
        let isa = Isa::detect();
        let wide = std::mem::size_of::<T>() == 4;
        // The NR of `packed`'s kernel for this instruction set and element size.
        let nr = match (isa, wide) {
            (Isa::Avx512, true) => 32,
            (Isa::Avx512, false) | (Isa::Avx2, true) => 16,
            (Isa::Avx2, false) | (Isa::Baseline, true) => 8,
            (Isa::Baseline, false) => 4,
        };
        self.isa = Some(isa);
        (self.k, self.n) = (b.rows, b.cols);
        match nr {
            32 => self.pack_blocks::<32>(&b),
            16 => self.pack_blocks::<16>(&b),
            8 => self.pack_blocks::<8>(&b),
            _ => self.pack_blocks::<4>(&b),
        }
    }

    fn pack_blocks<const NR: usize>(&mut self, b: &MatRef<T>) {
        let (k, n) = (self.k, self.n);
        let len = n.div_ceil(NR) * NR * k;
        self.data.resize(len, T::zero());
        let mut offset = 0;
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let len = nc.div_ceil(NR) * NR * kc;
                let out = &mut self.data[offset..offset + len];
                pack_b::<T, NR>(b, pc, kc, jc, nc, out, kc * NR, 0);
                offset += len;
            }
        }
    }
}

/// Whether an `m x k` by `k x n` product takes the packed kernel (and so gains from a
/// [`PackedB`] when B is reused).
pub fn takes_packing(m: usize, k: usize, n: usize) -> bool {
    m * k * n > SMALL_MAX
}

/// [`gemm`], or [`gemm_prepacked`] when `packed` holds `b` packed.
pub fn gemm_maybe_packed<T: Float>(
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

/// `C <- alpha A B + beta C` with B packed beforehand ([`PackedB`]).
pub fn gemm_prepacked<T: Float>(
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

/// The small-product kernel of `isa`.
fn small_path<T: Float>(
    isa: Isa,
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let wide = std::mem::size_of::<T>() == 4;
    match isa {
        // SAFETY: every caller has checked with `Isa::supported` that the CPU has the features
        // these functions are compiled for; their bodies are safe code.
        Isa::Avx512 if wide => unsafe { small_avx512::<T, 16>(alpha, a, b, beta, c, scratch) },
        Isa::Avx512 => unsafe { small_avx512::<T, 8>(alpha, a, b, beta, c, scratch) },
        // SAFETY: as above.
        Isa::Avx2 if wide => unsafe { small_avx2::<T, 8>(alpha, a, b, beta, c, scratch) },
        Isa::Avx2 => unsafe { small_avx2::<T, 4>(alpha, a, b, beta, c, scratch) },
        Isa::Baseline => small::<T, 4, false>(alpha, a, b, beta, c, scratch),
    }
}

/// The blocked algorithm with the microkernel of `isa`. Needs `k > 0`.
fn packed<T: Float>(
    isa: Isa,
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let wide = std::mem::size_of::<T>() == 4;
    match isa {
        // SAFETY: every caller has checked with `Isa::supported` that the CPU has AVX-512F and
        // FMA, the features these functions are compiled for; their bodies are safe code.
        Isa::Avx512 if wide => unsafe { blocked_avx512::<T, 32>(alpha, ops, beta, c, scratch) },
        Isa::Avx512 => unsafe { blocked_avx512::<T, 16>(alpha, ops, beta, c, scratch) },
        // SAFETY: as above, for AVX2 and FMA.
        Isa::Avx2 if wide => unsafe { blocked_avx2::<T, 16>(alpha, ops, beta, c, scratch) },
        Isa::Avx2 => unsafe { blocked_avx2::<T, 8>(alpha, ops, beta, c, scratch) },
        Isa::Baseline if wide => blocked::<T, 4, 8, false>(alpha, ops, beta, c, scratch),
        Isa::Baseline => blocked::<T, 4, 4, false>(alpha, ops, beta, c, scratch),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn blocked_avx512<T: Float, const NR: usize>(
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    blocked::<T, 6, NR, true>(alpha, ops, beta, c, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked_avx2<T: Float, const NR: usize>(
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    blocked::<T, 6, NR, true>(alpha, ops, beta, c, scratch);
}

/// Off x86-64 only the baseline exists; these are never called there.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn blocked_avx512<T: Float, const NR: usize>(
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    blocked::<T, 4, NR, false>(alpha, ops, beta, c, scratch);
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn blocked_avx2<T: Float, const NR: usize>(
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    blocked::<T, 4, NR, false>(alpha, ops, beta, c, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn small_avx512<T: Float, const L: usize>(
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    small::<T, L, true>(alpha, a, b, beta, c, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn small_avx2<T: Float, const L: usize>(
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    small::<T, L, true>(alpha, a, b, beta, c, scratch);
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn small_avx512<T: Float, const L: usize>(
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    small::<T, L, false>(alpha, a, b, beta, c, scratch);
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn small_avx2<T: Float, const L: usize>(
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    small::<T, L, false>(alpha, a, b, beta, c, scratch);
}

/// `C <- alpha A B + beta C` for products too small to repay packing A: B is copied into rows
/// of `L`-wide blocks padded with zeros, and each row of C accumulates `a_ip B[p, block]` in
/// `L` registers (a `1 x L` microkernel).
#[inline(always)]
fn small<T: Float, const L: usize, const FMA: bool>(
    alpha: T,
    a: &MatRef<T>,
    b: &MatRef<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let (k, n) = (a.cols, b.cols);
    if n == 0 || a.rows == 0 {
        return;
    }
    let blocks = n.div_ceil(L);
    let width = blocks * L;
    let packed = prefix(&mut scratch.b, k * width);
    for (p, row) in packed.chunks_exact_mut(width).enumerate() {
        for (block, dst) in row.chunks_exact_mut(L).enumerate() {
            let dst: &mut [T; L] = dst.try_into().expect("a block holds L values");
            let j0 = block * L;
            // Fixed trip counts with a guard (no call to memcpy or memset for a few values).
            if b.cs == 1 {
                let start = p * b.rs + j0;
                let src = &b.data[start..start + (n - j0).min(L)];
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
    for i in 0..a.rows {
        for block in 0..blocks {
            let mut acc = [T::zero(); L];
            for (p, row) in packed.chunks_exact(width).enumerate() {
                let aip = a.at(i, p);
                let bp: &[T; L] = row[block * L..(block + 1) * L]
                    .try_into()
                    .expect("a block holds L values");
                for l in 0..L {
                    acc[l] = if FMA {
                        aip.mul_add(bp[l], acc[l])
                    } else {
                        acc[l] + aip * bp[l]
                    };
                }
            }
            let cols = L.min(n - block * L);
            let out = c.row_mut(i, block * L, cols);
            // A fixed trip count with a guard (not a loop over `cols`), so the compiler can
            // store from the accumulator registers with a lane mask.
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
}

/// The blocked algorithm of the module docs with an `MR x NR` microkernel; `FMA` selects fused
/// multiply-adds (only inside a function compiled with the `fma` feature).
#[inline(always)]
fn blocked<T: Float, const MR: usize, const NR: usize, const FMA: bool>(
    alpha: T,
    ops: Operands<T>,
    beta: T,
    c: &mut MatMut<T>,
    scratch: &mut GemmScratch<T>,
) {
    let Operands { a, b, upper } = ops;
    let (m, (k, n)) = (a[0].rows, b.dims());
    debug_assert!(k > 0, "the small kernel serves k = 0");
    let mut offset = 0;
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let b_block: &[T] = match b {
                BSource::Strided(parts) => {
                    let out = prefix(&mut scratch.b, nc.div_ceil(NR) * NR * kc);
                    for (part, local, at, len) in slices(parts.iter().map(|b| b.rows), pc, kc) {
                        let (at, panel) = (at * NR, kc * NR);
                        pack_b::<T, NR>(&parts[part], local, len, jc, nc, out, panel, at);
                    }
                    out
                }
                BSource::Packed(packed) => {
                    // Blocks were packed in this loop's order (`PackedB::pack`).
                    let len = nc.div_ceil(NR) * NR * kc;
                    offset += len;
                    &packed.data[offset - len..offset]
                }
            };
            // The first slice of k applies the caller's beta; later ones accumulate.
            let beta_now = if pc == 0 { beta } else { T::one() };
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                if upper && ic >= jc + nc {
                    break;
                }
                let a_block = prefix(&mut scratch.a, mc.div_ceil(MR) * kc * MR);
                for (part, local, at, len) in slices(a.iter().map(|a| a.cols), pc, kc) {
                    let (at, panel) = (at * MR, kc * MR);
                    pack_a::<T, MR>(&a[part], ic, mc, local, len, a_block, panel, at);
                }
                let a_block = &*a_block;
                for (jp, b_panel) in b_block.chunks_exact(kc * NR).enumerate() {
                    for (ip, a_panel) in a_block.chunks_exact(kc * MR).enumerate() {
                        let (i0, j0) = (ic + ip * MR, jc + jp * NR);
                        let rows = MR.min(m - i0);
                        let cols = NR.min(n - j0);
                        if upper && i0 >= j0 + cols {
                            // Strictly below the diagonal: the caller mirrors it.
                            break;
                        }
                        // A short last panel of A runs a kernel of fewer rows (the padding rows
                        // would be computed and thrown away): 2 or 4 rows, else all MR.
                        if rows <= 2 && MR > 2 {
                            let acc = microkernel::<T, MR, 2, NR, FMA>(a_panel, b_panel);
                            store_tile(alpha, &acc, beta_now, c, i0, j0, rows, cols);
                        } else if rows <= 4 && MR > 4 {
                            let acc = microkernel::<T, MR, 4, NR, FMA>(a_panel, b_panel);
                            store_tile(alpha, &acc, beta_now, c, i0, j0, rows, cols);
                        } else {
                            let acc = microkernel::<T, MR, MR, NR, FMA>(a_panel, b_panel);
                            store_tile(alpha, &acc, beta_now, c, i0, j0, rows, cols);
                        }
                    }
                }
            }
        }
    }
}

/// The parts of the slice `[pc, pc + kc)` of a `k` split into parts of lengths `lens`:
/// `(part, start within the part, start within the slice, len)`.
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

/// `sum_p a[p] (x) b[p]` over a packed `MR`-row panel of A (its first `ROWS <= MR` rows) and
/// `NR`-column panel of B.
#[inline(always)]
fn microkernel<T: Float, const MR: usize, const ROWS: usize, const NR: usize, const FMA: bool>(
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

/// Writes the valid `rows x cols` corner of a tile: `C <- alpha acc + beta C`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn store_tile<T: Float, const ROWS: usize, const NR: usize>(
    alpha: T,
    acc: &[[T; NR]; ROWS],
    beta: T,
    c: &mut MatMut<T>,
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
) {
    for (i, acc_row) in acc.iter().enumerate().take(rows) {
        let out = c.row_mut(i0 + i, j0, cols);
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

/// Packs `B[k0..k0+kc, j0..j0+nc]` into `ceil(nc / NR)` panels of `out`, each `panel` values
/// long: rows `kc` of `NR` values (columns past `nc` are zero) from value `at` of each panel.
/// (`panel > kc NR` when several parts of `k` share a packed block.)
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack_b<T: Float, const NR: usize>(
    b: &MatRef<T>,
    k0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    out: &mut [T],
    panel: usize,
    at: usize,
) {
    let panels = out.chunks_exact_mut(panel).take(nc.div_ceil(NR));
    for (panel, whole) in panels.enumerate() {
        let dst = &mut whole[at..at + kc * NR];
        let j = j0 + panel * NR;
        let width = NR.min(j0 + nc - j);
        if b.rs == 1 && b.cs != 1 {
            // Columns of B are contiguous: read each once, in order.
            for l in 0..width {
                let start = (j + l) * b.cs + k0;
                for (row, &x) in dst.chunks_exact_mut(NR).zip(&b.data[start..start + kc]) {
                    row[l] = x;
                }
            }
            for row in dst.chunks_exact_mut(NR) {
                row[width..].fill(T::zero());
            }
            continue;
        }
        for (p, row) in dst.chunks_exact_mut(NR).enumerate() {
            if b.cs == 1 && width == NR {
                // A whole panel row: a fixed-size copy, which compiles to vector moves.
                let start = (k0 + p) * b.rs + j;
                let src: &[T; NR] = b.data[start..start + NR].try_into().expect("NR values");
                let out: &mut [T; NR] = row.try_into().expect("NR values");
                *out = *src;
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
fn pack_a<T: Float, const MR: usize>(
    a: &MatRef<T>,
    i0: usize,
    mc: usize,
    k0: usize,
    kc: usize,
    out: &mut [T],
    panel: usize,
    at: usize,
) {
    let panels = out.chunks_exact_mut(panel).take(mc.div_ceil(MR));
    for (panel, whole) in panels.enumerate() {
        let dst = &mut whole[at..at + kc * MR];
        let i = i0 + panel * MR;
        let height = MR.min(i0 + mc - i);
        if a.cs == 1 && a.rs != 1 {
            // Rows of A are contiguous: read each once, in order.
            for l in 0..height {
                let start = (i + l) * a.rs + k0;
                for (col, &x) in dst.chunks_exact_mut(MR).zip(&a.data[start..start + kc]) {
                    col[l] = x;
                }
            }
            for col in dst.chunks_exact_mut(MR) {
                col[height..].fill(T::zero());
            }
            continue;
        }
        for (p, col) in dst.chunks_exact_mut(MR).enumerate() {
            if a.rs == 1 && height == MR {
                // A whole panel column: a fixed-size copy, which compiles to vector moves.
                let start = i + (k0 + p) * a.cs;
                let src: &[T; MR] = a.data[start..start + MR].try_into().expect("MR values");
                let out: &mut [T; MR] = col.try_into().expect("MR values");
                *out = *src;
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
fn prefix<T: Float>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::zero());
    }
    &mut buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small integers: every product and partial sum is exact, so any order gives the same bits.
    fn ints(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 7 + seed) % 9) as f64 - 4.0)
            .collect()
    }

    fn naive(a: &MatRef<f64>, b: &MatRef<f64>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols).map(|p| a.at(i, p) * b.at(p, j)).sum();
            }
        }
        c
    }

    /// The two kernels: packed, and small.
    #[derive(Debug, Clone, Copy)]
    enum Path {
        Packed(Isa),
        Small(Isa),
    }

    /// Runs one kernel whatever the size (the packed one needs `k > 0`).
    fn product(
        path: Path,
        alpha: f64,
        a: MatRef<f64>,
        b: MatRef<f64>,
        beta: f64,
        mut c: MatMut<f64>,
        s: &mut GemmScratch<f64>,
    ) {
        match path {
            Path::Packed(isa) if a.cols > 0 => {
                let ops = Operands {
                    a: std::slice::from_ref(&a),
                    b: BSource::Strided(std::slice::from_ref(&b)),
                    upper: false,
                };
                packed(isa, alpha, ops, beta, &mut c, s)
            }
            Path::Packed(isa) | Path::Small(isa) => small_path(isa, alpha, &a, &b, beta, &mut c, s),
        }
    }

    fn paths() -> Vec<Path> {
        let isas = Isa::available();
        isas.iter()
            .map(|&i| Path::Packed(i))
            .chain(isas.iter().map(|&i| Path::Small(i)))
            .collect()
    }

    #[test]
    fn matches_naive_for_every_small_size_layout_and_path() {
        let mut scratch = GemmScratch::default();
        for isa in paths() {
            for m in 0..=13 {
                for k in 0..=13 {
                    for n in [0, 1, 2, 5, 8, 13, 17, 33] {
                        let (ad, bd) = (ints(m * k, 1), ints(k * n, 2));
                        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)]
                        {
                            let a = if ta {
                                MatRef::rows(&ad, k, m).t()
                            } else {
                                MatRef::rows(&ad, m, k)
                            };
                            let b = if tb {
                                MatRef::rows(&bd, n, k).t()
                            } else {
                                MatRef::rows(&bd, k, n)
                            };
                            let mut c = vec![f64::NAN; m * n];
                            product(
                                isa,
                                1.0,
                                a,
                                b,
                                0.0,
                                MatMut::rows(&mut c, m, n),
                                &mut scratch,
                            );
                            assert_eq!(c, naive(&a, &b), "{isa:?} {m}x{k}x{n} {ta} {tb}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn large_odd_sizes_blocks_alpha_beta_and_row_strides() {
        // Past every block size (MC = 96, KC = 256, NC = 512), into a wider output.
        let (m, k, n, stride) = (101, 300, 530, 533);
        let (ad, bd) = (ints(m * k, 3), ints(k * n, 4));
        let (a, b) = (MatRef::rows(&ad, m, k), MatRef::rows(&bd, k, n));
        let expect = naive(&a, &b);
        for isa in paths() {
            let mut scratch = GemmScratch::default();
            let mut c: Vec<f64> = (0..m * stride).map(|i| (i % 5) as f64).collect();
            let before = c.clone();
            product(
                isa,
                2.0,
                a,
                b,
                -1.0,
                MatMut::new(&mut c, m, n, stride),
                &mut scratch,
            );
            for i in 0..m {
                for j in 0..stride {
                    let at = i * stride + j;
                    let want = if j < n {
                        2.0 * expect[i * n + j] - before[at]
                    } else {
                        before[at]
                    };
                    assert_eq!(c[at], want, "{isa:?} ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn prepacked_b_gives_the_same_bits() {
        let mut pre = PackedB::default();
        for (m, k, n) in [(7, 3, 5), (40, 300, 530), (101, 17, 33), (3, 0, 4)] {
            let (ad, bd) = (ints(m * k, 5), ints(k * n, 6));
            for tb in [false, true] {
                let b = if tb {
                    MatRef::rows(&bd, n, k).t()
                } else {
                    MatRef::rows(&bd, k, n)
                };
                let a = MatRef::rows(&ad, m, k);
                let mut want = vec![1.0; m * n];
                let mut got = vec![1.0; m * n];
                let mut scratch = GemmScratch::default();
                if k > 0 {
                    let ops = Operands {
                        a: std::slice::from_ref(&a),
                        b: BSource::Strided(std::slice::from_ref(&b)),
                        upper: false,
                    };
                    packed(
                        Isa::detect(),
                        1.0,
                        ops,
                        0.5,
                        &mut MatMut::rows(&mut want, m, n),
                        &mut scratch,
                    );
                } else {
                    want.fill(0.5);
                }
                pre.pack(b);
                gemm_prepacked(
                    1.0,
                    a,
                    &pre,
                    0.5,
                    MatMut::rows(&mut got, m, n),
                    &mut scratch,
                );
                assert_eq!(got, want, "{m}x{k}x{n} {tb}");
            }
        }
    }

    #[test]
    fn a_sum_of_parts_equals_the_product_of_the_joined_operands() {
        // Parts of k across a KC = 256 boundary, empty parts, both layouts, beta 0 and not.
        let (m, n) = (45, 37);
        for lens in [
            vec![3, 0, 5],
            vec![32, 32, 128],
            vec![200, 0, 100, 7],
            vec![1],
        ] {
            let k: usize = lens.iter().sum();
            let (ad, bd) = (ints(m * k, 7), ints(k * n, 8));
            let (whole_a, whole_b) = (MatRef::rows(&ad, m, k), MatRef::rows(&bd, k, n));
            let expect = naive(&whole_a, &whole_b);
            // Part j: columns of A (as a column-major copy when j is odd) and rows of B.
            let mut a_store = Vec::new();
            let mut start = 0;
            for (j, &len) in lens.iter().enumerate() {
                let part: Vec<f64> = if j % 2 == 1 {
                    (0..len * m)
                        .map(|x| ad[(x % m) * k + start + x / m])
                        .collect()
                } else {
                    (0..m * len)
                        .map(|x| ad[(x / len.max(1)) * k + start + x % len.max(1)])
                        .collect()
                };
                a_store.push((part, start, len));
                start += len;
            }
            let parts_a: Vec<MatRef<f64>> = a_store
                .iter()
                .enumerate()
                .map(|(j, (data, _, len))| {
                    if j % 2 == 1 {
                        MatRef::rows(data, *len, m).t()
                    } else {
                        MatRef::rows(data, m, *len)
                    }
                })
                .collect();
            let parts_b: Vec<MatRef<f64>> = a_store
                .iter()
                .map(|(_, start, len)| MatRef::rows(&bd[start * n..(start + len) * n], *len, n))
                .collect();
            for isa in Isa::available() {
                for beta in [0.0, 0.5] {
                    let mut c = vec![if beta == 0.0 { f64::NAN } else { 2.0 }; m * n];
                    let mut scratch = GemmScratch::default();
                    let out = MatMut::rows(&mut c, m, n);
                    gemm_sum_with(isa, 2.0, &parts_a, &parts_b, beta, out, &mut scratch);
                    for (x, y) in c.iter().zip(&expect) {
                        let want = 2.0 * y + if beta == 0.0 { 0.0 } else { 1.0 };
                        assert_eq!(*x, want, "{isa:?} parts {lens:?} beta {beta}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_gram_from_blocks_of_rows_is_the_same() {
        // Blocks of 1, 7 and 32 rows of a 70-column Gram (some end mid-tile), then the mirror.
        let (d, cols) = (90, 70);
        let fd: Vec<f32> = (0..d * cols)
            .map(|i| ((i * 29 % 97) as f32).cos())
            .collect();
        let f = MatRef::rows(&fd, d, cols);
        let mut whole = vec![0f32; cols * cols];
        let mut scratch = GemmScratch::default();
        gram(f, &mut whole, &mut scratch);
        for block in [1, 7, 32] {
            let mut k = vec![f32::NAN; cols * cols];
            for (b, rows) in k.chunks_mut(block * cols).enumerate() {
                gram_rows(f, b * block, rows, &mut scratch);
            }
            mirror_upper(&mut k, cols);
            let same = k
                .iter()
                .zip(&whole)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "blocks of {block} rows");
        }
    }

    #[test]
    fn the_gram_from_its_upper_tiles_is_the_whole_product() {
        // Exact on integers for every path, past MC = 96 and NR; the f32 result equals the
        // plain product bit for bit (the same sums), and is symmetric.
        for (d, cols) in [(1, 1), (5, 3), (40, 7), (17, 33), (300, 128), (64, 130)] {
            let fd = ints(d * cols, 9);
            let f = MatRef::rows(&fd, d, cols);
            let expect = naive(&f.t(), &f);
            for isa in Isa::available() {
                let mut k = vec![f64::NAN; cols * cols];
                gram_with(isa, f, &mut k, &mut GemmScratch::default());
                assert_eq!(k, expect, "{isa:?} {d} x {cols}");
            }
            let f32s: Vec<f32> = (0..d * cols)
                .map(|i| ((i * 37 % 101) as f32).sin())
                .collect();
            let f = MatRef::rows(&f32s, d, cols);
            let mut plain = vec![0f32; cols * cols];
            let mut scratch = GemmScratch::default();
            gemm(
                1.0,
                f.t(),
                f,
                0.0,
                MatMut::rows(&mut plain, cols, cols),
                &mut scratch,
            );
            let mut k = vec![f32::NAN; cols * cols];
            gram(f, &mut k, &mut scratch);
            for i in 0..cols {
                for j in 0..cols {
                    assert_eq!(k[i * cols + j].to_bits(), k[j * cols + i].to_bits());
                    assert_eq!(k[i * cols + j].to_bits(), plain[i * cols + j].to_bits());
                }
            }
        }
    }

    #[test]
    fn f32_agrees_with_f64_and_k_zero_scales_c() {
        let (m, k, n) = (37, 70, 45);
        let ad: Vec<f32> = (0..m * k)
            .map(|i| ((i * 13) % 17) as f32 / 17.0 - 0.5)
            .collect();
        let bd: Vec<f32> = (0..k * n)
            .map(|i| ((i * 11) % 19) as f32 / 19.0 - 0.5)
            .collect();
        let a64: Vec<f64> = ad.iter().map(|&x| x as f64).collect();
        let b64: Vec<f64> = bd.iter().map(|&x| x as f64).collect();
        let expect = naive(&MatRef::rows(&a64, m, k), &MatRef::rows(&b64, k, n));
        for isa in Isa::available() {
            let mut c = vec![0f32; m * n];
            let mut scratch = GemmScratch::default();
            gemm_with(
                isa,
                1.0,
                MatRef::rows(&ad, m, k),
                MatRef::rows(&bd, k, n),
                0.0,
                MatMut::rows(&mut c, m, n),
                &mut scratch,
            );
            for (x, y) in c.iter().zip(&expect) {
                // 70 terms of magnitude <= 0.25: rounding error well below 1e-5.
                assert!((*x as f64 - y).abs() < 1e-5, "{isa:?}: {x} vs {y}");
            }
        }
        let mut c = vec![3.0f64; 6];
        let mut scratch = GemmScratch::default();
        gemm(
            1.0,
            MatRef::rows(&[], 2, 0),
            MatRef::rows(&[], 0, 3),
            0.5,
            MatMut::rows(&mut c, 2, 3),
            &mut scratch,
        );
        assert_eq!(c, vec![1.5; 6]);
    }
}
