//! A ground-truth suite of users' models: small networks trained the ordinary PyTorch way
//! (untied weights, PyTorch's default initialisation, AdamW at its default weight decay 0.01),
//! saved in the layout a user hands to `l3d decompose --arch --weights --inputs`, whose
//! circuits are known because their inputs are sparse features.
//!
//! | model | architecture (`nn.Sequential`) | inputs | trained on |
//! |---|---|---|---|
//! | `autoencoder` | `Linear(10, 4)`, `Linear(4, 10)`, `ReLU` | sparse(10) | MSE to `x` |
//! | `gelu-mlp` | `Linear(16, 8)`, `GELU`, `Linear(8, 16)` | sparse(16) | MSE to `A x`, `A_ij ~ U(0, 1)` |
//! | `classifier` | `Linear(10, 16)`, `ReLU`, `Linear(16, 10)`, logits | sparse(10) | cross-entropy, class `argmax_j x_j` |
//!
//! Feature `j`'s circuit is what the model does with input `j`; a decomposition recovers it
//! when a subnetwork is built on input `j` and moving along it acts on `j`'s samples
//! ([`crate::analysis`]). A model may not represent every feature (a feature squeezed out of
//! the 4 dimensions of the autoencoder, say): each trained model is checked
//! ([`crate::models::check`]) and recovery is counted over the features it represents.

use crate::analysis::{analyse, Analysis, GroundTruth};
use crate::circuits::{median, AnalysisConfig};
use crate::data::{self, DataSpec, Sparse};
use crate::models::check::{check_model, ModelCheck};
use crate::models::{kaiming_uniform, Target};
use crate::train::{train, Loss, TrainConfig, TrainError};
use l3d::{L3dConfig, OutputKind};
use nets::{Activation, Architecture, Layer, Sequential};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use tensor::Tensor;

/// The models of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum SuiteModel {
    /// 10 features through 4 hidden units, `y = ReLU(W_2 (W_1 x + b_1) + b_2)`, trained to
    /// reproduce `x`.
    Autoencoder,
    /// 16 features through 8 GELU units to 16 linear outputs, trained on `y = A x`.
    GeluMlp,
    /// 10 features through 16 ReLU units to 10 logits, trained to name the largest feature.
    Classifier,
}

impl SuiteModel {
    pub const ALL: [SuiteModel; 3] = [
        SuiteModel::Autoencoder,
        SuiteModel::GeluMlp,
        SuiteModel::Classifier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SuiteModel::Autoencoder => "autoencoder",
            SuiteModel::GeluMlp => "gelu-mlp",
            SuiteModel::Classifier => "classifier",
        }
    }

    /// The number of input features (and circuits).
    pub fn n_features(self) -> usize {
        match self {
            SuiteModel::Autoencoder | SuiteModel::Classifier => 10,
            SuiteModel::GeluMlp => 16,
        }
    }

    /// The architecture, named as `nn.Sequential` names its layers (`0`, `1`, `2`).
    pub fn architecture(self) -> Architecture {
        let n = self.n_features();
        let act = |function| Layer::Activation { function };
        let (layers, output) = match self {
            SuiteModel::Autoencoder => (
                vec![linear("0", n, 4), linear("1", 4, n), act(Activation::Relu)],
                OutputKind::Regression,
            ),
            SuiteModel::GeluMlp => (
                vec![linear("0", n, 8), act(Activation::Gelu), linear("2", 8, n)],
                OutputKind::Regression,
            ),
            SuiteModel::Classifier => (
                vec![
                    linear("0", n, 16),
                    act(Activation::Relu),
                    linear("2", 16, n),
                ],
                OutputKind::Logits,
            ),
        };
        Architecture {
            input_dim: n,
            layers,
            output,
        }
    }

    pub fn data(self) -> DataSpec {
        Sparse::new(self.n_features()).into()
    }

    /// The function trained for; the `A` of `gelu-mlp` is drawn from `seed`.
    pub fn target(self, seed: u64) -> Target {
        match self {
            SuiteModel::Autoencoder => Target::Identity,
            SuiteModel::Classifier => Target::Class,
            SuiteModel::GeluMlp => {
                let n = self.n_features();
                let mut rng = tensor::rng(seed);
                rng.set_stream(1);
                let a = (0..n)
                    .map(|_| (0..n).map(|_| rng.gen_range(0.0..1.0)).collect())
                    .collect();
                Target::Linear { a }
            }
        }
    }

    /// Training the ordinary way: AdamW at lr 1e-3 with PyTorch's default weight decay 0.01,
    /// batches of 64, 10,000 samples, 300 epochs, MSE or cross-entropy; no seed search.
    pub fn train_config(self) -> TrainConfig {
        TrainConfig {
            epochs: 300,
            samples: 10_000,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.01,
            early_stop: None,
            max_seeds: 1,
            finish_kept: false,
            loss: match self {
                SuiteModel::Classifier => Loss::CrossEntropy,
                _ => Loss::Mse,
            },
            ..TrainConfig::default()
        }
    }
}

