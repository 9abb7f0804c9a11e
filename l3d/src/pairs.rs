//! Pairs and divergences: for each sample `x_i` of a batch a reference output `r_i`, and the
//! per-sample gradient `g_i = d/dW D(f(x_i, W), r_i)` at `W = W0` with `r_i` held fixed.
//!
//! Shapes: `x: [B, ..input shape]` (rows `[B, d_in]`, images `[B, C, H, W]`, token ids
//! `[B, T]`), `r: [B, ..output shape]`, `g_i` one tensor per decomposed parameter, stacked as
//! `[B, ..param shape]`.
//!
//! # Sequences
//!
//! The paper defines `g_i = d/dW D(f(x_i, W), f(x_r, W0))` for a model with one output vector
//! per sample. For a sequence model a sample is one whole sequence `x_i` (`T` token ids), its
//! output is one distribution per position, `f(x_i, W): [T, vocab]` (logits), and the reference
//! is another sequence `x_r` of the batch, drawn as for any model (`r != i`). The divergence
//! sums the per-position divergences over the positions chosen by
//! [`Positions`](crate::Positions):
//!
//! ```text
//! D(f(x_i, W), f(x_r, W0)) = sum_{t in P} KL( softmax(f(x_r, W0)[t]) || softmax(f(x_i, W)[t]) )
//! ```
//!
//! with `P` every position (`all`, the default), the last one (`last`: the prediction after
//! the whole sequence, which equals the paper's definition for the model that outputs only
//! its last position), or a list. Positions are compared with the same positions of the
//! reference: the pair is two sequences, not two tokens. With `P` all positions, `g_i` is the
//! sum of the `T` per-position gradients; MSE is treated alike, its mean taken over the chosen
//! positions' values. Tested in `tests/sequences.rs`.

use crate::config::{Divergence, Positions, Reference};
use crate::error::{L3dError, Result};
use autodiff::{per_sample_grads, PerSampleGrad, Tape, Var};
use nets::Model;
use rand::Rng;
use tensor::{Float, Tensor};

/// Where a batch's per-sample gradients come from.
#[derive(Clone, Copy)]
pub enum Source<'a, T: Float> {
    /// Pairs of rows of `data: [N, d_in]` through the model (Algorithm 1).
    Model {
        model: &'a dyn Model<T>,
        data: &'a Tensor<T>,
    },
    /// Given per-sample gradients, one tensor `[N, ..shape]` per decomposed tensor (row `i`
    /// of each is sample `i`). For testing the decomposition on its own.
    Gradients(&'a [Tensor<T>]),
}

impl<T: Float> Source<'_, T> {
    /// `N`, the number of samples.
    pub fn rows(&self) -> usize {
        match self {
            Source::Model { data, .. } => data.shape()[0],
            Source::Gradients(g) => g[0].shape()[0],
        }
    }
}

/// For each of `b` samples, the index of another sample of the batch, uniform over the
/// `b - 1` others (`r_i != i`). Needs `b >= 2`.
pub fn draw_partners(b: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut partners = Vec::with_capacity(b);
    draw_partners_into(b, rng, &mut partners);
    partners
}

/// [`draw_partners`] into a reused vector (the same draws from `rng`).
pub fn draw_partners_into(b: usize, rng: &mut impl Rng, out: &mut Vec<usize>) {
    assert!(
        b >= 2,
        "a random in-batch reference needs at least 2 samples"
    );
    out.clear();
    out.extend((0..b).map(|i| {
        let j = rng.gen_range(0..b - 1);
        if j >= i {
            j + 1
        } else {
            j
        }
    }));
}

/// The partners of a batch of `b` samples under `reference`, into `out` (reused): for
/// [`Reference::RandomSample`] another sample each ([`draw_partners_into`]), for
/// [`Reference::RandomWithSelf`] any sample of the batch, itself included; left empty for
/// references that are not another sample's output.
pub fn draw_reference_partners(
    reference: Reference,
    b: usize,
    rng: &mut impl Rng,
    out: &mut Vec<usize>,
) {
    match reference {
        Reference::RandomSample => draw_partners_into(b, rng, out),
        Reference::RandomWithSelf => {
            out.clear();
            out.extend((0..b).map(|_| rng.gen_range(0..b)));
        }
        Reference::BatchMean | Reference::Zero => out.clear(),
    }
}

