//! `l3d intervene`: move the parameters along chosen subnetworks and print the output changes.

use super::reopen;
use crate::args::InterveneArgs;
use crate::error::{Result, RunError};
use crate::files::write_json;
use crate::folder::OutputFolder;
use crate::ui::Ui;
use nets::Model;

/// The largest `|delta|`, in norms of the decomposed parameters: far beyond it the outputs
/// say nothing about the subnetwork (and overflow to infinity long before `1e30`).
const MAX_DELTA_NORMS: f64 = 100.0;

pub(super) fn intervene(a: InterveneArgs, ui: &Ui) -> Result<()> {
    let _folder = OutputFolder::acquire(&a.dir, ui)?;
    let super::Reopened {
        loaded,
        data,
        saved,
        ..
    } = reopen(&a.dir, a.force, ui)?;
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
    if !(delta.is_finite() && delta.abs() <= MAX_DELTA_NORMS * norm) {
        return Err(RunError::Setting(format!(
            "--delta {delta}: must be a finite number of at most {MAX_DELTA_NORMS} times the norm of the decomposed parameters ({norm:.4}), so at most {:.4} (the default is half the norm)",
            MAX_DELTA_NORMS * norm
        )));
    }
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
