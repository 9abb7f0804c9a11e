//! What the hand-written passes (the MLP's, the CNN's, the attention transformer's) share: a
//! network computed per chunk of rows into reused buffers ([`PassNet`]), and the pass that
//! drives it ([`ChunkedPass`]): draw the reference partners, every chunk's gather and forward,
//! the references from the batch's outputs, every chunk's backward, chunks in parallel.

use super::layout::{Span, Split, CHUNK_ROWS};
use crate::config::{Divergence, Reference};
use crate::decomposition::Decomposition;
use crate::error::Result;
use crate::mlp;
use crate::pairs::draw_reference_partners;
use crate::par::{each, fit};
use rand::Rng;
use tensor::{Float, Tensor};

/// A network whose per-sample gradients are computed per chunk of rows into a
/// [`PassNet::Chunk`]'s buffers, and handed out by the role of each tensor of its split.
pub(crate) trait PassNet<T: Float>: Sync {
    /// One chunk's buffers.
    type Chunk: Send;
    /// What a tensor whose gradients arrive factored is to the network.
    type Factored;
    /// What a tensor whose gradients arrive dense is to the network.
    type Dense;

    /// How the tensors of `d` arrive, and the role of each factored and each dense tensor in
    /// the split's order.
    fn layout(&self, d: &Decomposition<T>) -> (Split, Vec<Self::Factored>, Vec<Self::Dense>);

    /// Checks the whole of `data` once, before any step (nothing to check by default).
    fn check_data(&self, _data: &Tensor<T>) -> Result<()> {
        Ok(())
    }

    /// Buffers for up to `n` rows (allocates; steps reuse them).
    fn new_chunk(&self, n: usize) -> Self::Chunk;

    /// Samples per chunk ([`CHUNK_ROWS`] by default). A property of the network, never of
    /// the number of threads, so that results do not depend on it.
    fn chunk_rows(&self) -> usize {
        CHUNK_ROWS
    }

    /// Multiply-adds of one sample's forward and backward, roughly, counted towards whether
    /// a step runs in parallel (0 by default: not counted).
    fn work_per_sample(&self) -> usize {
        0
    }

    /// The values of one sample's output.
    fn width(&self) -> usize;

    /// Copies `rows` of `data` into the chunk.
    fn gather(&self, c: &mut Self::Chunk, data: &Tensor<T>, rows: &[usize]);

    fn forward(&self, c: &mut Self::Chunk);

    /// The chunk's output rows of its last forward, `[n, width]`.
    fn output<'c>(&self, c: &'c Self::Chunk) -> &'c [T];

    /// The chunk's gradients from the reference rows `r: [n, width]`.
    fn backward(&self, c: &mut Self::Chunk, r: &[T], divergence: Divergence);

    /// The chunk's gradient of a factored tensor: `(left: [n M, p], right: [n M, q])`.
    fn outer_rows<'c>(&'c self, c: &'c Self::Chunk, role: &Self::Factored) -> (&'c [T], &'c [T]);

    /// The chunk's gradients of a dense tensor: `[n, numel]`.
    fn dense_rows<'c>(&'c self, c: &'c Self::Chunk, role: &Self::Dense) -> &'c [T];
}

/// A hand-written pass over the network `N`, computed per chunk into reused buffers.
///
/// Invariant: `factored[k]` is the role of the split's factored tensor `k`, `dense[k]` that of
/// its dense tensor `k`; `chunks[j]` holds chunk `j`'s buffers. `C`, `F` and `D` are `N`'s
/// chunk and roles, named here rather than projected from `N` so that the pass is covariant in
/// `'m` (as the step's context needs).
pub(crate) struct ChunkedPass<'m, T: Float, N, C, F, D> {
    net: N,
    data: &'m Tensor<T>,
    reference: Reference,
    divergence: Divergence,
    pub split: Split,
    factored: Vec<F>,
    dense: Vec<D>,
    chunks: Vec<C>,
    partners: Vec<usize>,
    /// The batch's outputs at `W0` and its reference outputs, `[B, width]` each.
    y0: Vec<T>,
    references: Vec<T>,
}

