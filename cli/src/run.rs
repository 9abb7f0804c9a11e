//! A run of the program, from a config to files: the model (a toy trained here, a saved toy,
//! or a user's architecture and weights), the data, the decomposition, its analysis, its
//! figures and its exports. Every run writes its resolved config first, so
//! `l3d decompose --config <out>/config.json` repeats it exactly.

use crate::checkpoint;
use crate::checks;
use crate::config::{write_config, DataSource, Fingerprints, LoadedModel, ModelSource, RunConfig};
use crate::error::{Result, RunError};
use crate::files::{create_dir, read_json, write_json};
use crate::folder::OutputFolder;
use crate::report::{write_reports, Decomposed, Reports};
use crate::ui::Ui;
use l3d::persist::save_decomposition;
use l3d::train::TrainState;
use l3d::{Decomposition, EpochStats, L3dConfig, Model, Trainer};
use nets::Sequential;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tensor::{rng, Tensor};
use toys::data::DataSpec;
use toys::models::{ToyKind, ToyModel, ToyReport};
use toys::train::{train_toy, TrainConfig};

/// What a toy folder's `toy.json` records beside the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToyRecord {
    pub kind: ToyKind,
    pub target: toys::models::Target,
    pub data: DataSpec,
    pub report: ToyReport,
}

/// Trains a toy, with a progress bar.
pub fn train_toy_ui(kind: ToyKind, seed: u64, epochs: usize, ui: &Ui) -> Result<ToyModel> {
    let config = TrainConfig {
        epochs,
        ..Default::default()
    };
    let bar = ui.bar(epochs as u64, &format!("train {kind}"));
    let mut last_seed = seed;
    let toy = train_toy(kind, seed, &config, &mut |p| {
        if p.seed != last_seed {
            last_seed = p.seed;
            bar.set_prefix(format!("train {kind} s{}", p.seed));
        }
        bar.set_length(p.epochs as u64);
        bar.set_position(p.epoch as u64);
        bar.set_message(format!("loss {:.5}", p.loss));
    })?;
    bar.finish_and_clear();
    ui.info(&format!(
        "trained {kind}: {} ({} attempt(s))",
        toy.report.choice,
        toy.report.attempts.len().max(toy.report.blocks.len())
    ));
    Ok(toy)
}

/// Saves a toy into a folder: `model.toml`, `model.safetensors`, `toy.json`.
pub fn save_toy(toy: &ToyModel, dir: &Path) -> Result<()> {
    create_dir(dir)?;
    nets::io::save_model(
        &toy.model,
        &dir.join("model.toml"),
        &dir.join("model.safetensors"),
    )?;
    let record = ToyRecord {
        kind: toy.kind,
        target: toy.target.clone(),
        data: toy.data,
        report: toy.report.clone(),
    };
    write_json(&dir.join("toy.json"), &record)
}

/// Loads a toy saved by [`save_toy`].
pub fn load_toy(dir: &Path) -> Result<ToyModel> {
    let model = nets::io::load_model(&dir.join("model.toml"), &dir.join("model.safetensors"))?;
    let record: ToyRecord = read_json(&dir.join("toy.json"))?;
    if model.architecture() != &record.kind.architecture() {
        return Err(RunError::NotTheToy {
            path: dir.join("model.toml"),
            kind: record.kind,
        });
    }
    Ok(ToyModel {
        kind: record.kind,
        model,
        target: record.target,
        data: record.data,
        report: record.report,
    })
}

pub fn load_model_source(source: &ModelSource, ui: &Ui) -> Result<LoadedModel> {
    match source {
        ModelSource::Toy {
            kind,
            seed,
            train_epochs,
        } => {
            let toy = train_toy_ui(*kind, *seed, *train_epochs, ui)?;
            Ok(LoadedModel {
                model: toy.model.clone(),
                toy: Some(toy),
            })
        }
        ModelSource::ToyDir { dir } => {
            let toy = load_toy(dir)?;
            Ok(LoadedModel {
                model: toy.model.clone(),
                toy: Some(toy),
            })
        }
        ModelSource::Files { arch, weights } => Ok(LoadedModel {
            model: nets::io::load_model(arch, weights)?,
            toy: None,
        }),
    }
}

