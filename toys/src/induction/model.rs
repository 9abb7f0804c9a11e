//! The induction transformer: the `attention` workload's model (WORKLOADS.md,
//! examples/models/transformer.toml), trained on [`RepeatedSpans`] with next-token
//! cross-entropy, and what it is measured by: next-token accuracy on each kind of position
//! and the attention patterns of its two heads.
//!
//! # Legend
//!
//! - `x[t]`: the token at position `t`; `E` `tok_emb.weight [V, d]`, `P` `pos_emb.weight
//!   [T, d]`; `h0[t] = E[x[t]] + P[t]`, `h1 = h0 + attn0(h0)`, `h2 = h1 + attn1(h1)`,
//!   logits `h2 U^T` with `U` `unembed.weight [V, d]`.
//! - `A_l[t, u]`: the attention weight of layer `l`'s head from query `t` to key `u <= t`.
//! - Previous-token score: the mean over positions `t >= 1` of `A_0[t, t - 1]`.
//! - Induction score: the mean over repeated positions `t = b + j` of `A_1[t, a + j + 1]`,
//!   the weight on the token that followed the earlier occurrence of `x[t]`.

use super::data::{PositionKind, RepeatedSpans, TokenSet};
use crate::init::pytorch_default_init;
use crate::models::{seeded, Stream};
use crate::train::{fit, Backend, Loss, Progress, TrainConfig, TrainError};
use nets::{Architecture, Layer, Model, OutputKind, Sequential};
use serde::{Deserialize, Serialize};
use tensor::Tensor;

/// Model width `d`.
pub const D_MODEL: usize = 16;

/// The `attention` workload's architecture, as examples/models/transformer.toml writes it:
/// `tok_emb [V, 16]`, `pos_emb [T, 16]`, two residual causal one-head attention layers
/// `blocks.{0,1}.attn.{q,k,v,o}.weight [16, 16]` without biases, `unembed.weight [V, 16]`.
pub fn architecture(spec: &RepeatedSpans) -> Architecture {
    let attention = |l: usize| Layer::Residual {
        block: vec![Layer::Attention {
            name: format!("blocks.{l}.attn"),
            embed_dim: D_MODEL,
            num_heads: 1,
            causal: true,
            bias: false,
            projections: ["q", "k", "v", "o"].map(String::from),
        }],
    };
    Architecture {
        input_dim: 0,
        input_shape: vec![spec.context],
        layers: vec![
            Layer::Embedding {
                name: "tok_emb".into(),
                num_embeddings: spec.vocab,
                embedding_dim: D_MODEL,
            },
            Layer::PositionalEmbedding {
                name: "pos_emb".into(),
                num_embeddings: spec.context,
                embedding_dim: D_MODEL,
            },
            attention(0),
            attention(1),
            Layer::Linear {
                name: "unembed".into(),
                in_features: D_MODEL,
                out_features: spec.vocab,
                bias: false,
            },
        ],
        output: OutputKind::Logits,
    }
}

/// The model freshly initialised from `seed` as WORKLOADS.md says: the embedding tables
/// `N(0, 1)` (`nn.Embedding`'s default), every projection and the unembedding PyTorch's
/// default `nn.Linear` initialisation, `U(-1/sqrt(16), 1/sqrt(16))`.
pub fn initialised(spec: &RepeatedSpans, seed: u64) -> Sequential<f32> {
    let arch = architecture(spec);
    let params = pytorch_default_init(&arch, &mut seeded(seed, Stream::Init));
    Sequential::new(arch, params).expect("the parameters follow the slots")
}

/// How the induction model is trained: AdamW on a fixed set of `train_sequences` sequences
/// with next-token cross-entropy summed over positions and averaged over sequences
/// ([`crate::train::record_loss`]), no early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InductionTraining {
    pub spec: RepeatedSpans,
    pub train_sequences: usize,
    /// Held-out sequences for the accuracies and the decomposition's inputs.
    pub test_sequences: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Default for InductionTraining {
    fn default() -> Self {
        Self {
            spec: RepeatedSpans::default(),
            train_sequences: 8192,
            test_sequences: 512,
            epochs: 60,
            batch_size: 64,
            lr: 1e-2,
            weight_decay: 0.01,
        }
    }
}

