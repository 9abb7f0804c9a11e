//! What a trained toy computes, feature by feature: a decomposition can only find the circuits
//! the model actually has, so every toy is checked before it is decomposed (WORKLOADS.md).
//!
//! # Legend
//!
//! - `R_j`: the check samples in which input feature `j` is active and no feature outside its
//!   group is (for ungrouped data: `j` alone). A feature is active when `x_j != 0`; the sparse
//!   generator never draws an exact 0 for an active feature.
//! - `S_j`: the outputs feature `j` feeds ([`Target::outputs_fed_by`]): output `j` for
//!   `t = x` and `t = x^2`, every output for `t = A x`.
//! - `e_j`: the model's error on feature `j`, the mean over `R_j` and `S_j` of `(y - t)^2`.
//!   For `t = x` this is the MSE of output `j` on the samples where only input `j` is active.
//! - `v_j`: the variance of the target over `R_j`, averaged over `S_j`: the error of the best
//!   constant output on those samples.
//! - `u_j = e_j / v_j`: the fraction of that variance the model leaves unexplained.
//! - For a classifier (`Target::Class`, class `j` for feature `j`): `e_j` is the fraction of
//!   `R_j` not classified `j`, and `v_j = 1 - 1/n` that of the best constant guess.
//!
//! Samples with other features active are left out of `e_j` on purpose: they measure the
//! interference between features, which the overall `mse` reports, not whether the model
//! carries feature `j` at all.
//!
//! # The criterion
//!
//! On `R_j` (ungrouped data) the target depends on `x_j` alone, so a model that does not carry
//! feature `j` outputs a constant there and leaves at least all of the variance unexplained:
//! `u_j >= 1`. A model represents feature `j` when `u_j < 0.5` ([`REPRESENTED_BELOW`]): it
//! explains at least half of what a constant cannot. Trained toys that represent a feature sit
//! far below that and a dropped feature at 1 or above (see notes/toys.md), so the choice does
//! not hinge on the exact threshold. With grouped data, the other features of `j`'s group are
//! active on `R_j` too, so the check is in effect one of whole groups (the circuits of that toy
//! are per group): dropping a whole group gives `u >= 1` for each of its features.

use super::Target;
use crate::data::{self, DataSpec};
use l3d::Model;
use nets::Sequential;
use serde::{Deserialize, Serialize};
use tensor::Tensor;

/// A feature is represented when the model leaves less than this fraction of its target
/// variance unexplained (see the module docs).
pub const REPRESENTED_BELOW: f64 = 0.5;

/// Number of fresh samples a model is checked on: each feature of the toys is then alone in
/// about 450 (`tms-parallel`) to 1,800 (`tms`) of them.
pub const CHECK_SAMPLES: usize = 10_000;

/// What a model does, feature by feature (see the module docs for the symbols).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCheck {
    /// Number of check samples.
    pub samples: usize,
    /// MSE over every sample and output.
    pub mse: f64,
    /// `e_j`, one per input feature.
    pub feature_errors: Vec<f64>,
    /// `v_j`, one per input feature.
    pub feature_variances: Vec<f64>,
    /// Number of samples in `R_j`, one per input feature.
    pub feature_samples: Vec<usize>,
    /// `u_j = e_j / v_j` (NaN for a feature never alone in the check samples).
    pub unexplained: Vec<f64>,
    /// Column norms of the first layer's weight: the size of each feature's embedding.
    pub embedding_norms: Vec<f64>,
    /// Row norms of the last layer's weight: the size of each output's read-out. With
    /// untied weights (every toy here), a feature can sit on a tiny embedding and a large
    /// read-out and still be reproduced exactly, so judge representation by `unexplained`,
    /// and scale by both norms.
    pub readout_norms: Vec<f64>,
    /// Whether every `u_j < REPRESENTED_BELOW`.
    pub represents_all: bool,
}

