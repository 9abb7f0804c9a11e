//! What a decomposition of a toy found: for each subnetwork the input feature (or feature
//! group) it serves, how purely, how often it is active, and how selective an intervention
//! along it is; per toy the paper's own measures (TMS encoder cosines, the `tmcs` derived `A`).
//!
//! Definitions (the reproduction table uses exactly these):
//! - *Probe set*: `probe_samples` fresh inputs from the toy's distribution (seeded). A probe
//!   sample is *labelled* with feature `f` when `f` is its only active feature (for
//!   `high-rank`, its only active group).
//! - *Feature impact* `M[v, f]`: the mean over the samples labelled `f` of the sample impact
//!   `I(x_i, v)` (itself the mean of `|<V_in[v], g(x_i, x_j)>|` over `n_refs` references).
//! - *Top feature* of `v`: `argmax_f M[v, f]`; *purity*: `M[v, f*] / sum_f M[v, f]`, the share
//!   of `v`'s mean impact that falls on its top feature's samples.
//! - *Live*: in the top k of at least one held-out sample (`P_act > 0`).
//! - *Recovered* feature `f`: some live subnetwork has top feature `f` and purity >= 0.8.
//! - *Selectivity* of `v` at `delta`: mean output change `|f(x, W0 + s delta v) - f(x, W0)|`
//!   on the probe samples where `v` has the highest impact, divided by the same on all other
//!   probe samples, for the sign `s` (+1 or -1) that gives the larger ratio. Subnetworks have
//!   no preferred sign, and the two directions act differently: one turns the circuit off
//!   (the other samples barely move), the other turns it on for every sample (through its
//!   bias), so averaging them would measure neither.

use crate::models::ToyModel;
use l3d::intervene::{intervene, ratio_of_means, row_distances};
use l3d::measure::{evaluate, impacts, Evaluation};
use l3d::{Decomposition, L3dConfig, Model};
use serde::{Deserialize, Serialize};
use tensor::{rng, Tensor};

/// Purity a subnetwork needs for its top feature to count as recovered.
pub const PURITY_FOR_RECOVERY: f64 = 0.8;

/// Settings of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    pub probe_samples: usize,
    pub n_refs: usize,
    /// Held-out samples for the reconstruction error.
    pub eval_samples: usize,
    /// Step along a unit-norm subnetwork, as a multiple of `|W0|` (the norm of the decomposed
    /// parameters).
    pub delta_fraction: f64,
    pub seed: u64,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            probe_samples: 2000,
            n_refs: 8,
            eval_samples: 1000,
            delta_fraction: 0.1,
            seed: 1_000_003,
        }
    }
}

/// One subnetwork's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetworkSummary {
    pub index: usize,
    pub top_feature: usize,
    pub purity: f64,
    /// Activation fraction on the held-out evaluation.
    pub p_act: f64,
    pub live: bool,
    pub selectivity: Option<f64>,
    /// TMS-like toys: `|cos|` between the encoder's hidden-layer column of the top feature and
    /// the model's embedding of that feature.
    pub encoder_cosine: Option<f64>,
}

/// The `tmcs` measure: `A` derived from the subnetworks against the true `A`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedA {
    /// `[n, n]` row-major.
    pub derived: Vec<f32>,
    pub truth: Vec<f32>,
    pub n: usize,
    pub r_squared: f64,
    /// Subnetworks that serve at least one column.
    pub covered: usize,
}

/// Everything the analysis found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub evaluation: Evaluation,
    /// Final training epoch's reconstruction error, if a history was given.
    pub train_error: Option<f64>,
    pub subnetworks: Vec<SubnetworkSummary>,
    /// `M[v, f]`: `[n_v][n_features]` (features or groups).
    pub feature_impact: Vec<Vec<f64>>,
    pub n_features: usize,
    /// For each feature: the recovering subnetwork, if any.
    pub recovered: Vec<Option<usize>>,
    pub delta: f64,
    pub derived_a: Option<DerivedA>,
    pub labelled_samples: usize,
}

impl Analysis {
    pub fn recovered_count(&self) -> usize {
        self.recovered.iter().filter(|r| r.is_some()).count()
    }

    pub fn live_count(&self) -> usize {
        self.subnetworks.iter().filter(|s| s.live).count()
    }

    /// The smallest selectivity among recovering subnetworks (None if none recovered or one
    /// has no selectivity).
    pub fn min_recovered_selectivity(&self) -> Option<f64> {
        let values: Option<Vec<f64>> = self
            .recovered
            .iter()
            .flatten()
            .map(|&v| self.subnetworks[v].selectivity)
            .collect();
        values.and_then(|v| v.into_iter().reduce(f64::min))
    }
}

/// Size of a feature group: 5 for `high-rank`, 1 otherwise.
fn group_size(toy: &ToyModel) -> usize {
    match toy.data {
        crate::data::DataSpec::Sparse(ref s) => s.group.max(1),
        _ => 1,
    }
}

