//! A small model for the `l3d` tests: `y = W2 tanh(W1 x + b1) + b2`, widths 3 -> 4 -> 2.

use autodiff::{Tape, Var};
use l3d::{Model, OutputKind};
use tensor::{rng, Float, Tensor};

pub struct TinyMlp<T: Float> {
    pub params: Vec<Tensor<T>>,
    pub output: OutputKind,
}

impl<T: Float> TinyMlp<T> {
    pub fn new(seed: u64) -> Self {
        let mut r = rng(seed);
        Self {
            params: vec![
                Tensor::randn(&[4, 3], 0.8, &mut r),
                Tensor::randn(&[4], 0.3, &mut r),
                Tensor::randn(&[2, 4], 0.8, &mut r),
                Tensor::randn(&[2], 0.3, &mut r),
            ],
            output: OutputKind::Regression,
        }
    }
}

impl<T: Float> Model<T> for TinyMlp<T> {
    fn param_names(&self) -> Vec<String> {
        ["0.weight", "0.bias", "2.weight", "2.bias"]
            .map(String::from)
            .to_vec()
    }
    fn params(&self) -> Vec<&Tensor<T>> {
        self.params.iter().collect()
    }
    fn input_dim(&self) -> usize {
        3
    }
    fn output_dim(&self) -> usize {
        2
    }
    fn output_kind(&self) -> OutputKind {
        self.output
    }
    fn forward(&self, tape: &mut Tape<T>, p: &[Var], x: Var) -> autodiff::Result<Var> {
        let h = tape.try_linear(x, p[0], Some(p[1]))?;
        let h = tape.tanh(h);
        tape.try_linear(h, p[2], Some(p[3]))
    }
}

/// `n` rows of standard normal inputs of width 3.
pub fn inputs<T: Float>(n: usize, seed: u64) -> Tensor<T> {
    Tensor::randn(&[n, 3], 1.0, &mut rng(seed))
}
