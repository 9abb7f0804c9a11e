//! Random MLPs for the fast-path tests: with their MLP view, the fast path runs its own forward
//! and backward; with the view hidden (`view = false`), it takes the tape's factored per-sample
//! gradients.

use autodiff::{Tape, Var};
use nets::{Activation, MlpLayer, MlpView, Model, OutputKind};
use tensor::{rng, Float, Tensor};

pub const ACTIVATIONS: [Activation; 6] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Gelu,
    Activation::Elu,
    Activation::Tanh,
    Activation::Sigmoid,
];

/// `widths[0] -> .. -> widths[L]`, layer `l` with activation `acts[l]` and a bias if
/// `biases[l]`; weights `N(0, 1 / fan_in)`, biases `N(0, 0.3^2)`.
pub struct RandomMlp<T: Float> {
    layers: Vec<MlpLayer>,
    params: Vec<Tensor<T>>,
    widths: Vec<usize>,
    /// When false, the model hides its MLP view (the fast path then uses the tape).
    pub view: bool,
}

impl<T: Float> RandomMlp<T> {
    pub fn new(widths: &[usize], acts: &[Activation], biases: &[bool], seed: u64) -> Self {
        let mut r = rng(seed);
        let mut params = Vec::new();
        let mut layers = Vec::new();
        for (l, w) in widths.windows(2).enumerate() {
            let weight = params.len();
            params.push(Tensor::randn(
                &[w[1], w[0]],
                1.0 / (w[0] as f64).sqrt(),
                &mut r,
            ));
            let bias = biases[l].then(|| {
                params.push(Tensor::randn(&[w[1]], 0.3, &mut r));
                weight + 1
            });
            layers.push(MlpLayer {
                weight,
                bias,
                activation: acts[l],
            });
        }
        Self {
            layers,
            params,
            widths: widths.to_vec(),
            view: true,
        }
    }
}

fn activate<T: Float>(tape: &mut Tape<T>, act: Activation, h: Var) -> Var {
    match act {
        Activation::Identity => h,
        Activation::Relu => tape.relu(h),
        Activation::Gelu => tape.gelu(h),
        Activation::Elu => tape.elu(h, T::one()),
        Activation::Tanh => tape.tanh(h),
        Activation::Sigmoid => tape.sigmoid(h),
    }
}

impl<T: Float> Model<T> for RandomMlp<T> {
    fn param_names(&self) -> Vec<String> {
        (0..self.params.len()).map(|i| format!("p{i}")).collect()
    }
    fn params(&self) -> Vec<&Tensor<T>> {
        self.params.iter().collect()
    }
    fn input_dim(&self) -> usize {
        self.widths[0]
    }
    fn output_dim(&self) -> usize {
        *self.widths.last().expect("at least one width")
    }
    fn output_kind(&self) -> OutputKind {
        OutputKind::Regression
    }
    fn forward(&self, tape: &mut Tape<T>, p: &[Var], x: Var) -> autodiff::Result<Var> {
        let mut h = x;
        for layer in &self.layers {
            let z = tape.try_linear(h, p[layer.weight], layer.bias.map(|b| p[b]))?;
            h = activate(tape, layer.activation, z);
        }
        Ok(h)
    }
    fn as_mlp(&self) -> Option<MlpView<'_, T>> {
        self.view.then(|| MlpView {
            params: self.params.iter().collect(),
            layers: self.layers.clone(),
        })
    }
}

/// `n` rows of standard normal inputs of width `width`.
pub fn normal_inputs<T: Float>(n: usize, width: usize, seed: u64) -> Tensor<T> {
    Tensor::randn(&[n, width], 1.0, &mut rng(seed))
}
