//! Which form each tensor's per-sample gradients take in the step: a pass hands a tensor out
//! factored, `g_i = sum_{m < M} left_im (x) right_im`, when it can, but with `M` rows per
//! sample the factored form is not always the cheaper one. Per sample, an encode (or its
//! backward) costs `M (p + q) C` multiply-adds factored, and `numel n_v` dense after forming
//! `g_i` once (`M p q`). [`Forms`] takes the pass's split and moves to the dense list every
//! factored tensor with `M > 1` for which
//!
//! ```text
//! M p q + 4 p q n_v < 4 M (p + q) C          (four encodes: c, d and their backward)
//! ```
//!
//! (small kernels, attention projections of a short sequence), forming their rows per chunk
//! into reused buffers. A dense layer's weight (`M = 1`) always stays factored.
//! [`FormRule::Factored`] keeps every factored tensor factored (to check that path).

use super::gradients::GradientPass;
use super::layout::{Factored, Form, Span, Split};
use crate::decomposition::Decomposition;
use crate::error::Result;
use crate::par::{each, fit};
use rand::Rng;
use tensor::gemm::{gemm, GemmScratch, MatMut, MatRef};
use tensor::Float;

/// Which tensors arriving factored are formed dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormRule {
    /// The cheaper form per tensor (see the module docs).
    #[default]
    Cheapest,
    /// Every tensor that arrives factored stays factored.
    Factored,
}

/// Where dense tensor `k` of the step's split comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DenseFrom {
    /// The pass's dense tensor of that index.
    Pass(usize),
    /// The pass's factored tensor of that index, formed into `formed[chunk][j]`.
    Formed { factored: usize, j: usize },
}

/// A gradient pass with the step's forms: its split, and the formed rows.
///
/// Invariant: `split` is the pass's split with the tensors of `DenseFrom::Formed` moved to the
/// dense list (tensor order kept); `factored_from[k]` is the pass's index of the step's
/// factored tensor `k`; `formed[c][j]` holds chunk `c`'s rows of formed tensor `j`.
pub(crate) struct Forms<'m, T: Float> {
    pub pass: GradientPass<'m, T>,
    rule: FormRule,
    n_v: usize,
    ranks: Vec<usize>,
    split: Split,
    factored_from: Vec<usize>,
    dense_from: Vec<DenseFrom>,
    formed: Vec<FormedChunk<T>>,
}

/// One chunk's formed rows, `bufs[j]: [rows, numel]` for formed tensor `j`, and the
/// products' scratch.
#[derive(Debug, Default)]
struct FormedChunk<T> {
    bufs: Vec<Vec<T>>,
    gemm: GemmScratch<T>,
}

impl<'m, T: Float> Forms<'m, T> {
    pub fn new(pass: GradientPass<'m, T>, d: &Decomposition<T>, rule: FormRule) -> Self {
        let mut forms = Forms {
            pass,
            rule,
            n_v: d.n_v,
            ranks: d.encoder.iter().map(|cp| cp.rank).collect(),
            split: Split::default(),
            factored_from: Vec::new(),
            dense_from: Vec::new(),
            formed: Vec::new(),
        };
        forms.follow_pass();
        forms
    }

    /// Whether factored tensor `f` (of rank `rank`) is formed dense under the rule.
    fn formed_dense(&self, f: &Factored, rank: usize) -> bool {
        let Factored { m, p, q, .. } = *f;
        let cols = self.n_v * rank;
        self.rule == FormRule::Cheapest
            && m > 1
            && m * p * q + 4 * p * q * self.n_v < 4 * m * (p + q) * cols
    }

    /// The step's split from the pass's (after it changed; allocates).
    fn follow_pass(&mut self) {
        let inner = self.pass.split().clone();
        let mut split = Split::default();
        self.factored_from.clear();
        self.dense_from.clear();
        let mut n_formed = 0;
        for &form in inner.order() {
            match form {
                Form::Factored(k) => {
                    let f = inner.factored()[k];
                    if self.formed_dense(&f, self.ranks[f.t]) {
                        split.push_dense(f.p * f.q);
                        self.dense_from.push(DenseFrom::Formed {
                            factored: k,
                            j: n_formed,
                        });
                        n_formed += 1;
                    } else {
                        split.push_factored(f.p, f.q, f.m);
                        self.factored_from.push(k);
                    }
                }
                Form::Dense(k) => {
                    split.push_dense(inner.dense()[k].numel);
                    self.dense_from.push(DenseFrom::Pass(k));
                }
            }
        }
        self.split = split;
        for chunk in &mut self.formed {
            chunk.bufs.resize_with(n_formed, Vec::new);
        }
    }

