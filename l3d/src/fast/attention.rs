//! Per-sample gradients of an attention-only transformer without the tape (a model with an
//! [`AttentionView`]): one forward and one backward pass per chunk into reused buffers.
//!
//! # Legend
//!
//! - `n` sequences of a chunk, `T` positions each, width `d`, vocabulary `V`; rows are
//!   `(sample, position)` pairs, `n T` of them.
//! - `h_0 = tok[ids] + pos[0..T]`; layer `l` (`0..L`): `q = h_l Wq^T`, `k = h_l Wk^T`,
//!   `v = h_l Wv^T`; per head (`dh = d / H` features), `A = softmax(q k^T / sqrt(dh))`
//!   (causally masked if the layer is), `ctx = A v`; `h_{l+1} = h_l + ctx Wo^T`.
//! - `y = h_L U^T: [n T, V]`, the logits; the divergence sums over positions (KL per position
//!   over the vocabulary; MSE the mean over `T V` values), as the tape's. For KL against
//!   another sample (or zero logits) the forward also forms `p = softmax(y)` per position and
//!   hands it out as the output, so a reference arrives as probabilities and
//!   `dD/dy = p - p_ref` (or `p - 1/V`) needs no exponential in the backward.
//!
//! # Backward
//!
//! `dh_L = dy U`; per layer from the top, `dctx = dh_{l+1} Wo`, and per head
//! `dA = dctx v^T`, `dv = A^T dctx`, `dS = A * (dA - rowsum(A * dA))`,
//! `dq = dS k / sqrt(dh)`, `dk = dS^T q / sqrt(dh)`; `dh_l = dh_{l+1} + dq Wq + dk Wk + dv Wv`.
//! Every weight's per-sample gradient is a sum over the `T` positions, kept factored:
//! `Wq: (dq, h_l)`, `Wk: (dk, h_l)`, `Wv: (dv, h_l)`, `Wo: (dh_{l+1}, ctx)`, `U: (dy, h_L)`.
//! The tables' are scatters of `dh_0`'s rows (dense): the token table's row `ids[t]` gets
//! `dh_0[t]`, the positional table's row `t` does.
//!
//! One file of about 700 lines: the forward and the backward above share the chunk's buffers
//! and this legend, and split apart they would each need the other's layout.

use super::layout::{Split, CHUNK_ROWS};
use super::pass::{ChunkedPass, PassNet};
use crate::config::{Divergence, Reference};
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::mlp::divergence_grad;
use nets::{AttentionView, Model};
use tensor::gemm::{gemm, GemmScratch, MatMut, MatRef};
use tensor::{Float, Tensor};

/// Positions per chunk of sequences, roughly (see [`PassNet::chunk_rows`]).
const CHUNK_POSITIONS: usize = 256;

/// What a parameter tensor is to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttnRole {
    Tokens,
    Positions,
    /// Layer `l`'s projection `j` (`q, k, v, o`).
    Projection(usize, usize),
    Unembed,
}

#[derive(Debug, Clone)]
struct AttnLayer<'m, T: Float> {
    /// `[Wq, Wk, Wv, Wo]`, `[d, d]` each.
    w: [&'m Tensor<T>; 4],
    heads: usize,
    causal: bool,
}

/// A validated [`AttentionView`].
#[derive(Debug, Clone)]
pub(crate) struct AttnNet<'m, T: Float> {
    tok: &'m Tensor<T>,
    pos: Option<&'m Tensor<T>>,
    layers: Vec<AttnLayer<'m, T>>,
    unembed: &'m Tensor<T>,
    t: usize,
    d: usize,
    vocab: usize,
    roles: Vec<AttnRole>,
    output: Output,
}

/// What the forward hands out per position. With KL it is the softmax rather than the
/// logits, so that a reference (another sample's output) arrives as probabilities and
/// `dD/dy = p - p_ref` takes no exponential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Logits,
    /// KL against another sample's probabilities.
    Probabilities,
    /// KL against zero logits: the uniform distribution.
    ProbabilitiesAgainstUniform,
}

