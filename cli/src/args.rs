//! The program's command line: the subcommands and their flags (clap), and the parsers of the
//! values that name L3D's settings.

use clap::{Args, Parser, Subcommand};
use l3d::{Divergence, Positions, Reference, SettingName, TopKCount, WarmStart};
use nets::TensorSet;
use std::path::PathBuf;
use toys::digits::train::DigitsKind;
use toys::models::ToyKind;

/// Local Loss Landscape Decomposition: find the sparsely active circuits of a network by
/// decomposing per-sample gradients into a few low-rank directions in parameter space.
///
/// With no subcommand: train the TMS toy model, decompose it at the paper's settings, and
/// print what was found (outputs in out/default/).
#[derive(Debug, Parser)]
#[command(name = "l3d", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print only the final results.
    #[arg(long, global = true, conflicts_with = "json")]
    pub quiet: bool,
    /// Print JSON lines (progress events and results) for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a toy model, a digits network or the induction transformer and save it
    /// (model.toml, model.safetensors, and toy.json, or the inputs with their labels or marks
    /// and digits.json or induction.json).
    Train(TrainArgs),
    /// Decompose a model: a toy, a saved toy, or your own architecture + weights.
    Decompose(Box<DecomposeArgs>),
    /// Report on a saved decomposition (table, JSON, figures).
    Report(ReportArgs),
    /// Move the parameters along subnetworks and show the output changes.
    Intervene(InterveneArgs),
    /// Reproduce the toy experiments of the paper's Section 3, with the paper's numbers.
    Reproduce(ReproduceArgs),
    /// Train a suite of small models with known circuits the ordinary way, save them as a user
    /// would, decompose them at the defaults, and measure what was recovered.
    Suite(SuiteArgs),
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Output folder.
    #[arg(long, default_value = "out/suite")]
    pub out: PathBuf,
    /// Models trained per suite model (seeds 0, 1, ..).
    #[arg(long, default_value_t = 3)]
    pub model_seeds: usize,
    /// Decompositions per trained model (seeds 0, 1, ..).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Scale the decomposition epochs by this factor (e.g. 0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// The tensors to decompose: all, weights or weights-before-readout (default: what
    /// `l3d decompose` picks for your models, weights-before-readout; all is the paper's
    /// choice).
    #[arg(long, value_parser = parse_tensor_set)]
    pub decompose: Option<TensorSet>,
}

/// A model `l3d train` trains: a toy, a network on the handwritten digits, or the induction
/// transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainModel {
    Toy(ToyKind),
    Digits(DigitsKind),
    /// The two-layer attention-only transformer trained on repeated spans (toys::induction).
    Induction,
}

impl TrainModel {
    const ALL: [TrainModel; 8] = [
        TrainModel::Toy(ToyKind::Tms),
        TrainModel::Toy(ToyKind::TmsParallel),
        TrainModel::Toy(ToyKind::Tmcs),
        TrainModel::Toy(ToyKind::HighRank),
        TrainModel::Toy(ToyKind::Squared),
        TrainModel::Digits(DigitsKind::DigitsMlp),
        TrainModel::Digits(DigitsKind::DigitsCnn),
        TrainModel::Induction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TrainModel::Toy(kind) => kind.name(),
            TrainModel::Digits(kind) => kind.name(),
            TrainModel::Induction => "induction",
        }
    }
}

