//! Colour maps: a diverging one for signed weights, a sequential one for magnitudes, and a
//! grey for NaN that neither map produces.

use plotters::style::RGBColor;

/// The colour of a NaN cell: a mid grey, unlike any colour of either map.
pub(super) const NAN_GREY: RGBColor = RGBColor(150, 150, 150);

/// Lines of samples or cells that are not the focus.
pub(super) const MUTED_GREY: RGBColor = RGBColor(175, 175, 175);

/// Axis lines, borders and secondary text.
pub(super) const DARK_GREY: RGBColor = RGBColor(90, 90, 90);

/// ColorBrewer RdBu (9 classes), from -1 (blue) through 0 (white) to +1 (red); the middle class
/// is pure white so that exact zeros vanish into the background.
const RED_BLUE: [(u8, u8, u8); 9] = [
    (33, 102, 172),
    (67, 147, 195),
    (146, 197, 222),
    (209, 229, 240),
    (255, 255, 255),
    (253, 219, 199),
    (244, 165, 130),
    (214, 96, 77),
    (178, 24, 43),
];

/// ColorBrewer Blues (9 classes), from 0 (white) to 1 (dark blue).
const BLUES: [(u8, u8, u8); 9] = [
    (255, 255, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

/// Tableau 10: distinct colours for labelled series.
pub(super) const SERIES: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Piecewise-linear interpolation between evenly spaced `anchors`, `t` clamped to [0, 1].
fn interpolate(anchors: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (anchors.len() - 1) as f64;
    let i = (t.floor() as usize).min(anchors.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (anchors[i], anchors[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Blue-white-red colour of `value` on a scale where `-max_abs` is full blue and `+max_abs`
/// full red. NaN is grey; infinities take the colour of their sign; with `max_abs == 0` (an
/// all-zero panel) every finite value is white.
pub(super) fn diverging(value: f32, max_abs: f32) -> RGBColor {
    if value.is_nan() {
        return NAN_GREY;
    }
    let s = if value.is_infinite() {
        f64::from(value.signum())
    } else if max_abs > 0.0 {
        f64::from(value) / f64::from(max_abs)
    } else {
        0.0
    };
    diverging_unit(0.5 + 0.5 * s)
}

/// The diverging map at position `t` in [0, 1] (0 blue, 0.5 white, 1 red); for colour bars.
pub(super) fn diverging_unit(t: f64) -> RGBColor {
    interpolate(&RED_BLUE, t)
}

/// White-to-blue colour of `value` on the scale `lo..=hi`. NaN is grey; values outside the
/// scale take the colour of its nearer end; with `hi <= lo` every finite value is white.
pub(super) fn sequential(value: f32, lo: f32, hi: f32) -> RGBColor {
    if value.is_nan() {
        return NAN_GREY;
    }
    let t = if hi > lo {
        (f64::from(value) - f64::from(lo)) / (f64::from(hi) - f64::from(lo))
    } else {
        0.0
    };
    sequential_unit(t)
}

/// The sequential map at position `t` in [0, 1]; for colour bars.
pub(super) fn sequential_unit(t: f64) -> RGBColor {
    interpolate(&BLUES, t)
}

/// Black or white, whichever reads better on `background` (relative luminance threshold).
pub(super) fn text_on(background: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = background;
    let luminance = 0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b);
    if luminance < 140.0 {
        RGBColor(255, 255, 255)
    } else {
        RGBColor(0, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_ends_and_middle() {
        assert_eq!(diverging(-2.0, 2.0), RGBColor(33, 102, 172));
        assert_eq!(diverging(0.0, 2.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(2.0, 2.0), RGBColor(178, 24, 43));
        assert_eq!(diverging(f32::NAN, 2.0), NAN_GREY);
        assert_eq!(diverging(f32::NEG_INFINITY, 0.0), RGBColor(33, 102, 172));
        assert_eq!(diverging(1.0, 0.0), RGBColor(255, 255, 255));
    }

    #[test]
    fn sequential_clamps_and_handles_flat_scales() {
        assert_eq!(sequential(0.0, 0.0, 1.0), RGBColor(255, 255, 255));
        assert_eq!(sequential(5.0, 0.0, 1.0), RGBColor(8, 48, 107));
        assert_eq!(sequential(3.0, 3.0, 3.0), RGBColor(255, 255, 255));
        assert_eq!(sequential(f32::NAN, 0.0, 1.0), NAN_GREY);
    }
}
