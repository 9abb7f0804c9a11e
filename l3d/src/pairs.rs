//! Pairs and divergences: for each sample `x_i` of a batch a reference output `r_i`, and the
//! per-sample gradient `g_i = d/dW D(f(x_i, W), r_i)` at `W = W0` with `r_i` held fixed.
//!
//! Shapes: `x: [B, d_in]`, `r: [B, d_out]`, `g_i` one tensor per decomposed parameter,
//! stacked as `[B, ..param shape]`.

use crate::config::{Divergence, Reference};
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

/// Per-sample gradients `g_i` of the divergence at `W0` for the parameters `decomposed`
/// (indices into the model's parameters; the others are held at `W0` as constants).
///
/// Returns one [`PerSampleGrad`] per decomposed tensor: `[B, ..shape]`, possibly in factored
/// form for weights of linear layers.
pub fn per_sample_gradients<T: Float>(
    model: &dyn Model<T>,
    decomposed: &[usize],
    x: &Tensor<T>,
    reference: &Tensor<T>,
    divergence: Divergence,
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
        record_divergence(tape, divergence, y, inputs[1])
    })?;
    Ok(grads)
}

/// Step 1 of Algorithm 1 for a batch `x: [B, d_in]`: each sample's reference drawn from `rng`
/// under `reference` ([`draw_reference_partners`]), the reference outputs `r: [B, d_out]` at
/// `W0` ([`reference_outputs`]), and the per-sample gradients `g_i` of the divergence for the
/// parameters `decomposed` ([`per_sample_gradients`]). Every engine of a step draws a batch's
/// references this way, so they all draw the same numbers.
pub fn pair_gradients<T: Float>(
    model: &dyn Model<T>,
    decomposed: &[usize],
    x: &Tensor<T>,
    reference: Reference,
    divergence: Divergence,
    rng: &mut impl Rng,
) -> Result<Vec<PerSampleGrad<T>>> {
    let mut partners = Vec::new();
    draw_reference_partners(reference, x.shape()[0], rng, &mut partners);
    let y0 = model.evaluate_w0(x)?;
    let r = reference_outputs(&y0, reference, divergence, &partners);
    per_sample_gradients(model, decomposed, x, &r, divergence)
}

/// Checks a data matrix against the model: `[N, input_dim]`, every value finite.
pub fn check_data<T: Float>(model: &dyn Model<T>, x: &Tensor<T>) -> Result<()> {
    if x.ndim() != 2 || x.shape()[1] != model.input_dim() {
        return Err(L3dError::Data(format!(
            "the data has shape {:?}; the model takes rows of {} values",
            x.shape(),
            model.input_dim()
        )));
    }
    if let Some(i) = x.data().iter().position(|v| !v.is_finite()) {
        let w = x.shape()[1];
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
