//! What a decomposition of a toy found, measured the way the paper's claims are stated: which
//! input feature (or feature group) each subnetwork is built on, whether moving along it acts
//! on that feature's samples, and the paper's own measures (TMS encoder cosines, the `tmcs`
//! derived `A`). The reproduction table uses exactly these definitions.
//!
//! # Definitions
//!
//! - *Probe set*: `probe_samples` fresh inputs from the toy's distribution (seeded). A probe
//!   sample is *labelled* with feature `f` when `f` is its only active feature (for
//!   `high-rank`, its only active group).
//! - *Live*: in the top k of at least one of the `eval_samples` held-out samples
//!   (`P_act > 0`). The held-out reconstruction error is measured on the same samples.
//! - *Input structure* of `v`: the share of the squared norm of its decoder's input-layer
//!   tensor (`W_in,v: [h, n]`, the first layer's weight) on each input column, summed per
//!   group. `v` is *built on* feature `f` when `f`'s share is at least
//!   [`STRUCTURE_SHARE`] (0.8).
//! - *Recovered by structure*: feature `f` has a live subnetwork built on it. The count of
//!   features recovered is the count of distinct features covered.
//! - *The feature of* `v`: the one it is built on; if none, its top feature by impact.
//! - *Feature impact* `M[v, f]`: the mean over the samples labelled `f` of the sample impact
//!   `I(x_i, v)` (itself the mean of `|<V_in[v], g(x_i, x_j)>|` over `n_refs` references).
//!   *Top feature* `argmax_f M[v, f]`; *purity* `M[v, f*] / sum_f M[v, f]` (a diagnostic).
//! - *Interventions* move the parameters to `W0 + s delta v` (`v` unit norm, `delta` =
//!   `delta_fraction |W0|` over the decomposed tensors) for both signs `s`; subnetworks have no
//!   preferred sign and the two directions act differently (one turns the circuit off, the
//!   other on for every sample through its bias), so each measure takes the sign that gives it
//!   the larger value.
//!   - *Effect share*: of the total output change `sum_i |f(x_i, W) - f(x_i, W0)|` over the
//!     labelled probe samples, the share on the samples of `v`'s feature. *Recovered by
//!     intervention*: a live subnetwork whose feature is `f` has effect share at least
//!     [`EFFECT_SHARE`] (0.5). A subnetwork acting on every sample alike scores about
//!     `1 / n_features`.
//!   - *Sample selectivity*: the mean output change on the probe samples where `v` has the
//!     highest impact, over the mean change on all others (a diagnostic).
//!   - *Channel selectivity* (toys whose feature `f` feeds output `f` alone: `tms`,
//!     `tms-parallel`, `squared`): the mean `|change|` of output `f` over the probe samples,
//!     over the mean `|change|` of the other outputs. The authors' `squared` figure shows
//!     subnetworks specific to output channels (about 9x), not to samples.
//! - *Encoder cosine* (`tms`): `|cos|` between the encoder's `hidden.weight` column of `v`'s
//!   feature and the model's embedding of that feature (the paper: parallel).
//! - *Derived `A`* (`tmcs`): see [`derived_a`].

use crate::data::DataSpec;
use crate::models::{Target, ToyModel};
use l3d::intervene::{intervene, ratio_of_means, row_distances};
use l3d::measure::{evaluate, impacts, Evaluation};
use l3d::{Decomposition, L3dConfig, Model};
use serde::{Deserialize, Serialize};
use tensor::{rng, Tensor};

/// Share of a subnetwork's input-layer norm^2 on one feature for it to count as built on it.
pub const STRUCTURE_SHARE: f64 = 0.8;

/// Share of a subnetwork's effect on its feature's samples for recovery by intervention.
pub const EFFECT_SHARE: f64 = 0.5;

/// Settings of the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    pub probe_samples: usize,
    pub n_refs: usize,
    /// Held-out samples for the reconstruction error and `P_act` (10,000: on 1,000 the error
    /// varies by about 20% from one draw to the next).
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
            eval_samples: 10_000,
            delta_fraction: 0.1,
            seed: 1_000_003,
        }
    }
}

