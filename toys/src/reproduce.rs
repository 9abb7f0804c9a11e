//! `l3d reproduce`: the toy experiments of the paper's Section 3 at the paper's settings,
//! side by side with the paper's numbers, as a terminal table, JSON, markdown and figures.

use crate::analysis::{Analysis, AnalysisConfig};
use crate::cli::{paper_config, ReproduceArgs};
use crate::figures::{self, ErrorCurves, ReferenceLine, Report, ReportFigure, Series};
use crate::models::ToyKind;
use crate::run::{self, DataSource, ModelSource, Result, RunConfig};
use crate::ui::Ui;
use l3d::measure::evaluate;
use l3d::{L3dConfig, Trainer};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// One line of the reproduction table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    pub measure: String,
    pub ours: String,
    pub paper: String,
    /// Whether our result meets the target for this line (None: no target).
    pub met: Option<bool>,
}

/// Everything `reproduce` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reproduction {
    pub scale: f64,
    pub seed: u64,
    pub divergence: l3d::Divergence,
    pub rows: Vec<Row>,
    pub analyses: Vec<(String, Analysis)>,
    /// (model, x, error) for the sweeps over rank (high-rank) and n_v (squared).
    pub sweeps: Vec<(String, usize, f64)>,
    pub seconds: f64,
}

fn row(model: &str, measure: &str, ours: String, paper: &str, met: Option<bool>) -> Row {
    Row {
        model: model.into(),
        measure: measure.into(),
        ours,
        paper: paper.into(),
        met,
    }
}

/// Epoch counts scaled for a quick look: at least 10, and the learning-rate step scaled alike.
fn scaled(config: L3dConfig, scale: f64) -> L3dConfig {
    let epochs = ((config.epochs as f64 * scale).round() as usize).max(10);
    let lr_step = ((config.lr_step as f64 * scale).round() as usize).max(1);
    L3dConfig {
        epochs,
        lr_step,
        ..config
    }
}

pub fn run(args: &ReproduceArgs, ui: &Ui) -> Result<()> {
    if !(args.scale > 0.0 && args.scale <= 1.0) {
        return Err(run::msg(format!(
            "--scale must lie in (0, 1], got {}",
            args.scale
        )));
    }
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut analyses = Vec::new();
    let mut sweeps = Vec::new();
    let mut report_figures = Vec::new();
    for kind in ToyKind::ALL {
        let t0 = Instant::now();
        ui.info(&format!("== {kind}"));
        let out = args.out.join(kind.name());
        let config = L3dConfig {
            divergence: args.divergence,
            ..scaled(paper_config(kind, args.seed), args.scale)
        };
        let run_config = RunConfig {
            model: ModelSource::Toy {
                kind,
                seed: args.seed,
                train_epochs: ((1000.0 * args.scale).round() as usize).max(50),
            },
            data: DataSource::Fresh {
                samples: 1000,
                seed: args.seed + 1,
            },
            l3d: config.clone(),
            analysis: AnalysisConfig::default(),
        };
        let outcome = run::decompose(&run_config, &out, None, ui)?;
        let a = outcome.analysis.expect("toys are analysed");
        rows.extend(rows_for(kind, &a));
        rows.push(other_divergence_row(kind, &out, &config, ui)?);
        let extra = sweep_for(kind, &out, &config, ui)?;
        if !extra.is_empty() {
            rows.push(sweep_row(kind, &extra));
            report_figures.push(sweep_figure(kind, &extra)?);
        }
        sweeps.extend(extra.iter().map(|&(x, e)| (kind.to_string(), x, e)));
        ui.info(&format!(
            "{kind}: done in {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
        analyses.push((kind.to_string(), a));
    }
    let result = Reproduction {
        scale: args.scale,
        seed: args.seed,
        divergence: args.divergence,
        rows,
        analyses,
        sweeps,
        seconds: start.elapsed().as_secs_f64(),
    };
    let markdown = markdown_table(&result);
    run::write_json(&args.out.join("reproduce.json"), &result)?;
    crate::io::write_atomic(&args.out.join("reproduce.md"), markdown.as_bytes())?;
    for (file, _, svg) in &report_figures {
        crate::io::write_atomic(&args.out.join(file), svg.as_bytes())?;
    }
    let page = Report {
        title: "L3D: the paper's toy experiments reproduced".into(),
        header: ["model", "measure", "ours", "paper", "target met"]
            .map(String::from)
            .to_vec(),
        rows: result
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.model.clone(),
                    r.measure.clone(),
                    r.ours.clone(),
                    r.paper.clone(),
                    met_text(r.met),
                ]
            })
            .collect(),
        figures: report_figures
            .into_iter()
            .map(|(_, caption, svg)| ReportFigure { caption, svg })
            .collect(),
    };
    figures::write_html_report(&args.out.join("report.html"), &page)?;
    let text = format!(
        "{markdown}\nwritten to {}: reproduce.json, reproduce.md, report.html, and one folder per model",
        args.out.display()
    );
    ui.result(&text, serde_json::to_value(&result).unwrap_or_default());
    Ok(())
}

