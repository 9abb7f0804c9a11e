//! The tape: nodes in execution order, and the reverse loop that is backward.

use std::fmt;
use tensor::{Float, Tensor, TensorError};
use thiserror::Error;

/// A handle to a value recorded on a [`Tape`]: the node's index. Only meaningful for the
/// tape that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) usize);

impl Var {
    pub fn index(self) -> usize {
        self.0
    }
}

/// What can go wrong when recording or differentiating.
#[derive(Debug, Error)]
pub enum AutodiffError {
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
}

pub type Result<T> = std::result::Result<T, AutodiffError>;

/// A gradient contribution: dense, or, for a shared parameter used by a batched matmul, the
/// per-sample outer-product form (never formed until asked for).
///
/// `Outer` invariants: `left: [B, M, p]` and `right: [B, M, q]` agree on `B` and `M`, and
/// `shape` (the parameter's own shape, without the batch axis) holds `p q` elements. Sample
/// `b`'s gradient is `left[b]^T right[b]`, a sum of `M` outer products, read under `shape`:
/// `[p, q]` for a matrix, `[out, in, kh, kw]` for a convolution kernel that was reshaped to
/// `[out, in kh kw]` before its matmul (see [`Tape::try_reshape`]).
#[derive(Clone, Debug)]
pub enum Grad<T: Float> {
    Dense(Tensor<T>),
    Outer {
        left: Tensor<T>,
        right: Tensor<T>,
        shape: Vec<usize>,
    },
}

impl<T: Float> Grad<T> {
    /// The dense tensor (for `Outer`, the batched product `left^T right` under the
    /// parameter's shape: `[B, ..shape]`).
    pub fn into_dense(self) -> Tensor<T> {
        match self {
            Grad::Dense(t) => t,
            Grad::Outer { left, right, shape } => {
                let product = left.matmul_t(tensor::Transpose::Yes, &right, tensor::Transpose::No);
                let mut batched = vec![left.shape()[0]];
                batched.extend_from_slice(&shape);
                product.reshape(&batched)
            }
        }
    }

    /// The vjp of a reshape from `from` to `to`: the same numbers under the input's shape. A
    /// dense gradient keeps its leading (per-sample) axes in front of `from`; a factored one
    /// only changes the shape it is read under, and stays factored.
    fn reshaped(self, from: &[usize], to: &[usize]) -> Grad<T> {
        match self {
            Grad::Dense(t) => {
                let mut shape = t.shape()[..t.ndim() - from.len()].to_vec();
                shape.extend_from_slice(to);
                Grad::Dense(t.reshape(&shape))
            }
            Grad::Outer { left, right, .. } => Grad::Outer {
                left,
                right,
                shape: to.to_vec(),
            },
        }
    }

    /// Adds two contributions; factored forms are densified first.
    fn accumulate(self, other: Grad<T>) -> Grad<T> {
        let mut a = self.into_dense();
        a.add_assign(&other.into_dense());
        Grad::Dense(a)
    }
}

impl<T: Float> From<Tensor<T>> for Grad<T> {
    fn from(t: Tensor<T>) -> Self {
        Grad::Dense(t)
    }
}

/// What an op's backward sees: the output's gradient, the input and output values, and which
/// inputs want a gradient.
pub struct Ctx<'a, T: Float> {
    pub grad_out: &'a Tensor<T>,
    pub inputs: Vec<&'a Tensor<T>>,
    pub out: &'a Tensor<T>,
    needs: Vec<bool>,
    /// Per input: true when the input is shared and its gradient must be per sample
    /// (`[B, ..input shape]`) while the output is batched.
    per_sample: Vec<bool>,
}

impl<'a, T: Float> Ctx<'a, T> {
    /// Whether input `i` needs a gradient at all.
    pub fn needs(&self, i: usize) -> bool {
        self.needs[i]
    }

