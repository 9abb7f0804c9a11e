//! Layer normalisation, composed from primitives (no vjp of its own).

use super::arith::expect;
use crate::tape::{AutodiffError, Result, Tape, Var};
use tensor::Float;

impl<T: Float> Tape<T> {
    /// Layer normalisation over the last axis, `d` features (PyTorch's `nn.LayerNorm(d)`):
    ///
    /// ```text
    /// y = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta
    /// ```
    ///
    /// with the mean and the biased variance (divided by `d`) over the last axis, and
    /// `gamma, beta: [d]`. Each row is normalised on its own, so samples do not mix; the
    /// per-sample gradients of `gamma` and `beta` come from the broadcasting ops' rule.
    pub fn try_layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: T) -> Result<Var> {
        let shape = self.shape(x).to_vec();
        let Some(&d) = shape.last() else {
            return Err(norm_error(format!(
                "needs a feature axis, got a scalar (gamma {:?}, beta {:?})",
                self.shape(gamma),
                self.shape(beta)
            )));
        };
        if self.shape(gamma) != [d] || self.shape(beta) != [d] {
            return Err(norm_error(format!(
                "gamma {:?} and beta {:?} must both be [{d}] for an input of shape {shape:?}",
                self.shape(gamma),
                self.shape(beta)
            )));
        }
        // The statistics keep the feature axis with size 1, to broadcast against `x`.
        let last = shape.len() - 1;
        let mut kept = shape.clone();
        kept[last] = 1;
        let mean = self.try_mean_axis(x, last)?;
        let mean = self.try_reshape(mean, &kept)?;
        let centred = self.try_sub(x, mean)?;
        let squares = self.square(centred);
        let var = self.try_mean_axis(squares, last)?;
        let var = self.try_reshape(var, &kept)?;
        let var = self.add_scalar(var, eps);
        let std = self.sqrt(var);
        let normed = self.try_div(centred, std)?;
        let scaled = self.try_mul(normed, gamma)?;
        self.try_add(scaled, beta)
    }

    pub fn layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: T) -> Var {
        expect(self.try_layer_norm(x, gamma, beta, eps))
    }
}

fn norm_error(msg: String) -> AutodiffError {
    AutodiffError::Invalid {
        op: "layer_norm",
        msg,
    }
}
