//! Pooling over windows of images, composed from unfold and a reduction over each window.
//!
//! Images `x: [N, C, H, W]`; a window of `kh x kw` taps and a stride (PyTorch's pooling layers
//! default the stride to the kernel; here it is always given) fits at `L = OH OW` positions
//! (see [`Window2d`]). Both pools are
//!
//! ```text
//! cols = unfold2d(x)                            [N, L, C kh kw]
//! r    = reduce over the taps of reshape(cols)  [N, L, C]        (from [N, L, C, kh kw])
//! out  = reshape(permute(r, [0, 2, 1]))         [N, C, OH, OW]
//! ```
//!
//! with the reduction `max_axis` for max pooling and `mean_axis` for average pooling, so the
//! only hand-written vjps are unfold's and the reduction's. Neither has a parameter, so
//! neither needs a per-sample rule.

use super::arith::expect;
use crate::tape::{Result, Tape, Var};
use tensor::{Float, Window2d};

impl<T: Float> Tape<T> {
    /// Max pooling of `x: [N, C, H, W]` over `kh x kw` windows moved by `stride`, no padding
    /// and no dilation: `[N, C, OH, OW]`, `OH = (H - kh) / sh + 1` (floor), as PyTorch's
    /// `F.max_pool2d(x, kernel, stride)`.
    ///
    /// vjp: each output's gradient goes to the largest entry of its window; on ties, to the
    /// first in row-major window order (`(i, j)` with the smallest `i kw + j`). A NaN counts
    /// as smaller than every number.
    pub fn try_max_pool2d(
        &mut self,
        x: Var,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Result<Var> {
        let window = Window2d::new(kernel).with_stride(stride);
        self.pool(x, &window, "max_pool2d", |t, v| t.try_max_axis(v, 3))
    }

    pub fn max_pool2d(&mut self, x: Var, kernel: (usize, usize), stride: (usize, usize)) -> Var {
        expect(self.try_max_pool2d(x, kernel, stride))
    }

    /// Average pooling of `x: [N, C, H, W]` over `kh x kw` windows moved by `stride`, with
    /// `padding` zeros on each side that count in the average (PyTorch's default,
    /// `count_include_pad=True`): every output is the window's sum divided by `kh kw`.
    ///
    /// vjp: each output's gradient divided by `kh kw`, added into every tap of its window
    /// (taps in the padding dropped).
    pub fn try_avg_pool2d(
        &mut self,
        x: Var,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Var> {
        let window = Window2d::new(kernel)
            .with_stride(stride)
            .with_padding(padding);
        self.pool(x, &window, "avg_pool2d", |t, v| t.try_mean_axis(v, 3))
    }

    pub fn avg_pool2d(
        &mut self,
        x: Var,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var {
        expect(self.try_avg_pool2d(x, kernel, stride, padding))
    }

    /// Unfold, `reduce` over the taps of each channel's window (axis 3 of `[N, L, C, kh kw]`),
    /// and back to `[N, C, OH, OW]`. Geometry errors name `op`.
    fn pool(
        &mut self,
        x: Var,
        window: &Window2d,
        op: &'static str,
        reduce: impl FnOnce(&mut Self, Var) -> Result<Var>,
    ) -> Result<Var> {
        let (oh, ow) = window.try_output_size(op, self.shape(x))?;
        let (n, c) = (self.shape(x)[0], self.shape(x)[1]);
        let taps = window.kernel.0 * window.kernel.1;
        let cols = self.try_unfold2d(x, window)?;
        let per_channel = self.try_reshape(cols, &[n, oh * ow, c, taps])?;
        let pooled = reduce(self, per_channel)?;
        let channels_first = self.try_permute(pooled, &[0, 2, 1])?;
        self.try_reshape(channels_first, &[n, c, oh, ow])
    }
}