impl<'m, T: Float> AttnNet<'m, T> {
    /// The network of `model`, `None` if the model has no attention view, or an error naming
    /// what in its view does not fit the model.
    pub fn of(model: &'m dyn Model<T>) -> Result<Option<Self>> {
        let Some(view) = model.as_attention() else {
            return Ok(None);
        };
        let &[t] = &model.input_shape()[..] else {
            return Ok(None);
        };
        Self::from_view(view, t).map(Some)
    }

    fn from_view(view: AttentionView<'m, T>, t: usize) -> Result<Self> {
        let bad = |msg: String| L3dError::Model(format!("the model's attention view: {msg}"));
        let mut roles: Vec<Option<AttnRole>> = vec![None; view.params.len()];
        let mut claim = |index: usize, role: AttnRole| -> Result<&'m Tensor<T>> {
            match roles.get_mut(index) {
                Some(slot @ None) => *slot = Some(role),
                Some(Some(_)) => return Err(bad(format!("parameter {index} is used twice"))),
                None => return Err(bad(format!("parameter {index} does not exist"))),
            }
            Ok(view.params[index])
        };
        let tok = claim(view.tokens, AttnRole::Tokens)?;
        let &[vocab, d] = tok.shape() else {
            return Err(bad(format!("the token table has shape {:?}", tok.shape())));
        };
        let pos = match view.positions {
            Some(i) => {
                let pos = claim(i, AttnRole::Positions)?;
                if pos.ndim() != 2 || pos.shape()[1] != d || pos.shape()[0] < t {
                    return Err(bad(format!(
                        "the positional table {:?} does not fit {t} positions of width {d}",
                        pos.shape()
                    )));
                }
                Some(pos)
            }
            None => None,
        };
        let mut layers = Vec::with_capacity(view.layers.len());
        for (l, layer) in view.layers.iter().enumerate() {
            let mut w = [tok; 4];
            for (j, &i) in layer.projections.iter().enumerate() {
                w[j] = claim(i, AttnRole::Projection(l, j))?;
                if w[j].shape() != [d, d] {
                    return Err(bad(format!(
                        "layer {l}'s projection {j} has shape {:?}, expected [{d}, {d}]",
                        w[j].shape()
                    )));
                }
            }
            if layer.num_heads == 0 || d % layer.num_heads != 0 {
                return Err(bad(format!(
                    "{} heads do not divide width {d}",
                    layer.num_heads
                )));
            }
            layers.push(AttnLayer {
                w,
                heads: layer.num_heads,
                causal: layer.causal,
            });
        }
        let unembed = claim(view.unembed, AttnRole::Unembed)?;
        if unembed.shape() != [vocab, d] {
            return Err(bad(format!(
                "the unembedding has shape {:?}, expected [{vocab}, {d}]",
                unembed.shape()
            )));
        }
        let roles = roles
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or_else(|| bad(format!("parameter {i} is in no layer"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tok,
            pos,
            layers,
            unembed,
            t,
            d,
            vocab,
            roles,
            output: Output::Logits,
        })
    }

    /// The network for steps with `reference` and `divergence`: with KL and a reference that
    /// is another sample's output (or zero), outputs are probabilities (see [`Output`]).
    pub fn paired(mut self, reference: Reference, divergence: Divergence) -> Self {
        self.output = match (divergence, reference) {
            (Divergence::Kl, Reference::RandomSample | Reference::RandomWithSelf) => {
                Output::Probabilities
            }
            (Divergence::Kl, Reference::Zero) => Output::ProbabilitiesAgainstUniform,
            _ => Output::Logits,
        };
        self
    }

    fn context(&self) -> usize {
        self.pos.map_or(0, |p| p.shape()[0])
    }
}