impl fmt::Display for SuiteModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn linear(name: &str, in_features: usize, out_features: usize) -> Layer {
    Layer::Linear {
        name: name.into(),
        in_features,
        out_features,
        bias: true,
    }
}

/// A trained model of the suite with what it is known to do.
#[derive(Debug, Clone)]
pub struct Member {
    pub kind: SuiteModel,
    pub seed: u64,
    pub model: Sequential<f32>,
    pub target: Target,
    pub data: DataSpec,
    pub check: ModelCheck,
}

impl Member {
    pub fn truth(&self) -> GroundTruth<'_> {
        GroundTruth {
            model: &self.model,
            target: &self.target,
            data: &self.data,
        }
    }

    /// The features the model represents (see [`crate::models::check`]).
    pub fn represented(&self) -> Vec<usize> {
        (0..self.check.unexplained.len())
            .filter(|&j| self.check.unexplained[j] < crate::models::check::REPRESENTED_BELOW)
            .collect()
    }

    /// `n` fresh inputs from the model's distribution, drawn from `seed`.
    pub fn inputs(&self, n: usize, seed: u64) -> Tensor<f32> {
        data::sample(&self.data, n, &mut tensor::rng(seed))
    }
}

/// Trains the suite model `kind` from `seed`: PyTorch's default initialisation, then
/// [`SuiteModel::train_config`].
pub fn train_member(kind: SuiteModel, seed: u64) -> Result<Member, TrainError> {
    let arch = kind.architecture();
    let mut init = tensor::rng(seed);
    init.set_stream(2);
    let params = kaiming_uniform(&arch, &mut init);
    let mut model = Sequential::new(arch, params).expect("kaiming_uniform follows the slots");
    let (target, data) = (kind.target(seed), kind.data());
    train(
        &mut model,
        None,
        &target,
        &data,
        &kind.train_config(),
        seed,
        &mut |_| {},
    )?;
    let check = check_model(&model, &target, &data, seed);
    Ok(Member {
        kind,
        seed,
        model,
        target,
        data,
        check,
    })
}

/// How well a decomposition of a member recovered its represented features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    pub represented: usize,
    pub by_structure: usize,
    pub by_intervention: usize,
    pub error: f64,
}

impl Recovery {
    /// Counts the represented features recovered in `a`.
    pub fn of(member: &Member, a: &Analysis) -> Self {
        let represented = member.represented();
        let count = |r: &[Option<usize>]| represented.iter().filter(|&&j| r[j].is_some()).count();
        Self {
            represented: represented.len(),
            by_structure: count(&a.recovered_by_structure),
            by_intervention: count(&a.recovered_by_intervention),
            error: a.evaluation.reconstruction_error,
        }
    }
}

/// Decomposes a member with `config` on 1,000 inputs (drawn from `config.seed + 1`) and judges
/// the result against its ground truth.
pub fn decompose_member(
    member: &Member,
    config: &L3dConfig,
    settings: &AnalysisConfig,
) -> l3d::Result<(Analysis, Recovery)> {
    let x = member.inputs(1000, config.seed + 1);
    let mut trainer = l3d::Trainer::new(&member.model, config.clone(), &x)?;
    trainer.train(|_| true)?;
    let a = analyse(
        member.truth(),
        trainer.decomposition(),
        config,
        trainer.history(),
        settings,
    )?;
    let r = Recovery::of(member, &a);
    Ok((a, r))
}

