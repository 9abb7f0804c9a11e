//! The ground-truth suite as the program runs it (`l3d suite`): every model of
//! [`toys::suite`] trained, saved in the layout a user hands to `l3d decompose`, decomposed
//! from its files with the settings a user gets, and what was recovered tabulated.

use crate::args::SuiteArgs;
use crate::error::{Result, RunError};
use crate::files::{create_dir, write_json};
use crate::ui::Ui;
use l3d::L3dConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toys::analysis::analyse;
use toys::circuits::{median, AnalysisConfig};
use toys::suite::{train_member, Member, Recovery, SuiteModel};

/// `l3d suite`: runs the suite, writes `suite.md` and `suite.json`, and prints the table and
/// the verdicts.
pub fn run(a: &SuiteArgs, ui: &Ui) -> Result<()> {
    if a.model_seeds == 0 || a.seeds == 0 || !(a.scale > 0.0 && a.scale <= 1.0) {
        return Err(RunError::Setting(format!(
            "--model-seeds ({}) and --seeds ({}) must be at least 1, --scale ({}) in (0, 1]",
            a.model_seeds, a.seeds, a.scale
        )));
    }
    let start = std::time::Instant::now();
    let settings = SuiteSettings {
        model_seeds: a.model_seeds,
        seeds: a.seeds,
        scale: a.scale,
        decompose: a.decompose,
        out: a.out.clone(),
    };
    let runs = run_suite(&settings, ui)?;
    let table = suite_table(&runs);
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

/// Where a member is saved, in the layout a user hands to `l3d decompose`.
pub struct SavedMember {
    pub arch: PathBuf,
    pub weights: PathBuf,
    pub inputs: PathBuf,
}

/// Saves a member into `dir`: `model.toml`, `model.safetensors`, `inputs.npy` (1,000 inputs
/// drawn from `seed + 1`, as a user would pass their data) and `truth.json` (its target,
/// input distribution and check).
pub fn save_member(member: &Member, dir: &Path) -> Result<SavedMember> {
    create_dir(dir)?;
    let saved = SavedMember {
        arch: dir.join("model.toml"),
        weights: dir.join("model.safetensors"),
        inputs: dir.join("inputs.npy"),
    };
    nets::io::save_model(&member.model, &saved.arch, &saved.weights)?;
    nets::io::write_npy(&saved.inputs, &member.inputs(1000, member.seed + 1))?;
    let truth = serde_json::json!({
        "model": member.kind,
        "seed": member.seed,
        "target": member.target,
        "data": member.data,
        "check": member.check,
        "represented": member.represented(),
    });
    write_json(&dir.join("truth.json"), &truth)?;
    Ok(saved)
}

/// The settings of a suite run.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// Training seeds per model (0, 1, ..).
    pub model_seeds: usize,
    /// Decomposition seeds per trained model (0, 1, ..).
    pub seeds: usize,
    /// Scale of the decomposition epochs (1: the paper's 1,000).
    pub scale: f64,
    /// The tensor set decomposed; `None`: the defaults of `l3d decompose` for users' models.
    pub decompose: Option<nets::TensorSet>,
    pub out: PathBuf,
}

/// One decomposition of the suite and what it recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteRun {
    pub model: SuiteModel,
    pub model_seed: u64,
    pub seed: u64,
    pub decompose: Vec<String>,
    pub recovery: Recovery,
    /// The verdict the report gave (for the run that wrote its folder).
    pub verdict: Option<String>,
}

/// Trains every model of the suite, saves it in the user layout under
/// `out/<model>/seed-<s>/`, and decomposes it from the saved files with the settings a user
/// gets from `l3d decompose --arch --weights --inputs --n-v <features>` (or the set of tensors
/// asked for); the first decomposition of each model writes the full output folder
/// (`.../decomposition/`). Runs in parallel; each run is deterministic.
pub fn run_suite(settings: &SuiteSettings, ui: &Ui) -> Result<Vec<SuiteRun>> {
    use rayon::prelude::*;
    let wanted: Vec<(SuiteModel, u64)> = SuiteModel::ALL
        .iter()
        .flat_map(|&k| (0..settings.model_seeds as u64).map(move |s| (k, s)))
        .collect();
    let bar = ui.bar(wanted.len() as u64, "train suite");
    let members = wanted
        .par_iter()
        .map(|&(kind, seed)| {
            let member = train_member(kind, seed)?;
            let dir = settings.out.join(kind.name()).join(format!("seed-{seed}"));
            let saved = save_member(&member, &dir)?;
            bar.inc(1);
            Ok((member, saved, dir))
        })
        .collect::<Result<Vec<_>>>()?;
    bar.finish_and_clear();
    let jobs: Vec<(usize, u64)> = (0..members.len())
        .flat_map(|m| (0..settings.seeds as u64).map(move |s| (m, s)))
        .collect();
    let bar = ui.bar(jobs.len() as u64, "decompose");
    let runs = jobs
        .par_iter()
        .map(|&(m, seed)| {
            let (member, saved, dir) = &members[m];
            let run = decompose_saved(member, saved, dir, seed, settings)?;
            bar.inc(1);
            Ok(run)
        })
        .collect::<Result<Vec<_>>>()?;
    bar.finish_and_clear();
    Ok(runs)
}

