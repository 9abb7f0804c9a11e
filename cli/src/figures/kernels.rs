//! Convolution kernels drawn as small images: one row per tensor (the model's, then each
//! subnetwork's), one `kh x kw` image per (output channel, input channel) pair.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::colour::{diverging, diverging_unit};
use super::heatmap::{draw_colour_bar, draw_matrix, MatrixStyle};
use super::matrix::{Matrix, ParamTensor};
use super::range::{format_value, max_abs};
use super::{draw_text, render_svg, sub_area, write_atomic, FigureError};

/// Rows of kernels, each a convolution weight `[out, in, kh, kw]` named for its row; every row
/// has the first row's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelGrid {
    pub title: String,
    /// What one image is, under the colour bar.
    pub legend: String,
    pub rows: Vec<(String, ParamTensor)>,
}

const TITLE_H: u32 = 40;
const ROW_H: u32 = 64;
const LABEL_W: u32 = 150;
const KERNEL: u32 = 48;
const GAP: u32 = 8;
const LEGEND_H: u32 = 56;

/// Renders the grid as an SVG document. Each row uses the diverging map scaled to its own max
/// |value| (given beside its name), so every subnetwork's pattern shows whatever its scale; the
/// sign of a subnetwork is arbitrary. Errors unless every tensor is 4-D of the first's shape.
pub fn kernel_grid(figure: &KernelGrid) -> Result<String, FigureError> {
    let shape = figure
        .rows
        .first()
        .map_or(vec![0, 0, 0, 0], |(_, t)| t.shape().to_vec());
    for (name, t) in &figure.rows {
        if t.shape().len() != 4 || t.shape() != shape.as_slice() {
            return Err(FigureError::Shape {
                what: format!("kernels of {name}"),
                expected: shape.clone(),
                got: t.shape().to_vec(),
            });
        }
    }
    let (kernels, kh, kw) = (shape[0] * shape[1], shape[2], shape[3]);
    // Per row: its label, its scale, and its kernels as kh x kw matrices.
    let mut drawn = Vec::with_capacity(figure.rows.len());
    for (name, tensor) in &figure.rows {
        let values = tensor.matrix().values();
        let scale = max_abs(values.iter().copied());
        let images = values
            .chunks(kh * kw)
            .map(|k| Matrix::new("kernel", kh, kw, k.to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let label = format!("{name}  (max {})", format_value(scale));
        drawn.push((label, scale, images));
    }
    let width = (LABEL_W + kernels as u32 * (KERNEL + GAP) + 20).max(420);
    let height = TITLE_H + figure.rows.len() as u32 * ROW_H + LEGEND_H;
    render_svg("kernel grid", (width, height), |root| {
        let centre = (width as i32 / 2, 10);
        draw_text(
            root,
            &figure.title,
            centre,
            18,
            (HPos::Center, VPos::Top),
            BLACK,
        )?;
        for (r, (label, scale, images)) in drawn.iter().enumerate() {
            let y = TITLE_H + r as u32 * ROW_H;
            let pos = (LABEL_W as i32 - 8, (y + ROW_H / 2) as i32);
            draw_text(root, label, pos, 11, (HPos::Right, VPos::Center), BLACK)?;
            let scale = *scale;
            let colour = move |v: f32| diverging(v, scale);
            let style = MatrixStyle {
                colour: &colour,
                row_labels: &[],
                col_labels: &[],
                label_size: 10,
                annotate: false,
            };
            for (k, m) in images.iter().enumerate() {
                let x = LABEL_W + k as u32 * (KERNEL + GAP);
                let area = sub_area(root, (x, y + (ROW_H - KERNEL) / 2), (KERNEL, KERNEL));
                draw_matrix(&area, m, &style)?;
            }
        }
        let legend = sub_area(root, (0, height - LEGEND_H), (width, LEGEND_H));
        let caption = format!("{}; each row scaled to its own max |value|", figure.legend);
        draw_colour_bar(&legend, &diverging_unit, ["-max", "0", "+max"], &caption)
    })
}

/// Writes [`kernel_grid`] to `path`.
pub fn write_kernel_grid(path: &Path, figure: &KernelGrid) -> Result<(), FigureError> {
    write_atomic(path, kernel_grid(figure)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels(name: &str, out: usize) -> (String, ParamTensor) {
        let values = (0..out * 9).map(|i| i as f32 - 4.0).collect();
        let t = ParamTensor::new(name, &[out, 1, 3, 3], values).unwrap();
        (name.to_string(), t)
    }

    #[test]
    fn every_kernel_is_a_3x3_image() {
        let figure = KernelGrid {
            title: "kernels".into(),
            legend: "one image per kernel".into(),
            rows: vec![kernels("model", 8), kernels("subnetwork 0", 8)],
        };
        let svg = kernel_grid(&figure).unwrap();
        // 2 rows x 8 kernels x 9 cells, and the colour bar's steps.
        let cells = svg.matches("<rect").count();
        let background = 1;
        assert_eq!(
            cells,
            background + 2 * 8 * 9 + super::super::heatmap::COLOUR_BAR_STEPS
        );
        assert!(svg.contains("subnetwork 0"));
    }

    #[test]
    fn rows_of_other_shapes_are_errors() {
        let figure = KernelGrid {
            title: "kernels".into(),
            legend: "one image per kernel".into(),
            rows: vec![kernels("model", 8), kernels("subnetwork 0", 4)],
        };
        assert!(matches!(
            kernel_grid(&figure),
            Err(FigureError::Shape { .. })
        ));
    }
}
