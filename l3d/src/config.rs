//! The settings of a decomposition, with the paper's defaults, and their validation.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// The divergence `D(f(x_i, W), r)` whose per-sample gradient at `W0` is decomposed.
///
/// Its names (in config files and in `--divergence`) are `mse`, `mse-authors` and `kl`;
/// config files written before the names matched the flags (`mse_authors`) still load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Divergence {
    /// The paper's MSE, `mean_j (f_j - r_j)^2`: gradient `2/n_out J^T (f - r)`.
    Mse,
    /// The variant of the authors' toy scripts, `mean_j f_j (f_j - r_j)` with `r` fixed:
    /// gradient `1/n_out J^T (2 f - r)`. Offered to compare with the paper's toy numbers.
    #[serde(alias = "mse_authors")]
    MseAuthors,
    /// `KL(softmax(r) || softmax(f))` for logit outputs.
    Kl,
}

/// Which reference output `r` a sample is compared with.
///
/// Its names (in config files and in `--reference`) are `random`, `random-with-self`, `mean`
/// and `zero`; the older names of config files (`random_sample`, `random_with_self`,
/// `batch_mean`) still load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reference {
    /// `r = f(x_r, W0)` for another sample `x_r` of the same batch, drawn uniformly among the
    /// other samples (`r != i`, so no pair has a zero gradient by construction). The paper's
    /// choice.
    #[serde(rename = "random", alias = "random_sample")]
    RandomSample,
    /// `r = f(x_r, W0)` for a sample `x_r` drawn uniformly from the whole batch, the sample
    /// itself included, as the authors' code draws it (a pair `(i, i)` has a zero gradient
    /// under the paper's MSE and KL). Offered to compare with the authors' numbers.
    #[serde(rename = "random-with-self", alias = "random_with_self")]
    RandomWithSelf,
    /// The batch's mean output (for KL: the mean of the softmaxes).
    #[serde(rename = "mean", alias = "batch_mean")]
    BatchMean,
    /// The zero output (for KL: the uniform distribution).
    #[serde(rename = "zero")]
    Zero,
}

impl Reference {
    /// Whether each sample's reference is another sample's output (drawn per batch).
    pub fn draws_partners(self) -> bool {
        matches!(self, Reference::RandomSample | Reference::RandomWithSelf)
    }

    /// The fewest samples a batch needs: 2 when the partner must be another sample.
    pub fn min_batch(self) -> usize {
        if self == Reference::RandomSample {
            2
        } else {
            1
        }
    }
}

/// Which positions of a sequence output the divergence sums over (see [`crate::pairs`]).
///
/// A sequence model maps one sample (a sequence) to outputs per position, `[T, ..]` (logits
/// `[T, vocab]`); its divergence to the reference sequence's outputs is the sum over the
/// chosen positions `t` of the per-position divergence. Outputs without a position axis
/// (`[d_out]`) take only [`Positions::All`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// Every position: `D = sum_t D_t` (for an output `[d_out]`, the paper's `D` itself).
    #[default]
    All,
    /// The last position only, `D = D_{T-1}`: the next-token prediction of the whole sequence.
    Last,
    /// The listed positions (each once, `0..T`): `D = sum_{t in list} D_t`.
    Chosen(Vec<usize>),
}

impl Positions {
    /// Reads a flag's value: `all`, `last`, or a comma-separated list of positions (`0,5,7`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(Positions::All),
            "last" => Ok(Positions::Last),
            list => list
                .split(',')
                .map(|p| p.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map(Positions::Chosen)
                .map_err(|_| {
                    format!("positions '{s}': expected all, last, or a list such as 0,5,7")
                }),
        }
    }
}

/// How many of the `N = B n_v` coefficients batch top-k keeps for a fraction `k`.
///
/// Its names are `ceil` and `floor-plus-one` (older config files: `floor_plus_one`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopKCount {
    /// `ceil(k N)` (at least 1): exactly the fraction where `k N` is whole.
    #[default]
    Ceil,
    /// `floor(k N) + 1`, as the authors' code counts (one more than the fraction where `k N`
    /// is whole). Offered to compare with the authors' numbers.
    #[serde(alias = "floor_plus_one")]
    FloorPlusOne,
}

/// How `k` moves during the warm start (the first `warm_start_epochs` epochs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmStart {
    /// `k` falls linearly from 1 to `top_k`.
    #[default]
    Linear,
    /// `k` is held at 0.999 (nearly every coefficient kept), then drops to `top_k`, as in the
    /// authors' code. Offered to compare with the authors' numbers.
    Hold,
}

/// The names of a setting's values, as the flags and config files spell them: `name` and
/// `parse` are inverses, and `NAMES` lists every value for messages.
pub trait SettingName: Sized + Copy + 'static {
    /// Every value with its name, in the order messages list them.
    const NAMES: &'static [(&'static str, Self)];

    /// The value's name (`mse-authors`, `random`).
    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::NAMES
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .expect("every value has a name")
    }

    /// The value of a name, if it is one.
    fn parse(s: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    /// The names, comma-separated, for messages.
    fn listed() -> String {
        Self::NAMES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl SettingName for Divergence {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("mse", Divergence::Mse),
        ("mse-authors", Divergence::MseAuthors),
        ("kl", Divergence::Kl),
    ];
}

impl SettingName for Reference {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("random", Reference::RandomSample),
        ("random-with-self", Reference::RandomWithSelf),
        ("mean", Reference::BatchMean),
        ("zero", Reference::Zero),
    ];
}

