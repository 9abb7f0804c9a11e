//! Per-sample gradients: vmap of grad.
//!
//! Given a function of (parameters, a batch of inputs) that returns one loss per sample
//! (`[B]`), and whose samples do not interact, return for every parameter tensor its gradient
//! for each sample separately: `[B, ..param shape]`.
//!
//! Two paths compute the same thing:
//! - [`per_sample_grads`]: one batched forward and one backward on a single tape; a shared
//!   parameter's gradient keeps the batch axis (see [`Ctx::per_sample`](crate::Ctx)), and a
//!   weight used by a matmul comes back factored ([`Grad::Outer`]).
//! - [`per_sample_grads_loop`]: the reference. B separate single-sample gradients (inputs of
//!   batch size 1), in parallel over samples, each on its own tape.

use crate::tape::{AutodiffError, Grad, Result, Tape, Var};
use rayon::prelude::*;
use tensor::{Float, Tensor};

/// A per-sample gradient of one parameter tensor: dense `[B, ..shape]`, or factored.
pub type PerSampleGrad<T> = Grad<T>;

/// Checks a batch: at least one input, every input with the same leading size `B >= 1`.
fn batch_size<T: Float>(batch: &[&Tensor<T>]) -> Result<usize> {
    let first = batch.first().ok_or(AutodiffError::Invalid {
        op: "per_sample_grads",
        msg: "no batched inputs were given".into(),
    })?;
    let b = *first.shape().first().ok_or(AutodiffError::Invalid {
        op: "per_sample_grads",
        msg: "a batched input needs a leading batch axis, got a scalar".into(),
    })?;
    if b == 0 {
        return Err(AutodiffError::Invalid {
            op: "per_sample_grads",
            msg: format!("the batch is empty (input shape {:?})", first.shape()),
        });
    }
    if let Some(t) = batch.iter().find(|t| t.shape().first() != Some(&b)) {
        return Err(AutodiffError::Invalid {
            op: "per_sample_grads",
            msg: format!(
                "batched inputs disagree on the batch size: shapes {:?} and {:?}",
                first.shape(),
                t.shape()
            ),
        });
    }
    Ok(b)
}

/// Checks the function's output: one loss per sample (`[B]`, or `[B, 1, ..]`), computed from
/// the batch, on a tape that never mixed samples.
fn check_loss<T: Float>(tape: &Tape<T>, loss: Var, b: usize) -> Result<()> {
    let shape = tape.shape(loss);
    if tape.value(loss).numel() != b || shape.first() != Some(&b) {
        return Err(AutodiffError::Invalid {
            op: "per_sample_grads",
            msg: format!("the function must return one loss per sample ([{b}]), got {shape:?}"),
        });
    }
    if !tape.is_batched(loss) {
        return Err(AutodiffError::Invalid {
            op: "per_sample_grads",
            msg: format!("the loss (shape {shape:?}) does not depend on the batched inputs"),
        });
    }
    if let Some(op) = tape.batch_mixing_op() {
        return Err(AutodiffError::Invalid {
            op: "per_sample_grads",
            msg: format!(
                "the function mixes samples ({op}), so per-sample gradients are undefined"
            ),
        });
    }
    Ok(())
}

/// Per-sample gradients from one batched pass. `f(tape, params, inputs)` records the model
/// on `tape` and returns the per-sample losses `[B]`.
///
/// Returns one [`PerSampleGrad`] per parameter, in order; a parameter the loss does not
/// depend on gets zeros `[B, ..shape]`.
pub fn per_sample_grads<T, F>(
    params: &[Tensor<T>],
    batch: &[&Tensor<T>],
    f: F,
) -> Result<Vec<PerSampleGrad<T>>>
where
    T: Float,
    F: Fn(&mut Tape<T>, &[Var], &[Var]) -> Result<Var>,
{
    let b = batch_size(batch)?;
    let mut tape = Tape::new();
    let p: Vec<Var> = params.iter().map(|t| tape.param(t.clone())).collect();
    let x: Vec<Var> = batch.iter().map(|t| tape.input((*t).clone())).collect();
    let loss = f(&mut tape, &p, &x)?;
    check_loss(&tape, loss, b)?;
    let seed = Tensor::ones(tape.shape(loss));
    let mut grads = tape.backward_from(loss, seed, true)?;
    Ok(p.iter()
        .map(|v| {
            grads[v.index()].take().unwrap_or_else(|| {
                let mut shape = vec![b];
                shape.extend_from_slice(tape.shape(*v));
                Grad::Dense(Tensor::zeros(&shape))
            })
        })
        .collect())
}

/// The reference path: B single-sample gradients (each input row as a batch of one), computed
/// in parallel over samples and stacked in sample order. Results do not depend on the number
/// of threads: every sample is computed whole by one thread.
pub fn per_sample_grads_loop<T, F>(
    params: &[Tensor<T>],
    batch: &[&Tensor<T>],
    f: F,
) -> Result<Vec<Tensor<T>>>
where
    T: Float,
    F: Fn(&mut Tape<T>, &[Var], &[Var]) -> Result<Var> + Sync,
{
    let b = batch_size(batch)?;
    let one_sample = |s: usize| -> Result<Vec<Tensor<T>>> {
        let mut tape = Tape::new();
        let p: Vec<Var> = params.iter().map(|t| tape.param(t.clone())).collect();
        let x: Vec<Var> = batch
            .iter()
            .map(|t| tape.input(t.gather_rows(&[s])))
            .collect();
        let loss = f(&mut tape, &p, &x)?;
        check_loss(&tape, loss, 1)?;
        tape.grad(loss, &p)
    };
    let samples: Vec<Vec<Tensor<T>>> = (0..b)
        .into_par_iter()
        .map(one_sample)
        .collect::<Result<_>>()?;
    Ok((0..params.len())
        .map(|i| {
            let rows: Vec<&Tensor<T>> = samples.iter().map(|s| &s[i]).collect();
            Tensor::stack(&rows)
        })
        .collect())
}
