//! Interventions: the model's outputs with its parameters moved along subnetworks,
//! `f(x, W0 + sum_k delta_k v_k)`, where `v_k` is the decoder subnetwork `V_out[k]` (unit
//! norm over all decomposed tensors).

use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use nets::Model;
use serde::{Deserialize, Serialize};
use tensor::{Float, Tensor};

/// `W0 + sum_k delta_k v_k` as the model's full parameter list (tensors that are not
/// decomposed stay at `W0`). `moves` are `(k, delta_k)` pairs.
pub fn moved_params<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    moves: &[(usize, f64)],
) -> Result<Vec<Tensor<T>>> {
    moved_params_where(model, d, moves, &|_| true)
}

/// [`moved_params`] along only the parts of the subnetworks in the decomposed tensors `t`
/// (indices into the decomposition's tensors) for which `keep(t)` holds; the other tensors
/// stay at `W0` (to move along a subnetwork without its bias parts, say).
pub fn moved_params_where<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    moves: &[(usize, f64)],
    keep: &dyn Fn(usize) -> bool,
) -> Result<Vec<Tensor<T>>> {
    let mut params: Vec<Tensor<T>> = model.params().into_iter().cloned().collect();
    for &(k, delta) in moves {
        if k >= d.n_v {
            return Err(L3dError::Decomposition(format!(
                "subnetwork {k} does not exist (there are {})",
                d.n_v
            )));
        }
        for (t, (i, v)) in d.param_index.iter().zip(d.subnetwork(k)).enumerate() {
            if keep(t) {
                params[*i].add_assign(&v.mul_scalar(T::from_f64(delta)));
            }
        }
    }
    Ok(params)
}

/// Outputs `f(x, W0 + sum_k delta_k v_k)`: `[N, d_out]`.
pub fn intervene<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    x: &Tensor<T>,
    moves: &[(usize, f64)],
) -> Result<Tensor<T>> {
    let params = moved_params(model, d, moves)?;
    Ok(model.evaluate(&params, x)?)
}

/// Output changes along one subnetwork for a range of deltas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub subnetwork: usize,
    pub deltas: Vec<f64>,
    /// `change[a][i] = |f(x_i, W0 + deltas[a] v_k) - f(x_i, W0)|` (Euclidean norm over the
    /// outputs), one row per delta.
    pub change: Vec<Vec<f64>>,
}

/// Sweeps `delta` over `deltas` along subnetwork `k` for the samples `x: [N, d_in]`.
pub fn sweep<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    k: usize,
    x: &Tensor<T>,
    deltas: &[f64],
) -> Result<Sweep> {
    let base = model.evaluate_w0(x)?;
    let change = deltas
        .iter()
        .map(|&delta| {
            let y = intervene(model, d, x, &[(k, delta)])?;
            Ok(row_distances(&y, &base))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Sweep {
        subnetwork: k,
        deltas: deltas.to_vec(),
        change,
    })
}

/// Euclidean distance between corresponding rows of two `[N, m]` tensors.
pub fn row_distances<T: Float>(a: &Tensor<T>, b: &Tensor<T>) -> Vec<f64> {
    a.rows()
        .zip(b.rows())
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p.to_f64() - q.to_f64()).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// Selectivity of each subnetwork at `delta`: the mean output change on the samples where
/// that subnetwork has the highest impact (ties to the lower index), divided by the mean
/// change on all other samples. `None` where a subnetwork is no sample's top (or no other
/// sample exists, or the others do not change at all).
///
/// `impacts: [N, n_v]` as from [`crate::measure::impacts`].
pub fn selectivity<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    x: &Tensor<T>,
    impacts: &Tensor<T>,
    delta: f64,
) -> Result<Vec<Option<f64>>> {
    if impacts.shape() != [x.shape()[0], d.n_v] {
        return Err(L3dError::Decomposition(format!(
            "impacts have shape {:?}; expected [{}, {}]",
            impacts.shape(),
            x.shape()[0],
            d.n_v
        )));
    }
    let top = impacts.argmax_axis(1);
    let base = model.evaluate_w0(x)?;
    (0..d.n_v)
        .map(|k| {
            let y = intervene(model, d, x, &[(k, delta)])?;
            let change = row_distances(&y, &base);
            Ok(ratio_of_means(&change, |i| top[i] == k))
        })
        .collect()
}

/// `mean(values where chosen) / mean(values elsewhere)`, or `None` if either side is empty or
/// the denominator is 0.
pub fn ratio_of_means(values: &[f64], chosen: impl Fn(usize) -> bool) -> Option<f64> {
    let (mut a, mut na, mut b, mut nb) = (0.0, 0usize, 0.0, 0usize);
    for (i, &v) in values.iter().enumerate() {
        if chosen(i) {
            a += v;
            na += 1;
        } else {
            b += v;
            nb += 1;
        }
    }
    (na > 0 && nb > 0 && b > 0.0).then(|| (a / na as f64) / (b / nb as f64))
}
