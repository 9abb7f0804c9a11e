//! Matrix products on the tape, with the per-sample rule of a shared weight.
//!
//! For `C = op(A) op(B)` (op an optional transpose of the last two axes) and `G = dL/dC`:
//! `dL/d op(A) = G op(B)^T` and `dL/d op(B) = op(A)^T G`, transposed back where the operand
//! was used transposed.
//!
//! Per-sample rule: when a batched `A: [B, .., k]` (rows `M` per sample) multiplies a shared
//! matrix, sample `b`'s gradient of that matrix is `A_b^T G_b` (a sum of `M` outer products),
//! returned in factored form [`Grad::Outer`] and only formed on request.

use super::arith::expect;
use crate::tape::{Grad, Result, Tape, Var};
use tensor::{Float, Tensor, Transpose};

fn flip(t: Transpose) -> Transpose {
    match t {
        Transpose::No => Transpose::Yes,
        Transpose::Yes => Transpose::No,
    }
}

impl<T: Float> Tape<T> {
    /// `op(a) @ op(b)`; shapes as [`Tensor::matmul_t`].
    pub fn try_matmul_t(&mut self, a: Var, ta: Transpose, b: Var, tb: Transpose) -> Result<Var> {
        let value = self.value(a).try_matmul_t(ta, self.value(b), tb)?;
        // A 2-D batched operand whose batch axis is contracted mixes samples.
        let (av, bv) = (self.value(a).ndim(), self.value(b).ndim());
        if (self.is_batched(a) && av == 2 && ta == Transpose::Yes)
            || (self.is_batched(b) && bv == 2)
        {
            self.note_batch_mixing(a, "matmul over the batch axis");
            self.note_batch_mixing(b, "matmul over the batch axis");
        }
        // A shared operand with batch axes of its own, next to a batched one, lines its
        // leading axis up with the samples; its per-sample gradient would need two batch axes,
        // which the rule below does not form.
        let (ab, bb) = (self.is_batched(a), self.is_batched(b));
        let per_sample_rule = !((ab && !bb && bv > 2) || (bb && !ab && av > 2));
        Ok(self.push(
            "matmul",
            value,
            &[a, b],
            per_sample_rule,
            Box::new(move |c| {
                let (a, b, g) = (c.inputs[0], c.inputs[1], c.grad_out);
                vec![
                    c.needs(0)
                        .then(|| grad_lhs(a, ta, b, tb, g, c.per_sample(0)).into()),
                    c.needs(1)
                        .then(|| grad_rhs(a, ta, b, tb, g, c.per_sample(1))),
                ]
            }),
        ))
    }

    /// `a @ b`.
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        expect(self.try_matmul_t(a, Transpose::No, b, Transpose::No))
    }

    /// `x @ w^T`: a linear layer with weight `w: [out, in]` applied to `x: [.., in]`.
    pub fn matmul_nt(&mut self, x: Var, w: Var) -> Var {
        expect(self.try_matmul_t(x, Transpose::No, w, Transpose::Yes))
    }

    /// `x @ w^T + bias`: a linear layer, `x: [.., in]`, `w: [out, in]`, `bias: [out]`.
    pub fn try_linear(&mut self, x: Var, w: Var, bias: Option<Var>) -> Result<Var> {
        let h = self.try_matmul_t(x, Transpose::No, w, Transpose::Yes)?;
        match bias {
            Some(b) => self.try_add(h, b),
            None => Ok(h),
        }
    }

    pub fn linear(&mut self, x: Var, w: Var, bias: Option<Var>) -> Var {
        expect(self.try_linear(x, w, bias))
    }
}

/// Sums a gradient with an extra leading (broadcast batch) axis down to the operand's rank,
/// unless it is wanted per sample.
fn fold_batch<T: Float>(raw: Tensor<T>, ndim: usize, per_sample: bool) -> Tensor<T> {
    if raw.ndim() > ndim && !per_sample {
        raw.sum_axis(0)
    } else {
        raw
    }
}

/// `dL/dA`: `G op(B)^T`, or `op(B) G^T` when `A` was used transposed.
fn grad_lhs<T: Float>(
    a: &Tensor<T>,
    ta: Transpose,
    b: &Tensor<T>,
    tb: Transpose,
    g: &Tensor<T>,
    per_sample: bool,
) -> Tensor<T> {
    let raw = match ta {
        Transpose::No => g.matmul_t(Transpose::No, b, flip(tb)),
        Transpose::Yes => b.matmul_t(tb, g, Transpose::Yes),
    };
    fold_batch(raw, a.ndim(), per_sample)
}

/// `dL/dB`: `op(A)^T G`, or `G^T op(A)` when `B` was used transposed.
fn grad_rhs<T: Float>(
    a: &Tensor<T>,
    ta: Transpose,
    b: &Tensor<T>,
    tb: Transpose,
    g: &Tensor<T>,
    per_sample: bool,
) -> Grad<T> {
    if b.ndim() == 2 && ta == Transpose::No {
        // The rows of every batch entry fold into one product: A as [rows, k], G as [rows, n].
        let (k, n) = (a.shape()[a.ndim() - 1], g.shape()[g.ndim() - 1]);
        if per_sample {
            let samples = a.shape()[0];
            let m = a.numel() / (samples * k).max(1);
            let a3 = a.clone().reshape(&[samples, m, k]);
            let g3 = g.clone().reshape(&[samples, m, n]);
            let shape = b.shape().to_vec();
            return match tb {
                Transpose::No => Grad::Outer {
                    left: a3,
                    right: g3,
                    shape,
                },
                Transpose::Yes => Grad::Outer {
                    left: g3,
                    right: a3,
                    shape,
                },
            };
        }
        let rows = a.numel() / k.max(1);
        let a2 = a.clone().reshape(&[rows, k]);
        let g2 = g.clone().reshape(&[rows, n]);
        return Grad::Dense(match tb {
            Transpose::No => a2.matmul_tn(&g2),
            Transpose::Yes => g2.matmul_tn(&a2),
        });
    }
    let raw = match tb {
        Transpose::No => a.matmul_t(flip(ta), g, Transpose::No),
        Transpose::Yes => g.matmul_t(Transpose::Yes, a, ta),
    };
    Grad::Dense(fold_batch(raw, b.ndim(), per_sample))
}
