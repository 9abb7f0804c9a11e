//! Sliding windows over images: unfold (im2col) and its adjoint, fold (col2im).
//!
//! # Legend
//!
//! - An image batch is `[N, C, H, W]` (PyTorch's layout): `N` images of `C` channels of
//!   `H x W` pixels.
//! - A [`Window2d`] has `kh x kw` taps, stride `(sh, sw)`, zero padding `(ph, pw)` on each side
//!   and dilation `(dh, dw)` (the step between taps).
//! - It fits `OH x OW` times, `L = OH OW` positions in all:
//!   `OH = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1`, and `OW` likewise.
//!
//! Unfold lays the windows out as rows, one per position:
//!
//! ```text
//! cols[n, oh OW + ow, (c kh + i) kw + j] = x[n, c, oh sh + i dh - ph, ow sw + j dw - pw]
//! ```
//!
//! (0 where the tap falls in the padding), `[N, C, H, W] -> [N, L, C kh kw]`. The column order
//! is that of a kernel `[out, C, kh, kw]` flattened to `[out, C kh kw]`, so a convolution is
//! one product `cols @ w^T: [N, L, out]`. PyTorch's `F.unfold` returns the transpose,
//! `[N, C kh kw, L]`; rows per position suit a GEMM whose rows are samples' positions.
//!
//! Fold is the adjoint: every column entry is added into the pixel it was read from (entries
//! of taps in the padding are dropped), so `<unfold(x), c> = <x, fold(c)>`. Overlapping
//! windows add in the order of the rows, then of the columns.
//!
//! Both run in parallel over images for large batches; each image is one task that owns its
//! output, so the result does not depend on the number of threads.

use crate::element::Float;
use crate::error::{ok, Result, TensorError};
use crate::kernels::PARALLEL_MIN;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::fmt;

/// The geometry of a window sliding over `[N, C, H, W]` images; each field is `(h, w)`.
///
/// Invariant, checked by every op that takes one: kernel, stride and dilation are at least 1
/// on both axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window2d {
    /// Taps per window, `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step between consecutive windows.
    pub stride: (usize, usize),
    /// Zeros added on each side of the image.
    pub padding: (usize, usize),
    /// Step between consecutive taps of one window (1: adjacent pixels).
    pub dilation: (usize, usize),
}

impl fmt::Display for Window2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pair = |(h, w): (usize, usize)| format!("{h}x{w}");
        write!(
            f,
            "kernel {}, stride {}, padding {}, dilation {}",
            pair(self.kernel),
            pair(self.stride),
            pair(self.padding),
            pair(self.dilation)
        )
    }
}

impl Window2d {
    /// A `kh x kw` window with stride 1, no padding and no dilation.
    pub fn new(kernel: (usize, usize)) -> Self {
        Self {
            kernel,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }

    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        Self { stride, ..self }
    }

    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        Self { padding, ..self }
    }

    pub fn with_dilation(self, dilation: (usize, usize)) -> Self {
        Self { dilation, ..self }
    }

    /// Pixels spanned by one window, `dh (kh - 1) + 1` by `dw (kw - 1) + 1`.
    fn extent(&self) -> (usize, usize) {
        (
            self.dilation.0 * (self.kernel.0 - 1) + 1,
            self.dilation.1 * (self.kernel.1 - 1) + 1,
        )
    }

    /// The positions `(OH, OW)` of this window over images of shape `[N, C, H, W]`, or an
    /// error naming `op`, the shape and the window: an input that is not 4-D, a kernel,
    /// stride or dilation of 0, or a window wider than the padded image.
    pub fn try_output_size(&self, op: &'static str, images: &[usize]) -> Result<(usize, usize)> {
        let &[_, _, h, w] = images else {
            return Err(TensorError::Invalid {
                op,
                msg: format!("expects images [N, C, H, W], got shape {images:?}"),
            });
        };
        let sizes = [self.kernel, self.stride, self.dilation];
        if sizes.iter().any(|&(a, b)| a == 0 || b == 0) {
            return Err(TensorError::Invalid {
                op,
                msg: format!("{self}: kernel, stride and dilation must be at least 1"),
            });
        }
        let (eh, ew) = self.extent();
        let (ph, pw) = (h + 2 * self.padding.0, w + 2 * self.padding.1);
        if eh > ph || ew > pw {
            return Err(TensorError::Invalid {
                op,
                msg: format!(
                    "the window ({self}) spans {eh}x{ew} pixels, more than the padded input \
                     {ph}x{pw} (input shape {images:?})"
                ),
            });
        }
        Ok(((ph - eh) / self.stride.0 + 1, (pw - ew) / self.stride.1 + 1))
    }

    /// Visits every tap of every position over one `h x w` channel plane, positions in row
    /// order and taps `(i, j)` in row-major order within each: `visit(row, i kw + j, pixel)`
    /// with `pixel` the tap's offset `y w + x` in the plane, or `None` in the padding.
    /// Channels are the caller's: a tap reads the same pixel of every channel.
    fn for_each_tap(
        &self,
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
        mut visit: impl FnMut(usize, usize, Option<usize>),
    ) {
        let (kh, kw) = self.kernel;
        for y in 0..oh {
            for x in 0..ow {
                let row = y * ow + x;
                for i in 0..kh {
                    // The padded coordinate minus the padding; negative means in the padding.
                    let py = (y * self.stride.0 + i * self.dilation.0).checked_sub(self.padding.0);
                    for j in 0..kw {
                        let px =
                            (x * self.stride.1 + j * self.dilation.1).checked_sub(self.padding.1);
                        let pixel = match (py, px) {
                            (Some(py), Some(px)) if py < h && px < w => Some(py * w + px),
                            _ => None,
                        };
                        visit(row, i * kw + j, pixel);
                    }
                }
            }
        }
    }
}

