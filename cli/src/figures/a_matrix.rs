//! Coefficients derived from the subnetworks against the true A of the circuit-superposition
//! model (paper Fig. 5).

use std::ops::Range;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::colour::{diverging, diverging_unit, DARK_GREY, SERIES};
use super::heatmap::{draw_colour_bar, draw_matrix, index_labels, MatrixStyle};
use super::matrix::Matrix;
use super::range::{axis_range, finite_min_max, format_value, max_abs};
use super::{
    draw_legend, draw_text, render_svg, sub_area, write_atomic, Area, DrawResult, FigureError, FONT,
};

/// The true `A` and the `a_hat` derived from the subnetworks, both `[rows, cols]`, compared
/// entry by entry; `heatmaps` adds the two matrices side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct AMatrixScatter {
    pub title: String,
    pub true_a: Matrix,
    pub derived_a: Matrix,
    pub heatmaps: bool,
}

const SCATTER_W: u32 = 520;
const HEATMAP_W: u32 = 420;
const HEIGHT: u32 = 500;
const LEGEND_H: u32 = 56;

/// Squared Pearson correlation of the pairs `(x[i], y[i])` in which both are finite; `None`
/// with fewer than two such pairs, a length mismatch, or no spread in either. Invariant to
/// the scale of either side, as the comparison of `a_hat` with `A` needs (subnetworks are unit
/// vectors, so `a_hat` is A only up to scale).
pub fn r_squared(x: &[f32], y: &[f32]) -> Option<f32> {
    if x.len() != y.len() {
        return None;
    }
    let pairs: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(&a, &b)| (f64::from(a), f64::from(b)))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let mean_x = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in &pairs {
        sxy += (a - mean_x) * (b - mean_y);
        sxx += (a - mean_x) * (a - mean_x);
        syy += (b - mean_y) * (b - mean_y);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy * sxy / (sxx * syy)) as f32)
}

/// Renders the comparison as an SVG document: a scatter of `a_hat[i, j]` (y) against `A[i, j]`
/// (x) with its least-squares line and [`r_squared`] in the title, and with `heatmaps` the two
/// matrices on the diverging map, each scaled to its own max |value|. Errors when the shapes
/// differ.
pub fn a_matrix_scatter(figure: &AMatrixScatter) -> Result<String, FigureError> {
    let (t, d) = (&figure.true_a, &figure.derived_a);
    if (t.rows(), t.cols()) != (d.rows(), d.cols()) {
        return Err(FigureError::Shape {
            what: "derived A (against the true A)".to_string(),
            expected: vec![t.rows(), t.cols()],
            got: vec![d.rows(), d.cols()],
        });
    }
    let width = if figure.heatmaps {
        SCATTER_W + 2 * HEATMAP_W
    } else {
        SCATTER_W
    };
    let height = if figure.heatmaps {
        HEIGHT + LEGEND_H
    } else {
        HEIGHT
    };
    render_svg("A matrix scatter", (width, height), |root| {
        let scatter = sub_area(root, (0, 0), (SCATTER_W, HEIGHT));
        draw_scatter(&scatter, figure)?;
        if !figure.heatmaps {
            return Ok(());
        }
        for (k, (name, m)) in [("true A", t), ("derived A", d)].into_iter().enumerate() {
            let x = SCATTER_W + k as u32 * HEATMAP_W;
            draw_heatmap(&sub_area(root, (x, 0), (HEATMAP_W, HEIGHT)), name, m)?;
        }
        let legend = sub_area(root, (SCATTER_W, HEIGHT), (2 * HEATMAP_W, LEGEND_H));
        let caption = "each matrix scaled to its own max |value|; grey: NaN";
        draw_colour_bar(&legend, &diverging_unit, ["-max", "0", "+max"], caption)
    })
}

/// Writes [`a_matrix_scatter`] to `path`.
pub fn write_a_matrix_scatter(path: &Path, figure: &AMatrixScatter) -> Result<(), FigureError> {
    write_atomic(path, a_matrix_scatter(figure)?.as_bytes())
}

