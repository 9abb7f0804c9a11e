//! `l3d reproduce`: the toy experiments of the paper's Section 3 at the paper's settings, over
//! several trained toys and several decomposition seeds, side by side with the paper's
//! numbers, as a terminal table, JSON, markdown and figures.
//!
//! Every row is the median and the range over all runs (toy seeds x decomposition seeds), so
//! that a result on a knife edge can neither pass nor fail by luck; a target is met when the
//! median meets it. The measures are those of [`toys::analysis`].
//!
//! The runs are independent and each is deterministic, so they run in parallel (rayon) and
//! give the same numbers for any number of threads. One run per toy (the first toy seed and
//! the first decomposition seed) writes the full output folder of `l3d decompose`
//! (`out/<toy>/`); every trained toy is saved in `out/<toy>/toy-<seed>/`.

use crate::args::ReproduceArgs;
use crate::error::{Result, RunError};
use crate::figures::{self, ErrorCurves, ReferenceLine, Report, ReportFigure, Series};
use crate::files::write_json;
use crate::run::{self, DataSource, ModelSource, RunConfig};
use crate::ui::{Mode, Ui};
use l3d::measure::evaluate;
use l3d::{Divergence, L3dConfig, Trainer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use toys::analysis::Analysis;
use toys::circuits::{median, AnalysisConfig};
use toys::models::{ToyKind, ToyModel};
use toys::train::TrainConfig;

/// One line of the reproduction table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    pub measure: String,
    /// Median and range over the runs, as text.
    pub ours: String,
    pub paper: String,
    /// Whether the median meets the target for this line (None: no target).
    pub met: Option<bool>,
}

/// What one decomposition run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub toy: ToyKind,
    pub toy_seed: u64,
    pub seed: u64,
    pub n_v: usize,
    pub rank: usize,
    pub divergence: Divergence,
    pub purpose: Purpose,
    /// Held-out relative reconstruction error.
    pub error: f64,
    /// The full analysis (main runs only).
    pub analysis: Option<Analysis>,
}

/// Why a run is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The paper's settings: every measure of the table.
    Main,
    /// The paper's settings under the other MSE divergence: its error only.
    OtherDivergence,
    /// A point of a sweep over rank (`high-rank`) or `n_v` (`squared`): its error only.
    Sweep,
}

/// Everything `reproduce` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reproduction {
    pub scale: f64,
    pub seed: u64,
    pub toy_seeds: usize,
    pub seeds: usize,
    pub divergence: Divergence,
    pub rows: Vec<Row>,
    pub runs: Vec<RunResult>,
    pub seconds: f64,
}

