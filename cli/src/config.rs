//! What decides a run and what it was computed from, as `config.json` records them: where
//! the model and the inputs come from ([`ModelSource`], [`DataSource`]), the settings
//! ([`RunConfig`]), read and written with input paths relative to the file; and fingerprints
//! (FNV-1a) of the model's architecture, its weights and the inputs ([`Fingerprints`]),
//! checked by `report` and `intervene` before they rebuild anything, so that results are
//! never silently recomputed against weights or inputs replaced after the run.

use crate::error::{Result, RunError};
use crate::files::{read_json, write_json};
use crate::ui::Ui;
use l3d::{L3dConfig, Model};
use nets::{Sequential, TensorSet};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tensor::Tensor;
use toys::circuits::AnalysisConfig;
use toys::data::DataSpec;
use toys::models::{ToyKind, ToyModel};

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ModelSource {
    /// A toy of WORKLOADS.md trained here from `seed` (at most `train_epochs` epochs, with early
    /// stopping once converged).
    Toy {
        kind: ToyKind,
        seed: u64,
        train_epochs: usize,
    },
    /// A toy saved by `l3d train` (a folder with `model.toml`, `model.safetensors`, `toy.json`).
    ToyDir { dir: PathBuf },
    /// A user's model: an architecture file (TOML or JSON) and safetensors weights.
    Files { arch: PathBuf, weights: PathBuf },
}

/// Where the inputs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataSource {
    /// Fresh samples from a toy's own input distribution.
    Fresh { samples: usize, seed: u64 },
    /// Samples of a `.npy` or safetensors file (`[N, ..input shape]`).
    File { path: PathBuf },
    /// Fresh samples from a named generator (for users' models without an input file).
    Generator {
        spec: DataSpec,
        samples: usize,
        seed: u64,
    },
}

/// Everything that decides a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelSource,
    pub data: DataSource,
    pub l3d: L3dConfig,
    #[serde(default)]
    pub analysis: AnalysisConfig,
    /// Class labels of the data's rows (a `.npy` of integers), for the per-class report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<PathBuf>,
    /// What the run was computed from, recorded by the run (absent in a config written by
    /// hand or by an older version; `--config` ignores it and records the new run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<Fingerprints>,
}

impl RunConfig {
    /// The paths of the run's inputs.
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = match &self.model {
            ModelSource::Toy { .. } => vec![],
            ModelSource::ToyDir { dir } => vec![dir],
            ModelSource::Files { arch, weights } => vec![arch, weights],
        };
        if let DataSource::File { path } = &self.data {
            paths.push(path);
        }
        paths.extend(self.labels.as_deref());
        paths
    }

    /// The config with its input paths relative to the folder `base`, as files record it.
    pub fn relative_to(&self, base: &Path) -> Self {
        self.map_paths(|p| crate::files::relative_to(p, base))
    }

    /// The config with every input path mapped by `f`.
    fn map_paths(&self, f: impl Fn(&Path) -> PathBuf) -> Self {
        let mut run = self.clone();
        match &mut run.model {
            ModelSource::Toy { .. } => {}
            ModelSource::ToyDir { dir } => *dir = f(dir),
            ModelSource::Files { arch, weights } => {
                *arch = f(arch);
                *weights = f(weights);
            }
        }
        if let DataSource::File { path } = &mut run.data {
            *path = f(path);
        }
        if let Some(labels) = &mut run.labels {
            *labels = f(labels);
        }
        run
    }
}

/// Reads a run config whose input paths are relative to the folder `base` (the config
/// file's own folder, or for a run in progress its output folder), so that it works from
/// any working directory.
pub fn read_config(path: &Path, base: &Path) -> Result<RunConfig> {
    let run: RunConfig = read_json(path)?;
    Ok(run.map_paths(|p| crate::files::resolve(p, base)))
}

/// Writes a run config with its input paths relative to the folder `base` (where the config
/// will be read from): the inverse of [`read_config`]. A path that is not valid UTF-8 is an
/// error naming it (JSON holds text).
pub fn write_config(path: &Path, run: &RunConfig, base: &Path) -> Result<()> {
    for p in run.paths() {
        crate::files::utf8(p)?;
    }
    write_json(path, &run.relative_to(base))
}

/// A model with, for toys, what the analysis needs to know about it.
pub struct LoadedModel {
    pub model: Sequential<f32>,
    pub toy: Option<ToyModel>,
}

/// The L3D settings `l3d decompose` starts from for a user's model: the paper's, except the
/// divergence (KL for logits, the paper's MSE otherwise) and the tensors decomposed: the
/// weights before the read-out ([`TensorSet::WeightsBeforeReadout`]). Decomposing every
/// tensor (the paper's choice, `--decompose all`) recovered almost no circuit of users'
/// models by intervention: biases and the read-out, which act on every sample, dominate the
/// subnetworks (measured on the ground-truth suite: notes/suite.md).
pub fn defaults_for(arch: &nets::Architecture) -> L3dConfig {
    L3dConfig {
        divergence: match arch.output {
            l3d::OutputKind::Logits => l3d::Divergence::Kl,
            l3d::OutputKind::Regression => l3d::Divergence::Mse,
        },
        decompose: arch.tensors(TensorSet::WeightsBeforeReadout),
        ..L3dConfig::default()
    }
}

