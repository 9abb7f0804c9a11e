//! The model's weights beside each subnetwork's, tensor by tensor (paper Fig. 2 and S3).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::colour::{diverging, diverging_unit, DARK_GREY};
use super::heatmap::{draw_colour_bar, draw_matrix, index_labels, MatrixStyle};
use super::matrix::ParamTensor;
use super::range::{format_value, max_abs};
use super::{
    draw_text, draw_title, render_svg, sub_area, write_atomic, Area, DrawResult, FigureError,
};

/// One subnetwork (a decoder row `V_out[k]` reshaped to the model's tensors), named for its row
/// of the figure. Its tensors stand in the model's order, with the model's shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Subnetwork {
    pub name: String,
    pub tensors: Vec<ParamTensor>,
}

/// A grid of heatmaps: one column per parameter tensor of the model, a first row with the
/// model's own weights `W0`, then one row per subnetwork.
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetworkHeatmaps {
    pub title: String,
    pub model: Vec<ParamTensor>,
    pub subnetworks: Vec<Subnetwork>,
}

const TITLE_H: u32 = 44;
const LEGEND_H: u32 = 56;
const PANEL_TITLE_H: u32 = 34;
/// Cells are drawn this size when the panel is not clamped.
const CELL: u32 = 20;
const LABEL_SIZE: u32 = 10;

/// Renders the grid as an SVG document.
///
/// Each panel is titled "row: tensor" with the tensor's shape and its max |value|, and uses the
/// diverging map scaled to that max (blue < 0 < red, white 0, grey NaN), so the pattern of every
/// panel is visible whatever its scale; the sign is arbitrary for subnetworks (v and -v are the
/// same direction). Errors when a subnetwork's tensors do not match the model's in number or
/// shape.
pub fn subnetwork_heatmaps(figure: &SubnetworkHeatmaps) -> Result<String, FigureError> {
    check_shapes(figure)?;
    let widths: Vec<u32> = figure.model.iter().map(panel_width).collect();
    let row_h = panel_height(&figure.model);
    let n_rows = 1 + figure.subnetworks.len() as u32;
    let width = (widths.iter().sum::<u32>() + 20).max(420);
    let height = TITLE_H + n_rows * row_h + LEGEND_H;
    render_svg("subnetwork heatmaps", (width, height), |root| {
        draw_title(root, &figure.title, 10, 20)?;
        let rows = std::iter::once(("model", &figure.model)).chain(
            figure
                .subnetworks
                .iter()
                .map(|s| (s.name.as_str(), &s.tensors)),
        );
        for (r, (row_name, tensors)) in rows.enumerate() {
            let mut x = 10;
            for (tensor, &w) in tensors.iter().zip(&widths) {
                let y = TITLE_H + r as u32 * row_h;
                let panel = sub_area(root, (x, y), (w, row_h));
                draw_panel(&panel, row_name, tensor)?;
                x += w;
            }
        }
        let legend = sub_area(root, (0, height - LEGEND_H), (width, LEGEND_H));
        let caption = "each panel scaled to its own max |value|; grey: NaN";
        draw_colour_bar(&legend, &diverging_unit, ["-max", "0", "+max"], caption)
    })
}

/// Writes [`subnetwork_heatmaps`] to `path`.
pub fn write_subnetwork_heatmaps(
    path: &Path,
    figure: &SubnetworkHeatmaps,
) -> Result<(), FigureError> {
    write_atomic(path, subnetwork_heatmaps(figure)?.as_bytes())
}

fn check_shapes(figure: &SubnetworkHeatmaps) -> Result<(), FigureError> {
    for sub in &figure.subnetworks {
        if sub.tensors.len() != figure.model.len() {
            return Err(FigureError::Length {
                what: format!("tensors of subnetwork {}", sub.name),
                expected: figure.model.len(),
                got: sub.tensors.len(),
            });
        }
        for (t, m) in sub.tensors.iter().zip(&figure.model) {
            if t.shape() != m.shape() {
                return Err(FigureError::Shape {
                    what: format!(
                        "subnetwork {} tensor {} (against the model's)",
                        sub.name,
                        t.name()
                    ),
                    expected: m.shape().to_vec(),
                    got: t.shape().to_vec(),
                });
            }
        }
    }
    Ok(())
}

/// A column wide enough for `CELL`-pixel cells and the panel title, within limits.
fn panel_width(tensor: &ParamTensor) -> u32 {
    let cols = tensor.matrix().cols().min(1000) as u32;
    (cols * CELL + 40).clamp(200, 480)
}

/// One height for every row: enough for the tallest tensor's cells, within limits.
fn panel_height(model: &[ParamTensor]) -> u32 {
    let rows = model
        .iter()
        .map(|t| t.matrix().rows())
        .max()
        .unwrap_or(1)
        .min(1000) as u32;
    (PANEL_TITLE_H + rows * CELL + LABEL_SIZE + 20).clamp(110, 480)
}

fn draw_panel(panel: &Area, row_name: &str, tensor: &ParamTensor) -> DrawResult {
    let (w, h) = panel.dim_in_pixel();
    let m = tensor.matrix();
    let scale = max_abs(m.values().iter().copied());
    let shape: Vec<String> = tensor.shape().iter().map(usize::to_string).collect();
    let title = format!("{row_name}: {}", tensor.name());
    let subtitle = format!("[{}]  max |v| {}", shape.join(" x "), format_value(scale));
    let centre = w as i32 / 2;
    draw_text(
        panel,
        &title,
        (centre, 2),
        13,
        (HPos::Center, VPos::Top),
        BLACK,
    )?;
    draw_text(
        panel,
        &subtitle,
        (centre, 18),
        10,
        (HPos::Center, VPos::Top),
        DARK_GREY,
    )?;
    let body = sub_area(
        panel,
        (4, PANEL_TITLE_H),
        (w.saturating_sub(8), h.saturating_sub(PANEL_TITLE_H + 4)),
    );
    let colour = |v: f32| diverging(v, scale);
    let style = MatrixStyle {
        colour: &colour,
        row_labels: &index_labels(m.rows()),
        col_labels: &index_labels(m.cols()),
        label_size: LABEL_SIZE,
        annotate: false,
    };
    draw_matrix(&body, m, &style)
}

#[cfg(test)]
mod tests {
    use super::super::heatmap::COLOUR_BAR_STEPS;
    use super::*;

    #[test]
    fn draws_one_rectangle_per_value() {
        let tensors = |scale: f32| {
            vec![
                ParamTensor::new("W", &[2, 3], vec![scale; 6]).unwrap(),
                ParamTensor::new("b", &[3], vec![f32::NAN, 0.0, scale]).unwrap(),
                ParamTensor::new("empty", &[0], vec![]).unwrap(),
            ]
        };
        let figure = SubnetworkHeatmaps {
            title: "t".to_string(),
            model: tensors(1.0),
            subnetworks: (0..3)
                .map(|k| Subnetwork {
                    name: format!("v{k}"),
                    tensors: tensors(-(k as f32)),
                })
                .collect(),
        };
        let svg = subnetwork_heatmaps(&figure).unwrap();
        // The background, 9 cells in each of 4 rows, and the colour bar.
        assert_eq!(svg.matches("<rect").count(), 1 + 4 * 9 + COLOUR_BAR_STEPS);
    }
}
