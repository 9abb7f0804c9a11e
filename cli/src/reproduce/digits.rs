//! Beyond the paper (`l3d reproduce --digits`): the two handwritten-digits networks trained
//! here from several model seeds, each decomposed from several seeds at the settings of
//! `l3d decompose --model-dir` (epochs scaled by `--scale`), and the number of classes that
//! get a subnetwork of their own ([`toys::classes`]), as rows of the reproduction's table.
//! notes/digits.md has the full measurement.

use super::results::Row;
use super::table::{count_summary, summary};
use crate::args::ReproduceArgs;
use crate::digits::decompose_config;
use crate::error::{Result, RunError};
use crate::ui::Ui;
use l3d::measure::evaluate;
use l3d::{L3dConfig, Trainer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use toys::circuits::AnalysisConfig;
use toys::classes::class_report;
use toys::digits::train::{train_digits, DigitsKind, DigitsRun};
use toys::digits::{Digits, CLASSES};

/// What one decomposition of a digits network found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigitsResult {
    pub kind: DigitsKind,
    pub model_seed: u64,
    pub seed: u64,
    pub held_out_accuracy: f64,
    pub reconstruction_error: f64,
    pub live: usize,
    /// The classes with a subnetwork of their own.
    pub classes_with_own: Vec<usize>,
}

/// The decomposition settings of a digits network with its epochs, learning-rate step and warm
/// start scaled by `scale` (at least 10 epochs; the warm start stays shorter than the run).
fn scaled(kind: DigitsKind, scale: f64, seed: u64) -> L3dConfig {
    let config = decompose_config(&kind.architecture());
    let warm = (config.warm_start_epochs as f64 * scale).round() as usize;
    let config = super::scaled(config, scale);
    L3dConfig {
        warm_start_epochs: warm.min(config.epochs / 2),
        seed,
        ..config
    }
}

/// One decomposition of a trained network on its training images, measured by class.
fn decompose(run: &DigitsRun, digits: &Digits, config: L3dConfig) -> Result<DigitsResult> {
    let x = run.kind.inputs(digits, &run.train);
    let labels = digits.labels_of(&run.train);
    let settings = AnalysisConfig::default();
    let mut trainer = Trainer::new(&run.model, config.clone(), &x)?;
    trainer.train(|_| true)?;
    let d = trainer.decomposition();
    let evaluation = evaluate(&run.model, d, &config, &x, settings.seed)?;
    let classes = class_report(
        &run.model,
        d,
        &config,
        (&x, &labels),
        CLASSES,
        &evaluation.p_act,
        &settings,
    )?;
    Ok(DigitsResult {
        kind: run.kind,
        model_seed: run.seed,
        seed: config.seed,
        held_out_accuracy: run.held_out_accuracy,
        reconstruction_error: evaluation.reconstruction_error,
        live: d.n_v - evaluation.dead,
        classes_with_own: classes.classes_with_own,
    })
}

/// Trains both networks from `args.toy_seeds` model seeds and decomposes each from
/// `args.seeds` seeds (in parallel; every run is deterministic).
pub fn run_digits(args: &ReproduceArgs, ui: &Ui) -> Result<Vec<DigitsResult>> {
    let digits = toys::digits::load();
    let model_seeds: Vec<u64> = (0..args.toy_seeds as u64).map(|s| args.seed + s).collect();
    let wanted: Vec<(DigitsKind, u64)> = DigitsKind::ALL
        .iter()
        .flat_map(|&k| model_seeds.iter().map(move |&s| (k, s)))
        .collect();
    let bar = ui.bar(wanted.len() as u64, "train digits");
    let trained = wanted
        .par_iter()
        .map(|&(kind, seed)| {
            let run = train_digits(kind, &digits, seed, &kind.train_config(), &mut |_| {})?;
            bar.inc(1);
            Ok(run)
        })
        .collect::<Result<Vec<DigitsRun>>>()?;
    bar.finish_and_clear();
    let jobs: Vec<(&DigitsRun, u64)> = trained
        .iter()
        .flat_map(|run| (0..args.seeds as u64).map(move |s| (run, args.seed + s)))
        .collect();
    let bar = ui.bar(jobs.len() as u64, "decompose digits");
    let results = jobs
        .par_iter()
        .map(|&(run, seed)| {
            if ui.interrupted() {
                return Err(RunError::Stopped);
            }
            let result = decompose(run, &digits, scaled(run.kind, args.scale, seed));
            bar.inc(1);
            result
        })
        .collect::<Result<Vec<_>>>()?;
    bar.finish_and_clear();
    Ok(results)
}

/// The table rows of the digits runs: per network, its held-out accuracy, the classes with a
/// subnetwork of their own (target: all ten, met when the median is 10) and the
/// reconstruction error, each the median and range over the runs.
pub fn digits_rows(results: &[DigitsResult]) -> Vec<Row> {
    let mut rows = Vec::new();
    for kind in DigitsKind::ALL {
        let mine: Vec<&DigitsResult> = results.iter().filter(|r| r.kind == kind).collect();
        if mine.is_empty() {
            continue;
        }
        let values =
            |f: &dyn Fn(&DigitsResult) -> f64| -> Vec<f64> { mine.iter().map(|r| f(r)).collect() };
        let own = values(&|r| r.classes_with_own.len() as f64);
        let row = |measure: &str, ours: String, met: Option<bool>| Row {
            model: kind.to_string(),
            measure: measure.into(),
            ours,
            paper: "beyond the paper".into(),
            met,
        };
        rows.push(row(
            "held-out accuracy",
            summary(&values(&|r| r.held_out_accuracy), 3),
            None,
        ));
        rows.push(row(
            "classes with a subnetwork of their own",
            count_summary(&own, CLASSES),
            toys::circuits::median(&own).map(|m| m >= CLASSES as f64),
        ));
        rows.push(row(
            "reconstruction error",
            summary(&values(&|r| r.reconstruction_error), 3),
            None,
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(kind: DigitsKind, own: usize, accuracy: f64) -> DigitsResult {
        DigitsResult {
            kind,
            model_seed: 0,
            seed: 0,
            held_out_accuracy: accuracy,
            reconstruction_error: 0.2,
            live: 32,
            classes_with_own: (0..own).collect(),
        }
    }

    #[test]
    fn rows_give_the_median_and_range_and_meet_the_target_at_ten() {
        let results = [
            result(DigitsKind::DigitsMlp, 10, 0.97),
            result(DigitsKind::DigitsMlp, 10, 0.98),
            result(DigitsKind::DigitsMlp, 9, 0.96),
            result(DigitsKind::DigitsCnn, 8, 0.97),
        ];
        let rows = digits_rows(&results);
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].ours, "0.970 [0.960, 0.980]");
        assert_eq!(rows[1].ours, "10/10 [9, 10]");
        assert_eq!(rows[1].met, Some(true));
        assert_eq!(rows[4].model, "digits-cnn");
        assert_eq!(rows[4].ours, "8/10");
        assert_eq!(rows[4].met, Some(false));
    }

    #[test]
    fn scaled_settings_keep_the_warm_start_inside_the_run() {
        let c = scaled(DigitsKind::DigitsCnn, 0.05, 3);
        assert_eq!(
            (c.epochs, c.warm_start_epochs, c.lr_step, c.seed),
            (10, 1, 2, 3)
        );
        assert!(c.validate().is_ok());
        let full = scaled(DigitsKind::DigitsMlp, 1.0, 0);
        assert_eq!(
            (full.epochs, full.warm_start_epochs, full.lr_step),
            (200, 20, 40)
        );
    }
}
