//! The per-class report of a decomposition whose inputs have class labels
//! ([`toys::classes`]): the labels file, the measures on the run's data, the table printed in
//! the terminal and on the page, and the figures (subnetworks x classes heatmaps, and the
//! convolution kernels of every subnetwork drawn as small images).

use crate::config::RunConfig;
use crate::error::{Result, RunError};
use crate::figures::{self, ImpactMatrix, KernelGrid, Matrix, ParamTensor, ReportTable};
use crate::report::{text_table, Decomposed};
use l3d::Model;
use std::path::Path;
use toys::classes::{class_report, ClassReport, OWN_SHARE};

/// The class labels of a run's data rows, if the run has a labels file: read and checked
/// against the number of rows (one whole number `>= 0` per row).
pub fn load_labels(run: &RunConfig, rows: usize) -> Result<Option<Vec<usize>>> {
    run.labels
        .as_deref()
        .map(|path| read_labels(path, rows))
        .transpose()
}

/// Reads class labels from a `.npy` file (int64, int32 or floats holding whole numbers), one
/// per input row. Errors name the file and the first bad entry.
pub fn read_labels(path: &Path, rows: usize) -> Result<Vec<usize>> {
    let t = nets::io::read_npy::<f64>(path)?;
    let bad = |msg: String| RunError::Labels {
        path: path.to_path_buf(),
        msg,
    };
    let column = matches!(t.shape(), [n] | [n, 1] if *n == rows);
    if !column {
        return Err(bad(format!(
            "expected one label per input row, shape [{rows}]; found shape {:?}",
            t.shape()
        )));
    }
    t.data()
        .iter()
        .enumerate()
        .map(|(i, &v)| match v >= 0.0 && v.fract() == 0.0 && v < 1e6 {
            true => Ok(v as usize),
            false => Err(bad(format!(
                "label {i} is {v}; labels are class indices 0, 1, .. (below a million)"
            ))),
        })
        .collect()
}

/// The per-class measures on all of the run's data, with `C` the largest label plus one.
pub fn measure(run: &Decomposed, labels: &[usize], p_act: &[f64]) -> l3d::Result<ClassReport> {
    let n_classes = labels.iter().max().map_or(1, |&m| m + 1);
    class_report(
        run.model,
        run.d,
        run.config,
        (run.data, labels),
        n_classes,
        p_act,
        run.settings,
    )
}

/// The logits with the largest shares of a subnetwork's output change, as `3 (0.62)`.
fn top_logits(shares: &[f64], count: usize) -> String {
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]));
    order
        .iter()
        .take(count)
        .map(|&k| format!("{k} ({:.2})", shares[k]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row per subnetwork: activity, its class, the three selectivities, the logits it moves
/// most, whether its class counts as having a subnetwork of its own.
pub fn rows(c: &ClassReport) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "subnetwork",
        "P_act",
        "class",
        "impact sel.",
        "intervention sel.",
        "logit sel.",
        "logits moved most",
        "own",
    ]
    .map(String::from)
    .to_vec();
    let rows = c
        .subnetworks
        .iter()
        .map(|s| {
            vec![
                s.index.to_string(),
                format!("{:.3}", s.p_act),
                if s.live {
                    s.class.to_string()
                } else {
                    "dead".into()
                },
                format!("{:.2}", s.impact_selectivity),
                format!("{:.2}", s.intervention_selectivity),
                format!("{:.2}", s.logit_selectivity),
                top_logits(&s.logit_shares, 2),
                if s.own { "yes".into() } else { String::new() },
            ]
        })
        .collect();
    (header, rows)
}

/// The line under the table: how many classes have a subnetwork of their own.
pub fn summary(c: &ClassReport) -> String {
    let own = c.own_subnetworks();
    let listed: Vec<String> = own
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(class, v)| {
            let names: Vec<String> = v.iter().map(usize::to_string).collect();
            format!("{class}: {}", names.join("+"))
        })
        .collect();
    format!(
        "classes with a subnetwork of their own: {}/{} [{}] (a live subnetwork whose top class by impact gets >= {:.0}% of the output change from moving along it; chance is {:.2})",
        c.classes_with_own.len(),
        c.n_classes,
        listed.join(", "),
        100.0 * OWN_SHARE,
        1.0 / c.n_classes.max(1) as f64
    )
}

/// A one-line judgement of a run on labelled samples: a warning when moving along the live
/// subnetworks changes the predictions of every class alike (a median intervention
/// selectivity below twice chance), else how many classes have a subnetwork of their own.
pub fn verdict(c: &ClassReport) -> String {
    let live: Vec<f64> = c
        .subnetworks
        .iter()
        .filter(|s| s.live)
        .map(|s| s.intervention_selectivity)
        .collect();
    let chance = 1.0 / c.n_classes.max(1) as f64;
    let Some(median) = toys::circuits::median(&live) else {
        return "warning: no subnetwork is live (none is ever in the top k)".into();
    };
    let what = format!(
        "moving along a live subnetwork puts a median {median:.2} of the change of the predictions on the samples of its class (chance is {chance:.2}); {}/{} classes have a subnetwork of their own",
        c.classes_with_own.len(),
        c.n_classes
    );
    match median < 2.0 * chance {
        true => format!("warning: {what}"),
        false => format!("ok: {what}"),
    }
}

