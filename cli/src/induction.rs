//! The induction transformer in the program: `l3d train --model induction` trains it
//! ([`toys::induction`]) and saves it as a user's model plus what it was trained on, and
//! `l3d decompose --model-dir` decomposes such a folder, and [`write_report`] adds the
//! induction report to a decomposition of it (after `l3d decompose` and `l3d report`).
//!
//! A folder written by [`train_and_save`]:
//!
//! | file | what |
//! |---|---|
//! | `model.toml`, `model.safetensors` | the architecture and the weights (PyTorch names and layout) |
//! | `tokens.npy` | the held-out sequences, int64 `[N, 32]`: the decomposition's inputs |
//! | `marks.npy` | int64 `[N, 32]`: 1 repeated, 2 first occurrence, 0 other ([`PositionKind::code`]) |
//! | `induction.json` | the settings, seed, accuracies and attention scores ([`InductionRecord`]) |

use crate::config::{DataSource, ModelSource};
use crate::error::{Result, RunError};
use crate::files::{create_dir, read_json, write_json};
use crate::ui::Ui;
use l3d::L3dConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tensor::Tensor;
use toys::induction::{
    induction_effects, train_induction, Accuracy, AttentionScores, InductionEffects,
    InductionTraining, PositionKind, SubnetworkEffect, TokenSet, TrainedInduction,
};

/// The record file of an induction folder.
pub const RECORD: &str = "induction.json";
/// The held-out sequences of an induction folder.
pub const TOKENS: &str = "tokens.npy";
/// The position marks of an induction folder.
pub const MARKS: &str = "marks.npy";

/// What `induction.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InductionRecord {
    pub seed: u64,
    pub training: InductionTraining,
    /// Held-out accuracy (on the `training.test_sequences` sequences of `tokens.npy`).
    pub accuracy: Accuracy,
    pub attention: AttentionScores,
    pub first_epoch_loss: f64,
    pub final_loss: f64,
    pub train_seconds: f64,
}

/// Trains the induction model from `seed` for `epochs` (the other settings the defaults of
/// [`InductionTraining`]) with a progress bar, and saves it into `dir`.
pub fn train_and_save(seed: u64, epochs: usize, dir: &Path, ui: &Ui) -> Result<InductionRecord> {
    let (trained, record) = train(seed, epochs, ui)?;
    save(&trained, &record, dir)?;
    Ok(record)
}

/// Trains the induction model from `seed` for `epochs` (the other settings the defaults of
/// [`InductionTraining`]) with a progress bar; returns it with its record.
pub fn train(seed: u64, epochs: usize, ui: &Ui) -> Result<(TrainedInduction, InductionRecord)> {
    let training = InductionTraining {
        epochs,
        ..InductionTraining::default()
    };
    let bar = ui.bar(epochs as u64, "train induction");
    let start = std::time::Instant::now();
    let trained = train_induction(&training, seed, &mut |p| {
        bar.set_position(p.epoch as u64);
        bar.set_message(format!("loss {:.3}", p.loss));
    })?;
    bar.finish_and_clear();
    let record = InductionRecord {
        seed,
        training,
        accuracy: trained.accuracy,
        attention: trained.attention,
        first_epoch_loss: trained.epoch_losses.first().copied().unwrap_or(f64::NAN),
        final_loss: trained.epoch_losses.last().copied().unwrap_or(f64::NAN),
        train_seconds: start.elapsed().as_secs_f64(),
    };
    Ok((trained, record))
}

/// Saves a trained induction model and its record into `dir` (the folder of the module
/// docs).
pub fn save(trained: &TrainedInduction, record: &InductionRecord, dir: &Path) -> Result<()> {
    create_dir(dir)?;
    nets::io::save_model(
        &trained.model,
        &dir.join("model.toml"),
        &dir.join("model.safetensors"),
    )?;
    let test = &trained.test;
    let ids: Vec<i64> = test.tokens.data().iter().map(|&x| x as i64).collect();
    nets::io::write_npy_i64(&dir.join(TOKENS), test.tokens.shape(), &ids)?;
    nets::io::write_npy_i64(&dir.join(MARKS), test.tokens.shape(), &test.mark_codes())?;
    write_json(&dir.join(RECORD), record)?;
    Ok(())
}

/// Whether `dir` is a folder written by [`train_and_save`].
pub fn is_induction_dir(dir: &Path) -> bool {
    dir.join(RECORD).is_file()
}

