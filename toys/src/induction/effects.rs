//! What each subnetwork of a decomposition of the induction model does, by intervention:
//! the parameters are moved along the subnetwork (`W0 + delta v_k`, as `l3d intervene`
//! does, for `delta` and `-delta`), and the change in the predictions is measured separately
//! on repeated positions (copyable: the induction circuit's work) and on first occurrences
//! (not copyable), beside the subnetwork's norm share per layer.
//!
//! # Legend
//!
//! - `p0[n, t]`: the model's next-token distribution at `W0`; `q[n, t]` after the move.
//! - `KL_rep`, `KL_first`: the mean of `KL(p0[n, t] || q[n, t])` over repeated positions and
//!   over first occurrences, averaged over the two signs of `delta`.
//! - `ratio = KL_rep / KL_first` (the repeated/first ratio of the KL).
//! - `dlogp_rep`, `dlogp_first`: the mean of `|log q[n, t](y) - log p0[n, t](y)|` for the
//!   correct next token `y`, over repeated and over first positions, averaged over the two
//!   signs; `logprob_ratio = dlogp_rep / dlogp_first`. KL weighs confident predictions
//!   lightly (a repeated position's prediction, near certain, moves little until it flips),
//!   the log-probability of the correct token does not; both are reported.
//! - Norm shares: `|v_k[tensor]|^2` summed over a group of tensors (decoder subnetworks have
//!   unit norm over the decomposed tensors, so the shares of a subnetwork sum to 1).
//!
//! # Roles
//!
//! Among the live subnetworks with at least half their norm^2 in layer 0, the *layer-0
//! subnetwork* is the one whose move lowers the layer-1 head's attention on the induction
//! target most (it breaks the induction head's keys, which read layer 0's output: the role of
//! a previous-token head in the textbook circuit); among those with at least half in layer 1,
//! the *induction subnetwork* is the one whose move changes the correct log-prob on repeated
//! positions most (`dlogp_rep`). The *previous-token subnetwork* is, among the same layer-0
//! candidates, the one whose move lowers layer 0's attention on the previous token most,
//! provided it lowers it at all: by at least [`PREVIOUS_TOKEN_FALL`] and by more than twice
//! the random direction's move does (it carries where the previous-token head looks, not what
//! it writes; with the attention saturated it is found only when layer 0's `q` and `k` are
//! decomposed alone, notes/induction.md).

use super::data::{PositionKind, TokenSet};
use super::model::{accuracy, attention_scores, AttentionScores};
use l3d::intervene::moved_params;
use l3d::{Decomposition, Model};
use nets::Sequential;
use serde::{Deserialize, Serialize};
use tensor::Tensor;

/// A subnetwork's norm^2 by group of tensors; groups not decomposed are 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LayerShares {
    /// `blocks.0.attn.{q, k, v, o}`.
    pub layer0: [f64; 4],
    /// `blocks.1.attn.{q, k, v, o}`.
    pub layer1: [f64; 4],
    /// `tok_emb` and `pos_emb`.
    pub embeddings: f64,
    pub unembedding: f64,
}

impl LayerShares {
    pub fn layer0_total(&self) -> f64 {
        self.layer0.iter().sum()
    }

    pub fn layer1_total(&self) -> f64 {
        self.layer1.iter().sum()
    }

    /// The shares of the decoder subnetwork `k` of `d`, by tensor name.
    pub fn of(d: &Decomposition<f32>, k: usize) -> Self {
        Self::from_parts(&d.names, &d.subnetwork(k))
    }

    /// The shares of a direction whose part in the tensor `names[t]` is `parts[t]`.
    pub fn from_parts(names: &[String], parts: &[Tensor<f32>]) -> Self {
        let sq: Vec<f64> = parts.iter().map(|p| p.sum_squares() as f64).collect();
        Self::from_sq_norms(names, &sq)
    }