/// One decomposition of a saved member, from its files, as `l3d decompose` would make it.
fn decompose_saved(
    member: &Member,
    saved: &SavedMember,
    dir: &Path,
    seed: u64,
    settings: &SuiteSettings,
) -> Result<SuiteRun> {
    use crate::config::{DataSource, ModelSource, RunConfig};
    let arch = nets::io::read_architecture(&saved.arch)?;
    let base = crate::reproduce::scaled(crate::config::defaults_for(&arch), settings.scale);
    let config = L3dConfig {
        n_subnetworks: member.kind.n_features(),
        decompose: settings
            .decompose
            .map_or(base.decompose.clone(), |set| arch.tensors(set)),
        seed,
        ..base
    };
    let analysis_settings = AnalysisConfig::default();
    let (analysis, verdict) = if seed == 0 {
        let run = RunConfig {
            model: ModelSource::Files {
                arch: saved.arch.clone(),
                weights: saved.weights.clone(),
            },
            data: DataSource::File {
                path: saved.inputs.clone(),
            },
            l3d: config.clone(),
            analysis: analysis_settings.clone(),
            labels: None,
            fingerprints: None,
        };
        let quiet = crate::ui::Ui::new(crate::ui::Mode::Quiet);
        let outcome = crate::run::decompose(
            &run,
            &dir.join("decomposition"),
            crate::run::Options::replacing(),
            &quiet,
        )?;
        let a = analyse(
            member.truth(),
            &outcome.trained.decomposition,
            &config,
            &outcome.trained.history,
            &analysis_settings,
        )?;
        (a, Some(outcome.reports.generic.verdict))
    } else {
        let model = nets::io::load_model(&saved.arch, &saved.weights)?;
        let x = nets::io::load_inputs(&saved.inputs)?;
        let mut trainer = l3d::Trainer::new(&model, config.clone(), &x)?;
        trainer.train(|_| true)?;
        let a = analyse(
            member.truth(),
            trainer.decomposition(),
            &config,
            trainer.history(),
            &analysis_settings,
        )?;
        (a, None)
    };
    Ok(SuiteRun {
        model: member.kind,
        model_seed: member.seed,
        seed,
        decompose: config.decompose.clone(),
        recovery: Recovery::of(member, &analysis),
        verdict,
    })
}

/// The suite's table: per model, the represented features and the share of them recovered by
/// structure and by intervention, and the held-out error, each as median [min, max] over the
/// runs; a model meets the target when both medians are at least 0.8.
pub fn suite_table(runs: &[SuiteRun]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| model | tensors decomposed | represented features | recovered by structure | recovered by intervention | reconstruction error | target (>= 80% both) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for kind in SuiteModel::ALL {
        let mine: Vec<&SuiteRun> = runs.iter().filter(|r| r.model == kind).collect();
        let Some(first) = mine.first() else {
            continue;
        };
        let share = |f: &dyn Fn(&Recovery) -> usize| -> Vec<f64> {
            mine.iter()
                .map(|r| f(&r.recovery) as f64 / r.recovery.represented.max(1) as f64)
                .collect()
        };
        let structure = share(&|r| r.by_structure);
        let intervention = share(&|r| r.by_intervention);
        let represented: Vec<f64> = mine.iter().map(|r| r.recovery.represented as f64).collect();
        let errors: Vec<f64> = mine.iter().map(|r| r.recovery.error).collect();
        let met = median(&structure).is_some_and(|m| m >= 0.8)
            && median(&intervention).is_some_and(|m| m >= 0.8);
        let _ = writeln!(
            s,
            "| {kind} | {} | {} of {} | {} | {} | {} | {} |",
            first.decompose.join(", "),
            range(&represented, 0),
            kind.n_features(),
            range(&structure, 2),
            range(&intervention, 2),
            range(&errors, 3),
            if met { "yes" } else { "NO" }
        );
    }
    s
}

/// `median [min, max]` with `digits` decimals.
fn range(values: &[f64], digits: usize) -> String {
    let m = median(values).unwrap_or(f64::NAN);
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{m:.digits$} [{lo:.digits$}, {hi:.digits$}]")
}
