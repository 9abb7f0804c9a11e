//! Axis ranges and line runs from data that may hold NaN, infinities, or a single value.

use std::ops::Range;

/// Smallest and largest finite value, or `None` when there is none.
pub(super) fn finite_min_max(values: impl IntoIterator<Item = f32>) -> Option<(f32, f32)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Largest finite |value|, 0 when there is none.
pub(super) fn max_abs(values: impl IntoIterator<Item = f32>) -> f32 {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0.0, |acc, v| acc.max(v.abs()))
}

/// An axis range covering `min_max` plus `pad` of its span on each side. A single value `c`
/// gets `c ± |c| / 2` (or `± 1` around 0), so a constant series is drawn as a flat line in the
/// middle; no data gets `0..1`.
pub(super) fn axis_range(min_max: Option<(f32, f32)>, pad: f64) -> Range<f64> {
    let Some((lo, hi)) = min_max else {
        return 0.0..1.0;
    };
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    if hi > lo {
        let margin = (hi - lo) * pad;
        return (lo - margin)..(hi + margin);
    }
    let half = if lo == 0.0 { 1.0 } else { lo.abs() / 2.0 };
    (lo - half)..(hi + half)
}

/// The maximal runs of consecutive points with both coordinates finite: a line is drawn through
/// each run, so a NaN shows as a gap instead of a segment to nowhere.
pub(super) fn finite_runs(points: impl IntoIterator<Item = (f32, f32)>) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![];
    let mut run = vec![];
    for (x, y) in points {
        if x.is_finite() && y.is_finite() {
            run.push((f64::from(x), f64::from(y)));
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// A short label for a number: fixed point for ordinary magnitudes, scientific otherwise.
pub(super) fn format_value(v: f32) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else if (0.01..1000.0).contains(&a) {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    }
}

/// `v` with the decimals that the largest magnitude `scale` of its matrix calls for (two for
/// scales from 0.1 to 10, one more per decade below, none from 10 up), so the values of a
/// matrix line up and a near-zero one reads 0.00; scientific for scales outside 1e-3..1e5.
pub(super) fn format_at_scale(v: f32, scale: f32) -> String {
    if !v.is_finite() || v == 0.0 && scale == 0.0 {
        return format!("{v}");
    }
    if !(1e-3..1e5).contains(&scale) {
        return format!("{v:.1e}");
    }
    let magnitude = scale.log10().floor() as i32;
    let decimals = if magnitude >= 1 {
        0
    } else {
        (1 - magnitude).clamp(2, 4) as usize
    };
    format!("{v:.decimals$}")
}

/// An axis tick: whole numbers without decimals (`5`, not `5.0`), others as they are.
pub(super) fn format_tick(v: &f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_ignore_non_finite_values_and_widen_constants() {
        assert_eq!(
            finite_min_max([f32::NAN, 2.0, -1.0, f32::INFINITY]),
            Some((-1.0, 2.0))
        );
        assert_eq!(finite_min_max([f32::NAN]), None);
        assert_eq!(max_abs([f32::NAN, -3.0, 2.0]), 3.0);
        assert_eq!(axis_range(None, 0.1), 0.0..1.0);
        assert_eq!(axis_range(Some((0.0, 0.0)), 0.1), -1.0..1.0);
        assert_eq!(axis_range(Some((2.0, 2.0)), 0.1), 1.0..3.0);
        assert_eq!(axis_range(Some((0.0, 10.0)), 0.1), -1.0..11.0);
    }

    #[test]
    fn runs_break_at_non_finite_points() {
        let runs = finite_runs([(0.0, 1.0), (1.0, f32::NAN), (2.0, 3.0), (3.0, 4.0)]);
        assert_eq!(runs, vec![vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0)]]);
        assert!(finite_runs([(f32::NAN, 0.0)]).is_empty());
    }

    #[test]
    fn values_format_short() {
        assert_eq!(format_value(0.1234), "0.12");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(f32::NAN), "NaN");
        assert_eq!(format_value(12345.0), "1.2e4");
        assert_eq!(format_at_scale(0.00058, 0.92), "0.00");
        assert_eq!(format_at_scale(0.5, 1.0), "0.50");
        assert_eq!(format_at_scale(0.012, 0.05), "0.012");
        assert_eq!(format_at_scale(12.34, 40.0), "12");
        assert_eq!(format_at_scale(3e-5, 1e-4), "3.0e-5");
        assert_eq!(format_at_scale(0.0, 0.0), "0");
        assert_eq!(format_at_scale(f32::NAN, 1.0), "NaN");
        assert_eq!(format_tick(&5.0), "5");
        assert_eq!(format_tick(&2.5), "2.5");
    }
}