    /// The shares of squared norms `sq[t]` of the tensors `names[t]`.
    pub fn from_sq_norms(names: &[String], sq: &[f64]) -> Self {
        let mut s = Self::default();
        let total: f64 = sq.iter().sum();
        for (name, part) in names.iter().zip(sq) {
            let share = part / total.max(f64::MIN_POSITIVE);
            let projection = ["q", "k", "v", "o"]
                .iter()
                .position(|p| name.ends_with(&format!(".attn.{p}.weight")));
            match (name.split('.').nth(1), projection) {
                (Some("0"), Some(j)) if name.starts_with("blocks.") => s.layer0[j] += share,
                (Some("1"), Some(j)) if name.starts_with("blocks.") => s.layer1[j] += share,
                _ if name.starts_with("unembed") => s.unembedding += share,
                _ => s.embeddings += share,
            }
        }
        s
    }
}

/// One subnetwork's effects (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetworkEffect {
    pub index: usize,
    pub live: bool,
    pub kl_repeated: f64,
    pub kl_first: f64,
    /// `kl_repeated / kl_first` (infinite if `kl_first` is 0 and `kl_repeated` is not).
    pub ratio: f64,
    /// `dlogp_rep` and `dlogp_first` of the legend, and their ratio.
    pub logprob_repeated: f64,
    pub logprob_first: f64,
    pub logprob_ratio: f64,
    /// Mean change of the log-probability of the correct next token on repeated positions,
    /// at the sign of `delta` that lowers it most.
    pub logprob_change_repeated: f64,
    /// Accuracy on repeated and on first positions after the move, at that sign.
    pub accuracy_repeated: f64,
    pub accuracy_first: f64,
    /// The attention scores after the move, at that sign.
    pub attention: AttentionScores,
    pub shares: LayerShares,
}

/// Every subnetwork's effects, the two roles found, and the model's own measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InductionEffects {
    /// `|delta|`, in parameter units.
    pub delta: f64,
    pub sequences: usize,
    pub accuracy_repeated: f64,
    pub accuracy_first: f64,
    pub attention: AttentionScores,
    pub subnetworks: Vec<SubnetworkEffect>,
    /// A random direction in the decomposed tensors, moved alike (index `n_v`).
    pub baseline: SubnetworkEffect,
    /// Where the per-sample gradients L3D decomposes lie: `sum_i |g_i[t]|^2` per tensor as a
    /// share of `sum_i |g_i|^2` ([`gradient_shares`]).
    pub gradient_shares: LayerShares,
    pub layer0_subnetwork: Option<usize>,
    pub induction_subnetwork: Option<usize>,
    /// Reports written before this role existed have none.
    #[serde(default)]
    pub previous_token_subnetwork: Option<usize>,
}

impl InductionEffects {
    /// The repeated/first ratio of the induction subnetwork.
    pub fn induction_ratio(&self) -> Option<f64> {
        self.induction_subnetwork.map(|k| self.subnetworks[k].ratio)
    }
}

/// Mean of `per(row, y)` over the repeated and over the first positions of `set`
/// (`[mean_rep, mean_first]`), for logits `[N, T, V]`: `row` is the position's offset in the
/// logits and `y` the correct next token.
fn mean_by_kind(
    logits: &Tensor<f32>,
    set: &TokenSet,
    per: impl Fn(usize, usize) -> f64,
) -> [f64; 2] {
    let (t, v) = (logits.shape()[1], logits.shape()[2]);
    let ids = set.tokens.data();
    let mut sums = [(0.0, 0usize); 2];
    for (n, marks) in set.marks.iter().enumerate() {
        for (p, &kind) in marks.iter().enumerate() {
            let slot = match kind {
                PositionKind::Repeated => 0,
                PositionKind::First => 1,
                PositionKind::Other => continue,
            };
            sums[slot].0 += per((n * t + p) * v, ids[n * t + p + 1] as usize);
            sums[slot].1 += 1;
        }
    }
    sums.map(|(s, c)| s / c.max(1) as f64)
}

/// Mean `KL(softmax(base) || softmax(moved))` over the repeated and over the first positions
/// of `set` (`[KL_rep, KL_first]`), for logits `[N, T, V]`.
pub fn kl_by_kind(base: &Tensor<f32>, moved: &Tensor<f32>, set: &TokenSet) -> [f64; 2] {
    let v = base.shape()[2];
    mean_by_kind(base, set, |at, _| {
        kl_rows(&base.data()[at..at + v], &moved.data()[at..at + v])
    })
}

/// `log softmax` of a row of logits, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_total = row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln();
    row.iter().map(|&x| x as f64 - max - log_total).collect()
}