fn row(model: ToyKind, measure: &str, ours: String, paper: &str, met: Option<bool>) -> Row {
    Row {
        model: model.to_string(),
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

/// One decomposition to make.
#[derive(Debug, Clone)]
struct Job {
    toy: ToyKind,
    toy_seed: u64,
    config: L3dConfig,
    purpose: Purpose,
    /// Whether this run writes the full output folder of `l3d decompose`.
    writes_folder: bool,
}

/// The other MSE variant (the table gives the error under both).
fn other_divergence(d: Divergence) -> Divergence {
    match d {
        Divergence::MseAuthors => Divergence::Mse,
        _ => Divergence::MseAuthors,
    }
}

/// Every run of the reproduction, in a fixed order.
fn jobs(args: &ReproduceArgs, kinds: &[ToyKind]) -> Vec<Job> {
    let toy_seeds: Vec<u64> = (0..args.toy_seeds as u64).map(|s| args.seed + s).collect();
    let seeds: Vec<u64> = (0..args.seeds as u64).map(|s| args.seed + s).collect();
    let mut jobs = Vec::new();
    for &toy in kinds {
        let base = |seed: u64| L3dConfig {
            divergence: args.divergence,
            ..scaled(toy.paper_config(seed), args.scale)
        };
        for &toy_seed in &toy_seeds {
            for &seed in &seeds {
                jobs.push(Job {
                    toy,
                    toy_seed,
                    config: base(seed),
                    purpose: Purpose::Main,
                    writes_folder: toy_seed == args.seed && seed == args.seed,
                });
            }
        }
        let first = args.seed;
        for &seed in &seeds {
            let config = L3dConfig {
                divergence: other_divergence(args.divergence),
                ..base(seed)
            };
            jobs.push(Job {
                toy,
                toy_seed: first,
                config,
                purpose: Purpose::OtherDivergence,
                writes_folder: false,
            });
            // A sweep point at the paper's n_v and rank is a main run of the first toy seed.
            let paper = (toy.paper().n_v, toy.paper().rank);
            for (n_v, rank) in sweep_points(toy).into_iter().filter(|&p| p != paper) {
                let config = L3dConfig {
                    n_subnetworks: n_v,
                    rank,
                    ..base(seed)
                };
                jobs.push(Job {
                    toy,
                    toy_seed: first,
                    config,
                    purpose: Purpose::Sweep,
                    writes_folder: false,
                });
            }
        }
    }
    jobs
}

/// The sweeps of the paper: ranks 1..5 for `high-rank`, n_v in {3, 5, 10, 15} at rank 1 for
/// `squared`.
fn sweep_points(toy: ToyKind) -> Vec<(usize, usize)> {
    match toy {
        ToyKind::HighRank => (1..=5).map(|r| (toy.paper().n_v, r)).collect(),
        ToyKind::Squared => [3, 5, 10, 15].iter().map(|&n| (n, 1)).collect(),
        _ => Vec::new(),
    }
}

pub fn run(args: &ReproduceArgs, ui: &Ui) -> Result<()> {
    if !(args.scale > 0.0 && args.scale <= 1.0) {
        return Err(RunError::Setting(format!(
            "--scale must lie in (0, 1], got {}",
            args.scale
        )));
    }
    if args.toy_seeds == 0 || args.seeds == 0 {
        return Err(RunError::Setting(
            "--toy-seeds and --seeds must be at least 1".into(),
        ));
    }
    let start = Instant::now();
    let kinds: Vec<ToyKind> = if args.toys.is_empty() {
        ToyKind::ALL.to_vec()
    } else {
        args.toys.clone()
    };
    let toys = train_toys(args, &kinds, ui)?;
    let jobs = jobs(args, &kinds);
    let bar = ui.bar(jobs.len() as u64, "decompose");
    let runs = jobs
        .par_iter()
        .map(|job| {
            if ui.interrupted() {
                return Err(RunError::Stopped);
            }
            let toy = &toys[&(job.toy, job.toy_seed)];
            let result = run_job(job, toy, args, ui);
            bar.inc(1);
            result
        })
        .collect::<Result<Vec<RunResult>>>()?;
    bar.finish_and_clear();
    let mut rows = Vec::new();
    let mut report_figures = Vec::new();
    for &kind in &kinds {
        let mine: Vec<&RunResult> = runs.iter().filter(|r| r.toy == kind).collect();
        rows.extend(rows_for(kind, &mine));
        if let Some(fig) = sweep_figure(kind, &mine)? {
            report_figures.push(fig);
        }
    }
    let result = Reproduction {
        scale: args.scale,
        seed: args.seed,
        toy_seeds: args.toy_seeds,
        seeds: args.seeds,
        divergence: args.divergence,
        rows,
        runs,
        seconds: start.elapsed().as_secs_f64(),
    };
    write_outputs(args, &result, report_figures, ui)
}

/// Trains every toy of the reproduction (in parallel) and saves each into
/// `out/<toy>/toy-<seed>/`.
fn train_toys(
    args: &ReproduceArgs,
    kinds: &[ToyKind],
    ui: &Ui,
) -> Result<std::collections::HashMap<(ToyKind, u64), ToyModel>> {
    let config = TrainConfig {
        epochs: ((1000.0 * args.scale).round() as usize).max(50),
        ..TrainConfig::default()
    };
    let wanted: Vec<(ToyKind, u64)> = kinds
        .iter()
        .flat_map(|&k| (0..args.toy_seeds as u64).map(move |s| (k, args.seed + s)))
        .collect();
    let bar = ui.bar(wanted.len() as u64, "train toys");
    let toys = wanted
        .par_iter()
        .map(|&(kind, seed)| {
            let toy = toys::train::train_toy(kind, seed, &config, &mut |_| {})?;
            run::save_toy(&toy, &toy_dir(&args.out, kind, seed))?;
            bar.inc(1);
            Ok(((kind, seed), toy))
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    Ok(toys)
}

fn toy_dir(out: &Path, kind: ToyKind, seed: u64) -> PathBuf {
    out.join(kind.name()).join(format!("toy-{seed}"))
}

/// One run: a decomposition on 1,000 fresh samples (drawn from `seed + 1`), its held-out
/// error, and for main runs the full analysis. The run that writes a folder goes through
/// `l3d decompose` itself (quietly), so its folder is exactly what that command writes.
fn run_job(job: &Job, toy: &ToyModel, args: &ReproduceArgs, ui: &Ui) -> Result<RunResult> {
    let config = &job.config;
    let settings = AnalysisConfig::default();
    let (samples, data_seed) = (1000, config.seed + 1);
    let (error, analysis) = if job.writes_folder {
        let run_config = RunConfig {
            model: ModelSource::ToyDir {
                dir: toy_dir(&args.out, job.toy, job.toy_seed),
            },
            data: DataSource::Fresh {
                samples,
                seed: data_seed,
            },
            l3d: config.clone(),
            analysis: settings,
        };
        let quiet = Ui::new(Mode::Quiet);
        let out = args.out.join(job.toy.name());
        let outcome = run::decompose(&run_config, &out, None, &quiet)?;
        let a = outcome.reports.analysis.expect("toys are analysed");
        (a.evaluation.reconstruction_error, Some(a))
    } else {
        let x = toy.sample_inputs(samples, &mut tensor::rng(data_seed));
        let mut trainer = Trainer::new(&toy.model, config.clone(), &x)?;
        trainer.train(|_| !ui.interrupted())?;
        let d = trainer.decomposition();
        if job.purpose == Purpose::Main {
            let a = toys::analysis::analyse(toy.into(), d, config, trainer.history(), &settings)?;
            (a.evaluation.reconstruction_error, Some(a))
        } else {
            let held_out =
                toy.sample_inputs(settings.eval_samples, &mut tensor::rng(settings.seed));
            let e = evaluate(&toy.model, d, config, &held_out, settings.seed)?;
            (e.reconstruction_error, None)
        }
    };
    Ok(RunResult {
        toy: job.toy,
        toy_seed: job.toy_seed,
        seed: config.seed,
        n_v: config.n_subnetworks,
        rank: config.rank,
        divergence: config.divergence,
        purpose: job.purpose,
        error,
        analysis,
    })
}

/// `median [min, max]` of `values` with `digits` decimals (`-` if empty).
fn summary(values: &[f64], digits: usize) -> String {
    let Some(m) = median(values) else {
        return "-".into();
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() == 1 {
        format!("{m:.digits$}")
    } else {
        format!("{m:.digits$} [{min:.digits$}, {max:.digits$}]")
    }
}

/// `median/n [min, max]` of counts out of `n`.
fn count_summary(values: &[f64], n: usize) -> String {
    let Some(m) = median(values) else {
        return "-".into();
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let m = if m.fract() == 0.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    };
    if values.len() == 1 {
        format!("{m}/{n}")
    } else {
        format!("{m}/{n} [{min:.0}, {max:.0}]")
    }
}

/// The table rows of one toy, from all its runs.
fn rows_for(kind: ToyKind, runs: &[&RunResult]) -> Vec<Row> {
    let paper = kind.paper();
    let main: Vec<&Analysis> = runs
        .iter()
        .filter(|r| r.purpose == Purpose::Main)
        .filter_map(|r| r.analysis.as_ref())
        .collect();
    let values = |f: &dyn Fn(&Analysis) -> Option<f64>| -> Vec<f64> {
        main.iter().filter_map(|a| f(a)).collect()
    };
    let errors = values(&|a| Some(a.evaluation.reconstruction_error));
    let n_features = main.first().map_or(0, |a| a.n_features());
    let word = if kind == ToyKind::HighRank {
        "groups"
    } else {
        "features"
    };
    let paper_error = paper
        .reconstruction_error
        .map_or("-".into(), |p| format!("{p}"));
    let mut rows = vec![row(
        kind,
        &format!(
            "reconstruction error (n_v {}, rank {}; 10,000 held-out samples)",
            paper.n_v, paper.rank
        ),
        summary(&errors, 3),
        &paper_error,
        paper
            .reconstruction_error
            .zip(median(&errors))
            .map(|(p, m)| m <= p),
    )];
    let structure = values(&|a| Some(a.structure_count() as f64));
    rows.push(row(
        kind,
        &format!(
            "{word} recovered by structure (>= 80% of a live subnetwork's input-layer norm^2)"
        ),
        count_summary(&structure, n_features),
        &format!("{n_features}/{n_features}"),
        median(&structure).map(|m| m >= n_features as f64),
    ));
    let intervention = values(&|a| Some(a.intervention_count() as f64));
    rows.push(row(
        kind,
        &format!("{word} recovered by intervention (>= 50% of the output change on its samples)"),
        count_summary(&intervention, n_features),
        "-",
        None,
    ));
    match kind {
        ToyKind::Tms => {
            let cos = values(&|a| a.min_encoder_cosine());
            rows.push(row(
                kind,
                "min |cos| encoder direction vs feature embedding",
                summary(&cos, 3),
                "parallel (target >= 0.95)",
                median(&cos).map(|m| m >= 0.95),
            ));
        }
        ToyKind::Tmcs => {
            let r = values(&|a| a.derived_a.as_ref().map(|d| d.r_authors));
            rows.push(row(
                kind,
                "derived A vs true A: Pearson r, as the authors compute it (unscaled, one column per subnetwork)",
                summary(&r, 3),
                "0.92 (printed as r^2; the authors' notebook prints r, 0.955 on their toy)",
                median(&r).map(|m| m >= 0.92),
            ));
            let r2 = values(&|a| a.derived_a.as_ref().map(|d| d.r_squared));
            rows.push(row(
                kind,
                "derived A vs true A: r^2 with least-squares scale, best subnetwork per column (ours)",
                summary(&r2, 3),
                "-",
                None,
            ));
        }
        ToyKind::HighRank => {
            let live = values(&|a| Some(a.live_count() as f64));
            rows.push(row(
                kind,
                "live subnetworks (of 10)",
                count_summary(&live, paper.n_v),
                "one per group (5), the rest dead",
                median(&live).map(|m| m == n_features as f64),
            ));
        }
        ToyKind::Squared => {
            let channel = values(&|a| a.median_over_recoverers(|s| s.channel_selectivity));
            rows.push(row(
                kind,
                "output-channel selectivity (median over recovering subnetworks)",
                summary(&channel, 1),
                "about 9x (the authors' figure)",
                None,
            ));
        }
        ToyKind::TmsParallel => {}
    }
    let selectivity = values(&|a| a.median_over_recoverers(|s| s.sample_selectivity));
    rows.push(row(
        kind,
        "sample selectivity (median over recovering subnetworks; diagnostic)",
        summary(&selectivity, 1),
        if kind == ToyKind::Squared {
            "about 1.2x (the authors' figure)"
        } else {
            "-"
        },
        None,
    ));
    let purity = values(&|a| Some(a.purity_count() as f64));
    rows.push(row(
        kind,
        &format!("{word} with a subnetwork of impact purity >= 0.8 (diagnostic)"),
        count_summary(&purity, n_features),
        "-",
        None,
    ));
    let other: Vec<f64> = runs
        .iter()
        .filter(|r| r.purpose == Purpose::OtherDivergence)
        .map(|r| r.error)
        .collect();
    if let Some(r) = runs.iter().find(|r| r.purpose == Purpose::OtherDivergence) {
        rows.push(row(
            kind,
            &format!(
                "reconstruction error with divergence {} (no target)",
                divergence_name(r.divergence)
            ),
            summary(&other, 3),
            &paper_error,
            None,
        ));
    }
    let points = sweep_medians(runs);
    if !points.is_empty() {
        rows.push(sweep_row(kind, &points));
    }
    rows
}

fn divergence_name(d: Divergence) -> &'static str {
    match d {
        Divergence::Mse => "mse",
        Divergence::MseAuthors => "mse-authors",
        Divergence::Kl => "kl",
    }
}

/// `(x, median error, errors)` per sweep point, `x` the rank (`high-rank`) or `n_v`: the
/// sweep runs, and the main runs of the first toy seed where their setting is a sweep point.
fn sweep_medians(runs: &[&RunResult]) -> Vec<(usize, f64, Vec<f64>)> {
    let Some(first) = runs.iter().find(|r| r.purpose == Purpose::Sweep) else {
        return Vec::new();
    };
    let points = sweep_points(first.toy);
    let sweep: Vec<&&RunResult> = runs
        .iter()
        .filter(|r| {
            r.purpose == Purpose::Sweep
                || (r.purpose == Purpose::Main
                    && r.toy_seed == first.toy_seed
                    && points.contains(&(r.n_v, r.rank)))
        })
        .collect();
    let x = |r: &RunResult| {
        if first.toy == ToyKind::HighRank {
            r.rank
        } else {
            r.n_v
        }
    };
    let mut xs: Vec<usize> = sweep.iter().map(|r| x(r)).collect();
    xs.sort_unstable();
    xs.dedup();
    xs.into_iter()
        .map(|at| {
            let errors: Vec<f64> = sweep
                .iter()
                .filter(|r| x(r) == at)
                .map(|r| r.error)
                .collect();
            (at, median(&errors).unwrap_or(f64::NAN), errors)
        })
        .collect()
}

fn sweep_row(kind: ToyKind, points: &[(usize, f64, Vec<f64>)]) -> Row {
    let (measure, paper) = match kind {
        ToyKind::HighRank => (
            "error at rank 1..5 (medians)",
            "rank 1 about as good as rank 5",
        ),
        _ => (
            "error at n_v 3, 5, 10, 15, rank 1 (medians)",
            "falls as n_v grows",
        ),
    };
    let ours = points
        .iter()
        .map(|(_, e, _)| format!("{e:.3}"))
        .collect::<Vec<_>>()
        .join(", ");
    let met = match kind {
        ToyKind::HighRank => points
            .first()
            .zip(points.last())
            .map(|(a, b)| a.1 <= b.1 + 0.05),
        _ => Some(points.windows(2).all(|w| w[1].1 <= w[0].1 + 0.01)),
    };
    row(kind, measure, ours, paper, met)
}

fn sweep_figure(kind: ToyKind, runs: &[&RunResult]) -> Result<Option<(String, String, String)>> {
    let points = sweep_medians(runs);
    if points.is_empty() {
        return Ok(None);
    }
    let (x_label, file) = match kind {
        ToyKind::HighRank => ("CP rank", "high_rank_error_vs_rank.svg"),
        _ => ("subnetworks n_v", "squared_error_vs_nv.svg"),
    };
    let spread = |pick: fn(&[f64]) -> f64, label: &str| Series {
        label: label.into(),
        points: points
            .iter()
            .map(|(x, _, e)| (*x as f32, pick(e) as f32))
            .collect(),
    };
    let svg = figures::error_curves(&ErrorCurves {
        title: format!("{kind}: reconstruction error against {x_label}"),
        x_label: x_label.into(),
        y_label: "relative reconstruction error (held-out)".into(),
        series: vec![
            Series {
                label: "median over seeds".into(),
                points: points
                    .iter()
                    .map(|&(x, m, _)| (x as f32, m as f32))
                    .collect(),
            },
            spread(|e| e.iter().copied().fold(f64::INFINITY, f64::min), "min"),
            spread(
                |e| e.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "max",
            ),
        ],
        reference: kind.paper().reconstruction_error.map(|p| ReferenceLine {
            label: format!(
                "paper at n_v {}, rank {}",
                kind.paper().n_v,
                kind.paper().rank
            ),
            value: p as f32,
        }),
    })?;
    Ok(Some((
        file.into(),
        format!("{kind}: error against {x_label}"),
        svg,
    )))
}

/// `reproduce.json`, `reproduce.md`, the sweep figures and `report.html`, then the table.
fn write_outputs(
    args: &ReproduceArgs,
    result: &Reproduction,
    report_figures: Vec<(String, String, String)>,
    ui: &Ui,
) -> Result<()> {
    let markdown = markdown_table(result);
    write_json(&args.out.join("reproduce.json"), result)?;
    nets::io::write_atomic(&args.out.join("reproduce.md"), markdown.as_bytes())?;
    for (file, _, svg) in &report_figures {
        nets::io::write_atomic(&args.out.join(file), svg.as_bytes())?;
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
        notes: Vec::new(),
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
    ui.result(&text, serde_json::to_value(result).unwrap_or_default());
    Ok(())
}

fn met_text(met: Option<bool>) -> String {
    match met {
        Some(true) => "yes".into(),
        Some(false) => "NO".into(),
        None => "-".into(),
    }
}

/// The table as markdown.
pub fn markdown_table(r: &Reproduction) -> String {
    let mut s = String::new();
    let runs = r.toy_seeds * r.seeds;
    let _ = writeln!(
        s,
        "Reproduction of the paper's Section 3: {} toy seeds x {} decomposition seeds per toy (seeds from {}), \
         epoch scale {}, divergence {}, {:.0} s. Each entry is the median [min, max] over the {runs} runs of a toy \
         (sweeps and the other divergence: {} seeds on the first toy seed); a target is met when the median meets it.\n",
        r.toy_seeds,
        r.seeds,
        r.seed,
        r.scale,
        divergence_name(r.divergence),
        r.seconds,
        r.seeds,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_give_the_median_and_the_range() {
        assert_eq!(summary(&[0.3, 0.1, 0.2], 2), "0.20 [0.10, 0.30]");
        assert_eq!(summary(&[0.25], 2), "0.25");
        assert_eq!(summary(&[], 2), "-");
        assert_eq!(count_summary(&[5.0, 4.0, 5.0], 5), "5/5 [4, 5]");
        assert_eq!(count_summary(&[5.0, 4.0], 5), "4.5/5 [4, 5]");
    }
}
