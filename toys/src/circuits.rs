//! Circuit measures of a decomposition of any model: which input (or input group) each
//! subnetwork is built on, whether moving along it acts on that input's samples, and where its
//! norm sits. The program's report gives them for every model; [`crate::analysis`] adds what
//! a known ground truth tells (which features were recovered).
//!
//! # Definitions
//!
//! - *Probe set*: `x: [N, d_in]`, each sample labelled with an input (or a group of `g`
//!   consecutive inputs) or with none: with a ground truth, fresh samples of its sparse
//!   distribution labelled with their only active feature (group); for a user's model, the
//!   first rows of the data labelled with their *dominant input*, the one holding more than
//!   half of the row's squared norm. Unlabelled samples are left out of the per-input
//!   measures; "the samples of `f`" are those labelled `f`.
//! - *Input structure* of `v`: the share of the squared norm of its decoder's input-layer
//!   tensor (`W_in,v: [h, d_in]`, the first layer's weight) on each input column, summed per
//!   group. `v` is *built on* input `f` when `f`'s share is at least [`STRUCTURE_SHARE`] (0.8).
//! - *Impact* `M[v, f]`: the mean over the samples of `f` of the sample impact `I(x_i, v)` (the
//!   mean of `|<V_in[v], g(x_i, x_j)>|` over `n_refs` references). *Top
//!   input* `argmax_f M[v, f]`; *purity* `M[v, f*] / sum_f M[v, f]` (a diagnostic).
//! - *The input of* `v`: the one it is built on; if none, its top input by impact.
//! - *Tensor shares*: the share of `v`'s decoder norm^2 in each decomposed tensor; the *bias
//!   share* sums the vectors (biases, layer-norm scales), the *read-out share* the last linear
//!   layer's tensors.
//! - *Interventions* move the parameters to `W0 + s delta v` (`v` unit norm, `delta` =
//!   `delta_fraction |W0|` over the decomposed tensors) for both signs `s`; subnetworks have no
//!   preferred sign and the two directions act differently (one turns the circuit off, the
//!   other on for every sample through its bias), so each measure takes the sign that gives it
//!   the larger value.
//!   - *Effect share*: of the total output change `sum_i |f(x_i, W) - f(x_i, W0)|` over the
//!     samples with a dominant input, the share on the samples of `v`'s input. A subnetwork
//!     acting on every sample alike scores about `1 / n_inputs`. The same with the vector
//!     (bias) parts of `v` left out is reported beside it.
//!   - *Sample selectivity*: the mean output change on the probe samples where `v` has the
//!     highest impact, over the mean change on all others (a diagnostic).
//!   - *Channel selectivity* (models whose input `f` feeds output `f` alone: `tms`,
//!     `tms-parallel`, `squared`, classifiers with a class per input): the mean `|change|` of
//!     output `f` over the probe samples, over the mean `|change|` of the other outputs. The
//!     authors' `squared` figure shows subnetworks specific to output channels (about 9x), not
//!     to samples.
//! - *Encoder cosine*: `|cos|` between the encoder's input-layer column of `v`'s input and
//!   the model's embedding of that input (the paper, for TMS: parallel).

use l3d::intervene::{moved_params_where, ratio_of_means, row_distances};
use l3d::measure::impacts;
use l3d::{Decomposition, L3dConfig, Model};
use nets::Sequential;
use serde::{Deserialize, Serialize};
use tensor::Tensor;

/// Share of a subnetwork's input-layer norm^2 on one input for it to count as built on it.
pub const STRUCTURE_SHARE: f64 = 0.8;

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

/// One subnetwork's circuit measures (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetworkSummary {
    pub index: usize,
    /// Activation fraction on the held-out samples (on the data, for users' models).
    pub p_act: f64,
    pub live: bool,
    /// The share of the input-layer decoder's norm^2 on each input (group); None if the input
    /// layer is not decomposed.
    pub input_shares: Option<Vec<f64>>,
    /// The input with the largest of those shares, and that share.
    pub structure_input: Option<usize>,
    pub structure_share: f64,
    /// Whether `structure_share >= STRUCTURE_SHARE`.
    pub built_on_one: bool,
    pub top_input: usize,
    pub purity: f64,
    /// The subnetwork's input: `structure_input` if built on one, else `top_input`.
    pub input: usize,
    pub effect_share: Option<f64>,
    /// The effect share with the subnetwork's vector (bias) parts left out.
    pub effect_share_without_bias: Option<f64>,
    pub sample_selectivity: Option<f64>,
    pub channel_selectivity: Option<f64>,
    /// Share of the decoder's norm^2 in each decomposed tensor (in the decomposition's order).
    pub tensor_shares: Vec<f64>,
    pub bias_share: f64,
    pub readout_share: f64,
    pub encoder_cosine: Option<f64>,
}

