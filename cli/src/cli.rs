//! The `l3d` program: argument parsing and the subcommands.

use crate::error::{Result, RunError};
use crate::files::{read_json, write_json};
use crate::report::{generic_table, toy_table};
use crate::run::{self, DataSource, ModelSource, RunConfig};
use crate::ui::{Mode, Ui};
use clap::{Args, Parser, Subcommand};
use l3d::{Divergence, Model, Reference, TopKCount, WarmStart};
use nets::TensorSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use toys::circuits::AnalysisConfig;
use toys::data::{DataSpec, Sparse};
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
    /// Train a toy model and save it (model.toml, model.safetensors, toy.json).
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

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Which toy model.
    #[arg(long, value_enum)]
    pub model: ToyKind,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most epochs (training stops earlier once converged).
    #[arg(long, default_value_t = 1000)]
    pub epochs: usize,
    /// Output folder (default out/<model>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecomposeArgs {
    /// A toy model to train and decompose.
    #[arg(long, value_enum, conflicts_with_all = ["model_dir", "arch"])]
    pub toy: Option<ToyKind>,
    /// A toy saved by `l3d train`.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Your model's architecture file (TOML or JSON; see examples/models/).
    #[arg(long, requires = "weights")]
    pub arch: Option<PathBuf>,
    /// Your model's weights (safetensors, PyTorch state_dict names).
    #[arg(long, requires = "arch")]
    pub weights: Option<PathBuf>,
    /// Inputs to decompose on (.npy or safetensors, [N, d_in]).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Inputs from a sparse generator instead: number of features.
    #[arg(long, conflicts_with = "inputs")]
    pub sparse_features: Option<usize>,
    /// A run config (e.g. the config.json of an earlier run); flags given override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue an interrupted run from its checkpoint.json.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Output folder (default out/<model>).
    #[arg(long)]
    pub out: Option<PathBuf>,
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
    /// Parameter tensors to decompose: comma-separated names, or a set: all (every tensor,
    /// biases included: the paper's choice, the default for toys), weights (every weight
    /// matrix), weights-before-readout (every weight matrix but the last layer's; the default
    /// for your own models). The rest stay frozen at W0.
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

fn parse_divergence(s: &str) -> std::result::Result<Divergence, String> {
    match s {
        "mse" => Ok(Divergence::Mse),
        "mse-authors" => Ok(Divergence::MseAuthors),
        "kl" => Ok(Divergence::Kl),
        _ => Err(format!("unknown divergence '{s}' (mse, mse-authors, kl)")),
    }
}

fn parse_reference(s: &str) -> std::result::Result<Reference, String> {
    match s {
        "random" => Ok(Reference::RandomSample),
        "random-with-self" => Ok(Reference::RandomWithSelf),
        "mean" => Ok(Reference::BatchMean),
        "zero" => Ok(Reference::Zero),
        _ => Err(format!(
            "unknown reference '{s}' (random, random-with-self, mean, zero)"
        )),
    }
}

fn parse_warm_start(s: &str) -> std::result::Result<WarmStart, String> {
    match s {
        "linear" => Ok(WarmStart::Linear),
        "hold" => Ok(WarmStart::Hold),
        _ => Err(format!("unknown warm-start schedule '{s}' (linear, hold)")),
    }
}

fn parse_top_k_count(s: &str) -> std::result::Result<TopKCount, String> {
    match s {
        "ceil" => Ok(TopKCount::Ceil),
        "floor-plus-one" => Ok(TopKCount::FloorPlusOne),
        _ => Err(format!("unknown top-k count '{s}' (ceil, floor-plus-one)")),
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The folder of a decomposition (written by `l3d decompose`).
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InterveneArgs {
    /// The folder of a decomposition (written by `l3d decompose`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Subnetworks to move along (comma-separated indices).
    #[arg(long, value_delimiter = ',', required = true)]
    pub subnetworks: Vec<usize>,
    /// Largest |delta| of the sweep (default: half the norm of the decomposed parameters).
    #[arg(long)]
    pub delta: Option<f64>,
    /// Number of delta values from -delta to delta.
    #[arg(long, default_value_t = 9)]
    pub steps: usize,
    /// Samples to show.
    #[arg(long, default_value_t = 60)]
    pub samples: usize,
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
}

/// Parses the arguments, runs, and maps errors to a message and exit code 1 (130 when
/// interrupted). Usage errors exit with clap's code 2.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mode = if cli.json {
        Mode::Json
    } else if cli.quiet {
        Mode::Quiet
    } else {
        Mode::Human
    };
    let ui = Ui::new(mode);
    ui.catch_interrupts();
    match dispatch(cli.command, &ui) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (RunError::Interrupted { .. } | RunError::Stopped)) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Option<Command>, ui: &Ui) -> Result<()> {
    match command {
        None => default_run(ui),
        Some(Command::Train(a)) => train(a, ui),
        Some(Command::Decompose(a)) => decompose(*a, ui),
        Some(Command::Report(a)) => report(a, ui),
        Some(Command::Intervene(a)) => intervene(a, ui),
        Some(Command::Reproduce(a)) => crate::reproduce::run(&a, ui),
        Some(Command::Suite(a)) => suite(a, ui),
    }
}