    /// Whether input `i` is a shared value whose gradient must keep the batch axis.
    pub fn per_sample(&self, i: usize) -> bool {
        self.per_sample[i]
    }

    /// Reduces a contribution of the output's full (broadcast) shape to input `i`: summed to
    /// the input's shape, or, in per-sample mode, to `[B, ..input shape]` (the batch axis kept).
    /// This is the one place where broadcasting ops differ between the two modes.
    pub fn reduce_to_input(&self, i: usize, full: Tensor<T>) -> Tensor<T> {
        let shape = self.inputs[i].shape();
        if !self.per_sample[i] {
            return full.sum_to_shape(shape);
        }
        let b = full.shape()[0];
        let rest = full.ndim() - 1;
        // The input aligns with the trailing axes of the output. Per sample it covers the
        // axes after the batch axis: its own size where it has the axis, 1 where it is
        // stretched in front. An input axis on the batch axis itself has size 1 (see
        // `spans_batch_axis`) and gives way to the batch axis.
        let kept = &shape[shape.len().saturating_sub(rest)..];
        let mut with_batch = vec![b];
        with_batch.resize(1 + rest - kept.len(), 1);
        with_batch.extend_from_slice(kept);
        let mut out_shape = vec![b];
        out_shape.extend_from_slice(shape);
        full.sum_to_shape(&with_batch).reshape(&out_shape)
    }
}

/// An op's vector-Jacobian product: one optional gradient per input.
pub(crate) type Vjp<T> = Box<dyn Fn(&Ctx<T>) -> Vec<Option<Grad<T>>> + Send + Sync>;

/// How a node's gradient reaches its inputs.
enum Backward<T: Float> {
    /// The op's vjp, applied to the dense gradient of its output.
    Vjp(Vjp<T>),
    /// A reshape of its one input: the gradient, dense or factored, passes to the input under
    /// the input's shape ([`Grad::reshaped`]). Kept apart from `Vjp` so that a factored
    /// per-sample gradient crosses a reshape of a shared parameter without being formed.
    Reshape,
}

struct Node<T: Float> {
    value: Tensor<T>,
    inputs: Vec<Var>,
    backward: Option<Backward<T>>,
    op: &'static str,
    requires_grad: bool,
    batched: bool,
    /// Whether the op has a per-sample rule for shared inputs next to a batched output.
    per_sample_rule: bool,
}

/// A list of recorded ops over `Tensor<T>`.
///
/// Invariants: a node's inputs have smaller indices than the node (execution order is a
/// topological order); `requires_grad` is true exactly for trainable leaves and the ops that
/// depend on one; `batched` is true for batched leaves and the ops that depend on one.
pub struct Tape<T: Float> {
    nodes: Vec<Node<T>>,
    /// Set when an op mixed the rows of a batched value (a reduction over the batch axis), so
    /// per-sample gradients of this tape would be wrong.
    mixes_batch: Option<&'static str>,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> fmt::Debug for Tape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tape({} nodes)", self.nodes.len())
    }
}

impl<T: Float> Tape<T> {
    pub fn new() -> Self {
        Self {
            nodes: Vec::new(),
            mixes_batch: None,
        }
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Forgets every node, keeping the allocation of the node list for reuse. Every `Var` of
    /// this tape becomes invalid.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.mixes_batch = None;
    }

    /// The value of a recorded node.
    pub fn value(&self, v: Var) -> &Tensor<T> {
        &self.nodes[v.0].value
    }

    pub fn shape(&self, v: Var) -> &[usize] {
        self.nodes[v.0].value.shape()
    }