/// The folder of the induction model a run decomposes, if it decomposes one: the folder of
/// its weights file, when it holds an `induction.json`.
pub fn folder_of(model: &ModelSource) -> Option<&Path> {
    match model {
        ModelSource::Files { weights, .. } => weights.parent().filter(|d| is_induction_dir(d)),
        _ => None,
    }
}

/// The L3D settings for an induction folder (the measurements behind them are in
/// notes/induction.md): KL summed over all positions against another sequence, the
/// attention weights decomposed (the default for users' models: embeddings and unembedding
/// frozen), `n_v = 16` of rank 2, `k = 0.1`, 200 epochs of batch 32, lr decayed by 0.8
/// every 20 epochs. Measured on one model trained on the data without echo fillers:
/// relative reconstruction error 0.86 at `n_v = 8` (rank 2), 0.84 at `n_v = 8` rank 4, 0.79
/// at 16, 0.70 at 32 (13 of 32 dead); on the echo-trained models, 0.87 at 16.
pub fn l3d_defaults(arch: &nets::Architecture) -> L3dConfig {
    L3dConfig {
        n_subnetworks: 16,
        rank: 2,
        epochs: 200,
        lr_step: 20,
        ..crate::config::defaults_for(arch)
    }
}

/// The model, data and L3D settings `l3d decompose --model-dir DIR` uses for an induction
/// folder: its architecture and weights as a user's model, its held-out sequences (or the
/// `inputs` given) as the data.
pub fn decompose_source(
    dir: &Path,
    inputs: Option<&Path>,
) -> Result<(ModelSource, DataSource, L3dConfig)> {
    let arch = dir.join("model.toml");
    let defaults = l3d_defaults(&nets::io::read_architecture(&arch)?);
    let model = ModelSource::Files {
        arch,
        weights: dir.join("model.safetensors"),
    };
    let path = inputs.map_or_else(|| dir.join(TOKENS), Path::to_path_buf);
    Ok((model, DataSource::File { path }, defaults))
}

/// The record of an induction folder.
pub fn read_record(dir: &Path) -> Result<InductionRecord> {
    read_json(&dir.join(RECORD))
}

/// The sequences of `tokens` with the marks of the folder `dir`'s `marks.npy`, which must
/// have the tokens' shape and hold only mark codes (an error names the file, and the row and
/// position of a bad code).
pub fn marked_set(dir: &Path, tokens: &Tensor<f32>) -> Result<TokenSet> {
    let path = dir.join(MARKS);
    let codes: Tensor<f64> = nets::io::read_npy(&path)?;
    if codes.shape() != tokens.shape() {
        return Err(RunError::Setting(format!(
            "{}: marks of shape {:?}, but the decomposed sequences are {:?}",
            path.display(),
            codes.shape(),
            tokens.shape()
        )));
    }
    let t = tokens.shape()[1];
    let mut marks = Vec::with_capacity(tokens.shape()[0]);
    for (n, row) in codes.data().chunks_exact(t).enumerate() {
        let kinds: Option<Vec<PositionKind>> = row
            .iter()
            .map(|&c| PositionKind::from_code(c as i64).filter(|_| c.fract() == 0.0))
            .collect();
        let kinds = kinds.ok_or_else(|| {
            let p = row
                .iter()
                .position(|&c| PositionKind::from_code(c as i64).is_none() || c.fract() != 0.0)
                .unwrap_or(0);
            RunError::Setting(format!(
                "{}: row {n}, position {p} holds {}, not a mark (0 other, 1 repeated, 2 first)",
                path.display(),
                row[p]
            ))
        })?;
        marks.push(kinds);
    }
    Ok(TokenSet {
        tokens: tokens.clone(),
        marks,
    })
}

/// `delta` of the induction report's moves, as a fraction of the norm of the decomposed
/// parameters: small enough that the predictions change without collapsing (at 0.5, the
/// default of `l3d intervene`, every subnetwork of a measured run took the accuracy on
/// repeated positions to chance, KL 20-290 nats), large enough to move them (notes/induction.md).
pub const DELTA_FRACTION: f64 = 0.1;

/// The seed of the random direction the report's measures are compared with.
pub const BASELINE_SEED: u64 = 0;