/// The reference outputs `r: [B, d_out]` for a batch whose outputs at `W0` are `y0: [B, d_out]`.
/// `partners` is used by the references that draw them ([`Reference::draws_partners`]).
pub fn reference_outputs<T: Float>(
    y0: &Tensor<T>,
    kind: Reference,
    divergence: Divergence,
    partners: &[usize],
) -> Tensor<T> {
    let b = y0.shape()[0];
    match kind {
        Reference::RandomSample | Reference::RandomWithSelf => y0.gather_rows(partners),
        Reference::Zero => Tensor::zeros(y0.shape()),
        Reference::BatchMean if divergence == Divergence::Kl => {
            // The mean distribution, as logits: ln(mean_i softmax(y0_i)).
            let mean = y0.softmax_last().mean_axis(0).log();
            let rows: Vec<&Tensor<T>> = (0..b).map(|_| &mean).collect();
            Tensor::stack(&rows)
        }
        Reference::BatchMean => {
            let mean = y0.mean_axis(0);
            let rows: Vec<&Tensor<T>> = (0..b).map(|_| &mean).collect();
            Tensor::stack(&rows)
        }
    }
}

/// Records the per-sample divergence `[B]` between outputs `y` and references `r` on a tape.
pub fn record_divergence<T: Float>(
    tape: &mut Tape<T>,
    divergence: Divergence,
    y: Var,
    r: Var,
) -> autodiff::Result<Var> {
    match divergence {
        Divergence::Mse => tape.try_mse(y, r),
        Divergence::Kl => tape.try_kl_div(y, r),
        Divergence::MseAuthors => {
            // mean_j y_j (y_j - r_j): its gradient is J^T (2 y - r) / n_out.
            let d = tape.try_sub(y, r)?;
            let t = tape.try_mul(y, d)?;
            let s = tape.sum_rows(t);
            let width = tape.shape(y)[1..].iter().product::<usize>().max(1);
            Ok(tape.scale(s, T::one() / T::from_usize(width)))
        }
    }
}

/// The outputs `y: [B, T, ..]` at the chosen positions, `[B, |P|, ..]` (in the order listed);
/// `y` itself for [`Positions::All`]. An error if `y` has no position axis or a position is
/// not in `0..T`.
pub fn select_positions<T: Float>(
    tape: &mut Tape<T>,
    y: Var,
    positions: &Positions,
) -> autodiff::Result<Var> {
    let shape = tape.shape(y).to_vec();
    let bad = |msg: String| autodiff::AutodiffError::Invalid {
        op: "select_positions",
        msg,
    };
    let t = match (positions, &shape[..]) {
        (Positions::All, _) => return Ok(y),
        (_, [_, t, _, ..]) => *t,
        _ => {
            return Err(bad(format!(
                "positions {positions:?} needs sequence outputs [B, T, ..]; the model outputs \
                 {shape:?}"
            )))
        }
    };
    match positions {
        Positions::All => Ok(y),
        Positions::Last => tape.try_slice_axis(y, 1, t - 1..t),
        Positions::Chosen(list) => {
            if let Some(p) = list.iter().find(|&&p| p >= t) {
                return Err(bad(format!(
                    "position {p} is not in 0..{t} (outputs of shape {shape:?})"
                )));
            }
            let slices = list
                .iter()
                .map(|&p| tape.try_slice_axis(y, 1, p..p + 1))
                .collect::<autodiff::Result<Vec<Var>>>()?;
            tape.try_concat(&slices, 1)
        }
    }
}

/// Checks that `positions` fits the model's outputs: [`Positions::All`] fits any model; the
/// others need outputs with a position axis, `[T, ..]` per sample, and positions in `0..T`.
pub fn check_positions<T: Float>(model: &dyn Model<T>, positions: &Positions) -> Result<()> {
    let shape = model.output_shape();
    let t = match (positions, &shape[..]) {
        (Positions::All, _) => return Ok(()),
        (_, [t, _, ..]) => *t,
        _ => {
            return Err(L3dError::Data(format!(
                "positions {positions:?} needs a sequence model (outputs [T, ..] per sample); \
                 the model's outputs are {shape:?} per sample"
            )))
        }
    };
    match positions {
        Positions::Chosen(list) if list.iter().any(|&p| p >= t) => Err(L3dError::Data(format!(
            "positions {list:?}: the model's sequences have positions 0..{t}"
        ))),
        _ => Ok(()),
    }
}

/// Per-sample gradients `g_i` of the divergence at `W0` for the parameters `decomposed`
/// (indices into the model's parameters; the others are held at `W0` as constants), over
/// every position of a sequence output: [`per_sample_gradients_at`] with [`Positions::All`].
pub fn per_sample_gradients<T: Float>(
    model: &dyn Model<T>,
    decomposed: &[usize],
    x: &Tensor<T>,
    reference: &Tensor<T>,
    divergence: Divergence,
) -> Result<Vec<PerSampleGrad<T>>> {
    per_sample_gradients_at(model, decomposed, x, reference, divergence, &Positions::All)
}

