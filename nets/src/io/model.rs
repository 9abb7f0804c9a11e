//! A user's model: an architecture file (TOML or JSON) and a safetensors weights file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::Model;
use tensor::Tensor;

use super::atomic::write_atomic;
use super::element::{
    checked_numel, first_non_finite, unravel, Encoding, StoredFloat, SAFETENSORS_DTYPES,
};
use super::fs::{read_bytes, read_text};
use super::inputs::extension;
use super::safetensors::{write_safetensors, Parsed};
use super::{IoError, Mismatch};
use crate::{Architecture, Layer, ParamSlot, Sequential};

/// The two formats of an architecture file, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchFormat {
    Toml,
    Json,
}

impl ArchFormat {
    fn of(path: &Path) -> Result<Self, IoError> {
        match extension(path).as_deref() {
            Some("toml") => Ok(Self::Toml),
            Some("json") => Ok(Self::Json),
            _ => Err(IoError::Extension {
                path: path.to_path_buf(),
                expected: ".toml or .json",
            }),
        }
    }
}

/// The model described by the architecture file `arch_path` (`.toml` or `.json`, see the
/// module docs of [`crate::io`]) with the weights of the safetensors file `weights_path`.
///
/// Every parameter slot of the architecture must be a tensor of the same name and shape in
/// the weights file, in dtype F32, F64, F16 or BF16, and the file must hold nothing else; all
/// disagreements are reported together in one [`IoError::Mismatch`]. A NaN or infinite
/// weight is an error naming the tensor and the index of the first such value.
pub fn load_model(arch_path: &Path, weights_path: &Path) -> Result<Sequential<f32>, IoError> {
    let arch = parse_architecture(arch_path)?;
    let slots = check_architecture(&arch).map_err(|msg| arch_error(arch_path, msg))?;
    let bytes = read_bytes(weights_path)?;
    let file = Parsed::parse(weights_path, &bytes)?;
    let problems = mismatches(&slots, &file);
    if !problems.is_empty() {
        return Err(IoError::Mismatch {
            arch: arch_path.to_path_buf(),
            weights: weights_path.to_path_buf(),
            problems,
        });
    }
    let mut params = Vec::with_capacity(slots.len());
    for slot in &slots {
        let tensor = file.tensor(&slot.name)?;
        check_finite_weight(weights_path, &slot.name, &tensor)?;
        params.push(tensor);
    }
    Sequential::new(arch, params).map_err(|msg| arch_error(arch_path, msg))
}

/// Writes the architecture of `model` to `arch_path` (TOML or JSON by extension) and its
/// weights to the safetensors file `weights_path` under their `state_dict` names, each file
/// atomically. The weights carry the metadata `format = "pt"`, as PyTorch's writer sets it.
pub fn save_model<T: StoredFloat>(
    model: &Sequential<T>,
    arch_path: &Path,
    weights_path: &Path,
) -> Result<(), IoError> {
    let names = model.param_names();
    let tensors = names.iter().map(String::as_str).zip(model.params());
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(weights_path, tensors, &metadata)?;
    write_architecture(arch_path, model.architecture())
}

/// The architecture in the file at `path`, parsed and checked (widths that fit, no zero
/// width, unique parameter names). Parse errors keep the parser's line and column.
pub fn read_architecture(path: &Path) -> Result<Architecture, IoError> {
    let arch = parse_architecture(path)?;
    check_architecture(&arch).map_err(|msg| arch_error(path, msg))?;
    Ok(arch)
}

fn parse_architecture(path: &Path) -> Result<Architecture, IoError> {
    let format = ArchFormat::of(path)?;
    let text = read_text(path)?;
    let parsed = match format {
        ArchFormat::Toml => toml::from_str(&text).map_err(|e| toml_message(&text, &e)),
        ArchFormat::Json => serde_json::from_str(&text).map_err(|e| e.to_string()),
    };
    parsed.map_err(|msg| arch_error(path, msg))
}

