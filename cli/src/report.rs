//! Reports of a decomposition: the measures every model gets (and a toy's analysis against its
//! ground truth), the tables printed in the terminal, and the figures with their HTML page.
//! [`write_reports`] is the one pipeline `l3d decompose` and `l3d report` both run.

use crate::error::Result;
use crate::figures::{
    self, AMatrixScatter, ImpactMatrix, InterventionSweep, Matrix, ParamTensor, Report,
    ReportFigure, Subnetwork, SubnetworkHeatmaps,
};
use crate::files::{create_dir, write_json};
use crate::ui::Ui;
use l3d::intervene::sweep;
use l3d::measure::{evaluate, impacts};
use l3d::{Decomposition, EpochStats, L3dConfig, Model};
use nets::Sequential;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use tensor::Tensor;
use toys::analysis::{analyse, Analysis, EFFECT_SHARE};
use toys::circuits::{
    circuits, dominant_inputs, AnalysisConfig, Circuits, Probe, SubnetworkSummary, STRUCTURE_SHARE,
};
use toys::classes::ClassReport;
use toys::models::ToyModel;

/// Rows of the data the circuit measures of a user's model are taken on.
const PROBE_ROWS: usize = 2000;
/// Samples drawn per sweep panel.
const SWEEP_ROWS: usize = 60;

/// A finished decomposition with what it was made from: the model (a toy, whose ground truth
/// the analysis uses, or a user's model), the data, the settings and the training history.
#[derive(Clone, Copy)]
pub struct Decomposed<'a> {
    pub model: &'a Sequential<f32>,
    pub toy: Option<&'a ToyModel>,
    pub d: &'a Decomposition<f32>,
    pub config: &'a L3dConfig,
    pub data: &'a Tensor<f32>,
    pub history: &'a [EpochStats],
    pub settings: &'a AnalysisConfig,
    /// Each data row's class, for a classifier whose inputs came with labels.
    pub labels: Option<&'a [usize]>,
}

/// What [`write_reports`] measured: the measures every model gets, and for a toy its analysis
/// against the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Reports {
    pub generic: GenericReport,
    pub analysis: Option<Analysis>,
}

impl Reports {
    /// The table printed in the terminal: the toy's ([`toy_table`]) for a toy, else the
    /// generic one ([`generic_table`]).
    pub fn table(&self, toy: Option<&ToyModel>) -> String {
        match (&self.analysis, toy) {
            (Some(a), Some(toy)) => {
                toy_table(toy.kind.name(), a, toy.kind.paper().reconstruction_error)
            }
            _ => generic_table(&self.generic),
        }
    }
}

/// Measures a decomposition and writes its reports into `out`: `analysis.json` (toys only),
/// `report.json`, `figures/` and `report.html`.
pub fn write_reports(out: &Path, run: &Decomposed, ui: &Ui) -> Result<Reports> {
    let analysis = match run.toy {
        Some(toy) => {
            let bar = ui.bar(1, "analyse");
            let a = analyse(toy.into(), run.d, run.config, run.history, run.settings)?;
            bar.finish_and_clear();
            write_json(&out.join("analysis.json"), &a)?;
            Some(a)
        }
        None => None,
    };
    let mut generic = generic_report(
        run.model,
        run.d,
        run.config,
        run.data,
        run.history,
        run.settings,
    )?;
    if let Some(labels) = run.labels {
        let bar = ui.bar(1, "per-class measures");
        let classes = crate::classes::measure(run, labels, &generic.p_act)?;
        bar.finish_and_clear();
        // Labelled samples are judged by class: the per-input verdict labels each sample by a
        // dominant input, which inputs such as images do not have.
        generic.verdict = crate::classes::verdict(&classes);
        generic.classes = Some(classes);
    }
    write_json(&out.join("report.json"), &generic)?;
    let reports = Reports { generic, analysis };
    write_figures(out, run, &reports)?;
    Ok(reports)
}

