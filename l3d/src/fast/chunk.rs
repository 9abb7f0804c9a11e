//! One chunk of the batch ([`CHUNK_ROWS`](super::layout::CHUNK_ROWS) samples) and its encode:
//! `c[i, v] = <V_in[v], g_i>` and `s_i = |g_i|^2` with the encoder's factors, or
//! `d[i, v] = <V_out[v], g_i>` with the decoder's, for the chunk's rows, every tensor's
//! contribution added in tensor order.

use super::encode::{add_dense_sq_norms, add_outer_sq_norms, encode_dense, encode_outer};
use super::forms::Forms;
use super::layout::{Form, Side, Span};
use super::prepare::Prepared;
use crate::decomposition::Decomposition;
use crate::par::ScratchPool;
use tensor::gemm::GemmScratch;
use tensor::Float;

/// What the per-chunk work of a step reads: the decomposition, the batch's per-sample
/// gradients, the factors prepared for the step, and the threads' GEMM scratch.
pub(crate) struct Context<'a, T: Float> {
    pub d: &'a Decomposition<T>,
    pub pass: &'a Forms<'a, T>,
    pub prepared: &'a Prepared<T>,
    pub pool: &'a ScratchPool<T>,
}

/// The buffers of one chunk of the batch.
///
/// Invariant: `c`, `d` hold `CHUNK_ROWS x n_v` values and `s` holds `CHUNK_ROWS`, of which
/// the first `span.len` rows are this batch's; `products[k]` holds factored tensor `k`'s `P`
/// and `Q` (`[len M, C]`) of the encoder, then of the decoder.
pub(crate) struct Chunk<T: Float> {
    pub span: Span,
    products: Vec<[Vec<T>; 4]>,
    c: Vec<T>,
    d: Vec<T>,
    s: Vec<T>,
    /// One sample's gradient of a factored tensor, formed for its squared norm when that is
    /// cheaper than the sum over pairs of rows.
    outer: Vec<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> Chunk<T> {
    /// Buffers for `rows` rows, `n_v` subnetworks and `factored` factored tensors (allocates).
    pub fn new(rows: usize, n_v: usize, factored: usize) -> Self {
        Chunk {
            span: Span::default(),
            products: (0..factored).map(|_| Default::default()).collect(),
            c: vec![T::zero(); rows * n_v],
            d: vec![T::zero(); rows * n_v],
            s: vec![T::zero(); rows],
            outer: Vec::new(),
            gemm: GemmScratch::default(),
        }
    }

    /// Room for the products of `factored` factored tensors (after the split changed).
    pub fn fit_products(&mut self, factored: usize) {
        self.products.resize_with(factored, Default::default);
    }

    /// `(P, Q)` of factored tensor `k` for one side.
    pub fn products(&self, k: usize, side: Side) -> (&[T], &[T]) {
        let pq = &self.products[k];
        let i = 2 * side.index();
        (&pq[i], &pq[i + 1])
    }

    /// The chunk's rows of `c` (`[len, n_v]`) and `s` (`[len]`) after an encoder encode.
    pub fn coefficients(&self, n_v: usize) -> (&[T], &[T]) {
        (&self.c[..self.span.len * n_v], &self.s[..self.span.len])
    }

    /// The chunk's rows of `d` (`[len, n_v]`) after a decoder encode.
    pub fn decoder_products(&self, n_v: usize) -> &[T] {
        &self.d[..self.span.len * n_v]
    }

    /// `c` (and `s`) or `d` of the chunk: every tensor's contribution added in tensor order.
    pub fn encode(&mut self, ctx: &Context<T>, side: Side) {
        let (n_v, len, span) = (ctx.d.n_v, self.span.len, self.span);
        let split = ctx.pass.split();
        let out = match side {
            Side::Encoder => &mut self.c,
            Side::Decoder => &mut self.d,
        };
        let out = &mut out[..len * n_v];
        out.fill(T::zero());
        self.s[..len].fill(T::zero());
        for &form in split.order() {
            match form {
                Form::Factored(k) => {
                    let f = &split.factored()[k];
                    let (left, right) = ctx.pass.outer_rows(k, span);
                    let [p_enc, q_enc, p_dec, q_dec] = &mut self.products[k];
                    let (p, q) = match side {
                        Side::Encoder => (p_enc, q_enc),
                        Side::Decoder => (p_dec, q_dec),
                    };
                    let packed = [0, 1].map(|m| ctx.prepared.packed(side, k, m));
                    let cp = side.of(ctx.d, f.t);
                    let f_right = ctx.prepared.right(ctx.d, split, side, k);
                    let scratch = &mut self.gemm;
                    encode_outer(
                        cp, f_right, packed, left, right, len, f.m, p, q, out, scratch,
                    );
                    if side == Side::Encoder {
                        add_outer_sq_norms(left, right, f, len, &mut self.s, &mut self.outer);
                    }
                }
                Form::Dense(k) => {
                    let numel = split.dense()[k].numel;
                    let g = ctx.pass.dense_rows(k, span);
                    let v = ctx.prepared.dense_form(ctx.d, split, side, k);
                    let packed = ctx.prepared.dense_packed(side, k);
                    encode_dense((v, packed), g, len, numel, n_v, out, &mut self.gemm);
                    if side == Side::Encoder {
                        add_dense_sq_norms(g, numel, len, &mut self.s);
                    }
                }
            }
        }
    }
}
