//! One training step's forward and backward on the tape (the plain, reference path):
//! encode, batch top-k, decode, the relative reconstruction loss, and its gradient with respect
//! to every factor.
//!
//! Legend: `B` batch, `n_v` subnetworks, `R` rank, `K` modes of a tensor, `P` its element
//! count, `g_i` the per-sample gradient, `c[i, v] = <V_in[v], g_i>` the coefficients.

use crate::config::{L3dConfig, TopKCount};
use crate::cp::CpTensor;
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::topk::batch_top_k;
use autodiff::{Tape, Var};
use tensor::{Float, Tensor, Transpose};

/// Which coefficients survive: batch top-k at a fraction `k` of the `N = B n_v`
/// coefficients (keeping `count.of(k, N)` of them, see [`TopKCount`]), or a given 0/1 mask
/// `[B, n_v]` (to hold the mask fixed, as finite-difference checks need).
#[derive(Debug, Clone, Copy)]
pub enum MaskRule<'a, T: Float> {
    TopK { fraction: f64, count: TopKCount },
    Given(&'a Tensor<T>),
}

impl<T: Float> MaskRule<'_, T> {
    /// Batch top-k at fraction `k`, keeping `ceil(k N)`.
    pub fn top_k(k: f64) -> Self {
        MaskRule::TopK {
            fraction: k,
            count: TopKCount::Ceil,
        }
    }

    /// Batch top-k at fraction `k` with the count rule of `config`.
    pub fn top_k_for(config: &L3dConfig, k: f64) -> Self {
        MaskRule::TopK {
            fraction: k,
            count: config.top_k_count,
        }
    }
}

/// What one step computed.
///
/// `loss = sq_error / sq_norm` is the relative reconstruction error of the batch,
/// `sum_i |g_i - g_hat_i|^2 / sum_i |g_i|^2`; `factor_grads` follow the order of
/// [`Decomposition::factors`].
#[derive(Debug, Clone)]
pub struct StepResult<T: Float> {
    pub sq_error: T,
    pub sq_norm: T,
    /// `c: [B, n_v]` before top-k.
    pub coefficients: Tensor<T>,
    /// `[B, n_v]`, 1 where a coefficient was kept.
    pub mask: Tensor<T>,
    pub factor_grads: Vec<Tensor<T>>,
}

impl<T: Float> StepResult<T> {
    pub fn loss(&self) -> T {
        self.sq_error / self.sq_norm
    }
}

/// Records `c_t[i, v] = <V_in,t[v], g_i,t>` for one tensor without forming `V_in`: the last
/// mode is contracted by one matrix product, then each earlier mode by a broadcast product and
/// a sum, then the rank-one terms of each subnetwork are added. `g: [B, ..shape]` -> `[B, n_v]`.
pub fn record_encode<T: Float>(
    tape: &mut Tape<T>,
    cp: &CpTensor<T>,
    factors: &[Var],
    g: Var,
) -> autodiff::Result<Var> {
    let b = tape.shape(g)[0];
    let k = cp.shape.len();
    let cols = cp.columns();
    let lead: usize = cp.shape[..k - 1].iter().product();
    let g2 = tape.try_reshape(g, &[b * lead, cp.shape[k - 1]])?;
    let x = tape.try_matmul_t(g2, Transpose::No, factors[k - 1], Transpose::No)?;
    let mut shape: Vec<usize> = [&[b], &cp.shape[..k - 1], &[cols]].concat();
    let mut x = tape.try_reshape(x, &shape)?;
    for m in (0..k - 1).rev() {
        // [B, d_1..d_m, cols] * [d_m, cols], summed over d_m.
        let prod = tape.try_mul(x, factors[m])?;
        x = tape.try_sum_axis(prod, shape.len() - 2)?;
        shape.remove(shape.len() - 2);
    }
    let terms = tape.try_reshape(x, &[b, cp.n_v, cp.rank])?;
    tape.try_sum_axis(terms, 2)
}

/// Records every subnetwork's full tensor, flattened: `[P, n_v]` (the Khatri-Rao product of
/// the factors, summed over the rank-one terms).
pub fn record_dense<T: Float>(
    tape: &mut Tape<T>,
    cp: &CpTensor<T>,
    factors: &[Var],
) -> autodiff::Result<Var> {
    let cols = cp.columns();
    let mut d = factors[0];
    let mut shape = vec![cp.shape[0], cols];
    for (m, &f) in factors.iter().enumerate().skip(1) {
        // [d_1..d_m, 1, cols] * [d_{m+1}, cols] -> [d_1..d_{m+1}, cols].
        shape.insert(shape.len() - 1, 1);
        let r = tape.try_reshape(d, &shape)?;
        d = tape.try_mul(r, f)?;
        let at = shape.len() - 2;
        shape[at] = cp.shape[m];
    }
    let terms = tape.try_reshape(d, &[cp.numel(), cp.n_v, cp.rank])?;
    tape.try_sum_axis(terms, 2)
}

