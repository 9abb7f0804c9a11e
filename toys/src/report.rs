//! Reports of a decomposition: the measures every model gets, the tables printed in the
//! terminal, and the figures with their HTML page.

use crate::analysis::{decomposed_norm, Analysis, AnalysisConfig, EFFECT_SHARE, STRUCTURE_SHARE};
use crate::figures::{
    self, AMatrixScatter, ImpactMatrix, InterventionSweep, Matrix, ParamTensor, Report,
    ReportFigure, Subnetwork, SubnetworkHeatmaps,
};
use crate::run::{LoadedModel, Result};
use l3d::intervene::sweep;
use l3d::measure::{evaluate, impacts};
use l3d::{Decomposition, EpochStats, L3dConfig, Model};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use tensor::Tensor;

/// Rows of the data used for impacts and sweeps in the generic report and the figures.
const PROBE_ROWS: usize = 200;
/// Samples drawn per sweep panel.
const SWEEP_ROWS: usize = 60;

/// Measures any decomposition gets, whatever the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenericReport {
    /// Relative reconstruction error over the data with batch top-k (pairs as in training).
    pub reconstruction_error: f64,
    /// The last training epoch's error.
    pub train_error: Option<f64>,
    pub p_act: Vec<f64>,
    pub dead: usize,
    /// For each subnetwork, the share of its decoder norm^2 in each decomposed tensor.
    pub tensor_shares: Vec<Vec<f64>>,
    pub tensor_names: Vec<String>,
    /// For each subnetwork, its mean impact over the probe rows.
    pub mean_impact: Vec<f64>,
}

pub fn generic_report(
    model: &dyn Model<f32>,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    data: &Tensor<f32>,
    history: &[EpochStats],
    settings: &AnalysisConfig,
) -> l3d::Result<GenericReport> {
    let evaluation = evaluate(model, d, config, data, settings.seed)?;
    let probe = probe_rows(data);
    let impact = impacts(
        model,
        d,
        config,
        &probe,
        settings.n_refs.min(4),
        settings.seed,
    )?;
    let mean_impact = impact
        .mean_axis(0)
        .data()
        .iter()
        .map(|&x| x as f64)
        .collect();
    let tensor_shares = (0..d.n_v)
        .map(|v| {
            let sq: Vec<f64> = d
                .subnetwork(v)
                .iter()
                .map(|t| t.sum_squares() as f64)
                .collect();
            let total: f64 = sq.iter().sum();
            sq.iter()
                .map(|s| s / total.max(f64::MIN_POSITIVE))
                .collect()
        })
        .collect();
    Ok(GenericReport {
        reconstruction_error: evaluation.reconstruction_error,
        train_error: history.last().map(|h| h.reconstruction_error),
        dead: evaluation.dead,
        p_act: evaluation.p_act,
        tensor_shares,
        tensor_names: d.names.clone(),
        mean_impact,
    })
}

/// The first rows of the data (at most [`PROBE_ROWS`]).
fn probe_rows(data: &Tensor<f32>) -> Tensor<f32> {
    first_rows(data, PROBE_ROWS)
}

/// The first `at_most` rows of `data: [N, ..]` (all of them if there are fewer).
pub fn first_rows(data: &Tensor<f32>, at_most: usize) -> Tensor<f32> {
    let n = data.shape()[0].min(at_most);
    data.gather_rows(&(0..n).collect::<Vec<_>>())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        Some(_) => "inf".into(),
        None => "-".into(),
    }
}

/// The table of a toy's decomposition: one row per subnetwork ([`toy_rows`]), then the
/// summary.
pub fn toy_table(name: &str, a: &Analysis, paper_error: Option<f64>) -> String {
    let word = if name == "high-rank" {
        "group"
    } else {
        "feature"
    };
    let mut s = text_table(&toy_rows(a, word));
    let _ = writeln!(
        s,
        "reconstruction error (held-out, {} samples): {:.4}   paper: {}   last epoch: {}",
        a.held_out_samples,
        a.evaluation.reconstruction_error,
        fmt_opt(paper_error, 3),
        fmt_opt(a.train_error, 4)
    );
    let _ = writeln!(
        s,
        "recovered {word}s: {}/{} by structure (a live subnetwork with >= {:.0}% of its input-layer norm^2 on the {word}), {}/{} by intervention (>= {:.0}% of its effect on the {word}'s samples)   live: {}/{}",
        a.structure_count(),
        a.n_features,
        100.0 * STRUCTURE_SHARE,
        a.intervention_count(),
        a.n_features,
        100.0 * EFFECT_SHARE,
        a.live_count(),
        a.subnetworks.len(),
    );
    if let Some(da) = &a.derived_a {
        let _ = writeln!(
            s,
            "derived A vs true A: r = {:.3} as the authors compute it (one column per subnetwork, unscaled; {} columns uncovered), r^2 = {:.3} with least-squares scale ({} subnetworks serve the {} columns)",
            da.r_authors, da.uncovered_authors, da.r_squared, da.covered, da.n
        );
    }
    s
}