/// The architecture of a model source, without loading its weights.
pub fn architecture_of(source: &ModelSource) -> Result<nets::Architecture> {
    Ok(match source {
        ModelSource::Toy { kind, .. } => kind.architecture(),
        ModelSource::ToyDir { dir } => nets::io::read_architecture(&dir.join("model.toml"))?,
        ModelSource::Files { arch, .. } => nets::io::read_architecture(arch)?,
    })
}

/// The fingerprints of a run's inputs, as `fnv1a:` and 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprints {
    /// Of the architecture (its parsed form, so comments and layout do not count).
    pub architecture: String,
    /// Of every parameter's name, shape and `f32` bits, in the model's order.
    pub weights: String,
    /// Of the inputs' shape and bits ([`l3d::train::fingerprint`], as checkpoints check).
    pub inputs: String,
    /// Of the class labels as read (count and values), when the run has a labels file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}

fn hex(h: u64) -> String {
    format!("fnv1a:{h:016x}")
}

/// FNV-1a of bytes.
fn of_bytes(bytes: &[u8]) -> u64 {
    nets::io::fnv1a(bytes.iter().map(|&b| u64::from(b)))
}

impl Fingerprints {
    /// The fingerprints of a loaded model, its inputs and their class labels, if any.
    pub fn of(loaded: &LoadedModel, data: &Tensor<f32>, labels: Option<&[usize]>) -> Self {
        let model = &loaded.model;
        let arch = serde_json::to_vec(model.architecture()).expect("architectures serialise");
        let mut words = Vec::new();
        for ((name, shape), p) in model
            .param_names()
            .iter()
            .zip(model.param_shapes())
            .zip(model.params())
        {
            words.push(of_bytes(name.as_bytes()));
            words.extend(shape.iter().map(|&d| d as u64));
            words.extend(p.data().iter().map(|v| u64::from(v.to_bits())));
        }
        Self {
            architecture: hex(of_bytes(&arch)),
            weights: hex(nets::io::fnv1a(words)),
            inputs: hex(l3d::train::fingerprint(data)),
            labels: labels.map(|l| {
                let words = std::iter::once(l.len() as u64).chain(l.iter().map(|&c| c as u64));
                hex(nets::io::fnv1a(words))
            }),
        }
    }
}

/// Checks the fingerprints recorded in a run's config against those of what was loaded now.
/// A difference is an error naming what changed and where it was read from, or with `force`
/// a loud warning. A config from before fingerprints were recorded gets a warning.
pub fn check(run: &RunConfig, dir: &Path, now: &Fingerprints, force: bool, ui: &Ui) -> Result<()> {
    let Some(then) = &run.fingerprints else {
        ui.warn(&format!(
            "{}: config.json records no fingerprints (a run of an older version), so whether its weights and inputs changed since cannot be checked",
            dir.display()
        ));
        return Ok(());
    };
    let (arch, weights) = model_files(&run.model, dir);
    let mut changed = Vec::new();
    let labels = run.labels.as_deref().map(|p| p.display().to_string());
    let none = "none".to_string();
    for (what, source, a, b) in [
        ("architecture", arch, &then.architecture, &now.architecture),
        ("weights", weights, &then.weights, &now.weights),
        ("inputs", data_source(&run.data), &then.inputs, &now.inputs),
    ] {
        if a != b {
            changed.push(format!("the {what} ({source}: {b}, recorded {a})"));
        }
    }
    // Labels recorded by a run are checked; a run of a version that did not record them is not.
    if let Some(a) = &then.labels {
        let b = now.labels.as_ref().unwrap_or(&none);
        if a != b {
            let source = labels.unwrap_or_else(|| "no labels file".into());
            changed.push(format!("the labels ({source}: {b}, recorded {a})"));
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let what = format!(
        "{} changed since the run in {}",
        changed.join(", "),
        dir.display()
    );
    if force {
        ui.warn(&format!(
            "{what}; --force: going on, but the results below are NOT those of the run's model and inputs"
        ));
        return Ok(());
    }
    Err(RunError::Changed(format!(
        "{what}; run the decomposition again, or give --force to go on against the new ones"
    )))
}

/// Where the architecture and the weights of a finished run are read from.
fn model_files(model: &ModelSource, dir: &Path) -> (String, String) {
    let shown = |p: &Path| p.display().to_string();
    match model {
        ModelSource::Toy { .. } => (
            shown(&dir.join("model/model.toml")),
            shown(&dir.join("model/model.safetensors")),
        ),
        ModelSource::ToyDir { dir } => (
            shown(&dir.join("model.toml")),
            shown(&dir.join("model.safetensors")),
        ),
        ModelSource::Files { arch, weights } => (shown(arch), shown(weights)),
    }
}

fn data_source(data: &DataSource) -> String {
    match data {
        DataSource::File { path } => path.display().to_string(),
        DataSource::Fresh { .. } | DataSource::Generator { .. } => {
            "drawn again from the recorded seed".into()
        }
    }
}
