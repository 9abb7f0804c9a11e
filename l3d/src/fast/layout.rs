//! What a fast step is laid out for: the decomposition's tensors ([`Layout`]), how each
//! tensor's per-sample gradients arrive ([`Split`]: factored and dense tensors in two typed
//! lists), and the chunks the batch is cut into ([`Span`], [`CHUNK_ROWS`]).

use crate::cp::CpTensor;
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use tensor::gemm::MatRef;
use tensor::{Float, Tensor};

/// Samples per chunk of the per-sample work (unless a pass asks for fewer: the attention
/// pass's samples are whole sequences).
pub const CHUNK_ROWS: usize = 32;

/// A factor `[d, C]` as a row-major matrix.
pub(crate) fn matrix<T: Float>(f: &Tensor<T>) -> MatRef<'_, T> {
    MatRef::rows(f.data(), f.shape()[0], f.shape()[1])
}

/// Which half of the decomposition: `V_in` or `V_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Encoder,
    Decoder,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Encoder, Side::Decoder];

    /// 0 for the encoder, 1 for the decoder (where per-side values are stored side by side).
    pub fn index(self) -> usize {
        match self {
            Side::Encoder => 0,
            Side::Decoder => 1,
        }
    }

    /// This side's CP tensor `t` of `d`.
    pub fn of<T: Float>(self, d: &Decomposition<T>, t: usize) -> &CpTensor<T> {
        match self {
            Side::Encoder => &d.encoder[t],
            Side::Decoder => &d.decoder[t],
        }
    }
}

/// The rows of the batch one chunk covers: chunk number `index`, rows `start..start + len`
/// (`start = index * rows` for chunks of `rows` samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub index: usize,
    pub start: usize,
    pub len: usize,
}

impl Span {
    /// Chunk `index` of a batch of `b` rows cut into chunks of `rows` (empty past the
    /// batch's end).
    pub fn of(index: usize, b: usize, rows: usize) -> Self {
        let start = (index * rows).min(b);
        Span {
            index,
            start,
            len: rows.min(b - start),
        }
    }

    /// `start..start + len` in units of `width` values per row.
    pub fn values(self, width: usize) -> std::ops::Range<usize> {
        self.start * width..(self.start + self.len) * width
    }
}

/// A decomposed tensor whose per-sample gradients arrive factored,
/// `g_i = sum_{m < M} left_im (x) right_im` for a tensor read as a `[p, q]` matrix (a dense
/// layer's weight: `left` the output gradients `delta`, `right` the inputs, `M` rows per
/// sample; a convolution's kernel `[out, in, kh, kw]` as `[out, in kh kw]`: `left` the output
/// gradients at each of the `M` output positions, `right` the im2col patches there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Factored {
    /// The tensor's index in the decomposition.
    pub t: usize,
    pub p: usize,
    pub q: usize,
    pub m: usize,
}

/// A decomposed tensor whose per-sample gradients arrive dense, `numel` values per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dense {
    /// The tensor's index in the decomposition.
    pub t: usize,
    pub numel: usize,
}

/// Where one tensor is in a [`Split`]: its index in the factored or in the dense list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    Factored(usize),
    Dense(usize),
}

/// How the decomposed tensors' per-sample gradients arrive: the factored ones and the dense
/// ones in two lists, each tensor's own buffers at its place in its list.
///
/// Invariant (kept by [`Split::push_factored`] and [`Split::push_dense`], the only ways in): `order[t]` is tensor `t`'s place,
/// `Form::Factored(k)` with `factored[k].t == t` or `Form::Dense(k)` with `dense[k].t == t`,
/// and the tensors were pushed in order, so sums over tensors run in tensor order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Split {
    order: Vec<Form>,
    factored: Vec<Factored>,
    dense: Vec<Dense>,
}

impl Split {
    /// Each tensor's place, in tensor order.
    pub fn order(&self) -> &[Form] {
        &self.order
    }

    pub fn factored(&self) -> &[Factored] {
        &self.factored
    }

    pub fn dense(&self) -> &[Dense] {
        &self.dense
    }

    /// Appends the next tensor, factored as `[p, q]` with `m` rows per sample.
    pub fn push_factored(&mut self, p: usize, q: usize, m: usize) {
        let t = self.order.len();
        self.order.push(Form::Factored(self.factored.len()));
        self.factored.push(Factored { t, p, q, m });
    }

    /// Appends the next tensor, dense with `numel` values per sample.
    pub fn push_dense(&mut self, numel: usize) {
        let t = self.order.len();
        self.order.push(Form::Dense(self.dense.len()));
        self.dense.push(Dense { t, numel });
    }
}

/// The decomposition a fast step was built for: `n_v`, and each tensor's parameter index,
/// shape and rank, checked against the decomposition of every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub n_v: usize,
    pub param_index: Vec<usize>,
    /// `(shape, rank)` of each decomposed tensor.
    pub tensors: Vec<(Vec<usize>, usize)>,
}

impl Layout {
    pub fn of<T: Float>(d: &Decomposition<T>) -> Self {
        Layout {
            n_v: d.n_v,
            param_index: d.param_index.clone(),
            tensors: d
                .encoder
                .iter()
                .map(|cp| (cp.shape.clone(), cp.rank))
                .collect(),
        }
    }

    /// An error unless `d` is laid out like this (its encoder and its decoder).
    pub fn check<T: Float>(&self, d: &Decomposition<T>) -> Result<()> {
        let fits = d.n_v == self.n_v
            && d.encoder.len() == self.tensors.len()
            && d.param_index == self.param_index
            && d.encoder.iter().zip(&d.decoder).zip(&self.tensors).all(
                |((e, dec), (shape, rank))| {
                    e.shape == *shape && dec.shape == *shape && e.rank == *rank && dec.rank == *rank
                },
            );
        if !fits {
            return Err(L3dError::Decomposition(
                "the decomposition differs from the one the fast step was built for".into(),
            ));
        }
        Ok(())
    }

    /// Multiply-adds of one step of `b` samples, roughly: the encodes and their backward, and
    /// the Grams. Per sample, a tensor whose gradients arrive factored (`split`) costs
    /// `M (p + q)` per column (`M` rows per sample), a dense one `numel` per subnetwork.
    pub fn work(&self, b: usize, split: &Split) -> usize {
        self.tensors
            .iter()
            .zip(split.order())
            .map(|((shape, rank), form)| {
                let cols = self.n_v * rank;
                let modes: usize = shape.iter().sum();
                let numel: usize = shape.iter().product();
                let per_sample = match *form {
                    Form::Factored(k) => {
                        let f = &split.factored()[k];
                        cols * f.m * (f.p + f.q)
                    }
                    Form::Dense(_) => self.n_v * numel,
                };
                4 * b * per_sample + 2 * cols * cols * modes
            })
            .sum()
    }
}