fn met_text(met: Option<bool>) -> String {
    match met {
        Some(true) => "yes".into(),
        Some(false) => "NO".into(),
        None => "-".into(),
    }
}

/// The table rows of one toy's main decomposition.
fn rows_for(kind: ToyKind, a: &Analysis) -> Vec<Row> {
    let name = kind.name();
    let paper = kind.paper();
    let err = a.evaluation.reconstruction_error;
    let mut rows = vec![row(
        name,
        &format!(
            "reconstruction error (n_v {}, rank {})",
            paper.n_v, paper.rank
        ),
        format!("{err:.3}"),
        &paper
            .reconstruction_error
            .map_or("-".into(), |p| format!("{p}")),
        paper.reconstruction_error.map(|p| err <= p),
    )];
    let word = if kind == ToyKind::HighRank {
        "groups"
    } else {
        "features"
    };
    rows.push(row(
        name,
        &format!("recovered {word} (purity >= 0.8)"),
        format!("{}/{}", a.recovered_count(), a.n_features),
        &format!("{}/{}", a.n_features, a.n_features),
        Some(a.recovered_count() == a.n_features),
    ));
    let sel = a.min_recovered_selectivity();
    rows.push(row(
        name,
        "min selectivity of recovering subnetworks",
        sel.map_or("-".into(), |s| format!("{s:.1}")),
        ">= 10 (target)",
        Some(sel.is_some_and(|s| s >= 10.0)),
    ));
    match kind {
        ToyKind::Tms => {
            let cos: Vec<f64> = a
                .recovered
                .iter()
                .flatten()
                .filter_map(|&v| a.subnetworks[v].encoder_cosine)
                .collect();
            let min = cos.iter().copied().fold(f64::INFINITY, f64::min);
            rows.push(row(
                name,
                "min |cos| encoder direction vs feature embedding",
                if cos.is_empty() {
                    "-".into()
                } else {
                    format!("{min:.3}")
                },
                "parallel",
                Some(!cos.is_empty() && min >= 0.9),
            ));
        }
        ToyKind::Tmcs => {
            if let Some(da) = &a.derived_a {
                rows.push(row(
                    name,
                    "r^2 derived A vs true A",
                    format!("{:.3}", da.r_squared),
                    "0.92",
                    Some(da.r_squared >= 0.92),
                ));
            }
        }
        ToyKind::HighRank => {
            rows.push(row(
                name,
                "live / dead subnetworks",
                format!(
                    "{} / {}",
                    a.live_count(),
                    a.subnetworks.len() - a.live_count()
                ),
                "one live per group, rest dead",
                Some(a.live_count() == a.n_features),
            ));
        }
        _ => {}
    }
    rows
}

/// Extra decompositions: ranks 1..5 for `high-rank`, n_v in {3, 5, 10, 15} at rank 1 for
/// `squared`. Returns (x, held-out reconstruction error).
fn sweep_for(kind: ToyKind, out: &Path, base: &L3dConfig, ui: &Ui) -> Result<Vec<(usize, f64)>> {
    let settings: Vec<(usize, usize)> = match kind {
        ToyKind::HighRank => (1..=5).map(|r| (base.n_subnetworks, r)).collect(),
        ToyKind::Squared => [3, 5, 10, 15].iter().map(|&n| (n, 1)).collect(),
        _ => return Ok(Vec::new()),
    };
    let toy = run::load_toy(&out.join("model"))?;
    let mut results = Vec::new();
    for (n_v, rank) in settings {
        let config = L3dConfig {
            n_subnetworks: n_v,
            rank,
            ..base.clone()
        };
        let error = held_out_error(&toy, &config, ui)?;
        let x = if kind == ToyKind::HighRank { rank } else { n_v };
        ui.info(&format!("{kind}: n_v {n_v}, rank {rank}: error {error:.4}"));
        results.push((x, error));
    }
    Ok(results)
}