    pub fn is_batched(&self, v: Var) -> bool {
        self.nodes[v.0].batched
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    fn leaf(&mut self, value: Tensor<T>, requires_grad: bool, batched: bool) -> Var {
        self.nodes.push(Node {
            value,
            inputs: Vec::new(),
            backward: None,
            op: "leaf",
            requires_grad,
            batched,
            per_sample_rule: false,
        });
        Var(self.nodes.len() - 1)
    }

    /// A trainable, shared leaf (a parameter).
    pub fn param(&mut self, value: Tensor<T>) -> Var {
        self.leaf(value, true, false)
    }

    /// A shared constant: takes no gradient.
    pub fn constant(&mut self, value: Tensor<T>) -> Var {
        self.leaf(value, false, false)
    }

    /// A batched constant (leading axis `B`): takes no gradient.
    pub fn input(&mut self, value: Tensor<T>) -> Var {
        self.leaf(value, false, true)
    }

    /// Records an op. `per_sample_rule` says whether `vjp` honours
    /// [`Ctx::per_sample`] for shared inputs next to a batched output.
    pub(crate) fn push(
        &mut self,
        op: &'static str,
        value: Tensor<T>,
        inputs: &[Var],
        per_sample_rule: bool,
        vjp: Vjp<T>,
    ) -> Var {
        self.push_node(op, value, inputs, per_sample_rule, Backward::Vjp(vjp))
    }

    /// Records a reshape of `x` (see [`Backward::Reshape`]).
    pub(crate) fn push_reshape(&mut self, value: Tensor<T>, x: Var) -> Var {
        self.push_node("reshape", value, &[x], false, Backward::Reshape)
    }

    fn push_node(
        &mut self,
        op: &'static str,
        value: Tensor<T>,
        inputs: &[Var],
        per_sample_rule: bool,
        backward: Backward<T>,
    ) -> Var {
        let requires_grad = inputs.iter().any(|v| self.nodes[v.0].requires_grad);
        let batched = inputs.iter().any(|v| self.nodes[v.0].batched);
        self.nodes.push(Node {
            value,
            inputs: inputs.to_vec(),
            backward: requires_grad.then_some(backward),
            op,
            requires_grad,
            batched,
            per_sample_rule,
        });
        Var(self.nodes.len() - 1)
    }

    /// Marks the tape as mixing batch rows if `v` is batched (called by reductions over the
    /// batch axis).
    pub(crate) fn note_batch_mixing(&mut self, v: Var, op: &'static str) {
        if self.nodes[v.0].batched && self.mixes_batch.is_none() {
            self.mixes_batch = Some(op);
        }
    }

    pub(crate) fn batch_mixing_op(&self) -> Option<&'static str> {
        self.mixes_batch
    }

    /// Gradients of the scalar `loss` with respect to each of `wrt`, in order. A leaf the loss
    /// does not depend on gets zeros.
    pub fn grad(&self, loss: Var, wrt: &[Var]) -> Result<Vec<Tensor<T>>> {
        let value = self.value(loss);
        if value.numel() != 1 {
            return Err(AutodiffError::Invalid {
                op: "grad",
                msg: format!(
                    "the loss must be a scalar, its shape is {:?}",
                    value.shape()
                ),
            });
        }
        let seed = Tensor::ones(value.shape());
        let mut grads = self.backward_from(loss, seed, false)?;
        Ok(wrt
            .iter()
            .map(|v| match grads[v.0].take() {
                Some(g) => g.into_dense(),
                None => Tensor::zeros(self.shape(*v)),
            })
            .collect())
    }

