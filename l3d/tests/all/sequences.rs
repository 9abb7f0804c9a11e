//! The divergence of a sequence model (see the module docs of `l3d::pairs`): a sample is one
//! sequence, its reference another sequence, and the divergence sums the per-position KLs
//! over the chosen positions. Checked in f64 on a small causal transformer:
//! - over all positions, `g_i` is the sum of the per-position gradients computed separately;
//! - over the last position, `g_i` is the paper's `g_i` of the model that outputs only its
//!   last position;
//! - positions that do not fit the model are refused, and a decomposition trains on both
//!   paths with each choice.

use autodiff::{Tape, Var};
use l3d::pairs::{check_positions, per_sample_gradients_at};
use l3d::{Decomposition, Divergence, L3dConfig, Model, OutputKind, Positions, StepPath, Trainer};
use nets::{Architecture, Layer, Sequential};
use rand::Rng;
use tensor::{rng, Tensor};

/// Vocabulary, context and width of the test transformer.
const VOCAB: usize = 7;
const T: usize = 5;
const D: usize = 4;

/// Token and positional embeddings, one residual causal attention layer with two heads, a
/// linear read-out: logits `[T, VOCAB]` per sequence, weights `N(0, 0.7)`.
fn transformer(seed: u64) -> Sequential<f64> {
    let layers = vec![
        Layer::Embedding {
            name: "tok".into(),
            num_embeddings: VOCAB,
            embedding_dim: D,
        },
        Layer::PositionalEmbedding {
            name: "pos".into(),
            num_embeddings: T,
            embedding_dim: D,
        },
        Layer::Residual {
            block: vec![Layer::Attention {
                name: "attn".into(),
                embed_dim: D,
                num_heads: 2,
                causal: true,
                bias: true,
                projections: ["q", "k", "v", "o"].map(String::from),
            }],
        },
        Layer::Linear {
            name: "out".into(),
            in_features: D,
            out_features: VOCAB,
            bias: true,
        },
    ];
    let arch = Architecture {
        input_dim: 0,
        input_shape: vec![T],
        layers,
        output: OutputKind::Logits,
    };
    let (slots, _) = arch.slots().unwrap();
    let mut r = rng(seed);
    let params = slots
        .iter()
        .map(|s| Tensor::randn(&s.shape, 0.7, &mut r))
        .collect();
    Sequential::new(arch, params).unwrap()
}

/// `n` sequences of token ids.
fn sequences(n: usize, seed: u64) -> Tensor<f64> {
    let mut r = rng(seed);
    Tensor::from_fn(&[n, T], |_| r.gen_range(0..VOCAB) as f64)
}

/// The references of the pairs `(i, i + 1 mod n)`: the next sequence's outputs at `W0`.
fn references(model: &dyn Model<f64>, x: &Tensor<f64>) -> Tensor<f64> {
    let y0 = model.evaluate_w0(x).unwrap();
    let n = x.shape()[0];
    y0.gather_rows(&(0..n).map(|i| (i + 1) % n).collect::<Vec<_>>())
}

/// Dense per-sample gradients of every parameter at `positions`.
fn grads(
    model: &dyn Model<f64>,
    x: &Tensor<f64>,
    r: &Tensor<f64>,
    positions: &Positions,
) -> Vec<Tensor<f64>> {
    let all: Vec<usize> = (0..model.params().len()).collect();
    per_sample_gradients_at(model, &all, x, r, Divergence::Kl, positions)
        .unwrap()
        .into_iter()
        .map(|g| g.into_dense())
        .collect()
}

/// `max |a - b| <= 1e-12 max(max |b|, 0.1)`: the same sums in another order.
fn assert_close(a: &[Tensor<f64>], b: &[Tensor<f64>], what: &str) {
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        assert_eq!(a.shape(), b.shape(), "{what}: tensor {i}");
        let scale = b.data().iter().fold(0.1f64, |m, v| m.max(v.abs()));
        let err = a.max_abs_diff(b) / scale;
        assert!(err < 1e-12, "{what}: tensor {i}, relative error {err:e}");
    }
}

#[test]
fn the_summed_kl_is_the_sum_of_the_per_position_kls() {
    let model = transformer(1);
    let x = sequences(4, 2);
    let r = references(&model, &x);
    let summed = grads(&model, &x, &r, &Positions::All);
    let mut by_position: Vec<Tensor<f64>> =
        summed.iter().map(|g| Tensor::zeros(g.shape())).collect();
    for t in 0..T {
        let g = grads(&model, &x, &r, &Positions::Chosen(vec![t]));
        for (acc, g) in by_position.iter_mut().zip(&g) {
            *acc = acc.add(g);
        }
    }
    assert_close(
        &summed,
        &by_position,
        "all positions vs the sum of single positions",
    );
    // A list is the sum of its positions, in any order.
    let listed = grads(&model, &x, &r, &Positions::Chosen(vec![4, 1]));
    let (g1, g4) = (
        grads(&model, &x, &r, &Positions::Chosen(vec![1])),
        grads(&model, &x, &r, &Positions::Chosen(vec![4])),
    );
    let sum: Vec<Tensor<f64>> = g1.iter().zip(&g4).map(|(a, b)| a.add(b)).collect();
    assert_close(&listed, &sum, "positions [4, 1]");
}