/// The induction report of a decomposition of an induction model, written into the
/// decomposition's folder `out`: `induction.json` (every subnetwork's effects, the roles),
/// an `induction` entry in `report.json`, and `figures/induction.svg`. The moves are
/// `+-delta` with `delta` [`DELTA_FRACTION`] of the norm of the decomposed parameters; a
/// subnetwork is live when its `P_act` is above 0. Returns the table.
pub fn write_report(
    out: &Path,
    model_dir: &Path,
    model: &nets::Sequential<f32>,
    d: &l3d::Decomposition<f32>,
    data: &Tensor<f32>,
    p_act: &[f64],
) -> Result<(String, InductionEffects)> {
    let set = marked_set(model_dir, data)?;
    let effects = effects(model, d, &set, p_act)?;
    write_json(&out.join("induction.json"), &effects)?;
    let report_path = out.join("report.json");
    let mut report: serde_json::Value = read_json(&report_path)?;
    if let Some(object) = report.as_object_mut() {
        object.insert(
            "induction".into(),
            serde_json::to_value(&effects).unwrap_or_default(),
        );
        write_json(&report_path, &report)?;
    }
    let figures = out.join("figures");
    create_dir(&figures)?;
    crate::figures::write_induction_bars(&figures.join("induction.svg"), &bars(&effects))?;
    Ok((table(&effects), effects))
}

/// The induction report's measures of a decomposition `d` of `model` on the marked
/// sequences `set`: moves of `+-delta`, `delta` [`DELTA_FRACTION`] of the norm of the
/// decomposed parameters, against the random direction from [`BASELINE_SEED`]; a subnetwork
/// is live when its `P_act` is above 0.
pub fn effects(
    model: &nets::Sequential<f32>,
    d: &l3d::Decomposition<f32>,
    set: &TokenSet,
    p_act: &[f64],
) -> Result<InductionEffects> {
    let delta = DELTA_FRACTION * toys::circuits::decomposed_norm(model, d);
    let live: Vec<bool> = p_act.iter().map(|&p| p > 0.0).collect();
    Ok(induction_effects(
        model,
        d,
        set,
        delta,
        &live,
        BASELINE_SEED,
    )?)
}

/// A subnetwork's label: its index, and its role if it has one.
fn label(e: &InductionEffects, k: usize) -> String {
    if e.induction_subnetwork == Some(k) {
        format!("{k} ind")
    } else if e.layer0_subnetwork == Some(k) {
        format!("{k} L0")
    } else if e.previous_token_subnetwork == Some(k) {
        format!("{k} prev")
    } else {
        k.to_string()
    }
}

/// The figure's numbers: every subnetwork, then the random direction (labelled "random").
fn bars(e: &InductionEffects) -> crate::figures::InductionBars {
    let all: Vec<&SubnetworkEffect> = e.subnetworks.iter().chain([&e.baseline]).collect();
    let mut labels: Vec<String> = (0..e.subnetworks.len()).map(|k| label(e, k)).collect();
    labels.push("random".into());
    crate::figures::InductionBars {
        title: format!(
            "moving along each subnetwork (delta {:.2}): repeated vs first occurrences",
            e.delta
        ),
        labels,
        repeated: all.iter().map(|x| x.kl_repeated).collect(),
        first: all.iter().map(|x| x.kl_first).collect(),
        shares: all
            .iter()
            .map(|x| {
                let (l0, l1) = (x.shares.layer0, x.shares.layer1);
                [
                    l0[0],
                    l0[1],
                    l0[2],
                    l0[3],
                    l1[0],
                    l1[1],
                    l1[2],
                    l1[3],
                    x.shares.embeddings,
                    x.shares.unembedding,
                ]
            })
            .collect(),
    }
}