impl InductionTraining {
    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            samples: self.train_sequences,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            early_stop: None,
            max_seeds: 1,
            finish_kept: false,
            backend: Backend::Tape,
            loss: Loss::CrossEntropy,
        }
    }
}

/// Next-token accuracy (argmax of the logits, ties to the lowest id) on each kind of
/// position, and how many positions of each kind were counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub repeated: f64,
    pub first: f64,
    pub other: f64,
    pub repeated_positions: usize,
    pub first_positions: usize,
}

/// The attention scores of the legend, over a set of sequences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttentionScores {
    /// Mean `A_0[t, t - 1]` over positions `t >= 1`.
    pub layer0_previous_token: f64,
    /// Mean `A_0[t, t]` over positions `t >= 1` (the rest of the weight is on `u < t - 1`).
    pub layer0_self: f64,
    /// Fraction of positions `t >= 1` whose layer-0 argmax is `t - 1`.
    pub layer0_previous_token_argmax: f64,
    /// Mean `A_1[t, a + j + 1]` over repeated positions `t = b + j`.
    pub layer1_induction: f64,
    /// Fraction of repeated positions whose layer-1 argmax is `a + j + 1`.
    pub layer1_induction_argmax: f64,
    /// Mean `A_1[t, t - 1]` over positions `t >= 1`, for contrast.
    pub layer1_previous_token: f64,
    /// Mean `A_0` on the induction target over repeated positions, for contrast.
    pub layer0_induction: f64,
}

/// A trained induction model with its settings and measures.
#[derive(Debug, Clone)]
pub struct TrainedInduction {
    pub model: Sequential<f32>,
    pub seed: u64,
    pub training: InductionTraining,
    pub test: TokenSet,
    pub epoch_losses: Vec<f64>,
    pub accuracy: Accuracy,
    pub attention: AttentionScores,
}

