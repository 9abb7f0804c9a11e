//! The interface through which a model is seen: named parameter tensors, a forward pass on the
//! tape, and, for a stack of dense layers, a view of its layers.

use crate::activation::Activation;
use autodiff::{Tape, Var};
use tensor::{Float, Tensor};

/// What a model's output is, which decides the default divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A regression vector: compared with MSE.
    Regression,
    /// Class logits: compared with KL divergence between softmaxes.
    Logits,
}

/// One dense layer of an [`MlpView`]: `a = act(x W^T + b)` with `W: [out, in]` and `b: [out]`
/// given as indices into the model's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpLayer {
    pub weight: usize,
    pub bias: Option<usize>,
    pub activation: Activation,
}

/// A model seen as a stack of dense layers, `f(x) = layer_L(.. layer_1(x))`, for L3D's fast
/// path's hand-written forward and backward (`l3d::mlp`, which toy training also uses).
///
/// Invariant (checked where it is used): `params` are the model's parameters in order; layer
/// widths chain from `input_dim` to `output_dim`; every parameter is used by exactly one layer.
#[derive(Debug, Clone)]
pub struct MlpView<'a, T: Float> {
    pub params: Vec<&'a Tensor<T>>,
    pub layers: Vec<MlpLayer>,
}

/// A model `f(x, W)` with named parameter tensors.
///
/// Invariants: `param_names()` and `params()` have the same length and order, names are
/// unique, and `forward` reads its parameters in that order.
pub trait Model<T: Float>: Sync {
    /// Names of the parameter tensors (PyTorch `state_dict` style: `0.weight`, `0.bias`).
    fn param_names(&self) -> Vec<String>;

    /// The trained values `W0`, in the order of `param_names`.
    fn params(&self) -> Vec<&Tensor<T>>;

    /// Width of one input row: the number of values of one input sample.
    fn input_dim(&self) -> usize;

    /// Width of one output row: the number of values of one output sample.
    fn output_dim(&self) -> usize;

    /// The shape of one input sample (`[C, H, W]` images, `[T]` token ids); `[input_dim]`
    /// by default.
    fn input_shape(&self) -> Vec<usize> {
        vec![self.input_dim()]
    }

    /// The shape of one output sample: `[output_dim]` by default, `[T, vocab]` for a
    /// sequence model's logits per position.
    fn output_shape(&self) -> Vec<usize> {
        vec![self.output_dim()]
    }

    fn output_kind(&self) -> OutputKind;

    /// Records `f(x, W)` on `tape` for a batch `x: [B, ..input_shape]`, reading `W` from
    /// `params` (one `Var` per parameter tensor, in order), and returns
    /// `[B, ..output_shape]`.
    fn forward(&self, tape: &mut Tape<T>, params: &[Var], x: Var) -> autodiff::Result<Var>;

    /// `f(x, W)` for given parameter values, outside of any gradient computation.
    fn evaluate(&self, params: &[Tensor<T>], x: &Tensor<T>) -> autodiff::Result<Tensor<T>> {
        let mut tape = Tape::new();
        let p: Vec<Var> = params.iter().map(|t| tape.constant(t.clone())).collect();
        let xv = tape.input(x.clone());
        let y = self.forward(&mut tape, &p, xv)?;
        Ok(tape.value(y).clone())
    }

    /// `f(x, W0)`.
    fn evaluate_w0(&self, x: &Tensor<T>) -> autodiff::Result<Tensor<T>> {
        let w0: Vec<Tensor<T>> = self.params().into_iter().cloned().collect();
        self.evaluate(&w0, x)
    }

    /// The model as a stack of dense layers, if it is one (then the fast path computes its
    /// per-sample gradients without the tape). `None` by default.
    fn as_mlp(&self) -> Option<MlpView<'_, T>> {
        None
    }

    /// Shapes of the parameter tensors, in order.
    fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.params().iter().map(|t| t.shape().to_vec()).collect()
    }
}