/// Per-sample gradients `g_i` of the divergence at `W0` for the parameters `decomposed`
/// (indices into the model's parameters; the others are held at `W0` as constants), summed
/// over the chosen `positions` of a sequence output (see the module docs).
///
/// Returns one [`PerSampleGrad`] per decomposed tensor: `[B, ..shape]`, possibly in factored
/// form for weights of linear layers.
pub fn per_sample_gradients_at<T: Float>(
    model: &dyn Model<T>,
    decomposed: &[usize],
    x: &Tensor<T>,
    reference: &Tensor<T>,
    divergence: Divergence,
    positions: &Positions,
) -> Result<Vec<PerSampleGrad<T>>> {
    let w0 = model.params();
    let trainable: Vec<Tensor<T>> = decomposed.iter().map(|&i| w0[i].clone()).collect();
    let grads = per_sample_grads(&trainable, &[x, reference], |tape, p, inputs| {
        let mut next = 0;
        let mut all = Vec::with_capacity(w0.len());
        for (i, w) in w0.iter().enumerate() {
            if decomposed.contains(&i) {
                all.push(p[next]);
                next += 1;
            } else {
                all.push(tape.constant((*w).clone()));
            }
        }
        let y = model.forward(tape, &all, inputs[0])?;
        let y = select_positions(tape, y, positions)?;
        let r = select_positions(tape, inputs[1], positions)?;
        record_divergence(tape, divergence, y, r)
    })?;
    Ok(grads)
}

/// Step 1 of Algorithm 1 for a batch `x: [B, ..input shape]`: each sample's reference drawn
/// from `rng` under `reference` ([`draw_reference_partners`]), the reference outputs at `W0`
/// ([`reference_outputs`]), and the per-sample gradients `g_i` of the divergence over the
/// chosen `positions` for the parameters `decomposed` ([`per_sample_gradients_at`]). Every
/// engine of a step draws a batch's references this way, so they all draw the same numbers.
pub fn pair_gradients<T: Float>(
    model: &dyn Model<T>,
    decomposed: &[usize],
    x: &Tensor<T>,
    reference: Reference,
    divergence: Divergence,
    positions: &Positions,
    rng: &mut impl Rng,
) -> Result<Vec<PerSampleGrad<T>>> {
    let mut partners = Vec::new();
    draw_reference_partners(reference, x.shape()[0], rng, &mut partners);
    let y0 = model.evaluate_w0(x)?;
    let r = reference_outputs(&y0, reference, divergence, &partners);
    per_sample_gradients_at(model, decomposed, x, &r, divergence, positions)
}

/// Checks the data against the model: `[N, ..input shape]`, every value finite.
pub fn check_data<T: Float>(model: &dyn Model<T>, x: &Tensor<T>) -> Result<()> {
    let sample = model.input_shape();
    if x.ndim() != sample.len() + 1 || x.shape()[1..] != sample[..] {
        return Err(L3dError::Data(format!(
            "the data has shape {:?}; the model takes samples of shape {sample:?}",
            x.shape(),
        )));
    }
    if let Some(i) = x.data().iter().position(|v| !v.is_finite()) {
        let w = model.input_dim().max(1);
        return Err(L3dError::Data(format!(
            "the data has a non-finite value at row {}, column {}",
            i / w,
            i % w
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::rng;

    #[test]
    fn partners_are_never_the_sample_itself_and_cover_the_others() {
        let mut r = rng(3);
        let mut seen = [[false; 4]; 4];
        for _ in 0..200 {
            for (i, j) in draw_partners(4, &mut r).into_iter().enumerate() {
                assert_ne!(i, j);
                seen[i][j] = true;
            }
        }
        for (i, row) in seen.iter().enumerate() {
            for (j, &s) in row.iter().enumerate() {
                assert_eq!(s, i != j, "pair ({i}, {j})");
            }
        }
    }

    #[test]
    fn partners_with_self_cover_every_pair_and_others_draw_none() {
        let mut r = rng(3);
        let mut seen = [[false; 3]; 3];
        let mut p = Vec::new();
        for _ in 0..200 {
            draw_reference_partners(Reference::RandomWithSelf, 3, &mut r, &mut p);
            for (i, &j) in p.iter().enumerate() {
                seen[i][j] = true;
            }
        }
        assert!(seen.iter().flatten().all(|&s| s), "{seen:?}");
        draw_reference_partners(Reference::RandomWithSelf, 1, &mut r, &mut p);
        assert_eq!(p, [0]);
        draw_reference_partners(Reference::BatchMean, 3, &mut r, &mut p);
        assert!(p.is_empty());
        // RandomSample draws exactly what draw_partners draws.
        draw_reference_partners(Reference::RandomSample, 5, &mut rng(9), &mut p);
        assert_eq!(p, draw_partners(5, &mut rng(9)));
    }
}
