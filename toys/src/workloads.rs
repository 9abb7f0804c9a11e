//! The benchmark workloads of WORKLOADS.md ("Benchmark cases"): each case's model, data and
//! L3D settings, and the `mlp-wide` model they use. The benches (`benches/`) time them and a
//! test (`tests/fast_path_workloads.rs`) checks the fast path on them.

use crate::data::{self, DataSpec};
use crate::models::{kaiming_uniform, mlp, seeded, Stream, ToyKind, ToyModel};
use l3d::{L3dConfig, StepPath};
use nets::{Activation, Sequential};
use tensor::{rng, Tensor};

/// A benchmark case of WORKLOADS.md. Names (`name`, clap) are the table's: `tms`, `squared`,
/// `mlp-wide`, `per-sample-grad`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum BenchCase {
    /// Freshly initialised `tms`, `n_v = 5`, rank 1, batch 32, 1,000 samples per epoch.
    Tms,
    /// The earlier GELU `squared` network (`5 -> 5 x 4 -> 5`, [`gelu_squared_bench`]) freshly
    /// initialised, `n_v = 5`, rank 2, batch 32, 1,000 samples.
    Squared,
    /// `mlp-wide` (seed 0), `n_v = 32`, rank 4, batch 64, 1,024 N(0, 1) samples.
    MlpWide,
    /// `mlp-wide`'s per-sample gradients only, materialised, batch 256.
    PerSampleGrad,
}

impl BenchCase {
    pub const ALL: [BenchCase; 4] = [
        BenchCase::Tms,
        BenchCase::Squared,
        BenchCase::MlpWide,
        BenchCase::PerSampleGrad,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchCase::Tms => "tms",
            BenchCase::Squared => "squared",
            BenchCase::MlpWide => "mlp-wide",
            BenchCase::PerSampleGrad => "per-sample-grad",
        }
    }

    /// The model: the toys freshly initialised from seed 0, `mlp-wide` from its seed 0.
    pub fn model(self) -> Sequential<f32> {
        match self {
            BenchCase::Tms => ToyModel::untrained(ToyKind::Tms, 0).model,
            BenchCase::Squared => gelu_squared_bench(0),
            BenchCase::MlpWide | BenchCase::PerSampleGrad => mlp_wide(MLP_WIDE_SEED),
        }
    }

    /// The samples of one epoch (one batch for `per-sample-grad`), drawn from seed 1.
    pub fn data(self) -> Tensor<f32> {
        let mut r = rng(1);
        match self {
            BenchCase::Tms => data::sample(&ToyKind::Tms.data(), 1000, &mut r),
            BenchCase::Squared => data::sample(&ToyKind::Squared.data(), 1000, &mut r),
            BenchCase::MlpWide => data::sample(&mlp_wide_data(), 1024, &mut r),
            BenchCase::PerSampleGrad => data::sample(&mlp_wide_data(), 256, &mut r),
        }
    }

    /// The L3D settings: the case's `n_v`, rank and batch, the paper's settings otherwise.
    pub fn config(self, path: StepPath) -> L3dConfig {
        let (n_subnetworks, rank, batch_size) = match self {
            BenchCase::Tms => (5, 1, 32),
            BenchCase::Squared => (5, 2, 32),
            BenchCase::MlpWide => (32, 4, 64),
            BenchCase::PerSampleGrad => (32, 4, 256),
        };
        L3dConfig {
            n_subnetworks,
            rank,
            batch_size,
            path,
            ..Default::default()
        }
    }
}

/// The `mlp-wide` benchmark model's seed (WORKLOADS.md).
pub const MLP_WIDE_SEED: u64 = 0;

/// The `mlp-wide` benchmark model: `64 -> 256 -> 256 -> 64` (`layers.0` .. `layers.2`), GELU
/// on the hidden layers, linear output, 98,880 parameters. Weights Kaiming-normal,
/// `N(0, 2 / fan_in)`; biases 0 (the usual companion of a Kaiming-normal weight init).
pub fn mlp_wide(seed: u64) -> Sequential<f32> {
    let arch = mlp(&[64, 256, 256, 64], Activation::Gelu, false);
    let mut rng = seeded(seed, Stream::Init);
    let (slots, _) = arch.slots().expect("mlp-wide's widths fit");
    let params = slots
        .iter()
        .map(|slot| match slot.shape[..] {
            [_, fan_in] => Tensor::randn(&slot.shape, (2.0 / fan_in as f64).sqrt(), &mut rng),
            _ => Tensor::zeros(&slot.shape),
        })
        .collect();
    Sequential::new(arch, params).expect("the parameters follow the slots")
}

/// The `squared` benchmark case's model (WORKLOADS.md, kept for comparable speed
/// measurements; not the toy): `5 -> 5 -> 5 -> 5 -> 5 -> 5`, GELU after each hidden layer,
/// linear output, PyTorch's default initialisation from `seed`.
pub fn gelu_squared_bench(seed: u64) -> Sequential<f32> {
    let arch = mlp(&[5, 5, 5, 5, 5, 5], Activation::Gelu, false);
    let params = kaiming_uniform(&arch, &mut seeded(seed, Stream::Init));
    Sequential::new(arch, params).expect("kaiming_uniform follows the architecture's slots")
}

/// `mlp-wide`'s inputs: `N(0, 1)`, 64 wide.
pub fn mlp_wide_data() -> DataSpec {
    DataSpec::normal(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nets::Model;

    #[test]
    fn names_match_clap_and_the_cases_build() {
        for case in BenchCase::ALL {
            let parsed = <BenchCase as clap::ValueEnum>::from_str(case.name(), false);
            assert_eq!(parsed, Ok(case));
            let config = case.config(StepPath::Fast);
            let (model, x) = (case.model(), case.data());
            assert_eq!(x.shape()[1], model.input_dim());
            assert!(x.shape()[0] >= config.batch_size);
        }
        let wide = BenchCase::MlpWide.model();
        let count: usize = wide.params().iter().map(|p| p.numel()).sum();
        assert_eq!(count, 98_880);
    }
}