/// The coefficients `c: [B, n_v]` of per-sample gradients (plain values, no gradient).
pub fn encode<T: Float>(d: &Decomposition<T>, grads: &[Tensor<T>]) -> Result<Tensor<T>> {
    let mut tape = Tape::new();
    let c = record_encode_all(&mut tape, d, grads, false)?.0;
    Ok(tape.value(c).clone())
}

/// Records the encoder factors (trainable if `trainable`), the gradients (constants) and the
/// summed coefficients. Returns `(c, encoder factor vars, gradient vars)`.
#[allow(clippy::type_complexity)]
fn record_encode_all<T: Float>(
    tape: &mut Tape<T>,
    d: &Decomposition<T>,
    grads: &[Tensor<T>],
    trainable: bool,
) -> Result<(Var, Vec<Vec<Var>>, Vec<Var>)> {
    check_grads(d, grads)?;
    let leaf = |tape: &mut Tape<T>, t: &Tensor<T>| {
        if trainable {
            tape.param(t.clone())
        } else {
            tape.constant(t.clone())
        }
    };
    let enc: Vec<Vec<Var>> = d
        .encoder
        .iter()
        .map(|cp| cp.factors.iter().map(|f| leaf(tape, f)).collect())
        .collect();
    let g: Vec<Var> = grads.iter().map(|t| tape.constant(t.clone())).collect();
    let mut c: Option<Var> = None;
    for ((cp, f), &gt) in d.encoder.iter().zip(&enc).zip(&g) {
        let ct = record_encode(tape, cp, f, gt)?;
        c = Some(match c {
            None => ct,
            Some(prev) => tape.try_add(prev, ct)?,
        });
    }
    let c = c.ok_or_else(|| L3dError::Decomposition("the decomposition has no tensors".into()))?;
    Ok((c, enc, g))
}

fn check_grads<T: Float>(d: &Decomposition<T>, grads: &[Tensor<T>]) -> Result<()> {
    if grads.len() != d.encoder.len() {
        return Err(L3dError::Gradients(format!(
            "{} per-sample gradient tensors for a decomposition of {} tensors",
            grads.len(),
            d.encoder.len()
        )));
    }
    let b = grads[0].shape().first().copied().unwrap_or(0);
    for ((g, cp), name) in grads.iter().zip(&d.encoder).zip(&d.names) {
        if g.shape().first() != Some(&b) || g.shape()[1..] != cp.shape[..] {
            return Err(L3dError::Gradients(format!(
                "per-sample gradient of '{name}' has shape {:?}; expected [{b}, {:?}]",
                g.shape(),
                cp.shape
            )));
        }
    }
    if b == 0 {
        return Err(L3dError::Batch("the batch is empty".into()));
    }
    Ok(())
}

/// One step on the tape: `grads[t]: [B, ..shape_t]` are the per-sample gradients (dense).
pub fn tape_step<T: Float>(
    d: &Decomposition<T>,
    grads: &[Tensor<T>],
    rule: MaskRule<T>,
) -> Result<StepResult<T>> {
    let mut tape = Tape::new();
    let (c, enc, g) = record_encode_all(&mut tape, d, grads, true)?;
    let coefficients = tape.value(c).clone();
    let mask = match rule {
        MaskRule::TopK { fraction, count } => {
            batch_top_k(&coefficients, count.of(fraction, coefficients.numel())).mask
        }
        MaskRule::Given(m) => m.clone(),
    };
    let kept = tape.try_mask(c, &mask)?;
    let dec: Vec<Vec<Var>> = d
        .decoder
        .iter()
        .map(|cp| cp.factors.iter().map(|f| tape.param(f.clone())).collect())
        .collect();
    let b = coefficients.shape()[0];
    let mut sq_error: Option<Var> = None;
    for ((cp, f), &gt) in d.decoder.iter().zip(&dec).zip(&g) {
        // g_hat_i = sum_v c_kept[i, v] V_out[v]: [B, n_v] @ [P, n_v]^T -> [B, P].
        let dense = record_dense(&mut tape, cp, f)?;
        let g_hat = tape.try_matmul_t(kept, Transpose::No, dense, Transpose::Yes)?;
        let flat = tape.try_reshape(gt, &[b, cp.numel()])?;
        let diff = tape.try_sub(g_hat, flat)?;
        let sq = tape.square(diff);
        let s = tape.sum_all(sq);
        sq_error = Some(match sq_error {
            None => s,
            Some(prev) => tape.try_add(prev, s)?,
        });
    }
    let sq_error = sq_error.expect("check_grads ensures at least one tensor");
    let sq_norm = grads.iter().fold(T::zero(), |s, t| s + t.sum_squares());
    let loss = tape.scale(sq_error, T::one() / sq_norm);
    let vars: Vec<Var> = enc.iter().chain(&dec).flatten().copied().collect();
    let factor_grads = tape.grad(loss, &vars)?;
    Ok(StepResult {
        sq_error: tape.value(sq_error).item(),
        sq_norm,
        coefficients,
        mask,
        factor_grads,
    })
}
