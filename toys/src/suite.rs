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
use crate::circuits::AnalysisConfig;
use crate::data::{self, DataSpec, Sparse};
use crate::models::check::{check_model, ModelCheck};
use crate::models::{kaiming_uniform, Target};
use crate::train::{train, Loss, TrainConfig, TrainError};
use l3d::{L3dConfig, OutputKind};
use nets::{Activation, Architecture, Layer, Sequential};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
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
            input_shape: Vec::new(),
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
