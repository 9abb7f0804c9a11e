//! Output change against the step along a subnetwork, one line per sample (paper Fig. 3, 8).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::colour::{DARK_GREY, MUTED_GREY};
use super::range::{axis_range, finite_min_max, finite_runs};
use super::{
    draw_legend, draw_text, draw_title, render_svg, write_atomic, Area, DrawResult, FigureError,
    FONT,
};

/// An intervention `f(x, W0 + delta v_k)` on one subnetwork `v_k`, measured per sample.
///
/// Shapes: `deltas` `[n_delta]`, `changes` `[n_samples][n_delta]` (the output change of sample
/// i at each delta, e.g. `|f(x_i, W0 + delta v_k) - f(x_i, W0)|`), `relevant` `[n_samples]`
/// (true for the samples in which the subnetwork is expected to act).
#[derive(Debug, Clone, PartialEq)]
pub struct InterventionSweep {
    /// Names the panel, e.g. "subnetwork 3".
    pub subnetwork: String,
    /// What `changes` measures; the y axis label.
    pub y_label: String,
    pub deltas: Vec<f32>,
    pub changes: Vec<Vec<f32>>,
    pub relevant: Vec<bool>,
}

/// The relevant samples' lines.
const RELEVANT: RGBColor = RGBColor(214, 39, 40);
const PANEL_W: u32 = 560;
const PANEL_H: u32 = 400;

/// Renders one sweep as an SVG document: grey lines for the other samples, drawn first, and
/// red lines for the relevant ones on top, with a legend counting both. Non-finite values break
/// a line. Errors when the lengths of `changes`, `relevant` and `deltas` disagree.
pub fn intervention_sweep(sweep: &InterventionSweep) -> Result<String, FigureError> {
    check(sweep)?;
    render_svg("intervention sweep", (PANEL_W, PANEL_H), |root| {
        draw_sweep(root, sweep)
    })
}

/// Renders several sweeps as a grid of panels, `columns` to a row (at least 1), under `title`.
/// Each panel has its own axes.
pub fn intervention_sweep_grid(
    title: &str,
    sweeps: &[InterventionSweep],
    columns: usize,
) -> Result<String, FigureError> {
    for sweep in sweeps {
        check(sweep)?;
    }
    let columns = columns.clamp(1, sweeps.len().max(1));
    let rows = sweeps.len().div_ceil(columns).max(1);
    let title_h = 44;
    let size = (columns as u32 * PANEL_W, title_h + rows as u32 * PANEL_H);
    render_svg("intervention sweep grid", size, |root| {
        draw_title(root, title, 10, 20)?;
        let (_, body) = root.split_vertically(title_h);
        if sweeps.is_empty() {
            let centre = (size.0 as i32 / 2, 40);
            return draw_text(
                &body,
                "no subnetworks",
                centre,
                14,
                (HPos::Center, VPos::Top),
                DARK_GREY,
            );
        }
        for (panel, sweep) in body.split_evenly((rows, columns)).iter().zip(sweeps) {
            draw_sweep(panel, sweep)?;
        }
        Ok(())
    })
}

/// Writes [`intervention_sweep`] to `path`.
pub fn write_intervention_sweep(path: &Path, sweep: &InterventionSweep) -> Result<(), FigureError> {
    write_atomic(path, intervention_sweep(sweep)?.as_bytes())
}

/// Writes [`intervention_sweep_grid`] to `path`.
pub fn write_intervention_sweep_grid(
    path: &Path,
    title: &str,
    sweeps: &[InterventionSweep],
    columns: usize,
) -> Result<(), FigureError> {
    write_atomic(
        path,
        intervention_sweep_grid(title, sweeps, columns)?.as_bytes(),
    )
}

fn check(sweep: &InterventionSweep) -> Result<(), FigureError> {
    let n_samples = sweep.changes.len();
    if sweep.relevant.len() != n_samples {
        return Err(FigureError::Length {
            what: format!("relevant flags of {}", sweep.subnetwork),
            expected: n_samples,
            got: sweep.relevant.len(),
        });
    }
    for (i, row) in sweep.changes.iter().enumerate() {
        if row.len() != sweep.deltas.len() {
            return Err(FigureError::Length {
                what: format!("changes of sample {i} in {}", sweep.subnetwork),
                expected: sweep.deltas.len(),
                got: row.len(),
            });
        }
    }
    Ok(())
}

fn draw_sweep(area: &Area, sweep: &InterventionSweep) -> DrawResult {
    let x = axis_range(finite_min_max(sweep.deltas.iter().copied()), 0.0);
    let y = axis_range(
        finite_min_max(sweep.changes.iter().flatten().copied()),
        0.05,
    );
    let mut chart = ChartBuilder::on(area)
        .caption(&sweep.subnetwork, (FONT, 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(232, 232, 232))
        .axis_style(DARK_GREY)
        .x_desc("delta")
        .y_desc(&sweep.y_label)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .draw()?;

    let mut labelled = false;
    for (relevant, colour, width, name) in [
        (false, MUTED_GREY, 1, "other samples"),
        (true, RELEVANT, 2, "relevant samples"),
    ] {
        let rows: Vec<&Vec<f32>> = sweep
            .changes
            .iter()
            .zip(&sweep.relevant)
            .filter(|(_, &r)| r == relevant)
            .map(|(row, _)| row)
            .collect();
        let style = colour.stroke_width(width);
        let mut first = true;
        for row in &rows {
            let points = sweep.deltas.iter().copied().zip(row.iter().copied());
            for run in finite_runs(points) {
                let series = chart.draw_series(LineSeries::new(run, style))?;
                if first {
                    series
                        .label(format!("{name} ({})", rows.len()))
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                    first = false;
                    labelled = true;
                }
            }
        }
    }
    if labelled {
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    Ok(())
}
