//! Convolution, composed from unfold and a matmul.
//!
//! # Legend
//!
//! Images `x: [N, C, H, W]`, kernel `w: [out, C, kh, kw]`, bias `[out]`, output
//! `[N, out, OH, OW]`; a window of stride, zero padding and dilation ([`Window2d`]) fits at
//! `L = OH OW` positions; `K = C kh kw` taps per position.
//!
//! # Primitives and composition
//!
//! Two primitives, each the other's adjoint: [`Tape::try_unfold2d`] (im2col,
//! `[N, C, H, W] -> [N, L, K]`, vjp fold) and [`Tape::try_fold2d`] (col2im, vjp unfold).
//! The convolution is composed from them:
//!
//! ```text
//! cols = unfold2d(x)                          [N, L, K]
//! y    = cols @ reshape(w, [out, K])^T + bias [N, L, out]
//! out  = reshape(permute(y, [0, 2, 1]))       [N, out, OH, OW]
//! ```
//!
//! so its vjps are those of the pieces, with `G = dL/dy: [N, L, out]`: `dL/dx = fold(G w)`,
//! `dL/dw = sum_{n, l} G[n, l]^T cols[n, l]` (read as `[out, C, kh, kw]`) and
//! `dL/dbias = sum_{n, l} G[n, l]`.
//!
//! # Per-sample rule
//!
//! Sample `b`'s kernel gradient is a sum of `L` outer products, `G[b]^T cols[b]`: the
//! matmul's rule returns it factored ([`Grad::Outer`](crate::Grad) with `left = G: [B, L, out]`
//! and `right = cols: [B, L, K]`), the reshape of `w` passes it on unformed, and it densifies to
//! `[B, out, C, kh, kw]`. The bias's is dense, `[B, out]` (the add's rule).

use super::arith::expect;
use crate::tape::{AutodiffError, Result, Tape, Var};
use tensor::{Float, Window2d};

/// Stride, zero padding and dilation of a convolution, each `(h, w)`; the kernel size comes
/// from the weight. The default is PyTorch's: stride 1, no padding, no dilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dOptions {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }
}

impl Conv2dOptions {
    /// The window of a `kh x kw` kernel under these options.
    pub fn window(&self, kernel: (usize, usize)) -> Window2d {
        Window2d {
            kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

impl<T: Float> Tape<T> {
    /// Im2col, `[N, C, H, W] -> [N, L, C kh kw]`: row `l` holds the window at position `l`,
    /// its columns in `(c, i, j)` order (see [`tensor::Tensor::try_unfold2d`]).
    ///
    /// vjp: fold, each entry of the gradient added back into the pixel it was read from.
    pub fn try_unfold2d(&mut self, x: Var, window: &Window2d) -> Result<Var> {
        let value = self.value(x).try_unfold2d(window)?;
        let image = image_of(self.shape(x));
        let window = *window;
        Ok(self.push(
            "unfold2d",
            value,
            &[x],
            false,
            Box::new(move |c| vec![Some(c.grad_out.fold2d(&window, image).into())]),
        ))
    }

    pub fn unfold2d(&mut self, x: Var, window: &Window2d) -> Var {
        expect(self.try_unfold2d(x, window))
    }

    /// Col2im, `[N, L, C kh kw] -> [N, C, H, W]` for `image = [C, H, W]`: the adjoint of
    /// unfold, every entry added into the pixel it belongs to, taps in the padding dropped.
    ///
    /// vjp: unfold, each pixel's gradient read by every tap that was added into it.
    pub fn try_fold2d(&mut self, cols: Var, window: &Window2d, image: [usize; 3]) -> Result<Var> {
        let value = self.value(cols).try_fold2d(window, image)?;
        let window = *window;
        Ok(self.push(
            "fold2d",
            value,
            &[cols],
            false,
            Box::new(move |c| vec![Some(c.grad_out.unfold2d(&window).into())]),
        ))
    }

    pub fn fold2d(&mut self, cols: Var, window: &Window2d, image: [usize; 3]) -> Var {
        expect(self.try_fold2d(cols, window, image))
    }

    /// 2-D convolution (PyTorch's `F.conv2d`, cross-correlation, no flip) of `x: [N, C, H, W]`
    /// with `w: [out, C, kh, kw]` and an optional `bias: [out]`, `-> [N, out, OH, OW]`:
    ///
    /// ```text
    /// y[n, o, p, q] = bias[o] + sum_{c, i, j} w[o, c, i, j] x[n, c, p sh + i dh - ph, q sw + j dw - pw]
    /// ```
    ///
    /// with `x` read as 0 in the padding. Composed of unfold, matmul, add, permute and
    /// reshape (see the module docs for the vjps and the per-sample rule).
    pub fn try_conv2d(
        &mut self,
        x: Var,
        w: Var,
        bias: Option<Var>,
        options: Conv2dOptions,
    ) -> Result<Var> {
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let (&[n, c, _, _], &[out, wc, kh, kw]) = (&xs[..], &ws[..]) else {
            return Err(conv_error(format!(
                "expects images [N, C, H, W] and a kernel [out, C, kh, kw], got {xs:?} and \
                 {ws:?}"
            )));
        };
        if c != wc {
            return Err(conv_error(format!(
                "the input {xs:?} has {c} channels, the kernel {ws:?} expects {wc}"
            )));
        }
        if let Some(b) = bias {
            if self.shape(b) != [out] {
                return Err(conv_error(format!(
                    "the bias {:?} does not fit the kernel {ws:?}: expected [{out}]",
                    self.shape(b)
                )));
            }
        }
        let window = options.window((kh, kw));
        let (oh, ow) = window.try_output_size("conv2d", &xs)?;
        let cols = self.try_unfold2d(x, &window)?;
        let w2 = self.try_reshape(w, &[out, c * kh * kw])?;
        let y = self.try_linear(cols, w2, bias)?;
        let y = self.try_permute(y, &[0, 2, 1])?;
        self.try_reshape(y, &[n, out, oh, ow])
    }

    pub fn conv2d(&mut self, x: Var, w: Var, bias: Option<Var>, options: Conv2dOptions) -> Var {
        expect(self.try_conv2d(x, w, bias, options))
    }
}

/// `[C, H, W]` of an image batch `[N, C, H, W]` (the caller has checked the rank).
fn image_of(shape: &[usize]) -> [usize; 3] {
    [shape[1], shape[2], shape[3]]
}

fn conv_error(msg: String) -> AutodiffError {
    AutodiffError::Invalid { op: "conv2d", msg }
}