/// What the circuit measures found over all subnetworks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Circuits {
    /// `M[v, f]`: `[n_v][n_inputs]` (inputs or input groups).
    pub impact: Vec<Vec<f64>>,
    pub n_inputs: usize,
    pub subnetworks: Vec<SubnetworkSummary>,
    pub delta: f64,
    /// Whether the input layer is decomposed (structure is measured).
    pub has_structure: bool,
}

impl Circuits {
    /// The median over the live subnetworks of a measure (None if none has it).
    pub fn median_over_live(
        &self,
        value: impl Fn(&SubnetworkSummary) -> Option<f64>,
    ) -> Option<f64> {
        let values: Vec<f64> = self
            .subnetworks
            .iter()
            .filter(|s| s.live)
            .filter_map(value)
            .collect();
        median(&values)
    }

    /// A one-line judgement of the run for a user: a warning when the live subnetworks are
    /// dominated by biases or by the read-out, or when moving along them acts on every sample.
    pub fn verdict(&self) -> String {
        let live: Vec<&SubnetworkSummary> = self.subnetworks.iter().filter(|s| s.live).collect();
        if live.is_empty() {
            return "warning: no subnetwork is live (none is ever in the top k)".into();
        }
        let n = live.len();
        let many = |f: &dyn Fn(&SubnetworkSummary) -> bool| live.iter().filter(|s| f(s)).count();
        let bias = many(&|s| s.bias_share > 0.5);
        let readout = many(&|s| s.readout_share > 0.5);
        // None when no probe sample has a dominant input (images, token sequences).
        let measured = self.median_over_live(|s| s.effect_share);
        let effect = measured.unwrap_or(0.0);
        let without = self
            .median_over_live(|s| s.effect_share_without_bias)
            .unwrap_or(0.0);
        let chance = 1.0 / self.n_inputs.max(1) as f64;
        let mut warnings = Vec::new();
        if 2 * bias > n {
            warnings.push(format!(
                "{bias}/{n} live subnetworks have most of their norm in biases (median effect share {effect:.2}, {without:.2} without the biases; chance is {chance:.2}): leave the biases out (--decompose weights-before-readout)"
            ));
        }
        if 2 * readout > n {
            warnings.push(format!(
                "{readout}/{n} live subnetworks have most of their norm in the read-out layer, which every sample uses: moving along them moves every output (median effect share {effect:.2}; chance is {chance:.2}); leave it out (--decompose weights-before-readout)"
            ));
        }
        if warnings.is_empty() && measured.is_some_and(|e| e < 2.0 * chance) {
            warnings.push(format!(
                "moving along the live subnetworks acts on every sample about alike (median effect share {effect:.2}; chance is {chance:.2})"
            ));
        }
        if !warnings.is_empty() {
            return format!("warning: {}", warnings.join("; "));
        }
        if measured.is_none() {
            return format!(
                "{n}/{} subnetworks are live; no sample has a dominant input (one holding half its squared norm), so effects per input are not measured: see the model's own measures below, if it has them",
                self.subnetworks.len()
            );
        }
        let built = many(&|s| s.built_on_one);
        let structure = if self.has_structure {
            format!("{built}/{n} live subnetworks are built on one input; ")
        } else {
            String::new()
        };
        format!(
            "ok: {structure}moving along a live subnetwork puts a median {effect:.2} of the output change on its input's samples (chance is {chance:.2})"
        )
    }
}

/// The probe set and what the circuit measures need to know about the model.
pub struct Probe<'a> {
    pub x: &'a Tensor<f32>,
    /// Each sample's input (group), if it has one ([`only_active`], [`dominant_inputs`]).
    pub labels: Vec<Option<usize>>,
    /// Inputs per group (1: every input on its own).
    pub group: usize,
    /// Whether input `f` feeds output `f` alone (channel selectivity is defined).
    pub channel_specific: bool,
}