fn suite(a: SuiteArgs, ui: &Ui) -> Result<()> {
    if a.model_seeds == 0 || a.seeds == 0 || !(a.scale > 0.0 && a.scale <= 1.0) {
        return Err(RunError::Setting(format!(
            "--model-seeds ({}) and --seeds ({}) must be at least 1, --scale ({}) in (0, 1]",
            a.model_seeds, a.seeds, a.scale
        )));
    }
    let start = std::time::Instant::now();
    let settings = crate::suite::SuiteSettings {
        model_seeds: a.model_seeds,
        seeds: a.seeds,
        scale: a.scale,
        decompose: a.decompose,
        out: a.out.clone(),
    };
    let runs = crate::suite::run_suite(&settings, ui)?;
    let table = crate::suite::suite_table(&runs);
    let text = format!(
        "Ground-truth suite: {} trained models x {} decompositions each, epoch scale {}, {:.0} s; median [min, max] over the runs of a model; recovery counts the features the trained model represents.\n\n{table}",
        a.model_seeds,
        a.seeds,
        a.scale,
        start.elapsed().as_secs_f64()
    );
    write_json(&a.out.join("suite.json"), &runs)?;
    nets::io::write_atomic(&a.out.join("suite.md"), text.as_bytes())?;
    let verdicts: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            r.verdict
                .as_ref()
                .map(|v| format!("{} seed {}: {v}", r.model, r.model_seed))
        })
        .collect();
    ui.result(
        &format!(
            "{text}\nverdicts of the first decomposition of each model:\n{}\nwritten to {}: suite.md, suite.json, and one folder per model and seed",
            verdicts.join("\n"),
            a.out.display()
        ),
        serde_json::to_value(&runs).unwrap_or_default(),
    );
    Ok(())
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
    };
    finish_decompose(&run, Path::new("out/default"), None, ui)
}

fn train(a: TrainArgs, ui: &Ui) -> Result<()> {
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("out/{}", a.model)));
    let toy = run::train_toy_ui(a.model, a.seed, a.epochs, ui)?;
    run::save_toy(&toy, &out)?;
    let check = &toy.report.check;
    let text = format!(
        "{}: saved to {}\n{}\nper-feature unexplained fraction: {:?}\nfeature embedding norms: {:?}",
        a.model,
        out.display(),
        toy.report.choice,
        check.unexplained.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        check.embedding_norms.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>()
    );
    ui.result(&text, serde_json::to_value(&toy.report).unwrap_or_default());
    Ok(())
}

