//! The errors of the program. Each variant says which kind of problem it is (a bad setting, a
//! file, the data, an interruption), and its message names what was wrong: the flag, the
//! file, the value.

use std::path::PathBuf;
use thiserror::Error;
use toys::models::ToyKind;

#[derive(Debug, Error)]
pub enum RunError {
    /// A flag or a config value out of its range, or settings that contradict each other.
    #[error("{0}")]
    Setting(String),
    /// `l3d decompose` was not told what to decompose.
    #[error(
        "say what to decompose: --toy NAME, --model-dir DIR, --arch FILE --weights FILE, or --config FILE"
    )]
    NoModel,
    /// A subnetwork index beyond the decomposition's.
    #[error("subnetwork {index} does not exist (there are {count})")]
    NoSuchSubnetwork { index: usize, count: usize },
    /// A batch larger than the data it is drawn from.
    #[error("invalid config: batch_size = {batch_size} is larger than the data ({rows} rows)")]
    BatchLargerThanData { batch_size: usize, rows: usize },
    /// Data with too few rows to pair samples with references.
    #[error("the data has {rows} rows; a decomposition needs at least 2")]
    TooFewRows { rows: usize },
    /// Fresh samples asked of a model that has no input distribution (not a toy).
    #[error(
        "fresh samples need a toy's input distribution; give the inputs as a file (--inputs FILE) or draw them from the sparse generator (--sparse-features N)"
    )]
    NoInputDistribution,
    /// A data generator whose settings are invalid.
    #[error("data generator: {0}")]
    Generator(String),
    /// A saved toy whose architecture file is not its kind's architecture.
    #[error("{}: the architecture is not that of the toy '{kind}'", path.display())]
    NotTheToy { path: PathBuf, kind: ToyKind },
    /// A folder that could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output folder (its lock, its staging folder, its results) that could not be used.
    #[error("{}: {source}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output folder that another run is writing to.
    #[error(
        "{} is in use by another l3d run ({holder}); wait for it to finish, or write elsewhere with --out DIR",
        dir.display()
    )]
    FolderInUse { dir: PathBuf, holder: String },
    /// An output folder that holds the results of an earlier run.
    #[error(
        "{} holds the results of an earlier run ({found}); give --overwrite to replace them, or write elsewhere with --out DIR",
        dir.display()
    )]
    ResultsPresent { dir: PathBuf, found: String },
    /// An output folder that is one of the run's inputs' folders.
    #[error(
        "{} holds the run's input {}; results are never written over the inputs: write them elsewhere with --out DIR",
        out.display(), input.display()
    )]
    OutIsInput { out: PathBuf, input: PathBuf },
    /// A path the program must record (in config.json) but cannot: JSON holds text only.
    #[error(
        "the path {} is not valid UTF-8, so config.json cannot record it; rename it (or link to it under a UTF-8 name)",
        path.display()
    )]
    NotUtf8 { path: PathBuf },
    /// `--resume` given a folder or file with no checkpoint to continue from.
    #[error("{what}")]
    NoCheckpoint { what: String },
    /// The inputs of a finished run (weights, architecture, data) changed after it ran.
    #[error("{0}")]
    Changed(String),
    /// A decomposition that would not fit in memory.
    #[error("{0}")]
    TooMuchMemory(String),
    /// A class-labels file that does not fit the inputs.
    #[error("labels {}: {msg}", path.display())]
    Labels { path: PathBuf, msg: String },
    /// A JSON file (a config, a toy's record) that does not parse as what it should hold.
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A result that could not be written as JSON.
    #[error("{0}")]
    ToJson(#[source] serde_json::Error),
    /// The user stopped the run; what was done is saved at `checkpoint`.
    #[error("interrupted; the run was saved at {checkpoint}: continue it with `l3d decompose --resume {resume}`")]
    Interrupted { checkpoint: String, resume: String },
    /// The user stopped a run made of independent parts (`reproduce`); nothing is resumed.
    #[error("interrupted")]
    Stopped,
    #[error(transparent)]
    L3d(#[from] l3d::L3dError),
    #[error(transparent)]
    Io(#[from] nets::IoError),
    #[error(transparent)]
    Figure(#[from] crate::figures::FigureError),
    #[error(transparent)]
    Train(#[from] toys::train::TrainError),
}

impl From<autodiff::AutodiffError> for RunError {
    fn from(e: autodiff::AutodiffError) -> Self {
        RunError::L3d(e.into())
    }
}

pub type Result<T> = std::result::Result<T, RunError>;