/// The buffers of one chunk of up to `n` sequences.
///
/// Invariant: after [`AttnChunk::forward`], `ids`, `h`, `q`, `k`, `v`, `att`, `ctx` and `y`
/// hold the chunk's `n` sequences; after [`AttnChunk::backward`], `dy`, `dh`, `dq`, `dk`,
/// `dv` and the tables' gradients do.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttnChunk<T> {
    n: usize,
    ids: Vec<usize>,
    /// `h_0 ..= h_L`.
    h: Vec<Vec<T>>,
    q: Vec<Vec<T>>,
    k: Vec<Vec<T>>,
    v: Vec<Vec<T>>,
    /// Per layer, `[n, H, T, T]`.
    att: Vec<Vec<T>>,
    ctx: Vec<Vec<T>>,
    y: Vec<T>,
    /// `softmax(y)` per position (KL with probabilities only).
    p: Vec<T>,
    dy: Vec<T>,
    /// `dh_0 ..= dh_L`.
    dh: Vec<Vec<T>>,
    dq: Vec<Vec<T>>,
    dk: Vec<Vec<T>>,
    dv: Vec<Vec<T>>,
    dctx: Vec<T>,
    d_att: Vec<T>,
    tok_grad: Vec<T>,
    pos_grad: Vec<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> AttnChunk<T> {
    /// Buffers for up to `n` sequences of `net` (allocates; steps reuse them).
    pub fn new(net: &AttnNet<T>, n: usize) -> Self {
        let rows = n * net.t;
        let (d, layers) = (net.d, net.layers.len());
        let per_layer = |len: usize| vec![vec![T::zero(); len]; layers];
        let heads = net.layers.iter().map(|l| l.heads).max().unwrap_or(1);
        Self {
            n: 0,
            ids: vec![0; rows],
            h: vec![vec![T::zero(); rows * d]; layers + 1],
            q: per_layer(rows * d),
            k: per_layer(rows * d),
            v: per_layer(rows * d),
            att: per_layer(n * heads * net.t * net.t),
            ctx: per_layer(rows * d),
            y: vec![T::zero(); rows * net.vocab],
            p: vec![T::zero(); rows * net.vocab],
            dy: vec![T::zero(); rows * net.vocab],
            dh: vec![vec![T::zero(); rows * d]; layers + 1],
            dq: per_layer(rows * d),
            dk: per_layer(rows * d),
            dv: per_layer(rows * d),
            dctx: vec![T::zero(); rows * d],
            d_att: vec![T::zero(); net.t * net.t],
            tok_grad: vec![T::zero(); n * net.vocab * d],
            pos_grad: vec![T::zero(); n * net.context() * d],
            gemm: GemmScratch::default(),
        }
    }

    /// The token ids of `rows` of `data` (`[N, T]`, checked whole by `AttnNet::check_data`).
    pub fn gather(&mut self, data: &Tensor<T>, rows: &[usize]) {
        self.n = rows.len();
        for (dst, &r) in self.ids.chunks_exact_mut(data.row_len()).zip(rows) {
            for (id, &v) in dst.iter_mut().zip(data.row(r)) {
                *id = v.to_f64() as usize;
            }
        }
    }

    /// The logits of the last forward pass, `[n T, V]` (their softmax per position with
    /// probabilities).
    pub fn output(&self, net: &AttnNet<T>) -> &[T] {
        let out = if net.output != Output::Logits {
            &self.p
        } else {
            &self.y
        };
        &out[..self.n * net.t * net.vocab]
    }

    pub fn forward(&mut self, net: &AttnNet<T>) {
        let (t, d) = (net.t, net.d);
        let rows = self.n * t;
        let h0 = &mut self.h[0][..rows * d];
        for (r, (row, &id)) in h0.chunks_exact_mut(d).zip(&self.ids).enumerate() {
            row.copy_from_slice(&net.tok.data()[id * d..(id + 1) * d]);
            if let Some(pos) = net.pos {
                let p = &pos.data()[(r % t) * d..(r % t + 1) * d];
                for (x, &e) in row.iter_mut().zip(p) {
                    *x += e;
                }
            }
        }
        for (l, layer) in net.layers.iter().enumerate() {
            let (below, above) = self.h.split_at_mut(l + 1);
            let h = &below[l][..rows * d];
            let outs = [&mut self.q[l], &mut self.k[l], &mut self.v[l]];
            for (w, out) in layer.w.iter().zip(outs) {
                // x W^T: [rows, d] @ [d, d].
                product(
                    h,
                    w.data(),
                    (rows, d, d),
                    true,
                    T::zero(),
                    out,
                    &mut self.gemm,
                );
            }
            mix(
                layer,
                (self.n, t, d),
                [&self.q[l], &self.k[l], &self.v[l]],
                &mut self.att[l],
                &mut self.ctx[l],
                &mut self.gemm,
            );
            let next = &mut above[0][..rows * d];
            next.copy_from_slice(h);
            let wo = layer.w[3].data();
            product(
                &self.ctx[l],
                wo,
                (rows, d, d),
                true,
                T::one(),
                next,
                &mut self.gemm,
            );
        }
        let top = &self.h[net.layers.len()][..rows * d];
        let shape = (rows, d, net.vocab);
        let y = &mut self.y;
        product(
            top,
            net.unembed.data(),
            shape,
            true,
            T::zero(),
            y,
            &mut self.gemm,
        );
        if net.output != Output::Logits {
            let len = rows * net.vocab;
            let rows = self.p[..len].chunks_exact_mut(net.vocab);
            for (p, y) in rows.zip(self.y[..len].chunks_exact(net.vocab)) {
                p.copy_from_slice(y);
                softmax_in_place(p);
            }
        }
    }

    /// Every gradient, from the reference rows `r: [n T, V]` (logits, or with probabilities
    /// the references' softmax).
    pub fn backward(&mut self, net: &AttnNet<T>, r: &[T], divergence: Divergence) {
        let (t, d, vocab) = (net.t, net.d, net.vocab);
        let rows = self.n * t;
        let (y, dy) = (&self.y[..rows * vocab], &mut self.dy[..rows * vocab]);
        let p = &self.p[..rows * vocab];
        match net.output {
            // KL: softmax(y) - softmax(r), with both softmaxes from the forward.
            Output::Probabilities => {
                for ((o, &pj), &rj) in dy.iter_mut().zip(p).zip(&r[..rows * vocab]) {
                    *o = pj - rj;
                }
            }
            Output::ProbabilitiesAgainstUniform => {
                let uniform = T::one() / T::from_usize(vocab);
                for (o, &pj) in dy.iter_mut().zip(p) {
                    *o = pj - uniform;
                }
            }
            Output::Logits => {
                // KL compares each position's distribution; MSE is a mean over all T V values.
                let width = match divergence {
                    Divergence::Kl => vocab,
                    Divergence::Mse | Divergence::MseAuthors => t * vocab,
                };
                divergence_grad(divergence, y, &r[..rows * vocab], width, dy);
            }
        }
        let top = net.layers.len();
        let shape = (rows, vocab, d);
        let dh_top = &mut self.dh[top];
        product(
            dy,
            net.unembed.data(),
            shape,
            false,
            T::zero(),
            dh_top,
            &mut self.gemm,
        );
        for (l, layer) in net.layers.iter().enumerate().rev() {
            let (below, above) = self.dh.split_at_mut(l + 1);
            let up = &above[0][..rows * d];
            let wo = layer.w[3].data();
            // dctx = dh_{l+1} Wo.
            product(
                up,
                wo,
                (rows, d, d),
                false,
                T::zero(),
                &mut self.dctx,
                &mut self.gemm,
            );
            unmix(
                layer,
                (self.n, t, d),
                [&self.q[l], &self.k[l], &self.v[l]],
                &self.att[l],
                &self.dctx,
                [&mut self.dq[l], &mut self.dk[l], &mut self.dv[l]],
                &mut self.d_att,
                &mut self.gemm,
            );
            let dh = &mut below[l][..rows * d];
            dh.copy_from_slice(up);
            let grads = [&self.dq[l], &self.dk[l], &self.dv[l]];
            for (w, g) in layer.w.iter().zip(grads) {
                product(
                    g,
                    w.data(),
                    (rows, d, d),
                    false,
                    T::one(),
                    dh,
                    &mut self.gemm,
                );
            }
        }
        let dh0 = &self.dh[0][..rows * d];
        let table = vocab * d;
        for (s, grad) in self
            .tok_grad
            .chunks_exact_mut(table)
            .take(self.n)
            .enumerate()
        {
            grad.fill(T::zero());
            for (pos, &id) in self.ids[s * t..(s + 1) * t].iter().enumerate() {
                let g = &dh0[(s * t + pos) * d..(s * t + pos + 1) * d];
                for (x, &v) in grad[id * d..(id + 1) * d].iter_mut().zip(g) {
                    *x += v;
                }
            }
        }
        let table = net.context() * d;
        if table > 0 {
            let sequences = self.pos_grad.chunks_exact_mut(table).take(self.n);
            for (grad, g) in sequences.zip(dh0.chunks_exact(t * d)) {
                grad[..t * d].copy_from_slice(g);
                grad[t * d..].fill(T::zero());
            }
        }
    }
}