/// One subnetwork's summary (see the module docs for every measure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetworkSummary {
    pub index: usize,
    /// Activation fraction on the held-out samples.
    pub p_act: f64,
    pub live: bool,
    /// The feature with the largest share of the input-layer decoder's norm^2, and that share.
    pub structure_feature: usize,
    pub structure_share: f64,
    /// Whether `structure_share >= STRUCTURE_SHARE`.
    pub built_on_one: bool,
    pub top_feature: usize,
    pub purity: f64,
    /// The subnetwork's feature: `structure_feature` if built on one, else `top_feature`.
    pub feature: usize,
    pub effect_share: Option<f64>,
    pub sample_selectivity: Option<f64>,
    pub channel_selectivity: Option<f64>,
    pub encoder_cosine: Option<f64>,
}

/// The `tmcs` measure: `A` derived from the subnetworks against the true `A` (see
/// [`derived_a`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedA {
    /// `[n, n]` row-major, one column per input, each scaled by least squares onto the truth.
    pub derived: Vec<f32>,
    pub truth: Vec<f32>,
    pub n: usize,
    /// `r^2 = 1 - SS_res / SS_tot` of `derived` against `truth` over all entries.
    pub r_squared: f64,
    /// Subnetworks that serve at least one column in `derived`.
    pub covered: usize,
    /// Pearson's `r` over all entries, computed as the authors did: one column per live
    /// subnetwork, unscaled.
    pub r_authors: f64,
    /// Columns no subnetwork chose in the authors' construction (left at 0).
    pub uncovered_authors: usize,
}

/// Everything the analysis found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub evaluation: Evaluation,
    /// How many held-out samples `evaluation` is over.
    pub held_out_samples: usize,
    /// Final training epoch's reconstruction error, if a history was given.
    pub train_error: Option<f64>,
    pub subnetworks: Vec<SubnetworkSummary>,
    /// `M[v, f]`: `[n_v][n_features]` (features or groups).
    pub feature_impact: Vec<Vec<f64>>,
    pub n_features: usize,
    /// For each feature: the live subnetwork built on it with the largest share, if any.
    pub recovered_by_structure: Vec<Option<usize>>,
    /// For each feature: the live subnetwork whose feature it is with the largest effect
    /// share, if that share is at least `EFFECT_SHARE`.
    pub recovered_by_intervention: Vec<Option<usize>>,
    /// For each feature: a live subnetwork with it as top feature and purity >= 0.8 (the
    /// earlier measure, kept as a diagnostic).
    pub recovered_by_purity: Vec<Option<usize>>,
    pub delta: f64,
    pub derived_a: Option<DerivedA>,
    pub labelled_samples: usize,
}

fn count(recovered: &[Option<usize>]) -> usize {
    recovered.iter().filter(|r| r.is_some()).count()
}

impl Analysis {
    pub fn structure_count(&self) -> usize {
        count(&self.recovered_by_structure)
    }

    pub fn intervention_count(&self) -> usize {
        count(&self.recovered_by_intervention)
    }

    pub fn purity_count(&self) -> usize {
        count(&self.recovered_by_purity)
    }

    pub fn live_count(&self) -> usize {
        self.subnetworks.iter().filter(|s| s.live).count()
    }

    /// The smallest encoder cosine among the subnetworks that recover a feature by structure
    /// (None if there is none).
    pub fn min_encoder_cosine(&self) -> Option<f64> {
        self.structure_recoverers()
            .filter_map(|s| s.encoder_cosine)
            .reduce(f64::min)
    }

    /// The median over the live subnetworks built on one feature (None if none is).
    pub fn median_over_recoverers(
        &self,
        value: impl Fn(&SubnetworkSummary) -> Option<f64>,
    ) -> Option<f64> {
        let values: Vec<f64> = self.structure_recoverers().filter_map(value).collect();
        median(&values)
    }

    fn structure_recoverers(&self) -> impl Iterator<Item = &SubnetworkSummary> {
        self.recovered_by_structure
            .iter()
            .flatten()
            .map(|&v| &self.subnetworks[v])
    }
}

/// The median of `values` (the mean of the middle two for an even count); None if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(0.5 * (v[n / 2 - 1] + v[n / 2])),
    }
}