fn draw_scatter(area: &Area, figure: &AMatrixScatter) -> DrawResult {
    let (xs, ys) = (figure.true_a.values(), figure.derived_a.values());
    let r2 = r_squared(xs, ys).map_or("undefined".to_string(), |r| format!("{r:.3}"));
    let pairs: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(&a, &b)| (f64::from(a), f64::from(b)))
        .collect();
    let x = axis_range(finite_min_max(pairs.iter().map(|p| p.0 as f32)), 0.05);
    let y = axis_range(finite_min_max(pairs.iter().map(|p| p.1 as f32)), 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}  (r² = {r2})", figure.title), (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.clone(), y.clone())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(232, 232, 232))
        .axis_style(DARK_GREY)
        .x_desc("true A")
        .y_desc("derived A")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let fit = least_squares(&pairs).and_then(|line| clip_line(line, &x, &y));
    if let Some(line) = fit {
        chart
            .draw_series(LineSeries::new(line, DARK_GREY.stroke_width(1)))?
            .label("least-squares line")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], DARK_GREY));
    }
    let point = SERIES[0].mix(0.75).filled();
    chart
        .draw_series(pairs.iter().map(|&p| Circle::new(p, 4, point)))?
        .label(format!("entries ({})", pairs.len()))
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, point));
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// Slope and intercept of the least-squares line through `pairs`; `None` without spread in x.
fn least_squares(pairs: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = pairs.len() as f64;
    let mean_x = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pairs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = pairs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| {
        let slope = sxy / sxx;
        (slope, mean_y - slope * mean_x)
    })
}

/// The part of the line `y = intercept + slope x` inside the box `x` by `y`, as its two end
/// points; `None` when the line misses the box (plotters does not clip lines to the chart).
fn clip_line(
    (slope, intercept): (f64, f64),
    x: &Range<f64>,
    y: &Range<f64>,
) -> Option<[(f64, f64); 2]> {
    let (mut lo, mut hi) = (x.start, x.end);
    if slope != 0.0 {
        let at_start = (y.start - intercept) / slope;
        let at_end = (y.end - intercept) / slope;
        lo = lo.max(at_start.min(at_end));
        hi = hi.min(at_start.max(at_end));
    } else if !y.contains(&intercept) {
        return None;
    }
    (lo < hi).then(|| [lo, hi].map(|v| (v, intercept + slope * v)))
}

fn draw_heatmap(area: &Area, name: &str, m: &Matrix) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let scale = max_abs(m.values().iter().copied());
    let title = format!("{name}  (max |v| {})", format_value(scale));
    draw_text(
        area,
        &title,
        (w as i32 / 2, 14),
        16,
        (HPos::Center, VPos::Top),
        BLACK,
    )?;
    let body = sub_area(area, (10, 44), (w.saturating_sub(20), h.saturating_sub(56)));
    let colour = |v: f32| diverging(v, scale);
    let style = MatrixStyle {
        colour: &colour,
        row_labels: &index_labels(m.rows()),
        col_labels: &index_labels(m.cols()),
        label_size: 11,
        annotate: false,
    };
    draw_matrix(&body, m, &style)
}

#[cfg(test)]
mod tests {
    use super::super::heatmap::COLOUR_BAR_STEPS;
    use super::*;

    #[test]
    fn heatmaps_add_one_rectangle_per_entry_of_each_matrix() {
        let a = Matrix::new("A", 2, 3, vec![1.0, 2.0, 0.0, 3.0, 1.5, 0.5]).unwrap();
        let mut figure = AMatrixScatter {
            title: "t".to_string(),
            true_a: a.clone(),
            derived_a: a,
            heatmaps: false,
        };
        let without = a_matrix_scatter(&figure).unwrap().matches("<rect").count();
        figure.heatmaps = true;
        let with = a_matrix_scatter(&figure).unwrap().matches("<rect").count();
        assert_eq!(with - without, 2 * 6 + COLOUR_BAR_STEPS);
    }

    #[test]
    fn fit_lines_are_clipped_to_the_plot() {
        // y = 2x on x in 0..2, y in 0..1: inside only for x in 0..0.5.
        let line = clip_line((2.0, 0.0), &(0.0..2.0), &(0.0..1.0)).unwrap();
        assert_eq!(line, [(0.0, 0.0), (0.5, 1.0)]);
        // A falling line: y = 1 - x on x in -1..3, y in 0..1 enters at x = 0 and leaves at 1.
        let line = clip_line((-1.0, 1.0), &(-1.0..3.0), &(0.0..1.0)).unwrap();
        assert_eq!(line, [(0.0, 1.0), (1.0, 0.0)]);
        assert_eq!(clip_line((0.0, 5.0), &(0.0..1.0), &(0.0..1.0)), None);
        assert_eq!(clip_line((1.0, 5.0), &(0.0..1.0), &(0.0..1.0)), None);
    }
}
