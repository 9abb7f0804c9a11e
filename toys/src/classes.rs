//! Per-class measures of a decomposition of a classifier whose samples have class labels (the
//! digits networks): which class each subnetwork serves, by its impact and by intervention,
//! and how many classes get a subnetwork of their own.
//!
//! # Definitions
//!
//! - `x: [N, ..]` the samples, `y_i` their labels in `0..C`; "the samples of `c`" are those
//!   with `y_i = c`. Every per-class value is a mean over a class's samples, so classes of
//!   different sizes weigh alike.
//! - *Impact by class* `M[v, c]`: the mean over the samples of `c` of the sample impact
//!   `I(x_i, v)` ([`l3d::measure::impacts`]); its *impact shares* `M[v, c] / sum_c' M[v, c']`.
//! - *Intervention*: the parameters moved to `W0 + s delta v` (`v` unit norm, `delta` =
//!   `delta_fraction |W0|` over the decomposed tensors, both signs `s`). *Change by class*
//!   `E[v, c]`: the mean over the samples of `c` of the sample's output change, as shares over
//!   the classes. For logits the change is `KL(softmax f(x_i, W0) || softmax f(x_i, W))`: what
//!   the model predicts, the divergence L3D decomposes, blind to a shift of every logit alike
//!   (measured on the digits MLP, the Euclidean change of the raw logits put a median 0.12 of
//!   every subnetwork's change on its class, near chance, because a move of the first layer
//!   shifts the logits of every image). For regression outputs it is `|f(x_i, W) -
//!   f(x_i, W0)|`. *Logit shares*: the mean over all samples of `|f_k(x_i, W) - f_k(x_i, W0)|`
//!   for each output `k`, as shares over the outputs.
//! - *The class* of `v`: `argmax_c M[v, c]`. Its *impact selectivity* is that class's impact
//!   share; its *intervention selectivity* the class's change share, and its *logit
//!   selectivity* the class's logit share, each at the sign `s` that gives the larger change
//!   share on the class (the intervention rows reported are those of that sign). Chance is
//!   `1 / C` for each.
//! - A class *has a subnetwork of its own* when a live subnetwork's class is that class with
//!   an intervention selectivity of at least [`OWN_SHARE`] (0.5): the class where its impact
//!   is largest gets most of the output change from moving along it. The impact selectivity is
//!   not held to that bar: a sample's gradient compares it with a reference of another class,
//!   so the subnetworks of the reference's class share its impact, and on the digits networks
//!   the impact selectivity of even the most selective subnetworks stays near 0.3 to 0.5
//!   (chance 0.1).

use crate::circuits::{decomposed_norm, AnalysisConfig};
use l3d::intervene::{moved_params, row_distances};
use l3d::measure::impacts;
use l3d::{Decomposition, L3dConfig, Model, OutputKind};
use serde::{Deserialize, Serialize};
use tensor::Tensor;

/// The intervention selectivity a subnetwork needs for its class to count as having a
/// subnetwork of its own.
pub const OWN_SHARE: f64 = 0.5;

/// One subnetwork's per-class measures (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    pub index: usize,
    pub p_act: f64,
    pub live: bool,
    /// `M[v, c] / sum_c M[v, c]` for every class.
    pub impact_shares: Vec<f64>,
    /// `E[v, c]` as shares over the classes, at the chosen sign.
    pub change_shares: Vec<f64>,
    /// The mean `|change|` of each logit, as shares over the logits, at the chosen sign.
    pub logit_shares: Vec<f64>,
    /// The sign of the move the intervention rows are from (+1 or -1).
    pub sign: f64,
    /// `argmax_c M[v, c]`.
    pub class: usize,
    pub impact_selectivity: f64,
    pub intervention_selectivity: f64,
    pub logit_selectivity: f64,
    /// Whether `v` is live with an intervention selectivity of at least [`OWN_SHARE`].
    pub own: bool,
}

/// The per-class measures of a decomposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub n_classes: usize,
    /// Samples of each class the measures were taken on.
    pub class_counts: Vec<usize>,
    /// The step along a unit-norm subnetwork.
    pub delta: f64,
    pub subnetworks: Vec<ClassSummary>,
    /// The classes with a subnetwork of their own, in increasing order.
    pub classes_with_own: Vec<usize>,
}

