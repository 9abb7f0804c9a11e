//! The input distributions of WORKLOADS.md.
//!
//! # Legend
//!
//! - `n`: number of input features (the width of a row).
//! - `p`: probability that a feature (or a group of features) is active in a row.
//! - `g`: group size; activity is drawn once per group of `g` consecutive features.
//!
//! # Conventions
//!
//! - An active value is drawn as `1 - u` with `u ~ U[0, 1)`, so it lies in `(0, 1]` and is
//!   never exactly 0: a feature is active exactly when its value is non-zero, which is how the
//!   model check finds the samples in which a feature is active. With `signed`, the value is
//!   then multiplied by a random sign, so it lies in `[-1, 0) U (0, 1]`.
//! - A row with no active feature is drawn again, so the frequency of a feature in the sampled
//!   rows is `p / (1 - (1 - p)^(n / g))`, not `p` (see [`Sparse::activity_frequency`]).
//! - Draws are serial, row after row and feature after feature, from the generator given, so a
//!   seed gives the same rows on every machine.

use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::Tensor;

/// The paper's probability that a feature is active (its "1 - sparsity").
pub const DEFAULT_P: f64 = 0.05;

/// The sparse generator `sparse(n, p)` with its `signed` and `grouped(g)` variants.
///
/// Invariants (checked by [`DataSpec::validate`]): `n_features > 0`, `0 < p <= 1`, `group > 0`
/// and `group` divides `n_features` (`group = 1`: every feature on its own).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sparse {
    pub n_features: usize,
    pub p: f64,
    #[serde(default)]
    pub signed: bool,
    #[serde(default = "one")]
    pub group: usize,
}

fn one() -> usize {
    1
}

impl Sparse {
    /// `sparse(n, 0.05)`: independent features, non-negative values.
    pub fn new(n_features: usize) -> Self {
        Self {
            n_features,
            p: DEFAULT_P,
            signed: false,
            group: 1,
        }
    }

    pub fn with_p(self, p: f64) -> Self {
        Self { p, ..self }
    }

    /// The `signed` variant: every active value gets a random sign.
    pub fn signed(self) -> Self {
        Self {
            signed: true,
            ..self
        }
    }

    /// The `grouped(g)` variant: activity drawn once per group of `g` consecutive features.
    pub fn grouped(self, g: usize) -> Self {
        Self { group: g, ..self }
    }

    /// The probability that a given feature is active in a sampled row:
    /// `p / (1 - (1 - p)^groups)`, because rows with no active group are drawn again.
    pub fn activity_frequency(&self) -> f64 {
        let groups = (self.n_features / self.group) as i32;
        self.p / (1.0 - (1.0 - self.p).powi(groups))
    }
}

/// Which generator the inputs come from (stored in configs, hence serde).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    Sparse(Sparse),
    /// Independent standard-normal values (the `mlp-wide` benchmark's inputs).
    Normal {
        n_features: usize,
    },
}

impl From<Sparse> for DataSpec {
    fn from(s: Sparse) -> Self {
        Self::Sparse(s)
    }
}

impl DataSpec {
    /// `N(0, 1)` inputs of width `n_features`.
    pub fn normal(n_features: usize) -> Self {
        Self::Normal { n_features }
    }

    pub fn n_features(&self) -> usize {
        match self {
            Self::Sparse(s) => s.n_features,
            Self::Normal { n_features } => *n_features,
        }
    }

    /// Checks the invariants of the spec; the message names the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        let n_features = self.n_features();
        if n_features == 0 {
            return Err("n_features must be > 0".into());
        }
        let Self::Sparse(s) = self else {
            return Ok(());
        };
        if !(s.p > 0.0 && s.p <= 1.0) {
            Err(format!("p must be in (0, 1], is {}", s.p))
        } else if s.group == 0 || !n_features.is_multiple_of(s.group) {
            Err(format!(
                "group size {} must be > 0 and divide n_features {n_features}",
                s.group
            ))
        } else {
            Ok(())
        }
    }
}

/// `n_rows` rows drawn from `spec`: `[n_rows, n_features]`.
///
/// Panics if `spec` breaks its invariants (a bug in the caller: specs read from files are
/// checked with [`DataSpec::validate`] first).
pub fn sample(spec: &DataSpec, n_rows: usize, rng: &mut impl Rng) -> Tensor<f32> {
    if let Err(msg) = spec.validate() {
        panic!("sample: invalid data spec {spec:?}: {msg}");
    }
    match spec {
        DataSpec::Normal { n_features } => Tensor::randn(&[n_rows, *n_features], 1.0, rng),
        DataSpec::Sparse(s) => {
            let mut out = Tensor::zeros(&[n_rows, s.n_features]);
            for row in out.data_mut().chunks_exact_mut(s.n_features) {
                sparse_row(row, s, rng);
            }
            out
        }
    }
}