/// `KL(softmax(p) || softmax(q))` of two rows of logits.
fn kl_rows(p: &[f32], q: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p), log_softmax(q));
    lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum()
}

/// Mean `|log q(y) - log p0(y)|` of the correct next token `y` over the repeated and over
/// the first positions of `set` (`[dlogp_rep, dlogp_first]`), for logits `[N, T, V]`.
pub fn logprob_change_by_kind(base: &Tensor<f32>, moved: &Tensor<f32>, set: &TokenSet) -> [f64; 2] {
    let v = base.shape()[2];
    mean_by_kind(base, set, |at, y| {
        let before = log_softmax(&base.data()[at..at + v])[y];
        let after = log_softmax(&moved.data()[at..at + v])[y];
        (after - before).abs()
    })
}

/// Mean log-probability of the correct next token over the repeated positions of `set`.
fn mean_logprob_repeated(logits: &Tensor<f32>, set: &TokenSet) -> f64 {
    let (t, v) = (logits.shape()[1], logits.shape()[2]);
    let ids = set.tokens.data();
    let (mut total, mut count) = (0.0, 0usize);
    for (n, marks) in set.marks.iter().enumerate() {
        for (p, _) in marks
            .iter()
            .enumerate()
            .filter(|(_, &k)| k == PositionKind::Repeated)
        {
            let at = (n * t + p) * v;
            let next = ids[n * t + p + 1] as usize;
            total += log_softmax(&logits.data()[at..at + v])[next];
            count += 1;
        }
    }
    total / count.max(1) as f64
}

/// The effects of every subnetwork of `d` (a decomposition of the induction model `model`)
/// moved by `+-delta`, measured on `set`; `live[k]` says which subnetworks are live. The
/// baseline is a random direction of unit norm in the decomposed tensors (normal entries,
/// drawn from `baseline_seed`), moved alike: the level of every measure for a direction that
/// is no circuit.
pub fn induction_effects(
    model: &Sequential<f32>,
    d: &Decomposition<f32>,
    set: &TokenSet,
    delta: f64,
    live: &[bool],
    baseline_seed: u64,
) -> l3d::Result<InductionEffects> {
    let base = Base {
        model,
        logits: model.evaluate_w0(&set.tokens)?,
        set,
    };
    let mut subnetworks = Vec::with_capacity(d.n_v);
    for k in 0..d.n_v {
        let moves = [1.0, -1.0].map(|sign| moved_params(model, d, &[(k, sign * delta)]));
        let [plus, minus] = moves;
        let live = live.get(k).copied().unwrap_or(false);
        subnetworks.push(base.effect(k, live, [plus?, minus?], LayerShares::of(d, k))?);
    }
    let direction = random_direction(model, d, baseline_seed);
    let moves = [1.0, -1.0].map(|sign| {
        let mut params: Vec<Tensor<f32>> = model.params().into_iter().cloned().collect();
        for (&i, r) in d.param_index.iter().zip(&direction) {
            params[i].add_assign(&r.mul_scalar((sign * delta) as f32));
        }
        params
    });
    let shares = LayerShares::from_parts(&d.names, &direction);
    let baseline = base.effect(d.n_v, false, moves, shares)?;
    let (layer0_subnetwork, induction_subnetwork) = identify(&subnetworks);
    let attention = attention_scores(model, set);
    let previous_token_subnetwork = previous_token_role(
        &subnetworks,
        attention.layer0_previous_token,
        baseline.attention.layer0_previous_token,
    );
    let gradient_shares = gradient_shares(model, d, &set.tokens)?;
    let base_accuracy = accuracy(&base.logits, set);
    Ok(InductionEffects {
        delta,
        sequences: set.len(),
        accuracy_repeated: base_accuracy.repeated,
        accuracy_first: base_accuracy.first,
        attention,
        subnetworks,
        baseline,
        gradient_shares,
        layer0_subnetwork,
        induction_subnetwork,
        previous_token_subnetwork,
    })
}