impl ClassReport {
    /// For each class, the subnetworks of its own (live, selective; see the module docs).
    pub fn own_subnetworks(&self) -> Vec<Vec<usize>> {
        let mut own = vec![Vec::new(); self.n_classes];
        for s in self.subnetworks.iter().filter(|s| s.own) {
            own[s.class].push(s.index);
        }
        own
    }

    /// `[n_v][C]`: the impact shares of every subnetwork (rows) over the classes.
    pub fn impact_matrix(&self) -> Vec<Vec<f64>> {
        self.subnetworks
            .iter()
            .map(|s| s.impact_shares.clone())
            .collect()
    }
}

/// The per-class measures of the decomposition `d` of `model` on the samples `x` with labels
/// `labels` (each below `n_classes`); `p_act` gives each subnetwork's activation fraction.
/// Errors if the labels do not match the samples or a label is not below `n_classes`.
pub fn class_report(
    model: &dyn Model<f32>,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    (x, labels): (&Tensor<f32>, &[usize]),
    n_classes: usize,
    p_act: &[f64],
    settings: &AnalysisConfig,
) -> l3d::Result<ClassReport> {
    check_labels(x, labels, n_classes)?;
    let mut class_counts = vec![0; n_classes];
    for &l in labels {
        class_counts[l] += 1;
    }
    let impact = impacts(model, d, config, x, settings.n_refs, settings.seed)?;
    let delta = settings.delta_fraction * decomposed_norm(model, d);
    let base = model.evaluate_w0(x)?;
    let mut subnetworks = Vec::with_capacity(d.n_v);
    for v in 0..d.n_v {
        let column: Vec<f64> = (0..x.shape()[0]).map(|i| impact.row(i)[v] as f64).collect();
        let impact_shares = shares(&class_means(&column, labels, &class_counts));
        let class = argmax(&impact_shares);
        let mut best: Option<(f64, Vec<f64>, Vec<f64>)> = None;
        for sign in [1.0, -1.0] {
            let y = model.evaluate(&moved_params(model, d, &[(v, sign * delta)])?, x)?;
            let change = match model.output_kind() {
                OutputKind::Logits => kl_rows(&base, &y),
                OutputKind::Regression => row_distances(&y, &base),
            };
            let change_shares = shares(&class_means(&change, labels, &class_counts));
            if best
                .as_ref()
                .is_none_or(|(_, b, _)| change_shares[class] > b[class])
            {
                best = Some((sign, change_shares, shares(&logit_changes(&y, &base))));
            }
        }
        let (sign, change_shares, logit_shares) = best.expect("two signs were tried");
        let live = p_act.get(v).is_some_and(|&p| p > 0.0);
        let impact_selectivity = impact_shares[class];
        let intervention_selectivity = change_shares[class];
        subnetworks.push(ClassSummary {
            index: v,
            p_act: p_act.get(v).copied().unwrap_or(0.0),
            live,
            logit_selectivity: logit_shares.get(class).copied().unwrap_or(0.0),
            impact_shares,
            change_shares,
            logit_shares,
            sign,
            class,
            impact_selectivity,
            intervention_selectivity,
            own: live && intervention_selectivity >= OWN_SHARE,
        });
    }
    let mut classes_with_own: Vec<usize> = subnetworks
        .iter()
        .filter(|s| s.own)
        .map(|s| s.class)
        .collect();
    classes_with_own.sort_unstable();
    classes_with_own.dedup();
    Ok(ClassReport {
        n_classes,
        class_counts,
        delta,
        subnetworks,
        classes_with_own,
    })
}

fn check_labels(x: &Tensor<f32>, labels: &[usize], n_classes: usize) -> l3d::Result<()> {
    let rows = x.shape().first().copied().unwrap_or(0);
    if labels.len() != rows {
        return Err(l3d::L3dError::Data(format!(
            "{} class labels for {rows} samples: need one per sample",
            labels.len()
        )));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= n_classes) {
        return Err(l3d::L3dError::Data(format!(
            "label {i} is {l}, not below the {n_classes} classes"
        )));
    }
    Ok(())
}