/// The table of any decomposition (no known features).
pub fn generic_table(r: &GenericReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>10} | {:>6} | {:>11} | largest share of the subnetwork",
        "subnetwork", "P_act", "mean impact"
    );
    let _ = writeln!(s, "{}", "-".repeat(70));
    for (v, shares) in r.tensor_shares.iter().enumerate() {
        let (t, share) = shares
            .iter()
            .enumerate()
            .fold((0, 0.0), |b, (i, &x)| if x > b.1 { (i, x) } else { b });
        let _ = writeln!(
            s,
            "{:>10} | {:>6.3} | {:>11.4} | {} ({:.0}%)",
            v,
            r.p_act[v],
            r.mean_impact[v],
            r.tensor_names.get(t).map_or("-", |n| n.as_str()),
            100.0 * share
        );
    }
    let _ = writeln!(s, "{}", "-".repeat(70));
    let _ = writeln!(
        s,
        "reconstruction error: {:.4}   last epoch: {}   dead: {}/{}",
        r.reconstruction_error,
        fmt_opt(r.train_error, 4),
        r.dead,
        r.p_act.len()
    );
    s
}

fn param_tensor(name: &str, t: &Tensor<f32>) -> Result<ParamTensor> {
    Ok(ParamTensor::new(name, t.shape(), t.data().to_vec())?)
}

