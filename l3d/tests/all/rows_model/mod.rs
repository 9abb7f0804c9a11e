//! A model whose first layer acts on `M` rows per sample, so the tape's factored per-sample
//! gradient of that layer is a sum of `M > 1` outer products.

use autodiff::{Tape, Var};
use l3d::{Model, OutputKind};
use tensor::{rng, Float, Tensor};

/// `x: [B, M d] -> [B, M, d]`, `h = tanh(x W1^T + b1): [B, M, h]`, `y = [B, M h] W2^T`: the
/// per-sample gradient of `W1` is a sum of `M` outer products.
pub struct RowsModel<T: Float> {
    params: Vec<Tensor<T>>,
    m: usize,
    d: usize,
    h: usize,
    out: usize,
}

impl<T: Float> RowsModel<T> {
    pub fn new(m: usize, d: usize, h: usize, out: usize, seed: u64) -> Self {
        let mut r = rng(seed);
        Self {
            params: vec![
                Tensor::randn(&[h, d], 0.7, &mut r),
                Tensor::randn(&[h], 0.3, &mut r),
                Tensor::randn(&[out, m * h], 0.5, &mut r),
            ],
            m,
            d,
            h,
            out,
        }
    }
}

impl<T: Float> Model<T> for RowsModel<T> {
    fn param_names(&self) -> Vec<String> {
        ["w1", "b1", "w2"].map(String::from).to_vec()
    }
    fn params(&self) -> Vec<&Tensor<T>> {
        self.params.iter().collect()
    }
    fn input_dim(&self) -> usize {
        self.m * self.d
    }
    fn output_dim(&self) -> usize {
        self.out
    }
    fn output_kind(&self) -> OutputKind {
        OutputKind::Regression
    }
    fn forward(&self, tape: &mut Tape<T>, p: &[Var], x: Var) -> autodiff::Result<Var> {
        let b = tape.shape(x)[0];
        let rows = tape.try_reshape(x, &[b, self.m, self.d])?;
        let z = tape.try_linear(rows, p[0], Some(p[1]))?;
        let h = tape.tanh(z);
        let flat = tape.try_reshape(h, &[b, self.m * self.h])?;
        tape.try_linear(flat, p[2], None)
    }
}
