//! The fast step on convolutional and attention models equals the tape step in f64. The fast
//! step takes such models' per-sample gradients from the tape (factored where the tape keeps
//! them factored: the projections of attention; dense otherwise: the 4-way conv kernel, the
//! embedding tables) and then runs its own encode, loss and backward, so three epochs of
//! training on each path must give the same factors and losses, up to rounding.

use l3d::{Decomposition, Divergence, EpochStats, L3dConfig, Positions, StepPath, Trainer};
use nets::{Activation, Architecture, Layer, OutputKind, Pair, Sequential};
use rand::Rng;
use tensor::{rng, Tensor};

/// A model of `arch` with weights `N(0, 0.5)`.
fn model(arch: Architecture, seed: u64) -> Sequential<f64> {
    let (slots, _) = arch.slots().unwrap();
    let mut r = rng(seed);
    let params = slots
        .iter()
        .map(|s| Tensor::randn(&s.shape, 0.5, &mut r))
        .collect();
    Sequential::new(arch, params).unwrap()
}

/// A small digits-like CNN: `[2, 6, 6]` images, conv 3x3 to 3 channels with padding 1 and
/// stride 1, ReLU, 2x2 average pool, flatten (27), linear to 4 logits.
fn cnn() -> Sequential<f64> {
    let layers = vec![
        Layer::Conv2d {
            name: "conv".into(),
            in_channels: 2,
            out_channels: 3,
            kernel_size: Pair(3, 3),
            stride: Pair(1, 1),
            padding: Pair(1, 1),
            dilation: Pair(1, 1),
            bias: true,
        },
        Layer::Activation {
            function: Activation::Relu,
        },
        Layer::AvgPool2d {
            kernel_size: Pair(2, 2),
            stride: None,
            padding: Pair(0, 0),
        },
        Layer::Flatten,
        Layer::Linear {
            name: "fc".into(),
            in_features: 27,
            out_features: 4,
            bias: true,
        },
    ];
    let arch = Architecture {
        input_dim: 0,
        input_shape: vec![2, 6, 6],
        layers,
        output: OutputKind::Logits,
    };
    model(arch, 1)
}

/// Token ids `[T = 4]` of a vocabulary of 5, embeddings of width 4, one residual causal
/// `nn.MultiheadAttention` with two heads, read out through the token table.
fn transformer() -> Sequential<f64> {
    let layers = vec![
        Layer::Embedding {
            name: "tok".into(),
            num_embeddings: 5,
            embedding_dim: 4,
        },
        Layer::PositionalEmbedding {
            name: "pos".into(),
            num_embeddings: 4,
            embedding_dim: 4,
        },
        Layer::Residual {
            block: vec![Layer::MultiheadAttention {
                name: "attn".into(),
                embed_dim: 4,
                num_heads: 2,
                causal: true,
                bias: true,
            }],
        },
        Layer::TiedReadout {
            embedding: "tok".into(),
        },
    ];
    let arch = Architecture {
        input_dim: 0,
        input_shape: vec![4],
        layers,
        output: OutputKind::Logits,
    };
    model(arch, 2)
}

/// Three epochs on `path`: the decomposition and the history.
fn train(
    model: &Sequential<f64>,
    x: &Tensor<f64>,
    positions: &Positions,
    path: StepPath,
) -> (Decomposition<f64>, Vec<EpochStats>) {
    let config = L3dConfig {
        n_subnetworks: 3,
        rank: 2,
        top_k: 0.3,
        epochs: 3,
        batch_size: 8,
        divergence: Divergence::Kl,
        positions: positions.clone(),
        path,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, config, x).unwrap();
    trainer.train(|_| true).unwrap();
    (trainer.decomposition().clone(), trainer.history().to_vec())
}

/// Both paths from the same seed: factors within 1e-8 (Adam divides by the gradients'
/// running RMS, so rounding of 1e-16 in a gradient grows to about 1e-12 in the factors over
/// these steps) and losses within 1e-9.
fn paths_agree(model: &Sequential<f64>, x: &Tensor<f64>, positions: Positions) {
    let (fast, fast_history) = train(model, x, &positions, StepPath::Fast);
    let (tape, tape_history) = train(model, x, &positions, StepPath::Tape);
    for (i, (f, t)) in fast.factors().iter().zip(tape.factors()).enumerate() {
        let scale = t.data().iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let err = f.max_abs_diff(t) / scale;
        assert!(err < 1e-8, "{positions:?}: factor {i} differs by {err:e}");
    }
    for (f, t) in fast_history.iter().zip(&tape_history) {
        assert!((f.loss - t.loss).abs() < 1e-9 * t.loss, "{f:?} vs {t:?}");
        assert_eq!(f.p_act, t.p_act);
    }
}

#[test]
fn fast_equals_tape_on_a_cnn_with_a_four_way_kernel() {
    let model = cnn();
    let x = Tensor::<f64>::uniform(&[24, 2, 6, 6], 0.0, 1.0, &mut rng(3));
    let (d, _) = train(&model, &x, &Positions::All, StepPath::Fast);
    assert_eq!(
        d.names,
        ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    );
    assert_eq!(d.subnetwork(0)[0].shape(), [3, 2, 3, 3]);
    paths_agree(&model, &x, Positions::All);
}

#[test]
fn fast_equals_tape_on_a_transformer_at_every_kind_of_positions() {
    let model = transformer();
    let mut r = rng(4);
    let x = Tensor::<f64>::from_fn(&[24, 4], |_| r.gen_range(0..5) as f64);
    for positions in [
        Positions::All,
        Positions::Last,
        Positions::Chosen(vec![2, 0]),
    ] {
        paths_agree(&model, &x, positions);
    }
}