    /// The reverse loop. Seeds node `root` with `seed` and walks the nodes backwards, handing
    /// each op its output's gradient and accumulating (`+=`) what it returns into its inputs.
    /// Gradients of intermediate nodes are dropped once consumed; leaves keep theirs.
    ///
    /// With `per_sample`, the gradient of every shared node keeps a leading batch axis: an op
    /// whose output is batched hands its shared inputs per-sample gradients (its per-sample
    /// rule), and an op whose output is shared is applied to each sample's gradient in turn.
    /// A reshape hands a factored gradient on unformed; every other op densifies it first.
    pub(crate) fn backward_from(
        &self,
        root: Var,
        seed: Tensor<T>,
        per_sample: bool,
    ) -> Result<Vec<Option<Grad<T>>>> {
        let mut grads: Vec<Option<Grad<T>>> = (0..self.nodes.len()).map(|_| None).collect();
        grads[root.0] = Some(Grad::Dense(seed));
        for id in (0..=root.0).rev() {
            let node = &self.nodes[id];
            let Some(backward) = &node.backward else {
                continue;
            };
            let Some(g) = grads[id].take() else { continue };
            let contributions = match backward {
                Backward::Reshape => {
                    let from = node.value.shape();
                    vec![Some(g.reshaped(from, self.shape(node.inputs[0])))]
                }
                Backward::Vjp(vjp) => {
                    let g = g.into_dense();
                    if per_sample && !node.batched {
                        self.backward_each_sample(node, vjp, &g)?
                    } else {
                        self.backward_node(node, vjp, &g, per_sample)?
                    }
                }
            };
            for (input, c) in node.inputs.iter().zip(contributions) {
                if let Some(c) = c {
                    let slot = &mut grads[input.0];
                    *slot = Some(match slot.take() {
                        None => c,
                        Some(prev) => prev.accumulate(c),
                    });
                }
            }
        }
        Ok(grads)
    }

    fn ctx<'a>(
        &'a self,
        node: &'a Node<T>,
        grad_out: &'a Tensor<T>,
        per_sample: bool,
    ) -> Ctx<'a, T> {
        Ctx {
            grad_out,
            inputs: node.inputs.iter().map(|v| self.value(*v)).collect(),
            out: &node.value,
            needs: node
                .inputs
                .iter()
                .map(|v| self.nodes[v.0].requires_grad)
                .collect(),
            per_sample: node
                .inputs
                .iter()
                .map(|v| per_sample && node.batched && !self.nodes[v.0].batched)
                .collect(),
        }
    }

    fn backward_node(
        &self,
        node: &Node<T>,
        vjp: &Vjp<T>,
        grad_out: &Tensor<T>,
        per_sample: bool,
    ) -> Result<Vec<Option<Grad<T>>>> {
        let ctx = self.ctx(node, grad_out, per_sample);
        let mixed = (0..node.inputs.len()).any(|i| ctx.per_sample(i) && ctx.needs(i));
        if mixed && !node.per_sample_rule {
            let shapes: Vec<&[usize]> = ctx.inputs.iter().map(|t| t.shape()).collect();
            return Err(AutodiffError::Invalid {
                op: node.op,
                msg: format!(
                    "has no per-sample rule for a trainable shared input next to a batched \
                     input (input shapes {shapes:?}); compute the shared value outside the \
                     batched part or use per_sample_grads_loop"
                ),
            });
        }
        Ok(vjp(&ctx))
    }

    /// Per-sample mode for an op whose output is shared: `grad_out` is `[B, ..out shape]`;
    /// apply the op's vjp to each sample's slice and stack the results.
    fn backward_each_sample(
        &self,
        node: &Node<T>,
        vjp: &Vjp<T>,
        grad_out: &Tensor<T>,
    ) -> Result<Vec<Option<Grad<T>>>> {
        let b = grad_out.shape()[0];
        let mut per_input: Vec<Vec<Tensor<T>>> = vec![Vec::with_capacity(b); node.inputs.len()];
        for s in 0..b {
            let gs = grad_out.row_tensor(s).reshape(node.value.shape());
            let ctx = self.ctx(node, &gs, false);
            for (i, c) in vjp(&ctx).into_iter().enumerate() {
                if let Some(c) = c {
                    per_input[i].push(c.into_dense());
                }
            }
        }
        Ok(per_input
            .into_iter()
            .map(|parts| {
                (parts.len() == b && b > 0).then(|| {
                    let refs: Vec<&Tensor<T>> = parts.iter().collect();
                    Grad::Dense(Tensor::stack(&refs))
                })
            })
            .collect())
    }
}
