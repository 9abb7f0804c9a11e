//! Beyond the paper (`l3d reproduce --induction`): the induction transformer trained here
//! from several model seeds (epochs scaled by `--scale`), each decomposed from several seeds at
//! the settings of `l3d decompose --model-dir` (epochs scaled alike) three times, over the
//! eight attention matrices (the default), over layer 1's four alone, and over layer 0's query
//! and key alone (where its previous-token attention lies; with the attention saturated the
//! other two never put a subnetwork there), and measured by the induction report
//! ([`crate::induction::effects`]): the layer-0, induction and previous-token subnetworks, if
//! found, with their effects beside a random direction's. notes/induction.md has the full
//! measurement. Every trained model is saved as an `l3d train --model induction` folder in
//! `out/induction/model-<seed>/`.

use super::results::Row;
use super::table::summary;
use crate::args::ReproduceArgs;
use crate::error::{Result, RunError};
use crate::induction::InductionRecord;
use crate::ui::{Mode, Ui};
use l3d::measure::evaluate;
use l3d::{L3dConfig, Trainer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use toys::circuits::{median, AnalysisConfig};
use toys::induction::{AttentionScores, InductionTraining, SubnetworkEffect, TrainedInduction};

/// Which tensors a decomposition covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tensors {
    /// The eight attention matrices, the default of `l3d decompose --model-dir`.
    Attention,
    /// Layer 1's `q, k, v, o` alone.
    Layer1,
    /// Layer 0's `q` and `k` alone.
    Layer0Qk,
}

impl Tensors {
    const ALL: [Tensors; 3] = [Tensors::Attention, Tensors::Layer1, Tensors::Layer0Qk];

    fn label(self) -> &'static str {
        match self {
            Tensors::Attention => "induction, attention weights",
            Tensors::Layer1 => "induction, layer 1 only",
            Tensors::Layer0Qk => "induction, layer 0 q and k only",
        }
    }

    /// Whether the decomposed tensor `name` (of the default set) is in this set.
    fn holds(self, name: &str) -> bool {
        match self {
            Tensors::Attention => true,
            Tensors::Layer1 => name.starts_with("blocks.1."),
            Tensors::Layer0Qk => {
                name == "blocks.0.attn.q.weight" || name == "blocks.0.attn.k.weight"
            }
        }
    }
}

/// What one decomposition of a trained induction model found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InductionRun {
    pub model_seed: u64,
    pub seed: u64,
    pub tensors: Tensors,
    pub reconstruction_error: f64,
    pub live: usize,
    pub n_v: usize,
    /// The layer-0 subnetwork's effects, if one was found.
    pub layer0: Option<SubnetworkEffect>,
    /// The induction (layer-1) subnetwork's effects, if one was found.
    pub induction: Option<SubnetworkEffect>,
    /// The previous-token subnetwork's effects, if one was found.
    pub previous_token: Option<SubnetworkEffect>,
    /// The model's attention scores at `W0`, which the moves are compared with.
    pub attention: AttentionScores,
    /// The random direction's, the chance level of every effect.
    pub baseline: SubnetworkEffect,
    /// The median over live subnetworks of the repeated/first KL ratio.
    pub median_live_ratio: Option<f64>,
}

/// The trained models (their records) and every decomposition of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InductionReproduction {
    pub models: Vec<InductionRecord>,
    pub runs: Vec<InductionRun>,
}

/// The decomposition settings of an induction model for `tensors`, with the epochs and the
/// learning-rate step scaled by `scale` (at least 10 epochs).
fn config(arch: &nets::Architecture, tensors: Tensors, scale: f64, seed: u64) -> L3dConfig {
    let config = crate::induction::l3d_defaults(arch);
    let decompose = config
        .decompose
        .iter()
        .filter(|n| tensors.holds(n))
        .cloned()
        .collect();
    let config = L3dConfig {
        decompose,
        seed,
        ..config
    };
    super::scaled(config, scale)
}

/// One decomposition of a trained model on its held-out sequences, measured by the induction
/// report.
fn decompose(
    trained: &TrainedInduction,
    config: L3dConfig,
    tensors: Tensors,
) -> Result<InductionRun> {
    let x = &trained.test.tokens;
    let mut trainer = Trainer::new(&trained.model, config.clone(), x)?;
    trainer.train(|_| true)?;
    let d = trainer.decomposition();
    let evaluation = evaluate(
        &trained.model,
        d,
        &config,
        x,
        AnalysisConfig::default().seed,
    )?;
    let e = crate::induction::effects(&trained.model, d, &trained.test, &evaluation.p_act)?;
    let live: Vec<f64> = e
        .subnetworks
        .iter()
        .filter(|s| s.live)
        .map(|s| s.ratio)
        .collect();
    let role = |k: Option<usize>| k.map(|k| e.subnetworks[k].clone());
    Ok(InductionRun {
        model_seed: trained.seed,
        seed: config.seed,
        tensors,
        reconstruction_error: evaluation.reconstruction_error,
        live: d.n_v - evaluation.dead,
        n_v: d.n_v,
        layer0: role(e.layer0_subnetwork),
        induction: role(e.induction_subnetwork),
        previous_token: role(e.previous_token_subnetwork),
        attention: e.attention,
        baseline: e.baseline.clone(),
        median_live_ratio: median(&live),
    })
}