impl SettingName for TopKCount {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("ceil", TopKCount::Ceil),
        ("floor-plus-one", TopKCount::FloorPlusOne),
    ];
}

impl SettingName for WarmStart {
    const NAMES: &'static [(&'static str, Self)] =
        &[("linear", WarmStart::Linear), ("hold", WarmStart::Hold)];
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for TopKCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for WarmStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a training step is computed. Both give the same numbers up to floating-point rounding
/// (`tests/all/fast_path.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPath {
    /// The reference: dense per-sample gradients and the step recorded on the tape
    /// ([`crate::step::tape_step`]).
    Tape,
    /// Factored per-sample gradients, the loss from inner products, reused buffers
    /// ([`crate::fast`]).
    #[default]
    Fast,
}

/// Everything that decides a decomposition. `seed` plus this config reproduce a run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct L3dConfig {
    /// Number of subnetworks `n_v`.
    pub n_subnetworks: usize,
    /// CP rank `R` of every tensor with two or more modes. Vectors (biases) always use rank 1:
    /// a sum of rank-one vectors is one vector.
    pub rank: usize,
    /// Per-tensor ranks overriding `rank`, by parameter name.
    pub ranks: BTreeMap<String, usize>,
    /// Fraction `k` of the `B x n_v` coefficients kept by batch top-k.
    pub top_k: f64,
    pub epochs: usize,
    pub batch_size: usize,
    /// AdamW learning rate at epoch 0.
    pub lr: f64,
    /// The learning rate is multiplied by `lr_gamma` every `lr_step` epochs (0: never).
    pub lr_gamma: f64,
    pub lr_step: usize,
    pub weight_decay: f64,
    /// During the first `warm_start_epochs` epochs, `k` follows `warm_start` towards `top_k`.
    pub warm_start_epochs: usize,
    pub warm_start: WarmStart,
    /// How `k` turns into a count of kept coefficients.
    pub top_k_count: TopKCount,
    pub divergence: Divergence,
    pub reference: Reference,
    /// For a sequence model, the positions whose divergences are summed ([`Positions`]).
    pub positions: Positions,
    /// Parameter tensors to decompose, by name; empty means all of them.
    pub decompose: Vec<String>,
    pub seed: u64,
    /// How each step is computed (the results agree to rounding; see [`StepPath`]).
    pub path: StepPath,
}

impl Default for L3dConfig {
    /// The paper's settings: `n_v = 5`, rank 1, `k = 0.1`, 1,000 epochs of batch 32, AdamW at
    /// lr 0.01 decayed by 0.8 every 100 epochs, MSE against a random in-batch reference.
    fn default() -> Self {
        Self {
            n_subnetworks: 5,
            rank: 1,
            ranks: BTreeMap::new(),
            top_k: 0.1,
            epochs: 1000,
            batch_size: 32,
            lr: 0.01,
            lr_gamma: 0.8,
            lr_step: 100,
            weight_decay: 0.0,
            warm_start_epochs: 0,
            warm_start: WarmStart::Linear,
            top_k_count: TopKCount::Ceil,
            divergence: Divergence::Mse,
            reference: Reference::RandomSample,
            positions: Positions::All,
            decompose: Vec::new(),
            seed: 0,
            path: StepPath::Fast,
        }
    }
}

/// A config that cannot be run, and why.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid config: {field} = {value}: {why}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub why: String,
}

fn bad(field: &'static str, value: impl ToString, why: &str) -> ConfigError {
    ConfigError {
        field,
        value: value.to_string(),
        why: why.into(),
    }
}