/// The circuit measures of a decomposition of `model` on a probe set (see the module docs).
/// `p_act` gives each subnetwork's activation fraction, measured elsewhere.
pub fn circuits(
    model: &Sequential<f32>,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    probe: &Probe,
    p_act: &[f64],
    settings: &AnalysisConfig,
) -> l3d::Result<Circuits> {
    let (x, labels) = (probe.x, &probe.labels);
    let n_inputs = model.input_dim() / probe.group;
    let impact = impacts(model, d, config, x, settings.n_refs, settings.seed)?;
    let input_impact = means_by_input(&impact, labels, d.n_v, n_inputs);
    let delta = settings.delta_fraction * decomposed_norm(model, d);
    let arch = model.architecture();
    let input_tensor = arch.input_weight().and_then(|n| decomposed(d, &n));
    let readout = arch.readout();
    let moves = Moves {
        x,
        base: model.evaluate_w0(x)?,
        top: impact.argmax_axis(1),
        labels,
        channel_specific: probe.channel_specific,
        vectors: d.encoder.iter().map(|cp| cp.shape.len() <= 1).collect(),
    };
    let mut subnetworks = Vec::with_capacity(d.n_v);
    for (v, row) in input_impact.iter().enumerate() {
        let shares =
            input_tensor.map(|t| column_shares(&d.decoder[t].dense_subnetwork(v), probe.group));
        let structure_input = shares.as_ref().map(|s| argmax(s));
        let structure_share = shares
            .as_ref()
            .zip(structure_input)
            .map_or(0.0, |(s, i)| s[i]);
        let built_on_one = structure_share >= STRUCTURE_SHARE;
        let top_input = argmax(row);
        let total: f64 = row.iter().sum();
        let input = match structure_input {
            Some(i) if built_on_one => i,
            _ => top_input,
        };
        let tensor_shares = tensor_shares(d, v);
        let part = |keep: &dyn Fn(usize) -> bool| -> f64 {
            (0..d.names.len())
                .filter(|&t| keep(t))
                .fold(0.0, |sum, t| sum + tensor_shares[t])
        };
        let measured = moves.measure(model, d, v, delta, input)?;
        subnetworks.push(SubnetworkSummary {
            index: v,
            p_act: p_act[v],
            live: p_act[v] > 0.0,
            input_shares: shares,
            structure_input,
            structure_share,
            built_on_one,
            top_input,
            purity: if total > 0.0 {
                row[top_input] / total
            } else {
                0.0
            },
            input,
            effect_share: measured.effect_share,
            effect_share_without_bias: measured.effect_share_without_bias,
            sample_selectivity: measured.sample_selectivity,
            channel_selectivity: measured.channel_selectivity,
            bias_share: part(&|t| moves.vectors[t]),
            readout_share: part(&|t| readout.contains(&d.names[t])),
            tensor_shares,
            encoder_cosine: input_tensor
                .and_then(|t| encoder_cosine(model, d, t, v, input, probe.group)),
        });
    }
    Ok(Circuits {
        impact: input_impact,
        n_inputs,
        subnetworks,
        delta,
        has_structure: input_tensor.is_some(),
    })
}

/// The probe samples and what the interventions are compared with.
struct Moves<'a> {
    x: &'a Tensor<f32>,
    /// `f(x, W0)`.
    base: Tensor<f32>,
    /// Each probe sample's highest-impact subnetwork.
    top: Vec<usize>,
    /// Each probe sample's dominant input, if it has one.
    labels: &'a [Option<usize>],
    channel_specific: bool,
    /// Per decomposed tensor: whether it is a vector (a bias part).
    vectors: Vec<bool>,
}

/// The intervention measures of one subnetwork, each at its better sign.
struct Measured {
    effect_share: Option<f64>,
    effect_share_without_bias: Option<f64>,
    sample_selectivity: Option<f64>,
    channel_selectivity: Option<f64>,
}

/// The larger of two optional values.
fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

