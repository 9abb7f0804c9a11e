//! Embedding: rows of a shared table looked up by integer ids.
//!
//! # Legend
//!
//! `table: [V, d]` (`V` the vocabulary size), `ids: [B, T]` or any shape, holding whole
//! numbers in `0..V`, output `[..ids shape, d]` with `out[b, t] = table[ids[b, t]]`.
//!
//! The ids arrive as a value on the tape like any batch input (a float tensor of whole
//! numbers; f32 holds every integer up to 2^24 exactly), so that [`crate::per_sample_grads`]
//! and its loop cut them into samples with the rest of the batch. They are checked and turned
//! into indices once, when the op is recorded, and take no gradient (the lookup is
//! piecewise constant in them).
//!
//! # vjp and per-sample rule
//!
//! `dL/dtable[v] = sum over the positions p with ids[p] = v of G[p]`: a scatter-add of the
//! output gradient's rows. Per sample, with batched ids, sample `b`'s gradient is
//! `onehot[b]^T G[b]`, `[V, d]`, a sum of `T` outer products; it is returned dense,
//! `[B, V, d]`, scattered directly. The factored form would hold `onehot: [B, T, V]` and
//! `G: [B, T, d]`, `T (V + d)` numbers per sample against `V d` dense, and its left factor is
//! mostly zeros: at the attention workload (`T = 32`, `V = 64`, `d = 16`) it is 2.5 times
//! the dense gradient, and every product with it (the decomposition's encode) would cost
//! `T V` instead of reading one row.

use super::arith::expect;
use crate::tape::{AutodiffError, Result, Tape, Var};
use tensor::{Float, Tensor};

impl<T: Float> Tape<T> {
    /// `out[p] = table[ids[p]]` for every position `p` of `ids`: `[..ids shape, d]` from a
    /// table `[V, d]`. An id that is not a whole number in `0..V` is an error naming the id,
    /// its position and `V`. A learned positional embedding is the same op with constant ids
    /// `0..T` (a shared `[T]`), or a `[T, d]` parameter added to `[B, T, d]`.
    ///
    /// vjp and per-sample rule: see the module docs.
    pub fn try_embedding(&mut self, table: Var, ids: Var) -> Result<Var> {
        let &[vocab, d] = self.shape(table) else {
            return Err(AutodiffError::Invalid {
                op: "embedding",
                msg: format!(
                    "the table must be [vocabulary, d], got shape {:?} (ids of shape {:?})",
                    self.shape(table),
                    self.shape(ids)
                ),
            });
        };
        let rows = indices(self.value(ids), vocab)?;
        let mut shape = self.shape(ids).to_vec();
        shape.push(d);
        let value = self.value(table).gather_rows(&rows).reshape(&shape);
        // A batched table's rows are samples: looking them up by id picks samples.
        self.note_batch_mixing(table, "embedding of a batched table");
        Ok(self.push(
            "embedding",
            value,
            &[table, ids],
            true,
            Box::new(move |c| {
                let g = c.grad_out.clone().reshape(&[rows.len(), d]);
                let table_grad = if c.per_sample(0) {
                    scatter_per_sample(&g, &rows, c.inputs[1].shape()[0], vocab)
                } else {
                    g.scatter_add_rows(&rows, vocab)
                };
                vec![c.needs(0).then(|| table_grad.into()), None]
            }),
        ))
    }

    pub fn embedding(&mut self, table: Var, ids: Var) -> Var {
        expect(self.try_embedding(table, ids))
    }
}

/// The ids as row indices, each checked to be a whole number in `0..vocab`.
fn indices<T: Float>(ids: &Tensor<T>, vocab: usize) -> Result<Vec<usize>> {
    ids.data()
        .iter()
        .enumerate()
        .map(|(flat, &id)| {
            let v = id.to_f64();
            if v >= 0.0 && v < vocab as f64 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(AutodiffError::Invalid {
                    op: "embedding",
                    msg: format!(
                        "id {id} at position {:?} (ids of shape {:?}) is not a row of the \
                         table: ids must be whole numbers in 0..{vocab} (vocabulary size {vocab})",
                        unravel(flat, ids.shape()),
                        ids.shape()
                    ),
                })
            }
        })
        .collect()
}

/// Sample `b`'s table gradient for each of `batch` samples, `[batch, vocab, d]`: the rows of
/// `g: [batch T, d]` added into their ids' rows, the `T` positions of sample `b` into block
/// `b` (row `b vocab + id`).
fn scatter_per_sample<T: Float>(
    g: &Tensor<T>,
    rows: &[usize],
    batch: usize,
    vocab: usize,
) -> Tensor<T> {
    let per_sample = rows.len() / batch.max(1);
    let shifted: Vec<usize> = rows
        .iter()
        .enumerate()
        .map(|(p, &id)| p / per_sample * vocab + id)
        .collect();
    let d = g.shape()[1];
    g.scatter_add_rows(&shifted, batch * vocab)
        .reshape(&[batch, vocab, d])
}

/// The multi-index of a flat row-major position.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &size) in shape.iter().enumerate().rev() {
        index[i] = flat % size;
        flat /= size;
    }
    index
}