/// The share of each decomposed tensor in the squared norm of the per-sample gradients
/// `g_i` of the KL summed over all positions, each sequence `i` of `x` compared with the next
/// one (`(i + 1) mod N`, a fixed stand-in for L3D's random in-batch reference), for at most
/// the first 128 sequences: `sum_i |g_i[t]|^2 / sum_i |g_i|^2`, the weight each tensor has
/// in L3D's relative reconstruction error.
pub fn gradient_shares(
    model: &Sequential<f32>,
    d: &Decomposition<f32>,
    x: &Tensor<f32>,
) -> l3d::Result<LayerShares> {
    let n = x.shape()[0].min(128);
    let x = x.gather_rows(&(0..n).collect::<Vec<_>>());
    let partners: Vec<usize> = (0..n).map(|i| (i + 1) % n).collect();
    let y0 = model.evaluate_w0(&x)?;
    let divergence = l3d::Divergence::Kl;
    let r = l3d::pairs::reference_outputs(&y0, l3d::Reference::RandomSample, divergence, &partners);
    let grads = l3d::pairs::per_sample_gradients(model, &d.param_index, &x, &r, divergence)?;
    let sq: Vec<f64> = grads
        .into_iter()
        .map(|g| g.into_dense().sum_squares() as f64)
        .collect();
    Ok(LayerShares::from_sq_norms(&d.names, &sq))
}

/// A random direction of unit norm over the decomposed tensors of `d`.
fn random_direction(
    model: &Sequential<f32>,
    d: &Decomposition<f32>,
    seed: u64,
) -> Vec<Tensor<f32>> {
    let mut rng = tensor::rng(seed);
    let params = model.params();
    let parts: Vec<Tensor<f32>> = d
        .param_index
        .iter()
        .map(|&i| Tensor::randn(params[i].shape(), 1.0, &mut rng))
        .collect();
    let norm = parts
        .iter()
        .map(|p| p.sum_squares() as f64)
        .sum::<f64>()
        .sqrt();
    parts
        .iter()
        .map(|p| p.mul_scalar((1.0 / norm) as f32))
        .collect()
}

/// The model's predictions at `W0`, which every move is compared with.
struct Base<'a> {
    model: &'a Sequential<f32>,
    logits: Tensor<f32>,
    set: &'a TokenSet,
}

impl Base<'_> {
    /// The effects of the two moved parameter lists `[W0 + delta v, W0 - delta v]`.
    fn effect(
        &self,
        index: usize,
        live: bool,
        moves: [Vec<Tensor<f32>>; 2],
        shares: LayerShares,
    ) -> l3d::Result<SubnetworkEffect> {
        let set = self.set;
        let (mut kl, mut dlogp) = ([0.0; 2], [0.0; 2]);
        // (log-prob, logits, params) at the sign that lowers the correct log-prob most.
        let mut worst: Option<(f64, Tensor<f32>, Vec<Tensor<f32>>)> = None;
        for params in moves {
            let moved = self.model.evaluate(&params, &set.tokens)?;
            let [rep, first] = kl_by_kind(&self.logits, &moved, set);
            kl[0] += rep / 2.0;
            kl[1] += first / 2.0;
            let [rep, first] = logprob_change_by_kind(&self.logits, &moved, set);
            dlogp[0] += rep / 2.0;
            dlogp[1] += first / 2.0;
            let logprob = mean_logprob_repeated(&moved, set);
            if worst.as_ref().is_none_or(|(w, _, _)| logprob < *w) {
                worst = Some((logprob, moved, params));
            }
        }
        let (logprob, moved, params) = worst.expect("two signs were tried");
        let moved_accuracy = accuracy(&moved, set);
        let mut moved_model = self.model.clone();
        moved_model
            .set_params(params)
            .expect("moving keeps the shapes");
        Ok(SubnetworkEffect {
            index,
            live,
            kl_repeated: kl[0],
            kl_first: kl[1],
            ratio: ratio(kl[0], kl[1]),
            logprob_repeated: dlogp[0],
            logprob_first: dlogp[1],
            logprob_ratio: ratio(dlogp[0], dlogp[1]),
            logprob_change_repeated: logprob - mean_logprob_repeated(&self.logits, set),
            accuracy_repeated: moved_accuracy.repeated,
            accuracy_first: moved_accuracy.first,
            attention: attention_scores(&moved_model, set),
            shares,
        })
    }
}

