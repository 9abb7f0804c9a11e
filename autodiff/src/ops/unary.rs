//! Elementwise maps. Each records `f` and its derivative `df(x, y)` (given the input `x` and
//! the output `y = f(x)`); the vjp is `grad_out * df(x, y)`.

use crate::tape::{Tape, Var};
use tensor::elementwise::{elu_grad, gelu_grad, relu_grad};
use tensor::{Float, Tensor};

impl<T: Float> Tape<T> {
    fn unary(
        &mut self,
        op: &'static str,
        x: Var,
        value: Tensor<T>,
        df: impl Fn(T, T) -> T + Send + Sync + Copy + 'static,
    ) -> Var {
        self.push(
            op,
            value,
            &[x],
            false,
            Box::new(move |c| {
                let d = c.inputs[0].zip_map(c.out, df);
                vec![Some(c.grad_out.mul(&d).into())]
            }),
        )
    }

    /// `max(x, 0)`; subgradient 0 at `x = 0`.
    pub fn relu(&mut self, x: Var) -> Var {
        let y = self.value(x).relu();
        self.unary("relu", x, y, |x, _| relu_grad(x))
    }

    /// Exact GELU `x Phi(x)`; derivative `Phi(x) + x phi(x)`.
    pub fn gelu(&mut self, x: Var) -> Var {
        let y = self.value(x).gelu();
        self.unary("gelu", x, y, |x, _| gelu_grad(x))
    }

    /// ELU with scale `alpha`; derivative 1 for `x > 0`, `alpha e^x` otherwise.
    pub fn elu(&mut self, x: Var, alpha: T) -> Var {
        let y = self.value(x).elu(alpha);
        self.unary("elu", x, y, move |x, _| elu_grad(x, alpha))
    }

    /// `tanh x`; derivative `1 - y^2`.
    pub fn tanh(&mut self, x: Var) -> Var {
        let y = self.value(x).tanh();
        self.unary("tanh", x, y, |_, y| T::one() - y * y)
    }

    /// `1 / (1 + e^-x)`; derivative `y (1 - y)`.
    pub fn sigmoid(&mut self, x: Var) -> Var {
        let y = self.value(x).sigmoid();
        self.unary("sigmoid", x, y, |_, y| y * (T::one() - y))
    }

    /// `e^x`; derivative `y`.
    pub fn exp(&mut self, x: Var) -> Var {
        let y = self.value(x).exp();
        self.unary("exp", x, y, |_, y| y)
    }

    /// `ln x`; derivative `1 / x`.
    pub fn log(&mut self, x: Var) -> Var {
        let y = self.value(x).log();
        self.unary("log", x, y, |x, _| T::one() / x)
    }

    /// `x^2`; derivative `2 x`.
    pub fn square(&mut self, x: Var) -> Var {
        let y = self.value(x).square();
        self.unary("square", x, y, |x, _| x + x)
    }

    /// `sqrt x`; derivative `1 / (2 y)`.
    pub fn sqrt(&mut self, x: Var) -> Var {
        let y = self.value(x).sqrt();
        self.unary("sqrt", x, y, |_, y| T::from_f64(0.5) / y)
    }

    /// `|x|`; derivative `sign(x)`, taken as 0 at `x = 0`.
    pub fn abs(&mut self, x: Var) -> Var {
        let y = self.value(x).abs();
        self.unary("abs", x, y, |x, _| {
            if x > T::zero() {
                T::one()
            } else if x < T::zero() {
                -T::one()
            } else {
                T::zero()
            }
        })
    }
}
