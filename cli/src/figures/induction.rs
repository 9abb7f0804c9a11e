//! The induction report's figure: per subnetwork, the change in predictions on repeated
//! positions against first occurrences when moving along it (bars, mean KL), and its norm^2
//! share per layer and projection (stacked bars).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{draw_text, render_svg, write_atomic, FigureError};

/// The numbers of the figure, one entry per subnetwork.
#[derive(Debug, Clone, PartialEq)]
pub struct InductionBars {
    pub title: String,
    /// One per subnetwork, e.g. "3" or "3 ind".
    pub labels: Vec<String>,
    /// Mean KL on repeated positions and on first occurrences.
    pub repeated: Vec<f64>,
    pub first: Vec<f64>,
    /// Norm^2 shares, in the order of [`SHARE_NAMES`], summing to about 1.
    pub shares: Vec<[f64; 10]>,
}

/// The groups of tensors of the share bars, bottom to top.
pub const SHARE_NAMES: [&str; 10] = [
    "L0 q",
    "L0 k",
    "L0 v",
    "L0 o",
    "L1 q",
    "L1 k",
    "L1 v",
    "L1 o",
    "embeddings",
    "unembed",
];

const SHARE_COLOURS: [RGBColor; 10] = [
    RGBColor(8, 48, 107),
    RGBColor(33, 113, 181),
    RGBColor(107, 174, 214),
    RGBColor(198, 219, 239),
    RGBColor(103, 0, 13),
    RGBColor(203, 24, 29),
    RGBColor(251, 106, 74),
    RGBColor(252, 187, 161),
    RGBColor(150, 150, 150),
    RGBColor(65, 171, 93),
];
const REPEATED: RGBColor = RGBColor(33, 113, 181);
const FIRST: RGBColor = RGBColor(230, 126, 34);
const COL: u32 = 64;
const PANEL_H: u32 = 180;
const LEFT: u32 = 60;