/// `a / b`, infinite when only `b` is 0, and 0 when both are.
fn ratio(a: f64, b: f64) -> f64 {
    if a == 0.0 {
        0.0
    } else if b == 0.0 {
        a.signum() * f64::INFINITY
    } else {
        a / b
    }
}

/// The layer-0 and the induction subnetworks (see the module docs), if any.
pub fn identify(subnetworks: &[SubnetworkEffect]) -> (Option<usize>, Option<usize>) {
    let layer0 = candidates(subnetworks, LayerShares::layer0_total)
        .min_by(|a, b| {
            let attention = |s: &SubnetworkEffect| s.attention.layer1_induction;
            attention(a).total_cmp(&attention(b))
        })
        .map(|s| s.index);
    let induction = candidates(subnetworks, LayerShares::layer1_total)
        .max_by(|a, b| a.logprob_repeated.total_cmp(&b.logprob_repeated))
        .map(|s| s.index);
    (layer0, induction)
}

/// The live subnetworks with at least half their norm^2 where `share` says (a layer).
fn candidates(
    subnetworks: &[SubnetworkEffect],
    share: fn(&LayerShares) -> f64,
) -> impl Iterator<Item = &SubnetworkEffect> {
    subnetworks
        .iter()
        .filter(move |s| s.live && share(&s.shares) >= 0.5)
}

/// The least fall of layer 0's attention on the previous token for a move to count as taking
/// it off the previous token (the random direction's fall is 0.002-0.010 at the default move).
pub const PREVIOUS_TOKEN_FALL: f64 = 0.01;