impl Moves<'_> {
    fn measure(
        &self,
        model: &dyn Model<f32>,
        d: &Decomposition<f32>,
        v: usize,
        delta: f64,
        input: usize,
    ) -> l3d::Result<Measured> {
        let mut m = Measured {
            effect_share: None,
            effect_share_without_bias: None,
            sample_selectivity: None,
            channel_selectivity: None,
        };
        let has_bias = self.vectors.iter().any(|&b| b);
        for sign in [1.0, -1.0] {
            let moved = moved_params_where(model, d, &[(v, sign * delta)], &|_| true)?;
            let y = model.evaluate(&moved, self.x)?;
            let change = row_distances(&y, &self.base);
            m.effect_share = larger(m.effect_share, effect_share(&change, self.labels, input));
            m.sample_selectivity = larger(
                m.sample_selectivity,
                ratio_of_means(&change, |i| self.top[i] == v),
            );
            if self.channel_specific {
                let own = channel_selectivity(&y, &self.base, input);
                m.channel_selectivity = larger(m.channel_selectivity, own);
            }
            let weights_only = if has_bias {
                let moved =
                    moved_params_where(model, d, &[(v, sign * delta)], &|t| !self.vectors[t])?;
                let y = model.evaluate(&moved, self.x)?;
                effect_share(&row_distances(&y, &self.base), self.labels, input)
            } else {
                effect_share(&change, self.labels, input)
            };
            m.effect_share_without_bias = larger(m.effect_share_without_bias, weights_only);
        }
        Ok(m)
    }
}

