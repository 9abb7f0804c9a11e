//! Batch top-k, the relative reconstruction loss from inner products only, and its gradient
//! with respect to `c`, `d` and `G` (derivation in `fast/mod.rs`).
//!
//! Shapes: `c, d, mask, ct, dc, dd: [B, n_v]`, `s: [B]`, `G, dG: [n_v, n_v]`.

use crate::error::{L3dError, Result};
use crate::par::fit;
use crate::step::MaskRule;
use crate::topk::batch_top_k_into;
use tensor::gemm::{gemm, GemmScratch, MatMut, MatRef};
use tensor::Float;

/// The batch's coefficients, inner products and the loss's gradients, reused from step to
/// step. Invariant: every vector holds `B x n_v` values (`s`: `B`; `g`, `dg`: `n_v x n_v`)
/// for the `B` of the last [`LossState::resize`].
#[derive(Debug, Clone, Default)]
pub(crate) struct LossState<T> {
    /// `c[i, v] = <V_in[v], g_i>`.
    pub c: Vec<T>,
    /// `d[i, v] = <V_out[v], g_i>`.
    pub d: Vec<T>,
    /// `s[i] = |g_i|^2`.
    pub s: Vec<T>,
    /// `G[v, w] = <V_out[v], V_out[w]>`.
    pub g: Vec<T>,
    pub mask: Vec<T>,
    order: Vec<u128>,
    /// `ct = mask * c`, and `ct G`.
    ct: Vec<T>,
    ct_g: Vec<T>,
    /// `dL/dc`, `dL/dd`, `dL/dG`.
    pub dc: Vec<T>,
    pub dd: Vec<T>,
    pub dg: Vec<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> LossState<T> {
    /// Sets the batch size (allocating only past the largest seen).
    pub fn resize(&mut self, b: usize, n_v: usize) {
        for v in [
            &mut self.c,
            &mut self.d,
            &mut self.mask,
            &mut self.ct,
            &mut self.ct_g,
            &mut self.dc,
            &mut self.dd,
        ] {
            fit(v, b * n_v);
        }
        fit(&mut self.s, b);
        fit(&mut self.g, n_v * n_v);
        fit(&mut self.dg, n_v * n_v);
    }

    /// The mask, then `(sum_i |g_i - g_hat_i|^2, S)`, and with `grads` the gradients `dc`, `dd`
    /// and `dg`. `None` when `S = 0` (every gradient of the batch is zero).
    ///
    /// `|g_i - g_hat_i|^2 = s_i - 2 ct_i . d_i + ct_i . (ct_i G)`; rounding can make it a little
    /// negative when the reconstruction is nearly exact, so the sum is clamped at 0.
    pub fn evaluate(
        &mut self,
        b: usize,
        n_v: usize,
        rule: MaskRule<T>,
        grads: bool,
    ) -> Result<Option<(T, T)>> {
        let sq_norm = self.s.iter().fold(T::zero(), |a, &x| a + x);
        if sq_norm == T::zero() {
            return Ok(None);
        }
        match rule {
            MaskRule::TopK { fraction, count } => {
                let count = count.of(fraction, b * n_v);
                batch_top_k_into(&self.c, count, &mut self.order, &mut self.mask);
            }
            MaskRule::Given(m) => {
                if m.shape() != [b, n_v] {
                    return Err(L3dError::Batch(format!(
                        "a given mask has shape {:?}; the batch needs [{b}, {n_v}]",
                        m.shape()
                    )));
                }
                self.mask.copy_from_slice(m.data());
            }
        }
        for ((ct, &m), &c) in self.ct.iter_mut().zip(&self.mask).zip(&self.c) {
            *ct = m * c;
        }
        // ct G: [B, n_v] @ [n_v, n_v].
        gemm(
            T::one(),
            MatRef::rows(&self.ct, b, n_v),
            MatRef::rows(&self.g, n_v, n_v),
            T::zero(),
            MatMut::rows(&mut self.ct_g, b, n_v),
            &mut self.gemm,
        );
        let two = T::from_f64(2.0);
        let mut sq_error = T::zero();
        for i in 0..b {
            let row = i * n_v..(i + 1) * n_v;
            let ct = &self.ct[row.clone()];
            let cross = super::encode::dot(ct, &self.d[row.clone()]);
            let quad = super::encode::dot(ct, &self.ct_g[row]);
            sq_error += self.s[i] - two * cross + quad;
        }
        if grads {
            self.gradients(b, n_v, sq_norm);
        }
        Ok(Some((sq_error.max(T::zero()), sq_norm)))
    }

    /// `dc = mask * 2 (ct G - d) / S`, `dd = -2 ct / S`, `dG = ct^T ct / S`.
    fn gradients(&mut self, b: usize, n_v: usize, sq_norm: T) {
        let scale = T::from_f64(2.0) / sq_norm;
        for ((((dc, &m), &cg), &d), (dd, &ct)) in self
            .dc
            .iter_mut()
            .zip(&self.mask)
            .zip(&self.ct_g)
            .zip(&self.d)
            .zip(self.dd.iter_mut().zip(&self.ct))
        {
            *dc = m * scale * (cg - d);
            *dd = -scale * ct;
        }
        let ct = MatRef::rows(&self.ct, b, n_v);
        gemm(
            T::one() / sq_norm,
            ct.t(),
            ct,
            T::zero(),
            MatMut::rows(&mut self.dg, n_v, n_v),
            &mut self.gemm,
        );
    }
}