/// Where a member is saved, in the layout a user hands to `l3d decompose`.
pub struct SavedMember {
    pub arch: PathBuf,
    pub weights: PathBuf,
    pub inputs: PathBuf,
}

/// Saves a member into `dir`: `model.toml`, `model.safetensors`, `inputs.npy` (1,000 inputs
/// drawn from `seed + 1`, as a user would pass their data) and `truth.json` (its target,
/// input distribution and check).
pub fn save_member(member: &Member, dir: &Path) -> crate::run::Result<SavedMember> {
    std::fs::create_dir_all(dir)
        .map_err(|e| crate::run::msg(format!("cannot create {}: {e}", dir.display())))?;
    let saved = SavedMember {
        arch: dir.join("model.toml"),
        weights: dir.join("model.safetensors"),
        inputs: dir.join("inputs.npy"),
    };
    nets::io::save_model(&member.model, &saved.arch, &saved.weights)?;
    nets::io::write_npy(&saved.inputs, &member.inputs(1000, member.seed + 1))?;
    let truth = serde_json::json!({
        "model": member.kind,
        "seed": member.seed,
        "target": member.target,
        "data": member.data,
        "check": member.check,
        "represented": member.represented(),
    });
    crate::run::write_json(&dir.join("truth.json"), &truth)?;
    Ok(saved)
}

/// The settings of a suite run.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// Training seeds per model (0, 1, ..).
    pub model_seeds: usize,
    /// Decomposition seeds per trained model (0, 1, ..).
    pub seeds: usize,
    /// Scale of the decomposition epochs (1: the paper's 1,000).
    pub scale: f64,
    /// The tensor set decomposed; `None`: the defaults of `l3d decompose` for users' models.
    pub decompose: Option<nets::TensorSet>,
    pub out: PathBuf,
}

/// One decomposition of the suite and what it recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteRun {
    pub model: SuiteModel,
    pub model_seed: u64,
    pub seed: u64,
    pub decompose: Vec<String>,
    pub recovery: Recovery,
    /// The verdict the report gave (for the run that wrote its folder).
    pub verdict: Option<String>,
}

/// Trains every model of the suite, saves it in the user layout under
/// `out/<model>/seed-<s>/`, and decomposes it from the saved files with the settings a user
/// gets from `l3d decompose --arch --weights --inputs --n-v <features>` (or the set of tensors
/// asked for); the first decomposition of each model writes the full output folder
/// (`.../decomposition/`). Runs in parallel; each run is deterministic.
pub fn run_suite(
    settings: &SuiteSettings,
    ui: &crate::ui::Ui,
) -> crate::run::Result<Vec<SuiteRun>> {
    use rayon::prelude::*;
    let wanted: Vec<(SuiteModel, u64)> = SuiteModel::ALL
        .iter()
        .flat_map(|&k| (0..settings.model_seeds as u64).map(move |s| (k, s)))
        .collect();
    let bar = ui.bar(wanted.len() as u64, "train suite");
    let members = wanted
        .par_iter()
        .map(|&(kind, seed)| {
            let member = train_member(kind, seed)?;
            let dir = settings.out.join(kind.name()).join(format!("seed-{seed}"));
            let saved = save_member(&member, &dir)?;
            bar.inc(1);
            Ok((member, saved, dir))
        })
        .collect::<crate::run::Result<Vec<_>>>()?;
    bar.finish_and_clear();
    let jobs: Vec<(usize, u64)> = (0..members.len())
        .flat_map(|m| (0..settings.seeds as u64).map(move |s| (m, s)))
        .collect();
    let bar = ui.bar(jobs.len() as u64, "decompose");
    let runs = jobs
        .par_iter()
        .map(|&(m, seed)| {
            let (member, saved, dir) = &members[m];
            let run = decompose_saved(member, saved, dir, seed, settings)?;
            bar.inc(1);
            Ok(run)
        })
        .collect::<crate::run::Result<Vec<_>>>()?;
    bar.finish_and_clear();
    Ok(runs)
}