pub fn load_data(source: &DataSource, loaded: &LoadedModel) -> Result<Tensor<f32>> {
    let x = match source {
        DataSource::Fresh { samples, seed } => {
            let toy = loaded.toy.as_ref().ok_or(RunError::NoInputDistribution)?;
            toy.sample_inputs(*samples, &mut rng(*seed))
        }
        DataSource::Generator {
            spec,
            samples,
            seed,
        } => {
            spec.validate().map_err(RunError::Generator)?;
            toys::data::sample(spec, *samples, &mut rng(*seed))
        }
        DataSource::File { path } => {
            let x = nets::io::load_inputs(path)?;
            nets::io::check_model_inputs(&x, loaded.model.architecture(), path)?;
            x
        }
    };
    if x.shape()[0] < 2 {
        return Err(RunError::TooFewRows { rows: x.shape()[0] });
    }
    Ok(x)
}

/// The result of training: the decomposition and its history.
pub struct Trained {
    pub decomposition: Decomposition<f32>,
    pub history: Vec<EpochStats>,
}

/// Trains a decomposition with a progress bar, saving checkpoints into `staging` as
/// `policy` says. On Ctrl-C it stops at the end of the epoch, saves a checkpoint and returns
/// [`RunError::Interrupted`], naming `out` for `--resume`. `resume` continues from a
/// checkpoint's state, for `config.epochs` epochs in all (the resumed run's own count, which
/// may be larger than the checkpoint's).
pub fn train_decomposition(
    model: &Sequential<f32>,
    config: &L3dConfig,
    data: &Tensor<f32>,
    resume: Option<TrainState<f32>>,
    (staging, out): (&Path, &Path),
    policy: checkpoint::Policy,
    ui: &Ui,
) -> Result<Trained> {
    config.validate().map_err(l3d::L3dError::from)?;
    checks::check_against_data(config, data.shape()[0])?;
    let mut trainer = match resume {
        Some(mut state) => {
            state.config.epochs = config.epochs;
            Trainer::resume(model, state, data)?
        }
        None => Trainer::new(model, config.clone(), data)?,
    };
    let bar = ui.bar(config.epochs as u64, "decompose");
    bar.set_position(trainer.state.epoch as u64);
    let mut schedule = checkpoint::Schedule::new(policy);
    while trainer.state.epoch < config.epochs {
        let s = trainer.run_epoch()?;
        bar.set_position(s.epoch as u64 + 1);
        bar.set_message(format!(
            "loss {:.4} error {:.4} dead {}",
            s.loss, s.reconstruction_error, s.dead
        ));
        ui.event("epoch", serde_json::to_value(&s).unwrap_or_default());
        let done = trainer.state.epoch;
        if ui.interrupted() && done < config.epochs {
            bar.finish_and_clear();
            let path = checkpoint::save(staging, &trainer.state, model)?;
            return Err(RunError::Interrupted {
                checkpoint: path.display().to_string(),
                resume: crate::files::shell_quote(&out.display().to_string()),
            });
        }
        if done < config.epochs && schedule.due(done) {
            checkpoint::save(staging, &trainer.state, model)?;
            ui.event("checkpoint", serde_json::json!({ "epoch": done }));
        }
    }
    bar.finish_and_clear();
    Ok(Trained {
        decomposition: trainer.state.decomposition.clone(),
        history: trainer.state.history.clone(),
    })
}

/// Writes the subnetworks for use elsewhere (Python): `subnetworks.safetensors` with
/// `subnetwork.{k}.{param}` in the model's own shapes (decoder, unit norm) and
/// `encoder.{k}.{param}`, and `subnetworks.json` with the metadata.
pub fn export_subnetworks(
    out: &Path,
    model: &Sequential<f32>,
    d: &Decomposition<f32>,
    metadata: &serde_json::Value,
) -> Result<()> {
    let mut named: Vec<(String, Tensor<f32>)> = Vec::new();
    for k in 0..d.n_v {
        for (name, t) in d.names.iter().zip(d.subnetwork(k)) {
            named.push((format!("subnetwork.{k}.{name}"), t));
        }
        for (name, t) in d.names.iter().zip(d.encoder_subnetwork(k)) {
            named.push((format!("encoder.{k}.{name}"), t));
        }
    }
    let meta = BTreeMap::from([
        ("format".to_string(), "l3d-subnetworks".to_string()),
        ("n_subnetworks".to_string(), d.n_v.to_string()),
        ("params".to_string(), d.names.join(",")),
    ]);
    nets::io::write_safetensors(
        &out.join("subnetworks.safetensors"),
        named.iter().map(|(n, t)| (n.as_str(), t)),
        &meta,
    )?;
    let mut meta_json = metadata.clone();
    if let serde_json::Value::Object(map) = &mut meta_json {
        map.insert("params".into(), serde_json::json!(d.names));
        map.insert(
            "param_shapes".into(),
            serde_json::json!(d
                .param_index
                .iter()
                .map(|&i| model.param_shapes()[i].clone())
                .collect::<Vec<_>>()),
        );
    }
    write_json(&out.join("subnetworks.json"), &meta_json)
}