/// Measures any decomposition gets, whatever the model: the reconstruction error, activity,
/// and the circuit measures of [`toys::circuits`] on the data's first rows, each sample's
/// inputs weighted by their share of its squared norm (so a sample with one dominant input
/// counts for that input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenericReport {
    /// Relative reconstruction error over the data with batch top-k (pairs as in training).
    pub reconstruction_error: f64,
    /// The last training epoch's error.
    pub train_error: Option<f64>,
    pub p_act: Vec<f64>,
    pub dead: usize,
    pub tensor_names: Vec<String>,
    pub circuits: Circuits,
    /// A one-line judgement of the run ([`Circuits::verdict`]).
    pub verdict: String,
    /// The per-class measures, when the inputs have class labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassReport>,
}

pub fn generic_report(
    model: &Sequential<f32>,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    data: &Tensor<f32>,
    history: &[EpochStats],
    settings: &AnalysisConfig,
) -> l3d::Result<GenericReport> {
    let evaluation = evaluate(model, d, config, data, settings.seed)?;
    let x = first_rows(data, PROBE_ROWS);
    let probe = Probe {
        labels: dominant_inputs(&x, 1),
        x: &x,
        group: 1,
        channel_specific: false,
    };
    let circuits = circuits(model, d, config, &probe, &evaluation.p_act, settings)?;
    Ok(GenericReport {
        reconstruction_error: evaluation.reconstruction_error,
        train_error: history.last().map(|h| h.reconstruction_error),
        dead: evaluation.dead,
        p_act: evaluation.p_act,
        tensor_names: d.names.clone(),
        verdict: circuits.verdict(),
        circuits,
        classes: None,
    })
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
        a.n_features(),
        100.0 * STRUCTURE_SHARE,
        a.intervention_count(),
        a.n_features(),
        100.0 * EFFECT_SHARE,
        a.live_count(),
        a.subnetworks().len(),
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

/// The table of any decomposition: one row per subnetwork ([`generic_rows`]), the summary and
/// the verdict.
pub fn generic_table(r: &GenericReport) -> String {
    let mut s = text_table(&generic_rows(r));
    let _ = writeln!(
        s,
        "reconstruction error: {:.4}   last epoch: {}   dead: {}/{}",
        r.reconstruction_error,
        fmt_opt(r.train_error, 4),
        r.dead,
        r.p_act.len()
    );
    let _ = writeln!(s, "{}", r.verdict);
    if let Some(c) = &r.classes {
        s.push('\n');
        s.push_str(&crate::classes::table(c));
    }
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

/// The subnetwork x input impact matrix (`M[v, f]`, [`Circuits::impact`]).
pub fn input_impact_svg(c: &Circuits, input_word: &str) -> Result<String> {
    let rows: Vec<Vec<f32>> = c
        .impact
        .iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect();
    Ok(figures::impact_matrix(&ImpactMatrix {
        title: format!("Mean impact of each subnetwork on the samples of each {input_word}"),
        row_axis: "subnetwork".into(),
        col_axis: format!("input {input_word}"),
        row_labels: (0..rows.len()).map(|v| v.to_string()).collect(),
        col_labels: (0..c.n_inputs).map(|f| f.to_string()).collect(),
        values: Matrix::from_rows("input impact", &rows)?,
        annotate: c.n_inputs <= 15,
    })?)
}

/// Writes the figures of a decomposition into `out/figures/` and `out/report.html`.
fn write_figures(out: &Path, run: &Decomposed, reports: &Reports) -> Result<()> {
    let dir = out.join("figures");
    create_dir(&dir)?;
    let (model, d) = (run.model, run.d);
    let (generic, analysis) = (&reports.generic, reports.analysis.as_ref());
    let name = run.toy.map_or("model".to_string(), |t| t.kind.to_string());
    let mut figs: Vec<(String, String, String)> = Vec::new();
    figs.push((
        "subnetworks.svg".into(),
        "The model's weights (top row) and each subnetwork's decoder tensors".into(),
        heatmaps_svg(&format!("{name}: model and subnetworks"), model, d)?,
    ));
    let delta = generic.circuits.delta;
    figs.push((
        "sweeps.svg".into(),
        format!(
            "Interventions W0 + delta v_k, delta in [-{:.2}, {:.2}]",
            2.0 * delta,
            2.0 * delta
        ),
        sweeps_svg(model, d, run.config, run.data, delta, run.settings)?,
    ));
    let word = if name == "high-rank" {
        "group"
    } else {
        "feature"
    };
    let (circuits, input_word) = match analysis {
        Some(a) => (&a.circuits, word),
        None => (&generic.circuits, "dimension"),
    };
    figs.push((
        "impact.svg".into(),
        format!("Subnetwork x input-{input_word} impact"),
        input_impact_svg(circuits, input_word)?,
    ));
    if let Some(a) = analysis {
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
    if let Some(classes) = &generic.classes {
        figs.extend(crate::classes::figures(run, classes)?);
    }
    for (file, _, svg) in &figs {
        nets::io::write_atomic(&dir.join(file), svg.as_bytes())?;
    }
    let table = match analysis {
        Some(a) => toy_rows(a, word),
        None => generic_rows(generic),
    };
    let report = Report {
        title: format!("L3D decomposition of {name}"),
        header: table.0,
        rows: table.1,
        notes: [
            format!(
                "reconstruction error {:.4}; dead subnetworks {}/{}",
                generic.reconstruction_error,
                generic.dead,
                generic.p_act.len()
            ),
            generic.verdict.clone(),
        ]
        .into_iter()
        .chain(generic.classes.as_ref().map(crate::classes::summary))
        .collect(),
        tables: generic
            .classes
            .as_ref()
            .map(crate::classes::report_table)
            .into_iter()
            .collect(),
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
        .subnetworks()
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
                built_on(s),
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

/// The input a subnetwork is built on, with that input's share of its input-layer norm^2
/// (`-` and the largest share when it is built on none; `dead` when never active).
fn built_on(s: &SubnetworkSummary) -> String {
    match (s.live, s.built_on_one, s.structure_input) {
        (false, _, _) => "dead".into(),
        (true, true, Some(i)) => format!("{i} ({:.2})", s.structure_share),
        (true, _, Some(_)) => format!("- ({:.2})", s.structure_share),
        (true, _, None) => "-".into(),
    }
}

/// The top input by impact and its purity, or `-` when no probe sample has a dominant input
/// (images, token sequences), so that no input has an impact to rank.
fn top_input(s: &SubnetworkSummary) -> String {
    if s.purity > 0.0 {
        format!("{} ({:.2})", s.top_input, s.purity)
    } else {
        "-".into()
    }
}

/// One row per subnetwork of any decomposition: activity, structure, where moving along it
/// acts (with and without its bias parts), and where its norm sits.
fn generic_rows(r: &GenericReport) -> Table {
    let header = [
        "subnetwork",
        "P_act",
        "built on input",
        "top input",
        "effect share",
        "w/o biases",
        "bias share",
        "read-out share",
        "largest tensor",
    ]
    .map(String::from)
    .to_vec();
    let rows = r
        .circuits
        .subnetworks
        .iter()
        .map(|s| {
            let (t, share) = s
                .tensor_shares
                .iter()
                .enumerate()
                .fold((0, 0.0), |b, (i, &x)| if x > b.1 { (i, x) } else { b });
            vec![
                s.index.to_string(),
                format!("{:.3}", s.p_act),
                built_on(s),
                top_input(s),
                fmt_opt(s.effect_share, 2),
                fmt_opt(s.effect_share_without_bias, 2),
                format!("{:.2}", s.bias_share),
                format!("{:.2}", s.readout_share),
                format!(
                    "{} ({:.0}%)",
                    r.tensor_names.get(t).map_or("-", |n| n.as_str()),
                    100.0 * share
                ),
            ]
        })
        .collect();
    (header, rows)
}