/// The parser's message, plus the line of the offending key or value when the message names
/// an unknown one: errors inside a tagged layer are placed at the start of the layer list.
fn toml_message(text: &str, err: &toml::de::Error) -> String {
    let message = err.message();
    let token = ["unknown variant `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix)?.split('`').next())
        .filter(|token| !token.is_empty());
    let line = token.and_then(|token| line_of_word(text, token).map(|line| (token, line)));
    match line {
        Some((token, line)) => format!("{err}(`{token}` is on line {line})"),
        None => err.to_string(),
    }
}

/// The 1-based number of the first line that has `word` outside a comment, as a whole word.
fn line_of_word(text: &str, word: &str) -> Option<usize> {
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_';
    let has_word = |code: &str| {
        code.match_indices(word).any(|(at, _)| {
            let before = code[..at].chars().next_back();
            let after = code[at + word.len()..].chars().next();
            !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
        })
    };
    text.lines()
        .position(|line| has_word(line.split('#').next().unwrap_or_default()))
        .map(|i| i + 1)
}

/// Writes `arch` to `path` as TOML or JSON (by extension), atomically.
pub fn write_architecture(path: &Path, arch: &Architecture) -> Result<(), IoError> {
    let text = match ArchFormat::of(path)? {
        ArchFormat::Toml => toml::to_string(arch).map_err(|e| e.to_string()),
        ArchFormat::Json => serde_json::to_string_pretty(arch).map_err(|e| e.to_string()),
    };
    let text = text.map_err(|msg| arch_error(path, format!("cannot be written: {msg}")))?;
    write_atomic(path, text.as_bytes())
}

/// The parameter slots of an architecture that can exist, or what is wrong with it.
fn check_architecture(arch: &Architecture) -> Result<Vec<ParamSlot>, String> {
    arch.check_input()?;
    check_layers(&arch.layers)?;
    let (slots, _) = arch.slots()?;
    let mut seen = BTreeSet::new();
    for slot in &slots {
        if !seen.insert(slot.name.as_str()) {
            return Err(format!("two parameters are named '{}'", slot.name));
        }
        if checked_numel(&slot.shape).is_none() {
            let (name, shape) = (&slot.name, &slot.shape);
            return Err(format!(
                "parameter '{name}' of shape {shape:?} is too large"
            ));
        }
    }
    Ok(slots)
}

/// No layer has a zero size, an empty name or an unusable `eps`.
fn check_layers(layers: &[Layer]) -> Result<(), String> {
    for layer in layers {
        match layer {
            Layer::Linear {
                name,
                in_features,
                out_features,
                ..
            } => {
                check_name(name)?;
                if *in_features == 0 || *out_features == 0 {
                    return Err(format!(
                        "linear layer '{name}' has in_features = {in_features} and \
                         out_features = {out_features}; both must be at least 1"
                    ));
                }
            }
            Layer::Activation { .. } | Layer::Flatten => {}
            Layer::LayerNorm { name, dim, eps } => {
                check_name(name)?;
                if *dim == 0 {
                    return Err(format!("layer norm '{name}' has dim = 0"));
                }
                if !eps.is_finite() || *eps < 0.0 {
                    return Err(format!(
                        "layer norm '{name}' has eps = {eps}; it must be >= 0"
                    ));
                }
            }
            Layer::Residual { block } => check_layers(block)?,
            Layer::Conv2d {
                name,
                in_channels,
                out_channels,
                ..
            } => {
                check_name(name)?;
                check_sizes(
                    name,
                    &[
                        ("in_channels", *in_channels),
                        ("out_channels", *out_channels),
                    ],
                )?;
            }
            // Kernel, stride and dilation are checked against the input by the walk.
            Layer::MaxPool2d { .. } | Layer::AvgPool2d { .. } => {}
            Layer::Embedding {
                name,
                num_embeddings,
                embedding_dim,
            }
            | Layer::PositionalEmbedding {
                name,
                num_embeddings,
                embedding_dim,
            } => {
                check_name(name)?;
                let sizes = [
                    ("num_embeddings", *num_embeddings),
                    ("embedding_dim", *embedding_dim),
                ];
                check_sizes(name, &sizes)?;
            }
            Layer::TiedReadout { embedding } => check_name(embedding)?,
            Layer::Attention {
                name,
                embed_dim,
                projections,
                ..
            } => {
                check_name(name)?;
                check_sizes(name, &[("embed_dim", *embed_dim)])?;
                for p in projections {
                    check_name(p)?;
                }
            }
            Layer::MultiheadAttention {
                name, embed_dim, ..
            } => {
                check_name(name)?;
                check_sizes(name, &[("embed_dim", *embed_dim)])?;
            }
        }
    }
    Ok(())
}

/// Every named size of layer `name` is at least 1.
fn check_sizes(name: &str, sizes: &[(&str, usize)]) -> Result<(), String> {
    match sizes.iter().find(|(_, n)| *n == 0) {
        Some((key, _)) => Err(format!(
            "layer '{name}' has {key} = 0; it must be at least 1"
        )),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    match name.is_empty() {
        true => Err("a layer has an empty name".to_string()),
        false => Ok(()),
    }
}

/// Every disagreement between the slots and the file: missing, wrong shape or dtype, then
/// the file's tensors that are not slots.
fn mismatches(slots: &[ParamSlot], file: &Parsed) -> Vec<Mismatch> {
    let mut problems = Vec::new();
    for slot in slots {
        let tensor = slot.name.clone();
        let Some(info) = file.info(&slot.name) else {
            let expected = slot.shape.clone();
            problems.push(Mismatch::Missing { tensor, expected });
            continue;
        };
        if info.shape != slot.shape {
            problems.push(Mismatch::Shape {
                tensor: tensor.clone(),
                expected: slot.shape.clone(),
                found: info.shape.clone(),
            });
        }
        if Encoding::of_dtype(info.dtype).is_none() {
            let found = format!("{:?}", info.dtype);
            let expected = SAFETENSORS_DTYPES;
            problems.push(Mismatch::Dtype {
                tensor,
                found,
                expected,
            });
        }
    }
    let slot_names: BTreeSet<&str> = slots.iter().map(|s| s.name.as_str()).collect();
    for name in file.names() {
        if !slot_names.contains(name.as_str()) {
            let found = file
                .info(&name)
                .map(|i| i.shape.clone())
                .unwrap_or_default();
            problems.push(Mismatch::Unexpected {
                tensor: name,
                found,
            });
        }
    }
    problems
}

fn check_finite_weight(path: &Path, name: &str, tensor: &Tensor<f32>) -> Result<(), IoError> {
    match first_non_finite(tensor.data()) {
        None => Ok(()),
        Some((flat, value)) => Err(IoError::NonFiniteWeight {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            index: unravel(flat, tensor.shape()),
            value,
        }),
    }
}

fn arch_error(path: &Path, msg: String) -> IoError {
    IoError::Architecture {
        path: path.to_path_buf(),
        msg,
    }
}