/// The transformer reading out only its last position: `[B, VOCAB]`, a model of the paper's
/// kind (one output vector per sample).
struct LastPosition(Sequential<f64>);

impl Model<f64> for LastPosition {
    fn param_names(&self) -> Vec<String> {
        self.0.param_names()
    }
    fn params(&self) -> Vec<&Tensor<f64>> {
        self.0.params()
    }
    fn input_dim(&self) -> usize {
        self.0.input_dim()
    }
    fn output_dim(&self) -> usize {
        VOCAB
    }
    fn input_shape(&self) -> Vec<usize> {
        self.0.input_shape()
    }
    fn output_kind(&self) -> OutputKind {
        OutputKind::Logits
    }
    fn forward(&self, tape: &mut Tape<f64>, p: &[Var], x: Var) -> autodiff::Result<Var> {
        let y = self.0.forward(tape, p, x)?;
        let last = tape.try_slice_axis(y, 1, T - 1..T)?;
        let b = tape.shape(x)[0];
        tape.try_reshape(last, &[b, VOCAB])
    }
}

#[test]
fn the_last_position_is_the_single_position_model() {
    let model = transformer(3);
    let x = sequences(4, 4);
    let r = references(&model, &x);
    let last = grads(&model, &x, &r, &Positions::Last);
    let single = LastPosition(model.clone());
    let r_single = references(&single, &x);
    let paper = grads(&single, &x, &r_single, &Positions::All);
    assert_close(&last, &paper, "positions = last vs the last-position model");
    let chosen = grads(&model, &x, &r, &Positions::Chosen(vec![T - 1]));
    assert_close(&last, &chosen, "last vs [T - 1]");
}

#[test]
fn positions_that_do_not_fit_the_model_are_refused() {
    let model = transformer(5);
    assert!(check_positions(&model, &Positions::Last).is_ok());
    let err = check_positions(&model, &Positions::Chosen(vec![2, T])).unwrap_err();
    assert!(err.to_string().contains("positions 0..5"), "{err}");
    let single = LastPosition(model.clone());
    assert!(check_positions(&single, &Positions::All).is_ok());
    let err = check_positions(&single, &Positions::Last).unwrap_err();
    assert!(err.to_string().contains("needs a sequence model"), "{err}");

    let x = sequences(3, 6);
    let r = references(&model, &x);
    let all: Vec<usize> = (0..model.params().len()).collect();
    let err = per_sample_gradients_at(
        &model,
        &all,
        &x,
        &r,
        Divergence::Kl,
        &Positions::Chosen(vec![9]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("position 9 is not in 0..5"),
        "{err}"
    );
}

/// A few epochs of a decomposition of the transformer, on the tape and the fast path, at
/// every kind of positions: it trains, and both paths give the same first epoch.
#[test]
fn a_sequence_model_decomposes_on_both_paths() {
    let model: Sequential<f32> = transformer(7).cast();
    let x: Tensor<f32> = sequences(16, 8).cast();
    for positions in [
        Positions::All,
        Positions::Last,
        Positions::Chosen(vec![0, 3]),
    ] {
        let mut errors = Vec::new();
        for path in [StepPath::Tape, StepPath::Fast] {
            let config = L3dConfig {
                n_subnetworks: 3,
                rank: 2,
                epochs: 2,
                batch_size: 8,
                divergence: Divergence::Kl,
                positions: positions.clone(),
                path,
                ..Default::default()
            };
            let mut trainer = Trainer::new(&model, config, &x).unwrap();
            trainer.train(|_| true).unwrap();
            let history = &trainer.state.history;
            assert_eq!(history.len(), 2);
            assert!(
                history.iter().all(|h| h.loss.is_finite()),
                "{positions:?} {path:?}"
            );
            errors.push(history[0].reconstruction_error);
            let d: &Decomposition<f32> = &trainer.state.decomposition;
            for (name, t) in d.names.iter().zip(d.subnetwork(0)) {
                let i = model.param_names().iter().position(|n| n == name).unwrap();
                assert_eq!(t.shape(), model.params()[i].shape(), "{name}");
            }
        }
        let (tape, fast) = (errors[0], errors[1]);
        assert!(
            (tape - fast).abs() < 1e-4 * tape.abs().max(1.0),
            "{positions:?}: {tape} vs {fast}"
        );
    }
}
