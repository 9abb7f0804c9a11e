//! The tensor type: construction, shape manipulation and row access.

use crate::element::Float;
use crate::error::{ok, Result, TensorError};
use crate::shape::{for_each_offset, numel, strides};

/// An n-dimensional, row-major, contiguous tensor. See the crate docs for its invariants.
#[derive(Clone, PartialEq)]
pub struct Tensor<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

impl<T: Float> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "Tensor<{}>{:?} ", T::NAME, self.shape)?;
        let head: Vec<_> = self.data.iter().take(SHOWN).collect();
        if self.data.len() > SHOWN {
            write!(f, "{head:?} ...")
        } else {
            write!(f, "{head:?}")
        }
    }
}

impl<T: Float> Tensor<T> {
    /// A tensor of the given shape from a row-major buffer; the length must match the shape.
    pub fn try_from_vec(shape: &[usize], data: Vec<T>) -> Result<Self> {
        let expected = numel(shape);
        if data.len() != expected {
            return Err(TensorError::ElementCount {
                op: "from_vec",
                shape: shape.to_vec(),
                expected,
                got: data.len(),
            });
        }
        Ok(Self {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Panicking form of [`Tensor::try_from_vec`].
    pub fn from_vec(shape: &[usize], data: Vec<T>) -> Self {
        ok(Self::try_from_vec(shape, data))
    }

    /// A tensor filled with one value.
    pub fn full(shape: &[usize], value: T) -> Self {
        Self {
            shape: shape.to_vec(),
            data: vec![value; numel(shape)],
        }
    }

    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::zero())
    }

    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, T::one())
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Self {
            shape: Vec::new(),
            data: vec![value],
        }
    }

    /// A tensor of the given shape whose element at each multi-index is `f(flat index)`.
    pub fn from_fn(shape: &[usize], f: impl FnMut(usize) -> T) -> Self {
        Self {
            shape: shape.to_vec(),
            data: (0..numel(shape)).map(f).collect(),
        }
    }

    /// Converts every element to another float type (through `f64`).
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|v| U::from_f64(v.to_f64())).collect(),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    pub fn data(&self) -> &[T] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// The single value of a tensor with one element (any shape).
    pub fn try_item(&self) -> Result<T> {
        if self.data.len() != 1 {
            return Err(TensorError::Invalid {
                op: "item",
                msg: format!("needs exactly one element, shape is {:?}", self.shape),
            });
        }
        Ok(self.data[0])
    }

    pub fn item(&self) -> T {
        ok(self.try_item())
    }

    /// True when every element is finite (no NaN, no infinity).
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }

    /// The same elements under another shape with the same element count (no copy).
    pub fn try_reshape(self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.data.len() {
            return Err(TensorError::Invalid {
                op: "reshape",
                msg: format!(
                    "cannot reshape {:?} ({} elements) to {shape:?} ({} elements)",
                    self.shape,
                    self.data.len(),
                    numel(shape)
                ),
            });
        }
        Ok(Self {
            shape: shape.to_vec(),
            data: self.data,
        })
    }

    pub fn reshape(self, shape: &[usize]) -> Self {
        ok(self.try_reshape(shape))
    }

    /// Number of rows along the first axis (the batch axis by convention).
    fn rows_len(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row along the first axis.
    pub fn row_len(&self) -> usize {
        if self.shape.is_empty() {
            1
        } else {
            numel(&self.shape[1..])
        }
    }

    /// Row `i` along the first axis, as a slice (no copy). Panics if `i` is out of range.
    pub fn row(&self, i: usize) -> &[T] {
        let len = self.row_len();
        assert!(i < self.rows_len(), "row {i} of shape {:?}", self.shape);
        &self.data[i * len..(i + 1) * len]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        let len = self.row_len();
        assert!(i < self.rows_len(), "row {i} of shape {:?}", self.shape);
        &mut self.data[i * len..(i + 1) * len]
    }

    /// The rows along the first axis as slices (no copy).
    pub fn rows(&self) -> std::slice::ChunksExact<'_, T> {
        self.data.chunks_exact(self.row_len().max(1))
    }

    /// Row `i` as a tensor of the remaining axes (a copy).
    pub fn try_row_tensor(&self, i: usize) -> Result<Self> {
        if self.shape.is_empty() || i >= self.shape[0] {
            return Err(TensorError::Invalid {
                op: "row_tensor",
                msg: format!("row {i} is out of range for shape {:?}", self.shape),
            });
        }
        Ok(Self {
            shape: self.shape[1..].to_vec(),
            data: self.row(i).to_vec(),
        })
    }

    pub fn row_tensor(&self, i: usize) -> Self {
        ok(self.try_row_tensor(i))
    }

    /// Rows `indices` of the first axis stacked in order: `out[j] = self[indices[j]]`.
    pub fn try_gather_rows(&self, indices: &[usize]) -> Result<Self> {
        let rows = self.rows_len();
        if self.shape.is_empty() {
            return Err(TensorError::Invalid {
                op: "gather_rows",
                msg: "a scalar (shape []) has no rows".into(),
            });
        }
        if let Some(bad) = indices.iter().find(|&&i| i >= rows) {
            return Err(TensorError::Invalid {
                op: "gather_rows",
                msg: format!("row index {bad} is out of range for shape {:?}", self.shape),
            });
        }
        let mut shape = self.shape.clone();
        shape[0] = indices.len();
        let mut data = Vec::with_capacity(numel(&shape));
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Ok(Self { shape, data })
    }

    pub fn gather_rows(&self, indices: &[usize]) -> Self {
        ok(self.try_gather_rows(indices))
    }

    /// The adjoint of [`Tensor::gather_rows`]: a tensor with `rows` rows where row
    /// `indices[j]` accumulates row `j` of `self` (rows gathered twice get both).
    pub fn try_scatter_add_rows(&self, indices: &[usize], rows: usize) -> Result<Self> {
        if self.shape.is_empty() || self.shape[0] != indices.len() {
            return Err(TensorError::Invalid {
                op: "scatter_add_rows",
                msg: format!(
                    "{} indices for a tensor of shape {:?}",
                    indices.len(),
                    self.shape
                ),
            });
        }
        if let Some(bad) = indices.iter().find(|&&i| i >= rows) {
            return Err(TensorError::Invalid {
                op: "scatter_add_rows",
                msg: format!(
                    "row index {bad} is out of range for {rows} rows (gradient shape {:?})",
                    self.shape
                ),
            });
        }
        let mut shape = self.shape.clone();
        shape[0] = rows;
        let mut out = Self::zeros(&shape);
        for (j, &i) in indices.iter().enumerate() {
            for (o, v) in out.row_mut(i).iter_mut().zip(self.row(j)) {
                *o += *v;
            }
        }
        Ok(out)
    }

    pub fn scatter_add_rows(&self, indices: &[usize], rows: usize) -> Self {
        ok(self.try_scatter_add_rows(indices, rows))
    }

    /// The axes reordered: `out.shape[i] = self.shape[axes[i]]` (a copy).
    pub fn try_permute(&self, axes: &[usize]) -> Result<Self> {
        let ndim = self.ndim();
        let mut seen = vec![false; ndim];
        let valid = axes.len() == ndim
            && axes
                .iter()
                .all(|&a| a < ndim && !std::mem::replace(&mut seen[a], true));
        if !valid {
            return Err(TensorError::Invalid {
                op: "permute",
                msg: format!(
                    "{axes:?} is not a permutation of the axes of {:?}",
                    self.shape
                ),
            });
        }
        let own = strides(&self.shape);
        let shape: Vec<usize> = axes.iter().map(|&a| self.shape[a]).collect();
        let read: Vec<usize> = axes.iter().map(|&a| own[a]).collect();
        let mut data = Vec::with_capacity(self.data.len());
        for_each_offset(&shape, [&read], |[o]| data.push(self.data[o]));
        Ok(Self { shape, data })
    }

    pub fn permute(&self, axes: &[usize]) -> Self {
        ok(self.try_permute(axes))
    }

    /// The last two axes swapped (a copy); needs at least two axes.
    pub fn try_transpose(&self) -> Result<Self> {
        let ndim = self.ndim();
        if ndim < 2 {
            return Err(TensorError::Invalid {
                op: "transpose",
                msg: format!("needs at least 2 axes, shape is {:?}", self.shape),
            });
        }
        let mut axes: Vec<usize> = (0..ndim).collect();
        axes.swap(ndim - 2, ndim - 1);
        self.try_permute(&axes)
    }

    pub fn transpose(&self) -> Self {
        ok(self.try_transpose())
    }

    /// Tensors joined along an existing axis; all other axes must agree.
    pub fn try_concat(parts: &[&Self], axis: usize) -> Result<Self> {
        let first = parts.first().ok_or(TensorError::Empty {
            op: "concat",
            what: "the list of tensors".into(),
        })?;
        if axis >= first.ndim() {
            return Err(TensorError::Axis {
                op: "concat",
                axis,
                shape: first.shape.clone(),
            });
        }
        for p in parts {
            let fits = p.ndim() == first.ndim()
                && p.shape
                    .iter()
                    .zip(&first.shape)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !fits {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    lhs: first.shape.clone(),
                    rhs: p.shape.clone(),
                });
            }
        }
        let outer = numel(&first.shape[..axis]);
        let mut shape = first.shape.clone();
        shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
        let mut data = Vec::with_capacity(numel(&shape));
        for o in 0..outer {
            for p in parts {
                let block = numel(&p.shape[axis..]);
                data.extend_from_slice(&p.data[o * block..(o + 1) * block]);
            }
        }
        Ok(Self { shape, data })
    }

    pub fn concat(parts: &[&Self], axis: usize) -> Self {
        ok(Self::try_concat(parts, axis))
    }

    /// The entries whose index along `axis` is in `range`, the other axes whole (a copy):
    /// `[.., n, ..] -> [.., range.len(), ..]`. Needs `range.start <= range.end <= n`.
    pub fn try_slice_axis(&self, axis: usize, range: std::ops::Range<usize>) -> Result<Self> {
        if axis >= self.ndim() {
            return Err(TensorError::Axis {
                op: "slice_axis",
                axis,
                shape: self.shape.clone(),
            });
        }
        let len = self.shape[axis];
        if range.start > range.end || range.end > len {
            return Err(TensorError::Invalid {
                op: "slice_axis",
                msg: format!(
                    "range {range:?} does not fit axis {axis} (size {len}) of shape {:?}",
                    self.shape
                ),
            });
        }
        let inner = numel(&self.shape[axis + 1..]);
        let mut shape = self.shape.clone();
        shape[axis] = range.len();
        let mut data = Vec::with_capacity(numel(&shape));
        // Each block of the outer axes holds `len` slabs of `inner` elements; keep the range.
        if len * inner > 0 {
            for block in self.data.chunks_exact(len * inner) {
                data.extend_from_slice(&block[range.start * inner..range.end * inner]);
            }
        }
        Ok(Self { shape, data })
    }

    pub fn slice_axis(&self, axis: usize, range: std::ops::Range<usize>) -> Self {
        ok(self.try_slice_axis(axis, range))
    }

    /// Tensors of one shape stacked along a new first axis.
    pub fn try_stack(parts: &[&Self]) -> Result<Self> {
        let first = parts.first().ok_or(TensorError::Empty {
            op: "stack",
            what: "the list of tensors".into(),
        })?;
        if let Some(p) = parts.iter().find(|p| p.shape != first.shape) {
            return Err(TensorError::ShapeMismatch {
                op: "stack",
                lhs: first.shape.clone(),
                rhs: p.shape.clone(),
            });
        }
        let mut shape = vec![parts.len()];
        shape.extend_from_slice(&first.shape);
        let mut data = Vec::with_capacity(numel(&shape));
        for p in parts {
            data.extend_from_slice(&p.data);
        }
        Ok(Self { shape, data })
    }

    pub fn stack(parts: &[&Self]) -> Self {
        ok(Self::try_stack(parts))
    }

    /// Largest absolute difference to another tensor of the same shape (for tests and checks).
    pub fn max_abs_diff(&self, other: &Self) -> T {
        assert_eq!(self.shape, other.shape, "max_abs_diff: shapes differ");
        self.data
            .iter()
            .zip(&other.data)
            .fold(T::zero(), |m, (a, b)| m.max((*a - *b).abs()))
    }
}