impl std::fmt::Display for TrainModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl clap::ValueEnum for TrainModel {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            TrainModel::Toy(kind) => kind.to_possible_value(),
            TrainModel::Digits(kind) => kind.to_possible_value(),
            TrainModel::Induction => Some(
                clap::builder::PossibleValue::new("induction")
                    .help("Two attention layers trained to copy repeated spans (induction heads)"),
            ),
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Which model: a toy, a network on the handwritten digits, or the induction transformer.
    #[arg(long, value_enum)]
    pub model: TrainModel,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most epochs (toys: 1000, training stops earlier once converged; the digits networks
    /// and the induction transformer: their recorded settings, 60).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Output folder (default out/<model>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecomposeArgs {
    /// A toy model to train and decompose.
    #[arg(long, value_enum, conflicts_with_all = ["model_dir", "arch"])]
    pub toy: Option<ToyKind>,
    /// A toy or a digits network saved by `l3d train` (a digits folder is decomposed on its
    /// training images, inputs.npy, with labels.npy as the class labels).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Your model's architecture file (TOML or JSON; see examples/models/).
    #[arg(long, requires = "weights")]
    pub arch: Option<PathBuf>,
    /// Your model's weights (safetensors, PyTorch state_dict names).
    #[arg(long, requires = "arch")]
    pub weights: Option<PathBuf>,
    /// Inputs to decompose on (.npy or safetensors): [N, d_in] rows, [N, C, H, W] images, or
    /// [N, T] token ids (.npy of int32 or int64) for a model whose first layer is an embedding.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Class labels of the inputs (.npy of integers, one per input) for the per-class report;
    /// by default the inputs' name with `inputs` replaced by `labels` (x_inputs.npy ->
    /// x_labels.npy), else labels.npy beside the inputs, if there is one holding class indices.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Inputs from a sparse generator instead: number of features.
    #[arg(long, conflicts_with = "inputs")]
    pub sparse_features: Option<usize>,
    /// A run config (e.g. the config.json of an earlier run); flags given override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue a stopped or killed run: its output folder (or one of its checkpoint files).
    /// Flags that would change the run are refused; --epochs may grow.
    #[arg(long, conflicts_with_all = ["toy", "model_dir", "arch", "weights", "inputs", "labels", "sparse_features", "config", "out", "overwrite"])]
    pub resume: Option<PathBuf>,
    /// Output folder (default: a fresh folder out/<model>, out/<model>-2, ..).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the results of an earlier run in the output folder (else refused).
    #[arg(long)]
    pub overwrite: bool,
    /// Save a checkpoint every this many epochs (0: only by time).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Save a checkpoint at least this often, in minutes.
    #[arg(long, default_value_t = 5.0, value_parser = parse_minutes)]
    pub checkpoint_minutes: f64,
    #[command(flatten)]
    pub settings: Settings,
}

/// L3D settings; any not given takes the config file's value, else the paper's.
#[derive(Debug, Args, Default)]
pub struct Settings {
    /// Number of subnetworks n_v.
    #[arg(long)]
    pub n_v: Option<usize>,
    /// CP rank of every tensor with two or more modes.
    #[arg(long)]
    pub rank: Option<usize>,
    /// Fraction k of the batch x n_v coefficients kept by batch top-k, in (0, 1].
    #[arg(long)]
    pub top_k: Option<f64>,
    /// Epochs over the data (paper: 1000).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size; also the pool each sample's reference is drawn from (paper: 32).
    #[arg(long)]
    pub batch: Option<usize>,
    /// AdamW learning rate at the start (paper: 0.01).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate decay factor (applied every --lr-step epochs).
    #[arg(long)]
    pub lr_gamma: Option<f64>,
    /// Epochs between learning-rate decays (paper: 100; 0 for none).
    #[arg(long)]
    pub lr_step: Option<usize>,
    /// Epochs of warm start before k reaches --top-k.
    #[arg(long)]
    pub warm_start: Option<usize>,
    /// How k moves during the warm start: linear (from 1 down to --top-k; the default) or
    /// hold (k = 0.999 throughout, then --top-k, as the authors' code does).
    #[arg(long, value_parser = parse_warm_start)]
    pub warm_start_schedule: Option<WarmStart>,
    /// How many of the N = batch x n_v coefficients top-k keeps: ceil (ceil(k N); the
    /// default) or floor-plus-one (int(k N) + 1, as the authors' code counts).
    #[arg(long, value_parser = parse_top_k_count)]
    pub top_k_count: Option<TopKCount>,
    /// Seed of the decomposition (initialisation, shuffling, references) and of a toy.
    #[arg(long)]
    pub seed: Option<u64>,
    /// mse (the paper's), mse-authors (the authors' toy scripts; default for toys), or kl
    /// (logit models; default for architecture files with `output = "logits"`).
    #[arg(long, value_parser = parse_divergence)]
    pub divergence: Option<Divergence>,
    /// The reference output each sample is compared with: random (another sample of the
    /// batch; the paper's choice and the default), random-with-self (any sample of the batch,
    /// itself included, as the authors' code draws it), mean (the batch mean), zero.
    #[arg(long, value_parser = parse_reference)]
    pub reference: Option<Reference>,
    /// For a sequence model (outputs per position), the positions whose divergences are
    /// summed: all (the default), last, or a list such as 0,5,7.
    #[arg(long, value_parser = Positions::parse)]
    pub positions: Option<Positions>,
    /// Parameter tensors to decompose: comma-separated names, or a set: all (every tensor,
    /// biases included: the paper's choice, the default for toys), weights (every weight of
    /// two or more modes, conv kernels and embedding tables included), weights-before-readout
    /// (those weights but the read-out's and the embedding tables; the default for your own
    /// models). The rest stay frozen at W0.
    #[arg(long, value_delimiter = ',')]
    pub decompose: Option<Vec<String>>,
    /// Samples to decompose on (fresh from the toy's distribution or a generator).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Most epochs of toy training when a toy is trained first.
    #[arg(long)]
    pub train_epochs: Option<usize>,
}

fn parse_tensor_set(s: &str) -> std::result::Result<TensorSet, String> {
    TensorSet::parse(s)
        .ok_or_else(|| format!("unknown tensor set '{s}' (all, weights, weights-before-readout)"))
}

fn parse_minutes(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m.is_finite() && m >= 0.0 => Ok(m),
        _ => Err(format!("'{s}' is not a number of minutes (0 or more)")),
    }
}