/// The previous-token subnetwork (see the module docs), if any: among the live subnetworks
/// with at least half their norm^2 in layer 0 whose move lowers layer 0's attention on the
/// previous token from `model` (the model's) by at least [`PREVIOUS_TOKEN_FALL`] and by more
/// than twice as much as the random direction's move (to `random`), the one after whose move
/// it is lowest.
pub fn previous_token_role(
    subnetworks: &[SubnetworkEffect],
    model: f64,
    random: f64,
) -> Option<usize> {
    let enough = PREVIOUS_TOKEN_FALL.max(2.0 * (model - random));
    candidates(subnetworks, LayerShares::layer0_total)
        .filter(|s| model - s.attention.layer0_previous_token >= enough)
        .min_by(|a, b| {
            let previous = |s: &SubnetworkEffect| s.attention.layer0_previous_token;
            previous(a).total_cmp(&previous(b))
        })
        .map(|s| s.index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::induction::{initialised, RepeatedSpans};
    use l3d::L3dConfig;
    use tensor::rng;

    fn decomposition(model: &Sequential<f32>, n_v: usize) -> Decomposition<f32> {
        let config = L3dConfig {
            n_subnetworks: n_v,
            rank: 2,
            decompose: model
                .param_names()
                .into_iter()
                .filter(|n| n.starts_with("blocks."))
                .collect(),
            ..L3dConfig::default()
        };
        Decomposition::new(model, &config).unwrap()
    }

    /// Zeroes subnetwork `k`'s decoder in every tensor whose name does not start with
    /// `keep`, then renormalises.
    fn confine(d: &mut Decomposition<f32>, k: usize, keep: &str) {
        for (name, cp) in d.names.iter().zip(&mut d.decoder) {
            if !name.starts_with(keep) {
                let rank = cp.rank;
                let f = &mut cp.factors[0];
                let cols = f.row_len();
                for row in f.data_mut().chunks_exact_mut(cols) {
                    row[k * rank..(k + 1) * rank].fill(0.0);
                }
            }
        }
        d.renormalise_decoder();
    }

    #[test]
    fn shares_follow_the_tensors_a_subnetwork_lives_in() {
        let model = initialised(&RepeatedSpans::default(), 0);
        let mut d = decomposition(&model, 3);
        confine(&mut d, 0, "blocks.1.attn.q");
        confine(&mut d, 1, "blocks.0.");
        let s0 = LayerShares::of(&d, 0);
        assert!((s0.layer1[0] - 1.0).abs() < 1e-6, "{s0:?}");
        assert_eq!(s0.layer0_total(), 0.0);
        let s1 = LayerShares::of(&d, 1);
        assert!((s1.layer0_total() - 1.0).abs() < 1e-6);
        assert_eq!(s1.layer1_total(), 0.0);
        let s2 = LayerShares::of(&d, 2);
        assert!((s2.layer0_total() + s2.layer1_total() - 1.0).abs() < 1e-6);
        assert!(s2.layer0_total() > 0.1 && s2.layer1_total() > 0.1);
    }

    #[test]
    fn kl_by_kind_averages_each_kind_separately() {
        // Moved logits differ from the base only at repeated positions, by raising one
        // logit by ln 3: q = (3, 1, .., 1) / (V + 2) against uniform p, so
        // KL(p || q) = ln((V + 2) / V) - ln(3) / V at every repeated position.
        let spec = RepeatedSpans::default();
        let set = spec.sample(6, &mut rng(1));
        let base = Tensor::zeros(&[6, 32, 64]);
        let mut moved = base.clone();
        for (n, marks) in set.marks.iter().enumerate() {
            for (t, &k) in marks.iter().enumerate() {
                if k == PositionKind::Repeated {
                    moved.data_mut()[(n * 32 + t) * 64 + 5] = 3f32.ln();
                }
            }
        }
        let [rep, first] = kl_by_kind(&base, &moved, &set);
        let v = 64.0f64;
        let expected = ((v + 2.0) / v).ln() - 3f64.ln() / v;
        assert!((rep - expected).abs() < 1e-6, "{rep} vs {expected}");
        assert_eq!(first, 0.0);
        assert_eq!(ratio(rep, first), f64::INFINITY);
        assert_eq!(kl_by_kind(&base, &base, &set), [0.0, 0.0]);
        // The correct token's log-probability moves by ln 3 - ln((V + 2) / V) when it is the
        // raised one, by ln((V + 2) / V) otherwise; here it is raised where the next token
        // is 5.
        let [dl_rep, dl_first] = logprob_change_by_kind(&base, &moved, &set);
        let mut expected = (0.0, 0usize);
        for (n, marks) in set.marks.iter().enumerate() {
            for (t, _) in marks
                .iter()
                .enumerate()
                .filter(|(_, &k)| k == PositionKind::Repeated)
            {
                let raised = set.tokens.data()[n * 32 + t + 1] == 5.0;
                let drop = ((v + 2.0) / v).ln();
                expected.0 += if raised { 3f64.ln() - drop } else { drop };
                expected.1 += 1;
            }
        }
        assert!((dl_rep - expected.0 / expected.1 as f64).abs() < 1e-6);
        assert_eq!(dl_first, 0.0);
    }

    #[test]
    fn moving_by_zero_changes_nothing_and_a_real_move_changes_both_kinds() {
        let spec = RepeatedSpans::default();
        let model = initialised(&spec, 2);
        let d = decomposition(&model, 2);
        let set = spec.sample(4, &mut rng(2));
        let e = induction_effects(&model, &d, &set, 0.0, &[true, false], 0).unwrap();
        for s in &e.subnetworks {
            assert_eq!((s.kl_repeated, s.kl_first, s.ratio), (0.0, 0.0, 0.0));
            assert_eq!(s.logprob_change_repeated, 0.0);
            assert_eq!(s.accuracy_repeated, e.accuracy_repeated);
        }
        assert_eq!(e.baseline.kl_repeated, 0.0);
        let e = induction_effects(&model, &d, &set, 3.0, &[true, true], 0).unwrap();
        assert!(e
            .subnetworks
            .iter()
            .all(|s| s.kl_repeated > 0.0 && s.kl_first > 0.0));
        // The baseline spreads over the tensors by their sizes: eight equal matrices.
        let b = &e.baseline;
        assert!(b.kl_repeated > 0.0 && b.index == 2 && !b.live);
        assert!(
            (b.shares.layer0_total() - 0.5).abs() < 0.1,
            "{:?}",
            b.shares
        );
    }

    #[test]
    fn gradient_shares_are_those_of_the_summed_squared_gradients() {
        // Against the per-sample gradients of each pair taken alone: sequence 0 with
        // reference 1, then 1 with 0 (n = 2, so the partners are each other).
        let spec = RepeatedSpans::default();
        let model = initialised(&spec, 4);
        let d = decomposition(&model, 2);
        let x = spec.sample(2, &mut rng(4)).tokens;
        let shares = gradient_shares(&model, &d, &x).unwrap();
        let y0 = model.evaluate_w0(&x).unwrap();
        let mut sq = vec![0.0f64; d.names.len()];
        for (i, r) in [(0usize, 1usize), (1, 0)] {
            let (xi, ri) = (x.gather_rows(&[i]), y0.gather_rows(&[r]));
            let kl = l3d::Divergence::Kl;
            let g = l3d::pairs::per_sample_gradients(&model, &d.param_index, &xi, &ri, kl);
            for (s, g) in sq.iter_mut().zip(g.unwrap()) {
                *s += g.into_dense().sum_squares() as f64;
            }
        }
        let expected = LayerShares::from_sq_norms(&d.names, &sq);
        for j in 0..4 {
            assert!((shares.layer0[j] - expected.layer0[j]).abs() < 1e-5);
            assert!((shares.layer1[j] - expected.layer1[j]).abs() < 1e-5);
        }
        assert!((shares.layer0_total() + shares.layer1_total() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn roles_go_to_the_live_subnetworks_that_break_the_induction_attention_or_the_copy() {
        let make = |index, live, kl_repeated, layer0: f64| SubnetworkEffect {
            index,
            live,
            kl_repeated,
            kl_first: 0.1,
            ratio: kl_repeated / 0.1,
            logprob_repeated: kl_repeated,
            logprob_first: 0.1,
            logprob_ratio: kl_repeated / 0.1,
            logprob_change_repeated: 0.0,
            accuracy_repeated: 0.0,
            accuracy_first: 0.0,
            attention: AttentionScores {
                layer0_previous_token: 0.0,
                layer0_self: 0.0,
                layer0_previous_token_argmax: 0.0,
                // The larger the effect, the lower the induction attention after the move.
                layer1_induction: 1.0 / (1.0 + kl_repeated),
                layer1_induction_argmax: 0.0,
                layer1_previous_token: 0.0,
                layer0_induction: 0.0,
            },
            shares: LayerShares {
                layer0: [layer0, 0.0, 0.0, 0.0],
                layer1: [0.0, 0.0, 0.0, 1.0 - layer0],
                ..LayerShares::default()
            },
        };
        let subs = vec![
            make(0, true, 1.0, 0.9),
            make(1, true, 2.0, 0.6),
            make(2, false, 9.0, 0.9), // dead: never picked
            make(3, true, 0.5, 0.1),
            make(4, true, 3.0, 0.3),
            make(5, true, 5.0, 0.5), // exactly half in layer 0: counts for layer 0 (and layer 1)
        ];
        assert_eq!(identify(&subs), (Some(5), Some(5)));
        assert_eq!(identify(&subs[..5]), (Some(1), Some(4)));
        assert_eq!(identify(&subs[2..3]), (None, None));
        // The previous-token role: layer 0's attention on t - 1 after the move, lowest for 0
        // among the live layer-0 candidates (0, 1, 5; 2 is dead, 3 and 4 are in layer 1).
        let mut subs = subs;
        for (s, previous) in subs.iter_mut().zip([0.2, 0.5, 0.0, 0.1, 0.05, 0.4]) {
            s.attention.layer0_previous_token = previous;
        }
        // From a model at 0.6 with a random move to 0.58 (a fall of 0.02), a fall of 0.04
        // counts: the candidates 0, 1 and 5 fall by 0.4, 0.1 and 0.2, and 0 ends lowest.
        assert_eq!(previous_token_role(&subs, 0.6, 0.58), Some(0));
        assert_eq!(previous_token_role(&subs[1..], 0.6, 0.58), Some(5));
        assert_eq!(previous_token_role(&subs[3..5], 0.6, 0.58), None);
        // A random move that lowers it by 0.25: no fall reaches 0.5.
        assert_eq!(previous_token_role(&subs, 0.6, 0.35), None);
        // By 0.15: only 0's fall reaches 0.3.
        assert_eq!(previous_token_role(&subs[..2], 0.6, 0.45), Some(0));
        assert_eq!(previous_token_role(&subs[1..], 0.6, 0.45), None);
        // No fall of at least 0.01: none, even when the random move raises the attention.
        assert_eq!(previous_token_role(&subs, 0.205, 0.3), None);
    }
}
