//! Sums and means: over everything, and over one axis (removed from the shape).

use super::arith::expect;
use crate::tape::{AutodiffError, Result, Tape, Var};
use tensor::{numel, Float, Tensor};

impl<T: Float> Tape<T> {
    /// Sum of every element, a scalar of shape `[]`. Mixes the rows of a batched value.
    pub fn sum_all(&mut self, x: Var) -> Var {
        self.note_batch_mixing(x, "sum_all");
        let value = Tensor::scalar(self.value(x).sum_all());
        // d(sum x)/dx_i = 1: the scalar gradient spread over x's shape.
        self.push(
            "sum_all",
            value,
            &[x],
            false,
            Box::new(|c| {
                let g = c.grad_out.item();
                vec![Some(Tensor::full(c.inputs[0].shape(), g).into())]
            }),
        )
    }

    /// Mean of every element.
    pub fn mean_all(&mut self, x: Var) -> Var {
        let n = T::from_usize(self.value(x).numel());
        let s = self.sum_all(x);
        self.scale(s, T::one() / n)
    }

    /// Sum over `axis`, which is removed. Axis 0 of a batched value mixes its rows.
    pub fn try_sum_axis(&mut self, x: Var, axis: usize) -> Result<Var> {
        let value = self.value(x).try_sum_axis(axis)?;
        if axis == 0 {
            self.note_batch_mixing(x, "sum_axis(0)");
        }
        // d(sum_j x[.., j, ..])/dx = 1: grad_out repeated along the removed axis.
        Ok(self.push(
            "sum_axis",
            value,
            &[x],
            false,
            Box::new(move |c| {
                let mut kept = c.inputs[0].shape().to_vec();
                kept[axis] = 1;
                let g = c.grad_out.clone().reshape(&kept);
                let ones = Tensor::ones(c.inputs[0].shape());
                vec![Some(ones.mul(&g).into())]
            }),
        ))
    }

    pub fn sum_axis(&mut self, x: Var, axis: usize) -> Var {
        expect(self.try_sum_axis(x, axis))
    }

    /// Largest value over `axis`, which is removed. Axis 0 of a batched value mixes its rows.
    ///
    /// vjp: each output's gradient goes to the entry that was taken, the first largest along
    /// the axis (ties to the lowest index; a NaN counts as smaller than every number, as in
    /// [`Tensor::try_max_argmax_axis`]); every other entry gets 0.
    pub fn try_max_axis(&mut self, x: Var, axis: usize) -> Result<Var> {
        let (value, taken) = self.value(x).try_max_argmax_axis(axis)?;
        if axis == 0 {
            self.note_batch_mixing(x, "max_axis(0)");
        }
        Ok(self.push(
            "max_axis",
            value,
            &[x],
            false,
            Box::new(move |c| {
                let shape = c.inputs[0].shape();
                let (len, inner) = (shape[axis], numel(&shape[axis + 1..]));
                let mut dx = Tensor::zeros(shape);
                // Output k = (o, i) with o the outer index and i the inner one.
                for (k, (&j, &g)) in taken.iter().zip(c.grad_out.data()).enumerate() {
                    let (o, i) = (k / inner, k % inner);
                    dx.data_mut()[(o * len + j) * inner + i] = g;
                }
                vec![Some(dx.into())]
            }),
        ))
    }

    pub fn max_axis(&mut self, x: Var, axis: usize) -> Var {
        expect(self.try_max_axis(x, axis))
    }

    /// Mean over `axis`, which is removed.
    pub fn try_mean_axis(&mut self, x: Var, axis: usize) -> Result<Var> {
        let len = *self
            .shape(x)
            .get(axis)
            .ok_or_else(|| AutodiffError::Invalid {
                op: "mean_axis",
                msg: format!("axis {axis} is out of range for shape {:?}", self.shape(x)),
            })?;
        let s = self.try_sum_axis(x, axis)?;
        Ok(self.scale(s, T::one() / T::from_usize(len)))
    }

    pub fn mean_axis(&mut self, x: Var, axis: usize) -> Var {
        expect(self.try_mean_axis(x, axis))
    }

    /// Sum over every axis but the first: `[B, ..] -> [B]` (per-sample sums; rows stay apart).
    pub fn sum_rows(&mut self, x: Var) -> Var {
        let b = self.shape(x).first().copied().unwrap_or(1);
        let flat = self.reshape(x, &[b, self.value(x).numel() / b.max(1)]);
        self.sum_axis(flat, 1)
    }
}