/// The text table of the induction report.
pub fn table(e: &InductionEffects) -> String {
    let header = format!(
        "{:>10} | {:>4} | {:>8} | {:>8} | {:>6} | {:>9} | {:>9} | {:>6} | {:>8} | {:>8} | {:>8} | {:>8}",
        "subnetwork",
        "live",
        "KL rep",
        "KL first",
        "ratio",
        "dlogp rep",
        "dlogp 1st",
        "ratio",
        "acc rep",
        "L1 ind",
        "L0 share",
        "L1 share"
    );
    let rule = "-".repeat(header.len());
    let mut text = format!(
        "induction: moving along each subnetwork by +-{:.3} ({} sequences; model: accuracy on repeated positions {:.3}, first occurrences {:.3})\n{header}\n{rule}\n",
        e.delta, e.sequences, e.accuracy_repeated, e.accuracy_first
    );
    for (k, s) in e.subnetworks.iter().chain([&e.baseline]).enumerate() {
        let name = match k == e.subnetworks.len() {
            true => "random".to_string(),
            false => label(e, k),
        };
        text.push_str(&format!(
            "{:>10} | {:>4} | {:>8.4} | {:>8.4} | {:>6.2} | {:>9.4} | {:>9.4} | {:>6.2} | {:>8.3} | {:>8.3} | {:>8.2} | {:>8.2}\n",
            name,
            if s.live { "yes" } else if k == e.subnetworks.len() { "-" } else { "dead" },
            s.kl_repeated,
            s.kl_first,
            s.ratio,
            s.logprob_repeated,
            s.logprob_first,
            s.logprob_ratio,
            s.accuracy_repeated,
            s.attention.layer1_induction,
            s.shares.layer0_total(),
            s.shares.layer1_total(),
        ));
    }
    text.push_str(&rule);
    let g = &e.gradient_shares;
    text.push_str(&format!(
        "\nper-sample gradients |g_i|^2: layer 0 {:.2} (q {:.2}, k {:.2}, v {:.2}, o {:.2}), layer 1 {:.2} (q {:.2}, k {:.2}, v {:.2}, o {:.2})",
        g.layer0_total(), g.layer0[0], g.layer0[1], g.layer0[2], g.layer0[3],
        g.layer1_total(), g.layer1[0], g.layer1[1], g.layer1[2], g.layer1[3],
    ));
    let role = |name: &str, k: Option<usize>| {
        match k {
        Some(k) => format!(
            "\n{name}: subnetwork {k} (repeated/first: KL {:.2}, |dlogp| {:.2}; accuracy on repeated positions after the move {:.3}, layer-1 attention on the induction target {:.3})",
            e.subnetworks[k].ratio, e.subnetworks[k].logprob_ratio, e.subnetworks[k].accuracy_repeated, e.subnetworks[k].attention.layer1_induction
        ),
        None => format!("\n{name}: none (no live subnetwork with half its norm^2 there)"),
    }
    };
    text.push_str(&role(
        "induction subnetwork (layer 1)",
        e.induction_subnetwork,
    ));
    text.push_str(&role("layer-0 subnetwork", e.layer0_subnetwork));
    if let Some(k) = e.previous_token_subnetwork {
        text.push_str(&format!(
            "\nprevious-token subnetwork (lowers layer 0's attention on the previous token most): subnetwork {k} (from {:.3} to {:.3}; the random direction: {:.3})",
            e.attention.layer0_previous_token,
            e.subnetworks[k].attention.layer0_previous_token,
            e.baseline.attention.layer0_previous_token
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("l3d-induction-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn marks_load_back_and_bad_marks_are_named() {
        let dir = folder("marks");
        let tokens = Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 1.0, 4.0, 5.0, 6.0]);
        nets::io::write_npy_i64(&dir.join(MARKS), &[2, 3], &[2, 0, 1, 0, 0, 0]).unwrap();
        let set = marked_set(&dir, &tokens).unwrap();
        use PositionKind::*;
        assert_eq!(
            set.marks,
            vec![vec![First, Other, Repeated], vec![Other; 3]]
        );
        nets::io::write_npy_i64(&dir.join(MARKS), &[2, 3], &[0, 0, 0, 0, 7, 0]).unwrap();
        let err = marked_set(&dir, &tokens).unwrap_err().to_string();
        assert!(err.contains("row 1, position 1 holds 7"), "{err}");
        nets::io::write_npy_i64(&dir.join(MARKS), &[3, 2], &[0; 6]).unwrap();
        let err = marked_set(&dir, &tokens).unwrap_err().to_string();
        assert!(err.contains("marks.npy") && err.contains("[3, 2]"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_folders_with_a_record_are_induction_folders() {
        let dir = folder("record");
        let model = ModelSource::Files {
            arch: dir.join("model.toml"),
            weights: dir.join("model.safetensors"),
        };
        assert!(folder_of(&model).is_none());
        std::fs::write(dir.join(RECORD), "{}").unwrap();
        assert_eq!(folder_of(&model), Some(dir.as_path()));
        let arch = toys::induction::architecture(&Default::default());
        nets::io::write_architecture(&dir.join("model.toml"), &arch).unwrap();
        let (source, data, config) = match decompose_source(&dir, None) {
            Err(e) => panic!("{e}"),
            Ok(x) => x,
        };
        assert_eq!(source, model);
        assert_eq!(
            data,
            DataSource::File {
                path: dir.join(TOKENS)
            }
        );
        assert_eq!(config.n_subnetworks, 16);
        assert_eq!(config.divergence, l3d::Divergence::Kl);
        assert!(config.decompose.iter().all(|n| n.starts_with("blocks.")));
        assert_eq!(config.decompose.len(), 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
