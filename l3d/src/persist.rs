//! Saving and loading decompositions and training checkpoints.
//!
//! A save is two files side by side: `<stem>.json` (metadata: format, config, seed, the
//! model's parameter names and shapes, ranks, training history) and `<stem>.safetensors` (the
//! factors: `encoder.<param>.mode<m>` and `decoder.<param>.mode<m>`, each `[d_m, n_v R]`;
//! checkpoints add the AdamW moments `adam.m.<i>` and `adam.v.<i>`). Each file is written to
//! a temporary file and renamed into place, and the JSON records a hash of the tensor file, so
//! a reader never sees a half-written file and notices a pair from two different saves. The
//! tensor file is written and read by `nets::io`, whose reader checks the header against the
//! file before trusting it.

use crate::config::L3dConfig;
use crate::cp::CpTensor;
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::train::{EpochStats, TrainState};
use autodiff::optim::{AdamW, AdamWConfig};
use nets::io::{
    fnv1a, read_bytes, safetensors_from_bytes, safetensors_to_bytes, write_atomic, StoredFloat,
    TensorFile,
};
use nets::Model;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensor::{Float, Tensor};

/// Checking a loaded decomposition against its model (the check lives with the decomposition,
/// which training uses too).
pub use crate::decomposition::check_against_model;

const FORMAT: &str = "l3d-decomposition";
const CHECKPOINT_FORMAT: &str = "l3d-checkpoint";
const VERSION: u32 = 1;

/// One decomposed tensor in the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMeta {
    pub name: String,
    pub shape: Vec<usize>,
    pub rank: usize,
    /// Index of the tensor among the model's parameters.
    pub param_index: usize,
}

/// A model parameter as the metadata records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamMeta {
    pub name: String,
    pub shape: Vec<usize>,
}

/// The JSON half of a save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    pub dtype: String,
    pub n_subnetworks: usize,
    pub config: L3dConfig,
    pub tensors: Vec<TensorMeta>,
    pub model_params: Vec<ParamMeta>,
    pub history: Vec<EpochStats>,
    /// FNV-1a hash of the safetensors file written with this metadata.
    pub tensors_hash: u64,
    /// Checkpoints only: the next epoch, AdamW's step count, the data's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointMeta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub epoch: usize,
    pub adam_t: u64,
    pub data_fingerprint: u64,
}

/// A decomposition read back from disk, with what was saved beside it.
#[derive(Debug, Clone)]
pub struct Saved<T: Float> {
    pub decomposition: Decomposition<T>,
    pub meta: Meta,
}

/// The tensor file that goes with a JSON path: the same stem, `.safetensors`.
pub fn tensors_path(json: &Path) -> PathBuf {
    json.with_extension("safetensors")
}

/// FNV-1a over the bytes of a file.
fn fnv(bytes: &[u8]) -> u64 {
    fnv1a(bytes.iter().map(|&b| b as u64))
}

/// Takes tensor `name` out of a read tensor file (`path` names the file in errors).
fn take_tensor<T: Float>(file: &mut TensorFile<T>, name: &str, path: &Path) -> Result<Tensor<T>> {
    file.tensors.remove(name).ok_or_else(|| L3dError::Save {
        path: path.to_path_buf(),
        msg: format!("tensor '{name}' is missing"),
    })
}

fn factor_names(prefix: &str, d: &Decomposition<impl Float>, cps_of: bool) -> Vec<String> {
    let cps = if cps_of { &d.encoder } else { &d.decoder };
    d.names
        .iter()
        .zip(cps)
        .flat_map(|(name, cp)| {
            (0..cp.factors.len()).map(move |m| format!("{prefix}.{name}.mode{m}"))
        })
        .collect()
}

fn named_factors<T: Float>(d: &Decomposition<T>) -> Vec<(String, &Tensor<T>)> {
    let names = factor_names("encoder", d, true)
        .into_iter()
        .chain(factor_names("decoder", d, false));
    names.zip(d.factors()).collect()
}

fn meta_of<T: Float>(
    d: &Decomposition<T>,
    config: &L3dConfig,
    model: &dyn Model<T>,
    history: &[EpochStats],
) -> Meta {
    Meta {
        format: FORMAT.into(),
        version: VERSION,
        dtype: T::NAME.into(),
        n_subnetworks: d.n_v,
        config: config.clone(),
        tensors: d
            .names
            .iter()
            .zip(&d.encoder)
            .zip(&d.param_index)
            .map(|((name, cp), &i)| TensorMeta {
                name: name.clone(),
                shape: cp.shape.clone(),
                rank: cp.rank,
                param_index: i,
            })
            .collect(),
        model_params: model
            .param_names()
            .into_iter()
            .zip(model.param_shapes())
            .map(|(name, shape)| ParamMeta { name, shape })
            .collect(),
        history: history.to_vec(),
        tensors_hash: 0,
        checkpoint: None,
    }
}

fn write_pair<T: StoredFloat>(
    json: &Path,
    mut meta: Meta,
    named: &[(String, &Tensor<T>)],
) -> Result<()> {
    let tensor_path = tensors_path(json);
    let tensors = named.iter().map(|(name, t)| (name.as_str(), *t));
    let bytes = safetensors_to_bytes(&tensor_path, tensors, &BTreeMap::new())?;
    meta.tensors_hash = fnv(&bytes);
    write_atomic(&tensor_path, &bytes)?;
    let text = serde_json::to_string_pretty(&meta).expect("metadata serialises");
    write_atomic(json, text.as_bytes())?;
    Ok(())
}