impl ModelCheck {
    /// The largest unexplained fraction (the worst-represented feature), NaN-aware: a NaN
    /// counts as the worst.
    pub fn worst_unexplained(&self) -> f64 {
        self.unexplained.iter().fold(0.0, |w, &u| {
            if u.is_nan() || w.is_nan() {
                f64::NAN
            } else {
                w.max(u)
            }
        })
    }
}

/// Checks `model` against `target` on [`CHECK_SAMPLES`] fresh samples of the sparse
/// distribution `data`, drawn from `seed`'s check stream.
///
/// Panics if `data` is not sparse (only sparse inputs have features that are on or off).
pub fn check_model(
    model: &Sequential<f32>,
    target: &Target,
    data: &DataSpec,
    seed: u64,
) -> ModelCheck {
    let DataSpec::Sparse(sparse) = data else {
        panic!("check_model: the check needs sparse inputs, got {data:?}");
    };
    let mut rng = super::seeded(seed, super::Stream::Check);
    let x = data::sample(data, CHECK_SAMPLES, &mut rng);
    check_on(model, target, sparse.group, &x)
}

/// Checks `model` against `target` on the samples `x: [N, n]` whose features are active in
/// groups of `group`.
fn check_on(model: &Sequential<f32>, target: &Target, group: usize, x: &Tensor<f32>) -> ModelCheck {
    let y = model
        .evaluate_w0(x)
        .expect("a toy's forward pass cannot fail on its own input width");
    let t = target.apply(x);
    let n = x.shape()[1];
    let (mut errors, mut variances, mut unexplained, mut counts) = (vec![], vec![], vec![], vec![]);
    for j in 0..n {
        let rows = alone(x, j, group);
        let outputs = target.outputs_fed_by(j);
        let (e, v) = match target {
            Target::Class => error_rate(&y, j, &rows, n),
            _ => error_and_variance(&y, &t, &rows, &outputs),
        };
        counts.push(rows.len());
        errors.push(e);
        variances.push(v);
        unexplained.push(e / v);
    }
    let represents_all = unexplained.iter().all(|&u| u < REPRESENTED_BELOW);
    let params = model.params();
    let first_weight = params[0];
    let last_weight = params
        .iter()
        .rev()
        .find(|p| p.ndim() == 2)
        .expect("a toy has a linear layer");
    ModelCheck {
        samples: x.shape()[0],
        mse: y.sub(&t).square().mean_all() as f64,
        feature_errors: errors,
        feature_variances: variances,
        feature_samples: counts,
        unexplained,
        embedding_norms: column_norms(first_weight),
        readout_norms: last_weight.rows().map(norm).collect(),
        represents_all,
    }
}

/// The rows `R_j` of `x`: feature `j` active, nothing active outside its group.
fn alone(x: &Tensor<f32>, j: usize, group: usize) -> Vec<usize> {
    let own = (j / group) * group..(j / group + 1) * group;
    (0..x.shape()[0])
        .filter(|&s| {
            let row = x.row(s);
            row[j] != 0.0
                && row
                    .iter()
                    .enumerate()
                    .all(|(i, &v)| v == 0.0 || own.contains(&i))
        })
        .collect()
}

/// `(e, v)` over the given rows and output columns: the mean of `(y - t)^2`, and the variance
/// of `t` down each column, averaged over the columns. NaN when there are no rows.
fn error_and_variance(
    y: &Tensor<f32>,
    t: &Tensor<f32>,
    rows: &[usize],
    outputs: &[usize],
) -> (f64, f64) {
    let count = rows.len() as f64;
    let (mut error, mut variance) = (0.0, 0.0);
    for &k in outputs {
        let column: Vec<f64> = rows.iter().map(|&s| t.row(s)[k] as f64).collect();
        let mean = column.iter().sum::<f64>() / count;
        variance += column.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / count;
        error += rows
            .iter()
            .map(|&s| (y.row(s)[k] as f64 - t.row(s)[k] as f64).powi(2))
            .sum::<f64>()
            / count;
    }
    let m = outputs.len() as f64;
    (error / m, variance / m)
}

