//! Reconstruction error against a setting such as `n_v` or the rank (paper Fig. S5, S11).

use std::path::Path;

use plotters::prelude::*;

use super::colour::{DARK_GREY, SERIES};
use super::range::{axis_range, finite_min_max, finite_runs, format_tick};
use super::{draw_legend, render_svg, write_atomic, FigureError, FONT};

/// One labelled curve: `(x, y)` points in the order they are joined, e.g. `(n_v, error)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f32, f32)>,
}

/// A horizontal line at `value`, e.g. the error the paper reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceLine {
    pub label: String,
    pub value: f32,
}

/// Several error curves on shared axes, with an optional reference line.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorCurves {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub reference: Option<ReferenceLine>,
}

const SIZE: (u32, u32) = (640, 440);

/// Renders the curves as an SVG document: each series in its own colour with lines and
/// markers, the reference line dashed. The y axis starts at 0 when every error is
/// non-negative, so error levels compare by height. Non-finite points are left out.
pub fn error_curves(figure: &ErrorCurves) -> Result<String, FigureError> {
    render_svg("error curves", SIZE, |root| {
        let points = || figure.series.iter().flat_map(|s| s.points.iter().copied());
        let finite = || points().filter(|(x, y)| x.is_finite() && y.is_finite());
        let x = axis_range(finite_min_max(finite().map(|p| p.0)), 0.05);
        let reference = figure.reference.iter().map(|r| r.value);
        let y_min_max = finite_min_max(finite().map(|p| p.1).chain(reference).chain([0.0]));
        let y = axis_range(y_min_max.map(|(lo, hi)| (lo, hi * 1.1)), 0.0);
        let mut chart = ChartBuilder::on(root)
            .caption(&figure.title, (FONT, 20))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(x.clone(), y)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(232, 232, 232))
            .axis_style(DARK_GREY)
            .x_label_formatter(&format_tick)
            .x_desc(&figure.x_label)
            .y_desc(&figure.y_label)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 14))
            .draw()?;

        let mut labelled = false;
        if let Some(r) = figure.reference.as_ref().filter(|r| r.value.is_finite()) {
            let v = f64::from(r.value);
            let style = DARK_GREY.stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x.start, v), (x.end, v)],
                    6,
                    4,
                    style,
                ))?
                .label(format!("{} ({})", r.label, r.value))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            labelled = true;
        }
        for (k, series) in figure.series.iter().enumerate() {
            let colour = SERIES[k % SERIES.len()];
            let runs = finite_runs(series.points.iter().copied());
            for run in &runs {
                chart.draw_series(LineSeries::new(run.iter().copied(), colour.stroke_width(2)))?;
            }
            let markers = runs
                .into_iter()
                .flatten()
                .map(|p| Circle::new(p, 4, colour.filled()));
            chart
                .draw_series(markers)?
                .label(&series.label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 10, y))
                        + PathElement::new(vec![(-10, 0), (10, 0)], colour.stroke_width(2))
                        + Circle::new((0, 0), 4, colour.filled())
                });
            labelled = true;
        }
        if labelled {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    })
}

/// Writes [`error_curves`] to `path`.
pub fn write_error_curves(path: &Path, figure: &ErrorCurves) -> Result<(), FigureError> {
    write_atomic(path, error_curves(figure)?.as_bytes())
}
