//! What the reproduction measured: each run's result, and the whole with its table's rows, as
//! `reproduce.json` records them.

use l3d::Divergence;
use serde::{Deserialize, Serialize};
use toys::analysis::Analysis;
use toys::models::ToyKind;

/// One line of the reproduction table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    pub measure: String,
    /// Median and range over the runs, as text.
    pub ours: String,
    pub paper: String,
    /// Whether the median meets the target for this line (None: no target).
    pub met: Option<bool>,
}

/// What one decomposition run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub toy: ToyKind,
    pub toy_seed: u64,
    pub seed: u64,
    pub n_v: usize,
    pub rank: usize,
    pub divergence: Divergence,
    pub purpose: Purpose,
    /// Held-out relative reconstruction error.
    pub error: f64,
    /// The full analysis (main runs only).
    pub analysis: Option<Analysis>,
}

/// Why a run is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The paper's settings: every measure of the table.
    Main,
    /// The paper's settings under the other MSE divergence: its error only.
    OtherDivergence,
    /// A point of a sweep over rank (`high-rank`) or `n_v` (`squared`): its error only.
    Sweep,
}

/// Everything `reproduce` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reproduction {
    pub scale: f64,
    pub seed: u64,
    pub toy_seeds: usize,
    pub seeds: usize,
    pub divergence: Divergence,
    pub rows: Vec<Row>,
    pub runs: Vec<RunResult>,
    /// The digits runs (`--digits`), beyond the paper.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digits: Vec<super::DigitsResult>,
    /// The induction transformer (`--induction`), beyond the paper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub induction: Option<super::InductionReproduction>,
    pub seconds: f64,
}
