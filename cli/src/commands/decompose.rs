//! `l3d decompose`: the run config from a config file or the flags (flags override), or the
//! run in progress that `--resume` continues, then the run ([`crate::run::decompose`]) and
//! its table.

use crate::args::{DecomposeArgs, Settings};
use crate::checkpoint;
use crate::checks;
use crate::config::{self, DataSource, ModelSource, RunConfig};
use crate::error::{Result, RunError};
use crate::files::{read_json, shell_quote};
use crate::folder::{self, OutputFolder};
use crate::run::{self, Options};
use crate::ui::Ui;
use l3d::train::TrainState;
use l3d::L3dConfig;
use nets::TensorSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toys::circuits::AnalysisConfig;
use toys::data::{DataSpec, Sparse};

/// The run config of `decompose` and its output folder: the config file if given, else
/// built from the flags; flags override. Settings that cannot apply are refused.
fn resolve(a: &DecomposeArgs) -> Result<(RunConfig, PathBuf)> {
    let s = &a.settings;
    let mut run = match &a.config {
        Some(path) => config::read_config(path, path.parent().unwrap_or(Path::new(".")))?,
        None => from_flags(a)?,
    };
    if s.samples.is_some() && matches!(run.data, DataSource::File { .. }) {
        return Err(RunError::Setting(
            "--samples draws fresh samples, but the inputs are the rows of a file (--inputs, or the config's data): drop one of them".into(),
        ));
    }
    apply_settings(&mut run, s);
    if let Some(set) = named_set(&run.l3d.decompose) {
        run.l3d.decompose = config::architecture_of(&run.model)?.tensors(set);
    }
    let out = match &a.out {
        Some(o) => o.clone(),
        None => fresh_folder(&run),
    };
    Ok((run, out))
}

