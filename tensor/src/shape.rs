//! Shape arithmetic: element counts, row-major strides, NumPy broadcasting.

use crate::error::{Result, TensorError};

/// Number of elements of a shape (1 for the empty shape of a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a shape, in elements.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// The shape two shapes broadcast to under NumPy's rules, or a mismatch error naming `op`.
pub fn broadcast_shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let ndim = lhs.len().max(rhs.len());
    let mut out = vec![0; ndim];
    for (i, size) in out.iter_mut().enumerate() {
        let l = dim_from_end(lhs, ndim - 1 - i);
        let r = dim_from_end(rhs, ndim - 1 - i);
        *size = match (l, r) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                return Err(TensorError::ShapeMismatch {
                    op,
                    lhs: lhs.to_vec(),
                    rhs: rhs.to_vec(),
                })
            }
        };
    }
    Ok(out)
}

/// The size of the axis `back` places before the last one, or 1 past the front.
fn dim_from_end(shape: &[usize], back: usize) -> usize {
    if back < shape.len() {
        shape[shape.len() - 1 - back]
    } else {
        1
    }
}

/// Strides that read a tensor of shape `shape` as if it had the broadcast shape `out`:
/// stretched axes (size 1, or missing in front) get stride 0.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let offset = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < offset || shape[i - offset] == 1 {
                0
            } else {
                own[i - offset]
            }
        })
        .collect()
}

/// True when `inner` equals the trailing axes of `outer`, so `inner` repeats over whole
/// contiguous blocks of `outer` (a bias over a batch): the fast broadcasting case.
pub(crate) fn is_trailing(inner: &[usize], outer: &[usize]) -> bool {
    inner.len() <= outer.len() && outer[outer.len() - inner.len()..] == *inner
}

/// Visits every multi-index of `shape` in row-major order, passing the flat offsets that the
/// given stride sets assign to it. Used by the general (strided) paths.
pub(crate) fn for_each_offset<const N: usize>(
    shape: &[usize],
    strides: [&[usize]; N],
    mut visit: impl FnMut([usize; N]),
) {
    let total = numel(shape);
    if total == 0 {
        return;
    }
    let ndim = shape.len();
    let mut index = vec![0usize; ndim];
    let mut offsets = [0usize; N];
    for _ in 0..total {
        visit(offsets);
        // Advance the odometer: bump the last axis, carrying into earlier ones.
        for axis in (0..ndim).rev() {
            index[axis] += 1;
            for (off, s) in offsets.iter_mut().zip(strides.iter()) {
                *off += s[axis];
            }
            if index[axis] < shape[axis] {
                break;
            }
            for (off, s) in offsets.iter_mut().zip(strides.iter()) {
                *off -= s[axis] * shape[axis];
            }
            index[axis] = 0;
        }
    }
}