/// A setting's value by its name (`mse-authors`), or a message listing the names.
fn parse_named<T: SettingName>(what: &str, s: &str) -> std::result::Result<T, String> {
    T::parse(s).ok_or_else(|| format!("unknown {what} '{s}' ({})", T::listed()))
}

fn parse_divergence(s: &str) -> std::result::Result<Divergence, String> {
    parse_named("divergence", s)
}

fn parse_reference(s: &str) -> std::result::Result<Reference, String> {
    parse_named("reference", s)
}

fn parse_warm_start(s: &str) -> std::result::Result<WarmStart, String> {
    parse_named("warm-start schedule", s)
}

fn parse_top_k_count(s: &str) -> std::result::Result<TopKCount, String> {
    parse_named("top-k count", s)
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The folder of a decomposition (written by `l3d decompose`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Go on (with a warning) when the model's weights, its architecture or the inputs
    /// changed since the run.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InterveneArgs {
    /// The folder of a decomposition (written by `l3d decompose`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Subnetworks to move along (comma-separated indices).
    #[arg(long, value_delimiter = ',', required = true)]
    pub subnetworks: Vec<usize>,
    /// Largest |delta| of the sweep (default: half the norm of the decomposed parameters; at
    /// most 100 times that norm).
    #[arg(long)]
    pub delta: Option<f64>,
    /// Number of delta values from -delta to delta.
    #[arg(long, default_value_t = 9)]
    pub steps: usize,
    /// Samples to show.
    #[arg(long, default_value_t = 60)]
    pub samples: usize,
    /// Go on (with a warning) when the model's weights, its architecture or the inputs
    /// changed since the run.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Scale every epoch count by this factor (e.g. 0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Output folder.
    #[arg(long, default_value = "out/reproduce")]
    pub out: PathBuf,
    /// The first toy seed and the first decomposition seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Toy models trained per toy (seeds --seed, --seed + 1, ..; for tmcs and high-rank each
    /// is another draw of A).
    #[arg(long, default_value_t = 3)]
    pub toy_seeds: usize,
    /// Decompositions per trained toy (seeds --seed, --seed + 1, ..). Every row of the table
    /// is the median and range over all toy seeds x decomposition seeds.
    #[arg(long, default_value_t = 5)]
    pub seeds: usize,
    /// The toys to reproduce (comma-separated; default all five).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub toys: Vec<ToyKind>,
    /// Divergence of the main decompositions: the variant of the authors' toy scripts
    /// (mse-authors, behind the paper's toy numbers) or the paper's definition (mse). The
    /// table also gives the reconstruction error under the other one.
    #[arg(long, value_parser = parse_divergence, default_value = "mse-authors")]
    pub divergence: Divergence,
    /// Beyond the paper: also train the two handwritten-digits networks from --toy-seeds
    /// seeds, decompose each from --seeds seeds at the settings of `l3d decompose
    /// --model-dir` (epochs scaled by --scale), and count the classes with a subnetwork of
    /// their own.
    #[arg(long)]
    pub digits: bool,
    /// Beyond the paper: also train the induction transformer from --toy-seeds seeds
    /// (epochs scaled by --scale), decompose each from --seeds seeds over the attention
    /// weights, over layer 1 alone and over layer 0's query and key alone at the settings of
    /// `l3d decompose --model-dir` (epochs scaled alike), and measure the layer-0, induction
    /// and previous-token subnetworks by intervention.
    #[arg(long)]
    pub induction: bool,
}
