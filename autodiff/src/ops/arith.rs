//! Elementwise binary ops with NumPy broadcasting, and their scalar and masking forms.
//!
//! Every binary vjp first forms the contribution at the output's full shape, then
//! [`Ctx::reduce_to_input`] sums it over the broadcast axes: to the input's shape, or, for a
//! shared input in per-sample mode, to `[B, ..input shape]`. That is their per-sample rule.

use crate::tape::{AutodiffError, Ctx, Result, Tape, Var};
use tensor::{Float, Tensor};

impl<T: Float> Tape<T> {
    fn binary(
        &mut self,
        op: &'static str,
        a: Var,
        b: Var,
        value: Tensor<T>,
        vjp: impl Fn(&Ctx<T>, usize) -> Tensor<T> + Send + Sync + 'static,
    ) -> Var {
        let rank = value.ndim();
        // The per-sample rule reads the output's first axis as the batch axis; a batched
        // operand of lower rank than the output moves its batch axis elsewhere (and two
        // batched operands of different ranks pair every sample with every other).
        for v in [a, b] {
            if self.is_batched(v) && self.value(v).ndim() < rank {
                self.note_batch_mixing(v, "broadcasting that moves the batch axis");
            }
        }
        let per_sample_rule = [a, b]
            .iter()
            .all(|&v| self.is_batched(v) || !spans_batch_axis(self.shape(v), rank));
        self.push(
            op,
            value,
            &[a, b],
            per_sample_rule,
            Box::new(move |c| {
                (0..2)
                    .map(|i| c.needs(i).then(|| c.reduce_to_input(i, vjp(c, i)).into()))
                    .collect()
            }),
        )
    }

    /// `a + b`, broadcast.
    pub fn try_add(&mut self, a: Var, b: Var) -> Result<Var> {
        let value = self.value(a).try_add(self.value(b))?;
        // d(a + b)/da = d(a + b)/db = 1.
        Ok(self.binary("add", a, b, value, |c, _| broadcast_full(c.grad_out, c.out)))
    }

    /// `a - b`, broadcast.
    pub fn try_sub(&mut self, a: Var, b: Var) -> Result<Var> {
        let value = self.value(a).try_sub(self.value(b))?;
        // d(a - b)/da = 1, d(a - b)/db = -1.
        Ok(self.binary("sub", a, b, value, |c, i| {
            let g = broadcast_full(c.grad_out, c.out);
            if i == 0 {
                g
            } else {
                g.neg()
            }
        }))
    }

    /// `a * b`, broadcast.
    pub fn try_mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let value = self.value(a).try_mul(self.value(b))?;
        // d(a b)/da = b, d(a b)/db = a.
        Ok(self.binary("mul", a, b, value, |c, i| c.grad_out.mul(c.inputs[1 - i])))
    }

    /// `a / b`, broadcast.
    pub fn try_div(&mut self, a: Var, b: Var) -> Result<Var> {
        let value = self.value(a).try_div(self.value(b))?;
        // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b.
        Ok(self.binary("div", a, b, value, |c, i| {
            if i == 0 {
                c.grad_out.div(c.inputs[1])
            } else {
                c.grad_out.mul(c.out).div(c.inputs[1]).neg()
            }
        }))
    }

    pub fn add(&mut self, a: Var, b: Var) -> Var {
        expect(self.try_add(a, b))
    }
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        expect(self.try_sub(a, b))
    }
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        expect(self.try_mul(a, b))
    }
    pub fn div(&mut self, a: Var, b: Var) -> Var {
        expect(self.try_div(a, b))
    }

    /// `x * s` for a constant scalar `s`.
    pub fn scale(&mut self, x: Var, s: T) -> Var {
        let value = self.value(x).mul_scalar(s);
        // d(s x)/dx = s.
        self.push(
            "scale",
            value,
            &[x],
            false,
            Box::new(move |c| vec![Some(c.grad_out.mul_scalar(s).into())]),
        )
    }

    /// `x + s` for a constant scalar `s`.
    pub fn add_scalar(&mut self, x: Var, s: T) -> Var {
        let value = self.value(x).add_scalar(s);
        // d(x + s)/dx = 1.
        self.push(
            "add_scalar",
            value,
            &[x],
            false,
            Box::new(|c| vec![Some(c.grad_out.clone().into())]),
        )
    }

    /// `-x`.
    pub fn neg(&mut self, x: Var) -> Var {
        self.scale(x, -T::one())
    }

    /// `x * mask` for a constant mask of `x`'s shape (no gradient flows into the mask): the
    /// entries where the mask is 0 are cut from the graph.
    pub fn try_mask(&mut self, x: Var, mask: &Tensor<T>) -> Result<Var> {
        if self.shape(x) != mask.shape() {
            return Err(AutodiffError::Invalid {
                op: "mask",
                msg: format!(
                    "the mask's shape {:?} differs from the value's {:?}",
                    mask.shape(),
                    self.shape(x)
                ),
            });
        }
        let value = self.value(x).zip_map(mask, |a, m| a * m);
        let mask = mask.clone();
        // d(x m)/dx = m.
        Ok(self.push(
            "mask",
            value,
            &[x],
            false,
            Box::new(move |c| vec![Some(c.grad_out.mul(&mask).into())]),
        ))
    }

    pub fn mask(&mut self, x: Var, mask: &Tensor<T>) -> Var {
        expect(self.try_mask(x, mask))
    }
}

/// Whether a shared operand of this shape reaches the batch axis of an output of rank `rank`
/// with more than one entry (a shared value holding one entry per sample). Its per-sample
/// gradient would need a second batch axis, which [`Ctx::reduce_to_input`] does not form.
fn spans_batch_axis(shape: &[usize], rank: usize) -> bool {
    rank > 0 && shape.len() == rank && shape[0] != 1
}

/// `grad_out` at the output's full shape (it already is; kept for symmetry with `mul`).
fn broadcast_full<T: Float>(grad_out: &Tensor<T>, out: &Tensor<T>) -> Tensor<T> {
    debug_assert_eq!(grad_out.shape(), out.shape());
    grad_out.clone()
}

/// Unwraps a recording result, panicking with its message (the panicking op forms).
#[inline]
pub(crate) fn expect<V>(r: Result<V>) -> V {
    match r {
        Ok(v) => v,
        Err(e) => fail(e),
    }
}

#[cold]
#[inline(never)]
fn fail(e: crate::tape::AutodiffError) -> ! {
    panic!("{e}")
}
