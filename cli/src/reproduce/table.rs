//! The reproduction's table: its rows from the runs (median and range over the runs of a toy,
//! the targets met), the sweep figures, and the table as markdown.

use super::results::{Purpose, Reproduction, Row, RunResult};
use crate::error::Result;
use crate::figures::{self, ErrorCurves, ReferenceLine, Series};
use l3d::Divergence;
use std::fmt::Write as _;
use toys::analysis::Analysis;
use toys::circuits::median;
use toys::models::ToyKind;

fn row(model: ToyKind, measure: &str, ours: String, paper: &str, met: Option<bool>) -> Row {
    Row {
        model: model.to_string(),
        measure: measure.into(),
        ours,
        paper: paper.into(),
        met,
    }
}

/// `median [min, max]` of `values` with `digits` decimals (`-` if empty).
pub(super) fn summary(values: &[f64], digits: usize) -> String {
    let Some(m) = median(values) else {
        return "-".into();
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() == 1 {
        format!("{m:.digits$}")
    } else {
        format!("{m:.digits$} [{min:.digits$}, {max:.digits$}]")
    }
}

/// `median/n [min, max]` of counts out of `n`.
pub(super) fn count_summary(values: &[f64], n: usize) -> String {
    let Some(m) = median(values) else {
        return "-".into();
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let m = if m.fract() == 0.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    };
    if values.len() == 1 {
        format!("{m}/{n}")
    } else {
        format!("{m}/{n} [{min:.0}, {max:.0}]")
    }
}

/// The table rows of one toy, from all its runs.
pub(super) fn rows_for(kind: ToyKind, runs: &[&RunResult]) -> Vec<Row> {
    let paper = kind.paper();
    let main: Vec<&Analysis> = runs
        .iter()
        .filter(|r| r.purpose == Purpose::Main)
        .filter_map(|r| r.analysis.as_ref())
        .collect();
    let values = |f: &dyn Fn(&Analysis) -> Option<f64>| -> Vec<f64> {
        main.iter().filter_map(|a| f(a)).collect()
    };
    let errors = values(&|a| Some(a.evaluation.reconstruction_error));
    let n_features = main.first().map_or(0, |a| a.n_features());
    let word = if kind == ToyKind::HighRank {
        "groups"
    } else {
        "features"
    };
    let paper_error = paper
        .reconstruction_error
        .map_or("-".into(), |p| format!("{p}"));
    let mut rows = vec![row(
        kind,
        &format!(
            "reconstruction error (n_v {}, rank {}; 10,000 held-out samples)",
            paper.n_v, paper.rank
        ),
        summary(&errors, 3),
        &paper_error,
        paper
            .reconstruction_error
            .zip(median(&errors))
            .map(|(p, m)| m <= p),
    )];
    let structure = values(&|a| Some(a.structure_count() as f64));
    rows.push(row(
        kind,
        &format!(
            "{word} recovered by structure (>= 80% of a live subnetwork's input-layer norm^2)"
        ),
        count_summary(&structure, n_features),
        &format!("{n_features}/{n_features}"),
        median(&structure).map(|m| m >= n_features as f64),
    ));
    let intervention = values(&|a| Some(a.intervention_count() as f64));
    rows.push(row(
        kind,
        &format!("{word} recovered by intervention (>= 50% of the output change on its samples)"),
        count_summary(&intervention, n_features),
        "-",
        None,
    ));
    match kind {
        ToyKind::Tms => {
            let cos = values(&|a| a.min_encoder_cosine());
            rows.push(row(
                kind,
                "min |cos| encoder direction vs feature embedding",
                summary(&cos, 3),
                "parallel (target >= 0.95)",
                median(&cos).map(|m| m >= 0.95),
            ));
        }
        ToyKind::Tmcs => {
            let r = values(&|a| a.derived_a.as_ref().map(|d| d.r_authors));
            rows.push(row(
                kind,
                "derived A vs true A: Pearson r, as the authors compute it (unscaled, one column per subnetwork)",
                summary(&r, 3),
                "0.92 (printed as r^2; the authors' notebook prints r, 0.955 on their toy)",
                median(&r).map(|m| m >= 0.92),
            ));
            let r2 = values(&|a| a.derived_a.as_ref().map(|d| d.r_squared));
            rows.push(row(
                kind,
                "derived A vs true A: r^2 with least-squares scale, best subnetwork per column (ours)",
                summary(&r2, 3),
                "-",
                None,
            ));
        }
        ToyKind::HighRank => {
            let live = values(&|a| Some(a.live_count() as f64));
            rows.push(row(
                kind,
                "live subnetworks (of 10)",
                count_summary(&live, paper.n_v),
                "one per group (5), the rest dead",
                median(&live).map(|m| m == n_features as f64),
            ));
        }
        ToyKind::Squared => {
            let channel = values(&|a| a.median_over_recoverers(|s| s.channel_selectivity));
            rows.push(row(
                kind,
                "output-channel selectivity (median over recovering subnetworks)",
                summary(&channel, 1),
                "about 9x (the authors' figure)",
                None,
            ));
        }
        ToyKind::TmsParallel => {}
    }
    let selectivity = values(&|a| a.median_over_recoverers(|s| s.sample_selectivity));
    rows.push(row(
        kind,
        "sample selectivity (median over recovering subnetworks; diagnostic)",
        summary(&selectivity, 1),
        if kind == ToyKind::Squared {
            "about 1.2x (the authors' figure)"
        } else {
            "-"
        },
        None,
    ));
    let purity = values(&|a| Some(a.purity_count() as f64));
    rows.push(row(
        kind,
        &format!("{word} with a subnetwork of impact purity >= 0.8 (diagnostic)"),
        count_summary(&purity, n_features),
        "-",
        None,
    ));
    let other: Vec<f64> = runs
        .iter()
        .filter(|r| r.purpose == Purpose::OtherDivergence)
        .map(|r| r.error)
        .collect();
    if let Some(r) = runs.iter().find(|r| r.purpose == Purpose::OtherDivergence) {
        rows.push(row(
            kind,
            &format!(
                "reconstruction error with divergence {} (no target)",
                divergence_name(r.divergence)
            ),
            summary(&other, 3),
            &paper_error,
            None,
        ));
    }
    let points = sweep_medians(runs);
    if !points.is_empty() {
        rows.push(sweep_row(kind, &points));
    }
    rows
}

fn divergence_name(d: Divergence) -> &'static str {
    match d {
        Divergence::Mse => "mse",
        Divergence::MseAuthors => "mse-authors",
        Divergence::Kl => "kl",
    }
}