/// `out[.., ..rows * n_out] = beta out + x W^T` (`transposed`: `W: [n_out, k]`) or `x W`
/// (`W: [k, n_out]`), for `x: [rows, k]`; `shape = (rows, k, n_out)`.
fn product<T: Float>(
    x: &[T],
    w: &[T],
    (rows, k, n_out): (usize, usize, usize),
    transposed: bool,
    beta: T,
    out: &mut [T],
    scratch: &mut GemmScratch<T>,
) {
    let w = if transposed {
        MatRef::rows(w, n_out, k).t()
    } else {
        MatRef::rows(w, k, n_out)
    };
    let out = MatMut::rows(&mut out[..rows * n_out], rows, n_out);
    gemm(
        T::one(),
        MatRef::rows(&x[..rows * k], rows, k),
        w,
        beta,
        out,
        scratch,
    );
}

/// `x[..len]`.
fn prefix<T>(x: &[T], len: usize) -> &[T] {
    &x[..len]
}

/// Sequence `s`'s head `head` of `x: [n T, d]`: `[T, dh]`, rows `d` apart.
fn head<T: Float>(
    x: &[T],
    s: usize,
    head: usize,
    (t, d, dh): (usize, usize, usize),
) -> MatRef<'_, T> {
    MatRef::new(&x[s * t * d + head * dh..], t, dh, d, 1)
}