/// What `decompose` produced.
pub struct Outcome {
    pub loaded: LoadedModel,
    pub data: Tensor<f32>,
    pub trained: Trained,
    pub reports: Reports,
    /// The config as the run recorded it (with its fingerprints).
    pub run: RunConfig,
}

/// How a run treats its output folder and its checkpoints.
pub struct Options {
    /// Replace the results of an earlier run in the output folder (else that is refused).
    pub overwrite: bool,
    pub checkpoints: checkpoint::Policy,
    /// Continue from this checkpoint's state (the output folder's run in progress).
    pub resume: Option<TrainState<f32>>,
}

impl Options {
    /// A fresh run that replaces whatever results its folder holds (the default run,
    /// `reproduce` and `suite`, which own their folders), with the default checkpoints.
    pub fn replacing() -> Self {
        Self {
            overwrite: true,
            checkpoints: checkpoint::Policy::default(),
            resume: None,
        }
    }
}

/// The whole of `l3d decompose` into the output folder `out`, which the run holds for its
/// whole life ([`OutputFolder`]): once the settings are checked, the model and data load,
/// and `config.json` (with the fingerprints of the model and data), the model (for a toy
/// trained here), checkpoints, the decomposition, the reports and figures
/// ([`write_reports`]) and the exports are written into its staging folder; at the end the
/// checkpoints are removed and the results moved into `out`, replacing any earlier ones.
pub fn decompose(run: &RunConfig, out: &Path, options: Options, ui: &Ui) -> Result<Outcome> {
    checks::before_loading(run, ui)?;
    checks::out_is_not_an_input(run, out)?;
    crate::files::utf8(out)?;
    for p in run.paths() {
        crate::files::utf8(p)?;
    }
    let folder = OutputFolder::acquire(out, ui)?;
    if options.resume.is_none() {
        if let Some(found) = OutputFolder::results_present(out).filter(|_| !options.overwrite) {
            return Err(RunError::ResultsPresent {
                dir: out.to_path_buf(),
                found: found.into(),
            });
        }
        folder.clear_staging()?;
    }
    let staging = folder.staging()?;
    let loaded = load_model_source(&run.model, ui)?;
    let data = load_data(&run.data, &loaded)?;
    let labels = crate::classes::load_labels(run, data.shape()[0])?;
    if let Some(state) = &options.resume {
        checks::resume_fits(state, &loaded.model, &data)?;
    }
    let run = RunConfig {
        fingerprints: Some(Fingerprints::of(&loaded, &data, labels.as_deref())),
        ..run.clone()
    };
    // Nothing is written until the model and the data have loaded and fit the settings.
    write_config(&staging.join("config.json"), &run, out)?;
    if let (Some(toy), ModelSource::Toy { .. }) = (&loaded.toy, &run.model) {
        save_toy(toy, &staging.join("model"))?;
    }
    let trained = train_decomposition(
        &loaded.model,
        &run.l3d,
        &data,
        options.resume,
        (&staging, out),
        options.checkpoints,
        ui,
    )?;
    let d = &trained.decomposition;
    save_decomposition(
        &staging.join("decomposition.json"),
        d,
        &run.l3d,
        &loaded.model,
        &trained.history,
    )?;
    let decomposed = Decomposed {
        model: &loaded.model,
        toy: loaded.toy.as_ref(),
        d,
        config: &run.l3d,
        data: &data,
        history: &trained.history,
        settings: &run.analysis,
        labels: labels.as_deref(),
    };
    let reports = write_reports(&staging, &decomposed, ui)?;
    let metadata = serde_json::json!({
        "config": run.relative_to(out),
        "metrics": &reports.generic,
        "analysis": &reports.analysis,
    });
    export_subnetworks(&staging, &loaded.model, d, &metadata)?;
    checkpoint::remove_all(&staging)?;
    folder.commit(true)?;
    Ok(Outcome {
        loaded,
        data,
        trained,
        reports,
        run,
    })
}