/// The training epochs at `scale`: at least 2.
pub fn scaled_epochs(scale: f64) -> usize {
    let epochs = InductionTraining::default().epochs;
    ((epochs as f64 * scale).round() as usize).max(2)
}

/// Trains the model from `args.toy_seeds` seeds (saving each), and decomposes each from
/// `args.seeds` seeds over both sets of tensors (in parallel; every run is deterministic).
pub fn run_induction(args: &ReproduceArgs, ui: &Ui) -> Result<InductionReproduction> {
    let seeds: Vec<u64> = (0..args.toy_seeds as u64).map(|s| args.seed + s).collect();
    let epochs = scaled_epochs(args.scale);
    let bar = ui.bar(seeds.len() as u64, "train induction");
    let quiet = Ui::new(Mode::Quiet);
    let trained = seeds
        .par_iter()
        .map(|&seed| {
            let (trained, record) = crate::induction::train(seed, epochs, &quiet)?;
            let dir = args.out.join("induction").join(format!("model-{seed}"));
            crate::induction::save(&trained, &record, &dir)?;
            bar.inc(1);
            Ok((trained, record))
        })
        .collect::<Result<Vec<(TrainedInduction, InductionRecord)>>>()?;
    bar.finish_and_clear();
    let jobs: Vec<(&TrainedInduction, u64, Tensors)> = trained
        .iter()
        .flat_map(|(t, _)| {
            (0..args.seeds as u64)
                .flat_map(move |s| Tensors::ALL.map(|tensors| (t, args.seed + s, tensors)))
        })
        .collect();
    let bar = ui.bar(jobs.len() as u64, "decompose induction");
    let runs = jobs
        .par_iter()
        .map(|&(t, seed, tensors)| {
            if ui.interrupted() {
                return Err(RunError::Stopped);
            }
            let c = config(t.model.architecture(), tensors, args.scale, seed);
            let result = decompose(t, c, tensors);
            bar.inc(1);
            result
        })
        .collect::<Result<Vec<_>>>()?;
    bar.finish_and_clear();
    Ok(InductionReproduction {
        models: trained.into_iter().map(|(_, r)| r).collect(),
        runs,
    })
}

/// `k/n` of the runs where `found` holds.
fn found(runs: &[&InductionRun], found: impl Fn(&InductionRun) -> bool) -> String {
    let k = runs.iter().filter(|r| found(r)).count();
    format!("{k}/{}", runs.len())
}

