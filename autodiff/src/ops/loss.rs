//! Divergences between a model's output and a reference output that takes no gradient, per
//! sample. Composed from primitives; no hand-written vjps here.

use super::arith::expect;
use crate::tape::{AutodiffError, Result, Tape, Var};
use tensor::Float;

impl<T: Float> Tape<T> {
    fn check_pair(&self, op: &'static str, y: Var, reference: Var) -> Result<()> {
        if self.shape(y) != self.shape(reference) {
            return Err(AutodiffError::Invalid {
                op,
                msg: format!(
                    "output shape {:?} and reference shape {:?} differ",
                    self.shape(y),
                    self.shape(reference)
                ),
            });
        }
        if self.value(y).ndim() == 0 {
            return Err(AutodiffError::Invalid {
                op,
                msg: "needs a batch axis, got a scalar".into(),
            });
        }
        Ok(())
    }

    /// Per-sample mean squared error `mean_j (y_j - r_j)^2` over every axis but the first:
    /// `[B, ..] -> [B]`.
    pub fn try_mse(&mut self, y: Var, reference: Var) -> Result<Var> {
        self.check_pair("mse", y, reference)?;
        let d = self.sub(y, reference);
        let sq = self.square(d);
        let per_row = self.sum_rows(sq);
        let shape = self.shape(y);
        let width: usize = shape[1..].iter().product();
        Ok(self.scale(per_row, T::one() / T::from_usize(width.max(1))))
    }

    pub fn mse(&mut self, y: Var, reference: Var) -> Var {
        expect(self.try_mse(y, reference))
    }

    /// Per-sample `KL(softmax(r) || softmax(z)) = sum_j p_j (ln p_j - log_softmax(z)_j)` over
    /// the last axis, with `z` the logits and `r` the reference logits: `[B, C] -> [B]`.
    pub fn try_kl_div(&mut self, z: Var, reference_logits: Var) -> Result<Var> {
        self.check_pair("kl_div", z, reference_logits)?;
        let log_p = self.try_log_softmax(reference_logits)?;
        let p = self.exp(log_p);
        let log_q = self.try_log_softmax(z)?;
        let diff = self.sub(log_p, log_q);
        let terms = self.mul(p, diff);
        Ok(self.sum_rows(terms))
    }

    pub fn kl_div(&mut self, z: Var, reference_logits: Var) -> Var {
        expect(self.try_kl_div(z, reference_logits))
    }
}
