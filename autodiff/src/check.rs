//! Finite-difference checks of vector-Jacobian products, in `f64`.
//!
//! The check (after JAX's `check_vjp`): draw a random cotangent `u` of the output's shape and
//! a random direction `d_i` for every input. The tape gives `sum_i <vjp_i(u), d_i>`; central
//! differences give `(<u, f(x + h d)> - <u, f(x - h d)>) / 2h`. Both are the directional
//! derivative of `<u, f>`, so they must agree. A random cotangent (never all ones) catches
//! vjps that only work for a uniform upstream gradient.

use crate::tape::{Result, Tape, Var};
use rand::Rng;
use tensor::Tensor;

/// Step of the central differences. Truncation error is `O(h^2)` (about 1e-12 relative for
/// smooth ops at unit scale) and rounding error about `1e-16 / h` (1e-10), far below the 1e-6
/// tolerance the tests use.
pub const STEP: f64 = 1e-6;

/// The analytic and numerical directional derivatives of one check.
#[derive(Debug, Clone, Copy)]
pub struct VjpCheck {
    pub analytic: f64,
    pub numeric: f64,
}

impl VjpCheck {
    /// `|a - n| / max(|a|, |n|, floor)`: relative error, with an absolute floor so that two
    /// values both near zero do not fail on rounding noise.
    pub fn relative_error(&self, floor: f64) -> f64 {
        let scale = self.analytic.abs().max(self.numeric.abs()).max(floor);
        (self.analytic - self.numeric).abs() / scale
    }
}

/// Runs `f` on fresh leaves holding `inputs` (trainable leaves where `trainable[i]`, batched
/// constants otherwise) and returns the output value and, if `cotangent` is given, the vjp of
/// every input.
fn evaluate<F>(
    f: &F,
    inputs: &[Tensor<f64>],
    cotangent: Option<&Tensor<f64>>,
) -> Result<(Tensor<f64>, Vec<Tensor<f64>>)>
where
    F: Fn(&mut Tape<f64>, &[Var]) -> Result<Var>,
{
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.param(t.clone())).collect();
    let out = f(&mut tape, &vars)?;
    let value = tape.value(out).clone();
    let grads = match cotangent {
        None => Vec::new(),
        Some(u) => {
            let uc = tape.constant(u.clone());
            let weighted = tape.try_mul(out, uc)?;
            let scalar = tape.sum_all(weighted);
            tape.grad(scalar, &vars)?
        }
    };
    Ok((value, grads))
}

/// Checks the vjp of `f` at `inputs` along random directions with a random cotangent drawn
/// from `rng` (standard normal).
pub fn check_vjp<F>(f: F, inputs: &[Tensor<f64>], rng: &mut impl Rng) -> Result<VjpCheck>
where
    F: Fn(&mut Tape<f64>, &[Var]) -> Result<Var>,
{
    let (out, _) = evaluate(&f, inputs, None)?;
    let u = Tensor::randn(out.shape(), 1.0, rng);
    let dirs: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|t| Tensor::randn(t.shape(), 1.0, rng))
        .collect();
    let (_, grads) = evaluate(&f, inputs, Some(&u))?;
    let analytic: f64 = grads.iter().zip(&dirs).map(|(g, d)| g.dot(d)).sum();
    let shifted = |sign: f64| -> Result<f64> {
        let moved: Vec<Tensor<f64>> = inputs
            .iter()
            .zip(&dirs)
            .map(|(x, d)| x.zip_map(d, |a, b| a + sign * STEP * b))
            .collect();
        Ok(evaluate(&f, &moved, None)?.0.dot(&u))
    };
    let numeric = (shifted(1.0)? - shifted(-1.0)?) / (2.0 * STEP);
    Ok(VjpCheck { analytic, numeric })
}

/// The full gradient of a scalar function by central differences, one coordinate at a time
/// (for small tensors: costs two evaluations per element).
pub fn numerical_gradient(f: impl Fn(&Tensor<f64>) -> f64, x: &Tensor<f64>) -> Tensor<f64> {
    let mut probe = x.clone();
    Tensor::from_fn(x.shape(), |i| {
        let orig = probe.data()[i];
        probe.data_mut()[i] = orig + STEP;
        let up = f(&probe);
        probe.data_mut()[i] = orig - STEP;
        let down = f(&probe);
        probe.data_mut()[i] = orig;
        (up - down) / (2.0 * STEP)
    })
}
