//! The GEMM's operands: strided read-only views of A and B, and C, a writable view whose rows
//! are contiguous.

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
///
/// Invariant: every element of the `rows x cols` matrix lies inside `data` (checked by
/// [`MatRef::new`]).
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    pub(super) data: &'a [T],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
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
    pub(super) fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.rs + j * self.cs]
    }
}

/// A writable matrix whose rows are contiguous: element `(i, j)` is `data[i * rs + j]`.
///
/// Invariant: `cols <= rs` (or one row) and every element lies inside `data`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    pub(super) rows: usize,
    pub(super) cols: usize,
    rs: usize,
}

impl<'a, T: Copy> MatMut<'a, T> {
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

    /// The `rows x cols` block from `(i0, j0)`, a view of the same elements. Panics unless it
    /// lies inside `self`.
    #[inline(always)]
    pub(super) fn block(
        &mut self,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
    ) -> MatMut<'_, T> {
        assert!(
            i0 + rows <= self.rows && j0 + cols <= self.cols,
            "MatMut: a {rows} x {cols} block at ({i0}, {j0}) of a {} x {} matrix",
            self.rows,
            self.cols
        );
        let start = (i0 * self.rs + j0).min(self.data.len());
        MatMut::new(&mut self.data[start..], rows, cols, self.rs)
    }

    /// Elements `j0..j0 + len` of row `i`.
    #[inline(always)]
    pub(super) fn row_mut(&mut self, i: usize, j0: usize, len: usize) -> &mut [T] {
        let start = i * self.rs + j0;
        &mut self.data[start..start + len]
    }
}