/// Saves a decomposition of `model` trained with `config`.
pub fn save_decomposition<T: StoredFloat>(
    json: &Path,
    d: &Decomposition<T>,
    config: &L3dConfig,
    model: &dyn Model<T>,
    history: &[EpochStats],
) -> Result<()> {
    write_pair(json, meta_of(d, config, model, history), &named_factors(d))
}

/// Saves a training state, from which [`crate::train::Trainer::resume`] continues exactly.
pub fn save_checkpoint<T: StoredFloat>(
    json: &Path,
    state: &TrainState<T>,
    model: &dyn Model<T>,
) -> Result<()> {
    let d = &state.decomposition;
    let mut meta = meta_of(d, &state.config, model, &state.history);
    meta.format = CHECKPOINT_FORMAT.into();
    meta.checkpoint = Some(CheckpointMeta {
        epoch: state.epoch,
        adam_t: state.optimizer.t,
        data_fingerprint: state.data_fingerprint,
    });
    let mut named = named_factors(d);
    for (i, (m, v)) in state.optimizer.m.iter().zip(&state.optimizer.v).enumerate() {
        named.push((format!("adam.m.{i}"), m));
        named.push((format!("adam.v.{i}"), v));
    }
    write_pair(json, meta, &named)
}

/// Reads both files of a save and checks that they belong together.
fn read_pair(json: &Path) -> Result<(Meta, Vec<u8>)> {
    let text = std::fs::read_to_string(json).map_err(|source| nets::IoError::Read {
        path: json.to_path_buf(),
        source,
    })?;
    let meta: Meta = serde_json::from_str(&text).map_err(|e| L3dError::Save {
        path: json.to_path_buf(),
        msg: format!("not a valid l3d metadata file: {e}"),
    })?;
    if meta.format != FORMAT && meta.format != CHECKPOINT_FORMAT {
        return Err(L3dError::Save {
            path: json.to_path_buf(),
            msg: format!("unknown format '{}'", meta.format),
        });
    }
    let tensor_path = tensors_path(json);
    let bytes = read_bytes(&tensor_path)?;
    if fnv(&bytes) != meta.tensors_hash {
        return Err(L3dError::Save {
            path: tensor_path.to_path_buf(),
            msg: format!(
                "does not match {} (a different save, or a damaged file)",
                json.display()
            ),
        });
    }
    Ok((meta, bytes))
}

fn decomposition_from<T: Float>(
    meta: &Meta,
    file: &mut TensorFile<T>,
    path: &Path,
) -> Result<Decomposition<T>> {
    let n_v = meta.n_subnetworks;
    let mut read = |prefix: &str| -> Result<Vec<CpTensor<T>>> {
        meta.tensors
            .iter()
            .map(|t| {
                let factors = (0..t.shape.len())
                    .map(|m| {
                        let name = format!("{prefix}.{}.mode{m}", t.name);
                        let f = take_tensor(file, &name, path)?;
                        if f.shape() != [t.shape[m], n_v * t.rank] {
                            return Err(L3dError::Save {
                                path: path.to_path_buf(),
                                msg: format!(
                                    "tensor '{name}' has shape {:?}; expected [{}, {}]",
                                    f.shape(),
                                    t.shape[m],
                                    n_v * t.rank
                                ),
                            });
                        }
                        Ok(f)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(CpTensor {
                    shape: t.shape.clone(),
                    n_v,
                    rank: t.rank,
                    factors,
                })
            })
            .collect()
    };
    let encoder = read("encoder")?;
    let decoder = read("decoder")?;
    Ok(Decomposition {
        n_v,
        names: meta.tensors.iter().map(|t| t.name.clone()).collect(),
        param_index: meta.tensors.iter().map(|t| t.param_index).collect(),
        encoder,
        decoder,
    })
}

/// Loads a decomposition (or the decomposition inside a checkpoint).
pub fn load_decomposition<T: Float>(json: &Path) -> Result<Saved<T>> {
    let (meta, bytes) = read_pair(json)?;
    let path = tensors_path(json);
    let mut file = safetensors_from_bytes(&path, &bytes)?;
    let decomposition = decomposition_from(&meta, &mut file, &path)?;
    Ok(Saved {
        decomposition,
        meta,
    })
}

/// Loads a checkpoint written by [`save_checkpoint`].
pub fn load_checkpoint<T: Float>(json: &Path) -> Result<TrainState<T>> {
    let (meta, bytes) = read_pair(json)?;
    let path = tensors_path(json);
    let ck = meta.checkpoint.clone().ok_or_else(|| L3dError::Save {
        path: json.to_path_buf(),
        msg: "is a decomposition, not a checkpoint".into(),
    })?;
    let mut file = safetensors_from_bytes(&path, &bytes)?;
    let decomposition = decomposition_from::<T>(&meta, &mut file, &path)?;
    let count = decomposition.factors().len();
    let mut m = Vec::with_capacity(count);
    let mut v = Vec::with_capacity(count);
    for i in 0..count {
        m.push(take_tensor(&mut file, &format!("adam.m.{i}"), &path)?);
        v.push(take_tensor(&mut file, &format!("adam.v.{i}"), &path)?);
    }
    let config = meta.config.clone();
    Ok(TrainState {
        optimizer: AdamW {
            config: AdamWConfig {
                lr: config.lr,
                weight_decay: config.weight_decay,
                ..Default::default()
            },
            t: ck.adam_t,
            m,
            v,
        },
        config,
        decomposition,
        epoch: ck.epoch,
        history: meta.history,
        data_fingerprint: ck.data_fingerprint,
    })
}
