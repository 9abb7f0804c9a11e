//! Shape ops: reshape and flatten, transposes, row gathers, slices, concatenation. Their vjps
//! move gradients back to where the values came from.

use super::arith::expect;
use crate::tape::{AutodiffError, Grad, Result, Tape, Var};
use std::ops::Range;
use tensor::{Float, Tensor};

impl<T: Float> Tape<T> {
    /// The same elements under another shape.
    ///
    /// The vjp is the reverse reshape. In per-sample mode a factored gradient
    /// ([`Grad::Outer`](crate::Grad)) passes through unformed, read under `x`'s shape.
    pub fn try_reshape(&mut self, x: Var, shape: &[usize]) -> Result<Var> {
        let old = self.shape(x).to_vec();
        let value = self.value(x).clone().try_reshape(shape)?;
        if old.first() != shape.first() {
            self.note_batch_mixing(x, "reshape across the batch axis");
        }
        // The vjp of a reshape is the reverse reshape; the tape applies it to dense and
        // factored gradients alike, so a shared weight reshaped before a batched matmul keeps
        // its per-sample gradient factored.
        Ok(self.push_reshape(value, x))
    }

    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Var {
        expect(self.try_reshape(x, shape))
    }

    /// Every axis after the first merged into one: `[N, ..] -> [N, prod(..)]` (PyTorch's
    /// `nn.Flatten()`; `[N] -> [N, 1]`). A reshape, so its vjp is the reverse reshape.
    pub fn try_flatten(&mut self, x: Var) -> Result<Var> {
        let shape = self.shape(x);
        let Some((&n, rest)) = shape.split_first() else {
            return Err(AutodiffError::Invalid {
                op: "flatten",
                msg: format!("needs a leading (batch) axis, got shape {shape:?}"),
            });
        };
        let width = rest.iter().product();
        self.try_reshape(x, &[n, width])
    }

    pub fn flatten(&mut self, x: Var) -> Var {
        expect(self.try_flatten(x))
    }

    /// Axes reordered: `out.shape[i] = x.shape[axes[i]]`.
    pub fn try_permute(&mut self, x: Var, axes: &[usize]) -> Result<Var> {
        let value = self.value(x).try_permute(axes)?;
        if self.is_batched(x) && axes.first() != Some(&0) {
            self.note_batch_mixing(x, "permute of the batch axis");
        }
        // The vjp of a permutation is the inverse permutation.
        let mut inverse = vec![0; axes.len()];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i;
        }
        Ok(self.push(
            "permute",
            value,
            &[x],
            false,
            Box::new(move |c| vec![Some(c.grad_out.permute(&inverse).into())]),
        ))
    }

    pub fn permute(&mut self, x: Var, axes: &[usize]) -> Var {
        expect(self.try_permute(x, axes))
    }

    /// The last two axes swapped.
    pub fn try_transpose(&mut self, x: Var) -> Result<Var> {
        let nd = self.value(x).ndim();
        if nd < 2 {
            self.value(x).try_transpose()?;
        }
        let mut axes: Vec<usize> = (0..nd).collect();
        axes.swap(nd - 2, nd - 1);
        self.try_permute(x, &axes)
    }

    pub fn transpose(&mut self, x: Var) -> Var {
        expect(self.try_transpose(x))
    }

    /// Rows of `x` along its first axis, in the order of `indices` (repeats allowed).
    pub fn try_gather_rows(&mut self, x: Var, indices: &[usize]) -> Result<Var> {
        let value = self.value(x).try_gather_rows(indices)?;
        self.note_batch_mixing(x, "gather_rows");
        let indices = indices.to_vec();
        // The vjp adds each output row's gradient back into the row it came from.
        Ok(self.push(
            "gather_rows",
            value,
            &[x],
            false,
            Box::new(move |c| {
                let rows = c.inputs[0].shape()[0];
                vec![Some(c.grad_out.scatter_add_rows(&indices, rows).into())]
            }),
        ))
    }

    pub fn gather_rows(&mut self, x: Var, indices: &[usize]) -> Var {
        expect(self.try_gather_rows(x, indices))
    }

    /// The entries of `x` whose index along `axis` is in `range`, the other axes whole
    /// (`[.., n, ..] -> [.., range.len(), ..]`); along the batch axis of a batched value it
    /// picks samples, which mixes them. Cuts a fused projection into its parts (q, k and v of
    /// `[B, T, 3d]`).
    ///
    /// vjp: the gradient placed back at `range`, zeros elsewhere along the axis.
    pub fn try_slice_axis(&mut self, x: Var, axis: usize, range: Range<usize>) -> Result<Var> {
        let value = self.value(x).try_slice_axis(axis, range.clone())?;
        if axis == 0 {
            self.note_batch_mixing(x, "slice_axis along the batch axis");
        }
        Ok(self.push(
            "slice_axis",
            value,
            &[x],
            false,
            Box::new(move |c| {
                let whole = c.inputs[0].shape();
                vec![Some(place_along(c.grad_out, axis, &range, whole).into())]
            }),
        ))
    }

    pub fn slice_axis(&mut self, x: Var, axis: usize, range: Range<usize>) -> Var {
        expect(self.try_slice_axis(x, axis, range))
    }

    /// Values joined along `axis`; all other axes must agree.
    pub fn try_concat(&mut self, xs: &[Var], axis: usize) -> Result<Var> {
        let refs: Vec<&Tensor<T>> = xs.iter().map(|v| self.value(*v)).collect();
        let value = Tensor::try_concat(&refs, axis)?;
        let sizes: Vec<usize> = refs.iter().map(|t| t.shape()[axis]).collect();
        if axis == 0 {
            for v in xs {
                self.note_batch_mixing(*v, "concat along the batch axis");
            }
        }
        // The vjp cuts the output's gradient back into the pieces.
        Ok(self.push(
            "concat",
            value,
            xs,
            false,
            Box::new(move |c| split_along(c.grad_out, axis, &sizes)),
        ))
    }

    pub fn concat(&mut self, xs: &[Var], axis: usize) -> Var {
        expect(self.try_concat(xs, axis))
    }
}

/// Cuts `g` along `axis` into consecutive pieces of the given sizes.
fn split_along<T: Float>(g: &Tensor<T>, axis: usize, sizes: &[usize]) -> Vec<Option<Grad<T>>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&len| {
            let piece = g.slice_axis(axis, start..start + len);
            start += len;
            Some(piece.into())
        })
        .collect()
}

/// `g` placed at `range` along `axis` of a tensor of shape `shape`, zeros elsewhere: the
/// adjoint of slicing.
fn place_along<T: Float>(
    g: &Tensor<T>,
    axis: usize,
    range: &Range<usize>,
    shape: &[usize],
) -> Tensor<T> {
    let zeros = |len: usize| {
        let mut s = shape.to_vec();
        s[axis] = len;
        Tensor::zeros(&s)
    };
    let (before, after) = (zeros(range.start), zeros(shape[axis] - range.end));
    Tensor::concat(&[&before, g, &after], axis)
}