impl<'m, T, N, C, F, D> ChunkedPass<'m, T, N, C, F, D>
where
    T: Float,
    N: PassNet<T, Chunk = C, Factored = F, Dense = D>,
    C: Send,
{
    /// The pass over `net` for decompositions laid out like `d`, once `data` is checked.
    pub fn new(
        net: N,
        data: &'m Tensor<T>,
        d: &Decomposition<T>,
        (reference, divergence): (Reference, Divergence),
    ) -> Result<Self> {
        net.check_data(data)?;
        let (split, factored, dense) = net.layout(d);
        Ok(ChunkedPass {
            net,
            data,
            reference,
            divergence,
            split,
            factored,
            dense,
            chunks: Vec::new(),
            partners: Vec::new(),
            y0: Vec::new(),
            references: Vec::new(),
        })
    }

    /// The fewest samples a batch needs (2 when a reference is another sample's output).
    pub fn min_batch(&self) -> usize {
        self.reference.min_batch()
    }

    /// Samples per chunk.
    pub fn chunk_rows(&self) -> usize {
        self.net.chunk_rows()
    }

    /// Multiply-adds of the pass over `b` samples, roughly ([`PassNet::work_per_sample`]).
    pub fn work(&self, b: usize) -> usize {
        b * self.net.work_per_sample()
    }

    /// Buffers for batches of up to `n_chunks` chunks (allocates).
    pub fn reserve(&mut self, n_chunks: usize) {
        while self.chunks.len() < n_chunks {
            self.chunks.push(self.net.new_chunk(self.net.chunk_rows()));
        }
    }

    /// Every chunk's forward, the references from the batch's outputs, every chunk's
    /// backward (chunks in parallel, each owning its rows).
    pub fn compute(&mut self, rows: &[usize], rng: &mut impl Rng, n_chunks: usize, parallel: bool) {
        let b = rows.len();
        draw_reference_partners(self.reference, b, rng, &mut self.partners);
        let (net, data, per) = (&self.net, self.data, self.net.chunk_rows());
        let chunks = &mut self.chunks[..n_chunks];
        each(chunks, parallel, |k, c| {
            let span = Span::of(k, b, per);
            net.gather(c, data, &rows[span.start..span.start + span.len]);
            net.forward(c);
        });
        let width = net.width();
        fit(&mut self.y0, b * width);
        for (k, c) in chunks.iter().enumerate() {
            self.y0[Span::of(k, b, per).values(width)].copy_from_slice(net.output(c));
        }
        fill_references(
            self.reference,
            self.divergence,
            &self.y0,
            width,
            &self.partners,
            &mut self.references,
        );
        let (refs, divergence) = (&self.references, self.divergence);
        each(chunks, parallel, |k, c| {
            let r = &refs[Span::of(k, b, per).values(width)];
            net.backward(c, r, divergence);
        });
    }

    /// Factored tensor `k`'s per-sample gradient for the rows of `span`.
    pub fn outer_rows(&self, k: usize, span: Span) -> (&[T], &[T]) {
        self.net
            .outer_rows(&self.chunks[span.index], &self.factored[k])
    }

    /// Dense tensor `k`'s per-sample gradients for the rows of `span`.
    pub fn dense_rows(&self, k: usize, span: Span) -> &[T] {
        self.net
            .dense_rows(&self.chunks[span.index], &self.dense[k])
    }
}

/// The reference outputs of the batch `y0: [B, width]`, as
/// [`crate::pairs::reference_outputs`] computes them, into `out`.
pub(crate) fn fill_references<T: Float>(
    kind: Reference,
    divergence: Divergence,
    y0: &[T],
    width: usize,
    partners: &[usize],
    out: &mut Vec<T>,
) {
    let b = y0.len() / width;
    fit(out, b * width);
    match kind {
        Reference::RandomSample | Reference::RandomWithSelf => {
            for (dst, &p) in out.chunks_exact_mut(width).zip(partners) {
                dst.copy_from_slice(&y0[p * width..(p + 1) * width]);
            }
        }
        Reference::Zero => out.fill(T::zero()),
        Reference::BatchMean => {
            let (first, rest) = out.split_at_mut(width);
            first.fill(T::zero());
            for y in y0.chunks_exact(width) {
                if divergence == Divergence::Kl {
                    // The mean distribution: softmax rows summed, then ln of their mean.
                    let (max, sum) = mlp::exp_sum(y);
                    for (m, &v) in first.iter_mut().zip(y) {
                        *m += (v - max).exp() / sum;
                    }
                } else {
                    for (m, &v) in first.iter_mut().zip(y) {
                        *m += v;
                    }
                }
            }
            let inv = T::one() / T::from_usize(b);
            for m in first.iter_mut() {
                *m *= inv;
                if divergence == Divergence::Kl {
                    *m = m.ln();
                }
            }
            for dst in rest.chunks_exact_mut(width) {
                dst.copy_from_slice(first);
            }
        }
    }
}