fn head_mut<T: Float>(
    x: &mut [T],
    s: usize,
    head: usize,
    (t, d, dh): (usize, usize, usize),
) -> MatMut<'_, T> {
    MatMut::new(&mut x[s * t * d + head * dh..], t, dh, d)
}

/// Attention per sequence and head: `att = softmax(q k^T / sqrt(dh))` (masked), `ctx = att v`.
fn mix<T: Float>(
    layer: &AttnLayer<T>,
    (n, t, d): (usize, usize, usize),
    [q, k, v]: [&[T]; 3],
    att: &mut [T],
    ctx: &mut [T],
    scratch: &mut GemmScratch<T>,
) {
    let dh = d / layer.heads;
    let dims = (t, d, dh);
    let scale = T::one() / T::from_usize(dh).sqrt();
    for s in 0..n {
        for h in 0..layer.heads {
            let a = &mut att[(s * layer.heads + h) * t * t..][..t * t];
            let (qh, kh) = (head(q, s, h, dims), head(k, s, h, dims));
            gemm(scale, qh, kh.t(), T::zero(), MatMut::rows(a, t, t), scratch);
            for (i, a_row) in a.chunks_exact_mut(t).enumerate() {
                let keys = if layer.causal { i + 1 } else { t };
                let (kept, masked) = a_row.split_at_mut(keys);
                softmax_in_place(kept);
                masked.fill(T::zero());
            }
            let a = MatRef::rows(a, t, t);
            let out = head_mut(ctx, s, h, dims);
            gemm(T::one(), a, head(v, s, h, dims), T::zero(), out, scratch);
        }
    }
}