/// `(x, median error, errors)` per sweep point, `x` the rank (`high-rank`) or `n_v`: the
/// sweep runs, and the main runs of the first toy seed where their setting is a sweep point.
fn sweep_medians(runs: &[&RunResult]) -> Vec<(usize, f64, Vec<f64>)> {
    let Some(first) = runs.iter().find(|r| r.purpose == Purpose::Sweep) else {
        return Vec::new();
    };
    let points = first.toy.paper_sweep();
    let sweep: Vec<&&RunResult> = runs
        .iter()
        .filter(|r| {
            r.purpose == Purpose::Sweep
                || (r.purpose == Purpose::Main
                    && r.toy_seed == first.toy_seed
                    && points.contains(&(r.n_v, r.rank)))
        })
        .collect();
    let x = |r: &RunResult| {
        if first.toy == ToyKind::HighRank {
            r.rank
        } else {
            r.n_v
        }
    };
    let mut xs: Vec<usize> = sweep.iter().map(|r| x(r)).collect();
    xs.sort_unstable();
    xs.dedup();
    xs.into_iter()
        .map(|at| {
            let errors: Vec<f64> = sweep
                .iter()
                .filter(|r| x(r) == at)
                .map(|r| r.error)
                .collect();
            (at, median(&errors).unwrap_or(f64::NAN), errors)
        })
        .collect()
}

