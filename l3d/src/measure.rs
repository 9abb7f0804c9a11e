//! Measuring a trained decomposition: reconstruction error on held-out pairs, and impacts.
//!
//! Impact of subnetwork `v_k` on a pair: `I(x_i, x_j, v_k) = |<V_in[k], g(x_i, x_j)>|`; on a
//! sample: `I(x_i, v_k)`, the mean of `I(x_i, x_j, v_k)` over `n` references `x_j`.

use crate::config::L3dConfig;
use crate::decomposition::Decomposition;
use crate::engine::{engine, Sums};
use crate::error::{L3dError, Result};
use crate::pairs::{check_data, draw_partners, per_sample_gradients_at, Source};
use crate::step::{encode, MaskRule};
use nets::Model;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tensor::{Float, Tensor};

/// Stream of the seed's generator used for evaluation pairs (training uses streams 0, 1, ...
/// one per epoch; initialisation uses the last stream).
const EVAL_STREAM: u64 = u64::MAX - 1;

/// Samples per call of [`pair_impacts`] when [`impacts`] measures a whole dataset: the call
/// holds every sample's dense per-sample gradient, so this bounds its memory. (Not the fast
/// path's `fast::CHUNK_ROWS`, which is a unit of parallel work sized for the caches.)
const IMPACT_ROWS: usize = 256;

/// Reconstruction quality on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// `sum |g - g_hat|^2 / sum |g|^2` over all pairs, with batch top-k at `config.top_k`.
    pub reconstruction_error: f64,
    /// Fraction of samples in which each subnetwork was in the top k.
    pub p_act: Vec<f64>,
    pub dead: usize,
}

/// Dense per-sample gradients of the pairs `(x_i, reference_i)`.
fn dense_grads<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    config: &L3dConfig,
    x: &Tensor<T>,
    reference: &Tensor<T>,
) -> Result<Vec<Tensor<T>>> {
    Ok(per_sample_gradients_at(
        model,
        &d.param_index,
        x,
        reference,
        config.divergence,
        &config.positions,
    )?
    .into_iter()
    .map(|g| g.into_dense())
    .collect())
}

/// Relative reconstruction error on `data`, in batches of `config.batch_size` with references
/// drawn as in training (from the seed's evaluation stream `seed`), on `config.path`.
pub fn evaluate<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    config: &L3dConfig,
    data: &Tensor<T>,
    seed: u64,
) -> Result<Evaluation> {
    check_data(model, data)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(EVAL_STREAM);
    let mut engine = engine(Source::Model { model, data }, d, config)?;
    let mut sums = Sums::new(d.n_v);
    let rows: Vec<usize> = (0..data.shape()[0]).collect();
    let rule = MaskRule::top_k_for(config, config.top_k);
    for chunk in rows.chunks(config.batch_size) {
        if chunk.len() < config.reference.min_batch() {
            continue;
        }
        // A batch whose gradients are all zero adds nothing to either sum.
        match engine.step(d, chunk, &mut rng, rule, false)? {
            Some(out) => sums.add(&out),
            None => sums.skip(chunk.len()),
        }
    }
    let samples = sums.samples + sums.skipped_samples;
    if samples == 0 {
        return Err(L3dError::Data("evaluation needs at least 2 samples".into()));
    }
    let p_act = sums.p_act(samples);
    Ok(Evaluation {
        reconstruction_error: sums.reconstruction_error(),
        dead: p_act.iter().filter(|&&p| p == 0.0).count(),
        p_act,
    })
}

/// `I(x_i, x_j, v)` for pairs given row by row: `x_i, x_j: [B, d_in]` -> `[B, n_v]`.
pub fn pair_impacts<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    config: &L3dConfig,
    xi: &Tensor<T>,
    xj: &Tensor<T>,
) -> Result<Tensor<T>> {
    if xi.shape() != xj.shape() {
        return Err(L3dError::Data(format!(
            "pair impacts need equally many samples and references: {:?} and {:?}",
            xi.shape(),
            xj.shape()
        )));
    }
    let r = model.evaluate_w0(xj)?;
    let grads = dense_grads(model, d, config, xi, &r)?;
    Ok(encode(d, &grads)?.abs())
}

/// The subnetwork-by-sample impact matrix `I(x_i, v)`: `[N, n_v]`, each entry the mean of
/// `n_refs` pair impacts with references drawn uniformly from the other rows of `data`
/// (seeded by `seed`).
pub fn impacts<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    config: &L3dConfig,
    data: &Tensor<T>,
    n_refs: usize,
    seed: u64,
) -> Result<Tensor<T>> {
    check_data(model, data)?;
    let n = data.shape()[0];
    if n < 2 || n_refs == 0 {
        return Err(L3dError::Data(format!(
            "impacts need at least 2 samples and 1 reference (got {n} samples, {n_refs} references)"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(EVAL_STREAM - 1);
    let mut total = Tensor::zeros(&[n, d.n_v]);
    for _ in 0..n_refs {
        let p = draw_partners(n, &mut rng);
        let rows: Vec<usize> = (0..n).collect();
        let mut parts = Vec::new();
        for chunk in rows.chunks(IMPACT_ROWS) {
            let xi = data.gather_rows(chunk);
            let xj = data.gather_rows(&chunk.iter().map(|&i| p[i]).collect::<Vec<_>>());
            parts.push(pair_impacts(model, d, config, &xi, &xj)?);
        }
        let refs: Vec<&Tensor<T>> = parts.iter().collect();
        total.add_assign(&Tensor::concat(&refs, 0));
    }
    Ok(total.mul_scalar(T::one() / T::from_usize(n_refs)))
}
