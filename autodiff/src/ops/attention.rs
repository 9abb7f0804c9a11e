//! Attention: the causal mask (a primitive) and multi-head scaled dot-product attention
//! (composed).
//!
//! # Legend
//!
//! `B` sequences of `T` positions with `d` features, `[B, T, d]`; `h` heads of
//! `dh = d / h` features each, head `i` using features `i dh..(i + 1) dh` (PyTorch's
//! `nn.MultiheadAttention` layout); scores `[B, h, T, T]`, query positions along the rows and
//! key positions along the columns.

use super::arith::expect;
use crate::tape::{AutodiffError, Result, Tape, Var};
use tensor::{Float, Tensor};

impl<T: Float> Tape<T> {
    /// The causal (autoregressive) mask of attention scores `[.., T, T]`: every entry above the
    /// diagonal (key `j` after query `i`, `j > i`) is set to `-inf`, so that a softmax over the
    /// last axis gives it weight exactly 0; the rest pass unchanged.
    ///
    /// vjp: the gradient passes where an entry was kept and is 0 where it was masked.
    pub fn try_causal_mask(&mut self, scores: Var) -> Result<Var> {
        let shape = self.shape(scores);
        let t = match shape {
            [.., a, b] if a == b => *a,
            _ => {
                return Err(AutodiffError::Invalid {
                    op: "causal_mask",
                    msg: format!("needs scores [.., T, T], got shape {shape:?}"),
                })
            }
        };
        let mut value = self.value(scores).clone();
        mask_above_diagonal(&mut value, t, T::from_f64(f64::NEG_INFINITY));
        Ok(self.push(
            "causal_mask",
            value,
            &[scores],
            false,
            Box::new(move |c| {
                let mut g = c.grad_out.clone();
                mask_above_diagonal(&mut g, t, T::zero());
                vec![Some(g.into())]
            }),
        ))
    }

    pub fn causal_mask(&mut self, scores: Var) -> Var {
        expect(self.try_causal_mask(scores))
    }

    /// Multi-head scaled dot-product self-attention of projected queries, keys and values
    /// `q, k, v: [B, T, d]`, `-> [B, T, d]` (`nn.MultiheadAttention` between its input and
    /// output projections). Per head `i`, with `q_i` the head's features of `q`:
    ///
    /// ```text
    /// A_i   = softmax(q_i k_i^T / sqrt(dh))   [B, T, T]   (causally masked if `causal`)
    /// out_i = A_i v_i                         [B, T, dh]
    /// ```
    ///
    /// and the heads' outputs side by side in head order. Composed of reshape, permute,
    /// scale, batched matmul, [`Tape::try_causal_mask`] and softmax, so it has no vjp of its
    /// own; its parameters live in the projections around it.
    pub fn try_attention(
        &mut self,
        q: Var,
        k: Var,
        v: Var,
        heads: usize,
        causal: bool,
    ) -> Result<Var> {
        let shape = self.shape(q).to_vec();
        let same = self.shape(k) == shape && self.shape(v) == shape;
        let (b, t, d) = match shape[..] {
            [b, t, d] if same && heads > 0 && d % heads == 0 => (b, t, d),
            _ => {
                return Err(AutodiffError::Invalid {
                    op: "attention",
                    msg: format!(
                        "needs q, k, v of one shape [B, T, d] with d a multiple of the {heads} \
                         heads, got {shape:?}, {:?} and {:?}",
                        self.shape(k),
                        self.shape(v)
                    ),
                })
            }
        };
        // The queries are scaled before the product, as PyTorch does: [B, T, d] rather than
        // [B, h, T, T] numbers.
        let dh = d / heads;
        let q = self.scale(q, T::one() / T::from_usize(dh).sqrt());
        let [q, k, v] = [q, k, v].map(|x| self.split_heads(x, heads));
        let scores = self.try_matmul_t(q, tensor::Transpose::No, k, tensor::Transpose::Yes)?;
        let scores = if causal {
            self.try_causal_mask(scores)?
        } else {
            scores
        };
        let weights = self.softmax(scores);
        let out = self.matmul(weights, v);
        let out = self.permute(out, &[0, 2, 1, 3]);
        self.try_reshape(out, &[b, t, d])
    }

    pub fn attention(&mut self, q: Var, k: Var, v: Var, heads: usize, causal: bool) -> Var {
        expect(self.try_attention(q, k, v, heads, causal))
    }

    /// `[B, T, d] -> [B, h, T, dh]`: head `i` takes features `i dh..(i + 1) dh`.
    fn split_heads(&mut self, x: Var, heads: usize) -> Var {
        let &[b, t, d] = self.shape(x) else {
            unreachable!("attention checked the shapes")
        };
        let x = self.reshape(x, &[b, t, heads, d / heads]);
        self.permute(x, &[0, 2, 1, 3])
    }
}

/// Sets every entry above the diagonal of each trailing `t x t` block to `fill`.
fn mask_above_diagonal<T: Float>(x: &mut Tensor<T>, t: usize, fill: T) {
    if t == 0 {
        return;
    }
    for block in x.data_mut().chunks_exact_mut(t * t) {
        for (i, row) in block.chunks_exact_mut(t).enumerate() {
            row[i + 1..].fill(fill);
        }
    }
}