/// `x <- softmax(x)` over one row, shifted by its maximum: the exponentials a row at a time,
/// vectorised in f32 ([`Float::exp_rows`]), then scaled by the inverse of their sum.
fn softmax_in_place<T: Float>(x: &mut [T]) {
    let max = x
        .iter()
        .fold(T::from_f64(f64::NEG_INFINITY), |m, &v| m.max(v));
    for v in x.iter_mut() {
        *v -= max;
    }
    T::exp_rows(x);
    let inv = T::one() / x.iter().fold(T::zero(), |s, &v| s + v);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The adjoint of [`mix`]: `dq`, `dk`, `dv` from `dctx` (see the module docs).
#[allow(clippy::too_many_arguments)]
fn unmix<T: Float>(
    layer: &AttnLayer<T>,
    (n, t, d): (usize, usize, usize),
    [q, k, v]: [&[T]; 3],
    att: &[T],
    dctx: &[T],
    [dq, dk, dv]: [&mut Vec<T>; 3],
    d_att: &mut [T],
    scratch: &mut GemmScratch<T>,
) {
    let dh = d / layer.heads;
    let dims = (t, d, dh);
    let scale = T::one() / T::from_usize(dh).sqrt();
    for s in 0..n {
        for h in 0..layer.heads {
            let a = &att[(s * layer.heads + h) * t * t..][..t * t];
            let dc = head(dctx, s, h, dims);
            // dA = dctx v^T, then dS = A * (dA - rowsum(A * dA)) in place.
            let ds = &mut d_att[..t * t];
            let vh = head(v, s, h, dims);
            gemm(
                T::one(),
                dc,
                vh.t(),
                T::zero(),
                MatMut::rows(ds, t, t),
                scratch,
            );
            for (ds_row, a_row) in ds.chunks_exact_mut(t).zip(a.chunks_exact(t)) {
                let weighted = a_row
                    .iter()
                    .zip(ds_row.iter())
                    .fold(T::zero(), |acc, (&x, &y)| acc + x * y);
                for (x, &w) in ds_row.iter_mut().zip(a_row) {
                    *x = w * (*x - weighted);
                }
            }
            let (am, dsm) = (MatRef::rows(a, t, t), MatRef::rows(&*ds, t, t));
            gemm(
                T::one(),
                am.t(),
                dc,
                T::zero(),
                head_mut(dv, s, h, dims),
                scratch,
            );
            let (qh, kh) = (head(q, s, h, dims), head(k, s, h, dims));
            gemm(scale, dsm, kh, T::zero(), head_mut(dq, s, h, dims), scratch);
            gemm(
                scale,
                dsm.t(),
                qh,
                T::zero(),
                head_mut(dk, s, h, dims),
                scratch,
            );
        }
    }
}

/// A model with an attention view: every weight's gradient factored (`T` rows per sample),
/// the tables' dense; computed per chunk into reused buffers.
pub(crate) type AttnPass<'m, T> =
    ChunkedPass<'m, T, AttnNet<'m, T>, AttnChunk<T>, AttnRole, AttnRole>;

impl<T: Float> PassNet<T> for AttnNet<'_, T> {
    type Chunk = AttnChunk<T>;
    type Factored = AttnRole;
    type Dense = AttnRole;

    fn layout(&self, d: &Decomposition<T>) -> (Split, Vec<AttnRole>, Vec<AttnRole>) {
        let mut split = Split::default();
        let (mut factored, mut dense) = (Vec::new(), Vec::new());
        for (&param, cp) in d.param_index.iter().zip(&d.encoder) {
            let role = self.roles[param];
            match role {
                AttnRole::Projection(..) => {
                    split.push_factored(self.d, self.d, self.t);
                    factored.push(role);
                }
                AttnRole::Unembed => {
                    split.push_factored(self.vocab, self.d, self.t);
                    factored.push(role);
                }
                AttnRole::Tokens | AttnRole::Positions => {
                    split.push_dense(cp.numel());
                    dense.push(role);
                }
            }
        }
        (split, factored, dense)
    }

    /// Every token id of `data: [N, T]` is in `0..V`.
    fn check_data(&self, data: &Tensor<T>) -> Result<()> {
        let vocab = self.vocab as f64;
        if let Some(at) = data.data().iter().position(|v| {
            let v = v.to_f64();
            !(v >= 0.0 && v < vocab && v.fract() == 0.0)
        }) {
            let t = self.t.max(1);
            return Err(L3dError::Data(format!(
                "token id {} at row {}, position {} is not an integer in 0..{}",
                data.data()[at].to_f64(),
                at / t,
                at % t,
                self.vocab
            )));
        }
        Ok(())
    }

    fn new_chunk(&self, n: usize) -> AttnChunk<T> {
        AttnChunk::new(self, n)
    }

    /// Sequences of about [`CHUNK_POSITIONS`] positions in all: a batch of 32 sequences of
    /// 32 is four chunks, work for more than one thread.
    fn chunk_rows(&self) -> usize {
        (CHUNK_POSITIONS / self.t.max(1)).clamp(1, CHUNK_ROWS)
    }

    /// Per layer four projections and the two products of attention, forward; the unembedding;
    /// the backward about twice the forward.
    fn work_per_sample(&self) -> usize {
        let (t, d) = (self.t, self.d);
        let layer = 4 * t * d * d + 2 * t * t * d;
        3 * (self.layers.len() * layer + t * d * self.vocab)
    }

    fn width(&self) -> usize {
        self.t * self.vocab
    }

    fn gather(&self, c: &mut AttnChunk<T>, data: &Tensor<T>, rows: &[usize]) {
        c.gather(data, rows);
    }

    fn forward(&self, c: &mut AttnChunk<T>) {
        c.forward(self);
    }

    fn output<'c>(&self, c: &'c AttnChunk<T>) -> &'c [T] {
        c.output(self)
    }

    fn backward(&self, c: &mut AttnChunk<T>, r: &[T], divergence: Divergence) {
        c.backward(self, r, divergence);
    }

    fn outer_rows<'c>(&'c self, c: &'c AttnChunk<T>, role: &AttnRole) -> (&'c [T], &'c [T]) {
        let (rows, d) = (c.n * self.t, self.d);
        let x = |b, width| prefix(b, rows * width);
        match *role {
            AttnRole::Projection(l, 0) => (x(&c.dq[l], d), x(&c.h[l], d)),
            AttnRole::Projection(l, 1) => (x(&c.dk[l], d), x(&c.h[l], d)),
            AttnRole::Projection(l, 2) => (x(&c.dv[l], d), x(&c.h[l], d)),
            AttnRole::Projection(l, _) => (x(&c.dh[l + 1], d), x(&c.ctx[l], d)),
            _ => (x(&c.dy, self.vocab), x(&c.h[self.layers.len()], d)),
        }
    }

    fn dense_rows<'c>(&'c self, c: &'c AttnChunk<T>, role: &AttnRole) -> &'c [T] {
        let d = self.d;
        match *role {
            AttnRole::Tokens => &c.tok_grad[..c.n * self.vocab * d],
            _ => &c.pos_grad[..c.n * self.context() * d],
        }
    }
}
