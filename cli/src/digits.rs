//! The digits networks in the program: `l3d train --model digits-mlp|digits-cnn` trains one
//! and saves it as a PyTorch user would hand it over (architecture, `state_dict` weights,
//! inputs and int64 labels as `.npy`), and `l3d decompose --model-dir` decomposes such a folder
//! with the settings chosen for these networks ([`decompose_config`], measured in
//! notes/digits.md).
//!
//! A digits folder holds:
//!
//! | file | what |
//! |---|---|
//! | `model.toml`, `model.safetensors` | the architecture and weights (`0.weight`, ..) |
//! | `inputs.npy`, `labels.npy` | the training images (`[N, 64]` rows or `[N, 1, 8, 8]`, float32) and labels (int64) |
//! | `held_out_inputs.npy`, `held_out_labels.npy` | the held-out part, the same way |
//! | `digits.json` | the network, seed, accuracies and training settings ([`DigitsRecord`]) |

use crate::config::{DataSource, ModelSource};
use crate::error::Result;
use crate::files::{create_dir, write_json};
use crate::ui::Ui;
use l3d::L3dConfig;
use nets::TensorSet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toys::digits::train::{train_digits, DigitsKind, DigitsRun, HELD_OUT_FRACTION};
use toys::digits::Digits;
use toys::train::TrainConfig;

/// The file a digits folder is recognised by.
pub const RECORD: &str = "digits.json";

/// What `digits.json` records beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigitsRecord {
    pub kind: DigitsKind,
    /// The seed of the split, the initial weights and the batch order.
    pub seed: u64,
    pub held_out_fraction: f64,
    pub train_samples: usize,
    pub held_out_samples: usize,
    pub train_accuracy: f64,
    pub held_out_accuracy: f64,
    pub final_loss: Option<f64>,
    pub training: TrainConfig,
}

/// Trains a digits network from `seed` at its recorded settings (with `epochs` if given),
/// with a progress bar.
pub fn train_ui(
    kind: DigitsKind,
    digits: &Digits,
    seed: u64,
    epochs: Option<usize>,
    ui: &Ui,
) -> Result<DigitsRun> {
    let mut config = kind.train_config();
    if let Some(e) = epochs {
        config.epochs = e;
    }
    let bar = ui.bar(config.epochs as u64, &format!("train {kind}"));
    let run = train_digits(kind, digits, seed, &config, &mut |p| {
        bar.set_position(p.epoch as u64);
        bar.set_message(format!("loss {:.4}", p.loss));
    })?;
    bar.finish_and_clear();
    Ok(run)
}

/// Saves a trained digits network and its data into `dir` (see the module docs); returns
/// its record.
pub fn save(run: &DigitsRun, digits: &Digits, dir: &Path) -> Result<DigitsRecord> {
    create_dir(dir)?;
    nets::io::save_model(
        &run.model,
        &dir.join("model.toml"),
        &dir.join("model.safetensors"),
    )?;
    for (prefix, part) in [("", &run.train), ("held_out_", &run.held_out)] {
        let x = run.kind.inputs(digits, part);
        nets::io::write_npy(&dir.join(format!("{prefix}inputs.npy")), &x)?;
        let labels: Vec<i64> = digits.labels_of(part).iter().map(|&l| l as i64).collect();
        nets::io::write_npy_i64(
            &dir.join(format!("{prefix}labels.npy")),
            &[labels.len()],
            &labels,
        )?;
    }
    let record = DigitsRecord {
        kind: run.kind,
        seed: run.seed,
        held_out_fraction: HELD_OUT_FRACTION,
        train_samples: run.train.len(),
        held_out_samples: run.held_out.len(),
        train_accuracy: run.train_accuracy,
        held_out_accuracy: run.held_out_accuracy,
        final_loss: run.epoch_losses.last().copied(),
        training: run.config.clone(),
    };
    write_json(&dir.join(RECORD), &record)?;
    Ok(record)
}

/// `l3d train --model digits-*`: trains, saves into `out`, prints the accuracies.
pub fn train_command(
    kind: DigitsKind,
    seed: u64,
    epochs: Option<usize>,
    out: &Path,
    ui: &Ui,
) -> Result<()> {
    let digits = toys::digits::load();
    let run = train_ui(kind, &digits, seed, epochs, ui)?;
    let record = save(&run, &digits, out)?;
    let text = format!(
        "{kind}: saved to {}\naccuracy: held-out {:.4} ({} images), training {:.4} ({} images); {} epochs, lr {}, batch {}",
        out.display(),
        record.held_out_accuracy,
        record.held_out_samples,
        record.train_accuracy,
        record.train_samples,
        record.training.epochs,
        record.training.lr,
        record.training.batch_size,
    );
    ui.result(&text, serde_json::to_value(&record).unwrap_or_default());
    Ok(())
}

/// The L3D settings `l3d decompose` uses for a digits network: the KL divergence, every
/// weight (the read-out's included, the biases left out), 32 subnetworks of rank 1, top-k 0.1
/// after a warm start of 20 epochs, 200 epochs, lr 0.01 decayed by 0.8 every 40 epochs.
/// Measured over model and decomposition seeds (notes/digits.md): the weights before the
/// read-out alone leave the CNN only its 8 convolution kernels, which every class shares, and
/// gave few classes a subnetwork of their own; beside one or two per class, subnetworks go to
/// read-out rows that shift one logit for every image, and the CNN's classes got one of their
/// own in a median 5 of 10 with 16 subnetworks, 9 with 24, 10 with 32; the warm start keeps
/// subnetworks from dying.
pub fn decompose_config(arch: &nets::Architecture) -> L3dConfig {
    L3dConfig {
        n_subnetworks: 32,
        rank: 1,
        top_k: 0.1,
        epochs: 200,
        warm_start_epochs: 20,
        lr_step: 40,
        divergence: l3d::Divergence::Kl,
        decompose: arch.tensors(TensorSet::Weights),
        ..L3dConfig::default()
    }
}

/// What `--model-dir` means for a digits folder: the model files, the training inputs, and
/// the settings of [`decompose_config`]. None if `dir` is not a digits folder.
pub fn model_dir_run(dir: &Path) -> Result<Option<(ModelSource, DataSource, L3dConfig)>> {
    if !dir.join(RECORD).is_file() {
        return Ok(None);
    }
    let arch = dir.join("model.toml");
    let config = decompose_config(&nets::io::read_architecture(&arch)?);
    let model = ModelSource::Files {
        arch,
        weights: dir.join("model.safetensors"),
    };
    let data = DataSource::File {
        path: dir.join("inputs.npy"),
    };
    Ok(Some((model, data, config)))
}

/// The labels file that goes with an inputs file: the same name with its last `inputs`
/// replaced by `labels` (`held_out_inputs.npy` -> `held_out_labels.npy`), else `labels.npy`
/// beside it; None if that file does not exist or does not hold class indices (one column of
/// whole numbers >= 0), so that a file of that name holding something else (regression
/// targets, say) is left alone rather than failing the run.
pub fn labels_beside(inputs: &Path) -> Option<PathBuf> {
    let name = inputs.file_name()?.to_str()?;
    let candidate = match name.rfind("inputs") {
        Some(at) => format!("{}labels{}", &name[..at], &name[at + "inputs".len()..]),
        None => "labels.npy".to_string(),
    };
    let path = inputs.with_file_name(candidate);
    let t = nets::io::read_npy::<f64>(&path).ok()?;
    let rows = t.shape().first().copied().unwrap_or(0);
    crate::classes::read_labels(&path, rows).ok().map(|_| path)
}