/// Of the total change over the samples with a dominant input, the share on those of
/// `input` (None if none of them changed).
fn effect_share(change: &[f64], labels: &[Option<usize>], input: usize) -> Option<f64> {
    let (mut own, mut total) = (0.0, 0.0);
    for (c, l) in change.iter().zip(labels) {
        if let Some(f) = l {
            total += c;
            if *f == input {
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
    (width > 1 && channel < width && others > 0.0).then(|| per_channel[channel] / others)
}

/// Each row's only active input group (a group is active when one of its inputs is not 0),
/// if exactly one is active.
pub fn only_active(x: &Tensor<f32>, group: usize) -> Vec<Option<usize>> {
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

/// Each row's dominant input group: the group of `group` consecutive inputs holding more than
/// half of the row's squared norm, if one does.
pub fn dominant_inputs(x: &Tensor<f32>, group: usize) -> Vec<Option<usize>> {
    let groups = x.row_len() / group;
    x.rows()
        .map(|row| {
            let total: f32 = row.iter().map(|v| v * v).sum();
            let mut share = vec![0.0f32; groups];
            for (j, v) in row.iter().enumerate() {
                share[j / group] += v * v;
            }
            share.iter().position(|&s| total > 0.0 && s > 0.5 * total)
        })
        .collect()
}

/// `M[v, f]`: the mean of `m[i, v]` over the rows labelled `f` (0 where there are none).
fn means_by_input(
    m: &Tensor<f32>,
    labels: &[Option<usize>],
    n_v: usize,
    n_inputs: usize,
) -> Vec<Vec<f64>> {
    let mut sum = vec![vec![0.0; n_inputs]; n_v];
    let mut count = vec![0usize; n_inputs];
    for (row, l) in m.rows().zip(labels) {
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

/// The share of subnetwork `v`'s decoder norm^2 in each decomposed tensor.
fn tensor_shares(d: &Decomposition<f32>, v: usize) -> Vec<f64> {
    let sq: Vec<f64> = d
        .subnetwork(v)
        .iter()
        .map(|t| t.sum_squares() as f64)
        .collect();
    let total: f64 = sq.iter().sum();
    sq.iter()
        .map(|s| s / total.max(f64::MIN_POSITIVE))
        .collect()
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

pub(crate) fn argmax(values: &[f64]) -> usize {
    (0..values.len())
        .reduce(|b, i| if values[i] > values[b] { i } else { b })
        .unwrap_or(0)
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
pub(crate) fn decomposed(d: &Decomposition<f32>, name: &str) -> Option<usize> {
    d.names.iter().position(|n| n == name)
}

/// Column `j` of a matrix `m: [h, n]`.
pub(crate) fn column(m: &Tensor<f32>, j: usize) -> Vec<f64> {
    let n = m.row_len();
    m.data()
        .iter()
        .skip(j)
        .step_by(n)
        .map(|&x| x as f64)
        .collect()
}

/// For ungrouped inputs, with the input layer decomposed as tensor `t`: `|cos|` between
/// column `f` of subnetwork `v`'s encoder tensor and the model's column `f` (the input's
/// embedding).
fn encoder_cosine(
    model: &Sequential<f32>,
    d: &Decomposition<f32>,
    t: usize,
    v: usize,
    f: usize,
    group: usize,
) -> Option<f64> {
    if group != 1 {
        return None;
    }
    let enc = d.encoder[t].dense_subnetwork(v);
    let w = model.params()[d.param_index[t]];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_names_the_only_active_feature_or_group() {
        let x = Tensor::from_vec(
            &[3, 4],
            vec![0.0, 0.5, 0.0, 0.0, 0.1, 0.0, 0.2, 0.0, 0.0, 0.0, 0.3, 0.4],
        );
        assert_eq!(only_active(&x, 1), vec![Some(1), None, None]);
        assert_eq!(only_active(&x, 2), vec![Some(0), None, Some(1)]);
    }

    #[test]
    fn a_dominant_input_holds_more_than_half_of_the_squared_norm() {
        // Row 0: one active input; row 1: 3 and 4, so input 1 holds 16/25; row 2: 1 and 1,
        // no input holds more than half; row 3: zero.
        let x = Tensor::from_vec(
            &[4, 4],
            vec![
                0.0, 0.5, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            ],
        );
        assert_eq!(dominant_inputs(&x, 1), [Some(1), Some(1), None, None]);
        // Groups of two: rows 0 and 1 are all in group 0, row 2 is split evenly.
        assert_eq!(dominant_inputs(&x, 2), [Some(0), Some(0), None, None]);
    }

    #[test]
    fn means_by_input_are_means_over_the_samples_of_each_input() {
        let m = Tensor::from_vec(&[3, 2], vec![1.0, 0.0, 3.0, 2.0, 9.0, 9.0]);
        let got = means_by_input(&m, &[Some(0), Some(0), None], 2, 2);
        assert_eq!(got, vec![vec![2.0, 0.0], vec![1.0, 0.0]]);
    }

    #[test]
    fn effect_shares_count_the_samples_of_the_input_against_all_labelled() {
        // Changes 2, 1, 2, 5: input 0 gets 2 + 2 of the labelled 5; the unlabelled 5 is out.
        let labels = [Some(0), Some(1), Some(0), None];
        assert_eq!(effect_share(&[2.0, 1.0, 2.0, 5.0], &labels, 0), Some(0.8));
        assert_eq!(effect_share(&[0.0; 4], &labels, 0), None);
    }

    #[test]
    fn channel_selectivity_compares_one_output_with_the_others() {
        let base = Tensor::zeros(&[2, 3]);
        let y = Tensor::from_vec(&[2, 3], vec![4.0, 1.0, 0.0, 4.0, 0.0, 1.0]);
        // Channel 0 moves 8 in all, the others 1 each: 8 / 1.
        assert_eq!(channel_selectivity(&y, &base, 0), Some(8.0));
        assert_eq!(channel_selectivity(&base, &base, 0), None);
    }

    fn summary(index: usize, effect_share: Option<f64>) -> SubnetworkSummary {
        SubnetworkSummary {
            index,
            p_act: 0.1,
            live: true,
            input_shares: None,
            structure_input: None,
            structure_share: 0.0,
            built_on_one: false,
            top_input: 0,
            purity: 0.0,
            input: 0,
            effect_share,
            effect_share_without_bias: effect_share,
            sample_selectivity: None,
            channel_selectivity: None,
            tensor_shares: vec![1.0],
            bias_share: 0.0,
            readout_share: 0.0,
            encoder_cosine: None,
        }
    }

    fn circuits_of(effects: &[Option<f64>]) -> Circuits {
        Circuits {
            impact: vec![vec![0.0; 4]; effects.len()],
            n_inputs: 4,
            subnetworks: effects
                .iter()
                .enumerate()
                .map(|(v, &e)| summary(v, e))
                .collect(),
            delta: 1.0,
            has_structure: false,
        }
    }

    #[test]
    fn the_verdict_warns_on_unspecific_effects_and_not_on_unmeasured_ones() {
        // Chance is 1/4: a median share of 0.3 is below twice chance, 0.9 above.
        let alike = circuits_of(&[Some(0.3), Some(0.2), Some(0.4)]).verdict();
        assert!(
            alike.starts_with("warning: ") && alike.contains("about alike"),
            "{alike}"
        );
        let ok = circuits_of(&[Some(0.9), Some(0.8), Some(0.95)]).verdict();
        assert!(ok.starts_with("ok: ") && ok.contains("median 0.90"), "{ok}");
        // No sample with a dominant input: nothing measured, so no judgement either way.
        let none = circuits_of(&[None, None]).verdict();
        assert!(
            !none.contains("warning") && !none.starts_with("ok"),
            "{none}"
        );
        assert!(
            none.contains("not measured") && none.starts_with("2/2"),
            "{none}"
        );
    }

    #[test]
    fn pearson_and_median() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.9986).abs() < 1e-3);
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