/// Size of a feature group: 5 for `high-rank`, 1 otherwise.
fn group_size(data: &DataSpec) -> usize {
    match data {
        DataSpec::Sparse(s) => s.group.max(1),
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
    let group = group_size(&toy.data);
    let n_features = model.input_dim() / group;
    let label = labels(&probe, group);
    let feature_impact = feature_impacts(&impact, &label, n_features, d.n_v);
    let delta = settings.delta_fraction * decomposed_norm(model, d);
    let probes = Probes {
        x: &probe,
        base: model.evaluate_w0(&probe)?,
        top: impact.argmax_axis(1),
        label: &label,
        channel_specific: matches!(toy.target, Target::Identity | Target::Square) && group == 1,
    };
    let input_tensor = decomposed(d, &model.param_names()[0]);
    let mut subnetworks = Vec::with_capacity(d.n_v);
    for (v, row) in feature_impact.iter().enumerate() {
        let shares = match input_tensor {
            Some(t) => column_shares(&d.decoder[t].dense_subnetwork(v), group),
            None => vec![0.0; n_features],
        };
        let (structure_feature, top_feature) = (argmax(&shares), argmax(row));
        let total: f64 = row.iter().sum();
        let built_on_one = shares[structure_feature] >= STRUCTURE_SHARE;
        let feature = if built_on_one {
            structure_feature
        } else {
            top_feature
        };
        let moves = probes.interventions(model, d, v, delta, feature)?;
        subnetworks.push(SubnetworkSummary {
            index: v,
            p_act: evaluation.p_act[v],
            live: evaluation.p_act[v] > 0.0,
            structure_feature,
            structure_share: shares[structure_feature],
            built_on_one,
            top_feature,
            purity: if total > 0.0 {
                row[top_feature] / total
            } else {
                0.0
            },
            feature,
            effect_share: moves.effect_share,
            sample_selectivity: moves.sample_selectivity,
            channel_selectivity: moves.channel_selectivity,
            encoder_cosine: encoder_cosine(toy, d, v, feature),
        });
    }
    let best = |keep: &dyn Fn(&SubnetworkSummary, usize) -> bool,
                by: &dyn Fn(&SubnetworkSummary) -> f64| {
        (0..n_features)
            .map(|f| {
                subnetworks
                    .iter()
                    .filter(|s| s.live && keep(s, f))
                    .max_by(|a, b| by(a).total_cmp(&by(b)))
                    .map(|s| s.index)
            })
            .collect::<Vec<_>>()
    };
    let live: Vec<bool> = subnetworks.iter().map(|s| s.live).collect();
    let recovered_by_structure = best(&|s, f| s.built_on_one && s.structure_feature == f, &|s| {
        s.structure_share
    });
    let recovered_by_intervention = best(
        &|s, f| s.feature == f && s.effect_share.is_some_and(|e| e >= EFFECT_SHARE),
        &|s| s.effect_share.unwrap_or(0.0),
    );
    let recovered_by_purity = best(&|s, f| s.top_feature == f && s.purity >= 0.8, &|s| s.purity);
    Ok(Analysis {
        evaluation,
        held_out_samples: settings.eval_samples,
        train_error: history.last().map(|h| h.reconstruction_error),
        subnetworks,
        feature_impact,
        n_features,
        recovered_by_structure,
        recovered_by_intervention,
        recovered_by_purity,
        delta,
        derived_a: derived_a(toy, d, &live),
        labelled_samples: label.iter().flatten().count(),
    })
}

/// The probe samples and what the interventions are compared with.
struct Probes<'a> {
    x: &'a Tensor<f32>,
    /// `f(x, W0)`.
    base: Tensor<f32>,
    /// Each probe sample's highest-impact subnetwork.
    top: Vec<usize>,
    label: &'a [Option<usize>],
    /// Whether feature `f` feeds output `f` alone (channel selectivity is defined).
    channel_specific: bool,
}

/// The intervention measures of one subnetwork, each at its better sign.
struct InterventionMeasures {
    effect_share: Option<f64>,
    sample_selectivity: Option<f64>,
    channel_selectivity: Option<f64>,
}