/// The mean of `values` over the samples of each class (0 for a class without samples).
fn class_means(values: &[f64], labels: &[usize], counts: &[usize]) -> Vec<f64> {
    let mut sums = vec![0.0; counts.len()];
    for (&v, &l) in values.iter().zip(labels) {
        sums[l] += v;
    }
    sums.iter()
        .zip(counts)
        .map(|(&s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
        .collect()
}

/// `KL(softmax p_i || softmax q_i)` for every row `i` of the logits `p, q: [N, C]`.
fn kl_rows(p: &Tensor<f32>, q: &Tensor<f32>) -> Vec<f64> {
    let (lp, lq) = (p.log_softmax_last(), q.log_softmax_last());
    lp.rows()
        .zip(lq.rows())
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| (x as f64).exp() * (x as f64 - y as f64))
                .sum::<f64>()
                .max(0.0)
        })
        .collect()
}

/// The mean `|y - base|` of every output column over the rows: `[d_out]`.
fn logit_changes(y: &Tensor<f32>, base: &Tensor<f32>) -> Vec<f64> {
    let mut sums = vec![0.0f64; y.row_len()];
    for (a, b) in y.rows().zip(base.rows()) {
        for ((s, &p), &q) in sums.iter_mut().zip(a).zip(b) {
            *s += (p as f64 - q as f64).abs();
        }
    }
    let n = y.shape()[0].max(1) as f64;
    sums.iter().map(|s| s / n).collect()
}

/// `values / sum(values)`, or all zeros if the sum is 0.
fn shares(values: &[f64]) -> Vec<f64> {
    let total: f64 = values.iter().sum();
    values
        .iter()
        .map(|&v| if total > 0.0 { v / total } else { 0.0 })
        .collect()
}