/// One decomposition of a saved member, from its files, as `l3d decompose` would make it.
fn decompose_saved(
    member: &Member,
    saved: &SavedMember,
    dir: &Path,
    seed: u64,
    settings: &SuiteSettings,
) -> crate::run::Result<SuiteRun> {
    use crate::run::{DataSource, ModelSource, RunConfig};
    let arch = nets::io::read_architecture(&saved.arch)?;
    let base = crate::run::defaults_for(&arch);
    let epochs = ((base.epochs as f64 * settings.scale).round() as usize).max(10);
    let config = L3dConfig {
        n_subnetworks: member.kind.n_features(),
        epochs,
        lr_step: ((base.lr_step as f64 * settings.scale).round() as usize).max(1),
        decompose: settings
            .decompose
            .map_or(base.decompose.clone(), |set| arch.tensors(set)),
        seed,
        ..base
    };
    let analysis_settings = AnalysisConfig::default();
    let (analysis, verdict) = if seed == 0 {
        let run = RunConfig {
            model: ModelSource::Files {
                arch: saved.arch.clone(),
                weights: saved.weights.clone(),
            },
            data: DataSource::File {
                path: saved.inputs.clone(),
            },
            l3d: config.clone(),
            analysis: analysis_settings.clone(),
        };
        let quiet = crate::ui::Ui::new(crate::ui::Mode::Quiet);
        let outcome = crate::run::decompose(&run, &dir.join("decomposition"), None, &quiet)?;
        let a = analyse(
            member.truth(),
            &outcome.trained.decomposition,
            &config,
            &outcome.trained.history,
            &analysis_settings,
        )?;
        (a, Some(outcome.generic.verdict))
    } else {
        let model = nets::io::load_model(&saved.arch, &saved.weights)?;
        let x = nets::io::load_inputs(&saved.inputs)?;
        let mut trainer = l3d::Trainer::new(&model, config.clone(), &x)?;
        trainer.train(|_| true)?;
        let a = analyse(
            member.truth(),
            trainer.decomposition(),
            &config,
            trainer.history(),
            &analysis_settings,
        )?;
        (a, None)
    };
    Ok(SuiteRun {
        model: member.kind,
        model_seed: member.seed,
        seed,
        decompose: config.decompose.clone(),
        recovery: Recovery::of(member, &analysis),
        verdict,
    })
}

/// The suite's table: per model, the represented features and the share of them recovered by
/// structure and by intervention, and the held-out error, each as median [min, max] over the
/// runs; a model meets the target when both medians are at least 0.8.
pub fn suite_table(runs: &[SuiteRun]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| model | tensors decomposed | represented features | recovered by structure | recovered by intervention | reconstruction error | target (>= 80% both) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for kind in SuiteModel::ALL {
        let mine: Vec<&SuiteRun> = runs.iter().filter(|r| r.model == kind).collect();
        let Some(first) = mine.first() else {
            continue;
        };
        let share = |f: &dyn Fn(&Recovery) -> usize| -> Vec<f64> {
            mine.iter()
                .map(|r| f(&r.recovery) as f64 / r.recovery.represented.max(1) as f64)
                .collect()
        };
        let structure = share(&|r| r.by_structure);
        let intervention = share(&|r| r.by_intervention);
        let represented: Vec<f64> = mine.iter().map(|r| r.recovery.represented as f64).collect();
        let errors: Vec<f64> = mine.iter().map(|r| r.recovery.error).collect();
        let met = median(&structure).is_some_and(|m| m >= 0.8)
            && median(&intervention).is_some_and(|m| m >= 0.8);
        let _ = writeln!(
            s,
            "| {kind} | {} | {} of {} | {} | {} | {} | {} |",
            first.decompose.join(", "),
            range(&represented, 0),
            kind.n_features(),
            range(&structure, 2),
            range(&intervention, 2),
            range(&errors, 3),
            if met { "yes" } else { "NO" }
        );
    }
    s
}

/// `median [min, max]` with `digits` decimals.
fn range(values: &[f64], digits: usize) -> String {
    let m = median(values).unwrap_or(f64::NAN);
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{m:.digits$} [{lo:.digits$}, {hi:.digits$}]")
}