impl Probes<'_> {
    fn interventions(
        &self,
        model: &dyn Model<f32>,
        d: &Decomposition<f32>,
        v: usize,
        delta: f64,
        feature: usize,
    ) -> l3d::Result<InterventionMeasures> {
        let mut m = InterventionMeasures {
            effect_share: None,
            sample_selectivity: None,
            channel_selectivity: None,
        };
        let larger = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
        for sign in [1.0, -1.0] {
            let y = intervene(model, d, self.x, &[(v, sign * delta)])?;
            let change = row_distances(&y, &self.base);
            m.effect_share = larger(m.effect_share, effect_share(&change, self.label, feature));
            m.sample_selectivity = larger(
                m.sample_selectivity,
                ratio_of_means(&change, |i| self.top[i] == v),
            );
            if self.channel_specific {
                let own = channel_selectivity(&y, &self.base, feature);
                m.channel_selectivity = larger(m.channel_selectivity, own);
            }
        }
        Ok(m)
    }
}

/// Of the total change over the labelled samples, the share on those labelled `feature`
/// (None if no labelled sample changed).
fn effect_share(change: &[f64], label: &[Option<usize>], feature: usize) -> Option<f64> {
    let (mut own, mut total) = (0.0, 0.0);
    for (c, l) in change.iter().zip(label) {
        if let Some(f) = l {
            total += c;
            if *f == feature {
                own += c;
            }
        }
    }
    (total > 0.0).then(|| own / total)
}