/// The label of each probe row: its only active group, if exactly one is active.
fn labels(x: &Tensor<f32>, group: usize) -> Vec<Option<usize>> {
    x.rows()
        .map(|row| {
            let mut active = row
                .chunks(group)
                .enumerate()
                .filter(|(_, g)| g.iter().any(|&v| v != 0.0))
                .map(|(i, _)| i);
            match (active.next(), active.next()) {
                (Some(f), None) => Some(f),
                _ => None,
            }
        })
        .collect()
}

/// Analyses a decomposition of a toy trained with `config`.
pub fn analyse(
    toy: &ToyModel,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    history: &[l3d::EpochStats],
    settings: &AnalysisConfig,
) -> l3d::Result<Analysis> {
    let model = &toy.model;
    let mut r = rng(settings.seed);
    let held_out = toy.sample_inputs(settings.eval_samples, &mut r);
    let evaluation = evaluate(model, d, config, &held_out, settings.seed)?;
    let probe = toy.sample_inputs(settings.probe_samples, &mut r);
    let impact = impacts(model, d, config, &probe, settings.n_refs, settings.seed)?;
    let group = group_size(toy);
    let n_features = model.input_dim() / group;
    let label = labels(&probe, group);
    let feature_impact = feature_impacts(&impact, &label, n_features, d.n_v);
    let delta = settings.delta_fraction * decomposed_norm(model, d);
    let selectivity = selectivities(model, d, &probe, &impact, delta)?;
    let subnetworks: Vec<SubnetworkSummary> = (0..d.n_v)
        .map(|v| {
            let row = &feature_impact[v];
            let top = argmax(row);
            let total: f64 = row.iter().sum();
            SubnetworkSummary {
                index: v,
                top_feature: top,
                purity: if total > 0.0 { row[top] / total } else { 0.0 },
                p_act: evaluation.p_act[v],
                live: evaluation.p_act[v] > 0.0,
                selectivity: selectivity[v],
                encoder_cosine: encoder_cosine(toy, d, v, top),
            }
        })
        .collect();
    let recovered = (0..n_features)
        .map(|f| {
            subnetworks
                .iter()
                .filter(|s| s.live && s.top_feature == f && s.purity >= PURITY_FOR_RECOVERY)
                .max_by(|a, b| a.purity.total_cmp(&b.purity))
                .map(|s| s.index)
        })
        .collect();
    Ok(Analysis {
        evaluation,
        train_error: history.last().map(|h| h.reconstruction_error),
        subnetworks,
        feature_impact,
        n_features,
        recovered,
        delta,
        derived_a: derived_a(toy, d),
        labelled_samples: label.iter().flatten().count(),
    })
}

/// `M[v, f]`: mean impact of `v` over the samples labelled `f` (0 if there are none).
fn feature_impacts(
    impact: &Tensor<f32>,
    label: &[Option<usize>],
    n_features: usize,
    n_v: usize,
) -> Vec<Vec<f64>> {
    let mut sum = vec![vec![0.0; n_features]; n_v];
    let mut count = vec![0usize; n_features];
    for (row, l) in impact.rows().zip(label) {
        if let Some(f) = *l {
            count[f] += 1;
            for v in 0..n_v {
                sum[v][f] += row[v] as f64;
            }
        }
    }
    for row in &mut sum {
        for (s, &c) in row.iter_mut().zip(&count) {
            *s /= c.max(1) as f64;
        }
    }
    sum
}

fn argmax(values: &[f64]) -> usize {
    (0..values.len())
        .reduce(|b, i| if values[i] > values[b] { i } else { b })
        .unwrap_or(0)
}

/// `|W0|` over the decomposed tensors.
pub fn decomposed_norm(model: &dyn Model<f32>, d: &Decomposition<f32>) -> f64 {
    let params = model.params();
    d.param_index
        .iter()
        .map(|&i| params[i].sum_squares() as f64)
        .sum::<f64>()
        .sqrt()
}

/// Selectivity of every subnetwork (see the module docs), from impacts `[N, n_v]`.
fn selectivities(
    model: &dyn Model<f32>,
    d: &Decomposition<f32>,
    probe: &Tensor<f32>,
    impact: &Tensor<f32>,
    delta: f64,
) -> l3d::Result<Vec<Option<f64>>> {
    let top = impact.argmax_axis(1);
    let base = model.evaluate_w0(probe)?;
    (0..d.n_v)
        .map(|v| {
            let mut best: Option<f64> = None;
            for sign in [1.0, -1.0] {
                let y = intervene(model, d, probe, &[(v, sign * delta)])?;
                let change = row_distances(&y, &base);
                if let Some(r) = ratio_of_means(&change, |i| top[i] == v) {
                    best = Some(best.map_or(r, |b| b.max(r)));
                }
            }
            Ok(best)
        })
        .collect()
}

/// Index of a parameter tensor among the decomposed ones.
fn decomposed(d: &Decomposition<f32>, name: &str) -> Option<usize> {
    d.names.iter().position(|n| n == name)
}