/// A run built from the flags alone.
fn from_flags(a: &DecomposeArgs) -> Result<RunConfig> {
    let s = &a.settings;
    let (model, l3d) = if let Some(kind) = a.toy {
        (
            ModelSource::Toy {
                kind,
                seed: s.seed.unwrap_or(0),
                train_epochs: 1000,
            },
            kind.paper_config(0),
        )
    } else if let Some(dir) = a
        .model_dir
        .as_ref()
        .filter(|d| crate::induction::is_induction_dir(d))
    {
        let (model, data, l3d) = crate::induction::decompose_source(dir, a.inputs.as_deref())?;
        return Ok(RunConfig {
            model,
            data,
            l3d,
            analysis: AnalysisConfig::default(),
            labels: None,
            fingerprints: None,
        });
    } else if let Some(dir) = &a.model_dir {
        if let Some((model, data, l3d)) = crate::digits::model_dir_run(dir)? {
            let data = match &a.inputs {
                Some(path) => DataSource::File { path: path.clone() },
                None => data,
            };
            return Ok(with_labels(a, model, data, l3d));
        }
        let record: run::ToyRecord = read_json(&dir.join("toy.json"))?;
        (
            ModelSource::ToyDir { dir: dir.clone() },
            record.kind.paper_config(0),
        )
    } else if let (Some(arch), Some(weights)) = (&a.arch, &a.weights) {
        let defaults = config::defaults_for(&nets::io::read_architecture(arch)?);
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
    Ok(with_labels(a, model, data, l3d))
}

/// The run of `model` on `data`, with the class labels of `--labels`, else those beside an
/// inputs file ([`crate::digits::labels_beside`]).
fn with_labels(
    a: &DecomposeArgs,
    model: ModelSource,
    data: DataSource,
    l3d: L3dConfig,
) -> RunConfig {
    let labels = match (&a.labels, &data) {
        (Some(path), _) => Some(path.clone()),
        (None, DataSource::File { path }) => crate::digits::labels_beside(path),
        _ => None,
    };
    RunConfig {
        model,
        data,
        l3d,
        analysis: AnalysisConfig::default(),
        labels,
        fingerprints: None,
    }
}

/// The default output folder of a run: `out/<name>`, or `out/<name>-2`, `-3`, .. when that
/// one holds results or is the folder of one of the run's inputs.
fn fresh_folder(run: &RunConfig) -> PathBuf {
    let name = run_name(&run.model);
    (1..)
        .map(|i| match i {
            1 => PathBuf::from(format!("out/{name}")),
            i => PathBuf::from(format!("out/{name}-{i}")),
        })
        .find(|dir| {
            OutputFolder::results_present(dir).is_none()
                && checks::out_is_not_an_input(run, dir).is_ok()
        })
        .expect("some numbered folder is free")
}

/// The run in progress in the folder `--resume` names (or in the folder of the checkpoint
/// file it names), and the state of its newest checkpoint. Flags that contradict the
/// checkpoint are refused, each named with the checkpoint's value; `--epochs` may grow.
fn resume(a: &DecomposeArgs, given: &Path) -> Result<(RunConfig, PathBuf, TrainState<f32>)> {
    let (out, ck) = if given.is_dir() {
        let staging = given.join(folder::STAGING);
        (given.to_path_buf(), checkpoint::latest(&staging))
    } else {
        let parent = given.parent().unwrap_or(Path::new("."));
        let out = if parent.file_name() == Some(std::ffi::OsStr::new(folder::STAGING)) {
            parent.parent().unwrap_or(Path::new("."))
        } else {
            parent
        };
        (
            out.to_path_buf(),
            Some(given.to_path_buf()).filter(|p| p.exists()),
        )
    };
    let staged = out.join(folder::STAGING).join("config.json");
    let config = if staged.exists() {
        staged
    } else {
        out.join("config.json")
    };
    let Some(ck) = ck else {
        return Err(RunError::NoCheckpoint {
            what: no_checkpoint_hint(given, &out, &config),
        });
    };
    let mut run = config::read_config(&config, &out)?;
    let state = checkpoint::load(&ck)?;
    let refused = contradictions(&a.settings, &state.config, &run);
    if !refused.is_empty() {
        return Err(RunError::Setting(format!(
            "--resume continues the run of {} as it was set up; these flags contradict it: {}. Start a new run (without --resume) to change them",
            ck.display(),
            refused.join("; ")
        )));
    }
    let epochs = a.settings.epochs.unwrap_or(state.config.epochs);
    if epochs < state.epoch {
        return Err(RunError::Setting(format!(
            "--epochs {epochs}: the checkpoint {} has already run {} epochs",
            ck.display(),
            state.epoch
        )));
    }
    run.l3d = L3dConfig {
        epochs,
        ..state.config.clone()
    };
    Ok((run, out, state))
}

/// What to do when `--resume` finds no checkpoint.
fn no_checkpoint_hint(given: &Path, out: &Path, config: &Path) -> String {
    let quoted = |p: &Path| shell_quote(&p.display().to_string());
    if config.exists() {
        format!(
            "no checkpoint in {}: the run stopped before it saved one (every --checkpoint-every epochs, and on Ctrl-C), or it finished. Start it again with `l3d decompose --config {} --out {} --overwrite`",
            given.display(),
            quoted(config),
            quoted(out)
        )
    } else {
        format!(
            "no checkpoint in {}: it holds no run of l3d decompose. Give --resume the output folder of a stopped run",
            given.display()
        )
    }
}

/// The settings flags whose values differ from those of a checkpoint's run, each as
/// `--n-v 7 (the run has 10)`; `--epochs` may differ.
fn contradictions(s: &Settings, c: &L3dConfig, run: &RunConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |flag: &str, given: Option<String>, recorded: String| {
        if let Some(g) = given.filter(|g| *g != recorded) {
            out.push(format!("{flag} {g} (the run has {recorded})"));
        }
    };
    let text = |v: &dyn std::fmt::Display| v.to_string();
    check("--n-v", s.n_v.map(|v| text(&v)), text(&c.n_subnetworks));
    check("--rank", s.rank.map(|v| text(&v)), text(&c.rank));
    check("--top-k", s.top_k.map(|v| text(&v)), text(&c.top_k));
    check("--batch", s.batch.map(|v| text(&v)), text(&c.batch_size));
    check("--lr", s.lr.map(|v| text(&v)), text(&c.lr));
    check(
        "--lr-gamma",
        s.lr_gamma.map(|v| text(&v)),
        text(&c.lr_gamma),
    );
    check("--lr-step", s.lr_step.map(|v| text(&v)), text(&c.lr_step));
    check(
        "--warm-start",
        s.warm_start.map(|v| text(&v)),
        text(&c.warm_start_epochs),
    );
    check(
        "--warm-start-schedule",
        s.warm_start_schedule.map(|v| text(&v)),
        text(&c.warm_start),
    );
    check(
        "--top-k-count",
        s.top_k_count.map(|v| text(&v)),
        text(&c.top_k_count),
    );
    check("--seed", s.seed.map(|v| text(&v)), text(&c.seed));
    check(
        "--divergence",
        s.divergence.map(|v| text(&v)),
        text(&c.divergence),
    );
    check(
        "--reference",
        s.reference.map(|v| text(&v)),
        text(&c.reference),
    );
    if let Some(list) = &s.decompose {
        let wanted = match named_set(list).zip(config::architecture_of(&run.model).ok()) {
            Some((set, arch)) => arch.tensors(set),
            None => list.clone(),
        };
        check("--decompose", Some(wanted.join(",")), c.decompose.join(","));
    }
    let samples = match &run.data {
        DataSource::Fresh { samples, .. } | DataSource::Generator { samples, .. } => text(samples),
        DataSource::File { .. } => "the rows of its inputs file".into(),
    };
    check("--samples", s.samples.map(|v| text(&v)), samples);
    let train_epochs = match &run.model {
        ModelSource::Toy { train_epochs, .. } => text(train_epochs),
        _ => "no toy to train".into(),
    };
    check(
        "--train-epochs",
        s.train_epochs.map(|v| text(&v)),
        train_epochs,
    );
    out
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
    let policy = checkpoint::Policy {
        every_epochs: a.checkpoint_every,
        every: Duration::from_secs_f64(a.checkpoint_minutes * 60.0),
    };
    let (run, out, options) = match &a.resume {
        Some(given) => {
            let (run, out, state) = resume(&a, given)?;
            let options = Options {
                overwrite: true,
                checkpoints: policy,
                resume: Some(state),
            };
            (run, out, options)
        }
        None => {
            let (run, out) = resolve(&a)?;
            let options = Options {
                overwrite: a.overwrite,
                checkpoints: policy,
                resume: None,
            };
            (run, out, options)
        }
    };
    finish_decompose(&run, &out, options, ui)
}

pub(super) fn finish_decompose(
    run: &RunConfig,
    out: &Path,
    options: Options,
    ui: &Ui,
) -> Result<()> {
    let outcome = run::decompose(run, out, options, ui)?;
    let mut table = outcome.reports.table(outcome.loaded.toy.as_ref());
    if let Some(dir) = crate::induction::folder_of(&outcome.run.model) {
        let (text, _) = crate::induction::write_report(
            out,
            dir,
            &outcome.loaded.model,
            &outcome.trained.decomposition,
            &outcome.data,
            &outcome.reports.generic.p_act,
        )?;
        table = format!("{table}\n\n{text}");
    }
    let config = shell_quote(&out.join("config.json").display().to_string());
    let text = format!(
        "{table}\nwritten to {}: config.json (repeat with `l3d decompose --config {config} --out DIR`), decomposition, subnetworks.safetensors, report.html, figures/",
        out.display(),
    );
    let reports = &outcome.reports;
    let value = serde_json::json!({
        "out": out.display().to_string(),
        "report": reports.generic,
        "analysis": reports.analysis,
    });
    ui.result(&text, value);
    Ok(())
}
