//! `l3d decompose`: the run config from a config file or the flags (flags override), then the
//! run ([`crate::run::decompose`]) and its table.

use crate::args::{DecomposeArgs, Settings};
use crate::error::{Result, RunError};
use crate::files::read_json;
use crate::run::{self, DataSource, ModelSource, RunConfig};
use crate::ui::Ui;
use nets::TensorSet;
use std::path::{Path, PathBuf};
use toys::circuits::AnalysisConfig;
use toys::data::{DataSpec, Sparse};

/// The run config of `decompose`: the config file if given, else built from the flags; flags
/// override.
fn resolve(a: &DecomposeArgs) -> Result<(RunConfig, PathBuf)> {
    let s = &a.settings;
    let mut run = match (&a.config, &a.resume) {
        (Some(path), _) => read_json::<RunConfig>(path)?,
        (None, Some(ck)) => {
            let dir = ck.parent().unwrap_or(Path::new("."));
            read_json::<RunConfig>(&dir.join("config.json"))?
        }
        (None, None) => {
            let (model, l3d) = if let Some(kind) = a.toy {
                (
                    ModelSource::Toy {
                        kind,
                        seed: s.seed.unwrap_or(0),
                        train_epochs: 1000,
                    },
                    kind.paper_config(0),
                )
            } else if let Some(dir) = &a.model_dir {
                let record: run::ToyRecord = read_json(&dir.join("toy.json"))?;
                (
                    ModelSource::ToyDir { dir: dir.clone() },
                    record.kind.paper_config(0),
                )
            } else if let (Some(arch), Some(weights)) = (&a.arch, &a.weights) {
                let defaults = run::defaults_for(&nets::io::read_architecture(arch)?);
                (
                    ModelSource::Files {
                        arch: arch.clone(),
                        weights: weights.clone(),
                    },
                    defaults,
                )
            } else {
                return Err(RunError::NoModel);
            };
            let data = match (&a.inputs, a.sparse_features) {
                (Some(path), _) => DataSource::File { path: path.clone() },
                (None, Some(n)) => DataSource::Generator {
                    spec: DataSpec::Sparse(Sparse::new(n)),
                    samples: 1000,
                    seed: 1,
                },
                (None, None) => DataSource::Fresh {
                    samples: 1000,
                    seed: 1,
                },
            };
            RunConfig {
                model,
                data,
                l3d,
                analysis: AnalysisConfig::default(),
            }
        }
    };
    apply_settings(&mut run, s);
    if let Some(set) = named_set(&run.l3d.decompose) {
        run.l3d.decompose = run::architecture_of(&run.model)?.tensors(set);
    }
    let out = match (&a.out, &a.resume) {
        (Some(o), _) => o.clone(),
        (None, Some(ck)) => ck.parent().unwrap_or(Path::new(".")).to_path_buf(),
        (None, None) => PathBuf::from(format!("out/{}", run_name(&run.model))),
    };
    Ok((run, out))
}

/// The set a `--decompose` list names, if it is a single set name.
fn named_set(list: &[String]) -> Option<TensorSet> {
    match list {
        [one] => TensorSet::parse(one),
        _ => None,
    }
}

fn run_name(model: &ModelSource) -> String {
    match model {
        ModelSource::Toy { kind, .. } => kind.to_string(),
        ModelSource::ToyDir { dir } | ModelSource::Files { arch: dir, .. } => dir
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
    }
}

fn apply_settings(run: &mut RunConfig, s: &Settings) {
    let c = &mut run.l3d;
    set(&mut c.n_subnetworks, &s.n_v);
    set(&mut c.rank, &s.rank);
    set(&mut c.top_k, &s.top_k);
    set(&mut c.epochs, &s.epochs);
    set(&mut c.batch_size, &s.batch);
    set(&mut c.lr, &s.lr);
    set(&mut c.lr_gamma, &s.lr_gamma);
    set(&mut c.lr_step, &s.lr_step);
    set(&mut c.warm_start_epochs, &s.warm_start);
    set(&mut c.warm_start, &s.warm_start_schedule);
    set(&mut c.top_k_count, &s.top_k_count);
    set(&mut c.seed, &s.seed);
    set(&mut c.divergence, &s.divergence);
    set(&mut c.reference, &s.reference);
    set(&mut c.positions, &s.positions);
    set(&mut c.decompose, &s.decompose);
    if let Some(n) = s.samples {
        match &mut run.data {
            DataSource::Fresh { samples, .. } | DataSource::Generator { samples, .. } => {
                *samples = n
            }
            DataSource::File { .. } => {}
        }
    }
    if let (Some(e), ModelSource::Toy { train_epochs, .. }) = (s.train_epochs, &mut run.model) {
        *train_epochs = e;
    }
}

/// Overrides `field` with a flag's value when the flag was given.
fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
    if let Some(v) = flag {
        *field = v.clone();
    }
}

pub(super) fn decompose(a: DecomposeArgs, ui: &Ui) -> Result<()> {
    let (run, out) = resolve(&a)?;
    finish_decompose(&run, &out, a.resume.as_deref(), ui)
}

pub(super) fn finish_decompose(
    run: &RunConfig,
    out: &Path,
    resume: Option<&Path>,
    ui: &Ui,
) -> Result<()> {
    let outcome = run::decompose(run, out, resume, ui)?;
    let table = outcome.reports.table(outcome.loaded.toy.as_ref());
    let text = format!(
        "{table}\nwritten to {}: config.json (repeat with `l3d decompose --config {}/config.json`), decomposition, subnetworks.safetensors, report.html, figures/",
        out.display(),
        out.display()
    );
    let reports = &outcome.reports;
    let value =
        serde_json::json!({ "out": out, "report": reports.generic, "analysis": reports.analysis });
    ui.result(&text, value);
    Ok(())
}
