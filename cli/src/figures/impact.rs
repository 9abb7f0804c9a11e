//! Impact of each subnetwork on each input feature (Section 2.5), as a heatmap.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colour::{sequential, sequential_unit, DARK_GREY};
use super::heatmap::{draw_colour_bar, draw_matrix, MatrixStyle};
use super::matrix::Matrix;
use super::range::{finite_min_max, format_value};
use super::{draw_text, draw_title, render_svg, sub_area, text_width, write_atomic, FigureError};

/// A `[n_v, n_features]` matrix of impacts, e.g. the mean of `I(x_i, v_k)` over the samples
/// in which feature j is active, with a label per row and per column.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpactMatrix {
    pub title: String,
    /// Names the rows as a whole, e.g. "subnetwork".
    pub row_axis: String,
    /// Names the columns as a whole, e.g. "input feature".
    pub col_axis: String,
    /// One per row of `values`.
    pub row_labels: Vec<String>,
    /// One per column of `values`.
    pub col_labels: Vec<String>,
    pub values: Matrix,
    /// Write each value in its cell (when the cells are big enough to hold it).
    pub annotate: bool,
}

const CELL: u32 = 40;
const TITLE_H: u32 = 48;
const LEGEND_H: u32 = 56;
const LABEL_SIZE: u32 = 12;

/// Renders the matrix as an SVG document on the sequential map (white to dark blue) from
/// `min(0, smallest value)` to the largest value, grey for NaN, with a colour bar. Errors when
/// the number of labels does not match the matrix.
pub fn impact_matrix(figure: &ImpactMatrix) -> Result<String, FigureError> {
    let m = &figure.values;
    check_labels("row labels", &figure.row_labels, m.rows())?;
    check_labels("column labels", &figure.col_labels, m.cols())?;
    let (lo, hi) =
        finite_min_max(m.values().iter().copied()).map_or((0.0, 0.0), |(lo, hi)| (lo.min(0.0), hi));
    let label_w = figure
        .row_labels
        .iter()
        .map(|l| text_width(l, LABEL_SIZE))
        .max()
        .unwrap_or(0);
    let axis_w = 24;
    let grid_w = (m.cols() as u32).min(100) * CELL;
    let grid_h = (m.rows() as u32).min(100) * CELL;
    let width = (axis_w + label_w + grid_w + 40).max(420);
    let body_h = grid_h + LABEL_SIZE + 16;
    let height = TITLE_H + body_h + 24 + LEGEND_H;
    render_svg("impact matrix", (width, height), |root| {
        draw_title(root, &figure.title, 12, 18)?;
        let body = sub_area(root, (axis_w, TITLE_H), (width - axis_w - 10, body_h));
        let colour = |v: f32| sequential(v, lo, hi);
        let style = MatrixStyle {
            colour: &colour,
            row_labels: &figure.row_labels,
            col_labels: &figure.col_labels,
            label_size: LABEL_SIZE,
            annotate: figure.annotate,
        };
        draw_matrix(&body, m, &style)?;
        let row_axis = Text::new(
            figure.row_axis.clone(),
            (10, (TITLE_H + body_h / 2) as i32),
            TextStyle::from((super::FONT, 14).into_font())
                .color(&DARK_GREY)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        );
        root.draw(&row_axis)?;
        let col_axis_pos = (width as i32 / 2, (TITLE_H + body_h + 4) as i32);
        draw_text(
            root,
            &figure.col_axis,
            col_axis_pos,
            14,
            (HPos::Center, VPos::Top),
            DARK_GREY,
        )?;
        let legend = sub_area(root, (0, height - LEGEND_H), (width, LEGEND_H));
        let (lo_text, hi_text) = (format_value(lo), format_value(hi));
        let mid_text = format_value((lo + hi) / 2.0);
        draw_colour_bar(
            &legend,
            &sequential_unit,
            [&lo_text, &mid_text, &hi_text],
            "grey: NaN",
        )
    })
}

/// Writes [`impact_matrix`] to `path`.
pub fn write_impact_matrix(path: &Path, figure: &ImpactMatrix) -> Result<(), FigureError> {
    write_atomic(path, impact_matrix(figure)?.as_bytes())
}

fn check_labels(what: &str, labels: &[String], expected: usize) -> Result<(), FigureError> {
    if labels.len() == expected {
        return Ok(());
    }
    Err(FigureError::Length {
        what: what.to_string(),
        expected,
        got: labels.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::heatmap::COLOUR_BAR_STEPS;
    use super::*;

    #[test]
    fn draws_one_rectangle_per_value() {
        let labels = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect();
        let figure = ImpactMatrix {
            title: "t".to_string(),
            row_axis: "subnetwork".to_string(),
            col_axis: "feature".to_string(),
            row_labels: labels("v", 3),
            col_labels: labels("x", 4),
            values: Matrix::new("impact", 3, 4, (0..12).map(|i| i as f32).collect()).unwrap(),
            annotate: true,
        };
        let svg = impact_matrix(&figure).unwrap();
        // The background, 12 cells and the colour bar.
        assert_eq!(svg.matches("<rect").count(), 1 + 12 + COLOUR_BAR_STEPS);
        assert!(svg.contains(">\n11\n</text>") && svg.contains(">\nx3\n</text>"));
    }
}
