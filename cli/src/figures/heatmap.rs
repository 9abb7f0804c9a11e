//! The heatmap primitive every matrix figure is built from, and its colour bar.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::colour::{text_on, DARK_GREY};
use super::matrix::Matrix;
use super::range::{format_at_scale, max_abs};
use super::{draw_text, text_width, Area, DrawResult};

/// Rectangles in a colour bar; the tests count rectangles, so this is the one number to add.
pub(super) const COLOUR_BAR_STEPS: usize = 32;

/// How to draw one matrix: the colour of a value, the labels of its rows and columns (empty:
/// none; otherwise one per row or column, thinned out when they would overlap), and whether to
/// write each value in its cell.
pub(super) struct MatrixStyle<'a> {
    pub colour: &'a dyn Fn(f32) -> RGBColor,
    pub row_labels: &'a [String],
    pub col_labels: &'a [String],
    pub label_size: u32,
    pub annotate: bool,
}

/// `0, 1, ..., n - 1` as labels.
pub(super) fn index_labels(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// Draws `m` into `area` as a grid of square cells, row 0 at the top and column 0 at the left
/// (the matrix as printed), centred horizontally, row labels on the left, column labels below,
/// and a thin border around the grid.
///
/// Draws exactly `rows * cols` rectangles (the border is a path). An empty matrix draws the word
/// "empty" instead.
pub(super) fn draw_matrix(area: &Area, m: &Matrix, style: &MatrixStyle) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let (rows, cols) = (m.rows(), m.cols());
    if rows == 0 || cols == 0 {
        let centre = (w as i32 / 2, h as i32 / 2);
        return draw_text(
            area,
            "empty",
            centre,
            12,
            (HPos::Center, VPos::Center),
            DARK_GREY,
        );
    }
    let size = style.label_size;
    let widest = |labels: &[String]| {
        labels
            .iter()
            .map(|l| text_width(l, size))
            .max()
            .unwrap_or(0)
    };
    let left = if style.row_labels.is_empty() {
        2
    } else {
        widest(style.row_labels) + 6
    };
    let bottom = if style.col_labels.is_empty() {
        2
    } else {
        size + 6
    };
    let avail_w = f64::from(w.saturating_sub(left + 4).max(1));
    let avail_h = f64::from(h.saturating_sub(bottom + 4).max(1));
    let cell = (avail_w / cols as f64).min(avail_h / rows as f64);
    let grid_w = cell * cols as f64;
    let x0 = f64::from(left) + (avail_w - grid_w) / 2.0;
    let y0 = 2.0;
    let px = |j: usize| (x0 + j as f64 * cell).round() as i32;
    let py = |i: usize| (y0 + i as f64 * cell).round() as i32;
    let scale = max_abs(m.values().iter().copied());

    for i in 0..rows {
        for j in 0..cols {
            let fill = (style.colour)(m.get(i, j));
            let corners = [(px(j), py(i)), (px(j + 1), py(i + 1))];
            area.draw(&Rectangle::new(corners, fill.filled()))?;
            if style.annotate && cell >= 18.0 {
                let centre = ((px(j) + px(j + 1)) / 2, (py(i) + py(i + 1)) / 2);
                let text_size = size.min((cell * 0.4) as u32);
                let label = format_at_scale(m.get(i, j), scale);
                draw_text(
                    area,
                    &label,
                    centre,
                    text_size,
                    (HPos::Center, VPos::Center),
                    text_on(fill),
                )?;
            }
        }
    }
    let (xa, ya, xb, yb) = (px(0), py(0), px(cols), py(rows));
    let border = vec![(xa, ya), (xb, ya), (xb, yb), (xa, yb), (xa, ya)];
    area.draw(&PathElement::new(border, DARK_GREY.stroke_width(1)))?;

    let row_stride = stride(f64::from(size) * 1.1, cell);
    for (i, label) in style.row_labels.iter().enumerate().step_by(row_stride) {
        let pos = (xa - 4, ((py(i) + py(i + 1)) / 2));
        draw_text(area, label, pos, size, (HPos::Right, VPos::Center), BLACK)?;
    }
    let col_stride = stride(f64::from(widest(style.col_labels) + 4), cell);
    for (j, label) in style.col_labels.iter().enumerate().step_by(col_stride) {
        let pos = ((px(j) + px(j + 1)) / 2, yb + 3);
        draw_text(area, label, pos, size, (HPos::Center, VPos::Top), BLACK)?;
    }
    Ok(())
}

/// Every how many cells a label of `label_px` pixels fits along cells of `cell_px` pixels.
fn stride(label_px: f64, cell_px: f64) -> usize {
    if cell_px <= 0.0 {
        return usize::MAX;
    }
    ((label_px / cell_px).ceil() as usize).max(1)
}

/// A horizontal colour bar centred in `area`: `colour(t)` for t from 0 (left) to 1 (right), the
/// three `ticks` (left, middle, right) below it and `caption` under them. Draws exactly
/// [`COLOUR_BAR_STEPS`] rectangles.
pub(super) fn draw_colour_bar(
    area: &Area,
    colour: &dyn Fn(f64) -> RGBColor,
    ticks: [&str; 3],
    caption: &str,
) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let bar_w = w.saturating_sub(40).min(320) as i32;
    let x0 = (w as i32 - bar_w) / 2;
    let (y0, y1) = (4, 16);
    let step = f64::from(bar_w) / COLOUR_BAR_STEPS as f64;
    for s in 0..COLOUR_BAR_STEPS {
        let t = (s as f64 + 0.5) / COLOUR_BAR_STEPS as f64;
        let xa = x0 + (s as f64 * step).round() as i32;
        let xb = x0 + ((s + 1) as f64 * step).round() as i32;
        area.draw(&Rectangle::new([(xa, y0), (xb, y1)], colour(t).filled()))?;
    }
    let border = vec![
        (x0, y0),
        (x0 + bar_w, y0),
        (x0 + bar_w, y1),
        (x0, y1),
        (x0, y0),
    ];
    area.draw(&PathElement::new(border, DARK_GREY.stroke_width(1)))?;
    let anchors = [x0, x0 + bar_w / 2, x0 + bar_w];
    for (tick, x) in ticks.iter().zip(anchors) {
        draw_text(
            area,
            tick,
            (x, y1 + 3),
            11,
            (HPos::Center, VPos::Top),
            BLACK,
        )?;
    }
    let centre = (w as i32 / 2, y1 + 18);
    draw_text(
        area,
        caption,
        centre,
        11,
        (HPos::Center, VPos::Top),
        DARK_GREY,
    )
}