/// Runs `per_image(input image, output image)` over the images of a batch, in parallel when
/// the output is large. Each image is one task that owns its output slice. An image with no
/// input or no output elements is skipped (its output stays as allocated, zeros).
fn each_image<T: Float>(
    input: &[T],
    in_len: usize,
    output: &mut [T],
    out_len: usize,
    per_image: impl Fn(&[T], &mut [T]) + Sync,
) {
    if in_len == 0 || out_len == 0 {
        return;
    }
    if output.len() >= PARALLEL_MIN {
        output
            .par_chunks_mut(out_len)
            .zip(input.par_chunks(in_len))
            .for_each(|(o, x)| per_image(x, o));
    } else {
        for (o, x) in output.chunks_mut(out_len).zip(input.chunks(in_len)) {
            per_image(x, o);
        }
    }
}

impl<T: Float> Tensor<T> {
    /// Im2col: `[N, C, H, W] -> [N, L, C kh kw]`, one row per window position (see the module
    /// docs for the formula and the column order).
    pub fn try_unfold2d(&self, window: &Window2d) -> Result<Self> {
        let (oh, ow) = window.try_output_size("unfold2d", self.shape())?;
        let &[n, c, h, w] = self.shape() else {
            unreachable!("try_output_size checked the rank")
        };
        let taps = window.kernel.0 * window.kernel.1;
        let row = c * taps;
        let mut out = Self::zeros(&[n, oh * ow, row]);
        each_image(
            self.data(),
            c * h * w,
            out.data_mut(),
            oh * ow * row,
            |x, cols| {
                window.for_each_tap((h, w), (oh, ow), |r, tap, pixel| {
                    for ch in 0..c {
                        cols[r * row + ch * taps + tap] = match pixel {
                            Some(p) => x[ch * h * w + p],
                            None => T::zero(),
                        };
                    }
                });
            },
        );
        Ok(out)
    }

    pub fn unfold2d(&self, window: &Window2d) -> Self {
        ok(self.try_unfold2d(window))
    }

    /// Col2im, the adjoint of [`Tensor::try_unfold2d`]: `[N, L, C kh kw] -> [N, C, H, W]` for
    /// `image = [C, H, W]`, each entry added into the pixel it came from (padding dropped).
    pub fn try_fold2d(&self, window: &Window2d, image: [usize; 3]) -> Result<Self> {
        let [c, h, w] = image;
        let n = self.shape().first().copied().unwrap_or(0);
        let (oh, ow) = window.try_output_size("fold2d", &[n, c, h, w])?;
        let taps = window.kernel.0 * window.kernel.1;
        let row = c * taps;
        if self.shape() != [n, oh * ow, row] {
            return Err(TensorError::Invalid {
                op: "fold2d",
                msg: format!(
                    "columns of shape {:?} do not fit images {image:?} under the window \
                     ({window}): expected [N, {}, {row}]",
                    self.shape(),
                    oh * ow
                ),
            });
        }
        let mut out = Self::zeros(&[n, c, h, w]);
        each_image(
            self.data(),
            oh * ow * row,
            out.data_mut(),
            c * h * w,
            |cols, x| {
                window.for_each_tap((h, w), (oh, ow), |r, tap, pixel| {
                    if let Some(p) = pixel {
                        for ch in 0..c {
                            x[ch * h * w + p] += cols[r * row + ch * taps + tap];
                        }
                    }
                });
            },
        );
        Ok(out)
    }