/// For TMS-like toys (`hidden.weight: [h, n]`): `|cos|` between column `f` of subnetwork
/// `v`'s encoder tensor and the model's embedding of feature `f` (column `f` of the weight).
fn encoder_cosine(toy: &ToyModel, d: &Decomposition<f32>, v: usize, f: usize) -> Option<f64> {
    if toy.data.n_features() != toy.model.input_dim() || group_size(toy) != 1 {
        return None;
    }
    let t = decomposed(d, "hidden.weight")?;
    let enc = d.encoder[t].dense_subnetwork(v);
    let w = toy.model.params()[d.param_index[t]];
    let col = |m: &Tensor<f32>| -> Vec<f64> {
        let n = m.shape()[1];
        m.data()
            .iter()
            .skip(f)
            .step_by(n)
            .map(|&x| x as f64)
            .collect()
    };
    Some(cosine(&col(&enc), &col(w)).abs())
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The `A` derived from the subnetworks of a toy with a linear target (`tmcs`): each column
/// `j` of `A` (input feature `j`) is traced through the subnetwork that carries most of
/// feature `j`'s input weight, `k(j) = argmax_k |W_in,k[:, j]|` over the decoder tensors
/// `W_in,k: [h, n]`, as the path `a_j = W_out,k W_in,k[:, j]` (`W_out,k: [n, h]`; quadratic in
/// `v_k`, so the sign of `v_k` drops out), scaled by its least-squares factor onto the true
/// column (subnetworks have no scale of their own). `r^2 = 1 - SS_res / SS_tot` over all
/// entries of `A`. `covered` counts the subnetworks that are some column's `k(j)`.
///
/// (The authors assign each subnetwork to one column, its `argmax_j |W_in,k[:, j]|`; a
/// subnetwork that carries two features then leaves a column with no subnetwork. Choosing per
/// column gives every column a path, through the best subnetwork for it.)
pub fn derived_a(toy: &ToyModel, d: &Decomposition<f32>) -> Option<DerivedA> {
    let crate::models::Target::Linear { a } = &toy.target else {
        return None;
    };
    if group_size(toy) != 1 {
        return None;
    }
    let (ti, to) = (
        decomposed(d, "hidden.weight")?,
        decomposed(d, "out.weight")?,
    );
    let n = a.len();
    let truth: Vec<f32> = a.iter().flatten().copied().collect();
    let w_in: Vec<Tensor<f32>> = (0..d.n_v)
        .map(|k| d.decoder[ti].dense_subnetwork(k))
        .collect();
    let w_out: Vec<Tensor<f32>> = (0..d.n_v)
        .map(|k| d.decoder[to].dense_subnetwork(k))
        .collect();
    let h = w_in[0].shape()[0];
    let column = |k: usize, j: usize| -> Vec<f64> {
        (0..h).map(|r| w_in[k].data()[r * n + j] as f64).collect()
    };
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut derived = vec![0.0f32; n * n];
    let mut used = vec![false; d.n_v];
    for j in 0..n {
        let k = (0..d.n_v)
            .max_by(|&p, &q| norm(&column(p, j)).total_cmp(&norm(&column(q, j))))
            .unwrap_or(0);
        used[k] = true;
        let col = column(k, j);
        let path: Vec<f64> = (0..n)
            .map(|i| {
                (0..h)
                    .map(|r| w_out[k].data()[i * h + r] as f64 * col[r])
                    .sum()
            })
            .collect();
        let pp: f64 = path.iter().map(|x| x * x).sum();
        let scale = if pp > 0.0 {
            path.iter()
                .enumerate()
                .map(|(i, p)| p * a[i][j] as f64)
                .sum::<f64>()
                / pp
        } else {
            0.0
        };
        for i in 0..n {
            derived[i * n + j] = (scale * path[i]) as f32;
        }
    }
    let mean = truth.iter().map(|&x| x as f64).sum::<f64>() / truth.len() as f64;
    let ss_tot: f64 = truth.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
    let ss_res: f64 = truth
        .iter()
        .zip(&derived)
        .map(|(&t, &p)| (t as f64 - p as f64).powi(2))
        .sum();
    Some(DerivedA {
        derived,
        truth,
        n,
        r_squared: 1.0 - ss_res / ss_tot.max(f64::MIN_POSITIVE),
        covered: used.iter().filter(|&&u| u).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_only_active_feature_or_group() {
        let x = Tensor::from_vec(
            &[3, 4],
            vec![0.0, 0.5, 0.0, 0.0, 0.1, 0.0, 0.2, 0.0, 0.0, 0.0, 0.3, 0.4],
        );
        assert_eq!(labels(&x, 1), vec![Some(1), None, None]);
        assert_eq!(labels(&x, 2), vec![Some(0), None, Some(1)]);
    }

    #[test]
    fn feature_impacts_are_means_over_labelled_samples() {
        let impact = Tensor::from_vec(&[3, 2], vec![1.0, 0.0, 3.0, 2.0, 9.0, 9.0]);
        let m = feature_impacts(&impact, &[Some(0), Some(0), None], 2, 2);
        assert_eq!(m, vec![vec![2.0, 0.0], vec![1.0, 0.0]]);
    }
}
