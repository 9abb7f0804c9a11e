//! The checks of a run's settings against its model, its data, its output folder and the
//! machine, made before anything is loaded, allocated or written: settings that cannot run
//! are refused with a message naming the flag, and settings that are pointless are warned
//! about.

use crate::config::{architecture_of, DataSource, ModelSource, RunConfig};
use crate::error::{Result, RunError};
use crate::files::absolute;
use crate::ui::Ui;
use l3d::memory::{estimate, human_bytes};
use l3d::train::TrainState;
use l3d::L3dConfig;
use nets::Sequential;
use std::path::{Path, PathBuf};
use tensor::Tensor;

/// Every check that needs only the config and the architecture: the settings on their own,
/// the per-tensor ranks, the warm start, and the memory the run will need.
pub fn before_loading(run: &RunConfig, ui: &Ui) -> Result<()> {
    let c = &run.l3d;
    c.validate().map_err(l3d::L3dError::from)?;
    if c.epochs == 0 {
        return Err(RunError::Setting(
            "--epochs 0: a decomposition needs at least one epoch (with none, the report would describe the untrained start)".into(),
        ));
    }
    if c.warm_start_epochs > 0 && c.warm_start_epochs >= c.epochs {
        return Err(RunError::Setting(format!(
            "--warm-start {} is not shorter than the run (--epochs {}): k would never reach --top-k {}",
            c.warm_start_epochs, c.epochs, c.top_k
        )));
    }
    if let DataSource::Fresh { samples, .. } | DataSource::Generator { samples, .. } = &run.data {
        check_against_data(c, *samples)?;
    }
    let slots = match architecture_of(&run.model)?.slots() {
        Ok((slots, _)) => slots,
        // The model's own loader names the problem with its file.
        Err(_) => return Ok(()),
    };
    let shapes: Vec<(String, Vec<usize>)> = slots.into_iter().map(|s| (s.name, s.shape)).collect();
    check_ranks(c, &shapes, ui)?;
    check_memory(c, &shapes)
}

/// The tensors `config.decompose` selects (all when empty), with their shapes.
fn decomposed<'a>(
    c: &L3dConfig,
    shapes: &'a [(String, Vec<usize>)],
) -> Vec<&'a (String, Vec<usize>)> {
    shapes
        .iter()
        .filter(|(name, _)| c.decompose.is_empty() || c.decompose.contains(name))
        .collect()
}

/// `ranks` naming a tensor the model does not have is refused; naming one that is not
/// decomposed, or a rank above a tensor's full rank, is warned about.
fn check_ranks(c: &L3dConfig, shapes: &[(String, Vec<usize>)], ui: &Ui) -> Result<()> {
    let names: Vec<&str> = shapes.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(unknown) = c.ranks.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(RunError::Setting(format!(
            "ranks: '{unknown}' is not a parameter of the model (its parameters: {})",
            names.join(", ")
        )));
    }
    let chosen = decomposed(c, shapes);
    for name in c.ranks.keys() {
        if !chosen.iter().any(|(n, _)| n == name) {
            ui.warn(&format!(
                "ranks: '{name}' is not decomposed (see --decompose), so its rank is not used"
            ));
        }
    }
    for (name, shape) in chosen.iter().filter(|(_, s)| s.len() >= 2) {
        let rank = c.rank_for(name, shape.len());
        let full = full_rank(shape);
        if rank > full {
            ui.warn(&format!(
                "rank {rank} for '{name}' {shape:?} is more than its full rank {full}: rank {full} already spans every tensor of that shape, so the extra terms only add parameters (--rank, or ranks in the config)"
            ));
        }
    }
    Ok(())
}

/// The largest CP rank a tensor of this shape can need: the product of its dimensions but
/// the largest (`min(m, n)` for a matrix).
pub fn full_rank(shape: &[usize]) -> usize {
    let largest = shape.iter().copied().max().unwrap_or(1).max(1);
    shape.iter().product::<usize>() / largest
}

/// Refuses a run whose buffers would not fit in the memory this machine has available.
fn check_memory(c: &L3dConfig, shapes: &[(String, Vec<usize>)]) -> Result<()> {
    let chosen: Vec<(String, Vec<usize>)> = decomposed(c, shapes).into_iter().cloned().collect();
    let need = estimate(&chosen, c);
    let Some(machine) = Memory::of_this_machine() else {
        return Ok(());
    };
    if need.bytes <= machine.available {
        return Ok(());
    }
    Err(RunError::TooMuchMemory(format!(
        "this decomposition would need about {} of memory (n_v {}, batch {}; the largest buffer, the {}, alone is {}), and this machine has {} available of {} (/proc/meminfo); lower --n-v, --rank or --batch, or decompose fewer tensors (--decompose)",
        human_bytes(need.bytes),
        c.n_subnetworks,
        c.batch_size,
        need.largest,
        human_bytes(need.largest_bytes),
        human_bytes(machine.available),
        human_bytes(machine.total),
    )))
}

/// The machine's memory, in bytes.
struct Memory {
    available: f64,
    total: f64,
}

impl Memory {
    /// `MemAvailable` and `MemTotal` of `/proc/meminfo` (None where there is none).
    fn of_this_machine() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |key: &str| -> Option<f64> {
            let line = text.lines().find(|l| l.starts_with(key))?;
            let kb: f64 = line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb * 1024.0)
        };
        Some(Self {
            available: field("MemAvailable:")?,
            total: field("MemTotal:")?,
        })
    }
}

/// A checkpoint's state must fit the model and the data loaded for the resumed run.
pub fn resume_fits(
    state: &TrainState<f32>,
    model: &Sequential<f32>,
    data: &Tensor<f32>,
) -> Result<()> {
    if l3d::train::fingerprint(data) != state.data_fingerprint {
        return Err(RunError::Changed(
            "the data differs from the data the checkpoint was trained on; start the run again instead of resuming it".into(),
        ));
    }
    l3d::persist::check_against_model(&state.decomposition, model)?;
    Ok(())
}

/// The folder holding each of the run's inputs (a saved toy's folder, a file's folder).
fn input_folders(run: &RunConfig) -> Vec<PathBuf> {
    let parent = |p: &Path| p.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut folders = match &run.model {
        ModelSource::Toy { .. } => vec![],
        ModelSource::ToyDir { dir } => vec![dir.clone()],
        ModelSource::Files { arch, weights } => vec![parent(arch), parent(weights)],
    };
    if let DataSource::File { path } = &run.data {
        folders.push(parent(path));
    }
    folders
}

/// Results are never written into a folder that holds the run's inputs.
pub fn out_is_not_an_input(run: &RunConfig, out: &Path) -> Result<()> {
    let out_abs = absolute(out);
    for folder in input_folders(run) {
        if absolute(&folder) == out_abs {
            return Err(RunError::OutIsInput {
                out: out.to_path_buf(),
                input: folder,
            });
        }
    }
    Ok(())
}

/// Checks the settings that depend on the data.
pub fn check_against_data(config: &L3dConfig, rows: usize) -> Result<()> {
    if config.batch_size > rows {
        return Err(RunError::BatchLargerThanData {
            batch_size: config.batch_size,
            rows,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_rank_is_the_product_of_all_dimensions_but_the_largest() {
        assert_eq!(full_rank(&[2, 5]), 2);
        assert_eq!(full_rank(&[16, 8]), 8);
        assert_eq!(full_rank(&[3, 4, 5]), 12);
        assert_eq!(full_rank(&[7]), 1);
    }
}