    pub fn fold2d(&self, window: &Window2d, image: [usize; 3]) -> Self {
        ok(self.try_fold2d(window, image))
    }
}

/// The direct convolution of images `x: [N, C, H, W]` with a kernel `w: [out, C, kh, kw]`
/// under `window` (whose `kernel` is taken from `w`), `[N, out, OH, OW]`:
///
/// ```text
/// y[n, o, p, q] = sum_{c, i, j} w[o, c, i, j] x[n, c, p sh + i dh - ph, q sw + j dw - pw]
/// ```
///
/// with `x` read as 0 outside the image. One multiply-add per tap, taps in `(c, i, j)` order;
/// no unfold, no GEMM: the reference the unfold-and-GEMM convolution is tested against. Panics
/// on shapes that do not fit (it is for tests).
pub fn conv2d_naive<T: Float>(x: &Tensor<T>, w: &Tensor<T>, window: &Window2d) -> Tensor<T> {
    let (&[n, c, h, wd], &[out, wc, kh, kw]) = (x.shape(), w.shape()) else {
        panic!("conv2d_naive: shapes {:?} and {:?}", x.shape(), w.shape());
    };
    assert_eq!(
        c,
        wc,
        "conv2d_naive: channels of {:?} and {:?}",
        x.shape(),
        w.shape()
    );
    let window = Window2d {
        kernel: (kh, kw),
        ..*window
    };
    let (oh, ow) = ok(window.try_output_size("conv2d_naive", x.shape()));
    let (sh, sw) = window.stride;
    let (dh, dw) = window.dilation;
    let (ph, pw) = window.padding;
    let pixel =
        |b: usize, ch: usize, y: usize, z: usize| match (y.checked_sub(ph), z.checked_sub(pw)) {
            (Some(y), Some(z)) if y < h && z < wd => x.data()[((b * c + ch) * h + y) * wd + z],
            _ => T::zero(),
        };
    Tensor::from_fn(&[n, out, oh, ow], |flat| {
        let (b, o) = (flat / (out * oh * ow), flat / (oh * ow) % out);
        let (p, q) = (flat / ow % oh, flat % ow);
        let mut sum = T::zero();
        for ch in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    let tap = w.data()[((o * c + ch) * kh + i) * kw + j];
                    sum += tap * pixel(b, ch, p * sh + i * dh, q * sw + j * dw);
                }
            }
        }
        sum
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfold_of_a_counting_image_by_hand() {
        // One 1-channel 3x3 image holding 0..9, a 2x2 window with padding 1 and stride 2:
        // OH = OW = (3 + 2 - 1 - 1) / 2 + 1 = 2. The padded image is
        //   . . . . .
        //   . 0 1 2 .
        //   . 3 4 5 .
        //   . 6 7 8 .
        //   . . . . .
        // and the windows start at padded (0, 0), (0, 2), (2, 0), (2, 2).
        let x = Tensor::<f64>::from_fn(&[1, 1, 3, 3], |i| i as f64);
        let window = Window2d::new((2, 2))
            .with_stride((2, 2))
            .with_padding((1, 1));
        let cols = x.unfold2d(&window);
        assert_eq!(cols.shape(), &[1, 4, 4]);
        #[rustfmt::skip]
        let expect = [
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 2.0,
            0.0, 3.0, 0.0, 6.0,
            4.0, 5.0, 7.0, 8.0,
        ];
        assert_eq!(cols.data(), &expect);
        // Fold of all ones counts how many windows read each pixel: here each pixel once
        // (stride 2 = kernel 2, no overlap).
        let counts = Tensor::<f64>::ones(&[1, 4, 4]).fold2d(&window, [1, 3, 3]);
        assert_eq!(counts.data(), &[1.0; 9]);
    }

    #[test]
    fn fold_adds_overlapping_windows() {
        // 1x4 image, 1x2 window, stride 1: positions read pixels (0,1), (1,2), (2,3).
        let window = Window2d::new((1, 2));
        let counts = Tensor::<f64>::ones(&[1, 3, 2]).fold2d(&window, [1, 1, 4]);
        assert_eq!(counts.data(), &[1.0, 2.0, 2.0, 1.0]);
    }
}