/// Mean `|y - base|` of output `channel`, over the mean of the other outputs' (None if the
/// others do not change or there are none).
fn channel_selectivity(y: &Tensor<f32>, base: &Tensor<f32>, channel: usize) -> Option<f64> {
    let width = y.row_len();
    let mut per_channel = vec![0.0f64; width];
    for (a, b) in y.rows().zip(base.rows()) {
        for ((s, &p), &q) in per_channel.iter_mut().zip(a).zip(b) {
            *s += (p as f64 - q as f64).abs();
        }
    }
    let others: f64 = per_channel
        .iter()
        .enumerate()
        .filter(|&(c, _)| c != channel)
        .map(|(_, &s)| s)
        .sum::<f64>()
        / (width.max(2) - 1) as f64;
    (width > 1 && others > 0.0).then(|| per_channel[channel] / others)
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

/// For a matrix `w: [h, n]`, the share of `|w|^2` in each group of `group` consecutive
/// columns: `[n / group]`, summing to 1 (all 0 for a zero matrix).
pub fn column_shares(w: &Tensor<f32>, group: usize) -> Vec<f64> {
    let n = w.row_len();
    let mut sq = vec![0.0f64; n / group];
    for row in w.rows() {
        for (j, &x) in row.iter().enumerate() {
            sq[j / group] += (x as f64).powi(2);
        }
    }
    let total: f64 = sq.iter().sum();
    if total > 0.0 {
        sq.iter_mut().for_each(|s| *s /= total);
    }
    sq
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

/// Index of a parameter tensor among the decomposed ones.
fn decomposed(d: &Decomposition<f32>, name: &str) -> Option<usize> {
    d.names.iter().position(|n| n == name)
}

/// Column `j` of a matrix `m: [h, n]`.
fn column(m: &Tensor<f32>, j: usize) -> Vec<f64> {
    let n = m.row_len();
    m.data()
        .iter()
        .skip(j)
        .step_by(n)
        .map(|&x| x as f64)
        .collect()
}

/// For TMS-like toys (`hidden.weight: [h, n]`, ungrouped): `|cos|` between column `f` of
/// subnetwork `v`'s encoder tensor and the model's embedding of feature `f`.
fn encoder_cosine(toy: &ToyModel, d: &Decomposition<f32>, v: usize, f: usize) -> Option<f64> {
    if group_size(&toy.data) != 1 {
        return None;
    }
    let t = decomposed(d, "hidden.weight")?;
    let enc = d.encoder[t].dense_subnetwork(v);
    let w = toy.model.params()[d.param_index[t]];
    Some(cosine(&column(&enc, f), &column(w, f)).abs())
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

/// Pearson's correlation of two equally long lists (0 if either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let centred = |v: &[f64], m: f64| -> Vec<f64> { v.iter().map(|x| x - m).collect() };
    cosine(&centred(a, ma), &centred(b, mb))
}

/// The `A` derived from the subnetworks of a toy with a linear target (`tmcs`), two ways.
/// Subnetwork `k`'s path for input `j` is `a_kj = W_out,k W_in,k[:, j]` through its decoder
/// tensors `W_in,k: [h, n]` and `W_out,k: [n, h]` (quadratic in `v_k`, so its sign drops out).
///
/// - The authors' statistic (`r_authors`, the paper's "0.92" as printed): each live subnetwork
///   `k`, in index order, writes its path for its own input `j*(k) = argmax_j |W_in,k[:, j]|`
///   into column `j*` (a later subnetwork overwrites an earlier one's column; columns no
///   subnetwork chose stay 0), unscaled; `r` is Pearson's correlation with the true `A` over
///   all entries. (Dead subnetworks are left out: the authors' run had none, and a dead one's
///   decoder is never trained.)
/// - Ours (`r_squared`): every column `j` takes the path of the subnetwork with the largest
///   `|W_in,k[:, j]|`, scaled by its least-squares factor onto the true column (subnetworks
///   have no scale of their own); `r^2 = 1 - SS_res / SS_tot` over all entries. `covered`
///   counts the subnetworks that serve a column.
///
/// `live[k]` says whether subnetwork `k` is live.
pub fn derived_a(toy: &ToyModel, d: &Decomposition<f32>, live: &[bool]) -> Option<DerivedA> {
    let Target::Linear { a } = &toy.target else {
        return None;
    };
    if group_size(&toy.data) != 1 {
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
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let path = |k: usize, j: usize| -> Vec<f64> {
        let col = column(&w_in[k], j);
        w_out[k]
            .rows()
            .map(|row| row.iter().zip(&col).map(|(&w, c)| w as f64 * c).sum())
            .collect()
    };
    // Ours: the best subnetwork per column, least-squares scaled.
    let mut derived = vec![0.0f32; n * n];
    let mut used = vec![false; d.n_v];
    for j in 0..n {
        let k = (0..d.n_v)
            .max_by(|&p, &q| norm(&column(&w_in[p], j)).total_cmp(&norm(&column(&w_in[q], j))))
            .unwrap_or(0);
        used[k] = true;
        let p = path(k, j);
        let pp: f64 = p.iter().map(|x| x * x).sum();
        let scale = if pp > 0.0 {
            p.iter()
                .enumerate()
                .map(|(i, x)| x * a[i][j] as f64)
                .sum::<f64>()
                / pp
        } else {
            0.0
        };
        for i in 0..n {
            derived[i * n + j] = (scale * p[i]) as f32;
        }
    }
    let mean = truth.iter().map(|&x| x as f64).sum::<f64>() / truth.len() as f64;
    let ss_tot: f64 = truth.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
    let ss_res: f64 = truth
        .iter()
        .zip(&derived)
        .map(|(&t, &p)| (t as f64 - p as f64).powi(2))
        .sum();
    // The authors': one column per live subnetwork, unscaled.
    let mut authors = vec![0.0f64; n * n];
    let mut chosen = vec![false; n];
    for k in (0..d.n_v).filter(|&k| live[k]) {
        let j = argmax(
            &(0..n)
                .map(|j| norm(&column(&w_in[k], j)))
                .collect::<Vec<_>>(),
        );
        chosen[j] = true;
        for (i, x) in path(k, j).into_iter().enumerate() {
            authors[i * n + j] = x;
        }
    }
    let truth64: Vec<f64> = truth.iter().map(|&x| x as f64).collect();
    Some(DerivedA {
        derived,
        truth,
        n,
        r_squared: 1.0 - ss_res / ss_tot.max(f64::MIN_POSITIVE),
        covered: used.iter().filter(|&&u| u).count(),
        r_authors: pearson(&authors, &truth64),
        uncovered_authors: chosen.iter().filter(|&&c| !c).count(),
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
