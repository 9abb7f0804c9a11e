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
//! (`out/<toy>/`); every trained toy is saved in `out/<toy>/toy-<seed>/`. With `--digits`, the
//! handwritten-digits networks follow, beyond the paper ([`digits`]), and with `--induction`
//! the induction transformer ([`induction`]).

mod digits;
mod induction;
mod results;
mod table;

pub use digits::DigitsResult;
pub use induction::{InductionReproduction, InductionRun, Tensors};
pub use results::{Purpose, Reproduction, Row, RunResult};

use crate::args::ReproduceArgs;
use crate::config::{DataSource, ModelSource, RunConfig};
use crate::error::{Result, RunError};
use crate::figures::{self, Report, ReportFigure};
use crate::files::write_json;
use crate::run;
use crate::ui::{Mode, Ui};
use l3d::measure::evaluate;
use l3d::{Divergence, L3dConfig, Trainer};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;
use table::{markdown_table, met_text, rows_for, sweep_figure};
use toys::circuits::AnalysisConfig;
use toys::models::{ToyKind, ToyModel};
use toys::train::TrainConfig;

/// Epoch counts scaled for a quick look: at least 10, and the learning-rate step scaled alike
/// (for every decomposition that `reproduce` and `suite` make at a `--scale`).
pub(crate) fn scaled(config: L3dConfig, scale: f64) -> L3dConfig {
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
            for (n_v, rank) in toy.paper_sweep().into_iter().filter(|&p| p != paper) {
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
    let digits = match args.digits {
        true => digits::run_digits(args, ui)?,
        false => Vec::new(),
    };
    let induction = match args.induction {
        true => Some(induction::run_induction(args, ui)?),
        false => None,
    };
    let mut rows = Vec::new();
    let mut report_figures = Vec::new();
    for &kind in &kinds {
        let mine: Vec<&RunResult> = runs.iter().filter(|r| r.toy == kind).collect();
        rows.extend(rows_for(kind, &mine));
        if let Some(fig) = sweep_figure(kind, &mine)? {
            report_figures.push(fig);
        }
    }
    rows.extend(digits::digits_rows(&digits));
    if let Some(r) = &induction {
        rows.extend(induction::induction_rows(r));
    }
    let result = Reproduction {
        scale: args.scale,
        seed: args.seed,
        toy_seeds: args.toy_seeds,
        seeds: args.seeds,
        divergence: args.divergence,
        rows,
        runs,
        digits,
        induction,
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
            labels: None,
            fingerprints: None,
        };
        let quiet = Ui::new(Mode::Quiet);
        let out = args.out.join(job.toy.name());
        let outcome = run::decompose(&run_config, &out, run::Options::replacing(), &quiet)?;
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
        tables: Vec::new(),
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