/// The run config of `decompose`: the config file if given, else built from the flags; flags
/// override.
fn resolve(a: &DecomposeArgs) -> Result<(RunConfig, PathBuf)> {
    let s = &a.settings;
    let mut run = match (&a.config, &a.resume) {
        (Some(path), _) => read_json::<RunConfig>(path)?,
        (None, Some(ck)) => {
            let dir = ck.parent().unwrap_or(Path::new("."));
            read_json::<RunConfig>(&dir.join("config.json"))?
        }
        (None, None) => {
            let (model, l3d) = if let Some(kind) = a.toy {
                (
                    ModelSource::Toy {
                        kind,
                        seed: s.seed.unwrap_or(0),
                        train_epochs: 1000,
                    },
                    kind.paper_config(0),
                )
            } else if let Some(dir) = &a.model_dir {
                let record: run::ToyRecord = read_json(&dir.join("toy.json"))?;
                (
                    ModelSource::ToyDir { dir: dir.clone() },
                    record.kind.paper_config(0),
                )
            } else if let (Some(arch), Some(weights)) = (&a.arch, &a.weights) {
                let defaults = run::defaults_for(&nets::io::read_architecture(arch)?);
                (
                    ModelSource::Files {
                        arch: arch.clone(),
                        weights: weights.clone(),
                    },
                    defaults,
                )
            } else {
                return Err(RunError::NoModel);
            };
            let data = match (&a.inputs, a.sparse_features) {
                (Some(path), _) => DataSource::File { path: path.clone() },
                (None, Some(n)) => DataSource::Generator {
                    spec: DataSpec::Sparse(Sparse::new(n)),
                    samples: 1000,
                    seed: 1,
                },
                (None, None) => DataSource::Fresh {
                    samples: 1000,
                    seed: 1,
                },
            };
            RunConfig {
                model,
                data,
                l3d,
                analysis: AnalysisConfig::default(),
            }
        }
    };
    apply_settings(&mut run, s);
    if let Some(set) = named_set(&run.l3d.decompose) {
        run.l3d.decompose = run::architecture_of(&run.model)?.tensors(set);
    }
    let out = match (&a.out, &a.resume) {
        (Some(o), _) => o.clone(),
        (None, Some(ck)) => ck.parent().unwrap_or(Path::new(".")).to_path_buf(),
        (None, None) => PathBuf::from(format!("out/{}", run_name(&run.model))),
    };
    Ok((run, out))
}

/// The set a `--decompose` list names, if it is a single set name.
fn named_set(list: &[String]) -> Option<TensorSet> {
    match list {
        [one] => TensorSet::parse(one),
        _ => None,
    }
}

fn run_name(model: &ModelSource) -> String {
    match model {
        ModelSource::Toy { kind, .. } => kind.to_string(),
        ModelSource::ToyDir { dir } | ModelSource::Files { arch: dir, .. } => dir
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
    }
}

fn apply_settings(run: &mut RunConfig, s: &Settings) {
    let c = &mut run.l3d;
    set(&mut c.n_subnetworks, &s.n_v);
    set(&mut c.rank, &s.rank);
    set(&mut c.top_k, &s.top_k);
    set(&mut c.epochs, &s.epochs);
    set(&mut c.batch_size, &s.batch);
    set(&mut c.lr, &s.lr);
    set(&mut c.lr_gamma, &s.lr_gamma);
    set(&mut c.lr_step, &s.lr_step);
    set(&mut c.warm_start_epochs, &s.warm_start);
    set(&mut c.warm_start, &s.warm_start_schedule);
    set(&mut c.top_k_count, &s.top_k_count);
    set(&mut c.seed, &s.seed);
    set(&mut c.divergence, &s.divergence);
    set(&mut c.reference, &s.reference);
    set(&mut c.decompose, &s.decompose);
    if let Some(n) = s.samples {
        match &mut run.data {
            DataSource::Fresh { samples, .. } | DataSource::Generator { samples, .. } => {
                *samples = n
            }
            DataSource::File { .. } => {}
        }
    }
    if let (Some(e), ModelSource::Toy { train_epochs, .. }) = (s.train_epochs, &mut run.model) {
        *train_epochs = e;
    }
}

/// Overrides `field` with a flag's value when the flag was given.
fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
    if let Some(v) = flag {
        *field = v.clone();
    }
}

fn decompose(a: DecomposeArgs, ui: &Ui) -> Result<()> {
    let (run, out) = resolve(&a)?;
    finish_decompose(&run, &out, a.resume.as_deref(), ui)
}

fn finish_decompose(run: &RunConfig, out: &Path, resume: Option<&Path>, ui: &Ui) -> Result<()> {
    let outcome = run::decompose(run, out, resume, ui)?;
    let table = match (&outcome.analysis, &outcome.loaded.toy) {
        (Some(a), Some(toy)) => {
            toy_table(toy.kind.name(), a, toy.kind.paper().reconstruction_error)
        }
        _ => generic_table(&outcome.generic),
    };
    let text = format!(
        "{table}\nwritten to {}: config.json (repeat with `l3d decompose --config {}/config.json`), decomposition, subnetworks.safetensors, report.html, figures/",
        out.display(),
        out.display()
    );
    let value =
        serde_json::json!({ "out": out, "report": outcome.generic, "analysis": outcome.analysis });
    ui.result(&text, value);
    Ok(())
}