impl L3dConfig {
    /// Checks every setting on its own (the model- and data-dependent checks happen when a
    /// decomposition is built and trained).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.n_subnetworks == 0 {
            return Err(bad("n_subnetworks", 0, "needs at least one subnetwork"));
        }
        if self.rank == 0 {
            return Err(bad("rank", 0, "the CP rank must be at least 1"));
        }
        if let Some((name, _)) = self.ranks.iter().find(|(_, &r)| r == 0) {
            return Err(bad("ranks", name, "the CP rank must be at least 1"));
        }
        if !(self.top_k > 0.0 && self.top_k <= 1.0) {
            return Err(bad("top_k", self.top_k, "must lie in (0, 1]"));
        }
        if self.batch_size < self.reference.min_batch() {
            return Err(bad(
                "batch_size",
                self.batch_size,
                "a random reference among the other samples needs batches of at least 2",
            ));
        }
        if self.batch_size == 0 {
            return Err(bad("batch_size", 0, "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr, "must be a positive number"));
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0) {
            return Err(bad("lr_gamma", self.lr_gamma, "must be a positive number"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad("weight_decay", self.weight_decay, "must be >= 0"));
        }
        if let Positions::Chosen(list) = &self.positions {
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if list.is_empty() || sorted.len() != list.len() {
                let why = "list at least one position, each once";
                return Err(bad("positions", format!("{list:?}"), why));
            }
        }
        Ok(())
    }

    /// The rank used for a tensor of the given name and number of modes.
    pub fn rank_for(&self, name: &str, modes: usize) -> usize {
        match self.ranks.get(name) {
            Some(&r) => r,
            None if modes <= 1 => 1,
            None => self.rank,
        }
    }

    /// The top-k fraction in force at `epoch` (see [`WarmStart`]).
    pub fn top_k_at(&self, epoch: usize) -> f64 {
        if epoch >= self.warm_start_epochs {
            return self.top_k;
        }
        match self.warm_start {
            WarmStart::Linear => {
                let t = epoch as f64 / self.warm_start_epochs as f64;
                1.0 - (1.0 - self.top_k) * t
            }
            WarmStart::Hold => 0.999,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_settings_are_named() {
        let ok = L3dConfig::default();
        assert!(ok.validate().is_ok());
        let cases = [
            (
                "n_subnetworks",
                L3dConfig {
                    n_subnetworks: 0,
                    ..ok.clone()
                },
            ),
            (
                "rank",
                L3dConfig {
                    rank: 0,
                    ..ok.clone()
                },
            ),
            (
                "top_k",
                L3dConfig {
                    top_k: 0.0,
                    ..ok.clone()
                },
            ),
            (
                "top_k",
                L3dConfig {
                    top_k: 1.5,
                    ..ok.clone()
                },
            ),
            (
                "top_k",
                L3dConfig {
                    top_k: f64::NAN,
                    ..ok.clone()
                },
            ),
            (
                "batch_size",
                L3dConfig {
                    batch_size: 1,
                    ..ok.clone()
                },
            ),
            (
                "lr",
                L3dConfig {
                    lr: -1.0,
                    ..ok.clone()
                },
            ),
            (
                "positions",
                L3dConfig {
                    positions: Positions::Chosen(vec![]),
                    ..ok.clone()
                },
            ),
            (
                "positions",
                L3dConfig {
                    positions: Positions::Chosen(vec![3, 1, 3]),
                    ..ok.clone()
                },
            ),
        ];
        for (field, config) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn positions_parse_from_a_flag_and_round_trip_through_json() {
        assert_eq!(Positions::parse("all"), Ok(Positions::All));
        assert_eq!(Positions::parse("last"), Ok(Positions::Last));
        assert_eq!(
            Positions::parse("0, 5,7"),
            Ok(Positions::Chosen(vec![0, 5, 7]))
        );
        assert!(Positions::parse("first").unwrap_err().contains("0,5,7"));
        for p in [
            Positions::All,
            Positions::Last,
            Positions::Chosen(vec![2, 0]),
        ] {
            let c = L3dConfig {
                positions: p,
                ..Default::default()
            };
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<L3dConfig>(&json).unwrap(), c);
        }
    }

    #[test]
    fn warm_start_falls_linearly_to_k() {
        let c = L3dConfig {
            warm_start_epochs: 4,
            top_k: 0.2,
            ..Default::default()
        };
        assert_eq!(c.top_k_at(0), 1.0);
        assert!((c.top_k_at(2) - 0.6).abs() < 1e-12);
        assert_eq!(c.top_k_at(4), 0.2);
        let held = L3dConfig {
            warm_start: WarmStart::Hold,
            ..c
        };
        assert_eq!((held.top_k_at(0), held.top_k_at(3)), (0.999, 0.999));
        assert_eq!(held.top_k_at(4), 0.2);
    }

    #[test]
    fn names_match_the_flags_and_old_config_files_still_load() {
        for &(name, d) in Divergence::NAMES {
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{name}\""));
            assert_eq!(
                (d.to_string(), Divergence::parse(name)),
                (name.to_string(), Some(d))
            );
        }
        for &(name, r) in Reference::NAMES {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{name}\""));
            assert_eq!(Reference::parse(name), Some(r));
        }
        for &(name, c) in TopKCount::NAMES {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{name}\""));
        }
        let old = r#"{"divergence": "mse_authors", "reference": "random_sample",
                     "top_k_count": "floor_plus_one"}"#;
        let c: L3dConfig = serde_json::from_str(old).unwrap();
        assert_eq!(
            (c.divergence, c.reference, c.top_k_count),
            (
                Divergence::MseAuthors,
                Reference::RandomSample,
                TopKCount::FloorPlusOne
            )
        );
        for (old, new) in [
            ("random_with_self", "random-with-self"),
            ("batch_mean", "mean"),
        ] {
            let a: Reference = serde_json::from_str(&format!("\"{old}\"")).unwrap();
            let b: Reference = serde_json::from_str(&format!("\"{new}\"")).unwrap();
            assert_eq!(a, b);
        }
    }
}