/// Fills `row` (all zeros on entry) with one sparse row, drawing again until some group is
/// active.
fn sparse_row(row: &mut [f32], spec: &Sparse, rng: &mut impl Rng) {
    loop {
        let mut any = false;
        for block in row.chunks_exact_mut(spec.group) {
            if !rng.gen_bool(spec.p) {
                continue;
            }
            any = true;
            for v in block {
                let magnitude = 1.0 - rng.gen::<f64>();
                let sign = if spec.signed && rng.gen_bool(0.5) {
                    -1.0
                } else {
                    1.0
                };
                *v = (sign * magnitude) as f32;
            }
        }
        if any {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::rng;

    /// Fraction of non-zero entries in each column.
    fn column_frequencies(x: &Tensor<f32>) -> Vec<f64> {
        let n = x.shape()[1];
        let mut counts = vec![0usize; n];
        for row in x.rows() {
            for (c, v) in counts.iter_mut().zip(row) {
                *c += usize::from(*v != 0.0);
            }
        }
        let rows = x.shape()[0] as f64;
        counts.iter().map(|&c| c as f64 / rows).collect()
    }

    #[test]
    fn activity_frequency_matches_p_after_redrawing_empty_rows() {
        // Each column's activity over N rows is a binomial count with probability q (the
        // frequency after redrawing empty rows), so its frequency has standard deviation
        // sqrt(q (1 - q) / N). N = 40,000 and q = 0.05 / (1 - 0.95^10) = 0.1246 give
        // sigma = 0.00165; allowing 5 sigma (0.0083) makes a false failure less likely than
        // 1e-6 per column while still catching a wrong q (p itself, 0.05, is 45 sigma away).
        let spec = Sparse::new(10);
        let n = 40_000;
        let x = sample(&spec.into(), n, &mut rng(3));
        let q = spec.activity_frequency();
        let sigma = (q * (1.0 - q) / n as f64).sqrt();
        for (j, f) in column_frequencies(&x).into_iter().enumerate() {
            assert!((f - q).abs() < 5.0 * sigma, "feature {j}: {f} vs {q}");
        }
    }

    #[test]
    fn activity_frequency_for_p_one_half() {
        // Same bound as above with another p, so the test does not only pass at 0.05:
        // q = 0.5 / (1 - 0.5^4) = 0.5333, sigma = sqrt(q (1 - q) / N) = 0.0035 at N = 20,000.
        let spec = Sparse::new(4).with_p(0.5);
        let n = 20_000;
        let x = sample(&spec.into(), n, &mut rng(4));
        let q = spec.activity_frequency();
        let sigma = (q * (1.0 - q) / n as f64).sqrt();
        for f in column_frequencies(&x) {
            assert!((f - q).abs() < 5.0 * sigma, "{f} vs {q}");
        }
    }

    #[test]
    fn no_row_is_all_zero_and_values_are_in_range() {
        let plain = sample(&Sparse::new(5).into(), 5_000, &mut rng(1));
        assert!(plain.rows().all(|r| r.iter().any(|&v| v != 0.0)));
        assert!(plain.data().iter().all(|&v| (0.0..=1.0).contains(&v)));

        let signed = sample(&Sparse::new(5).signed().into(), 5_000, &mut rng(2));
        assert!(signed.rows().all(|r| r.iter().any(|&v| v != 0.0)));
        assert!(signed.data().iter().all(|&v| (-1.0..=1.0).contains(&v)));
        // Both signs occur among the active values.
        assert!(signed.data().iter().any(|&v| v < 0.0));
        assert!(signed.data().iter().any(|&v| v > 0.0));
    }

    #[test]
    fn grouped_rows_have_whole_groups_active() {
        let spec = Sparse::new(25).grouped(5).into();
        let x = sample(&spec, 5_000, &mut rng(5));
        for row in x.rows() {
            assert!(row.iter().any(|&v| v != 0.0));
            for group in row.chunks_exact(5) {
                let active = group.iter().filter(|&&v| v != 0.0).count();
                assert!(active == 0 || active == 5, "{group:?}");
            }
        }
        // Values are drawn per feature, not once per group.
        let active_group = x
            .rows()
            .flat_map(|r| r.chunks_exact(5))
            .find(|g| g[0] != 0.0)
            .unwrap();
        assert!(active_group.iter().any(|&v| v != active_group[0]));
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        for spec in [
            Sparse::new(5).into(),
            Sparse::new(5).signed().into(),
            Sparse::new(25).grouped(5).into(),
            DataSpec::normal(8),
        ] {
            let a = sample(&spec, 100, &mut rng(9));
            let b = sample(&spec, 100, &mut rng(9));
            let c = sample(&spec, 100, &mut rng(10));
            assert_eq!(a, b, "{spec:?}");
            assert_ne!(a, c, "{spec:?}");
        }
    }

    #[test]
    fn normal_inputs_have_unit_variance() {
        // 20,000 draws of N(0, 1): the sample mean has sigma 0.007 and the sample variance
        // sigma sqrt(2 / N) = 0.01; 5 sigma bounds.
        let x = sample(&DataSpec::normal(4), 5_000, &mut rng(6));
        let n = x.numel() as f64;
        let mean = x.data().iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x
            .data()
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.035, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn invalid_specs_are_named() {
        let invalid = |s: Sparse| DataSpec::from(s).validate().is_err();
        assert!(invalid(Sparse::new(10).grouped(3)));
        assert!(invalid(Sparse::new(10).with_p(0.0)));
        assert!(invalid(Sparse::new(0)));
        assert!(!invalid(Sparse::new(10).grouped(5)));
        assert!(DataSpec::normal(0).validate().is_err());
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = DataSpec::from(Sparse::new(25).grouped(5));
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<DataSpec>(&text).unwrap(), spec);
        // The variants' fields default when a config leaves them out.
        let short: DataSpec =
            serde_json::from_str(r#"{"kind":"sparse","n_features":5,"p":0.05}"#).unwrap();
        assert_eq!(short, DataSpec::from(Sparse::new(5)));
    }
}