/// The table rows: the models' accuracy and attention (over model seeds; the copy is met
/// above 0.9 on repeated positions, a previous-token head above 0.5 of layer 0's weight on
/// `t - 1`), then per set of tensors the reconstruction error, how many runs found each
/// subnetwork, and its effects beside the random direction's (over the runs that found it).
pub fn induction_rows(r: &InductionReproduction) -> Vec<Row> {
    let mut rows = Vec::new();
    let row = |model: &str, measure: &str, ours: String, met: Option<bool>| Row {
        model: model.into(),
        measure: measure.into(),
        ours,
        paper: "beyond the paper".into(),
        met,
    };
    let models =
        |f: &dyn Fn(&InductionRecord) -> f64| -> Vec<f64> { r.models.iter().map(f).collect() };
    let above = |v: &[f64], x: f64| median(v).map(|m| m > x);
    if !r.models.is_empty() {
        let rep = models(&|m| m.accuracy.repeated);
        rows.push(row(
            "induction",
            "accuracy on repeated positions (target > 0.9)",
            summary(&rep, 3),
            above(&rep, 0.9),
        ));
        rows.push(row(
            "induction",
            "accuracy on first occurrences (chance 1/64)",
            summary(&models(&|m| m.accuracy.first), 3),
            None,
        ));
        rows.push(row(
            "induction",
            "layer-1 attention on the induction target",
            summary(&models(&|m| m.attention.layer1_induction), 3),
            None,
        ));
        let prev = models(&|m| m.attention.layer0_previous_token);
        rows.push(row(
            "induction",
            "layer-0 attention on the previous token (a previous-token head: > 0.5)",
            summary(&prev, 3),
            above(&prev, 0.5),
        ));
    }
    for tensors in Tensors::ALL {
        let mine: Vec<&InductionRun> = r.runs.iter().filter(|x| x.tensors == tensors).collect();
        if mine.is_empty() {
            continue;
        }
        let model = tensors.label();
        let values = |f: &dyn Fn(&InductionRun) -> Option<f64>| -> Vec<f64> {
            mine.iter().filter_map(|x| f(x)).collect()
        };
        rows.push(row(
            model,
            "reconstruction error",
            summary(&values(&|x| Some(x.reconstruction_error)), 3),
            None,
        ));
        rows.push(row(
            model,
            "live subnetworks",
            summary(&values(&|x| Some(x.live as f64)), 1),
            None,
        ));
        rows.push(row(
            model,
            "random direction: repeated/first KL ratio",
            summary(&values(&|x| Some(x.baseline.ratio)), 2),
            None,
        ));
        rows.push(row(
            model,
            "median live subnetwork: repeated/first KL ratio",
            summary(&values(&|x| x.median_live_ratio), 2),
            None,
        ));
        let fall = |s: &SubnetworkEffect, x: &InductionRun| {
            x.attention.layer0_previous_token - s.attention.layer0_previous_token
        };
        rows.push(row(
            model,
            "random direction moved: fall of layer-0 attention on the previous token",
            summary(&values(&|x| Some(fall(&x.baseline, x))), 3),
            None,
        ));
        type Role = fn(&InductionRun) -> Option<&SubnetworkEffect>;
        let layer0: (&str, &str, Role) = ("a", "layer-0 subnetwork", |x| x.layer0.as_ref());
        let induction: (&str, &str, Role) =
            ("an", "induction subnetwork", |x| x.induction.as_ref());
        let previous: (&str, &str, Role) = ("a", "previous-token subnetwork", |x| {
            x.previous_token.as_ref()
        });
        let roles = match tensors {
            Tensors::Attention | Tensors::Layer1 => vec![layer0, induction],
            Tensors::Layer0Qk => vec![previous],
        };
        for (article, name, role) in roles {
            rows.push(row(
                model,
                &format!("runs with {article} {name}"),
                found(&mine, |x| role(x).is_some()),
                None,
            ));
            if mine.iter().all(|x| role(x).is_none()) {
                continue;
            }
            let of = |f: &dyn Fn(&SubnetworkEffect, &InductionRun) -> f64| {
                values(&|x| role(x).map(|s| f(s, x)))
            };
            rows.push(row(
                model,
                &format!("{name}: repeated/first KL ratio"),
                summary(&of(&|s, _| s.ratio), 2),
                None,
            ));
            rows.push(row(
                model,
                &format!("{name}: KL ratio over the random direction's"),
                summary(&of(&|s, x| s.ratio / x.baseline.ratio), 2),
                None,
            ));
            rows.push(row(
                model,
                &format!("{name}: |dlogp| on repeated positions over the random direction's"),
                summary(
                    &of(&|s, x| s.logprob_repeated / x.baseline.logprob_repeated),
                    2,
                ),
                None,
            ));
            rows.push(row(
                model,
                &format!("{name} moved: accuracy on repeated positions"),
                summary(&of(&|s, _| s.accuracy_repeated), 3),
                None,
            ));
            rows.push(row(
                model,
                &format!("{name} moved: layer-1 attention on the induction target"),
                summary(&of(&|s, _| s.attention.layer1_induction), 3),
                None,
            ));
            rows.push(row(
                model,
                &format!("{name} moved: fall of layer-0 attention on the previous token"),
                summary(&of(&fall), 3),
                None,
            ));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use toys::induction::{AttentionScores, LayerShares};

    fn effect(index: usize, ratio: f64, accuracy: f64) -> SubnetworkEffect {
        SubnetworkEffect {
            index,
            live: true,
            kl_repeated: ratio,
            kl_first: 1.0,
            ratio,
            logprob_repeated: 2.0 * ratio,
            logprob_first: 1.0,
            logprob_ratio: 2.0 * ratio,
            logprob_change_repeated: -1.0,
            accuracy_repeated: accuracy,
            accuracy_first: 0.01,
            attention: AttentionScores {
                layer0_previous_token: 0.2,
                layer0_self: 0.5,
                layer0_previous_token_argmax: 0.1,
                layer1_induction: accuracy / 2.0,
                layer1_induction_argmax: 0.5,
                layer1_previous_token: 0.0,
                layer0_induction: 0.0,
            },
            shares: LayerShares::default(),
        }
    }

    fn run(tensors: Tensors, layer0: Option<f64>, error: f64) -> InductionRun {
        InductionRun {
            model_seed: 0,
            seed: 0,
            tensors,
            reconstruction_error: error,
            live: 9,
            n_v: 16,
            layer0: layer0.map(|r| effect(1, r, 0.1)),
            induction: None,
            previous_token: None,
            attention: effect(0, 1.0, 1.0).attention,
            baseline: effect(16, 0.5, 0.9),
            median_live_ratio: Some(1.5),
        }
    }

    fn find<'a>(rows: &'a [Row], model: &str, measure: &str) -> &'a Row {
        rows.iter()
            .find(|r| r.model == model && r.measure == measure)
            .unwrap_or_else(|| panic!("no row {model}: {measure} in {rows:?}"))
    }

    #[test]
    fn rows_give_medians_over_the_runs_that_found_each_subnetwork() {
        let record = |seed, repeated| {
            let mut a = crate::induction::InductionRecord {
                seed,
                training: InductionTraining::default(),
                accuracy: toys::induction::Accuracy {
                    repeated,
                    first: 0.002,
                    other: 0.02,
                    repeated_positions: 5000,
                    first_positions: 5000,
                },
                attention: effect(0, 1.0, 1.0).attention,
                first_epoch_loss: 129.0,
                final_loss: 97.0,
                train_seconds: 60.0,
            };
            a.attention.layer0_previous_token = 0.6;
            a
        };
        let r = InductionReproduction {
            models: vec![record(0, 0.98), record(1, 0.99), record(2, 0.85)],
            runs: vec![
                run(Tensors::Attention, Some(2.0), 0.7),
                run(Tensors::Attention, Some(1.0), 0.8),
                run(Tensors::Attention, None, 0.6),
                run(Tensors::Layer1, None, 0.75),
            ],
        };
        let rows = induction_rows(&r);
        let accuracy = find(
            &rows,
            "induction",
            "accuracy on repeated positions (target > 0.9)",
        );
        assert_eq!(accuracy.ours, "0.980 [0.850, 0.990]");
        assert_eq!(accuracy.met, Some(true));
        let previous = &rows[3];
        assert!(previous
            .measure
            .starts_with("layer-0 attention on the previous token"));
        assert_eq!(previous.met, Some(true), "median 0.6 > 0.5");
        let attention = "induction, attention weights";
        assert_eq!(
            find(&rows, attention, "reconstruction error").ours,
            "0.700 [0.600, 0.800]"
        );
        assert_eq!(
            find(&rows, attention, "runs with a layer-0 subnetwork").ours,
            "2/3"
        );
        // Over the two runs that found one: ratios 2 and 1 against the baseline's 0.5.
        assert_eq!(
            find(
                &rows,
                attention,
                "layer-0 subnetwork: KL ratio over the random direction's"
            )
            .ours,
            "3.00 [2.00, 4.00]"
        );
        assert_eq!(
            find(&rows, attention, "runs with an induction subnetwork").ours,
            "0/3"
        );
        assert!(
            !rows
                .iter()
                .any(|r| r.measure.starts_with("induction subnetwork:")),
            "no effect rows for a subnetwork no run found"
        );
        let layer1 = "induction, layer 1 only";
        assert_eq!(find(&rows, layer1, "reconstruction error").ours, "0.750");
        // The model attends 0.2 to the previous token, and so does every moved one here.
        assert_eq!(
            find(
                &rows,
                attention,
                "layer-0 subnetwork moved: fall of layer-0 attention on the previous token"
            )
            .ours,
            "0.000 [0.000, 0.000]"
        );
        assert!(
            !rows
                .iter()
                .any(|r| r.measure.contains("previous-token subnetwork")),
            "the previous-token role is reported for layer 0's q and k alone"
        );
    }

    #[test]
    fn layer_one_runs_decompose_its_four_matrices_at_scaled_epochs() {
        let arch = toys::induction::architecture(&Default::default());
        let c = config(&arch, Tensors::Layer1, 0.05, 3);
        assert_eq!(c.decompose.len(), 4);
        assert!(c.decompose.iter().all(|n| n.starts_with("blocks.1.attn.")));
        let qk = config(&arch, Tensors::Layer0Qk, 1.0, 0).decompose;
        assert_eq!(qk, ["blocks.0.attn.q.weight", "blocks.0.attn.k.weight"]);
        assert_eq!((c.epochs, c.lr_step, c.seed), (10, 1, 3));
        let full = config(&arch, Tensors::Attention, 1.0, 0);
        assert_eq!(
            (full.epochs, full.lr_step, full.decompose.len()),
            (200, 20, 8)
        );
        assert!(c.validate().is_ok() && full.validate().is_ok());
        assert_eq!((scaled_epochs(1.0), scaled_epochs(0.01)), (60, 2));
    }
}