/// Heatmaps of the model's decomposed tensors beside every subnetwork's.
pub fn heatmaps_svg(title: &str, model: &dyn Model<f32>, d: &Decomposition<f32>) -> Result<String> {
    let params = model.params();
    let model_tensors = d
        .names
        .iter()
        .zip(&d.param_index)
        .map(|(n, &i)| param_tensor(n, params[i]))
        .collect::<Result<Vec<_>>>()?;
    let subnetworks = (0..d.n_v)
        .map(|k| {
            let tensors = d
                .names
                .iter()
                .zip(d.subnetwork(k))
                .map(|(n, t)| param_tensor(n, &t))
                .collect::<Result<Vec<_>>>()?;
            Ok(Subnetwork {
                name: format!("subnetwork {k}"),
                tensors,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(figures::subnetwork_heatmaps(&SubnetworkHeatmaps {
        title: title.into(),
        model: model_tensors,
        subnetworks,
    })?)
}

/// Sweeps of every subnetwork over `[-2 delta, 2 delta]` on the first rows of `data`, the
/// samples where the subnetwork has the highest impact highlighted.
pub fn sweeps_svg(
    model: &dyn Model<f32>,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    data: &Tensor<f32>,
    delta: f64,
    settings: &AnalysisConfig,
) -> Result<String> {
    let x = first_rows(data, SWEEP_ROWS);
    let n = x.shape()[0];
    let impact = impacts(model, d, config, &x, settings.n_refs, settings.seed)?;
    let top = impact.argmax_axis(1);
    let deltas: Vec<f64> = (0..=20).map(|i| delta * (i as f64 / 5.0 - 2.0)).collect();
    let panels = (0..d.n_v)
        .map(|k| {
            let s = sweep(model, d, k, &x, &deltas)?;
            let changes = (0..n)
                .map(|i| s.change.iter().map(|row| row[i] as f32).collect())
                .collect();
            Ok(InterventionSweep {
                subnetwork: format!("subnetwork {k}"),
                y_label: "|output change|".into(),
                deltas: deltas.iter().map(|&x| x as f32).collect(),
                changes,
                relevant: top.iter().map(|&t| t == k).collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(figures::intervention_sweep_grid(
        "Output change along each subnetwork (red: samples where it has the highest impact)",
        &panels,
        3,
    )?)
}

/// The subnetwork x feature impact matrix of a toy.
pub fn feature_impact_svg(a: &Analysis, feature_word: &str) -> Result<String> {
    let rows: Vec<Vec<f32>> = a
        .feature_impact
        .iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect();
    Ok(figures::impact_matrix(&ImpactMatrix {
        title: format!("Mean impact of each subnetwork on the samples of each {feature_word}"),
        row_axis: "subnetwork".into(),
        col_axis: format!("input {feature_word}"),
        row_labels: (0..rows.len()).map(|v| v.to_string()).collect(),
        col_labels: (0..a.n_features).map(|f| f.to_string()).collect(),
        values: Matrix::from_rows("feature impact", &rows)?,
        annotate: a.n_features <= 15,
    })?)
}

/// Writes the figures of a decomposition into `out/figures/` and `out/report.html`.
#[allow(clippy::too_many_arguments)]
pub fn write_figures(
    out: &Path,
    loaded: &LoadedModel,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    data: &Tensor<f32>,
    analysis: Option<&Analysis>,
    generic: &GenericReport,
    settings: &AnalysisConfig,
) -> Result<()> {
    let dir = out.join("figures");
    std::fs::create_dir_all(&dir)
        .map_err(|e| crate::run::msg(format!("cannot create {}: {e}", dir.display())))?;
    let model = &loaded.model;
    let name = loaded
        .toy
        .as_ref()
        .map_or("model".to_string(), |t| t.kind.to_string());
    let mut figs: Vec<(String, String, String)> = Vec::new();
    figs.push((
        "subnetworks.svg".into(),
        "The model's weights (top row) and each subnetwork's decoder tensors".into(),
        heatmaps_svg(&format!("{name}: model and subnetworks"), model, d)?,
    ));
    let delta = analysis.map_or_else(|| 0.1 * decomposed_norm(model, d), |a| a.delta);
    figs.push((
        "sweeps.svg".into(),
        format!(
            "Interventions W0 + delta v_k, delta in [-{:.2}, {:.2}]",
            2.0 * delta,
            2.0 * delta
        ),
        sweeps_svg(model, d, config, data, delta, settings)?,
    ));
    let word = if name == "high-rank" {
        "group"
    } else {
        "feature"
    };
    if let Some(a) = analysis {
        figs.push((
            "impact.svg".into(),
            format!("Subnetwork x input-{word} impact"),
            feature_impact_svg(a, word)?,
        ));
        if let Some(da) = &a.derived_a {
            let scatter = figures::a_matrix_scatter(&AMatrixScatter {
                title: format!(
                    "A derived from subnetworks vs true A (r^2 = {:.3})",
                    da.r_squared
                ),
                true_a: Matrix::new("true A", da.n, da.n, da.truth.clone())?,
                derived_a: Matrix::new("derived A", da.n, da.n, da.derived.clone())?,
                heatmaps: true,
            })?;
            figs.push((
                "a_matrix.svg".into(),
                "Derived A against true A".into(),
                scatter,
            ));
        }
    }
    for (file, _, svg) in &figs {
        crate::io::write_atomic(&dir.join(file), svg.as_bytes())?;
    }
    let table = match analysis {
        Some(a) => toy_rows(a, word),
        None => generic_rows(generic),
    };
    let report = Report {
        title: format!("L3D decomposition of {name}"),
        header: table.0,
        rows: table.1,
        figures: figs
            .into_iter()
            .map(|(_, caption, svg)| ReportFigure { caption, svg })
            .collect(),
    };
    figures::write_html_report(&out.join("report.html"), &report)?;
    Ok(())
}

type Table = (Vec<String>, Vec<Vec<String>>);

/// One row per subnetwork of a toy's decomposition: its feature (the one it is built on, with
/// that share of its input-layer norm^2), activity, the intervention measures, and which
/// recoveries it counts in.
fn toy_rows(a: &Analysis, word: &str) -> Table {
    let header = [
        "subnetwork".to_string(),
        format!("built on {word}"),
        "P_act".into(),
        "effect share".into(),
        "channel sel.".into(),
        "sample sel.".into(),
        "purity".into(),
        "enc. |cos|".into(),
        "recovers".into(),
    ]
    .to_vec();
    let rows = a
        .subnetworks
        .iter()
        .map(|s| {
            let recovers = [
                ("structure", &a.recovered_by_structure),
                ("intervention", &a.recovered_by_intervention),
            ]
            .iter()
            .filter(|(_, r)| r.contains(&Some(s.index)))
            .map(|(w, _)| *w)
            .collect::<Vec<_>>()
            .join(", ");
            vec![
                s.index.to_string(),
                match (s.live, s.built_on_one) {
                    (false, _) => "dead".into(),
                    (true, true) => format!("{} ({:.2})", s.structure_feature, s.structure_share),
                    (true, false) => format!("- ({:.2})", s.structure_share),
                },
                format!("{:.3}", s.p_act),
                fmt_opt(s.effect_share, 2),
                fmt_opt(s.channel_selectivity, 1),
                fmt_opt(s.sample_selectivity, 1),
                format!("{:.2}", s.purity),
                fmt_opt(s.encoder_cosine, 3),
                recovers,
            ]
        })
        .collect();
    (header, rows)
}

/// A table as aligned text: columns right-aligned to their widest cell, a rule under the
/// header and after the last row.
pub fn text_table((header, rows): &Table) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, &w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let rule = "-".repeat(widths.iter().sum::<usize>() + 3 * widths.len().saturating_sub(1));
    let mut s = format!("{}\n{rule}\n", line(header));
    for r in rows {
        s.push_str(&line(r));
        s.push('\n');
    }
    s.push_str(&rule);
    s.push('\n');
    s
}

fn generic_rows(r: &GenericReport) -> Table {
    let header = ["subnetwork", "P_act", "mean impact"]
        .map(String::from)
        .to_vec();
    let rows = (0..r.p_act.len())
        .map(|v| {
            vec![
                v.to_string(),
                format!("{:.3}", r.p_act[v]),
                format!("{:.4}", r.mean_impact[v]),
            ]
        })
        .collect();
    (header, rows)
}