/// Trains the induction model from `seed`: initial weights from `seed`, the training and
/// held-out sequences from its data stream (training set first), the batch order from its
/// shuffle stream.
pub fn train_induction(
    training: &InductionTraining,
    seed: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrainedInduction, TrainError> {
    training.spec.validate().map_err(TrainError::Config)?;
    let spec = &training.spec;
    let mut data_rng = seeded(seed, Stream::TrainData);
    let train_set = spec.sample(training.train_sequences, &mut data_rng);
    let test = spec.sample(training.test_sequences, &mut data_rng);
    let targets = train_set.next_token_one_hot(spec.vocab);
    let mut model = initialised(spec, seed);
    let run = fit(
        &mut model,
        None,
        (&train_set.tokens, &targets),
        &training.train_config(),
        seed,
        progress,
    )?;
    let logits = model.evaluate_w0(&test.tokens)?;
    let accuracy = accuracy(&logits, &test);
    let attention = attention_scores(&model, &test);
    Ok(TrainedInduction {
        model,
        seed,
        training: training.clone(),
        test,
        epoch_losses: run.epoch_losses,
        accuracy,
        attention,
    })
}

/// The index of the largest value (the lowest on ties).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Next-token accuracy of `logits [N, T, V]` on the sequences of `set`, by kind of position.
pub fn accuracy(logits: &Tensor<f32>, set: &TokenSet) -> Accuracy {
    let (t, v) = (logits.shape()[1], logits.shape()[2]);
    let ids = set.tokens.data();
    // [hits, count] per kind: repeated, first, other.
    let mut tally = [[0usize; 2]; 3];
    for (s, marks) in set.marks.iter().enumerate() {
        for (p, &kind) in marks.iter().enumerate().take(t - 1) {
            let row = &logits.data()[(s * t + p) * v..(s * t + p + 1) * v];
            let hit = argmax(row) == ids[s * t + p + 1] as usize;
            let slot = match kind {
                PositionKind::Repeated => 0,
                PositionKind::First => 1,
                PositionKind::Other => 2,
            };
            tally[slot][0] += hit as usize;
            tally[slot][1] += 1;
        }
    }
    let rate = |[hits, count]: [usize; 2]| hits as f64 / count.max(1) as f64;
    Accuracy {
        repeated: rate(tally[0]),
        first: rate(tally[1]),
        other: rate(tally[2]),
        repeated_positions: tally[0][1],
        first_positions: tally[1][1],
    }
}

/// The residual stream and attention patterns of one sequence, computed directly from the
/// weights (the model's forward pass written out, so that the patterns can be read).
pub struct Trace {
    /// `A_0`, `A_1`: `[T, T]` row-major, row `t` the query, zero above the diagonal.
    pub patterns: [Vec<f32>; 2],
    /// Logits `[T, V]`.
    pub logits: Vec<f32>,
}

/// `y[t] = W x[t]` for `x: [T, d_in]`, `W: [d_out, d_in]` (an `nn.Linear` without bias).
fn project(x: &[f32], w: &Tensor<f32>) -> Vec<f32> {
    let (d_out, d_in) = (w.shape()[0], w.shape()[1]);
    let mut y = Vec::with_capacity(x.len() / d_in * d_out);
    for row in x.chunks_exact(d_in) {
        for o in 0..d_out {
            let wo = &w.data()[o * d_in..(o + 1) * d_in];
            y.push(row.iter().zip(wo).map(|(a, b)| a * b).sum());
        }
    }
    y
}

/// One causal one-head attention layer on `h: [T, d]`: returns `(pattern [T, T], output
/// [T, d])`, with `w = [Wq, Wk, Wv, Wo]`.
fn attend(h: &[f32], w: [&Tensor<f32>; 4]) -> (Vec<f32>, Vec<f32>) {
    let d = w[0].shape()[1];
    let t = h.len() / d;
    let (q, k, v) = (project(h, w[0]), project(h, w[1]), project(h, w[2]));
    let scale = 1.0 / (d as f32).sqrt();
    let mut pattern = vec![0.0f32; t * t];
    let mut mixed = vec![0.0f32; t * d];
    for i in 0..t {
        let row = &mut pattern[i * t..(i + 1) * t];
        for j in 0..=i {
            let dot: f32 = (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum();
            row[j] = dot * scale;
        }
        let max = row[..=i].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for x in &mut row[..=i] {
            *x = (*x - max).exp();
            total += *x;
        }
        for j in 0..=i {
            row[j] /= total;
            for c in 0..d {
                mixed[i * d + c] += row[j] * v[j * d + c];
            }
        }
    }
    (pattern, project(&mixed, w[3]))
}

/// The forward pass of one sequence of token ids through the induction model's weights
/// (in [`architecture`]'s slot order: `tok_emb`, `pos_emb`, layer 0 `q, k, v, o`, layer 1
/// `q, k, v, o`, `unembed`).
pub fn trace(params: &[&Tensor<f32>], tokens: &[f32]) -> Trace {
    let (emb, pos) = (params[0], params[1]);
    let d = emb.shape()[1];
    let mut h: Vec<f32> = Vec::with_capacity(tokens.len() * d);
    for (t, &id) in tokens.iter().enumerate() {
        let e = &emb.data()[id as usize * d..(id as usize + 1) * d];
        let p = &pos.data()[t * d..(t + 1) * d];
        h.extend(e.iter().zip(p).map(|(a, b)| a + b));
    }
    let mut patterns = [Vec::new(), Vec::new()];
    for (l, pattern) in patterns.iter_mut().enumerate() {
        let w = [0, 1, 2, 3].map(|i| params[2 + 4 * l + i]);
        let (a, out) = attend(&h, w);
        for (x, y) in h.iter_mut().zip(out) {
            *x += y;
        }
        *pattern = a;
    }
    Trace {
        patterns,
        logits: project(&h, params[10]),
    }
}

/// The attention scores of the legend on the sequences of `set`.
pub fn attention_scores(model: &Sequential<f32>, set: &TokenSet) -> AttentionScores {
    let params = model.params();
    let t = set.tokens.shape()[1];
    // Sums and counts: previous-token (layer 0 mean, argmax; layer 1 mean; layer 0 self)
    // over t >= 1;
    // induction (layer 1 mean, argmax; layer 0 mean) over repeated positions.
    let (mut prev, mut induct) = ([0.0f64; 4], [0.0f64; 3]);
    let (mut n_prev, mut n_induct) = (0usize, 0usize);
    for (s, marks) in set.marks.iter().enumerate() {
        let tokens = &set.tokens.data()[s * t..(s + 1) * t];
        let tr = trace(&params, tokens);
        let row = |l: usize, i: usize| &tr.patterns[l][i * t..(i + 1) * t];
        for i in 1..t {
            prev[0] += row(0, i)[i - 1] as f64;
            prev[1] += (argmax(&row(0, i)[..=i]) == i - 1) as usize as f64;
            prev[2] += row(1, i)[i - 1] as f64;
            prev[3] += row(0, i)[i] as f64;
            n_prev += 1;
        }
        for (i, target) in induction_targets(marks) {
            induct[0] += row(1, i)[target] as f64;
            induct[1] += (argmax(&row(1, i)[..=i]) == target) as usize as f64;
            induct[2] += row(0, i)[target] as f64;
            n_induct += 1;
        }
    }
    let (np, ni) = (n_prev.max(1) as f64, n_induct.max(1) as f64);
    AttentionScores {
        layer0_previous_token: prev[0] / np,
        layer0_previous_token_argmax: prev[1] / np,
        layer0_self: prev[3] / np,
        layer1_previous_token: prev[2] / np,
        layer1_induction: induct[0] / ni,
        layer1_induction_argmax: induct[1] / ni,
        layer0_induction: induct[2] / ni,
    }
}

/// Every repeated position `b + j` with its induction target `a + j + 1`, the position after
/// the same token in the first copy, read from the marks: the `j`-th repeated position goes
/// with the `j`-th first-occurrence position (both copies have `L - 1` marks, in order). By
/// the marks rather than by the tokens, because with fillers from the whole vocabulary
/// ([`super::Fillers::Any`]) a span token may also occur outside the copies.
pub fn induction_targets(marks: &[PositionKind]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let at = |kind: PositionKind| {
        marks
            .iter()
            .enumerate()
            .filter(move |(_, &k)| k == kind)
            .map(|(i, _)| i)
    };
    at(PositionKind::Repeated).zip(at(PositionKind::First).map(|u| u + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::rng;

    #[test]
    fn the_architecture_is_the_example_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/models/transformer.toml");
        let file = nets::io::read_architecture(&path).unwrap();
        assert_eq!(architecture(&RepeatedSpans::default()), file);
        let model = initialised(&RepeatedSpans::default(), 0);
        let names = model.param_names();
        assert_eq!(names[0], "tok_emb.weight");
        assert_eq!(names[2], "blocks.0.attn.q.weight");
        assert_eq!(names[10], "unembed.weight");
    }

    #[test]
    fn the_written_out_forward_pass_is_the_model_s() {
        // Random weights scaled up so that the attention patterns are far from uniform.
        let spec = RepeatedSpans::default();
        let mut model = initialised(&spec, 1);
        let params: Vec<Tensor<f32>> = model.params().iter().map(|p| p.mul_scalar(2.0)).collect();
        model.set_params(params).unwrap();
        let set = spec.sample(4, &mut rng(2));
        let logits = model.evaluate_w0(&set.tokens).unwrap();
        let per_seq = 32 * 64;
        for s in 0..4 {
            let tr = trace(&model.params(), &set.tokens.data()[s * 32..(s + 1) * 32]);
            let expected = &logits.data()[s * per_seq..(s + 1) * per_seq];
            let worst = tr
                .logits
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-3, "sequence {s}: {worst}");
            for pattern in &tr.patterns {
                for i in 0..32 {
                    let row = &pattern[i * 32..(i + 1) * 32];
                    let total: f32 = row.iter().sum();
                    assert!((total - 1.0).abs() < 1e-5);
                    assert!(row[i + 1..].iter().all(|&a| a == 0.0), "causal");
                }
            }
        }
    }

    #[test]
    fn attention_scores_read_the_patterns_of_a_constructed_model() {
        // Layer 0 made a previous-token head and layer 1 an induction head by hand is out of
        // reach in a few lines; instead: all-zero projections give uniform causal attention,
        // so every score is a known average of 1 / (t + 1).
        let spec = RepeatedSpans::default();
        let mut model = initialised(&spec, 0);
        let params: Vec<Tensor<f32>> = model
            .params()
            .iter()
            .enumerate()
            .map(|(i, p)| match i {
                2..=9 => Tensor::zeros(p.shape()),
                _ => (*p).clone(),
            })
            .collect();
        model.set_params(params).unwrap();
        let set = spec.sample(10, &mut rng(6));
        let scores = attention_scores(&model, &set);
        let uniform: f64 = (1..32).map(|t| 1.0 / (t as f64 + 1.0)).sum::<f64>() / 31.0;
        assert!((scores.layer0_previous_token - uniform).abs() < 1e-6);
        assert!((scores.layer0_self - uniform).abs() < 1e-6);
        assert!((scores.layer1_previous_token - uniform).abs() < 1e-6);
        // Over repeated positions t the induction target gets 1 / (t + 1).
        let mut expected = (0.0, 0usize);
        for marks in &set.marks {
            for (t, _) in marks
                .iter()
                .enumerate()
                .filter(|(_, &k)| k == PositionKind::Repeated)
            {
                expected.0 += 1.0 / (t as f64 + 1.0);
                expected.1 += 1;
            }
        }
        let expected = expected.0 / expected.1 as f64;
        assert!((scores.layer1_induction - expected).abs() < 1e-6);
        assert!((scores.layer0_induction - expected).abs() < 1e-6);
        // Ties go to the lowest index, position 0: never the previous token at t >= 2.
        assert!(scores.layer0_previous_token_argmax < 0.05);
    }

    #[test]
    fn induction_targets_follow_the_earlier_copy_of_the_current_token() {
        // With fillers from the whole vocabulary a span token may occur before its first
        // copy; the target is still the position after it in the first copy.
        let spec = RepeatedSpans {
            fillers: super::super::Fillers::Any,
            ..RepeatedSpans::default()
        };
        let mut r = rng(11);
        for _ in 0..200 {
            let s = spec.sequence(&mut r);
            let pairs: Vec<(usize, usize)> = induction_targets(&s.marks()).collect();
            assert_eq!(pairs.len(), s.span - 1);
            for (j, &(i, target)) in pairs.iter().enumerate() {
                assert_eq!((i, target), (s.second + j, s.first + j + 1));
                assert_eq!(s.tokens[target - 1], s.tokens[i]);
                assert_eq!(s.tokens[target], s.tokens[i + 1]);
            }
        }
    }

    #[test]
    fn accuracy_counts_hits_by_kind_of_position() {
        // Logits that put the next token first exactly on repeated positions: accuracy 1
        // there; elsewhere they favour token 0, which is the next token only by chance.
        let spec = RepeatedSpans::default();
        let set = spec.sample(20, &mut rng(3));
        let mut logits = Tensor::zeros(&[20, 32, 64]);
        let ids = set.tokens.data().to_vec();
        let mut chance = [0usize; 2];
        for (s, marks) in set.marks.iter().enumerate() {
            for t in 0..31 {
                let next = ids[s * 32 + t + 1] as usize;
                let favoured = if marks[t] == PositionKind::Repeated {
                    next
                } else {
                    0
                };
                logits.data_mut()[(s * 32 + t) * 64 + favoured] = 1.0;
                if marks[t] == PositionKind::First && next == 0 {
                    chance[0] += 1;
                }
                chance[1] += (marks[t] == PositionKind::First) as usize;
            }
        }
        let a = accuracy(&logits, &set);
        assert_eq!(a.repeated, 1.0);
        assert_eq!(a.first, chance[0] as f64 / chance[1] as f64);
        assert_eq!(a.first_positions, chance[1]);
    }
}
