//! Numerically stable log-softmax (a primitive) and softmax (composed) over the last axis.

use super::arith::expect;
use crate::tape::{Result, Tape, Var};
use tensor::{Float, Tensor};

impl<T: Float> Tape<T> {
    /// `y = x - logsumexp(x)` over the last axis (shifted by the row maximum). On a batched
    /// `[B]` value the last axis is the batch axis, which mixes the samples.
    ///
    /// vjp: `dL/dx = g - softmax(x) * sum_j g_j` per row, with `softmax(x) = e^y`.
    pub fn try_log_softmax(&mut self, x: Var) -> Result<Var> {
        let value = self.value(x).try_log_softmax_last()?;
        if value.ndim() == 1 {
            self.note_batch_mixing(x, "log_softmax over the batch axis");
        }
        Ok(self.push(
            "log_softmax",
            value,
            &[x],
            false,
            Box::new(|c| {
                let n = *c.out.shape().last().expect("log_softmax has a last axis");
                let mut dx = c.grad_out.clone();
                for (row, y) in dx
                    .data_mut()
                    .chunks_exact_mut(n)
                    .zip(c.out.data().chunks_exact(n))
                {
                    let total: T = row.iter().copied().sum();
                    for (d, &yj) in row.iter_mut().zip(y) {
                        *d -= yj.exp() * total;
                    }
                }
                vec![Some(dx.into())]
            }),
        ))
    }

    pub fn log_softmax(&mut self, x: Var) -> Var {
        expect(self.try_log_softmax(x))
    }

    /// `softmax(x) = exp(log_softmax(x))` over the last axis.
    pub fn softmax(&mut self, x: Var) -> Var {
        let y = self.log_softmax(x);
        self.exp(y)
    }
}

/// Softmax of a plain tensor over its last axis (for reference outputs held constant).
pub fn softmax<T: Float>(x: &Tensor<T>) -> Tensor<T> {
    x.softmax_last()
}
