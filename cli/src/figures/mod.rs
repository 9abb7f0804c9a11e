//! Figures of Section 3 of the paper, drawn as SVG from plain data.
//!
//! This module knows nothing of the decomposition types: callers hand it numbers (slices,
//! `Vec<f32>`, the small structs below) and get back an SVG document as a `String`, or have it
//! written to a file. Each figure has a renderer returning the SVG and a `write_*` wrapper that
//! writes it atomically (temporary file in the same directory, then rename).
//!
//! | figure                       | paper            | function                       |
//! |------------------------------|------------------|--------------------------------|
//! | model and subnetwork weights | Fig. 2, S3       | [`subnetwork_heatmaps`]        |
//! | output change against delta  | Fig. 3, 8        | [`intervention_sweep`], [`intervention_sweep_grid`] |
//! | derived A against true A     | Fig. 5           | [`a_matrix_scatter`]           |
//! | error against n_v or rank    | Fig. S5, S11     | [`error_curves`]               |
//! | impact per input feature     | Section 2.5      | [`impact_matrix`]              |
//! | convolution kernels          |                  | [`kernel_grid`]                |
//! | induction: effect and layers |                  | [`induction_bars`]             |
//! | everything on one page       |                  | [`html_report`]                |
//!
//! Notation as in the paper: `n_v` subnetworks, `delta` the step along a subnetwork in an
//! intervention `W0 + delta v_k`, `A` the true coefficients of the circuit-superposition model.
//!
//! Conventions shared by all figures:
//! - A matrix is drawn as printed: row 0 at the top, column 0 at the left, square cells.
//! - Weights use a diverging map (blue < 0 < red, white at 0), each panel scaled to its own
//!   max |value|; impacts use a sequential map (white to dark blue). NaN is drawn grey in both
//!   maps, so a missing value never passes for a zero.
//! - Non-finite points are left out of line plots (a line breaks at them) and scatter plots;
//!   axis ranges come from the finite values only, and a constant series gets a range around it.
//! - Degenerate input (nothing to draw, all zeros, all NaN) draws an empty or flat figure and
//!   never panics; inconsistent input (a length that does not match a shape) is an error.

mod a_matrix;
mod colour;
mod error_curves;
mod heatmap;
mod impact;
mod induction;
mod intervention;
mod kernels;
mod matrix;
mod range;
mod report;
mod subnetworks;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use nets::io::IoError;

pub use a_matrix::{a_matrix_scatter, r_squared, write_a_matrix_scatter, AMatrixScatter};
pub use error_curves::{error_curves, write_error_curves, ErrorCurves, ReferenceLine, Series};
pub use impact::{impact_matrix, write_impact_matrix, ImpactMatrix};
pub use induction::{induction_bars, write_induction_bars, InductionBars, SHARE_NAMES};
pub use intervention::{
    intervention_sweep, intervention_sweep_grid, write_intervention_sweep,
    write_intervention_sweep_grid, InterventionSweep,
};
pub use kernels::{kernel_grid, write_kernel_grid, KernelGrid};
pub use matrix::{Matrix, ParamTensor};
pub use report::{html_report, write_html_report, Report, ReportFigure, ReportTable};
pub use subnetworks::{
    subnetwork_heatmaps, write_subnetwork_heatmaps, Subnetwork, SubnetworkHeatmaps,
};

/// What can go wrong making a figure.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// Writing the output file failed; names the file.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A list of values does not have the length its shape or its companion list says.
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        what: String,
        expected: usize,
        got: usize,
    },
    /// Two things drawn side by side must have one shape and do not: a subnetwork's tensor and
    /// the model's, or the derived A and the true A.
    #[error("{what}: shape {got:?}, expected {expected:?}")]
    Shape {
        what: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// The drawing backend failed (not expected when drawing into a string).
    #[error("drawing {figure}: {message}")]
    Draw {
        figure: &'static str,
        message: String,
    },
}

/// The drawing surface every figure draws on: an SVG document being built in a `String`.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

const FONT: &str = "sans-serif";

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename),
/// so a reader never sees half a figure.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FigureError> {
    Ok(nets::io::write_atomic(path, contents)?)
}

/// Renders an SVG of `size` pixels (width, height) on a white background with `draw`.
fn render_svg(
    figure: &'static str,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<String, FigureError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present())
            .map_err(|e| FigureError::Draw {
                figure,
                message: e.to_string(),
            })?;
    }
    Ok(svg)
}

/// Draws `text` at pixel `pos` of `area`, anchored at (`h`, `v`) of the text's box.
fn draw_text(
    area: &Area,
    text: &str,
    pos: (i32, i32),
    size: u32,
    anchor: (HPos, VPos),
    colour: RGBColor,
) -> DrawResult {
    let style = TextStyle::from((FONT, size).into_font())
        .color(&colour)
        .pos(Pos::new(anchor.0, anchor.1));
    area.draw(&Text::new(text.to_string(), pos, style))
}

/// Draws a figure's title centred at the top of `area` (`y` pixels down), `size` points.
fn draw_title(area: &Area, title: &str, y: i32, size: u32) -> DrawResult {
    let x = area.dim_in_pixel().0 as i32 / 2;
    draw_text(area, title, (x, y), size, (HPos::Center, VPos::Top), BLACK)
}

/// Draws the legend of `chart`'s labelled series at `position`, in the one style of every
/// figure's legend.
fn draw_legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(colour::DARK_GREY)
        .label_font((FONT, 12))
        .draw()
}

/// The part of `area` whose top-left corner is `at` (pixels from `area`'s) and whose size is
/// `size`, cut to fit inside `area`.
fn sub_area<'a>(area: &Area<'a>, at: (u32, u32), size: (u32, u32)) -> Area<'a> {
    let (w, h) = area.dim_in_pixel();
    let (x, y) = (at.0.min(w), at.1.min(h));
    let size = (size.0.min(w - x), size.1.min(h - y));
    area.clone().shrink((x, y), size)
}

/// Rough width in pixels of `text` at font `size` (no font metrics in SVG; sans-serif averages
/// a little over half an em per character).
fn text_width(text: &str, size: u32) -> u32 {
    (text.chars().count() as f64 * f64::from(size) * 0.6).ceil() as u32
}