    /// Sets the rule (the split changes: the caller adopts it).
    pub fn set_rule(&mut self, rule: FormRule) {
        self.rule = rule;
        self.follow_pass();
    }

    pub fn split(&self) -> &Split {
        &self.split
    }

    pub fn min_batch(&self) -> usize {
        self.pass.min_batch()
    }

    /// Samples per chunk.
    pub fn chunk_rows(&self) -> usize {
        self.pass.chunk_rows()
    }

    /// Multiply-adds of the pass over `b` samples and of forming its formed tensors, roughly.
    pub fn work(&self, b: usize) -> usize {
        let inner = self.pass.split();
        let formed: usize = (self.dense_from.iter())
            .filter_map(|f| match *f {
                DenseFrom::Formed { factored, .. } => {
                    let f = &inner.factored()[factored];
                    Some(f.m * f.p * f.q)
                }
                DenseFrom::Pass(_) => None,
            })
            .sum();
        self.pass.work(b) + b * formed
    }

    pub fn uses_mlp(&self) -> bool {
        self.pass.uses_mlp()
    }

    pub fn hand_written(&self) -> bool {
        self.pass.hand_written()
    }

    /// Buffers for batches of up to `n_chunks` chunks (allocates).
    pub fn reserve(&mut self, n_chunks: usize) {
        self.pass.reserve(n_chunks);
        let n_formed = self
            .dense_from
            .iter()
            .filter(|f| matches!(f, DenseFrom::Formed { .. }))
            .count();
        while self.formed.len() < n_chunks {
            self.formed.push(FormedChunk {
                bufs: vec![Vec::new(); n_formed],
                gemm: GemmScratch::default(),
            });
        }
    }

    /// The pass's gradients of the batch `rows`, then the formed tensors' rows per chunk.
    /// Returns whether the split changed.
    pub fn compute(
        &mut self,
        rows: &[usize],
        rng: &mut impl Rng,
        n_chunks: usize,
        parallel: bool,
    ) -> Result<bool> {
        let changed = self.pass.compute(rows, rng, n_chunks, parallel)?;
        if changed {
            self.follow_pass();
        }
        let b = rows.len();
        let (pass, dense_from, per) = (&self.pass, &self.dense_from, self.chunk_rows());
        let inner = pass.split();
        each(&mut self.formed[..n_chunks], parallel, |c, chunk| {
            let span = Span::of(c, b, per);
            for from in dense_from {
                if let DenseFrom::Formed { factored, j } = *from {
                    let f = &inner.factored()[factored];
                    let (left, right) = pass.outer_rows(factored, span);
                    let out = &mut chunk.bufs[j];
                    form_rows(left, right, f, span.len, out, &mut chunk.gemm);
                }
            }
        });
        Ok(changed)
    }

    /// Factored tensor `k`'s rows for `span`: `(left: [n M, p], right: [n M, q])`.
    pub fn outer_rows(&self, k: usize, span: Span) -> (&[T], &[T]) {
        self.pass.outer_rows(self.factored_from[k], span)
    }

    /// Dense tensor `k`'s rows for `span`: `[n, numel]`.
    pub fn dense_rows(&self, k: usize, span: Span) -> &[T] {
        match self.dense_from[k] {
            DenseFrom::Pass(i) => self.pass.dense_rows(i, span),
            DenseFrom::Formed { j, .. } => {
                let numel = self.split.dense()[k].numel;
                &self.formed[span.index].bufs[j][..span.len * numel]
            }
        }
    }
}

/// `out[i] = sum_m left_im (x) right_im = left_i^T right_i: [p, q]` for the `n` samples
/// of a chunk, one product each.
fn form_rows<T: Float>(
    left: &[T],
    right: &[T],
    f: &Factored,
    n: usize,
    out: &mut Vec<T>,
    scratch: &mut GemmScratch<T>,
) {
    let Factored { m, p, q, .. } = *f;
    fit(out, n * p * q);
    for (i, g) in out.chunks_exact_mut(p * q).take(n).enumerate() {
        let l = MatRef::rows(&left[i * m * p..(i + 1) * m * p], m, p);
        let r = MatRef::rows(&right[i * m * q..(i + 1) * m * q], m, q);
        gemm(
            T::one(),
            l.t(),
            r,
            T::zero(),
            MatMut::rows(g, p, q),
            scratch,
        );
    }
}