fn sweep_row(kind: ToyKind, points: &[(usize, f64, Vec<f64>)]) -> Row {
    let (measure, paper) = match kind {
        ToyKind::HighRank => (
            "error at rank 1..5 (medians)",
            "rank 1 about as good as rank 5",
        ),
        _ => (
            "error at n_v 3, 5, 10, 15, rank 1 (medians)",
            "falls as n_v grows",
        ),
    };
    let ours = points
        .iter()
        .map(|(_, e, _)| format!("{e:.3}"))
        .collect::<Vec<_>>()
        .join(", ");
    let met = match kind {
        ToyKind::HighRank => points
            .first()
            .zip(points.last())
            .map(|(a, b)| a.1 <= b.1 + 0.05),
        _ => Some(points.windows(2).all(|w| w[1].1 <= w[0].1 + 0.01)),
    };
    row(kind, measure, ours, paper, met)
}

pub(super) fn sweep_figure(
    kind: ToyKind,
    runs: &[&RunResult],
) -> Result<Option<(String, String, String)>> {
    let points = sweep_medians(runs);
    if points.is_empty() {
        return Ok(None);
    }
    let (x_label, file) = match kind {
        ToyKind::HighRank => ("CP rank", "high_rank_error_vs_rank.svg"),
        _ => ("subnetworks n_v", "squared_error_vs_nv.svg"),
    };
    let spread = |pick: fn(&[f64]) -> f64, label: &str| Series {
        label: label.into(),
        points: points
            .iter()
            .map(|(x, _, e)| (*x as f32, pick(e) as f32))
            .collect(),
    };
    let svg = figures::error_curves(&ErrorCurves {
        title: format!("{kind}: reconstruction error against {x_label}"),
        x_label: x_label.into(),
        y_label: "relative reconstruction error (held-out)".into(),
        series: vec![
            Series {
                label: "median over seeds".into(),
                points: points
                    .iter()
                    .map(|&(x, m, _)| (x as f32, m as f32))
                    .collect(),
            },
            spread(|e| e.iter().copied().fold(f64::INFINITY, f64::min), "min"),
            spread(
                |e| e.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "max",
            ),
        ],
        reference: kind.paper().reconstruction_error.map(|p| ReferenceLine {
            label: format!(
                "paper at n_v {}, rank {}",
                kind.paper().n_v,
                kind.paper().rank
            ),
            value: p as f32,
        }),
    })?;
    Ok(Some((
        file.into(),
        format!("{kind}: error against {x_label}"),
        svg,
    )))
}

pub(super) fn met_text(met: Option<bool>) -> String {
    match met {
        Some(true) => "yes".into(),
        Some(false) => "NO".into(),
        None => "-".into(),
    }
}

/// The table as markdown.
pub(super) fn markdown_table(r: &Reproduction) -> String {
    let mut s = String::new();
    let runs = r.toy_seeds * r.seeds;
    let _ = writeln!(
        s,
        "Reproduction of the paper's Section 3: {} toy seeds x {} decomposition seeds per toy (seeds from {}), \
         epoch scale {}, divergence {}, {:.0} s. Each entry is the median [min, max] over the {runs} runs of a toy \
         (sweeps and the other divergence: {} seeds on the first toy seed); a target is met when the median meets it.\n",
        r.toy_seeds,
        r.seeds,
        r.seed,
        r.scale,
        divergence_name(r.divergence),
        r.seconds,
        r.seeds,
    );
    if let Some(induction) = &r.induction {
        let _ = writeln!(
            s,
            "Induction rows (beyond the paper): the model's own measures are over the trained models ({}), the rest over the decompositions of each set of tensors ({} each), a role's effects over the runs that found it.\n",
            induction.models.len(),
            r.toy_seeds * r.seeds
        );
    }
    let _ = writeln!(s, "| model | measure | ours | paper | target met |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            row.model,
            row.measure,
            row.ours,
            row.paper,
            met_text(row.met)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_give_the_median_and_the_range() {
        assert_eq!(summary(&[0.3, 0.1, 0.2], 2), "0.20 [0.10, 0.30]");
        assert_eq!(summary(&[0.25], 2), "0.25");
        assert_eq!(summary(&[], 2), "-");
        assert_eq!(count_summary(&[5.0, 4.0, 5.0], 5), "5/5 [4, 5]");
        assert_eq!(count_summary(&[5.0, 4.0], 5), "4.5/5 [4, 5]");
    }
}