/// Renders the figure as an SVG document. Errors when the lists differ in length.
pub fn induction_bars(f: &InductionBars) -> Result<String, FigureError> {
    let n = f.labels.len();
    for (what, len) in [
        ("repeated", f.repeated.len()),
        ("first", f.first.len()),
        ("shares", f.shares.len()),
    ] {
        if len != n {
            return Err(FigureError::Length {
                what: format!("induction bars: {what}"),
                expected: n,
                got: len,
            });
        }
    }
    let width = (LEFT + n as u32 * COL + 130).max(480);
    let height = 40 + 2 * (PANEL_H + 50) + 20;
    let finite_max = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .fold(0.0, f64::max)
    };
    let top = finite_max(&f.repeated).max(finite_max(&f.first));
    render_svg("induction bars", (width, height), |root| {
        let text =
            |s: &str, pos: (i32, i32), size, anchor| draw_text(root, s, pos, size, anchor, BLACK);
        text(
            &f.title,
            (width as i32 / 2, 10),
            16,
            (HPos::Center, VPos::Top),
        )?;
        // Panel 1: effect bars, scaled to the largest finite value.
        let base1 = (40 + PANEL_H) as i32;
        text(
            "mean KL when moved along it",
            (LEFT as i32, 30),
            12,
            (HPos::Left, VPos::Top),
        )?;
        text(
            &format!("{top:.3}"),
            (LEFT as i32 - 6, base1 - PANEL_H as i32 + 12),
            11,
            (HPos::Right, VPos::Center),
        )?;
        text(
            "0",
            (LEFT as i32 - 6, base1),
            11,
            (HPos::Right, VPos::Center),
        )?;
        let bar_h = |v: f64| match (v.is_finite(), top > 0.0) {
            (true, true) => ((v / top).clamp(0.0, 1.0) * (PANEL_H - 12) as f64) as i32,
            _ => 0,
        };
        for k in 0..n {
            let x = (LEFT + k as u32 * COL) as i32;
            for (j, (v, colour)) in [(f.repeated[k], REPEATED), (f.first[k], FIRST)]
                .into_iter()
                .enumerate()
            {
                let x0 = x + 8 + j as i32 * 22;
                root.draw(&Rectangle::new(
                    [(x0, base1 - bar_h(v)), (x0 + 20, base1)],
                    colour.filled(),
                ))?;
            }
            text(
                &f.labels[k],
                (x + COL as i32 / 2, base1 + 6),
                11,
                (HPos::Center, VPos::Top),
            )?;
        }
        root.draw(&PathElement::new(
            vec![
                (LEFT as i32, base1),
                ((LEFT + n as u32 * COL) as i32, base1),
            ],
            BLACK,
        ))?;
        let legend_x = (LEFT + n as u32 * COL + 12) as i32;
        for (j, (name, colour)) in [("repeated", REPEATED), ("first occ.", FIRST)]
            .into_iter()
            .enumerate()
        {
            let y = base1 - PANEL_H as i32 + 12 + j as i32 * 18;
            root.draw(&Rectangle::new(
                [(legend_x, y - 5), (legend_x + 10, y + 5)],
                colour.filled(),
            ))?;
            text(name, (legend_x + 14, y), 11, (HPos::Left, VPos::Center))?;
        }
        // Panel 2: stacked norm^2 shares.
        let base2 = base1 + 50 + PANEL_H as i32;
        text(
            "norm^2 share per layer and projection",
            (LEFT as i32, base1 + 26),
            12,
            (HPos::Left, VPos::Top),
        )?;
        text(
            "1",
            (LEFT as i32 - 6, base2 - PANEL_H as i32 + 12),
            11,
            (HPos::Right, VPos::Center),
        )?;
        text(
            "0",
            (LEFT as i32 - 6, base2),
            11,
            (HPos::Right, VPos::Center),
        )?;
        let unit = (PANEL_H - 12) as f64;
        for k in 0..n {
            let x0 = (LEFT + k as u32 * COL) as i32 + 12;
            let mut acc = 0.0;
            for (share, colour) in f.shares[k].iter().zip(SHARE_COLOURS) {
                let share = if share.is_finite() {
                    share.max(0.0)
                } else {
                    0.0
                };
                let (y0, y1) = (
                    base2 - (acc * unit) as i32,
                    base2 - ((acc + share) * unit) as i32,
                );
                root.draw(&Rectangle::new([(x0, y1), (x0 + 36, y0)], colour.filled()))?;
                acc += share;
            }
            text(
                &f.labels[k],
                (x0 + 18, base2 + 6),
                11,
                (HPos::Center, VPos::Top),
            )?;
        }
        for (j, (name, colour)) in SHARE_NAMES.iter().zip(SHARE_COLOURS).enumerate() {
            let y = base2 - PANEL_H as i32 + 12 + j as i32 * 16;
            root.draw(&Rectangle::new(
                [(legend_x, y - 5), (legend_x + 10, y + 5)],
                colour.filled(),
            ))?;
            text(name, (legend_x + 14, y), 11, (HPos::Left, VPos::Center))?;
        }
        Ok(())
    })
}

/// Writes [`induction_bars`] to `path` atomically.
pub fn write_induction_bars(path: &Path, f: &InductionBars) -> Result<(), FigureError> {
    write_atomic(path, induction_bars(f)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(n: usize) -> InductionBars {
        InductionBars {
            title: "t".into(),
            labels: (0..n).map(|k| k.to_string()).collect(),
            repeated: vec![1.0; n],
            first: vec![0.1; n],
            shares: vec![[0.1; 10]; n],
        }
    }

    #[test]
    fn draws_one_bar_per_value_and_refuses_mismatched_lists() {
        let svg = induction_bars(&bars(3)).unwrap();
        // 3 x 2 effect bars + 3 x 10 share segments + 2 + 10 legend boxes (+ the background).
        assert_eq!(svg.matches("<rect").count(), 1 + 6 + 30 + 12);
        let mut bad = bars(3);
        bad.first.pop();
        let err = induction_bars(&bad).unwrap_err().to_string();
        assert!(err.contains("first"), "{err}");
        // Non-finite values draw nothing rather than failing.
        let mut odd = bars(2);
        odd.repeated[0] = f64::INFINITY;
        odd.shares[1][0] = f64::NAN;
        assert!(induction_bars(&odd).is_ok());
    }
}
