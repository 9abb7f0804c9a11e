//! How tensor elements are laid out in files: the encodings read, and the types written.

use safetensors::Dtype;
use tensor::Float;

use super::half::{bf16_to_f32, f16_to_f32};

/// A little-endian encoding that the readers convert into `f32` or `f64` tensors: floats,
/// and (in `.npy` inputs) integers such as token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    F16,
    Bf16,
    F32,
    F64,
    I32,
    I64,
}

/// The safetensors dtypes that are read, for error messages.
pub(crate) const SAFETENSORS_DTYPES: &str = "F32, F64, F16, BF16";

impl Encoding {
    /// The encoding of a safetensors dtype, if it is one that is read.
    pub(crate) fn of_dtype(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::F16 => Some(Self::F16),
            Dtype::BF16 => Some(Self::Bf16),
            Dtype::F32 => Some(Self::F32),
            Dtype::F64 => Some(Self::F64),
            _ => None,
        }
    }

    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
        }
    }

    /// The elements encoded in `bytes`, whose length is a multiple of [`Encoding::size`].
    ///
    /// Halves and `f32` widen exactly; `f64` into an `f32` tensor rounds to nearest, and values
    /// beyond the `f32` range become infinite (which the model and input checks then reject).
    /// Integers convert exactly up to `2^24` in magnitude into `f32` (`2^53` into `f64`), which
    /// covers the token ids of any vocabulary a table in memory can hold.
    pub(crate) fn decode<T: Float>(self, bytes: &[u8]) -> Vec<T> {
        let widen = |x: f32| T::from_f64(f64::from(x));
        match self {
            Self::F16 => pairs(bytes).map(|b| widen(f16_to_f32(b))).collect(),
            Self::Bf16 => pairs(bytes).map(|b| widen(bf16_to_f32(b))).collect(),
            Self::F32 => bytes
                .chunks_exact(4)
                .map(|c| widen(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Self::F64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0; 8];
                    b.copy_from_slice(c);
                    T::from_f64(f64::from_le_bytes(b))
                })
                .collect(),
            Self::I32 => bytes
                .chunks_exact(4)
                .map(|c| T::from_f64(f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
                .collect(),
            Self::I64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0; 8];
                    b.copy_from_slice(c);
                    T::from_f64(i64::from_le_bytes(b) as f64)
                })
                .collect(),
        }
    }
}

fn pairs(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
}

/// An element type the writers store as it is: `f32` as `F32` / `'<f4'`, `f64` as `F64` /
/// `'<f8'`.
pub trait StoredFloat: Float {
    const SAFETENSORS_DTYPE: Dtype;
    const NPY_DESCR: &'static str;
    /// Appends the little-endian bytes of `values` to `out`.
    fn extend_le(values: &[Self], out: &mut Vec<u8>);
}

impl StoredFloat for f32 {
    const SAFETENSORS_DTYPE: Dtype = Dtype::F32;
    const NPY_DESCR: &'static str = "<f4";
    fn extend_le(values: &[Self], out: &mut Vec<u8>) {
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
}

impl StoredFloat for f64 {
    const SAFETENSORS_DTYPE: Dtype = Dtype::F64;
    const NPY_DESCR: &'static str = "<f8";
    fn extend_le(values: &[Self], out: &mut Vec<u8>) {
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
}

/// The number of elements of `shape`, or `None` if the product of its non-zero axes does not
/// fit in `usize` (such a shape would overflow stride arithmetic even when an axis is zero).
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .filter(|&&n| n != 0)
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))?;
    Some(shape.iter().product())
}

/// The row-major multi-index of the element at `flat` in a tensor of shape `shape`.
pub(crate) fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (axis, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            index[axis] = flat % n;
            flat /= n;
        }
    }
    index
}

/// The flat position and value of the first NaN or infinite element, if any.
pub(crate) fn first_non_finite<T: Float>(values: &[T]) -> Option<(usize, f64)> {
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| (i, values[i].to_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(0, &[3, 4]), vec![0, 0]);
        assert_eq!(unravel(7, &[3, 4]), vec![1, 3]);
        assert_eq!(unravel(23, &[2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
    }

    #[test]
    fn checked_numel_rejects_overflow_hidden_by_a_zero_axis() {
        assert_eq!(checked_numel(&[3, 4]), Some(12));
        assert_eq!(checked_numel(&[]), Some(1));
        assert_eq!(checked_numel(&[0, 5]), Some(0));
        assert_eq!(checked_numel(&[0, usize::MAX, 2]), None);
        assert_eq!(checked_numel(&[usize::MAX, 2]), None);
    }

    #[test]
    fn decode_reads_little_endian() {
        let bytes = [0x00, 0x3c, 0x00, 0xc0]; // f16 1.0, -2.0
        assert_eq!(Encoding::F16.decode::<f32>(&bytes), vec![1.0, -2.0]);
        let bytes = [0x80, 0x3f, 0x00, 0xc0]; // bf16 1.0, -2.0
        assert_eq!(Encoding::Bf16.decode::<f64>(&bytes), vec![1.0, -2.0]);
        let bytes = 1.5f32.to_le_bytes();
        assert_eq!(Encoding::F32.decode::<f64>(&bytes), vec![1.5]);
        let bytes = (-0.25f64).to_le_bytes();
        assert_eq!(Encoding::F64.decode::<f32>(&bytes), vec![-0.25]);
        let bytes = [7i32.to_le_bytes(), (-3i32).to_le_bytes()].concat();
        assert_eq!(Encoding::I32.decode::<f32>(&bytes), vec![7.0, -3.0]);
        let bytes = (63i64).to_le_bytes();
        assert_eq!(Encoding::I64.decode::<f64>(&bytes), vec![63.0]);
    }
}
