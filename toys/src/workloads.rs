//! The benchmark workloads of WORKLOADS.md ("Benchmark cases"): each case's model, data and
//! L3D settings, and the `mlp-wide` model they use. The benches (`benches/`) time them and a
//! test (`tests/fast_path_workloads.rs`) checks the fast path on them.

use crate::data::{self, DataSpec};
use crate::digits::train::DigitsKind;
use crate::induction::{self, RepeatedSpans};
use crate::init::pytorch_default_init;
use crate::models::{kaiming_uniform, mlp, seeded, Stream, ToyKind, ToyModel};
use l3d::{Divergence, L3dConfig, StepPath};
use nets::{Activation, Architecture, Sequential};
use rand::Rng;
use tensor::{rng, Tensor};

/// A benchmark case of WORKLOADS.md. Names (`name`, clap) are the table's: `tms`, `squared`,
/// `mlp-wide`, `per-sample-grad`, `cnn`, `attention`.
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
    /// The digits CNN ([`cnn_bench`]) on 1,024 uniform `[1, 8, 8]` images, `n_v = 16`, rank
    /// 2 (biases 1), batch 64, KL.
    Cnn,
    /// The attention-only transformer ([`attention_bench`]) on 1,024 random token sequences
    /// of length 32, `n_v = 16`, rank 2, batch 32, KL summed over positions.
    Attention,
}

impl BenchCase {
    pub const ALL: [BenchCase; 6] = [
        BenchCase::Tms,
        BenchCase::Squared,
        BenchCase::MlpWide,
        BenchCase::PerSampleGrad,
        BenchCase::Cnn,
        BenchCase::Attention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchCase::Tms => "tms",
            BenchCase::Squared => "squared",
            BenchCase::MlpWide => "mlp-wide",
            BenchCase::PerSampleGrad => "per-sample-grad",
            BenchCase::Cnn => "cnn",
            BenchCase::Attention => "attention",
        }
    }

    /// The model: the toys freshly initialised from seed 0, `mlp-wide` from its seed 0, the
    /// CNN and the transformer with PyTorch's default initialisation from seed 0.
    pub fn model(self) -> Sequential<f32> {
        match self {
            BenchCase::Tms => ToyModel::untrained(ToyKind::Tms, 0).model,
            BenchCase::Squared => gelu_squared_bench(0),
            BenchCase::MlpWide | BenchCase::PerSampleGrad => mlp_wide(MLP_WIDE_SEED),
            BenchCase::Cnn => cnn_bench(0),
            BenchCase::Attention => attention_bench(0),
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
            BenchCase::Cnn => Tensor::uniform(&[1024, 1, 8, 8], 0.0, 1.0, &mut r),
            BenchCase::Attention => Tensor::from_fn(&[1024, ATTENTION_T], |_| {
                r.gen_range(0..ATTENTION_VOCAB) as f32
            }),
        }
    }

    /// The L3D settings: the case's `n_v`, rank, batch and divergence (KL for the CNN and
    /// the transformer, summed over every position), the paper's settings otherwise: every
    /// tensor decomposed, vectors at rank 1, the reference another sample of the batch.
    pub fn config(self, path: StepPath) -> L3dConfig {
        let (n_subnetworks, rank, batch_size) = match self {
            BenchCase::Tms => (5, 1, 32),
            BenchCase::Squared => (5, 2, 32),
            BenchCase::MlpWide => (32, 4, 64),
            BenchCase::PerSampleGrad => (32, 4, 256),
            BenchCase::Cnn => (16, 2, 64),
            BenchCase::Attention => (16, 2, 32),
        };
        let divergence = match self {
            BenchCase::Cnn | BenchCase::Attention => Divergence::Kl,
            _ => Divergence::Mse,
        };
        L3dConfig {
            n_subnetworks,
            rank,
            batch_size,
            divergence,
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

/// The `attention` case's sequence length and vocabulary.
pub const ATTENTION_T: usize = 32;
pub const ATTENTION_VOCAB: usize = 64;

/// The `cnn` benchmark case's model, the digits CNN of WORKLOADS.md
/// (`examples/models/cnn.toml`): `[1, 8, 8]` images, conv 3x3 to 8 channels with padding 1
/// (`0`), ReLU, 2x2 max pool, flatten (128), linear to 10 logits (`4`); PyTorch's default
/// initialisation from `seed` ([`crate::init::pytorch_default_init`]).
pub fn cnn_bench(seed: u64) -> Sequential<f32> {
    with_default_init(DigitsKind::DigitsCnn.architecture(), seed)
}

/// The `attention` benchmark case's model, the attention-only transformer of WORKLOADS.md
/// (`examples/models/transformer.toml`): token embedding `[64, 16]` and positional embedding
/// `[32, 16]`, two residual causal one-head attention layers with separate q, k, v, o
/// projections `16 x 16` without bias, no layer norm, an unembedding `16 -> 64` without
/// bias; PyTorch's default initialisation from `seed` ([`crate::init::pytorch_default_init`]).
pub fn attention_bench(seed: u64) -> Sequential<f32> {
    let spec = RepeatedSpans {
        vocab: ATTENTION_VOCAB,
        context: ATTENTION_T,
        ..RepeatedSpans::default()
    };
    with_default_init(induction::architecture(&spec), seed)
}

fn with_default_init(arch: Architecture, seed: u64) -> Sequential<f32> {
    let params = pytorch_default_init(&arch, &mut seeded(seed, Stream::Init));
    Sequential::new(arch, params).expect("pytorch_default_init follows the slots")
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
            assert_eq!(x.shape()[1..], model.input_shape()[..]);
            assert!(x.shape()[0] >= config.batch_size);
        }
        let wide = BenchCase::MlpWide.model();
        let count: usize = wide.params().iter().map(|p| p.numel()).sum();
        assert_eq!(count, 98_880);
    }

    #[test]
    fn the_cnn_and_the_transformer_have_the_shapes_of_workloads_md() {
        let shapes = |m: &Sequential<f32>| -> Vec<Vec<usize>> {
            m.params().iter().map(|p| p.shape().to_vec()).collect()
        };
        let cnn = BenchCase::Cnn.model();
        assert_eq!(
            shapes(&cnn),
            [vec![8, 1, 3, 3], vec![8], vec![10, 128], vec![10]]
        );
        // PyTorch's bound for the kernel: 1/sqrt(1 * 3 * 3).
        let kernel = cnn.params()[0].data();
        assert!(kernel.iter().all(|v| v.abs() <= 1.0 / 3.0));
        assert!(kernel.iter().any(|v| v.abs() > 0.25));
        let images = BenchCase::Cnn.data();
        assert!(images.data().iter().all(|&v| (0.0..=1.0).contains(&v)));

        let tf = BenchCase::Attention.model();
        let mut expected = vec![vec![64, 16], vec![32, 16]];
        expected.extend(std::iter::repeat_n(vec![16, 16], 8));
        expected.push(vec![64, 16]);
        assert_eq!(shapes(&tf), expected);
        // The token table is N(0, 1), the projections within 1/sqrt(16).
        assert!(tf.params()[0].data().iter().any(|v| v.abs() > 1.0));
        assert!(tf.params()[2].data().iter().all(|v| v.abs() <= 0.25));
        let tokens = BenchCase::Attention.data();
        assert_eq!(tokens.shape(), [1024, 32]);
        assert!(tokens
            .data()
            .iter()
            .all(|&v| v == v.floor() && (0.0..64.0).contains(&v)));
        assert_eq!(
            BenchCase::Attention.config(StepPath::Fast).divergence,
            Divergence::Kl
        );
    }
}
