//! Checkpoints of a run in progress, saved into its staging folder every `--checkpoint-every`
//! epochs and at least every `--checkpoint-minutes`, and on Ctrl-C, so that a run killed in
//! any way (`kill -9`, power loss, the out-of-memory killer) continues from the last one with
//! `l3d decompose --resume DIR`, bit for bit as if never stopped.
//!
//! Each save is a new pair `checkpoint-{epoch:06}.json` and `.safetensors` (each file written
//! atomically, the JSON last and recording the tensor file's hash), and only once it is
//! complete are the older pairs removed: whenever the process dies, the newest complete pair
//! is there. The run removes them all once its results are in place.

use crate::error::{Result, RunError};
use l3d::persist::{load_checkpoint, save_checkpoint, tensors_path};
use l3d::train::TrainState;
use nets::Sequential;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// When a run saves a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Every this many epochs (0: never by count).
    pub every_epochs: usize,
    /// At least this often.
    pub every: Duration,
}

impl Default for Policy {
    /// Every 100 epochs and at least every 5 minutes.
    fn default() -> Self {
        Self {
            every_epochs: 100,
            every: Duration::from_secs(300),
        }
    }
}

/// The clock of a run's checkpoints: says after each epoch whether one is due.
pub struct Schedule {
    policy: Policy,
    last: Instant,
}

impl Schedule {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            last: Instant::now(),
        }
    }

    /// Whether a checkpoint is due after `done` epochs; if so, the clock restarts.
    pub fn due(&mut self, done: usize) -> bool {
        let by_count =
            self.policy.every_epochs > 0 && done.is_multiple_of(self.policy.every_epochs);
        if by_count || self.last.elapsed() >= self.policy.every {
            self.last = Instant::now();
            return true;
        }
        false
    }
}

/// The checkpoint after `epoch` epochs in `staging`.
fn path_at(staging: &Path, epoch: usize) -> PathBuf {
    staging.join(format!("checkpoint-{epoch:06}.json"))
}

/// The epoch of a checkpoint file name (`checkpoint-000300.json`: 300).
fn epoch_of(name: &str) -> Option<usize> {
    name.strip_prefix("checkpoint-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Every checkpoint JSON in `staging` with its epoch.
fn all_in(staging: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = fs::read_dir(staging) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((epoch_of(e.file_name().to_str()?)?, e.path())))
        .collect();
    found.sort();
    found
}

/// Saves `state` into `staging`, then removes the older checkpoints; returns the new one.
pub fn save(staging: &Path, state: &TrainState<f32>, model: &Sequential<f32>) -> Result<PathBuf> {
    let path = path_at(staging, state.epoch);
    save_checkpoint(&path, state, model)?;
    for (epoch, older) in all_in(staging) {
        if epoch != state.epoch {
            remove_pair(&older)?;
        }
    }
    Ok(path)
}

/// The newest checkpoint in `staging`, if any.
pub fn latest(staging: &Path) -> Option<PathBuf> {
    all_in(staging).pop().map(|(_, path)| path)
}

/// Loads a checkpoint.
pub fn load(path: &Path) -> Result<TrainState<f32>> {
    Ok(load_checkpoint(path)?)
}

/// Removes every checkpoint in `staging` (the run is complete).
pub fn remove_all(staging: &Path) -> Result<()> {
    for (_, path) in all_in(staging) {
        remove_pair(&path)?;
    }
    Ok(())
}

/// Removes a checkpoint's tensor file, then its JSON (so a JSON never names a missing file
/// for long, and a crash between the two leaves a pair that is simply older).
fn remove_pair(json: &Path) -> Result<()> {
    for path in [tensors_path(json), json.to_path_buf()] {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RunError::Folder { path, source: e })
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_read_from_names() {
        assert_eq!(epoch_of("checkpoint-000300.json"), Some(300));
        assert_eq!(epoch_of("checkpoint-1234567.json"), Some(1_234_567));
        assert_eq!(epoch_of("checkpoint-000300.safetensors"), None);
        assert_eq!(epoch_of("checkpoint.json"), None);
    }

    #[test]
    fn due_every_n_epochs_or_when_the_time_has_come() {
        let mut by_count = Schedule::new(Policy {
            every_epochs: 3,
            every: Duration::from_secs(3600),
        });
        let due: Vec<usize> = (1..=9).filter(|&e| by_count.due(e)).collect();
        assert_eq!(due, [3, 6, 9]);
        let mut by_time = Schedule::new(Policy {
            every_epochs: 0,
            every: Duration::ZERO,
        });
        assert!(by_time.due(1) && by_time.due(2));
    }
}