/// The index of the largest value (the lowest on ties).
fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use nets::{Architecture, Layer, OutputKind, Sequential};

    const C: usize = 4;

    /// Logits `W x` with `W = 2 I` (4 x 4, no bias), on one-hot inputs `x_i = e_{y_i}` with
    /// label `y_i` (three samples a class). Encoder and decoder alike: subnetwork `v < 4` is
    /// `e_v e_v^T`, subnetwork 4 is `u u^T` with `u = (1, 1, 1, 1) / 2` (both unit norm). The
    /// KL gradient of a sample of class `c` is `g e_c^T`, so subnetwork `v < 4` encodes
    /// `g_v [c = v]`: impact on class `v` alone. Moving along `e_v e_v^T` changes logit `v` of
    /// the samples of `v` alone.
    fn known_case() -> (
        Sequential<f32>,
        Decomposition<f32>,
        L3dConfig,
        Tensor<f32>,
        Vec<usize>,
    ) {
        let arch = Architecture::rows(
            C,
            vec![Layer::Linear {
                name: "0".into(),
                in_features: C,
                out_features: C,
                bias: false,
            }],
            OutputKind::Logits,
        );
        let w = Tensor::from_fn(&[C, C], |k| if k % (C + 1) == 0 { 2.0 } else { 0.0 });
        let model = Sequential::new(arch, vec![w]).unwrap();
        let config = L3dConfig {
            n_subnetworks: C + 1,
            rank: 1,
            divergence: l3d::Divergence::Kl,
            decompose: vec!["0.weight".into()],
            ..L3dConfig::default()
        };
        let mut d = Decomposition::new(&model, &config).unwrap();
        // Both modes' factors [C, n_v]: column v < C is e_v, column C is u.
        let factor = Tensor::from_fn(&[C, C + 1], |k| {
            let (row, col) = (k / (C + 1), k % (C + 1));
            match col {
                c if c < C => (row == c) as u8 as f32,
                _ => 0.5,
            }
        });
        for cp in d.encoder.iter_mut().chain(d.decoder.iter_mut()) {
            cp.factors = vec![factor.clone(), factor.clone()];
        }
        let labels: Vec<usize> = (0..12).map(|i| i % C).collect();
        let x = Tensor::from_fn(&[12, C], |k| (k % C == labels[k / C]) as u8 as f32);
        (model, d, config, x, labels)
    }

    #[test]
    fn subnetworks_of_one_class_have_all_their_impact_and_effect_on_it() {
        let (model, d, config, x, labels) = known_case();
        let settings = AnalysisConfig::default();
        let p_act = vec![0.2, 0.2, 0.2, 0.2, 0.0];
        let r = class_report(&model, &d, &config, (&x, &labels), C, &p_act, &settings).unwrap();
        assert_eq!(r.class_counts, [3, 3, 3, 3]);
        for v in 0..C {
            let s = &r.subnetworks[v];
            assert_eq!(s.class, v);
            for c in 0..C {
                let want = (c == v) as u8 as f64;
                assert!((s.impact_shares[c] - want).abs() < 1e-9, "{v} {c} {s:?}");
                assert!((s.change_shares[c] - want).abs() < 1e-9, "{v} {c} {s:?}");
                assert!((s.logit_shares[c] - want).abs() < 1e-9, "{v} {c} {s:?}");
            }
            assert!(s.own);
        }
        assert_eq!(r.classes_with_own, [0, 1, 2, 3]);
        assert_eq!(r.own_subnetworks(), [vec![0], vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn a_shift_of_every_logit_alike_changes_no_prediction() {
        // Subnetwork 4 is u u^T with u = (1, 1, 1, 1) / 2 (unit norm): moving along it adds
        // delta / 4 to every logit of every sample, which every logit shares (1/4 each) but
        // which leaves every softmax as it was: no class's samples change (KL 0, up to
        // rounding). It is dead here (P_act 0), so it owns nothing.
        let (model, d, config, x, labels) = known_case();
        let settings = AnalysisConfig::default();
        let p_act = vec![0.2, 0.2, 0.2, 0.2, 0.0];
        let r = class_report(&model, &d, &config, (&x, &labels), C, &p_act, &settings).unwrap();
        let s = &r.subnetworks[C];
        for c in 0..C {
            assert!((s.logit_shares[c] - 0.25).abs() < 1e-6, "{s:?}");
        }
        let base = model.evaluate_w0(&x).unwrap();
        let moved = model
            .evaluate(&moved_params(&model, &d, &[(C, r.delta)]).unwrap(), &x)
            .unwrap();
        assert!(kl_rows(&base, &moved).iter().all(|&k| k < 1e-6));
        assert!(!s.own && !s.live);
    }

    #[test]
    fn kl_rows_is_the_kl_divergence_of_the_softmaxes() {
        // softmax(0, 0) = (1/2, 1/2), softmax(ln 3, 0) = (3/4, 1/4):
        // KL = 1/2 ln(2/3) + 1/2 ln(2) = 1/2 ln(4/3).
        let p = Tensor::from_vec(&[2, 2], vec![0.0, 0.0, 1.0, 1.0]);
        let q = Tensor::from_vec(&[2, 2], vec![3f32.ln(), 0.0, 1.0, 1.0]);
        let kl = kl_rows(&p, &q);
        assert!((kl[0] - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-6, "{kl:?}");
        assert!(kl[1].abs() < 1e-9);
    }

    #[test]
    fn one_thread_and_two_give_the_same_bits() {
        // A random decomposition of the known case, so that every share is a sum of many
        // nonzero terms whose order could matter.
        let (model, _, config, x, labels) = known_case();
        let d = Decomposition::new(&model, &config).unwrap();
        let settings = AnalysisConfig::default();
        let report = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                class_report(&model, &d, &config, (&x, &labels), C, &[0.2; 5], &settings).unwrap()
            })
        };
        let (one, two) = (report(1), report(2));
        assert_eq!(one, two);
        assert!(one.subnetworks.iter().any(|s| s.impact_selectivity < 1.0));
    }

    #[test]
    fn labels_that_do_not_fit_are_errors() {
        let (model, d, config, x, labels) = known_case();
        let settings = AnalysisConfig::default();
        let run = |l: &[usize]| {
            class_report(&model, &d, &config, (&x, l), C, &[0.1; 5], &settings)
                .unwrap_err()
                .to_string()
        };
        assert!(run(&labels[..5]).contains("5 class labels for 12 samples"));
        let mut bad = labels.clone();
        bad[7] = 4;
        assert!(run(&bad).contains("label 7 is 4"));
    }
}