/// The table and its summary line, as text.
pub fn table(c: &ClassReport) -> String {
    format!("{}{}\n", text_table(&rows(c)), summary(c))
}

/// The table for the report page.
pub fn report_table(c: &ClassReport) -> ReportTable {
    let (header, rows) = rows(c);
    ReportTable {
        heading: "Subnetworks by class".into(),
        header,
        rows,
    }
}

/// A subnetworks x classes heatmap of `values` (`[n_v][C]` shares).
fn class_matrix(title: &str, values: &[Vec<f64>], n_classes: usize) -> Result<String> {
    let rows: Vec<Vec<f32>> = values
        .iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect();
    Ok(figures::impact_matrix(&ImpactMatrix {
        title: title.into(),
        row_axis: "subnetwork".into(),
        col_axis: "class".into(),
        row_labels: (0..rows.len()).map(|v| v.to_string()).collect(),
        col_labels: (0..n_classes).map(|c| c.to_string()).collect(),
        values: Matrix::from_rows(title, &rows)?,
        annotate: n_classes <= 15,
    })?)
}

/// The per-class figures as `(file, caption, svg)`: the impact and intervention shares by
/// class, and for every decomposed convolution weight, its kernels in the model and in each
/// subnetwork.
pub fn figures(run: &Decomposed, c: &ClassReport) -> Result<Vec<(String, String, String)>> {
    let change: Vec<Vec<f64>> = c
        .subnetworks
        .iter()
        .map(|s| s.change_shares.clone())
        .collect();
    let mut figs = vec![
        (
            "classes_impact.svg".to_string(),
            "Share of each subnetwork's impact on the samples of each class".to_string(),
            class_matrix(
                "Impact share by class",
                &c.impact_matrix(),
                c.n_classes,
            )?,
        ),
        (
            "classes_intervention.svg".to_string(),
            format!(
                "Share of the output change from moving along each subnetwork (delta {:.3}) on the samples of each class",
                c.delta
            ),
            class_matrix("Output change share by class", &change, c.n_classes)?,
        ),
    ];
    let params = run.model.params();
    for (t, name) in run.d.names.iter().enumerate() {
        let shape = &run.d.decoder[t].shape;
        if shape.len() != 4 {
            continue;
        }
        let w0 = params[run.d.param_index[t]];
        let mut rows = vec![(
            "model".to_string(),
            ParamTensor::new(name, shape, w0.data().to_vec())?,
        )];
        for s in &c.subnetworks {
            let v = run.d.decoder[t].dense_subnetwork(s.index);
            let label = match s.live {
                true => format!("subnetwork {} (class {})", s.index, s.class),
                false => format!("subnetwork {} (dead)", s.index),
            };
            rows.push((label, ParamTensor::new(name, shape, v.data().to_vec())?));
        }
        let file = format!("kernels_{}.svg", name.replace(['.', '/'], "_"));
        let svg = figures::kernel_grid(&KernelGrid {
            title: format!("{name}: the model's kernels and each subnetwork's"),
            legend: "one image per output x input channel".into(),
            rows,
        })?;
        figs.push((
            file,
            format!("The kernels of {name}: the model's, then each subnetwork's"),
            svg,
        ));
    }
    if let Some(fig) = input_patterns(run, c)? {
        figs.push(fig);
    }
    Ok(figs)
}

/// For a first linear layer on rows of `side^2` inputs (the digits MLP's 64 pixels), every
/// subnetwork's input-layer pattern drawn as a `side x side` image: the input factor of each
/// rank-one term of its decoder (`V_out[v]` of that tensor is `sum_r a_r b_r^T`, and `b_r` is
/// what the term reads from the inputs, up to sign). None for other models.
fn input_patterns(run: &Decomposed, c: &ClassReport) -> Result<Option<(String, String, String)>> {
    let Some(name) = run.model.architecture().input_weight() else {
        return Ok(None);
    };
    let Some(t) = run.d.names.iter().position(|n| *n == name) else {
        return Ok(None);
    };
    let cp = &run.d.decoder[t];
    let inputs = cp.shape.get(1).copied().unwrap_or(0);
    let side = (inputs as f64).sqrt().round() as usize;
    if cp.shape.len() != 2 || side < 2 || side * side != inputs {
        return Ok(None);
    }
    let inputs_factor = &cp.factors[1];
    let mut rows = Vec::new();
    for s in &c.subnetworks {
        let values: Vec<f32> = (0..cp.rank)
            .flat_map(|r| {
                let col = s.index * cp.rank + r;
                (0..inputs).map(move |j| inputs_factor.row(j)[col])
            })
            .collect();
        let label = match s.live {
            true => format!("subnetwork {} (class {})", s.index, s.class),
            false => format!("subnetwork {} (dead)", s.index),
        };
        let shape = [cp.rank, 1, side, side];
        rows.push((label, ParamTensor::new(&name, &shape, values)?));
    }
    let svg = figures::kernel_grid(&KernelGrid {
        title: format!("{name}: what each subnetwork reads from the inputs"),
        legend: "one image per rank-one term, its input factor (sign arbitrary)".into(),
        rows,
    })?;
    Ok(Some((
        "input_patterns.svg".into(),
        format!(
            "Each subnetwork's input-layer pattern in {name} as a {side} x {side} image (one per rank-one term; the sign is arbitrary)"
        ),
        svg,
    )))
}