/// The main decomposition's settings under the other MSE definition: its held-out error.
fn other_divergence_row(kind: ToyKind, out: &Path, base: &L3dConfig, ui: &Ui) -> Result<Row> {
    let other = match base.divergence {
        l3d::Divergence::MseAuthors => l3d::Divergence::Mse,
        _ => l3d::Divergence::MseAuthors,
    };
    let config = L3dConfig {
        divergence: other,
        ..base.clone()
    };
    let toy = run::load_toy(&out.join("model"))?;
    let error = held_out_error(&toy, &config, ui)?;
    Ok(row(
        kind.name(),
        &format!("reconstruction error with divergence {other:?} (no target)"),
        format!("{error:.3}"),
        &kind
            .paper()
            .reconstruction_error
            .map_or("-".into(), |p| format!("{p}")),
        None,
    ))
}

/// Trains a decomposition of a toy on its 1,000 training samples and returns the held-out
/// reconstruction error.
fn held_out_error(toy: &crate::models::ToyModel, config: &L3dConfig, ui: &Ui) -> Result<f64> {
    let data = toy.sample_inputs(1000, &mut tensor::rng(config.seed + 1));
    let held_out = toy.sample_inputs(1000, &mut tensor::rng(AnalysisConfig::default().seed));
    let mut trainer = Trainer::new(&toy.model, config.clone(), &data)?;
    let bar = ui.bar(
        config.epochs as u64,
        &format!("n_v {} r {}", config.n_subnetworks, config.rank),
    );
    trainer.train(|s| {
        bar.set_position(s.epoch as u64 + 1);
        !ui.interrupted()
    })?;
    bar.finish_and_clear();
    if ui.interrupted() {
        return Err(run::msg("interrupted"));
    }
    let e = evaluate(
        &toy.model,
        trainer.decomposition(),
        config,
        &held_out,
        AnalysisConfig::default().seed,
    )?;
    Ok(e.reconstruction_error)
}

fn sweep_row(kind: ToyKind, points: &[(usize, f64)]) -> Row {
    let (measure, paper) = match kind {
        ToyKind::HighRank => ("error at rank 1..5", "rank 1 about as good as rank 5"),
        _ => ("error at n_v 3, 5, 10, 15 (rank 1)", "falls as n_v grows"),
    };
    let ours = points
        .iter()
        .map(|(_, e)| format!("{e:.3}"))
        .collect::<Vec<_>>()
        .join(", ");
    let met = match kind {
        ToyKind::HighRank => points
            .first()
            .zip(points.last())
            .map(|(a, b)| a.1 <= b.1 + 0.05),
        _ => Some(points.windows(2).all(|w| w[1].1 <= w[0].1 + 0.01)),
    };
    row(kind.name(), measure, ours, paper, met)
}

fn sweep_figure(kind: ToyKind, points: &[(usize, f64)]) -> Result<(String, String, String)> {
    let (x_label, file) = match kind {
        ToyKind::HighRank => ("CP rank", "high_rank_error_vs_rank.svg"),
        _ => ("subnetworks n_v", "squared_error_vs_nv.svg"),
    };
    let svg = figures::error_curves(&ErrorCurves {
        title: format!("{kind}: reconstruction error against {x_label}"),
        x_label: x_label.into(),
        y_label: "relative reconstruction error".into(),
        series: vec![Series {
            label: "ours (held-out)".into(),
            points: points.iter().map(|&(x, e)| (x as f32, e as f32)).collect(),
        }],
        reference: kind.paper().reconstruction_error.map(|p| ReferenceLine {
            label: format!(
                "paper at n_v {}, rank {}",
                kind.paper().n_v,
                kind.paper().rank
            ),
            value: p as f32,
        }),
    })?;
    Ok((file.into(), format!("{kind}: error against {x_label}"), svg))
}

/// The table as markdown.
pub fn markdown_table(r: &Reproduction) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Reproduction of the paper's Section 3 (epoch scale {}, seed {}, divergence {:?}, {:.0} s)\n",
        r.scale, r.seed, r.divergence, r.seconds
    );
    let _ = writeln!(s, "| model | measure | ours | paper | target met |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            row.model,
            row.measure,
            row.ours,
            row.paper,
            met_text(row.met)
        );
    }
    s
}
