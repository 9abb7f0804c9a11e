//! The subcommands of `l3d`, one file each where there is more than a few lines to them;
//! `reproduce` and `suite` are in [`crate::reproduce`] and [`crate::suite`].

mod decompose;
mod intervene;
mod report;

use crate::args::{Command, TrainArgs, TrainModel};
use crate::config::{self, DataSource, Fingerprints, LoadedModel, ModelSource, RunConfig};
use crate::error::Result;
use crate::run::{self, Options};
use crate::ui::Ui;
use std::path::{Path, PathBuf};
use tensor::Tensor;
use toys::circuits::AnalysisConfig;
use toys::induction::InductionTraining;
use toys::models::ToyKind;

/// Runs a subcommand; with none, the default run.
pub fn dispatch(command: Option<Command>, ui: &Ui) -> Result<()> {
    match command {
        None => default_run(ui),
        Some(Command::Train(a)) => train(a, ui),
        Some(Command::Decompose(a)) => decompose::decompose(*a, ui),
        Some(Command::Report(a)) => report::report(a, ui),
        Some(Command::Intervene(a)) => intervene::intervene(a, ui),
        Some(Command::Reproduce(a)) => crate::reproduce::run(&a, ui),
        Some(Command::Suite(a)) => crate::suite::run(&a, ui),
    }
}

fn default_run(ui: &Ui) -> Result<()> {
    ui.info("l3d: training the TMS toy model and decomposing it at the paper's settings");
    let run = RunConfig {
        model: ModelSource::Toy {
            kind: ToyKind::Tms,
            seed: 0,
            train_epochs: 1000,
        },
        data: DataSource::Fresh {
            samples: 1000,
            seed: 1,
        },
        l3d: ToyKind::Tms.paper_config(0),
        analysis: AnalysisConfig::default(),
        labels: None,
        fingerprints: None,
    };
    decompose::finish_decompose(&run, Path::new("out/default"), Options::replacing(), ui)
}

fn train(a: TrainArgs, ui: &Ui) -> Result<()> {
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("out/{}", a.model)));
    let kind = match a.model {
        TrainModel::Toy(kind) => kind,
        TrainModel::Digits(kind) => {
            return crate::digits::train_command(kind, a.seed, a.epochs, &out, ui)
        }
        TrainModel::Induction => {
            let epochs = a.epochs.unwrap_or(InductionTraining::default().epochs);
            return train_induction(a.seed, epochs, &out, ui);
        }
    };
    let toy = run::train_toy_ui(kind, a.seed, a.epochs.unwrap_or(1000), ui)?;
    run::save_toy(&toy, &out)?;
    let check = &toy.report.check;
    let text = format!(
        "{}: saved to {}\n{}\nper-feature unexplained fraction: {:?}\nfeature embedding norms: {:?}",
        kind,
        out.display(),
        toy.report.choice,
        check.unexplained.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        check.embedding_norms.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>()
    );
    ui.result(&text, serde_json::to_value(&toy.report).unwrap_or_default());
    Ok(())
}

/// `l3d train --model induction`: trains the induction transformer and saves its folder.
fn train_induction(seed: u64, epochs: usize, out: &Path, ui: &Ui) -> Result<()> {
    let r = crate::induction::train_and_save(seed, epochs, out, ui)?;
    let text = format!(
        "induction (seed {seed}): saved to {}\nheld-out next-token accuracy: repeated positions {:.3}, first occurrences {:.3}, other {:.3} ({} sequences)\nattention: layer 0 on the previous token {:.3} (on itself {:.3}); layer 1 on the token after the earlier occurrence {:.3} (argmax {:.3})\nloss {:.3} -> {:.3} in {} epochs, {:.0} s",
        out.display(),
        r.accuracy.repeated,
        r.accuracy.first,
        r.accuracy.other,
        r.training.test_sequences,
        r.attention.layer0_previous_token,
        r.attention.layer0_self,
        r.attention.layer1_induction,
        r.attention.layer1_induction_argmax,
        r.first_epoch_loss,
        r.final_loss,
        r.training.epochs,
        r.train_seconds,
    );
    ui.result(&text, serde_json::to_value(&r).unwrap_or_default());
    Ok(())
}

/// A finished decomposition folder read back.
struct Reopened {
    run: RunConfig,
    loaded: LoadedModel,
    data: Tensor<f32>,
    /// The data's class labels, if the run has a labels file.
    labels: Option<Vec<usize>>,
    saved: l3d::persist::Saved<f32>,
}

/// Reads a finished decomposition folder back: its config, model, data (with its labels) and
/// decomposition, after checking that the model, data and labels are still those the run
/// recorded (see [`config::check`]; `force` turns a difference into a warning).
fn reopen(dir: &Path, force: bool, ui: &Ui) -> Result<Reopened> {
    let run = config::read_config(&dir.join("config.json"), dir)?;
    let source = match &run.model {
        ModelSource::Toy { .. } => ModelSource::ToyDir {
            dir: dir.join("model"),
        },
        other => other.clone(),
    };
    let loaded = run::load_model_source(&source, ui)?;
    let data = run::load_data(&run.data, &loaded)?;
    let labels = crate::classes::load_labels(&run, data.shape()[0])?;
    let now = Fingerprints::of(&loaded, &data, labels.as_deref());
    config::check(&run, dir, &now, force, ui)?;
    let saved = l3d::persist::load_decomposition::<f32>(&dir.join("decomposition.json"))?;
    l3d::persist::check_against_model(&saved.decomposition, &loaded.model)?;
    Ok(Reopened {
        run,
        loaded,
        data,
        labels,
        saved,
    })
}
