//! What a run was computed from: fingerprints (FNV-1a) of the model's architecture, its
//! weights and the inputs, recorded in `config.json` and checked by `report` and `intervene`
//! before they rebuild anything, so that results are never silently recomputed against
//! weights or inputs replaced after the run.

use crate::error::{Result, RunError};
use crate::run::{DataSource, LoadedModel, ModelSource, RunConfig};
use crate::ui::Ui;
use l3d::Model;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tensor::Tensor;

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
}

fn hex(h: u64) -> String {
    format!("fnv1a:{h:016x}")
}

/// FNV-1a of bytes.
fn of_bytes(bytes: &[u8]) -> u64 {
    nets::io::fnv1a(bytes.iter().map(|&b| u64::from(b)))
}

impl Fingerprints {
    /// The fingerprints of a loaded model and its inputs.
    pub fn of(loaded: &LoadedModel, data: &Tensor<f32>) -> Self {
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
    for (what, source, a, b) in [
        ("architecture", arch, &then.architecture, &now.architecture),
        ("weights", weights, &then.weights, &now.weights),
        ("inputs", data_source(&run.data), &then.inputs, &now.inputs),
    ] {
        if a != b {
            changed.push(format!("the {what} ({source}: {b}, recorded {a})"));
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