/// For a classifier on the rows where class `j` is the only active feature: `(e, v)` with `e`
/// the fraction of those rows not classified `j` (argmax of the logits) and `v = 1 - 1/n`, the
/// error rate of the best constant guess among `n` classes. NaN when there are no rows.
fn error_rate(y: &Tensor<f32>, j: usize, rows: &[usize], n: usize) -> (f64, f64) {
    let wrong = rows
        .iter()
        .filter(|&&s| {
            let row = y.row(s);
            let best = (0..row.len())
                .reduce(|b, c| if row[c] > row[b] { c } else { b })
                .unwrap_or(0);
            best != j
        })
        .count();
    (wrong as f64 / rows.len() as f64, 1.0 - 1.0 / n as f64)
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// The norm of each column of a matrix `[h, n]`: `[n]`.
fn column_norms(w: &Tensor<f32>) -> Vec<f64> {
    let n = w.row_len();
    let mut sq = vec![0.0f64; n];
    for row in w.rows() {
        for (s, &v) in sq.iter_mut().zip(row) {
            *s += (v as f64).powi(2);
        }
    }
    sq.into_iter().map(f64::sqrt).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ToyKind;

    /// A tms model with given embeddings: `W_in` columns `e_j`, `W_out = W_in^T`, `b = 0`.
    fn tms_with(w_in: Vec<f32>) -> Sequential<f32> {
        let w = Tensor::from_vec(&[2, 5], w_in);
        let w_out = w.transpose();
        Sequential::new(
            ToyKind::Tms.architecture(),
            vec![w, w_out, Tensor::zeros(&[5])],
        )
        .unwrap()
    }

    #[test]
    fn a_dropped_feature_is_found() {
        // Features 0 and 1 on orthogonal unit embeddings, feature 2 on a zero embedding (its
        // output always 0), 3 and 4 on +-e_1 / 2 (alone, each comes out as a quarter of
        // itself, since W_out = W_in^T).
        let model = tms_with(vec![
            1.0, 0.0, 0.0, 0.0, 0.0, //
            0.0, 1.0, 0.0, 0.5, -0.5,
        ]);
        let check = check_model(&model, &Target::Identity, &ToyKind::Tms.data(), 0);
        assert!(!check.represents_all);
        assert_eq!(check.embedding_norms, [1.0, 1.0, 0.0, 0.5, 0.5]);
        assert_eq!(check.readout_norms, [1.0, 1.0, 0.0, 0.5, 0.5]);
        // Feature 2: output 0, so e = E[x^2] = 1/3 and v = Var x = 1/12 (x ~ U(0, 1)):
        // u = 4, up to sampling error.
        assert!(
            (check.unexplained[2] - 4.0).abs() < 0.4,
            "{:?}",
            check.unexplained
        );
        assert_eq!(check.unexplained[0], 0.0);
        assert_eq!(check.unexplained[1], 0.0);
        // Features 3 and 4 alone: error E[(x - x/4)^2] = 9/16 E[x^2] = 3/16, so
        // u = (3/16) / (1/12) = 2.25.
        for j in [3, 4] {
            assert!(
                (check.unexplained[j] - 2.25).abs() < 0.25,
                "{:?}",
                check.unexplained
            );
        }
        assert!(check.worst_unexplained() > 4.0 - 0.4);
    }

    #[test]
    fn an_exact_model_has_zero_error() {
        let eye: Vec<f32> = (0..25).map(|i| f32::from(u8::from(i % 6 == 0))).collect();
        let w_in = Tensor::from_vec(&[5, 5], eye.clone());
        let arch = crate::models::tms_like(5, 5);
        let model = Sequential::new(
            arch,
            vec![w_in, Tensor::from_vec(&[5, 5], eye), Tensor::zeros(&[5])],
        )
        .unwrap();
        let check = check_model(&model, &Target::Identity, &ToyKind::Tms.data(), 1);
        assert!(check.represents_all);
        assert_eq!(check.mse, 0.0);
        assert!(check.unexplained.iter().all(|&u| u == 0.0));
    }
}