/// Reads a finished decomposition folder back: its config, model, data and decomposition.
fn reopen(
    dir: &Path,
    ui: &Ui,
) -> Result<(
    RunConfig,
    run::LoadedModel,
    tensor::Tensor<f32>,
    l3d::persist::Saved<f32>,
)> {
    let run: RunConfig = read_json(&dir.join("config.json"))?;
    let source = match &run.model {
        ModelSource::Toy { .. } => ModelSource::ToyDir {
            dir: dir.join("model"),
        },
        other => other.clone(),
    };
    let loaded = run::load_model_source(&source, ui)?;
    let data = run::load_data(&run.data, &loaded)?;
    let saved = l3d::persist::load_decomposition::<f32>(&dir.join("decomposition.json"))?;
    l3d::persist::check_against_model(&saved.decomposition, &loaded.model)?;
    Ok((run, loaded, data, saved))
}

fn report(a: ReportArgs, ui: &Ui) -> Result<()> {
    let (run, loaded, data, saved) = reopen(&a.dir, ui)?;
    let d = &saved.decomposition;
    let history = &saved.meta.history;
    let generic =
        crate::report::generic_report(&loaded.model, d, &run.l3d, &data, history, &run.analysis)?;
    let analysis = match &loaded.toy {
        Some(toy) => Some(toys::analysis::analyse(
            toy.into(),
            d,
            &run.l3d,
            history,
            &run.analysis,
        )?),
        None => None,
    };
    crate::report::write_figures(
        &a.dir,
        &loaded,
        d,
        &run.l3d,
        &data,
        analysis.as_ref(),
        &generic,
        &run.analysis,
    )?;
    let table = match (&analysis, &loaded.toy) {
        (Some(an), Some(toy)) => {
            toy_table(toy.kind.name(), an, toy.kind.paper().reconstruction_error)
        }
        _ => generic_table(&generic),
    };
    ui.result(
        &format!(
            "{table}\nfigures and report.html rewritten in {}",
            a.dir.display()
        ),
        serde_json::json!({ "report": generic, "analysis": analysis }),
    );
    Ok(())
}

fn intervene(a: InterveneArgs, ui: &Ui) -> Result<()> {
    let (_, loaded, data, saved) = reopen(&a.dir, ui)?;
    let d = &saved.decomposition;
    if let Some(&k) = a.subnetworks.iter().find(|&&k| k >= d.n_v) {
        return Err(RunError::NoSuchSubnetwork {
            index: k,
            count: d.n_v,
        });
    }
    if a.steps < 2 {
        return Err(RunError::Setting("--steps must be at least 2".into()));
    }
    let model = &loaded.model;
    let norm = toys::circuits::decomposed_norm(model, d);
    let delta = a.delta.unwrap_or(0.5 * norm);
    let deltas: Vec<f64> = (0..a.steps)
        .map(|i| -delta + 2.0 * delta * i as f64 / (a.steps - 1) as f64)
        .collect();
    let x = crate::report::first_rows(&data, a.samples.max(1));
    let n = x.shape()[0];
    let mut text = String::new();
    let mut results = Vec::new();
    for &k in &a.subnetworks {
        let s = l3d::intervene::sweep(model, d, k, &x, &deltas)?;
        text.push_str(&format!(
            "subnetwork {k}: mean |output change| over {n} samples\n"
        ));
        for (delta, row) in s.deltas.iter().zip(&s.change) {
            let mean = row.iter().sum::<f64>() / row.len() as f64;
            let max = row.iter().copied().fold(0.0, f64::max);
            text.push_str(&format!(
                "  delta {delta:>8.3}: mean {mean:.4}  max {max:.4}\n"
            ));
        }
        results.push(s);
    }
    if a.subnetworks.len() > 1 {
        let moves: Vec<(usize, f64)> = a.subnetworks.iter().map(|&k| (k, delta)).collect();
        let y = l3d::intervene::intervene(model, d, &x, &moves)?;
        let base = model.evaluate_w0(&x)?;
        let change = y.sub(&base).norm() as f64 / (n as f64).sqrt();
        text.push_str(&format!(
            "all of {:?} at delta {delta:.3} together: rms output change {change:.4}\n",
            a.subnetworks
        ));
    }
    let path = a.dir.join("intervention.json");
    write_json(&path, &results)?;
    text.push_str(&format!("sweeps written to {}", path.display()));
    ui.result(&text, serde_json::to_value(&results).unwrap_or_default());
    Ok(())
}
